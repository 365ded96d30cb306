/*
 * host_tier.h - the second cache tier: full blocks' KV in host memory.
 *
 * When the primary pool reclaims a cached block, its KV (in the engine's own
 * storage format, engine read_block) moves here instead of being lost; a
 * later prompt that hits it gets it back with write_block, which is far
 * cheaper than recomputing it. The arena is one allocation of n_slots fixed
 * slots (bytes_per_block each) sized from a byte budget; full, it drops its
 * least recently used entry. Entries carry the same key, parent key and
 * tokens as primary entries, so a hit is verified the same way.
 */
#ifndef WISP_KV_HOST_TIER_H
#define WISP_KV_HOST_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "kv/keymap.h"

typedef struct wisp_kv_host {
    int n_slots;
    int block_size;
    size_t bytes_per_block;
    unsigned char *arena; /* n_slots * bytes_per_block */
    int32_t *tokens;      /* n_slots * block_size */
    uint64_t *parent;     /* parent key per slot */
    wisp_kv_keymap map;   /* slots in use, by key */
    wisp_kv_lru lru;      /* slots in use, oldest first */
    int32_t *free_slots;
    int n_free;
    uint64_t dropped; /* entries pushed out by newer ones */
} wisp_kv_host;

/* Sizes the arena from a byte budget (0 slots is a valid, disabled tier).
 * Returns 0 or WISP_E_NOMEM. */
int wisp_kv_host_init(wisp_kv_host *h, size_t budget_bytes, size_t bytes_per_block, int block_size,
                      wisp_err *err);
void wisp_kv_host_free(wisp_kv_host *h);
/* Takes a slot for a new entry (dropping the oldest when full), records its
 * key, parent and tokens, and returns it; the caller fills
 * wisp_kv_host_data(). -1 when the tier has no slots. */
int wisp_kv_host_put(wisp_kv_host *h, uint64_t key, uint64_t parent, const int32_t *tokens);
/* The slot holding exactly (key, parent, tokens), or -1. */
int wisp_kv_host_find(const wisp_kv_host *h, uint64_t key, uint64_t parent, const int32_t *tokens);
/* Any slot with the key (for de-duplication), or -1. */
int wisp_kv_host_find_key(const wisp_kv_host *h, uint64_t key);
void wisp_kv_host_remove(wisp_kv_host *h, int slot);
static inline unsigned char *wisp_kv_host_data(const wisp_kv_host *h, int slot)
{
    return h->arena + (size_t)slot * h->bytes_per_block;
}
static inline int wisp_kv_host_used(const wisp_kv_host *h) { return h->n_slots - h->n_free; }

#endif
