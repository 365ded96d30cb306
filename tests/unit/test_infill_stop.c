/*
 * test_infill_stop.c - the code stop rules (n_indent, t_max_predict_ms,
 * suffix_repeat) fed as a stream: every case runs with every chunk size and
 * every two-piece split, so chunk boundaries fall inside the indentation and
 * inside the repeated suffix line, and all runs must agree. A randomized
 * check compares chunked against one-shot feeding and keeps the invariant
 * that released text is always a prefix of the generated text.
 */
#include <stdint.h>

#include "harness.h"
#include "infill/code_stop.h"

typedef struct run_result {
    char text[1024];
    size_t len;
    wisp_stop_reason reason;
    size_t cut;
} run_result;

static void collect(run_result *r, const wisp_code_stop_out *o)
{
    REQUIRE(r->len + o->len < sizeof r->text);
    memcpy(r->text + r->len, o->text, o->len);
    r->len += o->len;
    r->text[r->len] = 0;
    if (o->reason != WISP_STOP_REASON_NONE) {
        CHECK_EQ_INT(r->reason, WISP_STOP_REASON_NONE); /* fires once */
        r->reason = o->reason;
        r->cut = o->cut;
    }
}

/* Feeds text in pieces ending at the offsets in cuts[0..n_cuts) (then the
 * rest), all at time 0, then flushes. */
static run_result run_split(const wisp_code_stop_params *p, const char *text, const size_t *cuts,
                            size_t n_cuts)
{
    run_result r = {0};
    wisp_code_stop *cs;
    wisp_err err = {0};
    REQUIRE(wisp_code_stop_create(p, &cs, &err) == 0);
    size_t len = strlen(text), at = 0;
    wisp_code_stop_out o;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        REQUIRE(wisp_code_stop_feed(cs, text + at, end - at, 0, &o, &err) == 0);
        collect(&r, &o);
        at = end;
    }
    REQUIRE(wisp_code_stop_flush(cs, &o, &err) == 0);
    collect(&r, &o);
    CHECK(wisp_code_stop_done(cs) == (r.reason != WISP_STOP_REASON_NONE));
    wisp_code_stop_free(cs);
    /* released text is always a prefix of what was generated */
    CHECK(r.len <= len && memcmp(r.text, text, r.len) == 0);
    if (r.reason != WISP_STOP_REASON_NONE)
        CHECK_EQ_INT(r.cut, r.len);
    return r;
}

/* Runs every chunking; all must give want_text and want_reason. */
static void expect(const wisp_code_stop_params *p, const char *text, const char *want_text,
                   wisp_stop_reason want_reason)
{
    size_t len = strlen(text);
    size_t cuts[1024];
    REQUIRE(len < 1024);
    for (size_t size = 1; size <= len + 1; size++) {
        size_t n = 0;
        for (size_t at = size; at < len; at += size)
            cuts[n++] = at;
        run_result r = run_split(p, text, cuts, n);
        if (strcmp(r.text, want_text) != 0 || r.reason != want_reason) {
            fprintf(stderr, "  chunk size %zu: got \"%s\" (%s), want \"%s\" (%s)\n", size, r.text,
                    wisp_stop_reason_name(r.reason), want_text, wisp_stop_reason_name(want_reason));
            CHECK(0);
            return;
        }
    }
    for (size_t at = 0; at <= len; at++) {
        run_result r = run_split(p, text, &at, 1);
        if (strcmp(r.text, want_text) != 0 || r.reason != want_reason) {
            fprintf(stderr, "  split at %zu: got \"%s\" (%s)\n", at, r.text,
                    wisp_stop_reason_name(r.reason));
            CHECK(0);
            return;
        }
    }
}

/* ---------------------------------------------------------------- n_indent */

TEST(n_indent_stops_before_a_shallower_line)
{
    wisp_code_stop_params p = {.n_indent = 4};
    expect(&p, "x = 1\n    y = 2\n\n    z\nw = 3\n", "x = 1\n    y = 2\n\n    z",
           WISP_STOP_REASON_N_INDENT);
    /* blank lines, even with some whitespace, never trigger it */
    expect(&p, "a\n    b\n  \n\t\n    c\n  d", "a\n    b\n  \n\t\n    c",
           WISP_STOP_REASON_N_INDENT);
    /* deeper lines pass; a trailing newline comes out at the end */
    expect(&p, "a\n        b\n    c\n", "a\n        b\n    c\n", WISP_STOP_REASON_NONE);
    /* the first line continues the cursor line and is never judged */
    expect(&p, "}", "}", WISP_STOP_REASON_NONE);
    /* a dedent right after the first line */
    expect(&p, "foo()\n}\n", "foo()", WISP_STOP_REASON_N_INDENT);
    /* the offending line's start may sit after many blank lines */
    expect(&p, "a\n\n\n\nb", "a", WISP_STOP_REASON_N_INDENT);
}

