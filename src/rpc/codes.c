/* codes.c - JSON-RPC error codes and their mapping from wisp_code: see codes.h. */
#include "rpc/codes.h"

#include <stddef.h>

#include "common/err.h"

const char *wisp_rpc_code_name(int code)
{
    switch (code) {
#define WISP_RPC_CODE_NAME(name, value, msg) \
    case value: return #name;
        WISP_RPC_CODE_MAP(WISP_RPC_CODE_NAME)
#undef WISP_RPC_CODE_NAME
    }
    return "UNKNOWN";
}

const char *wisp_rpc_code_message(int code)
{
    switch (code) {
#define WISP_RPC_CODE_TEXT(name, value, msg) \
    case value: return msg;
        WISP_RPC_CODE_MAP(WISP_RPC_CODE_TEXT)
#undef WISP_RPC_CODE_TEXT
    }
    return "unknown error";
}

/* One row per internal code that has a natural protocol meaning. I/O and
 * format errors surface as "model load failed" because files are only read
 * while loading models; anything else is an internal error. */
static const struct {
    int wisp;
    int rpc;
} from_wisp[] = {
    {WISP_E_NOMEM, WISP_RPC_OVERLOADED},
    {WISP_E_IO, WISP_RPC_MODEL_LOAD_FAILED},
    {WISP_E_FORMAT, WISP_RPC_MODEL_LOAD_FAILED},
    {WISP_E_NOT_FOUND, WISP_RPC_MODEL_LOAD_FAILED},
    {WISP_E_UNSUPPORTED, WISP_RPC_UNSUPPORTED},
    {WISP_E_INVALID, WISP_RPC_INVALID_PARAMS},
    {WISP_E_NO_MODEL, WISP_RPC_NO_MODEL},
    {WISP_E_CANCELLED, WISP_RPC_REQUEST_CANCELLED},
    {WISP_E_TOO_LARGE, WISP_RPC_NEVER_FITS},
    {WISP_E_OVERLOADED, WISP_RPC_OVERLOADED},
    {WISP_E_BUSY, WISP_RPC_OVERLOADED},
    {WISP_E_SHUTDOWN, WISP_RPC_SHUTTING_DOWN},
    {WISP_E_DEVICE, WISP_RPC_DEVICE_ERROR},
    {WISP_E_INTERNAL, WISP_RPC_INTERNAL_ERROR},
    {WISP_E_MODEL_CHANGED, WISP_RPC_MODEL_CHANGED},
    {WISP_E_REMOTE, WISP_RPC_REMOTE_ERROR},
};

int wisp_rpc_code_from_wisp(int code)
{
    for (size_t i = 0; i < sizeof from_wisp / sizeof from_wisp[0]; i++)
        if (from_wisp[i].wisp == code)
            return from_wisp[i].rpc;
    return WISP_RPC_INTERNAL_ERROR;
}
