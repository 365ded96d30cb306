/*
 * engine_cuda.h - the CUDA engine: the wisp_engine vtable on one NVIDIA GPU,
 * plus what only a device engine has (device listing, VRAM planning, the
 * pinned host tier of the KV cache).
 *
 * Built only with `make CUDA=1`. The engine uploads every weight once at
 * create (full offload), keeps the KV pool in VRAM in the same per-block
 * byte format as the CPU engine, and runs each step on one CUDA stream:
 * hand-written kernels (kernels/) for decode and cuBLAS for prefill. Every
 * CUDA and cuBLAS failure comes back as a wisp_err naming the call; a fault
 * that poisons the CUDA context marks the engine broken, and every later
 * call fails with that first message instead of computing garbage.
 *
 * The device is the one given to the *_on constructors (a placement's
 * "cuda:N"), else the WISP_CUDA_DEVICE environment variable (default 0).
 * Every call of an engine makes its device current on the calling thread
 * first, so engines on different GPUs can be chained (engine/stages.h).
 *
 * An engine may run a range of the layers (opts layer_begin/layer_end,
 * engine.h): it then uploads only those layers' weights, the embedding
 * only when the range starts at layer 0 and the output norm and head only
 * when it ends at the last layer, holds KV rows of its layers only, and
 * takes its input from / leaves its output in the batch's host hidden
 * state (one host<->device copy of n_tokens x n_embd floats per step).
 *
 * Under a weights budget (opts weights_budget_bytes) the engine holds at
 * most that many bytes of its layers' weights on the device: the layers
 * that fit beside two layer buffers stay resident, the others wait in
 * pinned host memory and are copied into the buffers on a copy stream,
 * layer l+1 while layer l computes (engine/stream_plan.h decides what
 * goes where; cuda_stream.c queues it). The embedding, head and norms
 * outside the layers stay resident. A budget below two of the largest
 * layers, when not every layer fits, is WISP_E_INVALID with the numbers.
 */
#ifndef WISP_ENGINE_CUDA_H
#define WISP_ENGINE_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/engine.h"
#include "model/model.h"

typedef struct wisp_cuda_device_info {
    int index;
    char name[256];
    int cc_major, cc_minor; /* compute capability */
    int n_sms;
    uint64_t total_bytes;
    uint64_t free_bytes;
    bool usable; /* compute capability >= 8.0 (the fatbin's oldest target) */
} wisp_cuda_device_info;

/* Lists up to cap devices into out. Returns how many devices there are
 * (possibly more than cap), or a negative wisp_code with err saying why no
 * device can be used (no driver, no GPU, driver too old). */
int wisp_cuda_devices(wisp_cuda_device_info *out, int cap, wisp_err *err);

/* Creates the CUDA engine for a model (the model must outlive it). Fails
 * with WISP_E_DEVICE when no usable GPU exists, WISP_E_UNSUPPORTED for a
 * weight type or shape without kernels, WISP_E_NOMEM when the weights, the
 * requested n_blocks of KV and the scratch do not fit in VRAM (the message
 * gives the sizes). Zero options take the CPU engine's defaults. */
int wisp_engine_cuda_create(const wisp_model *model, const wisp_engine_opts *opts,
                            wisp_engine **out, wisp_err *err);

/* The same on CUDA device index device (< 0: WISP_CUDA_DEVICE, default 0). */
int wisp_engine_cuda_create_on(const wisp_model *model, int device, const wisp_engine_opts *opts,
                               wisp_engine **out, wisp_err *err);

/* The same from a config and weights in host memory (tests, synthesized
 * models); the weights are copied to the device and need not outlive it. */
int wisp_engine_cuda_create_from(const wisp_model_config *cfg, const wisp_model_weights *w,
                                 const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err);
int wisp_engine_cuda_create_from_on(const wisp_model_config *cfg, const wisp_model_weights *w,
                                    int device, const wisp_engine_opts *opts, wisp_engine **out,
                                    wisp_err *err);

/* Checks that the CUDA engine can run the model: every tensor's type has
 * kernels and its shape matches the config. Returns 0, or the error the
 * engine's create would give (WISP_E_UNSUPPORTED, WISP_E_FORMAT). Touches
 * no device. */
int wisp_cuda_check_model(const wisp_model_config *cfg, const wisp_model_weights *w, wisp_err *err);

/* How many KV blocks of opts' type and block size fit on the device after
 * the weights of opts' layer range and the scratch for opts' batch limits, keeping
 * headroom_bytes free. Returns 0 and sets *n_blocks, or a negative code. */
int wisp_cuda_plan_blocks(const wisp_model_config *cfg, const wisp_model_weights *w,
                          const wisp_engine_opts *opts, uint64_t headroom_bytes, int *n_blocks,
                          wisp_err *err);

/* True when e is a CUDA engine. */
bool wisp_engine_is_cuda(const wisp_engine *e);

/* ---------------------------------------------------------------- host tier
 * The prefix cache's second tier: n_host_blocks blocks of pinned host
 * memory. Offload and restore are asynchronous copies on a side stream,
 * ordered after every step already queued and before every later one, so
 * the caller may reuse the device block (after offload) or read it in the
 * next step (after restore) without waiting; it waits with
 * wisp_cuda_tier_sync() only before touching the host copy itself or
 * reusing its host slot. */
int wisp_cuda_tier_init(wisp_engine *e, int n_host_blocks, wisp_err *err);
int wisp_cuda_tier_offload(wisp_engine *e, int32_t dev_block, int32_t host_slot, wisp_err *err);
int wisp_cuda_tier_restore(wisp_engine *e, int32_t host_slot, int32_t dev_block, wisp_err *err);
int wisp_cuda_tier_sync(wisp_engine *e, wisp_err *err);
/* The host copy of a slot (bytes_per_block bytes), valid after a sync;
 * NULL for a bad slot or without a tier. */
const void *wisp_cuda_tier_host_block(wisp_engine *e, int32_t host_slot);

#endif
