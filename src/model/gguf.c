/*
 * gguf.c - a validating, zero-copy GGUF (v2, v3) reader: see gguf.h.
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors,
 * u64 n_kv, then n_kv key/value pairs, then n_tensors tensor infos
 * (name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset relative to the
 * data section), then padding to general.alignment (default 32) and the
 * data section.
 *
 * Why it is built so: the whole file is parsed once through a bounds-checked
 * cursor, and every count read from the file is checked against the bytes
 * that remain before anything is allocated for it (a key/value pair needs at
 * least 13 bytes, a tensor info at least 24, a string 8), so a forged count
 * can never drive a large allocation. Values are not copied: a key/value
 * entry records where its value lies in the mapping, and arrays of strings
 * additionally record each element's offset (bounded by the file size) so
 * that the tokenizer can index 150k-entry token lists in O(1).
 */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/types.h"

#include "model/gguf_int.h"

/* ------------------------------------------------------------ the cursor */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    wisp_err *err;
} cursor;

static uint64_t cur_left(const cursor *c) { return c->size - c->pos; }

static int cur_need(cursor *c, uint64_t n, const char *what)
{
    if (n > cur_left(c))
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "%s at byte %" PRIu64 " needs %" PRIu64 " bytes, file has %" PRIu64
                            " (truncated?)",
                            what, c->pos, n, c->size);
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what)
{
    int rc = cur_need(c, 4, what);
    if (rc)
        return rc;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what)
{
    int rc = cur_need(c, 8, what);
    if (rc)
        return rc;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* A string: u64 length then bytes. The result points into the buffer. */
static int cur_str(cursor *c, wisp_str *s, const char *what)
{
    uint64_t at = c->pos, len;
    int rc = cur_u64(c, &len, what);
    if (rc)
        return rc;
    if (len > cur_left(c))
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "%s at byte %" PRIu64 ": string length %" PRIu64
                            " runs past the end of the file (%" PRIu64 " bytes)",
                            what, at, len, c->size);
    s->ptr = (const char *)c->base + c->pos;
    s->len = (size_t)len;
    c->pos += len;
    return 0;
}

size_t wisp_gguf_vtype_size(uint32_t t)
{
    switch (t) {
    case WISP_GGUF_UINT8:
    case WISP_GGUF_INT8:
    case WISP_GGUF_BOOL: return 1;
    case WISP_GGUF_UINT16:
    case WISP_GGUF_INT16: return 2;
    case WISP_GGUF_UINT32:
    case WISP_GGUF_INT32:
    case WISP_GGUF_FLOAT32: return 4;
    case WISP_GGUF_UINT64:
    case WISP_GGUF_INT64:
    case WISP_GGUF_FLOAT64: return 8;
    default: return 0; /* strings, arrays and invalid ids */
    }
}

static bool vtype_valid(uint32_t t) { return t <= WISP_GGUF_FLOAT64; }

/* Skips one value of type t (validating it), recursing into nested arrays.
 * `key` names the owning key for error messages. */
