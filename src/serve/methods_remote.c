/*
 * methods_remote.c - generate, infill, chat, tokenize and detokenize on the
 * remote backend: see serve/remote.h.
 *
 * A handler (engine thread) builds the request body, derives the route key
 * and submits; from then on the request belongs to the backend thread,
 * which streams each piece through wisp_job_stream (the one $/stream
 * encoder) and answers the job once, in on_done. The servers always
 * stream, also when the client asked for no $/stream: the stream is what
 * lets a cancel close the connection mid-answer and what the idle timeout
 * watches.
 *
 * wisp_job_stream on the backend thread waits, as on the engine thread,
 * while stdout's queue is over its high-water mark: a client that stops
 * reading pauses every remote transfer (the servers then see TCP
 * backpressure) instead of growing memory; a cancel or shutdown ends the
 * wait.
 *
 * Infill's code rules (n_indent, t_max_predict_ms, the suffix repeat) run
 * here, as for local infill, so they mean the same on every backend; when
 * one fires the connection is closed, which stops the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "infill/code_stop.h"
#include "infill/fim_prompt.h"
#include "remote/map.h"
#include "remote/remote.h"
#include "remote/router.h"
#include "rpc/jsonutil.h"
#include "serve/gen_common.h"
#include "serve/remote.h"
#include "serve/server.h"

/* Route keys: the first 64 tokens (or 256 bytes) of a prompt name its
 * document well enough that one editor's requests keep one server's
 * prefix cache warm. */
#define KEY_TOKENS 64
#define KEY_BYTES  256

typedef enum {
    RK_GENERATE,
    RK_INFILL,
    RK_CHAT
} rkind;

typedef struct rreq {
    wisp_job *job;
    rkind kind;
    wisp_remote_api api;
    bool stream;
    bool had_stops;
    wisp_buf text, reasoning;
    json_t *tokens;
    json_t *tools; /* chat: [{name, arguments}] as the deltas build them */
    int64_t index;
    wisp_code_stop_params cp;
    bool code_rules;
    wisp_code_stop *cs;
    const char *local_finish;
    const char *finish;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    int64_t n_prompt_sent;
    double t0, t_first;
    char err[WISP_ERR_MSG_MAX];
} rreq;

static void rreq_free(rreq *q)
{
    wisp_buf_free(&q->text);
    wisp_buf_free(&q->reasoning);
    json_decref(q->tokens);
    json_decref(q->tools);
    wisp_code_stop_free(q->cs);
    free(q);
}

static rreq *rreq_new(wisp_job *job, rkind kind, wisp_remote_api api)
{
    rreq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->job = job;
    q->kind = kind;
    q->api = api;
    q->tokens = json_array();
    q->prompt_tokens = q->completion_tokens = q->cached_tokens = -1;
    q->n_prompt_sent = -1;
    q->t0 = wisp_now_ms();
    const json_t *p = wisp_job_params(job);
    const json_t *st = json_object_get(p, "stream");
    q->stream = !st || json_is_true(st);
    q->had_stops = json_array_size(json_object_get(p, "stop")) > 0;
    if (!q->tokens) {
        free(q);
        return NULL;
    }
    return q;
}

static int emit(rreq *q, const char *text, size_t len, const json_t *tokens)
{
    if (len && wisp_buf_append(&q->text, text, len))
        return WISP_E_NOMEM;
    size_t nt = json_array_size(tokens);
    /* Most pieces carry a token or a few; a server may send many at once. */
    int32_t small[64];
    int32_t *ids = nt <= sizeof small / sizeof small[0] ? small : malloc(nt * sizeof *ids);
    if (!ids)
        return WISP_E_NOMEM;
    for (size_t i = 0; i < nt; i++) {
        json_int_t t = json_integer_value(json_array_get(tokens, i));
        json_array_append_new(q->tokens, json_integer(t));
        ids[i] = (int32_t)t;
    }
    int rc = 0;
    if (q->stream && (len || nt))
        rc = wisp_job_stream(q->job, q->index++, text, len, ids, nt, NULL);
    if (ids != small)
        free(ids);
    return rc;
}

