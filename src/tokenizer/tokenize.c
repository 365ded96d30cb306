/*
 * tokenize.c - text -> ids: special-token partition, text preparation, and
 * dispatch to the SentencePiece or BPE merge loop.
 *
 * The partition is llama.cpp's tokenizer_st_partition: for each special
 * token, longest text first, every raw fragment is split at each of its
 * occurrences. With parse_special false, control and unknown tokens are
 * skipped but user-defined tokens still split the text (Hugging Face does
 * the same for added tokens that are not special). lstrip/rstrip tokens
 * swallow the whitespace beside them.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/buf.h"
#include "tokenizer/tok_int.h"

typedef struct frag {
    int32_t id; /* -1 for raw text */
    size_t off, len;
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static int frags_push(frags *f, frag x)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        frag *nv = realloc(f->v, nc * sizeof(frag));
        if (!nv)
            return WISP_E_NOMEM;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n++] = x;
    return 0;
}

static bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Which byte pairs occur in the text: a special token with a pair that
 * does not occur cannot occur either, which spares most memmem scans
 * (vocabularies carry up to thousands of special tokens). */
static bool may_occur(const uint64_t *pairs, const char *t, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned k = ((unsigned)(unsigned char)t[i] << 8) | (unsigned char)t[i + 1];
        if (!(pairs[k >> 6] & (1ull << (k & 63))))
            return false;
    }
    return true;
}

static int partition(const wisp_tokenizer *tok, const char *text, size_t len, bool parse_special,
                     frags *out)
{
    frags cur = {0}, nxt = {0};
    int rc = 0;
    uint64_t *pairs = calloc(1024, sizeof(uint64_t));
    if (!pairs)
        return WISP_E_NOMEM;
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = ((unsigned)(unsigned char)text[i] << 8) | (unsigned char)text[i + 1];
        pairs[k >> 6] |= 1ull << (k & 63);
    }
    if (len && (rc = frags_push(&cur, (frag){-1, 0, len})))
        goto done;
    for (int32_t k = 0; k < tok->n_special; k++) {
        int32_t id = tok->special_ids[k];
        uint32_t attr = tok->attr[id];
        if (!parse_special && (attr & (WISP_TOKATTR_CONTROL | WISP_TOKATTR_UNKNOWN)))
            continue;
        size_t tl;
        const char *t = tok_strtab_str(&tok->st, id, &tl);
        if (tl > len || !may_occur(pairs, t, tl))
            continue;
        bool any = false;
        nxt.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            frag f = cur.v[i];
            while (f.id < 0 && f.len >= tl) {
                const char *m = memmem(text + f.off, f.len, t, tl);
                if (!m)
                    break;
                any = true;
                size_t mo = (size_t)(m - text);
                size_t llen = mo - f.off;
                if (attr & WISP_TOKATTR_LSTRIP)
                    while (llen > 0 && is_space((unsigned char)text[f.off + llen - 1]))
                        llen--;
                if (llen && (rc = frags_push(&nxt, (frag){-1, f.off, llen})))
                    goto done;
                if ((rc = frags_push(&nxt, (frag){id, mo, tl})))
                    goto done;
                size_t ro = mo + tl, rlen = f.off + f.len - ro;
                if (attr & WISP_TOKATTR_RSTRIP)
                    while (rlen > 0 && is_space((unsigned char)text[ro]))
                        ro++, rlen--;
                f.off = ro;
                f.len = rlen;
            }
            if ((f.id >= 0 || f.len) && (rc = frags_push(&nxt, f)))
                goto done;
        }
        if (any) {
            frags t2 = cur;
            cur = nxt;
            nxt = t2;
        }
    }
    *out = cur;
    cur.v = NULL;
done:
    free(pairs);
    free(cur.v);
    free(nxt.v);
    return rc;
}

/* ---------------------------------------------------------------- buffers */

static size_t utf8_invalid_at(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = tok_utf8_check((const unsigned char *)s + i, n - i);
        if (l == 0 || l == SIZE_MAX)
            return i;
        i += l;
    }
    return SIZE_MAX;
}

/* Unicode normalization of one fragment (utf8proc), into b. */
static int normalize(const wisp_tokenizer *tok, const char *s, size_t n, wisp_buf *b, wisp_err *err)
{
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (tok->unorm) {
    case TOK_UNORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TOK_UNORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TOK_UNORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case TOK_UNORM_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    default: return wisp_buf_append(b, s, n);
    }
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opt);
    if (r < 0)
        return wisp_err_set(err, WISP_E_INVALID, "tokenize: cannot normalize text: %s",
                            utf8proc_errmsg(r));
    int rc = wisp_buf_append(b, res, (size_t)r);
    free(res);
    return rc;
}

