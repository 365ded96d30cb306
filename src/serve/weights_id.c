/* weights_id.c - a model identity over the tensor data: see weights_id.h. */
#include "serve/weights_id.h"

#include <xxhash.h>

uint64_t wisp_weights_identity(const wisp_model *m, uint64_t base)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return base;   /* no memory: the cheap identity still separates most files */
    XXH3_64bits_reset_withSeed(st, base);
    int64_t n = wisp_model_n_tensors(m);
    for (int64_t i = 0; i < n; i++) {
        const wisp_tensor *t = wisp_model_tensor_at(m, i);
        if (t && t->data && t->nbytes)
            XXH3_64bits_update(st, t->data, t->nbytes);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}
