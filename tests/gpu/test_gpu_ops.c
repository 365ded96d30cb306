/*
 * test_gpu_ops.c - the row and elementwise kernels against CPU references:
 * RMSNorm (both the warp-per-row and block-per-row shapes), RoPE (normal
 * and NeoX, partial rotation, linear and YaRN tables, large positions),
 * SwiGLU, residual and bias adds, softmax, the embedding lookup for every
 * weight type, row gathers, argmax and top-k (with ties and NaNs). Sizes
 * are chosen to straddle the launch shapes (1, 31, 33, 1000, 1024, 4097).
 */
#include "gpu_test.h"

static float *dl_floats(const float *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    gt_download(h, d, n * sizeof(float));
    return h;
}

TEST(rmsnorm_row_shapes)
{
    GPU_REQUIRE();
    const int ns[] = {1, 8, 33, 1000, 1024, 4097};
    const int rows[] = {1, 5, 17};
    int bad = 0;
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
        for (size_t b = 0; b < sizeof(rows) / sizeof(rows[0]); b++) {
            const int n = ns[a], r = rows[b];
            float *x = malloc(sizeof(float) * (size_t)(n * r)), *w = malloc(sizeof(float) * n);
            gt_floats(x, (size_t)(n * r), -3, 3);
            gt_floats(w, (size_t)n, 0.5f, 1.5f);
            float *ref = malloc(sizeof(float) * (size_t)(n * r));
            for (int i = 0; i < r; i++) {
                double ss = 0;
                for (int j = 0; j < n; j++)
                    ss += (double)x[i * n + j] * x[i * n + j];
                double sc = 1.0 / sqrt(ss / n + 1e-6);
                for (int j = 0; j < n; j++)
                    ref[i * n + j] = (float)(x[i * n + j] * sc * w[j]);
            }
            float *dx = gt_upload(x, sizeof(float) * (size_t)(n * r));
            float *dw = gt_upload(w, sizeof(float) * n);
            float *dy = gt_dev(sizeof(float) * (size_t)(n * r));
            K_OK(wisp_k_rmsnorm(dx, dw, dy, r, n, 1e-6f, 0, KERR));
            float *y = dl_floats(dy, (size_t)(n * r));
            bad += gt_compare("rmsnorm", y, ref, (size_t)(n * r), 1e-5, 1e-5);
            /* in place, as QK-norm uses it */
            K_OK(wisp_k_rmsnorm(dx, dw, dx, r, n, 1e-6f, 0, KERR));
            float *y2 = dl_floats(dx, (size_t)(n * r));
            bad += gt_compare("rmsnorm in place", y2, ref, (size_t)(n * r), 1e-5, 1e-5);
            free(x), free(w), free(ref), free(y), free(y2);
            cudaFree(dx), cudaFree(dw), cudaFree(dy);
        }
    CHECK_EQ_INT(bad, 0);
}

/* CPU RoPE written from the definition: angle pos * base^(-2i/d) scaled and
 * blended as YaRN does, in double. */
static void rope_ref(float *x, int n_tok, int n_heads, int hd, int rd, int neox, const int *pos,
                     const float *tab, float freq_scale, float mscale)
{
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < rd / 2; i++) {
                double te = (double)pos[t] * tab[2 * i];
                double th = freq_scale * te;
                if (tab[2 * i + 1] != 0)
                    th = th * (1 - tab[2 * i + 1]) + te * tab[2 * i + 1];
                double c = cos(th) * mscale, s = sin(th) * mscale;
                int i0 = neox ? i : 2 * i, i1 = neox ? i + rd / 2 : 2 * i + 1;
                double a = v[i0], b = v[i1];
                v[i0] = (float)(a * c - b * s);
                v[i1] = (float)(a * s + b * c);
            }
        }
}

