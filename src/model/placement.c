/*
 * placement.c - the placement planner: see placement.h.
 *
 * Byte accounting per stage, the same for every strategy:
 *   weights  its layers' blk.N.* bytes, plus token_embd on stage 0, plus
 *            the output head and the other tensors (output_norm,
 *            rope_freqs) on the last stage; a tied head is the embedding
 *            matrix, so a last stage that is not stage 0 holds a copy
 *   KV       its layers' share of the pool: kv_bytes_per_token / n_layers
 *            x block_size x n_blocks per layer
 *   scratch  one step's activations (model/plan.h), on every stage
 * A device's capacity is its free memory less wisp_place_reserve().
 *
 * Streaming keeps the non-layer weights, the whole KV pool and the scratch
 * on the device and a budget of layer weights: at least two layer buffers
 * (the largest layer twice: one computing while the next is copied in),
 * on a GPU all its spare memory, so that the layers that fit stay
 * resident; the layers themselves stay in host memory (the file's
 * mapping). A stage's weight bytes count its budget, at most every layer.
 *
 * The pool shrinks only when the caller allows it (min_blocks < n_blocks):
 * each strategy is tried with the full pool, then with the largest pool
 * of at least min_blocks that it fits (fitting is monotone in the pool).
 */
#include "model/placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((uint64_t)1 << 20)

const char *wisp_place_strategy_name(wisp_place_strategy s)
{
    switch (s) {
    case WISP_PLACE_RESIDENT: return "resident";
    case WISP_PLACE_SPLIT: return "split";
    case WISP_PLACE_STREAM: return "stream";
    }
    return "unknown";
}

uint64_t wisp_place_reserve(const wisp_place_device *d)
{
    if (d->is_cpu)
        return 0;
    uint64_t pct = d->free_bytes / 50;
    return pct > WISP_PLACE_GPU_RESERVE_MIN ? pct : WISP_PLACE_GPU_RESERVE_MIN;
}

static uint64_t capacity(const wisp_place_device *d)
{
    uint64_t r = wisp_place_reserve(d);
    return d->free_bytes > r ? d->free_bytes - r : 0;
}

static uint64_t mib_up(uint64_t b) { return (b + MIB - 1) / MIB; }
static uint64_t mib_down(uint64_t b) { return b / MIB; }

/* ---------------------------------------------------------------- devices */

typedef struct eligible {
    const wisp_place_device *dev[WISP_PLACE_MAX_STAGES];
    uint64_t cap[WISP_PLACE_MAX_STAGES];
    int n;
} eligible;

static void add(eligible *el, const wisp_place_device *d)
{
    if (el->n < WISP_PLACE_MAX_STAGES) {
        el->dev[el->n] = d;
        el->cap[el->n] = capacity(d);
        el->n++;
    }
}

/* The devices layers may go to, in the order they are filled: the GPUs
 * the preference allows in list order, then the CPU when it allows it. */
static int pick_devices(const wisp_place_request *r, eligible *el, wisp_err *err)
{
    const char *pref = r->device && *r->device ? r->device : "auto";
    memset(el, 0, sizeof *el);
    bool gpus = false, cpu = false;
    const char *one = NULL;
    if (strcmp(pref, "auto") == 0) {
        gpus = cpu = true;
    } else if (strcmp(pref, "cpu") == 0) {
        cpu = true;
    } else if (strcmp(pref, "cuda") == 0) {
        gpus = true;
    } else if (strncmp(pref, "cuda:", 5) == 0 && pref[5] >= '0' && pref[5] <= '9' &&
               strspn(pref + 5, "0123456789") == strlen(pref + 5) && strlen(pref) < 16) {
        one = pref;
    } else {
        return wisp_err_set(err, WISP_E_INVALID, "unknown device \"%s\" (auto, cpu, cuda, cuda:N)",
                            pref);
    }
    for (int i = 0; i < r->n_devices; i++) {
        const wisp_place_device *d = &r->devices[i];
        if (!d->is_cpu && (gpus || (one && strcmp(d->name, one) == 0)))
            add(el, d);
    }
    for (int i = 0; i < r->n_devices && cpu; i++)
        if (r->devices[i].is_cpu) {
            add(el, &r->devices[i]);
            break;
        }
    if (el->n > 0)
        return 0;
    char names[128] = "";
    size_t k = 0;
    for (int i = 0; i < r->n_devices && k < sizeof names; i++)
        k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "",
                              r->devices[i].name);
    return wisp_err_set(err, WISP_E_DEVICE, "device \"%s\" was requested but is not there (%s%s)",
                        pref, r->n_devices ? "devices: " : "no devices", names);
}

