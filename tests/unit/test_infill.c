/*
 * test_infill.c - fill-in-the-middle prompt construction on the shared
 * vocabularies: FIM ids per family, the layout token by token (PSM, SPM,
 * repository context with separator tokens and with commented headers),
 * special-token text in user code, a vocabulary without FIM tokens, and the
 * context budget (extra chunks first, then whole lines from the far ends).
 *
 * Expected sequences are written from the documented formats (fim_prompt.h):
 * each text piece tokenized on its own with parse_special = false, markers
 * as the ids the vocabulary file holds, and the whole checked again as the
 * rendered text a reader of the model card would write down.
 */
#include <stdarg.h>

#include "harness.h"
#include "infill/fim_prompt.h"
/* tok_testutil.h has helpers this file does not use */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tok_testutil.h"
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------- helpers */

/* Appends pieces to an expected sequence: ids as given, texts tokenized. */
static void exp_id(wisp_tokens *e, int32_t id) { REQUIRE(wisp_tokens_push(e, id) == 0); }

static void exp_text(wisp_tokens *e, const wisp_tokenizer *tok, const char *s)
{
    wisp_err err = {0};
    REQUIRE(wisp_tokenize(tok, s, strlen(s), false, false, e, &err) == 0);
}

static bool same_tokens(const wisp_tokens *got, const wisp_tokens *want)
{
    bool same = got->n == want->n && memcmp(got->ids, want->ids, got->n * sizeof(int32_t)) == 0;
    if (!same) {
        tu_print_ids("got ", got->ids, got->n);
        tu_print_ids("want", want->ids, want->n);
    }
    return same;
}

/* The sequence as text, special tokens spelled out. Caller frees. */
static char *render(const wisp_tokenizer *tok, const wisp_tokens *t)
{
    char *s = NULL;
    size_t n;
    wisp_err err = {0};
    REQUIRE(wisp_detokenize(tok, t->ids, t->n, WISP_DETOK_RENDER_SPECIAL, &s, &n, &err) == 0);
    return s;
}

static wisp_infill_req base_req(const char *prefix, const char *suffix, const char *prompt)
{
    return (wisp_infill_req){
        .prefix = prefix,
        .prefix_len = strlen(prefix),
        .suffix = suffix,
        .suffix_len = strlen(suffix),
        .prompt = prompt,
        .prompt_len = prompt ? strlen(prompt) : 0,
        .n_ctx = 4096,
        .max_tokens = 64,
    };
}

static int build(const wisp_tokenizer *tok, const wisp_infill_req *req, wisp_infill_prompt *p,
                 wisp_err *err)
{
    *p = (wisp_infill_prompt){0};
    return wisp_infill_build(tok, req, p, err);
}

static size_t count_id(const wisp_tokens *t, int32_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += t->ids[i] == id;
    return n;
}

static const char k_pre[] = "def add(a, b):\n";
static const char k_suf[] = "\n\nprint(add(1, 2))\n";
static const char k_typed[] = "    return";

/* ---------------------------------------------------------------- FIM ids */

TEST(resolve_shared_vocabularies)
{
    static const struct {
        const char *vocab, *family;
        int32_t pre, suf, mid, pad, rep, sep;
    } cases[] = {
        {"deepseek-coder", "deepseek-coder", 32016, 32015, 32017, -1, -1, -1},
        /* StarCoder2 vocabulary: <repo_name> is found by the family table */
        {"starcoder", "starcoder2", 1, 3, 2, 4, 5, 6},
        /* refact (StarCoder 1 layout): <filename> is the file header token */
        {"refact", "starcoder", 1, 3, 2, 4, 18, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wisp_tokenizer *tok = tu_load_vocab(cases[i].vocab);
        REQUIRE(tok);
        wisp_fim_tokens f;
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_fim_resolve(tok, &f, &err), 0);
        CHECK_EQ_STR(f.family, cases[i].family);
        CHECK_EQ_INT(f.pre, cases[i].pre);
        CHECK_EQ_INT(f.suf, cases[i].suf);
        CHECK_EQ_INT(f.mid, cases[i].mid);
        CHECK_EQ_INT(f.pad, cases[i].pad);
        CHECK_EQ_INT(f.rep, cases[i].rep);
        CHECK_EQ_INT(f.sep, cases[i].sep);
        /* every FIM id ends a completion, ordinary text ids do not */
        int32_t ids[] = {f.pre, f.suf, f.mid, f.pad, f.rep, f.sep};
        for (int r = 0; r < 6; r++)
            CHECK(wisp_fim_ends_generation(&f, ids[r]) == (ids[r] >= 0));
        CHECK(!wisp_fim_ends_generation(&f, wisp_tokenizer_find(tok, "def", 3)));
        CHECK(!wisp_fim_ends_generation(&f, -1));
        wisp_tokenizer_free(tok);
    }
}

