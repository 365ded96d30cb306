/*
 * step.c - one scheduler iteration (wisp_sched_step, sched.h).
 *
 * Order within a step, and why:
 *   1. New requests join the waiting queue; cancelled requests end here, so
 *      their blocks are free before anything is allocated.
 *   2. Decodes first: every running sequence with one pending token gets a
 *      slot, oldest first. When the pool is out of blocks, the NEWEST
 *      running sequence is preempted (it has the least work to redo) and
 *      requeued at the front; this never fails a request.
 *   3. Prefill chunks of running sequences, then admissions from the queue
 *      head (first come, first served within a priority; the head is never
 *      skipped, so a large prompt is not starved by small ones), within the
 *      step's token budget and the free blocks. An admission first attaches
 *      the prompt's cached prefix.
 *   2'. Instead of 2 and 3, prefill first: when every running sequence is
 *      decoding, the last step was not one of these, and the queue head is
 *      a new generate request whose uncached rest fits prefill_first_tokens,
 *      the step holds only new prompts (from the head, while they fit whole)
 *      and samples their first tokens. A mixed step of D decodes and a
 *      P-token prompt takes about as long as the two apart, so the prompt
 *      waits for P rows instead of D + P, and each decode waits for at most
 *      one such step, since the next step is always decodes first. A prompt
 *      that does not fit keeps its attached prefix for step 3.
 *   A head that waits for blocks holds its attached prefix from one step to
 *   the next, so the cache is asked once per admission: it is not asked at
 *   all while no block is available (the smallest chunk needs one), and the
 *   held blocks go back to the pool before any allocation would come up
 *   short (a running decode, a prefill chunk, the new head's admission), so
 *   holding never costs a preemption or another request's admission.
 *   4. One engine forward. If it is stopped (a request of the batch was
 *      cancelled mid-step), every sequence is rolled back to where it was;
 *      on an engine error the batch's requests end with that error.
 *   5. Results: computed blocks enter the prefix cache, evaluate requests
 *      get their logits, generate requests sample and report a token.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sched/sched_int.h"

static bool cancelled(const wisp_sched_req *r)
{
    return r->d.is_cancelled && r->d.is_cancelled(r->d.ud);
}

static void finish_cancelled(wisp_sched *s, wisp_sched_req *r)
{
    wisp_err err;
    wisp_err_set(&err, WISP_E_CANCELLED, "request %llu cancelled", (unsigned long long)r->id);
    wisp_sched_end_request(s, r, WISP_E_CANCELLED, WISP_SCHED_FINISH_CANCELLED, &err);
}

static void poll_cancellations(wisp_sched *s)
{
    for (int i = s->n_running - 1; i >= 0; i--) {
        wisp_sched_req *r = s->running[i];
        if (cancelled(r)) {
            wisp_sched_remove_running(s, i);
            finish_cancelled(s, r);
        }
    }
    for (int i = s->n_waiting - 1; i >= 0; i--) {
        wisp_sched_req *r = s->waiting[i];
        if (cancelled(r)) {
            wisp_sched_remove_waiting(s, i);
            finish_cancelled(s, r);
        }
    }
}

/* Polled by the engine between layers. */
static bool should_stop(void *ud)
{
    wisp_sched *s = ud;
    for (int k = 0; k < s->n_batch; k++)
        if (cancelled(s->breqs[k]))
            return true;
    return false;
}

static int running_index(const wisp_sched *s, const wisp_sched_req *r)
{
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == r)
            return i;
    return -1;
}

static void end_running(wisp_sched *s, wisp_sched_req *r, int status, wisp_sched_finish why,
                        const wisp_err *err)
{
    int i = running_index(s, r);
    if (i >= 0)
        wisp_sched_remove_running(s, i);
    wisp_sched_end_request(s, r, status, why, err);
}

/* Frees the blocks of running[v] and requeues it (at the front of its
 * priority) to be recomputed from its tokens: prompt + generated so far. */
static void preempt(wisp_sched *s, int v)
{
    wisp_sched_req *r = s->running[v];
    wisp_sched_remove_running(s, v);
    wisp_kv_seq_release(s->kv, &r->seq);
    r->preempted = true;
    r->preemptions++;
    s->preemptions++;
    WISP_LOGD("sched: preempted request %llu (%d tokens)", (unsigned long long)r->id, r->n_tokens);
    wisp_sched_enqueue(s, r);
}

