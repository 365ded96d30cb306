/*
 * framer.c - stream to messages, ndjson or lsp: see framer.h.
 *
 * A small state machine fed chunk by chunk. Complete lines inside one chunk
 * are handed out without copying; only a message that straddles chunks is
 * collected into the buffer, which never grows past max_message.
 */
#include "rpc/framer.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

enum {
    ST_DETECT = 0,  /* deciding the framing */
    ST_LINE,        /* ndjson: collecting a line */
    ST_LINE_SKIP,   /* ndjson: skipping an oversized line to its '\n' */
    ST_HEADER,      /* lsp: collecting a header line */
    ST_HEADER_SKIP, /* lsp: skipping an oversized header block to its blank line */
    ST_BODY,        /* lsp: collecting body_left more bytes */
    ST_BODY_SKIP,   /* lsp: skipping body_left bytes of an oversized body */
};

/* A header block (all its lines) larger than this is not a real client. */
#define HEADER_MAX 8192

static const char lsp_prefix[] = "content-";

void wisp_framer_init(wisp_framer *f, size_t max_message, const wisp_framer_cb *cb, void *ud)
{
    memset(f, 0, sizeof *f);
    f->cb = *cb;
    f->ud = ud;
    f->max_message = max_message;
    f->state = ST_DETECT;
    f->content_length = -1;
}

void wisp_framer_free(wisp_framer *f) { wisp_buf_free(&f->buf); }

wisp_framing wisp_framer_framing(const wisp_framer *f) { return f->framing; }

const char *wisp_framing_name(wisp_framing framing)
{
    return framing == WISP_FRAMING_LSP ? "lsp" : "ndjson";
}

size_t wisp_framing_header(wisp_framing framing, size_t body_len, char *out)
{
    if (framing != WISP_FRAMING_LSP)
        return 0;
    int n = snprintf(out, 64, "Content-Length: %zu\r\n\r\n", body_len);
    return n > 0 ? (size_t)n : 0;
}

const char *wisp_framing_trailer(wisp_framing framing)
{
    return framing == WISP_FRAMING_LSP ? "" : "\n";
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static bool all_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_blank(p[i]))
            return false;
    return true;
}

/* After a large message, give its memory back rather than keep the peak. */
static void release_big(wisp_framer *f)
{
    if (f->buf.cap > ((size_t)1 << 20))
        wisp_buf_free(&f->buf);
    else
        wisp_buf_clear(&f->buf);
}

static void deliver_line(wisp_framer *f, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (all_blank(p, n))
        return;
    f->cb.message(f->ud, p, n);
}

/* ------------------------------------------------------------ detection */

/* Looks at the buffered first bytes. Returns true when the framing is known. */
static bool detect(wisp_framer *f)
{
    size_t i = 0;
    while (i < f->buf.len && is_blank(f->buf.data[i]))
        i++;
    size_t n = f->buf.len - i;
    if (n == 0)
        return false;
    const char *p = f->buf.data + i;
    size_t cmp = n < sizeof lsp_prefix - 1 ? n : sizeof lsp_prefix - 1;
    bool prefix_ok = strncasecmp(p, lsp_prefix, cmp) == 0;
    if (prefix_ok && cmp < sizeof lsp_prefix - 1)
        return false; /* "Cont" so far: wait for more */
    f->framing = prefix_ok ? WISP_FRAMING_LSP : WISP_FRAMING_NDJSON;
    f->state = prefix_ok ? ST_HEADER : ST_LINE;
    WISP_LOGD("framing: %s", wisp_framing_name(f->framing));
    return true;
}

/* ------------------------------------------------------------ ndjson */

static size_t feed_line(wisp_framer *f, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    size_t used = nl ? take + 1 : n;
    if (f->state == ST_LINE_SKIP) {
        if (nl)
            f->state = ST_LINE;
        return used;
    }
    /* The limit counts the line without its '\n' (and without a final '\r',
     * which may not have arrived yet, hence the +1 slack for it). */
    size_t total = f->buf.len + take;
    char last = take ? p[take - 1] : (f->buf.len ? f->buf.data[f->buf.len - 1] : 0);
    size_t limit = f->max_message + (nl ? last == '\r' : 1);
    if (total > limit) {
        wisp_buf_clear(&f->buf);
        f->cb.too_large(f->ud, 0);
        f->state = nl ? ST_LINE : ST_LINE_SKIP;
        return used;
    }
    if (nl && f->buf.len == 0) {
        deliver_line(f, p, take);
        return used;
    }
    if (wisp_buf_append(&f->buf, p, take) < 0) {
        wisp_buf_clear(&f->buf);
        f->cb.too_large(f->ud, 0);
        f->state = nl ? ST_LINE : ST_LINE_SKIP;
        return used;
    }
    if (nl) {
        deliver_line(f, f->buf.data, f->buf.len);
        release_big(f);
    }
    return used;
}

