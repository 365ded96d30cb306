/*
 * engine_cpu.h - the CPU engine's state, shared by its files.
 *
 * engine_cpu.c builds it (weights checked against the config, small
 * vectors converted to F32, the KV pool, every scratch buffer sized once
 * from max_batch_tokens and max_seqs) and implements the vtable; forward.c
 * runs the transformer over it, for the layer range of the options (all
 * layers by default), computing from the weights in place or, with a
 * weights budget, from a streamed copy (stream.h).
 * wisp_engine_cpu_create_from() takes a config and weights instead of a
 * wisp_model, so tests can run the forward pass on tensors they build in
 * memory.
 */
#ifndef WISP_ENGINE_CPU_H
#define WISP_ENGINE_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cpu/kv_pool.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/stream.h"
#include "engine/cpu/threadpool.h"
#include "engine/engine.h"

/* Per-layer vectors as F32 (norm weights and biases may be stored in F16 or
 * BF16 by some files; converting them once keeps the hot path on floats). */
typedef struct wisp_cpu_layer_vecs {
    float *attn_norm, *ffn_norm; /* (n_embd) */
    float *bq, *bk, *bv;         /* (n_head*head_dim), (n_head_kv*head_dim) x2, or NULL */
    float *q_norm, *k_norm;      /* (head_dim) or NULL */
} wisp_cpu_layer_vecs;

typedef struct wisp_cpu_engine {
    wisp_model_config cfg;
    const wisp_model_weights *w;
    const wisp_tensor *output; /* output head (token_embd when tied) */
    wisp_engine_opts opts;     /* resolved: no zeros left */
    /* The layers it runs, [layer_begin, layer_end): the first engine of a
     * chain embeds the tokens, the last applies the output head. */
    int layer_begin, layer_end;
    bool first, last;
    wisp_cpu_stream *stream;        /* the weight arena when weights are streamed, or NULL */
    struct wisp_rp_weights *repack; /* w's repacked copy (repack.h), or NULL */
    int n_threads;
    wisp_threadpool *tp;
    wisp_kv_pool kv; /* rows of layers [layer_begin, layer_end) */
    wisp_rope rope;
    wisp_cpu_layer_vecs *lv; /* [n_layers]; filled for its own layers */
    float *out_norm;         /* (n_embd) */
    float *rope_freqs;       /* (rope n_dims/2) frequency factors, or NULL */
    float *vecs;             /* storage behind lv and out_norm */

    /* Scratch, sized at create for max_batch_tokens (T) rows. */
    int max_logit_rows;  /* rows per output-head product */
    float *x;            /* [T][n_embd] residual stream */
    float *xb;           /* [T][n_embd] normed input / block output */
    float *q, *att;      /* [T][n_head*head_dim] */
    float *k, *v;        /* [T][n_head_kv*head_dim] */
    float *hb, *hb2;     /* [T][n_ff] */
    float *logits;       /* [max_logit_rows][vocab]; the last engine only */
    float *rope_scratch; /* [n_threads][rope n_dims] */
    float *attn_scratch; /* [n_threads][attn_scratch_floats] */
    size_t attn_scratch_floats;
    int *row_pos;              /* [T] position of each row */
    int32_t *row_token;        /* [T] */
    const int32_t **row_table; /* [T] block table of each row's sequence */
    int *logit_row;            /* [T] rows whose logits are wanted */
    float **logit_dst;         /* [T] where each wanted row's logits go */
    wisp_matmul_scratch mm;
    size_t scratch_bytes;
} wisp_cpu_engine;

int wisp_engine_cpu_create_from(const wisp_model_config *cfg, const wisp_model_weights *w,
                                const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err);

/* One step (forward.c). */
int wisp_cpu_forward(wisp_cpu_engine *e, const wisp_batch *batch, wisp_err *err);

#endif
