/*
 * dequant_row.c - the reference row dequantizers of the block types.
 *
 * One function per block row of WISP_TYPES_COMPUTED (types.h), each a loop
 * over the type's granule dequantizer (dequant_block.h): the bit layout of
 * a format is written once, there, and the CUDA kernels, the type table's
 * to_float and the CPU engine's scalar level all run that one definition.
 * The float types convert element by element in quant_legacy.c.
 */
#include <stdint.h>

#include "model/dequant_block.h"
#include "model/quant_ref.h"

#define DEQUANT_ROW(ID, id)                                                                 \
    void wisp_dequant_##id(const void *src, float *dst, int64_t n)                          \
    {                                                                                       \
        const uint8_t *b = src;                                                             \
        for (int64_t i = 0; i < n / WISP_BLOCK_ELEMS_##ID; i++, b += WISP_BLOCK_BYTES_##ID) \
            for (int g = 0; g < WISP_BLOCK_ELEMS_##ID / WISP_BLK_GRANULE;                   \
                 g++, dst += WISP_BLK_GRANULE)                                              \
                wisp_blk_##id##_dequant8(b, g, dst);                                        \
    }

#define ROW_FLOAT(ID, id)
#define ROW_WEIGHT(ID, id)           DEQUANT_ROW(ID, id)
#define ROW_ACT(ID, id)              DEQUANT_ROW(ID, id)
#define ROW(ID, id, QK, BYTES, KIND) ROW_##KIND(ID, id)

WISP_TYPES_COMPUTED(ROW)
