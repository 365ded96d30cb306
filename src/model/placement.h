/*
 * placement.h - where a model's layers live: which device holds which
 * layer range and its share of the KV cache, or that layers are streamed
 * through a bounded weight buffer, or why the model does not fit.
 *
 * The planner (placement.c) is pure arithmetic over a wisp_model_plan and
 * a list of devices with their free memory, so every branch is tested
 * with injected device lists on any machine. model/plan reports the
 * placement it returns and model/load builds exactly that placement
 * (engine/stages.h), so the two cannot disagree.
 *
 * Stages run in order: stage 0 holds the token embeddings and its layer
 * range starts at 0; the last stage holds the output norm and head and
 * its range ends at n_layers; consecutive ranges touch. Each stage owns
 * the KV rows of its own layers for every block id (block tables are
 * shared by all stages).
 */
#ifndef WISP_PLACEMENT_H
#define WISP_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "model/plan.h"

#define WISP_PLACE_MAX_STAGES 16

typedef enum wisp_place_strategy {
    WISP_PLACE_RESIDENT = 0, /* one device holds everything */
    WISP_PLACE_SPLIT,        /* layer ranges over several devices, CPU last */
    WISP_PLACE_STREAM,       /* weights stay in host memory; layers are copied
                                into a bounded device-side buffer ahead of use */
} wisp_place_strategy;

/* A device the planner may use, with what it can give. */
typedef struct wisp_place_device {
    char name[16];       /* "cpu", "cuda:0", "cuda:1" ... */
    bool is_cpu;         /* the host: the last resort, no reserve */
    uint64_t free_bytes; /* free memory now (VRAM free, MemAvailable) */
} wisp_place_device;

/* One engine instance of a placement. */
typedef struct wisp_place_stage {
    char device[16];            /* a wisp_place_device name */
    int layer_begin, layer_end; /* layers [begin, end) */
    uint64_t weight_bytes;      /* weights resident on the device */
    uint64_t kv_bytes;          /* its layers' share of the KV pool */
    uint64_t scratch_bytes;     /* activations of one step */
    /* > 0 (WISP_PLACE_STREAM): the weights of its layers stay in host
     * memory and at most this many bytes of them are resident on the
     * device at once (two layer buffers for double buffering). */
    uint64_t weights_budget_bytes;
} wisp_place_stage;

typedef struct wisp_placement {
    wisp_place_strategy strategy;
    int n_stages;
    wisp_place_stage stages[WISP_PLACE_MAX_STAGES];
    char reason[256]; /* why this placement, in words */
} wisp_placement;

/* The name of a strategy: "resident", "split", "stream". */
const char *wisp_place_strategy_name(wisp_place_strategy s);

#endif
