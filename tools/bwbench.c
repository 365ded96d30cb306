/*
 * bwbench.c - the machine's memory read bandwidth, the ceiling of decode.
 *
 *   bwbench [-T THREADS] [-s MIB] [-r REPS]
 *     THREADS  comma list of thread counts (default 1,2)
 *     MIB      buffer size in MiB (default 1024: far past any cache)
 *     REPS     passes per thread count; the best one is reported (default 5)
 *
 * Each thread sums its own contiguous slice of one buffer of 64-bit words
 * (the threads start together and the pass ends when the last one is done),
 * the access pattern of a decode step, which reads every weight byte once
 * in long contiguous runs. Prints GB/s (1e9 bytes/s) per thread count. The
 * buffer is written once before timing so its pages are resident.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_THREADS 64

typedef struct worker {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
    pthread_barrier_t *start;
} worker;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    /* four independent sums, so the adds do not limit the loads */
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= w->n; i += 4) {
        s0 += w->p[i];
        s1 += w->p[i + 1];
        s2 += w->p[i + 2];
        s3 += w->p[i + 3];
    }
    w->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* One pass with nt threads over the buffer; returns seconds, or -1. */
static double pass(const uint64_t *buf, size_t words, int nt, uint64_t *check)
{
    pthread_t th[MAX_THREADS];
    worker w[MAX_THREADS];
    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, (unsigned)nt + 1))
        return -1;
    for (int t = 0; t < nt; t++) {
        size_t a = words * (size_t)t / (size_t)nt, b = words * (size_t)(t + 1) / (size_t)nt;
        w[t] = (worker){.p = buf + a, .n = b - a, .start = &start};
        if (pthread_create(&th[t], NULL, run, &w[t])) {
            fprintf(stderr, "bwbench: cannot start thread %d\n", t);
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    double t0 = now();
    for (int t = 0; t < nt; t++) {
        pthread_join(th[t], NULL);
        *check += w[t].sum;
    }
    double dt = now() - t0;
    pthread_barrier_destroy(&start);
    return dt;
}

int main(int argc, char **argv)
{
    char thr_s[128] = "1,2";
    long mib = 1024, reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "-T") && v) {
            snprintf(thr_s, sizeof thr_s, "%s", v);
            i++;
        } else if (!strcmp(argv[i], "-s") && v) {
            mib = strtol(v, NULL, 10);
            i++;
        } else if (!strcmp(argv[i], "-r") && v) {
            reps = strtol(v, NULL, 10);
            i++;
        } else {
            fprintf(stderr, "usage: bwbench [-T THREADS] [-s MIB] [-r REPS]\n");
            return 2;
        }
    }
    if (mib < 1 || mib > (1L << 20) || reps < 1 || reps > 1000) {
        fprintf(stderr, "bwbench: -s needs 1..1048576 MiB and -r 1..1000\n");
        return 2;
    }
    const size_t bytes = (size_t)mib << 20, words = bytes / sizeof(uint64_t);
    uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        fprintf(stderr, "bwbench: cannot map %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    uint64_t check = 0;
    printf("| threads | MiB | best GB/s | mean GB/s |\n| ---: | ---: | ---: | ---: |\n");
    for (char *tok = strtok(thr_s, ","); tok; tok = strtok(NULL, ",")) {
        int nt = atoi(tok);
        if (nt < 1 || nt > MAX_THREADS) {
            fprintf(stderr, "bwbench: thread count '%s' is not 1..%d\n", tok, MAX_THREADS);
            return 2;
        }
        double best = 0, sum = 0;
        for (long r = 0; r < reps; r++) {
            double dt = pass(buf, words, nt, &check);
            if (dt <= 0) {
                fprintf(stderr, "bwbench: cannot start %d threads\n", nt);
                return 1;
            }
            double gbs = (double)bytes / dt / 1e9;
            best = gbs > best ? gbs : best;
            sum += gbs;
        }
        printf("| %d | %ld | %.1f | %.1f |\n", nt, mib, best, sum / (double)reps);
    }
    /* the sums keep the loads from being optimized away */
    fprintf(stderr, "bwbench: checksum %llx\n", (unsigned long long)check);
    munmap(buf, bytes);
    return 0;
}
