/*
 * jinja_builtins.c - the filters, tests, methods and globals chat templates
 * use, one table each, with jinja2's (and Python's) behaviour for each.
 * transformers' tojson replaces jinja2's: json.dumps(x, ensure_ascii=False,
 * indent=None, separators=None, sort_keys=False).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

#define MAX_RANGE 100000 /* jinja2's sandbox refuses longer ranges */

wisp_jv *jinja_arg(const jargs *a, size_t i, const char *name)
{
    if (i < a->npos)
        return a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwname[k], name))
            return a->kwval[k];
    return NULL;
}

static wisp_jv *nomem(jctx *c, int line)
{
    return jinja_fail(c, line, WISP_E_NOMEM, "out of memory");
}

static wisp_jv *buf_value(jctx *c, int line, wisp_buf *b, int rc)
{
    wisp_jv *r = rc ? nomem(c, line) : wisp_jv_str(c->env, b->data ? b->data : "", b->len);
    wisp_buf_free(b);
    return r;
}

/* str(v) as a string value; NULL on error. */
static wisp_jv *S(jctx *c, const wisp_jv *v) { return jv_to_str(c->env, v); }

static bool arg_true(const jargs *a, size_t i, const char *name)
{
    wisp_jv *v = jinja_arg(a, i, name);
    return v && jv_truthy(v);
}

static bool arg_str(jctx *c, const jargs *a, size_t i, const char *name, const char **s, size_t *n)
{
    wisp_jv *v = jinja_arg(a, i, name);
    if (!v || v->type == JV_NONE)
        return false;
    v = S(c, v);
    *s = v->str.s;
    *n = v->str.n;
    return true;
}

static wisp_jv *need_str(jctx *c, const jargs *a, size_t i, const char *name, const char *who)
{
    wisp_jv *v = jinja_arg(a, i, name);
    if (!v)
        return jinja_fail(c, a->line, WISP_E_INVALID, "%s() missing a required argument", who);
    if (v->type != JV_STR)
        return jinja_fail(c, a->line, WISP_E_INVALID, "%s() argument must be str, not %s", who,
                          jv_type_name(v));
    return v;
}

/* ---------------------------------------------------------------- string operations */

static wisp_jv *str_strip_impl(jctx *c, wisp_jv *self, const jargs *a, bool l, bool r)
{
    wisp_jv *s = S(c, self);
    const char *chars = NULL;
    size_t cn = 0;
    wisp_jv *ch = jinja_arg(a, 0, "chars");
    if (ch && ch->type != JV_NONE) {
        if (ch->type != JV_STR)
            return jinja_fail(c, a->line, WISP_E_INVALID, "strip arg must be None or str");
        chars = ch->str.s;
        cn = ch->str.n;
    }
    size_t st, len;
    pystr_strip(s->str.s, s->str.n, chars, cn, l, r, &st, &len);
    return wisp_jv_str(c->env, s->str.s + st, len);
}

static wisp_jv *m_strip(jctx *c, wisp_jv *self, const jargs *a)
{
    return str_strip_impl(c, self, a, true, true);
}
static wisp_jv *m_lstrip(jctx *c, wisp_jv *self, const jargs *a)
{
    return str_strip_impl(c, self, a, true, false);
}
static wisp_jv *m_rstrip(jctx *c, wisp_jv *self, const jargs *a)
{
    return str_strip_impl(c, self, a, false, true);
}

