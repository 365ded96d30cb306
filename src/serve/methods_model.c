/*
 * methods_model.c - model/load, model/unload, model/info, model/plan, and
 * the engine thread's step hook that drives the loaded model's scheduler.
 *
 * All of these run on the engine thread, which owns the loaded model
 * (server->runtime). Loading replaces any model already loaded: the old
 * scheduler first answers every request it still holds. What the loop
 * thread needs (model info for initialize/status, statistics) is published
 * through the server's snapshots.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/factory.h"
#include "model/plan.h"
#include "model/types.h"
#include "rpc/worker.h"
#include "serve/methods.h"
#include "serve/placement_json.h"
#include "serve/remote.h"
#include "serve/runtime.h"
#include "serve/server.h"

/* ---------------------------------------------------------------- options */

/* Answers a kv_type that names no cache format. */
static void bad_kv_type(wisp_job *job)
{
    char names[64], msg[128];
    wisp_kv_type_list(names, sizeof names);
    snprintf(msg, sizeof msg, "'kv_type' must be one of %s", names);
    wisp_job_error(job, WISP_RPC_INVALID_PARAMS, msg, NULL);
}

/* The runtime options from the command line, overridden by params. */
static void runtime_opts(const wisp_server *s, const json_t *p, wisp_runtime_opts *o)
{
    const wisp_options *cli = s->opts;
    memset(o, 0, sizeof *o);
    o->n_ctx = cli->n_ctx;
    o->n_threads = cli->n_threads;
    o->device = cli->device;
    o->kv_cache_mb = cli->kv_mb;
    o->kv_type = (wisp_kv_type)cli->kv_type;
    o->f16_as_bf16 = cli->f16_as_bf16;
    o->host_cache_mb = cli->host_cache_mb;
    o->cache_dir = cli->cache_dir;
    if (!p)
        return;
    const json_t *v;
    if ((v = json_object_get(p, "path")))
        o->path = json_string_value(v);
    if ((v = json_object_get(p, "n_ctx")))
        o->n_ctx = (int)json_integer_value(v);
    if ((v = json_object_get(p, "threads")))
        o->n_threads = (int)json_integer_value(v);
    if ((v = json_object_get(p, "device")))
        o->device = json_string_value(v);
    if ((v = json_object_get(p, "kv_cache_mb")))
        o->kv_cache_mb = json_integer_value(v);
    if ((v = json_object_get(p, "host_cache_mb")))
        o->host_cache_mb = json_integer_value(v);
    if ((v = json_object_get(p, "kv_type")))
        wisp_kv_type_from_name(json_string_value(v), &o->kv_type);
    if ((v = json_object_get(p, "cache_dir")))
        o->cache_dir = json_string_value(v);
    if ((v = json_object_get(p, "f16_as_bf16")))
        o->f16_as_bf16 = json_is_true(v);
}

/* model/load's warm-up: on unless params say "warmup": false. */
static void warmup_opts(const json_t *p, wisp_runtime_opts *o)
{
    const json_t *v = p ? json_object_get(p, "warmup") : NULL;
    o->skip_warmup = json_is_false(v);
}

/* ---------------------------------------------------------------- placement */

/* One device_map entry: {"device": name, "layers": n, "weights_budget_mb"?: n}. */
static bool device_map_entry(const json_t *v, int i, wisp_device_map *m, char *msg, size_t n)
{
    const json_t *dev = json_object_get(v, "device"), *layers = json_object_get(v, "layers");
    const json_t *budget = json_object_get(v, "weights_budget_mb");
    const char *key;
    const json_t *val;
    if (!json_is_object(v) || !json_is_string(dev) || !json_is_integer(layers) ||
        (budget && !json_is_integer(budget))) {
        snprintf(msg, n,
                 "invalid params: 'device_map' entry %d must be {\"device\": string, \"layers\": "
                 "integer, \"weights_budget_mb\"?: integer}",
                 i);
        return false;
    }
    json_object_foreach((json_t *)v, key, val)
    {
        if (strcmp(key, "device") && strcmp(key, "layers") && strcmp(key, "weights_budget_mb")) {
            snprintf(msg, n, "invalid params: 'device_map' entry %d: unknown field '%s'", i, key);
            return false;
        }
    }
    wisp_err err = {0};
    if (wisp_device_map_add(m, json_string_value(dev), json_integer_value(layers),
                            budget ? json_integer_value(budget) : 0, &err)) {
        snprintf(msg, n, "invalid params: 'device_map' %s", err.msg);
        return false;
    }
    return true;
}

