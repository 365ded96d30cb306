/*
 * types.c - the tensor type table: see types.h.
 *
 * One designated-initializer row per ggml type id. Types wisp computes with
 * are generated from WISP_TYPES_COMPUTED (types.h; add a type there) and
 * carry their reference conversions (quant_legacy.c, quant_k.c); the others
 * still carry their name and block geometry, so the GGUF reader can size
 * and bounds-check their data and the model loader can refuse them by name.
 * Ids that ggml retired (in-file repacked Q4_0_4_4 and friends) keep their
 * names with block_size 0, which the reader turns into a precise refusal.
 */
#include "model/types.h"

#include <strings.h>

#include "model/quant_ref.h"

#define QUANTIZED_FLOAT  false
#define QUANTIZED_WEIGHT true
#define QUANTIZED_ACT    true
#define ROW(ID, id, QK, BYTES, KIND)                      \
    [WISP_TYPE_##ID] = {.name = #ID,                      \
                        .block_size = QK,                 \
                        .type_size = BYTES,               \
                        .supported = true,                \
                        .is_quantized = QUANTIZED_##KIND, \
                        .to_float = wisp_dequant_##id,    \
                        .from_float = wisp_quant_##id},
/* Known to ggml, not computed by wisp. */
#define NAMED(ID, NAME, BS, TS) [ID] = {.name = NAME, .block_size = BS, .type_size = TS}

static const wisp_type_traits type_table[WISP_TYPE_COUNT] = {
    WISP_TYPES_COMPUTED(ROW)
    /* retired 4-bit variants of early ggml: no longer in any file */
    NAMED(4, "Q4_2", 0, 0),
    NAMED(5, "Q4_3", 0, 0),
    NAMED(WISP_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66),
    NAMED(WISP_TYPE_IQ2_XS, "IQ2_XS", 256, 74),
    NAMED(WISP_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98),
    NAMED(WISP_TYPE_IQ1_S, "IQ1_S", 256, 50),
    NAMED(WISP_TYPE_IQ4_NL, "IQ4_NL", 32, 18),
    NAMED(WISP_TYPE_IQ3_S, "IQ3_S", 256, 110),
    NAMED(WISP_TYPE_IQ2_S, "IQ2_S", 256, 82),
    NAMED(WISP_TYPE_IQ4_XS, "IQ4_XS", 256, 136),
    NAMED(WISP_TYPE_I8, "I8", 1, 1),
    NAMED(WISP_TYPE_I16, "I16", 1, 2),
    NAMED(WISP_TYPE_I32, "I32", 1, 4),
    NAMED(WISP_TYPE_I64, "I64", 1, 8),
    NAMED(WISP_TYPE_F64, "F64", 1, 8),
    NAMED(WISP_TYPE_IQ1_M, "IQ1_M", 256, 56),
    /* runtime-repacked layouts that ggml briefly allowed in files */
    NAMED(31, "Q4_0_4_4", 0, 0),
    NAMED(32, "Q4_0_4_8", 0, 0),
    NAMED(33, "Q4_0_8_8", 0, 0),
    NAMED(WISP_TYPE_TQ1_0, "TQ1_0", 256, 54),
    NAMED(WISP_TYPE_TQ2_0, "TQ2_0", 256, 66),
    NAMED(36, "IQ4_NL_4_4", 0, 0),
    NAMED(37, "IQ4_NL_4_8", 0, 0),
    NAMED(38, "IQ4_NL_8_8", 0, 0),
    NAMED(WISP_TYPE_MXFP4, "MXFP4", 32, 17),
};

static const wisp_type_traits unknown_row = {0};

const wisp_type_traits *wisp_type_get(int type)
{
    if (type < 0 || type >= WISP_TYPE_COUNT)
        return &unknown_row;
    return &type_table[type];
}

const char *wisp_type_name(int type)
{
    const char *n = wisp_type_get(type)->name;
    return n ? n : "unknown";
}

int wisp_type_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < WISP_TYPE_COUNT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0)
            return i;
    return -1;
}

size_t wisp_type_row_size(int type, int64_t n)
{
    const wisp_type_traits *t = wisp_type_get(type);
    if (!t->name || t->block_size == 0 || n < 0 || n % t->block_size != 0)
        return 0;
    return (size_t)(n / t->block_size) * t->type_size;
}
