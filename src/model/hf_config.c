/*
 * hf_config.c - a Hugging Face checkpoint's config.json -> wisp_model_config.
 *
 * The field names are transformers' (hidden_size, num_attention_heads,
 * rope_theta, rope_scaling, ...). Defaults follow the transformers config
 * classes of the supported architectures, which agree on all of these
 * fields; a present field of the wrong JSON type is an error naming it.
 * The RoPE layout is always NEOX for a Hugging Face checkpoint (see
 * model.h: its Q/K rows are in rotate-half order).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model_int.h"

typedef struct hf_field {
    const char *name;
    size_t field;
    bool is_float;
    bool required;
} hf_field;

#define CF(f) offsetof(wisp_model_config, f)

static const hf_field fields[] = {
    {"num_hidden_layers", CF(n_layers), false, true},
    {"hidden_size", CF(n_embd), false, true},
    {"num_attention_heads", CF(n_head), false, true},
    {"num_key_value_heads", CF(n_head_kv), false, false},
    {"head_dim", CF(head_dim), false, false},
    {"intermediate_size", CF(n_ff), false, true},
    {"max_position_embeddings", CF(n_ctx_train), false, true},
    {"vocab_size", CF(vocab_size), false, false},
    {"rms_norm_eps", CF(norm_eps), true, true},
    {"rope_theta", CF(rope_freq_base), true, false},
};

static int read_field(json_t *root, const hf_field *f, wisp_model_config *c, wisp_err *err)
{
    json_t *v = json_object_get(root, f->name);
    if (!v || json_is_null(v))
        return f->required ? wisp_err_set(err, WISP_E_FORMAT, "config.json: missing %s", f->name)
                           : 0;
    void *dst = (char *)c + f->field;
    if (f->is_float) {
        if (!json_is_number(v))
            return wisp_err_set(err, WISP_E_FORMAT, "config.json: %s must be a number", f->name);
        double d = json_number_value(v);
        if (!isfinite(d) || fabs(d) > 1e30)
            return wisp_err_set(err, WISP_E_FORMAT, "config.json: %s = %g is out of range", f->name,
                                d);
        *(float *)dst = (float)d;
    } else {
        if (!json_is_integer(v))
            return wisp_err_set(err, WISP_E_FORMAT, "config.json: %s must be an integer", f->name);
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > INT32_MAX)
            return wisp_err_set(err, WISP_E_FORMAT, "config.json: %s = %lld is out of range",
                                f->name, (long long)i);
        *(int *)dst = (int)i;
    }
    return 0;
}

static int read_rope_scaling(json_t *root, wisp_model_config *c, wisp_err *err)
{
    json_t *rs = json_object_get(root, "rope_scaling");
    c->rope_scaling = WISP_ROPE_SCALING_NONE;
    c->rope_scale_factor = 1.0f;
    if (!rs || json_is_null(rs))
        return 0;
    if (!json_is_object(rs))
        return wisp_err_set(err, WISP_E_FORMAT, "config.json: rope_scaling must be an object");
    json_t *t = json_object_get(rs, "rope_type");
    if (!t)
        t = json_object_get(rs, "type");
    const char *type = json_is_string(t) ? json_string_value(t) : "default";
    json_t *f = json_object_get(rs, "factor");
    if (f && json_is_number(f))
        c->rope_scale_factor = (float)json_number_value(f);
    json_t *o = json_object_get(rs, "original_max_position_embeddings");
    if (o && json_is_integer(o) && json_integer_value(o) > 0 && json_integer_value(o) <= INT32_MAX)
        c->rope_orig_ctx = (int)json_integer_value(o);
    if (strcmp(type, "default") == 0) {
        c->rope_scale_factor = 1.0f;
    } else if (strcmp(type, "linear") == 0) {
        c->rope_scaling = WISP_ROPE_SCALING_LINEAR;
    } else if (strcmp(type, "yarn") == 0) {
        c->rope_scaling = WISP_ROPE_SCALING_YARN;
        json_t *bf = json_object_get(rs, "beta_fast"), *bs = json_object_get(rs, "beta_slow");
        if (bf && json_is_number(bf))
            c->yarn_beta_fast = (float)json_number_value(bf);
        if (bs && json_is_number(bs))
            c->yarn_beta_slow = (float)json_number_value(bs);
        c->yarn_ext_factor = 1.0f;
    } else {
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "config.json: rope_scaling type '%s' is not supported (linear, yarn)",
                            type);
    }
    return 0;
}

int wisp_hf_config_read(const char *dir, wisp_model_config *c, const wisp_arch_desc **arch,
                        wisp_err *err)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return wisp_err_set(err, WISP_E_INVALID, "path too long");
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return wisp_err_set(err, WISP_E_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = wisp_err_set(err, WISP_E_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) {
        rc = wisp_err_set(err, WISP_E_FORMAT, "%s: missing model_type", path);
        goto done;
    }
    *arch = wisp_arch_by_hf_type(json_string_value(mt));
    if (!*arch) {
        rc = wisp_err_set(err, WISP_E_UNSUPPORTED,
                          "architecture '%s' is not supported (supported: %s)",
                          json_string_value(mt), wisp_arch_supported_list());
        goto done;
    }
    c->arch = (*arch)->arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", (*arch)->name);
    c->rope_layout = WISP_ROPE_NEOX;
    c->yarn_beta_fast = 32.0f;
    c->yarn_beta_slow = 1.0f;
    c->yarn_attn_factor = 1.0f;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !rc; i++)
        rc = read_field(root, &fields[i], c, err);
    if (!rc)
        rc = read_rope_scaling(root, c, err);
    if (rc) {
        wisp_err_prefix(err, "%s", path);
        goto done;
    }
    if (c->n_head_kv == 0)
        c->n_head_kv = c->n_head;
    if (c->head_dim == 0 && c->n_head > 0)
        c->head_dim = c->n_embd / c->n_head;
    c->rope_dim = c->head_dim;
    if (c->rope_freq_base == 0.0f)
        c->rope_freq_base = 10000.0f;
    if (c->rope_orig_ctx == 0)
        c->rope_orig_ctx = c->n_ctx_train;
    json_t *nm = json_object_get(root, "_name_or_path");
    if (json_is_string(nm) && json_string_length(nm) > 0) {
        snprintf(c->name, sizeof c->name, "%s", json_string_value(nm));
    } else {
        const char *base = strrchr(dir, '/');
        snprintf(c->name, sizeof c->name, "%s", base && base[1] ? base + 1 : dir);
    }
    rc = wisp_model_check_config(c, err);
    if (rc)
        wisp_err_prefix(err, "%s", path);
done:
    json_decref(root);
    return rc;
}