static wisp_jv *split_impl(jctx *c, wisp_jv *self, const jargs *a, bool from_right)
{
    wisp_jinja_env *env = c->env;
    const char *s = self->str.s;
    size_t n = self->str.n;
    wisp_jv *sepv = jinja_arg(a, 0, "sep"), *maxv = jinja_arg(a, 1, "maxsplit");
    int64_t maxsplit = -1;
    if (maxv) {
        if (maxv->type != JV_INT)
            return jinja_fail(c, a->line, WISP_E_INVALID, "maxsplit must be an integer");
        maxsplit = maxv->i;
    }
    wisp_jv *out = wisp_jv_list(env);
    if (!sepv || sepv->type == JV_NONE) {
        /* runs of whitespace separate; no empty strings */
        if (!from_right) {
            size_t i = 0;
            int64_t splits = 0;
            for (;;) {
                while (i < n) {
                    size_t j = i;
                    if (!pystr_isspace(pystr_next(s, n, &j)))
                        break;
                    i = j;
                }
                if (i >= n)
                    break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t st, len;
                    pystr_strip(s + i, n - i, NULL, 0, false, true, &st, &len);
                    wisp_jv_list_push(env, out, wisp_jv_str(env, s + i, len));
                    break;
                }
                size_t start = i;
                while (i < n) {
                    size_t j = i;
                    if (pystr_isspace(pystr_next(s, n, &j)))
                        break;
                    i = j;
                }
                wisp_jv_list_push(env, out, wisp_jv_str(env, s + start, i - start));
                splits++;
            }
            return out;
        }
        /* rsplit(None, k): split from the right */
        wisp_jv *rev = wisp_jv_list(env);
        size_t end = n;
        int64_t splits = 0;
        for (;;) {
            size_t st, len;
            pystr_strip(s, end, NULL, 0, false, true, &st, &len);
            end = len;
            if (end == 0)
                break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                pystr_strip(s, end, NULL, 0, true, false, &st, &len);
                wisp_jv_list_push(env, rev, wisp_jv_str(env, s + st, len));
                break;
            }
            size_t b = end;
            while (b > 0) {
                size_t k = b - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
                    k--;
                size_t j = k;
                if (pystr_isspace(pystr_next(s, end, &j)))
                    break;
                b = k;
            }
            wisp_jv_list_push(env, rev, wisp_jv_str(env, s + b, end - b));
            end = b;
            splits++;
        }
        for (size_t i = rev->list->n; i-- > 0;)
            wisp_jv_list_push(env, out, rev->list->v[i]);
        return out;
    }
    if (sepv->type != JV_STR)
        return jinja_fail(c, a->line, WISP_E_INVALID, "must be str or None, not %s",
                          jv_type_name(sepv));
    if (sepv->str.n == 0)
        return jinja_fail(c, a->line, WISP_E_INVALID, "empty separator");
    const char *sep = sepv->str.s;
    size_t sn = sepv->str.n;
    if (!from_right) {
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || splits < maxsplit) && i <= n
                                  ? memmem(s + i, n - i, sep, sn)
                                  : NULL;
            if (!hit) {
                wisp_jv_list_push(env, out, wisp_jv_str(env, s + i, n - i));
                return out;
            }
            size_t at = (size_t)(hit - s);
            wisp_jv_list_push(env, out, wisp_jv_str(env, s + i, at - i));
            i = at + sn;
            splits++;
        }
    }
    wisp_jv *rev = wisp_jv_list(env);
    size_t end = n;
    int64_t splits = 0;
    for (;;) {
        size_t at = SIZE_MAX;
        if ((maxsplit < 0 || splits < maxsplit) && end >= sn)
            for (size_t k = end - sn + 1; k-- > 0;)
                if (memcmp(s + k, sep, sn) == 0) {
                    at = k;
                    break;
                }
        if (at == SIZE_MAX) {
            wisp_jv_list_push(env, rev, wisp_jv_str(env, s, end));
            break;
        }
        wisp_jv_list_push(env, rev, wisp_jv_str(env, s + at + sn, end - at - sn));
        end = at;
        splits++;
    }
    for (size_t i = rev->list->n; i-- > 0;)
        wisp_jv_list_push(env, out, rev->list->v[i]);
    return out;
}

static wisp_jv *m_split(jctx *c, wisp_jv *self, const jargs *a)
{
    return split_impl(c, self, a, false);
}
static wisp_jv *m_rsplit(jctx *c, wisp_jv *self, const jargs *a)
{
    return split_impl(c, self, a, true);
}