/* ---------------------------------------------------------------- stages */

typedef struct costs {
    const wisp_model_plan *pl;
    uint64_t kv_layer;  /* one layer's KV rows for the whole pool */
    uint64_t head;      /* output head + other tensors, on a last stage after stage 0 */
    uint64_t head_same; /* the same on stage 0 (a tied head is its embedding) */
} costs;

static void costs_init(costs *c, const wisp_model_plan *pl, int block_size, int n_blocks)
{
    c->pl = pl;
    c->kv_layer =
        pl->kv_bytes_per_token / (uint64_t)pl->n_layers * (uint64_t)block_size * (uint64_t)n_blocks;
    uint64_t out = pl->output_bytes ? pl->output_bytes : pl->cfg.tied_output ? pl->embd_bytes : 0;
    c->head = out + pl->other_bytes;
    c->head_same = pl->output_bytes + pl->other_bytes;
}

static void set_stage(wisp_place_stage *s, const wisp_place_device *d, uint64_t cap, int begin,
                      int end, uint64_t weights, uint64_t kv, uint64_t scratch)
{
    memset(s, 0, sizeof *s);
    snprintf(s->device, sizeof s->device, "%s", d->name);
    s->layer_begin = begin;
    s->layer_end = end;
    s->weight_bytes = weights;
    s->kv_bytes = kv;
    s->scratch_bytes = scratch;
    s->capacity_bytes = cap;
}

/* Everything on el's first device. */
static bool try_resident(const eligible *el, const costs *c, wisp_placement *p)
{
    const wisp_model_plan *pl = c->pl;
    const uint64_t w = pl->weight_bytes;
    const uint64_t kv = c->kv_layer * (uint64_t)pl->n_layers;
    if (w + kv + pl->scratch_bytes > el->cap[0])
        return false;
    p->strategy = WISP_PLACE_RESIDENT;
    p->n_stages = 1;
    set_stage(&p->stages[0], el->dev[0], el->cap[0], 0, pl->n_layers, w, kv, pl->scratch_bytes);
    return true;
}

/* mistral.rs's loop: fill each device in order with as many layers (and
 * their KV) as fit beside its fixed share; the stage that takes the last
 * layer must also hold the head, so a device that could take every
 * remaining layer but not the head as well leaves one layer to the next. */
static bool try_split(const eligible *el, const costs *c, wisp_placement *p)
{
    const wisp_model_plan *pl = c->pl;
    const int L = pl->n_layers;
    int l = 0, n = 0;
    for (int i = 0; i < el->n && l < L; i++) {
        const uint64_t cap = el->cap[i];
        const uint64_t fixed = pl->scratch_bytes + (n == 0 ? pl->embd_bytes : 0);
        if (cap < fixed)
            continue;
        const uint64_t room = cap - fixed;
        const uint64_t head = n == 0 ? c->head_same : c->head;
        uint64_t used = 0;
        int k = 0;
        while (l + k < L && used + pl->layer_bytes[l + k] + c->kv_layer <= room) {
            used += pl->layer_bytes[l + k] + c->kv_layer;
            k++;
        }
        const bool last = l + k == L && used + head <= room;
        if (l + k == L && !last) {
            k--; /* a later device holds the last layer and the head */
            used -= pl->layer_bytes[L - 1] + c->kv_layer;
        }
        if (k <= 0)
            continue; /* this device can hold no layer: skipped */
        uint64_t weights =
            used - (uint64_t)k * c->kv_layer + (n == 0 ? pl->embd_bytes : 0) + (last ? head : 0);
        set_stage(&p->stages[n], el->dev[i], cap, l, l + k, weights, (uint64_t)k * c->kv_layer,
                  pl->scratch_bytes);
        n++;
        l += k;
    }
    if (l < L)
        return false;
    p->n_stages = n;
    p->strategy = n == 1 ? WISP_PLACE_RESIDENT : WISP_PLACE_SPLIT;
    return true;
}

