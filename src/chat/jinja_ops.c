/*
 * jinja_ops.c - values under the template's operators, with Python's
 * semantics: item, attribute and slice access (jinja2's item-first and
 * attribute-first lookups, Undefined for what is missing), arithmetic,
 * comparisons and `in`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

/* ---------------------------------------------------------------- attribute and item */

wisp_jv *jinja_undef_access(jctx *c, int line, const wisp_jv *u)
{
    return jinja_fail(c, line, WISP_E_INVALID, "%s",
                      u->undef_hint ? u->undef_hint : "undefined value used");
}

static wisp_jv *missing(jctx *c, const wisp_jv *obj, const char *what, const char *name)
{
    size_t n = strlen(name) + 64;
    char *hint = jinja_alloc(c->env, n);
    if (hint)
        snprintf(hint, n, "'%s object' has no %s '%s'", jv_type_name(obj), what, name);
    return jv_undef(c->env, hint);
}

static bool int_index(const wisp_jv *k, int64_t *i)
{
    if (k->type == JV_INT) {
        *i = k->i;
        return true;
    }
    if (k->type == JV_BOOL) {
        *i = k->b;
        return true;
    }
    return false;
}

wisp_jv *jinja_getitem(jctx *c, int line, wisp_jv *obj, wisp_jv *key)
{
    if (obj->type == JV_UNDEF)
        return jinja_undef_access(c, line, obj);
    if (obj->type == JV_DICT || obj->type == JV_NS) {
        wisp_jv *v = jv_dict_get(obj, key);
        if (v)
            return v;
    }
    int64_t i;
    if (obj->type == JV_LIST && int_index(key, &i)) {
        int64_t n = (int64_t)obj->list->n;
        if (i < 0)
            i += n;
        if (i >= 0 && i < n)
            return obj->list->v[i];
        return jv_undef(c->env, "list index out of range");
    }
    if (obj->type == JV_STR && int_index(key, &i)) {
        int64_t n = (int64_t)pystr_len(obj->str.s, obj->str.n);
        if (i < 0)
            i += n;
        if (i >= 0 && i < n) {
            size_t a = pystr_offset(obj->str.s, obj->str.n, (size_t)i), b = a;
            pystr_next(obj->str.s, obj->str.n, &b);
            return wisp_jv_str(c->env, obj->str.s + a, b - a);
        }
        return jv_undef(c->env, "string index out of range");
    }
    if (key->type == JV_STR) {
        wisp_jv *m = jinja_method(c, obj, key->str.s);
        if (m)
            return m;
        return missing(c, obj, "element", key->str.s);
    }
    return jv_undef(c->env, "no such element");
}

wisp_jv *jinja_getattr(jctx *c, int line, wisp_jv *obj, const char *name)
{
    if (obj->type == JV_UNDEF)
        return jinja_undef_access(c, line, obj);
    if (obj->type != JV_NS) {
        wisp_jv *m = jinja_method(c, obj, name);
        if (m)
            return m;
    }
    if (obj->type == JV_DICT || obj->type == JV_NS) {
        wisp_jv *v = jv_dict_gets(obj, name, strlen(name));
        if (v)
            return v;
    }
    return missing(c, obj, "attribute", name);
}

