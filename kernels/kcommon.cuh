/*
 * kcommon.cuh - device helpers every kernel file shares: warp and block
 * reductions, launch-error checking that turns a failed launch into a
 * wisp_err, and small integer helpers. Header-only and static so each .cu
 * file stays a self-contained translation unit.
 */
#ifndef WISP_KCOMMON_CUH
#define WISP_KCOMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "engine/cuda/kernels.h"

#define WISP_WARP 32

static __device__ __forceinline__ float k_warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float k_warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of up to 1024 threads (blockDim.x a multiple of 32);
 * every thread gets the result. Uses 32 floats of shared memory. */
static __device__ __forceinline__ float k_block_sum(float v)
{
    __shared__ float part[32];
    const int lane = threadIdx.x % WISP_WARP, warp = threadIdx.x / WISP_WARP;
    const int n_warps = (int)blockDim.x / WISP_WARP;
    v = k_warp_sum(v);
    __syncthreads(); /* part may still be read by a previous call */
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < n_warps ? part[lane] : 0.0f;
    return k_warp_sum(v);
}

static __device__ __forceinline__ float k_block_max(float v)
{
    __shared__ float part[32];
    const int lane = threadIdx.x % WISP_WARP, warp = threadIdx.x / WISP_WARP;
    const int n_warps = (int)blockDim.x / WISP_WARP;
    v = k_warp_max(v);
    __syncthreads();
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < n_warps ? part[lane] : -INFINITY;
    return k_warp_max(v);
}

static inline int64_t k_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Grid x holds up to 2^31-1 blocks; y and z up to 65535. */
#define WISP_K_MAX_GRID_X 2147483647LL

/* Turns the last launch's status into a wisp_err. */
static inline int k_check_launch(const char *what, wisp_err *err)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return wisp_err_set(err, WISP_E_DEVICE, "%s: kernel launch failed: %s (%s)", what,
                            cudaGetErrorName(e), cudaGetErrorString(e));
    return 0;
}

#endif