/* The placement model/load asks for: the command line's --device-map and
 * --weights-budget-mb, replaced by the request's device_map and
 * weights_budget_mb; a request naming only a device drops the command
 * line's map. Answers job with -32602 and returns false when the map is
 * malformed; the layer count is checked once the model is open. */
static bool placement_opts(wisp_job *job, const wisp_server *s, const json_t *p,
                           wisp_runtime_opts *o)
{
    o->device_map = s->opts->device_map;
    if (!p)
        return true;
    const json_t *map = json_object_get(p, "device_map");
    const json_t *budget = json_object_get(p, "weights_budget_mb");
    char msg[WISP_ERR_MSG_MAX + 64];
    if (map || json_object_get(p, "device"))
        o->device_map.n = 0;
    if (map) {
        size_t k = json_array_size(map);
        if (!json_is_array(map) || k == 0 || k > WISP_PLACE_MAX_STAGES) {
            snprintf(msg, sizeof msg,
                     "invalid params: 'device_map' must be an array of 1 to %d {\"device\", "
                     "\"layers\"} objects",
                     WISP_PLACE_MAX_STAGES);
            wisp_job_error(job, WISP_RPC_INVALID_PARAMS, msg, NULL);
            return false;
        }
        for (size_t i = 0; i < k; i++)
            if (!device_map_entry(json_array_get(map, i), (int)i, &o->device_map, msg,
                                  sizeof msg)) {
                wisp_job_error(job, WISP_RPC_INVALID_PARAMS, msg, NULL);
                return false;
            }
    }
    if (budget)
        o->device_map.weights_budget_bytes = (uint64_t)json_integer_value(budget) << 20;
    return true;
}

/* A refused placement (layers that do not add up to the model's, a weights
 * budget below two layers) is the request's mistake: -32602. */
static bool placement_refused(const wisp_runtime_opts *o, const wisp_err *err)
{
    return err->code == WISP_E_INVALID && wisp_device_map_is_set(&o->device_map);
}

/* ---------------------------------------------------------------- engine thread */

/* The engine's weights, streaming and stage figures for status. */
static void publish_engine_stats(wisp_server *s)
{
    wisp_engine_stats es;
    memset(&es, 0, sizeof es);
    const wisp_engine *e = s->runtime ? s->runtime->engine : NULL;
    if (e && e->ops->get_stats)
        e->ops->get_stats(e->ctx, &es);
    wisp_server_publish_engine_stats(s, &es);
}

static void publish_stats(wisp_server *s)
{
    wisp_server_stats st;
    memset(&st, 0, sizeof st);
    if (s->runtime && s->runtime->sched)
        wisp_sched_get_stats(s->runtime->sched, &st);
    wisp_server_publish_stats(s, &st);
    publish_engine_stats(s);
}

bool wisp_model_check_file(wisp_server *s, wisp_err *err)
{
    wisp_runtime *rt = s->runtime;
    if (!rt || !rt->model)
        return true;
    if (!rt->stale && wisp_file_stamp_check(wisp_model_get_path(rt->model), &rt->stamp, err) == 0)
        return true;
    if (!rt->stale) {
        rt->stale = true;
        WISP_LOGE("%s", err->msg);
        /* Every request the model holds fails now, before a step touches a
         * page of the file that may be gone (SIGBUS) or hold other weights. */
        if (rt->sched) {
            wisp_sched_fail_all(rt->sched, err);
            publish_stats(s);
        }
        /* Kept for the message: a later check says the same. */
        snprintf(rt->stale_msg, sizeof rt->stale_msg, "%s", err->msg);
    }
    wisp_err_set(err, WISP_E_MODEL_CHANGED, "%s", rt->stale_msg);
    return false;
}

/* ---------------------------------------------------------------- keep-alive */

/* The options a model was loaded with, its strings owned, so an idle
 * unload can reopen it exactly as model/load did. */
struct wisp_keep_alive {
    wisp_runtime_opts o;
    char *path, *device, *cache_dir;
};

static void keep_alive_free(wisp_keep_alive *k)
{
    if (!k)
        return;
    free(k->path);
    free(k->device);
    free(k->cache_dir);
    free(k);
}

static char *dup_or_null(const char *v) { return v ? strdup(v) : NULL; }

