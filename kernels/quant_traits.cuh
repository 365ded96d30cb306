/*
 * quant_traits.cuh - one traits struct per weight type for the templated
 * kernels (decode matvec, dequantize-to-F16, embedding lookup).
 *
 * A traits struct says how many elements a block holds (QK), how many
 * bytes it takes (BYTES), how many elements one dequant() call produces
 * (GR: a granule of 8, or 1 for the float types' any-length variants) and
 * wraps the shared host/device dequantizer of src/model/dequant_block.h, so
 * the GPU runs exactly the arithmetic the CPU unit test checks. The float
 * types get a vectorized 8-element path (16- or 32-byte loads; rows are
 * 16-byte aligned when n_in % 8 == 0) and a 1-element path for rows of any
 * length. k_dispatch_type() maps a runtime wisp_type to a call of a functor
 * template with the right traits: the one switch over types in kernels/.
 *
 * The block types' traits and their dispatch cases are generated from the
 * type list of src/model/types.h (every WEIGHT row), so their geometry is
 * the C table's and a new weight type needs no edit here; the float types'
 * vector traits are written out, their sizes derived from the same list.
 */
#ifndef WISP_QUANT_TRAITS_CUH
#define WISP_QUANT_TRAITS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "model/dequant_block.h"
#include "model/types.h"

#define WISP_K_QTRAITS(ID, id)                                                             \
    struct qt_##id {                                                                       \
        static constexpr int TYPE = WISP_TYPE_##ID;                                        \
        static constexpr int QK = WISP_BLOCK_ELEMS_##ID;                                   \
        static constexpr int BYTES = WISP_BLOCK_BYTES_##ID;                                \
        static constexpr int GR = 8;                                                       \
        static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o) \
        {                                                                                  \
            wisp_blk_##id##_dequant8(blk, g, o);                                           \
        }                                                                                  \
    };                                                                                     \
    static_assert(sizeof(wisp_block_##id) == WISP_BLOCK_BYTES_##ID, #ID " block size");

#define WISP_K_QT_FLOAT(ID, id)
#define WISP_K_QT_ACT(ID, id)
#define WISP_K_QT_WEIGHT(ID, id) WISP_K_QTRAITS(ID, id)
#define WISP_K_QT_ROW(ID, id, QK, BYTES, KIND) WISP_K_QT_##KIND(ID, id)
WISP_TYPES_COMPUTED(WISP_K_QT_ROW)

/* Float types, 8 elements per "block" with aligned vector loads. */
struct qt_f32 {
    static constexpr int TYPE = WISP_TYPE_F32, QK = 8, BYTES = 8 * WISP_BLOCK_BYTES_F32, GR = 8;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        const float4 *p = (const float4 *)blk;
        float4 a = p[0], b = p[1];
        o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
        o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
    }
};

struct qt_f16 {
    static constexpr int TYPE = WISP_TYPE_F16, QK = 8, BYTES = 8 * WISP_BLOCK_BYTES_F16, GR = 8;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        uint4 u = *(const uint4 *)blk;
        const __half2 *h = (const __half2 *)&u;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            o[2 * i] = f.x;
            o[2 * i + 1] = f.y;
        }
    }
};

struct qt_bf16 {
    static constexpr int TYPE = WISP_TYPE_BF16, QK = 8, BYTES = 8 * WISP_BLOCK_BYTES_BF16, GR = 8;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        uint4 u = *(const uint4 *)blk;
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            o[2 * i] = __uint_as_float(w[i] << 16);
            o[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
};

/* Float types element by element, for rows whose length is not a multiple
 * of 8 (tiny models such as stories260K have n_ff = 172). */
struct qt_f32_1 {
    static constexpr int TYPE = WISP_TYPE_F32, QK = 1, BYTES = WISP_BLOCK_BYTES_F32, GR = 1;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        o[0] = *(const float *)blk;
    }
};
struct qt_f16_1 {
    static constexpr int TYPE = WISP_TYPE_F16, QK = 1, BYTES = WISP_BLOCK_BYTES_F16, GR = 1;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        o[0] = __half2float(*(const __half *)blk);
    }
};
struct qt_bf16_1 {
    static constexpr int TYPE = WISP_TYPE_BF16, QK = 1, BYTES = WISP_BLOCK_BYTES_BF16, GR = 1;
    static __device__ __forceinline__ void dequant(const uint8_t *blk, int g, float *o)
    {
        o[0] = __uint_as_float((uint32_t)(*(const uint16_t *)blk) << 16);
    }
};

/* Calls F<traits>::run(args...) for the weight type, choosing the
 * element-wise float variant when the row length is not a multiple of 8.
 * Returns -1 for a type without kernels. */
template <template <class> class F, class... A>
static int k_dispatch_type(int type, int64_t n_in, A... args)
{
    const bool by8 = n_in % 8 == 0;
    switch (type) {
    case WISP_TYPE_F32: return by8 ? F<qt_f32>::run(args...) : F<qt_f32_1>::run(args...);
    case WISP_TYPE_F16: return by8 ? F<qt_f16>::run(args...) : F<qt_f16_1>::run(args...);
    case WISP_TYPE_BF16: return by8 ? F<qt_bf16>::run(args...) : F<qt_bf16_1>::run(args...);
#define WISP_K_CASE_FLOAT(ID, id)
#define WISP_K_CASE_ACT(ID, id)
#define WISP_K_CASE_WEIGHT(ID, id)                                                         \
    case WISP_TYPE_##ID: return F<qt_##id>::run(args...);
#define WISP_K_CASE_ROW(ID, id, QK, BYTES, KIND) WISP_K_CASE_##KIND(ID, id)
        WISP_TYPES_COMPUTED(WISP_K_CASE_ROW)
#undef WISP_K_CASE_ROW
#undef WISP_K_CASE_WEIGHT
#undef WISP_K_CASE_ACT
#undef WISP_K_CASE_FLOAT
    default: return -1;
    }
}

/* Host-side sizes of a supported type, read off the traits (the float
 * types as their 1-element variants): elements and bytes per block, or 0
 * for a type without kernels. */
template <class T> struct k_qk_of {
    static int run() { return T::QK; }
};
template <class T> struct k_bytes_of {
    static int run() { return T::BYTES; }
};

static inline int k_type_qk(int type)
{
    int r = k_dispatch_type<k_qk_of>(type, 1);
    return r < 0 ? 0 : r;
}

static inline size_t k_type_block_bytes(int type)
{
    int r = k_dispatch_type<k_bytes_of>(type, 1);
    return r < 0 ? 0 : (size_t)r;
}

#endif
