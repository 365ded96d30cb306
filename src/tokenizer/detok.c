/*
 * detok.c - ids -> text: pieces, the batch detokenizer and the streaming
 * detokenizer.
 *
 * A piece is llama.cpp's token_to_piece: SentencePiece texts turn U+2581
 * back into spaces and <0xXX> tokens into their byte; byte-level BPE texts
 * map each code point back to its byte. Pieces may end inside a UTF-8
 * character (byte tokens, BPE tokens holding part of one), so the stream
 * holds such bytes back until the character is complete and never returns
 * invalid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_int.h"

typedef struct dbuf {
    char *p;
    size_t n, cap;
} dbuf;

static int dbuf_put(dbuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return WISP_E_NOMEM;
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int put_unescaped(dbuf *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0, run = 0;
    while (i < n) {
        if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
            rc |= dbuf_put(b, s + run, i - run);
            rc |= dbuf_put(b, " ", 1);
            i += 3;
            run = i;
        } else {
            i++;
        }
    }
    rc |= dbuf_put(b, s + run, n - run);
    return rc;
}

/* llama.cpp's llama_decode_text: byte-level code points back to bytes. */
static int put_bytelevel(const wisp_tokenizer *tok, dbuf *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0;
    while (i < n && rc == 0) {
        size_t adv;
        uint32_t cp = tok_utf8_decode((const unsigned char *)s + i, n - i, &adv);
        int byte = cp < 324 ? tok->u2b[cp] : -1;
        if (byte >= 0) {
            char c = (char)byte;
            rc = dbuf_put(b, &c, 1);
        } else {
            char hex[16];
            rc = dbuf_put(b, "[UNK_BYTE_0x", 12);
            for (size_t j = 0; j < adv && rc == 0; j++) {
                snprintf(hex, sizeof hex, "%02x", (unsigned char)s[i + j]);
                rc = dbuf_put(b, hex, 2);
            }
            rc |= dbuf_put(b, s, n);
            rc |= dbuf_put(b, "]", 1);
        }
        i += adv;
    }
    return rc;
}

/* Appends the piece of id to b; lstrip drops one leading space. */
static int piece(const wisp_tokenizer *tok, int32_t id, bool render_special, bool lstrip, dbuf *b)
{
    uint32_t attr = tok->attr[id];
    const uint32_t special = WISP_TOKATTR_UNKNOWN | WISP_TOKATTR_CONTROL;
    if (!render_special && (attr & special))
        return 0;
    size_t start = b->n, n;
    const char *t = tok_strtab_str(&tok->st, id, &n);
    int rc = 0;
    if (attr & (special | WISP_TOKATTR_USER_DEFINED)) {
        rc = dbuf_put(b, t, n);
    } else if (attr & WISP_TOKATTR_NORMAL) {
        rc = tok->byte_level ? put_bytelevel(tok, b, t, n) : put_unescaped(b, t, n);
    } else if ((attr & WISP_TOKATTR_BYTE) && !tok->byte_level) {
        /* "<0xXX>" */
        char hex[3] = {n == 6 ? t[3] : '0', n == 6 ? t[4] : '0', 0};
        char c = (char)strtol(hex, NULL, 16);
        rc = dbuf_put(b, &c, 1);
    }
    if (rc)
        return WISP_E_NOMEM;
    if (lstrip && b->n > start && b->p[start] == ' ') {
        memmove(b->p + start, b->p + start + 1, b->n - start - 1);
        b->n--;
        b->p[b->n] = '\0';
    }
    return 0;
}

int wisp_token_to_piece(const wisp_tokenizer *tok, int32_t id, bool render_special, char *buf,
                        size_t cap)
{
    if (id < 0 || id >= tok->n_vocab)
        return WISP_E_INVALID;
    dbuf b = {0};
    int rc = piece(tok, id, render_special, false, &b);
    if (rc)
        return rc;
    if (b.n > INT32_MAX) {
        free(b.p);
        return WISP_E_TOO_LARGE;
    }
    if (b.n && cap)
        memcpy(buf, b.p, b.n < cap ? b.n : cap);
    int n = (int)b.n;
    free(b.p);
    return n;
}

/* llama.cpp's clean_spaces pass: " ?" " !" " ." " ," lose the space, a lone
 * apostrophe between spaces loses both, " 's" " 'm" " 're" " 've" lose it. */
static size_t clean_spaces(char *t, size_t total)
{
    size_t n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            n--;
        t[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
            n--;
            t[++i] = '\0';
        }
        t[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < total) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm')
                n--;
            else if (i + 2 < total && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e')))
                n--;
        }
        t[n++] = x;
    }
    return n;
}

