/*
 * server.h - the state the method handlers share.
 *
 * One wisp_server per process. Fields fall in three groups by the thread
 * that may touch them, which is what keeps the handlers free of locks:
 *   - set once before the loop starts, read anywhere (opts, devices);
 *   - engine-thread state, touched only by ENGINE handlers and the worker's
 *     step hook (the runtime: model, tokenizer, engine, scheduler, caches);
 *   - published snapshots (model info, engine statistics) that the engine
 *     thread writes and loop-thread handlers (initialize, status) read,
 *     under one mutex.
 */
#ifndef WISP_SERVE_SERVER_H
#define WISP_SERVE_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "common/clock.h"
#include "engine/factory.h"
#include "options.h"
#include "rpc/app.h"
#include "rpc/job.h"
#include "sched/sched.h"

struct wisp_runtime;
typedef struct wisp_keep_alive wisp_keep_alive;
typedef struct wisp_worker wisp_worker;

#define WISP_MAX_DEVICES WISP_ENGINE_MAX_DEVICES

typedef wisp_engine_device wisp_device_info;

/* What the engine side reports for `status`: the scheduler's snapshot (KV
 * blocks, prefix cache, tiers, counters). All zero is the true value while
 * no model (hence no KV cache) exists. */
typedef wisp_sched_stats wisp_server_stats;

typedef struct wisp_server {
    /* set once */
    const wisp_options *opts;
    wisp_device_info devices[WISP_MAX_DEVICES];
    int n_devices;
    double start_ms;     /* wisp_now_ms() at start */
    wisp_worker *worker; /* NULL when handlers run inline (fuzzer) */

    /* engine thread only */
    struct wisp_runtime *runtime; /* NULL while no model is loaded */
    /* Keep-alive: a model idle for keep_alive_s is unloaded and reopened
     * from the options it was loaded with by the next request needing it.
     * idle_unloaded: runtime is NULL for that reason (not model/unload). */
    int64_t keep_alive_s; /* the loaded model's; 0: never unloaded for idling */
    double last_use_ms;   /* the last model request or step with work */
    bool idle_unloaded;
    wisp_keep_alive *reload; /* what reopens it; NULL without keep-alive */
    json_t *idle_info;       /* model/info of the unloaded model */
    uint64_t idle_unloads, idle_reloads;
    char reload_msg[WISP_ERR_MSG_MAX]; /* why the last reload failed */

    /* published snapshots */
    pthread_mutex_t lock;
    struct wisp_remote *remote; /* the loaded remote backend, for status (under lock) */
    json_t *model_info;         /* model/info's result, or NULL */
    wisp_server_stats stats;
    wisp_engine_stats engine_stats; /* the loaded engine's; zeros without one */
} wisp_server;

/* Fills devices and the clock; opts must outlive the server. */
void wisp_server_init(wisp_server *s, const wisp_options *opts);
void wisp_server_free(wisp_server *s);

/* The server as the transport's application (app.h): wisp's method table,
 * --model loaded at startup, the scheduler's step hook, teardown of the
 * runtime. s must outlive the loop or dispatcher that gets it. */
wisp_app wisp_serve_app(wisp_server *s);

/* The server a handler's job belongs to. */
static inline wisp_server *wisp_job_server(wisp_job *job) { return wisp_job_app(job); }

/* Engine thread: publishes what model/info answers (info is stolen; NULL
 * when the model is unloaded). */
void wisp_server_publish_model(wisp_server *s, json_t *info);
/* Returns a new reference to the published model info, or json_null(). */
json_t *wisp_server_model_info(wisp_server *s);

/* Engine thread: publishes the remote backend (NULL: none) before it is
 * used and before it is closed; any thread: its live routing status (new
 * reference), or NULL when the model is local. */
void wisp_server_publish_remote(wisp_server *s, struct wisp_remote *r);
json_t *wisp_server_remote_status(wisp_server *s);

/* Engine thread: publishes statistics; any thread: reads a copy. */
void wisp_server_publish_stats(wisp_server *s, const wisp_server_stats *st);
void wisp_server_read_stats(wisp_server *s, wisp_server_stats *out);
/* The same for the engine's own statistics (weights, streaming, stages). */
void wisp_server_publish_engine_stats(wisp_server *s, const wisp_engine_stats *st);
void wisp_server_read_engine_stats(wisp_server *s, wisp_engine_stats *out);

#endif
