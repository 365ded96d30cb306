/*
 * test_sched.c - the continuous-batching scheduler over the fake engine.
 *
 * The fake engine's logits are a function of each sequence's whole history
 * read back through its block table, and the oracle computes the same with
 * no cache at all, so "equal to the oracle" means: the same output as the
 * request run alone on a contiguous cache. Each test also requires that the
 * engine saw no inconsistency, that every request got exactly one
 * on_finish, and that no block stays referenced once all are done.
 */
#include <pthread.h>

#include "harness.h"
#include "sched_test_util.h"

#define V 50

/* prefill_first: opts.prefill_first_tokens (0: the default, step_tokens / 4). */
static wisp_sched *make_pf(fake_engine *fe, int n_ctx, int max_running, int step_tokens,
                           int max_queued, int prefill_first)
{
    wisp_sched_opts o = {.model_identity = 7,
                         .n_vocab = V,
                         .n_ctx = n_ctx,
                         .max_running = max_running,
                         .step_tokens = step_tokens,
                         .max_queued = max_queued,
                         .prefill_first_tokens = prefill_first,
                         .host_cache_bytes = 1 << 16};
    wisp_sched *s = NULL;
    wisp_err err = {0};
    int rc = wisp_sched_create(&fe->base, &o, &s, &err);
    if (rc)
        fprintf(stderr, "  create: %s\n", err.msg);
    REQUIRE(rc == 0);
    return s;
}

static wisp_sched *make(fake_engine *fe, int n_ctx, int max_running, int step_tokens,
                        int max_queued)
{
    return make_pf(fe, n_ctx, max_running, step_tokens, max_queued, 0);
}

static void check_clean(wisp_sched *s, fake_engine *fe)
{
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK_EQ_INT(st.running, 0);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.kv.blocks_used, 0);
    CHECK_EQ_INT(st.kv.blocks_used + st.kv.blocks_cached_only + st.kv.blocks_free,
                 st.kv.blocks_total);
    if (fe->violations)
        fprintf(stderr, "  engine: %s\n", fe->first_violation);
    CHECK_EQ_INT(fe->violations, 0);
}

TEST(single_request_equals_oracle)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 32, 8);
    wisp_sched *s = make(fe, 200, 8, 32, 16);
    treq t;
    int32_t p[37];
    uint64_t rng = 1;
    tr_fill(&rng, p, 37, V);
    tr_init(&t, p, 37, 20);
    REQUIRE(tr_submit(s, &t) == 0);
    REQUIRE(tr_run(s, 1000) > 0);
    CHECK_EQ_INT(t.finished, 1);
    CHECK_EQ_INT(t.status, 0);
    CHECK_EQ_INT(t.n_out, 20);
    CHECK(tr_output_ok(&t, V));
    CHECK_EQ_INT(t.usage.prompt_tokens, 37);
    CHECK_EQ_INT(t.usage.completion_tokens, 20);
    CHECK_EQ_INT(t.usage.finish, WISP_SCHED_FINISH_LENGTH);
    CHECK(t.usage.ttft_ms >= 0 && t.usage.total_ms >= t.usage.ttft_ms);
    /* 37 prompt tokens at 32 per step: chunked prefill took two steps. */
    CHECK(fe->max_step_tokens <= 32);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* 32 concurrent requests over 4 shared prefixes: each output equals the
 * oracle, later requests reuse the cached prefixes, batches really batch. */
