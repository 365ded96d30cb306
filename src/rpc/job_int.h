/*
 * job_int.h - the job record, shared by the dispatcher, the worker and the
 * mailbox (private to src/rpc; handlers use job.h).
 */
#ifndef WISP_RPC_JOB_INT_H
#define WISP_RPC_JOB_INT_H

#include <stdatomic.h>

#include "rpc/job.h"

struct wisp_app;
struct wisp_method;
struct wisp_dispatch;
struct wisp_mailbox;
struct wisp_rpc_batch;

struct wisp_job {
    json_t *id;     /* string or number (owned reference) */
    char *key;      /* the id serialized: the registry key */
    json_t *params; /* object (owned reference) */
    const struct wisp_method *method;
    const struct wisp_app *app;   /* the application serving it (app.h), or NULL */
    struct wisp_mailbox *mailbox; /* engine answers travel here */
    struct wisp_dispatch *dispatch;
    struct wisp_rpc_batch *batch; /* the batch it came in, or NULL */
    atomic_bool cancelled;
    atomic_bool answered; /* set by the one reply or error */
    bool on_engine;       /* answers travel through the mailbox */
    void *user;
    char *supersede;       /* params.supersede, or NULL */
    struct wisp_job *next; /* worker queue link */
};

/* Creates a job with new references to id and params; app and mailbox may
 * be NULL (a test without an application, handlers run inline). NULL on no
 * memory. */
wisp_job *wisp_job_new(struct wisp_dispatch *d, const struct wisp_app *app, struct wisp_mailbox *mb,
                       const struct wisp_method *m, json_t *id, json_t *params);
void wisp_job_free(wisp_job *job);

/* {"jsonrpc":"2.0","id":id,"error":{code,message[,data]}} (data stolen). */
json_t *wisp_rpc_error_response(const json_t *id, int code, const char *message, json_t *data);

#endif
