/*
 * stop.c - the incremental stop-string matcher (see stop.h).
 *
 * Invariant: every occurrence of a stop string lies wholly inside the held
 * bytes. It holds because before each release the matcher keeps the
 * longest suffix that is a prefix of some stop string, so a stop that
 * started in released text would have been held instead. Held text stays
 * short (under the longest stop plus one partial character), so the
 * quadratic-looking scans are over a few dozen bytes. Decoding uses
 * utf8proc; only the "could this tail still complete?" test is local,
 * because utf8proc treats a truncated character as invalid.
 */
#include "gen/stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/buf.h"

struct wisp_stop {
    char **stops;
    size_t *lens;
    int n;
    size_t max_len;
    wisp_buf held; /* bytes not yet released */
    wisp_buf out;  /* the last release */
    bool matched;
};

int wisp_stop_create(const char *const *stops, int n, wisp_stop **out, wisp_err *err)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !stops))
        return wisp_err_set(err, WISP_E_INTERNAL, "stop: %d stop strings", n);
    for (int i = 0; i < n; i++)
        if (!stops[i] || !stops[i][0])
            return wisp_err_set(err, WISP_E_INVALID, "stop: stop string %d is empty", i);
    wisp_stop *m = calloc(1, sizeof(*m));
    if (!m)
        return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
    m->stops = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    m->lens = calloc((size_t)(n > 0 ? n : 1), sizeof(size_t));
    if (!m->stops || !m->lens)
        goto nomem;
    m->n = n;
    for (int i = 0; i < n; i++) {
        m->lens[i] = strlen(stops[i]);
        if (!(m->stops[i] = strdup(stops[i])))
            goto nomem;
        if (m->lens[i] > m->max_len)
            m->max_len = m->lens[i];
    }
    if (wisp_buf_reserve(&m->held, 2 * m->max_len + 64) ||
        wisp_buf_reserve(&m->out, 3 * (2 * m->max_len + 64)))
        goto nomem;
    *out = m;
    return 0;
nomem:
    wisp_stop_free(m);
    return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
}

void wisp_stop_free(wisp_stop *m)
{
    if (!m)
        return;
    for (int i = 0; m->stops && i < m->n; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    wisp_buf_free(&m->held);
    wisp_buf_free(&m->out);
    free(m);
}

bool wisp_stop_matched(const wisp_stop *m) { return m->matched; }

/* Length of the sequence a lead byte announces (1 for anything else). */
static size_t utf8_len(uint8_t b)
{
    return (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
}

/* Bytes at the end of s that begin a UTF-8 character not yet complete. */
static size_t incomplete_tail(const char *s, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        uint8_t b = (uint8_t)s[len - back];
        if ((b & 0xC0) == 0x80)
            continue; /* a continuation byte: the lead is further back */
        return utf8_len(b) > back ? back : 0;
    }
    return 0;
}

/* Copies s[0..len) to the out buffer, invalid sequences as U+FFFD. */
static int release(wisp_stop *m, const char *s, size_t len, wisp_stop_out *out)
{
    wisp_buf_clear(&m->out);
    if (wisp_buf_reserve(&m->out, 3 * len))
        return -1;
    char *dst = m->out.data;
    size_t o = 0, i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n > 0) {
            memcpy(dst + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else {
            /* One U+FFFD for a lead byte and the continuation bytes it
             * gathered before the sequence broke off. */
            memcpy(dst + o, "\xEF\xBF\xBD", 3);
            o += 3;
            size_t need = utf8_len((uint8_t)s[i]), k = 1;
            while (k < need && i + k < len && ((uint8_t)s[i + k] & 0xC0) == 0x80)
                k++;
            i += k;
        }
    }
    dst[o] = '\0';
    m->out.len = o;
    out->text = dst;
    out->len = o;
    return 0;
}

/* Drops the first n held bytes. */
static void consume(wisp_stop *m, size_t n)
{
    memmove(m->held.data, m->held.data + n, m->held.len - n);
    m->held.len -= n;
    m->held.data[m->held.len] = '\0';
}

int wisp_stop_feed(wisp_stop *m, const char *piece, size_t len, wisp_stop_out *out, wisp_err *err)
{
    out->text = "";
    out->len = 0;
    out->stop = -1;
    if (m->matched)
        return 0;
    if (wisp_buf_append(&m->held, piece, len))
        return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
    const char *held = m->held.data;
    const size_t held_len = m->held.len;

    /* The earliest complete stop string (the first listed on a tie). */
    size_t best = SIZE_MAX;
    for (int i = 0; i < m->n; i++) {
        const char *hit = memmem(held, held_len, m->stops[i], m->lens[i]);
        if (hit && (size_t)(hit - held) < best) {
            best = (size_t)(hit - held);
            out->stop = i;
        }
    }
    if (out->stop >= 0) {
        m->matched = true;
        if (release(m, held, best, out))
            return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
        wisp_buf_clear(&m->held);
        return 0;
    }

    /* Hold the longest tail that begins some stop string... */
    size_t hold = 0;
    size_t k = m->max_len - (m->max_len > 0);
    if (k > held_len)
        k = held_len;
    for (; k > 0 && hold == 0; k--) {
        const char *tail = held + held_len - k;
        for (int i = 0; i < m->n; i++)
            if (m->lens[i] > k && memcmp(m->stops[i], tail, k) == 0) {
                hold = k;
                break;
            }
    }
    /* ...and any character still being spelled out. */
    size_t utf = incomplete_tail(held, held_len);
    if (utf > hold)
        hold = utf;
    size_t n = held_len - hold;
    if (n == 0)
        return 0;
    if (release(m, held, n, out))
        return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
    consume(m, n);
    return 0;
}

int wisp_stop_flush(wisp_stop *m, wisp_stop_out *out, wisp_err *err)
{
    out->text = "";
    out->len = 0;
    out->stop = -1;
    if (m->matched || m->held.len == 0)
        return 0;
    if (release(m, m->held.data, m->held.len, out))
        return wisp_err_set(err, WISP_E_NOMEM, "stop: out of memory");
    wisp_buf_clear(&m->held);
    return 0;
}
