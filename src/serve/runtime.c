/*
 * runtime.c - opening a model for serving: see runtime.h.
 *
 * The KV pool is the one memory decision made here: by default it holds
 * eight full contexts (so several editor requests and their cached
 * prefixes fit at once), capped at a quarter of the RAM available now and
 * never below one full context, which a single request may need.
 */
#include "serve/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "model/gguf.h"
#include "model/types.h"
#include "serve/weights_id.h"
#ifdef WISP_CUDA
#include "engine/cuda/engine_cuda.h"
#endif

#define DEFAULT_CTX_CAP 4096
#define DEFAULT_CONTEXTS_IN_POOL 8
#define BLOCK_SIZE 16
#define MAX_BATCH_TOKENS 512
#define MAX_SEQS 64

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* MemAvailable from /proc/meminfo in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb * 1024;
}

static size_t kv_bytes_per_token(const wisp_model_config *c, wisp_kv_type t)
{
    size_t row = (size_t)c->n_head_kv * (size_t)c->head_dim;
    size_t per_row;
    switch (t) {
    case WISP_KV_F32: per_row = row * 4; break;
    case WISP_KV_Q8_0: per_row = (row + 31) / 32 * 34; break;
    default: per_row = row * 2; break;
    }
    return 2 * (size_t)c->n_layers * per_row;
}

static int choose_blocks(const wisp_runtime_opts *o, const wisp_model_config *c, int n_ctx,
                         wisp_runtime *rt, wisp_err *err)
{
    size_t per_token = kv_bytes_per_token(c, o->kv_type);
    size_t per_block = per_token * BLOCK_SIZE;
    int64_t min_blocks = ((int64_t)n_ctx + BLOCK_SIZE - 1) / BLOCK_SIZE + 1;
    int64_t blocks;
    /* One context must fit in memory at all: an absurd n_ctx is refused
     * here, before a pool of many GiB is reserved for a tiny model. */
    uint64_t one_ctx = (uint64_t)min_blocks * per_block;
    uint64_t avail_now = strcmp(rt->device, "cpu") == 0 ? mem_available() : 0;
    if (avail_now > 0 && one_ctx > avail_now)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "n_ctx %d needs %.2f GiB of KV cache for one context (%zu bytes per "
                            "token), more than the %.2f GiB of memory available: lower n_ctx",
                            n_ctx, (double)one_ctx / (1 << 30), per_token,
                            (double)avail_now / (1 << 30));
    if (o->kv_cache_mb > 0) {
        blocks = (int64_t)((uint64_t)o->kv_cache_mb * 1024 * 1024 / per_block);
        if (blocks < min_blocks)
            return wisp_err_set(err, WISP_E_TOO_LARGE,
                                "kv_cache_mb %lld holds %lld tokens, less than one context of %d "
                                "tokens (%zu bytes per token): raise kv_cache_mb to at least %lld "
                                "or lower n_ctx",
                                (long long)o->kv_cache_mb, (long long)blocks * BLOCK_SIZE, n_ctx,
                                per_token,
                                (long long)((uint64_t)min_blocks * per_block / (1024 * 1024) + 1));
    } else {
        blocks = (int64_t)DEFAULT_CONTEXTS_IN_POOL * min_blocks;
        uint64_t avail = mem_available();
        if (avail > 0 && (uint64_t)blocks * per_block > avail / 4)
            blocks = (int64_t)(avail / 4 / per_block);
        if (blocks < min_blocks)
            blocks = min_blocks;
    }
    if (blocks > INT32_MAX / 2)
        blocks = INT32_MAX / 2;
    rt->n_kv_blocks = (int)blocks;
    rt->block_size = BLOCK_SIZE;
    rt->kv_bytes = (int64_t)((uint64_t)blocks * per_block);
    return 0;
}

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

