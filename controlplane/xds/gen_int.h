/*
 * gen_int.h - private to the xDS generators (controlplane/xds/gen_*.c).
 *
 * Generators build protobuf-c messages in an arena scoped to one unit of
 * work (one service), serialise them into the snapshot, then drop the
 * arena.  The helpers here wrap the pieces every generator needs: wrapper
 * values, durations, Any packing, cluster names, DestinationRule policy
 * merging, and emitting a finished resource.
 *
 * Allocation helpers return NULL when the arena is exhausted (callers treat
 * that as -ENOMEM); the others return 0 or a negative code (err.h).
 */
#ifndef MESH_XDS_GEN_INT_H
#define MESH_XDS_GEN_INT_H

#include "common/arena.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/resource.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

/* Bytes one unit of work (one service and its ports) may allocate. */
#define GEN_ARENA_MAX      (64u << 20)
/* Largest serialised resource we hand to the snapshot. */
#define GEN_RESOURCE_MAX   (16u << 20)
/* VirtualServices considered for one host. */
#define GEN_MAX_VS         256
/* Cluster names: "outbound|65535|SUBSET|HOST". */
#define GEN_NAME_MAX       512

/* The policy that applies to one cluster: field groups are copies of the
 * DestinationRule's (shallow: strings stay in the config object). */
struct gen_policy {
	struct cfg_traffic_policy p;
};

/* A zero-initialised message of type d (its __INIT values) in the arena. */
void *gen__msg(struct arena *a, const ProtobufCMessageDescriptor *d);
Google__Protobuf__UInt32Value *gen__u32(struct arena *a, uint32_t v);
Google__Protobuf__UInt64Value *gen__u64(struct arena *a, uint64_t v);
Google__Protobuf__BoolValue *gen__bool(struct arena *a, bool v);
/* ns must be >= 0. */
Google__Protobuf__Duration *gen__duration(struct arena *a, int64_t ns);
/* Serialise msg into an Any whose type URL is built from its descriptor. */
Google__Protobuf__Any *gen__any(struct arena *a, const ProtobufCMessage *msg);
/* Clamp a config number (may be -1 or huge) to uint32. */
uint32_t gen__clamp_u32(int64_t v);

/* "outbound|PORT|SUBSET|HOST" in the arena (subset NULL -> empty). */
char *gen__cluster_name(struct arena *a, uint32_t port, const char *subset, const char *host);

/* Merge the DestinationRule's traffic policy for one subset (NULL: none)
 * and port as Istio does: top level, then its port-level entry, then the
 * subset's groups, then the subset's port-level entry.  dr may be NULL. */
void gen__policy(const struct cfg_object *dr, const char *subset, uint32_t port, struct gen_policy *out);

/* Serialise msg and add it to the snapshot under name.
 * Returns 0, -ENOMEM, or -MESH_ETOOBIG past GEN_RESOURCE_MAX. */
int gen__emit(struct xds_snapshot *s, enum xds_type t, const char *name, const ProtobufCMessage *msg);

/* Proxyless generators for one service (all its ports). */
int gen__grpc_listeners(const struct model *m, const struct model_service *svc,
			struct arena *a, struct xds_snapshot *snap);
int gen__grpc_routes(const struct model *m, const struct model_service *svc,
		     struct arena *a, struct xds_snapshot *snap);
int gen__grpc_clusters(const struct model *m, const struct model_service *svc,
		       struct arena *a, struct xds_snapshot *snap);
int gen__grpc_endpoints(const struct model *m, const struct model_service *svc,
			struct arena *a, struct xds_snapshot *snap);

#endif
