/*
 * cli.h - the shell commands: `wisp run`, `wisp chat`, `wisp complete`.
 *
 * Each takes argv after the program name (argv[0] is the command's name)
 * and returns the process exit status for main() to return: 0 ok (a
 * Ctrl-C'd generation included: it printed what was generated), 1 a
 * failure, 2 a bad command line.
 */
#ifndef WISP_CLI_H
#define WISP_CLI_H

/* wisp run -m MODEL [flags] [PROMPT...]: one generation, streamed. */
int wisp_cmd_run(int argc, char **argv);

/* wisp chat -m MODEL [flags]: an interactive conversation. */
int wisp_cmd_chat(int argc, char **argv);

/* wisp complete -m MODEL [flags] FILE:LINE:COL: one infill. */
int wisp_cmd_complete(int argc, char **argv);

#endif
