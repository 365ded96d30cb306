/*
 * forward.c - one transformer step of the CPU engine, top to bottom.
 *
 * The batch's new tokens from all sequences are laid out as rows of one
 * activation matrix, so every weight is read once per step by one
 * wisp_matmul over all rows (prefill is matrix-matrix, a batch of decodes
 * is too). Only attention looks at which sequence a row belongs to: it
 * reads that sequence's cached K/V through its block table. For each layer
 * (llama / qwen2 / qwen3):
 *
 *   xb = rmsnorm(x) * attn_norm
 *   q, k, v = xb Wq (+bq), xb Wk (+bk), xb Wv (+bv)
 *   q, k = per-head rmsnorm (qwen3); q, k = rope(q, k, pos)
 *   KV[pos] = k, v                       (through the block table)
 *   att = softmax(q K^T / sqrt(head_dim), causal) V
 *   x += att Wo
 *   xb = rmsnorm(x) * ffn_norm
 *   x += (silu(xb Wgate) * xb Wup) Wdown
 *
 * then logits = rmsnorm(x) * out_norm Wout for the rows that want them.
 * should_stop is polled before every layer, so a cancelled prefill stops
 * within one layer.
 *
 * An engine of a chain (engine/stages.h) runs only its layers: it embeds
 * only when its range starts at layer 0 (else x comes from the batch's
 * hidden state), and applies the head only when its range ends at the
 * last layer (else x goes to the hidden state). With streamed weights
 * each layer's matrices come from the stream's arena (stream.h).
 */
#include "engine/cpu/engine_cpu.h"

#include <math.h>
#include <string.h>

#include "engine/cpu/attention.h"

/* ---------------------------------------------------------------- rows */

/* A per-row operation run over rows [0, n_rows) split across the pool. */
typedef struct rows_job {
    wisp_cpu_engine *e;
    int n_rows;
    int layer;
    void (*fn)(wisp_cpu_engine *e, int layer, int row, int ith);
} rows_job;

static void rows_task(void *ctx, int ith, int nth)
{
    const rows_job *j = ctx;
    for (int r = ith; r < j->n_rows; r += nth)
        j->fn(j->e, j->layer, r, ith);
}

/* Rows below this many run on the calling thread: a row's operation takes
 * well under a microsecond for these models, less than waking the pool and
 * joining it, and with one row (every decode step) a second thread would
 * only be woken to find nothing to do. */
#define ROWS_MIN_PARALLEL 4

static void run_rows(wisp_cpu_engine *e, int layer, int n_rows,
                     void (*fn)(wisp_cpu_engine *, int, int, int))
{
    rows_job j = {e, n_rows, layer, fn};
    if (n_rows < ROWS_MIN_PARALLEL)
        rows_task(&j, 0, 1);
    else
        wisp_threadpool_run(e->tp, rows_task, &j);
}

static void row_embed(wisp_cpu_engine *e, int layer, int r, int ith)
{
    wisp_ops_embed_row(e->w->tok_embd, e->row_token[r], e->x + (size_t)r * e->cfg.n_embd);
}

static void row_attn_norm(wisp_cpu_engine *e, int l, int r, int ith)
{
    const int n = e->cfg.n_embd;
    wisp_ops_rmsnorm(e->xb + (size_t)r * n, e->x + (size_t)r * n, e->lv[l].attn_norm, n,
                     e->cfg.norm_eps);
}

static void row_ffn_norm(wisp_cpu_engine *e, int l, int r, int ith)
{
    const int n = e->cfg.n_embd;
    wisp_ops_rmsnorm(e->xb + (size_t)r * n, e->x + (size_t)r * n, e->lv[l].ffn_norm, n,
                     e->cfg.norm_eps);
}

