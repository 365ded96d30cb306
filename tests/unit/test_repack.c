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
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/fp16.h"
#include "engine/cpu/bf16dot.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/repack.h"
#include "engine/engine.h"
#include "engine_test_util.h"
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
static const wisp_rp_what QUANTS = {.quants = true};

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
    REQUIRE(wisp_rp_weights_create(&w, 1, 0, 1, &head, QUANTS, tp, &rw, &err) == 0);
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
    REQUIRE(wisp_rp_weights_create(&w, 1, 0, 1, &head, QUANTS, NULL, &rw, &err) == 0);
    CHECK(rw == NULL);
}

/* The KV blocks of the one sequence the engine tests run: 16 positions. */
static const int32_t ENGINE_TABLE[2] = {0, 1};

/* Builds the CPU engine the engine tests compare (2 threads, one sequence
 * of up to 16 tokens in two 8-token F16 KV blocks) with sw's switches
 * (no_repack, f16_as_bf16), and feeds it toks from position 0 in forward
 * steps of steps[i] tokens, each step's last-row logits (V of them) at
 * logits + i * V. Returns the engine for its caller to look into and
 * destroy. */
static wisp_engine *engine_run(const wisp_model *m, wisp_engine_opts sw, const int32_t *toks,
                               const int *steps, int n_steps, float *logits)
{
    sw.n_threads = 2;
    sw.block_size = 8;
    sw.n_blocks = 4;
    sw.kv_type = WISP_KV_F16;
    sw.max_batch_tokens = 16;
    sw.max_seqs = 1;
    wisp_engine *e = wisp_test_cpu_engine(m, &sw);
    const int V = wisp_model_get_config(m)->vocab_size;
    for (int i = 0, pos = 0; i < n_steps; pos += steps[i++])
        REQUIRE(wisp_test_forward1(e, toks + pos, steps[i], pos, ENGINE_TABLE, 2, false,
                                   logits + (size_t)i * V) == 0);
    return e;
}

/* One prompt and one decode step through an engine built with and without
 * repacking: the same logits, bit for bit, on Q4_0, Q8_0 and Q4_K_M golden files. */
