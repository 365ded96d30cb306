/*
 * test_plan.c - the memory plan against sizes computed by hand from the
 * shared models' shapes and tensor types (the arithmetic is in comments).
 */
#include <string.h>

#include "harness.h"
#include "model/plan.h"

TEST(q4_k_m_weights_per_layer_and_kv)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "golden/syn-llama-spm-q4_k_m.gguf");
    wisp_model_plan p;
    wisp_err err = {0};
    REQUIRE(wisp_model_plan_file(path, 0, 0, -1, &p, &err) == 0);
    /* Layer 0, all Q4_K (144 bytes per 256): q,o 256x256 = 256 rows x 144 =
     * 36864 each; k,v 128 rows = 18432 each; gate,up 768 rows = 110592
     * each; down 256 rows of 768 = 256 x 3 x 144 = 110592; two F32 norms of
     * 1024. Sum 444416. Layer 1 has attn_v and ffn_down in Q6_K (210 per
     * 256): v 128 x 210 = 26880, down 256 x 3 x 210 = 161280: 503552. */
    REQUIRE(p.n_layers == 2);
    CHECK_EQ_INT(p.layer_bytes[0], 444416);
    CHECK_EQ_INT(p.layer_bytes[1], 503552);
    CHECK_EQ_INT(p.layer_bytes_max, 503552);
    /* token_embd Q6_K: 32000 rows x 210 = 6720000; tied output: 0. */
    CHECK_EQ_INT(p.embd_bytes, 6720000);
    CHECK_EQ_INT(p.output_bytes, 0);
    CHECK_EQ_INT(p.other_bytes, 1024);
    /* The file's data section: 8394048 - 725056 bytes of header. */
    CHECK_EQ_INT(p.weight_bytes, 8394048 - 725056);
    /* F16 KV: 2 (K,V) x 2 layers x 4 kv heads x 32 x 2 bytes = 1024 per
     * token; training context 2048 x 1 sequence. */
    CHECK_EQ_INT(p.n_ctx, 2048);
    CHECK_EQ_INT(p.kv_bytes_per_token, 1024);
    CHECK_EQ_INT(p.kv_bytes, 1024 * 2048);
    CHECK_EQ_INT(p.host_bytes, p.weight_bytes + p.kv_bytes + p.scratch_bytes);
    wisp_model_plan_free(&p);
    /* Q8_0 KV: rows of 128 = 4 blocks x 34 = 136; 2 x 2 x 136 = 544. */
    REQUIRE(wisp_model_plan_file(path, 4096, 3, WISP_KV_Q8_0, &p, &err) == 0);
    CHECK_EQ_INT(p.kv_bytes_per_token, 544);
    CHECK_EQ_INT(p.kv_bytes, 544ull * 4096 * 3);
    wisp_model_plan_free(&p);
}

TEST(stories_plan_with_scratch)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "models/stories260K.gguf");
    wisp_model_plan p;
    wisp_err err = {0};
    REQUIRE(wisp_model_plan_file(path, 512, 2, WISP_KV_F16, &p, &err) == 0);
    /* F32 layer: q,o 64x64x4 = 16384 each, k,v 64x32x4 = 8192 each,
     * gate,up,down 64x172x4 = 44032 each, norms 2 x 256: 181760; x5. */
    CHECK_EQ_INT(p.layer_bytes[4], 181760);
    CHECK_EQ_INT(p.layer_bytes_total, 5 * 181760);
    CHECK_EQ_INT(p.embd_bytes, 512 * 64 * 4);
    CHECK_EQ_INT(p.output_bytes, 512 * 64 * 4);
    CHECK_EQ_INT(p.weight_bytes, 1185376 - 14176);
    /* KV F16: 2 x 5 layers x 4 heads x 8 x 2 = 640 per token, x 512 x 2. */
    CHECK_EQ_INT(p.kv_bytes_per_token, 640);
    CHECK_EQ_INT(p.kv_bytes, 640 * 1024);
    /* Scratch, n_ubatch = min(512, 1024) = 512: per token 4x64 + (8+2x4)x8
     * + 3x172 = 900 floats; attention 512 x 8 heads x 512; logits 2 x 512. */
    CHECK_EQ_INT(p.n_ubatch, 512);
    CHECK_EQ_INT(p.scratch_bytes, 4ull * (512 * 900 + 512 * 8 * 512 + 2 * 512));
    wisp_model_plan_free(&p);
}

