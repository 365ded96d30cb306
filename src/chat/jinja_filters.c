/*
 * jinja_filters.c - the filters chat templates use (`x | tojson`, ...), one table, with
 * jinja2's behaviour for each. transformers' tojson replaces jinja2's:
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_builtins_int.h"

/* ---------------------------------------------------------------- filters */

static wisp_jv *f_tojson(jctx *c, wisp_jv *v, const jargs *a)
{
    jjson_opts o = {.ensure_ascii = arg_true(a, 0, "ensure_ascii"),
                    .indent = -1,
                    .sort_keys = arg_true(a, 3, "sort_keys")};
    wisp_jv *ind = jinja_arg(a, 1, "indent");
    if (ind && ind->type != JV_NONE) {
        if (ind->type != JV_INT || ind->i < 0 || ind->i > 64)
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "tojson: indent must be an integer 0..64");
        o.indent = (int)ind->i;
    }
    o.item_sep = o.indent >= 0 ? "," : ", ";
    o.key_sep = ": ";
    wisp_jv *sep = jinja_arg(a, 2, "separators");
    if (sep && sep->type != JV_NONE) {
        if (sep->type != JV_LIST || sep->list->n != 2 || sep->list->v[0]->type != JV_STR ||
            sep->list->v[1]->type != JV_STR)
            return jinja_fail(c, a->line, WISP_E_INVALID, "tojson: separators must be two strings");
        o.item_sep = sep->list->v[0]->str.s;
        o.key_sep = sep->list->v[1]->str.s;
    }
    wisp_buf b = WISP_BUF_INIT;
    const char *bad = NULL;
    int rc = jv_json_append(&b, v, &o, 0, &bad);
    if (rc < 0 && bad) {
        wisp_buf_free(&b);
        return jinja_fail(c, a->line, WISP_E_INVALID, "Object of type %s is not JSON serializable",
                          bad);
    }
    return buf_value(c, a->line, &b, rc);
}

static wisp_jv *f_trim(jctx *c, wisp_jv *v, const jargs *a)
{
    return jinja_str_strip(c, v, a, true, true);
}

/* jinja2's format: str(value) % args, or % kwargs as a dict. */
static wisp_jv *f_format(jctx *c, wisp_jv *v, const jargs *a)
{
    if (a->npos && a->nkw)
        return jinja_fail(c, a->line, WISP_E_INVALID,
                          "can't handle positional and keyword arguments at the same time");
    wisp_jv *args;
    if (a->nkw) {
        args = wisp_jv_dict(c->env);
        for (size_t i = 0; i < a->nkw; i++)
            wisp_jv_dict_set(c->env, args, a->kwname[i], strlen(a->kwname[i]), a->kwval[i]);
    } else {
        args = jv_list_n(c->env, a->npos);
        if (!c->env->oom)
            args->list->tuple = true;
        for (size_t i = 0; i < a->npos; i++)
            wisp_jv_list_push(c->env, args, a->pos[i]);
    }
    if (c->env->oom)
        return jinja_fail(c, a->line, WISP_E_TOO_LARGE, "memory limit reached");
    wisp_jv *fmt = v->type == JV_UNDEF ? c->env->empty : S(c, v);
    return jinja_percent_format(c, a->line, fmt, args);
}

static wisp_jv *f_length(jctx *c, wisp_jv *v, const jargs *a)
{
    switch (v->type) {
    case JV_STR: return wisp_jv_int(c->env, (int64_t)pystr_len(v->str.s, v->str.n));
    case JV_LIST: return wisp_jv_int(c->env, (int64_t)v->list->n);
    case JV_DICT: return wisp_jv_int(c->env, (int64_t)v->dict->n);
    case JV_UNDEF: return wisp_jv_int(c->env, 0);
    default:
        return jinja_fail(c, a->line, WISP_E_INVALID, "object of type '%s' has no len()",
                          jv_type_name(v));
    }
}

static wisp_jv *f_first(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    return l->list->n ? l->list->v[0] : jv_undef(c->env, "No first item, sequence was empty.");
}

static wisp_jv *f_last(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    return l->list->n ? l->list->v[l->list->n - 1]
                      : jv_undef(c->env, "No last item, sequence was empty.");
}

