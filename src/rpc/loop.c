/*
 * loop.c - the event loop that ties framer, dispatcher, worker and stdout
 * together: see loop.h.
 *
 * Watchers are embedded in one struct and recovered with container_of in
 * callbacks (libev's documented idiom). Output produced during one loop
 * iteration is written in a single writev from the prepare watcher, just
 * before libev blocks; the write watcher runs only while stdout is full.
 * While more than OUT_HIGH_WATER bytes wait for a slow reader, stdin is not
 * read and engine notifications wait (mailbox.h): memory stays bounded.
 */
#include "rpc/loop.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "rpc/dispatch.h"
#include "rpc/framer.h"
#include "rpc/mailbox.h"
#include "rpc/outq.h"
#include "rpc/worker.h"

#define READ_CHUNK     (64 * 1024)
#define OUT_HIGH_WATER ((size_t)4 << 20)
/* How long `exit` waits for cancelled requests to be answered. */
#define EXIT_GRACE_S 5.0
/* How long exit waits for queued log lines to reach stderr. */
#define LOG_FLUSH_MS 1000

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct wisp_loop {
    struct ev_loop *ev;
    ev_io in_w, out_w;
    ev_async async_w;
    ev_signal term_w, int_w;
    ev_prepare prep_w;
    ev_timer grace_w;
    ev_io pidfd_w;        /* the LSP client process (initialize's processId) */
    ev_timer pid_timer_w; /* the same, polled, where pidfd_open is missing */
    long watched_pid;

    wisp_loop_config cfg;
    wisp_app app;
    wisp_mailbox mailbox;
    wisp_worker *worker;
    wisp_dispatch *dispatch;
    wisp_framer framer;
    wisp_outq outq;

    bool reading;   /* stdin not at EOF and not given up */
    bool paused;    /* stdin reading paused by a slow stdout reader */
    bool draining;  /* finish what is in flight, flush, then stop */
    bool stopping;  /* a signal or the client's death: cancel, flush, stop */
    bool gone_told; /* the broken stdout was logged */
    int exit_code;
    int signals;
    int in_flags, out_flags;
    char chunk[READ_CHUNK];
} wisp_loop;

/* ------------------------------------------------------------ output */

static void loop_write(void *ud, const char *text, size_t len)
{
    wisp_loop *l = ud;
    char head[64];
    wisp_framing f = wisp_dispatch_framing(l->dispatch);
    size_t hl = wisp_framing_header(f, len, head);
    const char *tail = wisp_framing_trailer(f);
    if (wisp_outq_push(&l->outq, head, hl, text, len, tail, strlen(tail)) < 0)
        WISP_LOGE("out of memory queueing %zu bytes of output: message lost", len);
}

static void flush_out(wisp_loop *l)
{
    if (ev_is_active(&l->out_w))
        return; /* the write watcher owns flushing until stdout drains */
    if (wisp_outq_flush(&l->outq) == 1)
        ev_io_start(l->ev, &l->out_w);
    wisp_mailbox_set_out_bytes(&l->mailbox, l->outq.bytes);
}

static void out_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    wisp_loop *l = container_of(w, wisp_loop, out_w);
    if (wisp_outq_flush(&l->outq) != 1)
        ev_io_stop(ev, w);
    wisp_mailbox_set_out_bytes(&l->mailbox, l->outq.bytes);
}

/* ------------------------------------------------------------ engine side */

static void submit(void *ud, wisp_job *job) { wisp_worker_submit(((wisp_loop *)ud)->worker, job); }

static void wake_engine(void *ud)
{
    wisp_loop *l = ud;
    wisp_worker_wake(l->worker);
    wisp_mailbox_kick(&l->mailbox);
}

static void mailbox_wake(void *ud)
{
    wisp_loop *l = ud;
    ev_async_send(l->ev, &l->async_w);
}

