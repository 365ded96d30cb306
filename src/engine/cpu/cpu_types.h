/*
 * cpu_types.h - the CPU engine's kernel table (private to src/engine/cpu).
 *
 * One row per type id (ggml's type_traits design), one table per SIMD
 * level: quants_ref.c (scalar, the reference every other level is tested
 * against), quants_avx2.c (AVX2+FMA+F16C) and quants_avx512.c (AVX-512
 * F/BW/VL/DQ + VNNI). A level's row may leave entries NULL; the dispatcher
 * (cpu_types.c) then takes the next lower level's entry, so a type gains a
 * fast path by filling one row and nothing else changes.
 *
 * A weight row's dot kernel takes one weight row and up to WISP_DOT_NC_MAX
 * activation rows: decoding a quantized weight block (nibble unpacking,
 * scale unpacking) is paid once for several tokens during prefill, which is
 * where most of the prefill speed comes from after the integer dot itself.
 * For batches, a level may also give a type a gemm kernel (several weight
 * rows x up to 8 tokens per call, register-blocked), kept in a separate
 * table so the dot rows and their fallbacks stay as they are.
 */
#ifndef WISP_CPU_TYPES_H
#define WISP_CPU_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "model/types.h"

/* Activation rows handled by one call of a dot kernel. */
#define WISP_DOT_NC_MAX 4

/* s[c * ss] = sum_i W[i] * A_c[i] for c < nc (1 <= nc <= WISP_DOT_NC_MAX),
 * where w is one weight row of n elements in the weight type and A_c is the
 * activation row at (const char *)a + c * sa (bytes) in the row's act_type. */
typedef void (*wisp_dot_fn)(int64_t n, const void *w, const void *a, size_t sa, int nc, float *s,
                            size_t ss);
/* Q8_0 and Q8_1 activation rows handed to dot kernels by wisp_matmul carry,
 * after their blocks (room for the larger of the two block sizes each) at
 * this byte offset from the row start, the n/32 block scales as floats, so
 * SIMD kernels load 4 or 8 of them at once instead of converting halves one
 * by one. The rows' stride is at least wisp_cpu_act_row_bytes(). */
#define WISP_CPU_ACT_QK WISP_BLOCK_ELEMS_Q8_0
#define WISP_CPU_ACT_BLOCK_BYTES \
    (WISP_BLOCK_BYTES_Q8_1 > WISP_BLOCK_BYTES_Q8_0 ? WISP_BLOCK_BYTES_Q8_1 : WISP_BLOCK_BYTES_Q8_0)
_Static_assert(WISP_BLOCK_ELEMS_Q8_0 == WISP_BLOCK_ELEMS_Q8_1, "Q8_0 and Q8_1 share a layout");
static inline size_t wisp_cpu_act_scales_offset(int64_t n)
{
    return (size_t)(n / WISP_CPU_ACT_QK) * WISP_CPU_ACT_BLOCK_BYTES;
}
/* After the float scales come the n/32 block sums of the quants as int32:
 * the register-blocked kernels multiply unsigned weights by the signed
 * quants and take off offset * sum once per block and token. */
static inline size_t wisp_cpu_act_sums_offset(int64_t n)
{
    return wisp_cpu_act_scales_offset(n) + (size_t)(n / WISP_CPU_ACT_QK) * sizeof(float);
}
/* Then, for batches handed to a gemm kernel, the quants of each pair of
 * blocks (2b, 2b+1) interleaved by halves in 64 bytes: b 0..15, b+1 0..15,
 * b 16..31, b+1 16..31, so that one 256-bit dot sums two blocks into the
 * two 128-bit halves of its result (half the reduction work after it). */
static inline size_t wisp_cpu_act_pairs_offset(int64_t n)
{
    return wisp_cpu_act_sums_offset(n) + (size_t)(n / WISP_CPU_ACT_QK) * sizeof(int32_t);
}
/* Then, for weights repacked into interleaved rows (repack.h), each quad
 * of blocks (4b .. 4b+3) in WISP_CPU_ACT_QUAD_BYTES: the 128 quants
 * transposed by 4-byte groups (group j of blocks 4b, 4b+1, 4b+2, 4b+3, for
 * j = 0..7), so that one 16-byte broadcast gives every 128-bit lane of a
 * zmm the same group of the four blocks, followed by the four blocks' quant
 * sums negated, as int32. Quads cover the first n/128 * 4 blocks. */
