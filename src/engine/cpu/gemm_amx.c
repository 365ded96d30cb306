/*
 * gemm_amx.c - AMX int8 products of 32-element block weights (Q4_0, Q5_0,
 * Q8_0) with Q8_0 activations, for batches (see amx.h).
 *
 * A tile product gives the exact int32 sum of each weight block with each
 * token's activation block for 16 tokens x 16 weight rows at once. The
 * weights' blocks are first repacked, for a panel of 32 rows and up to
 * KCHUNK blocks, into the layout the tile unit reads (8 rows of 16 x 4
 * consecutive int8: the "VNNI" layout), signed, through gathers; that cost
 * is shared by every token of the call. The float work per block is then
 * the dot kernels' (quants_x86.h DEF_DOT32S), element for element:
 *     acc[b % 4] = fma(dw * da, (float)isum, acc[b % 4])   for blocks in
 *                                                          groups of four
 *     tail      += (dw * da) * (float)isum                 for the rest
 *     y          = ((acc0 + acc2) + (acc1 + acc3)) + tail
 * so a row computed here has the bits the AVX-512 dot kernel gives it.
 *
 * Built with -mamx-tile -mamx-int8 and the AVX-512 flags (Makefile: files
 * named *_amx.c); only called when amx.c found the CPU and OS able.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/fp16.h"
#include "engine/cpu/amx.h"
#include "engine/cpu/cpu_types.h"
#include "model/quant_blocks.h"

/* Weight rows per panel (two B tiles); tokens accumulated at a time; the
 * most blocks a row may have (8192 elements): a panel's blocks are packed
 * at once, on the stack (256 KiB of weights, 32 KiB of scales, 40 KiB of
 * accumulators). Longer rows take the AVX-512 kernels (WISP_AMX_MAX_IN). */
#define PANEL          32
#define TOKS           64
#define AMX_MAX_BLOCKS (WISP_AMX_MAX_IN / 32)
#define TILE_BYTES     512 /* a B tile: 8 rows x 64 bytes */
#define CB_SKEW        80  /* int32s between the two C buffers (320 bytes) */

_Static_assert(PANEL == 2 * WISP_AMX_TILE && TOKS % 32 == 0, "tile multiples");

/* Tile registers: C0..C3 (16 tokens x 16 rows of int32: token tiles 0 and
 * 1 times weight tiles 0 and 1), A0, A1 (16 tokens x one 32-byte block),
 * B0, B1 (one block of 16 weight rows each). Macros, not an enum: the
 * intrinsics paste the number into the asm. */
#define TC0 0
#define TC1 1
#define TC2 2
#define TC3 3
#define TA0 4
#define TA1 5
#define TB0 6
#define TB1 7

typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* GCC 12's AMX intrinsics do not tell the compiler which memory they touch
 * (ldtilecfg names 8 of the config's 64 bytes, tileloadd and tilestored
 * none), so it may drop the stores that fill a buffer a tile then reads,
 * or move loads of a tile's stored sums before the store. The config is
 * loaded through an operand covering all of it, and every tile load and
 * store is fenced for the compiler (the fence emits no instruction). */
#define FENCE() __asm__ volatile("" ::: "memory")
#define TLOAD(t, p, stride)        \
    do {                           \
        FENCE();                   \
        _tile_loadd(t, p, stride); \
    } while (0)
#define TSTORE(t, p, stride)        \
    do {                            \
        _tile_stored(t, p, stride); \
        FENCE();                    \
    } while (0)

/* k: bytes of K per product, 32 (a block or sub-block) or 16 (a Q6_K
 * group): A tiles are 16 tokens x k bytes, B tiles k / 4 rows of 16 x 4. */
static void load_config(int k)
{
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = TC0; t <= TC3; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    c.rows[TA0] = c.rows[TA1] = 16;
    c.colsb[TA0] = c.colsb[TA1] = (uint16_t)k;
    c.rows[TB0] = c.rows[TB1] = (uint8_t)(k / 4);
    c.colsb[TB0] = c.colsb[TB1] = 64;
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
}

/* ------------------------------------------------------------ repacking */

