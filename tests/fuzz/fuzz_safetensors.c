/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors loader.
 *
 * Each input is a model.safetensors beside a fixed, valid config.json (a
 * one-layer llama): the header length, the header's JSON, its dtypes,
 * shapes and offsets against the file, and the tensors against the
 * architecture's roles. The loader reads files, so each input is written
 * into a private directory first. Errors are expected; crashes, leaks and
 * sanitizer reports are bugs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "model/model.h"

static char dir[256];
static char st_dir[300], st_path[320], st_cfg[320];

static const char config[] =
    "{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":64,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":2,"
    "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-5,\"vocab_size\":16}";

static void put(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "fuzz_safetensors: cannot write %s\n", path);
        abort();
    }
    fclose(f);
}

static void cleanup(void)
{
    unlink(st_path);
    unlink(st_cfg);
    rmdir(st_dir);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wisp_log_set_level(WISP_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/wisp-fuzz-st-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(st_dir, sizeof st_dir, "%s/st", dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", st_dir);
    snprintf(st_cfg, sizeof st_cfg, "%s/config.json", st_dir);
    if (mkdir(st_dir, 0700) != 0)
        abort();
    put(st_cfg, config, sizeof config - 1);
    atexit(cleanup);
    return 0;
}

static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    put(st_path, data, size);
    wisp_model *m = NULL;
    wisp_err err = {0};
    if (wisp_model_open(st_dir, NULL, &m, &err) == 0) {
        wisp_model_n_params(m);
        wisp_model_close(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_safetensors(data, size);
    return 0;
}
