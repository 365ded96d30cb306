/*
 * gguf_write.c - GGUF writer: see gguf_write.h.
 *
 * Metadata is encoded as it is added into one growing byte buffer (the file
 * format is its own in-memory representation), tensor infos are kept as a
 * small table whose offsets are assigned at declaration, so the header can
 * be written in one pass and the data streamed afterwards.
 */
#include "model/gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "model/types.h"

typedef struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[WISP_MAX_DIMS];
    uint64_t offset; /* relative to the data section */
    uint64_t nbytes;
} wtensor;

struct wisp_gguf_writer {
    uint32_t version, alignment;
    uint8_t *kv;
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    uint64_t data_size;
    int64_t next_data; /* next tensor index expected by write_data */
};

wisp_gguf_writer *wisp_gguf_writer_new(void)
{
    wisp_gguf_writer *w = calloc(1, sizeof *w);
    if (w) {
        w->version = 3;
        w->alignment = 32;
    }
    return w;
}

void wisp_gguf_writer_free(wisp_gguf_writer *w)
{
    if (!w)
        return;
    for (int64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

void wisp_gguf_writer_set_version(wisp_gguf_writer *w, uint32_t version) { w->version = version; }

static int put(wisp_gguf_writer *w, const void *p, size_t n)
{
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = (w->kv_len + n) * 2 + 256;
        uint8_t *k = realloc(w->kv, cap);
        if (!k)
            return WISP_E_NOMEM;
        w->kv = k;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}

static int put_str(wisp_gguf_writer *w, const char *s, size_t n)
{
    uint64_t len = n;
    return put(w, &len, 8) || put(w, s, n) ? WISP_E_NOMEM : 0;
}

static int put_key(wisp_gguf_writer *w, const char *key, wisp_gguf_vtype t)
{
    uint32_t tt = (uint32_t)t;
    if (put_str(w, key, strlen(key)) || put(w, &tt, 4))
        return WISP_E_NOMEM;
    w->n_kv++;
    return 0;
}

static int scalar(wisp_gguf_writer *w, const char *key, wisp_gguf_vtype t, const void *v, size_t n)
{
    return put_key(w, key, t) || put(w, v, n) ? WISP_E_NOMEM : 0;
}

void wisp_gguf_writer_set_alignment(wisp_gguf_writer *w, uint32_t alignment)
{
    w->alignment = alignment;
    wisp_gguf_writer_u32(w, "general.alignment", alignment);
}

int wisp_gguf_writer_u32(wisp_gguf_writer *w, const char *key, uint32_t v)
{
    return scalar(w, key, WISP_GGUF_UINT32, &v, 4);
}
int wisp_gguf_writer_i32(wisp_gguf_writer *w, const char *key, int32_t v)
{
    return scalar(w, key, WISP_GGUF_INT32, &v, 4);
}
int wisp_gguf_writer_f32(wisp_gguf_writer *w, const char *key, float v)
{
    return scalar(w, key, WISP_GGUF_FLOAT32, &v, 4);
}
int wisp_gguf_writer_bool(wisp_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    return scalar(w, key, WISP_GGUF_BOOL, &b, 1);
}
int wisp_gguf_writer_str(wisp_gguf_writer *w, const char *key, const char *v)
{
    return put_key(w, key, WISP_GGUF_STRING) || put_str(w, v, strlen(v)) ? WISP_E_NOMEM : 0;
}

static const size_t elem_sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

int wisp_gguf_writer_arr(wisp_gguf_writer *w, const char *key, wisp_gguf_vtype elem_type,
                         const void *elems, uint64_t n)
{
    if ((unsigned)elem_type > WISP_GGUF_FLOAT64 || elem_sizes[elem_type] == 0)
        return WISP_E_INVALID;
    uint32_t et = (uint32_t)elem_type;
    if (put_key(w, key, WISP_GGUF_ARRAY) || put(w, &et, 4) || put(w, &n, 8) ||
        put(w, elems, (size_t)n * elem_sizes[elem_type]))
        return WISP_E_NOMEM;
    return 0;
}

int wisp_gguf_writer_arr_str(wisp_gguf_writer *w, const char *key, const wisp_str *v, uint64_t n)
{
    uint32_t et = WISP_GGUF_STRING;
    if (put_key(w, key, WISP_GGUF_ARRAY) || put(w, &et, 4) || put(w, &n, 8))
        return WISP_E_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(w, v[i].ptr, v[i].len))
            return WISP_E_NOMEM;
    return 0;
}

int wisp_gguf_writer_copy_kv(wisp_gguf_writer *w, const wisp_gguf *src, int64_t i)
{
    const void *val;
    size_t size;
    if (!wisp_gguf_kv_raw(src, i, &val, &size))
        return WISP_E_INVALID;
    wisp_str k = wisp_gguf_key_name(src, i);
    uint32_t t = (uint32_t)wisp_gguf_kv_type(src, i);
    if (put_str(w, k.ptr, k.len) || put(w, &t, 4) || put(w, val, size))
        return WISP_E_NOMEM;
    w->n_kv++;
    return 0;
}

int64_t wisp_gguf_writer_tensor(wisp_gguf_writer *w, const char *name, int type, int n_dims,
                                const int64_t *ne)
{
    if (n_dims < 1 || n_dims > WISP_MAX_DIMS)
        return WISP_E_INVALID;
    int64_t nrows = 1;
    for (int d = 1; d < n_dims; d++)
        nrows *= ne[d];
    size_t row = wisp_type_row_size(type, ne[0]);
    if (row == 0)
        return WISP_E_INVALID;
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t)
            return WISP_E_NOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return WISP_E_NOMEM;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->ne[d] = ne[d];
    t->nbytes = (uint64_t)row * (uint64_t)nrows;
    t->offset = w->data_size;
    w->data_size += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    return w->n_t++;
}

