/*
 * repack.c - the interleaved-rows layout (repack.h) and the engine's copy
 * of the weights that uses it.
 *
 * Packing is a byte shuffle: no value changes, so the kernels of the
 * layout compute exactly what the file's layout gives; the one exception
 * is the BF16 layout, asked for by name, which rounds F16 weights to BF16
 * and computes in BF16's own arithmetic (bf16dot.h). The engine's copy
 * shares everything it does not repack with the model (the mapping stays
 * the one place those bytes live) and repacks a tensor at a time, handing
 * each source range back to the kernel as soon as it is copied.
 */
#include "engine/cpu/repack.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/fp16.h"
#include "engine/cpu/bf16dot.h"
#include "model/quant_blocks.h"

static void pack_group(int type, int64_t nb, size_t row, const char *src, char *dst)
{
    const size_t bb = wisp_cpu_block_bytes(type);
    const int64_t nq = nb / WISP_RP_QUAD, nt = nb % WISP_RP_QUAD;
    const int J = wisp_rp_vecs(type);
    const size_t qb = wisp_rp_quad_bytes(type);
    for (int64_t q = 0; q < nq; q++) {
        char *d = dst + (size_t)q * qb;
        for (int r = 0; r < WISP_RP_ROWS; r++)
            for (int k = 0; k < WISP_RP_QUAD; k++) {
                const char *blk = src + (size_t)r * row + (size_t)(4 * q + k) * bb;
                const int h = r / 4, lane = 4 * (r % 4) + k;
                /* the scale is the first field of both block types */
                memcpy(d + 2 * (16 * h + lane), blk, 2);
                const char *qs = blk + 2;
                for (int j = 0; j < J; j++)
                    memcpy(d + WISP_RP_SCALE_BYTES + (size_t)(2 * j + h) * WISP_RP_VEC_BYTES +
                               4 * lane,
                           qs + 4 * j, 4);
            }
    }
    char *tail = dst + (size_t)nq * qb;
    for (int r = 0; r < WISP_RP_ROWS; r++)
        memcpy(tail + (size_t)(r * nt) * bb, src + (size_t)r * row + (size_t)(nq * 4) * bb,
               (size_t)nt * bb);
}

/* A K-quant group's super-block (repack.h): each byte field of the file's
 * block goes, 4 bytes a row at a time, into vectors (lane = row); each
 * half, into 16 halves. A field's piece k goes to the vector at
 * dst + k * WISP_RP_VEC_BYTES, or where slot(k) says. */
typedef struct rp_k_field {
    uint16_t src, bytes, dst; /* bytes: a multiple of 4, or 2 for a half */
    size_t (*slot)(int k);    /* NULL: consecutive vectors from dst */
} rp_k_field;

typedef struct rp_k_layout {
    int type, n_fields;
    rp_k_field f[5];
} rp_k_layout;

/* Q6_K's ql piece k: half h = k / 16 of the row; pieces 0..7 of a half
 * are the low-nibble part, 8..15 the high; then quarter q, group g. */
static size_t q6_ql_slot(int k)
{
    const int h = k / 16, r = k % 16, gi = r % 8;
    return WISP_RP_K6_SLOT(h, gi / 4, gi % 4, r / 8);
}

static size_t q6_qh_slot(int k)
{
    const int h = k / 8, gi = k % 8;
    return WISP_RP_K6_SLOT(h, gi / 4, gi % 4, 2);
}

#define RP_FIELD(blk, field, at, slot)                              \
    {                                                               \
        offsetof(blk, field), sizeof(((blk *)0)->field), (at), slot \
    }
