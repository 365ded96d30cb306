/*
 * jinja_eval.c - walks the syntax tree: statements write text, expressions
 * give values. Scoping follows jinja2: a for loop's body gets a fresh scope
 * every iteration (so `set` inside a loop does not leak out; namespace()
 * objects are how templates carry state across iterations), `if` opens no
 * scope, a macro runs in a scope over the one it was defined in.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/jinja_int.h"

enum {
    FLOW_OK = 0,
    FLOW_ERR = -1,
    FLOW_BREAK = 1,
    FLOW_CONTINUE = 2
};

wisp_jv *jinja_fail(jctx *c, int line, int code, const char *fmt, ...)
{
    if (!c->failed) {
        c->failed = true;
        char msg[WISP_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        wisp_err_set(c->err, code, "chat template line %d: %s", line, msg);
    }
    return NULL;
}

static bool step(jctx *c, int line)
{
    if (c->failed)
        return false;
    if (c->env->oom) {
        jinja_fail(c, line, WISP_E_TOO_LARGE, "memory limit of %zu bytes reached",
                   c->env->lim.max_memory);
        return false;
    }
    if (++c->steps > c->env->lim.max_steps) {
        jinja_fail(c, line, WISP_E_TOO_LARGE, "evaluation step limit (%llu) reached",
                   (unsigned long long)c->env->lim.max_steps);
        return false;
    }
    return true;
}

static bool emit(jctx *c, int line, const char *s, size_t n)
{
    if (c->out_total + n > c->env->lim.max_output) {
        jinja_fail(c, line, WISP_E_TOO_LARGE, "output limit of %zu bytes reached",
                   c->env->lim.max_output);
        return false;
    }
    c->out_total += n;
    if (wisp_buf_append(c->out, s, n)) {
        jinja_fail(c, line, WISP_E_NOMEM, "out of memory");
        return false;
    }
    return true;
}

static bool emit_value(jctx *c, int line, const wisp_jv *v)
{
    if (v->type == JV_STR)
        return emit(c, line, v->str.s, v->str.n);
    wisp_buf b = WISP_BUF_INIT;
    bool ok = jv_str_append(&b, v) == 0;
    ok = ok ? emit(c, line, b.data ? b.data : "", b.len)
            : jinja_fail(c, line, WISP_E_NOMEM, "out of memory") != NULL;
    wisp_buf_free(&b);
    return ok;
}

/* ---------------------------------------------------------------- scopes */

static jframe *frame_new(jctx *c, jframe *parent)
{
    jframe *f = jinja_alloc(c->env, sizeof *f);
    if (!f)
        return NULL;
    f->parent = parent;
    f->vars = wisp_jv_dict(c->env);
    return f;
}

static void frame_set(jctx *c, jframe *f, const char *name, wisp_jv *v)
{
    wisp_jv_dict_set(c->env, f->vars, name, strlen(name), v);
}

static wisp_jv *lookup(jctx *c, jframe *f, const char *name)
{
    size_t n = strlen(name);
    for (; f; f = f->parent) {
        wisp_jv *v = jv_dict_gets(f->vars, name, n);
        if (v)
            return v;
    }
    wisp_jv *v = jv_dict_gets(c->env->vars, name, n);
    if (v)
        return v;
    v = jinja_global(c, name);
    if (v)
        return v;
    char *hint = jinja_alloc(c->env, n + 32);
    if (hint)
        snprintf(hint, n + 32, "'%s' is undefined", name);
    return jv_undef(c->env, hint);
}

/* ---------------------------------------------------------------- expressions */

static wisp_jv *eval(jctx *c, jframe *f, const jnode *n);
static int exec_body(jctx *c, jframe *f, jnode *const *body, size_t n);

wisp_jv *jinja_arg(const jargs *a, size_t i, const char *name)
{
    if (i < a->npos)
        return a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwname[k], name))
            return a->kwval[k];
    return NULL;
}

