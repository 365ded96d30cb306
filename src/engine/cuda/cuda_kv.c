/*
 * cuda_kv.c - the KV cache's device pool and its pinned host tier.
 *
 * The pool is n_blocks blocks in one cudaMalloc; one block holds every
 * layer's K and V (the layers of the engine's range: kernels see layer
 * l - range.begin) for block_size positions, contiguously, in the byte
 * format the CPU engine uses (wisp_k_kv_layout), so a block moves between
 * tiers, engines and files with a single copy. Copies that serve the
 * scheduler's copy-on-write run on the compute stream (ordered with the
 * steps that read them, no wait). The host tier is pinned memory; offload
 * and restore run on a side stream, fenced by events against the compute
 * stream in both directions, so the host thread never waits for them
 * except in wisp_cuda_tier_sync().
 */
#include <string.h>

#include "engine/cuda/cuda_int.h"

int wisp_cuda_kv_init(wisp_cuda_engine *e, wisp_err *err)
{
    const wisp_model_config *c = &e->cfg;
    WISP_TRY(wisp_k_kv_layout_init(&e->kvl, (int)e->opts.kv_type, e->range.n_local,
                                   e->opts.block_size, c->n_head_kv, c->head_dim, err));
    const size_t bytes = e->kvl.block_bytes * (size_t)e->opts.n_blocks;
    cudaError_t ce = cudaMalloc(&e->kv, bytes);
    if (ce != cudaSuccess) {
        e->kv = NULL;
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cuda engine: %d KV blocks need %.2f GiB of VRAM and %.2f GiB are "
                            "free (%s); ask for fewer blocks",
                            e->opts.n_blocks, (double)bytes / (1 << 30), (double)free_b / (1 << 30),
                            cudaGetErrorString(ce));
    }
    /* Zeroed so that a block read before it was written holds finite
     * numbers (a half or float of 0), never NaN bit patterns. */
    WISP_CU(err, cudaMemsetAsync(e->kv, 0, bytes, e->stream));
    return 0;
}

void wisp_cuda_kv_free(wisp_cuda_engine *e)
{
    if (e->kv)
        cudaFree(e->kv);
    if (e->tier)
        cudaFreeHost(e->tier);
    e->kv = NULL;
    e->tier = NULL;
}

static int check_block(const wisp_cuda_engine *e, int32_t b, const char *what, wisp_err *err)
{
    if (b < 0 || b >= e->opts.n_blocks)
        return wisp_err_set(err, WISP_E_INTERNAL, "cuda engine: %s block %d outside [0, %d)", what,
                            (int)b, e->opts.n_blocks);
    return 0;
}

static uint8_t *block_ptr(const wisp_cuda_engine *e, int32_t b)
{
    return (uint8_t *)e->kv + (size_t)b * e->kvl.block_bytes;
}

int wisp_cuda_copy_block(wisp_cuda_engine *e, int32_t dst, int32_t src, wisp_err *err)
{
    WISP_TRY(check_block(e, dst, "destination", err));
    WISP_TRY(check_block(e, src, "source", err));
    if (dst == src)
        return 0;
    WISP_CU(err, cudaMemcpyAsync(block_ptr(e, dst), block_ptr(e, src), e->kvl.block_bytes,
                                 cudaMemcpyDeviceToDevice, e->stream));
    return 0;
}

int wisp_cuda_read_block(wisp_cuda_engine *e, int32_t block, void *dst, wisp_err *err)
{
    WISP_TRY(check_block(e, block, "read", err));
    WISP_CU(err, cudaMemcpyAsync(dst, block_ptr(e, block), e->kvl.block_bytes,
                                 cudaMemcpyDeviceToHost, e->stream));
    WISP_CU(err, cudaStreamSynchronize(e->stream));
    return 0;
}

int wisp_cuda_write_block(wisp_cuda_engine *e, int32_t block, const void *src, wisp_err *err)
{
    WISP_TRY(check_block(e, block, "write", err));
    WISP_CU(err, cudaMemcpyAsync(block_ptr(e, block), src, e->kvl.block_bytes,
                                 cudaMemcpyHostToDevice, e->stream));
    /* src belongs to the caller and may be freed on return. */
    WISP_CU(err, cudaStreamSynchronize(e->stream));
    return 0;
}

/* ---------------------------------------------------------------- host tier */

static wisp_cuda_engine *cuda_of(wisp_engine *e, wisp_err *err)
{
    if (!wisp_engine_is_cuda(e)) {
        wisp_err_set(err, WISP_E_INTERNAL, "host tier: not a CUDA engine");
        return NULL;
    }
    return e->ctx;
}

