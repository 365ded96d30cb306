/*
 * cuda_weights.c - weights onto the device, once, at engine creation.
 *
 * Matrices are copied in their stored type (the kernels dequantize on the
 * fly, so VRAM holds the file's bytes, not an inflated copy); norm weights
 * and biases are converted to F32 on the host first (some checkpoints keep
 * them in F16 or BF16; the kernels then see one type). Everything lands in
 * one arena (one cudaMalloc, 256-byte aligned pieces), and a tied output
 * head shares the embedding's bytes. Every tensor's type and shape are
 * checked against the config before any memory is touched, so a bad file
 * fails with a message naming the tensor and the layer.
 *
 * The RoPE table (per rotated pair: base frequency, divided by the
 * model's rope_freqs.weight factor when it has one, and the YaRN ramp
 * mix) is built on the host by rope_table.c with the CPU engine's formulas
 * (ggml's rope_yarn).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp16.h"
#include "common/panic.h"
#include "engine/cuda/cuda_int.h"
#include "engine/cuda/rope_table.h"

#define ARENA_ALIGN 256

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* ---------------------------------------------------------------- checks */

static int check_mat(const wisp_tensor *t, const char *role, int layer, int64_t n_in, int64_t n_out,
                     size_t *bytes, wisp_err *err)
{
    char where[48] = "";
    if (layer >= 0)
        snprintf(where, sizeof(where), " of layer %d", layer);
    if (!t)
        return wisp_err_set(err, WISP_E_FORMAT, "cuda engine: tensor %s%s is missing", role, where);
    if (!wisp_k_weight_type_supported(t->type))
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "cuda engine: tensor %s%s has type %d, which the CUDA kernels do not "
                            "support",
                            t->name ? t->name : role, where, t->type);
    if (t->ne[0] != n_in || (t->n_dims > 1 ? t->ne[1] : 1) != n_out)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cuda engine: tensor %s%s is %lld x %lld, expected %lld x %lld",
                            t->name ? t->name : role, where, (long long)t->ne[0],
                            (long long)(t->n_dims > 1 ? t->ne[1] : 1), (long long)n_in,
                            (long long)n_out);
    size_t row = wisp_k_row_bytes(t->type, n_in);
    if (row == 0 || (t->nbytes && t->nbytes < row * (size_t)n_out) || !t->data)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cuda engine: tensor %s%s: rows of %lld do not hold whole blocks of "
                            "its type, or its data is short",
                            t->name ? t->name : role, where, (long long)n_in);
    *bytes = row * (size_t)n_out;
    return 0;
}

static bool vec_type_ok(int type)
{
    return type == WISP_TYPE_F32 || type == WISP_TYPE_F16 || type == WISP_TYPE_BF16;
}

static int check_vec(const wisp_tensor *t, const char *role, int layer, int64_t n, bool optional,
                     wisp_err *err)
{
    if (!t) {
        if (optional)
            return 0;
        return wisp_err_set(err, WISP_E_FORMAT, "cuda engine: tensor %s of layer %d is missing",
                            role, layer);
    }
    if (!vec_type_ok(t->type) || t->ne[0] != n || !t->data)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "cuda engine: tensor %s (layer %d) must be %lld floats in F32, F16 "
                            "or BF16 (it has %lld elements of type %d)",
                            t->name ? t->name : role, layer, (long long)n, (long long)t->ne[0],
                            t->type);
    return 0;
}

/* Walks every tensor of range r (range.h: its layers, the embedding on the
 * first stage, the output norm and head on the last): checks it and adds
 * its arena size. */
