/*
 * cli_gen.h - one generation request of a shell command, start to end.
 *
 * `run`, `complete` and each turn of `chat` do the same thing: send a
 * generate-like request, write its `$/stream` pieces to stdout as they
 * come, write whatever of the final text the pieces did not carry (a
 * cancelled answer's data holds the whole partial output), report timings
 * with -v, and turn the outcome into a message and a status. The status
 * maps to the exit code through wisp_cli_gen_exit_code.
 */
#ifndef WISP_CLI_GEN_H
#define WISP_CLI_GEN_H

#include <jansson.h>

#include "cli/cli_args.h"
#include "cli/cli_client.h"

typedef enum wisp_cli_gen_status {
    WISP_CLI_GEN_OK = 0,     /* answered with a result */
    WISP_CLI_GEN_CANCELLED,  /* Ctrl-C: answered -32800, partial output printed */
    WISP_CLI_GEN_NO_METHOD,  /* the server does not know the method (-32601) */
    WISP_CLI_GEN_BAD_PARAMS, /* -32602: a flag's value the server refuses */
    WISP_CLI_GEN_FAILED,     /* another error answer; the server goes on */
    WISP_CLI_GEN_OUT_CLOSED, /* stdout's reader went away: end now, quietly */
    WISP_CLI_GEN_LOST,       /* the server died, a pipe failed, or a second Ctrl-C */
} wisp_cli_gen_status;

typedef struct wisp_cli_gen {
    json_t *answer;   /* the response object (owned), NULL when none came */
    const char *text; /* the output text: the result's, or the partial one */
    size_t text_len;
    json_t *result; /* the result object (borrowed from answer), or NULL */
} wisp_cli_gen;

/* Sends method(params) (steals params) on c and prints as a->json says:
 * the streamed text, or (--json) the result object, or for a cancelled
 * request its error object, on one line. Messages go to stderr prefixed
 * with "wisp <command>:". Fills *g (free with wisp_cli_gen_free). */
wisp_cli_gen_status wisp_cli_gen_run(wisp_cli_client *c, const wisp_cli_args *a, const char *method,
                                     json_t *params, wisp_cli_gen *g);

void wisp_cli_gen_free(wisp_cli_gen *g);

/* 0 for OK, CANCELLED and OUT_CLOSED; 2 for BAD_PARAMS; 1 otherwise. */
int wisp_cli_gen_exit_code(wisp_cli_gen_status st);

/* Whether the client is still usable after st (else close it fast). */
int wisp_cli_gen_client_usable(wisp_cli_gen_status st);

#endif
