/*
 * kv_test_util.h - helpers shared by the KV-cache tests: running the fake
 * engine over a sequence's uncomputed tokens, and checking a sequence's KV
 * against the contiguous-cache oracle. Header-only, with fake_engine.h.
 */
#ifndef WISP_KV_TEST_UTIL_H
#define WISP_KV_TEST_UTIL_H

#include "fake_engine.h"
#include "kv/kv.h"

/* Runs the engine over tokens [n_computed, n_tokens) of s and commits them;
 * fills last_logits (n_vocab floats) when given. Returns the forward's rc. */
static inline int kvt_compute(fake_engine *fe, wisp_kv *kv, wisp_kv_seq *s, float *last_logits)
{
    int n = s->n_tokens - s->n_computed;
    if (n <= 0)
        return 0;
    float *l = malloc(sizeof *l * (size_t)fe->n_vocab);
    wisp_batch_seq bs = {.tokens = s->tokens + s->n_computed,
                         .n_tokens = n,
                         .pos0 = s->n_computed,
                         .block_table = s->blocks,
                         .n_blocks = s->n_blocks,
                         .logits = l};
    wisp_batch b = {.seqs = &bs, .n_seqs = 1};
    wisp_err err = {0};
    int rc = fe->base.ops->forward(fe, &b, &err);
    if (rc == 0) {
        wisp_kv_seq_commit(kv, s, s->n_tokens);
        if (last_logits)
            memcpy(last_logits, l, sizeof *l * (size_t)fe->n_vocab);
    }
    free(l);
    return rc;
}

/* Whether every computed position of s reads back, through its block
 * table, exactly what a contiguous cache of its tokens would hold. */
static inline bool kvt_seq_matches(const fake_engine *fe, const wisp_kv_seq *s)
{
    int bs = fe->base.opts.block_size;
    uint64_t h = FAKE_SEED;
    for (int p = 0; p < s->n_computed; p++) {
        const fake_slot *sl = &fe->slots[(size_t)s->blocks[p / bs] * bs + p % bs];
        h = fake_chain(h, s->tokens[p], p);
        if (sl->token != s->tokens[p] || sl->pos != p || sl->hist != h)
            return false;
    }
    return true;
}

/* Whether every cached block's KV holds exactly the tokens of its entry, at
 * the positions of one block, and every host-tier entry's bytes too. */
static inline bool kvt_cache_content_ok(const fake_engine *fe, const wisp_kv *kv, char *why,
                                        size_t n_why)
{
    int bs = fe->base.opts.block_size;
    for (int b = 0; b < fe->base.opts.n_blocks; b++) {
        uint64_t key;
        const int32_t *t;
        if (!wisp_kv_block_cached(kv, b, &key, &t))
            continue;
        const fake_slot *sl = &fe->slots[(size_t)b * bs];
        for (int i = 0; i < bs; i++)
            if (sl[i].token != t[i] || sl[i].pos < 0 || sl[i].pos % bs != i ||
                sl[i].pos - i != sl[0].pos) {
                snprintf(why, n_why, "cached block %d slot %d: token %d pos %d, entry token %d", b,
                         i, sl[i].token, sl[i].pos, t[i]);
                return false;
            }
    }
    for (int s = 0; s < wisp_kv_host_slots(kv); s++) {
        uint64_t key;
        const int32_t *t;
        const void *data;
        if (!wisp_kv_host_slot(kv, s, &key, &t, &data))
            continue;
        const fake_slot *sl = data;
        for (int i = 0; i < bs; i++)
            if (sl[i].token != t[i] || sl[i].pos % bs != i) {
                snprintf(why, n_why, "host slot %d entry %d: token %d, entry token %d", s, i,
                         sl[i].token, t[i]);
                return false;
            }
    }
    return true;
}

#endif