/* What a streaming device holds whatever its budget: the non-layer
 * weights, the KV pool and the scratch. */
static uint64_t stream_fixed(const costs *c)
{
    const wisp_model_plan *pl = c->pl;
    return pl->embd_bytes + pl->output_bytes + pl->other_bytes +
           c->kv_layer * (uint64_t)pl->n_layers + pl->scratch_bytes;
}

/* The least a streaming device needs: the fixed part and two layer
 * buffers. */
static uint64_t stream_need(const costs *c) { return stream_fixed(c) + 2 * c->pl->layer_bytes_max; }

/* The first device that holds the streaming working set. A GPU's budget
 * is all it has spare beside the fixed part: its engine keeps the layers
 * that fit there resident beside the two buffers (engine/stream_plan.h),
 * so only the rest are copied each step. The CPU's is the two buffers:
 * its engine computes a resident layer from the file mapping anyway, and
 * a copy beside it would only add memory. */
static bool try_stream(const eligible *el, const costs *c, wisp_placement *p)
{
    const wisp_model_plan *pl = c->pl;
    for (int i = 0; i < el->n; i++) {
        if (stream_need(c) > el->cap[i])
            continue;
        const uint64_t budget =
            el->dev[i]->is_cpu ? 2 * pl->layer_bytes_max : el->cap[i] - stream_fixed(c);
        const uint64_t layers = budget < pl->layer_bytes_total ? budget : pl->layer_bytes_total;
        p->strategy = WISP_PLACE_STREAM;
        p->n_stages = 1;
        set_stage(&p->stages[0], el->dev[i], el->cap[i], 0, pl->n_layers,
                  pl->embd_bytes + pl->output_bytes + pl->other_bytes + layers,
                  c->kv_layer * (uint64_t)pl->n_layers, pl->scratch_bytes);
        p->stages[0].weights_budget_bytes = budget;
        return true;
    }
    return false;
}

typedef bool (*try_fn)(const eligible *, const costs *, wisp_placement *);

/* Tries strategy f with the full pool, then with the largest pool of at
 * least min_blocks that fits. */
static bool try_pool(try_fn f, const eligible *el, const wisp_place_request *r, wisp_placement *p)
{
    costs c;
    costs_init(&c, r->plan, r->block_size, r->n_blocks);
    if (f(el, &c, p)) {
        p->n_blocks = r->n_blocks;
        return true;
    }
    if (r->min_blocks <= 0 || r->min_blocks >= r->n_blocks)
        return false;
    costs_init(&c, r->plan, r->block_size, r->min_blocks);
    if (!f(el, &c, p))
        return false;
    int lo = r->min_blocks, hi = r->n_blocks - 1; /* lo fits, hi + 1 does not */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        costs_init(&c, r->plan, r->block_size, mid);
        if (f(el, &c, p))
            lo = mid;
        else
            hi = mid - 1;
    }
    costs_init(&c, r->plan, r->block_size, lo);
    f(el, &c, p);
    p->n_blocks = lo;
    return true;
}

/* ---------------------------------------------------------------- words */

