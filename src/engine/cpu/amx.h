/*
 * amx.h - Intel AMX int8 tiles for batched products (private to the CPU
 * engine).
 *
 * On CPUs with AMX-INT8 (Sapphire Rapids and later) one tile instruction
 * multiplies 16 x 64 int8 by 64 x 16 int8 into 16 x 16 int32: many times
 * the work of an AVX-512 VNNI instruction. Prefill and batched decode of
 * the 32-element block types (Q4_0, Q5_0, Q8_0 against Q8_0 activations)
 * use it for every 16 weight rows x 16 tokens of a product; the integer
 * block sums are exact, and the float scaling and accumulation follow the
 * dot kernels' order step for step, so the results are the same bits as
 * the AVX-512 kernels' (a request gives the same tokens batched or alone).
 *
 * Linux hands out the 8 KiB of tile state only to processes that ask for
 * it (arch_prctl ARCH_REQ_XCOMP_PERM); wisp asks once, on first use, and
 * falls back to the AVX-512 kernels when the CPU, the kernel or the
 * environment (WISP_AMX=0) says no.
 */
#ifndef WISP_AMX_H
#define WISP_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/cpu/cpu_types.h"
#include "model/quant_blocks.h"

/* Rows and tokens an AMX kernel call works in: nr and nc multiples of it. */
#define WISP_AMX_TILE 16
/* The longest weight rows the AMX kernels take (their packed panel lives
 * on the stack); longer ones use the AVX-512 kernels. */
#define WISP_AMX_MAX_IN 8192

/* True when the CPU has AMX-INT8 and the kernel granted the tile state. */
bool wisp_amx_usable(void);

/* True when products use AMX: usable, not switched off by WISP_AMX=0 or
 * wisp_amx_set(false), and the active SIMD level is AVX-512 (a lower level
 * forced for tests or benchmarks switches AMX off with it). */
bool wisp_amx_active(void);

/* Switches AMX use on or off (on only where usable); returns
 * wisp_amx_active(). For tests and benchmarks; not thread-safe against
 * running products. */
bool wisp_amx_set(bool on);

/* The activations as the AMX kernels read them, per 16 tokens (a token
 * tile) and per unit of the activation type, so that a tile load reads 8
 * cache lines in order instead of 16 rows far apart:
 *   Q8_0, per 32-element block (WISP_AMX_UNIT_Q8_0 bytes): the 16 tokens'
 *     quants (16 x 32 int8, one tile), then their 16 scales as floats;
 *   Q8_K, per 256-element super-block (WISP_AMX_UNIT_Q8_K bytes): for each
 *     of the 8 sub-blocks of 32 the 16 tokens' quants (8 tiles), then the
 *     16 scales as floats, then for each sub-block the 16 tokens' sums of
 *     its 32 quants as int32, then the same for each group of 16.
 * Token tiles follow each other, n_in / unit units apart. */
#define WISP_AMX_UNIT_Q8_0 (16 * 32 + 16 * 4)
#define WISP_AMX_UNIT_Q8_K (8 * 16 * 32 + 16 * 4 + 8 * 16 * 4 + 16 * 16 * 4)

/* Bytes of the AMX copy of one token tile of rows of n_in elements of
 * this activation type; 0 for types the AMX kernels do not read. */
size_t wisp_amx_act_tile_bytes(int act_type, int64_t n_in);

/* Copies token t's activation row (act_type's row format) into the AMX
 * copy at dst; only whole token tiles are copied (t < n_tok / 16 * 16). */
void wisp_amx_pack_act(int act_type, const void *row, int64_t n_in, int64_t t, void *dst);

/* s[c * ss + r] = sum_i W_r[i] A_c[i] for r < nr, c < nc (both multiples
 * of WISP_AMX_TILE), W_r the weight row at (const char *)w + r * sw, the
 * activations in the layout above starting at token tile a (the tiles
 * wisp_amx_act_tile_bytes apart). */
typedef void (*wisp_amx_fn)(int64_t n, const void *w, size_t sw, int nr, const void *a, int nc,
                            float *s, size_t ss);

/* The AMX product for weights of this type, or NULL when AMX is not active
 * or the type has no AMX kernel. */
wisp_amx_fn wisp_amx_gemm_get(int type);

/* Whether products of this type may use AMX now or after wisp_amx_set
 * (true): scratch sized for it stays valid either way. */
bool wisp_amx_has_kernel(int type);

#endif
