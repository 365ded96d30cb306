/*
 * fim_prompt.c - builds the token sequence of an `infill` request and fits
 * it into the context (see fim_prompt.h for the layout and the budget).
 *
 * Every part (repo header, each extra chunk, current-file header, prefix,
 * suffix, typed prompt) is tokenized once on its own; the budget then works
 * on whole parts and, for the prefix and suffix, on whole lines. The number
 * of lines to cut is first estimated from where each token of the whole text
 * starts, then checked by re-tokenizing the kept text, stepping a line at a
 * time until it fits and one line fewer would not: tokens near a cut can
 * change (StarCoder's vocabulary has newline-plus-indentation tokens that
 * straddle line ends; SentencePiece adds a leading space), so the estimate
 * is usually exact and sometimes off by a line. A trim costs about three
 * tokenizations of the part instead of one; it only happens on overflow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "infill/fim_prompt.h"

/* ---------------------------------------------------------------- text */

/* Comment syntax for file headers of vocabularies without a file-separator
 * token, by extension (or whole base name); "//" for the rest. */
typedef struct comment_style {
    const char *open, *close;
} comment_style;

static const comment_style k_hash = {"#", ""}, k_dash = {"--", ""}, k_semi = {";", ""},
                           k_pct = {"%", ""}, k_xml = {"<!--", " -->"}, k_slash = {"//", ""};

static const struct {
    const char *ext;
    const comment_style *style;
} k_ext_styles[] = {
    {"py", &k_hash},   {"pyi", &k_hash},  {"sh", &k_hash},       {"bash", &k_hash},
    {"zsh", &k_hash},  {"fish", &k_hash}, {"rb", &k_hash},       {"pl", &k_hash},
    {"pm", &k_hash},   {"r", &k_hash},    {"jl", &k_hash},       {"ex", &k_hash},
    {"exs", &k_hash},  {"nim", &k_hash},  {"ps1", &k_hash},      {"tcl", &k_hash},
    {"yaml", &k_hash}, {"yml", &k_hash},  {"toml", &k_hash},     {"cmake", &k_hash},
    {"mk", &k_hash},   {"conf", &k_hash}, {"makefile", &k_hash}, {"dockerfile", &k_hash},
    {"lua", &k_dash},  {"sql", &k_dash},  {"hs", &k_dash},       {"elm", &k_dash},
    {"adb", &k_dash},  {"ads", &k_dash},  {"vhd", &k_dash},      {"lisp", &k_semi},
    {"el", &k_semi},   {"clj", &k_semi},  {"scm", &k_semi},      {"asm", &k_semi},
    {"ini", &k_semi},  {"tex", &k_pct},   {"erl", &k_pct},       {"html", &k_xml},
    {"htm", &k_xml},   {"xml", &k_xml},   {"svg", &k_xml},       {"vue", &k_xml},
    {"md", &k_xml},
};

static const comment_style *style_of(const char *filename)
{
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    const char *ext = dot ? dot + 1 : base;
    for (size_t i = 0; i < sizeof k_ext_styles / sizeof k_ext_styles[0]; i++)
        if (strcasecmp(ext, k_ext_styles[i].ext) == 0)
            return k_ext_styles[i].style;
    return &k_slash;
}

static int put_header(wisp_buf *b, const char *filename)
{
    const comment_style *cs = style_of(filename);
    int rc = wisp_buf_append_str(b, cs->open);
    rc = rc ? rc : wisp_buf_append_str(b, " ");
    rc = rc ? rc : wisp_buf_append_str(b, filename);
    rc = rc ? rc : wisp_buf_append_str(b, cs->close);
    return rc ? rc : wisp_buf_append_str(b, "\n");
}

/* ---------------------------------------------------------------- tokens */

static int tokenize_part(const wisp_tokenizer *tok, const char *s, size_t n, const char *what,
                         wisp_tokens *out, wisp_err *err)
{
    if (n == 0)
        return 0;
    int rc = wisp_tokenize(tok, s, n, false, false, out, err);
    if (rc)
        wisp_err_prefix(err, "infill: %s", what);
    return rc;
}

