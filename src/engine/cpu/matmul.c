/*
 * matmul.c - y = W x for weights in their stored type, split over threads.
 *
 * Two phases per call:
 *  1. the activation rows are converted once into the weight type's
 *     activation format (Q8_0, Q8_1, Q8_K, F16, BF16; F32 is used in place)
 *     into the caller's scratch - by the caller alone for one token, by all
 *     threads for a batch;
 *  2. the output is cut into tiles of (weight rows x token rows) which the
 *     threads take from a shared atomic counter, so a thread slowed down by
 *     a neighbour on the machine does not hold the others back.
 *
 * Inside a tile, types with a gemm kernel (cpu_types.h) for this level take
 * blocks of WISP_GEMM_NR weight rows x WISP_GEMM_NC tokens per call, which
 * reuse decoded weight blocks and activation blocks from registers; other
 * types pair each weight row with WISP_DOT_NC_MAX token rows per dot call,
 * so the weight block is decoded once for several tokens;
 * the tile's token rows are sized to stay in the L1/L2 cache while every
 * weight row of the tile streams past them. For one token the tiles are
 * simply chunks of rows. Where the CPU has AMX tiles (amx.h) and the type
 * an AMX kernel, tiles are 32 weight rows x up to 256 tokens and their
 * whole 16 x 16 parts go to the tile unit, the edges to the kernels above
 * (the same bits either way).
 *
 * Scratch layout (see wisp_matmul_scratch_size): the start of the buffer
 * is rounded up to 64 bytes, then n_tok activation rows, each padded to a
 * multiple of 64 bytes; Q8_0/Q8_1 rows also hold a float copy of their
 * block scales, the int32 sums of their blocks' quants and the quants
 * interleaved by block pairs after the blocks (cpu_types.h). So the size is
 *   64 + n_tok * round_up(max(row bytes, n_in / 32 * 76 for Q8_0/Q8_1), 64)
 * and 0 for F32 weights, whose activations are used in place; where AMX
 * may be used, the activations' copy in the AMX layout (amx.h) follows,
 * rounded up to 64 bytes.
 */
#include "engine/cpu/matmul.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp16.h"
#include "engine/cpu/amx.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/repack.h"

#define ALIGN 64
/* Rows per tile for a single token: small enough to balance threads,
 * large enough that the shared counter is touched rarely and that each
 * thread streams long runs of contiguous weights, which the kernels'
 * software prefetch (a fixed distance ahead in the row) covers except for
 * a tile's first few KiB (measured, 1024 x 262144 from DRAM, 2 threads:
 * 16 rows 16 GB/s for Q4_0, 64 rows 24 GB/s; whole-model decode on Zen 5,
 * 2 threads, interleaved runs: 256 rows beat 64 in every round, by 10-20%
 * on the 200M Q4_K_M and Q4_0 and ~5% on the 1.5B Q4_K_M, and 512 did no
 * better than 256). */
#define ROWS_DECODE 256
/* Rows per tile for a batch. */
/* Rows per tile for a batch: the most, halved down to the least while the
 * job has fewer than TILES_PER_THREAD tiles a thread. Long runs of rows
 * let each thread stream its weights contiguously, so that the kernels'
 * prefetch runs ahead into rows the same thread will read next; with
 * 16-row tiles the threads alternate every couple of groups and each tile
 * starts on weights nobody fetched (measured, 1024 x 131072 from DRAM,
 * 16 tokens, 2 threads: Q8_0 7.2 ms with 16-row tiles, 6.9 with 64, 5.5
 * with 128; Q4_0 5.2 / 5.4 / 4.7). */
#define ROWS_PREFILL_MAX 128
#define ROWS_PREFILL_MIN 16
#define TILES_PER_THREAD 4
/* Rows and tokens of a tile for AMX: two weight tiles of 16 rows, and
 * enough tokens that repacking the weights costs little next to the
 * products. */
#define ROWS_AMX 32
#define TOKS_AMX 256
_Static_assert(ROWS_DECODE % WISP_RP_MAX_ROWS == 0 && ROWS_PREFILL_MIN % WISP_RP_MAX_ROWS == 0 &&
                   ROWS_AMX % WISP_RP_MAX_ROWS == 0,
               "tiles start on a group of repacked rows");
