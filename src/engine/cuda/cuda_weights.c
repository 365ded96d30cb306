/*
 * cuda_weights.c - weights onto the device, once, at engine creation.
 *
 * Matrices are copied in their stored type (the kernels dequantize on the
 * fly, so VRAM holds the file's bytes, not an inflated copy); norm weights
 * and biases are converted to F32 on the host first (some checkpoints keep
 * them in F16 or BF16; the kernels then see one type). Everything lands in
 * one arena (one cudaMalloc, 256-byte aligned pieces), and a tied output
 * head shares the embedding's bytes. A layer is one image (layer_image.h);
 * under a weights budget the stream plan decides which images go into the
 * arena and which into pinned host memory, written there once, layer by
 * layer straight from the model's tensors, for cuda_stream.c to copy into
 * the arena's two layer buffers at the arena's end. Every tensor's type and shape are
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

/* Checks layer l's tensors against its image: every matrix of the shape
 * and a type the kernels take, the vectors of their lengths, biases and
 * QK norms all or none, and the image's sizes those of the kernels. */
static int check_layer(const wisp_model_config *c, const wisp_layer_weights *L, int l,
                       wisp_cuda_layer_image *im, wisp_err *err)
{
    wisp_cuda_layer_image_init(c, L, im);
    const bool bias = L->bq || L->bk || L->bv;
    const bool qkn = L->q_norm || L->k_norm;
    for (int i = 0; i < WISP_CUDA_N_PIECES; i++) {
        const wisp_cuda_piece *p = &im->p[i];
        const wisp_tensor *t = wisp_cuda_piece_tensor(L, (wisp_cuda_piece_id)i);
        if (p->is_vec) {
            const bool optional = i >= WISP_CUDA_P_Q_NORM ? !qkn
                                  : i >= WISP_CUDA_P_BQ   ? !bias
                                                          : false;
            WISP_TRY(check_vec(t, p->role, l, p->n_in, optional, err));
            continue;
        }
        size_t b = 0;
        WISP_TRY(check_mat(t, p->role, l, p->n_in, p->n_out, &b, err));
        if (b != p->bytes)
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "cuda engine: tensor %s of layer %d takes %zu bytes in the "
                                "kernels' layout and %zu in the layer image",
                                p->role, l, b, p->bytes);
    }
    return 0;
}

/* Walks every tensor of range r (range.h: its layers, the embedding on the
 * first stage, the output norm and head on the last): checks it, gives
 * the arena bytes outside the layers and the layers' images together, and
 * each layer's image in images[] when it is not NULL. */
static int plan(const wisp_model_config *c, const wisp_model_weights *w, const wisp_cuda_range *r,
                size_t *nonlayer, size_t *layers, wisp_cuda_layer_image *images, wisp_err *err)
{
    const int64_t E = c->n_embd, V = c->vocab_size;
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
    /* llama-3 frequency divisors: one per rotated pair (read on the host). */
    WISP_TRY(check_vec(w->rope_freqs, "rope_freqs", -1, wisp_rope_table_pairs(c), true, err));
    sum += align_up((size_t)c->head_dim * 4); /* RoPE table: 2 floats per pair */
    size_t lsum = 0;
    for (int l = r->begin; l < r->end; l++) {
        wisp_cuda_layer_image im;
        WISP_TRY(check_layer(c, &w->layers[l], l, &im, err));
        lsum += im.bytes;
        if (images)
            images[l - r->begin] = im;
    }
    *nonlayer = sum;
    *layers = lsum;
    return 0;
}

int wisp_cuda_check_model(const wisp_model_config *cfg, const wisp_model_weights *w, wisp_err *err)
{
    size_t a = 0, b = 0;
    wisp_cuda_range all;
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: the model has no weights");
    WISP_TRY(wisp_cuda_range_init(cfg, 0, cfg->n_layers, !w->output || w->output == w->tok_embd,
                                  &all, err));
    return plan(cfg, w, &all, &a, &b, NULL, err);
}

int wisp_cuda_weights_bytes(const wisp_model_config *cfg, const wisp_model_weights *w,
                            const wisp_cuda_range *r, uint64_t budget, size_t *bytes, wisp_err *err)
{
    size_t nonlayer = 0, layers = 0;
    WISP_TRY(plan(cfg, w, r, &nonlayer, &layers, NULL, err));
    if (budget) {
        wisp_stream_plan sp;
        int rc = wisp_cuda_stream_plan_init(cfg, w, r->begin, r->end, budget, &sp, err);
        layers = (size_t)sp.held_bytes;
        wisp_stream_plan_free(&sp);
        if (rc)
            return rc;
    }
    *bytes = nonlayer + layers;
    return 0;
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

/* n elements of vector t as floats into h. */
static void vec_to_f32(const wisp_tensor *t, int64_t n, float *h)
{
    for (int64_t i = 0; i < n; i++) {
        if (t->type == WISP_TYPE_F32) {
            memcpy(&h[i], (const uint8_t *)t->data + 4 * i, 4);
        } else {
            uint16_t bits;
            memcpy(&bits, (const uint8_t *)t->data + 2 * i, 2);
            h[i] = t->type == WISP_TYPE_F16 ? wisp_half_to_float(bits) : wisp_bf16_to_float(bits);
        }
    }
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
    vec_to_f32(t, n, h);
    void *d = take(a, (size_t)n * 4);
    WISP_CU(err, cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice));
    *out = d;
    return 0;
}

/* Writes layer L's image im at base: device memory, or (host) the pinned
 * buffer a streamed layer is copied from. Vectors go through host_vec on
 * their way to the device. */
