/*
 * test_stages.c - a model split over several CPU engine instances, and
 * layer streaming through a bounded weight arena, against one resident
 * instance, bit for bit.
 *
 * Every comparison is memcmp of logits: the stages run the same kernels on
 * the same rows with the same thread count, the hidden state is handed on
 * as floats, and a streamed layer is a byte copy of the mapped one, so
 * nothing may differ in the last bit. Direct engine runs cover prefill,
 * decode, batches of several sequences through shuffled block tables,
 * block copies and host round trips, and cancellation; runs through the
 * real scheduler cover preemption (a tiny pool), prefix-cache hits and the
 * host tier.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "engine/device_map.h"
#include "engine/stages.h"
#include "engine_test_util.h"
#include "harness.h"
#include "model/model.h"
#include "sched_test_util.h"

/* ---------------------------------------------------------------- fixtures */

static wisp_model *open_fixture(const char *rel)
{
    char path[512];
    wisp_test_shared_path(path, sizeof path, rel);
    return wisp_test_open_model(path);
}

static wisp_engine_opts engine_opts(int block_size, int n_blocks, int max_tokens, int max_seqs)
{
    return (wisp_engine_opts){.n_threads = 2,
                              .block_size = block_size,
                              .n_blocks = n_blocks,
                              .kv_type = WISP_KV_F16,
                              .max_batch_tokens = max_tokens,
                              .max_seqs = max_seqs};
}

/* A placement from (device, layers, budget) rows. */
typedef struct stage_spec {
    const char *device;
    int layers;
    uint64_t budget;
} stage_spec;

static wisp_placement placement_of(const stage_spec *sp, int n)
{
    wisp_placement p;
    memset(&p, 0, sizeof p);
    p.strategy = n > 1 ? WISP_PLACE_SPLIT : WISP_PLACE_RESIDENT;
    p.n_stages = n;
    int at = 0;
    for (int i = 0; i < n; i++) {
        wisp_place_stage *s = &p.stages[i];
        snprintf(s->device, sizeof s->device, "%s", sp[i].device);
        s->layer_begin = at;
        s->layer_end = at + sp[i].layers;
        s->weights_budget_bytes = sp[i].budget;
        if (sp[i].budget)
            p.strategy = WISP_PLACE_STREAM;
        at += sp[i].layers;
    }
    return p;
}

static wisp_engine *make_staged(const wisp_model *m, const stage_spec *sp, int n,
                                const wisp_engine_opts *o)
{
    wisp_placement p = placement_of(sp, n);
    wisp_engine *e = NULL;
    wisp_err err = {0};
    int rc = wisp_engine_stages_create(m, &p, o, &e, &err);
    if (rc)
        fprintf(stderr, "  stages: %s\n", err.msg);
    REQUIRE(rc == 0 && e);
    return e;
}

/* The largest layer's arena bytes, from the engine's own arithmetic: the
 * smallest budget that streams is twice it. */
static uint64_t largest_layer(const wisp_model *m)
{
    const wisp_model_weights *w = wisp_model_get_weights(m);
    uint64_t big = 0;
    for (int l = 0; l < wisp_model_get_config(m)->n_layers; l++) {
        const wisp_layer_weights *L = &w->layers[l];
        const wisp_tensor *ts[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        uint64_t b = 0;
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            b += (ts[i]->nbytes + 63) & ~(uint64_t)63;
        big = b > big ? b : big;
    }
    return big;
}

/* ---------------------------------------------------------------- runs */

#define N_IDS 40

/* A reproducible token run inside the vocabulary. */
static void fill_ids(int32_t *ids, int n, int vocab, int salt)
{
    ids[0] = 1;
    for (int i = 1; i < n; i++)
        ids[i] = 2 + (int32_t)(((unsigned)i * 2654435761u + (unsigned)salt * 40503u) %
                               (unsigned)(vocab - 2));
}

/* Prefill of 13 tokens (all logits), then one decode step per token to
 * N_IDS, through a shuffled block table; every logit into out. */
static void prefill_then_decode(wisp_engine *e, const int32_t *ids, int V, float *out)
{
    const int32_t table[6] = {4, 0, 5, 2, 1, 3}; /* 6 blocks of 8 */
    REQUIRE(wisp_test_forward1(e, ids, 13, 0, table, 6, true, out) == 0);
    for (int p = 13; p < N_IDS; p++)
        REQUIRE(wisp_test_forward1(e, ids + p, 1, p, table, 6, false, out + (size_t)p * V) == 0);
}

static bool same_floats(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            fprintf(stderr, "  %s: first difference at %zu: %.9g vs %.9g\n", what, i, a[i], b[i]);
            return false;
        }
    return true;
}

