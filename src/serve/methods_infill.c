/*
 * methods_infill.c - infill: fill-in-the-middle code completion.
 *
 * The prompt is built by infill/fim_prompt.c from the model's FIM tokens
 * (user code never parsed for special tokens; repository context first so
 * it stays a stable, cacheable prefix; the text typed on the current line
 * after the middle token), then generation runs like generate's with one
 * more stage after the stop strings: the code stop rules of
 * infill/code_stop.c (n_indent, t_max_predict_ms, repeating the suffix).
 * FIM marker tokens end generation too. The answer says which rule stopped
 * it (finish_reason) and what the budget trimmed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infill/code_stop.h"
#include "infill/fim_prompt.h"
#include "infill/fim_tokens.h"
#include "serve/gen_common.h"
#include "serve/methods.h"
#include "serve/remote.h"
#include "serve/server.h"

typedef struct infill_filter {
    /* Created at the first generated text: t_max_predict_ms counts from the
     * first token, as llama.cpp's does, not from the prompt's arrival. */
    wisp_code_stop *cs;
    wisp_code_stop_params cp;
    wisp_fim_tokens fim;
    wisp_infill_trim trim;
    int n_extra_tokens, n_prefix_tokens, n_suffix_tokens, n_prompt_tokens;
    const char *family;
} infill_filter;

static int ensure_checker(infill_filter *f)
{
    if (f->cs)
        return 0;
    wisp_err err = {0};
    f->cp.t_start_ms = (int64_t)wisp_now_ms();
    return wisp_code_stop_create(&f->cp, &f->cs, &err);
}

static int if_feed(void *ud, const char *text, size_t len, const char **out, size_t *out_len,
                   const char **reason)
{
    infill_filter *f = ud;
    wisp_code_stop_out o;
    wisp_err err = {0};
    int rc = ensure_checker(f);
    if (rc)
        return rc;
    rc = wisp_code_stop_feed(f->cs, text, len, (int64_t)wisp_now_ms(), &o, &err);
    if (rc)
        return rc;
    *out = o.text;
    *out_len = o.len;
    if (o.reason != WISP_STOP_REASON_NONE)
        *reason = wisp_stop_reason_name(o.reason);
    return 0;
}

static int if_flush(void *ud, const char **out, size_t *out_len, const char **reason)
{
    infill_filter *f = ud;
    wisp_code_stop_out o;
    wisp_err err = {0};
    int rc = ensure_checker(f);
    if (rc)
        return rc;
    rc = wisp_code_stop_flush(f->cs, &o, &err);
    if (rc)
        return rc;
    *out = o.text;
    *out_len = o.len;
    if (o.reason != WISP_STOP_REASON_NONE)
        *reason = wisp_stop_reason_name(o.reason);
    return 0;
}

static bool if_is_eog(void *ud, int32_t token)
{
    return wisp_fim_ends_generation(&((infill_filter *)ud)->fim, token);
}

static void if_annotate(void *ud, json_t *res)
{
    infill_filter *f = ud;
    const wisp_infill_trim *t = &f->trim;
    json_object_set_new(res, "trimmed", json_boolean(wisp_infill_trimmed(t)));
    json_object_set_new(res, "trim",
                        json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "extra_dropped",
                                  t->extra_dropped, "extra_tokens_dropped", t->extra_tokens_dropped,
                                  "prefix_lines_trimmed", t->prefix_lines_trimmed,
                                  "prefix_tokens_trimmed", t->prefix_tokens_trimmed,
                                  "suffix_lines_trimmed", t->suffix_lines_trimmed,
                                  "suffix_tokens_trimmed", t->suffix_tokens_trimmed));
    json_object_set_new(res, "prompt_parts",
                        json_pack("{s:i, s:i, s:i, s:i}", "extra", f->n_extra_tokens, "prefix",
                                  f->n_prefix_tokens, "suffix", f->n_suffix_tokens, "typed",
                                  f->n_prompt_tokens));
    if (f->family)
        json_object_set_new(res, "fim_family", json_string(f->family));
}

static void if_free(void *ud)
{
    infill_filter *f = ud;
    wisp_code_stop_free(f->cs);
    free(f);
}

static const char *str(const json_t *p, const char *key, size_t *len)
{
    const json_t *v = json_object_get(p, key);
    *len = v ? json_string_length(v) : 0;
    return v ? json_string_value(v) : "";
}

