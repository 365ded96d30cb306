/*
 * test_attention.c - paged attention against a direct softmax(QK^T)V in
 * double, RoPE against its formulas, and the KV pool's block operations.
 * Attention and RoPE cases run at each SIMD level this CPU has.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/attention.h"
#include "engine/cpu/kv_pool.h"
#include "engine/cpu/ops.h"
#include "harness.h"
#include "simd_test_util.h"

static float frand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((float)((*state >> 8) & 0xffff) / 65535.0f) * 2.0f - 1.0f;
}

/* Direct attention for one query head over positions [0, pos]. */
static void reference(const float *q, const float *K, const float *V, int pos, int hd, float scale,
                      double *out)
{
    double mx = -1e300, sum = 0, *w = malloc(sizeof(double) * (size_t)(pos + 1));
    REQUIRE(w);
    for (int p = 0; p <= pos; p++) {
        double s = 0;
        for (int d = 0; d < hd; d++)
            s += (double)q[d] * K[(size_t)p * hd + d];
        w[p] = s * scale;
        mx = w[p] > mx ? w[p] : mx;
    }
    for (int p = 0; p <= pos; p++)
        sum += w[p] = exp(w[p] - mx);
    for (int d = 0; d < hd; d++) {
        double a = 0;
        for (int p = 0; p <= pos; p++)
            a += w[p] * V[(size_t)p * hd + d];
        out[d] = a / sum;
    }
    free(w);
}

/* n_rows query rows, a prefill chunk ending at position n_ctx - 1. */
static void attention_case_at(wisp_kv_type type, int n_head, int n_kv, int hd, int bs, int n_ctx,
                              int n_rows, float tol)
{
    const int n_blocks = (n_ctx + bs - 1) / bs, pool_blocks = n_blocks + 5, layer = 1;
    wisp_kv_pool kv;
    wisp_err err = {0};
    REQUIRE(wisp_kv_pool_init(&kv, type, 2, pool_blocks, bs, n_kv, hd, &err) == 0);
    /* The first n_blocks of a shuffled pool: scattered, never repeated. */
    int32_t *table = malloc(sizeof(int32_t) * (size_t)pool_blocks);
    REQUIRE(table);
    unsigned st = 17;
    for (int i = 0; i < pool_blocks; i++)
        table[i] = i;
    for (int i = pool_blocks - 1; i > 0; i--) {
        int j = (int)((frand(&st) + 1.0f) * 0.5f * (float)i);
        int32_t t = table[i];
        table[i] = table[j];
        table[j] = t;
    }
    /* K/V per kv head as stored (after a round trip through the pool type). */
    float *K = malloc(sizeof(float) * (size_t)n_kv * n_ctx * hd);
    float *V = malloc(sizeof(float) * (size_t)n_kv * n_ctx * hd);
    float *row = malloc(sizeof(float) * (size_t)hd);
    REQUIRE(K && V && row);
    for (int p = 0; p < n_ctx; p++)
        for (int h = 0; h < n_kv; h++)
            for (int kvi = 0; kvi < 2; kvi++) {
                for (int d = 0; d < hd; d++)
                    row[d] = frand(&st) * 2.0f;
                uint8_t *dst = wisp_kv_row(&kv, layer, kvi, table[p / bs], p % bs, h);
                wisp_kv_store_row(&kv, row, dst);
                wisp_kv_load_row(&kv, dst, (kvi ? V : K) + ((size_t)h * n_ctx + p) * hd);
            }
    int *pos = malloc(sizeof(int) * (size_t)n_rows);
    const int32_t **tables = malloc(sizeof(*tables) * (size_t)n_rows);
    float *q = malloc(sizeof(float) * (size_t)n_rows * n_head * hd);
    float *out = malloc(sizeof(float) * (size_t)n_rows * n_head * hd);
    REQUIRE(pos && tables && q && out);
    for (int r = 0; r < n_rows; r++) {
        pos[r] = n_ctx - n_rows + r;
        tables[r] = table;
    }
    for (int i = 0; i < n_rows * n_head * hd; i++)
        q[i] = frand(&st) * 3.0f;

    wisp_threadpool *tp = NULL;
    REQUIRE(wisp_threadpool_create(2, &tp, &err) == 0);
    size_t per = wisp_attention_scratch_floats(n_head, n_kv, hd, bs);
    float *scratch = malloc(sizeof(float) * per * (size_t)wisp_threadpool_size(tp));
    REQUIRE(scratch);
    wisp_attn_job job = {.kv = &kv,
                         .layer = layer,
                         .n_rows = n_rows,
                         .row_pos = pos,
                         .row_table = tables,
                         .q = q,
                         .out = out,
                         .n_head = n_head,
                         .n_head_kv = n_kv,
                         .scale = 1.0f / sqrtf((float)hd),
                         .scratch = scratch,
                         .scratch_floats = per};
    wisp_attention_run(tp, &job);

    double *ref = malloc(sizeof(double) * (size_t)hd), dev = 0;
    REQUIRE(ref);
    for (int r = 0; r < n_rows; r++)
        for (int h = 0; h < n_head; h++) {
            int hk = h / (n_head / n_kv);
            reference(q + ((size_t)r * n_head + h) * hd, K + (size_t)hk * n_ctx * hd,
                      V + (size_t)hk * n_ctx * hd, pos[r], hd, job.scale, ref);
            for (int d = 0; d < hd; d++)
                dev = fmax(dev, fabs(out[((size_t)r * n_head + h) * hd + d] - ref[d]));
        }
    fprintf(stderr, "  %s heads %d/%d hd %d bs %d ctx %d rows %d: max dev %.2e\n",
            wisp_cpu_simd_name(wisp_cpu_simd_active()), n_head, n_kv, hd, bs, n_ctx, n_rows, dev);
    CHECK(dev <= tol);
    free(ref);
    free(scratch);
    wisp_threadpool_destroy(tp);
    free(pos);
    free(tables);
    free(q);
    free(out);
    free(K);
    free(V);
    free(row);
    free(table);
    wisp_kv_pool_free(&kv);
}

