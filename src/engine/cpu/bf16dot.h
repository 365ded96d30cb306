/*
 * bf16dot.h - products of BF16 weights in the arithmetic of AVX512-BF16's
 * vdpbf16ps, for the BF16 layout of repack.h (F16 or BF16 weights computed
 * in BF16 on request: wisp_engine_opts.f16_as_bf16).
 *
 * One vdpbf16ps multiplies 32 BF16 pairs into 16 float lanes, twice the
 * multiply-adds of a float FMA of the same width, which is where a
 * compute-bound prefill of F16 weights gets its factor of two. The price
 * is precision: weights and activations keep 8 significand bits instead of
 * F16's 11, so this path is never the default.
 *
 * The arithmetic, per output lane (weight row r, token c), over the
 * element pairs p = 0 .. n/2 - 1 in order, from acc = +0:
 *     acc = (acc + w[2p+1] * a[2p+1]) + w[2p] * a[2p]
 * each product exact in float (8 x 8 significand bits), each addition
 * rounded to nearest even, denormal inputs and results taken as zero.
 * That is Intel's definition of the instruction; on AMD Zen 5 it agreed
 * with the hardware on every one of 32 million random lanes in the normal
 * float range (where products or sums overflow or underflow, the hardware's
 * signs of flushed zeros and of infinities may differ from it; a model's
 * weights and activations are far from both). Every token's lane is one
 * such chain whatever the batch, so a row gives the same bits alone or in
 * a batch, on any number of threads, and wisp_bf16dot_ref, which computes
 * the chain one lane at a time, gives the bits of the AVX512-BF16 kernel:
 * tests/unit/test_repack.c checks both.
 */
#ifndef WISP_BF16DOT_H
#define WISP_BF16DOT_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/cpu/cpu_types.h"

/* Rows of a group of the BF16 layout (repack.h). */
#define WISP_BF16_ROWS 16

/* A wisp_rp_fn for the BF16 layout: ng groups of WISP_BF16_ROWS rows of n
 * elements (n even) at (const char *)w + g * sg, nc BF16 activation rows
 * sa bytes apart; s[c * ss + 16 g + r] for row r of group g. */
void wisp_bf16dot_ref(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa, int nc,
                      float *s, size_t ss);
/* The same with vdpbf16ps (bf16dot_avx512bf16.c); only where the CPU has
 * AVX512-BF16 on top of the AVX-512 level. */
void wisp_bf16dot_avx512bf16(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa,
                             int nc, float *s, size_t ss);

/* Whether this CPU runs the AVX512-BF16 kernel at the active level (the
 * AVX-512 level and the avx512bf16 feature): the one case where computing
 * in BF16 pays, and so the one where the engine converts weights to it. */
bool wisp_bf16dot_fast(void);
/* The kernel of the BF16 layout at a level: the AVX512-BF16 one at the
 * AVX-512 level of a CPU that has it, else the reference (same bits). */
wisp_rp_fn wisp_bf16dot_at(wisp_simd_level level);

#endif