/* Packs blocks [b0, b0 + nb) of nt tiles of 16 weight rows: pk[bi][t] is
 * the tile of block b0 + bi for rows 16t..16t+15 (row k4 of the tile holds
 * elements 4k4..4k4+3 of each of the 16 rows, signed), dw[bi][32] their
 * scales. idx holds the byte offsets of 16 consecutive rows, sw apart. */
typedef void (*pack_fn)(const char *w, size_t sw, __m512i idx, int64_t b0, int nb, int nt,
                        int8_t *pk, float *dw);

static inline __m512i gather(const char *p, __m512i idx)
{
    return _mm512_i32gather_epi32(idx, p, 1);
}
static inline void store64(int8_t *dst, __m512i v) { _mm512_store_si512((__m512i *)dst, v); }

/* The blocks' fp16 scales, which every type here has at offset 0. */
static inline __m512 gather_scales(const char *blk, __m512i idx)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather(blk, idx)));
}

/* Loops over the blocks and tiles of a pack, with blk the block's start
 * in the tile's first row and dst its tile. */
#define PACK_LOOP(BLOCK, BODY)                                                               \
    for (int bi = 0; bi < nb; bi++)                                                          \
        for (int t = 0; t < nt; t++) {                                                       \
            const char *blk = w + (size_t)(16 * t) * sw + (size_t)(b0 + bi) * sizeof(BLOCK); \
            int8_t *dst = pk + ((size_t)bi * 2 + (size_t)t) * TILE_BYTES;                    \
            _mm512_store_ps(dw + bi * PANEL + 16 * t, gather_scales(blk, idx));              \
            BODY                                                                             \
        }

static void pack_q8_0(const char *w, size_t sw, __m512i idx, int64_t b0, int nb, int nt, int8_t *pk,
                      float *dw)
{
    PACK_LOOP(wisp_block_q8_0, {
        for (int g = 0; g < 8; g++)
            store64(dst + 64 * g, gather(blk + offsetof(wisp_block_q8_0, qs) + 4 * g, idx));
    })
}

/* Elements 0..15 are the low nibbles of qs, 16..31 the high ones. */
static void pack_q4_0(const char *w, size_t sw, __m512i idx, int64_t b0, int nb, int nt, int8_t *pk,
                      float *dw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    PACK_LOOP(wisp_block_q4_0, {
        for (int g = 0; g < 4; g++) {
            __m512i v = gather(blk + offsetof(wisp_block_q4_0, qs) + 4 * g, idx);
            store64(dst + 64 * g, _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
            store64(dst + 64 * (g + 4),
                    _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi32(v, 4), m4), eight));
        }
    })
}

/* Bits 0..3 of each lane to bit 4 of its four bytes: the four copies of
 * x shifted by 0, 7, 14, 21 do not overlap, so the product carries
 * nothing and bit 8k holds bit k. */
static inline __m512i spread4(__m512i x)
{
    __m512i m = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x00204081));
    return _mm512_slli_epi32(_mm512_and_si512(m, _mm512_set1_epi32(0x01010101)), 4);
}

/* Element j's fifth bit is bit j of qh. */
static void pack_q5_0(const char *w, size_t sw, __m512i idx, int64_t b0, int nb, int nt, int8_t *pk,
                      float *dw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), x4 = _mm512_set1_epi32(0xF);
    const __m512i sixteen = _mm512_set1_epi8(16);
    PACK_LOOP(wisp_block_q5_0, {
        const __m512i qh = gather(blk + offsetof(wisp_block_q5_0, qh), idx);
        for (int g = 0; g < 4; g++) {
            __m512i v = gather(blk + offsetof(wisp_block_q5_0, qs) + 4 * g, idx);
            __m512i hlo = spread4(_mm512_and_si512(_mm512_srli_epi32(qh, 4 * g), x4));
            __m512i hhi = spread4(_mm512_and_si512(_mm512_srli_epi32(qh, 16 + 4 * g), x4));
            __m512i lo = _mm512_or_si512(_mm512_and_si512(v, m4), hlo);
            __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 4), m4), hhi);
            store64(dst + 64 * g, _mm512_sub_epi8(lo, sixteen));
            store64(dst + 64 * (g + 4), _mm512_sub_epi8(hi, sixteen));
        }
    })
}

