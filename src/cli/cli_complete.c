/*
 * cli_complete.c - `wisp complete`: one fill-in-the-middle from the shell
 * (see cli.h).
 *
 * FILE:LINE:COL is split from the right, so a file name may hold colons.
 * Lines and columns are 1-based; a column counts UTF-8 characters (so the
 * position never splits one), and may be one past the line's end. The
 * prefix is the file before the position, the suffix the rest, and the
 * file's name goes with them (repository-level FIM formats show it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/cli_client.h"
#include "cli/cli_gen.h"
#include "cli/cli_signal.h"

typedef struct position {
    char *file;
    long line, col;
} position;

static int parse_number(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1)
        return -1;
    *out = v;
    return 0;
}

/* Splits FILE:LINE:COL (pos->file is a copy the caller frees). */
static int parse_position(const char *spec, position *pos, wisp_err *err)
{
    const char *c2 = strrchr(spec, ':');
    const char *c1 = NULL;
    for (size_t i = c2 ? (size_t)(c2 - spec) : 0; i > 0; i--)
        if (spec[i - 1] == ':') {
            c1 = spec + i - 1;
            break;
        }
    if (!c1 || c1 == spec)
        return wisp_err_set(err, WISP_E_INVALID, "'%s' is not FILE:LINE:COL", spec);
    char num[32];
    size_t n = (size_t)(c2 - c1 - 1);
    if (n >= sizeof num)
        return wisp_err_set(err, WISP_E_INVALID, "'%s': LINE is not a number", spec);
    memcpy(num, c1 + 1, n);
    num[n] = '\0';
    if (parse_number(num, &pos->line) < 0)
        return wisp_err_set(err, WISP_E_INVALID, "'%s': LINE must be an integer >= 1", spec);
    if (parse_number(c2 + 1, &pos->col) < 0)
        return wisp_err_set(err, WISP_E_INVALID, "'%s': COL must be an integer >= 1", spec);
    pos->file = strndup(spec, (size_t)(c1 - spec));
    if (!pos->file)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    return 0;
}

/* The byte offset of pos in text, or <0 with err when it is past the
 * file's lines or past the line's end. */
static int locate(const char *text, size_t len, const position *pos, size_t *off, wisp_err *err)
{
    size_t i = 0;
    long line = 1;
    while (line < pos->line) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (!nl) {
            return wisp_err_set(err, WISP_E_INVALID, "%s has %ld line%s, there is no line %ld",
                                pos->file, line, line == 1 ? "" : "s", pos->line);
        }
        i = (size_t)(nl - text) + 1;
        line++;
    }
    long col = 1;
    while (col < pos->col) {
        if (i >= len || text[i] == '\n')
            return wisp_err_set(err, WISP_E_INVALID,
                                "%s:%ld has %ld character%s, column %ld is past its end (at most "
                                "%ld)",
                                pos->file, pos->line, col - 1, col == 2 ? "" : "s", pos->col, col);
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
            i++; /* continuation bytes belong to the character just passed */
        col++;
    }
    *off = i;
    return 0;
}

int wisp_cmd_complete(int argc, char **argv)
{
    wisp_cli_args a;
    wisp_err err = {0};
    if (wisp_cli_args_parse(&a, WISP_CLI_COMPLETE, argc, argv, &err) == 0 && !a.help &&
        a.n_positional != 1)
        wisp_err_set(&err, WISP_E_INVALID,
                     "needs exactly one FILE:LINE:COL (see wisp complete --help)");
    position pos = {0};
    if (!err.code && !a.help && parse_position(a.positional[0], &pos, &err) < 0)
        err.code = WISP_E_INVALID;
    if (err.code) {
        fprintf(stderr, "wisp complete: %s\n", err.msg);
        free(pos.file);
        wisp_cli_args_free(&a);
        return 2;
    }
    if (a.help) {
        wisp_cli_args_usage(&a, stdout);
        wisp_cli_args_free(&a);
        return 0;
    }
    char *text = NULL;
    size_t len = 0, off = 0;
    json_t *params = NULL;
    if (wisp_cli_read_file(pos.file, &text, &len, &err) == 0 &&
        locate(text, len, &pos, &off, &err) < 0) {
        /* A position outside the file is a bad command line. */
        fprintf(stderr, "wisp complete: %s\n", err.msg);
        free(text);
        free(pos.file);
        wisp_cli_args_free(&a);
        return 2;
    }
    if (!err.code) {
        params = json_deep_copy(a.params);
        if (params) {
            json_object_set_new(params, "input_prefix", json_stringn(text, off));
            json_object_set_new(params, "input_suffix", json_stringn(text + off, len - off));
            json_object_set_new(params, "filename", json_string(pos.file));
        } else {
            wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        }
    }
    free(text);
    free(pos.file);
    wisp_cli_client *c = NULL;
    if (params &&
        (wisp_cli_signal_init() < 0 || wisp_cli_client_start(&c, a.server_argv, &err) < 0)) {
        if (!err.code)
            wisp_err_set(&err, WISP_E_IO, "cannot install the Ctrl-C handler");
        json_decref(params);
        params = NULL;
    }
    if (!params) {
        fprintf(stderr, "wisp complete: %s\n", err.msg);
        wisp_cli_args_free(&a);
        return 1;
    }
    wisp_cli_gen g;
    wisp_cli_gen_status st = wisp_cli_gen_run(c, &a, "infill", params, &g);
    if (!a.json && g.text && isatty(STDOUT_FILENO) && wisp_cli_gen_client_usable(st))
        wisp_cli_out_write("\n", 1);
    wisp_cli_gen_free(&g);
    wisp_cli_client_close(c, !wisp_cli_gen_client_usable(st));
    wisp_cli_args_free(&a);
    return wisp_cli_gen_exit_code(st);
}
