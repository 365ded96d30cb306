/*
 * test_gpu_stream.c - CUDA layer streaming (engine/cuda/cuda_stream.c)
 * against the resident CUDA engine: tiny models of five and six layers
 * (F32 llama, Q4_K qwen2 with biases and a tied Q8_0 head, F16 qwen3 with
 * QK norms) under weights budgets that stream every layer, stream all but
 * two (the resident ones spread between streamed ones), or hold them all.
 * The steps a scheduler would send - prefills on the GEMM path, decodes
 * on the matvec path, a chunk beside a decode, a block boundary - give
 * bit-identical logits, also after a step cancelled part way (the
 * schedule restarts out of order); the engine's weight bytes are the
 * plan's, within the budget, and it reports streamed bytes and copy and
 * wait times from its events.
 */
#include "gpu_test.h"
#include "gpu_tiny.h"

#include "engine/cuda/engine_cuda.h"
#include "engine/cuda/layer_image.h"

static wisp_engine *make_streamed(const tiny *m, uint64_t budget)
{
    wisp_engine_opts o = {0};
    o.block_size = 16;
    o.n_blocks = 20;
    o.kv_type = WISP_KV_F32;
    o.max_batch_tokens = 64;
    o.max_seqs = 4;
    o.weights_budget_bytes = budget;
    wisp_engine *e = NULL;
    wisp_err err = {0};
    if (wisp_engine_cuda_create_from(&m->cfg, &m->w, &o, &e, &err) != 0) {
        fprintf(stderr, "  create streamed (budget %llu): %s\n", (unsigned long long)budget,
                err.msg);
        exit(1);
    }
    return e;
}

static bool stop_third(void *ud) { return ++*(int *)ud >= 3; }

/* The steps of run_split on the resident engine and on one streaming
 * under a budget of two of the largest layers and extra_resident more
 * (all_fit: every layer), which also gets a step cancelled at its third
 * layer before the decode; every logit row bit for bit. Returns the rows
 * that differ plus wrong figures. */
