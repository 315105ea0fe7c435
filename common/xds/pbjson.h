/*
 * pbjson.h - render protobuf-c messages as proto3 JSON (config dumps).
 *
 * Driven by each message's ProtobufCMessageDescriptor: field names in
 * lowerCamelCase (or as in the .proto with PBJSON_PROTO_NAMES), default values omitted, enums by name, 64-bit integers as
 * strings, bytes as base64, maps as objects, and the well-known types in
 * their JSON forms (Duration "1.500s", Timestamp RFC 3339, wrappers as their
 * value, Struct/Value/ListValue as JSON).  A google.protobuf.Any is expanded
 * to {"@type": url, ...fields} when its type URL is in the registry: the
 * xDS resource types and the typed-config messages meshd emits are
 * registered from the start; more may be added with pbjson_register().
 *
 * Output goes to a mesh_buf, whose max caps the size; nesting is capped at
 * PBJSON_MAX_DEPTH.  Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_PBJSON_H
#define MESH_PBJSON_H

#include "common/err.h"

#include "common/buf.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define PBJSON_MAX_DEPTH 64

/* Render msg; -MESH_ETOOBIG past the buffer's cap or the depth cap. */
MESH_MUST_CHECK int pbjson_render(const ProtobufCMessage *msg, struct mesh_buf *out);

/* Flags for pbjson_render_opts(). */
enum {
	/* Field names as the .proto spells them (snake_case) instead of
	 * lowerCamelCase: protobuf's JsonPrintOptions.preserving_proto_field_name,
	 * which Envoy's admin /config_dump uses.  Proto3 JSON parsers accept both. */
	PBJSON_PROTO_NAMES = 1u << 0,
};

/* pbjson_render() with flags (PBJSON_*); same returns. */
MESH_MUST_CHECK int pbjson_render_opts(const ProtobufCMessage *msg, struct mesh_buf *out, unsigned flags);

/* Decode data as the message type_url names (registered) and render it as
 * an expanded Any: {"@type": type_url, ...}.  -ENOENT when the type is not
 * registered, -MESH_EPARSE when data does not decode. */
MESH_MUST_CHECK int pbjson_render_any(const char *type_url, const uint8_t *data, size_t len, struct mesh_buf *out);

/* The descriptor registered for "type.googleapis.com/<full name>" (or any
 * "<prefix>/<full name>"); NULL when unknown.  Thread-safe. */
const ProtobufCMessageDescriptor *pbjson_lookup(const char *type_url);

/* Add a descriptor to the registry (idempotent).  Returns 0, -EINVAL,
 * or -MESH_ETOOBIG when the registry is full.  Thread-safe. */
MESH_MUST_CHECK int pbjson_register(const ProtobufCMessageDescriptor *d);

#endif
