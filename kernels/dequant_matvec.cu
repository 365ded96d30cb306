/*
 * dequant_matvec.cu - weight x activation products for decode and small
 * batches, for every weight type, plus the weight dequantizer to F16 that
 * the prefill GEMM (gemm.cu) feeds to cuBLAS.
 *
 * Decode is bound by reading the weights once per step, so the matvec
 * dequantizes in registers and never writes the weight anywhere: one warp
 * per output row, lanes walk the row's granules (8 elements sharing one
 * scale, see dequant_block.h) so that a warp reads consecutive bytes, and
 * each lane keeps NC partial sums, one per token, so a batch of up to
 * WISP_K_MATVEC_MAX_TOKENS decodes reads each weight byte once. Kernels are
 * templates over the traits of quant_traits.cuh, instantiated through
 * k_dispatch_type for each type and for NC in {1, 2, 4, 8}.
 */
#include "kcommon.cuh"
#include "quant_traits.cuh"

#define MV_WARPS 4

/* x rows must be 16-byte aligned when T::GR == 8 (n_in % 8 == 0 and an
 * aligned base), which lets the activations load as float4. */
template <class T, int NC>
static __global__ void __launch_bounds__(MV_WARPS * WISP_WARP)
    k_matvec(const uint8_t *__restrict__ w, const float *__restrict__ x, float *__restrict__ y,
             int64_t n_in, int64_t n_out, size_t row_bytes)
{
    const int lane = threadIdx.x % WISP_WARP;
    const int64_t row = (int64_t)blockIdx.x * MV_WARPS + threadIdx.x / WISP_WARP;
    if (row >= n_out)
        return; /* uniform per warp: the shuffles below see full warps */
    constexpr int GPB = T::QK / T::GR; /* granules per block */
    const uint8_t *wr = w + row * row_bytes;
    const int64_t n_gran = n_in / T::GR;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++)
        acc[c] = 0.0f;
    for (int64_t g = lane; g < n_gran; g += WISP_WARP) {
        float wv[T::GR];
        T::dequant(wr + (g / GPB) * T::BYTES, (int)(g % GPB), wv);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const float *xc = x + c * n_in + g * T::GR;
            if constexpr (T::GR == 8) {
                const float4 a = ((const float4 *)xc)[0], b = ((const float4 *)xc)[1];
                acc[c] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w +
                          wv[4] * b.x + wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
            } else {
                acc[c] += wv[0] * xc[0];
            }
        }
    }
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const float s = k_warp_sum(acc[c]);
        if (lane == 0)
            y[c * n_out + row] = s;
    }
}

struct mv_args {
    const void *w;
    int64_t n_in, n_out;
    const float *x;
    int n_tok;
    float *y;
    cudaStream_t s;
};

template <class T> struct mv_run {
    template <int NC> static void launch(const mv_args &a, int t0)
    {
        const size_t row_bytes = (size_t)(a.n_in / T::QK) * T::BYTES;
        const int64_t blocks = k_cdiv(a.n_out, MV_WARPS);
        k_matvec<T, NC><<<(unsigned)blocks, MV_WARPS * WISP_WARP, 0, a.s>>>(
            (const uint8_t *)a.w, a.x + (int64_t)t0 * a.n_in, a.y + (int64_t)t0 * a.n_out,
            a.n_in, a.n_out, row_bytes);
    }
    static int run(const mv_args &a)
    {
        int t = 0;
        while (t < a.n_tok) {
            const int left = a.n_tok - t;
            if (left >= 8) {
                launch<8>(a, t);
                t += 8;
            } else if (left >= 4) {
                launch<4>(a, t);
                t += 4;
            } else if (left >= 2) {
                launch<2>(a, t);
                t += 2;
            } else {
                launch<1>(a, t);
                t += 1;
            }
        }
        return 0;
    }
};

/* ---------------------------------------------------------------- dequant */

/* One thread per granule of the rows asked for; 8 halves go out as one
 * 16-byte store (out rows are 16-byte aligned since n_in % 8 == 0). */
