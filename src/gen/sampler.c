/*
 * sampler.c - next-token choice (see sampler.h).
 *
 * The filters work on a candidate array (token, logit) that shrinks as they
 * run, like llama.cpp's llama_token_data_array: each filter either keeps a
 * prefix of the candidates sorted by logit (top-k, top-p, min-p) or
 * reorders and cuts (typical-p). The array is sorted only when a filter
 * needs order, and top-k sorts just its k survivors via partial selection.
 * The penalty history is a ring of the last N tokens with a count per
 * vocabulary entry kept in step, so penalties touch only the tokens seen.
 */
#include "gen/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
} cand;

struct wisp_sampler {
    wisp_sampler_params p;
    int vocab;
    wisp_logit_bias *bias;
    cand *c;       /* [vocab] candidates */
    cand *aux;     /* [vocab] scratch for typical-p's reordering */
    int n;         /* live candidates */
    bool sorted;   /* c[0..n) by logit, descending */
    float *probs;  /* [vocab] scratch */
    float *work;   /* [vocab] penalized logits, for log-probs */
    int32_t *ring; /* [penalty_last_n] */
    int ring_len, ring_head;
    int32_t *count; /* [vocab] occurrences in the ring */
    uint64_t rng[4];
};

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro256ss(uint64_t s[4])
{
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(uint64_t s[4]) { return (double)(xoshiro256ss(s) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------- setup */

void wisp_sampler_params_default(wisp_sampler_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->typical_p = 1.0f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

void wisp_sampler_reset(wisp_sampler *s)
{
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->ring_len = s->ring_head = 0;
    memset(s->count, 0, (size_t)s->vocab * sizeof(*s->count));
}

int wisp_sampler_create(const wisp_sampler_params *p, int vocab_size, wisp_sampler **out,
                        wisp_err *err)
{
    *out = NULL;
    if (vocab_size <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL, "sampler: vocabulary size %d", vocab_size);
    if (!(p->top_p >= 0) || !(p->min_p >= 0) || !(p->min_p <= 1) || !(p->typical_p >= 0) ||
        !(p->repeat_penalty > 0) || p->penalty_last_n < 0 || p->n_probs < 0 ||
        p->n_logit_bias < 0 || isnan(p->temperature) || isnan(p->presence_penalty) ||
        isnan(p->frequency_penalty))
        return wisp_err_set(err, WISP_E_INVALID,
                            "sampler: parameter out of range (top_p %g, min_p %g, typical_p %g, "
                            "repeat_penalty %g, penalty_last_n %d, n_probs %d)",
                            (double)p->top_p, (double)p->min_p, (double)p->typical_p,
                            (double)p->repeat_penalty, p->penalty_last_n, p->n_probs);
    for (int i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token < 0 || p->logit_bias[i].token >= vocab_size ||
            isnan(p->logit_bias[i].bias))
            return wisp_err_set(err, WISP_E_INVALID,
                                "sampler: logit_bias for token %d outside the vocabulary of %d",
                                (int)p->logit_bias[i].token, vocab_size);
    wisp_sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return wisp_err_set(err, WISP_E_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->vocab = vocab_size;
    s->c = malloc((size_t)vocab_size * sizeof(*s->c));
    s->aux = malloc((size_t)vocab_size * sizeof(*s->aux));
    s->probs = malloc((size_t)vocab_size * sizeof(float));
    s->work = malloc((size_t)vocab_size * sizeof(float));
    s->count = calloc((size_t)vocab_size, sizeof(*s->count));
    s->ring = malloc((size_t)(p->penalty_last_n > 0 ? p->penalty_last_n : 1) * sizeof(int32_t));
    s->bias = malloc((size_t)(p->n_logit_bias > 0 ? p->n_logit_bias : 1) * sizeof(*s->bias));
    if (!s->c || !s->aux || !s->probs || !s->work || !s->count || !s->ring || !s->bias) {
        wisp_sampler_free(s);
        return wisp_err_set(err, WISP_E_NOMEM, "sampler: out of memory for %d tokens", vocab_size);
    }
    if (p->n_logit_bias > 0)
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof(*s->bias));
    s->p.logit_bias = s->bias;
    wisp_sampler_reset(s);
    *out = s;
    return 0;
}

void wisp_sampler_free(wisp_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->aux);
    free(s->probs);
    free(s->work);
    free(s->count);
    free(s->ring);
    free(s->bias);
    free(s);
}

void wisp_sampler_accept(wisp_sampler *s, int32_t token)
{
    const int cap = s->p.penalty_last_n;
    if (cap <= 0 || token < 0 || token >= s->vocab)
        return;
    if (s->ring_len == cap) {
        s->count[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % cap;
    } else {
        s->ring[(s->ring_head + s->ring_len) % cap] = token;
        s->ring_len++;
    }
    s->count[token]++;
}

/* ---------------------------------------------------------------- filters */

static int cmp_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id; /* ties: lower id first, deterministic */
}

static void sort_cands(wisp_sampler *s)
{
    if (!s->sorted)
        qsort(s->c, (size_t)s->n, sizeof(cand), cmp_desc);
    s->sorted = true;
}

/* probs[i] = softmax of the live candidates' logits times inv_temp. */
static void softmax_cands(wisp_sampler *s, float inv_temp)
{
    float mx = -INFINITY;
    for (int i = 0; i < s->n; i++)
        mx = s->c[i].logit > mx ? s->c[i].logit : mx;
    double sum = 0;
    for (int i = 0; i < s->n; i++) {
        s->probs[i] = expf((s->c[i].logit - mx) * inv_temp);
        sum += s->probs[i];
    }
    for (int i = 0; i < s->n; i++)
        s->probs[i] = (float)(s->probs[i] / sum);
}

static void apply_penalties(wisp_sampler *s, float *logits)
{
    const wisp_sampler_params *p = &s->p;
    if (p->penalty_last_n <= 0 ||
        (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    /* Visit each distinct token of the window once: the first time its count
     * is seen positive; mark by negating, then restore. */
    for (int i = 0; i < s->ring_len; i++) {
        int32_t t = s->ring[(s->ring_head + i) % p->penalty_last_n];
        int32_t cnt = s->count[t];
        if (cnt <= 0)
            continue;
        float l = logits[t];
        l = l <= 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)cnt * p->frequency_penalty + p->presence_penalty;
        logits[t] = l;
        s->count[t] = -cnt;
    }
    for (int i = 0; i < s->ring_len; i++) {
        int32_t t = s->ring[(s->ring_head + i) % p->penalty_last_n];
        if (s->count[t] < 0)
            s->count[t] = -s->count[t];
    }
}

/* Keeps the k highest, sorted: insertion into a k-long prefix when k is
 * small (one pass over the vocabulary), a full sort otherwise. */
static void filter_top_k(wisp_sampler *s, int k)
{
    if (k <= 0 || k >= s->n)
        return;
    if (!s->sorted && k <= 64) {
        /* Insertion into a sorted prefix of k: O(n k) but k is small. */
        int len = 0;
        for (int i = 0; i < s->n; i++) {
            cand x = s->c[i];
            if (len == k && cmp_desc(&x, &s->c[k - 1]) >= 0)
                continue;
            int j = len < k ? len++ : k - 1;
            while (j > 0 && cmp_desc(&x, &s->c[j - 1]) < 0) {
                s->c[j] = s->c[j - 1];
                j--;
            }
            s->c[j] = x;
        }
        s->sorted = true;
    } else {
        sort_cands(s);
    }
    s->n = k;
}

static void filter_typical(wisp_sampler *s, float p)
{
    if (p >= 1.0f || s->n <= 1)
        return;
    softmax_cands(s, 1.0f);
    double entropy = 0;
    for (int i = 0; i < s->n; i++)
        if (s->probs[i] > 0)
            entropy -= s->probs[i] * log(s->probs[i]);
    /* Order by |surprise - entropy| (ascending: the negated score sorts
     * descending) and keep candidates until their mass passes p. */
    cand *order = s->aux;
    for (int i = 0; i < s->n; i++)
        order[i] = (cand){i, -(float)fabs(-log(s->probs[i]) - entropy)};
    qsort(order, (size_t)s->n, sizeof(cand), cmp_desc);
    double cum = 0;
    int last = s->n;
    for (int i = 0; i < s->n; i++) {
        cum += s->probs[order[i].id];
        if (cum > p) {
            last = i + 1;
            break;
        }
    }
    /* order[i].id indexes s->c, so the gather can overwrite order in place. */
    for (int i = 0; i < last; i++)
        order[i] = s->c[order[i].id];
    memcpy(s->c, order, (size_t)last * sizeof(cand));
    s->n = last;
    s->sorted = false;
}

static void filter_top_p(wisp_sampler *s, float p)
{
    if (p >= 1.0f || s->n <= 1)
        return;
    sort_cands(s);
    softmax_cands(s, 1.0f);
    double cum = 0;
    for (int i = 0; i < s->n; i++) {
        cum += s->probs[i];
        if (cum >= p) {
            s->n = i + 1;
            return;
        }
    }
}

static void filter_min_p(wisp_sampler *s, float p)
{
    if (p <= 0.0f || s->n <= 1)
        return;
    /* p_i >= p * p_max  <=>  logit_i >= logit_max + log(p). */
    float mx = -INFINITY;
    for (int i = 0; i < s->n; i++)
        mx = s->c[i].logit > mx ? s->c[i].logit : mx;
    const float floor_logit = mx + logf(p);
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->c[i].logit >= floor_logit)
            s->c[k++] = s->c[i]; /* keeps relative order, so sortedness holds */
    s->n = k;
}

/* ---------------------------------------------------------------- sample */

static void fill_logprobs(wisp_sampler *s, const float *l, wisp_sample *out)
{
    float mx = -INFINITY;
    for (int i = 0; i < s->vocab; i++)
        mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < s->vocab; i++)
        sum += exp((double)(l[i] - mx));
    const float lse = mx + (float)log(sum);
    out->logprob = l[out->token] - lse;
    out->n_top = 0;
    if (!out->top || s->p.n_probs <= 0)
        return;
    const int k = s->p.n_probs < s->vocab ? s->p.n_probs : s->vocab;
    wisp_token_logprob *t = out->top;
    int len = 0;
    for (int i = 0; i < s->vocab; i++) {
        if (len == k && !(l[i] > t[k - 1].logprob))
            continue;
        int j = len < k ? len++ : k - 1;
        while (j > 0 && l[i] > t[j - 1].logprob) {
            t[j] = t[j - 1];
            j--;
        }
        t[j].token = i;
        t[j].logprob = l[i];
    }
    for (int i = 0; i < len; i++)
        t[i].logprob -= lse;
    out->n_top = len;
}

/* The first index of the largest of l[0..n), the one the loop
 *   best = 0; for (i...) if (l[i] > l[best]) best = i;
 * keeps (a NaN never wins, a NaN at 0 stays, the first of equal values
 * wins, +0 and -0 are equal), in two passes of 16 independent lanes that
 * the compiler turns into vector max and compare: the maximum, then the
 * first block that holds it. The engine thread does this once per
 * generated token while the pool's workers wait. */
#define ARGMAX_LANES 16
static int argmax_first(const float *l, int n)
{
    if (n <= 1 || isnan(l[0]))
        return 0;
    float m[ARGMAX_LANES];
    for (int k = 0; k < ARGMAX_LANES; k++)
        m[k] = l[0];
    int i = 0;
    for (; i + ARGMAX_LANES <= n; i += ARGMAX_LANES)
        for (int k = 0; k < ARGMAX_LANES; k++)
            m[k] = l[i + k] > m[k] ? l[i + k] : m[k];
    float mx = m[0];
    for (int k = 1; k < ARGMAX_LANES; k++)
        mx = m[k] > mx ? m[k] : mx;
    for (; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    for (i = 0; i + ARGMAX_LANES <= n; i += ARGMAX_LANES) {
        int hit = 0;
        for (int k = 0; k < ARGMAX_LANES; k++)
            hit |= l[i + k] == mx;
        if (hit)
            break;
    }
    for (; i < n; i++)
        if (l[i] == mx)
            return i;
    return 0;
}

void wisp_sampler_sample(wisp_sampler *s, const float *logits, wisp_sample *out)
{
    const wisp_sampler_params *p = &s->p;
    float *l = s->work;
    memcpy(l, logits, (size_t)s->vocab * sizeof(float));
    for (int i = 0; i < p->n_logit_bias; i++)
        l[p->logit_bias[i].token] += p->logit_bias[i].bias;
    apply_penalties(s, l);

    if (p->temperature <= 0.0f || p->top_k == 1) {
        out->token = argmax_first(l, s->vocab);
    } else {
        for (int i = 0; i < s->vocab; i++)
            s->c[i] = (cand){i, l[i]};
        s->n = s->vocab;
        s->sorted = false;
        filter_top_k(s, p->top_k);
        filter_typical(s, p->typical_p);
        filter_top_p(s, p->top_p);
        filter_min_p(s, p->min_p);
        softmax_cands(s, 1.0f / p->temperature);
        double u = uniform01(s->rng), cum = 0;
        out->token = s->c[s->n - 1].id;
        for (int i = 0; i < s->n; i++) {
            cum += s->probs[i];
            if (u < cum) {
                out->token = s->c[i].id;
                break;
            }
        }
    }
    /* The log-sum-exp is a pass of exp over the whole vocabulary, as long
     * as the greedy choice itself: only when the caller asked for it. */
    if (p->n_probs > 0) {
        fill_logprobs(s, l, out);
    } else {
        out->logprob = NAN;
        out->n_top = 0;
    }
}
