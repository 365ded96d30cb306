/*
 * quants_x86.h - the 256-bit x86 kernels, shared by quants_avx2.c and
 * quants_avx512.c (private; include from those two files only).
 *
 * The two ISA files differ in one primitive: the unsigned x signed int8
 * dot of 32 bytes into 8 int32 sums is maddubs + madd on AVX2 and a single
 * vpdpbusd on AVX-512 VNNI (WISP_X86_VNNI). Everything else is written once
 * here and compiled twice, so a fix lands in both levels.
 *
 * Layout of the kernels:
 *  - 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): a per-type
 *    decoder turns one weight block into 32 int8 (signed, or unsigned with a
 *    minimum) and its scale; one templated loop pairs it with up to 4
 *    activation rows, so the decode is paid once per block for 4 tokens.
 *  - K-quants (Q2_K .. Q6_K): a per-type decoder expands a 256-element
 *    super-block into unsigned quants u[256], int16 scales per 16 elements
 *    and a correction folded through the Q8_K block sums (the weight
 *    minimum, or the offset that makes u signed: -4 for Q3_K, -32 for Q6_K):
 *      x = d * sc_j * u - c_j  =>  dot = yd * (d * sum_j sc_j <u,y>_j
 *                                              + cm * sum_j corr_j bsum_j)
 *    One shared loop then does the integer dots for every activation row.
 *  - F32 / F16 / BF16: float FMAs; F16 through F16C.
 *  - gemm kernels for batches (wisp_gemm_fn): register-blocked weight rows
 *    x tokens for Q4_0 / Q5_0 / Q8_0 (below), F16 / BF16 (quants_x86_f.h);
 *    the K-quants run their dot loop against 8 tokens.
 *  - one token (decode, a matrix-vector product that reads every weight
 *    byte once): every dot kernel prefetches its weight stream ahead, and
 *    Q4_0 / Q5_0 / Q8_0 (eight blocks at a time, unsigned weights), Q4_K
 *    and Q6_K (decoded in registers) have kernels of their own for nc = 1.
 *    They change only how the exact integer block sums are computed; the
 *    float operations and their order are those of the nc > 1 loops and
 *    of the gemm kernels, so a token gives the same bits alone or batched.
 * The kernels of repacked Q4_0 / Q8_0 rows are in quants_x86_rp.h.
 */
#ifndef WISP_QUANTS_X86_H
#define WISP_QUANTS_X86_H

#include <immintrin.h>
#include <string.h>

#include "common/fp16.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/repack.h"
#include "model/quant_blocks.h"

#define AI static inline __attribute__((always_inline))

AI float h2f(uint16_t h) { return _cvtsh_ss(h); }

AI float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI int hsum8i(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Sums of 4 products u8 x s8 into 8 int32 lanes, added to acc. */
AI __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s)
{
#if WISP_X86_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

AI __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
AI __m128i loadu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* ------------------------------------------------------------ activations */

/* roundf() semantics (half away from zero), exactly as the scalar quantizer. */
AI __m256 round_away(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_sub_ps(v, t);
    __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.f));
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.f), sign);
    __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), frac), _mm256_set1_ps(0.5f),
                               _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(big, one));
}

/* Quantizes 32 floats like the scalar Q8_0; returns the sum of the quants. */
AI int q8_block32(const float *x, int8_t *qs, uint16_t *dh, float *d_out)
{
    __m256 v[4], amax = _mm256_setzero_ps();
    _Pragma("GCC unroll 8")
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(_mm256_set1_ps(-0.f), v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    *dh = wisp_float_to_half(d);
    *d_out = d;
    __m256i q[4];
    _Pragma("GCC unroll 8")
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id))));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    /* int32 -> int8 with packs; packs interleave 128-bit lanes, undo it. */
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p);
    return hsum8i(sum);
}

static void x86_quantize_q8_0(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_0 *y = vy;
    float d;
    for (int64_t i = 0; i < n / 32; i++)
        q8_block32(x + 32 * i, y[i].qs, &y[i].d, &d);
}

static void x86_quantize_q8_1(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_1 *y = vy;
    float d;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = q8_block32(x + 32 * i, y[i].qs, &y[i].d, &d);
        y[i].s = wisp_float_to_half((float)sum * d);
    }
}

static void x86_quantize_q8_K(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        const float *xb = x + i * WISP_QK_K;
        /* The signed value of largest magnitude (first one on ties, as the
         * scalar loop): vector max of |x|, then a scalar search for it. */
        __m256 amax8 = _mm256_setzero_ps();
        _Pragma("GCC unroll 8")
        for (int k = 0; k < 32; k++)
            amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(_mm256_set1_ps(-0.f),
                                                          _mm256_loadu_ps(xb + 8 * k)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        float amax = _mm_cvtss_f32(m);
        if (amax == 0.f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float max = 0.f;
        for (int j = 0; j < WISP_QK_K; j++)
            if (xb[j] == amax || xb[j] == -amax) {
                max = xb[j];
                break;
            }
        const float iscale = -127.f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        _Pragma("GCC unroll 8")
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            _Pragma("GCC unroll 8")
            for (int l = 0; l < 4; l++) {
                __m256 v = _mm256_mul_ps(is, _mm256_loadu_ps(xb + 32 * k + 8 * l));
                q[l] = _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127));
            }
            __m256i p =
                _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * k), p);
            /* Block sums of 16: widen to int16 and add pairs down. */
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), p);
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 sums of 4 */
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            int16_t b0 = (int16_t)(_mm_extract_epi32(lo, 0) + _mm_extract_epi32(lo, 1) +
                                   _mm_extract_epi32(lo, 2) + _mm_extract_epi32(lo, 3));
            int16_t b1 = (int16_t)(_mm_extract_epi32(hi, 0) + _mm_extract_epi32(hi, 1) +
                                   _mm_extract_epi32(hi, 2) + _mm_extract_epi32(hi, 3));
            y[i].bsums[2 * k] = b0;
            y[i].bsums[2 * k + 1] = b1;
        }
        y[i].d = 1.f / iscale;
    }
}

