/*
 * test_model.c - model descriptions: every shared model file loads with
 * the hyper-parameters its README states, vocabulary files load as
 * vocab-only, and small models written here with one thing wrong each are
 * refused with a message that names the problem.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model/gguf_write.h"
#include "model/model.h"

/* ------------------------------------------------------------ shared files */

typedef struct expect {
    const char *file, *arch;
    int n_layers, n_embd, n_head, n_head_kv, head_dim, n_ff, n_ctx, vocab, rope_dim;
    bool tied, bias;
    wisp_rope_layout rope;
    float base, eps;
    int64_t n_params;
} expect;

/* Parameter counts by hand: syn llama = 256*32000 (embeddings) + 2 layers x
 * (q 256*256 + k,v 2*256*128 + o 256*256 + gate,up,down 3*256*768 + two norms
 * 2*256) + output norm 256 = 8192000 + 2*786944 + 256. qwen2 adds q/k/v
 * biases 256+128+128 per layer with 4 heads x 64 (q 256*256, k,v 256*128). */
static const expect shared[] = {
    {"golden/syn-llama-spm-f16.gguf", "llama", 2, 256, 8, 4, 32, 768, 2048, 32000, 32, true, false,
     WISP_ROPE_NORMAL, 10000, 1e-6f, 8192000 + 2 * 786944 + 256},
    {"golden/syn-llama-spm-q8_0.gguf", "llama", 2, 256, 8, 4, 32, 768, 2048, 32000, 32, true, false,
     WISP_ROPE_NORMAL, 10000, 1e-6f, 8192000 + 2 * 786944 + 256},
    {"golden/syn-llama-spm-q4_k_m.gguf", "llama", 2, 256, 8, 4, 32, 768, 2048, 32000, 32, true,
     false, WISP_ROPE_NORMAL, 10000, 1e-6f, 8192000 + 2 * 786944 + 256},
    {"golden/syn-qwen2-dsc-f16.gguf", "qwen2", 2, 256, 4, 2, 64, 768, 2048, 32256, 64, true, true,
     WISP_ROPE_NEOX, 1e6f, 1e-6f, 256 * 32256 + 2 * (786944 + 512) + 256},
    {"golden/syn-qwen2-dsc-q8_0.gguf", "qwen2", 2, 256, 4, 2, 64, 768, 2048, 32256, 64, true, true,
     WISP_ROPE_NEOX, 1e6f, 1e-6f, 256 * 32256 + 2 * (786944 + 512) + 256},
    {"golden/syn-qwen2-dsc-q4_0.gguf", "qwen2", 2, 256, 4, 2, 64, 768, 2048, 32256, 64, true, true,
     WISP_ROPE_NEOX, 1e6f, 1e-6f, 256 * 32256 + 2 * (786944 + 512) + 256},
    /* stories260K: 512x64 embeddings and output, 5 layers of q,o 64*64, k,v
     * 64*32, gate,up,down 3*64*172 and two norms. */
    {"models/stories260K.gguf", "llama", 5, 64, 8, 4, 8, 172, 2048, 512, 8, false, false,
     WISP_ROPE_NORMAL, 10000, 1e-5f,
     2 * 512 * 64 + 5 * (2 * 4096 + 2 * 2048 + 3 * 11008 + 128) + 64},
    {"models/llama-2-tiny-random.gguf", "llama", 1, 8, 2, 2, 4, 32, 4096, 32000, 4, false, false,
     WISP_ROPE_NORMAL, 10000, 1e-5f, 2 * 32000 * 8 + 4 * 64 + 3 * 256 + 16 + 8},
};

