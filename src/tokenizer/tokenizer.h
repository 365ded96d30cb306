/*
 * tokenizer.h - text <-> token ids, exactly as the model's training tokenizer.
 *
 * Two model families share one engine: SentencePiece-style vocabularies
 * (GGUF tokenizer.ggml.model = "llama": score-driven bigram merging with
 * byte fallback) and byte-level BPE (tokenizer.ggml.model = "gpt2": a
 * regular-expression pre-tokenizer, the GPT-2 byte-to-unicode mapping and
 * merges by rank). A tokenizer is loaded from GGUF metadata or from a Hugging
 * Face tokenizer.json and is immutable afterwards: every call below may run
 * concurrently on the same tokenizer from any number of threads (each call
 * keeps its scratch state on its own stack or heap).
 *
 * The ids match llama.cpp's llama_tokenize / llama_detokenize, including
 * its special-token partitioning (control and user-defined tokens are split
 * out before the model runs, longest token first) and its defaults for
 * add_bos / add_eos when the file does not say.
 */
#ifndef WISP_TOKENIZER_H
#define WISP_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/gguf.h"

typedef struct wisp_tokenizer wisp_tokenizer;

/* A growable array of token ids. Zero-initialize it ({0}) before first use;
 * wisp_tokenize appends to it; wisp_tokens_free releases the storage. */
typedef struct wisp_tokens {
    int32_t *ids;
    size_t n;
    size_t cap;
} wisp_tokens;

void wisp_tokens_free(wisp_tokens *t);
/* Appends one id; returns 0 or WISP_E_NOMEM. */
int wisp_tokens_push(wisp_tokens *t, int32_t id);

typedef enum wisp_tok_kind {
    WISP_TOK_SPM = 1, /* "llama": SentencePiece-style */
    WISP_TOK_BPE = 2, /* "gpt2": byte-level BPE (or HF BPE, see is_byte_level) */
} wisp_tok_kind;

/* Per-token attributes (llama.cpp's token types turned into bits). */
enum {
    WISP_TOKATTR_NORMAL = 1 << 0,
    WISP_TOKATTR_UNKNOWN = 1 << 1,
    WISP_TOKATTR_CONTROL = 1 << 2,
    WISP_TOKATTR_USER_DEFINED = 1 << 3,
    WISP_TOKATTR_UNUSED = 1 << 4,
    WISP_TOKATTR_BYTE = 1 << 5,
    WISP_TOKATTR_LSTRIP = 1 << 6,
    WISP_TOKATTR_RSTRIP = 1 << 7,
};

/* The special ids of a vocabulary; -1 where it has none. */
typedef struct wisp_tok_special {
    int32_t bos, eos, eot, eom, unk, pad, sep, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
} wisp_tok_special;

/* ---- loading ---- */

/* Builds a tokenizer from GGUF metadata (tokenizer.ggml.*). The tokenizer
 * copies what it needs: g may be closed afterwards. Returns 0, or a negative
 * wisp_code (FORMAT for missing/inconsistent keys, UNSUPPORTED for a model or
 * pre-tokenizer type this engine does not implement) with err set. */
int wisp_tokenizer_from_gguf(const wisp_gguf *g, wisp_tokenizer **out, wisp_err *err);

/* Builds a tokenizer from a Hugging Face tokenizer.json. path is the file or
 * a directory holding tokenizer.json (and optionally tokenizer_config.json,
 * read for add_bos_token / add_eos_token). Same return convention. */
int wisp_tokenizer_from_hf(const char *path, wisp_tokenizer **out, wisp_err *err);

void wisp_tokenizer_free(wisp_tokenizer *tok);

/* ---- tokenize ---- */

/* Appends the ids of text[0..len) to out.
 * add_special: prepend BOS / append EOS as the vocabulary's add_bos/add_eos
 *   settings say.
 * parse_special: when true, control, unknown and user-defined token texts
 *   found in the text become their ids; when false only user-defined tokens
 *   do (as llama.cpp and HF do), everything else is plain text.
 * Returns 0, or a negative code (INVALID for text that is not UTF-8 on a
 * byte-level vocabulary, NOMEM); out keeps what was appended before a
 * failure only up to its previous length. */
int wisp_tokenize(const wisp_tokenizer *tok, const char *text, size_t len, bool add_special,
                  bool parse_special, wisp_tokens *out, wisp_err *err);

/* ---- detokenize ---- */

/* The bytes of one token, as llama.cpp's token_to_piece: control and unknown
 * tokens render as "" unless render_special; user-defined tokens render as
 * their text; SentencePiece "▁" becomes a space and <0xXX> its byte;
 * byte-level BPE text is mapped back to raw bytes. Writes at most cap bytes
 * to buf and returns the full length (call again with a larger buffer when
 * it exceeds cap), or a negative code for an id out of range. */
int wisp_token_to_piece(const wisp_tokenizer *tok, int32_t id, bool render_special, char *buf,
                        size_t cap);

