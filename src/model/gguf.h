/*
 * gguf.h - a validating, zero-copy GGUF (v2, v3) reader.
 *
 * The file is mmapped read-only and everything in it is checked before use
 * (magic, version, counts against the file size, string lengths, dimension
 * products, tensor offsets and sizes), so a damaged file gives an error that
 * names the problem and where, never a crash or a huge allocation. Tensor
 * data is used in place from the mapping. Metadata strings are exposed as
 * (pointer, length) pairs into the mapping: they are NOT NUL-terminated.
 */
#ifndef WISP_GGUF_H
#define WISP_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wisp_gguf wisp_gguf;

/* GGUF metadata value types (the numbers stored in the file). */
typedef enum wisp_gguf_vtype {
    WISP_GGUF_UINT8 = 0,
    WISP_GGUF_INT8 = 1,
    WISP_GGUF_UINT16 = 2,
    WISP_GGUF_INT16 = 3,
    WISP_GGUF_UINT32 = 4,
    WISP_GGUF_INT32 = 5,
    WISP_GGUF_FLOAT32 = 6,
    WISP_GGUF_BOOL = 7,
    WISP_GGUF_STRING = 8,
    WISP_GGUF_ARRAY = 9,
    WISP_GGUF_UINT64 = 10,
    WISP_GGUF_INT64 = 11,
    WISP_GGUF_FLOAT64 = 12,
} wisp_gguf_vtype;

typedef struct wisp_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    size_t len;
} wisp_str;

#define WISP_MAX_DIMS 4

typedef struct wisp_gguf_tensor {
    wisp_str name;
    int type; /* wisp_type id */
    int n_dims;
    int64_t ne[WISP_MAX_DIMS]; /* ne[0] is the row length (fastest) */
    uint64_t offset;           /* absolute offset in the file */
    uint64_t nbytes;
    const void *data; /* NULL for a vocab-only file */
} wisp_gguf_tensor;

/* Opens and validates a file. Returns 0 and sets *out, or a negative
 * wisp_code with err naming the problem. The caller closes *out. */
int wisp_gguf_open(const char *path, wisp_gguf **out, wisp_err *err);
/* Same over a caller-owned buffer (tests and the fuzzer); the buffer must
 * outlive the reader. */
int wisp_gguf_open_memory(const void *data, size_t size, wisp_gguf **out, wisp_err *err);
void wisp_gguf_close(wisp_gguf *g);

uint32_t wisp_gguf_version(const wisp_gguf *g);
uint64_t wisp_gguf_file_size(const wisp_gguf *g);
uint32_t wisp_gguf_alignment(const wisp_gguf *g);
/* Absolute offset of the data section (aligned end of the tensor infos);
 * for a vocab-only file it may lie past the end of the file. */
uint64_t wisp_gguf_data_offset(const wisp_gguf *g);
/* The start of the mapping (or of the caller's buffer). */
const void *wisp_gguf_base(const wisp_gguf *g);

/* ---- metadata ---- */
int64_t wisp_gguf_n_kv(const wisp_gguf *g);
/* Index of a key, or -1. */
int64_t wisp_gguf_find_key(const wisp_gguf *g, const char *key);
wisp_str wisp_gguf_key_name(const wisp_gguf *g, int64_t i);
wisp_gguf_vtype wisp_gguf_kv_type(const wisp_gguf *g, int64_t i);
/* The encoded value of entry i exactly as stored (for an array: element
 * type, count and elements), for copying metadata between files. */
bool wisp_gguf_kv_raw(const wisp_gguf *g, int64_t i, const void **val, size_t *size);

/* Typed getters by key. Each returns true and sets *out when the key exists
 * and its value converts without loss (any integer type to the requested
 * integer type when in range; FLOAT32/FLOAT64 to float/double); false
 * otherwise, leaving *out unchanged. */
bool wisp_gguf_get_u32(const wisp_gguf *g, const char *key, uint32_t *out);
bool wisp_gguf_get_i64(const wisp_gguf *g, const char *key, int64_t *out);
bool wisp_gguf_get_f32(const wisp_gguf *g, const char *key, float *out);
bool wisp_gguf_get_bool(const wisp_gguf *g, const char *key, bool *out);
bool wisp_gguf_get_str(const wisp_gguf *g, const char *key, wisp_str *out);

/* Arrays: element type and length, or false when the key is missing or not
 * an array. Elements are read by index (the mapping may be unaligned). */
bool wisp_gguf_get_arr(const wisp_gguf *g, const char *key, wisp_gguf_vtype *elem_type,
                       uint64_t *len);
wisp_str wisp_gguf_arr_str(const wisp_gguf *g, const char *key, uint64_t i);
int64_t wisp_gguf_arr_int(const wisp_gguf *g, const char *key, uint64_t i);
double wisp_gguf_arr_float(const wisp_gguf *g, const char *key, uint64_t i);
/* The packed elements of an array of a fixed-size type (integers, floats,
 * bools), for bulk reads of e.g. 150k token scores; possibly unaligned, so
 * read with memcpy. NULL for strings, nested arrays or a missing key. */
const void *wisp_gguf_arr_data(const wisp_gguf *g, const char *key);

/* ---- tensors ---- */
int64_t wisp_gguf_n_tensors(const wisp_gguf *g);
const wisp_gguf_tensor *wisp_gguf_tensor_at(const wisp_gguf *g, int64_t i);
/* The tensor with this name, or NULL. */
const wisp_gguf_tensor *wisp_gguf_find_tensor(const wisp_gguf *g, const char *name);

/* true when the string equals the NUL-terminated s. */
static inline bool wisp_str_eq(wisp_str a, const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    if (n != a.len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (a.ptr[i] != s[i])
            return false;
    return true;
}

#endif
