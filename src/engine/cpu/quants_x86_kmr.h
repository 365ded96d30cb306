/*
 * quants_x86_kmr.h - K-quant kernels over several rows or tokens at once,
 * 256-bit, shared by quants_avx2.c and quants_avx512.c (include after
 * quants_x86_k.h).
 *
 * The per-row kernels of quants_x86_k.h end every super-block with two
 * horizontal sums of eight int32 lanes (the super-block's exact integer
 * dot and its correction) and two scalar fused multiply-adds. Here those
 * sums are taken for eight (row or token) pairs at once by one transpose
 * (sum8x8), and the float work runs in the lanes of one vector, lane for
 * lane the operations of kdot_block in the same order:
 *   acc  = fma(y.d * d,  (float)isum (- corr when folded), acc)
 *   accm = fma(y.d * cm, (float)corr, accm),   result = acc + accm
 * The integers are exact whichever way they are added up, so every lane
 * ends with the bits of the per-row kernels: a token gives the same result
 * alone (one-token kernels), in a batch (gemm) or on AMX.
 *
 *  - gemm (batches): up to WISP_GEMM_NR weight rows' super-blocks are
 *    decoded once (kdec) for up to WISP_GEMM_NC tokens, each token's
 *    quants loaded once for the rows; lanes are tokens.
 *  - gemv (one token, Q4_K): WISP_GEMV_NR weight rows against the one
 *    activation row, straight from the weight bytes as q4_K_one; lanes are
 *    (acc, accm) of each row.
 */
#ifndef WISP_QUANTS_X86_KMR_H
#define WISP_QUANTS_X86_KMR_H

/* ------------------------------------------------------------ batches */

/* A Q8_K block's quants and a decoded super-block's scale vectors in
 * registers, and the unreduced int32 lanes of sum_j sc_j <u, y>_j. */
#if WISP_X86_VNNI
/* 512-bit: one maddubs and one dpwssd per 64 elements (CPUs with 512-bit
 * data paths, AMD Zen 5, do each in one cycle like their 256-bit forms;
 * split ones, Zen 4, as two, which is no slower than two ymm). */
