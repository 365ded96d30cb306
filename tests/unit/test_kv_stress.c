/*
 * test_kv_stress.c - a randomized stress test of the block allocator and the
 * prefix cache.
 *
 * Thousands of random operations - admit (prefix lookup + prefill), append,
 * fork, finish, cancel (reserve then drop uncomputed), a stopped step rolled
 * back, preempt + recompute, truncate - run over a small pool with a host
 * tier, on prompts drawn from a few shared prefixes over a tiny vocabulary
 * so blocks collide and get shared all the time. After EVERY operation:
 * the cache's own invariant check, reference counts recounted from the live
 * block tables, no leaked block, every cached block's KV holding its key's
 * tokens, every live sequence reading back what a contiguous cache would,
 * and the fake engine seeing no inconsistency.
 */
#include "harness.h"
#include "kv_test_util.h"

#define MAX_SEQS 12
#define VOCAB    3

typedef struct stress {
    fake_engine *fe;
    wisp_kv *kv;
    wisp_kv_seq seqs[MAX_SEQS];
    bool live[MAX_SEQS];
    uint64_t rng;
    int32_t bases[4][64];
    long ops[8];
} stress;

static uint32_t rnd(stress *st, uint32_t n)
{
    st->rng = fake_mix(st->rng);
    return (uint32_t)(st->rng >> 33) % n;
}

static void verify(stress *st, int step, const char *op)
{
    wisp_err err = {0};
    int rc = wisp_kv_check(st->kv, &err);
    if (rc) {
        fprintf(stderr, "  step %d (%s): %s\n", step, op, err.msg);
        REQUIRE(rc == 0);
    }
    int n = st->fe->base.opts.n_blocks;
    int *count = calloc((size_t)n, sizeof *count);
    for (int i = 0; i < MAX_SEQS; i++) {
        if (!st->live[i])
            continue;
        wisp_kv_seq *s = &st->seqs[i];
        REQUIRE(s->n_blocks == wisp_kv_blocks_for(st->kv, s->n_tokens));
        for (int k = 0; k < s->n_blocks; k++)
            count[s->blocks[k]]++;
        if (!kvt_seq_matches(st->fe, s)) {
            fprintf(stderr, "  step %d (%s): seq %d does not read back its history\n", step, op, i);
            REQUIRE(0);
        }
    }
    for (int b = 0; b < n; b++) {
        if (count[b] != wisp_kv_block_refs(st->kv, b)) {
            fprintf(stderr, "  step %d (%s): block %d has refs %d, tables hold it %d times\n", step,
                    op, b, wisp_kv_block_refs(st->kv, b), count[b]);
            REQUIRE(0);
        }
    }
    free(count);
    wisp_kv_stats ks;
    wisp_kv_get_stats(st->kv, &ks);
    REQUIRE(ks.blocks_used + ks.blocks_cached_only + ks.blocks_free == ks.blocks_total);
    char why[256];
    if (!kvt_cache_content_ok(st->fe, st->kv, why, sizeof why)) {
        fprintf(stderr, "  step %d (%s): %s\n", step, op, why);
        REQUIRE(0);
    }
    if (st->fe->violations) {
        fprintf(stderr, "  step %d (%s): engine: %s\n", step, op, st->fe->first_violation);
        REQUIRE(0);
    }
}

static int free_slot(stress *st)
{
    for (int i = 0; i < MAX_SEQS; i++)
        if (!st->live[i])
            return i;
    return -1;
}

static int pick_live(stress *st)
{
    int c[MAX_SEQS], n = 0;
    for (int i = 0; i < MAX_SEQS; i++)
        if (st->live[i])
            c[n++] = i;
    return n ? c[rnd(st, (uint32_t)n)] : -1;
}

static void drop(stress *st, int i)
{
    wisp_kv_seq_release(st->kv, &st->seqs[i]);
    st->live[i] = false;
}

/* Admits tokens into an empty sequence: prefix lookup, then prefill of the
 * rest; checks the last position's logits against the oracle. */
