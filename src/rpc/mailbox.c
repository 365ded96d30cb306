/* mailbox.c - the engine-to-loop FIFO with backpressure: see mailbox.h. */
#include "rpc/mailbox.h"

#include <stdlib.h>

#include "common/panic.h"
#include "rpc/job_int.h"

void wisp_mailbox_init(wisp_mailbox *mb, size_t high_water, void (*wake)(void *ud), void *ud)
{
    pthread_mutex_init(&mb->lock, NULL);
    pthread_cond_init(&mb->room, NULL);
    mb->head = mb->tail = NULL;
    mb->box_bytes = mb->out_bytes = 0;
    mb->high_water = high_water;
    mb->closed = false;
    mb->wake = wake;
    mb->wake_ud = ud;
}

void wisp_mailbox_item_free(wisp_mailbox_item *it)
{
    if (!it)
        return;
    json_decref(it->response);
    free(it->text);
    free(it);
}

void wisp_mailbox_free(wisp_mailbox *mb)
{
    wisp_mailbox_item *it = mb->head;
    while (it) {
        wisp_mailbox_item *next = it->next;
        wisp_mailbox_item_free(it);
        it = next;
    }
    mb->head = mb->tail = NULL;
    pthread_cond_destroy(&mb->room);
    pthread_mutex_destroy(&mb->lock);
}

/* Appends under the lock; wakes the loop when the box was empty (later
 * items ride on the same wake-up). */
static void push_locked(wisp_mailbox *mb, wisp_mailbox_item *it, bool *wake)
{
    *wake = mb->head == NULL;
    if (mb->tail)
        mb->tail->next = it;
    else
        mb->head = it;
    mb->tail = it;
}

void wisp_mailbox_post_answer(wisp_mailbox *mb, wisp_job *job, json_t *response)
{
    wisp_mailbox_item *it = calloc(1, sizeof *it);
    WISP_ASSERT(it); /* an answer cannot be dropped; no memory for 40 bytes is fatal */
    it->job = job;
    it->response = response;
    bool wake;
    pthread_mutex_lock(&mb->lock);
    push_locked(mb, it, &wake);
    pthread_mutex_unlock(&mb->lock);
    if (wake && mb->wake)
        mb->wake(mb->wake_ud);
}

static bool over(const wisp_mailbox *mb) { return mb->box_bytes + mb->out_bytes > mb->high_water; }

int wisp_mailbox_post_notify(wisp_mailbox *mb, const wisp_job *job, char *text, size_t len)
{
    wisp_mailbox_item *it = calloc(1, sizeof *it);
    if (!it) {
        free(text);
        return WISP_E_NOMEM;
    }
    it->text = text;
    it->len = len;
    int rc = 0;
    bool wake = false;
    pthread_mutex_lock(&mb->lock);
    while (!mb->closed && !atomic_load(&job->cancelled) && over(mb))
        pthread_cond_wait(&mb->room, &mb->lock);
    if (mb->closed)
        rc = WISP_E_SHUTDOWN;
    else if (atomic_load(&job->cancelled))
        rc = WISP_E_CANCELLED;
    else {
        mb->box_bytes += len;
        push_locked(mb, it, &wake);
    }
    pthread_mutex_unlock(&mb->lock);
    if (rc < 0)
        wisp_mailbox_item_free(it);
    else if (wake && mb->wake)
        mb->wake(mb->wake_ud);
    return rc;
}

wisp_mailbox_item *wisp_mailbox_take(wisp_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    wisp_mailbox_item *all = mb->head;
    mb->head = mb->tail = NULL;
    /* The notifications move to the loop's output queue, which reports them
     * through set_out_bytes; count them there from now on. */
    for (wisp_mailbox_item *it = all; it; it = it->next)
        mb->box_bytes -= it->text ? it->len : 0;
    bool room = all && !over(mb);
    pthread_mutex_unlock(&mb->lock);
    if (room)
        pthread_cond_broadcast(&mb->room);
    return all;
}

void wisp_mailbox_set_out_bytes(wisp_mailbox *mb, size_t out_bytes)
{
    pthread_mutex_lock(&mb->lock);
    mb->out_bytes = out_bytes;
    bool room = !over(mb);
    pthread_mutex_unlock(&mb->lock);
    if (room)
        pthread_cond_broadcast(&mb->room);
}

bool wisp_mailbox_full(wisp_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    bool full = over(mb);
    pthread_mutex_unlock(&mb->lock);
    return full;
}

void wisp_mailbox_kick(wisp_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    pthread_cond_broadcast(&mb->room);
    pthread_mutex_unlock(&mb->lock);
}

void wisp_mailbox_close(wisp_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    mb->closed = true;
    pthread_cond_broadcast(&mb->room);
    pthread_mutex_unlock(&mb->lock);
}
