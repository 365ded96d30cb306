/*
 * jinja_value.c - the interpreter's values: the arena that owns them,
 * constructors, and the Python semantics templates can observe (truth,
 * equality, ordering, str(), repr(), json.dumps()).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

#define CHUNK_MIN (64 * 1024)

void wisp_jinja_limits_default(wisp_jinja_limits *lim)
{
    lim->max_output = (size_t)16 << 20;
    lim->max_memory = (size_t)256 << 20;
    lim->max_steps = 10000000;
    lim->max_depth = 64;
}

void *jinja_alloc(wisp_jinja_env *env, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    jchunk *c = env->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        if (env->oom || env->mem_used + cap > env->lim.max_memory) {
            env->oom = true;
            return NULL;
        }
        c = malloc(sizeof *c + cap);
        if (!c) {
            env->oom = true;
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        env->mem_used += cap;
        /* A big allocation gets its own chunk behind the current one, so
         * the current chunk's free space stays usable. */
        if (env->chunks && n > CHUNK_MIN) {
            c->next = env->chunks->next;
            env->chunks->next = c;
        } else {
            c->next = env->chunks;
            env->chunks = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *jinja_strdup(wisp_jinja_env *env, const char *s, size_t n)
{
    char *p = jinja_alloc(env, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* What constructors return once the memory limit is hit: values of the
 * requested type that stay empty (pushing to them allocates, which fails),
 * so callers need no checks; the render fails at its next step. */
static wisp_jv oom_none = {.type = JV_NONE};
static wisp_jv oom_str = {.type = JV_STR, .str = {"", 0}};
static jlist oom_jlist;
static wisp_jv oom_list = {.type = JV_LIST, .list = &oom_jlist};
static jdict oom_jdict;
static wisp_jv oom_dict = {.type = JV_DICT, .dict = &oom_jdict};

wisp_jv *jv_new(wisp_jinja_env *env, jv_type t)
{
    wisp_jv *v = jinja_alloc(env, sizeof *v);
    if (!v)
        return &oom_none;
    v->type = t;
    return v;
}

wisp_jinja_env *wisp_jinja_env_new(const wisp_jinja_limits *lim)
{
    wisp_jinja_env *env = calloc(1, sizeof *env);
    if (!env)
        return NULL;
    if (lim)
        env->lim = *lim;
    else
        wisp_jinja_limits_default(&env->lim);
    env->now = time(NULL);
    env->none = jv_new(env, JV_NONE);
    env->undef = jv_new(env, JV_UNDEF);
    env->t = jv_new(env, JV_BOOL);
    env->t->b = true;
    env->f = jv_new(env, JV_BOOL);
    env->empty = wisp_jv_str(env, "", 0);
    env->vars = wisp_jv_dict(env);
    if (env->oom) {
        wisp_jinja_env_free(env);
        return NULL;
    }
    return env;
}

void wisp_jinja_env_free(wisp_jinja_env *env)
{
    if (!env)
        return;
    for (jchunk *c = env->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(env);
}

void wisp_jinja_env_set_now(wisp_jinja_env *env, time_t now) { env->now = now; }

wisp_jv *wisp_jv_none(wisp_jinja_env *env) { return env->none; }
wisp_jv *wisp_jv_bool(wisp_jinja_env *env, bool b) { return b ? env->t : env->f; }

wisp_jv *wisp_jv_int(wisp_jinja_env *env, int64_t i)
{
    wisp_jv *v = jv_new(env, JV_INT);
    if (v->type == JV_INT)
        v->i = i;
    return v;
}

wisp_jv *wisp_jv_float(wisp_jinja_env *env, double d)
{
    wisp_jv *v = jv_new(env, JV_FLOAT);
    if (v->type == JV_FLOAT)
        v->f = d;
    return v;
}

wisp_jv *wisp_jv_str(wisp_jinja_env *env, const char *s, size_t n)
{
    char *p = jinja_strdup(env, s, n);
    if (!p)
        return &oom_str;
    wisp_jv *v = jv_new(env, JV_STR);
    if (v->type != JV_STR)
        return &oom_str;
    v->str.s = p;
    v->str.n = n;
    return v;
}

wisp_jv *jv_strcat(wisp_jinja_env *env, const char *a, size_t an, const char *b, size_t bn)
{
    char *p = jinja_alloc(env, an + bn + 1);
    if (!p)
        return &oom_str;
    if (an)
        memcpy(p, a, an);
    if (bn)
        memcpy(p + an, b, bn);
    wisp_jv *v = jv_new(env, JV_STR);
    if (v->type != JV_STR)
        return &oom_str;
    v->str.s = p;
    v->str.n = an + bn;
    return v;
}

wisp_jv *jv_undef(wisp_jinja_env *env, const char *hint)
{
    if (!hint)
        return env->undef;
    wisp_jv *v = jv_new(env, JV_UNDEF);
    if (v->type == JV_UNDEF)
        v->undef_hint = hint;
    return v;
}

wisp_jv *jv_func(wisp_jinja_env *env, jfunc fn, wisp_jv *self, const char *name)
{
    wisp_jv *v = jv_new(env, JV_FUNC);
    if (v->type == JV_FUNC) {
        v->func.fn = fn;
        v->func.self = self;
        v->func.name = name;
    }
    return v;
}

wisp_jv *jv_list_n(wisp_jinja_env *env, size_t cap)
{
    jlist *l = jinja_alloc(env, sizeof *l);
    wisp_jv **items = cap ? jinja_alloc(env, cap * sizeof *items) : NULL;
    if (!l || (cap && !items))
        return &oom_list;
    l->v = items;
    l->cap = cap;
    wisp_jv *v = jv_new(env, JV_LIST);
    if (v->type != JV_LIST)
        return &oom_list;
    v->list = l;
    return v;
}

wisp_jv *wisp_jv_list(wisp_jinja_env *env) { return jv_list_n(env, 0); }

void wisp_jv_list_push(wisp_jinja_env *env, wisp_jv *list, wisp_jv *v)
{
    if (list->type != JV_LIST)
        return;
    jlist *l = list->list;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        wisp_jv **items = jinja_alloc(env, cap * sizeof *items);
        if (!items)
            return;
        if (l->n)
            memcpy(items, l->v, l->n * sizeof *items);
        l->v = items;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

wisp_jv *wisp_jv_dict(wisp_jinja_env *env)
{
    jdict *d = jinja_alloc(env, sizeof *d);
    if (!d)
        return &oom_dict;
    wisp_jv *v = jv_new(env, JV_DICT);
    if (v->type != JV_DICT)
        return &oom_dict;
    v->dict = d;
    return v;
}

static bool is_mapping(const wisp_jv *v) { return v->type == JV_DICT || v->type == JV_NS; }

wisp_jv *jv_dict_get(const wisp_jv *d, const wisp_jv *k)
{
    if (!is_mapping(d))
        return NULL;
    for (size_t i = 0; i < d->dict->n; i++)
        if (jv_equal(d->dict->k[i], k))
            return d->dict->v[i];
    return NULL;
}

wisp_jv *jv_dict_gets(const wisp_jv *d, const char *k, size_t n)
{
    if (!is_mapping(d))
        return NULL;
    for (size_t i = 0; i < d->dict->n; i++) {
        const wisp_jv *key = d->dict->k[i];
        if (key->type == JV_STR && key->str.n == n && memcmp(key->str.s, k, n) == 0)
            return d->dict->v[i];
    }
    return NULL;
}

void jv_dict_put(wisp_jinja_env *env, wisp_jv *dv, wisp_jv *k, wisp_jv *v)
{
    if (!is_mapping(dv))
        return;
    jdict *d = dv->dict;
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], k)) {
            d->v[i] = v;
            return;
        }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        wisp_jv **nk = jinja_alloc(env, cap * sizeof *nk);
        wisp_jv **nv = jinja_alloc(env, cap * sizeof *nv);
        if (!nk || !nv)
            return;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

void wisp_jv_dict_set(wisp_jinja_env *env, wisp_jv *dict, const char *key, size_t n, wisp_jv *v)
{
    jv_dict_put(env, dict, wisp_jv_str(env, key, n), v);
}

void wisp_jinja_env_set(wisp_jinja_env *env, const char *name, wisp_jv *v)
{
    wisp_jv_dict_set(env, env->vars, name, strlen(name), v);
}

/* ---------------------------------------------------------------- truth, equality, order */

bool jv_truthy(const wisp_jv *v)
{
    switch (v->type) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v->b;
    case JV_INT: return v->i != 0;
    case JV_FLOAT: return v->f != 0;
    case JV_STR: return v->str.n != 0;
    case JV_LIST: return v->list->n != 0;
    case JV_DICT: return v->dict->n != 0;
    default: return true;
    }
}

static bool is_num(const wisp_jv *v)
{
    return v->type == JV_BOOL || v->type == JV_INT || v->type == JV_FLOAT;
}

static double num_of(const wisp_jv *v)
{
    return v->type == JV_FLOAT ? v->f : v->type == JV_INT ? (double)v->i : (double)v->b;
}

static int64_t int_of(const wisp_jv *v) { return v->type == JV_INT ? v->i : (int64_t)v->b; }

bool jv_equal(const wisp_jv *a, const wisp_jv *b)
{
    if (a == b)
        return true;
    if (is_num(a) && is_num(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT)
            return int_of(a) == int_of(b);
        return num_of(a) == num_of(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a->str.n == b->str.n && memcmp(a->str.s, b->str.s, a->str.n) == 0;
    case JV_LIST:
        if (a->list->n != b->list->n)
            return false;
        for (size_t i = 0; i < a->list->n; i++)
            if (!jv_equal(a->list->v[i], b->list->v[i]))
                return false;
        return true;
    case JV_DICT:
        if (a->dict->n != b->dict->n)
            return false;
        for (size_t i = 0; i < a->dict->n; i++) {
            const wisp_jv *o = jv_dict_get(b, a->dict->k[i]);
            if (!o || !jv_equal(a->dict->v[i], o))
                return false;
        }
        return true;
    default: return false;
    }
}

int jv_compare(const wisp_jv *a, const wisp_jv *b, int *out)
{
    if (is_num(a) && is_num(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t x = int_of(a), y = int_of(b);
            *out = x < y ? -1 : x > y;
        } else {
            double x = num_of(a), y = num_of(b);
            *out = x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a->type == JV_STR && b->type == JV_STR) {
        /* UTF-8 byte order is code point order. */
        size_t n = a->str.n < b->str.n ? a->str.n : b->str.n;
        int r = n ? memcmp(a->str.s, b->str.s, n) : 0;
        *out = r ? (r < 0 ? -1 : 1) : (a->str.n < b->str.n ? -1 : a->str.n > b->str.n);
        return 0;
    }
    if (a->type == JV_LIST && b->type == JV_LIST) {
        for (size_t i = 0; i < a->list->n && i < b->list->n; i++) {
            if (jv_equal(a->list->v[i], b->list->v[i]))
                continue;
            return jv_compare(a->list->v[i], b->list->v[i], out);
        }
        *out = a->list->n < b->list->n ? -1 : a->list->n > b->list->n;
        return 0;
    }
    return -1;
}

const char *jv_type_name(const wisp_jv *v)
{
    static const char *const names[] = {
        [JV_UNDEF] = "Undefined",
        [JV_NONE] = "NoneType",
        [JV_BOOL] = "bool",
        [JV_INT] = "int",
        [JV_FLOAT] = "float",
        [JV_STR] = "str",
        [JV_LIST] = "list",
        [JV_DICT] = "dict",
        [JV_NS] = "Namespace",
        [JV_MACRO] = "Macro",
        [JV_FUNC] = "builtin_function_or_method",
    };
    if (v->type == JV_LIST && v->list->tuple)
        return "tuple";
    return names[v->type];
}

/* ---------------------------------------------------------------- str(), repr() */

/* Python's float repr: the shortest digits that round-trip, positional for
 * exponents in [-4, 16), scientific otherwise, always with a '.' or 'e'. */
void jv_float_repr(char *out, size_t cap, double d)
{
    if (isnan(d)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, cap, d < 0 ? "-inf" : "inf");
        return;
    }
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* buf: [-]D[.DDD]e[+-]XX */
    const char *p = buf;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    char *o = out;
    size_t left = cap;
#define PUT(...)                                 \
    do {                                         \
        int k_ = snprintf(o, left, __VA_ARGS__); \
        if (k_ < 0 || (size_t)k_ >= left)        \
            return;                              \
        o += k_;                                 \
        left -= (size_t)k_;                      \
    } while (0)
    if (neg)
        PUT("-");
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            PUT("0.");
            for (int i = 0; i < -exp - 1; i++)
                PUT("0");
            PUT("%s", digits);
        } else if ((int)nd <= exp + 1) {
            PUT("%s", digits);
            for (int i = (int)nd; i < exp + 1; i++)
                PUT("0");
            PUT(".0");
        } else {
            PUT("%.*s.%s", exp + 1, digits, digits + exp + 1);
        }
    } else {
        PUT("%c", digits[0]);
        if (nd > 1)
            PUT(".%s", digits + 1);
        PUT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
#undef PUT
}

static int put(wisp_buf *b, const char *s) { return wisp_buf_append(b, s, strlen(s)); }

static int repr_str(wisp_buf *b, const char *s, size_t n)
{
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    int rc = wisp_buf_append(b, &q, 1);
    size_t i = 0;
    while (i < n && !rc) {
        size_t at = i;
        int32_t c = pystr_next(s, n, &i);
        char e[12];
        if (c == q || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            rc = wisp_buf_append(b, e, 2);
        } else if (c == '\n') {
            rc = put(b, "\\n");
        } else if (c == '\r') {
            rc = put(b, "\\r");
        } else if (c == '\t') {
            rc = put(b, "\\t");
        } else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
            snprintf(e, sizeof e, "\\x%02x", (unsigned)c);
            rc = put(b, e);
        } else if (c == 0x2028 || c == 0x2029 || (c >= 0x200b && c <= 0x200f) || c == 0xfeff) {
            snprintf(e, sizeof e, "\\u%04x", (unsigned)c);
            rc = put(b, e);
        } else {
            rc = wisp_buf_append(b, s + at, i - at);
        }
    }
    return rc ? rc : wisp_buf_append(b, &q, 1);
}

static int repr_any(wisp_buf *b, const wisp_jv *v, bool top, int depth)
{
    char num[48];
    if (depth > 200)
        return put(b, "...");
    switch (v->type) {
    case JV_UNDEF: return 0;
    case JV_NONE: return put(b, "None");
    case JV_BOOL: return put(b, v->b ? "True" : "False");
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); return put(b, num);
    case JV_FLOAT: jv_float_repr(num, sizeof num, v->f); return put(b, num);
    case JV_STR:
        return top ? wisp_buf_append(b, v->str.s, v->str.n) : repr_str(b, v->str.s, v->str.n);
    case JV_LIST: {
        bool t = v->list->tuple;
        int rc = put(b, t ? "(" : "[");
        for (size_t i = 0; i < v->list->n && !rc; i++) {
            if (i)
                rc = put(b, ", ");
            if (!rc)
                rc = repr_any(b, v->list->v[i], false, depth + 1);
        }
        if (!rc && t && v->list->n == 1)
            rc = put(b, ",");
        return rc ? rc : put(b, t ? ")" : "]");
    }
    case JV_DICT:
    case JV_NS: {
        int rc = put(b, v->type == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v->dict->n && !rc; i++) {
            if (i)
                rc = put(b, ", ");
            if (!rc)
                rc = repr_any(b, v->dict->k[i], false, depth + 1);
            if (!rc)
                rc = put(b, ": ");
            if (!rc)
                rc = repr_any(b, v->dict->v[i], false, depth + 1);
        }
        return rc ? rc : put(b, v->type == JV_NS ? "}>" : "}");
    }
    case JV_MACRO: return put(b, "<Macro>");
    case JV_FUNC:
        snprintf(num, sizeof num, "<built-in function %.20s>", v->func.name ? v->func.name : "?");
        return put(b, num);
    }
    return 0;
}

