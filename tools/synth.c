/*
 * synth.c - writes random-weight models of any supported architecture,
 * shape and tensor types, as GGUF and/or as a Hugging Face checkpoint.
 *
 *   build/tools/synth --arch qwen2 --layers 28 --embd 1536 --heads 12
 *       --kv-heads 2 --ff 8960 --vocab vocab.gguf --recipe q4_k_m
 *       --out model.gguf --hf-dir model-hf --hf-dtype bf16 --seed 7
 *
 * Weights are normal(0, 0.02)-like (a sum of four uniforms, cheap and
 * deterministic), norms are 1, biases small; every value is a function of
 * (seed, tensor, row) only, so a GGUF and a Hugging Face checkpoint written
 * with the same seed hold the same weights. For llama the GGUF file gets
 * llama.cpp's converter permutation of the Q/K rows (NORMAL RoPE order),
 * the checkpoint the Hugging Face order (rotate-half), exactly as real
 * conversions differ. The tokenizer metadata is copied from --vocab, whose
 * size then sets the vocabulary; the checkpoint gets its tokenizer.json
 * from hf_tokenizer_export.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fp16.h"
#include "model/gguf_write.h"
#include "model/hf_tokenizer_export.h"
#include "model/model.h"
#include "model/st_write.h"
#include "model/types.h"

typedef struct opts {
    const char *arch, *vocab, *out, *hf_dir, *name, *recipe;
    const char *chat_template; /* file whose text becomes tokenizer.chat_template */
    int layers, embd, heads, kv_heads, head_dim, ff, vocab_size, ctx, shards;
    float rope_base, eps;
    int type, embd_type, hf_dtype;
    bool tied;
    uint64_t seed;
} opts;

typedef enum {
    K_MATRIX,
    K_NORM,
    K_BIAS
} kind;

typedef struct tdesc {
    char gguf[64], hf[96];
    kind k;
    int64_t ne[2]; /* ne[0] row length, ne[1] rows */
    int n_dims;
    int type;       /* GGUF type */
    int perm_heads; /* > 0: llama Q/K rows permuted over this many heads */
} tdesc;

/* ------------------------------------------------------------ weights */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
    return h;
}

/* Row r (Hugging Face order) of tensor t. */
static void gen_row(const opts *o, const tdesc *t, int64_t r, float *out)
{
    if (t->k == K_NORM) {
        for (int64_t i = 0; i < t->ne[0]; i++)
            out[i] = 1.0f;
        return;
    }
    uint64_t s = mix(o->seed ^ name_hash(t->hf) ^ mix((uint64_t)r));
    /* sum of 4 uniforms on [0,1): mean 2, variance 1/3 */
    const float scale = 0.02f * 1.7320508f / 65536.0f;
    for (int64_t i = 0; i < t->ne[0]; i++) {
        s = mix(s);
        float sum = (float)(s & 0xffff) + (float)((s >> 16) & 0xffff) +
                    (float)((s >> 32) & 0xffff) + (float)(s >> 48) - 2.0f * 65536.0f;
        out[i] = sum * scale;
    }
    /* Every value is representable in the checkpoint's dtype, so an F32
     * tensor in the GGUF file equals its F16/BF16 twin exactly. */
    if (o->hf_dtype == WISP_TYPE_F16)
        for (int64_t i = 0; i < t->ne[0]; i++)
            out[i] = wisp_half_to_float(wisp_float_to_half(out[i]));
    else if (o->hf_dtype == WISP_TYPE_BF16)
        for (int64_t i = 0; i < t->ne[0]; i++)
            out[i] = wisp_bf16_to_float(wisp_float_to_bf16(out[i]));
}

/* llama.cpp's permute for GGUF llama: within each head of d rows, GGUF row
 * 2j + t holds Hugging Face row t * d/2 + j. */
