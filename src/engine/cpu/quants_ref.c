/*
 * quants_ref.c - the scalar reference kernels: activation quantizers and
 * weight-row dot products for every supported type (dequantization is the
 * type table's, see the table at the end).
 *
 * The numerics follow ggml's CPU backend on purpose, because the golden
 * outputs wisp is checked against come from llama.cpp: activations are
 * quantized to Q8_0 for Q4_0/Q5_0/Q8_0 weights, to Q8_1 (with the block sum
 * d*sum(q) for the weight minimum) for Q4_1/Q5_1, to Q8_K (with sums of 16
 * quants) for the K-quants, to F16 for F16 and BF16 for BF16 weights; each
 * block's integer dot is then scaled by both block scales. Written for
 * clarity: the SIMD files must agree with this one, tests enforce it.
 */
#include <math.h>
#include <string.h>

#include "common/fp16.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/repack.h"
#include "model/quant_blocks.h"

#define H2F wisp_half_to_float

/* ggml's nearest_int: round half to even through the float mantissa. */
static inline int nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* ------------------------------------------------------------ activations */

static void quantize_q8_0(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / WISP_QK8_0; i++) {
        const float *xb = x + i * WISP_QK8_0;
        float amax = 0.f;
        for (int j = 0; j < WISP_QK8_0; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.f;
        const float id = d != 0.f ? 1.f / d : 0.f;
        y[i].d = wisp_float_to_half(d);
        for (int j = 0; j < WISP_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

static void quantize_q8_1(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / WISP_QK8_1; i++) {
        const float *xb = x + i * WISP_QK8_1;
        float amax = 0.f;
        for (int j = 0; j < WISP_QK8_1; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.f;
        const float id = d != 0.f ? 1.f / d : 0.f;
        int sum = 0;
        for (int j = 0; j < WISP_QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(xb[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = wisp_float_to_half(d);
        y[i].s = wisp_float_to_half((float)sum * d);
    }
}

static void quantize_q8_K(const float *x, void *vy, int64_t n)
{
    wisp_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        const float *xb = x + i * WISP_QK_K;
        float amax = 0.f, max = 0.f;
        for (int j = 0; j < WISP_QK_K; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax == 0.f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* -127/max (not 128): the signed extreme maps to -127 exactly. */
        const float iscale = -127.f / max;
        for (int j = 0; j < WISP_QK_K; j++) {
            int v = nearest_int(iscale * xb[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < WISP_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.f / iscale;
    }
}

static void from_float_f16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++)
        y[i] = wisp_float_to_half(x[i]);
}

static void from_float_bf16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++)
        y[i] = wisp_float_to_bf16(x[i]);
}

/* Fifth bits of element j and j + 16 of a Q5 block. */
static inline void q5_high(const uint8_t qh_bytes[4], int j, int *h0, int *h1)
{
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    *h0 = (int)((qh >> j) & 1) << 4;
    *h1 = (int)((qh >> (j + 16)) & 1) << 4;
}

/* The K-quant dots unpack each block into integer quants q[256] and per-16
 * integer scales and mins, x[j] = d * sc[j/16] * q[j] - dmin * mn[j/16]:
 * a second reading of the bits, independent of the granule dequantizers
 * (model/dequant_block.h), which the tests compare it with. */
typedef struct kblock {
    int8_t q[WISP_QK_K];
    int sc[16], mn[16];
    float d, dmin;
} kblock;

static void unpack_q2_K(const wisp_block_q2_K *x, kblock *k)
{
    k->d = H2F(x->d);
    k->dmin = H2F(x->dmin);
    for (int j = 0; j < 16; j++) {
        k->sc[j] = x->scales[j] & 0xF;
        k->mn[j] = x->scales[j] >> 4;
    }
    /* 128-element halves; within each, 4 shifts over the same 32 bytes. */
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++)
                k->q[h * 128 + s * 32 + l] = (int8_t)((x->qs[h * 32 + l] >> (2 * s)) & 3);
}

static void unpack_q3_K(const wisp_block_q3_K *x, kblock *k)
{
    k->d = H2F(x->d);
    k->dmin = 0.f;
    /* 16 6-bit scales: low 4 bits in bytes 0..7 (two per byte), high 2
     * bits in bytes 8..11 (four per byte). */
    const uint8_t *s = x->scales;
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        k->sc[j] = (lo | (hi << 4)) - 32;
        k->mn[j] = 0;
    }
    for (int h = 0; h < 2; h++)
        for (int s2 = 0; s2 < 4; s2++)
            for (int l = 0; l < 32; l++) {
                int q = (x->qs[h * 32 + l] >> (2 * s2)) & 3;
                int hb = (x->hmask[l] >> (h * 4 + s2)) & 1;
                k->q[h * 128 + s2 * 32 + l] = (int8_t)(q - (hb ? 0 : 4));
            }
}

static void unpack_q45_K(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, kblock *k)
{
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        wisp_get_scale_min_k4(j, scales, &sc, &m);
        k->sc[2 * j] = k->sc[2 * j + 1] = sc;
        k->mn[2 * j] = k->mn[2 * j + 1] = m;
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[c * 32 + l] & 0xF, hi = qs[c * 32 + l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            k->q[c * 64 + l] = (int8_t)lo;
            k->q[c * 64 + 32 + l] = (int8_t)hi;
        }
}

static void unpack_q4_K(const wisp_block_q4_K *x, kblock *k)
{
    k->d = H2F(x->d);
    k->dmin = H2F(x->dmin);
    unpack_q45_K(x->scales, x->qs, NULL, k);
}

static void unpack_q5_K(const wisp_block_q5_K *x, kblock *k)
{
    k->d = H2F(x->d);
    k->dmin = H2F(x->dmin);
    unpack_q45_K(x->scales, x->qs, x->qh, k);
}

static void unpack_q6_K(const wisp_block_q6_K *x, kblock *k)
{
    k->d = H2F(x->d);
    k->dmin = 0.f;
    for (int j = 0; j < 16; j++) {
        k->sc[j] = x->scales[j];
        k->mn[j] = 0;
    }
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + h * 64, *qh = x->qh + h * 32;
        for (int l = 0; l < 32; l++) {
            int8_t *q = k->q + h * 128;
            q[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

typedef void (*unpack_fn)(const void *x, kblock *k);

/* ggml's per-type K-quant dot (integers per sub-block, one float multiply
 * per super-block) computed from the unpacked block: the sum over
 * sub-blocks of sc * dot(q, q8), scaled by d * d8, minus dmin * d8 times
 * the mins weighted by the Q8_K block sums. */
static float kquant_dot(const void *vx, size_t bytes, unpack_fn unpack, const wisp_block_q8_K *y,
                        int64_t n)
{
    const char *x = vx;
    kblock k;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        unpack(x + i * bytes, &k);
        int isum = 0, msum = 0;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += k.q[j * 16 + l] * y[i].qs[j * 16 + l];
            isum += k.sc[j] * s;
            msum += k.mn[j] * y[i].bsums[j];
        }
        sumf += y[i].d * k.d * (float)isum - y[i].d * k.dmin * (float)msum;
    }
    return sumf;
}

#define KQ(name, T)                                                                             \
    static void unpack_any_##name(const void *x, kblock *k) { unpack_##name((const T *)x, k); } \
    static float dot1_##name(int64_t n, const void *x, const void *y)                           \
    {                                                                                           \
        return kquant_dot(x, sizeof(T), unpack_any_##name, y, n);                               \
    }
KQ(q2_K, wisp_block_q2_K)
KQ(q3_K, wisp_block_q3_K)
KQ(q4_K, wisp_block_q4_K)
KQ(q5_K, wisp_block_q5_K)
KQ(q6_K, wisp_block_q6_K)

/* ------------------------------------------------------------ 32-blocks */

static float dot1_f32(int64_t n, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * y[i];
    return (float)s;
}

static float dot1_f16(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(H2F(x[i]) * H2F(y[i]));
    return (float)s;
}

static float dot1_bf16(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(wisp_bf16_to_float(x[i]) * wisp_bf16_to_float(y[i]));
    return (float)s;
}

static float dot1_q4_0(int64_t n, const void *vx, const void *vy)
{
    const wisp_block_q4_0 *x = vx;
    const wisp_block_q8_0 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / 32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sumf += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sumf;
}

static float dot1_q4_1(int64_t n, const void *vx, const void *vy)
{
    const wisp_block_q4_1 *x = vx;
    const wisp_block_q8_1 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / 32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sumf += (H2F(x[i].d) * H2F(y[i].d)) * (float)s + H2F(x[i].m) * H2F(y[i].s);
    }
    return sumf;
}

static float dot1_q5_0(int64_t n, const void *vx, const void *vy)
{
    const wisp_block_q5_0 *x = vx;
    const wisp_block_q8_0 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / 32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int h0, h1;
            q5_high(x[i].qh, j, &h0, &h1);
            s += (((x[i].qs[j] & 0xF) | h0) - 16) * y[i].qs[j] +
                 (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + 16];
        }
        sumf += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sumf;
}

static float dot1_q5_1(int64_t n, const void *vx, const void *vy)
{
    const wisp_block_q5_1 *x = vx;
    const wisp_block_q8_1 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / 32; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int h0, h1;
            q5_high(x[i].qh, j, &h0, &h1);
            s +=
                ((x[i].qs[j] & 0xF) | h0) * y[i].qs[j] + ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + 16];
        }
        sumf += (H2F(x[i].d) * H2F(y[i].d)) * (float)s + H2F(x[i].m) * H2F(y[i].s);
    }
    return sumf;
}