template <class T>
static __global__ void k_dequant_f16(const uint8_t *__restrict__ w, __half *__restrict__ out,
                                     int64_t n_in, int64_t row0, int64_t n_rows,
                                     size_t row_bytes)
{
    constexpr int GPB = T::QK / T::GR;
    const int64_t n_gran = n_in / T::GR;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_rows * n_gran)
        return;
    const int64_t r = i / n_gran, g = i % n_gran;
    float v[T::GR];
    T::dequant(w + (row0 + r) * row_bytes + (g / GPB) * T::BYTES, (int)(g % GPB), v);
    __half *o = out + r * n_in + g * T::GR;
    if constexpr (T::GR == 8) {
        __half2 h[4];
#pragma unroll
        for (int k = 0; k < 4; k++)
            h[k] = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
        *(uint4 *)o = *(const uint4 *)h;
    } else {
        o[0] = __float2half_rn(v[0]);
    }
}

struct dq_args {
    const void *w;
    int64_t n_in, row0, n_rows;
    void *out;
    cudaStream_t s;
};

template <class T> struct dq_run {
    static int run(const dq_args &a)
    {
        const size_t row_bytes = (size_t)(a.n_in / T::QK) * T::BYTES;
        const int64_t total = a.n_rows * (a.n_in / T::GR);
        const int threads = 256;
        const int64_t blocks = k_cdiv(total, threads);
        if (blocks > WISP_K_MAX_GRID_X)
            return -2;
        k_dequant_f16<T><<<(unsigned)blocks, threads, 0, a.s>>>(
            (const uint8_t *)a.w, (__half *)a.out, a.n_in, a.row0, a.n_rows, row_bytes);
        return 0;
    }
};

/* ---------------------------------------------------------------- entries */

static int check_weight(const char *op, int type, int64_t n_in, int64_t n_out, wisp_err *err)
{
    const int qk = k_type_qk(type);
    if (qk == 0)
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "%s: no CUDA kernels for weight type %d",
                            op, type);
    if (n_in <= 0 || n_out <= 0 || n_in % qk != 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "%s: bad weight shape %lld x %lld for type %d (rows must hold whole "
                            "blocks of %d)",
                            op, (long long)n_in, (long long)n_out, type, qk);
    return 0;
}

extern "C" bool wisp_k_weight_type_supported(int type) { return k_type_qk(type) != 0; }

extern "C" size_t wisp_k_row_bytes(int type, int64_t n)
{
    const int qk = k_type_qk(type);
    if (qk == 0 || n <= 0 || n % qk != 0)
        return 0;
    return (size_t)(n / qk) * k_type_block_bytes(type);
}

extern "C" int wisp_k_matvec(const void *w, int type, int64_t n_in, int64_t n_out,
                             const float *x, int n_tok, float *y, cudaStream_t s, wisp_err *err)
{
    int rc = check_weight("matvec", type, n_in, n_out, err);
    if (rc)
        return rc;
    if (n_tok <= 0)
        return 0;
    if (k_cdiv(n_out, MV_WARPS) > WISP_K_MAX_GRID_X)
        return wisp_err_set(err, WISP_E_INVALID, "matvec: %lld output rows is too many",
                            (long long)n_out);
    mv_args a = {w, n_in, n_out, x, n_tok, y, s};
    k_dispatch_type<mv_run>(type, n_in, a);
    return k_check_launch("matvec", err);
}

extern "C" int wisp_k_dequant_f16(const void *w, int type, int64_t n_in, int64_t row0,
                                  int64_t n_rows, void *out, cudaStream_t s, wisp_err *err)
{
    int rc = check_weight("dequant_f16", type, n_in, row0 + n_rows, err);
    if (rc)
        return rc;
    if (n_rows <= 0)
        return 0;
    dq_args a = {w, n_in, row0, n_rows, out, s};
    if (k_dispatch_type<dq_run>(type, n_in, a) < 0)
        return wisp_err_set(err, WISP_E_INVALID, "dequant_f16: %lld rows of %lld is too many",
                            (long long)n_rows, (long long)n_in);
    return k_check_launch("dequant_f16", err);
}
