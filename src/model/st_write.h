/*
 * st_write.h - writes safetensors files (the synthesizer and tests).
 *
 * Tensors are declared first (name, dtype, row-major shape); the header is
 * then written, padded with spaces to a multiple of 8 bytes as the format
 * recommends, and the data follow in declaration order, contiguous.
 */
#ifndef WISP_ST_WRITE_H
#define WISP_ST_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

typedef struct wisp_st_writer wisp_st_writer;

wisp_st_writer *wisp_st_writer_new(void);
void wisp_st_writer_free(wisp_st_writer *w);
/* dtype "F32", "F16" or "BF16" (any name is written as given; bytes per
 * element elem_size). shape is row-major, n_dims 1..4. Returns the index
 * or a negative code. */
int64_t wisp_st_writer_tensor(wisp_st_writer *w, const char *name, const char *dtype, int elem_size,
                              int n_dims, const int64_t *shape);
int wisp_st_writer_write_header(wisp_st_writer *w, FILE *f, wisp_err *err);
/* Tensor i's bytes, in index order. */
int wisp_st_writer_write_data(wisp_st_writer *w, FILE *f, int64_t i, const void *data,
                              wisp_err *err);
size_t wisp_st_writer_tensor_bytes(const wisp_st_writer *w, int64_t i);

#endif
