/*
 * ops.h - the element-wise and per-row operations of the CPU forward pass.
 *
 * Everything here except the matrix products (matmul.h) and attention
 * (attention.h): RMSNorm, RoPE, SwiGLU, residual adds, the embedding row
 * lookup. Each follows the arithmetic of ggml's CPU ops (RMSNorm sums
 * squares in double, RoPE builds its angles by repeated multiplication as
 * ggml_rope_cache_init does) so that logits agree with llama.cpp closely.
 * Private to src/engine/cpu.
 */
#ifndef WISP_OPS_H
#define WISP_OPS_H

#include <stdint.h>

#include "model/model.h"

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x. */
void wisp_ops_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* x[i] += y[i]. */
void wisp_ops_add(float *x, const float *y, int64_t n);

/* gate[i] = silu(gate[i]) * up[i]. */
void wisp_ops_swiglu(float *gate, const float *up, int64_t n);

/* Dequantizes row `token` of a (n_embd x vocab) embedding into out. */
void wisp_ops_embed_row(const wisp_tensor *embd, int32_t token, float *out);

/* RoPE parameters resolved once from the config, as llama.cpp resolves its
 * context parameters (freq_scale = 1/factor; YaRN's ext_factor defaults to
 * 1 when YaRN is asked for, its correction dims from beta_fast/beta_slow). */
typedef struct wisp_rope {
    wisp_rope_layout layout;
    int n_dims; /* dimensions rotated (even, <= head_dim) */
    int head_dim;
    float theta_scale; /* base^(-2/n_dims) */
    float freq_scale;
    float ext_factor;
    float attn_factor;
    float corr_dims[2];
    const float *freq_factors; /* (n_dims/2) llama-3 per-pair divisors, or NULL */
} wisp_rope;

/* freq_factors (n_dims/2 floats, or NULL) must outlive r. */
void wisp_rope_init(wisp_rope *r, const wisp_model_config *c, const float *freq_factors);
/* cache[2i], cache[2i+1] = cos, sin of pair i's angle at pos (n_dims floats). */
void wisp_rope_cache(const wisp_rope *r, int pos, float *cache);
/* Rotates one head vector (head_dim floats) in place with a cache. */
void wisp_rope_apply(const wisp_rope *r, const float *cache, float *x);

#endif