static const rp_k_layout RP_K_LAYOUTS[] = {
    {WISP_TYPE_Q4_K,
     4,
     {RP_FIELD(wisp_block_q4_K, scales, WISP_RP_K4_SCALES, NULL),
      RP_FIELD(wisp_block_q4_K, qs, WISP_RP_K4_QS, NULL),
      RP_FIELD(wisp_block_q4_K, d, WISP_RP_K4_D, NULL),
      RP_FIELD(wisp_block_q4_K, dmin, WISP_RP_K4_DMIN, NULL)}},
    {WISP_TYPE_Q5_K,
     5,
     {RP_FIELD(wisp_block_q5_K, scales, WISP_RP_K5_SCALES, NULL),
      RP_FIELD(wisp_block_q5_K, qh, WISP_RP_K5_QH, NULL),
      RP_FIELD(wisp_block_q5_K, qs, WISP_RP_K5_QS, NULL),
      RP_FIELD(wisp_block_q5_K, d, WISP_RP_K5_D, NULL),
      RP_FIELD(wisp_block_q5_K, dmin, WISP_RP_K5_DMIN, NULL)}},
    {WISP_TYPE_Q6_K,
     4,
     {RP_FIELD(wisp_block_q6_K, scales, WISP_RP_K6_SCALES, NULL),
      RP_FIELD(wisp_block_q6_K, ql, 0, q6_ql_slot), RP_FIELD(wisp_block_q6_K, qh, 0, q6_qh_slot),
      RP_FIELD(wisp_block_q6_K, d, WISP_RP_K6_D, NULL)}},
};
#undef RP_FIELD

static const rp_k_layout *k_layout(int type)
{
    for (size_t i = 0; i < sizeof(RP_K_LAYOUTS) / sizeof(RP_K_LAYOUTS[0]); i++)
        if (RP_K_LAYOUTS[i].type == type)
            return &RP_K_LAYOUTS[i];
    return NULL;
}

static void pack_group_k(const rp_k_layout *L, int64_t nb, size_t row, const char *src, char *dst)
{
    const size_t bb = wisp_cpu_block_bytes(L->type), sb = wisp_rp_k_sb_bytes(L->type);
    for (int64_t i = 0; i < nb; i++) {
        char *d = dst + (size_t)i * sb;
        for (int r = 0; r < WISP_RP_K_ROWS; r++) {
            const char *blk = src + (size_t)r * row + (size_t)i * bb;
            for (int f = 0; f < L->n_fields; f++) {
                const rp_k_field *F = &L->f[f];
                if (F->bytes == 2) {
                    memcpy(d + F->dst + 2 * r, blk + F->src, 2);
                    continue;
                }
                for (int k = 0; k < F->bytes / 4; k++) {
                    const size_t at = F->slot ? F->slot(k) : F->dst + (size_t)k * WISP_RP_VEC_BYTES;
                    memcpy(d + at + 4 * r, blk + F->src + 4 * k, 4);
                }
            }
        }
    }
}

/* Groups [g0, g1) of a tensor (wisp_rp_pack). */
static void pack_groups(int type, int64_t n_in, const void *src, void *dst, int64_t g0, int64_t g1)
{
    const size_t row = wisp_cpu_row_bytes(type, n_in);
    const int64_t nb = n_in / wisp_cpu_block_size(type);
    const size_t gb = (size_t)wisp_rp_group_rows(type) * row;
    const rp_k_layout *L = k_layout(type);
    for (int64_t g = g0; g < g1; g++) {
        const char *s = (const char *)src + (size_t)g * gb;
        char *d = (char *)dst + (size_t)g * gb;
        if (L)
            pack_group_k(L, nb, row, s, d);
        else
            pack_group(type, nb, row, s, d);
    }
}

/* The rows past the last whole group, copied as they are. */
static void copy_tail(int type, int64_t n_in, int64_t n_out, const void *src, void *dst)
{
    const size_t row = wisp_cpu_row_bytes(type, n_in);
    const int G = wisp_rp_group_rows(type);
    const size_t at = (size_t)(n_out / G * G) * row;
    memcpy((char *)dst + at, (const char *)src + at, (size_t)(n_out % G) * row);
}

void wisp_rp_pack(int type, int64_t n_in, int64_t n_out, const void *src, void *dst)
{
    pack_groups(type, n_in, src, dst, 0, n_out / wisp_rp_group_rows(type));
    copy_tail(type, n_in, n_out, src, dst);
}

typedef struct pack_job {
    int type;
    int64_t n_in, n_out;
    const void *src;
    void *dst;
} pack_job;

/* Thread ith of nth packs its share of the groups; the first also copies
 * the tail. Each thread writes (and so faults in) its own pages. */
