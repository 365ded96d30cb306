/*
 * cli_client.c - spawn a wisp server child and speak ndjson JSON-RPC to it
 * (see cli_client.h).
 *
 * One thread, one poll() loop per call over the child's stdout, the Ctrl-C
 * self-pipe and (when it is a pipe) the command's own stdout, so a cancel
 * or a vanished reader is noticed while the server is still prefilling.
 * Requests are written whole with blocking writes: they are small, and the
 * server reads its input while it works.
 */
#include "cli/cli_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_signal.h"

/* How long an exiting server gets before it is killed. */
#define CLOSE_GRACE_MS 3000

extern char **environ;

struct wisp_cli_client {
    pid_t pid;
    int to_child;   /* its stdin, -1 once closed */
    int from_child; /* its stdout, -1 once closed */
    char *buf;      /* bytes read from its stdout, not yet a whole line */
    size_t len, cap;
    long long next_id;
    long long inflight; /* id of the request awaiting its answer, 0 = none */
    int exited;         /* reaped: status holds its wait status */
    int status;
};

/* ------------------------------------------------------------ spawning */

int wisp_cli_client_start(wisp_cli_client **out, char *const server_argv[], wisp_err *err)
{
    wisp_cli_client *c = calloc(1, sizeof *c);
    if (!c)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    c->to_child = c->from_child = -1;
    c->next_id = 1;
    int in[2] = {-1, -1}, outp[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
        int e = errno;
        if (in[0] >= 0) {
            close(in[0]);
            close(in[1]);
        }
        free(c);
        return wisp_err_set(err, WISP_E_IO, "pipe: %s", strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO);
    /* Its own process group: the terminal's Ctrl-C goes to the command
     * only, which cancels the request instead of losing the server. The
     * command's ignored SIGPIPE and its SIGINT handler are not inherited. */
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&c->pid, "/proc/self/exe", &fa, &attr, server_argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]);
    close(outp[1]);
    if (rc != 0) {
        close(in[1]);
        close(outp[0]);
        free(c);
        return wisp_err_set(err, WISP_E_IO, "cannot start the wisp server: %s", strerror(rc));
    }
    c->to_child = in[1];
    c->from_child = outp[0];
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ child state */

static void describe_exit(int status, char *buf, size_t n)
{
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "ended");
}

/* Waits up to ms for the child to exit (ms < 0: forever). Returns 1 when it
 * has been reaped, 0 when it is still running. */
static int reap(wisp_cli_client *c, int ms)
{
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int waited = 0;; waited += 10) {
        if (c->exited)
            return 1;
        pid_t r = waitpid(c->pid, &c->status, ms < 0 ? 0 : WNOHANG);
        if (r == c->pid) {
            c->exited = 1;
            return 1;
        }
        if (r < 0 && errno != EINTR) {
            c->exited = 1; /* not our child any more: nothing to wait for */
            c->status = 0;
            return 1;
        }
        if (ms >= 0 && waited >= ms)
            return 0;
        if (ms >= 0)
            nanosleep(&step, NULL);
    }
}

static int server_gone(wisp_cli_client *c, wisp_err *err)
{
    char how[96];
    reap(c, CLOSE_GRACE_MS);
    if (c->exited)
        describe_exit(c->status, how, sizeof how);
    else
        snprintf(how, sizeof how, "closed its output");
    return wisp_err_set(err, WISP_E_IO, "the wisp server %s before answering", how);
}

/* ------------------------------------------------------------ writing */

static int send_json(wisp_cli_client *c, json_t *msg, wisp_err *err)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    size_t len = s ? strlen(s) : 0;
    char *line = s ? realloc(s, len + 1) : NULL;
    if (!line) {
        free(s);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    line[len++] = '\n'; /* ndjson: one message per line, no NUL needed */
    int rc = 0;
    if (c->to_child < 0)
        rc = wisp_err_set(err, WISP_E_IO, "the wisp server's input is closed");
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(c->to_child, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = errno == EPIPE ? server_gone(c, err)
                                : wisp_err_set(err, WISP_E_IO, "writing to the wisp server: %s",
                                               strerror(errno));
        else
            off += (size_t)n;
    }
    free(line);
    return rc;
}

static json_t *new_message(const char *method)
{
    return json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
}

static int send_cancel(wisp_cli_client *c, long long id, wisp_err *err)
{
    json_t *m = new_message("$/cancelRequest");
    if (!m || json_object_set_new(m, "params", json_pack("{s:I}", "id", (json_int_t)id)) < 0) {
        json_decref(m);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    int rc = send_json(c, m, err);
    json_decref(m);
    return rc;
}

/* ------------------------------------------------------------ reading */

/* Reads what the child has written. Returns >0 bytes, 0 at EOF, <0 on an
 * error (EINTR included, for the caller's loop). */
static ssize_t read_some(wisp_cli_client *c)
{
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *b = realloc(c->buf, cap);
        if (!b) {
            errno = ENOMEM;
            return -1;
        }
        c->buf = b;
        c->cap = cap;
    }
    return read(c->from_child, c->buf + c->len, c->cap - c->len);
}

/* Takes one whole line from the buffer as JSON; NULL when there is none
 * (*had_line tells whether a line was consumed that was not JSON). */
