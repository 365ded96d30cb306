/*
 * jinja_parse.c - tokens to a syntax tree: the statements (if, for, set,
 * macro, call, filter blocks) and the entry point, with jinja2's grammar.
 * Expressions are jinja_parse_expr.c's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/jinja_parse_int.h"

void *jinja_parse_fail(parser *p, const char *fmt, ...)
{
    if (!p->failed) {
        p->failed = true;
        if (p->env->oom) {
            wisp_err_set(p->err, WISP_E_TOO_LARGE, "chat template: memory limit reached");
        } else {
            char msg[256];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg, sizeof msg, fmt, ap);
            va_end(ap);
            wisp_err_set(p->err, WISP_E_INVALID, "chat template line %d: %s", peek(p)->line, msg);
        }
    }
    return NULL;
}

bool jinja_parse_expect_op(parser *p, const char *op)
{
    if (accept_op(p, op))
        return true;
    jinja_parse_fail(p, "expected '%s'", op);
    return false;
}

const char *jinja_parse_tok_desc(const jtok *t)
{
    switch (t->type) {
    case JT_EOF: return "end of template";
    case JT_VAR_END: return "'}}'";
    case JT_BLOCK_END: return "'%}'";
    default: return t->s;
    }
}

jnode *jinja_parse_node(parser *p, jnode_kind k, int line)
{
    jnode *n = jinja_alloc(p->env, sizeof *n);
    if (!n)
        return jinja_parse_fail(p, "%s", "out of memory");
    n->kind = k;
    n->line = line;
    return n;
}

bool jinja_parse_vpush(parser *p, vec *a, void *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        void **nv = jinja_alloc(p->env, cap * sizeof *nv);
        if (!nv) {
            jinja_parse_fail(p, "%s", "out of memory");
            return false;
        }
        if (a->n)
            memcpy(nv, a->v, a->n * sizeof *nv);
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return true;
}

bool jinja_parse_enter(parser *p)
{
    if (++p->depth > 200) {
        jinja_parse_fail(p, "%s", "expressions or blocks nested too deeply");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- statements */

static bool block_end(parser *p)
{
    if (peek(p)->type == JT_BLOCK_END) {
        next(p);
        return true;
    }
    jinja_parse_fail(p, "expected '%%}', got %s", jinja_parse_tok_desc(peek(p)));
    return false;
}

/* Parses statements until a block tag named one of `ends` (NULL-terminated);
 * leaves p at that name (after '{%'). */
static bool body(parser *p, vec *out, const char *const *ends, const char **which);

/* The statements up to the first of ends (a NULL-terminated list) into
 * kids: *which is the end tag's name, consumed. */
static bool body_into(parser *p, const char *const *ends, jnode ***kids, size_t *n,
                      const char **which)
{
    vec b = {0};
    if (!body(p, &b, ends, which))
        return false;
    *kids = (jnode **)b.v;
    *n = b.n;
    next(p);
    return true;
}

/* After {% else %}: the statements up to {% end %} become n's else
 * branch (kids2); the end tag is consumed. */
static bool else_body(parser *p, const char *end, jnode *n)
{
    const char *const ends[] = {end, NULL};
    const char *which;
    return body_into(p, ends, &n->kids2, &n->nkids2, &which) && block_end(p);
}

static jnode *stmt_if(parser *p, int line)
{
    jnode *n = jinja_parse_node(p, N_IF, line);
    if (!n)
        return NULL;
    n->a = jinja_parse_expr(p);
    if (!n->a || !block_end(p))
        return NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *which;
    if (!body_into(p, ends, &n->kids, &n->nkids, &which))
        return NULL;
    if (!strcmp(which, "elif")) {
        jnode *e = stmt_if(p, peek(p)->line);
        if (!e)
            return NULL;
        n->kids2 = jinja_alloc(p->env, sizeof *n->kids2);
        if (!n->kids2)
            return jinja_parse_fail(p, "%s", "out of memory");
        n->kids2[0] = e;
        n->nkids2 = 1;
        return n; /* the nested if consumed endif */
    }
    if (!block_end(p))
        return NULL;
    if (!strcmp(which, "else") && !else_body(p, "endif", n))
        return NULL;
    return n;
}

static jnode *stmt_for(parser *p, int line)
{
    jnode *n = jinja_parse_node(p, N_FOR, line);
    if (!n)
        return NULL;
    vec targets = {0};
    do {
        const char *t = jinja_parse_name(p, "expected a loop variable name");
        if (!t || !jinja_parse_vpush(p, &targets, (void *)t))
            return NULL;
    } while (accept_op(p, ","));
    n->names = (const char **)targets.v;
    n->nnames = targets.n;
    if (!is_name(peek(p), "in"))
        return jinja_parse_fail(p, "expected 'in' in a for loop, got %s",
                                jinja_parse_tok_desc(peek(p)));
    next(p);
    n->a = jinja_parse_or(p); /* a condexpr here would take the filter's `if` */
    if (!n->a)
        return NULL;
    if (is_name(peek(p), "if")) {
        next(p);
        n->b = jinja_parse_expr(p);
        if (!n->b)
            return NULL;
    }
    if (is_name(peek(p), "recursive"))
        return jinja_parse_fail(p, "%s", "recursive for loops are not supported");
    if (!block_end(p))
        return NULL;
    static const char *const ends[] = {"else", "endfor", NULL};
    const char *which;
    if (!body_into(p, ends, &n->kids, &n->nkids, &which))
        return NULL;
    if (!block_end(p))
        return NULL;
    if (!strcmp(which, "else") && !else_body(p, "endfor", n))
        return NULL;
    return n;
}