/* Python slice semantics over n elements: fills the chosen indices. */
static int64_t slice_indices(jctx *c, int line, int64_t n, wisp_jv *const parts[3], int64_t **out)
{
    int64_t st = 1, a, b;
    if (parts[2] && parts[2]->type != JV_NONE) {
        if (!int_index(parts[2], &st))
            return jinja_fail(c, line, WISP_E_INVALID, "slice step must be an integer"), -1;
        if (st == 0)
            return jinja_fail(c, line, WISP_E_INVALID, "slice step cannot be zero"), -1;
    }
    int64_t lo = st > 0 ? 0 : -1, hi = st > 0 ? n : n - 1;
    for (int k = 0; k < 2; k++) {
        wisp_jv *v = parts[k];
        int64_t *dst = k ? &b : &a;
        if (!v || v->type == JV_NONE) {
            *dst = k == 0 ? (st > 0 ? 0 : n - 1) : (st > 0 ? n : -1);
            continue;
        }
        int64_t x;
        if (!int_index(v, &x))
            return jinja_fail(c, line, WISP_E_INVALID, "slice indices must be integers"), -1;
        if (x < 0) {
            x += n;
            if (x < lo)
                x = lo;
        } else if (x > hi) {
            x = hi;
        }
        *dst = x;
    }
    int64_t count = 0;
    if (st > 0 && b > a)
        count = (b - a + st - 1) / st;
    else if (st < 0 && a > b)
        count = (a - b + (-st) - 1) / (-st);
    int64_t *idx = count ? jinja_alloc(c->env, (size_t)count * sizeof *idx) : NULL;
    if (count && !idx)
        return jinja_fail(c, line, WISP_E_TOO_LARGE, "memory limit reached"), -1;
    for (int64_t k = 0; k < count; k++)
        idx[k] = a + k * st;
    *out = idx;
    return count;
}

wisp_jv *jinja_slice(jctx *c, int line, wisp_jv *obj, wisp_jv *const parts[3])
{
    int64_t *idx = NULL;
    if (obj->type == JV_LIST) {
        int64_t k = slice_indices(c, line, (int64_t)obj->list->n, parts, &idx);
        if (k < 0)
            return NULL;
        wisp_jv *r = jv_list_n(c->env, (size_t)k);
        if (!c->env->oom)
            r->list->tuple = obj->list->tuple; /* a tuple's slice is a tuple */
        for (int64_t i = 0; i < k; i++)
            wisp_jv_list_push(c->env, r, obj->list->v[idx[i]]);
        return r;
    }
    if (obj->type == JV_STR) {
        const char *s = obj->str.s;
        size_t n = obj->str.n, ncp = pystr_len(s, n);
        /* code point start offsets */
        size_t *off = jinja_alloc(c->env, (ncp + 1) * sizeof *off);
        if (!off)
            return jinja_fail(c, line, WISP_E_TOO_LARGE, "memory limit reached");
        size_t i = 0, k = 0;
        while (i < n) {
            off[k++] = i;
            pystr_next(s, n, &i);
        }
        off[k] = n;
        int64_t cnt = slice_indices(c, line, (int64_t)ncp, parts, &idx);
        if (cnt < 0)
            return NULL;
        wisp_buf b = WISP_BUF_INIT;
        int rc = 0;
        for (int64_t j = 0; j < cnt; j++)
            rc |= wisp_buf_append(&b, s + off[idx[j]], off[idx[j] + 1] - off[idx[j]]);
        wisp_jv *r = rc ? jinja_fail(c, line, WISP_E_NOMEM, "out of memory")
                        : wisp_jv_str(c->env, b.data ? b.data : "", b.len);
        wisp_buf_free(&b);
        return r;
    }
    if (obj->type == JV_UNDEF)
        return jinja_undef_access(c, line, obj);
    return jinja_fail(c, line, WISP_E_INVALID, "'%s' object is not subscriptable",
                      jv_type_name(obj));
}

/* ---------------------------------------------------------------- operators */

static double fnum(const wisp_jv *v)
{
    return v->type == JV_FLOAT ? v->f : v->type == JV_INT ? (double)v->i : v->b;
}

