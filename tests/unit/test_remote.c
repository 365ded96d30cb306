/*
 * test_remote.c - the remote backend's JSON-free and mapping parts: the
 * server-sent events parser, the request and answer mapping of the three
 * wire APIs, the router's hashing, failover and balancing, and the HTTP
 * client's shutdown.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "remote/http.h"
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

/* Each stream is fed in pieces of every size from 1 byte to the whole:
 * what comes out may not depend on where the network cut it. */
static const struct sse_case {
    const char *what;
    const char *stream;
    int n;               /* events */
    const char *name[4]; /* each event's name */
    const char *data[4]; /* and data */
    bool pending;        /* wisp_sse_finish reports an event cut short */
} sse_cases[] = {
    {"fields, a comment, CRLF ends and [DONE]",
     "data: {\"a\":1}\n\n: a comment\nevent: done\ndata: x\ndata: y\n\n"
     "id: 7\r\nretry: 10\r\ndata:no space\r\n\r\ndata: [DONE]\n\n",
     4,
     /* the name is per event; data lines join with LF */
     {"message", "done", "message", "message"},
     {"{\"a\":1}", "x\ny", "no space", "[DONE]"},
     false},
    {"CR-only line ends and empty data",
     "data\r\rdata: a\r\r",
     2,
     {"message", "message"},
     {"", "a"},
     false},
    {"an unfinished event is dropped", "data: half", 0, {0}, {0}, true},
    {"garbage without fields is no event", "this is not an event stream\n\n", 0, {0}, {0}, false},
};

TEST(sse_events_split_anywhere)
{
    for (size_t c = 0; c < sizeof sse_cases / sizeof sse_cases[0]; c++) {
        const struct sse_case *k = &sse_cases[c];
        for (size_t step = 1; step <= strlen(k->stream); step++) {
            sse_log l = {0};
            wisp_sse p;
            wisp_sse_init(&p, 1024, log_event, &l);
            feed_all(&p, k->stream, step);
            const int before = wisp_test_failed_checks;
            CHECK(wisp_sse_finish(&p) == k->pending);
            CHECK_EQ_INT(l.n, k->n);
            for (int e = 0; e < k->n && e < l.n; e++) {
                CHECK_EQ_STR(l.names[e], k->name[e]);
                CHECK_EQ_STR(l.data[e], k->data[e]);
            }
            wisp_sse_free(&p);
            if (wisp_test_failed_checks > before) {
                fprintf(stderr, "  (case '%s', pieces of %zu bytes)\n", k->what, step);
                break;
            }
        }
    }
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

/* One answer event of each API, and what wisp reads from it. */
static const struct event_case {
    wisp_remote_api api;
    const char *json;
    bool had_stops;
    int rc;
    int len, reasoning_len, n_tokens;
    const char *finish;               /* NULL: none yet */
    int prompt_tokens, cached_tokens; /* -1: not in the event */
    bool tool_calls;
    const char *error;
} event_cases[] = {
    {WISP_RAPI_LCPP, "{\"content\":\" there\",\"tokens\":[383],\"stop\":false}", false, 0, 6, 0, 1,
     NULL, -1, -1, false, NULL},
    {WISP_RAPI_LCPP,
     "{\"content\":\"\",\"stop\":true,\"stop_type\":\"limit\",\"tokens_evaluated\":5,"
     "\"tokens_predicted\":8,\"timings\":{\"cache_n\":4}}",
     false, 0, 0, 0, 0, "length", 5, 4, false, NULL},
    /* OpenAI's "stop" is a stop string only when the request had some. */
    {WISP_RAPI_OAI_COMPLETION, "{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"}]}", false,
     0, 1, 0, 0, "eog", -1, -1, false, NULL},
    {WISP_RAPI_OAI_COMPLETION, "{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"}]}", true,
     0, 1, 0, 0, "stop", -1, -1, false, NULL},
    {WISP_RAPI_OAI_CHAT,
     "{\"choices\":[{\"delta\":{\"content\":\"hi\",\"reasoning_content\":\"hm\","
     "\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\"}}]}}],"
     "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
     "\"prompt_tokens_details\":{\"cached_tokens\":8}}}",
     false, 0, 2, 2, 0, NULL, 9, 8, true, NULL},
    {WISP_RAPI_OAI_CHAT, "{\"error\":{\"message\":\"boom\"}}", false, 0, 0, 0, 0, NULL, -1, -1,
     false, "boom"},
    {WISP_RAPI_OAI_COMPLETION, "{\"unexpected\":1}", false, WISP_E_REMOTE, 0, 0, 0, NULL, -1, -1,
     false, NULL},
    {WISP_RAPI_LCPP, "{\"unexpected\":1}", false, WISP_E_REMOTE, 0, 0, 0, NULL, -1, -1, false,
     NULL},
    {WISP_RAPI_LCPP, "[1]", false, WISP_E_REMOTE, 0, 0, 0, NULL, -1, -1, false, NULL},
};

