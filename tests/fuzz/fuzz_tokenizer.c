/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizers.
 *
 * Every vocabulary type wisp reads: the shared llama.cpp vocabularies
 * (../shared/vocab, or $WISP_SHARED/vocab: SentencePiece, byte-level BPE
 * with each pre-tokenizer) when that folder is there, and always the
 * in-tree stories260K vocabulary (models/), so the target runs without the
 * fixtures too. Byte 0 of an input picks the vocabulary and the flags
 * (parse_special, add_special, render_special); the rest is the text.
 * The text is tokenized, every id must be in the vocabulary, and the ids
 * are detokenized both at once and streaming; the stream's chunks must be
 * valid UTF-8. Errors (text that is not UTF-8 on a byte-level vocabulary)
 * are expected; crashes, leaks and sanitizer reports are bugs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_VOCABS 32

static wisp_tokenizer *vocabs[MAX_VOCABS];
static int n_vocabs;

static void load(const char *path)
{
    if (n_vocabs == MAX_VOCABS)
        return;
    wisp_err err = {0};
    wisp_gguf *g = NULL;
    if (wisp_gguf_open(path, &g, &err) != 0)
        return;
    if (wisp_tokenizer_from_gguf(g, &vocabs[n_vocabs], &err) == 0)
        n_vocabs++;
    else
        fprintf(stderr, "fuzz_tokenizer: %s: %s (skipped)\n", path, err.msg);
    wisp_gguf_close(g);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void free_all(void)
{
    for (int i = 0; i < n_vocabs; i++)
        wisp_tokenizer_free(vocabs[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wisp_log_set_level(WISP_LOG_ERROR);
    load("models/stories260K.gguf");
    const char *shared = getenv("WISP_SHARED");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/vocab", shared ? shared : "../shared");
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, by_name);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(ents[i]->d_name);
        if (len > 5 && strcmp(ents[i]->d_name + len - 5, ".gguf") == 0) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
            load(path);
        }
        free(ents[i]);
    }
    if (n >= 0)
        free(ents);
    if (n_vocabs == 0) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary (run from the repository root)\n");
        exit(1);
    }
    fprintf(stderr, "fuzz_tokenizer: %d vocabularies\n", n_vocabs);
    atexit(free_all);
    return 0;
}

static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const wisp_tokenizer *tok = vocabs[(sel >> 3) % (unsigned)n_vocabs];
    bool parse_special = sel & 1, add_special = sel & 2, render_special = sel & 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    wisp_tokens t = {0};
    wisp_err err = {0};
    int rc = wisp_tokenize(tok, text, len, add_special, parse_special, &t, &err);
    int32_t nv = wisp_tokenizer_n_vocab(tok);
    if (rc == 0) {
        for (size_t i = 0; i < t.n; i++)
            if (t.ids[i] < 0 || t.ids[i] >= nv)
                abort();
        char *back = NULL;
        size_t blen = 0;
        unsigned flags = render_special ? WISP_DETOK_RENDER_SPECIAL : 0;
        if (wisp_detokenize(tok, t.ids, t.n, flags, &back, &blen, &err) == 0)
            free(back);
        wisp_detok_stream s;
        wisp_detok_stream_init(&s, tok, flags);
        for (size_t i = 0; i < t.n; i++) {
            const char *chunk;
            size_t clen;
            if (wisp_detok_stream_feed(&s, t.ids[i], &chunk, &clen, &err) == 0 &&
                !valid_utf8(chunk, clen))
                abort();
        }
        const char *chunk;
        size_t clen;
        if (wisp_detok_stream_flush(&s, &chunk, &clen, &err) == 0 && !valid_utf8(chunk, clen))
            abort();
        wisp_detok_stream_free(&s);
    }
    wisp_tokens_free(&t);

    /* The same bytes as raw ids (two bytes each, some out of range) through
     * the streaming detokenizer: errors for bad ids, valid UTF-8 always. */
    wisp_detok_stream s;
    wisp_detok_stream_init(&s, tok, render_special ? WISP_DETOK_RENDER_SPECIAL : 0);
    for (size_t i = 0; i + 1 < len; i += 2) {
        int32_t id = (int32_t)(((unsigned)(uint8_t)text[i] << 8 | (uint8_t)text[i + 1]) %
                               (unsigned)(nv + 2)) -
                     1;
        const char *chunk;
        size_t clen;
        if (wisp_detok_stream_feed(&s, id, &chunk, &clen, &err) == 0 && !valid_utf8(chunk, clen))
            abort();
    }
    wisp_detok_stream_free(&s);
    return 0;
}
