/*
 * runtime_remote.c - a runtime whose model runs on remote servers: see
 * serve/remote.h. The servers are checked at load (GET /v1/models, which
 * vLLM, SGLang, TGI and llama-server all serve) so that a wrong URL, a
 * server that never answers or one that answers garbage fails model/load
 * with a clear error instead of the first request.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/log.h"
#include "model/gguf.h"
#include "remote/remote.h"
#include "serve/remote.h"
#include "serve/runtime.h"

#define DEFAULT_REMOTE_CTX 4096
#define MAX_TIMEOUT_MS     3600000

static int bad(wisp_err *err, const char *field, const char *what)
{
    return wisp_err_set(err, WISP_E_INVALID, "invalid params: 'remote.%s' must be %s", field, what);
}

/* The remote object's fields, checked here (the params table only says it
 * is an object). */
static int read_remote(const json_t *o, const char **urls, int *n, wisp_remote_opts *ro,
                       const char **key_env, wisp_err *err)
{
    static const char *const known[] =
        {"url", "urls", "model", "api_key_env", "kind", "connect_timeout_ms", "idle_timeout_ms"};
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok)
            return wisp_err_set(err, WISP_E_INVALID, "invalid params: unknown field 'remote.%s'",
                                k);
    }
    *n = 0;
    if ((v = json_object_get(o, "url"))) {
        if (!json_is_string(v))
            return bad(err, "url", "a string");
        urls[(*n)++] = json_string_value(v);
    }
    if ((v = json_object_get(o, "urls"))) {
        size_t i;
        const json_t *u;
        if (!json_is_array(v))
            return bad(err, "urls", "an array of strings");
        json_array_foreach(v, i, u)
        {
            if (!json_is_string(u))
                return bad(err, "urls", "an array of strings");
            if (*n >= WISP_REMOTE_MAX_URLS)
                return wisp_err_set(err, WISP_E_INVALID, "invalid params: urls: at most %d URLs",
                                    WISP_REMOTE_MAX_URLS);
            urls[(*n)++] = json_string_value(u);
        }
    }
    if (*n == 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "invalid params: 'remote' needs 'url' or 'urls' (a server's base URL)");
    if ((v = json_object_get(o, "model"))) {
        if (!json_is_string(v))
            return bad(err, "model", "a string");
        ro->model = json_string_value(v);
    }
    if ((v = json_object_get(o, "api_key_env"))) {
        if (!json_is_string(v))
            return bad(err, "api_key_env", "the name of an environment variable");
        *key_env = json_string_value(v);
    }
    if ((v = json_object_get(o, "kind"))) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "openai") == 0)
            ro->kind = WISP_REMOTE_OPENAI;
        else if (s && strcmp(s, "llama.cpp") == 0)
            ro->kind = WISP_REMOTE_LLAMACPP;
        else
            return bad(err, "kind", "\"openai\" or \"llama.cpp\"");
    }
    static const char *const tmo[] = {"connect_timeout_ms", "idle_timeout_ms"};
    long *dst[] = {&ro->connect_timeout_ms, &ro->idle_timeout_ms};
    for (int i = 0; i < 2; i++)
        if ((v = json_object_get(o, tmo[i]))) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > MAX_TIMEOUT_MS)
                return bad(err, tmo[i], "an integer from 1 to 3600000");
            *dst[i] = (long)json_integer_value(v);
        }
    return 0;
}

/* --remote's list, split into urls that point into *buf, a copy of the
 * list the caller frees once wisp_remote_open has copied the URLs. */
