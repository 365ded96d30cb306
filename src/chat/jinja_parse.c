/*
 * jinja_parse.c - tokens to a syntax tree, with jinja2's grammar and
 * operator precedence (lowest first): conditional expression, or, and, not,
 * comparisons and `in`, + -, ~, * / // %, **, unary - +, then a primary with
 * its postfixes (attribute, subscript, call), filters and tests.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/jinja_int.h"

typedef struct parser {
    wisp_jinja_env *env;
    const jtoks *toks;
    size_t i;
    int depth;
    wisp_err *err;
    bool failed;
} parser;

static const jtok *peek(parser *p) { return &p->toks->t[p->i]; }
static const jtok *peek2(parser *p)
{
    return p->i + 1 < p->toks->n ? &p->toks->t[p->i + 1] : &p->toks->t[p->i];
}
static const jtok *next(parser *p)
{
    const jtok *t = &p->toks->t[p->i];
    if (t->type != JT_EOF)
        p->i++;
    return t;
}

static void *fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void *fail(parser *p, const char *fmt, ...)
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

static bool is_op(const jtok *t, const char *op)
{
    return t->type == JT_OP && strcmp(t->s, op) == 0;
}
static bool is_name(const jtok *t, const char *n)
{
    return t->type == JT_NAME && strcmp(t->s, n) == 0;
}

static bool accept_op(parser *p, const char *op)
{
    if (!is_op(peek(p), op))
        return false;
    next(p);
    return true;
}

static bool expect_op(parser *p, const char *op)
{
    if (accept_op(p, op))
        return true;
    fail(p, "expected '%s'", op);
    return false;
}

static const char *tok_desc(const jtok *t)
{
    switch (t->type) {
    case JT_EOF: return "end of template";
    case JT_VAR_END: return "'}}'";
    case JT_BLOCK_END: return "'%}'";
    default: return t->s;
    }
}

static jnode *node(parser *p, jnode_kind k, int line)
{
    jnode *n = jinja_alloc(p->env, sizeof *n);
    if (!n)
        return fail(p, "%s", "out of memory");
    n->kind = k;
    n->line = line;
    return n;
}

/* A growable array of pointers in the arena. */
typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