/* Flags of wisp_detokenize and the streaming detokenizer. */
enum {
    /* Drop a leading BOS / trailing EOS when the vocabulary adds them. */
    WISP_DETOK_REMOVE_SPECIAL = 1 << 0,
    /* Render control and unknown tokens as their text (else ""). */
    WISP_DETOK_RENDER_SPECIAL = 1 << 1,
    /* Apply llama.cpp's clean-up of spaces before punctuation (" ?", " 's",
     * ...) on vocabularies that ask for it. Lossy; off for exact inverses. */
    WISP_DETOK_CLEAN_SPACES = 1 << 2,
    /* Stream only: the first token starts the text, so it loses the
     * SentencePiece prefix space as in wisp_detokenize. Leave it off when
     * streaming a continuation of a prompt. */
    WISP_DETOK_TEXT_START = 1 << 3,
};

/* Detokenizes n ids into a new NUL-terminated string (*out, caller frees;
 * *len is its length without the NUL), as llama.cpp's llama_detokenize:
 * the pieces of wisp_token_to_piece concatenated, the SentencePiece prefix
 * space removed from the first piece (unless a removed BOS preceded it), and
 * WISP_DETOK_* flags as above. Without CLEAN_SPACES this is the exact
 * inverse of wisp_tokenize (add_special and parse_special false) on every
 * vocabulary without a lossy normalizer. The result may hold invalid UTF-8
 * when the ids split a character. Returns 0 or a negative code (INVALID for
 * an id out of range). */
int wisp_detokenize(const wisp_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                    char **out, size_t *len, wisp_err *err);

/* ---- streaming detokenizer ----
 * Feed ids one at a time; each feed returns the bytes that now form complete,
 * valid UTF-8 (held-back bytes of an unfinished character wait for the next
 * token). Bytes that can never be valid UTF-8 come out as U+FFFD, so every
 * chunk is valid UTF-8; when the whole text is valid, the concatenation of
 * the chunks equals wisp_detokenize's result (without CLEAN_SPACES). */
typedef struct wisp_detok_stream {
    const wisp_tokenizer *tok;
    unsigned flags;        /* WISP_DETOK_RENDER_SPECIAL | WISP_DETOK_TEXT_START */
    bool first;            /* the next token is the first one */
    unsigned char pend[4]; /* an incomplete UTF-8 sequence waiting for bytes */
    size_t npend;
    char *buf; /* the chunk returned by the last feed/flush */
    size_t cap;
} wisp_detok_stream;

void wisp_detok_stream_init(wisp_detok_stream *s, const wisp_tokenizer *tok, unsigned flags);
/* Sets *chunk and *chunk_len to the bytes ready after this token (valid until
 * the next call on s; may be empty). Returns 0, or a negative code for a bad
 * id or NOMEM. */
int wisp_detok_stream_feed(wisp_detok_stream *s, int32_t id, const char **chunk, size_t *chunk_len,
                           wisp_err *err);
/* Ends the stream: held bytes of an unfinished character come out as one
 * U+FFFD. The stream may be fed again afterwards. */
int wisp_detok_stream_flush(wisp_detok_stream *s, const char **chunk, size_t *chunk_len,
                            wisp_err *err);
void wisp_detok_stream_free(wisp_detok_stream *s);

/* ---- information ---- */

int32_t wisp_tokenizer_n_vocab(const wisp_tokenizer *tok);
wisp_tok_kind wisp_tokenizer_kind(const wisp_tokenizer *tok);
/* "llama" or "gpt2" (the GGUF tokenizer.ggml.model names). */
const char *wisp_tokenizer_model_name(const wisp_tokenizer *tok);
/* The pre-tokenizer name ("default", "llama3", "deepseek-coder", ...; "hf"
 * for a tokenizer.json pre_tokenizer). */
const char *wisp_tokenizer_pre_name(const wisp_tokenizer *tok);
const wisp_tok_special *wisp_tokenizer_special(const wisp_tokenizer *tok);
bool wisp_tokenizer_add_bos(const wisp_tokenizer *tok);
bool wisp_tokenizer_add_eos(const wisp_tokenizer *tok);
/* True for the ids that end generation (EOS, EOT, EOM, <|im_end|>,
 * <|endoftext|>, <|eot_id|>, <EOT>, FIM pad/repo/sep, ... as llama.cpp). */
bool wisp_tokenizer_is_eog(const wisp_tokenizer *tok, int32_t id);
/* WISP_TOKATTR_* bits of an id; 0 when out of range. */
uint32_t wisp_tokenizer_attr(const wisp_tokenizer *tok, int32_t id);
/* The stored text of an id (not NUL-terminated; *len set), or NULL. */
const char *wisp_tokenizer_text(const wisp_tokenizer *tok, int32_t id, size_t *len);
/* The id whose stored text is exactly text[0..len), or -1. */
int32_t wisp_tokenizer_find(const wisp_tokenizer *tok, const char *text, size_t len);

#endif
