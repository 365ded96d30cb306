/*
 * dispatch.h - JSON-RPC 2.0 on top of framed messages.
 *
 * Parses each message, answers what is wrong with it (-32700, -32600,
 * -32601, -32602, duplicate ids), assembles batch answers, keeps the
 * registry of requests in flight, and turns valid requests into jobs run by
 * the method table. It knows neither libev nor threads: the loop (loop.c)
 * gives it callbacks to write bytes and to hand jobs to the engine thread,
 * and the fuzzer gives it callbacks that run everything inline.
 *
 * Loop thread only, except where a function says otherwise.
 */
#ifndef WISP_RPC_DISPATCH_H
#define WISP_RPC_DISPATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc/framer.h"
#include "rpc/job.h"

struct wisp_app;
struct wisp_mailbox;
typedef struct wisp_dispatch wisp_dispatch;

/* The most messages one batch may hold; a longer one is answered -32600. */
#define WISP_MAX_BATCH 1024

typedef struct wisp_dispatch_io {
    /* Writes one serialized message (the callee frames it). Required. */
    void (*write)(void *ud, const char *text, size_t len);
    /* Hands a WISP_M_ENGINE job to the engine thread. NULL: run it inline. */
    void (*submit)(void *ud, wisp_job *job);
    /* A cancel flag was set: wake the engine thread. May be NULL. */
    void (*wake)(void *ud);
    void *ud;
} wisp_dispatch_io;

typedef struct wisp_dispatch_counts {
    size_t in_flight; /* registered requests not yet answered */
    unsigned long long received, completed, failed, cancelled;
} wisp_dispatch_counts;

/* app (app.h) supplies the methods and must outlive the dispatcher; mb is
 * where engine-thread jobs answer (NULL when every handler runs inline).
 * NULL when out of memory. */
wisp_dispatch *wisp_dispatch_new(const struct wisp_app *app, struct wisp_mailbox *mb,
                                 const wisp_dispatch_io *io);
/* Frees the dispatcher and every job still registered (call only once no
 * thread can answer them any more). */
void wisp_dispatch_free(wisp_dispatch *d);

/* The framing in use, reported by initialize. */
void wisp_dispatch_set_framing(wisp_dispatch *d, wisp_framing framing);
wisp_framing wisp_dispatch_framing(const wisp_dispatch *d);

/* One framed message (a request, a notification or a batch). */
void wisp_dispatch_message(wisp_dispatch *d, const char *data, size_t len);
/* The framer skipped a message over limit bytes (declared_len: its length
 * when known, else 0): answers -32600 "message too large". */
void wisp_dispatch_too_large(wisp_dispatch *d, size_t declared_len, size_t limit);
/* The framer skipped a malformed lsp header: answers -32700. */
void wisp_dispatch_bad_header(wisp_dispatch *d, const char *why);

/* A job's answer (response stolen): unregisters and frees the job and
 * writes the answer, or adds it to its batch. */
void wisp_dispatch_complete(wisp_dispatch *d, wisp_job *job, json_t *response);
/* Writes a notification now (loop-thread handlers). Returns 0. */
int wisp_dispatch_emit(wisp_dispatch *d, const json_t *msg);

/* Sets every in-flight job's cancel flag (shutdown, exit, second signal). */
void wisp_dispatch_cancel_all(wisp_dispatch *d);
/* Cancels the request with this id, if in flight. Returns true if found. */
bool wisp_dispatch_cancel(wisp_dispatch *d, const json_t *id);

/* Lifecycle, for the lifecycle handlers and the loop. */
void wisp_dispatch_begin_shutdown(wisp_dispatch *d, wisp_job *shutdown_job);
bool wisp_dispatch_shutting_down(const wisp_dispatch *d);
void wisp_dispatch_request_exit(wisp_dispatch *d);
/* True once `exit` arrived; *code is 0 after shutdown, else 1. */
bool wisp_dispatch_exit_requested(const wisp_dispatch *d, int *code);

/* LSP's processId: the client process whose end ends the server (the loop
 * watches it). 0 or less: none. */
void wisp_dispatch_set_client_pid(wisp_dispatch *d, long pid);
long wisp_dispatch_client_pid(const wisp_dispatch *d);

void wisp_dispatch_counts_get(const wisp_dispatch *d, wisp_dispatch_counts *out);

#endif
