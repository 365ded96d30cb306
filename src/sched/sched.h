/*
 * sched.h - requests and the continuous-batching scheduler.
 *
 * The scheduler turns many concurrent requests into a stream of engine
 * steps. Each step (wisp_sched_step) runs ONE batched forward over the next
 * token of every decoding sequence plus chunks of prompts being prefilled
 * (decodes first, prefill chunks within a per-step token budget), so streams
 * stay smooth while long prompts are absorbed a slice at a time (vLLM's and
 * Orca's iteration-level scheduling). KV memory is the paged cache of kv.h:
 * requests share cached prefixes, are admitted while blocks are free, and
 * when blocks run out mid-flight the newest running request is preempted
 * (its blocks freed, it is requeued at the front with its generated tokens
 * appended to its prompt, and later recomputed, mostly from the prefix
 * cache) instead of anything failing.
 *
 * A new prompt that is short (opts.prefill_first_tokens) is the exception to
 * decodes first: when decodes are all there is to run, it gets the next step
 * to itself and its first token at that step's end, and the decodes run in
 * the step after, which is never another such step. So a decode waits at
 * most one short step more, however many prompts arrive.
 *
 * Threads. wisp_sched_submit, wisp_sched_wake and wisp_sched_get_stats may
 * be called from any thread (the RPC loop); everything else, and every
 * callback of a request, runs on the one thread that calls wisp_sched_step
 * (the engine thread). A typical engine thread:
 *
 *     while (!quit)
 *         if (!wisp_sched_step(s))
 *             wisp_sched_wait(s, 1000);
 *
 * Requests. A request is a prompt of token ids and callbacks. Generate
 * requests get sample() with the logits after the last known token and
 * report each chosen token to on_token() in order; evaluate_only requests
 * (teacher forcing) get on_logits() for every prompt position in order and
 * generate nothing. Every accepted request gets exactly one on_finish(),
 * also when cancelled (is_cancelled() is polled every step, and between the
 * engine's layers during a step, so a long prefill stops early) or when the
 * scheduler is destroyed. A refused submit calls nothing.
 *
 * No JSON, event-loop or CUDA types appear here: the RPC layer converts.
 */
#ifndef WISP_SCHED_H
#define WISP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/engine.h"
#include "kv/kv.h"

typedef struct wisp_sched wisp_sched;

typedef enum wisp_sched_finish {
    WISP_SCHED_FINISH_LENGTH = 0,    /* max_tokens generated */
    WISP_SCHED_FINISH_STOP = 1,      /* on_token returned false (stop string, end of generation) */
    WISP_SCHED_FINISH_EVALUATED = 2, /* evaluate_only: every position's logits delivered */
    WISP_SCHED_FINISH_CANCELLED = 3, /* is_cancelled returned true */
    WISP_SCHED_FINISH_ERROR = 4,     /* engine failure or shutdown: see status and err */
} wisp_sched_finish;

typedef struct wisp_sched_usage {
    int prompt_tokens;     /* as submitted */
    int completion_tokens; /* tokens generated (reported to on_token) */
    int cached_tokens;     /* prompt tokens reused from the prefix cache */
    int preemptions;       /* times the request was preempted and recomputed */
    wisp_sched_finish finish;
    /* Milliseconds: queued before first admission; submit to first token
     * (or first logits); first admission to first token; first token to
     * finish; submit to finish. */
    double queue_ms, ttft_ms, prefill_ms, decode_ms, total_ms;
} wisp_sched_usage;

typedef struct wisp_sched_request_desc {
    const int32_t *prompt; /* copied by submit */
    int n_prompt;          /* >= 1 */
    int max_tokens;        /* tokens to generate at most (>= 0; ignored by evaluate_only) */
    int priority;          /* larger runs first; first come, first served within one */
    bool evaluate_only;
    /* Generate: picks the next token from the logits after the last token
     * (may modify logits in place). Must return a token in [0, n_vocab). */
    int32_t (*sample)(void *ud, float *logits, int n_vocab);
    /* Generate: the chosen token; return false to stop (status 0, FINISH_STOP). */
    bool (*on_token)(void *ud, int32_t token);
    /* Evaluate: the logits after prompt[0..pos] (predicting prompt[pos+1]),
     * for pos = 0 .. n_prompt-1 in order. */
    void (*on_logits)(void *ud, int pos, const float *logits, int n_vocab);
    /* Optional: polled on the engine thread every step (use an atomic flag). */
    bool (*is_cancelled)(void *ud);
    /* Exactly once. status: 0, WISP_E_CANCELLED, WISP_E_SHUTDOWN or an engine
     * error (err then says what); err is NULL when status is 0. The request's
     * memory is gone when it returns; ud is the caller's to free here. */
    void (*on_finish)(void *ud, int status, const wisp_sched_usage *usage, const wisp_err *err);
    void *ud;
} wisp_sched_request_desc;

