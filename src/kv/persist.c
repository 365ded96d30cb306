/*
 * persist.c - the prefix cache on disk, so a restarted process starts warm.
 *
 * One file per model identity and block size in the cache folder:
 *
 *   header (64 bytes, little-endian)
 *     0  magic "WISPKVC\n"          8  version (u32)      12 byte-order mark (u32)
 *     16 model identity (u64)       24 block size (u32)   28 kv type (u32)
 *     32 bytes per block (u64)      40 record count (u64)
 *     48 engine tag (u64: hash of the engine's name)      56 checksum of bytes 0-55
 *   records, oldest first, each
 *     key (u64), parent key (u64), tokens (i32 x block size),
 *     KV (bytes per block, the engine's storage format), checksum (u64)
 *
 * Nothing in a file is trusted: the header must match this process exactly,
 * the size must be exactly header + count * record, every record's checksum
 * and key (= hash(parent, tokens)) must verify and its tokens be in the
 * vocabulary. The whole file is checked before any record is used, so a bad
 * file is ignored as a whole (logged), then replaced at the next save. Saves
 * go to a temporary file renamed over the old one, so a crash mid-save
 * leaves the previous file intact.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "kv/hash.h"
#include "kv/kv_int.h"

#define FILE_MAGIC   "WISPKVC\n"
#define FILE_VERSION 1u
#define FILE_BOM     0x01020304u
#define HEADER_BYTES 64

typedef struct file_header {
    char magic[8];
    uint32_t version, bom;
    uint64_t model_identity;
    uint32_t block_size, kv_type;
    uint64_t bytes_per_block, n_records, engine_tag, checksum;
} file_header;

_Static_assert(sizeof(file_header) == HEADER_BYTES, "cache file header layout");

static uint64_t engine_tag(const wisp_kv *kv)
{
    const char *name = kv->engine->ops->name ? kv->engine->ops->name : "";
    return wisp_hash64(name, strlen(name), 0x656e67696e65ULL);
}

static size_t record_bytes(const wisp_kv *kv)
{
    return 16 + (size_t)kv->block_size * 4 + kv->bytes_per_block + 8;
}

static file_header make_header(const wisp_kv *kv, uint64_t n_records)
{
    file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, FILE_MAGIC, 8);
    h.version = FILE_VERSION;
    h.bom = FILE_BOM;
    h.model_identity = kv->model_identity;
    h.block_size = (uint32_t)kv->block_size;
    h.kv_type = (uint32_t)kv->engine->opts.kv_type;
    h.bytes_per_block = kv->bytes_per_block;
    h.n_records = n_records;
    h.engine_tag = engine_tag(kv);
    h.checksum = wisp_hash64(&h, offsetof(file_header, checksum), 0);
    return h;
}

/* ------------------------------------------------------------ save */

typedef struct writer {
    FILE *f;
    unsigned char *rec;
    wisp_kv *kv;
    uint64_t n;
} writer;

static int put_record(writer *w, uint64_t key, uint64_t parent, const int32_t *tokens,
                      const void *data)
{
    wisp_kv *kv = w->kv;
    size_t tb = (size_t)kv->block_size * 4, rb = record_bytes(kv);
    unsigned char *r = w->rec;
    memcpy(r, &key, 8);
    memcpy(r + 8, &parent, 8);
    memcpy(r + 16, tokens, tb);
    memcpy(r + 16 + tb, data, kv->bytes_per_block);
    uint64_t sum = wisp_hash64(r, rb - 8, kv->model_identity);
    memcpy(r + rb - 8, &sum, 8);
    w->n++;
    return fwrite(r, 1, rb, w->f) == rb ? 0 : -1;
}

/* Writes every cached block, oldest first: host tier, then the primary
 * LRU, then the blocks live sequences hold (the most recently useful). */
