/*
 * codes.h - the JSON-RPC error codes wisp answers with.
 *
 * Defined once, in the X-macro list below (the same shape as
 * common/err.h's WISP_ERR_MAP), which generates the enum, the names and the
 * default messages; protocol/PROTOCOL.md lists the same table. The second
 * table maps internal wisp_code values (errors as values) to the code a
 * request answers with, so a handler can turn any wisp_err into a reply.
 */
#ifndef WISP_RPC_CODES_H
#define WISP_RPC_CODES_H

/* X(NAME, code, default message). The standard JSON-RPC codes and LSP's
 * -32800 keep their meanings; wisp's own codes are -31001 and up, outside
 * the ranges JSON-RPC (-32768..-32000) and LSP (-32899..-32800) reserve,
 * so LSP client libraries do not take them for their own. */
/* clang-format off */
#define WISP_RPC_CODE_MAP(X)                                                   \
    X(PARSE_ERROR,       -32700, "parse error")                                \
    X(INVALID_REQUEST,   -32600, "invalid request")                            \
    X(METHOD_NOT_FOUND,  -32601, "method not found")                           \
    X(INVALID_PARAMS,    -32602, "invalid params")                             \
    X(INTERNAL_ERROR,    -32603, "internal error")                             \
    X(REQUEST_CANCELLED, -32800, "request cancelled")                          \
    X(NO_MODEL,          -31001, "no model loaded")                            \
    X(MODEL_LOAD_FAILED, -31002, "model load failed")                          \
    X(NEVER_FITS,        -31003, "request can never fit")                      \
    X(OVERLOADED,        -31004, "server overloaded")                          \
    X(SHUTTING_DOWN,     -31005, "server is shutting down")                    \
    X(DEVICE_ERROR,      -31006, "device error")                               \
    X(UNSUPPORTED,       -31007, "unsupported")                                \
    X(NOT_AVAILABLE,     -31008, "method not available in this build")         \
    X(MODEL_CHANGED,     -31009, "model file changed on disk")                 \
    X(REMOTE_ERROR,      -31010, "remote server error")
/* clang-format on */

typedef enum wisp_rpc_code {
#define WISP_RPC_CODE_ENUM(name, code, msg) WISP_RPC_##name = code,
    WISP_RPC_CODE_MAP(WISP_RPC_CODE_ENUM)
#undef WISP_RPC_CODE_ENUM
} wisp_rpc_code;

/* "INVALID_PARAMS" for -32602; "UNKNOWN" otherwise. */
const char *wisp_rpc_code_name(int code);
/* The default message of a code ("invalid params"). */
const char *wisp_rpc_code_message(int code);
/* The JSON-RPC code a request answers with when it fails with the internal
 * wisp_code `code` (WISP_E_NO_MODEL -> -31001, WISP_E_INVALID -> -32602,
 * WISP_E_INTERNAL -> -32603, ...); unknown codes map to -32603. */
int wisp_rpc_code_from_wisp(int code);

#endif
