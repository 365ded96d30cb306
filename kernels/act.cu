/*
 * act.cu - the elementwise steps of a layer: SwiGLU, residual add, bias
 * add. Each is one grid-stride pass, memory-bound, with the same float
 * formulas as the CPU engine (silu(g) = g / (1 + exp(-g)) in full-precision
 * expf).
 */
#include "kcommon.cuh"

static __global__ void k_swiglu(const float *gate, const float *up, float *out, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static __global__ void k_add(float *y, const float *__restrict__ x, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

static __global__ void k_add_bias(float *y, const float *__restrict__ b, int64_t total, int n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[i % n];
}

/* Enough blocks to fill any current GPU; the loops stride over the rest. */
static unsigned elt_blocks(int64_t n)
{
    int64_t b = k_cdiv(n, 256);
    return (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

extern "C" int wisp_k_swiglu(const float *gate, const float *up, float *out, int64_t n,
                             cudaStream_t s, wisp_err *err)
{
    if (n <= 0)
        return 0;
    k_swiglu<<<elt_blocks(n), 256, 0, s>>>(gate, up, out, n);
    return k_check_launch("swiglu", err);
}

extern "C" int wisp_k_add(float *y, const float *x, int64_t n, cudaStream_t s, wisp_err *err)
{
    if (n <= 0)
        return 0;
    k_add<<<elt_blocks(n), 256, 0, s>>>(y, x, n);
    return k_check_launch("add", err);
}

extern "C" int wisp_k_add_bias(float *y, const float *b, int64_t n_rows, int n, cudaStream_t s,
                               wisp_err *err)
{
    if (n <= 0 || n_rows < 0)
        return wisp_err_set(err, WISP_E_INVALID, "add_bias: bad shape %lld x %d",
                            (long long)n_rows, n);
    const int64_t total = n_rows * n;
    if (total == 0)
        return 0;
    k_add_bias<<<elt_blocks(total), 256, 0, s>>>(y, b, total, n);
    return k_check_launch("add_bias", err);
}
