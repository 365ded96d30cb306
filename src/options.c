/*
 * options.c - command-line parsing for `wisp`: see options.h.
 *
 * One row per flag: its name, whether it takes a value, and a setter that
 * validates the value and stores it. The usage text is written beside the
 * table so the two are edited together.
 */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kv_type.h"

static const char usage[] =
    "usage: wisp [options]            serve JSON-RPC 2.0 on stdin/stdout\n"
    "       wisp bench -m MODEL [-p N] [-n N] [-t THREADS] [-r REPS] [--json | -o json|jsonl|md]\n"
    "       wisp --help | --version\n"
    "\n"
    "options:\n"
    "  --model PATH             load this model (GGUF file or Hugging Face directory) at start\n"
    "  --ctx N                  context length in tokens (default: the model's)\n"
    "  --threads N              CPU threads (default: physical cores)\n"
    "  --device D               where to run the model: auto (default), cpu, cuda or cuda:N\n"
    "  --kv-mb N                KV cache pool in MiB (default: eight contexts, at most a\n"
    "                           quarter of available RAM)\n"
    "  --kv-type T              KV cache storage: f16 (default), q8_0 or f32\n"
    "  --f16-as-bf16            on the CPU, compute F16 and BF16 weights in BF16: about twice\n"
    "                           the prompt rate, but lossy (F16 weights lose 3 significand\n"
    "                           bits); taken only with AVX512-BF16 and repacked weights\n"
    "                           (off by default; --f16-as-bf16=0 turns it off again)\n"
    "  --host-cache-mb N        host-RAM tier of the prefix cache in MiB (default: as large as\n"
    "                           the KV pool; 0 turns it off)\n"
    "  --cache-dir DIR          keep the prefix cache on disk in DIR, so a restart starts warm\n"
    "  --keep-alive SECONDS     unload the model after SECONDS idle, reload it on the next\n"
    "                           request (0 = never, the default)\n"
    "  --remote URL[,URL...]    run generation on these OpenAI-compatible or llama.cpp servers\n"
    "                           (--model then only gives the local tokenizer)\n"
    "  --remote-kind K          openai (default: vLLM, SGLang, TGI, llama-server's /v1) or\n"
    "                           llama.cpp (llama-server's own /completion, /infill)\n"
    "  --remote-model NAME      the model name the servers serve (default: their first)\n"
    "  --remote-api-key-env VAR send $VAR as 'Authorization: Bearer' (the key itself never\n"
    "                           goes on a command line)\n"
    "  --device-map DEV=N,...   run the model's layers in order on these devices, N each\n"
    "                           (e.g. cuda:0=20,cpu=8; cpu=3,cpu=2 splits over two CPU\n"
    "                           engines); the counts must add up to the model's layers\n"
    "  --weights-budget-mb N    keep the weights in the file mapping and stream each layer\n"
    "                           through N MiB of buffers (at least two of the largest\n"
    "                           layers); without --device-map, on the CPU\n"
    "  --log-level L            off, error, warn, info or debug (default: info); logs go to\n"
    "                           stderr (lines it cannot take in time are dropped and counted)\n"
    "  --max-message-bytes N    largest accepted message (default: 16777216); larger ones are\n"
    "                           answered -32600 \"message too large\" and skipped\n"
    "  --help                   print this help and exit\n"
    "  --version                print the version and exit\n"
    "\n"
    "Protocol: newline-delimited JSON-RPC 2.0, or LSP Content-Length framing (detected from\n"
    "the first bytes). See protocol/PROTOCOL.md. Example:\n"
    "  printf '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\\n' | wisp\n";

const char *wisp_options_usage(void) { return usage; }

void wisp_options_defaults(wisp_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->log_level = WISP_LOG_INFO;
    o->max_message_bytes = WISP_DEFAULT_MAX_MESSAGE_BYTES;
    o->host_cache_mb = -1;
}

/* A whole decimal number in [lo, hi]; anything else is an error. */
static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
                     wisp_err *err)
{
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        goto bad;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    return wisp_err_set(err, WISP_E_INVALID,
                        "%s: expected a whole number in [%llu, %llu], got '%s'", flag,
                        (unsigned long long)lo, (unsigned long long)hi, s);
}

static int set_model(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (!*v)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected a path, got an empty string", flag);
    o->model = v;
    return 0;
}

static int set_ctx(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 1, 1 << 24, &n, err); /* WISP_RUNTIME_MAX_CTX */
    if (rc == 0)
        o->n_ctx = (int)n;
    return rc;
}

static int set_threads(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 1, 1024, &n, err); /* the thread pool's limit */
    if (rc == 0)
        o->n_threads = (int)n;
    return rc;
}

static int set_device(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    /* The names model/load's device takes. */
    if (strcmp(v, "auto") == 0 || wisp_device_map_name_ok(v)) {
        o->device = v;
        return 0;
    }
    return wisp_err_set(err, WISP_E_INVALID, "%s: expected auto, cpu or cuda[:N], got '%s'", flag,
                        v);
}

static int set_log_level(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (wisp_log_parse_level(v, &o->log_level) != 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "%s: expected off, error, warn, info or debug, got '%s'", flag, v);
    return 0;
}

