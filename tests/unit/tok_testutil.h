/*
 * tok_testutil.h - helpers shared by the tokenizer tests: loading a shared
 * vocabulary, reading llama.cpp's .inp/.out case files, and checking UTF-8.
 */
#ifndef WISP_TOK_TESTUTIL_H
#define WISP_TOK_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tokenizer/tokenizer.h"

static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

/* A vocab-only GGUF from the shared folder as a tokenizer (SKIP if absent). */
static inline wisp_tokenizer *tu_load_vocab(const char *name)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    wisp_test_shared_path(path, sizeof path, rel);
    wisp_err err = {0};
    wisp_gguf *g = NULL;
    int rc = wisp_gguf_open(path, &g, &err);
    if (rc) {
        fprintf(stderr, "  open %s: %s\n", path, err.msg);
        return NULL;
    }
    wisp_tokenizer *tok = NULL;
    rc = wisp_tokenizer_from_gguf(g, &tok, &err);
    wisp_gguf_close(g);
    if (rc)
        fprintf(stderr, "  tokenizer %s: %s\n", name, err.msg);
    return tok;
}

/* The cases of llama.cpp's test-tokenizer-0: texts separated by
 * "\n__ggml_vocab_test__\n", one line of ids per case in the .out. */
typedef struct tu_case {
    const char *text;
    size_t len;
    int32_t ids[512];
    size_t n_ids;
} tu_case;

static inline tu_case *tu_load_cases(const char *name, size_t *n_cases)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    wisp_test_shared_path(path, sizeof path, rel);
    size_t inl, outl;
    char *inp = tu_read_file(path, &inl);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    wisp_test_shared_path(path, sizeof path, rel);
    char *outp = tu_read_file(path, &outl);
    REQUIRE(inp && outp);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t cap = 256, n = 0;
    tu_case *c = calloc(cap, sizeof *c);
    REQUIRE(c);
    char *p = inp, *op = outp;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e)
            break;
        REQUIRE(n < cap);
        c[n].text = p;
        c[n].len = (size_t)(e - p);
        *e = 0;
        p = e + strlen(sep);
        char *eol = strchr(op, '\n');
        REQUIRE(eol);
        *eol = 0;
        char *q = op;
        for (;;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q)
                break;
            REQUIRE(c[n].n_ids < 512);
            c[n].ids[c[n].n_ids++] = (int32_t)v;
            q = end;
        }
        op = eol + 1;
        n++;
    }
    *n_cases = n;
    return c; /* texts point into inp, kept for the process lifetime */
}

static inline bool tu_valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3;
        else
            return false;
        if (i + need >= n)
            return false;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
        for (size_t k = 1; k <= need; k++) {
            unsigned b = p[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
                return false;
        }
        i += need + 1;
    }
    return true;
}

static inline void tu_print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

#endif
