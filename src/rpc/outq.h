/*
 * outq.h - the stdout queue.
 *
 * Every framed message is one chunk, copied whole, so messages are never
 * interleaved or cut; chunks are written with writev() on a non-blocking
 * descriptor as far as the pipe takes them, and the rest waits for the
 * loop's write watcher (started only when a write would block, as redis
 * does). A broken pipe drops everything queued and every later message:
 * the client is gone, and wisp then winds down on stdin EOF.
 */
#ifndef WISP_RPC_OUTQ_H
#define WISP_RPC_OUTQ_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wisp_outq_chunk {
    struct wisp_outq_chunk *next;
    size_t len, off; /* bytes in data, bytes already written */
    char data[];
} wisp_outq_chunk;

typedef struct wisp_outq {
    int fd;
    wisp_outq_chunk *head, *tail;
    size_t bytes; /* unwritten bytes queued */
    bool broken;  /* the reader went away */
} wisp_outq;

void wisp_outq_init(wisp_outq *q, int fd);
void wisp_outq_free(wisp_outq *q);

/* Queues head + body + tail as one chunk (no write happens here). Returns 0
 * or WISP_E_NOMEM (nothing queued). After the reader went away it returns
 * 0 and drops the bytes. */
int wisp_outq_push(wisp_outq *q, const char *head, size_t head_len, const char *body,
                   size_t body_len, const char *tail, size_t tail_len);

/* Writes as much as the descriptor takes. Returns 0 when the queue is
 * empty, 1 when bytes remain (the write would block), or WISP_E_IO when
 * the reader went away (the queue is then dropped). */
int wisp_outq_flush(wisp_outq *q);

/* Blocking variant for the very end: waits (poll) until everything is
 * written or the reader is gone. */
void wisp_outq_drain_blocking(wisp_outq *q);

#endif
