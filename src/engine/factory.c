/*
 * factory.c - device choice, KV pool sizing and engine construction: see
 * factory.h.
 *
 * Engines other than the CPU's exist only in builds that compile them
 * (make CUDA=1); this file and the device listing are the only code outside
 * the engines themselves that looks at which ones did.
 */
#include "engine/factory.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/meminfo.h"
#include "engine/stages.h"
#include "model/plan.h"
#if WISP_CUDA
#include "engine/cuda/engine_cuda.h"
#endif

/* VRAM left free beside the weights, KV pool and scratch. */
#define CUDA_HEADROOM_BYTES ((uint64_t)512 << 20)

#if WISP_CUDA
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
    for (int i = 0; i < k && i < 8; i++)
        if (d[i].usable)
            return true;
    snprintf(why, n,
             k == 0 ? "no CUDA device found" : "no CUDA device of compute capability 8.0 or newer");
    return false;
}
#endif

/* Decides the engine: "cpu", "cuda", or "auto" (CUDA when a usable GPU is
 * there, else the CPU, saying why in note). */
static int choose_device(const char *dev, wisp_engine_made *m, wisp_err *err)
{
    if (!dev || !*dev)
        dev = "auto";
    snprintf(m->device, sizeof m->device, "cpu");
    if (strcmp(dev, "cpu") == 0)
        return 0;
    if (strcmp(dev, "cuda") != 0 && strcmp(dev, "auto") != 0)
        return wisp_err_set(err, WISP_E_INVALID, "unknown device \"%s\" (auto, cpu, cuda)", dev);
#if WISP_CUDA
    char why[WISP_ERR_MSG_MAX];
    if (cuda_usable(why, sizeof why)) {
        snprintf(m->device, sizeof m->device, "cuda");
        return 0;
    }
    if (strcmp(dev, "cuda") == 0)
        return wisp_err_set(err, WISP_E_DEVICE, "device \"cuda\" was requested but %s", why);
    snprintf(m->note, sizeof m->note, "auto: %s; using the CPU", why);
#else
    if (strcmp(dev, "cuda") == 0)
        return wisp_err_set(err, WISP_E_DEVICE,
                            "device \"cuda\" was requested but this wisp was built without CUDA "
                            "(rebuild with make CUDA=1)");
    snprintf(m->note, sizeof m->note, "auto: built without CUDA; using the CPU");
#endif
    return 0;
}

/* Sets how many KV blocks the chosen device holds beside the model, when
 * it has a limit of its own (a GPU's VRAM). Only the default pool is
 * bounded by it. */
static void device_limit(const wisp_engine_made *m, const wisp_model *model,
                         const wisp_engine_opts *eo, wisp_kv_pool_req *req)
{
#if WISP_CUDA
    if (strcmp(m->device, "cuda") == 0) {
        int fit = 0;
        wisp_err e = {0};
        if (wisp_cuda_plan_blocks(wisp_model_get_config(model), wisp_model_get_weights(model), eo,
                                  CUDA_HEADROOM_BYTES, &fit, &e) == 0) {
            req->device_limited = true;
            req->device_blocks = fit;
            return;
        }
        WISP_LOGW("cuda: cannot plan the KV pool in VRAM (%s); sizing it from host memory", e.msg);
    }
#else
    (void)m;
    (void)model;
    (void)eo;
    (void)req;
#endif
}

int wisp_engine_create(const wisp_model *model, const wisp_engine_spec *spec, wisp_engine **out,
                       wisp_engine_made *made, wisp_err *err)
{
    *out = NULL;
    wisp_engine_made m;
    memset(&m, 0, sizeof m);
    int rc = choose_device(spec->device, &m, err);
    if (rc)
        return rc;
    if (!model || !wisp_model_get_weights(model))
        return wisp_err_set(err, WISP_E_NO_MODEL, "engine: %s has no weights",
                            model ? wisp_model_get_path(model) : "no model");
    wisp_engine_opts eo = {
        .n_threads = spec->n_threads,
        .block_size = WISP_ENGINE_SERVE_BLOCK,
        .kv_type = spec->kv_type,
        .max_batch_tokens =
            spec->max_batch_tokens > 0 ? spec->max_batch_tokens : WISP_ENGINE_SERVE_BATCH_TOKENS,
        .max_seqs = spec->max_seqs > 0 ? spec->max_seqs : WISP_ENGINE_SERVE_SEQS,
    };
    wisp_kv_pool_req req = {
        .cfg = wisp_model_get_config(model),
        .kv_type = spec->kv_type,
        .n_ctx = spec->n_ctx,
        .block_size = eo.block_size,
        .kv_cache_mb = spec->kv_cache_mb,
        .contexts = WISP_ENGINE_SERVE_CONTEXTS,
        .mem_available = wisp_mem_available(),
    };
    wisp_kv_pool_plan pool;
    if ((rc = wisp_plan_kv_pool(&req, &pool, err)))
        return rc;
    if (spec->kv_cache_mb <= 0) {
        eo.n_blocks = pool.n_blocks;
        device_limit(&m, model, &eo, &req);
        if (req.device_limited && (rc = wisp_plan_kv_pool(&req, &pool, err)))
            return rc;
    }
    eo.n_blocks = pool.n_blocks;
    if (spec->placement) {
        snprintf(m.device, sizeof m.device, "%s", spec->placement->stages[0].device);
        rc = wisp_engine_stages_create(model, spec->placement, &eo, out, err);
    } else if (strcmp(m.device, "cuda") == 0) {
        wisp_placement one = {.strategy = WISP_PLACE_RESIDENT, .n_stages = 1};
        snprintf(one.stages[0].device, sizeof one.stages[0].device, "cuda:0");
        one.stages[0].layer_end = wisp_model_get_config(model)->n_layers;
        rc = wisp_engine_stages_create(model, &one, &eo, out, err);
    } else {
        rc = wisp_engine_cpu_create(model, &eo, out, err);
    }
    if (rc)
        return rc;
    m.n_blocks = pool.n_blocks;
    m.block_size = eo.block_size;
    m.kv_bytes = pool.bytes;
    if (made)
        *made = m;
    return 0;
}
