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

#include "common/buf.h"
#include "tokenizer/tok_int.h"

static int put_unescaped(wisp_buf *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0, run = 0;
    while (i < n) {
        if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
            rc |= wisp_buf_append(b, s + run, i - run);
            rc |= wisp_buf_append(b, " ", 1);
            i += 3;
            run = i;
        } else {
            i++;
        }
    }
    rc |= wisp_buf_append(b, s + run, n - run);
    return rc;
}

/* llama.cpp's llama_decode_text: byte-level code points back to bytes. */
static int put_bytelevel(const wisp_tokenizer *tok, wisp_buf *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0;
    while (i < n && rc == 0) {
        size_t adv;
        uint32_t cp = tok_utf8_decode((const unsigned char *)s + i, n - i, &adv);
        int byte = cp < 324 ? tok->u2b[cp] : -1;
        if (byte >= 0) {
            char c = (char)byte;
            rc = wisp_buf_append(b, &c, 1);
        } else {
            char hex[16];
            rc = wisp_buf_append(b, "[UNK_BYTE_0x", 12);
            for (size_t j = 0; j < adv && rc == 0; j++) {
                snprintf(hex, sizeof hex, "%02x", (unsigned char)s[i + j]);
                rc = wisp_buf_append(b, hex, 2);
            }
            rc |= wisp_buf_append(b, s, n);
            rc |= wisp_buf_append(b, "]", 1);
        }
        i += adv;
    }
    return rc;
}

/* Appends the piece of id to b; lstrip drops one leading space. */
static int piece(const wisp_tokenizer *tok, int32_t id, bool render_special, bool lstrip,
                 wisp_buf *b)
{
    uint32_t attr = tok->attr[id];
    const uint32_t special = WISP_TOKATTR_UNKNOWN | WISP_TOKATTR_CONTROL;
    if (!render_special && (attr & special))
        return 0;
    size_t start = b->len, n;
    const char *t = tok_strtab_str(&tok->st, id, &n);
    int rc = 0;
    if (attr & (special | WISP_TOKATTR_USER_DEFINED)) {
        rc = wisp_buf_append(b, t, n);
    } else if (attr & WISP_TOKATTR_NORMAL) {
        rc = tok->byte_level ? put_bytelevel(tok, b, t, n) : put_unescaped(b, t, n);
    } else if ((attr & WISP_TOKATTR_BYTE) && !tok->byte_level) {
        /* "<0xXX>" */
        char hex[3] = {n == 6 ? t[3] : '0', n == 6 ? t[4] : '0', 0};
        char c = (char)strtol(hex, NULL, 16);
        rc = wisp_buf_append(b, &c, 1);
    }
    if (rc)
        return WISP_E_NOMEM;
    if (lstrip && b->len > start && b->data[start] == ' ') {
        memmove(b->data + start, b->data + start + 1, b->len - start - 1);
        b->len--;
        b->data[b->len] = '\0';
    }
    return 0;
}

int wisp_token_to_piece(const wisp_tokenizer *tok, int32_t id, bool render_special, char *buf,
                        size_t cap)
{
    if (id < 0 || id >= tok->n_vocab)
        return WISP_E_INVALID;
    wisp_buf b = WISP_BUF_INIT;
    int rc = piece(tok, id, render_special, false, &b);
    if (rc)
        return rc;
    if (b.len > INT32_MAX) {
        free(b.data);
        return WISP_E_TOO_LARGE;
    }
    if (b.len && cap)
        memcpy(buf, b.data, b.len < cap ? b.len : cap);
    int n = (int)b.len;
    free(b.data);
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
            else if (i + 2 < total &&
                     ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e')))
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
    wisp_buf b = WISP_BUF_INIT;
    if (wisp_buf_append(&b, "", 0))
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            free(b.data);
            return wisp_err_set(err, WISP_E_INVALID, "detokenize: token id %d out of range [0, %d)",
                                ids[i], tok->n_vocab);
        }
        if (piece(tok, ids[i], flags & WISP_DETOK_RENDER_SPECIAL, remove_space, &b)) {
            free(b.data);
            return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
        }
        remove_space = false;
    }
    if ((flags & WISP_DETOK_CLEAN_SPACES) && tok->clean_spaces) {
        b.len = clean_spaces(b.data, b.len);
        b.data[b.len] = '\0';
    }
    *out = b.data;
    *len = b.len;
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
static int drain(wisp_detok_stream *s, const char *in, size_t n, wisp_buf *out)
{
    wisp_buf w = WISP_BUF_INIT;
    int rc = wisp_buf_append(&w, s->pend, s->npend) | wisp_buf_append(&w, in, n);
    s->npend = 0;
    const unsigned char *p = (const unsigned char *)w.data;
    size_t i = 0;
    while (rc == 0 && i < w.len) {
        size_t l = tok_utf8_check(p + i, w.len - i);
        if (l == SIZE_MAX) {
            memcpy(s->pend, p + i, w.len - i);
            s->npend = w.len - i;
            break;
        }
        if (l == 0) {
            rc = wisp_buf_append(out, k_replacement, 3);
            i++;
        } else {
            rc = wisp_buf_append(out, p + i, l);
            i += l;
        }
    }
    free(w.data);
    return rc;
}

static void hand_out(wisp_detok_stream *s, wisp_buf *out, const char **chunk, size_t *chunk_len)
{
    free(s->buf);
    s->buf = out->data;
    s->cap = out->cap;
    *chunk = s->buf ? s->buf : "";
    *chunk_len = out->len;
}

int wisp_detok_stream_feed(wisp_detok_stream *s, int32_t id, const char **chunk, size_t *chunk_len,
                           wisp_err *err)
{
    const wisp_tokenizer *tok = s->tok;
    *chunk = "";
    *chunk_len = 0;
    if (id < 0 || id >= tok->n_vocab)
        return wisp_err_set(err, WISP_E_INVALID, "detokenize: token id %d out of range [0, %d)", id,
                            tok->n_vocab);
    bool lstrip = s->first && (s->flags & WISP_DETOK_TEXT_START) && tok->strip_prefix_space;
    s->first = false;
    wisp_buf pc = WISP_BUF_INIT, out = WISP_BUF_INIT;
    int rc = piece(tok, id, s->flags & WISP_DETOK_RENDER_SPECIAL, lstrip, &pc);
    if (rc == 0)
        rc = drain(s, pc.data, pc.len, &out);
    free(pc.data);
    if (rc == 0)
        rc = wisp_buf_append(&out, "", 0);
    if (rc) {
        free(out.data);
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    }
    hand_out(s, &out, chunk, chunk_len);
    return 0;
}

int wisp_detok_stream_flush(wisp_detok_stream *s, const char **chunk, size_t *chunk_len,
                            wisp_err *err)
{
    wisp_buf out = WISP_BUF_INIT;
    int rc = wisp_buf_append(&out, "", 0);
    if (rc == 0 && s->npend)
        rc = wisp_buf_append(&out, k_replacement, 3);
    s->npend = 0;
    if (rc) {
        free(out.data);
        return wisp_err_set(err, WISP_E_NOMEM, "detokenize: no memory");
    }
    hand_out(s, &out, chunk, chunk_len);
    return 0;
}
