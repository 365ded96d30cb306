/*
 * attention_scalar.c - the attention level of CPUs without AVX2: 4 float
 * lanes in plain vector arithmetic (SSE at the x86-64-v2 baseline), no FMA.
 */
#define WISP_ATTN_VW    4
#define WISP_ATTN_LEVEL wisp_attn_scalar
#include "engine/cpu/attention_lanes.h"
