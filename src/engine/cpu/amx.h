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

/* The activations as the AMX kernels read them: per 16 tokens and per
 * 32-element block, the 16 tokens' Q8_0 quants (16 x 32 int8: one tile,
 * contiguous, so a tile load touches 8 cache lines in order instead of 16
 * rows far apart) and then their 16 scales as floats. Token tiles follow
 * each other, n_in / 32 blocks apart. */
#define WISP_AMX_ACT_BLOCK (16 * 32 + 16 * 4)
static inline size_t wisp_amx_act_bytes(int64_t n_in, int64_t n_tok)
{
    return (size_t)(n_tok / 16) * (size_t)(n_in / 32) * WISP_AMX_ACT_BLOCK;
}

/* s[c * ss + r] = sum_i W_r[i] A_c[i] for r < nr, c < nc (both multiples
 * of WISP_AMX_TILE), W_r the weight row at (const char *)w + r * sw, the
 * activations in the layout above starting at token tile a. */
typedef void (*wisp_amx_fn)(int64_t n, const void *w, size_t sw, int nr, const void *a, int nc,
                            float *s, size_t ss);

/* The AMX product for weights of this type, or NULL when AMX is not active
 * or the type has no AMX kernel. */
wisp_amx_fn wisp_amx_gemm_get(int type);

/* Whether products of this type may use AMX now or after wisp_amx_set
 * (true): scratch sized for it stays valid either way. */
bool wisp_amx_has_kernel(int type);

#endif
