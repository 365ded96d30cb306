/*
 * jinja_lex.c - template text to tokens, with jinja2's whitespace rules as
 * transformers configures them: trim_blocks (a block or comment tag eats
 * the newline after it), lstrip_blocks (blanks before a block or comment
 * tag at the start of a line go), '-' strips all whitespace on that side,
 * '+' turns the two options off for that tag; newlines are normalised to
 * "\n" and one trailing newline is dropped (keep_trailing_newline off).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

typedef struct lexer {
    wisp_jinja_env *env;
    const char *s;
    size_t n, pos;
    int line;
    jtoks *out;
    wisp_err *err;
} lexer;

static int lex_fail(lexer *lx, const char *what)
{
    if (lx->env->oom)
        return wisp_err_set(lx->err, WISP_E_TOO_LARGE, "chat template: memory limit reached");
    return wisp_err_set(lx->err, WISP_E_INVALID, "chat template line %d: %s", lx->line, what);
}

static jtok *push(lexer *lx, jtok_type type, const char *s, size_t n)
{
    jtoks *o = lx->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        jtok *nt = jinja_alloc(lx->env, cap * sizeof *nt);
        if (!nt)
            return NULL;
        if (o->n)
            memcpy(nt, o->t, o->n * sizeof *nt);
        o->t = nt;
        o->cap = cap;
    }
    char *copy = jinja_strdup(lx->env, s ? s : "", s ? n : 0);
    if (!copy)
        return NULL;
    jtok *t = &o->t[o->n++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->line = lx->line;
    t->s = copy;
    t->n = s ? n : 0;
    return t;
}

static bool ws_at(const char *s, size_t n, size_t i, size_t *next)
{
    size_t j = i;
    int32_t c = pystr_next(s, n, &j);
    if (!pystr_isspace(c))
        return false;
    *next = j;
    return true;
}

static void count_lines(lexer *lx, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (lx->s[i] == '\n')
            lx->line++;
}

/* Whitespace-only text from a to b (no newline in it)? */
static bool blank(const char *s, size_t a, size_t b)
{
    size_t i = a;
    while (i < b) {
        size_t j;
        if (s[i] == '\n' || !ws_at(s, b, i, &j))
            return false;
        i = j;
    }
    return true;
}

static int lex_string(lexer *lx)
{
    const char *s = lx->s;
    char q = s[lx->pos];
    size_t i = lx->pos + 1;
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    for (;;) {
        if (i >= lx->n) {
            wisp_buf_free(&b);
            return lex_fail(lx, "unterminated string");
        }
        char c = s[i];
        if (c == q) {
            i++;
            break;
        }
        if (c == '\n')
            lx->line++;
        if (c != '\\' || i + 1 >= lx->n) {
            rc |= wisp_buf_append(&b, &c, 1);
            i++;
            continue;
        }
        char e = s[i + 1];
        static const char esc_from[] = "nt\\r'\"abfv";
        static const char esc_to[] = "\n\t\\\r'\"\a\b\f\v";
        const char *hit = e ? strchr(esc_from, e) : NULL;
        const char *m = hit ? esc_to + (hit - esc_from) : NULL;
        if (m) {
            rc |= wisp_buf_append(&b, m, 1);
            i += 2;
        } else if (e == 'x' || e == 'u' || e == 'U' || (e >= '0' && e <= '7')) {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 3;
            int base = (e >= '0' && e <= '7') ? 8 : 16;
            size_t start = base == 8 ? i + 1 : i + 2;
            int32_t cp = 0;
            int k = 0;
            for (; k < digits && start + (size_t)k < lx->n; k++) {
                char d = s[start + (size_t)k];
                int dv = d >= '0' && d <= '9'   ? d - '0'
                         : d >= 'a' && d <= 'f' ? d - 'a' + 10
                         : d >= 'A' && d <= 'F' ? d - 'A' + 10
                                                : 99;
                if (dv >= base)
                    break;
                cp = cp * base + dv;
            }
            if (base == 16 && k < digits) {
                wisp_buf_free(&b);
                return lex_fail(lx, "malformed \\x, \\u or \\U escape in a string");
            }
            char enc[4];
            int en = pystr_encode(cp, enc);
            rc |= wisp_buf_append(&b, enc, (size_t)en);
            i = start + (size_t)k;
        } else if (e == '\n') {
            lx->line++;
            i += 2; /* a backslash-newline continues the line */
        } else {
            rc |= wisp_buf_append(&b, s + i, 2);
            i += 2;
        }
    }
    jtok *t = rc ? NULL : push(lx, JT_STRING, b.data, b.len);
    wisp_buf_free(&b);
    if (!t)
        return wisp_err_set(lx->err, WISP_E_TOO_LARGE, "chat template: memory limit reached");
    lx->pos = i;
    return 0;
}

