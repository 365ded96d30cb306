/*
 * test_ops.c - the forward pass's element-wise ops against plain scalar
 * loops: the arithmetic ops.c vectorizes must give the scalar loop's bits
 * (add, RoPE, RMSNorm's scaling), stay within 1 ulp of them (RMSNorm's
 * reordered double sum) or be as accurate (SwiGLU's exp), and an element's
 * result must not depend on where in a row it sits or how long the row is.
 * Every case runs at each SIMD level this CPU has (simd_test_util.h).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/ops.h"
#include "harness.h"
#include "simd_test_util.h"

/* The scalar arithmetic's bits are the point: keep a * b + c two roundings,
 * as -std=c11 does for GCC (Clang would fuse it). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Distance in representable floats (0 between +0 and -0; NaN only equals
 * NaN). */
static int64_t ulps(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int64_t ia = (int32_t)bits(a), ib = (int32_t)bits(b);
    ia = ia < 0 ? INT32_MIN - ia : ia;
    ib = ib < 0 ? INT32_MIN - ib : ib;
    return ia > ib ? ia - ib : ib - ia;
}

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static float silu_expf(float g) { return g / (1.0f + expf(-g)); }

/* silu rounded once from double: the error the float formula is held to. */
static float silu_exact(float g) { return (float)((double)g / (1.0 + exp(-(double)g))); }

static void swiglu_is_as_accurate_as_expf_silu_case(void)
{
    /* Every 61st float of either sign in [2^-10, 87]: below, silu is g / 2
     * either way; beyond -87 the float formula itself loses silu to
     * underflow (e^-g overflows), and beyond 87 silu is g. g / (1 + e^-g)
     * with expf is within 2 ulp of silu there, and so must this be; it is
     * the same float arithmetic, so it is also the same bits but where expf
     * rounds differently (then by up to 4 ulp, as dividing by 1 + e
     * doubles a 1-ulp change of e in the worst case). */
    enum {
        BATCH = 4096
    };
    static float in[BATCH], g[BATCH], one[BATCH];
    for (int i = 0; i < BATCH; i++)
        one[i] = 1.0f;
    int64_t worst = 0, worst_expf = 0, worst_diff = 0, n = 0, same = 0;
    const uint32_t top = bits(87.0f);
    for (uint32_t u = bits(0x1p-10f); u <= top;) {
        int m = 0;
        for (; m < BATCH && u <= top; m += 2, u += 61) {
            in[m] = g[m] = from_bits(u);
            in[m + 1] = g[m + 1] = -from_bits(u);
        }
        wisp_ops_swiglu(g, one, m);
        for (int i = 0; i < m; i++) {
            const float exact = silu_exact(in[i]), ref = silu_expf(in[i]);
            const int64_t d = ulps(g[i], ref);
            worst = ulps(g[i], exact) > worst ? ulps(g[i], exact) : worst;
            worst_expf = ulps(ref, exact) > worst_expf ? ulps(ref, exact) : worst_expf;
            worst_diff = d > worst_diff ? d : worst_diff;
            same += d == 0;
        }
        n += m;
    }
    CHECK(worst_expf <= 2);
    CHECK(worst <= 2);
    CHECK(worst_diff <= 4);
    CHECK(same >= n - n / 1000);
}

static void swiglu_edges_are_expf_silu_bits_case(void)
{
    const float g[] = {0.0f,    -0.0f,    FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MIN, -FLT_MIN,
                       89.0f,   -89.0f,   103.9f,       -103.9f,       150.0f,  -150.0f,
                       FLT_MAX, -FLT_MAX, INFINITY,     -INFINITY,     NAN,     -NAN};
    enum {
        N = sizeof g / sizeof g[0]
    };
    float got[N], up[N];
    for (int i = 0; i < N; i++) {
        got[i] = g[i];
        up[i] = 1.0f;
    }
    wisp_ops_swiglu(got, up, N);
    for (int i = 0; i < N; i++) {
        const float want = silu_expf(g[i]);
        CHECK(isnan(want) ? isnan(got[i]) : bits(got[i]) == bits(want));
    }
}

