/*
 * methods.c - wisp's method table and its gate: see method.h and methods.h.
 *
 * Params tables are written out per method so that each row here matches
 * one schema file in protocol/schema/ (the e2e tests hold the two together).
 * Sampling fields are shared by generate and infill through one macro.
 */
#include "rpc/method.h"

#include <stdio.h>
#include <string.h>

#include "model/kv_type.h"
#include "serve/methods.h"
#include "serve/runtime.h"
#include "serve/server.h"

#define I32_MAX     2147483647.0
#define I53_MAX     9007199254740991.0 /* the largest integer every JSON reader keeps exact */
#define CTX_MAX     16777216.0         /* WISP_RUNTIME_MAX_CTX */
#define THREADS_MAX 1024.0             /* the CPU engine's thread pool limit */
/* clang-format off */
#define OPT(name, type) {name, type, false, 0, 0, NULL}
#define REQ(name, type) {name, type, true, 0, 0, NULL}
#define OPT_RANGE(name, type, lo, hi) {name, type, false, lo, hi, NULL}
#define REQ_RANGE(name, type, lo, hi) {name, type, true, lo, hi, NULL}
#define END {NULL, 0, false, 0, 0, NULL}
/* clang-format on */

static const char *const devices[] = {"auto", "cpu", "cuda", "cuda:N", NULL};

static const wisp_param p_none[] = {END};

/* Fields wisp only logs or ignores take any value: LSP clients differ in
 * how they encode empty ones (Lua's {} becomes []). */
static const wisp_param p_initialize[] = {
    OPT("clientInfo", WISP_PT_ANY),
    OPT("capabilities", WISP_PT_ANY),
    OPT("processId", WISP_PT_ANY),
    END,
};

static const wisp_param p_cancel[] = {REQ("id", WISP_PT_ID), END};

static const wisp_param p_model_load[] = {
    OPT("path", WISP_PT_STRING),
    OPT("remote", WISP_PT_OBJECT),
    OPT_RANGE("n_ctx", WISP_PT_INT, 1, CTX_MAX),
    {"device", WISP_PT_STRING, false, 0, 0, devices},
    OPT_RANGE("threads", WISP_PT_INT, 1, THREADS_MAX),
    OPT_RANGE("kv_cache_mb", WISP_PT_INT, 1, 1073741824.0),
    {"kv_type", WISP_PT_STRING, false, 0, 0, wisp_kv_type_names},
    OPT_RANGE("host_cache_mb", WISP_PT_INT, 0, 1073741824.0),
    OPT("cache_dir", WISP_PT_STRING),
    OPT_RANGE("keep_alive_s", WISP_PT_INT, 0, 2147483648.0),
    OPT("warmup", WISP_PT_BOOL),
    OPT("f16_as_bf16", WISP_PT_BOOL),
    OPT("device_map", WISP_PT_ANY), /* its entries are checked by model/load */
    OPT_RANGE("weights_budget_mb", WISP_PT_INT, 0, 1073741824.0),
    END,
};

static const wisp_param p_model_plan[] = {
    REQ("path", WISP_PT_STRING),
    OPT_RANGE("n_ctx", WISP_PT_INT, 1, CTX_MAX),
    OPT_RANGE("n_seq", WISP_PT_INT, 1, 65536),
    {"kv_type", WISP_PT_STRING, false, 0, 0, wisp_kv_type_names},
    {"device", WISP_PT_STRING, false, 0, 0, devices},
    OPT_RANGE("kv_cache_mb", WISP_PT_INT, 1, 1073741824.0),
    OPT("device_map", WISP_PT_ANY), /* checked as model/load checks it */
    OPT_RANGE("weights_budget_mb", WISP_PT_INT, 0, 1073741824.0),
    END,
};

static const wisp_param p_tokenize[] = {
    REQ("text", WISP_PT_STRING),
    OPT("add_special", WISP_PT_BOOL),
    OPT("parse_special", WISP_PT_BOOL),
    END,
};