static const char *const ops[] = {
    "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",  ">",
    "=",  "(",  ")",  "[",  "]",  "{",  "}", ",", ".", ":", "|", ";", NULL,
};

/* Tokens inside a tag until its end; *strip_after: '-', '+' or 0. */
static int lex_tag(lexer *lx, bool var, char *strip_after)
{
    const char *s = lx->s;
    int depth = 0;
    const char *end = var ? "}}" : "%}";
    for (;;) {
        size_t j;
        while (lx->pos < lx->n && ws_at(s, lx->n, lx->pos, &j)) {
            count_lines(lx, lx->pos, j);
            lx->pos = j;
        }
        if (lx->pos >= lx->n)
            return lex_fail(lx, var ? "missing '}}'" : "missing '%}'");
        size_t p = lx->pos, left = lx->n - p;
        if (depth == 0) {
            if (left >= 3 && (s[p] == '-' || s[p] == '+') && memcmp(s + p + 1, end, 2) == 0) {
                *strip_after = s[p];
                lx->pos = p + 3;
                return push(lx, var ? JT_VAR_END : JT_BLOCK_END, NULL, 0) ? 0 : lex_fail(lx, "");
            }
            if (left >= 2 && memcmp(s + p, end, 2) == 0) {
                *strip_after = 0;
                lx->pos = p + 2;
                return push(lx, var ? JT_VAR_END : JT_BLOCK_END, NULL, 0) ? 0 : lex_fail(lx, "");
            }
        }
        char c = s[p];
        if (c == '\'' || c == '"') {
            int rc = lex_string(lx);
            if (rc)
                return rc;
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t e = p;
            while (e < lx->n && ((s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z') ||
                                 (s[e] >= '0' && s[e] <= '9') || s[e] == '_'))
                e++;
            if (!push(lx, JT_NAME, s + p, e - p))
                return lex_fail(lx, "");
            lx->pos = e;
            continue;
        }
        if (c >= '0' && c <= '9') {
            size_t e = p;
            bool is_float = false;
            char num[64];
            size_t k = 0;
            bool too_long = false;
            /* Every digit is scanned whatever the length, so the token ends
             * where the literal does; one too long for num is refused. */
#define NUM_PUT(ch)             \
    do {                        \
        if (k < sizeof num - 1) \
            num[k++] = (ch);    \
        else                    \
            too_long = true;    \
    } while (0)
            while (e < lx->n && ((s[e] >= '0' && s[e] <= '9') || s[e] == '_')) {
                if (s[e] != '_')
                    NUM_PUT(s[e]);
                e++;
            }
            if (e + 1 < lx->n && s[e] == '.' && s[e + 1] >= '0' && s[e + 1] <= '9') {
                is_float = true;
                NUM_PUT(s[e]);
                e++;
                while (e < lx->n && s[e] >= '0' && s[e] <= '9') {
                    NUM_PUT(s[e]);
                    e++;
                }
            }
            if (e < lx->n && (s[e] == 'e' || s[e] == 'E')) {
                size_t f = e + 1;
                if (f < lx->n && (s[f] == '+' || s[f] == '-'))
                    f++;
                if (f < lx->n && s[f] >= '0' && s[f] <= '9') {
                    is_float = true;
                    while (e < f) {
                        NUM_PUT(s[e]);
                        e++;
                    }
                    while (e < lx->n && s[e] >= '0' && s[e] <= '9') {
                        NUM_PUT(s[e]);
                        e++;
                    }
                }
            }
#undef NUM_PUT
            if (too_long)
                return lex_fail(lx, "number literal too long");
            num[k] = 0;
            jtok *t = push(lx, is_float ? JT_FLOAT : JT_INT, s + p, e - p);
            if (!t)
                return lex_fail(lx, "");
            if (is_float) {
                t->f = strtod(num, NULL);
            } else {
                unsigned long long u = strtoull(num, NULL, 10);
                if (k > 18 && (u > (unsigned long long)INT64_MAX || k > 19))
                    return lex_fail(lx, "integer literal too large");
                t->i = (int64_t)u;
            }
            lx->pos = e;
            continue;
        }
        const char *op = NULL;
        for (size_t i = 0; ops[i]; i++) {
            size_t ol = strlen(ops[i]);
            if (left >= ol && memcmp(s + p, ops[i], ol) == 0) {
                op = ops[i];
                break;
            }
        }
        if (!op) {
            char msg[64];
            snprintf(msg, sizeof msg, "unexpected character '%c'", c);
            return lex_fail(lx, msg);
        }
        if (op[0] == '(' || op[0] == '[' || op[0] == '{')
            depth++;
        else if ((op[0] == ')' || op[0] == ']' || op[0] == '}') && depth > 0)
            depth--;
        if (!push(lx, JT_OP, op, strlen(op)))
            return lex_fail(lx, "");
        lx->pos = p + strlen(op);
    }
}

/* Normalises newlines and drops one trailing newline, into the arena. */
static char *normalise(wisp_jinja_env *env, const char *src, size_t n, size_t *out_n)
{
    char *d = jinja_alloc(env, n + 1);
    if (!d)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            d[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n')
                i++;
        } else {
            d[k++] = src[i];
        }
    }
    if (k && d[k - 1] == '\n')
        k--;
    d[k] = 0;
    *out_n = k;
    return d;
}

