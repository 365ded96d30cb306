/*
 * test_chat_tools.c - a chat reply's text to the assistant message, on
 * fixed model outputs of each family with a tool-call format: Hermes/Qwen
 * <tool_call> JSON, Llama 3.1 bare JSON, Mistral [TOOL_CALLS] (list and
 * name[ARGS] forms), functionary >>>name; <think> reasoning apart; text
 * that only looks like a call stays content.
 */
#include "harness.h"

#include "serve/chat_tools.h"

static const char *content(const json_t *m)
{
    return json_string_value(json_object_get(m, "content"));
}

static void check_call(const json_t *m, size_t i, const char *name, const char *args_json)
{
    const json_t *calls = json_object_get(m, "tool_calls");
    REQUIRE(json_array_size(calls) > i);
    const json_t *c = json_array_get(calls, i);
    CHECK_EQ_STR(json_string_value(json_object_get(c, "type")), "function");
    const json_t *fn = json_object_get(c, "function");
    CHECK_EQ_STR(json_string_value(json_object_get(fn, "name")), name);
    json_t *want = json_loads(args_json, JSON_DECODE_ANY, NULL);
    REQUIRE(want);
    CHECK(json_equal(json_object_get(fn, "arguments"), want));
    json_decref(want);
}

static json_t *parse(const char *text, bool tools, bool functionary)
{
    wisp_chat_hint h = {.tools = tools, .functionary = functionary};
    json_t *m = wisp_chat_parse_reply(text, &h);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "role")), "assistant");
    return m;
}

TEST(chat_plain_text_is_content)
{
    json_t *m = parse("  Hello there.\n", true, false);
    CHECK_EQ_STR(content(m), "Hello there.");
    CHECK(json_object_get(m, "tool_calls") == NULL);
    CHECK(json_object_get(m, "reasoning") == NULL);
    json_decref(m);
}

TEST(chat_hermes_qwen_tool_calls)
{
    json_t *m = parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                      "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", "
                      "\"arguments\": {}}\n</tool_call>",
                      true, false);
    CHECK_EQ_STR(content(m), "Let me check.");
    CHECK_EQ_INT((int)json_array_size(json_object_get(m, "tool_calls")), 2);
    check_call(m, 0, "get_weather", "{\"city\": \"Paris\"}");
    check_call(m, 1, "get_time", "{}");
    json_decref(m);
}

TEST(chat_hermes_broken_json_stays_content)
{
    json_t *m = parse("<tool_call>\n{\"name\": \"get_weather\", \"argu\n</tool_call>", true, false);
    CHECK(json_object_get(m, "tool_calls") == NULL);
    CHECK(strstr(content(m), "<tool_call>") != NULL);
    json_decref(m);
}

TEST(chat_llama31_json_call)
{
    json_t *m =
        parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", true, false);
    CHECK_EQ_STR(content(m), "");
    check_call(m, 0, "get_weather", "{\"city\": \"Rome\"}");
    json_decref(m);
    m = parse("<|python_tag|>{\"name\": \"f\", \"parameters\": {\"x\": 1}}", true, false);
    check_call(m, 0, "f", "{\"x\": 1}");
    json_decref(m);
    /* without tools in the request, JSON is just content */
    m = parse("{\"name\": \"get_weather\", \"parameters\": {}}", false, false);
    CHECK(json_object_get(m, "tool_calls") == NULL);
    json_decref(m);
    /* JSON that is not a call stays content */
    m = parse("{\"answer\": 42}", true, false);
    CHECK(json_object_get(m, "tool_calls") == NULL);
    CHECK_EQ_STR(content(m), "{\"answer\": 42}");
    json_decref(m);
}

TEST(chat_mistral_tool_calls)
{
    json_t *m =
        parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, "
              "\"id\": \"abc123def\"}]",
              true, false);
    CHECK_EQ_STR(content(m), "");
    check_call(m, 0, "get_weather", "{\"city\": \"Oslo\"}");
    json_decref(m);
    m = parse("Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}[TOOL_CALLS]get_time[ARGS]{}",
              true, false);
    CHECK_EQ_STR(content(m), "Sure.");
    CHECK_EQ_INT((int)json_array_size(json_object_get(m, "tool_calls")), 2);
    check_call(m, 0, "get_weather", "{\"city\": \"Oslo\"}");
    check_call(m, 1, "get_time", "{}");
    json_decref(m);
}

TEST(chat_functionary_recipients)
{
    json_t *m = parse("all\nLet me look that up.>>>get_weather\n{\"city\": \"Lima\"}", true, true);
    CHECK_EQ_STR(content(m), "Let me look that up.");
    check_call(m, 0, "get_weather", "{\"city\": \"Lima\"}");
    json_decref(m);
    m = parse("all\nJust text.", true, true);
    CHECK_EQ_STR(content(m), "Just text.");
    CHECK(json_object_get(m, "tool_calls") == NULL);
    json_decref(m);
}

TEST(chat_think_block_is_reasoning)
{
    json_t *m = parse("<think>\nThe user greets.\n</think>\n\nHello!", false, false);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "reasoning")), "The user greets.");
    CHECK_EQ_STR(content(m), "Hello!");
    json_decref(m);
    /* the prompt opened the block: the reply starts inside it */
    m = parse("Thinking...\n</think>\nAnswer", false, false);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "reasoning")), "Thinking...");
    CHECK_EQ_STR(content(m), "Answer");
    json_decref(m);
    /* reasoning, then a call */
    m = parse("<think>need weather</think><tool_call>{\"name\": \"w\", \"arguments\": "
              "{}}</tool_call>",
              true, false);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "reasoning")), "need weather");
    check_call(m, 0, "w", "{}");
    json_decref(m);
}

TEST(chat_gpt_oss_harmony_channels)
{
    json_t *m = parse("<|channel|>analysis<|message|>User wants weather.<|end|><|start|>assistant"
                      "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
                      "{\"city\": \"Kyiv\"}",
                      true, false);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "reasoning")), "User wants weather.");
    CHECK_EQ_STR(content(m), "");
    check_call(m, 0, "get_weather", "{\"city\": \"Kyiv\"}");
    json_decref(m);
    m = parse("<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final"
              "<|message|>Hello!",
              false, false);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "reasoning")), "Simple.");
    CHECK_EQ_STR(content(m), "Hello!");
    CHECK(json_object_get(m, "tool_calls") == NULL);
    json_decref(m);
}
