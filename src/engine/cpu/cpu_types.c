/*
 * cpu_types.c - block geometry and run-time choice of the kernel level.
 *
 * The merged tables (one per level, each entry falling back to the level
 * below, and a missing dequantizer to the type table's reference one) are
 * built once; picking a kernel in the hot path is then one
 * array index. The CPU's features come from __builtin_cpu_supports; the
 * environment variable WISP_SIMD=scalar|avx2|avx512 may only lower the
 * level (asking for more than the CPU has would crash with SIGILL).
 */
#include "engine/cpu/cpu_types.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/cpu/bf16dot.h"
#include "model/quant_blocks.h"

typedef struct geom {
    int block;
    size_t bytes;
} geom;

/* Generated from the type table's list (model/types.h). */
static const geom GEOM[WISP_TYPE_COUNT] = {
#define GEOM_ROW(ID, id, QK, BYTES, KIND) [WISP_TYPE_##ID] = {QK, BYTES},
    WISP_TYPES_COMPUTED(GEOM_ROW)
#undef GEOM_ROW
};

int wisp_cpu_block_size(int type)
{
    return type >= 0 && type < WISP_TYPE_COUNT ? GEOM[type].block : 0;
}

size_t wisp_cpu_block_bytes(int type)
{
    return type >= 0 && type < WISP_TYPE_COUNT ? GEOM[type].bytes : 0;
}

size_t wisp_cpu_row_bytes(int type, int64_t n)
{
    int b = wisp_cpu_block_size(type);
    if (b <= 0 || n < 0 || n % b != 0)
        return 0;
    return (size_t)(n / b) * GEOM[type].bytes;
}

/* ------------------------------------------------------------ levels */

static const wisp_cpu_kernels *const LEVEL_TABLE[WISP_SIMD_COUNT] = {
    wisp_cpu_kernels_scalar,
    wisp_cpu_kernels_avx2,
    wisp_cpu_kernels_avx512,
};

static const char *const LEVEL_NAME[WISP_SIMD_COUNT] = {"scalar", "avx2", "avx512"};

static wisp_cpu_kernels merged[WISP_SIMD_COUNT][WISP_TYPE_COUNT];
static wisp_simd_level level_max;
static _Atomic int level_active;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* F16C by cpuid (leaf 1, ecx bit 29): clang's __builtin_cpu_supports does
 * not know the name. The AVX checks below already cover the OS's saving of
 * the vector registers. */
static bool has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

/* Each level is used only where the CPU has every extension its files are
 * compiled with (the Makefile's ISA_AVX2 and ISA_AVX512, AVX-512 on top of
 * AVX2's), no more and no fewer. */
static wisp_simd_level detect(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
        return WISP_SIMD_AVX512;
    if (avx2)
        return WISP_SIMD_AVX2;
#endif
    return WISP_SIMD_SCALAR;
}

static void init_levels(void)
{
    for (int t = 0; t < WISP_TYPE_COUNT; t++) {
        wisp_cpu_kernels row = wisp_cpu_kernels_scalar[t];
        if (!row.to_float)
            row.to_float = wisp_type_get(t)->to_float;
        merged[0][t] = row;
        for (int l = 1; l < WISP_SIMD_COUNT; l++) {
            const wisp_cpu_kernels *k = &LEVEL_TABLE[l][t];
            /* A faster dot only replaces the reference when it computes
             * with the same activation format. */
            if (k->dot && k->act_type == row.act_type)
                row.dot = k->dot;
            if (k->from_float)
                row.from_float = k->from_float;
            if (k->to_float)
                row.to_float = k->to_float;
            merged[l][t] = row;
        }
    }
    level_max = detect();
    wisp_simd_level want = level_max;
    const char *env = getenv("WISP_SIMD");
    if (env && *env) {
        int found = -1;
        for (int l = 0; l < WISP_SIMD_COUNT; l++)
            if (strcmp(env, LEVEL_NAME[l]) == 0)
                found = l;
        if (found < 0)
            WISP_LOGW("WISP_SIMD=%s is not one of scalar, avx2, avx512; using %s", env,
                      LEVEL_NAME[level_max]);
        else if (found > (int)level_max)
            WISP_LOGW("WISP_SIMD=%s is not supported by this CPU; using %s", env,
                      LEVEL_NAME[level_max]);
        else
            want = (wisp_simd_level)found;
    }
    WISP_LOGI("cpu: SIMD level %s (the CPU's highest: %s)", LEVEL_NAME[want],
              LEVEL_NAME[level_max]);
    atomic_store(&level_active, (int)want);
}

