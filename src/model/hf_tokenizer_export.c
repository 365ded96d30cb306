/*
 * hf_tokenizer_export.c - writes a GGUF vocabulary as a Hugging Face
 * tokenizer.json, so the synthesizer's Hugging Face checkpoints carry the
 * same tokenizer as its GGUF files.
 *
 * Byte-level BPE vocabularies ("gpt2" in GGUF) map one to one: the vocab,
 * the merges in rank order, a ByteLevel decoder, and the pre-tokenizer that
 * Hugging Face uses for the `tokenizer.ggml.pre` value (table below; the
 * regexes are the ones both llama.cpp and the original tokenizer.json files
 * use). SentencePiece vocabularies ("llama") become a BPE model with
 * byte_fallback, as transformers' LlamaConverter writes them (TinyLlama's
 * tokenizer.json): Prepend+Replace normalizer, the
 * Replace/ByteFallback/Fuse/Strip decoder, and merges generated the way its
 * SentencePieceExtractor does: every split of every piece into two pieces
 * of the vocabulary, ordered by the merged piece's score (highest first,
 * ties in vocabulary order) and within a piece by the halves' ids.
 */
#include "model/hf_tokenizer_export.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ pre-tokenizers */

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| " \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| " \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Pre-tokenizer steps in a compact form: "S:<regex>" Split (isolated),
 * "D1"/"D0" Digits (individual or not), "P" Punctuation (contiguous),
 * "B1"/"B0" ByteLevel with or without the GPT-2 regex. */
static const struct {
    const char *pre[4];
    const char *steps[8];
} pre_table[] = {
    {{"default", "gpt-2", "gpt2", "mpt"}, {"B1"}},
    {{"starcoder", "refact"}, {"D1", "B1"}},
    {{"falcon"}, {"P", "B1", "D0", "S:[0-9][0-9][0-9]"}},
    {{"llama3", "llama-bpe", "smaug-bpe"}, {"S:" LLAMA3_RE, "B0"}},
    {{"qwen2", "deepseek-r1-qwen"}, {"S:" QWEN2_RE, "B0"}},
    {{"deepseek-coder"},
     {"S:[\r\n]", "S:\\s?\\p{L}+", "S:\\s?\\p{P}+",
      "S:[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9e\xbf]+", "D1",
      "B0"}},
};

static json_t *byte_level(bool regex)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                     "trim_offsets", 1, "use_regex", regex);
}

static json_t *pre_step(const char *s)
{
    if (s[0] == 'S')
        return json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", s + 2,
                         "behavior", "Isolated", "invert", 0);
    if (s[0] == 'D')
        return json_pack("{s:s, s:b}", "type", "Digits", "individual_digits", s[1] == '1');
    if (s[0] == 'P')
        return json_pack("{s:s, s:s}", "type", "Punctuation", "behavior", "Contiguous");
    return byte_level(s[1] == '1');
}

static json_t *pre_tokenizer(const char *pre)
{
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        for (int j = 0; j < 4 && pre_table[i].pre[j]; j++)
            if (strcmp(pre, pre_table[i].pre[j]) == 0) {
                json_t *seq = json_array();
                for (int k = 0; k < 8 && pre_table[i].steps[k]; k++)
                    json_array_append_new(seq, pre_step(pre_table[i].steps[k]));
                if (json_array_size(seq) == 1) {
                    json_t *one = json_incref(json_array_get(seq, 0));
                    json_decref(seq);
                    return one;
                }
                return json_pack("{s:s, s:o}", "type", "Sequence", "pretokenizers", seq);
            }
    return NULL;
}

/* ------------------------------------------------------------ SPM merges */

typedef struct vocab_map {
    uint32_t *slots; /* id + 1, 0 = empty */
    size_t mask;
    const wisp_gguf *g;
} vocab_map;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h;
}

static int64_t map_find(const vocab_map *m, const char *p, size_t n)
{
    for (size_t i = hash_bytes(p, n) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (!v)
            return -1;
        wisp_str s = wisp_gguf_arr_str(m->g, "tokenizer.ggml.tokens", v - 1);
        if (s.len == n && memcmp(s.ptr, p, n) == 0)
            return v - 1;
    }
}

