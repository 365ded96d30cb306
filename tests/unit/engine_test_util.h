/*
 * engine_test_util.h - opening a model, making a CPU engine and running one
 * sequence through it, for the tests that compare logits of engines: each
 * helper stops the test with the library's message when a step fails.
 */
#ifndef WISP_ENGINE_TEST_UTIL_H
#define WISP_ENGINE_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"
#include "harness.h"
#include "model/model.h"

static inline wisp_model *wisp_test_open_model(const char *path)
{
    wisp_model *m = NULL;
    wisp_err err = {0};
    int rc = wisp_model_open(path, NULL, &m, &err);
    if (rc)
        fprintf(stderr, "  open %s: %s\n", path, err.msg);
    REQUIRE(rc == 0 && m);
    return m;
}

static inline wisp_engine *wisp_test_cpu_engine(const wisp_model *m, const wisp_engine_opts *o)
{
    wisp_engine *e = NULL;
    wisp_err err = {0};
    int rc = wisp_engine_cpu_create(m, o, &e, &err);
    if (rc)
        fprintf(stderr, "  engine: %s\n", err.msg);
    REQUIRE(rc == 0 && e);
    return e;
}

/* One forward step of one sequence: n tokens from pos0 through the given
 * block table; logits of every token (all) or of the last. Returns the
 * engine's code (a cancel is expected by some tests and not reported). */
static inline int wisp_test_forward1(wisp_engine *e, const int32_t *toks, int n, int pos0,
                                     const int32_t *table, int n_blocks, bool all, float *logits)
{
    wisp_batch_seq s = {.tokens = toks,
                        .n_tokens = n,
                        .pos0 = pos0,
                        .block_table = table,
                        .n_blocks = n_blocks,
                        .all_logits = all,
                        .logits = logits};
    wisp_batch b = {.seqs = &s, .n_seqs = 1};
    wisp_err err = {0};
    int rc = e->ops->forward(e->ctx, &b, &err);
    if (rc && rc != WISP_E_CANCELLED)
        fprintf(stderr, "  forward: %s\n", err.msg);
    return rc;
}

/* A should_stop that says stop at its stop_at-th poll. */
typedef struct wisp_test_polls {
    int polls;
    int stop_at;
} wisp_test_polls;

static inline bool wisp_test_stop_at_poll(void *ud)
{
    wisp_test_polls *p = ud;
    return ++p->polls >= p->stop_at;
}

/* Runs seq through e, asked to stop at every poll in turn: each run is
 * cancelled at the poll that said so (no further layer ran), and a run
 * never asked to stop polls once per layer plus once before the head. */
static inline void wisp_test_stops_at_every_poll(wisp_engine *e, wisp_batch_seq *seq, int n_layers)
{
    for (int stop_at = 1; stop_at <= n_layers + 1; stop_at++) {
        wisp_test_polls pc = {0, stop_at};
        wisp_batch b = {.seqs = seq,
                        .n_seqs = 1,
                        .should_stop = wisp_test_stop_at_poll,
                        .stop_ud = &pc};
        wisp_err err = {0};
        CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_CANCELLED);
        CHECK_EQ_INT(pc.polls, stop_at);
        CHECK(strstr(err.msg, "cancelled") != NULL);
    }
    wisp_test_polls pc = {0, 1000};
    wisp_batch b = {.seqs = seq, .n_seqs = 1, .should_stop = wisp_test_stop_at_poll, .stop_ud = &pc};
    wisp_err err = {0};
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), 0);
    CHECK_EQ_INT(pc.polls, n_layers + 1);
}

#endif