static bool admit(stress *st, int i, const int32_t *t, int n)
{
    wisp_kv_seq *s = &st->seqs[i];
    wisp_err err = {0};
    int reused = wisp_kv_seq_attach_prefix(st->kv, s, t, n, n - 1, &err);
    REQUIRE(reused >= 0 && reused <= n - 1);
    int rc = wisp_kv_seq_reserve(st->kv, s, t + reused, n - reused, &err);
    if (rc == WISP_E_BUSY) {
        wisp_kv_seq_release(st->kv, s);
        return false;
    }
    REQUIRE(rc == 0);
    float got[VOCAB], want[VOCAB];
    REQUIRE(kvt_compute(st->fe, st->kv, s, got) == 0);
    fake_reference_logits(t, n, want, VOCAB);
    REQUIRE(memcmp(got, want, sizeof got) == 0);
    st->live[i] = true;
    return true;
}

static void op_admit(stress *st)
{
    int i = free_slot(st);
    if (i < 0)
        return;
    int32_t t[96];
    const int32_t *base = st->bases[rnd(st, 4)];
    int nb = (int)rnd(st, 64), n = nb + 1 + (int)rnd(st, 24);
    memcpy(t, base, sizeof *t * (size_t)nb);
    for (int k = nb; k < n; k++)
        t[k] = (int32_t)rnd(st, VOCAB);
    admit(st, i, t, n);
}

static void op_append(stress *st)
{
    int i = pick_live(st);
    if (i < 0)
        return;
    int32_t t[8];
    int n = 1 + (int)rnd(st, 8);
    for (int k = 0; k < n; k++)
        t[k] = (int32_t)rnd(st, VOCAB);
    wisp_err err = {0};
    int rc = wisp_kv_seq_reserve(st->kv, &st->seqs[i], t, n, &err);
    if (rc == WISP_E_BUSY) {
        /* Preempt someone else to make room, as the scheduler would. */
        int j = pick_live(st);
        if (j != i)
            drop(st, j);
        return;
    }
    REQUIRE(rc == 0);
    REQUIRE(kvt_compute(st->fe, st->kv, &st->seqs[i], NULL) == 0);
}

static void op_fork(stress *st)
{
    int i = pick_live(st), j = free_slot(st);
    if (i < 0 || j < 0)
        return;
    wisp_err err = {0};
    REQUIRE(wisp_kv_seq_fork(st->kv, &st->seqs[j], &st->seqs[i], &err) == 0);
    st->live[j] = true;
}

/* Reserve, then drop before computing (a request cancelled mid-flight). */
static void op_cancel(stress *st)
{
    int i = pick_live(st);
    if (i < 0)
        return;
    int32_t t[4] = {0, 1, 2, 0};
    wisp_err err = {0};
    if (wisp_kv_seq_reserve(st->kv, &st->seqs[i], t, 1 + (int)rnd(st, 4), &err) != 0)
        REQUIRE(err.code == WISP_E_BUSY);
    drop(st, i);
}

static bool yes(void *ud)
{
    (void)ud;
    return true;
}

/* A step stopped between layers: the slots are garbage; roll back. */
static void op_stopped_step(stress *st)
{
    int i = pick_live(st);
    if (i < 0)
        return;
    wisp_kv_seq *s = &st->seqs[i];
    int before = s->n_tokens;
    int32_t t[5] = {1, 2, 0, 1, 2};
    wisp_err err = {0};
    if (wisp_kv_seq_reserve(st->kv, s, t, 1 + (int)rnd(st, 5), &err) != 0)
        return;
    float l[VOCAB];
    wisp_batch_seq bs = {.tokens = s->tokens + before,
                         .n_tokens = s->n_tokens - before,
                         .pos0 = before,
                         .block_table = s->blocks,
                         .n_blocks = s->n_blocks,
                         .logits = l};
    wisp_batch b = {.seqs = &bs, .n_seqs = 1, .should_stop = yes};
    REQUIRE(st->fe->base.ops->forward(st->fe, &b, &err) == WISP_E_CANCELLED);
    wisp_kv_seq_truncate(st->kv, s, before);
}

