/*
 * gpu_test.h - helpers shared by the kernel-vs-CPU tests in tests/gpu.
 *
 * Each tests/gpu/test_gpu_*.c is one program on the unit-test harness
 * (tests/unit/harness.h: every case forked, so CUDA is first touched in
 * the child). GPU_REQUIRE() at the top of a case skips it, with the CUDA
 * runtime's reason, when no usable device exists, so `make test-gpu` on a
 * machine without a GPU reports skips, never passes. The helpers make
 * random inputs (finite scales for quantized blocks), move buffers to and
 * from the device with checked calls, build reference rows with the
 * host/device dequantizers (themselves checked against an independent
 * reference by tests/unit/test_dequant_block.c), and compare with
 * atol + rtol*|ref|, printing the first mismatches.
 */
#ifndef WISP_GPU_TEST_H
#define WISP_GPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "common/fp16.h"
#include "engine/cuda/kernels.h"
#include "harness.h"
#include "model/dequant_block.h"
#include "model/types.h"

#define GPU_REQUIRE()                                           \
    do {                                                        \
        int n_dev_ = 0;                                         \
        cudaError_t e_ = cudaGetDeviceCount(&n_dev_);           \
        if (e_ != cudaSuccess)                                  \
            SKIP("no CUDA device: %s", cudaGetErrorString(e_)); \
        if (n_dev_ == 0)                                        \
            SKIP("no CUDA device: none found");                 \
    } while (0)

