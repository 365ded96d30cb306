/*
 * fake_engine.h - a deterministic stand-in for the compute engine, for the
 * KV-cache and scheduler tests (header-only; include it once per test).
 *
 * It implements the engine.h vtable over a KV "storage" whose slots hold
 * what a real engine's KV depends on: the token, its position and a hash of
 * the whole history up to it. A new slot's history hash is chained from the
 * previous position's slot, read back THROUGH the sequence's block table, and
 * the logits of a position are a pseudo-random function of that hash. Before
 * producing logits, the engine re-reads the whole history through the block
 * table and checks every slot (position and chained hash). So a wrong block
 * table, a missed copy-on-write, a cached block reused under another prefix,
 * or garbage left by a cancelled step changes the outputs AND is counted in
 * fe->violations with a message, while fake_reference_logits() gives what a
 * contiguous cache would: the oracle the tests compare with.
 *
 * A step writes garbage into its slots first and the real values only after
 * its last "layer"; should_stop is polled between layers, so a stopped step
 * leaves undefined KV exactly as engine.h allows.
 */
#ifndef WISP_FAKE_ENGINE_H
#define WISP_FAKE_ENGINE_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define FAKE_LAYERS 4
#define FAKE_SEED   0x5eed5eed12345678ULL

typedef struct fake_slot {
    int32_t token;
    int32_t pos;
    uint64_t hist;
} fake_slot;

typedef struct fake_engine {
    wisp_engine base; /* base.ctx == this */
    int n_vocab;
    fake_slot *slots; /* n_blocks * block_size */
    uint64_t forwards, copies, reads, writes, tokens_in, max_step_tokens, max_step_seqs;
    uint64_t stopped;    /* steps ended by should_stop */
    uint64_t violations; /* consistency failures seen */
    char first_violation[256];
    long fail_forward_at; /* forward number that fails with WISP_E_DEVICE; -1 never */
} fake_engine;

static inline uint64_t fake_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline uint64_t fake_chain(uint64_t prev, int32_t token, int32_t pos)
{
    return fake_mix(prev ^ fake_mix(((uint64_t)(uint32_t)token << 32) | (uint32_t)pos));
}