/* Biases, QK-norm, RoPE, then K and V into the pool at the row's position. */
static void row_qkv_prep(wisp_cpu_engine *e, int l, int r, int ith)
{
    const wisp_model_config *c = &e->cfg;
    const wisp_cpu_layer_vecs *lv = &e->lv[l];
    const int hd = c->head_dim, nq = c->n_head * hd, nkv = c->n_head_kv * hd;
    float *q = e->q + (size_t)r * nq;
    float *k = e->k + (size_t)r * nkv;
    float *v = e->v + (size_t)r * nkv;
    if (lv->bq) {
        wisp_ops_add(q, lv->bq, nq);
        wisp_ops_add(k, lv->bk, nkv);
        wisp_ops_add(v, lv->bv, nkv);
    }
    if (lv->q_norm) {
        for (int h = 0; h < c->n_head; h++)
            wisp_ops_rmsnorm(q + h * hd, q + h * hd, lv->q_norm, hd, c->norm_eps);
        for (int h = 0; h < c->n_head_kv; h++)
            wisp_ops_rmsnorm(k + h * hd, k + h * hd, lv->k_norm, hd, c->norm_eps);
    }
    const int pos = e->row_pos[r];
    float *cache = e->rope_scratch + (size_t)ith * e->rope.n_dims;
    wisp_rope_cache(&e->rope, pos, cache);
    for (int h = 0; h < c->n_head; h++)
        wisp_rope_apply(&e->rope, cache, q + h * hd);
    for (int h = 0; h < c->n_head_kv; h++)
        wisp_rope_apply(&e->rope, cache, k + h * hd);

    const int bs = e->kv.block_size;
    const int32_t blk = e->row_table[r][pos / bs];
    const int kl = l - e->layer_begin; /* the pool holds this engine's layers only */
    for (int h = 0; h < c->n_head_kv; h++) {
        wisp_kv_store_row(&e->kv, k + h * hd, wisp_kv_row(&e->kv, kl, 0, blk, pos % bs, h));
        wisp_kv_store_row(&e->kv, v + h * hd, wisp_kv_row(&e->kv, kl, 1, blk, pos % bs, h));
    }
}

/* x += xb: the residual connection, row by row over the pool. */
static void row_residual(wisp_cpu_engine *e, int l, int r, int ith)
{
    const size_t n = (size_t)e->cfg.n_embd;
    wisp_ops_add(e->x + r * n, e->xb + r * n, (int64_t)n);
}

/* The attention block's residual, then the FFN's norm of the sum: one pass
 * over the pool instead of two. */
static void row_residual_ffn_norm(wisp_cpu_engine *e, int l, int r, int ith)
{
    row_residual(e, l, r, ith);
    row_ffn_norm(e, l, r, ith);
}

static void row_swiglu(wisp_cpu_engine *e, int l, int r, int ith)
{
    const size_t n = (size_t)e->cfg.n_ff;
    wisp_ops_swiglu(e->hb + r * n, e->hb2 + r * n, (int64_t)n);
}

static void row_out_norm(wisp_cpu_engine *e, int l, int r, int ith)
{
    /* Gathers wanted row r (source row e->logit_row[r]) into xb, normed. */
    const int n = e->cfg.n_embd;
    wisp_ops_rmsnorm(e->xb + (size_t)r * n, e->x + (size_t)e->logit_row[r] * n, e->out_norm, n,
                     e->cfg.norm_eps);
}

/* ---------------------------------------------------------------- checks */

