/*
 * test_gpu_attn.c - KV append and paged causal attention against a CPU
 * reference.
 *
 * A batch of sequences of different lengths (a long prefill chunk on top of
 * a cached prefix, a fresh prompt, single-token decodes) gets block tables
 * of shuffled physical blocks. Every position's K and V are appended with
 * the kernel; the pool is read back and each written row is checked
 * against the host conversion (F32 exact, F16 exact round-to-nearest, Q8_0
 * within half a quantization step). Attention then runs for the new tokens
 * and is compared with a CPU reference - softmax(q K^T * scale) V in double
 * over positions [0, pos], from the K/V values as stored - for MHA and GQA
 * groups 2 and 6, head sizes 8, 64, 80, 128 and 256, all three KV types,
 * and with the KV range split 1, 3 and 8 ways (the flash-decoding merge).
 */
#include "gpu_test.h"

typedef struct seq_spec {
    int pos0, n_tok;
} seq_spec;

/* Host copy of an element of the stored pool row. */
static float kv_elem(int kv_type, const uint8_t *row, int d)
{
    switch (kv_type) {
    case 0: {
        uint16_t h;
        memcpy(&h, row + 2 * d, 2);
        return wisp_half_to_float(h);
    }
    case 2: {
        float f;
        memcpy(&f, row + 4 * d, 4);
        return f;
    }
    default: {
        const uint8_t *b = row + (d / 32) * 34;
        uint16_t h;
        memcpy(&h, b, 2);
        return wisp_half_to_float(h) * (float)(int8_t)b[2 + d % 32];
    }
    }
}

typedef struct attn_cfg {
    int n_heads, n_kv, hd, kv_type, n_splits;
} attn_cfg;

