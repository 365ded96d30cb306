/*
 * quants_x86_k.h - K-quant (Q2_K .. Q6_K) x Q8_K kernels, 256-bit, shared
 * by quants_avx2.c and quants_avx512.c (include after quants_x86.h).
 *
 * Each type has a decoder that expands one super-block into a common form:
 *   u[256]   unsigned quants in element order,
 *   sc       int8 scale per 16 elements (16 bytes),
 *   corr     int16 correction per 16 elements,
 *   d, cm    float factors,
 * such that dot(block, y) = y.d * (d * sum_j sc_j <u, y.qs>_j
 *                                  + cm * sum_j corr_j y.bsums_j).
 * The correction carries the weight minimum (Q2_K, Q4_K, Q5_K: corr = m,
 * cm = -dmin) or the offset that makes the stored quant signed (Q3_K:
 * corr = 4 sc, Q6_K: corr = 32 sc, cm = -d), so the inner loop is the same
 * unsigned x signed maddubs for every type and the decode, which is most
 * of the work for the 2/3/5/6-bit types, is done once per super-block for
 * up to four activation rows.
 */
#ifndef WISP_QUANTS_X86_K_H
#define WISP_QUANTS_X86_K_H

#include <math.h>

typedef struct kdec {
    _Alignas(32) uint8_t u[WISP_QK_K];
    __m128i sc;   /* 16 int8 scales, one per 16 elements */
    __m256i corr; /* 16 int16 corrections */
    float d, cm;
    int fold; /* cm == -d: combine the integer sums before converting (exact) */
} kdec;

AI void put32(kdec *k, int at, __m256i v) { _mm256_store_si256((__m256i *)(k->u + at), v); }

/* 0xFF where the byte has the given bit set. */
AI __m256i has_bit(__m256i v, int bit)
{
    __m256i m = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, m), m);
}

AI void kdec_q2_K(const void *p, kdec *k)
{
    const wisp_block_q2_K *b = p;
    const __m256i m3 = _mm256_set1_epi8(3);
    _Pragma("GCC unroll 8")
    for (int h = 0; h < 2; h++) {
        __m256i bits = loadu256(b->qs + 32 * h);
        put32(k, h * 128 + 0, _mm256_and_si256(bits, m3));
        put32(k, h * 128 + 32, _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3));
        put32(k, h * 128 + 64, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3));
        put32(k, h * 128 + 96, _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3));
    }
    __m128i sc = loadu128(b->scales), m4 = _mm_set1_epi8(0x0F);
    k->sc = _mm_and_si128(sc, m4);
    k->corr = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
    k->d = h2f(b->d);
    k->cm = -h2f(b->dmin);
    k->fold = 0;
}

AI void kdec_q3_K(const void *p, kdec *k)
{
    const wisp_block_q3_K *b = p;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256i hm = loadu256(b->hmask);
    _Pragma("GCC unroll 8")
    for (int h = 0; h < 2; h++) {
        __m256i bits = loadu256(b->qs + 32 * h);
        /* u = 2 low bits + 4 * high bit, in 0..7; the value is u - 4 */
#define Q3PART(s, shifted)                               \
    put32(k, h * 128 + 32 * (s),                         \
          _mm256_or_si256(_mm256_and_si256(shifted, m3), \
                          _mm256_and_si256(has_bit(hm, 4 * h + (s)), four)))
        Q3PART(0, bits);
        Q3PART(1, _mm256_srli_epi16(bits, 2));
        Q3PART(2, _mm256_srli_epi16(bits, 4));
        Q3PART(3, _mm256_srli_epi16(bits, 6));
#undef Q3PART
    }
    /* 6-bit scales: low nibbles in bytes 0..7, high pairs in bytes 8..11
     * (ggml's layout), unpacked four at a time in 32-bit words. */
    uint32_t aux[4];
    memcpy(aux, b->scales, 12);
    const uint32_t km1 = 0x03030303, km2 = 0x0f0f0f0f, tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & km2) | (((tmp >> 4) & km1) << 4);
    aux[3] = ((aux[1] >> 4) & km2) | (((tmp >> 6) & km1) << 4);
    aux[0] = (aux[0] & km2) | (((tmp >> 0) & km1) << 4);
    aux[1] = (aux[1] & km2) | (((tmp >> 2) & km1) << 4);
    k->sc = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)aux), _mm_set1_epi8(32));
    k->corr = _mm256_slli_epi16(_mm256_cvtepi8_epi16(k->sc), 2);
    k->d = h2f(b->d);
    k->cm = -k->d;
    k->fold = 1;
}

