/*
 * params.h - checking a request's params against its method's table.
 *
 * Each method lists its fields once (methods.c): name, type, required, and
 * a range or a set of allowed strings. The check runs on the loop thread
 * before a job exists, so handlers can read params without re-checking
 * types, and every -32602 names the field at fault ("'top_p' must be a
 * number in [0, 1]"). protocol/schema/ describes the same fields.
 */
#ifndef WISP_RPC_PARAMS_H
#define WISP_RPC_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum wisp_param_type {
    WISP_PT_STRING = 0,
    WISP_PT_INT,    /* an integer (1.0 is not) in [min, max] */
    WISP_PT_NUMBER, /* integer or real in [min, max] */
    WISP_PT_BOOL,
    WISP_PT_INT_ARRAY, /* integers each in [min, max] */
    WISP_PT_STRING_ARRAY,
    WISP_PT_PROMPT, /* a string, or integers each in [min, max] */
    WISP_PT_ID,     /* a request id: a string or a number */
    WISP_PT_OBJECT,
    WISP_PT_ANY,
    WISP_PT_LOGIT_BIAS, /* [[token id in [min, max], number or false], ...] */
    WISP_PT_CHUNKS,     /* [{"filename"?: string, "text": string}, ...] */
} wisp_param_type;

typedef struct wisp_param {
    const char *name; /* NULL ends a table */
    wisp_param_type type;
    bool required;
    double min, max;            /* numeric range, inclusive (when min < max) */
    const char *const *choices; /* strings: the allowed values, NULL-ended;
                                   "name:N" allows "name:" and 1-3 digits */
} wisp_param;

/* Checks params (an object) against fields. open: unknown fields are
 * allowed (initialize, whose LSP clients send many). Returns true, or false
 * with msg naming the field and what it must be. */
bool wisp_params_check(const wisp_param *fields, bool open, const json_t *params, char *msg,
                       size_t cap);

#endif
