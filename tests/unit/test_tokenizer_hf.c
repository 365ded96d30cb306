/*
 * test_tokenizer_hf.c - tokenizer.json loading.
 *
 * Each test writes a tokenizer.json that mirrors a shared GGUF vocabulary
 * the way the real model repositories do (GPT-2: ByteLevel; StarCoder:
 * Digits + ByteLevel; DeepSeek-Coder: Split sequence + Digits + ByteLevel;
 * Falcon: Punctuation + ByteLevel + Split; TinyLlama: Prepend and
 * Replace normalizers, BPE with byte_fallback and merges derived from the
 * SentencePiece scores), loads it, and requires the same ids as the GGUF
 * path and llama.cpp's expected ids on every shared test case.
 */
#include <jansson.h>
#include <unistd.h>

#include "tok_testutil.h"

static wisp_gguf *open_vocab(const char *name)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    wisp_test_shared_path(path, sizeof path, rel);
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_gguf_open(path, &g, &err) == 0);
    return g;
}

static json_t *jstrn(const char *s, size_t n) { return json_stringn(s, n); }

/* vocab + added_tokens of a GGUF tokenizer, as a HF file lists them. */
static void add_vocab(json_t *root, json_t *model, const wisp_tokenizer *tok)
{
    json_t *vocab = json_object(), *added = json_array();
    for (int32_t i = 0; i < wisp_tokenizer_n_vocab(tok); i++) {
        size_t n;
        const char *t = wisp_tokenizer_text(tok, i, &n);
        char *key = strndup(t, n);
        json_object_set_new(vocab, key, json_integer(i));
        uint32_t a = wisp_tokenizer_attr(tok, i);
        if (a & (WISP_TOKATTR_CONTROL | WISP_TOKATTR_USER_DEFINED | WISP_TOKATTR_UNKNOWN)) {
            json_t *e = json_object();
            json_object_set_new(e, "id", json_integer(i));
            json_object_set_new(e, "content", jstrn(t, n));
            json_object_set_new(e, "special", json_boolean(!(a & WISP_TOKATTR_USER_DEFINED)));
            json_object_set_new(e, "lstrip", json_false());
            json_object_set_new(e, "rstrip", json_false());
            json_array_append_new(added, e);
        }
        free(key);
    }
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(root, "added_tokens", added);
}

static void add_gguf_merges(json_t *model, const wisp_gguf *g, bool as_arrays)
{
    wisp_gguf_vtype et;
    uint64_t n;
    REQUIRE(wisp_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n));
    json_t *m = json_array();
    for (uint64_t i = 0; i < n; i++) {
        wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.merges", i);
        if (!as_arrays) {
            json_array_append_new(m, jstrn(s.ptr, s.len));
            continue;
        }
        const char *sp = memchr(s.ptr + 1, ' ', s.len - 1);
        json_t *pair = json_array();
        json_array_append_new(pair, jstrn(s.ptr, (size_t)(sp - s.ptr)));
        json_array_append_new(pair, jstrn(sp + 1, s.len - (size_t)(sp - s.ptr) - 1));
        json_array_append_new(m, pair);
    }
    json_object_set_new(model, "merges", m);
}

/* HF's SentencePieceExtractor: every split of a piece into two pieces is a
 * merge, ranked by the piece's score (highest first), ties in vocab order. */
typedef struct scored {
    float score;
    int32_t id;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id - y->id;
}

