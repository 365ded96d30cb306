/*
 * vocab.c - construction steps and queries shared by both loaders.
 *
 * What llama.cpp decides from token texts rather than metadata lives here
 * too: the end-of-turn and fill-in-the-middle ids of each model family, the
 * set of end-of-generation ids, and the list of tokens that are split out of
 * the text before the model runs (control, user-defined and unknown tokens,
 * longest first).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_int.h"

wisp_tokenizer *tok_alloc(void)
{
    wisp_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return NULL;
    int32_t *sp = (int32_t *)&tok->sp;
    for (size_t i = 0; i < sizeof tok->sp / sizeof(int32_t); i++)
        sp[i] = -1;
    for (int i = 0; i < 324; i++)
        tok->u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        tok->byte_tok[b] = -1;
        tok->b2u_len[b] = (uint8_t)tok_byte_to_unicode((unsigned char)b, tok->b2u[b]);
    }
    for (uint32_t cp = 0; cp < 324; cp++)
        tok->u2b[cp] = (int16_t)tok_unicode_to_byte(cp);
    return tok;
}

void wisp_tokenizer_free(wisp_tokenizer *tok)
{
    if (!tok)
        return;
    tok_strtab_free(&tok->st);
    free(tok->score);
    free(tok->attr);
    free(tok->merges);
    free(tok->eog);
    free(tok->special_ids);
    for (int i = 0; i < tok->n_re; i++)
        pcre2_code_free(tok->re[i]);
    free(tok);
}

int tok_vocab_alloc(wisp_tokenizer *tok, wisp_err *err)
{
    size_t n = (size_t)tok->n_vocab;
    tok->score = calloc(n ? n : 1, sizeof(float));
    tok->attr = calloc(n ? n : 1, sizeof(uint32_t));
    tok->eog = calloc(n ? n : 1, 1);
    if (!tok->score || !tok->attr || !tok->eog)
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for %zu tokens", n);
    return 0;
}

/* ---------------------------------------------------------------- merges */

int tok_merges_reserve(wisp_tokenizer *tok, size_t n, wisp_err *err)
{
    size_t slots = 64;
    while (slots < n * 2)
        slots <<= 1;
    free(tok->merges);
    tok->merges = malloc(sizeof(tok_merge) * slots);
    if (!tok->merges)
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for %zu merges", n);
    for (size_t i = 0; i < slots; i++)
        tok->merges[i].left = -1;
    tok->merge_mask = (uint32_t)(slots - 1);
    tok->n_merges = 0;
    return 0;
}

