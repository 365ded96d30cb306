/*
 * jinja_globals.c - the global functions chat templates call (range, dict, namespace,
 * raise_exception, strftime_now), one table, with jinja2's behaviour.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/jinja_builtins_int.h"

#define MAX_RANGE 100000 /* jinja2's sandbox refuses longer ranges */

/* ---------------------------------------------------------------- globals */

static wisp_jv *g_range(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)self;
    int64_t v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3)
        return jinja_fail(c, a->line, WISP_E_INVALID, "range expected 1 to 3 arguments, got %zu",
                          a->npos);
    for (size_t i = 0; i < a->npos; i++) {
        wisp_jv *x = a->pos[i];
        if (x->type != JV_INT && x->type != JV_BOOL)
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "'%s' object cannot be interpreted as an integer", jv_type_name(x));
        v[a->npos == 1 ? 1 : i] = x->type == JV_INT ? x->i : x->b;
    }
    if (v[2] == 0)
        return jinja_fail(c, a->line, WISP_E_INVALID, "range() arg 3 must not be zero");
    double count = v[2] > 0 ? ceil(((double)v[1] - (double)v[0]) / (double)v[2])
                            : ceil(((double)v[0] - (double)v[1]) / (double)-v[2]);
    if (count < 0)
        count = 0;
    if (count > MAX_RANGE)
        return jinja_fail(c, a->line, WISP_E_INVALID,
                          "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                          MAX_RANGE);
    wisp_jv *out = jv_list_n(c->env, (size_t)count);
    for (int64_t i = 0; i < (int64_t)count; i++)
        wisp_jv_list_push(c->env, out, wisp_jv_int(c->env, v[0] + i * v[2]));
    return out;
}

static wisp_jv *kw_dict(jctx *c, const jargs *a, jv_type type)
{
    wisp_jv *d = wisp_jv_dict(c->env);
    if (!c->env->oom) /* never retype the shared out-of-memory value */
        d->type = type;
    if (a->npos > 1)
        return jinja_fail(c, a->line, WISP_E_INVALID, "expected at most 1 positional argument");
    if (a->npos == 1) {
        wisp_jv *init = a->pos[0];
        if (init->type != JV_DICT)
            return jinja_fail(c, a->line, WISP_E_INVALID, "expected a mapping, got %s",
                              jv_type_name(init));
        for (size_t i = 0; i < init->dict->n; i++)
            jv_dict_put(c->env, d, init->dict->k[i], init->dict->v[i]);
    }
    for (size_t i = 0; i < a->nkw; i++)
        wisp_jv_dict_set(c->env, d, a->kwname[i], strlen(a->kwname[i]), a->kwval[i]);
    return d;
}

static wisp_jv *g_namespace(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)self;
    return kw_dict(c, a, JV_NS);
}
static wisp_jv *g_dict(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)self;
    return kw_dict(c, a, JV_DICT);
}

static wisp_jv *g_raise(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)self;
    wisp_jv *m = jinja_arg(a, 0, "message");
    wisp_jv *s = m ? S(c, m) : NULL;
    return jinja_fail(c, a->line, WISP_E_INVALID, "%s", s ? s->str.s : "raise_exception() called");
}

static wisp_jv *g_strftime_now(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)self;
    wisp_jv *fmt = jinja_arg(a, 0, "format");
    if (!fmt || fmt->type != JV_STR)
        return jinja_fail(c, a->line, WISP_E_INVALID, "strftime_now() needs a format string");
    struct tm tm;
    time_t now = c->env->now;
    localtime_r(&now, &tm);
    char out[512];
    /* the format is the template's, as Python's strftime takes it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = fmt->str.n < 200 ? strftime(out, sizeof out, fmt->str.s, &tm) : 0;
#pragma GCC diagnostic pop
    if (n == 0 && fmt->str.n)
        return jinja_fail(c, a->line, WISP_E_INVALID,
                          "strftime_now(): format too long or empty result");
    return wisp_jv_str(c->env, out, n);
}

typedef struct global_row {
    const char *name;
    jfunc fn;
} global_row;

static const global_row globals[] = {
    {"range", g_range},           {"namespace", g_namespace},       {"dict", g_dict},
    {"raise_exception", g_raise}, {"strftime_now", g_strftime_now},
};

wisp_jv *jinja_global(jctx *c, const char *name)
{
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (!strcmp(globals[i].name, name))
            return jv_func(c->env, globals[i].fn, NULL, globals[i].name);
    return NULL;
}
