/*
 * test_dequant_block.c - checks src/model/dequant_block.h (the granule
 * dequantizers the CUDA kernels run) against an independent scalar
 * reference written from the block format description, in the loop order
 * of ggml's dequantize_row_* functions (whole blocks, sub-block loops,
 * scale unpacking done its own way), on random blocks.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/fp16.h"
#include "dequant_ref.h"
#include "harness.h"
#include "model/dequant_block.h"

/* ---------------------------------------------------------------- random */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() & 0xFFFFFF) / (float)0x1000000;
}

static void rng_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rng_u32();
}

static uint16_t rand_half(void) { return wisp_float_to_half(rng_uniform(-2.0f, 2.0f)); }

/* ---------------------------------------------------------------- reference */

static void ref_f32(const void *blk, float *y) { memcpy(y, blk, 8 * sizeof(float)); }

static void ref_f16(const void *blk, float *y)
{
    const uint16_t *x = blk;
    for (int i = 0; i < 8; i++)
        y[i] = wisp_half_to_float(x[i]);
}

static void ref_bf16(const void *blk, float *y)
{
    const uint16_t *x = blk;
    for (int i = 0; i < 8; i++)
        y[i] = wisp_bf16_to_float(x[i]);
}

/* ---------------------------------------------------------------- table */

typedef void (*ref_fn)(const void *, float *);
typedef void (*dq8_fn)(const void *, int, float *);

struct fmt {
    const char *name;
    int qk;    /* elements per block (8 for the float types) */
    int bytes; /* bytes per block */
    ref_fn ref;
    dq8_fn dq8;
    /* byte offsets of halves to overwrite with finite values */
    int half_off[2];
    int n_half;
    bool floats; /* random finite floats instead of random bytes */
};

static const struct fmt FMTS[] = {
    {"Q4_0", 32, sizeof(wisp_block_q4_0), ref_q4_0, wisp_blk_q4_0_dequant8, {0, 0}, 1, false},
    {"Q4_1", 32, sizeof(wisp_block_q4_1), ref_q4_1, wisp_blk_q4_1_dequant8, {0, 2}, 2, false},
    {"Q5_0", 32, sizeof(wisp_block_q5_0), ref_q5_0, wisp_blk_q5_0_dequant8, {0, 0}, 1, false},
    {"Q5_1", 32, sizeof(wisp_block_q5_1), ref_q5_1, wisp_blk_q5_1_dequant8, {0, 2}, 2, false},
    {"Q8_0", 32, sizeof(wisp_block_q8_0), ref_q8_0, wisp_blk_q8_0_dequant8, {0, 0}, 1, false},
    {"Q2_K",
     256,
     sizeof(wisp_block_q2_K),
     ref_q2_K,
     wisp_blk_q2_K_dequant8,
     {offsetof(wisp_block_q2_K, d), offsetof(wisp_block_q2_K, dmin)},
     2,
     false},
    {"Q3_K",
     256,
     sizeof(wisp_block_q3_K),
     ref_q3_K,
     wisp_blk_q3_K_dequant8,
     {offsetof(wisp_block_q3_K, d), 0},
     1,
     false},
    {"Q4_K", 256, sizeof(wisp_block_q4_K), ref_q4_K, wisp_blk_q4_K_dequant8, {0, 2}, 2, false},
    {"Q5_K", 256, sizeof(wisp_block_q5_K), ref_q5_K, wisp_blk_q5_K_dequant8, {0, 2}, 2, false},
    {"Q6_K",
     256,
     sizeof(wisp_block_q6_K),
     ref_q6_K,
     wisp_blk_q6_K_dequant8,
     {offsetof(wisp_block_q6_K, d), 0},
     1,
     false},
    {"F32", 8, 32, ref_f32, wisp_blk_f32_dequant8, {0, 0}, 0, true},
    {"F16", 8, 16, ref_f16, wisp_blk_f16_dequant8, {0, 0}, 0, true},
    {"BF16", 8, 16, ref_bf16, wisp_blk_bf16_dequant8, {0, 0}, 0, true},
};

