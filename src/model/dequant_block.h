/*
 * dequant_block.h - per-block dequantization math shared by C and CUDA.
 *
 * Every supported weight type is split into "granules" of 8 consecutive
 * elements (8 divides every sub-block of every format, so the 8 elements of
 * a granule share one scale and one minimum). wisp_blk_<type>_dequant8()
 * turns granule g of one block into 8 floats. The CUDA kernels (decode
 * matvec, dequantize-to-F16 for cuBLAS, embedding lookup) and the CPU code
 * call these same functions, so a CPU unit test (test_dequant_block.c)
 * checks the exact arithmetic the GPU runs. The element order is the one of
 * ggml's reference dequantize_row_* functions; the comment above each
 * function derives its index arithmetic from that order.
 *
 * These are the one dequantizer of each block format: the reference row
 * conversions of the type table (wisp_dequant_<type>, generated in
 * model/dequant_row.c) and the CPU engine's scalar level are loops over
 * them. Names are wisp_blk_* so they never clash with those row functions. WISP_HD makes them host+device under nvcc and
 * static inline under a C compiler.
 */
#ifndef WISP_DEQUANT_BLOCK_H
#define WISP_DEQUANT_BLOCK_H

#include <stdint.h>

#include "model/quant_blocks.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif
#include "common/fp16.h"

#define WISP_BLK_GRANULE 8

/* IEEE half bits to float: the hardware conversion on the device, the exact
 * scalar one on the host (both are exact: every half is a float). */
WISP_HD float wisp_blk_h2f(uint16_t h)
{
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));
#else
    return wisp_half_to_float(h);
#endif
}

WISP_HD float wisp_blk_bf2f(uint16_t h)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float((uint32_t)h << 16);
#else
    return wisp_bf16_to_float(h);
#endif
}

/* ---------------------------------------------------------------- floats
 * For F32/F16/BF16 a "block" is one granule of 8 elements (g is always 0). */

WISP_HD void wisp_blk_f32_dequant8(const void *blk, int g, float *out)
{
    const float *x = (const float *)blk + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = x[i];
}

WISP_HD void wisp_blk_f16_dequant8(const void *blk, int g, float *out)
{
    const uint16_t *x = (const uint16_t *)blk + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = wisp_blk_h2f(x[i]);
}

WISP_HD void wisp_blk_bf16_dequant8(const void *blk, int g, float *out)
{
    const uint16_t *x = (const uint16_t *)blk + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = wisp_blk_bf2f(x[i]);
}

/* ---------------------------------------------------------------- 32-blocks
 * Q4_0/Q4_1: element e < 16 is the low nibble of qs[e], e >= 16 the high
 * nibble of qs[e - 16]. Granule g covers e = 8g..8g+7: bytes 8*(g&1).., and
 * the high nibble when g >= 2. */

WISP_HD void wisp_blk_q4_0_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q4_0 *b = (const wisp_block_q4_0 *)blk;
    const float d = wisp_blk_h2f(b->d);
    const uint8_t *q = b->qs + 8 * (g & 1);
    const int shift = 4 * (g >> 1);
    for (int i = 0; i < 8; i++)
        out[i] = d * (float)(((q[i] >> shift) & 0xF) - 8);
}

WISP_HD void wisp_blk_q4_1_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q4_1 *b = (const wisp_block_q4_1 *)blk;
    const float d = wisp_blk_h2f(b->d), m = wisp_blk_h2f(b->m);
    const uint8_t *q = b->qs + 8 * (g & 1);
    const int shift = 4 * (g >> 1);
    for (int i = 0; i < 8; i++)
        out[i] = d * (float)((q[i] >> shift) & 0xF) + m;
}

/* Q5_0/Q5_1: nibbles as Q4_0; the fifth bit of element e is bit e of the
 * little-endian 32-bit qh. */
WISP_HD uint32_t wisp_blk_qh32(const uint8_t *qh)
{
    return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) |
           ((uint32_t)qh[3] << 24);
}

WISP_HD void wisp_blk_q5_0_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q5_0 *b = (const wisp_block_q5_0 *)blk;
    const float d = wisp_blk_h2f(b->d);
    const uint32_t qh = wisp_blk_qh32(b->qh) >> (8 * g);
    const uint8_t *q = b->qs + 8 * (g & 1);
    const int shift = 4 * (g >> 1);
    for (int i = 0; i < 8; i++) {
        int v = ((q[i] >> shift) & 0xF) | (int)(((qh >> i) & 1) << 4);
        out[i] = d * (float)(v - 16);
    }
}

WISP_HD void wisp_blk_q5_1_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q5_1 *b = (const wisp_block_q5_1 *)blk;
    const float d = wisp_blk_h2f(b->d), m = wisp_blk_h2f(b->m);
    const uint32_t qh = wisp_blk_qh32(b->qh) >> (8 * g);
    const uint8_t *q = b->qs + 8 * (g & 1);
    const int shift = 4 * (g >> 1);
    for (int i = 0; i < 8; i++) {
        int v = ((q[i] >> shift) & 0xF) | (int)(((qh >> i) & 1) << 4);
        out[i] = d * (float)v + m;
    }
}

WISP_HD void wisp_blk_q8_0_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q8_0 *b = (const wisp_block_q8_0 *)blk;
    const float d = wisp_blk_h2f(b->d);
    const int8_t *q = b->qs + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = d * (float)q[i];
}

WISP_HD void wisp_blk_q8_1_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q8_1 *b = (const wisp_block_q8_1 *)blk;
    const float d = wisp_blk_h2f(b->d);
    const int8_t *q = b->qs + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = d * (float)q[i];
}

