/*
 * store.h - the validated configuration meshd serves, with last-good semantics.
 *
 * Objects are keyed by (kind, namespace, name).  Sources feed the store:
 *  - the file source replaces everything one file contributed with
 *    cfg_store_apply_origin() after each (re)parse of that file;
 *  - the Kubernetes source puts and deletes single objects, in batches
 *    (cfg_store_begin / cfg_store_commit) when many arrive at once.
 * A rejected object never replaces a good one: when a new version of a key
 * fails validation the previous good version stays served, and the error is
 * kept beside it for /debug/configz.  When a file cannot be parsed far
 * enough to identify its objects, every object it contributed before is kept.
 *
 * The store is not thread-safe by itself: one thread (the config thread)
 * writes it; readers on other threads take cfg_store_snapshot(), an
 * immutable reference-counted view.
 */
#ifndef MESH_CONFIG_STORE_H
#define MESH_CONFIG_STORE_H

#include "controlplane/config/config.h"

#include <stdint.h>

struct cfg_store;

/* An immutable view of the store at one moment. */
struct cfg_snapshot {
	/* valid objects per kind, sorted by (namespace, name) */
	struct cfg_object **objects[CFG_KIND_COUNT];
	size_t n_objects[CFG_KIND_COUNT];
	/* current errors (rejected objects and unparsable documents), sorted by origin, line */
	struct cfg_error *errors;
	size_t n_errors;
	uint64_t generation;         /* bumped on every change */
	uint64_t total_rejections;   /* errors seen since start, for /metrics */
	/* private */
	struct arena *arena;
	struct mesh_refcount refs;
};

struct cfg_store *cfg_store_new(void);
void cfg_store_free(struct cfg_store *s);

/* Replace what `origin` contributed by the parse result (consumed: the
 * objects are taken over, the result is left empty).  Returns the number
 * of keys whose served object changed (0 = nothing to push), or < 0. */
int cfg_store_apply_origin(struct cfg_store *s, const char *origin, struct cfg_parse_result *res);
/* The origin went away (file deleted): drop its objects and errors.
 * Returns the number of keys removed. */
int cfg_store_remove_origin(struct cfg_store *s, const char *origin);

/* Single-object updates (Kubernetes).  put takes a reference of its own.
 * Return 1 if the served object changed, 0 if not, < 0 on error. */
int cfg_store_put(struct cfg_store *s, struct cfg_object *o);
int cfg_store_delete(struct cfg_store *s, enum cfg_kind kind, const char *ns, const char *name);
/* Record a rejected version of (kind, ns, name); the good one stays.
 * The error is copied. */
int cfg_store_reject(struct cfg_store *s, const struct cfg_error *e);

/* Batched writes (a Kubernetes relist of N objects): between begin and
 * commit, cfg_store_put, cfg_store_delete and cfg_store_reject only record
 * the change (put/delete return 0, a reject is counted at once) and readers
 * (cfg_store_get, cfg_store_snapshot) keep seeing the state before begin.
 * commit applies the changes in the order they were made and re-derives the
 * served view once: O(N log N) for N changes over a store of N objects,
 * where single writes cost a rebuild each.  begin inside a batch is
 * -EBUSY; commit without a batch returns 0.  commit returns the number of
 * keys whose served object changed, or < 0 (the batch is over either way;
 * on -ENOMEM changes may be lost, as with single writes). */
int cfg_store_begin(struct cfg_store *s);
int cfg_store_commit(struct cfg_store *s);

/* Cross-object checks over the served objects: a VirtualService route or
 * mirror naming a subset that no DestinationRule for its host defines;
 * several Sidecars without a workloadSelector in one namespace (each but
 * the one Istio applies, the oldest, is named: Istio's analyzer IST0109).  As
 * in Istio these are warnings (cfg_error.warning): nothing is rejected, the
 * route just has no healthy upstream.  The store runs this after every
 * change; the findings replace the previous ones and appear in the
 * snapshot's error list.  Returns the number of findings, or < 0. */
int cfg_store_check_references(struct cfg_store *s);

/* Look up a served object (borrowed, valid until the next write). */
const struct cfg_object *cfg_store_get(const struct cfg_store *s, enum cfg_kind kind, const char *ns, const char *name);

/* A consistent view; NULL on out-of-memory. */
struct cfg_snapshot *cfg_store_snapshot(struct cfg_store *s);
struct cfg_snapshot *cfg_snapshot_ref(struct cfg_snapshot *snap);
void cfg_snapshot_unref(struct cfg_snapshot *snap);   /* NULL is a no-op */

#endif
