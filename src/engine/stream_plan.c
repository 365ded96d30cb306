/*
 * stream_plan.c - the layer-streaming plan and schedule (stream_plan.h).
 *
 * Choosing the resident layers (WISP_STREAM_KEEP_FIT): the two slots come
 * first, then the most layers whose bytes fit in what the budget leaves,
 * taken evenly spread over the stage (layer i of n is one of k resident
 * ones when floor((i+1)k/n) > floor(ik/n)). A streamed layer's copy may
 * start when the slot's previous layer, two streamed layers back, has
 * computed, and must end before the layer computes, so it overlaps every
 * layer computed in between: resident layers between streamed ones widen
 * that window, and spreading them widens the narrowest one. With layers
 * of unequal size the spread set of k layers may not fit where another
 * would; the plan then takes fewer, which only costs copies. When streaming
 * is needed at all, at least three layers stream (two slots of the largest
 * layer would otherwise hold them all within the budget).
 */
#include "engine/stream_plan.h"

#include <stdlib.h>
#include <string.h>

#define MIB 1048576.0

void wisp_stream_plan_free(wisp_stream_plan *p)
{
    free(p->bytes);
    free(p->resident);
    free(p->order);
    free(p->pos);
    memset(p, 0, sizeof *p);
}

/* Whether local layer i is one of k spread evenly over n. */
static bool spread_pick(int i, int k, int n)
{
    return (int64_t)(i + 1) * k / n > (int64_t)i * k / n;
}

/* Marks the most evenly spread layers that fit in room resident. */
static void choose_resident(wisp_stream_plan *p, uint64_t room)
{
    for (int k = p->n - 1; k > 0; k--) {
        uint64_t sum = 0;
        for (int i = 0; i < p->n; i++)
            if (spread_pick(i, k, p->n))
                sum += p->bytes[i];
        if (sum > room)
            continue;
        for (int i = 0; i < p->n; i++)
            p->resident[i] = spread_pick(i, k, p->n);
        p->resident_bytes = sum;
        return;
    }
}

int wisp_stream_plan_init(wisp_stream_plan *p, const uint64_t *layer_bytes, int begin, int n,
                          uint64_t budget, wisp_stream_policy policy, wisp_err *err)
{
    memset(p, 0, sizeof *p);
    if (begin < 0 || n <= 0)
        return wisp_err_set(err, WISP_E_INTERNAL, "layer streaming: bad layer range [%d, %d)",
                            begin, begin + n);
    p->begin = begin;
    p->n = n;
    p->bytes = malloc(sizeof *p->bytes * (size_t)n);
    p->resident = calloc((size_t)n, sizeof *p->resident);
    p->order = malloc(sizeof *p->order * (size_t)n);
    p->pos = malloc(sizeof *p->pos * (size_t)n);
    if (!p->bytes || !p->resident || !p->order || !p->pos) {
        wisp_stream_plan_free(p);
        return wisp_err_set(err, WISP_E_NOMEM, "layer streaming: out of memory");
    }
    memcpy(p->bytes, layer_bytes, sizeof *p->bytes * (size_t)n);
    uint64_t total = 0, largest = 0;
    p->largest = begin;
    for (int i = 0; i < n; i++) {
        total += p->bytes[i];
        if (p->bytes[i] > largest) {
            largest = p->bytes[i];
            p->largest = begin + i;
        }
    }
    if (policy == WISP_STREAM_KEEP_FIT && total <= budget) {
        for (int i = 0; i < n; i++) {
            p->resident[i] = true;
            p->pos[i] = -1;
        }
        p->resident_bytes = p->held_bytes = total;
        return 0;
    }
    if (budget < WISP_STREAM_SLOTS * largest)
        return wisp_err_set(err, WISP_E_INVALID,
                            "weights budget of %.2f MiB is less than two of the largest layers "
                            "(layer %d: %.2f MiB each; at least %.2f MiB needed to stream "
                            "layers %d..%d)",
                            (double)budget / MIB, p->largest, (double)largest / MIB,
                            (double)(WISP_STREAM_SLOTS * largest) / MIB, begin, begin + n - 1);
    p->n_slots = WISP_STREAM_SLOTS;
    p->slot_bytes = largest;
    if (policy == WISP_STREAM_KEEP_FIT)
        choose_resident(p, budget - WISP_STREAM_SLOTS * largest);
    for (int i = 0; i < n; i++) {
        p->pos[i] = p->resident[i] ? -1 : p->n_streamed;
        if (!p->resident[i])
            p->order[p->n_streamed++] = begin + i;
    }
    p->held_bytes = p->resident_bytes + (uint64_t)p->n_slots * p->slot_bytes;
    return 0;
}