static wisp_jv *repeat(jctx *c, int line, wisp_jv *seq, int64_t k)
{
    /* An empty sequence stays empty: k, unbounded then, counts no work. */
    if (k < 0 || (seq->type == JV_STR ? seq->str.n == 0 : seq->list->n == 0))
        k = 0;
    if (seq->type == JV_STR) {
        if (seq->str.n && (uint64_t)k > c->env->lim.max_output / seq->str.n)
            return jinja_fail(c, line, WISP_E_TOO_LARGE, "string repetition too large");
        char *p = jinja_alloc(c->env, seq->str.n * (size_t)k + 1);
        if (!p)
            return jinja_fail(c, line, WISP_E_TOO_LARGE, "memory limit reached");
        for (int64_t i = 0; i < k; i++)
            memcpy(p + (size_t)i * seq->str.n, seq->str.s, seq->str.n);
        wisp_jv *v = jv_new(c->env, JV_STR);
        v->str.s = p;
        v->str.n = seq->str.n * (size_t)k;
        return v;
    }
    if (seq->list->n && (uint64_t)k > 1000000 / seq->list->n)
        return jinja_fail(c, line, WISP_E_TOO_LARGE, "list repetition too large");
    wisp_jv *r = jv_list_n(c->env, seq->list->n * (size_t)k);
    if (!c->env->oom)
        r->list->tuple = seq->list->tuple; /* a tuple repeats into a tuple */
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq->list->n; j++)
            wisp_jv_list_push(c->env, r, seq->list->v[j]);
    return r;
}

wisp_jv *jinja_arith(jctx *c, int line, const char *op, wisp_jv *a, wisp_jv *b)
{
    wisp_jinja_env *env = c->env;
    /* str % Undefined is Python's str.__mod__: Undefined prints empty */
    if (op[0] == '%' && a->type == JV_STR)
        return jinja_percent_format(c, line, a, b);
    if (a->type == JV_UNDEF || b->type == JV_UNDEF)
        return jinja_undef_access(c, line, a->type == JV_UNDEF ? a : b);
    if (op[0] == '+' && a->type == JV_STR && b->type == JV_STR)
        return jv_strcat(env, a->str.s, a->str.n, b->str.s, b->str.n);
    if (op[0] == '+' && a->type == JV_LIST && b->type == JV_LIST &&
        a->list->tuple == b->list->tuple) {
        wisp_jv *r = jv_list_n(env, a->list->n + b->list->n);
        if (!env->oom)
            r->list->tuple = a->list->tuple;
        for (size_t i = 0; i < a->list->n; i++)
            wisp_jv_list_push(env, r, a->list->v[i]);
        for (size_t i = 0; i < b->list->n; i++)
            wisp_jv_list_push(env, r, b->list->v[i]);
        return r;
    }
    if (op[0] == '*' && op[1] == 0) {
        if ((a->type == JV_STR || a->type == JV_LIST) && (b->type == JV_INT || b->type == JV_BOOL))
            return repeat(c, line, a, jinja_inum(b));
        if ((b->type == JV_STR || b->type == JV_LIST) && (a->type == JV_INT || a->type == JV_BOOL))
            return repeat(c, line, b, jinja_inum(a));
    }
    if (op[0] == '+' && a->type == JV_STR)
        return jinja_fail(c, line, WISP_E_INVALID, "can only concatenate str (not \"%s\") to str",
                          jv_type_name(b));
    if (op[0] == '+' && a->type == JV_LIST)
        return jinja_fail(c, line, WISP_E_INVALID, "can only concatenate %s (not \"%s\") to %s",
                          jv_type_name(a), jv_type_name(b), jv_type_name(a));
    if (!jinja_numeric(a) || !jinja_numeric(b))
        return jinja_fail(c, line, WISP_E_INVALID,
                          "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                          jv_type_name(b));
    bool fl = a->type == JV_FLOAT || b->type == JV_FLOAT;
    if (!strcmp(op, "**") && fnum(a) == 0 && fnum(b) < 0)
        return jinja_fail(c, line, WISP_E_INVALID, "0.0 cannot be raised to a negative power");
    if (!strcmp(op, "/")) {
        if (fnum(b) == 0)
            return jinja_fail(c, line, WISP_E_INVALID, "division by zero");
        return wisp_jv_float(env, fnum(a) / fnum(b));
    }
    if (fl) {
        double x = fnum(a), y = fnum(b), r;
        if ((op[0] == '%' || !strcmp(op, "//")) && y == 0)
            return jinja_fail(c, line, WISP_E_INVALID, "float division by zero");
        switch (op[0]) {
        case '+': r = x + y; break;
        case '-': r = x - y; break;
        case '*': r = op[1] ? pow(x, y) : x * y; break;
        case '/': r = floor(x / y); break;
        default:
            r = fmod(x, y);
            if (r != 0 && ((r < 0) != (y < 0)))
                r += y;
            break;
        }
        return wisp_jv_float(env, r);
    }
    int64_t x = jinja_inum(a), y = jinja_inum(b), r = 0;
    bool ovf = false;
    switch (op[0]) {
    case '+': ovf = __builtin_add_overflow(x, y, &r); break;
    case '-': ovf = __builtin_sub_overflow(x, y, &r); break;
    case '*':
        if (op[1]) {
            if (y < 0)
                return wisp_jv_float(env, pow((double)x, (double)y));
            /* By squaring: log2(y) steps, so 1 ** 10**18 ends at once. A
             * square that overflows would be multiplied in by a higher bit
             * of y, so the result overflows too. */
            r = 1;
            int64_t base = x;
            for (int64_t e = y; e > 0 && !ovf;) {
                if (e & 1)
                    ovf = __builtin_mul_overflow(r, base, &r);
                e >>= 1;
                if (e > 0 && !ovf)
                    ovf = __builtin_mul_overflow(base, base, &base);
            }
        } else {
            ovf = __builtin_mul_overflow(x, y, &r);
        }
        break;
    default:
        if (y == 0)
            return jinja_fail(c, line, WISP_E_INVALID, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            ovf = true;
            break;
        }
        if (op[0] == '/') {
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0)))
                r--;
        } else {
            r = x % y;
            if (r != 0 && ((r < 0) != (y < 0)))
                r += y;
        }
    }
    if (ovf)
        return jinja_fail(c, line, WISP_E_INVALID, "integer overflow");
    return wisp_jv_int(env, r);
}

