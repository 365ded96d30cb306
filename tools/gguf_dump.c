/*
 * gguf_dump.c - prints a GGUF file's header, metadata and tensor infos
 * through wisp's own reader (build/tools/gguf_dump FILE [--all]).
 *
 * A debugging aid for model files: what wisp sees is what it prints, so a
 * file that fails to open prints the reader's exact error. Long arrays are
 * cut to their first elements unless --all is given.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model/gguf.h"
#include "model/types.h"

static const char *vtype_names[] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                    "bool", "str", "arr", "u64", "i64", "f64"};

static void print_scalar(const wisp_gguf *g, const char *key, wisp_gguf_vtype t)
{
    if (t == WISP_GGUF_STRING) {
        wisp_str s;
        wisp_gguf_get_str(g, key, &s);
        printf("\"%.*s\"", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    } else if (t == WISP_GGUF_FLOAT32 || t == WISP_GGUF_FLOAT64) {
        float f = 0;
        wisp_gguf_get_f32(g, key, &f);
        printf("%g", f);
    } else if (t == WISP_GGUF_BOOL) {
        bool b = false;
        wisp_gguf_get_bool(g, key, &b);
        printf("%s", b ? "true" : "false");
    } else {
        int64_t v = 0;
        if (wisp_gguf_get_i64(g, key, &v))
            printf("%" PRId64, v);
        else
            printf("(large unsigned)");
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gguf_dump FILE [--all]\n");
        return 2;
    }
    bool all = argc > 2 && strcmp(argv[2], "--all") == 0;
    wisp_gguf *g;
    wisp_err err = {0};
    if (wisp_gguf_open(argv[1], &g, &err) != 0) {
        fprintf(stderr, "gguf_dump: %s\n", err.msg);
        return 1;
    }
    printf("version %u, %" PRId64 " keys, %" PRId64 " tensors, alignment %u, %" PRIu64
           " bytes, data at %" PRIu64 "\n",
           wisp_gguf_version(g), wisp_gguf_n_kv(g), wisp_gguf_n_tensors(g), wisp_gguf_alignment(g),
           wisp_gguf_file_size(g), wisp_gguf_data_offset(g));
    for (int64_t i = 0; i < wisp_gguf_n_kv(g); i++) {
        wisp_str k = wisp_gguf_key_name(g, i);
        char key[512];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        wisp_gguf_vtype t = wisp_gguf_kv_type(g, i);
        printf("  %-48s %-4s ", key, vtype_names[t]);
        if (t != WISP_GGUF_ARRAY) {
            print_scalar(g, key, t);
        } else {
            wisp_gguf_vtype et;
            uint64_t n;
            wisp_gguf_get_arr(g, key, &et, &n);
            printf("[%s x %" PRIu64 "]", vtype_names[et], n);
            uint64_t show = all ? n : (n < 8 ? n : 8);
            for (uint64_t j = 0; j < show; j++) {
                if (et == WISP_GGUF_STRING) {
                    wisp_str s = wisp_gguf_arr_str(g, key, j);
                    printf(" \"%.*s\"", (int)s.len, s.ptr);
                } else if (et == WISP_GGUF_FLOAT32 || et == WISP_GGUF_FLOAT64) {
                    printf(" %g", wisp_gguf_arr_float(g, key, j));
                } else if (et != WISP_GGUF_ARRAY) {
                    printf(" %" PRId64, wisp_gguf_arr_int(g, key, j));
                }
            }
        }
        printf("\n");
    }
    for (int64_t i = 0; i < wisp_gguf_n_tensors(g); i++) {
        const wisp_gguf_tensor *t = wisp_gguf_tensor_at(g, i);
        printf("  tensor %-32.*s %-6s [", (int)t->name.len, t->name.ptr, wisp_type_name(t->type));
        for (int d = 0; d < t->n_dims; d++)
            printf("%s%" PRId64, d ? ", " : "", t->ne[d]);
        printf("] at %" PRIu64 ", %" PRIu64 " bytes\n", t->offset, t->nbytes);
    }
    wisp_gguf_close(g);
    return 0;
}
