/*
 * test_safetensors.c - Hugging Face checkpoints: the synthesizer writes
 * the same weights as GGUF and as safetensors (single and sharded, F32,
 * F16, BF16), both must load with equal configs and equal tensors (Q/K
 * rows of llama compared through llama.cpp's permutation); and damaged
 * headers, configs and indexes are refused with a message naming them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "model/model.h"

static const char *tools_dir(void)
{
    const char *t = getenv("WISP_TOOLS");
    return t && *t ? t : "build/tools";
}

static char work[64];

static void make_work(void)
{
    snprintf(work, sizeof work, "/tmp/wisp-st-XXXXXX");
    REQUIRE(mkdtemp(work));
}

static void rm_work(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    CHECK(system(cmd) == 0);
}

static void synth(const char *args)
{
    char synth_bin[512], vocab[1024], cmd[4096];
    snprintf(synth_bin, sizeof synth_bin, "%s/synth", tools_dir());
    if (access(synth_bin, X_OK) != 0)
        SKIP("%s is not built", synth_bin);
    wisp_test_shared_path(vocab, sizeof vocab, "vocab/ggml-vocab-llama-spm.gguf");
    snprintf(cmd, sizeof cmd, "'%s' --vocab '%s' --out '%s/m.gguf' --hf-dir '%s/hf' %s", synth_bin,
             vocab, work, work, args);
    REQUIRE(system(cmd) == 0);
}

static wisp_model *open_ok(const char *path)
{
    wisp_model *m = NULL;
    wisp_err err = {0};
    int rc = wisp_model_open(path, NULL, &m, &err);
    if (rc)
        fprintf(stderr, "  %s: %s\n", path, err.msg);
    REQUIRE(rc == 0);
    return m;
}

/* Row r of GGUF llama's q/k holds Hugging Face row perm(r) (see synth.c). */
static int64_t hf_row(int64_t r, int64_t head_dim)
{
    int64_t h = r / head_dim, w = r % head_dim;
    return h * head_dim + (w % 2) * (head_dim / 2) + w / 2;
}

