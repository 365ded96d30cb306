/*
 * test_matmul.c - the matmul and its kernels against independent references.
 *
 * For every weight type: random valid weight blocks (random bits, sane
 * scales) times random activations, on awkward shapes (an odd number of
 * blocks per row, row counts that are not a multiple of any tile, 1, 3 and
 * 17 tokens), through the thread pool with 1..3 threads. Three checks:
 *  - every SIMD level this CPU has against the scalar level, tightly;
 *  - the scalar level against a float64 dot of the dequantized weights and
 *    the dequantized quantized activations (checks the integer block math
 *    by another route: dequantization);
 *  - the scalar level against the float64 product with the unquantized
 *    activations, within a bound computed from the activation format's
 *    rounding error (checks the activation quantizers).
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/fp16.h"
#include "dequant_ref.h"
#include "engine/cpu/amx.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/vec.h"
#include "harness.h"
#include "model/quant_blocks.h"

/* xorshift64*: reproducible across runs and machines. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
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

/* Where each type keeps its half-precision scale fields: random bits there
 * would give infinities and NaNs, so they get sane random values. */
typedef struct scale_fields {
    int type;
    int n;
    size_t off[2];
    float lo[2], hi[2];
} scale_fields;

#define OFF(T, f) offsetof(T, f)
static const scale_fields SCALES[] = {
    {WISP_TYPE_Q4_0, 1, {OFF(wisp_block_q4_0, d)}, {0.001f}, {0.02f}},
    {WISP_TYPE_Q4_1,
     2,
     {OFF(wisp_block_q4_1, d), OFF(wisp_block_q4_1, m)},
     {0.001f, -0.1f},
     {0.02f, 0.1f}},
    {WISP_TYPE_Q5_0, 1, {OFF(wisp_block_q5_0, d)}, {0.001f}, {0.02f}},
    {WISP_TYPE_Q5_1,
     2,
     {OFF(wisp_block_q5_1, d), OFF(wisp_block_q5_1, m)},
     {0.001f, -0.1f},
     {0.02f, 0.1f}},
    {WISP_TYPE_Q8_0, 1, {OFF(wisp_block_q8_0, d)}, {0.0005f}, {0.002f}},
    {WISP_TYPE_Q2_K,
     2,
     {OFF(wisp_block_q2_K, d), OFF(wisp_block_q2_K, dmin)},
     {0.001f, 0.001f},
     {0.01f, 0.01f}},
    {WISP_TYPE_Q3_K, 1, {OFF(wisp_block_q3_K, d)}, {0.0005f}, {0.005f}},
    {WISP_TYPE_Q4_K,
     2,
     {OFF(wisp_block_q4_K, d), OFF(wisp_block_q4_K, dmin)},
     {0.0005f, 0.0005f},
     {0.005f, 0.005f}},
    {WISP_TYPE_Q5_K,
     2,
     {OFF(wisp_block_q5_K, d), OFF(wisp_block_q5_K, dmin)},
     {0.0005f, 0.0005f},
     {0.005f, 0.005f}},
    {WISP_TYPE_Q6_K, 1, {OFF(wisp_block_q6_K, d)}, {0.0002f}, {0.002f}},
};

static const char *type_name(int type)
{
    static const char *const names[WISP_TYPE_COUNT] = {
        [WISP_TYPE_F32] = "F32",   [WISP_TYPE_F16] = "F16",   [WISP_TYPE_BF16] = "BF16",
        [WISP_TYPE_Q4_0] = "Q4_0", [WISP_TYPE_Q4_1] = "Q4_1", [WISP_TYPE_Q5_0] = "Q5_0",
        [WISP_TYPE_Q5_1] = "Q5_1", [WISP_TYPE_Q8_0] = "Q8_0", [WISP_TYPE_Q2_K] = "Q2_K",
        [WISP_TYPE_Q3_K] = "Q3_K", [WISP_TYPE_Q4_K] = "Q4_K", [WISP_TYPE_Q5_K] = "Q5_K",
        [WISP_TYPE_Q6_K] = "Q6_K",
    };
    return names[type] ? names[type] : "?";
}

