/*
 * alloc.h - the one place wisp's heap allocations go through, so a test can
 * make any one of them fail (sqlite's fault simulation, beanstalkd's
 * falloc).
 *
 * In builds with WISP_FAULT_INJECTION (SANITIZE=1 and FAULT=1 builds) the
 * Makefile force-includes this header into every wisp source file: the
 * macros below then route malloc, calloc, realloc, aligned_alloc, strdup
 * and strndup through wisp_malloc and friends, and jansson's allocations
 * follow once the fault injector is armed (json_set_alloc_funcs). Other
 * builds compile the calls unchanged. The system headers are included
 * before the macros are defined, so their declarations stay as they are.
 *
 * A test arms the injector with wisp_fault_arm(n): the n-th allocation from
 * then on (on any thread) returns NULL, once; everything else succeeds.
 * Counting alone (n = 0 after wisp_fault_arm(0)) tells the test how many
 * allocations a path makes, so it can walk n = 1..K over the path and
 * require that each failure comes back as an error value, with nothing
 * leaked (the sanitizers check that).
 */
#ifndef WISP_COMMON_ALLOC_H
#define WISP_COMMON_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void *wisp_malloc(size_t n);
void *wisp_calloc(size_t n, size_t size);
void *wisp_realloc(void *p, size_t n);
void *wisp_aligned_alloc(size_t align, size_t n);
char *wisp_strdup(const char *s);
char *wisp_strndup(const char *s, size_t n);

/* True in builds that route allocations through here. */
bool wisp_fault_enabled(void);
/* Restarts the count; the nth allocation from now fails (n >= 1), or none
 * (n = 0: count only). */
void wisp_fault_arm(long n);
/* Allocations counted since the last wisp_fault_arm. */
long wisp_fault_count(void);
/* True once the armed failure was handed out. */
bool wisp_fault_injected(void);

#ifdef WISP_FAULT_INJECTION
#define malloc(n)           wisp_malloc(n)
#define calloc(n, s)        wisp_calloc(n, s)
#define realloc(p, n)       wisp_realloc(p, n)
#define aligned_alloc(a, n) wisp_aligned_alloc(a, n)
#define strdup(s)           wisp_strdup(s)
#define strndup(s, n)       wisp_strndup(s, n)
#endif

#endif