static struct {
    wisp_kv_type type;
    int n_head, n_kv, hd, bs, n_ctx, n_rows;
    float tol;
} the_case;

static void attention_case_run(void)
{
    attention_case_at(the_case.type, the_case.n_head, the_case.n_kv, the_case.hd, the_case.bs,
                      the_case.n_ctx, the_case.n_rows, the_case.tol);
}

/* The case at every SIMD level this CPU has. */
static void attention_case(wisp_kv_type type, int n_head, int n_kv, int hd, int bs, int n_ctx,
                           int n_rows, float tol)
{
    the_case.type = type;
    the_case.n_head = n_head;
    the_case.n_kv = n_kv;
    the_case.hd = hd;
    the_case.bs = bs;
    the_case.n_ctx = n_ctx;
    the_case.n_rows = n_rows;
    the_case.tol = tol;
    at_every_level(attention_case_run);
}

TEST(attention_gqa_matches_direct_softmax)
{
    attention_case(WISP_KV_F32, 8, 2, 32, 16, 100, 6, 1e-5f);
}
TEST(attention_mqa_small_blocks) { attention_case(WISP_KV_F32, 4, 1, 16, 3, 37, 6, 1e-5f); }
TEST(attention_mha_single_position) { attention_case(WISP_KV_F32, 2, 2, 8, 4, 1, 1, 1e-6f); }
TEST(attention_f16_pool) { attention_case(WISP_KV_F16, 4, 2, 64, 16, 300, 6, 1e-5f); }
TEST(attention_q8_pool) { attention_case(WISP_KV_Q8_0, 4, 4, 32, 8, 50, 6, 1e-5f); }
TEST(attention_pairs_of_heads_f16_pool)
{
    /* Two query heads per kv head: a decode fills half a 4-lane vector. */
    attention_case(WISP_KV_F16, 8, 4, 32, 4, 45, 1, 1e-5f);
    attention_case(WISP_KV_F16, 8, 4, 32, 4, 45, 7, 1e-5f);
    attention_case(WISP_KV_F16, 8, 4, 32, 4, 45, 45, 1e-5f);
}

TEST(attention_long_chunks_span_several_tiles)
{
    /* More rows than one work item takes, with a partial last one: 8 query
     * heads per kv head as qwen2 uses, MHA, and an odd group, odd head dim
     * (not a whole vector) and odd block size. */
    attention_case(WISP_KV_F16, 16, 2, 64, 16, 200, 45, 1e-5f);
    attention_case(WISP_KV_F32, 4, 4, 32, 16, 90, 70, 1e-5f);
    attention_case(WISP_KV_F32, 6, 2, 40, 5, 60, 41, 1e-5f);
}