static int push(wisp_tokens *t, int32_t id, wisp_err *err)
{
    if (wisp_tokens_push(t, id))
        return wisp_err_set(err, WISP_E_NOMEM, "infill: no memory for the prompt");
    return 0;
}

static int append(wisp_tokens *t, const wisp_tokens *src, wisp_err *err)
{
    for (size_t i = 0; i < src->n; i++)
        if (push(t, src->ids[i], err))
            return WISP_E_NOMEM;
    return 0;
}

/* ---------------------------------------------------------------- trimming */

/* A part being trimmed: cut(x) is the text without x whole lines at the far
 * end (its first x lines for the prefix, its last x for the suffix). cut(0)
 * is the whole text, which does not fit; cut(n_lines) is empty, which does. */
typedef struct trim_ctx {
    const wisp_tokenizer *tok;
    const char *text, *what;
    size_t len, n_lines, budget;
    bool from_start;
    size_t *off;       /* off[i]: start of line i; off[n_lines] = len */
    size_t *tok_start; /* byte offset where each token of the whole text starts */
    size_t n_tok;
} trim_ctx;

static void cut_text(const trim_ctx *c, size_t x, const char **s, size_t *n)
{
    size_t at = c->off[c->from_start ? x : c->n_lines - x];
    *s = c->from_start ? c->text + at : c->text;
    *n = c->from_start ? c->len - at : at;
}