static int64_t hf_row_of(const tdesc *t, int64_t r)
{
    if (t->perm_heads <= 0)
        return r;
    int64_t d = t->ne[1] / t->perm_heads, h = r / d, w = r % d;
    return h * d + (w % 2) * (d / 2) + w / 2;
}

/* ------------------------------------------------------------ layout */

static int pick_type(int want, int64_t ne0)
{
    const wisp_type_traits *tr = wisp_type_get(want);
    if (ne0 % tr->block_size == 0)
        return want;
    if (ne0 % 32 == 0)
        return WISP_TYPE_Q8_0;
    return WISP_TYPE_F16;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and
 * every third in between get the recipe's larger type. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int recipe_type(const opts *o, const char *role, int layer)
{
    static const struct {
        const char *name;
        int base, more;
    } recipes[] = {
        {"q4_k_m", WISP_TYPE_Q4_K, WISP_TYPE_Q6_K},
        {"q5_k_m", WISP_TYPE_Q5_K, WISP_TYPE_Q6_K},
        {"q3_k_m", WISP_TYPE_Q3_K, WISP_TYPE_Q5_K},
        {"q2_k", WISP_TYPE_Q2_K, WISP_TYPE_Q4_K},
    };
    if (!o->recipe)
        return o->type;
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
        if (strcmp(o->recipe, recipes[i].name) != 0)
            continue;
        if (strcmp(role, "output") == 0)
            return WISP_TYPE_Q6_K;
        if ((strcmp(role, "attn_v") == 0 || strcmp(role, "ffn_down") == 0) &&
            more_bits(layer, o->layers))
            return recipes[i].more;
        return recipes[i].base;
    }
    return -1;
}

static int build_layout(const opts *o, tdesc *t, int max)
{
    int n = 0, hd = o->head_dim, q = o->heads * hd, kv = o->kv_heads * hd;
    bool llama = strcmp(o->arch, "llama") == 0, qwen2 = strcmp(o->arch, "qwen2") == 0;
    bool qwen3 = strcmp(o->arch, "qwen3") == 0;
#define ADD(G, H, K, A, B, ND, TY, PH)                                            \
    do {                                                                          \
        if (n >= max)                                                             \
            return -1;                                                            \
        tdesc *d = &t[n++];                                                       \
        snprintf(d->gguf, sizeof d->gguf, "%s", G);                               \
        snprintf(d->hf, sizeof d->hf, "%s", H);                                   \
        d->k = K, d->ne[0] = A, d->ne[1] = B, d->n_dims = ND, d->perm_heads = PH; \
        d->type = K == K_MATRIX ? pick_type(TY, A) : WISP_TYPE_F32;               \
    } while (0)
    int embd_t = o->embd_type >= 0      ? o->embd_type
                 : o->tied && o->recipe ? recipe_type(o, "output", 0)
                                        : recipe_type(o, "token_embd", 0);
    ADD("token_embd.weight", "model.embed_tokens.weight", K_MATRIX, o->embd, o->vocab_size, 2,
        embd_t, 0);
    for (int l = 0; l < o->layers; l++) {
        char g[64], h[96];
#define LAYER(GS, HS, K, A, B, ND, ROLE, PH)                 \
    do {                                                     \
        snprintf(g, sizeof g, "blk.%d.%s", l, GS);           \
        snprintf(h, sizeof h, "model.layers.%d.%s", l, HS);  \
        ADD(g, h, K, A, B, ND, recipe_type(o, ROLE, l), PH); \
    } while (0)
        LAYER("attn_norm.weight", "input_layernorm.weight", K_NORM, o->embd, 1, 1, "", 0);
        LAYER("attn_q.weight", "self_attn.q_proj.weight", K_MATRIX, o->embd, q, 2, "attn_q",
              llama ? o->heads : 0);
        LAYER("attn_k.weight", "self_attn.k_proj.weight", K_MATRIX, o->embd, kv, 2, "attn_k",
              llama ? o->kv_heads : 0);
        LAYER("attn_v.weight", "self_attn.v_proj.weight", K_MATRIX, o->embd, kv, 2, "attn_v", 0);
        LAYER("attn_output.weight", "self_attn.o_proj.weight", K_MATRIX, q, o->embd, 2,
              "attn_output", 0);
        if (qwen2) {
            LAYER("attn_q.bias", "self_attn.q_proj.bias", K_BIAS, q, 1, 1, "", 0);
            LAYER("attn_k.bias", "self_attn.k_proj.bias", K_BIAS, kv, 1, 1, "", 0);
            LAYER("attn_v.bias", "self_attn.v_proj.bias", K_BIAS, kv, 1, 1, "", 0);
        }
        if (qwen3) {
            LAYER("attn_q_norm.weight", "self_attn.q_norm.weight", K_NORM, hd, 1, 1, "", 0);
            LAYER("attn_k_norm.weight", "self_attn.k_norm.weight", K_NORM, hd, 1, 1, "", 0);
        }
        LAYER("ffn_norm.weight", "post_attention_layernorm.weight", K_NORM, o->embd, 1, 1, "", 0);
        LAYER("ffn_gate.weight", "mlp.gate_proj.weight", K_MATRIX, o->embd, o->ff, 2, "ffn_gate",
              0);
        LAYER("ffn_up.weight", "mlp.up_proj.weight", K_MATRIX, o->embd, o->ff, 2, "ffn_up", 0);
        LAYER("ffn_down.weight", "mlp.down_proj.weight", K_MATRIX, o->ff, o->embd, 2, "ffn_down",
              0);
    }
    ADD("output_norm.weight", "model.norm.weight", K_NORM, o->embd, 1, 1, 0, 0);
    if (!o->tied)
        ADD("output.weight", "lm_head.weight", K_MATRIX, o->embd, o->vocab_size, 2,
            recipe_type(o, "output", 0), 0);
    return n;
}

