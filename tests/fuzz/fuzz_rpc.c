/*
 * fuzz_rpc.c - libFuzzer target for the message reader and the dispatcher.
 *
 * Arbitrary bytes go through the framer (ndjson or lsp, decided by the
 * bytes themselves) in chunks whose sizes come from the input, and every
 * framed message through the JSON-RPC dispatcher with handlers run inline
 * (no loop, no threads). The oracle, besides the sanitizers: every message
 * wisp would write must be valid JSON, a response object or a non-empty
 * array of them, and the registry must be empty at the end (every request
 * answered exactly once).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "options.h"
#include "rpc/dispatch.h"
#include "rpc/framer.h"
#include "serve/server.h"

static wisp_options opts;
static wisp_server server;
static wisp_app app;

typedef struct ctx {
    wisp_dispatch *d;
    wisp_framer *f;
    size_t limit;
} ctx;

static void check_response(const json_t *r)
{
    if (!json_is_object(r))
        abort();
    if (strcmp(json_string_value(json_object_get(r, "jsonrpc")) ?: "", "2.0") != 0)
        abort();
    const json_t *id = json_object_get(r, "id");
    if (!id || !(json_is_string(id) || json_is_number(id) || json_is_null(id)))
        abort();
    const json_t *err = json_object_get(r, "error");
    if (!!err == !!json_object_get(r, "result"))
        abort(); /* exactly one of result and error */
    if (err && (!json_is_integer(json_object_get(err, "code")) ||
                !json_is_string(json_object_get(err, "message"))))
        abort();
}

static void on_write(void *ud, const char *text, size_t len)
{
    (void)ud;
    if (memchr(text, '\n', len))
        abort(); /* would break ndjson framing */
    json_error_t e;
    json_t *m = json_loadb(text, len, 0, &e);
    if (!m)
        abort();
    if (json_is_array(m)) {
        if (json_array_size(m) == 0)
            abort();
        size_t i;
        json_t *r;
        json_array_foreach(m, i, r) check_response(r);
    } else if (!json_object_get(m, "method")) {
        check_response(m);
    }
    json_decref(m);
}

static void on_message(void *ud, const char *data, size_t len)
{
    ctx *c = ud;
    wisp_dispatch_set_framing(c->d, wisp_framer_framing(c->f));
    wisp_dispatch_message(c->d, data, len);
}

static void on_too_large(void *ud, size_t declared)
{
    ctx *c = ud;
    wisp_dispatch_too_large(c->d, declared, c->limit);
}

static void on_bad_header(void *ud, const char *why)
{
    wisp_dispatch_bad_header(((ctx *)ud)->d, why);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wisp_log_set_level(WISP_LOG_ERROR);
    wisp_options_defaults(&opts);
    wisp_server_init(&server, &opts);
    app = wisp_serve_app(&server);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* Byte 0: the message limit; byte 1: the chunking pattern. */
    size_t limit = 64 + (size_t)data[0] * 16;
    unsigned chunk_seed = data[1];
    data += 2;
    size -= 2;

    ctx c = {.limit = limit};
    wisp_dispatch_io io = {.write = on_write, .submit = NULL, .wake = NULL, .ud = &c};
    c.d = wisp_dispatch_new(&app, NULL, &io);
    if (!c.d)
        return 0;
    wisp_framer f;
    wisp_framer_cb cb = {.message = on_message,
                         .too_large = on_too_large,
                         .bad_header = on_bad_header};
    wisp_framer_init(&f, limit, &cb, &c);
    c.f = &f;

    size_t off = 0;
    while (off < size) {
        size_t n = chunk_seed == 0 ? size - off : 1 + (chunk_seed * (off + 7)) % 97;
        if (n > size - off)
            n = size - off;
        wisp_framer_feed(&f, (const char *)data + off, n);
        off += n;
    }
    wisp_framer_finish(&f);

    wisp_dispatch_counts counts;
    wisp_dispatch_counts_get(c.d, &counts);
    if (counts.in_flight != 0)
        abort(); /* inline handlers answer everything before returning */
    wisp_framer_free(&f);
    wisp_dispatch_free(c.d);
    return 0;
}
