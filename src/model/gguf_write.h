/*
 * gguf_write.h - writes GGUF v3 files (the synthesizer, tests, fuzz seeds).
 *
 * Metadata and tensor infos are collected first; then the header is
 * written and the tensors' data follow in declaration order, each padded to
 * the alignment, so a large model streams to disk one tensor at a time and
 * is never held in memory whole.
 *
 *   wisp_gguf_writer *w = wisp_gguf_writer_new();
 *   wisp_gguf_writer_str(w, "general.architecture", "llama");
 *   wisp_gguf_writer_tensor(w, "token_embd.weight", WISP_TYPE_F16, 2, ne);
 *   wisp_gguf_writer_write_header(w, f, &err);
 *   wisp_gguf_writer_write_data(w, f, 0, data, &err);   // each tensor in order
 *   wisp_gguf_writer_free(w);
 */
#ifndef WISP_GGUF_WRITE_H
#define WISP_GGUF_WRITE_H

#include <stdio.h>

#include "model/gguf.h"

typedef struct wisp_gguf_writer wisp_gguf_writer;

/* NULL when out of memory. Version 3, alignment 32 unless changed. */
wisp_gguf_writer *wisp_gguf_writer_new(void);
void wisp_gguf_writer_free(wisp_gguf_writer *w);
/* For tests of v2 files; the layout is the same. */
void wisp_gguf_writer_set_version(wisp_gguf_writer *w, uint32_t version);
/* Also writes general.alignment; a power of two. */
void wisp_gguf_writer_set_alignment(wisp_gguf_writer *w, uint32_t alignment);

/* Metadata. Each returns 0 or WISP_E_NOMEM; keys must be unique (the
 * caller's job: the reader will refuse duplicates). */
int wisp_gguf_writer_u32(wisp_gguf_writer *w, const char *key, uint32_t v);
int wisp_gguf_writer_i32(wisp_gguf_writer *w, const char *key, int32_t v);
int wisp_gguf_writer_f32(wisp_gguf_writer *w, const char *key, float v);
int wisp_gguf_writer_bool(wisp_gguf_writer *w, const char *key, bool v);
int wisp_gguf_writer_str(wisp_gguf_writer *w, const char *key, const char *v);
/* An array of a fixed-size type (elem_type not STRING/ARRAY). */
int wisp_gguf_writer_arr(wisp_gguf_writer *w, const char *key, wisp_gguf_vtype elem_type,
                         const void *elems, uint64_t n);
int wisp_gguf_writer_arr_str(wisp_gguf_writer *w, const char *key, const wisp_str *v, uint64_t n);
/* Copies entry i of another file verbatim (any type, arrays included). */
int wisp_gguf_writer_copy_kv(wisp_gguf_writer *w, const wisp_gguf *src, int64_t i);

/* Declares a tensor; returns its index (data order) or a negative code. */
int64_t wisp_gguf_writer_tensor(wisp_gguf_writer *w, const char *name, int type, int n_dims,
                                const int64_t *ne);

/* Writes magic, counts, metadata, tensor infos and padding. */
int wisp_gguf_writer_write_header(wisp_gguf_writer *w, FILE *f, wisp_err *err);
/* Writes tensor i's data (its full byte size) and the padding after it;
 * tensors must be written in index order. */
int wisp_gguf_writer_write_data(wisp_gguf_writer *w, FILE *f, int64_t i, const void *data,
                                wisp_err *err);
/* Byte size of tensor i's data. */
size_t wisp_gguf_writer_tensor_bytes(const wisp_gguf_writer *w, int64_t i);

#endif