/* ------------------------------------------------------------ product */

/* Where a step's sums go: lane b % 4 of the accumulators while block b is
 * in a group of four, else the tail. */
typedef struct fold_dst {
    float *acc;  /* acc[lane][token][PANEL] of the token chunk */
    float *tail; /* tail[token][PANEL] */
} fold_dst;

/* Folds one C tile (16 tokens x 16 rows of block b's int32 sums) into the
 * accumulators at token t0 (of the chunk) and row 16 h of the panel. */
static inline void fold_tile(const int32_t *cb, __m512 dwv, const float *da, bool grouped,
                             bool first, float *accp, float *tailp)
{
    /* first: the accumulator's first block adds to +0.f, as if it had been
     * cleared (the same bits, without clearing 40 KiB per chunk) */
    for (int t = 0; t < 16; t++) {
        const __m512 sc = _mm512_mul_ps(dwv, _mm512_set1_ps(da[t]));
        const __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * t)));
        float *p = (grouped ? accp : tailp) + (size_t)t * PANEL;
        const __m512 old = first ? _mm512_setzero_ps() : _mm512_load_ps(p);
        _mm512_store_ps(p, grouped ? _mm512_fmadd_ps(sc, c, old)
                                   : _mm512_add_ps(old, _mm512_mul_ps(sc, c)));
    }
}

/* One step: block b against token tiles [tt, tt + n_a) of the chunk. */
typedef struct amx_step {
    int64_t b;
    int t0, n_a; /* first token of the chunk, token tiles (1 or 2) */
} amx_step;

static inline __attribute__((always_inline)) void fold_step(const amx_step *st, const int32_t *cb,
                                                            const float *dw, int nt, const char *at,
                                                            int64_t nb, int64_t grouped_end,
                                                            float *acc, float *tail)
{
    const bool grouped = st->b < grouped_end;
    const bool first = grouped ? st->b < 4 : st->b == grouped_end;
    float *accb = acc + (size_t)(st->b % 4) * TOKS * PANEL;
    for (int i = 0; i < st->n_a; i++) {
        const int t0 = st->t0 + 16 * i;
        const float *da =
            (const float *)(at +
                            ((size_t)(t0 / 16) * (size_t)nb + (size_t)st->b) * WISP_AMX_UNIT_Q8_0 +
                            512);
        for (int h = 0; h < nt; h++) {
            const size_t o = (size_t)t0 * PANEL + 16 * (size_t)h;
            fold_tile(cb + 256 * (2 * i + h), _mm512_load_ps(dw + st->b * PANEL + 16 * h), da,
                      grouped, first, accb + o, tail + o);
        }
    }
}

/* The tile products of block b for one or two token tiles (q: the first
 * one's quants) and one or two weight tiles, stored to cb. */
static inline void tile_step(const int8_t *pk, int64_t b, int nt, const char *q, size_t q_next,
                             int n_a, int32_t *cb)
{
    TLOAD(TB0, pk + (size_t)b * 2 * TILE_BYTES, 64);
    if (nt == 2)
        TLOAD(TB1, pk + ((size_t)b * 2 + 1) * TILE_BYTES, 64);
    TLOAD(TA0, q, 32);
    if (n_a == 2)
        TLOAD(TA1, q + q_next, 32);
    _tile_zero(TC0);
    _tile_dpbssd(TC0, TA0, TB0);
    if (nt == 2) {
        _tile_zero(TC1);
        _tile_dpbssd(TC1, TA0, TB1);
    }
    if (n_a == 2) {
        _tile_zero(TC2);
        _tile_dpbssd(TC2, TA1, TB0);
        if (nt == 2) {
            _tile_zero(TC3);
            _tile_dpbssd(TC3, TA1, TB1);
        }
    }
    TSTORE(TC0, cb, 64);
    if (nt == 2)
        TSTORE(TC1, cb + 256, 64);
    if (n_a == 2) {
        TSTORE(TC2, cb + 512, 64);
        if (nt == 2)
            TSTORE(TC3, cb + 768, 64);
    }
}

