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
 * A block's bytes are the stages' bytes in stage order, which for CPU
 * stages is exactly one CPU engine's block: the chain is then named "cpu"
 * and the persistent prefix cache moves between placements.
 *
 * A placement of one stage (resident, or streaming its layers through
 * a weights budget) builds that device's engine directly, so the common
 * case pays nothing for this layer. A CUDA stage ("cuda" or "cuda:N")
 * takes any layer range on its device, its hidden state crossing through
 * host memory; streaming a CUDA stage's weights under a budget is refused
 * by the CUDA engine (WISP_E_UNSUPPORTED). CPU stages take any range and
 * budget.
 */
#ifndef WISP_ENGINE_STAGES_H
#define WISP_ENGINE_STAGES_H

#include "common/err.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/placement.h"

/* Builds the engine for placement p (the model must outlive it). opts are
 * the KV pool and batch limits every stage shares; opts->n_threads is the
 * CPU threads of each CPU stage. Fails with WISP_E_INVALID for stages that
 * do not cover the layers in order or a weights budget below two of a
 * stage's largest layers, WISP_E_DEVICE for a device without an engine in
 * this build, or the stage engine's own error. */
int wisp_engine_stages_create(const wisp_model *model, const wisp_placement *p,
                              const wisp_engine_opts *opts, wisp_engine **out, wisp_err *err);

#endif
