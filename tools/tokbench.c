/*
 * tokbench.c - tokenizer throughput: MB/s tokenizing source text with each
 * vocabulary, and the time for one 100 KB request.
 *
 *   build/tools/tokbench [--mb N] [--file F] VOCAB.gguf...
 *
 * The text is the C sources under src/ (or --file), repeated to N MB
 * (default 2). Each vocabulary tokenizes it once to warm up, then enough
 * times to run for about a second; the best run counts.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int append_file(const char *path, char **buf, size_t *len, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (*len + n > *cap) {
            size_t nc = *cap ? *cap * 2 : 1 << 20;
            while (nc < *len + n)
                nc *= 2;
            char *nb = realloc(*buf, nc);
            if (!nb) {
                fclose(f);
                return -1;
            }
            *buf = nb;
            *cap = nc;
        }
        memcpy(*buf + *len, tmp, n);
        *len += n;
    }
    fclose(f);
    return 0;
}

static void append_tree(const char *dir, char **buf, size_t *len, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t nl = strlen(e->d_name);
        if (nl > 2 && (!strcmp(e->d_name + nl - 2, ".c") || !strcmp(e->d_name + nl - 2, ".h")))
            append_file(path, buf, len, cap);
        else if (e->d_type == DT_DIR)
            append_tree(path, buf, len, cap);
    }
    closedir(d);
}

static double bench(const wisp_tokenizer *tok, const char *text, size_t len, size_t *n_tokens)
{
    wisp_tokens t = {0};
    wisp_err err = {0};
    double best = 1e30, start = now();
    int runs = 0;
    while (runs < 2 || (now() - start < 1.0 && runs < 50)) {
        t.n = 0;
        double t0 = now();
        if (wisp_tokenize(tok, text, len, false, false, &t, &err)) {
            fprintf(stderr, "tokenize: %s\n", err.msg);
            exit(1);
        }
        double dt = now() - t0;
        if (runs > 0 && dt < best)
            best = dt;
        runs++;
    }
    *n_tokens = t.n;
    wisp_tokens_free(&t);
    return best;
}

int main(int argc, char **argv)
{
    double mb = 2.0;
    const char *file = NULL;
    int first = 1;
    while (first < argc && argv[first][0] == '-') {
        if (!strcmp(argv[first], "--mb") && first + 1 < argc)
            mb = atof(argv[++first]);
        else if (!strcmp(argv[first], "--file") && first + 1 < argc)
            file = argv[++first];
        else {
            fprintf(stderr, "usage: %s [--mb N] [--file F] VOCAB.gguf...\n", argv[0]);
            return 2;
        }
        first++;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [--mb N] [--file F] VOCAB.gguf...\n", argv[0]);
        return 2;
    }
    char *src = NULL;
    size_t slen = 0, scap = 0;
    if (file)
        append_file(file, &src, &slen, &scap);
    else
        append_tree("src", &src, &slen, &scap);
    if (!slen) {
        fprintf(stderr, "no input text (run from the repository root or pass --file)\n");
        return 1;
    }
    size_t want = (size_t)(mb * 1024 * 1024);
    char *text = malloc(want);
    for (size_t i = 0; i < want; i += slen)
        memcpy(text + i, src, want - i < slen ? want - i : slen);
    /* a 100 KB request: cut at a character boundary */
    size_t small = 100 * 1024;
    while (small < want && ((unsigned char)text[small] & 0xC0) == 0x80)
        small++;
    printf("%-40s %10s %12s %12s %14s\n", "vocabulary", "MB/s", "tokens", "bytes/token",
           "100KB (ms)");
    for (int i = first; i < argc; i++) {
        wisp_gguf *g;
        wisp_tokenizer *tok;
        wisp_err err = {0};
        if (wisp_gguf_open(argv[i], &g, &err) || wisp_tokenizer_from_gguf(g, &tok, &err)) {
            fprintf(stderr, "%s: %s\n", argv[i], err.msg);
            continue;
        }
        wisp_gguf_close(g);
        size_t nt, ns;
        double dt = bench(tok, text, want, &nt);
        double ds = bench(tok, text, small, &ns);
        const char *name = strrchr(argv[i], '/');
        printf("%-40s %10.1f %12zu %12.2f %14.2f\n", name ? name + 1 : argv[i],
               (double)want / dt / 1e6, nt, (double)want / (double)nt, ds * 1e3);
        wisp_tokenizer_free(tok);
    }
    free(text);
    free(src);
    return 0;
}
