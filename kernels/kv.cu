/*
 * kv.cu - the KV pool's layout and the append of a step's K and V rows.
 *
 * The host computes each new token's slot (physical block * block_size +
 * offset) from its sequence's block table, so the kernel is a scatter: one
 * warp per (token, kv head, K|V) row converts the F32 row to the pool type
 * and writes it in place.
 */
#include <string.h>

#include "kv.cuh"

#define KV_WARPS 4

extern "C" int wisp_k_kv_layout_init(wisp_k_kv_layout *l, int kv_type, int n_layers,
                                     int block_size, int n_kv_heads, int head_dim, wisp_err *err)
{
    memset(l, 0, sizeof(*l));
    if (n_layers <= 0 || block_size <= 0 || n_kv_heads <= 0 || head_dim <= 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "kv layout: bad shape (layers %d, block size %d, kv heads %d, head "
                            "dim %d)",
                            n_layers, block_size, n_kv_heads, head_dim);
    size_t row;
    switch (kv_type) {
    case KV_F16: row = (size_t)head_dim * WISP_BLOCK_BYTES_F16; break;
    case KV_F32: row = (size_t)head_dim * WISP_BLOCK_BYTES_F32; break;
    case KV_Q8_0:
        if (head_dim % KV_Q8_QK != 0)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "kv layout: a q8_0 KV cache needs head_dim %d to be a multiple "
                                "of %d",
                                head_dim, (int)KV_Q8_QK);
        row = (size_t)head_dim / KV_Q8_QK * KV_Q8_BYTES;
        break;
    default:
        return wisp_err_set(err, WISP_E_INVALID, "kv layout: unknown KV type %d", kv_type);
    }
    l->kv_type = kv_type;
    l->n_layers = n_layers;
    l->block_size = block_size;
    l->n_kv_heads = n_kv_heads;
    l->head_dim = head_dim;
    l->row_bytes = row;
    l->span_bytes = row * (size_t)n_kv_heads * (size_t)block_size;
    l->block_bytes = l->span_bytes * 2 * (size_t)n_layers;
    return 0;
}

template <int KT>
static __global__ void __launch_bounds__(KV_WARPS * WISP_WARP)
    k_kv_append(uint8_t *pool, wisp_k_kv_layout l, int layer, const float *__restrict__ k,
                const float *__restrict__ v, const int32_t *__restrict__ slots, int n_tok)
{
    const int64_t r = (int64_t)blockIdx.x * KV_WARPS + threadIdx.x / WISP_WARP;
    const int lane = threadIdx.x % WISP_WARP;
    const int64_t n_rows = (int64_t)n_tok * l.n_kv_heads * 2;
    if (r >= n_rows)
        return;
    const int kind = (int)(r % 2);
    const int head = (int)((r / 2) % l.n_kv_heads);
    const int64_t t = r / 2 / l.n_kv_heads;
    const int32_t slot = slots[t];
    const float *src = (kind ? v : k) + (t * l.n_kv_heads + head) * l.head_dim;
    uint8_t *row = (uint8_t *)kv_row(pool, l, slot / l.block_size, layer, kind,
                                     slot % l.block_size, head);
    kv_store_row<KT>(row, src, l.head_dim, lane);
}

extern "C" int wisp_k_kv_append(void *pool, const wisp_k_kv_layout *l, int layer, const float *k,
                                const float *v, const int32_t *slots, int n_tok, cudaStream_t s,
                                wisp_err *err)
{
    if (layer < 0 || layer >= l->n_layers)
        return wisp_err_set(err, WISP_E_INVALID, "kv_append: layer %d outside [0, %d)", layer,
                            l->n_layers);
    if (n_tok <= 0)
        return 0;
    const int64_t rows = (int64_t)n_tok * l->n_kv_heads * 2;
    const unsigned blocks = (unsigned)k_cdiv(rows, KV_WARPS);
    const int threads = KV_WARPS * WISP_WARP;
    switch (l->kv_type) {
    case KV_F16:
        k_kv_append<KV_F16><<<blocks, threads, 0, s>>>((uint8_t *)pool, *l, layer, k, v, slots,
                                                       n_tok);
        break;
    case KV_F32:
        k_kv_append<KV_F32><<<blocks, threads, 0, s>>>((uint8_t *)pool, *l, layer, k, v, slots,
                                                       n_tok);
        break;
    case KV_Q8_0:
        k_kv_append<KV_Q8_0><<<blocks, threads, 0, s>>>((uint8_t *)pool, *l, layer, k, v, slots,
                                                        n_tok);
        break;
    default:
        return wisp_err_set(err, WISP_E_INVALID, "kv_append: unknown KV type %d", l->kv_type);
    }
    return k_check_launch("kv_append", err);
}
