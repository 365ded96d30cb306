/*
 * quants_x86_kmr.h - K-quant kernels over several rows or tokens at once,
 * 256-bit, shared by quants_avx2.c and quants_avx512.c (include after
 * quants_x86_k.h).
 *
 * The per-row kernels of quants_x86_k.h end every super-block with two
 * horizontal sums of eight int32 lanes (the super-block's exact integer
 * dot and its correction) and two scalar fused multiply-adds. Here those
 * sums are taken for eight (row or token) pairs at once by one transpose
 * (sum8x8), and the float work runs in the lanes of one vector, lane for
 * lane the operations of kdot_block in the same order:
 *   acc  = fma(y.d * d,  (float)isum (- corr when folded), acc)
 *   accm = fma(y.d * cm, (float)corr, accm),   result = acc + accm
 * The integers are exact whichever way they are added up, so every lane
 * ends with the bits of the per-row kernels: a token gives the same result
 * alone (one-token kernels), in a batch (gemm) or on AMX.
 *
 *  - gemm (batches): one weight row's super-block is decoded once (kdec)
 *    for up to WISP_GEMM_NC tokens; lanes are tokens.
 *  - gemv (one token, Q4_K): WISP_GEMV_NR weight rows against the one
 *    activation row, straight from the weight bytes as q4_K_one; lanes are
 *    (acc, accm) of each row.
 */
#ifndef WISP_QUANTS_X86_KMR_H
#define WISP_QUANTS_X86_KMR_H

/* ------------------------------------------------------------ batches */

#define DEF_GEMMK(name, WB)                                                                        \
    /* one weight row against nc tokens (2 <= nc <= WISP_GEMM_NC) */                              \
    AI void name##_row8(int64_t n, const char *w, const void *va, size_t sa, int nc, float *s,    \
                        size_t ss)                                                                 \
    {                                                                                              \
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();                              \
        kdec k;                                                                                    \
        __m256i scv[8];                                                                            \
        for (int64_t i = 0; i < n / WISP_QK_K; i++) {                                              \
            PREFETCH_SPAN(w + (size_t)i * sizeof(WB), sizeof(WB));                                 \
            kdec_##name(w + (size_t)i * sizeof(WB), &k);                                           \
            kscales(&k, scv);                                                                      \
            __m256i is[WISP_GEMM_NC], cs[WISP_GEMM_NC];                                            \
            _Alignas(32) float yd[WISP_GEMM_NC];                                                   \
            _Pragma("GCC unroll 8")                                                                \
            for (int c = 0; c < WISP_GEMM_NC; c++) {                                               \
                if (c >= nc) {                                                                     \
                    is[c] = cs[c] = _mm256_setzero_si256();                                        \
                    yd[c] = 0.f;                                                                   \
                    continue;                                                                      \
                }                                                                                  \
                const wisp_block_q8_K *y =                                                         \
                    (const wisp_block_q8_K *)((const char *)va + (size_t)c * sa) + i;              \
                __m256i is2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};                 \
                _Pragma("GCC unroll 8")                                                            \
                for (int q = 0; q < 8; q++) {                                                      \
                    __m256i u = _mm256_load_si256((const __m256i *)(k.u + 32 * q));                \
                    is2[q & 1] =                                                                   \
                        dpwssd(is2[q & 1], _mm256_maddubs_epi16(u, loadu256(y->qs + 32 * q)),      \
                               scv[q]);                                                            \
                }                                                                                  \
                is[c] = _mm256_add_epi32(is2[0], is2[1]);                                          \
                cs[c] = _mm256_madd_epi16(k.corr, loadu256(y->bsums));                             \
                yd[c] = y->d;                                                                      \
            }                                                                                      \
            const __m256i isum = sum8x8(is, 0), corr = sum8x8(cs, 0);                              \
            const __m256 ydv = _mm256_load_ps(yd);                                                 \
            if (k.fold) {                                                                          \
                acc = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k.d)),                     \
                                      _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, corr)), acc);      \
            } else {                                                                               \
                acc = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k.d)),                     \
                                      _mm256_cvtepi32_ps(isum), acc);                              \
                accm = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k.cm)),                   \
                                       _mm256_cvtepi32_ps(corr), accm);                            \
            }                                                                                      \
        }                                                                                          \
        _Alignas(32) float out[WISP_GEMM_NC];                                                      \
        _mm256_store_ps(out, _mm256_add_ps(acc, accm));                                            \
        for (int c = 0; c < nc; c++)                                                               \
            s[(size_t)c * ss] = out[c];                                                            \
    }                                                                                              \
    static void x86_gemm_##name(int64_t n, const void *w, size_t sw, int nr, const void *a,        \
                                size_t sa, int nc, float *s, size_t ss)                            \
    {                                                                                              \
        for (int r = 0; r < nr; r++) {                                                             \
            const char *wr = (const char *)w + (size_t)r * sw;                                     \
            if (nc >= 2)                                                                           \
                name##_row8(n, wr, a, sa, nc, s + r, ss);                                          \
            else                                                                                   \
                x86_dot_##name(n, wr, a, sa, nc, s + r, ss);                                       \
        }                                                                                          \
    }

