/* outq.c - queued non-blocking stdout writes: see outq.h. */
#include "rpc/outq.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

void wisp_outq_init(wisp_outq *q, int fd)
{
    memset(q, 0, sizeof *q);
    q->fd = fd;
}

static void drop_all(wisp_outq *q)
{
    wisp_outq_chunk *c = q->head;
    while (c) {
        wisp_outq_chunk *next = c->next;
        free(c);
        c = next;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

void wisp_outq_free(wisp_outq *q) { drop_all(q); }

int wisp_outq_push(wisp_outq *q, const char *head, size_t head_len, const char *body,
                   size_t body_len, const char *tail, size_t tail_len)
{
    if (q->broken)
        return 0;
    size_t len = head_len + body_len + tail_len;
    wisp_outq_chunk *c = malloc(sizeof *c + len);
    if (!c)
        return WISP_E_NOMEM;
    c->next = NULL;
    c->len = len;
    c->off = 0;
    if (head_len)
        memcpy(c->data, head, head_len);
    if (body_len)
        memcpy(c->data + head_len, body, body_len);
    if (tail_len)
        memcpy(c->data + head_len + body_len, tail, tail_len);
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += len;
    return 0;
}

int wisp_outq_flush(wisp_outq *q)
{
    while (q->head) {
        struct iovec iov[64];
        int n = 0;
        for (wisp_outq_chunk *c = q->head; c && n < 64; c = c->next, n++) {
            iov[n].iov_base = c->data + c->off;
            iov[n].iov_len = c->len - c->off;
        }
        ssize_t w = writev(q->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            WISP_LOGW("stdout: %s: the client stopped reading; dropping output", strerror(errno));
            q->broken = true;
            drop_all(q);
            return WISP_E_IO;
        }
        size_t left = (size_t)w;
        q->bytes -= left;
        while (left && q->head) {
            wisp_outq_chunk *c = q->head;
            size_t rest = c->len - c->off;
            if (left < rest) {
                c->off += left;
                left = 0;
                break;
            }
            left -= rest;
            q->head = c->next;
            if (!q->head)
                q->tail = NULL;
            free(c);
        }
    }
    return 0;
}

void wisp_outq_drain_blocking(wisp_outq *q)
{
    while (wisp_outq_flush(q) == 1) {
        struct pollfd p = {.fd = q->fd, .events = POLLOUT};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
    }
}
