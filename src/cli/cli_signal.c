/*
 * cli_signal.c - Ctrl-C counting and stdout writes (see cli_signal.h).
 */
#include "cli/cli_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t sigint_presses;
static int sigint_pipe[2] = {-1, -1};

static void on_sigint(int sig)
{
    (void)sig;
    int saved = errno;
    sigint_presses++;
    if (sigint_pipe[1] >= 0) {
        ssize_t n = write(sigint_pipe[1], "i", 1);
        (void)n; /* a full pipe already says "pressed" */
    }
    errno = saved;
}

int wisp_cli_signal_init(void)
{
    if (sigint_pipe[0] < 0) {
        if (pipe2(sigint_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
            return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    if (sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

unsigned wisp_cli_sigint_count(void) { return (unsigned)sigint_presses; }

int wisp_cli_sigint_fd(void) { return sigint_pipe[0]; }

void wisp_cli_sigint_drain(void)
{
    char buf[64];
    if (sigint_pipe[0] < 0)
        return;
    while (read(sigint_pipe[0], buf, sizeof buf) > 0) {
    }
}

int wisp_cli_out_write(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int wisp_cli_out_pollable(void)
{
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
        return STDOUT_FILENO;
    return -1;
}
