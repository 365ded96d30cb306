/*
 * placement_json.c - placements as JSON: see placement_json.h.
 */
#include "serve/placement_json.h"

#include <string.h>

#define U(x) ((json_int_t)(x))

static double mib(uint64_t b) { return (double)(b * 10 / (1 << 20)) / 10.0; }

static json_t *stage_json(const wisp_place_stage *s)
{
    json_t *o =
        json_pack("{s:s, s:i, s:i, s:i, s:I, s:f, s:I, s:f, s:I, s:I, s:I}", "device", s->device,
                  "layer_begin", s->layer_begin, "layer_end", s->layer_end, "layers",
                  s->layer_end - s->layer_begin, "weight_bytes", U(s->weight_bytes), "weight_mib",
                  mib(s->weight_bytes), "kv_bytes", U(s->kv_bytes), "kv_mib", mib(s->kv_bytes),
                  "scratch_bytes", U(s->scratch_bytes), "weights_budget_bytes",
                  U(s->weights_budget_bytes), "capacity_bytes", U(s->capacity_bytes));
    return o;
}

json_t *wisp_placement_json(const wisp_placement *p)
{
    json_t *stages = json_array();
    for (int i = 0; i < p->n_stages; i++)
        json_array_append_new(stages, stage_json(&p->stages[i]));
    return json_pack("{s:s, s:s, s:i, s:i, s:o}", "strategy", wisp_place_strategy_name(p->strategy),
                     "reason", p->reason, "kv_blocks", p->n_blocks, "block_size", p->block_size,
                     "stages", stages);
}

json_t *wisp_placement_memory_json(const wisp_placement *p, const wisp_engine_stats *st)
{
    json_t *devs = json_array();
    for (int i = 0; i < p->n_stages; i++) {
        const wisp_place_stage *s = &p->stages[i];
        json_array_append_new(devs, json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "device", s->device,
                                              "layers", s->layer_end - s->layer_begin,
                                              "weight_bytes", U(s->weight_bytes), "kv_bytes",
                                              U(s->kv_bytes), "scratch_bytes", U(s->scratch_bytes),
                                              "weights_budget_bytes", U(s->weights_budget_bytes)));
    }
    return json_pack("{s:o, s:I, s:I, s:I}", "devices", devs, "engine_weight_bytes",
                     U(st->weight_bytes), "scratch_bytes", U(st->scratch_bytes), "kv_bytes",
                     U(st->kv_bytes));
}

json_t *wisp_place_devices_json(const wisp_place_device *d, int n, const wisp_placement *p)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        uint64_t reserve = wisp_place_reserve(&d[i]);
        uint64_t w = 0, kv = 0;
        int layers = 0;
        for (int k = 0; p && k < p->n_stages; k++) {
            const wisp_place_stage *s = &p->stages[k];
            if (strcmp(s->device, d[i].name) != 0)
                continue;
            w += s->weight_bytes;
            kv += s->kv_bytes;
            layers += s->layer_end - s->layer_begin;
        }
        json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:I, s:I, s:b}", "kind",
                                           d[i].is_cpu ? "cpu" : "cuda", "name", d[i].name,
                                           "memory_bytes", U(d[i].free_bytes), "reserve_bytes",
                                           U(reserve), "usable_bytes",
                                           U(d[i].free_bytes > reserve ? d[i].free_bytes - reserve
                                                                       : 0),
                                           "layers", layers, "weights_bytes", U(w), "kv_bytes",
                                           U(kv), "fits", layers > 0));
    }
    return a;
}
