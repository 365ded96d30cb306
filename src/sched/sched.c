/*
 * sched.c - the scheduler's lifetime, request submission, the waiting queue
 * and finishing requests (sched.h). The iteration itself is in step.c.
 *
 * Submission is the one cross-thread path: submit validates and copies the
 * request on the caller's thread, then links it onto an inbox under a mutex
 * and signals the engine thread; the engine thread drains the inbox at the
 * start of each step. Everything else is touched by the engine thread only,
 * so the queues need no locks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/panic.h"
#include "sched/sched_int.h"

/* ------------------------------------------------------------ lifetime */

int wisp_sched_create(wisp_engine *engine, const wisp_sched_opts *opts, wisp_sched **out,
                      wisp_err *err)
{
    *out = NULL;
    const wisp_engine_opts *eo = &engine->opts;
    if (opts->n_vocab <= 0 || opts->n_ctx <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL, "sched: n_vocab (%d) and n_ctx (%d) must be > 0",
                            opts->n_vocab, opts->n_ctx);
    if (eo->max_seqs <= 0 || eo->max_batch_tokens <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL,
                            "sched: engine allows no batch (%d seqs, %d tokens)", eo->max_seqs,
                            eo->max_batch_tokens);
    wisp_sched *s = calloc(1, sizeof *s);
    if (!s)
        return wisp_err_set(err, WISP_E_NOMEM, "sched: no memory");
    s->engine = engine;
    s->n_vocab = opts->n_vocab;
    s->n_ctx = opts->n_ctx;
    s->step_tokens = opts->step_tokens > 0 && opts->step_tokens < eo->max_batch_tokens
                         ? opts->step_tokens
                         : eo->max_batch_tokens;
    s->max_running = opts->max_running > 0 && opts->max_running < eo->max_seqs ? opts->max_running
                                                                               : eo->max_seqs;
    /* Every running sequence must be able to decode in every step. */
    if (s->max_running > s->step_tokens)
        s->max_running = s->step_tokens;
    s->max_queued = opts->max_queued > 0 ? opts->max_queued : 256;
    s->max_eval_tokens = opts->max_eval_tokens > 0 ? opts->max_eval_tokens : 64;
    if (s->max_eval_tokens > s->step_tokens)
        s->max_eval_tokens = s->step_tokens;
    if (opts->prefill_first_tokens < 0)
        s->prefill_first_tokens = 0;
    else if (opts->prefill_first_tokens > 0 && opts->prefill_first_tokens < s->step_tokens)
        s->prefill_first_tokens = opts->prefill_first_tokens;
    else if (opts->prefill_first_tokens > 0)
        s->prefill_first_tokens = s->step_tokens;
    else
        s->prefill_first_tokens = s->step_tokens / 4 > 0 ? s->step_tokens / 4 : 1;
    s->next_id = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    wisp_kv_opts ko = {.model_identity = opts->model_identity,
                       .prefix_cache = !opts->no_prefix_cache,
                       .host_bytes = opts->host_cache_bytes,
                       .cache_dir = opts->cache_dir,
                       .n_vocab = opts->n_vocab};
    int rc = wisp_kv_create(engine, &ko, &s->kv, err);
    if (rc) {
        wisp_sched_destroy(s);
        return wisp_err_prefix(err, "sched");
    }
    size_t n_logits = (size_t)(s->max_running + s->max_eval_tokens) * (size_t)s->n_vocab;
    s->running = calloc((size_t)s->max_running, sizeof *s->running);
    s->bseqs = calloc((size_t)s->max_running, sizeof *s->bseqs);
    s->breqs = calloc((size_t)s->max_running, sizeof *s->breqs);
    s->logits = malloc(n_logits * sizeof *s->logits);
    if (!s->running || !s->bseqs || !s->breqs || !s->logits) {
        wisp_sched_destroy(s);
        return wisp_err_set(err, WISP_E_NOMEM, "sched: no memory for %zu logits", n_logits);
    }
    wisp_sched_update_snapshot(s);
    *out = s;
    return 0;
}

