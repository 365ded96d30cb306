/*
 * factory.h - which engines this build has, and building the one a caller
 * asks for.
 *
 * The one place that knows which engines were compiled in: the server
 * (serve/runtime.c), `wisp bench` and the device listing of initialize all
 * go through it, so none of them carries build conditionals, and the
 * benchmark measures exactly the engine the server would serve: same device
 * choice, same KV pool sizing (model/plan.h), same batch limits.
 */
#ifndef WISP_ENGINE_FACTORY_H
#define WISP_ENGINE_FACTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/device_map.h"
#include "engine/engine.h"
#include "model/kv_type.h"
#include "model/model.h"
#include "model/placement.h"

#define WISP_ENGINE_MAX_DEVICES 16

typedef struct wisp_engine_device {
    char kind[8]; /* "cpu", "cuda" */
    char name[128];
    uint64_t memory_bytes; /* RAM for the CPU, VRAM for a GPU */
} wisp_engine_device;

/* Fills out[] with the devices this build can compute on: the CPU first,
 * then every GPU of the engines built in. Returns how many (at most max). */
int wisp_engine_devices(wisp_engine_device *out, int max);

/* Fills out[] with the devices a placement may use and their free memory
 * now: the CPU ("cpu", MemAvailable) first, then every usable GPU of the
 * engines built in ("cuda:0", ... with free VRAM). Returns how many. */
int wisp_engine_place_devices(wisp_place_device *out, int max);

/* Batch limits of a serving engine: tokens per forward step and sequences
 * per step. */
#define WISP_ENGINE_SERVE_BATCH_TOKENS 512
#define WISP_ENGINE_SERVE_SEQS         64
#define WISP_ENGINE_SERVE_BLOCK        16
/* The default KV pool holds this many full contexts (so several requests
 * and their cached prefixes fit at once), capped at a quarter of the RAM
 * available and, on a GPU, at what fits beside the weights. */
#define WISP_ENGINE_SERVE_CONTEXTS 8

typedef struct wisp_engine_spec {
    const char *device; /* "auto" (also NULL or ""), "cpu", "cuda", "cuda:N" */
    int n_threads;      /* 0: physical cores */
    wisp_kv_type kv_type;
    /* CPU stages: compute F16 / BF16 weights in BF16 (engine.h's
     * wisp_engine_opts.f16_as_bf16); GPU stages ignore it. */
    bool f16_as_bf16;
    int n_ctx;            /* tokens one sequence may hold (> 0) */
    int64_t kv_cache_mb;  /* > 0: KV pool size; else the default pool */
    int max_batch_tokens; /* 0: WISP_ENGINE_SERVE_BATCH_TOKENS */
    int max_seqs;         /* 0: WISP_ENGINE_SERVE_SEQS */
    /* Non-NULL: build exactly this placement (engine/stages.h) instead of
     * choosing a device, sized and checked against the devices' memory
     * (wisp_place_explicit); device is then ignored. */
    const wisp_placement *placement;
    /* Set (wisp_device_map_is_set) and placement NULL: the placement of
     * this map for the model (wisp_device_map_placement), as above. */
    const wisp_device_map *device_map;
    /* Non-NULL: plan over these devices instead of this build's own
     * (wisp_engine_place_devices); for tests and what-if plans. */
    const wisp_place_device *devices;
    int n_devices;
} wisp_engine_spec;

typedef struct wisp_engine_made {
    char device[16];                  /* the engine built: "cpu", "cuda", ... */
    char note[WISP_ERR_MSG_MAX + 64]; /* why "auto" chose it, when that matters; else "" */
    int n_blocks, block_size;         /* the KV pool */
    uint64_t kv_bytes;
    wisp_placement placement; /* where every layer and its KV share live */
    /* The devices planned over and their free memory then. */
    wisp_place_device devices[WISP_ENGINE_MAX_DEVICES];
    int n_devices;
} wisp_engine_made;

/* The placement wisp_engine_create builds for spec: the model's memory
 * plan at spec's n_ctx, the KV pool, the devices and their free memory,
 * and the planner (model/placement.h), which chooses the placement or,
 * for an explicit one (spec->placement, spec->device_map), sizes it and
 * checks that every device holds its stages. model/plan
 * answers with it, so it reports what model/load does. Fills made's
 * placement, pool and note (device is the first stage's). Fails as
 * wisp_engine_create does, and with WISP_E_TOO_LARGE when nothing holds
 * the model (the planner's message). */
int wisp_engine_place(const wisp_model *model, const wisp_engine_spec *spec, wisp_engine_made *made,
                      wisp_err *err);

/* Chooses the placement and the KV pool for spec (wisp_engine_place) and
 * builds the engine for model (which must outlive it). With "auto", a
 * placement on a GPU that its engine refuses to build (a weight type
 * without kernels, VRAM taken since it was planned) falls back to the
 * CPU, note saying why. Fails with WISP_E_INVALID for an unknown
 * device name, WISP_E_DEVICE when the device asked for is not there (or
 * not built in), WISP_E_TOO_LARGE when the KV pool cannot hold one context,
 * or the engine's own error. made may be NULL. */
int wisp_engine_create(const wisp_model *model, const wisp_engine_spec *spec, wisp_engine **out,
                       wisp_engine_made *made, wisp_err *err);

#endif
