/*
 * test_stream_plan.c - the layer-streaming plan and schedule both engines
 * act on (engine/stream_plan.h): the budget check and its message, which
 * layers stay resident (all when they fit, evenly spread otherwise, never
 * more bytes than the budget), and the slot schedule acted out the way
 * the CUDA engine does (every copy queued as soon as it is named) and
 * checked step by step: a layer is computed only from a slot holding it,
 * a slot is never refilled while a layer computes from it, every streamed
 * layer is copied once per step, each copy is queued at least one layer's
 * compute ahead of its use, and a step cut short recovers.
 */
#include <stdint.h>
#include <string.h>

#include "engine/stream_plan.h"
#include "harness.h"

#define MIB ((uint64_t)1 << 20)

static uint64_t sum(const uint64_t *b, int n)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s += b[i];
    return s;
}

/* The plan's own numbers agree with each other and with the budget. */
static void check_consistent(const wisp_stream_plan *p, const uint64_t *bytes, uint64_t budget)
{
    uint64_t res = 0;
    int streamed = 0;
    for (int i = 0; i < p->n; i++) {
        const int l = p->begin + i;
        CHECK(p->resident[i] == !wisp_stream_plan_streams(p, l));
        if (p->resident[i]) {
            res += bytes[i];
            CHECK_EQ_INT(p->pos[i], -1);
        } else {
            CHECK_EQ_INT(p->order[p->pos[i]], l);
            streamed++;
        }
        CHECK(wisp_stream_plan_layer_bytes(p, l) == bytes[i]);
    }
    CHECK_EQ_INT(streamed, p->n_streamed);
    CHECK(res == p->resident_bytes);
    CHECK(p->held_bytes == p->resident_bytes + (uint64_t)p->n_slots * p->slot_bytes);
    CHECK(p->held_bytes <= budget);
    CHECK((p->n_streamed > 0) == (p->n_slots == WISP_STREAM_SLOTS));
    for (int k = 1; k < p->n_streamed; k++)
        CHECK(p->order[k] > p->order[k - 1]);
}

TEST(stream_all_needs_two_of_the_largest)
{
    const uint64_t bytes[5] = {3 * MIB, 4 * MIB, 4 * MIB, 2 * MIB, 4 * MIB};
    wisp_stream_plan p;
    wisp_err err = {0};
    CHECK_EQ_INT(wisp_stream_plan_init(&p, bytes, 10, 5, 8 * MIB - 1, WISP_STREAM_ALL, &err),
                 WISP_E_INVALID);
    /* the first of the largest, the MiB needed, the stage's layers */
    CHECK(strstr(err.msg, "layer 11: 4.00 MiB each") != NULL);
    CHECK(strstr(err.msg, "at least 8.00 MiB") != NULL);
    CHECK(strstr(err.msg, "layers 10..14") != NULL);
    wisp_stream_plan_free(&p);
    /* a budget far above the layers still streams every layer */
    for (uint64_t budget = 8 * MIB; budget <= 64 * MIB; budget *= 8) {
        REQUIRE(wisp_stream_plan_init(&p, bytes, 10, 5, budget, WISP_STREAM_ALL, &err) == 0);
        CHECK_EQ_INT(p.n_streamed, 5);
        CHECK_EQ_INT(p.n_slots, 2);
        CHECK(p.slot_bytes == 4 * MIB && p.held_bytes == 8 * MIB);
        CHECK_EQ_INT(p.largest, 11);
        check_consistent(&p, bytes, budget);
        wisp_stream_plan_free(&p);
    }
    CHECK_EQ_INT(wisp_stream_plan_init(&p, bytes, -1, 5, 64 * MIB, WISP_STREAM_ALL, &err),
                 WISP_E_INTERNAL);
    wisp_stream_plan_free(&p);
}