static inline void fake_logits_from(uint64_t hist, float *out, int n_vocab)
{
    for (int v = 0; v < n_vocab; v++)
        out[v] = (float)(fake_mix(hist + (uint64_t)v * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f;
}

/* The logits a contiguous cache gives after tokens[0, n). */
static inline void fake_reference_logits(const int32_t *tokens, int n, float *out, int n_vocab)
{
    uint64_t h = FAKE_SEED;
    for (int p = 0; p < n; p++)
        h = fake_chain(h, tokens[p], p);
    fake_logits_from(h, out, n_vocab);
}

static inline int32_t fake_argmax(const float *l, int n)
{
    int best = 0;
    for (int v = 1; v < n; v++)
        if (l[v] > l[best])
            best = v;
    return best;
}

/* Greedy continuation of a prompt, computed without any cache: the oracle. */
static inline int fake_reference_greedy(const int32_t *prompt, int n_prompt, int max_tokens,
                                        int n_vocab, int32_t *out)
{
    int32_t *hist = malloc(sizeof *hist * (size_t)(n_prompt + max_tokens));
    float *l = malloc(sizeof *l * (size_t)n_vocab);
    memcpy(hist, prompt, sizeof *hist * (size_t)n_prompt);
    for (int i = 0; i < max_tokens; i++) {
        fake_reference_logits(hist, n_prompt + i, l, n_vocab);
        out[i] = hist[n_prompt + i] = fake_argmax(l, n_vocab);
    }
    free(hist);
    free(l);
    return max_tokens;
}

static inline void fake_violation(fake_engine *fe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void fake_violation(fake_engine *fe, const char *fmt, ...)
{
    if (fe->violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fe->first_violation, sizeof fe->first_violation, fmt, ap);
        va_end(ap);
    }
}

static inline fake_slot *fake_slot_at(fake_engine *fe, const wisp_batch_seq *s, int pos)
{
    int bs = fe->base.opts.block_size;
    int32_t b = s->block_table[pos / bs];
    return &fe->slots[(size_t)b * bs + pos % bs];
}

/* Re-reads positions [0, n) through the block table, checks them, and
 * returns the history hash they chain to. */
static inline uint64_t fake_read_history(fake_engine *fe, const wisp_batch_seq *s, int n)
{
    uint64_t h = FAKE_SEED;
    for (int p = 0; p < n; p++) {
        const fake_slot *sl = fake_slot_at(fe, s, p);
        if (sl->pos != p)
            fake_violation(fe, "slot of position %d holds position %d (token %d)", p, sl->pos,
                           sl->token);
        h = fake_chain(h, sl->token, p);
        if (sl->hist != h)
            fake_violation(fe, "slot of position %d (token %d) was computed under another history",
                           p, sl->token);
    }
    return h;
}

static int fake_forward(void *ctx, const wisp_batch *batch, wisp_err *err)
{
    fake_engine *fe = ctx;
    const wisp_engine_opts *o = &fe->base.opts;
    int bs = o->block_size;
    fe->forwards++;
    if (fe->fail_forward_at >= 0 && (long)fe->forwards == fe->fail_forward_at)
        return wisp_err_set(err, WISP_E_DEVICE, "fake engine: injected failure at step %ld",
                            fe->fail_forward_at);
    int total = 0;
    for (int i = 0; i < batch->n_seqs; i++) {
        const wisp_batch_seq *s = &batch->seqs[i];
        total += s->n_tokens;
        int need = (s->pos0 + s->n_tokens + bs - 1) / bs;
        if (s->n_tokens <= 0 || s->pos0 < 0 || s->n_blocks != need)
            fake_violation(fe, "seq %d: bad shape (%d tokens, %d blocks)", i, s->n_tokens,
                           s->n_blocks);
        for (int k = 0; k < s->n_blocks; k++)
            if (s->block_table[k] < 0 || s->block_table[k] >= o->n_blocks)
                return wisp_err_set(err, WISP_E_INTERNAL, "fake engine: block id %d out of range",
                                    s->block_table[k]);
    }
    if (batch->n_seqs > o->max_seqs || total > o->max_batch_tokens)
        fake_violation(fe, "batch of %d seqs / %d tokens over the limits (%d)", batch->n_seqs,
                       total, o->max_batch_tokens);
    if ((uint64_t)total > fe->max_step_tokens)
        fe->max_step_tokens = (uint64_t)total;
    if ((uint64_t)batch->n_seqs > fe->max_step_seqs)
        fe->max_step_seqs = (uint64_t)batch->n_seqs;
    /* Two sequences of one step writing one slot means a missed copy. */
    for (int i = 0; i < batch->n_seqs; i++)
        for (int j = 0; j < i; j++)
            for (int a = 0; a < batch->seqs[i].n_tokens; a++)
                for (int b = 0; b < batch->seqs[j].n_tokens; b++)
                    if (fake_slot_at(fe, &batch->seqs[i], batch->seqs[i].pos0 + a) ==
                        fake_slot_at(fe, &batch->seqs[j], batch->seqs[j].pos0 + b))
                        fake_violation(fe, "seqs %d and %d write one slot (pos %d)", i, j,
                                       batch->seqs[i].pos0 + a);
    /* Undefined KV until the last layer is done. */
    for (int i = 0; i < batch->n_seqs; i++)
        for (int a = 0; a < batch->seqs[i].n_tokens; a++)
            *fake_slot_at(fe, &batch->seqs[i], batch->seqs[i].pos0 + a) =
                (fake_slot){.token = -2, .pos = -2, .hist = 0};
    for (int layer = 0; layer < FAKE_LAYERS; layer++) {
        if (batch->should_stop && batch->should_stop(batch->stop_ud)) {
            fe->stopped++;
            return WISP_E_CANCELLED;
        }
    }
    fe->tokens_in += (uint64_t)total;
    for (int i = 0; i < batch->n_seqs; i++) {
        const wisp_batch_seq *s = &batch->seqs[i];
        uint64_t h = fake_read_history(fe, s, s->pos0);
        for (int a = 0; a < s->n_tokens; a++) {
            int p = s->pos0 + a;
            h = fake_chain(h, s->tokens[a], p);
            *fake_slot_at(fe, s, p) = (fake_slot){.token = s->tokens[a], .pos = p, .hist = h};
            if (s->all_logits)
                fake_logits_from(fake_read_history(fe, s, p + 1),
                                 s->logits + (size_t)a * fe->n_vocab, fe->n_vocab);
        }
        if (!s->all_logits)
            fake_logits_from(fake_read_history(fe, s, s->pos0 + s->n_tokens), s->logits,
                             fe->n_vocab);
    }
    return 0;
}

static int fake_copy_block(void *ctx, int32_t dst, int32_t src, wisp_err *err)
{
    fake_engine *fe = ctx;
    int bs = fe->base.opts.block_size, n = fe->base.opts.n_blocks;
    if (dst < 0 || dst >= n || src < 0 || src >= n || dst == src)
        return wisp_err_set(err, WISP_E_INTERNAL, "fake engine: bad copy %d -> %d", src, dst);
    memcpy(&fe->slots[(size_t)dst * bs], &fe->slots[(size_t)src * bs],
           sizeof(fake_slot) * (size_t)bs);
    fe->copies++;
    return 0;
}

static size_t fake_bytes_per_block(void *ctx)
{
    fake_engine *fe = ctx;
    return sizeof(fake_slot) * (size_t)fe->base.opts.block_size;
}

static int fake_read_block(void *ctx, int32_t block, void *dst, wisp_err *err)
{
    fake_engine *fe = ctx;
    if (block < 0 || block >= fe->base.opts.n_blocks)
        return wisp_err_set(err, WISP_E_INTERNAL, "fake engine: read of block %d", block);
    memcpy(dst, &fe->slots[(size_t)block * fe->base.opts.block_size], fake_bytes_per_block(ctx));
    fe->reads++;
    return 0;
}

static int fake_write_block(void *ctx, int32_t block, const void *src, wisp_err *err)
{
    fake_engine *fe = ctx;
    if (block < 0 || block >= fe->base.opts.n_blocks)
        return wisp_err_set(err, WISP_E_INTERNAL, "fake engine: write of block %d", block);
    memcpy(&fe->slots[(size_t)block * fe->base.opts.block_size], src, fake_bytes_per_block(ctx));
    fe->writes++;
    return 0;
}

static void fake_get_stats(void *ctx, wisp_engine_stats *out)
{
    fake_engine *fe = ctx;
    memset(out, 0, sizeof *out);
    out->kv_bytes = fake_bytes_per_block(ctx) * (uint64_t)fe->base.opts.n_blocks;
}

static void fake_destroy(void *ctx)
{
    fake_engine *fe = ctx;
    free(fe->slots);
    free(fe);
}

static const struct wisp_engine_ops fake_engine_ops = {
    .name = "fake",
    .forward = fake_forward,
    .copy_block = fake_copy_block,
    .bytes_per_block = fake_bytes_per_block,
    .read_block = fake_read_block,
    .write_block = fake_write_block,
    .get_stats = fake_get_stats,
    .destroy = fake_destroy,
};

static inline fake_engine *fake_engine_create(int block_size, int n_blocks, int n_vocab,
                                              int max_batch_tokens, int max_seqs)
{
    fake_engine *fe = calloc(1, sizeof *fe);
    fe->base.ops = &fake_engine_ops;
    fe->base.ctx = fe;
    fe->base.opts = (wisp_engine_opts){.n_threads = 1,
                                       .block_size = block_size,
                                       .n_blocks = n_blocks,
                                       .kv_type = WISP_KV_F32,
                                       .max_batch_tokens = max_batch_tokens,
                                       .max_seqs = max_seqs};
    fe->n_vocab = n_vocab;
    fe->fail_forward_at = -1;
    fe->slots = malloc(sizeof *fe->slots * (size_t)n_blocks * (size_t)block_size);
    for (size_t i = 0; i < (size_t)n_blocks * (size_t)block_size; i++)
        fe->slots[i] = (fake_slot){.token = -1, .pos = -1, .hist = 0};
    return fe;
}

static inline void fake_engine_free(fake_engine *fe) { fake_destroy(fe); }

#endif
