/*
 * quant_ref.h - private: the reference row conversions behind types.c.
 *
 * types.c holds the table; these functions are its cells. They are the
 * scalar definitions of each format (ggml's block layouts, see
 * quant_blocks.h), used by the synthesizer, by tests and as the reference
 * that faster engine kernels are checked against. Each converts n elements,
 * n a multiple of the type's block size.
 */
#ifndef WISP_QUANT_REF_H
#define WISP_QUANT_REF_H

#include <stdint.h>

#define WISP_QUANT_REF(T)                                                                  \
    void wisp_dequant_##T(const void *src, float *dst, int64_t n);                         \
    void wisp_quant_##T(const float *src, void *dst, int64_t n);

WISP_QUANT_REF(f32)
WISP_QUANT_REF(f16)
WISP_QUANT_REF(bf16)
WISP_QUANT_REF(q4_0)
WISP_QUANT_REF(q4_1)
WISP_QUANT_REF(q5_0)
WISP_QUANT_REF(q5_1)
WISP_QUANT_REF(q8_0)
WISP_QUANT_REF(q8_1)
WISP_QUANT_REF(q2_K)
WISP_QUANT_REF(q3_K)
WISP_QUANT_REF(q4_K)
WISP_QUANT_REF(q5_K)
WISP_QUANT_REF(q6_K)
WISP_QUANT_REF(q8_K)

#undef WISP_QUANT_REF

#endif
