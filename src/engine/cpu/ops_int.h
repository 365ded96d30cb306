/*
 * ops_int.h - one ops level's entry points (private to ops*.c):
 * ops_lanes.h defines a row per SIMD level, compiled in its own file with
 * its own instruction set, and ops.c calls the row of the active level.
 */
#ifndef WISP_OPS_INT_H
#define WISP_OPS_INT_H

#include <stdint.h>

#include "engine/cpu/ops.h"

typedef struct wisp_ops_level {
    void (*rmsnorm)(float *out, const float *x, const float *w, int n, float eps);
    void (*add)(float *x, const float *y, int64_t n);
    void (*swiglu)(float *gate, const float *up, int64_t n);
    void (*rope_apply)(const wisp_rope *r, const float *cache, float *x);
} wisp_ops_level;

extern const wisp_ops_level wisp_ops_scalar;
extern const wisp_ops_level wisp_ops_avx2;
extern const wisp_ops_level wisp_ops_avx512;

#endif