#define WISP_CPU_ACT_QUAD_BYTES (4 * WISP_CPU_ACT_QK + 4 * sizeof(int32_t))
static inline size_t wisp_cpu_act_quads_offset(int64_t n)
{
    return wisp_cpu_act_pairs_offset(n) + (size_t)(n / WISP_CPU_ACT_QK) * WISP_CPU_ACT_QK;
}
static inline size_t wisp_cpu_act_row_bytes(int act_type, int64_t n)
{
    return act_type == WISP_TYPE_Q8_0 || act_type == WISP_TYPE_Q8_1
               ? wisp_cpu_act_quads_offset(n) +
                     (size_t)(n / (4 * WISP_CPU_ACT_QK)) * WISP_CPU_ACT_QUAD_BYTES
               : 0;
}

/* Most weight rows and activation rows one call of a gemm kernel takes. */
#define WISP_GEMM_NR 4
#define WISP_GEMM_NC 8

/* Register-blocked product for batches: s[c * ss + r] = sum_i W_r[i] A_c[i]
 * for r < nr, c < nc (1 <= nr <= WISP_GEMM_NR, 1 <= nc <= WISP_GEMM_NC),
 * where W_r is the weight row at (const char *)w + r * sw and A_c the
 * activation row at (const char *)a + c * sa, laid out as for dot. Each
 * decoded weight block is used for nc tokens and each activation block
 * for nr rows while both are in registers. Optional per type and level. */
typedef void (*wisp_gemm_fn)(int64_t n, const void *w, size_t sw, int nr, const void *a, size_t sa,
                             int nc, float *s, size_t ss);

/* Most weight rows one call of a panel kernel takes. */
#define WISP_PANEL_NR 16
/* Tokens a panel kernel's decoded rows serve in one pass: a batch's tiles
 * should hold this many for the decoding to cost little per token. */
#define WISP_PANEL_NC 256

/* Panel product for batches: a wisp_gemm_fn for 1 <= nr <= WISP_PANEL_NR
 * rows and any nc >= 1 tokens, which decodes each weight super-block once
 * for all nc tokens (a per-thread panel, not a repacking at load) and
 * gives the bits of the level's gemm kernel. Optional per type and level;
 * only where the level also has a gemm kernel for the type. */
extern const wisp_gemm_fn wisp_cpu_panel_avx512[WISP_TYPE_COUNT];

/* Weight rows one call of a gemv kernel takes. */
#define WISP_GEMV_NR 4

/* Several weight rows against one token: s[r] = sum_i W_r[i] A[i] for
 * r < nr (1 <= nr <= WISP_GEMV_NR), W_r at (const char *)w + r * sw, A
 * laid out as for dot. The rows' final sums share one reduction; each
 * result has the bits the dot kernel gives for that row. Optional per
 * type and level. */
typedef void (*wisp_gemv_fn)(int64_t n, const void *w, size_t sw, int nr, const void *a, float *s);

/* Weights repacked at load (repack.h): groups of WISP_RP_ROWS rows whose
 * blocks are interleaved by quads of WISP_RP_QUAD blocks. A kernel of the
 * repacked layout takes ng row groups (at (const char *)w + g * sg) and nc
 * activation rows laid out as for dot (with the quads section): s[c * ss +
 * g * G + r] for row r of group g, G the type's group rows
 * (wisp_rp_group_rows: WISP_RP_ROWS, or 16 for the K-quants). Each result has the bits of
 * the level's dot kernel for that row in the file's layout. */
#define WISP_RP_ROWS 8
#define WISP_RP_QUAD 4
typedef void (*wisp_rp_fn)(int64_t n, const void *w, size_t sg, int ng, const void *a, size_t sa,
                           int nc, float *s, size_t ss);

/* Converts or quantizes n floats (a multiple of the act block) to a row. */
typedef void (*wisp_row_from_float_fn)(const float *x, void *y, int64_t n);
/* Dequantizes n elements (a multiple of the block) of a row to floats. */
typedef void (*wisp_row_to_float_fn)(const void *x, float *y, int64_t n);

