/*
 * bf16dot.c - the reference of the BF16 layout's products (bf16dot.h) and
 * the choice of kernel.
 */
#include "engine/cpu/bf16dot.h"

#include <string.h>

#include "common/fp16.h"

/* Denormals taken as (signed) zero, on the way in and out. */
static float daz(float x)
{
    const uint32_t u = wisp_bits_from_f32(x);
    return (u & 0x7f800000u) == 0 ? wisp_f32_from_bits(u & 0x80000000u) : x;
}

static float bf(uint32_t h) { return daz(wisp_bf16_to_float((uint16_t)h)); }

void wisp_bf16dot_ref(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa, int nc,
                      float *s, size_t ss)
{
    const int64_t np = n / 2;
    for (int g = 0; g < ng; g++) {
        const char *grp = (const char *)w + (size_t)g * sg;
        for (int c = 0; c < nc; c++) {
            const char *act = (const char *)a + (size_t)c * sa;
            for (int r = 0; r < WISP_BF16_ROWS; r++) {
                float acc = 0.0f;
                for (int64_t p = 0; p < np; p++) {
                    uint32_t wp, ap;
                    memcpy(&wp, grp + (size_t)p * 64 + 4 * (size_t)r, 4);
                    memcpy(&ap, act + 4 * (size_t)p, 4);
                    acc = daz(daz(acc) + daz(bf(wp >> 16) * bf(ap >> 16)));
                    acc = daz(acc + daz(bf(wp & 0xffff) * bf(ap & 0xffff)));
                }
                s[(size_t)c * ss + (size_t)g * WISP_BF16_ROWS + (size_t)r] = acc;
            }
        }
    }
}

bool wisp_bf16dot_fast(void)
{
#if defined(__x86_64__)
    /* the level's detection has run __builtin_cpu_init */
    return wisp_cpu_simd_active() == WISP_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

wisp_rp_fn wisp_bf16dot_at(wisp_simd_level level)
{
#if defined(__x86_64__)
    if (level == WISP_SIMD_AVX512 && wisp_cpu_simd_max() == WISP_SIMD_AVX512 && /* cpu_init */
        __builtin_cpu_supports("avx512bf16"))
        return wisp_bf16dot_avx512bf16;
#endif
    (void)level;
    return wisp_bf16dot_ref;
}
