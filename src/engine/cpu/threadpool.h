/*
 * threadpool.h - a persistent pool of worker threads for the CPU engine.
 *
 * Threads are created once (no thread creation per token) and wait on a
 * barrier-style generation counter; wisp_threadpool_run() hands every thread
 * the same function with its own index and returns when all are done, which
 * is the shape every kernel here wants: split rows (or tiles) by index.
 */
#ifndef WISP_THREADPOOL_H
#define WISP_THREADPOOL_H

#include "common/err.h"

typedef struct wisp_threadpool wisp_threadpool;

/* fn(ctx, ith, nth) runs on nth threads, ith = 0..nth-1 (ith 0 is the caller). */
typedef void (*wisp_task_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means the number of physical cores. */
int wisp_threadpool_create(int n_threads, wisp_threadpool **out, wisp_err *err);
void wisp_threadpool_destroy(wisp_threadpool *tp);
int wisp_threadpool_size(const wisp_threadpool *tp);
/* Runs fn on every thread and waits for all of them. Not reentrant. */
void wisp_threadpool_run(wisp_threadpool *tp, wisp_task_fn fn, void *ctx);
/* Physical cores of this machine (>= 1). */
int wisp_cpu_physical_cores(void);

#endif
