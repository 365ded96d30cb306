/*
 * attention_int.h - one attention level's entry points (private to
 * attention*.c): attention_lanes.h defines a row per SIMD level, compiled
 * in its own file with its own instruction set, and attention.c runs the
 * row of the active level.
 */
#ifndef WISP_ATTENTION_INT_H
#define WISP_ATTENTION_INT_H

#include <stddef.h>

typedef struct wisp_attn_level {
    /* Per-thread scratch floats for a shape at this level's lane count. */
    size_t (*scratch_floats)(int n_head, int n_head_kv, int head_dim, int block_size);
    /* The threadpool task; ctx is the wisp_attn_job. */
    void (*task)(void *ctx, int ith, int nth);
} wisp_attn_level;

extern const wisp_attn_level wisp_attn_scalar;
extern const wisp_attn_level wisp_attn_avx2;
extern const wisp_attn_level wisp_attn_avx512;

#endif
