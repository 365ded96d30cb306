/*
 * attn.cu - causal attention over the paged KV pool, for prefill and
 * decode alike, without ever materializing a score matrix.
 *
 * Work is cut along what shares K/V: the queries of one KV head are the
 * (token, head-of-group) pairs of a sequence, so a work item is up to
 * WISP_K_ATTN_BQ = 16 such queries (GQA's whole group reuses every K/V tile
 * it loads; a decode step of a 6:1 GQA model fills 6 of them). A block of 4
 * warps takes one item, one KV head and one KV range, and walks that range
 * in tiles of 32 positions, flash-attention style:
 *   1. the 4 warps load the tile's K and V rows (through the block table,
 *      converted from the pool type to F32) into shared memory;
 *   2. each warp, for each of its 4 queries, gives lane k key k of the tile:
 *      lane k computes the score q.K[k] alone (q broadcast from shared
 *      memory; K rows padded by one float so lanes hit distinct banks),
 *      masked to -inf past the query's causal limit;
 *   3. online softmax: warp max, rescale of the running sum and of the
 *      output accumulators (lane owns dims lane, lane+32, ...), then
 *      out += p_k * V[k] with p_k broadcast by shuffle.
 * Decode has few items, so the KV range is split over grid.z (flash-
 * decoding): every block writes its unnormalized (max, sum, acc) partial
 * and k_attn_combine merges the splits; prefill runs one split and the
 * combine only normalizes. head_dim up to 256 (NJ = head_dim/32 rounded up
 * to 1, 2, 4 or 8 accumulators per lane per query).
 */
#include "kv.cuh"

#define ATT_WARPS 4
#define ATT_QPW (WISP_K_ATTN_BQ / ATT_WARPS) /* queries per warp */
#define ATT_BK 32                              /* keys per tile = lanes */

struct att_dev {
    const uint8_t *pool;
    wisp_k_kv_layout kv;
    int layer, n_heads, group;
    float scale;
    const float *q;
    const wisp_k_attn_seq *seqs;
    const wisp_k_attn_item *items;
    const int32_t *tables;
    int split_len, n_splits;
    float *partial;
};

static size_t att_smem_floats(int hd, int nj)
{
    return (size_t)WISP_K_ATTN_BQ * hd + (size_t)ATT_BK * (hd + 1) + (size_t)ATT_BK * 32 * nj;
}

template <int KT, int NJ>
static __global__ void __launch_bounds__(ATT_WARPS * WISP_WARP) k_attn(att_dev a)
{
    extern __shared__ float smem[];
    const int hd = a.kv.head_dim;
    const int VS = 32 * NJ; /* V row stride: every lane's NJ dims, zero-padded */
    float *Qs = smem;                                   /* [BQ][hd] */
    float *Ks = Qs + WISP_K_ATTN_BQ * hd;               /* [BK][hd + 1] */
    float *Vs = Ks + ATT_BK * (hd + 1);                 /* [BK][VS] */

    const wisp_k_attn_item it = a.items[blockIdx.x];
    const wisp_k_attn_seq sq = a.seqs[it.seq];
    const int kvh = blockIdx.y, z = blockIdx.z;
    const int warp = threadIdx.x / WISP_WARP, lane = threadIdx.x % WISP_WARP;
    const int qstride = a.n_heads * hd;

    /* Queries of this item into shared memory, pre-scaled. */
    for (int i = threadIdx.x; i < WISP_K_ATTN_BQ * hd; i += blockDim.x) {
        const int qi = i / hd, d = i % hd;
        float v = 0.0f;
        if (qi < it.nq) {
            const int qq = it.q0 + qi;
            const int row = sq.row0 + qq / a.group;
            const int head = kvh * a.group + qq % a.group;
            v = a.q[(int64_t)row * qstride + (int64_t)head * hd + d] * a.scale;
        }
        Qs[i] = v;
    }

    /* This block's KV range: its split, cut at the item's last causal limit. */
    const int last_tok = (it.q0 + it.nq - 1) / a.group;
    const int item_hi = sq.pos0 + last_tok + 1;
    const int lo = z * a.split_len;
    const int hi = min(lo + a.split_len, item_hi);

    float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][NJ];
    int lim[ATT_QPW];
#pragma unroll
    for (int j = 0; j < ATT_QPW; j++) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
        const int qi = warp * ATT_QPW + j;
        lim[j] = qi < it.nq ? sq.pos0 + (it.q0 + qi) / a.group : -1;
