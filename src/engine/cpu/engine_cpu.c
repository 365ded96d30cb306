/*
 * engine_cpu.c - the CPU engine: construction and the engine vtable.
 *
 * Everything a step needs is built here, once: the thread pool, the KV
 * pool, F32 copies of the per-layer vectors, and every scratch buffer sized
 * for the largest step the options allow (max_batch_tokens rows), so a step
 * allocates nothing. Weights are checked against the config with clear
 * errors, because a file whose shapes disagree with its metadata must be
 * refused here rather than read out of bounds in a kernel.
 */
#include "engine/cpu/engine_cpu.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/cpu/amx.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/bf16dot.h"
#include "engine/cpu/repack.h"
#include "model/types.h"

/* ---------------------------------------------------------------- checks */

static int check_tensor(const wisp_tensor *t, const char *what, int layer, int64_t ne0, int64_t ne1,
                        bool optional, wisp_err *err)
{
    if (!t) {
        if (optional)
            return 0;
        return wisp_err_set(err, WISP_E_FORMAT, "cpu engine: layer %d has no %s tensor", layer,
                            what);
    }
    int64_t n1 = t->n_dims > 1 ? t->ne[1] : 1;
    if (t->ne[0] != ne0 || n1 != ne1 || !t->data)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cpu engine: layer %d %s (%s) has shape [%lld, %lld], expected "
                            "[%lld, %lld]",
                            layer, what, t->name ? t->name : "?", (long long)t->ne[0],
                            (long long)n1, (long long)ne0, (long long)ne1);
    const wisp_type_traits *tr = wisp_type_get(t->type);
    if (!tr->name || !tr->supported || !tr->to_float)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "cpu engine: layer %d %s has type %s, which wisp does not compute "
                            "with",
                            layer, what, wisp_type_name(t->type));
    return 0;
}

static int check_weights(const wisp_model_config *c, const wisp_model_weights *w, wisp_err *err)
{
    if (c->n_layers <= 0 || c->n_embd <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 ||
        c->head_dim <= 0 || c->n_ff <= 0 || c->vocab_size <= 0 || c->head_dim % 2 ||
        c->n_head % c->n_head_kv)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cpu engine: bad hyper-parameters (layers %d, dim %d, heads %d/%d, "
                            "head dim %d, ffn %d, vocab %d)",
                            c->n_layers, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
                            c->vocab_size);
    if (!w || !w->layers)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cpu engine: the model has no weights");
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim;
    const int64_t KV = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff, V = c->vocab_size;
    const int64_t rope_dims =
        c->rope_dim > 0 && c->rope_dim <= c->head_dim ? c->rope_dim : c->head_dim;
    int rc;
    if ((rc = check_tensor(w->tok_embd, "token_embd", -1, E, V, false, err)) ||
        (rc = check_tensor(w->out_norm, "output_norm", -1, E, 1, false, err)) ||
        (rc = check_tensor(w->output, "output", -1, E, V, true, err)) ||
        (rc = check_tensor(w->rope_freqs, "rope_freqs", -1, rope_dims / 2, 1, true, err)))
        return rc;
    for (int l = 0; l < c->n_layers; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        if ((rc = check_tensor(L->attn_norm, "attn_norm", l, E, 1, false, err)) ||
            (rc = check_tensor(L->wq, "attn_q", l, E, Q, false, err)) ||
            (rc = check_tensor(L->wk, "attn_k", l, E, KV, false, err)) ||
            (rc = check_tensor(L->wv, "attn_v", l, E, KV, false, err)) ||
            (rc = check_tensor(L->wo, "attn_output", l, Q, E, false, err)) ||
            (rc = check_tensor(L->bq, "attn_q.bias", l, Q, 1, !c->attn_bias, err)) ||
            (rc = check_tensor(L->bk, "attn_k.bias", l, KV, 1, !c->attn_bias, err)) ||
            (rc = check_tensor(L->bv, "attn_v.bias", l, KV, 1, !c->attn_bias, err)) ||
            (rc = check_tensor(L->q_norm, "attn_q_norm", l, c->head_dim, 1, !c->qk_norm, err)) ||
            (rc = check_tensor(L->k_norm, "attn_k_norm", l, c->head_dim, 1, !c->qk_norm, err)) ||
            (rc = check_tensor(L->ffn_norm, "ffn_norm", l, E, 1, false, err)) ||
            (rc = check_tensor(L->w_gate, "ffn_gate", l, E, F, false, err)) ||
            (rc = check_tensor(L->w_up, "ffn_up", l, E, F, false, err)) ||
            (rc = check_tensor(L->w_down, "ffn_down", l, F, E, false, err)))
            return rc;
        if ((L->bq != NULL) != (L->bk != NULL) || (L->bq != NULL) != (L->bv != NULL) ||
            (L->q_norm != NULL) != (L->k_norm != NULL))
            return wisp_err_set(err, WISP_E_FORMAT,
                                "cpu engine: layer %d has some but not all of its q/k/v biases "
                                "or q/k norms",
                                l);
    }
    return 0;
}

