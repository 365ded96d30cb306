/*
 * model_gguf.c - a model's hyper-parameters and tensor table from a GGUF
 * file.
 *
 * The keys are read from one table (hparams below) with llama.cpp's
 * defaults applied afterwards, so every architecture of the llama family
 * reads the same way: `<arch>.embedding_length`, `<arch>.attention.
 * head_count`, ... A key that is present with the wrong type or an
 * out-of-range value is an error naming the key, not a silent default.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "model/model_int.h"

typedef enum {
    HP_INT,
    HP_F32
} hp_kind;

typedef struct hp_spec {
    const char *suffix; /* after "<arch>." */
    size_t field;       /* in wisp_model_config */
    hp_kind kind;
    bool required;
} hp_spec;

#define CF(f) offsetof(wisp_model_config, f)

static const hp_spec hparams[] = {
    {"block_count", CF(n_layers), HP_INT, true},
    {"embedding_length", CF(n_embd), HP_INT, true},
    {"attention.head_count", CF(n_head), HP_INT, true},
    {"attention.head_count_kv", CF(n_head_kv), HP_INT, false},
    {"attention.key_length", CF(head_dim), HP_INT, false},
    {"feed_forward_length", CF(n_ff), HP_INT, true},
    {"context_length", CF(n_ctx_train), HP_INT, true},
    {"rope.dimension_count", CF(rope_dim), HP_INT, false},
    {"rope.freq_base", CF(rope_freq_base), HP_F32, false},
    {"attention.layer_norm_rms_epsilon", CF(norm_eps), HP_F32, true},
    {"rope.scale_linear", CF(rope_scale_factor), HP_F32, false},
    {"rope.scaling.factor", CF(rope_scale_factor), HP_F32, false},
    {"rope.scaling.original_context_length", CF(rope_orig_ctx), HP_INT, false},
    {"rope.scaling.yarn_beta_fast", CF(yarn_beta_fast), HP_F32, false},
    {"rope.scaling.yarn_beta_slow", CF(yarn_beta_slow), HP_F32, false},
    {"rope.scaling.yarn_ext_factor", CF(yarn_ext_factor), HP_F32, false},
    {"rope.scaling.yarn_attn_factor", CF(yarn_attn_factor), HP_F32, false},
    {"rope.scaling.attn_factor", CF(yarn_attn_factor), HP_F32, false},
};

static int read_hparam(const wisp_gguf *g, const char *arch, const hp_spec *h, wisp_model_config *c,
                       wisp_err *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, h->suffix);
    int64_t ki = wisp_gguf_find_key(g, key);
    if (ki < 0)
        return h->required ? wisp_err_set(err, WISP_E_FORMAT, "missing key %s", key) : 0;
    void *dst = (char *)c + h->field;
    if (h->kind == HP_INT) {
        int64_t v;
        if (!wisp_gguf_get_i64(g, key, &v))
            return wisp_err_set(err, WISP_E_FORMAT, "key %s: expected an integer", key);
        if (v < 0 || v > INT32_MAX)
            return wisp_err_set(err, WISP_E_FORMAT, "key %s: value %" PRId64 " out of range", key,
                                v);
        *(int *)dst = (int)v;
    } else {
        float v;
        if (!wisp_gguf_get_f32(g, key, &v))
            return wisp_err_set(err, WISP_E_FORMAT, "key %s: expected a float", key);
        if (!(v == v) || v < -1e30f || v > 1e30f)
            return wisp_err_set(err, WISP_E_FORMAT, "key %s: value %g is not finite", key, v);
        *(float *)dst = v;
    }
    return 0;
}

/* Scaling type from `<arch>.rope.scaling.type` (llama.cpp treats a factor
 * without a type as linear; a factor of 0 or 1 means no scaling). */
static int read_rope_scaling(const wisp_gguf *g, const char *arch, wisp_model_config *c,
                             wisp_err *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    wisp_str t = {"linear", 6};
    if (wisp_gguf_find_key(g, key) >= 0 && !wisp_gguf_get_str(g, key, &t))
        return wisp_err_set(err, WISP_E_FORMAT, "key %s: expected a string", key);
    if (wisp_str_eq(t, "none"))
        c->rope_scaling = WISP_ROPE_SCALING_NONE;
    else if (wisp_str_eq(t, "linear"))
        c->rope_scaling = WISP_ROPE_SCALING_LINEAR;
    else if (wisp_str_eq(t, "yarn"))
        c->rope_scaling = WISP_ROPE_SCALING_YARN;
    else
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "RoPE scaling type '%.*s' is not supported (none, linear, yarn)",
                            (int)(t.len > 64 ? 64 : t.len), t.ptr);
    if (c->rope_scale_factor == 0.0f)
        c->rope_scale_factor = 1.0f;
    if (c->rope_scaling == WISP_ROPE_SCALING_LINEAR && c->rope_scale_factor == 1.0f)
        c->rope_scaling = WISP_ROPE_SCALING_NONE;
    return 0;
}

