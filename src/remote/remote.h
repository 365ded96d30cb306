/*
 * remote.h - the remote backend: a pool of OpenAI-compatible or llama.cpp
 * servers that wisp sends generation to instead of running it.
 *
 * One wisp_remote holds the HTTP client (http.h, its own backend thread),
 * the router over the servers (router.h) and what every request needs
 * (model name, API key, timeouts). A call is one HTTP POST (or GET) to one
 * server, chosen by its route key; its answer, JSON or server-sent events,
 * comes back decoded as JSON values through on_json, and on_done ends it.
 * A call that failed before any byte of an answer arrived (connection
 * refused, the connection closed without a response) is sent to the next
 * server, so nothing a client saw is ever repeated; a call that saw bytes
 * fails with a clear error. Cancellation (is_cancelled, polled on
 * wisp_remote_kick) closes the connection at once, which makes the server
 * stop generating.
 *
 * Callbacks run on the backend thread.
 */
#ifndef WISP_REMOTE_REMOTE_H
#define WISP_REMOTE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

typedef enum wisp_remote_kind {
    WISP_REMOTE_OPENAI = 0, /* vLLM, SGLang, TGI, llama-server's /v1 */
    WISP_REMOTE_LLAMACPP,   /* llama-server's own /completion, /infill, /tokenize */
} wisp_remote_kind;

const char *wisp_remote_kind_name(wisp_remote_kind k);

#define WISP_REMOTE_MAX_URLS 64

typedef struct wisp_remote_opts {
    const char *const *urls; /* base URLs ("http://host:port"), n_urls of them */
    int n_urls;
    const char *model;   /* the "model" field of OpenAI requests; NULL: the server's first */
    const char *api_key; /* the bearer token's value, or NULL */
    wisp_remote_kind kind;
    long connect_timeout_ms; /* 0: 5000 */
    long idle_timeout_ms;    /* 0: 60000 */
} wisp_remote_opts;

typedef struct wisp_remote wisp_remote;

/* What on_json returns to end a call early without failing it (the
 * caller's own rule ended the answer): on_done then gets it as status. */
#define WISP_REMOTE_STOP 1

typedef struct wisp_remote_done {
    int status; /* 0, or a wisp_code (WISP_E_CANCELLED, WISP_E_REMOTE, ...) */
    long http_code;
    const char *message; /* when status != 0 */
    int server;          /* index of the server that answered, -1 none */
    const char *url;     /* its base URL, or NULL */
    double first_byte_ms;
    int attempts;
} wisp_remote_done;

typedef struct wisp_remote_call {
    const char *path; /* "/v1/completions" */
    json_t *body;     /* borrowed; NULL: GET */
    bool sse;         /* the answer is a stream of events */
    bool has_key;
    uint64_t key;
    /* One decoded JSON value (each event, or the whole answer); nonzero
     * stops the call and becomes its status. */
    int (*on_json)(void *ud, json_t *value);
    bool (*is_cancelled)(void *ud);
    void (*on_done)(void *ud, const wisp_remote_done *d);
    void *ud;
} wisp_remote_call;

int wisp_remote_open(const wisp_remote_opts *o, wisp_remote **out, wisp_err *err);
/* Ends every call (on_done with WISP_E_SHUTDOWN) and frees. */
void wisp_remote_close(wisp_remote *r);

/* Any thread. Returns 0 (on_done will run once), or <0 with err set. */
int wisp_remote_submit(wisp_remote *r, const wisp_remote_call *c, wisp_err *err);
/* Any thread: polls every call's is_cancelled now. */
void wisp_remote_kick(wisp_remote *r);
/* Not on the backend thread: one call, waited for. *answer gets the JSON
 * answer (new reference) on success. */
int wisp_remote_call_sync(wisp_remote *r, int server, const char *path, json_t *body,
                          json_t **answer, wisp_err *err);

wisp_remote_kind wisp_remote_get_kind(const wisp_remote *r);
const char *wisp_remote_model(const wisp_remote *r);
/* Sets the model name (the one the servers report, when none was given). */
void wisp_remote_set_model(wisp_remote *r, const char *model);
int wisp_remote_n_servers(const wisp_remote *r);
const char *wisp_remote_url(const wisp_remote *r, int i);
/* {kind, model, servers: [{url, up, in_flight, requests, failures,
 * retried_elsewhere, keyed, latency_ms, latency_ms_avg}]} (new reference). */
json_t *wisp_remote_status_json(wisp_remote *r);

#endif