static void gemm_amx(pack_fn pack, int64_t n, const char *w, size_t sw, int nr, const char *a,
                     int nc, float *s, size_t ss)
{
    const int64_t nb = n / 32, grouped_end = nb / 4 * 4;
    const size_t tile_stride = (size_t)nb * WISP_AMX_UNIT_Q8_0; /* between token tiles */
    _Alignas(64) int8_t pk[AMX_MAX_BLOCKS * 2 * TILE_BYTES];
    _Alignas(64) float dw[AMX_MAX_BLOCKS * PANEL];
    _Alignas(64) float acc[4 * TOKS * PANEL];
    _Alignas(64) float tail[TOKS * PANEL];
    /* Two buffers of C tiles, one written by the tile unit while the other
     * is folded; skewed so that they are not a multiple of 4 KiB apart
     * (the CPU would take the loads of one for dependent on the stores to
     * the other and wait), and small enough to stay in L1. */
    _Alignas(64) int32_t cb_mem[2 * 1024 + CB_SKEW];
    int32_t *const cbuf[2] = {cb_mem, cb_mem + 1024 + CB_SKEW};
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)sw));

    load_config(32);
    for (int r0 = 0; r0 < nr; r0 += PANEL) {
        const int nt = nr - r0 >= PANEL ? 2 : 1;
        pack(w + (size_t)r0 * sw, sw, idx, 0, (int)nb, nt, pk, dw);
        for (int c0 = 0; c0 < nc; c0 += TOKS) {
            const int ct = nc - c0 < TOKS ? nc - c0 : TOKS;
            const char *at = a + (size_t)(c0 / 16) * tile_stride;
            amx_step prev = {0};
            bool have_prev = false;
            int cur = 0;
            for (int64_t b = 0; b < nb; b++)
                for (int t0 = 0; t0 < ct; t0 += 32) {
                    const int n_a = ct - t0 >= 32 ? 2 : 1;
                    tile_step(pk, b, nt,
                              at + (size_t)(t0 / 16) * tile_stride + (size_t)b * WISP_AMX_UNIT_Q8_0,
                              tile_stride, n_a, cbuf[cur]);
                    /* the previous step is folded while the tile unit works */
                    if (have_prev)
                        fold_step(&prev, cbuf[cur ^ 1], dw, nt, at, nb, grouped_end, acc, tail);
                    prev = (amx_step){b, t0, n_a};
                    have_prev = true;
                    cur ^= 1;
                }
            fold_step(&prev, cbuf[cur ^ 1], dw, nt, at, nb, grouped_end, acc, tail);
            for (int t = 0; t < ct; t++)
                for (int h = 0; h < nt; h++) {
                    const size_t o = (size_t)t * PANEL + 16 * (size_t)h, l = TOKS * PANEL;
                    /* accumulators no block reached are the +0.f they start as */
                    const __m512 z = _mm512_setzero_ps();
                    __m512 v = z;
                    if (grouped_end > 0)
                        v = _mm512_add_ps(_mm512_add_ps(_mm512_load_ps(acc + o),
                                                        _mm512_load_ps(acc + 2 * l + o)),
                                          _mm512_add_ps(_mm512_load_ps(acc + l + o),
                                                        _mm512_load_ps(acc + 3 * l + o)));
                    else
                        v = _mm512_add_ps(_mm512_add_ps(z, z), _mm512_add_ps(z, z));
                    v = _mm512_add_ps(v, nb > grouped_end ? _mm512_load_ps(tail + o) : z);
                    _mm512_storeu_ps(s + (size_t)(c0 + t) * ss + (size_t)(r0 + 16 * h), v);
                }
        }
    }
    _tile_release();
}

/* ------------------------------------------------------------ Q4_K */

/* Q4_K against Q8_K: a super-block of 256 is 8 sub-blocks of 32, each with
 * its own 6-bit scale sc_j and minimum m_j. The tile unit gives each
 * sub-block's exact sum of unsigned quants x signed activations; the
 * vector unit then forms the super-block's two exact integers,
 *     isum = sum_j sc_j * <u, y>_j      corr = sum_j m_j * (sum of y)_j,
 * and folds them as the K-quant dot does (quants_x86_k.h kdot_block):
 *     acc = fma(y.d * d, isum, acc)     accm = fma(y.d * -dmin, corr, accm)
 * and the result is acc + accm. A panel's weights are unpacked once into
 * B tiles (8 per super-block and 16 rows) with their scales as int32. */