static const wisp_param p_detokenize[] = {
    REQ_RANGE("tokens", WISP_PT_INT_ARRAY, 0, I32_MAX),
    OPT("render_special", WISP_PT_BOOL),
    END,
};

#define SAMPLING_PARAMS                                                                         \
    OPT_RANGE("max_tokens", WISP_PT_INT, 0, I32_MAX),                                           \
        OPT_RANGE("temperature", WISP_PT_NUMBER, 0, 100),                                       \
        OPT_RANGE("top_k", WISP_PT_INT, 0, I32_MAX), OPT_RANGE("top_p", WISP_PT_NUMBER, 0, 1),  \
        OPT_RANGE("min_p", WISP_PT_NUMBER, 0, 1), OPT_RANGE("typical_p", WISP_PT_NUMBER, 0, 1), \
        OPT_RANGE("repeat_last_n", WISP_PT_INT, 0, I32_MAX),                                    \
        OPT_RANGE("logit_bias", WISP_PT_LOGIT_BIAS, 0, I32_MAX),                                \
        OPT_RANGE("priority", WISP_PT_INT, -1000000, 1000000),                                  \
        OPT_RANGE("repeat_penalty", WISP_PT_NUMBER, 0, 100),                                    \
        OPT_RANGE("presence_penalty", WISP_PT_NUMBER, -100, 100),                               \
        OPT_RANGE("frequency_penalty", WISP_PT_NUMBER, -100, 100),                              \
        OPT_RANGE("seed", WISP_PT_INT, 0, I53_MAX), OPT("stop", WISP_PT_STRING_ARRAY),          \
        OPT("stream", WISP_PT_BOOL), OPT("partialResultToken", WISP_PT_ID),                     \
        OPT("workDoneToken", WISP_PT_ID), OPT_RANGE("n_probs", WISP_PT_INT, 0, 100)

static const wisp_param p_generate[] = {
    REQ_RANGE("prompt", WISP_PT_PROMPT, 0, I32_MAX),
    OPT("supersede", WISP_PT_STRING),
    SAMPLING_PARAMS,
    END,
};

static const char *const fim_orders[] = {"psm", "spm", NULL};

static const wisp_param p_infill[] = {
    REQ("input_prefix", WISP_PT_STRING),
    OPT("input_suffix", WISP_PT_STRING),
    OPT("input_extra", WISP_PT_CHUNKS),
    OPT("prompt", WISP_PT_STRING),
    OPT("filename", WISP_PT_STRING),
    OPT("repo_name", WISP_PT_STRING),
    {"fim_order", WISP_PT_STRING, false, 0, 0, fim_orders},
    OPT_RANGE("n_indent", WISP_PT_INT, 0, 100000),
    OPT_RANGE("t_max_predict_ms", WISP_PT_INT, 0, I32_MAX),
    OPT("supersede", WISP_PT_STRING),
    SAMPLING_PARAMS,
    END,
};

#define CHAT_PARAMS                                                                  \
    REQ("messages", WISP_PT_ANY), OPT("tools", WISP_PT_ANY),                         \
        OPT("add_generation_prompt", WISP_PT_BOOL), OPT("template", WISP_PT_STRING), \
        OPT("template_kwargs", WISP_PT_OBJECT), OPT("bos_token", WISP_PT_STRING),    \
        OPT("eos_token", WISP_PT_STRING), OPT_RANGE("now", WISP_PT_INT, -I53_MAX, I53_MAX)

static const wisp_param p_chat_render[] = {CHAT_PARAMS, END};

static const wisp_param p_chat[] = {
    CHAT_PARAMS,
    OPT("supersede", WISP_PT_STRING),
    SAMPLING_PARAMS,
    END,
};

static const wisp_param p_evaluate[] = {
    REQ_RANGE("tokens", WISP_PT_INT_ARRAY, 0, I32_MAX),
    OPT_RANGE("top_k", WISP_PT_INT, 1, 1000),
    END,
};

#define ENGINE WISP_M_ENGINE
#define MODEL  WISP_M_NEEDS_MODEL
#define NOTIF  WISP_M_NOTIFICATION