static int write_records(writer *w, wisp_err *err)
{
    wisp_kv *kv = w->kv;
    const wisp_kv_host *h = &kv->host;
    for (int s = h->lru.head; s >= 0; s = h->lru.next[s])
        if (put_record(w, h->map.key[s], h->parent[s], h->tokens + (size_t)s * h->block_size,
                       wisp_kv_host_data(h, s)))
            return wisp_err_set(err, WISP_E_IO, "write failed: %s", strerror(errno));
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t b = pass ? 0 : kv->lru.head; b >= 0 && b < kv->n_blocks;
             b = pass ? b + 1 : kv->lru.next[b]) {
            if (!wisp_kv_int_registered(kv, b) || (pass == 1 && kv->refs[b] == 0))
                continue;
            int rc = kv->engine->ops->read_block(kv->engine->ctx, b, kv->io_buf, err);
            if (rc)
                return wisp_err_prefix(err, "reading block %d", b);
            if (put_record(w, kv->map.key[b], kv->parent[b], wisp_kv_int_btokens(kv, b),
                           kv->io_buf))
                return wisp_err_set(err, WISP_E_IO, "write failed: %s", strerror(errno));
        }
    }
    return 0;
}

int wisp_kv_int_save(wisp_kv *kv, wisp_err *err)
{
    uint64_t count = (uint64_t)wisp_kv_host_used(&kv->host);
    for (int b = 0; b < kv->n_blocks; b++)
        count += wisp_kv_int_registered(kv, b);
    size_t n = strlen(kv->cache_path) + 32;
    char *tmp = malloc(n);
    writer w = {.kv = kv, .rec = malloc(record_bytes(kv))};
    if (!tmp || !w.rec) {
        free(tmp);
        free(w.rec);
        return wisp_err_set(err, WISP_E_NOMEM, "kv save: no memory");
    }
    snprintf(tmp, n, "%s.tmp%ld", kv->cache_path, (long)getpid());
    int rc = 0;
    w.f = fopen(tmp, "wb");
    if (!w.f) {
        rc = wisp_err_set(err, WISP_E_IO, "cannot create: %s", strerror(errno));
    } else {
        file_header hd = make_header(kv, count);
        if (fwrite(&hd, sizeof hd, 1, w.f) != 1)
            rc = wisp_err_set(err, WISP_E_IO, "write failed: %s", strerror(errno));
        if (!rc)
            rc = write_records(&w, err);
        if (!rc && w.n != count)
            rc = wisp_err_set(err, WISP_E_INTERNAL, "wrote %llu records, counted %llu",
                              (unsigned long long)w.n, (unsigned long long)count);
        if (fclose(w.f) != 0 && !rc)
            rc = wisp_err_set(err, WISP_E_IO, "close failed: %s", strerror(errno));
        if (!rc && rename(tmp, kv->cache_path) != 0)
            rc = wisp_err_set(err, WISP_E_IO, "rename failed: %s", strerror(errno));
        if (rc)
            unlink(tmp);
    }
    if (rc)
        wisp_err_prefix(err, "kv cache %s", kv->cache_path);
    else
        kv->disk_saved = count;
    free(tmp);
    free(w.rec);
    return rc;
}

/* ------------------------------------------------------------ load */

/* Checks one record in r; returns NULL when it is good, else why not. */
static const char *check_record(const wisp_kv *kv, const unsigned char *r)
{
    size_t tb = (size_t)kv->block_size * 4, rb = record_bytes(kv);
    uint64_t key, parent, sum;
    memcpy(&key, r, 8);
    memcpy(&parent, r + 8, 8);
    memcpy(&sum, r + rb - 8, 8);
    if (wisp_hash64(r, rb - 8, kv->model_identity) != sum)
        return "checksum mismatch";
    int32_t t;
    for (int i = 0; i < kv->block_size; i++) {
        memcpy(&t, r + 16 + (size_t)i * 4, 4);
        if (t < 0 || (kv->n_vocab > 0 && t >= kv->n_vocab))
            return "token out of range";
    }
    /* The tokens may be unaligned in r; the hash reads bytes either way. */
    if (wisp_hash64(r + 16, tb, parent) != key)
        return "key does not match its tokens";
    return NULL;
}

static const char *check_header(const wisp_kv *kv, const file_header *h, uint64_t file_size)
{
    file_header want = make_header(kv, h->n_records);
    if (memcmp(h->magic, FILE_MAGIC, 8) != 0)
        return "not a wisp KV cache file";
    if (h->version != FILE_VERSION || h->bom != FILE_BOM)
        return "unsupported version or byte order";
    if (h->checksum != wisp_hash64(h, offsetof(file_header, checksum), 0))
        return "header checksum mismatch";
    if (h->model_identity != want.model_identity)
        return "made for another model";
    if (h->block_size != want.block_size || h->kv_type != want.kv_type ||
        h->bytes_per_block != want.bytes_per_block || h->engine_tag != want.engine_tag)
        return "made for another KV layout or engine";
    uint64_t rb = record_bytes(kv);
    if (h->n_records > (file_size - HEADER_BYTES) / rb ||
        file_size != HEADER_BYTES + h->n_records * rb)
        return "file size does not match its record count (truncated?)";
    return NULL;
}

