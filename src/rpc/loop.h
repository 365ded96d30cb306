/*
 * loop.h - the sidecar: libev on the main thread, the engine on its own.
 *
 * Reads stdin, frames and dispatches messages, runs engine work on the
 * worker thread, writes stdout through the output queue, and follows the
 * lifecycle: stdin EOF (or SIGTERM/SIGINT) stops reading, lets requests in
 * flight finish, flushes and exits 0; `exit` exits 0 after shutdown and 1
 * otherwise; a second signal exits at once with 1.
 */
#ifndef WISP_RPC_LOOP_H
#define WISP_RPC_LOOP_H

#include "options.h"

/* Serves until the lifecycle ends; returns the process exit code. */
int wisp_loop_run(const wisp_options *opts);

#endif