/* input_extra: [{filename, text}] (checked here: the params table says
 * only that it is an array). */
static int read_extra(const json_t *arr, wisp_infill_chunk **out, size_t *n, wisp_err *err)
{
    *n = json_array_size(arr);
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out)
        return wisp_err_set(err, WISP_E_NOMEM, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        const json_t *c = json_array_get(arr, i);
        const json_t *fn = json_object_get(c, "filename"), *tx = json_object_get(c, "text");
        if (!json_is_object(c) || !json_is_string(tx) || (fn && !json_is_string(fn)))
            return wisp_err_set(err, WISP_E_INVALID,
                                "'input_extra[%zu]' must be {\"filename\": string, \"text\": "
                                "string}",
                                i);
        (*out)[i].filename = fn ? json_string_value(fn) : NULL;
        (*out)[i].text = json_string_value(tx);
        (*out)[i].text_len = json_string_length(tx);
    }
    return 0;
}

void wisp_m_infill(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    if (rt->remote) {
        wisp_remote_m_infill(job);
        return;
    }
    if (!wisp_gen_require_engine(job, rt))
        return;
    wisp_err err = {0};
    wisp_gen_spec spec;
    if (wisp_gen_spec_from_json(rt, p, &spec, &err)) {
        wisp_job_fail(job, &err);
        return;
    }
    wisp_infill_req req = {0};
    req.prefix = str(p, "input_prefix", &req.prefix_len);
    req.suffix = str(p, "input_suffix", &req.suffix_len);
    req.prompt = str(p, "prompt", &req.prompt_len);
    const json_t *fn = json_object_get(p, "filename");
    req.filename = fn ? json_string_value(fn) : NULL;
    const json_t *repo = json_object_get(p, "repo_name");
    req.repo_name = repo ? json_string_value(repo) : NULL;
    const json_t *order = json_object_get(p, "fim_order");
    req.order = order && strcmp(json_string_value(order), "spm") == 0 ? WISP_FIM_SPM : WISP_FIM_PSM;
    req.n_ctx = rt->n_ctx;
    req.max_tokens = spec.max_tokens;
    wisp_infill_chunk *extra = NULL;
    wisp_infill_prompt prompt;
    memset(&prompt, 0, sizeof prompt);
    infill_filter *f = calloc(1, sizeof *f);
    int rc = f ? read_extra(json_object_get(p, "input_extra"), &extra, &req.n_extra, &err)
               : wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
    req.extra = extra;
    if (!rc)
        rc = wisp_infill_build(rt->tok, &req, &prompt, &err);
    if (!rc) {
        /* The suffix stays valid: it points into the job's params, which
         * outlive the request. */
        /* Absent fields read as 0: the rule is off. */
        f->cp = (wisp_code_stop_params){
            .n_indent = (int32_t)json_integer_value(json_object_get(p, "n_indent")),
            .t_max_predict_ms = json_integer_value(json_object_get(p, "t_max_predict_ms")),
            .suffix = req.suffix,
            .suffix_len = req.suffix_len,
        };
        /* Checked now, so a bad parameter is refused before any work. */
        rc = ensure_checker(f);
        if (rc)
            wisp_err_set(&err, rc, "invalid code stop parameters");
        wisp_code_stop_free(f->cs);
        f->cs = NULL;
    }
    free(extra);
    if (rc) {
        wisp_infill_prompt_free(&prompt);
        if (f)
            if_free(f);
        wisp_gen_spec_free(&spec);
        wisp_job_fail(job, &err);
        return;
    }
    f->fim = prompt.fim;
    f->family = prompt.fim.family;
    f->trim = prompt.trim;
    f->n_extra_tokens = prompt.n_extra_tokens;
    f->n_prefix_tokens = prompt.n_prefix_tokens;
    f->n_suffix_tokens = prompt.n_suffix_tokens;
    f->n_prompt_tokens = prompt.n_prompt_tokens;
    spec.filter = (wisp_gen_filter){
        .feed = if_feed,
        .flush = if_flush,
        .is_eog = if_is_eog,
        .annotate = if_annotate,
        .free = if_free,
        .ud = f,
    };
    wisp_gen_submit(job, rt, &spec, prompt.tokens.ids, (int)prompt.tokens.n);
    wisp_infill_prompt_free(&prompt);
    wisp_gen_spec_free(&spec);
}
