/*
 * cli_args.c - the flag table of the shell commands (see cli_args.h).
 */
#include "cli/cli_args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

typedef enum arg_kind {
    ARG_MODEL,      /* the model path */
    ARG_INT,        /* integer request param */
    ARG_NUM,        /* number request param */
    ARG_STRS,       /* repeatable string, collected into an array param */
    ARG_SERVER_INT, /* integer flag passed to the server child */
    ARG_SERVER_STR, /* string flag passed to the server child */
    ARG_SERVER_ON,  /* switch passed to the server child as it is */
    ARG_FLAG,       /* sets an int field of wisp_cli_args */
    ARG_STR,        /* sets a string field of wisp_cli_args */
    ARG_HELP,
} arg_kind;

typedef struct cli_flag {
    const char *shrt, *lng;
    arg_kind kind;
    const char *target; /* request param, or server flag */
    size_t field;       /* offsetof(wisp_cli_args, ...) for ARG_FLAG/ARG_STR */
    int commands;       /* WISP_CLI_* that take it */
    const char *metavar;
    const char *help;
} cli_flag;

#define ALL      (WISP_CLI_RUN | WISP_CLI_CHAT | WISP_CLI_COMPLETE)
#define F(field) offsetof(wisp_cli_args, field)

static const cli_flag flags[] = {
    {"-m", "--model", ARG_MODEL, NULL, 0, ALL, "PATH",
     "the model: a GGUF file or a Hugging Face directory (required)"},
    {"-n", "--max-tokens", ARG_INT, "max_tokens", 0, ALL, "N",
     "tokens to generate at most (default 256)"},
    {NULL, "--temp", ARG_NUM, "temperature", 0, ALL, "T", "temperature; 0 = greedy (default 0.8)"},
    {NULL, "--top-k", ARG_INT, "top_k", 0, ALL, "N", "top-k sampling; 0 = off (default 40)"},
    {NULL, "--top-p", ARG_NUM, "top_p", 0, ALL, "P", "top-p sampling; 1 = off (default 0.95)"},
    {NULL, "--min-p", ARG_NUM, "min_p", 0, ALL, "P", "min-p sampling; 0 = off (default 0.05)"},
    {NULL, "--repeat-penalty", ARG_NUM, "repeat_penalty", 0, ALL, "F",
     "repetition penalty; 1 = off (default 1)"},
    {NULL, "--seed", ARG_INT, "seed", 0, ALL, "N", "sampling seed (default random)"},
    {NULL, "--stop", ARG_STRS, "stop", 0, ALL, "TEXT", "stop before TEXT (repeatable)"},
    {"-t", "--threads", ARG_SERVER_INT, "--threads", 0, ALL, "N",
     "CPU threads (default the physical cores)"},
    {"-c", "--ctx-size", ARG_SERVER_INT, "--ctx", 0, ALL, "N",
     "context length (default the model's)"},
    {NULL, "--device", ARG_SERVER_STR, "--device", 0, ALL, "D", "auto, cpu or cuda (default auto)"},
    {NULL, "--f16-as-bf16", ARG_SERVER_ON, "--f16-as-bf16", 0, ALL, NULL,
     "CPU: compute F16 weights in BF16 (faster prompts, lossy; see wisp --help)"},
    {NULL, "--chat", ARG_FLAG, NULL, F(chat), WISP_CLI_RUN, NULL,
     "send the prompt as a user message through the chat template"},
    {NULL, "--chat-template-file", ARG_STR, NULL, F(template_file), WISP_CLI_RUN | WISP_CLI_CHAT,
     "FILE", "a Jinja chat template instead of the model's"},
    {"-sys", "--system-prompt", ARG_STR, NULL, F(system), WISP_CLI_RUN | WISP_CLI_CHAT, "TEXT",
     "a system message before the conversation"},
    {NULL, "--json", ARG_FLAG, NULL, F(json), WISP_CLI_RUN | WISP_CLI_COMPLETE, NULL,
     "print the result object (JSON) instead of the text"},
    {"-v", "--verbose", ARG_FLAG, NULL, F(verbose), ALL, NULL,
     "timings and the server's log on stderr"},
    {"-h", "--help", ARG_HELP, NULL, 0, ALL, NULL, "this help"},
};

#define N_FLAGS (sizeof flags / sizeof flags[0])

