/*
 * factory.c - placement, KV pool sizing and engine construction: see
 * factory.h.
 *
 * The automatic path asks the planner (model/placement.h) with the
 * devices' free memory now and builds its answer through the staged
 * engine (engine/stages.h); model/plan asks wisp_engine_place the same
 * question, so the two cannot disagree. Engines other than the CPU's exist
 * only in builds that compile them (make CUDA=1); this file and the device
 * listing are the only code outside the engines themselves that looks at
 * which ones did.
 */
#include "engine/factory.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "engine/cpu/stream.h"
#include "engine/cuda/layer_image.h"
#include "engine/stages.h"
#include "model/plan.h"
#if WISP_CUDA
#include "engine/cuda/engine_cuda.h"
#endif

static bool is_auto(const char *dev) { return !dev || !*dev || strcmp(dev, "auto") == 0; }

/* One spelling rule for device names, the one device_map entries follow. */
static bool is_cuda_name(const char *dev)
{
    return strcmp(dev, "cpu") != 0 && wisp_device_map_name_ok(dev);
}

#if WISP_CUDA
/* True when a GPU this build's kernels run on is present; else why not. */
static bool cuda_usable(char *why, size_t n)
{
    wisp_cuda_device_info d[WISP_ENGINE_MAX_DEVICES];
    wisp_err e = {0};
    int k = wisp_cuda_devices(d, WISP_ENGINE_MAX_DEVICES, &e);
    if (k < 0) {
        snprintf(why, n, "%s", e.msg);
        return false;
    }
    for (int i = 0; i < k && i < WISP_ENGINE_MAX_DEVICES; i++)
        if (d[i].usable)
            return true;
    snprintf(why, n,
             k == 0 ? "no CUDA device found" : "no CUDA device of compute capability 8.0 or newer");
    return false;
}
#endif

/* Checks the device preference against this build; for "auto" without a
 * usable GPU, note says why the CPU runs the model. */
static int check_device(const char *dev, char *note, size_t cap, wisp_err *err)
{
    if (is_auto(dev) || strcmp(dev, "cpu") == 0) {
#if !WISP_CUDA
        if (is_auto(dev))
            snprintf(note, cap, "auto: built without CUDA; using the CPU");
#else
        char why[WISP_ERR_MSG_MAX];
        if (is_auto(dev) && !cuda_usable(why, sizeof why))
            snprintf(note, cap, "auto: %s; using the CPU", why);
#endif
        return 0;
    }
    if (!is_cuda_name(dev))
        return wisp_err_set(err, WISP_E_INVALID, "unknown device \"%s\" (auto, cpu, cuda, cuda:N)",
                            dev);
#if WISP_CUDA
    char why[WISP_ERR_MSG_MAX];
    if (!cuda_usable(why, sizeof why))
        return wisp_err_set(err, WISP_E_DEVICE, "device \"%s\" was requested but %s", dev, why);
    return 0;
#else
    return wisp_err_set(err, WISP_E_DEVICE,
                        "device \"%s\" was requested but this wisp was built without CUDA "
                        "(rebuild with make CUDA=1)",
                        dev);
#endif
}

/* This build's devices, less the GPUs whose engine cannot run the model
 * (a weight type without kernels): with "auto" note says so, an explicit
 * "cuda" fails with the engine's reason. */
static int probe_devices(const wisp_model *model, const char *dev, wisp_place_device *out,
                         char *note, size_t cap, wisp_err *err)
{
    int n = wisp_engine_place_devices(out, WISP_ENGINE_MAX_DEVICES);
#if WISP_CUDA
    if (n > 1) {
        wisp_err e = {0};
        if (wisp_cuda_check_model(wisp_model_get_config(model), wisp_model_get_weights(model),
                                  &e)) {
            if (!is_auto(dev) && strcmp(dev, "cpu") != 0)
                return wisp_err_set(err, e.code, "%s", e.msg);
            if (is_auto(dev))
                snprintf(note, cap,
                         "auto: the CUDA engine cannot run this model (%s); using the CPU", e.msg);
            n = 1; /* the CPU is always first */
        }
    }
#else
    (void)model;
    (void)dev;
    (void)note;
    (void)cap;
    (void)err;
#endif
    return n;
}

