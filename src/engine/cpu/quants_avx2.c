/* quants_avx2.c - avx2 kernels (being written). */
#include "engine/cpu/cpu_types.h"

const wisp_cpu_kernels wisp_cpu_kernels_avx2[WISP_TYPE_COUNT] = {
    [WISP_TYPE_F32] = {0},
};
