/*
 * quants_avx512.c - the AVX-512 (F/BW/VL/DQ) + VNNI kernel level.
 *
 * Same kernels as the AVX2 level (quants_x86*.h), with the int8 dot of the
 * 32-element block types done by one vpdpbusd instead of maddubs + madd:
 * one instruction less per block and token, and no int16 intermediate.
 * 256-bit vectors are kept on purpose: on the CPUs that have VNNI with
 * 512-bit units split in two (AMD Zen 4) or with frequency drops on wide
 * vectors (older Intel), ymm with VNNI is as fast and simpler; on recent
 * Intel cores any 512-bit instruction also takes port 1 away from the
 * vector instructions. The level's other instructions (EVEX ymm: word
 * permutes, byte masks) serve the one-token kernels.
 */
#define WISP_X86_VNNI 1
#include "engine/cpu/quants_x86.h"
#include "engine/cpu/quants_x86_f.h"
#include "engine/cpu/quants_x86_k.h"
#include "engine/cpu/quants_x86_kmr.h"
#include "engine/cpu/quants_x86_kpanel.h"
#include "engine/cpu/quants_x86_rp.h"

const wisp_cpu_kernels wisp_cpu_kernels_avx512[WISP_TYPE_COUNT] = {WISP_X86_KERNEL_ROWS};

const wisp_gemm_fn wisp_cpu_gemm_avx512[WISP_TYPE_COUNT] = {
    [WISP_TYPE_F16] = x86_gemm_f16,   [WISP_TYPE_BF16] = x86_gemm_bf16,
    [WISP_TYPE_Q4_0] = x86_gemm_q4_0, [WISP_TYPE_Q5_0] = x86_gemm_q5_0,
    [WISP_TYPE_Q2_K] = x86_gemm_q2_K, [WISP_TYPE_Q3_K] = x86_gemm_q3_K,
    [WISP_TYPE_Q4_K] = x86_gemm_q4_K, [WISP_TYPE_Q5_K] = x86_gemm_q5_K,
    [WISP_TYPE_Q6_K] = x86_gemm_q6_K, [WISP_TYPE_Q8_0] = x86_gemm_q8_0,
};

const wisp_gemv_fn wisp_cpu_gemv_avx512[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_K] = x86_gemv_q4_K,
    [WISP_TYPE_Q5_K] = x86_gemv_q5_K,
};

const wisp_rp_fn wisp_cpu_rp_avx512[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_0] = x86_rp_q4_0, [WISP_TYPE_Q8_0] = x86_rp_q8_0, [WISP_TYPE_Q4_K] = x86_rp_q4_K,
    [WISP_TYPE_Q5_K] = x86_rp_q5_K, [WISP_TYPE_Q6_K] = x86_rp_q6_K,
};

const wisp_gemm_fn wisp_cpu_panel_avx512[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q2_K] = x86_panel_q2_K, [WISP_TYPE_Q3_K] = x86_panel_q3_K,
    [WISP_TYPE_Q4_K] = x86_panel_q4_K, [WISP_TYPE_Q5_K] = x86_panel_q5_K,
    [WISP_TYPE_Q6_K] = x86_panel_q6_K,
};
