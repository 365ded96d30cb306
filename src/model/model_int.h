/*
 * model_int.h - private: the model object and the architecture tables,
 * shared by the loaders (model_gguf.c, safetensors.c, hf_config.c), the
 * role binder (model_bind.c), arch.c and model.c.
 *
 * Both formats end in the same place: a flat table of wisp_tensor views
 * named with GGUF's names ("blk.3.attn_q.weight"), ne[0] the row length,
 * and a filled wisp_model_config. The safetensors loader translates
 * Hugging Face names and reverses shapes on the way in, so one binder maps
 * names to roles and checks shapes for both.
 */
#ifndef WISP_MODEL_INT_H
#define WISP_MODEL_INT_H

#include <stddef.h>

#include "model/gguf.h"
#include "model/model.h"

/* ------------------------------------------------------------ architectures */

/* Roles a layer tensor can play; bit i of a descriptor's masks is role i. */
typedef enum wisp_role {
    WISP_ROLE_ATTN_NORM,
    WISP_ROLE_WQ,
    WISP_ROLE_WK,
    WISP_ROLE_WV,
    WISP_ROLE_WO,
    WISP_ROLE_BQ,
    WISP_ROLE_BK,
    WISP_ROLE_BV,
    WISP_ROLE_Q_NORM,
    WISP_ROLE_K_NORM,
    WISP_ROLE_FFN_NORM,
    WISP_ROLE_GATE,
    WISP_ROLE_UP,
    WISP_ROLE_DOWN,
    WISP_ROLE_COUNT
} wisp_role;

#define WISP_ROLE_BIT(r) (1u << (r))

/* One per-layer tensor role: its GGUF suffix ("attn_q.weight" after
 * "blk.N."), its Hugging Face suffix (after "model.layers.N."), where it
 * goes in wisp_layer_weights, and its shape in symbols:
 * E n_embd, Q n_head*head_dim, K n_head_kv*head_dim, F n_ff, D head_dim,
 * '-' no second dimension. */
typedef struct wisp_role_desc {
    const char *gguf;
    const char *hf;
    size_t field;
    char shape[3];
} wisp_role_desc;

extern const wisp_role_desc wisp_layer_roles[WISP_ROLE_COUNT];

/* One descriptor per architecture (the table in arch.c). */
typedef struct wisp_arch_desc {
    wisp_arch arch;
    const char *name;           /* GGUF general.architecture */
    const char *hf_types[4];    /* config.json model_type values, NULL-ended */
    wisp_rope_layout gguf_rope; /* RoPE layout of GGUF files (converter's order) */
    unsigned required;          /* roles every layer must have */
    unsigned optional;          /* roles a layer may have */
} wisp_arch_desc;

const wisp_arch_desc *wisp_arch_by_name(const char *name);
const wisp_arch_desc *wisp_arch_by_hf_type(const char *model_type);
/* "llama, qwen2, qwen3" for error messages. */
const char *wisp_arch_supported_list(void);

/* Translates a Hugging Face tensor name to GGUF's ("model.layers.3.
 * self_attn.q_proj.weight" -> "blk.3.attn_q.weight"). Returns false for
 * names with no GGUF counterpart. */
bool wisp_arch_hf_to_gguf_name(const char *hf, char *out, size_t n);

/* ------------------------------------------------------------ the model */

struct wisp_st_set; /* safetensors shards (safetensors.c) */

struct wisp_model {
    wisp_model_format format;
    char *path;
    char *hf_dir; /* safetensors: the checkpoint directory */
    wisp_model_config cfg;
    const wisp_arch_desc *arch; /* NULL for a vocab-only file of another arch */
    wisp_gguf *gguf;
    struct wisp_st_set *st;
    wisp_tensor *tensors; /* every tensor of the file(s) */
    int64_t n_tensors;
    char *names; /* NUL-terminated names the tensors point to */
    wisp_model_weights weights;
    bool has_weights;
    bool vocab_only;
    uint64_t file_bytes;
    int64_t n_params;
    uint64_t identity;
    wisp_model_open_opts opts;
};

/* Reports progress when the caller asked for it. */
void wisp_model_progress(const wisp_model *m, double fraction, const char *message);

/* model_gguf.c: fills m->cfg, m->tensors from m->gguf. */
int wisp_model_load_gguf(wisp_model *m, wisp_err *err);
/* safetensors.c: opens the checkpoint at path, fills m. */
int wisp_model_load_safetensors(wisp_model *m, const char *path, wisp_err *err);
/* hf_config.c: parses config.json in dir into cfg (arch resolved). */
int wisp_hf_config_read(const char *dir, wisp_model_config *cfg, const wisp_arch_desc **arch,
                        wisp_err *err);

/* model_bind.c: maps m->tensors to roles with shape and type checks, fills
 * m->weights and the derived flags of m->cfg (tied_output, attn_bias,
 * qk_norm) and checks the config against the tensors. */
int wisp_model_bind(wisp_model *m, wisp_err *err);
/* Checks the hyper-parameters for consistency (shared by both formats). */
int wisp_model_check_config(const wisp_model_config *c, wisp_err *err);

/* 64-bit FNV-1a, for identities. */
uint64_t wisp_fnv1a(uint64_t h, const void *data, size_t n);

#endif