/* ---------------------------------------------------------------- build */

/* Copies a 1-D tensor to F32 at *cursor (NULL tensor -> NULL). */
static float *take_vec(const wisp_tensor *t, float **cursor)
{
    if (!t)
        return NULL;
    float *dst = *cursor;
    wisp_type_get(t->type)->to_float(t->data, dst, t->ne[0]);
    *cursor += t->ne[0];
    return dst;
}

static int build_vecs(wisp_cpu_engine *e, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    size_t per_layer = 2 * (size_t)c->n_embd +
                       (size_t)(c->n_head + 2 * c->n_head_kv) * c->head_dim +
                       2 * (size_t)c->head_dim;
    size_t n = per_layer * (size_t)(e->layer_end - e->layer_begin) + (size_t)c->n_embd +
               (e->w->rope_freqs ? (size_t)e->w->rope_freqs->ne[0] : 0);
    e->vecs = malloc(n * sizeof(float));
    e->lv = calloc((size_t)c->n_layers, sizeof(*e->lv));
    if (!e->vecs || !e->lv)
        return wisp_err_set(err, WISP_E_NOMEM, "cpu engine: cannot allocate layer vectors");
    float *cur = e->vecs;
    for (int l = e->layer_begin; l < e->layer_end; l++) {
        const wisp_layer_weights *L = &e->w->layers[l];
        wisp_cpu_layer_vecs *v = &e->lv[l];
        v->attn_norm = take_vec(L->attn_norm, &cur);
        v->ffn_norm = take_vec(L->ffn_norm, &cur);
        v->bq = take_vec(L->bq, &cur);
        v->bk = take_vec(L->bk, &cur);
        v->bv = take_vec(L->bv, &cur);
        v->q_norm = take_vec(L->q_norm, &cur);
        v->k_norm = take_vec(L->k_norm, &cur);
    }
    e->out_norm = take_vec(e->w->out_norm, &cur);
    e->rope_freqs = take_vec(e->w->rope_freqs, &cur);
    return 0;
}

static void *scratch_alloc(wisp_cpu_engine *e, size_t n_bytes, bool *failed)
{
    /* 64-byte alignment for the SIMD kernels; sizes rounded up to match. */
    size_t sz = (n_bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p)
        *failed = true;
    e->scratch_bytes += sz;
    return p;
}

static size_t matmul_need(const wisp_tensor *t, int64_t n_tok)
{
    return t ? wisp_matmul_scratch_size(t->type, t->ne[0], n_tok) : 0;
}

static int build_scratch(wisp_cpu_engine *e, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const size_t T = (size_t)e->opts.max_batch_tokens;
    const size_t E = (size_t)c->n_embd, Q = (size_t)c->n_head * c->head_dim;
    const size_t KV = (size_t)c->n_head_kv * c->head_dim, F = (size_t)c->n_ff;
    const size_t nth = (size_t)e->n_threads;
    /* Enough rows per output-head product for a batch of decodes in one go,
     * and a bounded logits buffer for long all-logits prefills. */
    int rows = e->opts.max_seqs > 64 ? e->opts.max_seqs : 64;
    e->max_logit_rows = rows < (int)T ? rows : (int)T;
    e->attn_scratch_floats =
        wisp_attention_scratch_floats(c->n_head, c->n_head_kv, c->head_dim, e->opts.block_size);
    bool failed = false;
    e->x = scratch_alloc(e, T * E * 4, &failed);
    e->xb = scratch_alloc(e, T * E * 4, &failed);
    e->q = scratch_alloc(e, T * Q * 4, &failed);
    e->att = scratch_alloc(e, T * Q * 4, &failed);
    e->k = scratch_alloc(e, T * KV * 4, &failed);
    e->v = scratch_alloc(e, T * KV * 4, &failed);
    e->hb = scratch_alloc(e, T * F * 4, &failed);
    e->hb2 = scratch_alloc(e, T * F * 4, &failed);
    if (e->last)
        e->logits =
            scratch_alloc(e, (size_t)e->max_logit_rows * (size_t)c->vocab_size * 4, &failed);
    e->rope_scratch = scratch_alloc(e, nth * (size_t)e->rope.n_dims * 4, &failed);
    e->attn_scratch = scratch_alloc(e, nth * e->attn_scratch_floats * 4, &failed);
    e->row_pos = scratch_alloc(e, T * sizeof(int), &failed);
    e->row_token = scratch_alloc(e, T * sizeof(int32_t), &failed);
    e->row_table = scratch_alloc(e, T * sizeof(*e->row_table), &failed);
    e->logit_row = scratch_alloc(e, T * sizeof(int), &failed);
    e->logit_dst = scratch_alloc(e, T * sizeof(float *), &failed);

    size_t mm = e->last ? matmul_need(e->output, e->max_logit_rows) : 0;
    for (int l = e->layer_begin; l < e->layer_end; l++) {
        const wisp_layer_weights *L = &e->w->layers[l];
        const wisp_tensor *ts[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
            size_t need = matmul_need(ts[i], (int64_t)T);
            mm = need > mm ? need : mm;
        }
    }
    e->mm.size = mm;
    e->mm.buf = scratch_alloc(e, mm, &failed);
    if (failed)
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cpu engine: cannot allocate %zu bytes of scratch for %zu tokens",
                            e->scratch_bytes, T);
    return 0;
}

