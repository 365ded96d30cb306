/*
 * pretok.c - the regex pre-tokenizer of byte-level BPE vocabularies.
 *
 * PCRE2 in UTF + UCP mode runs the families' original expressions
 * (pretok_regex.h), JIT-compiled once at load. Splitting follows llama.cpp:
 * each expression in a family's sequence is matched inside every fragment
 * left by the previous one (so look-aheads and '$' see the fragment's end),
 * and both the matches and the unmatched text between them become
 * fragments. Match data is allocated per call, so concurrent tokenize calls
 * share only the immutable compiled code.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok_regex.h"
#include "tokenizer/tok_int.h"

int tok_pretok_add_regex(wisp_tokenizer *tok, const char *pattern, wisp_err *err)
{
    if (tok->n_re >= TOK_MAX_REGEX)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "tokenizer: more than %d pre-tokenizer expressions", TOK_MAX_REGEX);
    int ec = 0;
    PCRE2_SIZE eoff = 0;
    /* DOLLAR_ENDONLY: '$' means the fragment's end, as in std::regex and
     * the Rust regex crate, not "before a final newline". */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tokenizer: pre-tokenizer regex '%s' at offset %zu: %s", pattern,
                            (size_t)eoff, (const char *)msg);
    }
    /* JIT is an optimisation: without it (e.g. no executable memory) the
     * interpreter gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    tok->re[tok->n_re++] = re;
    return 0;
}

int tok_pretok_by_name(wisp_tokenizer *tok, const char *name, size_t len, wisp_err *err)
{
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++) {
        const pre_def *d = &k_pre[i];
        for (size_t j = 0; d->names[j]; j++) {
            if (strlen(d->names[j]) != len || memcmp(d->names[j], name, len) != 0)
                continue;
            for (size_t r = 0; d->rx[r]; r++) {
                int rc = tok_pretok_add_regex(tok, d->rx[r], err);
                if (rc)
                    return rc;
            }
            tok->clean_spaces = (d->flags & PRE_CLEAN) != 0;
            tok->ignore_merges = (d->flags & PRE_IGNORE_MERGES) != 0;
            if (d->flags & PRE_ADD_BOS)
                tok->add_bos = true;
            if (d->flags & PRE_NO_BOS)
                tok->sp.bos = -1;
            snprintf(tok->pre_name, sizeof tok->pre_name, "%s", d->names[j]);
            return 0;
        }
    }
    return wisp_err_set(err, WISP_E_UNSUPPORTED,
                        "tokenizer: unsupported pre-tokenizer type '%.*s' (tokenizer.ggml.pre)",
                        (int)(len > 64 ? 64 : len), name);
}

typedef struct offs_vec {
    size_t *v;
    size_t n, cap;
} offs_vec;

static int offs_push(offs_vec *o, size_t x)
{
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 64;
        size_t *nv = realloc(o->v, nc * sizeof(size_t));
        if (!nv)
            return WISP_E_NOMEM;
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = x;
    return 0;
}

/* Matches re inside [a, b) of text, appending the boundaries after a. */
static int split_fragment(const pcre2_code *re, pcre2_match_data *md, pcre2_match_context **mctx,
                          pcre2_jit_stack **jstack, const char *text, size_t a, size_t b,
                          offs_vec *out, wisp_err *err)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + a);
    size_t flen = b - a, pos = 0, last = 0;
    while (pos < flen) {
        int rc = pcre2_match(re, subj, flen, pos, PCRE2_NO_UTF_CHECK, md, *mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !*jstack) {
            /* a long run of backtracking: retry with a bigger JIT stack */
            *jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
            *mctx = pcre2_match_context_create(NULL);
            if (!*jstack || !*mctx)
                return wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for a JIT stack");
            pcre2_jit_stack_assign(*mctx, NULL, *jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0 && rc != 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return wisp_err_set(err, WISP_E_INTERNAL, "tokenizer: regex match failed: %s",
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e <= s) {
            /* empty match: contributes nothing; step over one character */
            pos = s + tok_utf8_len((unsigned char)subj[s]);
            continue;
        }
        if (s > last && offs_push(out, a + s))
            return WISP_E_NOMEM;
        if (offs_push(out, a + e))
            return WISP_E_NOMEM;
        last = pos = e;
    }
    if (last < flen && offs_push(out, b))
        return WISP_E_NOMEM;
    return 0;
}

int tok_pretok_split(const wisp_tokenizer *tok, const char *text, size_t len, size_t **offs,
                     size_t *n, wisp_err *err)
{
    offs_vec cur = {0}, nxt = {0};
    int rc = 0;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mctx = NULL;
    pcre2_jit_stack *jstack = NULL;
    if (offs_push(&cur, 0) || offs_push(&cur, len)) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory");
        goto done;
    }
    md = pcre2_match_data_create(4, NULL);
    if (!md) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory for match data");
        goto done;
    }
    for (int r = 0; r < tok->n_re; r++) {
        nxt.n = 0;
        if (offs_push(&nxt, 0)) {
            rc = wisp_err_set(err, WISP_E_NOMEM, "tokenizer: no memory");
            goto done;
        }
        for (size_t i = 0; i + 1 < cur.n; i++) {
            rc = split_fragment(tok->re[r], md, &mctx, &jstack, text, cur.v[i], cur.v[i + 1], &nxt,
                                err);
            if (rc) {
                if (rc == WISP_E_NOMEM)
                    wisp_err_set(err, rc, "tokenizer: no memory");
                goto done;
            }
        }
        offs_vec t = cur;
        cur = nxt;
        nxt = t;
    }
    *offs = cur.v;
    *n = cur.n - 1;
    cur.v = NULL;
done:
    free(cur.v);
    free(nxt.v);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_jit_stack_free(jstack);
    return rc;
}
