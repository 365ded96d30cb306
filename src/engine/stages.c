/*
 * stages.c - the engine of a placement: see stages.h.
 *
 * Each stage is an ordinary engine built for its layer range (opts
 * layer_begin/layer_end) on its device, with its own KV pool holding its
 * layers' rows of every block and, on the CPU, its own thread pool. The
 * chain owns one hidden-state buffer of max_batch_tokens rows that every
 * stage reads its input from and writes its output to (engine.h), so a
 * step is the stages' forwards in order and nothing else.
 *
 * A block's bytes (bytes_per_block, read_block, write_block) are the
 * stages' own, one after the other in stage order: each stage lays out its
 * layers K then V, layer by layer, so the concatenation is byte for byte
 * what one engine over all layers would write, and the host tier and the
 * persistent prefix cache hold the same data whatever the placement.
 */
#include "engine/stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if WISP_CUDA
#include "engine/cuda/engine_cuda.h"
#include "engine/cuda/range.h"
#endif

typedef struct stage {
    wisp_engine *e;
    char device[16];
    int layer_begin, layer_end;
} stage;

typedef struct stages_ctx {
    struct wisp_engine_ops ops; /* stages_ops with this chain's name */
    char name[64];
    int n;
    stage st[WISP_PLACE_MAX_STAGES];
    float *hidden; /* [max_batch_tokens][n_embd] */
    uint64_t hidden_bytes;
} stages_ctx;

/* ---------------------------------------------------------------- vtable */

static int stages_forward(void *ctx, const wisp_batch *batch, wisp_err *err)
{
    stages_ctx *c = ctx;
    wisp_batch b = *batch;
    b.hidden = c->hidden;
    for (int i = 0; i < c->n; i++) {
        const stage *s = &c->st[i];
        int rc = s->e->ops->forward(s->e->ctx, &b, err);
        if (rc) {
            if (rc != WISP_E_CANCELLED)
                wisp_err_prefix(err, "stage %d (%s, layers %d..%d)", i, s->device, s->layer_begin,
                                s->layer_end - 1);
            return rc;
        }
    }
    return 0;
}

static int stages_copy_block(void *ctx, int32_t dst, int32_t src, wisp_err *err)
{
    stages_ctx *c = ctx;
    for (int i = 0; i < c->n; i++) {
        int rc = c->st[i].e->ops->copy_block(c->st[i].e->ctx, dst, src, err);
        if (rc)
            return rc;
    }
    return 0;
}

static size_t stages_bytes_per_block(void *ctx)
{
    stages_ctx *c = ctx;
    size_t n = 0;
    for (int i = 0; i < c->n; i++)
        n += c->st[i].e->ops->bytes_per_block(c->st[i].e->ctx);
    return n;
}

static int stages_read_block(void *ctx, int32_t block, void *dst, wisp_err *err)
{
    stages_ctx *c = ctx;
    uint8_t *d = dst;
    for (int i = 0; i < c->n; i++) {
        const wisp_engine *e = c->st[i].e;
        int rc = e->ops->read_block(e->ctx, block, d, err);
        if (rc)
            return rc;
        d += e->ops->bytes_per_block(e->ctx);
    }
    return 0;
}

static int stages_write_block(void *ctx, int32_t block, const void *src, wisp_err *err)
{
    stages_ctx *c = ctx;
    const uint8_t *s = src;
    for (int i = 0; i < c->n; i++) {
        const wisp_engine *e = c->st[i].e;
        int rc = e->ops->write_block(e->ctx, block, s, err);
        if (rc)
            return rc;
        s += e->ops->bytes_per_block(e->ctx);
    }
    return 0;
}

static bool stages_reads_model_bytes(void *ctx, const void *data)
{
    const stages_ctx *c = ctx;
    for (int i = 0; i < c->n; i++) {
        const wisp_engine *e = c->st[i].e;
        if (!e->ops->reads_model_bytes || e->ops->reads_model_bytes(e->ctx, data))
            return true;
    }
    return false;
}

static void stages_get_stats(void *ctx, wisp_engine_stats *out)
{
    stages_ctx *c = ctx;
    memset(out, 0, sizeof *out);
    out->scratch_bytes = c->hidden_bytes;
    for (int i = 0; i < c->n && i < WISP_ENGINE_MAX_STAGES; i++) {
        const stage *s = &c->st[i];
        wisp_engine_stats one;
        memset(&one, 0, sizeof one);
        if (s->e->ops->get_stats)
            s->e->ops->get_stats(s->e->ctx, &one);
        out->kv_bytes += one.kv_bytes;
        out->scratch_bytes += one.scratch_bytes;
        out->weight_bytes += one.weight_bytes;
        out->weights_streaming |= one.weights_streaming;
        out->weights_streamed_bytes += one.weights_streamed_bytes;
        out->weights_copy_ms += one.weights_copy_ms;
        out->weights_wait_ms += one.weights_wait_ms;
        out->bf16_tensors += one.bf16_tensors;
        wisp_engine_stage_stats *o = &out->stages[out->n_stages++];
        snprintf(o->device, sizeof o->device, "%s", s->device);
        o->layer_begin = s->layer_begin;
        o->layer_end = s->layer_end;
        o->kv_bytes = one.kv_bytes;
        o->scratch_bytes = one.scratch_bytes;
        o->weight_bytes = one.weight_bytes;
        /* What the engine does, not what it was allowed: a GPU stage whose
         * budget holds all its layers keeps them resident and streams
         * none; a CPU stage with a budget always streams. */
        o->streamed = one.weights_streaming;
    }
}

static void stages_destroy(void *ctx)
{
    stages_ctx *c = ctx;
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        wisp_engine_destroy(c->st[i].e);
    free(c->hidden);
    free(c);
}