TEST(concurrent_overlapping_prefixes)
{
    fake_engine *fe = fake_engine_create(4, 256, V, 64, 16);
    wisp_sched *s = make(fe, 200, 8, 64, 64);
    static treq t[64];
    int32_t bases[4][40];
    uint64_t rng = 99;
    for (int b = 0; b < 4; b++)
        tr_fill(&rng, bases[b], 40, V);
    for (int wave = 0; wave < 2; wave++) {
        for (int i = 0; i < 32; i++) {
            int32_t p[80];
            int nb = 20 + (i * 7) % 21, ns = 1 + (i * 5) % 13;
            memcpy(p, bases[i % 4], sizeof *p * (size_t)nb);
            tr_fill(&rng, p + nb, ns, V);
            treq *r = &t[wave * 32 + i];
            tr_init(r, p, nb + ns, 3 + (i * 3) % 17);
            REQUIRE(tr_submit(s, r) == 0);
        }
        REQUIRE(tr_run(s, 5000) > 0);
    }
    int cached_w1 = 0, cached_w2_min = 1 << 30;
    for (int i = 0; i < 64; i++) {
        CHECK_EQ_INT(t[i].finished, 1);
        CHECK_EQ_INT(t[i].status, 0);
        CHECK_EQ_INT(t[i].n_out, t[i].max_tokens);
        CHECK_EQ_INT(t[i].order_errors, 0);
        if (!tr_output_ok(&t[i], V)) {
            fprintf(stderr, "  request %d differs from its run alone\n", i);
            CHECK(0);
        }
        if (i < 32)
            cached_w1 += t[i].usage.cached_tokens;
        else if (t[i].usage.cached_tokens < cached_w2_min)
            cached_w2_min = t[i].usage.cached_tokens;
    }
    CHECK(cached_w1 > 0);
    /* Every second-wave prompt shares >= 20 tokens (5 blocks) with wave 1. */
    CHECK(cached_w2_min >= 20);
    CHECK(fe->max_step_seqs > 1);
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK(st.kv.prefix_hits > 0 && st.kv.hit_tokens > 0);
    CHECK_EQ_INT(st.finished, 64);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A prompt that is entirely cached still computes its last token. */
TEST(fully_cached_prompt_recomputes_last_token)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 64, 8);
    wisp_sched *s = make(fe, 200, 8, 64, 16);
    int32_t p[24];
    uint64_t rng = 5;
    tr_fill(&rng, p, 24, V);
    treq a, b;
    tr_init(&a, p, 24, 6);
    tr_init(&b, p, 24, 6);
    REQUIRE(tr_submit(s, &a) == 0);
    REQUIRE(tr_run(s, 100) > 0);
    uint64_t tokens_before = fe->tokens_in;
    REQUIRE(tr_submit(s, &b) == 0);
    REQUIRE(tr_run(s, 100) > 0);
    CHECK_EQ_INT(b.usage.cached_tokens, 23);
    CHECK_EQ_INT(memcmp(a.out, b.out, sizeof a.out), 0);
    CHECK(tr_output_ok(&b, V));
    /* Only the last prompt token and the decodes were computed. */
    CHECK_EQ_INT(fe->tokens_in - tokens_before, 1 + 5);
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK(st.kv.cow_copies >= 1);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* Teacher-forced evaluation: logits for every position, in order, equal to
 * the oracle's, while generate requests run beside it; a cached prompt does
 * not skip any position. */
TEST(evaluate_delivers_every_position)
{
    fake_engine *fe = fake_engine_create(4, 128, V, 16, 8);
    wisp_sched_opts o = {.model_identity = 7,
                         .n_vocab = V,
                         .n_ctx = 200,
                         .step_tokens = 16,
                         .max_eval_tokens = 5};
    wisp_sched *s = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_sched_create(&fe->base, &o, &s, &err) == 0);
    int32_t p[45];
    uint64_t rng = 11;
    tr_fill(&rng, p, 45, V);
    treq g, e;
    tr_init(&g, p, 45, 4); /* caches the prompt first */
    REQUIRE(tr_submit(s, &g) == 0);
    REQUIRE(tr_run(s, 100) > 0);
    tr_init(&e, p, 45, 0);
    e.evaluate = true;
    e.eval = malloc(sizeof(float) * 45 * V);
    treq others[3];
    for (int i = 0; i < 3; i++) {
        tr_init(&others[i], p + i, 30, 8);
        REQUIRE(tr_submit(s, &others[i]) == 0);
    }
    REQUIRE(tr_submit(s, &e) == 0);
    REQUIRE(tr_run(s, 1000) > 0);
    CHECK_EQ_INT(e.finished, 1);
    CHECK_EQ_INT(e.status, 0);
    CHECK_EQ_INT(e.usage.finish, WISP_SCHED_FINISH_EVALUATED);
    CHECK_EQ_INT(e.next_pos, 45);
    CHECK_EQ_INT(e.order_errors, 0);
    CHECK_EQ_INT(e.n_out, 0);
    float want[V];
    for (int pos = 0; pos < 45; pos++) {
        fake_reference_logits(p, pos + 1, want, V);
        if (memcmp(want, e.eval + (size_t)pos * V, sizeof want) != 0) {
            fprintf(stderr, "  logits of position %d differ\n", pos);
            CHECK(0);
            break;
        }
    }
    for (int i = 0; i < 3; i++)
        CHECK(others[i].finished == 1 && tr_output_ok(&others[i], V));
    free(e.eval);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A pool far too small for everyone at once: preemption, never failure. */
