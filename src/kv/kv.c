/*
 * kv.c - the block pool and per-sequence block tables (kv.h).
 *
 * Allocation is a stack of free block ids; when it is empty the oldest
 * unreferenced cached block is reclaimed. Sequences only ever write into a
 * block they alone own and that is not in the prefix cache, which is what
 * makes sharing safe: every other case goes through copy-on-write first.
 * The prefix cache itself lives in prefix.c, files in persist.c.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/panic.h"
#include "kv/hash.h"
#include "kv/kv_int.h"

static int min_i(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------------ lifetime */

static int make_cache_path(wisp_kv *kv, const char *dir, wisp_err *err)
{
    if (mkdir(dir, 0755) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return wisp_err_set(err, WISP_E_IO, "kv cache dir %s: cannot create it", dir);
    }
    size_t n = strlen(dir) + 64;
    kv->cache_path = malloc(n);
    if (!kv->cache_path)
        return wisp_err_set(err, WISP_E_NOMEM, "kv cache dir: no memory");
    snprintf(kv->cache_path, n, "%s/wisp-kv-%016llx-b%d.cache", dir,
             (unsigned long long)kv->model_identity, kv->block_size);
    return 0;
}

int wisp_kv_create(wisp_engine *engine, const wisp_kv_opts *opts, wisp_kv **out, wisp_err *err)
{
    *out = NULL;
    int bs = engine->opts.block_size, nb = engine->opts.n_blocks;
    if (bs <= 0 || bs > 4096 || nb <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL, "kv: bad engine pool (%d blocks of %d tokens)",
                            nb, bs);
    wisp_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return wisp_err_set(err, WISP_E_NOMEM, "kv: no memory");
    kv->engine = engine;
    kv->block_size = bs;
    kv->n_blocks = nb;
    kv->model_identity = opts->model_identity;
    kv->root_key = wisp_kv_root_key(opts->model_identity, bs);
    kv->prefix_cache = opts->prefix_cache;
    kv->n_vocab = opts->n_vocab;
    kv->bytes_per_block =
        engine->ops->bytes_per_block ? engine->ops->bytes_per_block(engine->ctx) : 0;
    bool block_io = kv->bytes_per_block > 0 && engine->ops->read_block && engine->ops->write_block;

    size_t n = (size_t)nb;
    kv->refs = calloc(n, sizeof *kv->refs);
    kv->fill = calloc(n, sizeof *kv->fill);
    kv->free_stack = malloc(n * sizeof *kv->free_stack);
    kv->parent = calloc(n, sizeof *kv->parent);
    kv->btokens = calloc(n * (size_t)bs, sizeof *kv->btokens);
    kv->io_buf = block_io ? malloc(kv->bytes_per_block) : NULL;
    int rc = 0;
    if (!kv->refs || !kv->fill || !kv->free_stack || !kv->parent || !kv->btokens ||
        (block_io && !kv->io_buf))
        rc = wisp_err_set(err, WISP_E_NOMEM, "kv: no memory for a pool of %d blocks", nb);
    if (!rc)
        rc = wisp_kv_keymap_init(&kv->map, nb, err);
    if (!rc)
        rc = wisp_kv_lru_init(&kv->lru, nb, err);
    if (!rc)
        rc = wisp_kv_host_init(&kv->host, block_io && kv->prefix_cache ? opts->host_bytes : 0,
                               kv->bytes_per_block ? kv->bytes_per_block : 1, bs, err);
    if (!rc && block_io && kv->prefix_cache && opts->cache_dir && opts->cache_dir[0])
        rc = make_cache_path(kv, opts->cache_dir, err);
    if (rc) {
        wisp_kv_destroy(kv);
        return rc;
    }
    /* Lowest ids first out of the stack: keeps a small working set dense. */
    for (int i = 0; i < nb; i++)
        kv->free_stack[i] = nb - 1 - i;
    kv->n_free = nb;
    if (kv->cache_path)
        wisp_kv_int_load(kv);
    *out = kv;
    return 0;
}

void wisp_kv_destroy(wisp_kv *kv)
{
    if (!kv)
        return;
    if (kv->cache_path && kv->map.present) {
        wisp_err err = {0};
        if (wisp_kv_save(kv, &err) != 0)
            WISP_LOGW("kv: cache not saved: %s", err.msg);
    }
    free(kv->cache_path);
    free(kv->refs);
    free(kv->fill);
    free(kv->free_stack);
    free(kv->parent);
    free(kv->btokens);
    free(kv->io_buf);
    wisp_kv_keymap_free(&kv->map);
    wisp_kv_lru_free(&kv->lru);
    wisp_kv_host_free(&kv->host);
    free(kv);
}