/* ---------------------------------------------------------------- K-quants
 * Q2_K: the 256 elements are two halves of 128; in half n, element
 * r = 32j + l (j = 0..3) is bits 2j..2j+1 of qs[32n + l]; its 4-bit scale
 * and min are scales[e / 16]. */
WISP_HD void wisp_blk_q2_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q2_K *b = (const wisp_block_q2_K *)blk;
    const int e = 8 * g;
    const uint8_t sc = b->scales[e / 16];
    const float dl = wisp_blk_h2f(b->d) * (float)(sc & 0xF);
    const float ml = wisp_blk_h2f(b->dmin) * (float)(sc >> 4);
    const uint8_t *q = b->qs + 32 * (e / 128) + (e % 32);
    const int shift = 2 * ((e % 128) / 32);
    for (int i = 0; i < 8; i++)
        out[i] = dl * (float)((q[i] >> shift) & 3) - ml;
}

/* Q3_K: the 2-bit part as Q2_K; the third bit is bit (4n + j) of
 * hmask[l] (l = e % 32), and a clear bit subtracts 4. The 16 signed 6-bit
 * scales are packed in 12 bytes: scale s has its low 4 bits in
 * scales[s % 8] (low nibble for s < 8, high for s >= 8) and its high 2 bits
 * in scales[8 + s % 4] at bit 2*(s / 4); it is stored plus 32. */
WISP_HD int wisp_blk_q3_K_scale(const uint8_t *sc, int s)
{
    int lo = s < 8 ? (sc[s % 8] & 0xF) : (sc[s % 8] >> 4);
    int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

WISP_HD void wisp_blk_q3_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q3_K *b = (const wisp_block_q3_K *)blk;
    const int e = 8 * g;
    const int n = e / 128, j = (e % 128) / 32, l = e % 32;
    const float dl = wisp_blk_h2f(b->d) * (float)wisp_blk_q3_K_scale(b->scales, e / 16);
    const uint8_t *q = b->qs + 32 * n + l;
    const uint8_t *hm = b->hmask + l;
    const uint8_t m = (uint8_t)(1u << (4 * n + j));
    const int shift = 2 * j;
    for (int i = 0; i < 8; i++)
        out[i] = dl * (float)(((q[i] >> shift) & 3) - ((hm[i] & m) ? 0 : 4));
}

/* Q4_K: four chunks of 64; in chunk c, elements 0..31 are the low nibbles
 * of qs[32c ..], elements 32..63 the high nibbles. Sub-block e / 32 has a
 * 6-bit scale and min (wisp_get_scale_min_k4). */
WISP_HD void wisp_blk_q4_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q4_K *b = (const wisp_block_q4_K *)blk;
    const int e = 8 * g, sub = e / 32;
    uint8_t sc, mn;
    wisp_get_scale_min_k4(sub, b->scales, &sc, &mn);
    const float d = wisp_blk_h2f(b->d) * (float)sc;
    const float m = wisp_blk_h2f(b->dmin) * (float)mn;
    const uint8_t *q = b->qs + 32 * (e / 64) + (e % 32);
    const int shift = 4 * (sub & 1);
    for (int i = 0; i < 8; i++)
        out[i] = d * (float)((q[i] >> shift) & 0xF) - m;
}

/* Q5_K: as Q4_K, plus bit `sub` of qh[e % 32] as the fifth bit. */
WISP_HD void wisp_blk_q5_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q5_K *b = (const wisp_block_q5_K *)blk;
    const int e = 8 * g, sub = e / 32;
    uint8_t sc, mn;
    wisp_get_scale_min_k4(sub, b->scales, &sc, &mn);
    const float d = wisp_blk_h2f(b->d) * (float)sc;
    const float m = wisp_blk_h2f(b->dmin) * (float)mn;
    const uint8_t *q = b->qs + 32 * (e / 64) + (e % 32);
    const uint8_t *qh = b->qh + (e % 32);
    const int shift = 4 * (sub & 1);
    for (int i = 0; i < 8; i++) {
        int v = ((q[i] >> shift) & 0xF) | (((qh[i] >> sub) & 1) << 4);
        out[i] = d * (float)v - m;
    }
}

/* Q6_K: two halves of 128; in half n, quarter k (0..3) element l (0..31)
 * takes its low 4 bits from ql[64n + 32*(k&1) + l] (high nibble when
 * k >= 2) and its high 2 bits from qh[32n + l] at bit 2k; scale
 * scales[e / 16]; x = d * sc * (q - 32). */
WISP_HD void wisp_blk_q6_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q6_K *b = (const wisp_block_q6_K *)blk;
    const int e = 8 * g;
    const int n = e / 128, k = (e % 128) / 32, l = e % 32;
    const float d = wisp_blk_h2f(b->d) * (float)b->scales[e / 16];
    const uint8_t *ql = b->ql + 64 * n + 32 * (k & 1) + l;
    const uint8_t *qh = b->qh + 32 * n + l;
    const int lshift = 4 * (k >> 1), hshift = 2 * k;
    for (int i = 0; i < 8; i++) {
        int v = ((ql[i] >> lshift) & 0xF) | (((qh[i] >> hshift) & 3) << 4);
        out[i] = d * (float)(v - 32);
    }
}

/* Q8_K: x = d * q, d a float. */
WISP_HD void wisp_blk_q8_K_dequant8(const void *blk, int g, float *out)
{
    const wisp_block_q8_K *b = (const wisp_block_q8_K *)blk;
    const int8_t *q = b->qs + 8 * g;
    for (int i = 0; i < 8; i++)
        out[i] = b->d * (float)q[i];
}

#endif