static void fill_weights(int type, void *data, int64_t n_in, int64_t n_out)
{
    size_t row = wisp_cpu_row_bytes(type, n_in);
    uint8_t *p = data;
    int64_t n = n_in * n_out;
    if (type == WISP_TYPE_F32 || type == WISP_TYPE_F16 || type == WISP_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            float v = rng_f(-1.f, 1.f);
            if (type == WISP_TYPE_F32)
                memcpy(p + 4 * i, &v, 4);
            else {
                uint16_t h = type == WISP_TYPE_F16 ? wisp_float_to_half(v) : wisp_float_to_bf16(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < row * (size_t)n_out; i++)
        p[i] = (uint8_t)rng_u64();
    const scale_fields *sf = NULL;
    for (size_t i = 0; i < sizeof(SCALES) / sizeof(SCALES[0]); i++)
        if (SCALES[i].type == type)
            sf = &SCALES[i];
    REQUIRE(sf != NULL);
    size_t bb = wisp_cpu_block_bytes(type);
    size_t n_blocks = row * (size_t)n_out / bb;
    for (size_t b = 0; b < n_blocks; b++)
        for (int f = 0; f < sf->n; f++) {
            uint16_t h = wisp_float_to_half(rng_f(sf->lo[f], sf->hi[f]));
            memcpy(p + b * bb + sf->off[f], &h, 2);
        }
}

/* Activations with outliers and a zero block, as real hidden states have. */
static void fill_acts(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_f(-2.f, 2.f) * (rng_u64() % 29 == 0 ? 8.f : 1.f);
    if (n >= 512)
        memset(x + 256, 0, 256 * sizeof(float));
}

typedef struct mm_case {
    int type;
    int64_t n_in, n_out, n_tok;
    void *w;
    float *x, *y_ref;
    wisp_tensor t;
} mm_case;

static void case_init(mm_case *c, int type, int64_t n_in, int64_t n_out, int64_t n_tok)
{
    c->type = type;
    c->n_in = n_in;
    c->n_out = n_out;
    c->n_tok = n_tok;
    size_t row = wisp_cpu_row_bytes(type, n_in);
    REQUIRE(row > 0);
    c->w = malloc(row * (size_t)n_out);
    c->x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    c->y_ref = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    REQUIRE(c->w && c->x && c->y_ref);
    fill_weights(type, c->w, n_in, n_out);
    fill_acts(c->x, n_in * n_tok);
    c->t = (wisp_tensor){.name = "w",
                         .type = type,
                         .n_dims = 2,
                         .ne = {n_in, n_out, 1, 1},
                         .nbytes = row * (size_t)n_out,
                         .data = c->w};
}

static void case_free(mm_case *c)
{
    free(c->w);
    free(c->x);
    free(c->y_ref);
}

static void run_matmul(mm_case *c, int n_threads, float *y)
{
    wisp_threadpool *tp = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_threadpool_create(n_threads, &tp, &err) == 0);
    size_t ss = wisp_matmul_scratch_size(c->type, c->n_in, c->n_tok);
    /* Deliberately misaligned scratch: the matmul must align it itself. */
    char *mem = malloc(ss + 1);
    REQUIRE(mem != NULL);
    wisp_matmul_scratch scratch = {mem + 1, ss};
    int rc = wisp_matmul(tp, &c->t, c->x, c->n_tok, y, &scratch, &err);
    if (rc != 0)
        fprintf(stderr, "  matmul: %s\n", err.msg);
    REQUIRE(rc == 0);
    free(mem);
    wisp_threadpool_destroy(tp);
}

/* Per output: sum |w| |x| in float64, the scale every tolerance uses. */
static double abs_dot(const float *w, const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)w[i] * x[i]);
    return s;
}

static const int64_t SHAPE_BLOCKS[] = {3, 5}; /* blocks per row: odd */
static const int64_t SHAPE_TOKS[] = {1, 3, 17};
static const int64_t N_OUT = 37; /* not a multiple of any tile */

