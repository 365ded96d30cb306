/*
 * ops_lanes.h - the element-wise and per-row operations of the CPU forward
 * pass (RMSNorm, residual add, SwiGLU, RoPE's rotation) on vectors of
 * WISP_OPS_VW float lanes: the body of every ops level. ops_scalar.c
 * (4 lanes, no FMA), ops_avx2.c (8, FMA) and ops_avx512.c (16) include it
 * once each with their lane count and level row name (WISP_OPS_LEVEL); the
 * Makefile compiles each with its instruction set and ops.c calls the row
 * of the active SIMD level.
 *
 * Written to compute what ggml's CPU ops compute, since the golden tests
 * compare logits with llama.cpp at 0.05. The loops are written on GCC/Clang
 * vector types because at -O2 GCC vectorizes none of them (its cheap cost
 * model refuses a loop that needs an alias check or a scalar tail). Every
 * element is computed by the same operations wherever it sits in a row and
 * however long the row is, so a row's result never depends on the batch:
 *
 *   add, RoPE, RMSNorm's scaling   the scalar arithmetic lane by lane (the
 *                                  same bits as a plain loop);
 *   RMSNorm's sum of squares       float squares summed in double, as
 *                                  ggml does, in 4 x DW partial sums: the
 *                                  order differs from a serial sum by a few
 *                                  double ulps, far below the float mean;
 *   SwiGLU                         g / (1 + e^-g) * up in float as ggml
 *                                  writes it, with e^-g evaluated in double
 *                                  (relative error 2^-39) and rounded to
 *                                  float. Over all floats that e is
 *                                  correctly rounded but for 1 in 1.5
 *                                  million (glibc's expf: 1 in 13000), and
 *                                  silu is the expf formula's bits
 *                                  for all but 1 in 30000, at most 4 ulp
 *                                  apart (the division by 1 + e can double
 *                                  a 1-ulp change of e), and like it within
 *                                  2 ulp of the exact silu on [-87, 87].
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/cpu/ops_int.h"

#if !defined(WISP_OPS_VW) || !defined(WISP_OPS_LEVEL)
#error "define WISP_OPS_VW (4, 8 or 16) and WISP_OPS_LEVEL before including ops_lanes.h"
#endif

#if WISP_OPS_VW > 4
#include <immintrin.h>
#endif

/* The scalar arithmetic's bits are the point: keep a * b + c two roundings,
 * as -std=c11 does for GCC (Clang would fuse it). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* VW float lanes; DW double lanes fill one such vector, so SwiGLU works DW
 * floats at a time. */
#define VW WISP_OPS_VW
#define DW (VW / 2)

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vh __attribute__((vector_size(DW * 4)));
typedef double vd __attribute__((vector_size(DW * 8)));
typedef int64_t vl __attribute__((vector_size(DW * 8)));
typedef uint64_t vu __attribute__((vector_size(DW * 8)));

