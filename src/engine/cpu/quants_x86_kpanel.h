/*
 * quants_x86_kpanel.h - K-quant (Q2_K .. Q6_K) x Q8_K products for batches
 * of many tokens, AVX-512 + VNNI (include in quants_avx512.c after
 * quants_x86_kmr.h).
 *
 * The gemm of quants_x86_kmr.h decodes 4 weight rows' super-blocks for
 * every 8 tokens and ends each (row, token) pair with a horizontal
 * reduction, which together cost about as much as the dots. Here a panel
 * of WISP_PANEL_NR = 16 weight rows is decoded once per super-block for
 * all the tokens of the call, into an int8 form whose int32 lanes are the
 * rows (kpanel: group g holds elements 4g .. 4g + 3 of the 16 rows, the
 * per-16 scales and corrections kept apart), so that
 *   vpdpbusd(acc, q[g], broadcast(token's 4 quants of group g))
 * is the 4-element dot of 16 rows at once and nothing is reduced across
 * lanes: a sub-block's sum is scaled in its lanes and added to the
 * super-block's, and the float work runs in the same lanes. The decoded
 * weights stay in registers for 8 tokens at a time (16 rows x 8 tokens).
 *
 * Exactness: the integers per (row, token, super-block) are those of
 * kdot_block (the same decoders, exact sums in any order), and the float
 * work per output is kdot_block's, in the same order over super-blocks:
 *   acc  = fma(y.d * d,  (float)isum (- corr when folded), acc)
 *   accm = fma(y.d * cm, (float)corr, accm),   result = acc + accm
 * so each result has the bits of the gemm and of the one-token kernels.
 *
 * Scratch: the panel (about 6 KiB) and the float accumulators of up to
 * KPANEL_TOKS tokens (32 KiB) live on the calling thread's stack; nothing
 * is allocated. Q4_K, Q5_K and Q6_K weights repacked at load (repack.h)
 * skip the panel: their layout is read straight, below.
 */
#ifndef WISP_QUANTS_X86_KPANEL_H
#define WISP_QUANTS_X86_KPANEL_H

#if WISP_X86_VNNI

/* Tokens whose accumulators one pass over the row's super-blocks keeps;
 * longer batches take several passes, each decoding the panel again. */
#define KPANEL_TOKS WISP_PANEL_NC
/* Fewer tokens than this go to the 4-row gemm. Decoding 16 rows into the
 * panel costs about what 3-4 tokens' dots save over the gemm (kbench cpu
 * time, 1536 x 8960, Zen 5: 4 tokens 1.25x for Q4_K and Q6_K, 2-3 tokens
 * a gain for Q4_K but none for Q6_K). */
#define KPANEL_MIN_TOKS 4

#define PREFETCH_NEXT_Q8K(p)                                         \
    _Pragma("GCC unroll 8")                                          \
    for (int pf_ = 0; pf_ < (int)sizeof(wisp_block_q8_K); pf_ += 64) \
    _mm_prefetch((const char *)(p) + pf_, _MM_HINT_T0)

/* One super-block of 16 weight rows, lanes = rows. */
typedef struct kpanel {
    __m512i q[WISP_QK_K / 4]; /* group g: elements 4g .. 4g + 3 of each row, unsigned */
    __m512i sc[16];           /* sub-block j's scale of each row, int32 (see KPANEL_NARROW) */
    __m512i corr[8];          /* corrections 2m, 2m + 1 of each row as an int16 pair */
    __m512 d, cm;
} kpanel;

/* 16 x 16 int32 transpose: c[k] lane r = a[r] lane k. */
AI void transpose16(const __m512i a[16], __m512i c[16])
{
    __m512i t[16], u[16];
    _Pragma("GCC unroll 8")
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_epi32(a[2 * p], a[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_epi32(a[2 * p], a[2 * p + 1]);
    }
    /* u[4q + m], 128-bit lane L: column 4L + m of rows 4q .. 4q + 3 */
    _Pragma("GCC unroll 4")
    for (int q = 0; q < 4; q++) {
        u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
        u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
    }
    /* then the 4 x 4 transpose of 128-bit lanes, for each m */
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44),
                      x1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE),
                      x2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44),
                      x3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
        c[m] = _mm512_shuffle_i32x4(x0, x2, 0x88);
        c[4 + m] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
        c[8 + m] = _mm512_shuffle_i32x4(x1, x3, 0x88);
        c[12 + m] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
    }
}

