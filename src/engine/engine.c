/*
 * engine.c - engine construction from a model, and destruction.
 *
 * The engine-independent half of engine.h: it unpacks a wisp_model into
 * the config and weights an engine computes with, and frees any engine
 * through its vtable. Kept apart from engine_cpu.c so the CPU engine itself
 * depends only on a config and tensors (tests build those in memory).
 */
#include "engine/engine.h"

#include <stdlib.h>

#include "engine/cpu/engine_cpu.h"

int wisp_engine_cpu_create(const wisp_model *model, const wisp_engine_opts *opts, wisp_engine **out,
                           wisp_err *err)
{
    *out = NULL;
    if (!model)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cpu engine: no model");
    const wisp_model_weights *w = wisp_model_get_weights(model);
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL,
                            "cpu engine: %s was opened vocabulary-only and has no weights",
                            wisp_model_get_path(model));
    int rc = wisp_engine_cpu_create_from(wisp_model_get_config(model), w, opts, out, err);
    if (rc == 0)
        (*out)->model = model;
    return rc;
}

void wisp_engine_destroy(wisp_engine *e)
{
    if (!e)
        return;
    if (e->ops && e->ops->destroy)
        e->ops->destroy(e->ctx);
    free(e);
}

void wisp_engine_opts_resolve(const wisp_model_config *c, const wisp_engine_opts *in,
                              wisp_engine_opts *o)
{
    *o = *in;
    if (o->block_size <= 0)
        o->block_size = 16;
    if (o->max_batch_tokens <= 0)
        o->max_batch_tokens = 512;
    if (o->max_seqs <= 0)
        o->max_seqs = 1;
    if (o->layer_end <= 0)
        o->layer_end = c->n_layers;
    if (o->n_blocks <= 0) {
        /* One training context (at least one full batch) when unset. */
        int ctx = c->n_ctx_train > 0 ? c->n_ctx_train : 2048;
        if (ctx < o->max_batch_tokens)
            ctx = o->max_batch_tokens;
        o->n_blocks = (ctx + o->block_size - 1) / o->block_size;
    }
}