static float dot1_q8_0(int64_t n, const void *vx, const void *vy)
{
    const wisp_block_q8_0 *x = vx;
    const wisp_block_q8_0 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / 32; i++) {
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += x[i].qs[j] * y[i].qs[j];
        sumf += (float)s * (H2F(x[i].d) * H2F(y[i].d));
    }
    return sumf;
}

/* The table's dot takes several activation rows; the reference simply
 * repeats the single-row dot. */
#define MULTI(name)                                                                              \
    static void dot_##name(int64_t n, const void *w, const void *a, size_t sa, int nc, float *s, \
                           size_t ss)                                                            \
    {                                                                                            \
        for (int c = 0; c < nc; c++)                                                             \
            s[(size_t)c * ss] = dot1_##name(n, w, (const char *)a + (size_t)c * sa);             \
    }
MULTI(f32)
MULTI(f16)
MULTI(bf16)
MULTI(q4_0)
MULTI(q4_1)
MULTI(q5_0)
MULTI(q5_1)
MULTI(q8_0)
MULTI(q2_K)
MULTI(q3_K)
MULTI(q4_K)
MULTI(q5_K)
MULTI(q6_K)

/* ------------------------------------------------------------ repacked */

/* The repacked layout (repack.h), block by block: each block is copied
 * back into the file's layout and goes through the dot above, in the
 * row's block order, so the reference gives its bits exactly. */