static bool on_cpu_only(const wisp_placement *p)
{
    for (int i = 0; i < p->n_stages; i++)
        if (strcmp(p->stages[i].device, "cpu") != 0)
            return false;
    return true;
}

static bool any_gpu(const wisp_place_device *d, int n)
{
    for (int i = 0; i < n; i++)
        if (!d[i].is_cpu)
            return true;
    return false;
}

static uint64_t cpu_free(const wisp_place_device *d, int n)
{
    for (int i = 0; i < n; i++)
        if (d[i].is_cpu)
            return d[i].free_bytes;
    return 0;
}

static wisp_engine_opts engine_opts(const wisp_engine_spec *spec)
{
    wisp_engine_opts eo = {
        .n_threads = spec->n_threads,
        .block_size = WISP_ENGINE_SERVE_BLOCK,
        .kv_type = spec->kv_type,
        .f16_as_bf16 = spec->f16_as_bf16,
        .max_batch_tokens =
            spec->max_batch_tokens > 0 ? spec->max_batch_tokens : WISP_ENGINE_SERVE_BATCH_TOKENS,
        .max_seqs = spec->max_seqs > 0 ? spec->max_seqs : WISP_ENGINE_SERVE_SEQS,
    };
    return eo;
}

static wisp_kv_pool_req pool_req(const wisp_model *model, const wisp_engine_spec *spec,
                                 uint64_t mem_available)
{
    wisp_kv_pool_req req = {
        .cfg = wisp_model_get_config(model),
        .kv_type = spec->kv_type,
        .n_ctx = spec->n_ctx,
        .block_size = WISP_ENGINE_SERVE_BLOCK,
        .kv_cache_mb = spec->kv_cache_mb,
        .contexts = WISP_ENGINE_SERVE_CONTEXTS,
        .mem_available = mem_available,
    };
    return req;
}

/* The explicit placement spec asks for, if any: spec->placement, else the
 * placement of spec->device_map for the model. */
static int explicit_of(const wisp_model *model, const wisp_engine_spec *spec, wisp_placement *buf,
                       const wisp_placement **out, wisp_err *err)
{
    *out = spec->placement;
    if (*out || !wisp_device_map_is_set(spec->device_map))
        return 0;
    int rc = wisp_device_map_placement(spec->device_map, wisp_model_get_config(model)->n_layers,
                                       buf, err);
    if (rc == 0)
        *out = buf;
    return rc;
}

/* A stage streaming its layers needs two of its largest layers in its
 * budget (a CUDA stage: unless all its layers fit), counted in its
 * engine's own buffer layout: refused here so that model/plan answers as
 * model/load does. A CUDA stage the planner chose is left to the engine,
 * whose refusal model/load answers by running on the CPU. */
