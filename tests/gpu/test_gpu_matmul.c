/*
 * test_gpu_matmul.c - the decode matvec, the F16 dequantizer and the cuBLAS
 * GEMM path against a CPU reference (double-precision dot products of the
 * exactly dequantized weights), for every weight type, on awkward sizes:
 * odd row counts (1, 7, 33, 257 - not multiples of the 4 rows a block
 * handles), rows of several blocks, float rows whose length is not a
 * multiple of 8 (the element-wise variants), and token counts that hit
 * every NC instantiation and the chunking (1, 3, 5, 8, 11, 37).
 *
 * Tolerance: a dot product's rounding error grows with sum |w_i x_i|, not
 * with |ref| (which may be near zero by cancellation), so each output is
 * checked against atol + rtol * sum|w_i x_i|: rtol 1e-5 for the F32
 * matvec, 2e-3 for the GEMM whose activations are rounded to F16, 1e-2
 * for BF16 activations.
 */
#include "gpu_test.h"

#include <cublas_v2.h>

typedef struct mm_case {
    const gt_type *t;
    int64_t n_in, n_out;
    int n_tok;
    float *ref_w;  /* n_out x n_in */
    float *x;      /* n_tok x n_in */
    double *ref_y; /* n_tok x n_out */
    double *mag;   /* sum |w x| */
    void *w_host;
    size_t w_bytes;
} mm_case;

static void mm_make(mm_case *c, const gt_type *t, int64_t n_in, int64_t n_out, int n_tok)
{
    memset(c, 0, sizeof(*c));
    c->t = t;
    c->n_in = n_in;
    c->n_out = n_out;
    c->n_tok = n_tok;
    c->ref_w = malloc(sizeof(float) * (size_t)(n_in * n_out));
    c->w_host = gt_random_weight(t, n_in, n_out, 1.0f, c->ref_w, &c->w_bytes);
    c->x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    gt_floats(c->x, (size_t)(n_in * n_tok), -1.0f, 1.0f);
    c->ref_y = malloc(sizeof(double) * (size_t)(n_out * n_tok));
    c->mag = malloc(sizeof(double) * (size_t)(n_out * n_tok));
    for (int t2 = 0; t2 < n_tok; t2++)
        for (int64_t o = 0; o < n_out; o++) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double p = (double)c->ref_w[o * n_in + i] * (double)c->x[t2 * n_in + i];
                s += p;
                m += fabs(p);
            }
            c->ref_y[t2 * n_out + o] = s;
            c->mag[t2 * n_out + o] = m;
        }
}

static void mm_free(mm_case *c)
{
    free(c->ref_w);
    free(c->x);
    free(c->ref_y);
    free(c->mag);
    free(c->w_host);
}

static int mm_check(const mm_case *c, const float *y, double rtol, const char *what)
{
    int bad = 0;
    for (int64_t i = 0; i < c->n_out * c->n_tok; i++) {
        double tol = 1e-5 + rtol * c->mag[i];
        if (!(fabs(y[i] - c->ref_y[i]) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "  %s %s %lldx%lld tok %d: y[%lld] = %.7g, want %.7g (tol %.3g)\n",
                        what, c->t->name, (long long)c->n_in, (long long)c->n_out, c->n_tok,
                        (long long)i, y[i], c->ref_y[i], tol);
            bad++;
        }
    }
    return bad;
}

/* Row lengths per type family that exercise several blocks per row. */
static int64_t pick_n_in(const gt_type *t, int variant)
{
    if (t->qk == 256)
        return variant ? 256 * 3 : 256;
    if (t->qk == 32)
        return variant ? 32 * 7 : 32;
    return variant ? 172 : 8 * 13; /* 172: not a multiple of 8 */
}

