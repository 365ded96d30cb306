/*
 * panic.h - broken invariants (programming errors, never user input).
 *
 * User input, resource limits and I/O failures are wisp_err values; an
 * assertion here means wisp itself is wrong, so it prints file:line and
 * aborts, which sanitizers and core dumps turn into a useful report.
 */
#ifndef WISP_PANIC_H
#define WISP_PANIC_H

#include <stdio.h>
#include <stdlib.h>

#define WISP_PANIC(...)                                                \
    do {                                                               \
        fprintf(stderr, "wisp: panic at %s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                                  \
        fputc('\n', stderr);                                           \
        abort();                                                       \
    } while (0)

#define WISP_ASSERT(cond)                              \
    do {                                               \
        if (!(cond))                                   \
            WISP_PANIC("assertion failed: %s", #cond); \
    } while (0)

#endif
