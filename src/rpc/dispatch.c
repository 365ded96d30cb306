/*
 * dispatch.c - JSON-RPC 2.0 message handling: see dispatch.h.
 *
 * Every answer passes through answer(): a lone request's answer is written
 * at once; a batch member's is added to its batch, which is written as one
 * array when its last member is answered (a guard count held while the batch
 * is being read keeps a batch of instant answers from finishing early).
 */
#include "rpc/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/panic.h"
#include "rpc/app.h"
#include "rpc/codes.h"
#include "rpc/job_int.h"
#include "rpc/jsonutil.h"
#include "rpc/method.h"
#include "rpc/registry.h"

typedef struct wisp_rpc_batch {
    json_t *replies; /* array of responses */
    size_t pending;  /* members still to answer, plus the reading guard */
} wisp_rpc_batch;

struct wisp_dispatch {
    const wisp_app *app;
    struct wisp_mailbox *mailbox;
    wisp_dispatch_io io;
    wisp_framing framing;
    wisp_registry registry;
    wisp_job *shutdown_job; /* a shutdown waiting for the others to end */
    bool shutting_down;     /* shutdown received: new requests are refused */
    bool shutdown_received; /* exit then means a clean exit (code 0) */
    bool exit_requested;
    long client_pid; /* initialize's processId, 0 when none */
    unsigned long long received, completed, failed, cancelled;
};

wisp_dispatch *wisp_dispatch_new(const wisp_app *app, struct wisp_mailbox *mb,
                                 const wisp_dispatch_io *io)
{
    wisp_dispatch *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->app = app;
    d->mailbox = mb;
    d->io = *io;
    d->framing = WISP_FRAMING_NDJSON;
    wisp_registry_init(&d->registry);
    return d;
}

static void free_job(wisp_job *job, void *ud)
{
    (void)ud;
    wisp_job_free(job);
}

void wisp_dispatch_free(wisp_dispatch *d)
{
    if (!d)
        return;
    /* Jobs still registered were never answered (exit, or a stopped engine).
     * Batches they belong to die with them: a batch is freed by its last
     * member, so collect those first. */
    for (size_t i = 0; i < d->registry.cap; i++) {
        wisp_job *job = d->registry.slots[i].job;
        if (job && job->batch && --job->batch->pending == 0) {
            json_decref(job->batch->replies);
            free(job->batch);
        }
    }
    wisp_registry_each(&d->registry, free_job, NULL);
    wisp_registry_free(&d->registry);
    free(d);
}

void wisp_dispatch_set_framing(wisp_dispatch *d, wisp_framing framing) { d->framing = framing; }
wisp_framing wisp_dispatch_framing(const wisp_dispatch *d) { return d->framing; }

/* ------------------------------------------------------------ output */

static void write_msg(wisp_dispatch *d, const json_t *msg)
{
    size_t len;
    char *text = wisp_json_dump(msg, &len);
    if (!text) {
        WISP_LOGE("out of memory serializing a message: it is lost");
        return;
    }
    d->io.write(d->io.ud, text, len);
    free(text);
}

int wisp_dispatch_emit(wisp_dispatch *d, const json_t *msg)
{
    write_msg(d, msg);
    return 0;
}

static void batch_release(wisp_dispatch *d, wisp_rpc_batch *b)
{
    WISP_ASSERT(b->pending > 0);
    if (--b->pending > 0)
        return;
    /* A batch of notifications only gets no answer at all. */
    if (json_array_size(b->replies) > 0)
        write_msg(d, b->replies);
    json_decref(b->replies);
    free(b);
}

/* Writes resp (stolen) or adds it to its batch. */
static void answer(wisp_dispatch *d, wisp_rpc_batch *b, json_t *resp)
{
    if (b) {
        json_array_append_new(b->replies, resp);
        return;
    }
    write_msg(d, resp);
    json_decref(resp);
}

static void answer_error(wisp_dispatch *d, wisp_rpc_batch *b, const json_t *id, int code,
                         const char *msg, json_t *data)
{
    answer(d, b, wisp_rpc_error_response(id, code, msg, data));
}

/* ------------------------------------------------------------ completion */

