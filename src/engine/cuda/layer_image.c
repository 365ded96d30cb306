/*
 * layer_image.c - see layer_image.h.
 */
#include "engine/cuda/layer_image.h"

#include <stdlib.h>
#include <string.h>

#include "model/types.h"

static size_t align_up(size_t n)
{
    return (n + WISP_CUDA_IMAGE_ALIGN - 1) / WISP_CUDA_IMAGE_ALIGN * WISP_CUDA_IMAGE_ALIGN;
}

const wisp_tensor *wisp_cuda_piece_tensor(const wisp_layer_weights *L, wisp_cuda_piece_id id)
{
    const wisp_tensor *t[WISP_CUDA_N_PIECES] = {
        [WISP_CUDA_P_WQ] = L->wq,
        [WISP_CUDA_P_WK] = L->wk,
        [WISP_CUDA_P_WV] = L->wv,
        [WISP_CUDA_P_WO] = L->wo,
        [WISP_CUDA_P_GATE] = L->w_gate,
        [WISP_CUDA_P_UP] = L->w_up,
        [WISP_CUDA_P_DOWN] = L->w_down,
        [WISP_CUDA_P_ATTN_NORM] = L->attn_norm,
        [WISP_CUDA_P_FFN_NORM] = L->ffn_norm,
        [WISP_CUDA_P_BQ] = L->bq,
        [WISP_CUDA_P_BK] = L->bk,
        [WISP_CUDA_P_BV] = L->bv,
        [WISP_CUDA_P_Q_NORM] = L->q_norm,
        [WISP_CUDA_P_K_NORM] = L->k_norm,
    };
    return (unsigned)id < WISP_CUDA_N_PIECES ? t[id] : NULL;
}

void wisp_cuda_layer_image_init(const wisp_model_config *c, const wisp_layer_weights *L,
                                wisp_cuda_layer_image *out)
{
    const int64_t E = c->n_embd, F = c->n_ff, hd = c->head_dim;
    const int64_t Q = (int64_t)c->n_head * hd, KV = (int64_t)c->n_head_kv * hd;
    /* Per piece, in layout order: its role and kind, then its shape. */
    static const struct {
        const char *role;
        bool is_vec;
    } names[WISP_CUDA_N_PIECES] = {
        [WISP_CUDA_P_WQ] = {"attn_q", false},         [WISP_CUDA_P_WK] = {"attn_k", false},
        [WISP_CUDA_P_WV] = {"attn_v", false},         [WISP_CUDA_P_WO] = {"attn_output", false},
        [WISP_CUDA_P_GATE] = {"ffn_gate", false},     [WISP_CUDA_P_UP] = {"ffn_up", false},
        [WISP_CUDA_P_DOWN] = {"ffn_down", false},     [WISP_CUDA_P_ATTN_NORM] = {"attn_norm", true},
        [WISP_CUDA_P_FFN_NORM] = {"ffn_norm", true},  [WISP_CUDA_P_BQ] = {"attn_q.bias", true},
        [WISP_CUDA_P_BK] = {"attn_k.bias", true},     [WISP_CUDA_P_BV] = {"attn_v.bias", true},
        [WISP_CUDA_P_Q_NORM] = {"attn_q_norm", true}, [WISP_CUDA_P_K_NORM] = {"attn_k_norm", true},
    };
    const int64_t dims[WISP_CUDA_N_PIECES][2] = {
        [WISP_CUDA_P_WQ] = {E, Q},       [WISP_CUDA_P_WK] = {E, KV},
        [WISP_CUDA_P_WV] = {E, KV},      [WISP_CUDA_P_WO] = {Q, E},
        [WISP_CUDA_P_GATE] = {E, F},     [WISP_CUDA_P_UP] = {E, F},
        [WISP_CUDA_P_DOWN] = {F, E},     [WISP_CUDA_P_ATTN_NORM] = {E, 1},
        [WISP_CUDA_P_FFN_NORM] = {E, 1}, [WISP_CUDA_P_BQ] = {Q, 1},
        [WISP_CUDA_P_BK] = {KV, 1},      [WISP_CUDA_P_BV] = {KV, 1},
        [WISP_CUDA_P_Q_NORM] = {hd, 1},  [WISP_CUDA_P_K_NORM] = {hd, 1},
    };
    memset(out, 0, sizeof *out);
    size_t off = 0;
    for (int i = 0; i < WISP_CUDA_N_PIECES; i++) {
        wisp_cuda_piece *p = &out->p[i];
        const wisp_tensor *t = wisp_cuda_piece_tensor(L, (wisp_cuda_piece_id)i);
        p->role = names[i].role;
        p->is_vec = names[i].is_vec;
        p->present = t != NULL;
        p->n_in = dims[i][0];
        p->n_out = dims[i][1];
        p->type = p->is_vec ? WISP_TYPE_F32 : t ? t->type : WISP_TYPE_F32;
        if (t)
            p->bytes = p->is_vec ? (size_t)p->n_in * sizeof(float)
                                 : wisp_type_row_size(t->type, p->n_in) * (size_t)p->n_out;
        p->offset = off;
        off += align_up(p->bytes);
    }
    out->bytes = off;
}

int wisp_cuda_stream_plan_init(const wisp_model_config *c, const wisp_model_weights *w, int begin,
                               int end, uint64_t budget, wisp_stream_plan *p, wisp_err *err)
{
    memset(p, 0, sizeof *p);
    if (!w || !w->layers || begin < 0 || end <= begin || end > c->n_layers)
        return wisp_err_set(err, WISP_E_INTERNAL, "cuda engine: cannot plan layers [%d, %d)", begin,
                            end);
    uint64_t *bytes = malloc(sizeof *bytes * (size_t)(end - begin));
    if (!bytes)
        return wisp_err_set(err, WISP_E_NOMEM, "cuda engine: out of host memory");
    for (int l = begin; l < end; l++) {
        wisp_cuda_layer_image im;
        wisp_cuda_layer_image_init(c, &w->layers[l], &im);
        bytes[l - begin] = im.bytes;
    }
    int rc = wisp_stream_plan_init(p, bytes, begin, end - begin, budget, WISP_STREAM_KEEP_FIT, err);
    free(bytes);
    return rc;
}