static void describe(wisp_placement *p, const wisp_model_plan *pl, const eligible *el)
{
    char *out = p->reason;
    const size_t cap = sizeof p->reason;
    const wisp_place_stage *s = &p->stages[0];
    uint64_t need = 0;
    for (int i = 0; i < p->n_stages; i++)
        need += p->stages[i].weight_bytes + p->stages[i].kv_bytes + p->stages[i].scratch_bytes;
    if (p->strategy == WISP_PLACE_RESIDENT) {
        const char *skipped = strcmp(s->device, el->dev[0]->name) != 0 ? el->dev[0]->name : NULL;
        if (skipped)
            snprintf(out, cap,
                     "all %d layers on %s (%llu MiB of %llu MiB usable); %s cannot hold one "
                     "layer (%llu MiB usable)",
                     pl->n_layers, s->device, (unsigned long long)mib_up(need),
                     (unsigned long long)mib_down(s->capacity_bytes), skipped,
                     (unsigned long long)mib_down(el->cap[0]));
        else
            snprintf(out, cap, "all %d layers on %s (%llu MiB of %llu MiB usable)", pl->n_layers,
                     s->device, (unsigned long long)mib_up(need),
                     (unsigned long long)mib_down(s->capacity_bytes));
    } else if (p->strategy == WISP_PLACE_SPLIT) {
        size_t k = (size_t)snprintf(out, cap, "%llu MiB split by layers over %d devices:",
                                    (unsigned long long)mib_up(need), p->n_stages);
        for (int i = 0; i < p->n_stages && k < cap; i++)
            k += (size_t)snprintf(out + k, cap - k, "%s %s %d-%d (%llu MiB)", i ? "," : "",
                                  p->stages[i].device, p->stages[i].layer_begin,
                                  p->stages[i].layer_end - 1,
                                  (unsigned long long)mib_up(p->stages[i].weight_bytes +
                                                             p->stages[i].kv_bytes +
                                                             p->stages[i].scratch_bytes));
    } else if (s->weights_budget_bytes == 2 * pl->layer_bytes_max) {
        /* the CPU, or a GPU with room for the two buffers alone */
        snprintf(out, cap,
                 "the layers (%llu MiB) do not fit beside the KV cache: streamed from host "
                 "memory through 2 x %llu MiB layer buffers on %s (%llu MiB of %llu MiB usable)",
                 (unsigned long long)mib_up(pl->layer_bytes_total),
                 (unsigned long long)mib_up(pl->layer_bytes_max), s->device,
                 (unsigned long long)mib_up(need), (unsigned long long)mib_down(s->capacity_bytes));
    } else {
        snprintf(out, cap,
                 "the layers (%llu MiB) do not fit beside the KV cache: streamed from host "
                 "memory on %s, those a %llu MiB budget holds resident beside 2 x %llu MiB "
                 "buffers (%llu of %llu MiB usable)",
                 (unsigned long long)mib_up(pl->layer_bytes_total), s->device,
                 (unsigned long long)mib_down(s->weights_budget_bytes),
                 (unsigned long long)mib_up(pl->layer_bytes_max), (unsigned long long)mib_up(need),
                 (unsigned long long)mib_down(s->capacity_bytes));
    }
}

static int refuse(const wisp_place_request *r, const eligible *el, wisp_placement *p, wisp_err *err)
{
    const wisp_model_plan *pl = r->plan;
    const int blocks =
        r->min_blocks > 0 && r->min_blocks < r->n_blocks ? r->min_blocks : r->n_blocks;
    costs c;
    costs_init(&c, pl, r->block_size, blocks);
    const uint64_t kv = c.kv_layer * (uint64_t)pl->n_layers;
    const uint64_t need = pl->weight_bytes + kv + pl->scratch_bytes;
    const uint64_t stream = stream_need(&c);
    uint64_t total = 0, best = 0;
    char devs[512] = "";
    size_t k = 0;
    for (int i = 0; i < el->n; i++) {
        total += el->cap[i];
        if (el->cap[i] > best)
            best = el->cap[i];
        const wisp_place_device *d = el->dev[i];
        if (k < sizeof devs) {
            if (d->is_cpu)
                k += (size_t)snprintf(devs + k, sizeof devs - k, "%s%s %llu MiB available",
                                      i ? ", " : "", d->name,
                                      (unsigned long long)mib_down(el->cap[i]));
            else
                k += (size_t)snprintf(devs + k, sizeof devs - k,
                                      "%s%s %llu MiB usable (%llu MiB free less a %llu MiB "
                                      "reserve)",
                                      i ? ", " : "", d->name,
                                      (unsigned long long)mib_down(el->cap[i]),
                                      (unsigned long long)mib_down(d->free_bytes),
                                      (unsigned long long)mib_up(wisp_place_reserve(d)));
        }
    }
    const uint64_t short_stream = mib_up(stream > best ? stream - best : 0);
    const uint64_t short_all = mib_up(need > total ? need - total : 0);
    /* The shortfall before the device list: a long list is what a full
     * message buffer cuts. */
    wisp_err_set(err, WISP_E_TOO_LARGE,
                 "the model does not fit: it needs %llu MiB with every layer resident (weights "
                 "%llu, KV %llu for %d tokens, scratch %llu) or %llu MiB on one device to stream "
                 "its layers, short by %llu MiB to stream (%llu MiB to hold every layer); %s; "
                 "lower n_ctx, use kv_type q8_0, or a smaller quantization",
                 (unsigned long long)mib_up(need), (unsigned long long)mib_up(pl->weight_bytes),
                 (unsigned long long)mib_up(kv), blocks * r->block_size,
                 (unsigned long long)mib_up(pl->scratch_bytes), (unsigned long long)mib_up(stream),
                 (unsigned long long)short_stream, (unsigned long long)short_all, devs);
    (void)p;
    return WISP_E_TOO_LARGE;
}