/* The scalar level against float64 references, for one type. */
static void check_scalar(int type)
{
    REQUIRE(wisp_cpu_simd_force(WISP_SIMD_SCALAR) == WISP_SIMD_SCALAR);
    const wisp_cpu_kernels *k = wisp_cpu_kernels_get(type);
    REQUIRE(k && k->dot && k->to_float);
    const wisp_cpu_kernels *ka = wisp_cpu_kernels_get(k->act_type);
    int blk = wisp_cpu_block_size(type) > 32 ? wisp_cpu_block_size(type) : 32;
    if (type == WISP_TYPE_F32 || type == WISP_TYPE_F16 || type == WISP_TYPE_BF16)
        blk = 32;
    int fails = 0;
    for (size_t si = 0; si < 2; si++)
        for (size_t ti = 0; ti < 3; ti++) {
            mm_case c;
            case_init(&c, type, SHAPE_BLOCKS[si] * blk, N_OUT, SHAPE_TOKS[ti]);
            run_matmul(&c, 1 + (int)ti % 3, c.y_ref);
            float *wf = malloc(sizeof(float) * (size_t)c.n_in);
            float *xq = malloc(sizeof(float) * (size_t)c.n_in);
            void *aq = malloc(wisp_cpu_row_bytes(k->act_type, c.n_in) + 64);
            REQUIRE(wf && xq && aq);
            size_t row = wisp_cpu_row_bytes(type, c.n_in);
            int qblk = wisp_cpu_block_size(k->act_type);
            for (int64_t t = 0; t < c.n_tok; t++) {
                const float *x = c.x + t * c.n_in;
                if (k->act_type == WISP_TYPE_F32)
                    memcpy(xq, x, sizeof(float) * (size_t)c.n_in);
                else {
                    ka->from_float(x, aq, c.n_in);
                    ka->to_float(aq, xq, c.n_in);
                }
                for (int64_t o = 0; o < c.n_out; o++) {
                    k->to_float((const char *)c.w + (size_t)o * row, wf, c.n_in);
                    double want_q = 0, want_x = 0, bound = 0;
                    for (int64_t i = 0; i < c.n_in; i++) {
                        want_q += (double)wf[i] * xq[i];
                        want_x += (double)wf[i] * x[i];
                    }
                    /* Activation rounding error, element by element. */
                    for (int64_t b = 0; b < c.n_in / qblk; b++) {
                        double amax = 0, wsum = 0;
                        for (int i = 0; i < qblk; i++) {
                            amax = fmax(amax, fabs(x[b * qblk + i]));
                            wsum += fabs(wf[b * qblk + i]);
                        }
                        switch (k->act_type) {
                        case WISP_TYPE_Q8_0:
                        case WISP_TYPE_Q8_1:
                        case WISP_TYPE_Q8_K:
                            /* half a step, plus the half-precision scale */
                            bound += wsum * amax * (0.5 / 127 + 1.0 / 2048);
                            break;
                        case WISP_TYPE_F16: bound += wsum * amax / 2048; break;
                        case WISP_TYPE_BF16: bound += wsum * amax / 256; break;
                        default: break;
                        }
                    }
                    if (k->act_type == WISP_TYPE_Q8_1) {
                        /* the weight minimum times the rounded block sum */
                        for (int64_t b = 0; b < c.n_in / 32; b++) {
                            double s = 0;
                            for (int i = 0; i < 32; i++)
                                s += x[b * 32 + i];
                            bound += 0.1 * (fabs(s) + 32 * 4.0 / 127) / 1024;
                        }
                    }
                    double got = c.y_ref[t * c.n_out + o];
                    double scale = abs_dot(wf, xq, c.n_in) + 1e-3;
                    double tol_q = 2e-5 * scale;
                    if (k->act_type == WISP_TYPE_Q8_1) {
                        /* Q8_1 carries d * sum(q) rounded to half precision,
                         * which multiplies the weight minimum (|m| <= 0.1 here). */
                        for (int64_t b = 0; b < c.n_in / 32; b++) {
                            double s = 0;
                            for (int i = 0; i < 32; i++)
                                s += xq[b * 32 + i];
                            tol_q += 0.1 * fabs(s) / 2048 * 1.01;
                        }
                    }
                    if (fabs(got - want_q) > tol_q || fabs(got - want_x) > bound + 2e-5 * scale) {
                        if (fails++ < 5)
                            fprintf(stderr,
                                    "  %s n_in=%lld t=%lld o=%lld: got %.7g, dequantized %.7g, "
                                    "exact %.7g (bound %.3g)\n",
                                    type_name(type), (long long)c.n_in, (long long)t, (long long)o,
                                    got, want_q, want_x, bound);
                    }
                }
            }
            free(wf);
            free(xq);
            free(aq);
            case_free(&c);
        }
    CHECK_EQ_INT(fails, 0);
}

/* Every SIMD level this CPU has against the scalar level, for one type. */
static void check_simd(int type)
{
    wisp_simd_level max = wisp_cpu_simd_max();
    if (max == WISP_SIMD_SCALAR)
        SKIP("this CPU has no SIMD level above scalar");
    /* Every level above scalar has its own kernel for this type. */
    for (int lv = WISP_SIMD_SCALAR + 1; lv <= (int)max; lv++)
        CHECK(wisp_cpu_kernels_at((wisp_simd_level)lv, type)->dot !=
              wisp_cpu_kernels_at(WISP_SIMD_SCALAR, type)->dot);
    int blk = wisp_cpu_block_size(type) > 32 ? wisp_cpu_block_size(type) : 32;
    int fails = 0;
    /* Token counts that leave every remainder of the gemm kernels' token
     * blocks (odd pairs, 1..7 past a multiple of 8) and block counts that
     * leave none, some, or one of a 4-block group; 37 = 4 x 8 + 4 + 1 runs
     * the decode kernels' 8-block loop several times before the rest. */
    static const int64_t toks[] = {1, 3, 6, 13, 17, 40};
    static const int64_t blocks[] = {3, 5, 9, 37};
    for (size_t si = 0; si < sizeof(blocks) / sizeof(blocks[0]); si++)
        for (size_t ti = 0; ti < 6; ti++) {
            mm_case c;
            case_init(&c, type, blocks[si] * blk, N_OUT, toks[ti]);
            wisp_cpu_simd_force(WISP_SIMD_SCALAR);
            run_matmul(&c, 1, c.y_ref);
            float *y = malloc(sizeof(float) * (size_t)(c.n_out * c.n_tok));
            float *wf = malloc(sizeof(float) * (size_t)c.n_in);
            REQUIRE(y && wf);
            const wisp_cpu_kernels *k = wisp_cpu_kernels_at(WISP_SIMD_SCALAR, type);
            size_t row = wisp_cpu_row_bytes(type, c.n_in);
            for (int lv = WISP_SIMD_SCALAR + 1; lv <= (int)max; lv++) {
                REQUIRE(wisp_cpu_simd_force((wisp_simd_level)lv) == (wisp_simd_level)lv);
                for (int nt = 1; nt <= 3; nt += 2) {
                    for (int64_t i = 0; i < c.n_out * c.n_tok; i++)
                        y[i] = NAN;
                    run_matmul(&c, nt, y);
                    for (int64_t t = 0; t < c.n_tok; t++)
                        for (int64_t o = 0; o < c.n_out; o++) {
                            k->to_float((const char *)c.w + (size_t)o * row, wf, c.n_in);
                            double scale = abs_dot(wf, c.x + t * c.n_in, c.n_in) + 1e-3;
                            double got = y[t * c.n_out + o], want = c.y_ref[t * c.n_out + o];
                            if (!(fabs(got - want) <= 1e-5 * scale) && fails++ < 5)
                                fprintf(stderr,
                                        "  %s %s n_in=%lld n_tok=%lld threads=%d t=%lld o=%lld: "
                                        "%.7g vs scalar %.7g (scale %.3g)\n",
                                        type_name(type), wisp_cpu_simd_name((wisp_simd_level)lv),
                                        (long long)c.n_in, (long long)c.n_tok, nt, (long long)t,
                                        (long long)o, got, want, scale);
                        }
                }
            }
            free(y);
            free(wf);
            case_free(&c);
        }
    CHECK_EQ_INT(fails, 0);
}