/* Decodes super-block i of rows 0 .. nr - 1 (the missing rows repeat the
 * last one; their lanes are not stored) into the panel. NARROW: the
 * scales go in the low 16 bits of their lanes with zero above, for
 * vpdpwssd; else sign-extended, for vpmulld. */
AI void kpanel_build(const char *w, size_t sw, int nr, int64_t i, size_t wb, kdec_fn dec,
                     int narrow, kpanel *P)
{
    kdec k[16];
    _Alignas(64) int32_t sc[16][16];
    _Alignas(64) int32_t corr[16][8];
    _Alignas(64) float d[16], cm[16];
    _Pragma("GCC unroll 16")
    for (int r = 0; r < 16; r++) {
        const char *b = w + (size_t)(r < nr ? r : nr - 1) * sw + (size_t)i * wb;
        PREFETCH_SPAN(b, wb);
        dec(b, &k[r]);
        const __m512i s32 = _mm512_cvtepi8_epi32(k[r].sc);
        _mm512_store_si512(sc[r], narrow ? _mm512_and_si512(s32, _mm512_set1_epi32(0xFFFF)) : s32);
        _mm256_store_si256((__m256i *)corr[r], k[r].corr);
        d[r] = k[r].d;
        cm[r] = k[r].cm;
    }
    _Pragma("GCC unroll 4")
    for (int part = 0; part < 4; part++) {
        __m512i a[16];
        _Pragma("GCC unroll 16")
        for (int r = 0; r < 16; r++)
            a[r] = _mm512_loadu_si512(k[r].u + 64 * part);
        transpose16(a, P->q + 16 * part);
    }
    __m512i a[16], c[16];
    _Pragma("GCC unroll 16")
    for (int r = 0; r < 16; r++)
        a[r] = _mm512_load_si512(sc[r]);
    transpose16(a, P->sc);
    /* the corrections: 8 int32 (pairs) per row, in the low half of each */
    _Pragma("GCC unroll 16")
    for (int r = 0; r < 16; r++)
        a[r] = _mm512_castsi256_si512(_mm256_load_si256((const __m256i *)corr[r]));
    transpose16(a, c);
    _Pragma("GCC unroll 8")
    for (int m = 0; m < 8; m++)
        P->corr[m] = c[m];
    P->d = _mm512_load_ps(d);
    P->cm = _mm512_load_ps(cm);
}

AI __m512i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* acc += dot(w, 4 bytes at p in every lane): the broadcast folded into the
 * instruction's memory operand (GCC otherwise loads it apart and, around
 * the accumulator the instruction both reads and writes, spills). */
AI __m512i dpbusd_bcast(__m512i acc, __m512i w, const void *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
    return acc;
}

/* One token's end of a super-block, lanes = rows: the corrections
 * (int16 pairs against the token's block sums) and the float work of
 * kdot_block, folded into acc or kept apart in accm. */
AI void kpanel_end(const __m512i corr[8], __m512 d, __m512 cm, const wisp_block_q8_K *y, __m512i is,
                   int fold, float *acc, float *accm)
{
    __m512i c = _mm512_setzero_si512();
    _Pragma("GCC unroll 8")
    for (int m = 0; m < 8; m++)
        c = _mm512_dpwssd_epi32(c, corr[m], bcast32(y->bsums + 2 * m));
    const __m512 yd = _mm512_set1_ps(y->d);
    if (fold) {
        _mm512_store_ps(acc, _mm512_fmadd_ps(_mm512_mul_ps(yd, d),
                                             _mm512_cvtepi32_ps(_mm512_sub_epi32(is, c)),
                                             _mm512_load_ps(acc)));
    } else {
        _mm512_store_ps(acc, _mm512_fmadd_ps(_mm512_mul_ps(yd, d), _mm512_cvtepi32_ps(is),
                                             _mm512_load_ps(acc)));
        _mm512_store_ps(accm, _mm512_fmadd_ps(_mm512_mul_ps(yd, cm), _mm512_cvtepi32_ps(c),
                                              _mm512_load_ps(accm)));
    }
}

/* T tokens (1 <= T <= 8; y[t] their Q8_K blocks of this super-block)
 * against the panel; acc / accm hold 16 floats (the rows) per token. */