TEST(qwen2_q8_0_weights)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "golden/syn-qwen2-dsc-q8_0.gguf");
    wisp_model_plan p;
    wisp_err err = {0};
    REQUIRE(wisp_model_plan_file(path, 1024, 1, -1, &p, &err) == 0);
    /* Q8_0 (34 per 32): q,o 256 rows x 8 blocks x 34 = 69632 each; k,v 128
     * rows = 34816 each; gate,up 768 rows = 208896 each; down 256 rows x 24
     * blocks x 34 = 208896; F32 norms 2 x 1024 and biases 1024 + 512 + 512. */
    uint64_t layer = 2 * 69632 + 2 * 34816 + 3 * 208896 + 2048 + 2048;
    CHECK_EQ_INT(p.layer_bytes[0], layer);
    CHECK_EQ_INT(p.layer_bytes[1], layer);
    /* KV: 2 x 2 layers x 2 kv heads x 64 x 2 bytes = 1024 per token. */
    CHECK_EQ_INT(p.kv_bytes_per_token, 1024);
    CHECK_EQ_INT(p.kv_bytes, 1024 * 1024);
    wisp_model_plan_free(&p);
}

TEST(plan_refusals)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "models/stories260K.gguf");
    wisp_model_plan p;
    wisp_err err = {0};
    CHECK(wisp_model_plan_file(path, 512, 1, WISP_KV_TYPE_COUNT, &p, &err) == WISP_E_INVALID);
    CHECK(strstr(err.msg, "f16, q8_0, f32") != NULL);
    /* stories' KV rows have 4 x 8 = 32 elements: one Q8_0 block. */
    CHECK(wisp_model_plan_file(path, 512, 1, WISP_KV_Q8_0, &p, &err) == 0);
    CHECK_EQ_INT(p.kv_bytes_per_token, 2 * 5 * 34);
    wisp_model_plan_free(&p);
    wisp_test_shared_path(path, sizeof path, "vocab/ggml-vocab-gpt-2.gguf");
    CHECK(wisp_model_plan_file(path, 512, 1, -1, &p, &err) < 0);
    CHECK(wisp_model_plan_file("/nonexistent.gguf", 512, 1, -1, &p, &err) == WISP_E_NOT_FOUND);
}

/* The KV pool of a 2-layer model with 4 KV heads of 32: F16 takes
 * 2 x 2 x 128 x 2 = 1024 bytes per token, 16 Ki per 16-token block;
 * n_ctx 1000 needs ceil(1000 / 16) + 1 = 64 blocks. */
static const wisp_model_config pool_cfg = {.n_layers = 2, .n_head_kv = 4, .head_dim = 32};

