/*
 * http.c - libcurl multi + libev on the backend thread: see http.h.
 *
 * The ev_io/ev_timer glue follows curl's documented "multi_socket" pattern
 * (its evhiperfifo example): curl names a socket and the events it wants,
 * we keep one ev_io per socket (assigned to it with curl_multi_assign);
 * curl asks for one timeout, we keep one ev_timer. Each transfer also has
 * an idle ev_timer of its own, restarted by every arriving byte, because
 * curl's low-speed limit counts whole seconds and a silent server must
 * fail within the configured milliseconds.
 */
#include "remote/http.h"

#include <curl/curl.h>
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

typedef struct http_req {
    ev_timer idle; /* first: the watcher casts back to the request */
    struct wisp_http *h;
    CURL *easy;
    struct curl_slist *headers;
    char *url;
    char *body;
    wisp_http_desc d;
    wisp_http_result res;
    double t0;
    int abort_status; /* set by on_data or the idle timer */
    char errbuf[CURL_ERROR_SIZE];
    struct http_req *next, *prev;
} http_req;

typedef struct sock_w {
    ev_io io; /* first */
    struct wisp_http *h;
    curl_socket_t fd;
} sock_w;

struct wisp_http {
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wake;
    ev_timer timer;
    CURLM *multi;
    pthread_mutex_t lock;
    http_req *incoming; /* queued by other threads */
    bool kicked;
    bool stopping;
    http_req *active; /* on the backend thread: transfers in curl */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void req_free(http_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    if (r->d.bearer) /* the secret does not outlive its use in freed memory */
        memset((char *)r->d.bearer, 0, strlen(r->d.bearer));
    free((char *)r->d.bearer);
    free(r->url);
    free(r->body);
    free(r);
}

static void unlink_active(wisp_http *h, http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Removes the transfer from curl now (which closes its connection, so the
 * server sees the client gone), answers on_done and frees. */
static void req_end(wisp_http *h, http_req *r, int status, const char *msg)
{
    ev_timer_stop(h->loop, &r->idle);
    curl_multi_remove_handle(h->multi, r->easy);
    unlink_active(h, r);
    r->res.status = status;
    r->res.ms = wisp_now_ms() - r->t0;
    if (msg && !r->res.msg[0])
        snprintf(r->res.msg, sizeof r->res.msg, "%s", msg);
    r->d.on_done(r->d.ud, &r->res);
    req_free(r);
}

static void check_done(wisp_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = m->data.result;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->res.http_code);
        if (rc == CURLE_OK) {
            req_end(h, r, 0, NULL);
        } else if (r->abort_status) {
            req_end(h, r, r->abort_status, NULL);
        } else {
            r->res.connect_failed =
                rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                (rc == CURLE_OPERATION_TIMEDOUT && r->res.http_code == 0 && !r->res.got_bytes);
            /* Nothing of an answer came: the request may go elsewhere. */
            r->res.retryable =
                !r->res.got_bytes && (r->res.connect_failed || rc == CURLE_GOT_NOTHING ||
                                      rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR);
            char msg[WISP_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s: %s", r->url,
                     r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
            req_end(h, r, WISP_E_REMOTE, msg);
        }
    }
}

static void sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sock_w *s = (sock_w *)w;
    int flags =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    /* curl may free the watcher (CURL_POLL_REMOVE) inside the call. */
    wisp_http *h = s->h;
    int running;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
    (void)loop;
}

static int curl_sock_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    wisp_http *h = userp;
    sock_w *s = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(h->loop, &s->io);
            free(s);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        s->h = h;
        s->fd = fd;
        curl_multi_assign(h->multi, fd, s);
    } else {
        ev_io_stop(h->loop, &s->io);
    }
    ev_io_init(&s->io, sock_cb, fd, ev);
    ev_io_start(h->loop, &s->io);
    return 0;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    wisp_http *h = (wisp_http *)((char *)w - offsetof(wisp_http, timer));
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
    (void)loop;
    (void)revents;
}

static int curl_timer_fn(CURLM *m, long timeout_ms, void *userp)
{
    wisp_http *h = userp;
    (void)m;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

static size_t write_fn(char *p, size_t size, size_t n, void *ud)
{
    http_req *r = ud;
    size_t len = size * n;
    if (!r->res.got_bytes)
        r->res.first_byte_ms = wisp_now_ms() - r->t0;
    r->res.got_bytes = true;
    ev_timer_again(r->h->loop, &r->idle);
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    int rc = r->d.on_data(r->d.ud, code, p, len);
    if (rc) {
        r->abort_status = rc;
        return 0; /* curl ends the transfer with a write error */
    }
    return len;
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    http_req *r = (http_req *)w;
    char msg[WISP_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: no answer for %ld ms (idle_timeout_ms)", r->url,
             r->d.idle_timeout_ms);
    req_end(r->h, r, WISP_E_REMOTE, msg);
    (void)loop;
    (void)revents;
}

/* Answers a request that never reached curl and frees it. */
static void req_refuse(http_req *r, int status, const char *msg)
{
    r->res.status = status;
    snprintf(r->res.msg, sizeof r->res.msg, "%s", msg);
    r->d.on_done(r->d.ud, &r->res);
    req_free(r);
}

/* curl_slist_append returns NULL on failure and leaves the list as it was. */
static bool add_header(http_req *r, const char *line)
{
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (!l)
        return false;
    r->headers = l;
    return true;
}

static bool add_headers(http_req *r)
{
    if (!add_header(r, "Accept: application/json, text/event-stream"))
        return false;
    if (r->body && !add_header(r, "Content-Type: application/json"))
        return false;
    if (!r->d.bearer)
        return true;
    char *line = NULL;
    if (asprintf(&line, "Authorization: Bearer %s", r->d.bearer) < 0)
        return false;
    bool ok = add_header(r, line);
    /* The secret does not outlive its use in freed memory. */
    memset(line, 0, strlen(line));
    free(line);
    return ok;
}

static void start_req(wisp_http *h, http_req *r)
{
    r->easy = curl_easy_init();
    if (!r->easy || !add_headers(r)) {
        req_refuse(r, WISP_E_NOMEM, "out of memory");
        return;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_fn);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->d.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        req_refuse(r, WISP_E_NOMEM, "cannot start the HTTP transfer");
        return;
    }
    ev_init(&r->idle, idle_cb);
    r->idle.repeat = (double)r->d.idle_timeout_ms / 1000.0;
    ev_timer_again(h->loop, &r->idle);
    r->next = h->active;
    r->prev = NULL;
    if (h->active)
        h->active->prev = r;
    h->active = r;
}

