/* file_stamp.c - noticing that a loaded model file changed: see file_stamp.h. */
#include "serve/file_stamp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static bool stamp_of(const char *path, wisp_file_stamp *out, int *err_no)
{
    struct stat st;
    memset(out, 0, sizeof *out);
    if (stat(path, &st) != 0) {
        *err_no = errno;
        return false;
    }
    out->valid = true;
    out->dev = (uint64_t)st.st_dev;
    out->ino = (uint64_t)st.st_ino;
    out->size = (int64_t)st.st_size;
    out->mtime_ns = ns(st.st_mtim);
    out->ctime_ns = ns(st.st_ctim);
    return true;
}

void wisp_file_stamp_take(const char *path, wisp_file_stamp *out)
{
    int e;
    stamp_of(path, out, &e);
}

int wisp_file_stamp_check(const char *path, const wisp_file_stamp *stamp, wisp_err *err)
{
    if (!stamp->valid)
        return 0;
    wisp_file_stamp now;
    int e = 0;
    const char *what;
    char detail[96] = "";
    if (!stamp_of(path, &now, &e)) {
        what = strerror(e);
    } else if (now.dev != stamp->dev || now.ino != stamp->ino) {
        what = "it was replaced by another file";
    } else if (now.size != stamp->size) {
        what = "its size changed";
        snprintf(detail, sizeof detail, " from %lld to %lld bytes", (long long)stamp->size,
                 (long long)now.size);
    } else if (now.mtime_ns != stamp->mtime_ns || now.ctime_ns != stamp->ctime_ns) {
        what = "it was written to";
    } else {
        return 0;
    }
    return wisp_err_set(err, WISP_E_MODEL_CHANGED,
                        "the model file %s changed on disk since it was loaded (%s%s): its "
                        "weights can no longer be trusted; load it again with model/load",
                        path, what, detail);
}
