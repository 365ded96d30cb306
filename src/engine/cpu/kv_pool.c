/*
 * kv_pool.c - the CPU engine's paged KV storage (see kv_pool.h).
 *
 * The element types are rows of a small table: which wisp_type stores the
 * row and how a row converts. F16 rows convert with vec.h (F16C where the
 * baseline has it, the same bits without); Q8_0 uses the type table's
 * reference conversions, which is what llama.cpp's q8_0 cache computes.
 */
#include "engine/cpu/kv_pool.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cpu/vec.h"
#include "model/types.h"

static void store_f32(const float *src, void *dst, int n) { memcpy(dst, src, (size_t)n * 4); }
static void load_f32(const void *src, float *dst, int n) { memcpy(dst, src, (size_t)n * 4); }

static void store_f16(const float *src, void *dst, int n) { wisp_vec_f32_to_f16(src, dst, n); }
static void load_f16(const void *src, float *dst, int n) { wisp_vec_f16_to_f32(src, dst, n); }

static void store_q8_0(const float *src, void *dst, int n)
{
    wisp_type_get(WISP_TYPE_Q8_0)->from_float(src, dst, n);
}

static void load_q8_0(const void *src, float *dst, int n)
{
    wisp_type_get(WISP_TYPE_Q8_0)->to_float(src, dst, n);
}

static const struct kv_type_row {
    void (*store)(const float *src, void *dst, int n);
    void (*load)(const void *src, float *dst, int n);
} kv_types[WISP_KV_TYPE_COUNT] = {
    [WISP_KV_F16] = {store_f16, load_f16},
    [WISP_KV_Q8_0] = {store_q8_0, load_q8_0},
    [WISP_KV_F32] = {store_f32, load_f32},
};

int wisp_kv_pool_init(wisp_kv_pool *p, wisp_kv_type type, int n_layers, int n_blocks,
                      int block_size, int n_head_kv, int head_dim, wisp_err *err)
{
    memset(p, 0, sizeof(*p));
    if ((int)type < 0 || type >= WISP_KV_TYPE_COUNT || !kv_types[type].store)
        return wisp_err_set(err, WISP_E_INTERNAL, "kv pool: unknown KV type %d", (int)type);
    if (n_layers <= 0 || n_blocks <= 0 || block_size <= 0 || n_head_kv <= 0 || head_dim <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "kv pool: bad shape (layers %d, blocks %d, block size %d, kv heads "
                            "%d, head dim %d)",
                            n_layers, n_blocks, block_size, n_head_kv, head_dim);
    const int elem = wisp_kv_type_elem(type);
    size_t row = wisp_type_row_size(elem, head_dim);
    if (row == 0)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "kv pool: a %s KV cache needs head_dim %d to be a multiple of %d",
                            wisp_kv_type_name(type), head_dim, wisp_type_get(elem)->block_size);
    p->type = type;
    p->n_layers = n_layers;
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->n_head_kv = n_head_kv;
    p->head_dim = head_dim;
    p->row_bytes = row;
    p->span_bytes = row * (size_t)n_head_kv * (size_t)block_size;
    size_t total = wisp_kv_pool_bytes(p);
    /* calloc: large pools come from fresh zero pages the kernel maps lazily. */
    p->data = calloc(1, total);
    if (!p->data)
        return wisp_err_set(err, WISP_E_NOMEM, "kv pool: cannot allocate %zu bytes (%d blocks)",
                            total, n_blocks);
    return 0;
}

void wisp_kv_pool_free(wisp_kv_pool *p)
{
    free(p->data);
    p->data = NULL;
}

size_t wisp_kv_pool_bytes(const wisp_kv_pool *p)
{
    return p->span_bytes * 2 * (size_t)p->n_layers * (size_t)p->n_blocks;
}

void wisp_kv_store_row(const wisp_kv_pool *p, const float *src, void *dst)
{
    kv_types[p->type].store(src, dst, p->head_dim);
}

void wisp_kv_load_row(const wisp_kv_pool *p, const void *src, float *dst)
{
    kv_types[p->type].load(src, dst, p->head_dim);
}

static int check_block(const wisp_kv_pool *p, int32_t b, const char *what, wisp_err *err)
{
    if (b < 0 || b >= p->n_blocks)
        return wisp_err_set(err, WISP_E_INTERNAL, "kv pool: %s block %d outside [0, %d)", what,
                            (int)b, p->n_blocks);
    return 0;
}

int wisp_kv_pool_copy_block(wisp_kv_pool *p, int32_t dst, int32_t src, wisp_err *err)
{
    int rc;
    if ((rc = check_block(p, dst, "destination", err)) || (rc = check_block(p, src, "source", err)))
        return rc;
    if (dst == src)
        return 0;
    for (int l = 0; l < p->n_layers; l++)
        for (int kv = 0; kv < 2; kv++)
            memcpy(wisp_kv_row(p, l, kv, dst, 0, 0), wisp_kv_row(p, l, kv, src, 0, 0),
                   p->span_bytes);
    return 0;
}

size_t wisp_kv_pool_block_bytes(const wisp_kv_pool *p)
{
    return p->span_bytes * 2 * (size_t)p->n_layers;
}

int wisp_kv_pool_read_block(const wisp_kv_pool *p, int32_t block, void *dst, wisp_err *err)
{
    int rc = check_block(p, block, "read", err);
    if (rc)
        return rc;
    uint8_t *d = dst;
    for (int l = 0; l < p->n_layers; l++)
        for (int kv = 0; kv < 2; kv++, d += p->span_bytes)
            memcpy(d, wisp_kv_row(p, l, kv, block, 0, 0), p->span_bytes);
    return 0;
}

int wisp_kv_pool_write_block(wisp_kv_pool *p, int32_t block, const void *src, wisp_err *err)
{
    int rc = check_block(p, block, "write", err);
    if (rc)
        return rc;
    const uint8_t *s = src;
    for (int l = 0; l < p->n_layers; l++)
        for (int kv = 0; kv < 2; kv++, s += p->span_bytes)
            memcpy(wisp_kv_row(p, l, kv, block, 0, 0), s, p->span_bytes);
    return 0;
}
