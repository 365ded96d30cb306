/*
 * types.h - the tensor type table.
 *
 * One row per type, indexed by ggml's numeric type id as stored in GGUF
 * (ggml's type_traits design): name, elements per block, bytes per block,
 * and the reference row conversions. The types wisp computes with are one
 * X-macro list, WISP_TYPES_COMPUTED below, from which the traits table
 * (types.c), the reference conversions' declarations (quant_ref.h), the CPU
 * engine's block geometry (engine/cpu/cpu_types.c) and the CUDA kernels'
 * type traits (kernels/quant_traits.cuh) are all generated. Engines keep
 * their own tables of kernels (dot products, activation quantizers) indexed
 * by the same ids, so adding a type touches one row here and one row per
 * engine, never a switch spread across files.
 */
#ifndef WISP_TYPES_H
#define WISP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/quant_blocks.h"

/* ggml's type ids (the values stored in GGUF tensor infos). Ids that wisp
 * does not compute with still get a row with a name, so a file using them
 * is refused by name ("type IQ2_XS, which wisp does not support yet"). */
typedef enum wisp_type {
    WISP_TYPE_F32 = 0,
    WISP_TYPE_F16 = 1,
    WISP_TYPE_Q4_0 = 2,
    WISP_TYPE_Q4_1 = 3,
    WISP_TYPE_Q5_0 = 6,
    WISP_TYPE_Q5_1 = 7,
    WISP_TYPE_Q8_0 = 8,
    WISP_TYPE_Q8_1 = 9,
    WISP_TYPE_Q2_K = 10,
    WISP_TYPE_Q3_K = 11,
    WISP_TYPE_Q4_K = 12,
    WISP_TYPE_Q5_K = 13,
    WISP_TYPE_Q6_K = 14,
    WISP_TYPE_Q8_K = 15,
    WISP_TYPE_IQ2_XXS = 16,
    WISP_TYPE_IQ2_XS = 17,
    WISP_TYPE_IQ3_XXS = 18,
    WISP_TYPE_IQ1_S = 19,
    WISP_TYPE_IQ4_NL = 20,
    WISP_TYPE_IQ3_S = 21,
    WISP_TYPE_IQ2_S = 22,
    WISP_TYPE_IQ4_XS = 23,
    WISP_TYPE_I8 = 24,
    WISP_TYPE_I16 = 25,
    WISP_TYPE_I32 = 26,
    WISP_TYPE_I64 = 27,
    WISP_TYPE_F64 = 28,
    WISP_TYPE_IQ1_M = 29,
    WISP_TYPE_BF16 = 30,
    WISP_TYPE_TQ1_0 = 34,
    WISP_TYPE_TQ2_0 = 35,
    WISP_TYPE_MXFP4 = 39,
    WISP_TYPE_COUNT = 40,
} wisp_type;

/*
 * The types wisp computes with, one row each:
 *
 *   X(ID, id, elements per block, bytes per block, kind)
 *
 * WISP_TYPE_<ID> is the type's id above and "<ID>" its name. For a block
 * type, `id` names its block struct wisp_block_<id> (quant_blocks.h, where
 * the struct's size is checked against the format's) and its granule
 * dequantizer wisp_blk_<id>_dequant8 (dequant_block.h, shared with CUDA);
 * for every row it names the reference row conversions wisp_dequant_<id>
 * and wisp_quant_<id> (quant_ref.h). kind is
 *   FLOAT   a float format, one element per "block";
 *   WEIGHT  a block format weights are stored in (the CUDA kernels get a
 *           traits struct and a dispatch case for it);
 *   ACT     a block format only activations are quantized to.
 *
 * To add a type: one row here (plus its struct in quant_blocks.h, its
 * granule dequantizer in dequant_block.h, its reference quantizer in
 * quant_legacy.c or quant_k.c), then its kernels: a row in each CPU level
 * table (engine/cpu/quants_*.c) and, for a WEIGHT type, nothing more for
 * CUDA than the generated traits.
 */
#define WISP_TYPES_COMPUTED(X)                                 \
    X(F32, f32, 1, sizeof(float), FLOAT)                       \
    X(F16, f16, 1, sizeof(wisp_half), FLOAT)                   \
    X(BF16, bf16, 1, sizeof(wisp_bf16), FLOAT)                 \
    X(Q4_0, q4_0, WISP_QK4_0, sizeof(wisp_block_q4_0), WEIGHT) \
    X(Q4_1, q4_1, WISP_QK4_1, sizeof(wisp_block_q4_1), WEIGHT) \
    X(Q5_0, q5_0, WISP_QK5_0, sizeof(wisp_block_q5_0), WEIGHT) \
    X(Q5_1, q5_1, WISP_QK5_1, sizeof(wisp_block_q5_1), WEIGHT) \
    X(Q8_0, q8_0, WISP_QK8_0, sizeof(wisp_block_q8_0), WEIGHT) \
    X(Q8_1, q8_1, WISP_QK8_1, sizeof(wisp_block_q8_1), ACT)    \
    X(Q2_K, q2_K, WISP_QK_K, sizeof(wisp_block_q2_K), WEIGHT)  \
    X(Q3_K, q3_K, WISP_QK_K, sizeof(wisp_block_q3_K), WEIGHT)  \
    X(Q4_K, q4_K, WISP_QK_K, sizeof(wisp_block_q4_K), WEIGHT)  \
    X(Q5_K, q5_K, WISP_QK_K, sizeof(wisp_block_q5_K), WEIGHT)  \
    X(Q6_K, q6_K, WISP_QK_K, sizeof(wisp_block_q6_K), WEIGHT)  \
    X(Q8_K, q8_K, WISP_QK_K, sizeof(wisp_block_q8_K), ACT)

/* The geometry as integer constants, usable in constant expressions by C
 * and by the CUDA kernels: WISP_BLOCK_ELEMS_Q4_0, WISP_BLOCK_BYTES_Q4_0. */
enum wisp_type_geometry {
#define WISP_TYPE_GEOM_(ID, id, QK, BYTES, KIND) \
    WISP_BLOCK_ELEMS_##ID = (QK), WISP_BLOCK_BYTES_##ID = (int)(BYTES),
    WISP_TYPES_COMPUTED(WISP_TYPE_GEOM_)
#undef WISP_TYPE_GEOM_
};

/* Converts n elements (a multiple of the block size) of a row. */
typedef void (*wisp_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*wisp_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct wisp_type_traits {
    const char *name; /* "Q4_K"; NULL for ids ggml never assigned */
    int block_size;   /* elements per block */
    size_t type_size; /* bytes per block */
    bool supported;   /* wisp loads and computes with this type */
    bool is_quantized;
    wisp_to_float_fn to_float;     /* reference dequantization */
    wisp_from_float_fn from_float; /* reference quantization (synthesizer, KV) */
} wisp_type_traits;

/* The row for a type id; ids outside the table get a row with name NULL. */
const wisp_type_traits *wisp_type_get(int type);
/* "Q4_K", or "type 57" style text for unknown ids (static buffer per call
 * site is not used: returns "unknown" for ids without a name). */
const char *wisp_type_name(int type);
/* Looks a type up by name, case-insensitive ("q4_k", "F16"); -1 if none. */
int wisp_type_from_name(const char *name);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the type is unknown. */
size_t wisp_type_row_size(int type, int64_t n);

#endif
