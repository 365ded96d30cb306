/*
 * app.h - what the transport needs from the application it serves.
 *
 * src/rpc/ frames, parses, dispatches and answers JSON-RPC; it does not know
 * which methods exist or what they do. The application (src/serve/) hands
 * it one wisp_app: a small table of functions and the context they get, the
 * way redis's `ae` and libuv take callbacks plus a data pointer. The loop
 * calls startup before the engine thread exists, attach once it does, step
 * between engine jobs, and teardown last; the dispatcher looks methods up
 * through find, and the generic run step (method.h) asks gate whether a
 * row's preconditions hold.
 *
 * Required: find. The others may be NULL.
 */
#ifndef WISP_RPC_APP_H
#define WISP_RPC_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct wisp_method;
struct wisp_worker;

typedef struct wisp_app_ops {
    /* The method table row named name, or NULL (answered -32601). */
    const struct wisp_method *(*find)(void *ctx, const char *name);
    /* Preconditions of a row only the application can judge (a model being
     * loaded for WISP_M_NEEDS_MODEL). Returns 0 to run the handler, or a
     * wisp_rpc_code to answer with, *msg then the message (NULL: the
     * code's default). Runs on the thread that runs the handler. */
    int (*gate)(void *ctx, const struct wisp_method *m, const char **msg);
    /* Loop thread, before the engine thread exists and before any input is
     * read. Returns 0, or <0 with err set: the loop then exits 1. */
    int (*startup)(void *ctx, wisp_err *err);
    /* The engine thread was started (the application may query it). */
    void (*attach)(void *ctx, struct wisp_worker *worker);
    /* The engine thread's step hook (worker.h): true while more work is
     * pending. */
    bool (*step)(void *ctx);
    /* Frees engine-thread state: run by the engine thread as it stops, and
     * once more on the loop thread after it stopped (or never started), so
     * it must be idempotent. */
    void (*teardown)(void *ctx);
} wisp_app_ops;

typedef struct wisp_app {
    const wisp_app_ops *ops;
    void *ctx;
} wisp_app;

#endif
