/*
 * load_hf.c - a tokenizer from a Hugging Face tokenizer.json.
 *
 * The blocks of the file map onto the same engine as GGUF vocabularies:
 * a BPE model with merges (string "a b" or array ["a", "b"] form) runs the
 * rank-driven merge loop; ByteLevel pre-tokenizers/decoders select the GPT-2
 * byte mapping; Split (Isolated), Digits, Punctuation and ByteLevel's own
 * expression become PCRE2 expressions in the pre-tokenizer chain;
 * Metaspace and the Prepend/Replace normalizers of Llama-2-style files
 * become the SentencePiece text preparation (U+2581 for spaces, a leading
 * U+2581); NFC/NFD/NFKC/NFKD use utf8proc. added_tokens become control
 * (special) or user-defined tokens with their lstrip/rstrip flags.
 * tokenizer_config.json beside it, when present, gives add_bos/add_eos,
 * bos/eos and clean_up_tokenization_spaces. Anything else is refused with
 * an UNSUPPORTED error naming the block.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "tokenizer/pretok_regex.h"
#include "tokenizer/tok_int.h"

#define SPM_SPACE "\xE2\x96\x81"

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jbool(const json_t *o, const char *key, bool dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static bool type_is(const json_t *o, const char *t)
{
    const char *s = jstr(o, "type");
    return s && strcmp(s, t) == 0;
}

/* ---------------------------------------------------------------- blocks */

static int parse_normalizer(wisp_tokenizer *tok, const json_t *n, wisp_err *err)
{
    if (!n || json_is_null(n))
        return 0;
    const char *t = jstr(n, "type");
    if (!t)
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: normalizer without a type");
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e)
        {
            int rc = parse_normalizer(tok, e, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(t, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p || strlen(p) >= sizeof tok->prepend_str)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "tokenizer.json: Prepend normalizer "
                                "with an unsupported string");
        snprintf(tok->prepend_str, sizeof tok->prepend_str, "%s", p);
        tok->prepend = TOK_PREPEND_ALWAYS;
        return 0;
    }
    if (!strcmp(t, "Replace")) {
        const char *from = jstr(json_object_get(n, "pattern"), "String");
        const char *to = jstr(n, "content");
        if (from && to && !strcmp(from, " ") && !strcmp(to, SPM_SPACE)) {
            tok->escape_spaces = true;
            return 0;
        }
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "tokenizer.json: Replace normalizer other "
                            "than ' ' -> U+2581");
    }
    static const struct {
        const char *name;
        tok_unorm v;
    } forms[] = {{"NFC", TOK_UNORM_NFC},
                 {"NFD", TOK_UNORM_NFD},
                 {"NFKC", TOK_UNORM_NFKC},
                 {"NFKD", TOK_UNORM_NFKD}};
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(t, forms[i].name)) {
            tok->unorm = forms[i].v;
            return 0;
        }
    }
    return wisp_err_set(err, WISP_E_UNSUPPORTED, "tokenizer.json: unsupported normalizer '%s'", t);
}

static int set_metaspace(wisp_tokenizer *tok, const json_t *m, bool for_decoder)
{
    const char *scheme = jstr(m, "prepend_scheme");
    bool prefix = scheme ? strcmp(scheme, "never") != 0 : jbool(m, "add_prefix_space", true);
    if (for_decoder) {
        tok->strip_prefix_space = prefix;
        return 0;
    }
    tok->escape_spaces = true;
    if (prefix) {
        tok->prepend = scheme && !strcmp(scheme, "first") ? TOK_PREPEND_FIRST : TOK_PREPEND_ALWAYS;
        snprintf(tok->prepend_str, sizeof tok->prepend_str, SPM_SPACE);
    }
    return 0;
}