DEF_GEMMK(q2_K, wisp_block_q2_K)
DEF_GEMMK(q3_K, wisp_block_q3_K)
DEF_GEMMK(q4_K, wisp_block_q4_K)
DEF_GEMMK(q5_K, wisp_block_q5_K)
DEF_GEMMK(q6_K, wisp_block_q6_K)

/* ------------------------------------------------------------ one token */

/* The exact integer dot (unreduced, eight int32 lanes) of one Q4_K
 * super-block with one Q8_K block, and of its minimums with the block's
 * sums, as q4_K_one computes them. */
AI void q4_K_block_sums(const wisp_block_q4_K *x, const wisp_block_q8_K *y, __m256i *isv,
                        __m256i *corrv)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m128i scm = scales_k4(x->scales);
    _Alignas(32) int32_t sc[8];
    _mm256_store_si256((__m256i *)sc,
                       _mm256_shuffle_epi8(_mm256_broadcastq_epi64(scm),
                                           _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2,
                                                            -1, 3, -1, 3, -1, 4, -1, 4, -1, 5, -1,
                                                            5, -1, 6, -1, 6, -1, 7, -1, 7, -1)));
    /* keeps the compiler from turning the broadcasts into shuffles */
    __asm__ volatile("" : : "m"(sc) : "memory");
    __m256i is[4];
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 4; c++) {
        const __m256i bits = loadu256(x->qs + 32 * c);
        const __m256i p0 =
            _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), loadu256(y->qs + 64 * c));
        const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                                loadu256(y->qs + 64 * c + 32));
        const __m256i s0 = _mm256_set1_epi32(sc[2 * c]), s1 = _mm256_set1_epi32(sc[2 * c + 1]);
        if (c < 2) {
            is[2 * c] = _mm256_madd_epi16(p0, s0);
            is[2 * c + 1] = _mm256_madd_epi16(p1, s1);
        } else {
            is[2 * c - 4] = dpwssd(is[2 * c - 4], p0, s0);
            is[2 * c - 3] = dpwssd(is[2 * c - 3], p1, s1);
        }
    }
    *isv = _mm256_add_epi32(_mm256_add_epi32(is[0], is[1]), _mm256_add_epi32(is[2], is[3]));
    *corrv = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)),
                               loadu256(y->bsums));
}

/* WISP_GEMV_NR rows of Q4_K (sw bytes apart) against one Q8_K row:
 * s[r] for r < nr; fewer rows than WISP_GEMV_NR go to q4_K_one. */
static void x86_gemv_q4_K(int64_t n, const void *vw, size_t sw, int nr, const void *va, float *s)
{
    if (nr != WISP_GEMV_NR) {
        for (int r = 0; r < nr; r++)
            q4_K_one(n, (const char *)vw + (size_t)r * sw, va, 0, 1, s + r, 0);
        return;
    }
    _Static_assert(WISP_GEMV_NR == 4, "the lanes hold (acc, accm) of four rows");
    const wisp_block_q8_K *y = va;
    const char *w = vw;
    /* lanes 2r, 2r + 1: acc and accm of row r; the odd lanes' factors are
     * -dmin, the even ones' d */
    const __m256 neg_odd = _mm256_castsi256_ps(
        _mm256_setr_epi32(0, (int)0x80000000u, 0, (int)0x80000000u, 0, (int)0x80000000u, 0,
                          (int)0x80000000u));
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        __m256i p[8];
        uint32_t ddm[4];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            const wisp_block_q4_K *x = (const wisp_block_q4_K *)(w + (size_t)r * sw) + i;
            PREFETCH_SPAN(x, sizeof(*x));
            memcpy(&ddm[r], x, sizeof(uint32_t)); /* d, dmin */
            q4_K_block_sums(x, y + i, &p[2 * r], &p[2 * r + 1]);
        }
        const __m256 dv = _mm256_xor_ps(_mm256_cvtph_ps(loadu128(ddm)), neg_odd);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(y[i].d), dv),
                              _mm256_cvtepi32_ps(sum8x8(p, 0)), acc);
    }
    _Alignas(32) float out[8];
    _mm256_store_ps(out, acc);
    for (int r = 0; r < 4; r++)
        s[r] = out[2 * r] + out[2 * r + 1];
}

#endif
