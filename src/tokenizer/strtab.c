/*
 * strtab.c - an append-only string table with an open-addressing hash.
 *
 * Token texts are looked up for every candidate merge, so lookups take a
 * (pointer, length) slice of the text being tokenized and never allocate.
 * FNV-1a is enough here: the keys are short and not adversarial for the
 * table (a vocabulary is fixed at load time).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_int.h"

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int tok_strtab_init(tok_strtab *t, int32_t cap_hint)
{
    memset(t, 0, sizeof *t);
    if (cap_hint < 16)
        cap_hint = 16;
    t->cap = cap_hint;
    t->off = malloc(sizeof(uint32_t) * (size_t)t->cap);
    t->len = malloc(sizeof(uint32_t) * (size_t)t->cap);
    uint32_t nslots = 32;
    while (nslots < (uint32_t)cap_hint * 2u)
        nslots <<= 1;
    t->slots = malloc(sizeof(int32_t) * nslots);
    t->mask = nslots - 1;
    t->pool_cap = (size_t)cap_hint * 8;
    t->pool = malloc(t->pool_cap);
    if (!t->off || !t->len || !t->slots || !t->pool) {
        tok_strtab_free(t);
        return WISP_E_NOMEM;
    }
    memset(t->slots, 0xff, sizeof(int32_t) * nslots);
    return 0;
}

void tok_strtab_free(tok_strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static int32_t *slot_for(const tok_strtab *t, const char *s, size_t n)
{
    uint32_t i = hash_bytes(s, n) & t->mask;
    for (;;) {
        int32_t id = t->slots[i];
        if (id < 0)
            return &t->slots[i];
        if (t->len[id] == n && memcmp(t->pool + t->off[id], s, n) == 0)
            return &t->slots[i];
        i = (i + 1) & t->mask;
    }
}

static int grow_slots(tok_strtab *t)
{
    uint32_t nslots = (t->mask + 1) * 2;
    int32_t *ns = malloc(sizeof(int32_t) * nslots);
    if (!ns)
        return WISP_E_NOMEM;
    memset(ns, 0xff, sizeof(int32_t) * nslots);
    int32_t *old = t->slots;
    uint32_t old_n = t->mask + 1;
    t->slots = ns;
    t->mask = nslots - 1;
    for (uint32_t i = 0; i < old_n; i++) {
        int32_t id = old[i];
        if (id >= 0)
            *slot_for(t, t->pool + t->off[id], t->len[id]) = id;
    }
    free(old);
    return 0;
}

int32_t tok_strtab_add(tok_strtab *t, const char *s, size_t n)
{
    if (n > UINT32_MAX || t->n == INT32_MAX)
        return WISP_E_TOO_LARGE;
    if (t->n == t->cap) {
        int32_t nc = t->cap * 2;
        uint32_t *no = realloc(t->off, sizeof(uint32_t) * (size_t)nc);
        if (!no)
            return WISP_E_NOMEM;
        t->off = no;
        uint32_t *nl = realloc(t->len, sizeof(uint32_t) * (size_t)nc);
        if (!nl)
            return WISP_E_NOMEM;
        t->len = nl;
        t->cap = nc;
    }
    if ((uint32_t)(t->n + 1) * 2u > t->mask + 1 && grow_slots(t) != 0)
        return WISP_E_NOMEM;
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t nc = t->pool_cap * 2;
        while (nc < t->pool_len + n + 1)
            nc *= 2;
        if (nc > UINT32_MAX)
            return WISP_E_TOO_LARGE;
        char *np = realloc(t->pool, nc);
        if (!np)
            return WISP_E_NOMEM;
        t->pool = np;
        t->pool_cap = nc;
    }
    /* s may point into the pool itself: copy before touching the slots. */
    memmove(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = '\0';
    int32_t id = t->n++;
    t->off[id] = (uint32_t)t->pool_len;
    t->len[id] = (uint32_t)n;
    t->pool_len += n + 1;
    *slot_for(t, t->pool + t->off[id], n) = id;
    return id;
}

int32_t tok_strtab_find(const tok_strtab *t, const char *s, size_t n) { return *slot_for(t, s, n); }