static void add_to_batch(wisp_sched *s, wisp_sched_req *r, int n)
{
    r->step_pos0 = r->seq.n_tokens - n;
    r->step_n = n;
    s->breqs[s->n_batch++] = r;
}

/* Releases the prefix held by every waiting request but keep (which may be
 * NULL). A held prefix only saves asking the cache again; it must never
 * cost a running sequence a block or the head its admission, so any
 * allocation that comes up short gives the held blocks back to the pool
 * first (cached-only again, reclaimable by the LRU as before). Returns
 * whether anything was released. */
static bool unpin_waiting(wisp_sched *s, const wisp_sched_req *keep)
{
    bool any = false;
    for (int i = 0; i < s->n_waiting; i++) {
        wisp_sched_req *w = s->waiting[i];
        if (w != keep && w->attached) {
            w->attached = false;
            wisp_kv_seq_release(s->kv, &w->seq);
            any = true;
        }
    }
    return any;
}

/* Reserves slots for up to want of r's pending tokens, halving the chunk
 * while the pool is short (after taking back the prefixes other requests
 * hold while they wait). Returns the tokens reserved (0: none fit) or a
 * negative code with err set. */
static int reserve_chunk(wisp_sched *s, wisp_sched_req *r, int want, wisp_err *err)
{
    for (int n = want; n > 0; n /= 2) {
        int rc = wisp_kv_seq_reserve(s->kv, &r->seq, r->tokens + r->seq.n_tokens, n, err);
        if (rc == WISP_E_BUSY && unpin_waiting(s, r))
            rc = wisp_kv_seq_reserve(s->kv, &r->seq, r->tokens + r->seq.n_tokens, n, err);
        if (rc == 0)
            return n;
        if (rc != WISP_E_BUSY)
            return rc;
    }
    return 0;
}

static int schedule_decodes(wisp_sched *s)
{
    int used = 0;
    wisp_err err = {0};
    for (int i = 0; i < s->n_running; i++) {
        wisp_sched_req *r = s->running[i];
        if (r->n_tokens - r->seq.n_tokens != 1)
            continue;
        for (;;) {
            int rc = wisp_kv_seq_reserve(s->kv, &r->seq, r->tokens + r->n_tokens - 1, 1, &err);
            if (rc == 0) {
                add_to_batch(s, r, 1);
                used++;
                break;
            }
            if (rc != WISP_E_BUSY) {
                wisp_sched_remove_running(s, i--);
                wisp_sched_end_request(s, r, rc, WISP_SCHED_FINISH_ERROR, &err);
                break;
            }
            /* A waiting request's held prefix goes before any preemption. */
            if (unpin_waiting(s, NULL))
                continue;
            /* The newest is last and not scheduled yet (we go oldest first). */
            bool self = s->running[s->n_running - 1] == r;
            preempt(s, s->n_running - 1);
            if (self) {
                i--;
                break;
            }
        }
    }
    return used;
}

/* Chunk size for r within the step's budgets. */
static int chunk_for(const wisp_sched_req *r, int budget, int eval_budget)
{
    int want = r->n_tokens - r->seq.n_tokens;
    if (want > budget)
        want = budget;
    if (r->d.evaluate_only && want > eval_budget)
        want = eval_budget;
    return want;
}

/* Moves the queue head to running, where it joins the step (n tokens). */
static void admit_head(wisp_sched *s, int reused, int n)
{
    wisp_sched_req *r = s->waiting[0];
    wisp_sched_remove_waiting(s, 0);
    s->running[s->n_running++] = r;
    if (!r->admitted_once) {
        r->admitted_once = true;
        r->t_admit = wisp_now_ms();
        s->admitted++;
        s->queue_wait_ms += r->t_admit - r->t_submit;
        r->cached_tokens = reused;
    }
    r->preempted = false;
    add_to_batch(s, r, n);
}

/* Attaches the cached prefix of r (the queue head), or takes over the one
 * it holds from an earlier attempt. Returns the tokens reused or <0. */