#define TYPE_TESTS(name, id)                  \
    TEST(scalar_##name) { check_scalar(id); } \
    TEST(simd_##name) { check_simd(id); }
TYPE_TESTS(f32, WISP_TYPE_F32)
TYPE_TESTS(f16, WISP_TYPE_F16)
TYPE_TESTS(bf16, WISP_TYPE_BF16)
TYPE_TESTS(q4_0, WISP_TYPE_Q4_0)
TYPE_TESTS(q4_1, WISP_TYPE_Q4_1)
TYPE_TESTS(q5_0, WISP_TYPE_Q5_0)
TYPE_TESTS(q5_1, WISP_TYPE_Q5_1)
TYPE_TESTS(q8_0, WISP_TYPE_Q8_0)
TYPE_TESTS(q2_k, WISP_TYPE_Q2_K)
TYPE_TESTS(q3_k, WISP_TYPE_Q3_K)
TYPE_TESTS(q4_k, WISP_TYPE_Q4_K)
TYPE_TESTS(q5_k, WISP_TYPE_Q5_K)
TYPE_TESTS(q6_k, WISP_TYPE_Q6_K)

/* A batch through the gemm kernels gives the bits that each token alone
 * gives through the dot kernels (the gemm keeps the dot's summation
 * order), so prefill and decode agree exactly for these types. */
TEST(batch_equals_token_by_token)
{
    static const int types[] = {WISP_TYPE_F16,  WISP_TYPE_BF16, WISP_TYPE_Q4_0, WISP_TYPE_Q5_0,
                                WISP_TYPE_Q8_0, WISP_TYPE_Q2_K, WISP_TYPE_Q3_K, WISP_TYPE_Q4_K,
                                WISP_TYPE_Q5_K, WISP_TYPE_Q6_K};
    int fails = 0;
    for (int lv = 0; lv <= (int)wisp_cpu_simd_max(); lv++) {
        wisp_cpu_simd_force((wisp_simd_level)lv);
        for (size_t ti = 0; ti < 2 * sizeof(types) / sizeof(types[0]); ti++) {
            int type = types[ti / 2], blk = wisp_cpu_block_size(type);
            /* float rows: a length past the 16-element loop, for the tail;
             * block rows: short, and long enough for every loop of the
             * decode kernels (8 32-blocks at a time, then 4, then 1) */
            static const int64_t len[3][2] = {{300, 1030}, {9 * 32, 47 * 32}, {3 * 256, 11 * 256}};
            mm_case c;
            case_init(&c, type, len[blk == 1 ? 0 : blk == 32 ? 1 : 2][ti % 2], N_OUT, 13);
            run_matmul(&c, 2, c.y_ref);
            float *y1 = malloc(sizeof(float) * (size_t)c.n_out);
            REQUIRE(y1);
            for (int64_t t = 0; t < c.n_tok; t++) {
                mm_case one = c;
                one.x = c.x + t * c.n_in;
                one.n_tok = 1;
                run_matmul(&one, 1, y1);
                for (int64_t o = 0; o < c.n_out; o++)
                    if (y1[o] != c.y_ref[t * c.n_out + o] && fails++ < 5)
                        fprintf(stderr, "  %s %s n_in=%lld t=%lld o=%lld: batch %.9g, alone %.9g\n",
                                type_name(type), wisp_cpu_simd_name((wisp_simd_level)lv),
                                (long long)c.n_in, (long long)t, (long long)o,
                                c.y_ref[t * c.n_out + o], y1[o]);
            }
            free(y1);
            case_free(&c);
        }
    }
    wisp_cpu_simd_force(wisp_cpu_simd_max());
    CHECK_EQ_INT(fails, 0);
}

/* AMX tiles (where the CPU has them) give the AVX-512 kernels' bits, for
 * row lengths with and without a tail of blocks (and the longest rows the
 * AMX kernels take), and edges of rows and tokens that are not whole
 * 16 x 16 tiles; and the batch still equals each token alone. */
TEST(amx_equals_avx512_bit_for_bit)
{
    if (!wisp_amx_usable())
        SKIP("this CPU (or its kernel) offers no AMX-INT8 tiles");
    static const int types[] = {WISP_TYPE_Q4_0, WISP_TYPE_Q5_0, WISP_TYPE_Q8_0, WISP_TYPE_Q4_K,
                                WISP_TYPE_Q6_K};
    static const int64_t shapes[][3] = {
        /* n_in, n_out, n_tok; rows of 256 and up for the K-quants */
        {32, 37, 45},   {96, 37, 45},   {1024, 37, 45},  {2816, 37, 45},
        {4160, 37, 45}, {96, 16, 16},   {1024, 80, 130}, {4160, 32, 17},
        {256, 37, 45},  {8192, 48, 33}, {2560, 16, 64},
    };
    int fails = 0;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            if (shapes[si][0] % wisp_cpu_block_size(types[ti]) != 0)
                continue;
            mm_case c;
            case_init(&c, types[ti], shapes[si][0], shapes[si][1], shapes[si][2]);
            const size_t ny = (size_t)(c.n_out * c.n_tok);
            float *y = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * (size_t)c.n_out);
            REQUIRE(y && y1);
            REQUIRE(!wisp_amx_set(false));
            run_matmul(&c, 2, c.y_ref);
            REQUIRE(wisp_amx_set(true));
            run_matmul(&c, 2, y);
            for (size_t i = 0; i < ny; i++)
                if (y[i] != c.y_ref[i] && fails++ < 5)
                    fprintf(stderr, "  %s %lld x %lld x %lld [%zu]: amx %.9g, avx512 %.9g\n",
                            type_name(types[ti]), (long long)c.n_in, (long long)c.n_out,
                            (long long)c.n_tok, i, y[i], c.y_ref[i]);
            for (int64_t t = 0; t < c.n_tok; t += 7) {
                mm_case one = c;
                one.x = c.x + t * c.n_in;
                one.n_tok = 1;
                run_matmul(&one, 1, y1);
                if (memcmp(y1, y + t * c.n_out, sizeof(float) * (size_t)c.n_out) != 0 &&
                    fails++ < 5)
                    fprintf(stderr, "  %s %lld x %lld: token %lld alone differs from amx batch\n",
                            type_name(types[ti]), (long long)c.n_in, (long long)c.n_out,
                            (long long)t);
            }
            free(y);
            free(y1);
            case_free(&c);
        }
    CHECK_EQ_INT(fails, 0);
}

