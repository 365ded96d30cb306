/*
 * attention_lanes.h - causal attention over the paged KV pool (see
 * attention.h) on vectors of WISP_ATTN_VW float lanes: the body of every
 * attention level. attention_scalar.c (4 lanes, plain vector arithmetic,
 * the baseline build's instructions), attention_avx2.c (8 lanes, FMA) and
 * attention_avx512.c (16 lanes) each include it once with their lane count
 * and the name of their level row (WISP_ATTN_LEVEL); the Makefile compiles
 * each with its instruction set, and attention.c picks the row of the
 * active SIMD level. A level's bits are its own (the lane count sets the
 * padding, FMA rounds once): the properties below hold within a level.
 *
 * Queries in lanes. A work item is a run of query rows of one sequence
 * against one kv head: its queries (rows x the n_rep query heads of the
 * group) are transposed once so that lane i of every vector is query i.
 * Then, per KV block, each step is lane-wise and needs no horizontal
 * reduction:
 *   scores  s[j][i] = sum_d qT[d][i] * K[j][d]   (K[j][d] broadcast)
 *   softmax running max, rescale and sum as vector max/mul/add over j
 *   output  accT[d][i] += p[j][i] * V[j][d]      (V[j][d] broadcast)
 * and K/V rows only need converting to F32, never transposing. A decode
 * (fewer queries than lanes) accumulates acc[i][d] += p[j][i] * V[j][d]
 * with lanes along d instead, so that no output lane is wasted.
 *
 * Each query's output is the same bits whatever else shares its item:
 * every element is the same chain of operations in the same order in
 * either layout (the FMA's product commutes), positions a row may not see
 * get score -inf, so weight exactly +0, and a block none of them sees
 * leaves the max (factor exactly 1) and the sums bit for bit as they were.
 * So a row gives the same output alone, in a prefill tile or in a batch,
 * on any number of threads, as the scheduler's batched-equals-alone
 * guarantee and preemption (recomputing decoded rows as a prefill) need;
 * tests/unit/test_attention.c checks it.
 *
 * exp is 2^x on scores pre-multiplied by log2(e): a rounding to an integer
 * n, then 2^r for r in [-1/2, 1/2] by Cephes' exp2f polynomial, then n
 * added to the exponent; within 1 ulp of 2^x for every float in
 * [-125, 0].
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/fp16.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/attention_int.h"
#include "engine/cpu/vec.h"
#include "model/quant_blocks.h"

#if !defined(WISP_ATTN_VW) || !defined(WISP_ATTN_LEVEL)
#error "define WISP_ATTN_VW (4, 8 or 16) and WISP_ATTN_LEVEL before including attention_lanes.h"
#endif

#if WISP_ATTN_VW > 4
#include <immintrin.h>
#endif

/* Lanes per vector. GCC/Clang vector extensions do the arithmetic;
 * intrinsics only where C has no operator (fused multiply-add: the build's
 * -ffp-contract=off keeps a * b + c two roundings, and a max that is one
 * instruction). */
#define VW WISP_ATTN_VW
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef uint32_t vu __attribute__((vector_size(VW * 4)));

static inline vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf splat(float x)
{
#if VW == 16
    return _mm512_set1_ps(x);
#elif VW == 8
    return _mm256_set1_ps(x);
#else
    return (vf){x, x, x, x};
#endif
}

/* a * b + c, rounded once at the levels with FMA (8 and 16 lanes). */
static inline vf fmadd(vf a, vf b, vf c)
{
#if VW == 16
    return _mm512_fmadd_ps(a, b, c);
#elif VW == 8
    return _mm256_fmadd_ps(a, b, c);
#else
    return a * b + c;
#endif
}