static void check_shared(const expect *e)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, e->file);
    wisp_model *m = NULL;
    wisp_err err = {0};
    int rc = wisp_model_open(path, NULL, &m, &err);
    if (rc)
        fprintf(stderr, "  %s: %s\n", e->file, err.msg);
    REQUIRE(rc == 0);
    const wisp_model_config *c = wisp_model_get_config(m);
    CHECK_EQ_STR(c->arch_name, e->arch);
    CHECK_EQ_INT(c->n_layers, e->n_layers);
    CHECK_EQ_INT(c->n_embd, e->n_embd);
    CHECK_EQ_INT(c->n_head, e->n_head);
    CHECK_EQ_INT(c->n_head_kv, e->n_head_kv);
    CHECK_EQ_INT(c->head_dim, e->head_dim);
    CHECK_EQ_INT(c->n_ff, e->n_ff);
    CHECK_EQ_INT(c->n_ctx_train, e->n_ctx);
    CHECK_EQ_INT(c->vocab_size, e->vocab);
    CHECK_EQ_INT(c->rope_dim, e->rope_dim);
    CHECK_EQ_INT(c->tied_output, e->tied);
    CHECK_EQ_INT(c->attn_bias, e->bias);
    CHECK_EQ_INT(c->qk_norm, 0);
    CHECK_EQ_INT(c->rope_layout, e->rope);
    CHECK_EQ_INT(c->rope_scaling, WISP_ROPE_SCALING_NONE);
    CHECK_NEAR(c->rope_freq_base, e->base, 1e-3);
    CHECK_NEAR(c->norm_eps, e->eps, 1e-12);
    CHECK_EQ_INT(wisp_model_n_params(m), e->n_params);
    CHECK(!wisp_model_is_vocab_only(m));
    CHECK(wisp_model_get_format(m) == WISP_FORMAT_GGUF);
    CHECK(wisp_model_get_gguf(m) != NULL);
    CHECK(wisp_model_get_hf_dir(m) == NULL);
    CHECK(wisp_model_identity(m) != 0);
    const wisp_model_weights *w = wisp_model_get_weights(m);
    REQUIRE(w);
    CHECK(w->tok_embd && w->out_norm && w->output);
    CHECK((w->output == w->tok_embd) == e->tied);
    for (int l = 0; l < c->n_layers; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        CHECK(L->attn_norm && L->wq && L->wk && L->wv && L->wo && L->ffn_norm && L->w_gate &&
              L->w_up && L->w_down);
        CHECK((L->bq != NULL) == e->bias);
        CHECK_EQ_INT(L->wk->ne[1], c->n_head_kv * c->head_dim);
        CHECK_EQ_INT(L->w_down->ne[0], c->n_ff);
    }
    int64_t counts[WISP_TYPE_COUNT];
    wisp_model_type_counts(m, counts);
    int64_t total = 0;
    for (int i = 0; i < WISP_TYPE_COUNT; i++)
        total += counts[i];
    CHECK_EQ_INT(total, wisp_model_n_tensors(m));
    CHECK(counts[WISP_TYPE_F32] >= 1 + 2 * c->n_layers); /* norms */
    wisp_model_close(m);
}

TEST(shared_models_describe_themselves)
{
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        check_shared(&shared[i]);
}

TEST(golden_type_counts)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "golden/syn-llama-spm-q4_k_m.gguf");
    wisp_model *m;
    wisp_err err = {0};
    REQUIRE(wisp_model_open(path, NULL, &m, &err) == 0);
    int64_t counts[WISP_TYPE_COUNT];
    wisp_model_type_counts(m, counts);
    /* 5 norms F32; Q6_K for token_embd and llama.cpp's attn_v/ffn_down picks. */
    CHECK_EQ_INT(counts[WISP_TYPE_F32], 5);
    CHECK_EQ_INT(counts[WISP_TYPE_Q6_K], 3);
    CHECK_EQ_INT(counts[WISP_TYPE_Q4_K], 12);
    CHECK_EQ_INT(wisp_model_file_bytes(m), 8394048);
    wisp_model_close(m);
}

