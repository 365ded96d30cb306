/*
 * test_rpc.c - unit tests of the RPC layer's parts that the e2e suite
 * cannot reach without a model: the engine thread keeping many jobs alive
 * through the step hook, $/stream ordering, cancellation, backpressure, and
 * the framer, registry and params checks at their edges.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"
#include "rpc/framer.h"
#include "rpc/job_int.h"
#include "rpc/mailbox.h"
#include "rpc/method.h"
#include "rpc/params.h"
#include "rpc/registry.h"
#include "rpc/worker.h"

/* ------------------------------------------------------------ a fake scheduler */

#define MAX_KEPT 64

typedef struct sched {
    wisp_job *jobs[MAX_KEPT];
    int pieces[MAX_KEPT];
    int n;
    int pieces_per_job;
    atomic_int steps;
} sched;

static sched S;

static void keep_fn(wisp_job *job)
{
    S.pieces[S.n] = 0;
    S.jobs[S.n++] = job;
}

static bool step(void *ud)
{
    sched *s = ud;
    atomic_fetch_add(&s->steps, 1);
    for (int i = 0; i < s->n;) {
        wisp_job *job = s->jobs[i];
        bool done = false;
        if (wisp_job_cancelled(job)) {
            json_t *toks = json_array();
            for (int k = 0; k < s->pieces[i]; k++)
                json_array_append_new(toks, json_integer(k));
            wisp_job_error(job, WISP_RPC_REQUEST_CANCELLED, NULL,
                           json_pack("{s:s, s:o}", "text", "", "tokens", toks));
            done = true;
        } else if (s->pieces[i] == s->pieces_per_job) {
            wisp_job_reply(job, json_pack("{s:i}", "pieces", s->pieces[i]));
            done = true;
        } else {
            int32_t tok = s->pieces[i];
            int rc = wisp_job_stream(job, s->pieces[i], "x", 1, &tok, 1, NULL);
            if (rc == 0)
                s->pieces[i]++;
        }
        if (done) {
            s->n--;
            s->jobs[i] = s->jobs[s->n];
            s->pieces[i] = s->pieces[s->n];
        } else
            i++;
    }
    return s->n > 0;
}

static const wisp_method keep_method = {"test/keep", keep_fn, NULL, WISP_M_ENGINE, NULL, ""};

typedef struct rig {
    wisp_mailbox mb;
    wisp_worker *w;
} rig;

static void rig_start(rig *r, size_t hwm)
{
    memset(&S, 0, sizeof S);
    wisp_mailbox_init(&r->mb, hwm, NULL, NULL);
    wisp_err err;
    REQUIRE(wisp_worker_start(&r->w, &err) == 0);
    wisp_worker_set_step(r->w, step, &S);
}

static wisp_job *submit(rig *r, int id)
{
    json_t *jid = json_integer(id), *params = json_object();
    wisp_job *job = wisp_job_new(NULL, NULL, &r->mb, &keep_method, jid, params);
    json_decref(jid);
    json_decref(params);
    REQUIRE(job);
    job->on_engine = true;
    wisp_worker_submit(r->w, job);
    return job;
}

/* Collects mailbox items until n answers came (or 5 s pass). Per id:
 * streams seen, whether a stream came after the answer, the answer. */
typedef struct seen {
    int streams[MAX_KEPT];
    int answers[MAX_KEPT];
    int codes[MAX_KEPT];
    bool late_stream;
    int n_answers;
} seen;

static void collect(rig *r, seen *sn, int n)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sn->n_answers < n) {
        wisp_mailbox_item *it = wisp_mailbox_take(&r->mb);
        while (it) {
            wisp_mailbox_item *next = it->next;
            if (it->job) {
                int id = (int)json_integer_value(it->job->id);
                sn->answers[id]++;
                json_t *err = json_object_get(it->response, "error");
                sn->codes[id] = err ? (int)json_integer_value(json_object_get(err, "code")) : 0;
                sn->n_answers++;
                wisp_job_free(it->job);
            } else {
                json_t *m = json_loads(it->text, 0, NULL);
                int id =
                    (int)json_integer_value(json_object_get(json_object_get(m, "params"), "id"));
                if (sn->answers[id])
                    sn->late_stream = true;
                sn->streams[id]++;
                json_decref(m);
            }
            wisp_mailbox_item_free(it);
            it = next;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        REQUIRE(t.tv_sec - t0.tv_sec < 5);
        usleep(1000);
    }
}

