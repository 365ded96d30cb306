/*
 * kernels.h - the C interface of wisp's CUDA kernels.
 *
 * Every op family in kernels/ (one .cu file per op family) has one or a few extern "C" entry points
 * declared here: they check their arguments (types, shapes), pick a launch
 * shape, enqueue on the given stream and return 0, or a negative wisp_code
 * with err naming the op and the CUDA/cuBLAS error. Nothing here
 * synchronizes: a kernel fault surfaces at the engine's next checked sync.
 * Pointers are device pointers unless said otherwise. The host engine
 * (src/engine/cuda) and the GPU tests (tests/gpu) are the callers; both are
 * C, so this header is plain C and includes only the CUDA runtime and
 * cuBLAS C headers.
 *
 * Layouts: activations are row-major F32, one row per token. A weight of
 * wisp_type `type` with ne = {n_in, n_out} is n_out rows of n_in elements
 * in its stored block format, rows packed back to back (as in GGUF).
 */
#ifndef WISP_CUDA_KERNELS_H
#define WISP_CUDA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdarg.h>

/* err.h has no C++ guards of its own; its functions are C. */
#ifdef __cplusplus
extern "C" {
#endif

#include "common/err.h"

/* ---------------------------------------------------------------- weights */

/* True when the decode matvec, the F16 dequantizer and the embedding lookup
 * have kernels for this weight type (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q2_K..Q6_K). Rows must hold whole blocks; float types accept
 * any row length. */
bool wisp_k_weight_type_supported(int type);

/* Bytes of a row of n elements of a supported type (0 if n is not a
 * multiple of the block size or the type is unsupported). */
size_t wisp_k_row_bytes(int type, int64_t n);

/* Largest token count the matvec kernels take in one launch; more tokens
 * are handled in several launches, but callers switch to wisp_k_gemm above
 * WISP_K_MATVEC_MAX_TOKENS because re-reading the weight per chunk loses to
 * a tensor-core GEMM. */
#define WISP_K_MATVEC_MAX_TOKENS 8

/* y[t*n_out + o] = sum_i W[o,i] * x[t*n_in + i] for t < n_tok. Dequantizes
 * in registers (no scratch). x and y must not overlap. */
int wisp_k_matvec(const void *w, int type, int64_t n_in, int64_t n_out, const float *x, int n_tok,
                  float *y, cudaStream_t s, wisp_err *err);

/* Dequantizes rows [row0, row0 + n_rows) of W into out as IEEE halves,
 * n_rows x n_in row-major (for cuBLAS). */
int wisp_k_dequant_f16(const void *w, int type, int64_t n_in, int64_t row0, int64_t n_rows,
                       void *out, cudaStream_t s, wisp_err *err);

/* Scratch the GEMM path needs for a weight of this type and shape with
 * n_tok rows of activations: *act_bytes for the activations converted to
 * F16/BF16 and *w_bytes for the dequantized weight tiles (the tile height
 * adapts to whatever w_bytes the caller gives, down to 64 rows; this
 * returns what a whole weight would take, capped at w_cap). */
void wisp_k_gemm_scratch(int type, int64_t n_in, int64_t n_out, int64_t n_tok, size_t w_cap,
                         size_t *act_bytes, size_t *w_bytes);

/* The same product as wisp_k_matvec for many tokens: F32 weights go to
 * cuBLAS in F32, F16 and BF16 weights are used in place with the
 * activations converted to their type, quantized weights are dequantized to
 * F16 tiles of rows in w_scratch. Accumulation is F32 in every case. The
 * handle must already be bound to stream s. */
int wisp_k_gemm(cublasHandle_t h, const void *w, int type, int64_t n_in, int64_t n_out,
                const float *x, int n_tok, float *y, void *act_scratch, size_t act_bytes,
                void *w_scratch, size_t w_bytes, cudaStream_t s, wisp_err *err);

/* out[t*n_embd + i] = dequantized row tokens[t] of the table (ne = {n_embd,
 * n_vocab}). Token ids must already be checked against n_vocab. */
int wisp_k_embed(const void *table, int type, int64_t n_embd, const int32_t *tokens, int n_tok,
                 float *out, cudaStream_t s, wisp_err *err);

/* dst row r = src row rows[r], rows of n floats. */
int wisp_k_gather_rows(const float *src, const int32_t *rows, int n_rows, int64_t n, float *dst,
                       cudaStream_t s, wisp_err *err);

/* ---------------------------------------------------------------- elementwise */

/* y = x / sqrt(mean(x^2) + eps) * w per row of n (y may equal x). */
int wisp_k_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows, int n, float eps,
                   cudaStream_t s, wisp_err *err);

/* RoPE in place on x: n_tok rows of n_heads heads of head_dim floats, row
 * stride n_heads*head_dim. tab holds, per rotated pair i < rope_dim/2, the
 * base frequency (tab[2i]) and the YaRN ramp mix (tab[2i+1], 0 when not
 * YaRN); theta = pos*f scaled by freq_scale and mixed as ggml's rope_yarn;
 * cos/sin are multiplied by mscale. neox picks pairs (i, i + rope_dim/2)
 * instead of (2i, 2i+1). */
typedef struct wisp_k_rope_params {
    int head_dim;
    int rope_dim; /* even, <= head_dim */
    int neox;
    float freq_scale;
    float mscale;
    const float *tab; /* device, 2*(rope_dim/2) floats */
} wisp_k_rope_params;