/* Tokens of the whole text that start before byte b. */
static size_t tokens_before(const trim_ctx *c, size_t b)
{
    size_t lo = 0, hi = c->n_tok;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->tok_start[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The token count of cut(x) estimated from the whole text's tokens (exact
 * but for the tokens that straddle or merge across the cut). */
static size_t estimate(const trim_ctx *c, size_t x)
{
    if (c->from_start)
        return c->n_tok - tokens_before(c, c->off[x]);
    return tokens_before(c, c->off[c->n_lines - x]);
}

/* Tokenizes cut(x) into probe; *fits says whether it is within budget. */
static int probe_cut(const trim_ctx *c, size_t x, wisp_tokens *probe, bool *fits, wisp_err *err)
{
    const char *s;
    size_t n;
    cut_text(c, x, &s, &n);
    probe->n = 0;
    int rc = tokenize_part(c->tok, s, n, c->what, probe, err);
    *fits = probe->n <= c->budget;
    return rc;
}

/* The fewest lines to cut: start where the estimate says, then probe the
 * neighbours until x fits and x - 1 does not (usually two tokenizations). */
static int find_cut(const trim_ctx *c, wisp_tokens *best, size_t *cut, wisp_err *err)
{
    size_t x = 1;
    while (x < c->n_lines && estimate(c, x) > c->budget)
        x++;
    wisp_tokens probe = {0};
    bool fits = true;
    int rc = x < c->n_lines ? probe_cut(c, x, &probe, &fits, err) : 0;
    if (!rc && fits) {
        wisp_tokens t = *best;
        *best = probe;
        probe = t;
        while (!rc && x > 1) { /* cut(0) is known not to fit */
            if ((rc = probe_cut(c, x - 1, &probe, &fits, err)) || !fits)
                break;
            x--;
            t = *best;
            *best = probe;
            probe = t;
        }
    } else {
        while (!rc && !fits && ++x < c->n_lines)
            rc = probe_cut(c, x, &probe, &fits, err);
        if (!rc && fits && x < c->n_lines) {
            wisp_tokens t = *best;
            *best = probe;
            probe = t;
        } else {
            best->n = 0; /* everything cut */
        }
    }
    wisp_tokens_free(&probe);
    *cut = x;
    return rc;
}

/* Cuts whole lines from one end of text[0..len) until its tokens fit in
 * budget: from the beginning when from_start (the prefix), else from the end
 * (the suffix). toks holds the tokens of the whole text on entry and those of
 * the kept text on return; *cut is the number of lines removed. A last line
 * without "\n" counts as a line. */
static int trim_lines(const wisp_tokenizer *tok, const char *text, size_t len, bool from_start,
                      size_t budget, const char *what, wisp_tokens *toks, int32_t *cut,
                      wisp_err *err)
{
    *cut = 0;
    if (toks->n <= budget)
        return 0;
    trim_ctx c = {.tok = tok,
                  .text = text,
                  .what = what,
                  .len = len,
                  .budget = budget,
                  .from_start = from_start,
                  .n_tok = toks->n};
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' || i + 1 == len)
            c.n_lines++;
    c.off = malloc((c.n_lines + 1) * sizeof *c.off);
    c.tok_start = malloc(toks->n * sizeof *c.tok_start);
    if (!c.off || !c.tok_start) {
        free(c.off);
        free(c.tok_start);
        return wisp_err_set(err, WISP_E_NOMEM, "infill: no memory to trim the %s", what);
    }
    size_t k = 0;
    c.off[k++] = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' && i + 1 < len)
            c.off[k++] = i + 1;
    c.off[c.n_lines] = len;
    size_t at = 0;
    for (size_t i = 0; i < toks->n; i++) {
        char piece[64];
        int n = wisp_token_to_piece(tok, toks->ids[i], false, piece, sizeof piece);
        c.tok_start[i] = at;
        at += n > 0 ? (size_t)n : 0;
    }

    wisp_tokens best = {0};
    size_t x = 0;
    int rc = find_cut(&c, &best, &x, err);
    free(c.off);
    free(c.tok_start);
    if (rc) {
        wisp_tokens_free(&best);
        return rc;
    }
    wisp_tokens_free(toks);
    *toks = best;
    *cut = (int32_t)x;
    return 0;
}

/* ---------------------------------------------------------------- build */

typedef struct parts {
    wisp_tokens rep_hdr; /* [REP] repo_name "\n" */
    wisp_tokens *chunks; /* each input_extra chunk with its header */
    wisp_tokens cur_hdr; /* the current file's header */
    wisp_tokens prefix, suffix, prompt;
} parts;

static void parts_free(parts *p, size_t n_extra)
{
    wisp_tokens_free(&p->rep_hdr);
    wisp_tokens_free(&p->cur_hdr);
    for (size_t i = 0; p->chunks && i < n_extra; i++)
        wisp_tokens_free(&p->chunks[i]);
    free(p->chunks);
    wisp_tokens_free(&p->prefix);
    wisp_tokens_free(&p->suffix);
    wisp_tokens_free(&p->prompt);
}

static int tokenize_extra(const wisp_tokenizer *tok, const wisp_infill_req *req,
                          const wisp_fim_tokens *fim, parts *p, wisp_err *err)
{
    bool repo_ctx = req->n_extra > 0 || req->filename;
    if (!repo_ctx)
        return 0;
    bool sep_mode = fim->sep >= 0;
    wisp_buf b = WISP_BUF_INIT;
    int rc = 0;
    if (sep_mode && fim->rep >= 0) {
        rc = push(&p->rep_hdr, fim->rep, err);
        wisp_buf_clear(&b);
        if (!rc &&
            (rc = wisp_buf_append_str(&b, req->repo_name ? req->repo_name : "myproject")) == 0 &&
            (rc = wisp_buf_append_str(&b, "\n")) == 0)
            rc = tokenize_part(tok, b.data, b.len, "repo_name", &p->rep_hdr, err);
    }
    for (size_t i = 0; !rc && i < req->n_extra; i++) {
        const wisp_infill_chunk *c = &req->extra[i];
        const char *name = c->filename ? c->filename : "tmp";
        wisp_buf_clear(&b);
        if (sep_mode) {
            rc = push(&p->chunks[i], fim->sep, err);
            rc = rc ? rc : wisp_buf_append_str(&b, name);
            rc = rc ? rc : wisp_buf_append_str(&b, "\n");
        } else {
            rc = put_header(&b, name);
        }
        rc = rc ? rc : wisp_buf_append(&b, c->text, c->text_len);
        if (!rc && c->text_len && c->text[c->text_len - 1] != '\n')
            rc = wisp_buf_append_str(&b, "\n");
        if (!rc) {
            char what[64];
            snprintf(what, sizeof what, "input_extra[%zu]", i);
            rc = tokenize_part(tok, b.data, b.len, what, &p->chunks[i], err);
        }
    }
    if (!rc && (sep_mode || (req->n_extra > 0 && req->filename))) {
        wisp_buf_clear(&b);
        const char *name = req->filename ? req->filename : "untitled";
        if (sep_mode) {
            rc = push(&p->cur_hdr, fim->sep, err);
            rc = rc ? rc : wisp_buf_append_str(&b, name);
            rc = rc ? rc : wisp_buf_append_str(&b, "\n");
        } else {
            rc = put_header(&b, name);
        }
        if (!rc)
            rc = tokenize_part(tok, b.data, b.len, "filename", &p->cur_hdr, err);
    }
    wisp_buf_free(&b);
    if (rc == WISP_E_NOMEM && (!err || err->code != WISP_E_NOMEM))
        wisp_err_set(err, WISP_E_NOMEM, "infill: no memory for input_extra");
    return rc;
}

/* Drops chunks, then trims the suffix and the prefix (see the header). */
static int fit_budget(const wisp_tokenizer *tok, const wisp_infill_req *req, parts *p, size_t fixed,
                      wisp_infill_trim *trim, size_t *first_chunk, wisp_err *err)
{
    size_t avail = (size_t)(req->n_ctx - req->max_tokens);
    size_t total = fixed + p->prefix.n + p->suffix.n, drop = 0;
    for (size_t i = 0; i < req->n_extra; i++)
        total += p->chunks[i].n;
    while (total > avail && drop < req->n_extra) {
        total -= p->chunks[drop].n;
        trim->extra_tokens_dropped += (int32_t)p->chunks[drop].n;
        drop++;
    }
    trim->extra_dropped = (int32_t)drop;
    *first_chunk = drop;
    if (total <= avail)
        return 0;
    if (fixed > avail)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "infill: the FIM markers, file headers and typed prompt need %zu "
                            "tokens, but n_ctx %d leaves %zu after reserving max_tokens %d",
                            fixed, req->n_ctx, avail, req->max_tokens);
    size_t room = avail - fixed, n_pre = p->prefix.n, n_suf = p->suffix.n;
    /* the suffix may use what the prefix leaves, and at least a quarter */
    size_t suf_cap = room - (n_pre < room ? n_pre : room);
    if (suf_cap < room / 4)
        suf_cap = room / 4;
    size_t before = n_suf;
    int rc = trim_lines(tok, req->suffix, req->suffix_len, false, suf_cap, "input_suffix",
                        &p->suffix, &trim->suffix_lines_trimmed, err);
    if (rc)
        return rc;
    trim->suffix_tokens_trimmed = (int32_t)(before - p->suffix.n);
    before = n_pre;
    rc = trim_lines(tok, req->prefix, req->prefix_len, true, room - p->suffix.n, "input_prefix",
                    &p->prefix, &trim->prefix_lines_trimmed, err);
    if (rc)
        return rc;
    trim->prefix_tokens_trimmed = (int32_t)(before - p->prefix.n);
    return 0;
}