static int put_layer(const wisp_cuda_layer_image *im, const wisp_layer_weights *L, uint8_t *base,
                     bool host, float *host_vec, wisp_err *err)
{
    for (int i = 0; i < WISP_CUDA_N_PIECES; i++) {
        const wisp_cuda_piece *p = &im->p[i];
        const wisp_tensor *t = wisp_cuda_piece_tensor(L, (wisp_cuda_piece_id)i);
        if (!p->present)
            continue;
        uint8_t *dst = base + p->offset;
        const void *src = t->data;
        if (p->is_vec) {
            float *h = host ? (float *)(void *)dst : host_vec;
            vec_to_f32(t, p->n_in, h);
            src = h;
        }
        if (host && !p->is_vec)
            memcpy(dst, src, p->bytes);
        else if (!host)
            WISP_CU(err, cudaMemcpy(dst, src, p->bytes, cudaMemcpyHostToDevice));
    }
    return 0;
}

void wisp_cuda_layer_bind(const wisp_cuda_layer_image *im, uint8_t *base, wisp_cuda_layer *L)
{
    /* The pieces' order (layer_image.h): the seven matrices, then the
     * seven vectors. */
    wisp_cuda_mat *m[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    const float **v[] = {&L->attn_norm, &L->ffn_norm, &L->bq,    &L->bk,
                         &L->bv,        &L->q_norm,   &L->k_norm};
    const int n_mats = (int)(sizeof m / sizeof m[0]);
    for (int i = 0; i < n_mats; i++) {
        const wisp_cuda_piece *p = &im->p[i];
        *m[i] = (wisp_cuda_mat){base + p->offset, p->type, p->n_in, p->n_out};
    }
    for (int i = 0; i < (int)(sizeof v / sizeof v[0]); i++) {
        const wisp_cuda_piece *p = &im->p[n_mats + i];
        *v[i] = p->present ? (const float *)(const void *)(base + p->offset) : NULL;
    }
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
    vec_to_f32(t, n, f);
    *out = f;
    return 0;
}

static int upload(wisp_cuda_engine *e, const wisp_model_weights *w, arena_cursor *a, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const int64_t E = c->n_embd, V = c->vocab_size;
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
        const int kl = l - r->begin;
        const wisp_cuda_layer_image *im = &e->images[kl];
        if (e->sw.on && wisp_stream_plan_streams(&e->sw.plan, l)) {
            WISP_TRY(put_layer(im, &w->layers[l], e->sw.host + e->sw.host_off[kl], true,
                               a->host_vec, err));
            continue;
        }
        uint8_t *base = take(a, im->bytes);
        WISP_TRY(put_layer(im, &w->layers[l], base, false, a->host_vec, err));
        wisp_cuda_layer_bind(im, base, &e->layers[kl]);
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
    for (int i = 0; e->sw.on && i < WISP_STREAM_SLOTS; i++)
        e->sw.slot[i] = take(a, (size_t)e->sw.plan.slot_bytes);
    return 0;
}

/* Plans the stream of a budgeted engine: which layers stay resident, the
 * pinned host images of the others. Returns the device bytes of the
 * layers in *layers. */
static int plan_stream(wisp_cuda_engine *e, const wisp_model_weights *w, size_t *layers,
                       wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    const wisp_cuda_range *r = &e->range;
    WISP_TRY(wisp_cuda_stream_plan_init(&e->cfg, w, r->begin, r->end, e->opts.weights_budget_bytes,
                                        &sw->plan, err));
    sw->on = sw->plan.n_streamed > 0;
    *layers = (size_t)sw->plan.held_bytes;
    if (!sw->on)
        return 0;
    sw->host_off = calloc((size_t)r->n_local, sizeof *sw->host_off);
    if (!sw->host_off)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    size_t host = 0;
    for (int l = r->begin; l < r->end; l++)
        if (wisp_stream_plan_streams(&sw->plan, l)) {
            sw->host_off[l - r->begin] = host;
            host += e->images[l - r->begin].bytes;
        }
    /* Write-combined: the host only writes these pages, once, and the
     * device reads them over the bus every step. */
    cudaError_t ce = cudaHostAlloc((void **)&sw->host, host, cudaHostAllocWriteCombined);
    if (ce != cudaSuccess) {
        cudaGetLastError();
        sw->host = NULL;
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cuda engine: cannot pin %.2f GiB of host memory for the %d streamed "
                            "layers (%s)",
                            (double)host / (1 << 30), sw->plan.n_streamed, cudaGetErrorString(ce));
    }
    sw->host_bytes = host;
    return 0;
}

int wisp_cuda_weights_upload(wisp_cuda_engine *e, const wisp_model_weights *w, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    const int n = e->range.n_local;
    e->layers = calloc((size_t)n, sizeof(*e->layers));
    e->images = calloc((size_t)n, sizeof(*e->images));
    if (!e->layers || !e->images)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    size_t nonlayer = 0, layers = 0;
    WISP_TRY(plan(c, w, &e->range, &nonlayer, &layers, e->images, err));
    if (e->opts.weights_budget_bytes)
        WISP_TRY(plan_stream(e, w, &layers, err));
    const size_t total = nonlayer + layers;
    int64_t vmax = c->n_embd;
    const int64_t q = (int64_t)c->n_head * c->head_dim;
    vmax = q > vmax ? q : vmax;
    vmax = c->head_dim > vmax ? c->head_dim : vmax;
    arena_cursor a = {0};
    a.host_vec = malloc((size_t)vmax * 4);
    if (!a.host_vec)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
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
