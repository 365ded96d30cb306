/*
 * cuda_forward.c - one transformer step of the CUDA engine, top to bottom.
 *
 * The same math, in the same order, as the CPU engine (forward.c there):
 * the batch's new tokens are the rows of one activation matrix, every
 * weight is applied once to all rows, and only attention looks at which
 * sequence a row belongs to. Per layer:
 *
 *   xn = rmsnorm(x) * attn_norm
 *   q, k, v = xn Wq (+bq), xn Wk (+bk), xn Wv (+bv)
 *   q, k = per-head rmsnorm (qwen3); q, k = rope(q, k, pos)
 *   KV[slot] = k, v
 *   att = softmax(q K^T / sqrt(head_dim), causal) V     (paged, GQA)
 *   x += att Wo
 *   xn = rmsnorm(x) * ffn_norm
 *   x += (silu(xn Wgate) * xn Wup) Wdown
 *
 * then logits = rmsnorm(x) * out_norm Wout for the rows that want them,
 * in chunks, copied back through a pinned buffer. Products of up to
 * WISP_K_MATVEC_MAX_TOKENS rows use the dequantizing matvec (decode);
 * larger ones cuBLAS (prefill). Everything is queued on one stream; the
 * host prepares the step's metadata (token ids, positions, KV slots, block
 * tables, attention work items) in one pinned block sent with one copy,
 * and waits only for the logits. should_stop is polled before each layer.
 * A streamed layer (cuda_stream.c) computes from the layer buffer its copy
 * was queued into, after the compute stream waited for that copy.
 *
 * An engine of a chain runs its layers only (e->range): one that does not
 * start at layer 0 copies its input rows from the batch's host hidden
 * state instead of embedding, one that does not end at the last layer
 * copies x back there instead of computing logits (and waits for that
 * copy, since the next stage reads it). The hidden buffer is ordinary
 * (pageable) host memory owned by the chain, so these copies stage through
 * the driver; they are n_tokens x n_embd floats per step, small next to
 * the weights a layer reads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/panic.h"
#include "engine/cuda/cuda_int.h"

#define MAX_SPLITS 32
/* A split shorter than this many keys costs more to merge than it saves. */
#define MIN_KEYS_PER_SPLIT 128

/* ---------------------------------------------------------------- metadata */

static size_t al(size_t n) { return (n + 255) / 256 * 256; }

int wisp_cuda_meta_alloc(wisp_cuda_engine *e, int tables_cap, wisp_err *err)
{
    const size_t T = (size_t)e->opts.max_batch_tokens, S = (size_t)e->opts.max_seqs;
    const size_t bytes = 4 * al(T * 4) + al(S * sizeof(wisp_k_attn_seq)) +
                         al((size_t)e->items_cap * sizeof(wisp_k_attn_item)) +
                         al((size_t)tables_cap * 4);
    void *h = NULL, *d = NULL;
    cudaError_t ce = cudaHostAlloc(&h, bytes, cudaHostAllocDefault);
    if (ce == cudaSuccess)
        ce = cudaMalloc(&d, bytes);
    if (ce != cudaSuccess) {
        if (h)
            cudaFreeHost(h);
        cudaGetLastError();
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cuda engine: cannot allocate %zu bytes of step metadata (%s)", bytes,
                            cudaGetErrorString(ce));
    }
    wisp_cuda_meta_free(e);
    e->h_meta = h;
    e->d_meta = d;
    e->meta_bytes = bytes;
    e->tables_cap = tables_cap;
    uint8_t *p = h;
    e->h_tokens = (int32_t *)p, p += al(T * 4);
    e->h_pos = (int32_t *)p, p += al(T * 4);
    e->h_slots = (int32_t *)p, p += al(T * 4);
    e->h_rows = (int32_t *)p, p += al(T * 4);
    e->h_seqs = (wisp_k_attn_seq *)p, p += al(S * sizeof(wisp_k_attn_seq));
    e->h_items = (wisp_k_attn_item *)p, p += al((size_t)e->items_cap * sizeof(wisp_k_attn_item));
    e->h_tables = (int32_t *)p;
    return 0;
}

void wisp_cuda_meta_free(wisp_cuda_engine *e)
{
    if (e->h_meta)
        cudaFreeHost(e->h_meta);
    if (e->d_meta)
        cudaFree(e->d_meta);
    e->h_meta = e->d_meta = NULL;
}

/* The device address of a pointer into the host metadata block. */
static void *dev(const wisp_cuda_engine *e, const void *h)
{
    return (uint8_t *)e->d_meta + ((const uint8_t *)h - (const uint8_t *)e->h_meta);
}

/* ---------------------------------------------------------------- batch */

