/*
 * log.h - leveled logging to stderr.
 *
 * stdout carries only the protocol, so every diagnostic goes through here.
 * Thread-safe: each line is formatted into one buffer and written with a
 * single write(2), so lines from the loop and the engine never interleave.
 *
 * A server must never stop answering because nobody reads its stderr (a
 * parent that spawns wisp with a pipe it never drains). After
 * wisp_log_start_async() a line is only copied into a bounded queue, which
 * a writer thread of its own drains with blocking writes; when the queue is
 * full the line is dropped and counted (wisp_log_dropped(), reported by
 * `status`). Before that (tools, tests, early startup) lines are written
 * directly.
 */
#ifndef WISP_LOG_H
#define WISP_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum wisp_log_level {
    WISP_LOG_OFF = -1,
    WISP_LOG_ERROR = 0,
    WISP_LOG_WARN = 1,
    WISP_LOG_INFO = 2,
    WISP_LOG_DEBUG = 3,
} wisp_log_level;

void wisp_log_set_level(wisp_log_level level);
wisp_log_level wisp_log_get_level(void);
/* Parses "off", "error", "warn", "info", "debug" (or "quiet" = error).
 * Returns 0 or -1. */
int wisp_log_parse_level(const char *s, wisp_log_level *out);

void wisp_log(wisp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Switches to queued writing with a queue of queue_bytes (0: the default,
 * 256 KiB). Returns 0, or -1 when the writer thread cannot start (lines are
 * then still written directly). */
int wisp_log_start_async(size_t queue_bytes);
/* Waits up to timeout_ms for the queue to be written out, then returns to
 * direct writing; a writer stuck on a stderr nobody reads is abandoned (the
 * process is about to exit). */
void wisp_log_stop_async(int timeout_ms);
/* Lines dropped because the queue was full. */
uint64_t wisp_log_dropped(void);

#define WISP_LOGE(...) wisp_log(WISP_LOG_ERROR, __VA_ARGS__)
#define WISP_LOGW(...) wisp_log(WISP_LOG_WARN, __VA_ARGS__)
#define WISP_LOGI(...) wisp_log(WISP_LOG_INFO, __VA_ARGS__)
#define WISP_LOGD(...) wisp_log(WISP_LOG_DEBUG, __VA_ARGS__)

#endif
