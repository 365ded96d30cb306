/*
 * test_gpu_engine.c - the whole CUDA engine against a CPU reference forward
 * pass written here from the model definition (llama2.c style, in double).
 *
 * Tiny random models are built in memory for each architecture variant
 * (llama: normal RoPE; qwen2: NeoX RoPE and q/k/v biases; qwen3: NeoX and
 * QK-norm; tied and separate output heads; linear RoPE scaling) and weight
 * type mix (all F32 with an F32 KV cache: tight; F16 / Q8_0 / Q4_K / Q6_K
 * with an F16 KV cache: loose). The engine runs the steps a scheduler
 * would send - a batch of two prefills (GEMM path), a batch of decodes
 * (matvec path), a 3-token chunk next to a decode - and every returned
 * logit row is compared with the reference at the same position, plus the
 * argmax wherever the reference's top-1 leads clearly. Further cases cover
 * copy-on-write block copies, read/write_block, the pinned host tier,
 * cancellation, and bad batches answered with errors while the engine
 * keeps working. Layer ranges: the model split after layer 1 into GPU +
 * CPU, CPU + GPU and GPU + GPU engines (the second GPU when there is one)
 * chained through a host hidden-state buffer as engine/stages.c chains
 * them, against one CUDA engine over all layers: GPU + GPU bit for bit,
 * the splits with a CPU stage within the F32 tolerance. Layer streaming
 * is test_gpu_stream.c's.
 */
#include "gpu_test.h"
#include "gpu_tiny.h"

#include "engine/cpu/engine_cpu.h"
#include "engine/cuda/engine_cuda.h"

/* Layers of a tiny model: 2 unless its variant asks for more. */
/* ---------------------------------------------------------------- reference */

static void rms(double *y, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * s * w[i];
}

