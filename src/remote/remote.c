/*
 * remote.c - calls to the server pool: routing, retries before the first
 * byte, SSE and JSON decoding, error answers. See remote.h.
 */
#include "remote/remote.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/panic.h"
#include "remote/http.h"
#include "remote/router.h"
#include "remote/sse.h"

/* One event or one JSON answer is never larger than this. */
#define MAX_ANSWER_BYTES (64u << 20)
/* An error body is only read for its message. */
#define MAX_ERROR_BYTES (64u << 10)
#define BACK_OFF_MS     2000.0

struct wisp_remote {
    wisp_http *http;
    wisp_router *router;
    wisp_remote_kind kind;
    char **urls;
    int n;
    char *api_key;
    pthread_mutex_t lock; /* model */
    char *model;
    long connect_timeout_ms, idle_timeout_ms;
};

typedef struct rcall {
    wisp_remote *r;
    wisp_remote_call c;
    char *body;
    char *path;
    bool exclude[WISP_REMOTE_MAX_URLS];
    int server;
    int attempts;
    double attempt_t0;
    wisp_sse sse;
    wisp_buf whole;
    bool saw_event;
    int stop_status;
    char msg[WISP_ERR_MSG_MAX];
} rcall;

const char *wisp_remote_kind_name(wisp_remote_kind k)
{
    return k == WISP_REMOTE_LLAMACPP ? "llama.cpp" : "openai";
}

static void rcall_free(rcall *c)
{
    wisp_sse_free(&c->sse);
    wisp_buf_free(&c->whole);
    free(c->body);
    free(c->path);
    free(c);
}

static int take_json(rcall *c, const char *data, size_t len)
{
    json_error_t je;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &je);
    if (!v) {
        snprintf(c->msg, sizeof c->msg, "%s answered what is not JSON (%s): %.60s",
                 c->r->urls[c->server], je.text, data);
        return WISP_E_REMOTE;
    }
    c->saw_event = true;
    int rc = c->c.on_json(c->c.ud, v);
    json_decref(v);
    return rc;
}

static int on_event(void *ud, const char *name, const char *data, size_t len)
{
    rcall *c = ud;
    (void)name;
    /* OpenAI's end of stream; llama.cpp's native endpoints just close. */
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return 0;
    return take_json(c, data, len);
}

static int on_data(void *ud, long code, const char *p, size_t n)
{
    rcall *c = ud;
    if (code >= 300 || !c->c.sse) {
        size_t cap = code >= 300 ? MAX_ERROR_BYTES : MAX_ANSWER_BYTES;
        if (c->whole.len + n > cap) {
            if (code >= 300)
                return 0; /* the start of the message is enough */
            snprintf(c->msg, sizeof c->msg, "%s: answer larger than %zu bytes",
                     c->r->urls[c->server], cap);
            return WISP_E_REMOTE;
        }
        if (wisp_buf_append(&c->whole, p, n))
            return WISP_E_NOMEM;
        return 0;
    }
    wisp_err err = {0};
    int rc = wisp_sse_feed(&c->sse, p, n, &err);
    if (rc && err.msg[0])
        snprintf(c->msg, sizeof c->msg, "%s: %.300s", c->r->urls[c->server], err.msg);
    return rc;
}

static bool is_cancelled(void *ud)
{
    rcall *c = ud;
    return c->c.is_cancelled && c->c.is_cancelled(c->c.ud);
}

static void finish(rcall *c, int status, long http_code, const char *msg, double fb_ms)
{
    wisp_remote_done d = {
        .status = status,
        .http_code = http_code,
        .message = msg,
        .server = c->server,
        .url = c->server >= 0 ? c->r->urls[c->server] : NULL,
        .first_byte_ms = fb_ms,
        .attempts = c->attempts,
    };
    c->c.on_done(c->c.ud, &d);
    rcall_free(c);
}