static void add_spm_merges(json_t *model, const wisp_gguf *g, const wisp_tokenizer *tok)
{
    int32_t nv = wisp_tokenizer_n_vocab(tok);
    scored *s = calloc((size_t)nv, sizeof *s);
    int32_t k = 0;
    for (int32_t i = 0; i < nv; i++)
        if (wisp_tokenizer_attr(tok, i) & WISP_TOKATTR_NORMAL)
            s[k++] =
                (scored){(float)wisp_gguf_arr_float(g, "tokenizer.ggml.scores", (uint64_t)i), i};
    qsort(s, (size_t)k, sizeof *s, by_score);
    json_t *m = json_array();
    for (int32_t j = 0; j < k; j++) {
        size_t n;
        const char *t = wisp_tokenizer_text(tok, s[j].id, &n);
        for (size_t cut = 1; cut < n; cut++) {
            if (((unsigned char)t[cut] & 0xC0) == 0x80)
                continue;
            int32_t l = wisp_tokenizer_find(tok, t, cut),
                    r = wisp_tokenizer_find(tok, t + cut, n - cut);
            if (l < 0 || r < 0)
                continue;
            json_t *pair = json_array();
            json_array_append_new(pair, jstrn(t, cut));
            json_array_append_new(pair, jstrn(t + cut, n - cut));
            json_array_append_new(m, pair);
        }
    }
    free(s);
    json_object_set_new(model, "merges", m);
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fprintf(stderr, "  bad fixture json: %s\n", je.text);
    REQUIRE(j);
    return j;
}

/* Writes dir/tokenizer.json (+ tokenizer_config.json when cfg) and loads it. */
static wisp_tokenizer *load_fixture(json_t *root, const char *cfg, char *dir)
{
    strcpy(dir, "/tmp/wisp-tokjson-XXXXXX");
    REQUIRE(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    REQUIRE(json_dump_file(root, path, JSON_COMPACT) == 0);
    if (cfg) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        FILE *f = fopen(path, "w");
        REQUIRE(f);
        fputs(cfg, f);
        fclose(f);
    }
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    int rc = wisp_tokenizer_from_hf(dir, &tok, &err);
    if (rc)
        fprintf(stderr, "  from_hf: %s\n", err.msg);
    REQUIRE(rc == 0);
    return tok;
}

static void remove_fixture(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    rmdir(dir);
}

/* Both tokenizers give llama.cpp's ids on every case, and agree. */
static void compare_cases(const char *name, const wisp_tokenizer *hf, const wisp_tokenizer *gg)
{
    size_t n_cases = 0, pass = 0;
    tu_case *cases = tu_load_cases(name, &n_cases);
    for (size_t i = 0; i < n_cases; i++) {
        wisp_tokens a = {0}, b = {0};
        wisp_err err = {0};
        int rc = wisp_tokenize(hf, cases[i].text, cases[i].len, false, false, &a, &err);
        if (rc)
            fprintf(stderr, "  tokenize: %s\n", err.msg);
        CHECK(wisp_tokenize(gg, cases[i].text, cases[i].len, false, false, &b, &err) == 0);
        bool ok =
            rc == 0 && a.n == cases[i].n_ids && a.n == b.n &&
            (a.n == 0 || (!memcmp(a.ids, cases[i].ids, a.n * 4) && !memcmp(a.ids, b.ids, a.n * 4)));
        if (ok) {
            char *back = NULL;
            size_t bl = 0;
            ok = wisp_detokenize(hf, a.ids, a.n, 0, &back, &bl, &err) == 0 && bl == cases[i].len &&
                 !memcmp(back, cases[i].text, bl);
            free(back);
        }
        if (ok) {
            pass++;
        } else {
            fprintf(stderr, "  %s (tokenizer.json) case %zu \"%s\"\n", name, i, cases[i].text);
            tu_print_ids("want", cases[i].ids, cases[i].n_ids);
            tu_print_ids("got ", a.ids, a.n);
        }
        wisp_tokens_free(&a);
        wisp_tokens_free(&b);
    }
    printf("%s via tokenizer.json: %zu/%zu\n", name, pass, n_cases);
    CHECK_EQ_INT(pass, n_cases);
    free(cases);
}

