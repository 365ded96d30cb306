/*
 * host_tier.c - the host-memory second tier (host_tier.h).
 */
#include "kv/host_tier.h"

#include <stdlib.h>
#include <string.h>

#include "common/panic.h"

int wisp_kv_host_init(wisp_kv_host *h, size_t budget_bytes, size_t bytes_per_block, int block_size,
                      wisp_err *err)
{
    *h = (wisp_kv_host){.block_size = block_size, .bytes_per_block = bytes_per_block};
    size_t n = bytes_per_block ? budget_bytes / bytes_per_block : 0;
    if (n > (1u << 30))
        n = 1u << 30;
    h->n_slots = (int)n;
    size_t cnt = n ? n : 1;
    h->arena = n ? malloc(n * bytes_per_block) : NULL;
    h->tokens = malloc(cnt * (size_t)block_size * sizeof *h->tokens);
    h->parent = malloc(cnt * sizeof *h->parent);
    h->free_slots = malloc(cnt * sizeof *h->free_slots);
    if ((n && !h->arena) || !h->tokens || !h->parent || !h->free_slots) {
        wisp_kv_host_free(h);
        return wisp_err_set(err, WISP_E_NOMEM,
                            "kv host tier: cannot allocate %zu bytes (%zu blocks of %zu bytes)",
                            n * bytes_per_block, n, bytes_per_block);
    }
    int rc = wisp_kv_keymap_init(&h->map, (int)n, err);
    if (rc == 0)
        rc = wisp_kv_lru_init(&h->lru, (int)n, err);
    if (rc) {
        wisp_kv_host_free(h);
        return rc;
    }
    /* Slots are handed out lowest first, so a small working set stays in
     * a few pages of the arena. */
    for (int i = 0; i < (int)n; i++)
        h->free_slots[i] = (int32_t)(n - 1 - (size_t)i);
    h->n_free = (int)n;
    return 0;
}

void wisp_kv_host_free(wisp_kv_host *h)
{
    free(h->arena);
    free(h->tokens);
    free(h->parent);
    free(h->free_slots);
    wisp_kv_keymap_free(&h->map);
    wisp_kv_lru_free(&h->lru);
    *h = (wisp_kv_host){0};
}

int wisp_kv_host_put(wisp_kv_host *h, uint64_t key, uint64_t parent, const int32_t *tokens)
{
    if (h->n_slots == 0)
        return -1;
    if (h->n_free == 0) {
        wisp_kv_host_remove(h, wisp_kv_lru_oldest(&h->lru));
        h->dropped++;
    }
    int slot = h->free_slots[--h->n_free];
    memcpy(h->tokens + (size_t)slot * h->block_size, tokens,
           (size_t)h->block_size * sizeof *tokens);
    h->parent[slot] = parent;
    wisp_kv_keymap_insert(&h->map, slot, key);
    wisp_kv_lru_push(&h->lru, slot);
    return slot;
}

int wisp_kv_host_find(const wisp_kv_host *h, uint64_t key, uint64_t parent, const int32_t *tokens)
{
    if (h->n_slots == 0)
        return -1;
    for (int s = wisp_kv_keymap_find(&h->map, key); s >= 0; s = wisp_kv_keymap_next(&h->map, s)) {
        if (h->parent[s] == parent && memcmp(h->tokens + (size_t)s * h->block_size, tokens,
                                             (size_t)h->block_size * sizeof *tokens) == 0)
            return s;
    }
    return -1;
}

int wisp_kv_host_find_key(const wisp_kv_host *h, uint64_t key)
{
    return h->n_slots ? wisp_kv_keymap_find(&h->map, key) : -1;
}

void wisp_kv_host_remove(wisp_kv_host *h, int slot)
{
    WISP_ASSERT(slot >= 0 && slot < h->n_slots);
    wisp_kv_keymap_remove(&h->map, slot);
    wisp_kv_lru_remove(&h->lru, slot);
    h->free_slots[h->n_free++] = slot;
}
