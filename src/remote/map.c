/*
 * map.c - request fields and answer events of the remote APIs: see map.h.
 */
#include "remote/map.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *wisp_remote_api_name(wisp_remote_api api)
{
    static const char *const names[] = {"OpenAI /v1/completions", "OpenAI /v1/chat/completions",
                                        "llama.cpp /completion"};
    return names[api];
}

typedef enum {
    V_SAME,
    V_BIAS_OAI,
    V_LOCAL
} value_kind;

/* One row per wisp field: its name in each API (NULL: the API has none).
 * vLLM, SGLang and llama-server accept top_k, min_p and
 * repetition_penalty beside OpenAI's own fields. */
static const struct field_row {
    const char *wisp;
    const char *name[3]; /* by wisp_remote_api */
    value_kind kind[3];
} fields[] = {
    {"max_tokens", {"max_tokens", "max_tokens", "n_predict"}, {V_SAME, V_SAME, V_SAME}},
    {"temperature", {"temperature", "temperature", "temperature"}, {V_SAME, V_SAME, V_SAME}},
    {"top_k", {"top_k", "top_k", "top_k"}, {V_SAME, V_SAME, V_SAME}},
    {"top_p", {"top_p", "top_p", "top_p"}, {V_SAME, V_SAME, V_SAME}},
    {"min_p", {"min_p", "min_p", "min_p"}, {V_SAME, V_SAME, V_SAME}},
    {"typical_p", {NULL, NULL, "typical_p"}, {V_SAME, V_SAME, V_SAME}},
    {"repeat_last_n", {NULL, NULL, "repeat_last_n"}, {V_SAME, V_SAME, V_SAME}},
    {"repeat_penalty",
     {"repetition_penalty", "repetition_penalty", "repeat_penalty"},
     {V_SAME, V_SAME, V_SAME}},
    {"presence_penalty",
     {"presence_penalty", "presence_penalty", "presence_penalty"},
     {V_SAME, V_SAME, V_SAME}},
    {"frequency_penalty",
     {"frequency_penalty", "frequency_penalty", "frequency_penalty"},
     {V_SAME, V_SAME, V_SAME}},
    {"seed", {"seed", "seed", "seed"}, {V_SAME, V_SAME, V_SAME}},
    {"stop", {"stop", "stop", "stop"}, {V_SAME, V_SAME, V_SAME}},
    {"logit_bias", {"logit_bias", "logit_bias", "logit_bias"}, {V_BIAS_OAI, V_BIAS_OAI, V_SAME}},
    /* wisp's own: its queue order, the client's streaming and LSP tokens. */
    {"priority", {"", "", ""}, {V_LOCAL, V_LOCAL, V_LOCAL}},
    {"stream", {"", "", ""}, {V_LOCAL, V_LOCAL, V_LOCAL}},
    {"partialResultToken", {"", "", ""}, {V_LOCAL, V_LOCAL, V_LOCAL}},
    {"workDoneToken", {"", "", ""}, {V_LOCAL, V_LOCAL, V_LOCAL}},
    /* Per-token probabilities in wisp's shape are not what the servers
     * return: refused unless 0. */
    {"n_probs", {NULL, NULL, NULL}, {V_SAME, V_SAME, V_SAME}},
};

/* OpenAI's logit_bias is {"token id": bias} with bias in -100..100; a ban
 * (wisp's false) is -100. */
static json_t *bias_oai(const json_t *v)
{
    json_t *o = json_object();
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e)
    {
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_array_get(e, 0)));
        const json_t *b = json_array_get(e, 1);
        double x = json_is_false(b) ? -100.0 : json_number_value(b);
        json_object_set_new(o, key, json_real(x < -100 ? -100 : x > 100 ? 100 : x));
    }
    return o;
}

int wisp_remote_map_sampling(wisp_remote_api api, const json_t *params, json_t *body, wisp_err *err)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const struct field_row *f = &fields[i];
        const json_t *v = json_object_get(params, f->wisp);
        if (!v)
            continue;
        if (f->kind[api] == V_LOCAL)
            continue;
        if (!f->name[api]) {
            if (json_is_integer(v) && json_integer_value(v) == 0)
                continue; /* the value meaning "off" asks for nothing */
            return wisp_err_set(err, WISP_E_INVALID,
                                "invalid params: '%s' is not supported by the remote backend (%s)",
                                f->wisp, wisp_remote_api_name(api));
        }
        json_t *out = f->kind[api] == V_BIAS_OAI ? bias_oai(v) : json_deep_copy(v);
        json_object_set_new(body, f->name[api], out);
    }
    const char *mt = fields[0].name[api];
    if (!json_object_get(body, mt))
        json_object_set_new(body, mt, json_integer(WISP_REMOTE_DEFAULT_MAX_TOKENS));
    json_object_set_new(body, "stream", json_true());
    if (api != WISP_RAPI_LCPP)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    return 0;
}

