/*
 * test_type_table.c - every place that reads block geometry agrees with
 * the one type list (WISP_TYPES_COMPUTED in model/types.h) and with the
 * published GGUF block sizes.
 *
 * The expected sizes below are written out from the GGUF format (ggml's
 * block structs), not derived from wisp's headers, so a wrong row or a
 * wrong struct cannot agree with itself. The CUDA kernels' traits are
 * generated from the same list and static_assert each block's sizeof
 * against it at compile time (kernels/quant_traits.cuh).
 */
#include <string.h>

#include "engine/cpu/cpu_types.h"
#include "harness.h"
#include "model/types.h"

static const struct {
    int type;
    const char *name;
    int block;
    size_t bytes;
    bool quantized;
} gguf_blocks[] = {
    {WISP_TYPE_F32, "F32", 1, 4, false},      {WISP_TYPE_F16, "F16", 1, 2, false},
    {WISP_TYPE_BF16, "BF16", 1, 2, false},    {WISP_TYPE_Q4_0, "Q4_0", 32, 18, true},
    {WISP_TYPE_Q4_1, "Q4_1", 32, 20, true},   {WISP_TYPE_Q5_0, "Q5_0", 32, 22, true},
    {WISP_TYPE_Q5_1, "Q5_1", 32, 24, true},   {WISP_TYPE_Q8_0, "Q8_0", 32, 34, true},
    {WISP_TYPE_Q8_1, "Q8_1", 32, 36, true},   {WISP_TYPE_Q2_K, "Q2_K", 256, 84, true},
    {WISP_TYPE_Q3_K, "Q3_K", 256, 110, true}, {WISP_TYPE_Q4_K, "Q4_K", 256, 144, true},
    {WISP_TYPE_Q5_K, "Q5_K", 256, 176, true}, {WISP_TYPE_Q6_K, "Q6_K", 256, 210, true},
    {WISP_TYPE_Q8_K, "Q8_K", 256, 292, true},
};
#define N_ROWS (int)(sizeof gguf_blocks / sizeof gguf_blocks[0])

TEST(every_computed_row_matches_the_format)
{
    int rows = 0;
#define ROW(ID, id, QK, BYTES, KIND)                               \
    do {                                                           \
        rows++;                                                    \
        const wisp_type_traits *t = wisp_type_get(WISP_TYPE_##ID); \
        CHECK_EQ_STR(t->name, #ID);                                \
        CHECK(t->supported);                                       \
        CHECK_EQ_INT(t->block_size, QK);                           \
        CHECK_EQ_INT(t->type_size, BYTES);                         \
        CHECK_EQ_INT(WISP_BLOCK_ELEMS_##ID, QK);                   \
        CHECK_EQ_INT(WISP_BLOCK_BYTES_##ID, BYTES);                \
        CHECK_EQ_INT(wisp_cpu_block_size(WISP_TYPE_##ID), QK);     \
        CHECK_EQ_INT(wisp_cpu_block_bytes(WISP_TYPE_##ID), BYTES); \
        CHECK(t->to_float != NULL && t->from_float != NULL);       \
    } while (0);
    WISP_TYPES_COMPUTED(ROW)
#undef ROW
    CHECK_EQ_INT(rows, N_ROWS);
    for (int i = 0; i < N_ROWS; i++) {
        const wisp_type_traits *t = wisp_type_get(gguf_blocks[i].type);
        CHECK_EQ_STR(t->name, gguf_blocks[i].name);
        CHECK_EQ_INT(t->block_size, gguf_blocks[i].block);
        CHECK_EQ_INT(t->type_size, gguf_blocks[i].bytes);
        CHECK(t->is_quantized == gguf_blocks[i].quantized);
        CHECK_EQ_INT(wisp_cpu_row_bytes(gguf_blocks[i].type, 512),
                     512 / gguf_blocks[i].block * gguf_blocks[i].bytes);
    }
}

TEST(block_structs_have_the_format_sizes)
{
    CHECK_EQ_INT(sizeof(wisp_block_q4_0), 18);
    CHECK_EQ_INT(sizeof(wisp_block_q4_1), 20);
    CHECK_EQ_INT(sizeof(wisp_block_q5_0), 22);
    CHECK_EQ_INT(sizeof(wisp_block_q5_1), 24);
    CHECK_EQ_INT(sizeof(wisp_block_q8_0), 34);
    CHECK_EQ_INT(sizeof(wisp_block_q8_1), 36);
    CHECK_EQ_INT(sizeof(wisp_block_q2_K), 84);
    CHECK_EQ_INT(sizeof(wisp_block_q3_K), 110);
    CHECK_EQ_INT(sizeof(wisp_block_q4_K), 144);
    CHECK_EQ_INT(sizeof(wisp_block_q5_K), 176);
    CHECK_EQ_INT(sizeof(wisp_block_q6_K), 210);
    CHECK_EQ_INT(sizeof(wisp_block_q8_K), 292);
}

TEST(types_outside_the_list_have_no_kernels)
{
    for (int t = 0; t < WISP_TYPE_COUNT; t++) {
        bool listed = false;
        for (int i = 0; i < N_ROWS; i++)
            listed |= gguf_blocks[i].type == t;
        if (listed)
            continue;
        CHECK(!wisp_type_get(t)->supported);
        CHECK(wisp_type_get(t)->to_float == NULL);
        CHECK_EQ_INT(wisp_cpu_block_size(t), 0);
        CHECK(wisp_cpu_kernels_at(WISP_SIMD_SCALAR, t) == NULL);
    }
}

/* The scalar level dequantizes with the type table's reference function,
 * the one definition of each format. */
TEST(scalar_level_dequantizes_with_the_table)
{
    for (int i = 0; i < N_ROWS; i++) {
        const wisp_cpu_kernels *k = wisp_cpu_kernels_at(WISP_SIMD_SCALAR, gguf_blocks[i].type);
        REQUIRE(k != NULL);
        CHECK(k->to_float == wisp_type_get(gguf_blocks[i].type)->to_float);
    }
}

/* The Q8_0/Q8_1 activation row layout, by hand for n = 64 (two blocks):
 * blocks padded to Q8_1's 36 bytes = 72, then 2 float scales (80), 2 int32
 * sums (88), then 2 x 32 interleaved quants (152). */
TEST(activation_row_layout)
{
    CHECK_EQ_INT(wisp_cpu_act_scales_offset(64), 72);
    CHECK_EQ_INT(wisp_cpu_act_sums_offset(64), 80);
    CHECK_EQ_INT(wisp_cpu_act_pairs_offset(64), 88);
    CHECK_EQ_INT(wisp_cpu_act_row_bytes(WISP_TYPE_Q8_0, 64), 152);
    CHECK_EQ_INT(wisp_cpu_act_row_bytes(WISP_TYPE_Q8_1, 64), 152);
    CHECK_EQ_INT(wisp_cpu_act_row_bytes(WISP_TYPE_Q8_K, 256), 0);
}