/* OpenAI streams tool calls as deltas: {index, function: {name?,
 * arguments?}} pieces of strings to join. */
static void merge_tools(rreq *q, const json_t *deltas)
{
    if (!q->tools)
        q->tools = json_array();
    size_t i;
    const json_t *d;
    json_array_foreach(deltas, i, d)
    {
        const json_t *ix = json_object_get(d, "index");
        size_t at = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i;
        if (at > 1024)
            continue;
        while (json_array_size(q->tools) <= at)
            json_array_append_new(q->tools, json_pack("{s:s, s:s}", "name", "", "arguments", ""));
        json_t *acc = json_array_get(q->tools, at);
        const json_t *fn = json_object_get(d, "function");
        static const char *const parts[] = {"name", "arguments"};
        for (int k = 0; k < 2; k++) {
            const json_t *v = json_object_get(fn, parts[k]);
            if (!json_is_string(v))
                continue;
            wisp_buf b = WISP_BUF_INIT;
            const json_t *old = json_object_get(acc, parts[k]);
            if (wisp_buf_append(&b, json_string_value(old), json_string_length(old)) == 0 &&
                wisp_buf_append(&b, json_string_value(v), json_string_length(v)) == 0)
                json_object_set_new(acc, parts[k], wisp_json_string_lossy(b.data, b.len));
            wisp_buf_free(&b);
        }
    }
}

static int on_json(void *ud, json_t *v)
{
    rreq *q = ud;
    wisp_remote_piece pc;
    wisp_err err = {0};
    if (wisp_remote_parse_event(q->api, v, q->had_stops, &pc, &err)) {
        snprintf(q->err, sizeof q->err, "%s", err.msg);
        return WISP_E_REMOTE;
    }
    if (pc.error) {
        snprintf(q->err, sizeof q->err, "the remote server failed: %.400s", pc.error);
        return WISP_E_REMOTE;
    }
    if (pc.prompt_tokens >= 0)
        q->prompt_tokens = pc.prompt_tokens;
    if (pc.completion_tokens >= 0)
        q->completion_tokens = pc.completion_tokens;
    if (pc.cached_tokens >= 0)
        q->cached_tokens = pc.cached_tokens;
    if (pc.finish)
        q->finish = pc.finish;
    if ((pc.len || pc.reasoning_len || pc.tool_calls) && q->t_first == 0)
        q->t_first = wisp_now_ms();
    if (pc.reasoning_len && wisp_buf_append(&q->reasoning, pc.reasoning, pc.reasoning_len))
        return WISP_E_NOMEM;
    if (pc.tool_calls)
        merge_tools(q, pc.tool_calls);
    const char *out = pc.text;
    size_t out_len = pc.len;
    if (q->code_rules && pc.len) {
        /* The time rule counts from the first generated text, as llama.cpp's. */
        if (!q->cs) {
            q->cp.t_start_ms = (int64_t)wisp_now_ms();
            if (wisp_code_stop_create(&q->cp, &q->cs, &err))
                return WISP_E_NOMEM;
        }
        wisp_code_stop_out co;
        if (wisp_code_stop_feed(q->cs, pc.text, pc.len, (int64_t)wisp_now_ms(), &co, &err)) {
            snprintf(q->err, sizeof q->err, "%s", err.msg);
            return err.code ? err.code : WISP_E_INTERNAL;
        }
        out = co.text;
        out_len = co.len;
        if (co.reason != WISP_STOP_REASON_NONE)
            q->local_finish = wisp_stop_reason_name(co.reason);
    }
    int rc = emit(q, out, out_len, pc.tokens);
    if (rc)
        return rc;
    return q->local_finish ? WISP_REMOTE_STOP : 0;
}

static bool is_cancelled(void *ud) { return wisp_job_cancelled(((rreq *)ud)->job); }

