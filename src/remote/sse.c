/*
 * sse.c - server-sent events: see sse.h. The field rules follow the
 * WHATWG HTML standard's "interpreting an event stream".
 */
#include "remote/sse.h"

#include <string.h>

void wisp_sse_init(wisp_sse *p, size_t max_bytes, wisp_sse_event_fn on_event, void *ud)
{
    memset(p, 0, sizeof *p);
    p->max_bytes = max_bytes;
    p->on_event = on_event;
    p->ud = ud;
}

void wisp_sse_free(wisp_sse *p)
{
    wisp_buf_free(&p->line);
    wisp_buf_free(&p->data);
    wisp_buf_free(&p->event);
}

static int dispatch(wisp_sse *p)
{
    int rc = 0;
    if (p->has_data) {
        const char *name = p->event.len ? p->event.data : "message";
        rc = p->on_event(p->ud, name, p->data.data ? p->data.data : "", p->data.len);
    }
    wisp_buf_clear(&p->data);
    wisp_buf_clear(&p->event);
    p->has_data = false;
    return rc;
}

/* One complete line (without its end). */
static int take_line(wisp_sse *p, wisp_err *err)
{
    const char *s = p->line.data ? p->line.data : "";
    size_t n = p->line.len;
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *value = colon ? colon + 1 : s + n;
    size_t value_len = colon ? n - name_len - 1 : 0;
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(s, "data", 4) == 0) {
        if (p->data.len + value_len + 1 > p->max_bytes)
            return wisp_err_set(err, WISP_E_TOO_LARGE, "server-sent event larger than %zu bytes",
                                p->max_bytes);
        if ((p->has_data && wisp_buf_append(&p->data, "\n", 1)) ||
            wisp_buf_append(&p->data, value, value_len) || wisp_buf_reserve(&p->data, 0))
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        p->has_data = true;
    } else if (name_len == 5 && memcmp(s, "event", 5) == 0) {
        wisp_buf_clear(&p->event);
        if (wisp_buf_append(&p->event, value, value_len) || wisp_buf_reserve(&p->event, 0))
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    /* id, retry and unknown fields carry nothing a one-shot request uses. */
    return 0;
}

int wisp_sse_feed(wisp_sse *p, const char *bytes, size_t n, wisp_err *err)
{
    size_t i = 0;
    while (i < n) {
        char c = bytes[i];
        if (p->after_cr) {
            p->after_cr = false;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\n' || c == '\r') {
            p->after_cr = c == '\r';
            int rc = take_line(p, err);
            wisp_buf_clear(&p->line);
            if (rc)
                return rc;
            i++;
            continue;
        }
        /* The rest of the line in one append. */
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r')
            j++;
        if (p->line.len + (j - i) > p->max_bytes)
            return wisp_err_set(err, WISP_E_TOO_LARGE,
                                "server-sent event line longer than %zu bytes", p->max_bytes);
        if (wisp_buf_append(&p->line, bytes + i, j - i))
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        i = j;
    }
    return 0;
}

bool wisp_sse_finish(wisp_sse *p)
{
    bool pending = p->line.len > 0 || p->has_data;
    wisp_buf_clear(&p->line);
    wisp_buf_clear(&p->data);
    wisp_buf_clear(&p->event);
    p->has_data = false;
    return pending;
}