typedef struct kyv {
    __m512i v[4];
} kyv;
typedef struct kscv {
    __m512i v[4];
} kscv;
AI void kload_y(const int8_t *yq, kyv *y)
{
    _Pragma("GCC unroll 8")
    for (int q = 0; q < 4; q++)
        y->v[q] = _mm512_loadu_si512(yq + 64 * q);
}
AI void kscales_v(const kdec *k, kscv *sc)
{
    __m256i scv[8];
    kscales(k, scv);
    _Pragma("GCC unroll 8")
    for (int q = 0; q < 4; q++)
        sc->v[q] = _mm512_inserti64x4(_mm512_castsi256_si512(scv[2 * q]), scv[2 * q + 1], 1);
}
AI __m256i kdot_ints(const kdec *k, const kscv *sc, const kyv *y)
{
    __m512i is2[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    _Pragma("GCC unroll 8")
    for (int q = 0; q < 4; q++) {
        const __m512i p = _mm512_maddubs_epi16(_mm512_loadu_si512(k->u + 64 * q), y->v[q]);
        is2[q & 1] = _mm512_dpwssd_epi32(is2[q & 1], p, sc->v[q]);
    }
    const __m512i v = _mm512_add_epi32(is2[0], is2[1]);
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}
#else
typedef struct kyv {
    __m256i v[8];
} kyv;
typedef struct kscv {
    __m256i v[8];
} kscv;
AI void kload_y(const int8_t *yq, kyv *y)
{
    _Pragma("GCC unroll 8")
    for (int q = 0; q < 8; q++)
        y->v[q] = loadu256(yq + 32 * q);
}
AI void kscales_v(const kdec *k, kscv *sc) { kscales(k, sc->v); }
AI __m256i kdot_ints(const kdec *k, const kscv *sc, const kyv *y)
{
    __m256i is2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    _Pragma("GCC unroll 8")
    for (int q = 0; q < 8; q++) {
        const __m256i u = _mm256_load_si256((const __m256i *)(k->u + 32 * q));
        is2[q & 1] = dpwssd(is2[q & 1], _mm256_maddubs_epi16(u, y->v[q]), sc->v[q]);
    }
    return _mm256_add_epi32(is2[0], is2[1]);
}
#endif

typedef void (*kdec_fn)(const void *p, kdec *k);

/* NR weight rows (sw bytes apart) against nc tokens (2 <= nc <= 8): each
 * row's super-block is decoded once for the tokens, and each token's
 * quants are loaded once for the rows, so neither the decoded weights
 * nor the activations are re-read from beyond L1 per pair. */
AI void kgemm_rows(int64_t n, const char *w, size_t sw, const int NR, const void *va, size_t sa,
                   int nc, float *s, size_t ss, kdec_fn dec, size_t wb)
{
    __m256 acc[WISP_GEMM_NR], accm[WISP_GEMM_NR];
    kdec k[WISP_GEMM_NR];
    kscv sc[WISP_GEMM_NR];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++)
        acc[r] = accm[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        _Pragma("GCC unroll 4")
        for (int r = 0; r < NR; r++) {
            const char *b = w + (size_t)r * sw + (size_t)i * wb;
            PREFETCH_SPAN(b, wb);
            dec(b, &k[r]);
            kscales_v(&k[r], &sc[r]);
        }
        __m256i is[WISP_GEMM_NR][WISP_GEMM_NC], cs[WISP_GEMM_NR][WISP_GEMM_NC];
        _Alignas(32) float yd[WISP_GEMM_NC];
        _Pragma("GCC unroll 8")
        for (int c = 0; c < WISP_GEMM_NC; c++) {
            if (c >= nc) {
                _Pragma("GCC unroll 4")
                for (int r = 0; r < NR; r++)
                    is[r][c] = cs[r][c] = _mm256_setzero_si256();
                yd[c] = 0.f;
                continue;
            }
            const wisp_block_q8_K *y =
                (const wisp_block_q8_K *)((const char *)va + (size_t)c * sa) + i;
            kyv yv;
            kload_y(y->qs, &yv);
            const __m256i bs = loadu256(y->bsums);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < NR; r++) {
                is[r][c] = kdot_ints(&k[r], &sc[r], &yv);
                cs[r][c] = _mm256_madd_epi16(k[r].corr, bs);
            }
            yd[c] = y->d;
        }
        const __m256 ydv = _mm256_load_ps(yd);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < NR; r++) {
            const __m256i isum = sum8x8(is[r], 0), corr = sum8x8(cs[r], 0);
            if (k[r].fold) {
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k[r].d)),
                                         _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, corr)), acc[r]);
            } else {
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k[r].d)),
                                         _mm256_cvtepi32_ps(isum), acc[r]);
                accm[r] = _mm256_fmadd_ps(_mm256_mul_ps(ydv, _mm256_set1_ps(k[r].cm)),
                                          _mm256_cvtepi32_ps(corr), accm[r]);
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
        _Alignas(32) float out[WISP_GEMM_NC];
        _mm256_store_ps(out, _mm256_add_ps(acc[r], accm[r]));
        for (int c = 0; c < nc; c++)
            s[(size_t)c * ss + (size_t)r] = out[c];
    }
}

#define DEF_GEMMK(name, WB)                                                                 \
    static void x86_gemm_##name(int64_t n, const void *w, size_t sw, int nr, const void *a, \
                                size_t sa, int nc, float *s, size_t ss)                     \
    {                                                                                       \
        if (nc < 2) {                                                                       \
            for (int r = 0; r < nr; r++)                                                    \
                x86_dot_##name(n, (const char *)w + (size_t)r * sw, a, sa, nc, s + r, ss);  \
            return;                                                                         \
        }                                                                                   \
        switch (nr) {                                                                       \
        case 4: kgemm_rows(n, w, sw, 4, a, sa, nc, s, ss, kdec_##name, sizeof(WB)); break;  \
        case 3: kgemm_rows(n, w, sw, 3, a, sa, nc, s, ss, kdec_##name, sizeof(WB)); break;  \
        case 2: kgemm_rows(n, w, sw, 2, a, sa, nc, s, ss, kdec_##name, sizeof(WB)); break;  \
        default: kgemm_rows(n, w, sw, 1, a, sa, nc, s, ss, kdec_##name, sizeof(WB)); break; \
        }                                                                                   \
    }

DEF_GEMMK(q2_K, wisp_block_q2_K)
DEF_GEMMK(q3_K, wisp_block_q3_K)
DEF_GEMMK(q4_K, wisp_block_q4_K)
DEF_GEMMK(q5_K, wisp_block_q5_K)
DEF_GEMMK(q6_K, wisp_block_q6_K)

/* ------------------------------------------------------------ one token */

/* The exact integer dot (unreduced, eight int32 lanes) of one Q4_K
 * super-block with one Q8_K block, and of its minimums with the block's
 * sums. y holds the block's quants as q4_K_y_load arranged them. */
#if WISP_X86_VNNI
/* 512-bit: 64 weight bytes hold the low nibbles of sub-blocks 4h and
 * 4h + 2 and the high nibbles of 4h + 1 and 4h + 3, so the activation
 * quants are paired up to match once per super-block (and shared by the
 * rows), and each dot takes 64 elements. */
typedef struct q4k_y {
    __m512i lo[2], hi[2];
} q4k_y;
AI void q4_K_y_load(const wisp_block_q8_K *y, q4k_y *v)
{
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
        const int8_t *q = y->qs + 128 * h;
        v->lo[h] = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(q)), loadu256(q + 64), 1);
        v->hi[h] =
            _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(q + 32)), loadu256(q + 96), 1);
    }
}
/* Q4_K, and Q5_K when qh is not NULL (the fifth bit of element l of
 * 64-element chunk c is bit 2c, or 2c + 1 for the chunk's high half, of
 * qh[l], as kdec_q5_K reads it). */
