/*
 * jinja_parse_expr.c - expressions to syntax trees, with jinja2's grammar
 * and operator precedence (lowest first): conditional expression, or, and,
 * not, comparisons and `in`, + -, ~, * / // %, **, unary - +, then a
 * primary with its postfixes (attribute, subscript, call), filters and
 * tests.
 */
#include <stdio.h>
#include <string.h>

#include "chat/jinja_parse_int.h"

static jnode *unary(parser *p, bool with_filter);

/* ( args ) after the '(' : positional then name=value. */
static bool call_args(parser *p, jnode *n)
{
    vec pos = {0}, kwn = {0}, kwv = {0};
    while (!p->failed && !is_op(peek(p), ")")) {
        if (pos.n + kwn.n && !jinja_parse_expect_op(p, ","))
            return false;
        if (is_op(peek(p), ")"))
            break;
        if (peek(p)->type == JT_NAME && is_op(peek2(p), "=")) {
            const char *name = next(p)->s;
            next(p);
            jnode *v = jinja_parse_expr(p);
            if (!v || !jinja_parse_vpush(p, &kwn, (void *)name) || !jinja_parse_vpush(p, &kwv, v))
                return false;
        } else {
            if (kwn.n)
                return jinja_parse_fail(p, "%s", "positional argument after a keyword argument") !=
                       NULL;
            jnode *v = jinja_parse_expr(p);
            if (!v || !jinja_parse_vpush(p, &pos, v))
                return false;
        }
    }
    if (!jinja_parse_expect_op(p, ")"))
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
    jnode *n = jinja_parse_node(p, E_LIT, line);
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
            jnode *n = jinja_parse_node(p, E_NAME, line);
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
        jnode *n = rc ? jinja_parse_fail(p, "%s", "out of memory")
                      : lit(p, line, wisp_jv_str(p->env, b.data, b.len));
        wisp_buf_free(&b);
        return n;
    }
    case JT_INT: return lit(p, line, wisp_jv_int(p->env, t->i));
    case JT_FLOAT: return lit(p, line, wisp_jv_float(p->env, t->f));
    case JT_OP:
        if (!strcmp(t->s, "(")) {
            if (accept_op(p, ")")) {
                jnode *n = jinja_parse_node(p, E_LIST, line); /* () */
                if (n)
                    n->neg = true; /* the empty tuple */
                return n;
            }
            jnode *e = jinja_parse_expr(p);
            if (!e)
                return NULL;
            if (!is_op(peek(p), ","))
                return jinja_parse_expect_op(p, ")") ? e : NULL;
            vec items = {0};
            jinja_parse_vpush(p, &items, e);
            while (accept_op(p, ",")) {
                if (is_op(peek(p), ")"))
                    break;
                jnode *x = jinja_parse_expr(p);
                if (!x || !jinja_parse_vpush(p, &items, x))
                    return NULL;
            }
            if (!jinja_parse_expect_op(p, ")"))
                return NULL;
            jnode *n = jinja_parse_node(p, E_LIST, line);
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
                if (items.n && !jinja_parse_expect_op(p, ","))
                    return NULL;
                if (is_op(peek(p), "]"))
                    break;
                jnode *x = jinja_parse_expr(p);
                if (!x || !jinja_parse_vpush(p, &items, x))
                    return NULL;
            }
            next(p);
            jnode *n = jinja_parse_node(p, E_LIST, line);
            if (n) {
                n->kids = (jnode **)items.v;
                n->nkids = items.n;
            }
            return n;
        }
        if (!strcmp(t->s, "{")) {
            vec keys = {0}, vals = {0};
            while (!is_op(peek(p), "}")) {
                if (keys.n && !jinja_parse_expect_op(p, ","))
                    return NULL;
                if (is_op(peek(p), "}"))
                    break;
                jnode *k = jinja_parse_expr(p);
                if (!k || !jinja_parse_expect_op(p, ":"))
                    return NULL;
                jnode *v = jinja_parse_expr(p);
                if (!v || !jinja_parse_vpush(p, &keys, k) || !jinja_parse_vpush(p, &vals, v))
                    return NULL;
            }
            next(p);
            jnode *n = jinja_parse_node(p, E_DICT, line);
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
    return jinja_parse_fail(p, "unexpected %s", jinja_parse_tok_desc(peek(p)));
}