static wisp_keep_alive *keep_alive_new(const wisp_runtime_opts *o)
{
    wisp_keep_alive *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->o = *o;
    k->o.progress = NULL;
    k->o.progress_ud = NULL;
    k->path = dup_or_null(o->path);
    k->device = dup_or_null(o->device);
    k->cache_dir = dup_or_null(o->cache_dir);
    if ((o->path && !k->path) || (o->device && !k->device) || (o->cache_dir && !k->cache_dir)) {
        keep_alive_free(k);
        return NULL;
    }
    k->o.path = k->path;
    k->o.device = k->device;
    k->o.cache_dir = k->cache_dir;
    return k;
}

/* Forgets the idle-unloaded model: model/unload, another model/load. */
static void keep_alive_clear(wisp_server *s)
{
    keep_alive_free(s->reload);
    s->reload = NULL;
    json_decref(s->idle_info);
    s->idle_info = NULL;
    s->idle_unloaded = false;
    s->keep_alive_s = 0;
}

/* model/info's result: the runtime's own, and how keep-alive stands. */
static json_t *model_info_json(const wisp_server *s, const wisp_runtime *rt)
{
    json_t *info = rt && rt->remote ? wisp_runtime_remote_info(rt)
                   : rt             ? wisp_runtime_info(rt)
                                    : json_deep_copy(s->idle_info);
    if (!json_is_object(info))
        return info;
    json_object_set_new(info, "resident", json_boolean(rt != NULL));
    json_object_set_new(info, "idle_unloaded", json_boolean(!rt && s->idle_unloaded));
    json_object_set_new(info, "keep_alive_s", json_integer((json_int_t)s->keep_alive_s));
    json_object_set_new(info, "idle_unloads", json_integer((json_int_t)s->idle_unloads));
    json_object_set_new(info, "idle_reloads", json_integer((json_int_t)s->idle_reloads));
    return info;
}

static void close_runtime(wisp_server *s);

/* Unloads the model when nothing used it for keep_alive_s; otherwise asks
 * the engine thread to come back when that time is up. Called only when
 * the scheduler is idle and no job is queued. */
static void idle_check(wisp_server *s)
{
    if (!s->runtime || s->keep_alive_s <= 0 || !s->reload || !s->worker)
        return;
    if (wisp_worker_queued(s->worker) > 0)
        return;
    double left = s->last_use_ms + (double)s->keep_alive_s * 1000.0 - wisp_now_ms();
    if (left > 0) {
        wisp_worker_wake_after(s->worker, left);
        return;
    }
    json_t *info = wisp_runtime_info(s->runtime);
    WISP_LOGI("model idle for %lld s: unloading it until the next request",
              (long long)s->keep_alive_s);
    close_runtime(s); /* writes the on-disk prefix cache with --cache-dir */
    json_decref(s->idle_info);
    s->idle_info = info;
    s->idle_unloaded = true;
    s->idle_unloads++;
    wisp_server_publish_model(s, model_info_json(s, NULL));
}

static int open_runtime(wisp_server *s, const wisp_runtime_opts *o, wisp_err *err);

int wisp_serve_reload(wisp_server *s, wisp_err *err)
{
    double t0 = wisp_now_ms();
    int rc = open_runtime(s, &s->reload->o, err);
    if (rc) {
        WISP_LOGE("reloading the idle model: %s", err->msg);
        return rc;
    }
    s->idle_unloaded = false;
    json_decref(s->idle_info);
    s->idle_info = NULL;
    s->idle_reloads++;
    s->last_use_ms = wisp_now_ms();
    wisp_server_publish_model(s, model_info_json(s, s->runtime));
    WISP_LOGI("idle model reloaded in %.0f ms", wisp_now_ms() - t0);
    return 0;
}

void wisp_serve_touch(wisp_server *s) { s->last_use_ms = wisp_now_ms(); }

bool wisp_serve_step(void *ud)
{
    wisp_server *s = ud;
    if (!s->runtime)
        return false;
    if (s->runtime->remote) {
        wisp_serve_remote_step(s->runtime);
        return false;
    }
    if (!s->runtime->sched) {
        idle_check(s);
        return false;
    }
    wisp_err err = {0};
    if (!wisp_model_check_file(s, &err))
        return false;
    bool more = wisp_sched_step(s->runtime->sched);
    publish_stats(s);
    if (more)
        s->last_use_ms = wisp_now_ms();
    else
        idle_check(s);
    return more;
}

