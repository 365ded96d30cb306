/*
 * gguf_int.h - private: the GGUF reader's state, shared by gguf.c (parsing
 * and validation) and gguf_get.c (typed access to what was validated).
 */
#ifndef WISP_GGUF_INT_H
#define WISP_GGUF_INT_H

#include "model/gguf.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH   8
#define GGUF_MAX_NAME          256 /* tensor names; ggml itself caps them at 63 bytes */

typedef struct gguf_kv {
    wisp_str key;
    wisp_gguf_vtype type;
    uint64_t val_off;          /* absolute offset of the value */
    uint64_t val_size;         /* bytes of the encoded value */
    wisp_gguf_vtype elem_type; /* arrays only */
    uint64_t n;                /* arrays only: element count */
    uint64_t *str_offs;        /* arrays of strings: offset of each element */
} gguf_kv;

struct wisp_gguf {
    const uint8_t *base;
    uint64_t size;
    bool mapped; /* base is our mmap and must be unmapped */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    wisp_gguf_tensor *tensors;
};

/* Bytes of a fixed-size value type; 0 for strings, arrays and bad ids. */
size_t wisp_gguf_vtype_size(uint32_t t);

#endif
