/*
 * jinja_int.h - internals shared by the interpreter's files: the value
 * type, the arena, tokens, the syntax tree and the evaluator's context.
 */
#ifndef WISP_CHAT_JINJA_INT_H
#define WISP_CHAT_JINJA_INT_H

#include "chat/jinja.h"

typedef enum jv_type {
    JV_UNDEF, /* jinja2's default Undefined: prints empty, falsy, iterates empty */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* lists and tuples alike */
    JV_DICT,
    JV_NS, /* namespace(): a dict whose attributes can be set */
    JV_MACRO,
    JV_FUNC, /* a builtin function or a bound method */
} jv_type;

struct jctx;
struct jnode;
struct jframe;

/* Call arguments: positional, then keyword. */
typedef struct jargs {
    wisp_jv **pos;
    size_t npos;
    const char **kwname;
    wisp_jv **kwval;
    size_t nkw;
    int line;
} jargs;

typedef wisp_jv *(*jfunc)(struct jctx *c, wisp_jv *self, const jargs *a);

typedef struct jlist {
    wisp_jv **v;
    size_t n, cap;
    bool tuple; /* prints as (a, b): tuple literals, items() pairs */
} jlist;

typedef struct jdict {
    wisp_jv **k, **v;
    size_t n, cap;
} jdict;

struct wisp_jv {
    jv_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *s;
            size_t n;
        } str;
        jlist *list;
        jdict *dict; /* JV_DICT and JV_NS */
        struct {
            const struct jnode *def;
            struct jframe *closure;
        } macro;
        struct {
            jfunc fn;
            wisp_jv *self;
            const char *name;
        } func;
        const char *undef_hint; /* JV_UNDEF: what was missing */
    };
};

/* ---------------------------------------------------------------- arena */

typedef struct jchunk {
    struct jchunk *next;
    size_t used, cap;
    max_align_t data[];
} jchunk;

struct wisp_jinja_env {
    wisp_jinja_limits lim;
    jchunk *chunks;
    size_t mem_used;
    bool oom; /* the memory limit was hit */
    time_t now;
    wisp_jv *vars; /* JV_DICT of context variables */
    wisp_jv *none, *undef, *t, *f, *empty;
};

void *jinja_alloc(wisp_jinja_env *env, size_t n); /* zeroed; NULL and env->oom on limit */
char *jinja_strdup(wisp_jinja_env *env, const char *s, size_t n);
wisp_jv *jv_new(wisp_jinja_env *env, jv_type t);
wisp_jv *jv_undef(wisp_jinja_env *env, const char *hint);
wisp_jv *jv_func(wisp_jinja_env *env, jfunc fn, wisp_jv *self, const char *name);
wisp_jv *jv_list_n(wisp_jinja_env *env, size_t cap);
wisp_jv *jv_strcat(wisp_jinja_env *env, const char *a, size_t an, const char *b, size_t bn);
void jv_dict_put(wisp_jinja_env *env, wisp_jv *d, wisp_jv *k, wisp_jv *v);
wisp_jv *jv_dict_get(const wisp_jv *d, const wisp_jv *k);         /* NULL when absent */
wisp_jv *jv_dict_gets(const wisp_jv *d, const char *k, size_t n); /* string key */

/* ---------------------------------------------------------------- Python semantics */

bool jv_truthy(const wisp_jv *v);
bool jv_equal(const wisp_jv *a, const wisp_jv *b);
/* Orders a and b like Python's <; returns 0 and sets *out, or -1 when the
 * types cannot be ordered. */
int jv_compare(const wisp_jv *a, const wisp_jv *b, int *out);
const char *jv_type_name(const wisp_jv *v); /* Python's type name: 'str', 'dict', ... */
/* str(v) (print form) and repr(v) appended to b. Return 0 or WISP_E_NOMEM. */
int jv_str_append(wisp_buf *b, const wisp_jv *v);
int jv_repr_append(wisp_buf *b, const wisp_jv *v);
/* json.dumps(v, ensure_ascii, indent (<0: None), separators, sort_keys).
 * Returns 0, or -1 with *bad naming an unserialisable type. */