TEST(tiny_pool_forces_preemption)
{
    fake_engine *fe = fake_engine_create(4, 14, V, 64, 16);
    wisp_sched *s = make(fe, 64, 12, 64, 64);
    static treq t[24];
    uint64_t rng = 3;
    int32_t shared[8];
    tr_fill(&rng, shared, 8, V);
    for (int i = 0; i < 24; i++) {
        int32_t p[16];
        memcpy(p, shared, sizeof shared);
        tr_fill(&rng, p + 8, 2 + i % 6, V);
        tr_init(&t[i], p, 10 + i % 6, 16 + i % 9);
        REQUIRE(tr_submit(s, &t[i]) == 0);
    }
    REQUIRE(tr_run(s, 20000) > 0);
    int preempted = 0;
    for (int i = 0; i < 24; i++) {
        CHECK_EQ_INT(t[i].finished, 1);
        CHECK_EQ_INT(t[i].status, 0);
        CHECK_EQ_INT(t[i].n_out, t[i].max_tokens);
        CHECK_EQ_INT(t[i].order_errors, 0);
        CHECK(tr_output_ok(&t[i], V));
        preempted += t[i].usage.preemptions;
    }
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK(preempted > 0);
    CHECK_EQ_INT(st.preemptions, preempted);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* Cancellations before admission, mid-decode, mid-prefill step (the engine
 * stops between layers), and requests cancelling others from a callback. */
TEST(cancel_storm)
{
    fake_engine *fe = fake_engine_create(4, 96, V, 24, 16);
    wisp_sched *s = make(fe, 200, 10, 24, 64);
    static treq t[40];
    uint64_t rng = 17;
    for (int i = 0; i < 40; i++) {
        int32_t p[60];
        int n = 5 + (i * 11) % 50;
        tr_fill(&rng, p, n, V);
        tr_init(&t[i], p, n, 10 + i % 20);
        t[i].fe = fe;
        switch (i % 5) {
        case 0: atomic_store(&t[i].cancel, true); break;   /* before it starts */
        case 1: t[i].cancel_after = 1 + i % 4; break;      /* mid-decode */
        case 2: t[i].cancel_at_forward = 2 + i / 5; break; /* mid-step */
        default: break;
        }
        REQUIRE(tr_submit(s, &t[i]) == 0);
    }
    REQUIRE(tr_run(s, 20000) > 0);
    for (int i = 0; i < 40; i++) {
        CHECK_EQ_INT(t[i].finished, 1);
        CHECK_EQ_INT(t[i].order_errors, 0);
        CHECK(tr_output_ok(&t[i], V));
        if (i % 5 == 0 || i % 5 == 1 || i % 5 == 2) {
            CHECK_EQ_INT(t[i].status, WISP_E_CANCELLED);
            CHECK_EQ_INT(t[i].usage.finish, WISP_SCHED_FINISH_CANCELLED);
            if (i % 5 == 0)
                CHECK_EQ_INT(t[i].n_out, 0);
            if (i % 5 == 1)
                CHECK_EQ_INT(t[i].n_out, t[i].cancel_after);
        } else {
            CHECK_EQ_INT(t[i].status, 0);
            CHECK_EQ_INT(t[i].n_out, t[i].max_tokens);
        }
    }
    CHECK(fe->stopped > 0); /* some steps were cut between layers */
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK_EQ_INT(st.cancelled, 24);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

TEST(refusals_call_nothing)
{
    fake_engine *fe = fake_engine_create(4, 16, V, 32, 8);
    wisp_sched *s = make(fe, 100, 4, 32, 2);
    int32_t p[120] = {0};
    treq t[6];
    wisp_err err = {0};
    tr_init(&t[0], p, 90, 20); /* beyond n_ctx */
    wisp_sched_request_desc d = tr_desc(&t[0]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), WISP_E_TOO_LARGE);
    tr_init(&t[1], p, 60, 10); /* fits the context, not the 16 * 4 slot pool */
    d = tr_desc(&t[1]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "pool") != NULL);
    p[3] = V; /* not a token */
    tr_init(&t[2], p, 5, 1);
    d = tr_desc(&t[2]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), WISP_E_INVALID);
    p[3] = 0;
    d.on_token = NULL;
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), WISP_E_INTERNAL);
    tr_init(&t[3], p, 5, 1);
    tr_init(&t[4], p, 5, 1);
    tr_init(&t[5], p, 5, 1);
    uint64_t id1 = 0, id2 = 0;
    d = tr_desc(&t[3]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, &id1, &err), 0);
    d = tr_desc(&t[4]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, &id2, &err), 0);
    CHECK(id2 > id1);
    d = tr_desc(&t[5]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), WISP_E_OVERLOADED);
    REQUIRE(tr_run(s, 100) >= 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(t[i].finished, i == 3 || i == 4 ? 1 : 0);
    /* The queue drained: room again. */
    d = tr_desc(&t[5]);
    CHECK_EQ_INT(wisp_sched_submit(s, &d, NULL, &err), 0);
    REQUIRE(tr_run(s, 100) >= 0);
    CHECK_EQ_INT(t[5].finished, 1);
    wisp_sched_stats st;
    wisp_sched_get_stats(s, &st);
    CHECK_EQ_INT(st.rejected_overloaded, 1);
    CHECK_EQ_INT(st.rejected_too_large, 2);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

TEST(priority_then_first_come_first_served)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 32, 8);
    wisp_sched *s = make(fe, 100, 1, 32, 16);
    int32_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    treq t[5];
    int prio[5] = {0, 0, 5, 0, 5};
    for (int i = 0; i < 5; i++) {
        tr_init(&t[i], p, 8, 3);
        t[i].priority = prio[i];
        REQUIRE(tr_submit(s, &t[i]) == 0);
    }
    REQUIRE(tr_run(s, 200) > 0);
    /* One at a time: 2, 4 (priority 5, in arrival order), then 0, 1, 3. */
    int order[5] = {2, 4, 0, 1, 3};
    for (int k = 1; k < 5; k++)
        CHECK(t[order[k]].finish_seq > t[order[k - 1]].finish_seq);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