static int parse_pretok(wisp_tokenizer *tok, const json_t *p, wisp_err *err)
{
    if (!p || json_is_null(p))
        return 0;
    const char *t = jstr(p, "type");
    if (!t)
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: pre_tokenizer without a type");
    if (!strcmp(t, "Sequence")) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(p, "pretokenizers"), i, e)
        {
            int rc = parse_pretok(tok, e, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(t, "Split")) {
        const json_t *pat = json_object_get(p, "pattern");
        const char *behavior = jstr(p, "behavior");
        if (jbool(p, "invert", false) || !behavior || strcmp(behavior, "Isolated") != 0)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "tokenizer.json: Split pre-tokenizer "
                                "with behavior '%s' (only Isolated)",
                                behavior ? behavior : "?");
        const char *rx = jstr(pat, "Regex");
        if (rx)
            return tok_pretok_add_regex(tok, rx, err);
        const char *lit = jstr(pat, "String");
        if (!lit)
            return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: Split without a pattern");
        char q[512];
        if ((size_t)snprintf(q, sizeof q, "\\Q%s\\E", lit) >= sizeof q || strstr(lit, "\\E"))
            return wisp_err_set(err, WISP_E_UNSUPPORTED, "tokenizer.json: Split string too long");
        return tok_pretok_add_regex(tok, q, err);
    }
    if (!strcmp(t, "Digits"))
        return tok_pretok_add_regex(tok,
                                    jbool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+",
                                    err);
    if (!strcmp(t, "Punctuation")) {
        const char *b = jstr(p, "behavior");
        bool contiguous = b && !strcasecmp(b, "Contiguous");
        if (b && strcasecmp(b, "Isolated") != 0 && !contiguous)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "tokenizer.json: Punctuation behavior "
                                "'%s'",
                                b);
        return tok_pretok_add_regex(tok,
                                    contiguous ? "[\\p{P}\\$\\+<=>\\^~\\|`]+"
                                               : "[\\p{P}\\$\\+<=>\\^~\\|`]",
                                    err);
    }
    if (!strcmp(t, "ByteLevel")) {
        tok->byte_level = true;
        if (jbool(p, "add_prefix_space", false))
            tok->bytelevel_prefix_space = true;
        if (jbool(p, "use_regex", true))
            return tok_pretok_add_regex(tok, RX_GPT2, err);
        return 0;
    }
    if (!strcmp(t, "Metaspace")) {
        int rc = set_metaspace(tok, p, false);
        if (rc == 0 && jbool(p, "split", true))
            rc = tok_pretok_add_regex(tok, SPM_SPACE "[^" SPM_SPACE "]*", err);
        return rc;
    }
    return wisp_err_set(err, WISP_E_UNSUPPORTED, "tokenizer.json: unsupported pre_tokenizer '%s'",
                        t);
}

static int parse_decoder(wisp_tokenizer *tok, const json_t *d, wisp_err *err)
{
    if (!d || json_is_null(d))
        return 0;
    const char *t = jstr(d, "type");
    if (!t)
        return 0;
    if (!strcmp(t, "Sequence")) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(d, "decoders"), i, e)
        {
            int rc = parse_decoder(tok, e, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(t, "ByteLevel")) {
        tok->byte_level = true;
        return 0;
    }
    if (!strcmp(t, "Strip")) {
        json_int_t start = json_integer_value(json_object_get(d, "start"));
        const char *c = jstr(d, "content");
        if (start >= 1 && c && !strcmp(c, " "))
            tok->strip_prefix_space = true;
        return 0;
    }
    if (!strcmp(t, "Metaspace"))
        return set_metaspace(tok, d, true);
    /* Replace(U+2581 -> ' '), ByteFallback and Fuse are what the piece
     * rules of a SentencePiece-style vocabulary already do. */
    return 0;
}

/* ---------------------------------------------------------------- model */

/* The largest vocabularies shipped today are ~262k tokens (Gemma 3). */
#define WISP_HF_VOCAB_MAX       (1 << 24)
#define WISP_HF_VOCAB_HOLES_MAX 65536

typedef struct slot {
    const char *s;
    size_t n;
    uint32_t attr;
} slot;

