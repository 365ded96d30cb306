/*
 * embed.cu - row lookups: the token embedding (dequantized from any weight
 * type with the shared granule dequantizers) and a gather of F32 rows (the
 * hidden rows that want logits).
 */
#include "kcommon.cuh"
#include "quant_traits.cuh"

/* One block per token; threads walk the row's granules. */
template <class T>
static __global__ void k_embed(const uint8_t *__restrict__ table, int64_t n_embd,
                               size_t row_bytes, const int32_t *__restrict__ tokens,
                               float *__restrict__ out)
{
    constexpr int GPB = T::QK / T::GR;
    const int64_t t = blockIdx.x;
    const uint8_t *row = table + (int64_t)tokens[t] * row_bytes;
    float *o = out + t * n_embd;
    for (int64_t g = threadIdx.x; g < n_embd / T::GR; g += blockDim.x) {
        float v[T::GR];
        T::dequant(row + (g / GPB) * T::BYTES, (int)(g % GPB), v);
#pragma unroll
        for (int k = 0; k < T::GR; k++)
            o[g * T::GR + k] = v[k];
    }
}

struct embed_args {
    const void *table;
    int64_t n_embd;
    const int32_t *tokens;
    int n_tok;
    float *out;
    cudaStream_t s;
};

template <class T> struct embed_run {
    static int run(const embed_args &a)
    {
        const size_t row_bytes = (size_t)(a.n_embd / T::QK) * T::BYTES;
        k_embed<T><<<(unsigned)a.n_tok, 128, 0, a.s>>>((const uint8_t *)a.table, a.n_embd,
                                                        row_bytes, a.tokens, a.out);
        return 0;
    }
};

extern "C" int wisp_k_embed(const void *table, int type, int64_t n_embd, const int32_t *tokens,
                            int n_tok, float *out, cudaStream_t s, wisp_err *err)
{
    const int qk = k_type_qk(type);
    if (qk == 0)
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "embed: no CUDA kernels for type %d", type);
    if (n_embd <= 0 || n_embd % qk != 0)
        return wisp_err_set(err, WISP_E_INVALID, "embed: bad row length %lld for type %d",
                            (long long)n_embd, type);
    if (n_tok <= 0)
        return 0;
    embed_args a = {table, n_embd, tokens, n_tok, out, s};
    k_dispatch_type<embed_run>(type, n_embd, a);
    return k_check_launch("embed", err);
}

static __global__ void k_gather(const float *__restrict__ src, const int32_t *__restrict__ rows,
                                int64_t n, float *__restrict__ dst)
{
    const float *s = src + (int64_t)rows[blockIdx.x] * n;
    float *d = dst + (int64_t)blockIdx.x * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        d[i] = s[i];
}

extern "C" int wisp_k_gather_rows(const float *src, const int32_t *rows, int n_rows, int64_t n,
                                  float *dst, cudaStream_t s, wisp_err *err)
{
    if (n_rows <= 0 || n <= 0)
        return 0;
    k_gather<<<(unsigned)n_rows, 256, 0, s>>>(src, rows, n, dst);
    return k_check_launch("gather_rows", err);
}
