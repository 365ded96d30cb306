/*
 * test_tokenizer_vocab.c - every case of llama.cpp's tokenizer test data in
 * ../shared/vocab must give exactly the listed ids (add_special and
 * parse_special false, as test-tokenizer-0 runs them), detokenize back to
 * the text, and stream back as valid UTF-8 chunks that add up to the text.
 * Prints "<vocab>: passed/total" per vocabulary.
 */
#include "tok_testutil.h"

static void check_vocab(const char *name)
{
    wisp_tokenizer *tok = tu_load_vocab(name);
    REQUIRE(tok);
    size_t n_cases = 0;
    tu_case *cases = tu_load_cases(name, &n_cases);
    REQUIRE(n_cases > 0);
    size_t pass = 0, rt_pass = 0, st_pass = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const tu_case *c = &cases[i];
        wisp_tokens t = {0};
        wisp_err err = {0};
        int rc = wisp_tokenize(tok, c->text, c->len, false, false, &t, &err);
        bool ok = rc == 0 && t.n == c->n_ids && (t.n == 0 || memcmp(t.ids, c->ids, t.n * 4) == 0);
        if (ok) {
            pass++;
        } else {
            fprintf(stderr, "  %s case %zu \"%s\": %s\n", name, i, c->text, rc ? err.msg : "");
            tu_print_ids("want", c->ids, c->n_ids);
            tu_print_ids("got ", t.ids, t.n);
        }
        /* round trip */
        char *back = NULL;
        size_t blen = 0;
        rc = wisp_detokenize(tok, c->ids, c->n_ids, 0, &back, &blen, &err);
        if (rc == 0 && blen == c->len && memcmp(back, c->text, blen) == 0)
            rt_pass++;
        else
            fprintf(stderr, "  %s case %zu: detokenize gives \"%s\" for \"%s\"\n", name, i,
                    back ? back : err.msg, c->text);
        /* streaming, token by token */
        wisp_detok_stream s;
        wisp_detok_stream_init(&s, tok, WISP_DETOK_TEXT_START);
        char acc[8192];
        size_t alen = 0;
        bool valid = true;
        for (size_t k = 0; k <= c->n_ids; k++) {
            const char *chunk;
            size_t cl;
            rc = k < c->n_ids ? wisp_detok_stream_feed(&s, c->ids[k], &chunk, &cl, &err)
                              : wisp_detok_stream_flush(&s, &chunk, &cl, &err);
            REQUIRE(rc == 0);
            valid = valid && tu_valid_utf8(chunk, cl);
            REQUIRE(alen + cl < sizeof acc);
            memcpy(acc + alen, chunk, cl);
            alen += cl;
        }
        wisp_detok_stream_free(&s);
        if (valid && back && alen == blen && memcmp(acc, back, blen) == 0)
            st_pass++;
        else
            fprintf(stderr, "  %s case %zu: stream %s, gives \"%.*s\"\n", name, i,
                    valid ? "valid" : "INVALID UTF-8", (int)alen, acc);
        free(back);
        wisp_tokens_free(&t);
    }
    printf("%s: %zu/%zu ids, %zu/%zu round trips, %zu/%zu streams\n", name, pass, n_cases, rt_pass,
           n_cases, st_pass, n_cases);
    CHECK_EQ_INT(pass, n_cases);
    CHECK_EQ_INT(rt_pass, n_cases);
    CHECK_EQ_INT(st_pass, n_cases);
    free(cases);
    wisp_tokenizer_free(tok);
}

TEST(vocab_llama_spm) { check_vocab("llama-spm"); }
TEST(vocab_phi_3) { check_vocab("phi-3"); }
TEST(vocab_gpt_2) { check_vocab("gpt-2"); }
TEST(vocab_deepseek_coder) { check_vocab("deepseek-coder"); }
TEST(vocab_deepseek_llm) { check_vocab("deepseek-llm"); }
TEST(vocab_falcon) { check_vocab("falcon"); }
TEST(vocab_mpt) { check_vocab("mpt"); }
TEST(vocab_refact) { check_vocab("refact"); }
TEST(vocab_starcoder) { check_vocab("starcoder"); }