static void drain_mailbox(wisp_loop *l)
{
    wisp_mailbox_item *it = wisp_mailbox_take(&l->mailbox);
    while (it) {
        wisp_mailbox_item *next = it->next;
        if (it->job) {
            json_t *resp = it->response;
            it->response = NULL;
            wisp_dispatch_complete(l->dispatch, it->job, resp);
        } else {
            loop_write(l, it->text, it->len);
        }
        wisp_mailbox_item_free(it);
        it = next;
    }
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    drain_mailbox(container_of(w, wisp_loop, async_w));
}

/* ------------------------------------------------------------ input */

/* The framer decides the framing on the first bytes; answers use it. */
static wisp_dispatch *framed(wisp_loop *l)
{
    wisp_dispatch_set_framing(l->dispatch, wisp_framer_framing(&l->framer));
    return l->dispatch;
}

static void on_message(void *ud, const char *data, size_t len)
{
    wisp_dispatch_message(framed(ud), data, len);
}

static void on_too_large(void *ud, size_t declared)
{
    wisp_loop *l = ud;
    wisp_dispatch_too_large(framed(l), declared, l->cfg.max_message_bytes);
}

static void on_bad_header(void *ud, const char *why) { wisp_dispatch_bad_header(framed(ud), why); }

static void stop_reading(wisp_loop *l, const char *why)
{
    if (!l->reading)
        return;
    WISP_LOGD("stdin: %s", why);
    l->reading = false;
    l->draining = true;
    ev_io_stop(l->ev, &l->in_w);
    /* A last line without a newline is a message too (it may be `exit`). */
    wisp_framer_finish(&l->framer);
}

/* After input was dispatched: `exit` ends reading and starts the grace
 * period within which cancelled requests must be answered. */
static void check_exit(wisp_loop *l)
{
    int code;
    if (!wisp_dispatch_exit_requested(l->dispatch, &code) || ev_is_active(&l->grace_w))
        return;
    l->exit_code = code;
    stop_reading(l, "exit");
    ev_timer_start(l->ev, &l->grace_w);
}

static void in_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    wisp_loop *l = container_of(w, wisp_loop, in_w);
    ssize_t n = read(w->fd, l->chunk, sizeof l->chunk);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        WISP_LOGE("stdin: %s", strerror(errno));
        stop_reading(l, "read error");
    } else if (n == 0) {
        stop_reading(l, "end of input");
    } else {
        wisp_framer_feed(&l->framer, l->chunk, (size_t)n);
    }
    check_exit(l);
}

/* ------------------------------------------------------------ lifecycle */

/* Everything in flight is cancelled (each request answered -32800 with its
 * partial output at the engine's next step); new requests are too, while
 * `why` holds. Signals, the client's death and a gone stdout all end here. */
static void cancel_everything(wisp_loop *l, const char *why)
{
    wisp_dispatch_counts c;
    wisp_dispatch_counts_get(l->dispatch, &c);
    if (c.in_flight == 0)
        return;
    if (why)
        WISP_LOGI("%s: cancelling %zu request%s in flight", why, c.in_flight,
                  c.in_flight == 1 ? "" : "s");
    wisp_dispatch_cancel_all(l->dispatch);
}

/* Stop now: cancel, answer, flush, exit 0 (SIGTERM, SIGINT, the LSP
 * client process gone). */
static void stop_now(wisp_loop *l, const char *why)
{
    if (l->stopping)
        return;
    l->stopping = true;
    l->exit_code = 0;
    cancel_everything(l, why);
    stop_reading(l, why);
}

static void signal_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    wisp_loop *l = ev_userdata(ev);
    if (++l->signals > 1) {
        WISP_LOGW("second signal: exiting now");
        l->exit_code = 1;
        ev_break(ev, EVBREAK_ALL);
        return;
    }
    WISP_LOGI("signal %d: cancelling requests in flight, then exiting", w->signum);
    stop_now(l, "signal");
}

/* ------------------------------------------------------------ client process */

static void client_gone(wisp_loop *l)
{
    WISP_LOGI("client process %ld (initialize's processId) is gone: exiting", l->watched_pid);
    ev_io_stop(l->ev, &l->pidfd_w);
    ev_timer_stop(l->ev, &l->pid_timer_w);
    if (l->pidfd_w.fd >= 0)
        close(l->pidfd_w.fd);
    l->pidfd_w.fd = -1;
    stop_now(l, "client process gone");
}

