/*
 * chat_tools.h - a chat reply's text to an assistant message: reasoning
 * (a <think> block) apart from the content, and tool calls in the formats
 * of the model families that define one (Hermes/Qwen <tool_call> JSON,
 * Llama 3.1 JSON, Mistral [TOOL_CALLS], functionary >>>name, gpt-oss harmony
 * channels). Text that
 * does not parse as a call stays content.
 */
#ifndef WISP_SERVE_CHAT_TOOLS_H
#define WISP_SERVE_CHAT_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

typedef struct wisp_chat_hint {
    bool tools;       /* the request defined tools (bare-JSON calls count only then) */
    bool functionary; /* the prompt ended in ">>>": the reply starts with a recipient */
} wisp_chat_hint;

/* {"role": "assistant", "content", "reasoning"?, "tool_calls"?} (new
 * reference); each call is {"type": "function", "function": {"name",
 * "arguments"}} with arguments an object when they are JSON. */
json_t *wisp_chat_parse_reply(const char *text, const wisp_chat_hint *hint);

#endif
