/*
 * test_forward.c - the CPU forward pass against llama.cpp, and the paged KV
 * cache against itself.
 *
 * Parity: every model in ../shared/golden and ../shared/models comes with
 * llama.cpp's top-5 logits at every position of prompt_ids + greedy_ids;
 * wisp feeds the same tokens teacher-forced (all logits) and must agree
 * within the README's tolerances. Paging: the same tokens fed as a 5-token
 * prefill and then one token at a time, through a shuffled block table,
 * must give the logits of the one-shot run.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine_test_util.h"
#include "gen/sampler.h"
#include "gen/stop.h"
#include "harness.h"
#include "model/model.h"
#include "simd_test_util.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------- fixtures */

typedef struct golden {
    json_t *root;
    int32_t *ids; /* prompt_ids + greedy_ids */
    int n_prompt, n_ids;
    json_t *top[2]; /* top5, gen_top5 */
} golden;

static void golden_load(golden *g, const char *json_path)
{
    json_error_t jerr;
    memset(g, 0, sizeof(*g));
    g->root = json_load_file(json_path, 0, &jerr);
    if (!g->root)
        fprintf(stderr, "  %s: %s\n", json_path, jerr.text);
    REQUIRE(g->root);
    json_t *p = json_object_get(g->root, "prompt_ids");
    json_t *q = json_object_get(g->root, "greedy_ids");
    REQUIRE(json_is_array(p) && json_is_array(q));
    g->n_prompt = (int)json_array_size(p);
    g->n_ids = g->n_prompt + (int)json_array_size(q);
    g->ids = malloc(sizeof(int32_t) * (size_t)g->n_ids);
    REQUIRE(g->ids);
    for (int i = 0; i < g->n_ids; i++) {
        json_t *v = i < g->n_prompt ? json_array_get(p, (size_t)i)
                                    : json_array_get(q, (size_t)(i - g->n_prompt));
        g->ids[i] = (int32_t)json_integer_value(v);
    }
    g->top[0] = json_object_get(g->root, "top5");
    g->top[1] = json_object_get(g->root, "gen_top5");
    REQUIRE(json_array_size(g->top[0]) == (size_t)g->n_prompt);
    REQUIRE(json_array_size(g->top[0]) + json_array_size(g->top[1]) == (size_t)g->n_ids);
}

static void golden_free(golden *g)
{
    json_decref(g->root);
    free(g->ids);
}

/* The reference's top-5 at position i: pairs (id, logit). */
static int golden_top(const golden *g, int pos, int32_t ids[5], float vals[5])
{
    json_t *list = pos < g->n_prompt ? json_array_get(g->top[0], (size_t)pos)
                                     : json_array_get(g->top[1], (size_t)(pos - g->n_prompt));
    int n = (int)json_array_size(list);
    for (int k = 0; k < n && k < 5; k++) {
        json_t *pair = json_array_get(list, (size_t)k);
        ids[k] = (int32_t)json_integer_value(json_array_get(pair, 0));
        vals[k] = (float)json_number_value(json_array_get(pair, 1));
    }
    return n < 5 ? n : 5;
}

static wisp_engine *make_engine(const wisp_model *m, int block_size, int n_blocks, int max_tokens,
                                int max_seqs, wisp_kv_type kv)
{
    wisp_engine_opts o = {.n_threads = 2,
                          .block_size = block_size,
                          .n_blocks = n_blocks,
                          .kv_type = kv,
                          .max_batch_tokens = max_tokens,
                          .max_seqs = max_seqs};
    return wisp_test_cpu_engine(m, &o);
}

/* One-shot teacher-forced logits for all n ids through KV blocks of bs
 * positions: n * vocab floats. */
static float *all_logits_bs(const wisp_model *m, const int32_t *ids, int n, wisp_kv_type kv, int bs)
{
    const int V = wisp_model_get_config(m)->vocab_size;
    int nb = (n + bs - 1) / bs;
    wisp_engine *e = make_engine(m, bs, nb, n, 1, kv);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)nb);
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)V);
    REQUIRE(table && out);
    for (int i = 0; i < nb; i++)
        table[i] = i;
    REQUIRE(wisp_test_forward1(e, ids, n, 0, table, nb, true, out) == 0);
    free(table);
    wisp_engine_destroy(e);
    return out;
}

