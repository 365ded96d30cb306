/*
 * repack.h - Q4_0 / Q8_0 / K-quant (and, on request, F16 / BF16) weights
 * repacked at load into interleaved rows.
 *
 * In the file's layout each weight row is a run of blocks, so a kernel
 * that wants one int32 sum per block has to reduce every block's dot
 * vector across its lanes. Repacked, WISP_RP_ROWS (8) consecutive rows
 * form a group whose blocks are stored by quads of WISP_RP_QUAD (4)
 * blocks: for each quad, a 64-byte vector holds one 4-byte group of
 * quants of 4 rows x 4 blocks, one per int32 lane (lane 4 * row + block),
 * so a vpdpbusd against one 16-byte broadcast of the activations (the
 * same 4-byte group of the 4 blocks, cpu_types.h's quads section) adds
 * into each lane exactly that lane's block sum: no reduction, no shuffle,
 * and one activation load feeds 4 rows (8 with the group's two halves).
 * The quad's 32 half-precision scales come first, in the same lane order,
 * so they convert as two vectors. Lanes keep blocks 4q + k in lane k of a
 * row, which is where the kernels of the file's layout accumulate them
 * (quants_x86.h), so the float work per output is theirs, step for step.
 *
 * Group layout (8 * row bytes, the size of the 8 rows it replaces):
 *   nq = nb / 4 quads, each   [scales: 32 halves, index 16 h + 4 r + k,
 *                               for row 4 h + r, block 4 q + k]
 *                              [quants: vectors V(j, h), j = 0..J-1, h = 0, 1,
 *                               lane 4 r + k = 4 bytes of row 4 h + r,
 *                               block 4 q + k]
 *     Q4_0: J = 4, V(m, h) lane = qs[4m .. 4m+3]: low nibbles are elements
 *           4m .. 4m+3, high nibbles 16+4m .. 16+4m+3 (one AND, or a shift
 *           and an AND, gives each);
 *     Q8_0: J = 8, V(j, h) lane = qs[4j .. 4j+3].
 *   then the nb % 4 blocks past the quads of each row, rows 0..7 in turn,
 *   in the file's layout.
 * Rows past the last whole group stay in the file's layout, where they
 * were, so a tensor of n rows keeps its size and its row offsets for them.
 *
 * K-quants (Q4_K, Q5_K, Q6_K): groups of WISP_RP_K_ROWS (16) rows, the
 * lanes of the panel kernel (quants_x86_kpanel.h), super-block by
 * super-block; super-block i of a group takes the bytes of the 16 file
 * blocks it replaces (wisp_rp_k_sb_bytes). Each of the block's byte fields
 * is cut into 4-byte pieces, piece k of every row making one vector whose
 * int32 lane r is row r's piece: a field of B bytes is B / 4 vectors, and
 * each half-precision factor is 16 halves in row order. The quant bits of
 * one element group then come out of a shift or rotate and an AND in the
 * lanes, and the 6-bit or 8-bit scales unpack in the lanes too, so no
 * kernel transposes anything. The vectors lie in the order the kernels
 * read them, so a decode step streams each super-block front to back,
 * which is what the hardware prefetchers follow:
 *   Q4_K: [scales: 3 vectors] [qs: 32: lane r = qs[4v .. 4v + 3]: low
 *          nibbles are elements 64c + 4m .. + 3 for v = 8c + m, high
 *          nibbles 64c + 32 + 4m .. + 3] [d: 16 halves] [dmin: 16]
 *   Q5_K: [scales: 3] [qh: 8, element bit 4 of piece g's byte b is bit m
 *          of qh[4g + b], m the 32-element sub-block] [qs: 32, as Q4_K's]
 *         [d] [dmin]
 *   Q6_K: [scales: 4, int8 per 16 elements] [4 chunks c = 2h + q, one
 *          per quarter of the element groups: for g = 0..3, the vectors
 *          ql(16h + 4q + g), ql(16h + 8 + 4q + g), qh(8h + 4q + g)] [d]
 *          (ql(k), qh(k): the field's piece k; WISP_RP_K6_SLOT)
 * The factors go last so that the quant vectors keep their 64-byte
 * alignment within a super-block.
 *
 * BF16 (F16 or BF16 weights computed in BF16, on request: bf16dot.h):
 * groups of 16 rows; for each element pair p, one vector whose int32 lane
 * r holds row r's elements 2p (low half) and 2p + 1 (high half), what
 * vdpbf16ps multiplies against the token's pair p, the 4 bytes at 4p of
 * its BF16 row. The rows past the last group are BF16 rows of the file's
 * layout. F16 weights lose their 3 lowest significand bits here (rounded
 * to nearest); unlike every layout above, this one changes the values.
 *
 * A repacked tensor carries its layout in its type id: the file's type
 * with WISP_RP_TYPE_FLAG set (BF16's for the BF16 layout, whatever the
 * file's type), an id no other part of wisp uses; the matmul is the only
 * reader of such a tensor.
 */