static wisp_jv *m_splitlines(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *out = wisp_jv_list(c->env);
    const char *s = self->str.s;
    size_t n = self->str.n, i = 0, start = 0;
    bool keep = arg_true(a, 0, "keepends");
    while (i < n) {
        size_t at = i;
        int32_t ch = pystr_next(s, n, &i);
        bool br = ch == '\n' || ch == '\r' || ch == 0x0b || ch == 0x0c ||
                  (ch >= 0x1c && ch <= 0x1e) || ch == 0x85 || ch == 0x2028 || ch == 0x2029;
        if (!br)
            continue;
        if (ch == '\r' && i < n && s[i] == '\n')
            i++;
        wisp_jv_list_push(c->env, out, wisp_jv_str(c->env, s + start, (keep ? i : at) - start));
        start = i;
    }
    if (start < n)
        wisp_jv_list_push(c->env, out, wisp_jv_str(c->env, s + start, n - start));
    return out;
}

static wisp_jv *affix_impl(jctx *c, wisp_jv *self, const jargs *a, bool end)
{
    wisp_jv *p = jinja_arg(a, 0, NULL);
    if (!p)
        return jinja_fail(c, a->line, WISP_E_INVALID, "%s() takes at least 1 argument",
                          end ? "endswith" : "startswith");
    size_t np = p->type == JV_LIST ? p->list->n : 1;
    for (size_t i = 0; i < np; i++) {
        wisp_jv *x = p->type == JV_LIST ? p->list->v[i] : p;
        if (x->type != JV_STR)
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "%s first arg must be str or a tuple of str, not %s",
                              end ? "endswith" : "startswith", jv_type_name(x));
        if (x->str.n <= self->str.n &&
            memcmp(self->str.s + (end ? self->str.n - x->str.n : 0), x->str.s, x->str.n) == 0)
            return c->env->t;
    }
    return c->env->f;
}

static wisp_jv *m_startswith(jctx *c, wisp_jv *self, const jargs *a)
{
    return affix_impl(c, self, a, false);
}
static wisp_jv *m_endswith(jctx *c, wisp_jv *self, const jargs *a)
{
    return affix_impl(c, self, a, true);
}

static wisp_jv *case_impl(jctx *c, wisp_jv *v, int line, int mode)
{
    wisp_jv *s = S(c, v);
    wisp_buf b = WISP_BUF_INIT;
    int rc = pystr_case(&b, s->str.s, s->str.n, mode);
    return buf_value(c, line, &b, rc);
}

static wisp_jv *m_upper(jctx *c, wisp_jv *self, const jargs *a)
{
    return case_impl(c, self, a->line, PYSTR_UPPER);
}
static wisp_jv *m_lower(jctx *c, wisp_jv *self, const jargs *a)
{
    return case_impl(c, self, a->line, PYSTR_LOWER);
}
static wisp_jv *m_title(jctx *c, wisp_jv *self, const jargs *a)
{
    return case_impl(c, self, a->line, PYSTR_TITLE);
}
static wisp_jv *m_capitalize(jctx *c, wisp_jv *self, const jargs *a)
{
    return case_impl(c, self, a->line, PYSTR_CAPITALIZE);
}

static wisp_jv *replace_impl(jctx *c, wisp_jv *s, wisp_jv *old, wisp_jv *new_, int64_t count,
                             int line)
{
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    const char *p = s->str.s;
    size_t n = s->str.n, i = 0;
    int64_t done = 0;
    if (old->str.n == 0) {
        /* an empty pattern matches between every character */
        while (!rc && (count < 0 || done < count)) {
            rc |= wisp_buf_append(&b, new_->str.s, new_->str.n);
            done++;
            if (i >= n)
                break;
            size_t j = i;
            pystr_next(p, n, &j);
            rc |= wisp_buf_append(&b, p + i, j - i);
            i = j;
        }
        rc |= wisp_buf_append(&b, p + i, n - i);
        if (c->out_total + b.len > c->env->lim.max_output)
            rc = 1;
        return buf_value(c, line, &b, rc);
    }
    while (!rc && (count < 0 || done < count)) {
        const char *hit = memmem(p + i, n - i, old->str.s, old->str.n);
        if (!hit)
            break;
        size_t at = (size_t)(hit - p);
        rc |= wisp_buf_append(&b, p + i, at - i);
        rc |= wisp_buf_append(&b, new_->str.s, new_->str.n);
        i = at + old->str.n;
        done++;
        if (b.len > c->env->lim.max_output)
            rc = 1;
    }
    rc |= wisp_buf_append(&b, p + i, n - i);
    return buf_value(c, line, &b, rc);
}