AI void kpanel_tokens(const kpanel *P, const wisp_block_q8_K *const *y, const int T, int span,
                      int narrow, int fold, float *acc, float *accm)
{
    __m512i is[8], pt[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        is[t] = _mm512_setzero_si512();
    /* not unrolled: GCC would interleave the spans and spill the sums */
    _Pragma("GCC unroll 1")
    for (int j = 0; j < 16; j += span / 16) {
        _Pragma("GCC unroll 8")
        for (int g = 0; g < span / 4; g++) {
            const __m512i wq = P->q[4 * j + g];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                if (g == 0)
                    pt[t] = _mm512_setzero_si512();
                pt[t] = dpbusd_bcast(pt[t], wq, y[t]->qs + 16 * j + 4 * g);
            }
        }
        const __m512i s = P->sc[j];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++)
            is[t] = narrow ? _mm512_dpwssd_epi32(is[t], pt[t], s)
                           : _mm512_add_epi32(is[t], _mm512_mullo_epi32(pt[t], s));
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        kpanel_end(P->corr, P->d, P->cm, y[t], is[t], fold, acc + 16 * t, accm + 16 * t);
}

/* The panel product for nr <= 16 rows and nt <= KPANEL_TOKS tokens.
 * SPAN: elements per scale (16, or 32 for Q4_K / Q5_K, whose scales are
 * per 32); NARROW: a span's integer dot fits int16, so the scale is
 * applied by vpdpwssd instead of vpmulld + vpaddd; FOLD: kdec's fold. */
AI void kpanel_run(int64_t n, const char *w, size_t sw, int nr, const char *a, size_t sa, int nt,
                   float *s, size_t ss, kdec_fn dec, size_t wb, int span, int narrow, int fold)
{
    _Alignas(64) float acc[KPANEL_TOKS * 16], accm[KPANEL_TOKS * 16];
    kpanel P;
    memset(acc, 0, sizeof(float) * 16 * (size_t)nt);
    memset(accm, 0, sizeof(float) * 16 * (size_t)nt);
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        kpanel_build(w, sw, nr, i, wb, dec, narrow, &P);
        for (int t = 0; t < nt; t += 8) {
            const wisp_block_q8_K *y[8];
            const int T = nt - t < 8 ? nt - t : 8;
            for (int c = 0; c < T; c++) {
                y[c] = (const wisp_block_q8_K *)(a + (size_t)(t + c) * sa) + i;
                /* the tokens' next blocks, sa apart: beyond the hardware
                 * prefetchers when the tile's rows exceed L2 */
                PREFETCH_NEXT_Q8K(y[c] + 1);
            }
            float *at = acc + 16 * t, *amt = accm + 16 * t;
            switch (T) {
            case 8: kpanel_tokens(&P, y, 8, span, narrow, fold, at, amt); break;
            case 7: kpanel_tokens(&P, y, 7, span, narrow, fold, at, amt); break;
            case 6: kpanel_tokens(&P, y, 6, span, narrow, fold, at, amt); break;
            case 5: kpanel_tokens(&P, y, 5, span, narrow, fold, at, amt); break;
            case 4: kpanel_tokens(&P, y, 4, span, narrow, fold, at, amt); break;
            case 3: kpanel_tokens(&P, y, 3, span, narrow, fold, at, amt); break;
            case 2: kpanel_tokens(&P, y, 2, span, narrow, fold, at, amt); break;
            default: kpanel_tokens(&P, y, 1, span, narrow, fold, at, amt); break;
            }
        }
    }
    const __mmask16 rows = (__mmask16)((1u << nr) - 1);
    for (int t = 0; t < nt; t++)
        _mm512_mask_storeu_ps(s + (size_t)t * ss, rows,
                              _mm512_add_ps(_mm512_load_ps(acc + 16 * t),
                                            _mm512_load_ps(accm + 16 * t)));
}

/* wisp_gemm_fn with the panel's terms (cpu_types.h): nr <= WISP_PANEL_NR
 * rows, any nc >= 1; short batches go to the 4-row gemm, which gives the
 * same bits. */
