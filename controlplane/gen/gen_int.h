/*
 * gen_int.h - private to the xDS generators (controlplane/gen/).
 *
 * Generators build protobuf-c messages in an arena scoped to one unit of
 * work (one service), serialise them into the snapshot, then drop the
 * arena.  The helpers here wrap the pieces every generator needs: wrapper
 * values, durations, Any packing, cluster names, notes, and emitting a
 * finished resource.  Every builder takes a gen_ctx: the model, the
 * client profile it builds for, and where notes go.
 *
 * Allocation helpers return NULL when the arena is exhausted (callers treat
 * that as -ENOMEM); the others return 0 or a negative code (err.h).
 */
#ifndef MESH_GEN_INT_H
#define MESH_GEN_INT_H

#include "common/arena.h"
#include "common/hash.h"
#include "common/str.h"
#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/resource.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

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
/* Longest note. */
#define GEN_NOTE_MAX       512

#define GEN_FAULT_FILTER   "envoy.filters.http.fault"
#define GEN_CORS_FILTER    "envoy.filters.http.cors"
#define GEN_ROUTER_FILTER  "envoy.filters.http.router"
#define GEN_STATS_FILTER   "istio.stats"   /* issue 14: Istio's stats plugin (gen/stats.c) */

/* One generation run. */
struct gen_ctx {
	const struct model *m;
	const struct gen_profile *p;
	const struct gen_notes *notes;       /* NULL: notes are dropped */
	/* The calling workload when the output is built for one caller
	 * (p->per_caller_matches); NULL: shared by every caller. */
	const struct gen_workload *caller;
	/* The proxy's locality "region/zone/subzone" ("" unknown) when the
	 * output is built for one proxy (p->locality_lb); NULL: shared by
	 * every proxy, no locality load balancing. */
	const char *locality;
};

/* The workload's namespace ("default" when unset) and labels (none when
 * unset). */
extern const struct cfg_labels gen__no_labels;
static inline const char *gen__workload_ns(const struct gen_workload *w)
{
	return w && w->ns && w->ns[0] ? w->ns : "default";
}

static inline const struct cfg_labels *gen__workload_labels(const struct gen_workload *w)
{
	return w && w->labels ? w->labels : &gen__no_labels;
}