TEST(stop_token_and_zero_max_tokens)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 32, 8);
    wisp_sched *s = make(fe, 100, 4, 32, 16);
    int32_t p[10];
    uint64_t rng = 23;
    tr_fill(&rng, p, 10, V);
    int32_t want[30];
    fake_reference_greedy(p, 10, 30, V, want);
    treq a, b;
    tr_init(&a, p, 10, 30);
    a.stop_token = want[4];
    tr_init(&b, p, 10, 0);
    REQUIRE(tr_submit(s, &a) == 0);
    REQUIRE(tr_submit(s, &b) == 0);
    REQUIRE(tr_run(s, 200) > 0);
    int first = 0;
    while (want[first] != want[4])
        first++;
    CHECK_EQ_INT(a.n_out, first + 1);
    CHECK_EQ_INT(a.usage.finish, WISP_SCHED_FINISH_STOP);
    CHECK_EQ_INT(a.status, 0);
    CHECK(tr_output_ok(&a, V));
    CHECK_EQ_INT(b.finished, 1);
    CHECK_EQ_INT(b.n_out, 0);
    CHECK_EQ_INT(b.usage.finish, WISP_SCHED_FINISH_LENGTH);
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

TEST(engine_failure_ends_the_batch_only)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 32, 8);
    wisp_sched *s = make(fe, 100, 4, 32, 16);
    fe->fail_forward_at = 3;
    int32_t p[6] = {1, 2, 3, 4, 5, 6};
    treq a, b;
    tr_init(&a, p, 6, 8);
    REQUIRE(tr_submit(s, &a) == 0);
    REQUIRE(tr_run(s, 200) > 0);
    CHECK_EQ_INT(a.finished, 1);
    CHECK_EQ_INT(a.status, WISP_E_DEVICE);
    CHECK_EQ_INT(a.usage.finish, WISP_SCHED_FINISH_ERROR);
    CHECK(strstr(a.errmsg, "injected") != NULL);
    CHECK_EQ_INT(a.n_out, 2);
    tr_init(&b, p, 6, 8); /* the scheduler goes on serving */
    REQUIRE(tr_submit(s, &b) == 0);
    REQUIRE(tr_run(s, 200) > 0);
    CHECK(b.status == 0 && b.n_out == 8 && tr_output_ok(&b, V));
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

TEST(destroy_finishes_outstanding_requests)
{
    fake_engine *fe = fake_engine_create(4, 64, V, 32, 8);
    wisp_sched *s = make(fe, 100, 2, 32, 16);
    int32_t p[6] = {1, 2, 3, 4, 5, 6};
    treq t[5];
    for (int i = 0; i < 5; i++) {
        tr_init(&t[i], p, 6, 40);
        REQUIRE(tr_submit(s, &t[i]) == 0);
    }
    for (int k = 0; k < 3; k++)
        wisp_sched_step(s); /* two running, three waiting */
    wisp_sched_destroy(s);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(t[i].finished, 1);
        CHECK_EQ_INT(t[i].status, WISP_E_SHUTDOWN);
    }
    fake_engine_free(fe);
}

/* Submissions from another thread while the engine thread steps and waits. */
typedef struct producer {
    wisp_sched *s;
    treq *t;
    int n;
} producer;

static void *produce(void *ud)
{
    producer *pr = ud;
    for (int i = 0; i < pr->n; i++) {
        while (tr_submit(pr->s, &pr->t[i]) == WISP_E_OVERLOADED)
            usleep(100);
        if (i % 8 == 0)
            usleep(200);
    }
    return NULL;
}

TEST(submit_from_another_thread)
{
    fake_engine *fe = fake_engine_create(4, 128, V, 32, 8);
    wisp_sched *s = make(fe, 100, 8, 32, 8);
    static treq t[60];
    uint64_t rng = 31;
    for (int i = 0; i < 60; i++) {
        int32_t p[20];
        tr_fill(&rng, p, 5 + i % 15, V);
        tr_init(&t[i], p, 5 + i % 15, 1 + i % 7);
    }
    producer pr = {s, t, 60};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, produce, &pr) == 0);
    int done = 0;
    for (int guard = 0; done < 60 && guard < 100000; guard++) {
        if (!wisp_sched_step(s))
            wisp_sched_wait(s, 10);
        done = 0;
        for (int i = 0; i < 60; i++)
            done += t[i].finished;
    }
    pthread_join(th, NULL);
    for (int i = 0; i < 60; i++)
        CHECK(t[i].finished == 1 && t[i].status == 0 && tr_output_ok(&t[i], V));
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* Decode-first with chunked prefill, counted in steps rather than time: a
 * new request that arrives while 16 streams decode is admitted and
 * prefilled in the very next step, and that step still gives every stream
 * its token (neither side starves the other). Its 32 tokens are over the
 * prefill-first budget (64 / 4), so it does not get a step of its own. */
