/*
 * log.h - leveled logging to stderr.
 *
 * stdout carries only the protocol, so every diagnostic goes through here.
 * Thread-safe: each line is formatted into one buffer and written with a
 * single write(2), so lines from the loop and the engine never interleave.
 */
#ifndef WISP_LOG_H
#define WISP_LOG_H

typedef enum wisp_log_level {
    WISP_LOG_ERROR = 0,
    WISP_LOG_WARN = 1,
    WISP_LOG_INFO = 2,
    WISP_LOG_DEBUG = 3,
} wisp_log_level;

void wisp_log_set_level(wisp_log_level level);
wisp_log_level wisp_log_get_level(void);
/* Parses "error", "warn", "info", "debug" (or "quiet" = error). Returns 0 or -1. */
int wisp_log_parse_level(const char *s, wisp_log_level *out);

void wisp_log(wisp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define WISP_LOGE(...) wisp_log(WISP_LOG_ERROR, __VA_ARGS__)
#define WISP_LOGW(...) wisp_log(WISP_LOG_WARN, __VA_ARGS__)
#define WISP_LOGI(...) wisp_log(WISP_LOG_INFO, __VA_ARGS__)
#define WISP_LOGD(...) wisp_log(WISP_LOG_DEBUG, __VA_ARGS__)

#endif
