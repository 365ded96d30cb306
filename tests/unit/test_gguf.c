/*
 * test_gguf.c - the GGUF reader against the shared files, against files
 * built byte by byte here (every value type, v2 and v3, nested arrays,
 * alignment), and against a corpus of damaged files: each must give an
 * error naming the problem and never crash (run under ASan in
 * `make SANITIZE=1`).
 *
 * The builder below writes the format from its description, independently
 * of any wisp writer, so a misreading in the reader cannot be cancelled by
 * the same misreading in a writer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "model/gguf.h"
#include "model/types.h"

/* ------------------------------------------------------------ a byte builder */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        REQUIRE(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s)
{
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void key(buf *b, const char *k, uint32_t t)
{
    str(b, k);
    u32(b, t);
}
static void pad(buf *b, size_t a)
{
    while (b->n % a)
        u8(b, 0);
}

/* Offsets of interesting fields in the built file, for targeted damage. */
typedef struct layout {
    size_t n_tensors_at, n_kv_at, first_key_len_at, arr_len_at, str_arr_len_at;
    size_t tinfo_at[2], ndims_at[2], ne0_at[2], type_at[2], off_at[2];
    size_t data_at;
} layout;

/* A small model-like file: every scalar type, a string array, a nested
 * array, and two F32 tensors (4x2 and 8). */
static buf build(uint32_t version, uint32_t align, layout *L)
{
    buf b = {0};
    layout l = {0};
    put(&b, "GGUF", 4);
    u32(&b, version);
    l.n_tensors_at = b.n;
    u64(&b, 2);
    l.n_kv_at = b.n;
    u64(&b, 17);
    l.first_key_len_at = b.n;
    key(&b, "general.architecture", 8);
    str(&b, "llama");
    key(&b, "t.u8", 0);
    u8(&b, 200);
    key(&b, "t.i8", 1);
    u8(&b, (uint8_t)-5);
    key(&b, "t.u16", 2);
    {
        uint16_t v = 60000;
        put(&b, &v, 2);
    }
    key(&b, "t.i16", 3);
    {
        int16_t v = -30000;
        put(&b, &v, 2);
    }
    key(&b, "t.u32", 4);
    u32(&b, 4000000000u);
    key(&b, "t.i32", 5);
    {
        int32_t v = -7;
        put(&b, &v, 4);
    }
    key(&b, "t.f32", 6);
    {
        float v = 1.5f;
        put(&b, &v, 4);
    }
    key(&b, "t.bool", 7);
    u8(&b, 1);
    key(&b, "t.u64", 10);
    u64(&b, 1ull << 40);
    key(&b, "t.i64", 11);
    u64(&b, (uint64_t)-3);
    key(&b, "t.f64", 12);
    {
        double v = 2.25;
        put(&b, &v, 8);
    }
    key(&b, "t.arr_i32", 9);
    u32(&b, 5);
    l.arr_len_at = b.n;
    u64(&b, 3);
    for (int32_t i = 10; i < 13; i++)
        put(&b, &i, 4);
    key(&b, "t.arr_str", 9);
    u32(&b, 8);
    l.str_arr_len_at = b.n;
    u64(&b, 3);
    str(&b, "a");
    str(&b, "");
    str(&b, "hello");
    key(&b, "t.nested", 9);
    u32(&b, 9);
    u64(&b, 2);
    u32(&b, 4);
    u64(&b, 2);
    u32(&b, 1);
    u32(&b, 2);
    u32(&b, 8);
    u64(&b, 1);
    str(&b, "x");
    key(&b, "t.arr_f32", 9);
    u32(&b, 6);
    u64(&b, 2);
    {
        float f[2] = {0.5f, -1};
        put(&b, f, 8);
    }
    key(&b, "general.alignment", 4);
    u32(&b, align);
    const char *names[2] = {"w.weight", "b.weight"};
    int64_t ne[2][2] = {{4, 2}, {8, 1}};
    int nd[2] = {2, 1};
    uint64_t off[2] = {0, 0};
    off[1] = (32 + align - 1) / align * align;
    for (int t = 0; t < 2; t++) {
        l.tinfo_at[t] = b.n;
        str(&b, names[t]);
        l.ndims_at[t] = b.n;
        u32(&b, (uint32_t)nd[t]);
        l.ne0_at[t] = b.n;
        for (int d = 0; d < nd[t]; d++)
            u64(&b, (uint64_t)ne[t][d]);
        l.type_at[t] = b.n;
        u32(&b, 0);
        l.off_at[t] = b.n;
        u64(&b, off[t]);
    }
    pad(&b, align);
    l.data_at = b.n;
    for (int i = 0; i < 8; i++) {
        float f = (float)i;
        put(&b, &f, 4);
    }
    pad(&b, align);
    for (int i = 0; i < 8; i++) {
        float f = 100.0f + i;
        put(&b, &f, 4);
    }
    if (L)
        *L = l;
    return b;
}

/* Opens a private heap copy of exactly n bytes, so ASan sees any overread;
 * the caller frees *copy after closing the reader. */
static int open_buf(const buf *b, wisp_gguf **g, wisp_err *err, void **copy)
{
    *copy = malloc(b->n ? b->n : 1);
    REQUIRE(*copy);
    memcpy(*copy, b->p, b->n);
    return wisp_gguf_open_memory(*copy, b->n, g, err);
}

/* ------------------------------------------------------------ good files */

static void check_built(uint32_t version, uint32_t align)
{
    layout L;
    buf b = build(version, align, &L);
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    void *copy;
    int rc = open_buf(&b, &g, &err, &copy);
    if (rc)
        fprintf(stderr, "  %s\n", err.msg);
    REQUIRE(rc == 0);
    CHECK_EQ_INT(wisp_gguf_version(g), version);
    CHECK_EQ_INT(wisp_gguf_alignment(g), align);
    CHECK_EQ_INT(wisp_gguf_n_kv(g), 17);
    uint32_t u;
    int64_t i;
    float f;
    bool bl;
    wisp_str s;
    CHECK(wisp_gguf_get_u32(g, "t.u8", &u) && u == 200);
    CHECK(!wisp_gguf_get_u32(g, "t.i8", &u)); /* negative */
    CHECK(wisp_gguf_get_i64(g, "t.i8", &i) && i == -5);
    CHECK(wisp_gguf_get_u32(g, "t.u16", &u) && u == 60000);
    CHECK(wisp_gguf_get_i64(g, "t.i16", &i) && i == -30000);
    CHECK(wisp_gguf_get_u32(g, "t.u32", &u) && u == 4000000000u);
    CHECK(wisp_gguf_get_i64(g, "t.i32", &i) && i == -7);
    CHECK(!wisp_gguf_get_u32(g, "t.u64", &u)); /* out of range */
    CHECK(wisp_gguf_get_i64(g, "t.u64", &i) && i == (1ll << 40));
    CHECK(wisp_gguf_get_i64(g, "t.i64", &i) && i == -3);
    CHECK(wisp_gguf_get_f32(g, "t.f32", &f) && f == 1.5f);
    CHECK(wisp_gguf_get_f32(g, "t.f64", &f) && f == 2.25f);
    CHECK(!wisp_gguf_get_f32(g, "t.u32", &f));
    CHECK(wisp_gguf_get_bool(g, "t.bool", &bl) && bl);
    CHECK(wisp_gguf_get_str(g, "general.architecture", &s) && wisp_str_eq(s, "llama"));
    CHECK(!wisp_gguf_get_str(g, "t.u8", &s));
    CHECK(!wisp_gguf_get_u32(g, "missing", &u));
    wisp_gguf_vtype et;
    uint64_t n;
    CHECK(wisp_gguf_get_arr(g, "t.arr_i32", &et, &n) && et == WISP_GGUF_INT32 && n == 3);
    CHECK_EQ_INT(wisp_gguf_arr_int(g, "t.arr_i32", 2), 12);
    CHECK_EQ_INT(wisp_gguf_arr_int(g, "t.arr_i32", 3), 0);
    CHECK(wisp_gguf_get_arr(g, "t.arr_str", &et, &n) && et == WISP_GGUF_STRING && n == 3);
    CHECK(wisp_str_eq(wisp_gguf_arr_str(g, "t.arr_str", 0), "a"));
    CHECK(wisp_str_eq(wisp_gguf_arr_str(g, "t.arr_str", 1), ""));
    CHECK(wisp_str_eq(wisp_gguf_arr_str(g, "t.arr_str", 2), "hello"));
    CHECK(wisp_gguf_arr_str(g, "t.arr_str", 3).ptr == NULL);
    CHECK(wisp_gguf_get_arr(g, "t.nested", &et, &n) && et == WISP_GGUF_ARRAY && n == 2);
    CHECK_NEAR(wisp_gguf_arr_float(g, "t.arr_f32", 1), -1.0, 0);
    CHECK(wisp_gguf_arr_data(g, "t.arr_f32") != NULL);
    CHECK(wisp_gguf_arr_data(g, "t.arr_str") == NULL);
    REQUIRE(wisp_gguf_n_tensors(g) == 2);
    const wisp_gguf_tensor *w = wisp_gguf_find_tensor(g, "w.weight");
    const wisp_gguf_tensor *bb = wisp_gguf_find_tensor(g, "b.weight");
    REQUIRE(w && bb);
    CHECK_EQ_INT(w->n_dims, 2);
    CHECK_EQ_INT(w->ne[0], 4);
    CHECK_EQ_INT(w->ne[1], 2);
    CHECK_EQ_INT(w->nbytes, 32);
    CHECK_EQ_INT(w->offset, L.data_at);
    CHECK_EQ_INT(wisp_gguf_data_offset(g), L.data_at);
    CHECK_EQ_INT(w->offset % align, 0);
    const float *wd = w->data, *bd = bb->data;
    CHECK(wd[7] == 7.0f);
    CHECK(bd[0] == 100.0f && bd[7] == 107.0f);
    CHECK(wisp_gguf_find_tensor(g, "nope") == NULL);
    wisp_gguf_close(g);
    free(copy);
    free(b.p);
}

TEST(built_file_v3) { check_built(3, 32); }
TEST(built_file_v2) { check_built(2, 32); }
TEST(built_file_alignment_64) { check_built(3, 64); }
TEST(built_file_alignment_8) { check_built(3, 8); }

/* Every shared file opens; vocab files have no tensors. */
static int open_dir(const char *sub, int expect_tensors)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", wisp_test_shared_dir(), sub);
    DIR *d = opendir(dir);
    if (!d)
        SKIP("fixture folder %s is missing", dir);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        wisp_gguf *g = NULL;
        wisp_err err = {0};
        int rc = wisp_gguf_open(path, &g, &err);
        if (rc)
            fprintf(stderr, "  %s: %s\n", path, err.msg);
        CHECK_EQ_INT(rc, 0);
        if (rc == 0) {
            wisp_str arch;
            CHECK(wisp_gguf_get_str(g, "general.architecture", &arch));
            wisp_gguf_vtype et;
            uint64_t n;
            CHECK(wisp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) && n > 0);
            if (expect_tensors)
                CHECK(wisp_gguf_n_tensors(g) > 0);
            else
                CHECK_EQ_INT(wisp_gguf_n_tensors(g), 0);
            /* every tensor's data lies inside the file */
            for (int64_t i = 0; i < wisp_gguf_n_tensors(g); i++) {
                const wisp_gguf_tensor *t = wisp_gguf_tensor_at(g, i);
                CHECK(t->offset + t->nbytes <= wisp_gguf_file_size(g));
                CHECK(t->nbytes == wisp_type_row_size(t->type, t->ne[0]) *
                                       (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]));
            }
            wisp_gguf_close(g);
        }
        count++;
    }
    closedir(d);
    return count;
}

