/*
 * kube_map.h - a string-keyed hash map (chained, FNV-1a, grows x2) for the
 * kube module's per-resource tables: key "namespace/name" -> a pointer the
 * caller owns.  Not thread-safe.  Functions return 0 or -ENOMEM.
 */
#ifndef MESH_KUBE_MAP_H
#define MESH_KUBE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct kube_map_entry {
	char *key;
	void *val;
	uint64_t hash;
	struct kube_map_entry *next;
};

struct kube_map {
	struct kube_map_entry **b;
	size_t nb, n;
};

void kube_map_init(struct kube_map *m);
/* Frees the entries and keys; values are the caller's (free them first,
 * e.g. while iterating). */
void kube_map_cleanup(struct kube_map *m);
void *kube_map_get(const struct kube_map *m, const char *key);
/* Insert or replace; *old (may be NULL) receives the replaced value. */
int kube_map_put(struct kube_map *m, const char *key, void *val, void **old);
/* Remove; returns the value, NULL when absent. */
void *kube_map_del(struct kube_map *m, const char *key);

/* Iteration: it = NULL, then it = kube_map_next(m, it) until NULL.  The
 * map must not change while iterating. */
struct kube_map_entry *kube_map_next(const struct kube_map *m, struct kube_map_entry *it);

#endif