#define KSB_MAX (WISP_AMX_MAX_IN / WISP_QK_K)
#define KU_D    (8 * 512) /* offsets in a Q8_K unit (amx.h) */
#define KU_SUM  (8 * 512 + 64)

typedef struct kpanel {
    int8_t pk[KSB_MAX][2][8][TILE_BYTES]; /* [super-block][weight tile][sub-block] */
    int32_t sc[KSB_MAX][8][PANEL], mn[KSB_MAX][8][PANEL];
    float d[KSB_MAX][PANEL], cm[KSB_MAX][PANEL];
} kpanel;

static void pack_q4_K(const char *w, size_t sw, __m512i idx, int64_t nsb, int nt, kpanel *p)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t sb = 0; sb < nsb; sb++)
        for (int t = 0; t < nt; t++) {
            const char *blk = w + (size_t)(16 * t) * sw + (size_t)sb * sizeof(wisp_block_q4_K);
            const char *qs = blk + offsetof(wisp_block_q4_K, qs);
            /* chunk c of 32 bytes: low nibbles are sub-block 2c, high 2c+1 */
            for (int c = 0; c < 4; c++)
                for (int g = 0; g < 8; g++) {
                    __m512i v = gather(qs + 32 * c + 4 * g, idx);
                    store64(p->pk[sb][t][2 * c] + 64 * g, _mm512_and_si512(v, m4));
                    store64(p->pk[sb][t][2 * c + 1] + 64 * g,
                            _mm512_and_si512(_mm512_srli_epi32(v, 4), m4));
                }
            for (int r = 0; r < 16; r++) {
                const wisp_block_q4_K *b = (const wisp_block_q4_K *)(blk + (size_t)r * sw);
                for (int j = 0; j < 8; j++) {
                    uint8_t sc, m;
                    wisp_get_scale_min_k4(j, b->scales, &sc, &m);
                    p->sc[sb][j][16 * t + r] = sc;
                    p->mn[sb][j][16 * t + r] = m;
                }
                p->d[sb][16 * t + r] = wisp_half_to_float(b->d);
                p->cm[sb][16 * t + r] = -wisp_half_to_float(b->dmin);
            }
        }
}

/* The 8 sub-blocks' tile products of super-block sb for one token tile,
 * into cb[h][j] (16 tokens x 16 rows of int32 each). */
static void ktile_phase(const kpanel *p, const char *unit, int64_t sb, int nt, int32_t *cb)
{
    for (int j = 0; j < 8; j += 2) {
        /* even and odd sub-blocks alternate C tiles */
        TLOAD(TA0, unit + 512 * j, 32);
        TLOAD(TB0, p->pk[sb][0][j], 64);
        _tile_zero(TC0);
        _tile_dpbsud(TC0, TA0, TB0);
        if (nt == 2) {
            TLOAD(TB1, p->pk[sb][1][j], 64);
            _tile_zero(TC1);
            _tile_dpbsud(TC1, TA0, TB1);
        }
        TLOAD(TA1, unit + 512 * (j + 1), 32);
        TLOAD(TB0, p->pk[sb][0][j + 1], 64);
        _tile_zero(TC2);
        _tile_dpbsud(TC2, TA1, TB0);
        if (nt == 2) {
            TLOAD(TB1, p->pk[sb][1][j + 1], 64);
            _tile_zero(TC3);
            _tile_dpbsud(TC3, TA1, TB1);
        }
        TSTORE(TC0, cb + 256 * j, 64);
        TSTORE(TC2, cb + 256 * (j + 1), 64);
        if (nt == 2) {
            TSTORE(TC1, cb + 256 * (8 + j), 64);
            TSTORE(TC3, cb + 256 * (8 + j + 1), 64);
        }
    }
}

