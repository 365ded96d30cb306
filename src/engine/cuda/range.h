/*
 * range.h - the host-side arithmetic of a CUDA engine that runs a range of
 * the model's layers (engine.h: layer_begin/layer_end): which tensors it
 * holds, which end of the chain it is, how many KV layers its pool has,
 * the bytes of the hidden state it copies in and out, and which device a
 * placement's "cuda:N" names.
 *
 * Plain C with no CUDA header, so every build compiles it and the CPU unit
 * tests check the arithmetic the CUDA engine acts on (tests/unit/
 * test_cuda_range.c).
 */
#ifndef WISP_CUDA_RANGE_H
#define WISP_CUDA_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/model.h"

typedef struct wisp_cuda_range {
    int begin, end; /* layers [begin, end) of the model */
    int n_local;    /* end - begin: the layers the engine holds and its KV pool has */
    bool first;     /* begin == 0: embeds the tokens */
    bool last;      /* end == n_layers: output norm and head, logits */
    /* Tensors outside the layers this engine uploads: the embedding only
     * on the first stage; the output norm and head only on the last, where
     * a tied head (no output tensor) is the embedding matrix uploaded once
     * more as the head unless the engine is also the first stage. */
    bool up_embd, up_out_norm, up_output;
    bool output_is_embd; /* the head reuses the uploaded embedding's bytes */
} wisp_cuda_range;

/* Resolves [layer_begin, layer_end) (layer_end <= 0 = n_layers) for the
 * model; tied = the model has no separate output tensor. Fails with
 * WISP_E_INVALID for an empty or out-of-model range. */
int wisp_cuda_range_init(const wisp_model_config *c, int layer_begin, int layer_end, bool tied,
                         wisp_cuda_range *r, wisp_err *err);

/* The device a placement names: "cuda" gives -1 (the default device,
 * WISP_CUDA_DEVICE or 0), "cuda:N" gives N. Anything else fails with
 * WISP_E_INVALID. */
int wisp_cuda_parse_device(const char *name, int *index, wisp_err *err);

/* Bytes of the hidden state of n_rows tokens (F32 rows of n_embd): what a
 * stage that is not first copies host to device, and one that is not last
 * device to host, per step. */
size_t wisp_cuda_hidden_bytes(const wisp_model_config *c, int n_rows);

#endif
