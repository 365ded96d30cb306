/*
 * pipeline.c - detokenizer, stop matcher, filter and pieces of one
 * generation: see pipeline.h.
 *
 * text[0..len) is everything released; text[pend_from..len) and
 * tokens[tok_streamed..n) are what the next piece carries.
 */
#include "gen/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "gen/stop.h"

struct wisp_pipeline {
    const wisp_tokenizer *tok;
    wisp_stop *stop;
    wisp_detok_stream detok;
    wisp_pipe_filter filter;
    wisp_gen_emit_fn emit;
    void *emit_ud;
    wisp_buf text;
    size_t pend_from;
    wisp_tokens gen;
    size_t tok_streamed;
    int64_t index;
    const char *reason;
    bool ended; /* a rule ended the generation: release nothing more */
};

int wisp_pipeline_create(const wisp_pipeline_desc *d, wisp_pipeline **out, wisp_err *err)
{
    *out = NULL;
    wisp_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    p->tok = d->tok;
    p->filter = d->filter;
    p->emit = d->emit;
    p->emit_ud = d->emit_ud;
    wisp_detok_stream_init(&p->detok, d->tok, 0);
    int rc = wisp_stop_create(d->stops, d->n_stops, &p->stop, err);
    if (rc) {
        wisp_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void wisp_pipeline_free(wisp_pipeline *p)
{
    if (!p)
        return;
    wisp_stop_free(p->stop);
    wisp_detok_stream_free(&p->detok);
    wisp_tokens_free(&p->gen);
    wisp_buf_free(&p->text);
    free(p);
}

static int text_append(wisp_pipeline *p, const char *s, size_t n, wisp_err *err)
{
    if (wisp_buf_append(&p->text, s, n) < 0)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    return 0;
}

static void end_by_rule(wisp_pipeline *p, const char *why)
{
    p->ended = true;
    p->reason = why;
}

/* Text released by the stop matcher goes through the filter, if any. */
static int release(wisp_pipeline *p, const char *s, size_t n, wisp_err *err)
{
    if (p->ended || n == 0)
        return 0;
    if (!p->filter.feed)
        return text_append(p, s, n, err);
    const char *out = NULL, *why = NULL;
    size_t olen = 0;
    int rc = 0;
    if (p->filter.feed(p->filter.ud, s, n, &out, &olen, &why) == 0 && olen)
        rc = text_append(p, out, olen, err);
    if (why)
        end_by_rule(p, why);
    return rc;
}

/* End of generation: what the filter still holds is output now. */
static int release_filter_tail(wisp_pipeline *p, wisp_err *err)
{
    if (p->ended || !p->filter.flush)
        return 0;
    const char *out = NULL, *why = NULL;
    size_t olen = 0;
    int rc = 0;
    if (p->filter.flush(p->filter.ud, &out, &olen, &why) == 0 && olen)
        rc = text_append(p, out, olen, err);
    if (why)
        end_by_rule(p, why);
    return rc;
}

/* Emits what was released and not yet emitted. Mid-generation a piece
 * needs text; the last one goes out for its tokens alone too. Returns the
 * emitter's code (0 when there was nothing to emit). */
static int emit_pending(wisp_pipeline *p, bool final)
{
    if (!p->emit)
        return 0;
    size_t ntext = p->text.len - p->pend_from;
    size_t ntok = p->gen.n - p->tok_streamed;
    if (ntext == 0 && (!final || ntok == 0))
        return 0;
    wisp_gen_piece piece = {
        .index = p->index,
        .text = p->text.data ? p->text.data + p->pend_from : "",
        .len = ntext,
        .tokens = p->gen.ids + p->tok_streamed,
        .n_tokens = ntok,
        .token_from = p->tok_streamed,
    };
    /* A piece the emitter refused (the job was cancelled meanwhile, or
     * memory ran out) stays pending: the last emission offers it again,
     * so a cancel that lands mid-stream in the request's last step ends it
     * "cancelled" with the whole output, never a success whose text the
     * client's pieces do not add up to. */
    int rc = p->emit(p->emit_ud, &piece);
    if (rc == 0) {
        p->index++;
        p->pend_from = p->text.len;
        p->tok_streamed = p->gen.n;
    }
    return rc;
}

int wisp_pipeline_token(wisp_pipeline *p, int32_t token, bool *more, wisp_err *err)
{
    *more = false;
    if (wisp_tokens_push(&p->gen, token))
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    if (wisp_tokenizer_is_eog(p->tok, token) ||
        (p->filter.is_eog && p->filter.is_eog(p->filter.ud, token))) {
        end_by_rule(p, "eog");
        return 0;
    }
    const char *chunk;
    size_t clen;
    /* An id the tokenizer does not know (a model's padded vocabulary) is
     * output without text; only running out of memory ends the request. */
    int rc = wisp_detok_stream_feed(&p->detok, token, &chunk, &clen, err);
    if (rc == WISP_E_NOMEM)
        return rc;
    if (rc == 0 && clen) {
        wisp_stop_out so;
        if ((rc = wisp_stop_feed(p->stop, chunk, clen, &so, err)) ||
            (rc = release(p, so.text, so.len, err)))
            return rc;
        if (so.stop >= 0 && !p->ended) {
            /* Text before the stop string is output: let the filter
             * release what it held of it. */
            if ((rc = release_filter_tail(p, err)))
                return rc;
            if (!p->ended)
                end_by_rule(p, "stop");
        }
    }
    /* A refused piece stays pending (see emit_pending); the scheduler
     * sees the cancel itself at the step's end. */
    (void)emit_pending(p, false);
    *more = !p->ended;
    return 0;
}

int wisp_pipeline_end(wisp_pipeline *p, int status, wisp_err *err)
{
    if (status != 0)
        return status;
    if (!p->ended) {
        /* Ran out of tokens (or an eog token): what the matchers still hold
         * is real output now. */
        const char *chunk;
        size_t clen;
        wisp_stop_out so;
        int rc = wisp_detok_stream_flush(&p->detok, &chunk, &clen, err);
        if (!rc && clen && !(rc = wisp_stop_feed(p->stop, chunk, clen, &so, err)))
            rc = release(p, so.text, so.len, err);
        if (!rc && !p->ended && !(rc = wisp_stop_flush(p->stop, &so, err)))
            rc = release(p, so.text, so.len, err);
        if (!rc)
            rc = release_filter_tail(p, err);
        if (rc)
            return rc;
    }
    /* A cancel that raced the last piece: the client's pieces are a prefix
     * of the output, so the answer is "cancelled" with all of it, never a
     * success whose text the pieces do not add up to. */
    if (emit_pending(p, true) == WISP_E_CANCELLED)
        return WISP_E_CANCELLED;
    return 0;
}

const char *wisp_pipeline_text(const wisp_pipeline *p, size_t *len)
{
    if (len)
        *len = p->text.len;
    return p->text.data ? p->text.data : "";
}

const int32_t *wisp_pipeline_tokens(const wisp_pipeline *p, size_t *n)
{
    *n = p->gen.n;
    return p->gen.ids;
}

const char *wisp_pipeline_reason(const wisp_pipeline *p) { return p->reason; }
