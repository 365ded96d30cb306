/*
 * bench.c - `wisp bench` (see bench.h).
 *
 * The engine is built once per run by the engine factory, exactly as the
 * server builds it (device choice, KV pool, batch limits) for a context as
 * long as the longest test; a prompt longer than one step's batch limit is
 * processed in steps of that limit, as llama-bench's ubatches are. Tokens
 * are a fixed pseudo-random sequence over the
 * vocabulary (throughput does not depend on which tokens, only on how
 * many). Each timed repetition of tg restarts at position 0, so every rep
 * decodes over the same context lengths, as llama-bench's tg does.
 */
#include "bench/bench.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/cpu/matmul.h"
#include "engine/engine.h"
#include "engine/factory.h"
#include "model/model.h"

typedef struct bench_args {
    const char *model;
    const char *device; /* "auto", "cpu" or "cuda"; then the one built */
    int n_prompt, n_gen, threads, reps;
    int json;
    wisp_kv_type kv_type;
} bench_args;

typedef struct bench_result {
    double mean, sd; /* tokens/s */
} bench_result;

static void usage(FILE *f)
{
    fputs("usage: wisp bench -m MODEL [-p N_PROMPT] [-n N_GEN] [-t THREADS] [-r REPS]\n"
          "                  [--device auto|cpu|cuda] [--kv-type f16|q8_0|f32] [--json]\n"
          "  -p  prompt tokens processed in one step (pp), default 512; 0 skips pp\n"
          "  -n  tokens generated one step at a time (tg), default 128; 0 skips tg\n"
          "  -t  threads, default the physical cores\n"
          "  -r  repetitions, default 5\n"
          "  --device and --kv-type as for the server (default auto and f16)\n",
          f);
}

static int parse_int(const char *flag, const char *s, int min, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v < min || v > 1000000) {
        fprintf(stderr, "wisp bench: %s needs an integer >= %d, got '%s'\n", flag, min, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* argv[0] is the subcommand name. Returns 0, 1 (help shown) or -1. */
static int parse_args(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.device = "auto", .n_prompt = 512, .n_gen = 128, .threads = 0, .reps = 5};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(f, "-m") || !strcmp(f, "--model")) {
            if (!v) {
                fprintf(stderr, "wisp bench: %s needs a path\n", f);
                return -1;
            }
            a->model = v;
        } else if (!strcmp(f, "-p") || !strcmp(f, "--n-prompt")) {
            rc = parse_int(f, v, 0, &a->n_prompt);
        } else if (!strcmp(f, "-n") || !strcmp(f, "--n-gen")) {
            rc = parse_int(f, v, 0, &a->n_gen);
        } else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) {
            rc = parse_int(f, v, 1, &a->threads);
        } else if (!strcmp(f, "-r") || !strcmp(f, "--repetitions")) {
            rc = parse_int(f, v, 1, &a->reps);
        } else if (!strcmp(f, "--device")) {
            if (!v || (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda"))) {
                fprintf(stderr, "wisp bench: --device needs auto, cpu or cuda\n");
                return -1;
            }
            a->device = v;
        } else if (!strcmp(f, "--kv-type")) {
            if (!v || wisp_kv_type_from_name(v, &a->kv_type)) {
                char names[64];
                wisp_kv_type_list(names, sizeof names);
                fprintf(stderr, "wisp bench: --kv-type needs one of %s\n", names);
                return -1;
            }
        } else if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        } else if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "wisp bench: unknown option '%s'\n", f);
            usage(stderr);
            return -1;
        }
        if (rc)
            return -1;
        i++;
    }
    if (!a->model) {
        fputs("wisp bench: -m MODEL is required\n", stderr);
        usage(stderr);
        return -1;
    }
    return 0;
}

static bench_result summarize(const double *tps, int n)
{
    bench_result r = {0, 0};
    for (int i = 0; i < n; i++)
        r.mean += tps[i];
    r.mean /= n;
    for (int i = 0; i < n; i++)
        r.sd += (tps[i] - r.mean) * (tps[i] - r.mean);
    r.sd = n > 1 ? sqrt(r.sd / (n - 1)) : 0;
    return r;
}

typedef struct bench_ctx {
    wisp_engine *eng;
    int32_t *tokens;
    int32_t *table;
    int n_blocks;
    float *logits;
} bench_ctx;

static int step(bench_ctx *b, const int32_t *toks, int n, int pos0, wisp_err *err)
{
    wisp_batch_seq s = {.tokens = toks,
                        .n_tokens = n,
                        .pos0 = pos0,
                        .block_table = b->table,
                        .n_blocks = b->n_blocks,
                        .logits = b->logits};
    wisp_batch batch = {.seqs = &s, .n_seqs = 1};
    return b->eng->ops->forward(b->eng->ctx, &batch, err);
}

/* One pp run (is_pp) or one tg run; fills *tps with tokens/s. */
static int run_once(bench_ctx *b, int is_pp, int n, double *tps, wisp_err *err)
{
    double t0 = wisp_now_ms();
    int rc = 0;
    if (is_pp) {
        const int chunk = b->eng->opts.max_batch_tokens;
        for (int i = 0; i < n && !rc; i += chunk)
            rc = step(b, b->tokens + i, n - i < chunk ? n - i : chunk, i, err);
    } else {
        for (int i = 0; i < n && !rc; i++)
            rc = step(b, b->tokens + i, 1, i, err);
    }
    *tps = n / ((wisp_now_ms() - t0) / 1e3);
    return rc;
}

