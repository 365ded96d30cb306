/*
 * engine_cuda.c - the CUDA engine's construction, scratch, error policy and
 * vtable (see engine_cuda.h for the contract).
 *
 * Creation order is: device, streams and cuBLAS, weights (checked, then
 * uploaded; under a weights budget, the resident ones and the streamed
 * layers' pinned host images), the layer stream, KV pool, scratch, step
 * metadata. Every buffer a step uses is
 * sized here from max_batch_tokens and max_seqs, so a step allocates
 * nothing (the block-table area alone may grow, rarely, when a batch's
 * tables outgrow it). Options left at zero take the CPU engine's defaults,
 * so both engines built from the same options hold the same KV geometry.
 *
 * Error policy: a CUDA error during a step comes back as WISP_E_DEVICE with
 * its message; if the context itself is poisoned (a sticky error: an
 * illegal address, a launch failure), the engine marks itself broken and
 * refuses every later call with the first message, because continuing
 * would give wrong answers silently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/cuda/cuda_int.h"

/* Dequantized weight tiles for the GEMM path: this many bytes at most. */
#define W16_CAP          ((size_t)64 << 20)
#define LOGIT_ROWS_MAX   64
#define PARTIAL_ROWS_MIN 2048

static const struct wisp_engine_ops cuda_ops;

bool wisp_engine_is_cuda(const wisp_engine *e) { return e && e->ops == &cuda_ops; }

/* ---------------------------------------------------------------- errors */

int wisp_cuda_note_error(wisp_cuda_engine *e, int rc, const wisp_err *err)
{
    if (rc != WISP_E_DEVICE || e->broken)
        return rc;
    /* A sticky error shows again on a device-wide sync; a transient one
     * (an allocation that failed) has been consumed and does not. */
    cudaGetLastError();
    cudaError_t ce = cudaDeviceSynchronize();
    if (ce != cudaSuccess) {
        e->broken = true;
        snprintf(e->broken_msg, sizeof(e->broken_msg), "%s",
                 err ? err->msg : cudaGetErrorString(ce));
        WISP_LOGE("cuda engine: the CUDA context is unusable: %s; reload the model", e->broken_msg);
    }
    return rc;
}

int wisp_cuda_enter(wisp_cuda_engine *e, wisp_err *err)
{
    if (e->broken)
        return wisp_err_set(err, WISP_E_DEVICE,
                            "cuda engine: unusable after an earlier device error (%s); reload "
                            "the model",
                            e->broken_msg);
    WISP_CU(err, cudaSetDevice(e->dev.index));
    return 0;
}

/* ---------------------------------------------------------------- options */

/* ---------------------------------------------------------------- scratch */

typedef struct scratch_plan {
    size_t x, q, kv, ff, logits, act16, w16, partial; /* bytes of each buffer */
    int logit_rows, partial_rows, items_cap, tables_cap;
    size_t device_total, pinned_total;
} scratch_plan;

static void gemm_need(const wisp_tensor *t, int64_t n_tok, size_t *act, size_t *w)
{
    if (!t || n_tok <= WISP_K_MATVEC_MAX_TOKENS)
        return;
    size_t a = 0, b = 0;
    wisp_k_gemm_scratch(t->type, t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, n_tok, W16_CAP, &a, &b);
    *act = a > *act ? a : *act;
    *w = b > *w ? b : *w;
}

static size_t al(size_t n) { return (n + 255) / 256 * 256; }