static void pack_task(void *ctx, int ith, int nth)
{
    const pack_job *j = ctx;
    const int64_t ng = j->n_out / wisp_rp_group_rows(j->type);
    pack_groups(j->type, j->n_in, j->src, j->dst, ng * ith / nth, ng * (ith + 1) / nth);
    if (ith == 0)
        copy_tail(j->type, j->n_in, j->n_out, j->src, j->dst);
}

void wisp_rp_pack_pool(wisp_threadpool *tp, int type, int64_t n_in, int64_t n_out, const void *src,
                       void *dst)
{
    pack_job j = {type, n_in, n_out, src, dst};
    if (tp && wisp_threadpool_size(tp) > 1)
        wisp_threadpool_run(tp, pack_task, &j);
    else
        pack_task(&j, 0, 1);
}

/* F16 to BF16, rounded to nearest even, for all 65536 halves: a lookup
 * is several times faster than converting through float, and a model's
 * F16 weights are hundreds of millions of them. */
static uint16_t f16_bf16[65536];
static pthread_once_t f16_bf16_once = PTHREAD_ONCE_INIT;

static void f16_bf16_init(void)
{
    for (uint32_t h = 0; h < 65536; h++)
        f16_bf16[h] = wisp_float_to_bf16(wisp_half_to_float((uint16_t)h));
}

/* The conversion table of the source type, NULL for BF16 (a copy). */
static const uint16_t *bf16_table(int src_type)
{
    if (src_type != WISP_TYPE_F16)
        return NULL;
    pthread_once(&f16_bf16_once, f16_bf16_init);
    return f16_bf16;
}

/* Rows [r0, r1) of src (F16 or BF16) as BF16 rows. */
static void bf16_rows(int src_type, int64_t n_in, const void *src, uint16_t *dst, int64_t r0,
                      int64_t r1)
{
    const uint16_t *h = (const uint16_t *)src, *tab = bf16_table(src_type);
    for (int64_t i = r0 * n_in; i < r1 * n_in; i++)
        dst[i] = tab ? tab[h[i]] : h[i];
}

/* Groups [g0, g1) of the BF16 layout, each written front to back. */
static void pack_groups_bf16(int src_type, int64_t n_in, const void *src, void *dst, int64_t g0,
                             int64_t g1)
{
    const uint16_t *h = (const uint16_t *)src, *tab = bf16_table(src_type);
    const int64_t np = n_in / 2;
    for (int64_t g = g0; g < g1; g++) {
        const size_t at = (size_t)g * WISP_RP_K_ROWS * (size_t)n_in;
        const uint16_t *rows = h + at;
        uint16_t *d = (uint16_t *)dst + at;
        for (int64_t p = 0; p < np; p++, d += 2 * WISP_RP_K_ROWS)
            for (int r = 0; r < WISP_RP_K_ROWS; r++) {
                const uint16_t *x = rows + (size_t)r * (size_t)n_in + 2 * p;
                d[2 * r] = tab ? tab[x[0]] : x[0];
                d[2 * r + 1] = tab ? tab[x[1]] : x[1];
            }
    }
}

void wisp_rp_pack_bf16(int src_type, int64_t n_in, int64_t n_out, const void *src, void *dst)
{
    const int64_t ng = n_out / WISP_RP_K_ROWS;
    pack_groups_bf16(src_type, n_in, src, dst, 0, ng);
    bf16_rows(src_type, n_in, src, dst, ng * WISP_RP_K_ROWS, n_out);
}

static void pack_bf16_task(void *ctx, int ith, int nth)
{
    const pack_job *j = ctx;
    const int64_t ng = j->n_out / WISP_RP_K_ROWS;
    pack_groups_bf16(j->type, j->n_in, j->src, j->dst, ng * ith / nth, ng * (ith + 1) / nth);
    if (ith == 0)
        bf16_rows(j->type, j->n_in, j->src, j->dst, ng * WISP_RP_K_ROWS, j->n_out);
}

void wisp_rp_pack_bf16_pool(wisp_threadpool *tp, int src_type, int64_t n_in, int64_t n_out,
                            const void *src, void *dst)
{
    pack_job j = {src_type, n_in, n_out, src, dst};
    if (tp && wisp_threadpool_size(tp) > 1)
        wisp_threadpool_run(tp, pack_bf16_task, &j);
    else
        pack_bf16_task(&j, 0, 1);
}

