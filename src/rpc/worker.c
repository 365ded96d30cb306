/* worker.c - the engine thread, its job queue and step hook: see worker.h. */
#include "rpc/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "rpc/codes.h"
#include "rpc/job_int.h"
#include "rpc/method.h"

struct wisp_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    wisp_job *head, *tail; /* queued jobs */
    size_t queued;
    bool woken; /* a wake arrived since the last turn */
    bool stop;
    bool timed;               /* a wake_after deadline is set */
    struct timespec deadline; /* CLOCK_MONOTONIC */
    wisp_worker_step_fn step;
    void *step_ud;
    void (*on_exit)(void *ud);
    void *exit_ud;
};

static void *run(void *arg)
{
    wisp_worker *w = arg;
    bool more = false; /* the step hook has work pending */
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && !w->head && !w->woken && !more) {
            if (!w->timed) {
                pthread_cond_wait(&w->cond, &w->lock);
            } else if (pthread_cond_timedwait(&w->cond, &w->lock, &w->deadline) == ETIMEDOUT) {
                w->timed = false;
                w->woken = true;
            }
        }
        if (w->stop)
            break;
        wisp_job *jobs = w->head;
        w->head = w->tail = NULL;
        w->queued = 0;
        w->woken = false;
        wisp_worker_step_fn step = w->step;
        void *step_ud = w->step_ud;
        pthread_mutex_unlock(&w->lock);

        while (jobs) {
            wisp_job *job = jobs;
            jobs = job->next;
            job->next = NULL;
            wisp_method_run(job);
        }
        /* After new jobs or a wake, the hook gets a turn even if it said it
         * was idle: a handler may just have handed it work. */
        more = step ? step(step_ud) : false;

        pthread_mutex_lock(&w->lock);
        if (w->step != step)
            more = w->step != NULL; /* a new hook starts with a turn */
    }
    /* Answer what never started: the loop may still write the answers. */
    wisp_job *jobs = w->head;
    w->head = w->tail = NULL;
    w->queued = 0;
    pthread_mutex_unlock(&w->lock);
    while (jobs) {
        wisp_job *job = jobs;
        jobs = job->next;
        wisp_job_error(job, WISP_RPC_SHUTTING_DOWN, "server is shutting down", NULL);
    }
    /* Engine-thread state (the loaded model) is torn down on its own thread:
     * requests it still holds get their answers here. */
    if (w->on_exit)
        w->on_exit(w->exit_ud);
    return NULL;
}

int wisp_worker_start(wisp_worker **out, wisp_err *err)
{
    wisp_worker *w = calloc(1, sizeof *w);
    if (!w)
        return wisp_err_set(err, WISP_E_NOMEM, "engine thread: out of memory");
    pthread_mutex_init(&w->lock, NULL);
    /* Deadlines on the monotonic clock: a wall-clock jump must not fire or
     * postpone an idle timer. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return wisp_err_set(err, WISP_E_INTERNAL, "engine thread: pthread_create failed (%d)", rc);
    }
    *out = w;
    return 0;
}

void wisp_worker_set_step(wisp_worker *w, wisp_worker_step_fn step, void *ud)
{
    pthread_mutex_lock(&w->lock);
    w->step = step;
    w->step_ud = ud;
    w->woken = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void wisp_worker_wake_after(wisp_worker *w, double ms)
{
    pthread_mutex_lock(&w->lock);
    w->timed = ms >= 0;
    if (w->timed) {
        clock_gettime(CLOCK_MONOTONIC, &w->deadline);
        long long ns = (long long)(ms * 1e6) + w->deadline.tv_nsec;
        w->deadline.tv_sec += (time_t)(ns / 1000000000LL);
        w->deadline.tv_nsec = (long)(ns % 1000000000LL);
    }
    pthread_mutex_unlock(&w->lock);
}

void wisp_worker_set_exit(wisp_worker *w, void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&w->lock);
    w->on_exit = fn;
    w->exit_ud = ud;
    pthread_mutex_unlock(&w->lock);
}

void wisp_worker_submit(wisp_worker *w, wisp_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void wisp_worker_wake(wisp_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->woken = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

size_t wisp_worker_queued(wisp_worker *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->queued;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void wisp_worker_stop(wisp_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
}

void wisp_worker_free(wisp_worker *w)
{
    if (!w)
        return;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
