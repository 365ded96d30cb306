/*
 * quant_k.c - reference conversions of ggml's K-quant types (super-blocks
 * of 256 elements): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the Q8_K activation
 * type.
 *
 * Dequantization is in dequant_row.c (one definition per format, shared with
 * the CUDA kernels through dequant_block.h). The quantizers are plain
 * rather than ggml's importance-weighted ones: each sub-block gets a scale
 * (and for the asymmetric types a minimum) from a short least-squares
 * search (fit_asym / fit_sym below), then the per-sub-block scales are
 * themselves quantized to 4, 6 or 8 bits against one super-block scale, and
 * the elements are re-quantized against the scales as they will actually be
 * decoded. That always yields valid blocks with an error close to ggml's
 * reference quantizer, which is what the synthesizer and the tests need.
 */
#include <math.h>
#include <string.h>

#include "common/fp16.h"
#include "model/quant_blocks.h"
#include "model/quant_ref.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int nearest(float v) { return (int)lrintf(v); }

/* ------------------------------------------------------------ fitting */

/* Squared error of x ~ s * l + m with l = clamp(round((x - m) / s), 0, nmax). */
static float asym_err(const float *x, int n, int nmax, float s, float m)
{
    float e = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest((x[i] - m) / s), 0, nmax);
        float r = x[i] - (s * l + m);
        e += r * r;
    }
    return e;
}

/* Fits x ~ scale * l - minp, l in 0..nmax, scale >= 0, minp >= 0 (the
 * K-quant formats store the minimum as a non-negative offset). Starts from
 * the range and refines by least squares on the assigned levels. */
static void fit_asym(const float *x, int n, int nmax, float *scale, float *minp)
{
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    if (mn > 0)
        mn = 0;
    if (mx == mn) {
        *scale = 0;
        *minp = -mn;
        return;
    }
    float s = (mx - mn) / nmax, m = mn;
    float best_s = s, best_m = m, best_e = asym_err(x, n, nmax, s, m);
    for (int iter = 0; iter < 8; iter++) {
        double sl = 0, sl2 = 0, sxl = 0, sx = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest((x[i] - m) / s), 0, nmax);
            sl += l;
            sl2 += (double)l * l;
            sxl += (double)x[i] * l;
            sx += x[i];
        }
        double det = n * sl2 - sl * sl;
        if (det <= 0)
            break;
        double s2 = (n * sxl - sx * sl) / det, m2 = (sl2 * sx - sl * sxl) / det;
        if (m2 > 0) {
            m2 = 0;
            s2 = sl2 > 0 ? sxl / sl2 : s;
        }
        if (!(s2 > 0))
            break;
        float e = asym_err(x, n, nmax, (float)s2, (float)m2);
        if (e >= best_e)
            break;
        best_e = e;
        best_s = s = (float)s2;
        best_m = m = (float)m2;
    }
    *scale = best_s;
    *minp = -best_m;
}

/* Fits x ~ scale * l, l in -nmax..nmax-1 (scale may be negative, which
 * lets the extreme element use the extra negative level). */
static float fit_sym(const float *x, int n, int nmax)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax == 0)
        return 0;
    float best_s = 0, best_e = INFINITY;
    for (int is = -9; is <= 9; is++) {
        float iscale = -(nmax + 0.1f * is) / max;
        double sxl = 0, sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            sxl += (double)x[i] * l;
            sl2 += (double)l * l;
        }
        if (sl2 <= 0)
            continue;
        float s = (float)(sxl / sl2);
        float e = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(x[i] / s), -nmax, nmax - 1);
            float r = x[i] - s * l;
            e += r * r;
        }
        if (e < best_e) {
            best_e = e;
            best_s = s;
        }
    }
    return best_s;
}

/* Quantizes positive per-sub-block values v[0..n) to 0..qmax against one
 * super-block scale; returns that scale (max / qmax). */
static float quant_scales(const float *v, int n, int qmax, uint8_t *out)
{
    float max = 0;
    for (int i = 0; i < n; i++)
        max = v[i] > max ? v[i] : max;
    float inv = max > 0 ? qmax / max : 0;
    for (int i = 0; i < n; i++)
        out[i] = (uint8_t)clampi(nearest(inv * v[i]), 0, qmax);
    return max / qmax;
}

/* Signed variant: scales in lo..hi with lo = -(hi+1); returns the super
 * scale d such that v ~ d * out. */
static float quant_scales_signed(const float *v, int n, int lo, int hi, int8_t *out)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            max = v[i];
        }
    if (amax == 0) {
        memset(out, 0, (size_t)n);
        return 0;
    }
    float iscale = (float)lo / max;
    for (int i = 0; i < n; i++)
        out[i] = (int8_t)clampi(nearest(iscale * v[i]), lo, hi);
    return 1.0f / iscale;
}

/* Asymmetric re-quantization of sub-block elements against decoded scales. */
static void requant_asym(const float *x, int n, float dl, float ml, int nmax, uint8_t *L)
{
    for (int i = 0; i < n; i++)
        L[i] = dl > 0 ? (uint8_t)clampi(nearest((x[i] + ml) / dl), 0, nmax) : 0;
}

/* Symmetric: stores l + nmax (0..2*nmax-1). */
static void requant_sym(const float *x, int n, float dl, int nmax, uint8_t *L)
{
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)(dl != 0 ? clampi(nearest(x[i] / dl), -nmax, nmax - 1) + nmax : nmax);
}

/* 2-bit packing shared by Q2_K and Q3_K: byte qs[j/4 + l] of each half
 * holds elements j+l, j+l+32, j+l+64, j+l+96 from the low bits up. */