TEST(no_fim_tokens_is_a_clear_error)
{
    static const char *const vocabs[] = {"llama-spm", "gpt-2"};
    for (size_t i = 0; i < 2; i++) {
        wisp_tokenizer *tok = tu_load_vocab(vocabs[i]);
        REQUIRE(tok);
        wisp_fim_tokens f;
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_fim_resolve(tok, &f, &err), WISP_E_UNSUPPORTED);
        CHECK(strstr(err.msg, "missing: prefix, suffix, middle") != NULL);
        CHECK(strstr(err.msg, "fim_pre") != NULL);
        wisp_infill_req req = base_req(k_pre, k_suf, NULL);
        wisp_infill_prompt p;
        wisp_err err2 = {0};
        CHECK_EQ_INT(build(tok, &req, &p, &err2), WISP_E_UNSUPPORTED);
        CHECK_EQ_STR(err2.msg, err.msg);
        CHECK_EQ_INT(p.tokens.n, 0);
        wisp_infill_prompt_free(&p);
        wisp_tokenizer_free(tok);
    }
}

/* ---------------------------------------------------------------- layout */

/* [BOS?] PRE prefix SUF suffix MID prompt, per vocabulary. */
static void check_psm(const char *vocab, bool bos, int32_t pre, int32_t suf, int32_t mid,
                      const char *rendered)
{
    wisp_tokenizer *tok = tu_load_vocab(vocab);
    REQUIRE(tok);
    wisp_infill_req req = base_req(k_pre, k_suf, k_typed);
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);

    wisp_tokens want = {0};
    if (bos)
        exp_id(&want, wisp_tokenizer_special(tok)->bos);
    exp_id(&want, pre);
    exp_text(&want, tok, k_pre);
    exp_id(&want, suf);
    exp_text(&want, tok, k_suf);
    exp_id(&want, mid);
    exp_text(&want, tok, k_typed);
    CHECK(same_tokens(&p.tokens, &want));

    char *s = render(tok, &p.tokens);
    CHECK_EQ_STR(s, rendered);
    free(s);
    CHECK_EQ_INT(p.n_extra_tokens, 0);
    CHECK_EQ_INT(p.n_prompt_tokens + p.n_prefix_tokens + p.n_suffix_tokens + 3 + bos,
                 (int)p.tokens.n);
    CHECK(!wisp_infill_trimmed(&p.trim));
    wisp_tokens_free(&want);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
}

TEST(psm_starcoder)
{
    check_psm("starcoder", false, 1, 3, 2,
              "<fim_prefix>def add(a, b):\n<fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>    "
              "return");
}

TEST(psm_refact)
{
    check_psm("refact", false, 1, 3, 2,
              "<fim_prefix>def add(a, b):\n<fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>    "
              "return");
}

TEST(psm_deepseek_coder)
{
    check_psm("deepseek-coder", true, 32016, 32015, 32017,
              "<｜begin▁of▁sentence｜><｜fim▁begin｜>def add(a, "
              "b):\n<｜fim▁hole｜>\n\nprint(add(1, "
              "2))\n<｜fim▁end｜>    return");
}

TEST(spm_order_starcoder)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    wisp_infill_req req = base_req(k_pre, k_suf, k_typed);
    req.order = WISP_FIM_SPM;
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);
    wisp_tokens want = {0};
    exp_id(&want, 3);
    exp_text(&want, tok, k_suf);
    exp_id(&want, 1);
    exp_text(&want, tok, k_pre);
    exp_id(&want, 2);
    exp_text(&want, tok, k_typed);
    CHECK(same_tokens(&p.tokens, &want));
    char *s = render(tok, &p.tokens);
    CHECK_EQ_STR(s, "<fim_suffix>\n\nprint(add(1, 2))\n<fim_prefix>def add(a, b):\n<fim_middle>    "
                    "return");
    free(s);
    wisp_tokens_free(&want);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
}

