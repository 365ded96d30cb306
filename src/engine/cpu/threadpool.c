/*
 * threadpool.c - persistent worker threads for the CPU kernels.
 *
 * A decode step runs a few hundred short parallel sections (one per matmul),
 * so handing work to the threads must cost microseconds, not a thread
 * creation or a mutex round trip. The pool therefore works like ggml's:
 *
 *  - the caller publishes (fn, ctx) and bumps a generation counter;
 *  - workers spin on that counter for a short while (a section usually
 *    follows the previous one within microseconds), then sleep on it with a
 *    futex, so an idle server burns no CPU;
 *  - every index 0..n-1 of a run is a slot that whoever gets there first
 *    claims (one atomic word holds the run's generation and the next free
 *    slot): the caller claims slots too, so when a worker is slow to wake
 *    (the machine is busy with other processes, or the worker was asleep)
 *    the caller runs its slots instead of waiting a scheduler time slice for
 *    it; the caller then waits only for slots a worker actually claimed.
 *    Each index still runs exactly once per run, so kernels may split work
 *    (and per-index scratch) by index.
 *
 * The caller, done with its slots, spins as long for the workers' slots,
 * then sleeps on the done counter (a worker that finishes wakes it), so a
 * preempted worker gets the core back instead of a yield loop contending.
 *
 * Lost wake-ups cannot happen: a worker announces itself in n_sleeping
 * before FUTEX_WAIT, which re-checks the generation atomically in the
 * kernel; the caller bumps the generation before it reads n_sleeping, and
 * both use sequentially consistent atomics.
 */
#include "engine/cpu/threadpool.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WISP_CPU_RELAX() _mm_pause()
#else
#define WISP_CPU_RELAX() ((void)0)
#endif

/* Spin iterations before a worker sleeps: about 0.5 ms on Zen 5, where a
 * pause takes ~26 ns, less where pauses are shorter. */
#define WISP_TP_SPIN 20000
/* Spin iterations of the caller before it sleeps until the workers are
 * done (a worker's slot usually ends within microseconds of the caller's;
 * past that the worker was preempted, and sleeping hands it the core
 * where yielding in a loop would keep competing with it). */
#define WISP_TP_WAIT_SPIN 20000

typedef struct wisp_worker {
    wisp_threadpool *tp;
    pthread_t thread;
    int ith;
} wisp_worker;

struct wisp_threadpool {
    int n_threads;
    wisp_worker *workers; /* n_threads - 1 of them (index 0 is the caller) */
    wisp_task_fn fn;
    void *ctx;
    _Alignas(64) atomic_int generation;  /* bumped once per run; futex word */
    _Alignas(64) atomic_int n_done;      /* slots finished in this run; futex word */
    atomic_int caller_waiting;           /* the caller is in (or entering) FUTEX_WAIT on n_done */
    _Alignas(64) _Atomic uint64_t slots; /* generation << 32 | next unclaimed slot */
    _Alignas(64) atomic_int n_sleeping;  /* workers inside FUTEX_WAIT (or about to be) */
    atomic_bool stop;
};

static void futex_wait(atomic_int *addr, int expected)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_int *addr)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* A slot is done: the caller, if it went to sleep waiting for it, wakes. */
static void slot_done(wisp_threadpool *tp)
{
    atomic_fetch_add(&tp->n_done, 1);
    if (atomic_load(&tp->caller_waiting))
        futex_wake_all(&tp->n_done);
}

/* Claims and runs slots of run `gen` until none is left (or a newer run
 * has begun, whose slots its own claimers take). fn and ctx are read only
 * after a successful claim, which orders after the run's publication. */
static void run_slots(wisp_threadpool *tp, uint32_t gen)
{
    const uint32_t n = (uint32_t)tp->n_threads;
    for (;;) {
        uint64_t st = atomic_load(&tp->slots);
        if ((uint32_t)(st >> 32) != gen || (uint32_t)st >= n)
            return;
        if (!atomic_compare_exchange_weak(&tp->slots, &st, st + 1))
            continue;
        tp->fn(tp->ctx, (int)(uint32_t)st, (int)n);
        slot_done(tp);
    }
}

static void *worker_main(void *arg)
{
    wisp_worker *w = arg;
    wisp_threadpool *tp = w->tp;
    /* The generation was 0 when the pool was created; a run may already
     * have been published before this thread got to start. */
    int seen = 0;
    for (;;) {
        int gen = atomic_load(&tp->generation);
        for (int spin = 0; gen == seen && spin < WISP_TP_SPIN; spin++) {
            WISP_CPU_RELAX();
            gen = atomic_load(&tp->generation);
        }
        while (gen == seen) {
            atomic_fetch_add(&tp->n_sleeping, 1);
            futex_wait(&tp->generation, seen);
            atomic_fetch_sub(&tp->n_sleeping, 1);
            gen = atomic_load(&tp->generation);
        }
        seen = gen;
        if (atomic_load(&tp->stop))
            return NULL;
        run_slots(tp, (uint32_t)gen);
    }
}

