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
#include <time.h>

#include "common/clock.h"
#include "engine/cpu/matmul.h"
#include "engine/engine.h"
#include "engine/factory.h"
#include "model/model.h"

typedef struct bench_args {
    const char *model;
    const char *device; /* "auto", "cpu", "cuda", "cuda:N"; then the one built */
    /* --device-map, --weights-budget-mb: the placement, as for the server */
    wisp_device_map device_map;
    int n_prompt, n_gen, threads, reps;
    int json;
    const char *output; /* -o: NULL (wisp's table), "json", "jsonl" or "md" */
    wisp_kv_type kv_type;
    bool f16_as_bf16;         /* --f16-as-bf16 1: CPU F16 / BF16 weights computed in BF16 */
    wisp_placement placement; /* the one built */
    int bf16_tensors;         /* the weight tensors the engine built computes in BF16 */
} bench_args;

typedef struct bench_result {
    double mean, sd;       /* tokens/s */
    double mean_ns, sd_ns; /* nanoseconds per repetition */
    double *ns, *tps;      /* per repetition (owned), n of them */
    int n;
} bench_result;

static void usage(FILE *f)
{
    fputs("usage: wisp bench -m MODEL [-p N_PROMPT] [-n N_GEN] [-t THREADS] [-r REPS]\n"
          "                  [--device auto|cpu|cuda[:N]] [--kv-type f16|q8_0|f32]\n"
          "                  [--device-map DEV=N,...] [--weights-budget-mb N] [--repack 0|1]\n"
          "                  [--f16-as-bf16 0|1] [--json | -o json|jsonl|md]\n"
          "  -p  prompt tokens processed in one step (pp), default 512; 0 skips pp\n"
          "  -n  tokens generated one step at a time (tg), default 128; 0 skips tg\n"
          "  -t  threads, default the physical cores\n"
          "  -r  repetitions, default 5\n"
          "  --device, --kv-type, --device-map and --weights-budget-mb as for the\n"
          "      server (default auto, f16, no map, no budget)\n"
          "  --repack 0 keeps Q4_0 / Q8_0 / K-quant weights in the file's layout on the CPU\n"
          "      (as WISP_REPACK=0; default 1, repacked into interleaved rows)\n"
          "  --f16-as-bf16 1 computes F16 / BF16 weights in BF16 on the CPU (lossy; only with\n"
          "      AVX512-BF16 and repacking; default 0); the output says to how many\n"
          "      tensors it applied\n"
          "  --json  one JSON object with both tests\n"
          "  -o      llama-bench's output: json (an array of one object per test,\n"
          "          llama-bench's fields), jsonl (those objects one per line) or md\n",
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
            if (!v || (strcmp(v, "auto") && !wisp_device_map_name_ok(v))) {
                fprintf(stderr, "wisp bench: --device needs auto, cpu, cuda or cuda:N\n");
                return -1;
            }
            a->device = v;
        } else if (!strcmp(f, "--device-map")) {
            wisp_err e = {0};
            if (wisp_device_map_parse(v, &a->device_map, &e)) {
                fprintf(stderr, "wisp bench: --device-map: %s\n", e.msg);
                return -1;
            }
        } else if (!strcmp(f, "--weights-budget-mb")) {
            int mb;
            if ((rc = parse_int(f, v, 1, &mb)) == 0)
                a->device_map.weights_budget_bytes = (uint64_t)mb << 20;
        } else if (!strcmp(f, "--repack")) {
            /* the engines are built by the factory: the environment is
             * the CPU engine's switch that reaches them (cpu/repack.h) */
            if (!v || (strcmp(v, "0") && strcmp(v, "1"))) {
                fprintf(stderr, "wisp bench: --repack needs 0 or 1\n");
                return -1;
            }
            setenv("WISP_REPACK", v, 1);
        } else if (!strcmp(f, "--f16-as-bf16")) {
            if (!v || (strcmp(v, "0") && strcmp(v, "1"))) {
                fprintf(stderr, "wisp bench: --f16-as-bf16 needs 0 or 1\n");
                return -1;
            }
            a->f16_as_bf16 = v[0] == '1';
        } else if (!strcmp(f, "--kv-type")) {
            if (!v || wisp_kv_type_from_name(v, &a->kv_type)) {
                char names[64];
                wisp_kv_type_list(names, sizeof names);
                fprintf(stderr, "wisp bench: --kv-type needs one of %s\n", names);
                return -1;
            }
        } else if (!strcmp(f, "-o") || !strcmp(f, "--output")) {
            if (!v || (strcmp(v, "json") && strcmp(v, "jsonl") && strcmp(v, "md"))) {
                fprintf(stderr, "wisp bench: %s needs json, jsonl or md\n", f);
                return -1;
            }
            a->output = v;
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

/* Mean and sample standard deviation, as llama-bench computes them. */
static void mean_sd(const double *v, int n, double *mean, double *sd)
{
    double m = 0, s = 0;
    for (int i = 0; i < n; i++)
        m += v[i];
    m /= n;
    for (int i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s / (n - 1)) : 0;
}

/* Takes ownership of ns and tps (n repetitions each). */
static bench_result summarize(double *ns, double *tps, int n)
{
    bench_result r = {.ns = ns, .tps = tps, .n = n};
    mean_sd(tps, n, &r.mean, &r.sd);
    mean_sd(ns, n, &r.mean_ns, &r.sd_ns);
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

/* One pp run (is_pp) or one tg run; fills *ns with its nanoseconds and
 * *tps with tokens/s. */
static int run_once(bench_ctx *b, int is_pp, int n, double *ns, double *tps, wisp_err *err)
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
    const double ms = wisp_now_ms() - t0;
    *ns = ms * 1e6;
    *tps = n / (ms / 1e3);
    return rc;
}

static int run_test(bench_ctx *b, int is_pp, int n, int reps, bench_result *out, wisp_err *err)
{
    double warm, warm_ns, *tps = calloc((size_t)reps, sizeof(double)),
                          *ns = calloc((size_t)reps, sizeof(double));
    if (!tps || !ns) {
        free(tps);
        free(ns);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    /* Warm-up: fault the weights in and settle the threads (tg: a few steps). */
    int rc = run_once(b, is_pp, is_pp ? n : (n < 4 ? n : 4), &warm_ns, &warm, err);
    for (int r = 0; r < reps && !rc; r++)
        rc = run_once(b, is_pp, n, &ns[r], &tps[r], err);
    if (!rc) {
        *out = summarize(ns, tps, reps);
        return 0;
    }
    free(tps);
    free(ns);
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

/* The layers the built placement runs on a GPU: llama-bench's n_gpu_layers.
 * The engine's name alone does not say it ("cuda+cpu" for a split). */
static int gpu_layers(const bench_args *a)
{
    int n = 0;
    for (int i = 0; i < a->placement.n_stages; i++) {
        const wisp_place_stage *s = &a->placement.stages[i];
        if (strncmp(s->device, "cuda", 4) == 0)
            n += s->layer_end - s->layer_begin;
    }
    return n;
}

/* --f16-as-bf16 as asked and as taken, as the server's model info says it. */
static json_t *bf16_json(const bench_args *a)
{
    return json_pack("{s:b, s:i}", "requested", a->f16_as_bf16, "tensors", a->bf16_tensors);
}

static void print_table(const bench_args *a, const wisp_model *m, int threads, int have_pp,
                        bench_result pp, int have_tg, bench_result tg)
{
    const wisp_model_config *c = wisp_model_get_config(m);
    printf("| model | type | size | params | backend | threads | test | t/s |\n");
    printf("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    char row[512];
    char backend[32];
    if (gpu_layers(a) > 0)
        snprintf(backend, sizeof backend, "CUDA");
    else
        snprintf(backend, sizeof backend, "CPU (%s%s)", wisp_matmul_simd_level(),
                 a->bf16_tensors > 0 ? ", bf16" : "");
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
    json_object_set_new(o, "placement",
                        json_pack("{s:s, s:i, s:s}", "strategy",
                                  wisp_place_strategy_name(a->placement.strategy), "stages",
                                  a->placement.n_stages, "reason", a->placement.reason));
    json_object_set_new(o, "f16_as_bf16", bf16_json(a));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    puts(s);
    free(s);
    return 0;
}

/* The CPU's name as llama-bench reports it (/proc/cpuinfo's model name):
 * the device list's first entry, which is always the CPU. */
static void cpu_name(char *out, size_t size)
{
    wisp_engine_device d[1];
    snprintf(out, size, "%s", wisp_engine_devices(d, 1) == 1 ? d[0].name : "unknown");
}

/* What llama-bench's run describes, for each test's record. */
typedef struct bench_info {
    const bench_args *a;
    const wisp_model *m;
    const wisp_engine *eng;
    char cpu[128];
    char time[32]; /* the run's start, ISO 8601 UTC */
} bench_info;

static json_t *doubles(const double *v, int n, int as_int)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr,
                              as_int ? json_integer((json_int_t)llround(v[i])) : json_real(v[i]));
    return arr;
}

/* The model label of llama-bench's "model" column: architecture, size in
 * billions of parameters, weight type. */
static void model_label(const wisp_model *m, char *out, size_t size)
{
    snprintf(out, size, "%s %.1fB %s", wisp_model_get_config(m)->arch_name,
             (double)wisp_model_n_params(m) / 1e9, main_type(m));
}

/* One test's record with llama-bench's fields (its -o json), in its order.
 * Settings wisp does not have carry llama-bench's defaults, so records of
 * both line up column for column; "simd" and "f16_as_bf16" are wisp's own. */
static json_t *llama_record(const bench_info *in, int n_prompt, int n_gen, const bench_result *r)
{
    const bench_args *a = in->a;
    const int n_gpu = gpu_layers(a);
    const int cuda = n_gpu > 0;
    char label[160];
    model_label(in->m, label, sizeof label);
    const char *kv = wisp_kv_type_name(in->eng->opts.kv_type);
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "build_commit", json_string("unknown"));
    json_object_set_new(o, "build_number", json_integer(0));
    json_object_set_new(o, "cpu_info", json_string(in->cpu));
    json_object_set_new(o, "gpu_info", json_string(""));
    json_object_set_new(o, "backends", json_string(cuda ? "CUDA" : "CPU"));
    json_object_set_new(o, "model_filename", json_string(a->model));
    json_object_set_new(o, "model_type", json_string(label));
    json_object_set_new(o, "model_size", json_integer((json_int_t)wisp_model_file_bytes(in->m)));
    json_object_set_new(o, "model_n_params", json_integer((json_int_t)wisp_model_n_params(in->m)));
    json_object_set_new(o, "n_batch", json_integer(in->eng->opts.max_batch_tokens));
    json_object_set_new(o, "n_ubatch", json_integer(in->eng->opts.max_batch_tokens));
    json_object_set_new(o, "n_threads", json_integer(in->eng->opts.n_threads));
    json_object_set_new(o, "cpu_mask", json_string("0x0"));
    json_object_set_new(o, "cpu_strict", json_false());
    json_object_set_new(o, "poll", json_integer(50));
    json_object_set_new(o, "type_k", json_string(kv));
    json_object_set_new(o, "type_v", json_string(kv));
    json_object_set_new(o, "n_gpu_layers", json_integer(n_gpu));
    json_object_set_new(o, "n_cpu_moe", json_integer(0));
    json_object_set_new(o, "split_mode", json_string("layer"));
    json_object_set_new(o, "main_gpu", json_integer(0));
    json_object_set_new(o, "no_kv_offload", json_false());
    json_object_set_new(o, "flash_attn", json_integer(-1));
    json_object_set_new(o, "devices", json_string("auto"));
    json_object_set_new(o, "tensor_split", json_string("0.00"));
    json_object_set_new(o, "tensor_buft_overrides", json_string("none"));
    json_object_set_new(o, "load_mode", json_string("mmap"));
    json_object_set_new(o, "embeddings", json_false());
    json_object_set_new(o, "no_op_offload", json_integer(0));
    json_object_set_new(o, "no_host", json_false());
    json_object_set_new(o, "fit_target", json_integer(0));
    json_object_set_new(o, "fit_min_ctx", json_integer(0));
    json_object_set_new(o, "n_prompt", json_integer(n_prompt));
    json_object_set_new(o, "n_gen", json_integer(n_gen));
    json_object_set_new(o, "n_depth", json_integer(0));
    json_object_set_new(o, "test_time", json_string(in->time));
    json_object_set_new(o, "avg_ns", json_integer((json_int_t)llround(r->mean_ns)));
    json_object_set_new(o, "stddev_ns", json_integer((json_int_t)llround(r->sd_ns)));
    json_object_set_new(o, "avg_ts", json_real(r->mean));
    json_object_set_new(o, "stddev_ts", json_real(r->sd));
    json_object_set_new(o, "samples_ns", doubles(r->ns, r->n, 1));
    json_object_set_new(o, "samples_ts", doubles(r->tps, r->n, 0));
    json_object_set_new(o, "simd", json_string(cuda ? "cuda" : wisp_matmul_simd_level()));
    json_object_set_new(o, "f16_as_bf16", bf16_json(a));
    return o;
}

/* -o json / jsonl: one record per test (pp first, then tg). */
static int print_llama_json(const bench_info *in, int lines, const bench_result *pp,
                            const bench_result *tg)
{
    json_t *arr = json_array();
    if (!arr)
        return -1;
    if (in->a->n_prompt > 0)
        json_array_append_new(arr, llama_record(in, in->a->n_prompt, 0, pp));
    if (in->a->n_gen > 0)
        json_array_append_new(arr, llama_record(in, 0, in->a->n_gen, tg));
    int rc = 0;
    if (lines) {
        for (size_t i = 0; i < json_array_size(arr) && !rc; i++) {
            char *s = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_REAL_PRECISION(10));
            if (!s)
                rc = -1;
            else
                puts(s);
            free(s);
        }
    } else {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (!s)
            rc = -1;
        else
            puts(s);
        free(s);
    }
    json_decref(arr);
    return rc;
}

/* -o md: llama-bench's markdown table. */
static void print_llama_md(const bench_info *in, const bench_result *pp, const bench_result *tg)
{
    const bench_args *a = in->a;
    char label[160], size[32], params[32], backend[32];
    model_label(in->m, label, sizeof label);
    snprintf(size, sizeof size, "%.2f MiB", wisp_model_file_bytes(in->m) / 1048576.0);
    snprintf(params, sizeof params, "%.2f %s",
             wisp_model_n_params(in->m) >= 1000000000 ? wisp_model_n_params(in->m) / 1e9
                                                      : wisp_model_n_params(in->m) / 1e6,
             wisp_model_n_params(in->m) >= 1000000000 ? "B" : "M");
    snprintf(backend, sizeof backend, "%s", gpu_layers(a) > 0 ? "CUDA" : "CPU");
    printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |\n", "model", "size", "params",
           "backend", "threads", "test", "t/s");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | "
           "--------------: | -------------------: |\n");
    for (int t = 0; t < 2; t++) {
        const int n = t ? a->n_gen : a->n_prompt;
        const bench_result *r = t ? tg : pp;
        if (n <= 0)
            continue;
        char test[32], ts[64];
        snprintf(test, sizeof test, "%s%d", t ? "tg" : "pp", n);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", r->mean, r->sd);
        /* the ± takes one column but two bytes */
        printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %21s |\n", label, size, params,
               backend, in->eng->opts.n_threads, test, ts);
    }
    printf("\nbuild: wisp (%s)\n", gpu_layers(a) > 0 ? "cuda" : wisp_matmul_simd_level());
    if (a->f16_as_bf16)
        printf("f16_as_bf16: %d tensors in BF16\n", a->bf16_tensors);
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
    bench_result pp = {0}, tg = {0};
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
        .f16_as_bf16 = a.f16_as_bf16,
        .n_ctx = longest > 0 ? longest : 1,
        .device_map = &a.device_map,
    };
    wisp_engine_made made;
    rc = wisp_engine_create(m, &spec, &eng, &made, &err);
    if (rc)
        goto out;
    snprintf(device, sizeof device, "%s", made.device);
    a.device = device;
    a.placement = made.placement;
    if (eng->ops->get_stats) {
        wisp_engine_stats es;
        memset(&es, 0, sizeof es);
        eng->ops->get_stats(eng->ctx, &es);
        a.bf16_tensors = es.bf16_tensors;
    }
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
    bench_info info = {.a = &a, .m = m, .eng = eng};
    cpu_name(info.cpu, sizeof info.cpu);
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(info.time, sizeof info.time, "%Y-%m-%dT%H:%M:%SZ", &utc);
    if (a.n_prompt > 0 && (rc = run_test(&b, 1, a.n_prompt, a.reps, &pp, &err)))
        goto out;
    if (a.n_gen > 0 && (rc = run_test(&b, 0, a.n_gen, a.reps, &tg, &err)))
        goto out;
    if (a.output && !strcmp(a.output, "md")) {
        print_llama_md(&info, &pp, &tg);
    } else if (a.output) {
        if (print_llama_json(&info, !strcmp(a.output, "jsonl"), &pp, &tg))
            rc = wisp_err_set(&err, WISP_E_NOMEM, "cannot format the JSON result");
    } else if (a.json) {
        if (print_json(&a, eng->opts.n_threads, pp, tg))
            rc = wisp_err_set(&err, WISP_E_NOMEM, "cannot format the JSON result");
    } else {
        print_table(&a, m, eng->opts.n_threads, a.n_prompt > 0, pp, a.n_gen > 0, tg);
    }
out:
    if (rc)
        fprintf(stderr, "wisp bench: %s\n", err.msg[0] ? err.msg : wisp_code_message(rc));
    free(pp.ns);
    free(pp.tps);
    free(tg.ns);
    free(tg.tps);
    free(b.tokens);
    free(b.table);
    free(b.logits);
    wisp_engine_destroy(eng);
    if (m)
        wisp_model_close(m);
    return rc ? 1 : 0;
}
