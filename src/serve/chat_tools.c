/*
 * chat_tools.c - parsing a chat reply: see chat_tools.h.
 */
#include "serve/chat_tools.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* s[0..n) with surrounding whitespace removed, as a JSON string. */
static json_t *trimmed(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return json_stringn(s, n);
}

static json_t *call(const char *name, size_t name_len, json_t *args)
{
    json_t *fn = json_pack("{s:s%, s:o}", "name", name, name_len, "arguments", args);
    return json_pack("{s:s, s:o}", "type", "function", "function", fn);
}

/* One JSON value at s (n bytes) and where it ends (*used). */
static json_t *json_at(const char *s, size_t n, size_t *used)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &e);
    if (j)
        *used = (size_t)e.position;
    return j;
}

/* {"name": ..., "arguments"|"parameters": ...} to a call, or NULL. */
static json_t *call_from_object(const json_t *o)
{
    const json_t *name = json_object_get(o, "name");
    if (!json_is_string(name))
        return NULL;
    json_t *args = json_object_get(o, "arguments");
    if (!args)
        args = json_object_get(o, "parameters");
    if (json_is_string(args)) {
        json_t *parsed = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
        args = parsed ? parsed : json_incref(args);
    } else {
        args = args ? json_incref(args) : json_object();
    }
    return call(json_string_value(name), json_string_length(name), args);
}

/* <tool_call>{json}</tool_call> blocks (Hermes, Qwen 2.5/3). */
static int parse_hermes(const char *text, json_t *calls, json_t **content)
{
    const char *open = "<tool_call>", *close = "</tool_call>";
    if (!strstr(text, open))
        return 0;
    json_t *rest = json_string("");
    const char *p = text;
    int found = 0;
    for (;;) {
        const char *a = strstr(p, open);
        if (!a)
            break;
        const char *body = a + strlen(open);
        const char *b = strstr(body, close);
        size_t blen = b ? (size_t)(b - body) : strlen(body);
        json_t *o = json_loadb(body, blen, 0, NULL);
        json_t *c = o ? call_from_object(o) : NULL;
        json_decref(o);
        if (!c)
            break; /* not a call: leave the text as it is from here */
        json_array_append_new(calls, c);
        found++;
        char *prefix = NULL;
        size_t keep = (size_t)(a - p);
        if (keep) {
            size_t old = json_string_length(rest);
            prefix = malloc(old + keep + 1);
            memcpy(prefix, json_string_value(rest), old);
            memcpy(prefix + old, p, keep);
            json_string_setn(rest, prefix, old + keep);
            free(prefix);
        }
        p = b ? b + strlen(close) : body + blen;
    }
    if (found) {
        size_t old = json_string_length(rest), tail = strlen(p);
        char *all = malloc(old + tail + 1);
        memcpy(all, json_string_value(rest), old);
        memcpy(all + old, p, tail);
        json_decref(*content);
        *content = trimmed(all, old + tail);
        free(all);
    }
    json_decref(rest);
    return found;
}

/* [TOOL_CALLS] followed by a JSON list (Mistral v3, Nemo) or by
 * name[ARGS]{json} per call (Mistral Small 3.2, Devstral). */
static int parse_mistral(const char *text, json_t *calls, json_t **content)
{
    const char *tag = "[TOOL_CALLS]";
    const char *a = strstr(text, tag);
    if (!a)
        return 0;
    int found = 0;
    const char *p = a;
    while (p && !strncmp(p, tag, strlen(tag))) {
        p = skip_ws(p + strlen(tag));
        if (*p == '[') {
            size_t used = 0;
            json_t *list = json_at(p, strlen(p), &used);
            size_t i;
            json_t *o;
            if (!json_is_array(list)) {
                json_decref(list);
                break;
            }
            json_array_foreach(list, i, o)
            {
                json_t *c = call_from_object(o);
                if (c) {
                    json_array_append_new(calls, c);
                    found++;
                }
            }
            json_decref(list);
            p = skip_ws(p + used);
        } else {
            const char *args = strstr(p, "[ARGS]");
            if (!args)
                break;
            const char *name = p;
            size_t name_len = (size_t)(args - p);
            args += strlen("[ARGS]");
            size_t used = 0;
            json_t *j = json_at(args, strlen(args), &used);
            if (!j)
                break;
            json_array_append_new(calls, call(name, name_len, j));
            found++;
            p = skip_ws(args + used);
        }
    }
    if (found) {
        json_decref(*content);
        *content = trimmed(text, (size_t)(a - text));
    }
    return found;
}

/* functionary v3.2: the reply continues a ">>>": "all\ntext" is content,
 * "name\n{json}" a call; further parts start with ">>>". */
static int parse_functionary(const char *text, json_t *calls, json_t **content)
{
    int found = 0;
    size_t cap = strlen(text) + 1, clen = 0;
    char *out = malloc(cap);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *next = strstr(p, ">>>");
        if (!nl || (next && next < nl))
            break;
        size_t name_len = (size_t)(nl - p);
        const char *body = nl + 1;
        const char *end = strstr(body, ">>>");
        size_t blen = end ? (size_t)(end - body) : strlen(body);
        if (name_len == 3 && !strncmp(p, "all", 3)) {
            memcpy(out + clen, body, blen);
            clen += blen;
        } else {
            json_t *j = json_loadb(body, blen, JSON_DECODE_ANY, NULL);
            json_array_append_new(calls, call(p, name_len, j ? j : trimmed(body, blen)));
            found++;
        }
        p = end ? end + 3 : body + blen;
    }
    if (p == text) {
        free(out);
        return 0;
    }
    json_decref(*content);
    *content = trimmed(out, clen);
    free(out);
    return found ? found : -1;
}