static float *all_logits(const wisp_model *m, const int32_t *ids, int n, wisp_kv_type kv)
{
    return all_logits_bs(m, ids, n, kv, 16);
}

/* ---------------------------------------------------------------- parity */

static void parity(const char *dir, const char *name)
{
    char gguf[512], json[512], rel[256];
    snprintf(rel, sizeof rel, "%s/%s.gguf", dir, name);
    wisp_test_shared_path(gguf, sizeof gguf, rel);
    snprintf(rel, sizeof rel, "%s/%s.json", dir, name);
    wisp_test_shared_path(json, sizeof json, rel);
    golden g;
    golden_load(&g, json);
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size;
    const float tol = strstr(name, "q4") ? 0.1f : 0.05f;
    float *lg = all_logits(m, g.ids, g.n_ids, WISP_KV_F16);

    float max_dev = 0;
    int argmax_checked = 0, bad_vals = 0, bad_argmax = 0;
    for (int pos = 0; pos < g.n_ids; pos++) {
        int32_t ids[5];
        float vals[5];
        int k = golden_top(&g, pos, ids, vals);
        REQUIRE(k >= 2);
        const float *row = lg + (size_t)pos * V;
        for (int j = 0; j < k; j++) {
            float d = fabsf(row[ids[j]] - vals[j]);
            max_dev = d > max_dev ? d : max_dev;
            if (!(d <= tol)) {
                if (bad_vals++ < 5)
                    fprintf(stderr, "  %s pos %d token %d: wisp %.5f llama.cpp %.5f\n", name, pos,
                            ids[j], row[ids[j]], vals[j]);
            }
        }
        if (vals[0] - vals[1] > tol) {
            int best = 0;
            for (int t = 1; t < V; t++)
                if (row[t] > row[best])
                    best = t;
            argmax_checked++;
            if (best != ids[0] && bad_argmax++ < 5)
                fprintf(stderr, "  %s pos %d: argmax %d, llama.cpp %d\n", name, pos, best, ids[0]);
        }
    }
    fprintf(stderr, "  %s: %d positions, max |dlogit| %.5f (tol %.2f), argmax checked at %d\n",
            name, g.n_ids, max_dev, tol, argmax_checked);
    CHECK_EQ_INT(bad_vals, 0);
    CHECK_EQ_INT(bad_argmax, 0);
    free(lg);
    wisp_model_close(m);
    golden_free(&g);
}

TEST(parity_syn_llama_spm_f16) { parity("golden", "syn-llama-spm-f16"); }
TEST(parity_syn_llama_spm_q8_0) { parity("golden", "syn-llama-spm-q8_0"); }
TEST(parity_syn_llama_spm_q4_k_m) { parity("golden", "syn-llama-spm-q4_k_m"); }
TEST(parity_syn_qwen2_dsc_f16) { parity("golden", "syn-qwen2-dsc-f16"); }
TEST(parity_syn_qwen2_dsc_q8_0) { parity("golden", "syn-qwen2-dsc-q8_0"); }
TEST(parity_syn_qwen2_dsc_q4_0) { parity("golden", "syn-qwen2-dsc-q4_0"); }
TEST(parity_stories260K) { parity("models", "stories260K"); }
TEST(parity_llama_2_tiny_random) { parity("models", "llama-2-tiny-random"); }

/* ---------------------------------------------------------------- paging */

/* Prefill 5, then decode one by one through the given block table; returns
 * all n_ids * vocab logits. */