static void kfold(const kpanel *p, const char *unit, int64_t sb, int nt, const int32_t *cb,
                  float (*acc)[PANEL], float (*accm)[PANEL])
{
    const float *yd = (const float *)(unit + KU_D);
    const int32_t *ysum = (const int32_t *)(unit + KU_SUM);
    for (int h = 0; h < nt; h++) {
        __m512i sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = _mm512_loadu_si512((const void *)(p->sc[sb][j] + 16 * h));
            mn[j] = _mm512_loadu_si512((const void *)(p->mn[sb][j] + 16 * h));
        }
        const __m512 dv = _mm512_loadu_ps(p->d[sb] + 16 * h);
        const __m512 cmv = _mm512_loadu_ps(p->cm[sb] + 16 * h);
        for (int t = 0; t < 16; t++) {
            __m512i isum = _mm512_setzero_si512(), corr = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++) {
                const __m512i c =
                    _mm512_load_si512((const void *)(cb + 256 * (8 * h + j) + 16 * t));
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(sc[j], c));
                corr =
                    _mm512_add_epi32(corr, _mm512_mullo_epi32(mn[j],
                                                              _mm512_set1_epi32(ysum[16 * j + t])));
            }
            const __m512 y = _mm512_set1_ps(yd[t]);
            float *a = acc[t] + 16 * h, *am = accm[t] + 16 * h;
            _mm512_store_ps(a, _mm512_fmadd_ps(_mm512_mul_ps(y, dv), _mm512_cvtepi32_ps(isum),
                                               _mm512_load_ps(a)));
            _mm512_store_ps(am, _mm512_fmadd_ps(_mm512_mul_ps(y, cmv), _mm512_cvtepi32_ps(corr),
                                                _mm512_load_ps(am)));
        }
    }
}

static void amx_gemm_q4_K(int64_t n, const void *vw, size_t sw, int nr, const void *va, int nc,
                          float *s, size_t ss)
{
    const char *w = vw, *a = va;
    const int64_t nsb = n / WISP_QK_K;
    const size_t tile_stride = (size_t)nsb * WISP_AMX_UNIT_Q8_K;
    _Alignas(64) kpanel p;
    _Alignas(64) float acc[16][PANEL], accm[16][PANEL];
    /* Two buffers of 16 C tiles: one super-block's products are written
     * while the previous one's are folded; skewed against 4K aliasing. */
    _Alignas(64) int32_t cb_mem[2 * 16 * 256 + CB_SKEW];
    int32_t *const cbuf[2] = {cb_mem, cb_mem + 16 * 256 + CB_SKEW};
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)sw));

    load_config(32);
    for (int r0 = 0; r0 < nr; r0 += PANEL) {
        const int nt = nr - r0 >= PANEL ? 2 : 1;
        pack_q4_K(w + (size_t)r0 * sw, sw, idx, nsb, nt, &p);
        for (int c0 = 0; c0 < nc; c0 += 16) {
            const char *at = a + (size_t)(c0 / 16) * tile_stride;
            memset(acc, 0, sizeof acc);
            memset(accm, 0, sizeof accm);
            ktile_phase(&p, at, 0, nt, cbuf[0]);
            for (int64_t sb = 0; sb < nsb; sb++) {
                if (sb + 1 < nsb)
                    ktile_phase(&p, at + (size_t)(sb + 1) * WISP_AMX_UNIT_Q8_K, sb + 1, nt,
                                cbuf[(sb + 1) & 1]);
                kfold(&p, at + (size_t)sb * WISP_AMX_UNIT_Q8_K, sb, nt, cbuf[sb & 1], acc, accm);
            }
            for (int t = 0; t < 16; t++)
                for (int h = 0; h < nt; h++)
                    _mm512_storeu_ps(s + (size_t)(c0 + t) * ss + (size_t)(r0 + 16 * h),
                                     _mm512_add_ps(_mm512_load_ps(acc[t] + 16 * h),
                                                   _mm512_load_ps(accm[t] + 16 * h)));
        }
    }
    _tile_release();
}

/* ------------------------------------------------------------ Q6_K */