static int build_vocab(wisp_tokenizer *tok, const json_t *model, const json_t *added, wisp_err *err)
{
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: model.vocab is not an object");
    json_int_t max_id = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v)
    {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id > INT32_MAX / 4)
            return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: bad id for token '%s'", key);
        if (id > max_id)
            max_id = id;
    }
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (!jstr(v, "content") || id < 0 || id > INT32_MAX / 4)
            return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: bad added token %zu", i);
        if (id > max_id)
            max_id = id;
    }
    if (max_id < 0)
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: empty vocabulary");
    /* Ids the file does not define become placeholders, one table entry
     * each. Real vocabularies are dense (a few unused ids at most), so a
     * file whose highest id is far above its token count is refused
     * rather than allocating and filling millions of placeholders. */
    size_t n = (size_t)max_id + 1;
    size_t defined = json_object_size(vocab) + json_array_size(added);
    if (n > WISP_HF_VOCAB_MAX || (n > defined && n - defined > WISP_HF_VOCAB_HOLES_MAX + defined))
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer.json: ids reach %zu but only %zu tokens are defined "
                            "(at most %d ids, and at most %d + one unused id per defined token)",
                            n - 1, defined, WISP_HF_VOCAB_MAX, WISP_HF_VOCAB_HOLES_MAX);
    slot *sl = calloc(n, sizeof *sl);
    if (!sl)
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer.json: no memory");
    json_object_foreach((json_t *)vocab, key, v)
    {
        size_t id = (size_t)json_integer_value(v);
        sl[id] = (slot){key, strlen(key), WISP_TOKATTR_NORMAL};
    }
    json_array_foreach(added, i, v)
    {
        size_t id = (size_t)json_integer_value(json_object_get(v, "id"));
        const char *c = jstr(v, "content");
        uint32_t a = jbool(v, "special", false) ? WISP_TOKATTR_CONTROL : WISP_TOKATTR_USER_DEFINED;
        if (jbool(v, "lstrip", false))
            a |= WISP_TOKATTR_LSTRIP;
        if (jbool(v, "rstrip", false))
            a |= WISP_TOKATTR_RSTRIP;
        sl[id] = (slot){c, strlen(c), a};
    }
    tok->n_vocab = (int32_t)n;
    int rc = 0;
    if (tok_strtab_init(&tok->st, (int32_t)n) || tok_vocab_alloc(tok, err)) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer.json: no memory");
        goto done;
    }
    for (size_t id = 0; id < n; id++) {
        char hole[32];
        slot s = sl[id];
        if (!s.s) {
            /* ids the file does not define: unused placeholders */
            int k = snprintf(hole, sizeof hole, "[UNUSED_%zu]", id);
            s = (slot){hole, (size_t)k, WISP_TOKATTR_UNUSED};
        }
        if (tok_strtab_add(&tok->st, s.s, s.n) < 0) {
            rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer.json: no memory");
            goto done;
        }
        tok->attr[id] = s.attr;
        /* SentencePiece byte pieces */
        if (tok->byte_fallback && s.attr == WISP_TOKATTR_NORMAL && s.n == 6 && s.s[0] == '<' &&
            s.s[1] == '0' && s.s[2] == 'x' && s.s[5] == '>')
            tok->attr[id] = WISP_TOKATTR_BYTE;
    }
done:
    free(sl);
    return rc;
}

static int load_merges(wisp_tokenizer *tok, const json_t *merges, wisp_err *err)
{
    if (!json_is_array(merges))
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: model.merges is not an array");
    size_t n = json_array_size(merges);
    int rc = tok_merges_reserve(tok, n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *l, *r;
        size_t ln, rn;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp)
                return wisp_err_set(err, WISP_E_FORMAT,
                                    "tokenizer.json: merge %zu '%s' has no "
                                    "space",
                                    i, s);
            l = s, ln = (size_t)(sp - s), r = sp + 1, rn = len - ln - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0));
            ln = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1));
            rn = json_string_length(json_array_get(m, 1));
        } else {
            return wisp_err_set(err, WISP_E_FORMAT,
                                "tokenizer.json: merge %zu is neither \"a b\" "
                                "nor [\"a\", \"b\"]",
                                i);
        }
        rc = tok_merge_add(tok, l, ln, r, rn, (int32_t)i, err);
    }
    return rc;
}

/* BOS/EOS from a TemplateProcessing post-processor: special tokens before
 * and after the sequence "A" of the single-sequence template. */
static void parse_post(wisp_tokenizer *tok, const json_t *pp, bool *bos_seen, bool *eos_seen)
{
    if (!pp || json_is_null(pp))
        return;
    if (type_is(pp, "Sequence")) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(pp, "processors"), i, e)
            parse_post(tok, e, bos_seen, eos_seen);
        return;
    }
    if (!type_is(pp, "TemplateProcessing"))
        return;
    bool after = false;
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(pp, "single"), i, e)
    {
        if (json_object_get(e, "Sequence")) {
            after = true;
            continue;
        }
        const char *id = jstr(json_object_get(e, "SpecialToken"), "id");
        int32_t t = id ? wisp_tokenizer_find(tok, id, strlen(id)) : -1;
        if (t < 0)
            continue;
        if (!after) {
            tok->sp.bos = t;
            *bos_seen = true;
        } else {
            tok->sp.eos = t;
            *eos_seen = true;
        }
    }
}

static int32_t config_token(const wisp_tokenizer *tok, const json_t *cfg, const char *key)
{
    const json_t *v = json_object_get(cfg, key);
    const char *s = json_is_string(v) ? json_string_value(v) : jstr(v, "content");
    return s ? wisp_tokenizer_find(tok, s, strlen(s)) : -1;
}

