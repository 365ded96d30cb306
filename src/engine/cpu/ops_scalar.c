/*
 * ops_scalar.c - the ops level of CPUs without AVX2: 4 float lanes in plain
 * vector arithmetic (SSE at the x86-64-v2 baseline), no FMA.
 */
#define WISP_OPS_VW    4
#define WISP_OPS_LEVEL wisp_ops_scalar
#include "engine/cpu/ops_lanes.h"
