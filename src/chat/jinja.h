/*
 * jinja.h - a Jinja interpreter for the subset chat templates use.
 *
 * Renders a model's chat template (GGUF tokenizer.chat_template) the way
 * Hugging Face transformers' apply_chat_template does with Python jinja2:
 * trim_blocks and lstrip_blocks on, loop controls, transformers' tojson,
 * raise_exception and strftime_now. Values follow Python's semantics where
 * templates can observe them (str() of numbers and None, insertion-ordered
 * dicts, string methods, slicing, integer vs float division), because the
 * rendered prompt must equal the bytes the model was trained on.
 *
 * A template is untrusted input (it ships inside a model file): rendering is
 * bounded in output bytes, evaluation steps, memory and recursion depth, and
 * every failure is an error with the template line, never a crash.
 *
 * One wisp_jinja_env is one rendering: it owns every value (an arena freed
 * with the env), the context variables and the limits. Not thread-safe; use
 * one env per thread.
 */
#ifndef WISP_CHAT_JINJA_H
#define WISP_CHAT_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct wisp_jinja_env wisp_jinja_env;
typedef struct wisp_jv wisp_jv;

typedef struct wisp_jinja_limits {
    size_t max_output;  /* bytes of rendered text (captured macro output included) */
    size_t max_memory;  /* bytes of values and syntax tree */
    uint64_t max_steps; /* expression evaluations and loop iterations */
    int max_depth;      /* macro calls and syntax nesting */
} wisp_jinja_limits;

/* 16 MiB output, 256 MiB memory, 10M steps, depth 64. */
void wisp_jinja_limits_default(wisp_jinja_limits *lim);

/* NULL lim: the defaults. Returns NULL when out of memory. */
wisp_jinja_env *wisp_jinja_env_new(const wisp_jinja_limits *lim);
void wisp_jinja_env_free(wisp_jinja_env *env);

/* The clock strftime_now reads (default: the time of wisp_jinja_env_new),
 * formatted in local time as Python's datetime.now().strftime does. */
void wisp_jinja_env_set_now(wisp_jinja_env *env, time_t now);

/* Values, owned by env. Constructors never return NULL: when the memory
 * limit is hit they return none and the next render fails with that. */
wisp_jv *wisp_jv_none(wisp_jinja_env *env);
wisp_jv *wisp_jv_bool(wisp_jinja_env *env, bool b);
wisp_jv *wisp_jv_int(wisp_jinja_env *env, int64_t i);
wisp_jv *wisp_jv_float(wisp_jinja_env *env, double d);
wisp_jv *wisp_jv_str(wisp_jinja_env *env, const char *s, size_t n);
wisp_jv *wisp_jv_list(wisp_jinja_env *env);
wisp_jv *wisp_jv_dict(wisp_jinja_env *env);
/* Appends v to list (a wisp_jv_list value). */
void wisp_jv_list_push(wisp_jinja_env *env, wisp_jv *list, wisp_jv *v);
/* Sets key (n bytes) of dict (a wisp_jv_dict value), keeping insertion order. */
void wisp_jv_dict_set(wisp_jinja_env *env, wisp_jv *dict, const char *key, size_t n, wisp_jv *v);

/* Defines a context variable (messages, tools, bos_token, ...). */
void wisp_jinja_env_set(wisp_jinja_env *env, const char *name, wisp_jv *v);

/* Parses and renders src (n bytes) with the env's variables, appending the
 * text to out. Returns 0, or <0 with err: WISP_E_INVALID for a template
 * error ("chat template line N: ..."; raise_exception's message verbatim
 * after "line N: "), WISP_E_TOO_LARGE for a limit, WISP_E_NOMEM. out may
 * hold partial text after an error. */
int wisp_jinja_render(wisp_jinja_env *env, const char *src, size_t n, wisp_buf *out, wisp_err *err);

#endif
