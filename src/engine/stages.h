/*
 * stages.h - one engine made of several: an engine instance per stage of
 * a placement (model/placement.h), each running its layer range on its
 * device and handing every token's hidden state to the next.
 *
 * The result is an ordinary wisp_engine: the scheduler, the paged KV cache
 * and the prefix cache use it unchanged. forward runs the stages in order;
 * copy_block, read_block and write_block act on every stage (each owns
 * the KV rows of its layers under the same block ids), bytes_per_block is
 * the sum of the stages', get_stats sums them and reports per stage.
 *
 * A placement with one resident stage builds that device's engine
 * directly, so the common case pays nothing for this layer.
 */
#ifndef WISP_ENGINE_STAGES_H
#define WISP_ENGINE_STAGES_H

#include "common/err.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/placement.h"

/* Builds the engine for placement p (the model must outlive it). opts are
 * the KV pool and batch limits every stage shares; opts->n_threads is the
 * CPU threads of each CPU stage. */
int wisp_engine_stages_create(const wisp_model *model, const wisp_placement *p,
                              const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err);

#endif