static void x86_from_float_f16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = wisp_float_to_half(x[i]);
}

/* BF16 activations, 8 at a time in the scalar conversion's arithmetic
 * (common/fp16.h: round to nearest even on the bits, a NaN kept quiet), so
 * the bits are its bits. */
static void x86_from_float_bf16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    int64_t i = 0;
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i quiet = _mm256_set1_epi32(64);
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
        const __m256i hi = _mm256_srli_epi32(u, 16);
        const __m256i r =
            _mm256_srli_epi32(_mm256_add_epi32(u,
                                               _mm256_add_epi32(bias, _mm256_and_si256(hi, one))),
                              16);
        /* |u| as a signed int32 is never negative: a signed compare will do */
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
        const __m256i v = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet), nan);
        /* each 32-bit lane holds 0..0xffff: the unsigned pack is exact */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
        _mm_storeu_si128((__m128i *)(y + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++)
        y[i] = wisp_float_to_bf16(x[i]);
}

/* ------------------------------------------------------------ 32-blocks */

/* A decoded weight block: 32 quants and the block's scale (and minimum). */
typedef struct blk32 {
    __m256i q;
    float d, m;
} blk32;

/* Nibbles: low halves are elements 0..15, high halves 16..31. */
AI __m256i nibbles32(const uint8_t *qs)
{
    __m128i t = loadu128(qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* 0xFF in byte j where bit j of the 32-bit word is set. */
AI __m256i bits_to_bytes32(const uint8_t *p)
{
    uint32_t x32;
    memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

AI blk32 dec_q4_0(const void *p)
{
    const wisp_block_q4_0 *b = p;
    return (blk32){_mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8)), h2f(b->d), 0.f};
}
AI blk32 dec_q4_1(const void *p)
{
    const wisp_block_q4_1 *b = p;
    return (blk32){nibbles32(b->qs), h2f(b->d), h2f(b->m)};
}
AI blk32 dec_q5_0(const void *p)
{
    const wisp_block_q5_0 *b = p;
    /* q - 16 = nibble when the fifth bit is set, nibble | 0xF0 otherwise */
    __m256i hi = _mm256_andnot_si256(bits_to_bytes32(b->qh), _mm256_set1_epi8((char)0xF0));
    return (blk32){_mm256_or_si256(nibbles32(b->qs), hi), h2f(b->d), 0.f};
}
AI blk32 dec_q5_1(const void *p)
{
    const wisp_block_q5_1 *b = p;
    __m256i hi = _mm256_and_si256(bits_to_bytes32(b->qh), _mm256_set1_epi8(0x10));
    return (blk32){_mm256_or_si256(nibbles32(b->qs), hi), h2f(b->d), h2f(b->m)};
}
AI blk32 dec_q8_0(const void *p)
{
    const wisp_block_q8_0 *b = p;
    return (blk32){loadu256(b->qs), h2f(b->d), 0.f};
}

/* The table entry: nc as a compile-time constant in each inlined copy, so
 * the per-row accumulators live in registers; one token goes to `one`
 * (name##_nc, or a kernel of its own for decode, same signature). */
#define DEF_DOT_SWITCH(name, one)                                                          \
    static void x86_dot_##name(int64_t n, const void *w, const void *a, size_t sa, int nc, \
                               float *s, size_t ss)                                        \
    {                                                                                      \
        switch (nc) {                                                                      \
        case 4: name##_nc(n, w, a, sa, 4, s, ss); break;                                   \
        case 3: name##_nc(n, w, a, sa, 3, s, ss); break;                                   \
        case 2: name##_nc(n, w, a, sa, 2, s, ss); break;                                   \
        default: one(n, w, a, sa, 1, s, ss); break;                                        \
        }                                                                                  \
    }

/* One weight row of 32-blocks against NC activation rows. SIGNED: q is
 * signed (the sign moves onto the activation so the dot is u8 x s8);
 * otherwise q is unsigned and the minimum pairs with Q8_1's s = d*sum. */
