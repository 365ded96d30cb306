/*
 * sample.cu - argmax and top-k of logit rows on the device, so that greedy
 * decoding and top-k sampling copy k numbers back instead of a whole
 * vocabulary row.
 *
 * Both use one block per row and the total order "larger value first,
 * lower index among equals"; NaNs never compare and are skipped. Top-k runs
 * k block-wide arg-max passes, each over the elements strictly after the
 * previous pick in that order: k is small (<= WISP_K_TOPK_MAX) and a row
 * stays in L2 between passes, so this is simple and exact (no ties lost, no
 * partial sort to get wrong).
 */
#include <limits.h>

#include "kcommon.cuh"

#define SAMPLE_BLOCK 512

struct vi {
    float v;
    int i;
};

/* a before b in the order (NaN-free inputs; i == INT_MAX means empty). */
static __device__ __forceinline__ bool vi_better(vi a, vi b)
{
    return a.v > b.v || (a.v == b.v && a.i < b.i);
}

static __device__ vi block_best(vi x)
{
    __shared__ float sv[32];
    __shared__ int si[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        vi y;
        y.v = __shfl_xor_sync(0xffffffffu, x.v, o);
        y.i = __shfl_xor_sync(0xffffffffu, x.i, o);
        if (vi_better(y, x))
            x = y;
    }
    const int lane = threadIdx.x % WISP_WARP, warp = threadIdx.x / WISP_WARP;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = x.v;
        si[warp] = x.i;
    }
    __syncthreads();
    const int n_warps = (int)blockDim.x / WISP_WARP;
    x.v = lane < n_warps ? sv[lane] : -INFINITY;
    x.i = lane < n_warps ? si[lane] : INT_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        vi y;
        y.v = __shfl_xor_sync(0xffffffffu, x.v, o);
        y.i = __shfl_xor_sync(0xffffffffu, x.i, o);
        if (vi_better(y, x))
            x = y;
    }
    return x;
}

/* The best element strictly after prev in the order; i == INT_MAX if none. */
static __device__ vi row_best_after(const float *r, int n, vi prev)
{
    vi best = {-INFINITY, INT_MAX};
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = r[i];
        const bool after = v < prev.v || (v == prev.v && i > prev.i);
        if (!after) /* also false for NaN */
            continue;
        const vi c = {v, i};
        if (vi_better(c, best))
            best = c;
    }
    return block_best(best);
}

static __global__ void __launch_bounds__(SAMPLE_BLOCK)
    k_argmax(const float *__restrict__ x, int n, int32_t *idx, float *val)
{
    const float *r = x + (int64_t)blockIdx.x * n;
    const vi start = {INFINITY, -1};
    vi b = row_best_after(r, n, start);
    if (threadIdx.x == 0) {
        const bool none = b.i == INT_MAX; /* an all-NaN row */
        idx[blockIdx.x] = none ? 0 : b.i;
        if (val)
            val[blockIdx.x] = none ? r[0] : b.v;
    }
}

static __global__ void __launch_bounds__(SAMPLE_BLOCK)
    k_topk(const float *__restrict__ x, int n, int k, int32_t *idx, float *val)
{
    const float *r = x + (int64_t)blockIdx.x * n;
    vi prev = {INFINITY, -1};
    for (int j = 0; j < k; j++) {
        const vi b = row_best_after(r, n, prev);
        if (threadIdx.x == 0) {
            const bool none = b.i == INT_MAX;
            idx[(int64_t)blockIdx.x * k + j] = none ? -1 : b.i;
            val[(int64_t)blockIdx.x * k + j] = none ? -INFINITY : b.v;
        }
        prev = b; /* when none was found, nothing is after it either: the rest are -1 */
    }
}

extern "C" int wisp_k_argmax(const float *x, int64_t n_rows, int n, int32_t *idx, float *val,
                             cudaStream_t s, wisp_err *err)
{
    if (n <= 0 || n_rows < 0 || n_rows > WISP_K_MAX_GRID_X)
        return wisp_err_set(err, WISP_E_INVALID, "argmax: bad shape %lld x %d",
                            (long long)n_rows, n);
    if (n_rows == 0)
        return 0;
    k_argmax<<<(unsigned)n_rows, SAMPLE_BLOCK, 0, s>>>(x, n, idx, val);
    return k_check_launch("argmax", err);
}

extern "C" int wisp_k_topk(const float *x, int64_t n_rows, int n, int k, int32_t *idx, float *val,
                           cudaStream_t s, wisp_err *err)
{
    if (n <= 0 || n_rows < 0 || n_rows > WISP_K_MAX_GRID_X || k <= 0 || k > n ||
        k > WISP_K_TOPK_MAX)
        return wisp_err_set(err, WISP_E_INVALID, "topk: bad shape %lld x %d with k = %d",
                            (long long)n_rows, n, k);
    if (n_rows == 0)
        return 0;
    k_topk<<<(unsigned)n_rows, SAMPLE_BLOCK, 0, s>>>(x, n, k, idx, val);
    return k_check_launch("topk", err);
}