static void mv(double *y, const float *W, const double *x, int n_in, int n_out)
{
    for (int o = 0; o < n_out; o++) {
        double s = 0;
        for (int i = 0; i < n_in; i++)
            s += (double)W[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rope(double *x, int pos, const wisp_model_config *c, const float *ff)
{
    const int d = c->rope_dim, half = d / 2;
    const double fs = c->rope_scaling == WISP_ROPE_SCALING_LINEAR ? 1.0 / c->rope_scale_factor : 1;
    for (int i = 0; i < half; i++) {
        double th = pos * pow(c->rope_freq_base, -2.0 * i / d) * fs / (ff ? ff[i] : 1.0);
        double cs = cos(th), sn = sin(th);
        int i0 = c->rope_layout == WISP_ROPE_NEOX ? i : 2 * i;
        int i1 = c->rope_layout == WISP_ROPE_NEOX ? i + half : 2 * i + 1;
        double a = x[i0], b = x[i1];
        x[i0] = a * cs - b * sn;
        x[i1] = a * sn + b * cs;
    }
}

/* Logits (n x vocab) at every position of a token sequence. */
static void ref_forward(const tiny *m, const int32_t *tok, int n, float *logits)
{
    const wisp_model_config *c = &m->cfg;
    const int E = c->n_embd, hd = c->head_dim, H = c->n_head, HK = c->n_head_kv;
    const int Q = H * hd, KV = HK * hd, F = c->n_ff, V = c->vocab_size;
    const int NLr = c->n_layers;
    double *K = malloc(sizeof(double) * (size_t)NLr * n * KV);
    double *Vc = malloc(sizeof(double) * (size_t)NLr * n * KV);
    double *x = malloc(sizeof(double) * E), *xn = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * Q), *att = malloc(sizeof(double) * Q);
    double *g = malloc(sizeof(double) * F), *u = malloc(sizeof(double) * F);
    double *tmp = malloc(sizeof(double) * (E > V ? E : V)), *w = malloc(sizeof(double) * n);
    for (int p = 0; p < n; p++) {
        for (int i = 0; i < E; i++)
            x[i] = m->embd[(size_t)tok[p] * E + i];
        for (int l = 0; l < NLr; l++) {
            double *k = K + ((size_t)l * n + p) * KV, *v = Vc + ((size_t)l * n + p) * KV;
            rms(xn, x, m->an[l], E, c->norm_eps);
            mv(q, m->wq[l], xn, E, Q);
            mv(k, m->wk[l], xn, E, KV);
            mv(v, m->wv[l], xn, E, KV);
            if (c->attn_bias) {
                for (int i = 0; i < Q; i++)
                    q[i] += m->bq[l][i];
                for (int i = 0; i < KV; i++)
                    k[i] += m->bk[l][i], v[i] += m->bv[l][i];
            }
            for (int h = 0; h < H; h++) {
                if (c->qk_norm)
                    rms(q + h * hd, q + h * hd, m->qn[l], hd, c->norm_eps);
                rope(q + h * hd, p, c, m->rf);
            }
            for (int h = 0; h < HK; h++) {
                if (c->qk_norm)
                    rms(k + h * hd, k + h * hd, m->kn[l], hd, c->norm_eps);
                rope(k + h * hd, p, c, m->rf);
            }
            for (int h = 0; h < H; h++) {
                const int kh = h / (H / HK);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= p; j++) {
                    const double *kj = K + ((size_t)l * n + j) * KV + kh * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += q[h * hd + d] * kj[d];
                    w[j] = s / sqrt((double)hd);
                    mx = fmax(mx, w[j]);
                }
                for (int j = 0; j <= p; j++)
                    sum += (w[j] = exp(w[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j <= p; j++)
                        o += w[j] * Vc[((size_t)l * n + j) * KV + kh * hd + d];
                    att[h * hd + d] = o / sum;
                }
            }
            mv(tmp, m->wo[l], att, Q, E);
            for (int i = 0; i < E; i++)
                x[i] += tmp[i];
            rms(xn, x, m->fn[l], E, c->norm_eps);
            mv(g, m->wg[l], xn, E, F);
            mv(u, m->wu[l], xn, E, F);
            for (int i = 0; i < F; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            mv(tmp, m->wd[l], g, F, E);
            for (int i = 0; i < E; i++)
                x[i] += tmp[i];
        }
        rms(xn, x, m->out_norm, E, c->norm_eps);
        mv(tmp, m->out, xn, E, V);
        for (int i = 0; i < V; i++)
            logits[(size_t)p * V + i] = (float)tmp[i];
    }
    free(K), free(Vc), free(x), free(xn), free(q), free(att), free(g), free(u), free(tmp);
    free(w);
}

/* ---------------------------------------------------------------- steps */

static int run_variant(const variant *vr, int kv_type, double tol)
{
    tiny m;
    tiny_make(&m, vr);
    const int V = m.cfg.vocab_size;
    wisp_engine *e = make_engine(&m, kv_type, 20);
    seqst s[2];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 64; j++)
            s[i].tok[j] = (int32_t)(gt_u32() % (uint32_t)V);
        for (int j = 0; j < 8; j++)
            s[i].table[j] = (int32_t)(i == 0 ? 19 - j : 2 * j + 1); /* scattered blocks */
    }
    float *ref[2];
    for (int i = 0; i < 2; i++) {
        ref[i] = malloc(sizeof(float) * 30 * (size_t)V);
        ref_forward(&m, s[i].tok, 30, ref[i]);
    }
    float *out[2] = {malloc(sizeof(float) * 64 * (size_t)V),
                     malloc(sizeof(float) * 64 * (size_t)V)};
    wisp_err err = {0};
    int bad = 0;
    /* 1: prefill 13 + 20 tokens (GEMM), every position's logits */
    int add1[2] = {13, 20};
    REQUIRE(step(e, s, add1, 2, true, out, &err) == 0);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < add1[i]; t++)
            bad += cmp_logits("prefill", out[i] + (size_t)t * V, ref[i] + (size_t)t * V, V, tol);
    /* 2: decode both (matvec), last logits */
    int add2[2] = {1, 1};
    REQUIRE(step(e, s, add2, 2, false, out, &err) == 0);
    bad += cmp_logits("decode a", out[0], ref[0] + 13 * (size_t)V, V, tol);
    bad += cmp_logits("decode b", out[1], ref[1] + 20 * (size_t)V, V, tol);
    /* 3: a 3-token chunk beside a decode (4 rows: matvec NC=4) */
    int add3[2] = {3, 1};
    REQUIRE(step(e, s, add3, 2, true, out, &err) == 0);
    for (int t = 0; t < 3; t++)
        bad += cmp_logits("chunk", out[0] + (size_t)t * V, ref[0] + (size_t)(14 + t) * V, V, tol);
    bad += cmp_logits("decode b2", out[1], ref[1] + 21 * (size_t)V, V, tol);
    /* 4: decodes across a block boundary for seq 0 (positions 17.. are in
     * its second block already; push seq 1 past 16 -> 22..29) */
    int add4[2] = {0, 8};
    REQUIRE(step(e, s, add4, 2, false, out, &err) == 0);
    bad += cmp_logits("chunk b", out[1], ref[1] + 29 * (size_t)V, V, tol);
    engine_free(e);
    free(ref[0]), free(ref[1]), free(out[0]), free(out[1]);
    tiny_free(&m);
    return bad;
}

