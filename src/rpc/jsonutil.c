/* jsonutil.c - jansson helpers: see jsonutil.h. */
#include "rpc/jsonutil.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/buf.h"

json_t *wisp_json_string_lossy(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    wisp_buf b = WISP_BUF_INIT;
    static const char replacement[] = "\xEF\xBF\xBD";
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        int rc =
            n > 0 ? wisp_buf_append(&b, s + i, (size_t)n) : wisp_buf_append(&b, replacement, 3);
        if (rc < 0) {
            wisp_buf_free(&b);
            return NULL;
        }
        i += n > 0 ? (size_t)n : 1;
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    wisp_buf_free(&b);
    return j;
}

char *wisp_json_dump(const json_t *msg, size_t *len)
{
    char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s && len)
        *len = strlen(s);
    return s;
}