int jv_str_append(wisp_buf *b, const wisp_jv *v) { return repr_any(b, v, true, 0); }
int jv_repr_append(wisp_buf *b, const wisp_jv *v) { return repr_any(b, v, false, 0); }

wisp_jv *jv_to_str(wisp_jinja_env *env, const wisp_jv *v)
{
    if (v->type == JV_STR)
        return (wisp_jv *)v;
    wisp_buf b = WISP_BUF_INIT;
    wisp_jv *r = jv_str_append(&b, v) ? &oom_str : wisp_jv_str(env, b.data ? b.data : "", b.len);
    wisp_buf_free(&b);
    return r;
}

/* ---------------------------------------------------------------- json.dumps */

static int json_str(wisp_buf *b, const char *s, size_t n, bool ascii)
{
    int rc = put(b, "\"");
    size_t i = 0;
    while (i < n && !rc) {
        size_t at = i;
        int32_t c = pystr_next(s, n, &i);
        char e[16];
        switch (c) {
        case '"': rc = put(b, "\\\""); break;
        case '\\': rc = put(b, "\\\\"); break;
        case '\n': rc = put(b, "\\n"); break;
        case '\r': rc = put(b, "\\r"); break;
        case '\t': rc = put(b, "\\t"); break;
        case '\b': rc = put(b, "\\b"); break;
        case '\f': rc = put(b, "\\f"); break;
        default:
            if (c < 0x20 || (ascii && c > 0x7e)) {
                if (c >= 0x10000) {
                    int32_t u = c - 0x10000;
                    snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xd800 + (u >> 10),
                             0xdc00 + (u & 0x3ff));
                } else {
                    snprintf(e, sizeof e, "\\u%04x", (unsigned)c);
                }
                rc = put(b, e);
            } else {
                rc = wisp_buf_append(b, s + at, i - at);
            }
        }
    }
    return rc ? rc : put(b, "\"");
}

