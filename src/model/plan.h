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

#include <stdint.h>

#include "common/err.h"
#include "model/model.h"

typedef struct wisp_model_plan {
    wisp_model_config cfg;     /* the model's description */
    int n_ctx, n_seq, kv_type; /* the inputs, defaults applied */
    int n_ubatch;              /* tokens per forward step assumed for scratch */
    /* weights, in their stored types */
    int n_layers;
    uint64_t *layer_bytes;     /* n_layers entries: every blk.N.* tensor */
    uint64_t layer_bytes_total, layer_bytes_max;
    uint64_t embd_bytes;       /* token_embd.weight */
    uint64_t output_bytes;     /* output.weight; 0 when tied to token_embd */
    uint64_t other_bytes;      /* output_norm, rope_freqs, unused tensors */
    uint64_t weight_bytes;     /* all of the above */
    /* KV cache: K and V rows of n_head_kv * head_dim per layer and token */
    uint64_t kv_bytes_per_token;
    uint64_t kv_bytes;         /* kv_bytes_per_token * n_ctx * n_seq */
    /* activations of one step (see plan.c for the estimate) */
    uint64_t scratch_bytes;
    uint64_t host_bytes;       /* CPU engine: weights + KV + scratch */
    uint64_t device_bytes;     /* full offload: weights + KV + scratch on the device */
} wisp_model_plan;

/* Plans for an open model. n_ctx <= 0 means the training context; n_seq
 * <= 0 means 1; kv_type < 0 means F16 (F32, F16, BF16 and Q8_0 are
 * accepted). Returns 0, or a negative wisp_code (a vocab-only model, a bad
 * kv_type). Free with wisp_model_plan_free. */
int wisp_model_plan_model(const wisp_model *m, int n_ctx, int n_seq, int kv_type,
                          wisp_model_plan *out, wisp_err *err);
/* Same from a path: opens the headers only, plans, closes. */
int wisp_model_plan_file(const char *path, int n_ctx, int n_seq, int kv_type,
                         wisp_model_plan *out, wisp_err *err);
void wisp_model_plan_free(wisp_model_plan *p);

#endif