AI void k4_block_sums(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                      const wisp_block_q8_K *y, const q4k_y *yv, __m256i *isv, __m256i *corrv)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m128i scm = scales_k4(scales);
    const __m512i hb = qh ? _mm512_broadcast_i64x4(loadu256(qh)) : _mm512_setzero_si512();
    /* dword j: scale j in both 16-bit halves */
    const __m256i scd = _mm256_shuffle_epi8(_mm256_broadcastq_epi64(scm),
                                            _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2,
                                                             -1, 3, -1, 3, -1, 4, -1, 4, -1, 5, -1,
                                                             5, -1, 6, -1, 6, -1, 7, -1, 7, -1));
    const __m512i sc = _mm512_castsi256_si512(scd);
    __m512i is[2];
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
        const __m512i bits = _mm512_loadu_si512(qs + 64 * h);
        const __m512i slo =
            _mm512_permutexvar_epi32(_mm512_set_epi32(4 * h + 2, 4 * h + 2, 4 * h + 2, 4 * h + 2,
                                                      4 * h + 2, 4 * h + 2, 4 * h + 2, 4 * h + 2,
                                                      4 * h, 4 * h, 4 * h, 4 * h, 4 * h, 4 * h,
                                                      4 * h, 4 * h),
                                     sc);
        const __m512i shi =
            _mm512_permutexvar_epi32(_mm512_set_epi32(4 * h + 3, 4 * h + 3, 4 * h + 3, 4 * h + 3,
                                                      4 * h + 3, 4 * h + 3, 4 * h + 3, 4 * h + 3,
                                                      4 * h + 1, 4 * h + 1, 4 * h + 1, 4 * h + 1,
                                                      4 * h + 1, 4 * h + 1, 4 * h + 1, 4 * h + 1),
                                     sc);
        __m512i lo = _mm512_and_si512(bits, m4),
                hi = _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4);
        if (qh) {
            /* halves: chunks 2h and 2h + 1, so bits 4h / 4h + 2 (low
             * nibbles) and 4h + 1 / 4h + 3 (high) */
            const __m512i sel_lo =
                _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (4 * h))),
                                   _mm256_set1_epi8((char)(1 << (4 * h + 2))), 1);
            const __m512i sel_hi =
                _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (4 * h + 1))),
                                   _mm256_set1_epi8((char)(1 << (4 * h + 3))), 1);
            const __m512i b16 = _mm512_set1_epi8(0x10);
            /* bit 4 of a nibble is clear: adding 16 sets it */
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hb, sel_lo), lo, b16);
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(hb, sel_hi), hi, b16);
        }
        const __m512i p0 = _mm512_maddubs_epi16(lo, yv->lo[h]);
        const __m512i p1 = _mm512_maddubs_epi16(hi, yv->hi[h]);
        is[h] = _mm512_dpwssd_epi32(_mm512_madd_epi16(p0, slo), p1, shi);
    }
    const __m512i v = _mm512_add_epi32(is[0], is[1]);
    *isv = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    *corrv =
        _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)), loadu256(y->bsums));
}
AI void q4_K_block_sums(const wisp_block_q4_K *x, const wisp_block_q8_K *y, const q4k_y *yv,
                        __m256i *isv, __m256i *corrv)
{
    k4_block_sums(x->scales, x->qs, NULL, y, yv, isv, corrv);
}
AI void q5_K_block_sums(const wisp_block_q5_K *x, const wisp_block_q8_K *y, const q4k_y *yv,
                        __m256i *isv, __m256i *corrv)
{
    k4_block_sums(x->scales, x->qs, x->qh, y, yv, isv, corrv);
}
#else
typedef struct q4k_y {
    char unused;
} q4k_y;
AI void q4_K_y_load(const wisp_block_q8_K *y, q4k_y *v)
{
    (void)y;
    (void)v;
}
AI void q4_K_block_sums(const wisp_block_q4_K *x, const wisp_block_q8_K *y, const q4k_y *yv,
                        __m256i *isv, __m256i *corrv)
{
    (void)yv;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m128i scm = scales_k4(x->scales);
    _Alignas(32) int32_t sc[8];
    _mm256_store_si256((__m256i *)sc,
                       _mm256_shuffle_epi8(_mm256_broadcastq_epi64(scm),
                                           _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2,
                                                            -1, 3, -1, 3, -1, 4, -1, 4, -1, 5, -1,
                                                            5, -1, 6, -1, 6, -1, 7, -1, 7, -1)));
    /* keeps the compiler from turning the broadcasts into shuffles */
    __asm__ volatile("" : : "m"(sc) : "memory");
    __m256i is[4];
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 4; c++) {
        const __m256i bits = loadu256(x->qs + 32 * c);
        const __m256i p0 =
            _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), loadu256(y->qs + 64 * c));
        const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                                loadu256(y->qs + 64 * c + 32));
        const __m256i s0 = _mm256_set1_epi32(sc[2 * c]), s1 = _mm256_set1_epi32(sc[2 * c + 1]);
        if (c < 2) {
            is[2 * c] = _mm256_madd_epi16(p0, s0);
            is[2 * c + 1] = _mm256_madd_epi16(p1, s1);
        } else {
            is[2 * c - 4] = dpwssd(is[2 * c - 4], p0, s0);
            is[2 * c - 3] = dpwssd(is[2 * c - 3], p1, s1);
        }
    }
    *isv = _mm256_add_epi32(_mm256_add_epi32(is[0], is[1]), _mm256_add_epi32(is[2], is[3]));
    *corrv =
        _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)), loadu256(y->bsums));
}
#endif