#ifdef WISP_CUDA
/* True when a GPU this build's kernels run on is present; else why not. */
static bool cuda_usable(char *why, size_t n)
{
    wisp_cuda_device_info d[8];
    wisp_err e = {0};
    int k = wisp_cuda_devices(d, 8, &e);
    if (k < 0) {
        snprintf(why, n, "%s", e.msg);
        return false;
    }
    for (int i = 0; i < k; i++)
        if (d[i].usable)
            return true;
    snprintf(why, n, k == 0 ? "no CUDA device found"
                            : "no CUDA device of compute capability 8.0 or newer");
    return false;
}
#endif

/* Decides the engine: "cpu", "cuda", or "auto" (CUDA when a usable GPU is
 * there, else the CPU, saying why in device_note). */
static int choose_device(const char *dev, wisp_runtime *rt, wisp_err *err)
{
    if (strcmp(dev, "cpu") == 0) {
        snprintf(rt->device, sizeof rt->device, "cpu");
        return 0;
    }
    if (strcmp(dev, "cuda") != 0 && strcmp(dev, "auto") != 0)
        return wisp_err_set(err, WISP_E_INVALID, "unknown device \"%s\" (auto, cpu, cuda)", dev);
#ifdef WISP_CUDA
    char why[WISP_ERR_MSG_MAX];
    if (cuda_usable(why, sizeof why)) {
        snprintf(rt->device, sizeof rt->device, "cuda");
        return 0;
    }
    if (strcmp(dev, "cuda") == 0)
        return wisp_err_set(err, WISP_E_DEVICE, "device \"cuda\" was requested but %s", why);
    snprintf(rt->device_note, sizeof rt->device_note, "auto: %s; using the CPU", why);
#else
    if (strcmp(dev, "cuda") == 0)
        return wisp_err_set(err, WISP_E_DEVICE,
                            "device \"cuda\" was requested but this wisp was built without CUDA "
                            "(rebuild with make CUDA=1)");
    snprintf(rt->device_note, sizeof rt->device_note, "auto: built without CUDA; using the CPU");
#endif
    snprintf(rt->device, sizeof rt->device, "cpu");
    return 0;
}

