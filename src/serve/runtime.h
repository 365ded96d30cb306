/*
 * runtime.h - a loaded model, ready to serve: weights, tokenizer, engine,
 * KV cache and scheduler, owned by the engine thread.
 *
 * model/load builds one; model/unload (and a second model/load, and
 * shutdown) closes it. Closing finishes every outstanding request through
 * the scheduler (each gets its one answer) before anything is freed.
 * Nothing here is touched by the loop thread: what it needs (model info,
 * statistics) is published through wisp_server snapshots.
 */
#ifndef WISP_SERVE_RUNTIME_H
#define WISP_SERVE_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/device_map.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/placement.h"
#include "sched/sched.h"
#include "serve/file_stamp.h"
#include "tokenizer/tokenizer.h"

/* The largest context a model is opened with (tokens); --ctx and the
 * n_ctx params stop there too. */
#define WISP_RUNTIME_MAX_CTX (1 << 24)

typedef struct wisp_runtime_opts {
    const char *path;
    int n_ctx;          /* 0: min(n_ctx_train, 4096) */
    int n_threads;      /* 0: physical cores */
    const char *device; /* "auto", "cpu", "cuda" */
    /* Set: exactly this placement (layer ranges per device, streaming);
     * device is then ignored. */
    wisp_device_map device_map;
    int64_t kv_cache_mb; /* 0: default from the context size and free memory */
    wisp_kv_type kv_type;
    bool f16_as_bf16;      /* CPU: F16 / BF16 weights computed in BF16 (lossy) */
    int64_t host_cache_mb; /* second-tier prefix cache in host RAM; <0: default */
    const char *cache_dir; /* persistent prefix cache; NULL: none */
    int max_running;       /* 0: default */
    int max_queued;        /* 0: default */
    bool skip_warmup;      /* true: no warm-up step after the load */
    /* Progress of long loads; may be NULL. */
    void (*progress)(void *ud, double fraction, const char *message);
    void *progress_ud;
} wisp_runtime_opts;

struct wisp_remote;

typedef struct wisp_runtime {
    /* Generation runs on remote servers (serve/remote.h); then engine and
     * sched are NULL, and model and tok are the local tokenizer's, or NULL
     * when the servers tokenize. */
    struct wisp_remote *remote;
    wisp_model *model;
    wisp_tokenizer *tok;
    wisp_engine *engine; /* NULL for a vocab-only model */
    wisp_sched *sched;   /* NULL for a vocab-only model */
    const wisp_model_config *cfg;
    int n_ctx;
    int n_vocab;
    char device[16];                         /* the engine in use: "cpu", "cuda" */
    char device_note[WISP_ERR_MSG_MAX + 64]; /* why auto chose what it chose, if it matters */
    int64_t kv_bytes;
    int n_kv_blocks;
    int block_size;
    wisp_placement placement;       /* where the layers live (engine/factory.h) */
    wisp_engine_stats engine_stats; /* weights and scratch the engine holds */
    bool f16_as_bf16;               /* as requested; engine_stats says where it applied */
    double load_ms;
    double warmup_ms;      /* the warm-up's share of load_ms; < 0: skipped */
    wisp_file_stamp stamp; /* the model file as it was when opened */
    bool stale;            /* the file changed: nothing reads the weights any more */
    char stale_msg[WISP_ERR_MSG_MAX];
} wisp_runtime;

/* The context a model is opened with: requested when > 0, else its
 * training context capped at 4096 tokens. model/plan uses it too. */
int wisp_runtime_n_ctx(const wisp_model_config *c, int requested);

/* Opens the model at o->path with everything needed to serve it. Returns 0,
 * or a negative wisp_code with err naming the problem. */
int wisp_runtime_open(const wisp_runtime_opts *o, wisp_runtime **out, wisp_err *err);
/* Finishes outstanding requests (their on_finish runs here) and frees all. */
void wisp_runtime_close(wisp_runtime *rt);

/* model/info's result (new reference). */
json_t *wisp_runtime_info(const wisp_runtime *rt);

#endif