int wisp_detokenize(const wisp_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                    char **out, size_t *len, wisp_err *err)
{
    bool remove_space = tok->strip_prefix_space;
    if ((flags & WISP_DETOK_REMOVE_SPECIAL) && tok->add_bos && n && ids[0] == tok->sp.bos) {
        remove_space = false;
        ids++;
        n--;
    }
    if ((flags & WISP_DETOK_REMOVE_SPECIAL) && tok->add_eos && n && ids[n - 1] == tok->sp.eos)
        n--;
    dbuf b = {0};
    if (dbuf_put(&b, "", 0))
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            free(b.p);
            return wisp_err_set(err, WISP_E_INVALID, "detokenize: token id %d out of range [0, %d)",
                                ids[i], tok->n_vocab);
        }
        if (piece(tok, ids[i], flags & WISP_DETOK_RENDER_SPECIAL, remove_space, &b)) {
            free(b.p);
            return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
        }
        remove_space = false;
    }
    if ((flags & WISP_DETOK_CLEAN_SPACES) && tok->clean_spaces) {
        b.n = clean_spaces(b.p, b.n);
        b.p[b.n] = '\0';
    }
    *out = b.p;
    *len = b.n;
    return 0;
}

/* ---------------------------------------------------------------- stream */

void wisp_detok_stream_init(wisp_detok_stream *s, const wisp_tokenizer *tok, unsigned flags)
{
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->flags = flags;
    s->first = true;
}

void wisp_detok_stream_free(wisp_detok_stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static const char k_replacement[] = "\xEF\xBF\xBD";

/* Moves the valid UTF-8 of pend + in to the output, holding an unfinished
 * tail; ready bytes are written to out. */
static int drain(wisp_detok_stream *s, const char *in, size_t n, dbuf *out)
{
    dbuf w = {0};
    int rc = dbuf_put(&w, s->pend, s->npend) | dbuf_put(&w, in, n);
    s->npend = 0;
    const unsigned char *p = (const unsigned char *)w.p;
    size_t i = 0;
    while (rc == 0 && i < w.n) {
        size_t l = tok_utf8_check(p + i, w.n - i);
        if (l == SIZE_MAX) {
            memcpy(s->pend, p + i, w.n - i);
            s->npend = w.n - i;
            break;
        }
        if (l == 0) {
            rc = dbuf_put(out, k_replacement, 3);
            i++;
        } else {
            rc = dbuf_put(out, p + i, l);
            i += l;
        }
    }
    free(w.p);
    return rc;
}

static void hand_out(wisp_detok_stream *s, dbuf *out, const char **chunk, size_t *chunk_len)
{
    free(s->buf);
    s->buf = out->p;
    s->cap = out->cap;
    *chunk = s->buf ? s->buf : "";
    *chunk_len = out->n;
}

int wisp_detok_stream_feed(wisp_detok_stream *s, int32_t id, const char **chunk, size_t *chunk_len,
                           wisp_err *err)
{
    const wisp_tokenizer *tok = s->tok;
    *chunk = "";
    *chunk_len = 0;
    if (id < 0 || id >= tok->n_vocab)
        return wisp_err_set(err, WISP_E_INVALID, "detokenize: token id %d out of range [0, %d)",
                            id, tok->n_vocab);
    bool lstrip = s->first && (s->flags & WISP_DETOK_TEXT_START) && tok->strip_prefix_space;
    s->first = false;
    dbuf pc = {0}, out = {0};
    int rc = piece(tok, id, s->flags & WISP_DETOK_RENDER_SPECIAL, lstrip, &pc);
    if (rc == 0)
        rc = drain(s, pc.p, pc.n, &out);
    free(pc.p);
    if (rc == 0)
        rc = dbuf_put(&out, "", 0);
    if (rc) {
        free(out.p);
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    }
    hand_out(s, &out, chunk, chunk_len);
    return 0;
}

int wisp_detok_stream_flush(wisp_detok_stream *s, const char **chunk, size_t *chunk_len,
                            wisp_err *err)
{
    dbuf out = {0};
    int rc = dbuf_put(&out, "", 0);
    if (rc == 0 && s->npend)
        rc = dbuf_put(&out, k_replacement, 3);
    s->npend = 0;
    if (rc) {
        free(out.p);
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    }
    hand_out(s, &out, chunk, chunk_len);
    return 0;
}
