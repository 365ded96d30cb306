/*
 * attention_avx512.c - the AVX-512 attention level: 16 float lanes with
 * FMA. The Makefile compiles it with the AVX-512 level's flags, which the
 * dispatcher checks for before using it.
 */
#define WISP_ATTN_VW    16
#define WISP_ATTN_LEVEL wisp_attn_avx512
#include "engine/cpu/attention_lanes.h"
