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
#include <stdint.h>

struct arena;

/* Append s as a quoted, escaped JSON string ("null" when s is NULL).
 * Control characters are escaped and every byte that is not part of
 * well-formed UTF-8 is written as the escape of U+FFFD, so the output is valid JSON
 * whatever s holds (strings from clients, strings cut at a byte cap). */
void json_put_string(struct mesh_buf *b, const char *s);
void json_put_stringn(struct mesh_buf *b, const char *s, size_t n);


/* ---------------------------------------------------------------- reader */

/* One JSON reader (RFC 8259) for the whole tree: the proxy and common/
 * (JWT headers and payloads, JWKS documents, `meshctl authz check
 * --jwt-claims`), which cannot link libyaml, and the Kubernetes client
 * (controlplane/kube/kube_json.h), which needs strictness and the byte
 * range of every value.  The callers differ only in limits (struct
 * json_limits), not in grammar. */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* Limits of json_parse(): nesting depth, input bytes, a number's text. */
#define JSON_MAX_DEPTH 64
#define JSON_MAX_INPUT (1u << 20)
#define JSON_MAX_NUMBER 63

/* One parsed value, allocated from an arena.  Strings are NUL-terminated
 * UTF-8 with \u escapes decoded; objects keep their members in input
 * order (a repeated key: the first wins on lookup). */
struct json_value {
	enum json_type type;
	size_t start, end;           /* the value's bytes in the input: [start, end) */
	char *str;                   /* STRING: decoded text; NUMBER: its text */
	size_t len;                  /* bytes of str */
	bool b;                      /* BOOL */
	double num;                  /* NUMBER */
	int64_t i;                   /* NUMBER when is_int */
	bool is_int;
	char *key;                   /* member name, when the parent is an object */
	struct json_value *child;    /* ARRAY / OBJECT: first element or member */
	struct json_value *next;     /* next sibling */
	size_t n;                    /* ARRAY / OBJECT: number of children */
	struct json_value **v;       /* ARRAY / OBJECT with json_limits.index: the n children, in order */
	struct arena *owner;         /* the root from json_parse(): json_free() frees this arena */
};

/* What one caller allows.  0 in a size means no cap (the caller caps the
 * input some other way). */
struct json_limits {
	int max_depth;               /* nested arrays/objects; deeper: -MESH_ETOOBIG */
	size_t max_input;            /* input bytes; more: -MESH_ETOOBIG */
	size_t max_number;           /* bytes of a number's text; more: -MESH_ETOOBIG */
	bool allow_nul;              /* accept \u0000 in strings (str then holds a NUL: use len) */
	bool index;                  /* also fill json_value.v for containers */
};

/* Parse text (len bytes, no NUL needed) into a tree allocated from a
 * (freed with the arena).  Returns 0, -MESH_EPARSE (not one well-formed
 * JSON value, trailing bytes other than white space, \u0000 unless
 * allowed), -MESH_ETOOBIG (a limit of lim) or -ENOMEM (the arena's cap
 * included).  Thread-safe: no state outside the arena. */
int json_parse_arena(struct arena *a, const char *text, size_t len, const struct json_limits *lim,
		     struct json_value **out);

/* Parse text with the proxy's limits (JSON_MAX_DEPTH, JSON_MAX_INPUT,
 * JSON_MAX_NUMBER, \u0000 rejected, json_value.v filled) into *out, which
 * owns its own arena: free with json_free().  Returns as json_parse_arena(). */
int json_parse(const char *text, size_t len, struct json_value **out);
/* Free a tree from json_parse(); NULL, or any value that is not such a
 * root, is a no-op. */
void json_free(struct json_value *v);

/* Member `key` of an object (the first, if repeated); NULL when absent or
 * when obj is NULL or not an object. */
const struct json_value *json_get(const struct json_value *obj, const char *key);
/* The string member `key`, or NULL when absent or not a string. */
const char *json_get_str(const struct json_value *obj, const char *key);
/* The integer member `key`, or def when absent or not an integer. */
int64_t json_get_int(const struct json_value *obj, const char *key, int64_t def);
/* The boolean member `key`, or def when absent or not a boolean. */
bool json_get_bool(const struct json_value *obj, const char *key, bool def);

#endif