static bool eval_args(jctx *c, jframe *f, const jnode *n, jargs *a, wisp_jv *first)
{
    memset(a, 0, sizeof *a);
    a->line = n->line;
    size_t np = n->nkids + (first != NULL);
    a->pos = np ? jinja_alloc(c->env, np * sizeof *a->pos) : NULL;
    a->kwval = n->nkids2 ? jinja_alloc(c->env, n->nkids2 * sizeof *a->kwval) : NULL;
    if ((np && !a->pos) || (n->nkids2 && !a->kwval))
        return step(c, n->line);
    if (first)
        a->pos[a->npos++] = first;
    for (size_t i = 0; i < n->nkids; i++) {
        wisp_jv *v = eval(c, f, n->kids[i]);
        if (!v)
            return false;
        a->pos[a->npos++] = v;
    }
    a->kwname = (const char **)n->names;
    for (size_t i = 0; i < n->nkids2; i++) {
        wisp_jv *v = eval(c, f, n->kids2[i]);
        if (!v)
            return false;
        a->kwval[a->nkw++] = v;
    }
    return true;
}

static wisp_jv *call_macro(jctx *c, wisp_jv *m, const jargs *a, wisp_jv *caller)
{
    const jnode *def = m->macro.def;
    if (++c->depth > c->env->lim.max_depth) {
        c->depth--;
        return jinja_fail(c, a->line, WISP_E_TOO_LARGE, "macro calls nested deeper than %d",
                          c->env->lim.max_depth);
    }
    jframe *f = frame_new(c, m->macro.closure);
    if (!f) {
        c->depth--;
        step(c, a->line); /* reports the memory limit */
        return NULL;
    }
    if (a->npos > def->nnames) {
        c->depth--;
        return jinja_fail(c, a->line, WISP_E_INVALID,
                          "macro '%s' takes not more than %zu argument(s)", def->name, def->nnames);
    }
    for (size_t i = 0; i < def->nnames; i++) {
        wisp_jv *v = i < a->npos ? a->pos[i] : NULL;
        for (size_t k = 0; k < a->nkw && !v; k++)
            if (!strcmp(a->kwname[k], def->names[i]))
                v = a->kwval[k];
        if (!v && def->defaults[i]) {
            v = eval(c, f, def->defaults[i]);
            if (!v) {
                c->depth--;
                return NULL;
            }
        }
        if (!v) {
            size_t n = strlen(def->names[i]) + 64;
            char *hint = jinja_alloc(c->env, n);
            if (hint)
                snprintf(hint, n, "parameter '%s' was not provided", def->names[i]);
            v = jv_undef(c->env, hint);
        }
        frame_set(c, f, def->names[i], v);
    }
    for (size_t k = 0; k < a->nkw; k++) {
        bool known = false;
        for (size_t i = 0; i < def->nnames; i++)
            known |= !strcmp(a->kwname[k], def->names[i]);
        if (!known) {
            c->depth--;
            return jinja_fail(c, a->line, WISP_E_INVALID,
                              "macro '%s' takes no keyword argument '%s'", def->name, a->kwname[k]);
        }
    }
    if (caller)
        frame_set(c, f, "caller", caller);
    wisp_buf captured = WISP_BUF_INIT, *saved = c->out;
    c->out = &captured;
    int rc = exec_body(c, f, def->kids, def->nkids);
    c->out = saved;
    c->depth--;
    wisp_jv *r = rc == FLOW_ERR
                     ? NULL
                     : wisp_jv_str(c->env, captured.data ? captured.data : "", captured.len);
    wisp_buf_free(&captured);
    return r;
}

wisp_jv *jinja_call(jctx *c, wisp_jv *fn, const jargs *a)
{
    if (fn->type == JV_FUNC)
        return fn->func.fn(c, fn->func.self, a);
    if (fn->type == JV_MACRO)
        return call_macro(c, fn, a, NULL);
    if (fn->type == JV_UNDEF)
        return jinja_undef_access(c, a->line, fn);
    return jinja_fail(c, a->line, WISP_E_INVALID, "'%s' object is not callable", jv_type_name(fn));
}