static void round_trip(const char *args, bool llama, const char *hf_path_suffix)
{
    make_work();
    synth(args);
    char gp[256], hp[256];
    snprintf(gp, sizeof gp, "%s/m.gguf", work);
    snprintf(hp, sizeof hp, "%s/hf%s", work, hf_path_suffix);
    wisp_model *g = open_ok(gp), *h = open_ok(hp);
    const wisp_model_config *a = wisp_model_get_config(g), *b = wisp_model_get_config(h);
    CHECK(wisp_model_get_format(h) == WISP_FORMAT_SAFETENSORS);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/hf", work);
    CHECK_EQ_STR(wisp_model_get_hf_dir(h), dir);
    CHECK_EQ_STR(a->arch_name, b->arch_name);
    CHECK_EQ_INT(a->arch, b->arch);
    CHECK_EQ_STR(a->name, b->name);
#define SAME(f) CHECK_EQ_INT(a->f, b->f)
    SAME(n_layers);
    SAME(n_embd);
    SAME(n_head);
    SAME(n_head_kv);
    SAME(head_dim);
    SAME(n_ff);
    SAME(n_ctx_train);
    SAME(vocab_size);
    SAME(rope_dim);
    SAME(rope_scaling);
    SAME(rope_orig_ctx);
    SAME(tied_output);
    SAME(attn_bias);
    SAME(qk_norm);
    CHECK_NEAR(a->norm_eps, b->norm_eps, 1e-12);
    CHECK_NEAR(a->rope_freq_base, b->rope_freq_base, 1e-3);
    CHECK_NEAR(a->rope_scale_factor, b->rope_scale_factor, 0);
    /* GGUF llama is NORMAL order, every Hugging Face checkpoint NEOX. */
    CHECK_EQ_INT(a->rope_layout, llama ? WISP_ROPE_NORMAL : WISP_ROPE_NEOX);
    CHECK_EQ_INT(b->rope_layout, WISP_ROPE_NEOX);
    CHECK_EQ_INT(wisp_model_n_params(g), wisp_model_n_params(h));
    CHECK_EQ_INT(wisp_model_n_tensors(g), wisp_model_n_tensors(h));
    for (int64_t i = 0; i < wisp_model_n_tensors(g); i++) {
        const wisp_tensor *tg = wisp_model_tensor_at(g, i);
        const wisp_tensor *th = wisp_model_find_tensor(h, tg->name);
        REQUIRE(th);
        /* Matrices keep their stored type; norms are F32 in GGUF and in the
         * checkpoint's dtype in safetensors, so compare decoded values. */
        if (tg->n_dims == 2)
            CHECK_EQ_INT(tg->type, th->type);
        CHECK_EQ_INT(tg->ne[0], th->ne[0]);
        CHECK_EQ_INT(tg->ne[1], th->ne[1]);
        const wisp_type_traits *ta = wisp_type_get(tg->type), *tb = wisp_type_get(th->type);
        size_t ra = tg->nbytes / (size_t)tg->ne[1], rb = th->nbytes / (size_t)th->ne[1];
        float *xa = malloc(sizeof(float) * (size_t)tg->ne[0]);
        float *xb = malloc(sizeof(float) * (size_t)tg->ne[0]);
        bool perm =
            llama && (strstr(tg->name, "attn_q.weight") || strstr(tg->name, "attn_k.weight"));
        int64_t bad = 0;
        for (int64_t r = 0; r < tg->ne[1]; r++) {
            int64_t src = perm ? hf_row(r, a->head_dim) : r;
            ta->to_float((const char *)tg->data + r * ra, xa, tg->ne[0]);
            tb->to_float((const char *)th->data + src * rb, xb, tg->ne[0]);
            if (memcmp(xa, xb, sizeof(float) * (size_t)tg->ne[0]))
                bad++;
        }
        free(xa);
        free(xb);
        if (bad)
            fprintf(stderr, "  %s: %lld rows differ\n", tg->name, (long long)bad);
        CHECK_EQ_INT(bad, 0);
        /* and the permutation is not the identity for q/k */
        if (perm)
            CHECK(memcmp(tg->data, th->data, tg->nbytes) != 0);
    }
    wisp_model_close(g);
    wisp_model_close(h);
    rm_work();
}

TEST(llama_f32_round_trip)
{
    round_trip("--arch llama --layers 2 --embd 64 --heads 4 --kv-heads 2 --ff 128 --type f32 "
               "--hf-dtype f32",
               true, "");
}

TEST(qwen2_f16_sharded_round_trip)
{
    round_trip("--arch qwen2 --layers 3 --embd 64 --heads 4 --kv-heads 2 --ff 96 --type f16 "
               "--hf-dtype f16 --shards 3 --rope-base 1000000 --tied",
               false, "");
}

TEST(qwen3_bf16_round_trip_via_index_path)
{
    round_trip("--arch qwen3 --layers 2 --embd 64 --heads 2 --kv-heads 1 --head-dim 48 --ff 96 "
               "--type bf16 --hf-dtype bf16 --shards 2",
               false, "/model.safetensors.index.json");
}

TEST(llama_single_file_path)
{
    round_trip("--arch llama --layers 1 --embd 32 --heads 2 --kv-heads 2 --ff 64 --type f16 "
               "--hf-dtype f16",
               true, "/model.safetensors");
}

TEST(tokenizer_files_written)
{
    make_work();
    synth("--arch llama --layers 1 --embd 32 --heads 2 --kv-heads 2 --ff 64");
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                           "model.safetensors"};
    for (int i = 0; i < 4; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/hf/%s", work, files[i]);
        CHECK(access(p, R_OK) == 0);
    }
    rm_work();
}

/* ------------------------------------------------------------ damage */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static const char *good_config =
    "{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":64,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":2,"
    "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-5,\"vocab_size\":16}";

/* A checkpoint dir with config cfg and one safetensors file whose header
 * is hdr (padding to 8) followed by data_len zero bytes. */
static void st_dir(const char *cfg, const char *hdr, size_t data_len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", work);
    write_file(p, cfg, strlen(cfg));
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    uint8_t *buf = calloc(1, 8 + padded + data_len);
    uint64_t n = padded;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    snprintf(p, sizeof p, "%s/model.safetensors", work);
    write_file(p, buf, 8 + padded + data_len);
    free(buf);
}