TEST(vocab_files_open_vocab_only)
{
    const char *files[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                           "ggml-vocab-falcon.gguf",    "ggml-vocab-deepseek-coder.gguf",
                           "ggml-vocab-phi-3.gguf",     "ggml-vocab-starcoder.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[256], path[1024];
        snprintf(rel, sizeof rel, "vocab/%s", files[i]);
        wisp_test_shared_path(path, sizeof path, rel);
        wisp_model *m = NULL;
        wisp_err err = {0};
        /* Without vocab_only the file is refused with a reason. */
        CHECK(wisp_model_open(path, NULL, &m, &err) < 0);
        CHECK(strstr(err.msg, "vocabulary-only") != NULL);
        wisp_model_open_opts o = {.vocab_only = true};
        int rc = wisp_model_open(path, &o, &m, &err);
        if (rc)
            fprintf(stderr, "  %s: %s\n", files[i], err.msg);
        REQUIRE(rc == 0);
        CHECK(wisp_model_is_vocab_only(m));
        CHECK(wisp_model_get_weights(m) == NULL);
        CHECK(wisp_model_get_config(m)->vocab_size > 0);
        CHECK(wisp_model_get_gguf(m) != NULL);
        wisp_model_close(m);
    }
}

/* ------------------------------------------------------------ built models */

typedef struct spec {
    const char *arch;
    int n_layers; /* written into block_count */
    bool bias, qk_norm, tied;
    const char *skip;   /* leave this tensor out */
    const char *retype; /* give this tensor type `type` */
    int type;
    const char *reshape; /* double this tensor's ne[0] */
    const char *extra;   /* add a tensor of this name with shape (32) */
} spec;

/* A tiny model: n_embd 32, 4 heads of 8, 2 kv heads, ff 64, vocab 64. */
static void write_model(const char *path, const spec *s)
{
    wisp_gguf_writer *w = wisp_gguf_writer_new();
    REQUIRE(w);
    char k[128];
    wisp_gguf_writer_str(w, "general.architecture", s->arch);
    wisp_gguf_writer_str(w, "general.name", "tiny");
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", s->arch, suffix), k)
    wisp_gguf_writer_u32(w, KEY("block_count"), (uint32_t)s->n_layers);
    wisp_gguf_writer_u32(w, KEY("embedding_length"), 32);
    wisp_gguf_writer_u32(w, KEY("feed_forward_length"), 64);
    wisp_gguf_writer_u32(w, KEY("context_length"), 512);
    wisp_gguf_writer_u32(w, KEY("attention.head_count"), 4);
    wisp_gguf_writer_u32(w, KEY("attention.head_count_kv"), 2);
    wisp_gguf_writer_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    wisp_gguf_writer_f32(w, KEY("rope.freq_base"), 500000.0f);
    wisp_gguf_writer_str(w, KEY("rope.scaling.type"), "yarn");
    wisp_gguf_writer_f32(w, KEY("rope.scaling.factor"), 4.0f);
    wisp_gguf_writer_u32(w, KEY("rope.scaling.original_context_length"), 128);
    struct {
        char name[64];
        int64_t ne[2];
        int nd;
    } t[64];
    int n = 0;
#define T(nm, a, b, d) \
    (snprintf(t[n].name, 64, "%s", nm), t[n].ne[0] = a, t[n].ne[1] = b, t[n].nd = d, n++)
    T("token_embd.weight", 32, 64, 2);
    T("output_norm.weight", 32, 1, 1);
    if (!s->tied)
        T("output.weight", 32, 64, 2);
    for (int l = 0; l < 2; l++) {
        char b[64];
#define L(suffix, a, bb, d) (snprintf(b, sizeof b, "blk.%d.%s", l, suffix), T(b, a, bb, d))
        L("attn_norm.weight", 32, 1, 1);
        L("attn_q.weight", 32, 32, 2);
        L("attn_k.weight", 32, 16, 2);
        L("attn_v.weight", 32, 16, 2);
        L("attn_output.weight", 32, 32, 2);
        if (s->bias) {
            L("attn_q.bias", 32, 1, 1);
            L("attn_k.bias", 16, 1, 1);
            L("attn_v.bias", 16, 1, 1);
        }
        if (s->qk_norm) {
            L("attn_q_norm.weight", 8, 1, 1);
            L("attn_k_norm.weight", 8, 1, 1);
        }
        L("ffn_norm.weight", 32, 1, 1);
        L("ffn_gate.weight", 32, 64, 2);
        L("ffn_up.weight", 32, 64, 2);
        L("ffn_down.weight", 64, 32, 2);
    }
    if (s->extra)
        T(s->extra, 32, 1, 1);
    int64_t idx[64];
    int nt = 0;
    for (int i = 0; i < n; i++) {
        if (s->skip && strcmp(t[i].name, s->skip) == 0)
            continue;
        int type = WISP_TYPE_F32;
        if (s->retype && strcmp(t[i].name, s->retype) == 0)
            type = s->type;
        if (s->reshape && strcmp(t[i].name, s->reshape) == 0)
            t[i].ne[0] *= 2;
        idx[nt++] = wisp_gguf_writer_tensor(w, t[i].name, type, t[i].nd, t[i].ne);
        REQUIRE(idx[nt - 1] >= 0);
    }
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    wisp_err err = {0};
    REQUIRE(wisp_gguf_writer_write_header(w, f, &err) == 0);
    for (int i = 0; i < nt; i++) {
        size_t nb = wisp_gguf_writer_tensor_bytes(w, idx[i]);
        void *d = calloc(1, nb);
        REQUIRE(wisp_gguf_writer_write_data(w, f, idx[i], d, &err) == 0);
        free(d);
    }
    fclose(f);
    wisp_gguf_writer_free(w);
}

