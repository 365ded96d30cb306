/*
 * quants_x86_rp.h - the kernels of the interleaved-rows layout of Q4_0 and
 * Q8_0 (repack.h), shared by quants_avx2.c and quants_avx512.c (include
 * after quants_x86.h, whose decoders, dot primitive and prefetch hint they
 * use). The K-quants' repacked groups are in quants_x86_kpanel.h.
 */
#ifndef WISP_QUANTS_X86_RP_H
#define WISP_QUANTS_X86_RP_H

/* Kernels of the interleaved-rows layout (repack.h). A vector covers
 * RV_ROWS rows x 4 blocks (lane 4 * row + block): 4 rows in a zmm, 2 in a
 * ymm, so a group's half of 4 rows is NV vectors. Per quad and token the
 * lanes' block sums build up in int32 from one 16-byte broadcast of the
 * activations' quads section per 4-byte group, starting from the offset's
 * correction (the negated block sums shifted, cpu_types.h); then, lane by
 * lane, the float work of the file layout's kernels: (dw * da), times the
 * sum, into the accumulator of lane k = block mod 4. The end is theirs too:
 * (a0 + a2) + (a1 + a3) per row, plus the blocks past the quads summed in
 * order. So every output has the bits of DEF_DOT32S / DEF_GEMM32 above. */
#if WISP_X86_VNNI
typedef __m512i rv_i;
typedef __m512 rv_f;
#define RV_NV             1
#define RV_ROWS           4
#define RV_LOAD(p)        _mm512_loadu_si512((const void *)(p))
#define RV_AND(a, b)      _mm512_and_si512(a, b)
#define RV_XOR(a, b)      _mm512_xor_si512(a, b)
#define RV_SRLI16(a, k)   _mm512_srli_epi16(a, k)
#define RV_SLLI32(a, k)   _mm512_slli_epi32(a, k)
#define RV_SET1_8(x)      _mm512_set1_epi8((char)(x))
#define RV_ZERO()         _mm512_setzero_si512()
#define RV_BCAST(p)       _mm512_broadcast_i32x4(loadu128(p))
#define RF_BCAST(p)       _mm512_broadcast_f32x4(_mm_loadu_ps((const float *)(p)))
#define RF_HALVES(p)      _mm512_cvtph_ps(loadu256(p))
#define RF_ZERO()         _mm512_setzero_ps()
#define RF_MUL(a, b)      _mm512_mul_ps(a, b)
#define RF_ADD(a, b)      _mm512_add_ps(a, b)
#define RF_FMA(a, b, c)   _mm512_fmadd_ps(a, b, c)
#define RF_CVT(a)         _mm512_cvtepi32_ps(a)
#define RF_PERM(a, k)     _mm512_permute_ps(a, k)
#define RF_STORE(p, a)    _mm512_storeu_ps(p, a)
#define RV_DOT(acc, u, a) _mm512_dpbusd_epi32(acc, u, a)
#else
typedef __m256i rv_i;
typedef __m256 rv_f;
#define RV_NV             2
#define RV_ROWS           2
#define RV_LOAD(p)        loadu256(p)
#define RV_AND(a, b)      _mm256_and_si256(a, b)
#define RV_XOR(a, b)      _mm256_xor_si256(a, b)
#define RV_SRLI16(a, k)   _mm256_srli_epi16(a, k)
#define RV_SLLI32(a, k)   _mm256_slli_epi32(a, k)
#define RV_SET1_8(x)      _mm256_set1_epi8((char)(x))
#define RV_ZERO()         _mm256_setzero_si256()
#define RV_BCAST(p)       _mm256_broadcastsi128_si256(loadu128(p))
#define RF_BCAST(p)       _mm256_broadcast_ps((const __m128 *)(p))
#define RF_HALVES(p)      _mm256_cvtph_ps(loadu128(p))
#define RF_ZERO()         _mm256_setzero_ps()
#define RF_MUL(a, b)      _mm256_mul_ps(a, b)
#define RF_ADD(a, b)      _mm256_add_ps(a, b)
#define RF_FMA(a, b, c)   _mm256_fmadd_ps(a, b, c)
#define RF_CVT(a)         _mm256_cvtepi32_ps(a)
#define RF_PERM(a, k)     _mm256_permute_ps(a, k)
#define RF_STORE(p, a)    _mm256_storeu_ps(p, a)
#define RV_DOT(acc, u, a) dot_u8s8(acc, u, a)
#endif
#define RV_BYTES (RV_ROWS * 16)
#define RV_HV    (2 * RV_NV) /* vectors per group of 8 rows */
/* How far ahead a group's quads are prefetched: twice the file layout's
 * PF_DIST, as these kernels consume bytes faster (kbench, 1024 x 131072
 * from DRAM, one token, 2 threads, us per call at 4 / 8 KiB: Q4_0 1476 /
 * 1316, Q8_0 3352 / 3199 at best of 3; 16 KiB did no better). */