/* Bytes of activation rows a prefill tile aims to keep in cache (the L2
 * of current x86 cores is 1-2 MB; the weight rows stream through L1;
 * measured on Zen 4, 1536 x 8960 Q8_0 at 128 tokens: 136 GFLOP/s with
 * 192 KiB, 157 with 512 KiB, as every weight row is read once), and
 * the fewest token rows a tile takes, so that wide rows (F32, F16) still
 * reuse each weight row for several kernel calls before it is evicted. */
#define TILE_ACT_BYTES (512 * 1024)
#define TILE_MIN_TOKS  16
/* Tokens below which a product takes its one-token kernel once per token. */
#ifndef FEW_TOKS
#define FEW_TOKS 4
#endif
/* Multiply-accumulates below which a product runs on the calling thread. */
#define MATMUL_MIN_PARALLEL_MACS (1 << 18)

static size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

static size_t act_row_stride(int act_type, int64_t n_in)
{
    size_t bytes = wisp_cpu_row_bytes(act_type, n_in),
           with_scales = wisp_cpu_act_row_bytes(act_type, n_in);
    return round_up(with_scales > bytes ? with_scales : bytes, ALIGN);
}

size_t wisp_matmul_scratch_size(int weight_type, int64_t n_in, int64_t n_tok)
{
    weight_type = wisp_rp_base_type(weight_type);
    const wisp_cpu_kernels *k = wisp_cpu_kernels_get(weight_type);
    if (!k || !k->dot || k->act_type == WISP_TYPE_F32 || n_in <= 0 || n_tok <= 0)
        return 0;
    size_t rows = (size_t)n_tok * act_row_stride(k->act_type, n_in);
    if (wisp_amx_has_kernel(weight_type) && n_in <= WISP_AMX_MAX_IN)
        rows +=
            round_up((size_t)(n_tok / WISP_AMX_TILE) * wisp_amx_act_tile_bytes(k->act_type, n_in),
                     ALIGN);
    return ALIGN + rows;
}

const char *wisp_matmul_simd_level(void)
{
    return wisp_amx_active() ? "avx512+amx" : wisp_cpu_simd_name(wisp_cpu_simd_active());
}

/* One weight of a job: its kernels, rows and output. */
typedef struct mm_part {
    wisp_dot_fn dot;
    wisp_gemm_fn gemm;  /* NULL: dot only */
    wisp_gemm_fn panel; /* a batch's rows decoded once for all its tokens; NULL: gemm */
    wisp_gemv_fn gemv;  /* several rows for one token; NULL: dot */
    wisp_amx_fn amx;    /* AMX tiles for whole 16 x 16 tiles; NULL: none */
    bool dot_few;       /* a few tokens go through the dot one token at a time */
    wisp_rp_fn rp;      /* repacked weights (repack.h): their kernel; NULL: file layout */
    int64_t rp_rows;    /* rows in whole repacked groups; the rest are in the file layout */
    int rp_group;       /* rows of a repacked group */
    const char *w;
    size_t w_row; /* bytes per weight row */
    float *y;
    int64_t n_out;
    int64_t n_row_tiles, tile0; /* its tiles are [tile0, tile0 + n_row_tiles * n_tok_tiles) */
} mm_part;

typedef struct mm_job {
    mm_part part[WISP_MATMUL_MAX_PARTS];
    int n_parts;
    bool pairs; /* some part has a gemm kernel: write the pair layout */
    bool quads; /* some part is repacked: write the quads section */
    wisp_row_from_float_fn from_float;
    const float *x;
    const char *a;              /* activation rows (scratch, or x for F32) */
    size_t a_row;               /* bytes between activation rows */
    size_t act_bytes_per_block; /* Q8_0/Q8_1 activations: block size; else 0 */
    char *amx_a;                /* the activations in the AMX layout (amx.h); NULL: none */
    int act_type;
    int64_t n_in, n_tok;
    int64_t rows_per_tile, toks_per_tile, n_tok_tiles, n_tiles;
    _Alignas(64) atomic_long next;
} mm_job;