static inline vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vh loadh(const float *p)
{
    vh v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void storeh(float *p, vh v) { memcpy(p, &v, sizeof v); }

/* Asks for the line 4 KiB ahead of p (for writing: _w). A prefill's rows
 * (5.5 MiB of gate and as much of up for 512 rows of a 2816-wide FFN)
 * have left L2 by the time an op reads them, and the hardware prefetchers
 * alone stream them in at a third of the rate: swiglu over 512 x 2816
 * floats from L3 takes 1.75 ns an element without, 0.58 with (0.51 from
 * L2), RMSNorm over 512 x 1024 0.62 without, 0.5 with. Reaching past the
 * end of an array is harmless: a prefetch never faults. */
static inline void prefetch_ahead(const float *p) { __builtin_prefetch(p + 1024); }
static inline void prefetch_ahead_w(float *p) { __builtin_prefetch(p + 1024, 1); }

/* a * b + c on double lanes, rounded once at the levels with FMA (8 and 16
 * lanes). */
static inline vd fmad(vd a, vd b, vd c)
{
#if VW == 16
    return _mm512_fmadd_pd(a, b, c);
#elif VW == 8
    return _mm256_fmadd_pd(a, b, c);
#else
    return a * b + c;
#endif
}

/* Float lanes to double and back (one instruction each, where GCC's
 * generic conversion would split the vector), and min(max(x, lo), hi). */
static inline vd widen(vh x)
{
#if VW == 16
    return _mm512_cvtps_pd(x);
#elif VW == 8
    return _mm256_cvtps_pd(x);
#else
    return __builtin_convertvector(x, vd);
#endif
}

static inline vh narrow(vd x)
{
#if VW == 16
    return _mm512_cvtpd_ps(x);
#elif VW == 8
    return _mm256_cvtpd_ps(x);
#else
    return __builtin_convertvector(x, vh);
#endif
}

static inline vd clampd(vd x, double lo, double hi)
{
    const vd vlo = (vd){0} + lo, vhi = (vd){0} + hi;
#if VW == 16
    return _mm512_min_pd(_mm512_max_pd(x, vlo), vhi);
#elif VW == 8
    return _mm256_min_pd(_mm256_max_pd(x, vlo), vhi);
#else
    const vl below = x<vlo, above = x> vhi;
    x = (vd)((below & (vl)vlo) | (~below & (vl)x));
    return (vd)((above & (vl)vhi) | (~above & (vl)x));
#endif
}

static void ops_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    vd acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};
    int i = 0;
    for (; i + 4 * DW <= n; i += 4 * DW) {
        prefetch_ahead(x + i);
        prefetch_ahead(x + i + 2 * DW);
        const vh a = loadh(x + i), b = loadh(x + i + DW);
        const vh c = loadh(x + i + 2 * DW), d = loadh(x + i + 3 * DW);
        acc0 += widen(a * a);
        acc1 += widen(b * b);
        acc2 += widen(c * c);
        acc3 += widen(d * d);
    }
    const vd acc = (acc0 + acc1) + (acc2 + acc3);
    double sum = 0.0;
    for (int k = 0; k < DW; k++)
        sum += acc[k];
    for (; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    const vf vs = (vf){0} + scale;
    for (i = 0; i + VW <= n; i += VW) {
        prefetch_ahead_w(out + i);
        store(out + i, load(x + i) * vs * load(w + i));
    }
    for (; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

static void ops_add(float *x, const float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        prefetch_ahead(x + i);
        prefetch_ahead(y + i);
        store(x + i, load(x + i) + load(y + i));
    }
    for (; i < n; i++)
        x[i] += y[i];
}

/* e^x on double lanes, relative error below 2^-39: x = n ln2 + r, then a
 * degree 8 Chebyshev fit of e^r on [-ln2/2, ln2/2] (Horner, FMA), then n
 * added to the exponent. Without FMA (the 4-lane level) the reduction's
 * product and each Horner step round once more, a few double ulps beside
 * the fit's error; test_ops holds every level to the same bounds. x is clamped to [-150, 100], beyond which e^x
 * rounds to float 0 or inf anyway. A NaN x gives some number: the caller's
 * g / (1 + e) is NaN all the same. */
static inline vd vexp(vd x)
{
    x = clampd(x, -150.0, 100.0);
    const vd shift = (vd){0} + 0x1.8p52; /* round to nearest: n sits in t's low bits */
    const vd t = fmad(x, (vd){0} + 0x1.71547652b82fep0, shift);
    const vd r = fmad(t - shift, (vd){0} - 0x1.62e42fefa39efp-1, x);
    vd p = fmad(r, (vd){0} + 2.4876164022625967e-05, (vd){0} + 0.00019915866926782682);
    p = fmad(p, r, (vd){0} + 0.0013888821677630362);
    p = fmad(p, r, (vd){0} + 0.0083332660979496143);
    p = fmad(p, r, (vd){0} + 0.041666666890957001);
    p = fmad(p, r, (vd){0} + 0.16666666891045775);
    p = fmad(p, r, (vd){0} + 0.49999999999797934);
    p = fmad(p, r, (vd){0} + 0.99999999997978517);
    p = fmad(p, r, (vd){0} + 1.0);
    return (vd)((vu)p + (((vu)t - (vu)shift) << 52)); /* unsigned: n < 0 wraps */
}

static inline vh silu_mul(vh g, vh up)
{
    const vh e = narrow(vexp(widen(-g)));
    return g / (1.0f + e) * up;
}

static void ops_swiglu(float *gate, const float *up, int64_t n)
{
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        prefetch_ahead(gate + i);
        prefetch_ahead(up + i);
        storeh(gate + i, silu_mul(loadh(gate + i), loadh(up + i)));
        storeh(gate + i + DW, silu_mul(loadh(gate + i + DW), loadh(up + i + DW)));
    }
    for (; i + DW <= n; i += DW)
        storeh(gate + i, silu_mul(loadh(gate + i), loadh(up + i)));
    if (i < n) { /* the tail through the same lanes, so no element depends on where it sits */
        float g[DW] = {0}, u[DW] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        storeh(g, silu_mul(loadh(g), loadh(u)));
        memcpy(gate + i, g, (size_t)(n - i) * sizeof(float));
    }
}