/* Hand a note to g->notes (formatted, truncated to GEN_NOTE_MAX). */
void gen__note(const struct gen_ctx *g, enum gen_note_level level, const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Hand a listener conflict to g->notes (gen.h: enum gen_conflict). */
void gen__conflict(const struct gen_ctx *g, enum gen_conflict kind, const char *key);

/* A zero-initialised message of type d (its __INIT values) in the arena. */
void *gen__msg(struct arena *a, const ProtobufCMessageDescriptor *d);
Google__Protobuf__UInt32Value *gen__u32(struct arena *a, uint32_t v);
Google__Protobuf__UInt64Value *gen__u64(struct arena *a, uint64_t v);
Google__Protobuf__BoolValue *gen__bool(struct arena *a, bool v);
/* ns must be >= 0. */
Google__Protobuf__Duration *gen__duration(struct arena *a, int64_t ns);
/* Serialise msg into an Any whose type URL is built from its descriptor. */
Google__Protobuf__Any *gen__any(struct arena *a, const ProtobufCMessage *msg);
/* The small Envoy wrappers every listener builder needs (sidecar and
 * gateway alike), in the arena; NULL without memory (or cfg NULL).
 * gen__addr copies ip; the filters borrow name and take typed configs:
 * a network filter the Any cfg, an HTTP or listener filter msg packed
 * into one (gen__any). */
Envoy__Config__Core__V3__Address *gen__addr(struct arena *a, const char *ip, uint32_t port);
Envoy__Config__Listener__V3__Filter *gen__net_filter(struct arena *a, const char *name, Google__Protobuf__Any *cfg);
Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *gen__http_filter(struct arena *a,
											      const char *name,
											      const ProtobufCMessage *msg);
Envoy__Config__Listener__V3__ListenerFilter *gen__listener_filter(struct arena *a, const char *name,
								  const ProtobufCMessage *msg);
/* The access logs of MeshConfig accessLogFile / accessLogEncoding /
 * accessLogFormat, as istiod puts them on a sidecar's HTTP connection
 * managers (envoy.access_loggers.file): none (*n 0) without accessLogFile.
 * Allocated from a; 0 or -ENOMEM (gen/mesh.c). */
struct Envoy__Config__Accesslog__V3__AccessLog;
int gen__mesh_access_logs(struct arena *a, const struct model *m, struct Envoy__Config__Accesslog__V3__AccessLog ***out,
			  size_t *n);
/* issue 14: a sidecar's access logs per direction, as istiod's
 * buildAccessLog / telemetryAccessLog: from the workload's Telemetry
 * accessLogging (model_telemetry_for; providers by name from MeshConfig
 * envoyFileAccessLog extensionProviders, the built-in "envoy", the
 * defaultProviders.accessLogging default; disabled; mode CLIENT for
 * outbound, SERVER for inbound; filter.expression as the CEL
 * ExpressionFilter), else MeshConfig accessLogFile for both.  A provider
 * name that names nothing is skipped (istiod logs it too).  t is the
 * workload's gen__telemetry.  Everything in arena a; 0 or -ENOMEM. */
struct model_telemetry;
struct gen__alogs {
	struct Envoy__Config__Accesslog__V3__AccessLog **v;
	size_t n;
};
int gen__workload_access_logs(struct arena *a, const struct model *m, const struct model_telemetry *t,
			      struct gen__alogs *client, struct gen__alogs *server);
struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing;
/* The effective Telemetry of workload w (model_telemetry_for under the
 * default providers: prometheus for metrics as Istio's chart,
 * meshConfig.defaultProviders.tracing and .accessLogging), merged once per
 * proxy for gen__stats_config, gen__workload_access_logs and gen__tracing.
 * Free with model_telemetry_free.  0, -ENOMEM or -MESH_ETOOBIG
 * (gen/tracing.c). */
int gen__telemetry(const struct model *m, const struct gen_workload *w, struct model_telemetry **out);
/* HCM.tracing for w's listener as istiod's configureTracingFromTelemetry
 * builds it (tel: gen__telemetry's result, may be NULL): the server spec
 * for inbound listeners (server true), the client spec for outbound ones
 * and gateways; the provider by name from extensionProviders (zipkin or
 * opentelemetry), sampling Telemetry > defaultConfig.tracing.sampling >
 * 1%, customTags sorted by tag.  *out NULL when tracing is disabled or no
 * provider applies (a provider name that is no tracing entry is noted).
 * 0 or -ENOMEM; everything in arena a (gen/tracing.c). */
int gen__tracing(struct arena *a, const struct gen_ctx *g, const struct gen_workload *w,
		 const struct model_telemetry *tel, bool server,
		 struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing **out);
/* Clamp a config number (may be -1 or huge) to uint32. */
uint32_t gen__clamp_u32(int64_t v);

/* "outbound|PORT|SUBSET|HOST" in the arena (subset NULL -> empty). */
char *gen__cluster_name(struct arena *a, uint32_t port, const char *subset, const char *host);

/* A ConfigSource "over ADS, API v3"; NULL on out-of-memory. */
Envoy__Config__Core__V3__ConfigSource *gen__ads_source(struct arena *a);

/* mTLS pieces (tls.c).  The certificate provider instance "default" of
 * the client's bootstrap holds the workload certificate ("default") and
 * the roots ("ROOTCA"), as with Istio's agent. */
#define GEN_TLS_SOCKET_NAME   "envoy.transport_sockets.tls"
#define GEN_CERT_PROVIDER     "default"
#define GEN_CERT_NAME         "default"
#define GEN_ROOT_CERT_NAME    "ROOTCA"
/* SPIFFE identities one cluster may accept. */
#define GEN_MAX_SANS          4096

/* The model's trust domain ("cluster.local" when unset). */
const char *gen__trust_domain(const struct model *m);
/* TransportSocket "envoy.transport_sockets.tls" holding ctx; NULL on
 * out-of-memory. */
Envoy__Config__Core__V3__TransportSocket *gen__tls_socket(struct arena *a, const ProtobufCMessage *ctx);
/* CommonTlsContext with the workload certificate and the roots from the
 * "default" provider, accepting peers whose URI SAN is one of sans (none:
 * any peer the roots validate).  NULL on out-of-memory. */
Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *gen__common_tls(struct arena *a, char *const *sans,
									      size_t n_sans);
/* The same with the certificate "default" and the roots "ROOTCA" as SDS
 * secrets over ADS (profile sds_tls, how Envoy sidecars take them) and
 * the ALPN protocols alpn. */
Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *gen__common_tls_sds(struct arena *a, char *const *sans,
										  size_t n_sans, const char *const *alpn,
										  size_t n_alpn);
/* The client side of mTLS for cluster (port, subset) of svc: a
 * TransportSocket with an UpstreamTlsContext when tls (the merged
 * DestinationRule setting, may be NULL) says ISTIO_MUTUAL, accepting its
 * subjectAltNames or else the SPIFFE IDs of the cluster's endpoints (and
 * the ServiceEntry's subjectAltNames); with no mode set, auto mTLS sends
 * the same when every endpoint of the cluster has a service account and
 * requires mTLS on its port (gen_server_mtls, for servers of the same
 * profile).  With the profile's tls_mode_match, auto mTLS instead
 * always builds the socket (SANs: the endpoints' identities) and sets
 * *auto_match: the caller sends it only to endpoints labelled
 * tlsMode=istio (transport_socket_matches), as Istio does for sidecars.
 * *out stays NULL for plaintext.  Returns 0, -ENOMEM or -MESH_ETOOBIG
 * past GEN_MAX_SANS. */
MESH_MUST_CHECK int gen__upstream_tls(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
				      const char *subset, const struct cfg_object *dr,
				      const struct cfg_client_tls *tls, struct arena *a,
				      Envoy__Config__Core__V3__TransportSocket **out, bool *auto_match);

/* The namespace the output is built for: the caller's when built per
 * caller (p->per_caller_matches), NULL for a snapshot every client shares. */
static inline const char *gen__client_ns(const struct gen_ctx *g)
{
	return g->caller && g->p->per_caller_matches ? gen__workload_ns(g->caller) : NULL;
}

/* The DestinationRule for svc as the generation sees it: from the
 * caller's namespace, with its labels (workload-scoped rules), when built
 * per caller, otherwise the mesh-wide view (exportTo served as "*"). */
static inline const struct cfg_object *gen__dr(const struct gen_ctx *g, const struct model_service *svc)
{
	if (g->caller && g->p->per_caller_matches)
		return model_destination_rule_for(g->m, svc->hostname, gen__workload_ns(g->caller),
						  gen__workload_labels(g->caller));
	return model_destination_rule(g->m, svc->hostname, NULL);
}

/* The VirtualService that routes svc for the caller (per caller) or for
 * every client (a shared snapshot: the mesh-wide view); NULL: none. */
static inline const struct cfg_object *gen__vs(const struct gen_ctx *g, const struct model_service *svc)
{
	return model_virtual_service(g->m, svc->hostname, gen__client_ns(g));
}
/* The server side: a TransportSocket with a DownstreamTlsContext that
 * requires a client certificate from the "default" provider's roots, no
 * SAN matching.  NULL on out-of-memory. */
Envoy__Config__Core__V3__TransportSocket *gen__downstream_tls(struct arena *a);

/* The outbound HttpConnectionManager (listener.c) as an Any: routes over
 * ADS (RDS route_name), http filters fault then router (last). */
Google__Protobuf__Any *gen__outbound_hcm(const struct gen_ctx *g, struct arena *a, const char *route_name);

/* Whether an http match (NULL: none) matches every call: a uri that is
 * absent or the "/" or "" prefix, and no header, query, method, authority
 * or scheme condition (route.c). */
bool gen__match_is_catchall(const struct cfg_http_match *mt);

/* The VirtualHost "HOST:PORT" of svc on port (route.c): routes from the
 * VirtualServices (per caller g->caller when the profile says so) or the
 * default route; domains as the profile's client kind needs them.
 * Returns 0 and *out (in a), or a negative code. */
struct Envoy__Config__Route__V3__VirtualHost;
MESH_MUST_CHECK int gen__virtual_host(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
				      struct arena *a, struct Envoy__Config__Route__V3__VirtualHost **out);

/* The routes VirtualService vs gives a Gateway server on port (route.c,
 * for gen/gateway.c): its http routes whose matches apply to that port and
 * to gateway ("ns/name": a match's own `gateways` must name it), built as
 * for sidecars (the shared builders, profile g->p, per caller g->caller);
 * none past a catch-all.  *routes (in a) may be empty: no route, nothing
 * matched.  Returns 0 or a negative code. */
struct Envoy__Config__Route__V3__Route;
MESH_MUST_CHECK int gen__gateway_routes(const struct gen_ctx *g, const struct cfg_object *vs, uint32_t port,
					const char *gateway, struct arena *a,
					struct Envoy__Config__Route__V3__Route ***routes, size_t *n);

/* The ClusterLoadAssignment of cluster (port index pi, subset) of svc
 * (endpoint.c): sel NULL = every endpoint, else those whose labels match
 * it.  Returns 0 and *out (in a), or -ENOMEM. */
struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment;
MESH_MUST_CHECK int gen__assignment(const struct gen_ctx *g, const struct model_service *svc, size_t pi,
				    const char *subset, const struct cfg_labels *sel, struct arena *a,
				    struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out);
/* What EDS of svc depends on beyond the namespace's view (locality.c):
 * for a proxy of locality g->locality whose locality load balancing
 * changes some cluster of svc, a key naming the proxy's locality (and its
 * values of the failoverPriority labels), so proxies that get the same
 * bytes share them; NULL in *out when EDS of svc is the same for every
 * proxy of the namespace.  Returns 0 or -ENOMEM (*out in a). */
MESH_MUST_CHECK int gen__eds_variant(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
				     const char **out);
/* The locality load balancing one cluster (port, subset) of svc gets for
 * g's proxy: the DestinationRule's localityLbSetting (NULL: the mesh
 * default, enabled, nothing else), and whether failover applies (outlier
 * detection set).  Returns false when nothing changes for that cluster
 * (no per-proxy build, no locality, setting disabled, or neither
 * distribute nor outlier detection). */
struct gen_loc_lb {
	const struct cfg_locality_lb *set;   /* NULL, or &copy */
	struct cfg_locality_lb copy;         /* shallow: strings stay in the config */
	bool failover;
};
bool gen__loc_lb(const struct gen_ctx *g, const struct model_service *svc, uint32_t port, const char *subset,
		 struct gen_loc_lb *out);
/* Istio's util.LbPriority: 0 same region/zone/subzone, 1 same
 * region/zone, 2 same region, 3 otherwise (locality strings
 * "region/zone/subzone"). */
int gen__lb_priority(const char *proxy, const char *ep);
/* Istio's util.LocalityMatch: whether locality l matches rule
 * ("region/zone/subzone", "*" or a missing part matching anything below
 * the region). */
bool gen__locality_match(const char *l, const char *rule);
/* Part i (0 region, 1 zone, 2 subzone) of locality l into buf (cap
 * bytes); "" when absent.  Returns buf. */
const char *gen__locality_part(const char *l, int i, char *buf, size_t cap);
/* The value of label key for failoverPriority matching: the topology
 * labels (topology.kubernetes.io/region|zone, topology.istio.io/subzone)
 * from locality when it has that part, as Istio augments labels; others
 * from labels.  NULL when absent. */
const char *gen__priority_label(const struct cfg_labels *labels, const char *locality, const char *key, char *buf,
				size_t cap);
/* Whether the proxy has labels for failoverPriority (its own, or the
 * topology labels of its locality, as Istio augments them). */
bool gen__proxy_has_labels(const struct gen_ctx *g);
/* The proxy's locality: node->locality when set, else from the
 * workload's labels (istio-locality "r.z.s", else the topology labels),
 * else "".  Allocated in a when built; NULL only on out-of-memory. */
const char *gen__proxy_locality(const struct gen_node *node, const struct gen_workload *w, struct arena *a);

/* Metadata envoy.transport_socket_match {tlsMode: mode}; NULL on OOM. */
#define GEN_TLS_MATCH_METADATA "envoy.transport_socket_match"
Envoy__Config__Core__V3__Metadata *gen__tls_mode_metadata(struct arena *a, const char *mode);
/* Whether svc is served as a DNS cluster with inline endpoints
 * (profile cluster_extras, a DNS ServiceEntry): no EDS for it. */
bool gen__dns_cluster(const struct gen_ctx *g, const struct model_service *svc);
/* Cluster c speaks HTTP/2 upstream: typed_extension_protocol_options'
 * HttpProtocolOptions with explicit_http_config.http2_protocol_options (what
 * Istio's setH2Options sets; for inbound clusters of HTTP2/gRPC ports).
 * 0 or -ENOMEM. */
struct Envoy__Config__Cluster__V3__Cluster;
int gen__h2_options(struct arena *a, struct Envoy__Config__Cluster__V3__Cluster *c);
/* The labels of subset `name` of dr, or NULL. */
static inline const struct cfg_labels *gen__subset_labels(const struct cfg_object *dr, const char *name)
{
	const struct cfg_subset *ss = dr ? model_subset(dr, name) : NULL;

	return ss ? &ss->labels : NULL;
}

/* Cache keys (cache.c, sidecar.c): 64-bit FNV-1a over length-prefixed
 * fields.  A value; a string with a presence byte first, so NULL and
 * every string hash apart; a label set (NULL apart from empty). */
static inline uint64_t gen__h_u64(uint64_t h, uint64_t v)
{
	return mesh_hash_update(h, &v, sizeof(v));
}

static inline uint64_t gen__h_str(uint64_t h, const char *s)
{
	h = gen__h_u64(h, s != NULL);
	return s ? mesh_hash_str(h, s) : h;
}

static inline uint64_t gen__h_labels(uint64_t h, const struct cfg_labels *l)
{
	size_t i;

	if (!l)
		return gen__h_u64(h, UINT64_MAX);
	h = gen__h_u64(h, l->n);
	for (i = 0; i < l->n; i++) {
		h = gen__h_str(h, l->v[i].key);
		h = gen__h_str(h, l->v[i].value);
	}
	return h;
}

/* A model's shape (cache.c): a hash of everything the generators read
 * of it apart from endpoints -- every config object (kind, namespace,
 * name, cfg_object.shape_hash) but WorkloadEntries, EndpointSlices and
 * Pods, which the model reads only to make endpoints, the mesh config,
 * the DNS domain, root namespace and trust domain, and the services in
 * order with the object each comes from.  Two models of equal shape
 * differ in endpoints alone, and only for the services whose
 * gen__endpoints_hash() (every field of their endpoints) differs: the
 * caches keep everything else across them. */
uint64_t gen__model_shape(const struct model *m);
uint64_t gen__endpoints_hash(const struct model_service *svc);

/* Serialise msg and add it to the snapshot under name.
 * Returns 0, -ENOMEM, or -MESH_ETOOBIG past GEN_RESOURCE_MAX (noted). */
MESH_MUST_CHECK int gen__emit(const struct gen_ctx *g, struct xds_snapshot *s, enum xds_type t, const char *name,
			      const ProtobufCMessage *msg);

/* The builders for one service (all its ports), one per xDS type, and
 * the table of them indexed by enum xds_type (Listener..ClusterLoadAssignment). */
typedef int (*gen_builder)(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
			   struct xds_snapshot *snap);
#define GEN_BUILDERS 4
extern const gen_builder gen__builders[GEN_BUILDERS];
MESH_MUST_CHECK int gen__listeners(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
				   struct xds_snapshot *snap);
MESH_MUST_CHECK int gen__routes(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
				struct xds_snapshot *snap);
MESH_MUST_CHECK int gen__clusters(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
				  struct xds_snapshot *snap);
MESH_MUST_CHECK int gen__endpoints(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
				   struct xds_snapshot *snap);

/*
 * issue 14 (gen/stats.c): the istio.stats filters' configuration
 * (stats.PluginConfig in an Any) for workload w's listeners of class cls,
 * from its effective Telemetry metrics (prometheus provider), as istiod's
 * generateStatsConfig: *out NULL when that class reports no metrics (no
 * prometheus provider, or ALL_METRICS disabled for the mode).  t is the
 * workload's gen__telemetry.  Allocated from a; 0 or -ENOMEM.
 */
enum gen__stats_class { GEN_STATS_OUTBOUND, GEN_STATS_INBOUND, GEN_STATS_GATEWAY };
MESH_MUST_CHECK int gen__stats_config(struct arena *a, const struct model_telemetry *t, enum gen__stats_class cls,
				      Google__Protobuf__Any **out);
/* The HTTP filter "istio.stats" with cfg (shared, not copied); NULL
 * without memory or for cfg NULL. */
Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *gen__stats_http_filter(struct arena *a,
												   Google__Protobuf__Any *cfg);
/* Puts the network filter "istio.stats" (cfg) right before the TCP proxy
 * of each of the n chains that end in one, but the blackhole chains, as
 * Istio does; nothing for cfg NULL.  0 or -ENOMEM. */
MESH_MUST_CHECK int gen__stats_chains(struct arena *a, Google__Protobuf__Any *cfg,
				      Envoy__Config__Listener__V3__FilterChain **chains, size_t n);

#endif