static jnode *stmt_set(parser *p, int line)
{
    const char *name = jinja_parse_name(p, "expected a variable name after 'set'");
    if (!name)
        return NULL;
    if (accept_op(p, ".")) {
        const char *attr = jinja_parse_name(p, "expected an attribute name");
        if (!attr || !jinja_parse_expect_op(p, "="))
            return NULL;
        jnode *n = jinja_parse_node(p, N_SET_ATTR, line);
        if (!n)
            return NULL;
        n->name = name;
        n->names = jinja_alloc(p->env, sizeof *n->names);
        if (!n->names)
            return jinja_parse_fail(p, "%s", "out of memory");
        n->names[0] = attr;
        n->nnames = 1;
        n->a = jinja_parse_expr(p);
        return n->a && block_end(p) ? n : NULL;
    }
    vec targets = {0};
    jinja_parse_vpush(p, &targets, (void *)name);
    while (accept_op(p, ",")) {
        const char *t = jinja_parse_name(p, "expected a variable name");
        if (!t || !jinja_parse_vpush(p, &targets, (void *)t))
            return NULL;
    }
    if (peek(p)->type == JT_BLOCK_END && targets.n == 1) {
        next(p);
        jnode *n = jinja_parse_node(p, N_SET_BLOCK, line);
        if (!n)
            return NULL;
        n->name = name;
        static const char *const ends[] = {"endset", NULL};
        const char *which;
        if (!body_into(p, ends, &n->kids, &n->nkids, &which))
            return NULL;
        return block_end(p) ? n : NULL;
    }
    if (!jinja_parse_expect_op(p, "="))
        return NULL;
    jnode *n = jinja_parse_node(p, N_SET, line);
    if (!n)
        return NULL;
    n->names = (const char **)targets.v;
    n->nnames = targets.n;
    n->a = jinja_parse_expr(p);
    if (n->a && accept_op(p, ",")) {
        /* {% set a, b = 1, 2 %}: a tuple on the right */
        jnode *t = jinja_parse_node(p, E_LIST, line);
        vec items = {0};
        jinja_parse_vpush(p, &items, n->a);
        do {
            jnode *x = jinja_parse_expr(p);
            if (!x || !jinja_parse_vpush(p, &items, x))
                return NULL;
        } while (accept_op(p, ","));
        if (!t)
            return NULL;
        t->kids = (jnode **)items.v;
        t->nkids = items.n;
        n->a = t;
    }
    return n->a && block_end(p) ? n : NULL;
}

static bool params(parser *p, jnode *n)
{
    vec names = {0}, defs = {0};
    if (!jinja_parse_expect_op(p, "("))
        return false;
    while (!is_op(peek(p), ")")) {
        if (names.n && !jinja_parse_expect_op(p, ","))
            return false;
        const char *name = jinja_parse_name(p, "expected a parameter name");
        if (!name)
            return false;
        jnode *d = NULL;
        if (accept_op(p, "=")) {
            d = jinja_parse_expr(p);
            if (!d)
                return false;
        }
        if (!jinja_parse_vpush(p, &names, (void *)name) || !jinja_parse_vpush(p, &defs, d))
            return false;
    }
    next(p);
    n->names = (const char **)names.v;
    n->nnames = names.n;
    n->defaults = (jnode **)defs.v;
    return true;
}

static jnode *stmt_macro(parser *p, int line)
{
    jnode *n = jinja_parse_node(p, N_MACRO, line);
    if (!n)
        return NULL;
    n->name = jinja_parse_name(p, "expected a macro name");
    if (!n->name || !params(p, n) || !block_end(p))
        return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    const char *which;
    if (!body_into(p, ends, &n->kids, &n->nkids, &which))
        return NULL;
    if (peek(p)->type == JT_NAME)
        next(p); /* {% endmacro name %} */
    return block_end(p) ? n : NULL;
}

/* {% call [(params)] macro(args) %}body{% endcall %}: the body is `caller`. */
static jnode *stmt_call(parser *p, int line)
{
    jnode *n = jinja_parse_node(p, N_CALL_BLOCK, line);
    if (!n)
        return NULL;
    if (is_op(peek(p), "(") && !params(p, n))
        return NULL;
    n->a = jinja_parse_expr(p);
    if (!n->a || n->a->kind != E_CALL)
        return n->a ? jinja_parse_fail(p, "%s", "expected a macro call after 'call'") : NULL;
    if (!block_end(p))
        return NULL;
    static const char *const ends[] = {"endcall", NULL};
    const char *which;
    if (!body_into(p, ends, &n->kids, &n->nkids, &which))
        return NULL;
    return block_end(p) ? n : NULL;
}