static void check_bpe(const char *name, const char *pre_json, bool array_merges)
{
    wisp_gguf *g = open_vocab(name);
    wisp_tokenizer *gg = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_tokenizer_from_gguf(g, &gg, &err) == 0);
    json_t *root = json_object(), *model = json_object();
    json_object_set_new(model, "type", json_string("BPE"));
    json_object_set_new(model, "byte_fallback", json_false());
    add_vocab(root, model, gg);
    add_gguf_merges(model, g, array_merges);
    json_object_set_new(root, "model", model);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", parse(pre_json));
    json_object_set_new(root, "decoder",
                        parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                              "\"trim_offsets\":true,\"use_regex\":true}"));
    char dir[64];
    wisp_tokenizer *hf = load_fixture(root, NULL, dir);
    CHECK_EQ_STR(wisp_tokenizer_model_name(hf), "gpt2");
    compare_cases(name, hf, gg);
    wisp_tokenizer_free(hf);
    wisp_tokenizer_free(gg);
    json_decref(root);
    remove_fixture(dir);
    wisp_gguf_close(g);
}

#define BYTELEVEL(re) \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":" re "}"
#define ISOLATED(rx)                                                                           \
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":" rx "},\"behavior\":\"Isolated\",\"invert\":" \
    "false}"

TEST(hf_gpt2_bytelevel) { check_bpe("gpt-2", BYTELEVEL("true"), false); }

TEST(hf_starcoder_digits_bytelevel)
{
    check_bpe("starcoder",
              "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\","
              "\"individual_digits\":true}," BYTELEVEL("true") "]}",
              true);
}

TEST(hf_deepseek_coder_split_sequence)
{
    check_bpe(
        "deepseek-coder",
        "{\"type\":\"Sequence\",\"pretokenizers\":[" ISOLATED("\"[\\r\\n]\"") "," ISOLATED(
            "\"\\\\s?\\\\p{L}+\"") "," ISOLATED("\"\\\\s?\\\\p{P}+\"") "," ISOLATED("\"["
                                                                                    "\xe4\xb8\x80-"
                                                                                    "\xe9\xbe\xa5"
                                                                                    "\xe0\xa0\x80-"
                                                                                    "\xe4\xb8\x80"
                                                                                    "\xea\xb0\x80-"
                                                                                    "\xed\x9f\xbf]+"
                                                                                    "\"") ","
                                                                                          "{\"type"
                                                                                          "\":"
                                                                                          "\"Digits"
                                                                                          "\","
                                                                                          "\"indivi"
                                                                                          "dual_"
                                                                                          "digits\""
                                                                                          ":true}"
                                                                                          "," BYTELEVEL(
                                                                                              "fals"
                                                                                              "e") "]}",
        true);
}

TEST(hf_falcon_punctuation_digits)
{
    check_bpe("falcon",
              "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Punctuation\","
              "\"behavior\":\"Contiguous\"}," BYTELEVEL("true") "," ISOLATED(
                  "\"[0-9][0-9][0-9]\"") "]}",
              false);
}