static char tmp_path[64];

static void make_tmp(void)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/wisp-test-model-XXXXXX");
    int fd = mkstemp(tmp_path);
    REQUIRE(fd >= 0);
    close(fd);
}

/* Opens spec s; expects success (needle NULL) or an error containing needle. */
static wisp_model *try_spec(const spec *s, const char *needle)
{
    make_tmp();
    write_model(tmp_path, s);
    wisp_model *m = NULL;
    wisp_err err = {0};
    int rc = wisp_model_open(tmp_path, NULL, &m, &err);
    unlink(tmp_path);
    if (!needle) {
        if (rc)
            fprintf(stderr, "  unexpected error: %s\n", err.msg);
        REQUIRE(rc == 0);
        return m;
    }
    CHECK(rc < 0);
    if (rc == 0) {
        wisp_model_close(m);
        return NULL;
    }
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "  error '%s' lacks '%s'\n", err.msg, needle);
        CHECK(0);
    }
    return NULL;
}

TEST(built_llama_loads_with_yarn)
{
    spec s = {.arch = "llama", .n_layers = 2};
    wisp_model *m = try_spec(&s, NULL);
    const wisp_model_config *c = wisp_model_get_config(m);
    CHECK_EQ_INT(c->head_dim, 8);
    CHECK_EQ_INT(c->vocab_size, 64);
    CHECK_EQ_INT(c->rope_scaling, WISP_ROPE_SCALING_YARN);
    CHECK_NEAR(c->rope_scale_factor, 4.0, 0);
    CHECK_EQ_INT(c->rope_orig_ctx, 128);
    CHECK_NEAR(c->yarn_ext_factor, 1.0, 0);
    CHECK_NEAR(c->yarn_beta_fast, 32.0, 0);
    CHECK_EQ_STR(c->name, "tiny");
    CHECK(!c->tied_output);
    wisp_model_close(m);
}

TEST(built_qwen3_has_qk_norm)
{
    spec s = {.arch = "qwen3", .n_layers = 2, .qk_norm = true, .tied = true};
    wisp_model *m = try_spec(&s, NULL);
    const wisp_model_config *c = wisp_model_get_config(m);
    CHECK(c->qk_norm);
    CHECK(c->tied_output);
    CHECK_EQ_INT(c->rope_layout, WISP_ROPE_NEOX);
    CHECK(wisp_model_get_weights(m)->layers[1].k_norm != NULL);
    wisp_model_close(m);
}

