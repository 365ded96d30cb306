/*
 * stream_plan.h - the layer-streaming scheduler both engines act on: which
 * layers of a stage stay resident under a weights budget and which are
 * streamed, how big the two layer buffers are, and which layer goes into
 * which buffer when.
 *
 * A stage streaming its layers keeps at most `budget` bytes of them where
 * it computes (a GPU's memory, the CPU engine's weight arena): two layer
 * buffers ("slots"), each the size of the stage's largest layer, and,
 * where the caller lets it, whole layers kept resident in what the budget
 * leaves beside the slots. The streamed layers go through the slots in
 * compute order, cyclically (the last streamed layer of a step is
 * followed by the first of the next): layer l+1 is copied into one slot
 * while layer l computes from the other, and releasing a layer points its
 * slot at the streamed layer after next.
 *
 * The schedule is plain data and decisions, no threads and no copies:
 * the CPU engine's copy thread and the CUDA engine's copy stream ask it
 * what to fill, and compute asks it which slot holds a layer, so the
 * scheduler the CPU tests exercise (bit-identical logits, bytes within
 * the budget) is the one the GPU runs. Compiled in every build; tested in
 * tests/unit/test_stream_plan.c.
 */
#ifndef WISP_STREAM_PLAN_H
#define WISP_STREAM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define WISP_STREAM_SLOTS 2

/* What the caller may keep resident. */
typedef enum wisp_stream_policy {
    /* Every layer streams: the arena is the two slots and nothing else
     * (the CPU engine, whose layers are in memory already in the file
     * mapping; a resident copy would only add to that). */
    WISP_STREAM_ALL = 0,
    /* Layers that fit in the budget beside the two slots stay resident,
     * spread evenly through the stage so that every streamed layer's copy
     * has as much compute as possible to hide behind; when every layer
     * fits, none streams (a device engine). */
    WISP_STREAM_KEEP_FIT,
} wisp_stream_policy;

typedef struct wisp_stream_plan {
    int begin, n;            /* layers [begin, begin + n) */
    uint64_t *bytes;         /* [n]: layer begin+i's bytes in the caller's buffer layout */
    bool *resident;          /* [n]: layer begin+i stays resident */
    int *order;              /* [n_streamed]: the streamed layers, in compute order */
    int *pos;                /* [n]: layer begin+i's index in order, -1 when resident */
    int n_streamed;          /* 0: every layer is resident and nothing streams */
    int n_slots;             /* WISP_STREAM_SLOTS when streaming, else 0 */
    uint64_t slot_bytes;     /* each slot: the stage's largest layer */
    uint64_t resident_bytes; /* the resident layers together */
    /* resident_bytes + n_slots * slot_bytes: never above the budget. */
    uint64_t held_bytes;
    int largest; /* the largest layer (the first of equals) */
} wisp_stream_plan;

/* Plans layers [begin, begin + n) of layer_bytes[0..n) (layer begin+i has
 * layer_bytes[i] bytes) under budget bytes. Returns 0; WISP_E_INVALID
 * when streaming is needed and the budget holds fewer than two of the
 * largest layers (the message names the layer and the MiB needed, the
 * check model/plan makes before building); WISP_E_NOMEM. Free with
 * wisp_stream_plan_free (also after a failure). */
int wisp_stream_plan_init(wisp_stream_plan *p, const uint64_t *layer_bytes, int begin, int n,
                          uint64_t budget, wisp_stream_policy policy, wisp_err *err);
void wisp_stream_plan_free(wisp_stream_plan *p);

/* True when model layer `layer` (in the plan's range) streams. */
bool wisp_stream_plan_streams(const wisp_stream_plan *p, int layer);
/* The streamed layer k places after streamed layer `layer` in the cycle
 * (k = 1: the next one). */
int wisp_stream_plan_after(const wisp_stream_plan *p, int layer, int k);
/* Layer `layer`'s bytes. */
uint64_t wisp_stream_plan_layer_bytes(const wisp_stream_plan *p, int layer);

/* ---------------------------------------------------------------- schedule
 * Per slot, the layer it should hold (want) and the layer it holds (have;
 * -1 for none or while a copy into it runs). A copy is under way while
 * filling is set; nobody computes from that slot then. The caller
 * serializes every call (the CPU engine holds its stream lock). */
typedef struct wisp_stream_slot {
    int want, have;
    bool filling;
} wisp_stream_slot;

typedef struct wisp_stream_sched {
    const wisp_stream_plan *plan;
    wisp_stream_slot slot[WISP_STREAM_SLOTS];
    int need; /* the streamed layer compute acquires next */
} wisp_stream_sched;

/* Points the slots at the first streamed layers (nothing held yet). */
void wisp_stream_sched_init(wisp_stream_sched *s, const wisp_stream_plan *p);

/* The slot streamed layer `layer` is computed from. In the expected order
 * it is the slot already wanting it; out of order (a step cancelled part
 * way) the slots are pointed at this layer and its successor, keeping a
 * slot that already holds the successor. The caller then fills what
 * wisp_stream_sched_next_fill names and computes once the slot's have is
 * the layer. */
int wisp_stream_sched_acquire(wisp_stream_sched *s, int layer);

/* Compute is done with streamed layer `layer`: its slot now wants the
 * streamed layer after next (a stage of at most two streamed layers keeps
 * them). */
void wisp_stream_sched_release(wisp_stream_sched *s, int layer);

/* The slot to fill next: one whose want is not what it has and that no
 * copy is filling, the one holding the layer compute needs next first;
 * -1 when every slot is as wanted. */
int wisp_stream_sched_next_fill(const wisp_stream_sched *s);

/* A copy into slot i starts: returns the layer to copy (its want) and
 * marks the slot filling with nothing held. */
int wisp_stream_sched_fill_begin(wisp_stream_sched *s, int i);
/* The copy of `layer` into slot i is done (the CUDA engine: queued, and
 * ordered before any compute that reads the slot). */
void wisp_stream_sched_fill_end(wisp_stream_sched *s, int i, int layer);

#endif