TEST(hf_llama_spm_byte_fallback)
{
    wisp_gguf *g = open_vocab("llama-spm");
    wisp_tokenizer *gg = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_tokenizer_from_gguf(g, &gg, &err) == 0);
    json_t *root = json_object(), *model = json_object();
    json_object_set_new(model, "type", json_string("BPE"));
    json_object_set_new(model, "byte_fallback", json_true());
    json_object_set_new(model, "fuse_unk", json_true());
    json_object_set_new(model, "unk_token", json_string("<unk>"));
    add_vocab(root, model, gg);
    add_spm_merges(model, g, gg);
    json_object_set_new(root, "model", model);
    json_object_set_new(root, "normalizer",
                        parse("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\","
                              "\"prepend\":\"\xe2\x96\x81\"},"
                              "{\"type\":\"Replace\",\"pattern\":{\"String\":\" "
                              "\"},\"content\":\"\xe2\x96\x81\"}]}"));
    json_object_set_new(root, "pre_tokenizer", json_null());
    json_object_set_new(
        root, "decoder",
        parse(
            "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
            "\"\xe2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
            "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}"));
    char dir[64];
    wisp_tokenizer *hf = load_fixture(root,
                                      "{\"add_bos_token\": true, \"add_eos_token\": false,"
                                      " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}",
                                      dir);
    CHECK_EQ_STR(wisp_tokenizer_model_name(hf), "llama");
    CHECK(wisp_tokenizer_add_bos(hf));
    CHECK(!wisp_tokenizer_add_eos(hf));
    CHECK_EQ_INT(wisp_tokenizer_special(hf)->bos, 1);
    CHECK_EQ_INT(wisp_tokenizer_special(hf)->eos, 2);
    CHECK_EQ_INT(wisp_tokenizer_special(hf)->unk, 0);
    compare_cases("llama-spm", hf, gg);
    /* BOS from the config, and special parsing, as the GGUF path */
    wisp_tokens a = {0}, b = {0};
    const char *s = "<s>Hello</s> world";
    CHECK(wisp_tokenize(hf, s, strlen(s), true, true, &a, &err) == 0);
    CHECK(wisp_tokenize(gg, s, strlen(s), true, true, &b, &err) == 0);
    CHECK(a.n == b.n && a.n > 2 && !memcmp(a.ids, b.ids, a.n * 4));
    CHECK_EQ_INT(a.ids[0], 1);
    wisp_tokens_free(&a);
    wisp_tokens_free(&b);
    wisp_tokenizer_free(hf);
    wisp_tokenizer_free(gg);
    json_decref(root);
    remove_fixture(dir);
    wisp_gguf_close(g);
}

/* An added token with empty text must not be matched at every offset of
 * the text (it once made the special-token split loop forever). */
TEST(hf_empty_special_token_is_never_matched)
{
    char dir[32];
    json_t *root = parse("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2},"
                         "\"merges\":[]},"
                         "\"added_tokens\":[{\"id\":3,\"content\":\"\",\"special\":true},"
                         "{\"id\":4,\"content\":\"<s>\",\"special\":true}]}");
    wisp_tokenizer *tok = load_fixture(root, NULL, dir);
    json_decref(root);
    wisp_err err = {0};
    for (int ps = 0; ps < 2; ps++) {
        wisp_tokens t = {0};
        CHECK_EQ_INT(wisp_tokenize(tok, "ab<s>c", 6, false, ps, &t, &err), 0);
        const int32_t want_ps[] = {0, 1, 4, 2};
        if (ps) {
            CHECK_EQ_INT((int)t.n, 4);
            for (size_t i = 0; i < t.n && i < 4; i++)
                CHECK_EQ_INT(t.ids[i], want_ps[i]);
        } else {
            for (size_t i = 0; i < t.n; i++)
                CHECK(t.ids[i] != 3);
        }
        wisp_tokens_free(&t);
    }
    wisp_tokenizer_free(tok);
    remove_fixture(dir);
}

TEST(hf_rejects_unsupported_blocks)
{
    const char *bad[] = {
        "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":"
        "\"Isolated\"}}",
        /* a sparse vocabulary would allocate half a billion placeholders */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":500000000},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"added_tokens\":[{\"id\":70000,\"content\":\"<x>\"}]}",
    };
    const int want[] = {WISP_E_UNSUPPORTED, WISP_E_UNSUPPORTED, WISP_E_FORMAT,
                        WISP_E_FORMAT,      WISP_E_FORMAT,      WISP_E_FORMAT};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[] = "/tmp/wisp-tokjson-XXXXXX", path[128];
        REQUIRE(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        FILE *f = fopen(path, "w");
        REQUIRE(f);
        fputs(bad[i], f);
        fclose(f);
        wisp_tokenizer *tok = NULL;
        wisp_err err = {0};
        int rc = wisp_tokenizer_from_hf(path, &tok, &err);
        CHECK_EQ_INT(rc, want[i]);
        CHECK(tok == NULL);
        CHECK(strlen(err.msg) > 0);
        remove_fixture(dir);
    }
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_tokenizer_from_hf("/nonexistent/tokenizer.json", &tok, &err), WISP_E_IO);
}
