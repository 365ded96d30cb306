/*
 * attention.c - causal attention over the paged KV pool (see attention.h).
 *
 * Per work item (query row, kv head) and per KV block: convert the block's
 * K rows to F32 once (transposed), score them against every query head of
 * the group,
 * fold the block's scores into the running max/sum (rescaling the
 * accumulators when the max grows), then accumulate the block's V rows.
 * Items are dealt round-robin to threads so that the long rows at the end
 * of a causal prefill spread over all of them.
 */
#include "engine/cpu/attention.h"

#include <math.h>
#include <string.h>


/* Eight floats as one GCC/Clang vector: the compiler emits AVX (or SSE, or
 * NEON) for the build's -march without intrinsics, where -O2's cautious
 * vectorizer leaves loops of unknown length scalar. */
typedef float v8f __attribute__((vector_size(32)));

#define LD8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define ST8(p, v) do { v8f w_ = (v); memcpy((p), &w_, sizeof w_); } while (0)

static int round8(int n) { return (n + 7) & ~7; }

/* y += a * x over n floats. */
static void axpy(float *restrict y, float a, const float *restrict x, int n)
{
    const v8f va = (v8f){0} + a;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        ST8(y + i, LD8(y + i) + va * LD8(x + i));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* x *= a over n floats. */
static void scale(float *x, float a, int n)
{
    const v8f va = (v8f){0} + a;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        ST8(x + i, LD8(x + i) * va);
    for (; i < n; i++)
        x[i] *= a;
}

size_t wisp_attention_scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size)
{
    const size_t n_rep = (size_t)(n_head / n_head_kv), hd = (size_t)head_dim;
    const size_t bsp = (size_t)round8(block_size);
    /* scores[n_rep][bsp], acc[n_rep][hd], row[hd], kT[hd][bsp], max and sum[n_rep] */
    return n_rep * bsp + n_rep * hd + hd + hd * bsp + 2 * n_rep;
}

static void attend_one(const wisp_attn_job *job, int row, int hk, float *scratch)
{
    const wisp_kv_pool *kv = job->kv;
    const int hd = kv->head_dim, bs = kv->block_size, bsp = round8(bs);
    const int n_rep = job->n_head / job->n_head_kv;
    const int stride = job->n_head * hd;
    float *scores = scratch;                     /* [n_rep][bsp] */
    float *acc = scores + (size_t)n_rep * bsp;   /* [n_rep][hd] */
    float *rowbuf = acc + (size_t)n_rep * hd;    /* [hd] */
    float *kT = rowbuf + hd;                     /* [hd][bsp] the block's K, transposed */
    float *mx = kT + (size_t)hd * bsp;           /* [n_rep] */
    float *sum = mx + n_rep;                     /* [n_rep] */
    const float *q = job->q + (size_t)row * stride + (size_t)hk * n_rep * hd;
    const int32_t *table = job->row_table[row];
    const int n_ctx = job->row_pos[row] + 1;
    const v8f vscale = (v8f){0} + job->scale;

    for (int g = 0; g < n_rep; g++) {
        mx[g] = -INFINITY;
        sum[g] = 0.0f;
    }
    memset(acc, 0, sizeof(float) * (size_t)n_rep * hd);

    for (int p0 = 0; p0 < n_ctx; p0 += bs) {
        const int32_t blk = table[p0 / bs];
        const int cnt = n_ctx - p0 < bs ? n_ctx - p0 : bs, cnt8 = round8(cnt);
        /* Scores as q x K^T over the block: with K transposed the inner loop
         * runs along positions, eight independent sums per vector, instead
         * of one dot product (and its horizontal reduction) per position.
         * Columns past cnt are zeroed so the padded lanes stay finite. */
        for (int j = 0; j < cnt; j++) {
            wisp_kv_load_row(kv, wisp_kv_row(kv, job->layer, 0, blk, j, hk), rowbuf);
            for (int d = 0; d < hd; d++)
                kT[(size_t)d * bsp + j] = rowbuf[d];
        }
        if (cnt < cnt8)
            for (int d = 0; d < hd; d++)
                memset(kT + (size_t)d * bsp + cnt, 0, sizeof(float) * (size_t)(cnt8 - cnt));
        for (int g = 0; g < n_rep; g++) {
            float *sc = scores + (size_t)g * bsp;
            const float *qg = q + (size_t)g * hd;
            for (int j0 = 0; j0 < cnt8; j0 += 8) {
                /* Four independent sums: one chain would wait on each add. */
                v8f s0 = (v8f){0}, s1 = s0, s2 = s0, s3 = s0;
                const float *kc = kT + j0;
                int d = 0;
                for (; d + 4 <= hd; d += 4) {
                    s0 += qg[d] * LD8(kc + (size_t)d * bsp);
                    s1 += qg[d + 1] * LD8(kc + (size_t)(d + 1) * bsp);
                    s2 += qg[d + 2] * LD8(kc + (size_t)(d + 2) * bsp);
                    s3 += qg[d + 3] * LD8(kc + (size_t)(d + 3) * bsp);
                }
                for (; d < hd; d++)
                    s0 += qg[d] * LD8(kc + (size_t)d * bsp);
                ST8(sc + j0, ((s0 + s1) + (s2 + s3)) * vscale);
            }
        }
        for (int g = 0; g < n_rep; g++) {
            float *sc = scores + (size_t)g * bsp;
            float m = mx[g];
            for (int j = 0; j < cnt; j++)
                m = sc[j] > m ? sc[j] : m;
            if (m > mx[g]) {
                /* The running max grew: rescale what was summed under the old one. */
                const float c = mx[g] == -INFINITY ? 0.0f : expf(mx[g] - m);
                sum[g] *= c;
                scale(acc + (size_t)g * hd, c, hd);
                mx[g] = m;
            }
            for (int j = 0; j < cnt; j++) {
                sc[j] = expf(sc[j] - m);
                sum[g] += sc[j];
            }
        }
        for (int j = 0; j < cnt; j++) {
            wisp_kv_load_row(kv, wisp_kv_row(kv, job->layer, 1, blk, j, hk), rowbuf);
            for (int g = 0; g < n_rep; g++)
                axpy(acc + (size_t)g * hd, scores[(size_t)g * bsp + j], rowbuf, hd);
        }
    }

    float *out = job->out + (size_t)row * stride + (size_t)hk * n_rep * hd;
    for (int g = 0; g < n_rep; g++) {
        /* sum >= 1: the max element contributes exp(0). */
        const float inv = 1.0f / sum[g];
        for (int d = 0; d < hd; d++)
            out[(size_t)g * hd + d] = acc[(size_t)g * hd + d] * inv;
    }
}

static void attention_task(void *ctx, int ith, int nth)
{
    const wisp_attn_job *job = ctx;
    float *scratch = job->scratch + (size_t)ith * job->scratch_floats;
    const int64_t n_items = (int64_t)job->n_rows * job->n_head_kv;
    for (int64_t it = ith; it < n_items; it += nth)
        attend_one(job, (int)(it / job->n_head_kv), (int)(it % job->n_head_kv), scratch);
}

void wisp_attention_run(wisp_threadpool *tp, const wisp_attn_job *job)
{
    wisp_threadpool_run(tp, attention_task, (void *)job);
}
