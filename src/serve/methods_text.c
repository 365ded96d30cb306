/*
 * methods_text.c - tokenize and detokenize with the loaded tokenizer.
 *
 * They run on the engine thread with the rest of the model state; both are
 * fast (a 100 KB file tokenizes in milliseconds), so they never hold up
 * generation noticeably.
 */
#include <stdlib.h>

#include "serve/methods.h"
#include "serve/remote.h"
#include "serve/runtime.h"
#include "serve/server.h"

static bool flag(const json_t *p, const char *key, bool dflt)
{
    const json_t *v = json_object_get(p, key);
    return v ? json_is_true(v) : dflt;
}

void wisp_m_tokenize(wisp_job *job)
{
    const wisp_runtime *rt = wisp_job_server(job)->runtime;
    if (rt->remote && !rt->tok) { /* the remote backend's servers tokenize */
        wisp_remote_m_tokenize(job);
        return;
    }
    const json_t *p = wisp_job_params(job);
    const json_t *text = json_object_get(p, "text");
    wisp_tokens toks = {0};
    wisp_err err = {0};
    if (wisp_tokenize(rt->tok, json_string_value(text), json_string_length(text),
                      flag(p, "add_special", false), flag(p, "parse_special", false), &toks,
                      &err)) {
        wisp_tokens_free(&toks);
        wisp_job_fail(job, &err);
        return;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < toks.n; i++)
        json_array_append_new(ids, json_integer(toks.ids[i]));
    wisp_tokens_free(&toks);
    wisp_job_reply(job, json_pack("{s:o}", "tokens", ids));
}

void wisp_m_detokenize(wisp_job *job)
{
    const wisp_runtime *rt = wisp_job_server(job)->runtime;
    if (rt->remote && !rt->tok) {
        wisp_remote_m_detokenize(job);
        return;
    }
    const json_t *p = wisp_job_params(job);
    const json_t *arr = json_object_get(p, "tokens");
    size_t n = json_array_size(arr);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    wisp_err err = {0};
    if (!ids) {
        wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        wisp_job_fail(job, &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_int_t t = json_integer_value(json_array_get(arr, i));
        if (t >= rt->n_vocab) {
            free(ids);
            wisp_err_set(&err, WISP_E_INVALID,
                         "'tokens[%zu]': token %lld is outside the vocabulary (0..%d)", i,
                         (long long)t, rt->n_vocab - 1);
            wisp_job_fail(job, &err);
            return;
        }
        ids[i] = (int32_t)t;
    }
    unsigned flags = flag(p, "render_special", false) ? WISP_DETOK_RENDER_SPECIAL : 0;
    char *text = NULL;
    size_t len = 0;
    int rc = wisp_detokenize(rt->tok, ids, n, flags, &text, &len, &err);
    free(ids);
    if (rc) {
        wisp_job_fail(job, &err);
        return;
    }
    /* Ids that split a character give bytes that are not UTF-8; JSON cannot
     * carry them, so say so rather than altering the text. */
    json_t *s = json_stringn(text, len);
    free(text);
    if (!s) {
        wisp_err_set(&err, WISP_E_INVALID,
                     "these tokens do not decode to valid UTF-8 (they split a character); "
                     "detokenize a longer run");
        wisp_job_fail(job, &err);
        return;
    }
    wisp_job_reply(job, json_pack("{s:o}", "text", s));
}
