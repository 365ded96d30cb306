/*
 * fim_prompt.h - the token sequence of an `infill` request.
 *
 * Layout (PSM, the default), after llama.cpp's server (format_infill) and
 * the repository-level format of Qwen2.5-Coder / StarCoder2:
 *
 *   [BOS]                                   when the vocabulary adds BOS
 *   [REP] repo_name "\n"                    with a repo token and repo context
 *   [SEP] filename "\n" text "\n"           one per kept input_extra chunk
 *   [SEP] filename "\n"                    the file being edited ("untitled"
 *                                           when the request names none)
 *   [PRE] prefix [SUF] suffix [MID] prompt
 *
 * SPM swaps the two middle parts: [SUF] suffix [PRE] prefix [MID] prompt.
 * "Repo context" means input_extra is not empty or a filename was given;
 * without either, the sequence starts at [PRE]. A vocabulary without a
 * file-separator token (CodeLlama, DeepSeek-Coder) gets each chunk as a
 * commented header instead, in the comment syntax of the chunk's file
 * extension ("// a.c\n", "# a.py\n", "-- a.lua\n", "<!-- a.html -->\n"),
 * followed by its text; the current file gets such a header only when
 * chunks precede it.
 *
 * Differences from llama.cpp, on purpose:
 * - `prompt` (the text typed on the cursor line) goes after [MID], not at the
 *   end of the prefix, so that everything before [MID] stays the same while
 *   the user types and is served from the prefix cache.
 * - BOS opens the sequence instead of sitting between the extra context and
 *   [PRE]: the model was trained with BOS at the start of the document.
 * - The current file's header carries its real name (llama.cpp: "filename").
 *
 * Each part is tokenized on its own with parse_special = false, so user text
 * that spells a special token ("<|endoftext|>", "<fim_prefix>") stays text,
 * and the tokens of the prefix never depend on the suffix or the prompt.
 * (Tokens the vocabulary marks user-defined rather than control are matched
 * in plain text by llama.cpp and Hugging Face alike, and here too.)
 *
 * Budget: the sequence must leave max_tokens of n_ctx for generation. When
 * it does not, whole input_extra chunks are dropped first, from the first
 * one on (the first chunk is the one furthest from the cursor in the
 * sequence; llama.vim sends its oldest ring chunks first), then whole lines
 * are cut from the far ends: the beginning of the prefix and the end of the
 * suffix. The suffix keeps at least a quarter of the remaining room when it
 * needs it (llama.cpp's 3:1 prefix:suffix split); the prefix gets the rest.
 * What was cut is reported in wisp_infill_trim.
 */
#ifndef WISP_FIM_PROMPT_H
#define WISP_FIM_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "infill/fim_tokens.h"
#include "tokenizer/tokenizer.h"

/* One input_extra entry. */
typedef struct wisp_infill_chunk {
    const char *filename; /* NULL: "tmp", as llama.cpp */
    const char *text;
    size_t text_len;
} wisp_infill_chunk;

typedef struct wisp_infill_req {
    const char *prefix; /* input_prefix; may be NULL when prefix_len is 0 */
    size_t prefix_len;
    const char *suffix; /* input_suffix */
    size_t suffix_len;
    const char *prompt; /* text typed after the prefix on the cursor line */
    size_t prompt_len;
    const wisp_infill_chunk *extra;
    size_t n_extra;
    const char *filename;  /* the file being edited, or NULL */
    const char *repo_name; /* NULL: "myproject", as llama.cpp */
    wisp_fim_order order;
    int32_t n_ctx;      /* context length the request may use, > 0 */
    int32_t max_tokens; /* tokens kept free for generation, >= 0 */
} wisp_infill_req;

/* What the budget cut. Token counts are the drop in each part's token count
 * (a part is re-tokenized after the cut). */
typedef struct wisp_infill_trim {
    int32_t extra_dropped;        /* input_extra chunks left out */
    int32_t extra_tokens_dropped; /* their tokens, headers included */
    int32_t prefix_lines_trimmed; /* whole lines cut from the prefix's beginning */
    int32_t prefix_tokens_trimmed;
    int32_t suffix_lines_trimmed; /* whole lines cut from the suffix's end */
    int32_t suffix_tokens_trimmed;
} wisp_infill_trim;

typedef struct wisp_infill_prompt {
    wisp_tokens tokens;  /* the sequence to prefill */
    wisp_fim_tokens fim; /* the marker ids used (stop on fim.pad etc.) */
    wisp_infill_trim trim;
    /* Sizes of the parts in tokens (markers and BOS not counted). */
    int32_t n_extra_tokens; /* repo header, kept chunks and current-file header */
    int32_t n_prefix_tokens;
    int32_t n_suffix_tokens;
    int32_t n_prompt_tokens;
} wisp_infill_prompt;

/* Builds the sequence of req for tok into *out (zero-initialize it first;
 * release with wisp_infill_prompt_free, also after a failure). Returns 0, or:
 * WISP_E_UNSUPPORTED when the vocabulary has no FIM tokens (message names the
 * missing ones), WISP_E_INVALID for bad sizes or text a byte-level vocabulary
 * rejects (not UTF-8; the message names the part), WISP_E_TOO_LARGE when even
 * an empty prefix and suffix leave no room for max_tokens, WISP_E_NOMEM. */
int wisp_infill_build(const wisp_tokenizer *tok, const wisp_infill_req *req,
                      wisp_infill_prompt *out, wisp_err *err);

void wisp_infill_prompt_free(wisp_infill_prompt *p);

/* True when the budget cut anything. */
bool wisp_infill_trimmed(const wisp_infill_trim *t);

#endif