size_t wisp_gguf_writer_tensor_bytes(const wisp_gguf_writer *w, int64_t i)
{
    return i >= 0 && i < w->n_t ? (size_t)w->t[i].nbytes : 0;
}

static int write_pad(FILE *f, uint64_t pos, uint32_t align)
{
    static const uint8_t zeros[256];
    uint64_t n = (align - pos % align) % align;
    while (n > 0) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        if (fwrite(zeros, 1, k, f) != k)
            return -1;
        n -= k;
    }
    return 0;
}

int wisp_gguf_writer_write_header(wisp_gguf_writer *w, FILE *f, wisp_err *err)
{
    uint64_t nt = (uint64_t)w->n_t, pos = 0;
    bool ok = fwrite("GGUF", 1, 4, f) == 4 && fwrite(&w->version, 4, 1, f) == 1 &&
              fwrite(&nt, 8, 1, f) == 1 && fwrite(&w->n_kv, 8, 1, f) == 1 &&
              fwrite(w->kv, 1, w->kv_len, f) == w->kv_len;
    pos = 24 + w->kv_len;
    for (int64_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t len = strlen(t->name), ne;
        uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
        ok = fwrite(&len, 8, 1, f) == 1 && fwrite(t->name, 1, len, f) == len &&
             fwrite(&nd, 4, 1, f) == 1;
        for (int d = 0; ok && d < t->n_dims; d++) {
            ne = (uint64_t)t->ne[d];
            ok = fwrite(&ne, 8, 1, f) == 1;
        }
        ok = ok && fwrite(&type, 4, 1, f) == 1 && fwrite(&t->offset, 8, 1, f) == 1;
        pos += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
    }
    if (ok && w->n_t > 0)
        ok = write_pad(f, pos, w->alignment) == 0;
    w->next_data = 0;
    return ok ? 0 : wisp_err_set(err, WISP_E_IO, "writing the GGUF header failed");
}

int wisp_gguf_writer_write_data(wisp_gguf_writer *w, FILE *f, int64_t i, const void *data,
                                wisp_err *err)
{
    if (i != w->next_data || i >= w->n_t)
        return wisp_err_set(err, WISP_E_INVALID, "tensor %lld written out of order", (long long)i);
    const wtensor *t = &w->t[i];
    if (fwrite(data, 1, (size_t)t->nbytes, f) != t->nbytes ||
        write_pad(f, t->nbytes, w->alignment) != 0)
        return wisp_err_set(err, WISP_E_IO, "writing tensor %s failed", t->name);
    w->next_data++;
    return 0;
}
