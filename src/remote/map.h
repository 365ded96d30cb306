/*
 * map.h - wisp's requests as the remote APIs spell them, and their answers
 * back as pieces.
 *
 * Three wire APIs: OpenAI's completions and chat completions (vLLM, SGLang,
 * TGI, llama-server's /v1) and llama.cpp's native /completion and /infill.
 * Sampling fields map by name through one table; a field the API has no
 * counterpart for is refused with an error naming the field and the API,
 * never silently dropped.
 */
#ifndef WISP_REMOTE_MAP_H
#define WISP_REMOTE_MAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

typedef enum wisp_remote_api {
    WISP_RAPI_OAI_COMPLETION = 0, /* /v1/completions */
    WISP_RAPI_OAI_CHAT,           /* /v1/chat/completions */
    WISP_RAPI_LCPP,               /* /completion and /infill */
} wisp_remote_api;

const char *wisp_remote_api_name(wisp_remote_api api);

/* wisp's default for max_tokens (servers default to as little as 16). */
#define WISP_REMOTE_DEFAULT_MAX_TOKENS 256

/* Adds the sampling fields of params (generate/infill/chat params, already
 * type-checked) to body, always with streaming on. Returns 0, or
 * WISP_E_INVALID with err naming the refused field and the API. */
int wisp_remote_map_sampling(wisp_remote_api api, const json_t *params, json_t *body,
                             wisp_err *err);

/* One streamed event (or a whole answer), decoded. Pointers borrow from
 * the event. Counts are -1 where the event has none. */
typedef struct wisp_remote_piece {
    const char *text; /* generated text (chat: the content delta) */
    size_t len;
    const char *reasoning; /* chat: the reasoning delta */
    size_t reasoning_len;
    const json_t *tokens;     /* the piece's token ids (llama.cpp), or NULL */
    const json_t *tool_calls; /* chat: tool-call deltas, or NULL */
    const char *finish;       /* wisp's finish_reason once the server ended, else NULL */
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    const char *error; /* the server reported an error inside the stream */
} wisp_remote_piece;

/* had_stops: the request had stop strings (OpenAI's "stop" then means a
 * stop string rather than the end of generation). Returns 0, or
 * WISP_E_REMOTE when the event is not the API's shape. */
int wisp_remote_parse_event(wisp_remote_api api, const json_t *ev, bool had_stops,
                            wisp_remote_piece *out, wisp_err *err);

#endif