TEST(shared_vocab_files_open) { CHECK(open_dir("vocab", 0) >= 10); }
TEST(shared_golden_files_open) { CHECK_EQ_INT(open_dir("golden", 1), 6); }
TEST(shared_model_files_open) { CHECK_EQ_INT(open_dir("models", 1), 2); }

TEST(vocab_only_file_ending_before_aligned_offset)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "vocab/ggml-vocab-llama-spm.gguf");
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_gguf_open(path, &g, &err) == 0);
    /* The shared vocab files stop right after the metadata. */
    CHECK(wisp_gguf_data_offset(g) >= wisp_gguf_file_size(g));
    wisp_gguf_vtype et;
    uint64_t n;
    CHECK(wisp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) && n == 32000);
    CHECK(wisp_str_eq(wisp_gguf_arr_str(g, "tokenizer.ggml.tokens", 1), "<s>"));
    wisp_gguf_close(g);
}

TEST(golden_shapes)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "golden/syn-llama-spm-q4_k_m.gguf");
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_gguf_open(path, &g, &err) == 0);
    const wisp_gguf_tensor *q = wisp_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const wisp_gguf_tensor *e = wisp_gguf_find_tensor(g, "token_embd.weight");
    REQUIRE(q && e);
    CHECK_EQ_INT(q->ne[0], 256);
    CHECK_EQ_INT(q->ne[1], 256);
    CHECK_EQ_INT(e->ne[1], 32000);
    CHECK(q->type == WISP_TYPE_Q4_K || q->type == WISP_TYPE_Q6_K);
    wisp_gguf_close(g);
}