typedef struct jjson_opts {
    bool ensure_ascii;
    int indent; /* <0: none */
    const char *item_sep, *key_sep;
    bool sort_keys;
} jjson_opts;
int jv_json_append(wisp_buf *b, const wisp_jv *v, const jjson_opts *o, int depth, const char **bad);
/* The value as a new string value (str()). */
wisp_jv *jv_to_str(wisp_jinja_env *env, const wisp_jv *v);
void jv_float_repr(char *out, size_t cap, double d);

/* ---------------------------------------------------------------- strings (jinja_pystr.c) */

/* Decodes one UTF-8 code point at s[*i] (n bytes), advancing *i; invalid
 * bytes decode as themselves so nothing is lost. */
int32_t pystr_next(const char *s, size_t n, size_t *i);
size_t pystr_len(const char *s, size_t n); /* code points */
/* Byte offset of code point index cp (clamped to n). */
size_t pystr_offset(const char *s, size_t n, size_t cp);
bool pystr_isspace(int32_t c); /* Python str.isspace() */
int pystr_encode(int32_t c, char out[4]);
/* Strips characters (chars == NULL: whitespace) from the left and/or right. */
void pystr_strip(const char *s, size_t n, const char *chars, size_t cn, bool left, bool right,
                 size_t *start, size_t *len);
/* Python str.upper()/lower()/capitalize()/title() into b. */
int pystr_case(wisp_buf *b, const char *s, size_t n, int mode);
enum {
    PYSTR_UPPER,
    PYSTR_LOWER,
    PYSTR_CAPITALIZE,
    PYSTR_TITLE
};

/* ---------------------------------------------------------------- tokens */

typedef enum jtok_type {
    JT_EOF,
    JT_TEXT,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
} jtok_type;

typedef struct jtok {
    jtok_type type;
    int line;
    const char *s; /* text, name, op or decoded string; NUL-terminated in the arena */
    size_t n;
    int64_t i;
    double f;
} jtok;

typedef struct jtoks {
    jtok *t;
    size_t n, cap;
} jtoks;

int jinja_lex(wisp_jinja_env *env, const char *src, size_t n, jtoks *out, wisp_err *err);

/* ---------------------------------------------------------------- syntax tree */

typedef enum jnode_kind {
    /* statements */
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SET_ATTR,
    N_SET_BLOCK,
    N_MACRO,
    N_CALL_BLOCK,
    N_BREAK,
    N_CONTINUE,
    N_FILTER_BLOCK,
    /* expressions */
    E_LIT,
    E_NAME,
    E_LIST,
    E_DICT,
    E_UNARY,
    E_BIN,
    E_AND,
    E_OR,
    E_NOT,
    E_COND,
    E_CMP,
    E_ATTR,
    E_ITEM,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_CONCAT,
} jnode_kind;

typedef struct jnode {
    jnode_kind kind;
    int line;
    const char *op;          /* operator, for E_UNARY/E_BIN; E_CMP uses ops[] */
    const char *name;        /* E_NAME/E_ATTR/E_FILTER/E_TEST, set/macro name */
    struct jnode *a, *b, *c; /* operands; N_IF/N_FOR: condition / iterable */
    struct jnode **kids;     /* body, items, positional args, E_CMP operands */
    size_t nkids;
    struct jnode **kids2; /* else body, dict values, keyword values */
    size_t nkids2;
    const char **names; /* keyword names, loop targets, macro params, E_CMP ops */
    size_t nnames;
    struct jnode **defaults; /* macro parameter defaults (NULL entries: none) */
    wisp_jv *val;            /* E_LIT */
    bool neg;                /* E_TEST: is not */
} jnode;