/* Resolves "a.b.0" on item the way jinja2's attribute getter does. */
static wisp_jv *attr_path(jctx *c, int line, wisp_jv *item, wisp_jv *path)
{
    if (path->type == JV_INT)
        return jinja_getitem(c, line, item, path);
    wisp_jv *p = S(c, path);
    const char *s = p->str.s;
    size_t n = p->str.n, i = 0;
    while (item && i <= n) {
        const char *dot = memchr(s + i, '.', n - i);
        size_t e = dot ? (size_t)(dot - s) : n;
        wisp_jv *key;
        char *end;
        char part[64];
        size_t pl = e - i < sizeof part - 1 ? e - i : sizeof part - 1;
        memcpy(part, s + i, pl);
        part[pl] = 0;
        long long iv = strtoll(part, &end, 10);
        key = pl && *end == 0 ? wisp_jv_int(c->env, iv) : wisp_jv_str(c->env, s + i, e - i);
        if (item->type == JV_UNDEF)
            return item;
        item = jinja_getitem(c, line, item, key);
        i = e + 1;
        if (!dot)
            break;
    }
    return item;
}

static wisp_jv *f_join(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    const char *d = "";
    size_t dn = 0;
    arg_str(c, a, 0, "d", &d, &dn);
    wisp_jv *attr = jinja_arg(a, 1, "attribute");
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < l->list->n; i++) {
        wisp_jv *x = l->list->v[i];
        if (attr && attr->type != JV_NONE && !(x = attr_path(c, a->line, x, attr))) {
            wisp_buf_free(&b);
            return NULL;
        }
        if (i)
            rc |= wisp_buf_append(&b, d, dn);
        rc |= jv_str_append(&b, x);
    }
    return buf_value(c, a->line, &b, rc);
}

static wisp_jv *f_default(jctx *c, wisp_jv *v, const jargs *a)
{
    bool boolean = arg_true(a, 1, "boolean");
    if (v->type == JV_UNDEF || (boolean && !jv_truthy(v))) {
        wisp_jv *d = jinja_arg(a, 0, "default_value");
        return d ? d : c->env->empty;
    }
    return v;
}

static wisp_jv *f_items(jctx *c, wisp_jv *v, const jargs *a)
{
    if (v->type == JV_UNDEF)
        return wisp_jv_list(c->env);
    if (v->type != JV_DICT)
        return jinja_fail(c, a->line, WISP_E_INVALID,
                          "items: can only be used on a mapping, not %s", jv_type_name(v));
    return jinja_dict_pairs(c, v);
}

static wisp_jv *f_list(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l || l != v)
        return l;
    wisp_jv *copy = jv_list_n(c->env, l->list->n);
    for (size_t i = 0; i < l->list->n; i++)
        wisp_jv_list_push(c->env, copy, l->list->v[i]);
    return copy;
}

static wisp_jv *f_string(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)a;
    return S(c, v);
}
static wisp_jv *f_safe(jctx *c, wisp_jv *v, const jargs *a)
{
    (void)a;
    return S(c, v);
}
static wisp_jv *f_upper(jctx *c, wisp_jv *v, const jargs *a)
{
    return jinja_str_case(c, v, a->line, PYSTR_UPPER);
}
static wisp_jv *f_lower(jctx *c, wisp_jv *v, const jargs *a)
{
    return jinja_str_case(c, v, a->line, PYSTR_LOWER);
}
static wisp_jv *f_title(jctx *c, wisp_jv *v, const jargs *a)
{
    return jinja_str_case(c, v, a->line, PYSTR_TITLE);
}
static wisp_jv *f_capitalize(jctx *c, wisp_jv *v, const jargs *a)
{
    return jinja_str_case(c, v, a->line, PYSTR_CAPITALIZE);
}

static wisp_jv *f_int(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *d = jinja_arg(a, 0, "default");
    switch (v->type) {
    case JV_INT: return v;
    case JV_BOOL: return wisp_jv_int(c->env, v->b);
    case JV_FLOAT:
        if (isfinite(v->f) && fabs(v->f) < 9.2e18)
            return wisp_jv_int(c->env, (int64_t)v->f);
        break;
    case JV_STR: {
        char tmp[64];
        size_t st, len;
        pystr_strip(v->str.s, v->str.n, NULL, 0, true, true, &st, &len);
        if (len && len < sizeof tmp) {
            size_t k = 0;
            for (size_t i = 0; i < len; i++)
                if (v->str.s[st + i] != '_')
                    tmp[k++] = v->str.s[st + i];
            tmp[k] = 0;
            char *end;
            long long x = strtoll(tmp, &end, 10);
            if (*end == 0 && k)
                return wisp_jv_int(c->env, x);
            double f = strtod(tmp, &end);
            if (*end == 0 && isfinite(f) && fabs(f) < 9.2e18)
                return wisp_jv_int(c->env, (int64_t)f);
        }
        break;
    }
    default: break;
    }
    return d ? d : wisp_jv_int(c->env, 0);
}

