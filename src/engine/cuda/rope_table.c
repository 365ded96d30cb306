/*
 * rope_table.c - the CUDA engine's host-side RoPE table: see rope_table.h.
 */
#include "engine/cuda/rope_table.h"

#include <math.h>

/* ggml_rope_yarn_corr_dim: the dimension whose wavelength spans n_rot
 * turns over the original context. */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
    return n_dims * logf((float)n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

static int rope_dims(const wisp_model_config *c)
{
    return c->rope_dim > 0 && c->rope_dim <= c->head_dim ? c->rope_dim : c->head_dim;
}

int wisp_rope_table_pairs(const wisp_model_config *c) { return rope_dims(c) / 2; }

void wisp_rope_table_build(const wisp_model_config *c, const float *freq_factors, float *tab,
                           wisp_rope_table_params *p)
{
    const int n_dims = rope_dims(c);
    const float base = c->rope_freq_base > 0 ? c->rope_freq_base : 10000.0f;
    const float theta_scale = powf(base, -2.0f / (float)n_dims);
    float freq_scale = 1.0f, attn_factor = 1.0f, ext_factor = 0.0f, corr[2] = {0, 0};
    if (c->rope_scaling != WISP_ROPE_SCALING_NONE && c->rope_scale_factor > 0)
        freq_scale = 1.0f / c->rope_scale_factor;
    if (c->rope_scaling == WISP_ROPE_SCALING_YARN) {
        ext_factor = c->yarn_ext_factor > 0 ? c->yarn_ext_factor : 1.0f;
        if (c->yarn_attn_factor > 0)
            attn_factor = c->yarn_attn_factor;
        const float beta_fast = c->yarn_beta_fast > 0 ? c->yarn_beta_fast : 32.0f;
        const float beta_slow = c->yarn_beta_slow > 0 ? c->yarn_beta_slow : 1.0f;
        int orig = c->rope_orig_ctx > 0 ? c->rope_orig_ctx : c->n_ctx_train;
        if (orig <= 0)
            orig = 4096;
        corr[0] = fmaxf(0.0f, floorf(yarn_corr_dim(n_dims, orig, beta_fast, base)));
        corr[1] = fminf((float)(n_dims - 1), ceilf(yarn_corr_dim(n_dims, orig, beta_slow, base)));
    }
    float f = 1.0f;
    for (int i = 0; i < n_dims / 2; i++) {
        float mix = 0.0f;
        if (ext_factor != 0.0f) {
            const float y = ((float)i - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
            mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
        }
        tab[2 * i] = freq_factors ? f / freq_factors[i] : f;
        tab[2 * i + 1] = mix;
        f *= theta_scale;
    }
    p->head_dim = c->head_dim;
    p->rope_dim = n_dims - n_dims % 2;
    p->neox = c->rope_layout == WISP_ROPE_NEOX;
    p->freq_scale = freq_scale;
    p->mscale = attn_factor;
    if (ext_factor != 0.0f)
        p->mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
}
