/*
 * code_stop.h - stop rules for code completions, checked as text streams.
 *
 * Three rules that end a completion at a line boundary, each named in the
 * response's "stop_reason":
 *
 *  n_indent          a line of the completion (not its first, which continues
 *                    the cursor line) whose leading whitespace is shorter than
 *                    n_indent columns, counted at its first non-blank
 *                    character (spaces and tabs count one column each, as
 *                    llama.cpp); blank lines never trigger it. The completion
 *                    ends before the newline that precedes the blank lines
 *                    (if any) and the offending line.
 *  t_max_predict_ms  once now - t_start >= t_max_predict_ms, the next newline
 *                    not yet released ends the completion (before it).
 *                    (llama.cpp stops at once if any newline was generated
 *                    before the time ran out, in the middle of a line too;
 *                    this keeps completions whole lines.)
 *  suffix_repeat     a line of the completion equal to the first non-blank
 *                    line of the suffix, both compared without leading and
 *                    trailing whitespace: the model started re-typing code that
 *                    follows the cursor. The completion ends before that line's
 *                    newline. A last line cut off by end of generation counts.
 *
 * The checker sits after the stop-string matcher (src/gen/stop.c) and sees
 * its released text. To cut at a line boundary after text was streamed, it
 * holds back what a rule may still remove: from a newline on, while the next
 * line is blank, is still inside its indentation, or still matches the
 * suffix's first line. The first line of a completion and the rest of a line
 * that has been decided are released at once. Holding only happens with
 * n_indent or a suffix to compare against; t_max_predict_ms alone holds
 * nothing. Released text is cut only at newlines, so it stays whole UTF-8.
 */
#ifndef WISP_CODE_STOP_H
#define WISP_CODE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Why a completion ended; wisp_stop_reason_name gives the protocol's text. */
typedef enum wisp_stop_reason {
    WISP_STOP_REASON_NONE = 0,         /* ""  (still running) */
    WISP_STOP_REASON_EOG,              /* "eog": end-of-generation / FIM end token */
    WISP_STOP_REASON_LENGTH,           /* "length": max_tokens or context */
    WISP_STOP_REASON_STOP,             /* "stop": a stop string */
    WISP_STOP_REASON_N_INDENT,         /* "n_indent" */
    WISP_STOP_REASON_T_MAX_PREDICT_MS, /* "t_max_predict_ms" */
    WISP_STOP_REASON_SUFFIX_REPEAT,    /* "suffix_repeat" */
} wisp_stop_reason;

const char *wisp_stop_reason_name(wisp_stop_reason r);

typedef struct wisp_code_stop_params {
    int32_t n_indent;         /* <= 0: rule off */
    int64_t t_max_predict_ms; /* <= 0: rule off */
    int64_t t_start_ms;       /* when generation started, on the clock of `now_ms` */
    const char *suffix;       /* input_suffix; NULL or no non-blank line: rule off */
    size_t suffix_len;
} wisp_code_stop_params;

typedef struct wisp_code_stop wisp_code_stop;

/* What one call released. text stays valid until the next call on the
 * checker. When a rule fired in this call, reason says which and cut is the
 * final length of the completion in bytes (all text ever released, this
 * call's included); the caller stops generating. */
typedef struct wisp_code_stop_out {
    const char *text;
    size_t len;
    wisp_stop_reason reason;
    size_t cut;
} wisp_code_stop_out;

/* Copies what it needs from p. Returns 0 or WISP_E_NOMEM. */
int wisp_code_stop_create(const wisp_code_stop_params *p, wisp_code_stop **out, wisp_err *err);
void wisp_code_stop_free(wisp_code_stop *cs);

/* Feeds the next piece of generated text, at time now_ms. After a rule has
 * fired, further feeds release nothing. Returns 0 or WISP_E_NOMEM. */
int wisp_code_stop_feed(wisp_code_stop *cs, const char *text, size_t len, int64_t now_ms,
                        wisp_code_stop_out *out, wisp_err *err);

/* At the end of generation for another reason: releases the held text, unless
 * its last line repeats the suffix (then reason is SUFFIX_REPEAT and the held
 * text is dropped). Returns 0 or WISP_E_NOMEM. */
int wisp_code_stop_flush(wisp_code_stop *cs, wisp_code_stop_out *out, wisp_err *err);

/* True once a rule has fired. */
bool wisp_code_stop_done(const wisp_code_stop *cs);

#endif
