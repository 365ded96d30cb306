/*
 * safetensors.c - Hugging Face checkpoints: config.json plus one
 * model.safetensors or shards listed in model.safetensors.index.json.
 *
 * A safetensors file is a u64 header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}, offsets
 * relative to the byte after the header), then the data. Each shard is
 * mmapped read-only and every header field is validated as strictly as a
 * GGUF tensor info: N bounded by the file and by 100 MB (the format's own
 * limit), dtypes known, shapes non-negative with no overflow, byte sizes
 * equal to dtype size x elements, data inside the file and no two tensors
 * overlapping. Names are translated to GGUF's and shapes reversed (safetensors
 * shapes are row-major [rows, cols]; wisp's ne[0] is the row length), so
 * model_bind.c checks both formats the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "model/model_int.h"

#define ST_MAX_HEADER (100u << 20)
#define ST_MAX_SHARDS 4096
#define ST_NAME_MAX   128

typedef struct st_shard {
    char *path;
    const uint8_t *base;
    uint64_t size;
} st_shard;

struct wisp_st_set {
    int n;
    st_shard *shards;
};

void wisp_st_set_free(struct wisp_st_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        if (s->shards[i].base)
            munmap((void *)s->shards[i].base, (size_t)s->shards[i].size);
        free(s->shards[i].path);
    }
    free(s->shards);
    free(s);
}

/* dtype name -> (wisp type or -1 when wisp does not compute with it, size). */
static const struct {
    const char *name;
    int type;
    int size;
} dtypes[] = {
    {"F32", WISP_TYPE_F32, 4},
    {"F16", WISP_TYPE_F16, 2},
    {"BF16", WISP_TYPE_BF16, 2},
    {"F64", -1, 8},
    {"I64", -1, 8},
    {"U64", -1, 8},
    {"I32", -1, 4},
    {"U32", -1, 4},
    {"I16", -1, 2},
    {"U16", -1, 2},
    {"I8", -1, 1},
    {"U8", -1, 1},
    {"BOOL", -1, 1},
    {"F8_E4M3", -1, 1},
    {"F8_E5M2", -1, 1},
};

/* One validated header entry. */
typedef struct st_entry {
    char name[ST_NAME_MAX]; /* translated GGUF name ("" if unmapped) */
    const char *hf_name;    /* into the JSON (valid while it lives) */
    int type;
    int n_dims;
    int64_t ne[4];
    uint64_t begin, end; /* absolute in the shard */
    const uint8_t *data;
} st_entry;

typedef struct st_list {
    st_entry *v;
    size_t n, cap;
} st_list;

static int cmp_entry_begin(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Parses one entry of a shard's header. */
static int parse_entry(const char *name, json_t *v, const st_shard *sh, uint64_t data_start,
                       st_entry *e, wisp_err *err)
{
    memset(e, 0, sizeof *e);
    e->hf_name = name;
    if (!json_is_object(v))
        return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: header entry is not an object", name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor %s: needs dtype, shape and data_offsets [begin, end]", name);
    int size = 0;
    e->type = -2;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(json_string_value(dt), dtypes[i].name) == 0) {
            e->type = dtypes[i].type;
            size = dtypes[i].size;
        }
    if (e->type == -2)
        return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: unknown dtype '%s'", name,
                            json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > 4)
        return wisp_err_set(err, WISP_E_UNSUPPORTED, "tensor %s: %zu dimensions (at most 4)", name,
                            nd);
    e->n_dims = nd ? (int)nd : 1;
    for (int d = 0; d < 4; d++)
        e->ne[d] = 1;
    uint64_t nelem = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *x = json_array_get(shape, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: bad shape", name);
        uint64_t dim = (uint64_t)json_integer_value(x);
        if (dim && nelem > (UINT64_MAX / 8) / dim)
            return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: element count overflows", name);
        nelem *= dim;
        e->ne[nd - 1 - d] = (int64_t)dim; /* reversed: ne[0] is the row length */
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return wisp_err_set(err, WISP_E_FORMAT, "tensor %s: bad data_offsets", name);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(en);
    if (end - begin != nelem * (uint64_t)size)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor %s: %" PRIu64 " bytes of data, but %s x %" PRIu64
                            " elements needs %" PRIu64,
                            name, end - begin, json_string_value(dt), nelem,
                            nelem * (uint64_t)size);
    if (end > sh->size - data_start)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "tensor %s: data ends at byte %" PRIu64 ", file has %" PRIu64, name,
                            data_start + end, sh->size);
    e->begin = data_start + begin;
    e->end = data_start + end;
    e->data = sh->base + e->begin;
    if (!wisp_arch_hf_to_gguf_name(name, e->name, sizeof e->name))
        e->name[0] = '\0';
    return 0;
}