static json_t *result_json(rreq *q, const wisp_remote_done *d)
{
    double now = wisp_now_ms();
    double total = now - q->t0;
    double ttft = q->t_first > 0 ? q->t_first - q->t0 : total;
    int64_t n_prompt = q->prompt_tokens >= 0 ? q->prompt_tokens : q->n_prompt_sent;
    int64_t n_gen =
        q->completion_tokens >= 0 ? q->completion_tokens : (int64_t)json_array_size(q->tokens);
    double decode_ms = total - ttft;
    json_t *usage =
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)(n_prompt > 0 ? n_prompt : 0),
                  "completion_tokens", (json_int_t)(n_gen > 0 ? n_gen : 0), "cached_tokens",
                  (json_int_t)(q->cached_tokens > 0 ? q->cached_tokens : 0));
    json_t *timings =
        json_pack("{s:f, s:f, s:f, s:f}", "ttft_ms", ttft, "total_ms", total,
                  "prefill_tokens_per_s",
                  ttft > 0 && n_prompt > 0 ? (double)n_prompt * 1000.0 / ttft : 0.0,
                  "decode_tokens_per_s",
                  decode_ms > 0 && n_gen > 1 ? (double)(n_gen - 1) * 1000.0 / decode_ms : 0.0);
    const char *finish = q->local_finish ? q->local_finish : q->finish ? q->finish : "eog";
    json_t *res =
        json_pack("{s:o, s:O, s:s, s:o, s:o}", "text",
                  wisp_json_string_lossy(q->text.data ? q->text.data : "", q->text.len), "tokens",
                  q->tokens, "finish_reason", finish, "usage", usage, "timings", timings);
    json_object_set_new(res, "remote",
                        json_pack("{s:s?, s:i}", "url", d->url, "attempts", d->attempts));
    if (q->kind == RK_CHAT) {
        json_t *msg =
            json_pack("{s:s, s:o}", "role", "assistant", "content",
                      wisp_json_string_lossy(q->text.data ? q->text.data : "", q->text.len));
        if (q->reasoning.len)
            json_object_set_new(msg, "reasoning",
                                wisp_json_string_lossy(q->reasoning.data, q->reasoning.len));
        if (json_array_size(q->tools)) {
            json_t *calls = json_array();
            size_t i;
            json_t *t;
            json_array_foreach(q->tools, i, t)
            {
                const char *a = json_string_value(json_object_get(t, "arguments"));
                json_t *args = json_loads(a ? a : "", JSON_DECODE_ANY, NULL);
                json_array_append_new(calls, json_pack("{s:s, s:{s:O, s:o}}", "type", "function",
                                                       "function", "name",
                                                       json_object_get(t, "name"), "arguments",
                                                       args ? args : json_string(a ? a : "")));
            }
            json_object_set_new(msg, "tool_calls", calls);
        }
        json_object_set_new(res, "message", msg);
    }
    return res;
}

static void on_done(void *ud, const wisp_remote_done *d)
{
    rreq *q = ud;
    int status = d->status == WISP_REMOTE_STOP ? 0 : d->status;
    if (status == 0 && q->cs && !q->local_finish) {
        wisp_code_stop_out co;
        wisp_err err = {0};
        if (wisp_code_stop_flush(q->cs, &co, &err) == 0) {
            if (co.reason != WISP_STOP_REASON_NONE)
                q->local_finish = wisp_stop_reason_name(co.reason);
            status = emit(q, co.text, co.len, NULL);
        }
    }
    if (status == 0 && !q->finish && !q->local_finish) {
        status = WISP_E_REMOTE;
        snprintf(q->err, sizeof q->err, "%s: the answer ended before the server said it was done",
                 d->url ? d->url : "remote server");
    }
    if (status == 0) {
        wisp_job_reply(q->job, result_json(q, d));
    } else {
        if (wisp_job_cancelled(q->job))
            status = WISP_E_CANCELLED;
        wisp_err err = {0};
        wisp_err_set(&err, status, "%s", q->err[0] ? q->err : d->message ? d->message : "");
        /* Token ids of a partial answer are what the server sent. */
        size_t n = json_array_size(q->tokens);
        int32_t *ids = calloc(n ? n : 1, sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(q->tokens, i));
        wisp_gen_answer_failure_n(q->job, status, &err, q->text.data, q->text.len, ids,
                                  ids ? n : 0);
        free(ids);
    }
    rreq_free(q);
}

