/*
 * rope_table.h - the CUDA engine's RoPE table, built on the host.
 *
 * Plain C with no CUDA header, and compiled in every build (not only
 * make CUDA=1), so its arithmetic is tested against the CPU engine's RoPE
 * on any machine. The kernel (kernels/rope.cu) turns an entry into an
 * angle: theta_extrap = pos * tab[2i]; theta = freq_scale * theta_extrap,
 * mixed with theta_extrap by tab[2i+1] (YaRN); cos and sin times mscale.
 */
#ifndef WISP_CUDA_ROPE_TABLE_H
#define WISP_CUDA_ROPE_TABLE_H

#include "model/model.h"

typedef struct wisp_rope_table_params {
    int head_dim;
    int rope_dim; /* even, <= head_dim */
    int neox;
    float freq_scale;
    float mscale;
} wisp_rope_table_params;

/* Rotated pairs of c's RoPE (its rotated dimensions / 2). */
int wisp_rope_table_pairs(const wisp_model_config *c);

/* Fills tab (2 floats per pair: base frequency, YaRN ramp mix) and p with
 * the CPU engine's formulas (wisp_rope_init / wisp_rope_cache, ggml's
 * rope_yarn). freq_factors (pairs floats, or NULL) are the llama-3
 * rope_freqs.weight divisors: pair i's frequency is divided by
 * freq_factors[i], as the CPU engine divides its angle. */
void wisp_rope_table_build(const wisp_model_config *c, const float *freq_factors, float *tab,
                           wisp_rope_table_params *p);

#endif