#define DEF_PANELK(name, WB, SPAN, NARROW, FOLD)                                             \
    static void x86_panel_##name(int64_t n, const void *w, size_t sw, int nr, const void *a, \
                                 size_t sa, int nc, float *s, size_t ss)                     \
    {                                                                                        \
        if (nc < KPANEL_MIN_TOKS) {                                                          \
            for (int r = 0; r < nr; r += WISP_GEMM_NR)                                       \
                for (int t = 0; t < nc; t += WISP_GEMM_NC)                                   \
                    x86_gemm_##name(n, (const char *)w + (size_t)r * sw, sw,                 \
                                    nr - r < WISP_GEMM_NR ? nr - r : WISP_GEMM_NR,           \
                                    (const char *)a + (size_t)t * sa, sa,                    \
                                    nc - t < WISP_GEMM_NC ? nc - t : WISP_GEMM_NC,           \
                                    s + (size_t)t * ss + r, ss);                             \
            return;                                                                          \
        }                                                                                    \
        for (int t = 0; t < nc; t += KPANEL_TOKS)                                            \
            kpanel_run(n, w, sw, nr, (const char *)a + (size_t)t * sa, sa,                   \
                       nc - t < KPANEL_TOKS ? nc - t : KPANEL_TOKS, s + (size_t)t * ss, ss,  \
                       kdec_##name, sizeof(WB), SPAN, NARROW, FOLD);                         \
    }

/* Largest span dots (unsigned quants u, |y| <= 127): Q2_K 16 x 3 x 127,
 * Q3_K 16 x 7 x 127, Q4_K 16 x 15 x 127 = 30480 fit int16; Q5_K's and
 * Q6_K's (31 and 63 per element) do not. */
DEF_PANELK(q2_K, wisp_block_q2_K, 16, 1, 0)
DEF_PANELK(q3_K, wisp_block_q3_K, 16, 1, 1)
DEF_PANELK(q4_K, wisp_block_q4_K, 32, 0, 0)
DEF_PANELK(q5_K, wisp_block_q5_K, 32, 0, 0)
DEF_PANELK(q6_K, wisp_block_q6_K, 16, 0, 1)

/* ---------------------------------- K-quants repacked at load */

/* A repacked group's super-block (repack.h) needs no transpose: its
 * quant vectors give the panel's group vectors after a shift or rotate and
 * an AND, and its scales unpack in the lanes, so it is read straight from
 * the weights for every 8 tokens instead of being decoded into a panel.
 * The integers and the float work per output are kpanel_tokens' with the
 * type's SPAN and FOLD (never NARROW), hence the bits of the file layout's
 * kernels. */
typedef struct krp {
    __m512i sc[16];  /* sub-block j's scale of each row, int32 */
    __m512i corr[8]; /* corrections 2m, 2m + 1 of each row as an int16 pair */
    __m512 d, cm;
} krp;

/* Q4_K / Q5_K: eight 6-bit scales and mins from 3 vectors at sc, d and
 * dmin as 16 halves each. Sub-block m's min serves both of its 16-element
 * corrections, so it fills both halves of corr[m]. */
AI void krp_scales_k4(const char *sc, const char *d, const char *dmin, krp *P)
{
    const __m512i a0 = _mm512_loadu_si512(sc), a1 = _mm512_loadu_si512(sc + WISP_RP_VEC_BYTES),
                  a2 = _mm512_loadu_si512(sc + 2 * WISP_RP_VEC_BYTES);
    const __m512i m6 = _mm512_set1_epi32(0x3f), m4 = _mm512_set1_epi32(0x0f),
                  m2 = _mm512_set1_epi32(0x30);
    /* ggml's layout: bytes 0..3 scales 0..3 (low 6 bits, top 2 bits of
     * scales 4..7), 4..7 the same for the mins, 8..11 the low nibbles of
     * scales 4..7 and the high nibbles of mins 4..7 */
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) {
        const __m512i mn = _mm512_and_si512(_mm512_srli_epi32(a1, 8 * m), m6);
        P->sc[m] = _mm512_and_si512(_mm512_srli_epi32(a0, 8 * m), m6);
        P->corr[m] = _mm512_or_si512(mn, _mm512_slli_epi32(mn, 16));
        const __m512i sh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a2, 8 * m), m4),
                                           _mm512_and_si512(_mm512_srli_epi32(a0, 8 * m + 2), m2));
        const __m512i mh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a2, 8 * m + 4), m4),
                                           _mm512_and_si512(_mm512_srli_epi32(a1, 8 * m + 2), m2));
        P->sc[4 + m] = sh;
        P->corr[4 + m] = _mm512_or_si512(mh, _mm512_slli_epi32(mh, 16));
    }
    P->d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
    P->cm = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_cvtph_ps(
                                                     _mm256_loadu_si256((const __m256i *)dmin))),
                                                 _mm512_set1_epi32((int)0x80000000u)));
}

