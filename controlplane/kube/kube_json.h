/*
 * kube_json.h - the Kubernetes client's limits over the JSON reader.
 *
 * The API server speaks JSON only (lists, watch events, Status objects).
 * kube reads it with common/json.h's reader into an arena (struct
 * json_value, JSON_* types, json_get*()): strict RFC 8259, with every
 * value's byte range in the input, so a caller can hand the exact text of
 * a sub-object on (the config parser takes an Istio object's own JSON).
 * Nesting is capped at KUBE_JSON_MAX_DEPTH; the caller caps the input
 * size; \u0000 is accepted (str then holds a NUL: use len).
 */
#ifndef MESH_KUBE_JSON_H
#define MESH_KUBE_JSON_H

#include "common/json.h"

#include <stddef.h>

struct arena;

#define KUBE_JSON_MAX_DEPTH 128

/* json_parse_arena() with the limits above (json_value.v not filled).
 * Returns 0, -MESH_EPARSE (not JSON; trailing bytes), -MESH_ETOOBIG (too
 * deep) or -ENOMEM (the arena's cap included). */
int kube_json_parse(struct arena *a, const char *data, size_t len, struct json_value **out);

#endif