static void rig_stop(rig *r)
{
    wisp_mailbox_close(&r->mb);
    wisp_worker_stop(r->w);
    wisp_worker_free(r->w);
    wisp_mailbox_free(&r->mb);
}

TEST(engine_keeps_many_jobs_alive_and_streams_before_answers)
{
    rig r;
    rig_start(&r, (size_t)1 << 30);
    S.pieces_per_job = 5;
    for (int i = 0; i < 20; i++)
        submit(&r, i);
    seen sn = {0};
    collect(&r, &sn, 20);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(sn.answers[i], 1);
        CHECK_EQ_INT(sn.codes[i], 0);
        CHECK_EQ_INT(sn.streams[i], 5);
    }
    CHECK(!sn.late_stream);
    rig_stop(&r);
}

TEST(cancel_wakes_the_engine_and_answers_32800)
{
    rig r;
    /* A tiny high-water mark and nobody reporting progress: every stream
     * after the first blocks, as with a client that stopped reading. */
    rig_start(&r, 1);
    S.pieces_per_job = 1000000;
    wisp_job *a = submit(&r, 1);
    usleep(50 * 1000);
    /* The step is blocked in wisp_job_stream; cancelling must unblock it. */
    atomic_store(&a->cancelled, true);
    wisp_mailbox_kick(&r.mb);
    wisp_worker_wake(r.w);
    seen sn = {0};
    wisp_mailbox_set_out_bytes(&r.mb, 0);
    collect(&r, &sn, 1);
    CHECK_EQ_INT(sn.codes[1], WISP_RPC_REQUEST_CANCELLED);
    CHECK(sn.streams[1] >= 1 && sn.streams[1] < 1000);
    rig_stop(&r);
}

TEST(backpressure_pauses_streams_until_output_drains)
{
    rig r;
    rig_start(&r, 100);
    S.pieces_per_job = 50;
    submit(&r, 2);
    usleep(100 * 1000);
    /* The loop reports a backlog it has not written yet; then takes what
     * got in before (at most ~100 bytes worth of streams). */
    wisp_mailbox_set_out_bytes(&r.mb, 1000);
    wisp_mailbox_item *it = wisp_mailbox_take(&r.mb);
    int n = 0;
    size_t bytes = 0;
    for (wisp_mailbox_item *p = it; p; p = p->next, n++)
        bytes += p->len;
    CHECK(n >= 1 && n <= 3);
    CHECK(bytes > 0);
    usleep(50 * 1000);
    CHECK(wisp_mailbox_take(&r.mb) == NULL);
    while (it) {
        wisp_mailbox_item *next = it->next;
        wisp_mailbox_item_free(it);
        it = next;
    }
    /* The reader caught up: the rest flows. */
    wisp_mailbox_set_out_bytes(&r.mb, 0);
    seen sn = {0};
    sn.streams[2] = n;
    collect(&r, &sn, 1);
    CHECK_EQ_INT(sn.codes[2], 0);
    CHECK_EQ_INT(sn.streams[2], 50);
    rig_stop(&r);
}