static const struct {
    int command;
    const char *synopsis;
    const char *about;
} commands[] = {
    {WISP_CLI_RUN, "wisp run -m MODEL [options] [PROMPT...]",
     "Generates from PROMPT (the arguments joined by spaces, or stdin when there are\n"
     "none) and streams the text to stdout. Ctrl-C stops and keeps what was generated.\n"},
    {WISP_CLI_CHAT, "wisp chat -m MODEL [options]",
     "An interactive conversation through the model's chat template. Commands:\n"
     "/reset (new conversation), /system TEXT (system message), /help. Ctrl-C\n"
     "interrupts a reply, Ctrl-D quits. Without a terminal, reads one message a line.\n"},
    {WISP_CLI_COMPLETE, "wisp complete -m MODEL [options] FILE:LINE:COL",
     "Fills in the middle at LINE:COL of FILE (1-based; COL counts characters)\n"
     "with a FIM model and prints the completion to stdout.\n"},
};

static const char *command_name(int command)
{
    return command == WISP_CLI_RUN ? "run" : command == WISP_CLI_CHAT ? "chat" : "complete";
}

void wisp_cli_args_usage(const wisp_cli_args *a, FILE *f)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (commands[i].command != a->command)
            continue;
        fprintf(f, "usage: %s\n%s", commands[i].synopsis, commands[i].about);
    }
    for (size_t i = 0; i < N_FLAGS; i++) {
        const cli_flag *fl = &flags[i];
        if (!(fl->commands & a->command))
            continue;
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", fl->shrt ? fl->shrt : "", fl->shrt ? ", " : "",
                 fl->lng, fl->metavar ? " " : "", fl->metavar ? fl->metavar : "");
        fprintf(f, "  %-30s %s\n", left, fl->help);
    }
}

/* ------------------------------------------------------------ values */

static int parse_int(const char *flag, const char *s, long long *out, wisp_err *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return wisp_err_set(err, WISP_E_INVALID, "%s needs an integer, got '%s'", flag, s);
    *out = v;
    return 0;
}

static int parse_num(const char *flag, const char *s, double *out, wisp_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return wisp_err_set(err, WISP_E_INVALID, "%s needs a number, got '%s'", flag, s);
    *out = v;
    return 0;
}

static int push_server(wisp_cli_args *a, int *n, char *s, wisp_err *err)
{
    if (*n >= WISP_CLI_MAX_SERVER_ARGS - 1)
        return wisp_err_set(err, WISP_E_INVALID, "too many server flags");
    a->server_argv[(*n)++] = s;
    a->server_argv[*n] = NULL;
    return 0;
}

static int apply(wisp_cli_args *a, const cli_flag *fl, const char *flag, char *v, int *n_server,
                 wisp_err *err)
{
    long long iv = 0;
    double dv = 0;
    switch (fl->kind) {
    case ARG_MODEL: a->model = v; return 0;
    case ARG_INT:
        if (parse_int(flag, v, &iv, err) < 0)
            return WISP_E_INVALID;
        json_object_set_new(a->params, fl->target, json_integer(iv));
        return 0;
    case ARG_NUM:
        if (parse_num(flag, v, &dv, err) < 0)
            return WISP_E_INVALID;
        json_object_set_new(a->params, fl->target, json_real(dv));
        return 0;
    case ARG_STRS: {
        json_t *arr = json_object_get(a->params, fl->target);
        if (!arr) {
            arr = json_array();
            json_object_set_new(a->params, fl->target, arr);
        }
        json_array_append_new(arr, json_string(v));
        return 0;
    }
    case ARG_SERVER_INT:
        if (parse_int(flag, v, &iv, err) < 0)
            return WISP_E_INVALID;
        /* fall through */
    case ARG_SERVER_STR:
        if (push_server(a, n_server, (char *)fl->target, err) < 0 ||
            push_server(a, n_server, v, err) < 0)
            return WISP_E_INVALID;
        return 0;
    case ARG_SERVER_ON:
        return push_server(a, n_server, (char *)fl->target, err) < 0 ? WISP_E_INVALID : 0;
    case ARG_FLAG: *(int *)((char *)a + fl->field) = 1; return 0;
    case ARG_STR: *(const char **)((char *)a + fl->field) = v; return 0;
    case ARG_HELP: a->help = 1; return 0;
    }
    return wisp_err_set(err, WISP_E_INTERNAL, "flag %s has no kind", flag);
}

