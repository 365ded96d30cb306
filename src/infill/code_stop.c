/*
 * code_stop.c - the n_indent, t_max_predict_ms and suffix_repeat rules as a
 * byte-at-a-time state machine over the streamed completion (see
 * code_stop.h for the rules).
 *
 * Two modes. Free: bytes are released as they come (the first line, or the
 * rest of a line already decided). Holding: from a newline on, bytes wait in
 * `held` while a rule can still cut there: blank lines, the indentation of
 * the next line, and then, while the line is still equal to the start of the
 * suffix's first line, the line itself. held always starts with that newline,
 * so every cut happens at the start of held and drops all of it. Chunk
 * boundaries do not matter: the state carries over between feeds.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "infill/code_stop.h"

struct wisp_code_stop {
    int32_t n_indent;
    int64_t t_max_ms, t_start_ms;
    char *target; /* the suffix's first non-blank line, trimmed; NULL: off */
    size_t tlen;
    bool hold_lines;

    bool done;
    size_t released; /* bytes released so far */
    wisp_buf held;   /* empty (free mode) or starting with "\n" */
    wisp_buf out;    /* this call's release */
    /* the held line being decided */
    size_t line_ws;    /* its leading whitespace so far */
    bool line_content; /* a non-blank byte seen */
    size_t match;      /* bytes of target matched; only blanks may follow all of it */
};

static const char *const k_reason_names[] = {
    [WISP_STOP_REASON_NONE] = "",
    [WISP_STOP_REASON_EOG] = "eog",
    [WISP_STOP_REASON_LENGTH] = "length",
    [WISP_STOP_REASON_STOP] = "stop",
    [WISP_STOP_REASON_N_INDENT] = "n_indent",
    [WISP_STOP_REASON_T_MAX_PREDICT_MS] = "t_max_predict_ms",
    [WISP_STOP_REASON_SUFFIX_REPEAT] = "suffix_repeat",
};

const char *wisp_stop_reason_name(wisp_stop_reason r)
{
    if ((unsigned)r < sizeof k_reason_names / sizeof k_reason_names[0])
        return k_reason_names[r];
    return "";
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The first line of s with a non-blank byte, without its surrounding blanks. */
static void first_line(const char *s, size_t n, const char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n')
            e++;
        size_t a = i, b = e;
        while (a < b && is_blank(s[a]))
            a++;
        while (b > a && is_blank(s[b - 1]))
            b--;
        if (b > a) {
            *line = s + a;
            *len = b - a;
            return;
        }
        i = e + 1;
    }
}

int wisp_code_stop_create(const wisp_code_stop_params *p, wisp_code_stop **out, wisp_err *err)
{
    *out = NULL;
    wisp_code_stop *cs = calloc(1, sizeof *cs);
    if (!cs)
        return wisp_err_set(err, WISP_E_NOMEM, "code stop: no memory");
    cs->n_indent = p->n_indent > 0 ? p->n_indent : 0;
    cs->t_max_ms = p->t_max_predict_ms > 0 ? p->t_max_predict_ms : 0;
    cs->t_start_ms = p->t_start_ms;
    const char *line;
    size_t len;
    first_line(p->suffix, p->suffix ? p->suffix_len : 0, &line, &len);
    if (line) {
        if (!(cs->target = malloc(len))) {
            free(cs);
            return wisp_err_set(err, WISP_E_NOMEM, "code stop: no memory");
        }
        memcpy(cs->target, line, len);
        cs->tlen = len;
    }
    cs->hold_lines = cs->n_indent > 0 || cs->tlen > 0;
    *out = cs;
    return 0;
}

void wisp_code_stop_free(wisp_code_stop *cs)
{
    if (!cs)
        return;
    free(cs->target);
    wisp_buf_free(&cs->held);
    wisp_buf_free(&cs->out);
    free(cs);
}

bool wisp_code_stop_done(const wisp_code_stop *cs) { return cs->done; }

/* ---------------------------------------------------------------- machine */

static int emit(wisp_code_stop *cs, const char *s, size_t n)
{
    if (wisp_buf_append(&cs->out, s, n))
        return WISP_E_NOMEM;
    cs->released += n;
    return 0;
}

static int release_held(wisp_code_stop *cs)
{
    if (emit(cs, cs->held.data, cs->held.len))
        return WISP_E_NOMEM;
    wisp_buf_clear(&cs->held);
    return 0;
}

static void new_line(wisp_code_stop *cs)
{
    cs->line_ws = 0;
    cs->line_content = false;
    cs->match = 0;
}