typedef struct wisp_sched_opts {
    uint64_t model_identity; /* wisp_model_identity(): keys the prefix cache and its files */
    int n_vocab;             /* logits per position */
    int n_ctx;               /* positions a sequence may reach (prompt + max_tokens) */
    int max_running;         /* sequences decoded together; 0 = engine max_seqs */
    int max_queued;          /* requests waiting beyond which submit says OVERLOADED; 0 = 256 */
    int step_tokens; /* tokens per step (decodes + prefill chunks); 0 = engine max_batch_tokens */
    int max_eval_tokens; /* evaluate positions per step (bounds the logits buffer); 0 = 64 */
    /* Prefill-first: a new generate prompt with at most this many tokens
     * left to compute (after its cached prefix) runs in a step of its own,
     * ahead of the decodes, so that its first token does not wait for them;
     * never two such steps in a row. 0 = step_tokens / 4; < 0 = never. */
    int prefill_first_tokens;
    bool no_prefix_cache;    /* disable prefix sharing */
    size_t host_cache_bytes; /* host-memory second tier; 0 = none */
    const char *cache_dir;   /* persist the prefix cache there; NULL = don't */
} wisp_sched_opts;

typedef struct wisp_sched_stats {
    wisp_kv_stats kv; /* blocks, fragmentation, copies, prefix hits, tiers */
    int running, queued;
    uint64_t steps, submitted, finished, cancelled, failed, preemptions;
    uint64_t rejected_overloaded, rejected_too_large;
    uint64_t prefill_tokens, decode_tokens; /* tokens computed by the engine */
    /* Sums for averages: sequences and tokens of every step; requests
     * admitted (first time only) and their waits from submit to admission. */
    uint64_t batch_seqs, batch_tokens, admitted;
    double queue_wait_ms;
} wisp_sched_stats;

/* Creates a scheduler over an engine (which must outlive it) and its KV
 * cache, loading the persisted prefix cache when cache_dir is set. Returns 0
 * or a negative wisp_code with err set. */
int wisp_sched_create(wisp_engine *engine, const wisp_sched_opts *opts, wisp_sched **out,
                      wisp_err *err);
/* Finishes every outstanding request with WISP_E_SHUTDOWN (on_finish runs
 * here, on the calling thread), saves the prefix cache, frees everything.
 * Call it from the engine thread once that thread no longer steps. */
void wisp_sched_destroy(wisp_sched *s);
/* Ends every request (running, waiting, submitted) with err: each gets its
 * on_finish with err->code. Engine thread. */
void wisp_sched_fail_all(wisp_sched *s, const wisp_err *err);

/* Queues a request (thread-safe). Refuses up front, calling nothing:
 * WISP_E_INVALID (a bad prompt, token or max_tokens), WISP_E_INTERNAL (missing
 * callbacks), WISP_E_TOO_LARGE (prompt
 * + max_tokens beyond n_ctx or beyond the whole KV pool), WISP_E_OVERLOADED
 * (max_queued requests already wait), WISP_E_SHUTDOWN. On 0, *id (may be
 * NULL) is the request's id and exactly one on_finish will follow. */
int wisp_sched_submit(wisp_sched *s, const wisp_sched_request_desc *desc, uint64_t *id,
                      wisp_err *err);

/* Runs one iteration: admissions, cancellations, one engine forward, and
 * the callbacks it produces. Returns true while work remains. */
bool wisp_sched_step(wisp_sched *s);
/* Blocks the engine thread until a request arrives, wisp_sched_wake is
 * called, or timeout_ms passes. */
void wisp_sched_wait(wisp_sched *s, int timeout_ms);
/* Wakes wisp_sched_wait (thread-safe). */
void wisp_sched_wake(wisp_sched *s);

/* A snapshot taken at the end of the last step (thread-safe). */
void wisp_sched_get_stats(wisp_sched *s, wisp_sched_stats *out);
/* Writes the prefix cache file now (engine thread). 0 when none is set. */
int wisp_sched_save_cache(wisp_sched *s, wisp_err *err);

#endif
