/*
 * buf.h - a growable byte buffer, the one every module appends text or
 * bytes with.
 *
 * Used where bytes arrive in pieces of unknown size (the framer's current
 * message, detokenized text, normalized input, infill prompts). Growth
 * doubles, so appending n bytes in pieces costs O(n); the caller bounds the
 * size (buffers here never grow past what their owner allows). After every
 * append the bytes are followed by a NUL (not counted in len), so a buffer
 * of text is also a C string; an empty, never-written buffer has data NULL.
 */
#ifndef WISP_BUF_H
#define WISP_BUF_H

#include <stddef.h>

typedef struct wisp_buf {
    char *data;
    size_t len;
    size_t cap;
} wisp_buf;

/* clang-format off */
#define WISP_BUF_INIT {NULL, 0, 0}
/* clang-format on */

/* Makes room for `extra` more bytes (and the NUL after them). Returns 0 or
 * WISP_E_NOMEM (unchanged). */
int wisp_buf_reserve(wisp_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or WISP_E_NOMEM (unchanged). */
int wisp_buf_append(wisp_buf *b, const void *data, size_t n);
/* Appends a C string without its NUL. Returns 0 or WISP_E_NOMEM. */
int wisp_buf_append_str(wisp_buf *b, const char *s);
/* Empties the buffer, keeping its memory (and its NUL). */
void wisp_buf_clear(wisp_buf *b);
/* Frees the memory and resets to empty. */
void wisp_buf_free(wisp_buf *b);

#endif