#define DEF_DOT32(name, WB, AB, SIGNED)                                                       \
    AI void name##_nc(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s, \
                      size_t ss)                                                              \
    {                                                                                         \
        const char *w = vw;                                                                   \
        __m256 acc[WISP_DOT_NC_MAX];                                                          \
        float accm[WISP_DOT_NC_MAX];                                                          \
        _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < nc; c++) {                                                        \
            acc[c] = _mm256_setzero_ps();                                                     \
            accm[c] = 0.f;                                                                    \
        }                                                                                     \
        for (int64_t i = 0; i < n / 32; i++) {                                                \
            blk32 b = dec_##name(w + (size_t)i * sizeof(WB));                                 \
            __m256i u = SIGNED ? _mm256_sign_epi8(b.q, b.q) : b.q;                            \
            _Pragma("GCC unroll 8")                                                           \
            for (int c = 0; c < nc; c++) {                                                    \
                const AB *a = (const AB *)((const char *)va + (size_t)c * sa) + i;            \
                __m256i y = loadu256(a->qs);                                                  \
                if (SIGNED)                                                                   \
                    y = _mm256_sign_epi8(y, b.q);                                             \
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8(_mm256_setzero_si256(), u, y));        \
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(b.d * h2f(a->d)), p, acc[c]);         \
                if (!SIGNED)                                                                  \
                    accm[c] += b.m * h2f(((const wisp_block_q8_1 *)a)->s);                    \
            }                                                                                 \
        }                                                                                     \
        _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < nc; c++)                                                          \
            s[(size_t)c * ss] = hsum8(acc[c]) + accm[c];                                      \
    }                                                                                         \
    DEF_DOT_SWITCH(name, name##_nc)

DEF_DOT32(q4_1, wisp_block_q4_1, wisp_block_q8_1, 0)
DEF_DOT32(q5_1, wisp_block_q5_1, wisp_block_q8_1, 0)

/* Weight blocks decoded UNSIGNED (nibble, nibble + 16 * fifth bit, or
 * q + 128), for the one-token kernels and the gemm kernels below: the
 * offset comes off through the activations' block sums (cpu_types.h). */
AI __m256i udec_q4_0(const void *p) { return nibbles32(((const wisp_block_q4_0 *)p)->qs); }
AI __m256i udec_q5_0(const void *p)
{
    const wisp_block_q5_0 *b = p;
    return _mm256_or_si256(nibbles32(b->qs),
                           _mm256_and_si256(bits_to_bytes32(b->qh), _mm256_set1_epi8(0x10)));
}
AI __m256i udec_q8_0(const void *p)
{
    return _mm256_xor_si256(loadu256(((const wisp_block_q8_0 *)p)->qs),
                            _mm256_set1_epi8((char)0x80));
}
AI float udscale(const void *p) { return h2f(*(const uint16_t *)p); }

/* ------------------------------------------------------------ decode */

/* Software prefetch of the dot kernels' weight stream, PF_DIST bytes
 * ahead, into L2. A decode step reads each weight byte once; the
 * out-of-order window of a kernel that spends a dozen instructions per
 * 18-byte block covers only a few cache lines ahead, far too few to hide
 * DRAM latency. Measured on a 2-core Xeon VM, 1024 x 262144 Q4_0 from
 * DRAM, one thread: 6.8 GB/s without, 11 with (a plain read loop: 13-15);
 * prefetching into L1 instead got 9.7 (fill buffers), 2 to 16 KiB ahead
 * all did about as well. Rows are contiguous in a tensor, so running past
 * a row's end fetches the next row; past the tensor's end a prefetch is
 * merely wasted. */
#define PF_HINT _MM_HINT_T1
#define PF_DIST 4096
/* Prefetches the span [p, p + bytes) PF_DIST ahead, one line at a time. */
#define PREFETCH_SPAN(p, bytes)                      \
    _Pragma("GCC unroll 8")                          \
    for (int pf_ = 0; pf_ < (int)(bytes); pf_ += 64) \
    _mm_prefetch((const char *)(p) + PF_DIST + pf_, PF_HINT)

/* Eight int32 vectors -> one vector of their eight sums, in order: two
 * rounds of in-lane unpacks, then the 128-bit halves. The high halves of
 * the inputs may hold their sums times 1 << hi_shift (decoders that leave
 * the high nibbles in place), taken off once here, exactly. */
AI __m256i sum8x8(const __m256i p[8], int hi_shift)
{
    __m256i t[4];
    _Pragma("GCC unroll 8")
    for (int k = 0; k < 4; k++)
        t[k] = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2 * k], p[2 * k + 1]),
                                _mm256_unpackhi_epi32(p[2 * k], p[2 * k + 1]));
    const __m256i s0 =
        _mm256_add_epi32(_mm256_unpacklo_epi64(t[0], t[1]), _mm256_unpackhi_epi64(t[0], t[1]));
    const __m256i s1 =
        _mm256_add_epi32(_mm256_unpacklo_epi64(t[2], t[3]), _mm256_unpackhi_epi64(t[2], t[3]));
    const __m256i lo = _mm256_permute2x128_si256(s0, s1, 0x20),
                  hi = _mm256_permute2x128_si256(s0, s1, 0x31);
    return _mm256_add_epi32(lo, hi_shift ? _mm256_srai_epi32(hi, hi_shift) : hi);
}

/* The int32 dot vector of one weight block with one Q8_0 block (qs), for
 * sum8x8. UDOT_SHIFT_name: the weights are taken unsigned as q + (1 <<
 * UDOT_SHIFT), which comes off through the block sums of the activations
 * (0: signed, no offset). UDOT_HI_name: the hi_shift of sum8x8. With VNNI
 * the dot is exact int32, so the Q4_0 decoder leaves the high nibbles in
 * place (one AND, no shift). Without it maddubs saturates its int16 pairs
 * past 32767: nibbles are shifted down, and Q8_0 keeps its signed form
 * (the sign moved onto the activation). */