/* a > b ? a : b per lane (what maxps computes, NaN and zeros included). */
static inline vf vmax(vf a, vf b)
{
#if VW == 16
    return _mm512_max_ps(a, b);
#elif VW == 8
    return _mm256_max_ps(a, b);
#else
    const vi m = a > b;
    return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

static inline vf vselect(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

static inline bool any(vi m)
{
    int32_t r = 0;
    for (int k = 0; k < VW; k++)
        r |= m[k];
    return r != 0;
}

/* 2^x for x <= 0 (-inf included). Below -125 the result is 0 rather than
 * a subnormal: 2^-125 of the largest weight is far below any float sum's
 * resolution, and subnormal products would take the slow path. */
static inline vf vexp2(vf x)
{
    const vf lo = splat(-125.0f), shift = splat(12582912.0f); /* 1.5 * 2^23 */
    const vi under = x < lo;
    x = vmax(x, lo);
    const vf t = x + shift; /* round to nearest: n sits in t's low mantissa bits */
    const vf r = x - (t - shift);
    vf p = fmadd(splat(1.535336188319500e-4f), r, splat(1.339887440266574e-3f));
    p = fmadd(p, r, splat(9.618437357674640e-3f));
    p = fmadd(p, r, splat(5.550332471162809e-2f));
    p = fmadd(p, r, splat(2.402264791363012e-1f));
    p = fmadd(p, r, splat(6.931472028550421e-1f));
    const vf y = fmadd(p, r, splat(1.0f));
    const vu e = ((vu)t - (vu)shift) << 23;
    return (vf)(((vu)y + e) & ~(vu)under);
}

/* A block's rows of one kv head to F32, cnt rows of hd elements from
 * src (stride bytes apart) into dst (hdp floats apart): one call per block,
 * 16 elements per instruction at the AVX-512 level. The results are
 * kv_pool's conversions exactly (F16 is exact in F32; Q8_0 is d * q in one
 * rounding). */
typedef void (*load_block_fn)(const uint8_t *src, size_t stride, int cnt, int hd, float *dst,
                              int hdp);

static void load_block_f16(const uint8_t *src, size_t stride, int cnt, int hd, float *dst, int hdp)
{
    for (int j = 0; j < cnt; j++, src += stride, dst += hdp) {
        const uint16_t *h = (const uint16_t *)src;
        int d = 0;
#if VW == 16
        for (; d + 16 <= hd; d += 16)
            _mm512_storeu_ps(dst + d,
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + d))));
#endif
        wisp_vec_f16_to_f32(h + d, dst + d, hd - d);
    }
}

static void load_block_q8_0(const uint8_t *src, size_t stride, int cnt, int hd, float *dst, int hdp)
{
    for (int j = 0; j < cnt; j++, src += stride, dst += hdp) {
        const wisp_block_q8_0 *b = (const wisp_block_q8_0 *)src;
        for (int i = 0; i < hd / WISP_QK8_0; i++) {
            const float d = wisp_half_to_float(b[i].d);
            float *y = dst + i * WISP_QK8_0;
#if VW == 16
            for (int k = 0; k < WISP_QK8_0; k += 16) {
                const __m128i q8 = _mm_loadu_si128((const __m128i *)(b[i].qs + k));
                const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8));
                _mm512_storeu_ps(y + k, _mm512_mul_ps(_mm512_set1_ps(d), qf));
            }
#else
            for (int k = 0; k < WISP_QK8_0; k++)
                y[k] = d * (float)b[i].qs[k];
#endif
        }
    }
}

static void load_block_f32(const uint8_t *src, size_t stride, int cnt, int hd, float *dst, int hdp)
{
    for (int j = 0; j < cnt; j++, src += stride, dst += hdp)
        memcpy(dst, src, sizeof(float) * (size_t)hd);
}

static const load_block_fn load_block[] = {
    [WISP_KV_F16] = load_block_f16,
    [WISP_KV_Q8_0] = load_block_q8_0,
    [WISP_KV_F32] = load_block_f32,
};

/* Query lanes per work item in a prefill: enough that each K/V block's
 * conversion is shared by many queries, few enough that the transposed
 * queries, accumulators and block stay in L1. */
#define TILE_LANES 64
/* ...and at most this many rows: a tile's last block is computed for all
 * its rows, up to TILE_ROWS - 1 positions past what a row sees (measured:
 * MHA prefill 7.4 ms with 64-row tiles, 5.8 with 32). */
#define TILE_ROWS 32
/* Positions per score pass and output dims per accumulation pass: eight
 * independent FMA chains cover the FMA latency. */
#define CHUNK 8

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

static int row_tile(int n_rep)
{
    const int rows = n_rep >= TILE_LANES ? 1 : TILE_LANES / n_rep;
    return rows < TILE_ROWS ? rows : TILE_ROWS;
}