typedef struct step {
    int n_rows;   /* new tokens in the batch */
    int n_logits; /* rows that want logits */
    int n_tables; /* block-table entries used */
    int n_items;  /* attention work items */
    int max_kv;   /* largest pos0 + n_tok */
} step;

/* Checks the batch against the engine's limits and the pool. */
static int validate(const wisp_cuda_engine *e, const wisp_batch *b, step *st, wisp_err *err)
{
    const int bs = e->opts.block_size, V = e->cfg.vocab_size;
    memset(st, 0, sizeof(*st));
    if (b->n_seqs < 0 || b->n_seqs > e->opts.max_seqs)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "cuda engine: %d sequences in one step; the engine takes %d", b->n_seqs,
                            e->opts.max_seqs);
    int64_t rows = 0, tables = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const wisp_batch_seq *q = &b->seqs[s];
        if (q->n_tokens < 0 || q->pos0 < 0 ||
            (q->n_tokens > 0 && (!q->tokens || (e->range.last && !q->logits))))
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "cuda engine: sequence %d: bad tokens/position/logits", s);
        if (q->n_tokens == 0)
            continue;
        const int64_t end = (int64_t)q->pos0 + q->n_tokens;
        const int64_t need = (end + bs - 1) / bs;
        if (need > q->n_blocks || !q->block_table)
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "cuda engine: sequence %d needs %lld blocks for %lld positions "
                                "and its table has %d",
                                s, (long long)need, (long long)end, q->n_blocks);
        for (int64_t i = 0; i < need; i++)
            if (q->block_table[i] < 0 || q->block_table[i] >= e->opts.n_blocks)
                return wisp_err_set(err, WISP_E_INTERNAL,
                                    "cuda engine: sequence %d: block %d outside the pool [0, %d)",
                                    s, (int)q->block_table[i], e->opts.n_blocks);
        for (int t = 0; t < q->n_tokens; t++)
            if (q->tokens[t] < 0 || q->tokens[t] >= V)
                return wisp_err_set(err, WISP_E_INTERNAL,
                                    "cuda engine: sequence %d: token %d outside the vocabulary "
                                    "[0, %d)",
                                    s, (int)q->tokens[t], V);
        rows += q->n_tokens;
        tables += need;
        st->n_logits += q->all_logits ? q->n_tokens : 1;
        if (end > st->max_kv)
            st->max_kv = (int)end;
    }
    if ((!e->range.first || !e->range.last) && !b->hidden)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "cuda engine: layers [%d, %d) of %d need the batch's hidden state",
                            e->range.begin, e->range.end, e->cfg.n_layers);
    if (rows > e->opts.max_batch_tokens)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "cuda engine: %lld tokens in one step; the engine takes %d",
                            (long long)rows, e->opts.max_batch_tokens);
    if (tables > INT32_MAX / 2)
        return wisp_err_set(err, WISP_E_INTERNAL, "cuda engine: block tables too long");
    st->n_rows = (int)rows;
    st->n_tables = (int)tables;
    return 0;
}

/* Fills the host metadata block for a validated batch. */
static void fill_meta(wisp_cuda_engine *e, const wisp_batch *b, step *st)
{
    const int bs = e->opts.block_size;
    int row = 0, tab = 0, nl = 0, ns = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const wisp_batch_seq *q = &b->seqs[s];
        if (q->n_tokens == 0)
            continue;
        const int need = (q->pos0 + q->n_tokens + bs - 1) / bs;
        memcpy(e->h_tables + tab, q->block_table, (size_t)need * 4);
        e->h_seqs[ns] = (wisp_k_attn_seq){row, q->n_tokens, q->pos0, tab};
        for (int t = 0; t < q->n_tokens; t++) {
            const int pos = q->pos0 + t;
            e->h_tokens[row + t] = q->tokens[t];
            e->h_pos[row + t] = pos;
            e->h_slots[row + t] = q->block_table[pos / bs] * bs + pos % bs;
        }
        const size_t V = (size_t)e->cfg.vocab_size;
        if (!e->range.last) {
            /* no logits: a later stage of the chain has the head */
        } else if (q->all_logits) {
            for (int t = 0; t < q->n_tokens; t++) {
                e->h_rows[nl] = row + t;
                e->logit_dst[nl++] = q->logits + (size_t)t * V;
            }
        } else {
            e->h_rows[nl] = row + q->n_tokens - 1;
            e->logit_dst[nl++] = q->logits;
        }
        row += q->n_tokens;
        tab += need;
        ns++;
    }
    const int group = e->cfg.n_head / e->cfg.n_head_kv;
    st->n_items = wisp_k_attn_items(e->h_seqs, ns, group, e->h_items, e->items_cap);
    WISP_ASSERT(st->n_items <= e->items_cap);
}