static void plan_scratch(const wisp_model_config *c, const wisp_model_weights *w,
                         const wisp_cuda_range *r, const wisp_engine_opts *o, scratch_plan *p)
{
    memset(p, 0, sizeof(*p));
    const size_t T = (size_t)o->max_batch_tokens, E = (size_t)c->n_embd;
    const size_t Q = (size_t)c->n_head * (size_t)c->head_dim;
    const size_t KV = (size_t)c->n_head_kv * (size_t)c->head_dim, F = (size_t)c->n_ff;
    const size_t V = (size_t)c->vocab_size;
    p->x = al(T * E * 4);
    p->q = al(T * Q * 4);
    p->kv = al(T * KV * 4);
    p->ff = al(T * F * 4);
    /* Only the last stage of a chain computes logits. */
    if (r->last) {
        p->logit_rows = (int)(T < LOGIT_ROWS_MAX ? T : LOGIT_ROWS_MAX);
        p->logits = al((size_t)p->logit_rows * V * 4);
        const wisp_tensor *out = w->output ? w->output : w->tok_embd;
        gemm_need(out, p->logit_rows, &p->act16, &p->w16);
    }
    for (int l = r->begin; l < r->end; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        const wisp_tensor *ts[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
            gemm_need(ts[i], (int64_t)T, &p->act16, &p->w16);
    }
    p->act16 = al(p->act16);
    p->w16 = al(p->w16);
    p->partial_rows = (int)(T > PARTIAL_ROWS_MIN ? T : PARTIAL_ROWS_MIN);
    p->partial = al(wisp_k_attn_partial_floats(p->partial_rows, c->n_head, c->head_dim, 1) * 4);
    const int group = c->n_head / (c->n_head_kv > 0 ? c->n_head_kv : 1);
    p->items_cap = (int)(T * (size_t)group / WISP_K_ATTN_BQ) + o->max_seqs + 1;
    int ctx = c->n_ctx_train > 2048 ? c->n_ctx_train : 2048;
    int64_t tabs = (int64_t)o->max_seqs * ((ctx + o->block_size - 1) / o->block_size);
    p->tables_cap = (int)(tabs < (1 << 20) ? tabs : (1 << 20));
    /* x, xn, tmp; q, att; k, v; gate, up */
    p->device_total =
        3 * p->x + 2 * p->q + 2 * p->kv + 2 * p->ff + p->logits + p->act16 + p->w16 + p->partial;
    p->pinned_total = p->logits;
}

static int alloc_scratch(wisp_cuda_engine *e, const scratch_plan *p, wisp_err *err)
{
    void *base = NULL;
    cudaError_t ce = cudaMalloc(&base, p->device_total);
    if (ce == cudaSuccess && p->logits)
        ce = cudaHostAlloc((void **)&e->h_logits, p->logits, cudaHostAllocDefault);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        if (base)
            cudaFree(base);
        e->h_logits = NULL;
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cuda engine: %.2f GiB of scratch for %d tokens per step does not "
                            "fit (%s); lower max_batch_tokens",
                            (double)p->device_total / (1 << 30), e->opts.max_batch_tokens,
                            cudaGetErrorString(ce));
    }
    uint8_t *c = base;
    e->x = (float *)c, c += p->x;
    e->xn = (float *)c, c += p->x;
    e->tmp = (float *)c, c += p->x;
    e->q = (float *)c, c += p->q;
    e->att = (float *)c, c += p->q;
    e->k = (float *)c, c += p->kv;
    e->v = (float *)c, c += p->kv;
    e->gate = (float *)c, c += p->ff;
    e->up = (float *)c, c += p->ff;
    e->logits = p->logits ? (float *)c : NULL, c += p->logits;
    e->act16 = p->act16 ? c : NULL, c += p->act16;
    e->w16 = p->w16 ? c : NULL, c += p->w16;
    e->partial = (float *)c;
    e->act16_bytes = p->act16;
    e->w16_bytes = p->w16;
    e->logit_rows = p->logit_rows;
    e->partial_rows = p->partial_rows;
    e->items_cap = p->items_cap;
    e->scratch_bytes = p->device_total;
    e->logit_dst = calloc((size_t)e->opts.max_batch_tokens, sizeof(float *));
    if (!e->logit_dst)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    return 0;
}

/* ---------------------------------------------------------------- vtable */

static void cuda_destroy(void *ctx)
{
    wisp_cuda_engine *e = ctx;
    if (!e)
        return;
    cudaSetDevice(e->dev.index);
    if (e->stream)
        cudaStreamSynchronize(e->stream);
    if (e->side)
        cudaStreamSynchronize(e->side);
    wisp_cuda_meta_free(e);
    wisp_cuda_kv_free(e);
    if (e->x)
        cudaFree(e->x); /* the scratch arena starts at x */
    if (e->h_logits)
        cudaFreeHost(e->h_logits);
    wisp_cuda_stream_free(e);
    if (e->warena)
        cudaFree(e->warena);
    if (e->blas)
        cublasDestroy(e->blas);
    if (e->ev_main)
        cudaEventDestroy(e->ev_main);
    if (e->ev_side)
        cudaEventDestroy(e->ev_side);
    if (e->stream)
        cudaStreamDestroy(e->stream);
    if (e->side)
        cudaStreamDestroy(e->side);
    cudaGetLastError();
    free(e->logit_dst);
    free(e->layers);
    free(e->images);
    free(e);
}

