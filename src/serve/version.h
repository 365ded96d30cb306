/*
 * version.h - the program and protocol versions.
 *
 * The protocol version changes only when a client would have to change:
 * fields are added freely without bumping it (clients ignore unknown fields).
 */
#ifndef WISP_SERVE_VERSION_H
#define WISP_SERVE_VERSION_H

#define WISP_VERSION          "0.1.0"
#define WISP_PROTOCOL_VERSION "2.0"

#endif