/* ------------------------------------------------------------ lsp */

static void header_fail(wisp_framer *f, const char *why)
{
    if (!f->header_error[0])
        snprintf(f->header_error, sizeof f->header_error, "%s", why);
}

/* Offset of "Content-Length:" (any case) in p[0..n), or n. */
static size_t find_content_length(const char *p, size_t n)
{
    static const char key[] = "content-length:";
    size_t k = sizeof key - 1;
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(p + i, key, k) == 0)
            return i;
    return n;
}

/* "Name: value" with a name of RFC 9110 token characters: a JSON body line
 * ({"jsonrpc": ...) is not one. */
static bool looks_like_header(const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        return false;
    for (const char *q = p; q < colon; q++)
        if (!(isalnum((unsigned char)*q) || strchr("!#$%&'*+-.^_`|~", *q)))
            return false;
    return true;
}

static void header_line(wisp_framer *f, const char *p, size_t n)
{
    /* Resynchronising: the bytes after a refused header are that message's
     * body (whose length is unknown), so everything up to the next
     * Content-Length header is skipped, even the middle of a line, since
     * a body need not end with a newline. Garbage in front of a header
     * outside that state is reported once and skipped the same way. */
    size_t at = find_content_length(p, n);
    if (f->resync && at == n && !looks_like_header(p, n))
        return;
    if (at > 0 && at < n && !f->header_seen) {
        if (!f->resync)
            f->cb.bad_header(f->ud, "bytes before a Content-Length header skipped");
        p += at;
        n -= at;
    }
    f->resync = false;
    f->header_seen = true;
    const char *colon = memchr(p, ':', n);
    if (!colon) {
        header_fail(f, "header line without ':'");
        return;
    }
    size_t name_len = (size_t)(colon - p);
    if (name_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
        const char *v = colon + 1, *end = p + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        long long len = 0;
        if (v == end)
            len = -1;
        for (const char *q = v; q < end && len >= 0; q++) {
            if (*q < '0' || *q > '9' || len > (1LL << 50))
                len = -1;
            else
                len = len * 10 + (*q - '0');
        }
        if (len < 0)
            header_fail(f, "invalid Content-Length value");
        else if (f->content_length >= 0 && f->content_length != len)
            header_fail(f, "conflicting Content-Length headers");
        else
            f->content_length = len;
    }
    /* Other headers (Content-Type) carry nothing wisp needs. */
}

/* The blank line ending a header block: start the body or report. */
static void header_end(wisp_framer *f)
{
    bool seen = f->header_seen;
    f->header_seen = false;
    long long len = f->content_length;
    f->content_length = -1;
    if (!seen)
        return; /* blank lines between messages */
    if (!f->header_error[0] && len < 0)
        header_fail(f, "missing Content-Length header");
    if (f->header_error[0]) {
        f->cb.bad_header(f->ud, f->header_error);
        f->header_error[0] = '\0';
        f->state = ST_HEADER;
        f->resync = true;
        return;
    }
    f->body_left = (size_t)len;
    if ((size_t)len > f->max_message || wisp_buf_reserve(&f->buf, (size_t)len) < 0) {
        f->cb.too_large(f->ud, (size_t)len);
        f->state = ST_BODY_SKIP;
    } else {
        f->state = ST_BODY;
    }
    if (f->body_left == 0 && f->state == ST_BODY) {
        f->state = ST_HEADER;
        f->cb.message(f->ud, "", 0);
    } else if (f->body_left == 0) {
        f->state = ST_HEADER;
    }
}

