/*
 * model.h - a loaded model: its hyper-parameters and its weights in place.
 *
 * wisp_model_open() reads a GGUF file or a Hugging Face directory
 * (safetensors + config.json), fills one config struct from the
 * architecture's descriptor, maps each tensor to its role with shape checks,
 * and keeps the file mapped: weights are read in place in their stored type.
 * The tokenizer is loaded separately (tokenizer/), from the same source.
 */
#ifndef WISP_MODEL_H
#define WISP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/types.h"

typedef enum wisp_arch {
    WISP_ARCH_LLAMA = 0, /* llama, mistral, codellama, deepseek-coder, tinyllama */
    WISP_ARCH_QWEN2 = 1, /* q/k/v biases, NeoX RoPE */
    WISP_ARCH_QWEN3 = 2, /* QK-norm, NeoX RoPE */
    WISP_ARCH_COUNT
} wisp_arch;

/* GGUF llama files hold Q/K rows permuted by llama.cpp's converter for the
 * NORMAL (adjacent pairs) rotation. A Hugging Face checkpoint keeps the
 * original rotate-half order for every architecture, so instead of
 * permuting its rows at load (which would forbid using the weights in
 * place) a safetensors llama model gets rope_layout = WISP_ROPE_NEOX; the
 * two give identical attention. */
typedef enum wisp_rope_layout {
    WISP_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]) - GGUF llama */
    WISP_ROPE_NEOX = 1,   /* rotate halves (x[i], x[i + d/2]) - qwen2/qwen3 */
} wisp_rope_layout;

typedef enum wisp_rope_scaling {
    WISP_ROPE_SCALING_NONE = 0,
    WISP_ROPE_SCALING_LINEAR = 1,
    WISP_ROPE_SCALING_YARN = 2,
} wisp_rope_scaling;

typedef struct wisp_model_config {
    wisp_arch arch;
    char arch_name[32]; /* as in the file: "llama", "qwen2", ... */
    char name[128];     /* general.name, or the file name */
    int n_layers;
    int n_embd; /* model dimension */
    int n_head;
    int n_head_kv;
    int head_dim; /* n_embd / n_head unless the file says otherwise */
    int n_ff;     /* feed-forward hidden size */
    int n_ctx_train;
    int vocab_size;
    float norm_eps; /* RMSNorm epsilon */
    /* RoPE */
    wisp_rope_layout rope_layout;
    float rope_freq_base;
    int rope_dim; /* dimensions rotated (<= head_dim) */
    wisp_rope_scaling rope_scaling;
    float rope_scale_factor; /* linear: positions divided by it; yarn: factor */
    int rope_orig_ctx;       /* yarn: original training context */
    float yarn_beta_fast, yarn_beta_slow, yarn_ext_factor, yarn_attn_factor;
    bool tied_output; /* output head shares token_embd */
    bool attn_bias;   /* q/k/v biases present */
    bool qk_norm;     /* per-head RMSNorm on q and k (qwen3) */
} wisp_model_config;

/* A tensor view: data in place (the mapping), in its stored type.
 * ne[0] is the row length; a matrix has ne[1] rows of ne[0] elements. */
typedef struct wisp_tensor {
    const char *name;
    int type; /* wisp_type */
    int n_dims;
    int64_t ne[4];
    size_t nbytes;
    const void *data;
} wisp_tensor;

typedef struct wisp_layer_weights {
    const wisp_tensor *attn_norm; /* (n_embd) */
    const wisp_tensor *wq;        /* (n_embd -> n_head*head_dim): ne = {n_embd, n_head*head_dim} */
    const wisp_tensor *wk;        /* ne = {n_embd, n_head_kv*head_dim} */
    const wisp_tensor *wv;        /* ne = {n_embd, n_head_kv*head_dim} */
    const wisp_tensor *wo;        /* ne = {n_head*head_dim, n_embd} */
    const wisp_tensor *bq, *bk, *bv;    /* biases or NULL */
    const wisp_tensor *q_norm, *k_norm; /* (head_dim) or NULL (qwen3) */
    const wisp_tensor *ffn_norm;        /* (n_embd) */
    const wisp_tensor *w_gate;          /* ne = {n_embd, n_ff} */
    const wisp_tensor *w_up;            /* ne = {n_embd, n_ff} */
    const wisp_tensor *w_down;          /* ne = {n_ff, n_embd} */
} wisp_layer_weights;

typedef struct wisp_model_weights {
    const wisp_tensor *tok_embd;   /* ne = {n_embd, vocab_size} */
    const wisp_tensor *out_norm;   /* (n_embd) */
    const wisp_tensor *output;     /* ne = {n_embd, vocab_size}; == tok_embd when tied */
    wisp_layer_weights *layers;    /* n_layers */
    const wisp_tensor *rope_freqs; /* (rope_dim/2) llama-3 frequency factors, or NULL */
} wisp_model_weights;

typedef enum wisp_model_format {
    WISP_FORMAT_GGUF = 0,
    WISP_FORMAT_SAFETENSORS = 1,
} wisp_model_format;

typedef struct wisp_model wisp_model;

typedef struct wisp_model_open_opts {
    bool vocab_only; /* accept files without tensors (tokenizer-only) */
    /* Called during long loads; may be NULL. fraction in [0,1]. */
    void (*progress)(void *ud, double fraction, const char *message);
    void *progress_ud;
} wisp_model_open_opts;

/* Opens a GGUF file or a Hugging Face checkpoint (a directory, or a path to
 * a .safetensors file or an index inside one). Returns 0, or a negative
 * wisp_code with err set; the caller frees *out with wisp_model_close. */
int wisp_model_open(const char *path, const wisp_model_open_opts *opts, wisp_model **out,
                    wisp_err *err);
void wisp_model_close(wisp_model *m);

const wisp_model_config *wisp_model_get_config(const wisp_model *m);
/* NULL for a vocab-only model. */
const wisp_model_weights *wisp_model_get_weights(const wisp_model *m);
wisp_model_format wisp_model_get_format(const wisp_model *m);
const char *wisp_model_get_path(const wisp_model *m);
uint64_t wisp_model_file_bytes(const wisp_model *m);
int64_t wisp_model_n_params(const wisp_model *m);
bool wisp_model_is_vocab_only(const wisp_model *m);
/* Tensor counts per type: fills counts[WISP_TYPE_COUNT]. */
void wisp_model_type_counts(const wisp_model *m, int64_t counts[WISP_TYPE_COUNT]);
/* The GGUF reader behind a GGUF model (NULL for safetensors), for the
 * tokenizer loader. */
const struct wisp_gguf *wisp_model_get_gguf(const wisp_model *m);
/* For a Hugging Face checkpoint: the directory holding tokenizer.json and
 * tokenizer_config.json (NULL for GGUF). */
const char *wisp_model_get_hf_dir(const wisp_model *m);
/* Every tensor of the model in file order (GGUF names; a Hugging Face
 * checkpoint's names are translated, e.g. model.layers.0.self_attn.q_proj.
 * weight -> blk.0.attn_q.weight, and its shapes given as ne[0] = row
 * length), for tools and tests. */
int64_t wisp_model_n_tensors(const wisp_model *m);
const wisp_tensor *wisp_model_tensor_at(const wisp_model *m, int64_t i);
const wisp_tensor *wisp_model_find_tensor(const wisp_model *m, const char *name);
/* A stable identity of the model file (size, mtime and a hash of the
 * header), for keying persistent caches. */
uint64_t wisp_model_identity(const wisp_model *m);

#endif
