/*
 * kv_int.h - internals shared by the files of the KV cache (kv.c pool and
 * sequences, prefix.c cache, persist.c files, check.c invariants and
 * statistics). Not a public header: only src/kv includes it.
 */
#ifndef WISP_KV_INT_H
#define WISP_KV_INT_H

#include "kv/host_tier.h"
#include "kv/keymap.h"
#include "kv/kv.h"

struct wisp_kv {
    wisp_engine *engine;
    int block_size;
    int n_blocks;
    size_t bytes_per_block; /* engine's KV bytes per block (0: no block I/O) */
    uint64_t model_identity;
    uint64_t root_key; /* key of the empty prefix */
    bool prefix_cache;
    int n_vocab;
    char *cache_path; /* NULL when persistence is off */

    /* The pool. refs[b] counts the sequences holding b; a block is free
     * (on free_stack), cached-only (refs 0, registered, on lru) or used. */
    int32_t *refs;
    int32_t *fill; /* slots in use, for fragmentation */
    int32_t *free_stack;
    int n_free;

    /* The primary prefix cache: registered blocks by key, with the parent
     * key and tokens each key was made from (verified on every hit). */
    wisp_kv_keymap map;
    wisp_kv_lru lru;  /* registered blocks with refs 0, oldest first */
    uint64_t *parent; /* per block */
    int32_t *btokens; /* per block, block_size each */

    wisp_kv_host host;
    unsigned char *io_buf; /* one block of KV, for tier moves and files */

    uint64_t cow_copies;
    uint64_t prefix_queries, prefix_hits, prefix_misses, query_tokens, hit_tokens;
    uint64_t evictions, demotions, promotions;
    uint64_t disk_loaded, disk_saved;
};

static inline bool wisp_kv_int_registered(const wisp_kv *kv, int32_t b)
{
    return kv->map.present[b];
}

static inline const int32_t *wisp_kv_int_btokens(const wisp_kv *kv, int32_t b)
{
    return kv->btokens + (size_t)b * kv->block_size;
}

/* kv.c: a block with refs 1, taken from the free list or else reclaimed
 * from the LRU end of the cache (demoted to the host tier); -1 if none. */
int32_t wisp_kv_int_alloc(wisp_kv *kv);
void wisp_kv_int_unref(wisp_kv *kv, int32_t b);
/* Grows a sequence's arrays to hold n_tokens tokens and their blocks. */
int wisp_kv_int_seq_grow(wisp_kv *kv, wisp_kv_seq *s, int n_tokens, wisp_err *err);

/* prefix.c */
int32_t wisp_kv_int_lookup(const wisp_kv *kv, uint64_t key, uint64_t parent, const int32_t *tokens);
/* Enters block b in the primary cache unless an equal entry is there;
 * returns whether it did. */
bool wisp_kv_int_register(wisp_kv *kv, int32_t b, uint64_t key, uint64_t parent,
                          const int32_t *tokens);
/* Removes a cached-only block from the cache (to reuse it), demoting its
 * KV to the host tier first. */
void wisp_kv_int_evict(wisp_kv *kv, int32_t b);

/* persist.c */
int wisp_kv_int_load(wisp_kv *kv);
int wisp_kv_int_save(wisp_kv *kv, wisp_err *err);

#endif