static void maybe_finish_shutdown(wisp_dispatch *d)
{
    wisp_job *sj = d->shutdown_job;
    if (!sj || d->registry.count != 1)
        return;
    d->shutdown_job = NULL;
    WISP_LOGI("shutdown: every request answered");
    wisp_job_reply(sj, NULL);
}

void wisp_dispatch_complete(wisp_dispatch *d, wisp_job *job, json_t *response)
{
    wisp_job *reg = wisp_registry_remove(&d->registry, job->key);
    WISP_ASSERT(reg == job);
    json_t *err = json_object_get(response, "error");
    if (!err)
        d->completed++;
    else if (json_integer_value(json_object_get(err, "code")) == WISP_RPC_REQUEST_CANCELLED)
        d->cancelled++;
    else
        d->failed++;
    wisp_rpc_batch *b = job->batch;
    wisp_job_free(job);
    answer(d, b, response);
    if (b)
        batch_release(d, b);
    maybe_finish_shutdown(d);
}

static void supersede_earlier(wisp_dispatch *d, wisp_job *job);

/* ------------------------------------------------------------ requests */

static void handle_notification(wisp_dispatch *d, const wisp_method *m, const char *name,
                                const json_t *params)
{
    if (!m) {
        /* "$/" notifications are optional by LSP convention: ignore quietly. */
        if (strncmp(name, "$/", 2) == 0)
            WISP_LOGD("ignoring notification '%s'", name);
        else
            WISP_LOGW("unknown notification '%.100s' ignored", name);
        return;
    }
    if (!(m->flags & WISP_M_NOTIFICATION)) {
        WISP_LOGW("'%s' sent as a notification (no id): ignored, since its answer could not "
                  "be sent; give it an id",
                  name);
        return;
    }
    char why[256];
    json_t *empty = json_object();
    bool ok = wisp_params_check(m->params, m->flags & WISP_M_OPEN_PARAMS, params ? params : empty,
                                why, sizeof why);
    if (!ok)
        WISP_LOGW("notification '%s' ignored: invalid params: %s", name, why);
    else
        m->notify(d, params ? params : empty);
    json_decref(empty);
}

static void handle_request(wisp_dispatch *d, wisp_rpc_batch *b, json_t *id, const wisp_method *m,
                           const char *name, json_t *params)
{
    char msg[320];
    d->received++;
    if (!m) {
        snprintf(msg, sizeof msg, "method not found: '%.100s'", name);
        answer_error(d, b, id, WISP_RPC_METHOD_NOT_FOUND, msg, NULL);
        return;
    }
    if (m->flags & WISP_M_NOTIFICATION) {
        snprintf(msg, sizeof msg, "invalid request: '%s' is a notification; send it without an id",
                 name);
        answer_error(d, b, id, WISP_RPC_INVALID_REQUEST, msg, NULL);
        return;
    }
    if (d->shutting_down) {
        answer_error(d, b, id, WISP_RPC_SHUTTING_DOWN,
                     "server is shutting down: only exit is accepted now", NULL);
        return;
    }
    char why[256];
    json_t *obj = params ? json_incref(params) : json_object();
    if (!wisp_params_check(m->params, m->flags & WISP_M_OPEN_PARAMS, obj, why, sizeof why)) {
        snprintf(msg, sizeof msg, "invalid params: %s", why);
        answer_error(d, b, id, WISP_RPC_INVALID_PARAMS, msg, NULL);
        json_decref(obj);
        return;
    }
    wisp_job *job = wisp_job_new(d, d->app, d->mailbox, m, id, obj);
    json_decref(obj);
    if (!job) {
        answer_error(d, b, id, WISP_RPC_OVERLOADED, "out of memory", NULL);
        return;
    }
    int rc = wisp_registry_add(&d->registry, job->key, job);
    if (rc < 0) {
        if (rc == WISP_E_BUSY)
            snprintf(msg, sizeof msg,
                     "invalid request: duplicate id: request %.100s is still in flight", job->key);
        else
            snprintf(msg, sizeof msg, "out of memory");
        answer_error(d, b, id, rc == WISP_E_BUSY ? WISP_RPC_INVALID_REQUEST : WISP_RPC_OVERLOADED,
                     msg, NULL);
        wisp_job_free(job);
        return;
    }
    job->batch = b;
    if (b)
        b->pending++;
    supersede_earlier(d, job);
    if ((m->flags & WISP_M_ENGINE) && d->io.submit) {
        job->on_engine = true;
        d->io.submit(d->io.ud, job);
    } else {
        wisp_method_run(job);
    }
}