static int attach_head(wisp_sched *s, wisp_sched_req *r, wisp_err *err)
{
    if (r->attached) {
        r->attached = false;
        return r->attach_reused;
    }
    /* The last token is always computed: its logits are needed. An
     * evaluate request reuses only positions whose logits it has had. */
    int max_reuse = r->n_tokens - 1;
    if (r->d.evaluate_only && max_reuse > r->n_logits_done)
        max_reuse = r->n_logits_done;
    return wisp_kv_seq_attach_prefix(s->kv, &r->seq, r->tokens, r->n_tokens, max_reuse, err);
}

/* Keeps r's attached prefix (reused tokens) for its next admission
 * attempt, so that a head waiting for blocks asks the cache once. */
static void hold_prefix(wisp_sched_req *r, int reused)
{
    r->attached = true;
    r->attach_reused = reused;
}

/* Whether admitting r (the queue head) could find a block, which is when
 * its cache lookup is worth making: the smallest chunk takes one block (a
 * new one, or the copy of a cut cached one) and attaching only takes
 * blocks away, so with none available the lookup would be wasted (and
 * counted) on every step r waits. A prefix r already holds was looked up. */
static bool head_may_fit(wisp_sched *s, const wisp_sched_req *r)
{
    if (r->attached || wisp_kv_available_blocks(s->kv) > 0)
        return true;
    return unpin_waiting(s, r) && wisp_kv_available_blocks(s->kv) > 0;
}

/* A request that has never run and wants a first token. */
static bool fresh_generate(const wisp_sched_req *r)
{
    return !r->admitted_once && !r->d.evaluate_only && r->n_generated < r->d.max_tokens;
}

/* Whether this step may be prefill-first: a fresh request heads the queue
 * and has room, the running sequences all decode (a prompt still being
 * absorbed came first and keeps its turn), and the last step was not
 * prefill-first (the bound on how long a decode waits). */
static bool prefill_first_allowed(const wisp_sched *s)
{
    if (s->prefill_first_tokens <= 0 || s->last_prefill_first || s->n_waiting == 0 ||
        s->n_running == 0 || s->n_running >= s->max_running || !fresh_generate(s->waiting[0]))
        return false;
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i]->n_tokens - s->running[i]->seq.n_tokens != 1)
            return false;
    return true;
}

/* Admits fresh requests from the queue head whose uncached rest fits the
 * prefill-first budget whole. Returns how many (0: run a normal step; the
 * head may then hold its attached prefix for schedule_prefills). */
static int schedule_prefill_first(wisp_sched *s)
{
    int budget = s->prefill_first_tokens, admitted = 0;
    wisp_err err = {0};
    while (s->n_waiting > 0 && s->n_running < s->max_running && fresh_generate(s->waiting[0])) {
        wisp_sched_req *r = s->waiting[0];
        /* Past the first, only what fits even uncached: no later step in
         * this one would take over an attachment. */
        if (admitted > 0 && r->n_tokens > budget)
            break;
        if (!head_may_fit(s, r))
            break;
        int reused = attach_head(s, r, &err);
        if (reused < 0) {
            wisp_sched_remove_waiting(s, 0);
            wisp_sched_end_request(s, r, reused, WISP_SCHED_FINISH_ERROR, &err);
            continue;
        }
        int n = r->n_tokens - reused;
        int rc = n <= budget ? wisp_kv_seq_reserve(s->kv, &r->seq, r->tokens + reused, n, &err)
                             : WISP_E_BUSY;
        if (rc == WISP_E_BUSY) {
            hold_prefix(r, reused); /* for this step's prefills or a later one */
            break;
        }
        if (rc != 0) {
            wisp_sched_remove_waiting(s, 0);
            wisp_sched_end_request(s, r, rc, WISP_SCHED_FINISH_ERROR, &err);
            continue;
        }
        admit_head(s, reused, n);
        budget -= n;
        admitted++;
    }
    if (admitted > 0)
        WISP_LOGD("sched: prefill-first step: %d new prompts, %d tokens, %d decodes wait", admitted,
                  s->prefill_first_tokens - budget, s->n_running - admitted);
    return admitted;
}