static wisp_jv *f_float(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *d = jinja_arg(a, 0, "default");
    if (v->type == JV_FLOAT)
        return v;
    if (v->type == JV_INT || v->type == JV_BOOL)
        return wisp_jv_float(c->env, v->type == JV_INT ? (double)v->i : v->b);
    if (v->type == JV_STR) {
        char *end;
        char *tmp = jinja_strdup(c->env, v->str.s, v->str.n);
        double f = tmp ? strtod(tmp, &end) : 0;
        if (tmp && end != tmp && *end == 0)
            return wisp_jv_float(c->env, f);
    }
    return d ? d : wisp_jv_float(c->env, 0);
}

static wisp_jv *f_replace(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *old = jinja_arg(a, 0, "old"), *new_ = jinja_arg(a, 1, "new");
    if (!old || !new_)
        return jinja_fail(c, a->line, WISP_E_INVALID, "replace needs two arguments");
    wisp_jv *cnt = jinja_arg(a, 2, "count");
    return jinja_str_replace(c, S(c, v), S(c, old), S(c, new_),
                             cnt && cnt->type == JV_INT ? cnt->i : -1, a->line);
}

static wisp_jv *f_indent(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *w = jinja_arg(a, 0, "width");
    const char *ind = "    ";
    size_t indn = 4;
    if (w && w->type == JV_STR) {
        ind = w->str.s;
        indn = w->str.n;
    } else if (w) {
        if (w->type != JV_INT || w->i < 0 || w->i > 1000)
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "indent: width must be a string or 0..1000");
        char *sp = jinja_alloc(c->env, (size_t)w->i + 1);
        if (!sp)
            return nomem(c, a->line);
        memset(sp, ' ', (size_t)w->i);
        ind = sp;
        indn = (size_t)w->i;
    }
    bool first = arg_true(a, 1, "first"), blank = arg_true(a, 2, "blank");
    /* jinja2: s += "\n"; then splitlines(), so a trailing newline is kept
     * as one empty line */
    wisp_jv *s = S(c, v);
    wisp_jv *withnl = jv_strcat(c->env, s->str.s, s->str.n, "\n", 1);
    jargs none = {.line = a->line};
    wisp_jv *lines = jinja_str_splitlines(c, withnl, &none);
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    if (first)
        rc |= wisp_buf_append(&b, ind, indn);
    for (size_t i = 0; i < lines->list->n; i++) {
        wisp_jv *ln = lines->list->v[i];
        if (i) {
            rc |= wisp_buf_append(&b, "\n", 1);
            if (blank || ln->str.n)
                rc |= wisp_buf_append(&b, ind, indn);
        }
        rc |= wisp_buf_append(&b, ln->str.s, ln->str.n);
    }
    return buf_value(c, a->line, &b, rc);
}

static wisp_jv *f_map(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    wisp_jv *attr = jinja_arg(a, a->npos, "attribute");
    wisp_jv *out = jv_list_n(c->env, l->list->n);
    if (attr && !a->npos) {
        wisp_jv *dflt = jinja_arg(a, a->npos, "default");
        for (size_t i = 0; i < l->list->n; i++) {
            wisp_jv *x = attr_path(c, a->line, l->list->v[i], attr);
            if (!x)
                return NULL;
            wisp_jv_list_push(c->env, out, x->type == JV_UNDEF && dflt ? dflt : x);
        }
        return out;
    }
    wisp_jv *name = jinja_arg(a, 0, NULL);
    if (!name || name->type != JV_STR)
        return jinja_fail(c, a->line, WISP_E_INVALID, "map: expected a filter name or attribute=");
    jfilter fl = jinja_filter_find(name->str.s);
    if (!fl)
        return jinja_fail(c, a->line, WISP_E_INVALID, "unknown filter '%s'", name->str.s);
    jargs rest = *a;
    rest.pos++;
    rest.npos--;
    for (size_t i = 0; i < l->list->n; i++) {
        wisp_jv *x = fl(c, l->list->v[i], &rest);
        if (!x)
            return NULL;
        wisp_jv_list_push(c->env, out, x);
    }
    return out;
}

