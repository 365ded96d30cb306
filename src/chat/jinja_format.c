/*
 * jinja_format.c - Python's printf-style string formatting, `fmt % args`:
 * %(key), the flags #0- +, width and precision (both may be *), and the
 * conversions s r a c d i u o x X e E f F g G and %%. Errors carry
 * Python's messages; like Python, a list or dict operand that no
 * conversion consumes is not an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

/* Widths and precisions above this are refused before any padding is
 * built: the output limit bounds them anyway. */
#define FMT_MAX_WIDTH 1000000

typedef struct fspec {
    bool left, zero, plus, space, alt;
    int64_t width, prec; /* prec < 0: none */
    char conv;
} fspec;

typedef struct fstate {
    jctx *c;
    int line;
    wisp_jv *args;   /* the operand */
    wisp_jv *map;    /* the operand when it may serve %(key) */
    size_t idx, n;   /* next tuple element, count */
    bool tuple, one; /* operand is a tuple / a single value */
    bool used_one;
} fstate;

static wisp_jv *next_arg(fstate *s)
{
    if (s->tuple) {
        if (s->idx < s->n)
            return s->args->list->v[s->idx++];
    } else if (!s->used_one) {
        s->used_one = true;
        return s->args;
    }
    return jinja_fail(s->c, s->line, WISP_E_INVALID, "not enough arguments for format string");
}

static int pad(wisp_buf *b, char ch, int64_t k)
{
    int rc = 0;
    for (int64_t i = 0; i < k && !rc; i++)
        rc = wisp_buf_append(b, &ch, 1);
    return rc;
}

/* body (len code points cp) placed in the field: sign/prefix of length pre
 * stays in front of zero padding. */
static int emit(wisp_buf *b, const fspec *f, const char *body, size_t n, size_t cp, size_t pre,
                bool zero_ok)
{
    int64_t fill = f->width > (int64_t)cp ? f->width - (int64_t)cp : 0;
    int rc = 0;
    if (f->left) {
        rc |= wisp_buf_append(b, body, n);
        rc |= pad(b, ' ', fill);
    } else if (f->zero && zero_ok) {
        rc |= wisp_buf_append(b, body, pre);
        rc |= pad(b, '0', fill);
        rc |= wisp_buf_append(b, body + pre, n - pre);
    } else {
        rc |= pad(b, ' ', fill);
        rc |= wisp_buf_append(b, body, n);
    }
    return rc;
}

/* ascii(): repr with every non-ASCII code point escaped. */
static int ascii_escape(wisp_buf *out, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {
        size_t at = i;
        int32_t cp = pystr_next(s, n, &i);
        if (cp < 0x80) {
            rc = wisp_buf_append(out, s + at, i - at);
            continue;
        }
        char e[16];
        int k = cp < 0x100     ? snprintf(e, sizeof e, "\\x%02x", (unsigned)cp)
                : cp < 0x10000 ? snprintf(e, sizeof e, "\\u%04x", (unsigned)cp)
                               : snprintf(e, sizeof e, "\\U%08x", (unsigned)cp);
        rc = wisp_buf_append(out, e, (size_t)k);
    }
    return rc;
}

static int fmt_text(fstate *s, wisp_buf *b, const fspec *f, wisp_jv *v)
{
    wisp_buf t = WISP_BUF_INIT;
    int rc = 0;
    if (v->type == JV_UNDEF && f->conv != 's') {
        if (f->conv != 'r' && f->conv != 'a')
            return jinja_undef_access(s->c, s->line, v), -1;
        rc = wisp_buf_append(&t, "Undefined", 9);
    } else if (v->type == JV_UNDEF) {
        rc = 0; /* str(Undefined) is empty */
    } else if (f->conv == 's') {
        rc = jv_str_append(&t, v);
    } else if (f->conv == 'r') {
        rc = jv_repr_append(&t, v);
    } else {
        wisp_buf r = WISP_BUF_INIT;
        rc = jv_repr_append(&r, v);
        if (!rc)
            rc = ascii_escape(&t, r.data ? r.data : "", r.len);
        wisp_buf_free(&r);
    }
    const char *p = t.data ? t.data : "";
    size_t n = t.len;
    if (f->prec >= 0 && (size_t)f->prec < pystr_len(p, n))
        n = pystr_offset(p, n, (size_t)f->prec);
    if (!rc)
        rc = emit(b, f, p, n, pystr_len(p, n), 0, false);
    wisp_buf_free(&t);
    return rc ? (jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1) : 0;
}