static int plan(const wisp_model_config *c, const wisp_model_weights *w, const wisp_cuda_range *r,
                size_t *total, wisp_err *err)
{
    const int64_t E = c->n_embd, V = c->vocab_size, F = c->n_ff;
    const int64_t Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    size_t sum = 0, b = 0;
    if (!w || !w->layers)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: the model has no weights");
    const wisp_tensor *head = w->output && w->output != w->tok_embd ? w->output : w->tok_embd;
    if (r->up_embd) {
        WISP_TRY(check_mat(w->tok_embd, "token_embd", -1, E, V, &b, err));
        sum += align_up(b);
    }
    if (r->up_output) {
        WISP_TRY(check_mat(head, head == w->tok_embd ? "token_embd" : "output", -1, E, V, &b, err));
        sum += align_up(b);
    }
    if (r->up_out_norm) {
        WISP_TRY(check_vec(w->out_norm, "output_norm", -1, E, false, err));
        sum += align_up((size_t)E * 4);
    }
    for (int l = r->begin; l < r->end; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        const struct {
            const wisp_tensor *t;
            const char *role;
            int64_t in, out;
        } mats[] = {
            {L->wq, "attn_q", E, Q},       {L->wk, "attn_k", E, KV},      {L->wv, "attn_v", E, KV},
            {L->wo, "attn_output", Q, E},  {L->w_gate, "ffn_gate", E, F}, {L->w_up, "ffn_up", E, F},
            {L->w_down, "ffn_down", F, E},
        };
        for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
            WISP_TRY(check_mat(mats[i].t, mats[i].role, l, mats[i].in, mats[i].out, &b, err));
            sum += align_up(b);
        }
        const bool bias = L->bq || L->bk || L->bv;
        const bool qkn = L->q_norm || L->k_norm;
        WISP_TRY(check_vec(L->attn_norm, "attn_norm", l, E, false, err));
        WISP_TRY(check_vec(L->ffn_norm, "ffn_norm", l, E, false, err));
        WISP_TRY(check_vec(L->bq, "attn_q.bias", l, Q, !bias, err));
        WISP_TRY(check_vec(L->bk, "attn_k.bias", l, KV, !bias, err));
        WISP_TRY(check_vec(L->bv, "attn_v.bias", l, KV, !bias, err));
        WISP_TRY(check_vec(L->q_norm, "attn_q_norm", l, c->head_dim, !qkn, err));
        WISP_TRY(check_vec(L->k_norm, "attn_k_norm", l, c->head_dim, !qkn, err));
        sum += 2 * align_up((size_t)E * 4);
        if (bias)
            sum += align_up((size_t)Q * 4) + 2 * align_up((size_t)KV * 4);
        if (qkn)
            sum += 2 * align_up((size_t)c->head_dim * 4);
    }
    /* llama-3 frequency divisors: one per rotated pair (read on the host). */
    WISP_TRY(check_vec(w->rope_freqs, "rope_freqs", -1, wisp_rope_table_pairs(c), true, err));
    sum += align_up((size_t)c->head_dim * 4); /* RoPE table: 2 floats per pair */
    *total = sum;
    return 0;
}

int wisp_cuda_check_model(const wisp_model_config *cfg, const wisp_model_weights *w, wisp_err *err)
{
    size_t bytes = 0;
    wisp_cuda_range all;
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: the model has no weights");
    WISP_TRY(wisp_cuda_range_init(cfg, 0, cfg->n_layers, !w->output || w->output == w->tok_embd,
                                  &all, err));
    return plan(cfg, w, &all, &bytes, err);
}

int wisp_cuda_weights_bytes(const wisp_model_config *cfg, const wisp_model_weights *w,
                            const wisp_cuda_range *r, size_t *bytes, wisp_err *err)
{
    return plan(cfg, w, r, bytes, err);
}

/* ---------------------------------------------------------------- upload */

typedef struct arena_cursor {
    uint8_t *base;
    size_t used, size;
    float *host_vec; /* conversion buffer, max vector length */
} arena_cursor;

static void *take(arena_cursor *a, size_t bytes)
{
    void *p = a->base + a->used;
    a->used += align_up(bytes);
    return p;
}

static int put_mat(arena_cursor *a, const wisp_tensor *t, int64_t n_in, int64_t n_out,
                   wisp_cuda_mat *m, wisp_err *err)
{
    size_t bytes = wisp_k_row_bytes(t->type, n_in) * (size_t)n_out;
    void *d = take(a, bytes);
    WISP_CU(err, cudaMemcpy(d, t->data, bytes, cudaMemcpyHostToDevice));
    m->d = d;
    m->type = t->type;
    m->n_in = n_in;
    m->n_out = n_out;
    return 0;
}

static int put_vec(arena_cursor *a, const wisp_tensor *t, int64_t n, const float **out,
                   wisp_err *err)
{
    *out = NULL;
    if (!t)
        return 0;
    float *h = a->host_vec;
    for (int64_t i = 0; i < n; i++) {
        if (t->type == WISP_TYPE_F32) {
            memcpy(&h[i], (const uint8_t *)t->data + 4 * i, 4);
        } else {
            uint16_t bits;
            memcpy(&bits, (const uint8_t *)t->data + 2 * i, 2);
            h[i] = t->type == WISP_TYPE_F16 ? wisp_half_to_float(bits) : wisp_bf16_to_float(bits);
        }
    }
    void *d = take(a, (size_t)n * 4);
    WISP_CU(err, cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice));
    *out = d;
    return 0;
}

/* The rope_freqs.weight divisors as floats (n of them), or NULL when the
 * model has none; free() it. */
static int freq_factors(const wisp_tensor *t, int n, float **out, wisp_err *err)
{
    *out = NULL;
    if (!t)
        return 0;
    float *f = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!f)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    for (int i = 0; i < n; i++) {
        if (t->type == WISP_TYPE_F32) {
            memcpy(&f[i], (const uint8_t *)t->data + 4 * i, 4);
        } else {
            uint16_t bits;
            memcpy(&bits, (const uint8_t *)t->data + 2 * i, 2);
            f[i] = t->type == WISP_TYPE_F16 ? wisp_half_to_float(bits) : wisp_bf16_to_float(bits);
        }
    }
    *out = f;
    return 0;
}