/* wisp_matmul_n gives each weight the bits wisp_matmul gives it alone:
 * weights of one activation format in one job (also mixed types, Q4_K
 * with Q6_K as in Q4_K_M files), others one after another. */
/* The K-quant panel kernels (16 rows decoded once for all the tokens of a
 * call) give the bits of the gemm kernels they replace, driven the way
 * matmul drives the gemm (4 rows x 8 tokens a call, the last call of a row
 * block taking what is left): for row counts up to a full panel, token
 * counts below the panel's threshold, every remainder of its 8-token
 * register tile and past the tokens of one pass, and row lengths of 1 to
 * 11 super-blocks. */
TEST(kquant_panel_equals_gemm_bit_for_bit)
{
    static const int types[] = {WISP_TYPE_Q2_K, WISP_TYPE_Q3_K, WISP_TYPE_Q4_K, WISP_TYPE_Q5_K,
                                WISP_TYPE_Q6_K};
    static const int64_t lens[] = {256, 3 * 256, 11 * 256};
    /* 2 and 3 below the panel's threshold; 4 .. 45 leave every remainder
     * 1 .. 7 of the 8-token register tile; then a second pass of 13 */
    static const int toks[] = {2, 3, 4, 9, 10, 23, 30, 35, 45, 64, WISP_PANEL_NC + 13};
    static const int rows[] = {1, 3, 4, 9, WISP_PANEL_NR};
    int fails = 0, ran = 0;
    for (int lv = 0; lv <= (int)wisp_cpu_simd_max(); lv++)
        for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
            const int type = types[ti];
            wisp_gemm_fn panel = wisp_cpu_panel_at((wisp_simd_level)lv, type),
                         gemm = wisp_cpu_gemm_at((wisp_simd_level)lv, type);
            if (!panel)
                continue;
            REQUIRE(gemm != NULL);
            const wisp_cpu_kernels *k = wisp_cpu_kernels_at((wisp_simd_level)lv, type);
            const wisp_row_from_float_fn quant =
                wisp_cpu_kernels_at((wisp_simd_level)lv, k->act_type)->from_float;
            for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
                const int64_t n = lens[li];
                const int nt_max = WISP_PANEL_NC + 13;
                mm_case c;
                case_init(&c, type, n, WISP_PANEL_NR, nt_max);
                /* outputs of a token ss apart, the rows past nr written by neither */
                const size_t sw = wisp_cpu_row_bytes(type, n),
                             sa = wisp_cpu_row_bytes(k->act_type, n) + 64, ss = WISP_PANEL_NR + 3,
                             ny = ss * (size_t)nt_max;
                char *a = malloc(sa * (size_t)nt_max);
                float *want = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * ny);
                REQUIRE(a && want && got);
                for (int t = 0; t < nt_max; t++)
                    quant(c.x + (int64_t)t * n, a + (size_t)t * sa, n);
                for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++)
                    for (size_t ki = 0; ki < sizeof(toks) / sizeof(toks[0]); ki++) {
                        const int nr = rows[ri], nt = toks[ki];
                        for (size_t i = 0; i < ny; i++)
                            want[i] = got[i] = NAN;
                        for (int r = 0; r < nr; r += WISP_GEMM_NR)
                            for (int t = 0; t < nt; t += WISP_GEMM_NC)
                                gemm(n, (const char *)c.w + (size_t)r * sw, sw,
                                     nr - r < WISP_GEMM_NR ? nr - r : WISP_GEMM_NR,
                                     a + (size_t)t * sa, sa,
                                     nt - t < WISP_GEMM_NC ? nt - t : WISP_GEMM_NC,
                                     want + (size_t)t * ss + r, ss);
                        panel(n, c.w, sw, nr, a, sa, nt, got, ss);
                        ran++;
                        for (size_t i = 0; i < ny; i++)
                            if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && fails++ < 5)
                                fprintf(stderr,
                                        "  %s %s n=%lld rows=%d toks=%d t=%zu r=%zu: panel %.9g, "
                                        "gemm %.9g\n",
                                        type_name(type), wisp_cpu_simd_name((wisp_simd_level)lv),
                                        (long long)n, nr, nt, i / ss, i % ss, got[i], want[i]);
                    }
                free(a);
                free(want);
                free(got);
                case_free(&c);
            }
        }
    if (ran == 0)
        SKIP("no SIMD level of this CPU has K-quant panel kernels");
    CHECK_EQ_INT(fails, 0);
}

