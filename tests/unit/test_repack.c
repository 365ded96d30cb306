/*
 * test_repack.c - weights repacked into interleaved rows (repack.h) give
 * the bits of the file's layout.
 *
 * For Q4_0 and Q8_0 (Q4_K below, in its 16-row groups): random valid blocks, row lengths with and without
 * blocks past the last quad (3 .. 88 blocks), row counts with and without
 * rows past the last group, token counts that leave every remainder of the
 * kernels' token passes; at every SIMD level this CPU has, through the
 * thread pool with 1 and 2 threads, the repacked product must equal the
 * product of the same weights in the file's layout bit for bit, and each
 * token of a batch its own product alone. The layout itself is checked by
 * unpacking every block back, and the engine's copy of the weights by
 * what it replaces and what it shares; a whole engine gives the same
 * logits with and without repacking (no_repack), prefill and decode.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/fp16.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/repack.h"
#include "engine/engine.h"
#include "harness.h"
#include "model/model.h"
#include "model/quant_blocks.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static float rng_f(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u64() >> 40) / 16777216.f;
}

/* Random quants, a sane random scale in every block (its first field). */
static void *make_weights(int type, int64_t n_in, int64_t n_out)
{
    const size_t bytes = wisp_cpu_row_bytes(type, n_in) * (size_t)n_out;
    uint8_t *w = malloc(bytes);
    REQUIRE(w);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rng_u64();
    const size_t bb = wisp_cpu_block_bytes(type);
    for (size_t b = 0; b < bytes / bb; b++) {
        uint16_t h = wisp_float_to_half(rng_f(0.0005f, 0.02f));
        memcpy(w + b * bb, &h, 2);
    }
    return w;
}

static void *repacked_copy(int type, int64_t n_in, int64_t n_out, const void *w)
{
    const size_t bytes = wisp_cpu_row_bytes(type, n_in) * (size_t)n_out;
    void *p = malloc(bytes);
    REQUIRE(p);
    wisp_rp_pack(type, n_in, n_out, w, p);
    return p;
}

static void run(const wisp_tensor *t, const float *x, int64_t n_tok, int n_threads, float *y)
{
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_threadpool_create(n_threads, &tp, &err) == 0);
    const size_t ss = wisp_matmul_scratch_size(t->type, t->ne[0], n_tok);
    char *mem = malloc(ss + 1);
    REQUIRE(mem);
    wisp_matmul_scratch scratch = {mem + 1, ss}; /* misaligned on purpose */
    const int rc = wisp_matmul(tp, t, x, n_tok, y, &scratch, &err);
    if (rc)
        fprintf(stderr, "  matmul: %s\n", err.msg);
    REQUIRE(rc == 0);
    free(mem);
    wisp_threadpool_destroy(tp);
}

static const int TYPES[] = {WISP_TYPE_Q4_0, WISP_TYPE_Q8_0};

/* Every block of every row comes back from the layout as it was. */
TEST(layout_round_trip)
{
    static const int64_t blocks[] = {3, 4, 9, 88};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++) {
            const int type = TYPES[ti];
            const int64_t nb = blocks[bi], n_in = 32 * nb, n_out = 21;
            const size_t row = wisp_cpu_row_bytes(type, n_in), bb = wisp_cpu_block_bytes(type);
            uint8_t *w = make_weights(type, n_in, n_out);
            uint8_t *p = repacked_copy(type, n_in, n_out, w);
            const int64_t nq = nb / 4, nt = nb % 4;
            int bad = 0;
            for (int64_t r = 0; r < n_out; r++)
                for (int64_t i = 0; i < nb; i++) {
                    uint8_t blk[64];
                    const uint8_t *want = w + (size_t)r * row + (size_t)i * bb;
                    const uint8_t *grp = p + (size_t)(r / 8) * 8 * row;
                    if (r >= n_out / 8 * 8)
                        memcpy(blk, p + (size_t)r * row + (size_t)i * bb, bb);
                    else if (i < nq * 4)
                        wisp_rp_unpack_block(type, grp + (size_t)(i / 4) * wisp_rp_quad_bytes(type),
                                             (int)(r % 8) / 4, (int)(r % 4), (int)(i % 4), blk);
                    else
                        memcpy(blk,
                               grp + (size_t)nq * wisp_rp_quad_bytes(type) +
                                   (size_t)((r % 8) * nt + i - nq * 4) * bb,
                               bb);
                    bad += memcmp(blk, want, bb) != 0;
                }
            CHECK_EQ_INT(bad, 0);
            free(w);
            free(p);
        }
}

