/*
 * bf16dot_avx512bf16.c - the BF16 layout's products (bf16dot.h) with
 * vdpbf16ps: the AVX-512 level's instructions plus AVX512-BF16 (the
 * Makefile's ISA_AVX512BF16), used only where the CPU has both.
 *
 * A group's vector for element pair p holds that pair of its 16 rows, one
 * row per lane, so one vdpbf16ps against the token's pair broadcast (the
 * instruction's own 32-bit memory broadcast) adds both products into each
 * row's lane: no reduction at the end, and the lane's chain is exactly the
 * reference's. A tile keeps GB groups x C tokens of accumulators: for one
 * token, 8 groups, enough independent chains to cover the instruction's
 * latency and 8 weight streams in flight, each prefetched ahead; for a
 * batch, up to 2 groups x 12 tokens (a prefill tile holds one group),
 * each weight vector used 12 times from a register. Measured on Zen 5,
 * one thread, 256 tokens: 1024 x 2816 at 270-310 GFLOP/s, against 140-150
 * for F16 through float FMAs, and a loop of nothing but vdpbf16ps on
 * registers at about 250-300 on the same (shared, noisy) machine.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "engine/cpu/bf16dot.h"

#define AI static inline __attribute__((always_inline))

/* Bytes ahead of each group's stream that a one-token tile prefetches
 * (measured, 1024 x 65536 from DRAM, 2 threads, best of 3: 1 KiB 27 GB/s,
 * 2 KiB 43, 4 KiB 40; the F16 dot 37). */
#define BF_PF_DIST 2048

AI void bf_tile(int64_t np, const char *w, size_t sg, int GB, const char *a, size_t sa, int C,
                float *s, size_t ss, size_t pf)
{
    __m512 acc[8][12];
    _Pragma("GCC unroll 8")
    for (int g = 0; g < GB; g++)
        _Pragma("GCC unroll 12")
    for (int c = 0; c < C; c++)
        acc[g][c] = _mm512_setzero_ps();
    for (int64_t p = 0; p < np; p++) {
        const char *wp = w + (size_t)p * 64;
        if (pf)
            _Pragma("GCC unroll 8")
        for (int g = 0; g < GB; g++) {
            /* a batch's next groups go to L2: its own groups fill L1 */
            if (C == 1)
                _mm_prefetch(wp + (size_t)g * sg + pf, _MM_HINT_T0);
            else
                _mm_prefetch(wp + (size_t)g * sg + pf, _MM_HINT_T1);
        }
        _Pragma("GCC unroll 8")
        for (int g = 0; g < GB; g++) {
            const __m512bh wv = (__m512bh)_mm512_loadu_si512(wp + (size_t)g * sg);
            _Pragma("GCC unroll 12")
            for (int c = 0; c < C; c++) {
                int32_t x;
                memcpy(&x, a + (size_t)c * sa + 4 * (size_t)p, 4);
                acc[g][c] = _mm512_dpbf16_ps(acc[g][c], wv, (__m512bh)_mm512_set1_epi32(x));
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int g = 0; g < GB; g++)
        _Pragma("GCC unroll 12")
    for (int c = 0; c < C; c++)
        _mm512_storeu_ps(s + (size_t)c * ss + (size_t)g * WISP_BF16_ROWS, acc[g][c]);
}

#define ONE(GB)                                                                         \
    static void one_##GB(int64_t np, const char *w, size_t sg, const char *a, float *s) \
    {                                                                                   \
        bf_tile(np, w, sg, GB, a, 0, 1, s, 0, BF_PF_DIST);                              \
    }
ONE(8)
ONE(4)
ONE(2)
ONE(1)

#define BATCH(GB, C)                                                                             \
    static void batch_##GB##_##C(int64_t np, const char *w, size_t sg, const char *a, size_t sa, \
                                 float *s, size_t ss, size_t pf)                                 \
    {                                                                                            \
        bf_tile(np, w, sg, GB, a, sa, C, s, ss, pf);                                             \
    }
/* (clang-format does not settle on a layout for this list) */
/* clang-format off */
#define BATCHES(GB)                                                                            \
    BATCH(GB, 1)                                                                               \
    BATCH(GB, 2) BATCH(GB, 3) BATCH(GB, 4) BATCH(GB, 5) BATCH(GB, 6) BATCH(GB, 7) BATCH(GB, 8) \
        BATCH(GB, 9) BATCH(GB, 10) BATCH(GB, 11) BATCH(GB, 12)
/* clang-format on */
BATCHES(2)
BATCHES(1)

typedef void (*batch_fn)(int64_t, const char *, size_t, const char *, size_t, float *, size_t,
                         size_t);
#define ROW(GB)                                                                              \
    {                                                                                        \
        batch_##GB##_1, batch_##GB##_2, batch_##GB##_3, batch_##GB##_4, batch_##GB##_5,      \
            batch_##GB##_6, batch_##GB##_7, batch_##GB##_8, batch_##GB##_9, batch_##GB##_10, \
            batch_##GB##_11, batch_##GB##_12                                                 \
    }
static const batch_fn BATCH_FN[2][12] = {ROW(1), ROW(2)};

void wisp_bf16dot_avx512bf16(int64_t n, const void *vw, size_t sg, int ng, const void *va,
                             size_t sa, int nc, float *s, size_t ss)
{
    const int64_t np = n / 2;
    const char *w = vw, *a = va;
    if (nc == 1) {
        int g = 0;
        for (; g + 8 <= ng; g += 8)
            one_8(np, w + (size_t)g * sg, sg, a, s + (size_t)g * WISP_BF16_ROWS);
        if (g + 4 <= ng) {
            one_4(np, w + (size_t)g * sg, sg, a, s + (size_t)g * WISP_BF16_ROWS);
            g += 4;
        }
        if (g + 2 <= ng) {
            one_2(np, w + (size_t)g * sg, sg, a, s + (size_t)g * WISP_BF16_ROWS);
            g += 2;
        }
        if (g < ng)
            one_1(np, w + (size_t)g * sg, sg, a, s + (size_t)g * WISP_BF16_ROWS);
        return;
    }
    /* Tokens in chunks of at most 12, as even as they go: a short last
     * chunk would run at a fraction of the rate. The first chunk over a
     * pair of groups also prefetches the next pair, which a few tokens'
     * product reads from memory once (1024 x 65536 from DRAM, 16 tokens, 2
     * threads: 411 GFLOP/s without, 770 in cache). */
    const int n_chunks = (nc + 11) / 12, base = nc / n_chunks, extra = nc % n_chunks;
    for (int g = 0; g < ng; g += 2) {
        const int gb = ng - g >= 2 ? 2 : 1;
        for (int k = 0, c = 0; k < n_chunks; k++) {
            const int cc = base + (k < extra);
            BATCH_FN[gb - 1][cc - 1](np, w + (size_t)g * sg, sg, a + (size_t)c * sa, sa,
                                     s + (size_t)c * ss + (size_t)g * WISP_BF16_ROWS, ss,
                                     k == 0 && g + 2 * gb <= ng ? (size_t)gb * sg : 0);
            c += cc;
        }
    }
}