static wisp_jv *m_replace(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *old = need_str(c, a, 0, "old", "replace"),
            *new_ = old ? need_str(c, a, 1, "new", "replace") : NULL;
    if (!new_)
        return NULL;
    wisp_jv *cnt = jinja_arg(a, 2, "count");
    return replace_impl(c, self, old, new_, cnt && cnt->type == JV_INT ? cnt->i : -1, a->line);
}

static wisp_jv *find_impl(jctx *c, wisp_jv *self, const jargs *a, bool right)
{
    wisp_jv *sub = need_str(c, a, 0, "sub", right ? "rfind" : "find");
    if (!sub)
        return NULL;
    const char *s = self->str.s;
    size_t n = self->str.n, at = SIZE_MAX;
    if (!right) {
        const char *hit = memmem(s, n, sub->str.s, sub->str.n);
        if (hit)
            at = (size_t)(hit - s);
    } else if (sub->str.n <= n) {
        for (size_t k = n - sub->str.n + 1; k-- > 0;)
            if (memcmp(s + k, sub->str.s, sub->str.n) == 0) {
                at = k;
                break;
            }
    }
    return wisp_jv_int(c->env, at == SIZE_MAX ? -1 : (int64_t)pystr_len(s, at));
}

static wisp_jv *m_find(jctx *c, wisp_jv *self, const jargs *a)
{
    return find_impl(c, self, a, false);
}
static wisp_jv *m_rfind(jctx *c, wisp_jv *self, const jargs *a)
{
    return find_impl(c, self, a, true);
}

static wisp_jv *m_str_count(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *sub = need_str(c, a, 0, "sub", "count");
    if (!sub)
        return NULL;
    int64_t k = 0;
    if (sub->str.n == 0)
        return wisp_jv_int(c->env, (int64_t)pystr_len(self->str.s, self->str.n) + 1);
    for (size_t i = 0; i + sub->str.n <= self->str.n;) {
        const char *hit = memmem(self->str.s + i, self->str.n - i, sub->str.s, sub->str.n);
        if (!hit)
            break;
        k++;
        i = (size_t)(hit - self->str.s) + sub->str.n;
    }
    return wisp_jv_int(c->env, k);
}

static wisp_jv *m_str_join(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *seq = jinja_arg(a, 0, NULL);
    wisp_jv *items = seq ? jinja_iterable(c, a->line, seq) : NULL;
    if (!items)
        return seq ? NULL
                   : jinja_fail(c, a->line, WISP_E_INVALID, "join() takes exactly one argument");
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < items->list->n; i++) {
        if (items->list->v[i]->type != JV_STR) {
            wisp_buf_free(&b);
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "sequence item %zu: expected str instance, %s found", i,
                              jv_type_name(items->list->v[i]));
        }
        if (i)
            rc |= wisp_buf_append(&b, self->str.s, self->str.n);
        rc |= wisp_buf_append(&b, items->list->v[i]->str.s, items->list->v[i]->str.n);
    }
    return buf_value(c, a->line, &b, rc);
}

typedef bool (*char_pred)(int32_t ch);
static bool p_digit(int32_t ch) { return ch >= '0' && ch <= '9'; }
static bool p_alpha(int32_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch > 0x7f;
}
static bool p_alnum(int32_t ch) { return p_digit(ch) || p_alpha(ch); }

static wisp_jv *is_all(jctx *c, wisp_jv *self, char_pred p)
{
    size_t i = 0;
    if (self->str.n == 0)
        return c->env->f;
    while (i < self->str.n)
        if (!p(pystr_next(self->str.s, self->str.n, &i)))
            return c->env->f;
    return c->env->t;
}

