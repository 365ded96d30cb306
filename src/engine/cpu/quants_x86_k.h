/*
 * quants_x86_k.h - K-quant (Q2_K .. Q6_K) x Q8_K kernels, 256-bit, shared
 * by quants_avx2.c and quants_avx512.c (include after quants_x86.h).
 *
 * Each type has a decoder that expands one super-block into a common form:
 *   u[256]   unsigned quants in element order,
 *   sc[16]   int16 scale per 16 elements,
 *   corr[16] int16 correction per 16 elements,
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

typedef struct kdec {
    _Alignas(32) uint8_t u[WISP_QK_K];
    _Alignas(32) int16_t sc[16];
    _Alignas(32) int16_t corr[16];
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
    for (int h = 0; h < 2; h++) {
        __m256i bits = loadu256(b->qs + 32 * h);
        put32(k, h * 128 + 0, _mm256_and_si256(bits, m3));
        put32(k, h * 128 + 32, _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3));
        put32(k, h * 128 + 64, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3));
        put32(k, h * 128 + 96, _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3));
    }
    for (int j = 0; j < 16; j++) {
        k->sc[j] = b->scales[j] & 0xF;
        k->corr[j] = b->scales[j] >> 4;
    }
    k->d = h2f(b->d);
    k->cm = -h2f(b->dmin);
    k->fold = 0;
}

AI void kdec_q3_K(const void *p, kdec *k)
{
    const wisp_block_q3_K *b = p;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256i hm = loadu256(b->hmask);
    for (int h = 0; h < 2; h++) {
        __m256i bits = loadu256(b->qs + 32 * h);
        /* u = 2 low bits + 4 * high bit, in 0..7; the value is u - 4 */
#define Q3PART(s, shifted)                                                                       \
    put32(k, h * 128 + 32 * (s),                                                                 \
          _mm256_or_si256(_mm256_and_si256(shifted, m3), _mm256_and_si256(has_bit(hm, 4 * h + (s)), four)))
        Q3PART(0, bits);
        Q3PART(1, _mm256_srli_epi16(bits, 2));
        Q3PART(2, _mm256_srli_epi16(bits, 4));
        Q3PART(3, _mm256_srli_epi16(bits, 6));
#undef Q3PART
    }
    const uint8_t *s = b->scales;
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        k->sc[j] = (int16_t)((lo | (hi << 4)) - 32);
        k->corr[j] = (int16_t)(4 * k->sc[j]);
    }
    k->d = h2f(b->d);
    k->cm = -k->d;
    k->fold = 1;
}

AI void kdec_scales_k4(const uint8_t *scales, kdec *k)
{
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        wisp_get_scale_min_k4(j, scales, &sc, &m);
        k->sc[2 * j] = k->sc[2 * j + 1] = sc;
        k->corr[2 * j] = k->corr[2 * j + 1] = m;
    }
}

AI void kdec_q4_K(const void *p, kdec *k)
{
    const wisp_block_q4_K *b = p;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
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
    for (int c = 0; c < 4; c++) {
        __m256i bits = loadu256(b->qs + 32 * c);
        put32(k, 64 * c, _mm256_or_si256(_mm256_and_si256(bits, m4),
                                         _mm256_and_si256(has_bit(hb, 2 * c), b16)));
        put32(k, 64 * c + 32, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
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
    for (int h = 0; h < 2; h++) {
        __m256i l0 = loadu256(b->ql + 64 * h), l1 = loadu256(b->ql + 64 * h + 32);
        __m256i qh = loadu256(b->qh + 32 * h);
#define Q6HI(shift) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), m3), 4)
        put32(k, h * 128 + 0, _mm256_or_si256(_mm256_and_si256(l0, m4), Q6HI(0)));
        put32(k, h * 128 + 32, _mm256_or_si256(_mm256_and_si256(l1, m4), Q6HI(2)));
        put32(k, h * 128 + 64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), Q6HI(4)));
        put32(k, h * 128 + 96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), Q6HI(6)));
#undef Q6HI
    }
    for (int j = 0; j < 16; j++) {
        k->sc[j] = b->scales[j];
        k->corr[j] = (int16_t)(32 * b->scales[j]);
    }
    k->d = h2f(b->d);
    k->cm = -k->d;
    k->fold = 1;
}

/* The shared inner loop: one decoded super-block against one Q8_K block. */
AI float kdot_block(const kdec *k, const __m256i *scv, const wisp_block_q8_K *y)
{
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        __m256i u = _mm256_load_si256((const __m256i *)(k->u + 32 * c));
        __m256i p = _mm256_maddubs_epi16(u, loadu256(y->qs + 32 * c));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv[c]));
    }
    __m256i corr = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)k->corr), loadu256(y->bsums));
    if (k->fold)
        return y->d * k->d * (float)(hsum8i(isum) - hsum8i(corr));
    return y->d * (k->d * (float)hsum8i(isum) + k->cm * (float)hsum8i(corr));
}

#define DEF_DOTK(name, WB)                                                                       \
    AI void name##_nc(int64_t n, const void *vw, const void *va, size_t sa, int nc, float *s,   \
                      size_t ss)                                                                 \
    {                                                                                            \
        const char *w = vw;                                                                      \
        float acc[WISP_DOT_NC_MAX] = {0};                                                        \
        kdec k;                                                                                  \
        __m256i scv[8];                                                                          \
        for (int64_t i = 0; i < n / WISP_QK_K; i++) {                                            \
            kdec_##name(w + (size_t)i * sizeof(WB), &k);                                         \
            /* scales of sub-blocks 2c and 2c+1 match the maddubs lanes */                       \
            for (int c = 0; c < 8; c++)                                                          \
                scv[c] = _mm256_set_m128i(_mm_set1_epi16(k.sc[2 * c + 1]), _mm_set1_epi16(k.sc[2 * c])); \
            for (int c = 0; c < nc; c++)                                                         \
                acc[c] += kdot_block(&k, scv,                                                    \
                                     (const wisp_block_q8_K *)((const char *)va + (size_t)c * sa) + i); \
        }                                                                                        \
        for (int c = 0; c < nc; c++)                                                             \
            s[(size_t)c * ss] = acc[c];                                                          \
    }                                                                                            \
    static void x86_dot_##name(int64_t n, const void *w, const void *a, size_t sa, int nc,      \
                               float *s, size_t ss)                                              \
    {                                                                                            \
        switch (nc) {                                                                            \
        case 4: name##_nc(n, w, a, sa, 4, s, ss); break;                                         \
        case 3: name##_nc(n, w, a, sa, 3, s, ss); break;                                         \
        case 2: name##_nc(n, w, a, sa, 2, s, ss); break;                                         \
        default: name##_nc(n, w, a, sa, 1, s, ss); break;                                        \
        }                                                                                        \
    }

DEF_DOTK(q2_K, wisp_block_q2_K)
DEF_DOTK(q3_K, wisp_block_q3_K)
DEF_DOTK(q4_K, wisp_block_q4_K)
DEF_DOTK(q5_K, wisp_block_q5_K)
DEF_DOTK(q6_K, wisp_block_q6_K)

#endif
