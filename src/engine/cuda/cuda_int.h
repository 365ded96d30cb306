/*
 * cuda_int.h - the CUDA engine's state, shared by its files (the private
 * half of engine_cuda.h, as sqlite's btreeInt.h is to btree.h).
 *
 *   engine_cuda.c   create/destroy, options, scratch, the vtable
 *   cuda_device.c   device listing and selection, the checking helpers
 *   cuda_weights.c  weight upload and the RoPE table
 *   cuda_kv.c       the device KV pool, block copies, the pinned host tier
 *   cuda_stream.c   layer streaming: the copy stream, its events and timing
 *   cuda_forward.c  one transformer step
 */
#ifndef WISP_CUDA_INT_H
#define WISP_CUDA_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/cuda/engine_cuda.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/layer_image.h"
#include "engine/cuda/range.h"
#include "engine/stream_plan.h"

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

/* Two events around one queued operation, for its device time. */
typedef struct wisp_cuda_timed {
    cudaEvent_t a, b;
    uint64_t bytes; /* a copy's bytes; 0 for a wait */
} wisp_cuda_timed;

/* Timed operations queued on one stream, harvested in order once done. */
typedef struct wisp_cuda_timing_ring {
    wisp_cuda_timed *r;
    int cap, head, n;
} wisp_cuda_timing_ring;

/* Layer streaming (opts.weights_budget_bytes > 0; cuda_stream.c). The
 * schedule is engine/stream_plan.h's; copies run on their own stream. */
typedef struct wisp_cuda_streamer {
    bool on; /* the plan streams some layers */
    wisp_stream_plan plan;
    wisp_stream_sched sched;
    cudaStream_t copy; /* host-to-device layer copies */
    uint8_t *host;     /* pinned: the streamed layers' images */
    size_t host_bytes;
    size_t *host_off;                 /* [range.n_local]: a streamed layer's image in host */
    uint8_t *slot[WISP_STREAM_SLOTS]; /* device layer buffers, in the weight arena */
    wisp_cuda_layer slot_layer[WISP_STREAM_SLOTS]; /* the layer each holds, bound */
    cudaEvent_t ready[WISP_STREAM_SLOTS];          /* on copy: the slot's last copy is done */
    cudaEvent_t freed[WISP_STREAM_SLOTS];          /* on compute: the slot's last reader is done */
    wisp_cuda_timing_ring copies, waits;
    /* Totals of harvested operations; the lock lets status read them
     * while a step runs. */
    pthread_mutex_t mu;
    bool mu_init;
    uint64_t streamed_bytes;
    double copy_ms, wait_ms;
} wisp_cuda_streamer;

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
    wisp_cuda_layer *layers;       /* [range.n_local]; a streamed layer's is unused */
    wisp_cuda_layer_image *images; /* [range.n_local]: each layer's image layout */
    wisp_k_rope_params rope;       /* tab points into warena */
    wisp_cuda_streamer sw;

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
 * e->warena (checking every shape and type first). With a weights budget
 * it plans the stream (e->sw.plan), keeps the resident layers in the
 * arena beside the two layer buffers and the streamed layers' images in
 * pinned host memory. */
int wisp_cuda_weights_upload(wisp_cuda_engine *e, const wisp_model_weights *w, wisp_err *err);
/* Bytes the arena for the weights of range r takes under budget (0: all
 * resident), for planning. */
int wisp_cuda_weights_bytes(const wisp_model_config *cfg, const wisp_model_weights *w,
                            const wisp_cuda_range *r, uint64_t budget, size_t *bytes,
                            wisp_err *err);
/* Points L's fields at the pieces of image im placed at base. */
void wisp_cuda_layer_bind(const wisp_cuda_layer_image *im, uint8_t *base, wisp_cuda_layer *L);

/* cuda_stream.c: the copy stream, events and timing rings of a planned
 * stream, and the first layers' copies queued. No-op without streaming. */
int wisp_cuda_stream_init(wisp_cuda_engine *e, wisp_err *err);
void wisp_cuda_stream_free(wisp_cuda_engine *e);
/* The weights layer l computes from: resident ones as uploaded; a
 * streamed one from its slot, with its copy queued if it was not and the
 * compute stream made to wait for it. *slot is the slot, or -1. */
int wisp_cuda_stream_acquire(wisp_cuda_engine *e, int l, const wisp_cuda_layer **L, int *slot,
                             wisp_err *err);
/* Layer l's work is queued: its slot may take the layer after next once
 * that work is done (a no-op for slot -1). */
int wisp_cuda_stream_release(wisp_cuda_engine *e, int l, int slot, wisp_err *err);
/* Adds the finished copies' and waits' device times to the totals
 * (after a step; never blocks). */
int wisp_cuda_stream_harvest(wisp_cuda_engine *e, wisp_err *err);
/* The totals, for get_stats. */
void wisp_cuda_stream_stats(wisp_cuda_engine *e, wisp_engine_stats *out);

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