void wisp_sched_fail_all(wisp_sched *s, const wisp_err *err)
{
    pthread_mutex_lock(&s->mu);
    wisp_sched_req *inbox = s->inbox_head;
    s->inbox_head = s->inbox_tail = NULL;
    s->n_inbox = 0;
    pthread_mutex_unlock(&s->mu);
    while (s->n_running > 0) {
        wisp_sched_req *r = s->running[s->n_running - 1];
        wisp_sched_remove_running(s, s->n_running - 1);
        wisp_sched_end_request(s, r, err->code, WISP_SCHED_FINISH_ERROR, err);
    }
    while (s->n_waiting > 0) {
        wisp_sched_req *r = s->waiting[0];
        wisp_sched_remove_waiting(s, 0);
        wisp_sched_end_request(s, r, err->code, WISP_SCHED_FINISH_ERROR, err);
    }
    while (inbox) {
        wisp_sched_req *r = inbox;
        inbox = r->next;
        wisp_sched_end_request(s, r, err->code, WISP_SCHED_FINISH_ERROR, err);
    }
}

void wisp_sched_destroy(wisp_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->shutting_down = true;
    pthread_mutex_unlock(&s->mu);
    wisp_err err;
    wisp_err_set(&err, WISP_E_SHUTDOWN, "the server is shutting down");
    wisp_sched_fail_all(s, &err);
    wisp_kv_destroy(s->kv);
    free(s->waiting);
    free(s->running);
    free(s->bseqs);
    free(s->breqs);
    free(s->logits);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int wisp_sched_save_cache(wisp_sched *s, wisp_err *err) { return wisp_kv_save(s->kv, err); }

/* ------------------------------------------------------------ submit */

static int validate(const wisp_sched *s, const wisp_sched_request_desc *d, wisp_err *err)
{
    if (!d->prompt || d->n_prompt <= 0)
        return wisp_err_set(err, WISP_E_INVALID, "the prompt is empty");
    if (!d->on_finish)
        return wisp_err_set(err, WISP_E_INTERNAL, "a request needs on_finish");
    if (d->evaluate_only ? !d->on_logits : (!d->sample || !d->on_token))
        return wisp_err_set(err, WISP_E_INTERNAL, "%s",
                            d->evaluate_only ? "an evaluate request needs on_logits"
                                             : "a generate request needs sample and on_token");
    if (!d->evaluate_only && d->max_tokens < 0)
        return wisp_err_set(err, WISP_E_INVALID, "max_tokens (%d) must be >= 0", d->max_tokens);
    for (int i = 0; i < d->n_prompt; i++)
        if (d->prompt[i] < 0 || d->prompt[i] >= s->n_vocab)
            return wisp_err_set(err, WISP_E_INVALID,
                                "prompt token %d at position %d is not in "
                                "the vocabulary (size %d)",
                                d->prompt[i], i, s->n_vocab);
    int64_t gen = d->evaluate_only ? 0 : d->max_tokens;
    int64_t total = (int64_t)d->n_prompt + gen;
    if (total > s->n_ctx)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "prompt (%d tokens) + max_tokens (%lld) "
                            "exceeds the context (%d)",
                            d->n_prompt, (long long)gen, s->n_ctx);
    /* One more token than the request holds: a recomputed request may
     * briefly hold one extra block while copying a shared last block. */
    int bs = wisp_kv_block_size(s->kv);
    int64_t blocks = (total + 1 + bs - 1) / bs;
    if (blocks > wisp_kv_n_blocks(s->kv))
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "prompt (%d tokens) + max_tokens (%lld) needs "
                            "%lld KV blocks, the whole pool has %d",
                            d->n_prompt, (long long)gen, (long long)blocks,
                            wisp_kv_n_blocks(s->kv));
    return 0;
}

