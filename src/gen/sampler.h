/*
 * sampler.h - choosing the next token from a logit vector.
 *
 * One sampler per request: it owns its candidate buffers (allocated once for
 * the vocabulary, nothing per token), its penalty history and its PRNG
 * state (xoshiro256**, seeded from the request's seed through splitmix64),
 * so a seeded request is reproducible whatever else the server runs. The
 * filters run in llama.cpp's default order:
 *
 *   logit bias -> penalties -> top-k -> typical-p -> top-p -> min-p
 *              -> temperature -> draw from the softmax
 *
 * temperature <= 0 or top_k == 1 is greedy: the argmax of the logits after
 * bias and penalties. No jansson, no libev: the RPC layer maps protocol
 * parameters onto wisp_sampler_params.
 */
#ifndef WISP_SAMPLER_H
#define WISP_SAMPLER_H

#include <stdint.h>

#include "common/err.h"

typedef struct wisp_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
} wisp_logit_bias;

typedef struct wisp_sampler_params {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off; 1: greedy */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float typical_p;         /* >= 1: off */
    float repeat_penalty;    /* 1: off; logit > 0 divided by it, logit <= 0 multiplied */
    float presence_penalty;  /* 0: off; subtracted once from tokens seen */
    float frequency_penalty; /* 0: off; subtracted per occurrence */
    int penalty_last_n;      /* history window for the penalties; 0: off */
    uint64_t seed;
    const wisp_logit_bias *logit_bias; /* copied at create */
    int n_logit_bias;
    int n_probs; /* top log-probabilities reported per token; 0: none */
} wisp_sampler_params;

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * typical_p 1, repeat_penalty 1, penalty_last_n 64, seed 0, no bias. */
void wisp_sampler_params_default(wisp_sampler_params *p);

typedef struct wisp_token_logprob {
    int32_t token;
    float logprob;
} wisp_token_logprob;

/* What one sampling step chose, and the log-probabilities n_probs asked for:
 * log-softmax of the logits after bias and penalties, before truncation and
 * temperature (the model's distribution, adjusted by the request's
 * penalties), highest first. */
typedef struct wisp_sample {
    int32_t token;
    float logprob;           /* of token under the same distribution; NaN when n_probs is 0 */
    int n_top;               /* entries filled in top (<= n_probs) */
    wisp_token_logprob *top; /* caller's array of n_probs, or NULL */
} wisp_sample;

typedef struct wisp_sampler wisp_sampler;

/* Returns 0, or WISP_E_INVALID (a parameter out of range, a bias for a
 * token outside the vocabulary) / WISP_E_NOMEM with err set. */
int wisp_sampler_create(const wisp_sampler_params *p, int vocab_size, wisp_sampler **out,
                        wisp_err *err);
void wisp_sampler_free(wisp_sampler *s);

/* Adds a token to the penalty history (prompt tokens too, as llama.cpp's
 * server does, and each sampled token once it is chosen). */
void wisp_sampler_accept(wisp_sampler *s, int32_t token);

/* Chooses the next token from vocab_size logits (not modified). Fills out
 * (out->top, when not NULL, must hold n_probs entries). Does not accept the
 * token: call wisp_sampler_accept with it. */
void wisp_sampler_sample(wisp_sampler *s, const float *logits, wisp_sample *out);

/* Restores the PRNG to the seed and clears the history. */
void wisp_sampler_reset(wisp_sampler *s);

#endif
