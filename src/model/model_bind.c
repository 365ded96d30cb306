/*
 * model_bind.c - maps a model's tensors to their roles and checks them.
 *
 * Shared by the GGUF and safetensors loaders (both hand over GGUF-named
 * tensors). Every name is parsed once: "blk.N.<suffix>" goes to layer N's
 * role with that suffix in arch.c's role table, the few global names to
 * the global slots. Each bound tensor's shape is checked against the
 * config in the symbols of the role table, its type must be one wisp
 * computes with, and each layer must have every role its architecture
 * requires, so the engines can use the weights without checking again.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "model/model_int.h"

int wisp_model_check_config(const wisp_model_config *c, wisp_err *err)
{
    struct {
        const char *what;
        int v, lo, hi;
    } ranges[] = {
        {"layer count", c->n_layers, 1, 4096},
        {"embedding size", c->n_embd, 1, 1 << 20},
        {"head count", c->n_head, 1, 4096},
        {"kv head count", c->n_head_kv, 1, 4096},
        {"head size", c->head_dim, 2, 1 << 14},
        {"feed-forward size", c->n_ff, 1, 1 << 24},
        {"training context", c->n_ctx_train, 1, 1 << 30},
        {"RoPE dimensions", c->rope_dim, 2, 1 << 14},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi)
            return wisp_err_set(err, WISP_E_FORMAT, "%s %d is out of range (%d..%d)",
                                ranges[i].what, ranges[i].v, ranges[i].lo, ranges[i].hi);
    if (c->n_head % c->n_head_kv != 0)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "head count %d is not a multiple of the kv head count %d", c->n_head,
                            c->n_head_kv);
    if (c->head_dim % 2 || c->rope_dim % 2 || c->rope_dim > c->head_dim)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "RoPE dimensions %d must be even and at most the head size %d",
                            c->rope_dim, c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return wisp_err_set(err, WISP_E_FORMAT, "RMSNorm epsilon %g is out of range", c->norm_eps);
    if (!(c->rope_freq_base > 0 && isfinite(c->rope_freq_base)))
        return wisp_err_set(err, WISP_E_FORMAT, "RoPE base %g is out of range", c->rope_freq_base);
    if (!(c->rope_scale_factor >= 1.0f / 1024 && c->rope_scale_factor <= 1024))
        return wisp_err_set(err, WISP_E_FORMAT, "RoPE scaling factor %g is out of range",
                            c->rope_scale_factor);
    return 0;
}

/* The size a shape symbol stands for. */
static int64_t sym_size(const wisp_model_config *c, char s)
{
    switch (s) {
    case 'E': return c->n_embd;
    case 'Q': return (int64_t)c->n_head * c->head_dim;
    case 'K': return (int64_t)c->n_head_kv * c->head_dim;
    case 'F': return c->n_ff;
    case 'D': return c->head_dim;
    case 'V': return c->vocab_size;
    case 'R': return c->rope_dim / 2;
    default: return 1;
    }
}

static int check_tensor(const wisp_tensor *t, const wisp_model_config *c, const char *shape,
                        wisp_err *err)
{
    const wisp_type_traits *tr = wisp_type_get(t->type);
    if (!tr->supported)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "tensor %s has type %s, which wisp does not support yet", t->name,
                            wisp_type_name(t->type));
    int64_t want0 = sym_size(c, shape[0]), want1 = shape[1] == '-' ? 1 : sym_size(c, shape[1]);
    if (t->ne[0] != want0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                            "], expected [%" PRId64 ", %" PRId64 "]",
                            t->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], want0, want1);
    return 0;
}

static const wisp_tensor **layer_slot(wisp_layer_weights *l, int role)
{
    return (const wisp_tensor **)((char *)l + wisp_layer_roles[role].field);
}

/* "blk.N.suffix": layer and suffix, or false. */
static bool parse_layer_name(const char *name, long *layer, const char **suffix)
{
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9')
        return false;
    char *end;
    *layer = strtol(name + 4, &end, 10);
    if (*end != '.')
        return false;
    *suffix = end + 1;
    return true;
}

