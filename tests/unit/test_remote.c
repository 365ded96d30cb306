/*
 * test_remote.c - the remote backend's JSON-free and mapping parts: the
 * server-sent events parser, the request and answer mapping of the three
 * wire APIs, and the router's hashing, failover and balancing.
 */
#include <jansson.h>
#include <string.h>

#include "harness.h"
#include "remote/map.h"
#include "remote/router.h"
#include "remote/sse.h"

/* ---------------------------------------------------------------- SSE */

typedef struct sse_log {
    char names[8][32];
    char data[8][128];
    int n;
    int stop_after; /* 0: never */
} sse_log;

static int log_event(void *ud, const char *name, const char *data, size_t len)
{
    sse_log *l = ud;
    if (l->n < 8) {
        snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
        snprintf(l->data[l->n], sizeof l->data[0], "%.*s", (int)len, data);
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after ? 42 : 0;
}

static void feed_all(wisp_sse *p, const char *s, size_t step)
{
    wisp_err err = {0};
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += step)
        CHECK_EQ_INT(wisp_sse_feed(p, s + i, i + step <= n ? step : n - i, &err), 0);
}

TEST(sse_events_split_anywhere)
{
    const char *stream = "data: {\"a\":1}\n\n: a comment\nevent: done\ndata: x\ndata: y\n\n"
                         "id: 7\r\nretry: 10\r\ndata:no space\r\n\r\ndata: [DONE]\n\n";
    for (size_t step = 1; step <= strlen(stream); step++) {
        sse_log l = {0};
        wisp_sse p;
        wisp_sse_init(&p, 1024, log_event, &l);
        feed_all(&p, stream, step);
        CHECK(!wisp_sse_finish(&p));
        CHECK_EQ_INT(l.n, 4);
        CHECK_EQ_STR(l.names[0], "message");
        CHECK_EQ_STR(l.data[0], "{\"a\":1}");
        CHECK_EQ_STR(l.names[1], "done");
        CHECK_EQ_STR(l.data[1], "x\ny");     /* data lines join with LF */
        CHECK_EQ_STR(l.names[2], "message"); /* the name is per event */
        CHECK_EQ_STR(l.data[2], "no space");
        CHECK_EQ_STR(l.data[3], "[DONE]");
        wisp_sse_free(&p);
    }
}

TEST(sse_cr_only_lines_and_empty_data)
{
    sse_log l = {0};
    wisp_sse p;
    wisp_sse_init(&p, 1024, log_event, &l);
    feed_all(&p, "data\r\rdata: a\r\r", 1);
    CHECK_EQ_INT(l.n, 2);
    CHECK_EQ_STR(l.data[0], "");
    CHECK_EQ_STR(l.data[1], "a");
    wisp_sse_free(&p);
}

TEST(sse_unfinished_event_is_dropped_and_reported)
{
    sse_log l = {0};
    wisp_sse p;
    wisp_sse_init(&p, 1024, log_event, &l);
    feed_all(&p, "data: half", 3);
    CHECK_EQ_INT(l.n, 0);
    CHECK(wisp_sse_finish(&p));
    /* Garbage without fields is no event either. */
    feed_all(&p, "this is not an event stream\n\n", 5);
    CHECK_EQ_INT(l.n, 0);
    wisp_sse_free(&p);
}

TEST(sse_limits_and_callback_stop)
{
    sse_log l = {0};
    wisp_sse p;
    wisp_sse_init(&p, 16, log_event, &l);
    wisp_err err = {0};
    const char *big = "data: 0123456789abcdefghij\n\n";
    CHECK_EQ_INT(wisp_sse_feed(&p, big, strlen(big), &err), WISP_E_TOO_LARGE);
    CHECK(strstr(err.msg, "16 bytes") != NULL);
    wisp_sse_free(&p);

    sse_log s = {.stop_after = 1};
    wisp_sse_init(&p, 1024, log_event, &s);
    CHECK_EQ_INT(wisp_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, &err), 42);
    CHECK_EQ_INT(s.n, 1);
    wisp_sse_free(&p);
}

/* ---------------------------------------------------------------- mapping */