static void schedule_prefills(wisp_sched *s, int budget)
{
    int eval_budget = s->max_eval_tokens;
    wisp_err err = {0};
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        wisp_sched_req *r = s->running[i];
        if (r->n_tokens - r->seq.n_tokens < 2)
            continue; /* scheduled as a decode already */
        int want = chunk_for(r, budget, eval_budget);
        if (want <= 0)
            continue;
        int n = reserve_chunk(s, r, want, &err);
        if (n < 0) {
            wisp_sched_remove_running(s, i--);
            wisp_sched_end_request(s, r, n, WISP_SCHED_FINISH_ERROR, &err);
            continue;
        }
        if (n == 0)
            continue;
        add_to_batch(s, r, n);
        budget -= n;
        if (r->d.evaluate_only)
            eval_budget -= n;
    }
    while (s->n_waiting > 0 && s->n_running < s->max_running && budget > 0) {
        wisp_sched_req *r = s->waiting[0];
        if (!r->d.evaluate_only && r->n_generated >= r->d.max_tokens) {
            wisp_sched_remove_waiting(s, 0); /* max_tokens 0: nothing to compute */
            wisp_sched_end_request(s, r, 0, WISP_SCHED_FINISH_LENGTH, NULL);
            continue;
        }
        if (r->d.evaluate_only && eval_budget <= 0)
            break;
        if (!head_may_fit(s, r))
            break; /* wait for blocks; keep FCFS */
        int reused = attach_head(s, r, &err);
        int want = chunk_for(r, budget, eval_budget);
        int n = reused < 0 ? reused : reserve_chunk(s, r, want, &err);
        if (n == 0 && reused > 0 && s->n_running == 0) {
            /* The prefix pins the blocks the rest would need and nothing
             * running will free more: recompute it rather than wait forever. */
            wisp_kv_seq_release(s->kv, &r->seq);
            reused = 0;
            n = reserve_chunk(s, r, want, &err);
        }
        if (n < 0) {
            wisp_sched_remove_waiting(s, 0);
            wisp_sched_end_request(s, r, n, WISP_SCHED_FINISH_ERROR, &err);
            continue;
        }
        if (n == 0) {
            hold_prefix(r, reused); /* wait for blocks; keep FCFS */
            break;
        }
        admit_head(s, reused, n);
        budget -= n;
        if (r->d.evaluate_only)
            eval_budget -= n;
    }
}

/* ------------------------------------------------------------ results */

static void deliver(wisp_sched *s, wisp_sched_req *r, float *logits)
{
    int V = s->n_vocab;
    wisp_kv_seq_commit(s->kv, &r->seq, r->seq.n_tokens);
    bool done = r->seq.n_computed == r->n_tokens;
    if (r->d.evaluate_only) {
        for (int a = 0; a < r->step_n; a++) {
            int pos = r->step_pos0 + a;
            if (pos < r->n_logits_done)
                continue; /* recomputed after a preemption: already delivered */
            if (r->t_first == 0)
                r->t_first = wisp_now_ms();
            r->d.on_logits(r->d.ud, pos, logits + (size_t)a * V, V);
            r->n_logits_done = pos + 1;
        }
        if (done)
            end_running(s, r, 0, WISP_SCHED_FINISH_EVALUATED, NULL);
        return;
    }
    if (!done)
        return; /* a prefill chunk short of the prompt's end */
    int32_t tok = r->d.sample(r->d.ud, logits, V);
    wisp_err err;
    if (tok < 0 || tok >= V) {
        wisp_err_set(&err, WISP_E_INTERNAL, "the sampler chose token %d, outside [0, %d)", tok, V);
        end_running(s, r, WISP_E_INTERNAL, WISP_SCHED_FINISH_ERROR, &err);
        return;
    }
    if (wisp_sched_push_token(r, tok) != 0) {
        wisp_err_set(&err, WISP_E_NOMEM, "no memory for generated tokens");
        end_running(s, r, WISP_E_NOMEM, WISP_SCHED_FINISH_ERROR, &err);
        return;
    }
    r->n_generated++;
    if (r->t_first == 0)
        r->t_first = wisp_now_ms();
    if (!r->d.on_token(r->d.ud, tok))
        end_running(s, r, 0, WISP_SCHED_FINISH_STOP, NULL);
    else if (r->n_generated >= r->d.max_tokens)
        end_running(s, r, 0, WISP_SCHED_FINISH_LENGTH, NULL);
}