static void pidfd_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    client_gone(container_of(w, wisp_loop, pidfd_w));
}

static void pid_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    wisp_loop *l = container_of(w, wisp_loop, pid_timer_w);
    /* EPERM: it exists but belongs to someone else; only ESRCH is gone. */
    if (kill((pid_t)l->watched_pid, 0) < 0 && errno == ESRCH)
        client_gone(l);
}

/* Starts watching the process initialize named (LSP: the server exits when
 * its parent does), with a pidfd where the kernel has them, else a 1 s poll. */
static void watch_client(wisp_loop *l)
{
    long pid = wisp_dispatch_client_pid(l->dispatch);
    if (pid <= 0 || pid == l->watched_pid || l->stopping)
        return;
    if (l->pidfd_w.fd >= 0) {
        ev_io_stop(l->ev, &l->pidfd_w);
        close(l->pidfd_w.fd);
        l->pidfd_w.fd = -1;
    }
    ev_timer_stop(l->ev, &l->pid_timer_w);
    l->watched_pid = pid;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0 && errno == ESRCH) {
        client_gone(l);
        return;
    }
    if (fd >= 0) {
        ev_io_set(&l->pidfd_w, fd, EV_READ);
        ev_io_start(l->ev, &l->pidfd_w);
    } else {
        ev_timer_set(&l->pid_timer_w, 1.0, 1.0);
        ev_timer_start(l->ev, &l->pid_timer_w);
    }
    WISP_LOGD("watching client process %ld", pid);
}

static void grace_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    WISP_LOGW("exit: requests still unanswered after %.0f s; exiting anyway", EXIT_GRACE_S);
    ev_break(ev, EVBREAK_ALL);
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    wisp_loop *l = container_of(w, wisp_loop, prep_w);
    flush_out(l);
    watch_client(l);
    /* Nobody can receive an answer any more: stop the work now, and exit
     * once stdin ends (outq.h). Requests read after this are cancelled too. */
    if (l->outq.broken) {
        cancel_everything(l, l->gone_told ? NULL : "stdout gone");
        l->gone_told = true;
    }
    /* Backpressure on input: a client that does not read its answers stops
     * being read from, so queued output cannot grow without bound. */
    if (l->reading) {
        bool full = l->outq.bytes > OUT_HIGH_WATER;
        if (full && !l->paused) {
            ev_io_stop(ev, &l->in_w);
            l->paused = true;
        } else if (!full && l->paused && l->outq.bytes <= OUT_HIGH_WATER / 2) {
            ev_io_start(ev, &l->in_w);
            l->paused = false;
        }
    }
    if (!l->draining)
        return;
    wisp_dispatch_counts c;
    wisp_dispatch_counts_get(l->dispatch, &c);
    if (c.in_flight == 0 && (l->outq.bytes == 0 || l->outq.broken))
        ev_break(ev, EVBREAK_ALL);
}

/* ------------------------------------------------------------ setup */