static void end_all(wisp_http *h, int status, const char *msg)
{
    while (h->active)
        req_end(h, h->active, status, msg);
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    wisp_http *h = (wisp_http *)((char *)w - offsetof(wisp_http, wake));
    pthread_mutex_lock(&h->lock);
    http_req *in = h->incoming;
    h->incoming = NULL;
    bool kicked = h->kicked, stopping = h->stopping;
    h->kicked = false;
    pthread_mutex_unlock(&h->lock);
    /* Queued in reverse: start them in submission order. */
    http_req *rev = NULL;
    while (in) {
        http_req *n = in->next;
        in->next = rev;
        rev = in;
        in = n;
    }
    while (rev) {
        http_req *n = rev->next;
        rev->next = NULL;
        if (stopping) {
            req_refuse(rev, WISP_E_SHUTDOWN, "server shutting down");
        } else {
            start_req(h, rev);
        }
        rev = n;
    }
    if (kicked)
        for (http_req *r = h->active, *n; r; r = n) {
            n = r->next;
            if (r->d.is_cancelled && r->d.is_cancelled(r->d.ud))
                req_end(h, r, WISP_E_CANCELLED, "request cancelled");
        }
    if (stopping) {
        end_all(h, WISP_E_SHUTDOWN, "server shutting down");
        ev_break(loop, EVBREAK_ALL);
    }
    (void)revents;
}

static void *thread_main(void *ud)
{
    wisp_http *h = ud;
    ev_run(h->loop, 0);
    return NULL;
}

int wisp_http_create(wisp_http **out, wisp_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    wisp_http *h = calloc(1, sizeof *h);
    if (!h)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    h->loop = ev_loop_new(EVFLAG_AUTO);
    h->multi = curl_multi_init();
    if (!h->loop || !h->multi) {
        if (h->loop)
            ev_loop_destroy(h->loop);
        if (h->multi)
            curl_multi_cleanup(h->multi);
        free(h);
        return wisp_err_set(err, WISP_E_NOMEM, "cannot create the HTTP client");
    }
    pthread_mutex_init(&h->lock, NULL);
    ev_async_init(&h->wake, wake_cb);
    ev_async_start(h->loop, &h->wake);
    ev_init(&h->timer, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_fn);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    if (pthread_create(&h->thread, NULL, thread_main, h)) {
        curl_multi_cleanup(h->multi);
        ev_loop_destroy(h->loop);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return wisp_err_set(err, WISP_E_NOMEM, "cannot start the HTTP thread");
    }
    *out = h;
    return 0;
}

int wisp_http_submit(wisp_http *h, const wisp_http_desc *d, wisp_err *err)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    r->h = h;
    r->d = *d;
    r->d.bearer = NULL;
    r->url = strdup(d->url);
    r->body = d->body ? strdup(d->body) : NULL;
    char *bearer = d->bearer ? strdup(d->bearer) : NULL;
    if (!r->url || (d->body && !r->body) || (d->bearer && !bearer)) {
        free(bearer);
        req_free(r);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    /* The bearer lives in the request's header list once started; until
     * then in d.bearer, owned. */
    r->d.bearer = bearer;
    r->t0 = wisp_now_ms();
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        /* The backend thread may be past its last look at the queue. */
        pthread_mutex_unlock(&h->lock);
        req_free(r);
        return wisp_err_set(err, WISP_E_SHUTDOWN, "server shutting down");
    }
    r->next = h->incoming;
    h->incoming = r;
    pthread_mutex_unlock(&h->lock);
    ev_async_send(h->loop, &h->wake);
    return 0;
}

void wisp_http_kick(wisp_http *h)
{
    pthread_mutex_lock(&h->lock);
    h->kicked = true;
    pthread_mutex_unlock(&h->lock);
    ev_async_send(h->loop, &h->wake);
}

bool wisp_http_on_thread(const wisp_http *h) { return pthread_equal(pthread_self(), h->thread); }

void wisp_http_destroy(wisp_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_mutex_unlock(&h->lock);
    ev_async_send(h->loop, &h->wake);
    pthread_join(h->thread, NULL);
    curl_multi_cleanup(h->multi);
    ev_loop_destroy(h->loop);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
