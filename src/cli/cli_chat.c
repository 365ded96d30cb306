/*
 * cli_chat.c - `wisp chat`: an interactive conversation (see cli.h).
 *
 * The conversation is kept here, as `chat` messages, and sent whole each
 * turn: the server renders it with the chat template and its prefix cache
 * makes the already-seen part cheap. A reply streams to stdout; Ctrl-C
 * cancels it (the partial reply stays in the conversation, as the user saw
 * it) and the prompt comes back. On a terminal, lines are read with
 * libedit (editing, history kept in $XDG_STATE_HOME/wisp/chat_history);
 * without one, plain lines from stdin, no prompt, no history, so the
 * command can be scripted. Notices (reset, system
 * prompt, errors) go to stderr, replies to stdout.
 */
#include <editline/readline.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/cli_client.h"
#include "cli/cli_gen.h"
#include "cli/cli_signal.h"

#define PROMPT        "> "
#define HISTORY_LINES 1000

typedef struct chat_session {
    const wisp_cli_args *a;
    wisp_cli_client *c;
    json_t *turns;          /* user and assistant messages, in order */
    char *system;           /* the system message, or NULL */
    char *template;         /* --chat-template-file's text, or NULL */
    int tty;                /* stdin is a terminal: libedit */
    char history[PATH_MAX]; /* the history file, "" for none */
} chat_session;

/* ------------------------------------------------------------ history */

/* Finds (and creates the folders of) the history file: under
 * $XDG_STATE_HOME, else ~/.local/state, as the XDG base directories say.
 * Without either, history stays in memory. */
