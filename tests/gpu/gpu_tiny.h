/*
 * gpu_tiny.h - tiny random models for the engine-level GPU tests and the
 * steps a scheduler would send them.
 *
 * A model is built in memory for an architecture variant (llama: normal
 * RoPE; qwen2: NeoX RoPE and q/k/v biases; qwen3: NeoX and QK-norm; tied
 * or separate output heads; linear RoPE scaling; llama-3 rope_freqs) and
 * weight type mix, with F32 reference copies of every weight. Logit rows
 * are compared within a tolerance of the reference's range (with the
 * argmax where it leads clearly) or bit for bit between two engines.
 */
#ifndef WISP_GPU_TINY_H
#define WISP_GPU_TINY_H

#include "engine/cuda/engine_cuda.h"
#include "gpu_test.h"

#define NL     2
#define NL_MAX 6

typedef struct tiny {
    wisp_model_config cfg;
    wisp_model_weights w;
    wisp_layer_weights layers[NL_MAX];
    wisp_tensor t[NL_MAX * 14 + 4];
    int nt;
    /* reference copies (F32) */
    float *embd, *out, *out_norm;
    float *wq[NL_MAX], *wk[NL_MAX], *wv[NL_MAX], *wo[NL_MAX], *wg[NL_MAX], *wu[NL_MAX], *wd[NL_MAX];
    float *an[NL_MAX], *fn[NL_MAX], *bq[NL_MAX], *bk[NL_MAX], *bv[NL_MAX], *qn[NL_MAX], *kn[NL_MAX];
    float *rf; /* rope_freqs factors, or NULL (the tensor's own data) */
    void *blobs[NL_MAX * 14 + 4];
} tiny;

static inline const gt_type *gtype(int type)
{
    for (int i = 0; i < GT_N_TYPES; i++)
        if (GT_TYPES[i].type == type)
            return &GT_TYPES[i];
    return NULL;
}

static inline const wisp_tensor *mk_mat(tiny *m, int type, int64_t n_in, int64_t n_out, float **ref)
{
    wisp_tensor *t = &m->t[m->nt];
    *ref = malloc(sizeof(float) * (size_t)(n_in * n_out));
    size_t bytes;
    /* std ~ 1/sqrt(n_in): activations stay O(1) through the layers */
    m->blobs[m->nt] =
        gt_random_weight(gtype(type), n_in, n_out, 1.7f / sqrtf((float)n_in), *ref, &bytes);
    *t = (wisp_tensor){"w", type, 2, {n_in, n_out, 1, 1}, bytes, m->blobs[m->nt]};
    m->nt++;
    return t;
}

static inline const wisp_tensor *mk_vec(tiny *m, int64_t n, float lo, float hi, float **ref)
{
    wisp_tensor *t = &m->t[m->nt];
    float *v = malloc(sizeof(float) * (size_t)n);
    gt_floats(v, (size_t)n, lo, hi);
    *ref = v;
    m->blobs[m->nt] = NULL; /* data is the reference copy itself */
    *t = (wisp_tensor){"v", WISP_TYPE_F32, 1, {n, 1, 1, 1}, (size_t)n * 4, v};
    m->nt++;
    return t;
}

typedef struct variant {
    wisp_arch arch;
    int mat_type, embd_type;
    bool tied;
    float rope_scale; /* 0: none */
    bool rope_freqs;  /* llama-3 rope_freqs.weight divisors */
    int n_layers;     /* 0: NL */
} variant;

static inline void tiny_make(tiny *m, const variant *vr)
{
    memset(m, 0, sizeof(*m));
    wisp_model_config *c = &m->cfg;
    c->arch = vr->arch;
    c->n_layers = vr->n_layers > 0 && vr->n_layers <= NL_MAX ? vr->n_layers : NL;
    c->n_embd = 256;
    c->n_head = 4;
    c->n_head_kv = 2;
    c->head_dim = 64;
    c->n_ff = 512;
    c->n_ctx_train = 512;
    c->vocab_size = 300;
    c->norm_eps = 1e-5f;
    c->rope_layout = vr->arch == WISP_ARCH_LLAMA ? WISP_ROPE_NORMAL : WISP_ROPE_NEOX;
    c->rope_freq_base = vr->arch == WISP_ARCH_LLAMA ? 10000.0f : 1000000.0f;
    c->rope_dim = 64;
    c->rope_scaling = vr->rope_scale > 0 ? WISP_ROPE_SCALING_LINEAR : WISP_ROPE_SCALING_NONE;
    c->rope_scale_factor = vr->rope_scale;
    c->tied_output = vr->tied;
    c->attn_bias = vr->arch == WISP_ARCH_QWEN2;
    c->qk_norm = vr->arch == WISP_ARCH_QWEN3;
    const int64_t E = 256, Q = 256, KV = 128, F = 512, V = 300;
    m->w.tok_embd = mk_mat(m, vr->embd_type, E, V, &m->embd);
    if (vr->tied) {
        m->w.output = m->w.tok_embd;
        m->out = m->embd;
    } else {
        m->w.output = mk_mat(m, vr->mat_type, E, V, &m->out);
    }
    m->w.out_norm = mk_vec(m, E, 0.8f, 1.2f, &m->out_norm);
    if (vr->rope_freqs)
        m->w.rope_freqs = mk_vec(m, 32, 1.0f, 8.0f, &m->rf);
    for (int l = 0; l < c->n_layers; l++) {
        wisp_layer_weights *L = &m->layers[l];
        L->attn_norm = mk_vec(m, E, 0.8f, 1.2f, &m->an[l]);
        L->ffn_norm = mk_vec(m, E, 0.8f, 1.2f, &m->fn[l]);
        L->wq = mk_mat(m, vr->mat_type, E, Q, &m->wq[l]);
        L->wk = mk_mat(m, vr->mat_type, E, KV, &m->wk[l]);
        L->wv = mk_mat(m, vr->mat_type, E, KV, &m->wv[l]);
        L->wo = mk_mat(m, vr->mat_type, Q, E, &m->wo[l]);
        L->w_gate = mk_mat(m, vr->mat_type, E, F, &m->wg[l]);
        L->w_up = mk_mat(m, vr->mat_type, E, F, &m->wu[l]);
        L->w_down = mk_mat(m, vr->mat_type, F, E, &m->wd[l]);
        if (c->attn_bias) {
            L->bq = mk_vec(m, Q, -0.5f, 0.5f, &m->bq[l]);
            L->bk = mk_vec(m, KV, -0.5f, 0.5f, &m->bk[l]);
            L->bv = mk_vec(m, KV, -0.5f, 0.5f, &m->bv[l]);
        }
        if (c->qk_norm) {
            L->q_norm = mk_vec(m, 64, 0.8f, 1.2f, &m->qn[l]);
            L->k_norm = mk_vec(m, 64, 0.8f, 1.2f, &m->kn[l]);
        }
    }
    m->w.layers = m->layers;
}

