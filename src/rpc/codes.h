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

/* X(NAME, code, default message) */
#define WISP_RPC_CODE_MAP(X)                                                   \
    X(PARSE_ERROR,       -32700, "parse error")                                \
    X(INVALID_REQUEST,   -32600, "invalid request")                            \
    X(METHOD_NOT_FOUND,  -32601, "method not found")                           \
    X(INVALID_PARAMS,    -32602, "invalid params")                             \
    X(INTERNAL_ERROR,    -32603, "internal error")                             \
    X(REQUEST_CANCELLED, -32800, "request cancelled")                          \
    X(NO_MODEL,          -32001, "no model loaded")                            \
    X(MODEL_LOAD_FAILED, -32002, "model load failed")                          \
    X(NEVER_FITS,        -32003, "request can never fit")                      \
    X(OVERLOADED,        -32004, "server overloaded")                          \
    X(SHUTTING_DOWN,     -32005, "server is shutting down")                    \
    X(DEVICE_ERROR,      -32006, "device error")                               \
    X(UNSUPPORTED,       -32007, "unsupported")                                \
    X(NOT_AVAILABLE,     -32008, "method not available in this build")

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
 * wisp_code `code` (WISP_E_NO_MODEL -> -32001, WISP_E_INVALID -> -32602,
 * WISP_E_INTERNAL -> -32603, ...); unknown codes map to -32603. */
int wisp_rpc_code_from_wisp(int code);

#endif