TEST(cancelled_before_start_and_stop_answers_queued)
{
    rig r;
    rig_start(&r, (size_t)1 << 30);
    S.pieces_per_job = 3;
    /* Cancelled while queued: the engine answers without running it. The
     * flag is set before the engine can take the job, since the worker's
     * queue lock orders it (submit happens after the store). */
    json_t *jid = json_integer(3), *params = json_object();
    wisp_job *j = wisp_job_new(NULL, NULL, &r.mb, &keep_method, jid, params);
    json_decref(jid);
    json_decref(params);
    REQUIRE(j);
    j->on_engine = true;
    atomic_store(&j->cancelled, true);
    wisp_worker_submit(r.w, j);
    seen sn = {0};
    collect(&r, &sn, 1);
    CHECK_EQ_INT(sn.codes[3], WISP_RPC_REQUEST_CANCELLED);
    CHECK_EQ_INT(sn.streams[3], 0);
    rig_stop(&r);
}

/* An idle step hook that asks to be woken later runs again once, at the
 * deadline, and not before or after: the worker sleeps in between. */
typedef struct timer_state {
    wisp_worker *w;
    atomic_int turns;
    double t_first, t_second;
} timer_state;

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static bool timer_step(void *ud)
{
    timer_state *ts = ud;
    int n = atomic_fetch_add(&ts->turns, 1) + 1;
    if (n == 1) {
        ts->t_first = mono_ms();
        wisp_worker_wake_after(ts->w, 100);
    } else if (n == 2) {
        ts->t_second = mono_ms();
    }
    return false;
}

TEST(wake_after_runs_an_idle_hook_once_at_the_deadline)
{
    timer_state ts = {0};
    atomic_init(&ts.turns, 0);
    wisp_err err;
    REQUIRE(wisp_worker_start(&ts.w, &err) == 0);
    wisp_worker_set_step(ts.w, timer_step, &ts);
    double t0 = mono_ms();
    while (atomic_load(&ts.turns) < 2 && mono_ms() - t0 < 5000)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    CHECK_EQ_INT(atomic_load(&ts.turns), 2);
    CHECK(ts.t_second - ts.t_first >= 95);
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    CHECK_EQ_INT(atomic_load(&ts.turns), 2); /* one-shot: no further turns */
    wisp_worker_stop(ts.w);
    wisp_worker_free(ts.w);
}

TEST(notify_after_close_is_refused)
{
    wisp_mailbox mb;
    wisp_mailbox_init(&mb, 10, NULL, NULL);
    wisp_mailbox_close(&mb);
    wisp_job job;
    memset(&job, 0, sizeof job);
    atomic_init(&job.cancelled, false);
    char *text = strdup("{}");
    CHECK_EQ_INT(wisp_mailbox_post_notify(&mb, &job, text, 2), WISP_E_SHUTDOWN);
    CHECK(wisp_mailbox_take(&mb) == NULL);
    wisp_mailbox_free(&mb);
}

/* ------------------------------------------------------------ framer */

typedef struct got {
    char msgs[16][256];
    int n, too_large, bad_header;
} got;

static void g_msg(void *ud, const char *d, size_t n)
{
    got *g = ud;
    if (g->n < 16 && n < 256) {
        memcpy(g->msgs[g->n], d, n);
        g->msgs[g->n][n] = 0;
    }
    g->n++;
}
static void g_big(void *ud, size_t n) { ((got *)ud)->too_large++; }
static void g_bad(void *ud, const char *why) { ((got *)ud)->bad_header++; }

static void frame_all(const char *in, size_t len, size_t max, size_t split, got *g)
{
    wisp_framer f;
    wisp_framer_cb cb = {g_msg, g_big, g_bad};
    memset(g, 0, sizeof *g);
    wisp_framer_init(&f, max, &cb, g);
    for (size_t off = 0; off < len; off += split)
        wisp_framer_feed(&f, in + off, len - off < split ? len - off : split);
    wisp_framer_finish(&f);
    wisp_framer_free(&f);
}

