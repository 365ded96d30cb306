/*
 * keymap.c - intrusive key map and LRU list over entry indices (keymap.h).
 */
#include "kv/keymap.h"

#include <stdlib.h>

#include "common/panic.h"

static inline uint32_t bucket_of(const wisp_kv_keymap *m, uint64_t key)
{
    /* Keys are already hash outputs; fold the high half in anyway so a
     * caller's weak key (tests use small ints) still spreads. */
    return (uint32_t)(key ^ (key >> 32)) & m->mask;
}

int wisp_kv_keymap_init(wisp_kv_keymap *m, int n, wisp_err *err)
{
    uint32_t nb = 1;
    while (nb < (uint32_t)n)
        nb <<= 1;
    *m = (wisp_kv_keymap){.n = n, .mask = nb - 1};
    m->bucket = malloc(nb * sizeof *m->bucket);
    m->next = malloc((size_t)(n ? n : 1) * sizeof *m->next);
    m->key = calloc((size_t)(n ? n : 1), sizeof *m->key);
    m->present = calloc((size_t)(n ? n : 1), sizeof *m->present);
    if (!m->bucket || !m->next || !m->key || !m->present) {
        wisp_kv_keymap_free(m);
        return wisp_err_set(err, WISP_E_NOMEM, "kv keymap: no memory for %d entries", n);
    }
    for (uint32_t i = 0; i < nb; i++)
        m->bucket[i] = -1;
    for (int i = 0; i < n; i++)
        m->next[i] = -1;
    return 0;
}

void wisp_kv_keymap_free(wisp_kv_keymap *m)
{
    free(m->bucket);
    free(m->next);
    free(m->key);
    free(m->present);
    *m = (wisp_kv_keymap){0};
}

void wisp_kv_keymap_insert(wisp_kv_keymap *m, int idx, uint64_t key)
{
    WISP_ASSERT(idx >= 0 && idx < m->n && !m->present[idx]);
    uint32_t b = bucket_of(m, key);
    m->key[idx] = key;
    m->next[idx] = m->bucket[b];
    m->bucket[b] = idx;
    m->present[idx] = true;
}

void wisp_kv_keymap_remove(wisp_kv_keymap *m, int idx)
{
    WISP_ASSERT(idx >= 0 && idx < m->n && m->present[idx]);
    int32_t *link = &m->bucket[bucket_of(m, m->key[idx])];
    while (*link != idx) {
        WISP_ASSERT(*link >= 0);
        link = &m->next[*link];
    }
    *link = m->next[idx];
    m->next[idx] = -1;
    m->present[idx] = false;
}

int wisp_kv_keymap_find(const wisp_kv_keymap *m, uint64_t key)
{
    int i = m->bucket[bucket_of(m, key)];
    while (i >= 0 && m->key[i] != key)
        i = m->next[i];
    return i;
}

int wisp_kv_keymap_next(const wisp_kv_keymap *m, int idx)
{
    uint64_t key = m->key[idx];
    int i = m->next[idx];
    while (i >= 0 && m->key[i] != key)
        i = m->next[i];
    return i;
}

int wisp_kv_lru_init(wisp_kv_lru *l, int n, wisp_err *err)
{
    *l = (wisp_kv_lru){.head = -1, .tail = -1};
    size_t cnt = (size_t)(n ? n : 1);
    l->prev = malloc(cnt * sizeof *l->prev);
    l->next = malloc(cnt * sizeof *l->next);
    l->in = calloc(cnt, sizeof *l->in);
    if (!l->prev || !l->next || !l->in) {
        wisp_kv_lru_free(l);
        return wisp_err_set(err, WISP_E_NOMEM, "kv lru: no memory for %d entries", n);
    }
    return 0;
}

void wisp_kv_lru_free(wisp_kv_lru *l)
{
    free(l->prev);
    free(l->next);
    free(l->in);
    *l = (wisp_kv_lru){.head = -1, .tail = -1};
}

void wisp_kv_lru_push(wisp_kv_lru *l, int idx)
{
    WISP_ASSERT(!l->in[idx]);
    l->prev[idx] = l->tail;
    l->next[idx] = -1;
    if (l->tail >= 0)
        l->next[l->tail] = idx;
    else
        l->head = idx;
    l->tail = idx;
    l->in[idx] = true;
    l->count++;
}

void wisp_kv_lru_remove(wisp_kv_lru *l, int idx)
{
    WISP_ASSERT(l->in[idx]);
    int p = l->prev[idx], n = l->next[idx];
    if (p >= 0)
        l->next[p] = n;
    else
        l->head = n;
    if (n >= 0)
        l->prev[n] = p;
    else
        l->tail = p;
    l->in[idx] = false;
    l->count--;
}