/* The repacked copy p of w (type, n_in x n_out) against the file layout at
 * the active level, nt tokens of random activations, on 1 and 2 threads,
 * and every 5th token of the batch alone. Returns the mismatches and
 * reports the first few (*reported counts them across calls). */
static int compare_layouts(int type, int64_t n_in, int64_t n_out, void *w, void *p, int64_t nt,
                           int *reported)
{
    const wisp_tensor tw = {.name = "w",
                            .type = type,
                            .n_dims = 2,
                            .ne = {n_in, n_out, 1, 1},
                            .data = w};
    wisp_tensor tp = tw;
    tp.type = type | WISP_RP_TYPE_FLAG;
    tp.data = p;
    const char *lv = wisp_cpu_simd_name(wisp_cpu_simd_active());
    float *x = malloc(sizeof(float) * (size_t)(n_in * nt));
    float *want = malloc(sizeof(float) * (size_t)(n_out * nt));
    float *got = malloc(sizeof(float) * (size_t)(n_out * nt));
    float *one = malloc(sizeof(float) * (size_t)n_out);
    REQUIRE(x && want && got && one);
    for (int64_t i = 0; i < n_in * nt; i++)
        x[i] = rng_f(-2.f, 2.f) * (rng_u64() % 29 == 0 ? 8.f : 1.f);
    int fails = 0;
    run(&tw, x, nt, 1, want);
    for (int th = 1; th <= 2; th++) {
        for (int64_t i = 0; i < n_out * nt; i++)
            got[i] = NAN;
        run(&tp, x, nt, th, got);
        if (memcmp(got, want, sizeof(float) * (size_t)(n_out * nt)) != 0) {
            fails++;
            int64_t i = 0;
            while (got[i] == want[i])
                i++;
            if ((*reported)++ < 5)
                fprintf(stderr,
                        "  %s %s %lld x %lld, %lld tokens, %d threads: [%lld] repacked %.9g, "
                        "file layout %.9g\n",
                        wisp_type_name(type), lv, (long long)n_in, (long long)n_out, (long long)nt,
                        th, (long long)i, got[i], want[i]);
        }
    }
    for (int64_t t = 0; t < nt && nt > 1; t += 5) {
        run(&tp, x + t * n_in, 1, 1, one);
        if (memcmp(one, got + t * n_out, sizeof(float) * (size_t)n_out) != 0) {
            fails++;
            if ((*reported)++ < 5)
                fprintf(stderr, "  %s %s: token %lld alone differs from its batch of %lld\n",
                        wisp_type_name(type), lv, (long long)t, (long long)nt);
        }
    }
    free(x);
    free(want);
    free(got);
    free(one);
    return fails;
}

/* Repacked = file layout, bit for bit, at every level; a batch = each of
 * its tokens alone. */