TEST(matmul_n_equals_separate_products)
{
    static const int sets[][3] = {
        {WISP_TYPE_Q8_0, WISP_TYPE_Q8_0, WISP_TYPE_Q8_0},
        {WISP_TYPE_Q4_K, WISP_TYPE_Q4_K, WISP_TYPE_Q6_K},
        {WISP_TYPE_Q4_0, WISP_TYPE_Q4_K, WISP_TYPE_F16},
    };
    static const int64_t n_outs[3] = {64, 16, 40};
    static const int64_t toks[] = {1, 5, 37};
    int fails = 0;
    for (size_t si = 0; si < sizeof(sets) / sizeof(sets[0]); si++)
        for (size_t ti = 0; ti < sizeof(toks) / sizeof(toks[0]); ti++) {
            mm_case c[3];
            for (int i = 0; i < 3; i++)
                case_init(&c[i], sets[si][i], 512, n_outs[i], toks[ti]);
            /* one input for all three */
            for (int i = 1; i < 3; i++)
                memcpy(c[i].x, c[0].x, sizeof(float) * (size_t)(512 * toks[ti]));
            wisp_threadpool *tp = NULL;
            wisp_err err = {0};
            REQUIRE(wisp_threadpool_create(2, &tp, &err) == 0);
            size_t ss = 0;
            for (int i = 0; i < 3; i++) {
                size_t n = wisp_matmul_scratch_size(sets[si][i], 512, toks[ti]);
                ss = n > ss ? n : ss;
            }
            wisp_matmul_scratch scratch = {malloc(ss + 1), ss};
            REQUIRE(scratch.buf);
            const wisp_tensor *w[3] = {&c[0].t, &c[1].t, &c[2].t};
            float *y[3];
            for (int i = 0; i < 3; i++) {
                y[i] = malloc(sizeof(float) * (size_t)(n_outs[i] * toks[ti]));
                REQUIRE(y[i]);
                REQUIRE(wisp_matmul(tp, w[i], c[i].x, toks[ti], c[i].y_ref, &scratch, &err) == 0);
            }
            REQUIRE(wisp_matmul_n(tp, w, 3, c[0].x, toks[ti], y, &scratch, &err) == 0);
            for (int i = 0; i < 3; i++)
                if (memcmp(y[i], c[i].y_ref, sizeof(float) * (size_t)(n_outs[i] * toks[ti])) != 0 &&
                    fails++ < 5)
                    fprintf(stderr, "  set %zu, %lld tokens: weight %d (%s) differs\n", si,
                            (long long)toks[ti], i, type_name(sets[si][i]));
            for (int i = 0; i < 3; i++) {
                free(y[i]);
                case_free(&c[i]);
            }
            free(scratch.buf);
            wisp_threadpool_destroy(tp);
        }
    CHECK_EQ_INT(fails, 0);
    /* more weights than a job takes: refused with a reason */
    wisp_err err = {0};
    CHECK(wisp_matmul_n(NULL, NULL, WISP_MATMUL_MAX_PARTS + 1, NULL, 1, NULL, NULL, &err) != 0);
    CHECK(strstr(err.msg, "weights in one job") != NULL);
}

