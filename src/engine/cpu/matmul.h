/*
 * matmul.h - weight x activation products for the CPU engine.
 *
 * Weights stay in their stored type (F32, F16, BF16, Q4_0 .. Q8_0, Q2_K ..
 * Q6_K); activations are F32 and, for quantized weights, are quantized once
 * per call to the weight type's companion 8-bit block type (Q8_0, Q8_1 or
 * Q8_K), as fast engines do, then integer dot products run per block. The
 * kernels behind this are chosen at run time from the CPU's features; the
 * scalar reference stays and tests compare every SIMD path with it.
 */
#ifndef WISP_MATMUL_H
#define WISP_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/cpu/threadpool.h"
#include "model/model.h"

/* Per-call scratch (quantized activations); sized once, grown never in the
 * hot path: wisp_matmul_scratch_size() says how much a shape needs. */
typedef struct wisp_matmul_scratch {
    void *buf;
    size_t size;
} wisp_matmul_scratch;

/* Bytes of scratch a product of a weight of this type with n_in columns
 * needs for n_tok activation rows. */
size_t wisp_matmul_scratch_size(int weight_type, int64_t n_in, int64_t n_tok);

/* y[t*n_out + o] = sum_i W[o, i] * x[t*n_in + i] for t < n_tok, where W is
 * w (ne[0] = n_in, ne[1] = n_out). Returns 0, or WISP_E_UNSUPPORTED for a
 * type without kernels. Threads split the output rows (and tiles of tokens
 * for prefill). */
int wisp_matmul(wisp_threadpool *tp, const wisp_tensor *w, const float *x, int64_t n_tok, float *y,
                wisp_matmul_scratch *scratch, wisp_err *err);

/* The most weights one wisp_matmul_n job takes. */
#define WISP_MATMUL_MAX_PARTS 3

/* y_i = W_i x for i < n_w weights that read the same input (Q, K and V of
 * a layer; the gate and up projections): the activations are converted
 * once and all the products run as one job of the pool, instead of n_w
 * conversions and n_w wake-ups. Weights whose activation format or row
 * length differ are done one after another, with the same results. */
int wisp_matmul_n(wisp_threadpool *tp, const wisp_tensor *const *w, int n_w, const float *x,
                  int64_t n_tok, float *const *y, wisp_matmul_scratch *scratch, wisp_err *err);

/* Which SIMD level the kernels use on this CPU: "avx512+amx" (AVX-512 with
 * AMX tiles for batches, amx.h), "avx512", "avx2" or "scalar"
 * (WISP_SIMD=scalar|avx2|avx512 in the environment forces a lower one,
 * WISP_AMX=0 switches AMX off, for tests and benchmarks). */
const char *wisp_matmul_simd_level(void);

#endif
