/*
 * gen_common.c - generation requests between the scheduler and JSON-RPC:
 * see gen_common.h.
 */
#include "serve/gen_common.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gen/pipeline.h"
#include "rpc/codes.h"
#include "rpc/jsonutil.h"
#include "serve/server.h"

/* ---------------------------------------------------------------- params */

static double num(const json_t *p, const char *key, double dflt)
{
    const json_t *v = json_object_get(p, key);
    return v ? json_number_value(v) : dflt;
}

/* True when the bans (bias false, -inf) cover every token id: sampling would
 * then have nothing to choose from. */
static bool bans_everything(const wisp_logit_bias *bias, size_t n, int n_vocab)
{
    if (n < (size_t)n_vocab)
        return false;
    unsigned char *banned = calloc((size_t)n_vocab, 1);
    if (!banned)
        return false;
    int left = n_vocab;
    for (size_t i = 0; i < n; i++)
        if (isinf(bias[i].bias) && bias[i].bias < 0 && !banned[bias[i].token]) {
            banned[bias[i].token] = 1;
            left--;
        }
    free(banned);
    return left == 0;
}

/* The sampler's fields a request may set, by param name; a field not
 * given keeps wisp_sampler_params_default's value. The params table has
 * checked each value's type and range. */
static const struct sampling_field {
    const char *key;
    size_t off;
    bool is_int;
} sampling_fields[] = {
    {"temperature", offsetof(wisp_sampler_params, temperature), false},
    {"top_k", offsetof(wisp_sampler_params, top_k), true},
    {"top_p", offsetof(wisp_sampler_params, top_p), false},
    {"min_p", offsetof(wisp_sampler_params, min_p), false},
    {"typical_p", offsetof(wisp_sampler_params, typical_p), false},
    {"repeat_penalty", offsetof(wisp_sampler_params, repeat_penalty), false},
    {"presence_penalty", offsetof(wisp_sampler_params, presence_penalty), false},
    {"frequency_penalty", offsetof(wisp_sampler_params, frequency_penalty), false},
    {"repeat_last_n", offsetof(wisp_sampler_params, penalty_last_n), true},
    {"n_probs", offsetof(wisp_sampler_params, n_probs), true},
};

static void sampling_from_json(const json_t *p, wisp_sampler_params *s)
{
    wisp_sampler_params_default(s);
    for (size_t i = 0; i < sizeof sampling_fields / sizeof sampling_fields[0]; i++) {
        const struct sampling_field *f = &sampling_fields[i];
        const json_t *v = json_object_get(p, f->key);
        if (!v)
            continue;
        char *at = (char *)s + f->off;
        if (f->is_int) {
            int x = (int)json_number_value(v);
            memcpy(at, &x, sizeof x);
        } else {
            float x = (float)json_number_value(v);
            memcpy(at, &x, sizeof x);
        }
    }
}

int wisp_gen_spec_from_json(const wisp_runtime *rt, const json_t *p, wisp_gen_spec *out,
                            wisp_err *err)
{
    memset(out, 0, sizeof *out);
    wisp_sampler_params *s = &out->sampling;
    sampling_from_json(p, s);
    /* Without a seed each request draws one (reported in the result, so any
     * output can be reproduced); with a seed the same request gives the
     * same tokens. */
    const json_t *seed = json_object_get(p, "seed");
    if (seed) {
        s->seed = (uint64_t)json_integer_value(seed);
    } else {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
        s->seed = r & ((UINT64_C(1) << 53) - 1); /* exact in every JSON reader */
    }
    out->max_tokens = (int)num(p, "max_tokens", 256);
    out->priority = (int)num(p, "priority", 0);
    const json_t *st = json_object_get(p, "stream");
    out->stream = st ? json_is_true(st) : true;

    const json_t *bias = json_object_get(p, "logit_bias");
    if (bias) {
        /* [[token, bias], ...]; a bias of false bans the token. */
        size_t n = json_array_size(bias);
        out->bias = calloc(n ? n : 1, sizeof *out->bias);
        if (!out->bias)
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(bias, i);
            const json_t *id = json_array_get(e, 0), *b = json_array_get(e, 1);
            if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(id) ||
                !(json_is_number(b) || json_is_false(b))) {
                wisp_gen_spec_free(out);
                return wisp_err_set(err, WISP_E_INVALID,
                                    "'logit_bias[%zu]' must be [token, number or false]", i);
            }
            json_int_t t = json_integer_value(id);
            if (t < 0 || t >= rt->n_vocab) {
                wisp_gen_spec_free(out);
                return wisp_err_set(err, WISP_E_INVALID,
                                    "'logit_bias[%zu]': token %lld is outside the vocabulary "
                                    "(0..%d)",
                                    i, (long long)t, rt->n_vocab - 1);
            }
            out->bias[i].token = (int32_t)t;
            out->bias[i].bias = json_is_false(b) ? -INFINITY : (float)json_number_value(b);
        }
        s->logit_bias = out->bias;
        s->n_logit_bias = (int)n;
        if (bans_everything(out->bias, n, rt->n_vocab)) {
            wisp_gen_spec_free(out);
            return wisp_err_set(err, WISP_E_INVALID,
                                "'logit_bias' bans all %d tokens of the vocabulary: nothing is "
                                "left to sample",
                                rt->n_vocab);
        }
    }
    const json_t *stops = json_object_get(p, "stop");
    size_t ns = json_array_size(stops);
    if (ns) {
        out->stops = calloc(ns, sizeof(char *));
        if (!out->stops) {
            wisp_gen_spec_free(out);
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < ns; i++) {
            const char *v = json_string_value(json_array_get(stops, i));
            if (!v || !*v) {
                out->n_stops = (int)i;
                wisp_gen_spec_free(out);
                return wisp_err_set(err, WISP_E_INVALID, "'stop[%zu]' must be a non-empty string",
                                    i);
            }
            /* The matcher takes C strings: a NUL would cut the string short
             * and stop on its prefix. */
            if (strlen(v) != json_string_length(json_array_get(stops, i))) {
                out->n_stops = (int)i;
                wisp_gen_spec_free(out);
                return wisp_err_set(err, WISP_E_INVALID,
                                    "'stop[%zu]' holds a NUL character (\\u0000), which stop "
                                    "strings cannot contain",
                                    i);
            }
            out->stops[i] = strdup(v);
            if (!out->stops[i]) {
                out->n_stops = (int)i;
                wisp_gen_spec_free(out);
                return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
            }
        }
        out->n_stops = (int)ns;
    }
    return 0;
}