/* ------------------------------------------------------------ damage */

static void expect_error(const buf *b, const char *needle)
{
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    void *copy;
    int rc = open_buf(b, &g, &err, &copy);
    CHECK(rc < 0);
    if (rc == 0) {
        fprintf(stderr, "  expected an error containing '%s'\n", needle);
        wisp_gguf_close(g);
        free(copy);
        return;
    }
    free(copy);
    CHECK(g == NULL);
    if (needle && !strstr(err.msg, needle)) {
        fprintf(stderr, "  error '%s' lacks '%s'\n", err.msg, needle);
        CHECK(0);
    }
}

static void patch32(buf *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void patch64(buf *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

TEST(truncated_everywhere_fails)
{
    layout L;
    buf b = build(3, 32, &L);
    size_t full = b.n;
    for (size_t cut = 0; cut < full; cut++) {
        b.n = cut;
        expect_error(&b, NULL);
    }
    b.n = full;
    free(b.p);
}

TEST(truncated_data_names_tensor)
{
    buf b = build(3, 32, NULL);
    b.n -= 4;
    expect_error(&b, "tensor b.weight: data ends at byte");
    free(b.p);
}

TEST(bad_magic_and_version)
{
    buf b = build(3, 32, NULL);
    b.p[0] = 'X';
    expect_error(&b, "bad magic");
    b.p[0] = 'G';
    patch32(&b, 4, 1);
    expect_error(&b, "version 1");
    patch32(&b, 4, 4);
    expect_error(&b, "version 4");
    patch32(&b, 4, 0x03000000);
    expect_error(&b, "big-endian");
    free(b.p);
}

TEST(corrupted_counts)
{
    layout L;
    buf b = build(3, 32, &L);
    patch64(&b, L.n_kv_at, UINT64_MAX);
    expect_error(&b, "metadata count");
    patch64(&b, L.n_kv_at, 17);
    patch64(&b, L.n_tensors_at, 1ull << 40);
    expect_error(&b, "tensor count");
    patch64(&b, L.n_tensors_at, 3);
    expect_error(&b, NULL); /* third tensor info runs into the data */
    patch64(&b, L.n_tensors_at, 2);
    patch64(&b, L.n_kv_at, 18);
    expect_error(&b, NULL);
    free(b.p);
}

TEST(corrupted_strings_and_arrays)
{
    layout L;
    buf b = build(3, 32, &L);
    patch64(&b, L.first_key_len_at, 1ull << 62);
    expect_error(&b, "string length");
    patch64(&b, L.first_key_len_at, 0);
    expect_error(&b, NULL);
    patch64(&b, L.first_key_len_at, strlen("general.architecture"));
    patch64(&b, L.arr_len_at, 1ull << 61);
    expect_error(&b, "t.arr_i32");
    patch64(&b, L.arr_len_at, 3);
    patch64(&b, L.str_arr_len_at, 1ull << 59);
    expect_error(&b, "t.arr_str");
    free(b.p);
}

TEST(corrupted_tensor_infos)
{
    layout L;
    buf b = build(3, 32, &L);
    patch32(&b, L.ndims_at[0], 5);
    expect_error(&b, "dimensions");
    patch32(&b, L.ndims_at[0], 2);
    patch64(&b, L.ne0_at[0], 0);
    expect_error(&b, "dimension 0 is 0");
    patch64(&b, L.ne0_at[0], 1ull << 62);
    patch64(&b, L.ne0_at[0] + 8, 1ull << 62);
    expect_error(&b, "overflows");
    patch64(&b, L.ne0_at[0], 1ull << 40);
    patch64(&b, L.ne0_at[0] + 8, 2);
    expect_error(&b, "w.weight: data ends at byte");
    patch64(&b, L.ne0_at[0], 4);
    patch32(&b, L.type_at[0], 99);
    expect_error(&b, "unknown type id 99");
    patch32(&b, L.type_at[0], 31);
    expect_error(&b, "Q4_0_4_4");
    patch32(&b, L.type_at[0], WISP_TYPE_Q4_0); /* row of 4 is not a block of 32 */
    expect_error(&b, "block size");
    patch32(&b, L.type_at[0], 0);
    patch64(&b, L.off_at[1], 8);
    expect_error(&b, "alignment");
    patch64(&b, L.off_at[1], 0);
    expect_error(&b, "overlaps");
    patch64(&b, L.off_at[1], 1ull << 60);
    expect_error(&b, "b.weight: data ends at byte");
    patch64(&b, L.off_at[1], UINT64_MAX - 31);
    expect_error(&b, "b.weight");
    free(b.p);
}

TEST(duplicate_names_and_bad_alignment)
{
    layout L;
    buf b = build(3, 32, &L);
    /* rename b.weight -> w.weight */
    buf c = build(3, 32, &L);
    c.p[L.tinfo_at[1] + 8] = 'w';
    expect_error(&c, "w.weight appears twice");
    free(c.p);
    buf d = build(3, 24, &L); /* not a power of two */
    expect_error(&d, "power of two");
    free(d.p);
    buf e = build(3, 32, &L);
    /* "t.u8" -> "t.i8": a duplicate key */
    size_t at = L.first_key_len_at;
    for (size_t i = at; i + 4 < e.n; i++)
        if (memcmp(e.p + i, "t.u8", 4) == 0) {
            e.p[i + 2] = 'i';
            break;
        }
    expect_error(&e, "appears twice");
    free(e.p);
    free(b.p);
}

TEST(unknown_value_types)
{
    layout L;
    buf b = build(3, 32, &L);
    /* the type of the first key sits right after its name */
    size_t at = L.first_key_len_at + 8 + strlen("general.architecture");
    patch32(&b, at, 13);
    expect_error(&b, "unknown value type 13");
    patch32(&b, at, 9); /* array: then element type = 5 ("llama" length low bytes) */
    expect_error(&b, NULL);
    free(b.p);
}

/* Random byte damage of the header: any result but a crash is fine, and a
 * success must still describe tensors inside the buffer. */
TEST(random_damage_never_crashes)
{
    layout L;
    buf b = build(3, 32, &L);
    uint64_t s = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        buf c = {malloc(b.n), b.n, b.n};
        memcpy(c.p, b.p, b.n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((s >> 33) % L.data_at);
            c.p[at] = (uint8_t)(s >> 13);
        }
        wisp_gguf *g = NULL;
        wisp_err err = {0};
        if (wisp_gguf_open_memory(c.p, c.n, &g, &err) == 0) {
            for (int64_t i = 0; i < wisp_gguf_n_tensors(g); i++) {
                const wisp_gguf_tensor *t = wisp_gguf_tensor_at(g, i);
                CHECK(t->offset + t->nbytes <= c.n);
            }
            wisp_gguf_close(g);
        } else {
            CHECK(err.msg[0] != '\0');
        }
        free(c.p);
    }
    free(b.p);
}

TEST(vocab_truncations_fail_cleanly)
{
    char path[1024];
    wisp_test_shared_path(path, sizeof path, "vocab/ggml-vocab-gpt-2.gguf");
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    size_t n = (size_t)st.st_size;
    uint8_t *all = malloc(n);
    REQUIRE(fread(all, 1, n, f) == n);
    fclose(f);
    /* 400 cuts spread over the file, plus the first 64 bytes one by one. */
    for (int k = 0; k < 464; k++) {
        size_t cut = k < 64 ? (size_t)k : (size_t)(k - 64) * (n / 400);
        if (cut >= n)
            continue;
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, all, cut);
        wisp_gguf *g = NULL;
        wisp_err err = {0};
        int rc = wisp_gguf_open_memory(c, cut, &g, &err);
        CHECK(rc < 0);
        if (rc == 0)
            wisp_gguf_close(g);
        free(c);
    }
    free(all);
}