/* Lane index lists for __builtin_shufflevector (GCC >= 12, Clang): LANES(f)
 * is f(0), ..., f(VW - 1). */
#define P2(f, k)  f(k), f((k) + 1)
#define P4(f, k)  P2(f, k), P2(f, (k) + 2)
#define P8(f, k)  P4(f, k), P4(f, (k) + 4)
#define P16(f, k) P8(f, k), P8(f, (k) + 8)
#if VW == 16
#define LANES(f) P16(f, 0)
#elif VW == 8
#define LANES(f) P8(f, 0)
#else
#define LANES(f) P4(f, 0)
#endif
#define EVEN(j)     (2 * (j))
#define ODD(j)      (2 * (j) + 1)
#define SWAP(j)     ((j) ^ 1)
#define DUP_EVEN(j) ((j) & ~1)
#define DUP_ODD(j)  ((j) | 1)
#define NEG_EVEN(j) ((j)&1 ? 1.0f : -1.0f)

/* Lane for lane the scalar x0 c - x1 s, x0 s + x1 c. The normal layout
 * adds x0 c + x1 (-s) on even lanes, which rounds as x0 c - x1 s does. */
static void rope_apply(const wisp_rope *r, const float *cache, float *x)
{
    if (r->layout == WISP_ROPE_NEOX) {
        const int half = r->n_dims / 2;
        int ic = 0;
        for (; ic + VW <= half; ic += VW) {
            const vf cs0 = load(cache + 2 * ic), cs1 = load(cache + 2 * ic + VW);
            const vf c = __builtin_shufflevector(cs0, cs1, LANES(EVEN));
            const vf s = __builtin_shufflevector(cs0, cs1, LANES(ODD));
            const vf x0 = load(x + ic), x1 = load(x + ic + half);
            store(x + ic, x0 * c - x1 * s);
            store(x + ic + half, x0 * s + x1 * c);
        }
        for (; ic < half; ic++) {
            const float c = cache[2 * ic], s = cache[2 * ic + 1];
            const float x0 = x[ic], x1 = x[ic + half];
            x[ic] = x0 * c - x1 * s;
            x[ic + half] = x0 * s + x1 * c;
        }
    } else {
        const vf neg_even = {LANES(NEG_EVEN)};
        int i0 = 0;
        for (; i0 + VW <= r->n_dims; i0 += VW) {
            const vf cs = load(cache + i0), v = load(x + i0);
            const vf c = __builtin_shufflevector(cs, cs, LANES(DUP_EVEN));
            const vf s = __builtin_shufflevector(cs, cs, LANES(DUP_ODD)) * neg_even;
            store(x + i0, v * c + __builtin_shufflevector(v, v, LANES(SWAP)) * s);
        }
        for (; i0 < r->n_dims; i0 += 2) {
            const float c = cache[i0], s = cache[i0 + 1];
            const float x0 = x[i0], x1 = x[i0 + 1];
            x[i0] = x0 * c - x1 * s;
            x[i0 + 1] = x0 * s + x1 * c;
        }
    }
}

const wisp_ops_level WISP_OPS_LEVEL = {
    .rmsnorm = ops_rmsnorm,
    .add = ops_add,
    .swiglu = ops_swiglu,
    .rope_apply = rope_apply,
};