int wisp_k_rope(float *x, const int32_t *pos, int n_tok, int n_heads, const wisp_k_rope_params *p,
                cudaStream_t s, wisp_err *err);

/* out = silu(gate) * up over n elements (out may equal gate or up). */
int wisp_k_swiglu(const float *gate, const float *up, float *out, int64_t n, cudaStream_t s,
                  wisp_err *err);
/* y += x over n elements. */
int wisp_k_add(float *y, const float *x, int64_t n, cudaStream_t s, wisp_err *err);
/* y[r*n + i] += b[i] for r < n_rows. */
int wisp_k_add_bias(float *y, const float *b, int64_t n_rows, int n, cudaStream_t s, wisp_err *err);
/* Numerically safe softmax of each row of n, in place. */
int wisp_k_softmax(float *x, int64_t n_rows, int n, cudaStream_t s, wisp_err *err);

/* ---------------------------------------------------------------- KV cache */

/* The device KV pool: n_blocks blocks, each holding, for every layer, K
 * then V as [block_size][n_kv_heads] rows of head_dim elements in kv_type
 * (a wisp_kv_type, model/kv_type.h). This is also the byte
 * format of one block for read_block/write_block, the same as the CPU
 * engine's. */
typedef struct wisp_k_kv_layout {
    int kv_type;
    int n_layers;
    int block_size;
    int n_kv_heads;
    int head_dim;
    size_t row_bytes;   /* one head's row */
    size_t span_bytes;  /* block_size * n_kv_heads * row_bytes: one (layer, K|V) */
    size_t block_bytes; /* 2 * n_layers * span_bytes */
} wisp_k_kv_layout;

/* Fills the derived sizes; returns 0 or WISP_E_UNSUPPORTED (Q8_0 needs
 * head_dim % 32 == 0) / WISP_E_INVALID. */
int wisp_k_kv_layout_init(wisp_k_kv_layout *l, int kv_type, int n_layers, int block_size,
                          int n_kv_heads, int head_dim, wisp_err *err);

/* Stores k and v (n_tok rows of n_kv_heads*head_dim floats) of one layer at
 * the given slots (slot = block*block_size + offset). */
int wisp_k_kv_append(void *pool, const wisp_k_kv_layout *l, int layer, const float *k,
                     const float *v, const int32_t *slots, int n_tok, cudaStream_t s,
                     wisp_err *err);

/* ---------------------------------------------------------------- attention */

/* One sequence of the step, as the attention kernel sees it. */
typedef struct wisp_k_attn_seq {
    int32_t row0;   /* first row of its tokens in q/out */
    int32_t n_tok;  /* new tokens */
    int32_t pos0;   /* position of its first new token */
    int32_t table0; /* offset of its block table in the flat tables */
} wisp_k_attn_seq;

/* A unit of work: up to WISP_K_ATTN_BQ (token, head-of-group) queries of
 * one sequence, all reading the same KV head. */
typedef struct wisp_k_attn_item {
    int32_t seq;
    int32_t q0; /* first query index: token = q / group, head = q % group */
    int32_t nq;
} wisp_k_attn_item;

#define WISP_K_ATTN_BQ 16

/* Builds the work items for a batch: returns how many were written (at most
 * cap; call with cap = 0 to count). */
int wisp_k_attn_items(const wisp_k_attn_seq *seqs, int n_seqs, int group, wisp_k_attn_item *out,
                      int cap);

typedef struct wisp_k_attn_params {
    const void *pool;
    const wisp_k_kv_layout *kv;
    int layer;
    int n_heads;                   /* query heads; n_heads % n_kv_heads == 0 */
    float scale;                   /* usually 1/sqrt(head_dim) */
    const float *q;                /* rows of n_heads*head_dim */
    float *out;                    /* rows of n_heads*head_dim */
    const wisp_k_attn_seq *seqs;   /* device */
    const wisp_k_attn_item *items; /* device */
    int n_items;
    const int32_t *tables; /* device, flat block tables */
    int max_kv;            /* largest pos0 + n_tok in the batch */
    int n_splits;          /* KV ranges per item (flash-decoding); >= 1 */
    float *partial;        /* device, wisp_k_attn_partial_floats() floats */
    int n_rows;            /* rows in q/out */
} wisp_k_attn_params;

/* Floats of partial results the kernel needs. */
size_t wisp_k_attn_partial_floats(int n_rows, int n_heads, int head_dim, int n_splits);

/* Causal attention of every query row over positions [0, pos] of its
 * sequence, reading K/V through the block tables. */
int wisp_k_attention(const wisp_k_attn_params *p, cudaStream_t s, wisp_err *err);

/* ---------------------------------------------------------------- sampling */

/* Per row of n: the index and value of the largest element (the lowest
 * index among equals; NaNs are never chosen unless the row is all NaN, then
 * index 0). */
int wisp_k_argmax(const float *x, int64_t n_rows, int n, int32_t *idx, float *val, cudaStream_t s,
                  wisp_err *err);

#define WISP_K_TOPK_MAX 256

/* Per row: the k largest elements in descending order (ties by lower
 * index), k <= WISP_K_TOPK_MAX and k <= n; NaNs are skipped. */
int wisp_k_topk(const float *x, int64_t n_rows, int n, int k, int32_t *idx, float *val,
                cudaStream_t s, wisp_err *err);

#ifdef __cplusplus
}
#endif

#endif
