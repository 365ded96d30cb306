/*
 * harness.h - wisp's C unit-test harness.
 *
 * Each tests/unit/test_*.c file is one program. TEST(name) registers a case
 * through a constructor; main() (below) runs every case in its own forked
 * process with a timeout (libuv's runner does the same), so a crash or hang
 * in one case is reported as that case's failure and the others still run.
 *
 *   TEST(gguf_rejects_bad_magic) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   SKIP("reason")  - the case is reported as skipped with the reason.
 *
 * Environment: WISP_TEST_FILTER=substr runs only matching cases;
 * WISP_TEST_TIMEOUT=seconds (default 300); WISP_TEST_NOFORK=1 runs
 * in-process (for gdb). WISP_SHARED is the shared fixture folder
 * (default ../shared relative to the repository root).
 */
#ifndef WISP_TEST_HARNESS_H
#define WISP_TEST_HARNESS_H

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*wisp_test_fn)(void);

struct wisp_test_case {
    const char *name;
    wisp_test_fn fn;
};

#define WISP_TEST_MAX 512
static struct wisp_test_case wisp_tests[WISP_TEST_MAX];
static int wisp_test_count;
static int wisp_test_failed_checks;

#define WISP_TEST_SKIP_CODE 77

#define TEST(name)                                                                       \
    static void test_##name(void);                                                       \
    __attribute__((constructor)) static void register_##name(void)                       \
    {                                                                                    \
        if (wisp_test_count < WISP_TEST_MAX)                                             \
            wisp_tests[wisp_test_count++] = (struct wisp_test_case){#name, test_##name}; \
    }                                                                                    \
    static void test_##name(void)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            wisp_test_failed_checks++;                                                 \
        }                                                                              \
    } while (0)

/* Like CHECK, but stops the case at once (use before dereferencing). */
#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  %s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
    do {                                                                                        \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                   \
        if (va_ != vb_) {                                                                       \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                    #b, va_, vb_);                                                              \
            wisp_test_failed_checks++;                                                          \
        }                                                                                       \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                      \
    do {                                                                                        \
        const char *sa_ = (a), *sb_ = (b);                                                      \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                            \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                    #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                        \
            wisp_test_failed_checks++;                                                          \
        }                                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double da_ = (double)(a), db_ = (double)(b);                                               \
        if (!(fabs(da_ - db_) <= (double)(tol))) {                                                 \
            fprintf(stderr, "  %s:%d: |%s - %s| <= %g failed: %g vs %g\n", __FILE__, __LINE__, #a, \
                    #b, (double)(tol), da_, db_);                                                  \
            wisp_test_failed_checks++;                                                             \
        }                                                                                          \
    } while (0)

#define SKIP(...)                     \
    do {                              \
        fprintf(stderr, "  skip: ");  \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
        exit(WISP_TEST_SKIP_CODE);    \
    } while (0)

/* The shared fixture folder: $WISP_SHARED, else ../shared. */
static inline const char *wisp_test_shared_dir(void)
{
    const char *d = getenv("WISP_SHARED");
    return d && *d ? d : "../shared";
}

/* Fills buf with shared_dir/rel and returns buf, or SKIPs the case when the
 * file does not exist (a missing fixture is never a silent pass). */
static inline const char *wisp_test_shared_path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", wisp_test_shared_dir(), rel);
    if (access(buf, R_OK) != 0)
        SKIP("fixture %s is missing", buf);
    return buf;
}

static int wisp_test_run_one(const struct wisp_test_case *tc, int timeout)
{
    if (getenv("WISP_TEST_NOFORK")) {
        wisp_test_failed_checks = 0;
        tc->fn();
        return wisp_test_failed_checks ? 1 : 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm((unsigned)timeout);
        wisp_test_failed_checks = 0;
        tc->fn();
        fflush(stdout);
        fflush(stderr);
        _exit(wisp_test_failed_checks ? 1 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *filter = getenv("WISP_TEST_FILTER");
    const char *t = getenv("WISP_TEST_TIMEOUT");
    int timeout = t ? atoi(t) : 300;
    const char *prog = strrchr(argv[0], '/');
    prog = prog ? prog + 1 : argv[0];
    (void)argc;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < wisp_test_count; i++) {
        const struct wisp_test_case *tc = &wisp_tests[i];
        if (filter && !strstr(tc->name, filter))
            continue;
        int rc = wisp_test_run_one(tc, timeout);
        if (rc == 0) {
            passed++;
            printf("ok   %s.%s\n", prog, tc->name);
        } else if (rc == WISP_TEST_SKIP_CODE) {
            skipped++;
            printf("skip %s.%s\n", prog, tc->name);
        } else {
            failed++;
            printf("FAIL %s.%s\n", prog, tc->name);
        }
        fflush(stdout);
    }
    printf("%s: %d passed, %d failed, %d skipped\n", prog, passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif
