/*
 * resource.h - encoded xDS resources and the immutable snapshots that hold them.
 *
 * Generators produce an xds_snapshot: for each xDS type, the resources it
 * serves, each already serialised (the bytes of the resource message, e.g. a
 * envoy.config.listener.v3.Listener, not wrapped in Any) with a content hash.
 * The ADS server picks from a snapshot what each stream subscribed to; it
 * never re-encodes a resource.  Snapshots are reference counted and shared
 * read-only between threads.
 */
#ifndef MESH_XDS_RESOURCE_H
#define MESH_XDS_RESOURCE_H

#include "common/err.h"

#include "common/refcount.h"
#include "common/xds/types.h"

#include <stddef.h>
#include <stdint.h>

struct xds_resource {
	char *name;
	uint8_t *data;               /* serialised resource message */
	size_t len;
	uint64_t hash;               /* mesh_hash over type, name and data */
};

struct xds_resource_set {
	struct xds_resource *v;      /* sorted by name, names unique */
	size_t n;
	size_t cap;
};

struct xds_snapshot {
	struct xds_resource_set sets[XDS_TYPE_COUNT];
	uint64_t model_generation;
	/* private */
	struct mesh_refcount refs;
};

MESH_MUST_CHECK struct xds_snapshot *xds_snapshot_new(void);
struct xds_snapshot *xds_snapshot_ref(struct xds_snapshot *s);
void xds_snapshot_unref(struct xds_snapshot *s);     /* NULL is a no-op */

/* Add a resource: takes copies of name and data.  Adding a name twice
 * replaces the earlier one.  Returns 0 or -ENOMEM.  (Not MESH_MUST_CHECK
 * yet: test_server.c and test_delta.c ignore the result.) */
int xds_snapshot_add(struct xds_snapshot *s, enum xds_type t, const char *name, const uint8_t *data, size_t len);
/* The same, for a resource taken from an earlier snapshot: hash is its
 * xds_resource.hash there (type, name and data unchanged), so it is not
 * computed again.  Returns 0, -EINVAL or -ENOMEM. */
MESH_MUST_CHECK int xds_snapshot_add_hashed(struct xds_snapshot *s, enum xds_type t, const char *name, const uint8_t *data,
			    size_t len, uint64_t hash);
/* Sort each set by name (call once after the last add). */
void xds_snapshot_seal(struct xds_snapshot *s);
/* Find by name after sealing; NULL when absent. */
const struct xds_resource *xds_snapshot_find(const struct xds_snapshot *s, enum xds_type t, const char *name);

#endif
