/*
 * plan.h - the memory arithmetic of a model: weight, KV-cache and scratch
 * bytes, from the file's headers and real tensor types (no weights read).
 *
 * It answers "how much memory does this model need at n_ctx x n_seq?" for
 * model/plan and for the device-placement decision made elsewhere; it does
 * not decide placement itself.
 */
#ifndef WISP_PLAN_H
#define WISP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "model/kv_type.h"
#include "model/model.h"

typedef struct wisp_model_plan {
    wisp_model_config cfg; /* the model's description */
    int n_ctx, n_seq;      /* the inputs, defaults applied */
    wisp_kv_type kv_type;
    int n_ubatch; /* tokens per forward step assumed for scratch */
    /* weights, in their stored types */
    int n_layers;
    uint64_t *layer_bytes; /* n_layers entries: every blk.N.* tensor */
    uint64_t layer_bytes_total, layer_bytes_max;
    uint64_t embd_bytes;   /* token_embd.weight */
    uint64_t output_bytes; /* output.weight; 0 when tied to token_embd */
    uint64_t other_bytes;  /* output_norm, rope_freqs, unused tensors */
    uint64_t weight_bytes; /* all of the above */
    /* KV cache: K and V rows of n_head_kv * head_dim per layer and token */
    uint64_t kv_bytes_per_token;
    uint64_t kv_bytes; /* kv_bytes_per_token * n_ctx * n_seq */
    /* activations of one step (see plan.c for the estimate) */
    uint64_t scratch_bytes;
    uint64_t host_bytes;   /* CPU engine: weights + KV + scratch */
    uint64_t device_bytes; /* full offload: weights + KV + scratch on the device */
} wisp_model_plan;

/* Plans for an open model. n_ctx <= 0 means the training context; n_seq
 * <= 0 means 1; kv_type (a wisp_kv_type) < 0 means F16. Returns 0, or a
 * negative wisp_code (a vocab-only model, a bad kv_type). Free with
 * wisp_model_plan_free. */
int wisp_model_plan_model(const wisp_model *m, int n_ctx, int n_seq, int kv_type,
                          wisp_model_plan *out, wisp_err *err);
/* Same from a path: opens the headers only, plans, closes. */
int wisp_model_plan_file(const char *path, int n_ctx, int n_seq, int kv_type, wisp_model_plan *out,
                         wisp_err *err);
void wisp_model_plan_free(wisp_model_plan *p);

/* ---------------------------------------------------------------- KV pool
 * The size of the paged KV pool an engine is built with. The server, the
 * benchmark and model/plan all size the cache through these, so the bytes
 * a plan reports are the bytes a loaded model takes. */

/* Bytes one token takes in the cache: a K and a V row of n_head_kv *
 * head_dim elements per layer in kv_type's format. Returns 0 and sets *out,
 * or WISP_E_INVALID (unknown kv_type, rows that do not divide into its
 * blocks). */
int wisp_plan_kv_bytes_per_token(const wisp_model_config *c, int kv_type, uint64_t *out,
                                 wisp_err *err);

typedef struct wisp_kv_pool_req {
    const wisp_model_config *cfg;
    wisp_kv_type kv_type;
    int n_ctx;           /* tokens one sequence may hold (> 0) */
    int block_size;      /* tokens per block (> 0) */
    int64_t kv_cache_mb; /* > 0: the pool is this many MiB */
    /* Otherwise the default pool: `contexts` full contexts, capped at a
     * quarter of mem_available (0: unknown, no cap), never below one full
     * context, and with device_limited at most device_blocks (the blocks a
     * device holds beside the weights). */
    int contexts;
    uint64_t mem_available;
    bool device_limited;
    int64_t device_blocks;
} wisp_kv_pool_req;

typedef struct wisp_kv_pool_plan {
    int n_blocks;
    int min_blocks; /* one full context plus the block being copied on write */
    uint64_t bytes_per_token;
    uint64_t bytes; /* n_blocks * block_size * bytes_per_token */
} wisp_kv_pool_plan;

/* Chooses the pool. Fails with WISP_E_TOO_LARGE when kv_cache_mb or the
 * device cannot hold one full context (the message says what would), or
 * WISP_E_INVALID for a bad request. */
int wisp_plan_kv_pool(const wisp_kv_pool_req *r, wisp_kv_pool_plan *out, wisp_err *err);

#endif