bool wisp_rp_enabled(void)
{
    const char *env = getenv("WISP_REPACK");
    return !(env && strcmp(env, "0") == 0);
}

/* ------------------------------------------------------------ the copy */

/* The x86-64 huge page; copies this large or larger are aligned to it. */
#define RP_HUGE_PAGE ((size_t)2 << 20)

/* Tensors per layer that go through the matmul, and their fields. */
#define RP_PER_LAYER 7

struct wisp_rp_weights {
    wisp_model_weights w;       /* what the engine computes with */
    wisp_layer_weights *layers; /* [n_layers], copies of the model's */
    wisp_tensor *tensors;       /* [n_layers * RP_PER_LAYER + 1] repacked headers */
    const void **replaced;      /* [n_replaced] model bytes no longer read */
    int n_replaced;
    char *arena; /* every copy, each at a multiple of 64 bytes */
    int n_tensors, n_bf16;
    wisp_rp_what what;
    size_t bytes, used;
    double ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* The whole pages inside [p, p + n): a mapping's clean pages that the
 * kernel may drop (and read again from the file if they are touched). */
static void hand_back(const void *p, size_t n)
{
#ifdef MADV_PAGEOUT
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) / page * page, b = ((uintptr_t)p + n) / page * page;
    if (b > a)
        madvise((void *)a, b - a, MADV_PAGEOUT);
#else
    (void)p;
    (void)n;
#endif
}

/* Whether t (a matrix) goes into the BF16 layout. */
static bool to_bf16(wisp_rp_what what, const wisp_tensor *t)
{
    return what.bf16 && (t->type == WISP_TYPE_F16 || t->type == WISP_TYPE_BF16) &&
           t->ne[0] % 2 == 0 && t->ne[1] >= WISP_RP_K_ROWS && wisp_bf16dot_fast();
}

/* Bytes of t's copy in the arena (a multiple of 64), or 0 when t stays as
 * it is: its type has no repacked layout, or no kernel for it at the
 * active SIMD level, or it has no whole group. */
static size_t copy_bytes(wisp_rp_what what, const wisp_tensor *t)
{
    if (!t || t->n_dims < 2)
        return 0;
    if (to_bf16(what, t))
        return (wisp_cpu_row_bytes(WISP_TYPE_BF16, t->ne[0]) * (size_t)t->ne[1] + 63) / 64 * 64;
    if (!what.quants || !wisp_rp_type_supported(t->type) || !wisp_cpu_rp_get(t->type) ||
        t->ne[1] < wisp_rp_group_rows(t->type))
        return 0;
    return (wisp_cpu_row_bytes(t->type, t->ne[0]) * (size_t)t->ne[1] + 63) / 64 * 64;
}

/* Repacks *slot into the arena when it has a copy there; *slot then points
 * at the copy. keep_source: the source is still read elsewhere (a tied
 * embedding), so its pages stay. */
static void repack_one(wisp_rp_weights *rw, wisp_threadpool *tp, const wisp_tensor **slot,
                       bool keep_source)
{
    const wisp_tensor *t = *slot;
    const size_t room = copy_bytes(rw->what, t);
    if (!room)
        return;
    const bool bf16 = to_bf16(rw->what, t);
    const int type = bf16 ? WISP_TYPE_BF16 : t->type;
    /* the BF16 layout has the size of the F16 or BF16 rows it replaces */
    const size_t bytes = wisp_cpu_row_bytes(type, t->ne[0]) * (size_t)t->ne[1];
    char *buf = rw->arena + rw->used;
    rw->used += room;
    if (bf16)
        wisp_rp_pack_bf16_pool(tp, t->type, t->ne[0], t->ne[1], t->data, buf);
    else
        wisp_rp_pack_pool(tp, t->type, t->ne[0], t->ne[1], t->data, buf);
    rw->n_bf16 += bf16;
    if (!keep_source) {
        hand_back(t->data, bytes);
        rw->replaced[rw->n_replaced++] = t->data;
    }
    wisp_tensor *c = &rw->tensors[rw->n_tensors++];
    *c = *t;
    c->type = type | WISP_RP_TYPE_FLAG;
    c->data = buf;
    c->nbytes = bytes;
    rw->bytes += bytes;
    *slot = c;
}

