/*
 * file_stamp.h - noticing that a loaded model file changed on disk.
 *
 * Weights are mmapped: a file truncated under a loaded model turns the next
 * read of a lost page into SIGBUS, and one rewritten in place silently
 * serves other weights. A stamp taken before the file is opened (device,
 * inode, size, modification and status-change times in nanoseconds) is
 * compared before each engine step and each model request; one stat(2)
 * is cheap next to a step. The status-change time catches an in-place
 * rewrite even when the modification time was put back (touch -d, cp -p),
 * since no user can set it.
 */
#ifndef WISP_SERVE_FILE_STAMP_H
#define WISP_SERVE_FILE_STAMP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wisp_file_stamp {
    bool valid;
    uint64_t dev, ino;
    int64_t size;
    int64_t mtime_ns, ctime_ns;
} wisp_file_stamp;

/* Takes the stamp of path (valid stays false when it cannot be read). */
void wisp_file_stamp_take(const char *path, wisp_file_stamp *out);

/* 0 when path still has the stamp (or none was taken); else
 * WISP_E_MODEL_CHANGED with err saying what changed and what to do. */
int wisp_file_stamp_check(const char *path, const wisp_file_stamp *stamp, wisp_err *err);

#endif