static void pack2(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < WISP_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)((L[j + l] & 3) | ((L[j + l + 32] & 3) << 2) |
                                      ((L[j + l + 64] & 3) << 4) | ((L[j + l + 96] & 3) << 6));
}

/* ------------------------------------------------------------ Q2_K */

void wisp_quant_q2_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q2_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        float sc[16], mn[16];
        uint8_t ls[16], lm[16], L[WISP_QK_K];
        for (int j = 0; j < 16; j++)
            fit_asym(x + 16 * j, 16, 3, &sc[j], &mn[j]);
        float d = quant_scales(sc, 16, 15, ls), dmin = quant_scales(mn, 16, 15, lm);
        b[i].d = wisp_float_to_half(d);
        b[i].dmin = wisp_float_to_half(dmin);
        d = wisp_half_to_float(b[i].d);
        dmin = wisp_half_to_float(b[i].dmin);
        for (int j = 0; j < 16; j++) {
            b[i].scales[j] = (uint8_t)(ls[j] | (lm[j] << 4));
            requant_asym(x + 16 * j, 16, d * ls[j], dmin * lm[j], 3, L + 16 * j);
        }
        pack2(L, b[i].qs);
    }
}

/* ------------------------------------------------------------ Q3_K */

void wisp_quant_q3_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q3_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        float sc[16];
        int8_t ls[16];
        uint8_t L[WISP_QK_K];
        for (int j = 0; j < 16; j++)
            sc[j] = fit_sym(x + 16 * j, 16, 4);
        float d = quant_scales_signed(sc, 16, -32, 31, ls);
        b[i].d = wisp_float_to_half(d);
        d = wisp_half_to_float(b[i].d);
        memset(b[i].scales, 0, sizeof b[i].scales);
        for (int j = 0; j < 16; j++) {
            int l = ls[j] + 32;
            if (j < 8)
                b[i].scales[j] = (uint8_t)(l & 0xF);
            else
                b[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
            b[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            requant_sym(x + 16 * j, 16, d * ls[j], 4, L + 16 * j);
        }
        /* L is 0..7; bit 2 goes to hmask (bit k/32 of byte k%32). */
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int k = 0; k < WISP_QK_K; k++)
            if (L[k] > 3) {
                b[i].hmask[k % 32] |= (uint8_t)(1u << (k / 32));
                L[k] -= 4;
            }
        pack2(L, b[i].qs);
    }
}

/* ------------------------------------------------------------ Q4_K, Q5_K */

/* Packs 8 6-bit scales and mins into the 12 bytes that
 * wisp_get_scale_min_k4 unpacks. */
static void pack_scale_min_k4(const uint8_t ls[8], const uint8_t lm[8], uint8_t s[12])
{
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales and
 * the levels L[256]. */
static void quant_k4_common(const float *x, int nmax, wisp_half *hd, wisp_half *hdmin,
                            uint8_t scales[12], uint8_t L[WISP_QK_K])
{
    float sc[8], mn[8];
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++)
        fit_asym(x + 32 * j, 32, nmax, &sc[j], &mn[j]);
    float d = quant_scales(sc, 8, 63, ls), dmin = quant_scales(mn, 8, 63, lm);
    *hd = wisp_float_to_half(d);
    *hdmin = wisp_float_to_half(dmin);
    d = wisp_half_to_float(*hd);
    dmin = wisp_half_to_float(*hdmin);
    pack_scale_min_k4(ls, lm, scales);
    for (int j = 0; j < 8; j++)
        requant_asym(x + 32 * j, 32, d * ls[j], dmin * lm[j], nmax, L + 32 * j);
}

void wisp_quant_q4_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q4_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        uint8_t L[WISP_QK_K];
        quant_k4_common(x, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        for (int j = 0; j < WISP_QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                b[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void wisp_quant_q5_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q5_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        uint8_t L[WISP_QK_K];
        quant_k4_common(x, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < WISP_QK_K; j += 64, m1 <<= 2, m2 <<= 2)
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    b[i].qh[l] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    b[i].qh[l] |= m2;
                }
                b[i].qs[j / 2 + l] = (uint8_t)(l1 | (l2 << 4));
            }
    }
}

/* ------------------------------------------------------------ Q6_K */

void wisp_quant_q6_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q6_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        float sc[16];
        uint8_t L[WISP_QK_K];
        for (int j = 0; j < 16; j++)
            sc[j] = fit_sym(x + 16 * j, 16, 32);
        float d = quant_scales_signed(sc, 16, -128, 127, b[i].scales);
        b[i].d = wisp_float_to_half(d);
        d = wisp_half_to_float(b[i].d);
        for (int j = 0; j < 16; j++)
            requant_sym(x + 16 * j, 16, d * b[i].scales[j], 32, L + 16 * j);
        uint8_t *ql = b[i].ql, *qh = b[i].qh;
        for (int j = 0; j < WISP_QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const uint8_t *p = L + j + l;
                ql[l] = (uint8_t)((p[0] & 0xF) | ((p[64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((p[32] & 0xF) | ((p[96] & 0xF) << 4));
                qh[l] = (uint8_t)((p[0] >> 4) | ((p[32] >> 4) << 2) | ((p[64] >> 4) << 4) |
                                  ((p[96] >> 4) << 6));
            }
    }
}

/* ------------------------------------------------------------ Q8_K */

void wisp_quant_q8_K(const float *x, void *dst, int64_t n)
{
    wisp_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / WISP_QK_K; i++, x += WISP_QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < WISP_QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < WISP_QK_K; j++)
            b[i].qs[j] = (int8_t)clampi(nearest(iscale * x[j]), -127, 127);
        for (int j = 0; j < WISP_QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += b[i].qs[16 * j + l];
            b[i].bsums[j] = (int16_t)s;
        }
        b[i].d = 1.0f / iscale;
    }
}
