/*
 * test_pipeline.c - the text pipeline of a generation (gen/pipeline.h)
 * without a model, a scheduler or JSON: tokens of a known text go in one at
 * a time, and the pieces must add up to the output; stop strings, end-of-
 * generation tokens and a filter end it where they should; and a cancel
 * that lands while the last piece is emitted turns the outcome into
 * "cancelled" with the whole output, deterministically.
 *
 * The tokenizer is stories260K's (models/stories260K.gguf, in the tree).
 */
#include "harness.h"

#include "gen/pipeline.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#define STORY "Once upon a time, there was a little cat. It liked milk."

static wisp_tokenizer *load_tok(void)
{
    const char *path = "models/stories260K.gguf";
    if (access(path, R_OK) != 0)
        SKIP("fixture %s is missing (run from the repository root)", path);
    wisp_err err = {0};
    wisp_gguf *g = NULL;
    REQUIRE(wisp_gguf_open(path, &g, &err) == 0);
    wisp_tokenizer *tok = NULL;
    REQUIRE(wisp_tokenizer_from_gguf(g, &tok, &err) == 0);
    wisp_gguf_close(g);
    return tok;
}

static void tokens_of(const wisp_tokenizer *tok, const char *text, wisp_tokens *out)
{
    wisp_err err = {0};
    REQUIRE(wisp_tokenize(tok, text, strlen(text), false, false, out, &err) == 0);
    REQUIRE(out->n > 3);
}

/* Records what was emitted; from cancel_at on, answers as a cancelled job. */
typedef struct rec {
    char text[1024];
    size_t len;
    int32_t toks[256];
    size_t n_toks;
    int pieces, calls;
    int64_t next_index;
    int cancel_at; /* the call from which emission reports a cancel; -1 never */
    bool bad_order;
} rec;

static int rec_emit(void *ud, const wisp_gen_piece *pc)
{
    rec *r = ud;
    int call = r->calls++;
    if (r->cancel_at >= 0 && call >= r->cancel_at)
        return WISP_E_CANCELLED;
    if (pc->index != r->next_index++ || pc->token_from != r->n_toks)
        r->bad_order = true;
    REQUIRE(r->len + pc->len < sizeof r->text && r->n_toks + pc->n_tokens <= 256);
    memcpy(r->text + r->len, pc->text, pc->len);
    r->len += pc->len;
    r->text[r->len] = 0;
    memcpy(r->toks + r->n_toks, pc->tokens, pc->n_tokens * sizeof(int32_t));
    r->n_toks += pc->n_tokens;
    r->pieces++;
    return 0;
}

static wisp_pipeline *make(const wisp_tokenizer *tok, const char *const *stops, int n, rec *r,
                           const wisp_pipe_filter *f)
{
    wisp_pipeline_desc d = {.tok = tok,
                            .stops = stops,
                            .n_stops = n,
                            .emit = rec_emit,
                            .emit_ud = r};
    if (f)
        d.filter = *f;
    wisp_pipeline *p = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_pipeline_create(&d, &p, &err) == 0);
    return p;
}

/* Feeds every token; returns how many were fed before one ended it. */
static size_t feed_all(wisp_pipeline *p, const wisp_tokens *t)
{
    for (size_t i = 0; i < t->n; i++) {
        bool more = true;
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_pipeline_token(p, t->ids[i], &more, &err), 0);
        if (!more)
            return i + 1;
    }
    return t->n;
}

