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

#include <stdint.h>

#include "model/model.h"

/* base (the cheap identity) combined with a hash of every tensor's data. */
uint64_t wisp_weights_identity(const wisp_model *m, uint64_t base);

#endif