static int fmt_char(fstate *s, wisp_buf *b, const fspec *f, wisp_jv *v)
{
    char enc[4];
    const char *p = enc;
    size_t n;
    if (v->type == JV_STR && pystr_len(v->str.s, v->str.n) == 1) {
        p = v->str.s;
        n = v->str.n;
    } else if (v->type == JV_INT || v->type == JV_BOOL) {
        int64_t cp = jinja_inum(v);
        if (cp < 0 || cp > 0x10FFFF)
            return jinja_fail(s->c, s->line, WISP_E_INVALID, "%%c arg not in range(0x110000)"), -1;
        n = (size_t)pystr_encode((int32_t)cp, enc);
    } else {
        if (v->type == JV_UNDEF)
            return jinja_undef_access(s->c, s->line, v), -1;
        return jinja_fail(s->c, s->line, WISP_E_INVALID, "%%c requires int or char"), -1;
    }
    if (emit(b, f, p, n, 1, 0, false))
        return jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1;
    return 0;
}

/* Integer conversions: digits built here, since C's %#x and %#o differ
 * from Python's (0x0, 0o10) and a float argument may exceed int64. */
static int fmt_int(fstate *s, wisp_buf *b, const fspec *f, wisp_jv *v)
{
    bool decimal = f->conv == 'd' || f->conv == 'i' || f->conv == 'u';
    char digits[400];
    bool neg = false;
    if (v->type == JV_FLOAT && decimal) {
        if (isinf(v->f))
            return jinja_fail(s->c, s->line, WISP_E_INVALID,
                              "cannot convert float infinity to integer"),
                   -1;
        if (isnan(v->f))
            return jinja_fail(s->c, s->line, WISP_E_INVALID, "cannot convert float NaN to integer"),
                   -1;
        double t = trunc(v->f);
        neg = t < 0;
        /* the double's exact integer value, as Python's int() has it */
        snprintf(digits, sizeof digits, "%.0f", fabs(t));
    } else if (v->type == JV_INT || v->type == JV_BOOL) {
        int64_t x = jinja_inum(v);
        neg = x < 0;
        uint64_t u = neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        snprintf(digits, sizeof digits,
                 f->conv == 'o'   ? "%llo"
                 : f->conv == 'x' ? "%llx"
                 : f->conv == 'X' ? "%llX"
                                  : "%llu",
                 (unsigned long long)u);
    } else {
        if (v->type == JV_UNDEF)
            return jinja_undef_access(s->c, s->line, v), -1;
        if (decimal)
            return jinja_fail(s->c, s->line, WISP_E_INVALID,
                              "%%%c format: a real number is required, not %s", f->conv,
                              jv_type_name(v)),
                   -1;
        return jinja_fail(s->c, s->line, WISP_E_INVALID,
                          "%%%c format: an integer is required, not %s", f->conv, jv_type_name(v)),
               -1;
    }
    char pre[4];
    size_t np = 0;
    if (neg)
        pre[np++] = '-';
    else if (f->plus)
        pre[np++] = '+';
    else if (f->space)
        pre[np++] = ' ';
    if (f->alt && !decimal) {
        pre[np++] = '0';
        pre[np++] = f->conv == 'o' ? 'o' : f->conv;
    }
    size_t nd = strlen(digits);
    size_t zeros = f->prec > (int64_t)nd ? (size_t)f->prec - nd : 0;
    wisp_buf t = WISP_BUF_INIT;
    int rc = wisp_buf_append(&t, pre, np);
    rc |= pad(&t, '0', (int64_t)zeros);
    rc |= wisp_buf_append(&t, digits, nd);
    if (!rc)
        rc = emit(b, f, t.data, t.len, t.len, np, true);
    wisp_buf_free(&t);
    return rc ? (jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1) : 0;
}

static int float_text(char *out, size_t cap, char conv, bool alt, int prec, double d)
{
    switch (conv) {
    case 'e': return snprintf(out, cap, alt ? "%#.*e" : "%.*e", prec, d);
    case 'E': return snprintf(out, cap, alt ? "%#.*E" : "%.*E", prec, d);
    case 'f': return snprintf(out, cap, alt ? "%#.*f" : "%.*f", prec, d);
    case 'F': return snprintf(out, cap, alt ? "%#.*F" : "%.*F", prec, d);
    case 'g': return snprintf(out, cap, alt ? "%#.*g" : "%.*g", prec, d);
    default: return snprintf(out, cap, alt ? "%#.*G" : "%.*G", prec, d);
    }
}