TEST(new_request_under_load_gets_its_first_token_next_step)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make(fe, 200, 32, 64, 64);
    static treq load[16], probe;
    uint64_t rng = 41;
    for (int i = 0; i < 16; i++) {
        int32_t p[3];
        tr_fill(&rng, p, 3, V);
        tr_init(&load[i], p, 3, 60);
        REQUIRE(tr_submit(s, &load[i]) == 0);
    }
    /* 48 prompt tokens in one step of 64: then everyone decodes. */
    for (int k = 0; k < 3; k++)
        REQUIRE(wisp_sched_step(s));
    for (int i = 0; i < 16; i++)
        REQUIRE(load[i].n_out == 3);
    int32_t p[32];
    tr_fill(&rng, p, 32, V);
    tr_init(&probe, p, 32, 4);
    REQUIRE(tr_submit(s, &probe) == 0);
    uint64_t before = fe->forwards;
    REQUIRE(wisp_sched_step(s));
    CHECK_EQ_INT(fe->forwards - before, 1);
    CHECK_EQ_INT(probe.n_out, 1);
    CHECK_EQ_INT(probe.usage.queue_ms >= 0, 1);
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(load[i].n_out, 4);
    CHECK_EQ_INT(fe->max_step_tokens, 48);
    REQUIRE(tr_run(s, 1000) > 0);
    CHECK(probe.finished == 1 && probe.status == 0 && tr_output_ok(&probe, V));
    for (int i = 0; i < 16; i++)
        CHECK(load[i].finished == 1 && load[i].n_out == 60 && tr_output_ok(&load[i], V));
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A prompt longer than a step is absorbed in chunks of what the decodes
 * leave of the budget: each of the 16 streams still gets one token per
 * step, the prompt is done in ceil(200 / (64 - 16)) = 5 steps, and a short
 * request behind it (first come, first served) starts as soon as the long
 * one's last chunk leaves room: it is short enough to be prefilled first,
 * but not while an earlier prompt is still being absorbed. */
TEST(long_prompt_in_chunks_beside_decodes)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make(fe, 300, 32, 64, 64);
    static treq load[16], longp, shortp;
    uint64_t rng = 43;
    for (int i = 0; i < 16; i++) {
        int32_t p[3];
        tr_fill(&rng, p, 3, V);
        tr_init(&load[i], p, 3, 40);
        REQUIRE(tr_submit(s, &load[i]) == 0);
    }
    REQUIRE(wisp_sched_step(s));
    int32_t p[200];
    tr_fill(&rng, p, 200, V);
    tr_init(&longp, p, 200, 2);
    REQUIRE(tr_submit(s, &longp) == 0);
    tr_fill(&rng, p, 10, V);
    tr_init(&shortp, p, 10, 2);
    REQUIRE(tr_submit(s, &shortp) == 0);
    int steps_long = 0, steps_short = 0;
    for (int k = 1; k <= 8; k++) {
        int had[16];
        for (int i = 0; i < 16; i++)
            had[i] = load[i].n_out;
        REQUIRE(wisp_sched_step(s));
        for (int i = 0; i < 16; i++)
            CHECK_EQ_INT(load[i].n_out, had[i] + 1);
        if (!steps_long && longp.n_out > 0)
            steps_long = k;
        if (!steps_short && shortp.n_out > 0)
            steps_short = k;
    }
    CHECK_EQ_INT(steps_long, 5);
    /* 200 = 4 * 48 + 8: the fifth step has 40 tokens of room left. */
    CHECK_EQ_INT(steps_short, 5);
    CHECK(fe->max_step_tokens <= 64);
    REQUIRE(tr_run(s, 1000) > 0);
    CHECK(longp.finished == 1 && tr_output_ok(&longp, V));
    CHECK(shortp.finished == 1 && tr_output_ok(&shortp, V));
    for (int i = 0; i < 16; i++)
        CHECK(load[i].finished == 1 && tr_output_ok(&load[i], V));
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* ------------------------------------------------------------ prefill first */

/* Submits n 3-token requests of max_tokens and steps until all decode. */
static void start_load(wisp_sched *s, treq *load, int n, int max_tokens, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        int32_t p[3];
        tr_fill(rng, p, 3, V);
        tr_init(&load[i], p, 3, max_tokens);
        REQUIRE(tr_submit(s, &load[i]) == 0);
    }
    /* 3n prompt tokens within one step's budget: one step, then decodes. */
    REQUIRE(wisp_sched_step(s));
    for (int i = 0; i < n; i++)
        REQUIRE(load[i].n_out == 1);
}

/* What one step held: its engine tokens and how many of the load streams
 * got a token in it. */
typedef struct step_rows {
    int tokens, decoded;
} step_rows;