TEST(repacked_equals_file_layout)
{
    static const int64_t blocks[] = {3, 5, 8, 9, 37, 88};
    static const int64_t outs[] = {8, 37, 69};
    static const int64_t toks[] = {1, 3, 6, 13, 17};
    int fails = 0, reported = 0;
    for (int lv = 0; lv <= (int)wisp_cpu_simd_max(); lv++) {
        REQUIRE(wisp_cpu_simd_force((wisp_simd_level)lv) == (wisp_simd_level)lv);
        for (size_t ti = 0; ti < 2; ti++)
            for (size_t bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++)
                for (size_t oi = 0; oi < sizeof(outs) / sizeof(outs[0]); oi++) {
                    const int type = TYPES[ti];
                    const int64_t n_in = 32 * blocks[bi], n_out = outs[oi];
                    void *w = make_weights(type, n_in, n_out);
                    void *p = repacked_copy(type, n_in, n_out, w);
                    for (size_t ki = 0; ki < sizeof(toks) / sizeof(toks[0]); ki++)
                        fails += compare_layouts(type, n_in, n_out, w, p, toks[ki], &reported);
                    free(w);
                    free(p);
                }
    }
    wisp_cpu_simd_force(wisp_cpu_simd_max());
    CHECK_EQ_INT(fails, 0);
}

/* Random K-quant blocks (quants, scales, high bits) with sane factors:
 * d and, for Q4_K / Q5_K, dmin. */
static void *make_k(int type, int64_t n_in, int64_t n_out)
{
    const size_t bb = wisp_cpu_block_bytes(type);
    const int64_t nb = n_in / WISP_QK_K * n_out;
    uint8_t *bytes = malloc(bb * (size_t)nb);
    REQUIRE(bytes);
    for (size_t i = 0; i < bb * (size_t)nb; i++)
        bytes[i] = (uint8_t)rng_u64();
    for (int64_t b = 0; b < nb; b++) {
        void *blk = bytes + (size_t)b * bb;
        const wisp_half d = wisp_float_to_half(rng_f(0.0005f, 0.02f)),
                        dmin = wisp_float_to_half(rng_f(0.f, 0.01f));
        if (type == WISP_TYPE_Q6_K) {
            ((wisp_block_q6_K *)blk)->d = d;
        } else if (type == WISP_TYPE_Q5_K) {
            ((wisp_block_q5_K *)blk)->d = d;
            ((wisp_block_q5_K *)blk)->dmin = dmin;
        } else {
            ((wisp_block_q4_K *)blk)->d = d;
            ((wisp_block_q4_K *)blk)->dmin = dmin;
        }
    }
    return bytes;
}

/* K-quants repacked into 16-row groups = the file layout at the same
 * level, bit for bit, for rows past the last group, 1 .. 40 tokens, 1 and
 * 2 threads; a batch's token = the token alone. */
TEST(k_quants_repacked_equal_file_layout)
{
    static const int types[] = {WISP_TYPE_Q4_K, WISP_TYPE_Q5_K, WISP_TYPE_Q6_K};
    static const int64_t sbs[] = {1, 2, 5};
    static const int64_t outs[] = {16, 37, 69};
    int fails = 0, reported = 0;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const int type = types[ti];
        int checked = 0;
        for (size_t bi = 0; bi < sizeof(sbs) / sizeof(sbs[0]); bi++)
            for (size_t oi = 0; oi < sizeof(outs) / sizeof(outs[0]); oi++) {
                const int64_t n_in = WISP_QK_K * sbs[bi], n_out = outs[oi];
                void *w = make_k(type, n_in, n_out);
                void *p = repacked_copy(type, n_in, n_out, w);
                for (int lv = 0; lv <= (int)wisp_cpu_simd_max(); lv++) {
                    REQUIRE(wisp_cpu_simd_force((wisp_simd_level)lv) == (wisp_simd_level)lv);
                    /* the engine repacks only where the level has a kernel */
                    if (!wisp_cpu_rp_get(type))
                        continue;
                    for (int64_t nt = 1; nt <= 40; nt++, checked++)
                        fails += compare_layouts(type, n_in, n_out, w, p, nt, &reported);
                }
                free(w);
                free(p);
            }
        /* every shape was compared where this CPU has the kernel */
        CHECK(checked > 0 || !wisp_cpu_rp_at(wisp_cpu_simd_max(), type));
    }
    wisp_cpu_simd_force(wisp_cpu_simd_max());
    CHECK_EQ_INT(fails, 0);
}