static void rp_ref(int type, int64_t n, const void *vw, size_t sg, int ng, const void *a, size_t sa,
                   int nc, float *s, size_t ss)
{
    const size_t bb = wisp_cpu_block_bytes(type), qb = wisp_rp_quad_bytes(type);
    const int64_t nb = n / 32, nq = nb / WISP_RP_QUAD, nt = nb % WISP_RP_QUAD;
    for (int g = 0; g < ng; g++) {
        const char *grp = (const char *)vw + (size_t)g * sg;
        for (int r = 0; r < WISP_RP_ROWS; r++)
            for (int c = 0; c < nc; c++) {
                const wisp_block_q8_0 *y =
                    (const wisp_block_q8_0 *)((const char *)a + (size_t)c * sa);
                float sumf = 0.f;
                for (int64_t i = 0; i < nb; i++) {
                    union {
                        wisp_block_q4_0 q4;
                        wisp_block_q8_0 q8;
                    } blk;
                    if (i < nq * WISP_RP_QUAD)
                        wisp_rp_unpack_block(type, grp + (size_t)(i / 4) * qb, r / 4, r % 4,
                                             (int)(i % 4), &blk);
                    else
                        memcpy(&blk, grp + (size_t)nq * qb + (size_t)(r * nt + i - nq * 4) * bb,
                               bb);
                    /* one block through the single-row dot: its one step */
                    sumf += type == WISP_TYPE_Q4_0 ? dot1_q4_0(32, &blk, y + i)
                                                   : dot1_q8_0(32, &blk, y + i);
                }
                s[(size_t)c * ss + (size_t)g * WISP_RP_ROWS + (size_t)r] = sumf;
            }
    }
}

