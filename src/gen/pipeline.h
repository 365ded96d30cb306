/*
 * pipeline.h - the text side of one generation, free of JSON.
 *
 * Generated tokens go through four stages: the streaming detokenizer (whole
 * UTF-8 only), the stop-string matcher, an optional filter (infill's code
 * rules), and the cutting of what they released into pieces. A piece is
 * what one $/stream notification carries: the text released since the last
 * piece and the tokens generated since then. The pipeline keeps the whole
 * output (text and tokens) for the final answer.
 *
 * Its one subtle rule is at the end (wisp_pipeline_end): the last piece is
 * emitted before the answer, and when that emission finds the request
 * cancelled, the request is answered as cancelled with the whole output, so
 * the pieces a client received always add up to a prefix of the answer's
 * text and never to something the answer contradicts.
 */
#ifndef WISP_GEN_PIPELINE_H
#define WISP_GEN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "tokenizer/tokenizer.h"

/* An extra stage after the stop strings. It sees the text the stop matcher
 * releases and releases in turn what it is sure of; it may hold text back,
 * and it may end the generation. ud is borrowed (its owner frees it). */
typedef struct wisp_pipe_filter {
    /* Feeds text; sets *out and *out_len to what is released now, and *reason
     * (else left NULL) when a rule ended the generation at that point.
     * Returns 0 or <0 (the text is then dropped). */
    int (*feed)(void *ud, const char *text, size_t len, const char **out, size_t *out_len,
                const char **reason);
    /* At the end of generation: releases what is held (same outputs). */
    int (*flush)(void *ud, const char **out, size_t *out_len, const char **reason);
    /* Extra end-of-generation tokens (FIM markers); may be NULL. */
    bool (*is_eog)(void *ud, int32_t token);
    void *ud;
} wisp_pipe_filter;

/* One piece, valid during the emit call. */
typedef struct wisp_gen_piece {
    int64_t index;    /* 0, 1, 2, ... */
    const char *text; /* whole UTF-8; len bytes */
    size_t len;
    const int32_t *tokens; /* the tokens generated since the last piece */
    size_t n_tokens;
    size_t token_from; /* the index of tokens[0] in the whole output */
} wisp_gen_piece;

/* Emits one piece. Returns 0 when sent; WISP_E_CANCELLED (nothing sent)
 * when the request was cancelled; another <0 when it could not be sent. */
typedef int (*wisp_gen_emit_fn)(void *ud, const wisp_gen_piece *piece);

typedef struct wisp_pipeline_desc {
    const wisp_tokenizer *tok; /* borrowed; outlives the pipeline */
    const char *const *stops;  /* copied */
    int n_stops;
    wisp_pipe_filter filter; /* optional (feed NULL: none) */
    wisp_gen_emit_fn emit;   /* NULL: no streaming */
    void *emit_ud;
} wisp_pipeline_desc;

typedef struct wisp_pipeline wisp_pipeline;

/* Returns 0, or <0 with err (WISP_E_INVALID for an empty stop string,
 * WISP_E_NOMEM). */
int wisp_pipeline_create(const wisp_pipeline_desc *d, wisp_pipeline **out, wisp_err *err);
void wisp_pipeline_free(wisp_pipeline *p);

/* One generated token: appended to the output, detokenized, matched, and
 * what is released emitted as a piece (an emit failure here is not an
 * error: a cancel is seen by the scheduler at its next step). Sets *more to
 * false when the token ended the generation (an end-of-generation token, a
 * stop string, a filter rule). Returns 0, or <0 with err (out of memory, an
 * id outside the vocabulary): the generation must then end with that
 * error. */
int wisp_pipeline_token(wisp_pipeline *p, int32_t token, bool *more, wisp_err *err);

/* The generation ended with status (0: it ran out of tokens or ended by
 * rule; <0: the scheduler's error). With status 0 the matchers release what
 * they still hold and the last piece is emitted. Returns 0: answer with the
 * whole output; WISP_E_CANCELLED: the last piece found the request
 * cancelled: answer it as cancelled with the whole output; otherwise
 * status, or <0 with err when releasing failed. Call once. */
int wisp_pipeline_end(wisp_pipeline *p, int status, wisp_err *err);

/* The whole output so far (NUL-terminated; "" when none). */
const char *wisp_pipeline_text(const wisp_pipeline *p, size_t *len);
const int32_t *wisp_pipeline_tokens(const wisp_pipeline *p, size_t *n);
/* Why generation ended by rule: "eog", "stop", or a filter's reason; NULL
 * when no rule ended it (it ran out of tokens). */
const char *wisp_pipeline_reason(const wisp_pipeline *p);

#endif