typedef struct merge {
    uint32_t l, r;  /* token ids of the halves */
    float score;    /* the merged piece's score */
    uint64_t order; /* merged id << 32 | position: ties keep vocab order */
} merge;

static int cmp_merge(const void *a, const void *b)
{
    const merge *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int spm_merges(const wisp_gguf *g, uint64_t n, json_t *out, wisp_err *err)
{
    vocab_map m = {0};
    size_t cap = 64;
    while (cap < n * 2)
        cap *= 2;
    m.slots = calloc(cap, sizeof *m.slots);
    m.mask = cap - 1;
    m.g = g;
    size_t mcap = 1024, mn = 0;
    merge *v = malloc(mcap * sizeof *v);
    if (!m.slots || !v) {
        free(m.slots);
        free(v);
        return wisp_err_set(err, WISP_E_NOMEM, "merges");
    }
    for (uint64_t id = 0; id < n; id++) {
        wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", id);
        if (map_find(&m, s.ptr, s.len) >= 0)
            continue; /* a duplicate piece keeps its first id, like a dict */
        size_t i = hash_bytes(s.ptr, s.len) & m.mask;
        while (m.slots[i])
            i = (i + 1) & m.mask;
        m.slots[i] = (uint32_t)id + 1;
    }
    const void *scores = wisp_gguf_arr_data(g, "tokenizer.ggml.scores");
    for (uint64_t id = 0; id < n; id++) {
        wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", id);
        float score = 0;
        if (scores)
            memcpy(&score, (const char *)scores + 4 * id, 4);
        size_t first = mn;
        for (size_t k = 1; k < s.len; k++) {
            if (((uint8_t)s.ptr[k] & 0xC0) == 0x80)
                continue; /* split on code points, as Python slices do */
            int64_t l = map_find(&m, s.ptr, k), r = map_find(&m, s.ptr + k, s.len - k);
            if (l < 0 || r < 0)
                continue;
            if (mn == mcap) {
                mcap *= 2;
                merge *nv = realloc(v, mcap * sizeof *v);
                if (!nv) {
                    free(m.slots);
                    free(v);
                    return wisp_err_set(err, WISP_E_NOMEM, "merges");
                }
                v = nv;
            }
            v[mn++] = (merge){(uint32_t)l, (uint32_t)r, score, 0};
        }
        /* within a piece: by (left id, right id) */
        for (size_t a = first + 1; a < mn; a++)
            for (size_t b = a; b > first && (v[b - 1].l > v[b].l ||
                                             (v[b - 1].l == v[b].l && v[b - 1].r > v[b].r));
                 b--) {
                merge t = v[b];
                v[b] = v[b - 1];
                v[b - 1] = t;
            }
        for (size_t a = first; a < mn; a++)
            v[a].order = (uint64_t)a;
    }
    qsort(v, mn, sizeof *v, cmp_merge);
    for (size_t i = 0; i < mn; i++) {
        wisp_str l = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", v[i].l);
        wisp_str r = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", v[i].r);
        char *buf = malloc(l.len + r.len + 2);
        if (!buf)
            break;
        memcpy(buf, l.ptr, l.len);
        buf[l.len] = ' ';
        memcpy(buf + l.len + 1, r.ptr, r.len);
        buf[l.len + 1 + r.len] = '\0';
        json_array_append_new(out, json_stringn(buf, l.len + 1 + r.len));
        free(buf);
    }
    free(m.slots);
    free(v);
    return 0;
}

/* ------------------------------------------------------------ the document */

static json_t *token_str(const wisp_gguf *g, uint64_t id)
{
    wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", id);
    return json_stringn(s.ptr, s.len);
}

static json_t *spm_parts(void)
{
    json_t *norm = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                             "normalizers", "type", "Prepend", "prepend", "\xe2\x96\x81", "type",
                             "Replace", "pattern", "String", " ", "content", "\xe2\x96\x81");
    return norm;
}

static json_t *spm_decoder(void)
{
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type",
                     "Sequence", "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81",
                     "content", " ", "type", "ByteFallback", "type", "Fuse", "type", "Strip",
                     "content", " ", "start", 1, "stop", 0);
}

