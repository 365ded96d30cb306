/*
 * check.c - statistics and the consistency check of the KV cache (kv.h).
 *
 * The check recomputes from scratch what the pool keeps incrementally - the
 * free list, the LRU of cached-only blocks, the key map - and compares, so
 * the randomized stress test can run it after every operation.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/hash.h"
#include "kv/kv_int.h"

void wisp_kv_get_stats(const wisp_kv *kv, wisp_kv_stats *o)
{
    memset(o, 0, sizeof *o);
    o->block_size = kv->block_size;
    o->blocks_total = kv->n_blocks;
    for (int b = 0; b < kv->n_blocks; b++) {
        if (kv->refs[b] > 0) {
            o->blocks_used++;
            o->unused_slots += kv->block_size - kv->fill[b];
        } else if (wisp_kv_int_registered(kv, b)) {
            o->blocks_cached_only++;
        }
    }
    o->blocks_free = kv->n_free;
    o->fragmentation =
        o->blocks_used ? (double)o->unused_slots / ((double)o->blocks_used * kv->block_size) : 0.0;
    o->cow_copies = kv->cow_copies;
    o->prefix_queries = kv->prefix_queries;
    o->prefix_hits = kv->prefix_hits;
    o->prefix_misses = kv->prefix_misses;
    o->query_tokens = kv->query_tokens;
    o->hit_tokens = kv->hit_tokens;
    o->evictions = kv->evictions;
    o->demotions = kv->demotions;
    o->promotions = kv->promotions;
    o->host_blocks = wisp_kv_host_used(&kv->host);
    o->host_blocks_capacity = kv->host.n_slots;
    o->host_bytes_capacity = (size_t)kv->host.n_slots * kv->bytes_per_block;
    o->host_bytes_used = (size_t)o->host_blocks * kv->bytes_per_block;
    o->disk_blocks_loaded = kv->disk_loaded;
    o->disk_blocks_saved = kv->disk_saved;
    o->bytes_per_block = kv->bytes_per_block;
}

int wisp_kv_block_refs(const wisp_kv *kv, int32_t block) { return kv->refs[block]; }

bool wisp_kv_block_cached(const wisp_kv *kv, int32_t block, uint64_t *key, const int32_t **tokens)
{
    if (!wisp_kv_int_registered(kv, block))
        return false;
    *key = kv->map.key[block];
    *tokens = wisp_kv_int_btokens(kv, block);
    return true;
}

int wisp_kv_host_slots(const wisp_kv *kv) { return kv->host.n_slots; }

bool wisp_kv_host_slot(const wisp_kv *kv, int slot, uint64_t *key, const int32_t **tokens,
                       const void **data)
{
    const wisp_kv_host *h = &kv->host;
    if (slot < 0 || slot >= h->n_slots || !h->map.present[slot])
        return false;
    *key = h->map.key[slot];
    *tokens = h->tokens + (size_t)slot * h->block_size;
    *data = wisp_kv_host_data(h, slot);
    return true;
}

/* Walks an LRU list, marking its members; returns NULL or the problem. */
static const char *check_lru(const wisp_kv_lru *l, int n, unsigned char *mark, unsigned char bit)
{
    int count = 0, prev = -1;
    for (int i = l->head; i >= 0; i = l->next[i]) {
        if (i >= n || !l->in[i] || l->prev[i] != prev || (mark[i] & bit) || ++count > n)
            return "LRU list is broken";
        mark[i] |= bit;
        prev = i;
    }
    if (prev != l->tail || count != l->count)
        return "LRU count or tail is wrong";
    return NULL;
}

static const char *check_map_entry(const wisp_kv_keymap *m, int i)
{
    for (int j = wisp_kv_keymap_find(m, m->key[i]); j >= 0; j = wisp_kv_keymap_next(m, j))
        if (j == i)
            return NULL;
    return "a cached entry cannot be found by its key";
}

static int fail(wisp_err *err, int block, const char *what, unsigned char *mark)
{
    free(mark);
    return wisp_err_set(err, WISP_E_INTERNAL, "kv check: block/slot %d: %s", block, what);
}

int wisp_kv_check(const wisp_kv *kv, wisp_err *err)
{
    int n = kv->n_blocks, bs = kv->block_size;
    int ns = kv->host.n_slots;
    unsigned char *mark = calloc((size_t)(n > ns ? n : ns) + 1, 1);
    if (!mark)
        return wisp_err_set(err, WISP_E_NOMEM, "kv check: no memory");
    enum {
        FREE = 1,
        LRU = 2
    };
    for (int i = 0; i < kv->n_free; i++) {
        int32_t b = kv->free_stack[i];
        if (b < 0 || b >= n || (mark[b] & FREE))
            return fail(err, b, "free list holds a bad or repeated id", mark);
        mark[b] |= FREE;
    }
    const char *why = check_lru(&kv->lru, n, mark, LRU);
    if (why)
        return fail(err, -1, why, mark);
    for (int b = 0; b < n; b++) {
        bool reg = wisp_kv_int_registered(kv, b);
        if (kv->refs[b] < 0)
            return fail(err, b, "negative reference count", mark);
        if ((mark[b] & FREE) && (kv->refs[b] != 0 || reg))
            return fail(err, b, "on the free list but referenced or cached", mark);
        if ((mark[b] & LRU) != (kv->refs[b] == 0 && reg ? LRU : 0))
            return fail(err, b, "LRU membership disagrees with refs 0 and cached", mark);
        if (kv->refs[b] == 0 && !reg && !(mark[b] & FREE))
            return fail(err, b, "leaked: unreferenced, uncached and not free", mark);
        if (kv->fill[b] < 0 || kv->fill[b] > bs)
            return fail(err, b, "fill out of range", mark);
        if (reg) {
            if (wisp_kv_block_key(kv->parent[b], wisp_kv_int_btokens(kv, b), bs) != kv->map.key[b])
                return fail(err, b, "cached key is not hash(parent, tokens)", mark);
            if ((why = check_map_entry(&kv->map, b)))
                return fail(err, b, why, mark);
        }
    }
    memset(mark, 0, (size_t)(n > ns ? n : ns) + 1);
    const wisp_kv_host *h = &kv->host;
    if ((why = check_lru(&h->lru, ns, mark, LRU)))
        return fail(err, -1, why, mark);
    for (int i = 0; i < h->n_free; i++) {
        int s = h->free_slots[i];
        if (s < 0 || s >= ns || (mark[s] & (LRU | FREE)))
            return fail(err, s, "host free list holds a bad, repeated or used slot", mark);
        mark[s] |= FREE;
    }
    for (int s = 0; s < ns; s++) {
        if (!(mark[s] & (LRU | FREE)))
            return fail(err, s, "host slot leaked", mark);
        if (((mark[s] & LRU) != 0) != h->map.present[s])
            return fail(err, s, "host map and LRU disagree", mark);
        if (h->map.present[s]) {
            if (wisp_kv_block_key(h->parent[s], h->tokens + (size_t)s * bs, bs) != h->map.key[s])
                return fail(err, s, "host key is not hash(parent, tokens)", mark);
            if ((why = check_map_entry(&h->map, s)))
                return fail(err, s, why, mark);
        }
    }
    free(mark);
    return 0;
}