/* Defaults as llama.cpp applies them. */
static void apply_defaults(wisp_model_config *c)
{
    if (c->n_head_kv == 0)
        c->n_head_kv = c->n_head;
    if (c->head_dim == 0 && c->n_head > 0)
        c->head_dim = c->n_embd / c->n_head;
    if (c->rope_dim == 0)
        c->rope_dim = c->head_dim;
    if (c->rope_freq_base == 0.0f)
        c->rope_freq_base = 10000.0f;
    if (c->rope_orig_ctx == 0)
        c->rope_orig_ctx = c->n_ctx_train;
    /* yarn_ext_factor < 0 means "choose": 1 for YaRN, 0 otherwise. */
    if (c->yarn_ext_factor < 0)
        c->yarn_ext_factor = c->rope_scaling == WISP_ROPE_SCALING_YARN ? 1.0f : 0.0f;
}

static void copy_str(char *dst, size_t cap, wisp_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static int token_count(const wisp_gguf *g, int64_t *n)
{
    wisp_gguf_vtype et;
    uint64_t len;
    *n = -1;
    if (!wisp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &len))
        return 0;
    if (et != WISP_GGUF_STRING)
        return WISP_E_FORMAT;
    *n = (int64_t)len;
    return 0;
}

/* The tensor table: views into the mapping with NUL-terminated names. */
static int build_tensor_table(wisp_model *m, wisp_err *err)
{
    const wisp_gguf *g = m->gguf;
    int64_t n = wisp_gguf_n_tensors(g);
    if (n <= 0)
        return 0;
    size_t pool = 0;
    for (int64_t i = 0; i < n; i++)
        pool += wisp_gguf_tensor_at(g, i)->name.len + 1;
    m->tensors = calloc((size_t)n, sizeof *m->tensors);
    m->names = malloc(pool);
    if (!m->tensors || !m->names)
        return wisp_err_set(err, WISP_E_NOMEM, "tensor table of %" PRId64 " tensors", n);
    char *p = m->names;
    for (int64_t i = 0; i < n; i++) {
        const wisp_gguf_tensor *gt = wisp_gguf_tensor_at(g, i);
        wisp_tensor *t = &m->tensors[i];
        memcpy(p, gt->name.ptr, gt->name.len);
        p[gt->name.len] = '\0';
        t->name = p;
        p += gt->name.len + 1;
        t->type = gt->type;
        t->n_dims = gt->n_dims;
        memcpy(t->ne, gt->ne, sizeof t->ne);
        t->nbytes = (size_t)gt->nbytes;
        t->data = gt->data;
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    m->n_tensors = n;
    return 0;
}

int wisp_model_load_gguf(wisp_model *m, wisp_err *err)
{
    const wisp_gguf *g = m->gguf;
    wisp_model_config *c = &m->cfg;
    m->file_bytes = wisp_gguf_file_size(g);
    wisp_str s;
    if (!wisp_gguf_get_str(g, "general.architecture", &s))
        return wisp_err_set(err, WISP_E_FORMAT, "missing key general.architecture");
    copy_str(c->arch_name, sizeof c->arch_name, s);
    if (wisp_gguf_get_str(g, "general.name", &s) && s.len > 0) {
        copy_str(c->name, sizeof c->name, s);
    } else {
        const char *base = strrchr(m->path, '/');
        snprintf(c->name, sizeof c->name, "%s", base ? base + 1 : m->path);
    }
    int64_t n_tok;
    if (token_count(g, &n_tok))
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (n_tok > INT32_MAX)
        return wisp_err_set(err, WISP_E_FORMAT, "%" PRId64 " tokens", n_tok);
    c->vocab_size = n_tok > 0 ? (int)n_tok : 0;

    m->arch = wisp_arch_by_name(c->arch_name);
    if (wisp_gguf_n_tensors(g) == 0) {
        if (!m->opts.vocab_only)
            return wisp_err_set(err, WISP_E_INVALID,
                                "the file has no tensors (a vocabulary-only file); it can"
                                " only be opened for its tokenizer");
        if (n_tok <= 0)
            return wisp_err_set(err, WISP_E_FORMAT,
                                "a vocabulary-only file without tokenizer.ggml.tokens");
        m->vocab_only = true;
        if (m->arch)
            c->arch = m->arch->arch;
        return 0;
    }
    if (!m->arch)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "architecture '%s' is not supported (supported: %s)", c->arch_name,
                            wisp_arch_supported_list());
    c->arch = m->arch->arch;
    c->rope_layout = m->arch->gguf_rope;
    c->yarn_beta_fast = 32.0f;
    c->yarn_beta_slow = 1.0f;
    c->yarn_ext_factor = -1.0f;
    c->yarn_attn_factor = 1.0f;
    int rc;
    for (size_t i = 0; i < sizeof hparams / sizeof hparams[0]; i++)
        if ((rc = read_hparam(g, c->arch_name, &hparams[i], c, err)))
            return rc;
    if ((rc = read_rope_scaling(g, c->arch_name, c, err)))
        return rc;
    char key[160];
    snprintf(key, sizeof key, "%s.attention.value_length", c->arch_name);
    int64_t vl;
    if (wisp_gguf_get_i64(g, key, &vl) && c->head_dim && vl != c->head_dim)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "%s = %" PRId64 " differs from the key length %d", key, vl,
                            c->head_dim);
    apply_defaults(c);
    if ((rc = wisp_model_check_config(c, err)))
        return rc;
    if ((rc = build_tensor_table(m, err)))
        return rc;
    if ((rc = wisp_model_bind(m, err)))
        return rc;
    if (n_tok > c->vocab_size)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "the tokenizer has %" PRId64 " tokens but token_embd.weight has"
                            " %d rows",
                            n_tok, c->vocab_size);
    return 0;
}