static int fmt_float(fstate *s, wisp_buf *b, const fspec *f, wisp_jv *v)
{
    if (!jinja_numeric(v)) {
        if (v->type == JV_UNDEF)
            return jinja_undef_access(s->c, s->line, v), -1;
        return jinja_fail(s->c, s->line, WISP_E_INVALID, "must be real number, not %s",
                          jv_type_name(v)),
               -1;
    }
    double d = v->type == JV_FLOAT ? v->f : (double)jinja_inum(v);
    if (isnan(d))
        d = fabs(d); /* Python prints nan unsigned */
    int prec = f->prec < 0 ? 6 : (int)f->prec;
    /* the sign flags are applied here, so each call keeps a literal format */
    char sign = d < 0 || signbit(d) ? 0 : f->plus ? '+' : f->space ? ' ' : 0;
    int n = float_text(NULL, 0, f->conv, f->alt, prec, d);
    char *body = n >= 0 ? malloc((size_t)n + 2) : NULL;
    if (!body)
        return jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1;
    if (sign)
        body[0] = sign;
    float_text(body + (sign != 0), (size_t)n + 1, f->conv, f->alt, prec, d);
    n += sign != 0;
    size_t np = (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
    int rc = emit(b, f, body, (size_t)n, (size_t)n, np, true);
    free(body);
    return rc ? (jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1) : 0;
}

/* A width or precision: digits, or * taking an int argument. */
static int spec_number(fstate *s, const char *p, size_t n, size_t *i, int64_t *out)
{
    if (*i < n && p[*i] == '*') {
        (*i)++;
        wisp_jv *a = next_arg(s);
        if (!a)
            return -1;
        if (a->type != JV_INT && a->type != JV_BOOL)
            return jinja_fail(s->c, s->line, WISP_E_INVALID, "* wants int"), -1;
        *out = jinja_inum(a);
        return 1;
    }
    if (*i >= n || p[*i] < '0' || p[*i] > '9')
        return 0;
    int64_t v = 0;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9') {
        v = v * 10 + (p[*i] - '0');
        if (v > FMT_MAX_WIDTH)
            return jinja_fail(s->c, s->line, WISP_E_TOO_LARGE, "format width too large"), -1;
        (*i)++;
    }
    *out = v;
    return 1;
}

static bool is_map(const wisp_jv *v)
{
    return v->type == JV_DICT || (v->type == JV_LIST && !v->list->tuple) || v->type == JV_UNDEF;
}

/* The value for %(key): dict lookup with Python's KeyError. */
static wisp_jv *keyed(fstate *s, const char *k, size_t kn)
{
    if (!s->map)
        return jinja_fail(s->c, s->line, WISP_E_INVALID, "format requires a mapping");
    if (s->map->type == JV_UNDEF)
        return jinja_undef_access(s->c, s->line, s->map);
    if (s->map->type == JV_LIST)
        return jinja_fail(s->c, s->line, WISP_E_INVALID,
                          "list indices must be integers or slices, not str");
    wisp_jv *v = jv_dict_gets(s->map, k, kn);
    if (!v)
        return jinja_fail(s->c, s->line, WISP_E_INVALID, "KeyError: '%.*s'", (int)kn, k);
    return v;
}

