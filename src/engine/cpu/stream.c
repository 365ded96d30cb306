/*
 * stream.c - the CPU engine's weight arena and its copy thread (stream.h).
 *
 * What goes where and when is the shared schedule (engine/stream_plan.h,
 * every layer streamed: the CPU computes from the file mapping, so a
 * resident copy would only add memory): two slots, each with the layer it
 * should hold (want) and the layer it holds (have). The copy thread fills
 * any slot whose want differs from its have, the one compute needs next
 * first. Compute acquires a layer by waiting for the slot whose have is
 * that layer, and releasing it points the slot at the layer after next
 * (cyclically within the stage's range), so the copy of the next step's
 * first layers overlaps this step's last layer and the output head. A
 * stage of one or two layers copies them once and keeps them. When
 * compute needs a layer whose copy has not started (the copy thread had
 * no core to run on, as on a machine busy with other work), it copies the
 * layer itself rather than wait for the thread to be scheduled: that copy
 * is the wait it would have had anyway. One mutex and two conditions
 * guard the schedule; a copy runs unlocked into a slot nobody else
 * touches (filling set, have -1).
 */
#include "engine/cpu/stream.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/stream_plan.h"

#define N_MATS  7
#define ALIGN   64
#define N_SLOTS WISP_STREAM_SLOTS

typedef struct stream_slot {
    uint8_t *buf;
    wisp_tensor mats[N_MATS];
    wisp_layer_weights lw;
} stream_slot;

struct wisp_cpu_stream {
    const wisp_model_weights *w;
    wisp_stream_plan plan;
    wisp_stream_sched sched;
    uint8_t *arena;
    size_t slot_bytes;
    stream_slot slot[N_SLOTS];
    bool quit;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t thread;
    bool thread_started, sync_init;
    wisp_cpu_stream_stats st;
};

