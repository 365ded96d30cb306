/*
 * model_info.c - opens a model (GGUF file or Hugging Face checkpoint) the
 * way wisp does and prints its description, tensor types, memory plan, the
 * open time and the process's resident memory (build/tools/model_info PATH
 * [n_ctx]).
 *
 * Used to measure load cost: wisp maps files and reads only headers, so
 * the open time and RSS should stay small whatever the model's size.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "model/plan.h"

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: model_info PATH [n_ctx]\n");
        return 2;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    wisp_model *m;
    wisp_err err = {0};
    wisp_model_open_opts o = {.vocab_only = true};
    if (wisp_model_open(argv[1], &o, &m, &err) != 0) {
        fprintf(stderr, "model_info: %s\n", err.msg);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    const wisp_model_config *c = wisp_model_get_config(m);
    printf("%s: %s '%s'%s\n", argv[1], c->arch_name, c->name,
           wisp_model_is_vocab_only(m) ? " (vocabulary only)" : "");
    printf("  layers %d, embd %d, heads %d/%d x %d, ff %d, vocab %d, ctx %d, rope %s base %g"
           " dim %d, eps %g%s%s%s\n",
           c->n_layers, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->vocab_size,
           c->n_ctx_train, c->rope_layout == WISP_ROPE_NEOX ? "neox" : "normal", c->rope_freq_base,
           c->rope_dim, c->norm_eps, c->tied_output ? ", tied" : "",
           c->attn_bias ? ", qkv bias" : "", c->qk_norm ? ", qk norm" : "");
    printf("  %" PRId64 " parameters, %" PRIu64 " bytes, types:", wisp_model_n_params(m),
           wisp_model_file_bytes(m));
    int64_t counts[WISP_TYPE_COUNT];
    wisp_model_type_counts(m, counts);
    for (int t = 0; t < WISP_TYPE_COUNT; t++)
        if (counts[t])
            printf(" %s=%" PRId64, wisp_type_name(t), counts[t]);
    printf("\n");
    wisp_model_plan p;
    int n_ctx = argc > 2 ? atoi(argv[2]) : 0;
    if (!wisp_model_is_vocab_only(m) && wisp_model_plan_model(m, n_ctx, 1, -1, &p, &err) == 0) {
        printf("  plan at n_ctx %d: weights %.1f MiB (layers %.1f, max layer %.1f, embd %.1f,"
               " output %.1f), KV %" PRIu64
               " B/token = %.1f MiB, scratch %.1f MiB, total %.1f MiB\n",
               p.n_ctx, p.weight_bytes / 1048576.0, p.layer_bytes_total / 1048576.0,
               p.layer_bytes_max / 1048576.0, p.embd_bytes / 1048576.0, p.output_bytes / 1048576.0,
               p.kv_bytes_per_token, p.kv_bytes / 1048576.0, p.scratch_bytes / 1048576.0,
               p.host_bytes / 1048576.0);
        wisp_model_plan_free(&p);
    }
    printf("  open %.2f ms, RSS %ld kB (peak %ld kB)\n", ms, status_kb("VmRSS:"),
           status_kb("VmHWM:"));
    wisp_model_close(m);
    printf("  after close: RSS %ld kB\n", status_kb("VmRSS:"));
    return 0;
}
