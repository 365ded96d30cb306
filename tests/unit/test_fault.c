/*
 * test_fault.c - every allocation failure on the main paths comes back as
 * an error value: nothing crashes, nothing leaks.
 *
 * sqlite's fault simulation, applied to wisp (common/alloc.h): a path is
 * first run once to count its allocations (K), then again for n = 1..K with
 * the n-th allocation failing. Each run must return 0 (the code had a
 * fallback) or an error with a message, and leave nothing behind: the
 * sanitizer build's leak checker fails the case otherwise. Short paths are
 * walked at every n; long ones at every n up to DENSE and at a stride after
 * that, so the whole walk stays within seconds under ASan.
 *
 * Paths: opening a model (GGUF parsing, tensor table), loading its
 * tokenizer and tokenizing, and a whole generation: runtime open (model,
 * tokenizer, CPU engine, KV cache, scheduler), request submit, scheduler
 * steps and the text pipeline, runtime close.
 *
 * Only fault-injection builds (SANITIZE=1, FAULT=1) can run it; others
 * report it skipped.
 */
#include "harness.h"

#include "common/alloc.h"
#include "common/log.h"
#include "gen/pipeline.h"
#include "model/gguf.h"
#include "model/model.h"
#include "serve/runtime.h"
#include "tokenizer/tokenizer.h"

#define MODEL   "models/stories260K.gguf"
#define TEXT    "Once upon a time, there was a little cat. It liked milk."
#define DENSE   400 /* every n up to here */
#define STRIDED 200 /* at most this many runs beyond DENSE */

typedef int (*path_fn)(wisp_err *err);

static void need_fault_build(void)
{
    if (!wisp_fault_enabled())
        SKIP("built without fault injection (make SANITIZE=1 or FAULT=1)");
    if (access(MODEL, R_OK) != 0)
        SKIP("fixture %s is missing (run from the repository root)", MODEL);
}

static void walk(const char *name, path_fn fn)
{
    wisp_log_set_level(WISP_LOG_ERROR);
    wisp_err err = {0};
    wisp_fault_arm(0);
    int rc = fn(&err);
    long total = wisp_fault_count();
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", name, err.msg);
    REQUIRE(rc == 0);
    REQUIRE(total > 0);
    long stride = total > DENSE ? (total - DENSE) / STRIDED + 1 : 1;
    int runs = 0, failed = 0, recovered = 0;
    for (long n = 1; n <= total; n += n < DENSE ? 1 : stride) {
        wisp_err e = {0};
        wisp_fault_arm(n);
        int r = fn(&e);
        bool hit = wisp_fault_injected();
        wisp_fault_arm(0);
        runs++;
        if (!hit)
            continue; /* the path allocated less this time (a cache, a thread) */
        if (r == 0) {
            recovered++;
        } else {
            failed++;
            if (e.code != r || e.msg[0] == '\0') {
                fprintf(stderr, "  %s: allocation %ld: rc %d, err {%d, \"%s\"}\n", name, n, r,
                        e.code, e.msg);
                CHECK(e.code == r && e.msg[0] != '\0');
            }
        }
    }
    fprintf(stderr, "  %s: %ld allocations; %d runs: %d errors, %d recovered\n", name, total, runs,
            failed, recovered);
    CHECK(failed > 0);
}

/* ------------------------------------------------------------ paths */

static int open_model(wisp_err *err)
{
    wisp_model *m = NULL;
    int rc = wisp_model_open(MODEL, NULL, &m, err);
    if (rc == 0)
        wisp_model_close(m);
    return rc;
}

