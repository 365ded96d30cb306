/* server.c - shared handler state and its published snapshots: see server.h. */
#include "serve/server.h"

#include <string.h>

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