static int cuda_forward(void *ctx, const wisp_batch *b, wisp_err *err)
{
    return wisp_cuda_forward(ctx, b, err);
}

static int cuda_copy_block(void *ctx, int32_t dst, int32_t src, wisp_err *err)
{
    wisp_cuda_engine *e = ctx;
    WISP_TRY(wisp_cuda_enter(e, err));
    return wisp_cuda_note_error(e, wisp_cuda_copy_block(e, dst, src, err), err);
}

static size_t cuda_bytes_per_block(void *ctx) { return ((wisp_cuda_engine *)ctx)->kvl.block_bytes; }

static int cuda_read_block(void *ctx, int32_t block, void *dst, wisp_err *err)
{
    wisp_cuda_engine *e = ctx;
    WISP_TRY(wisp_cuda_enter(e, err));
    return wisp_cuda_note_error(e, wisp_cuda_read_block(e, block, dst, err), err);
}

static int cuda_write_block(void *ctx, int32_t block, const void *src, wisp_err *err)
{
    wisp_cuda_engine *e = ctx;
    WISP_TRY(wisp_cuda_enter(e, err));
    return wisp_cuda_note_error(e, wisp_cuda_write_block(e, block, src, err), err);
}

static void cuda_get_stats(void *ctx, wisp_engine_stats *out)
{
    wisp_cuda_engine *e = ctx;
    memset(out, 0, sizeof(*out));
    out->kv_bytes = (uint64_t)e->kvl.block_bytes * (uint64_t)e->opts.n_blocks;
    out->scratch_bytes = e->scratch_bytes + e->meta_bytes;
    out->weight_bytes = e->warena_bytes;
    wisp_cuda_stream_stats(e, out);
}

static const struct wisp_engine_ops cuda_ops = {
    .name = "cuda",
    .forward = cuda_forward,
    .copy_block = cuda_copy_block,
    .bytes_per_block = cuda_bytes_per_block,
    .read_block = cuda_read_block,
    .write_block = cuda_write_block,
    .get_stats = cuda_get_stats,
    .destroy = cuda_destroy,
};

/* ---------------------------------------------------------------- create */

static int check_config(const wisp_model_config *c, wisp_err *err)
{
    if (c->n_layers <= 0 || c->n_embd <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 ||
        c->head_dim <= 0 || c->n_ff <= 0 || c->vocab_size <= 0 || c->n_head % c->n_head_kv != 0)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cuda engine: bad model shape (layers %d, dim %d, heads %d/%d, head "
                            "dim %d, ffn %d, vocab %d)",
                            c->n_layers, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
                            c->vocab_size);
    if (c->head_dim > 256)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "cuda engine: head_dim %d is above the attention kernel's 256",
                            c->head_dim);
    return 0;
}

