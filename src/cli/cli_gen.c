/*
 * cli_gen.c - one generation request of a shell command (see cli_gen.h).
 */
#include "cli/cli_gen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_signal.h"

#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS   (-32602)
#define RPC_CANCELLED        (-32800)

typedef struct stream_state {
    int print;      /* write the pieces (not with --json) */
    size_t printed; /* bytes written so far */
    int out_closed; /* stdout's reader has gone */
    int out_failed; /* another write error */
    int out_errno;
} stream_state;

static int note_write_error(stream_state *s)
{
    if (errno == EPIPE)
        s->out_closed = 1;
    else {
        s->out_failed = 1;
        s->out_errno = errno;
    }
    return -1;
}

static int on_piece(void *ctx, const char *text, size_t len)
{
    stream_state *s = ctx;
    if (!s->print)
        return 0;
    if (wisp_cli_out_write(text, len) < 0)
        return note_write_error(s);
    s->printed += len;
    return 0;
}

/* Writes what the final text has beyond the streamed bytes. The protocol
 * promises the pieces are a prefix of the answer's text; should they not
 * be, the text already shown stands and nothing is repeated. */
static int finish_text(stream_state *s, const char *text, size_t len)
{
    if (!s->print || len <= s->printed)
        return 0;
    if (wisp_cli_out_write(text + s->printed, len - s->printed) < 0)
        return note_write_error(s);
    s->printed = len;
    return 0;
}

static int print_json_line(stream_state *s, json_t *obj)
{
    char *dump = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!dump)
        return -1;
    int rc = wisp_cli_out_write(dump, strlen(dump));
    if (rc == 0)
        rc = wisp_cli_out_write("\n", 1);
    free(dump);
    return rc < 0 ? note_write_error(s) : 0;
}

static double num(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

static void print_timings(const wisp_cli_args *a, json_t *result)
{
    json_t *u = json_object_get(result, "usage"), *t = json_object_get(result, "timings");
    const char *fr = json_string_value(json_object_get(result, "finish_reason"));
    fprintf(stderr,
            "wisp %s: %.0f prompt tokens (%.0f cached), %.0f generated (%s); "
            "ttft %.1f ms, prefill %.1f tokens/s, decode %.1f tokens/s, total %.1f ms\n",
            a->name, num(u, "prompt_tokens"), num(u, "cached_tokens"), num(u, "completion_tokens"),
            fr ? fr : "?", num(t, "ttft_ms"), num(t, "prefill_tokens_per_s"),
            num(t, "decode_tokens_per_s"), num(t, "total_ms"));
}

static void take_text(wisp_cli_gen *g, json_t *holder)
{
    json_t *t = json_object_get(holder, "text");
    if (json_is_string(t)) {
        g->text = json_string_value(t);
        g->text_len = json_string_length(t);
    }
}

static wisp_cli_gen_status write_status(const wisp_cli_args *a, stream_state *s,
                                        wisp_cli_gen_status ok)
{
    if (s->out_closed)
        return WISP_CLI_GEN_OUT_CLOSED;
    if (s->out_failed) {
        fprintf(stderr, "wisp %s: writing to stdout: %s\n", a->name, strerror(s->out_errno));
        return WISP_CLI_GEN_LOST;
    }
    return ok;
}

wisp_cli_gen_status wisp_cli_gen_run(wisp_cli_client *c, const wisp_cli_args *a, const char *method,
                                     json_t *params, wisp_cli_gen *g)
{
    memset(g, 0, sizeof *g);
    stream_state s = {.print = !a->json};
    /* --json prints one object at the end: streaming would be wasted. */
    json_object_set_new(params, "stream", json_boolean(!a->json));
    wisp_err err = {0};
    int rc = wisp_cli_client_call(c, method, params, on_piece, &s, &g->answer, &err);
    if (rc == WISP_CLI_OUT_GONE)
        return write_status(a, &s, WISP_CLI_GEN_OUT_CLOSED);
    if (rc < 0) {
        fprintf(stderr, "wisp %s: %s\n", a->name, err.msg);
        return WISP_CLI_GEN_LOST;
    }
    json_t *result = json_object_get(g->answer, "result");
    if (result) {
        g->result = result;
        take_text(g, result);
        if (a->json ? print_json_line(&s, result) : finish_text(&s, g->text, g->text_len))
            return write_status(a, &s, WISP_CLI_GEN_OK);
        if (a->verbose)
            print_timings(a, result);
        return WISP_CLI_GEN_OK;
    }
    json_t *e = json_object_get(g->answer, "error");
    int code = (int)json_integer_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg)
        msg = "the server answered an error without a message";
    switch (code) {
    case RPC_CANCELLED:
        take_text(g, json_object_get(e, "data"));
        if (a->json ? print_json_line(&s, e) : finish_text(&s, g->text, g->text_len))
            return write_status(a, &s, WISP_CLI_GEN_CANCELLED);
        return WISP_CLI_GEN_CANCELLED;
    case RPC_METHOD_NOT_FOUND:
        fprintf(stderr, "wisp %s: this wisp server has no '%s' method (%s)\n", a->name, method,
                msg);
        return WISP_CLI_GEN_NO_METHOD;
    case RPC_INVALID_PARAMS:
        fprintf(stderr, "wisp %s: %s\n", a->name, msg);
        return WISP_CLI_GEN_BAD_PARAMS;
    default: fprintf(stderr, "wisp %s: %s\n", a->name, msg); return WISP_CLI_GEN_FAILED;
    }
}

void wisp_cli_gen_free(wisp_cli_gen *g)
{
    json_decref(g->answer);
    memset(g, 0, sizeof *g);
}

int wisp_cli_gen_exit_code(wisp_cli_gen_status st)
{
    switch (st) {
    case WISP_CLI_GEN_OK:
    case WISP_CLI_GEN_CANCELLED:
    case WISP_CLI_GEN_OUT_CLOSED: return 0;
    case WISP_CLI_GEN_BAD_PARAMS: return 2;
    default: return 1;
    }
}

int wisp_cli_gen_client_usable(wisp_cli_gen_status st)
{
    return st != WISP_CLI_GEN_OUT_CLOSED && st != WISP_CLI_GEN_LOST;
}