/* Every split of model m's layers into two CPU stages, and each with its
 * stages streaming, against the single resident engine. */
static void split_equals_single(const char *rel)
{
    wisp_model *m = open_fixture(rel);
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size, L = c->n_layers;
    REQUIRE(L >= 2);
    int32_t ids[N_IDS];
    fill_ids(ids, N_IDS, V, 1);
    const size_t n = (size_t)N_IDS * V;
    float *ref = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    REQUIRE(ref && got);
    wisp_engine_opts o = engine_opts(8, 6, 16, 4);
    wisp_engine *e = wisp_test_cpu_engine(m, &o);
    prefill_then_decode(e, ids, V, ref);
    /* the weights the single engine holds itself (repacked copies): a
     * resident split holds the same, spread over its stages */
    wisp_engine_stats single;
    e->ops->get_stats(e->ctx, &single);
    wisp_engine_destroy(e);

    const uint64_t budget = 2 * largest_layer(m);
    for (int cut = 1; cut < L; cut++) {
        for (int streamed = 0; streamed < 2; streamed++) {
            stage_spec sp[2] = {{"cpu", cut, streamed ? budget : 0},
                                {"cpu", L - cut, streamed ? budget : 0}};
            e = make_staged(m, sp, 2, &o);
            memset(got, 0, n * sizeof(float));
            prefill_then_decode(e, ids, V, got);
            char what[96];
            snprintf(what, sizeof what, "%s split %d+%d%s", rel, cut, L - cut,
                     streamed ? " streamed" : "");
            CHECK(same_floats(ref, got, n, what));
            wisp_engine_stats st;
            e->ops->get_stats(e->ctx, &st);
            CHECK_EQ_INT(st.n_stages, 2);
            CHECK_EQ_INT(st.stages[0].layer_end, cut);
            CHECK_EQ_INT(st.stages[1].layer_begin, cut);
            CHECK_EQ_INT(st.kv_bytes, st.stages[0].kv_bytes + st.stages[1].kv_bytes);
            CHECK(streamed ? st.weight_bytes <= 2 * budget
                           : st.weight_bytes == single.weight_bytes);
            wisp_engine_destroy(e);
        }
    }
    free(ref);
    free(got);
    wisp_model_close(m);
}

TEST(split_stories260K_every_cut) { split_equals_single("models/stories260K.gguf"); }
TEST(split_llama_q4_k_m) { split_equals_single("golden/syn-llama-spm-q4_k_m.gguf"); }
TEST(split_qwen2_f16_biases) { split_equals_single("golden/syn-qwen2-dsc-f16.gguf"); }
TEST(split_qwen2_q4_0) { split_equals_single("golden/syn-qwen2-dsc-q4_0.gguf"); }

/* With f16_as_bf16, every CPU stage gets the option: a two-stage split of
 * an F16 model computes the same logits as one engine with it, and its
 * stats count the BF16 tensors of both stages, as many as the one engine
 * converts (none on a CPU without AVX512-BF16). */
TEST(split_f16_as_bf16_reaches_every_stage)
{
    wisp_model *m = open_fixture("golden/syn-qwen2-dsc-f16.gguf");
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size, L = c->n_layers;
    REQUIRE(L >= 2);
    int32_t ids[N_IDS];
    fill_ids(ids, N_IDS, V, 5);
    const size_t n = (size_t)N_IDS * V;
    float *ref = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    REQUIRE(ref && got);
    wisp_engine_opts o = engine_opts(8, 6, 16, 4);
    o.f16_as_bf16 = true;
    wisp_engine *e = wisp_test_cpu_engine(m, &o);
    prefill_then_decode(e, ids, V, ref);
    wisp_engine_stats single;
    e->ops->get_stats(e->ctx, &single);
    wisp_engine_destroy(e);

    const int cut = L / 2;
    stage_spec sp[2] = {{"cpu", cut, 0}, {"cpu", L - cut, 0}};
    e = make_staged(m, sp, 2, &o);
    prefill_then_decode(e, ids, V, got);
    CHECK(same_floats(ref, got, n, "f16_as_bf16 split"));
    wisp_engine_stats st;
    e->ops->get_stats(e->ctx, &st);
    CHECK_EQ_INT(st.bf16_tensors, single.bf16_tensors);
    wisp_engine_destroy(e);
    free(ref);
    free(got);
    wisp_model_close(m);
}