/* ---------------------------------------------------------------- vtable */

static void cpu_destroy(void *ctx)
{
    wisp_cpu_engine *e = ctx;
    if (!e)
        return;
    void *bufs[] = {e->x,
                    e->xb,
                    e->q,
                    e->att,
                    e->k,
                    e->v,
                    e->hb,
                    e->hb2,
                    e->logits,
                    e->rope_scratch,
                    e->attn_scratch,
                    e->row_pos,
                    e->row_token,
                    (void *)e->row_table,
                    e->logit_row,
                    (void *)e->logit_dst,
                    e->mm.buf,
                    e->vecs,
                    e->lv};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    wisp_kv_pool_free(&e->kv);
    wisp_cpu_stream_destroy(e->stream);
    wisp_rp_weights_free(e->repack);
    if (e->tp)
        wisp_threadpool_destroy(e->tp);
    free(e);
}

static int cpu_forward(void *ctx, const wisp_batch *batch, wisp_err *err)
{
    return wisp_cpu_forward(ctx, batch, err);
}

static int cpu_copy_block(void *ctx, int32_t dst, int32_t src, wisp_err *err)
{
    return wisp_kv_pool_copy_block(&((wisp_cpu_engine *)ctx)->kv, dst, src, err);
}

static size_t cpu_bytes_per_block(void *ctx)
{
    return wisp_kv_pool_block_bytes(&((wisp_cpu_engine *)ctx)->kv);
}

static int cpu_read_block(void *ctx, int32_t block, void *dst, wisp_err *err)
{
    return wisp_kv_pool_read_block(&((wisp_cpu_engine *)ctx)->kv, block, dst, err);
}

static int cpu_write_block(void *ctx, int32_t block, const void *src, wisp_err *err)
{
    return wisp_kv_pool_write_block(&((wisp_cpu_engine *)ctx)->kv, block, src, err);
}

static void cpu_get_stats(void *ctx, wisp_engine_stats *out)
{
    wisp_cpu_engine *e = ctx;
    memset(out, 0, sizeof(*out));
    out->kv_bytes = wisp_kv_pool_bytes(&e->kv);
    out->scratch_bytes = e->scratch_bytes;
    /* Weights the engine holds itself: the repacked copies (their mapped
     * pages were handed back) and a streaming arena; the rest is read from
     * the file mapping. */
    size_t rp_bytes = 0;
    int rp_n = 0;
    double rp_ms = 0;
    if (e->repack)
        wisp_rp_weights_stats(e->repack, &rp_bytes, &rp_n, &rp_ms);
    out->weight_bytes = rp_bytes;
    out->bf16_tensors = wisp_rp_weights_bf16_tensors(e->repack);
    if (e->stream) {
        wisp_cpu_stream_stats st;
        wisp_cpu_stream_get_stats(e->stream, &st);
        out->weight_bytes += st.arena_bytes;
        out->weights_streaming = true;
        out->weights_streamed_bytes = st.streamed_bytes;
        out->weights_copy_ms = st.copy_ms;
        out->weights_wait_ms = st.wait_ms;
    }
}

static bool cpu_reads_model_bytes(void *ctx, const void *data)
{
    const wisp_cpu_engine *e = ctx;
    return !wisp_rp_weights_replaces(e->repack, data);
}

static const struct wisp_engine_ops cpu_ops = {
    .name = "cpu",
    .forward = cpu_forward,
    .copy_block = cpu_copy_block,
    .bytes_per_block = cpu_bytes_per_block,
    .read_block = cpu_read_block,
    .write_block = cpu_write_block,
    .get_stats = cpu_get_stats,
    .reads_model_bytes = cpu_reads_model_bytes,
    .destroy = cpu_destroy,
};

