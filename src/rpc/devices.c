/*
 * devices.c - the devices initialize reports.
 *
 * The CPU is always there: its name from /proc/cpuinfo and the machine's
 * physical memory. GPU engines append their devices when they are built in.
 */
#include "rpc/server.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void cpu_name(char *out, size_t cap)
{
    snprintf(out, cap, "cpu");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\n");
        /* Keep printable ASCII only: the name goes into JSON strings. */
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < cap; i++)
            if (v[i] >= 0x20 && v[i] < 0x7f)
                out[k++] = v[i];
        if (k)
            out[k] = '\0';
        break;
    }
    fclose(fp);
}

int wisp_devices_detect(wisp_device_info *out, int max)
{
    if (max < 1)
        return 0;
    memset(&out[0], 0, sizeof out[0]);
    snprintf(out[0].kind, sizeof out[0].kind, "cpu");
    cpu_name(out[0].name, sizeof out[0].name);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    out[0].memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    return 1;
}