static int skip_value(cursor *c, uint32_t t, int depth, const wisp_str *key)
{
    if (!vtype_valid(t))
        return wisp_err_set(c->err, WISP_E_FORMAT, "key '%.*s': unknown value type %u",
                            (int)key->len, key->ptr, t);
    size_t sz = wisp_gguf_vtype_size(t);
    if (sz) {
        int rc = cur_need(c, sz, "metadata value");
        if (rc)
            return wisp_err_prefix(c->err, "key '%.*s'", (int)key->len, key->ptr);
        c->pos += sz;
        return 0;
    }
    if (t == WISP_GGUF_STRING) {
        wisp_str s;
        int rc = cur_str(c, &s, "string value");
        return rc ? wisp_err_prefix(c->err, "key '%.*s'", (int)key->len, key->ptr) : 0;
    }
    /* array: u32 element type, u64 count, elements */
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return wisp_err_set(c->err, WISP_E_FORMAT, "key '%.*s': arrays nested deeper than %d",
                            (int)key->len, key->ptr, GGUF_MAX_ARRAY_DEPTH);
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et, "array element type") || cur_u64(c, &n, "array length"))
        return wisp_err_prefix(c->err, "key '%.*s'", (int)key->len, key->ptr);
    if (!vtype_valid(et))
        return wisp_err_set(c->err, WISP_E_FORMAT, "key '%.*s': unknown array element type %u",
                            (int)key->len, key->ptr, et);
    size_t esz = wisp_gguf_vtype_size(et);
    /* Every element takes at least one byte (strings 8, arrays 12). */
    uint64_t min_elem = esz ? esz : (et == WISP_GGUF_STRING ? 8 : 12);
    if (n > cur_left(c) / min_elem)
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "key '%.*s': array of %" PRIu64 " elements at byte %" PRIu64
                            " cannot fit in the %" PRIu64 " bytes left",
                            (int)key->len, key->ptr, n, c->pos, cur_left(c));
    if (esz) {
        c->pos += n * esz;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        int rc = skip_value(c, et, depth + 1, key);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------ parsing */

static int parse_kv(wisp_gguf *g, cursor *c, gguf_kv *kv, int64_t index)
{
    uint64_t at = c->pos;
    int rc = cur_str(c, &kv->key, "key name");
    if (rc)
        return wisp_err_prefix(c->err, "metadata entry %" PRId64, index);
    if (kv->key.len == 0)
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "metadata entry %" PRId64 " at byte %" PRIu64 " has an empty key",
                            index, at);
    uint32_t t;
    if ((rc = cur_u32(c, &t, "value type")))
        return wisp_err_prefix(c->err, "key '%.*s'", (int)kv->key.len, kv->key.ptr);
    if (!vtype_valid(t))
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "key '%.*s' at byte %" PRIu64 ": unknown value type %u",
                            (int)kv->key.len, kv->key.ptr, at, t);
    kv->type = (wisp_gguf_vtype)t;
    kv->val_off = c->pos;
    if (t == WISP_GGUF_ARRAY) {
        uint64_t save = c->pos;
        uint32_t et;
        uint64_t n;
        if (cur_u32(c, &et, "array element type") || cur_u64(c, &n, "array length"))
            return wisp_err_prefix(c->err, "key '%.*s'", (int)kv->key.len, kv->key.ptr);
        c->pos = save;
        if ((rc = skip_value(c, t, 0, &kv->key)))
            return rc;
        kv->val_size = c->pos - save;
        kv->elem_type = (wisp_gguf_vtype)et;
        kv->n = n;
        if (et == WISP_GGUF_STRING && n > 0) {
            /* n was bounded by bytes left / 8 in skip_value. */
            kv->str_offs = malloc(n * sizeof *kv->str_offs);
            if (!kv->str_offs)
                return wisp_err_set(c->err, WISP_E_NOMEM, "key '%.*s': %" PRIu64 " strings",
                                    (int)kv->key.len, kv->key.ptr, n);
            uint64_t p = save + 12;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t len;
                kv->str_offs[i] = p;
                memcpy(&len, g->base + p, 8);
                p += 8 + len;
            }
        }
        return 0;
    }
    rc = skip_value(c, t, 0, &kv->key);
    kv->val_size = c->pos - kv->val_off;
    return rc;
}

