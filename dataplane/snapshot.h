/*
 * snapshot.h - the configuration meshproxy runs on: the xDS resources it
 * accepted, decoded, grouped by type and sorted by name.
 *
 * The xDS client (xds_client.c) receives resources type by type; for each
 * response it builds a candidate snapshot (the new type's resources plus
 * the other types' current ones, shared by reference), hands it to the
 * engine to compile (router, clusters, listeners: the whole candidate is
 * validated before anything changes), and either swaps it in and ACKs, or
 * drops it and NACKs with the engine's error text, keeping the last good
 * snapshot (Envoy's rule: a rejected update changes nothing).
 *
 * Resources are immutable and reference counted (common/refcount.h): a
 * snapshot holds one reference to each resource it lists; successive
 * snapshots share the resources that did not change.  A snapshot is
 * itself reference counted: a request in flight keeps the one it started
 * on.  Everything here runs on the proxy's loop thread except the counts,
 * which are atomic so that a snapshot may be released from anywhere.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_SNAPSHOT_H
#define MESH_DATAPLANE_SNAPSHOT_H

#include "common/err.h"
#include "common/refcount.h"
#include "common/xds/types.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* One xDS resource: its encoded bytes, and the message decoded from them
 * while someone needs it (the message type is the one xds_type_url() names
 * for its type: Listener, RouteConfiguration, Cluster,
 * ClusterLoadAssignment, Secret).  A decoded protobuf-c message costs
 * several times its encoding (a pointer and a malloc per submessage and
 * string): with a 1,000-service mesh that was ~2.5 MB of meshproxy's RSS
 * budget of 10 (DESIGN.md), so the engine sheds the decoded messages once
 * it has compiled a snapshot and they are decoded again on the next
 * compile or /config_dump. */
struct px_resource {
	struct mesh_refcount refs;
	enum xds_type type;
	char *name;                  /* owned */
	uint8_t *bytes;              /* owned: the encoded resource */
	size_t len;
	ProtobufCMessage *decoded;   /* cache, owned; read it with px_resource_msg() */
	struct px_region **regions;  /* owned: the decode regions decoded lives in (snapshot.c) */
	size_t n_regions;
	char *eds_name;              /* an EDS cluster's EDS service name (eds_cluster_config.service_name,
	                              * else the cluster's name); NULL for other clusters and types; owned,
	                              * or name itself when equal (Istio's clusters: no copy per cluster) */
	uint64_t hash;               /* of the encoded bytes (mesh_hash) */
	char version[64];            /* the version it came with (SotW
	                              * version_info, Delta resource version) */
};

/* Decode len bytes of a resource of type t (the bytes of the resource
 * message, not the Any) named name; *out has one reference.  Returns 0,
 * -EINVAL (unknown type), -MESH_EPARSE (bytes do not decode) or -ENOMEM.
 * `name` is what the resource is known by (the caller takes it from the
 * decoded message or the Delta Resource: Listener.name, Cluster.name,
 * ClusterLoadAssignment.cluster_name, ...). */
MESH_MUST_CHECK int px_resource_decode(enum xds_type t, const char *name, const uint8_t *data, size_t len,
				       struct px_resource **out);
/* The decoded message: the cached one, else decoded again from the bytes
 * (they decoded when the resource was made) and cached until
 * px_snapshot_shed().  Borrowed: valid until the resource is shed or
 * freed.  NULL only when out of memory. */
const ProtobufCMessage *px_resource_msg(const struct px_resource *r);
/* Rename r (not yet shared with a snapshot): name copied.  Returns 0 or
 * -ENOMEM (r unchanged). */
MESH_MUST_CHECK int px_resource_set_name(struct px_resource *r, const char *name);
struct px_resource *px_resource_ref(struct px_resource *r);
void px_resource_unref(struct px_resource *r);        /* NULL is a no-op */

struct px_resource_set {
	struct px_resource **v;      /* sorted by name, names unique, one reference each */
	size_t n;
};

struct px_snapshot {
	struct mesh_refcount refs;
	struct px_resource_set sets[XDS_TYPE_COUNT];
	uint64_t generation;         /* increases with every snapshot swapped in */
};

/* An empty snapshot (the proxy's state before any configuration). */
MESH_MUST_CHECK int px_snapshot_new(struct px_snapshot **out);
struct px_snapshot *px_snapshot_ref(struct px_snapshot *s);
void px_snapshot_unref(struct px_snapshot *s);        /* NULL is a no-op */

/* A candidate: base's sets (shared by reference) with the set of type t
 * replaced by set (SotW: the whole set of that type; set's references are
 * taken, not stolen; the caller keeps its own).  base may be NULL (empty).
 * Returns 0, -EINVAL (duplicate or unsorted names) or -ENOMEM. */
MESH_MUST_CHECK int px_snapshot_replace(const struct px_snapshot *base, enum xds_type t,
					const struct px_resource *const *set, size_t n, struct px_snapshot **out);

/* The same for an incremental (Delta) update: set adds or replaces
 * resources by name, removed[] (names) are dropped; other names of type t
 * stay. */
MESH_MUST_CHECK int px_snapshot_update(const struct px_snapshot *base, enum xds_type t,
				       const struct px_resource *const *set, size_t n, const char *const *removed,
				       size_t n_removed, struct px_snapshot **out);

/* Free the cached decoded messages of s's resources (the bytes stay): what
 * the engine calls once it has compiled s, since what it runs on is its
 * own copy.  Pointers from px_resource_msg() on them are invalid after. */
void px_snapshot_shed(const struct px_snapshot *s);

/* Find by name; NULL when absent.  O(log n). */
const struct px_resource *px_snapshot_find(const struct px_snapshot *s, enum xds_type t, const char *name);

#endif