static void history_open(chat_session *s)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX];
    int n;
    if (state && state[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/wisp", state);
    else if (home && *home)
        n = snprintf(dir, sizeof dir, "%s/.local/state/wisp", home);
    else
        return;
    if (n < 0 || (size_t)n >= sizeof dir - sizeof "/chat_history")
        return;
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return;
    size_t len = strlen(dir);
    memcpy(s->history, dir, len);
    memcpy(s->history + len, "/chat_history", sizeof "/chat_history");
    stifle_history(HISTORY_LINES);
    read_history(s->history); /* none yet is fine */
}

static void history_save(chat_session *s)
{
    if (s->history[0] && write_history(s->history) != 0)
        fprintf(stderr, "wisp chat: cannot save the history to %s\n", s->history);
}

/* ------------------------------------------------------------ input */

typedef enum line_kind {
    LINE_TEXT,
    LINE_INTERRUPTED,
    LINE_EOF
} line_kind;

/* Reads one line (without its newline) into *out (freed by the caller). */
static line_kind read_line(chat_session *s, char **out)
{
    *out = NULL;
    unsigned presses = wisp_cli_sigint_count();
    if (s->tty) {
        /* A Ctrl-C makes libedit's read fail (our handler has no
         * SA_RESTART), and readline returns NULL as at end of input: the
         * press count tells the two apart. */
        char *line = readline(PROMPT);
        if (wisp_cli_sigint_count() != presses) {
            wisp_cli_sigint_drain();
            free(line);
            fputc('\n', stdout);
            fflush(stdout);
            return LINE_INTERRUPTED;
        }
        if (!line)
            return LINE_EOF;
        *out = line;
        return LINE_TEXT;
    }
    size_t cap = 0;
    ssize_t n = getline(out, &cap, stdin);
    if (n < 0) {
        int interrupted = errno == EINTR && wisp_cli_sigint_count() != presses;
        free(*out);
        *out = NULL;
        clearerr(stdin);
        wisp_cli_sigint_drain();
        return interrupted ? LINE_INTERRUPTED : LINE_EOF;
    }
    if (n > 0 && (*out)[n - 1] == '\n')
        (*out)[--n] = '\0';
    if (n > 0 && (*out)[n - 1] == '\r')
        (*out)[--n] = '\0';
    return LINE_TEXT;
}

/* ------------------------------------------------------------ commands */

static const char chat_help[] =
    "/reset        start a new conversation (the system message stays)\n"
    "/system TEXT  set the system message (/system alone removes it)\n"
    "/help         this list\n"
    "Ctrl-C interrupts a reply (at the prompt it clears the line); Ctrl-D quits.\n";

/* Runs a /command. Returns 0, or -1 for an unknown one. */
static int run_command(chat_session *s, const char *line)
{
    const char *arg = line + strcspn(line, " \t");
    size_t nlen = (size_t)(arg - line);
    arg += strspn(arg, " \t");
    if (nlen == 6 && !strncmp(line, "/reset", 6)) {
        json_array_clear(s->turns);
        fprintf(stderr, "(new conversation)\n");
    } else if (nlen == 7 && !strncmp(line, "/system", 7)) {
        free(s->system);
        s->system = *arg ? strdup(arg) : NULL;
        if (*arg && !s->system)
            fprintf(stderr, "wisp chat: out of memory\n");
        else if (s->system)
            fprintf(stderr, "(system message set: %s)\n", s->system);
        else
            fprintf(stderr, "(system message removed)\n");
    } else if (nlen == 5 && !strncmp(line, "/help", 5)) {
        fputs(chat_help, stderr);
    } else {
        fprintf(stderr, "wisp chat: unknown command '%.*s' (see /help)\n", (int)nlen, line);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ turns */

static json_t *message(const char *role, const char *content, size_t len)
{
    return json_pack("{s:s, s:s%}", "role", role, "content", content, len);
}

static json_t *turn_params(const chat_session *s, const char *user)
{
    json_t *p = json_deep_copy(s->a->params);
    json_t *msgs = json_array();
    if (!p || !msgs) {
        json_decref(p);
        json_decref(msgs);
        return NULL;
    }
    if (s->system)
        json_array_append_new(msgs, message("system", s->system, strlen(s->system)));
    size_t i;
    json_t *m;
    json_array_foreach(s->turns, i, m) json_array_append(msgs, m);
    json_array_append_new(msgs, message("user", user, strlen(user)));
    json_object_set_new(p, "messages", msgs);
    json_object_set_new(p, "add_generation_prompt", json_true());
    if (s->template)
        json_object_set_new(p, "template", json_string(s->template));
    return p;
}

/* One exchange. Returns -1 to keep going, or the exit status to end with. */
static int turn(chat_session *s, const char *user)
{
    json_t *params = turn_params(s, user);
    if (!params) {
        fprintf(stderr, "wisp chat: out of memory\n");
        return 1;
    }
    wisp_cli_gen g;
    wisp_cli_gen_status st = wisp_cli_gen_run(s->c, s->a, "chat", params, &g);
    if (st == WISP_CLI_GEN_OK || st == WISP_CLI_GEN_CANCELLED) {
        if (wisp_cli_out_write("\n", 1) < 0)
            st = WISP_CLI_GEN_OUT_CLOSED;
        /* The reply as the template should see it next turn: the parsed
         * message's content (reasoning set apart, as templates expect),
         * else the text shown (a cancelled reply). */
        json_t *content = json_object_get(json_object_get(g.result, "message"), "content");
        const char *text = json_is_string(content) ? json_string_value(content) : g.text;
        size_t len = json_is_string(content) ? json_string_length(content) : g.text_len;
        json_array_append_new(s->turns, message("user", user, strlen(user)));
        json_array_append_new(s->turns, message("assistant", text ? text : "", text ? len : 0));
    }
    wisp_cli_gen_free(&g);
    switch (st) {
    case WISP_CLI_GEN_OK:
    case WISP_CLI_GEN_CANCELLED:
    case WISP_CLI_GEN_FAILED: /* said why; the user may go on */ return -1;
    default: return wisp_cli_gen_exit_code(st);
    }
}

/* ------------------------------------------------------------ session */

static int chat_loop(chat_session *s)
{
    for (;;) {
        char *line;
        line_kind k = read_line(s, &line);
        if (k == LINE_EOF) {
            if (s->tty)
                fputc('\n', stdout);
            return 0;
        }
        if (k == LINE_INTERRUPTED)
            continue;
        const char *p = line + strspn(line, " \t");
        int rc = -1;
        if (*p) {
            if (s->tty)
                add_history(line);
            if (*p == '/')
                run_command(s, p);
            else
                rc = turn(s, line);
        }
        free(line);
        if (rc >= 0)
            return rc;
    }
}

int wisp_cmd_chat(int argc, char **argv)
{
    wisp_cli_args a;
    wisp_err err = {0};
    if (wisp_cli_args_parse(&a, WISP_CLI_CHAT, argc, argv, &err) == 0 && !a.help &&
        a.n_positional > 0)
        wisp_err_set(&err, WISP_E_INVALID, "takes no arguments, got '%s' (see wisp chat --help)",
                     a.positional[0]);
    if (err.code) {
        fprintf(stderr, "wisp chat: %s\n", err.msg);
        wisp_cli_args_free(&a);
        return 2;
    }
    if (a.help) {
        wisp_cli_args_usage(&a, stdout);
        wisp_cli_args_free(&a);
        return 0;
    }
    /* The server would say so too, but only once the first message is
     * typed: a missing model is worth saying before the prompt. */
    if (access(a.model, R_OK) != 0) {
        fprintf(stderr, "wisp chat: cannot open %s: %s\n", a.model, strerror(errno));
        wisp_cli_args_free(&a);
        return 1;
    }
    chat_session s = {.a = &a, .tty = isatty(STDIN_FILENO)};
    size_t tlen;
    if (a.template_file && wisp_cli_read_file(a.template_file, &s.template, &tlen, &err) < 0) {
        fprintf(stderr, "wisp chat: %s\n", err.msg);
        wisp_cli_args_free(&a);
        return 1;
    }
    s.system = a.system ? strdup(a.system) : NULL;
    s.turns = json_array();
    /* The server loads the model while the user types the first line. */
    if (!s.turns || wisp_cli_signal_init() < 0 ||
        wisp_cli_client_start(&s.c, a.server_argv, &err) < 0) {
        fprintf(stderr, "wisp chat: %s\n", err.code ? err.msg : "cannot start");
        json_decref(s.turns);
        free(s.system);
        free(s.template);
        wisp_cli_args_free(&a);
        return 1;
    }
    if (s.tty) {
        /* Our SIGINT handler stays in charge inside readline. */
        rl_catch_signals = 0;
        history_open(&s);
        fprintf(stderr, "wisp chat: %s (/help for commands, Ctrl-D to quit)\n", a.model);
    }
    int rc = chat_loop(&s);
    wisp_cli_client_close(s.c, rc != 0);
    if (s.tty) {
        history_save(&s);
        clear_history();
    }
    json_decref(s.turns);
    free(s.system);
    free(s.template);
    wisp_cli_args_free(&a);
    return rc;
}