/* Head dim padded for rows of whole CHUNKs and whole vectors (both powers
 * of two); block size padded to whole CHUNKs of positions. */
static int pad_hd(int hd) { return round_up(hd, VW > CHUNK ? VW : CHUNK); }
static int pad_bs(int bs) { return round_up(bs, CHUNK); }

static size_t scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size)
{
    const int n_rep = n_head / n_head_kv;
    const size_t ld = (size_t)round_up(row_tile(n_rep) * n_rep, VW);
    const size_t hd = (size_t)head_dim, hdp = (size_t)pad_hd(head_dim);
    const size_t bsp = (size_t)pad_bs(block_size);
    /* qT[hd][ld], acc[hdp * ld], s[bsp][ld], kb[bsp][hdp], vb[bsp][hdp],
     * max, sum, rescale factor and last visible position [ld] */
    return hd * ld + hdp * ld + bsp * ld + 2 * bsp * hdp + 4 * ld;
}

/* s[j][o..o+VW) = sum_d qT[d][o..] * k[j][d] for j < cnt rounded up to
 * CHUNK (k's rows past cnt are zero). The accumulators are spelled out
 * (GCC at -O2 keeps an array of them in memory); pairs of query vectors
 * share each broadcast K element. Every lane's sum runs over d in order
 * in both loops, so it does not matter which one a lane falls in. */
