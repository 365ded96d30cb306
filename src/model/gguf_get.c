/*
 * gguf_get.c - typed access to a validated GGUF file's metadata and tensor
 * infos (see gguf.h). Everything read here was bounds-checked by gguf.c at
 * open time, so these getters only check types and indices; values are
 * read with memcpy because the mapping is unaligned.
 */
#include <stdlib.h>
#include <string.h>

#include "model/gguf_int.h"

/* ------------------------------------------------------------ metadata */

int64_t wisp_gguf_n_kv(const wisp_gguf *g) { return g->n_kv; }

int64_t wisp_gguf_find_key(const wisp_gguf *g, const char *key)
{
    size_t n = strlen(key);
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.len == n && memcmp(g->kv[i].key.ptr, key, n) == 0)
            return i;
    return -1;
}

wisp_str wisp_gguf_key_name(const wisp_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv)
        return (wisp_str){NULL, 0};
    return g->kv[i].key;
}

wisp_gguf_vtype wisp_gguf_kv_type(const wisp_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv)
        return (wisp_gguf_vtype)-1;
    return g->kv[i].type;
}

/* Reads an integer of type t at p; false when t is not an integer type. */
static bool read_int(const uint8_t *p, wisp_gguf_vtype t, int64_t *iv, uint64_t *uv, bool *neg)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
    } v;
    memcpy(&v, p, wisp_gguf_vtype_size(t) ? wisp_gguf_vtype_size(t) : 1);
    switch (t) {
    case WISP_GGUF_UINT8: *uv = v.u8; break;
    case WISP_GGUF_UINT16: *uv = v.u16; break;
    case WISP_GGUF_UINT32: *uv = v.u32; break;
    case WISP_GGUF_UINT64: *uv = v.u64; break;
    case WISP_GGUF_INT8: *iv = v.i8; goto sgn;
    case WISP_GGUF_INT16: *iv = v.i16; goto sgn;
    case WISP_GGUF_INT32: *iv = v.i32; goto sgn;
    case WISP_GGUF_INT64: *iv = v.i64; goto sgn;
    default: return false;
    }
    *neg = false;
    *iv = *uv > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*uv;
    return true;
sgn:
    *neg = *iv < 0;
    *uv = *neg ? 0 : (uint64_t)*iv;
    return true;
}

static const gguf_kv *kv_get(const wisp_gguf *g, const char *key)
{
    int64_t i = wisp_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

bool wisp_gguf_get_u32(const wisp_gguf *g, const char *key, uint32_t *out)
{
    const gguf_kv *kv = kv_get(g, key);
    int64_t iv;
    uint64_t uv;
    bool neg;
    if (!kv || !read_int(g->base + kv->val_off, kv->type, &iv, &uv, &neg))
        return false;
    if (neg || uv > UINT32_MAX)
        return false;
    *out = (uint32_t)uv;
    return true;
}

bool wisp_gguf_get_i64(const wisp_gguf *g, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_get(g, key);
    int64_t iv;
    uint64_t uv;
    bool neg;
    if (!kv || !read_int(g->base + kv->val_off, kv->type, &iv, &uv, &neg))
        return false;
    if (!neg && uv > (uint64_t)INT64_MAX)
        return false;
    *out = iv;
    return true;
}

bool wisp_gguf_get_f32(const wisp_gguf *g, const char *key, float *out)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv)
        return false;
    if (kv->type == WISP_GGUF_FLOAT32) {
        memcpy(out, g->base + kv->val_off, 4);
        return true;
    }
    if (kv->type == WISP_GGUF_FLOAT64) {
        double d;
        memcpy(&d, g->base + kv->val_off, 8);
        *out = (float)d;
        return true;
    }
    return false;
}

bool wisp_gguf_get_bool(const wisp_gguf *g, const char *key, bool *out)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_BOOL)
        return false;
    *out = g->base[kv->val_off] != 0;
    return true;
}

static wisp_str str_at(const wisp_gguf *g, uint64_t off)
{
    uint64_t len;
    memcpy(&len, g->base + off, 8);
    return (wisp_str){(const char *)g->base + off + 8, (size_t)len};
}

bool wisp_gguf_get_str(const wisp_gguf *g, const char *key, wisp_str *out)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_STRING)
        return false;
    *out = str_at(g, kv->val_off);
    return true;
}

bool wisp_gguf_get_arr(const wisp_gguf *g, const char *key, wisp_gguf_vtype *elem_type,
                       uint64_t *len)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_ARRAY)
        return false;
    *elem_type = kv->elem_type;
    *len = kv->n;
    return true;
}

wisp_str wisp_gguf_arr_str(const wisp_gguf *g, const char *key, uint64_t i)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_ARRAY || kv->elem_type != WISP_GGUF_STRING || i >= kv->n)
        return (wisp_str){NULL, 0};
    return str_at(g, kv->str_offs[i]);
}

int64_t wisp_gguf_arr_int(const wisp_gguf *g, const char *key, uint64_t i)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_ARRAY || i >= kv->n)
        return 0;
    size_t esz = wisp_gguf_vtype_size(kv->elem_type);
    int64_t iv = 0;
    uint64_t uv;
    bool neg;
    if (!esz || !read_int(g->base + kv->val_off + 12 + i * esz, kv->elem_type, &iv, &uv, &neg))
        return 0;
    return iv;
}

double wisp_gguf_arr_float(const wisp_gguf *g, const char *key, uint64_t i)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_ARRAY || i >= kv->n)
        return 0;
    size_t esz = wisp_gguf_vtype_size(kv->elem_type);
    const uint8_t *p = g->base + kv->val_off + 12 + i * esz;
    if (kv->elem_type == WISP_GGUF_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    if (kv->elem_type == WISP_GGUF_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    int64_t iv;
    uint64_t uv;
    bool neg;
    if (!esz || kv->elem_type == WISP_GGUF_BOOL || !read_int(p, kv->elem_type, &iv, &uv, &neg))
        return 0;
    return neg ? (double)iv : (double)uv;
}

/* ------------------------------------------------------------ tensors */

int64_t wisp_gguf_n_tensors(const wisp_gguf *g) { return g->n_tensors; }

const wisp_gguf_tensor *wisp_gguf_tensor_at(const wisp_gguf *g, int64_t i)
{
    return i < 0 || i >= g->n_tensors ? NULL : &g->tensors[i];
}

const wisp_gguf_tensor *wisp_gguf_find_tensor(const wisp_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (wisp_str_eq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

const void *wisp_gguf_arr_data(const wisp_gguf *g, const char *key)
{
    const gguf_kv *kv = kv_get(g, key);
    if (!kv || kv->type != WISP_GGUF_ARRAY || !wisp_gguf_vtype_size(kv->elem_type))
        return NULL;
    return g->base + kv->val_off + 12;
}

bool wisp_gguf_kv_raw(const wisp_gguf *g, int64_t i, const void **val, size_t *size)
{
    if (i < 0 || i >= g->n_kv)
        return false;
    *val = g->base + g->kv[i].val_off;
    *size = (size_t)g->kv[i].val_size;
    return true;
}