int wisp_sched_submit(wisp_sched *s, const wisp_sched_request_desc *d, uint64_t *id, wisp_err *err)
{
    int rc = validate(s, d, err);
    if (rc) {
        if (rc == WISP_E_TOO_LARGE) {
            pthread_mutex_lock(&s->mu);
            s->rejected_too_large++;
            pthread_mutex_unlock(&s->mu);
        }
        return rc;
    }
    wisp_sched_req *r = calloc(1, sizeof *r);
    int cap = d->n_prompt + (d->evaluate_only ? 0 : d->max_tokens);
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!r || !t) {
        free(r);
        free(t);
        return wisp_err_set(err, WISP_E_NOMEM, "no memory for a request of %d tokens", cap);
    }
    memcpy(t, d->prompt, (size_t)d->n_prompt * sizeof *t);
    r->d = *d;
    r->d.prompt = NULL;
    r->tokens = t;
    r->cap_tokens = cap;
    r->n_tokens = r->n_prompt = d->n_prompt;
    r->t_submit = wisp_now_ms();
    wisp_kv_seq_init(&r->seq);

    pthread_mutex_lock(&s->mu);
    if (s->shutting_down) {
        rc = wisp_err_set(err, WISP_E_SHUTDOWN, "the server is shutting down");
    } else if (s->n_inbox + s->n_waiting_shared >= s->max_queued) {
        s->rejected_overloaded++;
        rc = wisp_err_set(err, WISP_E_OVERLOADED, "overloaded: %d requests already wait (limit %d)",
                          s->n_inbox + s->n_waiting_shared, s->max_queued);
    } else {
        r->id = r->arrival = s->next_id++;
        if (s->inbox_tail)
            s->inbox_tail->next = r;
        else
            s->inbox_head = r;
        s->inbox_tail = r;
        s->n_inbox++;
        s->submitted++;
        pthread_cond_signal(&s->cv);
        if (id)
            *id = r->id;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        free(t);
        free(r);
    }
    return rc;
}

void wisp_sched_wait(wisp_sched *s, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->inbox_head && !s->woken)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    s->woken = false;
    pthread_mutex_unlock(&s->mu);
}