static int open_engine(const wisp_runtime_opts *o, wisp_runtime *rt, wisp_err *err)
{
    int rc = choose_device(o->device && *o->device ? o->device : "auto", rt, err);
    if (rc)
        return rc;
    rc = choose_blocks(o, rt->cfg, rt->n_ctx, rt, err);
    if (rc)
        return rc;
    wisp_engine_opts eo = {
        .n_threads = o->n_threads,
        .block_size = rt->block_size,
        .n_blocks = rt->n_kv_blocks,
        .kv_type = o->kv_type,
        .max_batch_tokens = MAX_BATCH_TOKENS,
        .max_seqs = MAX_SEQS,
    };
#ifdef WISP_CUDA
    if (strcmp(rt->device, "cuda") == 0) {
        /* The default pool is bounded by free VRAM, not host RAM. */
        int fit = 0;
        if (o->kv_cache_mb <= 0 &&
            wisp_cuda_plan_blocks(rt->cfg, wisp_model_get_weights(rt->model), &eo,
                                  (uint64_t)512 << 20, &fit, err) == 0 &&
            fit < eo.n_blocks) {
            int min_blocks = (rt->n_ctx + BLOCK_SIZE - 1) / BLOCK_SIZE + 1;
            if (fit < min_blocks)
                return wisp_err_set(err, WISP_E_TOO_LARGE,
                                    "the GPU has room for %d KV blocks after the weights, less "
                                    "than one context of %d tokens needs (%d): lower n_ctx",
                                    fit, rt->n_ctx, min_blocks);
            eo.n_blocks = fit;
            rt->n_kv_blocks = fit;
            rt->kv_bytes = (int64_t)fit * (int64_t)kv_bytes_per_token(rt->cfg, o->kv_type) *
                           BLOCK_SIZE;
        }
        return wisp_engine_cuda_create(rt->model, &eo, &rt->engine, err);
    }
#endif
    return wisp_engine_cpu_create(rt->model, &eo, &rt->engine, err);
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
        double t0 = now_ms();
        bool reused;
        identity = wisp_weights_identity_memo(rt->model, identity, &rt->stamp, o->cache_dir,
                                              &reused);
        WISP_LOGI("prefix cache identity over the weights: %s, %.0f ms",
                  reused ? "file unchanged since it was hashed" : "hashed", now_ms() - t0);
    }
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
    double t0 = now_ms();
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
    int train = rt->cfg->n_ctx_train > 0 ? rt->cfg->n_ctx_train : DEFAULT_CTX_CAP;
    rt->n_ctx = o->n_ctx > 0 ? o->n_ctx : (train < DEFAULT_CTX_CAP ? train : DEFAULT_CTX_CAP);
    if (rt->n_ctx > WISP_RUNTIME_MAX_CTX) {
        rc = wisp_err_set(err, WISP_E_TOO_LARGE, "n_ctx %d is more than wisp supports (%d tokens)",
                          rt->n_ctx, WISP_RUNTIME_MAX_CTX);
        goto fail;
    }
    if (!wisp_model_is_vocab_only(rt->model)) {
        rc = open_engine(o, rt, err);
        if (rc)
            goto fail;
        rc = open_sched(o, rt, err);
        if (rc)
            goto fail;
    } else {
        snprintf(rt->device, sizeof rt->device, "none");
    }
    rt->load_ms = now_ms() - t0;
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
    const struct { const char *name; int32_t id; } rows[] = {
        {"bos", s->bos}, {"eos", s->eos}, {"eot", s->eot}, {"unk", s->unk}, {"pad", s->pad},
        {"fim_prefix", s->fim_pre}, {"fim_suffix", s->fim_suf}, {"fim_middle", s->fim_mid},
        {"fim_pad", s->fim_pad}, {"fim_repo", s->fim_rep}, {"fim_sep", s->fim_sep},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        json_object_set_new(o, rows[i].name, rows[i].id >= 0 ? json_integer(rows[i].id) : json_null());
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
    json_t *tk = json_pack("{s:s, s:s, s:i, s:b, s:b}", "model", wisp_tokenizer_model_name(tok),
                           "pre", wisp_tokenizer_pre_name(tok), "vocab_size",
                           (int)wisp_tokenizer_n_vocab(tok), "add_bos", wisp_tokenizer_add_bos(tok),
                           "add_eos", wisp_tokenizer_add_eos(tok));
    json_object_set_new(tk, "special", special_ids(tok));
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    json_object_set_new(tk, "fim", json_boolean(sp->fim_pre >= 0 && sp->fim_suf >= 0 &&
                                                 sp->fim_mid >= 0));
    json_t *info = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:o, s:o, s:s}",
        "path", wisp_model_get_path(rt->model), "format",
        wisp_model_get_format(rt->model) == WISP_FORMAT_GGUF ? "gguf" : "safetensors",
        "architecture", c->arch_name, "name", c->name, "n_params",
        (json_int_t)wisp_model_n_params(rt->model), "n_layers", c->n_layers, "n_embd", c->n_embd,
        "n_head", c->n_head, "n_head_kv", c->n_head_kv, "n_ff", c->n_ff, "n_ctx_train",
        c->n_ctx_train, "n_ctx", rt->n_ctx, "vocab_size", c->vocab_size, "file_bytes",
        (json_int_t)wisp_model_file_bytes(rt->model), "tensor_types", types, "tokenizer", tk,
        "device", rt->device);
    json_object_set_new(info, "vocab_only", json_boolean(wisp_model_is_vocab_only(rt->model)));
    if (rt->device_note[0])
        json_object_set_new(info, "device_note", json_string(rt->device_note));
    json_object_set_new(info, "kv_cache",
                        json_pack("{s:i, s:i, s:I}", "blocks", rt->n_kv_blocks, "block_size",
                                  rt->block_size, "bytes", (json_int_t)rt->kv_bytes));
    json_object_set_new(info, "load_ms", json_real(rt->load_ms));
    return info;
}
