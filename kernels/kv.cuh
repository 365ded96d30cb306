/*
 * kv.cuh - addressing and element access of the device KV pool, shared by
 * the append kernel (kv.cu) and attention (attn.cu). The layout is the one
 * wisp_k_kv_layout describes: block -> layer -> K|V -> offset -> head ->
 * head_dim elements in the pool's type. Loads convert to F32; the Q8_0
 * store is ggml's reference quantizer (d = amax/127 kept as a half,
 * q = round(x / d)), done by one warp per 32-element group.
 */
#ifndef WISP_KV_CUH
#define WISP_KV_CUH

#include <cuda_fp16.h>

#include "kcommon.cuh"
#include "model/kv_type.h"

/* The cache formats and their block geometry are the C tables'
 * (model/kv_type.h, model/types.h). */
enum { KV_F16 = WISP_KV_F16, KV_Q8_0 = WISP_KV_Q8_0, KV_F32 = WISP_KV_F32 };
enum { KV_Q8_QK = WISP_BLOCK_ELEMS_Q8_0, KV_Q8_BYTES = WISP_BLOCK_BYTES_Q8_0 };
static_assert(KV_Q8_QK == WISP_WARP, "one warp lane per quant of a Q8_0 block");
static_assert(KV_Q8_BYTES == 2 + KV_Q8_QK, "a Q8_0 block is a half scale and its quants");

/* The row of (block, layer, kind 0=K/1=V, offset in block, kv head). */
static __device__ __forceinline__ const uint8_t *kv_row(const uint8_t *pool,
                                                        const wisp_k_kv_layout &l, int64_t blk,
                                                        int layer, int kind, int off, int head)
{
    return pool + blk * (int64_t)l.block_bytes + (int64_t)(2 * layer + kind) * l.span_bytes +
           ((int64_t)off * l.n_kv_heads + head) * l.row_bytes;
}

template <int KT> static __device__ __forceinline__ float kv_load(const uint8_t *row, int d);

template <> __device__ __forceinline__ float kv_load<KV_F16>(const uint8_t *row, int d)
{
    return __half2float(((const __half *)row)[d]);
}
template <> __device__ __forceinline__ float kv_load<KV_F32>(const uint8_t *row, int d)
{
    return ((const float *)row)[d];
}
template <> __device__ __forceinline__ float kv_load<KV_Q8_0>(const uint8_t *row, int d)
{
    const uint8_t *b = row + (d / KV_Q8_QK) * KV_Q8_BYTES;
    const float scale = __half2float(__ushort_as_half((uint16_t)(b[0] | (b[1] << 8))));
    return scale * (float)(int8_t)b[2 + d % KV_Q8_QK];
}

/* Stores one head row of n floats; called by all 32 lanes of a warp. */
template <int KT>
static __device__ __forceinline__ void kv_store_row(uint8_t *row, const float *x, int n,
                                                    int lane);

template <>
__device__ __forceinline__ void kv_store_row<KV_F16>(uint8_t *row, const float *x, int n,
                                                     int lane)
{
    for (int d = lane; d < n; d += WISP_WARP)
        ((__half *)row)[d] = __float2half_rn(x[d]);
}

template <>
__device__ __forceinline__ void kv_store_row<KV_F32>(uint8_t *row, const float *x, int n,
                                                     int lane)
{
    for (int d = lane; d < n; d += WISP_WARP)
        ((float *)row)[d] = x[d];
}

/* n % 32 == 0 (checked when the layout is made). */
template <>
__device__ __forceinline__ void kv_store_row<KV_Q8_0>(uint8_t *row, const float *x, int n,
                                                      int lane)
{
    for (int g = 0; g < n / KV_Q8_QK; g++) {
        const float v = x[KV_Q8_QK * g + lane];
        const float amax = k_warp_max(fabsf(v));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *b = row + g * KV_Q8_BYTES;
        if (lane == 0) {
            const uint16_t h = __half_as_ushort(__float2half_rn(d));
            b[0] = (uint8_t)(h & 0xff);
            b[1] = (uint8_t)(h >> 8);
        }
        b[2 + lane] = (uint8_t)(int8_t)roundf(v * id);
    }
}

#endif