static void close_runtime(wisp_server *s)
{
    if (!s->runtime)
        return;
    wisp_runtime *rt = s->runtime;
    s->runtime = NULL;
    wisp_server_publish_model(s, NULL);
    wisp_server_publish_remote(s, NULL);
    wisp_runtime_close(rt); /* answers what its scheduler still held */
    /* A model's buffers are large and freed together: hand the heap's free
     * pages back now, or glibc keeps them (its mmap threshold grows as big
     * blocks are freed) and an editor's long-lived wisp would hold a whole
     * model's worth of memory after model/unload. */
    malloc_trim(0);
    publish_stats(s);
}

void wisp_serve_teardown(void *ud)
{
    close_runtime(ud);
    keep_alive_clear(ud);
}

/* The new model is opened whole before the old one is closed: a load that
 * fails (a missing file, refused params) leaves the working model serving. */
static int open_runtime(wisp_server *s, const wisp_runtime_opts *o, wisp_err *err)
{
    wisp_runtime *rt;
    int rc = wisp_runtime_open(o, &rt, err);
    if (rc)
        return rc;
    close_runtime(s);
    s->runtime = rt;
    s->last_use_ms = wisp_now_ms();
    wisp_server_publish_model(s, model_info_json(s, rt));
    publish_stats(s);
    return 0;
}

/* A fresh load with keep-alive: remembers how to reopen the model. */
static int open_with_keep_alive(wisp_server *s, const wisp_runtime_opts *o, int64_t keep_alive_s,
                                wisp_err *err)
{
    wisp_keep_alive *k = NULL;
    if (keep_alive_s > 0 && !(k = keep_alive_new(o)))
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    int rc = open_runtime(s, o, err);
    if (rc) {
        keep_alive_free(k);
        return rc;
    }
    keep_alive_clear(s);
    s->reload = k;
    s->keep_alive_s = keep_alive_s;
    wisp_server_publish_model(s, model_info_json(s, s->runtime));
    return 0;
}

int wisp_serve_startup_load(wisp_server *s, const char *path, wisp_err *err)
{
    wisp_runtime_opts o;
    runtime_opts(s, NULL, &o);
    placement_opts(NULL, s, NULL, &o);
    o.path = path;
    return open_with_keep_alive(s, &o, s->opts->keep_alive_s, err);
}

/* ---------------------------------------------------------------- methods */

/* $/progress only for loads that take a moment: "begin" goes out with the
 * first report after PROGRESS_AFTER_MS, "end" only if "begin" did. */
#define PROGRESS_AFTER_MS 200

typedef struct load_progress_state {
    wisp_job *job;
    double start_ms;
    bool begun;
} load_progress_state;

static void load_progress(void *ud, double fraction, const char *message)
{
    load_progress_state *st = ud;
    if (!st->begun) {
        if (wisp_now_ms() - st->start_ms < PROGRESS_AFTER_MS)
            return;
        st->begun = true;
        wisp_job_progress(st->job, "begin", "loading model", fraction * 100.0);
    }
    wisp_job_progress(st->job, "report", message, fraction * 100.0);
}

/* A file name with a NUL inside names some other file once it reaches
 * open(): refused. Answers job and returns false then. */
static bool paths_ok(wisp_job *job, const json_t *p)
{
    static const char *const fields[] = {"path", "cache_dir"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const json_t *v = json_object_get(p, fields[i]);
        if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v)) {
            char msg[96];
            snprintf(msg, sizeof msg, "invalid params: '%s' must not contain \\u0000", fields[i]);
            wisp_job_error(job, WISP_RPC_INVALID_PARAMS, msg, NULL);
            return false;
        }
    }
    return true;
}

static void load_remote(wisp_job *job);

