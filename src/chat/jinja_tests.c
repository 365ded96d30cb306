/*
 * jinja_tests.c - the tests chat templates use (`x is defined`, ...), one table, with
 * jinja2's behaviour for each.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_builtins_int.h"

/* ---------------------------------------------------------------- tests */

static int t_defined(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type != JV_UNDEF;
}
static int t_undefined(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_UNDEF;
}
static int t_none(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_NONE;
}
static int t_string(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_STR;
}
static int t_mapping(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_DICT;
}
static int t_boolean(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_BOOL;
}
static int t_true(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_BOOL && v->b;
}
static int t_false(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_BOOL && !v->b;
}
static int t_integer(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_INT;
}
static int t_float(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_FLOAT;
}
static int t_callable(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_FUNC || v->type == JV_MACRO;
}
static int t_number(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}
/* Python iter() works: strings, lists, dicts, and jinja2's Undefined. */
static int t_iterable(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)c;
    (void)a;
    return v->type == JV_STR || v->type == JV_LIST || v->type == JV_DICT || v->type == JV_UNDEF;
}
static int t_sequence(jctx *c, wisp_jv *v, const jargs *a) { return t_iterable(c, v, a); }

static wisp_jv *other(jctx *c, const jargs *a, const char *test)
{
    wisp_jv *o = jinja_arg(a, 0, NULL);
    if (!o)
        jinja_fail(c, a->line, WISP_E_INVALID, "test '%s' needs an argument", test);
    return o;
}

static int t_eq(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *o = other(c, a, "eq");
    return o ? jv_equal(v, o) : -1;
}
static int t_ne(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *o = other(c, a, "ne");
    return o ? !jv_equal(v, o) : -1;
}

static int order(jctx *c, wisp_jv *v, const jargs *a, int want_lo, int want_hi)
{
    wisp_jv *o = other(c, a, "comparison");
    int r;
    if (!o)
        return -1;
    if (jv_compare(v, o, &r)) {
        jinja_fail(c, a->line, WISP_E_INVALID, "cannot compare '%s' and '%s'", jv_type_name(v),
                   jv_type_name(o));
        return -1;
    }
    return r >= want_lo && r <= want_hi;
}
static int t_lt(jctx *c, wisp_jv *v, const jargs *a) { return order(c, v, a, -1, -1); }
static int t_le(jctx *c, wisp_jv *v, const jargs *a) { return order(c, v, a, -1, 0); }
static int t_gt(jctx *c, wisp_jv *v, const jargs *a) { return order(c, v, a, 1, 1); }
static int t_ge(jctx *c, wisp_jv *v, const jargs *a) { return order(c, v, a, 0, 1); }

static int t_in(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *o = other(c, a, "in");
    return o ? jinja_contains(c, a->line, v, o) : -1;
}

static int t_sameas(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *o = other(c, a, "sameas");
    if (!o)
        return -1;
    if (v == o)
        return 1;
    if (v->type != o->type)
        return 0;
    return v->type == JV_NONE || (v->type == JV_BOOL && v->b == o->b);
}

static int int_test(jctx *c, wisp_jv *v, const jargs *a, int64_t *x)
{
    if (v->type != JV_INT && v->type != JV_BOOL) {
        jinja_fail(c, a->line, WISP_E_INVALID, "test needs an integer, got %s", jv_type_name(v));
        return -1;
    }
    *x = v->type == JV_INT ? v->i : v->b;
    return 0;
}
static int t_odd(jctx *c, wisp_jv *v, const jargs *a)
{
    int64_t x;
    return int_test(c, v, a, &x) ? -1 : (x % 2 != 0);
}
static int t_even(jctx *c, wisp_jv *v, const jargs *a)
{
    int64_t x;
    return int_test(c, v, a, &x) ? -1 : (x % 2 == 0);
}
static int t_divisibleby(jctx *c, wisp_jv *v, const jargs *a)
{
    int64_t x, d;
    wisp_jv *o = other(c, a, "divisibleby");
    if (!o || int_test(c, v, a, &x) || int_test(c, o, a, &d))
        return -1;
    if (d == 0) {
        jinja_fail(c, a->line, WISP_E_INVALID, "integer division or modulo by zero");
        return -1;
    }
    return d == -1 || x % d == 0;
}

static int t_case(jctx *c, wisp_jv *v, const jargs *a, int mode)
{
    if (v->type != JV_STR)
        return 0;
    wisp_jv *m = jinja_str_case(c, v, a->line, mode);
    return m ? jv_equal(m, v) && m->str.n : -1;
}
static int t_lower(jctx *c, wisp_jv *v, const jargs *a) { return t_case(c, v, a, PYSTR_LOWER); }
static int t_upper(jctx *c, wisp_jv *v, const jargs *a) { return t_case(c, v, a, PYSTR_UPPER); }

/* nargs: the arguments after the tested value (jinja2's tests are plain
 * functions: one more positional is a TypeError, and none takes keywords). */
typedef struct test_row {
    const char *name;
    jtest fn;
    int nargs;
} test_row;

static const test_row tests[] = {
    {"defined", t_defined, 0}, {"undefined", t_undefined, 0},
    {"none", t_none, 0},       {"string", t_string, 0},
    {"mapping", t_mapping, 0}, {"iterable", t_iterable, 0},
    {"number", t_number, 0},   {"sequence", t_sequence, 0},
    {"boolean", t_boolean, 0}, {"true", t_true, 0},
    {"false", t_false, 0},     {"integer", t_integer, 0},
    {"float", t_float, 0},     {"callable", t_callable, 0},
    {"eq", t_eq, 1},           {"equalto", t_eq, 1},
    {"==", t_eq, 1},           {"ne", t_ne, 1},
    {"!=", t_ne, 1},           {"lt", t_lt, 1},
    {"lessthan", t_lt, 1},     {"le", t_le, 1},
    {"gt", t_gt, 1},           {"greaterthan", t_gt, 1},
    {"ge", t_ge, 1},           {"in", t_in, 1},
    {"sameas", t_sameas, 1},   {"odd", t_odd, 0},
    {"even", t_even, 0},       {"divisibleby", t_divisibleby, 1},
    {"lower", t_lower, 0},     {"upper", t_upper, 0},
};

jtest jinja_test_find(const char *name, int *nargs)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name)) {
            *nargs = tests[i].nargs;
            return tests[i].fn;
        }
    return NULL;
}

int jinja_test_args_ok(jctx *c, const char *name, int nargs, const jargs *a)
{
    if (a->nkw) {
        jinja_fail(c, a->line, WISP_E_INVALID, "test '%s' got an unexpected keyword argument '%s'",
                   name, a->kwname[0]);
        return 0;
    }
    if (a->npos > (size_t)nargs) {
        if (nargs == 0)
            jinja_fail(c, a->line, WISP_E_INVALID, "test '%s' takes no arguments (%zu given)", name,
                       a->npos);
        else
            jinja_fail(c, a->line, WISP_E_INVALID, "test '%s' takes %d argument (%zu given)", name,
                       nargs, a->npos);
        return 0;
    }
    return 1;
}
