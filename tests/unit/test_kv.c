/*
 * test_kv.c - unit tests of the paged KV cache: the hash, block tables,
 * copy-on-write, fragmentation statistics, the prefix cache's reuse rules,
 * LRU eviction and the host tier.
 */
#include "harness.h"
#include "kv/hash.h"
#include "kv_test_util.h"

#define V 16

static wisp_kv *make_kv(fake_engine *fe, bool prefix, size_t host_blocks)
{
    wisp_kv_opts o = {.model_identity = 5,
                      .prefix_cache = prefix,
                      .host_bytes = host_blocks * fake_bytes_per_block(fe)};
    wisp_kv *kv = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_kv_create(&fe->base, &o, &kv, &err) == 0);
    return kv;
}

static void check_ok(wisp_kv *kv)
{
    wisp_err err = {0};
    if (wisp_kv_check(kv, &err) != 0)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(err.code, 0);
}

TEST(xxh64_reference_vectors)
{
    CHECK(wisp_hash64("", 0, 0) == 0xEF46DB3751D8E999ULL);
    CHECK(wisp_hash64("a", 1, 0) == 0xD24EC4F1A98C6E5BULL);
    CHECK(wisp_hash64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
    const char *s = "Nobody inspects the spammish repetition";
    CHECK(wisp_hash64(s, strlen(s), 0) == 0xFBCEA83C8A378BF1ULL);
    /* Keys chain: the same tokens under another parent differ. */
    int32_t t[4] = {1, 2, 3, 4};
    CHECK(wisp_kv_block_key(1, t, 4) != wisp_kv_block_key(2, t, 4));
    CHECK(wisp_kv_root_key(1, 16) != wisp_kv_root_key(2, 16));
    CHECK(wisp_kv_root_key(1, 16) != wisp_kv_root_key(1, 32));
}

TEST(block_table_fork_and_copy_on_write)
{
    fake_engine *fe = fake_engine_create(4, 16, V, 64, 8);
    wisp_kv *kv = make_kv(fe, false, 0);
    wisp_kv_seq a, b;
    wisp_kv_seq_init(&a);
    wisp_kv_seq_init(&b);
    int32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    wisp_err err = {0};
    REQUIRE(wisp_kv_seq_reserve(kv, &a, t, 6, &err) == 0);
    CHECK_EQ_INT(a.n_blocks, 2);
    REQUIRE(kvt_compute(fe, kv, &a, NULL) == 0);
    REQUIRE(wisp_kv_seq_fork(kv, &b, &a, &err) == 0);
    CHECK_EQ_INT(wisp_kv_block_refs(kv, a.blocks[1]), 2);
    /* b appends into the shared, half-full block: it gets its own copy. */
    CHECK_EQ_INT(wisp_kv_seq_blocks_needed(kv, &b, 1), 1);
    REQUIRE(wisp_kv_seq_reserve(kv, &b, t + 6, 1, &err) == 0);
    CHECK(b.blocks[1] != a.blocks[1]);
    CHECK(b.blocks[0] == a.blocks[0]);
    CHECK_EQ_INT(fe->copies, 1);
    REQUIRE(kvt_compute(fe, kv, &b, NULL) == 0);
    CHECK(kvt_seq_matches(fe, &a));
    CHECK(kvt_seq_matches(fe, &b));
    wisp_kv_stats st;
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.cow_copies, 1);
    CHECK_EQ_INT(st.blocks_used, 3);
    CHECK_EQ_INT(st.unused_slots, 2 + 1); /* a's block holds 2 of 4, b's 3 of 4 */
    CHECK_NEAR(st.fragmentation, 3.0 / 12.0, 1e-9);
    /* a's block is now a's alone: appending writes in place. */
    REQUIRE(wisp_kv_seq_reserve(kv, &a, t, 2, &err) == 0);
    CHECK_EQ_INT(fe->copies, 1);
    check_ok(kv);
    wisp_kv_seq_free(kv, &a);
    wisp_kv_seq_free(kv, &b);
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.blocks_free, 16);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}

