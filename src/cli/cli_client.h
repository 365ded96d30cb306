/*
 * cli_client.h - the shell commands' JSON-RPC client of a wisp server child.
 *
 * `wisp run`, `wisp chat` and `wisp complete` do not drive the engine
 * themselves: each starts the same binary in serve mode with pipes and
 * speaks the protocol to it, so every server behaviour (sampling, stop
 * strings, caches, cancellation) is the one clients get. The child runs in
 * its own process group, so the terminal's Ctrl-C reaches only the command,
 * which turns it into `$/cancelRequest` (cli_signal.h counts the presses).
 */
#ifndef WISP_CLI_CLIENT_H
#define WISP_CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

typedef struct wisp_cli_client wisp_cli_client;

/* Receives each `$/stream` text piece of the request in flight (the bytes
 * of one JSON string, which may hold NULs). Returns 0 to go on, or <0 to
 * abandon the request (e.g. the command's stdout is gone). */
typedef int (*wisp_cli_piece_fn)(void *ctx, const char *text, size_t len);

/* Starts `/proc/self/exe` with server_argv (NULL-terminated; argv[0] is
 * its name) in its own process group; its stderr is the command's.
 * Returns 0 and *out, or <0 with err. */
int wisp_cli_client_start(wisp_cli_client **out, char *const server_argv[], wisp_err *err);

/* Sends `method` with params (steals params; NULL for none) and waits for
 * its answer, passing its `$/stream` pieces to on_piece (may be NULL). A
 * first Ctrl-C while waiting sends `$/cancelRequest` and keeps waiting for
 * the (cancelled) answer; a second gives up at once.
 * Returns 0 and *answer, the response object (holding `result` or `error`;
 * the caller frees it); WISP_CLI_OUT_GONE when on_piece gave up or the
 * command's stdout pipe lost its reader; or <0 with err: the server
 * exited, a pipe failed, or a second Ctrl-C came (WISP_E_CANCELLED).
 * After anything but 0 the client can only be closed. */
#define WISP_CLI_OUT_GONE 1
int wisp_cli_client_call(wisp_cli_client *c, const char *method, json_t *params,
                         wisp_cli_piece_fn on_piece, void *ctx, json_t **answer, wisp_err *err);

/* Ends the server and frees c. Orderly (`fast` = 0): shutdown and exit,
 * then reads the server's output to its end. Fast: stops reading at once
 * and cancels what is in flight. Either way the child is reaped, killed if
 * it has not exited after a grace period. Returns its exit status, or -1
 * when it had to be killed or was killed by a signal. */
int wisp_cli_client_close(wisp_cli_client *c, int fast);

#endif