TEST(keep_fit_holds_everything_that_fits)
{
    const uint64_t bytes[3] = {5 * MIB, 6 * MIB, 5 * MIB};
    wisp_stream_plan p;
    wisp_err err = {0};
    /* every layer fits: nothing streams, even below two of the largest
     * (a one-layer stage under a budget of that layer) */
    REQUIRE(wisp_stream_plan_init(&p, bytes, 0, 3, 16 * MIB, WISP_STREAM_KEEP_FIT, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 0);
    CHECK_EQ_INT(p.n_slots, 0);
    CHECK(p.held_bytes == 16 * MIB);
    check_consistent(&p, bytes, 16 * MIB);
    wisp_stream_plan_free(&p);
    REQUIRE(wisp_stream_plan_init(&p, bytes + 1, 4, 1, 6 * MIB, WISP_STREAM_KEEP_FIT, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 0);
    wisp_stream_plan_free(&p);
    /* one byte short of all three: they stream, two of the largest fit */
    REQUIRE(wisp_stream_plan_init(&p, bytes, 0, 3, 16 * MIB - 1, WISP_STREAM_KEEP_FIT, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 3);
    CHECK(p.held_bytes == 12 * MIB);
    check_consistent(&p, bytes, 16 * MIB - 1);
    wisp_stream_plan_free(&p);
    CHECK_EQ_INT(wisp_stream_plan_init(&p, bytes, 0, 3, 12 * MIB - 1, WISP_STREAM_KEEP_FIT, &err),
                 WISP_E_INVALID);
    wisp_stream_plan_free(&p);
}

TEST(keep_fit_spreads_the_resident_layers)
{
    uint64_t bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = 3 * MIB;
    wisp_stream_plan p;
    wisp_err err = {0};
    /* the slots (6 MiB) and room for two layers, not three */
    const uint64_t budget = 6 * MIB + 2 * 3 * MIB + 3 * MIB - 1;
    REQUIRE(wisp_stream_plan_init(&p, bytes, 20, 8, budget, WISP_STREAM_KEEP_FIT, &err) == 0);
    CHECK_EQ_INT(p.n_streamed, 6);
    /* every fourth layer, ending the stage: the streamed ones between */
    CHECK(p.resident[3] && p.resident[7]);
    const int want[6] = {20, 21, 22, 24, 25, 26};
    for (int k = 0; k < 6; k++)
        CHECK_EQ_INT(p.order[k], want[k]);
    CHECK(p.held_bytes == 12 * MIB);
    check_consistent(&p, bytes, budget);
    /* the cycle wraps over the resident layers and the step's end */
    CHECK_EQ_INT(wisp_stream_plan_after(&p, 22, 1), 24);
    CHECK_EQ_INT(wisp_stream_plan_after(&p, 26, 1), 20);
    CHECK_EQ_INT(wisp_stream_plan_after(&p, 25, 2), 20);
    wisp_stream_plan_free(&p);
}

/* A tiny deterministic generator for the property cases. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

TEST(keep_fit_never_exceeds_the_budget)
{
    int planned = 0, refused = 0, partial = 0;
    for (int round = 0; round < 2000; round++) {
        const int n = 1 + (int)(rng() % 24);
        uint64_t bytes[24];
        for (int i = 0; i < n; i++)
            bytes[i] = 1 + rng() % (8 * MIB);
        const uint64_t total = sum(bytes, n);
        const uint64_t budget = rng() % (total + total / 4 + 1);
        wisp_stream_plan p;
        wisp_err err = {0};
        int rc = wisp_stream_plan_init(&p, bytes, 0, n, budget, WISP_STREAM_KEEP_FIT, &err);
        uint64_t largest = 0;
        for (int i = 0; i < n; i++)
            largest = bytes[i] > largest ? bytes[i] : largest;
        if (rc) {
            CHECK_EQ_INT(rc, WISP_E_INVALID);
            CHECK(total > budget && budget < 2 * largest);
            refused++;
        } else {
            check_consistent(&p, bytes, budget);
            CHECK((p.n_streamed == 0) == (total <= budget));
            CHECK(p.n_streamed == 0 || p.n_streamed >= 3);
            CHECK(p.n_streamed == 0 || p.slot_bytes == largest);
            partial += p.n_streamed > 0 && p.n_streamed < n;
            planned++;
        }
        wisp_stream_plan_free(&p);
    }
    /* the generator reaches every branch */
    CHECK(planned > 100 && refused > 100 && partial > 100);
}

/* ---------------------------------------------------------------- schedule */

/* Acts the schedule out as the CUDA engine does: fills are queued as soon
 * as the schedule names them (fill_begin and fill_end at once), in an
 * order of events counted by clock. */
typedef struct sim {
    wisp_stream_sched s;
    const wisp_stream_plan *p;
    int clock;
    int in_use[WISP_STREAM_SLOTS]; /* layer computing from the slot, or -1 */
    int issued_at[64];             /* per layer: clock of its latest copy */
    int used_copy[64];             /* per layer: clock of the copy it computed from */
    int copies;
    int bad;
} sim;

static void sim_fill(sim *m)
{
    for (int i; (i = wisp_stream_sched_next_fill(&m->s)) >= 0;) {
        const int l = wisp_stream_sched_fill_begin(&m->s, i);
        if (m->in_use[i] >= 0 && l != m->in_use[i]) {
            fprintf(stderr, "  slot %d takes layer %d while layer %d computes from it\n", i, l,
                    m->in_use[i]);
            m->bad++;
        }
        m->issued_at[l] = m->clock++;
        m->copies++;
        wisp_stream_sched_fill_end(&m->s, i, l);
    }
}

static void sim_init(sim *m, const wisp_stream_plan *p)
{
    memset(m, 0, sizeof *m);
    m->p = p;
    for (int i = 0; i < WISP_STREAM_SLOTS; i++)
        m->in_use[i] = -1;
    wisp_stream_sched_init(&m->s, p);
    sim_fill(m);
}

/* Runs the stage's layers [begin, stop) in order; returns the clock at
 * the acquire of each layer in acquired_at. Copies are also offered in
 * the middle of each layer's compute, where the CPU engine's copy thread
 * may run. */
static void sim_step(sim *m, int stop, int *acquired_at)
{
    const wisp_stream_plan *p = m->p;
    for (int l = p->begin; l < stop; l++) {
        if (!wisp_stream_plan_streams(p, l)) {
            acquired_at[l] = m->clock++;
            continue;
        }
        const int i = wisp_stream_sched_acquire(&m->s, l);
        m->in_use[i] = l;
        sim_fill(m);
        if (m->s.slot[i].have != l) {
            fprintf(stderr, "  layer %d computes from slot %d holding %d\n", l, i,
                    m->s.slot[i].have);
            m->bad++;
        }
        m->used_copy[l] = m->issued_at[l];
        acquired_at[l] = m->clock++;
        sim_fill(m);
        m->clock++; /* the layer's compute */
        m->in_use[i] = -1;
        wisp_stream_sched_release(&m->s, l);
        sim_fill(m);
    }
}

static void plan_equal(wisp_stream_plan *p, int begin, int n, int n_resident_room,
                       wisp_stream_policy policy)
{
    uint64_t bytes[64];
    for (int i = 0; i < n; i++)
        bytes[i] = MIB;
    wisp_err err = {0};
    const uint64_t budget = (uint64_t)(WISP_STREAM_SLOTS + n_resident_room) * MIB;
    REQUIRE(wisp_stream_plan_init(p, bytes, begin, n, budget, policy, &err) == 0);
}

TEST(schedule_double_buffers_in_order)
{
    /* even and odd numbers of streamed layers (an odd cycle alternates
     * which slot a layer takes from step to step), with resident layers
     * between them and without */
    const struct {
        int begin, n, room;
        wisp_stream_policy policy;
    } cases[] = {
        {0, 6, 0, WISP_STREAM_ALL},      {3, 5, 0, WISP_STREAM_ALL},
        {0, 8, 2, WISP_STREAM_KEEP_FIT}, {1, 9, 2, WISP_STREAM_KEEP_FIT},
        {0, 3, 0, WISP_STREAM_ALL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        wisp_stream_plan p;
        plan_equal(&p, cases[c].begin, cases[c].n, cases[c].room, cases[c].policy);
        REQUIRE(p.n_streamed >= 3);
        sim m;
        sim_init(&m, &p);
        CHECK_EQ_INT(m.copies, 2); /* the first two streamed layers at once */
        int at[64];
        for (int step = 0; step < 5; step++) {
            const int before = m.copies;
            sim_step(&m, p.begin + p.n, at);
            /* each streamed layer once a step */
            CHECK_EQ_INT(m.copies - before, p.n_streamed);
            /* each copy queued before the previous streamed layer was
             * acquired, so it overlaps that layer's compute */
            for (int k = 1; k < p.n_streamed; k++)
                CHECK(m.used_copy[p.order[k]] < at[p.order[k - 1]]);
        }
        CHECK_EQ_INT(m.bad, 0);
        wisp_stream_plan_free(&p);
    }
}

TEST(schedule_keeps_one_or_two_streamed_layers)
{
    for (int n = 1; n <= 2; n++) {
        wisp_stream_plan p;
        plan_equal(&p, 4, n, 0, WISP_STREAM_ALL);
        sim m;
        sim_init(&m, &p);
        int at[64];
        for (int step = 0; step < 4; step++)
            sim_step(&m, p.begin + n, at);
        CHECK_EQ_INT(m.copies, n); /* copied once, kept */
        CHECK_EQ_INT(m.bad, 0);
        wisp_stream_plan_free(&p);
    }
}

TEST(schedule_recovers_from_a_step_cut_short)
{
    wisp_stream_plan p;
    plan_equal(&p, 0, 7, 1, WISP_STREAM_KEEP_FIT);
    REQUIRE(p.n_streamed == 6);
    sim m;
    sim_init(&m, &p);
    int at[64];
    /* steps cancelled before every layer, each followed by a whole one */
    for (int stop = 0; stop <= p.n; stop++) {
        sim_step(&m, stop, at);
        const int before = m.copies;
        sim_step(&m, p.n, at);
        /* at most the two slots' refills beyond the usual copies */
        CHECK(m.copies - before <= p.n_streamed + WISP_STREAM_SLOTS);
    }
    /* back in order, a step costs its usual copies again */
    const int before = m.copies;
    sim_step(&m, p.n, at);
    CHECK_EQ_INT(m.copies - before, p.n_streamed);
    CHECK_EQ_INT(m.bad, 0);
    wisp_stream_plan_free(&p);
}

TEST(schedule_prefers_the_layer_compute_needs)
{
    wisp_stream_plan p;
    plan_equal(&p, 0, 5, 0, WISP_STREAM_ALL);
    wisp_stream_sched s;
    wisp_stream_sched_init(&s, &p);
    /* both slots empty: the one wanting layer 0 (needed first) fills first */
    int i = wisp_stream_sched_next_fill(&s);
    REQUIRE(i >= 0);
    CHECK_EQ_INT(s.slot[i].want, 0);
    CHECK_EQ_INT(wisp_stream_sched_fill_begin(&s, i), 0);
    CHECK(s.slot[i].filling && s.slot[i].have == -1);
    /* a slot being filled is not named again */
    const int j = wisp_stream_sched_next_fill(&s);
    CHECK(j == 1 - i);
    wisp_stream_sched_fill_end(&s, i, 0);
    CHECK(!s.slot[i].filling && s.slot[i].have == 0);
    /* compute wants layer 1 before 0 is copied: layer 1's slot first */
    wisp_stream_sched_init(&s, &p);
    CHECK_EQ_INT(wisp_stream_sched_acquire(&s, 1), 1);
    CHECK_EQ_INT(wisp_stream_sched_next_fill(&s), 1);
    wisp_stream_sched_init(&s, &p);
    /* out of order: layer 3 takes a slot, its successor the other */
    const int k = wisp_stream_sched_acquire(&s, 3);
    CHECK_EQ_INT(s.slot[k].want, 3);
    CHECK_EQ_INT(s.slot[1 - k].want, 4);
    CHECK_EQ_INT(s.need, 3);
    CHECK_EQ_INT(s.slot[wisp_stream_sched_next_fill(&s)].want, 3);
    wisp_stream_plan_free(&p);
}
