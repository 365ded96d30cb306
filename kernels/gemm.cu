/*
 * gemm.cu - weight x activation products for prefill and large batches,
 * through cuBLAS on the tensor cores with F32 accumulation.
 *
 * Weights stay resident in their stored type. F32 weights go to cuBLAS as
 * they are; F16 and BF16 weights too, with the activations converted to the
 * weight's type. Quantized weights are dequantized to F16 in tiles of rows
 * (dequant_matvec.cu) into a caller-owned scratch, and each tile is one
 * GEMM writing its slice of output columns: the scratch bounds memory
 * whatever the weight's size (the output head of a 150k vocabulary is the
 * largest), and a tile of a few thousand rows keeps the tensor cores busy.
 *
 * Layout: cuBLAS is column-major. A row-major weight W (n_out x n_in) is a
 * column-major n_in x n_out matrix, the activations X (n_tok x n_in) a
 * column-major n_in x n_tok matrix, so Y^T = W X^T is
 * C(n_out x n_tok) = op(A)=A^T (A: n_in x n_out, lda n_in) * B (n_in x n_tok),
 * written column-major with ldc = n_out, which is exactly row-major Y.
 *
 * Activations converted to F16 are clamped to +-65504 so that an outlier
 * saturates instead of becoming inf (and NaN downstream).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kcommon.cuh"
#include "quant_traits.cuh"

#define GEMM_MIN_TILE_ROWS 64

static __global__ void k_f32_to_f16(const float *__restrict__ x, __half *__restrict__ y,
                                    int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = __float2half_rn(fminf(fmaxf(x[i], -65504.0f), 65504.0f));
}

static __global__ void k_f32_to_bf16(const float *__restrict__ x, __nv_bfloat16 *__restrict__ y,
                                     int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = __float2bfloat16_rn(x[i]);
}

static const char *cublas_status_text(cublasStatus_t st)
{
    return cublasGetStatusString(st);
}

static int gemm_ex(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const void *a,
                   cudaDataType at, const void *b, cudaDataType bt, float *c, int64_t ldc,
                   wisp_err *err)
{
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &one, a,
                                     at, (int)k, b, bt, (int)k, &zero, c, CUDA_R_32F, (int)ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return wisp_err_set(err, WISP_E_DEVICE, "gemm: cublasGemmEx(%lld x %lld x %lld) failed: %s",
                            (long long)m, (long long)n, (long long)k, cublas_status_text(st));
    return 0;
}

extern "C" void wisp_k_gemm_scratch(int type, int64_t n_in, int64_t n_out, int64_t n_tok,
                                    size_t w_cap, size_t *act_bytes, size_t *w_bytes)
{
    *act_bytes = 0;
    *w_bytes = 0;
    if (type == WISP_TYPE_F32)
        return;
    *act_bytes = (size_t)n_in * (size_t)n_tok * 2;
    if (type == WISP_TYPE_F16 || type == WISP_TYPE_BF16)
        return;
    size_t whole = (size_t)n_in * (size_t)n_out * 2;
    size_t min_tile = (size_t)n_in * GEMM_MIN_TILE_ROWS * 2;
    size_t want = whole < w_cap ? whole : w_cap;
    *w_bytes = want > min_tile ? want : (whole < min_tile ? whole : min_tile);
}

extern "C" int wisp_k_gemm(cublasHandle_t h, const void *w, int type, int64_t n_in,
                           int64_t n_out, const float *x, int n_tok, float *y, void *act_scratch,
                           size_t act_bytes, void *w_scratch, size_t w_bytes, cudaStream_t s,
                           wisp_err *err)
{
    const int qk = k_type_qk(type);
    if (qk == 0)
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "gemm: no CUDA kernels for weight type %d",
                            type);
    if (n_in <= 0 || n_out <= 0 || n_in % qk != 0 || n_in > INT32_MAX || n_out > INT32_MAX)
        return wisp_err_set(err, WISP_E_INVALID, "gemm: bad weight shape %lld x %lld",
                            (long long)n_in, (long long)n_out);
    if (n_tok <= 0)
        return 0;
    cublasStatus_t st = cublasSetStream(h, s);
    if (st != CUBLAS_STATUS_SUCCESS)
        return wisp_err_set(err, WISP_E_DEVICE, "gemm: cublasSetStream failed: %s",
                            cublas_status_text(st));
    if (type == WISP_TYPE_F32)
        return gemm_ex(h, n_out, n_tok, n_in, w, CUDA_R_32F, x, CUDA_R_32F, y, n_out, err);

    const int64_t n_act = n_in * (int64_t)n_tok;
    if (act_bytes < (size_t)n_act * 2)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "gemm: activation scratch of %zu bytes, %lld needed", act_bytes,
                            (long long)n_act * 2);
    const int threads = 256;
    const unsigned act_blocks = (unsigned)k_cdiv(n_act, threads);
    int rc;
    if (type == WISP_TYPE_BF16) {
        k_f32_to_bf16<<<act_blocks, threads, 0, s>>>(x, (__nv_bfloat16 *)act_scratch, n_act);
        if ((rc = k_check_launch("gemm: f32 -> bf16", err)))
            return rc;
        return gemm_ex(h, n_out, n_tok, n_in, w, CUDA_R_16BF, act_scratch, CUDA_R_16BF, y, n_out,
                       err);
    }
    k_f32_to_f16<<<act_blocks, threads, 0, s>>>(x, (__half *)act_scratch, n_act);
    if ((rc = k_check_launch("gemm: f32 -> f16", err)))
        return rc;
    if (type == WISP_TYPE_F16)
        return gemm_ex(h, n_out, n_tok, n_in, w, CUDA_R_16F, act_scratch, CUDA_R_16F, y, n_out,
                       err);

    /* Quantized: tiles of rows dequantized to F16, one GEMM per tile. */
    int64_t tile = (int64_t)(w_bytes / ((size_t)n_in * 2));
    if (tile < 1)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "gemm: weight scratch of %zu bytes cannot hold one row of %lld",
                            w_bytes, (long long)n_in);
    if (tile > n_out)
        tile = n_out;
    for (int64_t r0 = 0; r0 < n_out; r0 += tile) {
        const int64_t rows = n_out - r0 < tile ? n_out - r0 : tile;
        if ((rc = wisp_k_dequant_f16(w, type, n_in, r0, rows, w_scratch, s, err)))
            return rc;
        if ((rc = gemm_ex(h, rows, n_tok, n_in, w_scratch, CUDA_R_16F, act_scratch, CUDA_R_16F,
                          y + r0, n_out, err)))
            return rc;
    }
    return 0;
}