static uint32_t pair_hash(int32_t l, int32_t r)
{
    uint64_t k = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static tok_merge *merge_slot(const wisp_tokenizer *tok, int32_t l, int32_t r)
{
    uint32_t i = pair_hash(l, r) & tok->merge_mask;
    for (;;) {
        tok_merge *m = &tok->merges[i];
        if (m->left < 0 || (m->left == l && m->right == r))
            return m;
        i = (i + 1) & tok->merge_mask;
    }
}

static int32_t find_or_add(wisp_tokenizer *tok, const char *s, size_t n)
{
    int32_t id = tok_strtab_find(&tok->st, s, n);
    return id >= 0 ? id : tok_strtab_add(&tok->st, s, n);
}

int tok_merge_add(wisp_tokenizer *tok, const char *l, size_t ln, const char *r, size_t rn,
                  int32_t rank, wisp_err *err)
{
    if ((size_t)tok->n_merges * 2 >= tok->merge_mask + 1)
        return wisp_err_set(err, WISP_E_INTERNAL, "tokenizer: merge table full");
    char stackbuf[256];
    char *cat = ln + rn <= sizeof stackbuf ? stackbuf : malloc(ln + rn);
    if (!cat)
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for a merge");
    memcpy(cat, l, ln);
    memcpy(cat + ln, r, rn);
    int32_t li = find_or_add(tok, l, ln);
    int32_t ri = li >= 0 ? find_or_add(tok, r, rn) : li;
    int32_t res = ri >= 0 ? find_or_add(tok, cat, ln + rn) : ri;
    if (cat != stackbuf)
        free(cat);
    if (res < 0)
        return wisp_err_set(err, res, "tokenizer: cannot store merge %d", rank);
    tok_merge *m = merge_slot(tok, li, ri);
    if (m->left >= 0)
        return 0; /* an earlier (lower) rank of the same pair wins */
    m->left = li;
    m->right = ri;
    m->rank = rank;
    m->result = res;
    tok->n_merges++;
    return 0;
}

int32_t tok_merge_find(const wisp_tokenizer *tok, int32_t l, int32_t r, int32_t *result)
{
    if (!tok->merges || l < 0 || r < 0)
        return -1;
    const tok_merge *m = merge_slot(tok, l, r);
    if (m->left < 0)
        return -1;
    *result = m->result;
    return m->rank;
}

/* ---------------------------------------------------------------- finish */

static const char *const k_eot[] = {"<|eot_id|>",
                                    "<|im_end|>",
                                    "<|end|>",
                                    "<end_of_turn>",
                                    "<|endoftext|>",
                                    "<EOT>",
                                    "\xE2\x96\x81<EOT>",
                                    "<\xEF\xBD\x9C"
                                    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                    NULL};
static const char *const k_eom[] = {"<|eom_id|>", NULL};
static const char *const k_fim_pre[] = {"<|fim_prefix|>",
                                        "<fim-prefix>",
                                        "<fim_prefix>",
                                        "<\xEF\xBD\x9C"
                                        "fim\xE2\x96\x81"
                                        "begin\xEF\xBD\x9C>",
                                        "<PRE>",
                                        "\xE2\x96\x81<PRE>",
                                        NULL};
static const char *const k_fim_suf[] = {"<|fim_suffix|>",
                                        "<fim-suffix>",
                                        "<fim_suffix>",
                                        "<\xEF\xBD\x9C"
                                        "fim\xE2\x96\x81"
                                        "hole\xEF\xBD\x9C>",
                                        "<SUF>",
                                        "\xE2\x96\x81<SUF>",
                                        NULL};
static const char *const k_fim_mid[] = {"<|fim_middle|>",
                                        "<fim-middle>",
                                        "<fim_middle>",
                                        "<\xEF\xBD\x9C"
                                        "fim\xE2\x96\x81"
                                        "end\xEF\xBD\x9C>",
                                        "<MID>",
                                        "\xE2\x96\x81<MID>",
                                        NULL};
static const char *const k_fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
static const char *const k_fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                        "<reponame>",   "<REPO>",        NULL};
static const char *const k_fim_sep[] = {"<|file_sep|>", "<file_sep>", NULL};
/* Texts that end generation wherever they are in the vocabulary. */
static const char *const k_eog[] = {"<|eot_id|>",    "<|im_end|>",        "<|end|>",
                                    "<end_of_turn>", "<|endoftext|>",     "<|eom_id|>",
                                    "<EOT>",         "\xE2\x96\x81<EOT>", NULL};

static int32_t find_text(const wisp_tokenizer *tok, const char *s)
{
    int32_t id = tok_strtab_find(&tok->st, s, strlen(s));
    return id < tok->n_vocab ? id : -1;
}

