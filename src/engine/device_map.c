/*
 * device_map.c - user-given placements: see device_map.h.
 */
#include "engine/device_map.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB        ((uint64_t)1 << 20)
#define MAX_LAYERS (1 << 20) /* far above any model's; keeps sums in an int */

bool wisp_device_map_is_set(const wisp_device_map *m)
{
    return m && (m->n > 0 || m->weights_budget_bytes > 0);
}

bool wisp_device_map_name_ok(const char *name)
{
    if (!name)
        return false;
    if (strcmp(name, "cpu") == 0 || strcmp(name, "cuda") == 0)
        return true;
    if (strncmp(name, "cuda:", 5) != 0 || !name[5] || strlen(name) > 8)
        return false;
    for (const char *p = name + 5; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

int wisp_device_map_add(wisp_device_map *m, const char *device, int64_t layers,
                        int64_t weights_budget_mb, wisp_err *err)
{
    if (m->n >= WISP_PLACE_MAX_STAGES)
        return wisp_err_set(err, WISP_E_INVALID, "at most %d devices", WISP_PLACE_MAX_STAGES);
    if (!wisp_device_map_name_ok(device))
        return wisp_err_set(err, WISP_E_INVALID,
                            "entry %d: unknown device \"%s\" (cpu, cuda or cuda:N)", m->n,
                            device ? device : "");
    if (layers < 1 || layers > MAX_LAYERS)
        return wisp_err_set(err, WISP_E_INVALID,
                            "entry %d (%s): layers must be a whole number from 1 to %d, not %lld",
                            m->n, device, MAX_LAYERS, (long long)layers);
    if (weights_budget_mb < 0 || weights_budget_mb > (int64_t)1 << 30)
        return wisp_err_set(err, WISP_E_INVALID,
                            "entry %d (%s): weights_budget_mb must be in [0, 1073741824]", m->n,
                            device);
    wisp_device_map_entry *e = &m->e[m->n++];
    snprintf(e->device, sizeof e->device, "%s", device);
    e->layers = (int)layers;
    e->weights_budget_bytes = (uint64_t)weights_budget_mb * MIB;
    return 0;
}

int wisp_device_map_parse(const char *text, wisp_device_map *m, wisp_err *err)
{
    m->n = 0;
    const char *p = text ? text : "";
    if (!*p)
        return wisp_err_set(err, WISP_E_INVALID, "expected DEVICE=LAYERS[,DEVICE=LAYERS...]");
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *comma = strchr(p, ',');
        if (!comma)
            comma = p + strlen(p);
        if (!eq || eq > comma)
            return wisp_err_set(err, WISP_E_INVALID,
                                "\"%.*s\" is not DEVICE=LAYERS (e.g. cuda:0=20,cpu=8)",
                                (int)(comma - p), p);
        char dev[16];
        if ((size_t)(eq - p) >= sizeof dev)
            return wisp_err_set(err, WISP_E_INVALID, "unknown device \"%.*s\"", (int)(eq - p), p);
        memcpy(dev, p, (size_t)(eq - p));
        dev[eq - p] = 0;
        char *end;
        errno = 0;
        long long layers = strtoll(eq + 1, &end, 10);
        if (end == eq + 1 || end != comma || errno)
            return wisp_err_set(err, WISP_E_INVALID, "\"%.*s\": the layer count is not a number",
                                (int)(comma - p), p);
        int rc = wisp_device_map_add(m, dev, layers, 0, err);
        if (rc)
            return rc;
        p = *comma ? comma + 1 : comma;
        if (*comma && !*p)
            return wisp_err_set(err, WISP_E_INVALID, "a device is missing after the last ','");
    }
    return 0;
}

int wisp_device_map_placement(const wisp_device_map *m, int n_layers, wisp_placement *out,
                              wisp_err *err)
{
    memset(out, 0, sizeof *out);
    if (m->n == 0) {
        out->strategy = WISP_PLACE_STREAM;
        out->n_stages = 1;
        snprintf(out->stages[0].device, sizeof out->stages[0].device, "cpu");
        out->stages[0].layer_end = n_layers;
        out->stages[0].weights_budget_bytes = m->weights_budget_bytes;
        snprintf(out->reason, sizeof out->reason,
                 "weights_budget_mb: all %d layers streamed on the CPU through %.0f MiB", n_layers,
                 (double)m->weights_budget_bytes / (double)MIB);
        return 0;
    }
    int total = 0;
    for (int i = 0; i < m->n; i++)
        total += m->e[i].layers;
    if (total != n_layers)
        return wisp_err_set(err, WISP_E_INVALID,
                            "'device_map' holds %d layers but the model has %d", total, n_layers);
    out->n_stages = m->n;
    out->strategy = m->n > 1 ? WISP_PLACE_SPLIT : WISP_PLACE_RESIDENT;
    int at = 0;
    for (int i = 0; i < m->n; i++) {
        wisp_place_stage *s = &out->stages[i];
        snprintf(s->device, sizeof s->device, "%s", m->e[i].device);
        s->layer_begin = at;
        s->layer_end = at + m->e[i].layers;
        s->weights_budget_bytes =
            m->e[i].weights_budget_bytes ? m->e[i].weights_budget_bytes : m->weights_budget_bytes;
        if (s->weights_budget_bytes)
            out->strategy = WISP_PLACE_STREAM;
        at = s->layer_end;
    }
    wisp_device_map_describe(m, out->reason, sizeof out->reason);
    return 0;
}

void wisp_device_map_describe(const wisp_device_map *m, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < m->n && at < n; i++) {
        int k = snprintf(buf + at, n - at, "%s%s=%d", i ? "," : "", m->e[i].device, m->e[i].layers);
        if (k > 0)
            at += (size_t)k;
        if (m->e[i].weights_budget_bytes && at < n) {
            k = snprintf(buf + at, n - at, " (streamed, %.0f MiB)",
                         (double)m->e[i].weights_budget_bytes / (double)MIB);
            if (k > 0)
                at += (size_t)k;
        }
    }
    if (m->weights_budget_bytes && at < n)
        snprintf(buf + at, n - at, "%sweights budget %.0f MiB", at ? ", " : "",
                 (double)m->weights_budget_bytes / (double)MIB);
}
