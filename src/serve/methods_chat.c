/*
 * methods_chat.c - chat/render and chat: a conversation rendered with the
 * model's chat template (src/chat/, the Jinja interpreter), then generated
 * like generate does (gen_common's request, $/stream included).
 *
 * The template comes from the `template` param, else from the model
 * (GGUF tokenizer.chat_template, or a Hugging Face directory's
 * tokenizer_config.json). The context is what transformers'
 * apply_chat_template gives: messages, tools, add_generation_prompt,
 * bos_token and eos_token (the vocabulary's texts), strftime_now,
 * raise_exception, plus `template_kwargs` (enable_thinking, ...).
 *
 * chat tokenizes the rendered prompt with special tokens parsed and no BOS
 * added (the template writes it), stops at the vocabulary's end-of-turn
 * tokens and at the turn-end texts templates use, and adds `message` to the
 * result: the content, the reasoning of a <think> block apart, and tool
 * calls in the formats of chat_tools.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"
#include "model/gguf.h"
#include "model/model.h"
#include "serve/chat_tools.h"
#include "serve/gen_common.h"
#include "serve/methods.h"
#include "serve/remote.h"
#include "serve/server.h"

/* ---------------------------------------------------------------- JSON to template values */

static wisp_jv *from_json(wisp_jinja_env *env, const json_t *j, int depth)
{
    if (depth > 100)
        return wisp_jv_none(env);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        wisp_jv *d = wisp_jv_dict(env);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
            wisp_jv_dict_set(env, d, k, strlen(k), from_json(env, v, depth + 1));
        return d;
    }
    case JSON_ARRAY: {
        wisp_jv *l = wisp_jv_list(env);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) wisp_jv_list_push(env, l, from_json(env, v, depth + 1));
        return l;
    }
    case JSON_STRING: return wisp_jv_str(env, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return wisp_jv_int(env, (int64_t)json_integer_value(j));
    case JSON_REAL: return wisp_jv_float(env, json_real_value(j));
    case JSON_TRUE: return wisp_jv_bool(env, true);
    case JSON_FALSE: return wisp_jv_bool(env, false);
    default: return wisp_jv_none(env);
    }
}

/* ---------------------------------------------------------------- the template */

/* A Hugging Face directory's template: tokenizer_config.json's
 * chat_template (a string, or a list of {name, template} where "default"
 * is the one), else chat_template.jinja. Returns a malloc'd string or NULL. */