static wisp_jv *eval(jctx *c, jframe *f, const jnode *n)
{
    if (!step(c, n->line))
        return NULL;
    wisp_jinja_env *env = c->env;
    switch (n->kind) {
    case E_LIT: return n->val;
    case E_NAME: return lookup(c, f, n->name);
    case E_LIST: {
        wisp_jv *l = jv_list_n(env, n->nkids);
        if (!env->oom)
            l->list->tuple = n->neg;
        for (size_t i = 0; i < n->nkids; i++) {
            wisp_jv *v = eval(c, f, n->kids[i]);
            if (!v)
                return NULL;
            wisp_jv_list_push(env, l, v);
        }
        return l;
    }
    case E_DICT: {
        wisp_jv *d = wisp_jv_dict(env);
        for (size_t i = 0; i < n->nkids; i++) {
            wisp_jv *k = eval(c, f, n->kids[i]);
            wisp_jv *v = k ? eval(c, f, n->kids2[i]) : NULL;
            if (!v)
                return NULL;
            if (k->type == JV_LIST || k->type == JV_DICT || k->type == JV_UNDEF)
                return jinja_fail(c, n->line, WISP_E_INVALID, "unhashable type: '%s'",
                                  jv_type_name(k));
            jv_dict_put(env, d, k, v);
        }
        return d;
    }
    case E_UNARY: {
        wisp_jv *a = eval(c, f, n->a);
        if (!a)
            return NULL;
        if (!jinja_numeric(a))
            return a->type == JV_UNDEF
                       ? jinja_undef_access(c, n->line, a)
                       : jinja_fail(c, n->line, WISP_E_INVALID,
                                    "bad operand type for unary %s: '%s'", n->op, jv_type_name(a));
        if (n->op[0] == '+')
            return a->type == JV_BOOL ? wisp_jv_int(env, a->b) : a;
        if (a->type == JV_FLOAT)
            return wisp_jv_float(env, -a->f);
        if (jinja_inum(a) == INT64_MIN)
            return jinja_fail(c, n->line, WISP_E_INVALID, "integer overflow");
        return wisp_jv_int(env, -jinja_inum(a));
    }
    case E_BIN: {
        wisp_jv *a = eval(c, f, n->a);
        wisp_jv *b = a ? eval(c, f, n->b) : NULL;
        return b ? jinja_arith(c, n->line, n->op, a, b) : NULL;
    }
    case E_AND: {
        wisp_jv *a = eval(c, f, n->a);
        if (!a || !jv_truthy(a))
            return a;
        return eval(c, f, n->b);
    }
    case E_OR: {
        wisp_jv *a = eval(c, f, n->a);
        if (!a || jv_truthy(a))
            return a;
        return eval(c, f, n->b);
    }
    case E_NOT: {
        wisp_jv *a = eval(c, f, n->a);
        return a ? wisp_jv_bool(env, !jv_truthy(a)) : NULL;
    }
    case E_COND: {
        wisp_jv *cond = eval(c, f, n->a);
        if (!cond)
            return NULL;
        if (jv_truthy(cond))
            return eval(c, f, n->b);
        return n->c ? eval(c, f, n->c)
                    : jv_undef(env, "the condition was false and there is no else");
    }
    case E_CMP: {
        wisp_jv *left = eval(c, f, n->kids[0]);
        if (!left)
            return NULL;
        for (size_t i = 0; i < n->nnames; i++) {
            wisp_jv *right = eval(c, f, n->kids[i + 1]);
            if (!right)
                return NULL;
            int r = jinja_compare(c, n->line, n->names[i], left, right);
            if (r < 0)
                return NULL;
            if (!r)
                return env->f;
            left = right;
        }
        return env->t;
    }
    case E_CONCAT: {
        wisp_buf b = WISP_BUF_INIT;
        int rc = 0;
        for (size_t i = 0; i < n->nkids; i++) {
            wisp_jv *v = eval(c, f, n->kids[i]);
            if (!v) {
                wisp_buf_free(&b);
                return NULL;
            }
            rc |= jv_str_append(&b, v);
        }
        wisp_jv *r = rc ? jinja_fail(c, n->line, WISP_E_NOMEM, "out of memory")
                        : wisp_jv_str(env, b.data ? b.data : "", b.len);
        wisp_buf_free(&b);
        return r;
    }
    case E_ATTR: {
        wisp_jv *o = eval(c, f, n->a);
        return o ? jinja_getattr(c, n->line, o, n->name) : NULL;
    }
    case E_ITEM: {
        wisp_jv *o = eval(c, f, n->a);
        wisp_jv *k = o ? eval(c, f, n->b) : NULL;
        return k ? jinja_getitem(c, n->line, o, k) : NULL;
    }
    case E_SLICE: {
        wisp_jv *o = eval(c, f, n->a);
        if (!o)
            return NULL;
        wisp_jv *parts[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3; i++)
            if (n->kids[i] && !(parts[i] = eval(c, f, n->kids[i])))
                return NULL;
        return jinja_slice(c, n->line, o, parts);
    }
    case E_CALL: {
        wisp_jv *fn = eval(c, f, n->a);
        jargs a;
        if (!fn || !eval_args(c, f, n, &a, NULL))
            return NULL;
        return jinja_call(c, fn, &a);
    }
    case E_FILTER: {
        jfilter fl = jinja_filter_find(n->name);
        if (!fl)
            return jinja_fail(c, n->line, WISP_E_INVALID, "unknown filter '%s'", n->name);
        wisp_jv *v = eval(c, f, n->a);
        jargs a;
        if (!v || !eval_args(c, f, n, &a, NULL))
            return NULL;
        /* A filter returns a value of the render's pool (at most one of
         * the argument values a points to), never a pointer into a. */
        // cppcheck-suppress returnDanglingLifetime
        return fl(c, v, &a);
    }
    case E_TEST: {
        int nargs;
        jtest t = jinja_test_find(n->name, &nargs);
        if (!t)
            return jinja_fail(c, n->line, WISP_E_INVALID, "unknown test '%s'", n->name);
        wisp_jv *v = eval(c, f, n->a);
        jargs a;
        if (!v || !eval_args(c, f, n, &a, NULL) || !jinja_test_args_ok(c, n->name, nargs, &a))
            return NULL;
        int r = t(c, v, &a);
        if (r < 0)
            return NULL;
        return wisp_jv_bool(env, n->neg ? !r : r);
    }
    default: return jinja_fail(c, n->line, WISP_E_INTERNAL, "statement used as an expression");
    }
}

