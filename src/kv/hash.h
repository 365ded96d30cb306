/*
 * hash.h - the 64-bit hash behind prefix-cache keys and cache-file checksums.
 *
 * XXH64 (Yann Collet's public algorithm, written here from its
 * specification): fast, well mixed, and stable across runs and machines,
 * which matters because keys are written to disk and read back by a later
 * process. A block's key chains its parent's key with the block's token ids,
 * so equal keys mean equal whole prefixes (up to a 64-bit collision, which
 * the cache rules out by also comparing the stored tokens and parent key).
 */
#ifndef WISP_KV_HASH_H
#define WISP_KV_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH64 of n bytes with a seed. */
uint64_t wisp_hash64(const void *data, size_t n, uint64_t seed);

/* The key of the root (the empty prefix): mixes the model identity and the
 * block size, so caches of different models or layouts never share keys. */
uint64_t wisp_kv_root_key(uint64_t model_identity, int block_size);

/* The key of a full block: hash(parent key, the block's token ids). */
uint64_t wisp_kv_block_key(uint64_t parent_key, const int32_t *tokens, int n_tokens);

#endif
