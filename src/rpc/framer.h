/*
 * framer.h - splits the stdin byte stream into messages.
 *
 * Two framings, decided once from the first bytes of the stream:
 *   ndjson: one JSON value per line ('\n', an optional '\r' before it is
 *           dropped; blank lines are ignored; at EOF a last line without a
 *           newline is still a message);
 *   lsp:    "Content-Length: N\r\n" headers, an empty line, then N bytes
 *           (the Language Server Protocol's base protocol).
 * A stream whose first non-blank bytes read "Content-" (any case) is lsp;
 * anything else is ndjson. Replies use the same framing.
 *
 * Memory is bounded: a message longer than max_message bytes is reported
 * (too_large) and its bytes are skipped as they arrive, never buffered
 * (beanstalkd's "bit bucket"). The framer knows nothing of JSON or of the
 * event loop, so the fuzzer drives it directly.
 */
#ifndef WISP_RPC_FRAMER_H
#define WISP_RPC_FRAMER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

typedef enum wisp_framing {
    WISP_FRAMING_UNKNOWN = 0, /* nothing but blanks seen yet */
    WISP_FRAMING_NDJSON = 1,
    WISP_FRAMING_LSP = 2,
} wisp_framing;

typedef struct wisp_framer_cb {
    /* One complete message body; data is valid during the call only. */
    void (*message)(void *ud, const char *data, size_t len);
    /* A message over the limit was skipped. declared_len is its length when
     * the framing announced it (lsp), 0 when unknown (ndjson). */
    void (*too_large)(void *ud, size_t declared_len);
    /* An lsp header block was malformed (why says how); it was skipped. */
    void (*bad_header)(void *ud, const char *why);
} wisp_framer_cb;

typedef struct wisp_framer {
    wisp_framer_cb cb;
    void *ud;
    size_t max_message;
    wisp_framing framing;
    int state;                /* framer.c's enum */
    wisp_buf buf;             /* the message (or header line) being collected */
    size_t body_left;         /* lsp: body bytes still to come (collect or skip) */
    long long content_length; /* lsp: value of the current header block, -1 = none */
    char header_error[96];    /* lsp: first problem of the current header block */
    bool header_seen;         /* lsp: a header line was seen in this block */
    bool resync;              /* lsp: after a refused header, skip to a Content-Length line */
} wisp_framer;

void wisp_framer_init(wisp_framer *f, size_t max_message, const wisp_framer_cb *cb, void *ud);
void wisp_framer_free(wisp_framer *f);

/* Feeds bytes; calls back zero or more times. Returns 0, or WISP_E_NOMEM
 * when a message buffer could not grow (the message is then reported as
 * too large and skipped, so the stream stays in step). */
int wisp_framer_feed(wisp_framer *f, const char *data, size_t len);

/* End of input: an unterminated ndjson line is delivered as a message; an
 * lsp message cut short is dropped (a log line says so). */
void wisp_framer_finish(wisp_framer *f);

/* The framing chosen from the first bytes (UNKNOWN until then). */
wisp_framing wisp_framer_framing(const wisp_framer *f);

/* "ndjson" / "lsp". */
const char *wisp_framing_name(wisp_framing framing);

/* Writes what goes before a body of body_len bytes in this framing (the
 * lsp header; nothing for ndjson) into out, returns its length. out needs
 * 64 bytes. The trailer (a '\n' for ndjson, nothing for lsp) comes from
 * wisp_framing_trailer(). */
size_t wisp_framing_header(wisp_framing framing, size_t body_len, char *out);
const char *wisp_framing_trailer(wisp_framing framing);

#endif
