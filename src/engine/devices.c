/*
 * devices.c - the devices this build computes on: see factory.h.
 *
 * The CPU is always there: its name from /proc/cpuinfo and the machine's
 * physical memory. GPU engines append their devices when they are built in.
 */
#include "engine/factory.h"

#include <stdio.h>
#include <string.h>

#include "common/meminfo.h"
#if WISP_CUDA
#include "common/log.h"
#include "engine/cuda/engine_cuda.h"
#endif

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

int wisp_engine_devices(wisp_engine_device *out, int max)
{
    if (max < 1)
        return 0;
    memset(&out[0], 0, sizeof out[0]);
    snprintf(out[0].kind, sizeof out[0].kind, "cpu");
    cpu_name(out[0].name, sizeof out[0].name);
    out[0].memory_bytes = wisp_mem_total();
    int n = 1;
#if WISP_CUDA
    wisp_cuda_device_info gpus[WISP_ENGINE_MAX_DEVICES];
    wisp_err err = {0};
    int k = wisp_cuda_devices(gpus, WISP_ENGINE_MAX_DEVICES, &err);
    if (k < 0)
        WISP_LOGI("no CUDA device: %s", err.msg);
    for (int i = 0; i < k && n < max && i < WISP_ENGINE_MAX_DEVICES; i++) {
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].kind, sizeof out[n].kind, "cuda");
        snprintf(out[n].name, sizeof out[n].name, "%s", gpus[i].name);
        out[n].memory_bytes = gpus[i].total_bytes;
        n++;
    }
#endif
    return n;
}

int wisp_engine_place_devices(wisp_place_device *out, int max)
{
    if (max < 1)
        return 0;
    memset(&out[0], 0, sizeof out[0]);
    snprintf(out[0].name, sizeof out[0].name, "cpu");
    out[0].is_cpu = true;
    out[0].free_bytes = wisp_mem_available();
    if (out[0].free_bytes == 0) /* no /proc/meminfo: the machine's RAM */
        out[0].free_bytes = wisp_mem_total();
    int n = 1;
#if WISP_CUDA
    wisp_cuda_device_info gpus[WISP_ENGINE_MAX_DEVICES];
    wisp_err err = {0};
    int k = wisp_cuda_devices(gpus, WISP_ENGINE_MAX_DEVICES, &err);
    for (int i = 0; i < k && n < max && i < WISP_ENGINE_MAX_DEVICES; i++) {
        if (!gpus[i].usable)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].name, sizeof out[n].name, "cuda:%d", gpus[i].index);
        out[n].free_bytes = gpus[i].free_bytes;
        n++;
    }
#endif
    return n;
}
