/*
 * model.c - the wisp_model object: open (format detection), close and the
 * accessors of model.h.
 *
 * Opening decides the format from the path (a directory, a .safetensors
 * file or a .json index means a Hugging Face checkpoint; otherwise the
 * file's magic must say GGUF) and hands over to model_gguf.c or
 * safetensors.c; both end in model_bind.c. Everything the model owns is
 * released by wisp_model_close, including on every error path of open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "model/model_int.h"

uint64_t wisp_fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void wisp_model_progress(const wisp_model *m, double fraction, const char *message)
{
    if (m->opts.progress)
        m->opts.progress(m->opts.progress_ud, fraction, message);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Size, mtime and a hash of the file's first bytes (the header: metadata
 * and tensor table), so an edited or replaced file gets a new identity. */
static uint64_t compute_identity(const wisp_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    struct stat st;
    if (stat(m->path, &st) == 0) {
        int64_t v[2] = {(int64_t)st.st_size, (int64_t)st.st_mtime};
        h = wisp_fnv1a(h, v, sizeof v);
    }
    if (m->gguf) {
        uint64_t n = wisp_gguf_data_offset(m->gguf);
        if (n > wisp_gguf_file_size(m->gguf))
            n = wisp_gguf_file_size(m->gguf);
        if (n > (1u << 20))
            n = 1u << 20;
        h = wisp_fnv1a(h, wisp_gguf_base(m->gguf), (size_t)n);
    }
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const wisp_tensor *t = &m->tensors[i];
        h = wisp_fnv1a(h, t->name, strlen(t->name));
        h = wisp_fnv1a(h, t->ne, sizeof t->ne);
        h = wisp_fnv1a(h, &t->type, sizeof t->type);
    }
    return h;
}

static int open_gguf(wisp_model *m, wisp_err *err)
{
    m->format = WISP_FORMAT_GGUF;
    int rc = wisp_gguf_open(m->path, &m->gguf, err);
    if (rc)
        return rc;
    return wisp_model_load_gguf(m, err);
}

int wisp_model_open(const char *path, const wisp_model_open_opts *opts, wisp_model **out,
                    wisp_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return wisp_err_set(err, errno == ENOENT ? WISP_E_NOT_FOUND : WISP_E_IO,
                            "cannot open %s: %s", path, strerror(errno));
    /* A FIFO, a terminal or /dev/stdin would block the engine thread in
     * open() or read() forever, or take bytes meant for the protocol. */
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return wisp_err_set(err, WISP_E_INVALID,
                            "%s is not a regular file or a directory: refusing to read it", path);
    wisp_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return wisp_err_set(err, WISP_E_NOMEM, "model %s", path);
    }
    if (opts)
        m->opts = *opts;
    wisp_model_progress(m, 0.0, "opening");
    int rc;
    if (S_ISDIR(st.st_mode) || ends_with(path, ".safetensors") || ends_with(path, ".json")) {
        rc = wisp_model_load_safetensors(m, path, err);
    } else {
        char magic[4] = {0};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t got = read(fd, magic, 4);
            (void)got;
            close(fd);
        }
        if (memcmp(magic, "GGUF", 4) == 0)
            rc = open_gguf(m, err);
        else
            rc = wisp_err_set(err, WISP_E_FORMAT,
                              "not a model file: expected a GGUF file, a .safetensors file or a"
                              " Hugging Face checkpoint directory");
    }
    if (rc) {
        if (err && !strstr(err->msg, path))
            wisp_err_prefix(err, "%s", path);
        wisp_model_close(m);
        return rc;
    }
    m->identity = compute_identity(m);
    wisp_model_progress(m, 1.0, "loaded");
    *out = m;
    return 0;
}

/* safetensors.c frees its shard set. */
void wisp_st_set_free(struct wisp_st_set *s);

void wisp_model_close(wisp_model *m)
{
    if (!m)
        return;
    wisp_gguf_close(m->gguf);
    wisp_st_set_free(m->st);
    free(m->weights.layers);
    free(m->tensors);
    free(m->names);
    free(m->hf_dir);
    free(m->path);
    free(m);
}

const wisp_model_config *wisp_model_get_config(const wisp_model *m) { return &m->cfg; }

const wisp_model_weights *wisp_model_get_weights(const wisp_model *m)
{
    return m->has_weights ? &m->weights : NULL;
}

wisp_model_format wisp_model_get_format(const wisp_model *m) { return m->format; }
const char *wisp_model_get_path(const wisp_model *m) { return m->path; }
uint64_t wisp_model_file_bytes(const wisp_model *m) { return m->file_bytes; }
int64_t wisp_model_n_params(const wisp_model *m) { return m->n_params; }
bool wisp_model_is_vocab_only(const wisp_model *m) { return m->vocab_only; }
const struct wisp_gguf *wisp_model_get_gguf(const wisp_model *m) { return m->gguf; }
const char *wisp_model_get_hf_dir(const wisp_model *m) { return m->hf_dir; }
uint64_t wisp_model_identity(const wisp_model *m) { return m->identity; }

void wisp_model_type_counts(const wisp_model *m, int64_t counts[WISP_TYPE_COUNT])
{
    memset(counts, 0, sizeof(int64_t) * WISP_TYPE_COUNT);
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].type >= 0 && m->tensors[i].type < WISP_TYPE_COUNT)
            counts[m->tensors[i].type]++;
}

int64_t wisp_model_n_tensors(const wisp_model *m) { return m->n_tensors; }

const wisp_tensor *wisp_model_tensor_at(const wisp_model *m, int64_t i)
{
    return i < 0 || i >= m->n_tensors ? NULL : &m->tensors[i];
}

const wisp_tensor *wisp_model_find_tensor(const wisp_model *m, const char *name)
{
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}