static void publish(wisp_threadpool *tp)
{
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->n_sleeping) > 0)
        futex_wake_all(&tp->generation);
}

int wisp_threadpool_create(int n_threads, wisp_threadpool **out, wisp_err *err)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = wisp_cpu_physical_cores();
    if (n_threads > 1024)
        return wisp_err_set(err, WISP_E_INVALID, "thread pool: %d threads is too many (max 1024)",
                            n_threads);
    wisp_threadpool *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return wisp_err_set(err, WISP_E_NOMEM, "thread pool: out of memory");
    tp->n_threads = n_threads;
    atomic_init(&tp->generation, 0);
    atomic_init(&tp->n_done, 0);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->caller_waiting, 0);
    atomic_init(&tp->slots, (uint64_t)0 << 32 | (uint32_t)n_threads);
    atomic_init(&tp->stop, false);
    if (n_threads > 1) {
        tp->workers = calloc((size_t)n_threads - 1, sizeof(*tp->workers));
        if (!tp->workers) {
            free(tp);
            return wisp_err_set(err, WISP_E_NOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        wisp_worker *w = &tp->workers[i - 1];
        w->tp = tp;
        w->ith = i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            /* Stop the threads already started, then report. */
            atomic_store(&tp->stop, true);
            publish(tp);
            for (int j = 1; j < i; j++)
                pthread_join(tp->workers[j - 1].thread, NULL);
            free(tp->workers);
            free(tp);
            return wisp_err_set(err, WISP_E_INTERNAL, "thread pool: pthread_create thread %d: %s",
                                i, strerror(rc));
        }
    }
    *out = tp;
    return 0;
}

void wisp_threadpool_destroy(wisp_threadpool *tp)
{
    if (!tp)
        return;
    atomic_store(&tp->stop, true);
    publish(tp);
    for (int i = 1; i < tp->n_threads; i++)
        pthread_join(tp->workers[i - 1].thread, NULL);
    free(tp->workers);
    free(tp);
}

int wisp_threadpool_size(const wisp_threadpool *tp) { return tp ? tp->n_threads : 1; }

void wisp_threadpool_run(wisp_threadpool *tp, wisp_task_fn fn, void *ctx)
{
    if (!tp || tp->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->n_done, 0);
    uint32_t gen = (uint32_t)atomic_load(&tp->generation) + 1;
    atomic_store(&tp->slots, (uint64_t)gen << 32);
    publish(tp);
    run_slots(tp, gen);
    const int want = tp->n_threads;
    int done = atomic_load(&tp->n_done);
    for (int spin = 0; done < want && spin < WISP_TP_WAIT_SPIN; spin++) {
        WISP_CPU_RELAX();
        done = atomic_load(&tp->n_done);
    }
    /* The same handshake as the workers': caller_waiting is set before
     * n_done is read again and the kernel re-checks n_done, while a worker
     * bumps n_done before it reads caller_waiting. */
    while (done < want) {
        atomic_store(&tp->caller_waiting, 1);
        done = atomic_load(&tp->n_done);
        if (done < want)
            futex_wait(&tp->n_done, done);
        atomic_store(&tp->caller_waiting, 0);
        done = atomic_load(&tp->n_done);
    }
}

/* ------------------------------------------------------------ topology */

static int read_int_file(const char *path, int *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fscanf(f, "%d", out) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

int wisp_cpu_physical_cores(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    bool have_mask = sched_getaffinity(0, sizeof(set), &set) == 0;
    long n_conf = sysconf(_SC_NPROCESSORS_CONF);
    if (n_conf < 1)
        n_conf = 1;
    if (n_conf > CPU_SETSIZE)
        n_conf = CPU_SETSIZE;
    /* Distinct (package, core) pairs among the CPUs this process may use:
     * SMT siblings share a core's SIMD units, so they add little to
     * matmul throughput and only contend. */
    enum {
        MAX_CORES = 1024
    };
    long keys[MAX_CORES];
    int n_keys = 0;
    bool topo_ok = true;
    for (long cpu = 0; cpu < n_conf && topo_ok; cpu++) {
        if (have_mask && !CPU_ISSET((int)cpu, &set))
            continue;
        char path[128];
        int core = 0, pkg = 0;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%ld/topology/core_id", cpu);
        if (read_int_file(path, &core) != 0) {
            topo_ok = false;
            break;
        }
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id",
                 cpu);
        if (read_int_file(path, &pkg) != 0)
            pkg = 0;
        long key = (long)pkg * 1000000L + core;
        bool found = false;
        for (int k = 0; k < n_keys; k++)
            found |= keys[k] == key;
        if (!found && n_keys < MAX_CORES)
            keys[n_keys++] = key;
    }
    if (topo_ok && n_keys > 0)
        return n_keys;
    if (have_mask && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
