/*
 * ops.c - element-wise and per-row operations of the CPU forward pass.
 *
 * Written to compute what ggml's CPU ops compute, in the same order, since
 * the golden tests compare logits with llama.cpp at 0.05. These are O(n)
 * per row next to the O(n^2) matrix products, so they stay plain C that the
 * compiler vectorizes; the hot loops live in matmul and attention.
 */
#include "engine/cpu/ops.h"

#include <math.h>
#include <string.h>

#include "model/types.h"

void wisp_ops_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

void wisp_ops_add(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

void wisp_ops_swiglu(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
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

void wisp_rope_apply(const wisp_rope *r, const float *cache, float *x)
{
    if (r->layout == WISP_ROPE_NEOX) {
        const int half = r->n_dims / 2;
        for (int i0 = 0; i0 < r->n_dims; i0 += 2) {
            const float c = cache[i0], s = cache[i0 + 1];
            const int ic = i0 / 2;
            const float x0 = x[ic], x1 = x[ic + half];
            x[ic] = x0 * c - x1 * s;
            x[ic + half] = x0 * s + x1 * c;
        }
    } else {
        for (int i0 = 0; i0 < r->n_dims; i0 += 2) {
            const float c = cache[i0], s = cache[i0 + 1];
            const float x0 = x[i0], x1 = x[i0 + 1];
            x[i0] = x0 * c - x1 * s;
            x[i0 + 1] = x0 * s + x1 * c;
        }
    }
}
