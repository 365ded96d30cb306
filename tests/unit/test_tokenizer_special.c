/*
 * test_tokenizer_special.c - special tokens, settings and the detokenizer
 * edge cases: parse_special on and off, add_special (BOS), end-of-generation
 * and fill-in-the-middle ids, llama.cpp's reference prompts in
 * ../shared/golden, byte tokens held back by the stream, invalid input,
 * unsupported pre-tokenizers (from a GGUF built in memory), and concurrent
 * tokenize calls on one tokenizer.
 */
#include <jansson.h>
#include <pthread.h>

#include "tok_testutil.h"

static void tokenize_ok(const wisp_tokenizer *tok, const char *s, bool add, bool parse,
                        wisp_tokens *t)
{
    wisp_err err = {0};
    t->n = 0;
    int rc = wisp_tokenize(tok, s, strlen(s), add, parse, t, &err);
    if (rc)
        fprintf(stderr, "  tokenize \"%s\": %s\n", s, err.msg);
    REQUIRE(rc == 0);
}

static bool contains(const wisp_tokens *t, int32_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] == id)
            return true;
    return false;
}

TEST(gpt2_endoftext_parse_special)
{
    wisp_tokenizer *tok = tu_load_vocab("gpt-2");
    REQUIRE(tok);
    int32_t eot = wisp_tokenizer_find(tok, "<|endoftext|>", 13);
    CHECK_EQ_INT(eot, 50256);
    CHECK(wisp_tokenizer_is_eog(tok, eot));
    CHECK(!wisp_tokenizer_is_eog(tok, 50));
    wisp_tokens t = {0};
    tokenize_ok(tok, "a<|endoftext|>b", false, true, &t);
    CHECK_EQ_INT(t.n, 3);
    CHECK_EQ_INT(t.ids[1], eot);
    tokenize_ok(tok, "a<|endoftext|>b", false, false, &t);
    CHECK(t.n > 3);
    CHECK(!contains(&t, eot));
    /* plain text round-trips even though it looks special */
    char *back;
    size_t bl;
    wisp_err err = {0};
    REQUIRE(wisp_detokenize(tok, t.ids, t.n, 0, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "a<|endoftext|>b");
    free(back);
    /* control tokens render only when asked */
    int32_t ids[] = {64, eot};
    REQUIRE(wisp_detokenize(tok, ids, 2, 0, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "a");
    free(back);
    REQUIRE(wisp_detokenize(tok, ids, 2, WISP_DETOK_RENDER_SPECIAL, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "a<|endoftext|>");
    free(back);
    /* clean_spaces only on request */
    tokenize_ok(tok, "Hello , world !", false, false, &t);
    REQUIRE(wisp_detokenize(tok, t.ids, t.n, WISP_DETOK_CLEAN_SPACES, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "Hello, world!");
    free(back);
    CHECK(!wisp_tokenizer_add_bos(tok));
    tokenize_ok(tok, "x", true, false, &t);
    CHECK_EQ_INT(t.n, 1);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(llama_spm_bos_and_specials)
{
    wisp_tokenizer *tok = tu_load_vocab("llama-spm");
    REQUIRE(tok);
    CHECK_EQ_STR(wisp_tokenizer_model_name(tok), "llama");
    CHECK(wisp_tokenizer_add_bos(tok));
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    CHECK_EQ_INT(sp->bos, 1);
    CHECK_EQ_INT(sp->eos, 2);
    CHECK_EQ_INT(sp->unk, 0);
    CHECK_EQ_INT(sp->nl, 13);
    CHECK(wisp_tokenizer_is_eog(tok, 2));
    wisp_tokens t = {0};
    tokenize_ok(tok, "Hello", true, false, &t);
    REQUIRE(t.n == 2);
    CHECK_EQ_INT(t.ids[0], 1);
    CHECK_EQ_INT(t.ids[1], 15043);
    /* a parsed special is followed by the SentencePiece prefix space */
    tokenize_ok(tok, "<s>Hello", false, true, &t);
    REQUIRE(t.n == 2);
    CHECK_EQ_INT(t.ids[0], 1);
    CHECK_EQ_INT(t.ids[1], 15043);
    tokenize_ok(tok, "<s>Hello", false, false, &t);
    CHECK(!contains(&t, 1));
    char *back;
    size_t bl;
    wisp_err err = {0};
    int32_t ids[] = {1, 15043, 3186, 2};
    REQUIRE(wisp_detokenize(tok, ids, 4, WISP_DETOK_REMOVE_SPECIAL, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, " Hello world"); /* llama.cpp keeps the space after a removed BOS */
    free(back);
    REQUIRE(wisp_detokenize(tok, ids + 1, 2, 0, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "Hello world");
    free(back);
    CHECK(wisp_detokenize(tok, (int32_t[]){40000}, 1, 0, &back, &bl, &err) == WISP_E_INVALID);
    /* pieces */
    char piece[16];
    CHECK_EQ_INT(wisp_token_to_piece(tok, 15043, false, piece, sizeof piece), 6);
    CHECK(memcmp(piece, " Hello", 6) == 0);
    CHECK_EQ_INT(wisp_token_to_piece(tok, 1, false, piece, sizeof piece), 0);
    CHECK_EQ_INT(wisp_token_to_piece(tok, 1, true, piece, sizeof piece), 3);
    CHECK_EQ_INT(wisp_token_to_piece(tok, -1, true, piece, sizeof piece), WISP_E_INVALID);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(stream_holds_split_characters)
{
    wisp_tokenizer *tok = tu_load_vocab("llama-spm");
    REQUIRE(tok);
    /* "€" = E2 82 AC as three byte tokens, then an invalid lone byte */
    int32_t e2 = wisp_tokenizer_find(tok, "<0xE2>", 6), x82 = wisp_tokenizer_find(tok, "<0x82>", 6);
    int32_t xac = wisp_tokenizer_find(tok, "<0xAC>", 6),
            xff = wisp_tokenizer_find(tok, "<0xFF>", 6);
    REQUIRE(e2 >= 0 && x82 >= 0 && xac >= 0 && xff >= 0);
    wisp_detok_stream s;
    wisp_detok_stream_init(&s, tok, WISP_DETOK_TEXT_START);
    const char *c;
    size_t n;
    wisp_err err = {0};
    REQUIRE(wisp_detok_stream_feed(&s, e2, &c, &n, &err) == 0);
    CHECK_EQ_INT(n, 0);
    REQUIRE(wisp_detok_stream_feed(&s, x82, &c, &n, &err) == 0);
    CHECK_EQ_INT(n, 0);
    REQUIRE(wisp_detok_stream_feed(&s, xac, &c, &n, &err) == 0);
    CHECK(n == 3 && memcmp(c, "\xE2\x82\xAC", 3) == 0);
    REQUIRE(wisp_detok_stream_feed(&s, xff, &c, &n, &err) == 0);
    CHECK(n == 3 && memcmp(c, "\xEF\xBF\xBD", 3) == 0);
    REQUIRE(wisp_detok_stream_feed(&s, e2, &c, &n, &err) == 0);
    CHECK_EQ_INT(n, 0);
    /* a held lead byte followed by ASCII: replacement, then the text */
    REQUIRE(wisp_detok_stream_feed(&s, 15043, &c, &n, &err) == 0);
    CHECK(n == 9 && memcmp(c, "\xEF\xBF\xBD Hello", 9) == 0);
    REQUIRE(wisp_detok_stream_feed(&s, e2, &c, &n, &err) == 0);
    REQUIRE(wisp_detok_stream_flush(&s, &c, &n, &err) == 0);
    CHECK(n == 3 && memcmp(c, "\xEF\xBF\xBD", 3) == 0);
    CHECK(wisp_detok_stream_feed(&s, -5, &c, &n, &err) == WISP_E_INVALID);
    wisp_detok_stream_free(&s);
    /* without TEXT_START the first piece keeps its space (a continuation) */
    wisp_detok_stream_init(&s, tok, 0);
    REQUIRE(wisp_detok_stream_feed(&s, 15043, &c, &n, &err) == 0);
    CHECK(n == 6 && memcmp(c, " Hello", 6) == 0);
    wisp_detok_stream_free(&s);
    wisp_tokenizer_free(tok);
}

TEST(fim_and_eog_ids)
{
    wisp_tokenizer *tok = tu_load_vocab("deepseek-coder");
    REQUIRE(tok);
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    size_t n;
    const char *t;
    REQUIRE(sp->fim_pre >= 0 && sp->fim_suf >= 0 && sp->fim_mid >= 0);
    t = wisp_tokenizer_text(tok, sp->fim_pre, &n);
    CHECK(n == strlen("<\xEF\xBD\x9C"
                      "fim\xE2\x96\x81"
                      "begin\xEF\xBD\x9C>") &&
          !memcmp(t,
                  "<\xEF\xBD\x9C"
                  "fim\xE2\x96\x81"
                  "begin\xEF\xBD\x9C>",
                  n));
    t = wisp_tokenizer_text(tok, sp->fim_suf, &n);
    CHECK(n > 8 && memmem(t, n, "hole", 4));
    t = wisp_tokenizer_text(tok, sp->fim_mid, &n);
    CHECK(n > 8 && memmem(t, n, "end", 3));
    CHECK_EQ_INT(sp->bos, 32013);
    CHECK(wisp_tokenizer_add_bos(tok));
    wisp_tokens tk = {0};
    tokenize_ok(tok,
                "<\xEF\xBD\x9C"
                "fim\xE2\x96\x81"
                "begin\xEF\xBD\x9C>x",
                false, true, &tk);
    CHECK(tk.n == 2 && tk.ids[0] == sp->fim_pre);
    wisp_tokens_free(&tk);
    wisp_tokenizer_free(tok);

    tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    sp = wisp_tokenizer_special(tok);
    CHECK_EQ_INT(sp->fim_pre, wisp_tokenizer_find(tok, "<fim_prefix>", 12));
    CHECK_EQ_INT(sp->fim_suf, wisp_tokenizer_find(tok, "<fim_suffix>", 12));
    CHECK_EQ_INT(sp->fim_mid, wisp_tokenizer_find(tok, "<fim_middle>", 12));
    CHECK(sp->fim_pre >= 0);
    CHECK(wisp_tokenizer_is_eog(tok, wisp_tokenizer_find(tok, "<|endoftext|>", 13)));
    wisp_tokenizer_free(tok);
}

/* llama.cpp's ids for the golden prompts (add_special and parse_special on)
 * and its text for the greedy continuations. */
static void check_golden(const char *json_rel)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, json_rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    REQUIRE(j);
    char gguf_rel[256];
    snprintf(gguf_rel, sizeof gguf_rel, "golden/%s",
             json_string_value(json_object_get(j, "model")));
    wisp_test_shared_path(path, sizeof path, gguf_rel);
    wisp_gguf *g;
    wisp_err err = {0};
    REQUIRE(wisp_gguf_open(path, &g, &err) == 0);
    wisp_tokenizer *tok;
    REQUIRE(wisp_tokenizer_from_gguf(g, &tok, &err) == 0);
    wisp_gguf_close(g);
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    wisp_tokens t = {0};
    tokenize_ok(tok, prompt, json_is_true(json_object_get(j, "add_bos")), true, &t);
    json_t *want = json_object_get(j, "prompt_ids");
    CHECK_EQ_INT(t.n, json_array_size(want));
    for (size_t i = 0; i < t.n && i < json_array_size(want); i++)
        CHECK_EQ_INT(t.ids[i], json_integer_value(json_array_get(want, i)));
    json_t *greedy = json_object_get(j, "greedy_ids");
    size_t ng = json_array_size(greedy);
    int32_t *ids = calloc(ng, sizeof *ids);
    for (size_t i = 0; i < ng; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(greedy, i));
    /* the continuation's pieces, concatenated as generated */
    wisp_detok_stream s;
    wisp_detok_stream_init(&s, tok, 0);
    char text[4096];
    size_t tl = 0;
    for (size_t i = 0; i <= ng; i++) {
        const char *c;
        size_t n;
        REQUIRE((i < ng ? wisp_detok_stream_feed(&s, ids[i], &c, &n, &err)
                        : wisp_detok_stream_flush(&s, &c, &n, &err)) == 0);
        REQUIRE(tl + n < sizeof text);
        memcpy(text + tl, c, n);
        tl += n;
    }
    wisp_detok_stream_free(&s);
    const char *hex = json_string_value(json_object_get(j, "greedy_text_hex"));
    char got[8192];
    for (size_t i = 0; i < tl; i++)
        snprintf(got + 2 * i, 3, "%02x", (unsigned char)text[i]);
    got[2 * tl] = 0;
    CHECK_EQ_STR(got, hex);
    free(ids);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
    json_decref(j);
}

TEST(golden_llama_spm_prompt) { check_golden("golden/syn-llama-spm-f16.json"); }
TEST(golden_qwen2_dsc_prompt) { check_golden("golden/syn-qwen2-dsc-f16.json"); }

/* ---- a GGUF built in memory ---- */

typedef struct gb {
    unsigned char b[1 << 16];
    size_t n;
} gb;

static void gb_put(gb *g, const void *p, size_t n)
{
    REQUIRE(g->n + n <= sizeof g->b);
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static void gb_u32(gb *g, uint32_t v) { gb_put(g, &v, 4); }
static void gb_u64(gb *g, uint64_t v) { gb_put(g, &v, 8); }
static void gb_str(gb *g, const char *s)
{
    gb_u64(g, strlen(s));
    gb_put(g, s, strlen(s));
}
static void gb_kv_str(gb *g, const char *k, const char *v)
{
    gb_str(g, k);
    gb_u32(g, WISP_GGUF_STRING);
    gb_str(g, v);
}
static void gb_kv_strs(gb *g, const char *k, const char *const *v, size_t n)
{
    gb_str(g, k);
    gb_u32(g, WISP_GGUF_ARRAY);
    gb_u32(g, WISP_GGUF_STRING);
    gb_u64(g, n);
    for (size_t i = 0; i < n; i++)
        gb_str(g, v[i]);
}
static void gb_kv_i32s(gb *g, const char *k, const int32_t *v, size_t n)
{
    gb_str(g, k);
    gb_u32(g, WISP_GGUF_ARRAY);
    gb_u32(g, WISP_GGUF_INT32);
    gb_u64(g, n);
    gb_put(g, v, 4 * n);
}
static void gb_kv_f32s(gb *g, const char *k, const float *v, size_t n)
{
    gb_str(g, k);
    gb_u32(g, WISP_GGUF_ARRAY);
    gb_u32(g, WISP_GGUF_FLOAT32);
    gb_u64(g, n);
    gb_put(g, v, 4 * n);
}
static void gb_header(gb *g, uint64_t n_kv)
{
    gb_put(g, "GGUF", 4);
    gb_u32(g, 3);
    gb_u64(g, 0);
    gb_u64(g, n_kv);
}

static int from_memory(gb *g, wisp_tokenizer **tok, wisp_err *err)
{
    while (g->n % 32)
        g->b[g->n++] = 0;
    wisp_gguf *gg;
    int rc = wisp_gguf_open_memory(g->b, g->n, &gg, err);
    if (rc) {
        fprintf(stderr, "  gguf: %s\n", err->msg);
        return rc;
    }
    rc = wisp_tokenizer_from_gguf(gg, tok, err);
    wisp_gguf_close(gg);
    return rc;
}

TEST(unsupported_pre_and_model_are_errors)
{
    static gb g;
    const char *toks[] = {"a", "b", "ab"}, *merges[] = {"a b"};
    gb_header(&g, 4);
    gb_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_kv_str(&g, "tokenizer.ggml.pre", "no-such-pre");
    gb_kv_strs(&g, "tokenizer.ggml.tokens", toks, 3);
    gb_kv_strs(&g, "tokenizer.ggml.merges", merges, 1);
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(from_memory(&g, &tok, &err), WISP_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "no-such-pre") != NULL);
    CHECK(tok == NULL);

    g.n = 0;
    gb_header(&g, 2);
    gb_kv_str(&g, "tokenizer.ggml.model", "t5x");
    gb_kv_strs(&g, "tokenizer.ggml.tokens", toks, 3);
    CHECK_EQ_INT(from_memory(&g, &tok, &err), WISP_E_UNSUPPORTED);

    g.n = 0;
    gb_header(&g, 1);
    gb_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    CHECK_EQ_INT(from_memory(&g, &tok, &err), WISP_E_FORMAT);
}

TEST(spm_user_defined_and_byte_fallback)
{
    /* A tiny SentencePiece vocabulary: user-defined "<tag>" is matched as a
     * whole piece even with parse_special off; "z" is unknown and falls
     * back to its byte token. */
    static gb g;
    const char *toks[] = {"<unk>",
                          "<s>",
                          "</s>",
                          "<0x7A>",
                          "\xE2\x96\x81",
                          "a",
                          "b",
                          "\xE2\x96\x81"
                          "a",
                          "ab",
                          "\xE2\x96\x81"
                          "ab",
                          "<tag>",
                          "<",
                          "t"};
    const int32_t types[] = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 4, 1, 1};
    const float scores[] = {0, 0, 0, 0, -1, -2, -3, -4, -5, -1.5f, 0, -6, -7};
    gb_header(&g, 4);
    gb_kv_str(&g, "tokenizer.ggml.model", "llama");
    gb_kv_strs(&g, "tokenizer.ggml.tokens", toks, 13);
    gb_kv_i32s(&g, "tokenizer.ggml.token_type", types, 13);
    gb_kv_f32s(&g, "tokenizer.ggml.scores", scores, 13);
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    REQUIRE(from_memory(&g, &tok, &err) == 0);
    wisp_tokens t = {0};
    tokenize_ok(tok, "ab<tag>z", false, false, &t);
    /* "▁ab" (score -1.5) beats "▁a"+"b"; <tag> splits; then "▁z" -> ▁, <0x7A> */
    int32_t want[] = {9, 10, 4, 3};
    CHECK_EQ_INT(t.n, 4);
    CHECK(t.n == 4 && memcmp(t.ids, want, sizeof want) == 0);
    char *back;
    size_t bl;
    REQUIRE(wisp_detokenize(tok, t.ids, t.n, 0, &back, &bl, &err) == 0);
    CHECK_EQ_STR(back, "ab<tag> z");
    free(back);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

TEST(bpe_rejects_invalid_utf8)
{
    wisp_tokenizer *tok = tu_load_vocab("gpt-2");
    REQUIRE(tok);
    wisp_tokens t = {0};
    wisp_err err = {0};
    t.n = 0;
    CHECK_EQ_INT(wisp_tokenize(tok, "ok\xC3(", 4, false, false, &t, &err), WISP_E_INVALID);
    CHECK_EQ_INT(t.n, 0);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
}

/* ---- concurrency ---- */

typedef struct job {
    const wisp_tokenizer *tok;
    const char *text;
    size_t len;
    wisp_tokens out;
    int rc;
} job;

static void *run_job(void *p)
{
    job *j = p;
    wisp_err err = {0};
    for (int rep = 0; rep < 20 && j->rc == 0; rep++) {
        j->out.n = 0;
        j->rc = wisp_tokenize(j->tok, j->text, j->len, true, true, &j->out, &err);
    }
    return NULL;
}

TEST(concurrent_tokenize_matches_serial)
{
    const char *names[] = {"llama-spm", "deepseek-llm"};
    static const char text[] =
        "int main(void) {\n    printf(\"Hello, world! %d\\n\", 42);\n    return 0;\n}\n"
        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xE4\xBD\xA0\xE5\xA5\xBD  \t 12345 <s>";
    for (size_t v = 0; v < 2; v++) {
        wisp_tokenizer *tok = tu_load_vocab(names[v]);
        REQUIRE(tok);
        wisp_tokens serial = {0};
        tokenize_ok(tok, text, true, true, &serial);
        job jobs[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (job){tok, text, strlen(text), {0}, 0};
            REQUIRE(pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK_EQ_INT(jobs[i].rc, 0);
            CHECK(jobs[i].out.n == serial.n &&
                  memcmp(jobs[i].out.ids, serial.ids, serial.n * 4) == 0);
            wisp_tokens_free(&jobs[i].out);
        }
        wisp_tokens_free(&serial);
        wisp_tokenizer_free(tok);
    }
}
