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
    REQUIRE(wisp_model_plan_file(path, 4096, 3, WISP_TYPE_Q8_0, &p, &err) == 0);
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
    REQUIRE(wisp_model_plan_file(path, 512, 2, WISP_TYPE_F16, &p, &err) == 0);
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
    CHECK(wisp_model_plan_file(path, 512, 1, WISP_TYPE_Q4_K, &p, &err) == WISP_E_INVALID);
    CHECK(strstr(err.msg, "Q4_K") != NULL);
    /* stories' KV rows have 4 x 8 = 32 elements: one Q8_0 block. */
    CHECK(wisp_model_plan_file(path, 512, 1, WISP_TYPE_Q8_0, &p, &err) == 0);
    CHECK_EQ_INT(p.kv_bytes_per_token, 2 * 5 * 34);
    wisp_model_plan_free(&p);
    wisp_test_shared_path(path, sizeof path, "vocab/ggml-vocab-gpt-2.gguf");
    CHECK(wisp_model_plan_file(path, 512, 1, -1, &p, &err) < 0);
    CHECK(wisp_model_plan_file("/nonexistent.gguf", 512, 1, -1, &p, &err) == WISP_E_NOT_FOUND);
}
