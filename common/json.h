/*
 * json.h - helpers to write JSON text into a mesh_buf, and a small reader.
 *
 * Writers: errors are sticky in the buffer (mesh_buf.err).
 * Reader: meshd reads configuration through libyaml (JSON is YAML); the
 * reader here is for the proxy and for what common/ judges, which cannot
 * link libyaml: JWT headers and payloads, JWKS documents, the claims
 * `meshctl authz check --jwt-claims` takes (RFC 8259, with limits).
 */
#ifndef MESH_JSON_H
#define MESH_JSON_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* Append s as a quoted, escaped JSON string ("null" when s is NULL). */
void json_put_string(struct mesh_buf *b, const char *s);
void json_put_stringn(struct mesh_buf *b, const char *s, size_t n);


/* ---------------------------------------------------------------- reader */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* Limits of the reader: nesting depth and input bytes. */
#define JSON_MAX_DEPTH 64
#define JSON_MAX_INPUT (1u << 20)

/* One parsed value.  Strings are NUL-terminated UTF-8 (\u escapes decoded,
 * an embedded NUL rejected); objects keep their members in input order,
 * keys in `keys`, values in `v` (a repeated key: the first wins on lookup). */
struct json_value {
	enum json_type type;
	bool b;                      /* JSON_BOOL */
	double num;                  /* JSON_NUMBER */
	char *str;                   /* JSON_STRING */
	size_t n;                    /* ARRAY / OBJECT: members */
	struct json_value **v;       /* ARRAY / OBJECT: values */
	char **keys;                 /* OBJECT: keys */
};

/* Parse text (len bytes, no NUL needed) into *out (free with json_free).
 * Returns 0, -MESH_EPARSE (not one well-formed JSON value, trailing bytes
 * other than white space), -MESH_ETOOBIG (over JSON_MAX_INPUT or
 * JSON_MAX_DEPTH), or -ENOMEM. */
int json_parse(const char *text, size_t len, struct json_value **out);
void json_free(struct json_value *v);          /* NULL is a no-op */

/* The member `key` of an object, or NULL (not an object, no such key). */
const struct json_value *json_get(const struct json_value *obj, const char *key);
/* The string member `key`, or NULL when absent or not a string. */
const char *json_get_str(const struct json_value *obj, const char *key);

#endif
