/*
 * jinja_pystr.c - Python's str semantics over UTF-8 bytes: code point
 * length and offsets, the isspace() set, strip and case mapping.
 */
#include <string.h>
#include <utf8proc.h>

#include "chat/jinja_int.h"

int32_t pystr_next(const char *s, size_t n, size_t *i)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s + *i, (utf8proc_ssize_t)(n - *i), &c);
    if (k <= 0) {
        c = (unsigned char)s[*i];
        k = 1;
    }
    *i += (size_t)k;
    return c;
}

size_t pystr_len(const char *s, size_t n)
{
    size_t i = 0, cp = 0;
    while (i < n) {
        pystr_next(s, n, &i);
        cp++;
    }
    return cp;
}

size_t pystr_offset(const char *s, size_t n, size_t cp)
{
    size_t i = 0;
    while (i < n && cp > 0) {
        pystr_next(s, n, &i);
        cp--;
    }
    return i;
}

bool pystr_isspace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || (c >= 0x1c && c <= 0x1f) || c == 0x85 ||
           c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

int pystr_encode(int32_t c, char out[4])
{
    utf8proc_ssize_t k = utf8proc_encode_char(c, (utf8proc_uint8_t *)out);
    if (k <= 0) {
        out[0] = (char)c;
        return 1;
    }
    return (int)k;
}

static bool in_chars(int32_t c, const char *chars, size_t cn)
{
    if (!chars)
        return pystr_isspace(c);
    size_t i = 0;
    while (i < cn)
        if (pystr_next(chars, cn, &i) == c)
            return true;
    return false;
}

void pystr_strip(const char *s, size_t n, const char *chars, size_t cn, bool left, bool right,
                 size_t *start, size_t *len)
{
    size_t a = 0, b = n;
    if (left) {
        while (a < n) {
            size_t j = a;
            if (!in_chars(pystr_next(s, n, &j), chars, cn))
                break;
            a = j;
        }
    }
    if (right) {
        while (b > a) {
            size_t k = b - 1; /* back to the start of the last code point */
            while (k > a && ((unsigned char)s[k] & 0xc0) == 0x80)
                k--;
            size_t j = k;
            if (!in_chars(pystr_next(s, n, &j), chars, cn) || j != b)
                break;
            b = k;
        }
    }
    *start = a;
    *len = b - a;
}

static bool is_cased_letter(int32_t c)
{
    return utf8proc_toupper(c) != c || utf8proc_tolower(c) != c;
}

int pystr_case(wisp_buf *b, const char *s, size_t n, int mode)
{
    size_t i = 0;
    bool first = true, prev_cased = false;
    while (i < n) {
        int32_t c = pystr_next(s, n, &i), m;
        if (mode == PYSTR_UPPER)
            m = utf8proc_toupper(c);
        else if (mode == PYSTR_LOWER)
            m = utf8proc_tolower(c);
        else if (mode == PYSTR_CAPITALIZE)
            m = first ? utf8proc_totitle(c) : utf8proc_tolower(c);
        else
            m = prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c);
        prev_cased = is_cased_letter(c);
        first = false;
        char e[4];
        int k = pystr_encode(m, e);
        if (wisp_buf_append(b, e, (size_t)k))
            return WISP_E_NOMEM;
    }
    return 0;
}
