/*
 * server.c - shared handler state, its published snapshots, and the server
 * as the transport's application: see server.h.
 */
#include "serve/server.h"

#include <string.h>

#include "remote/remote.h"
#include "serve/methods.h"

static const wisp_method *serve_find(void *ctx, const char *name)
{
    (void)ctx;
    return wisp_method_find(name);
}

/* The model named on the command line loads before the engine thread
 * exists, so it needs no hand-off; failing to load it is fatal, since the
 * user asked for that model. */
static int serve_startup(void *ctx, wisp_err *err)
{
    wisp_server *s = ctx;
    if (s->opts->remote) {
        int rc = wisp_serve_startup_remote(s, err);
        if (rc < 0)
            wisp_err_prefix(err, "--remote");
        return rc;
    }
    if (!s->opts->model)
        return 0;
    int rc = wisp_serve_startup_load(s, s->opts->model, err);
    if (rc < 0)
        wisp_err_prefix(err, "--model");
    return rc;
}

static void serve_attach(void *ctx, struct wisp_worker *worker)
{
    ((wisp_server *)ctx)->worker = worker;
}

static const wisp_app_ops serve_ops = {
    .find = serve_find,
    .gate = wisp_serve_gate,
    .startup = serve_startup,
    .attach = serve_attach,
    .step = wisp_serve_step,
    .teardown = wisp_serve_teardown,
};

wisp_app wisp_serve_app(wisp_server *s) { return (wisp_app){.ops = &serve_ops, .ctx = s}; }

void wisp_server_init(wisp_server *s, const wisp_options *opts)
{
    memset(s, 0, sizeof *s);
    s->opts = opts;
    s->start_ms = wisp_now_ms();
    s->n_devices = wisp_engine_devices(s->devices, WISP_MAX_DEVICES);
    pthread_mutex_init(&s->lock, NULL);
}

void wisp_server_free(wisp_server *s)
{
    json_decref(s->model_info);
    s->model_info = NULL;
    pthread_mutex_destroy(&s->lock);
}

void wisp_server_publish_model(wisp_server *s, json_t *info)
{
    pthread_mutex_lock(&s->lock);
    json_t *old = s->model_info;
    s->model_info = info;
    pthread_mutex_unlock(&s->lock);
    json_decref(old);
}

json_t *wisp_server_model_info(wisp_server *s)
{
    pthread_mutex_lock(&s->lock);
    /* A deep copy: the caller may embed it in a reply that another thread
     * serializes while the engine publishes a new one. */
    json_t *info = s->model_info ? json_deep_copy(s->model_info) : json_null();
    pthread_mutex_unlock(&s->lock);
    return info ? info : json_null();
}

void wisp_server_publish_remote(wisp_server *s, struct wisp_remote *r)
{
    pthread_mutex_lock(&s->lock);
    s->remote = r;
    pthread_mutex_unlock(&s->lock);
}

json_t *wisp_server_remote_status(wisp_server *s)
{
    pthread_mutex_lock(&s->lock);
    json_t *o = s->remote ? wisp_remote_status_json(s->remote) : NULL;
    pthread_mutex_unlock(&s->lock);
    return o;
}

void wisp_server_publish_stats(wisp_server *s, const wisp_server_stats *st)
{
    pthread_mutex_lock(&s->lock);
    s->stats = *st;
    pthread_mutex_unlock(&s->lock);
}

void wisp_server_read_stats(wisp_server *s, wisp_server_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void wisp_server_publish_engine_stats(wisp_server *s, const wisp_engine_stats *st)
{
    pthread_mutex_lock(&s->lock);
    s->engine_stats = *st;
    pthread_mutex_unlock(&s->lock);
}

void wisp_server_read_engine_stats(wisp_server *s, wisp_engine_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->engine_stats;
    pthread_mutex_unlock(&s->lock);
}