/* ---------------------------------------------------------------- steps */

static int matmul(wisp_cuda_engine *e, const wisp_cuda_mat *w, const float *x, int n, float *y,
                  wisp_err *err)
{
    if (n <= WISP_K_MATVEC_MAX_TOKENS)
        return wisp_k_matvec(w->d, w->type, w->n_in, w->n_out, x, n, y, e->stream, err);
    return wisp_k_gemm(e->blas, w->d, w->type, w->n_in, w->n_out, x, n, y, e->act16, e->act16_bytes,
                       e->w16, e->w16_bytes, e->stream, err);
}

/* Splits of the KV range for attention: only when the step has too few
 * work items to fill the GPU (decode), and never below MIN_KEYS_PER_SPLIT
 * keys per split. */
static int choose_splits(const wisp_cuda_engine *e, const step *st)
{
    const int64_t blocks = (int64_t)st->n_items * e->cfg.n_head_kv;
    const int64_t target = 2 * (int64_t)e->dev.n_sms;
    if (blocks >= target)
        return 1;
    int64_t n = (target + blocks - 1) / blocks;
    const int64_t by_len = st->max_kv / MIN_KEYS_PER_SPLIT;
    const int64_t by_mem = e->partial_rows / (st->n_rows > 0 ? st->n_rows : 1);
    n = n < by_len ? n : by_len;
    n = n < by_mem ? n : by_mem;
    n = n < MAX_SPLITS ? n : MAX_SPLITS;
    return n < 1 ? 1 : (int)n;
}

/* Model layer l from weights L; the engine's KV pool indexes it as kl. */
static int layer(wisp_cuda_engine *e, const wisp_cuda_layer *L, int l, const step *st, int n_splits,
                 wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const int kl = l - e->range.begin;
    const int T = st->n_rows, E = c->n_embd, hd = c->head_dim;
    const int Q = c->n_head * hd, KV = c->n_head_kv * hd;
    cudaStream_t s = e->stream;
    const int32_t *d_pos = dev(e, e->h_pos);

    WISP_TRY(wisp_k_rmsnorm(e->x, L->attn_norm, e->xn, T, E, c->norm_eps, s, err));
    WISP_TRY(matmul(e, &L->wq, e->xn, T, e->q, err));
    WISP_TRY(matmul(e, &L->wk, e->xn, T, e->k, err));
    WISP_TRY(matmul(e, &L->wv, e->xn, T, e->v, err));
    if (L->bq) {
        WISP_TRY(wisp_k_add_bias(e->q, L->bq, T, Q, s, err));
        WISP_TRY(wisp_k_add_bias(e->k, L->bk, T, KV, s, err));
        WISP_TRY(wisp_k_add_bias(e->v, L->bv, T, KV, s, err));
    }
    if (L->q_norm) {
        WISP_TRY(
            wisp_k_rmsnorm(e->q, L->q_norm, e->q, (int64_t)T * c->n_head, hd, c->norm_eps, s, err));
        WISP_TRY(wisp_k_rmsnorm(e->k, L->k_norm, e->k, (int64_t)T * c->n_head_kv, hd, c->norm_eps,
                                s, err));
    }
    WISP_TRY(wisp_k_rope(e->q, d_pos, T, c->n_head, &e->rope, s, err));
    WISP_TRY(wisp_k_rope(e->k, d_pos, T, c->n_head_kv, &e->rope, s, err));
    WISP_TRY(wisp_k_kv_append(e->kv, &e->kvl, kl, e->k, e->v, dev(e, e->h_slots), T, s, err));

    wisp_k_attn_params ap = {
        .pool = e->kv,
        .kv = &e->kvl,
        .layer = kl,
        .n_heads = c->n_head,
        .scale = 1.0f / sqrtf((float)hd),
        .q = e->q,
        .out = e->att,
        .seqs = dev(e, e->h_seqs),
        .items = dev(e, e->h_items),
        .n_items = st->n_items,
        .tables = dev(e, e->h_tables),
        .max_kv = st->max_kv,
        .n_splits = n_splits,
        .partial = e->partial,
        .n_rows = T,
    };
    WISP_TRY(wisp_k_attention(&ap, s, err));
    WISP_TRY(matmul(e, &L->wo, e->att, T, e->tmp, err));
    WISP_TRY(wisp_k_add(e->x, e->tmp, (int64_t)T * E, s, err));

    WISP_TRY(wisp_k_rmsnorm(e->x, L->ffn_norm, e->xn, T, E, c->norm_eps, s, err));
    WISP_TRY(matmul(e, &L->w_gate, e->xn, T, e->gate, err));
    WISP_TRY(matmul(e, &L->w_up, e->xn, T, e->up, err));
    WISP_TRY(wisp_k_swiglu(e->gate, e->up, e->gate, (int64_t)T * c->n_ff, s, err));
    WISP_TRY(matmul(e, &L->w_down, e->gate, T, e->tmp, err));
    WISP_TRY(wisp_k_add(e->x, e->tmp, (int64_t)T * E, s, err));
    return 0;
}

