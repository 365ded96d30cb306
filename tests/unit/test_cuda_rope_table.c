/*
 * test_cuda_rope_table.c - the CUDA engine's host-side RoPE table
 * (engine/cuda/rope_table.h) against the CPU engine's RoPE: the angle the
 * kernel computes from each entry (kernels/rope.cu, written out here) must
 * give the CPU's cos and sin, with llama-3 rope_freqs factors, linear
 * scaling and YaRN. Runs in every build: no GPU is involved.
 */
#include <math.h>
#include <string.h>

#include "engine/cpu/ops.h"
#include "engine/cuda/rope_table.h"
#include "harness.h"

#define HEAD 64

static wisp_model_config config(void)
{
    wisp_model_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = HEAD;
    c.rope_dim = HEAD;
    c.rope_freq_base = 500000.0f;
    c.n_ctx_train = 8192;
    return c;
}

/* kernels/rope.cu's angle for pair i at pos, as cos and sin. */
static void kernel_angle(const float *tab, const wisp_rope_table_params *p, int i, int pos,
                         float *cs, float *sn)
{
    const float f = tab[2 * i], mix = tab[2 * i + 1];
    const float theta_extrap = (float)pos * f;
    float theta = p->freq_scale * theta_extrap;
    if (mix != 0.0f)
        theta = theta * (1.0f - mix) + theta_extrap * mix;
    *cs = cosf(theta) * p->mscale;
    *sn = sinf(theta) * p->mscale;
}

/* Largest difference between the table's cos/sin and the CPU's over
 * positions up to 1024. */
static double worst(const wisp_model_config *c, const float *ff)
{
    float tab[HEAD];
    wisp_rope_table_params p;
    wisp_rope_table_build(c, ff, tab, &p);
    wisp_rope r;
    wisp_rope_init(&r, c, ff);
    float cache[HEAD];
    double bad = 0;
    static const int pos[] = {0, 1, 2, 7, 100, 511, 1024};
    for (size_t k = 0; k < sizeof pos / sizeof pos[0]; k++) {
        wisp_rope_cache(&r, pos[k], cache);
        for (int i = 0; i < wisp_rope_table_pairs(c); i++) {
            float cs, sn;
            kernel_angle(tab, &p, i, pos[k], &cs, &sn);
            bad = fmax(bad, fabs(cs - cache[2 * i]));
            bad = fmax(bad, fabs(sn - cache[2 * i + 1]));
        }
    }
    return bad;
}

/* Llama 3.1's factors: 1 for high frequencies, 8 for low ones, smooth in
 * between (what rope_freqs.weight holds). */
static void llama3_factors(float *ff, int n)
{
    for (int i = 0; i < n; i++)
        ff[i] = i < n / 4   ? 1.0f
                : i < n / 2 ? 1.0f + 7.0f * (float)(i - n / 4) / (float)(n / 4)
                            : 8.0f;
}

TEST(table_matches_the_cpu_rope_with_rope_freqs)
{
    wisp_model_config c = config();
    float ff[HEAD / 2];
    llama3_factors(ff, HEAD / 2);
    CHECK(worst(&c, ff) < 2e-3);
    /* The table itself: pair i is base^(-2i/d) / factor i. */
    float tab[HEAD];
    wisp_rope_table_params p;
    wisp_rope_table_build(&c, ff, tab, &p);
    for (int i = 0; i < HEAD / 2; i++) {
        double want = pow(500000.0, -2.0 * i / HEAD) / ff[i];
        CHECK(fabs(tab[2 * i] - want) <= 1e-5 * want);
        CHECK(tab[2 * i + 1] == 0.0f);
    }
    /* A table without the factors is far off: the check can fail. */
    wisp_rope r;
    wisp_rope_init(&r, &c, ff);
    float cache[HEAD], cs, sn, plain[HEAD];
    wisp_rope_table_build(&c, NULL, plain, &p);
    wisp_rope_cache(&r, 1000, cache);
    /* pair 16: factor 8, 1.41 rad at pos 1000 without it, 0.18 with it */
    kernel_angle(plain, &p, 16, 1000, &cs, &sn);
    CHECK(fabs(cs - cache[32]) + fabs(sn - cache[33]) > 0.5);
}

TEST(table_matches_without_factors_linear_and_yarn)
{
    wisp_model_config c = config();
    CHECK(worst(&c, NULL) < 2e-3);
    c.rope_scaling = WISP_ROPE_SCALING_LINEAR;
    c.rope_scale_factor = 4.0f;
    CHECK(worst(&c, NULL) < 2e-3);
    c.rope_scaling = WISP_ROPE_SCALING_YARN;
    c.rope_orig_ctx = 4096;
    CHECK(worst(&c, NULL) < 2e-3);
    float ff[HEAD / 2];
    llama3_factors(ff, HEAD / 2);
    CHECK(worst(&c, ff) < 2e-3);
    /* A partial rotation (rope_dim < head_dim) and the NeoX layout. */
    c = config();
    c.rope_dim = 32;
    c.rope_layout = WISP_ROPE_NEOX;
    CHECK_EQ_INT(wisp_rope_table_pairs(&c), 16);
    CHECK(worst(&c, ff) < 2e-3);
    float tab[HEAD];
    wisp_rope_table_params p;
    wisp_rope_table_build(&c, ff, tab, &p);
    CHECK_EQ_INT(p.rope_dim, 32);
    CHECK_EQ_INT(p.neox, 1);
    CHECK_EQ_INT(p.head_dim, HEAD);
}
