/*
 * fim_tokens.c - the FIM marker ids of a vocabulary, from the tokenizer's
 * special ids completed by a table of the known code-model families.
 *
 * One row per family; a row matches a vocabulary when its prefix text is
 * present (and, when the tokenizer already knows a prefix id, is that id).
 * Several families share prefix texts (Qwen2.5-Coder and CodeGemma both use
 * <|fim_prefix|>), so among matching rows the one with the most of its texts
 * present wins; ties go to the earlier row. Ids the tokenizer already has
 * (from GGUF metadata) are never overridden: the table only fills gaps.
 */
#include <stdio.h>
#include <string.h>

#include "infill/fim_tokens.h"

typedef struct fim_family {
    const char *name;
    /* pre, suf, mid, pad, rep, sep; NULL where the family has none */
    const char *text[6];
} fim_family;

#define U_FW_BAR  "\xEF\xBD\x9C" /* U+FF5C FULLWIDTH VERTICAL LINE */
#define U_LOW_8TH "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK (SentencePiece space) */

static const fim_family k_families[] = {
    {"qwen2.5-coder",
     {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>",
      "<|file_sep|>"}},
    {"codegemma",
     {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", NULL, NULL, "<|file_separator|>"}},
    {"starcoder2",
     {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<repo_name>", "<file_sep>"}},
    /* StarCoder(1), refact: metadata lines <reponame>name<filename>path */
    {"starcoder",
     {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<reponame>", "<filename>"}},
    {"santacoder", {"<fim-prefix>", "<fim-suffix>", "<fim-middle>", "<fim-pad>", NULL, NULL}},
    /* CodeLlama's SentencePiece vocabulary stores the markers with a leading
     * space piece; some conversions drop it. */
    {"codellama", {U_LOW_8TH "<PRE>", U_LOW_8TH "<SUF>", U_LOW_8TH "<MID>", NULL, NULL, NULL}},
    {"codellama", {"<PRE>", "<SUF>", "<MID>", NULL, NULL, NULL}},
    {"deepseek-coder",
     {"<" U_FW_BAR "fim" U_LOW_8TH "begin" U_FW_BAR ">",
      "<" U_FW_BAR "fim" U_LOW_8TH "hole" U_FW_BAR ">",
      "<" U_FW_BAR "fim" U_LOW_8TH "end" U_FW_BAR ">", NULL, NULL, NULL}},
};
#define N_FAMILIES (sizeof k_families / sizeof k_families[0])

static const char *const k_role_name[6] = {"prefix", "suffix", "middle",
                                           "pad",    "repo",   "file separator"};

static int32_t find(const wisp_tokenizer *tok, const char *text)
{
    return text ? wisp_tokenizer_find(tok, text, strlen(text)) : -1;
}

/* The best row for this vocabulary, or NULL. */
static const fim_family *match_family(const wisp_tokenizer *tok, int32_t known_pre)
{
    const fim_family *best = NULL;
    int best_score = 0;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        int32_t pre = find(tok, k_families[f].text[0]);
        if (pre < 0 || (known_pre >= 0 && pre != known_pre))
            continue;
        int score = 0;
        for (int r = 0; r < 6; r++)
            score += find(tok, k_families[f].text[r]) >= 0;
        if (score > best_score) {
            best = &k_families[f];
            best_score = score;
        }
    }
    return best;
}

int wisp_fim_resolve(const wisp_tokenizer *tok, wisp_fim_tokens *out, wisp_err *err)
{
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    int32_t id[6] = {sp->fim_pre, sp->fim_suf, sp->fim_mid, sp->fim_pad, sp->fim_rep, sp->fim_sep};
    const fim_family *fam = match_family(tok, id[0]);
    if (fam)
        for (int r = 0; r < 6; r++)
            if (id[r] < 0)
                id[r] = find(tok, fam->text[r]);

    char missing[64] = "";
    for (int r = 0; r < 3; r++)
        if (id[r] < 0)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", k_role_name[r]);
    if (missing[0])
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "infill: the model has no fill-in-the-middle tokens (missing: %s); "
                            "the GGUF sets no tokenizer.ggml.fim_pre/suf/mid_token_id and the "
                            "vocabulary has none of <|fim_prefix|>, <fim_prefix>, <fim-prefix>, "
                            "<PRE>, <" U_FW_BAR "fim" U_LOW_8TH "begin" U_FW_BAR "> (and their "
                            "suffix/middle partners)",
                            missing);
    for (int a = 0; a < 6; a++)
        for (int b = a + 1; b < 6; b++)
            if (id[a] >= 0 && id[a] == id[b])
                return wisp_err_set(err, WISP_E_FORMAT,
                                    "infill: the FIM %s and %s tokens are the same id %d",
                                    k_role_name[a], k_role_name[b], id[a]);

    *out = (wisp_fim_tokens){
        .pre = id[0],
        .suf = id[1],
        .mid = id[2],
        .pad = id[3],
        .rep = id[4],
        .sep = id[5],
        .family = fam ? fam->name : "gguf",
    };
    return 0;
}

bool wisp_fim_ends_generation(const wisp_fim_tokens *f, int32_t id)
{
    return id >= 0 && (id == f->pre || id == f->suf || id == f->mid || id == f->pad ||
                       id == f->rep || id == f->sep);
}