#if WISP_X86_VNNI
AI __m256i udot_q4_0(const void *p, const int8_t *a)
{
    const __m256i m =
        _mm256_set_epi64x((long long)0xF0F0F0F0F0F0F0F0ull, (long long)0xF0F0F0F0F0F0F0F0ull,
                          0x0F0F0F0F0F0F0F0F, 0x0F0F0F0F0F0F0F0F);
    const __m256i q = _mm256_broadcastsi128_si256(loadu128(((const wisp_block_q4_0 *)p)->qs));
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(q, m), loadu256(a));
}
#define UDOT_HI_q4_0 4
AI __m256i udot_q5_0(const void *p, const int8_t *a)
{
    const wisp_block_q5_0 *b = p;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m256i u = nibbles32(b->qs);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                               _mm256_mask_add_epi8(u, _cvtu32_mask32(qh), u,
                                                    _mm256_set1_epi8(0x10)),
                               loadu256(a));
}
#define UDOT_HI_q5_0 0
AI __m256i udot_q8_0(const void *p, const int8_t *a)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), udec_q8_0(p), loadu256(a));
}
#define UDOT_HI_q8_0    0
#define UDOT_SHIFT_q8_0 7
#else
AI __m256i udot_q4_0(const void *p, const int8_t *a)
{
    return dot_u8s8(_mm256_setzero_si256(), udec_q4_0(p), loadu256(a));
}
#define UDOT_HI_q4_0    0
AI __m256i udot_q5_0(const void *p, const int8_t *a)
{
    return dot_u8s8(_mm256_setzero_si256(), udec_q5_0(p), loadu256(a));
}
#define UDOT_HI_q5_0    0
AI __m256i udot_q8_0(const void *p, const int8_t *a)
{
    const __m256i q = loadu256(((const wisp_block_q8_0 *)p)->qs);
    return dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(q, q),
                    _mm256_sign_epi8(loadu256(a), q));
}
#define UDOT_HI_q8_0    0
#define UDOT_SHIFT_q8_0 0
#endif
#define UDOT_SHIFT_q4_0 3
#define UDOT_SHIFT_q5_0 4

/* The half-precision scales of eight consecutive blocks of BS bytes (the
 * scale first in each) as floats. */
AI __m256 scales8_scalar(const char *p, int bs)
{
    return _mm256_setr_ps(udscale(p), udscale(p + bs), udscale(p + 2 * bs), udscale(p + 3 * bs),
                          udscale(p + 4 * bs), udscale(p + 5 * bs), udscale(p + 6 * bs),
                          udscale(p + 7 * bs));
}
#if WISP_X86_VNNI
/* Two-table word permutes of 64 bytes (ymm only: a 512-bit instruction in
 * the loop would take port 1 away from the vector instructions on Intel
 * cores), four blocks at a time: the tables at p and p + 32 when the four
 * scales lie within 64 bytes (Q4_0), else at p and p + 2 blocks (Q5_0). */
AI __m128i halves4(const char *p, int bs)
{
    const int near = 3 * bs + 2 <= 64;
    const __m256i idx = _mm256_castsi128_si256(
        near ? _mm_setr_epi16(0, (short)(bs / 2), (short)bs, (short)(3 * bs / 2), 0, 0, 0, 0)
             : _mm_setr_epi16(0, (short)(bs / 2), 16, (short)(16 + bs / 2), 0, 0, 0, 0));
    return _mm256_castsi256_si128(
        _mm256_permutex2var_epi16(loadu256(p), idx, loadu256(p + (near ? 32 : 2 * bs))));
}
AI __m256 scales8(const char *p, int bs)
{
    if (bs + 2 > 32) /* Q8_0: bound by memory, not by these loads */
        return scales8_scalar(p, bs);
    return _mm256_cvtph_ps(_mm_unpacklo_epi64(halves4(p, bs), halves4(p + 4 * bs, bs)));
}
#else
AI __m256 scales8(const char *p, int bs) { return scales8_scalar(p, bs); }
#endif

/* One weight row against one token, eight blocks at a time: the integer
 * block sums come from sum8x8, and the float work is the 4-block groups'
 * of DEF_DOT32S below, lane for lane (dw * da, then one FMA per group into
 * the same accumulator), so decode gives its bits. Returns the blocks
 * done, a multiple of 8. */
