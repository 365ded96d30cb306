/*
 * repack.c - the interleaved-rows layout (repack.h) and the engine's copy
 * of the weights that uses it.
 *
 * Packing is a byte shuffle: no value changes, so the kernels of the
 * layout compute exactly what the file's layout gives. The engine's copy
 * shares everything it does not repack with the model (the mapping stays
 * the one place those bytes live) and repacks a tensor at a time, handing
 * each source range back to the kernel as soon as it is copied.
 */
#include "engine/cpu/repack.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

void wisp_rp_pack(int type, int64_t n_in, int64_t n_out, const void *src, void *dst)
{
    const size_t row = wisp_cpu_row_bytes(type, n_in);
    const int64_t nb = n_in / wisp_cpu_block_size(type), ng = n_out / WISP_RP_ROWS;
    const size_t gb = WISP_RP_ROWS * row;
    for (int64_t g = 0; g < ng; g++)
        pack_group(type, nb, row, (const char *)src + (size_t)g * gb, (char *)dst + (size_t)g * gb);
    memcpy((char *)dst + (size_t)ng * gb, (const char *)src + (size_t)ng * gb,
           (size_t)(n_out - ng * WISP_RP_ROWS) * row);
}

bool wisp_rp_enabled(void)
{
    const char *env = getenv("WISP_REPACK");
    return !(env && strcmp(env, "0") == 0);
}

/* ------------------------------------------------------------ the copy */

/* Tensors per layer that go through the matmul, and their fields. */
#define RP_PER_LAYER 7

struct wisp_rp_weights {
    wisp_model_weights w;       /* what the engine computes with */
    wisp_layer_weights *layers; /* [n_layers], copies of the model's */
    wisp_tensor *tensors;       /* [n_layers * RP_PER_LAYER + 1] repacked headers */
    void **bufs;                /* [same] their data, or NULL */
    int n_slots, n_tensors;
    size_t bytes;
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

/* Repacks *slot into the next slot when its type has the layout and it has
 * a whole group; *slot then points at the copy. keep_source: the source is
 * still read elsewhere (a tied embedding), so its pages stay. */
static int repack_one(wisp_rp_weights *rw, const wisp_tensor **slot, bool keep_source,
                      wisp_err *err)
{
    const wisp_tensor *t = *slot;
    if (!t || !wisp_rp_type_supported(t->type) || t->n_dims < 2 || t->ne[1] < WISP_RP_ROWS ||
        wisp_cpu_row_bytes(t->type, t->ne[0]) == 0)
        return 0;
    const size_t bytes = wisp_cpu_row_bytes(t->type, t->ne[0]) * (size_t)t->ne[1];
    void *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!buf)
        return wisp_err_set(err, WISP_E_NOMEM,
                            "cpu engine: cannot allocate %zu bytes to repack tensor %s", bytes,
                            t->name ? t->name : "?");
    wisp_rp_pack(t->type, t->ne[0], t->ne[1], t->data, buf);
    if (!keep_source)
        hand_back(t->data, bytes);
    const int i = rw->n_tensors++;
    rw->bufs[i] = buf;
    rw->tensors[i] = *t;
    rw->tensors[i].type = t->type | WISP_RP_TYPE_FLAG;
    rw->tensors[i].data = buf;
    rw->tensors[i].nbytes = bytes;
    rw->bytes += bytes;
    *slot = &rw->tensors[i];
    return 0;
}

int wisp_rp_weights_create(const wisp_model_weights *w, int n_layers, int layer_begin,
                           int layer_end, const wisp_tensor **out_head, wisp_rp_weights **out,
                           wisp_err *err)
{
    *out = NULL;
    const double t0 = now_ms();
    wisp_rp_weights *rw = calloc(1, sizeof(*rw));
    const int n_slots = (layer_end - layer_begin) * RP_PER_LAYER + 1;
    if (rw) {
        rw->layers = calloc((size_t)n_layers, sizeof(*rw->layers));
        rw->tensors = calloc((size_t)n_slots, sizeof(*rw->tensors));
        rw->bufs = calloc((size_t)n_slots, sizeof(*rw->bufs));
    }
    if (!rw || !rw->layers || !rw->tensors || !rw->bufs) {
        wisp_rp_weights_free(rw);
        return wisp_err_set(err, WISP_E_NOMEM, "cpu engine: out of memory for repacking");
    }
    rw->n_slots = n_slots;
    rw->w = *w;
    memcpy(rw->layers, w->layers, (size_t)n_layers * sizeof(*rw->layers));
    rw->w.layers = rw->layers;
    int rc = 0;
    for (int l = layer_begin; l < layer_end && !rc; l++) {
        wisp_layer_weights *L = &rw->layers[l];
        const wisp_tensor **slots[RP_PER_LAYER] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                                   &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < RP_PER_LAYER && !rc; i++)
            rc = repack_one(rw, slots[i], false, err);
    }
    if (!rc && out_head)
        rc = repack_one(rw, out_head, *out_head == w->tok_embd, err);
    if (rc || rw->n_tensors == 0) {
        wisp_rp_weights_free(rw);
        return rc;
    }
    rw->ms = now_ms() - t0;
    *out = rw;
    return 0;
}

const wisp_model_weights *wisp_rp_weights_get(const wisp_rp_weights *rw) { return &rw->w; }

void wisp_rp_weights_stats(const wisp_rp_weights *rw, size_t *bytes, int *n_tensors, double *ms)
{
    *bytes = rw ? rw->bytes : 0;
    *n_tensors = rw ? rw->n_tensors : 0;
    *ms = rw ? rw->ms : 0;
}

void wisp_rp_weights_free(wisp_rp_weights *rw)
{
    if (!rw)
        return;
    if (rw->bufs)
        for (int i = 0; i < rw->n_tensors; i++)
            free(rw->bufs[i]);
    free(rw->bufs);
    free(rw->tensors);
    free(rw->layers);
    free(rw);
}