static float *chunked_logits(const wisp_model *m, const golden *g, const int32_t *table, int pool,
                             int bs, wisp_kv_type kv)
{
    const int V = wisp_model_get_config(m)->vocab_size;
    wisp_engine *e = make_engine(m, bs, pool, 8, 1, kv);
    float *out = malloc(sizeof(float) * (size_t)g->n_ids * (size_t)V);
    REQUIRE(out);
    int pre = g->n_ids < 5 ? g->n_ids : 5;
    REQUIRE(wisp_test_forward1(e, g->ids, pre, 0, table, (pre + bs - 1) / bs, true, out) == 0);
    for (int pos = pre; pos < g->n_ids; pos++)
        REQUIRE(wisp_test_forward1(e, g->ids + pos, 1, pos, table, pos / bs + 1, false,
                                   out + (size_t)pos * V) == 0);
    wisp_engine_destroy(e);
    return out;
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* The same chunked run through a contiguous table and through a shuffled
 * one (4-token blocks scattered over a pool twice the size) must agree
 * bit for bit: paging changes where K/V live, never what is computed. Both
 * must also be the bits of the one-shot prefill through blocks of the same
 * size, at every SIMD level: a row's matmuls and attention do not depend on
 * the rows that share the step. (Another block size is another summation:
 * attention folds each block into its running softmax, so the partition
 * into blocks moves the last bit, which the quantization of the next
 * layer's activations can turn into differences of 1e-1.) */
static const char *pc_dir, *pc_name;
static wisp_kv_type pc_kv;

static void paged_equals_contiguous_case(void)
{
    const char *dir = pc_dir, *name = pc_name;
    const wisp_kv_type kv = pc_kv;
    char gguf[512], json[512], rel[256];
    snprintf(rel, sizeof rel, "%s/%s.gguf", dir, name);
    wisp_test_shared_path(gguf, sizeof gguf, rel);
    snprintf(rel, sizeof rel, "%s/%s.json", dir, name);
    wisp_test_shared_path(json, sizeof json, rel);
    golden g;
    golden_load(&g, json);
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size, bs = 4;
    const int need = (g.n_ids + bs - 1) / bs, pool = need * 2 + 3;
    int32_t *contig = malloc(sizeof(int32_t) * (size_t)need);
    int32_t *shuffled = malloc(sizeof(int32_t) * (size_t)need);
    REQUIRE(contig && shuffled);
    for (int i = 0; i < need; i++) {
        contig[i] = i;
        shuffled[i] = (int32_t)((i * 7 + 3) % pool); /* 7 is coprime with pool */
    }
    for (int i = 0; i < need; i++)
        for (int j = 0; j < i; j++)
            REQUIRE(shuffled[i] != shuffled[j]);

    float *ref = all_logits_bs(m, g.ids, g.n_ids, kv, bs);
    float *a = chunked_logits(m, &g, contig, pool, bs, kv);
    float *b = chunked_logits(m, &g, shuffled, pool, bs, kv);
    const size_t n = (size_t)g.n_ids * V;
    float paged = max_abs_diff(a, b, n), chunked = max_abs_diff(a, ref, n);
    fprintf(stderr, "  %s at %s: shuffled vs contiguous %.2e, chunked vs one-shot %.2e\n", name,
            wisp_cpu_simd_name(wisp_cpu_simd_active()), paged, chunked);
    CHECK(paged == 0.0f);
    CHECK(chunked == 0.0f);
    free(contig);
    free(shuffled);
    free(a);
    free(b);
    free(ref);
    wisp_model_close(m);
    golden_free(&g);
}

static void paged_equals_contiguous(const char *dir, const char *name, wisp_kv_type kv)
{
    pc_dir = dir;
    pc_name = name;
    pc_kv = kv;
    at_every_level(paged_equals_contiguous_case);
}

TEST(paged_equals_contiguous_stories_f32)
{
    paged_equals_contiguous("models", "stories260K", WISP_KV_F32);
}
TEST(paged_equals_contiguous_qwen2_f16)
{
    paged_equals_contiguous("golden", "syn-qwen2-dsc-f16", WISP_KV_F16);
}
TEST(paged_equals_contiguous_llama_q8_kv)
{
    paged_equals_contiguous("golden", "syn-llama-spm-q8_0", WISP_KV_Q8_0);
}
TEST(paged_equals_contiguous_llama_q4_k)
{
    paged_equals_contiguous("golden", "syn-llama-spm-q4_k_m", WISP_KV_F16);
}

/* ---------------------------------------------------------------- greedy */

TEST(stories260K_greedy_60_tokens)
{
    char gguf[512], json[512];
    wisp_test_shared_path(gguf, sizeof gguf, "models/stories260K.gguf");
    wisp_test_shared_path(json, sizeof json, "models/stories260K.json");
    golden g;
    golden_load(&g, json);
    REQUIRE(g.n_ids - g.n_prompt == 60);
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size, bs = 16;
    const int nb = (g.n_ids + bs - 1) / bs;
    wisp_engine *e = make_engine(m, bs, nb, g.n_prompt, 1, WISP_KV_F16);
    int32_t table[64];
    REQUIRE(nb <= 64);
    for (int i = 0; i < nb; i++)
        table[i] = nb - 1 - i;
    float *logits = malloc(sizeof(float) * (size_t)V);
    REQUIRE(logits);
    int32_t tok[1];
    REQUIRE(wisp_test_forward1(e, g.ids, g.n_prompt, 0, table, (g.n_prompt + bs - 1) / bs, false,
                               logits) == 0);
    int matched = 0;
    for (int i = 0; i < 60; i++) {
        int best = 0;
        for (int t = 1; t < V; t++)
            if (logits[t] > logits[best])
                best = t;
        if (best != g.ids[g.n_prompt + i]) {
            fprintf(stderr, "  token %d: wisp %d, llama.cpp %d\n", i, best, g.ids[g.n_prompt + i]);
            break;
        }
        matched++;
        tok[0] = best;
        int pos = g.n_prompt + i;
        if (i < 59)
            REQUIRE(wisp_test_forward1(e, tok, 1, pos, table, pos / bs + 1, false, logits) == 0);
    }
    CHECK_EQ_INT(matched, 60);
    free(logits);
    wisp_engine_destroy(e);
    wisp_model_close(m);
    golden_free(&g);
}

/* The whole generation path on the bundled model: tokenizer -> engine ->
 * greedy sampler -> streaming detokenizer -> stop matcher, against the
 * continuation ../shared/models/README.md documents. */
TEST(stories260K_once_upon_a_time_text)
{
    char gguf[512], json[512];
    wisp_test_shared_path(gguf, sizeof gguf, "models/stories260K.gguf");
    wisp_test_shared_path(json, sizeof json, "models/stories260K.json");
    golden g;
    golden_load(&g, json);
    wisp_model *m = wisp_test_open_model(gguf);
    wisp_tokenizer *tok = NULL;
    wisp_err err = {0};
    REQUIRE(wisp_tokenizer_from_gguf(wisp_model_get_gguf(m), &tok, &err) == 0);
    const char *prompt = "Once upon a time";
    wisp_tokens ids = {0};
    REQUIRE(wisp_tokenize(tok, prompt, strlen(prompt), true, true, &ids, &err) == 0);
    REQUIRE((int)ids.n == g.n_prompt);
    for (int i = 0; i < g.n_prompt; i++)
        CHECK_EQ_INT(ids.ids[i], g.ids[i]);

    const int V = wisp_model_get_config(m)->vocab_size, bs = 16, n_gen = 60;
    const int nb = ((int)ids.n + n_gen + bs - 1) / bs;
    wisp_engine *e = make_engine(m, bs, nb, (int)ids.n, 1, WISP_KV_F16);
    int32_t table[16];
    REQUIRE(nb <= 16);
    for (int i = 0; i < nb; i++)
        table[i] = i;
    wisp_sampler_params sp;
    wisp_sampler_params_default(&sp);
    sp.temperature = 0.0f;
    wisp_sampler *smp = NULL;
    REQUIRE(wisp_sampler_create(&sp, V, &smp, &err) == 0);
    wisp_stop *stop = NULL;
    REQUIRE(wisp_stop_create(NULL, 0, &stop, &err) == 0);
    wisp_detok_stream ds;
    wisp_detok_stream_init(&ds, tok, 0);

    float *logits = malloc(sizeof(float) * (size_t)V);
    char text[1024];
    size_t len = 0;
    REQUIRE(logits);
    REQUIRE(wisp_test_forward1(e, ids.ids, (int)ids.n, 0, table, nb, false, logits) == 0);
    for (int i = 0; i < n_gen; i++) {
        wisp_sample out = {0};
        wisp_sampler_sample(smp, logits, &out);
        CHECK_EQ_INT(out.token, g.ids[g.n_prompt + i]);
        const char *chunk;
        size_t clen;
        wisp_stop_out so;
        REQUIRE(wisp_detok_stream_feed(&ds, out.token, &chunk, &clen, &err) == 0);
        REQUIRE(wisp_stop_feed(stop, chunk, clen, &so, &err) == 0);
        REQUIRE(len + so.len < sizeof text);
        memcpy(text + len, so.text, so.len);
        len += so.len;
        if (i + 1 < n_gen)
            REQUIRE(wisp_test_forward1(e, &out.token, 1, (int)ids.n + i, table, nb, false,
                                       logits) == 0);
    }
    const char *chunk;
    size_t clen;
    wisp_stop_out so;
    REQUIRE(wisp_detok_stream_flush(&ds, &chunk, &clen, &err) == 0);
    REQUIRE(wisp_stop_feed(stop, chunk, clen, &so, &err) == 0);
    memcpy(text + len, so.text, so.len);
    len += so.len;
    REQUIRE(wisp_stop_flush(stop, &so, &err) == 0);
    memcpy(text + len, so.text, so.len);
    len += so.len;
    text[len] = '\0';
    CHECK_EQ_STR(text, ", there was a little girl named Lily. She loved to play outside in the "
                       "park. One day, she saw a big, red ball. She wanted to play with it, but "
                       "it was too high.\nLily");
    free(logits);
    wisp_detok_stream_free(&ds);
    wisp_stop_free(stop);
    wisp_sampler_free(smp);
    wisp_tokens_free(&ids);
    wisp_tokenizer_free(tok);
    wisp_engine_destroy(e);
    wisp_model_close(m);
    golden_free(&g);
}

/* ---------------------------------------------------------------- batches */

TEST(two_sequences_in_one_batch_match_separate_runs)
{
    char gguf[512];
    wisp_test_shared_path(gguf, sizeof gguf, "golden/syn-qwen2-dsc-q8_0.gguf");
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size;
    const int32_t a[7] = {32013, 1000, 2000, 3000, 4000, 5000, 6000};
    const int32_t b[3] = {32013, 77, 8888};
    float *ra = all_logits(m, a, 7, WISP_KV_F16), *rb = all_logits(m, b, 3, WISP_KV_F16);
    wisp_engine *e = make_engine(m, 4, 8, 16, 2, WISP_KV_F16);
    const int32_t ta[2] = {5, 1}, tb[1] = {6};
    float *la = malloc(sizeof(float) * 7 * (size_t)V), *lb = malloc(sizeof(float) * (size_t)V);
    REQUIRE(la && lb);
    wisp_batch_seq s[2] = {
        {.tokens = a,
         .n_tokens = 7,
         .block_table = ta,
         .n_blocks = 2,
         .all_logits = true,
         .logits = la},
        {.tokens = b, .n_tokens = 3, .block_table = tb, .n_blocks = 1, .logits = lb},
    };
    wisp_batch batch = {.seqs = s, .n_seqs = 2};
    wisp_err err = {0};
    REQUIRE(e->ops->forward(e->ctx, &batch, &err) == 0);
    float dev = 0;
    for (int i = 0; i < 7 * V; i++)
        dev = fmaxf(dev, fabsf(la[i] - ra[i]));
    for (int i = 0; i < V; i++)
        dev = fmaxf(dev, fabsf(lb[i] - rb[2 * (size_t)V + i]));
    fprintf(stderr, "  batched vs separate max |dlogit| %.2e\n", dev);
    CHECK(dev <= 1e-3f);
    free(la);
    free(lb);
    free(ra);
    free(rb);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- blocks */

TEST(blocks_copy_and_round_trip_through_host_memory)
{
    char gguf[512];
    wisp_test_shared_path(gguf, sizeof gguf, "models/stories260K.gguf");
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size;
    const int32_t ids[9] = {1, 403, 407, 383, 432, 286, 261, 300, 320};
    wisp_engine *e = make_engine(m, 4, 12, 16, 1, WISP_KV_F16);
    float *ref = malloc(sizeof(float) * (size_t)V), *out = malloc(sizeof(float) * (size_t)V);
    const int32_t t1[3] = {0, 1, 2};
    REQUIRE(ref && out);
    REQUIRE(wisp_test_forward1(e, ids, 9, 0, t1, 3, false, ref) == 0);
    /* Blocks 0 and 1 exported and imported as 7 and 8; block 2 (partial)
     * copied on write to 9; the last token recomputed there. */
    size_t n = e->ops->bytes_per_block(e->ctx);
    REQUIRE(n > 0);
    void *buf = malloc(n);
    wisp_err err = {0};
    REQUIRE(buf);
    REQUIRE(e->ops->read_block(e->ctx, 0, buf, &err) == 0);
    REQUIRE(e->ops->write_block(e->ctx, 7, buf, &err) == 0);
    REQUIRE(e->ops->read_block(e->ctx, 1, buf, &err) == 0);
    REQUIRE(e->ops->write_block(e->ctx, 8, buf, &err) == 0);
    REQUIRE(e->ops->copy_block(e->ctx, 9, 2, &err) == 0);
    CHECK_EQ_INT(e->ops->copy_block(e->ctx, 12, 2, &err), WISP_E_INTERNAL);
    CHECK_EQ_INT(e->ops->read_block(e->ctx, -1, buf, &err), WISP_E_INTERNAL);
    const int32_t t2[3] = {7, 8, 9};
    REQUIRE(wisp_test_forward1(e, ids + 8, 1, 8, t2, 3, false, out) == 0);
    float dev = 0;
    for (int i = 0; i < V; i++)
        dev = fmaxf(dev, fabsf(out[i] - ref[i]));
    CHECK(dev <= 1e-4f);
    wisp_engine_stats st;
    e->ops->get_stats(e->ctx, &st);
    CHECK_EQ_INT(st.kv_bytes, 12 * n);
    CHECK(st.scratch_bytes > 0);
    free(buf);
    free(ref);
    free(out);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- cancel */

TEST(cancel_between_layers)
{
    char gguf[512];
    wisp_test_shared_path(gguf, sizeof gguf, "models/stories260K.gguf");
    wisp_model *m = wisp_test_open_model(gguf);
    const wisp_model_config *c = wisp_model_get_config(m);
    REQUIRE(c->n_layers >= 3);
    wisp_engine *e = make_engine(m, 16, 4, 32, 1, WISP_KV_F16);
    int32_t ids[32], table[2] = {0, 1};
    for (int i = 0; i < 32; i++)
        ids[i] = 1 + (i * 13) % (c->vocab_size - 1);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    REQUIRE(logits);
    wisp_batch_seq s = {.tokens = ids,
                        .n_tokens = 32,
                        .pos0 = 0,
                        .block_table = table,
                        .n_blocks = 2,
                        .logits = logits};
    wisp_test_stops_at_every_poll(e, &s, c->n_layers);
    free(logits);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}

/* ---------------------------------------------------------------- errors */

TEST(bad_batches_are_refused_with_reasons)
{
    char gguf[512];
    wisp_test_shared_path(gguf, sizeof gguf, "models/stories260K.gguf");
    wisp_model *m = wisp_test_open_model(gguf);
    const int V = wisp_model_get_config(m)->vocab_size;
    wisp_engine *e = make_engine(m, 4, 4, 8, 1, WISP_KV_F16);
    float *logits = malloc(sizeof(float) * 8 * (size_t)V);
    REQUIRE(logits);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, table[3] = {0, 1, 2};
    wisp_err err = {0};
    wisp_batch_seq s = {.tokens = ids,
                        .n_tokens = 6,
                        .pos0 = 0,
                        .block_table = table,
                        .n_blocks = 1,
                        .logits = logits};
    wisp_batch b = {.seqs = &s, .n_seqs = 1};
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "block table") != NULL);
    s.n_blocks = 2;
    table[1] = 4;
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "outside the pool") != NULL);
    table[1] = 1;
    ids[2] = V;
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "vocabulary") != NULL);
    ids[2] = 3;
    s.n_tokens = 9;
    s.n_blocks = 3;
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), WISP_E_INTERNAL);
    CHECK(strstr(err.msg, "built for 8") != NULL);
    s.n_tokens = 6;
    s.n_blocks = 2;
    CHECK_EQ_INT(e->ops->forward(e->ctx, &b, &err), 0);
    free(logits);
    wisp_engine_destroy(e);
    wisp_model_close(m);
}