/* The typed prompt comes after MID, so the part before MID does not change
 * while the user types on the cursor line. */
TEST(typed_prompt_keeps_the_prefix_part_stable)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    wisp_infill_req a = base_req(k_pre, k_suf, "    ret"),
                    b = base_req(k_pre, k_suf, "    return a");
    wisp_infill_prompt pa, pb;
    wisp_err err = {0};
    REQUIRE(build(tok, &a, &pa, &err) == 0 && build(tok, &b, &pb, &err) == 0);
    size_t stable = pa.tokens.n - (size_t)pa.n_prompt_tokens;
    CHECK(stable == pb.tokens.n - (size_t)pb.n_prompt_tokens);
    CHECK(pa.tokens.ids[stable - 1] == 2 && pb.tokens.ids[stable - 1] == 2);
    CHECK(memcmp(pa.tokens.ids, pb.tokens.ids, stable * sizeof(int32_t)) == 0);
    CHECK(pb.n_prompt_tokens > pa.n_prompt_tokens);
    wisp_infill_prompt_free(&pa);
    wisp_infill_prompt_free(&pb);
    wisp_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- repo context */

static const wisp_infill_chunk k_chunks[] = {
    {"util/a.py", "x = 1\n", 6}, {"b.py", "y = 2", 5}, /* no final newline: one is added */
};

TEST(repo_context_with_separator_tokens)
{
    static const struct {
        const char *vocab, *text;
    } cases[] = {
        {"starcoder", "<repo_name>myproject\n<file_sep>util/a.py\nx = 1\n<file_sep>b.py\ny = 2\n"
                      "<file_sep>main.py\n<fim_prefix>def add(a, b):\n<fim_suffix>\n\nprint(add(1, "
                      "2))\n<fim_middle>"},
        {"refact", "<reponame>myproject\n<filename>util/a.py\nx = 1\n<filename>b.py\ny = 2\n"
                   "<filename>main.py\n<fim_prefix>def add(a, b):\n<fim_suffix>\n\nprint(add(1, "
                   "2))\n<fim_middle>"},
    };
    for (size_t i = 0; i < 2; i++) {
        wisp_tokenizer *tok = tu_load_vocab(cases[i].vocab);
        REQUIRE(tok);
        wisp_infill_req req = base_req(k_pre, k_suf, NULL);
        req.extra = k_chunks;
        req.n_extra = 2;
        req.filename = "main.py";
        wisp_infill_prompt p;
        wisp_err err = {0};
        REQUIRE(build(tok, &req, &p, &err) == 0);
        wisp_fim_tokens *f = &p.fim;
        wisp_tokens want = {0};
        exp_id(&want, f->rep);
        exp_text(&want, tok, "myproject\n");
        exp_id(&want, f->sep);
        exp_text(&want, tok, "util/a.py\nx = 1\n");
        exp_id(&want, f->sep);
        exp_text(&want, tok, "b.py\ny = 2\n");
        exp_id(&want, f->sep);
        exp_text(&want, tok, "main.py\n");
        size_t n_extra = want.n;
        exp_id(&want, f->pre);
        exp_text(&want, tok, k_pre);
        exp_id(&want, f->suf);
        exp_text(&want, tok, k_suf);
        exp_id(&want, f->mid);
        CHECK(same_tokens(&p.tokens, &want));
        CHECK_EQ_INT(p.n_extra_tokens, n_extra);
        char *s = render(tok, &p.tokens);
        CHECK_EQ_STR(s, cases[i].text);
        free(s);
        /* a custom repository name */
        wisp_infill_prompt q;
        req.repo_name = "wisp";
        REQUIRE(build(tok, &req, &q, &err) == 0);
        s = render(tok, &q.tokens);
        CHECK(strstr(s, "wisp\n") == s + strlen(i == 0 ? "<repo_name>" : "<reponame>"));
        free(s);
        wisp_infill_prompt_free(&q);
        wisp_tokens_free(&want);
        wisp_infill_prompt_free(&p);
        wisp_tokenizer_free(tok);
    }
}

/* Without a file-separator token, chunks get commented headers in the
 * syntax of their own extension; the current file too, after chunks. */