static int check_req(const wisp_infill_req *req, wisp_err *err)
{
    if (req->n_ctx <= 0 || req->max_tokens < 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "infill: n_ctx %d and max_tokens %d must be "
                            "positive",
                            req->n_ctx, req->max_tokens);
    if (req->max_tokens >= req->n_ctx)
        return wisp_err_set(err, WISP_E_TOO_LARGE,
                            "infill: max_tokens %d leaves no room for "
                            "the prompt in a context of %d tokens",
                            req->max_tokens, req->n_ctx);
    if ((req->prefix_len && !req->prefix) || (req->suffix_len && !req->suffix) ||
        (req->prompt_len && !req->prompt) || (req->n_extra && !req->extra))
        return wisp_err_set(err, WISP_E_INTERNAL, "infill: a text part has a length but no data");
    for (size_t i = 0; i < req->n_extra; i++)
        if (req->extra[i].text_len && !req->extra[i].text)
            return wisp_err_set(err, WISP_E_INVALID, "infill: input_extra[%zu] has no text", i);
    if (req->order != WISP_FIM_PSM && req->order != WISP_FIM_SPM)
        return wisp_err_set(err, WISP_E_INTERNAL, "infill: unknown FIM order %d", (int)req->order);
    return 0;
}

static int assemble(const wisp_tokenizer *tok, const wisp_infill_req *req, const parts *p,
                    size_t first_chunk, wisp_infill_prompt *out, wisp_err *err)
{
    const wisp_fim_tokens *fim = &out->fim;
    wisp_tokens *t = &out->tokens;
    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    int rc = 0;
    if (wisp_tokenizer_add_bos(tok) && sp->bos >= 0)
        rc = push(t, sp->bos, err);
    rc = rc ? rc : append(t, &p->rep_hdr, err);
    size_t n_extra = p->rep_hdr.n + p->cur_hdr.n;
    for (size_t i = first_chunk; !rc && i < req->n_extra; i++) {
        rc = append(t, &p->chunks[i], err);
        n_extra += p->chunks[i].n;
    }
    rc = rc ? rc : append(t, &p->cur_hdr, err);
    int32_t first_id = req->order == WISP_FIM_SPM ? fim->suf : fim->pre;
    int32_t second_id = req->order == WISP_FIM_SPM ? fim->pre : fim->suf;
    const wisp_tokens *first = req->order == WISP_FIM_SPM ? &p->suffix : &p->prefix;
    const wisp_tokens *second = req->order == WISP_FIM_SPM ? &p->prefix : &p->suffix;
    rc = rc ? rc : push(t, first_id, err);
    rc = rc ? rc : append(t, first, err);
    rc = rc ? rc : push(t, second_id, err);
    rc = rc ? rc : append(t, second, err);
    rc = rc ? rc : push(t, fim->mid, err);
    rc = rc ? rc : append(t, &p->prompt, err);
    out->n_extra_tokens = (int32_t)n_extra;
    out->n_prefix_tokens = (int32_t)p->prefix.n;
    out->n_suffix_tokens = (int32_t)p->suffix.n;
    out->n_prompt_tokens = (int32_t)p->prompt.n;
    return rc;
}

