/*
 * placement_json.h - a placement (model/placement.h) as JSON, the one
 * shape model/plan, model/load, model/info and status all answer with.
 */
#ifndef WISP_SERVE_PLACEMENT_JSON_H
#define WISP_SERVE_PLACEMENT_JSON_H

#include <jansson.h>

#include "engine/engine.h"
#include "model/placement.h"

/* {"strategy", "reason", "kv_blocks", "block_size", "stages": [{"device",
 * "layer_begin", "layer_end", "layers", "weight_bytes", "weight_mib",
 * "kv_bytes", "kv_mib", "scratch_bytes", "weights_budget_bytes",
 * "capacity_bytes"}]} (new reference). */
json_t *wisp_placement_json(const wisp_placement *p);

/* status's memory view: per device the placement's bytes, and what the
 * engine reports it holds ({"devices": [...], "weight_bytes",
 * "scratch_bytes", "kv_bytes"}). */
json_t *wisp_placement_memory_json(const wisp_placement *p, const wisp_engine_stats *st);

/* The devices a plan considered, each with its free memory, the reserve
 * kept, what was usable and what the placement put there (p may be NULL:
 * nothing placed). */
json_t *wisp_place_devices_json(const wisp_place_device *d, int n, const wisp_placement *p);

#endif
