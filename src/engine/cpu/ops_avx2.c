/*
 * ops_avx2.c - the AVX2 ops level: 8 float lanes with FMA. The Makefile
 * compiles it with the AVX2 level's flags (-mavx2 -mfma -mf16c), which the
 * dispatcher checks for before using it.
 */
#define WISP_OPS_VW    8
#define WISP_OPS_LEVEL wisp_ops_avx2
#include "engine/cpu/ops_lanes.h"
