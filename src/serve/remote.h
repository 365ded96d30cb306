/*
 * remote.h - serving through the remote backend (src/remote/): the runtime
 * whose generation runs on OpenAI-compatible or llama.cpp servers, and the
 * generation methods' remote paths.
 *
 * The handlers here are what generate, infill, chat, tokenize and
 * detokenize do when the loaded runtime is remote: they build the request
 * the server's API takes, submit it through the backend (which never
 * blocks the engine thread), and answer the job from the backend thread as
 * the answer streams in, with the same $/stream encoder and the same result
 * shapes as local generation. Cancellation and supersede reach the backend
 * through the engine thread's step hook (wisp_serve_remote_step).
 */
#ifndef WISP_SERVE_REMOTE_H
#define WISP_SERVE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>

#include "common/err.h"
#include "rpc/job.h"
#include "serve/runtime.h"

typedef struct wisp_remote_load {
    const json_t *remote;    /* model/load's remote object */
    const char *path;        /* local tokenizer (GGUF, HF directory or tokenizer.json); NULL */
    int n_ctx;               /* 0: the servers' */
    const char *cli_urls;    /* --remote's comma-separated URLs (instead of remote) */
    const char *cli_kind;    /* --remote-kind */
    const char *cli_model;   /* --remote-model */
    const char *cli_key_env; /* --remote-api-key-env */
} wisp_remote_load;

/* Opens the backend, checks the servers (GET /v1/models: the model name
 * and context length) and the local tokenizer. Returns 0, or <0 with err
 * (WISP_E_INVALID for bad params: answered -32602). */
int wisp_runtime_open_remote(const wisp_remote_load *o, wisp_runtime **out, wisp_err *err);
json_t *wisp_runtime_remote_info(const wisp_runtime *rt);

/* The engine thread woke (a cancel, a supersede): the backend looks at its
 * calls' cancel flags now. */
void wisp_serve_remote_step(wisp_runtime *rt);

void wisp_remote_m_generate(wisp_job *job);
void wisp_remote_m_infill(wisp_job *job);
void wisp_remote_m_chat(wisp_job *job);
void wisp_remote_m_tokenize(wisp_job *job);
void wisp_remote_m_detokenize(wisp_job *job);

#endif