AI void krp_scales_q4_K(const char *b, krp *P)
{
    krp_scales_k4(b + WISP_RP_K4_SCALES, b + WISP_RP_K4_D, b + WISP_RP_K4_DMIN, P);
}

AI void krp_scales_q5_K(const char *b, krp *P)
{
    krp_scales_k4(b + WISP_RP_K5_SCALES, b + WISP_RP_K5_D, b + WISP_RP_K5_DMIN, P);
}

/* Q6_K: sixteen int8 scales, byte q of vector k being scale 4k + q; the
 * correction of each 16 elements is 32 times its scale (the stored quant
 * is the value + 32), folded into the sum (cm = -d). */
AI void krp_scales_q6_K(const char *b, krp *P)
{
    _Pragma("GCC unroll 4")
    for (int k = 0; k < 4; k++) {
        const __m512i v = _mm512_loadu_si512(b + WISP_RP_K6_SCALES + k * WISP_RP_VEC_BYTES);
        _Pragma("GCC unroll 4")
        for (int q = 0; q < 4; q++)
            P->sc[4 * k + q] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * q), 24);
        /* the pair's first in the low int16 of each lane, the second above */
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++)
            P->corr[2 * k + h] =
                _mm512_mask_blend_epi16((__mmask32)0xAAAAAAAAu,
                                        _mm512_slli_epi32(P->sc[4 * k + 2 * h], 5),
                                        _mm512_slli_epi32(P->sc[4 * k + 2 * h + 1], 21));
    }
    P->d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + WISP_RP_K6_D)));
    P->cm = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(P->d), _mm512_set1_epi32((int)0x80000000u)));
}

/* The group vector of piece g (elements 4g' .. 4g' + 3 of sub-block j,
 * g' = span / 4 * j + g) of the 16 rows, unsigned. */
AI __m512i krp_wq_q4_K(const char *b, int j, int g)
{
    const __m512i raw =
        _mm512_loadu_si512(b + WISP_RP_K4_QS + (size_t)(8 * (j / 2) + g) * WISP_RP_VEC_BYTES);
    return _mm512_and_si512(_mm512_srl_epi16(raw, _mm_cvtsi32_si128(4 * (j & 1))),
                            _mm512_set1_epi8(0x0F));
}

/* (a & 0x0F) | hi: vpternlogd's A & B | C */
AI __m512i krp_nibble_or(__m512i a, __m512i hi)
{
    return _mm512_ternarylogic_epi32(a, _mm512_set1_epi8(0x0F), hi, 0xEA);
}

AI __m512i krp_wq_q5_K(const char *b, int j, int g)
{
    const __m512i raw =
        _mm512_loadu_si512(b + WISP_RP_K5_QS + (size_t)(8 * (j / 2) + g) * WISP_RP_VEC_BYTES);
    const __m512i qh = _mm512_loadu_si512(b + WISP_RP_K5_QH + (size_t)g * WISP_RP_VEC_BYTES);
    /* bit j of each byte to bit 4: a rotation of the lane keeps every
     * byte's bits in that byte */
    const __m512i hi = _mm512_and_si512(_mm512_rolv_epi32(qh, _mm512_set1_epi32((4 - j) & 31)),
                                        _mm512_set1_epi8(0x10));
    return krp_nibble_or(_mm512_srl_epi16(raw, _mm_cvtsi32_si128(4 * (j & 1))), hi);
}

/* Q6_K's sub-blocks are 16 elements: half h = j / 8 of the super-block,
 * part p = j % 8 / 2 of it (ql's low nibbles for p < 2, high for p >= 2;
 * qh's bits 2p, 2p + 1), pieces 4 (j % 2) + g of the part. */