static int set_nonblocking(int fd, int *saved)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    *saved = flags;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int wisp_loop_run(const wisp_loop_config *cfg, const wisp_app *app)
{
    wisp_loop *l = calloc(1, sizeof *l);
    if (!l) {
        WISP_LOGE("out of memory");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* From here on no thread blocks on a stderr nobody reads (log.h). */
    wisp_log_start_async(0);
    l->ev = ev_default_loop(EVFLAG_AUTO);
    if (!l->ev) {
        WISP_LOGE("libev: no usable event backend");
        free(l);
        wisp_log_stop_async(LOG_FLUSH_MS);
        return 1;
    }
    ev_set_userdata(l->ev, l);
    l->cfg = *cfg;
    l->app = *app;
    const wisp_app_ops *ops = app->ops;
    wisp_mailbox_init(&l->mailbox, OUT_HIGH_WATER, mailbox_wake, l);
    wisp_outq_init(&l->outq, cfg->out_fd);

    int rc = 1;
    bool stopped = false;
    wisp_err err = {0};
    /* Before the engine thread exists, so startup work needs no hand-off. */
    if (ops->startup && ops->startup(app->ctx, &err) < 0) {
        WISP_LOGE("%s", err.msg);
        goto out;
    }
    if (wisp_worker_start(&l->worker, &err) < 0) {
        WISP_LOGE("%s", err.msg);
        goto out;
    }
    if (ops->attach)
        ops->attach(app->ctx, l->worker);
    if (ops->step)
        wisp_worker_set_step(l->worker, ops->step, app->ctx);
    if (ops->teardown)
        wisp_worker_set_exit(l->worker, ops->teardown, app->ctx);
    wisp_dispatch_io io = {.write = loop_write, .submit = submit, .wake = wake_engine, .ud = l};
    l->dispatch = wisp_dispatch_new(&l->app, &l->mailbox, &io);
    if (!l->dispatch) {
        WISP_LOGE("out of memory");
        goto out;
    }
    wisp_framer_cb fcb = {.message = on_message,
                          .too_large = on_too_large,
                          .bad_header = on_bad_header};
    wisp_framer_init(&l->framer, cfg->max_message_bytes, &fcb, l);

    if (set_nonblocking(cfg->in_fd, &l->in_flags) < 0 ||
        set_nonblocking(cfg->out_fd, &l->out_flags) < 0) {
        WISP_LOGE("stdin/stdout: %s", strerror(errno));
        goto out;
    }
    ev_io_init(&l->in_w, in_cb, cfg->in_fd, EV_READ);
    ev_io_init(&l->out_w, out_cb, cfg->out_fd, EV_WRITE);
    ev_async_init(&l->async_w, async_cb);
    ev_signal_init(&l->term_w, signal_cb, SIGTERM);
    ev_signal_init(&l->int_w, signal_cb, SIGINT);
    ev_prepare_init(&l->prep_w, prepare_cb);
    ev_timer_init(&l->grace_w, grace_cb, EXIT_GRACE_S, 0);
    ev_io_init(&l->pidfd_w, pidfd_cb, -1, EV_READ);
    ev_timer_init(&l->pid_timer_w, pid_timer_cb, 1.0, 1.0);
    ev_io_start(l->ev, &l->in_w);
    ev_async_start(l->ev, &l->async_w);
    ev_signal_start(l->ev, &l->term_w);
    ev_signal_start(l->ev, &l->int_w);
    ev_prepare_start(l->ev, &l->prep_w);
    l->reading = true;

    WISP_LOGI("wisp ready: JSON-RPC 2.0 on stdin/stdout");
    ev_run(l->ev, 0);
    rc = l->exit_code;

    /* Wind down: nothing may block on stdout any more, the engine thread
     * answers what it never started, and whatever it answered is written
     * unless the client is gone or a second signal asked for haste. */
    wisp_mailbox_close(&l->mailbox);
    wisp_dispatch_cancel_all(l->dispatch);
    wisp_worker_stop(l->worker);
    stopped = true;
    drain_mailbox(l);
    if (l->signals < 2)
        wisp_outq_drain_blocking(&l->outq);
    if (l->pidfd_w.fd >= 0)
        close(l->pidfd_w.fd);
    fcntl(cfg->in_fd, F_SETFL, l->in_flags);
    fcntl(cfg->out_fd, F_SETFL, l->out_flags);
out:
    if (l->worker && !stopped)
        wisp_worker_stop(l->worker);
    /* What startup made while the engine thread never started. */
    if (ops->teardown)
        ops->teardown(app->ctx);
    wisp_dispatch_free(l->dispatch);
    wisp_worker_free(l->worker);
    wisp_framer_free(&l->framer);
    wisp_outq_free(&l->outq);
    wisp_mailbox_free(&l->mailbox);
    ev_loop_destroy(l->ev);
    free(l);
    /* Last lines out if stderr takes them soon; an unread stderr must not
     * keep the process alive. */
    wisp_log_stop_async(LOG_FLUSH_MS);
    return rc;
}