static int upload(wisp_cuda_engine *e, const wisp_model_weights *w, arena_cursor *a, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const int64_t E = c->n_embd, V = c->vocab_size, F = c->n_ff;
    const int64_t Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    const wisp_cuda_range *r = &e->range;
    const wisp_tensor *head = w->output && w->output != w->tok_embd ? w->output : w->tok_embd;
    if (r->up_embd)
        WISP_TRY(put_mat(a, w->tok_embd, E, V, &e->tok_embd, err));
    if (r->up_output)
        WISP_TRY(put_mat(a, head, E, V, &e->output, err));
    else if (r->output_is_embd)
        e->output = e->tok_embd;
    if (r->up_out_norm)
        WISP_TRY(put_vec(a, w->out_norm, E, &e->out_norm, err));
    for (int l = r->begin; l < r->end; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        wisp_cuda_layer *d = &e->layers[l - r->begin];
        WISP_TRY(put_mat(a, L->wq, E, Q, &d->wq, err));
        WISP_TRY(put_mat(a, L->wk, E, KV, &d->wk, err));
        WISP_TRY(put_mat(a, L->wv, E, KV, &d->wv, err));
        WISP_TRY(put_mat(a, L->wo, Q, E, &d->wo, err));
        WISP_TRY(put_mat(a, L->w_gate, E, F, &d->w_gate, err));
        WISP_TRY(put_mat(a, L->w_up, E, F, &d->w_up, err));
        WISP_TRY(put_mat(a, L->w_down, F, E, &d->w_down, err));
        WISP_TRY(put_vec(a, L->attn_norm, E, &d->attn_norm, err));
        WISP_TRY(put_vec(a, L->ffn_norm, E, &d->ffn_norm, err));
        WISP_TRY(put_vec(a, L->bq, Q, &d->bq, err));
        WISP_TRY(put_vec(a, L->bk, KV, &d->bk, err));
        WISP_TRY(put_vec(a, L->bv, KV, &d->bv, err));
        WISP_TRY(put_vec(a, L->q_norm, c->head_dim, &d->q_norm, err));
        WISP_TRY(put_vec(a, L->k_norm, c->head_dim, &d->k_norm, err));
    }
    float *tab = a->host_vec;
    memset(tab, 0, (size_t)c->head_dim * 4);
    float *ff = NULL;
    WISP_TRY(freq_factors(w->rope_freqs, wisp_rope_table_pairs(c), &ff, err));
    wisp_rope_table_params rp;
    wisp_rope_table_build(c, ff, tab, &rp);
    free(ff);
    e->rope.head_dim = rp.head_dim;
    e->rope.rope_dim = rp.rope_dim;
    e->rope.neox = rp.neox;
    e->rope.freq_scale = rp.freq_scale;
    e->rope.mscale = rp.mscale;
    void *dt = take(a, (size_t)c->head_dim * 4);
    WISP_CU(err, cudaMemcpy(dt, tab, (size_t)c->head_dim * 4, cudaMemcpyHostToDevice));
    e->rope.tab = dt;
    return 0;
}

int wisp_cuda_weights_upload(wisp_cuda_engine *e, const wisp_model_weights *w, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    size_t total = 0;
    WISP_TRY(plan(c, w, &e->range, &total, err));
    e->layers = calloc((size_t)e->range.n_local, sizeof(*e->layers));
    int64_t vmax = c->n_embd;
    const int64_t q = (int64_t)c->n_head * c->head_dim;
    vmax = q > vmax ? q : vmax;
    vmax = c->head_dim > vmax ? c->head_dim : vmax;
    arena_cursor a = {0};
    a.host_vec = malloc((size_t)vmax * 4);
    if (!e->layers || !a.host_vec) {
        free(a.host_vec);
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    }
    cudaError_t ce = cudaMalloc(&e->warena, total);
    if (ce != cudaSuccess) {
        free(a.host_vec);
        e->warena = NULL;
        cudaGetLastError();
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cuda engine: the weights need %.2f GiB of VRAM and only %.2f GiB "
                            "are free on %s (%s)",
                            (double)total / (1 << 30), (double)e->dev.free_bytes / (1 << 30),
                            e->dev.name, cudaGetErrorString(ce));
    }
    e->warena_bytes = total;
    a.base = e->warena;
    a.size = total;
    int rc = upload(e, w, &a, err);
    free(a.host_vec);
    WISP_ASSERT(rc != 0 || a.used == total);
    if (rc)
        return rc;
    /* The copies above are synchronous only with respect to the host: on
     * the legacy stream they are not ordered before work on the engine's
     * non-blocking streams, so wait for the device to hold every byte. */
    WISP_CU(err, cudaDeviceSynchronize());
    return 0;
}
