/*
 * test_prefix_persist.c - the prefix cache on disk: a "restarted" scheduler
 * (destroyed, then created again over a fresh engine with the same cache
 * folder) starts warm and its outputs stay exact; corrupt, truncated,
 * tampered and foreign cache files are ignored, never trusted.
 */
#include <sys/stat.h>

#include "harness.h"
#include "kv/hash.h"
#include "sched_test_util.h"

#define V  40
#define BS 4

typedef struct world {
    fake_engine *fe;
    wisp_sched *s;
} world;

static world start(const char *dir, uint64_t identity, int block_size, int n_blocks,
                   size_t host_bytes)
{
    world w;
    w.fe = fake_engine_create(block_size, n_blocks, V, 64, 8);
    wisp_sched_opts o = {.model_identity = identity,
                         .n_vocab = V,
                         .n_ctx = 256,
                         .cache_dir = dir,
                         .host_cache_bytes = host_bytes};
    wisp_err err = {0};
    int rc = wisp_sched_create(&w.fe->base, &o, &w.s, &err);
    if (rc)
        fprintf(stderr, "  create: %s\n", err.msg);
    REQUIRE(rc == 0);
    return w;
}

static void stop(world *w)
{
    wisp_sched_destroy(w->s);
    fake_engine_free(w->fe);
}

static void prompt_of(int32_t *p, int n)
{
    uint64_t rng = 1234;
    tr_fill(&rng, p, n, V);
}

/* Runs the standard 41-token prompt; returns its cached_tokens. */
static int run_prompt(world *w)
{
    int32_t p[41];
    prompt_of(p, 41);
    treq t;
    tr_init(&t, p, 41, 6);
    REQUIRE(tr_submit(w->s, &t) == 0);
    REQUIRE(tr_run(w->s, 1000) >= 0);
    CHECK_EQ_INT(t.finished, 1);
    CHECK_EQ_INT(t.status, 0);
    CHECK(tr_output_ok(&t, V));
    if (w->fe->violations)
        fprintf(stderr, "  engine: %s\n", w->fe->first_violation);
    CHECK_EQ_INT(w->fe->violations, 0);
    return t.usage.cached_tokens;
}

static void make_dir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/wisp-test-kv-XXXXXX");
    REQUIRE(mkdtemp(buf) != NULL);
}

static void cache_file(char *buf, size_t n, const char *dir, uint64_t identity, int bs)
{
    snprintf(buf, n, "%s/wisp-kv-%016llx-b%d.cache", dir, (unsigned long long)identity, bs);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 64);
    REQUIRE(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static uint64_t loaded(world *w)
{
    wisp_sched_stats st;
    wisp_sched_get_stats(w->s, &st);
    return st.kv.disk_blocks_loaded;
}

TEST(restart_starts_warm)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    world w = start(dir, 77, BS, 64, 0);
    CHECK_EQ_INT(loaded(&w), 0);
    CHECK_EQ_INT(run_prompt(&w), 0);
    stop(&w);
    w = start(dir, 77, BS, 64, 0); /* a new process: empty engine storage */
    CHECK(loaded(&w) >= 10);
    CHECK_EQ_INT(run_prompt(&w), 40); /* all 10 full blocks of 41 tokens */
    stop(&w);
    remove_dir(dir);
}

/* More cached blocks than the new pool holds: the overflow waits in the
 * host tier and is promoted on the hit. */
TEST(restart_into_small_pool_uses_host_tier)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    world w = start(dir, 78, BS, 64, 0);
    run_prompt(&w);
    treq other; /* another 11 blocks, newer than the first prompt's */
    int32_t p[41];
    uint64_t rng = 555;
    tr_fill(&rng, p, 41, V);
    tr_init(&other, p, 41, 6);
    REQUIRE(tr_submit(w.s, &other) == 0);
    REQUIRE(tr_run(w.s, 1000) >= 0);
    stop(&w);
    w = start(dir, 78, BS, 14, 64 * sizeof(fake_slot) * BS);
    wisp_sched_stats st;
    wisp_sched_get_stats(w.s, &st);
    CHECK_EQ_INT(st.kv.host_blocks, 8);
    CHECK_EQ_INT(st.kv.blocks_cached_only, 14);
    CHECK_EQ_INT(run_prompt(&w), 40);
    wisp_sched_get_stats(w.s, &st);
    CHECK(st.kv.promotions > 0);
    stop(&w);
    remove_dir(dir);
}