static int load_tokenizer(wisp_err *err)
{
    wisp_gguf *g = NULL;
    int rc = wisp_gguf_open(MODEL, &g, err);
    if (rc)
        return rc;
    wisp_tokenizer *tok = NULL;
    rc = wisp_tokenizer_from_gguf(g, &tok, err);
    wisp_gguf_close(g);
    if (rc)
        return rc;
    wisp_tokens t = {0};
    rc = wisp_tokenize(tok, TEXT, strlen(TEXT), true, true, &t, err);
    char *back = NULL;
    size_t len = 0;
    if (!rc)
        rc = wisp_detokenize(tok, t.ids, t.n, 0, &back, &len, err);
    free(back);
    wisp_tokens_free(&t);
    wisp_tokenizer_free(tok);
    return rc;
}

typedef struct gen {
    wisp_pipeline *pipe;
    int status;
    wisp_err err;
    bool finished;
} gen;

static int32_t greedy(void *ud, float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static bool on_token(void *ud, int32_t token)
{
    gen *g = ud;
    bool more = false;
    if (wisp_pipeline_token(g->pipe, token, &more, &g->err) < 0)
        g->status = g->err.code;
    return more;
}

static void on_finish(void *ud, int status, const wisp_sched_usage *u, const wisp_err *err)
{
    gen *g = ud;
    g->finished = true;
    if (g->status == 0 && status != 0) {
        g->status = status;
        if (err)
            g->err = *err;
        else
            wisp_err_set(&g->err, status, "request ended with %d", status);
    }
}

static int generate(wisp_err *err)
{
    wisp_runtime_opts o = {
        .path = MODEL,
        .n_ctx = 64,
        .n_threads = 1,
        .device = "cpu",
        .kv_cache_mb = 1,
        .kv_type = WISP_KV_F16,
        .host_cache_mb = 0,
    };
    wisp_runtime *rt = NULL;
    int rc = wisp_runtime_open(&o, &rt, err);
    if (rc)
        return rc;
    wisp_tokens prompt = {0};
    gen g = {0};
    const char *stops[] = {"milk"};
    wisp_pipeline_desc pd = {.tok = rt->tok, .stops = stops, .n_stops = 1};
    rc = wisp_tokenize(rt->tok, "Once upon a time", 16, true, false, &prompt, err);
    if (!rc)
        rc = wisp_pipeline_create(&pd, &g.pipe, err);
    if (!rc) {
        wisp_sched_request_desc d = {
            .prompt = prompt.ids,
            .n_prompt = (int)prompt.n,
            .max_tokens = 6,
            .sample = greedy,
            .on_token = on_token,
            .on_finish = on_finish,
            .ud = &g,
        };
        rc = wisp_sched_submit(rt->sched, &d, NULL, err);
        while (!rc && !g.finished && wisp_sched_step(rt->sched))
            ;
    }
    wisp_runtime_close(rt); /* finishes the request if it still runs */
    if (!rc && g.status) {
        *err = g.err;
        rc = g.status;
    }
    if (!rc)
        rc = wisp_pipeline_end(g.pipe, 0, err);
    wisp_pipeline_free(g.pipe);
    wisp_tokens_free(&prompt);
    return rc;
}

/* ------------------------------------------------------------ cases */

TEST(model_open_survives_every_allocation_failure)
{
    need_fault_build();
    walk("model open", open_model);
}

TEST(tokenizer_load_and_tokenize_survive_every_allocation_failure)
{
    need_fault_build();
    walk("tokenizer", load_tokenizer);
}

TEST(a_generation_survives_allocation_failures)
{
    need_fault_build();
    walk("generation", generate);
}

TEST(the_injector_fails_exactly_the_nth_allocation)
{
    if (!wisp_fault_enabled())
        SKIP("built without fault injection (make SANITIZE=1 or FAULT=1)");
    wisp_fault_arm(2);
    void *a = malloc(8), *b = malloc(8), *c = strdup("x");
    CHECK(a != NULL && b == NULL && c != NULL);
    CHECK(wisp_fault_injected());
    CHECK_EQ_INT(wisp_fault_count(), 3);
    wisp_fault_arm(0);
    free(a);
    free(c);
}