/* ------------------------------------------------------------ GGUF */

static int write_gguf(const opts *o, const tdesc *t, int n, const wisp_gguf *vocab)
{
    wisp_gguf_writer *w = wisp_gguf_writer_new();
    char k[128];
    const char *a = o->arch;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    wisp_gguf_writer_str(w, "general.architecture", a);
    wisp_gguf_writer_str(w, "general.name", o->name);
    wisp_gguf_writer_u32(w, KEY("block_count"), (uint32_t)o->layers);
    wisp_gguf_writer_u32(w, KEY("context_length"), (uint32_t)o->ctx);
    wisp_gguf_writer_u32(w, KEY("embedding_length"), (uint32_t)o->embd);
    wisp_gguf_writer_u32(w, KEY("feed_forward_length"), (uint32_t)o->ff);
    wisp_gguf_writer_u32(w, KEY("attention.head_count"), (uint32_t)o->heads);
    wisp_gguf_writer_u32(w, KEY("attention.head_count_kv"), (uint32_t)o->kv_heads);
    if (o->head_dim != o->embd / o->heads) {
        wisp_gguf_writer_u32(w, KEY("attention.key_length"), (uint32_t)o->head_dim);
        wisp_gguf_writer_u32(w, KEY("attention.value_length"), (uint32_t)o->head_dim);
    }
    wisp_gguf_writer_f32(w, KEY("attention.layer_norm_rms_epsilon"), o->eps);
    wisp_gguf_writer_f32(w, KEY("rope.freq_base"), o->rope_base);
    wisp_gguf_writer_u32(w, "general.quantization_version", 2);
    if (vocab)
        for (int64_t i = 0; i < wisp_gguf_n_kv(vocab); i++) {
            wisp_str key = wisp_gguf_key_name(vocab, i);
            bool is_template = key.len == 23 && memcmp(key.ptr, "tokenizer.chat_template", 23) == 0;
            if (key.len > 10 && memcmp(key.ptr, "tokenizer.", 10) == 0 &&
                !(is_template && o->chat_template))
                wisp_gguf_writer_copy_kv(w, vocab, i);
        }
    if (o->chat_template) {
        FILE *tf = fopen(o->chat_template, "rb");
        char *text = NULL;
        long len = -1;
        if (tf && fseek(tf, 0, SEEK_END) == 0 && (len = ftell(tf)) >= 0 &&
            fseek(tf, 0, SEEK_SET) == 0 && (text = calloc(1, (size_t)len + 1)) &&
            fread(text, 1, (size_t)len, tf) == (size_t)len) {
            wisp_gguf_writer_str(w, "tokenizer.chat_template", text);
        } else {
            fprintf(stderr, "synth: cannot read %s\n", o->chat_template);
            len = -1;
        }
        free(text);
        if (tf)
            fclose(tf);
        if (len < 0) {
            wisp_gguf_writer_free(w);
            return 1;
        }
    }
    for (int i = 0; i < n; i++)
        if (wisp_gguf_writer_tensor(w, t[i].gguf, t[i].type, t[i].n_dims, t[i].ne) != i) {
            fprintf(stderr, "synth: cannot lay out %s as %s\n", t[i].gguf,
                    wisp_type_name(t[i].type));
            wisp_gguf_writer_free(w);
            return 1;
        }
    FILE *f = fopen(o->out, "wb");
    if (!f) {
        fprintf(stderr, "synth: %s: %s\n", o->out, strerror(errno));
        wisp_gguf_writer_free(w);
        return 1;
    }
    wisp_err err = {0};
    int rc = wisp_gguf_writer_write_header(w, f, &err);
    for (int i = 0; i < n && !rc; i++) {
        size_t row = wisp_type_row_size(t[i].type, t[i].ne[0]);
        uint8_t *buf = malloc(row * (size_t)t[i].ne[1]);
        float *x = malloc(sizeof(float) * (size_t)t[i].ne[0]);
        if (!buf || !x) {
            rc = wisp_err_set(&err, WISP_E_NOMEM, "tensor %s", t[i].gguf);
        } else {
            for (int64_t r = 0; r < t[i].ne[1]; r++) {
                gen_row(o, &t[i], hf_row_of(&t[i], r), x);
                wisp_type_get(t[i].type)->from_float(x, buf + (size_t)r * row, t[i].ne[0]);
            }
            rc = wisp_gguf_writer_write_data(w, f, i, buf, &err);
        }
        free(buf);
        free(x);
    }
    if (fclose(f) != 0 && !rc)
        rc = wisp_err_set(&err, WISP_E_IO, "closing %s", o->out);
    if (rc)
        fprintf(stderr, "synth: %s\n", err.msg);
    wisp_gguf_writer_free(w);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------ Hugging Face */

static int write_shard(const opts *o, const tdesc *t, int from, int to, const char *path)
{
    static const char *names[] =
        {[WISP_TYPE_F32] = "F32", [WISP_TYPE_F16] = "F16", [WISP_TYPE_BF16] = "BF16"};
    int es = o->hf_dtype == WISP_TYPE_F32 ? 4 : 2;
    wisp_st_writer *w = wisp_st_writer_new();
    for (int i = from; i < to; i++) {
        int64_t shape[2] = {t[i].ne[1], t[i].ne[0]};
        int nd = t[i].n_dims;
        wisp_st_writer_tensor(w, t[i].hf, names[o->hf_dtype], es, nd, nd == 2 ? shape : t[i].ne);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "synth: %s: %s\n", path, strerror(errno));
        wisp_st_writer_free(w);
        return 1;
    }
    wisp_err err = {0};
    int rc = wisp_st_writer_write_header(w, f, &err);
    for (int i = from; i < to && !rc; i++) {
        size_t nb = wisp_st_writer_tensor_bytes(w, i - from);
        uint8_t *buf = malloc(nb);
        float *x = malloc(sizeof(float) * (size_t)t[i].ne[0]);
        for (int64_t r = 0; buf && x && r < t[i].ne[1]; r++) {
            gen_row(o, &t[i], r, x);
            size_t rb = (size_t)t[i].ne[0] * (size_t)es;
            wisp_type_get(o->hf_dtype)->from_float(x, buf + (size_t)r * rb, t[i].ne[0]);
        }
        rc = buf && x ? wisp_st_writer_write_data(w, f, i - from, buf, &err) : WISP_E_NOMEM;
        free(buf);
        free(x);
    }
    if (fclose(f) != 0 && !rc)
        rc = WISP_E_IO;
    if (rc)
        fprintf(stderr, "synth: %s: %s\n", path, err.msg[0] ? err.msg : "write failed");
    wisp_st_writer_free(w);
    return rc ? 1 : 0;
}