#ifndef WISP_REPACK_H
#define WISP_REPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "engine/cpu/cpu_types.h"
#include "engine/cpu/threadpool.h"
#include "model/model.h"

#define WISP_RP_TYPE_FLAG 0x10000

static inline bool wisp_rp_is_repacked(int type) { return (type & WISP_RP_TYPE_FLAG) != 0; }
static inline int wisp_rp_base_type(int type) { return type & ~WISP_RP_TYPE_FLAG; }

/* Bytes of a quad's scales and of one of its quant vectors. */
#define WISP_RP_SCALE_BYTES (2 * WISP_RP_ROWS * WISP_RP_QUAD)
#define WISP_RP_VEC_BYTES   64

/* Quant vectors per row half of a quad (J above): 4 for Q4_0, 8 for Q8_0. */
static inline int wisp_rp_vecs(int type) { return type == WISP_TYPE_Q4_0 ? 4 : 8; }

/* Bytes of one quad of a group. */
static inline size_t wisp_rp_quad_bytes(int type)
{
    return WISP_RP_SCALE_BYTES + (size_t)wisp_rp_vecs(type) * 2 * WISP_RP_VEC_BYTES;
}

/* Copies block 4 q + k of row 4 h + r of a group back into the file's
 * layout (blk: one block of the type), from the quad at quad. */
static inline void wisp_rp_unpack_block(int type, const void *quad, int h, int r, int k, void *blk)
{
    const char *d = (const char *)quad;
    const int lane = 4 * r + k;
    memcpy(blk, d + 2 * (16 * h + lane), 2);
    for (int j = 0; j < wisp_rp_vecs(type); j++)
        memcpy((char *)blk + 2 + 4 * j,
               d + WISP_RP_SCALE_BYTES + (size_t)(2 * j + h) * WISP_RP_VEC_BYTES + 4 * lane, 4);
}

/* Rows of a Q4_K group and the most rows of any type's group (tiles start
 * on a group of every type). */
#define WISP_RP_K_ROWS   16
#define WISP_RP_MAX_ROWS 16
/* Offsets in a K-quant group's super-block (above). */
#define WISP_RP_K4_SCALES 0
#define WISP_RP_K4_QS     (3 * WISP_RP_VEC_BYTES)
#define WISP_RP_K4_D      (WISP_RP_K4_QS + 32 * WISP_RP_VEC_BYTES)
#define WISP_RP_K4_DMIN   (WISP_RP_K4_D + 2 * WISP_RP_K_ROWS)
#define WISP_RP_K5_SCALES 0
#define WISP_RP_K5_QH     (3 * WISP_RP_VEC_BYTES)
#define WISP_RP_K5_QS     (WISP_RP_K5_QH + 8 * WISP_RP_VEC_BYTES)
#define WISP_RP_K5_D      (WISP_RP_K5_QS + 32 * WISP_RP_VEC_BYTES)
#define WISP_RP_K5_DMIN   (WISP_RP_K5_D + 2 * WISP_RP_K_ROWS)
#define WISP_RP_K6_SCALES 0
#define WISP_RP_K6_CHUNKS (4 * WISP_RP_VEC_BYTES)
#define WISP_RP_K6_CHUNK  (12 * WISP_RP_VEC_BYTES)
#define WISP_RP_K6_D      (WISP_RP_K6_CHUNKS + 4 * WISP_RP_K6_CHUNK)
/* The offset of Q6_K's vector (h, q, g, which) in a super-block: which 0
 * and 1 the two ql vectors, 2 the qh vector. */
#define WISP_RP_K6_SLOT(h, q, g, which)                               \
    (WISP_RP_K6_CHUNKS + (size_t)(2 * (h) + (q)) * WISP_RP_K6_CHUNK + \
     (size_t)(3 * (g) + (which)) * WISP_RP_VEC_BYTES)