void wisp_m_model_load(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    const json_t *p = wisp_job_params(job);
    if (!paths_ok(job, p))
        return;
    if (json_object_get(p, "remote")) {
        load_remote(job);
        return;
    }
    if (!json_object_get(p, "path")) {
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS,
                       "invalid params: 'path' (a model file) or 'remote' (servers) is required",
                       NULL);
        return;
    }
    wisp_runtime_opts o;
    runtime_opts(s, p, &o);
    warmup_opts(p, &o);
    if (json_object_get(p, "kv_type") &&
        wisp_kv_type_from_name(json_string_value(json_object_get(p, "kv_type")), &o.kv_type)) {
        bad_kv_type(job);
        return;
    }
    if (!placement_opts(job, s, p, &o))
        return;
    const json_t *ka = json_object_get(p, "keep_alive_s");
    int64_t keep_alive_s = ka ? (int64_t)json_integer_value(ka) : s->opts->keep_alive_s;
    load_progress_state ps = {.job = job, .start_ms = wisp_now_ms()};
    o.progress = load_progress;
    o.progress_ud = &ps;
    wisp_err err = {0};
    int rc = open_with_keep_alive(s, &o, keep_alive_s, &err);
    if (ps.begun)
        wisp_job_progress(job, "end", rc ? "failed" : "loaded", rc ? -1.0 : 100.0);
    if (rc) {
        WISP_LOGE("model/load: %s", err.msg);
        /* A context the memory cannot hold is the documented "can never fit". */
        int code = placement_refused(&o, &err)    ? WISP_RPC_INVALID_PARAMS
                   : err.code == WISP_E_DEVICE    ? WISP_RPC_DEVICE_ERROR
                   : err.code == WISP_E_TOO_LARGE ? WISP_RPC_NEVER_FITS
                                                  : WISP_RPC_MODEL_LOAD_FAILED;
        wisp_job_error(job, code, err.msg, NULL);
        return;
    }
    wisp_job_reply(job, model_info_json(s, s->runtime));
}

/* For good: an idle-unloaded model is forgotten too, never reloaded. */
void wisp_m_model_unload(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    close_runtime(s);
    keep_alive_clear(s);
    wisp_server_publish_model(s, NULL); /* the idle-unloaded model's info too */
    wisp_job_reply(job, NULL);
}

/* Answers without reloading an idle-unloaded model: "resident" says so. */
void wisp_m_model_info(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    wisp_job_reply(job, model_info_json(s, s->runtime));
}

static json_t *plan_json(const wisp_model_plan *pl)
{
    json_t *layers = json_array();
    for (int i = 0; i < pl->n_layers; i++)
        json_array_append_new(layers, json_integer((json_int_t)pl->layer_bytes[i]));
    return json_pack(
        "{s:s, s:i, s:i, s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "architecture", pl->cfg.arch_name, "n_ctx", pl->n_ctx, "n_seq", pl->n_seq, "kv_type",
        wisp_type_name(wisp_kv_type_elem(pl->kv_type)), "n_layers", pl->n_layers, "layer_bytes",
        layers, "layer_bytes_total", (json_int_t)pl->layer_bytes_total, "layer_bytes_max",
        (json_int_t)pl->layer_bytes_max, "embedding_bytes", (json_int_t)pl->embd_bytes,
        "output_bytes", (json_int_t)pl->output_bytes, "other_bytes", (json_int_t)pl->other_bytes,
        "weight_bytes", (json_int_t)pl->weight_bytes, "kv_bytes_per_token",
        (json_int_t)pl->kv_bytes_per_token, "kv_bytes", (json_int_t)pl->kv_bytes, "scratch_bytes",
        (json_int_t)pl->scratch_bytes, "host_bytes", (json_int_t)pl->host_bytes, "device_bytes",
        (json_int_t)pl->device_bytes);
}

/* Where model/load would put the model with these params, from the same
 * call model/load makes (wisp_engine_place): the strategy, the layers, KV
 * and weights per device, and why; or why nothing holds it. A device_map
 * model/load refuses as the request's mistake (layers that do not add up)
 * is answered the same way: -32602, false. */
static bool place(wisp_job *job, const wisp_model *m, const wisp_engine_spec *spec,
                  const wisp_model_plan *pl, json_t *res)
{
    wisp_engine_made made;
    wisp_err err = {0};
    int rc = wisp_engine_place(m, spec, &made, &err);
    if (rc && err.code == WISP_E_INVALID && wisp_device_map_is_set(spec->device_map)) {
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS, err.msg, NULL);
        return false;
    }
    const wisp_placement *p = rc == 0 ? &made.placement : NULL;
    if (made.n_devices == 0)
        made.n_devices = wisp_engine_place_devices(made.devices, WISP_ENGINE_MAX_DEVICES);
    json_object_set_new(res, "devices", wisp_place_devices_json(made.devices, made.n_devices, p));
    json_object_set_new(res, "fits", json_boolean(rc == 0));
    json_object_set_new(res, "strategy",
                        json_string(p ? wisp_place_strategy_name(p->strategy) : "none"));
    json_object_set_new(res, "reason", json_string(p ? p->reason : err.msg));
    json_object_set_new(res, "placement", p ? wisp_placement_json(p) : json_null());
    if (rc == 0 && made.note[0])
        json_object_set_new(res, "device_note", json_string(made.note));
    json_object_set_new(res, "weights_bytes", json_integer((json_int_t)pl->weight_bytes));
    json_object_set_new(res, "total_bytes", json_integer((json_int_t)pl->host_bytes));
    return true;
}