TEST(framer_same_messages_at_every_split)
{
    static const char nd[] = "\r\n{\"a\":1}\r\n\n[2]\n{\"toolongtoolongtoolong\":1}\n{\"b\":3}";
    static const char lsp[] =
        "\r\nContent-Length: 7\r\n\r\n{\"a\":1}content-length:  3 \r\n"
        "Content-Type: x\r\n\r\n[2]Content-Length: 40\r\n\r\n"
        "0123456789012345678901234567890123456789Content-Length: 7\r\n\r\n{\"b\":3}";
    for (size_t split = 1; split <= sizeof nd; split++) {
        got g;
        frame_all(nd, sizeof nd - 1, 20, split, &g);
        CHECK_EQ_INT(g.n, 3);
        CHECK_EQ_INT(g.too_large, 1);
        CHECK_EQ_STR(g.msgs[0], "{\"a\":1}");
        CHECK_EQ_STR(g.msgs[1], "[2]");
        CHECK_EQ_STR(g.msgs[2], "{\"b\":3}");
        frame_all(lsp, sizeof lsp - 1, 20, split, &g);
        CHECK_EQ_INT(g.n, 3);
        CHECK_EQ_INT(g.too_large, 1);
        CHECK_EQ_INT(g.bad_header, 0);
        CHECK_EQ_STR(g.msgs[0], "{\"a\":1}");
        CHECK_EQ_STR(g.msgs[1], "[2]");
        CHECK_EQ_STR(g.msgs[2], "{\"b\":3}");
    }
}

TEST(framer_header_errors_resync)
{
    static const char in[] =
        "Content-Length: 5x\r\n\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"
        "Content-Type: a\r\n\r\nContent-Length: 2\r\n\r\n[]";
    got g;
    frame_all(in, sizeof in - 1, 100, 3, &g);
    CHECK_EQ_INT(g.bad_header, 3);
    CHECK_EQ_INT(g.n, 1);
    CHECK_EQ_STR(g.msgs[0], "[]");
}

TEST(framer_skips_the_body_of_a_refused_header)
{
    /* The bad block's body has no newline and runs into the next header;
     * then garbage before a header is reported once; a truncated body at
     * the end is reported too. At every split the same. */
    static const char in[] = "Content-Length: 4x\r\n\r\n{\"jsonrpc\": \"2.0\",\n \"id\": 1}"
                             "Content-Length: 2\r\n\r\n[]"
                             "junk Content-Length: 3\r\n\r\n[1]"
                             "Content-Length: 9\r\n\r\n[2";
    for (size_t split = 1; split <= sizeof in; split++) {
        got g;
        frame_all(in, sizeof in - 1, 100, split, &g);
        CHECK_EQ_INT(g.n, 2);
        CHECK_EQ_INT(g.bad_header, 3);
        CHECK_EQ_STR(g.msgs[0], "[]");
        CHECK_EQ_STR(g.msgs[1], "[1]");
    }
}

/* ------------------------------------------------------------ registry, params */

TEST(registry_survives_churn)
{
    wisp_registry r;
    wisp_registry_init(&r);
    static char keys[2000][16];
    wisp_job *fake = (wisp_job *)&r;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 2000; i++) {
            snprintf(keys[i], sizeof keys[i], "%d", i + round * 7);
            CHECK_EQ_INT(wisp_registry_add(&r, keys[i], fake), 0);
        }
        CHECK_EQ_INT(wisp_registry_add(&r, keys[5], fake), WISP_E_BUSY);
        CHECK_EQ_INT(r.count, 2000);
        for (int i = 0; i < 2000; i += 2)
            CHECK(wisp_registry_remove(&r, keys[i]) == fake);
        for (int i = 0; i < 2000; i++)
            CHECK((wisp_registry_find(&r, keys[i]) != NULL) == (i % 2 == 1));
        for (int i = 1; i < 2000; i += 2)
            CHECK(wisp_registry_remove(&r, keys[i]) == fake);
        CHECK_EQ_INT(r.count, 0);
        CHECK(wisp_registry_remove(&r, "1") == NULL);
    }
    wisp_registry_free(&r);
}