int wisp_infill_build(const wisp_tokenizer *tok, const wisp_infill_req *req,
                      wisp_infill_prompt *out, wisp_err *err)
{
    int rc = check_req(req, err);
    if (rc)
        return rc;
    if ((rc = wisp_fim_resolve(tok, &out->fim, err)))
        return rc;
    out->tokens.n = 0;
    out->trim = (wisp_infill_trim){0};

    parts p = {0};
    if (req->n_extra && !(p.chunks = calloc(req->n_extra, sizeof *p.chunks)))
        return wisp_err_set(err, WISP_E_NOMEM, "infill: no memory for %zu input_extra chunks",
                            req->n_extra);
    rc = tokenize_extra(tok, req, &out->fim, &p, err);
    rc = rc ? rc : tokenize_part(tok, req->prefix, req->prefix_len, "input_prefix", &p.prefix, err);
    rc = rc ? rc : tokenize_part(tok, req->suffix, req->suffix_len, "input_suffix", &p.suffix, err);
    rc = rc ? rc : tokenize_part(tok, req->prompt, req->prompt_len, "prompt", &p.prompt, err);

    const wisp_tok_special *sp = wisp_tokenizer_special(tok);
    size_t fixed =
        (wisp_tokenizer_add_bos(tok) && sp->bos >= 0) + 3 + p.rep_hdr.n + p.cur_hdr.n + p.prompt.n;
    size_t first_chunk = 0;
    rc = rc ? rc : fit_budget(tok, req, &p, fixed, &out->trim, &first_chunk, err);
    rc = rc ? rc : assemble(tok, req, &p, first_chunk, out, err);
    parts_free(&p, req->n_extra);
    return rc;
}

void wisp_infill_prompt_free(wisp_infill_prompt *p)
{
    if (p)
        wisp_tokens_free(&p->tokens);
}

bool wisp_infill_trimmed(const wisp_infill_trim *t)
{
    return t->extra_dropped || t->prefix_lines_trimmed || t->suffix_lines_trimmed;
}