static bool vpush(parser *p, vec *a, void *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        void **nv = jinja_alloc(p->env, cap * sizeof *nv);
        if (!nv) {
            fail(p, "%s", "out of memory");
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

static jnode *expr(parser *p);
static jnode *unary(parser *p, bool with_filter);
static jnode *or_expr(parser *p);

static bool enter(parser *p)
{
    if (++p->depth > 200) {
        fail(p, "%s", "expressions or blocks nested too deeply");
        return false;
    }
    return true;
}

/* ( args ) after the '(' : positional then name=value. */
static bool call_args(parser *p, jnode *n)
{
    vec pos = {0}, kwn = {0}, kwv = {0};
    while (!p->failed && !is_op(peek(p), ")")) {
        if (pos.n + kwn.n && !expect_op(p, ","))
            return false;
        if (is_op(peek(p), ")"))
            break;
        if (peek(p)->type == JT_NAME && is_op(peek2(p), "=")) {
            const char *name = next(p)->s;
            next(p);
            jnode *v = expr(p);
            if (!v || !vpush(p, &kwn, (void *)name) || !vpush(p, &kwv, v))
                return false;
        } else {
            if (kwn.n)
                return fail(p, "%s", "positional argument after a keyword argument") != NULL;
            jnode *v = expr(p);
            if (!v || !vpush(p, &pos, v))
                return false;
        }
    }
    if (!expect_op(p, ")"))
        return false;
    n->kids = (jnode **)pos.v;
    n->nkids = pos.n;
    n->names = (const char **)kwn.v;
    n->nnames = kwn.n;
    n->kids2 = (jnode **)kwv.v;
    n->nkids2 = kwv.n;
    return true;
}

static jnode *lit(parser *p, int line, wisp_jv *v)
{
    jnode *n = node(p, E_LIT, line);
    if (n)
        n->val = v;
    return n;
}

static jnode *primary(parser *p)
{
    const jtok *t = next(p);
    int line = t->line;
    switch (t->type) {
    case JT_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            return lit(p, line, wisp_jv_bool(p->env, true));
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            return lit(p, line, wisp_jv_bool(p->env, false));
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            return lit(p, line, wisp_jv_none(p->env));
        {
            jnode *n = node(p, E_NAME, line);
            if (n)
                n->name = t->s;
            return n;
        }
    case JT_STRING: {
        /* adjacent literals concatenate */
        if (peek(p)->type != JT_STRING)
            return lit(p, line, wisp_jv_str(p->env, t->s, t->n));
        wisp_buf b = WISP_BUF_INIT;
        int rc = wisp_buf_append(&b, t->s, t->n);
        while (peek(p)->type == JT_STRING) {
            const jtok *u = next(p);
            rc |= wisp_buf_append(&b, u->s, u->n);
        }
        jnode *n =
            rc ? fail(p, "%s", "out of memory") : lit(p, line, wisp_jv_str(p->env, b.data, b.len));
        wisp_buf_free(&b);
        return n;
    }
    case JT_INT: return lit(p, line, wisp_jv_int(p->env, t->i));
    case JT_FLOAT: return lit(p, line, wisp_jv_float(p->env, t->f));
    case JT_OP:
        if (!strcmp(t->s, "(")) {
            if (accept_op(p, ")"))
                return node(p, E_LIST, line); /* () */
            jnode *e = expr(p);
            if (!e)
                return NULL;
            if (!is_op(peek(p), ","))
                return expect_op(p, ")") ? e : NULL;
            vec items = {0};
            vpush(p, &items, e);
            while (accept_op(p, ",")) {
                if (is_op(peek(p), ")"))
                    break;
                jnode *x = expr(p);
                if (!x || !vpush(p, &items, x))
                    return NULL;
            }
            if (!expect_op(p, ")"))
                return NULL;
            jnode *n = node(p, E_LIST, line);
            if (n) {
                n->kids = (jnode **)items.v;
                n->nkids = items.n;
                n->neg = true; /* a tuple */
            }
            return n;
        }
        if (!strcmp(t->s, "[")) {
            vec items = {0};
            while (!is_op(peek(p), "]")) {
                if (items.n && !expect_op(p, ","))
                    return NULL;
                if (is_op(peek(p), "]"))
                    break;
                jnode *x = expr(p);
                if (!x || !vpush(p, &items, x))
                    return NULL;
            }
            next(p);
            jnode *n = node(p, E_LIST, line);
            if (n) {
                n->kids = (jnode **)items.v;
                n->nkids = items.n;
            }
            return n;
        }
        if (!strcmp(t->s, "{")) {
            vec keys = {0}, vals = {0};
            while (!is_op(peek(p), "}")) {
                if (keys.n && !expect_op(p, ","))
                    return NULL;
                if (is_op(peek(p), "}"))
                    break;
                jnode *k = expr(p);
                if (!k || !expect_op(p, ":"))
                    return NULL;
                jnode *v = expr(p);
                if (!v || !vpush(p, &keys, k) || !vpush(p, &vals, v))
                    return NULL;
            }
            next(p);
            jnode *n = node(p, E_DICT, line);
            if (n) {
                n->kids = (jnode **)keys.v;
                n->nkids = keys.n;
                n->kids2 = (jnode **)vals.v;
                n->nkids2 = vals.n;
            }
            return n;
        }
        break;
    default: break;
    }
    p->i--;
    return fail(p, "unexpected %s", tok_desc(peek(p)));
}

static jnode *subscript(parser *p, jnode *obj, int line)
{
    jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0;
    bool slice = false;
    for (;;) {
        if (!is_op(peek(p), ":") && !is_op(peek(p), "]")) {
            parts[k] = expr(p);
            if (!parts[k])
                return NULL;
        }
        if (accept_op(p, ":")) {
            slice = true;
            if (++k > 2)
                return fail(p, "%s", "too many ':' in a slice");
            continue;
        }
        break;
    }
    if (!expect_op(p, "]"))
        return NULL;
    jnode *n = node(p, slice ? E_SLICE : E_ITEM, line);
    if (!n)
        return NULL;
    n->a = obj;
    if (slice) {
        n->kids = jinja_alloc(p->env, 3 * sizeof *n->kids);
        if (!n->kids)
            return fail(p, "%s", "out of memory");
        memcpy(n->kids, parts, sizeof parts);
        n->nkids = 3;
    } else {
        if (!parts[0])
            return fail(p, "%s", "empty subscript");
        n->b = parts[0];
    }
    return n;
}

static jnode *postfix(parser *p, jnode *n)
{
    while (n && !p->failed) {
        const jtok *t = peek(p);
        int line = t->line;
        if (is_op(t, ".")) {
            next(p);
            const jtok *a = next(p);
            if (a->type == JT_NAME) {
                jnode *x = node(p, E_ATTR, line);
                if (!x)
                    return NULL;
                x->a = n;
                x->name = a->s;
                n = x;
            } else if (a->type == JT_INT) {
                jnode *x = node(p, E_ITEM, line);
                if (!x)
                    return NULL;
                x->a = n;
                x->b = lit(p, line, wisp_jv_int(p->env, a->i));
                n = x;
            } else {
                p->i--;
                return fail(p, "expected an attribute name after '.', got %s", tok_desc(a));
            }
        } else if (is_op(t, "[")) {
            next(p);
            n = subscript(p, n, line);
        } else if (is_op(t, "(")) {
            next(p);
            jnode *x = node(p, E_CALL, line);
            if (!x)
                return NULL;
            x->a = n;
            if (!call_args(p, x))
                return NULL;
            n = x;
        } else {
            break;
        }
    }
    return n;
}

static const char *name_tok(parser *p, const char *what)
{
    const jtok *t = next(p);
    if (t->type != JT_NAME) {
        p->i--;
        fail(p, "%s", what);
        return NULL;
    }
    return t->s;
}

/* Filter name with optional dotted parts and ( args ). */
static jnode *filter(parser *p, jnode *obj)
{
    int line = peek(p)->line;
    const char *name = name_tok(p, "expected a filter name after '|'");
    if (!name)
        return NULL;
    jnode *n = node(p, E_FILTER, line);
    if (!n)
        return NULL;
    n->name = name;
    n->a = obj;
    if (accept_op(p, "(") && !call_args(p, n))
        return NULL;
    return n;
}

static bool starts_primary(const jtok *t)
{
    if (t->type == JT_STRING || t->type == JT_INT || t->type == JT_FLOAT)
        return true;
    if (t->type == JT_NAME)
        return !is_name(t, "and") && !is_name(t, "or") && !is_name(t, "else") &&
               !is_name(t, "if") && !is_name(t, "in") && !is_name(t, "is") && !is_name(t, "not");
    return is_op(t, "(") || is_op(t, "[") || is_op(t, "{") || is_op(t, "-");
}

static jnode *test(parser *p, jnode *obj)
{
    int line = peek(p)->line;
    bool neg = false;
    if (is_name(peek(p), "not")) {
        next(p);
        neg = true;
    }
    const char *name = name_tok(p, "expected a test name after 'is'");
    if (!name)
        return NULL;
    jnode *n = node(p, E_TEST, line);
    if (!n)
        return NULL;
    n->name = name;
    n->a = obj;
    n->neg = neg;
    if (accept_op(p, "(")) {
        if (!call_args(p, n))
            return NULL;
    } else if (starts_primary(peek(p)) && !is_op(peek(p), "-")) {
        /* `is divisibleby 3`, `is sameas false`: one argument without parens */
        jnode *arg = unary(p, false);
        if (!arg)
            return NULL;
        n->kids = jinja_alloc(p->env, sizeof *n->kids);
        if (!n->kids)
            return fail(p, "%s", "out of memory");
        n->kids[0] = arg;
        n->nkids = 1;
    }
    return n;
}

static jnode *filter_expr(parser *p, jnode *n)
{
    while (n && !p->failed) {
        if (is_op(peek(p), "|")) {
            next(p);
            n = filter(p, n);
            n = postfix(p, n);
        } else if (is_name(peek(p), "is")) {
            next(p);
            n = test(p, n);
        } else {
            break;
        }
    }
    return n;
}

static jnode *unary(parser *p, bool with_filter)
{
    if (!enter(p))
        return NULL;
    const jtok *t = peek(p);
    jnode *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        jnode *a = unary(p, false);
        n = a ? node(p, E_UNARY, t->line) : NULL;
        if (n) {
            n->op = t->s;
            n->a = a;
        }
    } else {
        n = postfix(p, primary(p));
    }
    if (with_filter)
        n = filter_expr(p, n);
    p->depth--;
    return n;
}

/* ---------------------------------------------------------------- operators */

/* jinja2's operator precedence, loosest first (its parser's parse_or down
 * to parse_pow). Each level's operands are expressions of the next level;
 * below the last come unary expressions with their filters. Most levels
 * are left-associative binary operators; `not` is a prefix, comparisons
 * chain (a < b <= c is one node) and `~` gathers all its operands into one
 * node. */
typedef enum {
    LV_LEFT,
    LV_NOT,
    LV_CMP,
    LV_CONCAT
} level_shape;

static const struct op_level {
    level_shape shape;
    jnode_kind kind; /* LV_LEFT: the node each operator makes */
    bool keyword;    /* LV_LEFT: the operators are names, not symbols */
    const char *ops[4];
} levels[] = {
    {LV_LEFT, E_OR, true, {"or"}},
    {LV_LEFT, E_AND, true, {"and"}},
    {LV_NOT, E_NOT, true, {"not"}},
    {LV_CMP, E_CMP, false, {NULL}},
    {LV_LEFT, E_BIN, false, {"+", "-"}},
    {LV_CONCAT, E_CONCAT, false, {"~"}},
    {LV_LEFT, E_BIN, false, {"*", "/", "//", "%"}},
    {LV_LEFT, E_BIN, false, {"**"}},
};

#define N_LEVELS ((int)(sizeof levels / sizeof levels[0]))

static jnode *binary(parser *p, int level);

static bool level_op(const struct op_level *lv, const jtok *t)
{
    for (size_t i = 0; i < sizeof lv->ops / sizeof lv->ops[0] && lv->ops[i]; i++)
        if (lv->keyword ? is_name(t, lv->ops[i]) : is_op(t, lv->ops[i]))
            return true;
    return false;
}

static jnode *left_assoc(parser *p, int level)
{
    const struct op_level *lv = &levels[level];
    jnode *n = binary(p, level + 1);
    while (n && level_op(lv, peek(p))) {
        const jtok *t = next(p);
        jnode *b = binary(p, level + 1);
        jnode *x = b ? node(p, lv->kind, t->line) : NULL;
        if (!x)
            return NULL;
        if (lv->kind == E_BIN)
            x->op = t->s;
        x->a = n;
        x->b = b;
        n = x;
    }
    return n;
}

static jnode *not_expr(parser *p, int level)
{
    const struct op_level *lv = &levels[level];
    if (!level_op(lv, peek(p)))
        return binary(p, level + 1);
    int line = next(p)->line;
    if (!enter(p))
        return NULL;
    jnode *a = not_expr(p, level);
    p->depth--;
    jnode *n = a ? node(p, lv->kind, line) : NULL;
    if (n)
        n->a = a;
    return n;
}

static jnode *concat_expr(parser *p, int level)
{
    const struct op_level *lv = &levels[level];
    jnode *n = binary(p, level + 1);
    if (!n || !level_op(lv, peek(p)))
        return n;
    vec parts = {0};
    vpush(p, &parts, n);
    int line = peek(p)->line;
    while (level_op(lv, peek(p))) {
        next(p);
        jnode *x = binary(p, level + 1);
        if (!x || !vpush(p, &parts, x))
            return NULL;
    }
    jnode *c = node(p, lv->kind, line);
    if (c) {
        c->kids = (jnode **)parts.v;
        c->nkids = parts.n;
    }
    return c;
}

static jnode *compare(parser *p, int level)
{
    static const char *const cmp_ops[] = {"==", "!=", "<", "<=", ">", ">="};
    jnode *n = binary(p, level + 1);
    if (!n)
        return NULL;
    vec ops = {0}, operands = {0};
    int line = peek(p)->line;
    for (;;) {
        const jtok *t = peek(p);
        const char *op = NULL;
        for (size_t i = 0; !op && i < sizeof cmp_ops / sizeof cmp_ops[0]; i++)
            if (is_op(t, cmp_ops[i]))
                op = t->s;
        if (op) {
            next(p);
        } else if (is_name(t, "in")) {
            op = "in";
            next(p);
        } else if (is_name(t, "not") && is_name(peek2(p), "in")) {
            op = "not in";
            next(p);
            next(p);
        } else {
            break;
        }
        jnode *b = binary(p, level + 1);
        if (!b)
            return NULL;
        if (!operands.n)
            vpush(p, &operands, n);
        if (!vpush(p, &ops, (void *)op) || !vpush(p, &operands, b))
            return NULL;
    }
    if (!ops.n)
        return n;
    jnode *c = node(p, E_CMP, line);
    if (c) {
        c->kids = (jnode **)operands.v;
        c->nkids = operands.n;
        c->names = (const char **)ops.v;
        c->nnames = ops.n;
    }
    return c;
}

/* An expression of operator level `level` and tighter. */
static jnode *binary(parser *p, int level)
{
    if (level == N_LEVELS)
        return unary(p, true);
    switch (levels[level].shape) {
    case LV_NOT: return not_expr(p, level);
    case LV_CMP: return compare(p, level);
    case LV_CONCAT: return concat_expr(p, level);
    case LV_LEFT: break;
    }
    return left_assoc(p, level);
}

static jnode *or_expr(parser *p) { return binary(p, 0); }

/* x if c else y; `else` may be left out (then undefined). */
static jnode *expr(parser *p)
{
    if (!enter(p))
        return NULL;
    jnode *n = or_expr(p);
    while (n && is_name(peek(p), "if")) {
        int line = next(p)->line;
        jnode *c = or_expr(p);
        if (!c)
            return NULL;
        jnode *e = NULL;
        if (is_name(peek(p), "else")) {
            next(p);
            e = expr(p);
            if (!e)
                return NULL;
        }
        jnode *x = node(p, E_COND, line);
        if (!x)
            return NULL;
        x->a = c;
        x->b = n;
        x->c = e;
        n = x;
    }
    p->depth--;
    return n;
}

/* ---------------------------------------------------------------- statements */

static bool block_end(parser *p)
{
    if (peek(p)->type == JT_BLOCK_END) {
        next(p);
        return true;
    }
    fail(p, "expected '%%}', got %s", tok_desc(peek(p)));
    return false;
}

/* Parses statements until a block tag named one of `ends` (NULL-terminated);
 * leaves p at that name (after '{%'). */
static bool body(parser *p, vec *out, const char *const *ends, const char **which);

/* After {% else %}: the statements up to {% end %} become n's else
 * branch (kids2); the end tag is consumed. */
static bool else_body(parser *p, const char *end, jnode *n)
{
    const char *const ends[] = {end, NULL};
    const char *which;
    vec eb = {0};
    if (!body(p, &eb, ends, &which))
        return false;
    n->kids2 = (jnode **)eb.v;
    n->nkids2 = eb.n;
    next(p);
    return block_end(p);
}

static jnode *stmt_if(parser *p, int line)
{
    jnode *n = node(p, N_IF, line);
    if (!n)
        return NULL;
    n->a = expr(p);
    if (!n->a || !block_end(p))
        return NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    vec b = {0};
    const char *which;
    if (!body(p, &b, ends, &which))
        return NULL;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    next(p);
    if (!strcmp(which, "elif")) {
        jnode *e = stmt_if(p, peek(p)->line);
        if (!e)
            return NULL;
        n->kids2 = jinja_alloc(p->env, sizeof *n->kids2);
        if (!n->kids2)
            return fail(p, "%s", "out of memory");
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
    jnode *n = node(p, N_FOR, line);
    if (!n)
        return NULL;
    vec targets = {0};
    do {
        const char *t = name_tok(p, "expected a loop variable name");
        if (!t || !vpush(p, &targets, (void *)t))
            return NULL;
    } while (accept_op(p, ","));
    n->names = (const char **)targets.v;
    n->nnames = targets.n;
    if (!is_name(peek(p), "in"))
        return fail(p, "expected 'in' in a for loop, got %s", tok_desc(peek(p)));
    next(p);
    n->a = or_expr(p); /* a condexpr here would take the filter's `if` */
    if (!n->a)
        return NULL;
    if (is_name(peek(p), "if")) {
        next(p);
        n->b = expr(p);
        if (!n->b)
            return NULL;
    }
    if (is_name(peek(p), "recursive"))
        return fail(p, "%s", "recursive for loops are not supported");
    if (!block_end(p))
        return NULL;
    static const char *const ends[] = {"else", "endfor", NULL};
    vec b = {0};
    const char *which;
    if (!body(p, &b, ends, &which))
        return NULL;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    next(p);
    if (!block_end(p))
        return NULL;
    if (!strcmp(which, "else") && !else_body(p, "endfor", n))
        return NULL;
    return n;
}

static jnode *stmt_set(parser *p, int line)
{
    const char *name = name_tok(p, "expected a variable name after 'set'");
    if (!name)
        return NULL;
    if (accept_op(p, ".")) {
        const char *attr = name_tok(p, "expected an attribute name");
        if (!attr || !expect_op(p, "="))
            return NULL;
        jnode *n = node(p, N_SET_ATTR, line);
        if (!n)
            return NULL;
        n->name = name;
        n->names = jinja_alloc(p->env, sizeof *n->names);
        if (!n->names)
            return fail(p, "%s", "out of memory");
        n->names[0] = attr;
        n->nnames = 1;
        n->a = expr(p);
        return n->a && block_end(p) ? n : NULL;
    }
    vec targets = {0};
    vpush(p, &targets, (void *)name);
    while (accept_op(p, ",")) {
        const char *t = name_tok(p, "expected a variable name");
        if (!t || !vpush(p, &targets, (void *)t))
            return NULL;
    }
    if (peek(p)->type == JT_BLOCK_END && targets.n == 1) {
        next(p);
        jnode *n = node(p, N_SET_BLOCK, line);
        if (!n)
            return NULL;
        n->name = name;
        static const char *const ends[] = {"endset", NULL};
        vec b = {0};
        const char *which;
        if (!body(p, &b, ends, &which))
            return NULL;
        n->kids = (jnode **)b.v;
        n->nkids = b.n;
        next(p);
        return block_end(p) ? n : NULL;
    }
    if (!expect_op(p, "="))
        return NULL;
    jnode *n = node(p, N_SET, line);
    if (!n)
        return NULL;
    n->names = (const char **)targets.v;
    n->nnames = targets.n;
    n->a = expr(p);
    if (n->a && accept_op(p, ",")) {
        /* {% set a, b = 1, 2 %}: a tuple on the right */
        jnode *t = node(p, E_LIST, line);
        vec items = {0};
        vpush(p, &items, n->a);
        do {
            jnode *x = expr(p);
            if (!x || !vpush(p, &items, x))
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
    if (!expect_op(p, "("))
        return false;
    while (!is_op(peek(p), ")")) {
        if (names.n && !expect_op(p, ","))
            return false;
        const char *name = name_tok(p, "expected a parameter name");
        if (!name)
            return false;
        jnode *d = NULL;
        if (accept_op(p, "=")) {
            d = expr(p);
            if (!d)
                return false;
        }
        if (!vpush(p, &names, (void *)name) || !vpush(p, &defs, d))
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
    jnode *n = node(p, N_MACRO, line);
    if (!n)
        return NULL;
    n->name = name_tok(p, "expected a macro name");
    if (!n->name || !params(p, n) || !block_end(p))
        return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    vec b = {0};
    const char *which;
    if (!body(p, &b, ends, &which))
        return NULL;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    next(p);
    if (peek(p)->type == JT_NAME)
        next(p); /* {% endmacro name %} */
    return block_end(p) ? n : NULL;
}

/* {% call [(params)] macro(args) %}body{% endcall %}: the body is `caller`. */
static jnode *stmt_call(parser *p, int line)
{
    jnode *n = node(p, N_CALL_BLOCK, line);
    if (!n)
        return NULL;
    if (is_op(peek(p), "(") && !params(p, n))
        return NULL;
    n->a = expr(p);
    if (!n->a || n->a->kind != E_CALL)
        return n->a ? fail(p, "%s", "expected a macro call after 'call'") : NULL;
    if (!block_end(p))
        return NULL;
    static const char *const ends[] = {"endcall", NULL};
    vec b = {0};
    const char *which;
    if (!body(p, &b, ends, &which))
        return NULL;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    next(p);
    return block_end(p) ? n : NULL;
}

static jnode *stmt_filter(parser *p, int line)
{
    jnode *n = node(p, N_FILTER_BLOCK, line);
    if (!n)
        return NULL;
    /* the filter chain applies to a placeholder: the block's text */
    jnode *hole = node(p, E_LIT, line);
    if (!hole)
        return NULL;
    n->a = filter(p, hole);
    while (n->a && accept_op(p, "|"))
        n->a = filter(p, n->a);
    if (!n->a || !block_end(p))
        return NULL;
    n->b = hole;
    static const char *const ends[] = {"endfilter", NULL};
    vec b = {0};
    const char *which;
    if (!body(p, &b, ends, &which))
        return NULL;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    next(p);
    return block_end(p) ? n : NULL;
}

static jnode *statement(parser *p)
{
    const jtok *t = next(p);
    int line = t->line;
    if (t->type != JT_NAME)
        return fail(p, "expected a statement name, got %s", tok_desc(t));
    if (!enter(p))
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
        n = node(p, t->s[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        if (n && !block_end(p))
            n = NULL;
    } else {
        p->i--;
        n = fail(p, "unknown or unsupported statement '%s'", t->s);
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
            fail(p, "missing '{%% %s %%}' before the end of the template", ends[last]);
            return false;
        }
        if (t->type == JT_TEXT) {
            next(p);
            jnode *n = node(p, N_TEXT, t->line);
            if (!n)
                return false;
            n->val = wisp_jv_str(p->env, t->s, t->n);
            if (!vpush(p, out, n))
                return false;
        } else if (t->type == JT_VAR_BEGIN) {
            next(p);
            jnode *n = node(p, N_OUTPUT, t->line);
            if (!n)
                return false;
            n->a = expr(p);
            if (!n->a)
                return false;
            if (peek(p)->type != JT_VAR_END) {
                fail(p, "expected '}}', got %s", tok_desc(peek(p)));
                return false;
            }
            next(p);
            if (!vpush(p, out, n))
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
                fail(p, "unexpected '%s'", name->s);
                return false;
            }
            next(p);
            jnode *n = statement(p);
            if (!n || !vpush(p, out, n))
                return false;
        } else {
            fail(p, "unexpected %s", tok_desc(t));
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
            fail(&p, "%s", "syntax error");
        return err && err->code ? err->code : WISP_E_INVALID;
    }
    jnode *n = node(&p, N_TEXT, 1); /* the root: a body with no text */
    if (!n)
        return err && err->code ? err->code : WISP_E_NOMEM;
    n->kids = (jnode **)b.v;
    n->nkids = b.n;
    *root = n;
    return 0;
}
