/*
 * quants_x86_f.h - F32, F16 and BF16 weight-row kernels, shared by
 * quants_avx2.c and quants_avx512.c (include after quants_x86.h).
 *
 * Weights and activations share the weight's type (F16 x F16 through F16C,
 * BF16 x BF16 by shifting into float), as ggml does. Each weight vector is
 * converted once and used for up to four activation rows; two accumulators
 * per row hide the FMA latency.
 */
#ifndef WISP_QUANTS_X86_F_H
#define WISP_QUANTS_X86_F_H

AI __m256 load_f32(const void *p, int64_t i) { return _mm256_loadu_ps((const float *)p + i); }
AI __m256 load_f16(const void *p, int64_t i)
{
    return _mm256_cvtph_ps(loadu128((const uint16_t *)p + i));
}
AI __m256 load_bf16(const void *p, int64_t i)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128((const uint16_t *)p + i)), 16));
}
AI float get_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
AI float get_f16(const void *p, int64_t i) { return h2f(((const uint16_t *)p)[i]); }
AI float get_bf16(const void *p, int64_t i) { return wisp_bf16_to_float(((const uint16_t *)p)[i]); }

#define DEF_DOTF(name, ESZ)                                                                  \
    AI void name##_nc(int64_t n, const void *w, const void *va, size_t sa, int nc, float *s, \
                      size_t ss)                                                             \
    {                                                                                        \
        __m256 acc0[WISP_DOT_NC_MAX], acc1[WISP_DOT_NC_MAX];                                 \
        _Pragma("GCC unroll 8")                                                              \
        for (int c = 0; c < nc; c++)                                                         \
            acc0[c] = acc1[c] = _mm256_setzero_ps();                                         \
        int64_t i = 0;                                                                       \
        for (; i + 16 <= n; i += 16) {                                                       \
            PREFETCH_SPAN((const char *)w + i * ESZ, 16 * ESZ);                              \
            __m256 w0 = load_##name(w, i), w1 = load_##name(w, i + 8);                       \
            _Pragma("GCC unroll 8")                                                          \
            for (int c = 0; c < nc; c++) {                                                   \
                const char *a = (const char *)va + (size_t)c * sa;                           \
                acc0[c] = _mm256_fmadd_ps(w0, load_##name(a, i), acc0[c]);                   \
                acc1[c] = _mm256_fmadd_ps(w1, load_##name(a, i + 8), acc1[c]);               \
            }                                                                                \
        }                                                                                    \
        _Pragma("GCC unroll 8")                                                              \
        for (int c = 0; c < nc; c++) {                                                       \
            const char *a = (const char *)va + (size_t)c * sa;                               \
            float t = hsum8(_mm256_add_ps(acc0[c], acc1[c]));                                \
            for (int64_t j = i; j < n; j++)                                                  \
                t += get_##name(w, j) * get_##name(a, j);                                    \
            s[(size_t)c * ss] = t;                                                           \
        }                                                                                    \
    }                                                                                        \
    DEF_DOT_SWITCH(name, name##_nc)

DEF_DOTF(f32, 4)
DEF_DOTF(f16, 2)
DEF_DOTF(bf16, 2)

/* Batches: FG_R weight rows x FG_C tokens, so a converted weight vector
 * serves FG_C tokens and a converted activation vector FG_R rows from
 * registers (the dot above converts every activation vector once per
 * row). Each pair keeps the dot's two accumulators (even and odd 8-element
 * chunks) and its final order, so a batch gives the same bits as one token
 * at a time; 2 x FG_R x FG_C accumulators are also enough independent FMA
 * chains to hide their latency. */
#define FG_R 4
#ifndef FG_C
#define FG_C 3
#endif
#if !WISP_X86_VNNI
/* Rows of a register tile at this level: a call's four rows go two at a
 * time, so that 2 x 2 x FG_C accumulators, the two rows' weights and one
 * activation vector fit the 16 registers (four rows x two tokens needed
 * 21 and kept accumulators on the stack). */
#define FG_RT 2
#define DEF_GEMMF(name)                                                                          \
    AI void name##_gemm_rc(int64_t n, const char *w, size_t sw, const char *a, size_t sa, int R, \
                           int C, float *s, size_t ss, const int PF)                             \
    {                                                                                            \
        __m256 acc[2][FG_RT][FG_C];                                                              \
        _Pragma("GCC unroll 8")                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            _Pragma("GCC unroll 8")                                                              \
        for (int c = 0; c < C; c++)                                                              \
            acc[0][r][c] = acc[1][r][c] = _mm256_setzero_ps();                                   \
        int64_t i = 0;                                                                           \
        for (; i + 16 <= n; i += 16) {                                                           \
            if (PF && !(i & 16))                                                                 \
                _Pragma("GCC unroll 8")                                                          \
            for (int r = 0; r < R; r++)                                                          \
                _mm_prefetch(w + (size_t)(r + FG_R) * sw + i * 2, PF_HINT);                      \
            _Pragma("GCC unroll 8")                                                              \
            for (int h = 0; h < 2; h++) {                                                        \
                __m256 wv[FG_RT];                                                                \
                _Pragma("GCC unroll 8")                                                          \
                for (int r = 0; r < R; r++)                                                      \
                    wv[r] = load_##name(w + (size_t)r * sw, i + 8 * h);                          \
                _Pragma("GCC unroll 8")                                                          \
                for (int c = 0; c < C; c++) {                                                    \
                    const __m256 av = load_##name(a + (size_t)c * sa, i + 8 * h);                \
                    _Pragma("GCC unroll 8")                                                      \
                    for (int r = 0; r < R; r++)                                                  \
                        acc[h][r][c] = _mm256_fmadd_ps(wv[r], av, acc[h][r][c]);                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        _Pragma("GCC unroll 8")                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            _Pragma("GCC unroll 8")                                                              \
        for (int c = 0; c < C; c++) {                                                            \
            float t = hsum8(_mm256_add_ps(acc[0][r][c], acc[1][r][c]));                          \
            for (int64_t j = i; j < n; j++)                                                      \
                t += get_##name(w + (size_t)r * sw, j) * get_##name(a + (size_t)c * sa, j);      \
            s[(size_t)c * ss + (size_t)r] = t;                                                   \
        }                                                                                        \
    }                                                                                            \
    static void x86_gemm_##name(int64_t n, const void *vw, size_t sw, int nr, const void *va,    \
                                size_t sa, int nc, float *s, size_t ss)                          \
    {                                                                                            \
        for (int r0 = 0; r0 < nr; r0 += FG_RT) {                                                 \
            const char *w = (const char *)vw + (size_t)r0 * sw;                                  \
            const int nrr = nr - r0 < FG_RT ? nr - r0 : FG_RT;                                   \
            for (int c0 = 0; c0 < nc; c0 += FG_C) {                                              \
                const char *a = (const char *)va + (size_t)c0 * sa;                              \
                int ncc = nc - c0 < FG_C ? nc - c0 : FG_C;                                       \
                float *o = s + (size_t)c0 * ss + r0;                                             \
                if (c0 == 0 && nr == FG_R) {                                                     \
                    switch (ncc) {                                                               \
                        GEMMF_PF_CASES(name)                                                     \
                    default: break;                                                              \
                    }                                                                            \
                    continue;                                                                    \
                }                                                                                \
                switch (nrr * 8 + ncc) {                                                         \
                    GEMMF_CASES(name, 2)                                                         \
                    GEMMF_CASES(name, 1)                                                         \
                default: break;                                                                  \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }
#endif
/* The first token chunk over four rows also prefetches the next four
 * rows, which the next call takes: a few tokens' product streams its
 * weights from memory once, and the hardware's prefetchers did not keep
 * four row streams ahead (AVX-512 level, 1024 x 65536 F16 from DRAM, 16
 * tokens, 2 threads: 189 GFLOP/s without, 306 with, 339 in cache). */
#define GEMMF_CASE(name, K, R, C, PF)                     \
    case K:                                               \
        name##_gemm_rc(n, w, sw, a, sa, R, C, o, ss, PF); \
        break;
#if FG_C >= 4
#define GEMMF_C4(name, R) GEMMF_CASE(name, R * 8 + 4, R, 4, 0)
#define GEMMF_PF_C4(name) GEMMF_CASE(name, 4, FG_RT, 4, 1)
#else
#define GEMMF_C4(name, R)
#define GEMMF_PF_C4(name)
#endif
#if FG_C >= 3
#define GEMMF_C3(name, R) GEMMF_CASE(name, R * 8 + 3, R, 3, 0)
#define GEMMF_PF_C3(name) GEMMF_CASE(name, 3, FG_RT, 3, 1)
#else
#define GEMMF_C3(name, R)
#define GEMMF_PF_C3(name)
#endif
#define GEMMF_CASES(name, R)             \
    GEMMF_C4(name, R)                    \
    GEMMF_C3(name, R)                    \
    GEMMF_CASE(name, R * 8 + 2, R, 2, 0) \
    GEMMF_CASE(name, R * 8 + 1, R, 1, 0)
#define GEMMF_PF_CASES(name)         \
    GEMMF_PF_C4(name)                \
    GEMMF_PF_C3(name)                \
    GEMMF_CASE(name, 2, FG_RT, 2, 1) \
    GEMMF_CASE(name, 1, FG_RT, 1, 1)

_Static_assert(FG_C >= 2 && FG_C <= 4, "GEMMF_CASES covers 1..4 tokens");
_Static_assert(FG_R == WISP_GEMM_NR, "GEMMF_CASES covers rows 1..4");

#if WISP_X86_VNNI
/* The AVX-512 level: one 512-bit FMA per 16 elements does, in its two
 * halves, exactly the dot's even-chunk and odd-chunk FMAs (lanes 0..7 are
 * acc0's, 8..15 acc1's), so the bits stay those of the dot while each
 * instruction does twice the work; with 32 registers a tile of 4 rows x
 * FZ_C tokens keeps 4 x FZ_C accumulators, the rows' converted weights and
 * one activation vector in registers. */
#define FZ_C 6
AI __m512 load16_f16(const void *p, int64_t i)
{
    return _mm512_cvtph_ps(loadu256((const uint16_t *)p + i));
}
AI __m512 load16_bf16(const void *p, int64_t i)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(loadu256((const uint16_t *)p + i)), 16));
}
#define DEF_GEMMF(name)                                                                           \
    AI void name##_gemm_rc(int64_t n, const char *w, size_t sw, const char *a, size_t sa, int R,  \
                           int C, float *s, size_t ss, const int PF)                              \
    {                                                                                             \
        __m512 acc[FG_R][FZ_C];                                                                   \
        _Pragma("GCC unroll 8")                                                                   \
        for (int r = 0; r < R; r++)                                                               \
            _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < C; c++)                                                               \
            acc[r][c] = _mm512_setzero_ps();                                                      \
        /* pointers stepped through the row rather than one index off ten   \
         * bases: GCC kept too few of the bases in registers and reloaded   \
         * them from the stack in the loop */                     \
        const char *wp[FG_R], *ap[FZ_C];                                                          \
        _Pragma("GCC unroll 8")                                                                   \
        for (int r = 0; r < R; r++)                                                               \
            wp[r] = w + (size_t)r * sw;                                                           \
        _Pragma("GCC unroll 8")                                                                   \
        for (int c = 0; c < C; c++)                                                               \
            ap[c] = a + (size_t)c * sa;                                                           \
        int64_t i = 0;                                                                            \
        for (; i + 16 <= n; i += 16) {                                                            \
            __m512 wv[FG_R];                                                                      \
            if (PF && !(i & 16))                                                                  \
                _Pragma("GCC unroll 8")                                                           \
            for (int r = 0; r < R; r++)                                                           \
                _mm_prefetch(wp[r] + FG_R * sw, PF_HINT);                                         \
            _Pragma("GCC unroll 8")                                                               \
            for (int r = 0; r < R; r++) {                                                         \
                wv[r] = load16_##name(wp[r], 0);                                                  \
                wp[r] += 32;                                                                      \
            }                                                                                     \
            _Pragma("GCC unroll 8")                                                               \
            for (int c = 0; c < C; c++) {                                                         \
                const __m512 av = load16_##name(ap[c], 0);                                        \
                ap[c] += 32;                                                                      \
                _Pragma("GCC unroll 8")                                                           \
                for (int r = 0; r < R; r++)                                                       \
                    acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);                            \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8")                                                                   \
        for (int r = 0; r < R; r++)                                                               \
            _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < C; c++) {                                                             \
            const __m512 v = acc[r][c];                                                           \
            float t = hsum8(                                                                      \
                _mm256_add_ps(_mm512_castps512_ps256(v),                                          \
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))); \
            for (int64_t j = i; j < n; j++)                                                       \
                t += get_##name(w + (size_t)r * sw, j) * get_##name(a + (size_t)c * sa, j);       \
            s[(size_t)c * ss + (size_t)r] = t;                                                    \
        }                                                                                         \
    }                                                                                             \
    static void x86_gemm_##name(int64_t n, const void *vw, size_t sw, int nr, const void *va,     \
                                size_t sa, int nc, float *s, size_t ss)                           \
    {                                                                                             \
        const char *w = vw;                                                                       \
        for (int c0 = 0; c0 < nc; c0 += FZ_C) {                                                   \
            const char *a = (const char *)va + (size_t)c0 * sa;                                   \
            int ncc = nc - c0 < FZ_C ? nc - c0 : FZ_C;                                            \
            float *o = s + (size_t)c0 * ss;                                                       \
            if (c0 == 0 && nr == FG_R) {                                                          \
                switch (ncc) {                                                                    \
                    GEMMZ_PF_CASES(name)                                                          \
                default: break;                                                                   \
                }                                                                                 \
                continue;                                                                         \
            }                                                                                     \
            switch (nr * 8 + ncc) {                                                               \
                GEMMZ_CASES(name, 4)                                                              \
                GEMMZ_CASES(name, 3)                                                              \
                GEMMZ_CASES(name, 2)                                                              \
                GEMMZ_CASES(name, 1)                                                              \
            default: break;                                                                       \
            }                                                                                     \
        }                                                                                         \
    }
#define GEMMZ_CASE(name, R, C) GEMMF_CASE(name, R * 8 + C, R, C, 0)
#define GEMMZ_PF_CASE(name, C) GEMMF_CASE(name, C, FG_R, C, 1)
#define GEMMZ_PF_CASES(name) \
    GEMMZ_PF_CASE(name, 6)   \
    GEMMZ_PF_CASE(name, 5)   \
    GEMMZ_PF_CASE(name, 4)   \
    GEMMZ_PF_CASE(name, 3)   \
    GEMMZ_PF_CASE(name, 2)   \
    GEMMZ_PF_CASE(name, 1)
#define GEMMZ_CASES(name, R) \
    GEMMZ_CASE(name, R, 6)   \
    GEMMZ_CASE(name, R, 5)   \
    GEMMZ_CASE(name, R, 4)   \
    GEMMZ_CASE(name, R, 3)   \
    GEMMZ_CASE(name, R, 2)   \
    GEMMZ_CASE(name, R, 1)
_Static_assert(FZ_C == 6, "GEMMZ_CASES covers 1..6 tokens");
#endif

DEF_GEMMF(f16)
DEF_GEMMF(bf16)

/* The table rows both x86 levels share. */
#define WISP_X86_KERNEL_ROWS                                              \
    [WISP_TYPE_F32] = {.act_type = WISP_TYPE_F32, .dot = x86_dot_f32},    \
    [WISP_TYPE_F16] = {.act_type = WISP_TYPE_F16,                         \
                       .dot = x86_dot_f16,                                \
                       .from_float = x86_from_float_f16},                 \
    [WISP_TYPE_BF16] = {.act_type = WISP_TYPE_BF16,                       \
                        .dot = x86_dot_bf16,                              \
                        .from_float = x86_from_float_bf16},               \
    [WISP_TYPE_Q4_0] = {.act_type = WISP_TYPE_Q8_0, .dot = x86_dot_q4_0}, \
    [WISP_TYPE_Q4_1] = {.act_type = WISP_TYPE_Q8_1, .dot = x86_dot_q4_1}, \
    [WISP_TYPE_Q5_0] = {.act_type = WISP_TYPE_Q8_0, .dot = x86_dot_q5_0}, \
    [WISP_TYPE_Q5_1] = {.act_type = WISP_TYPE_Q8_1, .dot = x86_dot_q5_1}, \
    [WISP_TYPE_Q8_0] = {.act_type = WISP_TYPE_Q8_0,                       \
                        .dot = x86_dot_q8_0,                              \
                        .from_float = x86_quantize_q8_0},                 \
    [WISP_TYPE_Q8_1] = {.act_type = -1, .from_float = x86_quantize_q8_1}, \
    [WISP_TYPE_Q2_K] = {.act_type = WISP_TYPE_Q8_K, .dot = x86_dot_q2_K}, \
    [WISP_TYPE_Q3_K] = {.act_type = WISP_TYPE_Q8_K, .dot = x86_dot_q3_K}, \
    [WISP_TYPE_Q4_K] = {.act_type = WISP_TYPE_Q8_K, .dot = x86_dot_q4_K}, \
    [WISP_TYPE_Q5_K] = {.act_type = WISP_TYPE_Q8_K, .dot = x86_dot_q5_K}, \
    [WISP_TYPE_Q6_K] = {.act_type = WISP_TYPE_Q8_K, .dot = x86_dot_q6_K}, \
    [WISP_TYPE_Q8_K] = {.act_type = -1, .from_float = x86_quantize_q8_K},

#endif