static json_t *take_line(wisp_cli_client *c, int *had_line)
{
    *had_line = 0;
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (!nl)
        return NULL;
    size_t n = (size_t)(nl - c->buf);
    json_error_t je;
    json_t *msg = json_loadb(c->buf, n, JSON_ALLOW_NUL, &je);
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    *had_line = 1;
    return msg;
}

static int piece_of(json_t *msg, long long id, const char **text, size_t *len)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (!method || strcmp(method, "$/stream") != 0)
        return 0;
    json_t *p = json_object_get(msg, "params");
    json_t *pid = json_object_get(p, "id");
    json_t *t = json_object_get(p, "text");
    if (!json_is_integer(pid) || json_integer_value(pid) != id || !json_is_string(t))
        return 0;
    *text = json_string_value(t);
    *len = json_string_length(t);
    return 1;
}

int wisp_cli_client_call(wisp_cli_client *c, const char *method, json_t *params,
                         wisp_cli_piece_fn on_piece, void *ctx, json_t **answer, wisp_err *err)
{
    *answer = NULL;
    long long id = c->next_id++;
    json_t *req = new_message(method);
    if (!req || json_object_set_new(req, "id", json_integer(id)) < 0 ||
        (params && json_object_set_new(req, "params", params) < 0)) {
        json_decref(req);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    params = NULL;
    int rc = send_json(c, req, err);
    json_decref(req);
    if (rc < 0)
        return rc;
    c->inflight = id;
    unsigned presses = wisp_cli_sigint_count();
    int cancelled = 0;
    int out_fd = wisp_cli_out_pollable();
    for (;;) {
        int had_line;
        json_t *msg;
        while ((msg = take_line(c, &had_line)) != NULL || had_line) {
            if (!msg)
                continue; /* not JSON: the server never writes that; skip */
            const char *text;
            size_t len;
            json_t *mid = json_object_get(msg, "id");
            if (!json_object_get(msg, "method") && json_is_integer(mid) &&
                json_integer_value(mid) == id) {
                c->inflight = 0;
                *answer = msg;
                return 0;
            }
            if (on_piece && piece_of(msg, id, &text, &len) && on_piece(ctx, text, len) < 0) {
                json_decref(msg);
                return WISP_CLI_OUT_GONE;
            }
            json_decref(msg);
        }
        unsigned now = wisp_cli_sigint_count();
        if (now != presses) {
            wisp_cli_sigint_drain();
            if (cancelled)
                return wisp_err_set(err, WISP_E_CANCELLED, "interrupted");
            cancelled = 1;
            presses = now;
            if (send_cancel(c, id, err) < 0)
                return -1;
        }
        struct pollfd pf[3] = {
            {.fd = c->from_child, .events = POLLIN},
            {.fd = wisp_cli_sigint_fd(), .events = POLLIN},
            {.fd = out_fd, .events = 0},
        };
        int np = poll(pf, 3, -1);
        if (np < 0) {
            if (errno == EINTR)
                continue;
            return wisp_err_set(err, WISP_E_IO, "poll: %s", strerror(errno));
        }
        if (out_fd >= 0 && (pf[2].revents & (POLLERR | POLLHUP)))
            return WISP_CLI_OUT_GONE;
        if (pf[0].revents) {
            ssize_t n = read_some(c);
            if (n == 0)
                return server_gone(c, err);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                return wisp_err_set(err, WISP_E_IO, "reading from the wisp server: %s",
                                    strerror(errno));
            }
            c->len += (size_t)n;
        }
    }
}

/* ------------------------------------------------------------ closing */

static void drain_output(wisp_cli_client *c, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return;
        struct pollfd pf = {.fd = c->from_child, .events = POLLIN};
        int np = poll(&pf, 1, (int)left);
        if (np < 0 && errno == EINTR)
            continue;
        if (np <= 0)
            return;
        c->len = 0; /* what the server says now (its shutdown answer) is not needed */
        ssize_t n = read_some(c);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return;
    }
}

int wisp_cli_client_close(wisp_cli_client *c, int fast)
{
    if (!c)
        return 0;
    wisp_err ignored = {0};
    if (!c->exited && c->to_child >= 0) {
        if (fast) {
            /* Nobody reads the answers any more: closing the pipe first
             * means the server's writes fail instead of filling it. */
            close(c->from_child);
            c->from_child = -1;
            if (c->inflight)
                send_cancel(c, c->inflight, &ignored);
        }
        json_t *sd = new_message("shutdown");
        json_t *ex = new_message("exit");
        if (sd && json_object_set_new(sd, "id", json_integer(c->next_id++)) == 0)
            send_json(c, sd, &ignored);
        if (ex)
            send_json(c, ex, &ignored);
        json_decref(sd);
        json_decref(ex);
    }
    if (c->to_child >= 0)
        close(c->to_child);
    c->to_child = -1;
    if (c->from_child >= 0) {
        drain_output(c, CLOSE_GRACE_MS);
        close(c->from_child);
        c->from_child = -1;
    }
    int killed = 0;
    if (!reap(c, CLOSE_GRACE_MS)) {
        kill(c->pid, SIGKILL);
        reap(c, -1);
        killed = 1;
    }
    int status = killed || !WIFEXITED(c->status) ? -1 : WEXITSTATUS(c->status);
    free(c->buf);
    free(c);
    return status;
}