wisp_simd_level wisp_cpu_simd_max(void)
{
    pthread_once(&init_once, init_levels);
    return level_max;
}

wisp_simd_level wisp_cpu_simd_active(void)
{
    pthread_once(&init_once, init_levels);
    return (wisp_simd_level)atomic_load(&level_active);
}

wisp_simd_level wisp_cpu_simd_force(wisp_simd_level level)
{
    pthread_once(&init_once, init_levels);
    if ((int)level < 0)
        level = WISP_SIMD_SCALAR;
    if (level > level_max)
        level = level_max;
    atomic_store(&level_active, (int)level);
    return level;
}

const char *wisp_cpu_simd_name(wisp_simd_level level)
{
    return (int)level >= 0 && level < WISP_SIMD_COUNT ? LEVEL_NAME[level] : "unknown";
}

const wisp_cpu_kernels *wisp_cpu_kernels_at(wisp_simd_level level, int type)
{
    pthread_once(&init_once, init_levels);
    if (type < 0 || type >= WISP_TYPE_COUNT || (int)level < 0 || level >= WISP_SIMD_COUNT)
        return NULL;
    const wisp_cpu_kernels *k = &merged[level][type];
    return k->dot || k->from_float || k->to_float ? k : NULL;
}

const wisp_cpu_kernels *wisp_cpu_kernels_get(int type)
{
    return wisp_cpu_kernels_at(wisp_cpu_simd_active(), type);
}

wisp_gemm_fn wisp_cpu_gemm_at(wisp_simd_level level, int type)
{
    pthread_once(&init_once, init_levels);
    if (type < 0 || type >= WISP_TYPE_COUNT)
        return NULL;
    /* Only with the level's own dot row: the gemm reads the activation
     * format that row's act_type names. */
    switch (level) {
    case WISP_SIMD_AVX2:
        return wisp_cpu_kernels_avx2[type].act_type == merged[level][type].act_type
                   ? wisp_cpu_gemm_avx2[type]
                   : NULL;
    case WISP_SIMD_AVX512:
        return wisp_cpu_kernels_avx512[type].act_type == merged[level][type].act_type
                   ? wisp_cpu_gemm_avx512[type]
                   : NULL;
    default: return NULL;
    }
}

wisp_gemm_fn wisp_cpu_gemm_get(int type) { return wisp_cpu_gemm_at(wisp_cpu_simd_active(), type); }

wisp_gemv_fn wisp_cpu_gemv_at(wisp_simd_level level, int type)
{
    pthread_once(&init_once, init_levels);
    if (type < 0 || type >= WISP_TYPE_COUNT)
        return NULL;
    switch (level) {
    case WISP_SIMD_AVX2:
        return wisp_cpu_kernels_avx2[type].act_type == merged[level][type].act_type
                   ? wisp_cpu_gemv_avx2[type]
                   : NULL;
    case WISP_SIMD_AVX512:
        return wisp_cpu_kernels_avx512[type].act_type == merged[level][type].act_type
                   ? wisp_cpu_gemv_avx512[type]
                   : NULL;
    default: return NULL;
    }
}

wisp_gemv_fn wisp_cpu_gemv_get(int type) { return wisp_cpu_gemv_at(wisp_cpu_simd_active(), type); }

wisp_rp_fn wisp_cpu_rp_at(wisp_simd_level level, int type)
{
    static const wisp_rp_fn *const RP[WISP_SIMD_COUNT] = {wisp_cpu_rp_scalar, wisp_cpu_rp_avx2,
                                                          wisp_cpu_rp_avx512};
    if (type < 0 || type >= WISP_TYPE_COUNT || (int)level < 0 || level >= WISP_SIMD_COUNT)
        return NULL;
    /* BF16's layout computes in vdpbf16ps's arithmetic at every level
     * (bf16dot.h), not in the BF16 dot's. */
    if (type == WISP_TYPE_BF16)
        return wisp_bf16dot_at(level);
    return RP[level][type];
}

wisp_rp_fn wisp_cpu_rp_get(int type) { return wisp_cpu_rp_at(wisp_cpu_simd_active(), type); }
wisp_gemm_fn wisp_cpu_panel_at(wisp_simd_level level, int type)
{
    return level == WISP_SIMD_AVX512 && wisp_cpu_gemm_at(level, type) ? wisp_cpu_panel_avx512[type]
                                                                      : NULL;
}

wisp_gemm_fn wisp_cpu_panel_get(int type)
{
    return wisp_cpu_panel_at(wisp_cpu_simd_active(), type);
}
