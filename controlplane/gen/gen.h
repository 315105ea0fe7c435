/*
 * gen.h - xDS generators: model in, encoded resources out.
 *
 * Pure functions of the model and a client profile (flavour.h): no I/O,
 * no clocks, no globals, no logging (what would be logged is handed to the
 * caller's gen_notes), so the same model always gives byte-identical
 * resources and content-hash versions stay stable across meshd restarts.
 * The policy rules they read (which DestinationRule, PeerAuthentication,
 * AuthorizationPolicy applies and how levels merge) live in
 * controlplane/model/policy.h, shared by every generator.
 *
 * Shared shape, following Istio's generators:
 *  - LDS: one Listener per service host and port, named "HOST:PORT"
 *    (proxyless: an ApiListener holding an HttpConnectionManager; RDS over
 *    ADS, route config named "HOST:PORT"; http filters: fault, then router
 *    last);
 *  - RDS: one RouteConfiguration per listener, one VirtualHost whose routes
 *    come from the matching VirtualServices (or a default route);
 *  - CDS: "outbound|PORT||HOST" plus "outbound|PORT|SUBSET|HOST" per
 *    DestinationRule subset, type EDS, policy from the DestinationRule;
 *  - EDS: one ClusterLoadAssignment per cluster, endpoints grouped by
 *    locality.
 * What differs between client kinds is read from the profile; for
 * proxyless gRPC (node metadata GENERATOR: grpc) that is
 * gen_profile_proxyless, the gRPC 1.51 floor of DESIGN.md.
 *
 * mTLS, following Istio's grpcgen:
 *  - xDS-enabled gRPC servers ask for "xds.istio.io/grpc/lds/inbound/IP:PORT";
 *    that Listener depends on the workload (namespace, labels) and is built
 *    per proxy by gen_inbound_listener(), not put in the snapshot;
 *  - clusters carry an UpstreamTlsContext when a DestinationRule says
 *    ISTIO_MUTUAL, or (auto mTLS) when every endpoint has an identity and
 *    serves that port with mTLS required.
 */
#ifndef MESH_GEN_H
#define MESH_GEN_H

#include "controlplane/gen/flavour.h"
#include "controlplane/model/model.h"
#include "common/err.h"
#include "controlplane/xds/resource.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a generator would have logged: a resource over the size limit, a
 * service whose config failed, an AuthorizationPolicy condition the RBAC
 * filter cannot match.  The generator calls fn (on its own thread, msg
 * valid for the call only) and goes on; the caller decides where it goes.
 * A NULL gen_notes, or a NULL fn, drops them. */
enum gen_note_level { GEN_NOTE_WARN, GEN_NOTE_ERROR };
/* The listener conflicts istiod counts in its pilot_conflict_* gauges
 * (pilot/pkg/networking/core): two TCP services whose match-all filter
 * chains meet on one outbound listener (key: the listener's name), and two
 * services giving one inbound port of the workload different protocols
 * (key NULL: the proxy being built, as istiod keys it by node). */
enum gen_conflict { GEN_CONFLICT_INBOUND, GEN_CONFLICT_OUTBOUND_TCP_OVER_TCP };
struct gen_notes {
	void (*fn)(void *ctx, enum gen_note_level level, const char *scope, const char *msg);
	void *ctx;
	/* optional (NULL: not counted): one conflict of the build, key valid
	 * for the call only; called beside the warning fn gets */
	void (*conflict)(void *ctx, enum gen_conflict kind, const char *key);
};