static step_rows step_once(wisp_sched *s, fake_engine *fe, const treq *load, int n)
{
    int had[64];
    for (int i = 0; i < n; i++)
        had[i] = load[i].n_out;
    uint64_t forwards = fe->forwards, tokens = fe->tokens_in;
    (void)wisp_sched_step(s); /* false after the last step */
    CHECK_EQ_INT(fe->forwards - forwards, 1);
    step_rows r = {.tokens = (int)(fe->tokens_in - tokens)};
    for (int i = 0; i < n; i++)
        r.decoded += load[i].n_out > had[i];
    return r;
}

static void finish_all(wisp_sched *s, fake_engine *fe, treq *t, int n)
{
    REQUIRE(tr_run(s, 1000) >= 0);
    for (int i = 0; i < n; i++)
        CHECK(t[i].finished == 1 && t[i].status == 0 && tr_output_ok(&t[i], V));
    check_clean(s, fe);
}

/* A short prompt that arrives while 16 streams decode runs alone in the
 * next step and gets its first token there; the step after holds the 16
 * decodes and its own second token. */
TEST(prefill_first_short_prompt_runs_alone_then_decodes)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, 24);
    static treq load[16], probe;
    uint64_t rng = 51;
    start_load(s, load, 16, 30, &rng);
    int32_t p[24];
    tr_fill(&rng, p, 24, V);
    tr_init(&probe, p, 24, 4);
    REQUIRE(tr_submit(s, &probe) == 0);
    step_rows a = step_once(s, fe, load, 16);
    CHECK_EQ_INT(a.tokens, 24);
    CHECK_EQ_INT(a.decoded, 0);
    CHECK_EQ_INT(probe.n_out, 1);
    step_rows b = step_once(s, fe, load, 16);
    CHECK_EQ_INT(b.tokens, 17);
    CHECK_EQ_INT(b.decoded, 16);
    CHECK_EQ_INT(probe.n_out, 2);
    finish_all(s, fe, load, 16);
    finish_all(s, fe, &probe, 1);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* Switched off, the same prompt shares the next step with the decodes. */
TEST(prefill_first_off_mixes_the_prompt_with_decodes)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, -1);
    static treq load[16], probe;
    uint64_t rng = 51;
    start_load(s, load, 16, 30, &rng);
    int32_t p[24];
    tr_fill(&rng, p, 24, V);
    tr_init(&probe, p, 24, 4);
    REQUIRE(tr_submit(s, &probe) == 0);
    step_rows a = step_once(s, fe, load, 16);
    CHECK_EQ_INT(a.tokens, 16 + 24);
    CHECK_EQ_INT(a.decoded, 16);
    CHECK_EQ_INT(probe.n_out, 1);
    finish_all(s, fe, load, 16);
    finish_all(s, fe, &probe, 1);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A flood of short prompts: the first step takes the ones that fit the
 * budget whole (2 x 6 of 16 tokens), the next gives every stream its token
 * and admits the rest decode-first; no stream ever misses two steps in a
 * row, and every output is the oracle's. */
TEST(prefill_first_flood_never_starves_decodes)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, 16);
    static treq load[16], flood[12];
    uint64_t rng = 53;
    start_load(s, load, 16, 40, &rng);
    for (int i = 0; i < 12; i++) {
        int32_t p[6];
        tr_fill(&rng, p, 6, V);
        tr_init(&flood[i], p, 6, 3);
        REQUIRE(tr_submit(s, &flood[i]) == 0);
    }
    step_rows a = step_once(s, fe, load, 16);
    CHECK_EQ_INT(a.tokens, 12);
    CHECK_EQ_INT(a.decoded, 0);
    CHECK(flood[0].n_out == 1 && flood[1].n_out == 1 && flood[2].n_out == 0);
    step_rows b = step_once(s, fe, load, 16);
    CHECK_EQ_INT(b.decoded, 16);
    /* 18 decodes, then 46 tokens of admissions: 7 prompts and 4 of the 8th. */
    CHECK_EQ_INT(b.tokens, 64);
    CHECK(flood[8].n_out == 1 && flood[9].n_out == 0);
    int skipped = 0, alone = 1, steps = 0;
    while (load[0].n_out < 40 && steps++ < 100) {
        int live = 0;
        for (int i = 0; i < 16; i++)
            live += load[i].n_out < 40;
        step_rows r = step_once(s, fe, load, 16);
        if (r.decoded == 0) {
            alone++;
            CHECK_EQ_INT(skipped, 0);
        } else {
            CHECK_EQ_INT(r.decoded, live);
        }
        skipped = r.decoded == 0;
    }
    /* The flood's prompts were all admitted by the second step's end. */
    CHECK_EQ_INT(alone, 1);
    for (int i = 0; i < 12; i++)
        CHECK(flood[i].finished == 1 && tr_output_ok(&flood[i], V));
    finish_all(s, fe, load, 16);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* The budget counts the tokens to compute: a 46-token prompt whose first 40
 * are cached runs first with 6, and the cache is asked once. */
