/*
 * engine.h - the compute engine interface.
 *
 * An engine runs one forward step over a batch of sequences. Each sequence
 * brings the new tokens to process, the position of the first one, and its
 * block table: the physical KV blocks (of block_size tokens each) that hold
 * positions [0, pos0 + n_tokens). The engine owns the KV storage (host RAM
 * for the CPU engine, VRAM for CUDA); the block allocator and prefix cache
 * (kv/) own the block ids. This is vLLM's split: the scheduler decides which
 * blocks a sequence uses, the engine only reads and writes them.
 *
 * An engine may run only a range of the model's layers, [layer_begin,
 * layer_end): a placement (model/placement.h, engine/stages.h) chains such
 * engines, each on its device. The first one embeds the tokens, the last
 * one applies the output norm and head; between two of them each token's
 * hidden state (the residual stream after the last layer of the one) goes
 * through wisp_batch.hidden. An engine that runs every layer never touches
 * hidden, so the one-engine case pays nothing for the chaining.
 *
 * Engines are vtables (struct wisp_engine_ops + ctx); optional members may
 * be NULL and say so.
 */
#ifndef WISP_ENGINE_H
#define WISP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/kv_type.h"
#include "model/model.h"

typedef struct wisp_engine_opts {
    int n_threads;  /* CPU threads; 0 = physical cores */
    int block_size; /* tokens per KV block (default 16) */
    int n_blocks;   /* KV blocks in the pool */
    wisp_kv_type kv_type;
    int max_batch_tokens; /* most tokens one forward step may carry */
    int max_seqs;         /* most sequences one step may carry */
    /* The layers this engine runs, [layer_begin, layer_end); layer_end 0
     * means n_layers. Its KV pool holds rows of these layers only. */
    int layer_begin, layer_end;
    /* > 0: the weights of its layers stay where the model keeps them (the
     * file mapping) and are copied, a layer ahead of their use, into a
     * weight arena of at most this many bytes (two layer buffers). 0: the
     * engine computes from the weights in place (the CPU) or holds them all
     * (a GPU). */
    uint64_t weights_budget_bytes;
    /* CPU: keep Q4_0 / Q8_0 weights in the file's layout instead of
     * repacking them at load (cpu/repack.h); also WISP_REPACK=0. */
    bool no_repack;
    /* CPU: compute F16 and BF16 weights in BF16 (cpu/repack.h): F16
     * weights rounded to BF16 once at load, activations rounded to BF16,
     * products through AVX512-BF16 dot products, about twice the prefill
     * rate at 3 fewer significand bits. Lossy, hence off by default; taken
     * only where the CPU has AVX512-BF16 and the weights are repacked
     * (stats' bf16_tensors says how many tensors it applied to). */
    bool f16_as_bf16;
} wisp_engine_opts;

typedef struct wisp_batch_seq {
    const int32_t *tokens; /* n_tokens new tokens */
    int n_tokens;
    int pos0;                   /* position of tokens[0] = tokens already cached */
    const int32_t *block_table; /* physical block ids, ceil((pos0+n_tokens)/block_size) of them */
    int n_blocks;
    /* Logits wanted: for every new token (evaluate) or only the last. */
    bool all_logits;
    float *logits; /* out: n_tokens*vocab (all_logits) or vocab floats */
} wisp_batch_seq;

typedef struct wisp_batch {
    wisp_batch_seq *seqs;
    int n_seqs;
    /* Polled between layers; when it returns true the step stops early and
     * forward returns WISP_E_CANCELLED (KV contents of this step's tokens are
     * then undefined; the scheduler drops or recomputes them). May be NULL. */
    bool (*should_stop)(void *ud);
    void *stop_ud;
    /* The hidden state handed between engines that run consecutive layer
     * ranges: [rows][n_embd] floats, one row per new token in the order of
     * seqs and their tokens. An engine whose range starts after layer 0
     * reads its input from it; one whose range ends before n_layers writes
     * its output there (and no logits). NULL when one engine runs all. */
    float *hidden;
} wisp_batch;

/* What one engine of a chain reports about itself. */
typedef struct wisp_engine_stage_stats {
    char device[16]; /* "cpu", "cuda:0" */
    int layer_begin, layer_end;
    uint64_t kv_bytes, scratch_bytes, weight_bytes;
    bool streamed; /* its engine streams some of its layers (weights_budget_bytes) */
} wisp_engine_stage_stats;

#define WISP_ENGINE_MAX_STAGES 16

typedef struct wisp_engine_stats {
    uint64_t kv_bytes; /* bytes of the KV pool */
    uint64_t scratch_bytes;
    uint64_t weight_bytes; /* weights resident (device engines, streaming arenas) */
    /* Layer streaming (weights_budget_bytes > 0), summed over the engines
     * that stream: bytes copied into weight arenas so far, the time the
     * copies took, and the time compute waited for one. The copy hidden
     * behind compute is 1 - wait / copy. */
    bool weights_streaming; /* some layers' weights are streamed */
    uint64_t weights_streamed_bytes;
    double weights_copy_ms;
    double weights_wait_ms;
    /* Weight tensors computed in BF16 (opts.f16_as_bf16), over all stages. */
    int bf16_tensors;
    /* One entry per engine of a chain (engine/stages.h); 0 for an engine
     * that runs the whole model alone. */
    int n_stages;
    wisp_engine_stage_stats stages[WISP_ENGINE_MAX_STAGES];
} wisp_engine_stats;

typedef struct wisp_engine wisp_engine;

struct wisp_engine_ops {
    const char *name; /* "cpu", "cuda" */
    /* Runs one step. Returns 0, WISP_E_CANCELLED, or another negative code
     * with err set. */
    int (*forward)(void *ctx, const wisp_batch *batch, wisp_err *err);
    /* Copies block src to dst (copy-on-write of a partially filled block). */
    int (*copy_block)(void *ctx, int32_t dst, int32_t src, wisp_err *err);
    /* Moves one block's KV (all layers) to or from host memory in the
     * engine's storage format, for the second cache tier and persistence.
     * bytes_per_block() tells the buffer size. */
    size_t (*bytes_per_block)(void *ctx);
    int (*read_block)(void *ctx, int32_t block, void *dst, wisp_err *err);
    int (*write_block)(void *ctx, int32_t block, const void *src, wisp_err *err);
    void (*get_stats)(void *ctx, wisp_engine_stats *out);
    void (*destroy)(void *ctx);
    /* Optional: whether the engine reads the model's bytes at data when it
     * computes (false for a tensor it replaced with a copy of its own), so
     * warm-up touches only pages that will be used. NULL: every tensor. */
    bool (*reads_model_bytes)(void *ctx, const void *data);
};

struct wisp_engine {
    const struct wisp_engine_ops *ops;
    void *ctx;
    const wisp_model *model;
    wisp_engine_opts opts;
};

/* Creates the CPU engine for a model (the model must outlive it). */
int wisp_engine_cpu_create(const wisp_model *model, const wisp_engine_opts *opts, wisp_engine **out,
                           wisp_err *err);
void wisp_engine_destroy(wisp_engine *e);

/* Every engine's defaults for options left at zero: 16-token blocks, 512
 * tokens and 1 sequence per step, one training context of KV blocks, all
 * layers. */
void wisp_engine_opts_resolve(const wisp_model_config *c, const wisp_engine_opts *in,
                              wisp_engine_opts *out);

#endif