TEST(pieces_add_up_to_the_output)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    rec r = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, NULL, 0, &r, NULL);
    CHECK_EQ_INT(feed_all(p, &t), t.n);
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    size_t len, n;
    const char *text = wisp_pipeline_text(p, &len);
    const int32_t *ids = wisp_pipeline_tokens(p, &n);
    CHECK(wisp_pipeline_reason(p) == NULL);
    /* A continuation keeps SentencePiece's leading space. */
    CHECK(strcmp(text, " " STORY) == 0 || strcmp(text, STORY) == 0);
    CHECK_EQ_INT(len, strlen(text));
    CHECK(strcmp(r.text, text) == 0);
    CHECK_EQ_INT(n, t.n);
    CHECK_EQ_INT(r.n_toks, t.n);
    CHECK(memcmp(r.toks, t.ids, t.n * sizeof(int32_t)) == 0 && memcmp(ids, t.ids, n * 4) == 0);
    CHECK(r.pieces > 3);
    CHECK(!r.bad_order);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(a_stop_string_across_tokens_ends_and_is_cut)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    const char *stops[] = {"little c"};
    rec r = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, stops, 1, &r, NULL);
    size_t fed = feed_all(p, &t);
    CHECK(fed < t.n);
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    const char *text = wisp_pipeline_text(p, NULL);
    CHECK(strstr(text, "there was a ") != NULL);
    CHECK(strstr(text, "little") == NULL);
    CHECK(strcmp(wisp_pipeline_reason(p), "stop") == 0);
    CHECK(strcmp(r.text, text) == 0);
    /* Every token generated up to the stop is reported, text or not. */
    CHECK_EQ_INT(r.n_toks, fed);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(an_end_of_generation_token_ends_and_its_piece_has_only_tokens)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    int32_t eos = wisp_tokenizer_special(tok)->eos;
    REQUIRE(eos >= 0 && wisp_tokenizer_is_eog(tok, eos));
    rec r = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, NULL, 0, &r, NULL);
    bool more = true;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_token(p, t.ids[0], &more, &err), 0);
    CHECK(more);
    CHECK_EQ_INT(wisp_pipeline_token(p, eos, &more, &err), 0);
    CHECK(!more);
    int before = r.pieces;
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    CHECK_EQ_INT(r.pieces, before + 1);
    CHECK_EQ_INT(r.n_toks, 2);
    CHECK_EQ_INT(r.toks[1], eos);
    CHECK(strcmp(wisp_pipeline_reason(p), "eog") == 0);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

/* The race of a cancel landing while the last piece streams: the stop
 * matcher holds the output's tail ("milk." could begin "milk.!"), so the
 * last piece carries text; its emission finds the job cancelled. The
 * outcome must be "cancelled" with the whole output, and what the client
 * got must be a strict prefix of it. */
TEST(a_cancel_racing_the_last_piece_is_cancelled_with_the_whole_output)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    const char *stops[] = {"milk.!"};
    rec probe = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, stops, 1, &probe, NULL);
    CHECK_EQ_INT(feed_all(p, &t), t.n);
    int mid_calls = probe.calls;
    wisp_pipeline_free(p);

    rec r = {.cancel_at = mid_calls}; /* only the final emission is refused */
    p = make(tok, stops, 1, &r, NULL);
    CHECK_EQ_INT(feed_all(p, &t), t.n);
    CHECK(strstr(r.text, "milk") == NULL); /* held back until the end */
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), WISP_E_CANCELLED);
    const char *text = wisp_pipeline_text(p, NULL);
    CHECK(strstr(text, "It liked milk.") != NULL);
    CHECK(strncmp(text, r.text, r.len) == 0 && r.len < strlen(text));
    size_t n;
    wisp_pipeline_tokens(p, &n);
    CHECK_EQ_INT(n, t.n);
    CHECK_EQ_INT(r.calls, mid_calls + 1);
    wisp_pipeline_free(p);

    /* The same end without the cancel is a success. */
    rec ok = {.cancel_at = -1};
    p = make(tok, stops, 1, &ok, NULL);
    feed_all(p, &t);
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    CHECK(strcmp(ok.text, wisp_pipeline_text(p, NULL)) == 0);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

/* The same race without a stop string: the cancel lands while a piece
 * streams in the request's last step (its last token's piece, or one
 * before it with every later one refused too), and the scheduler then
 * ends the request by its length, a success for it. The refused pieces
 * must not be lost: the answer is "cancelled" with the whole output, and
 * the client's pieces are a strict prefix of it, with no gap in indexes. */