TEST(params_messages_name_the_field)
{
    static const wisp_param fields[] = {
        {"n", WISP_PT_INT, true, 1, 10, NULL},
        {"p", WISP_PT_PROMPT, false, 0, 5, NULL},
        {NULL, 0, false, 0, 0, NULL},
    };
    char msg[200];
    json_t *ok = json_pack("{s:i, s:[i,i]}", "n", 3, "p", 1, 5);
    CHECK(wisp_params_check(fields, false, ok, msg, sizeof msg));
    json_t *bad = json_pack("{s:i}", "n", 11);
    CHECK(!wisp_params_check(fields, false, bad, msg, sizeof msg));
    CHECK_EQ_STR(msg, "'n' must be an integer in [1, 10]");
    json_t *bad2 = json_pack("{s:i, s:[i,i]}", "n", 1, "p", 1, 6);
    CHECK(!wisp_params_check(fields, false, bad2, msg, sizeof msg));
    CHECK_EQ_STR(msg, "'p[1]' must be an integer in [0, 5]");
    json_t *bad3 = json_pack("{s:i, s:i}", "n", 1, "zz", 1);
    CHECK(!wisp_params_check(fields, false, bad3, msg, sizeof msg));
    CHECK_EQ_STR(msg, "unknown field 'zz'");
    CHECK(wisp_params_check(fields, true, bad3, msg, sizeof msg));
    json_decref(ok);
    json_decref(bad);
    json_decref(bad2);
    json_decref(bad3);
}

/* The one $/stream encoder: every field, invalid UTF-8 made lossless-safe,
 * probs only when given. */
static json_t *stream_once(wisp_mailbox *mb, wisp_job *job, const char *text, size_t len,
                           json_t *probs)
{
    int32_t toks[2] = {7, 8};
    CHECK_EQ_INT(wisp_job_stream(job, 3, text, len, toks, 2, probs), 0);
    wisp_mailbox_item *it = wisp_mailbox_take(mb);
    REQUIRE(it && !it->job && !it->next);
    json_t *m = json_loadb(it->text, it->len, 0, NULL);
    wisp_mailbox_item_free(it);
    REQUIRE(m);
    return m;
}

TEST(stream_encoder_writes_every_field)
{
    wisp_mailbox mb;
    wisp_mailbox_init(&mb, (size_t)1 << 20, NULL, NULL);
    json_t *jid = json_string("a"), *params = json_object();
    wisp_job *job = wisp_job_new(NULL, NULL, &mb, &keep_method, jid, params);
    json_decref(jid);
    json_decref(params);
    REQUIRE(job);
    job->on_engine = true;

    json_t *m = stream_once(&mb, job, "h\xffi!", 3, json_pack("[{s:i}]", "token", 7));
    CHECK(strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") == 0);
    CHECK(strcmp(json_string_value(json_object_get(m, "method")), "$/stream") == 0);
    json_t *p = json_object_get(m, "params");
    CHECK(strcmp(json_string_value(json_object_get(p, "id")), "a") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "index")), 3);
    CHECK(strcmp(json_string_value(json_object_get(p, "text")), "h\xef\xbf\xbdi") == 0);
    json_t *t = json_object_get(p, "tokens");
    CHECK_EQ_INT(json_array_size(t), 2);
    CHECK_EQ_INT(json_integer_value(json_array_get(t, 1)), 8);
    json_t *pr = json_object_get(p, "probs");
    CHECK_EQ_INT(json_array_size(pr), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(pr, 0), "token")), 7);
    json_decref(m);

    m = stream_once(&mb, job, "", 0, NULL);
    p = json_object_get(m, "params");
    CHECK(json_object_get(p, "probs") == NULL);
    CHECK(strcmp(json_string_value(json_object_get(p, "text")), "") == 0);
    json_decref(m);

    /* Cancelled: nothing is encoded or sent, the caller answers. */
    atomic_store(&job->cancelled, true);
    int32_t tok = 1;
    CHECK_EQ_INT(wisp_job_stream(job, 4, "x", 1, &tok, 1, NULL), WISP_E_CANCELLED);
    CHECK(wisp_mailbox_take(&mb) == NULL);
    wisp_job_free(job);
    wisp_mailbox_close(&mb);
    wisp_mailbox_free(&mb);
}