TEST(repo_context_as_commented_headers)
{
    wisp_tokenizer *tok = tu_load_vocab("deepseek-coder");
    REQUIRE(tok);
    static const wisp_infill_chunk chunks[] = {
        {"lib/util.c", "int one(void) { return 1; }\n", 28},
        {"page.html", "<p>hi</p>\n", 10},
        {"conf.lua", "x = 1\n", 6},
        {NULL, "z\n", 2},
    };
    wisp_infill_req req = base_req(k_pre, k_suf, NULL);
    req.extra = chunks;
    req.n_extra = 4;
    req.filename = "main.py";
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.fim.sep, -1);
    wisp_tokens want = {0};
    exp_id(&want, 32013);
    exp_text(&want, tok, "// lib/util.c\nint one(void) { return 1; }\n");
    exp_text(&want, tok, "<!-- page.html -->\n<p>hi</p>\n");
    exp_text(&want, tok, "-- conf.lua\nx = 1\n");
    exp_text(&want, tok, "// tmp\nz\n");
    exp_text(&want, tok, "# main.py\n");
    exp_id(&want, 32016);
    exp_text(&want, tok, k_pre);
    exp_id(&want, 32015);
    exp_text(&want, tok, k_suf);
    exp_id(&want, 32017);
    CHECK(same_tokens(&p.tokens, &want));
    wisp_tokens_free(&want);
    wisp_infill_prompt_free(&p);

    /* a filename alone adds no header without chunks to separate from */
    req.n_extra = 0;
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.tokens.ids[1], 32016);
    CHECK_EQ_INT(p.n_extra_tokens, 0);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- user text */

TEST(special_token_text_in_user_code_stays_text)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    const char *pre = "s = \"<|endoftext|>\"  # <fim_prefix>\n";
    const char *suf = "\nt = '<fim_middle><file_sep><repo_name>'\n";
    const char *typed = "u = '<fim_suffix>'";
    wisp_infill_req req = base_req(pre, suf, typed);
    static const wisp_infill_chunk chunk[] = {{"<file_sep>.py", "<fim_pad><|endoftext|>\n", 23}};
    req.extra = chunk;
    req.n_extra = 1;
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);
    /* every marker id appears only where the layout puts it */
    CHECK_EQ_INT(count_id(&p.tokens, 0), 0); /* <|endoftext|> */
    CHECK_EQ_INT(count_id(&p.tokens, 1), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 2), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 3), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 4), 0);
    CHECK_EQ_INT(count_id(&p.tokens, 5), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 6), 2); /* the chunk's and the current file's */
    char *s = render(tok, &p.tokens);
    char want[512];
    snprintf(want, sizeof want,
             "<repo_name>myproject\n<file_sep><file_sep>.py\n<fim_pad><|endoftext|>\n"
             "<file_sep>untitled\n<fim_prefix>%s<fim_suffix>%s<fim_middle>%s",
             pre, suf, typed);
    CHECK_EQ_STR(s, want);
    free(s);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);

    tok = tu_load_vocab("deepseek-coder");
    REQUIRE(tok);
    const char *ds = "x = '<｜fim▁hole｜><｜fim▁end｜><｜end▁of▁sentence｜>'\n";
    req = base_req(ds, ds, ds);
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(count_id(&p.tokens, 32015), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 32016), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 32017), 1);
    CHECK_EQ_INT(count_id(&p.tokens, 32014), 0);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
}

TEST(bad_input_is_an_error_naming_the_part)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    wisp_infill_req req = base_req(k_pre, "ok\n\xff\xfe\n", NULL);
    wisp_infill_prompt p;
    wisp_err err = {0};
    CHECK_EQ_INT(build(tok, &req, &p, &err), WISP_E_INVALID);
    CHECK(strstr(err.msg, "input_suffix") != NULL);
    wisp_infill_prompt_free(&p);

    req = base_req(k_pre, k_suf, NULL);
    req.max_tokens = 4096;
    CHECK_EQ_INT(build(tok, &req, &p, &err), WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "max_tokens") != NULL);
    wisp_infill_prompt_free(&p);
    req.max_tokens = -1;
    CHECK_EQ_INT(build(tok, &req, &p, &err), WISP_E_INVALID);
    wisp_infill_prompt_free(&p);
    req = base_req(k_pre, k_suf, NULL);
    req.order = (wisp_fim_order)7;
    CHECK_EQ_INT(build(tok, &req, &p, &err), WISP_E_INTERNAL);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- budget */

/* A document of n lines "line NN: value = NN*7\n". Caller frees. */
static char *lines_doc(int first, int n)
{
    char *s = malloc((size_t)n * 40 + 1);
    REQUIRE(s);
    size_t k = 0;
    for (int i = first; i < first + n; i++)
        k += (size_t)sprintf(s + k, "line %02d: value = %d\n", i, i * 7);
    return s;
}