TEST(a_cancel_refusing_a_mid_stream_piece_is_cancelled_with_the_whole_output)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    rec probe = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, NULL, 0, &probe, NULL);
    CHECK_EQ_INT(feed_all(p, &t), t.n);
    const int mid_calls = probe.calls;
    wisp_pipeline_free(p);
    REQUIRE(mid_calls >= 2);
    const int cancel_ats[] = {mid_calls - 1, mid_calls / 2};
    for (size_t i = 0; i < sizeof cancel_ats / sizeof cancel_ats[0]; i++) {
        rec r = {.cancel_at = cancel_ats[i]};
        p = make(tok, NULL, 0, &r, NULL);
        CHECK_EQ_INT(feed_all(p, &t), t.n);
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), WISP_E_CANCELLED);
        const char *text = wisp_pipeline_text(p, NULL);
        CHECK(strncmp(text, r.text, r.len) == 0 && r.len < strlen(text));
        CHECK(!r.bad_order);
        CHECK_EQ_INT(r.pieces, cancel_ats[i]);
        wisp_pipeline_free(p);
    }
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(a_failed_generation_keeps_its_status_and_emits_nothing_more)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    const char *stops[] = {"milk.!"};
    rec r = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, stops, 1, &r, NULL);
    feed_all(p, &t);
    int calls = r.calls;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_end(p, WISP_E_DEVICE, &err), WISP_E_DEVICE);
    CHECK_EQ_INT(r.calls, calls);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

/* A filter that holds everything until flush, and ends the generation when
 * it sees a comma (returning the text before it). */
typedef struct hold {
    char buf[1024];
    size_t len;
    bool is_eog_called;
} hold;

static int hold_feed(void *ud, const char *s, size_t n, const char **out, size_t *olen,
                     const char **reason)
{
    hold *h = ud;
    REQUIRE(h->len + n < sizeof h->buf);
    memcpy(h->buf + h->len, s, n);
    h->len += n;
    char *comma = memchr(h->buf, ',', h->len);
    *olen = 0;
    if (comma) {
        *out = h->buf;
        *olen = (size_t)(comma - h->buf);
        *reason = "comma";
    }
    return 0;
}

static int hold_flush(void *ud, const char **out, size_t *olen, const char **reason)
{
    hold *h = ud;
    *out = h->buf;
    *olen = h->len;
    return 0;
}

static bool hold_is_eog(void *ud, int32_t token)
{
    ((hold *)ud)->is_eog_called = true;
    return false;
}

TEST(a_filter_holds_text_and_may_end_the_generation)
{
    wisp_tokenizer *tok = load_tok();
    wisp_tokens t = {0};
    tokens_of(tok, STORY, &t);
    hold h = {0};
    wisp_pipe_filter f = {hold_feed, hold_flush, hold_is_eog, &h};
    rec r = {.cancel_at = -1};
    wisp_pipeline *p = make(tok, NULL, 0, &r, &f);
    size_t fed = feed_all(p, &t);
    CHECK(fed < t.n);
    CHECK(h.is_eog_called);
    CHECK_EQ_INT(r.len, strlen(r.text));
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    const char *text = wisp_pipeline_text(p, NULL);
    CHECK(strstr(text, "Once upon a time") != NULL && strchr(text, ',') == NULL);
    CHECK(strcmp(wisp_pipeline_reason(p), "comma") == 0);
    CHECK(strcmp(r.text, text) == 0);
    wisp_pipeline_free(p);

    /* Without a rule firing, flush releases what the filter held. */
    const char *plain = "Once upon a time there was a cat";
    wisp_tokens t2 = {0};
    tokens_of(tok, plain, &t2);
    hold h2 = {0};
    wisp_pipe_filter f2 = {hold_feed, hold_flush, NULL, &h2};
    rec r2 = {.cancel_at = -1};
    p = make(tok, NULL, 0, &r2, &f2);
    CHECK_EQ_INT(feed_all(p, &t2), t2.n);
    CHECK_EQ_INT(r2.len, 0);
    CHECK_EQ_INT(wisp_pipeline_end(p, 0, &err), 0);
    CHECK(strstr(wisp_pipeline_text(p, NULL), plain) != NULL);
    CHECK(wisp_pipeline_reason(p) == NULL);
    CHECK(strcmp(r2.text, wisp_pipeline_text(p, NULL)) == 0);
    wisp_pipeline_free(p);
    wisp_tokens_free(&t);
    wisp_tokens_free(&t2);
    wisp_tokenizer_free(tok);
}

TEST(an_empty_stop_string_is_refused)
{
    wisp_tokenizer *tok = load_tok();
    const char *stops[] = {""};
    wisp_pipeline_desc d = {.tok = tok, .stops = stops, .n_stops = 1};
    wisp_pipeline *p = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_pipeline_create(&d, &p, &err), WISP_E_INVALID);
    CHECK(p == NULL);
    wisp_tokenizer_free(tok);
}