/* The matrices of a layer, in a fixed order. */
static void layer_mats(const wisp_layer_weights *L, const wisp_tensor *out[N_MATS])
{
    const wisp_tensor *m[N_MATS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    memcpy(out, m, sizeof m);
}

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

uint64_t wisp_cpu_stream_layer_bytes(const wisp_layer_weights *L)
{
    const wisp_tensor *m[N_MATS];
    layer_mats(L, m);
    uint64_t n = 0;
    for (int i = 0; i < N_MATS; i++)
        n += m[i] ? round_up(m[i]->nbytes) : 0;
    return n;
}

/* The layer bytes of [begin, end) in this arena's layout, for the plan. */
static uint64_t *layer_sizes(const wisp_model_weights *w, int begin, int end)
{
    uint64_t *b = malloc(sizeof *b * (size_t)(end - begin));
    for (int l = begin; b && l < end; l++)
        b[l - begin] = wisp_cpu_stream_layer_bytes(&w->layers[l]);
    return b;
}

/* Plans [begin, end) of w under budget, every layer streamed. */
static int plan_stream(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                       wisp_stream_plan *p, wisp_err *err)
{
    memset(p, 0, sizeof *p);
    if (begin < 0 || end <= begin)
        return wisp_err_set(err, WISP_E_INTERNAL, "layer streaming: bad layer range [%d, %d)",
                            begin, end);
    uint64_t *bytes = layer_sizes(w, begin, end);
    if (!bytes)
        return wisp_err_set(err, WISP_E_NOMEM, "layer streaming: out of memory");
    int rc = wisp_stream_plan_init(p, bytes, begin, end - begin, budget, WISP_STREAM_ALL, err);
    free(bytes);
    return rc;
}

/* Fills slot k with layer l: the matrices' bytes, then tensors pointing
 * at them. Runs unlocked: nobody reads slot k while its have is -1. */
static void fill_slot(wisp_cpu_stream *s, stream_slot *k, int l)
{
    const wisp_layer_weights *L = &s->w->layers[l];
    const wisp_tensor *m[N_MATS];
    layer_mats(L, m);
    const wisp_tensor **dst[N_MATS] = {&k->lw.wq,     &k->lw.wk,   &k->lw.wv,    &k->lw.wo,
                                       &k->lw.w_gate, &k->lw.w_up, &k->lw.w_down};
    k->lw = *L;
    size_t off = 0;
    for (int i = 0; i < N_MATS; i++) {
        if (!m[i])
            continue;
        memcpy(k->buf + off, m[i]->data, m[i]->nbytes);
        k->mats[i] = *m[i];
        k->mats[i].data = k->buf + off;
        *dst[i] = &k->mats[i];
        off += round_up(m[i]->nbytes);
    }
}

/* Fills slot i with the layer it wants; called and returning with the
 * lock held, which it drops for the copy. */
static void fill_locked(wisp_cpu_stream *s, int i)
{
    const int l = wisp_stream_sched_fill_begin(&s->sched, i);
    pthread_mutex_unlock(&s->mu);
    double t0 = wisp_now_ms();
    fill_slot(s, &s->slot[i], l);
    double ms = wisp_now_ms() - t0;
    pthread_mutex_lock(&s->mu);
    wisp_stream_sched_fill_end(&s->sched, i, l);
    s->st.streamed_bytes += wisp_stream_plan_layer_bytes(&s->plan, l);
    s->st.copy_ms += ms;
    pthread_cond_broadcast(&s->done);
}

static void *copy_thread(void *ud)
{
    wisp_cpu_stream *s = ud;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        int i = wisp_stream_sched_next_fill(&s->sched);
        if (i < 0) {
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        fill_locked(s, i);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int wisp_cpu_stream_check_budget(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                                 wisp_err *err)
{
    wisp_stream_plan p;
    int rc = plan_stream(w, begin, end, budget, &p, err);
    wisp_stream_plan_free(&p);
    return rc;
}

int wisp_cpu_stream_create(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                           wisp_cpu_stream **out, wisp_err *err)
{
    *out = NULL;
    wisp_cpu_stream *s = calloc(1, sizeof *s);
    if (!s)
        return wisp_err_set(err, WISP_E_NOMEM, "layer streaming: out of memory");
    int rc = plan_stream(w, begin, end, budget, &s->plan, err);
    if (rc) {
        wisp_stream_plan_free(&s->plan);
        free(s);
        return rc;
    }
    s->w = w;
    const uint64_t largest = s->plan.slot_bytes;
    s->slot_bytes = round_up(largest ? largest : ALIGN);
    s->arena = aligned_alloc(ALIGN, N_SLOTS * s->slot_bytes);
    if (!s->arena) {
        size_t want = N_SLOTS * s->slot_bytes;
        wisp_cpu_stream_destroy(s);
        return wisp_err_set(err, WISP_E_NOMEM,
                            "layer streaming: cannot allocate a %zu-byte weight arena", want);
    }
    s->st.arena_bytes = N_SLOTS * s->slot_bytes;
    for (int i = 0; i < N_SLOTS; i++)
        s->slot[i].buf = s->arena + (size_t)i * s->slot_bytes;
    wisp_stream_sched_init(&s->sched, &s->plan);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    s->sync_init = true;
    rc = pthread_create(&s->thread, NULL, copy_thread, s);
    if (rc) {
        wisp_cpu_stream_destroy(s);
        return wisp_err_set(err, WISP_E_NOMEM, "layer streaming: cannot start the copy thread");
    }
    s->thread_started = true;
    *out = s;
    return 0;
}

void wisp_cpu_stream_destroy(wisp_cpu_stream *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->sync_init) {
        pthread_cond_destroy(&s->done);
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->mu);
    }
    wisp_stream_plan_free(&s->plan);
    free(s->arena);
    free(s);
}

const wisp_layer_weights *wisp_cpu_stream_acquire(wisp_cpu_stream *s, int layer)
{
    pthread_mutex_lock(&s->mu);
    const int i = wisp_stream_sched_acquire(&s->sched, layer);
    pthread_cond_signal(&s->work);
    const wisp_stream_slot *k = &s->sched.slot[i];
    if (k->have != layer) {
        double t0 = wisp_now_ms();
        while (k->have != layer) {
            if (!k->filling && k->want == layer)
                fill_locked(s, i); /* not started: copy it here */
            else
                pthread_cond_wait(&s->done, &s->mu);
        }
        s->st.wait_ms += wisp_now_ms() - t0;
    }
    pthread_mutex_unlock(&s->mu);
    return &s->slot[i].lw;
}

void wisp_cpu_stream_release(wisp_cpu_stream *s, int layer)
{
    pthread_mutex_lock(&s->mu);
    wisp_stream_sched_release(&s->sched, layer);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void wisp_cpu_stream_get_stats(wisp_cpu_stream *s, wisp_cpu_stream_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
