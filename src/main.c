/*
 * main.c - the wisp program: subcommands, command line, exit codes.
 *
 * `wisp [options]` serves JSON-RPC on stdin/stdout: it wires the
 * application (serve/, wisp's methods and engine) into the transport
 * (rpc/loop.c), which knows no method of its own. Other subcommands
 * (`wisp run`, `wisp chat`, `wisp complete`, `wisp bench`) dispatch from
 * the table below by their first argument and return the exit status this
 * file returns. This is the only file that decides the exit code: 0 on a
 * clean end, 1 on a failure, 2 on a bad command line.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "common/log.h"
#include "options.h"
#include "rpc/loop.h"
#include "serve/server.h"
#include "serve/version.h"

/* A subcommand gets argv after its own name (argv[0] is the subcommand). */
typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static void print_commands(void);

static int serve(int argc, char **argv, int first)
{
    wisp_options opts;
    wisp_options_defaults(&opts);
    wisp_err err = {0};
    int st = wisp_options_parse(&opts, argc, argv, first, &err);
    if (st < 0) {
        fprintf(stderr, "wisp: %s\n", err.msg);
        return 2;
    }
    if (st == WISP_OPTIONS_HELP) {
        fputs(wisp_options_usage(), stdout);
        print_commands();
        return 0;
    }
    if (st == WISP_OPTIONS_VERSION) {
        printf("wisp %s (protocol %s)\n", WISP_VERSION, WISP_PROTOCOL_VERSION);
        return 0;
    }
    wisp_log_set_level(opts.log_level);
    wisp_server server;
    wisp_server_init(&server, &opts);
    wisp_app app = wisp_serve_app(&server);
    wisp_loop_config cfg = {
        .in_fd = STDIN_FILENO,
        .out_fd = STDOUT_FILENO,
        .max_message_bytes = opts.max_message_bytes,
    };
    int rc = wisp_loop_run(&cfg, &app);
    wisp_server_free(&server);
    return rc;
}

static const subcommand subcommands[] = {
    {"run", wisp_cmd_run, "generate from a prompt (arguments or stdin), streamed to stdout"},
    {"chat", wisp_cmd_chat, "an interactive conversation through the model's chat template"},
    {"complete", wisp_cmd_complete, "fill in the middle at FILE:LINE:COL with a FIM model"},
    {"bench", wisp_cmd_bench, "prefill and decode tokens/s of a model, like llama-bench"},
    {NULL, NULL, NULL},
};

static void print_commands(void)
{
    printf("\ncommands (wisp COMMAND --help for their flags):\n");
    for (const subcommand *s = subcommands; s->name; s++)
        printf("  wisp %-9s %s\n", s->name, s->summary);
}

int main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] != '-') {
        for (const subcommand *s = subcommands; s->name; s++)
            if (strcmp(argv[1], s->name) == 0)
                return s->run(argc - 1, argv + 1);
        fprintf(stderr, "wisp: unknown command '%s' (see wisp --help)\n", argv[1]);
        return 2;
    }
    return serve(argc, argv, 1);
}
