/*
 * amx.c - whether AMX tiles may be used (see amx.h): the CPU's features,
 * the OS's permission, and the switches.
 */
#include "engine/cpu/amx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "common/fp16.h"
#include "common/log.h"

/* The kernels' table, one entry per type (gemm_amx.c). */
extern const wisp_amx_fn wisp_amx_gemm_table[WISP_TYPE_COUNT];

static bool usable;
static _Atomic bool enabled;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__linux__)
/* Linux keeps the tile data (XFEATURE 18) off until a process asks. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static bool detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    if (!(d & (1u << 24)) || !(d & (1u << 25))) /* AMX-TILE, AMX-INT8 */
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) /* XTILECFG, XTILEDATA enabled by the OS */
        return false;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        WISP_LOGI("cpu: the CPU has AMX but the kernel refused the tile state; using AVX-512");
        return false;
    }
    return true;
}
#else
static bool detect(void) { return false; }
#endif

static void init(void)
{
    usable = detect();
    const char *env = getenv("WISP_AMX");
    atomic_store(&enabled, usable && !(env && strcmp(env, "0") == 0));
}

bool wisp_amx_usable(void)
{
    pthread_once(&once, init);
    return usable;
}

bool wisp_amx_active(void)
{
    pthread_once(&once, init);
    return atomic_load_explicit(&enabled, memory_order_relaxed) &&
           wisp_cpu_simd_active() == WISP_SIMD_AVX512;
}

bool wisp_amx_set(bool on)
{
    pthread_once(&once, init);
    atomic_store(&enabled, on && usable);
    return wisp_amx_active();
}

wisp_amx_fn wisp_amx_gemm_get(int type)
{
    if (type < 0 || type >= WISP_TYPE_COUNT || !wisp_amx_active())
        return NULL;
    return wisp_amx_gemm_table[type];
}

bool wisp_amx_has_kernel(int type)
{
    return type >= 0 && type < WISP_TYPE_COUNT && wisp_amx_usable() && wisp_amx_gemm_table[type];
}

size_t wisp_amx_act_tile_bytes(int act_type, int64_t n_in)
{
    switch (act_type) {
    case WISP_TYPE_Q8_0: return (size_t)(n_in / 32) * WISP_AMX_UNIT_Q8_0;
    case WISP_TYPE_Q8_K: return (size_t)(n_in / WISP_QK_K) * WISP_AMX_UNIT_Q8_K;
    default: return 0;
    }
}

void wisp_amx_pack_act(int act_type, const void *row, int64_t n_in, int64_t t, void *dst)
{
    char *tile = (char *)dst + (size_t)(t / 16) * wisp_amx_act_tile_bytes(act_type, n_in);
    const int i = (int)(t % 16);
    if (act_type == WISP_TYPE_Q8_0) {
        const wisp_block_q8_0 *x = row;
        for (int64_t b = 0; b < n_in / 32; b++) {
            char *u = tile + (size_t)b * WISP_AMX_UNIT_Q8_0;
            const float d = wisp_half_to_float(x[b].d);
            memcpy(u + 32 * i, x[b].qs, 32);
            memcpy(u + 16 * 32 + 4 * i, &d, 4);
        }
    } else if (act_type == WISP_TYPE_Q8_K) {
        const wisp_block_q8_K *x = row;
        for (int64_t b = 0; b < n_in / WISP_QK_K; b++) {
            char *u = tile + (size_t)b * WISP_AMX_UNIT_Q8_K;
            for (int j = 0; j < 8; j++) {
                memcpy(u + 512 * j + 32 * i, x[b].qs + 32 * j, 32);
                const int32_t sum = x[b].bsums[2 * j] + x[b].bsums[2 * j + 1];
                memcpy(u + 8 * 512 + 64 + 64 * j + 4 * i, &sum, 4);
            }
            memcpy(u + 8 * 512 + 4 * i, &x[b].d, 4);
            for (int g = 0; g < 16; g++) {
                const int32_t sum = x[b].bsums[g];
                memcpy(u + 8 * 512 + 64 + 512 + 64 * g + 4 * i, &sum, 4);
            }
        }
    }
}
