/*
 * layer_image.h - the bytes of one layer as the CUDA engine holds them: a
 * "layer image" of its matrices in their stored types and its vectors
 * (norms, biases) converted to F32, each piece at a 256-byte aligned
 * offset, in one fixed order. A resident layer's image sits in the weight
 * arena; a streamed layer's image is laid out the same way in pinned host
 * memory, so streaming it into a device layer buffer is one contiguous
 * copy and binding the layer's pointers is the same arithmetic for both.
 *
 * Also the stream plan (engine/stream_plan.h) of a stage over these
 * images: the budget a CUDA stage is given bounds these bytes.
 *
 * Plain C with no CUDA header, so every build compiles it and the CPU unit
 * tests check what the CUDA engine uploads and streams
 * (tests/unit/test_cuda_stream_plan.c).
 */
#ifndef WISP_CUDA_LAYER_IMAGE_H
#define WISP_CUDA_LAYER_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/stream_plan.h"
#include "model/model.h"

#define WISP_CUDA_IMAGE_ALIGN 256

/* The pieces of an image, in the order they are laid out. */
typedef enum wisp_cuda_piece_id {
    WISP_CUDA_P_WQ,
    WISP_CUDA_P_WK,
    WISP_CUDA_P_WV,
    WISP_CUDA_P_WO,
    WISP_CUDA_P_GATE,
    WISP_CUDA_P_UP,
    WISP_CUDA_P_DOWN,
    WISP_CUDA_P_ATTN_NORM,
    WISP_CUDA_P_FFN_NORM,
    WISP_CUDA_P_BQ,
    WISP_CUDA_P_BK,
    WISP_CUDA_P_BV,
    WISP_CUDA_P_Q_NORM,
    WISP_CUDA_P_K_NORM,
    WISP_CUDA_N_PIECES,
} wisp_cuda_piece_id;

typedef struct wisp_cuda_piece {
    const char *role;    /* "attn_q", "ffn_norm" (GGUF role names) */
    bool is_vec;         /* a vector of n_in floats, held as F32 */
    bool present;        /* the layer has it (biases and QK norms are optional) */
    int type;            /* matrices: the stored type; vectors: WISP_TYPE_F32 */
    int64_t n_in, n_out; /* matrix: n_out rows of n_in; vector: n_in, 1 */
    size_t bytes;        /* its bytes in the image (0 when absent) */
    size_t offset;       /* from the image's start, WISP_CUDA_IMAGE_ALIGN-aligned */
} wisp_cuda_piece;

typedef struct wisp_cuda_layer_image {
    wisp_cuda_piece p[WISP_CUDA_N_PIECES];
    size_t bytes; /* the whole image, a multiple of WISP_CUDA_IMAGE_ALIGN */
} wisp_cuda_layer_image;

/* The image of layer L of a model of config c. Shapes come from c, types
 * and presence from L's tensors (a missing matrix takes no bytes; the
 * engine's checks refuse such a layer before using an image). */
void wisp_cuda_layer_image_init(const wisp_model_config *c, const wisp_layer_weights *L,
                                wisp_cuda_layer_image *out);

/* The tensor of L that piece id is, or NULL. */
const wisp_tensor *wisp_cuda_piece_tensor(const wisp_layer_weights *L, wisp_cuda_piece_id id);

/* Plans a CUDA stage over layers [begin, end) of w under budget bytes of
 * layer images (engine/stream_plan.h, WISP_STREAM_KEEP_FIT: what fits
 * stays resident, the rest streams through two buffers of the largest
 * image). Returns what wisp_stream_plan_init returns; free p with
 * wisp_stream_plan_free either way. */
int wisp_cuda_stream_plan_init(const wisp_model_config *c, const wisp_model_weights *w, int begin,
                               int end, uint64_t budget, wisp_stream_plan *p, wisp_err *err);

#endif
