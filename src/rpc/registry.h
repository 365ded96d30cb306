/*
 * registry.h - the requests in flight, by id.
 *
 * Keys are ids serialized as JSON ("7", "\"abc\""), so the string "1" and
 * the number 1 are different requests, as JSON-RPC says. Open addressing
 * with linear probing and tombstones; it grows at 50% load. Loop thread
 * only.
 */
#ifndef WISP_RPC_REGISTRY_H
#define WISP_RPC_REGISTRY_H

#include <stddef.h>

#include "rpc/job.h"

typedef struct wisp_registry_slot {
    const char *key; /* borrowed from the job; NULL = empty */
    wisp_job *job;   /* NULL with a key = tombstone */
} wisp_registry_slot;

typedef struct wisp_registry {
    wisp_registry_slot *slots;
    size_t cap;   /* a power of two, or 0 */
    size_t count; /* live entries */
    size_t used;  /* live entries + tombstones */
} wisp_registry;

void wisp_registry_init(wisp_registry *r);
void wisp_registry_free(wisp_registry *r);

/* Adds job under key (the job must keep key alive while registered).
 * Returns 0, WISP_E_BUSY when key is already in flight, or WISP_E_NOMEM. */
int wisp_registry_add(wisp_registry *r, const char *key, wisp_job *job);
wisp_job *wisp_registry_find(const wisp_registry *r, const char *key);
/* Removes key; returns its job or NULL. */
wisp_job *wisp_registry_remove(wisp_registry *r, const char *key);

/* Calls fn on every registered job (fn must not add or remove). */
void wisp_registry_each(const wisp_registry *r, void (*fn)(wisp_job *job, void *ud), void *ud);

#endif