/* Q6_K against Q8_K: 16 groups of 16 with int8 scales and 6-bit quants q
 * (value q - 32). Its dot (kdec_q6_K) folds the offset through the
 * activation sums: isum = sum_g sc_g <q, y>_g, corr = 32 sum_g sc_g
 * (sum of y)_g, acc = fma(y.d * d, isum - corr, acc). A group is 16
 * elements, so the tiles here take K = 16 (A: 16 tokens x 16 bytes, B: 4
 * rows of 16 x 4): load_config(16). */
#define KU_SUM16 (8 * 512 + 64 + 512)

typedef struct k6panel {
    int8_t pk[KSB_MAX][2][16][256]; /* [super-block][weight tile][group]: 4 rows x 64 */
    int32_t sc[KSB_MAX][16][PANEL];
    float d[KSB_MAX][PANEL];
} k6panel;

static void pack_q6_K(const char *w, size_t sw, __m512i idx, int64_t nsb, int nt, k6panel *p)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    for (int64_t sb = 0; sb < nsb; sb++)
        for (int t = 0; t < nt; t++) {
            const char *blk = w + (size_t)(16 * t) * sw + (size_t)sb * sizeof(wisp_block_q6_K);
            const char *ql = blk + offsetof(wisp_block_q6_K, ql);
            const char *qh = blk + offsetof(wisp_block_q6_K, qh);
            /* elements 128h + 32part + l (l = 0..31): ql byte 64h + 32(part & 1) + l, low
             * nibble for parts 0, 1, high for 2, 3; high bits 2part of qh byte 32h + l */
            for (int h = 0; h < 2; h++)
                for (int l = 0; l < 32; l += 4) {
                    const __m512i lo = gather(ql + 64 * h + l, idx);
                    const __m512i hi = gather(ql + 64 * h + 32 + l, idx);
                    const __m512i hb = gather(qh + 32 * h + l, idx);
                    for (int part = 0; part < 4; part++) {
                        const __m512i v = part & 1 ? hi : lo;
                        const __m512i nib = part < 2
                                                ? _mm512_and_si512(v, m4)
                                                : _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
                        const __m512i top =
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * part), m2),
                                              4);
                        const int e = 128 * h + 32 * part + l;
                        store64(p->pk[sb][t][e / 16] + 64 * ((e % 16) / 4),
                                _mm512_or_si512(nib, top));
                    }
                }
            for (int r = 0; r < 16; r++) {
                const wisp_block_q6_K *b = (const wisp_block_q6_K *)(blk + (size_t)r * sw);
                for (int g = 0; g < 16; g++)
                    p->sc[sb][g][16 * t + r] = b->scales[g];
                p->d[sb][16 * t + r] = wisp_half_to_float(b->d);
            }
        }
}

/* The 16 groups' tile products of super-block sb and weight tile h for
 * one token tile into cb[g] (16 tokens x 16 rows of int32 each). */
static void k6tile_phase(const k6panel *p, const char *unit, int64_t sb, int h, int32_t *cb)
{
    for (int g = 0; g < 16; g += 2) {
        /* group g is the first or second half of sub-block g / 2's 32 bytes */
        TLOAD(TA0, unit + 512 * (g / 2), 32);
        TLOAD(TA1, unit + 512 * (g / 2) + 16, 32);
        TLOAD(TB0, p->pk[sb][h][g], 64);
        TLOAD(TB1, p->pk[sb][h][g + 1], 64);
        _tile_zero(TC0);
        _tile_dpbsud(TC0, TA0, TB0);
        _tile_zero(TC1);
        _tile_dpbsud(TC1, TA1, TB1);
        TSTORE(TC0, cb + 256 * g, 64);
        TSTORE(TC1, cb + 256 * (g + 1), 64);
    }
}