/* A row whose handler is NULL is not in this build: the generic run step
 * answers it -31008 after the params checks. */
static const wisp_method table[] = {
    {"initialize", wisp_m_initialize, NULL, WISP_M_OPEN_PARAMS, p_initialize,
     "server info, capabilities, devices, model"},
    {"shutdown", wisp_m_shutdown, NULL, 0, p_none,
     "cancel and answer everything outstanding, then null"},
    {"status", wisp_m_status, NULL, 0, p_none, "requests, KV cache and prefix cache counters"},
    {"model/load", wisp_m_model_load, NULL, ENGINE, p_model_load, "load a model"},
    {"model/info", wisp_m_model_info, NULL, ENGINE | MODEL, p_none, "the loaded model"},
    {"model/unload", wisp_m_model_unload, NULL, ENGINE | MODEL, p_none, "unload the model"},
    {"model/plan", wisp_m_model_plan, NULL, ENGINE, p_model_plan,
     "memory estimate for a model without loading it"},
    {"tokenize", wisp_m_tokenize, NULL, ENGINE | MODEL, p_tokenize, "text to token ids"},
    {"detokenize", wisp_m_detokenize, NULL, ENGINE | MODEL, p_detokenize, "token ids to text"},
    {"generate", wisp_m_generate, NULL, ENGINE | MODEL, p_generate, "complete a prompt"},
    {"infill", wisp_m_infill, NULL, ENGINE | MODEL, p_infill,
     "fill in the middle (code completion)"},
    {"chat/render", wisp_m_chat_render, NULL, ENGINE, p_chat_render,
     "a conversation rendered with the chat template"},
    {"chat", wisp_m_chat, NULL, ENGINE | MODEL, p_chat, "the assistant's reply to a conversation"},
    {"evaluate", wisp_m_evaluate, NULL, ENGINE | MODEL, p_evaluate, "teacher-forced top-k logits"},
    {"exit", NULL, wisp_n_exit, NOTIF, p_none, "exit (0 after shutdown, 1 otherwise)"},
    {"initialized", NULL, wisp_n_initialized, NOTIF | WISP_M_OPEN_PARAMS, p_none,
     "LSP's acknowledgement of initialize (accepted, nothing to do)"},
    {"$/cancelRequest", NULL, wisp_n_cancel_request, NOTIF, p_cancel, "cancel a request"},
};

const wisp_method *wisp_method_find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

const wisp_method *wisp_methods(size_t *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

int wisp_serve_gate(void *ctx, const wisp_method *m, const char **msg)
{
    wisp_server *s = ctx;
    if (!(m->flags & WISP_M_NEEDS_MODEL))
        return 0;
    /* An idle-unloaded model comes back for the request that needs it;
     * model/info only reports it and model/unload forgets it. */
    if (!s->runtime && s->idle_unloaded) {
        if (m->fn == wisp_m_model_info || m->fn == wisp_m_model_unload)
            return 0;
        wisp_err err = {0};
        if (wisp_serve_reload(s, &err)) {
            snprintf(s->reload_msg, sizeof s->reload_msg, "%s", err.msg);
            *msg = s->reload_msg;
            return err.code == WISP_E_DEVICE ? WISP_RPC_DEVICE_ERROR : WISP_RPC_MODEL_LOAD_FAILED;
        }
    }
    if (!s->runtime) {
        *msg = "no model loaded: start wisp with --model PATH or call model/load";
        return WISP_RPC_NO_MODEL;
    }
    /* Model requests never read a file that changed under the mapping;
     * unloading (or loading another) is how the client recovers. */
    wisp_err err = {0};
    if ((m->flags & WISP_M_NEEDS_MODEL) && m->fn != wisp_m_model_unload &&
        !wisp_model_check_file(ctx, &err)) {
        *msg = s->runtime->stale_msg;
        return wisp_rpc_code_from_wisp(err.code);
    }
    wisp_serve_touch(s);
    return 0;
}