TEST(prefill_first_counts_only_uncached_tokens)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, 16);
    static treq seed, load[16], probe;
    uint64_t rng = 55;
    int32_t p[46];
    tr_fill(&rng, p, 46, V);
    tr_init(&seed, p, 40, 1);
    REQUIRE(tr_submit(s, &seed) == 0);
    REQUIRE(tr_run(s, 100) >= 0);
    start_load(s, load, 16, 30, &rng);
    tr_init(&probe, p, 46, 3);
    REQUIRE(tr_submit(s, &probe) == 0);
    wisp_sched_stats before, after;
    wisp_sched_get_stats(s, &before);
    step_rows a = step_once(s, fe, load, 16);
    wisp_sched_get_stats(s, &after);
    CHECK_EQ_INT(a.tokens, 6);
    CHECK_EQ_INT(a.decoded, 0);
    CHECK_EQ_INT(probe.n_out, 1);
    CHECK_EQ_INT(after.kv.prefix_queries - before.kv.prefix_queries, 1);
    CHECK_EQ_INT(after.kv.hit_tokens - before.kv.hit_tokens, 40);
    finish_all(s, fe, load, 16);
    finish_all(s, fe, &probe, 1);
    CHECK_EQ_INT(probe.usage.cached_tokens, 40);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A prompt whose uncached rest is over the budget goes decode-first in the
 * same step, and its prefix attachment is handed over, not asked twice. */
TEST(prefill_first_over_budget_goes_mixed_with_one_cache_query)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, 16);
    static treq seed, load[16], probe;
    uint64_t rng = 57;
    int32_t p[70];
    tr_fill(&rng, p, 70, V);
    tr_init(&seed, p, 40, 1);
    REQUIRE(tr_submit(s, &seed) == 0);
    REQUIRE(tr_run(s, 100) >= 0);
    start_load(s, load, 16, 30, &rng);
    tr_init(&probe, p, 70, 3);
    REQUIRE(tr_submit(s, &probe) == 0);
    wisp_sched_stats before, after;
    wisp_sched_get_stats(s, &before);
    step_rows a = step_once(s, fe, load, 16);
    wisp_sched_get_stats(s, &after);
    CHECK_EQ_INT(a.tokens, 16 + 30);
    CHECK_EQ_INT(a.decoded, 16);
    CHECK_EQ_INT(probe.n_out, 1);
    CHECK_EQ_INT(after.kv.prefix_queries - before.kv.prefix_queries, 1);
    CHECK_EQ_INT(after.kv.hit_tokens - before.kv.hit_tokens, 40);
    finish_all(s, fe, load, 16);
    finish_all(s, fe, &probe, 1);
    CHECK_EQ_INT(probe.usage.cached_tokens, 40);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* Only new generate requests go first: an evaluate request shares the step
 * with the decodes. */
