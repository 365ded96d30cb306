/*
 * tok_int.h - the tokenizer's private structure, shared by its files.
 *
 * One immutable struct serves both loaders (GGUF, tokenizer.json) and both
 * merge algorithms (SentencePiece scores, BPE ranks). Token texts live in
 * one pool and are found through an open-addressing hash; BPE merges are a
 * second hash keyed by the (left, right) ids of their parts. Merge parts and
 * results that are not vocabulary tokens get "virtual" ids >= n_vocab so the
 * merge loop can work on ids alone, exactly as llama.cpp's string-keyed
 * maps behave; virtual ids are never emitted.
 */
#ifndef WISP_TOK_INT_H
#define WISP_TOK_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>

#include "tokenizer/tokenizer.h"

#define TOK_MAX_REGEX 8

/* A string table: id -> (pool offset, length); text -> id through a hash. */
typedef struct tok_strtab {
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *off;
    uint32_t *len;
    int32_t n, cap;
    int32_t *slots; /* -1 empty, else id */
    uint32_t mask;
} tok_strtab;

typedef struct tok_merge {
    int32_t left, right; /* left == -1 marks an empty slot */
    int32_t rank;
    int32_t result;
} tok_merge;

typedef enum tok_algo {
    TOK_ALGO_SPM = 1, /* highest-score bigram first, whole fragment */
    TOK_ALGO_BPE = 2, /* lowest-rank merge first, per pre-token */
} tok_algo;

typedef enum tok_unorm {
    TOK_UNORM_NONE = 0,
    TOK_UNORM_NFC,
    TOK_UNORM_NFD,
    TOK_UNORM_NFKC,
    TOK_UNORM_NFKD,
} tok_unorm;

typedef enum tok_prepend {
    TOK_PREPEND_NONE = 0,
    TOK_PREPEND_ALWAYS, /* every raw fragment (llama.cpp add_space_prefix) */
    TOK_PREPEND_FIRST,  /* only a fragment at the start of the text */
} tok_prepend;

struct wisp_tokenizer {
    wisp_tok_kind kind;
    tok_algo algo;
    char model_name[16];
    char pre_name[48];
    int32_t n_vocab;

    tok_strtab st;  /* ids [0, n_vocab) are tokens, the rest virtual */
    float *score;   /* n_vocab */
    uint32_t *attr; /* n_vocab, WISP_TOKATTR_* */

    tok_merge *merges; /* open-addressing hash */
    uint32_t merge_mask;
    int32_t n_merges;

    wisp_tok_special sp;
    bool add_bos, add_eos;
    bool clean_spaces;
    bool ignore_merges;
    bool byte_level;         /* GPT-2 byte <-> unicode mapping */
    bool byte_fallback;      /* unknown pieces become <0xXX> tokens (else unk) */
    bool strip_prefix_space; /* detokenize drops the first piece's space */

    /* Text preparation of each raw fragment, before the model. */
    tok_unorm unorm;
    tok_prepend prepend;
    char prepend_str[8];
    bool escape_spaces;          /* ' ' -> U+2581 */
    bool bytelevel_prefix_space; /* HF ByteLevel add_prefix_space */

    /* Pre-tokenizer: regexes applied in sequence (llama.cpp semantics). */
    pcre2_code *re[TOK_MAX_REGEX];
    int n_re;

    char b2u[256][2]; /* GPT-2 byte -> UTF-8 of its code point */
    uint8_t b2u_len[256];
    int16_t u2b[324]; /* code point (< 324) -> byte, -1 */
    int32_t byte_tok[256];
    bool barrier[256];
    /* bytes no multi-byte vocabulary string holds */ /* <0xXX> token (or the 1-byte token), -1 */
    uint8_t *eog;                                     /* n_vocab flags */
    int32_t *special_ids;                             /* partition candidates, longest text first */
    int32_t n_special;
};

/* ---- strtab.c ---- */
int tok_strtab_init(tok_strtab *t, int32_t cap_hint);
void tok_strtab_free(tok_strtab *t);
/* Adds a string as the next id (duplicates allowed: the hash then points to
 * the newest, like llama.cpp's token_to_id[word] = i). Returns the id or <0. */
int32_t tok_strtab_add(tok_strtab *t, const char *s, size_t n);
int32_t tok_strtab_find(const tok_strtab *t, const char *s, size_t n);
static inline const char *tok_strtab_str(const tok_strtab *t, int32_t id, size_t *n)
{
    *n = t->len[id];
    return t->pool + t->off[id];
}

/* ---- vocab.c: shared construction steps ---- */
/* Allocates per-token arrays once st holds the n_vocab tokens. */
int tok_vocab_alloc(wisp_tokenizer *tok, wisp_err *err);
/* Adds one merge (parts as strings); first occurrence of a pair wins. */
int tok_merge_add(wisp_tokenizer *tok, const char *l, size_t ln, const char *r, size_t rn,
                  int32_t rank, wisp_err *err);
int tok_merges_reserve(wisp_tokenizer *tok, size_t n, wisp_err *err);
/* Rank and result of merging ids l and r, or -1 when no such merge. */
int32_t tok_merge_find(const wisp_tokenizer *tok, int32_t l, int32_t r, int32_t *result);
/* Detects EOT/FIM ids by text, builds the EOG set, byte tokens and the
 * special-token partition list. Call after ids and attrs are final. */
int tok_vocab_finish(wisp_tokenizer *tok, wisp_err *err);

/* ---- pretok.c ---- */
/* Sets the regex list of a llama.cpp pre-tokenizer name (and its flags). */
int tok_pretok_by_name(wisp_tokenizer *tok, const char *name, size_t len, wisp_err *err);
/* Compiles and appends one regex to the pre-tokenizer chain. */
int tok_pretok_add_regex(wisp_tokenizer *tok, const char *pattern, wisp_err *err);
/* Splits text into pre-tokens: *offs receives n+1 boundaries (byte offsets,
 * first 0, last len). Caller frees *offs. */
int tok_pretok_split(const wisp_tokenizer *tok, const char *text, size_t len, size_t **offs,
                     size_t *n, wisp_err *err);

/* ---- model.c: the merge loops ---- */
typedef struct tok_scratch tok_scratch; /* per-call symbols and heap */
tok_scratch *tok_scratch_new(void);
void tok_scratch_free(tok_scratch *sc);
int tok_spm_encode(const wisp_tokenizer *tok, const char *text, size_t len, tok_scratch *sc,
                   wisp_tokens *out);
int tok_bpe_encode_word(const wisp_tokenizer *tok, const char *word, size_t len, tok_scratch *sc,
                        wisp_tokens *out);

/* ---- utf8.c ---- */
size_t tok_utf8_len(unsigned char lead);
/* Length (1..4) of the valid UTF-8 sequence at s[0..n); 0 when it is
 * invalid; SIZE_MAX when s[0..n) is a valid but incomplete prefix. */
size_t tok_utf8_check(const unsigned char *s, size_t n);
/* The GPT-2 byte-level mapping: byte -> UTF-8 of its code point (1-2 bytes). */
size_t tok_byte_to_unicode(unsigned char b, char out[2]);
/* Inverse on a code point; -1 when cp is not in the mapping. */
int tok_unicode_to_byte(uint32_t cp);
/* Decodes one code point at s (valid UTF-8 assumed); sets *adv. */
uint32_t tok_utf8_decode(const unsigned char *s, size_t n, size_t *adv);

/* ---- loaders ---- */
wisp_tokenizer *tok_alloc(void);

#endif
