/*
 * gen_common.h - what generate and infill share: request parameters, the
 * per-request state that turns scheduler callbacks into $/stream
 * notifications and one final answer, and JSON helpers for usage/timings.
 */
#ifndef WISP_SERVE_GEN_COMMON_H
#define WISP_SERVE_GEN_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gen/sampler.h"
#include "rpc/job.h"
#include "serve/runtime.h"

/* An extra stage after the stop strings (infill's code rules): feed, flush
 * and is_eog are the pipeline's filter (gen/pipeline.h's wisp_pipe_filter);
 * annotate and free belong to the request, which owns ud. */
typedef struct wisp_gen_filter {
    /* Feeds text; sets *out and *out_len to what is released now, and *reason
     * (else left NULL) when a rule ended the request at that point. */
    int (*feed)(void *ud, const char *text, size_t len, const char **out, size_t *out_len,
                const char **reason);
    /* At the end of generation: releases what is held (same outputs). */
    int (*flush)(void *ud, const char **out, size_t *out_len, const char **reason);
    /* Extra end-of-generation tokens (FIM markers); may be NULL. */
    bool (*is_eog)(void *ud, int32_t token);
    /* Adds fields to the final result (may be NULL). */
    void (*annotate)(void *ud, json_t *result);
    void (*free)(void *ud);
    void *ud;
} wisp_gen_filter;

typedef struct wisp_gen_spec {
    wisp_sampler_params sampling;
    wisp_logit_bias *bias; /* owned */
    int max_tokens;
    int priority;
    bool stream;
    char **stops; /* owned, n_stops strings */
    int n_stops;
    wisp_gen_filter filter; /* optional */
} wisp_gen_spec;

/* Reads the sampling/stop/stream fields of generate or infill params
 * (already type-checked by the params table). Returns 0 or <0 with err. */
int wisp_gen_spec_from_json(const wisp_runtime *rt, const json_t *params, wisp_gen_spec *out,
                            wisp_err *err);
void wisp_gen_spec_free(wisp_gen_spec *s);

/* A prompt as JSON (text or ids) to tokens. Text is tokenized with
 * add_special and parse_special both as given by text_specials; ids are
 * checked against the vocabulary (errors name field). On failure out may
 * hold tokens: the caller frees it either way. */
int wisp_gen_prompt_tokens(const wisp_runtime *rt, const char *field, const json_t *prompt,
                           bool text_specials, wisp_tokens *out, wisp_err *err);

/* True when the loaded model can generate; else answers job -31001 (a
 * vocab-only model) and returns false. */
bool wisp_gen_require_engine(wisp_job *job, const wisp_runtime *rt);

/* Submits a generation to the scheduler and takes charge of answering job.
 * spec's filter (if any) moves into the request; the rest is copied. */
void wisp_gen_submit(wisp_job *job, wisp_runtime *rt, wisp_gen_spec *spec, const int32_t *prompt,
                     int n_prompt);

/* The k largest logits' ids, highest first (k <= n). */
void wisp_gen_top_k(const float *logits, int n, int k, int32_t *ids);
json_t *wisp_gen_usage_json(const wisp_sched_usage *u);
json_t *wisp_gen_timings_json(const wisp_sched_usage *u);
/* Answers a job that ended with status != 0: -32800 with the partial
 * output when cancelled, the mapped error otherwise. */
/* Publishes the scheduler's statistics for `status` now (engine thread):
 * called before a request is answered, so the answer never overtakes the
 * release of its sequence. */
void wisp_gen_publish_stats(wisp_job *job);

void wisp_gen_answer_failure(wisp_job *job, int status, const wisp_err *err, const char *text,
                             const int32_t *tokens, size_t n_tokens);
/* The same with the partial text's length (it may hold NUL bytes). */
void wisp_gen_answer_failure_n(wisp_job *job, int status, const wisp_err *err, const char *text,
                               size_t text_len, const int32_t *tokens, size_t n_tokens);

#endif
