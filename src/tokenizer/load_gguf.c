/*
 * load_gguf.c - a tokenizer from GGUF metadata (tokenizer.ggml.*).
 *
 * Follows llama.cpp's llama_vocab::load: the model type picks the algorithm
 * and its default special ids, tokenizer.ggml.pre the pre-tokenizer and its
 * flags, then explicit keys override the defaults (an id out of range is
 * ignored, as llama.cpp does with a warning). Token types become attribute
 * bits; Phi-3 vocabularies get llama.cpp's rstrip rule for their specials.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tokenizer/tok_int.h"

/* GGUF token types (llama.cpp's llama_token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL,
    TT_UNKNOWN,
    TT_CONTROL,
    TT_USER_DEFINED,
    TT_UNUSED,
    TT_BYTE
};

static uint32_t attr_of_type(int64_t t)
{
    switch (t) {
    case TT_NORMAL: return WISP_TOKATTR_NORMAL;
    case TT_UNKNOWN: return WISP_TOKATTR_UNKNOWN;
    case TT_CONTROL: return WISP_TOKATTR_CONTROL;
    case TT_USER_DEFINED: return WISP_TOKATTR_USER_DEFINED;
    case TT_UNUSED: return WISP_TOKATTR_UNUSED;
    case TT_BYTE: return WISP_TOKATTR_BYTE;
    default: return 0;
    }
}

static int load_tokens(wisp_tokenizer *tok, const wisp_gguf *g, wisp_err *err)
{
    wisp_gguf_vtype et;
    uint64_t n;
    if (!wisp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) || et != WISP_GGUF_STRING)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer: tokenizer.ggml.tokens is missing or "
                            "not a string array");
    if (n == 0 || n > INT32_MAX / 2)
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer: %llu tokens", (unsigned long long)n);
    tok->n_vocab = (int32_t)n;
    if (tok_strtab_init(&tok->st, (int32_t)n) || tok_vocab_alloc(tok, err))
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for %llu tokens",
                            (unsigned long long)n);

    wisp_gguf_vtype st_t = 0, tt_t = 0;
    uint64_t ns = 0, nt = 0;
    bool has_scores = wisp_gguf_get_arr(g, "tokenizer.ggml.scores", &st_t, &ns);
    bool has_types = wisp_gguf_get_arr(g, "tokenizer.ggml.token_type", &tt_t, &nt);
    if (has_scores && (ns != n || st_t != WISP_GGUF_FLOAT32))
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer: tokenizer.ggml.scores has %llu "
                            "entries of type %d for %llu tokens",
                            (unsigned long long)ns, st_t, (unsigned long long)n);
    if (has_types && (nt != n || (tt_t != WISP_GGUF_INT32 && tt_t != WISP_GGUF_UINT32)))
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer: tokenizer.ggml.token_type has %llu "
                            "entries of type %d for %llu tokens",
                            (unsigned long long)nt, tt_t, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", i);
        char empty[32];
        if (s.len == 0) {
            /* llama.cpp names empty tokens so they stay distinct */
            int k = snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
            s.ptr = empty;
            s.len = (size_t)k;
        }
        if (tok_strtab_add(&tok->st, s.ptr, s.len) < 0)
            return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for token %llu",
                                (unsigned long long)i);
        tok->score[i] =
            has_scores ? (float)wisp_gguf_arr_float(g, "tokenizer.ggml.scores", i) : 0.0f;
        tok->attr[i] = has_types
                           ? attr_of_type(wisp_gguf_arr_int(g, "tokenizer.ggml.token_type", i))
                           : WISP_TOKATTR_NORMAL;
    }
    return 0;
}

static int load_merges(wisp_tokenizer *tok, const wisp_gguf *g, wisp_err *err)
{
    wisp_gguf_vtype et;
    uint64_t n;
    if (!wisp_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n) || et != WISP_GGUF_STRING)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer: a gpt2 vocabulary needs tokenizer.ggml.merges");
    if (n > INT32_MAX / 4)
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer: %llu merges", (unsigned long long)n);
    int rc = tok_merges_reserve(tok, n, err);
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        wisp_str m = wisp_gguf_arr_str(g, "tokenizer.ggml.merges", i);
        /* split at the first space after the first byte, as llama.cpp */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp)
            continue;
        size_t ln = (size_t)(sp - m.ptr);
        rc = tok_merge_add(tok, m.ptr, ln, sp + 1, m.len - ln - 1, (int32_t)i, err);
    }
    return rc;
}

static void get_id(const wisp_gguf *g, wisp_tokenizer *tok, const char *key, int32_t *id)
{
    uint32_t v;
    if (!wisp_gguf_get_u32(g, key, &v))
        return;
    if (v < (uint32_t)tok->n_vocab)
        *id = (int32_t)v;
    else if (v == UINT32_MAX) /* converters write -1 for "no such token" */
        *id = -1;
    else
        WISP_LOGW("tokenizer: ignoring %s = %u (vocabulary has %d tokens)", key, v, tok->n_vocab);
}