int wisp_place_plan(const wisp_place_request *r, wisp_placement *p, wisp_err *err)
{
    memset(p, 0, sizeof *p);
    const wisp_model_plan *pl = r->plan;
    if (!pl || pl->n_layers <= 0 || !pl->layer_bytes || r->n_blocks <= 0 || r->block_size <= 0)
        return wisp_err_set(err, WISP_E_INVALID, "placement: a plan with layers and a KV pool");
    eligible el;
    int rc = pick_devices(r, &el, err);
    if (rc)
        return rc;
    p->block_size = r->block_size;
    static const try_fn order[] = {try_resident, try_split, try_stream};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (try_pool(order[i], &el, r, p)) {
            p->block_size = r->block_size;
            describe(p, pl, &el);
            return 0;
        }
    }
    return refuse(r, &el, p, err);
}

/* ---------------------------------------------------------------- explicit */

/* The device a map's name means: "cpu" the host, "cuda" the first GPU,
 * "cuda:N" that one. */
static const wisp_place_device *find_device(const wisp_place_request *r, const char *name)
{
    const bool want_cpu = strcmp(name, "cpu") == 0, any_gpu = strcmp(name, "cuda") == 0;
    for (int i = 0; i < r->n_devices; i++) {
        const wisp_place_device *d = &r->devices[i];
        if (want_cpu ? d->is_cpu : !d->is_cpu && (any_gpu || strcmp(d->name, name) == 0))
            return d;
    }
    return NULL;
}

static uint64_t stage_need(const wisp_place_stage *s)
{
    return s->weight_bytes + s->kv_bytes + s->scratch_bytes;
}

/* What the stages on el->dev[i]'s device need together. */
static uint64_t device_need(const eligible *el, const wisp_placement *p, int i)
{
    uint64_t need = 0;
    for (int j = 0; j < p->n_stages; j++)
        if (el->dev[j] == el->dev[i])
            need += stage_need(&p->stages[j]);
    return need;
}

/* Fills p's stage bytes as the planner's own stages are counted; el->dev[i]
 * is stage i's device. True when every device holds its stages. */
static bool try_explicit(const eligible *el, const costs *c, wisp_placement *p)
{
    const wisp_model_plan *pl = c->pl;
    for (int i = 0; i < p->n_stages; i++) {
        wisp_place_stage *s = &p->stages[i];
        uint64_t layers = 0;
        for (int l = s->layer_begin; l < s->layer_end; l++)
            layers += pl->layer_bytes[l];
        if (s->weights_budget_bytes && s->weights_budget_bytes < layers)
            layers = s->weights_budget_bytes; /* resident at most the budget */
        s->weight_bytes = layers + (i == 0 ? pl->embd_bytes : 0) +
                          (i == p->n_stages - 1 ? (i == 0 ? c->head_same : c->head) : 0);
        s->kv_bytes = (uint64_t)(s->layer_end - s->layer_begin) * c->kv_layer;
        s->scratch_bytes = pl->scratch_bytes;
        s->capacity_bytes = el->cap[i];
    }
    for (int i = 0; i < p->n_stages; i++)
        if (device_need(el, p, i) > el->cap[i])
            return false;
    return true;
}