/* Preempt and recompute: drop the blocks, admit the same tokens again. */
static void op_preempt(stress *st)
{
    int i = pick_live(st);
    if (i < 0)
        return;
    wisp_kv_seq *s = &st->seqs[i];
    int n = s->n_tokens;
    if (n == 0) {
        drop(st, i);
        return;
    }
    int32_t *t = malloc(sizeof *t * (size_t)n);
    memcpy(t, s->tokens, sizeof *t * (size_t)n);
    drop(st, i);
    admit(st, i, t, n);
    free(t);
}

static void op_truncate(stress *st)
{
    int i = pick_live(st);
    if (i < 0)
        return;
    wisp_kv_seq_truncate(st->kv, &st->seqs[i], (int)rnd(st, (uint32_t)st->seqs[i].n_tokens + 1));
}

static void run_stress(int block_size, int n_blocks, size_t host_blocks, int n_ops, uint64_t seed)
{
    stress st = {.rng = seed};
    st.fe = fake_engine_create(block_size, n_blocks, VOCAB, 1 << 20, 64);
    wisp_kv_opts o = {.model_identity = 42,
                      .prefix_cache = true,
                      .host_bytes = host_blocks * sizeof(fake_slot) * (size_t)block_size};
    wisp_err err = {0};
    REQUIRE(wisp_kv_create(&st.fe->base, &o, &st.kv, &err) == 0);
    for (int i = 0; i < MAX_SEQS; i++)
        wisp_kv_seq_init(&st.seqs[i]);
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 64; k++)
            st.bases[b][k] = (int32_t)rnd(&st, VOCAB);
    static const char *names[] = {"admit",  "append",       "fork",    "finish",
                                  "cancel", "stopped step", "preempt", "truncate"};
    for (int step = 0; step < n_ops; step++) {
        int op = (int)rnd(&st, 16);
        op = op < 5 ? 0 : op < 9 ? 1 : op - 7; /* admits and appends most often */
        if (op > 7)
            op = 7;
        st.ops[op]++;
        switch (op) {
        case 0: op_admit(&st); break;
        case 1: op_append(&st); break;
        case 2: op_fork(&st); break;
        case 3: {
            int i = pick_live(&st);
            if (i >= 0)
                drop(&st, i);
        } break;
        case 4: op_cancel(&st); break;
        case 5: op_stopped_step(&st); break;
        case 6: op_preempt(&st); break;
        default: op_truncate(&st); break;
        }
        verify(&st, step, names[op]);
    }
    wisp_kv_stats ks;
    wisp_kv_get_stats(st.kv, &ks);
    fprintf(stderr,
            "  %d ops: hits %llu/%llu queries, hit tokens %llu, cow %llu, evictions %llu, "
            "demotions %llu, promotions %llu\n",
            n_ops, (unsigned long long)ks.prefix_hits, (unsigned long long)ks.prefix_queries,
            (unsigned long long)ks.hit_tokens, (unsigned long long)ks.cow_copies,
            (unsigned long long)ks.evictions, (unsigned long long)ks.demotions,
            (unsigned long long)ks.promotions);
    /* The mix must actually have exercised sharing, copies and both tiers. */
    CHECK(ks.prefix_hits > 0);
    if (block_size > 1)
        CHECK(ks.cow_copies > 0);
    CHECK(ks.evictions > 0);
    if (host_blocks) {
        CHECK(ks.demotions > 0);
        CHECK(ks.promotions > 0);
    }
    for (int i = 0; i < MAX_SEQS; i++)
        wisp_kv_seq_free(st.kv, &st.seqs[i]);
    wisp_kv_get_stats(st.kv, &ks);
    CHECK_EQ_INT(ks.blocks_used, 0);
    CHECK_EQ_INT(ks.blocks_free + ks.blocks_cached_only, n_blocks);
    REQUIRE(wisp_kv_check(st.kv, &err) == 0);
    wisp_kv_destroy(st.kv);
    fake_engine_free(st.fe);
}

TEST(stress_block4_with_host_tier) { run_stress(4, 48, 16, 6000, 1); }
TEST(stress_block16_with_host_tier) { run_stress(16, 24, 8, 4000, 2); }
TEST(stress_block4_no_host_tier) { run_stress(4, 40, 0, 4000, 3); }
TEST(stress_block1_edge) { run_stress(1, 160, 32, 3000, 4); }