static int check_batch(const wisp_cpu_engine *e, const wisp_batch *b, int *n_rows, wisp_err *err)
{
    if (!b || b->n_seqs <= 0 || !b->seqs)
        return wisp_err_set(err, WISP_E_INTERNAL, "forward: empty batch");
    if (b->n_seqs > e->opts.max_seqs)
        return wisp_err_set(err, WISP_E_INTERNAL, "forward: %d sequences, engine built for %d",
                            b->n_seqs, e->opts.max_seqs);
    const int bs = e->kv.block_size;
    int64_t total = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const wisp_batch_seq *q = &b->seqs[s];
        if (q->n_tokens <= 0 || !q->tokens || (e->last && !q->logits) || q->pos0 < 0)
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "forward: sequence %d has %d tokens at pos0 %d%s", s, q->n_tokens,
                                q->pos0, q->logits || !e->last ? "" : " and no logits buffer");
        const int64_t need = ((int64_t)q->pos0 + q->n_tokens + bs - 1) / bs;
        if (!q->block_table || q->n_blocks < need)
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "forward: sequence %d covers %d positions, needs %lld blocks of "
                                "%d, block table has %d",
                                s, q->pos0 + q->n_tokens, (long long)need, bs, q->n_blocks);
        for (int64_t i = 0; i < need; i++)
            if (q->block_table[i] < 0 || q->block_table[i] >= e->kv.n_blocks)
                return wisp_err_set(err, WISP_E_INTERNAL,
                                    "forward: sequence %d block table[%lld] = %d outside the "
                                    "pool [0, %d)",
                                    s, (long long)i, (int)q->block_table[i], e->kv.n_blocks);
        for (int i = 0; i < q->n_tokens; i++)
            if (q->tokens[i] < 0 || q->tokens[i] >= e->cfg.vocab_size)
                return wisp_err_set(err, WISP_E_INTERNAL,
                                    "forward: sequence %d token %d is %d, vocabulary has %d", s, i,
                                    (int)q->tokens[i], e->cfg.vocab_size);
        total += q->n_tokens;
    }
    if ((!e->first || !e->last) && !b->hidden)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "forward: layers [%d, %d) of %d need the batch's hidden state",
                            e->layer_begin, e->layer_end, e->cfg.n_layers);
    if (total > e->opts.max_batch_tokens)
        return wisp_err_set(err, WISP_E_INTERNAL, "forward: %lld tokens, engine built for %d",
                            (long long)total, e->opts.max_batch_tokens);
    *n_rows = (int)total;
    return 0;
}

static bool stopped(const wisp_batch *b) { return b->should_stop && b->should_stop(b->stop_ud); }

/* ---------------------------------------------------------------- step */

/* Multiply-adds below which attention runs on the calling thread: a decode
 * over a short context is a few microseconds of work, about what waking
 * the pool and joining it costs (the same bound as the matmuls'). */
#define ATTN_MIN_PARALLEL_MACS (1 << 18)

/* The pool attention runs on, or NULL for the calling thread alone: which
 * thread runs a (rows, kv head) item does not change its bits. */
static wisp_threadpool *attn_pool(const wisp_cpu_engine *e, int n_rows)
{
    const wisp_model_config *c = &e->cfg;
    double macs = 0;
    for (int r = 0; r < n_rows && macs < ATTN_MIN_PARALLEL_MACS; r++)
        macs += 2.0 * (e->row_pos[r] + 1) * c->n_head * c->head_dim;
    return macs < ATTN_MIN_PARALLEL_MACS ? NULL : e->tp;
}

static int layer_forward(wisp_cpu_engine *e, const wisp_layer_weights *lw, int l, int n,
                         wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    int rc;

    run_rows(e, l, n, row_attn_norm);
    const wisp_tensor *qkv[3] = {lw->wq, lw->wk, lw->wv};
    float *qkv_out[3] = {e->q, e->k, e->v};
    if ((rc = wisp_matmul_n(e->tp, qkv, 3, e->xb, n, qkv_out, &e->mm, err)))
        return rc;
    run_rows(e, l, n, row_qkv_prep);

    wisp_attn_job job = {
        .kv = &e->kv,
        .layer = l - e->layer_begin,
        .n_rows = n,
        .row_pos = e->row_pos,
        .row_table = e->row_table,
        .q = e->q,
        .out = e->att,
        .n_head = c->n_head,
        .n_head_kv = c->n_head_kv,
        .scale = 1.0f / sqrtf((float)c->head_dim),
        .scratch = e->attn_scratch,
        .scratch_floats = e->attn_scratch_floats,
    };
    wisp_attention_run(attn_pool(e, n), &job);

    if ((rc = wisp_matmul(e->tp, lw->wo, e->att, n, e->xb, &e->mm, err)))
        return rc;
    run_rows(e, l, n, row_residual_ffn_norm);
    const wisp_tensor *gate_up[2] = {lw->w_gate, lw->w_up};
    float *gate_up_out[2] = {e->hb, e->hb2};
    if ((rc = wisp_matmul_n(e->tp, gate_up, 2, e->xb, n, gate_up_out, &e->mm, err)))
        return rc;
    run_rows(e, l, n, row_swiglu);
    if ((rc = wisp_matmul(e->tp, lw->w_down, e->hb, n, e->xb, &e->mm, err)))
        return rc;
    run_rows(e, l, n, row_residual);
    return 0;
}