static size_t feed_header(wisp_framer *f, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    size_t used = nl ? take + 1 : n;
    if (f->state == ST_HEADER_SKIP) {
        /* Skip lines until a blank one ends the block. A blank line is a
         * '\n' right after a '\n' (optionally with '\r' between). */
        if (!nl) {
            for (size_t i = 0; i < take && f->buf.len == 0; i++)
                if (p[i] != '\r')
                    wisp_buf_append(&f->buf, "x", 1);
            return used;
        }
        bool blank = f->buf.len == 0 && (take == 0 || (take == 1 && p[0] == '\r'));
        wisp_buf_clear(&f->buf);
        if (blank) {
            f->state = ST_HEADER;
            f->header_seen = false;
            f->content_length = -1;
            f->header_error[0] = '\0';
            f->cb.bad_header(f->ud, "header block too long");
        }
        return used;
    }
    if (f->buf.len + take > HEADER_MAX) {
        wisp_buf_clear(&f->buf);
        f->state = ST_HEADER_SKIP;
        /* A line shorter than a bucket's worth marks "not blank" for the
         * skip state: keep one byte so the next '\n' is not read as blank. */
        if (!nl)
            wisp_buf_append(&f->buf, "x", 1);
        return used;
    }
    if (wisp_buf_append(&f->buf, p, take) < 0) {
        header_fail(f, "out of memory reading headers");
        wisp_buf_clear(&f->buf);
        return used;
    }
    if (!nl)
        return used;
    size_t len = f->buf.len;
    if (len && f->buf.data[len - 1] == '\r')
        len--;
    if (len == 0)
        header_end(f);
    else
        header_line(f, f->buf.data, len);
    wisp_buf_clear(&f->buf);
    return used;
}

static size_t feed_body(wisp_framer *f, const char *p, size_t n)
{
    size_t take = n < f->body_left ? n : f->body_left;
    f->body_left -= take;
    if (f->state == ST_BODY_SKIP) {
        if (f->body_left == 0)
            f->state = ST_HEADER;
        return take;
    }
    if (f->body_left == 0 && f->buf.len == 0) {
        f->state = ST_HEADER;
        f->cb.message(f->ud, p, take);
        return take;
    }
    /* Room was reserved from Content-Length, so this cannot fail. */
    wisp_buf_append(&f->buf, p, take);
    if (f->body_left == 0) {
        f->state = ST_HEADER;
        f->cb.message(f->ud, f->buf.data, f->buf.len);
        release_big(f);
    }
    return take;
}

/* ------------------------------------------------------------ driver */

int wisp_framer_feed(wisp_framer *f, const char *data, size_t len)
{
    while (len > 0) {
        size_t used;
        switch (f->state) {
        case ST_DETECT: {
            /* Collect only until the prefix decides: at most its length plus
             * leading blanks, which are dropped as they come. */
            size_t take = 1;
            if (all_blank(data, 1) && f->buf.len == 0) {
                used = 1;
                break;
            }
            if (wisp_buf_append(&f->buf, data, take) < 0)
                return WISP_E_NOMEM;
            used = take;
            if (detect(f)) {
                /* Replay the collected bytes through the chosen framing. */
                wisp_buf saved = f->buf;
                f->buf = (wisp_buf)WISP_BUF_INIT;
                int rc = wisp_framer_feed(f, saved.data, saved.len);
                wisp_buf_free(&saved);
                if (rc < 0)
                    return rc;
            }
            break;
        }
        case ST_LINE:
        case ST_LINE_SKIP: used = feed_line(f, data, len); break;
        case ST_HEADER:
        case ST_HEADER_SKIP: used = feed_header(f, data, len); break;
        default: used = feed_body(f, data, len); break;
        }
        data += used;
        len -= used;
    }
    return 0;
}

void wisp_framer_finish(wisp_framer *f)
{
    if (f->state == ST_DETECT && f->buf.len) {
        f->framing = WISP_FRAMING_NDJSON;
        f->state = ST_LINE;
        wisp_buf saved = f->buf;
        f->buf = (wisp_buf)WISP_BUF_INIT;
        wisp_framer_feed(f, saved.data, saved.len);
        wisp_buf_free(&saved);
    }
    if (f->state == ST_LINE && f->buf.len) {
        deliver_line(f, f->buf.data, f->buf.len);
    } else if (f->state == ST_BODY) {
        /* Answered, not only logged: the client may still be reading. */
        char why[96];
        snprintf(why, sizeof why, "input ended inside a message: %zu of its bytes never came",
                 f->body_left);
        WISP_LOGW("%s", why);
        f->cb.bad_header(f->ud, why);
    } else if (f->state == ST_HEADER && (f->buf.len || f->header_seen) && !f->resync) {
        WISP_LOGW("input ended inside a message header");
        f->cb.bad_header(f->ud, "input ended inside a message header");
    }
    wisp_buf_clear(&f->buf);
    f->state = f->framing == WISP_FRAMING_LSP ? ST_HEADER : ST_LINE;
}