static int json_newline(wisp_buf *b, const jjson_opts *o, int depth)
{
    int rc = put(b, "\n");
    for (int i = 0; i < o->indent * depth && !rc; i++)
        rc = put(b, " ");
    return rc;
}

static int json_key(wisp_buf *b, const wisp_jv *k, const jjson_opts *o, const char **bad)
{
    char num[48];
    switch (k->type) {
    case JV_STR: return json_str(b, k->str.s, k->str.n, o->ensure_ascii);
    case JV_INT: snprintf(num, sizeof num, "\"%lld\"", (long long)k->i); return put(b, num);
    case JV_FLOAT:
        jv_float_repr(num + 1, sizeof num - 2, k->f);
        num[0] = '"';
        strcat(num, "\"");
        return put(b, num);
    case JV_BOOL: return put(b, k->b ? "\"true\"" : "\"false\"");
    case JV_NONE: return put(b, "\"null\"");
    default: *bad = jv_type_name(k); return -1;
    }
}

static int key_cmp(const void *x, const void *y)
{
    const wisp_jv *const *a = x, *const *b = y;
    int r = 0;
    jv_compare(a[0], b[0], &r);
    return r;
}

int jv_json_append(wisp_buf *b, const wisp_jv *v, const jjson_opts *o, int depth, const char **bad)
{
    char num[48];
    if (depth > 200) {
        *bad = "nesting";
        return -1;
    }
    switch (v->type) {
    case JV_NONE: return put(b, "null");
    case JV_BOOL: return put(b, v->b ? "true" : "false");
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); return put(b, num);
    case JV_FLOAT:
        if (isnan(v->f))
            return put(b, "NaN");
        if (isinf(v->f))
            return put(b, v->f < 0 ? "-Infinity" : "Infinity");
        jv_float_repr(num, sizeof num, v->f);
        return put(b, num);
    case JV_STR: return json_str(b, v->str.s, v->str.n, o->ensure_ascii);
    case JV_LIST: {
        if (v->list->n == 0)
            return put(b, "[]");
        int rc = put(b, "[");
        for (size_t i = 0; i < v->list->n && !rc; i++) {
            if (i)
                rc = put(b, o->item_sep);
            if (!rc && o->indent >= 0)
                rc = json_newline(b, o, depth + 1);
            if (!rc)
                rc = jv_json_append(b, v->list->v[i], o, depth + 1, bad);
        }
        if (!rc && o->indent >= 0)
            rc = json_newline(b, o, depth);
        return rc ? rc : put(b, "]");
    }
    case JV_DICT: {
        jdict *d = v->dict;
        if (d->n == 0)
            return put(b, "{}");
        /* pairs [k, v] in the order to write */
        wisp_jv **pairs = malloc(d->n * 2 * sizeof *pairs);
        if (!pairs)
            return WISP_E_NOMEM;
        for (size_t i = 0; i < d->n; i++) {
            pairs[2 * i] = d->k[i];
            pairs[2 * i + 1] = d->v[i];
        }
        if (o->sort_keys)
            qsort(pairs, d->n, 2 * sizeof *pairs, key_cmp);
        int rc = put(b, "{");
        for (size_t i = 0; i < d->n && !rc; i++) {
            if (i)
                rc = put(b, o->item_sep);
            if (!rc && o->indent >= 0)
                rc = json_newline(b, o, depth + 1);
            if (!rc)
                rc = json_key(b, pairs[2 * i], o, bad);
            if (!rc)
                rc = put(b, o->key_sep);
            if (!rc)
                rc = jv_json_append(b, pairs[2 * i + 1], o, depth + 1, bad);
        }
        free(pairs);
        if (!rc && o->indent >= 0)
            rc = json_newline(b, o, depth);
        return rc ? rc : put(b, "}");
    }
    default: *bad = jv_type_name(v); return -1;
    }
}
