/*
 * jsonutil.h - small jansson helpers the RPC layer needs in several places.
 */
#ifndef WISP_RPC_JSONUTIL_H
#define WISP_RPC_JSONUTIL_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string from bytes that may not be valid UTF-8 (messages quoting
 * input, truncated text): invalid sequences become U+FFFD. Never NULL
 * unless out of memory. */
json_t *wisp_json_string_lossy(const char *s, size_t len);

/* Serializes a message compactly (no newlines: safe for ndjson framing).
 * Returns a malloc'd string and its length, or NULL. */
char *wisp_json_dump(const json_t *msg, size_t *len);

#endif