/* Outputs of the rows of one job, the rows given as (sequence, position). */
static void run_rows(wisp_threadpool *tp, const wisp_kv_pool *kv, const int32_t *const *seq_table,
                     const int *row_seq, const int *row_pos, int n_rows, const float *q, int n_head,
                     int n_kv, float *out)
{
    const int hd = kv->head_dim;
    const int32_t **tables = malloc(sizeof(*tables) * (size_t)n_rows);
    size_t per = wisp_attention_scratch_floats(n_head, n_kv, hd, kv->block_size);
    float *scratch = malloc(sizeof(float) * per * (size_t)wisp_threadpool_size(tp));
    REQUIRE(tables && scratch);
    for (int r = 0; r < n_rows; r++)
        tables[r] = seq_table[row_seq[r]];
    wisp_attn_job job = {.kv = kv,
                         .layer = 0,
                         .n_rows = n_rows,
                         .row_pos = row_pos,
                         .row_table = tables,
                         .q = q,
                         .out = out,
                         .n_head = n_head,
                         .n_head_kv = n_kv,
                         .scale = 1.0f / sqrtf((float)hd),
                         .scratch = scratch,
                         .scratch_floats = per};
    wisp_attention_run(tp, &job);
    free(scratch);
    free(tables);
}

static void attention_row_is_the_same_bits_alone_batched_and_on_any_threads_case(void)
{
    /* The scheduler checks that a request's greedy tokens do not depend on
     * what shares its batch, how its prompt was chunked, or whether it was
     * preempted and recomputed: each row's output must be bit for bit the
     * same whether it runs alone (a decode), inside a prefill tile, beside
     * other sequences' rows, on 1 or 2 threads. */
    const int n_head = 8, n_kv = 2, hd = 64, bs = 16, n_seq = 3, max_ctx = 96;
    const int bps = max_ctx / bs, stride = n_head * hd;
    wisp_kv_pool kv;
    wisp_err err = {0};
    REQUIRE(wisp_kv_pool_init(&kv, WISP_KV_F16, 1, n_seq * bps, bs, n_kv, hd, &err) == 0);
    int32_t table[3 * 6];
    const int32_t *seq_table[3] = {table, table + bps, table + 2 * bps};
    unsigned st = 5;
    for (int i = 0; i < n_seq * bps; i++)
        table[i] = n_seq * bps - 1 - i;
    float row[64];
    for (int b = 0; b < n_seq * bps; b++)
        for (int j = 0; j < bs; j++)
            for (int h = 0; h < n_kv; h++)
                for (int kvi = 0; kvi < 2; kvi++) {
                    for (int d = 0; d < hd; d++)
                        row[d] = frand(&st) * 3.0f;
                    wisp_kv_store_row(&kv, row, wisp_kv_row(&kv, 0, kvi, b, j, h));
                }
    /* Sequence 0 prefills positions 20..59; 1 and 2 decode at 33 and 77. */
    enum {
        N = 42
    };
    int seq[N], pos[N];
    for (int r = 0; r < 40; r++) {
        seq[r] = 0;
        pos[r] = 20 + r;
    }
    seq[40] = 1;
    pos[40] = 33;
    seq[41] = 2;
    pos[41] = 77;
    float *q = malloc(sizeof(float) * N * (size_t)stride);
    float *batched = malloc(sizeof(float) * N * (size_t)stride);
    float *other = malloc(sizeof(float) * N * (size_t)stride);
    REQUIRE(q && batched && other);
    for (int i = 0; i < N * stride; i++)
        q[i] = frand(&st) * 4.0f;

    wisp_threadpool *tp1 = NULL, *tp2 = NULL;
    REQUIRE(wisp_threadpool_create(1, &tp1, &err) == 0);
    REQUIRE(wisp_threadpool_create(2, &tp2, &err) == 0);
    run_rows(tp2, &kv, seq_table, seq, pos, N, q, n_head, n_kv, batched);
    /* Each row alone. */
    for (int r = 0; r < N; r++)
        run_rows(tp1, &kv, seq_table, seq + r, pos + r, 1, q + (size_t)r * stride, n_head, n_kv,
                 other + (size_t)r * stride);
    CHECK(memcmp(batched, other, sizeof(float) * N * (size_t)stride) == 0);
    /* The prefill in chunks of 7 rows, on 1 thread. */
    for (int r0 = 0; r0 < 40; r0 += 7) {
        const int n = 40 - r0 < 7 ? 40 - r0 : 7;
        run_rows(tp1, &kv, seq_table, seq + r0, pos + r0, n, q + (size_t)r0 * stride, n_head, n_kv,
                 other + (size_t)r0 * stride);
    }
    CHECK(memcmp(batched, other, sizeof(float) * 40 * (size_t)stride) == 0);
    wisp_threadpool_destroy(tp1);
    wisp_threadpool_destroy(tp2);
    free(q);
    free(batched);
    free(other);
    wisp_kv_pool_free(&kv);
}

