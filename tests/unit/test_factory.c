/*
 * test_factory.c - the engine factory: device choice, the KV pool it
 * sizes (by hand from stories260K's shape), its refusals, and the device
 * listing.
 *
 * stories260K: 5 layers, 4 KV heads of 8. An F16 cache takes 2 (K, V) x 5
 * x 32 x 2 = 640 bytes per token, 10240 per 16-token block; n_ctx 512 needs
 * 512 / 16 + 1 = 33 blocks.
 */
#include <string.h>

#include "common/meminfo.h"
#include "engine/factory.h"
#include "harness.h"
#include "model/model.h"

static wisp_model *open_stories(void)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "models/stories260K.gguf");
    wisp_model *m = NULL;
    wisp_err err = {0};
    if (wisp_model_open(path, NULL, &m, &err))
        return NULL;
    return m;
}

TEST(cpu_engine_with_the_default_pool)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    wisp_engine_spec spec = {.device = "cpu", .n_threads = 1, .kv_type = WISP_KV_F16, .n_ctx = 512};
    wisp_engine *e = NULL;
    wisp_engine_made made;
    wisp_err err = {0};
    REQUIRE(wisp_engine_create(m, &spec, &e, &made, &err) == 0);
    CHECK_EQ_STR(made.device, "cpu");
    CHECK_EQ_STR(made.note, "");
    CHECK_EQ_INT(made.block_size, 16);
    /* Eight contexts of 33 blocks (2.6 MiB: far below a quarter of RAM). */
    CHECK_EQ_INT(made.n_blocks, 8 * 33);
    CHECK_EQ_INT(made.kv_bytes, 8ull * 33 * 10240);
    CHECK_EQ_INT(e->opts.n_blocks, made.n_blocks);
    CHECK_EQ_INT(e->opts.max_batch_tokens, WISP_ENGINE_SERVE_BATCH_TOKENS);
    CHECK_EQ_INT(e->opts.max_seqs, WISP_ENGINE_SERVE_SEQS);
    CHECK_EQ_INT(e->opts.kv_type, WISP_KV_F16);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

TEST(explicit_pool_and_batch_limits)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    /* Q8_0 rows of 4 x 8 = 32 elements are one 34-byte block: 2 x 5 x 34 =
     * 340 bytes per token, 5440 per block; 1 MiB = 192 blocks. The CPU
     * engine stores Q8_0 per head, so head_dim 8 is refused there. */
    wisp_engine_spec spec = {.device = "cpu",
                             .kv_type = WISP_KV_F16,
                             .n_ctx = 512,
                             .kv_cache_mb = 1,
                             .max_batch_tokens = 64,
                             .max_seqs = 2};
    wisp_engine *e = NULL;
    wisp_engine_made made;
    wisp_err err = {0};
    REQUIRE(wisp_engine_create(m, &spec, &e, &made, &err) == 0);
    CHECK_EQ_INT(made.n_blocks, 1048576 / 10240);
    CHECK_EQ_INT(e->opts.max_batch_tokens, 64);
    CHECK_EQ_INT(e->opts.max_seqs, 2);
    wisp_engine_destroy(e);
    spec.kv_type = WISP_KV_Q8_0;
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_UNSUPPORTED);
    CHECK(e == NULL);
    /* 1 MiB of F16 holds 102 blocks, fewer than n_ctx 2048 needs (129). */
    spec.kv_type = WISP_KV_F16;
    spec.n_ctx = 2048;
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "kv_cache_mb 1") != NULL);
    CHECK(e == NULL);
    wisp_model_close(m);
}

TEST(device_choice)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    wisp_engine_spec spec = {.device = "tpu", .kv_type = WISP_KV_F16, .n_ctx = 64};
    wisp_engine *e = NULL;
    wisp_engine_made made;
    wisp_err err = {0};
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_INVALID);
    CHECK(strstr(err.msg, "tpu") != NULL);
    /* Device names are spelled as device_map entries spell them. */
    static const char *const misspelled[] = {"cuda:", "cuda:x", "cuda:-1", "cuda:1234", "CPU"};
    for (size_t i = 0; i < sizeof misspelled / sizeof misspelled[0]; i++) {
        spec.device = misspelled[i];
        CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_INVALID);
        CHECK(e == NULL);
    }
    /* auto (also NULL) always builds an engine; on the CPU it says why. */
    spec.device = NULL;
    REQUIRE(wisp_engine_create(m, &spec, &e, &made, &err) == 0);
    CHECK_EQ_STR(e->ops->name, made.device);
    bool on_cpu = strcmp(made.device, "cpu") == 0;
    if (on_cpu)
        CHECK(strncmp(made.note, "auto: ", 6) == 0);
    wisp_engine_destroy(e);
    e = NULL;
    /* cuda fails with a device error when auto did not find a GPU. */
    spec.device = "cuda";
    int rc = wisp_engine_create(m, &spec, &e, &made, &err);
    if (on_cpu) {
        CHECK(rc == WISP_E_DEVICE);
        CHECK(strstr(err.msg, "cuda") != NULL);
    }
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