AI __m512i krp_wq_q6_K(const char *b, int j, int g)
{
    const int h = j / 8, p = j % 8 / 2, q = j % 2;
    const __m512i ql = _mm512_loadu_si512(b + WISP_RP_K6_SLOT(h, q, g, p & 1));
    const __m512i qh = _mm512_loadu_si512(b + WISP_RP_K6_SLOT(h, q, g, 2));
    const __m512i hi = _mm512_and_si512(_mm512_rolv_epi32(qh, _mm512_set1_epi32((4 - 2 * p) & 31)),
                                        _mm512_set1_epi8(0x30));
    return krp_nibble_or(_mm512_srl_epi16(ql, _mm_cvtsi32_si128(4 * (p >> 1))), hi);
}

/* Software prefetch of the weight stream: a one-token step is bound by
 * DRAM, and on the machines measured the hardware prefetchers alone keep
 * too few lines in flight (kbench, 1536 x 151936 from DRAM, one token:
 * 2.3x slower without). A super-block's bytes KRP_PF_DIST ahead are asked
 * for in nparts slices, slice part with the part-th sub-block's work,
 * rather than all at once, which overflows the miss queue. */
#define KRP_PF_DIST 8192
AI void krp_prefetch(const char *b, size_t sb, int part, int nparts)
{
    const size_t lines = (sb + 63) / 64, per = (lines + (size_t)nparts - 1) / (size_t)nparts;
    for (size_t l = (size_t)part * per; l < (size_t)(part + 1) * per && l < lines; l++)
        _mm_prefetch(b + KRP_PF_DIST + 64 * l, PF_HINT);
}

typedef void (*krp_scales_fn)(const char *b, krp *P);
typedef __m512i (*krp_wq_fn)(const char *b, int j, int g);
/* A type's own kernel for one token (NULL: krp_tokens), FOLD only. */
typedef void (*krp_one_fn)(const char *b, const krp *P, const wisp_block_q8_K *y, float *acc);

/* T tokens (1 <= T <= 8) against super-block b of a repacked group. */
AI void krp_tokens(const char *b, size_t sb, const krp *P, const wisp_block_q8_K *const *y,
                   const int T, int span, int fold, krp_wq_fn wq, float *acc, float *accm)
{
    /* C chains per token: with few tokens one chain of dependent vpdpbusd
     * per sub-block would wait on its latency (exact integer sums: the
     * split changes no bit) */
    const int C0 = T >= 4 ? 1 : T >= 2 ? 2 : 4, C = C0 < span / 8 ? C0 : span / 8;
    __m512i is[8], pt[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        is[t] = _mm512_setzero_si512();
    for (int j = 0; j < WISP_QK_K / span; j++) {
        krp_prefetch(b, sb, j, WISP_QK_K / span);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T * C; t++)
            pt[t] = _mm512_setzero_si512();
        _Pragma("GCC unroll 8")
        for (int g = 0; g < span / 4; g++) {
            const __m512i w = wq(b, j, g);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++)
                pt[C * t + g % C] = dpbusd_bcast(pt[C * t + g % C], w, y[t]->qs + span * j + 4 * g);
        }
        const __m512i s = P->sc[j];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            __m512i p = pt[C * t];
            _Pragma("GCC unroll 4")
            for (int c = 1; c < C; c++)
                p = _mm512_add_epi32(p, pt[C * t + c]);
            is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(p, s));
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        kpanel_end(P->corr, P->d, P->cm, y[t], is[t], fold, acc + 16 * t, accm + 16 * t);
}

/* Q6_K against one token. A qh vector serves the 4 parts of its half and
 * each ql vector 2 of them, so here each is loaded once and split 4 ways
 * (the sums of 4 sub-blocks at a time) instead of once per part, as
 * krp_tokens does: a decode step streams the weights once, and the
 * extraction, not the dots, is most of its work. Same integers, same
 * float work. */