static int parse_tensor_info(wisp_gguf *g, cursor *c, wisp_gguf_tensor *t, int64_t index)
{
    uint64_t at = c->pos;
    int rc = cur_str(c, &t->name, "tensor name");
    if (rc)
        return wisp_err_prefix(c->err, "tensor info %" PRId64, index);
    if (t->name.len == 0 || t->name.len > GGUF_MAX_NAME)
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "tensor info %" PRId64 " at byte %" PRIu64 ": name length %zu"
                            " (must be 1..%d)",
                            index, at, t->name.len, GGUF_MAX_NAME);
    if (memchr(t->name.ptr, '\0', t->name.len))
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "tensor info %" PRId64 " at byte %" PRIu64 ": name contains a NUL byte",
                            index, at);
    int nl = (int)t->name.len;
    const char *nm = t->name.ptr;
    uint32_t nd;
    if ((rc = cur_u32(c, &nd, "dimension count")))
        return wisp_err_prefix(c->err, "tensor %.*s", nl, nm);
    if (nd < 1 || nd > WISP_MAX_DIMS)
        return wisp_err_set(c->err, WISP_E_FORMAT, "tensor %.*s: %u dimensions (must be 1..%d)", nl,
                            nm, nd, WISP_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nelem = 1;
    for (int d = 0; d < WISP_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if ((rc = cur_u64(c, &v, "dimension")))
            return wisp_err_prefix(c->err, "tensor %.*s", nl, nm);
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return wisp_err_set(c->err, WISP_E_FORMAT, "tensor %.*s: dimension %u is %" PRIu64, nl,
                                nm, d, v);
        if (nelem > (uint64_t)INT64_MAX / v)
            return wisp_err_set(c->err, WISP_E_FORMAT,
                                "tensor %.*s: element count overflows (dimension %u = %" PRIu64 ")",
                                nl, nm, d, v);
        nelem *= v;
        t->ne[d] = (int64_t)v;
    }
    uint32_t type;
    uint64_t off;
    if ((rc = cur_u32(c, &type, "tensor type")) || (rc = cur_u64(c, &off, "tensor offset")))
        return wisp_err_prefix(c->err, "tensor %.*s", nl, nm);
    const wisp_type_traits *tr = wisp_type_get((int)type);
    if (!tr->name)
        return wisp_err_set(c->err, WISP_E_FORMAT, "tensor %.*s: unknown type id %u", nl, nm, type);
    if (tr->block_size == 0)
        return wisp_err_set(c->err, WISP_E_UNSUPPORTED,
                            "tensor %.*s has type %s, a repacked layout that ggml no longer"
                            " stores in files; re-quantize the model",
                            nl, nm, tr->name);
    t->type = (int)type;
    if (t->ne[0] % tr->block_size != 0)
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "tensor %.*s: row length %" PRId64 " is not a multiple of %s's"
                            " block size %d",
                            nl, nm, t->ne[0], tr->name, tr->block_size);
    uint64_t nblocks = nelem / (uint64_t)tr->block_size;
    if (nblocks > UINT64_MAX / tr->type_size)
        return wisp_err_set(c->err, WISP_E_FORMAT, "tensor %.*s: byte size overflows", nl, nm);
    t->nbytes = nblocks * tr->type_size;
    if (off % g->alignment != 0)
        return wisp_err_set(c->err, WISP_E_FORMAT,
                            "tensor %.*s: offset %" PRIu64 " is not a multiple of the"
                            " alignment %u",
                            nl, nm, off, g->alignment);
    t->offset = off; /* relative for now; made absolute once the data offset is known */
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const wisp_gguf_tensor *x = *(const wisp_gguf_tensor *const *)a;
    const wisp_gguf_tensor *y = *(const wisp_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_by_name(const void *a, const void *b)
{
    const wisp_gguf_tensor *x = *(const wisp_gguf_tensor *const *)a;
    const wisp_gguf_tensor *y = *(const wisp_gguf_tensor *const *)b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int r = memcmp(x->name.ptr, y->name.ptr, n);
    if (r)
        return r;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

static int cmp_kv_key(const void *a, const void *b)
{
    const gguf_kv *x = *(const gguf_kv *const *)a;
    const gguf_kv *y = *(const gguf_kv *const *)b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int r = memcmp(x->key.ptr, y->key.ptr, n);
    if (r)
        return r;
    return x->key.len < y->key.len ? -1 : x->key.len > y->key.len;
}

/* Tensor data: inside the file and non-overlapping; names unique. */
static int check_tensors(wisp_gguf *g, wisp_err *err)
{
    int64_t n = g->n_tensors;
    for (int64_t i = 0; i < n; i++) {
        wisp_gguf_tensor *t = &g->tensors[i];
        uint64_t rel = t->offset;
        if (rel > g->size || g->data_offset > g->size - rel ||
            t->nbytes > g->size - g->data_offset - rel) {
            unsigned long long end = (unsigned long long)g->data_offset + rel + t->nbytes;
            if (rel > UINT64_MAX - g->data_offset || g->data_offset + rel > UINT64_MAX - t->nbytes)
                return wisp_err_set(err, WISP_E_FORMAT,
                                    "tensor %.*s: offset %" PRIu64 " + %" PRIu64 " bytes overflows",
                                    (int)t->name.len, t->name.ptr, rel, t->nbytes);
            return wisp_err_set(err, WISP_E_FORMAT,
                                "tensor %.*s: data ends at byte %llu, file has %" PRIu64,
                                (int)t->name.len, t->name.ptr, end, g->size);
        }
        t->offset = g->data_offset + rel;
        t->data = g->base + t->offset;
    }
    if (n < 2)
        return 0;
    const wisp_gguf_tensor **idx = malloc((size_t)n * sizeof *idx);
    if (!idx)
        return wisp_err_set(err, WISP_E_NOMEM, "%" PRId64 " tensors", n);
    for (int64_t i = 0; i < n; i++)
        idx[i] = &g->tensors[i];
    int rc = 0;
    qsort(idx, (size_t)n, sizeof *idx, cmp_by_name);
    for (int64_t i = 1; i < n && !rc; i++)
        if (cmp_by_name(&idx[i - 1], &idx[i]) == 0)
            rc = wisp_err_set(err, WISP_E_FORMAT, "tensor %.*s appears twice",
                              (int)idx[i]->name.len, idx[i]->name.ptr);
    qsort(idx, (size_t)n, sizeof *idx, cmp_by_offset);
    for (int64_t i = 1; i < n && !rc; i++) {
        const wisp_gguf_tensor *a = idx[i - 1], *b = idx[i];
        if (a->offset + a->nbytes > b->offset)
            rc = wisp_err_set(err, WISP_E_FORMAT,
                              "tensor %.*s (bytes %" PRIu64 "..%" PRIu64 ") overlaps tensor %.*s"
                              " (from byte %" PRIu64 ")",
                              (int)a->name.len, a->name.ptr, a->offset, a->offset + a->nbytes,
                              (int)b->name.len, b->name.ptr, b->offset);
    }
    free(idx);
    return rc;
}

static int check_unique_keys(wisp_gguf *g, wisp_err *err)
{
    if (g->n_kv < 2)
        return 0;
    const gguf_kv **idx = malloc((size_t)g->n_kv * sizeof *idx);
    if (!idx)
        return wisp_err_set(err, WISP_E_NOMEM, "%" PRId64 " keys", g->n_kv);
    for (int64_t i = 0; i < g->n_kv; i++)
        idx[i] = &g->kv[i];
    qsort(idx, (size_t)g->n_kv, sizeof *idx, cmp_kv_key);
    int rc = 0;
    for (int64_t i = 1; i < g->n_kv && !rc; i++)
        if (cmp_kv_key(&idx[i - 1], &idx[i]) == 0)
            rc = wisp_err_set(err, WISP_E_FORMAT, "key '%.*s' appears twice", (int)idx[i]->key.len,
                              idx[i]->key.ptr);
    free(idx);
    return rc;
}

static int parse(wisp_gguf *g, wisp_err *err)
{
    cursor c = {g->base, g->size, 0, err};
    int rc;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return wisp_err_set(err, WISP_E_FORMAT, "not a GGUF file (bad magic)");
    c.pos = 4;
    if ((rc = cur_u32(&c, &g->version, "version")))
        return rc;
    if (g->version == 1)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "GGUF version 1 is not supported (re-convert the model)");
    if (g->version != 2 && g->version != 3) {
        if (g->version >= 0x01000000u)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "GGUF version %u: a big-endian file, which wisp does not read",
                                g->version);
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "GGUF version %u is not supported (2 or 3)",
                            g->version);
    }
    uint64_t nt, nkv;
    if ((rc = cur_u64(&c, &nt, "tensor count")) || (rc = cur_u64(&c, &nkv, "metadata count")))
        return rc;
    /* Bounds before allocation: a key/value pair takes >= 13 bytes, a tensor
     * info >= 24 (8 name length + 1 name + 4 n_dims + 8 ne + 4 type + 8 offset,
     * minus nothing: 33 really, 24 is a safe lower bound). */
    if (nkv > cur_left(&c) / 13)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "metadata count %" PRIu64 " cannot fit in a %" PRIu64 "-byte file", nkv,
                            g->size);
    if (nt > cur_left(&c) / 24)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor count %" PRIu64 " cannot fit in a %" PRIu64 "-byte file", nt,
                            g->size);
    g->n_kv = (int64_t)nkv;
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    if (!g->kv)
        return wisp_err_set(err, WISP_E_NOMEM, "%" PRIu64 " metadata entries", nkv);
    for (int64_t i = 0; i < g->n_kv; i++)
        if ((rc = parse_kv(g, &c, &g->kv[i], i))) {
            g->n_kv = i + 1; /* so close() frees what was allocated */
            return rc;
        }
    if ((rc = check_unique_keys(g, err)))
        return rc;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = wisp_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        uint32_t a;
        if (g->kv[ai].type != WISP_GGUF_UINT32)
            return wisp_err_set(err, WISP_E_FORMAT, "general.alignment must be a uint32");
        memcpy(&a, g->base + g->kv[ai].val_off, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return wisp_err_set(err, WISP_E_FORMAT, "general.alignment %u is not a power of two",
                                a);
        g->alignment = a;
    }
    if (nt > cur_left(&c) / 24)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor count %" PRIu64 " cannot fit in the %" PRIu64
                            " bytes after the metadata",
                            nt, cur_left(&c));
    g->n_tensors = (int64_t)nt;
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->tensors)
        return wisp_err_set(err, WISP_E_NOMEM, "%" PRIu64 " tensors", nt);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((rc = parse_tensor_info(g, &c, &g->tensors[i], i)))
            return rc;
    uint64_t a = g->alignment;
    g->data_offset = c.pos + (a - c.pos % a) % a;
    if (g->n_tensors == 0)
        return 0; /* vocab-only: the file may stop before the aligned offset */
    if (g->data_offset > g->size)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "data section starts at byte %" PRIu64 ", file has %" PRIu64,
                            g->data_offset, g->size);
    return check_tensors(g, err);
}

