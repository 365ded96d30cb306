/*
 * router.h - which remote server a request goes to.
 *
 * Requests that share a prefix go to the same server so that its prefix
 * cache keeps hitting: the caller derives a key from what identifies the
 * shared prefix (the supersede key, the first blocks of the prompt's tokens,
 * the first messages of a chat) and the router picks by rendezvous
 * (highest-random-weight) hashing over the servers that are up. That is
 * consistent hashing: a server going down moves only its own keys, to each
 * key's next choice, and they come back when it does. A request without a
 * key goes to the server with the fewest requests in flight. A server whose
 * connection failed is down for a back-off and then tried again.
 *
 * JSON-free and thread-safe (one mutex): requests are routed on one thread
 * and finish on another, and status reads from a third.
 */
#ifndef WISP_REMOTE_ROUTER_H
#define WISP_REMOTE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wisp_router wisp_router;

typedef struct wisp_router_server_stats {
    bool up;
    int in_flight;
    uint64_t requests, failures, retries_away, keyed;
    double latency_ms_last; /* the last answer's time to first byte */
    double latency_ms_avg;  /* its moving average (alpha 0.2) */
    double down_until_ms;   /* 0 while up */
} wisp_router_server_stats;

/* n servers; back_off_ms: how long a failed server is skipped. */
int wisp_router_create(int n, double back_off_ms, wisp_router **out, wisp_err *err);
void wisp_router_free(wisp_router *r);

/* The server for a request: by key when has_key, else least in flight.
 * exclude (may be NULL) marks servers this request already failed on.
 * When every candidate is down, the one whose back-off ends first is
 * tried anyway. Returns the index, or -1 when every server is excluded.
 * Counts the request in flight on the chosen server. */
int wisp_router_pick(wisp_router *r, bool has_key, uint64_t key, const bool *exclude,
                     double now_ms);
/* The request on server i ended: ok or not, down (its connection failed:
 * start the back-off), retried (it goes on elsewhere), latency (time to
 * first byte; < 0 unknown). */
void wisp_router_done(wisp_router *r, int i, bool ok, bool down, bool retried, double latency_ms,
                      double now_ms);
void wisp_router_stats(wisp_router *r, int i, double now_ms, wisp_router_server_stats *out);
int wisp_router_count(const wisp_router *r);

/* Route keys. Tokens: the first n_blocks blocks of block tokens (false when
 * the prompt has not one whole block: nothing worth keeping together).
 * Bytes: the first max bytes (false when len is 0). */
bool wisp_router_key_tokens(const int32_t *ids, size_t n, size_t block, size_t n_blocks,
                            uint64_t *key);
bool wisp_router_key_bytes(const void *p, size_t len, size_t max, uint64_t *key);

#endif
