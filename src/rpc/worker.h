/*
 * worker.h - the engine thread.
 *
 * One thread runs every WISP_M_ENGINE handler, in arrival order, and between
 * them an optional step hook: the scheduler's "advance every running
 * sequence by one step". The thread sleeps on a condition variable only
 * when no job is queued and the hook said it has nothing left to do; a new
 * job, a cancel flag being set, or stopping wakes it.
 *
 * A handler may keep its job (job.h) and answer it from a later step, so
 * the engine thread keeps many requests alive at once: the generate
 * handler only registers the job with the scheduler and returns, and the
 * step hook streams tokens with wisp_job_stream() and answers each job when
 * its sequence ends (or with -32800 once wisp_job_cancelled() says so).
 */
#ifndef WISP_RPC_WORKER_H
#define WISP_RPC_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "rpc/job.h"

typedef struct wisp_worker wisp_worker;

/* Called on the engine thread; returns true while it has more work (it is
 * then called again at once, after any newly queued jobs have run), false
 * when idle (the thread then sleeps until woken). */
typedef bool (*wisp_worker_step_fn)(void *ud);

/* Starts the thread. Returns 0, or <0 with err set. */
int wisp_worker_start(wisp_worker **out, wisp_err *err);

/* Installs the step hook (NULL removes it). Safe from any thread; from the
 * engine thread itself (a model/load handler installing the scheduler) it
 * takes effect at the next turn. */
void wisp_worker_set_step(wisp_worker *w, wisp_worker_step_fn step, void *ud);

/* Installs a function the engine thread runs last, as it stops (after
 * answering the jobs that never started): it frees engine-thread state. */
void wisp_worker_set_exit(wisp_worker *w, void (*fn)(void *ud), void *ud);
/* Engine thread (the step hook): makes the thread run a turn after ms
 * milliseconds even if nothing else wakes it, so an idle hook can act on
 * a deadline without polling. A later call replaces the earlier one;
 * ms < 0 cancels it. */
void wisp_worker_wake_after(wisp_worker *w, double ms);
/* Loop thread: queues a job for the engine thread. */
void wisp_worker_submit(wisp_worker *w, wisp_job *job);
/* Any thread: makes the engine thread run a turn (the step hook looks at
 * cancel flags). */
void wisp_worker_wake(wisp_worker *w);
/* Jobs queued and not yet started. */
size_t wisp_worker_queued(wisp_worker *w);

/* Stops and joins the thread. Jobs still queued are answered -31005
 * (through the mailbox, like every engine answer). Jobs a handler kept are
 * left unanswered: the dispatcher frees them. */
void wisp_worker_stop(wisp_worker *w);
void wisp_worker_free(wisp_worker *w);

#endif