static const struct wisp_engine_ops stages_ops = {
    .name = "stages",
    .forward = stages_forward,
    .copy_block = stages_copy_block,
    .bytes_per_block = stages_bytes_per_block,
    .read_block = stages_read_block,
    .write_block = stages_write_block,
    .get_stats = stages_get_stats,
    .reads_model_bytes = stages_reads_model_bytes,
    .destroy = stages_destroy,
};

/* ---------------------------------------------------------------- build */

/* The chain's name: its stages' engine names in order, a run of one name
 * written once. It tags the block format of the persistent prefix cache,
 * so a chain of CPU engines is "cpu" (its blocks are byte for byte one CPU
 * engine's) while a GPU and the CPU together are "cuda+cpu". */
static void chain_name(stages_ctx *c)
{
    size_t at = 0;
    const char *prev = NULL;
    c->name[0] = 0;
    for (int i = 0; i < c->n && at < sizeof c->name; i++) {
        const char *nm = c->st[i].e->ops->name ? c->st[i].e->ops->name : "?";
        if (prev && strcmp(prev, nm) == 0)
            continue;
        int k = snprintf(c->name + at, sizeof c->name - at, "%s%s", prev ? "+" : "", nm);
        if (k > 0)
            at += (size_t)k;
        prev = nm;
    }
}

/* Builds the engine of one stage on its device. */
static int create_device_engine(const wisp_model *model, const wisp_place_stage *s,
                                const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    wisp_engine_opts o = *opts;
    o.layer_begin = s->layer_begin;
    o.layer_end = s->layer_end;
    o.weights_budget_bytes = s->weights_budget_bytes;
    if (strcmp(s->device, "cpu") == 0)
        return wisp_engine_cpu_create(model, &o, out, err);
#if WISP_CUDA
    if (strncmp(s->device, "cuda", 4) == 0) {
        /* "cuda" or "cuda:N": the engine makes its device current in every
         * call, so stages on different GPUs share this thread. */
        int index = -1;
        int rc = wisp_cuda_parse_device(s->device, &index, err);
        if (rc)
            return rc;
        return wisp_engine_cuda_create_on(model, index, &o, out, err);
    }
#endif
    return wisp_err_set(err, WISP_E_DEVICE, "placement: no engine for device \"%s\" in this build",
                        s->device);
}

/* Stages in order, touching, covering [0, n_layers). */
static int check_placement(const wisp_placement *p, int n_layers, wisp_err *err)
{
    if (p->n_stages < 1 || p->n_stages > WISP_PLACE_MAX_STAGES)
        return wisp_err_set(err, WISP_E_INVALID, "placement: %d stages (1..%d)", p->n_stages,
                            WISP_PLACE_MAX_STAGES);
    int at = 0;
    for (int i = 0; i < p->n_stages; i++) {
        const wisp_place_stage *s = &p->stages[i];
        if (s->layer_begin != at || s->layer_end <= s->layer_begin || s->layer_end > n_layers)
            return wisp_err_set(err, WISP_E_INVALID,
                                "placement: stage %d (%s) holds layers [%d, %d); it must start "
                                "at layer %d and hold at least one of the model's %d layers",
                                i, s->device, s->layer_begin, s->layer_end, at, n_layers);
        at = s->layer_end;
    }
    if (at != n_layers)
        return wisp_err_set(err, WISP_E_INVALID,
                            "placement: the stages hold layers [0, %d) but the model has %d", at,
                            n_layers);
    return 0;
}

int wisp_engine_stages_create(const wisp_model *model, const wisp_placement *p,
                              const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    *out = NULL;
    const wisp_model_config *cfg = wisp_model_get_config(model);
    int rc = check_placement(p, cfg->n_layers, err);
    if (rc)
        return rc;
    if (p->n_stages == 1)
        return create_device_engine(model, &p->stages[0], opts, out, err);

    stages_ctx *c = calloc(1, sizeof *c);
    wisp_engine *eng = calloc(1, sizeof *eng);
    if (!c || !eng) {
        free(c);
        free(eng);
        return wisp_err_set(err, WISP_E_NOMEM, "placement: out of memory");
    }
    for (int i = 0; i < p->n_stages; i++) {
        const wisp_place_stage *s = &p->stages[i];
        stage *st = &c->st[i];
        if ((rc = create_device_engine(model, s, opts, &st->e, err))) {
            wisp_err_prefix(err, "stage %d (%s, layers %d..%d)", i, s->device, s->layer_begin,
                            s->layer_end - 1);
            goto fail;
        }
        c->n = i + 1;
        snprintf(st->device, sizeof st->device, "%s", s->device);
        st->layer_begin = s->layer_begin;
        st->layer_end = s->layer_end;
    }
    /* Every stage resolved the same shared options; the chain runs them
     * all over the whole model. */
    eng->opts = c->st[0].e->opts;
    eng->opts.layer_begin = 0;
    eng->opts.layer_end = cfg->n_layers;
    eng->opts.weights_budget_bytes = 0;
    c->hidden_bytes = (uint64_t)eng->opts.max_batch_tokens * (uint64_t)cfg->n_embd * sizeof(float);
    c->hidden = malloc(c->hidden_bytes);
    if (!c->hidden) {
        rc =
            wisp_err_set(err, WISP_E_NOMEM, "placement: cannot allocate %llu bytes of hidden state",
                         (unsigned long long)c->hidden_bytes);
        goto fail;
    }
    chain_name(c);
    c->ops = stages_ops;
    c->ops.name = c->name;
    eng->ops = &c->ops;
    eng->ctx = c;
    eng->model = model;
    *out = eng;
    return 0;
fail:
    stages_destroy(c);
    free(eng);
    return rc;
}