TEST(reserve_beyond_pool_is_busy_and_changes_nothing)
{
    fake_engine *fe = fake_engine_create(4, 4, V, 64, 8);
    wisp_kv *kv = make_kv(fe, true, 0);
    wisp_kv_seq a;
    wisp_kv_seq_init(&a);
    int32_t t[20] = {0};
    wisp_err err = {0};
    REQUIRE(wisp_kv_seq_reserve(kv, &a, t, 10, &err) == 0);
    CHECK_EQ_INT(wisp_kv_seq_reserve(kv, &a, t, 10, &err), WISP_E_BUSY);
    CHECK_EQ_INT(a.n_tokens, 10);
    CHECK_EQ_INT(a.n_blocks, 3);
    CHECK_EQ_INT(wisp_kv_available_blocks(kv), 1);
    check_ok(kv);
    wisp_kv_seq_free(kv, &a);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}

TEST(prefix_reuse_stops_before_the_last_token)
{
    fake_engine *fe = fake_engine_create(4, 32, V, 64, 8);
    wisp_kv *kv = make_kv(fe, true, 0);
    int32_t t[12] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    wisp_kv_seq a, b, c;
    wisp_kv_seq_init(&a);
    wisp_kv_seq_init(&b);
    wisp_kv_seq_init(&c);
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_kv_seq_attach_prefix(kv, &a, t, 12, 11, &err), 0);
    REQUIRE(wisp_kv_seq_reserve(kv, &a, t, 12, &err) == 0);
    REQUIRE(kvt_compute(fe, kv, &a, NULL) == 0);
    /* All three blocks are cached; the cap keeps the last token to compute,
     * inside the (shared) third block, which the next reserve copies. */
    CHECK_EQ_INT(wisp_kv_seq_attach_prefix(kv, &b, t, 12, 11, &err), 11);
    CHECK_EQ_INT(b.n_blocks, 3);
    CHECK(b.blocks[2] == a.blocks[2]);
    REQUIRE(wisp_kv_seq_reserve(kv, &b, t + 11, 1, &err) == 0);
    CHECK(b.blocks[2] != a.blocks[2]);
    float got[V], want[V];
    REQUIRE(kvt_compute(fe, kv, &b, got) == 0);
    fake_reference_logits(t, 12, want, V);
    CHECK_EQ_INT(memcmp(got, want, sizeof got), 0);
    /* A prompt that diverges inside block 2 reuses blocks 0-1 only. */
    int32_t u[12];
    memcpy(u, t, sizeof u);
    u[9] = 0;
    CHECK_EQ_INT(wisp_kv_seq_attach_prefix(kv, &c, u, 12, 11, &err), 8);
    wisp_kv_stats st;
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.prefix_queries, 3);
    CHECK_EQ_INT(st.prefix_hits, 2);
    CHECK_EQ_INT(st.hit_tokens, 19);
    check_ok(kv);
    wisp_kv_seq_free(kv, &a);
    wisp_kv_seq_free(kv, &b);
    wisp_kv_seq_free(kv, &c);
    /* Kept after the sequences end, until evicted. */
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.blocks_cached_only, 3);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}

TEST(prefix_cache_off_reuses_nothing)
{
    fake_engine *fe = fake_engine_create(4, 16, V, 64, 8);
    wisp_kv *kv = make_kv(fe, false, 0);
    int32_t t[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    wisp_kv_seq a;
    wisp_kv_seq_init(&a);
    wisp_err err = {0};
    REQUIRE(wisp_kv_seq_reserve(kv, &a, t, 9, &err) == 0);
    REQUIRE(kvt_compute(fe, kv, &a, NULL) == 0);
    wisp_kv_seq_release(kv, &a);
    CHECK_EQ_INT(wisp_kv_seq_attach_prefix(kv, &a, t, 9, 8, &err), 0);
    wisp_kv_stats st;
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.blocks_cached_only, 0);
    CHECK_EQ_INT(st.blocks_free, 16);
    wisp_kv_seq_free(kv, &a);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}