static int write_config(const opts *o, const wisp_gguf *vocab)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->hf_dir);
    const char *cls = strcmp(o->arch, "llama") == 0   ? "LlamaForCausalLM"
                      : strcmp(o->arch, "qwen2") == 0 ? "Qwen2ForCausalLM"
                                                      : "Qwen3ForCausalLM";
    const char *dt = o->hf_dtype == WISP_TYPE_F32   ? "float32"
                     : o->hf_dtype == WISP_TYPE_F16 ? "float16"
                                                    : "bfloat16";
    uint32_t bos = 1, eos = 2;
    if (vocab) {
        wisp_gguf_get_u32(vocab, "tokenizer.ggml.bos_token_id", &bos);
        wisp_gguf_get_u32(vocab, "tokenizer.ggml.eos_token_id", &eos);
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
            "  \"_name_or_path\": \"%s\",\n  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
            "  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n"
            "  \"rms_norm_eps\": %g,\n  \"rope_theta\": %.1f,\n  \"rope_scaling\": null,\n"
            "  \"vocab_size\": %d,\n  \"tie_word_embeddings\": %s,\n"
            "  \"attention_bias\": %s,\n  \"hidden_act\": \"silu\",\n"
            "  \"bos_token_id\": %u,\n  \"eos_token_id\": %u,\n  \"torch_dtype\": \"%s\"\n}\n",
            cls, o->arch, o->name, o->embd, o->ff, o->layers, o->heads, o->kv_heads, o->head_dim,
            o->ctx, o->eps, o->rope_base, o->vocab_size, o->tied ? "true" : "false",
            strcmp(o->arch, "qwen2") == 0 ? "true" : "false", bos, eos, dt);
    return fclose(f) != 0;
}