TEST(refusals_name_the_problem)
{
    try_spec(&(spec){.arch = "gpt2", .n_layers = 2}, "supported: llama, qwen2, qwen3");
    try_spec(&(spec){.arch = "llama",
                     .n_layers = 2,
                     .retype = "blk.1.attn_q.weight",
                     .type = WISP_TYPE_IQ4_NL},
             "tensor blk.1.attn_q.weight has type IQ4_NL, which wisp does not support yet");
    try_spec(&(spec){.arch = "llama", .n_layers = 2, .skip = "blk.1.ffn_up.weight"},
             "missing tensor blk.1.ffn_up.weight");
    try_spec(&(spec){.arch = "llama", .n_layers = 2, .reshape = "blk.0.attn_k.weight"},
             "tensor blk.0.attn_k.weight has shape [64, 16, 1, 1], expected [32, 16]");
    try_spec(&(spec){.arch = "llama", .n_layers = 1}, "belongs to layer 1");
    try_spec(&(spec){.arch = "llama", .n_layers = 3}, "layers need at least");
    try_spec(&(spec){.arch = "qwen2", .n_layers = 2}, "missing tensor blk.0.attn_q.bias");
    try_spec(&(spec){.arch = "qwen3", .n_layers = 2}, "missing tensor blk.0.attn_q_norm.weight");
    try_spec(&(spec){.arch = "llama", .n_layers = 2, .qk_norm = true},
             "is not part of architecture llama");
    try_spec(&(spec){.arch = "llama", .n_layers = 2, .skip = "output_norm.weight"},
             "missing tensor output_norm.weight");
    try_spec(&(spec){.arch = "llama", .n_layers = 2, .bias = true, .skip = "blk.1.attn_v.bias"},
             "biases");
    try_spec(&(spec){.arch = "llama",
                     .n_layers = 2,
                     .retype = "output.weight",
                     .type = WISP_TYPE_Q8_0,
                     .reshape = "output.weight"},
             "tensor output.weight has shape [64, 64, 1, 1], expected [32, 64]");
}

TEST(unused_tensors_are_ignored)
{
    spec s = {.arch = "llama", .n_layers = 2, .extra = "blk.0.attn_rot_embd"};
    wisp_model *m = try_spec(&s, NULL);
    CHECK(wisp_model_find_tensor(m, "blk.0.attn_rot_embd") != NULL);
    wisp_model_close(m);
}

static int progress_calls;
static double progress_last;
static void on_progress(void *ud, double f, const char *msg)
{
    (void)ud;
    (void)msg;
    CHECK(f >= progress_last && f <= 1.0);
    progress_last = f;
    progress_calls++;
}

TEST(progress_fires_and_ends_at_one)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "golden/syn-qwen2-dsc-q8_0.gguf");
    wisp_model_open_opts o = {.progress = on_progress};
    wisp_model *m;
    wisp_err err = {0};
    REQUIRE(wisp_model_open(path, &o, &m, &err) == 0);
    CHECK(progress_calls >= 3);
    CHECK_NEAR(progress_last, 1.0, 0);
    wisp_model_close(m);
}

TEST(not_a_model_file)
{
    make_tmp();
    FILE *f = fopen(tmp_path, "wb");
    fputs("hello world, not a model", f);
    fclose(f);
    wisp_model *m;
    wisp_err err = {0};
    CHECK(wisp_model_open(tmp_path, NULL, &m, &err) == WISP_E_FORMAT);
    CHECK(strstr(err.msg, "not a model file") != NULL);
    unlink(tmp_path);
    CHECK(wisp_model_open("/nonexistent/model.gguf", NULL, &m, &err) == WISP_E_NOT_FOUND);
}

TEST(identity_changes_with_content)
{
    spec a = {.arch = "llama", .n_layers = 2}, b = {.arch = "llama", .n_layers = 2, .tied = true};
    wisp_model *ma = try_spec(&a, NULL), *mb = try_spec(&b, NULL);
    CHECK(wisp_model_identity(ma) != wisp_model_identity(mb));
    wisp_model_close(ma);
    wisp_model_close(mb);
}
