/*
 * test_cuda_stream_plan.c - what a CUDA stage under a weights budget
 * holds and streams (engine/cuda/layer_image.h): the layer image the
 * engine uploads for a resident layer and pins on the host for a streamed
 * one (pieces in a fixed order at 256-byte aligned offsets, matrices in
 * their stored type, vectors as F32 whatever their file type, optional
 * pieces taking nothing when absent), and the stream plan over those
 * images (what fits stays resident, two buffers of the largest image,
 * the budget never exceeded, a budget short of two images refused with
 * the numbers), and the placement refusing an explicit map's CUDA budget
 * exactly where the engine would. Runs in every build: no GPU is
 * involved.
 */
#include <stdio.h>
#include <string.h>

#include "engine/cuda/layer_image.h"
#include "engine/device_map.h"
#include "engine/factory.h"
#include "harness.h"
#include "model/model.h"
#include "model/types.h"

#define NL 6

typedef struct fake {
    wisp_model_config cfg;
    wisp_model_weights w;
    wisp_layer_weights layers[NL];
    wisp_tensor t[NL][14];
} fake;

static void mat(wisp_tensor *t, const wisp_tensor **slot, int type, int64_t n_in, int64_t n_out)
{
    *t = (wisp_tensor){"w", type, 2, {n_in, n_out, 1, 1}, wisp_type_row_size(type, n_in) * n_out,
                       NULL};
    *slot = t;
}

static void vec(wisp_tensor *t, const wisp_tensor **slot, int type, int64_t n)
{
    *t = (wisp_tensor){"v", type, 1, {n, 1, 1, 1}, wisp_type_row_size(type, n), NULL};
    *slot = t;
}

/* Qwen2-like shapes with biases; layer 1's FFN in Q6_K (a larger layer),
 * the others Q4_K; norms in F16 on layer 2. */
static void fake_make(fake *f)
{
    memset(f, 0, sizeof *f);
    wisp_model_config *c = &f->cfg;
    c->n_layers = NL;
    c->n_embd = 512;
    c->n_head = 8;
    c->n_head_kv = 2;
    c->head_dim = 64;
    c->n_ff = 1024;
    const int64_t E = 512, Q = 512, KV = 128, F = 1024;
    for (int l = 0; l < NL; l++) {
        wisp_layer_weights *L = &f->layers[l];
        wisp_tensor *t = f->t[l];
        const int ffn = l == 1 ? WISP_TYPE_Q6_K : WISP_TYPE_Q4_K;
        const int nt = l == 2 ? WISP_TYPE_F16 : WISP_TYPE_F32;
        mat(&t[0], &L->wq, WISP_TYPE_Q4_K, E, Q);
        mat(&t[1], &L->wk, WISP_TYPE_Q4_K, E, KV);
        mat(&t[2], &L->wv, WISP_TYPE_Q8_0, E, KV);
        mat(&t[3], &L->wo, WISP_TYPE_Q4_K, Q, E);
        mat(&t[4], &L->w_gate, ffn, E, F);
        mat(&t[5], &L->w_up, ffn, E, F);
        mat(&t[6], &L->w_down, ffn, F, E);
        vec(&t[7], &L->attn_norm, nt, E);
        vec(&t[8], &L->ffn_norm, nt, E);
        vec(&t[9], &L->bq, WISP_TYPE_F32, Q);
        vec(&t[10], &L->bk, WISP_TYPE_F32, KV);
        vec(&t[11], &L->bv, WISP_TYPE_F32, KV);
    }
    f->w.layers = f->layers;
}

TEST(image_pieces_aligned_in_order)
{
    fake f;
    fake_make(&f);
    for (int l = 0; l < NL; l++) {
        wisp_cuda_layer_image im;
        wisp_cuda_layer_image_init(&f.cfg, &f.layers[l], &im);
        size_t end = 0;
        for (int i = 0; i < WISP_CUDA_N_PIECES; i++) {
            const wisp_cuda_piece *p = &im.p[i];
            const wisp_tensor *t = wisp_cuda_piece_tensor(&f.layers[l], (wisp_cuda_piece_id)i);
            CHECK(p->present == (t != NULL));
            CHECK_EQ_INT(p->offset % WISP_CUDA_IMAGE_ALIGN, 0);
            CHECK(p->offset >= end); /* no overlap, in order */
            end = p->offset + p->bytes;
            if (!t)
                CHECK_EQ_INT(p->bytes, 0);
            else if (p->is_vec)
                CHECK_EQ_INT(p->bytes, t->ne[0] * 4); /* F32 whatever the file has */
            else
                CHECK_EQ_INT(p->bytes, t->nbytes); /* the stored bytes */
            CHECK_EQ_INT(p->type, p->is_vec ? WISP_TYPE_F32 : t->type);
        }
        CHECK_EQ_INT(im.bytes % WISP_CUDA_IMAGE_ALIGN, 0);
        CHECK(im.bytes >= end && im.bytes - end < WISP_CUDA_IMAGE_ALIGN);
        /* the seven matrices first, then the vectors, as the engine binds */
        CHECK(!im.p[WISP_CUDA_P_DOWN].is_vec && im.p[WISP_CUDA_P_ATTN_NORM].is_vec);
        CHECK_EQ_INT(im.p[WISP_CUDA_P_WQ].offset, 0);
        CHECK_EQ_STR(im.p[WISP_CUDA_P_WO].role, "attn_output");
        CHECK_EQ_INT(im.p[WISP_CUDA_P_DOWN].n_in, 1024);
        CHECK_EQ_INT(im.p[WISP_CUDA_P_DOWN].n_out, 512);
        /* no QK norm in this model: nothing for it */
        CHECK(!im.p[WISP_CUDA_P_Q_NORM].present && im.p[WISP_CUDA_P_K_NORM].bytes == 0);
    }
}

