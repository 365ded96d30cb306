/*
 * quant_legacy.c - reference conversions of the float types and ggml's
 * 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
 *
 * The quantizers follow the round-to-nearest recipes that define these
 * formats (ggml's *_ref functions): a symmetric type takes the element of
 * largest magnitude, signed, as -2^(bits-1) levels so that the extreme
 * value is exact; an asymmetric type spans [min, max]. The block types'
 * dequantizers are generated in dequant_row.c from the granule
 * dequantizers the CUDA kernels share (dequant_block.h); the float types'
 * conversions are here.
 */
#include <math.h>
#include <string.h>

#include "common/fp16.h"
#include "model/quant_blocks.h"
#include "model/quant_ref.h"

/* ------------------------------------------------------------ floats */

void wisp_dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void wisp_quant_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

void wisp_dequant_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = wisp_half_to_float(h);
    }
}

void wisp_quant_f16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = wisp_float_to_half(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void wisp_dequant_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = wisp_bf16_to_float(h);
    }
}

void wisp_quant_bf16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = wisp_float_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* ------------------------------------------------------------ helpers */

/* The element of largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    *mn = x[0];
    *mx = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *mn)
            *mn = x[i];
        if (x[i] > *mx)
            *mx = x[i];
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ------------------------------------------------------------ Q4_0, Q4_1 */

void wisp_quant_q4_0(const float *src, void *dst, int64_t n)
{
    wisp_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK4_0; i++, src += WISP_QK4_0) {
        float d = signed_absmax(src, WISP_QK4_0) / -8.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = wisp_float_to_half(d);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)(src[j] * id + 8.5f), 0, 15);
            int q1 = clampi((int)(src[j + 16] * id + 8.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void wisp_quant_q4_1(const float *src, void *dst, int64_t n)
{
    wisp_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK4_1; i++, src += WISP_QK4_1) {
        float mn, mx;
        min_max(src, WISP_QK4_1, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = wisp_float_to_half(d);
        b[i].m = wisp_float_to_half(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)((src[j] - mn) * id + 0.5f), 0, 15);
            int q1 = clampi((int)((src[j + 16] - mn) * id + 0.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ------------------------------------------------------------ Q5_0, Q5_1 */

void wisp_quant_q5_0(const float *src, void *dst, int64_t n)
{
    wisp_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK5_0; i++, src += WISP_QK5_0) {
        float d = signed_absmax(src, WISP_QK5_0) / -16.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = wisp_float_to_half(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)(src[j] * id + 16.5f), 0, 31);
            int q1 = clampi((int)(src[j + 16] * id + 16.5f), 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

void wisp_quant_q5_1(const float *src, void *dst, int64_t n)
{
    wisp_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK5_1; i++, src += WISP_QK5_1) {
        float mn, mx;
        min_max(src, WISP_QK5_1, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = wisp_float_to_half(d);
        b[i].m = wisp_float_to_half(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)((src[j] - mn) * id + 0.5f), 0, 31);
            int q1 = clampi((int)((src[j + 16] - mn) * id + 0.5f), 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

/* ------------------------------------------------------------ Q8_0, Q8_1 */

void wisp_quant_q8_0(const float *src, void *dst, int64_t n)
{
    wisp_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK8_0; i++, src += WISP_QK8_0) {
        float d = fabsf(signed_absmax(src, WISP_QK8_0)) / 127.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = wisp_float_to_half(d);
        for (int j = 0; j < WISP_QK8_0; j++)
            b[i].qs[j] = (int8_t)clampi((int)roundf(src[j] * id), -127, 127);
    }
}

void wisp_quant_q8_1(const float *src, void *dst, int64_t n)
{
    wisp_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / WISP_QK8_1; i++, src += WISP_QK8_1) {
        float d = fabsf(signed_absmax(src, WISP_QK8_1)) / 127.0f;
        float id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < WISP_QK8_1; j++) {
            int q = clampi((int)roundf(src[j] * id), -127, 127);
            b[i].qs[j] = (int8_t)q;
            sum += q;
        }
        b[i].d = wisp_float_to_half(d);
        b[i].s = wisp_float_to_half(d * (float)sum);
    }
}
