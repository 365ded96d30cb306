/*
 * loop.h - the sidecar: libev on the main thread, the engine on its own.
 *
 * Reads stdin, frames and dispatches messages, runs engine work on the
 * worker thread, writes stdout through the output queue, and follows the
 * lifecycle: stdin EOF (or SIGTERM/SIGINT) stops reading, lets requests in
 * flight finish, flushes and exits 0; `exit` exits 0 after shutdown and 1
 * otherwise; a second signal exits at once with 1.
 *
 * The loop knows no method: the application (app.h) supplies the method
 * table, the engine thread's step hook, startup and teardown.
 */
#ifndef WISP_RPC_LOOP_H
#define WISP_RPC_LOOP_H

#include <stddef.h>

#include "rpc/app.h"

/* Transport settings. */
typedef struct wisp_loop_config {
    int in_fd;                /* messages in (stdin) */
    int out_fd;               /* messages out (stdout) */
    size_t max_message_bytes; /* larger messages are skipped and answered -32600 */
} wisp_loop_config;

/* Serves app until the lifecycle ends; returns the process exit code. app
 * is copied; its ctx must outlive the call. */
int wisp_loop_run(const wisp_loop_config *cfg, const wisp_app *app);

#endif
