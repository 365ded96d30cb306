/*
 * test_infill_vocab.c - FIM families the shared vocabularies do not cover
 * (Qwen2.5-Coder, CodeGemma, CodeLlama, ids from metadata only, broken
 * metadata), on small vocabularies written here as in-memory GGUF files:
 * a byte-level BPE one (the 256 GPT-2 byte symbols plus the family's
 * special tokens) and a SentencePiece one (byte fallback plus CodeLlama's
 * markers).
 */
#include <stdint.h>

#include "harness.h"
#include "infill/fim_prompt.h"
#include "model/gguf.h"

/* ---------------------------------------------------------------- GGUF */

typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} gbuf;

static void put(gbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        REQUIRE(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void str(gbuf *b, const char *s) { u64(b, strlen(s)), put(b, s, strlen(s)); }

enum {
    T_U32 = 4,
    T_I32 = 5,
    T_F32 = 6,
    T_BOOL = 7,
    T_STR = 8,
    T_ARR = 9
};

static void kv_str(gbuf *b, const char *k, const char *v)
{
    str(b, k), u32(b, T_STR), str(b, v), b->n_kv++;
}
static void kv_u32(gbuf *b, const char *k, uint32_t v)
{
    str(b, k), u32(b, T_U32), u32(b, v), b->n_kv++;
}
static void kv_bool(gbuf *b, const char *k, bool v)
{
    unsigned char c = v;
    str(b, k), u32(b, T_BOOL), put(b, &c, 1), b->n_kv++;
}

/* A vocabulary under construction: texts and GGUF token types. */
typedef struct vocab {
    char *text[600];
    int32_t type[600];
    int n;
} vocab;

static int add(vocab *v, const char *s, int32_t type)
{
    REQUIRE(v->n < 600);
    v->text[v->n] = strdup(s);
    v->type[v->n] = type;
    return v->n++;
}

static void vocab_free(vocab *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->text[i]);
}

enum {
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_BYTE = 6
};

/* The tokens, types and scores arrays, then the file header in front. */
static wisp_tokenizer *open_vocab(const vocab *v, gbuf *kv)
{
    str(kv, "tokenizer.ggml.tokens"), u32(kv, T_ARR), u32(kv, T_STR), u64(kv, (uint64_t)v->n);
    for (int i = 0; i < v->n; i++)
        str(kv, v->text[i]);
    str(kv, "tokenizer.ggml.token_type"), u32(kv, T_ARR), u32(kv, T_I32), u64(kv, (uint64_t)v->n);
    for (int i = 0; i < v->n; i++)
        put(kv, &v->type[i], 4);
    str(kv, "tokenizer.ggml.scores"), u32(kv, T_ARR), u32(kv, T_F32), u64(kv, (uint64_t)v->n);
    for (int i = 0; i < v->n; i++) {
        float s = -(float)i;
        put(kv, &s, 4);
    }
    kv->n_kv += 3;
    gbuf file = {0};
    put(&file, "GGUF", 4);
    u32(&file, 3);
    u64(&file, 0);
    u64(&file, kv->n_kv);
    put(&file, kv->p, kv->n);
    free(kv->p);
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    wisp_tokenizer *tok = NULL;
    if (wisp_gguf_open_memory(file.p, file.n, &g, &err) == 0) {
        if (wisp_tokenizer_from_gguf(g, &tok, &err))
            fprintf(stderr, "  tokenizer: %s\n", err.msg);
        wisp_gguf_close(g);
    } else {
        fprintf(stderr, "  gguf: %s\n", err.msg);
    }
    free(file.p);
    return tok;
}

/* The GPT-2 byte-to-symbol table (printable bytes map to themselves, the
 * rest to U+0100 on), as UTF-8 token texts. */
static void add_byte_symbols(vocab *v)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)n++;
        char s[3] = {0};
        if (cp < 0x80) {
            s[0] = (char)cp;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        add(v, s, TT_NORMAL);
    }
}

/* A byte-level vocabulary with the given control tokens; metadata keys are
 * added by the caller through kv before. */
static wisp_tokenizer *bpe_vocab(const char *const *specials, gbuf *kv, vocab *v)
{
    add_byte_symbols(v);
    add(v, "ab", TT_NORMAL); /* the one merge "a b" */
    add(v, "<|endoftext|>", TT_CONTROL);
    for (size_t i = 0; specials[i]; i++)
        add(v, specials[i], TT_CONTROL);
    kv_str(kv, "tokenizer.ggml.model", "gpt2");
    kv_str(kv, "tokenizer.ggml.pre", "qwen2");
    kv_bool(kv, "tokenizer.ggml.add_bos_token", false);
    str(kv, "tokenizer.ggml.merges"), u32(kv, T_ARR), u32(kv, T_STR), u64(kv, 1), str(kv, "a b");
    kv->n_kv++;
    return open_vocab(v, kv);
}

