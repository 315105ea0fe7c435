/*
 * json.h - helpers to write JSON text into a mesh_buf.
 *
 * Writers only; meshd reads JSON through libyaml (JSON is YAML).
 * Errors are sticky in the buffer (mesh_buf.err).
 */
#ifndef MESH_JSON_H
#define MESH_JSON_H

#include "buf.h"

#include <stddef.h>

/* Append s as a quoted, escaped JSON string ("null" when s is NULL). */
void json_put_string(struct mesh_buf *b, const char *s);
void json_put_stringn(struct mesh_buf *b, const char *s, size_t n);

#endif