static void swiglu_multiplies_silu_by_up_case(void)
{
    enum {
        N = 67
    };
    uint64_t s = 9;
    float g[N], up[N], one[N], silu[N];
    for (int i = 0; i < N; i++) {
        g[i] = silu[i] = 20.0f * rnd(&s);
        up[i] = 3.0f * rnd(&s);
        one[i] = 1.0f;
    }
    wisp_ops_swiglu(g, up, N);
    wisp_ops_swiglu(silu, one, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(bits(g[i]), bits(silu[i] * up[i]));
}

static void swiglu_element_does_not_depend_on_its_place_case(void)
{
    enum {
        N = 53
    };
    uint64_t s = 7;
    float g[N], up[N], all[N];
    for (int i = 0; i < N; i++) {
        g[i] = 12.0f * rnd(&s);
        up[i] = rnd(&s);
    }
    memcpy(all, g, sizeof all);
    wisp_ops_swiglu(all, up, N);
    for (int off = 0; off < N; off++)
        for (int len = 1; off + len <= N; len += 5) {
            float part[N];
            memcpy(part, g + off, (size_t)len * sizeof(float));
            wisp_ops_swiglu(part, up + off, len);
            for (int i = 0; i < len; i++)
                CHECK_EQ_INT(bits(part[i]), bits(all[off + i]));
        }
}

/* ggml's rms_norm: float squares summed serially in double. */
static void rmsnorm_ref(float *out, const float *x, const float *w, int n, float eps)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

static void rmsnorm_matches_the_serial_sum_case(void)
{
    const int sizes[] = {1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 128, 1000, 1024, 2816};
    uint64_t s = 11;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int n = sizes[k];
        float *x = malloc((size_t)n * 4), *w = malloc((size_t)n * 4);
        float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
        REQUIRE(x && w && got && want);
        for (int rep = 0; rep < 20; rep++) {
            const float mag = rep % 2 ? 1e-3f : 30.0f;
            for (int i = 0; i < n; i++) {
                x[i] = mag * rnd(&s);
                w[i] = 1.0f + 0.5f * rnd(&s);
            }
            rmsnorm_ref(want, x, w, n, 1e-6f);
            wisp_ops_rmsnorm(got, x, w, n, 1e-6f);
            int64_t worst = 0;
            for (int i = 0; i < n; i++)
                worst = ulps(got[i], want[i]) > worst ? ulps(got[i], want[i]) : worst;
            CHECK(worst <= 1);
            wisp_ops_rmsnorm(x, x, w, n, 1e-6f); /* in place */
            CHECK(memcmp(x, got, (size_t)n * 4) == 0);
        }
        free(x);
        free(w);
        free(got);
        free(want);
    }
}

static void add_matches_the_scalar_loop_case(void)
{
    uint64_t s = 3;
    for (int n = 0; n <= 70; n++) {
        float x[70], y[70], want[70];
        for (int i = 0; i < n; i++) {
            x[i] = rnd(&s) * 1e3f;
            y[i] = rnd(&s);
            want[i] = x[i] + y[i];
        }
        wisp_ops_add(x, y, n);
        CHECK(memcmp(x, want, (size_t)n * 4) == 0);
    }
}

static void rope_apply_ref(const wisp_rope *r, const float *cache, float *x)
{
    for (int i0 = 0; i0 < r->n_dims; i0 += 2) {
        const float c = cache[i0], s = cache[i0 + 1];
        const int a = r->layout == WISP_ROPE_NEOX ? i0 / 2 : i0;
        const int b = r->layout == WISP_ROPE_NEOX ? i0 / 2 + r->n_dims / 2 : i0 + 1;
        const float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

static void rope_apply_matches_the_scalar_loop_case(void)
{
    const struct {
        int head_dim, rope_dim;
    } shapes[] = {{16, 12}, {16, 16},  {64, 32},   {64, 64},
                  {80, 80}, {128, 64}, {128, 128}, {256, 256}};
    uint64_t s = 5;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int layout = 0; layout < 2; layout++) {
            wisp_model_config c;
            memset(&c, 0, sizeof c);
            c.head_dim = shapes[k].head_dim;
            c.rope_dim = shapes[k].rope_dim;
            c.rope_layout = (wisp_rope_layout)layout;
            c.rope_freq_base = 1e6f;
            wisp_rope r;
            wisp_rope_init(&r, &c, NULL);
            float cache[256], x[256], want[256];
            for (int pos = 0; pos < 3000; pos += 997) {
                wisp_rope_cache(&r, pos, cache);
                for (int i = 0; i < c.head_dim; i++)
                    x[i] = want[i] = 4.0f * rnd(&s);
                rope_apply_ref(&r, cache, want);
                wisp_rope_apply(&r, cache, x);
                CHECK(memcmp(x, want, (size_t)c.head_dim * 4) == 0);
            }
        }
}

TEST(swiglu_is_as_accurate_as_expf_silu)
{
    at_every_level(swiglu_is_as_accurate_as_expf_silu_case);
}

TEST(swiglu_edges_are_expf_silu_bits) { at_every_level(swiglu_edges_are_expf_silu_bits_case); }

TEST(swiglu_multiplies_silu_by_up) { at_every_level(swiglu_multiplies_silu_by_up_case); }

TEST(swiglu_element_does_not_depend_on_its_place)
{
    at_every_level(swiglu_element_does_not_depend_on_its_place_case);
}

TEST(rmsnorm_matches_the_serial_sum) { at_every_level(rmsnorm_matches_the_serial_sum_case); }

TEST(add_matches_the_scalar_loop) { at_every_level(add_matches_the_scalar_loop_case); }

TEST(rope_apply_matches_the_scalar_loop)
{
    at_every_level(rope_apply_matches_the_scalar_loop_case);
}