static int list_push(st_list *l, const st_entry *e, wisp_err *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        st_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return wisp_err_set(err, WISP_E_NOMEM, "tensor list");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return 0;
}

/* Maps a shard and appends its validated entries; *hdr keeps the JSON. */
static int load_shard(st_shard *sh, st_list *list, json_t **hdr, wisp_err *err)
{
    /* O_NONBLOCK: a FIFO in a checkpoint folder must not block the open. */
    int fd = open(sh->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return wisp_err_set(err, errno == ENOENT ? WISP_E_NOT_FOUND : WISP_E_IO, "%s: %s", sh->path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 8) {
        close(fd);
        return wisp_err_set(err, WISP_E_FORMAT, "%s: not a safetensors file", sh->path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return wisp_err_set(err, WISP_E_IO, "%s: mmap: %s", sh->path, strerror(errno));
    sh->base = p;
    sh->size = (uint64_t)st.st_size;
    uint64_t n;
    memcpy(&n, sh->base, 8);
    if (n > sh->size - 8 || n > ST_MAX_HEADER || n < 2)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "%s: header length %" PRIu64 " does not fit the %" PRIu64 "-byte file",
                            sh->path, n, sh->size);
    json_error_t je;
    *hdr = json_loadb((const char *)sh->base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!*hdr)
        return wisp_err_set(err, WISP_E_FORMAT, "%s: header: %s", sh->path, je.text);
    if (!json_is_object(*hdr))
        return wisp_err_set(err, WISP_E_FORMAT, "%s: header is not a JSON object", sh->path);
    const char *name;
    json_t *v;
    size_t first = list->n;
    json_object_foreach(*hdr, name, v)
    {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        st_entry e;
        int rc = parse_entry(name, v, sh, 8 + n, &e, err);
        if (!rc)
            rc = list_push(list, &e, err);
        if (rc)
            return wisp_err_prefix(err, "%s", sh->path);
    }
    /* No overlaps within the shard. */
    size_t cnt = list->n - first;
    if (cnt < 2)
        return 0;
    const st_entry **idx = malloc(cnt * sizeof *idx);
    if (!idx)
        return wisp_err_set(err, WISP_E_NOMEM, "tensor index");
    for (size_t i = 0; i < cnt; i++)
        idx[i] = &list->v[first + i];
    qsort(idx, cnt, sizeof *idx, cmp_entry_begin);
    int rc = 0;
    for (size_t i = 1; i < cnt && !rc; i++)
        if (idx[i - 1]->end > idx[i]->begin)
            rc = wisp_err_set(err, WISP_E_FORMAT, "%s: tensor %s overlaps tensor %s", sh->path,
                              idx[i - 1]->hf_name, idx[i]->hf_name);
    free(idx);
    return rc;
}

/* The shard file names of an index, checked to stay inside the directory. */
static int read_index(const char *index_path, const char *dir, struct wisp_st_set *set,
                      wisp_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(index_path, 0, &je);
    if (!root)
        return wisp_err_set(err, WISP_E_FORMAT, "%s: line %d: %s", index_path, je.line, je.text);
    json_t *wm = json_object_get(root, "weight_map");
    int rc = 0;
    if (!json_is_object(wm)) {
        rc = wisp_err_set(err, WISP_E_FORMAT, "%s: missing weight_map", index_path);
        goto done;
    }
    set->shards = calloc(json_object_size(wm) + 1, sizeof *set->shards);
    if (!set->shards) {
        rc = wisp_err_set(err, WISP_E_NOMEM, "shards");
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(wm, k, v)
    {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || strcmp(f, "..") == 0) {
            rc = wisp_err_set(err, WISP_E_FORMAT, "%s: tensor %s: bad shard file name", index_path,
                              k);
            goto done;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, f);
        bool seen = false;
        for (int i = 0; i < set->n && !seen; i++)
            seen = strcmp(set->shards[i].path, path) == 0;
        if (seen)
            continue;
        if (set->n >= ST_MAX_SHARDS || !(set->shards[set->n].path = strdup(path))) {
            rc = wisp_err_set(err, WISP_E_FORMAT, "%s: too many shards", index_path);
            goto done;
        }
        set->n++;
    }
    if (set->n == 0)
        rc = wisp_err_set(err, WISP_E_FORMAT, "%s: weight_map is empty", index_path);
done:
    json_decref(root);
    return rc;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Decides the directory and the shard list from the path given. */
static int resolve(wisp_model *m, const char *path, wisp_err *err)
{
    struct stat st;
    char *tmp = strdup(path);
    if (!tmp)
        return wisp_err_set(err, WISP_E_NOMEM, "path");
    bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    m->hf_dir = strdup(is_dir ? path : dirname(tmp));
    free(tmp);
    m->st = calloc(1, sizeof *m->st);
    if (!m->hf_dir || !m->st)
        return wisp_err_set(err, WISP_E_NOMEM, "path");
    char buf[4096];
    const char *index = NULL, *single = NULL;
    if (!is_dir) {
        size_t n = strlen(path);
        if (n > 5 && strcmp(path + n - 5, ".json") == 0)
            index = path;
        else
            single = path;
    } else {
        snprintf(buf, sizeof buf, "%s/model.safetensors.index.json", path);
        if (file_exists(buf)) {
            index = buf;
        } else {
            snprintf(buf, sizeof buf, "%s/model.safetensors", path);
            if (!file_exists(buf))
                return wisp_err_set(err, WISP_E_NOT_FOUND,
                                    "%s: no model.safetensors or model.safetensors.index.json",
                                    path);
            single = buf;
        }
    }
    if (index)
        return read_index(index, m->hf_dir, m->st, err);
    m->st->shards = calloc(1, sizeof *m->st->shards);
    if (!m->st->shards || !(m->st->shards[0].path = strdup(single)))
        return wisp_err_set(err, WISP_E_NOMEM, "path");
    m->st->n = 1;
    return 0;
}

/* Moves the mapped entries into the model's tensor table. */
static int build_table(wisp_model *m, const st_list *l, wisp_err *err)
{
    size_t pool = 0, n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].name[0]) {
            pool += strlen(l->v[i].name) + 1;
            n++;
        } else {
            WISP_LOGW("%s: ignoring tensor %s, which wisp does not use", m->path, l->v[i].hf_name);
        }
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    m->names = malloc(pool ? pool : 1);
    if (!m->tensors || !m->names)
        return wisp_err_set(err, WISP_E_NOMEM, "tensor table");
    char *p = m->names;
    for (size_t i = 0; i < l->n; i++) {
        const st_entry *e = &l->v[i];
        if (!e->name[0])
            continue;
        if (e->type < 0)
            return wisp_err_set(err, WISP_E_UNSUPPORTED,
                                "tensor %s has a dtype wisp does not support (F32, F16, BF16)",
                                e->hf_name);
        wisp_tensor *t = &m->tensors[m->n_tensors++];
        size_t len = strlen(e->name);
        memcpy(p, e->name, len + 1);
        t->name = p;
        p += len + 1;
        t->type = e->type;
        t->n_dims = e->n_dims;
        memcpy(t->ne, e->ne, sizeof t->ne);
        t->nbytes = (size_t)(e->end - e->begin);
        t->data = e->data;
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return 0;
}

int wisp_model_load_safetensors(wisp_model *m, const char *path, wisp_err *err)
{
    m->format = WISP_FORMAT_SAFETENSORS;
    int rc = resolve(m, path, err);
    if (rc)
        return rc;
    if ((rc = wisp_hf_config_read(m->hf_dir, &m->cfg, &m->arch, err)))
        return rc;
    st_list list = {0};
    json_t **hdrs = calloc((size_t)m->st->n, sizeof *hdrs);
    if (!hdrs)
        return wisp_err_set(err, WISP_E_NOMEM, "headers");
    for (int i = 0; i < m->st->n && !rc; i++) {
        rc = load_shard(&m->st->shards[i], &list, &hdrs[i], err);
        m->file_bytes += m->st->shards[i].size;
        wisp_model_progress(m, 0.5 * (i + 1) / m->st->n, "reading safetensors headers");
    }
    /* Names must be unique across shards (the JSON rejects duplicates within one). */
    for (size_t i = 0; i < list.n && !rc; i++)
        for (size_t j = i + 1; j < list.n && !rc && m->st->n > 1; j++)
            if (strcmp(list.v[i].hf_name, list.v[j].hf_name) == 0)
                rc = wisp_err_set(err, WISP_E_FORMAT, "tensor %s appears in two shards",
                                  list.v[i].hf_name);
    if (!rc)
        rc = build_table(m, &list, err);
    free(list.v);
    for (int i = 0; i < m->st->n; i++)
        json_decref(hdrs[i]);
    free(hdrs);
    if (rc)
        return rc;
    int vocab_cfg = m->cfg.vocab_size;
    if ((rc = wisp_model_bind(m, err)))
        return rc;
    if (vocab_cfg && vocab_cfg != m->cfg.vocab_size)
        return wisp_err_set(err, WISP_E_FORMAT,
                            "config.json says vocab_size %d, model.embed_tokens.weight has %d"
                            " rows",
                            vocab_cfg, m->cfg.vocab_size);
    return 0;
}