static int32_t id_of(const wisp_tokenizer *tok, const char *s)
{
    return wisp_tokenizer_find(tok, s, strlen(s));
}

static char *render(const wisp_tokenizer *tok, const wisp_tokens *t)
{
    char *s = NULL;
    size_t n;
    wisp_err err = {0};
    REQUIRE(wisp_detokenize(tok, t->ids, t->n, WISP_DETOK_RENDER_SPECIAL, &s, &n, &err) == 0);
    return s;
}

static const wisp_infill_chunk k_chunk[] = {{"a.py", "x = 1\n", 6}};

static wisp_infill_req req_with_extra(void)
{
    return (wisp_infill_req){
        .prefix = "def f():\n",
        .prefix_len = 9,
        .suffix = "\nf()\n",
        .suffix_len = 5,
        .prompt = "    ret",
        .prompt_len = 7,
        .extra = k_chunk,
        .n_extra = 1,
        .filename = "main.py",
        .n_ctx = 512,
        .max_tokens = 32,
    };
}

/* ---------------------------------------------------------------- tests */

TEST(qwen25_coder_repo_level_format)
{
    static const char *const sp[] = {"<|fim_prefix|>",
                                     "<|fim_middle|>",
                                     "<|fim_suffix|>",
                                     "<|fim_pad|>",
                                     "<|repo_name|>",
                                     "<|file_sep|>",
                                     NULL};
    gbuf kv = {0};
    vocab v = {0};
    wisp_tokenizer *tok = bpe_vocab(sp, &kv, &v);
    REQUIRE(tok);
    wisp_fim_tokens f;
    wisp_err err = {0};
    REQUIRE(wisp_fim_resolve(tok, &f, &err) == 0);
    CHECK_EQ_STR(f.family, "qwen2.5-coder");
    CHECK_EQ_INT(f.pre, id_of(tok, "<|fim_prefix|>"));
    CHECK_EQ_INT(f.suf, id_of(tok, "<|fim_suffix|>"));
    CHECK_EQ_INT(f.mid, id_of(tok, "<|fim_middle|>"));
    CHECK_EQ_INT(f.pad, id_of(tok, "<|fim_pad|>"));
    CHECK_EQ_INT(f.rep, id_of(tok, "<|repo_name|>"));
    CHECK_EQ_INT(f.sep, id_of(tok, "<|file_sep|>"));
    wisp_infill_req req = req_with_extra();
    wisp_infill_prompt p = {0};
    REQUIRE(wisp_infill_build(tok, &req, &p, &err) == 0);
    char *s = render(tok, &p.tokens);
    CHECK_EQ_STR(s, "<|repo_name|>myproject\n<|file_sep|>a.py\nx = 1\n<|file_sep|>main.py\n"
                    "<|fim_prefix|>def f():\n<|fim_suffix|>\nf()\n<|fim_middle|>    ret");
    free(s);
    /* markers sit exactly where the layout says */
    CHECK_EQ_INT(p.tokens.ids[0], f.rep);
    CHECK_EQ_INT(p.tokens.ids[p.n_extra_tokens], f.pre);
    CHECK_EQ_INT(p.tokens.ids[p.n_extra_tokens + 1 + p.n_prefix_tokens], f.suf);
    CHECK_EQ_INT(p.tokens.ids[p.tokens.n - 1 - (size_t)p.n_prompt_tokens], f.mid);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
    vocab_free(&v);
}

TEST(codegemma_file_separator)
{
    static const char *const sp[] = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                                     "<|file_separator|>", NULL};
    gbuf kv = {0};
    vocab v = {0};
    wisp_tokenizer *tok = bpe_vocab(sp, &kv, &v);
    REQUIRE(tok);
    wisp_infill_req req = req_with_extra();
    wisp_infill_prompt p = {0};
    wisp_err err = {0};
    REQUIRE(wisp_infill_build(tok, &req, &p, &err) == 0);
    CHECK_EQ_STR(p.fim.family, "codegemma");
    CHECK_EQ_INT(p.fim.rep, -1);
    CHECK_EQ_INT(p.fim.sep, id_of(tok, "<|file_separator|>"));
    char *s = render(tok, &p.tokens);
    CHECK_EQ_STR(s, "<|file_separator|>a.py\nx = 1\n<|file_separator|>main.py\n"
                    "<|fim_prefix|>def f():\n<|fim_suffix|>\nf()\n<|fim_middle|>    ret");
    free(s);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
    vocab_free(&v);
}

