/*
 * cuda_stream.c - layer streaming on the GPU: the schedule of
 * engine/stream_plan.h acted on with a copy stream and events.
 *
 * The streamed layers' images wait in pinned host memory (cuda_weights.c
 * wrote them there at creation); two device layer buffers ("slots") in
 * the weight arena take them in turn. Everything is queued, nothing on
 * the host waits:
 *
 *   copy stream:     wait freed[i]; copy image -> slot i; record ready[i]
 *   compute stream:  wait ready[i]; layer kernels on slot i; record freed[i]
 *
 * A copy into slot i is queued when compute releases the slot's previous
 * layer (the schedule then wants the streamed layer after next there), so
 * it runs on the device while the next layer computes from the other
 * slot; freed[i] keeps it from overwriting weights a queued kernel still
 * reads, and ready[i] keeps compute from reading a slot before its copy
 * landed. Each event is waited on right after the record it stands for
 * and before the next record of it, as host-side order guarantees here
 * (acquire waits for the copy queued last into the slot; the next copy
 * into it is queued only at release). The last layers' releases queue
 * the next step's first streamed layers, which then copy during the
 * output head and the time between steps.
 *
 * Timing: every copy is bracketed by two timing events on the copy
 * stream (its device time), every acquire of a streamed layer by two on
 * the compute stream around its wait (the time compute stalled for the
 * copy; ~0 when the copy was done). They go into rings harvested in
 * order after each step with cudaEventQuery, so reading them never
 * blocks; a ring that fills up waits for its oldest entry.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_int.h"

/* ---------------------------------------------------------------- timing */

static int ring_init(wisp_cuda_timing_ring *g, int cap, wisp_err *err)
{
    g->r = calloc((size_t)cap, sizeof *g->r);
    if (!g->r)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    g->cap = cap;
    for (int i = 0; i < cap; i++) {
        WISP_CU(err, cudaEventCreate(&g->r[i].a));
        WISP_CU(err, cudaEventCreate(&g->r[i].b));
    }
    return 0;
}

static void ring_free(wisp_cuda_timing_ring *g)
{
    for (int i = 0; g->r && i < g->cap; i++) {
        if (g->r[i].a)
            cudaEventDestroy(g->r[i].a);
        if (g->r[i].b)
            cudaEventDestroy(g->r[i].b);
    }
    free(g->r);
    memset(g, 0, sizeof *g);
}

/* Adds the ring's finished entries, oldest first, to the totals (ms to
 * *ms, bytes to *bytes); stops at the first not finished, or, with wait,
 * waits for the oldest first. */
static int ring_harvest(wisp_cuda_timing_ring *g, bool wait, double *ms, uint64_t *bytes,
                        wisp_err *err)
{
    while (g->n > 0) {
        wisp_cuda_timed *t = &g->r[g->head];
        if (wait) {
            WISP_CU(err, cudaEventSynchronize(t->b));
            wait = false;
        }
        cudaError_t q = cudaEventQuery(t->b);
        if (q == cudaErrorNotReady) {
            cudaGetLastError(); /* not an error: still running */
            return 0;
        }
        WISP_CU(err, q);
        float el = 0;
        WISP_CU(err, cudaEventElapsedTime(&el, t->a, t->b));
        *ms += el;
        *bytes += t->bytes;
        g->head = (g->head + 1) % g->cap;
        g->n--;
    }
    return 0;
}

/* The next free entry of ring g, waiting for the oldest when all are in
 * use; the caller records its events, sets its bytes and then commits it
 * (an entry whose events were not both recorded is never harvested). */
static int ring_next(wisp_cuda_streamer *sw, wisp_cuda_timing_ring *g, double *ms, uint64_t *bytes,
                     wisp_cuda_timed **out, wisp_err *err)
{
    if (g->n == g->cap) {
        pthread_mutex_lock(&sw->mu);
        int rc = ring_harvest(g, true, ms, bytes, err);
        pthread_mutex_unlock(&sw->mu);
        if (rc)
            return rc;
    }
    *out = &g->r[(g->head + g->n) % g->cap];
    return 0;
}

static void ring_commit(wisp_cuda_timing_ring *g) { g->n++; }

/* ---------------------------------------------------------------- copies */

/* Queues the copy of layer l into slot i after that slot's last reader,
 * timed, and binds the slot's layer to it. */
static int queue_copy(wisp_cuda_engine *e, int i, int l, wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    const int kl = l - e->range.begin;
    const size_t bytes = e->images[kl].bytes;
    wisp_cuda_timed *t = NULL;
    WISP_TRY(ring_next(sw, &sw->copies, &sw->copy_ms, &sw->streamed_bytes, &t, err));
    t->bytes = bytes;
    WISP_CU(err, cudaStreamWaitEvent(sw->copy, sw->freed[i], 0));
    WISP_CU(err, cudaEventRecord(t->a, sw->copy));
    WISP_CU(err, cudaMemcpyAsync(sw->slot[i], sw->host + sw->host_off[kl], bytes,
                                 cudaMemcpyHostToDevice, sw->copy));
    WISP_CU(err, cudaEventRecord(t->b, sw->copy));
    ring_commit(&sw->copies);
    WISP_CU(err, cudaEventRecord(sw->ready[i], sw->copy));
    wisp_cuda_layer_bind(&e->images[kl], sw->slot[i], &sw->slot_layer[i]);
    return 0;
}