static void k6fold(const k6panel *p, const char *unit, int64_t sb, int h, const int32_t *cb,
                   float (*acc)[PANEL])
{
    const float *yd = (const float *)(unit + KU_D);
    const int32_t *ysum = (const int32_t *)(unit + KU_SUM16);
    __m512i sc[16];
    for (int g = 0; g < 16; g++)
        sc[g] = _mm512_loadu_si512((const void *)(p->sc[sb][g] + 16 * h));
    const __m512 dv = _mm512_loadu_ps(p->d[sb] + 16 * h);
    for (int t = 0; t < 16; t++) {
        __m512i isum = _mm512_setzero_si512(), corr = _mm512_setzero_si512();
        for (int g = 0; g < 16; g++) {
            const __m512i c = _mm512_load_si512((const void *)(cb + 256 * g + 16 * t));
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(sc[g], c));
            corr = _mm512_add_epi32(corr,
                                    _mm512_mullo_epi32(sc[g], _mm512_set1_epi32(ysum[16 * g + t])));
        }
        const __m512i folded = _mm512_sub_epi32(isum, _mm512_slli_epi32(corr, 5));
        float *a = acc[t] + 16 * h;
        _mm512_store_ps(a, _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(yd[t]), dv),
                                           _mm512_cvtepi32_ps(folded), _mm512_load_ps(a)));
    }
}

static void amx_gemm_q6_K(int64_t n, const void *vw, size_t sw, int nr, const void *va, int nc,
                          float *s, size_t ss)
{
    const char *w = vw, *a = va;
    const int64_t nsb = n / WISP_QK_K;
    const size_t tile_stride = (size_t)nsb * WISP_AMX_UNIT_Q8_K;
    _Alignas(64) k6panel p;
    _Alignas(64) float acc[16][PANEL];
    _Alignas(64) int32_t cb_mem[2 * 16 * 256 + CB_SKEW];
    int32_t *const cbuf[2] = {cb_mem, cb_mem + 16 * 256 + CB_SKEW};
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)sw));

    load_config(16);
    for (int r0 = 0; r0 < nr; r0 += PANEL) {
        const int nt = nr - r0 >= PANEL ? 2 : 1;
        pack_q6_K(w + (size_t)r0 * sw, sw, idx, nsb, nt, &p);
        for (int c0 = 0; c0 < nc; c0 += 16) {
            const char *at = a + (size_t)(c0 / 16) * tile_stride;
            memset(acc, 0, sizeof acc);
            /* steps (super-block, weight tile), each one's products written
             * while the previous one's are folded */
            const int64_t n_steps = nsb * nt;
            k6tile_phase(&p, at, 0, 0, cbuf[0]);
            for (int64_t st = 0; st < n_steps; st++) {
                if (st + 1 < n_steps)
                    k6tile_phase(&p, at + (size_t)((st + 1) / nt) * WISP_AMX_UNIT_Q8_K,
                                 (st + 1) / nt, (int)((st + 1) % nt), cbuf[(st + 1) & 1]);
                k6fold(&p, at + (size_t)(st / nt) * WISP_AMX_UNIT_Q8_K, st / nt, (int)(st % nt),
                       cbuf[st & 1], acc);
            }
            /* the dot adds its (zero) minimum accumulator: + 0.f */
            for (int t = 0; t < 16; t++)
                for (int h = 0; h < nt; h++)
                    _mm512_storeu_ps(s + (size_t)(c0 + t) * ss + (size_t)(r0 + 16 * h),
                                     _mm512_add_ps(_mm512_load_ps(acc[t] + 16 * h),
                                                   _mm512_setzero_ps()));
        }
    }
    _tile_release();
}

#define DEF_AMX(name)                                                                       \
    static void amx_gemm_##name(int64_t n, const void *w, size_t sw, int nr, const void *a, \
                                int nc, float *s, size_t ss)                                \
    {                                                                                       \
        gemm_amx(pack_##name, n, w, sw, nr, a, nc, s, ss);                                  \
    }
DEF_AMX(q4_0)
DEF_AMX(q5_0)
DEF_AMX(q8_0)

const wisp_amx_fn wisp_amx_gemm_table[WISP_TYPE_COUNT] = {
    [WISP_TYPE_Q4_0] = amx_gemm_q4_0, [WISP_TYPE_Q5_0] = amx_gemm_q5_0,
    [WISP_TYPE_Q8_0] = amx_gemm_q8_0, [WISP_TYPE_Q4_K] = amx_gemm_q4_K,
    [WISP_TYPE_Q6_K] = amx_gemm_q6_K,
};
