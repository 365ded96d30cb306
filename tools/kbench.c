/*
 * kbench.c - microbenchmark of the CPU matmul kernels.
 *
 *   kbench [-t TYPES] [-s LEVELS] [-n TOKS] [-T THREADS] [-m SECONDS] [-r 0|1|2] [SHAPES]
 *     TYPES    comma list of weight types (default Q8_0,Q4_0,Q4_K,Q6_K,F16)
 *     LEVELS   comma list of scalar,avx2,avx512 (default: the best level)
 *     TOKS     comma list of token counts (default 1,128)
 *     THREADS  comma list of thread counts (default 1,2)
 *     -r 1     Q4_0 / Q8_0 / K-quant weights repacked into interleaved rows, as the
 *              engine does at load (repack.h); -r 2 also F16 / BF16 weights into
 *              the BF16 layout (bf16dot.h, f16_as_bf16); -r 0 (default) the file
 *              layout
 *     SHAPES   n_in x n_out, e.g. 2048x2048 1536x8960 (default both)
 *
 * Prints, per case, the best time per call over short batches, GFLOP/s (2 * n_in * n_out * n_tok)
 * and GB/s of weight bytes read (once per call), the figure to hold against
 * the memory bandwidth for decode (n_tok = 1), and with one thread the
 * best CPU time per call of that thread (cpu-us), which time taken by
 * other processes on a shared machine does not inflate. The weights are random bytes
 * with half-precision fields kept finite; values do not change the timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/cpu_types.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/repack.h"

static const struct {
    const char *name;
    int type;
} TYPES[] = {
    {"F32", WISP_TYPE_F32},   {"F16", WISP_TYPE_F16},   {"BF16", WISP_TYPE_BF16},
    {"Q4_0", WISP_TYPE_Q4_0}, {"Q4_1", WISP_TYPE_Q4_1}, {"Q5_0", WISP_TYPE_Q5_0},
    {"Q5_1", WISP_TYPE_Q5_1}, {"Q8_0", WISP_TYPE_Q8_0}, {"Q2_K", WISP_TYPE_Q2_K},
    {"Q3_K", WISP_TYPE_Q3_K}, {"Q4_K", WISP_TYPE_Q4_K}, {"Q5_K", WISP_TYPE_Q5_K},
    {"Q6_K", WISP_TYPE_Q6_K},
};
#define N_TYPES (int)(sizeof(TYPES) / sizeof(TYPES[0]))

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread, seconds. */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int type_by_name(const char *s)
{
    for (int i = 0; i < N_TYPES; i++)
        if (strcasecmp(s, TYPES[i].name) == 0)
            return i;
    return -1;
}

/* Splits a comma list into at most max tokens (modifies s). */
static int split(char *s, char **out, int max)
{
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
        out[n++] = t;
    return n;
}