static jnode *stmt_filter(parser *p, int line)
{
    jnode *n = jinja_parse_node(p, N_FILTER_BLOCK, line);
    if (!n)
        return NULL;
    /* the filter chain applies to a placeholder: the block's text */
    jnode *hole = jinja_parse_node(p, E_LIT, line);
    if (!hole)
        return NULL;
    n->a = jinja_parse_filter(p, hole);
    while (n->a && accept_op(p, "|"))
        n->a = jinja_parse_filter(p, n->a);
    if (!n->a || !block_end(p))
        return NULL;
    n->b = hole;
    static const char *const ends[] = {"endfilter", NULL};
    const char *which;
    if (!body_into(p, ends, &n->kids, &n->nkids, &which))
        return NULL;
    return block_end(p) ? n : NULL;
}

static jnode *statement(parser *p)
{
    const jtok *t = next(p);
    int line = t->line;
    if (t->type != JT_NAME)
        return jinja_parse_fail(p, "expected a statement name, got %s", jinja_parse_tok_desc(t));
    if (!jinja_parse_enter(p))
        return NULL;
    jnode *n = NULL;
    if (!strcmp(t->s, "if")) {
        n = stmt_if(p, line);
    } else if (!strcmp(t->s, "for")) {
        n = stmt_for(p, line);
    } else if (!strcmp(t->s, "set")) {
        n = stmt_set(p, line);
    } else if (!strcmp(t->s, "macro")) {
        n = stmt_macro(p, line);
    } else if (!strcmp(t->s, "call")) {
        n = stmt_call(p, line);
    } else if (!strcmp(t->s, "filter")) {
        n = stmt_filter(p, line);
    } else if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
        n = jinja_parse_node(p, t->s[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        if (n && !block_end(p))
            n = NULL;
    } else {
        p->i--;
        n = jinja_parse_fail(p, "unknown or unsupported statement '%s'", t->s);
    }
    p->depth--;
    return n;
}

static bool body(parser *p, vec *out, const char *const *ends, const char **which)
{
    for (;;) {
        if (p->failed)
            return false;
        const jtok *t = peek(p);
        if (t->type == JT_EOF) {
            if (!ends)
                return true;
            size_t last = 0;
            while (ends[last + 1])
                last++;
            jinja_parse_fail(p, "missing '{%% %s %%}' before the end of the template", ends[last]);
            return false;
        }
        if (t->type == JT_TEXT) {
            next(p);
            jnode *n = jinja_parse_node(p, N_TEXT, t->line);
            if (!n)
                return false;
            n->val = wisp_jv_str(p->env, t->s, t->n);
            if (!jinja_parse_vpush(p, out, n))
                return false;
        } else if (t->type == JT_VAR_BEGIN) {
            next(p);
            jnode *n = jinja_parse_node(p, N_OUTPUT, t->line);
            if (!n)
                return false;
            n->a = jinja_parse_expr(p);
            if (!n->a)
                return false;
            if (peek(p)->type != JT_VAR_END) {
                jinja_parse_fail(p, "expected '}}', got %s", jinja_parse_tok_desc(peek(p)));
                return false;
            }
            next(p);
            if (!jinja_parse_vpush(p, out, n))
                return false;
        } else if (t->type == JT_BLOCK_BEGIN) {
            const jtok *name = peek2(p);
            if (name->type == JT_NAME && ends)
                for (size_t i = 0; ends[i]; i++)
                    if (!strcmp(name->s, ends[i])) {
                        next(p);
                        *which = ends[i];
                        return true;
                    }
            if (name->type == JT_NAME && (!strncmp(name->s, "end", 3) || !strcmp(name->s, "elif") ||
                                          !strcmp(name->s, "else"))) {
                next(p);
                jinja_parse_fail(p, "unexpected '%s'", name->s);
                return false;
            }
            next(p);
            jnode *n = statement(p);
            if (!n || !jinja_parse_vpush(p, out, n))
                return false;
        } else {
            jinja_parse_fail(p, "unexpected %s", jinja_parse_tok_desc(t));
            return false;
        }
    }
}

int jinja_parse(wisp_jinja_env *env, const jtoks *toks, jnode **root, wisp_err *err)
{
    parser p = {.env = env, .toks = toks, .err = err};
    vec b = {0};
    const char *which = NULL;
    if (!body(&p, &b, NULL, &which)) {
        if (!p.failed)
            jinja_parse_fail(&p, "%s", "syntax error");
        return err && err->code ? err->code : WISP_E_INVALID;
    }
    jnode *n = jinja_parse_node(&p, N_TEXT, 1); /* the root: a body with no text */
    if (!n)
        return err && err->code ? err->code : WISP_E_NOMEM;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    *root = n;
    return 0;
}
