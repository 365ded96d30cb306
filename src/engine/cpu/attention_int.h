/*
 * attention_int.h - one attention level's entry points (private to
 * attention*.c): attention_lanes.h defines a row per SIMD level, compiled
 * in its own file with its own instruction set, and attention.c runs the
 * row of the active level.
 */
#ifndef WISP_ATTENTION_INT_H
#define WISP_ATTENTION_INT_H

#include <stdatomic.h>
#include <stddef.h>

#include "engine/cpu/attention.h"

/* One run of a job: the threads claim its work items from next, so a
 * thread that the machine delays leaves its share to the others. */
typedef struct wisp_attn_run {
    const wisp_attn_job *job;
    _Alignas(64) atomic_long next;
} wisp_attn_run;

typedef struct wisp_attn_level {
    /* Per-thread scratch floats for a shape at this level's lane count. */
    size_t (*scratch_floats)(int n_head, int n_head_kv, int head_dim, int block_size);
    /* The threadpool task; ctx is a wisp_attn_run. */
    void (*task)(void *ctx, int ith, int nth);
} wisp_attn_level;

extern const wisp_attn_level wisp_attn_scalar;
extern const wisp_attn_level wisp_attn_avx2;
extern const wisp_attn_level wisp_attn_avx512;

#endif
