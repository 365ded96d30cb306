/*
 * prefix.c - the prefix cache over the block pool (kv.h).
 *
 * A full block's key is hash(parent key, its tokens), chained from a root
 * that names the model, so one key stands for a whole prefix. A lookup walks
 * a prompt block by block from the root and stops at the first miss; each hit
 * is checked against the stored parent key and tokens, so a 64-bit collision
 * turns into a miss, never into someone else's KV. Blocks missing from the
 * primary pool are looked up in the host tier and promoted back.
 */
#include <string.h>

#include "common/log.h"
#include "common/panic.h"
#include "kv/hash.h"
#include "kv/kv_int.h"

static bool entry_matches(const wisp_kv *kv, int32_t b, uint64_t parent, const int32_t *tokens)
{
    return kv->parent[b] == parent &&
           memcmp(wisp_kv_int_btokens(kv, b), tokens, (size_t)kv->block_size * sizeof *tokens) == 0;
}

int32_t wisp_kv_int_lookup(const wisp_kv *kv, uint64_t key, uint64_t parent, const int32_t *tokens)
{
    for (int b = wisp_kv_keymap_find(&kv->map, key); b >= 0; b = wisp_kv_keymap_next(&kv->map, b))
        if (entry_matches(kv, b, parent, tokens))
            return b;
    return -1;
}

bool wisp_kv_int_register(wisp_kv *kv, int32_t b, uint64_t key, uint64_t parent,
                          const int32_t *tokens)
{
    if (wisp_kv_int_registered(kv, b))
        return false;
    /* Two sequences may compute the same block at once; the first one in
     * stays the cached copy and the other remains private (freed on release). */
    if (wisp_kv_int_lookup(kv, key, parent, tokens) >= 0)
        return false;
    wisp_kv_keymap_insert(&kv->map, b, key);
    kv->parent[b] = parent;
    memcpy(kv->btokens + (size_t)b * kv->block_size, tokens,
           (size_t)kv->block_size * sizeof *tokens);
    /* A host copy of the same prefix is now redundant. */
    int slot = wisp_kv_host_find(&kv->host, key, parent, tokens);
    if (slot >= 0)
        wisp_kv_host_remove(&kv->host, slot);
    return true;
}

void wisp_kv_int_evict(wisp_kv *kv, int32_t b)
{
    WISP_ASSERT(kv->refs[b] == 0 && wisp_kv_int_registered(kv, b));
    wisp_kv_lru_remove(&kv->lru, b);
    uint64_t key = kv->map.key[b];
    const int32_t *t = wisp_kv_int_btokens(kv, b);
    if (kv->host.n_slots > 0 && wisp_kv_host_find(&kv->host, key, kv->parent[b], t) < 0) {
        int slot = wisp_kv_host_put(&kv->host, key, kv->parent[b], t);
        wisp_err err = {0};
        if (kv->engine->ops->read_block(kv->engine->ctx, b, wisp_kv_host_data(&kv->host, slot),
                                        &err) != 0) {
            WISP_LOGW("kv: block %d not demoted to the host tier: %s", b, err.msg);
            wisp_kv_host_remove(&kv->host, slot);
        } else {
            kv->demotions++;
        }
    }
    wisp_kv_keymap_remove(&kv->map, b);
    kv->evictions++;
}

/* Moves a host-tier entry back into a primary block (refs 1, registered);
 * -1 when no block can be had or the engine refuses the write. */
static int32_t promote(wisp_kv *kv, int slot, uint64_t key, uint64_t parent, const int32_t *tokens)
{
    if (wisp_kv_available_blocks(kv) == 0)
        return -1;
    /* Take the entry out first: reclaiming a block below may demote another
     * one into the host tier, which could otherwise overwrite this slot. */
    memcpy(kv->io_buf, wisp_kv_host_data(&kv->host, slot), kv->bytes_per_block);
    wisp_kv_host_remove(&kv->host, slot);
    int32_t b = wisp_kv_int_alloc(kv);
    WISP_ASSERT(b >= 0);
    wisp_err err = {0};
    if (kv->engine->ops->write_block(kv->engine->ctx, b, kv->io_buf, &err) != 0) {
        WISP_LOGW("kv: host-tier block not promoted: %s", err.msg);
        wisp_kv_int_unref(kv, b);
        return -1;
    }
    wisp_kv_int_register(kv, b, key, parent, tokens);
    kv->fill[b] = kv->block_size;
    kv->promotions++;
    return b;
}

int wisp_kv_seq_attach_prefix(wisp_kv *kv, wisp_kv_seq *s, const int32_t *tokens, int n,
                              int max_reuse, wisp_err *err)
{
    WISP_ASSERT(s->n_tokens == 0 && s->n_blocks == 0);
    kv->prefix_queries++;
    kv->query_tokens += (uint64_t)(n > 0 ? n : 0);
    if (max_reuse > n)
        max_reuse = n;
    if (!kv->prefix_cache || max_reuse <= 0 || n < kv->block_size) {
        kv->prefix_misses++;
        return 0;
    }
    int bs = kv->block_size, n_full = n / bs;
    int rc = wisp_kv_int_seq_grow(kv, s, n_full * bs, err);
    if (rc)
        return rc;
    uint64_t parent = kv->root_key;
    for (int i = 0; i < n_full && i * bs < max_reuse; i++) {
        const int32_t *t = tokens + (size_t)i * bs;
        uint64_t key = wisp_kv_block_key(parent, t, bs);
        int32_t b = wisp_kv_int_lookup(kv, key, parent, t);
        if (b >= 0) {
            if (kv->refs[b]++ == 0)
                wisp_kv_lru_remove(&kv->lru, b);
        } else {
            int slot = wisp_kv_host_find(&kv->host, key, parent, t);
            if (slot < 0 || (b = promote(kv, slot, key, parent, t)) < 0)
                break;
        }
        s->blocks[s->n_blocks++] = b;
        s->keys[i] = key;
        parent = key;
    }
    int reused = s->n_blocks * bs;
    if (reused > max_reuse)
        reused = max_reuse;
    memcpy(s->tokens, tokens, (size_t)reused * sizeof *tokens);
    s->n_tokens = s->n_computed = reused;
    s->n_keyed = reused / bs;
    if (reused > 0) {
        kv->prefix_hits++;
        kv->hit_tokens += (uint64_t)reused;
    } else {
        kv->prefix_misses++;
    }
    return reused;
}
