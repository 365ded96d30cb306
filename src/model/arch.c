/*
 * arch.c - the architecture descriptors and the tensor role table.
 *
 * Adding an architecture of the llama family means adding one row to
 * arch_table (its name, Hugging Face model types, RoPE layout and which
 * roles its layers require or allow); the loaders and the binder read
 * everything from here rather than switching on the architecture.
 *
 * RoPE layout: llama.cpp's llama converter permutes the rows of Q and K so
 * that GGUF llama files rotate adjacent pairs (NORMAL); qwen2/qwen3 files
 * keep Hugging Face's rotate-half order (NEOX). A Hugging Face checkpoint
 * is always rotate-half, so the safetensors loader overrides gguf_rope with
 * NEOX (see model.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

#define LF(f) offsetof(wisp_layer_weights, f)

const wisp_role_desc wisp_layer_roles[WISP_ROLE_COUNT] = {
    [WISP_ROLE_ATTN_NORM] = {"attn_norm.weight", "input_layernorm.weight", LF(attn_norm), "E-"},
    [WISP_ROLE_WQ] = {"attn_q.weight", "self_attn.q_proj.weight", LF(wq), "EQ"},
    [WISP_ROLE_WK] = {"attn_k.weight", "self_attn.k_proj.weight", LF(wk), "EK"},
    [WISP_ROLE_WV] = {"attn_v.weight", "self_attn.v_proj.weight", LF(wv), "EK"},
    [WISP_ROLE_WO] = {"attn_output.weight", "self_attn.o_proj.weight", LF(wo), "QE"},
    [WISP_ROLE_BQ] = {"attn_q.bias", "self_attn.q_proj.bias", LF(bq), "Q-"},
    [WISP_ROLE_BK] = {"attn_k.bias", "self_attn.k_proj.bias", LF(bk), "K-"},
    [WISP_ROLE_BV] = {"attn_v.bias", "self_attn.v_proj.bias", LF(bv), "K-"},
    [WISP_ROLE_Q_NORM] = {"attn_q_norm.weight", "self_attn.q_norm.weight", LF(q_norm), "D-"},
    [WISP_ROLE_K_NORM] = {"attn_k_norm.weight", "self_attn.k_norm.weight", LF(k_norm), "D-"},
    [WISP_ROLE_FFN_NORM] = {"ffn_norm.weight", "post_attention_layernorm.weight", LF(ffn_norm),
                            "E-"},
    [WISP_ROLE_GATE] = {"ffn_gate.weight", "mlp.gate_proj.weight", LF(w_gate), "EF"},
    [WISP_ROLE_UP] = {"ffn_up.weight", "mlp.up_proj.weight", LF(w_up), "EF"},
    [WISP_ROLE_DOWN] = {"ffn_down.weight", "mlp.down_proj.weight", LF(w_down), "FE"},
};

#define B(r) WISP_ROLE_BIT(WISP_ROLE_##r)
#define CORE \
    (B(ATTN_NORM) | B(WQ) | B(WK) | B(WV) | B(WO) | B(FFN_NORM) | B(GATE) | B(UP) | B(DOWN))
#define QKV_BIAS (B(BQ) | B(BK) | B(BV))

static const wisp_arch_desc arch_table[WISP_ARCH_COUNT] = {
    [WISP_ARCH_LLAMA] =
        {
            .arch = WISP_ARCH_LLAMA,
            .name = "llama",
            .hf_types = {"llama", "mistral", NULL},
            .gguf_rope = WISP_ROPE_NORMAL,
            .required = CORE,
            .optional = QKV_BIAS,
        },
    [WISP_ARCH_QWEN2] =
        {
            .arch = WISP_ARCH_QWEN2,
            .name = "qwen2",
            .hf_types = {"qwen2", NULL},
            .gguf_rope = WISP_ROPE_NEOX,
            .required = CORE | QKV_BIAS,
            .optional = 0,
        },
    [WISP_ARCH_QWEN3] =
        {
            .arch = WISP_ARCH_QWEN3,
            .name = "qwen3",
            .hf_types = {"qwen3", NULL},
            .gguf_rope = WISP_ROPE_NEOX,
            .required = CORE | B(Q_NORM) | B(K_NORM),
            .optional = QKV_BIAS,
        },
};

const wisp_arch_desc *wisp_arch_by_name(const char *name)
{
    for (int i = 0; i < WISP_ARCH_COUNT; i++)
        if (strcmp(arch_table[i].name, name) == 0)
            return &arch_table[i];
    return NULL;
}

const wisp_arch_desc *wisp_arch_by_hf_type(const char *model_type)
{
    for (int i = 0; i < WISP_ARCH_COUNT; i++)
        for (int j = 0; arch_table[i].hf_types[j]; j++)
            if (strcmp(arch_table[i].hf_types[j], model_type) == 0)
                return &arch_table[i];
    return NULL;
}

const char *wisp_arch_supported_list(void)
{
    static char list[128];
    if (!list[0]) {
        size_t n = 0;
        for (int i = 0; i < WISP_ARCH_COUNT; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                                  arch_table[i].name);
    }
    return list;
}

/* Global tensors: Hugging Face name -> GGUF name. */
static const char *const global_names[][2] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

bool wisp_arch_hf_to_gguf_name(const char *hf, char *out, size_t n)
{
    for (size_t i = 0; i < sizeof global_names / sizeof global_names[0]; i++)
        if (strcmp(hf, global_names[i][0]) == 0)
            return (size_t)snprintf(out, n, "%s", global_names[i][1]) < n;
    const char *prefix = "model.layers.";
    size_t pl = strlen(prefix);
    if (strncmp(hf, prefix, pl) != 0)
        return false;
    const char *p = hf + pl;
    char *end;
    if (*p < '0' || *p > '9')
        return false;
    unsigned long layer = strtoul(p, &end, 10);
    if (*end != '.' || layer > 100000)
        return false;
    for (int r = 0; r < WISP_ROLE_COUNT; r++)
        if (strcmp(end + 1, wisp_layer_roles[r].hf) == 0)
            return (size_t)snprintf(out, n, "blk.%lu.%s", layer, wisp_layer_roles[r].gguf) < n;
    return false;
}