static inline __attribute__((always_inline)) void block_scores_hd(const float *qT, int ld,
                                                                  const float *k, int hd, int hdp,
                                                                  int cnt, float *s)
{
    int o0 = 0;
    for (; o0 + 2 * VW <= ld; o0 += 2 * VW)
        for (int j = 0; j < cnt; j += CHUNK) {
            const float *k0 = k + (size_t)j * hdp, *k1 = k0 + hdp, *k2 = k1 + hdp, *k3 = k2 + hdp;
            const float *k4 = k3 + hdp, *k5 = k4 + hdp, *k6 = k5 + hdp, *k7 = k6 + hdp;
            vf a0 = splat(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            vf b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
            for (int d = 0; d < hd; d++) {
                const float *qd = qT + (size_t)d * ld + o0;
                const vf q = load(qd), r = load(qd + VW);
                vf x;
                x = splat(k0[d]);
                a0 = fmadd(q, x, a0);
                b0 = fmadd(r, x, b0);
                x = splat(k1[d]);
                a1 = fmadd(q, x, a1);
                b1 = fmadd(r, x, b1);
                x = splat(k2[d]);
                a2 = fmadd(q, x, a2);
                b2 = fmadd(r, x, b2);
                x = splat(k3[d]);
                a3 = fmadd(q, x, a3);
                b3 = fmadd(r, x, b3);
                x = splat(k4[d]);
                a4 = fmadd(q, x, a4);
                b4 = fmadd(r, x, b4);
                x = splat(k5[d]);
                a5 = fmadd(q, x, a5);
                b5 = fmadd(r, x, b5);
                x = splat(k6[d]);
                a6 = fmadd(q, x, a6);
                b6 = fmadd(r, x, b6);
                x = splat(k7[d]);
                a7 = fmadd(q, x, a7);
                b7 = fmadd(r, x, b7);
            }
            float *sj = s + (size_t)j * ld + o0;
            store(sj, a0);
            store(sj + VW, b0);
            store(sj + ld, a1);
            store(sj + ld + VW, b1);
            store(sj + 2 * (size_t)ld, a2);
            store(sj + 2 * (size_t)ld + VW, b2);
            store(sj + 3 * (size_t)ld, a3);
            store(sj + 3 * (size_t)ld + VW, b3);
            store(sj + 4 * (size_t)ld, a4);
            store(sj + 4 * (size_t)ld + VW, b4);
            store(sj + 5 * (size_t)ld, a5);
            store(sj + 5 * (size_t)ld + VW, b5);
            store(sj + 6 * (size_t)ld, a6);
            store(sj + 6 * (size_t)ld + VW, b6);
            store(sj + 7 * (size_t)ld, a7);
            store(sj + 7 * (size_t)ld + VW, b7);
        }
    for (int o = o0; o < ld; o += VW)
        for (int j = 0; j < cnt; j += CHUNK) {
            const float *k0 = k + (size_t)j * hdp, *k1 = k0 + hdp, *k2 = k1 + hdp, *k3 = k2 + hdp;
            const float *k4 = k3 + hdp, *k5 = k4 + hdp, *k6 = k5 + hdp, *k7 = k6 + hdp;
            vf a0 = splat(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int d = 0; d < hd; d++) {
                const vf q = load(qT + (size_t)d * ld + o);
                a0 = fmadd(q, splat(k0[d]), a0);
                a1 = fmadd(q, splat(k1[d]), a1);
                a2 = fmadd(q, splat(k2[d]), a2);
                a3 = fmadd(q, splat(k3[d]), a3);
                a4 = fmadd(q, splat(k4[d]), a4);
                a5 = fmadd(q, splat(k5[d]), a5);
                a6 = fmadd(q, splat(k6[d]), a6);
                a7 = fmadd(q, splat(k7[d]), a7);
            }
            float *sj = s + (size_t)j * ld + o;
            store(sj, a0);
            store(sj + ld, a1);
            store(sj + 2 * (size_t)ld, a2);
            store(sj + 3 * (size_t)ld, a3);
            store(sj + 4 * (size_t)ld, a4);
            store(sj + 5 * (size_t)ld, a5);
            store(sj + 6 * (size_t)ld, a6);
            store(sj + 7 * (size_t)ld, a7);
        }
}

/* With the head dim a constant, the eight K rows are one pointer plus
 * fixed offsets rather than eight pointers stepped in the inner loop. */
static void block_scores(const float *qT, int ld, const float *k, int hd, int hdp, int cnt,
                         float *s)
{
    switch (hd) {
    case 64: block_scores_hd(qT, ld, k, 64, 64, cnt, s); break;
    case 128: block_scores_hd(qT, ld, k, 128, 128, cnt, s); break;
    default: block_scores_hd(qT, ld, k, hd, hdp, cnt, s);
    }
}

/* accT[d][o..o+VW) += sum_{j < cnt} p[j][o..] * v[j][d], j in order. */
static void block_values(const float *p, int ld, const float *v, int hdp, int cnt, float *accT)
{
    for (int o = 0; o < ld; o += VW)
        for (int d = 0; d < hdp; d += CHUNK) {
            float *ad = accT + (size_t)d * ld + o;
            vf a0 = load(ad), a1 = load(ad + ld), a2 = load(ad + 2 * (size_t)ld);
            vf a3 = load(ad + 3 * (size_t)ld), a4 = load(ad + 4 * (size_t)ld);
            vf a5 = load(ad + 5 * (size_t)ld), a6 = load(ad + 6 * (size_t)ld);
            vf a7 = load(ad + 7 * (size_t)ld);
            for (int j = 0; j < cnt; j++) {
                const vf pj = load(p + (size_t)j * ld + o);
                const float *vj = v + (size_t)j * hdp + d;
                a0 = fmadd(pj, splat(vj[0]), a0);
                a1 = fmadd(pj, splat(vj[1]), a1);
                a2 = fmadd(pj, splat(vj[2]), a2);
                a3 = fmadd(pj, splat(vj[3]), a3);
                a4 = fmadd(pj, splat(vj[4]), a4);
                a5 = fmadd(pj, splat(vj[5]), a5);
                a6 = fmadd(pj, splat(vj[6]), a6);
                a7 = fmadd(pj, splat(vj[7]), a7);
            }
            store(ad, a0);
            store(ad + ld, a1);
            store(ad + 2 * (size_t)ld, a2);
            store(ad + 3 * (size_t)ld, a3);
            store(ad + 4 * (size_t)ld, a4);
            store(ad + 5 * (size_t)ld, a5);
            store(ad + 6 * (size_t)ld, a6);
            store(ad + 7 * (size_t)ld, a7);
        }
}

/* The same sums as block_values, laid out acc[m][d] with lanes along d:
 * each element's chain over j is the same FMA sequence, so the two give
 * the same bits. For a run with fewer queries than lanes (a decode) this
 * wastes no lanes. Queries go four at a time (ld is a multiple of 4, the
 * lanes past nq are finite and never read back). */
static void block_values_rows(const float *p, int ld, const float *v, int hdp, int cnt, int nq,
                              float *acc)
{
    for (int m = 0; m < nq; m += 4) {
        float *r0 = acc + (size_t)m * hdp, *r1 = r0 + hdp, *r2 = r1 + hdp, *r3 = r2 + hdp;
        int d = 0;
        for (; d + 4 * VW <= hdp; d += 4 * VW) {
            vf a00 = load(r0 + d), a01 = load(r0 + d + VW), a02 = load(r0 + d + 2 * VW);
            vf a03 = load(r0 + d + 3 * VW), a10 = load(r1 + d), a11 = load(r1 + d + VW);
            vf a12 = load(r1 + d + 2 * VW), a13 = load(r1 + d + 3 * VW), a20 = load(r2 + d);
            vf a21 = load(r2 + d + VW), a22 = load(r2 + d + 2 * VW), a23 = load(r2 + d + 3 * VW);
            vf a30 = load(r3 + d), a31 = load(r3 + d + VW), a32 = load(r3 + d + 2 * VW);
            vf a33 = load(r3 + d + 3 * VW);
            for (int j = 0; j < cnt; j++) {
                const float *vj = v + (size_t)j * hdp + d, *pj = p + (size_t)j * ld + m;
                const vf v0 = load(vj), v1 = load(vj + VW), v2 = load(vj + 2 * VW);
                const vf v3 = load(vj + 3 * VW);
                vf x = splat(pj[0]);
                a00 = fmadd(x, v0, a00);
                a01 = fmadd(x, v1, a01);
                a02 = fmadd(x, v2, a02);
                a03 = fmadd(x, v3, a03);
                x = splat(pj[1]);
                a10 = fmadd(x, v0, a10);
                a11 = fmadd(x, v1, a11);
                a12 = fmadd(x, v2, a12);
                a13 = fmadd(x, v3, a13);
                x = splat(pj[2]);
                a20 = fmadd(x, v0, a20);
                a21 = fmadd(x, v1, a21);
                a22 = fmadd(x, v2, a22);
                a23 = fmadd(x, v3, a23);
                x = splat(pj[3]);
                a30 = fmadd(x, v0, a30);
                a31 = fmadd(x, v1, a31);
                a32 = fmadd(x, v2, a32);
                a33 = fmadd(x, v3, a33);
            }
            store(r0 + d, a00);
            store(r0 + d + VW, a01);
            store(r0 + d + 2 * VW, a02);
            store(r0 + d + 3 * VW, a03);
            store(r1 + d, a10);
            store(r1 + d + VW, a11);
            store(r1 + d + 2 * VW, a12);
            store(r1 + d + 3 * VW, a13);
            store(r2 + d, a20);
            store(r2 + d + VW, a21);
            store(r2 + d + 2 * VW, a22);
            store(r2 + d + 3 * VW, a23);
            store(r3 + d, a30);
            store(r3 + d + VW, a31);
            store(r3 + d + 2 * VW, a32);
            store(r3 + d + 3 * VW, a33);
        }
        for (; d < hdp; d += VW) {
            vf a0 = load(r0 + d), a1 = load(r1 + d), a2 = load(r2 + d), a3 = load(r3 + d);
            for (int j = 0; j < cnt; j++) {
                const float *pj = p + (size_t)j * ld + m;
                const vf vj = load(v + (size_t)j * hdp + d);
                a0 = fmadd(splat(pj[0]), vj, a0);
                a1 = fmadd(splat(pj[1]), vj, a1);
                a2 = fmadd(splat(pj[2]), vj, a2);
                a3 = fmadd(splat(pj[3]), vj, a3);
            }
            store(r0 + d, a0);
            store(r1 + d, a1);
            store(r2 + d, a2);
            store(r3 + d, a3);
        }
    }
}

/* Folds the block's scores s[j < cnt] into the running max and sum of
 * lanes o..o+VW and leaves the weights in s and, in c, the factor by which
 * the lanes' accumulators must be rescaled: exactly 1 where the max did not
 * grow. Returns whether any lane's factor is not 1. Positions past a
 * lane's last get weight 0. Even and odd positions go to separate max and
 * sum chains (a lane's weights past its last position are +0, so its sums
 * do not depend on cnt either). */
static bool block_softmax(float *s, int ld, int o, int p0, int cnt, bool masked, const float *last,
                          float *mx, float *sum, float *c)
{
    const vf lv = load(last + o), ninf = splat(-INFINITY);
    if (masked)
        for (int j = 0; j < cnt; j++) {
            float *sj = s + (size_t)j * ld + o;
            store(sj, vselect(splat((float)(p0 + j)) > lv, ninf, load(sj)));
        }
    vf bm0 = ninf, bm1 = ninf;
    int j = 0;
    for (; j + 2 <= cnt; j += 2) {
        bm0 = vmax(bm0, load(s + (size_t)j * ld + o));
        bm1 = vmax(bm1, load(s + (size_t)(j + 1) * ld + o));
    }
    if (j < cnt)
        bm0 = vmax(bm0, load(s + (size_t)j * ld + o));
    const vf m_old = load(mx + o), m = vmax(m_old, vmax(bm0, bm1));
    const vf cv = vexp2(m_old - m);
    vf bs0 = splat(0.0f), bs1 = bs0;
    for (j = 0; j + 2 <= cnt; j += 2) {
        float *sj = s + (size_t)j * ld + o;
        const vf w0 = vexp2(load(sj) - m), w1 = vexp2(load(sj + ld) - m);
        store(sj, w0);
        store(sj + ld, w1);
        bs0 += w0;
        bs1 += w1;
    }
    if (j < cnt) {
        const vf w = vexp2(load(s + (size_t)j * ld + o) - m);
        store(s + (size_t)j * ld + o, w);
        bs0 += w;
    }
    store(sum + o, load(sum + o) * cv + (bs0 + bs1));
    store(mx + o, m);
    store(c + o, cv);
    return any(cv != splat(1.0f));
}

/* Rows r0 .. r0+nr-1 (nr <= row_tile) of one sequence at consecutive
 * positions, against kv head hk. The accumulators are accT[d][lane]
 * (block_values) when the queries fill the vectors, acc[query][d]
 * (block_values_rows) when they fill less than one: a decode. */
static void attend_run(const wisp_attn_job *job, int r0, int nr, int hk, float *scratch)
{
    const wisp_kv_pool *kv = job->kv;
    const int hd = kv->head_dim, hdp = pad_hd(hd), bs = kv->block_size, bsp = pad_bs(bs);
    const int n_rep = job->n_head / job->n_head_kv, nq = nr * n_rep, ld = round_up(nq, VW);
    const bool rows = nq < VW;
    const size_t stride = (size_t)job->n_head * hd;
    float *qT = scratch;                                 /* [hd][ld] */
    float *acc = qT + (size_t)hd * ld;                   /* [hdp][ld] or [ld][hdp] */
    float *s = acc + (size_t)hdp * ld;                   /* [bsp][ld] */
    float *kb = s + (size_t)bsp * ld;                    /* [bsp][hdp] the block's K */
    float *vb = kb + (size_t)bsp * hdp;                  /* [bsp][hdp] the block's V */
    float *mx = vb + (size_t)bsp * hdp;                  /* [ld] */
    float *sum = mx + ld, *c = sum + ld, *last = c + ld; /* [ld] */
    const int32_t *table = job->row_table[r0];
    const int pos_first = job->row_pos[r0], n_ctx = job->row_pos[r0 + nr - 1] + 1;
    /* Scores in log2 units, so that the softmax's exp is a 2^x. */
    const float qscale = job->scale * 1.44269504088896341f;
    const load_block_fn load_kv = load_block[kv->type];
    const size_t row_stride = (size_t)kv->n_head_kv * kv->row_bytes;

    /* Lanes past nq hold a zero query that sees every position: finite
     * scores, never read back. */
    for (int i = 0; i < ld; i++) {
        last[i] = (float)(i < nq ? pos_first + i / n_rep : n_ctx);
        mx[i] = -INFINITY;
        sum[i] = 0.0f;
    }
    for (int i = 0; i < nq; i++) {
        const float *q = job->q + (size_t)(r0 + i / n_rep) * stride +
                         ((size_t)hk * n_rep + (size_t)(i % n_rep)) * hd;
        for (int d = 0; d < hd; d++)
            qT[(size_t)d * ld + i] = q[d] * qscale;
    }
    if (nq < ld)
        for (int d = 0; d < hd; d++)
            memset(qT + (size_t)d * ld + nq, 0, sizeof(float) * (size_t)(ld - nq));
    memset(acc, 0, sizeof(float) * (size_t)hdp * ld);
    /* V's columns past hd are computed on but never read: keep them zero
     * (K's are not read at all). */
    if (hdp > hd)
        for (int j = 0; j < bs; j++)
            memset(vb + (size_t)j * hdp + hd, 0, sizeof(float) * (size_t)(hdp - hd));

    for (int p0 = 0; p0 < n_ctx; p0 += bs) {
        const int32_t blk = table[p0 / bs];
        const int cnt = n_ctx - p0 < bs ? n_ctx - p0 : bs;
        load_kv(wisp_kv_row(kv, job->layer, 0, blk, 0, hk), row_stride, cnt, hd, kb, hdp);
        load_kv(wisp_kv_row(kv, job->layer, 1, blk, 0, hk), row_stride, cnt, hd, vb, hdp);
        if (cnt % CHUNK)
            memset(kb + (size_t)cnt * hdp, 0, sizeof(float) * (size_t)(pad_bs(cnt) - cnt) * hdp);
        block_scores(qT, ld, kb, hd, hdp, cnt, s);
        /* Causal: lane i sees positions <= last[i]; only the blocks that
         * reach past the first row's position need the mask. */
        const bool masked = p0 + cnt - 1 > pos_first;
        bool grew = false;
        for (int o = 0; o < ld; o += VW)
            grew |= block_softmax(s, ld, o, p0, cnt, masked, last, mx, sum, c);
        if (rows) {
            /* The max grew: rescale what was summed under the old one. */
            if (grew)
                for (int i = 0; i < nq; i++)
                    if (c[i] != 1.0f)
                        for (int d = 0; d < hdp; d += VW)
                            store(acc + (size_t)i * hdp + d,
                                  load(acc + (size_t)i * hdp + d) * splat(c[i]));
            block_values_rows(s, ld, vb, hdp, cnt, nq, acc);
        } else {
            if (grew)
                for (int d = 0; d < hdp; d++)
                    for (int o = 0; o < ld; o += VW)
                        store(acc + (size_t)d * ld + o,
                              load(acc + (size_t)d * ld + o) * load(c + o));
            block_values(s, ld, vb, hdp, cnt, acc);
        }
    }

    for (int i = 0; i < nq; i++) {
        float *out = job->out + (size_t)(r0 + i / n_rep) * stride +
                     ((size_t)hk * n_rep + (size_t)(i % n_rep)) * hd;
        /* sum >= 1: the max element contributes 2^0. */
        const float inv = 1.0f / sum[i];
        if (rows)
            for (int d = 0; d < hd; d++)
                out[d] = acc[(size_t)i * hdp + d] * inv;
        else
            for (int d = 0; d < hd; d++)
                out[d] = acc[(size_t)d * ld + i] * inv;
    }
}

/* Work items are (run, kv head), numbered in row order; a run is up to
 * row_tile consecutive rows of one sequence, so a prefill's long rows at
 * the end spread over all threads and a batch of decodes is one run per
 * sequence. Threads claim items from a shared counter (each thread's
 * claims increase, so one pass over the items serves it): a thread the
 * machine delays, or one with the long rows of a prefill, leaves the rest
 * to the others. Which thread runs an item does not change its bits. */
static void attention_task(void *ctx, int ith, int nth)
{
    wisp_attn_run *run = ctx;
    const wisp_attn_job *job = run->job;
    (void)nth;
    float *scratch = job->scratch + (size_t)ith * job->scratch_floats;
    const int tile = row_tile(job->n_head / job->n_head_kv);
    long item = 0, mine = atomic_fetch_add_explicit(&run->next, 1, memory_order_relaxed);
    for (int r0 = 0; r0 < job->n_rows;) {
        int nr = 1;
        while (nr < tile && r0 + nr < job->n_rows &&
               job->row_table[r0 + nr] == job->row_table[r0] &&
               job->row_pos[r0 + nr] == job->row_pos[r0] + nr)
            nr++;
        for (int hk = 0; hk < job->n_head_kv; hk++, item++)
            if (item == mine) {
                attend_run(job, r0, nr, hk, scratch);
                mine = atomic_fetch_add_explicit(&run->next, 1, memory_order_relaxed);
            }
        r0 += nr;
    }
}

const wisp_attn_level WISP_ATTN_LEVEL = {.scratch_floats = scratch_floats, .task = attention_task};