/* The message of an error answer: OpenAI's and llama.cpp's
 * {"error": {"message": ...}}, else the body's start. */
static void error_message(rcall *c, long code, char *out, size_t cap)
{
    const char *url = c->r->urls[c->server];
    json_t *v = c->whole.len ? json_loadb(c->whole.data, c->whole.len, 0, NULL) : NULL;
    const json_t *e = json_object_get(v, "error");
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!m)
        m = json_string_value(e);
    if (!m)
        m = json_string_value(json_object_get(v, "message"));
    if (m)
        snprintf(out, cap, "%s: HTTP %ld: %s", url, code, m);
    else
        snprintf(out, cap, "%s: HTTP %ld: %.120s", url, code, c->whole.data ? c->whole.data : "");
    json_decref(v);
}

static int start_attempt(rcall *c, wisp_err *err);

static void http_done(void *ud, const wisp_http_result *res)
{
    rcall *c = ud;
    wisp_remote *r = c->r;
    double now = wisp_now_ms();
    int status = res->status;
    char msg[WISP_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", c->msg[0] ? c->msg : res->msg);
    bool retry = false;
    if (status == 0 && res->http_code >= 300) {
        error_message(c, res->http_code, msg, sizeof msg);
        status = WISP_E_REMOTE;
        /* A server still loading or overloaded said so before doing anything. */
        retry = res->http_code == 502 || res->http_code == 503;
    } else if (status == 0 && !c->c.sse) {
        status = take_json(c, c->whole.data ? c->whole.data : "", c->whole.len);
        if (status && c->msg[0])
            snprintf(msg, sizeof msg, "%s", c->msg);
    } else if (status == 0) {
        bool cut = wisp_sse_finish(&c->sse);
        if (!c->saw_event) {
            status = WISP_E_REMOTE;
            snprintf(msg, sizeof msg, "%s: the answer held no event%s", r->urls[c->server],
                     cut ? " (not a server-sent event stream)" : "");
        }
    } else if (status != WISP_E_CANCELLED && status != WISP_E_SHUTDOWN) {
        retry = res->retryable;
    }
    bool ok = status == 0 || status == WISP_REMOTE_STOP;
    if (!ok && c->msg[0] && status != WISP_E_CANCELLED && status != WISP_E_SHUTDOWN)
        snprintf(msg, sizeof msg, "%s", c->msg);
    bool more = false;
    for (int i = 0; i < r->n; i++)
        if (!c->exclude[i] && i != c->server)
            more = true;
    retry = retry && more && !is_cancelled(c);
    double lat = res->got_bytes ? res->first_byte_ms : -1;
    wisp_router_done(r->router, c->server, ok || status == WISP_E_CANCELLED,
                     res->connect_failed || retry, retry, lat, now);
    if (!ok && status != WISP_E_CANCELLED)
        WISP_LOGW("remote: %s%s", msg, retry ? "; trying the next server" : "");
    if (retry) {
        c->exclude[c->server] = true;
        wisp_buf_clear(&c->whole);
        wisp_sse_free(&c->sse);
        wisp_sse_init(&c->sse, MAX_ANSWER_BYTES, on_event, c);
        c->msg[0] = 0;
        wisp_err err = {0};
        if (start_attempt(c, &err) == 0)
            return;
        finish(c, err.code, 0, err.msg, -1);
        return;
    }
    finish(c, status, res->http_code, ok ? NULL : msg, lat);
}

static int start_attempt(rcall *c, wisp_err *err)
{
    wisp_remote *r = c->r;
    c->server = wisp_router_pick(r->router, c->c.has_key, c->c.key, c->exclude, wisp_now_ms());
    if (c->server < 0)
        return wisp_err_set(err, WISP_E_REMOTE, "no remote server left to try");
    c->attempts++;
    /* Base URLs come from the client and have no length limit. */
    wisp_buf url = WISP_BUF_INIT;
    if (wisp_buf_append_str(&url, r->urls[c->server]) || wisp_buf_append_str(&url, c->path)) {
        wisp_buf_free(&url);
        wisp_router_done(r->router, c->server, false, false, false, -1, wisp_now_ms());
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    wisp_http_desc d = {
        .url = url.data,
        .body = c->body,
        .bearer = r->api_key,
        .connect_timeout_ms = r->connect_timeout_ms,
        .idle_timeout_ms = r->idle_timeout_ms,
        .on_data = on_data,
        .is_cancelled = is_cancelled,
        .on_done = http_done,
        .ud = c,
    };
    int rc = wisp_http_submit(r->http, &d, err);
    wisp_buf_free(&url);
    if (rc)
        wisp_router_done(r->router, c->server, false, false, false, -1, wisp_now_ms());
    return rc;
}

int wisp_remote_submit(wisp_remote *r, const wisp_remote_call *call, wisp_err *err)
{
    rcall *c = calloc(1, sizeof *c);
    if (!c)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    c->r = r;
    c->c = *call;
    c->c.body = NULL;
    c->path = strdup(call->path);
    if (call->body)
        c->body = json_dumps(call->body, JSON_COMPACT);
    wisp_sse_init(&c->sse, MAX_ANSWER_BYTES, on_event, c);
    if (!c->path || (call->body && !c->body)) {
        rcall_free(c);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    int rc = start_attempt(c, err);
    if (rc)
        rcall_free(c);
    return rc;
}

void wisp_remote_kick(wisp_remote *r) { wisp_http_kick(r->http); }

/* ------------------------------------------------------------------ sync */

typedef struct sync_call {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    char msg[WISP_ERR_MSG_MAX];
    json_t *answer;
} sync_call;

static int sync_json(void *ud, json_t *v)
{
    sync_call *s = ud;
    json_decref(s->answer);
    s->answer = json_incref(v);
    return 0;
}

static void sync_done(void *ud, const wisp_remote_done *d)
{
    sync_call *s = ud;
    pthread_mutex_lock(&s->lock);
    s->status = d->status;
    if (d->message)
        snprintf(s->msg, sizeof s->msg, "%s", d->message);
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int wisp_remote_call_sync(wisp_remote *r, int server, const char *path, json_t *body,
                          json_t **answer, wisp_err *err)
{
    /* On the backend thread the wait below would never end. */
    WISP_ASSERT(!wisp_http_on_thread(r->http));
    sync_call s = {.done = false};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    rcall *c = calloc(1, sizeof *c);
    if (!c)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    c->r = r;
    c->c = (wisp_remote_call){.on_json = sync_json, .on_done = sync_done, .ud = &s};
    /* Exactly this server: the others are excluded from the start. */
    for (int i = 0; i < r->n; i++)
        c->exclude[i] = i != server;
    c->path = strdup(path);
    if (body)
        c->body = json_dumps(body, JSON_COMPACT);
    wisp_sse_init(&c->sse, MAX_ANSWER_BYTES, on_event, c);
    int rc = (!c->path || (body && !c->body)) ? wisp_err_set(err, WISP_E_NOMEM, "out of memory")
                                              : start_attempt(c, err);
    if (rc) {
        rcall_free(c);
    } else {
        pthread_mutex_lock(&s.lock);
        while (!s.done)
            pthread_cond_wait(&s.cond, &s.lock);
        pthread_mutex_unlock(&s.lock);
        rc = s.status;
        if (rc)
            wisp_err_set(err, rc, "%s", s.msg);
    }
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    if (rc == 0 && answer)
        *answer = s.answer;
    else
        json_decref(s.answer);
    return rc;
}

/* ---------------------------------------------------------------- lifetime */

int wisp_remote_open(const wisp_remote_opts *o, wisp_remote **out, wisp_err *err)
{
    if (o->n_urls <= 0 || o->n_urls > WISP_REMOTE_MAX_URLS)
        return wisp_err_set(err, WISP_E_INVALID, "remote: between 1 and %d URLs",
                            WISP_REMOTE_MAX_URLS);
    for (int i = 0; i < o->n_urls; i++)
        if (strncmp(o->urls[i], "http://", 7) != 0 && strncmp(o->urls[i], "https://", 8) != 0)
            return wisp_err_set(err, WISP_E_INVALID,
                                "remote: '%s' is not an http:// or https:// URL", o->urls[i]);
    wisp_remote *r = calloc(1, sizeof *r);
    if (!r)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    r->kind = o->kind;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    r->idle_timeout_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 60000;
    r->urls = calloc((size_t)o->n_urls, sizeof *r->urls);
    int rc = 0;
    if (!r->urls) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < o->n_urls; i++) {
        r->urls[i] = strdup(o->urls[i]);
        if (!r->urls[i]) {
            rc = wisp_err_set(err, WISP_E_NOMEM, "out of memory");
            goto fail;
        }
        r->n++;
        size_t len = strlen(r->urls[i]);
        while (len > 0 && r->urls[i][len - 1] == '/') /* paths are appended */
            r->urls[i][--len] = 0;
    }
    if ((o->api_key && !(r->api_key = strdup(o->api_key))) ||
        (o->model && !(r->model = strdup(o->model)))) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        goto fail;
    }
    rc = wisp_router_create(r->n, BACK_OFF_MS, &r->router, err);
    if (rc)
        goto fail;
    rc = wisp_http_create(&r->http, err);
    if (rc)
        goto fail;
    *out = r;
    return 0;
fail:
    wisp_remote_close(r);
    return rc;
}

void wisp_remote_close(wisp_remote *r)
{
    if (!r)
        return;
    wisp_http_destroy(r->http);
    wisp_router_free(r->router);
    for (int i = 0; i < r->n; i++)
        free(r->urls[i]);
    free(r->urls);
    if (r->api_key) /* the secret does not outlive its use in freed memory */
        memset(r->api_key, 0, strlen(r->api_key));
    free(r->api_key);
    free(r->model);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

wisp_remote_kind wisp_remote_get_kind(const wisp_remote *r) { return r->kind; }
int wisp_remote_n_servers(const wisp_remote *r) { return r->n; }
const char *wisp_remote_url(const wisp_remote *r, int i) { return r->urls[i]; }

/* The name is set once at load, before any call, on the engine thread, and
 * read on that thread when requests are built. */
const char *wisp_remote_model(const wisp_remote *r) { return r->model; }

void wisp_remote_set_model(wisp_remote *r, const char *model)
{
    pthread_mutex_lock(&r->lock);
    free(r->model);
    r->model = model ? strdup(model) : NULL;
    pthread_mutex_unlock(&r->lock);
}

json_t *wisp_remote_status_json(wisp_remote *r)
{
    double now = wisp_now_ms();
    json_t *servers = json_array();
    for (int i = 0; i < r->n; i++) {
        wisp_router_server_stats st;
        wisp_router_stats(r->router, i, now, &st);
        json_array_append_new(servers,
                              json_pack("{s:s, s:b, s:i, s:I, s:I, s:I, s:I, s:f, s:f}", "url",
                                        r->urls[i], "up", st.up, "in_flight", st.in_flight,
                                        "requests", (json_int_t)st.requests, "failures",
                                        (json_int_t)st.failures, "retried_elsewhere",
                                        (json_int_t)st.retries_away, "keyed", (json_int_t)st.keyed,
                                        "latency_ms", st.latency_ms_last, "latency_ms_avg",
                                        st.latency_ms_avg));
    }
    pthread_mutex_lock(&r->lock);
    json_t *o = json_pack("{s:s, s:s?, s:o}", "kind", wisp_remote_kind_name(r->kind), "model",
                          r->model, "servers", servers);
    pthread_mutex_unlock(&r->lock);
    return o;
}