/* Maps the sampling fields into body and makes the request's state. Takes
 * body; on failure answers the job and returns NULL. */
static rreq *prepare(wisp_job *job, rkind kind, wisp_remote_api api, json_t *body, int64_t n_sent)
{
    wisp_err err = {0};
    rreq *q = NULL;
    if (wisp_remote_map_sampling(api, wisp_job_params(job), body, &err) == 0 &&
        !(q = rreq_new(job, kind, api)))
        wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
    if (!q) {
        json_decref(body);
        wisp_job_fail(job, &err);
        return NULL;
    }
    q->n_prompt_sent = n_sent;
    return q;
}

/* Submits body for q; answers the job on failure. */
static void submit(wisp_job *job, rreq *q, const char *path, json_t *body, bool has_key,
                   uint64_t key)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    wisp_remote_call c = {
        .path = path,
        .body = body,
        .sse = true,
        .has_key = has_key,
        .key = key,
        .on_json = on_json,
        .is_cancelled = is_cancelled,
        .on_done = on_done,
        .ud = q,
    };
    wisp_err err = {0};
    int rc = wisp_remote_submit(rt->remote, &c, &err);
    json_decref(body);
    if (rc) {
        rreq_free(q);
        wisp_job_fail(job, &err);
    }
}

/* supersede first: it names the document for the client itself. */
static bool supersede_key(const json_t *p, uint64_t *key)
{
    const json_t *s = json_object_get(p, "supersede");
    return s && wisp_router_key_bytes(json_string_value(s), json_string_length(s), 4096, key);
}

static json_t *new_body(const wisp_runtime *rt)
{
    const char *model = wisp_remote_model(rt->remote);
    json_t *b = json_object();
    if (model)
        json_object_set_new(b, "model", json_string(model));
    return b;
}

static wisp_remote_api completion_api(const wisp_runtime *rt)
{
    return wisp_remote_get_kind(rt->remote) == WISP_REMOTE_LLAMACPP ? WISP_RAPI_LCPP
                                                                    : WISP_RAPI_OAI_COMPLETION;
}

static const char *completion_path(wisp_remote_api api)
{
    return api == WISP_RAPI_LCPP ? "/completion" : "/v1/completions";
}

static json_t *ids_json(const wisp_tokens *t)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(a, json_integer(t->ids[i]));
    return a;
}

/* ---------------------------------------------------------------- generate */

void wisp_remote_m_generate(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    const json_t *prompt = json_object_get(p, "prompt");
    wisp_remote_api api = completion_api(rt);
    wisp_err err = {0};
    json_t *body = new_body(rt);
    uint64_t key = 0;
    bool has_key = supersede_key(p, &key);
    int64_t n_sent = -1;
    if (json_is_string(prompt) && !rt->tok) {
        /* The servers tokenize: the text goes as it is. */
        json_object_set(body, "prompt", (json_t *)prompt);
        if (!has_key)
            has_key = json_string_length(prompt) >= KEY_BYTES / 4 &&
                      wisp_router_key_bytes(json_string_value(prompt), json_string_length(prompt),
                                            KEY_BYTES, &key);
    } else {
        wisp_tokens toks = {0};
        int rc = rt->tok ? wisp_gen_prompt_tokens(rt, "prompt", prompt, true, &toks, &err) : 0;
        if (!rt->tok) {
            /* Token ids without a local vocabulary: sent as they are. */
            size_t i;
            const json_t *e;
            json_array_foreach(prompt, i, e)
            {
                if (!json_is_integer(e)) {
                    rc = wisp_err_set(&err, WISP_E_INVALID,
                                      "invalid params: 'prompt' mixes text and token ids; the "
                                      "remote backend without a local tokenizer takes one kind");
                    break;
                }
                int32_t id = (int32_t)json_integer_value(e);
                if (wisp_tokens_push(&toks, id)) {
                    rc = wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
                    break;
                }
            }
        }
        if (rc) {
            wisp_tokens_free(&toks);
            json_decref(body);
            wisp_job_fail(job, &err);
            return;
        }
        json_object_set_new(body, "prompt", ids_json(&toks));
        n_sent = (int64_t)toks.n;
        if (!has_key)
            has_key = wisp_router_key_tokens(toks.ids, toks.n, KEY_TOKENS, 1, &key);
        wisp_tokens_free(&toks);
    }
    if (api == WISP_RAPI_LCPP)
        json_object_set_new(body, "cache_prompt", json_true());
    rreq *q = prepare(job, RK_GENERATE, api, body, n_sent);
    if (q)
        submit(job, q, completion_path(api), body, has_key, key);
}