/* tokenizer_config.json: what the Hugging Face loader reads besides
 * tokenizer.json (whether BOS/EOS are added, the special tokens). */
static int write_tokenizer_config(const opts *o, const wisp_gguf *v)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", o->hf_dir);
    wisp_str model = {"", 0};
    wisp_gguf_get_str(v, "tokenizer.ggml.model", &model);
    bool add_bos = wisp_str_eq(model, "llama"), add_eos = false;
    wisp_gguf_get_bool(v, "tokenizer.ggml.add_bos_token", &add_bos);
    wisp_gguf_get_bool(v, "tokenizer.ggml.add_eos_token", &add_eos);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f, "{\n  \"add_bos_token\": %s,\n  \"add_eos_token\": %s,\n",
            add_bos ? "true" : "false", add_eos ? "true" : "false");
    const char *keys[] = {"bos", "eos", "unknown"};
    const char *names[] = {"bos_token", "eos_token", "unk_token"};
    for (int i = 0; i < 3; i++) {
        char k[64];
        uint32_t id;
        snprintf(k, sizeof k, "tokenizer.ggml.%s_token_id", keys[i]);
        wisp_str s = {0};
        if (wisp_gguf_get_u32(v, k, &id) &&
            (s = wisp_gguf_arr_str(v, "tokenizer.ggml.tokens", id)).ptr) {
            fprintf(f, "  \"%s\": \"", names[i]);
            for (size_t j = 0; j < s.len; j++)
                fprintf(f, s.ptr[j] == '"' || s.ptr[j] == '\\' ? "\\%c" : "%c", s.ptr[j]);
            fprintf(f, "\",\n");
        }
    }
    fprintf(f, "  \"model_max_length\": %d\n}\n", o->ctx);
    return fclose(f) != 0;
}