int wisp_engine_cpu_create_from(const wisp_model_config *cfg, const wisp_model_weights *w,
                                const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    *out = NULL;
    int rc = check_weights(cfg, w, err);
    if (rc)
        return rc;
    wisp_engine_opts zero = {0};
    wisp_cpu_engine *e = calloc(1, sizeof(*e));
    wisp_engine *eng = calloc(1, sizeof(*eng));
    if (!e || !eng) {
        free(e);
        free(eng);
        return wisp_err_set(err, WISP_E_NOMEM, "cpu engine: out of memory");
    }
    e->cfg = *cfg;
    e->w = w;
    e->output = w->output ? w->output : w->tok_embd;
    wisp_engine_opts_resolve(cfg, opts ? opts : &zero, &e->opts);
    e->layer_begin = e->opts.layer_begin;
    e->layer_end = e->opts.layer_end;
    if (e->layer_begin < 0 || e->layer_end > cfg->n_layers || e->layer_begin >= e->layer_end) {
        rc = wisp_err_set(err, WISP_E_INVALID,
                          "cpu engine: layer range [%d, %d) is not inside the model's %d layers",
                          e->layer_begin, e->layer_end, cfg->n_layers);
        goto fail;
    }
    e->first = e->layer_begin == 0;
    e->last = e->layer_end == cfg->n_layers;
    if (e->opts.weights_budget_bytes > 0 &&
        (rc = wisp_cpu_stream_create(w, e->layer_begin, e->layer_end, e->opts.weights_budget_bytes,
                                     &e->stream, err)))
        goto fail;
    if ((rc = wisp_threadpool_create(e->opts.n_threads, &e->tp, err)))
        goto fail;
    e->n_threads = wisp_threadpool_size(e->tp);
    /* Q4_0 / Q8_0 / K-quant projections are repacked into interleaved rows for the
     * kernels that read them (the same bits, faster), and F16 / BF16 ones
     * into the BF16 layout when the options ask for it (lossy, bf16dot.h). Not for streamed
     * layers, whose copies come raw from the mapping (stream.c), nor where
     * AMX tiles or the scalar level take the products, nor when the
     * options or WISP_REPACK=0 say so. */
    if (!e->stream && !e->opts.no_repack && wisp_rp_enabled() && !wisp_amx_active() &&
        wisp_cpu_simd_active() != WISP_SIMD_SCALAR) {
        const wisp_rp_what what = {.quants = true, .bf16 = e->opts.f16_as_bf16};
        if ((rc =
                 wisp_rp_weights_create(w, cfg->n_layers, e->layer_begin, e->layer_end,
                                        e->last ? &e->output : NULL, what, e->tp, &e->repack, err)))
            goto fail;
        if (e->repack) {
            size_t bytes;
            int n;
            double ms;
            wisp_rp_weights_stats(e->repack, &bytes, &n, &ms);
            e->w = wisp_rp_weights_get(e->repack);
            WISP_LOGI("cpu: %d weight tensors (%.1f MiB) repacked into interleaved rows in %.0f ms"
                      " (%d of them computed in BF16)",
                      n, (double)bytes / (1 << 20), ms, wisp_rp_weights_bf16_tensors(e->repack));
        }
    }
    /* Asked for and not taken: say why, once, where the user reads. */
    if (e->opts.f16_as_bf16 && !wisp_rp_weights_bf16_tensors(e->repack))
        WISP_LOGW("cpu: f16_as_bf16 not taken: %s",
                  e->stream                                 ? "the layers are streamed"
                  : e->opts.no_repack || !wisp_rp_enabled() ? "repacking is off"
                  : wisp_amx_active()                       ? "AMX tiles take the products"
                  : !wisp_bf16dot_fast() ? "this CPU (or WISP_SIMD) has no AVX512-BF16"
                                         : "the model has no F16 or BF16 matrix");
    if ((rc = wisp_kv_pool_init(&e->kv, e->opts.kv_type, e->layer_end - e->layer_begin,
                                e->opts.n_blocks, e->opts.block_size, cfg->n_head_kv, cfg->head_dim,
                                err)) ||
        (rc = build_vecs(e, err)))
        goto fail;
    wisp_rope_init(&e->rope, cfg, e->rope_freqs);
    if ((rc = build_scratch(e, err)))
        goto fail;
    e->opts.n_threads = e->n_threads;
    eng->ops = &cpu_ops;
    eng->ctx = e;
    eng->model = NULL;
    eng->opts = e->opts;
    *out = eng;
    return 0;
fail:
    cpu_destroy(e);
    free(eng);
    return rc;
}
