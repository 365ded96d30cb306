/*
 * http.h - an asynchronous HTTP client: libcurl's multi interface driven by
 * a libev loop on one backend thread.
 *
 * Why its own thread and loop: the transport's libev loop (src/rpc/) is
 * the I/O thread of stdin/stdout and knows no application, and the engine
 * thread sleeps on a condition variable between steps, so neither can wait
 * on sockets without a new hook into src/rpc/. One backend thread with its
 * own ev_loop carries every transfer of every remote server: curl tells it
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION -> ev_io) and when to
 * call back (CURLMOPT_TIMERFUNCTION -> ev_timer), and curl_multi_socket_action
 * moves all transfers on; there is no thread per request and no blocking
 * call in this file. Other threads talk to it through a locked queue and an
 * ev_async. (A callback may still wait: see serve/methods_remote.c on
 * stdout's backpressure.)
 *
 * Every callback of a request runs on the backend thread; on_done runs
 * exactly once per submitted request, also when it was cancelled or the
 * client was destroyed.
 */
#ifndef WISP_REMOTE_HTTP_H
#define WISP_REMOTE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct wisp_http wisp_http;

typedef struct wisp_http_result {
    int status;          /* 0: a whole answer came (any HTTP code); else a wisp_code */
    long http_code;      /* 0 when no response line arrived */
    bool connect_failed; /* never reached the server: nothing was sent */
    bool retryable;      /* failed before any byte of an answer: safe to send elsewhere */
    bool got_bytes;      /* a byte of the body arrived */
    double ms;           /* submit to done */
    double first_byte_ms;
    char msg[WISP_ERR_MSG_MAX];
} wisp_http_result;

typedef struct wisp_http_desc {
    const char *url;
    const char *body;   /* POST with a JSON body (copied); NULL: GET */
    const char *bearer; /* Authorization: Bearer value (copied, never logged); may be NULL */
    long connect_timeout_ms;
    long idle_timeout_ms; /* no byte for this long (from the start too): fails */
    /* A piece of the body, with the response's HTTP code. Nonzero aborts
     * the transfer: on_done then gets that value as status. */
    int (*on_data)(void *ud, long http_code, const char *p, size_t n);
    /* Polled when wisp_http_kick() is called: true removes the transfer at
     * once (on_done gets WISP_E_CANCELLED). May be NULL. */
    bool (*is_cancelled)(void *ud);
    void (*on_done)(void *ud, const wisp_http_result *r);
    void *ud;
} wisp_http_desc;

/* Starts the backend thread. Returns 0 or <0 with err set. */
int wisp_http_create(wisp_http **out, wisp_err *err);
/* Any thread: queues a transfer. Returns 0, or <0 with err set (then
 * on_done is never called). */
int wisp_http_submit(wisp_http *h, const wisp_http_desc *d, wisp_err *err);
/* Any thread: makes the backend thread poll every transfer's is_cancelled. */
void wisp_http_kick(wisp_http *h);
/* True on the backend thread. */
bool wisp_http_on_thread(const wisp_http *h);
/* Ends every transfer (on_done with WISP_E_SHUTDOWN), joins the thread and
 * frees. Not from the backend thread. */
void wisp_http_destroy(wisp_http *h);

#endif
