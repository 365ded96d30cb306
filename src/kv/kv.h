/*
 * kv.h - the paged KV cache: block pool, per-sequence block tables, prefix
 * cache, host-memory second tier and on-disk persistence.
 *
 * The engine owns the KV storage (n_blocks blocks of block_size token slots,
 * engine.h); this module owns the block ids. It is vLLM's design:
 *
 *  - Blocks are reference counted. A sequence's block table lists the blocks
 *    holding its positions; sequences that share a prefix share its blocks.
 *  - A block is written in place only by its one owner and only while it is
 *    not in the prefix cache; appending into a shared or cached partially
 *    filled block first copies it (copy-on-write, engine copy_block).
 *  - Every full, computed block is keyed by hash(parent key, its tokens),
 *    chained from a root that names the model, and entered in the prefix
 *    cache with its tokens; a hit is verified token by token. Cached blocks
 *    outlive their sequences: unreferenced ones wait on an LRU list and are
 *    reclaimed only when the pool runs out of free blocks.
 *  - Reclaimed blocks are demoted to a host-memory arena (engine read_block)
 *    and promoted back (write_block) when a later prompt hits them.
 *  - With a cache directory, the cached blocks of both tiers are written to
 *    one file per model identity (wisp_kv_save, and at destroy) and loaded
 *    back at creation, so a restarted process starts warm. A file that is
 *    corrupt, truncated or made for another model or layout is ignored.
 *
 * Not thread-safe: one thread (the engine thread) drives a wisp_kv.
 */
#ifndef WISP_KV_H
#define WISP_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/engine.h"

typedef struct wisp_kv wisp_kv;

typedef struct wisp_kv_opts {
    /* Identity of the model whose KV this is (wisp_model_identity()): the
     * root of every prefix key and the name of the cache file. */
    uint64_t model_identity;
    bool prefix_cache;     /* register and reuse full blocks */
    size_t host_bytes;     /* second tier capacity in bytes; 0 = none */
    const char *cache_dir; /* persistence folder; NULL or "" = none */
    int n_vocab;           /* tokens read from disk must be < n_vocab (0 = unchecked) */
} wisp_kv_opts;

/* A sequence's view of the cache. Owned by the caller (embed it anywhere),
 * mutated only through the functions below; fields are read-only outside. */
typedef struct wisp_kv_seq {
    int32_t *blocks; /* block table: ceil(n_tokens / block_size) ids */
    int n_blocks;
    int32_t *tokens; /* the tokens whose slots are reserved */
    int n_tokens;
    int n_computed; /* tokens [0, n_computed) have their KV written */
    uint64_t *keys; /* chain key of each full computed block */
    int n_keyed;
    int cap_blocks, cap_tokens;
} wisp_kv_seq;

typedef struct wisp_kv_stats {
    int block_size;
    int blocks_total;
    int blocks_used;        /* referenced by live sequences */
    int blocks_cached_only; /* unreferenced, kept by the prefix cache */
    int blocks_free;
    int64_t unused_slots; /* empty slots in partially filled used blocks */
    double fragmentation; /* unused_slots / (blocks_used * block_size) */
    uint64_t cow_copies;
    uint64_t prefix_queries, prefix_hits, prefix_misses;
    uint64_t query_tokens, hit_tokens;
    uint64_t evictions;             /* blocks reclaimed from the primary cache */
    uint64_t demotions, promotions; /* to and from the host tier */
    size_t host_bytes_capacity, host_bytes_used;
    int host_blocks, host_blocks_capacity;
    uint64_t disk_blocks_loaded, disk_blocks_saved;
    size_t bytes_per_block;
} wisp_kv_stats;

/* Creates the cache over the engine's pool (engine->opts.n_blocks blocks of
 * engine->opts.block_size tokens) and, with a cache_dir, loads the cache
 * file (a bad file is logged and ignored, never an error). Returns 0, or a
 * negative wisp_code with err set. The engine must outlive the cache. */
int wisp_kv_create(wisp_engine *engine, const wisp_kv_opts *opts, wisp_kv **out, wisp_err *err);
/* Saves the cache file (when there is a cache_dir; a failure is logged) and
 * frees everything. Every sequence must have been released first. */
void wisp_kv_destroy(wisp_kv *kv);
/* Writes the cache file now (atomically: a temporary file renamed over the
 * old one). Returns 0 (also when persistence is off) or <0 with err set. */