static void fail_invalid(wisp_job *job, json_t *body, const char *field, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "invalid params: '%s' is not supported by the remote backend (%s)",
             field, why);
    json_decref(body);
    wisp_job_error(job, WISP_RPC_INVALID_PARAMS, msg, NULL);
}

/* ---------------------------------------------------------------- infill */

static const char *str_of(const json_t *p, const char *key, size_t *len)
{
    const json_t *v = json_object_get(p, key);
    *len = v ? json_string_length(v) : 0;
    return v ? json_string_value(v) : "";
}

/* The FIM prompt built here with the local vocabulary's markers, for
 * servers that only complete. */
static int local_fim(const wisp_runtime *rt, const json_t *p, int max_tokens, json_t *body,
                     int64_t *n_sent, wisp_err *err)
{
    wisp_infill_req req = {0};
    req.prefix = str_of(p, "input_prefix", &req.prefix_len);
    req.suffix = str_of(p, "input_suffix", &req.suffix_len);
    req.prompt = str_of(p, "prompt", &req.prompt_len);
    const json_t *v;
    req.filename = (v = json_object_get(p, "filename")) ? json_string_value(v) : NULL;
    req.repo_name = (v = json_object_get(p, "repo_name")) ? json_string_value(v) : NULL;
    v = json_object_get(p, "fim_order");
    req.order = v && strcmp(json_string_value(v), "spm") == 0 ? WISP_FIM_SPM : WISP_FIM_PSM;
    req.n_ctx = rt->n_ctx;
    req.max_tokens = max_tokens;
    const json_t *extra = json_object_get(p, "input_extra");
    size_t n = json_array_size(extra);
    wisp_infill_chunk *chunks = calloc(n ? n : 1, sizeof *chunks);
    if (!chunks)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(extra, i);
        const json_t *fn = json_object_get(c, "filename"), *tx = json_object_get(c, "text");
        if (!json_is_object(c) || !json_is_string(tx) || (fn && !json_is_string(fn))) {
            free(chunks);
            return wisp_err_set(err, WISP_E_INVALID,
                                "'input_extra[%zu]' must be {\"filename\": string, \"text\": "
                                "string}",
                                i);
        }
        chunks[i].filename = fn ? json_string_value(fn) : NULL;
        chunks[i].text = json_string_value(tx);
        chunks[i].text_len = json_string_length(tx);
    }
    req.extra = chunks;
    req.n_extra = n;
    wisp_infill_prompt pr;
    memset(&pr, 0, sizeof pr);
    int rc = wisp_infill_build(rt->tok, &req, &pr, err);
    free(chunks);
    if (rc == 0) {
        json_object_set_new(body, "prompt", ids_json(&pr.tokens));
        *n_sent = (int64_t)pr.tokens.n;
    }
    wisp_infill_prompt_free(&pr);
    return rc;
}