TEST(kv_pool_default_is_contexts_capped_by_memory)
{
    wisp_kv_pool_plan pl;
    wisp_err err = {0};
    wisp_kv_pool_req r = {.cfg = &pool_cfg,
                          .kv_type = WISP_KV_F16,
                          .n_ctx = 1000,
                          .block_size = 16,
                          .contexts = 8};
    REQUIRE(wisp_plan_kv_pool(&r, &pl, &err) == 0);
    CHECK_EQ_INT(pl.bytes_per_token, 1024);
    CHECK_EQ_INT(pl.min_blocks, 64);
    CHECK_EQ_INT(pl.n_blocks, 8 * 64);
    CHECK_EQ_INT(pl.bytes, 8ull * 64 * 16 * 1024);
    /* A quarter of 16 MiB is 4 MiB = 256 blocks of 16 KiB. */
    r.mem_available = 16ull << 20;
    REQUIRE(wisp_plan_kv_pool(&r, &pl, &err) == 0);
    CHECK_EQ_INT(pl.n_blocks, 256);
    /* Never below one context: 2 MiB / 4 = 32 blocks < 64. */
    r.mem_available = 2ull << 20;
    REQUIRE(wisp_plan_kv_pool(&r, &pl, &err) == 0);
    CHECK_EQ_INT(pl.n_blocks, 64);
    /* A device limit caps the default pool... */
    r.mem_available = 0;
    r.device_limited = true;
    r.device_blocks = 100;
    REQUIRE(wisp_plan_kv_pool(&r, &pl, &err) == 0);
    CHECK_EQ_INT(pl.n_blocks, 100);
    /* ...and fails when it cannot hold one context. */
    r.device_blocks = 63;
    CHECK(wisp_plan_kv_pool(&r, &pl, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "63") != NULL);
    r.device_blocks = 0;
    CHECK(wisp_plan_kv_pool(&r, &pl, &err) == WISP_E_TOO_LARGE);
}

TEST(kv_pool_explicit_size_and_formats)
{
    wisp_kv_pool_plan pl;
    wisp_err err = {0};
    /* Q8_0: rows of 128 = 4 blocks x 34 = 136 bytes; 2 x 2 x 136 = 544 per
     * token, 8704 per block; 1 MiB holds 120 blocks (1044480 bytes). */
    wisp_kv_pool_req r = {.cfg = &pool_cfg,
                          .kv_type = WISP_KV_Q8_0,
                          .n_ctx = 1000,
                          .block_size = 16,
                          .kv_cache_mb = 1};
    REQUIRE(wisp_plan_kv_pool(&r, &pl, &err) == 0);
    CHECK_EQ_INT(pl.bytes_per_token, 544);
    CHECK_EQ_INT(pl.n_blocks, 120);
    CHECK_EQ_INT(pl.bytes, 120ull * 8704);
    /* F32 (2 x 2 x 128 x 4 = 2048 per token, 32 KiB per block): 1 MiB is
     * 32 blocks, less than the 64 of one context. */
    r.kv_type = WISP_KV_F32;
    CHECK(wisp_plan_kv_pool(&r, &pl, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "holds 512 tokens") != NULL);
    CHECK(strstr(err.msg, "at least 3") != NULL);
    r.kv_type = (wisp_kv_type)7;
    CHECK(wisp_plan_kv_pool(&r, &pl, &err) == WISP_E_INVALID);
    /* Rows of 4 x 12 = 48 elements are not Q8_0 blocks. */
    wisp_model_config odd = pool_cfg;
    odd.head_dim = 12;
    r.cfg = &odd;
    r.kv_type = WISP_KV_Q8_0;
    CHECK(wisp_plan_kv_pool(&r, &pl, &err) == WISP_E_INVALID);
}

TEST(kv_type_names)
{
    wisp_kv_type t;
    for (int i = 0; i < WISP_KV_TYPE_COUNT; i++) {
        REQUIRE(wisp_kv_type_from_name(wisp_kv_type_names[i], &t) == 0);
        CHECK_EQ_INT(t, i);
        CHECK(wisp_type_row_size(wisp_kv_type_elem(i), 32) > 0);
    }
    CHECK(wisp_kv_type_names[WISP_KV_TYPE_COUNT] == NULL);
    CHECK(wisp_kv_type_from_name("Q8_0", &t) < 0);
    CHECK(wisp_kv_type_from_name(NULL, &t) < 0);
    CHECK_EQ_INT(wisp_kv_type_elem(WISP_KV_Q8_0), WISP_TYPE_Q8_0);
    CHECK(strcmp(wisp_kv_type_name(WISP_KV_F32), "f32") == 0);
    CHECK(strcmp(wisp_kv_type_name(-1), "unknown") == 0);
    char list[64];
    wisp_kv_type_list(list, sizeof list);
    CHECK(strcmp(list, "f16, q8_0, f32") == 0);
}