/* The output head over the wanted rows, max_logit_rows at a time, each
 * chunk's logits copied to the sequences' buffers. */
static int output_head(wisp_cpu_engine *e, int n_wanted, wisp_err *err)
{
    const size_t vocab = (size_t)e->cfg.vocab_size;
    run_rows(e, -1, n_wanted, row_out_norm);
    for (int r0 = 0; r0 < n_wanted; r0 += e->max_logit_rows) {
        int cnt = n_wanted - r0 < e->max_logit_rows ? n_wanted - r0 : e->max_logit_rows;
        /* Destinations one after another (a scheduler's batch of decodes)
         * take the product directly, sparing a copy of cnt vocab rows. */
        bool contiguous = true;
        for (int i = 1; i < cnt && contiguous; i++)
            contiguous = e->logit_dst[r0 + i] == e->logit_dst[r0] + (size_t)i * vocab;
        float *y = contiguous ? e->logit_dst[r0] : e->logits;
        int rc =
            wisp_matmul(e->tp, e->output, e->xb + (size_t)r0 * e->cfg.n_embd, cnt, y, &e->mm, err);
        if (rc)
            return rc;
        if (!contiguous)
            for (int i = 0; i < cnt; i++)
                memcpy(e->logit_dst[r0 + i], e->logits + (size_t)i * vocab, vocab * sizeof(float));
    }
    return 0;
}

int wisp_cpu_forward(wisp_cpu_engine *e, const wisp_batch *b, wisp_err *err)
{
    int n = 0, rc;
    if ((rc = check_batch(e, b, &n, err)))
        return rc;

    /* Lay the batch out as rows and note which rows want logits. */
    int row = 0, n_wanted = 0;
    const size_t vocab = (size_t)e->cfg.vocab_size;
    for (int s = 0; s < b->n_seqs; s++) {
        const wisp_batch_seq *q = &b->seqs[s];
        for (int i = 0; i < q->n_tokens; i++, row++) {
            e->row_pos[row] = q->pos0 + i;
            e->row_token[row] = q->tokens[i];
            e->row_table[row] = q->block_table;
            if (e->last && (q->all_logits || i == q->n_tokens - 1)) {
                e->logit_row[n_wanted] = row;
                e->logit_dst[n_wanted] = q->logits + (q->all_logits ? (size_t)i * vocab : 0);
                n_wanted++;
            }
        }
    }

    const size_t E = (size_t)e->cfg.n_embd;
    if (e->first)
        run_rows(e, -1, n, row_embed);
    else
        memcpy(e->x, b->hidden, (size_t)n * E * sizeof(float));
    for (int l = e->layer_begin; l < e->layer_end; l++) {
        if (stopped(b))
            return wisp_err_set(err, WISP_E_CANCELLED, "forward: cancelled before layer %d", l);
        const wisp_layer_weights *lw =
            e->stream ? wisp_cpu_stream_acquire(e->stream, l) : &e->w->layers[l];
        rc = layer_forward(e, lw, l, n, err);
        if (e->stream)
            wisp_cpu_stream_release(e->stream, l);
        if (rc) {
            wisp_err_prefix(err, "forward: layer %d", l);
            return rc;
        }
    }
    if (!e->last) {
        memcpy(b->hidden, e->x, (size_t)n * E * sizeof(float));
        return 0;
    }
    if (stopped(b))
        return wisp_err_set(err, WISP_E_CANCELLED, "forward: cancelled before the output head");
    if ((rc = output_head(e, n_wanted, err)))
        wisp_err_prefix(err, "forward: output head");
    return rc;
}