int jinja_lex(wisp_jinja_env *env, const char *src, size_t n, jtoks *out, wisp_err *err)
{
    lexer lx = {.env = env, .line = 1, .out = out, .err = err};
    lx.s = normalise(env, src, n, &lx.n);
    if (!lx.s)
        return lex_fail(&lx, "");
    const char *s = lx.s;
    bool strip_next = false; /* a '-' closed the previous tag */
    while (lx.pos < lx.n) {
        size_t text_start = lx.pos;
        if (strip_next) {
            size_t j;
            while (text_start < lx.n && ws_at(s, lx.n, text_start, &j)) {
                count_lines(&lx, text_start, j);
                text_start = j;
            }
            strip_next = false;
        }
        /* the next tag opener */
        size_t t = text_start;
        while (t + 1 < lx.n &&
               !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
            t++;
        if (t + 1 >= lx.n)
            t = lx.n;
        size_t text_end = t;
        char kind = t < lx.n ? s[t + 1] : 0;
        char mod = t + 2 < lx.n ? s[t + 2] : 0;
        if (kind) {
            if (mod == '-') {
                size_t e = text_end;
                while (e > text_start) {
                    size_t k = e - 1;
                    while (k > text_start && ((unsigned char)s[k] & 0xc0) == 0x80)
                        k--;
                    size_t j;
                    if (!ws_at(s, e, k, &j) || j != e)
                        break;
                    e = k;
                }
                text_end = e;
            } else if (mod != '+' && kind != '{') {
                size_t nl = text_end;
                while (nl > text_start && s[nl - 1] != '\n')
                    nl--;
                bool line_start = nl > text_start || text_start == 0 || s[text_start - 1] == '\n';
                if (line_start && blank(s, nl, text_end))
                    text_end = nl;
            }
        }
        if (text_end > text_start && !push(&lx, JT_TEXT, s + text_start, text_end - text_start))
            return lex_fail(&lx, "");
        count_lines(&lx, text_start, t);
        if (!kind)
            break;
        lx.pos = t + 2 + (mod == '-' || mod == '+');
        char after = 0;
        if (kind == '#') {
            size_t e = lx.pos;
            while (e + 1 < lx.n && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= lx.n)
                return lex_fail(&lx, "missing '#}'");
            if (e > lx.pos && (s[e - 1] == '-' || s[e - 1] == '+'))
                after = s[e - 1];
            count_lines(&lx, lx.pos, e);
            lx.pos = e + 2;
        } else {
            if (!push(&lx, kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, NULL, 0))
                return lex_fail(&lx, "");
            int rc = lex_tag(&lx, kind == '{', &after);
            if (rc)
                return rc;
        }
        if (after == '-')
            strip_next = true;
        else if (after != '+' && kind != '{' && lx.pos < lx.n && s[lx.pos] == '\n') {
            lx.pos++; /* trim_blocks */
            lx.line++;
        }
    }
    return push(&lx, JT_EOF, NULL, 0) ? 0 : lex_fail(&lx, "");
}
