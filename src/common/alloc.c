/* alloc.c - allocation wrappers and the fault injector: see alloc.h. */
#include "common/alloc.h"

#include <jansson.h>
#include <stdatomic.h>

/* This file calls the C library itself. */
#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef strdup
#undef strndup

static atomic_long fail_at; /* 0: no failure armed */
static atomic_long count;
static atomic_bool injected;

static bool fail_now(void)
{
#ifdef WISP_FAULT_INJECTION
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    long k = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed) + 1;
    if (at != 0 && k == at) {
        atomic_store(&injected, true);
        return true;
    }
#endif
    return false;
}

void *wisp_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }
void *wisp_calloc(size_t n, size_t size) { return fail_now() ? NULL : calloc(n, size); }
void *wisp_realloc(void *p, size_t n) { return fail_now() ? NULL : realloc(p, n); }
void *wisp_aligned_alloc(size_t align, size_t n)
{
    return fail_now() ? NULL : aligned_alloc(align, n);
}
char *wisp_strdup(const char *s) { return fail_now() ? NULL : strdup(s); }
char *wisp_strndup(const char *s, size_t n) { return fail_now() ? NULL : strndup(s, n); }

bool wisp_fault_enabled(void)
{
#ifdef WISP_FAULT_INJECTION
    return true;
#else
    return false;
#endif
}

void wisp_fault_arm(long n)
{
#ifdef WISP_FAULT_INJECTION
    /* jansson allocates through its own hooks: point them here too. Its
     * memory is the C library's either way, so switching is safe. */
    json_set_alloc_funcs(wisp_malloc, free);
#endif
    atomic_store(&fail_at, 0);
    atomic_store(&count, 0);
    atomic_store(&injected, false);
    atomic_store(&fail_at, n);
}

long wisp_fault_count(void) { return atomic_load(&count); }
bool wisp_fault_injected(void) { return atomic_load(&injected); }
