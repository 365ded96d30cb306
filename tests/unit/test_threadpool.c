/*
 * test_threadpool.c - the persistent pool runs every index exactly once per
 * run, over many runs and pool sizes, including after the workers went to
 * sleep and when the caller has to sleep waiting for a slow slot, and
 * reports a sane core count.
 */
#include <stdatomic.h>
#include <time.h>

#include "engine/cpu/threadpool.h"
#include "harness.h"

typedef struct count_ctx {
    atomic_int hits[64];
    atomic_int calls;
    int nth_seen;
    atomic_int bad_nth;
} count_ctx;

static void count_task(void *vctx, int ith, int nth)
{
    count_ctx *c = vctx;
    if (nth != c->nth_seen || ith < 0 || ith >= nth)
        atomic_fetch_add(&c->bad_nth, 1);
    else
        atomic_fetch_add(&c->hits[ith], 1);
    atomic_fetch_add(&c->calls, 1);
}

static void check_pool(int n_threads, int runs, int sleep_every)
{
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_threadpool_create(n_threads, &tp, &err) == 0);
    CHECK_EQ_INT(wisp_threadpool_size(tp), n_threads);
    count_ctx c;
    memset(&c, 0, sizeof(c));
    c.nth_seen = n_threads;
    for (int r = 0; r < runs; r++) {
        wisp_threadpool_run(tp, count_task, &c);
        /* After each run every index must have run exactly r + 1 times:
         * run() returns only when all threads are done. */
        for (int i = 0; i < n_threads; i++)
            if (atomic_load(&c.hits[i]) != r + 1) {
                CHECK_EQ_INT(atomic_load(&c.hits[i]), r + 1);
                r = runs;
                break;
            }
        if (sleep_every && r % sleep_every == sleep_every - 1) {
            /* Long enough for the workers to leave their spin and sleep. */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_EQ_INT(atomic_load(&c.bad_nth), 0);
    CHECK_EQ_INT(atomic_load(&c.calls), (long long)runs * n_threads);
    wisp_threadpool_destroy(tp);
}

TEST(one_thread_runs_inline) { check_pool(1, 1000, 0); }
TEST(two_threads_many_runs) { check_pool(2, 3000, 0); }
TEST(three_threads_many_runs) { check_pool(3, 1000, 0); }
TEST(eight_threads_oversubscribed) { check_pool(8, 300, 0); }
TEST(wakes_sleeping_workers) { check_pool(4, 40, 4); }

/* Every slot but 0 outlasts the caller's spin, so the caller must sleep
 * until the slot is done and must not return before it is. */
typedef struct slow_ctx {
    atomic_int finished;
} slow_ctx;

static void slow_task(void *vctx, int ith, int nth)
{
    slow_ctx *c = vctx;
    (void)nth;
    if (ith != 0) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&c->finished, 1);
}

TEST(caller_waits_for_slow_slots)
{
    for (int nt = 2; nt <= 3; nt++) {
        wisp_threadpool *tp = NULL;
        wisp_err err = {0};
        REQUIRE(wisp_threadpool_create(nt, &tp, &err) == 0);
        for (int r = 0; r < 10; r++) {
            slow_ctx c;
            atomic_init(&c.finished, 0);
            wisp_threadpool_run(tp, slow_task, &c);
            if (atomic_load(&c.finished) != nt) {
                CHECK_EQ_INT(atomic_load(&c.finished), nt);
                break;
            }
        }
        wisp_threadpool_destroy(tp);
    }
}

typedef struct sum_ctx {
    const int *v;
    int n;
    long long part[16];
} sum_ctx;

static void sum_task(void *vctx, int ith, int nth)
{
    sum_ctx *c = vctx;
    long long s = 0;
    for (int i = c->n * ith / nth; i < c->n * (ith + 1) / nth; i++)
        s += c->v[i];
    c->part[ith] = s;
}

TEST(split_work_sums_correctly)
{
    enum {
        N = 100003
    };
    static int v[N];
    long long want = 0;
    for (int i = 0; i < N; i++) {
        v[i] = (i * 7919) % 1000 - 500;
        want += v[i];
    }
    for (int nt = 1; nt <= 5; nt++) {
        wisp_threadpool *tp = NULL;
        wisp_err err = {0};
        REQUIRE(wisp_threadpool_create(nt, &tp, &err) == 0);
        for (int r = 0; r < 50; r++) {
            sum_ctx c = {.v = v, .n = N};
            wisp_threadpool_run(tp, sum_task, &c);
            long long got = 0;
            for (int i = 0; i < nt; i++)
                got += c.part[i];
            if (got != want) {
                CHECK_EQ_INT(got, want);
                break;
            }
        }
        wisp_threadpool_destroy(tp);
    }
}

TEST(create_destroy_repeatedly)
{
    for (int i = 0; i < 200; i++) {
        wisp_threadpool *tp = NULL;
        wisp_err err = {0};
        REQUIRE(wisp_threadpool_create(1 + i % 4, &tp, &err) == 0);
        if (i % 2) {
            count_ctx c;
            memset(&c, 0, sizeof(c));
            c.nth_seen = 1 + i % 4;
            wisp_threadpool_run(tp, count_task, &c);
            CHECK_EQ_INT(atomic_load(&c.calls), 1 + i % 4);
        }
        wisp_threadpool_destroy(tp);
    }
    wisp_threadpool_destroy(NULL);
}

TEST(default_size_is_physical_cores)
{
    int cores = wisp_cpu_physical_cores();
    CHECK(cores >= 1);
    CHECK(cores <= sysconf(_SC_NPROCESSORS_ONLN));
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_threadpool_create(0, &tp, &err) == 0);
    CHECK_EQ_INT(wisp_threadpool_size(tp), cores);
    wisp_threadpool_destroy(tp);
}

TEST(rejects_absurd_size)
{
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_threadpool_create(100000, &tp, &err), WISP_E_INVALID);
    CHECK(tp == NULL);
    CHECK(strstr(err.msg, "100000") != NULL);
}
