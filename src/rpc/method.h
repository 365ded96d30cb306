/*
 * method.h - the method table: one row per protocol method.
 *
 * A row names the method, its handler, where the handler runs, its
 * preconditions and its params table (params.h). The dispatcher does
 * everything generic from the row (params checks, "no model loaded",
 * cancellation before start, thread hand-off), so a handler is only the
 * method's own work. The rows belong to the application, which hands the
 * dispatcher a lookup (app.h); wisp's handlers live in
 * src/serve/methods_<concern>.c and its table in src/serve/methods.c.
 *
 * Adding a method: write `void wisp_m_foo(wisp_job *job)` (answer the job
 * once, now or later, see job.h), declare it in serve/methods.h, and add a
 * row with its params table to serve/methods.c; document it in
 * protocol/PROTOCOL.md and add its schemas to protocol/schema/.
 */
#ifndef WISP_RPC_METHOD_H
#define WISP_RPC_METHOD_H

#include <jansson.h>
#include <stddef.h>

#include "rpc/job.h"
#include "rpc/params.h"

struct wisp_dispatch;

enum wisp_method_flags {
    WISP_M_ENGINE = 1u << 0,       /* runs on the engine thread (else on the loop thread) */
    WISP_M_NEEDS_MODEL = 1u << 1,  /* answered -31001 while no model is loaded */
    WISP_M_NOTIFICATION = 1u << 2, /* a notification to wisp (no id, no answer) */
    WISP_M_OPEN_PARAMS = 1u << 3,  /* unknown params fields are allowed */
};

/* A request handler: answers job exactly once (now or later). */
typedef void (*wisp_method_fn)(wisp_job *job);
/* A notification handler (loop thread); params already checked. */
typedef void (*wisp_notify_fn)(struct wisp_dispatch *d, const json_t *params);

typedef struct wisp_method {
    const char *name;
    wisp_method_fn fn;        /* requests; NULL: not in this build (-31008) */
    wisp_notify_fn notify;    /* notifications */
    unsigned flags;           /* wisp_method_flags */
    const wisp_param *params; /* NULL-name-ended, or NULL for none */
    const char *summary;      /* one line, for logs and docs */
} wisp_method;

/* Runs a job's method on the current thread: answers it -32800 when it was
 * cancelled before starting, with the application's answer when its gate
 * refuses the row (app.h: -31001 when it needs a model and none is loaded),
 * -31008 when the method has no handler in this build; otherwise calls the
 * handler. */
void wisp_method_run(wisp_job *job);

#endif