static bool in_range(const wisp_stream_plan *p, int layer)
{
    return layer >= p->begin && layer < p->begin + p->n;
}

bool wisp_stream_plan_streams(const wisp_stream_plan *p, int layer)
{
    return in_range(p, layer) && p->pos[layer - p->begin] >= 0;
}

int wisp_stream_plan_after(const wisp_stream_plan *p, int layer, int k)
{
    const int at = p->pos[layer - p->begin];
    return p->order[(at + k) % p->n_streamed];
}

uint64_t wisp_stream_plan_layer_bytes(const wisp_stream_plan *p, int layer)
{
    return in_range(p, layer) ? p->bytes[layer - p->begin] : 0;
}

/* ---------------------------------------------------------------- schedule */

void wisp_stream_sched_init(wisp_stream_sched *s, const wisp_stream_plan *p)
{
    memset(s, 0, sizeof *s);
    s->plan = p;
    for (int i = 0; i < WISP_STREAM_SLOTS; i++) {
        s->slot[i].have = -1;
        s->slot[i].want = i < p->n_streamed ? p->order[i] : -1;
    }
    s->need = p->n_streamed > 0 ? p->order[0] : -1;
}

static int slot_wanting(const wisp_stream_sched *s, int layer)
{
    for (int i = 0; i < WISP_STREAM_SLOTS; i++)
        if (s->slot[i].want == layer)
            return i;
    return -1;
}

int wisp_stream_sched_acquire(wisp_stream_sched *s, int layer)
{
    const wisp_stream_plan *p = s->plan;
    int i = slot_wanting(s, layer);
    if (i < 0) {
        const int next = p->n_streamed > 1 ? wisp_stream_plan_after(p, layer, 1) : -1;
        i = s->slot[0].have == next && next >= 0 ? 1 : 0;
        s->slot[i].want = layer;
        s->slot[1 - i].want = next;
    }
    s->need = layer;
    return i;
}

void wisp_stream_sched_release(wisp_stream_sched *s, int layer)
{
    const wisp_stream_plan *p = s->plan;
    const int i = slot_wanting(s, layer);
    if (i >= 0 && p->n_streamed > WISP_STREAM_SLOTS) {
        s->slot[i].want = wisp_stream_plan_after(p, layer, WISP_STREAM_SLOTS);
        s->need = wisp_stream_plan_after(p, layer, 1);
    }
}

int wisp_stream_sched_next_fill(const wisp_stream_sched *s)
{
    int pick = -1;
    for (int i = 0; i < WISP_STREAM_SLOTS; i++) {
        const wisp_stream_slot *k = &s->slot[i];
        if (k->want < 0 || k->want == k->have || k->filling)
            continue;
        if (pick < 0 || k->want == s->need)
            pick = i;
    }
    return pick;
}

int wisp_stream_sched_fill_begin(wisp_stream_sched *s, int i)
{
    s->slot[i].have = -1;
    s->slot[i].filling = true;
    return s->slot[i].want;
}

void wisp_stream_sched_fill_end(wisp_stream_sched *s, int i, int layer)
{
    s->slot[i].filling = false;
    s->slot[i].have = layer;
}