#ifndef RP_PF_DIST
#define RP_PF_DIST 8192
#endif
/* Tokens one pass over a group's quads takes (accumulators in registers). */
#define RP_TOKS 4

/* Q8_0 without VNNI: maddubs would saturate on q + 128, so the sign moves
 * onto the activations as in DEF_DOT32S, and there is no offset. */
#define RP_Q8_SIGNED (!WISP_X86_VNNI)

/* One group of 8 rows x T tokens (T <= RP_TOKS, a constant in each copy);
 * a points at the first token's activation row. */
AI void rp_group(const int Q8, int64_t n, const char *grp, const char *a, size_t sa, int T,
                 float *s, size_t ss)
{
    const int64_t nb = n / 32, nq = nb / WISP_RP_QUAD, nt = nb % WISP_RP_QUAD;
    const size_t qb = WISP_RP_SCALE_BYTES + (size_t)(Q8 ? 8 : 4) * 2 * WISP_RP_VEC_BYTES;
    const size_t qoff = wisp_cpu_act_quads_offset(n), soff = wisp_cpu_act_scales_offset(n);
    const int shift = Q8 ? 7 : 3;
    rv_f acc[RP_TOKS][RV_HV];
    _Pragma("GCC unroll 8")
    for (int c = 0; c < T; c++)
        _Pragma("GCC unroll 8")
    for (int v = 0; v < RV_HV; v++)
        acc[c][v] = RF_ZERO();
    for (int64_t q = 0; q < nq; q++) {
        const char *d = grp + (size_t)q * qb;
        _Pragma("GCC unroll 32")
        for (int pf = 0; pf < (int)qb; pf += 64)
            _mm_prefetch(d + RP_PF_DIST + pf, PF_HINT);
        rv_i isum[RP_TOKS][RV_HV];
        _Pragma("GCC unroll 8")
        for (int c = 0; c < T; c++) {
            const char *aq = a + (size_t)c * sa + qoff + (size_t)q * WISP_CPU_ACT_QUAD_BYTES;
            const rv_i init = Q8 && RP_Q8_SIGNED ? RV_ZERO() : RV_SLLI32(RV_BCAST(aq + 128), shift);
            _Pragma("GCC unroll 8")
            for (int v = 0; v < RV_HV; v++)
                isum[c][v] = init;
        }
        const char *qv = d + WISP_RP_SCALE_BYTES;
        if (Q8) {
            _Pragma("GCC unroll 8")
            for (int j = 0; j < 8; j++) {
                rv_i u[RV_HV], w[RV_HV];
                _Pragma("GCC unroll 8")
                for (int v = 0; v < RV_HV; v++) {
                    /* vector v: half v / NV, part v % NV of its 64 bytes */
                    w[v] = RV_LOAD(qv + (size_t)(2 * j + v / RV_NV) * WISP_RP_VEC_BYTES +
                                   (size_t)(v % RV_NV) * RV_BYTES);
#if RP_Q8_SIGNED
                    u[v] = _mm256_sign_epi8(w[v], w[v]);
#else
                    u[v] = RV_XOR(w[v], RV_SET1_8(0x80));
#endif
                }
                _Pragma("GCC unroll 8")
                for (int c = 0; c < T; c++) {
                    const rv_i y = RV_BCAST(a + (size_t)c * sa + qoff +
                                            (size_t)q * WISP_CPU_ACT_QUAD_BYTES + 16 * j);
                    _Pragma("GCC unroll 8")
                    for (int v = 0; v < RV_HV; v++)
#if RP_Q8_SIGNED
                        isum[c][v] = RV_DOT(isum[c][v], u[v], _mm256_sign_epi8(y, w[v]));
#else
                        isum[c][v] = RV_DOT(isum[c][v], u[v], y);
#endif
                }
            }
        } else {
            _Pragma("GCC unroll 8")
            for (int m = 0; m < 4; m++) {
                rv_i lo[RV_HV], hi[RV_HV];
                _Pragma("GCC unroll 8")
                for (int v = 0; v < RV_HV; v++) {
                    const rv_i p = RV_LOAD(qv + (size_t)(2 * m + v / RV_NV) * WISP_RP_VEC_BYTES +
                                           (size_t)(v % RV_NV) * RV_BYTES);
                    lo[v] = RV_AND(p, RV_SET1_8(0x0F));
                    hi[v] = RV_AND(RV_SRLI16(p, 4), RV_SET1_8(0x0F));
                }
                _Pragma("GCC unroll 8")
                for (int c = 0; c < T; c++) {
                    const char *aq =
                        a + (size_t)c * sa + qoff + (size_t)q * WISP_CPU_ACT_QUAD_BYTES;
                    const rv_i ylo = RV_BCAST(aq + 16 * m), yhi = RV_BCAST(aq + 16 * (m + 4));
                    _Pragma("GCC unroll 8")
                    for (int v = 0; v < RV_HV; v++)
                        isum[c][v] = RV_DOT(RV_DOT(isum[c][v], lo[v], ylo), hi[v], yhi);
                }
            }
        }
        rv_f dw[RV_HV];
        _Pragma("GCC unroll 8")
        for (int v = 0; v < RV_HV; v++)
            dw[v] = RF_HALVES(d + 2 * (16 * (v / RV_NV) + 4 * RV_ROWS * (v % RV_NV)));
        _Pragma("GCC unroll 8")
        for (int c = 0; c < T; c++) {
            const rv_f da = RF_BCAST((const float *)(a + (size_t)c * sa + soff) + 4 * q);
            _Pragma("GCC unroll 8")
            for (int v = 0; v < RV_HV; v++)
                acc[c][v] = RF_FMA(RF_MUL(dw[v], da), RF_CVT(isum[c][v]), acc[c][v]);
        }
    }
    /* per row: (a0 + a2) + (a1 + a3), then the blocks past the quads */
    const char *tail = grp + (size_t)nq * qb;
    const size_t bb = Q8 ? sizeof(wisp_block_q8_0) : sizeof(wisp_block_q4_0);
    _Pragma("GCC unroll 8")
    for (int c = 0; c < T; c++) {
        const char *row = a + (size_t)c * sa;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < RV_HV; v++) {
            const rv_f t = RF_ADD(acc[c][v], RF_PERM(acc[c][v], 0x4E));
            float lanes[4 * RV_ROWS];
            RF_STORE(lanes, RF_ADD(t, RF_PERM(t, 0xB1)));
            for (int rr = 0; rr < RV_ROWS; rr++) {
                const int r = 4 * (v / RV_NV) + RV_ROWS * (v % RV_NV) + rr;
                float tl = 0.f;
                for (int64_t i = 0; i < nt; i++) {
                    const char *wb = tail + (size_t)(r * nt + i) * bb;
                    const int8_t *y = ((const wisp_block_q8_0 *)row)[nq * 4 + i].qs;
                    int isum = 0;
                    if (Q8)
                        for (int e = 0; e < 32; e++)
                            isum += ((const wisp_block_q8_0 *)wb)->qs[e] * y[e];
                    else
                        for (int e = 0; e < 16; e++) {
                            const uint8_t b = ((const wisp_block_q4_0 *)wb)->qs[e];
                            isum += ((b & 0xF) - 8) * y[e] + ((b >> 4) - 8) * y[e + 16];
                        }
                    tl += udscale(wb) * ((const float *)(row + soff))[nq * 4 + i] * (float)isum;
                }
                s[(size_t)c * ss + (size_t)r] = lanes[4 * rr] + tl;
            }
        }
    }
}

