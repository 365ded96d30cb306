/*
 * placement.c - the placement planner: see placement.h.
 */
#include "model/placement.h"

const char *wisp_place_strategy_name(wisp_place_strategy s)
{
    switch (s) {
    case WISP_PLACE_RESIDENT: return "resident";
    case WISP_PLACE_SPLIT: return "split";
    case WISP_PLACE_STREAM: return "stream";
    }
    return "unknown";
}
