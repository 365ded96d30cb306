/*
 * plan.c - memory arithmetic of a model: see plan.h.
 *
 * Weights are summed from the real tensor byte sizes (so a Q4_K_M mix is
 * counted as stored), per layer by the "blk.N." prefix. The KV cache holds
 * one K and one V row of n_head_kv * head_dim elements per layer and token
 * in the cache type (F16: 2 bytes each, Q8_0: 34 bytes per 32).
 *
 * Scratch is an estimate of one forward step over n_ubatch = min(512,
 * n_ctx * n_seq) tokens, all in F32:
 *   activations  n_ubatch x (4 n_embd + (n_head + 2 n_head_kv) head_dim + 3 n_ff)
 *                (residual, normed input, attention output and projection;
 *                 q, k, v; gate, up and their product)
 *   attention    n_ubatch x n_head x n_ctx scores of one layer
 *   logits       n_seq x vocab (one row per sequence per step)
 * which is what an engine that keeps one layer's intermediates alive at a
 * time needs; engines with fused attention need less.
 *
 * The KV pool's size (wisp_plan_kv_pool) is decided here too, from the same
 * per-token bytes, so that the server, `wisp bench` and model/plan agree.
 */
#include "model/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

int wisp_plan_kv_bytes_per_token(const wisp_model_config *c, int kv_type, uint64_t *out,
                                 wisp_err *err)
{
    const int elem = wisp_kv_type_elem(kv_type);
    if (elem < 0) {
        char names[64];
        wisp_kv_type_list(names, sizeof names);
        return wisp_err_set(err, WISP_E_INVALID, "KV cache type %d is not one of %s", kv_type,
                            names);
    }
    const int64_t n = (int64_t)c->n_head_kv * c->head_dim;
    size_t r = wisp_type_row_size(elem, n);
    if (r == 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "KV rows of %lld elements do not divide into %s blocks", (long long)n,
                            wisp_kv_type_name(kv_type));
    *out = 2 * (uint64_t)c->n_layers * r;
    return 0;
}

int wisp_plan_kv_pool(const wisp_kv_pool_req *r, wisp_kv_pool_plan *out, wisp_err *err)
{
    memset(out, 0, sizeof *out);
    if (!r->cfg || r->n_ctx <= 0 || r->block_size <= 0)
        return wisp_err_set(err, WISP_E_INVALID, "KV pool: n_ctx %d, block size %d", r->n_ctx,
                            r->block_size);
    uint64_t per_token;
    int rc = wisp_plan_kv_bytes_per_token(r->cfg, r->kv_type, &per_token, err);
    if (rc)
        return rc;
    const uint64_t per_block = per_token * (uint64_t)r->block_size;
    const int64_t min_blocks = ((int64_t)r->n_ctx + r->block_size - 1) / r->block_size + 1;
    int64_t blocks;
    /* One context must fit in memory at all: an absurd n_ctx is refused
     * here, before a pool of many GiB is reserved for a tiny model. */
    const uint64_t one_ctx = (uint64_t)min_blocks * per_block;
    if (r->mem_available > 0 && one_ctx > r->mem_available)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "n_ctx %d needs %.2f GiB of KV cache for one context (%llu bytes per "
                            "token), more than the %.2f GiB of memory available: lower n_ctx",
                            r->n_ctx, (double)one_ctx / (1 << 30), (unsigned long long)per_token,
                            (double)r->mem_available / (1 << 30));
    if (r->kv_cache_mb > 0) {
        blocks = (int64_t)((uint64_t)r->kv_cache_mb * 1024 * 1024 / per_block);
        if (blocks < min_blocks)
            return wisp_err_set(err, WISP_E_TOO_LARGE,
                                "kv_cache_mb %lld holds %lld tokens, less than one context of %d "
                                "tokens (%llu bytes per token): raise kv_cache_mb to at least "
                                "%llu or lower n_ctx",
                                (long long)r->kv_cache_mb, (long long)blocks * r->block_size,
                                r->n_ctx, (unsigned long long)per_token,
                                (unsigned long long)((uint64_t)min_blocks * per_block /
                                                         (1024 * 1024) +
                                                     1));
    } else {
        blocks = (int64_t)(r->contexts > 0 ? r->contexts : 1) * min_blocks;
        if (r->mem_available > 0 && (uint64_t)blocks * per_block > r->mem_available / 4)
            blocks = (int64_t)(r->mem_available / 4 / per_block);
        if (blocks < min_blocks)
            blocks = min_blocks;
        if (r->device_limited && r->device_blocks < blocks) {
            if (r->device_blocks < min_blocks)
                return wisp_err_set(err, WISP_E_TOO_LARGE,
                                    "the device has room for %lld KV blocks, less than one "
                                    "context of %d tokens needs (%lld): lower n_ctx",
                                    (long long)r->device_blocks, r->n_ctx, (long long)min_blocks);
            blocks = r->device_blocks;
        }
    }
    if (blocks > INT32_MAX / 2)
        blocks = INT32_MAX / 2;
    out->n_blocks = (int)blocks;
    out->min_blocks = (int)(min_blocks < INT32_MAX / 2 ? min_blocks : INT32_MAX / 2);
    out->bytes_per_token = per_token;
    out->bytes = (uint64_t)blocks * per_block;
    return 0;
}

