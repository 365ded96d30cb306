/*
 * test_forward_ref.c - the CPU engine against a direct transformer in
 * double precision, on small F32 models built in memory.
 *
 * The golden files cover llama and qwen2 as llama.cpp computes them; this
 * covers what they do not: qwen3's QK-norm, a head_dim whose heads do not
 * span n_embd, partial rotary dimensions, YaRN and linear scaling, and a
 * separate (untied) output head. The reference recomputes every position
 * from scratch with no cache and no paging, the way the model is defined.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/engine_cpu.h"
#include "harness.h"

typedef struct ref_model {
    wisp_model_config c;
    wisp_model_weights w;
    wisp_tensor *tensors;
    int n_tensors;
    float *data;
    size_t used, cap;
    unsigned seed;
} ref_model;

static float rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((float)((*s >> 9) & 0xffff) / 65535.0f - 0.5f);
}

static const wisp_tensor *add(ref_model *m, const char *name, int64_t n_in, int64_t n_out,
                              float scale, float offset)
{
    REQUIRE(m->n_tensors < 64);
    size_t n = (size_t)(n_in * n_out);
    REQUIRE(m->used + n <= m->cap);
    float *d = m->data + m->used;
    m->used += n;
    for (size_t i = 0; i < n; i++)
        d[i] = offset + scale * rnd(&m->seed);
    wisp_tensor *t = &m->tensors[m->n_tensors++];
    *t = (wisp_tensor){.name = name,
                       .type = WISP_TYPE_F32,
                       .n_dims = n_out > 1 ? 2 : 1,
                       .ne = {n_in, n_out, 1, 1},
                       .nbytes = n * 4,
                       .data = d};
    return t;
}

static void build(ref_model *m, const wisp_model_config *c, bool tied)
{
    memset(m, 0, sizeof(*m));
    m->c = *c;
    m->seed = 99;
    m->cap = 1 << 20;
    m->data = malloc(m->cap * sizeof(float));
    m->tensors = calloc(64, sizeof(wisp_tensor));
    m->w.layers = calloc((size_t)c->n_layers, sizeof(wisp_layer_weights));
    REQUIRE(m->data && m->tensors && m->w.layers);
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim;
    const int64_t KV = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff;
    m->w.tok_embd = add(m, "token_embd", E, c->vocab_size, 2.0f, 0);
    m->w.out_norm = add(m, "output_norm", E, 1, 0.4f, 1.0f);
    m->w.output = tied ? m->w.tok_embd : add(m, "output", E, c->vocab_size, 0.5f, 0);
    for (int l = 0; l < c->n_layers; l++) {
        wisp_layer_weights *L = &m->w.layers[l];
        L->attn_norm = add(m, "attn_norm", E, 1, 0.4f, 1.0f);
        L->wq = add(m, "attn_q", E, Q, 0.5f, 0);
        L->wk = add(m, "attn_k", E, KV, 0.5f, 0);
        L->wv = add(m, "attn_v", E, KV, 0.5f, 0);
        L->wo = add(m, "attn_output", Q, E, 0.5f, 0);
        if (c->attn_bias) {
            L->bq = add(m, "bq", Q, 1, 0.5f, 0);
            L->bk = add(m, "bk", KV, 1, 0.5f, 0);
            L->bv = add(m, "bv", KV, 1, 0.5f, 0);
        }
        if (c->qk_norm) {
            L->q_norm = add(m, "q_norm", c->head_dim, 1, 0.4f, 1.0f);
            L->k_norm = add(m, "k_norm", c->head_dim, 1, 0.4f, 1.0f);
        }
        L->ffn_norm = add(m, "ffn_norm", E, 1, 0.4f, 1.0f);
        L->w_gate = add(m, "ffn_gate", E, F, 0.5f, 0);
        L->w_up = add(m, "ffn_up", E, F, 0.5f, 0);
        L->w_down = add(m, "ffn_down", F, E, 0.5f, 0);
    }
}

static void release(ref_model *m)
{
    free(m->data);
    free(m->tensors);
    free(m->w.layers);
}

/* ---------------------------------------------------------------- reference */

static const float *T(const wisp_tensor *t) { return t->data; }

static void matvec(const wisp_tensor *w, const double *x, double *y)
{
    for (int64_t o = 0; o < w->ne[1]; o++) {
        double s = 0;
        for (int64_t i = 0; i < w->ne[0]; i++)
            s += (double)T(w)[o * w->ne[0] + i] * x[i];
        y[o] = s;
    }
}

static void rmsnorm(double *y, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * r * w[i];
}

