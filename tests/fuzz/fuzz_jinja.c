/*
 * fuzz_jinja.c - libFuzzer target for the chat-template interpreter.
 *
 * The input is a template, rendered against a fixed conversation (system,
 * user, assistant with a tool call, tool result; tools defined) under small
 * limits, so a runaway template ends on a limit quickly. The oracle, besides
 * the sanitizers: render returns 0 or an error with a message, never more
 * output than the limit allows, and everything is freed with the env.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"

static wisp_jv *msg(wisp_jinja_env *env, const char *role, const char *content)
{
    wisp_jv *m = wisp_jv_dict(env);
    wisp_jv_dict_set(env, m, "role", 4, wisp_jv_str(env, role, strlen(role)));
    wisp_jv_dict_set(env, m, "content", 7, wisp_jv_str(env, content, strlen(content)));
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wisp_jinja_limits lim = {
        .max_output = 1 << 20,
        .max_memory = 32 << 20,
        .max_steps = 200000,
        .max_depth = 16,
    };
    wisp_jinja_env *env = wisp_jinja_env_new(&lim);
    if (!env)
        return 0;
    wisp_jv *msgs = wisp_jv_list(env);
    wisp_jv_list_push(env, msgs, msg(env, "system", "Be brief."));
    wisp_jv_list_push(env, msgs, msg(env, "user", "Weather in Paris? \xc3\xa9\xe2\x82\xac"));
    wisp_jv *a = msg(env, "assistant", "");
    wisp_jv *call = wisp_jv_dict(env), *fn = wisp_jv_dict(env), *args = wisp_jv_dict(env);
    wisp_jv_dict_set(env, args, "city", 4, wisp_jv_str(env, "Paris", 5));
    wisp_jv_dict_set(env, fn, "name", 4, wisp_jv_str(env, "get_weather", 11));
    wisp_jv_dict_set(env, fn, "arguments", 9, args);
    wisp_jv_dict_set(env, call, "type", 4, wisp_jv_str(env, "function", 8));
    wisp_jv_dict_set(env, call, "function", 8, fn);
    wisp_jv *calls = wisp_jv_list(env);
    wisp_jv_list_push(env, calls, call);
    wisp_jv_dict_set(env, a, "tool_calls", 10, calls);
    wisp_jv_list_push(env, msgs, a);
    wisp_jv_list_push(env, msgs, msg(env, "tool", "{\"temp_c\": 18.5}"));
    wisp_jv *tools = wisp_jv_list(env);
    wisp_jv_list_push(env, tools, call);
    wisp_jinja_env_set(env, "messages", msgs);
    wisp_jinja_env_set(env, "tools", tools);
    wisp_jinja_env_set(env, "add_generation_prompt", wisp_jv_bool(env, true));
    wisp_jinja_env_set(env, "bos_token", wisp_jv_str(env, "<s>", 3));
    wisp_jinja_env_set(env, "eos_token", wisp_jv_str(env, "</s>", 4));
    wisp_jinja_env_set(env, "n", wisp_jv_int(env, 3));
    wisp_jinja_env_set(env, "x", wisp_jv_float(env, 0.1));
    wisp_jinja_env_set(env, "nothing", wisp_jv_none(env));
    wisp_jinja_env_set_now(env, 1767322800);
    wisp_buf out = WISP_BUF_INIT;
    wisp_err err = {0};
    int rc = wisp_jinja_render(env, (const char *)data, size, &out, &err);
    if (rc && (err.code == 0 || err.msg[0] == 0))
        abort();
    if (out.len > lim.max_output)
        abort();
    wisp_buf_free(&out);
    wisp_jinja_env_free(env);
    return 0;
}
