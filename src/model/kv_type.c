/* kv_type.c - the KV cache formats: see kv_type.h. */
#include "model/kv_type.h"

#include <stdio.h>
#include <string.h>

const char *const wisp_kv_type_names[WISP_KV_TYPE_COUNT + 1] = {
#define NAME_(ID, NAME, ELEM) [WISP_KV_##ID] = NAME,
    WISP_KV_TYPES(NAME_)
#undef NAME_
        [WISP_KV_TYPE_COUNT] = NULL,
};

static const int kv_elem[WISP_KV_TYPE_COUNT] = {
#define ELEM_(ID, NAME, ELEM) [WISP_KV_##ID] = ELEM,
    WISP_KV_TYPES(ELEM_)
#undef ELEM_
};

const char *wisp_kv_type_name(int kv)
{
    return kv >= 0 && kv < WISP_KV_TYPE_COUNT ? wisp_kv_type_names[kv] : "unknown";
}

int wisp_kv_type_from_name(const char *name, wisp_kv_type *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < WISP_KV_TYPE_COUNT; i++)
        if (strcmp(name, wisp_kv_type_names[i]) == 0) {
            *out = (wisp_kv_type)i;
            return 0;
        }
    return -1;
}

int wisp_kv_type_elem(int kv) { return kv >= 0 && kv < WISP_KV_TYPE_COUNT ? kv_elem[kv] : -1; }

void wisp_kv_type_list(char *buf, size_t cap)
{
    size_t n = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < WISP_KV_TYPE_COUNT && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", wisp_kv_type_names[i]);
        if (w < 0)
            return;
        n += (size_t)w;
    }
}