TEST(n_indent_counts_tabs_as_one_column)
{
    wisp_code_stop_params p = {.n_indent = 2};
    expect(&p, "a\n\tb\n", "a", WISP_STOP_REASON_N_INDENT);
    expect(&p, "a\n\t\tb\n \tc", "a\n\t\tb\n \tc", WISP_STOP_REASON_NONE);
    p.n_indent = 0; /* off */
    expect(&p, "a\nb\n", "a\nb\n", WISP_STOP_REASON_NONE);
}

/* ---------------------------------------------------------------- suffix */

TEST(suffix_repeat_stops_before_the_suffix_first_line)
{
    const char *suffix = "\n  \n    return x\n}\n";
    wisp_code_stop_params p = {.suffix = suffix, .suffix_len = strlen(suffix)};
    expect(&p, "    y = x * 2\n    return x\n}", "    y = x * 2", WISP_STOP_REASON_SUFFIX_REPEAT);
    /* other indentation and trailing blanks still repeat it */
    expect(&p, "y\n\n return x  \r\nz", "y", WISP_STOP_REASON_SUFFIX_REPEAT);
    /* cut off by the end of generation, unterminated: still a repeat */
    expect(&p, "y\n    return x", "y", WISP_STOP_REASON_SUFFIX_REPEAT);
    /* near misses pass through whole */
    expect(&p, "y\n    return x + 1\n    return\n", "y\n    return x + 1\n    return\n",
           WISP_STOP_REASON_NONE);
    expect(&p, "y\n    return x;\n", "y\n    return x;\n", WISP_STOP_REASON_NONE);
    expect(&p, "y\n    return  x\n", "y\n    return  x\n", WISP_STOP_REASON_NONE);
    /* the first line is not a line start: not compared */
    expect(&p, "return x\n", "return x\n", WISP_STOP_REASON_NONE);
}

TEST(suffix_repeat_rest_of_the_cursor_line)
{
    const char *suffix = ")\nprint(1)\n";
    wisp_code_stop_params p = {.suffix = suffix, .suffix_len = strlen(suffix)};
    expect(&p, "a, b\n)", "a, b", WISP_STOP_REASON_SUFFIX_REPEAT);
    expect(&p, "a, b\n)\n", "a, b", WISP_STOP_REASON_SUFFIX_REPEAT);
    expect(&p, "a, b\n))\n", "a, b\n))\n", WISP_STOP_REASON_NONE);
    /* only blank lines in the suffix: the rule is off */
    p.suffix = " \n\t\n";
    p.suffix_len = 4;
    expect(&p, "a\n\n", "a\n\n", WISP_STOP_REASON_NONE);
}

TEST(n_indent_and_suffix_together)
{
    const char *suffix = "\n    return y\n";
    wisp_code_stop_params p = {.n_indent = 4, .suffix = suffix, .suffix_len = strlen(suffix)};
    expect(&p, "1\n    y = 2\n    return y\n", "1\n    y = 2", WISP_STOP_REASON_SUFFIX_REPEAT);
    expect(&p, "1\n    y = 2\nreturn y\n", "1\n    y = 2", WISP_STOP_REASON_N_INDENT);
    expect(&p, "1\n    y = 2\n    ret\n", "1\n    y = 2\n    ret\n", WISP_STOP_REASON_NONE);
    /* a line that matched the start of the suffix's, then ended: the next
     * line is judged again */
    expect(&p, "1\n    ret\nz", "1\n    ret", WISP_STOP_REASON_N_INDENT);
    expect(&p, "1\n    ret\n    return y", "1\n    ret", WISP_STOP_REASON_SUFFIX_REPEAT);
}

/* ---------------------------------------------------------------- time */

TEST(t_max_predict_ms_stops_at_the_next_newline)
{
    wisp_code_stop_params p = {.t_max_predict_ms = 50, .t_start_ms = 1000};
    wisp_code_stop *cs;
    wisp_err err = {0};
    REQUIRE(wisp_code_stop_create(&p, &cs, &err) == 0);
    wisp_code_stop_out o;
    run_result r = {0};
    REQUIRE(wisp_code_stop_feed(cs, "abc\ndef", 7, 1010, &o, &err) == 0);
    collect(&r, &o);
    CHECK_EQ_STR(r.text, "abc\ndef"); /* before the limit, newlines pass */
    REQUIRE(wisp_code_stop_feed(cs, "gh", 2, 1049, &o, &err) == 0);
    collect(&r, &o);
    REQUIRE(wisp_code_stop_feed(cs, "ij", 2, 1050, &o, &err) == 0);
    collect(&r, &o);
    CHECK_EQ_INT(r.reason, WISP_STOP_REASON_NONE); /* late, but no newline yet */
    REQUIRE(wisp_code_stop_feed(cs, "k\nlm\n", 5, 1051, &o, &err) == 0);
    collect(&r, &o);
    CHECK_EQ_STR(r.text, "abc\ndefghijk");
    CHECK_EQ_INT(r.reason, WISP_STOP_REASON_T_MAX_PREDICT_MS);
    CHECK_EQ_INT(r.cut, 12);
    CHECK(wisp_code_stop_done(cs));
    REQUIRE(wisp_code_stop_feed(cs, "more", 4, 2000, &o, &err) == 0);
    CHECK_EQ_INT(o.len, 0);
    CHECK_EQ_INT(o.reason, WISP_STOP_REASON_NONE);
    REQUIRE(wisp_code_stop_flush(cs, &o, &err) == 0);
    CHECK_EQ_INT(o.len, 0);
    wisp_code_stop_free(cs);
}

