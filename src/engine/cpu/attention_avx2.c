/*
 * attention_avx2.c - the AVX2 attention level: 8 float lanes with FMA.
 * The Makefile compiles it with the AVX2 level's flags (-mavx2 -mfma
 * -mf16c), which the dispatcher checks for before using it.
 */
#define WISP_ATTN_VW    8
#define WISP_ATTN_LEVEL wisp_attn_avx2
#include "engine/cpu/attention_lanes.h"