/* llama.cpp gives Phi-3's special tokens rstrip, except <unk> <s>
 * <|endoftext|>, and adds </s>. */
static void phi3_rstrip(wisp_tokenizer *tok, const wisp_gguf *g)
{
    wisp_str name;
    if (!wisp_gguf_get_str(g, "general.name", &name))
        return;
    char low[128];
    size_t n = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)name.ptr[i]);
    low[n] = 0;
    if (!strstr(low, "phi-3") && !strstr(low, "phi3"))
        return;
    for (int32_t i = 0; i < tok->n_special; i++)
        tok->attr[tok->special_ids[i]] |= WISP_TOKATTR_RSTRIP;
    static const char *const on[] = {"</s>"}, *const off[] = {"<unk>", "<s>", "<|endoftext|>"};
    int32_t id = wisp_tokenizer_find(tok, on[0], strlen(on[0]));
    if (id >= 0)
        tok->attr[id] |= WISP_TOKATTR_RSTRIP;
    for (size_t i = 0; i < 3; i++) {
        id = wisp_tokenizer_find(tok, off[i], strlen(off[i]));
        if (id >= 0)
            tok->attr[id] &= ~(uint32_t)WISP_TOKATTR_RSTRIP;
    }
}

static int load(wisp_tokenizer *tok, const wisp_gguf *g, wisp_err *err)
{
    wisp_str model;
    if (!wisp_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer: tokenizer.ggml.model is missing");
    wisp_tok_special *sp = &tok->sp;
    int rc;
    if (wisp_str_eq(model, "llama")) {
        tok->kind = WISP_TOK_SPM;
        tok->algo = TOK_ALGO_SPM;
        snprintf(tok->model_name, sizeof tok->model_name, "llama");
        snprintf(tok->pre_name, sizeof tok->pre_name, "default");
        sp->bos = 1, sp->eos = 2, sp->unk = 0;
        tok->add_bos = true;
        tok->escape_spaces = true;
        tok->byte_fallback = true;
        bool asp = true;
        wisp_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp);
        tok->prepend = asp ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NONE;
        snprintf(tok->prepend_str, sizeof tok->prepend_str, "\xE2\x96\x81");
        tok->strip_prefix_space = asp;
        if ((rc = load_tokens(tok, g, err)))
            return rc;
    } else if (wisp_str_eq(model, "gpt2")) {
        tok->kind = WISP_TOK_BPE;
        tok->algo = TOK_ALGO_BPE;
        tok->byte_level = true;
        snprintf(tok->model_name, sizeof tok->model_name, "gpt2");
        sp->bos = 11, sp->eos = 11;
        wisp_str pre = {"default", 7};
        if (!wisp_gguf_get_str(g, "tokenizer.ggml.pre", &pre)) {
            WISP_LOGW("tokenizer: no tokenizer.ggml.pre; using the 'default' pre-tokenizer "
                      "(llama.cpp does the same; ids may differ from the model's training)");
            pre = (wisp_str){"default", 7};
        }
        if ((rc = tok_pretok_by_name(tok, pre.ptr, pre.len, err)))
            return rc;
        if ((rc = load_tokens(tok, g, err)) || (rc = load_merges(tok, g, err)))
            return rc;
        bool asp = false;
        if (wisp_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp) && asp)
            tok->bytelevel_prefix_space = true;
    } else {
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "tokenizer: unsupported tokenizer.ggml.model '%.*s' (supported: "
                            "llama, gpt2)",
                            (int)(model.len > 32 ? 32 : model.len), model.ptr);
    }
    if (sp->bos >= tok->n_vocab)
        sp->bos = -1;
    if (sp->eos >= tok->n_vocab)
        sp->eos = -1;
    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(wisp_tok_special, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(wisp_tok_special, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(wisp_tok_special, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(wisp_tok_special, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(wisp_tok_special, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(wisp_tok_special, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(wisp_tok_special, pad)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(wisp_tok_special, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(wisp_tok_special, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(wisp_tok_special, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(wisp_tok_special, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(wisp_tok_special, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(wisp_tok_special, fim_sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(wisp_tok_special, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(wisp_tok_special, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(wisp_tok_special, fim_mid)},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        get_id(g, tok, keys[i].key, (int32_t *)((char *)sp + keys[i].field));
    bool b;
    if (wisp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b))
        tok->add_bos = b;
    if (wisp_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b))
        tok->add_eos = b;
    if ((rc = tok_vocab_finish(tok, err)))
        return rc;
    phi3_rstrip(tok, g);
    return 0;
}

int wisp_tokenizer_from_gguf(const wisp_gguf *g, wisp_tokenizer **out, wisp_err *err)
{
    *out = NULL;
    wisp_tokenizer *tok = tok_alloc();
    if (!tok)
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory");
    int rc = load(tok, g, err);
    if (rc) {
        wisp_tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return 0;
}