int wisp_kv_save(wisp_kv *kv, wisp_err *err)
{
    return kv->cache_path ? wisp_kv_int_save(kv, err) : 0;
}

int wisp_kv_block_size(const wisp_kv *kv) { return kv->block_size; }
int wisp_kv_n_blocks(const wisp_kv *kv) { return kv->n_blocks; }
int wisp_kv_available_blocks(const wisp_kv *kv) { return kv->n_free + kv->lru.count; }
int wisp_kv_blocks_for(const wisp_kv *kv, int n_tokens)
{
    return (int)(((int64_t)n_tokens + kv->block_size - 1) / kv->block_size);
}

/* ------------------------------------------------------------ blocks */

int32_t wisp_kv_int_alloc(wisp_kv *kv)
{
    int32_t b;
    if (kv->n_free > 0) {
        b = kv->free_stack[--kv->n_free];
    } else {
        b = wisp_kv_lru_oldest(&kv->lru);
        if (b < 0)
            return -1;
        wisp_kv_int_evict(kv, b);
    }
    WISP_ASSERT(kv->refs[b] == 0 && !wisp_kv_int_registered(kv, b));
    kv->refs[b] = 1;
    kv->fill[b] = 0;
    return b;
}

void wisp_kv_int_unref(wisp_kv *kv, int32_t b)
{
    WISP_ASSERT(b >= 0 && b < kv->n_blocks && kv->refs[b] > 0);
    if (--kv->refs[b] > 0)
        return;
    if (wisp_kv_int_registered(kv, b)) {
        wisp_kv_lru_push(&kv->lru, b);
    } else {
        kv->fill[b] = 0;
        kv->free_stack[kv->n_free++] = b;
    }
}

/* ------------------------------------------------------------ sequences */

void wisp_kv_seq_init(wisp_kv_seq *s) { *s = (wisp_kv_seq){0}; }

void wisp_kv_seq_free(wisp_kv *kv, wisp_kv_seq *s)
{
    wisp_kv_seq_release(kv, s);
    free(s->blocks);
    free(s->tokens);
    free(s->keys);
    *s = (wisp_kv_seq){0};
}

void wisp_kv_seq_release(wisp_kv *kv, wisp_kv_seq *s) { wisp_kv_seq_truncate(kv, s, 0); }

/* Grows the arrays to hold n_tokens tokens (and their blocks). */
static int seq_reserve_arrays(wisp_kv *kv, wisp_kv_seq *s, int n_tokens, wisp_err *err)
{
    if (n_tokens > s->cap_tokens) {
        int cap = s->cap_tokens ? s->cap_tokens : 64;
        while (cap < n_tokens)
            cap = cap > INT_MAX / 2 ? n_tokens : cap * 2;
        int32_t *t = realloc(s->tokens, (size_t)cap * sizeof *t);
        if (!t)
            return wisp_err_set(err, WISP_E_NOMEM, "kv: no memory for %d tokens", cap);
        s->tokens = t;
        s->cap_tokens = cap;
    }
    int nb = wisp_kv_blocks_for(kv, n_tokens);
    if (nb > s->cap_blocks) {
        int cap = s->cap_blocks ? s->cap_blocks : 8;
        while (cap < nb)
            cap *= 2;
        int32_t *b = realloc(s->blocks, (size_t)cap * sizeof *b);
        if (!b)
            return wisp_err_set(err, WISP_E_NOMEM, "kv: no memory for %d blocks", cap);
        s->blocks = b;
        uint64_t *k = realloc(s->keys, (size_t)cap * sizeof *k);
        if (!k)
            return wisp_err_set(err, WISP_E_NOMEM, "kv: no memory for %d keys", cap);
        s->keys = k;
        s->cap_blocks = cap;
    }
    return 0;
}

int wisp_kv_int_seq_grow(wisp_kv *kv, wisp_kv_seq *s, int n_tokens, wisp_err *err)
{
    return seq_reserve_arrays(kv, s, n_tokens, err);
}

/* Whether the sequence ends inside its last block and may not write there. */
static bool last_block_needs_copy(const wisp_kv *kv, const wisp_kv_seq *s)
{
    if (s->n_blocks == 0 || s->n_tokens == s->n_blocks * kv->block_size)
        return false;
    int32_t b = s->blocks[s->n_blocks - 1];
    return kv->refs[b] > 1 || wisp_kv_int_registered(kv, b);
}

int wisp_kv_seq_blocks_needed(const wisp_kv *kv, const wisp_kv_seq *s, int n)
{
    if (n <= 0)
        return 0;
    int need = wisp_kv_blocks_for(kv, s->n_tokens + n) - s->n_blocks;
    return need + (last_block_needs_copy(kv, s) ? 1 : 0);
}