static int takes_value(const cli_flag *fl)
{
    return fl->kind != ARG_FLAG && fl->kind != ARG_SERVER_ON && fl->kind != ARG_HELP;
}

/* ------------------------------------------------------------ parsing */

int wisp_cli_args_parse(wisp_cli_args *a, int command, int argc, char **argv, wisp_err *err)
{
    memset(a, 0, sizeof *a);
    a->command = command;
    a->name = command_name(command);
    a->params = json_object();
    a->positional = calloc((size_t)argc + 1, sizeof *a->positional);
    if (!a->params || !a->positional)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    /* The server's own flags come after these; -v shows its log. */
    char *fixed[] = {"wisp", "--log-level", "error", "--model", NULL};
    int n_server = 0;
    for (int i = 0; fixed[i]; i++)
        push_server(a, &n_server, fixed[i], err);
    int model_slot = n_server;
    push_server(a, &n_server, "", err);

    int flags_done = 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (flags_done || arg[0] != '-' || !arg[1]) {
            a->positional[a->n_positional++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            flags_done = 1;
            continue;
        }
        char name[64];
        char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            return wisp_err_set(err, WISP_E_INVALID, "unknown flag '%s' (see wisp %s --help)", arg,
                                a->name);
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        const cli_flag *fl = NULL;
        for (size_t k = 0; k < N_FLAGS && !fl; k++)
            if ((flags[k].shrt && !strcmp(name, flags[k].shrt)) || !strcmp(name, flags[k].lng))
                fl = &flags[k];
        if (!fl || !(fl->commands & command))
            return wisp_err_set(err, WISP_E_INVALID, "unknown flag '%s' (see wisp %s --help)", name,
                                a->name);
        char *v = NULL;
        if (takes_value(fl)) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return wisp_err_set(err, WISP_E_INVALID, "%s needs a value (%s)", name,
                                    fl->metavar);
        } else if (eq) {
            return wisp_err_set(err, WISP_E_INVALID, "%s takes no value", name);
        }
        if (apply(a, fl, name, v, &n_server, err) < 0)
            return WISP_E_INVALID;
    }
    if (a->help)
        return 0;
    if (!a->model || !*a->model)
        return wisp_err_set(err, WISP_E_INVALID, "-m MODEL is required (see wisp %s --help)",
                            a->name);
    a->server_argv[model_slot] = (char *)a->model;
    if (a->verbose)
        a->server_argv[2] = "info";
    if (a->template_file && command == WISP_CLI_RUN && !a->chat)
        return wisp_err_set(err, WISP_E_INVALID, "--chat-template-file needs --chat");
    if (a->system && command == WISP_CLI_RUN && !a->chat)
        return wisp_err_set(err, WISP_E_INVALID, "--system-prompt needs --chat");
    return 0;
}

void wisp_cli_args_free(wisp_cli_args *a)
{
    json_decref(a->params);
    a->params = NULL;
    free(a->positional);
    a->positional = NULL;
}

/* ------------------------------------------------------------ files */

int wisp_cli_read_file(const char *path, char **out, size_t *len, wisp_err *err)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f)
        return wisp_err_set(err, WISP_E_IO, "cannot open %s: %s", path, strerror(errno));
    wisp_buf b = WISP_BUF_INIT;
    char chunk[4096];
    int rc = 0;
    for (;;) {
        size_t got = fread(chunk, 1, sizeof chunk, f);
        if (got > 0 && wisp_buf_append(&b, chunk, got) < 0) {
            rc = wisp_err_set(err, WISP_E_NOMEM, "out of memory reading %s", path ? path : "stdin");
            break;
        }
        if (got == 0) {
            if (ferror(f) && errno == EINTR) {
                clearerr(f);
                continue;
            }
            if (ferror(f))
                rc = wisp_err_set(err, WISP_E_IO, "reading %s: %s", path ? path : "stdin",
                                  strerror(errno));
            break;
        }
    }
    if (path)
        fclose(f);
    /* An empty input is still a string. */
    if (rc == 0 && !b.data && wisp_buf_append(&b, "", 0) < 0)
        rc = wisp_err_set(err, WISP_E_NOMEM, "out of memory reading %s", path ? path : "stdin");
    if (rc < 0) {
        wisp_buf_free(&b);
        return rc;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
