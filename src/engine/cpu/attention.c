/*
 * attention.c - causal attention over the paged KV pool (see attention.h).
 *
 * Per work item (query row, kv head) and per KV block: convert each K row
 * of the block to F32 once, score it against every query head of the group,
 * fold the block's scores into the running max/sum (rescaling the
 * accumulators when the max grows), then accumulate the block's V rows.
 * Items are dealt round-robin to threads so that the long rows at the end
 * of a causal prefill spread over all of them.
 */
#include "engine/cpu/attention.h"

#include <math.h>
#include <string.h>

#include "engine/cpu/vec.h"

size_t wisp_attention_scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size)
{
    int n_rep = n_head / n_head_kv;
    /* scores[n_rep][block_size], acc[n_rep][head_dim], row[head_dim], max and sum[n_rep] */
    return (size_t)n_rep * (size_t)block_size + (size_t)n_rep * (size_t)head_dim +
           (size_t)head_dim + 2 * (size_t)n_rep;
}

static void attend_one(const wisp_attn_job *job, int row, int hk, float *scratch)
{
    const wisp_kv_pool *kv = job->kv;
    const int hd = kv->head_dim, bs = kv->block_size;
    const int n_rep = job->n_head / job->n_head_kv;
    const int stride = job->n_head * hd;
    float *scores = scratch;                     /* [n_rep][bs] */
    float *acc = scores + (size_t)n_rep * bs;    /* [n_rep][hd] */
    float *rowbuf = acc + (size_t)n_rep * hd;    /* [hd] */
    float *mx = rowbuf + hd;                     /* [n_rep] */
    float *sum = mx + n_rep;                     /* [n_rep] */
    const float *q = job->q + (size_t)row * stride + (size_t)hk * n_rep * hd;
    const int32_t *table = job->row_table[row];
    const int n_ctx = job->row_pos[row] + 1;

    for (int g = 0; g < n_rep; g++) {
        mx[g] = -INFINITY;
        sum[g] = 0.0f;
    }
    memset(acc, 0, sizeof(float) * (size_t)n_rep * hd);

    for (int p0 = 0; p0 < n_ctx; p0 += bs) {
        const int32_t blk = table[p0 / bs];
        const int cnt = n_ctx - p0 < bs ? n_ctx - p0 : bs;
        for (int j = 0; j < cnt; j++) {
            wisp_kv_load_row(kv, wisp_kv_row(kv, job->layer, 0, blk, j, hk), rowbuf);
            for (int g = 0; g < n_rep; g++)
                scores[g * bs + j] = wisp_vec_dot_f32(q + (size_t)g * hd, rowbuf, hd) * job->scale;
        }
        for (int g = 0; g < n_rep; g++) {
            float *sc = scores + (size_t)g * bs;
            float m = mx[g];
            for (int j = 0; j < cnt; j++)
                m = sc[j] > m ? sc[j] : m;
            if (m > mx[g]) {
                /* The running max grew: rescale what was summed under the old one. */
                const float c = mx[g] == -INFINITY ? 0.0f : expf(mx[g] - m);
                sum[g] *= c;
                wisp_vec_scale_f32(acc + (size_t)g * hd, c, hd);
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
                wisp_vec_axpy_f32(acc + (size_t)g * hd, scores[g * bs + j], rowbuf, hd);
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