static int write_hf(const opts *o, const tdesc *t, int n, const wisp_gguf *vocab)
{
    if (mkdir(o->hf_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "synth: %s: %s\n", o->hf_dir, strerror(errno));
        return 1;
    }
    char path[4096];
    if (write_config(o, vocab))
        return fprintf(stderr, "synth: cannot write config.json\n"), 1;
    if (o->shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", o->hf_dir);
        if (write_shard(o, t, 0, n, path))
            return 1;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", o->hf_dir);
        FILE *idx = fopen(path, "w");
        if (!idx)
            return 1;
        fprintf(idx, "{\n  \"metadata\": {},\n  \"weight_map\": {\n");
        for (int s = 0; s < o->shards; s++) {
            int from = n * s / o->shards, to = n * (s + 1) / o->shards;
            char file[64];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, o->shards);
            snprintf(path, sizeof path, "%s/%s", o->hf_dir, file);
            if (write_shard(o, t, from, to, path)) {
                fclose(idx);
                return 1;
            }
            for (int i = from; i < to; i++)
                fprintf(idx, "    \"%s\": \"%s\"%s\n", t[i].hf, file, i + 1 < n ? "," : "");
        }
        fprintf(idx, "  }\n}\n");
        if (fclose(idx) != 0)
            return 1;
    }
    if (vocab) {
        wisp_err err = {0};
        snprintf(path, sizeof path, "%s/tokenizer.json", o->hf_dir);
        if (wisp_hf_tokenizer_export(vocab, path, &err) != 0)
            return fprintf(stderr, "synth: tokenizer.json: %s\n", err.msg), 1;
        if (write_tokenizer_config(o, vocab))
            return fprintf(stderr, "synth: cannot write tokenizer_config.json\n"), 1;
    }
    return 0;
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: synth [--arch llama|qwen2|qwen3] [--layers N] [--embd N] [--heads N]\n"
        "             [--kv-heads N] [--head-dim N] [--ff N] [--vocab-size N] [--ctx N]\n"
        "             [--rope-base F] [--eps F] [--type T | --recipe q4_k_m|q5_k_m|q3_k_m|q2_k]\n"
        "             [--embd-type T] [--tied] [--vocab VOCAB.gguf] [--seed N] [--name S]\n"
        "             [--chat-template FILE.jinja]\n"
        "             [--out FILE.gguf] [--hf-dir DIR [--hf-dtype f32|f16|bf16] [--shards N]]\n");
}