TEST(map_parses_events_of_each_api)
{
    for (size_t c = 0; c < sizeof event_cases / sizeof event_cases[0]; c++) {
        const struct event_case *k = &event_cases[c];
        json_t *v = json_loads(k->json, 0, NULL);
        REQUIRE(v != NULL);
        wisp_remote_piece pc;
        wisp_err err = {0};
        const int before = wisp_test_failed_checks;
        CHECK_EQ_INT(wisp_remote_parse_event(k->api, v, k->had_stops, &pc, &err), k->rc);
        if (k->rc == 0) {
            CHECK_EQ_INT((int)pc.len, k->len);
            CHECK_EQ_INT((int)pc.reasoning_len, k->reasoning_len);
            CHECK_EQ_INT((int)json_array_size(pc.tokens), k->n_tokens);
            CHECK((pc.finish == NULL) == (k->finish == NULL));
            if (k->finish && pc.finish)
                CHECK_EQ_STR(pc.finish, k->finish);
            CHECK_EQ_INT((int)pc.prompt_tokens, k->prompt_tokens);
            CHECK_EQ_INT((int)pc.cached_tokens, k->cached_tokens);
            CHECK((pc.tool_calls != NULL) == k->tool_calls);
            CHECK((pc.error == NULL) == (k->error == NULL));
            if (k->error && pc.error)
                CHECK_EQ_STR(pc.error, k->error);
        } else {
            CHECK(err.msg[0] != 0);
        }
        if (wisp_test_failed_checks > before)
            fprintf(stderr, "  (event %s)\n", k->json);
        json_decref(v);
    }
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

/* ---------------------------------------------------------------- http */

typedef struct shutdown_log {
    wisp_http *h;
    int done, status, resubmit_rc;
} shutdown_log;

static int ignore_data(void *ud, long code, const char *p, size_t n)
{
    (void)ud;
    (void)code;
    (void)p;
    (void)n;
    return 0;
}

static void done_then_resubmit(void *ud, const wisp_http_result *r);

static wisp_http_desc held_desc(shutdown_log *l, const char *url)
{
    return (wisp_http_desc){.url = url,
                            .connect_timeout_ms = 60000,
                            .idle_timeout_ms = 60000,
                            .on_data = ignore_data,
                            .on_done = done_then_resubmit,
                            .ud = l};
}

/* on_done of a request ended by shutdown tries to send it again, as a
 * retry would: the client refuses it rather than queue what nobody will
 * ever answer. */
static void done_then_resubmit(void *ud, const wisp_http_result *r)
{
    shutdown_log *l = ud;
    l->done++;
    l->status = r->status;
    wisp_err err = {0};
    wisp_http_desc d = held_desc(l, "http://127.0.0.1:9/");
    d.on_done = NULL; /* never called: the submit must fail */
    l->resubmit_rc = wisp_http_submit(l->h, &d, &err);
}

TEST(http_shutdown_answers_once_and_refuses_new_requests)
{
    /* A server that takes the connection (the kernel's backlog) and never
     * answers, so the request is in flight when the client stops. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    shutdown_log l = {0};
    wisp_err err = {0};
    REQUIRE(wisp_http_create(&l.h, &err) == 0);
    wisp_http_desc d = held_desc(&l, url);
    REQUIRE(wisp_http_submit(l.h, &d, &err) == 0);
    usleep(100 * 1000); /* let the backend thread start the transfer */
    wisp_http_destroy(l.h);
    CHECK_EQ_INT(l.done, 1);
    CHECK_EQ_INT(l.status, WISP_E_SHUTDOWN);
    CHECK_EQ_INT(l.resubmit_rc, WISP_E_SHUTDOWN);
    close(fd);
}
