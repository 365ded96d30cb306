/*
 * ops.c - the forward pass's element-wise ops at the active SIMD level,
 * and the ops that are scalar glue at every level (embedding lookup, RoPE
 * parameters and angle cache).
 *
 * The vector ops are written once on lanes (ops_lanes.h) and built per
 * level in files compiled with that level's instructions only, so the
 * binary runs on any x86-64 the build's baseline covers and WISP_SIMD (or
 * wisp_cpu_simd_force) really selects the code that runs.
 */
#include "engine/cpu/ops.h"

#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_types.h"
#include "engine/cpu/ops_int.h"
#include "model/types.h"

static const wisp_ops_level *const LEVELS[WISP_SIMD_COUNT] = {
    [WISP_SIMD_SCALAR] = &wisp_ops_scalar,
    [WISP_SIMD_AVX2] = &wisp_ops_avx2,
    [WISP_SIMD_AVX512] = &wisp_ops_avx512,
};

static const wisp_ops_level *level(void) { return LEVELS[wisp_cpu_simd_active()]; }

void wisp_ops_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    level()->rmsnorm(out, x, w, n, eps);
}

void wisp_ops_add(float *x, const float *y, int64_t n) { level()->add(x, y, n); }

void wisp_ops_swiglu(float *gate, const float *up, int64_t n) { level()->swiglu(gate, up, n); }

void wisp_rope_apply(const wisp_rope *r, const float *cache, float *x)
{
    level()->rope_apply(r, cache, x);
}

void wisp_ops_embed_row(const wisp_tensor *embd, int32_t token, float *out)
{
    int64_t n = embd->ne[0];
    size_t row = wisp_type_row_size(embd->type, n);
    const uint8_t *src = (const uint8_t *)embd->data + (size_t)token * row;
    wisp_type_get(embd->type)->to_float(src, out, n);
}

/* ----------------------------------------------------------------- RoPE */

/* ggml_rope_yarn_corr_dim: the dimension whose wavelength spans n_rot
 * turns over the original context. */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
    return n_dims * logf((float)n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

void wisp_rope_init(wisp_rope *r, const wisp_model_config *c, const float *freq_factors)
{
    memset(r, 0, sizeof(*r));
    r->freq_factors = freq_factors;
    r->layout = c->rope_layout;
    r->head_dim = c->head_dim;
    r->n_dims = c->rope_dim > 0 && c->rope_dim <= c->head_dim ? c->rope_dim : c->head_dim;
    float base = c->rope_freq_base > 0 ? c->rope_freq_base : 10000.0f;
    r->theta_scale = powf(base, -2.0f / (float)r->n_dims);
    r->freq_scale = 1.0f;
    if (c->rope_scaling != WISP_ROPE_SCALING_NONE && c->rope_scale_factor > 0)
        r->freq_scale = 1.0f / c->rope_scale_factor;
    r->attn_factor = 1.0f;
    if (c->rope_scaling == WISP_ROPE_SCALING_YARN) {
        r->ext_factor = c->yarn_ext_factor > 0 ? c->yarn_ext_factor : 1.0f;
        if (c->yarn_attn_factor > 0)
            r->attn_factor = c->yarn_attn_factor;
        float beta_fast = c->yarn_beta_fast > 0 ? c->yarn_beta_fast : 32.0f;
        float beta_slow = c->yarn_beta_slow > 0 ? c->yarn_beta_slow : 1.0f;
        int orig = c->rope_orig_ctx > 0 ? c->rope_orig_ctx : c->n_ctx_train;
        if (orig <= 0)
            orig = 4096;
        float start = floorf(yarn_corr_dim(r->n_dims, orig, beta_fast, base));
        float end = ceilf(yarn_corr_dim(r->n_dims, orig, beta_slow, base));
        r->corr_dims[0] = fmaxf(0.0f, start);
        r->corr_dims[1] = fminf((float)(r->n_dims - 1), end);
    }
}

static float yarn_ramp(float low, float high, int i0)
{
    const float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

void wisp_rope_cache(const wisp_rope *r, int pos, float *cache)
{
    float theta_extrap = (float)pos;
    for (int i0 = 0; i0 < r->n_dims; i0 += 2) {
        const float ext = r->freq_factors ? theta_extrap / r->freq_factors[i0 / 2] : theta_extrap;
        float theta = r->freq_scale * ext;
        float mscale = r->attn_factor;
        if (r->ext_factor != 0.0f) {
            float mix = yarn_ramp(r->corr_dims[0], r->corr_dims[1], i0) * r->ext_factor;
            theta = theta * (1 - mix) + ext * mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
        }
        cache[i0] = cosf(theta) * mscale;
        cache[i0 + 1] = sinf(theta) * mscale;
        theta_extrap *= r->theta_scale;
    }
}