/* Three sequences in one step (a prefill chunk beside two decodes), then
 * a step of three decodes, over a split into three stages. */
TEST(split_batch_of_three_sequences)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const int V = wisp_model_get_config(m)->vocab_size;
    int32_t a[24], b[24], cc[24];
    fill_ids(a, 24, V, 2);
    fill_ids(b, 24, V, 3);
    fill_ids(cc, 24, V, 4);
    const int32_t ta[3] = {7, 2, 9}, tb[3] = {0, 11, 4}, tc[3] = {5, 1, 10};
    wisp_engine_opts o = engine_opts(8, 12, 32, 3);
    const stage_spec sp[3] = {{"cpu", 2, 0}, {"cpu", 1, 0}, {"cpu", 2, 0}};
    float *out[2];
    for (int run = 0; run < 2; run++) {
        wisp_engine *e = run ? make_staged(m, sp, 3, &o) : wisp_test_cpu_engine(m, &o);
        out[run] = calloc((size_t)(16 + 4 + 4) * V, sizeof(float));
        REQUIRE(out[run]);
        float *la = out[run], *lb = la + (size_t)16 * V, *lc = lb + (size_t)4 * V;
        wisp_err err = {0};
        /* b and c first cached 20 tokens each, alone. */
        REQUIRE(wisp_test_forward1(e, b, 20, 0, tb, 3, false, lb) == 0);
        REQUIRE(wisp_test_forward1(e, cc, 20, 0, tc, 3, false, lc) == 0);
        wisp_batch_seq s1[3] = {
            {.tokens = a,
             .n_tokens = 16,
             .pos0 = 0,
             .block_table = ta,
             .n_blocks = 2,
             .all_logits = true,
             .logits = la},
            {.tokens = b + 20,
             .n_tokens = 1,
             .pos0 = 20,
             .block_table = tb,
             .n_blocks = 3,
             .logits = lb + V},
            {.tokens = cc + 20,
             .n_tokens = 1,
             .pos0 = 20,
             .block_table = tc,
             .n_blocks = 3,
             .logits = lc + V},
        };
        wisp_batch b1 = {.seqs = s1, .n_seqs = 3};
        REQUIRE(e->ops->forward(e->ctx, &b1, &err) == 0);
        wisp_batch_seq s2[3] = {
            {.tokens = a + 16,
             .n_tokens = 1,
             .pos0 = 16,
             .block_table = ta,
             .n_blocks = 3,
             .logits = lb + 2 * (size_t)V},
            {.tokens = b + 21,
             .n_tokens = 1,
             .pos0 = 21,
             .block_table = tb,
             .n_blocks = 3,
             .logits = lb + 3 * (size_t)V},
            {.tokens = cc + 21,
             .n_tokens = 1,
             .pos0 = 21,
             .block_table = tc,
             .n_blocks = 3,
             .logits = lc + 2 * (size_t)V},
        };
        wisp_batch b2 = {.seqs = s2, .n_seqs = 3};
        REQUIRE(e->ops->forward(e->ctx, &b2, &err) == 0);
        wisp_engine_destroy(e);
    }
    CHECK(same_floats(out[0], out[1], (size_t)24 * V, "batch of three"));
    free(out[0]);
    free(out[1]);
    wisp_model_close(m);
}

/* Block export, import and copy-on-write through the chain: its bytes are
 * the single engine's bytes, and continuing from imported and copied
 * blocks gives the same logits. */