/* The rotation of pair i at pos, llama.cpp's YaRN written out in double. */
static void rope_angle(const wisp_model_config *c, int pos, int i, double *cs, double *sn)
{
    const int nd = c->rope_dim;
    const double base = c->rope_freq_base, ext = pos * pow(base, -2.0 * i / nd);
    double theta = ext, ms = 1.0;
    if (c->rope_scaling == WISP_ROPE_SCALING_LINEAR)
        theta = ext / c->rope_scale_factor;
    if (c->rope_scaling == WISP_ROPE_SCALING_YARN) {
        double f = c->rope_scale_factor;
        double corr = nd * log(c->rope_orig_ctx / (c->yarn_beta_fast * 2 * M_PI)) / (2 * log(base));
        double corr2 =
            nd * log(c->rope_orig_ctx / (c->yarn_beta_slow * 2 * M_PI)) / (2 * log(base));
        double lo = fmax(0, floor(corr)), hi = fmin(nd - 1, ceil(corr2));
        double y = (i - lo) / fmax(0.001, hi - lo), mix = 1 - fmin(1, fmax(0, y));
        theta = ext / f * (1 - mix) + ext * mix;
        ms = 1 + 0.1 * log(f);
    }
    *cs = cos(theta) * ms;
    *sn = sin(theta) * ms;
}

static void rope(const wisp_model_config *c, double *x, int pos)
{
    const int half = c->rope_dim / 2;
    for (int i = 0; i < half; i++) {
        double cs, sn;
        rope_angle(c, pos, i, &cs, &sn);
        int a = c->rope_layout == WISP_ROPE_NEOX ? i : 2 * i;
        int b = c->rope_layout == WISP_ROPE_NEOX ? i + half : 2 * i + 1;
        double x0 = x[a], x1 = x[b];
        x[a] = x0 * cs - x1 * sn;
        x[b] = x0 * sn + x1 * cs;
    }
}

/* Logits at every position of toks[0..n): n * vocab doubles. */
static double *reference(const ref_model *m, const int32_t *toks, int n)
{
    const wisp_model_config *c = &m->c;
    const int E = c->n_embd, hd = c->head_dim, H = c->n_head, HK = c->n_head_kv, F = c->n_ff;
    const int V = c->vocab_size;
    double *x = calloc((size_t)n * E, sizeof(double)), *xn = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * (size_t)n * H * hd), *att = malloc(sizeof(double) * H * hd);
    double *k = malloc(sizeof(double) * (size_t)n * HK * hd),
           *v = malloc(sizeof(double) * (size_t)n * HK * hd);
    double *o = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * F),
           *u = malloc(sizeof(double) * F);
    double *w = malloc(sizeof(double) * (size_t)n), *out = malloc(sizeof(double) * (size_t)n * V);
    REQUIRE(x && xn && q && att && k && v && o && g && u && w && out);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++)
            x[(size_t)t * E + i] = T(m->w.tok_embd)[(size_t)toks[t] * E + i];
    for (int l = 0; l < c->n_layers; l++) {
        const wisp_layer_weights *L = &m->w.layers[l];
        for (int t = 0; t < n; t++) {
            rmsnorm(xn, x + (size_t)t * E, T(L->attn_norm), E, c->norm_eps);
            double *qt = q + (size_t)t * H * hd, *kt = k + (size_t)t * HK * hd,
                   *vt = v + (size_t)t * HK * hd;
            matvec(L->wq, xn, qt);
            matvec(L->wk, xn, kt);
            matvec(L->wv, xn, vt);
            for (int i = 0; L->bq && i < H * hd; i++)
                qt[i] += T(L->bq)[i];
            for (int i = 0; L->bk && i < HK * hd; i++) {
                kt[i] += T(L->bk)[i];
                vt[i] += T(L->bv)[i];
            }
            for (int h = 0; h < H; h++) {
                if (L->q_norm)
                    rmsnorm(qt + h * hd, qt + h * hd, T(L->q_norm), hd, c->norm_eps);
                rope(c, qt + h * hd, t);
            }
            for (int h = 0; h < HK; h++) {
                if (L->k_norm)
                    rmsnorm(kt + h * hd, kt + h * hd, T(L->k_norm), hd, c->norm_eps);
                rope(c, kt + h * hd, t);
            }
        }
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < H; h++) {
                const int hk = h / (H / HK);
                double mx = -1e300, sum = 0;
                for (int p = 0; p <= t; p++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += q[((size_t)t * H + h) * hd + d] * k[((size_t)p * HK + hk) * hd + d];
                    w[p] = s / sqrt((double)hd);
                    mx = fmax(mx, w[p]);
                }
                for (int p = 0; p <= t; p++)
                    sum += w[p] = exp(w[p] - mx);
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int p = 0; p <= t; p++)
                        a += w[p] * v[((size_t)p * HK + hk) * hd + d];
                    att[h * hd + d] = a / sum;
                }
            }
            double *xt = x + (size_t)t * E;
            matvec(L->wo, att, o);
            for (int i = 0; i < E; i++)
                xt[i] += o[i];
            rmsnorm(xn, xt, T(L->ffn_norm), E, c->norm_eps);
            matvec(L->w_gate, xn, g);
            matvec(L->w_up, xn, u);
            for (int i = 0; i < F; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            matvec(L->w_down, g, o);
            for (int i = 0; i < E; i++)
                xt[i] += o[i];
        }
    }
    for (int t = 0; t < n; t++) {
        rmsnorm(xn, x + (size_t)t * E, T(m->w.out_norm), E, c->norm_eps);
        matvec(m->w.output, xn, out + (size_t)t * V);
    }
    free(x), free(xn), free(q), free(att), free(k), free(v), free(o), free(g), free(u), free(w);
    return out;
}