static int run_case(const attn_cfg *ac, const seq_spec *ss, int n_seqs)
{
    const int bs = 16, n_layers = 2, layer = 1;
    wisp_k_kv_layout L;
    wisp_err err = {0};
    if (wisp_k_kv_layout_init(&L, ac->kv_type, n_layers, bs, ac->n_kv, ac->hd, &err) != 0) {
        fprintf(stderr, "  layout: %s\n", err.msg);
        return 1;
    }
    const int KVW = ac->n_kv * ac->hd, QW = ac->n_heads * ac->hd;
    /* Block tables: shuffled distinct physical blocks. */
    int total_blocks = 0, total_pos = 0, n_rows = 0, max_kv = 0;
    for (int s = 0; s < n_seqs; s++) {
        int end = ss[s].pos0 + ss[s].n_tok;
        total_blocks += (end + bs - 1) / bs;
        total_pos += end;
        n_rows += ss[s].n_tok;
        max_kv = end > max_kv ? end : max_kv;
    }
    const int pool_blocks = total_blocks + 5;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)pool_blocks);
    for (int i = 0; i < pool_blocks; i++)
        perm[i] = i;
    for (int i = pool_blocks - 1; i > 0; i--) {
        int j = (int)(gt_u32() % (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* Every position's K/V (all sequences), their slots, and the seqs. */
    float *k = malloc(sizeof(float) * (size_t)total_pos * KVW);
    float *v = malloc(sizeof(float) * (size_t)total_pos * KVW);
    gt_floats(k, (size_t)total_pos * KVW, -2, 2);
    gt_floats(v, (size_t)total_pos * KVW, -2, 2);
    int32_t *slots = malloc(sizeof(int32_t) * (size_t)total_pos);
    wisp_k_attn_seq *seqs = malloc(sizeof(*seqs) * (size_t)n_seqs);
    int32_t *tables = perm; /* seq s uses perm[table0 .. table0 + need) */
    int p = 0, tab = 0, row = 0;
    int *seq_pos_base = malloc(sizeof(int) * (size_t)n_seqs);
    for (int s = 0; s < n_seqs; s++) {
        int end = ss[s].pos0 + ss[s].n_tok;
        seqs[s] = (wisp_k_attn_seq){row, ss[s].n_tok, ss[s].pos0, tab};
        seq_pos_base[s] = p;
        for (int q = 0; q < end; q++, p++)
            slots[p] = tables[tab + q / bs] * bs + q % bs;
        tab += (end + bs - 1) / bs;
        row += ss[s].n_tok;
    }
    /* Append everything (in two launches: the cached prefix would have come
     * from earlier steps). */
    uint8_t *dpool = gt_dev(L.block_bytes * (size_t)pool_blocks);
    CU_OK(cudaMemset(dpool, 0, L.block_bytes * (size_t)pool_blocks));
    float *dk = gt_upload(k, sizeof(float) * (size_t)total_pos * KVW);
    float *dv = gt_upload(v, sizeof(float) * (size_t)total_pos * KVW);
    int32_t *dslots = gt_upload(slots, sizeof(int32_t) * (size_t)total_pos);
    const int half = total_pos / 2;
    K_OK(wisp_k_kv_append(dpool, &L, layer, dk, dv, dslots, half, 0, KERR));
    K_OK(wisp_k_kv_append(dpool, &L, layer, dk + (size_t)half * KVW, dv + (size_t)half * KVW,
                          dslots + half, total_pos - half, 0, KERR));
    uint8_t *pool = malloc(L.block_bytes * (size_t)pool_blocks);
    gt_download(pool, dpool, L.block_bytes * (size_t)pool_blocks);

    /* Stored values, checked against the host conversion. */
    float *ks = malloc(sizeof(float) * (size_t)total_pos * KVW);
    float *vs = malloc(sizeof(float) * (size_t)total_pos * KVW);
    int bad = 0;
    for (int q = 0; q < total_pos; q++)
        for (int h = 0; h < ac->n_kv; h++)
            for (int kind = 0; kind < 2; kind++) {
                const int32_t sl = slots[q];
                const uint8_t *r = pool + (size_t)(sl / bs) * L.block_bytes +
                                   (size_t)(2 * layer + kind) * L.span_bytes +
                                   ((size_t)(sl % bs) * ac->n_kv + h) * L.row_bytes;
                const float *src = (kind ? v : k) + (size_t)q * KVW + (size_t)h * ac->hd;
                float *dst = (kind ? vs : ks) + (size_t)q * KVW + (size_t)h * ac->hd;
                float amax = 0;
                for (int d = 0; d < ac->hd; d++)
                    amax = fmaxf(amax, fabsf(src[d]));
                for (int d = 0; d < ac->hd; d++) {
                    dst[d] = kv_elem(ac->kv_type, r, d);
                    float want =
                        ac->kv_type == 0 ? wisp_half_to_float(wisp_float_to_half(src[d])) : src[d];
                    /* Q8_0: half a step of d = amax/127, plus 127 x the half rounding of d */
                    float tol = ac->kv_type == 1 ? amax / 127.0f * 0.6f + 1e-6f : 0.0f;
                    if (!(fabsf(dst[d] - want) <= tol)) {
                        if (bad < 5)
                            fprintf(stderr, "  kv row pos %d head %d kind %d d %d: %g vs %g\n", q,
                                    h, kind, d, dst[d], want);
                        bad++;
                    }
                }
            }

    /* Queries for the new tokens, and the reference. */
    float *q = malloc(sizeof(float) * (size_t)n_rows * QW);
    gt_floats(q, (size_t)n_rows * QW, -1, 1);
    float *ref = malloc(sizeof(float) * (size_t)n_rows * QW);
    const float scale = 1.0f / sqrtf((float)ac->hd);
    const int group = ac->n_heads / ac->n_kv;
    double *w = malloc(sizeof(double) * (size_t)(max_kv + 1));
    for (int s = 0; s < n_seqs; s++)
        for (int t = 0; t < ss[s].n_tok; t++) {
            const int r = seqs[s].row0 + t, lim = ss[s].pos0 + t;
            for (int h = 0; h < ac->n_heads; h++) {
                const float *qv = q + (size_t)r * QW + (size_t)h * ac->hd;
                const int kh = h / group;
                double m = -INFINITY, sum = 0;
                for (int j = 0; j <= lim; j++) {
                    const float *kr =
                        ks + (size_t)(seq_pos_base[s] + j) * KVW + (size_t)kh * ac->hd;
                    double dot = 0;
                    for (int d = 0; d < ac->hd; d++)
                        dot += (double)qv[d] * kr[d];
                    w[j] = dot * scale;
                    m = fmax(m, w[j]);
                }
                for (int j = 0; j <= lim; j++)
                    sum += (w[j] = exp(w[j] - m));
                for (int d = 0; d < ac->hd; d++) {
                    double o = 0;
                    for (int j = 0; j <= lim; j++)
                        o += w[j] *
                             vs[(size_t)(seq_pos_base[s] + j) * KVW + (size_t)kh * ac->hd + d];
                    ref[(size_t)r * QW + (size_t)h * ac->hd + d] = (float)(o / sum);
                }
            }
        }

    const int n_items = wisp_k_attn_items(seqs, n_seqs, group, NULL, 0);
    wisp_k_attn_item *items = malloc(sizeof(*items) * (size_t)n_items);
    CHECK_EQ_INT(wisp_k_attn_items(seqs, n_seqs, group, items, n_items), n_items);
    float *dq = gt_upload(q, sizeof(float) * (size_t)n_rows * QW);
    float *dout = gt_dev(sizeof(float) * (size_t)n_rows * QW);
    const size_t pf = wisp_k_attn_partial_floats(n_rows, ac->n_heads, ac->hd, ac->n_splits);
    float *dpart = gt_dev(pf * sizeof(float));
    wisp_k_attn_params ap = {
        .pool = dpool,
        .kv = &L,
        .layer = layer,
        .n_heads = ac->n_heads,
        .scale = scale,
        .q = dq,
        .out = dout,
        .seqs = gt_upload(seqs, sizeof(*seqs) * (size_t)n_seqs),
        .items = gt_upload(items, sizeof(*items) * (size_t)n_items),
        .n_items = n_items,
        .tables = gt_upload(tables, sizeof(int32_t) * (size_t)pool_blocks),
        .max_kv = max_kv,
        .n_splits = ac->n_splits,
        .partial = dpart,
        .n_rows = n_rows,
    };
    K_OK(wisp_k_attention(&ap, 0, KERR));
    float *out = malloc(sizeof(float) * (size_t)n_rows * QW);
    gt_download(out, dout, sizeof(float) * (size_t)n_rows * QW);
    char what[96];
    snprintf(what, sizeof(what), "attn h%d/%d hd%d kv%d split%d", ac->n_heads, ac->n_kv, ac->hd,
             ac->kv_type, ac->n_splits);
    bad += gt_compare(what, out, ref, (size_t)n_rows * QW, 2e-5, 1e-4);

    cudaFree((void *)ap.seqs), cudaFree((void *)ap.items), cudaFree((void *)ap.tables);
    cudaFree(dq), cudaFree(dout), cudaFree(dpart), cudaFree(dpool), cudaFree(dk), cudaFree(dv);
    cudaFree(dslots);
    free(perm), free(k), free(v), free(slots), free(seqs), free(seq_pos_base), free(pool);
    free(ks), free(vs), free(q), free(ref), free(w), free(items), free(out);
    return bad;
}

/* Prefill on a cached prefix, a fresh prompt, decodes of several lengths. */
static const seq_spec MIXED[] = {{37, 21}, {0, 19}, {100, 1}, {5, 1}, {0, 1}};
/* Pure decode of long contexts: the case the splits are for. */
static const seq_spec DECODE[] = {{700, 1}, {333, 1}};

TEST(attention_mha_gqa_every_kv_type)
{
    GPU_REQUIRE();
    const attn_cfg cfgs[] = {
        {4, 4, 64, 2, 1}, {4, 2, 64, 0, 1},  {12, 2, 128, 0, 1}, {8, 4, 8, 2, 1},
        {6, 1, 80, 2, 1}, {4, 2, 256, 0, 1}, {4, 2, 64, 1, 1},   {12, 2, 128, 1, 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        gt_seed(1000 + i);
        bad += run_case(&cfgs[i], MIXED, 5);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(attention_split_kv_merge)
{
    GPU_REQUIRE();
    const attn_cfg cfgs[] = {
        {4, 4, 64, 2, 3},
        {12, 2, 128, 0, 8},
        {8, 4, 8, 2, 8},
        {4, 2, 256, 1, 3},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        gt_seed(2000 + i);
        bad += run_case(&cfgs[i], DECODE, 2);
        bad += run_case(&cfgs[i], MIXED, 5); /* splits with prefill rows too */
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(attention_rejects_bad_shapes)
{
    GPU_REQUIRE();
    wisp_k_kv_layout L;
    wisp_err err = {0};
    CHECK(wisp_k_kv_layout_init(&L, 1, 2, 16, 2, 48, &err) == WISP_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "multiple of 32") != NULL);
    REQUIRE(wisp_k_kv_layout_init(&L, 0, 2, 16, 2, 64, &err) == 0);
    CHECK_EQ_INT(L.block_bytes, (size_t)2 * 2 * 16 * 2 * 64 * 2);
    wisp_k_attn_params ap = {.kv = &L, .n_heads = 3, .n_splits = 1, .n_items = 1, .n_rows = 1};
    CHECK(wisp_k_attention(&ap, 0, &err) == WISP_E_INVALID);
}