/* What clients of profile p do not get of the configuration in m, once
 * per object: for each VirtualService and DestinationRule whose settings
 * p's builders leave out or its clients ignore, one warning "not applied
 * to proxyless gRPC clients: LIST" (the proxyless profile: LEAST_REQUEST
 * and RANDOM served as ROUND_ROBIN, connectionPool fields other than
 * http2MaxRequests, outlier detection by consecutive errors and
 * minHealthPercent, redirects, rewrites, mirrors, header edits, retryOn
 * conditions that are not gRPC status names, ...); for every object with
 * exportTo narrower than "*" when p's output is shared by every client
 * (!per_caller_matches), one saying it is served mesh-wide; and for each
 * host of a mesh VirtualService that another one wins (Istio does not
 * merge them), one naming the winner.  fn receives each as a warning
 * cfg_error (origin, line, kind, namespace, name of the object; strings
 * valid for the call only).  Pure, deterministic; returns the count. */
typedef void (*gen_finding_fn)(void *ctx, const struct cfg_error *e);
size_t gen_profile_check(const struct model *m, const struct gen_profile *p, gen_finding_fn fn, void *ctx);

/* Build every resource of profile p for the model into a new sealed
 * snapshot.  Returns 0 and *out, or a negative code (the failing service
 * is named in a note). */
MESH_MUST_CHECK int gen_snapshot(const struct model *m, const struct gen_profile *p, const struct gen_notes *notes,
				 struct xds_snapshot **out);

/* Incremental generation (cache.c): a cache kept across pushes by one
 * thread.  gen_snapshot_cached() gives the same snapshot as
 * gen_snapshot() (byte for byte) but rebuilds, per service and xDS type,
 * only the resources whose inputs changed since the previous call; the
 * others are taken encoded from the cache.  A cache serves one profile:
 * called with another, it starts afresh.  Returns 0 and *out, or a
 * negative code (the cache is then emptied, and the next call rebuilds
 * everything). */
struct gen_cache;
struct gen_cache *gen_cache_new(void);      /* NULL on out-of-memory */
void gen_cache_free(struct gen_cache *c);   /* NULL is a no-op */
MESH_MUST_CHECK int gen_snapshot_cached(struct gen_cache *c, const struct model *m, const struct gen_profile *p,
					const struct gen_notes *notes, struct xds_snapshot **out);

/* What the last gen_snapshot_cached() did, counted in (service, xDS
 * type) groups, indexed by enum xds_type (Listener..ClusterLoadAssignment). */
struct gen_cache_stats {
	size_t built[XDS_TYPE_COUNT];
	size_t reused[XDS_TYPE_COUNT];
	/* verify mode: reused groups rebuilt and compared, and those whose
	 * bytes differed (a key that misses an input the builder reads) */
	size_t verified[XDS_TYPE_COUNT];
	size_t mismatched[XDS_TYPE_COUNT];
	/* services whose keys were not computed: the model differs from the
	 * previous one in endpoints only (see gen__model_shape()), and not in
	 * theirs */
	size_t keys_carried;
};
void gen_cache_get_stats(const struct gen_cache *c, struct gen_cache_stats *out);

/* Verify mode (a debug mode: it costs a full build per push): every group
 * the cache would reuse is also rebuilt and compared byte for byte.  A
 * difference means its key misses an input the generator reads: it is
 * counted (mismatched), reported as a GEN_NOTE_ERROR note naming the
 * service and type, and the rebuilt group is served instead.  Unit tests
 * and the golden runner turn it on, so a missed input fails a test, not
 * production; meshd can turn it on from its environment
 * (MESHD_GEN_CACHE_VERIFY=1).  Off by default. */
void gen_cache_set_verify(struct gen_cache *c, bool on);

/* What the cache holds, for tests and debug views: the services it keeps
 * entries for (*services) and the encoded resources in them (*resources),
 * and how many of those resources snap (the snapshot the last
 * gen_snapshot_cached() returned) does not serve as the same object: the
 * cache's orphans, 0 when it keeps nothing beyond what is served. */
size_t gen_cache_orphans(const struct gen_cache *c, const struct xds_snapshot *snap, size_t *services,
			 size_t *resources);

/* The proxyless entry points: the above with gen_profile_proxyless and
 * no notes. */