TEST(split_blocks_round_trip_like_one_engine)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const int V = wisp_model_get_config(m)->vocab_size;
    int32_t ids[12];
    fill_ids(ids, 12, V, 5);
    wisp_engine_opts o = engine_opts(4, 12, 16, 1);
    const stage_spec sp[2] = {{"cpu", 3, 0}, {"cpu", 2, 0}};
    wisp_engine *one = wisp_test_cpu_engine(m, &o), *two = make_staged(m, sp, 2, &o);
    const size_t n = one->ops->bytes_per_block(one->ctx);
    CHECK_EQ_INT(two->ops->bytes_per_block(two->ctx), n);
    /* The same block format, so the same tag on the persistent cache. */
    CHECK_EQ_STR(two->ops->name, one->ops->name);
    float *ref = malloc(sizeof(float) * (size_t)V), *got = malloc(sizeof(float) * (size_t)V);
    uint8_t *b1 = malloc(n), *b2 = malloc(n);
    REQUIRE(ref && got && b1 && b2);
    const int32_t t1[3] = {0, 1, 2}, t2[3] = {7, 8, 9};
    wisp_err err = {0};
    wisp_engine *es[2] = {one, two};
    float *outs[2] = {ref, got};
    for (int k = 0; k < 2; k++) {
        wisp_engine *e = es[k];
        REQUIRE(wisp_test_forward1(e, ids, 10, 0, t1, 3, false, outs[k]) == 0);
        for (int blk = 0; blk < 2; blk++) {
            REQUIRE(e->ops->read_block(e->ctx, blk, b1, &err) == 0);
            REQUIRE(e->ops->write_block(e->ctx, 7 + blk, b1, &err) == 0);
        }
        REQUIRE(e->ops->copy_block(e->ctx, 9, 2, &err) == 0);
        CHECK_EQ_INT(e->ops->copy_block(e->ctx, 12, 2, &err), WISP_E_INTERNAL);
        REQUIRE(wisp_test_forward1(e, ids + 10, 2, 10, t2, 3, false, outs[k]) == 0);
    }
    CHECK(same_floats(ref, got, (size_t)V, "after import and copy"));
    for (int blk = 0; blk < 3; blk++) {
        REQUIRE(one->ops->read_block(one->ctx, 7 + blk, b1, &err) == 0);
        REQUIRE(two->ops->read_block(two->ctx, 7 + blk, b2, &err) == 0);
        CHECK(memcmp(b1, b2, n) == 0);
    }
    free(ref);
    free(got);
    free(b1);
    free(b2);
    wisp_engine_destroy(one);
    wisp_engine_destroy(two);
    wisp_model_close(m);
}

/* A step cancelled in every stage, streamed and not: it stops at the poll
 * that says so, and the step rerun afterwards gives the uncancelled
 * logits (the stream recovers from a step left part way). */
TEST(split_and_streamed_cancel_between_layers)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size;
    int32_t ids[20];
    fill_ids(ids, 20, V, 6);
    const int32_t table[3] = {0, 1, 2};
    wisp_engine_opts o = engine_opts(8, 3, 20, 1);
    float *ref = malloc(sizeof(float) * (size_t)V), *got = malloc(sizeof(float) * (size_t)V);
    REQUIRE(ref && got);
    wisp_engine *e = wisp_test_cpu_engine(m, &o);
    REQUIRE(wisp_test_forward1(e, ids, 20, 0, table, 3, false, ref) == 0);
    wisp_engine_destroy(e);
    const uint64_t budget = 2 * largest_layer(m);
    const stage_spec sp[2] = {{"cpu", 2, budget}, {"cpu", 3, budget}};
    e = make_staged(m, sp, 2, &o);
    wisp_batch_seq s = {.tokens = ids,
                        .n_tokens = 20,
                        .pos0 = 0,
                        .block_table = table,
                        .n_blocks = 3,
                        .logits = got};
    wisp_test_stops_at_every_poll(e, &s, c->n_layers);
    CHECK(same_floats(ref, got, (size_t)V, "after cancelled steps"));
    free(ref);
    free(got);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- streaming */

/* One streaming stage at the smallest budget that works: the logits of
 * the resident engine, the arena within the budget, every step's layers
 * copied (5 layers through 2 buffers), and a budget one byte short
 * refused with the numbers. */
