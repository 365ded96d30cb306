/*
 * mailbox.h - what the engine thread sends to the loop thread.
 *
 * Answers and notifications from engine-thread handlers are queued here in
 * order and the loop is woken (an ev_async, through the wake callback) to
 * write them. Keeping one FIFO for both is what guarantees that a request's
 * $/stream notifications reach stdout before its answer.
 *
 * Backpressure lives here too: the loop reports how many bytes it still has
 * to write to stdout, and a notification waits while that plus what sits in
 * the box is above the high-water mark. Answers never wait (there is one per
 * request, and blocking them could deadlock shutdown).
 */
#ifndef WISP_RPC_MAILBOX_H
#define WISP_RPC_MAILBOX_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc/job.h"

typedef struct wisp_mailbox_item {
    struct wisp_mailbox_item *next;
    wisp_job *job;    /* an answer: its job; a notification: NULL */
    json_t *response; /* an answer's response object */
    char *text;       /* a notification, serialized (malloc'd) */
    size_t len;
} wisp_mailbox_item;

typedef struct wisp_mailbox {
    pthread_mutex_t lock;
    pthread_cond_t room;
    wisp_mailbox_item *head, *tail;
    size_t box_bytes; /* notification bytes waiting in the box */
    size_t out_bytes; /* bytes the loop still has to write */
    size_t high_water;
    bool closed;
    void (*wake)(void *ud);
    void *wake_ud;
} wisp_mailbox;

void wisp_mailbox_init(wisp_mailbox *mb, size_t high_water, void (*wake)(void *ud), void *ud);
/* Frees undelivered items (their jobs stay with the dispatcher). */
void wisp_mailbox_free(wisp_mailbox *mb);

/* Engine thread: queues a job's answer (response stolen). Never blocks. */
void wisp_mailbox_post_answer(wisp_mailbox *mb, wisp_job *job, json_t *response);

/* Engine thread: queues a serialized notification (text stolen, malloc'd)
 * on behalf of job, first waiting for room. Returns 0, WISP_E_CANCELLED
 * (text freed, nothing queued) if the job is cancelled while waiting, or
 * WISP_E_SHUTDOWN (likewise) once the mailbox is closed. */
int wisp_mailbox_post_notify(wisp_mailbox *mb, const wisp_job *job, char *text, size_t len);

/* Loop thread: takes everything queued, in order. The caller frees each
 * item with wisp_mailbox_item_free() after using it. */
wisp_mailbox_item *wisp_mailbox_take(wisp_mailbox *mb);
void wisp_mailbox_item_free(wisp_mailbox_item *it);

/* Loop thread: bytes still to be written to stdout; wakes waiting senders
 * when the total falls to the high-water mark or below. */
void wisp_mailbox_set_out_bytes(wisp_mailbox *mb, size_t out_bytes);
/* True while senders would wait: the loop stops reading stdin meanwhile. */
bool wisp_mailbox_full(wisp_mailbox *mb);

/* Wakes waiting senders to look at their jobs' cancel flags again. */
void wisp_mailbox_kick(wisp_mailbox *mb);
/* From now on senders never wait and get WISP_E_SHUTDOWN. */
void wisp_mailbox_close(wisp_mailbox *mb);

#endif
