/*
 * test_sampler.c - the sampler: greedy, seeds, the distribution it draws
 * from, each filter, penalties, logit bias and log-probabilities.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "gen/sampler.h"
#include "harness.h"

static wisp_sampler_params plain(float temp, uint64_t seed)
{
    wisp_sampler_params p;
    wisp_sampler_params_default(&p);
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static wisp_sampler *make(const wisp_sampler_params *p, int vocab)
{
    wisp_sampler *s = NULL;
    wisp_err err = {0};
    int rc = wisp_sampler_create(p, vocab, &s, &err);
    if (rc)
        fprintf(stderr, "  create: %s\n", err.msg);
    REQUIRE(rc == 0 && s);
    return s;
}

static int32_t draw(wisp_sampler *s, const float *logits)
{
    wisp_sample out = {0};
    wisp_sampler_sample(s, logits, &out);
    return out.token;
}

/* Logits whose softmax is exactly probs. */
static void logits_of(const double *probs, int n, float *out)
{
    for (int i = 0; i < n; i++)
        out[i] = (float)log(probs[i]);
}

/* Counts draws per token over n_draws. */
static void histogram(wisp_sampler *s, const float *logits, int vocab, int n_draws, int *counts)
{
    for (int i = 0; i < vocab; i++)
        counts[i] = 0;
    for (int i = 0; i < n_draws; i++) {
        int32_t t = draw(s, logits);
        REQUIRE(t >= 0 && t < vocab);
        counts[t]++;
    }
}

TEST(temperature_zero_and_top_k_one_are_greedy)
{
    enum {
        V = 1000
    };
    float logits[V];
    srand(7);
    for (int i = 0; i < V; i++)
        logits[i] = (float)rand() / RAND_MAX * 10.0f;
    logits[613] = 11.0f;
    wisp_sampler_params p = plain(0.0f, 1);
    wisp_sampler *s = make(&p, V);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(draw(s, logits), 613);
    wisp_sampler_free(s);
    p = plain(1.5f, 2);
    p.top_k = 1;
    s = make(&p, V);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(draw(s, logits), 613);
    wisp_sampler_free(s);
}

TEST(seed_reproduces_and_seeds_differ)
{
    enum {
        V = 64,
        N = 300
    };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(i % 7) * 0.3f;
    wisp_sampler_params p = plain(1.0f, 42);
    wisp_sampler *a = make(&p, V), *b = make(&p, V);
    p.seed = 43;
    wisp_sampler *c = make(&p, V);
    int32_t first[N];
    int same_ab = 1, differ_ac = 0;
    for (int i = 0; i < N; i++) {
        first[i] = draw(a, logits);
        int32_t tb = draw(b, logits), tc = draw(c, logits);
        same_ab &= first[i] == tb;
        differ_ac |= first[i] != tc;
    }
    CHECK(same_ab);
    CHECK(differ_ac);
    wisp_sampler_reset(a);
    int same_again = 1;
    for (int i = 0; i < N; i++)
        same_again &= draw(a, logits) == first[i];
    CHECK(same_again);
    wisp_sampler_free(a);
    wisp_sampler_free(b);
    wisp_sampler_free(c);
}

