/*
 * keymap.h - a map from 64-bit keys to entry indices, and an LRU list.
 *
 * Both cache tiers hold a fixed number of entries (blocks of the pool, slots
 * of the host arena), so both structures are intrusive over entry indices
 * [0, n): chaining and list links are arrays indexed by entry, allocated once
 * at creation, and inserting or removing never allocates. That keeps the hot
 * path (every full block, every eviction) free of malloc and of failure.
 */
#ifndef WISP_KV_KEYMAP_H
#define WISP_KV_KEYMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wisp_kv_keymap {
    int n;           /* entries */
    uint32_t mask;   /* buckets - 1 (a power of two >= n) */
    int32_t *bucket; /* head entry per bucket, -1 = empty */
    int32_t *next;   /* next entry in the chain, -1 = end */
    uint64_t *key;   /* key of each entry */
    bool *present;   /* entry is in the map */
} wisp_kv_keymap;

/* Returns 0 or WISP_E_NOMEM. */
int wisp_kv_keymap_init(wisp_kv_keymap *m, int n, wisp_err *err);
void wisp_kv_keymap_free(wisp_kv_keymap *m);
/* Adds entry idx (not present) under key. Several entries may share a key. */
void wisp_kv_keymap_insert(wisp_kv_keymap *m, int idx, uint64_t key);
/* Removes entry idx (present). */
void wisp_kv_keymap_remove(wisp_kv_keymap *m, int idx);
/* First entry with the key, or -1; wisp_kv_keymap_next continues the search. */
int wisp_kv_keymap_find(const wisp_kv_keymap *m, uint64_t key);
int wisp_kv_keymap_next(const wisp_kv_keymap *m, int idx);

/* A doubly linked list over entry indices: head = least recently used. */
typedef struct wisp_kv_lru {
    int head, tail, count;
    int32_t *prev, *next;
    bool *in; /* entry is on the list */
} wisp_kv_lru;

int wisp_kv_lru_init(wisp_kv_lru *l, int n, wisp_err *err);
void wisp_kv_lru_free(wisp_kv_lru *l);
void wisp_kv_lru_push(wisp_kv_lru *l, int idx); /* as most recent */
void wisp_kv_lru_remove(wisp_kv_lru *l, int idx);
/* The least recently used entry, or -1. */
static inline int wisp_kv_lru_oldest(const wisp_kv_lru *l) { return l->head; }

#endif