/* select/reject(test, args...) and selectattr/rejectattr(attr, test, args...). */
static wisp_jv *select_impl(jctx *c, wisp_jv *v, const jargs *a, bool by_attr, bool keep)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    size_t k = 0;
    wisp_jv *attr = NULL;
    if (by_attr) {
        attr = jinja_arg(a, k++, NULL);
        if (!attr)
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "selectattr/rejectattr need an attribute");
    }
    wisp_jv *tname = jinja_arg(a, k++, NULL);
    jtest t = NULL;
    int nargs = 0;
    if (tname) {
        if (tname->type != JV_STR || !(t = jinja_test_find(tname->str.s, &nargs)))
            return jinja_fail(c, a->line, WISP_E_INVALID, "unknown test '%s'",
                              tname->type == JV_STR ? tname->str.s : "?");
    }
    jargs rest = {.line = a->line};
    if (a->npos > k) {
        rest.pos = a->pos + k;
        rest.npos = a->npos - k;
    }
    if (t && !jinja_test_args_ok(c, tname->str.s, nargs, &rest))
        return NULL;
    wisp_jv *out = wisp_jv_list(c->env);
    for (size_t i = 0; i < l->list->n; i++) {
        wisp_jv *x = l->list->v[i];
        if (attr && !(x = attr_path(c, a->line, x, attr)))
            return NULL;
        int r = t ? t(c, x, &rest) : jv_truthy(x);
        if (r < 0)
            return NULL;
        if ((r != 0) == keep)
            wisp_jv_list_push(c->env, out, l->list->v[i]);
    }
    return out;
}

static wisp_jv *f_select(jctx *c, wisp_jv *v, const jargs *a)
{
    return select_impl(c, v, a, false, true);
}
static wisp_jv *f_reject(jctx *c, wisp_jv *v, const jargs *a)
{
    return select_impl(c, v, a, false, false);
}
static wisp_jv *f_selectattr(jctx *c, wisp_jv *v, const jargs *a)
{
    return select_impl(c, v, a, true, true);
}
static wisp_jv *f_rejectattr(jctx *c, wisp_jv *v, const jargs *a)
{
    return select_impl(c, v, a, true, false);
}

/* The comparison key of a value: lowercased when case does not matter. */
static wisp_jv *fold(jctx *c, wisp_jv *x, bool case_sensitive)
{
    if (case_sensitive || x->type != JV_STR)
        return x;
    return jinja_str_case(c, x, 0, PYSTR_LOWER);
}

static wisp_jv *f_unique(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    bool cs = arg_true(a, 0, "case_sensitive");
    wisp_jv *attr = jinja_arg(a, 1, "attribute");
    wisp_jv *seen = wisp_jv_list(c->env), *out = wisp_jv_list(c->env);
    for (size_t i = 0; i < l->list->n; i++) {
        wisp_jv *x = l->list->v[i], *key = x;
        if (attr && attr->type != JV_NONE && !(key = attr_path(c, a->line, x, attr)))
            return NULL;
        key = fold(c, key, cs);
        if (!key)
            return NULL;
        bool dup = false;
        for (size_t j = 0; j < seen->list->n && !dup; j++)
            dup = jv_equal(seen->list->v[j], key);
        if (!dup) {
            wisp_jv_list_push(c->env, seen, key);
            wisp_jv_list_push(c->env, out, x);
        }
    }
    return out;
}

typedef struct sort_item {
    wisp_jv *key, *val;
    size_t idx;
} sort_item;

/* One sort's state for its comparator (qsort_r: no global, so templates
 * may render on any number of threads). */
typedef struct sort_ctx {
    bool reverse;
    bool failed; /* two keys had no order */
} sort_ctx;

/* Python's sorted(): reverse flips the order of the keys, not of the
 * result, so equal keys keep their input order either way. */
static int sort_cmp(const void *x, const void *y, void *ud)
{
    const sort_item *a = x, *b = y;
    sort_ctx *s = ud;
    int r = 0;
    if (jv_compare(a->key, b->key, &r))
        s->failed = true;
    if (s->reverse)
        r = -r;
    return r ? r : (a->idx < b->idx ? -1 : 1); /* stable, as Python's sort */
}