/* The activation quantizers of every level produce (almost) the bits of
 * the scalar ones: at most one step apart, with equal scales. */
TEST(activation_quantizers_agree)
{
    static const int acts[] = {WISP_TYPE_Q8_0, WISP_TYPE_Q8_1, WISP_TYPE_Q8_K, WISP_TYPE_F16,
                               WISP_TYPE_BF16};
    enum {
        N = 1024
    };
    float x[N], a[N], b[N];
    fill_acts(x, N);
    for (int lv = 1; lv <= (int)wisp_cpu_simd_max(); lv++)
        for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
            const wisp_cpu_kernels *ks = wisp_cpu_kernels_at(WISP_SIMD_SCALAR, acts[i]);
            const wisp_cpu_kernels *kv = wisp_cpu_kernels_at((wisp_simd_level)lv, acts[i]);
            REQUIRE(ks && kv && ks->from_float && kv->from_float);
            size_t bytes = wisp_cpu_row_bytes(acts[i], N);
            void *qa = malloc(bytes), *qb = malloc(bytes);
            REQUIRE(qa && qb);
            ks->from_float(x, qa, N);
            kv->from_float(x, qb, N);
            ks->to_float(qa, a, N);
            ks->to_float(qb, b, N);
            int bad = 0;
            for (int j = 0; j < N; j++) {
                float amax = 0;
                for (int l = j / 32 * 32; l < j / 32 * 32 + 32; l++)
                    amax = fmaxf(amax, fabsf(x[l]));
                if (fabsf(a[j] - b[j]) > amax / 127 * 1.01f + 1e-7f)
                    bad++;
            }
            if (bad)
                fprintf(stderr, "  %s at %s: %d elements differ\n", type_name(acts[i]),
                        wisp_cpu_simd_name((wisp_simd_level)lv), bad);
            CHECK_EQ_INT(bad, 0);
            if (acts[i] == WISP_TYPE_Q8_K) {
                const wisp_block_q8_K *ba = qa, *bb = qb;
                for (int k = 0; k < N / 256; k++)
                    for (int j = 0; j < 16; j++) {
                        int s = 0;
                        for (int l = 0; l < 16; l++)
                            s += bb[k].qs[j * 16 + l];
                        CHECK_EQ_INT(bb[k].bsums[j], s);
                    }
                CHECK(ba[0].d == bb[0].d);
            }
            free(qa);
            free(qb);
        }
}

TEST(large_shape_threads_agree)
{
    /* A realistic row length with several threads and enough tokens for
     * several token tiles: threads must not change a single bit. */
    mm_case c;
    case_init(&c, WISP_TYPE_Q4_K, 2048, 301, 45);
    run_matmul(&c, 1, c.y_ref);
    float *y = malloc(sizeof(float) * (size_t)(c.n_out * c.n_tok));
    REQUIRE(y);
    for (int nt = 2; nt <= 4; nt++) {
        run_matmul(&c, nt, y);
        CHECK(memcmp(y, c.y_ref, sizeof(float) * (size_t)(c.n_out * c.n_tok)) == 0);
    }
    free(y);
    case_free(&c);
}

TEST(rejects_bad_input)
{
    wisp_err err = {0};
    float x[64] = {0}, y[4];
    uint8_t w[256] = {0};
    wisp_tensor t = {.name = "bad",
                     .type = WISP_TYPE_IQ2_XS,
                     .n_dims = 2,
                     .ne = {64, 1, 1, 1},
                     .data = w};
    CHECK_EQ_INT(wisp_matmul(NULL, &t, x, 1, y, NULL, &err), WISP_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "bad") != NULL);
    t.type = WISP_TYPE_Q4_0;
    t.ne[0] = 48; /* not a multiple of 32 */
    CHECK_EQ_INT(wisp_matmul(NULL, &t, x, 1, y, NULL, &err), WISP_E_INTERNAL);
    t.ne[0] = 64;
    wisp_matmul_scratch small = {w, 8};
    CHECK_EQ_INT(wisp_matmul(NULL, &t, x, 1, y, &small, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "scratch") != NULL);
    CHECK_EQ_INT(wisp_matmul_scratch_size(WISP_TYPE_F32, 64, 3), 0);
    CHECK(wisp_matmul_scratch_size(WISP_TYPE_Q4_K, 256, 3) >= 3 * sizeof(wisp_block_q8_K));
}

