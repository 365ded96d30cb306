/*
 * stages.c - building the engine of a placement: see stages.h.
 */
#include "engine/stages.h"

#include <string.h>

#if WISP_CUDA
#include "engine/cuda/engine_cuda.h"
#endif

/* Builds the engine of one device for the whole model. */
static int create_device_engine(const wisp_model *model, const char *device,
                                const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    if (strcmp(device, "cpu") == 0)
        return wisp_engine_cpu_create(model, opts, out, err);
#if WISP_CUDA
    if (strcmp(device, "cuda") == 0 || strcmp(device, "cuda:0") == 0)
        return wisp_engine_cuda_create(model, opts, out, err);
#endif
    return wisp_err_set(err, WISP_E_DEVICE, "placement: no engine for device \"%s\" in this build",
                        device);
}

int wisp_engine_stages_create(const wisp_model *model, const wisp_placement *p,
                              const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err)
{
    *out = NULL;
    const int n_layers = wisp_model_get_config(model)->n_layers;
    if (p->n_stages < 1 || p->n_stages > WISP_PLACE_MAX_STAGES)
        return wisp_err_set(err, WISP_E_INVALID, "placement: %d stages (1..%d)", p->n_stages,
                            WISP_PLACE_MAX_STAGES);
    const wisp_place_stage *s = &p->stages[0];
    if (p->n_stages == 1 && p->strategy == WISP_PLACE_RESIDENT && s->layer_begin == 0 &&
        s->layer_end == n_layers && s->weights_budget_bytes == 0)
        return create_device_engine(model, s->device, opts, out, err);
    return wisp_err_set(err, WISP_E_UNSUPPORTED,
                        "placement: %s over %d stages is not supported by this engine build",
                        wisp_place_strategy_name(p->strategy), p->n_stages);
}