void wisp_remote_m_infill(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    bool lcpp = wisp_remote_get_kind(rt->remote) == WISP_REMOTE_LLAMACPP;
    wisp_remote_api api = lcpp ? WISP_RAPI_LCPP : WISP_RAPI_OAI_COMPLETION;
    json_t *body = new_body(rt);
    wisp_err err = {0};
    int64_t n_sent = -1;
    if (lcpp) {
        /* llama-server builds the FIM prompt with its own vocabulary. */
        const json_t *order = json_object_get(p, "fim_order");
        if (order && strcmp(json_string_value(order), "psm") != 0) {
            fail_invalid(job, body, "fim_order", "llama.cpp /infill builds prefix-suffix-middle");
            return;
        }
        if (json_object_get(p, "repo_name")) {
            fail_invalid(job, body, "repo_name", "llama.cpp /infill");
            return;
        }
        static const char *const pass[] = {"input_prefix", "input_suffix", "input_extra", "prompt"};
        for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
            const json_t *v = json_object_get(p, pass[i]);
            if (v)
                json_object_set(body, pass[i], (json_t *)v);
        }
        json_object_set_new(body, "cache_prompt", json_true());
    } else {
        if (!rt->tok) {
            json_decref(body);
            wisp_job_error(job, WISP_RPC_INVALID_PARAMS,
                           "infill on an OpenAI-compatible server needs a local tokenizer with "
                           "FIM tokens: model/load with 'path' beside 'remote'",
                           NULL);
            return;
        }
        const json_t *mt = json_object_get(p, "max_tokens");
        int max_tokens = mt ? (int)json_integer_value(mt) : WISP_REMOTE_DEFAULT_MAX_TOKENS;
        if (local_fim(rt, p, max_tokens, body, &n_sent, &err)) {
            json_decref(body);
            wisp_job_fail(job, &err);
            return;
        }
    }
    rreq *q = prepare(job, RK_INFILL, api, body, n_sent);
    if (!q)
        return;
    size_t suffix_len;
    const char *suffix = str_of(p, "input_suffix", &suffix_len);
    /* The suffix points into the job's params, which outlive the request. */
    q->cp = (wisp_code_stop_params){
        .n_indent = (int32_t)json_integer_value(json_object_get(p, "n_indent")),
        .t_max_predict_ms = json_integer_value(json_object_get(p, "t_max_predict_ms")),
        .suffix = suffix,
        .suffix_len = suffix_len,
    };
    q->code_rules = true;
    uint64_t key = 0;
    bool has_key = supersede_key(p, &key);
    const json_t *fn = json_object_get(p, "filename");
    if (!has_key && fn)
        has_key = wisp_router_key_bytes(json_string_value(fn), json_string_length(fn), 4096, &key);
    size_t plen;
    const char *prefix = str_of(p, "input_prefix", &plen);
    if (!has_key && plen >= KEY_BYTES / 4)
        has_key = wisp_router_key_bytes(prefix, plen, KEY_BYTES, &key);
    submit(job, q, lcpp ? "/infill" : "/v1/completions", body, has_key, key);
}

/* ---------------------------------------------------------------- chat */

void wisp_remote_m_chat(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    const json_t *msgs = json_object_get(p, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS,
                       "invalid params: 'messages' must be a non-empty array", NULL);
        return;
    }
    json_t *body = new_body(rt);
    /* The server renders the conversation with its own template. */
    static const char *const local_only[] = {"template", "bos_token", "eos_token", "now"};
    for (size_t i = 0; i < sizeof local_only / sizeof local_only[0]; i++)
        if (json_object_get(p, local_only[i])) {
            fail_invalid(job, body, local_only[i], "the server applies its own chat template");
            return;
        }
    const json_t *agp = json_object_get(p, "add_generation_prompt");
    if (agp && !json_is_true(agp)) {
        fail_invalid(job, body, "add_generation_prompt", "a chat completion always answers");
        return;
    }
    json_object_set(body, "messages", (json_t *)msgs);
    const json_t *tools = json_object_get(p, "tools");
    if (json_array_size(tools) > 0)
        json_object_set(body, "tools", (json_t *)tools);
    const json_t *kw = json_object_get(p, "template_kwargs");
    if (kw)
        json_object_set(body, "chat_template_kwargs", (json_t *)kw);
    rreq *q = prepare(job, RK_CHAT, WISP_RAPI_OAI_CHAT, body, -1);
    if (!q)
        return;
    /* One conversation keeps its first messages turn after turn. */
    uint64_t key = 0;
    bool has_key = supersede_key(p, &key);
    if (!has_key) {
        json_t *head = json_array();
        for (size_t i = 0; i < 2 && i < json_array_size(msgs); i++)
            json_array_append(head, json_array_get(msgs, i));
        char *s = json_dumps(head, JSON_COMPACT | JSON_SORT_KEYS);
        has_key = s && wisp_router_key_bytes(s, strlen(s), 1u << 20, &key);
        free(s);
        json_decref(head);
    }
    submit(job, q, "/v1/chat/completions", body, has_key, key);
}

