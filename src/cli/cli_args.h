/*
 * cli_args.h - the command line of `wisp run`, `wisp chat`, `wisp complete`.
 *
 * One table of flags (cli_args.c) serves the three commands: each row says
 * which commands take it and where its value goes - a request param
 * (sampling, with llama.cpp's flag names), a flag of the server child, or
 * a field of wisp_cli_args. Values are checked for their type here; ranges
 * are the server's to check (its -32602 message names the param).
 */
#ifndef WISP_CLI_ARGS_H
#define WISP_CLI_ARGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

/* The commands, as a bit set for the table's rows. */
enum {
    WISP_CLI_RUN = 1,
    WISP_CLI_CHAT = 2,
    WISP_CLI_COMPLETE = 4,
};

#define WISP_CLI_MAX_SERVER_ARGS 16

typedef struct wisp_cli_args {
    int command;                                 /* one WISP_CLI_* */
    const char *name;                            /* "run", "chat", "complete" (for messages) */
    const char *model;                           /* -m PATH, required */
    json_t *params;                              /* the sampling params given, as request fields */
    char *server_argv[WISP_CLI_MAX_SERVER_ARGS]; /* argv of the server child */
    int verbose;               /* -v: timings and the server's info log to stderr */
    int json;                  /* --json: print the result object */
    int chat;                  /* --chat (run): through the chat template */
    const char *template_file; /* --chat-template-file FILE */
    const char *system;        /* -sys TEXT: a system message first */
    int help;                  /* -h: print the usage and stop */
    char **positional;         /* the other arguments, in order (into argv) */
    int n_positional;
} wisp_cli_args;

/* Parses argv[1..argc-1] of `command` (argv[0] is its name); `--` ends the
 * flags. Returns 0 (a->help tells whether to print the usage), or
 * WISP_E_INVALID with err naming the flag. Free with wisp_cli_args_free
 * either way. Strings point into argv. */
int wisp_cli_args_parse(wisp_cli_args *a, int command, int argc, char **argv, wisp_err *err);

void wisp_cli_args_free(wisp_cli_args *a);

/* Prints the usage of a's command (synopsis, then one line per flag). */
void wisp_cli_args_usage(const wisp_cli_args *a, FILE *f);

/* Reads a whole file (or stdin for NULL) into a NUL-terminated buffer the
 * caller frees. Returns 0 with *out and *len, or <0 with err. */
int wisp_cli_read_file(const char *path, char **out, size_t *len, wisp_err *err);

#endif