MESH_MUST_CHECK int gen_grpc_snapshot(const struct model *m, struct xds_snapshot **out);
MESH_MUST_CHECK int gen_grpc_snapshot_cached(struct gen_cache *c, const struct model *m, struct xds_snapshot **out);

/* LDS names of xDS-enabled gRPC servers (Istio's
 * server_listener_resource_name_template, "%s" = IP:PORT). */
#define GEN_GRPC_INBOUND_PREFIX "xds.istio.io/grpc/lds/inbound/"
/* Istio's label telling that a workload takes mTLS (auto mTLS). */
#define GEN_TLS_MODE_LABEL "security.istio.io/tlsMode"

/* What a `Sidecar` resource says for one workload (gen_sidecar_snapshot):
 * the services it sees, its inbound ports, where unknown destinations
 * go and whether traffic is captured. */
enum gen_outbound_policy { GEN_OUTBOUND_ALLOW_ANY, GEN_OUTBOUND_REGISTRY_ONLY };

struct gen_sidecar_ingress {
	uint32_t port;                    /* the port the workload receives on */
	const char *protocol;             /* upper-case, e.g. "HTTP", "TCP"; NULL: "TCP" */
	const char *name;                 /* port name; may be NULL */
	const char *bind;                 /* NULL: 0.0.0.0 */
	const char *default_endpoint;     /* "127.0.0.1:PORT" or "0.0.0.0:PORT"; NULL: 127.0.0.1:port */
	/* this listener's captureMode NONE: the port binds its own listener
	 * (Istio's getBindToPort()); false: a chain of virtualInbound */
	bool capture_none;
};

struct gen_sidecar_egress_bind {
	uint32_t port;
	const char *bind;                 /* an IP address; NULL: the default (0.0.0.0, 127.0.0.1 under NONE) */
	bool capture_none;                /* this listener's captureMode NONE: bound, not captured */
};

struct gen_sidecar_scope {
	/* egress hosts, "NS/HOST" as Sidecar.egress[].hosts: NS "*" any,
	 * "." the workload's, "~" none; HOST "*", "*.suffix" or a name.
	 * NULL: every service (Istio's default without a Sidecar). */
	const struct cfg_strs *egress_hosts;
	/* ingress listeners; none: the ports of the workload's service
	 * instances, to 127.0.0.1:PORT */
	const struct gen_sidecar_ingress *ingress;
	size_t n_ingress;
	enum gen_outbound_policy outbound; /* ALLOW_ANY by default, as Istio */
	/* The whole workload uncaptured: no virtualOutbound/virtualInbound;
	 * every ingress port and outbound port binds itself (127.0.0.1
	 * outbound).  Set when every listener the Sidecar declares says
	 * captureMode NONE (see gen_sidecar_scope_from_config()).  Otherwise
	 * each listener's own capture_none decides for it, as Istio's
	 * getBindToPort() does per listener. */
	bool capture_none;
	/* the catch-all egress listener's captureMode NONE: ports no egress
	 * listener with a port names bind themselves (127.0.0.1 default) */
	bool catchall_capture_none;
	/* egress listeners with a port (Sidecar egress[].port, egress[].bind):
	 * the outbound listener of that port listens at the bind and is
	 * named "BIND_PORT", as Istio names it; without a bind at 0.0.0.0
	 * (127.0.0.1 under capture NONE).  A TCP port several services share
	 * keeps its per-VIP listeners. */
	const struct gen_sidecar_egress_bind *egress_binds;
	size_t n_egress_binds;
	/* the catch-all egress listener's bind (no port): every port that no
	 * egress listener above names listens there (Istio's listener.go:
	 * "only Bind IP is specified, we will bind to the specified IP for
	 * each port"); NULL: the default */
	const char *catchall_bind;
};

/* The mesh-wide defaults the generators read from m->mesh (MeshConfig,
 * controlplane/config/meshcfg.h; Istio's defaults when m->mesh is NULL):
 * outboundTrafficPolicy.mode (a workload without a Sidecar, and the
 * default a Sidecar's own policy overrides), connectTimeout (ns, every
 * cluster a DestinationRule's connectionPool.tcp.connectTimeout does not
 * set) and enableAutoMtls; gen/mesh.c. */
