/*
 * router.c - rendezvous hashing, back-off and least-in-flight: see router.h.
 */
#include "remote/router.h"

#include <pthread.h>
#include <stdlib.h>
#include <xxhash.h>

typedef struct server {
    int in_flight;
    uint64_t requests, failures, retries_away, keyed;
    double down_until_ms;
    double latency_last, latency_avg;
} server;

struct wisp_router {
    pthread_mutex_t lock;
    int n;
    double back_off_ms;
    server *s;
};

int wisp_router_create(int n, double back_off_ms, wisp_router **out, wisp_err *err)
{
    wisp_router *r = calloc(1, sizeof *r);
    if (!r || n <= 0 || !(r->s = calloc((size_t)n, sizeof *r->s))) {
        free(r);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    r->n = n;
    r->back_off_ms = back_off_ms;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void wisp_router_free(wisp_router *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->s);
    free(r);
}

int wisp_router_count(const wisp_router *r) { return r->n; }

/* The key's weight on server i: the same for every process and run. */
static uint64_t weight(uint64_t key, int i)
{
    uint64_t in[2] = {key, (uint64_t)i * 0x9e3779b97f4a7c15ull + 1};
    return XXH3_64bits(in, sizeof in);
}

int wisp_router_pick(wisp_router *r, bool has_key, uint64_t key, const bool *exclude, double now_ms)
{
    pthread_mutex_lock(&r->lock);
    int best = -1, fallback = -1;
    uint64_t best_w = 0;
    for (int i = 0; i < r->n; i++) {
        if (exclude && exclude[i])
            continue;
        server *s = &r->s[i];
        if (s->down_until_ms > now_ms) {
            if (fallback < 0 || s->down_until_ms < r->s[fallback].down_until_ms)
                fallback = i;
            continue;
        }
        if (has_key) {
            uint64_t w = weight(key, i);
            if (best < 0 || w > best_w) {
                best = i;
                best_w = w;
            }
        } else if (best < 0 || s->in_flight < r->s[best].in_flight ||
                   (s->in_flight == r->s[best].in_flight && s->requests < r->s[best].requests)) {
            best = i;
        }
    }
    if (best < 0)
        best = fallback;
    if (best >= 0) {
        r->s[best].in_flight++;
        r->s[best].requests++;
        if (has_key)
            r->s[best].keyed++;
    }
    pthread_mutex_unlock(&r->lock);
    return best;
}

void wisp_router_done(wisp_router *r, int i, bool ok, bool down, bool retried, double latency_ms,
                      double now_ms)
{
    if (i < 0 || i >= r->n)
        return;
    pthread_mutex_lock(&r->lock);
    server *s = &r->s[i];
    if (s->in_flight > 0)
        s->in_flight--;
    if (!ok)
        s->failures++;
    if (retried)
        s->retries_away++;
    if (down)
        s->down_until_ms = now_ms + r->back_off_ms;
    else if (ok)
        s->down_until_ms = 0;
    if (latency_ms >= 0) {
        s->latency_last = latency_ms;
        s->latency_avg = s->latency_avg > 0 ? 0.8 * s->latency_avg + 0.2 * latency_ms : latency_ms;
    }
    pthread_mutex_unlock(&r->lock);
}

void wisp_router_stats(wisp_router *r, int i, double now_ms, wisp_router_server_stats *out)
{
    pthread_mutex_lock(&r->lock);
    const server *s = &r->s[i];
    out->up = s->down_until_ms <= now_ms;
    out->in_flight = s->in_flight;
    out->requests = s->requests;
    out->failures = s->failures;
    out->retries_away = s->retries_away;
    out->keyed = s->keyed;
    out->latency_ms_last = s->latency_last;
    out->latency_ms_avg = s->latency_avg;
    out->down_until_ms = s->down_until_ms > now_ms ? s->down_until_ms : 0;
    pthread_mutex_unlock(&r->lock);
}

bool wisp_router_key_tokens(const int32_t *ids, size_t n, size_t block, size_t n_blocks,
                            uint64_t *key)
{
    if (block == 0 || n < block)
        return false;
    size_t use = n / block;
    if (use > n_blocks)
        use = n_blocks;
    *key = XXH3_64bits(ids, use * block * sizeof *ids);
    return true;
}

bool wisp_router_key_bytes(const void *p, size_t len, size_t max, uint64_t *key)
{
    if (len == 0)
        return false;
    *key = XXH3_64bits(p, len < max ? len : max);
    return true;
}