TEST(forward_f32_matches_reference_tightly)
{
    GPU_REQUIRE();
    const variant vs[] = {
        {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL},
        {WISP_ARCH_QWEN2, WISP_TYPE_F32, WISP_TYPE_F32, true, 0, false, NL},
        {WISP_ARCH_QWEN3, WISP_TYPE_F32, WISP_TYPE_F32, false, 4.0f, false, NL},
        /* Llama 3.x: frequencies divided by rope_freqs.weight */
        {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, true, NL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        gt_seed(500 + i);
        bad += run_variant(&vs[i], WISP_KV_F32, 1e-4);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(forward_quantized_weights_f16_kv)
{
    GPU_REQUIRE();
    const variant vs[] = {
        {WISP_ARCH_LLAMA, WISP_TYPE_Q4_K, WISP_TYPE_Q6_K, false, 0, false, NL},
        {WISP_ARCH_QWEN2, WISP_TYPE_Q8_0, WISP_TYPE_Q8_0, true, 0, false, NL},
        {WISP_ARCH_QWEN3, WISP_TYPE_F16, WISP_TYPE_F16, true, 0, false, NL},
        {WISP_ARCH_LLAMA, WISP_TYPE_BF16, WISP_TYPE_F32, false, 0, false, NL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        gt_seed(600 + i);
        /* F16 activations in the GEMM and an F16 KV cache */
        bad += run_variant(&vs[i], WISP_KV_F16, vs[i].mat_type == WISP_TYPE_BF16 ? 3e-2 : 1e-2);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(forward_q8_0_kv_cache)
{
    GPU_REQUIRE();
    const variant v = {WISP_ARCH_QWEN2, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL};
    gt_seed(700);
    CHECK_EQ_INT(run_variant(&v, WISP_KV_Q8_0, 3e-2), 0);
}

static bool stop_now(void *ud) { return ++*(int *)ud >= 2; }

TEST(blocks_tier_cancel_and_bad_batches)
{
    GPU_REQUIRE();
    tiny m;
    gt_seed(800);
    const variant vr = {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL};
    tiny_make(&m, &vr);
    const int V = m.cfg.vocab_size;
    wisp_engine *e = make_engine(&m, WISP_KV_F32, 12);
    REQUIRE(wisp_engine_is_cuda(e));
    seqst s[2];
    memset(s, 0, sizeof(s));
    for (int j = 0; j < 64; j++)
        s[0].tok[j] = s[1].tok[j] = (int32_t)(gt_u32() % (uint32_t)V);
    for (int j = 0; j < 8; j++)
        s[0].table[j] = j, s[1].table[j] = 11 - j;
    float *ref = malloc(sizeof(float) * 20 * (size_t)V);
    ref_forward(&m, s[0].tok, 20, ref);
    float *out[2] = {malloc(sizeof(float) * 64 * (size_t)V),
                     malloc(sizeof(float) * 64 * (size_t)V)};
    wisp_err err = {0};
    int add[2] = {19, 0};
    REQUIRE(step(e, s, add, 1, false, out, &err) == 0);

    /* Prefix sharing by copy: seq 1 gets seq 0's first block (16 tokens)
     * through read/write/copy_block, then computes token 16.. itself. */
    const size_t bb = e->ops->bytes_per_block(e->ctx);
    uint8_t *blk = malloc(bb), *blk2 = malloc(bb);
    CHECK_EQ_INT(e->ops->read_block(e->ctx, 0, blk, &err), 0);
    CHECK_EQ_INT(e->ops->write_block(e->ctx, 10, blk, &err), 0);
    CHECK_EQ_INT(e->ops->copy_block(e->ctx, 11, 10, &err), 0);
    CHECK_EQ_INT(e->ops->read_block(e->ctx, 11, blk2, &err), 0);
    CHECK(memcmp(blk, blk2, bb) == 0);
    s[1].n = 16;
    int add1[2] = {0, 4};
    REQUIRE(step(e, s, add1, 2, true, out, &err) == 0);
    int bad = 0;
    for (int t = 0; t < 4; t++)
        bad += cmp_logits("shared prefix", out[1] + (size_t)t * V, ref + (size_t)(16 + t) * V, V,
                          1e-4);

    /* Host tier: offload block 0, restore it into block 9, compare. */
    CHECK_EQ_INT(wisp_cuda_tier_init(e, 3, &err), 0);
    CHECK_EQ_INT(wisp_cuda_tier_offload(e, 0, 2, &err), 0);
    CHECK_EQ_INT(wisp_cuda_tier_sync(e, &err), 0);
    const void *hb = wisp_cuda_tier_host_block(e, 2);
    REQUIRE(hb != NULL);
    CHECK(memcmp(hb, blk, bb) == 0);
    CHECK_EQ_INT(wisp_cuda_tier_restore(e, 2, 9, &err), 0);
    CHECK_EQ_INT(e->ops->read_block(e->ctx, 9, blk2, &err), 0);
    CHECK(memcmp(blk, blk2, bb) == 0);
    CHECK(wisp_cuda_tier_offload(e, 0, 3, &err) == WISP_E_INTERNAL);
    CHECK(wisp_cuda_tier_host_block(e, 3) == NULL);

    /* Bad batches are errors, and the engine keeps working after them. */
    seqst bad_s = s[0];
    bad_s.n = 19;
    bad_s.tok[19] = V; /* out of the vocabulary */
    int one[1] = {1};
    CHECK(step(e, &bad_s, one, 1, false, out, &err) == WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "vocabulary") != NULL);
    bad_s.tok[19] = s[0].tok[19];
    bad_s.table[1] = 12; /* outside the pool */
    CHECK(step(e, &bad_s, one, 1, false, out, &err) == WISP_E_INTERNAL);
    CHECK(e->ops->copy_block(e->ctx, 12, 0, &err) == WISP_E_INTERNAL);

    /* Cancellation stops the step with WISP_E_CANCELLED. */
    int polls = 0;
    wisp_batch_seq q = {.tokens = s[0].tok + 19,
                        .n_tokens = 1,
                        .pos0 = 19,
                        .block_table = s[0].table,
                        .n_blocks = 8,
                        .logits = out[0]};
    wisp_batch b = {.seqs = &q, .n_seqs = 1, .should_stop = stop_now, .stop_ud = &polls};
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_CANCELLED);
    /* ... and the same step without the stop runs and matches. */
    b.should_stop = NULL;
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), 0);
    bad += cmp_logits("after errors", out[0], ref + 19 * (size_t)V, V, 1e-4);

    wisp_engine_stats st;
    e->ops->get_stats(e->ctx, &st);
    CHECK(st.kv_bytes == 12 * bb);
    CHECK(st.weight_bytes > 0 && st.scratch_bytes > 0);
    CHECK_EQ_INT(bad, 0);
    engine_free(e);
    free(ref), free(out[0]), free(out[1]), free(blk), free(blk2);
    tiny_free(&m);
}

TEST(create_refuses_bad_models)
{
    GPU_REQUIRE();
    tiny m;
    gt_seed(900);
    const variant vr = {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL};
    tiny_make(&m, &vr);
    wisp_engine *e = NULL;
    wisp_err err = {0};
    wisp_engine_opts o = {.n_blocks = 4};
    wisp_tensor saved = m.t[2];
    m.t[2].ne[0] = 255; /* output_norm with the wrong length */
    CHECK(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err) != 0);
    CHECK(e == NULL);
    m.t[2] = saved;
    m.cfg.head_dim = 512;
    CHECK(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err) == WISP_E_UNSUPPORTED);
    m.cfg.head_dim = 64;
    int nb = 0;
    CHECK_EQ_INT(wisp_cuda_plan_blocks(&m.cfg, &m.w, &o, 0, &nb, &err), 0);
    CHECK(nb > 1000);
    tiny_free(&m);
}

