/*
 * ops_avx512.c - the AVX-512 ops level: 16 float lanes with FMA. The
 * Makefile compiles it with the AVX-512 level's flags, which the
 * dispatcher checks for before using it.
 */
#define WISP_OPS_VW    16
#define WISP_OPS_LEVEL wisp_ops_avx512
#include "engine/cpu/ops_lanes.h"