void wisp_m_model_plan(wisp_job *job)
{
    const wisp_server *s = wisp_job_server(job);
    const json_t *p = wisp_job_params(job);
    if (!paths_ok(job, p))
        return;
    /* The options model/load would take from the same params. */
    wisp_runtime_opts o;
    runtime_opts(s, p, &o);
    const json_t *v;
    int n_seq = (v = json_object_get(p, "n_seq")) ? (int)json_integer_value(v) : 1;
    wisp_kv_type kv = o.kv_type;
    if ((v = json_object_get(p, "kv_type")) && wisp_kv_type_from_name(json_string_value(v), &kv)) {
        bad_kv_type(job);
        return;
    }
    if (!placement_opts(job, s, p, &o))
        return;
    wisp_model *m;
    wisp_err err = {0};
    if (wisp_model_open(o.path, NULL, &m, &err)) {
        wisp_job_error(job, WISP_RPC_MODEL_LOAD_FAILED, err.msg, NULL);
        return;
    }
    const int n_ctx = wisp_runtime_n_ctx(wisp_model_get_config(m), o.n_ctx);
    wisp_model_plan pl;
    if (wisp_model_plan_model(m, n_ctx, n_seq, kv, &pl, &err)) {
        wisp_model_close(m);
        wisp_job_error(job, WISP_RPC_MODEL_LOAD_FAILED, err.msg, NULL);
        return;
    }
    json_t *res = plan_json(&pl);
    wisp_engine_spec spec = {
        .device = o.device,
        .n_threads = o.n_threads,
        .kv_type = kv,
        .n_ctx = n_ctx,
        .kv_cache_mb = o.kv_cache_mb,
        .device_map = &o.device_map,
    };
    if (!place(job, m, &spec, &pl, res)) {
        json_decref(res);
        wisp_model_plan_free(&pl);
        wisp_model_close(m);
        return;
    }
    wisp_model_plan_free(&pl);
    wisp_model_close(m);
    wisp_job_reply(job, res);
}

/* ---------------------------------------------------------------- remote */

/* The remote runtime replaces the loaded model the way a local load does:
 * opened whole first, so a failing load leaves the old model serving. */
static int install_remote(wisp_server *s, const wisp_remote_load *o, wisp_err *err)
{
    wisp_runtime *rt;
    int rc = wisp_runtime_open_remote(o, &rt, err);
    if (rc)
        return rc;
    close_runtime(s);
    keep_alive_clear(s);
    s->runtime = rt;
    s->last_use_ms = wisp_now_ms();
    wisp_server_publish_remote(s, rt->remote);
    wisp_server_publish_model(s, model_info_json(s, rt));
    publish_stats(s);
    return 0;
}

int wisp_serve_startup_remote(wisp_server *s, wisp_err *err)
{
    wisp_remote_load o = {
        .path = s->opts->model,
        .n_ctx = s->opts->n_ctx,
        .cli_urls = s->opts->remote,
        .cli_kind = s->opts->remote_kind,
        .cli_model = s->opts->remote_model,
        .cli_key_env = s->opts->remote_key_env,
    };
    return install_remote(s, &o, err);
}

static void load_remote(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    const json_t *p = wisp_job_params(job);
    const json_t *v = json_object_get(p, "n_ctx");
    wisp_remote_load o = {
        .remote = json_object_get(p, "remote"),
        .path = json_string_value(json_object_get(p, "path")),
        .n_ctx = v ? (int)json_integer_value(v) : s->opts->n_ctx,
    };
    wisp_err err = {0};
    int rc = install_remote(s, &o, &err);
    if (rc) {
        WISP_LOGE("model/load: %s", err.msg);
        wisp_job_error(job,
                       err.code == WISP_E_INVALID ? WISP_RPC_INVALID_PARAMS
                                                  : WISP_RPC_MODEL_LOAD_FAILED,
                       err.msg, NULL);
        return;
    }
    wisp_job_reply(job, model_info_json(s, s->runtime));
}
