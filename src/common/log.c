/* log.c - leveled logging to stderr: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = WISP_LOG_INFO;

void wisp_log_set_level(wisp_log_level level) { atomic_store(&log_level, (int)level); }
wisp_log_level wisp_log_get_level(void) { return (wisp_log_level)atomic_load(&log_level); }

int wisp_log_parse_level(const char *s, wisp_log_level *out)
{
    static const struct { const char *name; wisp_log_level level; } names[] = {
        {"quiet", WISP_LOG_ERROR}, {"error", WISP_LOG_ERROR}, {"warn", WISP_LOG_WARN},
        {"warning", WISP_LOG_WARN}, {"info", WISP_LOG_INFO}, {"debug", WISP_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

void wisp_log(wisp_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    static const char *tags[] = {"error", "warn", "info", "debug"};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "wisp %02d:%02d:%02d.%03ld %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
