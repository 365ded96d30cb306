/*
 * jinja_builtins_int.h - what the builtin files share: the argument helpers
 * every filter, test, method and global uses, and the string and dict
 * operations that a filter and a method both expose (jinja2's `upper`
 * filter is str.upper, `trim` is str.strip, and so on), defined once in
 * jinja_methods.c.
 */
#ifndef WISP_CHAT_JINJA_BUILTINS_INT_H
#define WISP_CHAT_JINJA_BUILTINS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "chat/jinja_int.h"

static inline wisp_jv *nomem(jctx *c, int line)
{
    return jinja_fail(c, line, WISP_E_NOMEM, "out of memory");
}

static inline wisp_jv *buf_value(jctx *c, int line, wisp_buf *b, int rc)
{
    wisp_jv *r = rc ? nomem(c, line) : wisp_jv_str(c->env, b->data ? b->data : "", b->len);
    wisp_buf_free(b);
    return r;
}

/* str(v) as a string value; NULL on error. */
static inline wisp_jv *S(jctx *c, const wisp_jv *v) { return jv_to_str(c->env, v); }

static inline bool arg_true(const jargs *a, size_t i, const char *name)
{
    wisp_jv *v = jinja_arg(a, i, name);
    return v && jv_truthy(v);
}

static inline bool arg_str(jctx *c, const jargs *a, size_t i, const char *name, const char **s,
                           size_t *n)
{
    wisp_jv *v = jinja_arg(a, i, name);
    if (!v || v->type == JV_NONE)
        return false;
    v = S(c, v);
    *s = v->str.s;
    *n = v->str.n;
    return true;
}

static inline wisp_jv *need_str(jctx *c, const jargs *a, size_t i, const char *name,
                                const char *who)
{
    wisp_jv *v = jinja_arg(a, i, name);
    if (!v)
        return jinja_fail(c, a->line, WISP_E_INVALID, "%s() missing a required argument", who);
    if (v->type != JV_STR)
        return jinja_fail(c, a->line, WISP_E_INVALID, "%s() argument must be str, not %s", who,
                          jv_type_name(v));
    return v;
}

/* str.strip / lstrip / rstrip of self (l, r: which ends), chars from
 * argument 0 or "chars". */
wisp_jv *jinja_str_strip(jctx *c, wisp_jv *self, const jargs *a, bool l, bool r);
/* self in one of pystr's case modes (PYSTR_UPPER, ...). */
wisp_jv *jinja_str_case(jctx *c, wisp_jv *v, int line, int mode);
/* str.replace(old, new, count); count < 0: every occurrence. */
wisp_jv *jinja_str_replace(jctx *c, wisp_jv *s, wisp_jv *old, wisp_jv *new_, int64_t count,
                           int line);
/* str.splitlines(keepends) of the string self. */
wisp_jv *jinja_str_splitlines(jctx *c, wisp_jv *self, const jargs *a);
/* dict.items() of d: a list of (key, value) tuples. */
wisp_jv *jinja_dict_pairs(jctx *c, wisp_jv *d);

#endif