/* ------------------------------------------------------------ supersede */

typedef struct supersede_ctx {
    wisp_job *newer;
    int n;
} supersede_ctx;

static void supersede_one(wisp_job *job, void *ud)
{
    supersede_ctx *c = ud;
    if (job != c->newer && job->supersede && strcmp(job->supersede, c->newer->supersede) == 0 &&
        !atomic_load(&job->cancelled)) {
        atomic_store(&job->cancelled, true);
        c->n++;
    }
}

/* A request with a supersede key (an editor's document URI) cancels every
 * earlier in-flight request with the same key: keystroke traffic then needs
 * no client-side cancellation. The earlier ones are answered -32800 at the
 * engine's next step (or before they start). */
static void supersede_earlier(wisp_dispatch *d, wisp_job *job)
{
    const char *key = json_string_value(json_object_get(job->params, "supersede"));
    if (!key)
        return;
    job->supersede = strdup(key);
    if (!job->supersede)
        return;
    supersede_ctx c = {.newer = job};
    wisp_registry_each(&d->registry, supersede_one, &c);
    if (c.n && d->io.wake)
        d->io.wake(d->io.ud);
}

/* One request object (alone or a batch member). */
static void handle_one(wisp_dispatch *d, json_t *msg, wisp_rpc_batch *b)
{
    if (!json_is_object(msg)) {
        answer_error(d, b, NULL, WISP_RPC_INVALID_REQUEST,
                     "invalid request: expected a request object", NULL);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    if (id && !json_is_string(id) && !json_is_number(id)) {
        answer_error(d, b, NULL, WISP_RPC_INVALID_REQUEST,
                     "invalid request: 'id' must be a string or a number", NULL);
        return;
    }
    const json_t *ver = json_object_get(msg, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        answer_error(d, b, id, WISP_RPC_INVALID_REQUEST,
                     "invalid request: 'jsonrpc' must be \"2.0\"", NULL);
        return;
    }
    const json_t *method = json_object_get(msg, "method");
    if (!json_is_string(method)) {
        answer_error(d, b, id, WISP_RPC_INVALID_REQUEST,
                     "invalid request: 'method' must be a string", NULL);
        return;
    }
    json_t *params = json_object_get(msg, "params");
    /* null is taken as "no params": some LSP clients send it for shutdown;
     * so is [], which is how Lua encodes an empty table (it holds no
     * positional params either). */
    if (json_is_null(params) || (json_is_array(params) && json_array_size(params) == 0))
        params = NULL;
    if (params && !json_is_object(params) && !json_is_array(params)) {
        answer_error(d, b, id, WISP_RPC_INVALID_REQUEST,
                     "invalid request: 'params' must be an object or an array", NULL);
        return;
    }
    const char *name = json_string_value(method);
    /* Strings may hold NUL (JSON_ALLOW_NUL), but "status\u0000x" is not
     * the name "status". */
    if (strlen(name) != json_string_length(method)) {
        answer_error(d, b, id, WISP_RPC_INVALID_REQUEST,
                     "invalid request: 'method' must not contain \\u0000", NULL);
        return;
    }
    const wisp_method *m = d->app->ops->find(d->app->ctx, name);
    if (!id)
        handle_notification(d, m, name, params);
    else
        handle_request(d, b, id, m, name, params);
}

void wisp_dispatch_message(wisp_dispatch *d, const char *data, size_t len)
{
    if (d->exit_requested)
        return;
    /* A UTF-8 byte order mark some Windows tools put first is not JSON
     * but harmless; \u0000 inside strings is valid JSON (RFC 8259), and
     * every consumer of a string takes its length, not strlen. */
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
    }
    json_error_t e;
    json_t *root = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!root) {
        char msg[400];
        bool utf8 = json_error_code(&e) == json_error_invalid_utf8;
        snprintf(msg, sizeof msg, "parse error: %s%s (at byte %d)", utf8 ? "invalid UTF-8: " : "",
                 e.text, e.position);
        answer_error(d, NULL, NULL, WISP_RPC_PARSE_ERROR, msg, NULL);
        return;
    }
    if (json_is_array(root)) {
        if (json_array_size(root) == 0) {
            answer_error(d, NULL, NULL, WISP_RPC_INVALID_REQUEST, "invalid request: empty batch",
                         NULL);
        } else if (json_array_size(root) > WISP_MAX_BATCH) {
            /* A batch's answer is one array built in memory, and nothing
             * else (not even a cancel) is read while its members run
             * inline: its length is bounded. */
            char msg[160];
            snprintf(msg, sizeof msg,
                     "invalid request: batch of %zu messages, more than the %d accepted; split it",
                     json_array_size(root), WISP_MAX_BATCH);
            answer_error(d, NULL, NULL, WISP_RPC_INVALID_REQUEST, msg,
                         json_pack("{s:i}", "max_batch", WISP_MAX_BATCH));
        } else {
            wisp_rpc_batch *b = calloc(1, sizeof *b);
            json_t *replies = json_array();
            if (!b || !replies) {
                free(b);
                json_decref(replies);
                answer_error(d, NULL, NULL, WISP_RPC_OVERLOADED, "out of memory", NULL);
            } else {
                b->replies = replies;
                b->pending = 1; /* the reading guard */
                size_t i;
                json_t *msg;
                json_array_foreach(root, i, msg) handle_one(d, msg, b);
                batch_release(d, b);
            }
        }
    } else {
        handle_one(d, root, NULL);
    }
    json_decref(root);
}