/* ------------------------------------------------------------ open/close */

static int open_common(wisp_gguf *g, wisp_gguf **out, wisp_err *err)
{
    int rc = parse(g, err);
    if (rc) {
        wisp_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int wisp_gguf_open_memory(const void *data, size_t size, wisp_gguf **out, wisp_err *err)
{
    *out = NULL;
    wisp_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return wisp_err_set(err, WISP_E_NOMEM, "gguf reader");
    g->base = data;
    g->size = size;
    return open_common(g, out, err);
}

int wisp_gguf_open(const char *path, wisp_gguf **out, wisp_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wisp_err_set(err, errno == ENOENT ? WISP_E_NOT_FOUND : WISP_E_IO,
                            "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return wisp_err_set(err, WISP_E_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return wisp_err_set(err, WISP_E_INVALID, "%s is not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return wisp_err_set(err, WISP_E_FORMAT, "%s: not a GGUF file (%lld bytes)", path,
                            (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return wisp_err_set(err, WISP_E_IO, "%s: mmap: %s", path, strerror(e));
    wisp_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(p, (size_t)st.st_size);
        return wisp_err_set(err, WISP_E_NOMEM, "gguf reader");
    }
    g->base = p;
    g->size = (uint64_t)st.st_size;
    g->mapped = true;
    int rc = open_common(g, out, err);
    if (rc)
        wisp_err_prefix(err, "%s", path);
    return rc;
}

void wisp_gguf_close(wisp_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_offs);
    free(g->kv);
    free(g->tensors);
    if (g->mapped)
        munmap((void *)g->base, (size_t)g->size);
    free(g);
}

uint32_t wisp_gguf_version(const wisp_gguf *g) { return g->version; }
uint64_t wisp_gguf_file_size(const wisp_gguf *g) { return g->size; }
uint32_t wisp_gguf_alignment(const wisp_gguf *g) { return g->alignment; }
uint64_t wisp_gguf_data_offset(const wisp_gguf *g) { return g->data_offset; }
const void *wisp_gguf_base(const wisp_gguf *g) { return g->base; }
