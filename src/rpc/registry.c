/* registry.c - in-flight requests by id (open addressing): see registry.h. */
#include "rpc/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* FNV-1a: ids are short, so a simple byte hash is enough. */
static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void wisp_registry_init(wisp_registry *r) { memset(r, 0, sizeof *r); }

void wisp_registry_free(wisp_registry *r)
{
    free(r->slots);
    memset(r, 0, sizeof *r);
}

static wisp_registry_slot *lookup(const wisp_registry *r, const char *key)
{
    if (!r->cap)
        return NULL;
    size_t mask = r->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        wisp_registry_slot *s = &r->slots[i];
        if (!s->key)
            return NULL;
        if (s->job && strcmp(s->key, key) == 0)
            return s;
    }
}

static int grow(wisp_registry *r)
{
    size_t cap = r->cap ? r->cap * 2 : 64;
    /* Only tombstones filled the table: rehash at the same size. */
    if (r->count * 4 < r->cap)
        cap = r->cap;
    wisp_registry_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return WISP_E_NOMEM;
    for (size_t i = 0; i < r->cap; i++) {
        wisp_registry_slot *s = &r->slots[i];
        if (!s->job)
            continue;
        size_t j = hash(s->key) & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    r->used = r->count;
    return 0;
}

int wisp_registry_add(wisp_registry *r, const char *key, wisp_job *job)
{
    if (lookup(r, key))
        return WISP_E_BUSY;
    if ((r->used + 1) * 2 > r->cap) {
        int rc = grow(r);
        if (rc < 0)
            return rc;
    }
    size_t mask = r->cap - 1, i = hash(key) & mask;
    while (r->slots[i].key && r->slots[i].job)
        i = (i + 1) & mask;
    if (!r->slots[i].key)
        r->used++;
    r->slots[i].key = key;
    r->slots[i].job = job;
    r->count++;
    return 0;
}

wisp_job *wisp_registry_find(const wisp_registry *r, const char *key)
{
    wisp_registry_slot *s = lookup(r, key);
    return s ? s->job : NULL;
}

wisp_job *wisp_registry_remove(wisp_registry *r, const char *key)
{
    wisp_registry_slot *s = lookup(r, key);
    if (!s)
        return NULL;
    wisp_job *job = s->job;
    /* A tombstone keeps probe chains through this slot intact. The key
     * pointer dies with the job, so point it at a static string. */
    s->key = "";
    s->job = NULL;
    r->count--;
    return job;
}

void wisp_registry_each(const wisp_registry *r, void (*fn)(wisp_job *job, void *ud), void *ud)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].job)
            fn(r->slots[i].job, ud);
}