void wisp_sched_wake(wisp_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->woken = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ queues */

/* Whether a runs before b in the waiting queue. */
static bool runs_before(const wisp_sched_req *a, const wisp_sched_req *b)
{
    if (a->d.priority != b->d.priority)
        return a->d.priority > b->d.priority;
    if (a->preempted != b->preempted)
        return a->preempted;
    return a->arrival < b->arrival;
}

void wisp_sched_enqueue(wisp_sched *s, wisp_sched_req *r)
{
    if (s->n_waiting == s->cap_waiting) {
        int cap = s->cap_waiting ? s->cap_waiting * 2 : 64;
        wisp_sched_req **w = realloc(s->waiting, (size_t)cap * sizeof *w);
        if (!w) {
            wisp_err err;
            wisp_err_set(&err, WISP_E_NOMEM, "no memory to queue the request");
            wisp_sched_end_request(s, r, WISP_E_NOMEM, WISP_SCHED_FINISH_ERROR, &err);
            return;
        }
        s->waiting = w;
        s->cap_waiting = cap;
    }
    /* Arrivals mostly go last; scan from the back. */
    int i = s->n_waiting;
    while (i > 0 && runs_before(r, s->waiting[i - 1]))
        i--;
    memmove(&s->waiting[i + 1], &s->waiting[i], (size_t)(s->n_waiting - i) * sizeof *s->waiting);
    s->waiting[i] = r;
    s->n_waiting++;
}

void wisp_sched_drain_inbox(wisp_sched *s)
{
    pthread_mutex_lock(&s->mu);
    wisp_sched_req *r = s->inbox_head;
    s->inbox_head = s->inbox_tail = NULL;
    s->n_inbox = 0;
    pthread_mutex_unlock(&s->mu);
    while (r) {
        wisp_sched_req *next = r->next;
        r->next = NULL;
        wisp_sched_enqueue(s, r);
        r = next;
    }
    pthread_mutex_lock(&s->mu);
    s->n_waiting_shared = s->n_waiting;
    pthread_mutex_unlock(&s->mu);
}

void wisp_sched_remove_running(wisp_sched *s, int i)
{
    memmove(&s->running[i], &s->running[i + 1],
            (size_t)(s->n_running - i - 1) * sizeof *s->running);
    s->n_running--;
}

void wisp_sched_remove_waiting(wisp_sched *s, int i)
{
    memmove(&s->waiting[i], &s->waiting[i + 1],
            (size_t)(s->n_waiting - i - 1) * sizeof *s->waiting);
    s->n_waiting--;
}

int wisp_sched_push_token(wisp_sched_req *r, int32_t token)
{
    if (r->n_tokens == r->cap_tokens) {
        int cap = r->cap_tokens * 2 + 16;
        int32_t *t = realloc(r->tokens, (size_t)cap * sizeof *t);
        if (!t)
            return WISP_E_NOMEM;
        r->tokens = t;
        r->cap_tokens = cap;
    }
    r->tokens[r->n_tokens++] = token;
    return 0;
}

/* ------------------------------------------------------------ finishing */

void wisp_sched_end_request(wisp_sched *s, wisp_sched_req *r, int status, wisp_sched_finish why,
                            const wisp_err *err)
{
    wisp_kv_seq_free(s->kv, &r->seq);
    double now = wisp_now_ms();
    wisp_sched_usage u = {
        .prompt_tokens = r->n_prompt,
        .completion_tokens = r->n_generated,
        .cached_tokens = r->cached_tokens,
        .preemptions = r->preemptions,
        .finish = why,
        .queue_ms = r->admitted_once ? r->t_admit - r->t_submit : now - r->t_submit,
        .ttft_ms = r->t_first > 0 ? r->t_first - r->t_submit : 0,
        .prefill_ms = r->t_first > 0 ? r->t_first - r->t_admit : 0,
        .decode_ms = r->t_first > 0 ? now - r->t_first : 0,
        .total_ms = now - r->t_submit,
    };
    if (why == WISP_SCHED_FINISH_CANCELLED)
        s->cancelled++;
    else if (status != 0)
        s->failed++;
    s->finished++;
    /* The snapshot shows the request gone (blocks released, not running)
     * before its answer can reach the client, so a status read right after
     * the answer tells the truth. */
    wisp_sched_update_snapshot(s);
    r->d.on_finish(r->d.ud, status, &u, status ? err : NULL);
    free(r->tokens);
    free(r);
}

void wisp_sched_update_snapshot(wisp_sched *s)
{
    wisp_sched_stats st;
    memset(&st, 0, sizeof st);
    wisp_kv_get_stats(s->kv, &st.kv);
    st.running = s->n_running;
    st.steps = s->steps;
    st.finished = s->finished;
    st.cancelled = s->cancelled;
    st.failed = s->failed;
    st.preemptions = s->preemptions;
    st.prefill_tokens = s->prefill_tokens;
    st.decode_tokens = s->decode_tokens;
    st.batch_seqs = s->batch_seqs;
    st.batch_tokens = s->batch_tokens;
    st.admitted = s->admitted;
    st.queue_wait_ms = s->queue_wait_ms;
    pthread_mutex_lock(&s->mu);
    st.queued = s->n_waiting + s->n_inbox;
    st.submitted = s->submitted;
    st.rejected_overloaded = s->rejected_overloaded;
    st.rejected_too_large = s->rejected_too_large;
    s->n_waiting_shared = s->n_waiting;
    s->snap = st;
    pthread_mutex_unlock(&s->mu);
}

void wisp_sched_get_stats(wisp_sched *s, wisp_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->snap;
    pthread_mutex_unlock(&s->mu);
}
