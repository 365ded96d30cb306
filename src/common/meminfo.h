/*
 * meminfo.h - how much host memory the machine has and can give now.
 *
 * The memory decisions (default KV pool size, model placement, device
 * listing) read these instead of parsing /proc themselves, so they all see
 * the same numbers.
 */
#ifndef WISP_MEMINFO_H
#define WISP_MEMINFO_H

#include <stdint.h>

/* Bytes the kernel says can be allocated now without swapping
 * (MemAvailable of /proc/meminfo), or 0 when unknown. */
uint64_t wisp_mem_available(void);
/* Physical memory of the machine in bytes, or 0 when unknown. */
uint64_t wisp_mem_total(void);

#endif
