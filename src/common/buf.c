/* buf.c - growable byte buffer: see buf.h. */
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int wisp_buf_reserve(wisp_buf *b, size_t extra)
{
    if (b->cap > b->len && extra < b->cap - b->len)
        return 0;
    if (extra >= (size_t)-1 / 2 - b->len)
        return WISP_E_NOMEM;
    size_t want = b->len + extra + 1, cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return WISP_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int wisp_buf_append(wisp_buf *b, const void *data, size_t n)
{
    int rc = wisp_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int wisp_buf_append_str(wisp_buf *b, const char *s) { return wisp_buf_append(b, s, strlen(s)); }

void wisp_buf_clear(wisp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void wisp_buf_free(wisp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
