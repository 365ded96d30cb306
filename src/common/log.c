/* log.c - leveled logging to stderr: see log.h.
 *
 * The queue is one byte ring under a mutex. The writer thread copies a run
 * of whole lines out, writes it with the lock released, and is the only
 * party that ever blocks on stderr. stderr's file flags are left alone: its
 * open file description is often the parent's terminal, and O_NONBLOCK
 * there would change the parent's own writes.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_QUEUE_BYTES ((size_t)256 * 1024)
#define LINE_MAX_BYTES      2048

static _Atomic int log_level = WISP_LOG_INFO;
static _Atomic uint64_t log_dropped;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t more;  /* the writer waits for lines */
    pthread_cond_t empty; /* stop waits for the queue to drain */
    char *ring;
    size_t cap, head, len; /* bytes [head, head + len) mod cap are queued */
    uint64_t dropped_told; /* drops already reported on stderr */
    uint64_t gen;          /* bumped by stop: an abandoned writer quits */
    bool async, writing, quit;
    pthread_t thread;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .more = PTHREAD_COND_INITIALIZER,
       .empty = PTHREAD_COND_INITIALIZER};

void wisp_log_set_level(wisp_log_level level) { atomic_store(&log_level, (int)level); }
wisp_log_level wisp_log_get_level(void) { return (wisp_log_level)atomic_load(&log_level); }
uint64_t wisp_log_dropped(void) { return atomic_load(&log_dropped); }

int wisp_log_parse_level(const char *s, wisp_log_level *out)
{
    static const struct {
        const char *name;
        wisp_log_level level;
    } names[] = {
        {"off", WISP_LOG_OFF},     {"quiet", WISP_LOG_ERROR},  {"error", WISP_LOG_ERROR},
        {"warn", WISP_LOG_WARN},   {"warning", WISP_LOG_WARN}, {"info", WISP_LOG_INFO},
        {"debug", WISP_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* stderr closed or broken: nothing else to tell */
        p += w;
        n -= (size_t)w;
    }
}

/* Lock held. Copies n bytes in at the tail; the caller checked the room. */
static void ring_put(const char *p, size_t n)
{
    size_t tail = (q.head + q.len) % q.cap;
    size_t first = q.cap - tail < n ? q.cap - tail : n;
    memcpy(q.ring + tail, p, first);
    memcpy(q.ring, p + first, n - first);
    q.len += n;
}

/* The writer copies lines out of the ring before it writes, so the ring
 * may be freed (by stop) while it is stuck in write(2); when that write
 * returns it sees a new generation and quits. */
static void *writer_main(void *arg)
{
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    char buf[16 * 1024];
    pthread_mutex_lock(&q.lock);
    for (;;) {
        if (q.gen != gen) {
            pthread_mutex_unlock(&q.lock);
            return NULL;
        }
        while (q.len == 0 && !q.quit && q.gen == gen) {
            q.writing = false;
            pthread_cond_broadcast(&q.empty);
            pthread_cond_wait(&q.more, &q.lock);
        }
        if (q.gen != gen) {
            pthread_mutex_unlock(&q.lock);
            return NULL;
        }
        if (q.len == 0 && q.quit)
            break;
        q.writing = true;
        size_t n = q.len < sizeof buf ? q.len : sizeof buf;
        size_t first = q.cap - q.head < n ? q.cap - q.head : n;
        memcpy(buf, q.ring + q.head, first);
        memcpy(buf + first, q.ring, n - first);
        q.head = (q.head + n) % q.cap;
        q.len -= n;
        uint64_t dropped = atomic_load(&log_dropped);
        uint64_t untold = dropped - q.dropped_told;
        q.dropped_told = dropped;
        pthread_mutex_unlock(&q.lock);
        write_all(buf, n);
        if (untold) {
            char note[128];
            int k = snprintf(note, sizeof note,
                             "wisp: %llu log lines dropped: stderr was not read fast enough\n",
                             (unsigned long long)untold);
            write_all(note, (size_t)k);
        }
        pthread_mutex_lock(&q.lock);
    }
    q.writing = false;
    pthread_cond_broadcast(&q.empty);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

int wisp_log_start_async(size_t queue_bytes)
{
    pthread_mutex_lock(&q.lock);
    if (q.async) {
        pthread_mutex_unlock(&q.lock);
        return 0;
    }
    if (!q.ring) {
        q.cap = queue_bytes ? queue_bytes : DEFAULT_QUEUE_BYTES;
        q.ring = malloc(q.cap);
        if (!q.ring) {
            pthread_mutex_unlock(&q.lock);
            return -1;
        }
    }
    q.head = q.len = 0;
    q.quit = false;
    q.writing = false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&q.thread, &attr, writer_main, (void *)(uintptr_t)q.gen);
    pthread_attr_destroy(&attr);
    q.async = rc == 0;
    pthread_mutex_unlock(&q.lock);
    return rc == 0 ? 0 : -1;
}

void wisp_log_stop_async(int timeout_ms)
{
    pthread_mutex_lock(&q.lock);
    if (!q.async) {
        pthread_mutex_unlock(&q.lock);
        return;
    }
    q.quit = true;
    pthread_cond_signal(&q.more);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while ((q.len > 0 || q.writing) &&
           pthread_cond_timedwait(&q.empty, &q.lock, &until) != ETIMEDOUT) {
    }
    q.async = false;
    q.gen++;
    /* A stuck writer holds only its own copy of the lines it is writing. */
    free(q.ring);
    q.ring = NULL;
    q.cap = q.head = q.len = 0;
    pthread_cond_broadcast(&q.more);
    pthread_mutex_unlock(&q.lock);
}

void wisp_log(wisp_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    static const char *tags[] = {"error", "warn", "info", "debug"};
    char line[LINE_MAX_BYTES];
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
    pthread_mutex_lock(&q.lock);
    if (q.async) {
        if (q.cap - q.len >= (size_t)n) {
            ring_put(line, (size_t)n);
            pthread_cond_signal(&q.more);
        } else {
            atomic_fetch_add(&log_dropped, 1);
        }
        pthread_mutex_unlock(&q.lock);
        return;
    }
    pthread_mutex_unlock(&q.lock);
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