/* Q4_K/Q5_K: eight 6-bit scales and mins in 12 bytes (ggml's layout),
 * unpacked in one vector: bytes 0..7 the scales, 8..15 the mins. (The
 * scalar shifts and masks on a uint32_t[4] read back as a vector cost a
 * failed store forwarding, a dozen cycles, per super-block.) Reads 16
 * bytes: the 4 after the scales are the block's next field. */
AI __m128i scales_k4(const uint8_t *p)
{
    const __m128i v = loadu128(p);
    /* scales 0..3 and mins 0..3: the low 6 bits of bytes 0..7 */
    const __m128i a = _mm_and_si128(v, _mm_set1_epi8(0x3f));
    /* scales 4..7 and mins 4..7: the nibbles of bytes 8..11, low then
     * high, and as bits 4..5 the top two bits of bytes 0..3, then 4..7 */
    const __m128i q = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, -1, -1, -1, -1,
                                                        -1, -1, -1, -1));
    const __m128i lo =
        _mm_and_si128(_mm_srlv_epi32(q, _mm_setr_epi32(0, 4, 0, 0)), _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_srli_epi16(_mm_and_si128(v, _mm_set1_epi8((char)0xc0)), 2);
    return _mm_unpacklo_epi32(a, _mm_or_si128(lo, hi));
}

/* Each covers 32 elements, so each is doubled for the per-16 form. */
AI void kdec_scales_k4(const uint8_t *scales, kdec *k)
{
    const __m128i v = scales_k4(scales);
    k->sc = _mm_unpacklo_epi8(v, v);
    k->corr = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
}

AI void kdec_q4_K(const void *p, kdec *k)
{
    const wisp_block_q4_K *b = p;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 4; c++) {
        __m256i bits = loadu256(b->qs + 32 * c);
        put32(k, 64 * c, _mm256_and_si256(bits, m4));
        put32(k, 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
    }
    kdec_scales_k4(b->scales, k);
    k->d = h2f(b->d);
    k->cm = -h2f(b->dmin);
    k->fold = 0;
}

AI void kdec_q5_K(const void *p, kdec *k)
{
    const wisp_block_q5_K *b = p;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(0x10);
    __m256i hb = loadu256(b->qh);
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 4; c++) {
        __m256i bits = loadu256(b->qs + 32 * c);
        put32(k, 64 * c,
              _mm256_or_si256(_mm256_and_si256(bits, m4),
                              _mm256_and_si256(has_bit(hb, 2 * c), b16)));
        put32(k, 64 * c + 32,
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                              _mm256_and_si256(has_bit(hb, 2 * c + 1), b16)));
    }
    kdec_scales_k4(b->scales, k);
    k->d = h2f(b->d);
    k->cm = -h2f(b->dmin);
    k->fold = 0;
}

AI void kdec_q6_K(const void *p, kdec *k)
{
    const wisp_block_q6_K *b = p;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    _Pragma("GCC unroll 8")
    for (int h = 0; h < 2; h++) {
        __m256i l0 = loadu256(b->ql + 64 * h), l1 = loadu256(b->ql + 64 * h + 32);
        __m256i qh = loadu256(b->qh + 32 * h);
#define Q6HI(shift) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), m3), 4)
        put32(k, h * 128 + 0, _mm256_or_si256(_mm256_and_si256(l0, m4), Q6HI(0)));
        put32(k, h * 128 + 32, _mm256_or_si256(_mm256_and_si256(l1, m4), Q6HI(2)));
        put32(k, h * 128 + 64,
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), Q6HI(4)));
        put32(k, h * 128 + 96,
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), Q6HI(6)));
#undef Q6HI
    }
    k->sc = loadu128(b->scales);
    k->corr = _mm256_slli_epi16(_mm256_cvtepi8_epi16(k->sc), 5);
    k->d = h2f(b->d);
    k->cm = -k->d;
    k->fold = 1;
}

/* Scale vectors of the 8 chunks of 32: int16 lanes 0..7 (the maddubs sums
 * of elements 0..15) get scale 2c, lanes 8..15 get scale 2c+1. */
AI void kscales(const kdec *k, __m256i scv[8])
{
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 8; c++) {
        const __m128i pick =
            _mm_setr_epi8((char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c),
                          (char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c + 1),
                          (char)(2 * c + 1), (char)(2 * c + 1), (char)(2 * c + 1),
                          (char)(2 * c + 1), (char)(2 * c + 1), (char)(2 * c + 1),
                          (char)(2 * c + 1));
        scv[c] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(k->sc, pick));
    }
}

