/*
 * device_map.h - a placement the user spells out: which device runs how
 * many of the model's layers, in order, and optionally a weights budget
 * that makes a stage stream its layers (engine/stages.h).
 *
 * model/load's `device_map` and `weights_budget_mb` and the server's
 * --device-map and --weights-budget-mb flags fill one of these before the
 * model is opened; wisp_device_map_placement() turns it into the
 * placement built for the model once its layer count is known. Names and
 * counts are checked when the map is filled, the layer total against the
 * model when it is placed, each with an error naming what is wrong.
 */
#ifndef WISP_DEVICE_MAP_H
#define WISP_DEVICE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/placement.h"

typedef struct wisp_device_map_entry {
    char device[16];               /* "cpu", "cuda", "cuda:N" */
    int layers;                    /* > 0 */
    uint64_t weights_budget_bytes; /* > 0: this stage streams its layers */
} wisp_device_map_entry;

typedef struct wisp_device_map {
    int n; /* entries; 0: no map */
    wisp_device_map_entry e[WISP_PLACE_MAX_STAGES];
    /* The budget of entries that give none; with no entries, the model
     * runs as one streaming CPU stage under it. 0: none. */
    uint64_t weights_budget_bytes;
} wisp_device_map;

/* True when the map asks for anything (entries or a budget). */
bool wisp_device_map_is_set(const wisp_device_map *m);

/* Whether name is a device a map may name: "cpu", "cuda", "cuda:N". */
bool wisp_device_map_name_ok(const char *name);

/* Appends an entry, checking the name and the count. WISP_E_INVALID. */
int wisp_device_map_add(wisp_device_map *m, const char *device, int64_t layers,
                        int64_t weights_budget_mb, wisp_err *err);

/* Parses the flag form "DEVICE=LAYERS[,DEVICE=LAYERS...]", e.g.
 * "cuda:0=20,cpu=8". WISP_E_INVALID with the reason. */
int wisp_device_map_parse(const char *text, wisp_device_map *m, wisp_err *err);

/* The placement of the map for a model of n_layers: stages in map order
 * over consecutive layer ranges. WISP_E_INVALID when the layers do not
 * add up to n_layers. */
int wisp_device_map_placement(const wisp_device_map *m, int n_layers, wisp_placement *out,
                              wisp_err *err);

/* "cpu=3,cpu=2 (weights budget 64 MiB)", for logs. */
void wisp_device_map_describe(const wisp_device_map *m, char *buf, size_t n);

#endif