static size_t ntok(const wisp_tokenizer *tok, const char *s, size_t n)
{
    wisp_tokens t = {0};
    wisp_err err = {0};
    REQUIRE(wisp_tokenize(tok, s, n, false, false, &t, &err) == 0);
    size_t r = t.n;
    wisp_tokens_free(&t);
    return r;
}

/* Offset of the start of line k (0-based) of s. */
static size_t line_off(const char *s, int k)
{
    size_t o = 0;
    for (int i = 0; i < k; i++)
        o = (size_t)(strchr(s + o, '\n') - s) + 1;
    return o;
}

TEST(budget_drops_extra_chunks_first_furthest_first)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    char *c0 = lines_doc(0, 10), *c1 = lines_doc(10, 10), *c2 = lines_doc(20, 10);
    wisp_infill_chunk chunks[] = {{"c0.py", c0, strlen(c0)},
                                  {"c1.py", c1, strlen(c1)},
                                  {"c2.py", c2, strlen(c2)}};
    wisp_infill_req req = base_req(k_pre, k_suf, k_typed);
    req.extra = chunks;
    req.n_extra = 3;
    req.filename = "main.py";
    wisp_infill_prompt full;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &full, &err) == 0);
    CHECK(!wisp_infill_trimmed(&full.trim));
    size_t chunk_n[3];
    for (int i = 0; i < 3; i++) {
        char b[512];
        snprintf(b, sizeof b, "c%d.py\n%s", i, chunks[i].text);
        chunk_n[i] = 1 + ntok(tok, b, strlen(b));
    }
    /* one token short of fitting all: chunk 0 goes, only it */
    req.max_tokens = 100;
    req.n_ctx = (int32_t)full.tokens.n + req.max_tokens - 1;
    wisp_infill_prompt p;
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.trim.extra_dropped, 1);
    CHECK_EQ_INT(p.trim.extra_tokens_dropped, chunk_n[0]);
    CHECK_EQ_INT(p.trim.prefix_lines_trimmed + p.trim.suffix_lines_trimmed, 0);
    CHECK_EQ_INT(p.tokens.n, full.tokens.n - chunk_n[0]);
    char *s = render(tok, &p.tokens);
    CHECK(strstr(s, "c0.py") == NULL && strstr(s, "c1.py") && strstr(s, "c2.py"));
    free(s);
    wisp_infill_prompt_free(&p);
    /* room for none of them: all three go, prefix and suffix untouched */
    req.n_ctx = (int32_t)(full.tokens.n - chunk_n[0] - chunk_n[1] - chunk_n[2]) + req.max_tokens;
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.trim.extra_dropped, 3);
    CHECK_EQ_INT(p.trim.extra_tokens_dropped, chunk_n[0] + chunk_n[1] + chunk_n[2]);
    CHECK_EQ_INT(p.trim.prefix_lines_trimmed + p.trim.suffix_lines_trimmed, 0);
    CHECK_EQ_INT(p.tokens.n + (size_t)req.max_tokens, (size_t)req.n_ctx);
    wisp_infill_prompt_free(&p);
    wisp_infill_prompt_free(&full);
    free(c0), free(c1), free(c2);
    wisp_tokenizer_free(tok);
}