TEST(attention_row_is_the_same_bits_alone_batched_and_on_any_threads)
{
    at_every_level(attention_row_is_the_same_bits_alone_batched_and_on_any_threads_case);
}

static void attention_large_scores_stay_finite_case(void)
{
    /* Scores near 1e3 overflow a naive exp; the online softmax must not. */
    wisp_kv_pool kv;
    wisp_err err = {0};
    const int hd = 4, bs = 2, n_ctx = 5;
    REQUIRE(wisp_kv_pool_init(&kv, WISP_KV_F32, 1, 3, bs, 1, hd, &err) == 0);
    int32_t table[3] = {2, 0, 1};
    for (int p = 0; p < n_ctx; p++) {
        float k[4] = {100.0f + p, 0, 0, 0}, v[4] = {(float)p, 1, 0, 0};
        wisp_kv_store_row(&kv, k, wisp_kv_row(&kv, 0, 0, table[p / bs], p % bs, 0));
        wisp_kv_store_row(&kv, v, wisp_kv_row(&kv, 0, 1, table[p / bs], p % bs, 0));
    }
    float q[4] = {20.0f, 0, 0, 0}, out[4];
    int pos = n_ctx - 1;
    const int32_t *tables[1] = {table};
    wisp_threadpool *tp = NULL;
    REQUIRE(wisp_threadpool_create(1, &tp, &err) == 0);
    size_t per = wisp_attention_scratch_floats(1, 1, hd, bs);
    float *scratch = malloc(sizeof(float) * per);
    REQUIRE(scratch);
    wisp_attn_job job = {.kv = &kv,
                         .layer = 0,
                         .n_rows = 1,
                         .row_pos = &pos,
                         .row_table = tables,
                         .q = q,
                         .out = out,
                         .n_head = 1,
                         .n_head_kv = 1,
                         .scale = 1.0f,
                         .scratch = scratch,
                         .scratch_floats = per};
    wisp_attention_run(tp, &job);
    free(scratch);
    /* Scores 2000..2080 step 20: weights e^0, e^-20 ...: output ~ v[4]. */
    CHECK(isfinite(out[0]));
    CHECK_NEAR(out[0], 4.0, 1e-6);
    CHECK_NEAR(out[1], 1.0, 1e-6);
    wisp_threadpool_destroy(tp);
    wisp_kv_pool_free(&kv);
}

TEST(attention_large_scores_stay_finite)
{
    at_every_level(attention_large_scores_stay_finite_case);
}

/* ---------------------------------------------------------------- RoPE */

static wisp_model_config rope_config(wisp_rope_layout layout, int hd, int rope_dim, float base)
{
    wisp_model_config c;
    memset(&c, 0, sizeof(c));
    c.head_dim = hd;
    c.rope_dim = rope_dim;
    c.rope_layout = layout;
    c.rope_freq_base = base;
    c.n_ctx_train = 4096;
    return c;
}

static void rope_normal_and_neox_rotate_the_right_pairs_case(void)
{
    const int hd = 16, pos = 37;
    for (int layout = 0; layout < 2; layout++) {
        wisp_model_config c = rope_config((wisp_rope_layout)layout, hd, 12, 10000.0f);
        wisp_rope r;
        wisp_rope_init(&r, &c, NULL);
        float cache[16], x[16], y[16];
        for (int i = 0; i < hd; i++)
            x[i] = y[i] = (float)(i + 1) * 0.1f;
        wisp_rope_cache(&r, pos, cache);
        wisp_rope_apply(&r, cache, y);
        for (int i = 0; i < 6; i++) {
            double th = pos * pow(10000.0, -2.0 * i / 12);
            int a = layout == WISP_ROPE_NEOX ? i : 2 * i;
            int b = layout == WISP_ROPE_NEOX ? i + 6 : 2 * i + 1;
            CHECK_NEAR(y[a], x[a] * cos(th) - x[b] * sin(th), 1e-4);
            CHECK_NEAR(y[b], x[a] * sin(th) + x[b] * cos(th), 1e-4);
        }
        for (int i = 12; i < hd; i++) /* beyond rope_dim: untouched */
            CHECK(y[i] == x[i]);
    }
}