static void rp_q4_0(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa, int nc,
                    float *s, size_t ss)
{
    rp_ref(WISP_TYPE_Q4_0, n, w, sg, ng, a, sa, nc, s, ss);
}

static void rp_q8_0(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa, int nc,
                    float *s, size_t ss)
{
    rp_ref(WISP_TYPE_Q8_0, n, w, sg, ng, a, sa, nc, s, ss);
}

const wisp_rp_fn wisp_cpu_rp_scalar[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_0] = rp_q4_0,
    [WISP_TYPE_Q8_0] = rp_q8_0,
};

/* No to_float here: every level's dequantizer falls back to the type
 * table's reference one (model/types.h), the single definition of each
 * format, which cpu_types.c merges in. */
const wisp_cpu_kernels wisp_cpu_kernels_scalar[WISP_TYPE_COUNT] = {
    [WISP_TYPE_F32] = {.act_type = WISP_TYPE_F32, .dot = dot_f32},
    [WISP_TYPE_F16] = {.act_type = WISP_TYPE_F16, .dot = dot_f16, .from_float = from_float_f16},
    [WISP_TYPE_BF16] = {.act_type = WISP_TYPE_BF16, .dot = dot_bf16, .from_float = from_float_bf16},
    [WISP_TYPE_Q4_0] = {.act_type = WISP_TYPE_Q8_0, .dot = dot_q4_0},
    [WISP_TYPE_Q4_1] = {.act_type = WISP_TYPE_Q8_1, .dot = dot_q4_1},
    [WISP_TYPE_Q5_0] = {.act_type = WISP_TYPE_Q8_0, .dot = dot_q5_0},
    [WISP_TYPE_Q5_1] = {.act_type = WISP_TYPE_Q8_1, .dot = dot_q5_1},
    [WISP_TYPE_Q8_0] = {.act_type = WISP_TYPE_Q8_0, .dot = dot_q8_0, .from_float = quantize_q8_0},
    [WISP_TYPE_Q8_1] = {.act_type = -1, .from_float = quantize_q8_1},
    [WISP_TYPE_Q2_K] = {.act_type = WISP_TYPE_Q8_K, .dot = dot_q2_K},
    [WISP_TYPE_Q3_K] = {.act_type = WISP_TYPE_Q8_K, .dot = dot_q3_K},
    [WISP_TYPE_Q4_K] = {.act_type = WISP_TYPE_Q8_K, .dot = dot_q4_K},
    [WISP_TYPE_Q5_K] = {.act_type = WISP_TYPE_Q8_K, .dot = dot_q5_K},
    [WISP_TYPE_Q6_K] = {.act_type = WISP_TYPE_Q8_K, .dot = dot_q6_K},
    [WISP_TYPE_Q8_K] = {.act_type = -1, .from_float = quantize_q8_K},
};