typedef struct wisp_cpu_kernels {
    int act_type;                      /* activation format of dot; -1: no dot */
    wisp_dot_fn dot;                   /* weight row x activation rows */
    wisp_row_from_float_fn from_float; /* for activation types (Q8_0, Q8_1, Q8_K, F16, BF16) */
    wisp_row_to_float_fn to_float;     /* dequantization (scalar table; tests, lookups) */
} wisp_cpu_kernels;

typedef enum wisp_simd_level {
    WISP_SIMD_SCALAR = 0,
    WISP_SIMD_AVX2 = 1,
    WISP_SIMD_AVX512 = 2,
    WISP_SIMD_COUNT
} wisp_simd_level;

extern const wisp_cpu_kernels wisp_cpu_kernels_scalar[WISP_TYPE_COUNT];
extern const wisp_cpu_kernels wisp_cpu_kernels_avx2[WISP_TYPE_COUNT];
extern const wisp_cpu_kernels wisp_cpu_kernels_avx512[WISP_TYPE_COUNT];
/* gemm kernels per level (NULL entries: none at that level). */
extern const wisp_gemm_fn wisp_cpu_gemm_avx2[WISP_TYPE_COUNT];
extern const wisp_gemm_fn wisp_cpu_gemm_avx512[WISP_TYPE_COUNT];
/* gemv kernels per level (NULL entries: none at that level). */
extern const wisp_gemv_fn wisp_cpu_gemv_avx2[WISP_TYPE_COUNT];
extern const wisp_gemv_fn wisp_cpu_gemv_avx512[WISP_TYPE_COUNT];

/* Repacked-layout kernels per level, by the file's type id (NULL: none). */
extern const wisp_rp_fn wisp_cpu_rp_scalar[WISP_TYPE_COUNT];
extern const wisp_rp_fn wisp_cpu_rp_avx2[WISP_TYPE_COUNT];
extern const wisp_rp_fn wisp_cpu_rp_avx512[WISP_TYPE_COUNT];

/* Block geometry of the types the CPU kernels know (weights and activation
 * formats); 0 for others. Generated from the type list of model/types.h. */
int wisp_cpu_block_size(int type);
size_t wisp_cpu_block_bytes(int type);
/* Bytes of a row of n elements of type; 0 if n is not a multiple of the
 * block or the type is unknown to the kernels. */
size_t wisp_cpu_row_bytes(int type, int64_t n);

/* The highest level this CPU supports. */
wisp_simd_level wisp_cpu_simd_max(void);
/* The level in use: the highest supported, or lower when WISP_SIMD says so. */
wisp_simd_level wisp_cpu_simd_active(void);
/* Forces a level (clamped to what the CPU supports); returns the level now
 * in use. For tests and benchmarks; not thread-safe against running kernels. */
wisp_simd_level wisp_cpu_simd_force(wisp_simd_level level);
const char *wisp_cpu_simd_name(wisp_simd_level level);

/* The merged row for a type at a level (entries fall back to lower levels);
 * NULL when the type has no dot kernel and no conversions. */
const wisp_cpu_kernels *wisp_cpu_kernels_at(wisp_simd_level level, int type);
/* Same at the active level. */
const wisp_cpu_kernels *wisp_cpu_kernels_get(int type);
/* The gemm kernel for a type at a level, NULL when that level has none
 * (a lower level's gemm is not used: the dot kernels of the level are then
 * faster than mixing levels). */
wisp_gemm_fn wisp_cpu_gemm_at(wisp_simd_level level, int type);
wisp_gemm_fn wisp_cpu_gemm_get(int type);
/* The gemv kernel for a type at a level, on the same terms as the gemm. */
wisp_gemv_fn wisp_cpu_gemv_at(wisp_simd_level level, int type);
wisp_gemv_fn wisp_cpu_gemv_get(int type);
/* The kernel of the repacked layout of a type at a level: every level that
 * has a dot kernel for the type has one, in the summation order of that
 * level's dot, so repacked weights give the same bits at every level. NULL
 * when the type is not repacked. BF16's layout is the exception that
 * computes in its own arithmetic, the same at every level (bf16dot.h). */
wisp_rp_fn wisp_cpu_rp_at(wisp_simd_level level, int type);
wisp_rp_fn wisp_cpu_rp_get(int type);
/* The panel kernel for a type at a level, on the same terms as the gemm. */
wisp_gemm_fn wisp_cpu_panel_at(wisp_simd_level level, int type);
wisp_gemm_fn wisp_cpu_panel_get(int type);

#endif