static int load(wisp_tokenizer *tok, const json_t *root, const json_t *cfg, wisp_err *err)
{
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return wisp_err_set(err, WISP_E_FORMAT, "tokenizer.json: no model block");
    const char *mt = jstr(model, "type");
    if (mt ? strcmp(mt, "BPE") != 0 : !json_object_get(model, "merges"))
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "tokenizer.json: model type '%s' (only BPE)",
                            mt ? mt : "?");
    tok->algo = TOK_ALGO_BPE;
    tok->byte_fallback = jbool(model, "byte_fallback", false);
    tok->ignore_merges = jbool(model, "ignore_merges", false);
    snprintf(tok->pre_name, sizeof tok->pre_name, "hf");
    int rc;
    if ((rc = parse_normalizer(tok, json_object_get(root, "normalizer"), err)) ||
        (rc = parse_pretok(tok, json_object_get(root, "pre_tokenizer"), err)) ||
        (rc = parse_decoder(tok, json_object_get(root, "decoder"), err)))
        return rc;
    const json_t *added = json_object_get(root, "added_tokens");
    if ((rc = build_vocab(tok, model, json_is_array(added) ? added : NULL, err)) ||
        (rc = load_merges(tok, json_object_get(model, "merges"), err)))
        return rc;
    tok->kind = tok->byte_level ? WISP_TOK_BPE : WISP_TOK_SPM;
    snprintf(tok->model_name, sizeof tok->model_name, "%s", tok->byte_level ? "gpt2" : "llama");
    const char *unk = jstr(model, "unk_token");
    if (unk && (tok->sp.unk = wisp_tokenizer_find(tok, unk, strlen(unk))) >= 0)
        tok->attr[tok->sp.unk] = WISP_TOKATTR_UNKNOWN;

    bool bos_seen = false, eos_seen = false;
    parse_post(tok, json_object_get(root, "post_processor"), &bos_seen, &eos_seen);
    tok->add_bos = bos_seen;
    tok->add_eos = eos_seen;
    tok->clean_spaces = false;
    if (cfg) {
        int32_t b = config_token(tok, cfg, "bos_token"), e = config_token(tok, cfg, "eos_token");
        int32_t p = config_token(tok, cfg, "pad_token");
        if (b >= 0)
            tok->sp.bos = b;
        if (e >= 0)
            tok->sp.eos = e;
        if (p >= 0)
            tok->sp.pad = p;
        tok->add_bos = jbool(cfg, "add_bos_token", tok->add_bos);
        tok->add_eos = jbool(cfg, "add_eos_token", tok->add_eos);
        tok->clean_spaces = jbool(cfg, "clean_up_tokenization_spaces", false);
    }
    return tok_vocab_finish(tok, err);
}

static json_t *load_json(const char *path, bool required, wisp_err *err, int *rc)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    *rc = 0;
    if (!j && required)
        *rc = wisp_err_set(err, WISP_E_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return j;
}

int wisp_tokenizer_from_hf(const char *path, wisp_tokenizer **out, wisp_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return wisp_err_set(err, WISP_E_IO, "tokenizer: cannot open %s", path);
    size_t pl = strlen(path);
    char *tj = malloc(pl + 32), *tc = malloc(pl + 32);
    if (!tj || !tc) {
        free(tj);
        free(tc);
        return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory");
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(tj, pl + 32, "%s/tokenizer.json", path);
        snprintf(tc, pl + 32, "%s/tokenizer_config.json", path);
    } else {
        snprintf(tj, pl + 32, "%s", path);
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) : 1;
        snprintf(tc, pl + 32, "%.*s/tokenizer_config.json", dl, slash ? path : ".");
    }
    int rc;
    json_t *root = load_json(tj, true, err, &rc);
    json_t *cfg = root ? load_json(tc, false, err, &rc) : NULL;
    wisp_tokenizer *tok = root ? tok_alloc() : NULL;
    if (root && !tok)
        rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory");
    if (tok && (rc = load(tok, root, json_is_object(cfg) ? cfg : NULL, err)) != 0)
        wisp_err_prefix(err, "%s", tj);
    if (rc) {
        wisp_tokenizer_free(tok);
        tok = NULL;
    }
    json_decref(root);
    json_decref(cfg);
    free(tj);
    free(tc);
    *out = tok;
    return rc;
}