TEST(matvec_every_type_awkward_sizes)
{
    GPU_REQUIRE();
    const int64_t outs[] = {1, 7, 33, 257};
    const int toks[] = {1, 3, 5, 8, 11};
    int bad = 0;
    for (int ti = 0; ti < GT_N_TYPES; ti++) {
        for (int variant = 0; variant < 2; variant++) {
            for (size_t oi = 0; oi < sizeof(outs) / sizeof(outs[0]); oi++) {
                const int tok = toks[(ti + oi + (size_t)variant) % 5];
                mm_case c;
                gt_seed((uint64_t)(ti * 100 + variant * 10 + (int)oi));
                mm_make(&c, &GT_TYPES[ti], pick_n_in(&GT_TYPES[ti], variant), outs[oi], tok);
                void *dw = gt_upload(c.w_host, c.w_bytes);
                float *dx = gt_upload(c.x, sizeof(float) * (size_t)(c.n_in * tok));
                float *dy = gt_dev(sizeof(float) * (size_t)(c.n_out * tok));
                K_OK(wisp_k_matvec(dw, c.t->type, c.n_in, c.n_out, dx, tok, dy, 0, KERR));
                float *y = malloc(sizeof(float) * (size_t)(c.n_out * tok));
                gt_download(y, dy, sizeof(float) * (size_t)(c.n_out * tok));
                bad += mm_check(&c, y, 1e-5, "matvec");
                free(y);
                cudaFree(dw);
                cudaFree(dx);
                cudaFree(dy);
                mm_free(&c);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(dequant_f16_matches_reference)
{
    GPU_REQUIRE();
    int bad = 0;
    for (int ti = 0; ti < GT_N_TYPES; ti++) {
        const gt_type *t = &GT_TYPES[ti];
        const int64_t n_in = pick_n_in(t, 1), n_rows = 19, row0 = 5, take = 11;
        float *ref = malloc(sizeof(float) * (size_t)(n_in * n_rows));
        size_t bytes;
        gt_seed((uint64_t)ti + 7);
        void *w = gt_random_weight(t, n_in, n_rows, 1.0f, ref, &bytes);
        void *dw = gt_upload(w, bytes);
        uint16_t *dout = gt_dev(2 * (size_t)(n_in * take));
        K_OK(wisp_k_dequant_f16(dw, t->type, n_in, row0, take, dout, 0, KERR));
        uint16_t *h = malloc(2 * (size_t)(n_in * take));
        gt_download(h, dout, 2 * (size_t)(n_in * take));
        float *got = malloc(sizeof(float) * (size_t)(n_in * take));
        float *want = malloc(sizeof(float) * (size_t)(n_in * take));
        for (int64_t i = 0; i < n_in * take; i++) {
            got[i] = wisp_half_to_float(h[i]);
            /* the kernel rounds the exact value to the nearest half */
            want[i] = wisp_half_to_float(wisp_float_to_half(ref[row0 * n_in + i]));
        }
        bad += gt_compare(t->name, got, want, (size_t)(n_in * take), 0, 0);
        free(ref), free(w), free(h), free(got), free(want);
        cudaFree(dw);
        cudaFree(dout);
    }
    CHECK_EQ_INT(bad, 0);
}

/* The GEMM with a weight scratch smaller than the weight, so the tiled
 * path runs several tiles including a short last one. */
TEST(gemm_every_type_tiled)
{
    GPU_REQUIRE();
    cublasHandle_t h;
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    const int toks[] = {9, 37};
    int bad = 0;
    for (int ti = 0; ti < GT_N_TYPES; ti++) {
        const gt_type *t = &GT_TYPES[ti];
        for (int k = 0; k < 2; k++) {
            mm_case c;
            gt_seed((uint64_t)ti * 31 + (uint64_t)k);
            const int64_t n_out = k ? 333 : 70;
            int64_t n_in = pick_n_in(t, 1);
            if (t->qk == 1 && k == 1)
                n_in = 8 * 40; /* aligned float rows: cuBLAS in place */
            mm_make(&c, t, n_in, n_out, toks[k]);
            size_t act = 0, wb = 0;
            /* a cap of 100 rows: tiles of 100 (at least 64), last one short */
            wisp_k_gemm_scratch(t->type, n_in, n_out, c.n_tok, (size_t)n_in * 2 * 100, &act, &wb);
            void *dact = gt_dev(act), *dws = gt_dev(wb);
            void *dw = gt_upload(c.w_host, c.w_bytes);
            float *dx = gt_upload(c.x, sizeof(float) * (size_t)(n_in * c.n_tok));
            float *dy = gt_dev(sizeof(float) * (size_t)(n_out * c.n_tok));
            K_OK(wisp_k_gemm(h, dw, t->type, n_in, n_out, dx, c.n_tok, dy, dact, act, dws, wb, 0,
                             KERR));
            float *y = malloc(sizeof(float) * (size_t)(n_out * c.n_tok));
            gt_download(y, dy, sizeof(float) * (size_t)(n_out * c.n_tok));
            const double rtol = t->type == WISP_TYPE_F32    ? 1e-5
                                : t->type == WISP_TYPE_BF16 ? 1e-2
                                                            : 2e-3;
            bad += mm_check(&c, y, rtol, "gemm");
            free(y);
            cudaFree(dact), cudaFree(dws), cudaFree(dw), cudaFree(dx), cudaFree(dy);
            mm_free(&c);
        }
    }
    cublasDestroy(h);
    CHECK_EQ_INT(bad, 0);
}

TEST(bad_shapes_and_types_are_errors)
{
    GPU_REQUIRE();
    wisp_err err = {0};
    float *d = gt_dev(4096);
    /* Q4_K rows must hold whole 256-blocks */
    CHECK(wisp_k_matvec(d, WISP_TYPE_Q4_K, 100, 4, d, 1, d, 0, &err) == WISP_E_INVALID);
    CHECK(strstr(err.msg, "matvec") != NULL);
    CHECK(wisp_k_matvec(d, WISP_TYPE_IQ2_XS, 256, 4, d, 1, d, 0, &err) == WISP_E_UNSUPPORTED);
    CHECK(!wisp_k_weight_type_supported(WISP_TYPE_Q8_K));
    CHECK(wisp_k_row_bytes(WISP_TYPE_Q4_K, 512) == 288);
    CHECK(wisp_k_row_bytes(WISP_TYPE_F16, 7) == 14);
    CHECK(wisp_k_row_bytes(WISP_TYPE_Q8_0, 33) == 0);
    cudaFree(d);
}