static void quantize_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++) {
        char *row = (char *)j->a + (size_t)t * j->a_row;
        j->from_float(j->x + t * j->n_in, row, j->n_in);
        if (j->amx_a && t < j->n_tok / WISP_AMX_TILE * WISP_AMX_TILE)
            wisp_amx_pack_act(j->act_type, row, j->n_in, t, j->amx_a);
        if (j->act_bytes_per_block) {
            /* the float copy of the block scales (see cpu_types.h) */
            float *d = (float *)(row + wisp_cpu_act_scales_offset(j->n_in));
            int32_t *sums = (int32_t *)(row + wisp_cpu_act_sums_offset(j->n_in));
            for (int64_t b = 0; b < j->n_in / 32; b++) {
                const char *blk = row + (size_t)b * j->act_bytes_per_block;
                uint16_t h;
                memcpy(&h, blk, 2);
                d[b] = wisp_half_to_float(h);
                /* the quants are the block's last 32 bytes */
                const int8_t *qs = (const int8_t *)(blk + j->act_bytes_per_block - 32);
                int32_t sum = 0;
                for (int i = 0; i < 32; i++)
                    sum += qs[i];
                sums[b] = sum;
            }
            if (j->quads)
                for (int64_t q = 0; q < j->n_in / (32 * WISP_RP_QUAD); q++) {
                    char *dst = row + wisp_cpu_act_quads_offset(j->n_in) +
                                (size_t)q * WISP_CPU_ACT_QUAD_BYTES;
                    int32_t neg[WISP_RP_QUAD];
                    for (int k = 0; k < WISP_RP_QUAD; k++) {
                        const char *qs = row + (size_t)(4 * q + k) * j->act_bytes_per_block +
                                         j->act_bytes_per_block - 32;
                        for (int g = 0; g < 8; g++)
                            memcpy(dst + 16 * g + 4 * k, qs + 4 * g, 4);
                        neg[k] = -sums[4 * q + k];
                    }
                    memcpy(dst + 128, neg, sizeof(neg));
                }
            if (j->pairs && j->n_tok > 1) {
                char *pairs = row + wisp_cpu_act_pairs_offset(j->n_in);
                size_t bb = j->act_bytes_per_block;
                for (int64_t b = 0; b + 1 < j->n_in / 32; b += 2) {
                    const char *q0 = row + (size_t)b * bb + bb - 32, *q1 = q0 + bb;
                    char *dst = pairs + (size_t)b * 32;
                    memcpy(dst, q0, 16);
                    memcpy(dst + 16, q1, 16);
                    memcpy(dst + 32, q0 + 16, 16);
                    memcpy(dst + 48, q1 + 16, 16);
                }
            }
        }
    }
}

/* Weight rows [r0, r1) x tokens [t0, t1) of a part through its gemm or
 * dot kernels. */
