/*
 * sse.h - a parser for server-sent events (the WHATWG EventSource stream
 * format), the framing of every streaming answer of OpenAI-compatible
 * servers and llama.cpp's llama-server.
 *
 * Bytes go in as they arrive from the socket, in pieces of any size; each
 * complete event (its `data:` lines joined by "\n", as the standard says)
 * comes out through the callback. Comment lines (":"), `id:` and `retry:`
 * are accepted and ignored; lines end in LF, CRLF or CR. An event larger
 * than the parser's limit is an error, never unbounded memory. Knows no
 * JSON: the caller decodes data.
 */
#ifndef WISP_REMOTE_SSE_H
#define WISP_REMOTE_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* One event: name is "message" unless the stream named it (`event:`).
 * Returns 0 to go on, nonzero to stop parsing (wisp_sse_feed returns it). */
typedef int (*wisp_sse_event_fn)(void *ud, const char *name, const char *data, size_t len);

typedef struct wisp_sse {
    wisp_buf line;  /* the line being read */
    wisp_buf data;  /* the event's data so far */
    wisp_buf event; /* its event name, empty: "message" */
    bool has_data;  /* a data: line was seen (data may still be empty) */
    bool after_cr;  /* the last byte was CR: a following LF is the same line end */
    size_t max_bytes;
    wisp_sse_event_fn on_event;
    void *ud;
} wisp_sse;

/* max_bytes bounds one line and one event's data. */
void wisp_sse_init(wisp_sse *p, size_t max_bytes, wisp_sse_event_fn on_event, void *ud);
void wisp_sse_free(wisp_sse *p);

/* Feeds n bytes. Returns 0; the callback's nonzero value when it stopped
 * the stream; or WISP_E_TOO_LARGE / WISP_E_NOMEM with err set. */
int wisp_sse_feed(wisp_sse *p, const char *bytes, size_t n, wisp_err *err);

/* End of stream: an event not yet ended by a blank line is dropped, as the
 * standard says. Returns true when bytes of an unfinished line or event
 * were pending (the stream was cut). */
bool wisp_sse_finish(wisp_sse *p);

#endif