#pragma unroll
        for (int c = 0; c < NJ; c++)
            acc[j][c] = 0.0f;
    }
    const int32_t *table = a.tables + sq.table0;
    const int bs = a.kv.block_size;

    for (int t0 = lo; t0 < hi; t0 += ATT_BK) {
        __syncthreads(); /* the previous tile (and Qs on the first pass) are settled */
        for (int k = warp; k < ATT_BK; k += ATT_WARPS) {
            const int p = t0 + k;
            const uint8_t *kr = nullptr, *vr = nullptr;
            if (p < hi) {
                const int64_t blk = table[p / bs];
                kr = kv_row(a.pool, a.kv, blk, a.layer, 0, p % bs, kvh);
                vr = kv_row(a.pool, a.kv, blk, a.layer, 1, p % bs, kvh);
            }
            for (int d = lane; d < VS || d < hd; d += WISP_WARP) {
                const bool in = kr != nullptr && d < hd;
                if (d < hd)
                    Ks[k * (hd + 1) + d] = in ? kv_load<KT>(kr, d) : 0.0f;
                if (d < VS)
                    Vs[k * VS + d] = in ? kv_load<KT>(vr, d) : 0.0f;
            }
        }
        __syncthreads();

        const int p = t0 + lane; /* this lane's key */
#pragma unroll
        for (int j = 0; j < ATT_QPW; j++) {
            if (lim[j] < t0) /* whole tile past this query's limit (or no query) */
                continue;
            const float *qv = Qs + (warp * ATT_QPW + j) * hd;
            const float *kv = Ks + lane * (hd + 1);
            float s = 0.0f;
            for (int d = 0; d < hd; d++)
                s += qv[d] * kv[d];
            const bool valid = p < hi && p <= lim[j];
            s = valid ? s : -INFINITY;
            const float mt = k_warp_max(s);
            if (mt == -INFINITY)
                continue;
            const float mn = fmaxf(m[j], mt);
            const float corr = expf(m[j] - mn); /* 0 on the first tile: m = -inf */
            const float pk = valid ? expf(s - mn) : 0.0f;
            l[j] = l[j] * corr + k_warp_sum(pk);
#pragma unroll
            for (int c = 0; c < NJ; c++)
                acc[j][c] *= corr;
            for (int k = 0; k < ATT_BK; k++) {
                const float pb = __shfl_sync(0xffffffffu, pk, k);
#pragma unroll
                for (int c = 0; c < NJ; c++)
                    acc[j][c] += pb * Vs[k * VS + lane + 32 * c];
            }
            m[j] = mn;
        }
    }

    /* Partials: [row][head][split] of (m, l, acc[hd]). */
#pragma unroll
    for (int j = 0; j < ATT_QPW; j++) {
        const int qi = warp * ATT_QPW + j;
        if (qi >= it.nq)
            continue;
        const int qq = it.q0 + qi;
        const int64_t row = sq.row0 + qq / a.group;
        const int head = kvh * a.group + qq % a.group;
        float *pp = a.partial + ((row * a.n_heads + head) * a.n_splits + z) * (int64_t)(hd + 2);
        if (lane == 0) {
            pp[0] = m[j];
            pp[1] = l[j];
        }
#pragma unroll
        for (int c = 0; c < NJ; c++) {
            const int d = lane + 32 * c;
            if (d < hd)
                pp[2 + d] = acc[j][c];
        }
    }
}

/* One warp per (row, head): merges the splits and normalizes. */
static __global__ void k_attn_combine(const float *__restrict__ partial, float *__restrict__ out,
                                      int64_t n_pairs, int n_splits, int hd)
{
    const int64_t pair = (int64_t)blockIdx.x * 4 + threadIdx.x / WISP_WARP;
    const int lane = threadIdx.x % WISP_WARP;
    if (pair >= n_pairs)
        return;
    const float *pp = partial + pair * n_splits * (int64_t)(hd + 2);
    float M = -INFINITY;
    for (int z = 0; z < n_splits; z++)
        M = fmaxf(M, pp[z * (hd + 2)]);
    float L = 0.0f;
    for (int z = 0; z < n_splits; z++) {
        const float mz = pp[z * (hd + 2)];
        L += mz == -INFINITY ? 0.0f : pp[z * (hd + 2) + 1] * expf(mz - M);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    /* out rows are [row][head][hd] = pair * hd */
    for (int d = lane; d < hd; d += WISP_WARP) {
        float o = 0.0f;
        for (int z = 0; z < n_splits; z++) {
            const float mz = pp[z * (hd + 2)];
            if (mz != -INFINITY)
                o += pp[z * (hd + 2) + 2 + d] * expf(mz - M);
        }
        out[pair * hd + d] = o * inv;
    }
}

extern "C" int wisp_k_attn_items(const wisp_k_attn_seq *seqs, int n_seqs, int group,
                                 wisp_k_attn_item *out, int cap)
{
    int n = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int nq = seqs[s].n_tok * group;
        for (int q0 = 0; q0 < nq; q0 += WISP_K_ATTN_BQ) {
            if (n < cap) {
                out[n].seq = s;
                out[n].q0 = q0;
                out[n].nq = nq - q0 < WISP_K_ATTN_BQ ? nq - q0 : WISP_K_ATTN_BQ;
            }
            n++;
        }
    }
    return n;
}

