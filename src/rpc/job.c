/*
 * job.c - the handler-facing job API: see job.h.
 *
 * An answer goes straight to the dispatcher when the handler runs on the
 * loop thread, and through the mailbox when it runs on the engine thread;
 * handlers never see the difference.
 */
#include "rpc/job_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/panic.h"
#include "rpc/app.h"
#include "rpc/dispatch.h"
#include "rpc/jsonutil.h"
#include "rpc/mailbox.h"
#include "rpc/method.h"

wisp_job *wisp_job_new(struct wisp_dispatch *d, const wisp_app *app, wisp_mailbox *mb,
                       const wisp_method *m, json_t *id, json_t *params)
{
    wisp_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!job->key) {
        free(job);
        return NULL;
    }
    job->id = json_incref(id);
    job->params = json_incref(params);
    job->method = m;
    job->app = app;
    job->mailbox = mb;
    job->dispatch = d;
    atomic_init(&job->cancelled, false);
    atomic_init(&job->answered, false);
    return job;
}

void wisp_job_free(wisp_job *job)
{
    if (!job)
        return;
    json_decref(job->id);
    json_decref(job->params);
    free(job->key);
    free(job->supersede);
    free(job);
}

const json_t *wisp_job_params(const wisp_job *job) { return job->params; }
const json_t *wisp_job_id(const wisp_job *job) { return job->id; }
const char *wisp_job_method(const wisp_job *job) { return job->method->name; }
void *wisp_job_app(wisp_job *job) { return job->app ? job->app->ctx : NULL; }
bool wisp_job_cancelled(const wisp_job *job) { return atomic_load(&job->cancelled); }
void wisp_job_set_user(wisp_job *job, void *user) { job->user = user; }
void *wisp_job_user(const wisp_job *job) { return job->user; }

json_t *wisp_rpc_error_response(const json_t *id, int code, const char *message, json_t *data)
{
    if (!message)
        message = wisp_rpc_code_message(code);
    json_t *err = json_object();
    json_t *resp = json_object();
    WISP_ASSERT(err && resp);
    json_object_set_new(err, "code", json_integer(code));
    json_object_set_new(err, "message", wisp_json_string_lossy(message, strlen(message)));
    if (data)
        json_object_set_new(err, "data", data);
    json_object_set_new(resp, "jsonrpc", json_string("2.0"));
    json_object_set(resp, "id", id ? (json_t *)id : json_null());
    json_object_set_new(resp, "error", err);
    return resp;
}

/* Hands the answer over; the job may be freed as soon as this returns. */
static void finish(wisp_job *job, json_t *response)
{
    WISP_ASSERT(response);
    bool was = atomic_exchange(&job->answered, true);
    WISP_ASSERT(!was); /* a handler answered one request twice */
    if (job->on_engine)
        wisp_mailbox_post_answer(job->mailbox, job, response);
    else
        wisp_dispatch_complete(job->dispatch, job, response);
}

void wisp_job_reply(wisp_job *job, json_t *result)
{
    json_t *resp = json_object();
    WISP_ASSERT(resp);
    json_object_set_new(resp, "jsonrpc", json_string("2.0"));
    json_object_set(resp, "id", job->id);
    json_object_set_new(resp, "result", result ? result : json_null());
    finish(job, resp);
}

void wisp_job_error(wisp_job *job, int rpc_code, const char *message, json_t *data)
{
    finish(job, wisp_rpc_error_response(job->id, rpc_code, message, data));
}

void wisp_job_fail(wisp_job *job, const wisp_err *err)
{
    wisp_job_error(job, wisp_rpc_code_from_wisp(err->code),
                   err->msg[0] ? err->msg : wisp_code_message(err->code), NULL);
}

int wisp_job_notify(wisp_job *job, const char *method, json_t *params)
{
    if (wisp_job_cancelled(job)) {
        json_decref(params);
        return WISP_E_CANCELLED;
    }
    json_t *msg = json_object();
    if (!msg) {
        json_decref(params);
        return WISP_E_NOMEM;
    }
    json_object_set_new(msg, "jsonrpc", json_string("2.0"));
    json_object_set_new(msg, "method", json_string(method));
    if (params)
        json_object_set_new(msg, "params", params);
    if (!job->on_engine) {
        int rc = wisp_dispatch_emit(job->dispatch, msg);
        json_decref(msg);
        return rc;
    }
    /* Serialize here, on the engine thread: the loop only copies bytes. */
    size_t len;
    char *text = wisp_json_dump(msg, &len);
    json_decref(msg);
    if (!text)
        return WISP_E_NOMEM;
    return wisp_mailbox_post_notify(job->mailbox, job, text, len);
}

int wisp_job_stream(wisp_job *job, int64_t index, const char *text, size_t len,
                    const int32_t *tokens, size_t n_tokens, json_t *probs)
{
    json_t *toks = json_array();
    for (size_t i = 0; toks && i < n_tokens; i++)
        if (json_array_append_new(toks, json_integer(tokens[i])) < 0) {
            json_decref(toks);
            toks = NULL;
        }
    /* An LSP client library routes $/progress by the token it chose, while
     * it never tells its caller the request id that $/stream carries. */
    const json_t *token = json_object_get(job->params, "partialResultToken");
    if (!token)
        token = json_object_get(job->params, "workDoneToken");
    /* json_pack takes the "o" values even when it fails (a NULL among
     * them: out of memory). */
    json_t *piece = json_pack("{s:I, s:o, s:o, s:o*}", "index", (json_int_t)index, "text",
                              wisp_json_string_lossy(text, len), "tokens", toks, "probs", probs);
    if (!piece)
        return WISP_E_NOMEM;
    if (token) {
        json_t *p = json_pack("{s:O, s:o}", "token", (json_t *)token, "value", piece);
        return p ? wisp_job_notify(job, "$/progress", p) : WISP_E_NOMEM;
    }
    json_t *p = json_pack("{s:O}", "id", job->id);
    if (!p || json_object_update(p, piece) < 0) {
        json_decref(p);
        json_decref(piece);
        return WISP_E_NOMEM;
    }
    json_decref(piece);
    return wisp_job_notify(job, "$/stream", p);
}

int wisp_job_progress(wisp_job *job, const char *kind, const char *message, double percentage)
{
    json_t *value = json_object();
    json_t *p = json_object();
    if (!value || !p) {
        json_decref(value);
        json_decref(p);
        return WISP_E_NOMEM;
    }
    json_object_set_new(value, "kind", json_string(kind));
    if (message)
        json_object_set_new(value, "message", wisp_json_string_lossy(message, strlen(message)));
    /* An integer 0..100, as LSP's WorkDoneProgress has it. */
    if (percentage >= 0)
        json_object_set_new(value, "percentage",
                            json_integer(percentage >= 100 ? 100 : (json_int_t)(percentage + 0.5)));
    json_object_set(p, "token", job->id);
    json_object_set_new(p, "value", value);
    return wisp_job_notify(job, "$/progress", p);
}