/* WISP_GEMV_NR rows of Q4_K or Q5_K (sw bytes apart) against one Q8_K
 * row: s[r] for r < nr; fewer rows than WISP_GEMV_NR go to the type's
 * one-token dot. Both start with d, dmin and take cm = -dmin, fold = 0
 * (kdec), so the lanes' float work is that of kdot_block. */
#define DEF_GEMV_K4(name, WB, ONE)                                                             \
    static void x86_gemv_##name(int64_t n, const void *vw, size_t sw, int nr, const void *va,  \
                                float *s)                                                      \
    {                                                                                          \
        if (nr != WISP_GEMV_NR) {                                                              \
            for (int r = 0; r < nr; r++)                                                       \
                ONE(n, (const char *)vw + (size_t)r * sw, va, 0, 1, s + r, 0);                 \
            return;                                                                            \
        }                                                                                      \
        _Static_assert(WISP_GEMV_NR == 4, "the lanes hold (acc, accm) of four rows");          \
        const wisp_block_q8_K *y = va;                                                         \
        const char *w = vw;                                                                    \
        /* lanes 2r, 2r + 1: acc and accm of row r; the odd lanes' factors are \
         * -dmin, the even ones' d */               \
        const __m256 neg_odd =                                                                 \
            _mm256_castsi256_ps(_mm256_setr_epi32(0, (int)0x80000000u, 0, (int)0x80000000u, 0, \
                                                  (int)0x80000000u, 0, (int)0x80000000u));     \
        __m256 acc = _mm256_setzero_ps();                                                      \
        for (int64_t i = 0; i < n / WISP_QK_K; i++) {                                          \
            __m256i p[8];                                                                      \
            uint32_t ddm[4];                                                                   \
            q4k_y yv;                                                                          \
            q4_K_y_load(y + i, &yv);                                                           \
            _Pragma("GCC unroll 4")                                                            \
            for (int r = 0; r < 4; r++) {                                                      \
                const WB *x = (const WB *)(w + (size_t)r * sw) + i;                            \
                PREFETCH_SPAN(x, sizeof(*x));                                                  \
                memcpy(&ddm[r], x, sizeof(uint32_t)); /* d, dmin */                            \
                name##_block_sums(x, y + i, &yv, &p[2 * r], &p[2 * r + 1]);                    \
            }                                                                                  \
            const __m256 dv = _mm256_xor_ps(_mm256_cvtph_ps(loadu128(ddm)), neg_odd);          \
            acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(y[i].d), dv),                   \
                                  _mm256_cvtepi32_ps(sum8x8(p, 0)), acc);                      \
        }                                                                                      \
        _Alignas(32) float out[8];                                                             \
        _mm256_store_ps(out, acc);                                                             \
        for (int r = 0; r < 4; r++)                                                            \
            s[r] = out[2 * r] + out[2 * r + 1];                                                \
    }

DEF_GEMV_K4(q4_K, wisp_block_q4_K, q4_K_one)
#if WISP_X86_VNNI
/* (the 256-bit level keeps Q5_K's dot kernel for one token) */
DEF_GEMV_K4(q5_K, wisp_block_q5_K, x86_dot_q5_K)
#endif

#endif
