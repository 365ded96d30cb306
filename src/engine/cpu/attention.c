/*
 * attention.c - causal attention over the paged KV pool (see attention.h).
 *
 * Per KV block: convert the block's K rows to F32 once (transposed), score
 * them against every query head of the group, fold the block's scores into
 * the running max/sum (rescaling the accumulators when the max grows), then
 * accumulate the block's V rows.
 * Rows of one sequence go in tiles of ROW_TILE, so a prefill converts each
 * K/V row once per tile instead of once per query row. Items (tile, kv
 * head) are dealt round-robin to threads so that the long rows at the end
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

/* Query rows of one sequence handled together: each K block is converted
 * and transposed once for all of them (prefill), not once per row. */
#define ROW_TILE 4

size_t wisp_attention_scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size)
{
    const size_t n_rep = (size_t)(n_head / n_head_kv), hd = (size_t)head_dim;
    const size_t bsp = (size_t)round8(block_size), rt = ROW_TILE;
    /* scores[rt][n_rep][bsp], acc[rt][n_rep][hd], row[hd], kT[hd][bsp],
     * max and sum[rt][n_rep] */
    return rt * n_rep * bsp + rt * n_rep * hd + hd + hd * bsp + 2 * rt * n_rep;
}

/* Rows r0 .. r0+nr-1 (nr <= ROW_TILE) of one sequence at consecutive
 * positions, against kv head hk. */
static void attend_run(const wisp_attn_job *job, int r0, int nr, int hk, float *scratch)
{
    const wisp_kv_pool *kv = job->kv;
    const int hd = kv->head_dim, bs = kv->block_size, bsp = round8(bs);
    const int n_rep = job->n_head / job->n_head_kv, nq = nr * n_rep;
    const int stride = job->n_head * hd;
    float *scores = scratch;                         /* [nr*n_rep][bsp] */
    float *acc = scores + (size_t)ROW_TILE * n_rep * bsp; /* [nr*n_rep][hd] */
    float *rowbuf = acc + (size_t)ROW_TILE * n_rep * hd;  /* [hd] */
    float *kT = rowbuf + hd;                         /* [hd][bsp] the block's K, transposed */
    float *mx = kT + (size_t)hd * bsp;               /* [nr*n_rep] */
    float *sum = mx + ROW_TILE * n_rep;              /* [nr*n_rep] */
    const int32_t *table = job->row_table[r0];
    const int pos_first = job->row_pos[r0], n_ctx_max = job->row_pos[r0 + nr - 1] + 1;
    const v8f vscale = (v8f){0} + job->scale;

    for (int i = 0; i < nq; i++) {
        mx[i] = -INFINITY;
        sum[i] = 0.0f;
    }
    memset(acc, 0, sizeof(float) * (size_t)nq * hd);

    for (int p0 = 0; p0 < n_ctx_max; p0 += bs) {
        const int32_t blk = table[p0 / bs];
        const int cnt_max = n_ctx_max - p0 < bs ? n_ctx_max - p0 : bs, cnt8 = round8(cnt_max);
        /* Scores as q x K^T over the block: with K transposed the inner loop
         * runs along positions, eight independent sums per vector, instead
         * of one dot product (and its horizontal reduction) per position.
         * Columns past cnt_max are zeroed so the padded lanes stay finite. */
        for (int j = 0; j < cnt_max; j++) {
            wisp_kv_load_row(kv, wisp_kv_row(kv, job->layer, 0, blk, j, hk), rowbuf);
            for (int d = 0; d < hd; d++)
                kT[(size_t)d * bsp + j] = rowbuf[d];
        }
        if (cnt_max < cnt8)
            for (int d = 0; d < hd; d++)
                memset(kT + (size_t)d * bsp + cnt_max, 0, sizeof(float) * (size_t)(cnt8 - cnt_max));
        for (int r = 0; r < nr; r++) {
            /* Causal: row r sees positions <= pos_first + r. */
            const int cnt = pos_first + r + 1 - p0 < bs ? pos_first + r + 1 - p0 : bs;
            if (cnt <= 0)
                continue; /* this row's context ended before the block */
            const float *qr = job->q + (size_t)(r0 + r) * stride + (size_t)hk * n_rep * hd;
            for (int g = 0; g < n_rep; g++) {
                const int i = r * n_rep + g;
                float *sc = scores + (size_t)i * bsp;
                const float *qg = qr + (size_t)g * hd;
                for (int j0 = 0; j0 < cnt; j0 += 8) {
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
                float m = mx[i];
                for (int j = 0; j < cnt; j++)
                    m = sc[j] > m ? sc[j] : m;
                if (m > mx[i]) {
                    /* The running max grew: rescale what was summed under the old one. */
                    const float c = mx[i] == -INFINITY ? 0.0f : expf(mx[i] - m);
                    sum[i] *= c;
                    scale(acc + (size_t)i * hd, c, hd);
                    mx[i] = m;
                }
                for (int j = 0; j < cnt; j++) {
                    sc[j] = expf(sc[j] - m);
                    sum[i] += sc[j];
                }
            }
        }
        for (int j = 0; j < cnt_max; j++) {
            wisp_kv_load_row(kv, wisp_kv_row(kv, job->layer, 1, blk, j, hk), rowbuf);
            /* Row r sees position p0 + j when pos_first + r >= p0 + j. */
            for (int r = p0 + j - pos_first > 0 ? p0 + j - pos_first : 0; r < nr; r++)
                for (int g = 0; g < n_rep; g++) {
                    const int i = r * n_rep + g;
                    axpy(acc + (size_t)i * hd, scores[(size_t)i * bsp + j], rowbuf, hd);
                }
        }
    }

    for (int r = 0; r < nr; r++) {
        float *out = job->out + (size_t)(r0 + r) * stride + (size_t)hk * n_rep * hd;
        for (int g = 0; g < n_rep; g++) {
            /* sum >= 1: the max element contributes exp(0). */
            const int i = r * n_rep + g;
            const float inv = 1.0f / sum[i];
            for (int d = 0; d < hd; d++)
                out[(size_t)g * hd + d] = acc[(size_t)i * hd + d] * inv;
        }
    }
}

static void attention_task(void *ctx, int ith, int nth)
{
    const wisp_attn_job *job = ctx;
    float *scratch = job->scratch + (size_t)ith * job->scratch_floats;
    const int n_tiles = (job->n_rows + ROW_TILE - 1) / ROW_TILE;
    const int64_t n_items = (int64_t)n_tiles * job->n_head_kv;
    for (int64_t it = ith; it < n_items; it += nth) {
        const int t = (int)(it / job->n_head_kv), hk = (int)(it % job->n_head_kv);
        const int end = (t + 1) * ROW_TILE < job->n_rows ? (t + 1) * ROW_TILE : job->n_rows;
        /* Split the tile where the sequence changes (batches of decodes). */
        for (int r0 = t * ROW_TILE; r0 < end;) {
            int nr = 1;
            while (r0 + nr < end && job->row_table[r0 + nr] == job->row_table[r0] &&
                   job->row_pos[r0 + nr] == job->row_pos[r0] + nr)
                nr++;
            attend_run(job, r0, nr, hk, scratch);
            r0 += nr;
        }
    }
}

void wisp_attention_run(wisp_threadpool *tp, const wisp_attn_job *job)
{
    wisp_threadpool_run(tp, attention_task, (void *)job);
}
