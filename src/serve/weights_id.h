/*
 * weights_id.h - a model identity that covers the weights themselves.
 *
 * The persistent prefix cache (--cache-dir) is keyed by the model's
 * identity. The cheap identity (model.h: size, mtime, header, tensor table)
 * cannot tell weights replaced in place with the mtime put back (cp -p,
 * rsync, tar) from the originals, and serving KV computed with other
 * weights is a wrong answer. So when a cache directory is in use, the
 * identity also hashes every tensor's bytes with XXH3 (libxxhash), which
 * runs at memory bandwidth; a mismatch is then a cache miss.
 */
#ifndef WISP_SERVE_WEIGHTS_ID_H
#define WISP_SERVE_WEIGHTS_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "serve/file_stamp.h"

/* base (the cheap identity) combined with a hash of every tensor's data. */
uint64_t wisp_weights_identity(const wisp_model *m, uint64_t base);

/* The same, remembered in dir (the cache directory) for a model file whose
 * stamp (taken before it was opened) has not moved since: *reused says
 * whether the memo spared the hashing. */
uint64_t wisp_weights_identity_memo(const wisp_model *m, uint64_t base,
                                    const wisp_file_stamp *stamp, const char *dir, bool *reused);

#endif