static int split_cli(const wisp_remote_load *o, char **buf, const char **urls, int *n,
                     wisp_remote_opts *ro, wisp_err *err)
{
    *buf = strdup(o->cli_urls ? o->cli_urls : "");
    if (!*buf)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    *n = 0;
    for (char *save = NULL, *t = strtok_r(*buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= WISP_REMOTE_MAX_URLS)
            return wisp_err_set(err, WISP_E_INVALID, "--remote: at most %d URLs",
                                WISP_REMOTE_MAX_URLS);
        urls[(*n)++] = t;
    }
    if (*n == 0)
        return wisp_err_set(err, WISP_E_INVALID, "--remote: no URL");
    ro->kind = o->cli_kind && strcmp(o->cli_kind, "llama.cpp") == 0 ? WISP_REMOTE_LLAMACPP
                                                                    : WISP_REMOTE_OPENAI;
    ro->model = o->cli_model;
    return 0;
}

static int open_tokenizer(const char *path, wisp_runtime *rt, wisp_err *err)
{
    struct stat st;
    size_t len = strlen(path);
    bool hf = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ||
              (len >= 5 && strcmp(path + len - 5, ".json") == 0);
    if (hf)
        return wisp_tokenizer_from_hf(path, &rt->tok, err);
    wisp_model_open_opts mo = {.vocab_only = true};
    int rc = wisp_model_open(path, &mo, &rt->model, err);
    if (rc)
        return rc;
    rt->cfg = wisp_model_get_config(rt->model);
    const wisp_gguf *g = wisp_model_get_gguf(rt->model);
    if (!g)
        return wisp_tokenizer_from_hf(wisp_model_get_hf_dir(rt->model), &rt->tok, err);
    return wisp_tokenizer_from_gguf(g, &rt->tok, err);
}

/* A count a server reported, 0 (unknown) when it is not in 1..max: a
 * server's word must not overflow an int or ask for an absurd context. */
static int server_count(const json_t *v, json_int_t max)
{
    json_int_t x = json_integer_value(v);
    return x >= 1 && x <= max ? (int)x : 0;
}

/* What the servers say about the model: its name and context length. */
static void read_models(wisp_remote *r, const json_t *ans, int *n_ctx, int *n_vocab)
{
    const json_t *m = json_array_get(json_object_get(ans, "data"), 0);
    const char *id = json_string_value(json_object_get(m, "id"));
    if (id && !wisp_remote_model(r))
        wisp_remote_set_model(r, id);
    const json_t *v = json_object_get(m, "max_model_len"); /* vLLM */
    const json_t *meta = json_object_get(m, "meta");       /* llama-server */
    if (!json_is_integer(v))
        v = json_object_get(meta, "n_ctx_train");
    if (json_is_integer(v) && *n_ctx == 0)
        *n_ctx = server_count(v, WISP_RUNTIME_MAX_CTX);
    v = json_object_get(meta, "n_vocab");
    if (json_is_integer(v) && *n_vocab == 0)
        *n_vocab = server_count(v, INT32_MAX);
}

static int probe(wisp_remote *r, int *n_ctx, int *n_vocab, wisp_err *err)
{
    int ok = 0;
    wisp_err first = {0};
    for (int i = 0; i < wisp_remote_n_servers(r); i++) {
        json_t *ans = NULL;
        wisp_err e = {0};
        if (wisp_remote_call_sync(r, i, "/v1/models", NULL, &ans, &e) == 0 &&
            json_is_array(json_object_get(ans, "data"))) {
            read_models(r, ans, n_ctx, n_vocab);
            /* llama-server's slots may be smaller than the training context. */
            json_t *props = NULL;
            if (wisp_remote_get_kind(r) == WISP_REMOTE_LLAMACPP &&
                wisp_remote_call_sync(r, i, "/props", NULL, &props, &e) == 0) {
                const json_t *c =
                    json_object_get(json_object_get(props, "default_generation_settings"), "n_ctx");
                if (json_is_integer(c) && server_count(c, WISP_RUNTIME_MAX_CTX) > 0)
                    *n_ctx = server_count(c, WISP_RUNTIME_MAX_CTX);
            }
            json_decref(props);
            ok++;
        } else {
            if (!e.code)
                wisp_err_set(&e, WISP_E_REMOTE, "%s/v1/models: not a model list",
                             wisp_remote_url(r, i));
            WISP_LOGW("remote: %s", e.msg);
            if (!first.code)
                first = e;
        }
        json_decref(ans);
    }
    if (ok == 0) {
        *err = first;
        err->code = WISP_E_REMOTE;
        wisp_err_prefix(err, "no remote server answered");
        return WISP_E_REMOTE;
    }
    return 0;
}

