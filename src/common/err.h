/*
 * err.h - errors as values.
 *
 * Every fallible function in wisp returns an int (0 on success, a negative
 * wisp_code otherwise) and fills a caller-owned wisp_err with a message that
 * names the problem and where it happened. Codes are defined once, in the
 * X-macro list below, which generates the enum, the names and the default
 * messages; protocol/PROTOCOL.md lists how each maps to a JSON-RPC error.
 *
 * INVALID and INTERNAL are the two sides of "an argument is wrong": INVALID
 * is the caller's mistake (a value from the request, the command line or a
 * file the user named: answered -32602 "invalid params"), INTERNAL an
 * inconsistency between wisp's own parts (an engine handed a batch or block
 * the scheduler should never build, a callback missing: answered -32603,
 * a bug to report). A check that only wisp's own code can trip is INTERNAL.
 */
#ifndef WISP_ERR_H
#define WISP_ERR_H

#include <stdarg.h>

/* X(NAME, value, default message) */
/* clang-format off */
#define WISP_ERR_MAP(X)                                                        \
    X(OK,           0,  "success")                                             \
    X(NOMEM,       -1,  "out of memory")                                       \
    X(IO,          -2,  "input/output error")                                  \
    X(FORMAT,      -3,  "malformed file")                                      \
    X(UNSUPPORTED, -4,  "unsupported feature")                                 \
    X(INVALID,     -5,  "invalid argument")     /* the caller's */             \
    X(NO_MODEL,    -6,  "no model loaded")                                     \
    X(CANCELLED,   -7,  "request cancelled")                                   \
    X(TOO_LARGE,   -8,  "request can never fit")                               \
    X(OVERLOADED,  -9,  "server overloaded")                                   \
    X(SHUTDOWN,    -10, "server shutting down")                                \
    X(DEVICE,      -11, "device error")                                        \
    X(INTERNAL,    -12, "internal error")       /* wisp's own */               \
    X(NOT_FOUND,   -13, "not found")                                           \
    X(BUSY,        -14, "resource busy")                                       \
    X(MODEL_CHANGED, -15, "model file changed on disk")                       \
    X(REMOTE,      -16, "remote server error")
/* clang-format on */

typedef enum wisp_code {
#define WISP_ERR_ENUM(name, value, msg) WISP_E_##name = value,
    WISP_ERR_MAP(WISP_ERR_ENUM)
#undef WISP_ERR_ENUM
} wisp_code;

#define WISP_ERR_MSG_MAX 512

typedef struct wisp_err {
    int code;                   /* wisp_code; 0 when no error was set */
    char msg[WISP_ERR_MSG_MAX]; /* human-readable, NUL-terminated */
} wisp_err;

/* Sets err (which may be NULL) and returns code, so callers can write
 * `return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: ...", name);`. */
int wisp_err_set(wisp_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int wisp_err_setv(wisp_err *err, int code, const char *fmt, va_list ap);

/* Prefixes an existing message with context ("loading x.gguf: ..."). */
int wisp_err_prefix(wisp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void wisp_err_clear(wisp_err *err);

/* "FORMAT" for WISP_E_FORMAT; "UNKNOWN" for anything else. */
const char *wisp_code_name(int code);
/* The default message of a code. */
const char *wisp_code_message(int code);

#endif