static int setup(wisp_cuda_engine *e, const wisp_model_weights *w, int device, wisp_err *err)
{
    WISP_TRY(wisp_cuda_select_device(device, &e->dev, err));
    WISP_CU(err, cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    WISP_CU(err, cudaStreamCreateWithFlags(&e->side, cudaStreamNonBlocking));
    WISP_CU(err, cudaEventCreateWithFlags(&e->ev_main, cudaEventDisableTiming));
    WISP_CU(err, cudaEventCreateWithFlags(&e->ev_side, cudaEventDisableTiming));
    WISP_CUBLAS(err, cublasCreate(&e->blas));
    WISP_CUBLAS(err, cublasSetStream(e->blas, e->stream));
    WISP_TRY(wisp_cuda_weights_upload(e, w, err));
    WISP_TRY(wisp_cuda_stream_init(e, err));
    WISP_TRY(wisp_cuda_kv_init(e, err));
    scratch_plan p;
    plan_scratch(&e->cfg, w, &e->range, &e->opts, &p);
    WISP_TRY(alloc_scratch(e, &p, err));
    WISP_TRY(wisp_cuda_meta_alloc(e, p.tables_cap, err));
    WISP_CU(err, cudaStreamSynchronize(e->stream));
    return 0;
}

int wisp_engine_cuda_create_from(const wisp_model_config *cfg, const wisp_model_weights *w,
                                 const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    return wisp_engine_cuda_create_from_on(cfg, w, -1, opts, out, err);
}

int wisp_engine_cuda_create_from_on(const wisp_model_config *cfg, const wisp_model_weights *w,
                                    int device, const wisp_engine_opts *opts, wisp_engine **out,
                                    wisp_err *err)
{
    *out = NULL;
    WISP_TRY(check_config(cfg, err));
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: the model has no weights");
    wisp_engine_opts zero = {0};
    wisp_cuda_engine *e = calloc(1, sizeof(*e));
    wisp_engine *eng = calloc(1, sizeof(*eng));
    if (!e || !eng) {
        free(e);
        free(eng);
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of memory");
    }
    e->cfg = *cfg;
    wisp_engine_opts_resolve(cfg, opts ? opts : &zero, &e->opts);
    int rc = wisp_cuda_range_init(cfg, e->opts.layer_begin, e->opts.layer_end,
                                  !w->output || w->output == w->tok_embd, &e->range, err);
    if (rc) {
        free(e);
        free(eng);
        return rc;
    }
    rc = setup(e, w, device, err);
    if (rc) {
        wisp_err_prefix(err, "cuda engine");
        cuda_destroy(e);
        free(eng);
        return rc;
    }
    wisp_engine_stats st;
    cuda_get_stats(e, &st);
    WISP_LOGI("cuda engine: %s, layers %d..%d: %.2f GiB weights, %.2f GiB KV (%d blocks of %d), "
              "%.2f GiB scratch",
              e->dev.name, e->range.begin, e->range.end - 1, (double)st.weight_bytes / (1 << 30),
              (double)st.kv_bytes / (1 << 30), e->opts.n_blocks, e->opts.block_size,
              (double)st.scratch_bytes / (1 << 30));
    if (e->sw.on)
        WISP_LOGI("cuda engine: streaming %d of %d layers through two %.2f MiB buffers from "
                  "%.2f GiB of pinned host memory (%d resident, %.2f MiB of layers on the "
                  "device for a %.2f MiB budget)",
                  e->sw.plan.n_streamed, e->range.n_local,
                  (double)e->sw.plan.slot_bytes / (1 << 20), (double)e->sw.host_bytes / (1 << 30),
                  e->range.n_local - e->sw.plan.n_streamed,
                  (double)e->sw.plan.held_bytes / (1 << 20),
                  (double)e->opts.weights_budget_bytes / (1 << 20));
    eng->ops = &cuda_ops;
    eng->ctx = e;
    eng->model = NULL;
    eng->opts = e->opts;
    *out = eng;
    return 0;
}

int wisp_cuda_plan_blocks(const wisp_model_config *cfg, const wisp_model_weights *w,
                          const wisp_engine_opts *opts, uint64_t headroom_bytes, int *n_blocks,
                          wisp_err *err)
{
    *n_blocks = 0;
    WISP_TRY(check_config(cfg, err));
    wisp_engine_opts zero = {0}, o;
    wisp_engine_opts_resolve(cfg, opts ? opts : &zero, &o);
    wisp_cuda_device_info dev;
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: the model has no weights");
    wisp_cuda_range r;
    WISP_TRY(wisp_cuda_range_init(cfg, o.layer_begin, o.layer_end,
                                  !w->output || w->output == w->tok_embd, &r, err));
    WISP_TRY(wisp_cuda_select_device(-1, &dev, err));
    size_t wbytes = 0;
    WISP_TRY(wisp_cuda_weights_bytes(cfg, w, &r, o.weights_budget_bytes, &wbytes, err));
    scratch_plan p;
    plan_scratch(cfg, w, &r, &o, &p);
    wisp_k_kv_layout kvl;
    WISP_TRY(wisp_k_kv_layout_init(&kvl, (int)o.kv_type, r.n_local, o.block_size, cfg->n_head_kv,
                                   cfg->head_dim, err));
    const uint64_t used = (uint64_t)wbytes + p.device_total + headroom_bytes;
    if (dev.free_bytes <= used)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "cuda engine: %s has %.2f GiB free; the weights (%.2f GiB), scratch "
                            "(%.2f GiB) and headroom (%.2f GiB) leave no room for a KV cache",
                            dev.name, (double)dev.free_bytes / (1 << 30),
                            (double)wbytes / (1 << 30), (double)p.device_total / (1 << 30),
                            (double)headroom_bytes / (1 << 30));
    uint64_t n = (dev.free_bytes - used) / kvl.block_bytes;
    *n_blocks = n > INT32_MAX ? INT32_MAX : (int)n;
    return 0;
}
