/*
 * options.h - the command line of `wisp` (the server).
 *
 * Parsing fills one struct from a table of flags (options.c), so adding a
 * flag is one struct member plus one table row. Parsing never exits: it
 * returns a status and a message, and main() decides what to print and the
 * exit code (2 for a bad command line, as is the shell convention).
 */
#ifndef WISP_OPTIONS_H
#define WISP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/log.h"
#include "engine/device_map.h"

typedef struct wisp_options {
    const char *model;        /* --model PATH: loaded at start; NULL = none */
    int n_ctx;                /* --ctx N: context length; 0 = the model's */
    int n_threads;            /* --threads N: CPU threads; 0 = physical cores */
    const char *device;       /* --device auto|cpu|cuda|cuda:N */
    wisp_log_level log_level; /* --log-level off|error|warn|info|debug */
    size_t max_message_bytes; /* --max-message-bytes N (default 16 MiB) */
    int64_t kv_mb;            /* --kv-mb N: KV cache pool in MiB; 0 = default */
    int kv_type;              /* --kv-type f16|q8_0|f32 (a wisp_kv_type) */
    bool f16_as_bf16;         /* --f16-as-bf16: CPU F16 / BF16 weights computed in BF16 */
    int64_t host_cache_mb;    /* --host-cache-mb N: second-tier prefix cache; -1 = default */
    const char *cache_dir;    /* --cache-dir DIR: persistent prefix cache; NULL = none */
    int64_t keep_alive_s;     /* --keep-alive S: unload an idle model after S s; 0 = never */
    /* --remote URL[,URL...]: generation runs on these servers (--model, if
     * given, is only the local tokenizer); NULL = local. */
    const char *remote;
    const char *remote_kind;    /* --remote-kind openai|llama.cpp (default openai) */
    const char *remote_model;   /* --remote-model NAME: the servers' model name */
    const char *remote_key_env; /* --remote-api-key-env VAR: the bearer token's variable */
    /* --device-map DEV=N,...: layers per device; --weights-budget-mb N:
     * stream the layers through N MiB of weight buffers. */
    wisp_device_map device_map;
} wisp_options;

typedef enum wisp_options_status {
    WISP_OPTIONS_RUN = 0,     /* run the server with the parsed options */
    WISP_OPTIONS_HELP = 1,    /* --help: print wisp_options_usage() to stdout */
    WISP_OPTIONS_VERSION = 2, /* --version */
} wisp_options_status;

#define WISP_DEFAULT_MAX_MESSAGE_BYTES ((size_t)16 << 20)

/* Fills *o with the defaults. */
void wisp_options_defaults(wisp_options *o);

/* Parses argv[first..argc-1] (both "--flag value" and "--flag=value").
 * Returns a wisp_options_status (>= 0), or WISP_E_INVALID with err naming
 * the flag and what is wrong with it. Strings point into argv. */
int wisp_options_parse(wisp_options *o, int argc, char **argv, int first, wisp_err *err);

/* The --help text (ends with a newline). */
const char *wisp_options_usage(void);

#endif
