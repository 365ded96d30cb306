/*
 * stream.c - the CPU engine's weight arena and its copy thread (stream.h).
 *
 * Two slots, each with the layer it should hold (want) and the layer it
 * holds (have). The copy thread fills any slot whose want differs from its
 * have, the one compute needs next first. Compute acquires a layer by
 * waiting for a slot whose have is that layer, and releasing it points the
 * slot at the layer after next (cyclically within the stage's range), so
 * the copy of the next step's first layers overlaps this step's last layer
 * and the output head. A stage of one or two layers copies them once and
 * keeps them. When compute needs a layer whose copy has not started (the
 * copy thread had no core to run on, as on a machine busy with other
 * work), it copies the layer itself rather than wait for the thread to be
 * scheduled: that copy is the wait it would have had anyway. One mutex
 * and two conditions guard want/have/filling; a copy runs unlocked into a
 * slot nobody else touches (filling set, have -1).
 */
#include "engine/cpu/stream.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#define N_MATS  7
#define ALIGN   64
#define N_SLOTS 2

typedef struct stream_slot {
    uint8_t *buf;
    int want, have; /* layer ids, -1 for none */
    bool filling;   /* a copy into it is under way */
    wisp_tensor mats[N_MATS];
    wisp_layer_weights lw;
} stream_slot;

struct wisp_cpu_stream {
    const wisp_model_weights *w;
    int begin, n; /* layers [begin, begin + n) */
    uint8_t *arena;
    size_t slot_bytes;
    stream_slot slot[N_SLOTS];
    int need; /* the layer compute acquires next */
    bool quit;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t thread;
    bool thread_started;
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

static int cyc(const wisp_cpu_stream *s, int layer) { return s->begin + (layer - s->begin) % s->n; }

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

/* The slot to fill next: one whose want is not what it has, the layer
 * compute needs next first. -1 when both are as wanted. */
static int slot_to_fill(const wisp_cpu_stream *s)
{
    int pick = -1;
    for (int i = 0; i < N_SLOTS; i++) {
        const stream_slot *k = &s->slot[i];
        if (k->want < 0 || k->want == k->have || k->filling)
            continue;
        if (pick < 0 || k->want == s->need)
            pick = i;
    }
    return pick;
}

/* Fills slot k with the layer it wants; called and returning with the
 * lock held, which it drops for the copy. Returns the copy's time. */
static double fill_locked(wisp_cpu_stream *s, stream_slot *k)
{
    const int l = k->want;
    k->have = -1;
    k->filling = true;
    pthread_mutex_unlock(&s->mu);
    double t0 = wisp_now_ms();
    fill_slot(s, k, l);
    double ms = wisp_now_ms() - t0;
    pthread_mutex_lock(&s->mu);
    k->filling = false;
    k->have = l;
    s->st.streamed_bytes += wisp_cpu_stream_layer_bytes(&s->w->layers[l]);
    s->st.copy_ms += ms;
    pthread_cond_broadcast(&s->done);
    return ms;
}

static void *copy_thread(void *ud)
{
    wisp_cpu_stream *s = ud;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        int i = slot_to_fill(s);
        if (i < 0) {
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        fill_locked(s, &s->slot[i]);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The largest layer of [begin, end) in one layer buffer, and which. */
static uint64_t largest_layer(const wisp_model_weights *w, int begin, int end, int *which)
{
    uint64_t largest = 0;
    *which = begin;
    for (int l = begin; l < end; l++) {
        uint64_t b = wisp_cpu_stream_layer_bytes(&w->layers[l]);
        if (b > largest) {
            largest = b;
            *which = l;
        }
    }
    return largest;
}

int wisp_cpu_stream_check_budget(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                                 wisp_err *err)
{
    if (begin < 0 || end <= begin)
        return wisp_err_set(err, WISP_E_INTERNAL, "layer streaming: bad layer range [%d, %d)",
                            begin, end);
    int which;
    const uint64_t largest = largest_layer(w, begin, end, &which);
    if (budget < N_SLOTS * largest)
        return wisp_err_set(err, WISP_E_INVALID,
                            "weights budget of %.2f MiB is less than two of the largest layers "
                            "(layer %d: %.2f MiB each; at least %.2f MiB needed to stream "
                            "layers %d..%d)",
                            (double)budget / 1048576.0, which, (double)largest / 1048576.0,
                            (double)(N_SLOTS * largest) / 1048576.0, begin, end - 1);
    return 0;
}

int wisp_cpu_stream_create(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                           wisp_cpu_stream **out, wisp_err *err)
{
    *out = NULL;
    int rc = wisp_cpu_stream_check_budget(w, begin, end, budget, err);
    if (rc)
        return rc;
    int which;
    const uint64_t largest = largest_layer(w, begin, end, &which);
    wisp_cpu_stream *s = calloc(1, sizeof *s);
    if (!s)
        return wisp_err_set(err, WISP_E_NOMEM, "layer streaming: out of memory");
    s->w = w;
    s->begin = begin;
    s->n = end - begin;
    s->slot_bytes = round_up(largest ? largest : ALIGN);
    s->arena = aligned_alloc(ALIGN, N_SLOTS * s->slot_bytes);
    if (!s->arena) {
        size_t want = N_SLOTS * s->slot_bytes;
        free(s);
        return wisp_err_set(err, WISP_E_NOMEM,
                            "layer streaming: cannot allocate a %zu-byte weight arena", want);
    }
    s->st.arena_bytes = N_SLOTS * s->slot_bytes;
    for (int i = 0; i < N_SLOTS; i++) {
        s->slot[i].buf = s->arena + (size_t)i * s->slot_bytes;
        s->slot[i].have = -1;
        s->slot[i].want = i < s->n ? begin + i : -1;
    }
    s->need = begin;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
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
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    free(s->arena);
    free(s);
}

static int slot_wanting(const wisp_cpu_stream *s, int layer)
{
    for (int i = 0; i < N_SLOTS; i++)
        if (s->slot[i].want == layer)
            return i;
    return -1;
}

const wisp_layer_weights *wisp_cpu_stream_acquire(wisp_cpu_stream *s, int layer)
{
    pthread_mutex_lock(&s->mu);
    int i = slot_wanting(s, layer);
    if (i < 0) {
        /* Out of the expected order (a step cancelled part way): point the
         * slots at this layer and its successor, keeping a slot that
         * already holds the successor. */
        const int next = s->n > 1 ? cyc(s, layer + 1) : -1;
        i = s->slot[0].have == next && next >= 0 ? 1 : 0;
        s->slot[i].want = layer;
        s->slot[1 - i].want = next;
    }
    s->need = layer;
    pthread_cond_signal(&s->work);
    stream_slot *k = &s->slot[i];
    if (k->have != layer) {
        double t0 = wisp_now_ms();
        while (k->have != layer) {
            if (!k->filling && k->want == layer)
                fill_locked(s, k); /* not started: copy it here */
            else
                pthread_cond_wait(&s->done, &s->mu);
        }
        s->st.wait_ms += wisp_now_ms() - t0;
    }
    pthread_mutex_unlock(&s->mu);
    return &k->lw;
}

void wisp_cpu_stream_release(wisp_cpu_stream *s, int layer)
{
    pthread_mutex_lock(&s->mu);
    int i = slot_wanting(s, layer);
    if (i >= 0 && s->n > N_SLOTS) {
        s->slot[i].want = cyc(s, layer + N_SLOTS);
        s->need = cyc(s, layer + 1);
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
}

void wisp_cpu_stream_get_stats(wisp_cpu_stream *s, wisp_cpu_stream_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