/* Normalization, the optional prefix and space escaping of one fragment. */
static int prepare(const wisp_tokenizer *tok, const char *s, size_t n, bool at_start, wisp_buf *out,
                   wisp_buf *tmp, wisp_err *err)
{
    wisp_buf_clear(out);
    wisp_buf_clear(tmp);
    int rc = 0;
    if (tok->unorm != TOK_UNORM_NONE) {
        if ((rc = normalize(tok, s, n, tmp, err)))
            return rc;
        s = tmp->data;
        n = tmp->len;
    }
    if (tok->prepend == TOK_PREPEND_ALWAYS || (tok->prepend == TOK_PREPEND_FIRST && at_start))
        rc = wisp_buf_append(out, tok->prepend_str, strlen(tok->prepend_str));
    if (rc == 0 && tok->bytelevel_prefix_space && n && s[0] != ' ')
        rc = wisp_buf_append(out, " ", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (tok->escape_spaces && s[i] == ' ')
            rc = wisp_buf_append(out, "\xE2\x96\x81", 3);
        else
            rc = wisp_buf_append(out, s + i, 1);
    }
    return rc ? wisp_err_set(err, rc, "tokenize: no memory") : 0;
}

static int encode_bpe(const wisp_tokenizer *tok, const char *s, size_t n, wisp_tokens *out,
                      wisp_err *err)
{
    if (tok->byte_level || tok->n_re) {
        size_t bad = utf8_invalid_at(s, n);
        if (bad != SIZE_MAX)
            return wisp_err_set(err, WISP_E_INVALID, "tokenize: text is not valid UTF-8 (byte %zu)",
                                bad);
    }
    size_t *offs = NULL, nw = 1;
    size_t whole[2] = {0, n};
    if (tok->n_re) {
        int rc = tok_pretok_split(tok, s, n, &offs, &nw, err);
        if (rc)
            return rc;
    }
    const size_t *o = offs ? offs : whole;
    wisp_buf word = WISP_BUF_INIT;
    tok_scratch *sc = tok_scratch_new();
    int rc = sc ? 0 : WISP_E_NOMEM;
    for (size_t w = 0; rc == 0 && w < nw; w++) {
        const char *p = s + o[w];
        size_t len = o[w + 1] - o[w];
        if (tok->byte_level) {
            wisp_buf_clear(&word);
            for (size_t i = 0; rc == 0 && i < len; i++) {
                unsigned char b = (unsigned char)p[i];
                rc = wisp_buf_append(&word, tok->b2u[b], tok->b2u_len[b]);
            }
            p = word.data;
            len = word.len;
        }
        if (rc == 0)
            rc = tok_bpe_encode_word(tok, p, len, sc, out);
    }
    tok_scratch_free(sc);
    free(word.data);
    free(offs);
    return rc ? wisp_err_set(err, rc, "tokenize: no memory") : 0;
}

int wisp_tokenize(const wisp_tokenizer *tok, const char *text, size_t len, bool add_special,
                  bool parse_special, wisp_tokens *out, wisp_err *err)
{
    size_t n0 = out->n;
    frags fr = {0};
    wisp_buf prep = WISP_BUF_INIT, tmp = WISP_BUF_INIT;
    int rc = partition(tok, text, len, parse_special, &fr);
    if (rc) {
        rc = wisp_err_set(err, rc, "tokenize: no memory");
        goto done;
    }
    if (add_special && tok->add_bos) {
        if (tok->sp.bos < 0) {
            rc = wisp_err_set(err, WISP_E_INTERNAL,
                              "tokenize: the vocabulary adds BOS but has none");
            goto done;
        }
        if ((rc = wisp_tokens_push(out, tok->sp.bos)))
            goto nomem;
    }
    for (size_t i = 0; i < fr.n; i++) {
        const frag *f = &fr.v[i];
        if (f->id >= 0) {
            if ((rc = wisp_tokens_push(out, f->id)))
                goto nomem;
            continue;
        }
        rc = prepare(tok, text + f->off, f->len, f->off == 0, &prep, &tmp, err);
        if (rc)
            goto done;
        if (tok->algo == TOK_ALGO_SPM) {
            tok_scratch *sc = tok_scratch_new();
            rc = sc ? tok_spm_encode(tok, prep.data, prep.len, sc, out) : WISP_E_NOMEM;
            tok_scratch_free(sc);
            if (rc)
                goto nomem;
        } else if ((rc = encode_bpe(tok, prep.data, prep.len, out, err))) {
            goto done;
        }
    }
    if (add_special && tok->add_eos) {
        if (tok->sp.eos < 0) {
            rc = wisp_err_set(err, WISP_E_INTERNAL,
                              "tokenize: the vocabulary adds EOS but has none");
            goto done;
        }
        if ((rc = wisp_tokens_push(out, tok->sp.eos)))
            goto nomem;
    }
    goto done;
nomem:
    rc = wisp_err_set(err, WISP_E_NOMEM, "tokenize: no memory");
done:
    if (rc)
        out->n = n0;
    free(fr.v);
    free(prep.data);
    free(tmp.data);
    return rc;
}
