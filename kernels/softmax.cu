/*
 * softmax.cu - in-place softmax of each row (probabilities for sampling
 * and n_probs over a vocabulary row). One block per row: max, then sum of
 * exp(x - max), then scale, each a grid of the block's threads over the row.
 */
#include "kcommon.cuh"

#define SOFTMAX_BLOCK 512

static __global__ void __launch_bounds__(SOFTMAX_BLOCK) k_softmax(float *x, int n)
{
    float *r = x + (int64_t)blockIdx.x * n;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        m = fmaxf(m, r[i]);
    m = k_block_max(m);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        /* A row of -inf (everything masked) gives 0/0: make it all zero. */
        const float e = m == -INFINITY ? 0.0f : expf(r[i] - m);
        r[i] = e;
        sum += e;
    }
    sum = k_block_sum(sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        r[i] *= inv;
}

extern "C" int wisp_k_softmax(float *x, int64_t n_rows, int n, cudaStream_t s, wisp_err *err)
{
    if (n <= 0 || n_rows < 0 || n_rows > WISP_K_MAX_GRID_X)
        return wisp_err_set(err, WISP_E_INVALID, "softmax: bad shape %lld x %d",
                            (long long)n_rows, n);
    if (n_rows == 0)
        return 0;
    k_softmax<<<(unsigned)n_rows, SOFTMAX_BLOCK, 0, s>>>(x, n);
    return k_check_launch("softmax", err);
}