int jinja_parse(wisp_jinja_env *env, const jtoks *toks, jnode **root, wisp_err *err);

/* ---------------------------------------------------------------- evaluation */

typedef struct jframe {
    struct jframe *parent;
    wisp_jv *vars; /* JV_DICT */
} jframe;

typedef struct jctx {
    wisp_jinja_env *env;
    wisp_buf *out;    /* where text goes (a macro call captures into its own) */
    size_t out_total; /* bytes written to every buffer */
    uint64_t steps;
    int depth;
    jframe *globals;
    wisp_err *err;
    bool failed;
} jctx;

/* jinja_eval.c. Records the first error ("chat template line N: ...") and
 * returns NULL. */
wisp_jv *jinja_fail(jctx *c, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
wisp_jv *jinja_call(jctx *c, wisp_jv *fn, const jargs *a);
/* The elements a for loop walks (a new list for dicts and strings). */
wisp_jv *jinja_iterable(jctx *c, int line, wisp_jv *v);

/* jinja_ops.c: values under Python's operators. */
/* Numbers as Python counts them (bool is an int). */
static inline bool jinja_numeric(const wisp_jv *v)
{
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}
static inline int64_t jinja_inum(const wisp_jv *v) { return v->type == JV_INT ? v->i : v->b; }
/* The error of using an undefined value (its hint says which). */
wisp_jv *jinja_undef_access(jctx *c, int line, const wisp_jv *u);
/* a op b for + - * / // % ** (Python's rules, string and list repeat and
 * concatenation); NULL on error. */
wisp_jv *jinja_arith(jctx *c, int line, const char *op, wisp_jv *a, wisp_jv *b);
/* fmt % args: Python's printf-style formatting (jinja_format.c); NULL on
 * error. */
wisp_jv *jinja_percent_format(jctx *c, int line, wisp_jv *fmt, wisp_jv *args);
/* a op b for == != < <= > >=: 1, 0, or -1 on error. */
int jinja_compare(jctx *c, int line, const char *op, wisp_jv *a, wisp_jv *b);
/* obj[start:stop:step] of a string or list; parts may be NULL. */
wisp_jv *jinja_slice(jctx *c, int line, wisp_jv *obj, wisp_jv *const parts[3]);
/* obj[key] and obj.name as jinja2 resolves them (item first / attribute
 * first); Undefined for what is missing, NULL on error. */
wisp_jv *jinja_getitem(jctx *c, int line, wisp_jv *obj, wisp_jv *key);
wisp_jv *jinja_getattr(jctx *c, int line, wisp_jv *obj, const char *name);
/* `item in seq`: 1, 0, or -1 on error. */
int jinja_contains(jctx *c, int line, wisp_jv *item, wisp_jv *seq);

/* jinja_filters.c, jinja_tests.c, jinja_methods.c and jinja_globals.c:
 * lookups by name; NULL when unknown. */
typedef wisp_jv *(*jfilter)(jctx *c, wisp_jv *v, const jargs *a);
typedef int (*jtest)(jctx *c, wisp_jv *v, const jargs *a); /* 1, 0, or -1 on error */
jfilter jinja_filter_find(const char *name);
/* The test called name and how many arguments it takes after the value,
 * or NULL; jinja_test_args_ok fails the render (returning 0) when a call
 * passes more, or any keyword. */
jtest jinja_test_find(const char *name, int *nargs);
int jinja_test_args_ok(jctx *c, const char *name, int nargs, const jargs *a);
/* The attribute `name` of v as Python's getattr sees it (a bound method);
 * NULL when v has no such method. */
wisp_jv *jinja_method(jctx *c, wisp_jv *v, const char *name);
wisp_jv *jinja_global(jctx *c, const char *name);
/* jinja_eval.c: argument i (positional) or keyword `name`, NULL when not
 * given. */
wisp_jv *jinja_arg(const jargs *a, size_t i, const char *name);

#endif
