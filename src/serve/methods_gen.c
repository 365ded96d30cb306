/*
 * methods_gen.c - generate and evaluate: JSON requests in, scheduler
 * requests out, tokens and logits back as JSON.
 *
 * The handler builds one gen_req per job, hands the scheduler a request
 * whose callbacks point at it, and returns; the scheduler (driven by the
 * engine thread's step hook) calls back as tokens are chosen. Text comes out
 * through two stages: the streaming detokenizer (never releases half a
 * UTF-8 character) and the stop matcher (holds back text that could be the
 * start of a stop string), so a $/stream notification never carries text
 * that a stop string later takes back. Every job is answered exactly once,
 * from on_finish.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/sampler.h"
#include "gen/stop.h"
#include "serve/gen_common.h"
#include "serve/methods.h"
#include "serve/remote.h"
#include "serve/server.h"

/* ---------------------------------------------------------------- evaluate */

typedef struct eval_req {
    wisp_job *job;
    int top_k;
    json_t *rows;      /* one array of [id, logit] per position */
    int32_t *topk_ids; /* scratch of top_k */
} eval_req;

static void eval_on_logits(void *ud, int pos, const float *logits, int n_vocab)
{
    eval_req *r = ud;
    (void)pos;
    int k = r->top_k < n_vocab ? r->top_k : n_vocab;
    wisp_gen_top_k(logits, n_vocab, k, r->topk_ids);
    json_t *row = json_array();
    for (int i = 0; i < k; i++)
        json_array_append_new(row, json_pack("[i, f]", (int)r->topk_ids[i],
                                             (double)logits[r->topk_ids[i]]));
    json_array_append_new(r->rows, row);
}

static void eval_req_free(eval_req *r)
{
    if (!r)
        return;
    json_decref(r->rows);
    free(r->topk_ids);
    free(r);
}

static bool eval_is_cancelled(void *ud) { return wisp_job_cancelled(((eval_req *)ud)->job); }

static void eval_on_finish(void *ud, int status, const wisp_sched_usage *usage, const wisp_err *err)
{
    eval_req *r = ud;
    wisp_gen_publish_stats(r->job);
    if (status == 0) {
        json_t *res =
            json_pack("{s:o, s:o}", "logits", r->rows, "usage", wisp_gen_usage_json(usage));
        json_object_set_new(res, "timings", wisp_gen_timings_json(usage));
        r->rows = NULL;
        wisp_job_reply(r->job, res);
    } else {
        wisp_gen_answer_failure(r->job, status, err, NULL, NULL, 0);
    }
    eval_req_free(r);
}

void wisp_m_evaluate(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    if (rt->remote) {
        wisp_job_error(job, WISP_RPC_UNSUPPORTED,
                       "evaluate needs the local engine: the remote backend's servers return no "
                       "teacher-forced logits",
                       NULL);
        return;
    }
    if (!wisp_gen_require_engine(job, rt))
        return;
    wisp_err err = {0};
    wisp_tokens toks = {0};
    if (wisp_gen_prompt_tokens(rt, "tokens", json_object_get(p, "tokens"), false, &toks, &err)) {
        wisp_tokens_free(&toks);
        wisp_job_fail(job, &err);
        return;
    }
    if (toks.n == 0) {
        wisp_tokens_free(&toks);
        wisp_job_error(job, WISP_RPC_INVALID_PARAMS, "'tokens' must not be empty", NULL);
        return;
    }
    eval_req *r = calloc(1, sizeof *r);
    json_t *k = json_object_get(p, "top_k");
    const int top_k = k ? (int)json_integer_value(k) : 5;
    if (r) {
        r->job = job;
        r->top_k = top_k;
        r->rows = json_array();
        r->topk_ids = calloc((size_t)top_k, sizeof(int32_t));
    }
    if (!r || !r->rows || !r->topk_ids) {
        eval_req_free(r);
        wisp_tokens_free(&toks);
        wisp_err_set(&err, WISP_E_NOMEM, "out of memory");
        wisp_job_fail(job, &err);
        return;
    }
    wisp_sched_request_desc d = {
        .prompt = toks.ids,
        .n_prompt = (int)toks.n,
        .evaluate_only = true,
        .on_logits = eval_on_logits,
        .is_cancelled = eval_is_cancelled,
        .on_finish = eval_on_finish,
        .ud = r,
    };
    int rc = wisp_sched_submit(rt->sched, &d, NULL, &err);
    wisp_tokens_free(&toks);
    if (rc) {
        eval_req_free(r);
        wisp_job_fail(job, &err);
    }
}

/* ---------------------------------------------------------------- generate */

void wisp_m_generate(wisp_job *job)
{
    wisp_runtime *rt = wisp_job_server(job)->runtime;
    const json_t *p = wisp_job_params(job);
    if (rt->remote) {
        wisp_remote_m_generate(job);
        return;
    }
    if (!wisp_gen_require_engine(job, rt))
        return;
    wisp_err err = {0};
    wisp_tokens toks = {0};
    /* A text prompt is the prompt author's own: special tokens in it are
     * parsed and BOS is added as the vocabulary says (documented in the
     * protocol); a token prompt is taken as given. */
    if (wisp_gen_prompt_tokens(rt, "prompt", json_object_get(p, "prompt"), true, &toks, &err)) {
        wisp_tokens_free(&toks);
        wisp_job_fail(job, &err);
        return;
    }
    wisp_gen_spec spec;
    if (wisp_gen_spec_from_json(rt, p, &spec, &err)) {
        wisp_tokens_free(&toks);
        wisp_job_fail(job, &err);
        return;
    }
    wisp_gen_submit(job, rt, &spec, toks.ids, (int)toks.n);
    wisp_tokens_free(&toks);
    wisp_gen_spec_free(&spec);
}