/* Puts one verified record in the host tier or a free primary block. */
static void load_record(wisp_kv *kv, const unsigned char *r, bool to_host)
{
    int bs = kv->block_size;
    uint64_t key, parent;
    int32_t tokens[bs];
    memcpy(&key, r, 8);
    memcpy(&parent, r + 8, 8);
    memcpy(tokens, r + 16, (size_t)bs * 4);
    const unsigned char *data = r + 16 + (size_t)bs * 4;
    if (wisp_kv_int_lookup(kv, key, parent, tokens) >= 0 ||
        wisp_kv_host_find(&kv->host, key, parent, tokens) >= 0)
        return;
    if (to_host) {
        int slot = wisp_kv_host_put(&kv->host, key, parent, tokens);
        memcpy(wisp_kv_host_data(&kv->host, slot), data, kv->bytes_per_block);
        kv->disk_loaded++;
        return;
    }
    if (kv->n_free == 0)
        return;
    int32_t b = wisp_kv_int_alloc(kv);
    wisp_err err = {0};
    if (kv->engine->ops->write_block(kv->engine->ctx, b, data, &err) != 0) {
        WISP_LOGW("kv: cached block not restored: %s", err.msg);
        wisp_kv_int_unref(kv, b);
        return;
    }
    wisp_kv_int_register(kv, b, key, parent, tokens);
    kv->fill[b] = bs;
    wisp_kv_int_unref(kv, b); /* refs 0: onto the LRU as cached-only */
    kv->disk_loaded++;
}

int wisp_kv_int_load(wisp_kv *kv)
{
    /* Opened without blocking and checked before any read: a FIFO or a
     * device in the cache's place would otherwise block the engine thread. */
    int fd = open(kv->cache_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0; /* no file yet: a cold start */
    struct stat fst;
    if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
        WISP_LOGW("prefix cache %s is not a regular file: ignored", kv->cache_path);
        close(fd);
        return 0;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return 0;
    }
    const char *why = NULL;
    struct stat st;
    file_header h;
    size_t rb = record_bytes(kv);
    unsigned char *rec = malloc(rb);
    if (!rec || fstat(fileno(f), &st) != 0)
        why = "cannot read it";
    else if ((uint64_t)st.st_size < HEADER_BYTES || fread(&h, sizeof h, 1, f) != 1)
        why = "shorter than its header";
    else
        why = check_header(kv, &h, (uint64_t)st.st_size);
    /* Pass 1: every record must verify before any is used. */
    for (uint64_t i = 0; !why && i < h.n_records; i++) {
        if (fread(rec, 1, rb, f) != rb)
            why = "short read";
        else
            why = check_record(kv, rec);
    }
    if (!why && h.n_records > 0) {
        /* Pass 2: keep the newest records that fit; the oldest of those go
         * to the host tier, the rest to the primary pool. */
        uint64_t cap_host = (uint64_t)kv->host.n_slots, cap_prim = (uint64_t)kv->n_free;
        uint64_t skip = h.n_records > cap_host + cap_prim ? h.n_records - cap_host - cap_prim : 0;
        uint64_t left = h.n_records - skip;
        uint64_t n_host = left > cap_prim ? left - cap_prim : 0;
        if (fseek(f, (long)(HEADER_BYTES + skip * rb), SEEK_SET) != 0)
            why = "cannot seek";
        for (uint64_t i = 0; !why && i < left; i++) {
            if (fread(rec, 1, rb, f) != rb)
                why = "short read";
            else if (!(why = check_record(kv, rec))) /* the file may have changed */
                load_record(kv, rec, i < n_host);
        }
    }
    if (why)
        WISP_LOGW("kv: ignoring cache file %s: %s", kv->cache_path, why);
    else
        WISP_LOGI("kv: loaded %llu cached blocks from %s", (unsigned long long)kv->disk_loaded,
                  kv->cache_path);
    free(rec);
    fclose(f);
    return 0;
}