AI void krp6_one(const char *b, const krp *P, const wisp_block_q8_K *y, float *acc)
{
    const __m512i m30 = _mm512_set1_epi8(0x30);
    __m512i is = _mm512_setzero_si512();
    _Pragma("GCC unroll 1")
    for (int hq = 0; hq < 4; hq++) {
        const int h = hq / 2, q = hq % 2;
        krp_prefetch(b, WISP_RP_K_ROWS * sizeof(wisp_block_q6_K), hq, 4);
        __m512i pt[4];
        _Pragma("GCC unroll 4")
        for (int p = 0; p < 4; p++)
            pt[p] = _mm512_setzero_si512();
        _Pragma("GCC unroll 4")
        for (int g = 0; g < 4; g++) {
            const __m512i l0 = _mm512_loadu_si512(b + WISP_RP_K6_SLOT(h, q, g, 0)),
                          l1 = _mm512_loadu_si512(b + WISP_RP_K6_SLOT(h, q, g, 1)),
                          qh = _mm512_loadu_si512(b + WISP_RP_K6_SLOT(h, q, g, 2));
            const __m512i w[4] = {
                krp_nibble_or(l0, _mm512_and_si512(_mm512_slli_epi32(qh, 4), m30)),
                krp_nibble_or(l1, _mm512_and_si512(_mm512_slli_epi32(qh, 2), m30)),
                krp_nibble_or(_mm512_srli_epi32(l0, 4), _mm512_and_si512(qh, m30)),
                krp_nibble_or(_mm512_srli_epi32(l1, 4),
                              _mm512_and_si512(_mm512_srli_epi32(qh, 2), m30)),
            };
            _Pragma("GCC unroll 4")
            for (int p = 0; p < 4; p++)
                pt[p] = dpbusd_bcast(pt[p], w[p], y->qs + 16 * (8 * h + 2 * p + q) + 4 * g);
        }
        _Pragma("GCC unroll 4")
        for (int p = 0; p < 4; p++)
            is = _mm512_add_epi32(is, _mm512_mullo_epi32(pt[p], P->sc[8 * h + 2 * p + q]));
    }
    kpanel_end(P->corr, P->d, P->cm, y, is, 1, acc, NULL);
}

/* The panel of a repacked super-block: its group vectors once, for
 * batches that would otherwise extract them again for every 8 tokens.
 * The panel keeps a scale per 16 elements, so a 32-element sub-block's
 * scale is written twice. */
AI void krp_panel(const char *b, size_t sb, int span, krp_scales_fn scales, krp_wq_fn wq, kpanel *P)
{
    krp k;
    scales(b, &k);
    for (int j = 0; j < WISP_QK_K / span; j++) {
        krp_prefetch(b, sb, j, WISP_QK_K / span);
        _Pragma("GCC unroll 8")
        for (int g = 0; g < span / 4; g++)
            P->q[span / 4 * j + g] = wq(b, j, g);
        _Pragma("GCC unroll 2")
        for (int e = 0; e < span / 16; e++)
            P->sc[span / 16 * j + e] = k.sc[j];
    }
    memcpy(P->corr, k.corr, sizeof(P->corr));
    P->d = k.d;
    P->cm = k.cm;
}

/* The tokens' blocks of super-block i, 8 at most from token t. */
AI int krp_ys(const char *a, size_t sa, int nt, int t, int64_t i, const wisp_block_q8_K *y[8])
{
    const int T = nt - t < 8 ? nt - t : 8;
    for (int c = 0; c < T; c++) {
        y[c] = (const wisp_block_q8_K *)(a + (size_t)(t + c) * sa) + i;
        PREFETCH_NEXT_Q8K(y[c] + 1);
    }
    return T;
}

AI void krp_store(const float *acc, const float *accm, int nt, float *s, size_t ss)
{
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(s + (size_t)t * ss, _mm512_add_ps(_mm512_load_ps(acc + 16 * t),
                                                           _mm512_load_ps(accm + 16 * t)));
}

/* One repacked group (16 rows, super-blocks of sb bytes) against
 * nt <= 8 tokens, read straight from the weights; one token goes to ONE
 * where the type has it. */
AI void krp_run(int64_t n, const char *w, const char *a, size_t sa, int nt, float *s, size_t ss,
                size_t sb, int span, int fold, krp_scales_fn scales, krp_wq_fn wq, krp_one_fn one)
{
    _Alignas(64) float acc[8 * 16] = {0}, accm[8 * 16] = {0};
    krp P;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        const char *b = w + (size_t)i * sb;
        const wisp_block_q8_K *y[8];
        scales(b, &P);
        const int T = krp_ys(a, sa, nt, 0, i, y);
        if (T == 1 && one) {
            one(b, &P, y[0], acc);
            continue;
        }
        switch (T) {
        case 8: krp_tokens(b, sb, &P, y, 8, span, fold, wq, acc, accm); break;
        case 7: krp_tokens(b, sb, &P, y, 7, span, fold, wq, acc, accm); break;
        case 6: krp_tokens(b, sb, &P, y, 6, span, fold, wq, acc, accm); break;
        case 5: krp_tokens(b, sb, &P, y, 5, span, fold, wq, acc, accm); break;
        case 4: krp_tokens(b, sb, &P, y, 4, span, fold, wq, acc, accm); break;
        case 3: krp_tokens(b, sb, &P, y, 3, span, fold, wq, acc, accm); break;
        case 2: krp_tokens(b, sb, &P, y, 2, span, fold, wq, acc, accm); break;
        default: krp_tokens(b, sb, &P, y, 1, span, fold, wq, acc, accm); break;
        }
    }
    krp_store(acc, accm, nt, s, ss);
}