static int run_streamed(const variant *vr, int extra_resident, bool all_fit)
{
    tiny m;
    tiny_make(&m, vr);
    const int V = m.cfg.vocab_size, L = m.cfg.n_layers;
    uint64_t largest = 0, total = 0;
    for (int l = 0; l < L; l++) {
        wisp_cuda_layer_image im;
        wisp_cuda_layer_image_init(&m.cfg, &m.layers[l], &im);
        largest = im.bytes > largest ? im.bytes : largest;
        total += im.bytes;
    }
    const uint64_t budget = all_fit ? total : 2 * largest + (uint64_t)extra_resident * largest;
    const int want_streamed = all_fit ? 0 : L - extra_resident;
    wisp_engine *one = make_engine(&m, WISP_KV_F32, 20);
    wisp_engine *str = make_streamed(&m, budget);
    seqst s1[2], s2[2];
    memset(s1, 0, sizeof(s1));
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 64; j++)
            s1[i].tok[j] = (int32_t)(gt_u32() % (uint32_t)V);
        for (int j = 0; j < 8; j++)
            s1[i].table[j] = (int32_t)(i == 0 ? 19 - j : 2 * j + 1);
    }
    memcpy(s2, s1, sizeof(s1));
    float *o1[2], *o2[2];
    for (int i = 0; i < 2; i++) {
        o1[i] = malloc(sizeof(float) * 64 * (size_t)V);
        o2[i] = malloc(sizeof(float) * 64 * (size_t)V);
    }
    wisp_err err = {0};
    int bad = 0;
    const int adds[4][2] = {{13, 20}, {1, 1}, {3, 1}, {0, 8}};
    const bool all[4] = {true, false, true, false};
    for (int k = 0; k < 4; k++) {
        int add[2] = {adds[k][0], adds[k][1]};
        if (k == 1) {
            /* cancelled part way: the stream's schedule restarts from
             * the first layer out of order */
            int polls = 0;
            wisp_batch_seq q = {.tokens = s2[0].tok + s2[0].n,
                                .n_tokens = 1,
                                .pos0 = s2[0].n,
                                .block_table = s2[0].table,
                                .n_blocks = 8,
                                .logits = o2[0]};
            wisp_batch b = {.seqs = &q, .n_seqs = 1, .should_stop = stop_third, .stop_ud = &polls};
            CHECK_EQ_INT(str->ops->forward(str->ctx, &b, &err), WISP_E_CANCELLED);
        }
        REQUIRE(step(one, s1, add, 2, all[k], o1, &err) == 0);
        if (step(str, s2, add, 2, all[k], o2, &err) != 0) {
            fprintf(stderr, "  streamed step %d: %s\n", k, err.msg);
            bad++;
            break;
        }
        for (int i = 0; i < 2; i++) {
            const int rows = !add[i] ? 0 : all[k] ? add[i] : 1;
            for (int t = 0; t < rows; t++) {
                char what[96];
                snprintf(what, sizeof what, "streamed (%d of %d) step %d seq %d row %d",
                         want_streamed, L, k, i, t);
                bad += cmp_rows(what, o2[i] + (size_t)t * V, o1[i] + (size_t)t * V, V, true, 0);
            }
        }
    }
    wisp_engine_stats a, b;
    one->ops->get_stats(one->ctx, &a);
    str->ops->get_stats(str->ctx, &b);
    /* the layers on the device: what the plan holds, within the budget */
    wisp_stream_plan p;
    REQUIRE(wisp_cuda_stream_plan_init(&m.cfg, &m.w, 0, L, budget, &p, &err) == 0);
    if (p.n_streamed != want_streamed || p.held_bytes > budget ||
        a.weight_bytes - b.weight_bytes != total - p.held_bytes) {
        fprintf(stderr, "  streamed %d (want %d), %llu bytes held of %llu, device %llu vs %llu\n",
                p.n_streamed, want_streamed, (unsigned long long)p.held_bytes,
                (unsigned long long)budget, (unsigned long long)b.weight_bytes,
                (unsigned long long)a.weight_bytes);
        bad++;
    }
    /* every streamed layer copied at least once per step (4 steps and
     * the cancelled one's first layers), with device times */
    const bool on = want_streamed > 0;
    if (b.weights_streaming != on ||
        (on && (b.weights_streamed_bytes < 4 * (uint64_t)want_streamed * (largest / 2) ||
                b.weights_copy_ms <= 0 || b.weights_wait_ms < 0)) ||
        (!on && (b.weights_streamed_bytes || b.weights_copy_ms > 0))) {
        fprintf(stderr, "  stream figures: streaming %d, %llu bytes, copy %.3f ms, wait %.3f ms\n",
                b.weights_streaming, (unsigned long long)b.weights_streamed_bytes,
                b.weights_copy_ms, b.weights_wait_ms);
        bad++;
    }
    if (on)
        fprintf(stderr,
                "  %d of %d layers streamed: %.1f MiB in %.3f ms of copies, %.3f ms "
                "waited (overlap %.0f%%)\n",
                want_streamed, L, (double)b.weights_streamed_bytes / 1048576.0, b.weights_copy_ms,
                b.weights_wait_ms, 100.0 * (1.0 - b.weights_wait_ms / b.weights_copy_ms));
    wisp_stream_plan_free(&p);
    engine_free(one);
    engine_free(str);
    for (int i = 0; i < 2; i++)
        free(o1[i]), free(o2[i]);
    tiny_free(&m);
    return bad;
}

TEST(streamed_layers_match_resident)
{
    GPU_REQUIRE();
    const variant vs[] = {
        {WISP_ARCH_LLAMA, WISP_TYPE_F32, WISP_TYPE_F32, false, 0, false, NL_MAX},
        {WISP_ARCH_QWEN2, WISP_TYPE_Q4_K, WISP_TYPE_Q8_0, true, 0, false, NL_MAX},
        {WISP_ARCH_QWEN3, WISP_TYPE_F16, WISP_TYPE_F16, false, 0, false, NL_MAX - 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        /* every layer streamed; all but two (spread, between streamed
         * ones); a budget that holds them all */
        gt_seed(1200 + i);
        bad += run_streamed(&vs[i], 0, false);
        gt_seed(1200 + i);
        bad += run_streamed(&vs[i], 2, false);
        gt_seed(1200 + i);
        bad += run_streamed(&vs[i], 0, true);
    }
    CHECK_EQ_INT(bad, 0);
}