/* A newline held by another rule when the time runs out is the next one the
 * client has not seen: the completion ends there at once. */
TEST(t_max_predict_ms_with_a_held_newline)
{
    wisp_code_stop_params p = {.n_indent = 4, .t_max_predict_ms = 50, .t_start_ms = 0};
    wisp_code_stop *cs;
    wisp_err err = {0};
    REQUIRE(wisp_code_stop_create(&p, &cs, &err) == 0);
    wisp_code_stop_out o;
    run_result r = {0};
    REQUIRE(wisp_code_stop_feed(cs, "x = 1\n  ", 8, 10, &o, &err) == 0);
    collect(&r, &o);
    CHECK_EQ_STR(r.text, "x = 1"); /* the newline and indentation wait */
    REQUIRE(wisp_code_stop_feed(cs, "  y", 3, 60, &o, &err) == 0);
    collect(&r, &o);
    CHECK_EQ_STR(r.text, "x = 1");
    CHECK_EQ_INT(r.reason, WISP_STOP_REASON_T_MAX_PREDICT_MS);
    CHECK_EQ_INT(r.cut, 5);
    wisp_code_stop_free(cs);
}

TEST(rules_off_release_everything_at_once)
{
    wisp_code_stop_params p = {0};
    wisp_code_stop *cs;
    wisp_err err = {0};
    REQUIRE(wisp_code_stop_create(&p, &cs, &err) == 0);
    wisp_code_stop_out o;
    REQUIRE(wisp_code_stop_feed(cs, "a\n\n  b\n", 7, 1 << 30, &o, &err) == 0);
    CHECK_EQ_INT(o.len, 7);
    CHECK(memcmp(o.text, "a\n\n  b\n", 7) == 0);
    REQUIRE(wisp_code_stop_flush(cs, &o, &err) == 0);
    CHECK_EQ_INT(o.len, 0);
    wisp_code_stop_free(cs);
}

TEST(reason_names)
{
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_NONE), "");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_EOG), "eog");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_LENGTH), "length");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_STOP), "stop");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_N_INDENT), "n_indent");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_T_MAX_PREDICT_MS), "t_max_predict_ms");
    CHECK_EQ_STR(wisp_stop_reason_name(WISP_STOP_REASON_SUFFIX_REPEAT), "suffix_repeat");
    CHECK_EQ_STR(wisp_stop_reason_name((wisp_stop_reason)99), "");
}

/* ---------------------------------------------------------------- random */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

TEST(random_chunking_matches_one_shot)
{
    static const char alphabet[] = "  \t\n\nar x}";
    const char *suffix = "\n r x\n";
    wisp_code_stop_params p = {.n_indent = 2, .suffix = suffix, .suffix_len = strlen(suffix)};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 2000; iter++) {
        char text[64];
        size_t len = 1 + rng_next(&seed) % 40;
        for (size_t i = 0; i < len; i++)
            text[i] = alphabet[rng_next(&seed) % (sizeof alphabet - 1)];
        text[len] = 0;
        run_result whole = run_split(&p, text, NULL, 0);
        size_t cuts[8], n = rng_next(&seed) % 8;
        for (size_t i = 0; i < n; i++)
            cuts[i] = rng_next(&seed) % (len + 1);
        for (size_t i = 1; i < n; i++) /* sort the cut points */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        run_result part = run_split(&p, text, cuts, n);
        if (strcmp(whole.text, part.text) != 0 || whole.reason != part.reason) {
            fprintf(stderr, "  text \"%s\": whole \"%s\" (%s), chunked \"%s\" (%s)\n", text,
                    whole.text, wisp_stop_reason_name(whole.reason), part.text,
                    wisp_stop_reason_name(part.reason));
            CHECK(0);
            return;
        }
        /* when nothing fired, everything came out */
        if (whole.reason == WISP_STOP_REASON_NONE)
            CHECK_EQ_INT(whole.len, len);
        else /* and a cut always ends before a newline */
            CHECK(text[whole.len] == '\n');
    }
}