int wisp_runtime_open_remote(const wisp_remote_load *o, wisp_runtime **out, wisp_err *err)
{
    double t0 = wisp_now_ms();
    const char *urls[WISP_REMOTE_MAX_URLS];
    char *cli = NULL;
    int n = 0;
    const char *key_env = o->cli_key_env;
    wisp_remote_opts ro = {0};
    int rc = o->remote ? read_remote(o->remote, urls, &n, &ro, &key_env, err)
                       : split_cli(o, &cli, urls, &n, &ro, err);
    if (rc) {
        free(cli);
        return rc;
    }
    ro.urls = urls;
    ro.n_urls = n;
    if (key_env) {
        ro.api_key = getenv(key_env);
        if (!ro.api_key || !*ro.api_key) {
            free(cli);
            return wisp_err_set(err, WISP_E_INVALID,
                                "invalid params: api_key_env: the environment variable '%s' is "
                                "not set",
                                key_env);
        }
    }
    wisp_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        free(cli);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    if (o->path) {
        rc = open_tokenizer(o->path, rt, err);
        if (rc) {
            wisp_err_prefix(err, "%s: tokenizer", o->path);
            goto fail;
        }
        if (rt->model)
            wisp_file_stamp_take(o->path, &rt->stamp);
        rt->n_vocab = wisp_tokenizer_n_vocab(rt->tok);
    }
    rc = wisp_remote_open(&ro, &rt->remote, err);
    free(cli); /* the remote holds its own copies of the URLs */
    cli = NULL;
    if (rc)
        goto fail;
    int n_ctx = 0, n_vocab = 0;
    rc = probe(rt->remote, &n_ctx, &n_vocab, err);
    if (rc)
        goto fail;
    if (!rt->n_vocab)
        rt->n_vocab = n_vocab;
    rt->n_ctx = o->n_ctx > 0 ? o->n_ctx : n_ctx > 0 ? n_ctx : DEFAULT_REMOTE_CTX;
    snprintf(rt->device, sizeof rt->device, "remote");
    rt->load_ms = wisp_now_ms() - t0;
    WISP_LOGI("remote backend: %d server%s (%s), model %s, n_ctx %d, tokenizer %s", n,
              n == 1 ? "" : "s", wisp_remote_kind_name(ro.kind),
              wisp_remote_model(rt->remote) ? wisp_remote_model(rt->remote) : "(unnamed)",
              rt->n_ctx, rt->tok ? "local" : "the servers'");
    *out = rt;
    return 0;
fail:
    free(cli);
    wisp_runtime_close(rt);
    return rc;
}

json_t *wisp_runtime_remote_info(const wisp_runtime *rt)
{
    const char *model = wisp_remote_model(rt->remote);
    json_t *info =
        json_pack("{s:s, s:s, s:i, s:i, s:s, s:b, s:f}", "name", model ? model : "", "architecture",
                  "remote", "n_ctx", rt->n_ctx, "vocab_size", rt->n_vocab, "device", "remote",
                  "vocab_only", 0, "load_ms", rt->load_ms);
    if (rt->model)
        json_object_set_new(info, "path", json_string(wisp_model_get_path(rt->model)));
    json_object_set_new(info, "tokenizer_local", json_boolean(rt->tok != NULL));
    json_object_set_new(info, "remote", wisp_remote_status_json(rt->remote));
    return info;
}

void wisp_serve_remote_step(wisp_runtime *rt) { wisp_remote_kick(rt->remote); }
