/*
 * warmup.h - making a freshly built engine fast from its first request.
 *
 * A model's weights are a file mapping: until a page is read the kernel
 * has not loaded it, and an engine's first step also pays its lazy set-up
 * (thread pool start, allocator first touches, device kernels loaded on
 * first launch). Warming up pays both at load time instead of in the
 * first editor request's latency: every weight page is read once, then
 * one token runs through every layer.
 */
#ifndef WISP_ENGINE_WARMUP_H
#define WISP_ENGINE_WARMUP_H

#include "common/err.h"
#include "engine/engine.h"
#include "model/model.h"

/* Reads every page of every tensor of model, then runs token at position
 * 0 through e (KV block 0 of its pool is written: call it before anything
 * keeps data there). Returns 0 or the engine's error. */
int wisp_engine_warmup(wisp_engine *e, const wisp_model *model, int32_t token, wisp_err *err);

#endif