TEST(engine_logits_equal_with_and_without_repack)
{
    static const char *const files[] = {"golden/syn-qwen2-dsc-q4_0.gguf",
                                        "golden/syn-qwen2-dsc-q8_0.gguf",
                                        "golden/syn-llama-spm-q4_k_m.gguf"};
    /* a 12-token prefill, then one decode step */
    static const int steps[] = {12, 1};
    for (size_t fi = 0; fi < sizeof(files) / sizeof(files[0]); fi++) {
        char path[512];
        wisp_test_shared_path(path, sizeof path, files[fi]);
        wisp_model *m = wisp_test_open_model(path);
        const int V = wisp_model_get_config(m)->vocab_size;
        int32_t toks[13];
        for (int i = 0; i < 13; i++)
            toks[i] = (int32_t)(rng_u64() % (uint64_t)V);
        float *logits[2];
        for (int run = 0; run < 2; run++) {
            logits[run] = malloc(sizeof(float) * (size_t)V * 2);
            REQUIRE(logits[run]);
            wisp_engine *e = engine_run(m, (wisp_engine_opts){.no_repack = run == 1}, toks, steps,
                                        2, logits[run]);
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

/* ------------------------------------------------------------ BF16 */

/* Random F16 (or BF16) weights, in [-1, 1] with some exact zeros. */
static uint16_t *make_16bit(int type, int64_t n_in, int64_t n_out)
{
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(n_in * n_out));
    REQUIRE(w);
    for (int64_t i = 0; i < n_in * n_out; i++) {
        const float f = rng_u64() % 16 == 0 ? 0.0f : rng_f(-1.0f, 1.0f);
        w[i] = type == WISP_TYPE_F16 ? wisp_float_to_half(f) : wisp_float_to_bf16(f);
    }
    return w;
}

static float value16(int type, uint16_t h)
{
    return type == WISP_TYPE_F16 ? wisp_half_to_float(h) : wisp_bf16_to_float(h);
}

/* The layout holds every element, F16 rounded to nearest BF16, where
 * repack.h says; packing over threads gives the same bytes. */
TEST(bf16_layout_holds_every_element)
{
    static const int64_t shapes[][2] = {{2, 16}, {64, 17}, {98, 40}, {256, 48}};
    static const int src_types[] = {WISP_TYPE_F16, WISP_TYPE_BF16};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            const int st = src_types[ti];
            const int64_t n = shapes[si][0], m = shapes[si][1], G = WISP_BF16_ROWS;
            uint16_t *w = make_16bit(st, n, m);
            const size_t bytes = sizeof(uint16_t) * (size_t)(n * m);
            uint16_t *p = malloc(bytes), *q = malloc(bytes);
            REQUIRE(p && q);
            wisp_rp_pack_bf16(st, n, m, w, p);
            int bad = 0;
            for (int64_t r = 0; r < m; r++)
                for (int64_t i = 0; i < n; i++) {
                    const uint16_t want = wisp_float_to_bf16(value16(st, w[r * n + i]));
                    const size_t at =
                        r < m / G * G ? (size_t)(r / G * G * n + (i / 2) * 32 + (r % G) * 2 + i % 2)
                                      : (size_t)(r * n + i);
                    bad += p[at] != want;
                }
            CHECK_EQ_INT(bad, 0);
            for (int nt = 1; nt <= 3; nt++) {
                wisp_threadpool *tp = NULL;
                wisp_err err = {0};
                REQUIRE(wisp_threadpool_create(nt, &tp, &err) == 0);
                memset(q, 0xa5, bytes);
                wisp_rp_pack_bf16_pool(tp, st, n, m, w, q);
                CHECK(memcmp(p, q, bytes) == 0);
                wisp_threadpool_destroy(tp);
            }
            free(w);
            free(p);
            free(q);
        }
}

/* The AVX512-BF16 kernel gives the reference's bits, a token alone those
 * of its batch, and both stay within BF16's rounding of the exact dot. */
TEST(bf16_kernel_equals_reference)
{
    const wisp_rp_fn fast = wisp_bf16dot_at(WISP_SIMD_AVX512);
    if (fast == wisp_bf16dot_ref)
        fprintf(stderr, "  (no AVX512-BF16 here: only the reference is checked)\n");
    static const int64_t ns[] = {2, 64, 130, 1024};
    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
        const int64_t n = ns[ni], ng = 11, m = ng * WISP_BF16_ROWS, nc = 29;
        uint16_t *w = make_16bit(WISP_TYPE_F16, n, m), *p = malloc(sizeof(uint16_t) * n * m);
        const size_t sa = sizeof(uint16_t) * (size_t)n + 6; /* rows not aligned */
        char *a = malloc(sa * nc);
        float *x = malloc(sizeof(float) * (size_t)(n * nc));
        float *ref = malloc(sizeof(float) * (size_t)(m * nc)),
              *got = malloc(sizeof(float) * m * nc);
        REQUIRE(p && a && x && ref && got);
        wisp_rp_pack_bf16(WISP_TYPE_F16, n, m, w, p);
        for (int64_t c = 0; c < nc; c++)
            for (int64_t i = 0; i < n; i++) {
                x[c * n + i] = rng_u64() % 16 == 0 ? 0.0f : rng_f(-4.0f, 4.0f);
                const uint16_t h = wisp_float_to_bf16(x[c * n + i]);
                memcpy(a + (size_t)c * sa + 2 * (size_t)i, &h, 2);
            }
        const size_t sg = sizeof(uint16_t) * (size_t)(n * WISP_BF16_ROWS);
        wisp_bf16dot_ref(n, p, sg, ng, a, sa, nc, ref, (size_t)m);
        int far = 0;
        for (int64_t c = 0; c < nc; c++)
            for (int64_t r = 0; r < m; r++) {
                double exact = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    const double t = (double)wisp_half_to_float(w[r * n + i]) * x[c * n + i];
                    exact += t;
                    mag += fabs(t);
                }
                /* each factor within 2^-8 of itself (half a BF16 ulp), each sum
                 * within 2^-24 */
                const double bound = (1.0 / 128 + (double)n * 0x1p-23) * mag + 1e-30;
                if (fabs(ref[c * m + r] - exact) > bound && far++ < 3)
                    fprintf(stderr, "  n %lld row %lld tok %lld: %.9g, exact %.9g, bound %.3g\n",
                            (long long)n, (long long)r, (long long)c, ref[c * m + r], exact, bound);
            }
        CHECK_EQ_INT(far, 0);
        /* groups and tokens in every split the kernel has */
        const int splits[][2] = {{ng, nc}, {1, 1}, {ng, 1}, {3, 13}, {2, 12}, {9, 2}};
        for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
            const int gs = splits[k][0], cs = splits[k][1];
            memset(got, 0, sizeof(float) * (size_t)(m * nc));
            for (int g = 0; g < ng; g += gs)
                for (int c = 0; c < nc; c += cs)
                    fast(n, (const char *)p + (size_t)g * sg, sg, ng - g < gs ? ng - g : gs,
                         a + (size_t)c * sa, sa, nc - c < cs ? nc - c : cs,
                         got + (size_t)c * m + (size_t)g * WISP_BF16_ROWS, (size_t)m);
            CHECK(memcmp(ref, got, sizeof(float) * (size_t)(m * nc)) == 0);
        }
        free(w);
        free(p);
        free(a);
        free(x);
        free(ref);
        free(got);
    }
}

