/*
 * model.c - the two merge loops.
 *
 * SentencePiece (llama.cpp's llm_tokenizer_spm): start from UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the
 * highest-scoring vocabulary token (leftmost on ties), then emit each piece,
 * or its bytes as <0xXX> tokens when the piece is not a token.
 * BPE (llm_tokenizer_bpe): the same loop over one pre-token, driven by merge
 * rank (lowest first, leftmost on ties) instead of score.
 *
 * Both keep a doubly linked list of symbols and a binary heap of candidate
 * pairs; a popped pair is stale when either side has changed since it was
 * pushed, which the stored byte size detects (a symbol only grows to the
 * right, so equal sizes mean unchanged symbols). All state is per call, in
 * a scratch the caller reuses across words.
 *
 * Speed without changing results: a "barrier" byte is an ASCII byte that no
 * string of two or more bytes in the vocabulary or the merges contains
 * (SentencePiece's '\n', for one). No pair containing it can ever merge, so
 * the text splits at barriers into segments that merge independently and
 * in the same relative order - the same ids, with small heaps instead of
 * one heap over the whole prompt.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_int.h"

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the text */
    int32_t id;      /* strtab id of the text (BPE), -1 when unknown */
} sym;

typedef struct cand {
    float score; /* SPM: higher first; BPE: -rank */
    int32_t left, right;
    uint32_t size;
} cand;

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static bool cand_before(const cand *a, const cand *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

static int heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        cand *nv = realloc(h->v, nc * sizeof(cand));
        if (!nv)
            return WISP_E_NOMEM;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static cand heap_pop(heap *h)
{
    cand top = h->v[0];
    cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_before(&h->v[l], best))
            m = l, best = &h->v[l];
        if (r < h->n && cand_before(&h->v[r], best))
            m = r;
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

typedef struct syms {
    sym *v;
    size_t n, cap;
} syms;

struct tok_scratch {
    syms s;
    heap h;
};

tok_scratch *tok_scratch_new(void) { return calloc(1, sizeof(tok_scratch)); }

void tok_scratch_free(tok_scratch *sc)
{
    if (!sc)
        return;
    free(sc->s.v);
    free(sc->h.v);
    free(sc);
}

/* Splits text into UTF-8 characters (lead-byte length, clamped). */
static int syms_from_chars(syms *s, const char *text, size_t len)
{
    s->n = 0;
    if (len > s->cap) {
        sym *nv = realloc(s->v, len * sizeof(sym));
        if (!nv)
            return WISP_E_NOMEM;
        s->v = nv;
        s->cap = len;
    }
    size_t off = 0;
    while (off < len) {
        size_t l = tok_utf8_len((unsigned char)text[off]);
        if (l > len - off)
            l = len - off;
        sym *y = &s->v[s->n];
        y->off = (uint32_t)off;
        y->n = (uint32_t)l;
        y->prev = (int32_t)s->n - 1;
        off += l;
        y->next = off == len ? -1 : (int32_t)s->n + 1;
        y->id = -1;
        s->n++;
    }
    return 0;
}

static void merge_pair(syms *s, int32_t left, int32_t right)
{
    sym *l = &s->v[left], *r = &s->v[right];
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
        s->v[r->next].prev = left;
}

/* ---------------------------------------------------------------- SPM */

static int spm_try(const wisp_tokenizer *tok, const char *text, syms *s, heap *h, int32_t left,
                   int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    uint32_t size = s->v[left].n + s->v[right].n;
    int32_t id = tok_strtab_find(&tok->st, text + s->v[left].off, size);
    if (id < 0 || id >= tok->n_vocab)
        return 0;
    return heap_push(h, (cand){tok->score[id], left, right, size});
}

static int emit_bytes(const wisp_tokenizer *tok, const char *p, size_t n, wisp_tokens *out)
{
    for (size_t j = 0; j < n; j++) {
        int32_t id = tok->byte_tok[(unsigned char)p[j]];
        if (id < 0)
            id = tok->sp.unk;
        if (id >= 0 && wisp_tokens_push(out, id))
            return WISP_E_NOMEM;
    }
    return 0;
}

static int spm_segment(const wisp_tokenizer *tok, const char *text, size_t len, tok_scratch *sc,
                       wisp_tokens *out)
{
    syms s = sc->s;
    heap h = sc->h;
    h.n = 0;
    int rc = syms_from_chars(&s, text, len);
    for (size_t i = 1; rc == 0 && i < s.n; i++)
        rc = spm_try(tok, text, &s, &h, (int32_t)i - 1, (int32_t)i);
    while (rc == 0 && h.n) {
        cand c = heap_pop(&h);
        sym *l = &s.v[c.left], *r = &s.v[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.size)
            continue;
        merge_pair(&s, c.left, c.right);
        rc = spm_try(tok, text, &s, &h, s.v[c.left].prev, c.left);
        if (rc == 0)
            rc = spm_try(tok, text, &s, &h, c.left, s.v[c.left].next);
    }
    for (int32_t i = s.n ? 0 : -1; rc == 0 && i != -1; i = s.v[i].next) {
        const sym *y = &s.v[i];
        int32_t id = tok_strtab_find(&tok->st, text + y->off, y->n);
        if (id >= 0 && id < tok->n_vocab)
            rc = wisp_tokens_push(out, id);
        else
            rc = emit_bytes(tok, text + y->off, y->n, out);
    }
    sc->s = s;
    sc->h = h;
    return rc;
}

/* Runs fn over the barrier-separated segments of text. */
static int by_segments(const wisp_tokenizer *tok, const char *text, size_t len, tok_scratch *sc,
                       wisp_tokens *out,
                       int (*fn)(const wisp_tokenizer *, const char *, size_t, tok_scratch *,
                                 wisp_tokens *))
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (!tok->barrier[(unsigned char)text[i]])
            continue;
        int rc = 0;
        if (i > start)
            rc = fn(tok, text + start, i - start, sc, out);
        if (rc == 0)
            rc = fn(tok, text + i, 1, sc, out);
        if (rc)
            return rc;
        start = i + 1;
    }
    return start < len ? fn(tok, text + start, len - start, sc, out) : 0;
}