#define DEF_DOT8(name, WB)                                                                       \
    AI int64_t name##_dot8(int64_t n, const char *w, const char *row, __m128 *acc)               \
    {                                                                                            \
        const int64_t nb = n / 32;                                                               \
        const float *da = (const float *)(row + wisp_cpu_act_scales_offset(n));                  \
        const int32_t *za = (const int32_t *)(row + wisp_cpu_act_sums_offset(n));                \
        const wisp_block_q8_0 *a = (const wisp_block_q8_0 *)row;                                 \
        __m128 ac = *acc;                                                                        \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= nb; i += 8) {                                                            \
            const char *wb = w + (size_t)i * sizeof(WB);                                         \
            PREFETCH_SPAN(wb, 8 * sizeof(WB));                                                   \
            __m256i p[8];                                                                        \
            _Pragma("GCC unroll 8")                                                              \
            for (int k = 0; k < 8; k++)                                                          \
                p[k] = udot_##name(wb + k * sizeof(WB), a[i + k].qs);                            \
            __m256i isum = sum8x8(p, UDOT_HI_##name);                                            \
            if (UDOT_SHIFT_##name)                                                               \
                isum = _mm256_sub_epi32(isum,                                                    \
                                        _mm256_slli_epi32(loadu256(za + i), UDOT_SHIFT_##name)); \
            const __m256 dd =                                                                    \
                _mm256_mul_ps(scales8(wb, (int)sizeof(WB)), _mm256_loadu_ps(da + i));            \
            const __m256 f = _mm256_cvtepi32_ps(isum);                                           \
            ac = _mm_fmadd_ps(_mm256_castps256_ps128(dd), _mm256_castps256_ps128(f), ac);        \
            ac = _mm_fmadd_ps(_mm256_extractf128_ps(dd, 1), _mm256_extractf128_ps(f, 1), ac);    \
        }                                                                                        \
        *acc = ac;                                                                               \
        return i;                                                                                \
    }

DEF_DOT8(q4_0, wisp_block_q4_0)
DEF_DOT8(q5_0, wisp_block_q5_0)
DEF_DOT8(q8_0, wisp_block_q8_0)

/* Signed weights x Q8_0, four blocks at a time: the four blocks' int32 dot
 * vectors are reduced together with two rounds of hadd into one vector of
 * four block sums, which is scaled by four weight scales times four
 * activation scales (read as floats from the row's scale copy, see
 * cpu_types.h) in one multiply and one FMA. Per block and token that leaves
 * a load, a sign and a dot; the per-block float work of DEF_DOT32 is what
 * limited prefill. */
#define DEF_DOT32S(name, WB)                                                                     \
    AI void name##_nc(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s,    \
                      size_t ss)                                                                 \
    {                                                                                            \
        const char *w = vw;                                                                      \
        const int64_t nb = n / 32;                                                               \
        const size_t soff = wisp_cpu_act_scales_offset(n);                                       \
        __m128 acc[WISP_DOT_NC_MAX];                                                             \
        float tail[WISP_DOT_NC_MAX];                                                             \
        _Pragma("GCC unroll 8")                                                                  \
        for (int c = 0; c < nc; c++) {                                                           \
            acc[c] = _mm_setzero_ps();                                                           \
            tail[c] = 0.f;                                                                       \
        }                                                                                        \
        int64_t i = nc == 1 ? name##_dot8(n, w, va, &acc[0]) : 0;                                \
        for (; i + 4 <= nb; i += 4) {                                                            \
            PREFETCH_SPAN(w + (size_t)i * sizeof(WB), 4 * sizeof(WB));                           \
            blk32 b0 = dec_##name(w + (size_t)i * sizeof(WB));                                   \
            blk32 b1 = dec_##name(w + (size_t)(i + 1) * sizeof(WB));                             \
            blk32 b2 = dec_##name(w + (size_t)(i + 2) * sizeof(WB));                             \
            blk32 b3 = dec_##name(w + (size_t)(i + 3) * sizeof(WB));                             \
            const __m128 dw = _mm_setr_ps(b0.d, b1.d, b2.d, b3.d);                               \
            const __m256i u0 = _mm256_sign_epi8(b0.q, b0.q), u1 = _mm256_sign_epi8(b1.q, b1.q);  \
            const __m256i u2 = _mm256_sign_epi8(b2.q, b2.q), u3 = _mm256_sign_epi8(b3.q, b3.q);  \
            _Pragma("GCC unroll 8")                                                              \
            for (int c = 0; c < nc; c++) {                                                       \
                const char *row = (const char *)va + (size_t)c * sa;                             \
                const wisp_block_q8_0 *a = (const wisp_block_q8_0 *)row + i;                     \
                const __m256i z = _mm256_setzero_si256();                                        \
                __m256i p0 = dot_u8s8(z, u0, _mm256_sign_epi8(loadu256(a[0].qs), b0.q));         \
                __m256i p1 = dot_u8s8(z, u1, _mm256_sign_epi8(loadu256(a[1].qs), b1.q));         \
                __m256i p2 = dot_u8s8(z, u2, _mm256_sign_epi8(loadu256(a[2].qs), b2.q));         \
                __m256i p3 = dot_u8s8(z, u3, _mm256_sign_epi8(loadu256(a[3].qs), b3.q));         \
                __m256i h =                                                                      \
                    _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));     \
                __m128i sum =                                                                    \
                    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));    \
                __m128 da = _mm_loadu_ps((const float *)(row + soff) + i);                       \
                acc[c] = _mm_fmadd_ps(_mm_mul_ps(dw, da), _mm_cvtepi32_ps(sum), acc[c]);         \
            }                                                                                    \
        }                                                                                        \
        for (; i < nb; i++) {                                                                    \
            blk32 b = dec_##name(w + (size_t)i * sizeof(WB));                                    \
            __m256i u = _mm256_sign_epi8(b.q, b.q);                                              \
            for (int c = 0; c < nc; c++) {                                                       \
                const char *row = (const char *)va + (size_t)c * sa;                             \
                const wisp_block_q8_0 *a = (const wisp_block_q8_0 *)row + i;                     \
                __m256i p =                                                                      \
                    dot_u8s8(_mm256_setzero_si256(), u, _mm256_sign_epi8(loadu256(a->qs), b.q)); \
                tail[c] += b.d * ((const float *)(row + soff))[i] * (float)hsum8i(p);            \
            }                                                                                    \
        }                                                                                        \
        for (int c = 0; c < nc; c++) {                                                           \
            __m128 v = acc[c];                                                                   \
            v = _mm_add_ps(v, _mm_movehl_ps(v, v));                                              \
            v = _mm_add_ss(v, _mm_movehdup_ps(v));                                               \
            s[(size_t)c * ss] = _mm_cvtss_f32(v) + tail[c];                                      \
        }                                                                                        \
    }                                                                                            \
    DEF_DOT_SWITCH(name, name##_nc)

DEF_DOT32S(q4_0, wisp_block_q4_0)
DEF_DOT32S(q5_0, wisp_block_q5_0)
DEF_DOT32S(q8_0, wisp_block_q8_0)

/* ------------------------------------------------------------ 32-block gemm */

/* Register-blocked Q4_0 / Q5_0 / Q8_0 x Q8_0 for batches (wisp_gemm_fn).
 * The weights are decoded UNSIGNED (nibble, nibble + 16 * fifth bit, or
 * q + 128) and multiplied straight into the signed activation quants, so a
 * block pair costs a single u8 x s8 dot and no sign fix-ups; the offset
 * comes off once per block and token through the activation row's int32
 * block sums (cpu_types.h). Four blocks of one weight row are decoded into
 * registers and used for R weight rows x C tokens: two tokens at a time,
 * the four blocks' int32 dots of each token (two dots per block pair, see
 * dot4_pairs) are reduced by unpacks into one vector of 2 x 4 block sums
 * (hadd does the same in fewer instructions but is far slower on Zen 4),
 * scaled by the weight and activation block scales, accumulated in float. Q8_0 (q + 128 up to 255) needs the
 * exact int32 dot of VNNI: maddubs would saturate its int16 pairs. */

/* Two blocks decoded unsigned in the activations' pair layout
 * (cpu_types.h): *x = elements 0..15 of both, *y = elements 16..31. */
AI __m256i pair128(const void *lo, const void *hi)
{
    return _mm256_set_m128i(loadu128(hi), loadu128(lo));
}
AI void nibbles2(const uint8_t *q0, const uint8_t *q1, __m256i *x, __m256i *y)
{
    const __m256i t = pair128(q0, q1);
    *x = _mm256_and_si256(t, _mm256_set1_epi8(0x0F));
    *y = _mm256_and_si256(_mm256_srli_epi16(t, 4), _mm256_set1_epi8(0x0F));
}
AI void udec2_q4_0(const void *p0, const void *p1, __m256i *x, __m256i *y)
{
    nibbles2(((const wisp_block_q4_0 *)p0)->qs, ((const wisp_block_q4_0 *)p1)->qs, x, y);
}
AI void udec2_q5_0(const void *p0, const void *p1, __m256i *x, __m256i *y)
{
    nibbles2(((const wisp_block_q5_0 *)p0)->qs, ((const wisp_block_q5_0 *)p1)->qs, x, y);
    const __m256i h0 = bits_to_bytes32(((const wisp_block_q5_0 *)p0)->qh);
    const __m256i h1 = bits_to_bytes32(((const wisp_block_q5_0 *)p1)->qh);
    const __m256i b16 = _mm256_set1_epi8(0x10);
    *x = _mm256_or_si256(*x, _mm256_and_si256(_mm256_permute2x128_si256(h0, h1, 0x20), b16));
    *y = _mm256_or_si256(*y, _mm256_and_si256(_mm256_permute2x128_si256(h0, h1, 0x31), b16));
}
AI void udec2_q8_0(const void *p0, const void *p1, __m256i *x, __m256i *y)
{
    const int8_t *q0 = ((const wisp_block_q8_0 *)p0)->qs, *q1 = ((const wisp_block_q8_0 *)p1)->qs;
    *x = _mm256_xor_si256(pair128(q0, q1), _mm256_set1_epi8((char)0x80));
    *y = _mm256_xor_si256(pair128(q0 + 16, q1 + 16), _mm256_set1_epi8((char)0x80));
}

/* One token's four blocks (two pairs) against decoded weights u[4] (x, y
 * of pair 0, then of pair 1), reduced to lanes [b0 b2 b0 b2 | b1 b3 b1 b3]
 * of half sums: the caller adds the other token's in the same step. */
AI __m256i dot4_pairs(const __m256i u[4], const char *pa)
{
    const __m256i z = _mm256_setzero_si256();
    __m256i q01 = dot_u8s8(dot_u8s8(z, u[0], loadu256(pa)), u[1], loadu256(pa + 32));
    __m256i q23 = dot_u8s8(dot_u8s8(z, u[2], loadu256(pa + 64)), u[3], loadu256(pa + 96));
    return _mm256_add_epi32(_mm256_unpacklo_epi32(q01, q23), _mm256_unpackhi_epi32(q01, q23));
}

#if WISP_X86_VNNI
/* The AVX-512 level: a block pair in one zmm ([x | y] of udec2, the
 * activations' 64-byte pair layout), one dpbusd per pair and token, and
 * the in-lane reductions of dot4_pairs and of the two-token step done on
 * the zmm before its two halves are added: the same exact int32 sums in
 * half the dot instructions. */
AI __m512i pairz(__m256i x, __m256i y)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(x), y, 1);
}
AI void udec4z_q4_0(const char *wb, size_t bs, __m512i u[2])
{
    _Pragma("GCC unroll 2")
    for (int k = 0; k < 2; k++) {
        const __m256i t = pair128(((const wisp_block_q4_0 *)(wb + 2 * k * bs))->qs,
                                  ((const wisp_block_q4_0 *)(wb + (2 * k + 1) * bs))->qs);
        u[k] = _mm512_and_si512(pairz(t, _mm256_srli_epi16(t, 4)), _mm512_set1_epi8(0x0F));
    }
}
AI void udec4z_q5_0(const char *wb, size_t bs, __m512i u[2])
{
    __m256i x, y;
    udec2_q5_0(wb, wb + bs, &x, &y);
    u[0] = pairz(x, y);
    udec2_q5_0(wb + 2 * bs, wb + 3 * bs, &x, &y);
    u[1] = pairz(x, y);
}
AI void udec4z_q8_0(const char *wb, size_t bs, __m512i u[2])
{
    _Pragma("GCC unroll 2")
    for (int k = 0; k < 2; k++) {
        const __m512i t = pairz(loadu256(((const wisp_block_q8_0 *)(wb + 2 * k * bs))->qs),
                                loadu256(((const wisp_block_q8_0 *)(wb + (2 * k + 1) * bs))->qs));
        /* [b lo, b hi, b+1 lo, b+1 hi] -> [b lo, b+1 lo, b hi, b+1 hi] */
        u[k] = _mm512_xor_si512(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 2, 0)),
                                _mm512_set1_epi8((char)0x80));
    }
}
AI __m512i dot4z(const __m512i u[2], const char *pa)
{
    const __m512i z = _mm512_setzero_si512();
    const __m512i q01 = _mm512_dpbusd_epi32(z, u[0], _mm512_loadu_si512(pa));
    const __m512i q23 = _mm512_dpbusd_epi32(z, u[1], _mm512_loadu_si512(pa + 64));
    return _mm512_add_epi32(_mm512_unpacklo_epi32(q01, q23), _mm512_unpackhi_epi32(q01, q23));
}
/* Two tokens' lanes [x0 x2 y0 y2 | x1 x3 y1 y3] of block sums, as the
 * 256-bit step below gives them. */