TEST(budget_trims_whole_lines_from_the_prefix_beginning)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    char *pre = lines_doc(0, 60);
    static const wisp_infill_chunk chunk[] = {{"x.py", "x = 1\n", 6}};
    wisp_infill_req req = base_req(pre, k_suf, k_typed);
    req.extra = chunk;
    req.n_extra = 1;
    req.max_tokens = 32;
    size_t n_pre = ntok(tok, pre, strlen(pre)), n_suf = ntok(tok, k_suf, strlen(k_suf));
    size_t fixed = 3 + ntok(tok, k_typed, strlen(k_typed)) + (1 + ntok(tok, "myproject\n", 10)) +
                   (1 + ntok(tok, "untitled\n", 9));
    req.n_ctx = (int32_t)(fixed + n_suf + n_pre / 2 + (size_t)req.max_tokens);
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);
    int cut = p.trim.prefix_lines_trimmed;
    CHECK_EQ_INT(p.trim.extra_dropped, 1);
    CHECK(cut > 0 && cut < 60);
    CHECK_EQ_INT(p.trim.suffix_lines_trimmed, 0);
    CHECK_EQ_INT(p.trim.suffix_tokens_trimmed, 0);
    CHECK(p.tokens.n + (size_t)req.max_tokens <= (size_t)req.n_ctx);
    /* the kept prefix is exactly the last 60 - cut lines, tokenized whole */
    size_t kept_off = line_off(pre, cut);
    size_t kept_n = ntok(tok, pre + kept_off, strlen(pre) - kept_off);
    CHECK_EQ_INT(p.n_prefix_tokens, kept_n);
    CHECK_EQ_INT(p.trim.prefix_tokens_trimmed, n_pre - kept_n);
    CHECK_EQ_INT(p.n_suffix_tokens, n_suf);
    /* and one line fewer cut would not have fit */
    size_t prev_off = line_off(pre, cut - 1);
    CHECK(fixed + n_suf + ntok(tok, pre + prev_off, strlen(pre) - prev_off) +
              (size_t)req.max_tokens >
          (size_t)req.n_ctx);
    char *s = render(tok, &p.tokens);
    char want[256];
    snprintf(want, sizeof want, "<fim_prefix>%.20s", pre + kept_off);
    CHECK(strstr(s, want) != NULL);
    free(s);
    wisp_infill_prompt_free(&p);
    free(pre);
    wisp_tokenizer_free(tok);
}

TEST(budget_trims_the_suffix_end_keeping_a_quarter)
{
    wisp_tokenizer *tok = tu_load_vocab("refact");
    REQUIRE(tok);
    char *pre = lines_doc(0, 80), *suf = lines_doc(100, 80);
    wisp_infill_req req = base_req(pre, suf, NULL);
    req.max_tokens = 16;
    size_t n_pre = ntok(tok, pre, strlen(pre)), n_suf = ntok(tok, suf, strlen(suf));
    size_t room = n_pre / 2;
    req.n_ctx = (int32_t)(3 + room + (size_t)req.max_tokens);
    wisp_infill_prompt p;
    wisp_err err = {0};
    REQUIRE(build(tok, &req, &p, &err) == 0);
    int scut = p.trim.suffix_lines_trimmed, pcut = p.trim.prefix_lines_trimmed;
    CHECK(scut > 0 && scut < 80 && pcut > 0 && pcut < 80);
    /* suffix: the first 80 - scut lines, at most a quarter of the room, and
     * one more line would pass the quarter */
    size_t keep_end = line_off(suf, 80 - scut);
    size_t s_n = ntok(tok, suf, keep_end);
    CHECK_EQ_INT(p.n_suffix_tokens, s_n);
    CHECK(s_n <= room / 4);
    CHECK(ntok(tok, suf, line_off(suf, 80 - scut + 1)) > room / 4);
    CHECK_EQ_INT(p.trim.suffix_tokens_trimmed, n_suf - s_n);
    /* prefix: the rest of the room */
    size_t pre_off = line_off(pre, pcut);
    CHECK_EQ_INT(p.n_prefix_tokens, ntok(tok, pre + pre_off, strlen(pre) - pre_off));
    CHECK((size_t)p.n_prefix_tokens <= room - s_n);
    CHECK(p.tokens.n + (size_t)req.max_tokens <= (size_t)req.n_ctx);
    char *s = render(tok, &p.tokens);
    char want[512];
    snprintf(want, sizeof want, "<fim_suffix>%.*s<fim_middle>", (int)keep_end, suf);
    CHECK(strstr(s, want) != NULL);
    free(s);
    wisp_infill_prompt_free(&p);

    /* a short suffix keeps all its lines; the prefix takes what is left */
    req = base_req(pre, k_suf, NULL);
    req.max_tokens = 16;
    req.n_ctx = (int32_t)(3 + room + (size_t)req.max_tokens);
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.trim.suffix_lines_trimmed, 0);
    CHECK(p.trim.prefix_lines_trimmed > 0);
    CHECK(p.tokens.n + (size_t)req.max_tokens <= (size_t)req.n_ctx);
    wisp_infill_prompt_free(&p);
    free(pre), free(suf);
    wisp_tokenizer_free(tok);
}

/* Lines whose tokens straddle line ends (blank lines, indentation runs), so
 * estimates from the whole text are off near some cuts. Caller frees. */