/* An F16 model computed in BF16: only where it pays, close to the exact
 * logits, and a prompt's last row gives the bits of the same token decoded
 * alone after the rest. */
TEST(engine_f16_as_bf16)
{
    char path[512];
    wisp_test_shared_path(path, sizeof path, "golden/syn-qwen2-dsc-f16.gguf");
    wisp_model *m = wisp_test_open_model(path);
    const int V = wisp_model_get_config(m)->vocab_size;
    int32_t toks[13];
    for (int i = 0; i < 13; i++)
        toks[i] = (int32_t)(rng_u64() % (uint64_t)V);
    float *lg = malloc(sizeof(float) * (size_t)V * 3);
    REQUIRE(lg);
    /* run 0: the 13-token prompt at once; run 1: 12, then the 13th */
    static const int whole[] = {13}, split[] = {12, 1};
    for (int run = 0; run < 2; run++) {
        wisp_engine *e = engine_run(m, (wisp_engine_opts){.f16_as_bf16 = run == 1}, toks,
                                    run ? split : whole, 1 + run, lg + (size_t)run * V);
        wisp_engine_stats st;
        e->ops->get_stats(e->ctx, &st);
        CHECK((st.bf16_tensors > 0) == (run == 1 && wisp_bf16dot_fast() && wisp_rp_enabled()));
        if (run == 1 && st.bf16_tensors > 0) {
            /* the 13-token prompt in BF16 too: its last row is the decode's */
            REQUIRE(wisp_test_forward1(e, toks, 13, 0, ENGINE_TABLE, 2, false, lg + V) == 0);
            CHECK(memcmp(lg + V, lg + 2 * (size_t)V, sizeof(float) * (size_t)V) == 0);
        }
        wisp_engine_destroy(e);
    }
    /* BF16's logits against the exact path's: within a few percent of
     * their spread, and the same argmax */
    float lo = lg[0], hi = lg[0], dmax = 0;
    int a0 = 0, a1 = 0;
    for (int v = 0; v < V; v++) {
        lo = lg[v] < lo ? lg[v] : lo;
        hi = lg[v] > hi ? lg[v] : hi;
        const float d = fabsf(lg[v] - lg[2 * V + v]);
        dmax = d > dmax ? d : dmax;
        a0 = lg[v] > lg[a0] ? v : a0;
        a1 = lg[2 * V + v] > lg[2 * V + a1] ? v : a1;
    }
    fprintf(stderr, "  bf16 vs f16 logits: max diff %.4g of a range %.4g\n", dmax, hi - lo);
    CHECK(dmax <= 0.05f * (hi - lo));
    CHECK_EQ_INT(a0, a1);
    free(lg);
    wisp_model_close(m);
}

/* Every level rounds activations to BF16 with the scalar conversion's bits:
 * ties both ways, NaNs of both signs, infinities, denormals, random. */
TEST(bf16_activations_round_as_the_reference)
{
    enum {
        N = 4099
    };
    static float x[N];
    static const uint32_t special[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7f800000u,
                                       0xff800000u, 0x00000001u, 0x80007fffu, 0x3f808000u,
                                       0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0xff7fffffu,
                                       0x00000000u, 0x80000000u, 0x3f7f8000u, 0x00018000u};
    for (int i = 0; i < N; i++)
        x[i] = i < 16
                   ? wisp_f32_from_bits(special[i])
                   : wisp_f32_from_bits((uint32_t)rng_u64() & (i % 3 ? 0xffffffffu : 0xc0ffffffu));
    static uint16_t want[N], got[N];
    for (int i = 0; i < N; i++)
        want[i] = wisp_float_to_bf16(x[i]);
    for (int lv = 0; lv <= (int)wisp_cpu_simd_max(); lv++) {
        wisp_row_from_float_fn f =
            wisp_cpu_kernels_at((wisp_simd_level)lv, WISP_TYPE_BF16)->from_float;
        REQUIRE(f != NULL);
        memset(got, 0, sizeof got);
        f(x, got, N);
        CHECK(memcmp(want, got, sizeof want) == 0);
    }
}