extern "C" size_t wisp_k_attn_partial_floats(int n_rows, int n_heads, int head_dim, int n_splits)
{
    return (size_t)n_rows * (size_t)n_heads * (size_t)n_splits * (size_t)(head_dim + 2);
}

template <int KT, int NJ> static int attn_launch(const att_dev &a, int n_items, cudaStream_t s,
                                                 wisp_err *err)
{
    const size_t smem = att_smem_floats(a.kv.head_dim, NJ) * sizeof(float);
    if (smem > 48 * 1024) {
        /* Opt in to the larger shared memory of sm_80+ (99 KiB or more). */
        cudaError_t e = cudaFuncSetAttribute(k_attn<KT, NJ>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess)
            return wisp_err_set(err, WISP_E_DEVICE,
                                "attention: %zu bytes of shared memory for head_dim %d: %s", smem,
                                a.kv.head_dim, cudaGetErrorString(e));
    }
    dim3 grid((unsigned)n_items, (unsigned)a.kv.n_kv_heads, (unsigned)a.n_splits);
    k_attn<KT, NJ><<<grid, ATT_WARPS * WISP_WARP, smem, s>>>(a);
    return k_check_launch("attention", err);
}

template <int KT> static int attn_nj(const att_dev &a, int n_items, cudaStream_t s, wisp_err *err)
{
    const int hd = a.kv.head_dim;
    if (hd <= 32)
        return attn_launch<KT, 1>(a, n_items, s, err);
    if (hd <= 64)
        return attn_launch<KT, 2>(a, n_items, s, err);
    if (hd <= 128)
        return attn_launch<KT, 4>(a, n_items, s, err);
    return attn_launch<KT, 8>(a, n_items, s, err);
}

extern "C" int wisp_k_attention(const wisp_k_attn_params *p, cudaStream_t s, wisp_err *err)
{
    const wisp_k_kv_layout *kv = p->kv;
    if (kv->head_dim > 256)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "attention: head_dim %d is above the CUDA kernel's 256",
                            kv->head_dim);
    if (p->n_heads <= 0 || p->n_heads % kv->n_kv_heads != 0)
        return wisp_err_set(err, WISP_E_INVALID,
                            "attention: %d query heads is not a multiple of %d KV heads",
                            p->n_heads, kv->n_kv_heads);
    if (p->n_splits < 1 || p->n_splits > 65535 || kv->n_kv_heads > 65535)
        return wisp_err_set(err, WISP_E_INVALID, "attention: bad split count %d", p->n_splits);
    if (p->n_items <= 0 || p->n_rows <= 0)
        return 0;
    att_dev a;
    a.pool = (const uint8_t *)p->pool;
    a.kv = *kv;
    a.layer = p->layer;
    a.n_heads = p->n_heads;
    a.group = p->n_heads / kv->n_kv_heads;
    a.scale = p->scale;
    a.q = p->q;
    a.seqs = p->seqs;
    a.items = p->items;
    a.tables = p->tables;
    a.n_splits = p->n_splits;
    /* Split ranges are whole tiles so no tile straddles two blocks. */
    const int per = (int)k_cdiv(p->max_kv > 0 ? p->max_kv : 1, p->n_splits);
    a.split_len = (int)k_cdiv(per, ATT_BK) * ATT_BK;
    a.partial = p->partial;
    int rc;
    switch (kv->kv_type) {
    case KV_F16: rc = attn_nj<KV_F16>(a, p->n_items, s, err); break;
    case KV_F32: rc = attn_nj<KV_F32>(a, p->n_items, s, err); break;
    case KV_Q8_0: rc = attn_nj<KV_Q8_0>(a, p->n_items, s, err); break;
    default: return wisp_err_set(err, WISP_E_INVALID, "attention: unknown KV type %d", kv->kv_type);
    }
    if (rc)
        return rc;
    const int64_t pairs = (int64_t)p->n_rows * p->n_heads;
    k_attn_combine<<<(unsigned)k_cdiv(pairs, 4), 4 * WISP_WARP, 0, s>>>(p->partial, p->out, pairs,
                                                                        p->n_splits, kv->head_dim);
    return k_check_launch("attention combine", err);
}
