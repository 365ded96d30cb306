/*
 * infill_buf.h - a growable byte string shared by the infill sources
 * (private: the prompt builder assembles chunk texts in it, the stop checker
 * its held and released text). Always NUL-terminated once written to.
 */
#ifndef WISP_INFILL_BUF_H
#define WISP_INFILL_BUF_H

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

typedef struct wisp_ibuf {
    char *p;
    size_t n, cap;
} wisp_ibuf;

/* Appends s[0..n); returns 0 or WISP_E_NOMEM (b unchanged). */
static inline int wisp_ibuf_put(wisp_ibuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return WISP_E_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static inline int wisp_ibuf_str(wisp_ibuf *b, const char *s) { return wisp_ibuf_put(b, s, strlen(s)); }

static inline void wisp_ibuf_free(wisp_ibuf *b)
{
    free(b->p);
    *b = (wisp_ibuf){0};
}

#endif