enum gen_outbound_policy gen_mesh_outbound(const struct model *m);
int64_t gen_mesh_connect_timeout(const struct model *m);
/* protocolDetectionTimeout, ns: the listener_filters_timeout of listeners
 * that sniff (Istio's default 0: no timeout). */
int64_t gen_mesh_protocol_detection_timeout(const struct model *m);
/* enableAutoMtls: clients pick mTLS by the peer's tlsMode label without a
 * DestinationRule saying ISTIO_MUTUAL (Istio's default true). */
bool gen_mesh_auto_mtls(const struct model *m);
/* h2UpgradePolicy UPGRADE: HTTP/1.1 ports' clusters speak HTTP/2 upstream
 * unless their DestinationRule says DO_NOT_UPGRADE (Istio's default
 * DO_NOT_UPGRADE). */
bool gen_mesh_h2_upgrade(const struct model *m);

/* The scope Sidecar object sc (kind CFG_SIDECAR, as model_sidecar_select()
 * picks it) gives a workload: egress hosts (every egress[].hosts entry),
 * ingress listeners (port, protocol, name, bind, defaultEndpoint),
 * outboundTrafficPolicy.mode (unset: mesh_default, the mesh's policy) and
 * each listener's captureMode NONE (Istio's getBindToPort(): such a
 * listener binds its port, the others are reached through virtualInbound /
 * virtualOutbound), capture_none for the whole workload when every
 * declared listener says NONE (Istio keeps the virtual listeners unless
 * the node's INTERCEPTION_MODE is NONE; meshd, which reads only TPROXY from that
 * metadata, takes an all-NONE Sidecar as an uncaptured workload and
 * serves no 15001/15006 then), the bind address of each egress listener with a port (NULL
 * without one; a unix:// bind is not served) and the catch-all egress
 * listener's IP bind.  Strings are borrowed from sc
 * (out valid while sc lives); the ingress and egress_binds arrays are
 * malloc'd: gen_sidecar_scope_cleanup() frees them.
 * Returns 0, or -ENOMEM (out is then empty). */
MESH_MUST_CHECK int gen_sidecar_scope_from_config(const struct cfg_object *sc, enum gen_outbound_policy mesh_default,
						  struct gen_sidecar_scope *out);
void gen_sidecar_scope_cleanup(struct gen_sidecar_scope *s);

/* The workload a per-proxy resource is built for. */
struct gen_workload {
	const char *ns;                   /* namespace; NULL: "default" */
	const struct cfg_labels *labels;  /* NULL: no labels */
};

/* What else the sidecar generator knows of the node (a separate struct,
 * so that callers initialising gen_workload positionally stay valid).
 * Zero / NULL means unknown. */
struct gen_node {
	const char *ip;                   /* node IP (node id TYPE~IP~...) */
	const char *service_account;      /* node metadata SERVICE_ACCOUNT */
	const struct gen_sidecar_scope *scope; /* the Sidecar that applies; NULL: none */
	/* The proxy's locality "region/zone/subzone" (Envoy's Node.locality);
	 * NULL or "": from the workload's labels (istio-locality, else
	 * topology.kubernetes.io/region|zone and topology.istio.io/subzone),
	 * else the one locality of the workload's service instances (found
	 * as its inbound ports are), else unknown.  Locality load balancing (priorities, distribute
	 * weights) is computed against it, as istiod does. */
	const char *locality;
	/* The node's INTERCEPTION_MODE is TPROXY (Istio's
	 * model.InterceptionTproxy): virtualOutbound and virtualInbound are
	 * transparent and virtualInbound runs the original_src listener
	 * filter with mark 1337, as istiod builds them
	 * (buildVirtualOutboundListener, buildInboundListener,
	 * populateListenerFilters). */
	bool tproxy;
};