TEST(map_sampling_names_per_api)
{
    json_t *p = json_pack("{s:i, s:f, s:f, s:i, s:[s], s:[[i, b]], s:i, s:b}", "max_tokens", 7,
                          "temperature", 0.5, "repeat_penalty", 1.1, "seed", 3, "stop", "\n",
                          "logit_bias", 13, 0, "priority", 5, "stream", 0);
    json_t *oai = json_object(), *lcpp = json_object();
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_OAI_COMPLETION, p, oai, &err), 0);
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_LCPP, p, lcpp, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(oai, "max_tokens")), 7);
    CHECK_EQ_INT(json_integer_value(json_object_get(lcpp, "n_predict")), 7);
    CHECK(json_object_get(oai, "repetition_penalty") && !json_object_get(oai, "repeat_penalty"));
    CHECK(json_object_get(lcpp, "repeat_penalty") != NULL);
    /* A ban is -100 in OpenAI's {"id": bias}; llama.cpp takes wisp's pairs. */
    CHECK_NEAR(json_number_value(json_object_get(json_object_get(oai, "logit_bias"), "13")), -100,
               1e-9);
    CHECK(json_is_array(json_object_get(lcpp, "logit_bias")));
    /* wisp's own fields stay here; the servers always stream. */
    CHECK(!json_object_get(oai, "priority") && !json_object_get(lcpp, "priority"));
    CHECK(json_is_true(json_object_get(oai, "stream")));
    CHECK(json_is_true(json_object_get(lcpp, "stream")));
    CHECK(json_object_get(oai, "stream_options") != NULL);
    json_decref(p);
    json_decref(oai);
    json_decref(lcpp);
}

TEST(map_refuses_fields_the_api_lacks)
{
    json_t *p = json_pack("{s:f}", "typical_p", 0.5);
    json_t *b = json_object();
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_OAI_CHAT, p, b, &err), WISP_E_INVALID);
    CHECK(strstr(err.msg, "typical_p") && strstr(err.msg, "chat/completions"));
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_LCPP, p, b, &err), 0);
    json_decref(p);
    /* n_probs 0 asks for nothing; more is refused everywhere. */
    p = json_pack("{s:i}", "n_probs", 0);
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_LCPP, p, b, &err), 0);
    json_object_set_new(p, "n_probs", json_integer(3));
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_LCPP, p, b, &err), WISP_E_INVALID);
    /* Without max_tokens wisp's default goes, not the server's 16. */
    json_t *e = json_object(), *out = json_object();
    CHECK_EQ_INT(wisp_remote_map_sampling(WISP_RAPI_OAI_COMPLETION, e, out, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(out, "max_tokens")),
                 WISP_REMOTE_DEFAULT_MAX_TOKENS);
    json_decref(e);
    json_decref(out);
    json_decref(p);
    json_decref(b);
}

static json_t *parse(const char *s)
{
    json_t *v = json_loads(s, 0, NULL);
    CHECK(v != NULL);
    return v;
}

TEST(map_parses_events_of_each_api)
{
    wisp_remote_piece pc;
    wisp_err err = {0};
    json_t *v = parse("{\"content\":\" there\",\"tokens\":[383],\"stop\":false}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_LCPP, v, false, &pc, &err), 0);
    CHECK_EQ_INT((int)pc.len, 6);
    CHECK_EQ_INT((int)json_array_size(pc.tokens), 1);
    CHECK(pc.finish == NULL);
    json_decref(v);
    v = parse("{\"content\":\"\",\"stop\":true,\"stop_type\":\"limit\",\"tokens_evaluated\":5,"
              "\"tokens_predicted\":8,\"timings\":{\"cache_n\":4}}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_LCPP, v, false, &pc, &err), 0);
    CHECK_EQ_STR(pc.finish, "length");
    CHECK_EQ_INT((int)pc.prompt_tokens, 5);
    CHECK_EQ_INT((int)pc.cached_tokens, 4);
    json_decref(v);
    v = parse("{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"}]}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_OAI_COMPLETION, v, false, &pc, &err), 0);
    CHECK_EQ_STR(pc.finish, "eog");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_OAI_COMPLETION, v, true, &pc, &err), 0);
    CHECK_EQ_STR(pc.finish, "stop");
    json_decref(v);
    v = parse("{\"choices\":[{\"delta\":{\"content\":\"hi\",\"reasoning_content\":\"hm\","
              "\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\"}}]}}],"
              "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
              "\"prompt_tokens_details\":{\"cached_tokens\":8}}}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_OAI_CHAT, v, false, &pc, &err), 0);
    CHECK_EQ_INT((int)pc.len, 2);
    CHECK_EQ_INT((int)pc.reasoning_len, 2);
    CHECK(pc.tool_calls != NULL);
    CHECK_EQ_INT((int)pc.cached_tokens, 8);
    json_decref(v);
    v = parse("{\"error\":{\"message\":\"boom\"}}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_OAI_CHAT, v, false, &pc, &err), 0);
    CHECK_EQ_STR(pc.error, "boom");
    json_decref(v);
    v = parse("{\"unexpected\":1}");
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_OAI_COMPLETION, v, false, &pc, &err),
                 WISP_E_REMOTE);
    CHECK_EQ_INT(wisp_remote_parse_event(WISP_RAPI_LCPP, v, false, &pc, &err), WISP_E_REMOTE);
    json_decref(v);
}

