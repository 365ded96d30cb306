/*
 * fim_tokens.h - which tokens of a vocabulary mark fill-in-the-middle parts.
 *
 * A code model trained for infilling knows three marker tokens (prefix,
 * suffix, middle) and, for repository-level training, a repository-name and
 * a file-separator token. GGUF files may name them in metadata
 * (tokenizer.ggml.fim_*_token_id); the tokenizer also recognises the usual
 * texts. Some families are still missed by both (StarCoder2's <repo_name>,
 * StarCoder/refact's <filename> used as a file header, CodeGemma's
 * <|file_separator|>), so this module completes the ids from a table of the
 * known families' token texts and names the family it matched.
 */
#ifndef WISP_FIM_TOKENS_H
#define WISP_FIM_TOKENS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "tokenizer/tokenizer.h"

/* Where the suffix goes. PSM (prefix, suffix, middle) is what every known
 * family is prompted with by default, and llama.cpp's default; SPM (suffix,
 * prefix, middle, llama.cpp's --spm-infill layout [SUF]suffix[PRE]prefix[MID])
 * is for models fine-tuned on that order. SPM keeps the prefix adjacent to the
 * middle, at the price of the suffix coming before it in the cached part. */
typedef enum wisp_fim_order {
    WISP_FIM_PSM = 0,
    WISP_FIM_SPM = 1,
} wisp_fim_order;

typedef struct wisp_fim_tokens {
    int32_t pre, suf, mid; /* always >= 0 after a successful resolve */
    int32_t pad;           /* -1 when absent (generation-ending where present) */
    int32_t rep;           /* repository-name header token, or -1 */
    int32_t sep;           /* file-separator / file-name header token, or -1 */
    /* "qwen2.5-coder", "codegemma", "starcoder2", "starcoder", "santacoder",
     * "codellama", "deepseek-coder", or "gguf" when the ids come from metadata
     * whose texts match no known family. Static storage. */
    const char *family;
} wisp_fim_tokens;

/* Fills out from the tokenizer's special ids, completed from the known
 * families' texts. Returns 0, WISP_E_UNSUPPORTED with a message naming the
 * missing roles (and what was looked for) when the vocabulary has no prefix,
 * suffix or middle token, or WISP_E_FORMAT when two roles share one id. */
int wisp_fim_resolve(const wisp_tokenizer *tok, wisp_fim_tokens *out, wisp_err *err);

/* True when a generated id is one of the FIM tokens: pad, repo, file
 * separator (the model moved on to another file) or a marker. Any of them
 * ends an infill completion ("stop_reason": "eog"), like the ids
 * wisp_tokenizer_is_eog reports; this also covers ids the family table found
 * and the tokenizer does not know as end-of-generation (StarCoder2's
 * <repo_name>, refact's <filename>). */
bool wisp_fim_ends_generation(const wisp_fim_tokens *f, int32_t id);

#endif