/* The first listed text present in the vocabulary, marked as control. */
static void detect(wisp_tokenizer *tok, int32_t *id, const char *const *texts)
{
    if (*id >= 0)
        return;
    for (size_t i = 0; texts[i]; i++) {
        int32_t t = find_text(tok, texts[i]);
        if (t >= 0) {
            *id = t;
            tok->attr[t] |= WISP_TOKATTR_CONTROL;
            tok->attr[t] &= ~(uint32_t)WISP_TOKATTR_NORMAL;
            return;
        }
    }
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int by_len_desc(const void *a, const void *b)
{
    const len_id *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

int tok_vocab_finish(wisp_tokenizer *tok, wisp_err *err)
{
    wisp_tok_special *sp = &tok->sp;
    detect(tok, &sp->eot, k_eot);
    detect(tok, &sp->eom, k_eom);
    detect(tok, &sp->fim_pre, k_fim_pre);
    detect(tok, &sp->fim_suf, k_fim_suf);
    detect(tok, &sp->fim_mid, k_fim_mid);
    detect(tok, &sp->fim_pad, k_fim_pad);
    detect(tok, &sp->fim_rep, k_fim_rep);
    detect(tok, &sp->fim_sep, k_fim_sep);

    int32_t marks[] = {sp->fim_pad, sp->fim_rep, sp->fim_sep, sp->eos, sp->eot, sp->eom};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (marks[i] >= 0)
            tok->eog[marks[i]] = 1;
    for (size_t i = 0; k_eog[i]; i++) {
        int32_t t = find_text(tok, k_eog[i]);
        if (t >= 0) {
            tok->eog[t] = 1;
            tok->attr[t] |= WISP_TOKATTR_CONTROL;
            tok->attr[t] &= ~(uint32_t)WISP_TOKATTR_NORMAL;
        }
    }

    /* byte tokens: <0xXX>, else the one-byte text itself */
    for (int b = 0; b < 256; b++) {
        char hex[7];
        static const char digits[] = "0123456789ABCDEF";
        hex[0] = '<', hex[1] = '0', hex[2] = 'x', hex[3] = digits[b >> 4], hex[4] = digits[b & 15];
        hex[5] = '>', hex[6] = 0;
        int32_t t = find_text(tok, hex);
        if (t < 0) {
            char c = (char)b;
            t = tok_strtab_find(&tok->st, &c, 1);
            if (t >= tok->n_vocab)
                t = -1;
        }
        tok->byte_tok[b] = t;
    }
    if (tok->kind == WISP_TOK_SPM) {
        sp->nl = tok->byte_tok['\n'];
    } else {
        sp->nl = find_text(tok, "\xC4\x8A");
    }
    if (sp->nl < 0)
        sp->nl = sp->pad;

    /* barrier bytes (see model.c): ASCII bytes absent from every string of
     * two or more bytes, merge parts and results included */
    for (int b = 0; b < 128; b++)
        tok->barrier[b] = true;
    for (int32_t i = 0; i < tok->st.n; i++) {
        size_t n;
        const char *t = tok_strtab_str(&tok->st, i, &n);
        if (n > 1)
            for (size_t k = 0; k < n; k++)
                tok->barrier[(unsigned char)t[k]] = false;
    }

    int32_t n = 0;
    const uint32_t cls = WISP_TOKATTR_CONTROL | WISP_TOKATTR_USER_DEFINED | WISP_TOKATTR_UNKNOWN;
    /* an empty text matches everywhere and nowhere: it is never split out */
    for (int32_t i = 0; i < tok->n_vocab; i++)
        n += (tok->attr[i] & cls) && tok->st.len[i] > 0;
    len_id *li = malloc(sizeof(len_id) * (size_t)(n ? n : 1));
    tok->special_ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!li || !tok->special_ids) {
        free(li);
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for special tokens");
    }
    n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if ((tok->attr[i] & cls) && tok->st.len[i] > 0)
            li[n++] = (len_id){tok->st.len[i], i};
    /* llama.cpp partitions longest text first; ties by id keep it stable */
    qsort(li, (size_t)n, sizeof(len_id), by_len_desc);
    for (int32_t i = 0; i < n; i++)
        tok->special_ids[i] = li[i].id;
    tok->n_special = n;
    free(li);
    return 0;
}

/* ---------------------------------------------------------------- queries */

void wisp_tokens_free(wisp_tokens *t)
{
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

int wisp_tokens_push(wisp_tokens *t, int32_t id)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        int32_t *ni = realloc(t->ids, nc * sizeof(int32_t));
        if (!ni)
            return WISP_E_NOMEM;
        t->ids = ni;
        t->cap = nc;
    }
    t->ids[t->n++] = id;
    return 0;
}

int32_t wisp_tokenizer_n_vocab(const wisp_tokenizer *tok) { return tok->n_vocab; }
wisp_tok_kind wisp_tokenizer_kind(const wisp_tokenizer *tok) { return tok->kind; }
const char *wisp_tokenizer_model_name(const wisp_tokenizer *tok) { return tok->model_name; }
const char *wisp_tokenizer_pre_name(const wisp_tokenizer *tok) { return tok->pre_name; }
const wisp_tok_special *wisp_tokenizer_special(const wisp_tokenizer *tok) { return &tok->sp; }
bool wisp_tokenizer_add_bos(const wisp_tokenizer *tok) { return tok->add_bos; }
bool wisp_tokenizer_add_eos(const wisp_tokenizer *tok) { return tok->add_eos; }

bool wisp_tokenizer_is_eog(const wisp_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab && tok->eog[id];
}

uint32_t wisp_tokenizer_attr(const wisp_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab ? tok->attr[id] : 0;
}

const char *wisp_tokenizer_text(const wisp_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab)
        return NULL;
    return tok_strtab_str(&tok->st, id, len);
}

int32_t wisp_tokenizer_find(const wisp_tokenizer *tok, const char *text, size_t len)
{
    int32_t id = tok_strtab_find(&tok->st, text, len);
    return id < tok->n_vocab ? id : -1;
}
