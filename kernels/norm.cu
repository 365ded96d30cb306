/*
 * norm.cu - RMSNorm over rows: y = x / sqrt(mean(x^2) + eps) * w.
 *
 * Two shapes of rows matter: model-width rows (n_embd, thousands of
 * elements, few of them at decode) get a block of 256 threads each; short
 * rows (qwen3's per-head QK-norm over head_dim, thousands of them) get one
 * warp each, four per block, so no thread idles on a 128-element row. The
 * sum of squares is accumulated in F32 as the CPU engine does; y may be x.
 */
#include "kcommon.cuh"

#define NORM_BLOCK 256
#define NORM_WARP_ROWS 4

static __global__ void __launch_bounds__(NORM_BLOCK)
    k_rmsnorm_block(const float *__restrict__ x, const float *__restrict__ w, float *y, int n,
                    float eps)
{
    const int64_t row = blockIdx.x;
    const float *xr = x + row * n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = k_block_sum(ss);
    const float scale = rsqrtf(ss / (float)n + eps);
    float *yr = y + row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = xr[i] * scale * w[i];
}

static __global__ void __launch_bounds__(NORM_WARP_ROWS * WISP_WARP)
    k_rmsnorm_warp(const float *__restrict__ x, const float *__restrict__ w, float *y,
                   int64_t n_rows, int n, float eps)
{
    const int64_t row = (int64_t)blockIdx.x * NORM_WARP_ROWS + threadIdx.x / WISP_WARP;
    const int lane = threadIdx.x % WISP_WARP;
    if (row >= n_rows)
        return;
    const float *xr = x + row * n;
    float ss = 0.0f;
    for (int i = lane; i < n; i += WISP_WARP)
        ss += xr[i] * xr[i];
    ss = k_warp_sum(ss);
    const float scale = rsqrtf(ss / (float)n + eps);
    float *yr = y + row * n;
    for (int i = lane; i < n; i += WISP_WARP)
        yr[i] = xr[i] * scale * w[i];
}

extern "C" int wisp_k_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows, int n,
                              float eps, cudaStream_t s, wisp_err *err)
{
    if (n <= 0 || n_rows < 0)
        return wisp_err_set(err, WISP_E_INVALID, "rmsnorm: bad shape %lld x %d",
                            (long long)n_rows, n);
    if (n_rows == 0)
        return 0;
    if (n >= 1024) {
        if (n_rows > WISP_K_MAX_GRID_X)
            return wisp_err_set(err, WISP_E_INVALID, "rmsnorm: too many rows");
        k_rmsnorm_block<<<(unsigned)n_rows, NORM_BLOCK, 0, s>>>(x, w, y, n, eps);
    } else {
        k_rmsnorm_warp<<<(unsigned)k_cdiv(n_rows, NORM_WARP_ROWS), NORM_WARP_ROWS * WISP_WARP, 0,
                         s>>>(x, w, y, n_rows, n, eps);
    }
    return k_check_launch("rmsnorm", err);
}