static int start_hold(wisp_code_stop *cs)
{
    if (wisp_buf_append(&cs->held, "\n", 1))
        return WISP_E_NOMEM;
    new_line(cs);
    return 0;
}

/* Ends the completion at the start of held, dropping held. */
static wisp_stop_reason fire(wisp_code_stop *cs, wisp_stop_reason r)
{
    cs->done = true;
    wisp_buf_clear(&cs->held);
    return r;
}

static bool deadline_passed(const wisp_code_stop *cs, int64_t now_ms)
{
    return cs->t_max_ms > 0 && now_ms - cs->t_start_ms >= cs->t_max_ms;
}

/* One byte in holding mode. Sets *r when a rule fires. */
static int hold_byte(wisp_code_stop *cs, char c, wisp_stop_reason *r)
{
    if (c == '\n') {
        if (!cs->line_content) { /* a blank line: keep waiting */
            new_line(cs);
            return wisp_buf_append(&cs->held, "\n", 1) ? WISP_E_NOMEM : 0;
        }
        /* still held with content: only while it matched the suffix line */
        if (cs->match == cs->tlen) {
            *r = fire(cs, WISP_STOP_REASON_SUFFIX_REPEAT);
            return 0;
        }
        return release_held(cs) || start_hold(cs) ? WISP_E_NOMEM : 0;
    }
    if (!cs->line_content) {
        if (is_blank(c)) {
            cs->line_ws++;
            return wisp_buf_append(&cs->held, &c, 1) ? WISP_E_NOMEM : 0;
        }
        cs->line_content = true;
        if (cs->n_indent > 0 && cs->line_ws < (size_t)cs->n_indent) {
            *r = fire(cs, WISP_STOP_REASON_N_INDENT);
            return 0;
        }
        if (cs->tlen == 0) /* no suffix rule: the line is decided */
            return release_held(cs) || emit(cs, &c, 1) ? WISP_E_NOMEM : 0;
    }
    if (cs->match < cs->tlen ? c == cs->target[cs->match] : is_blank(c)) {
        cs->match += cs->match < cs->tlen;
        return wisp_buf_append(&cs->held, &c, 1) ? WISP_E_NOMEM : 0;
    }
    /* the line differs from the suffix's: release it, back to free mode */
    return release_held(cs) || emit(cs, &c, 1) ? WISP_E_NOMEM : 0;
}

static void result(wisp_code_stop *cs, wisp_stop_reason r, wisp_code_stop_out *out)
{
    out->text = cs->out.len ? cs->out.data : "";
    out->len = cs->out.len;
    out->reason = r;
    out->cut = r != WISP_STOP_REASON_NONE ? cs->released : 0;
}

int wisp_code_stop_feed(wisp_code_stop *cs, const char *text, size_t len, int64_t now_ms,
                        wisp_code_stop_out *out, wisp_err *err)
{
    wisp_buf_clear(&cs->out);
    wisp_stop_reason r = WISP_STOP_REASON_NONE;
    bool late = deadline_passed(cs, now_ms);
    /* a held newline is the next one the client has not seen */
    if (!cs->done && late && cs->held.len)
        r = fire(cs, WISP_STOP_REASON_T_MAX_PREDICT_MS);
    int rc = 0;
    for (size_t i = 0; !cs->done && !rc && i < len; i++) {
        char c = text[i];
        if (cs->held.len) {
            rc = hold_byte(cs, c, &r);
        } else if (c != '\n') {
            /* free mode: copy the run up to the next newline at once */
            const char *nl = memchr(text + i, '\n', len - i);
            size_t run = nl ? (size_t)(nl - (text + i)) : len - i;
            rc = emit(cs, text + i, run);
            i += run - 1;
        } else if (late) {
            r = fire(cs, WISP_STOP_REASON_T_MAX_PREDICT_MS);
        } else if (cs->hold_lines) {
            rc = start_hold(cs);
        } else {
            rc = emit(cs, "\n", 1);
        }
    }
    if (rc)
        return wisp_err_set(err, WISP_E_NOMEM, "code stop: no memory");
    result(cs, r, out);
    return 0;
}

int wisp_code_stop_flush(wisp_code_stop *cs, wisp_code_stop_out *out, wisp_err *err)
{
    wisp_buf_clear(&cs->out);
    wisp_stop_reason r = WISP_STOP_REASON_NONE;
    if (!cs->done && cs->held.len) {
        if (cs->line_content && cs->tlen && cs->match == cs->tlen)
            r = fire(cs, WISP_STOP_REASON_SUFFIX_REPEAT);
        else if (release_held(cs))
            return wisp_err_set(err, WISP_E_NOMEM, "code stop: no memory");
    }
    result(cs, r, out);
    return 0;
}