int jinja_contains(jctx *c, int line, wisp_jv *item, wisp_jv *seq)
{
    switch (seq->type) {
    case JV_STR:
        if (item->type != JV_STR) {
            jinja_fail(c, line, WISP_E_INVALID,
                       "'in <string>' requires string as left operand, not %s", jv_type_name(item));
            return -1;
        }
        if (item->str.n == 0)
            return 1;
        return memmem(seq->str.s, seq->str.n, item->str.s, item->str.n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < seq->list->n; i++)
            if (jv_equal(seq->list->v[i], item))
                return 1;
        return 0;
    case JV_DICT:
    case JV_NS: return jv_dict_get(seq, item) != NULL;
    case JV_UNDEF: return 0; /* Undefined iterates empty */
    default:
        jinja_fail(c, line, WISP_E_INVALID, "argument of type '%s' is not iterable",
                   jv_type_name(seq));
        return -1;
    }
}

int jinja_compare(jctx *c, int line, const char *op, wisp_jv *a, wisp_jv *b)
{
    if (!strcmp(op, "=="))
        return jv_equal(a, b);
    if (!strcmp(op, "!="))
        return !jv_equal(a, b);
    if (!strcmp(op, "in"))
        return jinja_contains(c, line, a, b);
    if (!strcmp(op, "not in")) {
        int r = jinja_contains(c, line, a, b);
        return r < 0 ? r : !r;
    }
    int r;
    if (jv_compare(a, b, &r)) {
        jinja_fail(c, line, WISP_E_INVALID, "'%s' not supported between instances of '%s' and '%s'",
                   op, jv_type_name(a), jv_type_name(b));
        return -1;
    }
    if (!strcmp(op, "<"))
        return r < 0;
    if (!strcmp(op, "<="))
        return r <= 0;
    if (!strcmp(op, ">"))
        return r > 0;
    return r >= 0;
}