TEST(rope_layouts_and_scaling)
{
    GPU_REQUIRE();
    struct {
        int hd, rd, neox, yarn;
        float fs;
    } cases[] = {
        {64, 64, 0, 0, 1.0f}, {64, 64, 1, 0, 1.0f},   {128, 64, 1, 0, 0.25f},
        {8, 8, 0, 0, 1.0f},   {96, 32, 0, 1, 0.125f}, {128, 128, 1, 1, 0.25f},
    };
    const int n_tok = 7, n_heads = 3;
    const int pos[7] = {0, 1, 2, 17, 511, 4095, 32767};
    int bad = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const int hd = cases[k].hd, rd = cases[k].rd;
        float tab[256];
        for (int i = 0; i < rd / 2; i++) {
            tab[2 * i] = powf(10000.0f, -2.0f * i / rd);
            tab[2 * i + 1] = cases[k].yarn ? (i < 4 ? 1.0f : i < 10 ? 0.5f : 0.0f) : 0.0f;
        }
        const float mscale = cases[k].yarn ? 1.2f : 1.0f;
        const size_t n = (size_t)n_tok * n_heads * hd;
        float *x = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
        gt_floats(x, n, -1, 1);
        memcpy(ref, x, n * sizeof(float));
        rope_ref(ref, n_tok, n_heads, hd, rd, cases[k].neox, pos, tab, cases[k].fs, mscale);
        float *dx = gt_upload(x, n * sizeof(float));
        int32_t *dpos = gt_upload(pos, sizeof(pos));
        float *dtab = gt_upload(tab, sizeof(float) * (size_t)rd);
        wisp_k_rope_params p = {hd, rd, cases[k].neox, cases[k].fs, mscale, dtab};
        K_OK(wisp_k_rope(dx, dpos, n_tok, n_heads, &p, 0, KERR));
        float *y = dl_floats(dx, n);
        /* positions up to 32767 rad: float angle rounding ~ 4e-3 absolute */
        bad += gt_compare("rope", y, ref, n, 1e-2, 1e-3);
        free(x), free(ref), free(y);
        cudaFree(dx), cudaFree(dpos), cudaFree(dtab);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(swiglu_add_bias)
{
    GPU_REQUIRE();
    const int n_rows = 5, n = 1031;
    const size_t N = (size_t)n_rows * n;
    float *g = malloc(N * 4), *u = malloc(N * 4), *b = malloc((size_t)n * 4), *ref = malloc(N * 4);
    gt_floats(g, N, -8, 8);
    gt_floats(u, N, -2, 2);
    gt_floats(b, (size_t)n, -1, 1);
    float *dg = gt_upload(g, N * 4), *du = gt_upload(u, N * 4), *db = gt_upload(b, (size_t)n * 4);
    float *dout = gt_dev(N * 4);
    K_OK(wisp_k_swiglu(dg, du, dout, (int64_t)N, 0, KERR));
    for (size_t i = 0; i < N; i++)
        ref[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
    float *y = dl_floats(dout, N);
    int bad = gt_compare("swiglu", y, ref, N, 1e-6, 1e-5);
    free(y);
    K_OK(wisp_k_add(dout, du, (int64_t)N, 0, KERR));
    for (size_t i = 0; i < N; i++)
        ref[i] += u[i];
    y = dl_floats(dout, N);
    bad += gt_compare("add", y, ref, N, 1e-6, 1e-5);
    free(y);
    K_OK(wisp_k_add_bias(dout, db, n_rows, n, 0, KERR));
    for (size_t i = 0; i < N; i++)
        ref[i] += b[i % (size_t)n];
    y = dl_floats(dout, N);
    bad += gt_compare("add_bias", y, ref, N, 1e-6, 1e-5);
    CHECK_EQ_INT(bad, 0);
    free(g), free(u), free(b), free(ref), free(y);
    cudaFree(dg), cudaFree(du), cudaFree(db), cudaFree(dout);
}

TEST(softmax_rows)
{
    GPU_REQUIRE();
    const int ns[] = {1, 31, 1000, 151936};
    int bad = 0;
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        const int n = ns[k], r = 3;
        const size_t N = (size_t)n * r;
        float *x = malloc(N * 4), *ref = malloc(N * 4);
        gt_floats(x, N, -30, 30);
        x[0] = -INFINITY; /* a masked logit (the whole row when n is 1) */
        for (int j = 0; j < n; j++)
            x[(size_t)n + j] = -INFINITY; /* row 1: everything masked */
        for (int i = 0; i < r; i++) {
            double m = -INFINITY, s = 0;
            for (int j = 0; j < n; j++)
                m = fmax(m, x[(size_t)i * n + j]);
            /* An all -inf row has no distribution: the kernel writes zeros
             * (exp(-inf - -inf) would be NaN here). */
            if (m == -INFINITY) {
                for (int j = 0; j < n; j++)
                    ref[(size_t)i * n + j] = 0.0f;
                continue;
            }
            for (int j = 0; j < n; j++)
                s += exp(x[(size_t)i * n + j] - m);
            for (int j = 0; j < n; j++)
                ref[(size_t)i * n + j] = (float)(exp(x[(size_t)i * n + j] - m) / s);
        }
        float *dx = gt_upload(x, N * 4);
        K_OK(wisp_k_softmax(dx, r, n, 0, KERR));
        float *y = dl_floats(dx, N);
        bad += gt_compare("softmax", y, ref, N, 1e-7, 1e-4);
        free(x), free(ref), free(y);
        cudaFree(dx);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(embed_every_type_and_gather)
{
    GPU_REQUIRE();
    int bad = 0;
    for (int ti = 0; ti < GT_N_TYPES; ti++) {
        const gt_type *t = &GT_TYPES[ti];
        const int64_t n_embd = t->qk == 256 ? 512 : t->qk == 32 ? 96 : (ti == 0 ? 172 : 64);
        const int64_t vocab = 50;
        float *ref = malloc(sizeof(float) * (size_t)(n_embd * vocab));
        size_t bytes;
        void *w = gt_random_weight(t, n_embd, vocab, 1.0f, ref, &bytes);
        const int32_t toks[] = {0, 49, 7, 7, 23};
        const int nt = 5;
        void *dw = gt_upload(w, bytes);
        int32_t *dt = gt_upload(toks, sizeof(toks));
        float *dout = gt_dev(sizeof(float) * (size_t)(n_embd * nt));
        K_OK(wisp_k_embed(dw, t->type, n_embd, dt, nt, dout, 0, KERR));
        float *y = dl_floats(dout, (size_t)(n_embd * nt));
        float *want = malloc(sizeof(float) * (size_t)(n_embd * nt));
        for (int i = 0; i < nt; i++)
            memcpy(want + i * n_embd, ref + toks[i] * n_embd, sizeof(float) * (size_t)n_embd);
        bad += gt_compare(t->name, y, want, (size_t)(n_embd * nt), 0, 0);
        /* gather rows 4, 0, 2 of the embedded rows */
        const int32_t rows[] = {4, 0, 2};
        int32_t *drows = gt_upload(rows, sizeof(rows));
        float *dg = gt_dev(sizeof(float) * (size_t)(n_embd * 3));
        K_OK(wisp_k_gather_rows(dout, drows, 3, n_embd, dg, 0, KERR));
        float *g = dl_floats(dg, (size_t)(n_embd * 3));
        for (int i = 0; i < 3; i++)
            bad +=
                gt_compare("gather", g + i * n_embd, want + rows[i] * n_embd, (size_t)n_embd, 0, 0);
        free(ref), free(w), free(y), free(want), free(g);
        cudaFree(dw), cudaFree(dt), cudaFree(dout), cudaFree(drows), cudaFree(dg);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(argmax_and_topk_with_ties_and_nans)
{
    GPU_REQUIRE();
    const int n = 151936 / 4 + 3, r = 4, k = 40;
    const size_t N = (size_t)n * r;
    float *x = malloc(N * 4);
    for (size_t i = 0; i < N; i++)
        x[i] = (float)(gt_u32() % 1000) / 10.0f; /* many ties */
    x[(size_t)1 * n + 5] = NAN;
    x[(size_t)2 * n + 0] = NAN;
    x[(size_t)3 * n + n - 1] = 1000.0f;
    float *dx = gt_upload(x, N * 4);
    int32_t *di = gt_dev((size_t)r * k * 4);
    float *dv = gt_dev((size_t)r * k * 4);
    K_OK(wisp_k_argmax(dx, r, n, di, dv, 0, KERR));
    int32_t am[4];
    gt_download(am, di, sizeof(am));
    for (int i = 0; i < r; i++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            float v = x[(size_t)i * n + j];
            if (!isnan(v) && (best < 0 || v > x[(size_t)i * n + best]))
                best = j;
        }
        CHECK_EQ_INT(am[i], best);
    }
    K_OK(wisp_k_topk(dx, r, n, k, di, dv, 0, KERR));
    int32_t *ti = malloc((size_t)r * k * 4);
    float *tv = malloc((size_t)r * k * 4);
    gt_download(ti, di, (size_t)r * k * 4);
    gt_download(tv, dv, (size_t)r * k * 4);
    char *used = calloc((size_t)n, 1);
    for (int i = 0; i < r; i++) {
        memset(used, 0, (size_t)n);
        for (int j = 0; j < k; j++) {
            /* reference: best unused by (value desc, index asc) */
            int best = -1;
            for (int q = 0; q < n; q++) {
                float v = x[(size_t)i * n + q];
                if (used[q] || isnan(v))
                    continue;
                if (best < 0 || v > x[(size_t)i * n + best])
                    best = q;
            }
            used[best] = 1;
            CHECK_EQ_INT(ti[i * k + j], best);
            CHECK(tv[i * k + j] == x[(size_t)i * n + best]);
        }
    }
    wisp_err err = {0};
    CHECK(wisp_k_topk(dx, r, n, WISP_K_TOPK_MAX + 1, di, dv, 0, &err) == WISP_E_INVALID);
    free(x), free(ti), free(tv), free(used);
    cudaFree(dx), cudaFree(di), cudaFree(dv);
}
