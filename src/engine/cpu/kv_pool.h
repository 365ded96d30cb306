/*
 * kv_pool.h - the CPU engine's paged KV storage.
 *
 * One allocation holds, for every layer, a K array and a V array laid out
 * [n_blocks][block_size][n_head_kv][head_dim] in the pool's element type
 * (F16 by default, Q8_0 to halve it again, F32 for parity tests). A block of
 * one layer's K (or V) is therefore one contiguous span, which makes
 * copy-on-write, export to the host tier and disk persistence plain
 * memcpys, and a (token, kv head) row is a contiguous head_dim vector that
 * attention converts to F32 once and dots with every query head of its
 * group. Private to src/engine/cpu.
 */
#ifndef WISP_KV_POOL_H
#define WISP_KV_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/engine.h"

typedef struct wisp_kv_pool {
    wisp_kv_type type;
    int n_layers, n_blocks, block_size, n_head_kv, head_dim;
    size_t row_bytes;  /* one (token, kv head) row of head_dim elements */
    size_t span_bytes; /* one block of one layer's K or V */
    uint8_t *data;     /* [n_layers][2 (K, V)][n_blocks] spans */
} wisp_kv_pool;

/* Allocates a zeroed pool. Returns 0, WISP_E_UNSUPPORTED (Q8_0 with a
 * head_dim that is not a multiple of 32), WISP_E_INTERNAL (a bad type or
 * shape) or WISP_E_NOMEM. */
int wisp_kv_pool_init(wisp_kv_pool *p, wisp_kv_type type, int n_layers, int n_blocks,
                      int block_size, int n_head_kv, int head_dim, wisp_err *err);
void wisp_kv_pool_free(wisp_kv_pool *p);

size_t wisp_kv_pool_bytes(const wisp_kv_pool *p);

/* The row of (layer, K (kv=0) or V (kv=1), block, offset in block, head). */
static inline uint8_t *wisp_kv_row(const wisp_kv_pool *p, int layer, int kv, int32_t block, int off,
                                   int head)
{
    size_t span = ((size_t)layer * 2 + (size_t)kv) * (size_t)p->n_blocks + (size_t)block;
    return p->data + span * p->span_bytes +
           ((size_t)off * (size_t)p->n_head_kv + (size_t)head) * p->row_bytes;
}

/* Converts one row between F32 and the pool's type. */
void wisp_kv_store_row(const wisp_kv_pool *p, const float *src, void *dst);
void wisp_kv_load_row(const wisp_kv_pool *p, const void *src, float *dst);

/* Whole-block operations over all layers (K and V). Block ids are checked. */
int wisp_kv_pool_copy_block(wisp_kv_pool *p, int32_t dst, int32_t src, wisp_err *err);
size_t wisp_kv_pool_block_bytes(const wisp_kv_pool *p);
int wisp_kv_pool_read_block(const wisp_kv_pool *p, int32_t block, void *dst, wisp_err *err);
int wisp_kv_pool_write_block(wisp_kv_pool *p, int32_t block, const void *src, wisp_err *err);

#endif