TEST(image_sizes_by_type)
{
    fake f;
    fake_make(&f);
    wisp_cuda_layer_image a, b, c;
    wisp_cuda_layer_image_init(&f.cfg, &f.layers[0], &a);
    wisp_cuda_layer_image_init(&f.cfg, &f.layers[1], &b);
    wisp_cuda_layer_image_init(&f.cfg, &f.layers[2], &c);
    /* Q4_K: 144 bytes per 256; Q6_K: 210 */
    CHECK_EQ_INT(a.p[WISP_CUDA_P_GATE].bytes, 1024 * 2 * 144);
    CHECK_EQ_INT(b.p[WISP_CUDA_P_GATE].bytes, 1024 * 2 * 210);
    CHECK(b.bytes > a.bytes);
    /* F16 norms in the file take as much as F32 ones in the image */
    CHECK_EQ_INT(c.bytes, a.bytes);
    CHECK_EQ_INT(c.p[WISP_CUDA_P_FFN_NORM].bytes, 512 * 4);
}

TEST(plan_over_images)
{
    fake f;
    fake_make(&f);
    size_t img[NL], total = 0;
    for (int l = 0; l < NL; l++) {
        wisp_cuda_layer_image im;
        wisp_cuda_layer_image_init(&f.cfg, &f.layers[l], &im);
        img[l] = im.bytes;
        total += im.bytes;
    }
    const uint64_t big = img[1], small = img[0];
    wisp_stream_plan p;
    wisp_err err = {0};
    /* everything fits: resident, nothing streams */
    REQUIRE(wisp_cuda_stream_plan_init(&f.cfg, &f.w, 0, NL, total, &p, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 0);
    CHECK(p.held_bytes == total);
    wisp_stream_plan_free(&p);
    /* two buffers of the largest image and room for one more layer: one
     * resident (the last, which fits), five streamed */
    const uint64_t budget = 2 * big + small;
    REQUIRE(wisp_cuda_stream_plan_init(&f.cfg, &f.w, 0, NL, budget, &p, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, NL - 1);
    CHECK(p.slot_bytes == big);
    CHECK(p.resident[NL - 1]);
    CHECK(p.held_bytes == 2 * big + img[NL - 1] && p.held_bytes <= budget);
    for (int l = 0; l < NL; l++)
        CHECK(wisp_stream_plan_layer_bytes(&p, l) == img[l]);
    wisp_stream_plan_free(&p);
    /* a stage's own range: layers 2..5, largest image there is small */
    REQUIRE(wisp_cuda_stream_plan_init(&f.cfg, &f.w, 2, NL, 2 * small, &p, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 4);
    CHECK_EQ_INT(p.order[0], 2);
    wisp_stream_plan_free(&p);
    /* one byte short of two images of the largest, layer 1 */
    CHECK_EQ_INT(wisp_cuda_stream_plan_init(&f.cfg, &f.w, 0, NL, 2 * big - 1, &p, &err),
                 WISP_E_INVALID);
    CHECK(strstr(err.msg, "two of the largest layers (layer 1:") != NULL);
    wisp_stream_plan_free(&p);
    CHECK_EQ_INT(wisp_cuda_stream_plan_init(&f.cfg, &f.w, 3, NL + 1, budget, &p, &err),
                 WISP_E_INTERNAL);
    wisp_stream_plan_free(&p);
}

/* model/plan and model/load judge an explicit map's CUDA budget alike:
 * the placement refuses what the engine would, in the engine's layout,
 * on devices injected here (no GPU is asked). */
TEST(placement_judges_a_cuda_budget_as_the_engine)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "models/stories260K.gguf");
    wisp_model *m = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_model_open(path, NULL, &m, &err) == 0);
    const wisp_model_config *c = wisp_model_get_config(m);
    const wisp_model_weights *w = wisp_model_get_weights(m);
    uint64_t largest = 0, total = 0;
    for (int l = 0; l < c->n_layers; l++) {
        wisp_cuda_layer_image im;
        wisp_cuda_layer_image_init(c, &w->layers[l], &im);
        largest = im.bytes > largest ? im.bytes : largest;
        total += im.bytes;
    }
    REQUIRE(c->n_layers >= 3 && 2 * largest < total);
    const uint64_t MiB = 1 << 20;
    const wisp_place_device devs[] = {{.name = "cuda:0", .is_cpu = false, .free_bytes = 80000 * MiB},
                                      {.name = "cpu", .is_cpu = true, .free_bytes = 8000 * MiB}};
    const struct {
        uint64_t budget;
        int rc;
    } cases[] = {{2 * largest - 1, WISP_E_INVALID},
                 {2 * largest, 0},
                 {total - 1, 0},
                 {total, 0},
                 {1, WISP_E_INVALID}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wisp_device_map map = {.n = 1};
        snprintf(map.e[0].device, sizeof map.e[0].device, "cuda:0");
        map.e[0].layers = c->n_layers;
        map.e[0].weights_budget_bytes = cases[i].budget;
        wisp_engine_spec spec = {.device = "auto",
                                 .kv_type = WISP_KV_F16,
                                 .n_ctx = 256,
                                 .device_map = &map,
                                 .devices = devs,
                                 .n_devices = 2};
        wisp_engine_made made;
        memset(&err, 0, sizeof err);
        const int rc = wisp_engine_place(m, &spec, &made, &err);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc)
            CHECK(strstr(err.msg, "two of the largest layers") != NULL);
        else
            CHECK(made.placement.stages[0].weights_budget_bytes == cases[i].budget);
    }
    wisp_model_close(m);
}