AI __m256i sum2tok(const __m512i u[2], const char *px, const char *py, int two)
{
    const __m512i hx = dot4z(u, px), hy = two ? dot4z(u, py) : hx;
    const __m512i s =
        _mm512_add_epi32(_mm512_unpacklo_epi64(hx, hy), _mm512_unpackhi_epi64(hx, hy));
    return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}
#define GEMM32_DECODE(name, WB, wb) \
    __m512i u[2];                   \
    udec4z_##name(wb, sizeof(WB), u);
#else
#define GEMM32_DECODE(name, WB, wb)                  \
    __m256i u[4];                                    \
    udec2_##name(wb, wb + sizeof(WB), &u[0], &u[1]); \
    udec2_##name(wb + 2 * sizeof(WB), wb + 3 * sizeof(WB), &u[2], &u[3]);
AI __m256i sum2tok(const __m256i u[4], const char *px, const char *py, int two)
{
    const __m256i hx = dot4_pairs(u, px), hy = two ? dot4_pairs(u, py) : hx;
    return _mm256_add_epi32(_mm256_unpacklo_epi64(hx, hy), _mm256_unpackhi_epi64(hx, hy));
}
#endif
#define GEMM32_SUM(p)                                                                      \
    sum2tok(u, row[2 * p] + poff + (size_t)i * 32, row[2 * p + 1] + poff + (size_t)i * 32, \
            2 * p + 1 < C)