int main(int argc, char **argv)
{
    char types_s[256] = "Q8_0,Q4_0,Q4_K,Q6_K,F16", levels_s[64] = "", toks_s[64] = "1,128",
         thr_s[64] = "1,2";
    double min_time = 0.25;
    int repack = 0;
    const char *shapes[16];
    int n_shapes = 0;
    for (int i = 1; i < argc; i++) {
        char *dst = NULL;
        if (strcmp(argv[i], "-t") == 0)
            dst = types_s;
        else if (strcmp(argv[i], "-s") == 0)
            dst = levels_s;
        else if (strcmp(argv[i], "-n") == 0)
            dst = toks_s;
        else if (strcmp(argv[i], "-T") == 0)
            dst = thr_s;
        else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            min_time = atof(argv[++i]);
            continue;
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            repack = atoi(argv[++i]);
            continue;
        } else if (strchr(argv[i], 'x') && n_shapes < 16) {
            shapes[n_shapes++] = argv[i];
            continue;
        } else {
            fprintf(stderr, "usage: kbench [-t TYPES] [-s LEVELS] [-n TOKS] [-T THREADS] "
                            "[-m SECONDS] [-r 0|1|2] [NINxNOUT ...]\n");
            return 2;
        }
        if (i + 1 >= argc)
            return 2;
        snprintf(dst, 64, "%s", argv[++i]);
    }
    if (n_shapes == 0) {
        shapes[n_shapes++] = "2048x2048";
        shapes[n_shapes++] = "1536x8960";
    }
    if (!levels_s[0])
        snprintf(levels_s, sizeof(levels_s), "%s", wisp_cpu_simd_name(wisp_cpu_simd_max()));

    char *type_l[32], *lvl_l[8], *tok_l[16], *thr_l[16];
    int n_type = split(types_s, type_l, 32), n_lvl = split(levels_s, lvl_l, 8);
    int n_tok_l = split(toks_s, tok_l, 16), n_thr = split(thr_s, thr_l, 16);

    printf("%-5s %-9s %-11s %5s %3s %10s %9s %8s %10s\n", "type", "simd", "shape", "n_tok", "thr",
           "us/call", "GFLOP/s", "GB/s(w)", "cpu-us");
    for (int si = 0; si < n_shapes; si++) {
        long long n_in = 0, n_out = 0;
        if (sscanf(shapes[si], "%lldx%lld", &n_in, &n_out) != 2 || n_in <= 0 || n_out <= 0) {
            fprintf(stderr, "kbench: bad shape %s\n", shapes[si]);
            return 2;
        }
        for (int ti = 0; ti < n_type; ti++) {
            int tix = type_by_name(type_l[ti]);
            if (tix < 0) {
                fprintf(stderr, "kbench: unknown type %s\n", type_l[ti]);
                return 2;
            }
            int type = TYPES[tix].type;
            size_t row = wisp_cpu_row_bytes(type, n_in);
            if (row == 0) {
                fprintf(stderr, "kbench: %s rows cannot hold %lld elements\n", TYPES[tix].name,
                        n_in);
                continue;
            }
            size_t wbytes = row * (size_t)n_out;
            unsigned char *w = malloc(wbytes);
            if (!w)
                return 1;
            srand(1);
            for (size_t i = 0; i < wbytes; i++)
                w[i] = (unsigned char)(0x10 + rand() % 0x2c); /* finite, normal halves */
            wisp_tensor t = {.name = "bench",
                             .type = type,
                             .n_dims = 2,
                             .ne = {n_in, n_out, 1, 1},
                             .nbytes = wbytes,
                             .data = w};
            unsigned char *packed = NULL;
            if (repack && wisp_rp_type_supported(type)) {
                if (!(packed = malloc(wbytes)))
                    return 1;
                wisp_rp_pack(type, n_in, n_out, w, packed);
                t.type |= WISP_RP_TYPE_FLAG;
                t.data = packed;
            } else if (repack == 2 && (type == WISP_TYPE_F16 || type == WISP_TYPE_BF16)) {
                if (!(packed = malloc(wbytes)))
                    return 1;
                wisp_rp_pack_bf16(type, n_in, n_out, w, packed);
                t.type = WISP_TYPE_BF16 | WISP_RP_TYPE_FLAG;
                t.data = packed;
            }
            for (int li = 0; li < n_lvl; li++) {
                int lv = -1;
                for (int l = 0; l < WISP_SIMD_COUNT; l++)
                    if (strcmp(lvl_l[li], wisp_cpu_simd_name((wisp_simd_level)l)) == 0)
                        lv = l;
                if (lv < 0 || wisp_cpu_simd_force((wisp_simd_level)lv) != (wisp_simd_level)lv) {
                    fprintf(stderr, "kbench: level %s not available\n", lvl_l[li]);
                    continue;
                }
                if (packed && !wisp_cpu_rp_get(wisp_rp_base_type(t.type))) {
                    fprintf(stderr, "kbench: %s has no repacked kernel at level %s\n",
                            TYPES[tix].name, lvl_l[li]);
                    continue;
                }
                for (int ki = 0; ki < n_tok_l; ki++) {
                    long long n_tok = atoll(tok_l[ki]);
                    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
                    float *y = malloc(sizeof(float) * (size_t)(n_out * n_tok));
                    size_t ss = wisp_matmul_scratch_size(type, n_in, n_tok);
                    wisp_matmul_scratch scratch = {ss ? malloc(ss) : NULL, ss};
                    if (!x || !y || (ss && !scratch.buf))
                        return 1;
                    for (long long i = 0; i < n_in * n_tok; i++)
                        x[i] = (float)(rand() % 2001 - 1000) / 1000.f;
                    for (int hi = 0; hi < n_thr; hi++) {
                        int nt = atoi(thr_l[hi]);
                        wisp_threadpool *tp = NULL;
                        wisp_err err = {0};
                        if (wisp_threadpool_create(nt, &tp, &err) != 0) {
                            fprintf(stderr, "kbench: %s\n", err.msg);
                            return 1;
                        }
                        /* warm up (caches, pages, thread wake-up) */
                        if (wisp_matmul(tp, &t, x, n_tok, y, &scratch, &err) != 0) {
                            fprintf(stderr, "kbench: %s\n", err.msg);
                            return 1;
                        }
                        /* Best of several short batches: the machine is shared,
                         * and the minimum is the figure least disturbed by
                         * other processes. */
                        double per = 1e30, cpu_per = 1e30, t_start = now();
                        do {
                            int reps = 0;
                            double t0 = now(), c0 = thread_cpu(), el = 0;
                            do {
                                wisp_matmul(tp, &t, x, n_tok, y, &scratch, &err);
                                reps++;
                                el = now() - t0;
                            } while (el < min_time / 10);
                            double cpu = (thread_cpu() - c0) / reps;
                            if (el / reps < per)
                                per = el / reps;
                            if (cpu < cpu_per)
                                cpu_per = cpu;
                        } while (now() - t_start < min_time);
                        char cpu_s[32] = "-";
                        if (nt == 1)
                            snprintf(cpu_s, sizeof cpu_s, "%.1f", cpu_per * 1e6);
                        char lvl_name[32];
                        snprintf(lvl_name, sizeof lvl_name, "%s%s", lvl_l[li], packed ? "+rp" : "");
                        printf("%-5s %-9s %5lldx%-5lld %5lld %3d %10.1f %9.1f %8.2f %10s\n",
                               TYPES[tix].name, lvl_name, n_in, n_out, n_tok, nt, per * 1e6,
                               2.0 * (double)n_in * (double)n_out * (double)n_tok / per * 1e-9,
                               (double)wbytes / per * 1e-9, cpu_s);
                        fflush(stdout);
                        wisp_threadpool_destroy(tp);
                    }
                    free(x);
                    free(y);
                    free(scratch.buf);
                }
            }
            free(w);
            free(packed);
        }
    }
    return 0;
}
