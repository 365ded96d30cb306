/*
 * quant_blocks.h - the on-disk block layouts of ggml's quantized types.
 *
 * These layouts are public facts of the GGUF format: every weight row is a
 * sequence of fixed-size blocks, each holding a scale (and sometimes a
 * minimum) plus packed low-bit integers. This header is compiled both by the
 * C engine and by nvcc (kernels/), so the block math is written once and
 * the CPU tests cover the code the GPU runs. Halves are stored as raw
 * uint16_t bits; see fp16.h for the conversions.
 */
#ifndef WISP_QUANT_BLOCKS_H
#define WISP_QUANT_BLOCKS_H

#include <stdint.h>

#ifdef __CUDACC__
#define WISP_HD __host__ __device__ __forceinline__
#else
#define WISP_HD static inline
#endif

typedef uint16_t wisp_half; /* IEEE 754 binary16 bits */
typedef uint16_t wisp_bf16; /* bfloat16 bits */

#define WISP_QK4_0        32
#define WISP_QK4_1        32
#define WISP_QK5_0        32
#define WISP_QK5_1        32
#define WISP_QK8_0        32
#define WISP_QK8_1        32
#define WISP_QK_K         256
#define WISP_K_SCALE_SIZE 12

/* Q4_0: x = d * (q - 8), q in 0..15; low nibbles hold elements 0..15,
 * high nibbles elements 16..31. */
typedef struct {
    wisp_half d;
    uint8_t qs[WISP_QK4_0 / 2];
} wisp_block_q4_0;
/* Q4_1: x = d * q + m. */
typedef struct {
    wisp_half d, m;
    uint8_t qs[WISP_QK4_1 / 2];
} wisp_block_q4_1;
/* Q5_0: 5-bit q = nibble | (bit j of qh) << 4; x = d * (q - 16). */
typedef struct {
    wisp_half d;
    uint8_t qh[4];
    uint8_t qs[WISP_QK5_0 / 2];
} wisp_block_q5_0;
/* Q5_1: x = d * q + m. */
typedef struct {
    wisp_half d, m;
    uint8_t qh[4];
    uint8_t qs[WISP_QK5_1 / 2];
} wisp_block_q5_1;
/* Q8_0: x = d * q. */
typedef struct {
    wisp_half d;
    int8_t qs[WISP_QK8_0];
} wisp_block_q8_0;
/* Q8_1: x = d * q; s = d * sum(q), precomputed for the Q4_1/Q5_1 dots. */
typedef struct {
    wisp_half d, s;
    int8_t qs[WISP_QK8_1];
} wisp_block_q8_1;

/* Q2_K: 16 sub-blocks of 16; scales[i] low nibble = scale, high = min;
 * x = d * sc * q - dmin * m, q in 0..3. */
typedef struct {
    uint8_t scales[WISP_QK_K / 16];
    uint8_t qs[WISP_QK_K / 4];
    wisp_half d, dmin;
} wisp_block_q2_K;
/* Q3_K: 16 sub-blocks of 16 with 6-bit signed scales (minus 32), q is
 * 2 low bits from qs plus a high bit from hmask (bit clear means -4). */
typedef struct {
    uint8_t hmask[WISP_QK_K / 8];
    uint8_t qs[WISP_QK_K / 4];
    uint8_t scales[WISP_K_SCALE_SIZE];
    wisp_half d;
} wisp_block_q3_K;
/* Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes;
 * x = d * sc * q - dmin * m. */
typedef struct {
    wisp_half d, dmin;
    uint8_t scales[WISP_K_SCALE_SIZE];
    uint8_t qs[WISP_QK_K / 2];
} wisp_block_q4_K;
/* Q5_K: as Q4_K with a fifth bit per element in qh. */
typedef struct {
    wisp_half d, dmin;
    uint8_t scales[WISP_K_SCALE_SIZE];
    uint8_t qh[WISP_QK_K / 8];
    uint8_t qs[WISP_QK_K / 2];
} wisp_block_q5_K;
/* Q6_K: 16 sub-blocks of 16 with int8 scales; q = 4 low bits (ql) and
 * 2 high bits (qh), x = d * sc * (q - 32). */
typedef struct {
    uint8_t ql[WISP_QK_K / 2];
    uint8_t qh[WISP_QK_K / 4];
    int8_t scales[WISP_QK_K / 16];
    wisp_half d;
} wisp_block_q6_K;
/* Q8_K: the activation type of the K-quant dot products; bsums holds the
 * sums of each group of 16 quants. */
typedef struct {
    float d;
    int8_t qs[WISP_QK_K];
    int16_t bsums[WISP_QK_K / 16];
} wisp_block_q8_K;

/* Unpacks sub-block j (0..7) scale and min of a Q4_K/Q5_K block. */
WISP_HD void wisp_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

#ifndef __CUDACC__
_Static_assert(sizeof(wisp_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(wisp_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(wisp_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(wisp_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(wisp_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(wisp_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(wisp_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(wisp_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(wisp_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(wisp_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(wisp_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(wisp_block_q8_K) == 292, "q8_K layout");
#endif

#endif
