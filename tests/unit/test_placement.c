/*
 * test_placement.c - the placement planner over injected device lists:
 * every strategy, the reserve, skipped devices, the pool that shrinks, and
 * the refusal's numbers.
 *
 * The model of every case: 4 layers of 100 MiB, a 50 MiB embedding, a
 * 50 MiB output head, 1 MiB of other tensors (501 MiB of weights), 10 MiB
 * of scratch, and 1024 KV bytes per token (256 per layer). With 16-token
 * blocks a layer's KV takes 4 KiB per block: 1 MiB for the 256-block pool
 * most cases use, so holding a layer costs 101 MiB and everything resident
 * 501 + 4 + 10 = 515 MiB. Streaming holds the non-layer weights, two
 * layer buffers, the KV and the scratch: 101 + 200 + 4 + 10 = 315 MiB at
 * least (a GPU's budget takes all it has beyond 115 MiB).
 * A GPU's reserve is 512 MiB below 25600 MiB free, so "free 512 + N MiB"
 * means N MiB usable.
 */
#include <string.h>

#include "harness.h"
#include "model/placement.h"

#define MIB ((uint64_t)1 << 20)

static uint64_t layers4[4];

static wisp_model_plan model(void)
{
    wisp_model_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.n_layers = 4;
    for (int i = 0; i < 4; i++)
        layers4[i] = 100 * MIB;
    pl.layer_bytes = layers4;
    pl.layer_bytes_total = 400 * MIB;
    pl.layer_bytes_max = 100 * MIB;
    pl.embd_bytes = 50 * MIB;
    pl.output_bytes = 50 * MIB;
    pl.other_bytes = 1 * MIB;
    pl.weight_bytes = 501 * MIB;
    pl.kv_bytes_per_token = 1024;
    pl.scratch_bytes = 10 * MIB;
    return pl;
}

static wisp_place_device gpu(const char *name, uint64_t free_mib)
{
    wisp_place_device d = {.is_cpu = false, .free_bytes = free_mib * MIB};
    snprintf(d.name, sizeof d.name, "%s", name);
    return d;
}

static wisp_place_device cpu(uint64_t free_mib)
{
    wisp_place_device d = {.is_cpu = true, .free_bytes = free_mib * MIB};
    snprintf(d.name, sizeof d.name, "cpu");
    return d;
}

static int plan(const wisp_model_plan *pl, const char *pref, const wisp_place_device *d, int n,
                wisp_placement *p, wisp_err *err)
{
    wisp_place_request r = {.plan = pl,
                            .device = pref,
                            .devices = d,
                            .n_devices = n,
                            .n_blocks = 256,
                            .min_blocks = 256,
                            .block_size = 16};
    return wisp_place_plan(&r, p, err);
}

static void check_stage(const wisp_place_stage *s, const char *dev, int a, int b,
                        uint64_t weight_mib, uint64_t kv_mib)
{
    CHECK_EQ_STR(s->device, dev);
    CHECK_EQ_INT(s->layer_begin, a);
    CHECK_EQ_INT(s->layer_end, b);
    CHECK_EQ_INT((long long)s->weight_bytes, (long long)(weight_mib * MIB));
    CHECK_EQ_INT((long long)s->kv_bytes, (long long)(kv_mib * MIB));
    CHECK_EQ_INT((long long)s->scratch_bytes, (long long)(10 * MIB));
}

TEST(reserve_is_two_percent_or_512_mib)
{
    wisp_place_device d = gpu("cuda:0", 1000);
    CHECK_EQ_INT((long long)wisp_place_reserve(&d), (long long)(512 * MIB));
    d = gpu("cuda:0", 25600); /* 2% is exactly 512 MiB */
    CHECK_EQ_INT((long long)wisp_place_reserve(&d), (long long)(512 * MIB));
    d = gpu("cuda:0", 51200);
    CHECK_EQ_INT((long long)wisp_place_reserve(&d), (long long)(1024 * MIB));
    d = gpu("cuda:0", 81920); /* an 80 GiB card, all free */
    CHECK_EQ_INT((long long)wisp_place_reserve(&d), (long long)(81920 * MIB / 50));
    d = cpu(1000);
    CHECK_EQ_INT((long long)wisp_place_reserve(&d), 0);
}