/* ---------------------------------------------------------------- tokenize */

typedef struct tk_req {
    wisp_job *job;
    bool detok;
    json_t *answer;
} tk_req;

static int tk_json(void *ud, json_t *v)
{
    tk_req *t = ud;
    json_decref(t->answer);
    t->answer = json_incref(v);
    return 0;
}

static void tk_done(void *ud, const wisp_remote_done *d)
{
    tk_req *t = ud;
    if (d->status) {
        wisp_err err = {0};
        wisp_err_set(&err, d->status, "%s", d->message ? d->message : "");
        wisp_job_fail(t->job, &err);
    } else if (t->detok) {
        const json_t *s = json_object_get(t->answer, "content"); /* llama.cpp */
        if (!s)
            s = json_object_get(t->answer, "prompt"); /* vLLM */
        if (json_is_string(s))
            wisp_job_reply(t->job, json_pack("{s:O}", "text", s));
        else
            wisp_job_error(t->job, WISP_RPC_REMOTE_ERROR,
                           "the remote server's /detokenize answer has no text", NULL);
    } else {
        const json_t *a = json_object_get(t->answer, "tokens");
        bool ok = json_is_array(a);
        size_t i;
        const json_t *e;
        json_array_foreach(a, i, e) ok = ok && json_is_integer(e);
        if (ok)
            wisp_job_reply(t->job, json_pack("{s:O}", "tokens", a));
        else
            wisp_job_error(t->job, WISP_RPC_REMOTE_ERROR,
                           "the remote server's /tokenize answer has no token ids", NULL);
    }
    json_decref(t->answer);
    free(t);
}

static bool tk_cancelled(void *ud) { return wisp_job_cancelled(((tk_req *)ud)->job); }

static void tk_submit(wisp_job *job, bool detok)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    bool lcpp = wisp_remote_get_kind(rt->remote) == WISP_REMOTE_LLAMACPP;
    json_t *body = lcpp ? json_object() : new_body(rt);
    if (detok) {
        json_object_set(body, "tokens", json_object_get(p, "tokens"));
    } else {
        const json_t *as = json_object_get(p, "add_special");
        const json_t *ps = json_object_get(p, "parse_special");
        json_object_set(body, lcpp ? "content" : "prompt", json_object_get(p, "text"));
        json_object_set_new(body, lcpp ? "add_special" : "add_special_tokens",
                            json_boolean(json_is_true(as)));
        if (lcpp)
            json_object_set_new(body, "parse_special", json_boolean(json_is_true(ps)));
        else if (json_is_true(ps)) {
            fail_invalid(job, body, "parse_special", "OpenAI-compatible /tokenize");
            return;
        }
    }
    tk_req *t = calloc(1, sizeof *t);
    wisp_err err = {0};
    int rc = t ? 0 : wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
    if (!rc) {
        t->job = job;
        t->detok = detok;
        wisp_remote_call c = {
            .path = detok ? "/detokenize" : "/tokenize",
            .body = body,
            .on_json = tk_json,
            .is_cancelled = tk_cancelled,
            .on_done = tk_done,
            .ud = t,
        };
        rc = wisp_remote_submit(rt->remote, &c, &err);
        if (rc)
            free(t);
    }
    json_decref(body);
    if (rc)
        wisp_job_fail(job, &err);
}

void wisp_remote_m_tokenize(wisp_job *job) { tk_submit(job, false); }
void wisp_remote_m_detokenize(wisp_job *job) { tk_submit(job, true); }