/* Everything one sidecar proxy (Envoy or meshproxy) of workload w
 * receives, as istiod's sidecar generator builds it (DESIGN.md "xDS
 * conventions", sidecar): LDS virtualOutbound (15001), virtualInbound
 * (15006) and one outbound listener per service port ("0.0.0.0_PORT",
 * HTTP connection manager with RDS "PORT", or TCP proxy; "VIP_PORT" where
 * a TCP port is shared); RDS "PORT" with one virtual host per service
 * plus allow_any / block_all; CDS outbound|PORT|SUBSET|HOST, inbound|PORT||,
 * BlackHoleCluster, PassthroughCluster, InboundPassthroughCluster; EDS
 * for the EDS clusters.  p is normally &gen_profile_sidecar.  Pure: the
 * same model and workload give the same bytes.  The workload's service
 * instances (its inbound ports) are found by w's namespace and labels,
 * then by node->ip; node->scope (a Sidecar resource) limits the services
 * and sets the inbound ports.  w and node may be NULL.  Returns 0
 * and a new sealed snapshot in *out (the caller unrefs it), or a negative
 * code (noted).  Not cached: the caller keys results by what the output
 * depends on (namespace, labels, IP, scope). */
MESH_MUST_CHECK int gen_sidecar_snapshot(const struct model *m, const struct gen_profile *p,
					 const struct gen_workload *w, const struct gen_node *node,
					 const struct gen_notes *notes, struct xds_snapshot **out);

/* The same, sharing each service's clusters and assignments between the
 * workloads of one namespace built against the same model: c keeps them
 * for the model last used (a new model keeps them only when it changed
 * endpoints alone, see gen_sidecar_cache_stats; a new profile empties
 * it), so a push
 * serving many sidecar workloads builds each service's CDS/EDS once per
 * namespace, and the snapshots share the encoded resources.  Route
 * configs are shared too, between workloads of one namespace that see the
 * same services under the same outbound policy.  What reads a workload's
 * labels is never shared: no CDS/EDS share when a DestinationRule has a
 * workloadSelector, no route share when a VirtualService matches on
 * sourceLabels.  The output is byte-identical to gen_sidecar_snapshot's
 * (MESHD_GEN_CACHE_VERIFY checks it in a running meshd); c NULL builds
 * everything.  Not thread-safe: one cache per thread. */
struct gen_sidecar_cache;
struct gen_sidecar_cache *gen_sidecar_cache_new(void);      /* NULL without memory */
void gen_sidecar_cache_free(struct gen_sidecar_cache *c);   /* NULL is a no-op */
MESH_MUST_CHECK int gen_sidecar_snapshot_cached(struct gen_sidecar_cache *c, const struct model *m,
						const struct gen_profile *p, const struct gen_workload *w,
						const struct gen_node *node, const struct gen_notes *notes,
						struct xds_snapshot **out);

/* What c did since it last took a new model (tests: an endpoint change
 * rebuilds only what depends on it).  Across models c is incremental for
 * endpoint changes: when the new model differs from the previous one in
 * endpoints only (every other config object, the mesh config and the
 * services the same), c keeps every group but the clusters and
 * assignments of the services whose endpoints changed, and every route
 * config; any other change empties it. */
struct gen_sidecar_cache_stats {
	/* groups built: CDS and EDS per (service, namespace row), RDS per
	 * (route share, port); indexed by enum xds_type */
	size_t built[XDS_TYPE_COUNT];
	size_t reused[XDS_TYPE_COUNT];   /* groups taken from the cache */
	bool carried;                    /* the previous model's groups were kept */
	size_t services_changed;         /* services whose groups were dropped then */
};
void gen_sidecar_cache_get_stats(const struct gen_sidecar_cache *c, struct gen_sidecar_cache_stats *out);