static int run_test(bench_ctx *b, int is_pp, int n, int reps, bench_result *out, wisp_err *err)
{
    double warm, *tps = calloc((size_t)reps, sizeof(double));
    if (!tps)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    /* Warm-up: fault the weights in and settle the threads (tg: a few steps). */
    int rc = run_once(b, is_pp, is_pp ? n : (n < 4 ? n : 4), &warm, err);
    for (int r = 0; r < reps && !rc; r++)
        rc = run_once(b, is_pp, n, &tps[r], err);
    if (!rc)
        *out = summarize(tps, reps);
    free(tps);
    return rc;
}

static const char *main_type(const wisp_model *m)
{
    /* The type holding the most tensors among the quantized/half ones, as a
     * label like llama-bench's "Q4_K - Medium" column (F32 norms ignored). */
    int64_t counts[WISP_TYPE_COUNT];
    wisp_model_type_counts(m, counts);
    int best = WISP_TYPE_F32;
    for (int t = 0; t < WISP_TYPE_COUNT; t++)
        if (t != WISP_TYPE_F32 && counts[t] > 0 &&
            (best == WISP_TYPE_F32 || counts[t] > counts[best]))
            best = t;
    return wisp_type_name(best);
}

static void print_table(const bench_args *a, const wisp_model *m, int threads, int have_pp,
                        bench_result pp, int have_tg, bench_result tg)
{
    const wisp_model_config *c = wisp_model_get_config(m);
    printf("| model | type | size | params | backend | threads | test | t/s |\n");
    printf("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    char row[512];
    char backend[32];
    if (!strcmp(a->device, "cuda"))
        snprintf(backend, sizeof backend, "CUDA");
    else
        snprintf(backend, sizeof backend, "CPU (%s)", wisp_matmul_simd_level());
    snprintf(row, sizeof row, "| %s %s | %s | %.2f MiB | %.2f M | %s | %d |", c->arch_name, c->name,
             main_type(m), wisp_model_file_bytes(m) / 1048576.0, wisp_model_n_params(m) / 1e6,
             backend, threads);
    if (have_pp)
        printf("%s pp%d | %.2f ± %.2f |\n", row, a->n_prompt, pp.mean, pp.sd);
    if (have_tg)
        printf("%s tg%d | %.2f ± %.2f |\n", row, a->n_gen, tg.mean, tg.sd);
}

static int print_json(const bench_args *a, int threads, bench_result pp, bench_result tg)
{
    json_t *o =
        json_pack("{s:s, s:i, s:{s:i, s:f, s:f}, s:{s:i, s:f, s:f}, s:s}", "model", a->model,
                  "threads", threads, "pp", "n_tokens", a->n_prompt, "tokens_per_s", pp.mean,
                  "stddev", pp.sd, "tg", "n_tokens", a->n_gen, "tokens_per_s", tg.mean, "stddev",
                  tg.sd, "simd", wisp_matmul_simd_level());
    if (!o)
        return -1;
    json_object_set_new(o, "device", json_string(a->device));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    puts(s);
    free(s);
    return 0;
}

int wisp_cmd_bench(int argc, char **argv)
{
    bench_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc)
        return prc > 0 ? 0 : 2;
    wisp_err err = {0};
    wisp_model *m = NULL;
    wisp_engine *eng = NULL;
    bench_ctx b = {0};
    bench_result pp = {0, 0}, tg = {0, 0};
    char device[16];
    int rc = wisp_model_open(a.model, NULL, &m, &err);
    if (rc)
        goto out;
    const wisp_model_config *c = wisp_model_get_config(m);
    const int longest = a.n_prompt > a.n_gen ? a.n_prompt : a.n_gen;
    wisp_engine_spec spec = {
        .device = a.device,
        .n_threads = a.threads,
        .kv_type = a.kv_type,
        .n_ctx = longest > 0 ? longest : 1,
    };
    wisp_engine_made made;
    rc = wisp_engine_create(m, &spec, &eng, &made, &err);
    if (rc)
        goto out;
    snprintf(device, sizeof device, "%s", made.device);
    a.device = device;
    b.n_blocks = (longest + made.block_size - 1) / made.block_size + 1;
    b.eng = eng;
    b.tokens = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    b.table = malloc(sizeof(int32_t) * (size_t)b.n_blocks);
    b.logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (!b.tokens || !b.table || !b.logits) {
        rc = wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        goto out;
    }
    uint32_t x = 12345;
    for (int i = 0; i <= longest; i++) {
        x = x * 1664525u + 1013904223u;
        b.tokens[i] = (int32_t)((x >> 8) % (uint32_t)c->vocab_size);
    }
    for (int i = 0; i < b.n_blocks; i++)
        b.table[i] = i;
    if (a.n_prompt > 0 && (rc = run_test(&b, 1, a.n_prompt, a.reps, &pp, &err)))
        goto out;
    if (a.n_gen > 0 && (rc = run_test(&b, 0, a.n_gen, a.reps, &tg, &err)))
        goto out;
    if (a.json) {
        if (print_json(&a, eng->opts.n_threads, pp, tg))
            rc = wisp_err_set(&err, WISP_E_NOMEM, "cannot format the JSON result");
    } else {
        print_table(&a, m, eng->opts.n_threads, a.n_prompt > 0, pp, a.n_gen > 0, tg);
    }
out:
    if (rc)
        fprintf(stderr, "wisp bench: %s\n", err.msg[0] ? err.msg : wisp_code_message(rc));
    free(b.tokens);
    free(b.table);
    free(b.logits);
    wisp_engine_destroy(eng);
    if (m)
        wisp_model_close(m);
    return rc ? 1 : 0;
}
