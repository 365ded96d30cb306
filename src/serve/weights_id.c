/* weights_id.c - a model identity over the tensor data: see weights_id.h.
 *
 * Hashing reads every byte of the weights, so the hash is remembered in a
 * small memo file beside the cache, keyed by the model file's stamp
 * (file_stamp.h). The stamp includes the status-change time, which every
 * write, rename or chmod moves and no user can set back, so a memo that
 * matches proves the bytes are the ones hashed. Only single files get a
 * memo: a checkpoint directory's stamp does not move when a shard inside
 * it is rewritten.
 */
#include "serve/weights_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MEMO_MAGIC "WISPWID1"

typedef struct memo {
    char magic[8];
    wisp_file_stamp stamp;
    uint64_t hash;
} memo;

static uint64_t hash_weights(const wisp_model *m, uint64_t base)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return base; /* no memory: the cheap identity still separates most files */
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

uint64_t wisp_weights_identity(const wisp_model *m, uint64_t base) { return hash_weights(m, base); }

static char *memo_path(const char *dir, uint64_t base)
{
    size_t n = strlen(dir) + 48;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/wisp-weights-%016llx.id", dir, (unsigned long long)base);
    return p;
}

static bool stamps_equal(const wisp_file_stamp *a, const wisp_file_stamp *b)
{
    return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

uint64_t wisp_weights_identity_memo(const wisp_model *m, uint64_t base,
                                    const wisp_file_stamp *stamp, const char *dir, bool *reused)
{
    *reused = false;
    struct stat st;
    const char *path = wisp_model_get_path(m);
    char *mp =
        stamp->valid && stat(path, &st) == 0 && S_ISREG(st.st_mode) ? memo_path(dir, base) : NULL;
    if (!mp)
        return hash_weights(m, base);
    memo mm;
    FILE *f = fopen(mp, "rb");
    bool hit = false;
    if (f) {
        struct stat fst;
        hit = fstat(fileno(f), &fst) == 0 && S_ISREG(fst.st_mode) &&
              fread(&mm, sizeof mm, 1, f) == 1 && memcmp(mm.magic, MEMO_MAGIC, 8) == 0 &&
              stamps_equal(&mm.stamp, stamp);
        fclose(f);
    }
    if (hit) {
        *reused = true;
        free(mp);
        return mm.hash;
    }
    memset(&mm, 0, sizeof mm);
    memcpy(mm.magic, MEMO_MAGIC, 8);
    mm.stamp = *stamp;
    mm.hash = hash_weights(m, base);
    /* Written aside and renamed, so a reader never sees half a memo. A
     * memo that cannot be written only costs the next load a rehash. */
    size_t tn = strlen(mp) + 32;
    char *tmp = malloc(tn);
    if (tmp) {
        snprintf(tmp, tn, "%s.tmp%ld", mp, (long)getpid());
        FILE *w = fopen(tmp, "wb");
        bool ok = w && fwrite(&mm, sizeof mm, 1, w) == 1;
        if (w && fclose(w) != 0)
            ok = false;
        if (!ok || rename(tmp, mp) != 0)
            unlink(tmp);
        free(tmp);
    }
    free(mp);
    return mm.hash;
}