TEST(codellama_sentencepiece_markers)
{
    gbuf kv = {0};
    vocab v = {0};
    add(&v, "<unk>", TT_UNKNOWN);
    int bos = add(&v, "<s>", TT_CONTROL);
    add(&v, "</s>", TT_CONTROL);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        add(&v, s, TT_BYTE);
    }
    int pre = add(&v, "\xE2\x96\x81<PRE>", TT_CONTROL),
        suf = add(&v, "\xE2\x96\x81<SUF>", TT_CONTROL),
        mid = add(&v, "\xE2\x96\x81<MID>", TT_CONTROL);
    add(&v, "\xE2\x96\x81<EOT>", TT_CONTROL);
    add(&v, "\xE2\x96\x81", TT_NORMAL);
    for (char c = 'a'; c <= 'z'; c++) {
        char s[2] = {c, 0};
        add(&v, s, TT_NORMAL);
    }
    kv_str(&kv, "tokenizer.ggml.model", "llama");
    wisp_tokenizer *tok = open_vocab(&v, &kv);
    REQUIRE(tok);
    wisp_infill_req req = req_with_extra();
    req.n_extra = 0;
    req.filename = NULL;
    wisp_infill_prompt p = {0};
    wisp_err err = {0};
    REQUIRE(wisp_infill_build(tok, &req, &p, &err) == 0);
    CHECK_EQ_STR(p.fim.family, "codellama");
    wisp_tokens want = {0};
    REQUIRE(wisp_tokens_push(&want, bos) == 0 && wisp_tokens_push(&want, pre) == 0);
    REQUIRE(wisp_tokenize(tok, req.prefix, req.prefix_len, false, false, &want, &err) == 0);
    REQUIRE(wisp_tokens_push(&want, suf) == 0);
    REQUIRE(wisp_tokenize(tok, req.suffix, req.suffix_len, false, false, &want, &err) == 0);
    REQUIRE(wisp_tokens_push(&want, mid) == 0);
    REQUIRE(wisp_tokenize(tok, req.prompt, req.prompt_len, false, false, &want, &err) == 0);
    CHECK_EQ_INT(p.tokens.n, want.n);
    CHECK(p.tokens.n == want.n && memcmp(p.tokens.ids, want.ids, want.n * 4) == 0);
    wisp_tokens_free(&want);
    wisp_infill_prompt_free(&p);
    wisp_tokenizer_free(tok);
    vocab_free(&v);
}

/* Ids named only by metadata, on texts no family uses. */
TEST(metadata_ids_without_known_texts)
{
    static const char *const sp[] = {"<A>", "<B>", "<C>", NULL};
    gbuf kv = {0};
    vocab v = {0};
    /* 256 byte symbols + "ab" + <|endoftext|> come first */
    kv_u32(&kv, "tokenizer.ggml.fim_pre_token_id", 258);
    kv_u32(&kv, "tokenizer.ggml.fim_suf_token_id", 259);
    kv_u32(&kv, "tokenizer.ggml.fim_mid_token_id", 260);
    wisp_tokenizer *tok = bpe_vocab(sp, &kv, &v);
    REQUIRE(tok);
    wisp_fim_tokens f;
    wisp_err err = {0};
    REQUIRE(wisp_fim_resolve(tok, &f, &err) == 0);
    CHECK_EQ_STR(f.family, "gguf");
    CHECK_EQ_INT(f.pre, id_of(tok, "<A>"));
    CHECK_EQ_INT(f.suf, id_of(tok, "<B>"));
    CHECK_EQ_INT(f.mid, id_of(tok, "<C>"));
    CHECK_EQ_INT(f.rep, -1);
    CHECK_EQ_INT(f.sep, -1);
    wisp_tokenizer_free(tok);
    vocab_free(&v);
}

TEST(broken_metadata_and_partial_families)
{
    static const char *const sp[] = {"<A>", "<B>", "<C>", NULL};
    gbuf kv = {0};
    vocab v = {0};
    kv_u32(&kv, "tokenizer.ggml.fim_pre_token_id", 258);
    kv_u32(&kv, "tokenizer.ggml.fim_suf_token_id", 258);
    kv_u32(&kv, "tokenizer.ggml.fim_mid_token_id", 260);
    wisp_tokenizer *tok = bpe_vocab(sp, &kv, &v);
    REQUIRE(tok);
    wisp_fim_tokens f;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_fim_resolve(tok, &f, &err), WISP_E_FORMAT);
    CHECK(strstr(err.msg, "prefix and suffix") != NULL);
    wisp_tokenizer_free(tok);
    vocab_free(&v);

    static const char *const only_pre[] = {"<|fim_prefix|>", NULL};
    kv = (gbuf){0};
    v = (vocab){0};
    tok = bpe_vocab(only_pre, &kv, &v);
    REQUIRE(tok);
    CHECK_EQ_INT(wisp_fim_resolve(tok, &f, &err), WISP_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "missing: suffix, middle") != NULL);
    wisp_tokenizer_free(tok);
    vocab_free(&v);
}