int wisp_model_plan_model(const wisp_model *m, int n_ctx, int n_seq, int kv_type,
                          wisp_model_plan *p, wisp_err *err)
{
    memset(p, 0, sizeof *p);
    if (wisp_model_is_vocab_only(m) || !wisp_model_get_weights(m))
        return wisp_err_set(err, WISP_E_INVALID, "a vocabulary-only file has no memory plan");
    const wisp_model_config *c = wisp_model_get_config(m);
    const wisp_model_weights *w = wisp_model_get_weights(m);
    p->cfg = *c;
    p->n_ctx = n_ctx > 0 ? n_ctx : c->n_ctx_train;
    p->n_seq = n_seq > 0 ? n_seq : 1;
    p->kv_type = kv_type >= 0 ? (wisp_kv_type)kv_type : WISP_KV_F16;
    p->n_layers = c->n_layers;
    int rc = wisp_plan_kv_bytes_per_token(c, kv_type >= 0 ? kv_type : WISP_KV_F16,
                                          &p->kv_bytes_per_token, err);
    if (rc)
        return rc;
    p->layer_bytes = calloc((size_t)c->n_layers, sizeof *p->layer_bytes);
    if (!p->layer_bytes)
        return wisp_err_set(err, WISP_E_NOMEM, "plan");
    for (int64_t i = 0; i < wisp_model_n_tensors(m); i++) {
        const wisp_tensor *t = wisp_model_tensor_at(m, i);
        char *end;
        long layer = -1;
        if (strncmp(t->name, "blk.", 4) == 0) {
            layer = strtol(t->name + 4, &end, 10);
            if (*end != '.' || layer < 0 || layer >= c->n_layers)
                layer = -1;
        }
        if (layer >= 0)
            p->layer_bytes[layer] += t->nbytes;
        else if (t == w->tok_embd)
            p->embd_bytes += t->nbytes;
        else if (t == w->output && !c->tied_output)
            p->output_bytes += t->nbytes;
        else
            p->other_bytes += t->nbytes;
    }
    for (int l = 0; l < c->n_layers; l++) {
        p->layer_bytes_total += p->layer_bytes[l];
        if (p->layer_bytes[l] > p->layer_bytes_max)
            p->layer_bytes_max = p->layer_bytes[l];
    }
    p->weight_bytes = p->layer_bytes_total + p->embd_bytes + p->output_bytes + p->other_bytes;
    p->kv_bytes = p->kv_bytes_per_token * (uint64_t)p->n_ctx * (uint64_t)p->n_seq;
    uint64_t tokens = (uint64_t)p->n_ctx * (uint64_t)p->n_seq;
    p->n_ubatch = tokens < 512 ? (int)tokens : 512;
    uint64_t per_token = 4 * (uint64_t)c->n_embd +
                         (uint64_t)(c->n_head + 2 * c->n_head_kv) * (uint64_t)c->head_dim +
                         3 * (uint64_t)c->n_ff;
    uint64_t act = (uint64_t)p->n_ubatch * per_token;
    uint64_t attn = (uint64_t)p->n_ubatch * (uint64_t)c->n_head * (uint64_t)p->n_ctx;
    uint64_t logits = (uint64_t)p->n_seq * (uint64_t)c->vocab_size;
    p->scratch_bytes = 4 * (act + attn + logits);
    p->host_bytes = p->weight_bytes + p->kv_bytes + p->scratch_bytes;
    p->device_bytes = p->weight_bytes + p->kv_bytes + p->scratch_bytes;
    return 0;
}

int wisp_model_plan_file(const char *path, int n_ctx, int n_seq, int kv_type, wisp_model_plan *out,
                         wisp_err *err)
{
    wisp_model *m;
    memset(out, 0, sizeof *out);
    int rc = wisp_model_open(path, NULL, &m, err);
    if (rc)
        return rc;
    rc = wisp_model_plan_model(m, n_ctx, n_seq, kv_type, out, err);
    wisp_model_close(m);
    return rc;
}

void wisp_model_plan_free(wisp_model_plan *p)
{
    if (p) {
        free(p->layer_bytes);
        p->layer_bytes = NULL;
    }
}