/* Pearson's chi-square of counts against expected probabilities. */
static double chi_square(const int *counts, const double *probs, int n, int n_draws)
{
    double x2 = 0;
    for (int i = 0; i < n; i++) {
        double e = probs[i] * n_draws;
        x2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return x2;
}

TEST(draws_follow_the_softmax)
{
    enum {
        V = 8,
        N = 40000
    };
    const double probs[V] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04, 0.02};
    float logits[V];
    logits_of(probs, V, logits);
    int counts[V];
    wisp_sampler_params p = plain(1.0f, 1234);
    wisp_sampler *s = make(&p, V);
    histogram(s, logits, V, N, counts);
    /* 7 degrees of freedom: P(chi2 > 24.32) = 0.001. */
    double x2 = chi_square(counts, probs, V, N);
    fprintf(stderr, "  chi2(T=1) = %.2f\n", x2);
    CHECK(x2 < 24.32);
    wisp_sampler_free(s);

    /* Temperature 0.5 squares the probabilities (then renormalizes). */
    double sq[V], z = 0;
    for (int i = 0; i < V; i++)
        z += sq[i] = probs[i] * probs[i];
    for (int i = 0; i < V; i++)
        sq[i] /= z;
    p = plain(0.5f, 99);
    s = make(&p, V);
    histogram(s, logits, V, N, counts);
    /* The smallest cell still expects 87 draws: all 8 cells count. */
    double x2t = chi_square(counts, sq, V, N);
    fprintf(stderr, "  chi2(T=0.5) = %.2f\n", x2t);
    CHECK(x2t < 24.32);
    /* And it is not the T=1 distribution. */
    CHECK(chi_square(counts, probs, V, N) > 100.0);
    wisp_sampler_free(s);
}

TEST(top_k_keeps_the_k_best)
{
    enum {
        V = 100,
        N = 3000
    };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)((i * 37) % V) * 0.01f; /* a permutation: distinct */
    int best[3] = {0};
    /* The three highest: values 0.99, 0.98, 0.97. */
    for (int i = 0; i < V; i++) {
        int v = (i * 37) % V;
        if (v >= 97)
            best[v - 97] = i;
    }
    wisp_sampler_params p = plain(1.0f, 5);
    p.top_k = 3;
    wisp_sampler *s = make(&p, V);
    int counts[V];
    histogram(s, logits, V, N, counts);
    int in = 0;
    for (int j = 0; j < 3; j++) {
        CHECK(counts[best[j]] > N / 6);
        in += counts[best[j]];
    }
    CHECK_EQ_INT(in, N);
    wisp_sampler_free(s);
}

TEST(top_p_and_min_p_cut_the_tail)
{
    enum {
        V = 4,
        N = 4000
    };
    const double probs[V] = {0.5, 0.3, 0.15, 0.05};
    float logits[V];
    logits_of(probs, V, logits);
    int counts[V];

    wisp_sampler_params p = plain(1.0f, 11);
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: tokens 0 and 1 */
    wisp_sampler *s = make(&p, V);
    histogram(s, logits, V, N, counts);
    CHECK(counts[0] > 0 && counts[1] > 0);
    CHECK_EQ_INT(counts[2] + counts[3], 0);
    /* Renormalized over the two: 0.625 / 0.375. */
    CHECK_NEAR((double)counts[0] / N, 0.625, 0.03);
    wisp_sampler_free(s);

    p = plain(1.0f, 12);
    p.min_p = 0.2f; /* keep p >= 0.1: tokens 0, 1, 2 */
    s = make(&p, V);
    histogram(s, logits, V, N, counts);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    CHECK_EQ_INT(counts[3], 0);
    wisp_sampler_free(s);
}

TEST(typical_p_keeps_the_typical_tokens)
{
    enum {
        V = 3,
        N = 2000
    };
    /* Entropy 1.089 nats; surprises 0.916 (token 0) and 1.204 (1, 2): the
     * two less likely tokens are the more typical, and their mass 0.6
     * passes p = 0.5 before token 0 is reached. */
    const double probs[V] = {0.4, 0.3, 0.3};
    float logits[V];
    logits_of(probs, V, logits);
    wisp_sampler_params p = plain(1.0f, 13);
    p.typical_p = 0.5f;
    wisp_sampler *s = make(&p, V);
    int counts[V];
    histogram(s, logits, V, N, counts);
    CHECK_EQ_INT(counts[0], 0);
    CHECK(counts[1] > N / 4 && counts[2] > N / 4);
    wisp_sampler_free(s);
}