/* Packing split over 1..3 threads writes wisp_rp_pack's bytes, for group
 * counts below, at and above the thread count and rows past the last
 * group. */
TEST(pool_pack_equals_pack)
{
    static const int types[] = {WISP_TYPE_Q4_0, WISP_TYPE_Q8_0, WISP_TYPE_Q4_K, WISP_TYPE_Q5_K,
                                WISP_TYPE_Q6_K};
    static const int64_t outs[] = {16, 37, 69, 131};
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
        for (size_t oi = 0; oi < sizeof(outs) / sizeof(outs[0]); oi++) {
            const int type = types[ti];
            const int64_t n_in = 512, n_out = outs[oi];
            const size_t bytes = wisp_cpu_row_bytes(type, n_in) * (size_t)n_out;
            void *w =
                wisp_rp_is_k(type) ? make_k(type, n_in, n_out) : make_weights(type, n_in, n_out);
            void *want = repacked_copy(type, n_in, n_out, w), *got = malloc(bytes);
            REQUIRE(got);
            for (int th = 1; th <= 3; th++) {
                wisp_threadpool *tp = NULL;
                wisp_err err = {0};
                REQUIRE(wisp_threadpool_create(th, &tp, &err) == 0);
                memset(got, 0xA5, bytes);
                wisp_rp_pack_pool(tp, type, n_in, n_out, w, got);
                wisp_threadpool_destroy(tp);
                if (memcmp(got, want, bytes) != 0) {
                    fprintf(stderr, "  %s %lld rows, %d threads: bytes differ\n",
                            wisp_type_name(type), (long long)n_out, th);
                    CHECK(0);
                }
            }
            free(w);
            free(want);
            free(got);
        }
}

/* A repacked weight in a wisp_matmul_n job with weights in the file's
 * layout gives what it gives alone. */
TEST(matmul_n_mixes_layouts)
{
    const int64_t n_in = 512, n_out = 40, nt = 7;
    void *w[3] = {make_weights(WISP_TYPE_Q8_0, n_in, n_out),
                  make_weights(WISP_TYPE_Q4_0, n_in, n_out),
                  make_weights(WISP_TYPE_Q4_0, n_in, n_out)};
    void *p0 = repacked_copy(WISP_TYPE_Q8_0, n_in, n_out, w[0]);
    void *p2 = repacked_copy(WISP_TYPE_Q4_0, n_in, n_out, w[2]);
    wisp_tensor t[3];
    const int types[3] = {WISP_TYPE_Q8_0 | WISP_RP_TYPE_FLAG, WISP_TYPE_Q4_0,
                          WISP_TYPE_Q4_0 | WISP_RP_TYPE_FLAG};
    const void *data[3] = {p0, w[1], p2};
    for (int i = 0; i < 3; i++)
        t[i] = (wisp_tensor){.name = "w",
                             .type = types[i],
                             .n_dims = 2,
                             .ne = {n_in, n_out, 1, 1},
                             .data = data[i]};
    float *x = malloc(sizeof(float) * (size_t)(n_in * nt));
    REQUIRE(x);
    for (int64_t i = 0; i < n_in * nt; i++)
        x[i] = rng_f(-2.f, 2.f);
    float *alone[3], *job[3];
    for (int i = 0; i < 3; i++) {
        alone[i] = malloc(sizeof(float) * (size_t)(n_out * nt));
        job[i] = malloc(sizeof(float) * (size_t)(n_out * nt));
        REQUIRE(alone[i] && job[i]);
        run(&t[i], x, nt, 2, alone[i]);
    }
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_threadpool_create(2, &tp, &err) == 0);
    size_t ss = 0;
    for (int i = 0; i < 3; i++) {
        size_t s = wisp_matmul_scratch_size(t[i].type, n_in, nt);
        ss = s > ss ? s : ss;
    }
    wisp_matmul_scratch scratch = {malloc(ss), ss};
    REQUIRE(scratch.buf);
    const wisp_tensor *tw[3] = {&t[0], &t[1], &t[2]};
    REQUIRE(wisp_matmul_n(tp, tw, 3, x, nt, job, &scratch, &err) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(memcmp(alone[i], job[i], sizeof(float) * (size_t)(n_out * nt)) == 0);
    wisp_threadpool_destroy(tp);
    free(scratch.buf);
    for (int i = 0; i < 3; i++) {
        free(alone[i]);
        free(job[i]);
        free(w[i]);
    }
    free(p0);
    free(p2);
    free(x);
}