void wisp_dispatch_too_large(wisp_dispatch *d, size_t declared_len, size_t limit)
{
    if (d->exit_requested)
        return;
    json_t *data = json_object();
    json_object_set_new(data, "max_message_bytes", json_integer((json_int_t)limit));
    if (declared_len)
        json_object_set_new(data, "length", json_integer((json_int_t)declared_len));
    WISP_LOGW("message over %zu bytes skipped", limit);
    answer_error(d, NULL, NULL, WISP_RPC_INVALID_REQUEST, "message too large", data);
}

void wisp_dispatch_bad_header(wisp_dispatch *d, const char *why)
{
    if (d->exit_requested)
        return;
    char msg[200];
    snprintf(msg, sizeof msg, "parse error: invalid message header: %s", why);
    answer_error(d, NULL, NULL, WISP_RPC_PARSE_ERROR, msg, NULL);
}

/* ------------------------------------------------------------ cancel, lifecycle */

static void cancel_job(wisp_job *job, void *ud)
{
    (void)ud;
    atomic_store(&job->cancelled, true);
}

void wisp_dispatch_cancel_all(wisp_dispatch *d)
{
    wisp_registry_each(&d->registry, cancel_job, NULL);
    if (d->io.wake)
        d->io.wake(d->io.ud);
}

bool wisp_dispatch_cancel(wisp_dispatch *d, const json_t *id)
{
    char *key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
    wisp_job *job = key ? wisp_registry_find(&d->registry, key) : NULL;
    free(key);
    if (!job)
        return false;
    atomic_store(&job->cancelled, true);
    if (d->io.wake)
        d->io.wake(d->io.ud);
    return true;
}

void wisp_dispatch_begin_shutdown(wisp_dispatch *d, wisp_job *shutdown_job)
{
    d->shutting_down = true;
    d->shutdown_received = true;
    d->shutdown_job = shutdown_job;
    wisp_dispatch_cancel_all(d);
    maybe_finish_shutdown(d);
}

bool wisp_dispatch_shutting_down(const wisp_dispatch *d) { return d->shutting_down; }

void wisp_dispatch_request_exit(wisp_dispatch *d)
{
    d->exit_requested = true;
    d->shutting_down = true;
}

bool wisp_dispatch_exit_requested(const wisp_dispatch *d, int *code)
{
    if (d->exit_requested && code)
        *code = d->shutdown_received ? 0 : 1;
    return d->exit_requested;
}

void wisp_dispatch_set_client_pid(wisp_dispatch *d, long pid) { d->client_pid = pid; }
long wisp_dispatch_client_pid(const wisp_dispatch *d) { return d->client_pid; }

void wisp_dispatch_counts_get(const wisp_dispatch *d, wisp_dispatch_counts *out)
{
    out->in_flight = d->registry.count;
    out->received = d->received;
    out->completed = d->completed;
    out->failed = d->failed;
    out->cancelled = d->cancelled;
}