static inline void tiny_free(tiny *m)
{
    for (int i = 0; i < m->nt; i++) {
        free(m->blobs[i]);
        if (!m->blobs[i])
            free((void *)m->t[i].data);
    }
    free(m->embd);
    if (m->out != m->embd)
        free(m->out);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        free(m->wq[l]), free(m->wk[l]), free(m->wv[l]), free(m->wo[l]);
        free(m->wg[l]), free(m->wu[l]), free(m->wd[l]);
    }
}

/* ---------------------------------------------------------------- compare */

/* Logits within tol * max|ref| and the same argmax where the reference's
 * top-1 leads its runner-up by more than twice that. */
static inline int cmp_logits(const char *what, const float *got, const float *ref, int V,
                             double tol)
{
    double mx = 0;
    int best = 0, second = -1;
    for (int i = 0; i < V; i++) {
        mx = fmax(mx, fabs(ref[i]));
        if (ref[i] > ref[best])
            best = i;
    }
    for (int i = 0; i < V; i++)
        if (i != best && (second < 0 || ref[i] > ref[second]))
            second = i;
    int bad = gt_compare(what, got, ref, (size_t)V, tol * mx, 0);
    int gbest = 0;
    for (int i = 0; i < V; i++)
        if (got[i] > got[gbest])
            gbest = i;
    if (ref[best] - ref[second] > 2 * tol * mx && gbest != best) {
        fprintf(stderr, "  %s: argmax %d, want %d\n", what, gbest, best);
        bad++;
    }
    return bad;
}

/* ---------------------------------------------------------------- steps */

/* wisp_engine_destroy() lives with the CPU engine (engine.c); this is the
 * same two steps, so the test links without it. */
static inline void engine_free(wisp_engine *e)
{
    e->ops->destroy(e->ctx);
    free(e);
}

typedef struct seqst {
    int32_t tok[64];
    int n; /* tokens so far (all cached after a step) */
    int32_t table[8];
} seqst;

static inline wisp_engine *make_engine(const tiny *m, int kv_type, int n_blocks)
{
    wisp_engine_opts o = {0};
    o.block_size = 16;
    o.n_blocks = n_blocks;
    o.kv_type = (wisp_kv_type)kv_type;
    o.max_batch_tokens = 64;
    o.max_seqs = 4;
    wisp_engine *e = NULL;
    wisp_err err = {0};
    int rc = wisp_engine_cuda_create_from(&m->cfg, &m->w, &o, &e, &err);
    if (rc != 0) {
        fprintf(stderr, "  create: %s\n", err.msg);
        exit(1);
    }
    return e;
}

/* Sends one step: seq i gets add[i] new tokens (0: not in the batch). */
static inline int step(wisp_engine *e, seqst *s, const int *add, int n_seqs, bool all_logits,
                       float **out, wisp_err *err)
{
    wisp_batch_seq bs[4];
    int k = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (!add[i])
            continue;
        bs[k] = (wisp_batch_seq){.tokens = s[i].tok + s[i].n,
                                 .n_tokens = add[i],
                                 .pos0 = s[i].n,
                                 .block_table = s[i].table,
                                 .n_blocks = 8,
                                 .all_logits = all_logits,
                                 .logits = out[i]};
        k++;
    }
    wisp_batch b = {.seqs = bs, .n_seqs = k};
    int rc = e->ops->forward(e->ctx, &b, err);
    if (rc == 0)
        for (int i = 0; i < n_seqs; i++)
            s[i].n += add[i];
    return rc;
}

/* Logits of two engines fed the same steps: bit for bit (exact) or within
 * tol. Returns the number of rows that differ. */
static inline int cmp_rows(const char *what, const float *a, const float *b, int V, bool exact,
                           double tol)
{
    if (exact) {
        if (memcmp(a, b, sizeof(float) * (size_t)V) == 0)
            return 0;
        fprintf(stderr, "  %s: logits differ from the single engine's\n", what);
        return 1;
    }
    return cmp_logits(what, a, b, V, tol);
}

#endif