int wisp_hf_tokenizer_export(const wisp_gguf *g, const char *path, wisp_err *err)
{
    wisp_str model;
    wisp_gguf_vtype et;
    uint64_t n;
    if (!wisp_gguf_get_str(g, "tokenizer.ggml.model", &model) ||
        !wisp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) || et != WISP_GGUF_STRING)
        return wisp_err_set(err, WISP_E_FORMAT, "the file has no tokenizer");
    bool spm = wisp_str_eq(model, "llama");
    if (!spm && !wisp_str_eq(model, "gpt2"))
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "tokenizer model '%.*s' cannot be exported (llama, gpt2)",
                            (int)model.len, model.ptr);
    wisp_str pre = {"default", 7};
    wisp_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    char prebuf[64];
    snprintf(prebuf, sizeof prebuf, "%.*s", (int)(pre.len < 63 ? pre.len : 63), pre.ptr);
    json_t *pretok = spm ? json_null() : pre_tokenizer(prebuf);
    if (!pretok)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "pre-tokenizer '%s' has no Hugging Face equivalent in wisp's table",
                            prebuf);
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    const void *types = wisp_gguf_arr_data(g, "tokenizer.ggml.token_type");
    wisp_gguf_vtype tt = WISP_GGUF_INT32;
    uint64_t tn = 0;
    wisp_gguf_get_arr(g, "tokenizer.ggml.token_type", &tt, &tn);
    for (uint64_t id = 0; id < n; id++) {
        wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", id);
        char *key = strndup(s.ptr, s.len);
        if (key && !json_object_get(vocab, key))
            json_object_set_new(vocab, key, json_integer((json_int_t)id));
        free(key);
        int32_t type = 1;
        if (types && tn == n && tt == WISP_GGUF_INT32)
            memcpy(&type, (const char *)types + 4 * id, 4);
        if (type == 3 || type == 4) /* control, user-defined */
            json_array_append_new(added, json_pack("{s:I, s:o, s:b, s:b, s:b, s:b, s:b}", "id",
                                                   (json_int_t)id, "content", token_str(g, id),
                                                   "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                   "normalized", 0, "special", type == 3));
    }
    int rc = 0;
    if (spm) {
        rc = spm_merges(g, n, merges, err);
    } else {
        uint64_t nm = 0;
        wisp_gguf_vtype me;
        if (wisp_gguf_get_arr(g, "tokenizer.ggml.merges", &me, &nm) && me == WISP_GGUF_STRING)
            for (uint64_t i = 0; i < nm; i++) {
                wisp_str s = wisp_gguf_arr_str(g, "tokenizer.ggml.merges", i);
                json_array_append_new(merges, json_stringn(s.ptr, s.len));
            }
    }
    json_t *bpe =
        json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", spm,
                  "byte_fallback", spm, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    if (spm) {
        uint32_t unk = 0;
        wisp_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &unk);
        if (unk < n)
            json_object_set_new(bpe, "unk_token", token_str(g, unk));
    }
    json_t *post = json_null();
    bool add_bos = spm;
    uint32_t bos = 0;
    wisp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    if (add_bos && wisp_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos) && bos < n) {
        json_t *bs = token_str(g, bos);
        const char *b = json_string_value(bs);
        post =
            json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[], s:{s:{s:s, s:[I], s:[s]}}}",
                      "type", "TemplateProcessing", "single", "SpecialToken", "id", b, "type_id", 0,
                      "Sequence", "id", "A", "type_id", 0, "pair", "special_tokens", b, "id", b,
                      "ids", (json_int_t)bos, "tokens", b);
        json_decref(bs);
    }
    json_t *doc =
        json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation",
                  "padding", "added_tokens", added, "normalizer", spm ? spm_parts() : json_null(),
                  "pre_tokenizer", pretok, "post_processor", post, "decoder",
                  spm ? spm_decoder() : byte_level(true), "model", bpe);
    if (!doc)
        rc = rc ? rc : wisp_err_set(err, WISP_E_NOMEM, "tokenizer.json");
    if (!rc && json_dump_file(doc, path, JSON_COMPACT) != 0)
        rc = wisp_err_set(err, WISP_E_IO, "cannot write %s", path);
    json_decref(doc);
    return rc;
}
