/*
 * warmup.c - touching the weights and one forward step: see warmup.h.
 */
#include "engine/warmup.h"

#include <stdlib.h>
#include <unistd.h>

/* Reads one byte per page so the kernel maps the whole tensor in. Tensors
 * the engine replaced with copies of its own (repacked weights) are left
 * alone: their pages were handed back and would only fill memory again. */
static uint8_t touch(const uint8_t *p, uint64_t n, uint64_t page)
{
    uint8_t x = 0;
    for (uint64_t off = 0; off < n; off += page)
        x ^= p[off];
    return n ? (uint8_t)(x ^ p[n - 1]) : x;
}

int wisp_engine_warmup(wisp_engine *e, const wisp_model *model, int32_t token, wisp_err *err)
{
    long pg = sysconf(_SC_PAGESIZE);
    const uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
    volatile uint8_t sink = 0; /* keeps the reads */
    for (int64_t i = 0; i < wisp_model_n_tensors(model); i++) {
        const wisp_tensor *t = wisp_model_tensor_at(model, i);
        if (t && t->data &&
            (!e->ops->reads_model_bytes || e->ops->reads_model_bytes(e->ctx, t->data)))
            sink ^= touch(t->data, t->nbytes, page);
    }
    (void)sink;
    const wisp_model_config *c = wisp_model_get_config(model);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (!logits)
        return wisp_err_set(err, WISP_E_NOMEM, "warm-up: out of memory");
    if (token < 0 || token >= c->vocab_size)
        token = 0;
    const int32_t table[1] = {0};
    wisp_batch_seq seq = {.tokens = &token,
                          .n_tokens = 1,
                          .pos0 = 0,
                          .block_table = table,
                          .n_blocks = 1,
                          .logits = logits};
    wisp_batch batch = {.seqs = &seq, .n_seqs = 1};
    int rc = e->ops->forward(e->ctx, &batch, err);
    free(logits);
    return rc;
}