TEST(vocab_only_model_has_no_engine)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "vocab/ggml-vocab-gpt-2.gguf");
    wisp_model *m = NULL;
    wisp_err err = {0};
    wisp_model_open_opts mo = {.vocab_only = true};
    REQUIRE(wisp_model_open(path, &mo, &m, &err) == 0);
    wisp_engine_spec spec = {.device = "cpu", .kv_type = WISP_KV_F16, .n_ctx = 64};
    wisp_engine *e = NULL;
    CHECK(wisp_engine_create(m, &spec, &e, NULL, &err) == WISP_E_NO_MODEL);
    CHECK(e == NULL);
    wisp_model_close(m);
}

TEST(devices_start_with_the_cpu)
{
    wisp_engine_device d[WISP_ENGINE_MAX_DEVICES];
    int n = wisp_engine_devices(d, WISP_ENGINE_MAX_DEVICES);
    REQUIRE(n >= 1);
    CHECK_EQ_STR(d[0].kind, "cpu");
    CHECK(d[0].name[0] != '\0');
    CHECK_EQ_INT(d[0].memory_bytes, wisp_mem_total());
    for (int i = 1; i < n; i++)
        CHECK_EQ_STR(d[i].kind, "cuda");
    CHECK_EQ_INT(wisp_engine_devices(d, 0), 0);
}

/* The placement wisp_engine_place answers (model/plan) is the one
 * wisp_engine_create builds (model/load), over the same devices. */
static void check_agree(wisp_model *m, const wisp_engine_spec *spec, const char *want_device)
{
    wisp_engine_made planned, built;
    wisp_err err = {0};
    REQUIRE(wisp_engine_place(m, spec, &planned, &err) == 0);
    wisp_engine *e = NULL;
    REQUIRE(wisp_engine_create(m, spec, &e, &built, &err) == 0);
    CHECK(memcmp(&planned.placement, &built.placement, sizeof planned.placement) == 0);
    CHECK_EQ_INT(planned.n_blocks, built.n_blocks);
    CHECK_EQ_INT(e->opts.n_blocks, built.n_blocks);
    CHECK_EQ_INT((long long)planned.kv_bytes, (long long)built.kv_bytes);
    CHECK_EQ_STR(planned.note, built.note);
    CHECK_EQ_STR(built.placement.stages[0].device, want_device);
    wisp_engine_destroy(e);
}

TEST(plan_and_build_agree_over_injected_devices)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    const uint64_t MiB = 1 << 20;
    wisp_place_device cpu = {.name = "cpu", .is_cpu = true, .free_bytes = 8000 * MiB};
    wisp_engine_spec spec = {.device = "cpu", .n_threads = 1, .kv_type = WISP_KV_F16, .n_ctx = 512};
    spec.devices = &cpu;
    spec.n_devices = 1;
    check_agree(m, &spec, "cpu");
    /* A GPU too small for one layer: auto keeps everything on the CPU and
     * says why, in both. */
    wisp_place_device two[] = {{.name = "cuda:0", .is_cpu = false, .free_bytes = 512 * MiB}, cpu};
    spec.device = "auto";
    spec.devices = two;
    spec.n_devices = 2;
    check_agree(m, &spec, "cpu");
    wisp_engine_made made;
    wisp_err err = {0};
    REQUIRE(wisp_engine_place(m, &spec, &made, &err) == 0);
    CHECK_EQ_INT(made.placement.strategy, WISP_PLACE_RESIDENT);
    CHECK(strstr(made.note, "auto: all 5 layers on cpu") == made.note);
    CHECK(strstr(made.note, "cuda:0 cannot hold one layer (0 MiB usable); using the CPU") != NULL);
    CHECK_EQ_INT(made.n_devices, 2);
    /* Memory for nothing: both refuse with the planner's numbers. */
    wisp_place_device tiny = {.name = "cpu", .is_cpu = true, .free_bytes = 1 * MiB};
    spec.devices = &tiny;
    spec.n_devices = 1;
    CHECK(wisp_engine_place(m, &spec, &made, &err) == WISP_E_TOO_LARGE);
    char msg[sizeof err.msg];
    snprintf(msg, sizeof msg, "%s", err.msg);
    CHECK(strstr(msg, "; cpu 1 MiB available; lower n_ctx") != NULL);
    wisp_engine *e = NULL;
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_TOO_LARGE);
    CHECK_EQ_STR(err.msg, msg);
    CHECK(e == NULL);
    wisp_model_close(m);
}

/* An explicit map goes through the same call for model/plan and
 * model/load: sized, checked against the injected devices, and built as
 * planned; a map no device holds is refused before any engine exists. */