/* The shared inner loop: one decoded super-block against one Q8_K block.
 * Both integer sums are exact, so they are reduced to one int32 each
 * before anything is rounded; then one fused multiply-add per sum:
 *   acc  = fma(y.d * d,  isum (- corr when folded), acc)
 *   accm = fma(y.d * cm, corr, accm)
 * The AMX kernels (gemm_amx.c) get the same integers from the tile unit
 * and do the same two operations, so their results are these bits. */
AI void kdot_block(const kdec *k, const __m256i *scv, const wisp_block_q8_K *y, float *acc,
                   float *accm)
{
    __m256i is2[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    _Pragma("GCC unroll 8")
    for (int c = 0; c < 8; c++) {
        __m256i u = _mm256_load_si256((const __m256i *)(k->u + 32 * c));
        __m256i p = _mm256_maddubs_epi16(u, loadu256(y->qs + 32 * c));
#if WISP_X86_VNNI
        /* madd + add in one; two chains, as its latency is that of a multiply */
        is2[c & 1] = _mm256_dpwssd_epi32(is2[c & 1], p, scv[c]);
#else
        is2[c & 1] = _mm256_add_epi32(is2[c & 1], _mm256_madd_epi16(p, scv[c]));
#endif
    }
    const int isum = hsum8i(_mm256_add_epi32(is2[0], is2[1]));
    const int corr = hsum8i(_mm256_madd_epi16(k->corr, loadu256(y->bsums)));
    if (k->fold) {
        *acc = fmaf(y->d * k->d, (float)(isum - corr), *acc);
    } else {
        *acc = fmaf(y->d * k->d, (float)isum, *acc);
        *accm = fmaf(y->d * k->cm, (float)corr, *accm);
    }
}

/* ------------------------------------------------------------ decode */

/* Signed 16-bit pairs times 16-bit scales, summed into int32 lanes. */
AI __m256i dpwssd(__m256i acc, __m256i p, __m256i sc)
{
#if WISP_X86_VNNI
    return _mm256_dpwssd_epi32(acc, p, sc);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
#endif
}

/* Q4_K against one token, straight from the weight bytes: no kdec buffer
 * (its 256 bytes of stores and reloads per super-block were most of the
 * decode time) and no scale shuffles. The super-block's integer sums are
 * exact however they are added up, and the float work is kdot_block's, so
 * the bits are those of the generic loop, of the gemm and of AMX. */
AI void q4_K_one(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s, size_t ss)
{
    const wisp_block_q4_K *x = vw;
    const wisp_block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    float acc = 0.f, accm = 0.f;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        PREFETCH_SPAN(x + i, sizeof(*x));
        const __m128i scm = scales_k4(x[i].scales);
        /* each chunk's scale in both 16-bit halves of a 32-bit word, for
         * broadcasts from memory (plain loads, no shuffles) */
        _Alignas(32) int32_t sc[8];
        _mm256_store_si256((__m256i *)sc,
                           _mm256_shuffle_epi8(_mm256_broadcastq_epi64(scm),
                                               _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1,
                                                                2, -1, 3, -1, 3, -1, 4, -1, 4, -1,
                                                                5, -1, 5, -1, 6, -1, 6, -1, 7, -1,
                                                                7, -1)));
        /* keeps the compiler from turning the loads into shuffles */
        __asm__ volatile("" : : "m"(sc) : "memory");
        /* four chains, as dpwssd's latency is that of a multiply; the first
         * product of each chain needs no accumulator */
        __m256i is[4];
        _Pragma("GCC unroll 8")
        for (int c = 0; c < 4; c++) {
            const __m256i bits = loadu256(x[i].qs + 32 * c);
            const __m256i p0 =
                _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), loadu256(y[i].qs + 64 * c));
            const __m256i p1 =
                _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                     loadu256(y[i].qs + 64 * c + 32));
            const __m256i s0 = _mm256_set1_epi32(sc[2 * c]), s1 = _mm256_set1_epi32(sc[2 * c + 1]);
            if (c < 2) {
                is[2 * c] = _mm256_madd_epi16(p0, s0);
                is[2 * c + 1] = _mm256_madd_epi16(p1, s1);
            } else {
                is[2 * c - 4] = dpwssd(is[2 * c - 4], p0, s0);
                is[2 * c - 3] = dpwssd(is[2 * c - 3], p1, s1);
            }
        }
        const int isum = hsum8i(
            _mm256_add_epi32(_mm256_add_epi32(is[0], is[1]), _mm256_add_epi32(is[2], is[3])));
        const int corr = hsum8i(_mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm)),
                                                  loadu256(y[i].bsums)));
        acc = fmaf(y[i].d * h2f(x[i].d), (float)isum, acc);
        accm = fmaf(y[i].d * -h2f(x[i].dmin), (float)corr, accm);
    }
    *s = acc + accm;
}