static wisp_jv *sorted(jctx *c, int line, wisp_jv *items, wisp_jv *keys, bool reverse)
{
    size_t n = items->list->n;
    sort_item *tmp = n ? jinja_alloc(c->env, n * sizeof *tmp) : NULL;
    if (n && !tmp)
        return nomem(c, line);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (sort_item){keys->list->v[i], items->list->v[i], i};
    sort_ctx sc = {.reverse = reverse};
    if (n)
        qsort_r(tmp, n, sizeof *tmp, sort_cmp, &sc);
    if (sc.failed)
        return jinja_fail(c, line, WISP_E_INVALID, "'<' not supported between these values");
    wisp_jv *out = jv_list_n(c->env, n);
    for (size_t i = 0; i < n; i++)
        wisp_jv_list_push(c->env, out, tmp[i].val);
    return out;
}

static wisp_jv *f_dictsort(jctx *c, wisp_jv *v, const jargs *a)
{
    if (v->type != JV_DICT)
        return jinja_fail(c, a->line, WISP_E_INVALID, "dictsort: expected a mapping, got %s",
                          jv_type_name(v));
    bool cs = arg_true(a, 0, "case_sensitive");
    wisp_jv *by = jinja_arg(a, 1, "by");
    bool by_value = by && by->type == JV_STR && !strcmp(by->str.s, "value");
    wisp_jv *pairs = jinja_dict_pairs(c, v), *keys = jv_list_n(c->env, v->dict->n);
    for (size_t i = 0; i < v->dict->n; i++)
        wisp_jv_list_push(c->env, keys, fold(c, by_value ? v->dict->v[i] : v->dict->k[i], cs));
    return sorted(c, a->line, pairs, keys, arg_true(a, 2, "reverse"));
}

static wisp_jv *f_sort(jctx *c, wisp_jv *v, const jargs *a)
{
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    bool cs = arg_true(a, 1, "case_sensitive");
    wisp_jv *attr = jinja_arg(a, 2, "attribute");
    wisp_jv *keys = jv_list_n(c->env, l->list->n);
    for (size_t i = 0; i < l->list->n; i++) {
        wisp_jv *k = l->list->v[i];
        if (attr && attr->type != JV_NONE && !(k = attr_path(c, a->line, k, attr)))
            return NULL;
        wisp_jv_list_push(c->env, keys, fold(c, k, cs));
    }
    return sorted(c, a->line, l, keys, arg_true(a, 0, "reverse"));
}

static wisp_jv *f_reverse(jctx *c, wisp_jv *v, const jargs *a)
{
    if (v->type == JV_STR) {
        wisp_jv *chars = jinja_iterable(c, a->line, v);
        wisp_buf b = WISP_BUF_INIT;
        int rc = 0;
        for (size_t i = chars->list->n; i-- > 0;)
            rc |= wisp_buf_append(&b, chars->list->v[i]->str.s, chars->list->v[i]->str.n);
        return buf_value(c, a->line, &b, rc);
    }
    wisp_jv *l = jinja_iterable(c, a->line, v);
    if (!l)
        return NULL;
    wisp_jv *out = jv_list_n(c->env, l->list->n);
    for (size_t i = l->list->n; i-- > 0;)
        wisp_jv_list_push(c->env, out, l->list->v[i]);
    return out;
}

static wisp_jv *f_abs(jctx *c, wisp_jv *v, const jargs *a)
{
    if (v->type == JV_INT && v->i != INT64_MIN)
        return v->i < 0 ? wisp_jv_int(c->env, -v->i) : v;
    if (v->type == JV_FLOAT)
        return wisp_jv_float(c->env, fabs(v->f));
    return jinja_fail(c, a->line, WISP_E_INVALID, "bad operand type for abs(): '%s'",
                      jv_type_name(v));
}

typedef struct filter_row {
    const char *name;
    jfilter fn;
} filter_row;

static const filter_row filters[] = {
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"format", f_format},
    {"length", f_length},
    {"count", f_length},
    {"first", f_first},
    {"last", f_last},
    {"join", f_join},
    {"default", f_default},
    {"d", f_default},
    {"items", f_items},
    {"list", f_list},
    {"string", f_string},
    {"int", f_int},
    {"float", f_float},
    {"upper", f_upper},
    {"lower", f_lower},
    {"title", f_title},
    {"capitalize", f_capitalize},
    {"replace", f_replace},
    {"safe", f_safe},
    {"map", f_map},
    {"select", f_select},
    {"reject", f_reject},
    {"selectattr", f_selectattr},
    {"rejectattr", f_rejectattr},
    {"unique", f_unique},
    {"indent", f_indent},
    {"dictsort", f_dictsort},
    {"sort", f_sort},
    {"reverse", f_reverse},
    {"abs", f_abs},
};

jfilter jinja_filter_find(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name))
            return filters[i].fn;
    return NULL;
}