#define CU_OK(call)                                                         \
    do {                                                                    \
        cudaError_t e_ = (call);                                            \
        if (e_ != cudaSuccess) {                                            \
            fprintf(stderr, "  %s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                    cudaGetErrorString(e_));                                \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

/* A launcher call that must succeed; prints its wisp_err otherwise. */
#define K_OK(call)                                                                             \
    do {                                                                                       \
        wisp_err kerr_ = {0};                                                                  \
        (void)kerr_;                                                                           \
        int rc_ = (call);                                                                      \
        if (rc_ != 0) {                                                                        \
            fprintf(stderr, "  %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, kerr_.msg); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
/* Inside K_OK, pass &kerr_ as the error argument. */
#define KERR (&kerr_)

/* ---------------------------------------------------------------- random */

static uint64_t gt_rng = 0x243F6A8885A308D3ull;

static inline void gt_seed(uint64_t s) { gt_rng = s * 0x9E3779B97F4A7C15ull + 1; }

static inline uint32_t gt_u32(void)
{
    gt_rng ^= gt_rng << 13;
    gt_rng ^= gt_rng >> 7;
    gt_rng ^= gt_rng << 17;
    return (uint32_t)(gt_rng >> 11);
}

static inline float gt_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(gt_u32() & 0xFFFFFF) / (float)0x1000000;
}

static inline void gt_floats(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = gt_uniform(lo, hi);
}

/* ---------------------------------------------------------------- device */

static inline void *gt_dev(size_t bytes)
{
    void *p = NULL;
    CU_OK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}

static inline void *gt_upload(const void *h, size_t bytes)
{
    void *d = gt_dev(bytes);
    CU_OK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static inline void gt_download(void *h, const void *d, size_t bytes)
{
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

/* ---------------------------------------------------------------- weights */

typedef void (*gt_dq8_fn)(const void *, int, float *);

typedef struct gt_type {
    int type;
    const char *name;
    int qk;          /* elements per block (1 for float types) */
    int bytes;       /* bytes per block */
    gt_dq8_fn dq8;   /* quantized types only */
    int half_off[2]; /* byte offsets of the block's half scales */
    int n_half;
    float qmax; /* largest |quant x sub-scale| of the format */
} gt_type;

static const gt_type GT_TYPES[] = {
    {WISP_TYPE_F32, "F32", 1, 4, NULL, {0, 0}, 0, 1},
    {WISP_TYPE_F16, "F16", 1, 2, NULL, {0, 0}, 0, 1},
    {WISP_TYPE_BF16, "BF16", 1, 2, NULL, {0, 0}, 0, 1},
    {WISP_TYPE_Q4_0, "Q4_0", 32, 18, wisp_blk_q4_0_dequant8, {0, 0}, 1, 8},
    {WISP_TYPE_Q4_1, "Q4_1", 32, 20, wisp_blk_q4_1_dequant8, {0, 2}, 2, 15},
    {WISP_TYPE_Q5_0, "Q5_0", 32, 22, wisp_blk_q5_0_dequant8, {0, 0}, 1, 16},
    {WISP_TYPE_Q5_1, "Q5_1", 32, 24, wisp_blk_q5_1_dequant8, {0, 2}, 2, 31},
    {WISP_TYPE_Q8_0, "Q8_0", 32, 34, wisp_blk_q8_0_dequant8, {0, 0}, 1, 127},
    {WISP_TYPE_Q2_K, "Q2_K", 256, 84, wisp_blk_q2_K_dequant8, {80, 82}, 2, 45},
    {WISP_TYPE_Q3_K, "Q3_K", 256, 110, wisp_blk_q3_K_dequant8, {108, 0}, 1, 128},
    {WISP_TYPE_Q4_K, "Q4_K", 256, 144, wisp_blk_q4_K_dequant8, {0, 2}, 2, 945},
    {WISP_TYPE_Q5_K, "Q5_K", 256, 176, wisp_blk_q5_K_dequant8, {0, 2}, 2, 1953},
    {WISP_TYPE_Q6_K, "Q6_K", 256, 210, wisp_blk_q6_K_dequant8, {208, 0}, 1, 4064},
};
#define GT_N_TYPES ((int)(sizeof(GT_TYPES) / sizeof(GT_TYPES[0])))

/* Random weight bytes of n_rows rows of n_in elements (n_in % qk == 0),
 * and their exact F32 values in ref (n_rows * n_in). Values stay within
 * about +-amp: float weights are uniform in it, quantized blocks get
 * scales (and minimums) of up to amp / qmax. Returns malloc'd bytes;
 * *bytes_out = size. */
static inline void *gt_random_weight(const gt_type *t, int64_t n_in, int64_t n_rows, float amp,
                                     float *ref, size_t *bytes_out)
{
    const size_t row = (size_t)(n_in / t->qk) * (size_t)t->bytes;
    uint8_t *w = malloc(row * (size_t)n_rows);
    for (int64_t r = 0; r < n_rows; r++) {
        uint8_t *wr = w + (size_t)r * row;
        float *fr = ref + r * n_in;
        if (t->qk == 1) {
            for (int64_t i = 0; i < n_in; i++) {
                float v = gt_uniform(-amp, amp);
                if (t->type == WISP_TYPE_F32) {
                    memcpy(wr + 4 * i, &v, 4);
                    fr[i] = v;
                } else {
                    uint16_t b =
                        t->type == WISP_TYPE_F16 ? wisp_float_to_half(v) : wisp_float_to_bf16(v);
                    memcpy(wr + 2 * i, &b, 2);
                    fr[i] =
                        t->type == WISP_TYPE_F16 ? wisp_half_to_float(b) : wisp_bf16_to_float(b);
                }
            }
            continue;
        }
        for (int64_t b = 0; b < n_in / t->qk; b++) {
            uint8_t *blk = wr + (size_t)b * (size_t)t->bytes;
            for (int i = 0; i < t->bytes; i++)
                blk[i] = (uint8_t)gt_u32();
            for (int k = 0; k < t->n_half; k++) {
                uint16_t h = wisp_float_to_half(gt_uniform(-amp, amp) / t->qmax);
                memcpy(blk + t->half_off[k], &h, 2);
            }
            for (int g = 0; g < t->qk / 8; g++)
                t->dq8(blk, g, fr + b * t->qk + 8 * g);
        }
    }
    *bytes_out = row * (size_t)n_rows;
    return w;
}

/* ---------------------------------------------------------------- compare */

/* Counts elements with |got - ref| > atol + rtol*|ref| (or NaN), printing
 * the first few with what. */
static inline int gt_compare(const char *what, const float *got, const float *ref, size_t n,
                             double atol, double rtol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.7g, want %.7g\n", what, i, got[i], ref[i]);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %d of %zu outside atol %g + rtol %g\n", what, bad, n, atol, rtol);
    return bad;
}

#endif
