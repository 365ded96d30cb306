/*
 * attention.h - causal attention over the paged KV pool.
 *
 * Each query row (one new token of one sequence, at position pos) attends
 * to positions [0, pos] of its own sequence, reading K and V through the
 * sequence's block table, so prefill, chunked prefill and decode are one
 * code path and a sequence's blocks may lie anywhere in the pool. The
 * softmax is computed online (running max and sum, rescaled per block, as
 * flash attention does): stable for any length, and no score buffer the
 * size of the context. Work items are (run of up to a tile of consecutive
 * rows of one sequence, kv head): the queries of a run's rows and of the
 * n_head/n_head_kv query heads of the group (GQA, MQA) share each K/V
 * block's conversion. A row's output does not depend on the other rows of
 * the job or on the thread count, bit for bit.
 * Private to src/engine/cpu.
 */
#ifndef WISP_ATTENTION_H
#define WISP_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cpu/kv_pool.h"
#include "engine/cpu/threadpool.h"

typedef struct wisp_attn_job {
    const wisp_kv_pool *kv;
    int layer;
    int n_rows;
    const int *row_pos;              /* [n_rows] position of each query row */
    const int32_t *const *row_table; /* [n_rows] block table of the row's sequence */
    const float *q;                  /* [n_rows][n_head * head_dim], RoPE applied */
    float *out;                      /* [n_rows][n_head * head_dim] */
    int n_head, n_head_kv;
    float scale;           /* 1/sqrt(head_dim) */
    float *scratch;        /* n_threads * wisp_attention_scratch_floats() */
    size_t scratch_floats; /* per thread */
} wisp_attn_job;

/* Floats of per-thread scratch for a shape. */
size_t wisp_attention_scratch_floats(int n_head, int n_head_kv, int head_dim, int block_size);

/* Runs the job on every thread of tp. */
void wisp_attention_run(wisp_threadpool *tp, const wisp_attn_job *job);

#endif
