/*
 * jinja_methods.c - the str, dict and list methods chat templates call (`s.strip()`,
 * `d.items()`, ...), one table, with Python's behaviour for each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_builtins_int.h"

/* ---------------------------------------------------------------- string operations */

wisp_jv *jinja_str_strip(jctx *c, wisp_jv *self, const jargs *a, bool l, bool r)
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
    return jinja_str_strip(c, self, a, true, true);
}
static wisp_jv *m_lstrip(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_strip(c, self, a, true, false);
}
static wisp_jv *m_rstrip(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_strip(c, self, a, false, true);
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

wisp_jv *jinja_str_splitlines(jctx *c, wisp_jv *self, const jargs *a)
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

wisp_jv *jinja_str_case(jctx *c, wisp_jv *v, int line, int mode)
{
    wisp_jv *s = S(c, v);
    wisp_buf b = WISP_BUF_INIT;
    int rc = pystr_case(&b, s->str.s, s->str.n, mode);
    return buf_value(c, line, &b, rc);
}

static wisp_jv *m_upper(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_case(c, self, a->line, PYSTR_UPPER);
}
static wisp_jv *m_lower(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_case(c, self, a->line, PYSTR_LOWER);
}
static wisp_jv *m_title(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_case(c, self, a->line, PYSTR_TITLE);
}
static wisp_jv *m_capitalize(jctx *c, wisp_jv *self, const jargs *a)
{
    return jinja_str_case(c, self, a->line, PYSTR_CAPITALIZE);
}

wisp_jv *jinja_str_replace(jctx *c, wisp_jv *s, wisp_jv *old, wisp_jv *new_, int64_t count,
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
    return jinja_str_replace(c, self, old, new_, cnt && cnt->type == JV_INT ? cnt->i : -1, a->line);
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

wisp_jv *jinja_dict_pairs(jctx *c, wisp_jv *d)
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
    return jinja_dict_pairs(c, self);
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
    {JV_STR, "splitlines", jinja_str_splitlines},
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