static jnode *subscript(parser *p, jnode *obj, int line)
{
    jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0;
    bool slice = false;
    for (;;) {
        if (!is_op(peek(p), ":") && !is_op(peek(p), "]")) {
            parts[k] = jinja_parse_expr(p);
            if (!parts[k])
                return NULL;
        }
        if (accept_op(p, ":")) {
            slice = true;
            if (++k > 2)
                return jinja_parse_fail(p, "%s", "too many ':' in a slice");
            continue;
        }
        break;
    }
    if (!jinja_parse_expect_op(p, "]"))
        return NULL;
    jnode *n = jinja_parse_node(p, slice ? E_SLICE : E_ITEM, line);
    if (!n)
        return NULL;
    n->a = obj;
    if (slice) {
        n->kids = jinja_alloc(p->env, 3 * sizeof *n->kids);
        if (!n->kids)
            return jinja_parse_fail(p, "%s", "out of memory");
        memcpy(n->kids, parts, sizeof parts);
        n->nkids = 3;
    } else {
        if (!parts[0])
            return jinja_parse_fail(p, "%s", "empty subscript");
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
                jnode *x = jinja_parse_node(p, E_ATTR, line);
                if (!x)
                    return NULL;
                x->a = n;
                x->name = a->s;
                n = x;
            } else if (a->type == JT_INT) {
                jnode *x = jinja_parse_node(p, E_ITEM, line);
                if (!x)
                    return NULL;
                x->a = n;
                x->b = lit(p, line, wisp_jv_int(p->env, a->i));
                n = x;
            } else {
                p->i--;
                return jinja_parse_fail(p, "expected an attribute name after '.', got %s",
                                        jinja_parse_tok_desc(a));
            }
        } else if (is_op(t, "[")) {
            next(p);
            n = subscript(p, n, line);
        } else if (is_op(t, "(")) {
            next(p);
            jnode *x = jinja_parse_node(p, E_CALL, line);
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

const char *jinja_parse_name(parser *p, const char *what)
{
    const jtok *t = next(p);
    if (t->type != JT_NAME) {
        p->i--;
        jinja_parse_fail(p, "%s", what);
        return NULL;
    }
    return t->s;
}

/* Filter name with optional dotted parts and ( args ). */
jnode *jinja_parse_filter(parser *p, jnode *obj)
{
    int line = peek(p)->line;
    const char *name = jinja_parse_name(p, "expected a filter name after '|'");
    if (!name)
        return NULL;
    jnode *n = jinja_parse_node(p, E_FILTER, line);
    if (!n)
        return NULL;
    n->name = name;
    n->a = obj;
    if (accept_op(p, "(") && !call_args(p, n))
        return NULL;
    return n;
}

/* What jinja2 takes as a test's bare argument (`is divisibleby 3`): any
 * name but else/or/and, so `a is odd if b` fails as it does there, and no
 * operator (`is sameas -1` is no argument). */
static bool starts_test_arg(const jtok *t)
{
    if (t->type == JT_NAME)
        return !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and");
    return t->type == JT_STRING || t->type == JT_INT || t->type == JT_FLOAT || is_op(t, "[") ||
           is_op(t, "{");
}

static jnode *test(parser *p, jnode *obj)
{
    int line = peek(p)->line;
    bool neg = false;
    if (is_name(peek(p), "not")) {
        next(p);
        neg = true;
    }
    const char *name = jinja_parse_name(p, "expected a test name after 'is'");
    if (!name)
        return NULL;
    jnode *n = jinja_parse_node(p, E_TEST, line);
    if (!n)
        return NULL;
    n->name = name;
    n->a = obj;
    n->neg = neg;
    if (accept_op(p, "(")) {
        if (!call_args(p, n))
            return NULL;
    } else if (is_name(peek(p), "is")) {
        /* jinja2 refuses `a is x is y`; `a is x() is y` it parses as (a is x()) is y */
        return jinja_parse_fail(p, "%s", "You cannot chain multiple tests with is");
    } else if (starts_test_arg(peek(p))) {
        /* `is divisibleby 3`, `is sameas false`: one argument without parens */
        jnode *arg = unary(p, false);
        if (!arg)
            return NULL;
        n->kids = jinja_alloc(p->env, sizeof *n->kids);
        if (!n->kids)
            return jinja_parse_fail(p, "%s", "out of memory");
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
            n = jinja_parse_filter(p, n);
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
    if (!jinja_parse_enter(p))
        return NULL;
    const jtok *t = peek(p);
    jnode *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        jnode *a = unary(p, false);
        n = a ? jinja_parse_node(p, E_UNARY, t->line) : NULL;
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
        jnode *x = b ? jinja_parse_node(p, lv->kind, t->line) : NULL;
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
    if (!jinja_parse_enter(p))
        return NULL;
    jnode *a = not_expr(p, level);
    p->depth--;
    jnode *n = a ? jinja_parse_node(p, lv->kind, line) : NULL;
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
    jinja_parse_vpush(p, &parts, n);
    int line = peek(p)->line;
    while (level_op(lv, peek(p))) {
        next(p);
        jnode *x = binary(p, level + 1);
        if (!x || !jinja_parse_vpush(p, &parts, x))
            return NULL;
    }
    jnode *c = jinja_parse_node(p, lv->kind, line);
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
            jinja_parse_vpush(p, &operands, n);
        if (!jinja_parse_vpush(p, &ops, (void *)op) || !jinja_parse_vpush(p, &operands, b))
            return NULL;
    }
    if (!ops.n)
        return n;
    jnode *c = jinja_parse_node(p, E_CMP, line);
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

jnode *jinja_parse_or(parser *p) { return binary(p, 0); }

/* x if c else y; `else` may be left out (then undefined). */
jnode *jinja_parse_expr(parser *p)
{
    if (!jinja_parse_enter(p))
        return NULL;
    jnode *n = jinja_parse_or(p);
    while (n && is_name(peek(p), "if")) {
        int line = next(p)->line;
        jnode *c = jinja_parse_or(p);
        if (!c)
            return NULL;
        jnode *e = NULL;
        if (is_name(peek(p), "else")) {
            next(p);
            e = jinja_parse_expr(p);
            if (!e)
                return NULL;
        }
        jnode *x = jinja_parse_node(p, E_COND, line);
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