int wisp_kv_seq_reserve(wisp_kv *kv, wisp_kv_seq *s, const int32_t *tokens, int n, wisp_err *err)
{
    if (n <= 0)
        return 0;
    if (n > INT_MAX - s->n_tokens)
        return wisp_err_set(err, WISP_E_INVALID, "kv: sequence too long");
    int need = wisp_kv_seq_blocks_needed(kv, s, n);
    int avail = wisp_kv_available_blocks(kv);
    if (need > avail)
        return wisp_err_set(err, WISP_E_BUSY, "kv: pool exhausted (%d blocks needed, %d available)",
                            need, avail);
    int rc = seq_reserve_arrays(kv, s, s->n_tokens + n, err);
    if (rc)
        return rc;
    if (last_block_needs_copy(kv, s)) {
        int32_t old = s->blocks[s->n_blocks - 1];
        int32_t nb = wisp_kv_int_alloc(kv);
        WISP_ASSERT(nb >= 0);
        rc = kv->engine->ops->copy_block(kv->engine->ctx, nb, old, err);
        if (rc) {
            wisp_kv_int_unref(kv, nb);
            return wisp_err_prefix(err, "kv: copy-on-write of block %d", old);
        }
        kv->fill[nb] = s->n_tokens - (s->n_blocks - 1) * kv->block_size;
        s->blocks[s->n_blocks - 1] = nb;
        wisp_kv_int_unref(kv, old);
        kv->cow_copies++;
    }
    int total = wisp_kv_blocks_for(kv, s->n_tokens + n);
    while (s->n_blocks < total) {
        int32_t b = wisp_kv_int_alloc(kv);
        WISP_ASSERT(b >= 0);
        s->blocks[s->n_blocks++] = b;
    }
    memcpy(s->tokens + s->n_tokens, tokens, (size_t)n * sizeof *tokens);
    int bs = kv->block_size;
    for (int p = s->n_tokens; p < s->n_tokens + n; p++) {
        int32_t b = s->blocks[p / bs];
        if (kv->fill[b] < p % bs + 1)
            kv->fill[b] = p % bs + 1;
    }
    s->n_tokens += n;
    return 0;
}

void wisp_kv_seq_commit(wisp_kv *kv, wisp_kv_seq *s, int n_computed)
{
    WISP_ASSERT(n_computed >= 0 && n_computed <= s->n_tokens);
    s->n_computed = n_computed;
    int bs = kv->block_size;
    while ((s->n_keyed + 1) * bs <= s->n_computed) {
        int i = s->n_keyed;
        uint64_t parent = i ? s->keys[i - 1] : kv->root_key;
        const int32_t *t = s->tokens + (size_t)i * bs;
        uint64_t key = wisp_kv_block_key(parent, t, bs);
        s->keys[i] = key;
        s->n_keyed++;
        if (kv->prefix_cache)
            wisp_kv_int_register(kv, s->blocks[i], key, parent, t);
    }
}

void wisp_kv_seq_truncate(wisp_kv *kv, wisp_kv_seq *s, int n)
{
    WISP_ASSERT(n >= 0 && n <= s->n_tokens);
    int keep = wisp_kv_blocks_for(kv, n);
    /* Last block first: the LRU then reclaims a prefix's tail before its
     * head, which later prompts are the likelier to share. */
    while (s->n_blocks > keep)
        wisp_kv_int_unref(kv, s->blocks[--s->n_blocks]);
    s->n_tokens = n;
    s->n_computed = min_i(s->n_computed, n);
    s->n_keyed = min_i(s->n_keyed, n / kv->block_size);
    if (keep > 0) {
        int32_t b = s->blocks[keep - 1];
        if (kv->refs[b] == 1 && !wisp_kv_int_registered(kv, b))
            kv->fill[b] = n - (keep - 1) * kv->block_size;
    }
}

int wisp_kv_seq_fork(wisp_kv *kv, wisp_kv_seq *dst, const wisp_kv_seq *src, wisp_err *err)
{
    WISP_ASSERT(dst->n_tokens == 0 && dst->n_blocks == 0);
    WISP_ASSERT(src->n_computed == src->n_tokens);
    int rc = seq_reserve_arrays(kv, dst, src->n_tokens, err);
    if (rc)
        return rc;
    for (int i = 0; i < src->n_blocks; i++) {
        kv->refs[src->blocks[i]]++;
        dst->blocks[i] = src->blocks[i];
    }
    dst->n_blocks = src->n_blocks;
    memcpy(dst->tokens, src->tokens, (size_t)src->n_tokens * sizeof *src->tokens);
    memcpy(dst->keys, src->keys, (size_t)src->n_keyed * sizeof *src->keys);
    dst->n_tokens = dst->n_computed = src->n_tokens;
    dst->n_keyed = src->n_keyed;
    return 0;
}