/* ---------------------------------------------------------------- splits */

/* Two engines over layers [0, 1) and [1, NL), chained as engine/stages.c
 * does: one host hidden-state buffer, the forwards in order. */
typedef struct split {
    wisp_engine *st[2];
    float *hidden;
} split;

static int split_forward(void *ctx, const wisp_batch *batch, wisp_err *err)
{
    split *sp = ctx;
    wisp_batch b = *batch;
    b.hidden = sp->hidden;
    for (int i = 0; i < 2; i++) {
        int rc = sp->st[i]->ops->forward(sp->st[i]->ctx, &b, err);
        if (rc)
            return rc;
    }
    return 0;
}

static size_t split_bytes_per_block(void *ctx)
{
    split *sp = ctx;
    return sp->st[0]->ops->bytes_per_block(sp->st[0]->ctx) +
           sp->st[1]->ops->bytes_per_block(sp->st[1]->ctx);
}

static void split_destroy(void *ctx)
{
    split *sp = ctx;
    for (int i = 0; i < 2; i++)
        if (sp->st[i])
            engine_free(sp->st[i]);
    free(sp->hidden);
    free(sp);
}

static const struct wisp_engine_ops split_ops = {
    .name = "split",
    .forward = split_forward,
    .bytes_per_block = split_bytes_per_block,
    .destroy = split_destroy,
};