TEST(penalties_change_what_they_should)
{
    enum {
        V = 8
    };
    float logits[V] = {2.0f, 1.9f, -1.0f, -1.2f, 0, 0, 0, 0};
    wisp_sampler_params p = plain(0.0f, 1);

    p.repeat_penalty = 1.5f; /* 2.0 / 1.5 = 1.33 < 1.9 */
    wisp_sampler *s = make(&p, V);
    CHECK_EQ_INT(draw(s, logits), 0);
    wisp_sampler_accept(s, 0);
    CHECK_EQ_INT(draw(s, logits), 1);
    wisp_sampler_free(s);

    /* A negative logit is multiplied: -1.0 * 1.5 = -1.5 < -1.2. */
    float neg[V] = {-1.0f, -1.2f, -5, -5, -5, -5, -5, -5};
    s = make(&p, V);
    wisp_sampler_accept(s, 0);
    CHECK_EQ_INT(draw(s, neg), 1);
    wisp_sampler_free(s);

    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.04f; /* once: 1.96 > 1.9; three times: 1.88 < 1.9 */
    s = make(&p, V);
    wisp_sampler_accept(s, 0);
    CHECK_EQ_INT(draw(s, logits), 0);
    wisp_sampler_accept(s, 0);
    wisp_sampler_accept(s, 0);
    CHECK_EQ_INT(draw(s, logits), 1);
    wisp_sampler_free(s);

    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.2f;
    p.penalty_last_n = 2; /* token 0 leaves the window after two more */
    s = make(&p, V);
    wisp_sampler_accept(s, 0);
    CHECK_EQ_INT(draw(s, logits), 1);
    wisp_sampler_accept(s, 5);
    CHECK_EQ_INT(draw(s, logits), 1);
    wisp_sampler_accept(s, 6);
    CHECK_EQ_INT(draw(s, logits), 0);
    wisp_sampler_free(s);
}

TEST(logit_bias_bans_and_boosts)
{
    enum {
        V = 5
    };
    float logits[V] = {3.0f, 2.0f, 1.0f, 0.5f, 0.0f};
    wisp_logit_bias bias[2] = {{0, -INFINITY}, {4, 2.5f}};
    wisp_sampler_params p = plain(0.0f, 1);
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    wisp_sampler *s = make(&p, V);
    CHECK_EQ_INT(draw(s, logits), 1);
    wisp_sampler_free(s);
    p.n_logit_bias = 2;
    s = make(&p, V);
    CHECK_EQ_INT(draw(s, logits), 4);
    wisp_sampler_free(s);

    /* A banned token is never drawn at any temperature. */
    p = plain(2.0f, 3);
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    s = make(&p, V);
    int counts[V];
    histogram(s, logits, V, 2000, counts);
    CHECK_EQ_INT(counts[0], 0);
    wisp_sampler_free(s);

    wisp_logit_bias bad = {V, 1.0f};
    p.logit_bias = &bad;
    wisp_sampler *t = NULL;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_sampler_create(&p, V, &t, &err), WISP_E_INVALID);
    CHECK(t == NULL && strstr(err.msg, "logit_bias"));
}

TEST(n_probs_reports_the_log_softmax)
{
    enum {
        V = 50
    };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = sinf((float)i) * 3.0f;
    wisp_sampler_params p = plain(0.7f, 21);
    p.n_probs = 5;
    p.top_k = 2; /* truncation must not change the reported distribution */
    wisp_sampler *s = make(&p, V);
    wisp_token_logprob top[5];
    wisp_sample out = {.top = top};
    wisp_sampler_sample(s, logits, &out);
    CHECK_EQ_INT(out.n_top, 5);
    double mx = -1e30, z = 0;
    for (int i = 0; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < V; i++)
        z += exp(logits[i] - mx);
    double lse = mx + log(z);
    for (int j = 0; j < out.n_top; j++) {
        CHECK_NEAR(top[j].logprob, logits[top[j].token] - lse, 1e-4);
        if (j > 0)
            CHECK(top[j].logprob <= top[j - 1].logprob);
        for (int i = 0; i < V; i++) /* nothing outside the list beats its last entry */
            if (logits[i] > logits[top[out.n_top - 1].token]) {
                int listed = 0;
                for (int k = 0; k < out.n_top; k++)
                    listed |= top[k].token == i;
                CHECK(listed);
            }
    }
    CHECK_NEAR(out.logprob, logits[out.token] - lse, 1e-4);
    CHECK(out.token == top[0].token || out.token == top[1].token);
    wisp_sampler_free(s);
}