TEST(stream_one_stage_bit_identical_within_budget)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size;
    int32_t ids[N_IDS];
    fill_ids(ids, N_IDS, V, 7);
    const size_t n = (size_t)N_IDS * V;
    float *ref = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    REQUIRE(ref && got);
    wisp_engine_opts o = engine_opts(8, 6, 16, 1);
    wisp_engine *e = wisp_test_cpu_engine(m, &o);
    prefill_then_decode(e, ids, V, ref);
    wisp_engine_destroy(e);

    const uint64_t budget = 2 * largest_layer(m);
    const stage_spec sp[1] = {{"cpu", c->n_layers, budget}};
    e = make_staged(m, sp, 1, &o);
    prefill_then_decode(e, ids, V, got);
    CHECK(same_floats(ref, got, n, "streamed"));
    wisp_engine_stats st;
    e->ops->get_stats(e->ctx, &st);
    CHECK(st.weight_bytes > 0 && st.weight_bytes <= budget);
    /* 1 + (N_IDS - 13) steps, each reading all 5 layers; at least the
     * layers beyond the two buffers are copied again every step. */
    const uint64_t steps = 1 + (N_IDS - 13);
    CHECK(st.weights_streamed_bytes >= steps * (uint64_t)(c->n_layers - 2) * (budget / 2) / 2);
    CHECK(st.weights_copy_ms > 0);
    CHECK(st.weights_wait_ms >= 0);
    fprintf(stderr, "  streamed %.1f MiB in %.2f ms of copies, %.2f ms waited (overlap %.0f%%)\n",
            (double)st.weights_streamed_bytes / 1048576.0, st.weights_copy_ms, st.weights_wait_ms,
            100.0 * (1.0 - (st.weights_copy_ms > 0 ? st.weights_wait_ms / st.weights_copy_ms : 0)));
    wisp_engine_destroy(e);

    wisp_placement p = placement_of((stage_spec[]){{"cpu", c->n_layers, budget - 1}}, 1);
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_engine_stages_create(m, &p, &o, &e, &err), WISP_E_INVALID);
    CHECK(e == NULL);
    CHECK(strstr(err.msg, "two of the largest layers") != NULL);
    free(ref);
    free(got);
    wisp_model_close(m);
}

/* A stage reports whether its engine streams, not whether it was given a
 * budget. The CPU engine streams under any budget, even one that would
 * hold all its layers (it computes from the mapping either way, so a
 * resident copy would only add memory): such a stage and a plain one
 * beside it report true and false, and a step copies layers. */
TEST(stage_reports_what_its_engine_does)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size;
    int32_t ids[20];
    fill_ids(ids, 20, V, 8);
    const int32_t table[3] = {0, 1, 2};
    wisp_engine_opts o = engine_opts(8, 3, 20, 1);
    float *got = malloc(sizeof(float) * (size_t)V);
    REQUIRE(got);
    const uint64_t all = (uint64_t)c->n_layers * largest_layer(m);
    const stage_spec sp[3] = {{"cpu", 2, 4 * all}, {"cpu", 2, 0}, {"cpu", 1, 2 * largest_layer(m)}};
    wisp_engine *e = make_staged(m, sp, 3, &o);
    REQUIRE(wisp_test_forward1(e, ids, 20, 0, table, 3, false, got) == 0);
    wisp_engine_stats st;
    e->ops->get_stats(e->ctx, &st);
    REQUIRE(st.n_stages == 3);
    CHECK(st.stages[0].streamed);
    CHECK(!st.stages[1].streamed);
    CHECK(st.stages[2].streamed);
    CHECK(st.weights_streaming);
    CHECK(st.weights_streamed_bytes > 0);
    wisp_engine_destroy(e);
    /* Without a budget anywhere nothing streams. */
    const stage_spec plain[2] = {{"cpu", 3, 0}, {"cpu", 2, 0}};
    e = make_staged(m, plain, 2, &o);
    e->ops->get_stats(e->ctx, &st);
    CHECK(!st.stages[0].streamed && !st.stages[1].streamed && !st.weights_streaming);
    wisp_engine_destroy(e);
    free(got);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- refusals */

TEST(bad_placements_are_refused)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const int L = wisp_model_get_config(m)->n_layers;
    wisp_engine_opts o = engine_opts(8, 4, 16, 1);
    struct {
        stage_spec sp[2];
        int n, code;
        const char *says;
    } cases[] = {
        {{{"cpu", L - 1, 0}}, 1, WISP_E_INVALID, "the model has"},
        {{{"cpu", 2, 0}, {"cpu", L - 1, 0}}, 2, WISP_E_INVALID, "must start"},
        {{{"cpu", 0, 0}, {"cpu", L, 0}}, 2, WISP_E_INVALID, "at least one"},
        {{{"tpu", L, 0}}, 1, WISP_E_DEVICE, "no engine for device \"tpu\""},
        {{{"cpu", 1, 0}, {"cpu", L - 1, 1}}, 2, WISP_E_INVALID, "two of the largest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wisp_placement p = placement_of(cases[i].sp, cases[i].n);
        wisp_engine *e = NULL;
        wisp_err err = {0};
        CHECK_EQ_INT(wisp_engine_stages_create(m, &p, &o, &e, &err), cases[i].code);
        CHECK(e == NULL);
        if (!strstr(err.msg, cases[i].says))
            fprintf(stderr, "  case %zu: %s\n", i, err.msg);
        CHECK(strstr(err.msg, cases[i].says) != NULL);
    }
    wisp_model_close(m);
}

