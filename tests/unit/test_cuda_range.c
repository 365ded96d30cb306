/*
 * test_cuda_range.c - the CUDA engine's host-side layer-range arithmetic
 * (engine/cuda/range.h): which tensors a stage uploads (the embedding on
 * the first stage only, the output norm and head on the last only, a tied
 * head uploaded again only when the last stage is not also the first),
 * range validation, the hidden-state bytes per step and the "cuda:N"
 * device names a placement uses. Runs in every build: no GPU is involved.
 */
#include <string.h>

#include "engine/cuda/range.h"
#include "harness.h"

static wisp_model_config config(void)
{
    wisp_model_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = 8;
    c.n_embd = 96;
    return c;
}

TEST(whole_model_untied)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    wisp_err err = {0};
    REQUIRE(wisp_cuda_range_init(&c, 0, 0, false, &r, &err) == 0);
    CHECK_EQ_INT(r.begin, 0);
    CHECK_EQ_INT(r.end, 8);
    CHECK_EQ_INT(r.n_local, 8);
    CHECK(r.first && r.last);
    CHECK(r.up_embd && r.up_out_norm && r.up_output);
    CHECK(!r.output_is_embd);
}

TEST(whole_model_tied_shares_embedding)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    wisp_err err = {0};
    REQUIRE(wisp_cuda_range_init(&c, 0, 8, true, &r, &err) == 0);
    CHECK(r.up_embd && r.up_out_norm);
    CHECK(!r.up_output);
    CHECK(r.output_is_embd);
}

TEST(first_stage_embeds_only)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    wisp_err err = {0};
    for (int tied = 0; tied < 2; tied++) {
        REQUIRE(wisp_cuda_range_init(&c, 0, 5, tied, &r, &err) == 0);
        CHECK_EQ_INT(r.n_local, 5);
        CHECK(r.first && !r.last);
        CHECK(r.up_embd);
        CHECK(!r.up_out_norm && !r.up_output && !r.output_is_embd);
    }
}

TEST(last_stage_holds_head_only)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    wisp_err err = {0};
    for (int tied = 0; tied < 2; tied++) {
        REQUIRE(wisp_cuda_range_init(&c, 5, 8, tied, &r, &err) == 0);
        CHECK_EQ_INT(r.begin, 5);
        CHECK_EQ_INT(r.n_local, 3);
        CHECK(!r.first && r.last);
        CHECK(!r.up_embd);
        CHECK(r.up_out_norm);
        /* a tied head is the embedding matrix, uploaded here as the head */
        CHECK(r.up_output);
        CHECK(!r.output_is_embd);
    }
}

TEST(middle_stage_holds_layers_only)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    wisp_err err = {0};
    REQUIRE(wisp_cuda_range_init(&c, 2, 6, true, &r, &err) == 0);
    CHECK_EQ_INT(r.n_local, 4);
    CHECK(!r.first && !r.last);
    CHECK(!r.up_embd && !r.up_out_norm && !r.up_output && !r.output_is_embd);
}

TEST(bad_ranges_refused)
{
    wisp_model_config c = config();
    wisp_cuda_range r;
    const int bad[][2] = {{-1, 4}, {4, 4}, {5, 3}, {0, 9}, {8, 0}, {3, 12}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_cuda_range_init(&c, bad[i][0], bad[i][1], false, &r, &err),
                     WISP_E_INVALID);
        CHECK(strstr(err.msg, "8") != NULL);
    }
}

TEST(hidden_bytes)
{
    wisp_model_config c = config();
    CHECK_EQ_INT((long long)wisp_cuda_hidden_bytes(&c, 7), 7LL * 96 * 4);
    CHECK_EQ_INT((long long)wisp_cuda_hidden_bytes(&c, 0), 0);
    CHECK_EQ_INT((long long)wisp_cuda_hidden_bytes(&c, -3), 0);
    c.n_embd = 8192;
    CHECK_EQ_INT((long long)wisp_cuda_hidden_bytes(&c, 4096), 4096LL * 8192 * 4);
}

TEST(device_names)
{
    wisp_err err = {0};
    int idx = 99;
    CHECK_EQ_INT(wisp_cuda_parse_device("cuda", &idx, &err), 0);
    CHECK_EQ_INT(idx, -1);
    CHECK_EQ_INT(wisp_cuda_parse_device("cuda:0", &idx, &err), 0);
    CHECK_EQ_INT(idx, 0);
    CHECK_EQ_INT(wisp_cuda_parse_device("cuda:3", &idx, &err), 0);
    CHECK_EQ_INT(idx, 3);
    const char *bad[] = {"cpu",        "cuda:", "cuda:x", "cuda:-1", "cuda:1x",
                         "cuda:99999", "cuda0", "",       NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wisp_err e2 = {0};
        CHECK_EQ_INT(wisp_cuda_parse_device(bad[i], &idx, &e2), WISP_E_INVALID);
        CHECK_EQ_INT(idx, -1);
        CHECK(strstr(e2.msg, "cuda:N") != NULL);
    }
}