static int refuse_explicit(const wisp_place_request *r, const eligible *el, wisp_placement *p,
                           wisp_err *err)
{
    const int blocks =
        r->min_blocks > 0 && r->min_blocks < r->n_blocks ? r->min_blocks : r->n_blocks;
    costs c;
    costs_init(&c, r->plan, r->block_size, blocks);
    try_explicit(el, &c, p);
    char devs[WISP_ERR_MSG_MAX] = "";
    size_t k = 0;
    for (int i = 0; i < p->n_stages && k < sizeof devs; i++) {
        bool first = true;
        for (int j = 0; j < i; j++)
            first = first && el->dev[j] != el->dev[i];
        if (!first)
            continue; /* named with its first stage */
        const wisp_place_device *d = el->dev[i];
        const uint64_t need = device_need(el, p, i);
        k += (size_t)snprintf(devs + k, sizeof devs - k, "%s%s needs %llu MiB of %llu MiB %s",
                              k ? "; " : "", d->name, (unsigned long long)mib_up(need),
                              (unsigned long long)mib_down(el->cap[i]),
                              d->is_cpu ? "available" : "usable");
        if (k < sizeof devs && !d->is_cpu)
            k += (size_t)snprintf(devs + k, sizeof devs - k,
                                  " (%llu MiB free less a %llu MiB reserve)",
                                  (unsigned long long)mib_down(d->free_bytes),
                                  (unsigned long long)mib_up(wisp_place_reserve(d)));
        if (k < sizeof devs && need > el->cap[i])
            k += (size_t)snprintf(devs + k, sizeof devs - k, ", short by %llu MiB",
                                  (unsigned long long)mib_up(need - el->cap[i]));
    }
    return wisp_err_set(err, WISP_E_TOO_LARGE,
                        "the device_map does not fit (KV for %d tokens): %s; move layers to "
                        "another device, lower n_ctx, use kv_type q8_0, or set a weights budget",
                        blocks * r->block_size, devs);
}

int wisp_place_explicit(const wisp_place_request *r, const wisp_placement *in, wisp_placement *p,
                        wisp_err *err)
{
    memset(p, 0, sizeof *p);
    const wisp_model_plan *pl = r->plan;
    if (!pl || pl->n_layers <= 0 || !pl->layer_bytes || r->n_blocks <= 0 || r->block_size <= 0)
        return wisp_err_set(err, WISP_E_INVALID, "placement: a plan with layers and a KV pool");
    if (in->n_stages < 1 || in->n_stages > WISP_PLACE_MAX_STAGES)
        return wisp_err_set(err, WISP_E_INVALID, "placement: 1 to %d stages, not %d",
                            WISP_PLACE_MAX_STAGES, in->n_stages);
    *p = *in;
    eligible el;
    memset(&el, 0, sizeof el);
    int at = 0;
    for (int i = 0; i < p->n_stages; i++) {
        const wisp_place_stage *s = &p->stages[i];
        if (s->layer_begin != at || s->layer_end <= s->layer_begin)
            return wisp_err_set(err, WISP_E_INVALID,
                                "placement: stage %d holds layers [%d, %d); expected a range "
                                "starting at %d",
                                i, s->layer_begin, s->layer_end, at);
        at = s->layer_end;
        const wisp_place_device *d = find_device(r, s->device);
        if (!d) {
            char names[128] = "";
            size_t k = 0;
            for (int j = 0; j < r->n_devices && k < sizeof names; j++)
                k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", j ? ", " : "",
                                      r->devices[j].name);
            return wisp_err_set(err, WISP_E_DEVICE,
                                "device_map entry %d: no engine for device \"%s\" here (%s%s)", i,
                                s->device, r->n_devices ? "devices: " : "no devices", names);
        }
        /* The placement names the device itself, as the planner's do. */
        snprintf(p->stages[i].device, sizeof p->stages[i].device, "%s", d->name);
        el.dev[i] = d;
        el.cap[i] = capacity(d);
    }
    el.n = p->n_stages;
    if (at != pl->n_layers)
        return wisp_err_set(err, WISP_E_INVALID,
                            "placement: the stages hold %d layers but the model has %d", at,
                            pl->n_layers);
    p->block_size = r->block_size;
    if (!try_pool(try_explicit, &el, r, p))
        return refuse_explicit(r, &el, p, err);
    p->block_size = r->block_size;
    uint64_t need = 0;
    for (int i = 0; i < p->n_stages; i++)
        need += stage_need(&p->stages[i]);
    size_t k = strlen(p->reason);
    if (k < sizeof p->reason)
        snprintf(p->reason + k, sizeof p->reason - k, "%s%llu MiB as device_map places it",
                 k ? ": " : "", (unsigned long long)mib_up(need));
    return 0;
}