TEST(prefill_first_not_for_evaluate)
{
    fake_engine *fe = fake_engine_create(4, 512, V, 64, 32);
    wisp_sched *s = make_pf(fe, 200, 32, 64, 64, 16);
    static treq load[16], ev;
    uint64_t rng = 59;
    start_load(s, load, 16, 30, &rng);
    int32_t p[8];
    tr_fill(&rng, p, 8, V);
    tr_init(&ev, p, 8, 0);
    ev.evaluate = true;
    ev.n_vocab = V;
    ev.eval = calloc((size_t)8 * V, sizeof *ev.eval);
    REQUIRE(ev.eval);
    REQUIRE(tr_submit(s, &ev) == 0);
    step_rows a = step_once(s, fe, load, 16);
    CHECK_EQ_INT(a.tokens, 16 + 8);
    CHECK_EQ_INT(a.decoded, 16);
    CHECK_EQ_INT(ev.next_pos, 8);
    finish_all(s, fe, load, 16);
    CHECK(ev.finished == 1 && ev.order_errors == 0);
    free(ev.eval);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A pool of 4 blocks of 16: a seed leaves prompt p's first block cached
 * only, then a request takes the other 3 blocks and decodes (n_out tokens)
 * while a request on p's prefix waits for a block. */
typedef struct wait_case {
    int prefill_first; /* opts.prefill_first_tokens */
    int busy_tokens;   /* the running request's max_tokens */
    bool busy_grows;   /* it needs the 4th block while the other waits */
    int want_queries;  /* prefix queries from the waiter's submit on */
    int cancel_at;     /* the waiter cancels after waiting this many steps; 0 never */
    int rival_at;      /* a higher-priority request arrives then and goes first; 0 never */
} wait_case;

static void run_wait_case(const wait_case *c)
{
    fake_engine *fe = fake_engine_create(16, 4, V, 64, 8);
    wisp_sched *s = make_pf(fe, 64, 8, 64, 8, c->prefill_first);
    static treq seed, busy, waiter, rival;
    uint64_t rng = 61;
    int32_t p[20], q[41];
    tr_fill(&rng, p, 20, V);
    tr_fill(&rng, q, 41, V);
    tr_init(&seed, p, 16, 1);
    REQUIRE(tr_submit(s, &seed) == 0);
    REQUIRE(tr_run(s, 100) >= 0);
    tr_init(&busy, q, 41, c->busy_tokens);
    REQUIRE(tr_submit(s, &busy) == 0);
    REQUIRE(wisp_sched_step(s));
    wisp_sched_stats before, after;
    wisp_sched_get_stats(s, &before);
    CHECK_EQ_INT(before.kv.blocks_used, 3);
    CHECK_EQ_INT(before.kv.blocks_cached_only, 1);
    tr_init(&waiter, p, 20, 2);
    REQUIRE(tr_submit(s, &waiter) == 0);
    int waited = 0;
    while (waiter.n_out == 0 && waited < 100 && wisp_sched_step(s)) {
        waited++;
        wisp_sched_stats mid;
        wisp_sched_get_stats(s, &mid);
        if (c->cancel_at && waited > c->cancel_at) {
            /* Cancelled: its held prefix is back in the cache only. */
            CHECK_EQ_INT(waiter.finished, 1);
            CHECK_EQ_INT(mid.kv.blocks_used, busy.finished ? 0 : 3);
        }
        if (c->rival_at && waited == c->rival_at) {
            int32_t rp[4];
            tr_fill(&rng, rp, 4, V);
            tr_init(&rival, rp, 4, 1);
            rival.priority = 1;
            REQUIRE(tr_submit(s, &rival) == 0);
        }
        if (c->cancel_at && waited == c->cancel_at) {
            CHECK_EQ_INT(mid.kv.blocks_used, 4); /* busy's 3 and the held one */
            atomic_store(&waiter.cancel, true);
        }
    }
    CHECK(waited >= 6); /* it did wait while busy decoded */
    REQUIRE(tr_run(s, 100) >= 0);
    wisp_sched_get_stats(s, &after);
    CHECK_EQ_INT((int)(after.kv.prefix_queries - before.kv.prefix_queries), c->want_queries);
    CHECK(after.kv.prefix_hits - before.kv.prefix_hits <= (uint64_t)c->want_queries);
    CHECK_EQ_INT((int)after.preemptions, 0);
    /* Growing busy or the rival took the held block (demoted to the host
     * tier, promoted back for the waiter's second query); else the waiter
     * kept it. */
    CHECK_EQ_INT(after.kv.promotions > before.kv.promotions, c->busy_grows || c->rival_at);
    if (c->rival_at) {
        CHECK(rival.finished == 1 && rival.status == 0 && rival.n_out == 1);
        CHECK(tr_output_ok(&rival, V));
        CHECK(rival.finish_seq < busy.finish_seq); /* it did not wait for busy */
    }
    CHECK(busy.finished == 1 && busy.status == 0 && busy.n_out == c->busy_tokens);
    CHECK(tr_output_ok(&busy, V));
    if (c->cancel_at) {
        CHECK(waiter.finished == 1 && waiter.status == WISP_E_CANCELLED && waiter.n_out == 0);
    } else {
        CHECK(waiter.finished == 1 && waiter.status == 0 && waiter.n_out == 2);
        CHECK(tr_output_ok(&waiter, V));
        CHECK_EQ_INT(waiter.usage.cached_tokens, 16);
    }
    check_clean(s, fe);
    wisp_sched_destroy(s);
    fake_engine_free(fe);
}

/* A head waiting for blocks asks the prefix cache once, however many steps
 * it waits, with prefill-first on and off; cancelled while it waits, it
 * gives the prefix it holds back. */
TEST(waiting_head_queries_the_prefix_cache_once)
{
    static const wait_case cases[] = {
        {.prefill_first = 0, .busy_tokens = 8, .busy_grows = false, .want_queries = 1},
        {.prefill_first = -1, .busy_tokens = 8, .busy_grows = false, .want_queries = 1},
        {.prefill_first = 0, .busy_tokens = 8, .want_queries = 1, .cancel_at = 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_wait_case(&cases[i]);
}

/* The prefix a waiting head holds goes back to the pool when a running
 * decode needs a block, or when a higher-priority arrival takes the head
 * and needs the block: no preemption, and the head asks again (its prefix
 * comes back from the host tier; the rival's lookup is the third query). */
TEST(held_prefix_yields_to_a_running_decode)
{
    static const wait_case cases[] = {
        {.prefill_first = 0, .busy_tokens = 12, .busy_grows = true, .want_queries = 2},
        {.prefill_first = -1, .busy_tokens = 12, .busy_grows = true, .want_queries = 2},
        {.prefill_first = 0, .busy_tokens = 8, .want_queries = 3, .rival_at = 2},
        {.prefill_first = -1, .busy_tokens = 8, .want_queries = 3, .rival_at = 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_wait_case(&cases[i]);
}