/* ---------------------------------------------------------------- statements */

/* The items a for loop walks: a list's elements, a dict's keys, a string's
 * characters. */
wisp_jv *jinja_iterable(jctx *c, int line, wisp_jv *v)
{
    switch (v->type) {
    case JV_LIST: return v;
    case JV_UNDEF: return jv_list_n(c->env, 0);
    case JV_DICT: {
        wisp_jv *l = jv_list_n(c->env, v->dict->n);
        for (size_t i = 0; i < v->dict->n; i++)
            wisp_jv_list_push(c->env, l, v->dict->k[i]);
        return l;
    }
    case JV_STR: {
        wisp_jv *l = wisp_jv_list(c->env);
        size_t i = 0;
        while (i < v->str.n) {
            size_t a = i;
            pystr_next(v->str.s, v->str.n, &i);
            wisp_jv_list_push(c->env, l, wisp_jv_str(c->env, v->str.s + a, i - a));
        }
        return l;
    }
    default:
        return jinja_fail(c, line, WISP_E_INVALID, "'%s' object is not iterable", jv_type_name(v));
    }
}

static bool assign(jctx *c, jframe *f, int line, const char **names, size_t n, wisp_jv *v)
{
    if (n == 1) {
        frame_set(c, f, names[0], v);
        return true;
    }
    wisp_jv *l = v->type == JV_LIST ? v : jinja_iterable(c, line, v);
    if (!l)
        return false;
    if (l->list->n != n) {
        jinja_fail(c, line, WISP_E_INVALID, "cannot unpack %zu values into %zu names", l->list->n,
                   n);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        frame_set(c, f, names[i], l->list->v[i]);
    return true;
}

static wisp_jv *loop_cycle(jctx *c, wisp_jv *self, const jargs *a)
{
    wisp_jv *idx = jv_dict_gets(self, "index0", 6);
    if (!a->npos)
        return jinja_fail(c, a->line, WISP_E_INVALID, "no items for cycling given");
    return a->pos[idx->i % (int64_t)a->npos];
}

static int exec_for(jctx *c, jframe *f, const jnode *n)
{
    wisp_jinja_env *env = c->env;
    wisp_jv *src = eval(c, f, n->a);
    wisp_jv *items = src ? jinja_iterable(c, n->line, src) : NULL;
    if (!items)
        return FLOW_ERR;
    /* the loop filter chooses the items before loop.length is known */
    if (n->b) {
        wisp_jv *kept = jv_list_n(env, items->list->n);
        for (size_t i = 0; i < items->list->n; i++) {
            jframe *it = frame_new(c, f);
            if (!it || !assign(c, it, n->line, n->names, n->nnames, items->list->v[i]))
                return step(c, n->line), FLOW_ERR;
            wisp_jv *ok = eval(c, it, n->b);
            if (!ok)
                return FLOW_ERR;
            if (jv_truthy(ok))
                wisp_jv_list_push(env, kept, items->list->v[i]);
        }
        items = kept;
    }
    size_t len = items->list->n;
    if (len == 0)
        return n->nkids2 ? exec_body(c, f, n->kids2, n->nkids2) : FLOW_OK;
    wisp_jv *loop = wisp_jv_dict(env);
    for (size_t i = 0; i < len; i++) {
        if (!step(c, n->line))
            return FLOW_ERR;
        jframe *it = frame_new(c, f);
        if (!it || !assign(c, it, n->line, n->names, n->nnames, items->list->v[i]))
            return step(c, n->line), FLOW_ERR;
        int64_t k = (int64_t)i, L = (int64_t)len;
        wisp_jv_dict_set(env, loop, "index0", 6, wisp_jv_int(env, k));
        wisp_jv_dict_set(env, loop, "index", 5, wisp_jv_int(env, k + 1));
        wisp_jv_dict_set(env, loop, "revindex0", 9, wisp_jv_int(env, L - k - 1));
        wisp_jv_dict_set(env, loop, "revindex", 8, wisp_jv_int(env, L - k));
        wisp_jv_dict_set(env, loop, "first", 5, wisp_jv_bool(env, i == 0));
        wisp_jv_dict_set(env, loop, "last", 4, wisp_jv_bool(env, i + 1 == len));
        wisp_jv_dict_set(env, loop, "length", 6, wisp_jv_int(env, L));
        wisp_jv_dict_set(env, loop, "depth", 5, wisp_jv_int(env, 1));
        wisp_jv_dict_set(env, loop, "depth0", 6, wisp_jv_int(env, 0));
        wisp_jv_dict_set(env, loop, "previtem", 8,
                         i ? items->list->v[i - 1] : jv_undef(env, "there is no previous item"));
        wisp_jv_dict_set(env, loop, "nextitem", 8,
                         i + 1 < len ? items->list->v[i + 1]
                                     : jv_undef(env, "there is no next item"));
        wisp_jv_dict_set(env, loop, "cycle", 5, jv_func(env, loop_cycle, loop, "cycle"));
        frame_set(c, it, "loop", loop);
        int rc = exec_body(c, it, n->kids, n->nkids);
        if (rc == FLOW_ERR)
            return rc;
        if (rc == FLOW_BREAK)
            break;
    }
    return FLOW_OK;
}

static int exec_stmt(jctx *c, jframe *f, const jnode *n)
{
    if (!step(c, n->line))
        return FLOW_ERR;
    wisp_jinja_env *env = c->env;
    switch (n->kind) {
    case N_TEXT: return emit(c, n->line, n->val->str.s, n->val->str.n) ? FLOW_OK : FLOW_ERR;
    case N_OUTPUT: {
        wisp_jv *v = eval(c, f, n->a);
        return v && emit_value(c, n->line, v) ? FLOW_OK : FLOW_ERR;
    }
    case N_IF: {
        wisp_jv *cond = eval(c, f, n->a);
        if (!cond)
            return FLOW_ERR;
        if (jv_truthy(cond))
            return exec_body(c, f, n->kids, n->nkids);
        return exec_body(c, f, n->kids2, n->nkids2);
    }
    case N_FOR: return exec_for(c, f, n);
    case N_SET: {
        wisp_jv *v = eval(c, f, n->a);
        return v && assign(c, f, n->line, n->names, n->nnames, v) ? FLOW_OK : FLOW_ERR;
    }
    case N_SET_ATTR: {
        wisp_jv *ns = lookup(c, f, n->name);
        if (!ns || ns->type != JV_NS) {
            jinja_fail(c, n->line, WISP_E_INVALID,
                       "cannot assign attribute on non-namespace object");
            return FLOW_ERR;
        }
        wisp_jv *v = eval(c, f, n->a);
        if (!v)
            return FLOW_ERR;
        wisp_jv_dict_set(env, ns, n->names[0], strlen(n->names[0]), v);
        return FLOW_OK;
    }
    case N_SET_BLOCK:
    case N_FILTER_BLOCK: {
        wisp_buf captured = WISP_BUF_INIT, *saved = c->out;
        c->out = &captured;
        int rc = exec_body(c, f, n->kids, n->nkids);
        c->out = saved;
        wisp_jv *text = rc == FLOW_ERR
                            ? NULL
                            : wisp_jv_str(env, captured.data ? captured.data : "", captured.len);
        wisp_buf_free(&captured);
        if (!text)
            return FLOW_ERR;
        if (n->kind == N_SET_BLOCK) {
            frame_set(c, f, n->name, text);
            return rc;
        }
        n->b->val = text; /* the placeholder the filter chain starts from */
        wisp_jv *v = eval(c, f, n->a);
        return v && emit_value(c, n->line, v) ? rc : FLOW_ERR;
    }
    case N_MACRO: {
        wisp_jv *m = jv_new(env, JV_MACRO);
        if (m->type == JV_MACRO) {
            m->macro.def = n;
            m->macro.closure = f;
        }
        frame_set(c, f, n->name, m);
        return FLOW_OK;
    }
    case N_CALL_BLOCK: {
        const jnode *call = n->a;
        wisp_jv *fn = eval(c, f, call->a);
        jargs a;
        if (!fn || !eval_args(c, f, call, &a, NULL))
            return FLOW_ERR;
        if (fn->type != JV_MACRO) {
            jinja_fail(c, n->line, WISP_E_INVALID, "'call' needs a macro");
            return FLOW_ERR;
        }
        wisp_jv *caller = jv_new(env, JV_MACRO);
        if (caller->type == JV_MACRO) {
            caller->macro.def = n;
            caller->macro.closure = f;
        }
        wisp_jv *v = call_macro(c, fn, &a, caller);
        return v && emit_value(c, n->line, v) ? FLOW_OK : FLOW_ERR;
    }
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    default:
        jinja_fail(c, n->line, WISP_E_INTERNAL, "expression used as a statement");
        return FLOW_ERR;
    }
}

static int exec_body(jctx *c, jframe *f, jnode *const *body, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = exec_stmt(c, f, body[i]);
        if (rc != FLOW_OK)
            return rc;
    }
    return FLOW_OK;
}

int wisp_jinja_render(wisp_jinja_env *env, const char *src, size_t n, wisp_buf *out, wisp_err *err)
{
    wisp_err local = {0};
    if (!err)
        err = &local;
    if (env->oom)
        return wisp_err_set(err, WISP_E_TOO_LARGE, "chat template: memory limit reached");
    jtoks toks = {0};
    jnode *root = NULL;
    int rc = jinja_lex(env, src, n, &toks, err);
    if (!rc)
        rc = jinja_parse(env, &toks, &root, err);
    if (rc)
        return rc;
    jctx c = {.env = env, .out = out, .err = err};
    c.globals = frame_new(&c, NULL);
    if (!c.globals)
        return wisp_err_set(err, WISP_E_TOO_LARGE, "chat template: memory limit reached");
    int flow = exec_body(&c, c.globals, root->kids, root->nkids);
    if (flow == FLOW_ERR || c.failed)
        return err->code ? err->code : WISP_E_INTERNAL;
    return 0;
}