/* Q6_K against one token, the same way: the 6-bit quants are assembled in
 * registers chunk by chunk, and the per-16 scales of a chunk (two int16
 * values, one per 128-bit half) are picked by one in-lane shuffle from
 * their sign-extended copy broadcast to both halves. Same exact integers
 * (isum - corr), same float work as kdot_block. */
AI void q6_K_one(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s, size_t ss)
{
    const wisp_block_q6_K *x = vw;
    const wisp_block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    float acc = 0.f;
    for (int64_t i = 0; i < n / WISP_QK_K; i++) {
        PREFETCH_SPAN(x + i, sizeof(*x));
        const __m256i s16 = _mm256_cvtepi8_epi16(loadu128(x[i].scales));
        /* scales 0..7 and 8..15 in both halves */
        const __m256i sl = _mm256_permute2x128_si256(s16, s16, 0x00),
                      sh = _mm256_permute2x128_si256(s16, s16, 0x11);
        __m256i is[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                         _mm256_setzero_si256()};
        _Pragma("GCC unroll 8")
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu256(x[i].ql + 64 * h), l1 = loadu256(x[i].ql + 64 * h + 32);
            const __m256i qh = loadu256(x[i].qh + 32 * h);
            __m256i u[4];
            u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_and_si256(qh, m30));
            u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            _Pragma("GCC unroll 8")
            for (int k = 0; k < 4; k++) {
                const int c = 4 * h + k; /* chunk: scales 2c (low half), 2c + 1 (high half) */
                const __m256i pick =
                    _mm256_setr_epi8((char)(4 * c % 16), (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16),
                                     (char)(4 * c % 16 + 1), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3), (char)(4 * c % 16 + 2),
                                     (char)(4 * c % 16 + 3));
                const __m256i scv = _mm256_shuffle_epi8(c < 4 ? sl : sh, pick);
                is[k] = dpwssd(is[k], _mm256_maddubs_epi16(u[k], loadu256(y[i].qs + 32 * c)), scv);
            }
        }
        const __m256i isum =
            _mm256_add_epi32(_mm256_add_epi32(is[0], is[1]), _mm256_add_epi32(is[2], is[3]));
        const __m256i corr = _mm256_madd_epi16(_mm256_slli_epi16(s16, 5), loadu256(y[i].bsums));
        acc = fmaf(y[i].d * h2f(x[i].d), (float)hsum8i(_mm256_sub_epi32(isum, corr)), acc);
    }
    /* the generic loop's final sum, with its (zero) minimum accumulator */
    *s = acc + 0.f;
}

#define DEF_DOTK(name, WB, ONE)                                                               \
    AI void name##_nc(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s, \
                      size_t ss)                                                              \
    {                                                                                         \
        const char *w = vw;                                                                   \
        float acc[WISP_GEMM_NC], accm[WISP_GEMM_NC];                                          \
        _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < nc; c++)                                                          \
            acc[c] = accm[c] = 0.f;                                                           \
        kdec k;                                                                               \
        __m256i scv[8];                                                                       \
        for (int64_t i = 0; i < n / WISP_QK_K; i++) {                                         \
            PREFETCH_SPAN(w + (size_t)i * sizeof(WB), sizeof(WB));                            \
            kdec_##name(w + (size_t)i * sizeof(WB), &k);                                      \
            kscales(&k, scv);                                                                 \
            _Pragma("GCC unroll 8")                                                           \
            for (int c = 0; c < nc; c++)                                                      \
                kdot_block(&k, scv,                                                           \
                           (const wisp_block_q8_K *)((const char *)va + (size_t)c * sa) + i,  \
                           &acc[c], &accm[c]);                                                \
        }                                                                                     \
        _Pragma("GCC unroll 8")                                                               \
        for (int c = 0; c < nc; c++)                                                          \
            s[(size_t)c * ss] = acc[c] + accm[c];                                             \
    }                                                                                         \
    DEF_DOT_SWITCH(name, ONE)

DEF_DOTK(q2_K, wisp_block_q2_K, q2_K_nc)
DEF_DOTK(q3_K, wisp_block_q3_K, q3_K_nc)
DEF_DOTK(q4_K, wisp_block_q4_K, q4_K_one)
DEF_DOTK(q5_K, wisp_block_q5_K, q5_K_nc)
DEF_DOTK(q6_K, wisp_block_q6_K, q6_K_one)

#endif