static int check_budgets(const wisp_model *model, const wisp_placement *p, bool given,
                         wisp_err *err)
{
    for (int i = 0; i < p->n_stages; i++) {
        const wisp_place_stage *s = &p->stages[i];
        int rc = 0;
        if (s->weights_budget_bytes == 0)
            continue;
        if (strcmp(s->device, "cpu") == 0) {
            rc = wisp_cpu_stream_check_budget(wisp_model_get_weights(model), s->layer_begin,
                                              s->layer_end, s->weights_budget_bytes, err);
        } else if (given) {
            wisp_stream_plan sp;
            rc = wisp_cuda_stream_plan_init(wisp_model_get_config(model),
                                            wisp_model_get_weights(model), s->layer_begin,
                                            s->layer_end, s->weights_budget_bytes, &sp, err);
            wisp_stream_plan_free(&sp);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int wisp_engine_place(const wisp_model *model, const wisp_engine_spec *spec, wisp_engine_made *m,
                      wisp_err *err)
{
    memset(m, 0, sizeof *m);
    const char *dev = is_auto(spec->device) ? "auto" : spec->device;
    wisp_place_device probed[WISP_ENGINE_MAX_DEVICES];
    const wisp_place_device *devs = spec->devices;
    int n = spec->n_devices;
    int rc;
    if (!model || !wisp_model_get_weights(model))
        return wisp_err_set(err, WISP_E_NO_MODEL, "engine: %s has no weights",
                            model ? wisp_model_get_path(model) : "no model");
    wisp_placement map_placement;
    const wisp_placement *given;
    if ((rc = explicit_of(model, spec, &map_placement, &given, err)))
        return rc;
    if (!devs && !given && (rc = check_device(dev, m->note, sizeof m->note, err)))
        return rc;
    if (!devs) {
        /* A map names its devices itself: each stage's engine says why
         * it cannot run the model there. */
        n = given ? wisp_engine_place_devices(probed, WISP_ENGINE_MAX_DEVICES)
                  : probe_devices(model, dev, probed, m->note, sizeof m->note, err);
        if (n < 0)
            return n;
        devs = probed;
    }
    m->n_devices = n < WISP_ENGINE_MAX_DEVICES ? n : WISP_ENGINE_MAX_DEVICES;
    memcpy(m->devices, devs, sizeof m->devices[0] * (size_t)m->n_devices);
    wisp_kv_pool_req req = pool_req(model, spec, cpu_free(devs, n));
    wisp_kv_pool_plan pool;
    if ((rc = wisp_plan_kv_pool(&req, &pool, err)))
        return rc;
    wisp_model_plan pl;
    if ((rc = wisp_model_plan_model(model, spec->n_ctx, 1, (int)spec->kv_type, &pl, err)))
        return rc;
    wisp_place_request pr = {
        .plan = &pl,
        .device = dev,
        .devices = devs,
        .n_devices = n,
        .n_blocks = pool.n_blocks,
        /* A pool of kv_cache_mb stays that size; the default may shrink
         * to one context to keep a faster placement (or, for an explicit
         * one, to fit at all). */
        .min_blocks = spec->kv_cache_mb > 0 ? pool.n_blocks : pool.min_blocks,
        .block_size = req.block_size,
    };
    rc = given ? wisp_place_explicit(&pr, given, &m->placement, err)
               : wisp_place_plan(&pr, &m->placement, err);
    wisp_model_plan_free(&pl);
    if (rc)
        return rc;
    const wisp_placement *p = &m->placement;
    if ((rc = check_budgets(model, p, given != NULL, err)))
        return rc;
    if (!given && strcmp(dev, "auto") == 0 && any_gpu(devs, n) && on_cpu_only(p))
        snprintf(m->note, sizeof m->note, "auto: %s; using the CPU", p->reason);
    snprintf(m->device, sizeof m->device, "%s", p->stages[0].device);
    m->n_blocks = p->n_blocks;
    m->block_size = p->block_size;
    m->kv_bytes = (uint64_t)p->n_blocks * (uint64_t)p->block_size * pool.bytes_per_token;
    return 0;
}

int wisp_engine_create(const wisp_model *model, const wisp_engine_spec *spec, wisp_engine **out,
                       wisp_engine_made *made, wisp_err *err)
{
    *out = NULL;
    wisp_engine_made m;
    memset(&m, 0, sizeof m);
    int rc;
    const bool given = spec->placement || wisp_device_map_is_set(spec->device_map);
    if ((rc = wisp_engine_place(model, spec, &m, err)) == 0) {
        wisp_engine_opts eo = engine_opts(spec);
        eo.n_blocks = m.n_blocks;
        rc = wisp_engine_stages_create(model, &m.placement, &eo, out, err);
        if (rc && !given && is_auto(spec->device) && !on_cpu_only(&m.placement)) {
            /* The GPU engine refused what the arithmetic allowed: the
             * model still runs, on the CPU. */
            char why[WISP_ERR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            WISP_LOGW("auto: %s; using the CPU", why);
            wisp_engine_spec cpu = *spec;
            cpu.device = "cpu";
            if ((rc = wisp_engine_place(model, &cpu, &m, err)) == 0) {
                eo.n_blocks = m.n_blocks;
                rc = wisp_engine_stages_create(model, &m.placement, &eo, out, err);
                snprintf(m.note, sizeof m.note, "auto: %s; using the CPU", why);
            }
        }
    }
    if (rc)
        return rc;
    snprintf(m.device, sizeof m.device, "%s", (*out)->ops->name);
    if (made)
        *made = m;
    return 0;
}