/* Final norm and output head for the wanted rows, chunk by chunk, each
 * chunk copied back and scattered to the callers' buffers. */
static int logits(wisp_cuda_engine *e, const step *st, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const int E = c->n_embd;
    const size_t V = (size_t)c->vocab_size;
    cudaStream_t s = e->stream;
    WISP_TRY(wisp_k_gather_rows(e->x, dev(e, e->h_rows), st->n_logits, E, e->xn, s, err));
    WISP_TRY(wisp_k_rmsnorm(e->xn, e->out_norm, e->xn, st->n_logits, E, c->norm_eps, s, err));
    for (int r0 = 0; r0 < st->n_logits; r0 += e->logit_rows) {
        const int n = st->n_logits - r0 < e->logit_rows ? st->n_logits - r0 : e->logit_rows;
        WISP_TRY(matmul(e, &e->output, e->xn + (size_t)r0 * E, n, e->logits, err));
        WISP_CU(err, cudaMemcpyAsync(e->h_logits, e->logits, (size_t)n * V * 4,
                                     cudaMemcpyDeviceToHost, s));
        WISP_CU(err, cudaStreamSynchronize(s));
        for (int r = 0; r < n; r++)
            memcpy(e->logit_dst[r0 + r], e->h_logits + (size_t)r * V, V * 4);
    }
    return 0;
}

static int run(wisp_cuda_engine *e, const wisp_batch *b, const step *st, wisp_err *err)
{
    /* Only the used prefix of the metadata block travels. */
    const size_t used =
        (size_t)((const uint8_t *)(e->h_tables + st->n_tables) - (const uint8_t *)e->h_meta);
    WISP_CU(err, cudaMemcpyAsync(e->d_meta, e->h_meta, used, cudaMemcpyHostToDevice, e->stream));
    const size_t hbytes = wisp_cuda_hidden_bytes(&e->cfg, st->n_rows);
    if (e->range.first)
        WISP_TRY(wisp_k_embed(e->tok_embd.d, e->tok_embd.type, e->cfg.n_embd, dev(e, e->h_tokens),
                              st->n_rows, e->x, e->stream, err));
    else
        WISP_CU(err, cudaMemcpyAsync(e->x, b->hidden, hbytes, cudaMemcpyHostToDevice, e->stream));
    const int n_splits = choose_splits(e, st);
    for (int l = e->range.begin; l < e->range.end; l++) {
        if (b->should_stop && b->should_stop(b->stop_ud))
            return wisp_err_set(err, WISP_E_CANCELLED, "cuda engine: step cancelled at layer %d",
                                l);
        const wisp_cuda_layer *L;
        int slot;
        WISP_TRY(wisp_cuda_stream_acquire(e, l, &L, &slot, err));
        WISP_TRY(layer(e, L, l, st, n_splits, err));
        WISP_TRY(wisp_cuda_stream_release(e, l, slot, err));
    }
    if (e->range.last)
        return logits(e, st, err);
    WISP_CU(err, cudaMemcpyAsync(b->hidden, e->x, hbytes, cudaMemcpyDeviceToHost, e->stream));
    WISP_CU(err, cudaStreamSynchronize(e->stream));
    return 0;
}

int wisp_cuda_forward(wisp_cuda_engine *e, const wisp_batch *b, wisp_err *err)
{
    WISP_TRY(wisp_cuda_enter(e, err));
    step st;
    WISP_TRY(validate(e, b, &st, err));
    if (st.n_rows == 0)
        return 0;
    if (st.n_tables > e->tables_cap) {
        /* The pinned block may still feed a copy of the last step. */
        WISP_CU(err, cudaStreamSynchronize(e->stream));
        WISP_TRY(wisp_cuda_meta_alloc(e, 2 * st.n_tables, err));
    }
    fill_meta(e, b, &st);
    int rc = run(e, b, &st, err);
    if (rc == 0)
        rc = wisp_cuda_stream_harvest(e, err);
    if (rc != 0) {
        /* Whatever is still queued reads the metadata and scratch the next
         * step will overwrite: let it drain (its own error, if any, is
         * judged by note_error). */
        cudaStreamSynchronize(e->stream);
    }
    return wisp_cuda_note_error(e, rc, err);
}