TEST(rope_normal_and_neox_rotate_the_right_pairs)
{
    at_every_level(rope_normal_and_neox_rotate_the_right_pairs_case);
}

TEST(rope_linear_scaling_divides_positions)
{
    wisp_model_config c = rope_config(WISP_ROPE_NEOX, 8, 8, 1e6f);
    wisp_rope plain, scaled;
    wisp_rope_init(&plain, &c, NULL);
    c.rope_scaling = WISP_ROPE_SCALING_LINEAR;
    c.rope_scale_factor = 4.0f;
    wisp_rope_init(&scaled, &c, NULL);
    float a[8], b[8];
    wisp_rope_cache(&plain, 10, a);
    wisp_rope_cache(&scaled, 40, b);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(a[i], b[i], 1e-5);
}

TEST(rope_frequency_factors_divide_each_pair)
{
    /* llama-3's rope_freqs: pair i turns at theta_i / factor_i. */
    wisp_model_config c = rope_config(WISP_ROPE_NORMAL, 8, 8, 500000.0f);
    const float ff[4] = {1.0f, 2.0f, 8.0f, 32.0f};
    wisp_rope r;
    wisp_rope_init(&r, &c, ff);
    float cache[8];
    wisp_rope_cache(&r, 9, cache);
    for (int i = 0; i < 4; i++) {
        double th = 9 * pow(500000.0, -2.0 * i / 8) / ff[i];
        CHECK_NEAR(cache[2 * i], cos(th), 1e-5);
        CHECK_NEAR(cache[2 * i + 1], sin(th), 1e-5);
    }
}

TEST(rope_yarn_follows_the_ramp)
{
    /* llama.cpp's YaRN: dims below the ramp keep extrapolated angles, dims
     * above it interpolate (angle * freq_scale), and both are scaled by
     * mscale = 1 + 0.1 ln(factor). */
    const int hd = 64, pos = 100;
    const double base = 10000.0, factor = 4.0;
    wisp_model_config c = rope_config(WISP_ROPE_NEOX, hd, hd, (float)base);
    c.rope_scaling = WISP_ROPE_SCALING_YARN;
    c.rope_scale_factor = (float)factor;
    c.rope_orig_ctx = 2048;
    c.yarn_beta_fast = 32.0f;
    c.yarn_beta_slow = 1.0f;
    wisp_rope r;
    wisp_rope_init(&r, &c, NULL);
    double lo = floor(hd * log(2048 / (32 * 2 * M_PI)) / (2 * log(base)));
    double hi = ceil(hd * log(2048 / (1 * 2 * M_PI)) / (2 * log(base)));
    CHECK_NEAR(r.corr_dims[0], fmax(0, lo), 1e-6);
    CHECK_NEAR(r.corr_dims[1], fmin(hd - 1, hi), 1e-6);
    float cache[64];
    wisp_rope_cache(&r, pos, cache);
    const double ms = 1.0 + 0.1 * log(factor);
    for (int i = 0; i < hd / 2; i++) {
        double ext = pos * pow(base, -2.0 * i / hd), interp = ext / factor;
        double y = (i - r.corr_dims[0]) / fmax(0.001, r.corr_dims[1] - r.corr_dims[0]);
        double mix = 1 - fmin(1, fmax(0, y));
        double th = interp * (1 - mix) + ext * mix;
        /* Float angles built by repeated products: compare to 1e-3. */
        CHECK_NEAR(cache[2 * i], cos(th) * ms, 1e-3);
        CHECK_NEAR(cache[2 * i + 1], sin(th) * ms, 1e-3);
    }
}

/* ---------------------------------------------------------------- pool */

TEST(kv_pool_refuses_bad_shapes)
{
    wisp_kv_pool kv;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_kv_pool_init(&kv, WISP_KV_Q8_0, 1, 4, 16, 2, 48, &err), WISP_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "multiple of 32") != NULL);
    CHECK_EQ_INT(wisp_kv_pool_init(&kv, WISP_KV_F16, 1, 0, 16, 2, 48, &err), WISP_E_INTERNAL);
    CHECK_EQ_INT(wisp_kv_pool_init(&kv, (wisp_kv_type)9, 1, 4, 16, 2, 48, &err), WISP_E_INTERNAL);
}
