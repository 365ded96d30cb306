/*
 * kv_type.h - the element formats of the KV cache, with their one set of
 * names.
 *
 * The cache stores every K and V row in one of these formats. The command
 * line (--kv-type), the protocol (model/load and model/plan's kv_type), the
 * memory planner and every engine read the formats from this table, so a
 * format is added by one row here plus its store/load kernels in the
 * engines. The enum values are part of the engines' storage: they index the
 * engines' per-format tables and the CUDA kernels' kv_type argument, so
 * rows are only ever appended.
 *
 * The table lives in model/ because the memory plan (model/plan.c) sizes
 * the cache from it and model/ is the lowest module both the engines and
 * the application depend on.
 */
#ifndef WISP_KV_TYPE_H
#define WISP_KV_TYPE_H

#include <stddef.h>

#include "model/types.h"

/* X(ID, name, tensor type of the stored rows) */
#define WISP_KV_TYPES(X)            \
    X(F16, "f16", WISP_TYPE_F16)    \
    X(Q8_0, "q8_0", WISP_TYPE_Q8_0) \
    X(F32, "f32", WISP_TYPE_F32) /* for parity tests */

typedef enum wisp_kv_type {
#define WISP_KV_ENUM_(ID, NAME, ELEM) WISP_KV_##ID,
    WISP_KV_TYPES(WISP_KV_ENUM_)
#undef WISP_KV_ENUM_
    WISP_KV_TYPE_COUNT
} wisp_kv_type;

/* The names in enum order followed by NULL (for parameter tables). */
extern const char *const wisp_kv_type_names[WISP_KV_TYPE_COUNT + 1];

/* "f16", or "unknown" for a value outside the enum. */
const char *wisp_kv_type_name(int kv);
/* Parses a name (exact, lower case as in the protocol). Returns 0 and sets
 * *out, or -1 for NULL or an unknown name. */
int wisp_kv_type_from_name(const char *name, wisp_kv_type *out);
/* The tensor type rows are stored in, or -1 for a value outside the enum. */
int wisp_kv_type_elem(int kv);
/* Writes "f16, q8_0, f32" (every name, in order) into buf. */
void wisp_kv_type_list(char *buf, size_t cap);

#endif