/* One conversion after its '%' at p[*i]; appends to b. */
static int one_spec(fstate *s, wisp_buf *b, const char *p, size_t n, size_t *i)
{
    bool keyed_spec = false;
    if (*i < n && p[*i] == '(') {
        size_t k0 = ++*i;
        int depth = 1;
        while (*i < n && depth) {
            depth += p[*i] == '(' ? 1 : p[*i] == ')' ? -1 : 0;
            (*i)++;
        }
        if (depth)
            return jinja_fail(s->c, s->line, WISP_E_INVALID, "incomplete format key"), -1;
        wisp_jv *v = keyed(s, p + k0, *i - 1 - k0);
        if (!v)
            return -1;
        /* as in CPython, the value becomes the one operand the rest of this
         * spec consumes, so a later plain %s finds none left */
        s->args = v;
        s->tuple = false;
        s->used_one = false;
        keyed_spec = true;
    }
    fspec f = {.prec = -1};
    for (; *i < n; (*i)++) {
        char ch = p[*i];
        if (ch == '-')
            f.left = true;
        else if (ch == '0')
            f.zero = true;
        else if (ch == '+')
            f.plus = true;
        else if (ch == ' ')
            f.space = true;
        else if (ch == '#')
            f.alt = true;
        else
            break;
    }
    bool spec = f.left || f.zero || f.plus || f.space || f.alt;
    int r = spec_number(s, p, n, i, &f.width);
    if (r < 0)
        return -1;
    spec |= r > 0;
    if (f.width > FMT_MAX_WIDTH || f.width < -FMT_MAX_WIDTH)
        return jinja_fail(s->c, s->line, WISP_E_TOO_LARGE, "format width too large"), -1;
    if (f.width < 0) {
        f.left = true;
        f.width = -f.width;
    }
    if (*i < n && p[*i] == '.') {
        (*i)++;
        spec = true;
        f.prec = 0;
        if (spec_number(s, p, n, i, &f.prec) < 0)
            return -1;
        if (f.prec < 0)
            f.prec = 0;
    }
    if (f.width > FMT_MAX_WIDTH || f.prec > FMT_MAX_WIDTH)
        return jinja_fail(s->c, s->line, WISP_E_TOO_LARGE, "format width too large"), -1;
    if (*i < n && (p[*i] == 'h' || p[*i] == 'l' || p[*i] == 'L'))
        (*i)++; /* one length modifier: accepted and ignored, as Python does */
    if (*i >= n)
        return jinja_fail(s->c, s->line, WISP_E_INVALID, "incomplete format"), -1;
    size_t at = *i;
    f.conv = p[(*i)++];
    if (f.conv == '%' && !spec && !keyed_spec) {
        if (wisp_buf_append(b, "%", 1))
            return jinja_fail(s->c, s->line, WISP_E_NOMEM, "out of memory"), -1;
        return 0;
    }
    wisp_jv *v = next_arg(s);
    if (!v)
        return -1;
    switch (f.conv) {
    case 's':
    case 'r':
    case 'a': return fmt_text(s, b, &f, v);
    case 'c': return fmt_char(s, b, &f, v);
    case 'd':
    case 'i':
    case 'u':
    case 'o':
    case 'x':
    case 'X': return fmt_int(s, b, &f, v);
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': return fmt_float(s, b, &f, v);
    default: break;
    }
    size_t q = at;
    int32_t cp = pystr_next(p, n, &q);
    /* Python shows the character itself only in 31..126 */
    char shown = cp >= 31 && cp <= 126 ? (char)cp : '?';
    return jinja_fail(s->c, s->line, WISP_E_INVALID,
                      "unsupported format character '%c' (0x%x) at index %zu", shown, (unsigned)cp,
                      pystr_len(p, at)),
           -1;
}

wisp_jv *jinja_percent_format(jctx *c, int line, wisp_jv *fmt, wisp_jv *args)
{
    fstate s = {.c = c, .line = line, .args = args};
    s.tuple = args->type == JV_LIST && args->list->tuple;
    s.n = s.tuple ? args->list->n : 1;
    s.map = is_map(args) ? args : NULL;
    const char *p = fmt->str.s;
    size_t n = fmt->str.n, i = 0;
    wisp_buf b = WISP_BUF_INIT;
    while (i < n) {
        const char *pc = memchr(p + i, '%', n - i);
        size_t lit = pc ? (size_t)(pc - (p + i)) : n - i;
        if (wisp_buf_append(&b, p + i, lit)) {
            wisp_buf_free(&b);
            return jinja_fail(c, line, WISP_E_NOMEM, "out of memory");
        }
        i += lit;
        if (i >= n)
            break;
        i++;
        if (one_spec(&s, &b, p, n, &i) < 0 || b.len > c->env->lim.max_output) {
            wisp_buf_free(&b);
            if (!c->failed)
                return jinja_fail(c, line, WISP_E_TOO_LARGE, "formatted string too large");
            return NULL;
        }
    }
    bool leftover = s.tuple ? s.idx < s.n : !s.used_one;
    if (leftover && !s.map) {
        wisp_buf_free(&b);
        return jinja_fail(c, line, WISP_E_INVALID,
                          "not all arguments converted during string formatting");
    }
    wisp_jv *r = wisp_jv_str(c->env, b.data ? b.data : "", b.len);
    wisp_buf_free(&b);
    return r;
}