int wisp_cuda_tier_init(wisp_engine *eng, int n_host_blocks, wisp_err *err)
{
    wisp_cuda_engine *e = cuda_of(eng, err);
    if (!e)
        return WISP_E_INTERNAL;
    WISP_TRY(wisp_cuda_enter(e, err));
    if (n_host_blocks <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL, "host tier: %d blocks", n_host_blocks);
    if (e->tier) {
        WISP_CU(err, cudaStreamSynchronize(e->side));
        cudaFreeHost(e->tier);
        e->tier = NULL;
        e->n_tier = 0;
    }
    const size_t bytes = e->kvl.block_bytes * (size_t)n_host_blocks;
    cudaError_t ce = cudaHostAlloc(&e->tier, bytes, cudaHostAllocDefault);
    if (ce != cudaSuccess) {
        e->tier = NULL;
        cudaGetLastError();
        return wisp_err_set(err, WISP_E_NOMEM, "host tier: cannot pin %.2f GiB for %d blocks (%s)",
                            (double)bytes / (1 << 30), n_host_blocks, cudaGetErrorString(ce));
    }
    e->n_tier = n_host_blocks;
    return 0;
}

static int check_slot(const wisp_cuda_engine *e, int32_t slot, wisp_err *err)
{
    if (!e->tier)
        return wisp_err_set(err, WISP_E_INTERNAL, "host tier: not initialized");
    if (slot < 0 || slot >= e->n_tier)
        return wisp_err_set(err, WISP_E_INTERNAL, "host tier: slot %d outside [0, %d)", (int)slot,
                            e->n_tier);
    return 0;
}

/* Copies on the side stream after all work queued so far on the compute
 * stream, and makes later compute work wait for the copy. */
static int fenced_copy(wisp_cuda_engine *e, void *dst, const void *src, enum cudaMemcpyKind kind,
                       wisp_err *err)
{
    WISP_CU(err, cudaEventRecord(e->ev_main, e->stream));
    WISP_CU(err, cudaStreamWaitEvent(e->side, e->ev_main, 0));
    WISP_CU(err, cudaMemcpyAsync(dst, src, e->kvl.block_bytes, kind, e->side));
    WISP_CU(err, cudaEventRecord(e->ev_side, e->side));
    WISP_CU(err, cudaStreamWaitEvent(e->stream, e->ev_side, 0));
    return 0;
}

int wisp_cuda_tier_offload(wisp_engine *eng, int32_t dev_block, int32_t host_slot, wisp_err *err)
{
    wisp_cuda_engine *e = cuda_of(eng, err);
    if (!e)
        return WISP_E_INTERNAL;
    WISP_TRY(wisp_cuda_enter(e, err));
    WISP_TRY(check_block(e, dev_block, "offload", err));
    WISP_TRY(check_slot(e, host_slot, err));
    uint8_t *h = (uint8_t *)e->tier + (size_t)host_slot * e->kvl.block_bytes;
    return wisp_cuda_note_error(e,
                                fenced_copy(e, h, block_ptr(e, dev_block), cudaMemcpyDeviceToHost,
                                            err),
                                err);
}

int wisp_cuda_tier_restore(wisp_engine *eng, int32_t host_slot, int32_t dev_block, wisp_err *err)
{
    wisp_cuda_engine *e = cuda_of(eng, err);
    if (!e)
        return WISP_E_INTERNAL;
    WISP_TRY(wisp_cuda_enter(e, err));
    WISP_TRY(check_block(e, dev_block, "restore", err));
    WISP_TRY(check_slot(e, host_slot, err));
    const uint8_t *h = (const uint8_t *)e->tier + (size_t)host_slot * e->kvl.block_bytes;
    return wisp_cuda_note_error(e,
                                fenced_copy(e, block_ptr(e, dev_block), h, cudaMemcpyHostToDevice,
                                            err),
                                err);
}

int wisp_cuda_tier_sync(wisp_engine *eng, wisp_err *err)
{
    wisp_cuda_engine *e = cuda_of(eng, err);
    if (!e)
        return WISP_E_INTERNAL;
    WISP_TRY(wisp_cuda_enter(e, err));
    cudaError_t ce = cudaStreamSynchronize(e->side);
    if (ce != cudaSuccess)
        return wisp_cuda_note_error(e,
                                    wisp_cuda_fail(err, ce, "cudaStreamSynchronize(side)", __FILE__,
                                                   __LINE__),
                                    err);
    return 0;
}

const void *wisp_cuda_tier_host_block(wisp_engine *eng, int32_t host_slot)
{
    if (!wisp_engine_is_cuda(eng))
        return NULL;
    wisp_cuda_engine *e = eng->ctx;
    if (!e->tier || host_slot < 0 || host_slot >= e->n_tier)
        return NULL;
    return (const uint8_t *)e->tier + (size_t)host_slot * e->kvl.block_bytes;
}