static void expect_fail(const char *needle)
{
    wisp_model *m = NULL;
    wisp_err err = {0};
    int rc = wisp_model_open(work, NULL, &m, &err);
    CHECK(rc < 0);
    if (rc == 0) {
        wisp_model_close(m);
        return;
    }
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "  error '%s' lacks '%s'\n", err.msg, needle);
        CHECK(0);
    }
}

#define E(name, dt, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

TEST(damaged_headers_are_refused)
{
    make_work();
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[32]", 0, 128) "}", 64);
    expect_fail("data ends at byte");
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[32]", 0, 100) "}", 128);
    expect_fail("needs 128");
    st_dir(good_config, "{" E("model.norm.weight", "F99", "[32]", 0, 128) "}", 128);
    expect_fail("unknown dtype 'F99'");
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[-1]", 0, 128) "}", 128);
    expect_fail("bad shape");
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[32]", 64, 32) "}", 128);
    expect_fail("bad data_offsets");
    st_dir(good_config,
           "{" E("model.norm.weight", "F32", "[32]", 0,
                 128) "," E("model.layers.0.input_layernorm.weight", "F32", "[32]", 64, 192) "}",
           192);
    expect_fail("overlaps");
    st_dir(good_config, "{\"model.norm.weight\":{\"dtype\":\"F32\"}}", 8);
    expect_fail("needs dtype, shape and data_offsets");
    st_dir(good_config, "{not json", 8);
    expect_fail("header");
    st_dir(good_config, "[1,2]", 8);
    expect_fail("not a JSON object");
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[1,2,3,4,5]", 0, 480) "}", 480);
    expect_fail("dimensions");
    st_dir(good_config, "{" E("model.embed_tokens.weight", "I64", "[16,32]", 0, 4096) "}", 4096);
    expect_fail("dtype wisp does not support");
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[32]", 0, 128) "}", 128);
    expect_fail("need at least");
    /* the header length itself */
    char p[256];
    snprintf(p, sizeof p, "%s/model.safetensors", work);
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    write_file(p, huge, sizeof huge);
    expect_fail("header length");
    rm_work();
}

TEST(damaged_configs_are_refused)
{
    make_work();
    const char *hdr = "{" E("model.norm.weight", "F32", "[32]", 0, 128) "}";
    st_dir("{\"model_type\":\"gpt2\"}", hdr, 128);
    expect_fail("supported: llama, qwen2, qwen3");
    st_dir("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"hidden_size\":\"big\"}", hdr, 128);
    expect_fail("hidden_size must be an integer");
    st_dir("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"hidden_size\":32,"
           "\"num_attention_heads\":2}",
           hdr, 128);
    expect_fail("missing intermediate_size");
    st_dir("{\"model_type\":\"llama\"", hdr, 128);
    expect_fail("config.json");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%.*s,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
             (int)strlen(good_config) - 1, good_config);
    st_dir(cfg, hdr, 128);
    expect_fail("rope_scaling type 'llama3'");
    snprintf(cfg, sizeof cfg, "%.*s,\"num_key_value_heads\":3}", (int)strlen(good_config) - 1,
             good_config);
    st_dir(cfg, hdr, 128);
    expect_fail("config.json");
    rm_work();
}

TEST(bad_index_is_refused)
{
    make_work();
    st_dir(good_config, "{" E("model.norm.weight", "F32", "[32]", 0, 128) "}", 128);
    char p[256];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", work);
    const char *idx = "{\"weight_map\":{\"model.norm.weight\":\"../etc/passwd\"}}";
    write_file(p, idx, strlen(idx));
    expect_fail("bad shard file name");
    idx = "{\"weight_map\":{\"model.norm.weight\":\"missing.safetensors\"}}";
    write_file(p, idx, strlen(idx));
    expect_fail("missing.safetensors");
    idx = "{\"weight_map\":{}}";
    write_file(p, idx, strlen(idx));
    expect_fail("weight_map is empty");
    rm_work();
    make_work();
    expect_fail("no model.safetensors");
    rm_work();
}