/* The engine's copy: Q4_0 / Q8_0 projections with a whole group become
 * repacked copies; other types, 1-D tensors and a tied embedding used
 * for lookups stay the model's own. */
TEST(weights_copy_repacks_what_it_can)
{
    const int64_t E = 64;
    void *bufs[4] = {make_weights(WISP_TYPE_Q4_0, E, E), make_weights(WISP_TYPE_Q8_0, E, E),
                     make_weights(WISP_TYPE_Q8_0, E, 4), make_weights(WISP_TYPE_Q4_0, E, 16)};
    static float norm[64];
    wisp_tensor q4 = {.name = "q4", .type = WISP_TYPE_Q4_0, .n_dims = 2, .ne = {E, E, 1, 1}};
    wisp_tensor q8 = q4, small = q4, emb = q4, vec = q4, f32 = q4;
    q4.data = bufs[0];
    q8.type = WISP_TYPE_Q8_0;
    q8.data = bufs[1];
    small.type = WISP_TYPE_Q8_0; /* fewer rows than a group */
    small.ne[1] = 4;
    small.data = bufs[2];
    emb.ne[1] = 16;
    emb.data = bufs[3];
    vec.type = WISP_TYPE_F32;
    vec.n_dims = 1;
    vec.ne[1] = 1;
    vec.data = norm;
    f32.type = WISP_TYPE_F32;
    f32.data = bufs[0]; /* never read: F32 is not repacked */
    wisp_layer_weights L = {.attn_norm = &vec,
                            .wq = &q4,
                            .wk = &small,
                            .wv = &small,
                            .wo = &q8,
                            .ffn_norm = &vec,
                            .w_gate = &f32,
                            .w_up = &q4,
                            .w_down = &q8};
    wisp_model_weights w = {.tok_embd = &emb, .out_norm = &vec, .output = &emb, .layers = &L};
    const wisp_tensor *head = w.output;
    wisp_rp_weights *rw = NULL;
    wisp_err err = {0};
    wisp_threadpool *tp = NULL;
    REQUIRE(wisp_threadpool_create(2, &tp, &err) == 0);
    REQUIRE(wisp_rp_weights_create(&w, 1, 0, 1, &head, tp, &rw, &err) == 0);
    wisp_threadpool_destroy(tp);
    REQUIRE(rw != NULL);
    const wisp_model_weights *cw = wisp_rp_weights_get(rw);
    const wisp_layer_weights *C = &cw->layers[0];
    CHECK(wisp_rp_is_repacked(C->wq->type) && C->wq != &q4);
    CHECK(wisp_rp_is_repacked(C->wo->type) && wisp_rp_base_type(C->wo->type) == WISP_TYPE_Q8_0);
    CHECK(C->wk == &small && C->w_gate == &f32 && C->attn_norm == &vec);
    CHECK(cw->tok_embd == &emb && wisp_rp_is_repacked(head->type));
    size_t bytes;
    int n;
    double ms;
    wisp_rp_weights_stats(rw, &bytes, &n, &ms);
    CHECK_EQ_INT(n, 5);
    /* warm-up skips the sources of the copies, but not a tied embedding
     * that the lookups still read */
    CHECK(wisp_rp_weights_replaces(rw, q4.data) && wisp_rp_weights_replaces(rw, q8.data));
    CHECK(!wisp_rp_weights_replaces(rw, emb.data) && !wisp_rp_weights_replaces(rw, small.data));
    CHECK(!wisp_rp_weights_replaces(rw, norm) && !wisp_rp_weights_replaces(NULL, q4.data));
    CHECK(bytes == 2 * q4.ne[1] * wisp_cpu_row_bytes(WISP_TYPE_Q4_0, E) +
                       2 * q8.ne[1] * wisp_cpu_row_bytes(WISP_TYPE_Q8_0, E) +
                       16 * wisp_cpu_row_bytes(WISP_TYPE_Q4_0, E));
    wisp_rp_weights_free(rw);
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    /* nothing to repack: no copy */
    L.wq = L.wo = L.w_up = L.w_down = &f32;
    head = &vec;
    REQUIRE(wisp_rp_weights_create(&w, 1, 0, 1, &head, NULL, &rw, &err) == 0);
    CHECK(rw == NULL);
}