/* Everything one router (gateway) proxy of workload w receives, as
 * istiod's gateway generator builds it (DESIGN.md "xDS conventions",
 * router; gen/gateway.c): the Gateways selecting w's labels
 * (model/gateway.h) merged into listeners "BIND_PORT" (a chain per TLS
 * server matched by SNI, DownstreamTlsContext from credentialName over
 * SDS "kubernetes://NAME" / "kubernetes://NAME-cacert", ISTIO_MUTUAL
 * "default" + "ROOTCA", or certificate files), route configs "http.PORT"
 * and "https.PORT.PORTNAME.GATEWAY.NS" from the VirtualServices bound to
 * each server, TCP proxies from tls (PASSTHROUGH, by SNI) and tcp routes;
 * CDS / EDS: every outbound cluster the router's namespace sees (the
 * sidecar generator's builders, through cache c when not NULL: give
 * routers a cache of their own, it serves one profile) and
 * BlackHoleCluster.  p is normally &gen_profile_router.  w and node may be
 * NULL (namespace "default", no labels: only Gateways without a selector
 * apply).  Returns 0 and a new sealed snapshot in *out, or a negative code
 * (noted).  Servers that conflict are left out with a warning note. */
struct gen_sidecar_cache;
MESH_MUST_CHECK int gen_gateway_snapshot(const struct model *m, const struct gen_profile *p,
					 const struct gen_workload *w, const struct gen_node *node,
					 const struct gen_notes *notes, struct xds_snapshot **out);
MESH_MUST_CHECK int gen_gateway_snapshot_cached(struct gen_sidecar_cache *c, const struct model *m,
						const struct gen_profile *p, const struct gen_workload *w,
						const struct gen_node *node, const struct gen_notes *notes,
						struct xds_snapshot **out);

/* Istio's names (pilot/pkg/networking/util, pilot/pkg/model/listener.go). */
#define GEN_VIRTUAL_OUTBOUND       "virtualOutbound"
#define GEN_VIRTUAL_INBOUND        "virtualInbound"
#define GEN_BLACKHOLE_CLUSTER      "BlackHoleCluster"
#define GEN_PASSTHROUGH_CLUSTER    "PassthroughCluster"
#define GEN_INBOUND_PASSTHROUGH    "InboundPassthroughCluster"
#define GEN_OUTBOUND_PORT          15001
#define GEN_INBOUND_PORT           15006
/* the original_src filter's mark under TPROXY (pilot/pkg/xds/filters
 * OriginalSrc; istio-iptables' default --istio-inbound-tproxy-mark) */
#define GEN_ORIGINAL_SRC_MARK      1337

/* Whether a server of profile p on that workload port requires mTLS (the
 * PeerAuthentication mode from model_peer_authn()): STRICT does; DISABLE
 * does not; PERMISSIVE does not when the server can take both on one port
 * (p->mixed_tls_port), otherwise only when the workload carries
 * security.istio.io/tlsMode=istio (a gRPC server cannot take TLS and
 * plaintext on one port, so PERMISSIVE is served as plaintext otherwise,
 * as Istio does). */
bool gen_server_mtls(const struct model *m, const struct gen_profile *p, const struct gen_workload *w, uint32_t port);

/* The inbound Listener `name` (GEN_GRPC_INBOUND_PREFIX + "IP:PORT" or
 * "[IPv6]:PORT") of an xDS-enabled server of profile p for workload w,
 * serialised into *data (malloc'd, the caller frees) and *len.  Returns
 * 0, -ENOENT when name is not such a listener name, -ENOMEM, or
 * -MESH_ETOOBIG. */
MESH_MUST_CHECK int gen_inbound_listener(const struct model *m, const struct gen_profile *p,
					 const struct gen_workload *w, const char *name,
					 const struct gen_notes *notes, uint8_t **data, size_t *len);
/* The same for proxyless gRPC servers, without notes. */
MESH_MUST_CHECK int gen_grpc_inbound_listener(const struct model *m, const struct gen_workload *w, const char *name,
					      uint8_t **data, size_t *len);

#endif