static char *hf_template(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    char *out = NULL;
    const json_t *t = cfg ? json_object_get(cfg, "chat_template") : NULL;
    if (json_is_string(t)) {
        out = strdup(json_string_value(t));
    } else if (json_is_array(t)) {
        size_t i;
        json_t *row;
        json_array_foreach(t, i, row)
        {
            const char *name = json_string_value(json_object_get(row, "name"));
            const char *text = json_string_value(json_object_get(row, "template"));
            if (name && text && !strcmp(name, "default")) {
                out = strdup(text);
                break;
            }
        }
    }
    json_decref(cfg);
    if (out)
        return out;
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    wisp_buf b = WISP_BUF_INIT;
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && !rc)
        rc = wisp_buf_append(&b, chunk, n);
    fclose(f);
    if (rc || wisp_buf_append(&b, "", 1)) {
        wisp_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* The template text: the param's, else the model's (malloc'd into *owned). */
static int template_source(const wisp_runtime *rt, const json_t *p, const char **src, size_t *len,
                           char **owned, wisp_err *err)
{
    const json_t *t = json_object_get(p, "template");
    *owned = NULL;
    if (t) {
        *src = json_string_value(t);
        *len = json_string_length(t);
        return 0;
    }
    if (!rt)
        return wisp_err_set(err, WISP_E_NO_MODEL,
                            "no model loaded and no 'template' given: load a model whose file "
                            "has a chat template, or pass 'template'");
    const wisp_gguf *g = wisp_model_get_gguf(rt->model);
    wisp_str s;
    if (g && wisp_gguf_get_str(g, "tokenizer.chat_template", &s)) {
        *src = s.ptr;
        *len = s.len;
        return 0;
    }
    const char *dir = wisp_model_get_hf_dir(rt->model);
    if (dir && (*owned = hf_template(dir))) {
        *src = *owned;
        *len = strlen(*owned);
        return 0;
    }
    return wisp_err_set(err, WISP_E_UNSUPPORTED,
                        "the model has no chat template (no tokenizer.chat_template in its "
                        "metadata): pass 'template', or use generate with your own prompt");
}

static wisp_jv *token_text(wisp_jinja_env *env, const wisp_runtime *rt, int32_t id)
{
    size_t n = 0;
    const char *s = rt && id >= 0 ? wisp_tokenizer_text(rt->tok, id, &n) : NULL;
    return wisp_jv_str(env, s ? s : "", s ? n : 0);
}

static int chat_render(const wisp_runtime *rt, const json_t *p, wisp_buf *out, wisp_err *err)
{
    const char *src = NULL;
    size_t len = 0;
    char *owned;
    int rc = template_source(rt, p, &src, &len, &owned, err);
    if (rc)
        return rc;
    wisp_jinja_env *env = wisp_jinja_env_new(NULL);
    if (!env) {
        free(owned);
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    }
    const json_t *v;
    if ((v = json_object_get(p, "now")))
        wisp_jinja_env_set_now(env, (time_t)json_integer_value(v));
    const wisp_tok_special *sp = rt ? wisp_tokenizer_special(rt->tok) : NULL;
    wisp_jinja_env_set(env, "messages", from_json(env, json_object_get(p, "messages"), 0));
    if ((v = json_object_get(p, "tools")) && !json_is_null(v))
        wisp_jinja_env_set(env, "tools", from_json(env, v, 0));
    v = json_object_get(p, "add_generation_prompt");
    wisp_jinja_env_set(env, "add_generation_prompt", wisp_jv_bool(env, v ? json_is_true(v) : true));
    v = json_object_get(p, "bos_token");
    wisp_jinja_env_set(env, "bos_token",
                       v ? from_json(env, v, 0) : token_text(env, rt, sp ? sp->bos : -1));
    v = json_object_get(p, "eos_token");
    wisp_jinja_env_set(env, "eos_token",
                       v ? from_json(env, v, 0) : token_text(env, rt, sp ? sp->eos : -1));
    const char *k;
    json_t *kv;
    json_object_foreach((json_t *)json_object_get(p, "template_kwargs"), k, kv)
        wisp_jinja_env_set(env, k, from_json(env, kv, 0));
    rc = wisp_jinja_render(env, src, len, out, err);
    wisp_jinja_env_free(env);
    free(owned);
    return rc;
}

static bool check_messages(wisp_job *job, const json_t *p)
{
    const json_t *m = json_object_get(p, "messages");
    if (!json_is_array(m)) {
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS, "'messages' must be an array of messages",
                       NULL);
        return false;
    }
    size_t i;
    json_t *msg;
    json_array_foreach(m, i, msg)
    {
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role"))) {
            char text[96];
            snprintf(text, sizeof text, "'messages[%zu]' must be an object with a string 'role'",
                     i);
            wisp_job_error(job, WISP_RPC_INVALID_PARAMS, text, NULL);
            return false;
        }
    }
    const json_t *tools = json_object_get(p, "tools");
    if (tools && !json_is_array(tools) && !json_is_null(tools)) {
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS, "'tools' must be an array", NULL);
        return false;
    }
    return true;
}

void wisp_m_chat_render(wisp_job *job)
{
    const wisp_runtime *rt = wisp_job_server(job)->runtime;
    if (rt && !rt->model) /* a remote backend without a local GGUF has no template here */
        rt = NULL;
    const json_t *p = wisp_job_params(job);
    if (!check_messages(job, p))
        return;
    wisp_buf out = WISP_BUF_INIT;
    wisp_err err = {0};
    if (chat_render(rt, p, &out, &err)) {
        wisp_buf_free(&out);
        wisp_job_fail(job, &err);
        return;
    }
    json_t *prompt = json_stringn(out.data ? out.data : "", out.len);
    wisp_buf_free(&out);
    if (!prompt) {
        wisp_err_set(&err, WISP_E_INVALID, "the rendered prompt is not valid UTF-8");
        wisp_job_fail(job, &err);
        return;
    }
    wisp_job_reply(job, json_pack("{s:o}", "prompt", prompt));
}

/* ---------------------------------------------------------------- chat */

/* Turn-end texts of template families whose vocabularies may not mark
 * them end-of-generation; a token with exactly this text ends the reply. */
static const char *const turn_ends[] = {
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|return|>",
    "<|call|>",
    "<|user|>",
    "<|observation|>",
    "<｜end▁of▁sentence｜>",
    "<|END_OF_TURN_TOKEN|>",
    "</s>",
    "<turn|>",
    NULL,
};

typedef struct chat_filter {
    const wisp_runtime *rt;
    bool *eot; /* per token id: ends the turn */
    wisp_chat_hint hint;
} chat_filter;

static bool cf_is_eog(void *ud, int32_t token)
{
    chat_filter *f = ud;
    return token >= 0 && token < f->rt->n_vocab && f->eot[token];
}

/* The reply is parsed from its tokens with special tokens rendered: tool
 * call markers such as Mistral's [TOOL_CALLS] are control tokens that the
 * streamed text leaves out. The end-of-turn token itself is not part of it.
 * A reply cut by a stop string is parsed from its text, which ends before
 * the stop string as the client asked. */