/* ---------------------------------------------------------------- router */

TEST(router_same_key_same_server_and_failover_moves_only_its_keys)
{
    wisp_router *r;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_router_create(4, 1000, &r, &err), 0);
    int home[200], count[4] = {0};
    for (uint64_t k = 0; k < 200; k++) {
        home[k] = wisp_router_pick(r, true, k * 7919, NULL, 0);
        CHECK(home[k] >= 0 && home[k] < 4);
        CHECK_EQ_INT(wisp_router_pick(r, true, k * 7919, NULL, 0), home[k]);
        wisp_router_done(r, home[k], true, false, false, 1, 0);
        wisp_router_done(r, home[k], true, false, false, 1, 0);
        count[home[k]]++;
    }
    for (int i = 0; i < 4; i++)
        CHECK(count[i] > 20); /* spread over every server */
    /* Server 2 fails: its keys move, every other key stays. */
    int s = wisp_router_pick(r, true, 0, NULL, 0);
    wisp_router_done(r, s, false, true, false, -1, 0);
    for (uint64_t k = 0; k < 200; k++) {
        int now = wisp_router_pick(r, true, k * 7919, NULL, 10);
        if (home[k] != s)
            CHECK_EQ_INT(now, home[k]);
        else
            CHECK(now != s);
        wisp_router_done(r, now, true, false, false, 1, 10);
    }
    wisp_router_server_stats st;
    wisp_router_stats(r, s, 10, &st);
    CHECK(!st.up && st.failures == 1);
    /* After the back-off it is tried again and its keys come back. */
    uint64_t k0 = 0;
    while (home[k0] != s)
        k0++;
    CHECK_EQ_INT(wisp_router_pick(r, true, k0 * 7919, NULL, 2000), s);
    wisp_router_free(r);
}

TEST(router_least_in_flight_exclude_and_all_down)
{
    wisp_router *r;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_router_create(3, 1000, &r, &err), 0);
    int a = wisp_router_pick(r, false, 0, NULL, 0);
    int b = wisp_router_pick(r, false, 0, NULL, 0);
    int c = wisp_router_pick(r, false, 0, NULL, 0);
    CHECK(a != b && b != c && a != c); /* one each */
    wisp_router_done(r, b, true, false, false, 5, 0);
    CHECK_EQ_INT(wisp_router_pick(r, false, 0, NULL, 0), b);
    bool ex[3] = {true, true, true};
    CHECK_EQ_INT(wisp_router_pick(r, false, 0, ex, 0), -1);
    ex[1] = false;
    CHECK_EQ_INT(wisp_router_pick(r, true, 99, ex, 0), 1);
    /* Every server down: the one whose back-off ends first is tried. */
    wisp_router_done(r, 0, false, true, false, -1, 0);
    wisp_router_done(r, 1, false, true, false, -1, 100);
    wisp_router_done(r, 2, false, true, false, -1, 200);
    CHECK_EQ_INT(wisp_router_pick(r, true, 5, NULL, 300), 0);
    wisp_router_free(r);
}

TEST(router_keys)
{
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = i;
    uint64_t k1, k2;
    CHECK(!wisp_router_key_tokens(ids, 63, 64, 1, &k1)); /* not one whole block */
    CHECK(wisp_router_key_tokens(ids, 64, 64, 1, &k1));
    CHECK(wisp_router_key_tokens(ids, 200, 64, 1, &k2));
    CHECK(k1 == k2); /* the same document start, whatever follows */
    ids[10] = 999;
    CHECK(wisp_router_key_tokens(ids, 200, 64, 1, &k2));
    CHECK(k1 != k2);
    CHECK(!wisp_router_key_bytes("", 0, 10, &k1));
    CHECK(wisp_router_key_bytes("abcdefXYZ", 9, 6, &k1));
    CHECK(wisp_router_key_bytes("abcdef123", 9, 6, &k2));
    CHECK(k1 == k2);
}
