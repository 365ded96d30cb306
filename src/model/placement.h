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
     * device at once: two layer buffers for double buffering and, on a
     * GPU, the layers that fit beside them (the planner gives a GPU all
     * its memory spare beside the rest; the CPU gets the two buffers). */
    uint64_t weights_budget_bytes;
    uint64_t capacity_bytes; /* what the planner could use there: free
                                memory less the reserve */
} wisp_place_stage;

typedef struct wisp_placement {
    wisp_place_strategy strategy;
    int n_stages;
    wisp_place_stage stages[WISP_PLACE_MAX_STAGES];
    char reason[256]; /* why this placement, in words */
    /* The KV pool the placement was sized for: n_blocks blocks of
     * block_size tokens, every stage holding its layers' rows of each. */
    int n_blocks, block_size;
} wisp_placement;

/* The name of a strategy: "resident", "split", "stream". */
const char *wisp_place_strategy_name(wisp_place_strategy s);

/* Memory a GPU keeps free beside a placement (driver, cuBLAS workspace,
 * fragmentation): the larger of 2% of its free memory and 512 MiB. The
 * CPU keeps none (its free memory is MemAvailable, already net). */
#define WISP_PLACE_GPU_RESERVE_MIN ((uint64_t)512 << 20)
uint64_t wisp_place_reserve(const wisp_place_device *d);

/* What the planner is asked. */
typedef struct wisp_place_request {
    const wisp_model_plan *plan; /* layer, non-layer, KV and scratch bytes */
    /* "auto" (also NULL or ""): the GPUs in order, then the CPU; "cpu";
     * "cuda": every GPU (no layer on the CPU); "cuda:N": that GPU only. */
    const char *device;
    const wisp_place_device *devices; /* in order; the CPU may be anywhere */
    int n_devices;
    /* The KV pool: n_blocks blocks of block_size tokens. When min_blocks
     * (one context) is below n_blocks, a placement may shrink the pool
     * down to min_blocks to keep a better strategy (all on one GPU rather
     * than split); the pool of the result is then the largest that fits. */
    int n_blocks, min_blocks, block_size;
} wisp_place_request;

/* Chooses the placement: everything on the first eligible device; else
 * layers split over the eligible devices in order (GPUs first, the CPU
 * last, each layer's KV share on the device holding the layer, the
 * embeddings on stage 0 and the output head on the last stage; a device
 * that cannot hold one layer is skipped); else one device streaming the
 * layers through two layer buffers (a GPU keeping what else fits in its
 * spare memory resident); else WISP_E_TOO_LARGE, the message
 * naming every device's capacity, what the model needs and the shortfall
 * in MiB. WISP_E_INVALID for a device preference wisp does not know,
 * WISP_E_DEVICE when the preferred device is not in the list. */
int wisp_place_plan(const wisp_place_request *r, wisp_placement *out, wisp_err *err);

/* Sizes and checks a placement the caller chose (a device_map): `in`
 * gives each stage's device ("cpu", "cuda" = the first GPU, "cuda:N"),
 * layer range and weights budget, its strategy and reason; out is `in`
 * with every stage's device named as in r->devices ("cuda" becomes the
 * first GPU's name), its weight, KV and scratch bytes and capacity filled
 * the way wisp_place_plan fills its own (a streamed stage holds at most its
 * budget of its layers' weights), and the pool (shrunk down to
 * r->min_blocks when the full one does not fit). r->device is ignored.
 * Stages on the same device share its capacity. WISP_E_INVALID for
 * ranges that do not cover the model's layers in order, WISP_E_DEVICE
 * for a device not in r->devices, WISP_E_TOO_LARGE naming every device
 * the map uses, what its stages need, its usable memory and the
 * shortfall in MiB. */
int wisp_place_explicit(const wisp_place_request *r, const wisp_placement *in, wisp_placement *out,
                        wisp_err *err);

#endif
