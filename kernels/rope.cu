/*
 * rope.cu - rotary position embedding, in place, both layouts.
 *
 * One thread per rotated pair of one head of one token. The per-pair base
 * frequency and YaRN ramp come from a small table the host computes once
 * per model (so the kernel has no pow/log), and the angle is formed exactly
 * as ggml's rope_yarn (and the CPU engine) does:
 *   theta_extrap = pos * f_i
 *   theta        = freq_scale * theta_extrap, blended with theta_extrap by
 *                  the ramp mix for YaRN
 *   (cos, sin)   = (cos theta, sin theta) * mscale
 * with full-precision sincosf (never the fast intrinsics: positions reach
 * tens of thousands of radians). Normal layout rotates (x[2i], x[2i+1]);
 * NeoX rotates (x[i], x[i + rope_dim/2]). Dimensions past rope_dim stay.
 */
#include "kcommon.cuh"

static __global__ void k_rope(float *x, const int32_t *__restrict__ pos, int64_t n_pairs_total,
                              int n_heads, int head_dim, int half, int neox, float freq_scale,
                              float mscale, const float *__restrict__ tab)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n_pairs_total)
        return;
    const int i = (int)(idx % half);
    const int64_t th = idx / half; /* token * n_heads + head */
    const int64_t tok = th / n_heads;
    const float f = tab[2 * i], mix = tab[2 * i + 1];
    const float theta_extrap = (float)pos[tok] * f;
    float theta = freq_scale * theta_extrap;
    if (mix != 0.0f)
        theta = theta * (1.0f - mix) + theta_extrap * mix;
    float sn, cs;
    sincosf(theta, &sn, &cs);
    cs *= mscale;
    sn *= mscale;
    float *xh = x + th * head_dim;
    const int i0 = neox ? i : 2 * i;
    const int i1 = neox ? i + half : 2 * i + 1;
    const float x0 = xh[i0], x1 = xh[i1];
    xh[i0] = x0 * cs - x1 * sn;
    xh[i1] = x0 * sn + x1 * cs;
}

extern "C" int wisp_k_rope(float *x, const int32_t *pos, int n_tok, int n_heads,
                           const wisp_k_rope_params *p, cudaStream_t s, wisp_err *err)
{
    if (p->rope_dim <= 0 || p->rope_dim % 2 != 0 || p->rope_dim > p->head_dim || n_heads <= 0)
        return wisp_err_set(err, WISP_E_INVALID, "rope: bad shape (rope_dim %d, head_dim %d)",
                            p->rope_dim, p->head_dim);
    if (n_tok <= 0)
        return 0;
    const int half = p->rope_dim / 2;
    const int64_t total = (int64_t)n_tok * n_heads * half;
    const int threads = 256;
    k_rope<<<(unsigned)k_cdiv(total, threads), threads, 0, s>>>(
        x, pos, total, n_heads, p->head_dim, half, p->neox, p->freq_scale, p->mscale, p->tab);
    return k_check_launch("rope", err);
}
