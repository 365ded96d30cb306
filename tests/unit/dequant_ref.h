/*
 * dequant_ref.h - an independent scalar reference for the quantized block
 * formats, written from the block format description in the loop order of
 * ggml's dequantize_row_* functions (whole blocks, sub-block loops, scale
 * unpacking done its own way). test_dequant_block.c checks the CUDA
 * granule dequantizers against it and test_matmul.c the CPU kernels'
 * dequantizers; neither shares code with what it checks.
 */
#ifndef WISP_TEST_DEQUANT_REF_H
#define WISP_TEST_DEQUANT_REF_H

#include <stdint.h>
#include <string.h>

#include "common/fp16.h"
#include "model/quant_blocks.h"

static inline float h(uint16_t x) { return wisp_half_to_float(x); }

static inline void ref_q4_0(const void *blk, float *y)
{
    const wisp_block_q4_0 *x = blk;
    for (int j = 0; j < 16; j++) {
        y[j] = ((x->qs[j] & 0xF) - 8) * h(x->d);
        y[j + 16] = ((x->qs[j] >> 4) - 8) * h(x->d);
    }
}

static inline void ref_q4_1(const void *blk, float *y)
{
    const wisp_block_q4_1 *x = blk;
    for (int j = 0; j < 16; j++) {
        y[j] = (x->qs[j] & 0xF) * h(x->d) + h(x->m);
        y[j + 16] = (x->qs[j] >> 4) * h(x->d) + h(x->m);
    }
}

static inline void ref_q5_0(const void *blk, float *y)
{
    const wisp_block_q5_0 *x = blk;
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    for (int j = 0; j < 16; j++) {
        uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
        uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
        y[j] = (((x->qs[j] & 0x0F) | xh0) - 16) * h(x->d);
        y[j + 16] = (((x->qs[j] >> 4) | xh1) - 16) * h(x->d);
    }
}

static inline void ref_q5_1(const void *blk, float *y)
{
    const wisp_block_q5_1 *x = blk;
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    for (int j = 0; j < 16; j++) {
        uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
        uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
        y[j] = ((x->qs[j] & 0x0F) | xh0) * h(x->d) + h(x->m);
        y[j + 16] = ((x->qs[j] >> 4) | xh1) * h(x->d) + h(x->m);
    }
}

static inline void ref_q8_0(const void *blk, float *y)
{
    const wisp_block_q8_0 *x = blk;
    for (int j = 0; j < 32; j++)
        y[j] = x->qs[j] * h(x->d);
}

static inline void ref_q2_K(const void *blk, float *y)
{
    const wisp_block_q2_K *x = blk;
    const float d = h(x->d), mn = h(x->dmin);
    const uint8_t *q = x->qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            uint8_t sc = x->scales[is++];
            float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
            sc = x->scales[is++];
            dl = d * (sc & 0xF);
            ml = mn * (sc >> 4);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
            shift += 2;
        }
        q += 32;
    }
}

/* The 12 packed bytes expanded through 32-bit words, as the format
 * description does it. */
static inline void ref_q3_K(const void *blk, float *y)
{
    const wisp_block_q3_K *x = blk;
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    memcpy(aux, x->scales, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    memcpy(scales, aux, 16);
    const float d_all = h(x->d);
    const uint8_t *q = x->qs, *hm = x->hmask;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            float dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
            dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m <<= 1;
        }
        q += 32;
    }
}

static inline void ref_scale_min(int j, const uint8_t *q, int *d, int *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static inline void ref_q4_K(const void *blk, float *y)
{
    const wisp_block_q4_K *x = blk;
    const float d = h(x->d), mn = h(x->dmin);
    const uint8_t *q = x->qs;
    int is = 0, sc, m;
    for (int j = 0; j < 256; j += 64) {
        ref_scale_min(is + 0, x->scales, &sc, &m);
        const float d1 = d * sc, m1 = mn * m;
        ref_scale_min(is + 1, x->scales, &sc, &m);
        const float d2 = d * sc, m2 = mn * m;
        for (int l = 0; l < 32; ++l)
            *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l)
            *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}

static inline void ref_q5_K(const void *blk, float *y)
{
    const wisp_block_q5_K *x = blk;
    const float d = h(x->d), mn = h(x->dmin);
    const uint8_t *ql = x->qs, *qh = x->qh;
    int is = 0, sc, m;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        ref_scale_min(is + 0, x->scales, &sc, &m);
        const float d1 = d * sc, m1 = mn * m;
        ref_scale_min(is + 1, x->scales, &sc, &m);
        const float d2 = d * sc, m2 = mn * m;
        for (int l = 0; l < 32; ++l)
            *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l)
            *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 <<= 2;
        u2 <<= 2;
    }
}

static inline void ref_q6_K(const void *blk, float *y)
{
    const wisp_block_q6_K *x = blk;
    const float d = h(x->d);
    const uint8_t *ql = x->ql, *qh = x->qh;
    const int8_t *sc = x->scales;
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
            int is = l / 16;
            const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

#endif