static char *ragged_doc(int n)
{
    char *s = malloc((size_t)n * 48 + 1);
    REQUIRE(s);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "%*s%s%d\n%s", (i % 4) * 4, "", i % 3 ? "x = " : "if y", i * 13,
                             i % 5 ? "" : "\n");
    return s;
}

/* For every budget: the result fits, and cutting one line fewer would not
 * (whichever way the estimate missed), for the prefix and for the suffix. */
static void check_minimal_cuts(const char *vocab)
{
    wisp_tokenizer *tok = tu_load_vocab(vocab);
    REQUIRE(tok);
    char *doc = ragged_doc(50);
    size_t n_doc = ntok(tok, doc, strlen(doc));
    const char *small = "z\n";
    size_t n_small = ntok(tok, small, 2);
    size_t fixed = 3 + (wisp_tokenizer_add_bos(tok) && wisp_tokenizer_special(tok)->bos >= 0);
    for (int side = 0; side < 2; side++) {
        /* from where the suffix's quarter holds "z\n" */
        for (size_t room = 4 * n_small + 4; room < n_doc + n_small; room++) {
            wisp_infill_req req =
                side == 0 ? base_req(doc, small, NULL) : base_req(small, doc, NULL);
            req.max_tokens = 10;
            req.n_ctx = (int32_t)(fixed + room + 10);
            wisp_infill_prompt p;
            wisp_err err = {0};
            REQUIRE(build(tok, &req, &p, &err) == 0);
            CHECK(p.tokens.n + 10 <= (size_t)req.n_ctx);
            int cut = side == 0 ? p.trim.prefix_lines_trimmed : p.trim.suffix_lines_trimmed;
            CHECK_EQ_INT(side == 0 ? p.trim.suffix_lines_trimmed : p.trim.prefix_lines_trimmed, 0);
            CHECK(cut > 0);
            /* the kept text and the one with a line more */
            int n_lines = 50 + 10; /* ragged_doc adds a blank line every 5 */
            size_t kept_n, more_n;
            if (side == 0) {
                size_t o = line_off(doc, cut), o1 = line_off(doc, cut - 1);
                kept_n = ntok(tok, doc + o, strlen(doc) - o);
                more_n = ntok(tok, doc + o1, strlen(doc) - o1);
                CHECK_EQ_INT(p.n_prefix_tokens, kept_n);
            } else {
                kept_n = ntok(tok, doc, line_off(doc, n_lines - cut));
                more_n = ntok(tok, doc, line_off(doc, n_lines - cut + 1));
                CHECK_EQ_INT(p.n_suffix_tokens, kept_n);
            }
            CHECK(kept_n + n_small <= room);
            if (more_n + n_small <= room) {
                fprintf(stderr, "  side %d room %zu: cut %d is not minimal\n", side, room, cut);
                CHECK(0);
            }
            wisp_infill_prompt_free(&p);
        }
    }
    free(doc);
    wisp_tokenizer_free(tok);
}

/* Every budget on vocabularies with and without newline-plus-indentation
 * tokens (StarCoder's straddle line ends, so its estimates miss). */
TEST(budget_cut_is_minimal_for_every_budget)
{
    check_minimal_cuts("deepseek-coder");
    check_minimal_cuts("starcoder");
}

TEST(budget_too_small_for_the_fixed_parts)
{
    wisp_tokenizer *tok = tu_load_vocab("starcoder");
    REQUIRE(tok);
    char *typed = lines_doc(0, 20);
    wisp_infill_req req = base_req(k_pre, k_suf, typed);
    req.n_ctx = 64;
    req.max_tokens = 8;
    wisp_infill_prompt p;
    wisp_err err = {0};
    CHECK_EQ_INT(build(tok, &req, &p, &err), WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "typed prompt") != NULL);
    wisp_infill_prompt_free(&p);
    /* an empty prefix and suffix fit exactly the markers */
    req = base_req("a\nb\n", "c\nd\n", NULL);
    req.n_ctx = 3 + 8;
    req.max_tokens = 8;
    REQUIRE(build(tok, &req, &p, &err) == 0);
    CHECK_EQ_INT(p.tokens.n, 3);
    CHECK_EQ_INT(p.trim.prefix_lines_trimmed, 2);
    CHECK_EQ_INT(p.trim.suffix_lines_trimmed, 2);
    wisp_infill_prompt_free(&p);
    free(typed);
    wisp_tokenizer_free(tok);
}