/* One prompt and one decode step through an engine built with and without
 * repacking: the same logits, bit for bit, on Q4_0, Q8_0 and Q4_K_M golden files. */
TEST(engine_logits_equal_with_and_without_repack)
{
    static const char *const files[] = {"golden/syn-qwen2-dsc-q4_0.gguf",
                                        "golden/syn-qwen2-dsc-q8_0.gguf",
                                        "golden/syn-llama-spm-q4_k_m.gguf"};
    for (size_t fi = 0; fi < sizeof(files) / sizeof(files[0]); fi++) {
        char path[512];
        wisp_test_shared_path(path, sizeof path, files[fi]);
        wisp_model *m = NULL;
        wisp_err err = {0};
        REQUIRE(wisp_model_open(path, NULL, &m, &err) == 0 && m);
        const int V = wisp_model_get_config(m)->vocab_size;
        int32_t toks[13];
        for (int i = 0; i < 13; i++)
            toks[i] = (int32_t)(rng_u64() % (uint64_t)V);
        const int32_t table[2] = {0, 1};
        float *logits[2];
        for (int run = 0; run < 2; run++) {
            wisp_engine_opts o = {.n_threads = 2,
                                  .block_size = 8,
                                  .n_blocks = 4,
                                  .kv_type = WISP_KV_F16,
                                  .max_batch_tokens = 16,
                                  .max_seqs = 1,
                                  .no_repack = run == 1};
            wisp_engine *e = NULL;
            REQUIRE(wisp_engine_cpu_create(m, &o, &e, &err) == 0 && e);
            logits[run] = malloc(sizeof(float) * (size_t)V * 2);
            REQUIRE(logits[run]);
            /* a 12-token prefill, then one decode step */
            for (int step = 0; step < 2; step++) {
                wisp_batch_seq s = {.tokens = toks + 12 * step,
                                    .n_tokens = step ? 1 : 12,
                                    .pos0 = 12 * step,
                                    .block_table = table,
                                    .n_blocks = 2,
                                    .logits = logits[run] + (size_t)step * V};
                wisp_batch b = {.seqs = &s, .n_seqs = 1};
                REQUIRE(e->ops->forward(e->ctx, &b, &err) == 0);
            }
            /* the copies are weights the engine holds, and it no longer
             * reads their model bytes; without repacking it holds none */
            wisp_engine_stats st;
            e->ops->get_stats(e->ctx, &st);
            const void *wq = wisp_model_get_weights(m)->layers[0].wq->data;
            if (run == 1)
                CHECK(st.weight_bytes == 0 && e->ops->reads_model_bytes(e->ctx, wq));
            else
                CHECK((st.weight_bytes > 0) == !e->ops->reads_model_bytes(e->ctx, wq));
            wisp_engine_destroy(e);
        }
        CHECK(memcmp(logits[0], logits[1], sizeof(float) * (size_t)V * 2) == 0);
        free(logits[0]);
        free(logits[1]);
        wisp_model_close(m);
    }
}