static int parse_type(const char *s, int *out)
{
    int t = wisp_type_from_name(s);
    if (t < 0 || !wisp_type_get(t)->supported) {
        fprintf(stderr, "synth: unknown or unsupported type '%s'\n", s);
        return 1;
    }
    *out = t;
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.arch = "llama",
              .layers = 2,
              .embd = 256,
              .heads = 8,
              .kv_heads = 4,
              .ff = 768,
              .vocab_size = 32000,
              .ctx = 2048,
              .rope_base = 10000,
              .eps = 1e-6f,
              .type = WISP_TYPE_F16,
              .embd_type = -1,
              .hf_dtype = WISP_TYPE_F32,
              .seed = 1,
              .name = "synthetic",
              .shards = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(flag) (strcmp(a, flag) == 0 && v && ++i)
        if (OPT("--arch"))
            o.arch = v;
        else if (OPT("--layers"))
            o.layers = atoi(v);
        else if (OPT("--embd"))
            o.embd = atoi(v);
        else if (OPT("--heads"))
            o.heads = atoi(v);
        else if (OPT("--kv-heads"))
            o.kv_heads = atoi(v);
        else if (OPT("--head-dim"))
            o.head_dim = atoi(v);
        else if (OPT("--ff"))
            o.ff = atoi(v);
        else if (OPT("--vocab-size"))
            o.vocab_size = atoi(v);
        else if (OPT("--ctx"))
            o.ctx = atoi(v);
        else if (OPT("--rope-base"))
            o.rope_base = strtof(v, NULL);
        else if (OPT("--eps"))
            o.eps = strtof(v, NULL);
        else if (OPT("--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (OPT("--name"))
            o.name = v;
        else if (OPT("--vocab"))
            o.vocab = v;
        else if (OPT("--chat-template"))
            o.chat_template = v;
        else if (OPT("--out"))
            o.out = v;
        else if (OPT("--hf-dir"))
            o.hf_dir = v;
        else if (OPT("--shards"))
            o.shards = atoi(v);
        else if (OPT("--recipe"))
            o.recipe = v;
        else if (OPT("--type")) {
            if (parse_type(v, &o.type))
                return 2;
        } else if (OPT("--embd-type")) {
            if (parse_type(v, &o.embd_type))
                return 2;
        } else if (OPT("--hf-dtype")) {
            if (parse_type(v, &o.hf_dtype) ||
                (o.hf_dtype != WISP_TYPE_F32 && o.hf_dtype != WISP_TYPE_F16 &&
                 o.hf_dtype != WISP_TYPE_BF16))
                return fprintf(stderr, "synth: --hf-dtype is f32, f16 or bf16\n"), 2;
        } else if (strcmp(a, "--tied") == 0)
            o.tied = true;
        else
            return usage(), 2;
    }
    if (strcmp(o.arch, "llama") && strcmp(o.arch, "qwen2") && strcmp(o.arch, "qwen3"))
        return fprintf(stderr, "synth: architecture '%s' (llama, qwen2, qwen3)\n", o.arch), 2;
    if (o.recipe && recipe_type(&o, "x", 0) < 0)
        return fprintf(stderr, "synth: unknown recipe '%s'\n", o.recipe), 2;
    if (!o.out && !o.hf_dir)
        return usage(), 2;
    if (o.head_dim == 0 && o.heads > 0)
        o.head_dim = o.embd / o.heads;
    if (o.layers < 1 || o.embd < 1 || o.heads < 1 || o.kv_heads < 1 || o.heads % o.kv_heads ||
        o.head_dim < 2 || o.head_dim % 2 || o.ff < 1 || o.vocab_size < 1 || o.shards < 1)
        return fprintf(stderr, "synth: inconsistent shape\n"), 2;
    wisp_gguf *vocab = NULL;
    wisp_err err = {0};
    if (o.vocab) {
        if (wisp_gguf_open(o.vocab, &vocab, &err) != 0)
            return fprintf(stderr, "synth: %s\n", err.msg), 1;
        wisp_gguf_vtype et;
        uint64_t n;
        if (!wisp_gguf_get_arr(vocab, "tokenizer.ggml.tokens", &et, &n) || n == 0) {
            wisp_gguf_close(vocab);
            return fprintf(stderr, "synth: %s has no tokenizer\n", o.vocab), 1;
        }
        o.vocab_size = (int)n;
    }
    int max = 8 + o.layers * 16;
    tdesc *t = calloc((size_t)max, sizeof *t);
    int n = t ? build_layout(&o, t, max) : -1;
    int rc = n < 0;
    if (!rc && o.out)
        rc = write_gguf(&o, t, n, vocab);
    if (!rc && o.hf_dir)
        rc = write_hf(&o, t, n, vocab);
    free(t);
    wisp_gguf_close(vocab);
    return rc;
}
