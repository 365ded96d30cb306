/*
 * sched_int.h - internals shared by sched.c (lifetime, submission, queues,
 * finishing) and step.c (one iteration). Not a public header.
 */
#ifndef WISP_SCHED_INT_H
#define WISP_SCHED_INT_H

#include <pthread.h>

#include "common/clock.h"
#include "sched/sched.h"

typedef struct wisp_sched_req {
    uint64_t id, arrival;
    wisp_sched_request_desc d; /* callbacks, ud, limits (prompt pointer not kept) */
    /* The tokens to hold in KV: the prompt, then every generated token. A
     * preempted request is recomputed from these. */
    int32_t *tokens;
    int n_tokens, cap_tokens;
    int n_prompt;
    int n_generated;
    int n_logits_done; /* evaluate: positions delivered */
    int cached_tokens; /* reused at first admission */
    int preemptions;
    bool admitted_once, preempted;
    /* The queue head's cached prefix is attached (attach_reused tokens) from
     * an earlier admission attempt, so that a head waiting for blocks asks
     * the cache once; admission takes it over. Given back when the head
     * loses its place or any allocation comes up short (step.c). */
    bool attached;
    int attach_reused;
    wisp_kv_seq seq;
    double t_submit, t_admit, t_first;
    struct wisp_sched_req *next; /* inbox link */
    /* This step's work: tokens [step_pos0, step_pos0 + step_n). */
    int step_pos0, step_n;
} wisp_sched_req;

struct wisp_sched {
    wisp_engine *engine;
    wisp_kv *kv;
    int n_vocab, n_ctx, max_running, max_queued, step_tokens, max_eval_tokens;
    int prefill_first_tokens; /* resolved: 0 = never */
    bool last_prefill_first;  /* the last step ran new prompts ahead of the decodes */

    /* Engine-thread state. waiting is sorted: priority (high first), then
     * preempted first, then arrival. running is in admission order, so the
     * newest (the preemption victim) is last. */
    wisp_sched_req **waiting;
    int n_waiting, cap_waiting;
    wisp_sched_req **running;
    int n_running;
    wisp_batch_seq *bseqs;  /* max_running */
    wisp_sched_req **breqs; /* request of each batch entry */
    float *logits;          /* (max_running + max_eval_tokens) * n_vocab */
    int n_batch;            /* entries of the step being built/run */

    /* Shared with other threads, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wisp_sched_req *inbox_head, *inbox_tail;
    int n_inbox;
    int n_waiting_shared; /* n_waiting as of the last step */
    bool woken, shutting_down;
    uint64_t next_id;
    wisp_sched_stats snap; /* stats as of the last step */
    uint64_t rejected_overloaded, rejected_too_large, submitted;

    /* Counters (engine thread). */
    uint64_t steps, finished, cancelled, failed, preemptions, prefill_tokens, decode_tokens;
    /* For status's averages: sequences and tokens over all steps, and the
     * requests admitted with their summed wait since submit. */
    uint64_t batch_seqs, batch_tokens, admitted;
    double queue_wait_ms;
};

/* Moves the inbox into the waiting queue. */
void wisp_sched_drain_inbox(wisp_sched *s);
/* Inserts r into the waiting queue at its place; on no memory, finishes it
 * with WISP_E_NOMEM instead (never lost silently). */
void wisp_sched_enqueue(wisp_sched *s, wisp_sched_req *r);
/* Ends a request: releases its blocks, calls on_finish, frees it. The
 * caller has already removed it from waiting/running. */
void wisp_sched_end_request(wisp_sched *s, wisp_sched_req *r, int status, wisp_sched_finish why,
                            const wisp_err *err);
void wisp_sched_remove_running(wisp_sched *s, int i);
void wisp_sched_remove_waiting(wisp_sched *s, int i);
/* Appends a generated token to r->tokens. Returns 0 or WISP_E_NOMEM. */
int wisp_sched_push_token(wisp_sched_req *r, int32_t token);
void wisp_sched_update_snapshot(wisp_sched *s);

#endif