static wisp_jv *m_isdigit(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    return is_all(c, self, p_digit);
}
static wisp_jv *m_isalpha(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    return is_all(c, self, p_alpha);
}
static wisp_jv *m_isalnum(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    return is_all(c, self, p_alnum);
}
static wisp_jv *m_isspace(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    return is_all(c, self, pystr_isspace);
}

/* ---------------------------------------------------------------- dict and list methods */

static wisp_jv *pairs_of(jctx *c, wisp_jv *d)
{
    wisp_jv *out = jv_list_n(c->env, d->dict->n);
    for (size_t i = 0; i < d->dict->n; i++) {
        wisp_jv *p = jv_list_n(c->env, 2);
        if (!c->env->oom)
            p->list->tuple = true;
        wisp_jv_list_push(c->env, p, d->dict->k[i]);
        wisp_jv_list_push(c->env, p, d->dict->v[i]);
        wisp_jv_list_push(c->env, out, p);
    }
    return out;
}

static wisp_jv *m_items(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    return pairs_of(c, self);
}

static wisp_jv *m_keys(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    wisp_jv *out = jv_list_n(c->env, self->dict->n);
    for (size_t i = 0; i < self->dict->n; i++)
        wisp_jv_list_push(c->env, out, self->dict->k[i]);
    return out;
}

static wisp_jv *m_values(jctx *c, wisp_jv *self, const jargs *a)
{
    (void)a;
    wisp_jv *out = jv_list_n(c->env, self->dict->n);
    for (size_t i = 0; i < self->dict->n; i++)
        wisp_jv_list_push(c->env, out, self->dict->v[i]);
    return out;
}

static wisp_jv *m_get(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *k = jinja_arg(a, 0, NULL);
    if (!k)
        return jinja_fail(c, a->line, WISP_E_INVALID, "get expected at least 1 argument, got 0");
    wisp_jv *v = jv_dict_get(self, k);
    if (v)
        return v;
    wisp_jv *d = jinja_arg(a, 1, NULL);
    return d ? d : c->env->none;
}

static wisp_jv *m_list_index(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *x = jinja_arg(a, 0, NULL);
    for (size_t i = 0; x && i < self->list->n; i++)
        if (jv_equal(self->list->v[i], x))
            return wisp_jv_int(c->env, (int64_t)i);
    return jinja_fail(c, a->line, WISP_E_INVALID, "value is not in list");
}

static wisp_jv *m_list_count(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *x = jinja_arg(a, 0, NULL);
    int64_t k = 0;
    for (size_t i = 0; x && i < self->list->n; i++)
        k += jv_equal(self->list->v[i], x);
    return wisp_jv_int(c->env, k);
}

typedef struct method_row {
    jv_type type;
    const char *name;
    jfunc fn;
} method_row;

static const method_row methods[] = {
    {JV_STR, "strip", m_strip},
    {JV_STR, "lstrip", m_lstrip},
    {JV_STR, "rstrip", m_rstrip},
    {JV_STR, "split", m_split},
    {JV_STR, "rsplit", m_rsplit},
    {JV_STR, "splitlines", m_splitlines},
    {JV_STR, "startswith", m_startswith},
    {JV_STR, "endswith", m_endswith},
    {JV_STR, "upper", m_upper},
    {JV_STR, "lower", m_lower},
    {JV_STR, "title", m_title},
    {JV_STR, "capitalize", m_capitalize},
    {JV_STR, "replace", m_replace},
    {JV_STR, "find", m_find},
    {JV_STR, "rfind", m_rfind},
    {JV_STR, "count", m_str_count},
    {JV_STR, "join", m_str_join},
    {JV_STR, "isdigit", m_isdigit},
    {JV_STR, "isalpha", m_isalpha},
    {JV_STR, "isalnum", m_isalnum},
    {JV_STR, "isspace", m_isspace},
    {JV_DICT, "items", m_items},
    {JV_DICT, "keys", m_keys},
    {JV_DICT, "values", m_values},
    {JV_DICT, "get", m_get},
    {JV_LIST, "index", m_list_index},
    {JV_LIST, "count", m_list_count},
};