#define DEF_RP(name, Q8)                                                                  \
    static void x86_rp_##name(int64_t n, const void *w, size_t sg, int ng, const void *a, \
                              size_t sa, int nc, float *s, size_t ss)                     \
    {                                                                                     \
        for (int g = 0; g < ng; g++) {                                                    \
            const char *grp = (const char *)w + (size_t)g * sg;                           \
            float *sg_out = s + (size_t)g * WISP_RP_ROWS;                                 \
            for (int c = 0; c < nc; c += RP_TOKS) {                                       \
                const char *ac = (const char *)a + (size_t)c * sa;                        \
                float *sc = sg_out + (size_t)c * ss;                                      \
                switch (nc - c < RP_TOKS ? nc - c : RP_TOKS) {                            \
                case 4: rp_group(Q8, n, grp, ac, sa, 4, sc, ss); break;                   \
                case 3: rp_group(Q8, n, grp, ac, sa, 3, sc, ss); break;                   \
                case 2: rp_group(Q8, n, grp, ac, sa, 2, sc, ss); break;                   \
                default: rp_group(Q8, n, grp, ac, sa, 1, sc, ss); break;                  \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
_Static_assert(RP_TOKS == 4, "DEF_RP's switch covers 4 tokens");
DEF_RP(q4_0, 0)
DEF_RP(q8_0, 1)

#endif