int tok_spm_encode(const wisp_tokenizer *tok, const char *text, size_t len, tok_scratch *sc,
                   wisp_tokens *out)
{
    return by_segments(tok, text, len, sc, out, spm_segment);
}

/* ---------------------------------------------------------------- BPE */

static int bpe_try(const wisp_tokenizer *tok, syms *s, heap *h, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    int32_t result;
    int32_t rank = tok_merge_find(tok, s->v[left].id, s->v[right].id, &result);
    if (rank < 0)
        return 0;
    return heap_push(h, (cand){-(float)rank, left, right, s->v[left].n + s->v[right].n});
}

/* A piece that is not a token: llama.cpp emits the single-byte tokens of
 * its text that exist; with byte fallback (HF) its <0xXX> tokens or unk. */
static int emit_unknown(const wisp_tokenizer *tok, const char *p, size_t n, wisp_tokens *out)
{
    if (tok->byte_fallback)
        return emit_bytes(tok, p, n, out);
    for (size_t j = 0; j < n; j++) {
        int32_t id = tok_strtab_find(&tok->st, p + j, 1);
        if (id >= 0 && id < tok->n_vocab && wisp_tokens_push(out, id))
            return WISP_E_NOMEM;
    }
    return 0;
}

static int bpe_segment(const wisp_tokenizer *tok, const char *word, size_t len, tok_scratch *sc,
                       wisp_tokens *out)
{
    syms s = sc->s;
    heap h = sc->h;
    h.n = 0;
    int rc = syms_from_chars(&s, word, len);
    for (size_t i = 0; rc == 0 && i < s.n; i++)
        s.v[i].id = tok_strtab_find(&tok->st, word + s.v[i].off, s.v[i].n);
    for (size_t i = 1; rc == 0 && i < s.n; i++)
        rc = bpe_try(tok, &s, &h, (int32_t)i - 1, (int32_t)i);
    while (rc == 0 && h.n) {
        cand c = heap_pop(&h);
        sym *l = &s.v[c.left], *r = &s.v[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.size)
            continue;
        int32_t result = -1;
        tok_merge_find(tok, l->id, r->id, &result);
        merge_pair(&s, c.left, c.right);
        s.v[c.left].id = result;
        rc = bpe_try(tok, &s, &h, s.v[c.left].prev, c.left);
        if (rc == 0)
            rc = bpe_try(tok, &s, &h, c.left, s.v[c.left].next);
    }
    for (int32_t i = 0; rc == 0 && i != -1; i = s.v[i].next) {
        const sym *y = &s.v[i];
        if (y->id >= 0 && y->id < tok->n_vocab)
            rc = wisp_tokens_push(out, y->id);
        else
            rc = emit_unknown(tok, word + y->off, y->n, out);
    }
    sc->s = s;
    sc->h = h;
    return rc;
}

int tok_bpe_encode_word(const wisp_tokenizer *tok, const char *word, size_t len, tok_scratch *sc,
                        wisp_tokens *out)
{
    if (len == 0)
        return 0;
    if (tok->ignore_merges) {
        int32_t id = tok_strtab_find(&tok->st, word, len);
        if (id >= 0 && id < tok->n_vocab)
            return wisp_tokens_push(out, id);
    }
    return by_segments(tok, word, len, sc, out, bpe_segment);
}