static int set_max_message(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    /* Below 64 bytes not even an error reply's request fits; the upper bound
     * keeps buffer arithmetic far from overflow. */
    int rc = parse_u64(flag, v, 64, (uint64_t)1 << 40, &n, err);
    if (rc == 0)
        o->max_message_bytes = (size_t)n;
    return rc;
}

static int set_kv_mb(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 1, (uint64_t)1 << 30, &n, err);
    if (rc == 0)
        o->kv_mb = (int64_t)n;
    return rc;
}

static int set_host_cache_mb(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 0, (uint64_t)1 << 30, &n, err);
    if (rc == 0)
        o->host_cache_mb = (int64_t)n;
    return rc;
}

static int set_kv_type(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    wisp_kv_type t;
    if (wisp_kv_type_from_name(v, &t) == 0) {
        o->kv_type = (int)t;
        return 0;
    }
    char names[64];
    wisp_kv_type_list(names, sizeof names);
    return wisp_err_set(err, WISP_E_INVALID, "%s: expected one of %s, got '%s'", flag, names, v);
}

/* Each remote flag names what it expects, so an empty value says which. */
static int set_remote_url(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (!*v)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected a URL, got an empty string", flag);
    o->remote = v;
    return 0;
}

static int set_remote_model(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (!*v)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected a model name, got an empty string",
                            flag);
    o->remote_model = v;
    return 0;
}

static int set_remote_key_env(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (!*v)
        return wisp_err_set(err, WISP_E_INVALID,
                            "%s: expected an environment variable name, got an empty string", flag);
    o->remote_key_env = v;
    return 0;
}

static int set_remote_kind(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (strcmp(v, "openai") != 0 && strcmp(v, "llama.cpp") != 0)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected openai or llama.cpp, got '%s'", flag,
                            v);
    o->remote_kind = v;
    return 0;
}

static int set_cache_dir(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (!*v)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected a directory, got an empty string",
                            flag);
    o->cache_dir = v;
    return 0;
}

static int set_keep_alive(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 0, (uint64_t)1 << 31, &n, err);
    if (rc == 0)
        o->keep_alive_s = (int64_t)n;
    return rc;
}

static int set_f16_as_bf16(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return wisp_err_set(err, WISP_E_INVALID, "%s: expected 0 or 1, got '%s'", flag, v);
    o->f16_as_bf16 = v[0] == '1';
    return 0;
}

static int set_device_map(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    int rc = wisp_device_map_parse(v, &o->device_map, err);
    if (rc)
        wisp_err_prefix(err, "%s", flag);
    return rc;
}

static int set_weights_budget(wisp_options *o, const char *flag, const char *v, wisp_err *err)
{
    uint64_t n;
    int rc = parse_u64(flag, v, 1, (uint64_t)1 << 30, &n, err);
    if (rc == 0)
        o->device_map.weights_budget_bytes = n << 20;
    return rc;
}

static const struct flag {
    const char *name;
    int (*set)(wisp_options *o, const char *flag, const char *value, wisp_err *err);
    wisp_options_status status; /* for flags without a value (set == NULL) */
    /* A switch: the value it stands for alone ("--flag"); "--flag=V" still
     * gives V, so a later one can turn an earlier one off. */
    const char *implied;
} flags[] = {
    {"--model", .set = set_model},
    {"--ctx", .set = set_ctx},
    {"--threads", .set = set_threads},
    {"--device", .set = set_device},
    {"--log-level", .set = set_log_level},
    {"--max-message-bytes", .set = set_max_message},
    {"--kv-mb", .set = set_kv_mb},
    {"--kv-type", .set = set_kv_type},
    {"--f16-as-bf16", .set = set_f16_as_bf16, .implied = "1"},
    {"--host-cache-mb", .set = set_host_cache_mb},
    {"--cache-dir", .set = set_cache_dir},
    {"--keep-alive", .set = set_keep_alive},
    {"--remote", .set = set_remote_url},
    {"--remote-kind", .set = set_remote_kind},
    {"--remote-model", .set = set_remote_model},
    {"--remote-api-key-env", .set = set_remote_key_env},
    {"--device-map", .set = set_device_map},
    {"--weights-budget-mb", .set = set_weights_budget},
    {"--help", .status = WISP_OPTIONS_HELP},
    {"--version", .status = WISP_OPTIONS_VERSION},
};

int wisp_options_parse(wisp_options *o, int argc, char **argv, int first, wisp_err *err)
{
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct flag *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
            if (strlen(flags[k].name) == name_len && strncmp(arg, flags[k].name, name_len) == 0) {
                f = &flags[k];
                break;
            }
        }
        if (!f) {
            if (arg[0] == '-')
                return wisp_err_set(err, WISP_E_INVALID, "unknown option '%s' (see wisp --help)",
                                    argv[i]);
            return wisp_err_set(err, WISP_E_INVALID, "unexpected argument '%s' (see wisp --help)",
                                argv[i]);
        }
        if (!f->set) {
            if (eq)
                return wisp_err_set(err, WISP_E_INVALID, "%s takes no value", f->name);
            return f->status;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (f->implied) {
            value = f->implied;
        } else {
            if (i + 1 >= argc)
                return wisp_err_set(err, WISP_E_INVALID, "%s: missing value", f->name);
            value = argv[++i];
        }
        int rc = f->set(o, f->name, value, err);
        if (rc < 0)
            return rc;
    }
    return WISP_OPTIONS_RUN;
}
