/*
 * quants_avx2.c - the AVX2 + FMA + F16C kernel level.
 *
 * The kernels themselves live in quants_x86*.h, shared with the AVX-512
 * level; here the int8 dot primitive is maddubs + madd (WISP_X86_VNNI 0).
 * The Makefile compiles this file with -mavx2 -mfma -mf16c, and the
 * dispatcher (cpu_types.c) only uses it when the CPU reports those.
 */
#define WISP_X86_VNNI 0
#include "engine/cpu/quants_x86.h"
#include "engine/cpu/quants_x86_f.h"
#include "engine/cpu/quants_x86_k.h"
#include "engine/cpu/quants_x86_kmr.h"
#include "engine/cpu/quants_x86_rp.h"

const wisp_cpu_kernels wisp_cpu_kernels_avx2[WISP_TYPE_COUNT] = {WISP_X86_KERNEL_ROWS};

const wisp_gemm_fn wisp_cpu_gemm_avx2[WISP_TYPE_COUNT] = {
    [WISP_TYPE_F16] = x86_gemm_f16,   [WISP_TYPE_BF16] = x86_gemm_bf16,
    [WISP_TYPE_Q4_0] = x86_gemm_q4_0, [WISP_TYPE_Q5_0] = x86_gemm_q5_0,
    [WISP_TYPE_Q2_K] = x86_gemm_q2_K, [WISP_TYPE_Q3_K] = x86_gemm_q3_K,
    [WISP_TYPE_Q4_K] = x86_gemm_q4_K, [WISP_TYPE_Q5_K] = x86_gemm_q5_K,
    [WISP_TYPE_Q6_K] = x86_gemm_q6_K,
};

const wisp_gemv_fn wisp_cpu_gemv_avx2[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_K] = x86_gemv_q4_K,
};

const wisp_rp_fn wisp_cpu_rp_avx2[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_0] = x86_rp_q4_0,
    [WISP_TYPE_Q8_0] = x86_rp_q8_0,
};
