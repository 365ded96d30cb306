/*
 * cuda_model.c - the CUDA engine from a loaded wisp_model.
 *
 * Kept apart from engine_cuda.c so that programs building a model in memory
 * (the GPU tests, synthesizers) link the engine without the model loader.
 */
#include "engine/cuda/engine_cuda.h"

int wisp_engine_cuda_create(const wisp_model *model, const wisp_engine_opts *opts,
                            wisp_engine **out, wisp_err *err)
{
    return wisp_engine_cuda_create_on(model, -1, opts, out, err);
}

int wisp_engine_cuda_create_on(const wisp_model *model, int device, const wisp_engine_opts *opts,
                               wisp_engine **out, wisp_err *err)
{
    *out = NULL;
    if (!model)
        return wisp_err_set(err, WISP_E_NO_MODEL, "cuda engine: no model");
    const wisp_model_weights *w = wisp_model_get_weights(model);
    if (!w)
        return wisp_err_set(err, WISP_E_NO_MODEL,
                            "cuda engine: %s was opened vocabulary-only and has no weights",
                            wisp_model_get_path(model));
    int rc =
        wisp_engine_cuda_create_from_on(wisp_model_get_config(model), w, device, opts, out, err);
    if (rc == 0)
        (*out)->model = model;
    return rc;
}
