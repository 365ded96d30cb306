/*
 * test_types.c - the type table and its reference conversions.
 *
 * Dequantization is checked against an independent reference written here
 * from the format descriptions: it reads each element straight from the
 * block's bytes by offset (no structs, no shared helpers; Q3_K's scales
 * decoded with ggml's 32-bit mask formulation rather than per nibble), so
 * a misplaced bit in types.c cannot be hidden by the same mistake here.
 * Quantizers are checked by round-trip error against the step size of each
 * format, and against llama.cpp's own quantization of the golden models:
 * the Q8_0 and Q4_K_M files must match the F16 file tensor by tensor.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp16.h"
#include "harness.h"
#include "model/model.h"
#include "model/types.h"

/* ------------------------------------------------------------ reference */

static float h16(const uint8_t *p) { return wisp_half_to_float((uint16_t)(p[0] | p[1] << 8)); }

/* Element k of one block of type t, from the format description. */
static float ref_elem(int t, const uint8_t *b, int k)
{
    switch (t) {
    case WISP_TYPE_Q4_0: {
        int q = k < 16 ? b[2 + k] & 15 : b[2 + k - 16] >> 4;
        return h16(b) * (q - 8);
    }
    case WISP_TYPE_Q4_1: {
        int q = k < 16 ? b[4 + k] & 15 : b[4 + k - 16] >> 4;
        return h16(b) * q + h16(b + 2);
    }
    case WISP_TYPE_Q5_0:
    case WISP_TYPE_Q5_1: {
        int o = t == WISP_TYPE_Q5_0 ? 2 : 4;
        uint32_t qh = (uint32_t)b[o] | (uint32_t)b[o + 1] << 8 | (uint32_t)b[o + 2] << 16 |
                      (uint32_t)b[o + 3] << 24;
        int q = (k < 16 ? b[o + 4 + k] & 15 : b[o + 4 + k - 16] >> 4) | (int)((qh >> k) & 1) << 4;
        return t == WISP_TYPE_Q5_0 ? h16(b) * (q - 16) : h16(b) * q + h16(b + 2);
    }
    case WISP_TYPE_Q8_0: return h16(b) * (int8_t)b[2 + k];
    case WISP_TYPE_Q8_1: return h16(b) * (int8_t)b[4 + k];
    case WISP_TYPE_Q2_K: {
        int s = k / 16, h = k / 128, w = k % 128;
        int q = (b[16 + 32 * h + w % 32] >> (2 * (w / 32))) & 3;
        return h16(b + 80) * (b[s] & 15) * q - h16(b + 82) * (b[s] >> 4);
    }
    case WISP_TYPE_Q3_K: {
        /* ggml's formulation: four little-endian words, masks 0x03030303 and
         * 0x0f0f0f0f, giving 16 signed bytes. */
        uint32_t a[4], tmp;
        memcpy(a, b + 96, 12);
        tmp = a[2];
        a[2] = ((a[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
        a[3] = ((a[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
        a[0] = (a[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
        a[1] = (a[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
        int8_t sc[16];
        memcpy(sc, a, 16);
        int h = k / 128, w = k % 128;
        int lo = (b[32 + 32 * h + w % 32] >> (2 * (w / 32))) & 3;
        int hb = (b[k % 32] >> (k / 32)) & 1;
        return h16(b + 108) * (sc[k / 16] - 32) * (lo - (hb ? 0 : 4));
    }
    case WISP_TYPE_Q4_K:
    case WISP_TYPE_Q5_K: {
        const uint8_t *s = b + 4;
        int j = k / 32, c = k / 64, w = k % 64, l = w % 32;
        int sc, m;
        if (j < 4) {
            sc = s[j] & 63;
            m = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
            m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        }
        int qo = t == WISP_TYPE_Q4_K ? 16 : 48;
        int q = w < 32 ? b[qo + 32 * c + l] & 15 : b[qo + 32 * c + l] >> 4;
        if (t == WISP_TYPE_Q5_K)
            q += ((b[16 + l] >> (2 * c + (w >= 32))) & 1) * 16;
        return h16(b) * sc * q - h16(b + 2) * m;
    }
    case WISP_TYPE_Q6_K: {
        int h = k / 128, w = k % 128, l = w % 32, quarter = w / 32;
        int lo = b[64 * h + 32 * (quarter & 1) + l];
        lo = quarter < 2 ? lo & 15 : lo >> 4;
        int hi = (b[128 + 32 * h + l] >> (2 * quarter)) & 3;
        int8_t sc = (int8_t)b[192 + 8 * h + l / 16 + 2 * quarter];
        return h16(b + 208) * sc * ((lo | hi << 4) - 32);
    }
    case WISP_TYPE_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        return d * (int8_t)b[4 + k];
    }
    }
    return NAN;
}

static const int quant_types[] = {WISP_TYPE_Q4_0, WISP_TYPE_Q4_1, WISP_TYPE_Q5_0, WISP_TYPE_Q5_1,
                                  WISP_TYPE_Q8_0, WISP_TYPE_Q8_1, WISP_TYPE_Q2_K, WISP_TYPE_Q3_K,
                                  WISP_TYPE_Q4_K, WISP_TYPE_Q5_K, WISP_TYPE_Q6_K, WISP_TYPE_Q8_K};
#define N_QT (int)(sizeof quant_types / sizeof quant_types[0])

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float gauss(void)
{
    float u = (rnd() % 65535 + 1) / 65536.0f, v = (rnd() % 65536) / 65536.0f;
    return sqrtf(-2 * logf(u)) * cosf(6.2831853f * v);
}

/* A half with a sane magnitude (no inf/nan), either sign. */
static void put_half(uint8_t *p, float lo, float hi)
{
    float f = lo + (hi - lo) * (rnd() % 10000) / 10000.0f;
    if (rnd() & 1)
        f = -f;
    uint16_t h = wisp_float_to_half(f);
    memcpy(p, &h, 2);
}

TEST(dequant_matches_independent_reference)
{
    for (int ti = 0; ti < N_QT; ti++) {
        int t = quant_types[ti];
        const wisp_type_traits *tr = wisp_type_get(t);
        REQUIRE(tr->to_float);
        int nb = 16, n = nb * tr->block_size;
        uint8_t *raw = malloc(nb * tr->type_size);
        float *got = malloc(sizeof(float) * n);
        for (size_t i = 0; i < nb * tr->type_size; i++)
            raw[i] = (uint8_t)rnd();
        for (int b = 0; b < nb; b++) {
            uint8_t *blk = raw + b * tr->type_size;
            /* make the scale fields finite */
            switch (t) {
            case WISP_TYPE_Q2_K:
                put_half(blk + 80, 0.001f, 1);
                put_half(blk + 82, 0.001f, 1);
                break;
            case WISP_TYPE_Q3_K: put_half(blk + 108, 0.001f, 1); break;
            case WISP_TYPE_Q6_K: put_half(blk + 208, 0.001f, 1); break;
            case WISP_TYPE_Q8_K: {
                float d = 0.01f * (rnd() % 100);
                memcpy(blk, &d, 4);
                break;
            }
            default:
                put_half(blk, 0.001f, 1);
                put_half(blk + 2, 0.001f, 1);
                break;
            }
        }
        tr->to_float(raw, got, n);
        int bad = 0;
        for (int k = 0; k < n && bad < 5; k++) {
            float want =
                ref_elem(t, raw + (k / tr->block_size) * tr->type_size, k % tr->block_size);
            if (!(fabsf(got[k] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want)))) {
                fprintf(stderr, "  %s element %d: got %g, reference %g\n", tr->name, k, got[k],
                        want);
                bad++;
            }
        }
        CHECK_EQ_INT(bad, 0);
        free(raw);
        free(got);
    }
}

/* Round trip on Gaussian data: RMS error relative to the data's RMS. The
 * bounds are about 1.3x the error of uniform rounding with each format's
 * step (Δ/sqrt(12) where Δ = range / levels of a block of Gaussian data;
 * a 10-sigma outlier every 512 elements widens the range of half the
 * 256-element Q8_K blocks, hence its larger bound); 16-bit floats are
 * bounded by their relative precision. */
TEST(quantize_round_trip_error)
{
    struct {
        int t;
        double bound;
    } cases[] = {
        {WISP_TYPE_F32, 0},      {WISP_TYPE_F16, 4e-4},   {WISP_TYPE_BF16, 3e-3},
        {WISP_TYPE_Q8_0, 0.010}, {WISP_TYPE_Q8_1, 0.010}, {WISP_TYPE_Q8_K, 0.020},
        {WISP_TYPE_Q6_K, 0.035}, {WISP_TYPE_Q5_0, 0.060}, {WISP_TYPE_Q5_1, 0.050},
        {WISP_TYPE_Q5_K, 0.050}, {WISP_TYPE_Q4_0, 0.125}, {WISP_TYPE_Q4_1, 0.100},
        {WISP_TYPE_Q4_K, 0.100}, {WISP_TYPE_Q3_K, 0.220}, {WISP_TYPE_Q2_K, 0.420},
    };
    int n = 4096;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    void *q = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++)
        x[i] = 0.02f * gauss() + (i % 512 == 7 ? 0.2f : 0.0f); /* a few outliers */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const wisp_type_traits *tr = wisp_type_get(cases[c].t);
        REQUIRE(tr->from_float && tr->to_float && tr->supported);
        tr->from_float(x, q, n);
        tr->to_float(q, y, n);
        double se = 0, sx = 0;
        for (int i = 0; i < n; i++) {
            se += (double)(x[i] - y[i]) * (x[i] - y[i]);
            sx += (double)x[i] * x[i];
        }
        double rel = sqrt(se / sx);
        fprintf(stderr, "  %-5s relative RMS error %.4f (bound %.4f)\n", tr->name, rel,
                cases[c].bound);
        CHECK(rel <= cases[c].bound);
        /* Different data must give different bytes: the quantizer is not a no-op. */
        if (cases[c].t != WISP_TYPE_F32)
            CHECK(rel > 0);
    }
    /* All-zero and constant blocks stay finite. */
    memset(x, 0, sizeof(float) * n);
    for (int ti = 0; ti < N_QT; ti++) {
        const wisp_type_traits *tr = wisp_type_get(quant_types[ti]);
        tr->from_float(x, q, 256);
        tr->to_float(q, y, 256);
        for (int i = 0; i < 256; i++)
            CHECK(y[i] == 0.0f);
    }
    free(x);
    free(y);
    free(q);
}

TEST(table_rows)
{
    CHECK_EQ_STR(wisp_type_name(WISP_TYPE_Q4_K), "Q4_K");
    CHECK_EQ_STR(wisp_type_name(WISP_TYPE_IQ2_XS), "IQ2_XS");
    CHECK_EQ_STR(wisp_type_name(WISP_TYPE_MXFP4), "MXFP4");
    CHECK_EQ_STR(wisp_type_name(WISP_TYPE_TQ1_0), "TQ1_0");
    CHECK_EQ_STR(wisp_type_name(99), "unknown");
    CHECK_EQ_STR(wisp_type_name(-1), "unknown");
    CHECK_EQ_INT(wisp_type_from_name("q6_k"), WISP_TYPE_Q6_K);
    CHECK_EQ_INT(wisp_type_from_name("BF16"), WISP_TYPE_BF16);
    CHECK_EQ_INT(wisp_type_from_name("Q9_9"), -1);
    CHECK(!wisp_type_get(WISP_TYPE_IQ2_XS)->supported);
    CHECK(wisp_type_get(WISP_TYPE_IQ2_XS)->to_float == NULL);
    CHECK_EQ_INT(wisp_type_row_size(WISP_TYPE_Q4_K, 512), 288);
    CHECK_EQ_INT(wisp_type_row_size(WISP_TYPE_Q4_K, 100), 0);
    CHECK_EQ_INT(wisp_type_row_size(WISP_TYPE_F16, 3), 6);
    CHECK_EQ_INT(wisp_type_row_size(WISP_TYPE_IQ4_XS, 256), 136);
    /* sizes agree with the block structs */
    size_t expect[][2] = {{WISP_TYPE_Q4_0, 18},  {WISP_TYPE_Q5_1, 24},  {WISP_TYPE_Q2_K, 84},
                          {WISP_TYPE_Q3_K, 110}, {WISP_TYPE_Q5_K, 176}, {WISP_TYPE_Q8_K, 292}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        CHECK_EQ_INT(wisp_type_get((int)expect[i][0])->type_size, expect[i][1]);
    int supported = 0;
    for (int t = 0; t < WISP_TYPE_COUNT; t++)
        if (wisp_type_get(t)->supported) {
            supported++;
            CHECK(wisp_type_get(t)->to_float && wisp_type_get(t)->from_float);
        }
    CHECK_EQ_INT(supported, 15);
}

/* ------------------------------------------------------------ golden files */

static float *dequant_tensor(const wisp_tensor *t)
{
    int64_t n = t->ne[0] * t->ne[1];
    float *out = malloc(sizeof(float) * (size_t)n);
    REQUIRE(out);
    wisp_type_get(t->type)->to_float(t->data, out, n);
    return out;
}

/* llama.cpp quantized the F16 golden model into Q8_0 and Q4_K_M. Bounds,
 * as relative RMS error over a tensor: Q8_0 rounds to nearest with step
 * amax/127 per 32 elements, so each element is within half a step (plus
 * the scale's own half rounding) of the F16 value (checked per element) and the RMS is near 0.4% for Gaussian
 * weights (bound 1%); Q6_K (16 scales of 6 bits) near 2% (bound 4%); Q4_K
 * with 4-bit levels near 7-8% (bound 12%), matching the round-trip bounds
 * above with margin for llama.cpp's different (importance) search. */
static void compare_golden(const char *qfile, bool per_elem_q8)
{
    char pf[1024], pq[1024];
    wisp_test_shared_path(pf, sizeof pf, "golden/syn-llama-spm-f16.gguf");
    wisp_test_shared_path(pq, sizeof pq, qfile);
    wisp_model *mf, *mq;
    wisp_err err = {0};
    REQUIRE(wisp_model_open(pf, NULL, &mf, &err) == 0);
    REQUIRE(wisp_model_open(pq, NULL, &mq, &err) == 0);
    int compared = 0;
    for (int64_t i = 0; i < wisp_model_n_tensors(mq); i++) {
        const wisp_tensor *tq = wisp_model_tensor_at(mq, i);
        const wisp_tensor *tf = wisp_model_find_tensor(mf, tq->name);
        REQUIRE(tf);
        CHECK_EQ_INT(tq->ne[0], tf->ne[0]);
        CHECK_EQ_INT(tq->ne[1], tf->ne[1]);
        if (tq->type == WISP_TYPE_F32)
            continue;
        float *a = dequant_tensor(tf), *b = dequant_tensor(tq);
        int64_t n = tq->ne[0] * tq->ne[1];
        double se = 0, sx = 0;
        int64_t over = 0;
        for (int64_t k = 0; k < n; k++) {
            se += (double)(a[k] - b[k]) * (a[k] - b[k]);
            sx += (double)a[k] * a[k];
            if (per_elem_q8 && tq->type == WISP_TYPE_Q8_0) {
                const uint8_t *blk = (const uint8_t *)tq->data + (k / 32) * 34;
                float d = fabsf(h16(blk));
                /* llama.cpp rounds with the float scale and then stores it
                 * as a half: half a step plus up to 127 levels times the
                 * half's relative rounding error (2^-11). */
                if (fabsf(a[k] - b[k]) > d * (0.5f + 127.0f / 2048.0f) * 1.001f + 1e-7f)
                    over++;
            }
        }
        double rel = sqrt(se / sx);
        double bound = tq->type == WISP_TYPE_Q8_0 ? 0.01 : tq->type == WISP_TYPE_Q6_K ? 0.04 : 0.12;
        if (rel > bound || over)
            fprintf(stderr, "  %s (%s): relative RMS %.4f (bound %.2f), %lld over half a step\n",
                    tq->name, wisp_type_name(tq->type), rel, bound, (long long)over);
        CHECK(rel <= bound);
        CHECK(rel > 0);
        CHECK_EQ_INT(over, 0);
        compared++;
        free(a);
        free(b);
    }
    CHECK_EQ_INT(compared, 15); /* token_embd + 7 matrices x 2 layers */
    wisp_model_close(mf);
    wisp_model_close(mq);
}

TEST(golden_q8_0_matches_f16) { compare_golden("golden/syn-llama-spm-q8_0.gguf", true); }
TEST(golden_q4_k_m_matches_f16) { compare_golden("golden/syn-llama-spm-q4_k_m.gguf", false); }

/* Our quantizers on the golden F16 weights land near llama.cpp's. */
TEST(own_quantizers_on_golden_weights)
{
    char pf[1024];
    wisp_test_shared_path(pf, sizeof pf, "golden/syn-llama-spm-f16.gguf");
    wisp_model *m;
    wisp_err err = {0};
    REQUIRE(wisp_model_open(pf, NULL, &m, &err) == 0);
    const wisp_tensor *t = wisp_model_find_tensor(m, "blk.0.ffn_up.weight");
    REQUIRE(t);
    float *a = dequant_tensor(t);
    int64_t n = t->ne[0] * t->ne[1];
    float *b = malloc(sizeof(float) * (size_t)n);
    void *q = malloc((size_t)n * 4);
    int types[] = {WISP_TYPE_Q8_0, WISP_TYPE_Q6_K, WISP_TYPE_Q4_K};
    double bounds[] = {0.01, 0.04, 0.12};
    for (int i = 0; i < 3; i++) {
        const wisp_type_traits *tr = wisp_type_get(types[i]);
        tr->from_float(a, q, n);
        tr->to_float(q, b, n);
        double se = 0, sx = 0;
        for (int64_t k = 0; k < n; k++) {
            se += (double)(a[k] - b[k]) * (a[k] - b[k]);
            sx += (double)a[k] * a[k];
        }
        CHECK(sqrt(se / sx) <= bounds[i]);
    }
    free(a);
    free(b);
    free(q);
    wisp_model_close(m);
}