/* The slots of layer l's matmul weights in a layer table. */
static void layer_slots(wisp_layer_weights *L, const wisp_tensor **slots[RP_PER_LAYER])
{
    slots[0] = &L->wq;
    slots[1] = &L->wk;
    slots[2] = &L->wv;
    slots[3] = &L->wo;
    slots[4] = &L->w_gate;
    slots[5] = &L->w_up;
    slots[6] = &L->w_down;
}

int wisp_rp_weights_create(const wisp_model_weights *w, int n_layers, int layer_begin,
                           int layer_end, const wisp_tensor **out_head, wisp_rp_what what,
                           wisp_threadpool *tp, wisp_rp_weights **out, wisp_err *err)
{
    *out = NULL;
    const double t0 = now_ms();
    size_t total = out_head ? copy_bytes(what, *out_head) : 0;
    for (int l = layer_begin; l < layer_end; l++) {
        const wisp_tensor **slots[RP_PER_LAYER];
        layer_slots(&w->layers[l], slots);
        for (int i = 0; i < RP_PER_LAYER; i++)
            total += copy_bytes(what, *slots[i]);
    }
    if (total == 0)
        return 0;
    /* One arena on huge pages where the kernel gives them on request
     * (transparent huge pages in "madvise" mode): a decode step streams
     * every byte of it, and 4 KiB pages would cost a TLB miss each. Its
     * pages are touched only as each tensor is packed into it. */
    const size_t arena = (total + RP_HUGE_PAGE - 1) / RP_HUGE_PAGE * RP_HUGE_PAGE;
    wisp_rp_weights *rw = calloc(1, sizeof(*rw));
    if (rw) {
        rw->layers = calloc((size_t)n_layers, sizeof(*rw->layers));
        rw->tensors =
            calloc((size_t)(layer_end - layer_begin) * RP_PER_LAYER + 1, sizeof(*rw->tensors));
        rw->replaced =
            calloc((size_t)(layer_end - layer_begin) * RP_PER_LAYER + 1, sizeof(*rw->replaced));
        rw->arena = aligned_alloc(RP_HUGE_PAGE, arena);
    }
    if (!rw || !rw->layers || !rw->tensors || !rw->replaced || !rw->arena) {
        wisp_rp_weights_free(rw);
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cpu engine: cannot allocate %zu bytes to repack the weights", arena);
    }
#ifdef MADV_HUGEPAGE
    madvise(rw->arena, arena, MADV_HUGEPAGE);
#endif
    rw->what = what;
    rw->w = *w;
    memcpy(rw->layers, w->layers, (size_t)n_layers * sizeof(*rw->layers));
    rw->w.layers = rw->layers;
    for (int l = layer_begin; l < layer_end; l++) {
        const wisp_tensor **slots[RP_PER_LAYER];
        layer_slots(&rw->layers[l], slots);
        for (int i = 0; i < RP_PER_LAYER; i++)
            repack_one(rw, tp, slots[i], false);
    }
    if (out_head)
        repack_one(rw, tp, out_head, *out_head == w->tok_embd);
    rw->ms = now_ms() - t0;
    *out = rw;
    return 0;
}

const wisp_model_weights *wisp_rp_weights_get(const wisp_rp_weights *rw) { return &rw->w; }

bool wisp_rp_weights_replaces(const wisp_rp_weights *rw, const void *data)
{
    for (int i = 0; rw && i < rw->n_replaced; i++)
        if (rw->replaced[i] == data)
            return true;
    return false;
}

void wisp_rp_weights_stats(const wisp_rp_weights *rw, size_t *bytes, int *n_tensors, double *ms)
{
    *bytes = rw ? rw->bytes : 0;
    *n_tensors = rw ? rw->n_tensors : 0;
    *ms = rw ? rw->ms : 0;
}

int wisp_rp_weights_bf16_tensors(const wisp_rp_weights *rw) { return rw ? rw->n_bf16 : 0; }

void wisp_rp_weights_free(wisp_rp_weights *rw)
{
    if (!rw)
        return;
    free(rw->arena);
    free(rw->tensors);
    free(rw->replaced);
    free(rw->layers);
    free(rw);
}
