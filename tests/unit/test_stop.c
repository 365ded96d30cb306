/*
 * test_stop.c - stop strings across token boundaries, held text that turns
 * out not to be a stop, and UTF-8 characters split across tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "gen/stop.h"
#include "harness.h"

typedef struct run {
    char text[1024]; /* everything released, concatenated */
    size_t len;
    int stop; /* the stop that matched, or -1 */
} run;

static wisp_stop *make(const char *const *stops, int n)
{
    wisp_stop *m = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_stop_create(stops, n, &m, &err) == 0 && m);
    return m;
}

static void take(run *r, const wisp_stop_out *o)
{
    REQUIRE(r->len + o->len < sizeof r->text);
    memcpy(r->text + r->len, o->text, o->len);
    r->len += o->len;
    r->text[r->len] = '\0';
    if (o->stop >= 0)
        r->stop = o->stop;
}

/* Feeds the pieces (then flushes) and collects what was released. */
static run feed_all(wisp_stop *m, const char *const *pieces, int n)
{
    run r = {.stop = -1};
    wisp_stop_out o;
    wisp_err err = {0};
    for (int i = 0; i < n; i++) {
        REQUIRE(wisp_stop_feed(m, pieces[i], strlen(pieces[i]), &o, &err) == 0);
        take(&r, &o);
    }
    REQUIRE(wisp_stop_flush(m, &o, &err) == 0);
    take(&r, &o);
    return r;
}

TEST(stop_split_across_tokens_is_cut)
{
    const char *stops[] = {"</s>", "\n\n"};
    wisp_stop *m = make(stops, 2);
    const char *pieces[] = {"Hello", " world", "<", "/", "s", ">", " after"};
    run r = feed_all(m, pieces, 7);
    CHECK_EQ_STR(r.text, "Hello world");
    CHECK_EQ_INT(r.stop, 0);
    CHECK(wisp_stop_matched(m));
    wisp_stop_free(m);

    m = make(stops, 2);
    const char *p2[] = {"a\n", "\nb"};
    r = feed_all(m, p2, 2);
    CHECK_EQ_STR(r.text, "a");
    CHECK_EQ_INT(r.stop, 1);
    wisp_stop_free(m);
}

TEST(nothing_after_the_stop_leaks)
{
    const char *stops[] = {"STOP"};
    wisp_stop *m = make(stops, 1);
    wisp_stop_out o;
    wisp_err err = {0};
    /* The stop and trailing text arrive in one piece. */
    REQUIRE(wisp_stop_feed(m, "abcSTOPdef", 10, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 3);
    CHECK(memcmp(o.text, "abc", 3) == 0);
    CHECK_EQ_INT(o.stop, 0);
    REQUIRE(wisp_stop_feed(m, "more", 4, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 0);
    REQUIRE(wisp_stop_flush(m, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 0);
    wisp_stop_free(m);
}

TEST(held_text_is_released_when_the_match_fails)
{
    const char *stops[] = {"</s>"};
    wisp_stop *m = make(stops, 1);
    wisp_stop_out o;
    wisp_err err = {0};
    REQUIRE(wisp_stop_feed(m, "x </", 4, &o, &err) == 0);
    /* "</" could begin the stop: only "x " is proven safe. */
    CHECK_EQ_INT((int)o.len, 2);
    CHECK(memcmp(o.text, "x ", 2) == 0);
    REQUIRE(wisp_stop_feed(m, "b>", 2, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 4);
    CHECK(memcmp(o.text, "</b>", 4) == 0);
    CHECK(!wisp_stop_matched(m));
    wisp_stop_free(m);

    /* A held prefix followed by the real stop: "<<" then "/s>". */
    m = make(stops, 1);
    const char *pieces[] = {"<", "<", "/s>"};
    run r = feed_all(m, pieces, 3);
    CHECK_EQ_STR(r.text, "<");
    CHECK_EQ_INT(r.stop, 0);
    wisp_stop_free(m);

    /* At the end, held text is flushed. */
    m = make(stops, 1);
    const char *tail[] = {"end </"};
    r = feed_all(m, tail, 1);
    CHECK_EQ_STR(r.text, "end </");
    CHECK_EQ_INT(r.stop, -1);
    wisp_stop_free(m);
}

TEST(earliest_stop_wins)
{
    const char *stops[] = {"world", "lo w"};
    wisp_stop *m = make(stops, 2);
    const char *pieces[] = {"hel", "lo world"};
    run r = feed_all(m, pieces, 2);
    CHECK_EQ_STR(r.text, "hel");
    CHECK_EQ_INT(r.stop, 1);
    wisp_stop_free(m);
}

TEST(utf8_split_across_tokens_is_held_whole)
{
    wisp_stop *m = make(NULL, 0);
    wisp_stop_out o;
    wisp_err err = {0};
    /* "é" = C3 A9 and "€" = E2 82 AC, each split over pieces. */
    REQUIRE(wisp_stop_feed(m, "caf\xC3", 4, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 3);
    REQUIRE(wisp_stop_feed(m, "\xA9 \xE2", 3, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 3);
    CHECK(memcmp(o.text, "\xC3\xA9 ", 3) == 0);
    REQUIRE(wisp_stop_feed(m, "\x82", 1, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 0);
    REQUIRE(wisp_stop_feed(m, "\xAC!", 2, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 4);
    CHECK(memcmp(o.text, "\xE2\x82\xAC!", 4) == 0);
    /* A character that never completes becomes U+FFFD at the end. */
    REQUIRE(wisp_stop_feed(m, "\xF0\x9F", 2, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 0);
    REQUIRE(wisp_stop_flush(m, &o, &err) == 0);
    CHECK_EQ_INT((int)o.len, 3);
    CHECK(memcmp(o.text, "\xEF\xBF\xBD", 3) == 0);
    wisp_stop_free(m);
}

TEST(invalid_bytes_become_replacement_characters)
{
    wisp_stop *m = make(NULL, 0);
    const char *pieces[] = {"a\xFF", "b"};
    run r = feed_all(m, pieces, 2);
    CHECK_EQ_STR(r.text, "a\xEF\xBF\xBD"
                         "b");
    wisp_stop_free(m);
}

TEST(multibyte_stop_split_inside_a_character)
{
    const char *stops[] = {"\xE2\x80\x94"}; /* em dash */
    wisp_stop *m = make(stops, 1);
    const char *pieces[] = {"x\xE2", "\x80", "\x94y"};
    run r = feed_all(m, pieces, 3);
    CHECK_EQ_STR(r.text, "x");
    CHECK_EQ_INT(r.stop, 0);
    wisp_stop_free(m);
}

TEST(rejects_empty_stop)
{
    const char *stops[] = {"ok", ""};
    wisp_stop *m = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_stop_create(stops, 2, &m, &err), WISP_E_INVALID);
    CHECK(m == NULL && strstr(err.msg, "empty"));
}