/* Llama 3.1: the whole reply is {"name": ..., "parameters": {...}}
 * (optionally after <|python_tag|>, several separated by ';'). */
static int parse_bare_json(const char *text, json_t *calls, json_t **content)
{
    const char *p = skip_ws(text);
    if (!strncmp(p, "<|python_tag|>", 14))
        p = skip_ws(p + 14);
    if (*p != '{')
        return 0;
    json_t *found = json_array();
    while (*p == '{') {
        size_t used = 0;
        json_t *o = json_at(p, strlen(p), &used);
        json_t *c = json_is_object(o) ? call_from_object(o) : NULL;
        json_decref(o);
        if (!c) {
            json_decref(found);
            return 0;
        }
        json_array_append_new(found, c);
        p = skip_ws(p + used);
        if (*p == ';')
            p = skip_ws(p + 1);
    }
    if (*p) {
        json_decref(found);
        return 0;
    }
    int n = (int)json_array_size(found);
    json_array_extend(calls, found);
    json_decref(found);
    json_decref(*content);
    *content = json_string("");
    return n;
}

/* gpt-oss (harmony): messages "<|channel|>CH[ to=functions.NAME]
 * [<|constrain|>json]<|message|>BODY" ended by <|end|>, <|call|> or
 * <|return|>, each after <|start|>ROLE but the first. analysis is reasoning,
 * final the content, a message to=functions.NAME a call. */
static int parse_harmony(const char *text, json_t *calls, json_t **content, json_t *msg)
{
    if (!strstr(text, "<|channel|>") || !strstr(text, "<|message|>"))
        return 0;
    json_t *reasoning = json_string(""), *final = json_string("");
    const char *p = text;
    int found = 0;
    bool any = false;
    while ((p = strstr(p, "<|channel|>"))) {
        const char *hdr = p + 11;
        const char *body = strstr(hdr, "<|message|>");
        if (!body)
            break;
        size_t hlen = (size_t)(body - hdr);
        body += 11;
        const char *end = body;
        while (*end && strncmp(end, "<|end|>", 7) && strncmp(end, "<|call|>", 8) &&
               strncmp(end, "<|return|>", 10) && strncmp(end, "<|start|>", 9))
            end++;
        size_t blen = (size_t)(end - body);
        const char *to = NULL;
        for (size_t i = 0; i + 13 <= hlen; i++)
            if (!strncmp(hdr + i, "to=functions.", 13)) {
                to = hdr + i + 13;
                break;
            }
        any = true;
        if (to) {
            size_t nl = 0;
            while (to + nl < body - 11 && !isspace((unsigned char)to[nl]) && to[nl] != '<')
                nl++;
            json_t *j = json_loadb(body, blen, JSON_DECODE_ANY, NULL);
            json_array_append_new(calls, call(to, nl, j ? j : trimmed(body, blen)));
            found++;
        } else {
            json_t *dst = !strncmp(hdr, "analysis", 8) ? reasoning : final;
            size_t old = json_string_length(dst);
            char *joined = malloc(old + blen + 1);
            memcpy(joined, json_string_value(dst), old);
            memcpy(joined + old, body, blen);
            json_string_setn(dst, joined, old + blen);
            free(joined);
        }
        p = end;
    }
    if (any) {
        if (json_string_length(reasoning))
            json_object_set_new(msg, "reasoning",
                                trimmed(json_string_value(reasoning),
                                        json_string_length(reasoning)));
        json_decref(*content);
        *content = trimmed(json_string_value(final), json_string_length(final));
    }
    json_decref(reasoning);
    json_decref(final);
    return any ? (found ? found : -1) : 0;
}

json_t *wisp_chat_parse_reply(const char *text, const wisp_chat_hint *hint)
{
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    const char *body = text;
    /* A reasoning block: <think>...</think>, or (when the prompt opened it)
     * text up to a lone </think>. */
    const char *end = strstr(text, "</think>");
    if (end) {
        const char *start = skip_ws(text);
        if (!strncmp(start, "<think>", 7))
            start += 7;
        if (start <= end) {
            json_object_set_new(msg, "reasoning", trimmed(start, (size_t)(end - start)));
            body = end + strlen("</think>");
        }
    }
    json_t *content = trimmed(body, strlen(body));
    json_t *calls = json_array();
    const char *c = json_string_value(content);
    char *copy = strdup(c);
    int n = parse_harmony(copy, calls, &content, msg);
    if (!n)
        n = parse_hermes(copy, calls, &content);
    if (!n)
        n = parse_mistral(copy, calls, &content);
    if (!n && hint && hint->functionary)
        n = parse_functionary(copy, calls, &content);
    if (!n && hint && hint->tools)
        n = parse_bare_json(copy, calls, &content);
    free(copy);
    json_object_set_new(msg, "content", content);
    if (json_array_size(calls))
        json_object_set_new(msg, "tool_calls", calls);
    else
        json_decref(calls);
    return msg;
}
