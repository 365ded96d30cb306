/*
 * stream.h - layer streaming for the CPU engine: a bounded weight arena.
 *
 * When a stage's weights may not all be resident, its layers' matrices
 * stay where the model keeps them (the file mapping) and are copied into
 * one of two layer buffers just ahead of their use: a copy thread fills
 * the buffer of layer l+1 while layer l computes from the other (double
 * buffering), and the buffer a finished layer frees takes the layer after
 * next, wrapping around to the stage's first layers for the next step. The
 * arena is allocated once, two of the stage's largest layers, and is all
 * the weight memory the stream holds, so it never exceeds the budget.
 *
 * Which buffer takes which layer when is engine/stream_plan.h's schedule,
 * the one the CUDA engine drives with host-to-device copies; on the CPU it
 * is how streaming is tested: the kernels read the copies, so logits are
 * bit for bit those of the resident run.
 * Private to src/engine/cpu.
 */
#ifndef WISP_CPU_STREAM_H
#define WISP_CPU_STREAM_H

#include <stdint.h>

#include "common/err.h"
#include "model/model.h"

typedef struct wisp_cpu_stream wisp_cpu_stream;

typedef struct wisp_cpu_stream_stats {
    uint64_t arena_bytes;    /* resident: the two layer buffers */
    uint64_t streamed_bytes; /* copied into them so far */
    double copy_ms;          /* time the copies took */
    double wait_ms;          /* time compute waited for a copy */
} wisp_cpu_stream_stats;

/* Bytes layer L's matrices take in one layer buffer. */
uint64_t wisp_cpu_stream_layer_bytes(const wisp_layer_weights *L);

/* 0 when budget holds two of the largest layers of [begin, end), else
 * WISP_E_INVALID with the numbers: the check wisp_cpu_stream_create makes,
 * for planning without building. */
int wisp_cpu_stream_check_budget(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                                 wisp_err *err);

/* Streams layers [begin, end) of w through at most budget bytes. Returns
 * WISP_E_INVALID when the budget holds fewer than two of the largest
 * layers (the caller's budget can never work), WISP_E_NOMEM, or 0; the
 * copy thread starts on the first layers at once. */
int wisp_cpu_stream_create(const wisp_model_weights *w, int begin, int end, uint64_t budget,
                           wisp_cpu_stream **out, wisp_err *err);
void wisp_cpu_stream_destroy(wisp_cpu_stream *s);

/* Layer `layer`'s weights as computed from: its matrices in the arena
 * (waiting for their copy if it is not done), the rest as in w. Valid
 * until wisp_cpu_stream_release(s, layer). Layers are acquired one at a
 * time, in any order (in order is what the prefetching expects). */
const wisp_layer_weights *wisp_cpu_stream_acquire(wisp_cpu_stream *s, int layer);
/* Done with layer: its buffer may now take the layer after next. */
void wisp_cpu_stream_release(wisp_cpu_stream *s, int layer);

void wisp_cpu_stream_get_stats(wisp_cpu_stream *s, wisp_cpu_stream_stats *out);

#endif
