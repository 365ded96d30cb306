/*
 * cli_run.c - `wisp run`: one generation from the shell (see cli.h).
 *
 * The prompt comes from the arguments (joined by spaces) or, when there
 * are none, from stdin less one final newline, read whole before the
 * server starts (so Ctrl-C while typing it just
 * ends the command). With --chat it is one user message of a `chat`
 * request (the model's template, or --chat-template-file's), else the
 * prompt of a `generate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/cli_client.h"
#include "cli/cli_gen.h"
#include "cli/cli_signal.h"

static char *join_words(char **words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        if (i)
            *p++ = ' ';
        memcpy(p, words[i], l);
        p += l;
    }
    *p = '\0';
    return s;
}

/* The params of the request, prompt included (steals a's sampling params'
 * copy). Returns NULL with err on a file error. */
static json_t *build_params(const wisp_cli_args *a, const char *prompt, size_t prompt_len,
                            wisp_err *err)
{
    json_t *p = json_deep_copy(a->params);
    if (!p) {
        wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        return NULL;
    }
    if (!a->chat) {
        json_object_set_new(p, "prompt", json_stringn(prompt, prompt_len));
        return p;
    }
    json_t *msgs = json_array();
    if (a->system)
        json_array_append_new(msgs,
                              json_pack("{s:s, s:s}", "role", "system", "content", a->system));
    json_array_append_new(msgs,
                          json_pack("{s:s, s:s%}", "role", "user", "content", prompt, prompt_len));
    json_object_set_new(p, "messages", msgs);
    if (a->template_file) {
        char *tpl;
        size_t tlen;
        if (wisp_cli_read_file(a->template_file, &tpl, &tlen, err) < 0) {
            json_decref(p);
            return NULL;
        }
        json_object_set_new(p, "template", json_stringn(tpl, tlen));
        free(tpl);
    }
    return p;
}

int wisp_cmd_run(int argc, char **argv)
{
    wisp_cli_args a;
    wisp_err err = {0};
    if (wisp_cli_args_parse(&a, WISP_CLI_RUN, argc, argv, &err) < 0) {
        fprintf(stderr, "wisp run: %s\n", err.msg);
        wisp_cli_args_free(&a);
        return 2;
    }
    if (a.help) {
        wisp_cli_args_usage(&a, stdout);
        wisp_cli_args_free(&a);
        return 0;
    }
    char *prompt = NULL;
    size_t prompt_len = 0;
    if (a.n_positional > 0) {
        prompt = join_words(a.positional, a.n_positional);
        prompt_len = prompt ? strlen(prompt) : 0;
        if (!prompt)
            wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
    } else if (wisp_cli_read_file(NULL, &prompt, &prompt_len, &err) == 0) {
        /* `echo TEXT | wisp run` means TEXT: the line's newline is not
         * part of the prompt (one is dropped, as `$(...)` would). */
        if (prompt_len > 0 && prompt[prompt_len - 1] == '\n')
            prompt[--prompt_len] = '\0';
    }
    json_t *params = prompt ? build_params(&a, prompt, prompt_len, &err) : NULL;
    free(prompt);
    if (!params) {
        fprintf(stderr, "wisp run: %s\n", err.msg);
        wisp_cli_args_free(&a);
        return 1;
    }
    wisp_cli_client *c = NULL;
    if (wisp_cli_signal_init() < 0 || wisp_cli_client_start(&c, a.server_argv, &err) < 0) {
        fprintf(stderr, "wisp run: %s\n", err.code ? err.msg : "cannot install the Ctrl-C handler");
        json_decref(params);
        wisp_cli_args_free(&a);
        return 1;
    }
    wisp_cli_gen g;
    wisp_cli_gen_status st = wisp_cli_gen_run(c, &a, a.chat ? "chat" : "generate", params, &g);
    /* A terminal gets its prompt back on a fresh line; a pipe gets exactly
     * the generated text. */
    if (!a.json && g.text && isatty(STDOUT_FILENO) && wisp_cli_gen_client_usable(st))
        wisp_cli_out_write("\n", 1);
    wisp_cli_gen_free(&g);
    wisp_cli_client_close(c, !wisp_cli_gen_client_usable(st));
    wisp_cli_args_free(&a);
    return wisp_cli_gen_exit_code(st);
}