static void run_range(const mm_job *j, const mm_part *p, int64_t r0, int64_t r1, int64_t t0,
                      int64_t t1)
{
    if (p->rp && r0 < p->rp_rows) {
        /* tiles start on a group (their rows are multiples of WISP_RP_ROWS) */
        const int64_t re = r1 < p->rp_rows ? r1 : p->rp_rows;
        p->rp(j->n_in, p->w + (size_t)r0 * p->w_row, (size_t)p->rp_group * p->w_row,
              (int)((re - r0) / p->rp_group), j->a + (size_t)t0 * j->a_row, j->a_row,
              (int)(t1 - t0), p->y + t0 * p->n_out + r0, (size_t)p->n_out);
        if (re == r1)
            return;
        r0 = re;
    }
    /* A few tokens: the one-token kernels, once per token, beat the
     * register-blocked ones, whose decoded blocks are used too few times to
     * pay for their tiles (Zen 5, 1024 x 2816 Q4_K in cache, one thread:
     * 40 us for one token, 143 for two through the 4 x 8 gemm, 80 through
     * the gemv twice, the tile's rows coming from L1 the second time). The
     * bits are the same: every kernel of a level gives a row the same sum. */
    const bool few = t1 - t0 < FEW_TOKS;
    if (few && p->gemv) {
        for (int64_t t = t0; t < t1; t++)
            for (int64_t r = r0; r < r1; r += WISP_GEMV_NR) {
                int nr = (int)(r1 - r < WISP_GEMV_NR ? r1 - r : WISP_GEMV_NR);
                p->gemv(j->n_in, p->w + (size_t)r * p->w_row, p->w_row, nr,
                        j->a + (size_t)t * j->a_row, p->y + t * p->n_out + r);
            }
        return;
    }
    if (p->panel && t1 - t0 > 1 && !(few && p->dot_few)) {
        for (int64_t r = r0; r < r1; r += WISP_PANEL_NR) {
            int nr = (int)(r1 - r < WISP_PANEL_NR ? r1 - r : WISP_PANEL_NR);
            p->panel(j->n_in, p->w + (size_t)r * p->w_row, p->w_row, nr,
                     j->a + (size_t)t0 * j->a_row, j->a_row, (int)(t1 - t0),
                     p->y + t0 * p->n_out + r, (size_t)p->n_out);
        }
        return;
    }
    if (p->gemm && t1 - t0 > 1 && !(few && p->dot_few)) {
        for (int64_t r = r0; r < r1; r += WISP_GEMM_NR) {
            int nr = (int)(r1 - r < WISP_GEMM_NR ? r1 - r : WISP_GEMM_NR);
            for (int64_t t = t0; t < t1; t += WISP_GEMM_NC) {
                int nc = (int)(t1 - t < WISP_GEMM_NC ? t1 - t : WISP_GEMM_NC);
                p->gemm(j->n_in, p->w + (size_t)r * p->w_row, p->w_row, nr,
                        j->a + (size_t)t * j->a_row, j->a_row, nc, p->y + t * p->n_out + r,
                        (size_t)p->n_out);
            }
        }
        return;
    }
    if (p->gemv && t1 - t0 == 1) {
        for (int64_t r = r0; r < r1; r += WISP_GEMV_NR) {
            int nr = (int)(r1 - r < WISP_GEMV_NR ? r1 - r : WISP_GEMV_NR);
            p->gemv(j->n_in, p->w + (size_t)r * p->w_row, p->w_row, nr,
                    j->a + (size_t)t0 * j->a_row, p->y + t0 * p->n_out + r);
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const char *wr = p->w + (size_t)r * p->w_row;
        for (int64_t t = t0; t < t1; t += WISP_DOT_NC_MAX) {
            int nc = (int)(t1 - t < WISP_DOT_NC_MAX ? t1 - t : WISP_DOT_NC_MAX);
            p->dot(j->n_in, wr, j->a + (size_t)t * j->a_row, j->a_row, nc, p->y + t * p->n_out + r,
                   (size_t)p->n_out);
        }
    }
}

static void run_tile(const mm_job *j, int64_t tile)
{
    const mm_part *p = &j->part[0];
    while (p + 1 < j->part + j->n_parts && tile >= p[1].tile0)
        p++;
    tile -= p->tile0;
    int64_t rt = tile % p->n_row_tiles, tt = tile / p->n_row_tiles;
    int64_t r0 = rt * j->rows_per_tile, r1 = r0 + j->rows_per_tile;
    int64_t t0 = tt * j->toks_per_tile, t1 = t0 + j->toks_per_tile;
    if (r1 > p->n_out)
        r1 = p->n_out;
    if (t1 > j->n_tok)
        t1 = j->n_tok;
    /* AMX takes the whole 16 x 16 tiles; the edges go to the kernels
     * below, which give the same bits. */
    const int64_t ra = (r1 - r0) / WISP_AMX_TILE * WISP_AMX_TILE;
    const int64_t ta = (t1 - t0) / WISP_AMX_TILE * WISP_AMX_TILE;
    if (p->amx && ra > 0 && ta > 0) {
        p->amx(j->n_in, p->w + (size_t)r0 * p->w_row, p->w_row, (int)ra,
               j->amx_a + (size_t)(t0 / 16) * wisp_amx_act_tile_bytes(j->act_type, j->n_in),
               (int)ta, p->y + t0 * p->n_out + r0, (size_t)p->n_out);
        run_range(j, p, r0, r0 + ra, t0 + ta, t1);
        run_range(j, p, r0 + ra, r1, t0, t1);
        return;
    }
    run_range(j, p, r0, r1, t0, t1);
}

static void dot_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    (void)ith;
    (void)nth;
    for (;;) {
        long tile = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (tile >= j->n_tiles)
            break;
        run_tile(j, tile);
    }
}

/* Checks one weight and returns its kernels' row, or NULL with *rc and
 * err set. */
