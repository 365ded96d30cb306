/*
 * simd_test_util.h - runs a test body at every SIMD level of the CPU
 * engine this CPU has: each level is its own code (own files, own
 * instructions), so each must pass the checks on its own.
 */
#ifndef WISP_SIMD_TEST_UTIL_H
#define WISP_SIMD_TEST_UTIL_H

#include "engine/cpu/cpu_types.h"
#include "harness.h"

/* fn at scalar, then each level up to the CPU's highest, which is left
 * active; checks that fail say at which level. */
static inline void at_every_level(void (*fn)(void))
{
    const wisp_simd_level max = wisp_cpu_simd_max();
    for (int lv = WISP_SIMD_SCALAR; lv <= (int)max; lv++) {
        REQUIRE(wisp_cpu_simd_force((wisp_simd_level)lv) == (wisp_simd_level)lv);
        const int before = wisp_test_failed_checks;
        fn();
        if (wisp_test_failed_checks > before)
            fprintf(stderr, "  (the checks above failed at SIMD level %s)\n",
                    wisp_cpu_simd_name((wisp_simd_level)lv));
    }
    wisp_cpu_simd_force(max);
}

#endif
