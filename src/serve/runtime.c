/*
 * runtime.c - opening a model for serving: see runtime.h.
 *
 * The context size is decided here; the device, the engine and its KV pool
 * come from the engine factory (engine/factory.h), which `wisp bench`
 * shares.
 */
#include "serve/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/factory.h"
#include "engine/warmup.h"
#include "kv/hash.h"
#include "model/gguf.h"
#include "model/types.h"
#include "remote/remote.h"
#include "serve/placement_json.h"
#include "serve/weights_id.h"

#define DEFAULT_CTX_CAP 4096

static int open_tokenizer(wisp_runtime *rt, wisp_err *err)
{
    const wisp_gguf *g = wisp_model_get_gguf(rt->model);
    if (g)
        return wisp_tokenizer_from_gguf(g, &rt->tok, err);
    const char *dir = wisp_model_get_hf_dir(rt->model);
    if (!dir)
        return wisp_err_set(err, WISP_E_FORMAT, "the model has no tokenizer");
    return wisp_tokenizer_from_hf(dir, &rt->tok, err);
}

/* The engine, its device and its KV pool come from the engine factory, the
 * one the benchmark uses too. */
static int open_engine(const wisp_runtime_opts *o, wisp_runtime *rt, wisp_err *err)
{
    wisp_engine_spec spec = {
        .device = o->device,
        .n_threads = o->n_threads,
        .kv_type = o->kv_type,
        .f16_as_bf16 = o->f16_as_bf16,
        .n_ctx = rt->n_ctx,
        .kv_cache_mb = o->kv_cache_mb,
        .device_map = &o->device_map,
    };
    wisp_engine_made made;
    int rc = wisp_engine_create(rt->model, &spec, &rt->engine, &made, err);
    if (rc)
        return rc;
    snprintf(rt->device, sizeof rt->device, "%s", made.device);
    snprintf(rt->device_note, sizeof rt->device_note, "%s", made.note);
    rt->n_kv_blocks = made.n_blocks;
    rt->block_size = made.block_size;
    rt->kv_bytes = (int64_t)made.kv_bytes;
    rt->placement = made.placement;
    if (rt->engine->ops->get_stats)
        rt->engine->ops->get_stats(rt->engine->ctx, &rt->engine_stats);
    return 0;
}

/* Before the scheduler exists: the warm-up step writes KV block 0, which
 * a prefix cache loaded from cache_dir could otherwise hold. */
static int warm_up(const wisp_runtime_opts *o, wisp_runtime *rt, wisp_err *err)
{
    rt->warmup_ms = -1;
    if (o->skip_warmup)
        return 0;
    double t0 = wisp_now_ms();
    int32_t bos = wisp_tokenizer_special(rt->tok)->bos;
    int rc = wisp_engine_warmup(rt->engine, rt->model, bos, err);
    if (rc) {
        wisp_err_prefix(err, "warm-up");
        return rc;
    }
    rt->warmup_ms = wisp_now_ms() - t0;
    return 0;
}

int wisp_runtime_n_ctx(const wisp_model_config *c, int requested)
{
    if (requested > 0)
        return requested;
    int train = c->n_ctx_train > 0 ? c->n_ctx_train : DEFAULT_CTX_CAP;
    return train < DEFAULT_CTX_CAP ? train : DEFAULT_CTX_CAP;
}