/* kind: 'c' the CPU, else a CUDA device index as a digit. */
static wisp_engine *make_stage(const tiny *m, char kind, int begin, int end)
{
    wisp_engine_opts o = {0};
    o.block_size = 16;
    o.n_blocks = 20;
    o.kv_type = WISP_KV_F32;
    o.max_batch_tokens = 64;
    o.max_seqs = 4;
    o.n_threads = 2;
    o.layer_begin = begin;
    o.layer_end = end;
    wisp_engine *e = NULL;
    wisp_err err = {0};
    int rc = kind == 'c'
                 ? wisp_engine_cpu_create_from(&m->cfg, &m->w, &o, &e, &err)
                 : wisp_engine_cuda_create_from_on(&m->cfg, &m->w, kind - '0', &o, &e, &err);
    if (rc != 0) {
        fprintf(stderr, "  create stage %c [%d, %d): %s\n", kind, begin, end, err.msg);
        exit(1);
    }
    return e;
}

static wisp_engine *make_split(const tiny *m, char a, char b)
{
    split *sp = calloc(1, sizeof *sp);
    wisp_engine *e = calloc(1, sizeof *e);
    REQUIRE(sp && e);
    sp->st[0] = make_stage(m, a, 0, 1);
    sp->st[1] = make_stage(m, b, 1, NL);
    sp->hidden = malloc(sizeof(float) * 64 * (size_t)m->cfg.n_embd);
    REQUIRE(sp->hidden);
    e->ops = &split_ops;
    e->ctx = sp;
    e->opts = sp->st[0]->opts;
    return e;
}

static int run_split(const variant *vr, char a, char b, bool exact)
{
    tiny m;
    tiny_make(&m, vr);
    const int V = m.cfg.vocab_size;
    wisp_engine *one = make_engine(&m, WISP_KV_F32, 20);
    wisp_engine *two = make_split(&m, a, b);
    int bad = 0;
    /* Each stage holds its own layers' rows of a block: together one
     * engine's block. */
    if (two->ops->bytes_per_block(two->ctx) != one->ops->bytes_per_block(one->ctx)) {
        fprintf(stderr, "  split %c+%c: %zu bytes per block, one engine %zu\n", a, b,
                two->ops->bytes_per_block(two->ctx), one->ops->bytes_per_block(one->ctx));
        bad++;
    }
    seqst s1[2], s2[2];
    memset(s1, 0, sizeof(s1));
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 64; j++)
            s1[i].tok[j] = (int32_t)(gt_u32() % (uint32_t)V);
        for (int j = 0; j < 8; j++)
            s1[i].table[j] = (int32_t)(i == 0 ? 19 - j : 2 * j + 1);
    }
    memcpy(s2, s1, sizeof(s1));
    float *o1[2], *o2[2];
    for (int i = 0; i < 2; i++) {
        o1[i] = malloc(sizeof(float) * 64 * (size_t)V);
        o2[i] = malloc(sizeof(float) * 64 * (size_t)V);
    }
    wisp_err err = {0};
    /* prefill (GEMM), decode (matvec), a chunk beside a decode, a block
     * boundary: the steps of run_variant */
    const int adds[4][2] = {{13, 20}, {1, 1}, {3, 1}, {0, 8}};
    const bool all[4] = {true, false, true, false};
    for (int k = 0; k < 4; k++) {
        int add[2] = {adds[k][0], adds[k][1]};
        REQUIRE(step(one, s1, add, 2, all[k], o1, &err) == 0);
        int rc = step(two, s2, add, 2, all[k], o2, &err);
        if (rc != 0) {
            fprintf(stderr, "  split %c+%c step %d: %s\n", a, b, k, err.msg);
            bad++;
            break;
        }
        for (int i = 0; i < 2; i++) {
            const int rows = !add[i] ? 0 : all[k] ? add[i] : 1;
            for (int t = 0; t < rows; t++) {
                char what[64];
                snprintf(what, sizeof what, "split %c+%c step %d seq %d row %d", a, b, k, i, t);
                bad += cmp_rows(what, o2[i] + (size_t)t * V, o1[i] + (size_t)t * V, V, exact, 1e-4);
            }
        }
    }
    engine_free(one);
    engine_free(two);
    for (int i = 0; i < 2; i++)
        free(o1[i]), free(o2[i]);
    tiny_free(&m);
    return bad;
}