/* Every allocation of building a split with a streaming stage may fail:
 * each failure is an error value, nothing half-built is left (the
 * sanitizers see any leak). */
TEST(stages_create_survives_every_allocation_failure)
{
    if (!wisp_fault_enabled())
        SKIP("allocation faults are injected only in SANITIZE=1 and FAULT=1 builds");
    wisp_model *m = open_fixture("models/stories260K.gguf");
    wisp_engine_opts o = engine_opts(8, 4, 16, 2);
    const stage_spec sp[2] = {{"cpu", 2, 0}, {"cpu", 3, 2 * largest_layer(m)}};
    wisp_placement p = placement_of(sp, 2);
    wisp_engine *e = NULL;
    wisp_err err = {0};
    wisp_fault_arm(0);
    REQUIRE(wisp_engine_stages_create(m, &p, &o, &e, &err) == 0);
    const long total = wisp_fault_count();
    wisp_engine_destroy(e);
    REQUIRE(total > 10);
    int failed = 0;
    for (long n = 1; n <= total; n++) {
        e = NULL;
        wisp_fault_arm(n);
        int rc = wisp_engine_stages_create(m, &p, &o, &e, &err);
        bool hit = wisp_fault_injected();
        wisp_fault_arm(0);
        if (hit) {
            CHECK(rc != 0 && e == NULL);
            failed += rc != 0;
        } else {
            CHECK_EQ_INT(rc, 0);
        }
        wisp_engine_destroy(e);
    }
    CHECK(failed > 0);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- device maps */

TEST(device_map_flag_form_and_placement)
{
    wisp_device_map m;
    memset(&m, 0, sizeof m);
    wisp_err err = {0};
    REQUIRE(wisp_device_map_parse("cuda:0=20,cuda:1=4,cpu=8", &m, &err) == 0);
    CHECK_EQ_INT(m.n, 3);
    CHECK_EQ_STR(m.e[1].device, "cuda:1");
    CHECK_EQ_INT(m.e[2].layers, 8);
    m.weights_budget_bytes = 64 << 20;
    m.e[1].weights_budget_bytes = 32 << 20;
    wisp_placement p;
    REQUIRE(wisp_device_map_placement(&m, 32, &p, &err) == 0);
    CHECK_EQ_INT(p.n_stages, 3);
    CHECK_EQ_INT(p.strategy, WISP_PLACE_STREAM);
    CHECK_EQ_INT(p.stages[0].layer_end, 20);
    CHECK_EQ_INT(p.stages[1].layer_begin, 20);
    CHECK_EQ_INT(p.stages[2].layer_end, 32);
    CHECK_EQ_INT(p.stages[0].weights_budget_bytes, 64 << 20); /* the map's default */
    CHECK_EQ_INT(p.stages[1].weights_budget_bytes, 32 << 20); /* its own */
    CHECK_EQ_INT(wisp_device_map_placement(&m, 31, &p, &err), WISP_E_INVALID);
    CHECK(strstr(err.msg, "holds 32 layers but the model has 31") != NULL);

    /* A budget alone: one streaming CPU stage over every layer. */
    wisp_device_map b = {.weights_budget_bytes = 8 << 20};
    CHECK(wisp_device_map_is_set(&b));
    REQUIRE(wisp_device_map_placement(&b, 5, &p, &err) == 0);
    CHECK_EQ_INT(p.n_stages, 1);
    CHECK_EQ_STR(p.stages[0].device, "cpu");
    CHECK_EQ_INT(p.stages[0].layer_end, 5);
    CHECK_EQ_INT(p.stages[0].weights_budget_bytes, 8 << 20);

    const char *bad[] = {"",      "cpu",      "cpu=",   "cpu=3,", "=3",
                         "gpu=2", "cuda:x=1", "cpu=-1", "cpu=2x", "cuda:12345=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wisp_device_map q;
        memset(&q, 0, sizeof q);
        CHECK_EQ_INT(wisp_device_map_parse(bad[i], &q, &err), WISP_E_INVALID);
    }
    wisp_device_map full;
    memset(&full, 0, sizeof full);
    for (int i = 0; i < WISP_PLACE_MAX_STAGES; i++)
        REQUIRE(wisp_device_map_add(&full, "cpu", 1, 0, &err) == 0);
    CHECK_EQ_INT(wisp_device_map_add(&full, "cpu", 1, 0, &err), WISP_E_INVALID);
}

/* ---------------------------------------------------------------- scheduler */

#define N_REQ 10

/* The same workload through the scheduler: requests sharing a prefix
 * (prefix-cache hits), a pool far too small for all at once (preemption,
 * the host tier), and an evaluate request (all logits). */
static void sched_workload(wisp_engine *e, int V, treq *t, float *eval, wisp_sched_stats *st)
{
    wisp_sched_opts so = {.model_identity = 11,
                          .n_vocab = V,
                          .n_ctx = 96,
                          .max_running = 6,
                          .step_tokens = 32,
                          .host_cache_bytes = (size_t)1 << 20};
    wisp_sched *s = NULL;
    wisp_err err = {0};
    int rc = wisp_sched_create(e, &so, &s, &err);
    if (rc)
        fprintf(stderr, "  sched: %s\n", err.msg);
    REQUIRE(rc == 0);
    int32_t shared[20];
    fill_ids(shared, 20, V, 8);
    for (int i = 0; i < N_REQ; i++) {
        int32_t p[40];
        memcpy(p, shared, sizeof shared);
        fill_ids(p + 20, 10, V, 20 + i);
        p[20] = 2 + i; /* distinct tails */
        tr_init(&t[i], p, 20 + (i % 5) * 2 + 1, 12 + i % 7);
        if (i == N_REQ - 1) {
            t[i].evaluate = true;
            t[i].max_tokens = 0;
            t[i].eval = eval;
            t[i].n_vocab = V;
        }
        REQUIRE(tr_submit(s, &t[i]) == 0);
    }
    REQUIRE(tr_run(s, 20000) > 0);
    wisp_sched_get_stats(s, st);
    wisp_sched_destroy(s);
}

TEST(split_and_streamed_through_the_scheduler)
{
    wisp_model *m = open_fixture("models/stories260K.gguf");
    const wisp_model_config *c = wisp_model_get_config(m);
    const int V = c->vocab_size;
    /* 14 blocks of 8: fewer than the running requests need together. */
    wisp_engine_opts o = engine_opts(8, 14, 32, 6);
    static treq t[3][N_REQ];
    float *eval[3];
    wisp_sched_stats st[3];
    const uint64_t budget = 2 * largest_layer(m);
    const stage_spec split[2] = {{"cpu", 3, 0}, {"cpu", 2, 0}};
    const stage_spec streamed[2] = {{"cpu", 1, 0}, {"cpu", c->n_layers - 1, budget}};
    for (int run = 0; run < 3; run++) {
        wisp_engine *e = run == 0   ? wisp_test_cpu_engine(m, &o)
                         : run == 1 ? make_staged(m, split, 2, &o)
                                    : make_staged(m, streamed, 2, &o);
        eval[run] = calloc((size_t)40 * V, sizeof(float));
        REQUIRE(eval[run]);
        sched_workload(e, V, t[run], eval[run], &st[run]);
        wisp_engine_destroy(e);
    }
    CHECK(st[0].preemptions > 0);
    CHECK(st[0].kv.hit_tokens > 0);
    for (int run = 1; run < 3; run++) {
        CHECK_EQ_INT(st[run].preemptions, st[0].preemptions);
        CHECK_EQ_INT(st[run].kv.hit_tokens, st[0].kv.hit_tokens);
        for (int i = 0; i < N_REQ; i++) {
            CHECK_EQ_INT(t[run][i].status, 0);
            CHECK_EQ_INT(t[run][i].n_out, t[0][i].n_out);
            CHECK(memcmp(t[run][i].out, t[0][i].out, sizeof(int32_t) * (size_t)t[0][i].n_out) == 0);
        }
        CHECK(same_floats(eval[0], eval[run], (size_t)t[0][N_REQ - 1].n_prompt * V,
                          "scheduled evaluate"));
    }
    for (int run = 0; run < 3; run++)
        free(eval[run]);
    wisp_model_close(m);
}