typedef enum {
    FLIP_RECORD,
    FLIP_HEADER,
    TRUNCATE,
    EXTEND,
    TAMPER_RESEAL,
    GARBAGE,
    EMPTY,
    FOREIGN_MODEL,
    FOREIGN_LAYOUT,
    N_CORRUPT
} corruption;

static const char *corruption_name[] = {"flip a KV byte",
                                        "flip a header byte",
                                        "truncate",
                                        "extend",
                                        "tamper and reseal the checksum",
                                        "garbage",
                                        "empty",
                                        "another model's file",
                                        "another layout"};

static void corrupt_case(corruption c)
{
    char dir[64], path[160], other[160];
    make_dir(dir, sizeof dir);
    world w = start(dir, 90, BS, 64, 0);
    run_prompt(&w);
    stop(&w);
    cache_file(path, sizeof path, dir, 90, BS);
    size_t n;
    unsigned char *b = slurp(path, &n);
    size_t rec = 16 + BS * 4 + sizeof(fake_slot) * BS + 8;
    REQUIRE(n > 64 + rec && (n - 64) % rec == 0);
    uint64_t identity = 90;
    int bs = BS;
    switch (c) {
    case FLIP_RECORD: b[n - 20] ^= 0x10; break;
    case FLIP_HEADER: b[17] ^= 1; break;
    case TRUNCATE: n -= 9; break;
    case EXTEND:
        memset(b + n, 0, 7);
        n += 7;
        break;
    case TAMPER_RESEAL: {
        /* Change a token and recompute the record checksum: the key no
         * longer matches the tokens. */
        unsigned char *r = b + 64 + rec;
        r[16] ^= 1;
        uint64_t sum = wisp_hash64(r, rec - 8, 90);
        memcpy(r + rec - 8, &sum, 8);
        break;
    }
    case GARBAGE:
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)(i * 131 + 7);
        break;
    case EMPTY: n = 0; break;
    case FOREIGN_MODEL: identity = 91; break; /* same bytes, another model's name */
    case FOREIGN_LAYOUT: bs = 8; break;       /* same bytes, a block size 8 engine */
    default: break;
    }
    cache_file(other, sizeof other, dir, identity, bs);
    if (strcmp(other, path) != 0)
        unlink(path);
    spit(other, b, n);
    free(b);
    w = start(dir, identity, bs, 64, 0);
    if (loaded(&w) != 0)
        fprintf(stderr, "  %s: the file was trusted\n", corruption_name[c]);
    CHECK_EQ_INT(loaded(&w), 0);
    CHECK_EQ_INT(run_prompt(&w), 0); /* cold, and still exact */
    stop(&w);
    /* The next save replaced the bad file with a good one. */
    w = start(dir, identity, bs, 64, 0);
    CHECK(loaded(&w) > 0);
    stop(&w);
    remove_dir(dir);
}

TEST(corrupt_files_are_ignored)
{
    for (int c = 0; c < N_CORRUPT; c++)
        corrupt_case((corruption)c);
}

TEST(unwritable_cache_dir_is_an_error)
{
    wisp_sched_opts o = {.model_identity = 1,
                         .n_vocab = V,
                         .n_ctx = 64,
                         .cache_dir = "/proc/wisp-no-such-dir/x"};
    fake_engine *fe = fake_engine_create(BS, 16, V, 64, 8);
    wisp_sched *s = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_sched_create(&fe->base, &o, &s, &err), WISP_E_IO);
    CHECK(strstr(err.msg, "wisp-no-such-dir") != NULL);
    CHECK(s == NULL);
    fake_engine_free(fe);
}