TEST(explicit_map_plan_and_build_agree)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    const uint64_t MiB = 1 << 20;
    wisp_place_device cpu = {.name = "cpu", .is_cpu = true, .free_bytes = 8000 * MiB};
    wisp_device_map map = {0};
    wisp_err err = {0};
    REQUIRE(wisp_device_map_parse("cpu=3,cpu=2", &map, &err) == 0);
    wisp_engine_spec spec = {.device = "cuda", /* ignored beside a map */
                             .n_threads = 1,
                             .kv_type = WISP_KV_F16,
                             .n_ctx = 512,
                             .device_map = &map,
                             .devices = &cpu,
                             .n_devices = 1};
    check_agree(m, &spec, "cpu");
    wisp_engine_made made;
    REQUIRE(wisp_engine_place(m, &spec, &made, &err) == 0);
    CHECK_EQ_INT(made.placement.strategy, WISP_PLACE_SPLIT);
    REQUIRE(made.placement.n_stages == 2);
    CHECK_EQ_INT(made.placement.stages[1].layer_begin, 3);
    /* Each stage holds its layers' share of the 8 x 33-block pool. */
    CHECK_EQ_INT((long long)made.placement.stages[0].kv_bytes, 3LL * 8 * 33 * 10240 / 5);
    CHECK_EQ_INT((long long)made.placement.stages[1].kv_bytes, 2LL * 8 * 33 * 10240 / 5);
    CHECK(made.placement.stages[0].weight_bytes > 0 && made.placement.stages[1].weight_bytes > 0);
    CHECK_EQ_STR(made.note, "");
    /* A budget alone: one streaming CPU stage. */
    wisp_device_map budget = {.weights_budget_bytes = 1 * MiB};
    spec.device_map = &budget;
    check_agree(m, &spec, "cpu");
    REQUIRE(wisp_engine_place(m, &spec, &made, &err) == 0);
    CHECK_EQ_INT(made.placement.strategy, WISP_PLACE_STREAM);
    /* Too little memory for the map: refused, by plan and build alike. */
    wisp_place_device tiny = {.name = "cpu", .is_cpu = true, .free_bytes = 4 * MiB};
    spec.device_map = &map;
    spec.devices = &tiny;
    CHECK(wisp_engine_place(m, &spec, &made, &err) == WISP_E_TOO_LARGE);
    char msg[sizeof err.msg];
    snprintf(msg, sizeof msg, "%s", err.msg);
    CHECK(strstr(msg, "the device_map does not fit") == msg);
    CHECK(strstr(msg, ": cpu needs ") != NULL && strstr(msg, " MiB of 4 MiB available") != NULL);
    wisp_engine *e = NULL;
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) == WISP_E_TOO_LARGE);
    CHECK_EQ_STR(err.msg, msg);
    CHECK(e == NULL);
    /* Layers that do not add up. */
    REQUIRE(wisp_device_map_parse("cpu=3", &map, &err) == 0);
    spec.devices = &cpu;
    CHECK(wisp_engine_place(m, &spec, &made, &err) == WISP_E_INVALID);
    CHECK_EQ_STR(err.msg, "'device_map' holds 3 layers but the model has 5");
    wisp_model_close(m);
}

TEST(auto_falls_back_to_the_cpu_when_the_gpu_engine_refuses)
{
    wisp_model *m = open_stories();
    REQUIRE(m);
    /* A GPU with room for everything, which this build cannot drive (a CPU
     * build has no CUDA engine; a CUDA build has no device of that name):
     * the plan says cuda, the build falls back to the CPU with a note. */
    const uint64_t MiB = 1 << 20;
    wisp_place_device devs[] = {{.name = "cuda:9", .is_cpu = false, .free_bytes = 80000 * MiB},
                                {.name = "cpu", .is_cpu = true, .free_bytes = 8000 * MiB}};
    wisp_engine_spec spec = {.device = "auto",
                             .n_threads = 1,
                             .kv_type = WISP_KV_F16,
                             .n_ctx = 512,
                             .devices = devs,
                             .n_devices = 2};
    wisp_engine_made made;
    wisp_err err = {0};
    REQUIRE(wisp_engine_place(m, &spec, &made, &err) == 0);
    CHECK_EQ_STR(made.placement.stages[0].device, "cuda:9");
    wisp_engine *e = NULL;
    REQUIRE(wisp_engine_create(m, &spec, &e, &made, &err) == 0);
    CHECK_EQ_STR(made.device, "cpu");
    CHECK_EQ_STR(made.placement.stages[0].device, "cpu");
    CHECK(strstr(made.note, "auto: ") == made.note);
    CHECK(strstr(made.note, "cuda:9") != NULL);
    CHECK(strstr(made.note, "using the CPU") != NULL);
    wisp_engine_destroy(e);
    /* Asked for by name, the refusal is the answer. */
    spec.device = "cuda:9";
    CHECK(wisp_engine_create(m, &spec, &e, &made, &err) != 0);
    CHECK(e == NULL);
    wisp_model_close(m);
}