wisp_jv *jinja_method(jctx *c, wisp_jv *v, const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].type == v->type && !strcmp(methods[i].name, name))
            return jv_func(c->env, methods[i].fn, v, methods[i].name);
    return NULL;
}

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
    return str_strip_impl(c, v, a, true, true);
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
    return pairs_of(c, v);
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
    return case_impl(c, v, a->line, PYSTR_UPPER);
}
static wisp_jv *f_lower(jctx *c, wisp_jv *v, const jargs *a)
{
    return case_impl(c, v, a->line, PYSTR_LOWER);
}
static wisp_jv *f_title(jctx *c, wisp_jv *v, const jargs *a)
{
    return case_impl(c, v, a->line, PYSTR_TITLE);
}
static wisp_jv *f_capitalize(jctx *c, wisp_jv *v, const jargs *a)
{
    return case_impl(c, v, a->line, PYSTR_CAPITALIZE);
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
    return replace_impl(c, S(c, v), S(c, old), S(c, new_), cnt && cnt->type == JV_INT ? cnt->i : -1,
                        a->line);
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
    wisp_jv *lines = m_splitlines(c, withnl, &none);
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
    if (tname) {
        if (tname->type != JV_STR || !(t = jinja_test_find(tname->str.s)))
            return jinja_fail(c, a->line, WISP_E_INVALID, "unknown test '%s'",
                              tname->type == JV_STR ? tname->str.s : "?");
    }
    jargs rest = {.line = a->line};
    if (a->npos > k) {
        rest.pos = a->pos + k;
        rest.npos = a->npos - k;
    }
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
    return case_impl(c, x, 0, PYSTR_LOWER);
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

static bool sort_failed;

static int sort_cmp(const void *x, const void *y)
{
    const sort_item *a = x, *b = y;
    int r = 0;
    if (jv_compare(a->key, b->key, &r))
        sort_failed = true;
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
    sort_failed = false;
    if (n)
        qsort(tmp, n, sizeof *tmp, sort_cmp);
    if (sort_failed)
        return jinja_fail(c, line, WISP_E_INVALID, "'<' not supported between these values");
    wisp_jv *out = jv_list_n(c->env, n);
    for (size_t i = 0; i < n; i++)
        wisp_jv_list_push(c->env, out, tmp[reverse ? n - 1 - i : i].val);
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
    wisp_jv *pairs = pairs_of(c, v), *keys = jv_list_n(c->env, v->dict->n);
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
    wisp_jv *m = case_impl(c, v, a->line, mode);
    return m ? jv_equal(m, v) && m->str.n : -1;
}
static int t_lower(jctx *c, wisp_jv *v, const jargs *a) { return t_case(c, v, a, PYSTR_LOWER); }
static int t_upper(jctx *c, wisp_jv *v, const jargs *a) { return t_case(c, v, a, PYSTR_UPPER); }

typedef struct test_row {
    const char *name;
    jtest fn;
} test_row;

static const test_row tests[] = {
    {"defined", t_defined}, {"undefined", t_undefined},
    {"none", t_none},       {"string", t_string},
    {"mapping", t_mapping}, {"iterable", t_iterable},
    {"number", t_number},   {"sequence", t_sequence},
    {"boolean", t_boolean}, {"true", t_true},
    {"false", t_false},     {"integer", t_integer},
    {"float", t_float},     {"callable", t_callable},
    {"eq", t_eq},           {"equalto", t_eq},
    {"==", t_eq},           {"ne", t_ne},
    {"!=", t_ne},           {"lt", t_lt},
    {"lessthan", t_lt},     {"le", t_le},
    {"gt", t_gt},           {"greaterthan", t_gt},
    {"ge", t_ge},           {"in", t_in},
    {"sameas", t_sameas},   {"odd", t_odd},
    {"even", t_even},       {"divisibleby", t_divisibleby},
    {"lower", t_lower},     {"upper", t_upper},
};

jtest jinja_test_find(const char *name)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name))
            return tests[i].fn;
    return NULL;
}

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