TEST(simd_level_name)
{
    const char *name = wisp_matmul_simd_level();
    CHECK(strcmp(name, "scalar") == 0 || strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0 ||
          (strcmp(name, "avx512+amx") == 0 && wisp_amx_active()));
    CHECK_EQ_INT(wisp_cpu_simd_force(WISP_SIMD_SCALAR), WISP_SIMD_SCALAR);
    CHECK_EQ_STR(wisp_matmul_simd_level(), "scalar");
}

/* The small vector helpers (vec.h) against plain double loops, on lengths
 * that exercise both the SIMD bodies and the tails. */
TEST(vec_helpers)
{
    static const int64_t lens[] = {0, 1, 7, 8, 15, 16, 17, 64, 131};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        int64_t n = lens[li];
        float x[131], y[131], y2[131], f[131];
        uint16_t h[131], h2[131];
        double dot = 0, sq = 0, dot16 = 0, mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            x[i] = rng_f(-3.f, 3.f);
            y[i] = rng_f(-3.f, 3.f);
            h[i] = wisp_float_to_half(y[i]);
            dot += (double)x[i] * y[i];
            sq += (double)x[i] * x[i];
            dot16 += (double)x[i] * wisp_half_to_float(h[i]);
            mx = fmax(mx, x[i]);
        }
        CHECK_NEAR(wisp_vec_dot_f32(x, y, n), dot, 1e-4 * (1 + fabs(dot)));
        CHECK_NEAR(wisp_vec_sumsq_f32(x, n), sq, 1e-4 * (1 + sq));
        CHECK_NEAR(wisp_vec_dot_f32_f16(x, h, n), dot16, 1e-4 * (1 + fabs(dot16)));
        if (n > 0)
            CHECK(wisp_vec_max_f32(x, n) == (float)mx);
        wisp_vec_f16_to_f32(h, f, n);
        wisp_vec_f32_to_f16(y, h2, n);
        for (int64_t i = 0; i < n; i++) {
            CHECK(f[i] == wisp_half_to_float(h[i]));
            CHECK_EQ_INT(h2[i], h[i]);
        }
        memcpy(y2, y, sizeof(float) * (size_t)n);
        wisp_vec_axpy_f32(y2, 0.5f, x, n);
        for (int64_t i = 0; i < n; i++)
            CHECK_NEAR(y2[i], y[i] + 0.5 * x[i], 1e-6);
        memcpy(y2, y, sizeof(float) * (size_t)n);
        wisp_vec_axpy_f16(y2, -2.f, h, n);
        for (int64_t i = 0; i < n; i++)
            CHECK_NEAR(y2[i], y[i] - 2.0 * wisp_half_to_float(h[i]), 1e-5);
        memcpy(y2, y, sizeof(float) * (size_t)n);
        wisp_vec_add_f32(y2, x, n);
        wisp_vec_scale_f32(y2, 3.f, n);
        for (int64_t i = 0; i < n; i++)
            CHECK_NEAR(y2[i], 3.0 * (y[i] + x[i]), 1e-5);
    }
}

/* The K-quant bit layouts, a second time: the CPU kernels' dequantizers
 * against the independent reference of dequant_ref.h (ggml's loop
 * structure, none of the unpacking the kernels share), exactly. */
TEST(kquant_layouts_match_ggml_loops)
{
    static const int types[] = {WISP_TYPE_Q2_K, WISP_TYPE_Q3_K, WISP_TYPE_Q4_K, WISP_TYPE_Q5_K,
                                WISP_TYPE_Q6_K};
    static void (*const REF[WISP_TYPE_COUNT])(const void *,
                                              float *) = {[WISP_TYPE_Q2_K] = ref_q2_K,
                                                          [WISP_TYPE_Q3_K] = ref_q3_K,
                                                          [WISP_TYPE_Q4_K] = ref_q4_K,
                                                          [WISP_TYPE_Q5_K] = ref_q5_K,
                                                          [WISP_TYPE_Q6_K] = ref_q6_K};
    enum {
        NB = 7
    };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        int type = types[ti];
        size_t bb = wisp_cpu_block_bytes(type);
        uint8_t *w = malloc(bb * NB);
        float got[256 * NB], want[256 * NB];
        REQUIRE(w);
        fill_weights(type, w, 256 * NB, 1);
        wisp_cpu_kernels_at(WISP_SIMD_SCALAR, type)->to_float(w, got, 256 * NB);
        for (int b = 0; b < NB; b++) {
            const void *blk = w + (size_t)b * bb;
            float *o = want + 256 * b;
            REF[type](blk, o);
        }
        int bad = 0;
        for (int i = 0; i < 256 * NB; i++)
            if (!(fabsf(got[i] - want[i]) <= 1e-6f * (1.f + fabsf(want[i]))) && bad++ < 3)
                fprintf(stderr, "  %s element %d: %g vs the reference %g\n", type_name(type), i,
                        got[i], want[i]);
        CHECK_EQ_INT(bad, 0);
        free(w);
    }
}
