/*
 * gen.h - xDS generators: model in, encoded resources out.
 *
 * One generator per xDS type and proxy flavour; each is a pure function of
 * the model (no I/O, no clocks, no globals), so the same model always gives
 * byte-identical resources and content-hash versions stay stable across
 * meshd restarts.
 *
 * Proxyless gRPC (node metadata GENERATOR: grpc), following Istio's grpcgen:
 *  - LDS: one Listener per service host and port, named "HOST:PORT", with an
 *    ApiListener holding an HttpConnectionManager (RDS over ADS, route
 *    config named "HOST:PORT"; http filters: fault, then router last);
 *  - RDS: one RouteConfiguration per listener, one VirtualHost whose routes
 *    come from the matching VirtualServices (or a default route);
 *  - CDS: "outbound|PORT||HOST" plus "outbound|PORT|SUBSET|HOST" per
 *    DestinationRule subset, type EDS, policy from the DestinationRule;
 *  - EDS: one ClusterLoadAssignment per cluster, endpoints grouped by
 *    locality, each locality with a load_balancing_weight.
 * Everything stays inside what Debian's gRPC 1.51 client accepts (see
 * DESIGN.md "Compatibility floor").
 *
 * mTLS (gen_grpc_inbound.c), following Istio's grpcgen:
 *  - xDS-enabled gRPC servers ask for "xds.istio.io/grpc/lds/inbound/IP:PORT";
 *    that Listener depends on the workload (namespace, labels) and is built
 *    per proxy by gen_grpc_inbound_listener(), not put in the snapshot;
 *  - clusters carry an UpstreamTlsContext when a DestinationRule says
 *    ISTIO_MUTUAL, or (auto mTLS) when every endpoint has an identity and
 *    serves that port with mTLS required.
 */
#ifndef MESH_GEN_H
#define MESH_GEN_H

#include "controlplane/model/model.h"
#include "controlplane/xds/resource.h"

/* Build every proxyless resource for the model into a new sealed snapshot.
 * Returns 0 and *out, or a negative code. */
int gen_grpc_snapshot(const struct model *m, struct xds_snapshot **out);

/* Incremental generation (gen_grpc_cache.c): a cache kept across pushes
 * by one thread.  gen_grpc_snapshot_cached() gives the same snapshot as
 * gen_grpc_snapshot() (byte for byte) but rebuilds, per service and xDS
 * type, only the resources whose inputs changed since the previous call;
 * the others are taken encoded from the cache.  Returns 0 and *out, or a
 * negative code (the cache is then emptied, and the next call rebuilds
 * everything). */
struct gen_cache;
struct gen_cache *gen_cache_new(void);      /* NULL on out-of-memory */
void gen_cache_free(struct gen_cache *c);   /* NULL is a no-op */
int gen_grpc_snapshot_cached(struct gen_cache *c, const struct model *m, struct xds_snapshot **out);

/* What the last gen_grpc_snapshot_cached() did, counted in (service, xDS
 * type) groups, indexed by enum xds_type (Listener..ClusterLoadAssignment). */
struct gen_cache_stats {
	size_t built[XDS_TYPE_COUNT];
	size_t reused[XDS_TYPE_COUNT];
};
void gen_cache_get_stats(const struct gen_cache *c, struct gen_cache_stats *out);

/* LDS names of xDS-enabled gRPC servers (Istio's
 * server_listener_resource_name_template, "%s" = IP:PORT). */
#define GEN_GRPC_INBOUND_PREFIX "xds.istio.io/grpc/lds/inbound/"
/* Istio's label telling that a workload takes mTLS (auto mTLS). */
#define GEN_TLS_MODE_LABEL "security.istio.io/tlsMode"

/* The workload a per-proxy resource is built for. */
struct gen_workload {
	const char *ns;                   /* namespace; NULL: "default" */
	const struct cfg_labels *labels;  /* NULL: no labels */
};

/* Whether a proxyless gRPC server on that workload port requires mTLS
 * (the PeerAuthentication mode from model_peer_authn()):
 * STRICT does; PERMISSIVE does only when the workload carries
 * security.istio.io/tlsMode=istio (a gRPC server cannot take TLS and
 * plaintext on one port, so PERMISSIVE is served as plaintext otherwise,
 * as Istio does); DISABLE does not. */
bool gen_grpc_server_mtls(const struct model *m, const struct gen_workload *w, uint32_t port);

/* The inbound Listener `name` (GEN_GRPC_INBOUND_PREFIX + "IP:PORT" or
 * "[IPv6]:PORT") for workload w, serialised into *data (malloc'd, the
 * caller frees) and *len.  Returns 0, -ENOENT when name is not such a
 * listener name, -ENOMEM, or -MESH_ETOOBIG. */
int gen_grpc_inbound_listener(const struct model *m, const struct gen_workload *w, const char *name,
			      uint8_t **data, size_t *len);

#endif
