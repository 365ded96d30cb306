/*
 * sched_test_util.h - a test request (callbacks recording what the
 * scheduler delivers) and helpers to drive a scheduler over the fake engine.
 * Header-only, for test_sched*.c and test_prefix*.c.
 */
#ifndef WISP_SCHED_TEST_UTIL_H
#define WISP_SCHED_TEST_UTIL_H

#include <stdatomic.h>

#include "fake_engine.h"
#include "sched/sched.h"

#define TR_MAX 512

typedef struct treq {
    int32_t prompt[TR_MAX];
    int n_prompt, max_tokens, priority;
    bool evaluate;
    int32_t out[TR_MAX];
    int n_out;
    int stop_token;         /* on_token returns false on it; -1 never */
    int cancel_after;       /* cancel itself after this many tokens; -1 never */
    long cancel_at_forward; /* is_cancelled true once the engine ran this many steps; -1 never */
    const fake_engine *fe;
    atomic_bool cancel;
    /* evaluate */
    float *eval; /* n_prompt * n_vocab */
    int next_pos, order_errors, n_vocab;
    /* finish */
    int finished, status, finish_seq;
    wisp_sched_usage usage;
    char errmsg[WISP_ERR_MSG_MAX];
} treq;

static int tr_finish_counter;

static int32_t tr_sample(void *ud, float *logits, int n_vocab)
{
    (void)ud;
    return fake_argmax(logits, n_vocab);
}

static bool tr_on_token(void *ud, int32_t token)
{
    treq *t = ud;
    if (t->finished)
        t->order_errors++; /* a token after on_finish */
    if (t->n_out < TR_MAX)
        t->out[t->n_out++] = token;
    if (t->cancel_after >= 0 && t->n_out >= t->cancel_after)
        atomic_store(&t->cancel, true);
    return token != t->stop_token;
}

static void tr_on_logits(void *ud, int pos, const float *logits, int n_vocab)
{
    treq *t = ud;
    if (pos != t->next_pos || t->finished)
        t->order_errors++;
    t->next_pos = pos + 1;
    if (pos >= 0 && pos < t->n_prompt)
        memcpy(t->eval + (size_t)pos * n_vocab, logits, sizeof *logits * (size_t)n_vocab);
}

static bool tr_is_cancelled(void *ud)
{
    treq *t = ud;
    if (t->cancel_at_forward >= 0 && t->fe && (long)t->fe->forwards >= t->cancel_at_forward)
        return true;
    return atomic_load(&t->cancel);
}

static void tr_on_finish(void *ud, int status, const wisp_sched_usage *u, const wisp_err *err)
{
    treq *t = ud;
    t->finished++;
    t->status = status;
    t->usage = *u;
    t->finish_seq = ++tr_finish_counter;
    if (err)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", err->msg);
}

/* A request: prompt copied in, greedy sampling. */
static inline void tr_init(treq *t, const int32_t *prompt, int n, int max_tokens)
{
    memset(t, 0, sizeof *t);
    memcpy(t->prompt, prompt, sizeof *prompt * (size_t)n);
    t->n_prompt = n;
    t->max_tokens = max_tokens;
    t->stop_token = -1;
    t->cancel_after = -1;
    t->cancel_at_forward = -1;
}

static inline wisp_sched_request_desc tr_desc(treq *t)
{
    return (wisp_sched_request_desc){.prompt = t->prompt,
                                     .n_prompt = t->n_prompt,
                                     .max_tokens = t->max_tokens,
                                     .priority = t->priority,
                                     .evaluate_only = t->evaluate,
                                     .sample = tr_sample,
                                     .on_token = tr_on_token,
                                     .on_logits = tr_on_logits,
                                     .is_cancelled = tr_is_cancelled,
                                     .on_finish = tr_on_finish,
                                     .ud = t};
}

static inline int tr_submit(wisp_sched *s, treq *t)
{
    wisp_sched_request_desc d = tr_desc(t);
    wisp_err err = {0};
    return wisp_sched_submit(s, &d, NULL, &err);
}

/* Steps until no work remains; returns the steps taken (fails past max). */
static inline int tr_run(wisp_sched *s, int max_steps)
{
    int n = 0;
    while (wisp_sched_step(s))
        if (++n > max_steps)
            return -1;
    return n;
}

/* Whether t's output is the oracle's greedy continuation (up to n_out). */
static inline bool tr_output_ok(const treq *t, int n_vocab)
{
    int32_t want[TR_MAX];
    fake_reference_greedy(t->prompt, t->n_prompt, t->n_out, n_vocab, want);
    return memcmp(want, t->out, sizeof *want * (size_t)t->n_out) == 0;
}

static inline void tr_fill(uint64_t *rng, int32_t *out, int n, int n_vocab)
{
    for (int i = 0; i < n; i++) {
        *rng = fake_mix(*rng);
        out[i] = (int32_t)(*rng % (uint64_t)n_vocab);
    }
}

#endif
