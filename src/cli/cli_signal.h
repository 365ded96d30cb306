/*
 * cli_signal.h - Ctrl-C and the command's stdout, for the shell commands.
 *
 * SIGINT does not end a shell command: the handler counts presses and
 * writes a byte to a self-pipe, so a poll() loop wakes up race-free and
 * decides (cancel the reply, clear the input line, give up on a second
 * press). SIGPIPE is ignored, so a closed stdout (`wisp run | head`) shows
 * as EPIPE from wisp_cli_out_write and the command ends at once.
 */
#ifndef WISP_CLI_SIGNAL_H
#define WISP_CLI_SIGNAL_H

#include <stddef.h>

/* Installs the SIGINT handler (without SA_RESTART, so blocking reads
 * return EINTR) and ignores SIGPIPE. Returns 0, or -1 with errno. */
int wisp_cli_signal_init(void);

/* Ctrl-C presses so far. */
unsigned wisp_cli_sigint_count(void);

/* The read end of the self-pipe (readable after a press), for poll(). */
int wisp_cli_sigint_fd(void);

/* Empties the self-pipe. */
void wisp_cli_sigint_drain(void);

/* Writes all of buf to stdout. Returns 0, or -1 when stdout is gone
 * (EPIPE) or failed. */
int wisp_cli_out_write(const char *buf, size_t len);

/* STDOUT_FILENO when stdout is a pipe, else -1: poll() reports POLLERR on
 * it once its reader has gone, so a command notices `| head` ending even
 * while no output is due (during a long prefill). */
int wisp_cli_out_pollable(void);

#endif
