/*
 * fp16.h - IEEE half and bfloat16 conversions for host code.
 *
 * Scalar, exact (round-to-nearest-even) conversions that every engine and
 * the reference code share. Hot loops convert with F16C/AVX-512 instead;
 * these define the results those paths must match.
 */
#ifndef WISP_FP16_H
#define WISP_FP16_H

#include <stdint.h>
#include <string.h>

static inline float wisp_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t wisp_bits_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float wisp_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0)
            return wisp_f32_from_bits(sign);
        /* subnormal: normalize */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while ((mant & 0x400) == 0);
        mant &= 0x3ff;
        return wisp_f32_from_bits(sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13));
    }
    if (exp == 31)
        return wisp_f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return wisp_f32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

static inline uint16_t wisp_float_to_half(float f)
{
    uint32_t x = wisp_bits_from_f32(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal */
        if (absx < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1) - 0x38000000u;
    return (uint16_t)(sign | (r >> 13));
}

static inline float wisp_bf16_to_float(uint16_t h) { return wisp_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t wisp_float_to_bf16(float f)
{
    uint32_t x = wisp_bits_from_f32(f);
    if ((x & 0x7fffffff) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