static void fill_block(const struct fmt *f, uint8_t *blk)
{
    if (!f->floats) {
        rng_bytes(blk, (size_t)f->bytes);
        for (int i = 0; i < f->n_half; i++) {
            uint16_t v = rand_half();
            memcpy(blk + f->half_off[i], &v, 2);
        }
        return;
    }
    for (int i = 0; i < 8; i++) {
        float v = rng_uniform(-100.0f, 100.0f);
        if (f->bytes == 32) {
            memcpy(blk + 4 * i, &v, 4);
        } else {
            uint16_t b =
                strcmp(f->name, "BF16") == 0 ? wisp_float_to_bf16(v) : wisp_float_to_half(v);
            memcpy(blk + 2 * i, &b, 2);
        }
    }
}

/* Dequantizes n_blocks random blocks granule by granule and compares every
 * element with the reference. Returns the number of mismatches. */
static int check_format(const struct fmt *f, int n_blocks)
{
    uint8_t blk[512];
    float ref[256], got[256];
    int bad = 0;
    for (int b = 0; b < n_blocks; b++) {
        fill_block(f, blk);
        f->ref(blk, ref);
        for (int g = 0; g < f->qk / WISP_BLK_GRANULE; g++)
            f->dq8(blk, g, got + g * WISP_BLK_GRANULE);
        for (int i = 0; i < f->qk; i++) {
            float tol = 1e-6f * fabsf(ref[i]) + 1e-7f;
            if (!(fabsf(got[i] - ref[i]) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s block %d element %d: got %g, want %g\n", f->name, b, i,
                            got[i], ref[i]);
                bad++;
            }
        }
    }
    return bad;
}

TEST(every_format_matches_reference)
{
    for (size_t i = 0; i < sizeof(FMTS) / sizeof(FMTS[0]); i++)
        CHECK_EQ_INT(check_format(&FMTS[i], 2000), 0);
}

/* The reference itself must see the bits: a single flipped quant bit has
 * to change exactly the element it belongs to, in both implementations. */
TEST(single_bit_flips_move_one_element)
{
    for (size_t fi = 0; fi < sizeof(FMTS) / sizeof(FMTS[0]); fi++) {
        const struct fmt *f = &FMTS[fi];
        if (f->floats)
            continue;
        uint8_t blk[512];
        float a[256], b[256];
        fill_block(f, blk);
        for (int g = 0; g < f->qk / 8; g++)
            f->dq8(blk, g, a + 8 * g);
        int changed_total = 0;
        for (int byte = 0; byte < f->bytes; byte++) {
            bool is_half = false;
            for (int k = 0; k < f->n_half; k++)
                is_half |= byte == f->half_off[k] || byte == f->half_off[k] + 1;
            if (is_half)
                continue;
            blk[byte] ^= 1;
            for (int g = 0; g < f->qk / 8; g++)
                f->dq8(blk, g, b + 8 * g);
            float r[256];
            f->ref(blk, r);
            for (int i = 0; i < f->qk; i++) {
                CHECK_NEAR(b[i], r[i], 1e-6 * fabs(r[i]) + 1e-7);
                changed_total += a[i] != b[i];
            }
            blk[byte] ^= 1;
        }
        /* every non-scale byte of every format feeds some element */
        CHECK(changed_total > 0);
    }
}

/* Known values written by hand from the format description. */
TEST(hand_made_q4_0_and_q8_0)
{
    wisp_block_q4_0 b4;
    b4.d = wisp_float_to_half(0.5f);
    for (int j = 0; j < 16; j++)
        b4.qs[j] = (uint8_t)((j & 0xF) | ((15 - j) << 4));
    float out[8];
    wisp_blk_q4_0_dequant8(&b4, 0, out);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], 0.5f * (i - 8), 0);
    wisp_blk_q4_0_dequant8(&b4, 3, out); /* elements 24..31: high nibbles of qs[8..15] */
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], 0.5f * ((15 - (8 + i)) - 8), 0);

    wisp_block_q8_0 b8;
    b8.d = wisp_float_to_half(0.25f);
    for (int j = 0; j < 32; j++)
        b8.qs[j] = (int8_t)(j - 16);
    wisp_blk_q8_0_dequant8(&b8, 2, out);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], 0.25f * (16 + i - 16), 0);
}