static int open_sched(const wisp_runtime_opts *o, wisp_runtime *rt, wisp_err *err)
{
    size_t host = 0;
    if (o->host_cache_mb > 0)
        host = (size_t)o->host_cache_mb * 1024 * 1024;
    else if (o->host_cache_mb < 0)
        host = (size_t)rt->kv_bytes; /* as large again as the primary pool */
    uint64_t identity = wisp_model_identity(rt->model);
    if (o->cache_dir) {
        /* A cache on disk must never serve KV of other weights. */
        double t0 = wisp_now_ms();
        bool reused;
        identity =
            wisp_weights_identity_memo(rt->model, identity, &rt->stamp, o->cache_dir, &reused);
        WISP_LOGI("prefix cache identity over the weights: %s, %.0f ms",
                  reused ? "file unchanged since it was hashed" : "hashed", wisp_now_ms() - t0);
    }
    /* KV computed in BF16 (f16_as_bf16) is not the exact path's KV: a
     * cache on disk written by one must not serve the other. */
    if (rt->engine_stats.bf16_tensors > 0)
        identity = wisp_hash64("f16_as_bf16", 11, identity);
    wisp_sched_opts so = {
        .model_identity = identity,
        .n_vocab = rt->n_vocab,
        .n_ctx = rt->n_ctx,
        .max_running = o->max_running,
        .max_queued = o->max_queued,
        .host_cache_bytes = host,
        .cache_dir = o->cache_dir,
    };
    return wisp_sched_create(rt->engine, &so, &rt->sched, err);
}

int wisp_runtime_open(const wisp_runtime_opts *o, wisp_runtime **out, wisp_err *err)
{
    double t0 = wisp_now_ms();
    wisp_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    /* Before the file is opened, so a change during the load is noticed. */
    wisp_file_stamp_take(o->path, &rt->stamp);
    wisp_model_open_opts mo = {
        .vocab_only = true,
        .progress = o->progress,
        .progress_ud = o->progress_ud,
    };
    int rc = wisp_model_open(o->path, &mo, &rt->model, err);
    if (rc)
        goto fail;
    rt->cfg = wisp_model_get_config(rt->model);
    rc = open_tokenizer(rt, err);
    if (rc) {
        wisp_err_prefix(err, "%s: tokenizer", o->path);
        goto fail;
    }
    rt->n_vocab = rt->cfg->vocab_size;
    rt->n_ctx = wisp_runtime_n_ctx(rt->cfg, o->n_ctx);
    rt->f16_as_bf16 = o->f16_as_bf16;
    if (rt->n_ctx > WISP_RUNTIME_MAX_CTX) {
        rc = wisp_err_set(err, WISP_E_TOO_LARGE, "n_ctx %d is more than wisp supports (%d tokens)",
                          rt->n_ctx, WISP_RUNTIME_MAX_CTX);
        goto fail;
    }
    if (!wisp_model_is_vocab_only(rt->model)) {
        rc = open_engine(o, rt, err);
        if (rc)
            goto fail;
        rc = warm_up(o, rt, err);
        if (rc)
            goto fail;
        rc = open_sched(o, rt, err);
        if (rc)
            goto fail;
    } else {
        snprintf(rt->device, sizeof rt->device, "none");
    }
    rt->load_ms = wisp_now_ms() - t0;
    WISP_LOGI("loaded %s: %s, %d layers, n_ctx %d, %s engine, KV %d blocks x %d tokens "
              "(%.1f MiB), %.0f ms",
              o->path, rt->cfg->arch_name, rt->cfg->n_layers, rt->n_ctx, rt->device,
              rt->n_kv_blocks, rt->block_size, (double)rt->kv_bytes / (1024.0 * 1024.0),
              rt->load_ms);
    *out = rt;
    return 0;
fail:
    wisp_runtime_close(rt);
    return rc;
}

void wisp_runtime_close(wisp_runtime *rt)
{
    if (!rt)
        return;
    if (rt->remote) /* answers every call still out */
        wisp_remote_close(rt->remote);
    if (rt->sched)
        wisp_sched_destroy(rt->sched);
    if (rt->engine)
        wisp_engine_destroy(rt->engine);
    if (rt->tok)
        wisp_tokenizer_free(rt->tok);
    if (rt->model)
        wisp_model_close(rt->model);
    free(rt);
}

