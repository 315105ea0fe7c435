/*
 * kube_json.h - a strict JSON reader for Kubernetes API responses.
 *
 * The API server speaks JSON only (lists, watch events, Status objects).
 * This reader parses one JSON text (RFC 8259) into a tree allocated from
 * an arena, remembering for every value the byte range it occupied in the
 * input, so a caller can hand the exact text of a sub-object on (the
 * config parser takes an Istio object's own JSON).  Nesting is capped at
 * KUBE_JSON_MAX_DEPTH; the caller caps the input size.
 *
 * Returns 0, -MESH_EPARSE (not JSON; trailing bytes), -MESH_ETOOBIG (too
 * deep) or -ENOMEM (the arena's cap included).  Thread-safe: no state
 * outside the arena.
 */
#ifndef MESH_KUBE_JSON_H
#define MESH_KUBE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

#define KUBE_JSON_MAX_DEPTH 128

enum kube_json_type { KUBE_JSON_NULL, KUBE_JSON_BOOL, KUBE_JSON_NUMBER, KUBE_JSON_STRING, KUBE_JSON_ARRAY,
		      KUBE_JSON_OBJECT };

struct kube_json {
	enum kube_json_type type;
	size_t start, end;           /* the value's bytes in the input: [start, end) */
	char *str;                   /* STRING: decoded UTF-8, NUL-terminated; NUMBER: its text */
	size_t len;                  /* bytes of str */
	bool b;                      /* BOOL */
	double num;                  /* NUMBER */
	int64_t i;                   /* NUMBER when is_int */
	bool is_int;
	char *key;                   /* member name, when the parent is an object */
	struct kube_json *child;     /* ARRAY / OBJECT: first element or member */
	struct kube_json *next;      /* next sibling */
	size_t n;                    /* ARRAY / OBJECT: number of children */
};

int kube_json_parse(struct arena *a, const char *data, size_t len, struct kube_json **out);

/* Member `key` of an object (the first, if repeated); NULL when absent or
 * when obj is NULL or not an object. */
const struct kube_json *kube_json_get(const struct kube_json *obj, const char *key);
/* The string value of member key; NULL unless it is a string. */
const char *kube_json_str(const struct kube_json *obj, const char *key);
/* The integer value of member key, or def when absent or not an integer. */
int64_t kube_json_int(const struct kube_json *obj, const char *key, int64_t def);
/* The boolean value of member key, or def. */
bool kube_json_bool(const struct kube_json *obj, const char *key, bool def);

#endif
