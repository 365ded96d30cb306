/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader and the model
 * description built on it.
 *
 * Each input is opened with wisp_gguf_open_memory; when it parses, every
 * getter is exercised (keys, arrays of every kind, tensor infos and their
 * data, which must lie inside the input), and the model loader maps it to
 * a config and roles exactly as wisp_model_open would for a file. Any
 * crash, leak, overread or sanitizer report is a bug; errors are expected.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/model_int.h"

static void touch_metadata(const wisp_gguf *g)
{
    for (int64_t i = 0; i < wisp_gguf_n_kv(g); i++) {
        wisp_str k = wisp_gguf_key_name(g, i);
        char key[256];
        if (k.len >= sizeof key)
            continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        uint32_t u;
        int64_t v;
        float f;
        bool b;
        wisp_str s;
        wisp_gguf_get_u32(g, key, &u);
        wisp_gguf_get_i64(g, key, &v);
        wisp_gguf_get_f32(g, key, &f);
        wisp_gguf_get_bool(g, key, &b);
        wisp_gguf_get_str(g, key, &s);
        wisp_gguf_vtype et;
        uint64_t n;
        if (wisp_gguf_get_arr(g, key, &et, &n)) {
            uint64_t lim = n < 64 ? n : 64;
            for (uint64_t j = 0; j < lim; j++) {
                wisp_str e = wisp_gguf_arr_str(g, key, j);
                if (e.len)
                    (void)*(volatile const char *)&e.ptr[e.len - 1];
                wisp_gguf_arr_int(g, key, j);
                wisp_gguf_arr_float(g, key, j);
            }
            if (n)
                wisp_gguf_arr_str(g, key, n - 1);
            wisp_gguf_arr_data(g, key);
        }
    }
}

static void touch_tensors(const wisp_gguf *g, size_t size)
{
    for (int64_t i = 0; i < wisp_gguf_n_tensors(g); i++) {
        const wisp_gguf_tensor *t = wisp_gguf_tensor_at(g, i);
        if (t->offset + t->nbytes > size)
            abort(); /* the reader promised this cannot happen */
        if (t->nbytes) {
            const volatile uint8_t *p = t->data;
            (void)p[0];
            (void)p[t->nbytes - 1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wisp_gguf *g = NULL;
    wisp_err err = {0};
    if (wisp_gguf_open_memory(data, size, &g, &err) != 0)
        return 0;
    touch_metadata(g);
    touch_tensors(g, size);
    /* The model description over the same reader (the model takes it). */
    wisp_model *m = calloc(1, sizeof *m);
    if (!m) {
        wisp_gguf_close(g);
        return 0;
    }
    m->path = strdup("fuzz.gguf");
    m->gguf = g;
    m->opts.vocab_only = true;
    if (m->path && wisp_model_load_gguf(m, &err) == 0 && m->has_weights) {
        const wisp_model_weights *w = &m->weights;
        for (int l = 0; l < m->cfg.n_layers; l++)
            if (!w->layers[l].wq || !w->layers[l].w_down)
                abort();
        if (!w->tok_embd || !w->output || !w->out_norm)
            abort();
    }
    wisp_model_close(m);
    return 0;
}