static json_t *special_ids(const wisp_tokenizer *tok)
{
    const wisp_tok_special *s = wisp_tokenizer_special(tok);
    json_t *o = json_object();
    const struct {
        const char *name;
        int32_t id;
    } rows[] = {
        {"bos", s->bos},
        {"eos", s->eos},
        {"eot", s->eot},
        {"unk", s->unk},
        {"pad", s->pad},
        {"fim_prefix", s->fim_pre},
        {"fim_suffix", s->fim_suf},
        {"fim_middle", s->fim_mid},
        {"fim_pad", s->fim_pad},
        {"fim_repo", s->fim_rep},
        {"fim_sep", s->fim_sep},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        json_object_set_new(o, rows[i].name,
                            rows[i].id >= 0 ? json_integer(rows[i].id) : json_null());
    return o;
}

json_t *wisp_runtime_info(const wisp_runtime *rt)
{
    const wisp_model_config *c = rt->cfg;
    int64_t counts[WISP_TYPE_COUNT];
    wisp_model_type_counts(rt->model, counts);
    json_t *types = json_object();
    for (int t = 0; t < WISP_TYPE_COUNT; t++)
        if (counts[t] > 0)
            json_object_set_new(types, wisp_type_name(t), json_integer(counts[t]));
    const wisp_tokenizer *tok = rt->tok;
    json_t *tk =
        json_pack("{s:s, s:s, s:i, s:b, s:b}", "model", wisp_tokenizer_model_name(tok), "pre",
                  wisp_tokenizer_pre_name(tok), "vocab_size", (int)wisp_tokenizer_n_vocab(tok),
                  "add_bos", wisp_tokenizer_add_bos(tok), "add_eos", wisp_tokenizer_add_eos(tok));
    json_object_set_new(tk, "special", special_ids(tok));
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    json_object_set_new(tk, "fim",
                        json_boolean(sp->fim_pre >= 0 && sp->fim_suf >= 0 && sp->fim_mid >= 0));
    json_t *info =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:o, "
                  "s:o, s:s}",
                  "path", wisp_model_get_path(rt->model), "format",
                  wisp_model_get_format(rt->model) == WISP_FORMAT_GGUF ? "gguf" : "safetensors",
                  "architecture", c->arch_name, "name", c->name, "n_params",
                  (json_int_t)wisp_model_n_params(rt->model), "n_layers", c->n_layers, "n_embd",
                  c->n_embd, "n_head", c->n_head, "n_head_kv", c->n_head_kv, "n_ff", c->n_ff,
                  "n_ctx_train", c->n_ctx_train, "n_ctx", rt->n_ctx, "vocab_size", c->vocab_size,
                  "file_bytes", (json_int_t)wisp_model_file_bytes(rt->model), "tensor_types", types,
                  "tokenizer", tk, "device", rt->device);
    json_object_set_new(info, "vocab_only", json_boolean(wisp_model_is_vocab_only(rt->model)));
    if (rt->device_note[0])
        json_object_set_new(info, "device_note", json_string(rt->device_note));
    json_object_set_new(info, "kv_cache",
                        json_pack("{s:i, s:i, s:I}", "blocks", rt->n_kv_blocks, "block_size",
                                  rt->block_size, "bytes", (json_int_t)rt->kv_bytes));
    json_object_set_new(info, "load_ms", json_real(rt->load_ms));
    if (rt->engine) {
        json_object_set_new(info, "placement", wisp_placement_json(&rt->placement));
        json_object_set_new(info, "memory",
                            wisp_placement_memory_json(&rt->placement, &rt->engine_stats));
    }
    /* Asked for and where it applied: the CPU engine takes it only with
     * AVX512-BF16 and repacked weights, and only F16 / BF16 tensors. */
    json_object_set_new(info, "f16_as_bf16",
                        json_pack("{s:b, s:i}", "requested", rt->f16_as_bf16, "tensors",
                                  rt->engine ? rt->engine_stats.bf16_tensors : 0));
    json_object_set_new(info, "warmup_ms",
                        rt->engine && rt->warmup_ms >= 0 ? json_real(rt->warmup_ms) : json_null());
    return info;
}
