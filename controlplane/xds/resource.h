/*
 * resource.h - encoded xDS resources and the immutable snapshots that hold them.
 *
 * Generators produce an xds_snapshot: for each xDS type, the resources it
 * serves, each already serialised (the bytes of the resource message, e.g. a
 * envoy.config.listener.v3.Listener, not wrapped in Any) with a content hash.
 * The ADS server picks from a snapshot what each stream subscribed to; it
 * never re-encodes a resource.  Snapshots and the resources in them are
 * reference counted and shared read-only between threads; a snapshot
 * holds pointers to resources, which other snapshots, the gen cache and
 * the streams that were sent them share.
 */
#ifndef MESH_XDS_RESOURCE_H
#define MESH_XDS_RESOURCE_H

#include "common/err.h"

#include "common/refcount.h"
#include "common/xds/types.h"

#include <stddef.h>
#include <stdint.h>

/*
 * An encoded resource: immutable once made, reference counted, one
 * allocation (this header, then the bytes, then the name).  The gen cache,
 * every snapshot that serves it and every stream that was sent it hold a
 * reference each, so the bytes are built once and never copied per push
 * or per stream (nginx's shared buffer chains, h2o's refcounted chunks).
 */
struct xds_resource {
	const char *name;            /* in the same allocation */
	const uint8_t *data;         /* serialised resource message, same allocation */
	size_t len;
	uint64_t hash;               /* mesh_hash over type, name and data */
	/* private */
	struct mesh_refcount refs;
};

struct xds_resource_set {
	struct xds_resource **v;     /* sorted by name, names unique; one reference each */
	size_t n;
	size_t cap;
};

struct xds_snapshot {
	struct xds_resource_set sets[XDS_TYPE_COUNT];
	uint64_t model_generation;
	/* private */
	struct mesh_refcount refs;
};

/* Make a resource of type t from a copy of name and data (hash computed
 * here), with one reference for the caller in *out.  Returns 0, -EINVAL
 * or -ENOMEM. */
MESH_MUST_CHECK int xds_resource_new(enum xds_type t, const char *name, const uint8_t *data, size_t len,
				     struct xds_resource **out);
/* Take one more reference (r may be const: only its count changes);
 * returns r.  NULL is a no-op. */
struct xds_resource *xds_resource_ref(const struct xds_resource *r);
/* Drop one reference; the last frees it.  NULL is a no-op. */
void xds_resource_unref(const struct xds_resource *r);
/* Drop the reference each of v[0..n) holds, then free the array v. */
void xds_resource_array_unref(const struct xds_resource **v, size_t n);

MESH_MUST_CHECK struct xds_snapshot *xds_snapshot_new(void);
struct xds_snapshot *xds_snapshot_ref(struct xds_snapshot *s);
void xds_snapshot_unref(struct xds_snapshot *s);     /* NULL is a no-op */

/* Add a resource made from copies of name and data (for generators that
 * produce fresh bytes).  Adding a name twice replaces the earlier one.
 * Returns 0, -EINVAL or -ENOMEM.  (Not MESH_MUST_CHECK yet: test_server.c
 * and test_delta.c ignore the result.) */
int xds_snapshot_add(struct xds_snapshot *s, enum xds_type t, const char *name, const uint8_t *data, size_t len);
/* Add an existing resource of type t by reference (the snapshot takes a
 * reference of its own; no byte is copied): how the gen cache hands its
 * unchanged groups to each new snapshot.  Same replacement rule.  Returns
 * 0, -EINVAL or -ENOMEM. */
MESH_MUST_CHECK int xds_snapshot_add_ref(struct xds_snapshot *s, enum xds_type t, const struct xds_resource *r);
/* Sort each set by name (call once after the last add). */
void xds_snapshot_seal(struct xds_snapshot *s);
/* Find by name after sealing; NULL when absent.  The pointer is valid while
 * the snapshot is (take xds_resource_ref() to keep it longer). */
const struct xds_resource *xds_snapshot_find(const struct xds_snapshot *s, enum xds_type t, const char *name);

#endif