static void run_batch(wisp_sched *s)
{
    int V = s->n_vocab;
    size_t off = 0;
    for (int k = 0; k < s->n_batch; k++) {
        wisp_sched_req *r = s->breqs[k];
        bool all = r->d.evaluate_only;
        s->bseqs[k] = (wisp_batch_seq){
            .tokens = r->tokens + r->step_pos0,
            .n_tokens = r->step_n,
            .pos0 = r->step_pos0,
            .block_table = r->seq.blocks,
            .n_blocks = r->seq.n_blocks,
            .all_logits = all,
            .logits = s->logits + off,
        };
        off += (size_t)(all ? r->step_n : 1) * (size_t)V;
        if (r->step_n > 1 || r->n_generated == 0)
            s->prefill_tokens += (uint64_t)r->step_n;
        else
            s->decode_tokens++;
    }
    wisp_batch batch = {.seqs = s->bseqs,
                        .n_seqs = s->n_batch,
                        .should_stop = should_stop,
                        .stop_ud = s};
    wisp_err err = {0};
    int rc = s->engine->ops->forward(s->engine->ctx, &batch, &err);
    if (rc == WISP_E_CANCELLED) {
        /* This step's KV is undefined: forget it; the cancelled requests
         * end at the next step's poll, the others redo the step. */
        for (int k = 0; k < s->n_batch; k++)
            wisp_kv_seq_truncate(s->kv, &s->breqs[k]->seq, s->breqs[k]->step_pos0);
    } else if (rc != 0) {
        WISP_LOGE("sched: engine step failed: %s", err.msg);
        for (int k = 0; k < s->n_batch; k++)
            end_running(s, s->breqs[k], rc, WISP_SCHED_FINISH_ERROR, &err);
    } else {
        for (int k = 0; k < s->n_batch; k++)
            deliver(s, s->breqs[k], s->bseqs[k].logits);
    }
    s->n_batch = 0;
}

bool wisp_sched_step(wisp_sched *s)
{
    wisp_sched_drain_inbox(s);
    if (s->n_running == 0 && s->n_waiting == 0)
        return false;
    poll_cancellations(s);
    s->n_batch = 0;
    bool tried = prefill_first_allowed(s);
    bool first = tried && schedule_prefill_first(s) > 0;
    if (!first) {
        int used = schedule_decodes(s);
        schedule_prefills(s, s->step_tokens - used);
    }
    /* Only the head may hold a prefix: one that lost its place (to a
     * preempted or higher-priority request) gives its blocks back. */
    unpin_waiting(s, s->n_waiting > 0 ? s->waiting[0] : NULL);
    s->last_prefill_first = first;
    if (s->n_batch == 0 && s->n_running > 0) {
        /* Every running sequence is stuck in prefill for want of blocks:
         * give the newest one's blocks to the others. A lone sequence always
         * fits (submit refuses what cannot), so this is only for safety. */
        if (s->n_running > 1) {
            preempt(s, s->n_running - 1);
        } else {
            wisp_err err;
            wisp_err_set(&err, WISP_E_INTERNAL, "KV pool cannot hold the request");
            wisp_sched_req *r = s->running[0];
            wisp_sched_remove_running(s, 0);
            wisp_sched_end_request(s, r, WISP_E_INTERNAL, WISP_SCHED_FINISH_ERROR, &err);
        }
    }
    if (s->n_batch > 0) {
        /* Counted with steps, after the batch (whose requests may end in
         * it), so that every snapshot divides matching sums. */
        const int n = s->n_batch;
        uint64_t tokens = 0;
        for (int k = 0; k < n; k++)
            tokens += (uint64_t)s->breqs[k]->step_n;
        run_batch(s);
        s->steps++;
        s->batch_seqs += (uint64_t)n;
        s->batch_tokens += tokens;
    }
    wisp_sched_update_snapshot(s);
    if (s->n_running > 0 || s->n_waiting > 0)
        return true;
    pthread_mutex_lock(&s->mu);
    bool more = s->inbox_head != NULL;
    pthread_mutex_unlock(&s->mu);
    return more;
}
