/*
 * vec.h - small float vector helpers for the forward pass (attention,
 * norms, residuals): dot, axpy, scale, max, f16 <-> f32 rows.
 *
 * Header-only and inline because they run on short rows (a head of 64-128
 * floats) inside loops where a call would cost as much as the work. Each
 * file that includes them compiles them with its own instructions (the
 * baseline's, or its level's in an _avx2 / _avx512 file), so plain loops
 * are written the way the compiler vectorizes them; the reductions keep
 * 16 independent partial sums by hand because without -ffast-math the
 * compiler may not reassociate a float sum. F16 rows use F16C when the
 * including file is compiled with it (the conversions round the same
 * either way, NaN payloads aside, so the bits do not depend on it).
 */
#ifndef WISP_CPU_VEC_H
#define WISP_CPU_VEC_H

#include <stdint.h>

#include "common/fp16.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

/* sum_i x[i] * y[i], with 16 partial sums (vectorizes as 2 x 8 lanes). */
static inline float wisp_vec_dot_f32(const float *x, const float *y, int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            acc[k] += x[i + k] * y[i + k];
    float s = 0.f;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

/* y[i] += a * x[i] */
static inline void wisp_vec_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* x[i] *= a */
static inline void wisp_vec_scale_f32(float *x, float a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= a;
}

/* y[i] += x[i] */
static inline void wisp_vec_add_f32(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* max_i x[i]; -inf for n == 0. */
static inline float wisp_vec_max_f32(const float *x, int64_t n)
{
    float m = -__builtin_inff();
    for (int64_t i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* sum_i x[i]^2 (RMSNorm), with 16 partial sums. */
static inline float wisp_vec_sumsq_f32(const float *x, int64_t n)
{
    return wisp_vec_dot_f32(x, x, n);
}

/* Half-precision rows (KV cache, F16 embeddings). */
static inline void wisp_vec_f16_to_f32(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
#endif
    for (; i < n; i++)
        y[i] = wisp_half_to_float(x[i]);
}

static inline void wisp_vec_f32_to_f16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++)
        y[i] = wisp_float_to_half(x[i]);
}

/* sum_i x[i] * f16(y[i]): attention scores against an F16 K cache row. */
static inline float wisp_vec_dot_f32_f16(const float *x, const uint16_t *y, int64_t n)
{
    int64_t i = 0;
    float s = 0.f;
#if defined(__F16C__) && defined(__AVX__) && defined(__FMA__)
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8))), a1);
    }
    a0 = _mm256_add_ps(a0, a1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    s = _mm_cvtss_f32(h);
#endif
    for (; i < n; i++)
        s += x[i] * wisp_half_to_float(y[i]);
    return s;
}

/* y[i] += a * f16(x[i]): attention output from an F16 V cache row. */
static inline void wisp_vec_axpy_f16(float *y, float a, const uint16_t *x, int64_t n)
{
    int64_t i = 0;
#if defined(__F16C__) && defined(__AVX__) && defined(__FMA__)
    const __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va,
                                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                         _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++)
        y[i] += a * wisp_half_to_float(x[i]);
}

#endif