void wisp_gen_spec_free(wisp_gen_spec *s)
{
    free(s->bias);
    for (int i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    free(s->stops);
    if (s->filter.free)
        s->filter.free(s->filter.ud);
    memset(s, 0, sizeof *s);
}

int wisp_gen_prompt_tokens(const wisp_runtime *rt, const char *field, const json_t *prompt,
                           bool text_specials, wisp_tokens *out, wisp_err *err)
{
    if (json_is_string(prompt))
        return wisp_tokenize(rt->tok, json_string_value(prompt), json_string_length(prompt),
                             text_specials, text_specials, out, err);
    size_t n = json_array_size(prompt);
    for (size_t i = 0; i < n; i++) {
        json_int_t t = json_integer_value(json_array_get(prompt, i));
        if (t < 0 || t >= rt->n_vocab)
            return wisp_err_set(err, WISP_E_INVALID,
                                "'%s': token %lld at index %zu is outside the vocabulary (0..%d)",
                                field, (long long)t, i, rt->n_vocab - 1);
        if (wisp_tokens_push(out, (int32_t)t))
            return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    return 0;
}

bool wisp_gen_require_engine(wisp_job *job, const wisp_runtime *rt)
{
    if (rt->sched)
        return true;
    wisp_job_error(job, WISP_RPC_NO_MODEL,
                   "the loaded model is vocab-only (no weights): tokenize and detokenize work, "
                   "generation needs a model with weights",
                   NULL);
    return false;
}

/* ---------------------------------------------------------------- JSON */

void wisp_gen_top_k(const float *logits, int n, int k, int32_t *ids)
{
    /* Insertion into a sorted k-array: k is small (<= 100), n is the vocab. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        float v = logits[i];
        if (m == k && !(v > logits[ids[k - 1]]))
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && v > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
}

json_t *wisp_gen_usage_json(const wisp_sched_usage *u)
{
    return json_pack("{s:i, s:i, s:i, s:i}", "prompt_tokens", u->prompt_tokens, "completion_tokens",
                     u->completion_tokens, "cached_tokens", u->cached_tokens, "preemptions",
                     u->preemptions);
}

json_t *wisp_gen_timings_json(const wisp_sched_usage *u)
{
    int prefilled = u->prompt_tokens - u->cached_tokens;
    double pp = u->prefill_ms > 0 ? prefilled / (u->prefill_ms / 1000.0) : 0.0;
    double tg = u->decode_ms > 0 && u->completion_tokens > 1
                    ? (u->completion_tokens - 1) / (u->decode_ms / 1000.0)
                    : 0.0;
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "ttft_ms", u->ttft_ms, "queue_ms",
                     u->queue_ms, "prefill_ms", u->prefill_ms, "decode_ms", u->decode_ms,
                     "total_ms", u->total_ms, "prefill_tokens_per_s", pp, "decode_tokens_per_s",
                     tg);
}

static json_t *ids_json(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

void wisp_gen_publish_stats(wisp_job *job)
{
    /* While a model closes (server->runtime already NULL) its requests are
     * answered from the scheduler's teardown: nothing to publish then. */
    wisp_server *s = wisp_job_server(job);
    if (!s->runtime || !s->runtime->sched)
        return;
    wisp_server_stats st;
    wisp_sched_get_stats(s->runtime->sched, &st);
    wisp_server_publish_stats(s, &st);
}

void wisp_gen_answer_failure(wisp_job *job, int status, const wisp_err *err, const char *text,
                             const int32_t *tokens, size_t n_tokens)
{
    wisp_gen_answer_failure_n(job, status, err, text, text ? strlen(text) : 0, tokens, n_tokens);
}

void wisp_gen_answer_failure_n(wisp_job *job, int status, const wisp_err *err, const char *text,
                               size_t text_len, const int32_t *tokens, size_t n_tokens)
{
    /* Length-delimited: generated text may hold NUL bytes (a vocabulary
     * token can decode to one), which JSON carries as \u0000. */
    json_t *data = json_pack("{s:o, s:o}", "text",
                             wisp_json_string_lossy(text ? text : "", text ? text_len : 0),
                             "tokens", ids_json(tokens, n_tokens));
    if (status == WISP_E_CANCELLED) {
        wisp_job_error(job, WISP_RPC_REQUEST_CANCELLED, "request cancelled", data);
        return;
    }
    wisp_err e = {0};
    if (err && err->code)
        e = *err;
    else
        wisp_err_set(&e, status, "%s", wisp_code_message(status));
    wisp_job_error(job, wisp_rpc_code_from_wisp(e.code), e.msg, data);
}

/* ---------------------------------------------------------------- requests */

/* One generation between the scheduler and its job: the text side is the
 * pipeline (gen/pipeline.h); this adds sampling, per-token probabilities
 * and the JSON of the stream pieces and the answer. */
typedef struct gen_req {
    wisp_job *job;
    wisp_runtime *rt;
    wisp_sampler *sampler;
    wisp_pipeline *pipe;
    wisp_gen_filter filter;
    int n_probs;
    uint64_t seed;           /* reported in the result */
    wisp_token_logprob *top; /* n_probs entries, the last sample's */
    wisp_sample last;
    json_t *probs;   /* per generated token, when n_probs > 0 */
    wisp_err failed; /* a callback's error, answered at the end */
} gen_req;

/* A piece of the output as $/stream, with the probabilities of its tokens. */
static int gen_emit(void *ud, const wisp_gen_piece *pc)
{
    gen_req *r = ud;
    json_t *slice = NULL;
    if (r->probs) {
        slice = json_array();
        for (size_t i = 0; slice && i < pc->n_tokens; i++)
            json_array_append(slice, json_array_get(r->probs, pc->token_from + i));
    }
    return wisp_job_stream(r->job, pc->index, pc->text, pc->len, pc->tokens, pc->n_tokens, slice);
}

static int32_t gen_sample(void *ud, float *logits, int n_vocab)
{
    gen_req *r = ud;
    (void)n_vocab;
    r->last.top = r->top;
    wisp_sampler_sample(r->sampler, logits, &r->last);
    return r->last.token;
}

/* A log-probability; a token of probability 0 (banned) has -inf, which
 * JSON cannot carry: it is null. */
static json_t *logprob_json(float lp) { return isfinite(lp) ? json_real((double)lp) : json_null(); }

static json_t *token_logprob(int32_t token, float lp)
{
    json_t *o = json_object();
    json_object_set_new(o, "token", json_integer(token));
    json_object_set_new(o, "logprob", logprob_json(lp));
    return o;
}

/* One entry per generated token, always. */
static json_t *prob_entry(const gen_req *r, int32_t token)
{
    json_t *top = json_array();
    for (int i = 0; top && i < r->last.n_top; i++)
        json_array_append_new(top, token_logprob(r->top[i].token, r->top[i].logprob));
    json_t *e = token_logprob(token, r->last.logprob);
    if (!e || !top) {
        json_decref(top);
        json_decref(e);
        return NULL;
    }
    json_object_set_new(e, "top", top);
    return e;
}

static bool gen_on_token(void *ud, int32_t token)
{
    gen_req *r = ud;
    wisp_sampler_accept(r->sampler, token);
    if (r->probs && json_array_append_new(r->probs, prob_entry(r, token)) < 0) {
        wisp_err_set(&r->failed, WISP_E_NOMEM, "out of memory");
        return false;
    }
    bool more;
    if (wisp_pipeline_token(r->pipe, token, &more, &r->failed) < 0)
        return false;
    return more;
}

static bool gen_is_cancelled(void *ud) { return wisp_job_cancelled(((gen_req *)ud)->job); }

static void gen_free(gen_req *r)
{
    wisp_sampler_free(r->sampler);
    wisp_pipeline_free(r->pipe);
    if (r->filter.free)
        r->filter.free(r->filter.ud);
    free(r->top);
    json_decref(r->probs);
    free(r);
}

static void gen_on_finish(void *ud, int status, const wisp_sched_usage *usage, const wisp_err *err)
{
    gen_req *r = ud;
    wisp_gen_publish_stats(r->job);
    wisp_err e = {0};
    if (status == 0 && r->failed.code) {
        status = r->failed.code;
        err = &r->failed;
    }
    int rc = wisp_pipeline_end(r->pipe, status, &e);
    if (rc != status && rc != WISP_E_CANCELLED)
        err = &e; /* releasing the held text failed */
    size_t len, n_tokens;
    const char *text = wisp_pipeline_text(r->pipe, &len);
    const int32_t *tokens = wisp_pipeline_tokens(r->pipe, &n_tokens);
    if (rc != 0) {
        /* WISP_E_CANCELLED with the whole output when a cancel raced the
         * last piece (see pipeline.h). */
        wisp_gen_answer_failure_n(r->job, rc, rc == WISP_E_CANCELLED ? NULL : err, text, len,
                                  tokens, n_tokens);
        gen_free(r);
        return;
    }
    const char *reason = wisp_pipeline_reason(r->pipe);
    if (!reason)
        reason = usage->finish == WISP_SCHED_FINISH_LENGTH ? "length" : "stop";
    json_t *res = json_pack("{s:o, s:o, s:s, s:o, s:o}", "text", wisp_json_string_lossy(text, len),
                            "tokens", ids_json(tokens, n_tokens), "finish_reason", reason, "usage",
                            wisp_gen_usage_json(usage), "timings", wisp_gen_timings_json(usage));
    if (!res) {
        wisp_err_set(&e, WISP_E_NOMEM, "out of memory");
        wisp_job_fail(r->job, &e);
        gen_free(r);
        return;
    }
    json_object_set_new(res, "seed", json_integer((json_int_t)r->seed));
    if (r->probs)
        json_object_set(res, "probs", r->probs);
    if (r->filter.annotate)
        r->filter.annotate(r->filter.ud, res);
    wisp_job_reply(r->job, res);
    gen_free(r);
}

void wisp_gen_submit(wisp_job *job, wisp_runtime *rt, wisp_gen_spec *spec, const int32_t *prompt,
                     int n_prompt)
{
    wisp_err err = {0};
    gen_req *r = calloc(1, sizeof *r);
    if (!r) {
        wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        wisp_job_fail(job, &err);
        return;
    }
    r->job = job;
    r->rt = rt;
    r->n_probs = spec->sampling.n_probs;
    r->seed = spec->sampling.seed;
    r->filter = spec->filter;
    memset(&spec->filter, 0, sizeof spec->filter);
    wisp_pipeline_desc pd = {
        .tok = rt->tok,
        .stops = (const char *const *)spec->stops,
        .n_stops = spec->n_stops,
        .filter = {r->filter.feed, r->filter.flush, r->filter.is_eog, r->filter.ud},
        .emit = spec->stream ? gen_emit : NULL,
        .emit_ud = r,
    };
    int rc = wisp_sampler_create(&spec->sampling, rt->n_vocab, &r->sampler, &err);
    if (!rc)
        rc = wisp_pipeline_create(&pd, &r->pipe, &err);
    if (!rc && r->n_probs > 0) {
        r->top = calloc((size_t)r->n_probs, sizeof *r->top);
        r->probs = json_array();
        if (!r->top || !r->probs)
            rc = wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
    }
    if (rc) {
        wisp_job_fail(job, &err);
        gen_free(r);
        return;
    }
    /* Penalties see the prompt too, as llama.cpp's do. */
    for (int i = 0; i < n_prompt; i++)
        wisp_sampler_accept(r->sampler, prompt[i]);
    wisp_sched_request_desc d = {
        .prompt = prompt,
        .n_prompt = n_prompt,
        .max_tokens = spec->max_tokens,
        .priority = spec->priority,
        .sample = gen_sample,
        .on_token = gen_on_token,
        .is_cancelled = gen_is_cancelled,
        .on_finish = gen_on_finish,
        .ud = r,
    };
    if (spec->max_tokens == 0) {
        /* Nothing to generate: answer at once without touching the engine. */
        wisp_sched_usage u = {.prompt_tokens = n_prompt, .finish = WISP_SCHED_FINISH_LENGTH};
        gen_on_finish(r, 0, &u, NULL);
        return;
    }
    rc = wisp_sched_submit(rt->sched, &d, NULL, &err);
    if (rc) {
        wisp_job_fail(job, &err);
        gen_free(r);
    }
}
