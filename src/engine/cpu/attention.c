/*
 * attention.c - runs attention (attention.h) at the active SIMD level.
 *
 * The body is written once on vector lanes (attention_lanes.h) and built
 * per level in files compiled with that level's instructions only, so the
 * binary runs on any x86-64 the build's baseline covers and WISP_SIMD (or
 * wisp_cpu_simd_force) really selects the code that runs.
 */
#include "engine/cpu/attention.h"

#include "engine/cpu/attention_int.h"
#include "engine/cpu/cpu_types.h"

static const wisp_attn_level *const LEVELS[WISP_SIMD_COUNT] = {
    [WISP_SIMD_SCALAR] = &wisp_attn_scalar,
    [WISP_SIMD_AVX2] = &wisp_attn_avx2,
    [WISP_SIMD_AVX512] = &wisp_attn_avx512,
};

/* The most any level needs: scratch sized once stays valid when the level
 * is changed afterwards (tests and benchmarks force levels). */
size_t wisp_attention_scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size)
{
    size_t most = 0;
    for (int l = 0; l < WISP_SIMD_COUNT; l++) {
        const size_t n = LEVELS[l]->scratch_floats(n_head, n_head_kv, head_dim, block_size);
        most = n > most ? n : most;
    }
    return most;
}

void wisp_attention_run(wisp_threadpool *tp, const wisp_attn_job *job)
{
    wisp_attn_run run = {.job = job};
    atomic_init(&run.next, 0);
    wisp_threadpool_run(tp, LEVELS[wisp_cpu_simd_active()]->task, &run);
}