static int bind_one(wisp_model *m, const wisp_tensor *t, wisp_err *err)
{
    wisp_model_config *c = &m->cfg;
    wisp_model_weights *w = &m->weights;
    long layer;
    const char *suffix;
    if (parse_layer_name(t->name, &layer, &suffix)) {
        if (layer >= c->n_layers)
            return wisp_err_set(err, WISP_E_FORMAT,
                                "tensor %s belongs to layer %ld, but the model has %d layers",
                                t->name, layer, c->n_layers);
        for (int r = 0; r < WISP_ROLE_COUNT; r++) {
            if (strcmp(suffix, wisp_layer_roles[r].gguf) != 0)
                continue;
            if (!((m->arch->required | m->arch->optional) & WISP_ROLE_BIT(r)))
                return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                    "tensor %s is not part of architecture %s", t->name,
                                    m->arch->name);
            int rc = check_tensor(t, c, wisp_layer_roles[r].shape, err);
            if (rc)
                return rc;
            *layer_slot(&w->layers[layer], r) = t;
            return 0;
        }
    } else if (strcmp(t->name, "token_embd.weight") == 0) {
        /* The vocabulary size is the embedding's row count; check the rest. */
        c->vocab_size = t->ne[1] > 0 && t->ne[1] <= INT32_MAX ? (int)t->ne[1] : 0;
        int rc = check_tensor(t, c, "EV", err);
        if (rc)
            return rc;
        w->tok_embd = t;
        return 0;
    } else if (strcmp(t->name, "output_norm.weight") == 0) {
        w->out_norm = t;
        return check_tensor(t, c, "E-", err);
    } else if (strcmp(t->name, "output.weight") == 0) {
        w->output = t;
        return 0; /* checked once the vocabulary size is known */
    } else if (strcmp(t->name, "rope_freqs.weight") == 0) {
        w->rope_freqs = t;
        return check_tensor(t, c, "R-", err);
    }
    WISP_LOGW("model %s: ignoring tensor %s, which wisp does not use", m->path, t->name);
    return 0;
}

static int check_layers(wisp_model *m, wisp_err *err)
{
    wisp_model_config *c = &m->cfg;
    const wisp_arch_desc *a = m->arch;
    for (int il = 0; il < c->n_layers; il++) {
        wisp_layer_weights *l = &m->weights.layers[il];
        for (int r = 0; r < WISP_ROLE_COUNT; r++)
            if ((a->required & WISP_ROLE_BIT(r)) && !*layer_slot(l, r))
                return wisp_err_set(err, WISP_E_FORMAT, "missing tensor blk.%d.%s", il,
                                    wisp_layer_roles[r].gguf);
        /* Optional groups come complete and in every layer, or not at all. */
        bool bias = l->bq || l->bk || l->bv, all_bias = l->bq && l->bk && l->bv;
        bool qkn = l->q_norm || l->k_norm, all_qkn = l->q_norm && l->k_norm;
        if (bias != all_bias || (il > 0 && bias != c->attn_bias))
            return wisp_err_set(err, WISP_E_FORMAT,
                                "layer %d: q/k/v biases must be present in every layer or in"
                                " none",
                                il);
        if (qkn != all_qkn || (il > 0 && qkn != c->qk_norm))
            return wisp_err_set(err, WISP_E_FORMAT,
                                "layer %d: q/k norms must be present in every layer or in none",
                                il);
        c->attn_bias = bias;
        c->qk_norm = qkn;
    }
    return 0;
}

int wisp_model_bind(wisp_model *m, wisp_err *err)
{
    wisp_model_config *c = &m->cfg;
    wisp_model_weights *w = &m->weights;
    /* Every layer needs at least 9 tensors: a forged layer count cannot
     * drive the allocation past the tensors the file really has. */
    if ((int64_t)c->n_layers * 9 > m->n_tensors)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "%d layers need at least %lld tensors, the model has %" PRId64,
                            c->n_layers, (long long)c->n_layers * 9, m->n_tensors);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers)
        return wisp_err_set(err, WISP_E_NOMEM, "%d layers", c->n_layers);
    uint64_t total = 0, done = 0, next_report = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        total += m->tensors[i].nbytes;
    /* token_embd first: it fixes the vocabulary size other shapes use. */
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, "token_embd.weight") == 0) {
            int rc = bind_one(m, &m->tensors[i], err);
            if (rc)
                return rc;
        }
    if (!w->tok_embd)
        return wisp_err_set(err, WISP_E_FORMAT, "missing tensor token_embd.weight");
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const wisp_tensor *t = &m->tensors[i];
        if (t != w->tok_embd) {
            int rc = bind_one(m, t, err);
            if (rc)
                return rc;
        }
        done += t->nbytes;
        if (total && done >= next_report) {
            wisp_model_progress(m, (double)done / (double)total, "mapping tensors");
            next_report = done + total / 32;
        }
    }
    if (!w->out_norm)
        return wisp_err_set(err, WISP_E_FORMAT, "missing tensor output_norm.weight");
    if (w->output) {
        int rc = check_tensor(w->output, c, "EV", err);
        if (rc)
            return rc;
    } else {
        w->output = w->tok_embd;
        c->tied_output = true;
    }
    int rc = check_layers(m, err);
    if (rc)
        return rc;
    m->has_weights = true;
    return 0;
}