/* The same for 8 < nt <= KPANEL_TOKS tokens, through a panel per
 * super-block (kpanel_tokens: the same integers and floats). */
AI void krp_run_panel(int64_t n, const char *w, const char *a, size_t sa, int nt, float *s,
                      size_t ss, size_t sb, int span, int fold, krp_scales_fn scales, krp_wq_fn wq)
{
    _Alignas(64) float acc[KPANEL_TOKS * 16], accm[KPANEL_TOKS * 16];
    kpanel P;
    memset(acc, 0, sizeof(float) * 16 * (size_t)nt);
    memset(accm, 0, sizeof(float) * 16 * (size_t)nt);
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        krp_panel(w + (size_t)i * sb, sb, span, scales, wq, &P);
        for (int t = 0; t < nt; t += 8) {
            const wisp_block_q8_K *y[8];
            float *at = acc + 16 * t, *amt = accm + 16 * t;
            switch (krp_ys(a, sa, nt, t, i, y)) {
            case 8: kpanel_tokens(&P, y, 8, span, 0, fold, at, amt); break;
            case 7: kpanel_tokens(&P, y, 7, span, 0, fold, at, amt); break;
            case 6: kpanel_tokens(&P, y, 6, span, 0, fold, at, amt); break;
            case 5: kpanel_tokens(&P, y, 5, span, 0, fold, at, amt); break;
            case 4: kpanel_tokens(&P, y, 4, span, 0, fold, at, amt); break;
            case 3: kpanel_tokens(&P, y, 3, span, 0, fold, at, amt); break;
            case 2: kpanel_tokens(&P, y, 2, span, 0, fold, at, amt); break;
            default: kpanel_tokens(&P, y, 1, span, 0, fold, at, amt); break;
            }
        }
    }
    krp_store(acc, accm, nt, s, ss);
}

/* wisp_rp_fn for a repacked K-quant: ng groups of WISP_RP_K_ROWS rows,
 * any nc; SPAN and FOLD as for the panel (kdec), ONE: krp_run's. */
#define DEF_RPK(name, WB, SPAN, FOLD, ONE)                                                   \
    static void krp_group_##name(int64_t n, const char *w, const char *a, size_t sa, int nt, \
                                 float *s, size_t ss)                                        \
    {                                                                                        \
        if (nt > 8)                                                                          \
            krp_run_panel(n, w, a, sa, nt, s, ss, WISP_RP_K_ROWS * sizeof(WB), SPAN, FOLD,   \
                          krp_scales_##name, krp_wq_##name);                                 \
        else                                                                                 \
            krp_run(n, w, a, sa, nt, s, ss, WISP_RP_K_ROWS * sizeof(WB), SPAN, FOLD,         \
                    krp_scales_##name, krp_wq_##name, ONE);                                  \
    }                                                                                        \
    static void x86_rp_##name(int64_t n, const void *w, size_t sg, int ng, const void *a,    \
                              size_t sa, int nc, float *s, size_t ss)                        \
    {                                                                                        \
        for (int g = 0; g < ng; g++)                                                         \
            for (int t = 0; t < nc; t += KPANEL_TOKS)                                        \
                krp_group_##name(n, (const char *)w + (size_t)g * sg,                        \
                                 (const char *)a + (size_t)t * sa, sa,                       \
                                 nc - t < KPANEL_TOKS ? nc - t : KPANEL_TOKS,                \
                                 s + (size_t)t * ss + (size_t)g * WISP_RP_K_ROWS, ss);       \
    }

DEF_RPK(q4_K, wisp_block_q4_K, 32, 0, NULL)
DEF_RPK(q5_K, wisp_block_q5_K, 32, 0, NULL)
DEF_RPK(q6_K, wisp_block_q6_K, 16, 1, krp6_one)

#endif

#endif