TEST(split_layers_match_one_engine)
{
    GPU_REQUIRE();
    wisp_cuda_device_info info[2];
    wisp_err err = {0};
    const int n_dev = wisp_cuda_devices(info, 2, &err);
    REQUIRE(n_dev >= 1);
    /* GPU + GPU: the second GPU when there is one, else both stages on
     * the first (the range arithmetic and hidden copies are the same). */
    const char g2 = n_dev >= 2 ? '1' : '0';
    const variant vs[] = {
        {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL},
        {WISP_ARCH_QWEN2, WISP_TYPE_F32, WISP_TYPE_F32, true, 0, false, NL},
        {WISP_ARCH_QWEN3, WISP_TYPE_F32, WISP_TYPE_F32, false, 4.0f, false, NL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        gt_seed(1000 + i);
        bad += run_split(&vs[i], '0', 'c', false);
        gt_seed(1000 + i);
        bad += run_split(&vs[i], 'c', '0', false);
        gt_seed(1000 + i);
        /* bit for bit only on one device model: two different GPUs may
         * pick other cuBLAS kernels */
        bad += run_split(&vs[i], '0', g2, g2 == '0' || strcmp(info[0].name, info[1].name) == 0);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(range_refusals)
{
    GPU_REQUIRE();
    tiny m;
    gt_seed(1100);
    const variant vr = {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL};
    tiny_make(&m, &vr);
    wisp_engine *e = NULL;
    wisp_err err = {0};
    wisp_engine_opts o = {.n_blocks = 4, .layer_begin = 1, .layer_end = 1};
    CHECK_EQ_INT(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err), WISP_E_INVALID);
    CHECK(e == NULL);
    o.layer_begin = 0;
    o.layer_end = NL + 1;
    CHECK_EQ_INT(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err), WISP_E_INVALID);
    o.layer_end = 0;
    /* a budget that neither holds the layers nor two of the largest */
    o.weights_budget_bytes = 1 << 20;
    CHECK_EQ_INT(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err), WISP_E_INVALID);
    CHECK(strstr(err.msg, "two of the largest layers") != NULL);
    CHECK(e == NULL);
    o.weights_budget_bytes = 0;
    CHECK_EQ_INT(wisp_engine_cuda_create_from_on(&m.cfg, &m.w, 999, &o, &e, &err), WISP_E_DEVICE);
    CHECK(e == NULL);
    /* a middle stage without the batch's hidden state is refused */
    o.layer_begin = 1;
    o.layer_end = NL;
    REQUIRE(wisp_engine_cuda_create_from(&m.cfg, &m.w, &o, &e, &err) == 0);
    int32_t tok[1] = {3}, table[1] = {0};
    float *logits = calloc((size_t)m.cfg.vocab_size, sizeof(float));
    REQUIRE(logits);
    wisp_batch_seq bs = {.tokens = tok,
                         .n_tokens = 1,
                         .block_table = table,
                         .n_blocks = 1,
                         .logits = logits};
    wisp_batch b = {.seqs = &bs, .n_seqs = 1};
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "hidden") != NULL);
    free(logits);
    engine_free(e);
    tiny_free(&m);
}