/* A pool of 4 blocks, a host tier of 8: old prefixes are demoted when the
 * pool needs room and promoted back, intact, on a later hit. */
TEST(lru_eviction_demotes_and_hits_promote)
{
    fake_engine *fe = fake_engine_create(4, 4, V, 64, 8);
    wisp_kv *kv = make_kv(fe, true, 8);
    int32_t p[3][8] = {{1, 2, 3, 4, 5, 6, 7, 8},
                       {9, 9, 9, 9, 8, 8, 8, 8},
                       {7, 7, 1, 1, 2, 2, 3, 3}};
    wisp_kv_seq s;
    wisp_kv_seq_init(&s);
    wisp_err err = {0};
    for (int i = 0; i < 3; i++) {
        REQUIRE(wisp_kv_seq_reserve(kv, &s, p[i], 8, &err) == 0);
        REQUIRE(kvt_compute(fe, kv, &s, NULL) == 0);
        wisp_kv_seq_release(kv, &s);
        check_ok(kv);
    }
    wisp_kv_stats st;
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.evictions, 2); /* prompt 0's blocks made room for prompt 2 */
    CHECK_EQ_INT(st.demotions, 2);
    CHECK_EQ_INT(st.host_blocks, 2);
    CHECK_EQ_INT(st.host_bytes_used, 2 * fake_bytes_per_block(fe));
    /* Prompt 0 (+1 token) is found in the host tier and promoted. */
    int32_t q[9];
    memcpy(q, p[0], sizeof p[0]);
    q[8] = 3;
    CHECK_EQ_INT(wisp_kv_seq_attach_prefix(kv, &s, q, 9, 8, &err), 8);
    REQUIRE(wisp_kv_seq_reserve(kv, &s, q + 8, 1, &err) == 0);
    float got[V], want[V];
    REQUIRE(kvt_compute(fe, kv, &s, got) == 0);
    fake_reference_logits(q, 9, want, V);
    CHECK_EQ_INT(memcmp(got, want, sizeof got), 0);
    CHECK(kvt_seq_matches(fe, &s));
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.promotions, 2);
    char why[256];
    CHECK(kvt_cache_content_ok(fe, kv, why, sizeof why));
    check_ok(kv);
    wisp_kv_seq_free(kv, &s);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}

TEST(truncate_rolls_back_and_frees)
{
    fake_engine *fe = fake_engine_create(4, 8, V, 64, 8);
    wisp_kv *kv = make_kv(fe, true, 0);
    int32_t t[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    wisp_kv_seq s;
    wisp_kv_seq_init(&s);
    wisp_err err = {0};
    REQUIRE(wisp_kv_seq_reserve(kv, &s, t, 6, &err) == 0);
    REQUIRE(kvt_compute(fe, kv, &s, NULL) == 0);
    REQUIRE(wisp_kv_seq_reserve(kv, &s, t + 6, 10, &err) == 0);
    CHECK_EQ_INT(s.n_blocks, 4);
    wisp_kv_seq_truncate(kv, &s, 6);
    CHECK_EQ_INT(s.n_blocks, 2);
    CHECK_EQ_INT(s.n_computed, 6);
    wisp_kv_stats st;
    wisp_kv_get_stats(kv, &st);
    CHECK_EQ_INT(st.blocks_used, 2);
    CHECK_EQ_INT(st.unused_slots, 2);
    CHECK(kvt_seq_matches(fe, &s));
    check_ok(kv);
    wisp_kv_seq_free(kv, &s);
    wisp_kv_destroy(kv);
    fake_engine_free(fe);
}
