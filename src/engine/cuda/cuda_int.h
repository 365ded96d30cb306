/*
 * cuda_int.h - the CUDA engine's state, shared by its files (the private
 * half of engine_cuda.h, as sqlite's btreeInt.h is to btree.h).
 *
 *   engine_cuda.c   create/destroy, options, scratch, the vtable
 *   cuda_device.c   device listing and selection, the checking helpers
 *   cuda_weights.c  weight upload and the RoPE table
 *   cuda_kv.c       the device KV pool, block copies, the pinned host tier
 *   cuda_forward.c  one transformer step
 */
#ifndef WISP_CUDA_INT_H
#define WISP_CUDA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/cuda/engine_cuda.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/range.h"

/* ---------------------------------------------------------------- checking
 * Every runtime call goes through WISP_CU: a failure returns (from the
 * enclosing function) a WISP_E_DEVICE error naming the call, the CUDA error
 * and the place. */
int wisp_cuda_fail(wisp_err *err, cudaError_t e, const char *call, const char *file, int line);
int wisp_cublas_fail(wisp_err *err, cublasStatus_t st, const char *call, const char *file,
                     int line);

#define WISP_CU(err, call)                                                       \
    do {                                                                         \
        cudaError_t wisp_cu_e_ = (call);                                         \
        if (wisp_cu_e_ != cudaSuccess)                                           \
            return wisp_cuda_fail((err), wisp_cu_e_, #call, __FILE__, __LINE__); \
    } while (0)

#define WISP_CUBLAS(err, call)                                                     \
    do {                                                                           \
        cublasStatus_t wisp_cb_s_ = (call);                                        \
        if (wisp_cb_s_ != CUBLAS_STATUS_SUCCESS)                                   \
            return wisp_cublas_fail((err), wisp_cb_s_, #call, __FILE__, __LINE__); \
    } while (0)

/* Returns from the enclosing function when rc (an int expression) is not 0. */
#define WISP_TRY(expr)             \
    do {                           \
        int wisp_try_rc_ = (expr); \
        if (wisp_try_rc_ != 0)     \
            return wisp_try_rc_;   \
    } while (0)

/* Selects device index (< 0: the one of WISP_CUDA_DEVICE, default 0),
 * makes it current on this thread and fills its info; fails when it does
 * not exist or is older than sm_80. */
int wisp_cuda_select_device(int index, wisp_cuda_device_info *info, wisp_err *err);

/* ---------------------------------------------------------------- state */

/* A matrix on the device in its stored type: n_out rows of n_in. */
typedef struct wisp_cuda_mat {
    const void *d;
    int type;
    int64_t n_in, n_out;
} wisp_cuda_mat;

typedef struct wisp_cuda_layer {
    wisp_cuda_mat wq, wk, wv, wo, w_gate, w_up, w_down;
    const float *attn_norm, *ffn_norm; /* (n_embd) F32 */
    const float *bq, *bk, *bv;         /* or NULL */
    const float *q_norm, *k_norm;      /* (head_dim) or NULL */
} wisp_cuda_layer;

typedef struct wisp_cuda_engine {
    wisp_model_config cfg;
    wisp_engine_opts opts; /* resolved: no zeros left */
    wisp_cuda_device_info dev;
    /* The layers it runs; its layers[] and KV pool hold these only
     * (layers[l - range.begin] is model layer l). */
    wisp_cuda_range range;
    cudaStream_t stream; /* every step runs here */
    cudaStream_t side;   /* host-tier copies */
    cudaEvent_t ev_main, ev_side;
    cublasHandle_t blas;
    /* Set by the first fault that may have poisoned the context. */
    bool broken;
    char broken_msg[WISP_ERR_MSG_MAX];

    /* Weights: one device arena. */
    void *warena;
    size_t warena_bytes;
    wisp_cuda_mat tok_embd, output;
    const float *out_norm;
    wisp_cuda_layer *layers; /* [range.n_local] */
    wisp_k_rope_params rope; /* tab points into warena */

    /* KV pool and host tier. */
    wisp_k_kv_layout kvl;
    void *kv;   /* n_blocks * kvl.block_bytes */
    void *tier; /* pinned, n_tier * kvl.block_bytes */
    int n_tier;

    /* Scratch, sized for max_batch_tokens (T) rows. */
    float *x, *xn;    /* [T][n_embd] */
    float *q, *att;   /* [T][n_head*head_dim] */
    float *k, *v;     /* [T][n_head_kv*head_dim] */
    float *gate, *up; /* [T][n_ff] (gate also holds n_embd rows of o/down) */
    float *tmp;       /* [T][n_embd] */
    int logit_rows;   /* rows per output-head product */
    float *logits;    /* [logit_rows][vocab] */
    float *h_logits;  /* pinned mirror of logits */
    void *act16;      /* GEMM activations in F16/BF16 */
    size_t act16_bytes;
    void *w16; /* GEMM dequantized weight tiles */
    size_t w16_bytes;
    float *partial; /* attention partials */
    int max_splits;
    size_t scratch_bytes;

    /* Per-step metadata: one pinned host block mirrored into one device
     * block, copied with a single transfer per step. */
    void *h_meta, *d_meta;
    size_t meta_bytes;
    int items_cap, tables_cap;
    int partial_rows;                             /* rows x splits the partials hold */
    float **logit_dst;                            /* [T] host: where each logit row goes */
    int32_t *h_tokens, *h_pos, *h_slots, *h_rows; /* [T] each */
    wisp_k_attn_seq *h_seqs;                      /* [max_seqs] */
    wisp_k_attn_item *h_items;                    /* [items_cap] */
    int32_t *h_tables;                            /* [tables_cap] */
} wisp_cuda_engine;

/* cuda_weights.c: uploads the weights of e->range and the RoPE table into
 * e->warena (checking every shape and type first). */
int wisp_cuda_weights_upload(wisp_cuda_engine *e, const wisp_model_weights *w, wisp_err *err);
/* Bytes the arena for the weights of range r takes (for planning). */
int wisp_cuda_weights_bytes(const wisp_model_config *cfg, const wisp_model_weights *w,
                            const wisp_cuda_range *r, size_t *bytes, wisp_err *err);

/* cuda_kv.c */
int wisp_cuda_kv_init(wisp_cuda_engine *e, wisp_err *err);
void wisp_cuda_kv_free(wisp_cuda_engine *e);
int wisp_cuda_copy_block(wisp_cuda_engine *e, int32_t dst, int32_t src, wisp_err *err);
int wisp_cuda_read_block(wisp_cuda_engine *e, int32_t block, void *dst, wisp_err *err);
int wisp_cuda_write_block(wisp_cuda_engine *e, int32_t block, const void *src, wisp_err *err);

/* cuda_forward.c */
int wisp_cuda_forward(wisp_cuda_engine *e, const wisp_batch *batch, wisp_err *err);
/* (Re)allocates the per-step metadata for tables_cap block-table entries
 * (items_cap and the batch limits already set); frees the old one. */
int wisp_cuda_meta_alloc(wisp_cuda_engine *e, int tables_cap, wisp_err *err);
void wisp_cuda_meta_free(wisp_cuda_engine *e);

/* engine_cuda.c: records a device error; marks the engine broken when the
 * error is one that leaves the CUDA context unusable. Returns rc. */
int wisp_cuda_note_error(wisp_cuda_engine *e, int rc, const wisp_err *err);
/* Fails with the broken message when the engine is broken; makes the
 * engine's device current on this thread otherwise. */
int wisp_cuda_enter(wisp_cuda_engine *e, wisp_err *err);

#endif