/* R weight rows x C tokens; both compile-time constants in each copy. */
#define DEF_GEMM32(name, WB, SHIFT)                                                                 \
    AI void name##_gemm_rc(int64_t n, const char *w, size_t sw, const char *a, size_t sa, int R,    \
                           int C, float *s, size_t ss)                                              \
    {                                                                                               \
        const int64_t nb = n / 32;                                                                  \
        const size_t soff = wisp_cpu_act_scales_offset(n), zoff = wisp_cpu_act_sums_offset(n);      \
        const size_t poff = wisp_cpu_act_pairs_offset(n);                                           \
        const int P = (C + 1) / 2;                                                                  \
        __m256 acc[WISP_GEMM_NR][WISP_GEMM_NC / 2];                                                 \
        float tail[WISP_GEMM_NR][WISP_GEMM_NC];                                                     \
        const char *row[WISP_GEMM_NC];                                                              \
        _Pragma("GCC unroll 8")                                                                     \
        for (int c = 0; c < WISP_GEMM_NC; c++)                                                      \
            row[c] = a + (size_t)(c < C ? c : C - 1) * sa;                                          \
        _Pragma("GCC unroll 8")                                                                     \
        for (int r = 0; r < R; r++) {                                                               \
            _Pragma("GCC unroll 8")                                                                 \
            for (int p = 0; p < P; p++)                                                             \
                acc[r][p] = _mm256_setzero_ps();                                                    \
            _Pragma("GCC unroll 8")                                                                 \
            for (int c = 0; c < C; c++)                                                             \
                tail[r][c] = 0.f;                                                                   \
        }                                                                                           \
        int64_t i = 0;                                                                              \
        for (; i + 4 <= nb; i += 4) {                                                               \
            __m256 da[WISP_GEMM_NC / 2];                                                            \
            __m256i az[WISP_GEMM_NC / 2];                                                           \
            /* lanes [x0 x2 y0 y2 | x1 x3 y1 y3]: blocks of tokens x, y */                          \
            const __m256i perm_a = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);                       \
            _Pragma("GCC unroll 8")                                                                 \
            for (int p = 0; p < P; p++) {                                                           \
                const char *r0 = row[2 * p], *r1 = row[2 * p + 1];                                  \
                da[p] =                                                                             \
                    _mm256_permutevar8x32_ps(_mm256_set_m128(_mm_loadu_ps(                          \
                                                                 (const float *)(r1 + soff) + i),   \
                                                             _mm_loadu_ps(                          \
                                                                 (const float *)(r0 + soff) + i)),  \
                                             perm_a);                                               \
                az[p] = _mm256_permutevar8x32_epi32(                                                \
                    _mm256_slli_epi32(_mm256_set_m128i(loadu128((const int32_t *)(r1 + zoff) + i),  \
                                                       loadu128((const int32_t *)(r0 + zoff) + i)), \
                                      SHIFT),                                                       \
                    perm_a);                                                                        \
            }                                                                                       \
            _Pragma("GCC unroll 8")                                                                 \
            for (int r = 0; r < R; r++) {                                                           \
                const char *wb = w + (size_t)r * sw + (size_t)i * sizeof(WB);                       \
                GEMM32_DECODE(name, WB, wb)                                                         \
                const __m128 dw4 =                                                                  \
                    _mm_setr_ps(udscale(wb), udscale(wb + sizeof(WB)),                              \
                                udscale(wb + 2 * sizeof(WB)), udscale(wb + 3 * sizeof(WB)));        \
                const __m256 dw =                                                                   \
                    _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dw4),                           \
                                             _mm256_setr_epi32(0, 2, 0, 2, 1, 3, 1, 3));            \
                _Pragma("GCC unroll 8")                                                             \
                for (int p = 0; p < P; p++) {                                                       \
                    const __m256i sum = _mm256_sub_epi32(GEMM32_SUM(p), az[p]);                     \
                    acc[r][p] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da[p]), _mm256_cvtepi32_ps(sum),  \
                                                acc[r][p]);                                         \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        for (; i < nb; i++) {                                                                       \
            _Pragma("GCC unroll 8")                                                                 \
            for (int r = 0; r < R; r++) {                                                           \
                const char *wb = w + (size_t)r * sw + (size_t)i * sizeof(WB);                       \
                const __m256i u = udec_##name(wb);                                                  \
                const float dw = udscale(wb);                                                       \
                _Pragma("GCC unroll 8")                                                             \
                for (int c = 0; c < C; c++) {                                                       \
                    const wisp_block_q8_0 *ab = (const wisp_block_q8_0 *)row[c] + i;                \
                    int isum = hsum8i(dot_u8s8(_mm256_setzero_si256(), u, loadu256(ab->qs))) -      \
                               ((const int32_t *)(row[c] + zoff))[i] * (1 << SHIFT);                \
                    tail[r][c] += dw * ((const float *)(row[c] + soff))[i] * (float)isum;           \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        _Pragma("GCC unroll 8")                                                                     \
        for (int r = 0; r < R; r++)                                                                 \
            _Pragma("GCC unroll 8")                                                                 \
        for (int c = 0; c < C; c++) {                                                               \
            /* lanes [x0 x2 y0 y2 | x1 x3 y1 y3], summed as (b0 + b2) + (b1 + b3): the \
                 * order of the dot kernel, so a batch gives the same bits as one token */            \
            __m256 v = acc[r][c / 2];                                                               \
            __m128 h = _mm_hadd_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));         \
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                                 \
            s[(size_t)c * ss + (size_t)r] =                                                         \
                (c % 2 ? _mm_cvtss_f32(_mm_movehdup_ps(h)) : _mm_cvtss_f32(h)) + tail[r][c];        \
        }                                                                                           \
    }                                                                                               \
    static void x86_gemm_##name(int64_t n, const void *w, size_t sw, int nr, const void *a,         \
                                size_t sa, int nc, float *s, size_t ss)                             \
    {                                                                                               \
        GEMM_SWITCH(name##_gemm_rc, n, (const char *)w, sw, nr, (const char *)a, sa, nc, s, ss)     \
    }

/* Dispatch of nr x nc to the copies with constant R and C. */
#define GEMM_C(f, n, w, sw, R, a, sa, nc, s, ss)     \
    switch (nc) {                                    \
    case 8: f(n, w, sw, a, sa, R, 8, s, ss); break;  \
    case 7: f(n, w, sw, a, sa, R, 7, s, ss); break;  \
    case 6: f(n, w, sw, a, sa, R, 6, s, ss); break;  \
    case 5: f(n, w, sw, a, sa, R, 5, s, ss); break;  \
    case 4: f(n, w, sw, a, sa, R, 4, s, ss); break;  \
    case 3: f(n, w, sw, a, sa, R, 3, s, ss); break;  \
    case 2: f(n, w, sw, a, sa, R, 2, s, ss); break;  \
    default: f(n, w, sw, a, sa, R, 1, s, ss); break; \
    }
#define GEMM_SWITCH(f, n, w, sw, nr, a, sa, nc, s, ss)       \
    switch (nr) {                                            \
    case 4: GEMM_C(f, n, w, sw, 4, a, sa, nc, s, ss) break;  \
    case 3: GEMM_C(f, n, w, sw, 3, a, sa, nc, s, ss) break;  \
    case 2: GEMM_C(f, n, w, sw, 2, a, sa, nc, s, ss) break;  \
    default: GEMM_C(f, n, w, sw, 1, a, sa, nc, s, ss) break; \
    }

_Static_assert(WISP_GEMM_NR == 4 && WISP_GEMM_NC == 8, "GEMM_SWITCH covers 4 x 8");

DEF_GEMM32(q4_0, wisp_block_q4_0, 3)
DEF_GEMM32(q5_0, wisp_block_q5_0, 4)
#if WISP_X86_VNNI
DEF_GEMM32(q8_0, wisp_block_q8_0, 7)
#endif

#endif