TEST(no_n_probs_no_logprob_same_token)
{
    /* Without n_probs the log-softmax is not computed (NaN, no top list),
     * and the choice is the same as with it. */
    enum {
        V = 64
    };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = cosf((float)i * 0.7f) * 2.0f;
    for (int greedy = 0; greedy < 2; greedy++) {
        wisp_sampler_params p = plain(greedy ? 0.0f : 0.9f, 0);
        p.seed = 7;
        wisp_sampler *a = make(&p, V);
        p.n_probs = 3;
        wisp_sampler *b = make(&p, V);
        wisp_token_logprob top[3];
        for (int step = 0; step < 8; step++) {
            wisp_sample oa = {0}, ob = {.top = top};
            wisp_sampler_sample(a, logits, &oa);
            wisp_sampler_sample(b, logits, &ob);
            CHECK_EQ_INT(oa.token, ob.token);
            CHECK(isnan(oa.logprob) && oa.n_top == 0);
            CHECK(isfinite(ob.logprob) && ob.n_top == 3);
        }
        wisp_sampler_free(a);
        wisp_sampler_free(b);
    }
}

/* Greedy picks what the plain first-maximum loop over logits + bias picks:
 * ties (the first wins), NaNs (never win, except at index 0), -inf, signed
 * zeros, lengths that are and are not whole vector blocks. */
TEST(greedy_is_the_first_maximum)
{
    enum {
        N = 100
    };
    float logits[N];
    uint64_t x = 99;
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + trial % N;
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int r = (int)(x >> 33) % 64;
            /* few distinct values: many ties */
            logits[i] = r < 2 ? NAN : r < 4 ? -INFINITY : r < 6 ? -0.0f : (float)(r % 7) - 3.0f;
        }
        wisp_sampler_params p = plain(0.0f, 1);
        wisp_logit_bias bias[2] = {{(int32_t)(x % (uint64_t)n), 2.5f},
                                   {(int32_t)((x >> 8) % (uint64_t)n), -INFINITY}};
        p.logit_bias = bias;
        p.n_logit_bias = trial % 3 == 0 ? 2 : 0;
        wisp_sampler *s = make(&p, n);
        float l[N];
        memcpy(l, logits, sizeof l);
        for (int b = 0; b < p.n_logit_bias; b++)
            l[bias[b].token] += bias[b].bias;
        int want = 0;
        for (int i = 1; i < n; i++)
            if (l[i] > l[want])
                want = i;
        wisp_sample out = {0};
        wisp_sampler_sample(s, logits, &out);
        CHECK_EQ_INT(out.token, want);
        wisp_sampler_free(s);
    }
}

TEST(rejects_bad_parameters)
{
    wisp_sampler_params p = plain(1.0f, 1);
    wisp_sampler *s = NULL;
    wisp_err err = {0};
    p.repeat_penalty = 0.0f;
    CHECK_EQ_INT(wisp_sampler_create(&p, 10, &s, &err), WISP_E_INVALID);
    p = plain(1.0f, 1);
    p.penalty_last_n = -1;
    CHECK_EQ_INT(wisp_sampler_create(&p, 10, &s, &err), WISP_E_INVALID);
    p = plain(1.0f, 1);
    CHECK_EQ_INT(wisp_sampler_create(&p, 0, &s, &err), WISP_E_INTERNAL);
    CHECK(s == NULL);
}