/* ---------------------------------------------------------------- cases */

static void compare(const wisp_model_config *c, bool tied)
{
    ref_model m;
    build(&m, c, tied);
    enum {
        N = 11
    };
    int32_t toks[N];
    for (int i = 0; i < N; i++)
        toks[i] = (int32_t)((i * 17 + 3) % c->vocab_size);
    double *ref = reference(&m, toks, N);

    wisp_engine_opts o = {.n_threads = 2,
                          .block_size = 4,
                          .n_blocks = 6,
                          .kv_type = WISP_KV_F32,
                          .max_batch_tokens = N,
                          .max_seqs = 1};
    wisp_engine *e = NULL;
    wisp_err err = {0};
    int rc = wisp_engine_cpu_create_from(&m.c, &m.w, &o, &e, &err);
    if (rc)
        fprintf(stderr, "  create: %s\n", err.msg);
    REQUIRE(rc == 0);
    const int V = c->vocab_size;
    float *lg = malloc(sizeof(float) * N * (size_t)V);
    REQUIRE(lg);
    const int32_t table[3] = {4, 0, 2};
    wisp_batch_seq s = {.tokens = toks,
                        .n_tokens = N,
                        .pos0 = 0,
                        .block_table = table,
                        .n_blocks = 3,
                        .all_logits = true,
                        .logits = lg};
    wisp_batch b = {.seqs = &s, .n_seqs = 1};
    REQUIRE(e->ops->forward(e->ctx, &b, &err) == 0);
    double dev = 0, mag = 0;
    for (int i = 0; i < N * V; i++) {
        dev = fmax(dev, fabs(lg[i] - ref[i]));
        mag = fmax(mag, fabs(ref[i]));
    }
    fprintf(stderr, "  max |dlogit| %.2e over logits up to %.1f\n", dev, mag);
    CHECK(mag > 0.5);
    CHECK(dev <= 1e-3 * fmax(1.0, mag));
    free(lg);
    free(ref);
    wisp_engine_destroy(e);
    release(&m);
}

static wisp_model_config base_config(wisp_arch arch)
{
    wisp_model_config c;
    memset(&c, 0, sizeof(c));
    c.arch = arch;
    c.n_layers = 2;
    c.n_embd = 48;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 16; /* 4 x 16 = 64 != 48: heads need not span the model dim */
    c.n_ff = 40;
    c.vocab_size = 50;
    c.n_ctx_train = 64;
    c.norm_eps = 1e-6f;
    c.rope_freq_base = 10000.0f;
    c.rope_dim = 16;
    c.rope_layout = WISP_ROPE_NEOX;
    return c;
}

TEST(qwen3_qk_norm_matches_reference)
{
    wisp_model_config c = base_config(WISP_ARCH_QWEN3);
    c.qk_norm = true;
    compare(&c, true);
}

TEST(qwen2_biases_untied_output_match_reference)
{
    wisp_model_config c = base_config(WISP_ARCH_QWEN2);
    c.attn_bias = true;
    c.rope_freq_base = 1e6f;
    compare(&c, false);
}

TEST(llama_partial_rope_linear_scaling_matches_reference)
{
    wisp_model_config c = base_config(WISP_ARCH_LLAMA);
    c.rope_layout = WISP_ROPE_NORMAL;
    c.rope_dim = 8;
    c.rope_scaling = WISP_ROPE_SCALING_LINEAR;
    c.rope_scale_factor = 2.0f;
    c.n_head_kv = 1; /* MQA */
    compare(&c, true);
}

TEST(yarn_matches_reference)
{
    wisp_model_config c = base_config(WISP_ARCH_QWEN2);
    c.rope_scaling = WISP_ROPE_SCALING_YARN;
    c.rope_scale_factor = 4.0f;
    c.rope_orig_ctx = 32;
    c.yarn_beta_fast = 32.0f;
    c.yarn_beta_slow = 1.0f;
    compare(&c, true);
}

TEST(mismatched_shapes_are_refused)
{
    wisp_model_config c = base_config(WISP_ARCH_QWEN3);
    c.qk_norm = true;
    ref_model m;
    build(&m, &c, true);
    wisp_engine *e = NULL;
    wisp_err err = {0};
    m.c.n_ff = 41;
    CHECK_EQ_INT(wisp_engine_cpu_create_from(&m.c, &m.w, NULL, &e, &err), WISP_E_FORMAT);
    CHECK(e == NULL && strstr(err.msg, "ffn_gate") != NULL);
    m.c.n_ff = 40;
    m.w.layers[1].k_norm = NULL;
    CHECK_EQ_INT(wisp_engine_cpu_create_from(&m.c, &m.w, NULL, &e, &err), WISP_E_FORMAT);
    CHECK(strstr(err.msg, "attn_k_norm") != NULL);
    release(&m);
}
