/*
 * range.c - see range.h.
 */
#include "engine/cuda/range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int wisp_cuda_range_init(const wisp_model_config *c, int layer_begin, int layer_end, bool tied,
                         wisp_cuda_range *r, wisp_err *err)
{
    memset(r, 0, sizeof *r);
    const int end = layer_end <= 0 ? c->n_layers : layer_end;
    if (layer_begin < 0 || layer_begin >= end || end > c->n_layers)
        return wisp_err_set(err, WISP_E_INVALID,
                            "cuda engine: layers [%d, %d) are not a non-empty range of the "
                            "model's %d",
                            layer_begin, end, c->n_layers);
    r->begin = layer_begin;
    r->end = end;
    r->n_local = end - layer_begin;
    r->first = layer_begin == 0;
    r->last = end == c->n_layers;
    r->up_embd = r->first;
    r->up_out_norm = r->last;
    r->output_is_embd = r->last && tied && r->first;
    r->up_output = r->last && !r->output_is_embd;
    return 0;
}

int wisp_cuda_parse_device(const char *name, int *index, wisp_err *err)
{
    *index = -1;
    if (name && strcmp(name, "cuda") == 0)
        return 0;
    if (name && strncmp(name, "cuda:", 5) == 0 && name[5] >= '0' && name[5] <= '9') {
        char *end = NULL;
        errno = 0;
        long v = strtol(name + 5, &end, 10);
        if (*end == '\0' && errno == 0 && v >= 0 && v < 1024) {
            *index = (int)v;
            return 0;
        }
    }
    return wisp_err_set(err, WISP_E_INVALID,
                        "device \"%s\" is not \"cuda\" or \"cuda:N\" with N a device index",
                        name ? name : "(null)");
}

size_t wisp_cuda_hidden_bytes(const wisp_model_config *c, int n_rows)
{
    return (size_t)(n_rows > 0 ? n_rows : 0) * (size_t)c->n_embd * sizeof(float);
}
