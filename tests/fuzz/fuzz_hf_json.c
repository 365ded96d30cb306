/*
 * fuzz_hf_json.c - libFuzzer target for the Hugging Face JSON loaders.
 *
 * Byte 0 of an input picks what the rest is: a config.json (fields, types,
 * ranges, rope_scaling, the architecture) or a tokenizer.json (model,
 * vocabulary, merges, added tokens, normalizer, pre-tokenizer, decoder);
 * a tokenizer that loads then tokenizes and detokenizes a fixed text with
 * parse_special off and on. The loaders read files, so each input is
 * written into a private directory first. Errors are expected; crashes,
 * leaks and sanitizer reports are bugs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "model/model_int.h"
#include "tokenizer/tokenizer.h"

static char dir[256];
static char cfg_path[320], tok_path[320];

static void put(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "fuzz_hf_json: cannot write %s\n", path);
        abort();
    }
    fclose(f);
}

static void cleanup(void)
{
    unlink(cfg_path);
    unlink(tok_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wisp_log_set_level(WISP_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/wisp-fuzz-json-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", dir);
    atexit(cleanup);
    return 0;
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    put(cfg_path, data, size);
    wisp_model_config c;
    memset(&c, 0, sizeof c);
    const wisp_arch_desc *arch = NULL;
    wisp_err err = {0};
    wisp_hf_config_read(dir, &c, &arch, &err);
    unlink(cfg_path);
}

static void fuzz_tokenizer_json(const uint8_t *data, size_t size)
{
    put(tok_path, data, size);
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    if (wisp_tokenizer_from_hf(tok_path, &tok, &err) == 0) {
        static const char text[] = "Hello world! <s> 123 \xc3\xa9t\xc3\xa9\n\tdef f(x): return x";
        for (int ps = 0; ps < 2; ps++) {
            wisp_tokens t = {0};
            if (wisp_tokenize(tok, text, sizeof text - 1, ps, ps, &t, &err) == 0) {
                char *back = NULL;
                size_t n = 0;
                if (wisp_detokenize(tok, t.ids, t.n, 0, &back, &n, &err) == 0)
                    free(back);
            }
            wisp_tokens_free(&t);
        }
        wisp_tokenizer_free(tok);
    }
    unlink(tok_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_tokenizer_json(data + 1, size - 1);
    else
        fuzz_config(data + 1, size - 1);
    return 0;
}
