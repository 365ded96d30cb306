/*
 * jinja_parse_int.h - what the two halves of the parser share:
 * jinja_parse.c (statements, the entry point, and the parser's error,
 * node and array helpers) and jinja_parse_expr.c (expressions). The token
 * cursor is inline here; the rest is declared once.
 */
#ifndef WISP_CHAT_JINJA_PARSE_INT_H
#define WISP_CHAT_JINJA_PARSE_INT_H

#include <stdbool.h>
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

static inline const jtok *peek(parser *p) { return &p->toks->t[p->i]; }
static inline const jtok *peek2(parser *p)
{
    return p->i + 1 < p->toks->n ? &p->toks->t[p->i + 1] : &p->toks->t[p->i];
}
static inline const jtok *next(parser *p)
{
    const jtok *t = &p->toks->t[p->i];
    if (t->type != JT_EOF)
        p->i++;
    return t;
}

static inline bool is_op(const jtok *t, const char *op)
{
    return t->type == JT_OP && strcmp(t->s, op) == 0;
}
static inline bool is_name(const jtok *t, const char *n)
{
    return t->type == JT_NAME && strcmp(t->s, n) == 0;
}

static inline bool accept_op(parser *p, const char *op)
{
    if (!is_op(peek(p), op))
        return false;
    next(p);
    return true;
}

/* A growable array of pointers in the arena. */
typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

/* jinja_parse.c. The first error is kept (with the current token's line)
 * and NULL returned, so callers return it on. */
void *jinja_parse_fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool jinja_parse_expect_op(parser *p, const char *op);
/* A token as an error message names it. */
const char *jinja_parse_tok_desc(const jtok *t);
/* A zeroed node of kind k in the arena; NULL (failed) when it is full. */
jnode *jinja_parse_node(parser *p, jnode_kind k, int line);
bool jinja_parse_vpush(parser *p, vec *a, void *x);
/* One level deeper into nested expressions or blocks; false (failed) past
 * the limit. The caller decrements p->depth on the way out. */
bool jinja_parse_enter(parser *p);

/* jinja_parse_expr.c. */
/* A whole expression: x if c else y. */
jnode *jinja_parse_expr(parser *p);
/* An expression without the conditional (where a filter's `if` follows). */
jnode *jinja_parse_or(parser *p);
/* `| name(args)` after obj. */
jnode *jinja_parse_filter(parser *p, jnode *obj);
/* A name token, or NULL with `what` as the error. */
const char *jinja_parse_name(parser *p, const char *what);

#endif