static void cf_annotate(void *ud, json_t *result)
{
    chat_filter *f = ud;
    const json_t *toks = json_object_get(result, "tokens");
    const char *why = json_string_value(json_object_get(result, "finish_reason"));
    size_t n = json_array_size(toks);
    int32_t *ids = why && strcmp(why, "stop") ? malloc((n ? n : 1) * sizeof *ids) : NULL;
    char *text = NULL;
    size_t len = 0;
    wisp_err err = {0};
    if (ids) {
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(toks, i));
        if (n && (wisp_tokenizer_is_eog(f->rt->tok, ids[n - 1]) || cf_is_eog(f, ids[n - 1])))
            n--;
        if (wisp_detokenize(f->rt->tok, ids, n, WISP_DETOK_RENDER_SPECIAL, &text, &len, &err))
            text = NULL;
    }
    const char *fallback = json_string_value(json_object_get(result, "text"));
    json_object_set_new(result, "message",
                        wisp_chat_parse_reply(text       ? text
                                              : fallback ? fallback
                                                         : "",
                                              &f->hint));
    free(text);
    free(ids);
}

static void cf_free(void *ud)
{
    chat_filter *f = ud;
    if (f)
        free(f->eot);
    free(f);
}

static chat_filter *chat_filter_new(const wisp_runtime *rt)
{
    chat_filter *f = calloc(1, sizeof *f);
    if (!f || !(f->eot = calloc((size_t)rt->n_vocab, sizeof *f->eot))) {
        free(f);
        return NULL;
    }
    f->rt = rt;
    /* gpt-oss (harmony) ends messages, not turns, with <|end|>: its turn
     * ends are <|return|> and <|call|> */
    bool harmony = wisp_tokenizer_find(rt->tok, "<|return|>", 10) >= 0;
    for (size_t i = 0; turn_ends[i]; i++) {
        if (harmony && !strcmp(turn_ends[i], "<|end|>"))
            continue;
        int32_t id = wisp_tokenizer_find(rt->tok, turn_ends[i], strlen(turn_ends[i]));
        /* only special tokens: a vocabulary where "</s>" is plain text keeps it */
        if (id >= 0 && id < rt->n_vocab &&
            (wisp_tokenizer_attr(rt->tok, id) & (WISP_TOKATTR_CONTROL | WISP_TOKATTR_USER_DEFINED)))
            f->eot[id] = true;
    }
    return f;
}

static bool prompt_tail_is(const wisp_buf *b, const char *tail)
{
    size_t n = strlen(tail);
    return b->len >= n && memcmp(b->data + b->len - n, tail, n) == 0;
}

void wisp_m_chat(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    if (rt->remote) {
        wisp_remote_m_chat(job);
        return;
    }
    if (!check_messages(job, p) || !wisp_gen_require_engine(job, rt))
        return;
    wisp_buf prompt = WISP_BUF_INIT;
    wisp_err err = {0};
    if (chat_render(rt, p, &prompt, &err)) {
        wisp_buf_free(&prompt);
        wisp_job_fail(job, &err);
        return;
    }
    /* The rendered text is the template author's: its special-token texts
     * are tokens, and BOS is there already when the template writes it. */
    wisp_tokens toks = {0};
    int rc = wisp_tokenize(rt->tok, prompt.data ? prompt.data : "", prompt.len, false, true, &toks,
                           &err);
    if (!rc && toks.n == 0)
        rc = wisp_err_set(&err, WISP_E_INVALID, "the chat template rendered an empty prompt");
    wisp_gen_spec spec;
    if (!rc)
        rc = wisp_gen_spec_from_json(rt, p, &spec, &err);
    if (rc) {
        wisp_buf_free(&prompt);
        wisp_tokens_free(&toks);
        wisp_job_fail(job, &err);
        return;
    }
    chat_filter *f = chat_filter_new(rt);
    if (f) {
        const json_t *tools = json_object_get(p, "tools");
        f->hint.tools = json_array_size(tools) > 0;
        f->hint.functionary = prompt_tail_is(&prompt, ">>>");
    }
    wisp_buf_free(&prompt);
    if (!f) {
        wisp_tokens_free(&toks);
        wisp_gen_spec_free(&spec);
        wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        wisp_job_fail(job, &err);
        return;
    }
    spec.filter = (wisp_gen_filter){
        .is_eog = cf_is_eog,
        .annotate = cf_annotate,
        .free = cf_free,
        .ud = f,
    };
    wisp_gen_submit(job, rt, &spec, toks.ids, (int)toks.n);
    wisp_tokens_free(&toks);
    wisp_gen_spec_free(&spec);
}