static const wisp_cpu_kernels *check_weight(const wisp_tensor *w, int64_t n_tok, int *rc,
                                            wisp_err *err)
{
    const int type = wisp_rp_base_type(w->type);
    const wisp_cpu_kernels *k = wisp_cpu_kernels_get(type);
    if (k && wisp_rp_is_repacked(w->type) && !wisp_cpu_rp_get(type))
        k = NULL;
    if (!k || !k->dot) {
        *rc = wisp_err_set(err, WISP_E_UNSUPPORTED,
                           "matmul: tensor %s has type id %d, which has no CPU kernel",
                           w->name ? w->name : "?", w->type);
        return NULL;
    }
    int64_t n_in = w->ne[0], n_out = w->n_dims >= 2 ? w->ne[1] : 1;
    if (wisp_cpu_row_bytes(type, n_in) == 0 || n_out <= 0 || n_tok <= 0) {
        *rc = wisp_err_set(err, WISP_E_INTERNAL,
                           "matmul: tensor %s: bad shape %lld x %lld for %lld tokens",
                           w->name ? w->name : "?", (long long)n_in, (long long)n_out,
                           (long long)n_tok);
        return NULL;
    }
    if (wisp_cpu_row_bytes(k->act_type, n_in) == 0) {
        *rc =
            wisp_err_set(err, WISP_E_INTERNAL,
                         "matmul: tensor %s: row of %lld is not a multiple of the activation block",
                         w->name ? w->name : "?", (long long)n_in);
        return NULL;
    }
    return k;
}