/* Whether the type is one of the K-quants with a 16-row group layout. */
static inline bool wisp_rp_is_k(int type)
{
    const int b = wisp_rp_base_type(type);
    return b == WISP_TYPE_Q4_K || b == WISP_TYPE_Q5_K || b == WISP_TYPE_Q6_K;
}

/* Bytes of one super-block of a K-quant group: its 16 file blocks. */
static inline size_t wisp_rp_k_sb_bytes(int type)
{
    return WISP_RP_K_ROWS * wisp_cpu_block_bytes(wisp_rp_base_type(type));
}

/* Whether the file's type has a repacked layout. */
static inline bool wisp_rp_type_supported(int type)
{
    return type == WISP_TYPE_Q4_0 || type == WISP_TYPE_Q8_0 || wisp_rp_is_k(type);
}

/* Rows of a group of the type's layout. */
static inline int wisp_rp_group_rows(int type)
{
    return wisp_rp_is_k(type) || wisp_rp_base_type(type) == WISP_TYPE_BF16 ? WISP_RP_K_ROWS
                                                                           : WISP_RP_ROWS;
}

/* Repacks the whole groups of n_out rows of n_in elements (a supported
 * type, n_in a multiple of its block) from src (the file's layout) into dst
 * (the same size) and copies the rows past them. */
void wisp_rp_pack(int type, int64_t n_in, int64_t n_out, const void *src, void *dst);
/* The same, its groups split over the pool's threads (NULL: the caller
 * alone); the bytes are wisp_rp_pack's. */
void wisp_rp_pack_pool(wisp_threadpool *tp, int type, int64_t n_in, int64_t n_out, const void *src,
                       void *dst);

/* The BF16 layout of n_out rows of n_in elements (n_in even) of F16 or
 * BF16 weights (src_type), F16 rounded to nearest BF16: the whole groups
 * repacked, the rows past them as BF16 rows of the file's layout. */
void wisp_rp_pack_bf16(int src_type, int64_t n_in, int64_t n_out, const void *src, void *dst);
void wisp_rp_pack_bf16_pool(wisp_threadpool *tp, int src_type, int64_t n_in, int64_t n_out,
                            const void *src, void *dst);

/* Whether repacking is on: the environment's WISP_REPACK=0 turns it off. */
bool wisp_rp_enabled(void);

/* The weights an engine computes with, with its large products' Q4_0 and
 * Q8_0 tensors repacked (owned copies) and every other tensor shared with
 * the model, as the model holds it. */
typedef struct wisp_rp_weights wisp_rp_weights;

/* What wisp_rp_weights_create converts: quants, the Q4_0 / Q8_0 /
 * K-quant tensors into their layouts (the same bits); bf16, F16 and BF16
 * tensors into the BF16 layout (lossy: wisp_engine_opts.f16_as_bf16), only
 * where wisp_bf16dot_fast() says it pays. */
typedef struct wisp_rp_what {
    bool quants, bf16;
} wisp_rp_what;

/* Repacks the projection weights of layers [layer_begin, layer_end) and,
 * when out_head is set, the output head *out_head (replaced by the copy;
 * a tied token_embd stays in place for the embedding lookups), one tensor
 * at a time, each split over tp's threads (NULL: the caller alone), into
 * one arena (on transparent huge pages where the kernel
 * offers them on request): each source range is handed back to the kernel
 * after it is copied (MADV_PAGEOUT, where there is one), so the resident
 * memory grows by about one tensor beyond the copies. Returns 0 with *out set (NULL when
 * nothing was repacked), or <0 with err set and nothing allocated. */
int wisp_rp_weights_create(const wisp_model_weights *w, int n_layers, int layer_begin,
                           int layer_end, const wisp_tensor **out_head, wisp_rp_what what,
                           wisp_threadpool *tp, wisp_rp_weights **out, wisp_err *err);
/* The weights to compute with (valid until wisp_rp_weights_free). */
const wisp_model_weights *wisp_rp_weights_get(const wisp_rp_weights *rw);
/* Whether data is the model's bytes of a tensor that has a copy here and
 * is no longer read from the model (a tied embedding still is). */
bool wisp_rp_weights_replaces(const wisp_rp_weights *rw, const void *data);
/* Bytes of repacked copies, tensors repacked and the load time it took. */
void wisp_rp_weights_stats(const wisp_rp_weights *rw, size_t *bytes, int *n_tensors, double *ms);
/* Tensors of those in the BF16 layout. */
int wisp_rp_weights_bf16_tensors(const wisp_rp_weights *rw);
void wisp_rp_weights_free(wisp_rp_weights *rw);

#endif