int wisp_kv_save(wisp_kv *kv, wisp_err *err);

int wisp_kv_block_size(const wisp_kv *kv);
int wisp_kv_n_blocks(const wisp_kv *kv);
/* Blocks a sequence could get now: free ones plus unreferenced cached ones. */
int wisp_kv_available_blocks(const wisp_kv *kv);
/* Blocks a sequence of n tokens needs. */
int wisp_kv_blocks_for(const wisp_kv *kv, int n_tokens);

/* ------------------------------------------------------------ sequences */
void wisp_kv_seq_init(wisp_kv_seq *s);
/* Releases the sequence's blocks and frees its arrays. */
void wisp_kv_seq_free(wisp_kv *kv, wisp_kv_seq *s);
/* Drops every block reference and token (the sequence becomes empty, its
 * arrays are kept): finish, cancel and preemption all end here. Cached
 * blocks stay in the cache; others return to the free list. */
void wisp_kv_seq_release(wisp_kv *kv, wisp_kv_seq *s);

/* On an empty sequence: attaches the longest chain of cached full blocks
 * that starts tokens[0, n), reusing at most max_reuse tokens (a caller that
 * needs logits for the last token passes n - 1). When the cap cuts a cached
 * block, the block is still attached and the sequence ends inside it; the
 * next reserve copies it (copy-on-write) before writing. Host-tier hits are
 * promoted. Returns the tokens reused (>= 0, all computed), or <0 with err
 * set (the sequence is then empty). */
int wisp_kv_seq_attach_prefix(wisp_kv *kv, wisp_kv_seq *s, const int32_t *tokens, int n,
                              int max_reuse, wisp_err *err);

/* Reserves slots for n tokens appended after the sequence's n_tokens,
 * copying a shared or cached last block first and allocating blocks on
 * demand (reclaiming unreferenced cached blocks when no block is free).
 * Returns 0, or WISP_E_BUSY when the pool has too few blocks (nothing
 * changed), or another code with err set. */
int wisp_kv_seq_reserve(wisp_kv *kv, wisp_kv_seq *s, const int32_t *tokens, int n, wisp_err *err);
/* Blocks that reserving n more tokens would take (including a copy). */
int wisp_kv_seq_blocks_needed(const wisp_kv *kv, const wisp_kv_seq *s, int n);

/* Records that the engine wrote the KV of tokens [0, n_computed) and enters
 * the newly full blocks in the prefix cache. n_computed <= n_tokens. */
void wisp_kv_seq_commit(wisp_kv *kv, wisp_kv_seq *s, int n_computed);

/* Shortens the sequence to n tokens (rolling back a step whose KV is
 * undefined, or backtracking), releasing blocks past the new end. */
void wisp_kv_seq_truncate(wisp_kv *kv, wisp_kv_seq *s, int n);

/* Makes dst (empty) share all of src's blocks; src must be fully computed.
 * Returns 0 or WISP_E_NOMEM. Appends to either then copy the shared last
 * block. */
int wisp_kv_seq_fork(wisp_kv *kv, wisp_kv_seq *dst, const wisp_kv_seq *src, wisp_err *err);

/* ------------------------------------------------------------ reporting */
void wisp_kv_get_stats(const wisp_kv *kv, wisp_kv_stats *out);

/* Verifies the cache's internal invariants (free list, LRU, map and
 * reference counts agree; every cached entry's key is hash(parent, tokens)).
 * O(blocks); for tests and debug builds. Returns 0 or WISP_E_INTERNAL with
 * err naming the broken invariant. */
int wisp_kv_check(const wisp_kv *kv, wisp_err *err);
/* For tests: a block's reference count, and whether it is in the prefix
 * cache (then *key and *tokens describe it). */
int wisp_kv_block_refs(const wisp_kv *kv, int32_t block);
bool wisp_kv_block_cached(const wisp_kv *kv, int32_t block, uint64_t *key, const int32_t **tokens);
/* For tests: host-tier slots (n = capacity); a slot in use returns true and
 * its key, tokens and KV bytes. */
int wisp_kv_host_slots(const wisp_kv *kv);
bool wisp_kv_host_slot(const wisp_kv *kv, int slot, uint64_t *key, const int32_t **tokens,
                       const void **data);

#endif