int wisp_matmul_n(wisp_threadpool *tp, const wisp_tensor *const *ws, int n_w, const float *x,
                  int64_t n_tok, float *const *ys, wisp_matmul_scratch *scratch, wisp_err *err)
{
    if (n_w < 1 || n_w > WISP_MATMUL_MAX_PARTS)
        return wisp_err_set(err, WISP_E_INTERNAL, "matmul: %d weights in one job", n_w);
    int rc = 0;
    const wisp_cpu_kernels *k0 = check_weight(ws[0], n_tok, &rc, err);
    if (!k0)
        return rc;
    const int64_t n_in = ws[0]->ne[0];
    for (int i = 1; i < n_w; i++) {
        const wisp_cpu_kernels *k = check_weight(ws[i], n_tok, &rc, err);
        if (!k)
            return rc;
        /* one conversion of the activations serves only weights that read
         * the same format: others go one after another */
        if (k->act_type != k0->act_type || ws[i]->ne[0] != n_in) {
            for (int q = 0; q < n_w; q++)
                if ((rc = wisp_matmul_n(tp, ws + q, 1, x, n_tok, ys + q, scratch, err)))
                    return rc;
            return 0;
        }
    }

    mm_job j = {.n_parts = n_w, .x = x, .n_in = n_in, .n_tok = n_tok, .act_type = k0->act_type};
    double macs = 0;
    for (int i = 0; i < n_w; i++) {
        const int type = wisp_rp_base_type(ws[i]->type);
        const wisp_cpu_kernels *k = wisp_cpu_kernels_get(type);
        mm_part *p = &j.part[i];
        p->dot = k->dot;
        p->gemm = wisp_cpu_gemm_get(type);
        p->gemv = wisp_cpu_gemv_get(type);
        p->panel = wisp_cpu_panel_get(type);
        p->dot_few = p->panel && !p->gemv;
        p->w = ws[i]->data;
        p->w_row = wisp_cpu_row_bytes(type, n_in);
        p->y = ys[i];
        p->n_out = ws[i]->n_dims >= 2 ? ws[i]->ne[1] : 1;
        if (wisp_rp_is_repacked(ws[i]->type)) {
            p->rp = wisp_cpu_rp_get(type);
            p->rp_group = wisp_rp_group_rows(type);
            p->rp_rows = p->n_out / p->rp_group * p->rp_group;
            j.quads = true;
        }
        j.pairs |= p->gemm != NULL;
        macs += (double)p->n_out * (double)n_in * (double)n_tok;
    }
    if (k0->act_type == WISP_TYPE_F32) {
        j.a = (const char *)x;
        j.a_row = (size_t)n_in * sizeof(float);
    } else {
        size_t need = 0;
        for (int i = 0; i < n_w; i++) {
            size_t s = wisp_matmul_scratch_size(ws[i]->type, n_in, n_tok);
            need = s > need ? s : need;
        }
        if (!scratch || !scratch->buf || scratch->size < need)
            return wisp_err_set(err, WISP_E_INTERNAL,
                                "matmul: tensor %s: scratch of %zu bytes, %zu needed",
                                ws[0]->name ? ws[0]->name : "?", scratch ? scratch->size : 0, need);
        uintptr_t base = (uintptr_t)scratch->buf;
        j.a = (const char *)(base + (ALIGN - base % ALIGN) % ALIGN);
        j.a_row = act_row_stride(k0->act_type, n_in);
        j.from_float = wisp_cpu_kernels_get(k0->act_type)->from_float;
        if (n_tok >= WISP_AMX_TILE && n_in <= WISP_AMX_MAX_IN)
            for (int i = 0; i < n_w; i++)
                if (!j.part[i].rp && (j.part[i].amx = wisp_amx_gemm_get(ws[i]->type)) != NULL)
                    j.amx_a = (char *)j.a + round_up((size_t)n_tok * j.a_row, ALIGN);
        if (wisp_cpu_act_row_bytes(k0->act_type, n_in))
            j.act_bytes_per_block = wisp_cpu_block_bytes(k0->act_type);
        if (n_tok == 1 || (double)n_in * (double)n_tok < MATMUL_MIN_PARALLEL_MACS / 64 ||
            wisp_threadpool_size(tp) == 1)
            quantize_task(&j, 0, 1);
        else
            wisp_threadpool_run(tp, quantize_task, &j);
    }

    if (j.amx_a) {
        /* a tile's weight panel is repacked once for its tokens */
        j.rows_per_tile = ROWS_AMX;
        j.toks_per_tile = n_tok < TOKS_AMX ? n_tok : TOKS_AMX;
    } else if (n_tok == 1) {
        j.rows_per_tile = ROWS_DECODE;
        j.toks_per_tile = 1;
    } else {
        int64_t tok = (int64_t)(TILE_ACT_BYTES / j.a_row);
        tok = tok / WISP_GEMM_NC * WISP_GEMM_NC;
        if (tok < TILE_MIN_TOKS)
            tok = TILE_MIN_TOKS;
        /* panel kernels decode a tile's weight rows once for its tokens */
        bool panels = true;
        for (int i = 0; i < n_w; i++)
            panels &= j.part[i].panel != NULL;
        if (panels)
            tok = WISP_PANEL_NC;
        j.toks_per_tile = tok < n_tok ? tok : n_tok;
        const int64_t tok_tiles = (n_tok + j.toks_per_tile - 1) / j.toks_per_tile;
        const int64_t want = (int64_t)TILES_PER_THREAD * wisp_threadpool_size(tp);
        j.rows_per_tile = ROWS_PREFILL_MAX;
        while (j.rows_per_tile > ROWS_PREFILL_MIN) {
            int64_t tiles = 0;
            for (int i = 0; i < n_w; i++)
                tiles += (j.part[i].n_out + j.rows_per_tile - 1) / j.rows_per_tile * tok_tiles;
            if (tiles >= want)
                break;
            j.rows_per_tile /= 2;
        }
    }
    j.n_tok_tiles = (n_tok + j.toks_per_tile - 1) / j.toks_per_tile;
    for (int i = 0; i < n_w; i++) {
        mm_part *p = &j.part[i];
        p->n_row_tiles = (p->n_out + j.rows_per_tile - 1) / j.rows_per_tile;
        p->tile0 = j.n_tiles;
        j.n_tiles += p->n_row_tiles * j.n_tok_tiles;
    }
    atomic_init(&j.next, 0);
    /* Waking the pool costs microseconds, more on a busy machine; a product
     * smaller than this is done sooner by one thread alone. */
    if (j.n_tiles == 1 || macs < MATMUL_MIN_PARALLEL_MACS || wisp_threadpool_size(tp) == 1)
        dot_task(&j, 0, 1);
    else
        wisp_threadpool_run(tp, dot_task, &j);
    return 0;
}

int wisp_matmul(wisp_threadpool *tp, const wisp_tensor *w, const float *x, int64_t n_tok, float *y,
                wisp_matmul_scratch *scratch, wisp_err *err)
{
    return wisp_matmul_n(tp, &w, 1, x, n_tok, &y, scratch, err);
}
