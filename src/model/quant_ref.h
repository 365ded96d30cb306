/*
 * quant_ref.h - private: the reference row conversions behind types.c.
 *
 * types.c holds the table; these functions are its cells, declared for
 * every row of WISP_TYPES_COMPUTED (types.h). They are the
 * scalar definitions of each format (ggml's block layouts, see
 * quant_blocks.h), used by the synthesizer, by tests and as the reference
 * that faster engine kernels are checked against. Each converts n elements,
 * n a multiple of the type's block size.
 */
#ifndef WISP_QUANT_REF_H
#define WISP_QUANT_REF_H

#include <stdint.h>

#include "model/types.h"

#define WISP_QUANT_REF(ID, id, QK, BYTES, KIND)                     \
    void wisp_dequant_##id(const void *src, float *dst, int64_t n); \
    void wisp_quant_##id(const float *src, void *dst, int64_t n);

WISP_TYPES_COMPUTED(WISP_QUANT_REF)

#undef WISP_QUANT_REF

#endif
