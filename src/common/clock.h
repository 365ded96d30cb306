/*
 * clock.h - the one monotonic clock of the process.
 *
 * Durations (load times, request timings, uptime, benchmark steps) are
 * measured on CLOCK_MONOTONIC so that a wall-clock change never makes one
 * negative. Wall-clock time stamps (log lines) are not durations and do
 * not come from here.
 */
#ifndef WISP_CLOCK_H
#define WISP_CLOCK_H

/* Milliseconds since an arbitrary fixed point, with sub-millisecond
 * resolution. */
double wisp_now_ms(void);

#endif
