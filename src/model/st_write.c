/*
 * st_write.c - safetensors writer: see st_write.h.
 *
 * The header is built with jansson in declaration order (JSON_PRESERVE_ORDER)
 * so files are byte-for-byte deterministic.
 */
#include "model/st_write.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct wisp_st_writer {
    json_t *hdr;
    uint64_t *sizes;
    int64_t n, cap, next;
    uint64_t data_size;
};

wisp_st_writer *wisp_st_writer_new(void)
{
    wisp_st_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->hdr = json_pack("{s:{s:s}}", "__metadata__", "format", "pt");
    if (!w->hdr) {
        free(w);
        return NULL;
    }
    return w;
}

void wisp_st_writer_free(wisp_st_writer *w)
{
    if (!w)
        return;
    json_decref(w->hdr);
    free(w->sizes);
    free(w);
}

int64_t wisp_st_writer_tensor(wisp_st_writer *w, const char *name, const char *dtype, int elem_size,
                              int n_dims, const int64_t *shape)
{
    if (n_dims < 1 || n_dims > 4 || elem_size <= 0)
        return WISP_E_INVALID;
    if (w->n == w->cap) {
        int64_t cap = w->cap ? w->cap * 2 : 64;
        uint64_t *s = realloc(w->sizes, (size_t)cap * sizeof *s);
        if (!s)
            return WISP_E_NOMEM;
        w->sizes = s;
        w->cap = cap;
    }
    json_t *sh = json_array();
    uint64_t n = (uint64_t)elem_size;
    for (int d = 0; d < n_dims; d++) {
        json_array_append_new(sh, json_integer(shape[d]));
        n *= (uint64_t)shape[d];
    }
    json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype, "shape", sh, "data_offsets",
                          (json_int_t)w->data_size, (json_int_t)(w->data_size + n));
    if (!e || json_object_set_new(w->hdr, name, e) != 0)
        return WISP_E_NOMEM;
    w->sizes[w->n] = n;
    w->data_size += n;
    return w->n++;
}

size_t wisp_st_writer_tensor_bytes(const wisp_st_writer *w, int64_t i)
{
    return i >= 0 && i < w->n ? (size_t)w->sizes[i] : 0;
}

int wisp_st_writer_write_header(wisp_st_writer *w, FILE *f, wisp_err *err)
{
    char *s = json_dumps(w->hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        return wisp_err_set(err, WISP_E_NOMEM, "safetensors header");
    uint64_t n = strlen(s), padded = (n + 7) / 8 * 8;
    bool ok = fwrite(&padded, 8, 1, f) == 1 && fwrite(s, 1, n, f) == n;
    for (uint64_t i = n; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    free(s);
    w->next = 0;
    return ok ? 0 : wisp_err_set(err, WISP_E_IO, "writing the safetensors header failed");
}

int wisp_st_writer_write_data(wisp_st_writer *w, FILE *f, int64_t i, const void *data,
                              wisp_err *err)
{
    if (i != w->next || i >= w->n)
        return wisp_err_set(err, WISP_E_INVALID, "tensor %lld written out of order", (long long)i);
    if (fwrite(data, 1, (size_t)w->sizes[i], f) != w->sizes[i])
        return wisp_err_set(err, WISP_E_IO, "writing safetensors data failed");
    w->next++;
    return 0;
}
