/*
 * stop.h - stop strings matched across token boundaries.
 *
 * Generated text arrives one token piece at a time, and a stop string may
 * be split over several pieces ("\n\n" as "\n" + "\n", "</s" + ">"). The
 * matcher holds back the longest tail of what it has seen that could still
 * begin a stop string, and releases only text proven not to be part of
 * one. When a stop string completes, the text before it is released, the
 * stop string and everything after it are dropped, and the matcher is done.
 *
 * Released text is always whole UTF-8: a character split across pieces is
 * held until it completes, and bytes that can never form a character are
 * replaced by U+FFFD, so every release can go straight into a JSON string.
 */
#ifndef WISP_STOP_H
#define WISP_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct wisp_stop wisp_stop;

/* What one call released. text stays valid until the next call on the
 * matcher. stop is the index of the stop string that matched, or -1. */
typedef struct wisp_stop_out {
    const char *text;
    size_t len;
    int stop;
} wisp_stop_out;

/* Copies the stop strings (n may be 0: then only the UTF-8 holding runs).
 * Returns 0, WISP_E_INVALID for an empty stop string, or WISP_E_NOMEM. */
int wisp_stop_create(const char *const *stops, int n, wisp_stop **out, wisp_err *err);
void wisp_stop_free(wisp_stop *m);

/* Feeds a token's text. After a match every further feed releases nothing.
 * Returns 0 or WISP_E_NOMEM. */
int wisp_stop_feed(wisp_stop *m, const char *piece, size_t len, wisp_stop_out *out, wisp_err *err);

/* At the end of generation (length, end-of-generation token): releases the
 * text still held (an unfinished UTF-8 character becomes U+FFFD). */
int wisp_stop_flush(wisp_stop *m, wisp_stop_out *out, wisp_err *err);

/* True once a stop string has matched. */
bool wisp_stop_matched(const wisp_stop *m);

#endif