static int64_t int_or(const json_t *v, int64_t dflt)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static void set_text(const json_t *v, const char **p, size_t *n)
{
    if (json_is_string(v)) {
        *p = json_string_value(v);
        *n = json_string_length(v);
    }
}

static const char *oai_finish(const char *r, bool had_stops)
{
    if (!r)
        return NULL;
    if (strcmp(r, "length") == 0)
        return "length";
    if (strcmp(r, "stop") == 0)
        return had_stops ? "stop" : "eog";
    return "eog"; /* tool_calls, content_filter, ...: the model ended */
}

static const char *lcpp_finish(const char *t)
{
    if (!t)
        return "eog";
    if (strcmp(t, "limit") == 0)
        return "length";
    if (strcmp(t, "word") == 0)
        return "stop";
    return "eog";
}

int wisp_remote_parse_event(wisp_remote_api api, const json_t *ev, bool had_stops,
                            wisp_remote_piece *out, wisp_err *err)
{
    memset(out, 0, sizeof *out);
    out->prompt_tokens = out->completion_tokens = out->cached_tokens = -1;
    out->text = "";
    out->reasoning = "";
    if (!json_is_object(ev))
        return wisp_err_set(err, WISP_E_REMOTE, "the server sent an event that is not an object");
    const json_t *e = json_object_get(ev, "error");
    if (e) {
        const char *m = json_string_value(json_object_get(e, "message"));
        out->error = m ? m : json_is_string(e) ? json_string_value(e) : "error without a message";
        return 0;
    }
    if (api == WISP_RAPI_LCPP) {
        const json_t *c = json_object_get(ev, "content");
        if (!json_is_string(c))
            return wisp_err_set(err, WISP_E_REMOTE, "the server's event has no 'content'");
        set_text(c, &out->text, &out->len);
        const json_t *t = json_object_get(ev, "tokens");
        out->tokens = json_is_array(t) ? t : NULL;
        if (json_is_true(json_object_get(ev, "stop"))) {
            out->finish = lcpp_finish(json_string_value(json_object_get(ev, "stop_type")));
            out->prompt_tokens = int_or(json_object_get(ev, "tokens_evaluated"), -1);
            out->completion_tokens = int_or(json_object_get(ev, "tokens_predicted"), -1);
            const json_t *tm = json_object_get(ev, "timings");
            out->cached_tokens = int_or(json_object_get(tm, "cache_n"), -1);
        }
        return 0;
    }
    const json_t *u = json_object_get(ev, "usage");
    if (json_is_object(u)) {
        out->prompt_tokens = int_or(json_object_get(u, "prompt_tokens"), -1);
        out->completion_tokens = int_or(json_object_get(u, "completion_tokens"), -1);
        out->cached_tokens =
            int_or(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"),
                   -1);
    }
    const json_t *choices = json_object_get(ev, "choices");
    if (!json_is_array(choices))
        return wisp_err_set(err, WISP_E_REMOTE, "the server's event has no 'choices'");
    const json_t *ch = json_array_get(choices, 0);
    if (!ch)
        return 0; /* the usage-only event that ends a stream */
    if (api == WISP_RAPI_OAI_COMPLETION) {
        set_text(json_object_get(ch, "text"), &out->text, &out->len);
    } else {
        const json_t *d = json_object_get(ch, "delta");
        if (!d)
            d = json_object_get(ch, "message");
        set_text(json_object_get(d, "content"), &out->text, &out->len);
        const json_t *r = json_object_get(d, "reasoning_content");
        if (!r)
            r = json_object_get(d, "reasoning");
        set_text(r, &out->reasoning, &out->reasoning_len);
        const json_t *tc = json_object_get(d, "tool_calls");
        out->tool_calls = json_is_array(tc) ? tc : NULL;
    }
    out->finish = oai_finish(json_string_value(json_object_get(ch, "finish_reason")), had_stops);
    return 0;
}
