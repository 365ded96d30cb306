/* err.c - error values: see err.h. */
#include "err.h"

#include <stdio.h>
#include <string.h>

int wisp_err_setv(wisp_err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int wisp_err_set(wisp_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wisp_err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int wisp_err_prefix(wisp_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char head[WISP_ERR_MSG_MAX], old[WISP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* head + ": " + old, cut to the buffer (truncation is fine for a message). */
    size_t n = strlen(head), cap = sizeof err->msg - 1;
    if (n > cap)
        n = cap;
    memcpy(err->msg, head, n);
    for (const char *p = ": "; *p && n < cap; p++)
        err->msg[n++] = *p;
    size_t m = strnlen(old, sizeof old);
    if (m > cap - n)
        m = cap - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    return err->code;
}

void wisp_err_clear(wisp_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *wisp_code_name(int code)
{
    switch (code) {
#define WISP_ERR_NAME(name, value, msg) \
    case value: return #name;
        WISP_ERR_MAP(WISP_ERR_NAME)
#undef WISP_ERR_NAME
    }
    return "UNKNOWN";
}

const char *wisp_code_message(int code)
{
    switch (code) {
#define WISP_ERR_TEXT(name, value, msg) \
    case value: return msg;
        WISP_ERR_MAP(WISP_ERR_TEXT)
#undef WISP_ERR_TEXT
    }
    return "unknown error";
}