TEST(fits_on_one_gpu)
{
    wisp_model_plan pl = model();
    wisp_place_device d[] = {gpu("cuda:0", 2048), cpu(8000)};
    wisp_placement p;
    wisp_err err = {0};
    REQUIRE(plan(&pl, "auto", d, 2, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_RESIDENT);
    CHECK_EQ_INT(p.n_stages, 1);
    CHECK_EQ_INT(p.n_blocks, 256);
    CHECK_EQ_INT(p.block_size, 16);
    check_stage(&p.stages[0], "cuda:0", 0, 4, 501, 4);
    CHECK_EQ_INT(p.stages[0].weights_budget_bytes, 0);
    CHECK_EQ_INT((long long)p.stages[0].capacity_bytes, (long long)(1536 * MIB));
    CHECK_EQ_STR(p.reason, "all 4 layers on cuda:0 (515 MiB of 1536 MiB usable)");
}

TEST(reserve_decides_the_boundary)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    /* 515 MiB needed: 512 + 515 free fits exactly, one byte less does not. */
    wisp_place_device d[] = {gpu("cuda:0", 512 + 515)};
    REQUIRE(plan(&pl, "cuda", d, 1, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_RESIDENT);
    d[0].free_bytes -= 1;
    REQUIRE(plan(&pl, "cuda", d, 1, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM); /* 315 MiB to stream fits */
    /* With 2% above 512 MiB: 40000 MiB free keeps 800 MiB back. */
    wisp_place_device big[] = {gpu("cuda:0", 40000)};
    REQUIRE(plan(&pl, "cuda", big, 1, &p, &err) == 0);
    CHECK_EQ_INT((long long)p.stages[0].capacity_bytes, (long long)(39200 * MIB));
}

TEST(split_over_two_gpus)
{
    wisp_model_plan pl = model();
    /* 300 MiB usable each: stage 0 holds the embedding and two layers
     * (60 + 2 x 101 = 262; a third would be 363), stage 1 the other two
     * and the head (10 + 202 + 51 = 263). The CPU is not needed. */
    wisp_place_device d[] = {gpu("cuda:0", 812), gpu("cuda:1", 812), cpu(8000)};
    wisp_placement p;
    wisp_err err = {0};
    REQUIRE(plan(&pl, "auto", d, 3, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 2, 250, 2);
    check_stage(&p.stages[1], "cuda:1", 2, 4, 251, 2);
    CHECK_EQ_STR(p.reason,
                 "525 MiB split by layers over 2 devices: cuda:0 0-1 (262 MiB), cuda:1 2-3 "
                 "(263 MiB)");
}

TEST(split_gpu_then_cpu)
{
    wisp_model_plan pl = model();
    wisp_place_device d[] = {cpu(8000), gpu("cuda:0", 812)}; /* the CPU is last wherever listed */
    wisp_placement p;
    wisp_err err = {0};
    REQUIRE(plan(&pl, NULL, d, 2, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 2, 250, 2);
    check_stage(&p.stages[1], "cpu", 2, 4, 251, 2);
    CHECK_EQ_INT((long long)p.stages[1].capacity_bytes, (long long)(8000 * MIB));
}

TEST(split_leaves_the_last_layer_to_the_device_holding_the_head)
{
    wisp_model_plan pl = model();
    /* 470 MiB usable: 60 + 4 x 101 = 464 fits every layer, but not the
     * 51 MiB head as well, so the CPU takes layer 3 and the head. */
    wisp_place_device d[] = {gpu("cuda:0", 512 + 470), cpu(8000)};
    wisp_placement p;
    wisp_err err = {0};
    REQUIRE(plan(&pl, "auto", d, 2, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 3, 350, 3);
    check_stage(&p.stages[1], "cpu", 3, 4, 151, 1);
}

TEST(tied_head_is_copied_to_a_later_last_stage)
{
    wisp_model_plan pl = model();
    pl.output_bytes = 0;
    pl.cfg.tied_output = true;
    pl.weight_bytes = 451 * MIB;
    wisp_place_device d[] = {gpu("cuda:0", 812), gpu("cuda:1", 812)};
    wisp_placement p;
    wisp_err err = {0};
    REQUIRE(plan(&pl, "cuda", d, 2, &p, &err) == 0);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 2, 250, 2);
    check_stage(&p.stages[1], "cuda:1", 2, 4, 251, 2); /* 200 + 50 (embedding) + 1 */
    /* On one device the head is the embedding itself. */
    wisp_place_device one[] = {gpu("cuda:0", 2048)};
    REQUIRE(plan(&pl, "cuda", one, 1, &p, &err) == 0);
    check_stage(&p.stages[0], "cuda:0", 0, 4, 451, 4);
}

TEST(device_that_holds_no_layer_is_skipped)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    /* 88 MiB usable: the embedding and scratch (60) leave 28, less than a
     * layer; cuda:1 then takes everything, embedding included. */
    wisp_place_device d[] = {gpu("cuda:0", 600), gpu("cuda:1", 2048), cpu(8000)};
    REQUIRE(plan(&pl, "auto", d, 3, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_RESIDENT);
    REQUIRE(p.n_stages == 1);
    check_stage(&p.stages[0], "cuda:1", 0, 4, 501, 4);
    CHECK_EQ_STR(p.reason, "all 4 layers on cuda:1 (515 MiB of 1536 MiB usable); cuda:0 cannot "
                           "hold one layer (88 MiB usable)");
    /* A GPU whose free memory is under the reserve has nothing usable; the
     * split starts on the next device, which takes the embedding. */
    wisp_place_device e[] = {gpu("cuda:0", 400), gpu("cuda:1", 812), cpu(8000)};
    REQUIRE(plan(&pl, "auto", e, 3, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:1", 0, 2, 250, 2);
    check_stage(&p.stages[1], "cpu", 2, 4, 251, 2);
    /* auto falls back to the CPU alone when no GPU holds a layer. */
    wisp_place_device f[] = {gpu("cuda:0", 600), cpu(8000)};
    REQUIRE(plan(&pl, "auto", f, 2, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_RESIDENT);
    check_stage(&p.stages[0], "cpu", 0, 4, 501, 4);
}

TEST(stream_when_nothing_holds_the_layers)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    /* 400 MiB of RAM: 515 resident does not fit, 315 streaming does. */
    wisp_place_device d[] = {cpu(400)};
    REQUIRE(plan(&pl, "auto", d, 1, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    REQUIRE(p.n_stages == 1);
    check_stage(&p.stages[0], "cpu", 0, 4, 301, 4);
    CHECK_EQ_INT((long long)p.stages[0].weights_budget_bytes, (long long)(200 * MIB));
    CHECK_EQ_STR(p.reason, "the layers (400 MiB) do not fit beside the KV cache: streamed from "
                           "host memory through 2 x 100 MiB layer buffers on cpu (315 MiB of "
                           "400 MiB usable)");
    /* "cuda" puts no layer on the CPU: two GPUs of 200 MiB cannot split
     * it (the second device would need 10 + 202 + 51), so cuda:0 streams,
     * its budget the 320 - 115 MiB it has spare. */
    wisp_place_device g[] = {gpu("cuda:0", 512 + 320), gpu("cuda:1", 512 + 200), cpu(100000)};
    REQUIRE(plan(&pl, "cuda", g, 3, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    check_stage(&p.stages[0], "cuda:0", 0, 4, 101 + 205, 4);
    CHECK_EQ_INT((long long)p.stages[0].weights_budget_bytes, (long long)(205 * MIB));
    CHECK_EQ_STR(p.reason, "the layers (400 MiB) do not fit beside the KV cache: streamed from "
                           "host memory on cuda:0, those a 205 MiB budget holds resident "
                           "beside 2 x 100 MiB buffers (320 of 320 MiB usable)");
}

/* A GPU streaming gets every byte it has spare beside the non-layer
 * weights, the KV and the scratch (115 MiB) as its budget, so its engine
 * keeps the layers that fit resident; the CPU gets two layer buffers
 * whatever it has (above: 400 MiB, budget 200). */
TEST(stream_gpu_budget_is_its_spare_memory)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    /* 450 MiB and 12345 bytes usable: 335 MiB and 12345 bytes spare. */
    wisp_place_device d[] = {gpu("cuda:0", 512 + 450), cpu(100000)};
    d[0].free_bytes += 12345;
    REQUIRE(plan(&pl, "cuda", d, 2, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    REQUIRE(p.n_stages == 1);
    const wisp_place_stage *s = &p.stages[0];
    CHECK_EQ_STR(s->device, "cuda:0");
    CHECK_EQ_INT((long long)s->capacity_bytes, (long long)(450 * MIB + 12345));
    CHECK_EQ_INT((long long)s->weights_budget_bytes, (long long)(335 * MIB + 12345));
    CHECK_EQ_INT((long long)(s->weight_bytes + s->kv_bytes + s->scratch_bytes),
                 (long long)s->capacity_bytes); /* the device is full */
    CHECK_EQ_INT((long long)s->weight_bytes, (long long)(101 * MIB + s->weights_budget_bytes));
    /* Spare memory of just two layers: the two buffers and nothing else. */
    wisp_place_device two[] = {gpu("cuda:0", 512 + 315)};
    REQUIRE(plan(&pl, "cuda", two, 1, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    check_stage(&p.stages[0], "cuda:0", 0, 4, 301, 4);
    CHECK_EQ_INT((long long)p.stages[0].weights_budget_bytes, (long long)(200 * MIB));
    CHECK_EQ_STR(p.reason, "the layers (400 MiB) do not fit beside the KV cache: streamed from "
                           "host memory through 2 x 100 MiB layer buffers on cuda:0 (315 MiB of "
                           "315 MiB usable)");
    /* One byte less cannot hold the two buffers. */
    two[0].free_bytes -= 1;
    CHECK(plan(&pl, "cuda", two, 1, &p, &err) == WISP_E_TOO_LARGE);
}

TEST(refusal_names_devices_need_and_shortfall)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {gpu("cuda:0", 712), cpu(100)};
    CHECK(plan(&pl, "auto", d, 2, &p, &err) == WISP_E_TOO_LARGE);
    CHECK_EQ_STR(err.msg,
                 "the model does not fit: it needs 515 MiB with every layer resident (weights "
                 "501, KV 4 for 4096 tokens, scratch 10) or 315 MiB on one device to stream its "
                 "layers, short by 115 MiB to stream (215 MiB to hold every layer); cuda:0 200 "
                 "MiB usable (712 MiB free less a 512 MiB reserve), cpu 100 MiB available; "
                 "lower n_ctx, use kv_type q8_0, or a smaller quantization");
    CHECK_EQ_INT(p.n_stages, 0);
    wisp_place_device c[] = {cpu(300)};
    CHECK(plan(&pl, "cpu", c, 1, &p, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "short by 15 MiB to stream (215 MiB to hold every layer); cpu 300 "
                          "MiB available;") != NULL);
}

TEST(device_preferences)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {gpu("cuda:0", 2048), gpu("cuda:1", 4096), cpu(8000)};
    REQUIRE(plan(&pl, "cpu", d, 3, &p, &err) == 0);
    check_stage(&p.stages[0], "cpu", 0, 4, 501, 4);
    REQUIRE(plan(&pl, "cuda:1", d, 3, &p, &err) == 0);
    check_stage(&p.stages[0], "cuda:1", 0, 4, 501, 4);
    REQUIRE(plan(&pl, "", d, 3, &p, &err) == 0); /* "" is auto */
    check_stage(&p.stages[0], "cuda:0", 0, 4, 501, 4);
    CHECK(plan(&pl, "cuda:7", d, 3, &p, &err) == WISP_E_DEVICE);
    CHECK_EQ_STR(err.msg, "device \"cuda:7\" was requested but is not there (devices: cuda:0, "
                          "cuda:1, cpu)");
    CHECK(plan(&pl, "tpu", d, 3, &p, &err) == WISP_E_INVALID);
    CHECK(strstr(err.msg, "\"tpu\"") != NULL);
    CHECK(plan(&pl, "cuda:", d, 3, &p, &err) == WISP_E_INVALID);
    CHECK(plan(&pl, "cuda:1x", d, 3, &p, &err) == WISP_E_INVALID);
    wisp_place_device only_cpu[] = {cpu(8000)};
    CHECK(plan(&pl, "cuda", only_cpu, 1, &p, &err) == WISP_E_DEVICE);
    /* One GPU named: no split to others, streaming on it instead. */
    wisp_place_device small[] = {gpu("cuda:0", 512 + 400), gpu("cuda:1", 4096), cpu(8000)};
    REQUIRE(plan(&pl, "cuda:0", small, 3, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    CHECK_EQ_STR(p.stages[0].device, "cuda:0");
}

TEST(pool_shrinks_to_stay_on_one_gpu)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    /* 2560 blocks: 10 MiB of KV per layer, 551 MiB resident. 540 MiB
     * usable leaves 29 MiB for KV at 16 KiB a block: 1856 blocks. */
    wisp_place_device d[] = {gpu("cuda:0", 512 + 540), cpu(8000)};
    wisp_place_request r = {.plan = &pl,
                            .device = "auto",
                            .devices = d,
                            .n_devices = 2,
                            .n_blocks = 2560,
                            .min_blocks = 256,
                            .block_size = 16};
    REQUIRE(wisp_place_plan(&r, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_RESIDENT);
    CHECK_EQ_INT(p.n_blocks, 1856);
    CHECK_EQ_STR(p.stages[0].device, "cuda:0");
    CHECK_EQ_INT((long long)p.stages[0].kv_bytes, 1856LL * 16 * 1024);
    /* A pool that must stay whole splits instead. */
    r.min_blocks = 2560;
    REQUIRE(wisp_place_plan(&r, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    CHECK_EQ_INT(p.n_blocks, 2560);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 4 - 1, 350, 30);
    check_stage(&p.stages[1], "cpu", 3, 4, 151, 10);
}

TEST(bad_requests)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {cpu(8000)};
    wisp_place_request r = {.plan = &pl, .devices = d, .n_devices = 1, .block_size = 16};
    CHECK(wisp_place_plan(&r, &p, &err) == WISP_E_INVALID); /* no pool */
    r.n_blocks = 1;
    pl.n_layers = 0;
    CHECK(wisp_place_plan(&r, &p, &err) == WISP_E_INVALID);
    pl.n_layers = 4;
    r.n_devices = 0;
    CHECK(wisp_place_plan(&r, &p, &err) == WISP_E_DEVICE);
    CHECK_EQ_STR(err.msg, "device \"auto\" was requested but is not there (no devices)");
    CHECK_EQ_STR(wisp_place_strategy_name(WISP_PLACE_SPLIT), "split");
}

/* ---------------------------------------------------------------- explicit */

/* A placement as a device_map gives it: devices, layer counts, budgets. */
static wisp_placement given(const char *const *dev, const int *layers, const uint64_t *budget_mib,
                            int n)
{
    wisp_placement p;
    memset(&p, 0, sizeof p);
    p.n_stages = n;
    p.strategy = n > 1 ? WISP_PLACE_SPLIT : WISP_PLACE_RESIDENT;
    int at = 0;
    for (int i = 0; i < n; i++) {
        snprintf(p.stages[i].device, sizeof p.stages[i].device, "%s", dev[i]);
        p.stages[i].layer_begin = at;
        p.stages[i].layer_end = at += layers[i];
        p.stages[i].weights_budget_bytes = budget_mib ? budget_mib[i] * MIB : 0;
        if (p.stages[i].weights_budget_bytes)
            p.strategy = WISP_PLACE_STREAM;
    }
    snprintf(p.reason, sizeof p.reason, "the map");
    return p;
}

static int place_given(const wisp_model_plan *pl, const wisp_place_device *d, int n,
                       const wisp_placement *in, wisp_placement *out, wisp_err *err)
{
    wisp_place_request r = {.plan = pl,
                            .devices = d,
                            .n_devices = n,
                            .n_blocks = 256,
                            .min_blocks = 256,
                            .block_size = 16};
    return wisp_place_explicit(&r, in, out, err);
}

TEST(explicit_map_is_counted_as_the_planner_counts)
{
    wisp_model_plan pl = model();
    wisp_placement auto_p, p;
    wisp_err err = {0};
    /* 400 MiB usable on the GPU: the planner puts 3 layers there. */
    wisp_place_device d[] = {gpu("cuda:0", 512 + 400), cpu(8000)};
    REQUIRE(plan(&pl, "auto", d, 2, &auto_p, &err) == 0);
    REQUIRE(auto_p.n_stages == 2);
    const char *devs[] = {"cuda:0", "cpu"};
    const int layers[] = {3, 1};
    wisp_placement in = given(devs, layers, NULL, 2);
    REQUIRE(place_given(&pl, d, 2, &in, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_SPLIT);
    CHECK_EQ_INT(p.n_blocks, 256);
    CHECK_EQ_INT(p.block_size, 16);
    REQUIRE(p.n_stages == 2);
    check_stage(&p.stages[0], "cuda:0", 0, 3, 350, 3);
    check_stage(&p.stages[1], "cpu", 3, 4, 151, 1);
    CHECK(memcmp(p.stages, auto_p.stages, sizeof p.stages[0] * 2) == 0);
    CHECK_EQ_INT((long long)p.stages[0].capacity_bytes, (long long)(400 * MIB));
    CHECK_EQ_INT((long long)p.stages[1].capacity_bytes, (long long)(8000 * MIB));
    CHECK_EQ_STR(p.reason, "the map: 525 MiB as device_map places it");
    /* "cuda" is the first GPU, named as the device list names it. */
    const char *any[] = {"cuda", "cpu"};
    in = given(any, layers, NULL, 2);
    REQUIRE(place_given(&pl, d, 2, &in, &p, &err) == 0);
    CHECK_EQ_STR(p.stages[0].device, "cuda:0");
    CHECK_EQ_INT((long long)p.stages[0].capacity_bytes, (long long)(400 * MIB));
}

TEST(explicit_map_over_capacity_is_refused_with_the_numbers)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {gpu("cuda:0", 512 + 400), cpu(8000)};
    const char *devs[] = {"cuda:0"};
    const int all[] = {4};
    wisp_placement in = given(devs, all, NULL, 1);
    /* 501 MiB of weights, 4 of KV, 10 of scratch on 400 usable. */
    CHECK(place_given(&pl, d, 2, &in, &p, &err) == WISP_E_TOO_LARGE);
    CHECK_EQ_STR(err.msg, "the device_map does not fit (KV for 4096 tokens): cuda:0 needs 515 "
                          "MiB of 400 MiB usable (912 MiB free less a 512 MiB reserve), short "
                          "by 115 MiB; move layers to another device, lower n_ctx, use "
                          "kv_type q8_0, or set a weights budget");
    /* Two stages on one device share it: 262 + 263 MiB on 300. */
    wisp_place_device small[] = {cpu(300)};
    const char *cpus[] = {"cpu", "cpu"};
    const int halves[] = {2, 2};
    in = given(cpus, halves, NULL, 2);
    CHECK(place_given(&pl, small, 1, &in, &p, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, ": cpu needs 525 MiB of 300 MiB available, short by 225 MiB; ") != NULL);
    /* ... and fit where the sum does. */
    wisp_place_device big[] = {cpu(525)};
    REQUIRE(place_given(&pl, big, 1, &in, &p, &err) == 0);
    check_stage(&p.stages[0], "cpu", 0, 2, 250, 2);
    check_stage(&p.stages[1], "cpu", 2, 4, 251, 2);
    /* A device with room left is named without a shortfall. */
    const char *split[] = {"cuda:0", "cpu"};
    const int l31[] = {3, 1};
    wisp_place_device tight[] = {gpu("cuda:0", 512 + 300), cpu(8000)};
    in = given(split, l31, NULL, 2);
    CHECK(place_given(&pl, tight, 2, &in, &p, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "cuda:0 needs 363 MiB of 300 MiB usable (812 MiB free less a 512 MiB "
                          "reserve), short by 63 MiB; cpu needs 162 MiB of 8000 MiB available; "
                          "move") != NULL);
}

TEST(explicit_budget_holds_at_most_the_budget)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {cpu(8000)};
    const char *devs[] = {"cpu"};
    const int all[] = {4};
    const uint64_t budget[] = {250};
    wisp_placement in = given(devs, all, budget, 1);
    REQUIRE(place_given(&pl, d, 1, &in, &p, &err) == 0);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    /* 250 of the 400 MiB of layers, the embedding, head and others. */
    check_stage(&p.stages[0], "cpu", 0, 4, 351, 4);
    CHECK_EQ_INT((long long)p.stages[0].weights_budget_bytes, (long long)(250 * MIB));
    /* A budget above the layers holds only the layers. */
    const uint64_t ample[] = {4096};
    in = given(devs, all, ample, 1);
    REQUIRE(place_given(&pl, d, 1, &in, &p, &err) == 0);
    check_stage(&p.stages[0], "cpu", 0, 4, 501, 4);
}

TEST(explicit_pool_shrinks_to_fit_unless_fixed)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {gpu("cuda:0", 512 + 540), cpu(8000)};
    const char *devs[] = {"cuda:0"};
    const int all[] = {4};
    wisp_placement in = given(devs, all, NULL, 1);
    wisp_place_request r = {.plan = &pl,
                            .devices = d,
                            .n_devices = 2,
                            .n_blocks = 2560,
                            .min_blocks = 256,
                            .block_size = 16};
    REQUIRE(wisp_place_explicit(&r, &in, &p, &err) == 0);
    CHECK_EQ_INT(p.n_blocks, 1856); /* as the planner's own resident plan */
    CHECK_EQ_INT((long long)p.stages[0].kv_bytes, 1856LL * 16 * 1024);
    r.min_blocks = 2560;
    CHECK(wisp_place_explicit(&r, &in, &p, &err) == WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "(KV for 40960 tokens): cuda:0 needs 551 MiB of 540 MiB") != NULL);
}

TEST(explicit_bad_maps)
{
    wisp_model_plan pl = model();
    wisp_placement p;
    wisp_err err = {0};
    wisp_place_device d[] = {cpu(8000), gpu("cuda:0", 4096)};
    const char *devs[] = {"cpu", "cuda:3"};
    const int layers[] = {2, 2};
    wisp_placement in = given(devs, layers, NULL, 2);
    CHECK(place_given(&pl, d, 2, &in, &p, &err) == WISP_E_DEVICE);
    CHECK_EQ_STR(err.msg, "device_map entry 1: no engine for device \"cuda:3\" here (devices: "
                          "cpu, cuda:0)");
    CHECK(place_given(&pl, d, 1, &in, &p, &err) == WISP_E_DEVICE); /* no GPU at all */
    const int short_[] = {2, 1};
    const char *cpus[] = {"cpu", "cpu"};
    in = given(cpus, short_, NULL, 2);
    CHECK(place_given(&pl, d, 2, &in, &p, &err) == WISP_E_INVALID);
    CHECK_EQ_STR(err.msg, "placement: the stages hold 3 layers but the model has 4");
    in = given(cpus, layers, NULL, 2);
    in.stages[1].layer_begin = 3; /* a gap */
    CHECK(place_given(&pl, d, 2, &in, &p, &err) == WISP_E_INVALID);
    in.n_stages = 0;
    CHECK(place_given(&pl, d, 2, &in, &p, &err) == WISP_E_INVALID);
}