/* Queues the copies the schedule asks for: into each slot that wants a
 * layer it does not hold. A copy that could not be queued leaves its
 * slot empty, so the schedule asks for it again. */
static int issue_fills(wisp_cuda_engine *e, wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    for (int i; (i = wisp_stream_sched_next_fill(&sw->sched)) >= 0;) {
        const int l = wisp_stream_sched_fill_begin(&sw->sched, i);
        const int rc = queue_copy(e, i, l, err);
        wisp_stream_sched_fill_end(&sw->sched, i, rc ? -1 : l);
        if (rc)
            return rc;
    }
    return 0;
}

int wisp_cuda_stream_init(wisp_cuda_engine *e, wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    if (!sw->on)
        return 0;
    pthread_mutex_init(&sw->mu, NULL);
    sw->mu_init = true;
    WISP_CU(err, cudaStreamCreateWithFlags(&sw->copy, cudaStreamNonBlocking));
    for (int i = 0; i < WISP_STREAM_SLOTS; i++) {
        WISP_CU(err, cudaEventCreateWithFlags(&sw->ready[i], cudaEventDisableTiming));
        WISP_CU(err, cudaEventCreateWithFlags(&sw->freed[i], cudaEventDisableTiming));
    }
    /* A step queues each streamed layer's copy and wait once, plus the
     * slots' refills after an out-of-order acquire. */
    const int cap = sw->plan.n_streamed + 2 * WISP_STREAM_SLOTS;
    WISP_TRY(ring_init(&sw->copies, cap, err));
    WISP_TRY(ring_init(&sw->waits, cap, err));
    wisp_stream_sched_init(&sw->sched, &sw->plan);
    return issue_fills(e, err);
}

void wisp_cuda_stream_free(wisp_cuda_engine *e)
{
    wisp_cuda_streamer *sw = &e->sw;
    /* Queued copies still write the slots and read the pinned images. */
    if (sw->copy)
        cudaStreamSynchronize(sw->copy);
    ring_free(&sw->copies);
    ring_free(&sw->waits);
    for (int i = 0; i < WISP_STREAM_SLOTS; i++) {
        if (sw->ready[i])
            cudaEventDestroy(sw->ready[i]);
        if (sw->freed[i])
            cudaEventDestroy(sw->freed[i]);
    }
    if (sw->copy)
        cudaStreamDestroy(sw->copy);
    if (sw->host)
        cudaFreeHost(sw->host);
    if (sw->mu_init)
        pthread_mutex_destroy(&sw->mu);
    free(sw->host_off);
    wisp_stream_plan_free(&sw->plan);
    memset(sw, 0, sizeof *sw);
}

/* ---------------------------------------------------------------- compute */

int wisp_cuda_stream_acquire(wisp_cuda_engine *e, int l, const wisp_cuda_layer **L, int *slot,
                             wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    *slot = -1;
    *L = &e->layers[l - e->range.begin];
    if (!sw->on || !wisp_stream_plan_streams(&sw->plan, l))
        return 0;
    const int i = wisp_stream_sched_acquire(&sw->sched, l);
    WISP_TRY(issue_fills(e, err));
    if (sw->sched.slot[i].have != l)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "cuda engine: layer %d is not in its layer buffer after its copy", l);
    wisp_cuda_timed *t = NULL;
    uint64_t none = 0;
    WISP_TRY(ring_next(sw, &sw->waits, &sw->wait_ms, &none, &t, err));
    t->bytes = 0;
    WISP_CU(err, cudaEventRecord(t->a, e->stream));
    WISP_CU(err, cudaStreamWaitEvent(e->stream, sw->ready[i], 0));
    WISP_CU(err, cudaEventRecord(t->b, e->stream));
    ring_commit(&sw->waits);
    *slot = i;
    *L = &sw->slot_layer[i];
    return 0;
}

int wisp_cuda_stream_release(wisp_cuda_engine *e, int l, int slot, wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    if (slot < 0)
        return 0;
    WISP_CU(err, cudaEventRecord(sw->freed[slot], e->stream));
    wisp_stream_sched_release(&sw->sched, l);
    return issue_fills(e, err);
}

int wisp_cuda_stream_harvest(wisp_cuda_engine *e, wisp_err *err)
{
    wisp_cuda_streamer *sw = &e->sw;
    if (!sw->on)
        return 0;
    uint64_t none = 0;
    pthread_mutex_lock(&sw->mu);
    int rc = ring_harvest(&sw->copies, false, &sw->copy_ms, &sw->streamed_bytes, err);
    if (rc == 0)
        rc = ring_harvest(&sw->waits, false, &sw->wait_ms, &none, err);
    pthread_mutex_unlock(&sw->mu);
    return rc;
}

void wisp_cuda_stream_stats(wisp_cuda_engine *e, wisp_engine_stats *out)
{
    wisp_cuda_streamer *sw = &e->sw;
    if (!sw->on)
        return;
    pthread_mutex_lock(&sw->mu);
    out->weights_streaming = true;
    out->weights_streamed_bytes = sw->streamed_bytes;
    out->weights_copy_ms = sw->copy_ms;
    out->weights_wait_ms = sw->wait_ms;
    pthread_mutex_unlock(&sw->mu);
}
