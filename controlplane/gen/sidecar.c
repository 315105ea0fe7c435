/*
 * sidecar.c - everything one sidecar proxy receives (gen_sidecar_snapshot).
 *
 * Envoy and meshproxy sidecars get Istio's sidecar shapes and names, as
 * istiod's pilot/pkg/networking/core builds them (listener.go,
 * listener_builder.go, listener_inbound.go, httproute.go, cluster.go):
 *
 *  - LDS: "virtualOutbound" (0.0.0.0:15001, use_original_dst; chains
 *    "virtualOutbound-blackhole" for traffic to 15001 itself and
 *    "virtualOutbound-catchall-tcp" to PassthroughCluster under ALLOW_ANY
 *    or BlackHoleCluster under REGISTRY_ONLY); "virtualInbound"
 *    (0.0.0.0:15006, original_dst / tls_inspector / http_inspector
 *    listener filters; per inbound port one chain per PeerAuthentication
 *    case: TLS with Istio's ALPNs, plaintext; HTTP ports get an HTTP
 *    connection manager with the workload's RBAC filters and an inline
 *    route to "inbound|PORT||", TCP ports a TCP proxy); per service port
 *    an outbound listener "0.0.0.0_PORT" (HTTP: RDS "PORT"; TCP: TCP
 *    proxy), "VIP_PORT" for TCP services whose port is shared, all with
 *    bind_to_port false (reached through virtualOutbound) and a
 *    "PassthroughFilterChain" default chain.
 *  - RDS: "PORT" with one virtual host per visible HTTP service on that
 *    port (gen__virtual_host, per caller), then "allow_any" or "block_all".
 *    Domains shared by two services stay with the first (sorted by host),
 *    as Istio dedupes them, since Envoy rejects duplicates.
 *  - CDS / EDS: the shared builders per visible service, with the
 *    DestinationRule seen from the workload's namespace; "inbound|PORT||"
 *    STATIC to 127.0.0.1:PORT (or the Sidecar's defaultEndpoint),
 *    BlackHoleCluster, PassthroughCluster and InboundPassthroughCluster
 *    (ORIGINAL_DST).
 *
 * Where meshd differs from istiod, and why, is said at the place (and in
 * the golden cases' READMEs).  One arena per service as in gen.c, one for
 * the workload's own resources.  Pure: no I/O, no clocks, no logging.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/gen/authn.h"
#include "controlplane/gen/rbac.h"
#include "controlplane/model/policy.h"
#include "controlplane/model/telemetry.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.pb-c.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb-c.h"
#include "envoy/extensions/filters/listener/original_src/v3/original_src.pb-c.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef Envoy__Config__Listener__V3__Listener gen_listener;
typedef Envoy__Config__Listener__V3__FilterChain gen_chain;
typedef Envoy__Config__Listener__V3__Filter gen_filter;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager gen_hcm;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter gen_http_filter;

#define GEN_HCM_NAME        "envoy.filters.network.http_connection_manager"
#define GEN_TCP_PROXY_NAME  "envoy.filters.network.tcp_proxy"
#define GEN_PASSTHROUGH_CHAIN "PassthroughFilterChain"
/* Bytes the workload's own resources (listeners, inbound) may allocate. */
#define GEN_SIDECAR_ARENA_MAX (256u << 20)
/* Distinct ports one sidecar serves (outbound or inbound). */
#define GEN_SIDECAR_MAX_PORTS 65536
/* Istio's connect timeout (MeshConfig connectTimeout default). */

/* One generation for one workload. */
struct gen_sc {
	struct gen_ctx g;
	const struct gen_workload *w;
	const struct gen_node *node;             /* never NULL */
	const struct gen_sidecar_scope *scope;   /* never NULL (a default one) */
	struct xds_snapshot *snap;
	struct arena *a;                        /* the workload's own resources */
	bool *visible;                          /* per model service */
	struct gen_sc_routes *routes;           /* shared route configs; NULL: build them here */
	struct gen_sidecar_cache *c;            /* the shared groups; NULL: uncached */
	/* names of the outbound listeners emitted, so that a bound inbound
	 * listener of the same name is seen as the conflict it is */
	const char **out_names;
	size_t n_out_names, cap_out_names;
	/* issue 14: the workload's access logs, outbound (Telemetry mode
	 * CLIENT) and inbound (SERVER); gen__workload_access_logs */
	struct gen__alogs log_out, log_in;
	/* issue 14: the istio.stats configuration of outbound and inbound
	 * listeners (gen__stats_config), NULL: no metrics there */
	Google__Protobuf__Any *stats_out, *stats_in;
	struct model_telemetry *tel;            /* issue 14: the workload's Telemetry (gen__telemetry); NULL: none */
};

/* ---------------------------------------------------------------- small builders */

/* A TCP proxy to one cluster (stat_prefix: the cluster, as Istio) with
 * the workload's access logs of that direction (issue 14: istiod puts
 * them on a TCP proxy as on an HCM). */
static gen_filter *gen_tcp_proxy_logged(struct arena *a, const char *cluster, const struct gen__alogs *logs)
{
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;

	tp.stat_prefix = (char *)cluster;
	tp.cluster_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
	tp.cluster = (char *)cluster;
	tp.access_log = logs->v;
	tp.n_access_log = logs->n;
	return gen__net_filter(a, GEN_TCP_PROXY_NAME, gen__any(a, &tp.base));
}

/* ... without access logs (the blackhole chains) */
static gen_filter *gen_tcp_proxy(struct arena *a, const char *cluster)
{
	static const struct gen__alogs none;

	return gen_tcp_proxy_logged(a, cluster, &none);
}

/* A chain with one filter, an optional match and TLS socket. */
static gen_chain *gen_chain1(struct arena *a, const char *name, Envoy__Config__Listener__V3__FilterChainMatch *m,
			     gen_filter *f, Envoy__Config__Core__V3__TransportSocket *ts)
{
	gen_chain *c = gen__msg(a, &envoy__config__listener__v3__filter_chain__descriptor);

	if (!c || !f || !(c->filters = arena_calloc(a, 1, sizeof(*c->filters))))
		return NULL;
	c->name = (char *)name;
	c->filter_chain_match = m;
	c->filters[0] = f;
	c->n_filters = 1;
	c->transport_socket = ts;
	return c;
}

/* Emits listener l of sc, its TCP chains first given the istio.stats
 * filter of its direction (gen__stats_chains). */
static int gen_sc_emit_listener(struct gen_sc *sc, gen_listener *l)
{
	Google__Protobuf__Any *st = l->traffic_direction == ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND
					    ? sc->stats_in
					    : sc->stats_out;

	if (gen__stats_chains(sc->a, st, l->filter_chains, l->n_filter_chains) < 0 ||
	    gen__stats_chains(sc->a, st, &l->default_filter_chain, l->default_filter_chain ? 1 : 0) < 0)
		return -ENOMEM;
	return gen__emit(&sc->g, sc->snap, XDS_LISTENER, l->name, &l->base);
}

static Envoy__Config__Listener__V3__FilterChainMatch *gen_fcm(struct arena *a, uint32_t dport, const char *transport,
							     const char *const *alpn, size_t n_alpn)
{
	Envoy__Config__Listener__V3__FilterChainMatch *m =
		gen__msg(a, &envoy__config__listener__v3__filter_chain_match__descriptor);
	size_t i;

	if (!m)
		return NULL;
	if (dport && !(m->destination_port = gen__u32(a, dport)))
		return NULL;
	m->transport_protocol = (char *)(transport ? transport : "");
	if (n_alpn) {
		if (!(m->application_protocols = arena_calloc(a, n_alpn, sizeof(*m->application_protocols))))
			return NULL;
		for (i = 0; i < n_alpn; i++)
			m->application_protocols[i] = (char *)alpn[i];
		m->n_application_protocols = n_alpn;
	}
	return m;
}

static bool gen_protocol_http(const char *proto)
{
	static const char *const http[] = { "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY" };
	size_t i;

	for (i = 0; proto && i < sizeof(http) / sizeof(http[0]); i++)
		if (strcmp(proto, http[i]) == 0)
			return true;
	return false;
}

/*
 * The HTTP connection manager as istiod's buildHTTPConnectionManager()
 * sets it for sidecars: codec AUTO, stat_prefix, RDS over ADS (or an
 * inline route config), http filters pre (RBAC on inbound), then fault,
 * CORS, router last; normalize_path, merge_slashes and the escaped
 * slashes action from MeshConfig pathNormalization (DEFAULT: normalize_path
 * true, escaped slashes kept), use_remote_address false,
 * websocket upgrades, stream_idle_timeout 0s, 100-continue proxied
 * (Enable100ContinueHeaders), the workload's access logs of that
 * direction (logs); inbound: x-forwarded-client-cert
 * APPEND_FORWARD with subject, URI and DNS (Istio's inbound default).
 */
static Google__Protobuf__Any *gen_sidecar_hcm(struct arena *a, const struct gen_sc *sc, const char *stat_prefix,
					      const char *rds, Envoy__Config__Route__V3__RouteConfiguration *inline_rc,
					      gen_http_filter **pre, size_t n_pre, bool inbound,
					      Google__Protobuf__Any *stats)
{
	const struct model *m = sc->g.m;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault fault = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Http__Cors__V3__Cors cors = ENVOY__EXTENSIONS__FILTERS__HTTP__CORS__V3__CORS__INIT;
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	gen_hcm hcm = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig *ws =
		gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__upgrade_config__descriptor);
	gen_http_filter **f = arena_calloc(a, n_pre + 4, sizeof(*f));
	size_t n = 0;

	if (!f || !ws || !(hcm.upgrade_configs = arena_calloc(a, 1, sizeof(*hcm.upgrade_configs))))
		return NULL;
	if (n_pre)
		memcpy(f, pre, n_pre * sizeof(*f));
	n = n_pre;
	if (!(f[n++] = gen__http_filter(a, GEN_FAULT_FILTER, &fault.base)) ||
	    !(f[n++] = gen__http_filter(a, GEN_CORS_FILTER, &cors.base)))
		return NULL;
	/* issue 14: Istio's stats plugin right before the router */
	if (stats && !(f[n++] = gen__stats_http_filter(a, stats)))
		return NULL;
	if (!(f[n++] = gen__http_filter(a, GEN_ROUTER_FILTER, &router.base)))
		return NULL;
	hcm.codec_type = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO;
	hcm.stat_prefix = (char *)stat_prefix;
	if (rds) {
		Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds *r =
			gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__rds__descriptor);

		if (!r || !(r->config_source = gen__ads_source(a)) ||
		    !(r->config_source->initial_fetch_timeout = gen__duration(a, 0)))
			return NULL;
		r->route_config_name = (char *)rds;
		hcm.route_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
		hcm.rds = r;
	} else {
		hcm.route_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG;
		hcm.route_config = inline_rc;
	}
	hcm.http_filters = f;
	hcm.n_http_filters = n;
	ws->upgrade_type = "websocket";
	hcm.upgrade_configs[0] = ws;
	hcm.n_upgrade_configs = 1;
	if (!(hcm.stream_idle_timeout = gen__duration(a, 0)) || !(hcm.use_remote_address = gen__bool(a, false)) ||
	    !(hcm.normalize_path = gen__bool(a, !m->mesh || m->mesh->path_norm != MESHCFG_PATH_NONE)))
		return NULL;
	/* MeshConfig pathNormalization as istiod maps it: NONE turns
	 * normalize_path off, MERGE_SLASHES adds merge_slashes,
	 * DECODE_AND_MERGE_SLASHES also unescapes %2F and %5C */
	hcm.merge_slashes = m->mesh && (m->mesh->path_norm == MESHCFG_PATH_MERGE_SLASHES ||
					m->mesh->path_norm == MESHCFG_PATH_DECODE_AND_MERGE_SLASHES);
	hcm.path_with_escaped_slashes_action =
		m->mesh && m->mesh->path_norm == MESHCFG_PATH_DECODE_AND_MERGE_SLASHES
			? ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_FORWARD
			: ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__KEEP_UNCHANGED;
	hcm.proxy_100_continue = true;
	/* issue 14: the workload's Telemetry tracing (or MeshConfig's default
	 * provider), as istiod's configureTracing: server spec inbound */
	if (gen__tracing(a, &sc->g, sc->w, sc->tel, inbound, &hcm.tracing) < 0)
		return NULL;
	/* issue 14: the workload's access logs of this direction (Telemetry,
	 * else MeshConfig accessLogFile), gen__workload_access_logs */
	hcm.access_log = inbound ? sc->log_in.v : sc->log_out.v;
	hcm.n_access_log = inbound ? sc->log_in.n : sc->log_out.n;
	if (inbound) {
		Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__SetCurrentClientCertDetails *cc =
			gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__set_current_client_cert_details__descriptor);

		if (!cc || !(cc->subject = gen__bool(a, true)))
			return NULL;
		cc->dns = true;
		cc->uri = true;
		hcm.forward_client_cert_details =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD;
		hcm.set_current_client_cert_details = cc;
	}
	return gen__any(a, &hcm.base);
}

/* ---------------------------------------------------------------- scope */

static bool gen_visible(const struct gen_sc *sc, const struct model_service *svc)
{
	const struct cfg_strs *eh = sc->scope->egress_hosts;
	size_t i;

	/* exportTo first: a service not exported to the workload's namespace
	 * is not in its scope, whatever the Sidecar imports (Istio) */
	if (!model_service_visible(sc->g.m, svc, gen__workload_ns(sc->w)))
		return false;
	if (!eh)
		return true;
	for (i = 0; i < eh->n; i++)
		if (model_sidecar_imports(eh->v[i], svc->ns, svc->hostname, gen__workload_ns(sc->w)))
			return true;
	return false;
}

static const struct model_port *gen_port(const struct model_service *svc, uint32_t port)
{
	size_t i;

	for (i = 0; i < svc->n_ports; i++)
		if (svc->ports[i].number == port)
			return &svc->ports[i];
	return NULL;
}

/* The VIP of svc: its ClusterIP, else the first ServiceEntry address
 * that is not a CIDR; NULL when it has none. */
static const char *gen_vip(const struct model_service *svc)
{
	size_t i;

	if (svc->cluster_ip && svc->cluster_ip[0] && strcmp(svc->cluster_ip, "None") != 0)
		return svc->cluster_ip;
	if (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY)
		for (i = 0; i < svc->origin->spec.se.addresses.n; i++)
			if (!strchr(svc->origin->spec.se.addresses.v[i], '/'))
				return svc->origin->spec.se.addresses.v[i];
	return NULL;
}

static int gen_u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* ---------------------------------------------------------------- outbound: RDS */

/* A string set for domain dedupe (open addressing, in the arena). */
struct gen_strset {
	const char **v;
	size_t cap, n;
};

static uint64_t gen_str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Insert s; returns 1 when added, 0 when present, -ENOMEM. */
static int gen_strset_add(struct arena *a, struct gen_strset *set, const char *s)
{
	size_t i;

	if ((set->n + 1) * 2 > set->cap) {
		struct gen_strset bigger = { .cap = set->cap ? set->cap * 2 : 64 };

		if (!(bigger.v = arena_calloc(a, bigger.cap, sizeof(*bigger.v))))
			return -ENOMEM;
		for (i = 0; i < set->cap; i++)
			if (set->v[i] && gen_strset_add(a, &bigger, set->v[i]) < 0)
				return -ENOMEM;
		*set = bigger;
	}
	for (i = gen_str_hash(s) & (set->cap - 1); set->v[i]; i = (i + 1) & (set->cap - 1))
		if (strcmp(set->v[i], s) == 0)
			return 0;
	set->v[i] = s;
	set->n++;
	return 1;
}

/* The catch-all virtual host (istiod's buildCatchAllVirtualHost): under
 * ALLOW_ANY "allow_any" to PassthroughCluster with no timeout, under
 * REGISTRY_ONLY "block_all" answering 502. */
static Envoy__Config__Route__V3__VirtualHost *gen_catchall_vh(const struct gen_sc *sc, struct arena *a)
{
	Envoy__Config__Route__V3__VirtualHost *vh = gen__msg(a, &envoy__config__route__v3__virtual_host__descriptor);
	Envoy__Config__Route__V3__Route *r = gen__msg(a, &envoy__config__route__v3__route__descriptor);
	Envoy__Config__Route__V3__RouteMatch *m = gen__msg(a, &envoy__config__route__v3__route_match__descriptor);
	bool allow = sc->scope->outbound == GEN_OUTBOUND_ALLOW_ANY;

	if (!vh || !r || !m || !(vh->domains = arena_calloc(a, 1, sizeof(*vh->domains))) ||
	    !(vh->routes = arena_calloc(a, 1, sizeof(*vh->routes))))
		return NULL;
	m->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	m->prefix = "/";
	r->match = m;
	r->name = allow ? "allow_any" : "block_all";
	if (allow) {
		Envoy__Config__Route__V3__RouteAction *ra = gen__msg(a, &envoy__config__route__v3__route_action__descriptor);

		if (!ra || !(ra->timeout = gen__duration(a, 0)) || !(ra->max_grpc_timeout = gen__duration(a, 0)))
			return NULL;
		ra->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
		ra->cluster = GEN_PASSTHROUGH_CLUSTER;
		r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
		r->route = ra;
	} else {
		Envoy__Config__Route__V3__DirectResponseAction *dr =
			gen__msg(a, &envoy__config__route__v3__direct_response_action__descriptor);

		if (!dr)
			return NULL;
		dr->status = 502;
		r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE;
		r->direct_response = dr;
	}
	vh->name = r->name;
	vh->domains[0] = "*";
	vh->n_domains = 1;
	vh->routes[0] = r;
	vh->n_routes = 1;
	vh->include_request_attempt_count = sc->g.p->istio_retry;
	return vh;
}

/* RouteConfiguration "PORT": one virtual host per visible HTTP service
 * with that port (hostname order), then the catch-all;
 * ignore_port_in_host_matching as istiod sets it on every sidecar
 * outbound route config (buildSidecarOutboundHTTPRouteConfig): the
 * listener port chose the route config, a Host's port does not matter. */
static int gen_route_config_build(struct gen_sc *sc, uint32_t port, struct xds_snapshot *snap)
{
	Envoy__Config__Route__V3__RouteConfiguration rc_msg = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	const struct model *m = sc->g.m;
	struct arena *a = arena_new(GEN_ARENA_MAX);
	struct gen_strset seen = { 0 };
	Envoy__Config__Route__V3__VirtualHost **vhs = NULL;
	size_t i, j, n = 0;
	int rc = -ENOMEM;

	if (!a || !(vhs = arena_calloc(a, m->n_services + 1, sizeof(*vhs))) ||
	    !(rc_msg.name = arena_printf(a, "%u", port)))
		goto out;
	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];
		const struct model_port *mp = gen_port(svc, port);
		Envoy__Config__Route__V3__VirtualHost *vh;
		size_t k = 0;

		if (!sc->visible[i] || !mp || (!gen_protocol_http(mp->protocol) && !mp->sniffed))
			continue;
		rc = gen__virtual_host(&sc->g, svc, port, a, &vh);
		if (rc < 0) {
			gen__note(&sc->g, GEN_NOTE_ERROR, "xds", "sidecar route %u for %s: %s", port, svc->hostname,
				  mesh_strerror(rc));
			goto out;
		}
		rc = -ENOMEM;
		/* a domain already taken by an earlier host is dropped (Envoy
		 * rejects a route config with a domain twice) */
		for (j = 0; j < vh->n_domains; j++) {
			int added = gen_strset_add(a, &seen, vh->domains[j]);

			if (added < 0)
				goto out;
			if (added)
				vh->domains[k++] = vh->domains[j];
		}
		vh->n_domains = k;
		if (k)
			vhs[n++] = vh;
	}
	if (!(vhs[n++] = gen_catchall_vh(sc, a)) || !(rc_msg.validate_clusters = gen__bool(a, false)))
		goto out;
	rc_msg.virtual_hosts = vhs;
	rc_msg.n_virtual_hosts = n;
	rc_msg.ignore_port_in_host_matching = true;
	rc = gen__emit(&sc->g, snap, XDS_ROUTE, rc_msg.name, &rc_msg.base);
out:
	arena_free(a);
	return rc;
}

static int gen_route_config_port(struct gen_sc *sc, uint32_t port);
static bool gen_egress_bound(const struct gen_sc *sc, uint32_t port);

/* ---------------------------------------------------------------- outbound: LDS */

/* The default chain of per-port listeners and the catch-all of
 * virtualOutbound: PassthroughCluster under ALLOW_ANY, BlackHoleCluster
 * under REGISTRY_ONLY. */
static const char *gen_egress_cluster(const struct gen_sc *sc)
{
	return sc->scope->outbound == GEN_OUTBOUND_ALLOW_ANY ? GEN_PASSTHROUGH_CLUSTER : GEN_BLACKHOLE_CLUSTER;
}

/* Notes an outbound listener's name (a Sidecar ingress listener with the
 * same address is then not built). */
static int gen_out_name_add(struct gen_sc *sc, const char *name)
{
	if (sc->n_out_names == sc->cap_out_names) {
		size_t cap = sc->cap_out_names ? 2 * sc->cap_out_names : 16;
		const char **v = arena_calloc(sc->a, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		if (sc->n_out_names)
			memcpy(v, sc->out_names, sc->n_out_names * sizeof(*v));
		sc->out_names = v;
		sc->cap_out_names = cap;
	}
	sc->out_names[sc->n_out_names++] = name;
	return 0;
}

/* Istio's plaintextHTTPALPNs: what http_inspector reports for HTTP/1.x
 * and the HTTP/2 preface. */
static const char *const gen_plaintext_http_alpn[] = { "http/1.0", "http/1.1", "h2c" };

/*
 * The outbound listener "BIND_PORT": one chain with filter f, or, for a
 * port whose protocol is not declared (sniff_tcp set: Istio's
 * auto-detection, listener_builder.go), an HTTP chain matching the
 * plaintext HTTP ALPNs with f and a TCP chain with sniff_tcp, after an
 * http_inspector whose listener_filters_timeout is MeshConfig
 * protocolDetectionTimeout (Istio's default 0s: no timeout), continuing
 * as TCP on a timeout (a server-first protocol).  Both: a passthrough
 * default chain.
 */
static int gen_outbound_listener2(struct gen_sc *sc, const char *bind, uint32_t port, gen_filter *f,
				  gen_filter *sniff_tcp)
{
	Envoy__Extensions__Filters__Listener__HttpInspector__V3__HttpInspector hi =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__HTTP_INSPECTOR__V3__HTTP_INSPECTOR__INIT;
	gen_listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	struct arena *a = sc->a;
	gen_chain *chains[2];

	/* captureMode NONE (of the egress listener serving the port, or of
	 * the whole workload): the listener binds its address
	 * (gen_egress_bind says which); otherwise iptables sends traffic to
	 * 15001 and virtualOutbound hands it over by original destination. */
	l.name = arena_printf(a, "%s_%u", bind, port);
	if (l.name && gen_out_name_add(sc, l.name) < 0)
		return -ENOMEM;
	if (!l.name || !f || !(l.default_filter_chain = gen_chain1(a, GEN_PASSTHROUGH_CHAIN, NULL, gen_tcp_proxy_logged(a, gen_egress_cluster(sc), &sc->log_out), NULL)))
		return -ENOMEM;
	l.n_filter_chains = 1;
	if (!sniff_tcp) {
		if (!(chains[0] = gen_chain1(a, NULL, NULL, f, NULL)))
			return -ENOMEM;
	} else {
		if (!(chains[0] = gen_chain1(a, NULL, gen_fcm(a, 0, NULL, gen_plaintext_http_alpn, 3), f, NULL)) ||
		    !(chains[1] = gen_chain1(a, NULL, NULL, sniff_tcp, NULL)) ||
		    !(l.listener_filters = arena_calloc(a, 1, sizeof(*l.listener_filters))) ||
		    !(l.listener_filters[0] = gen__listener_filter(a, "envoy.filters.listener.http_inspector", &hi.base)) ||
		    !(l.listener_filters_timeout = gen__duration(a, gen_mesh_protocol_detection_timeout(sc->g.m))))
			return -ENOMEM;
		l.n_listener_filters = 1;
		l.continue_on_listener_filters_timeout = true;
		l.n_filter_chains = 2;
	}
	if (!(l.address = gen__addr(a, bind, port)))
		return -ENOMEM;
	if (!gen_egress_bound(sc, port) && !(l.bind_to_port = gen__bool(a, false)))
		return -ENOMEM;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	l.filter_chains = chains;
	return gen_sc_emit_listener(sc, &l);
}

static int gen_outbound_listener(struct gen_sc *sc, const char *bind, uint32_t port, gen_filter *f)
{
	return gen_outbound_listener2(sc, bind, port, f, NULL);
}

/* The TCP proxy of svc on port: to the destinations of the first tcp
 * route of its VirtualServices that applies to the port (one cluster or
 * weighted clusters), else to its own cluster. */
static gen_filter *gen_tcp_route_filter(struct gen_sc *sc, const struct model_service *svc, uint32_t port,
					const struct cfg_tcp_route *tr, const char *vs_ns);

/* Does tcp match mt apply to the caller on port (Istio's matchTCP: port,
 * sourceLabels, sourceNamespace, gateways including "mesh")?  A match on
 * the caller's labels or namespace applies only when the output is built
 * per caller.  destinationSubnets are the caller's chain's business. */
static bool gen_tcp_match_applies(const struct gen_sc *sc, const struct cfg_tcp_match *mt, uint32_t port)
{
	const struct gen_workload *caller = sc->g.caller;

	if (mt->port >= 0 && (uint64_t)mt->port != port)
		return false;
	if (!model_gateways_include_mesh(&mt->gateways))
		return false;
	if (mt->source_labels.n > 0 || mt->source_namespace) {
		if (!sc->g.p->per_caller_matches || !caller)
			return false;
		if (!model_labels_match(&mt->source_labels, gen__workload_labels(caller)))
			return false;
		if (mt->source_namespace && strcmp(mt->source_namespace, gen__workload_ns(caller)) != 0)
			return false;
	}
	return true;
}

/* The first tcp route of svc's VirtualService with a match (without
 * destinationSubnets) that applies on port, or a route without matches. */
static const struct cfg_tcp_route *gen_tcp_route_for(const struct gen_sc *sc, const struct cfg_object *vs,
						     uint32_t port)
{
	size_t i, j;

	for (i = 0; vs && i < vs->spec.vs.n_tcp; i++) {
		const struct cfg_tcp_route *t = &vs->spec.vs.tcp[i];

		if (!t->n_route)
			continue;
		if (!t->n_match)
			return t;
		for (j = 0; j < t->n_match; j++)
			if (!t->match[j].destination_subnets.n && gen_tcp_match_applies(sc, &t->match[j], port))
				return t;
	}
	return NULL;
}

static gen_filter *gen_tcp_service_filter(struct gen_sc *sc, const struct model_service *svc, uint32_t port)
{
	const struct cfg_object *vs = gen__vs(&sc->g, svc);
	const struct cfg_tcp_route *tr = gen_tcp_route_for(sc, vs, port);

	return gen_tcp_route_filter(sc, svc, port, tr, tr ? vs->ns : svc->ns);
}

/* prefix_ranges of a chain match from CIDR strings ("10.0.0.0/8", a bare
 * address is /32 or /128). */
static int gen_fcm_subnets(struct arena *a, Envoy__Config__Listener__V3__FilterChainMatch *fm,
			   const struct cfg_strs *subnets)
{
	size_t k;

	if (!subnets->n)
		return 0;
	if (!(fm->prefix_ranges = arena_calloc(a, subnets->n, sizeof(*fm->prefix_ranges))))
		return -ENOMEM;
	for (k = 0; k < subnets->n; k++) {
		Envoy__Config__Core__V3__CidrRange *cr = gen__msg(a, &envoy__config__core__v3__cidr_range__descriptor);
		const char *sub = subnets->v[k], *slash = strchr(sub, '/');

		if (!cr)
			return -ENOMEM;
		cr->address_prefix = slash ? arena_strndup(a, sub, (size_t)(slash - sub)) : (char *)sub;
		cr->prefix_len = gen__u32(a, slash ? (uint32_t)strtoul(slash + 1, NULL, 10) : strchr(sub, ':') ? 128 : 32);
		if (!cr->address_prefix || !cr->prefix_len)
			return -ENOMEM;
		fm->prefix_ranges[fm->n_prefix_ranges++] = cr;
	}
	return 0;
}

/* The TCP proxy to tr's destinations (one cluster or weighted clusters),
 * tr NULL: to svc's own cluster. */
static gen_filter *gen_tcp_route_filter(struct gen_sc *sc, const struct model_service *svc, uint32_t port,
					const struct cfg_tcp_route *tr, const char *vs_ns)
{
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	struct arena *a = sc->a;
	size_t i;

	tp.cluster_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
	tp.cluster = gen__cluster_name(a, port, NULL, svc->hostname);
	if (tr && tr->n_route == 1) {
		char host[GEN_NAME_MAX];
		const struct cfg_destination *d = &tr->route[0].destination;

		model_resolve_host(sc->g.m, d->host, vs_ns, host, sizeof(host));
		tp.cluster = gen__cluster_name(a, d->port > 0 ? gen__clamp_u32(d->port) : port, d->subset, host);
	} else if (tr) {
		Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster *wc = gen__msg(
			a, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__descriptor);

		if (!wc || !(wc->clusters = arena_calloc(a, tr->n_route, sizeof(*wc->clusters))))
			return NULL;
		for (i = 0; i < tr->n_route; i++) {
			Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster__ClusterWeight *cw = gen__msg(
				a, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__cluster_weight__descriptor);
			const struct cfg_destination *d = &tr->route[i].destination;
			char host[GEN_NAME_MAX];

			if (!cw)
				return NULL;
			model_resolve_host(sc->g.m, d->host, vs_ns, host, sizeof(host));
			cw->name = gen__cluster_name(a, d->port > 0 ? gen__clamp_u32(d->port) : port, d->subset, host);
			cw->weight = tr->route[i].weight < 0 ? 1 : gen__clamp_u32(tr->route[i].weight);
			if (!cw->name)
				return NULL;
			if (cw->weight)
				wc->clusters[wc->n_clusters++] = cw;
		}
		tp.cluster_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS;
		tp.weighted_clusters = wc;
	}
	if (!tp.cluster)
		return NULL;
	/* Istio's buildOutboundNetworkFiltersWithSingleDestination: the
	 * destination's DestinationRule (its top-level trafficPolicy) gives
	 * tcp.idleTimeout -> idle_timeout and tcp.maxConnectionDuration ->
	 * max_downstream_connection_duration; weighted destinations get
	 * neither (Istio's weighted builder reads only node metadata). */
	if (tp.cluster_specifier_case == ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
		char host[GEN_NAME_MAX];
		const struct cfg_object *dr;
		const struct cfg_connection_pool *cp;

		if (tr)
			model_resolve_host(sc->g.m, tr->route[0].destination.host, vs_ns, host, sizeof(host));
		else
			snprintf(host, sizeof(host), "%s", svc->hostname);
		dr = sc->g.caller && sc->g.p->per_caller_matches
			     ? model_destination_rule_for(sc->g.m, host, gen__workload_ns(sc->g.caller),
							  gen__workload_labels(sc->g.caller))
			     : model_destination_rule(sc->g.m, host, NULL);
		cp = dr && dr->spec.dr.traffic_policy.set ? &dr->spec.dr.traffic_policy.policy.connection_pool : NULL;
		if (cp && cp->set && cp->tcp_idle_timeout >= 0 &&
		    !(tp.idle_timeout = gen__duration(a, cp->tcp_idle_timeout)))
			return NULL;
		if (cp && cp->set && cp->max_connection_duration > 0 &&
		    !(tp.max_downstream_connection_duration = gen__duration(a, cp->max_connection_duration)))
			return NULL;
	}
	tp.stat_prefix = tp.cluster_specifier_case ==
					 ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER ?
				 tp.cluster : gen__cluster_name(a, port, NULL, svc->hostname);
	tp.access_log = sc->log_out.v; /* issue 14: the workload's outbound access logs */
	tp.n_access_log = sc->log_out.n;
	return gen__net_filter(a, GEN_TCP_PROXY_NAME, gen__any(a, &tp.base));
}

/* How many chains the tls routes of vs may add (one per match). */
static size_t gen_tls_match_count(const struct cfg_object *vs)
{
	size_t i, n = 0;

	for (i = 0; vs && i < vs->spec.vs.n_tls; i++)
		n += vs->spec.vs.tls[i].n_match;
	return n;
}

/* Appends to chains (from *n, room for gen_tls_match_count()) one chain
 * per match of svc's VirtualService tls routes that applies to sidecars
 * on port (Istio's buildSidecarOutboundTLSFilterChainOpts): its sniHosts
 * as server_names, its destinationSubnets as prefix_ranges, a TCP proxy
 * to the route's destinations (TLS passthrough: never terminated).  A
 * match whose gateways leave out "mesh" is for gateways only (the
 * egress-gateway pattern: the gateway's half of one VirtualService) and
 * skipped, as Istio's sidecar builder skips it; sourceLabels and
 * sourceNamespace are not read (such a match is left out, noted).
 * 0 or -ENOMEM. */
static int gen_tls_route_chains(struct gen_sc *sc, const struct model_service *svc, uint32_t port, gen_chain **chains,
				size_t *n)
{
	const struct cfg_object *vs = gen__vs(&sc->g, svc);
	struct arena *a = sc->a;
	size_t i, j, k;

	for (i = 0; vs && i < vs->spec.vs.n_tls; i++) {
		const struct cfg_tls_route *r = &vs->spec.vs.tls[i];
		struct cfg_tcp_route tr = { r->route, r->n_route, -1, NULL, 0 };

		for (j = 0; j < r->n_match && r->n_route; j++) {
			const struct cfg_tls_match *m = &r->match[j];
			Envoy__Config__Listener__V3__FilterChainMatch *fm;

			if (m->port >= 0 && (uint64_t)m->port != port)
				continue;
			if (m->gateways.n && !model_gateways_include_mesh(&m->gateways))
				continue;
			if (m->source_labels.n || m->source_namespace) {
				gen__note(&sc->g, GEN_NOTE_WARN, "xds",
					  "sidecar: tls route of %s/%s: sourceLabels and sourceNamespace "
					  "in a match are not supported; the match is left out",
					  vs->ns, vs->name);
				continue;
			}
			if (!(fm = gen_fcm(a, 0, NULL, NULL, 0)))
				return -ENOMEM;
			if (m->sni_hosts.n) {
				if (!(fm->server_names = arena_calloc(a, m->sni_hosts.n, sizeof(*fm->server_names))))
					return -ENOMEM;
				for (k = 0; k < m->sni_hosts.n; k++)
					fm->server_names[k] = m->sni_hosts.v[k];
				fm->n_server_names = m->sni_hosts.n;
			}
			if (gen_fcm_subnets(a, fm, &m->destination_subnets) < 0)
				return -ENOMEM;
			if (!(chains[(*n)++] = gen_chain1(a, NULL, fm, gen_tcp_route_filter(sc, svc, port, &tr, vs->ns), NULL)))
				return -ENOMEM;
		}
	}
	return 0;
}

/* Emits the listener "BIND_PORT" of a TLS port: a tls_inspector, the
 * chains given, the passthrough default chain.  1 or -ENOMEM. */
static int gen_tls_listener(struct gen_sc *sc, const char *bind, uint32_t port, gen_chain **chains, size_t n)
{
	Envoy__Extensions__Filters__Listener__TlsInspector__V3__TlsInspector ti =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__TLS_INSPECTOR__V3__TLS_INSPECTOR__INIT;
	gen_listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	struct arena *a = sc->a;

	if (!(l.name = arena_printf(a, "%s_%u", bind, port)) || gen_out_name_add(sc, l.name) < 0 ||
	    !(l.address = gen__addr(a, bind, port)) ||
	    !(l.default_filter_chain =
		      gen_chain1(a, GEN_PASSTHROUGH_CHAIN, NULL, gen_tcp_proxy_logged(a, gen_egress_cluster(sc), &sc->log_out), NULL)) ||
	    !(l.listener_filters = arena_calloc(a, 1, sizeof(*l.listener_filters))) ||
	    !(l.listener_filters[0] = gen__listener_filter(a, "envoy.filters.listener.tls_inspector", &ti.base)))
		return -ENOMEM;
	l.n_listener_filters = 1;
	if (!gen_egress_bound(sc, port) && !(l.bind_to_port = gen__bool(a, false)))
		return -ENOMEM;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	l.filter_chains = chains;
	l.n_filter_chains = n;
	return gen_sc_emit_listener(sc, &l) < 0 ? -ENOMEM : 1;
}

/*
 * The outbound listener of a TLS service port whose VirtualServices have
 * `tls:` routes for it: the chains of gen_tls_route_chains(), then a
 * chain without a match to the service's own TCP proxy.  Returns 1 when
 * built, 0 when svc has no such route (the caller builds the plain
 * listener).
 */
static int gen_outbound_tls_routes(struct gen_sc *sc, const char *bind, const struct model_service *svc,
				   uint32_t port)
{
	size_t n = 0, cap = 1 + gen_tls_match_count(gen__vs(&sc->g, svc));
	gen_chain **chains;

	if (cap == 1)
		return 0;
	if (!(chains = arena_calloc(sc->a, cap, sizeof(*chains))) || gen_tls_route_chains(sc, svc, port, chains, &n) < 0)
		return -ENOMEM;
	if (!(chains[n++] = gen_chain1(sc->a, NULL, NULL, gen_tcp_route_filter(sc, svc, port, NULL, svc->ns), NULL)))
		return -ENOMEM;
	return gen_tls_listener(sc, bind, port, chains, n);
}

static bool gen_protocol_tls(const char *proto)
{
	return proto && (strcmp(proto, "TLS") == 0 || strcmp(proto, "HTTPS") == 0);
}

/* Is port of svc one the shared TLS listener serves: TLS or HTTPS, no VIP? */
static bool gen_tls_by_sni(const struct gen_sc *sc, size_t k, uint32_t port)
{
	const struct model_service *svc = &sc->g.m->services[k];
	const struct model_port *mp = sc->visible[k] ? gen_port(svc, port) : NULL;

	return mp && !mp->sniffed && gen_protocol_tls(mp->protocol) && !gen_vip(svc);
}

/*
 * The outbound listener of a TLS port shared by several services, those
 * without a VIP told apart by SNI (Istio's buildSidecarOutboundListeners
 * merges them into "0.0.0.0_PORT"; buildSidecarOutboundTLSFilterChainOpts:
 * a service's tls routes give its chains, and a service without a tls
 * match gets one chain matching its own hostname as server_names "if and
 * only if we do not have a destination VIP").  This is the sidecar half of
 * Istio's egress-gateway pattern for TLS: the external host's ServiceEntry
 * and the egress gateway's service share 443 and neither has a VIP.
 * Returns 1 when built, 0 when no service of the port qualifies.
 */
static int gen_outbound_tls_shared(struct gen_sc *sc, const char *bind, uint32_t port)
{
	const struct model *m = sc->g.m;
	gen_chain **chains;
	size_t k, n = 0, cap = 0;

	for (k = 0; k < m->n_services; k++)
		if (gen_tls_by_sni(sc, k, port))
			cap += 1 + gen_tls_match_count(gen__vs(&sc->g, &m->services[k]));
	if (!cap)
		return 0;
	if (!(chains = arena_calloc(sc->a, cap, sizeof(*chains))))
		return -ENOMEM;
	for (k = 0; k < m->n_services; k++) {
		const struct model_service *svc = &m->services[k];
		Envoy__Config__Listener__V3__FilterChainMatch *fm;
		size_t before = n;

		if (!gen_tls_by_sni(sc, k, port))
			continue;
		if (gen_tls_route_chains(sc, svc, port, chains, &n) < 0)
			return -ENOMEM;
		if (n > before)
			continue;
		if (!(fm = gen_fcm(sc->a, 0, NULL, NULL, 0)) ||
		    !(fm->server_names = arena_calloc(sc->a, 1, sizeof(*fm->server_names))))
			return -ENOMEM;
		fm->server_names[0] = (char *)svc->hostname; /* borrowed: the model outlives the build */
		fm->n_server_names = 1;
		if (!(chains[n++] = gen_chain1(sc->a, NULL, fm, gen_tcp_service_filter(sc, svc, port), NULL)))
			return -ENOMEM;
	}
	return gen_tls_listener(sc, bind, port, chains, n);
}

/*
 * The outbound listener of a TCP service port whose VirtualService has
 * `tcp:` matches with destinationSubnets that apply to the caller (Istio's
 * buildSidecarOutboundTCPFilterChainOpts): one chain per such match with
 * prefix_ranges, each a TCP proxy to its route's destinations, then the
 * chain of the first route that applies without subnets (else the
 * service's own cluster).  Returns 1 when built, 0 when there is no such
 * match (the caller builds the single-chain listener).
 */
static int gen_outbound_tcp_subnets(struct gen_sc *sc, const char *bind, const struct model_service *svc,
				    uint32_t port)
{
	gen_listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	const struct cfg_object *vs = gen__vs(&sc->g, svc);
	struct arena *a = sc->a;
	gen_chain **chains;
	size_t i, j, n = 0, cap = 1;

	for (i = 0; vs && i < vs->spec.vs.n_tcp; i++)
		for (j = 0; j < vs->spec.vs.tcp[i].n_match; j++)
			if (vs->spec.vs.tcp[i].match[j].destination_subnets.n &&
			    gen_tcp_match_applies(sc, &vs->spec.vs.tcp[i].match[j], port))
				cap++;
	if (cap == 1)
		return 0;
	if (!(chains = arena_calloc(a, cap, sizeof(*chains))))
		return -ENOMEM;
	for (i = 0; i < vs->spec.vs.n_tcp; i++) {
		const struct cfg_tcp_route *r = &vs->spec.vs.tcp[i];

		for (j = 0; j < r->n_match && r->n_route; j++) {
			const struct cfg_tcp_match *m = &r->match[j];
			Envoy__Config__Listener__V3__FilterChainMatch *fm;

			if (!m->destination_subnets.n || !gen_tcp_match_applies(sc, m, port))
				continue;
			if (!(fm = gen_fcm(a, 0, NULL, NULL, 0)) || gen_fcm_subnets(a, fm, &m->destination_subnets) < 0 ||
			    !(chains[n++] = gen_chain1(a, NULL, fm, gen_tcp_route_filter(sc, svc, port, r, vs->ns), NULL)))
				return -ENOMEM;
		}
	}
	if (!(chains[n++] = gen_chain1(a, NULL, NULL, gen_tcp_service_filter(sc, svc, port), NULL)))
		return -ENOMEM;
	if (!(l.name = arena_printf(a, "%s_%u", bind, port)) || gen_out_name_add(sc, l.name) < 0 ||
	    !(l.address = gen__addr(a, bind, port)) ||
	    !(l.default_filter_chain =
		      gen_chain1(a, GEN_PASSTHROUGH_CHAIN, NULL, gen_tcp_proxy_logged(a, gen_egress_cluster(sc), &sc->log_out), NULL)))
		return -ENOMEM;
	if (!gen_egress_bound(sc, port) && !(l.bind_to_port = gen__bool(a, false)))
		return -ENOMEM;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	l.filter_chains = chains;
	l.n_filter_chains = n;
	return gen_sc_emit_listener(sc, &l) < 0 ? -ENOMEM : 1;
}

/* Outbound listeners and route configs: every port with an HTTP service
 * gets "0.0.0.0_PORT" with RDS "PORT"; a TCP service gets "0.0.0.0_PORT"
 * alone on its port, or "VIP_PORT" when the port is shared with an HTTP
 * port or another TCP service; TLS services without a VIP on a port no
 * HTTP service has share one "0.0.0.0_PORT" told apart by SNI
 * (gen_outbound_tls_shared); another one without a VIP cannot be told
 * apart and is left out, noted, as Istio reports the conflict. */
/* Where the outbound listener of port listens, as Istio's
 * buildSidecarOutboundListeners() picks it: the bind of the Sidecar's
 * egress listener of that port, else (no egress listener names the port)
 * the catch-all egress listener's bind; without a bind 0.0.0.0, or under
 * captureMode NONE 127.0.0.1 (the application calls 127.0.0.1:PORT and
 * the listener binds it; gen_egress_bound() says whether it is NONE). */
/* Whether the outbound listener of port binds it (Istio's getBindToPort()
 * for the egress listener serving the port): the whole workload is not
 * captured, or the egress listener of that port (else the catch-all one)
 * says captureMode NONE. */
static bool gen_egress_bound(const struct gen_sc *sc, uint32_t port)
{
	size_t i;

	if (sc->scope->capture_none)
		return true;
	for (i = 0; i < sc->scope->n_egress_binds; i++)
		if (sc->scope->egress_binds[i].port == port)
			return sc->scope->egress_binds[i].capture_none;
	return sc->scope->catchall_capture_none;
}

static const char *gen_egress_bind(const struct gen_sc *sc, uint32_t port)
{
	const char *dflt = gen_egress_bound(sc, port) ? "127.0.0.1" : "0.0.0.0";
	size_t i;

	for (i = 0; i < sc->scope->n_egress_binds; i++)
		if (sc->scope->egress_binds[i].port == port)
			return sc->scope->egress_binds[i].bind ? sc->scope->egress_binds[i].bind : dflt;
	return sc->scope->catchall_bind ? sc->scope->catchall_bind : dflt;
}

static int gen_outbound(struct gen_sc *sc)
{
	const struct model *m = sc->g.m;
	uint32_t *ports = NULL;
	size_t i, j, n = 0, cap = 0;
	int rc = 0;

	for (i = 0; i < m->n_services; i++)
		if (sc->visible[i])
			cap += m->services[i].n_ports;
	if (cap && !(ports = calloc(cap, sizeof(*ports))))
		return -ENOMEM;
	for (i = 0; i < m->n_services; i++)
		for (j = 0; sc->visible[i] && j < m->services[i].n_ports; j++)
			ports[n++] = m->services[i].ports[j].number;
	if (n)
		qsort(ports, n, sizeof(*ports), gen_u32_cmp);
	for (i = 0; i < n && rc == 0; i++) {
		uint32_t port = ports[i];
		size_t n_tcp = 0, n_http = 0, k;

		if (i > 0 && ports[i - 1] == port)
			continue;
		for (k = 0; k < m->n_services; k++) {
			const struct model_port *mp = sc->visible[k] ? gen_port(&m->services[k], port) : NULL;

			if (mp && gen_protocol_http(mp->protocol))
				n_http++;
			else if (mp)
				n_tcp++;
		}
		if (n_http) {
			char *rn = arena_printf(sc->a, "%u", port);
			char *sp = arena_printf(sc->a, "outbound_%s_%u", gen_egress_bind(sc, port), port);

			if (!rn || !sp) {
				rc = -ENOMEM;
				break;
			}
			rc = gen_route_config_port(sc, port);
			if (rc == 0)
				rc = gen_outbound_listener(sc, gen_egress_bind(sc, port), port,
							   gen__net_filter(sc->a, GEN_HCM_NAME,
									  gen_sidecar_hcm(sc->a, sc, sp, rn, NULL, NULL, 0, false, sc->stats_out)));
		}
		if (n_tcp > 1 && n_http == 0) {
			rc = gen_outbound_tls_shared(sc, gen_egress_bind(sc, port), port);
			if (rc > 0)
				rc = 0;
		}
		for (k = 0; k < m->n_services && rc == 0; k++) {
			const struct model_service *svc = &m->services[k];
			const struct model_port *mp = sc->visible[k] ? gen_port(svc, port) : NULL;
			const char *vip;

			if (!mp || gen_protocol_http(mp->protocol))
				continue;
			if (n_tcp == 1 && n_http == 0 && mp->sniffed) {
				/* no protocol declared: HTTP or TCP, told per connection */
				char *rn = arena_printf(sc->a, "%u", port);
				char *sp = arena_printf(sc->a, "outbound_%s_%u", gen_egress_bind(sc, port), port);

				if (!rn || !sp) {
					rc = -ENOMEM;
					break;
				}
				rc = gen_route_config_port(sc, port);
				if (rc == 0)
					rc = gen_outbound_listener2(
						sc, gen_egress_bind(sc, port), port,
						gen__net_filter(sc->a, GEN_HCM_NAME,
							       gen_sidecar_hcm(sc->a, sc, sp, rn, NULL, NULL, 0, false, sc->stats_out)),
						gen_tcp_service_filter(sc, svc, port));
				continue;
			}
			if (n_tcp == 1 && n_http == 0) {
				rc = gen_outbound_tls_routes(sc, gen_egress_bind(sc, port), svc, port);
				if (rc == 0)
					rc = gen_outbound_tcp_subnets(sc, gen_egress_bind(sc, port), svc, port);
				if (rc == 0)
					rc = gen_outbound_listener(sc, gen_egress_bind(sc, port), port,
								   gen_tcp_service_filter(sc, svc, port));
				if (rc > 0)
					rc = 0;
				continue;
			}
			vip = gen_vip(svc);
			if (!vip && gen_tls_by_sni(sc, k, port) && n_http == 0)
				continue; /* in the SNI listener built above */
			if (!vip) {
				gen__note(&sc->g, GEN_NOTE_WARN, "xds",
					  "sidecar: TCP port %u of %s is shared and the service has no VIP; not served",
					  port, svc->hostname);
				/* istiod's TCP-over-TCP conflict: two match-all
				 * chains on BIND_PORT.  With an HTTP service on
				 * the port istiod's chains differ by ALPN and it
				 * counts nothing. */
				if (n_http == 0) {
					char *ln = arena_printf(sc->a, "%s_%u", gen_egress_bind(sc, port), port);

					if (!ln) {
						rc = -ENOMEM;
						break;
					}
					gen__conflict(&sc->g, GEN_CONFLICT_OUTBOUND_TCP_OVER_TCP, ln);
				}
				continue;
			}
			rc = gen_outbound_listener(sc, vip, port, gen_tcp_service_filter(sc, svc, port));
		}
	}
	free(ports);
	return rc;
}

/* virtualOutbound: 0.0.0.0:15001, use_original_dst (the listener of the
 * original destination takes the connection), a blackhole chain for
 * connections to 15001 itself, the catch-all chain for the rest. */
static int gen_virtual_outbound(struct gen_sc *sc)
{
	gen_listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	struct arena *a = sc->a;
	gen_chain *chains[2];

	l.name = GEN_VIRTUAL_OUTBOUND;
	if (!(l.address = gen__addr(a, "0.0.0.0", GEN_OUTBOUND_PORT)) || !(l.use_original_dst = gen__bool(a, true)) ||
	    !(chains[0] = gen_chain1(a, "virtualOutbound-blackhole", gen_fcm(a, GEN_OUTBOUND_PORT, NULL, NULL, 0),
				     gen_tcp_proxy(a, GEN_BLACKHOLE_CLUSTER), NULL)) ||
	    !(chains[1] = gen_chain1(a, "virtualOutbound-catchall-tcp", NULL, gen_tcp_proxy_logged(a, gen_egress_cluster(sc), &sc->log_out),
				     NULL)))
		return -ENOMEM;
	/* istiod: Transparent true under TPROXY interception */
	if (sc->node->tproxy && !(l.transparent = gen__bool(a, true)))
		return -ENOMEM;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	l.filter_chains = chains;
	l.n_filter_chains = 2;
	return gen_sc_emit_listener(sc, &l);
}

/* ---------------------------------------------------------------- inbound */

struct gen_inport {
	uint32_t port;               /* the port the workload receives on */
	const char *protocol;
	const char *endpoint_ip;     /* where the inbound cluster sends */
	uint32_t endpoint_port;
	const char *bind;            /* Sidecar ingress[].bind; NULL: 0.0.0.0 */
	bool bound;                  /* its captureMode NONE: a listener of its own */
	const struct model_service *svc; /* the service it came from; NULL: a Sidecar's ingress */
};

/* Whether two service port protocols are one (case aside; unset: sniffed). */
static bool gen_same_protocol(const char *a, const char *b)
{
	return strcasecmp(a ? a : "", b ? b : "") == 0;
}

static int gen_inport_cmp(const void *x, const void *y)
{
	const struct gen_inport *a = x, *b = y;

	return a->port < b->port ? -1 : a->port > b->port;
}

/* Is endpoint e the workload?  By namespace and labels (every label of
 * the node's metadata on the endpoint), or by IP for a node that declares
 * no labels (DESIGN.md: many test sidecars share 127.0.0.1, so an IP
 * alone may name several workloads; and replicas with the same labels
 * share one build, keyed without their IPs, so labels that match nothing
 * must not fall back to the IP). */
static bool gen_is_workload(const struct gen_sc *sc, const struct model_endpoint *e, bool by_ip)
{
	const struct cfg_labels *wl = gen__workload_labels(sc->w);

	if (by_ip)
		return sc->node->ip && e->address && strcmp(sc->node->ip, e->address) == 0;
	return wl->n > 0 && e->labels && strcmp(e->ns ? e->ns : "", gen__workload_ns(sc->w)) == 0 &&
	       model_labels_match(wl, e->labels);
}

/* The workload's locality from its service instances (as Istio's
 * registries give a proxy the locality of its Pod or WorkloadEntry) when
 * the node says none: the instances found as gen_inports() finds them,
 * only when they all agree (replicas with the same labels share one
 * build, and may live in different zones: then none).  "" otherwise. */
static const char *gen_instance_locality(const struct gen_sc *sc)
{
	const struct model *m = sc->g.m;
	const char *loc = NULL;
	bool by_ip = gen__workload_labels(sc->w)->n == 0;
	size_t i, j;

	for (i = 0; i < m->n_services; i++) {
		for (j = 0; j < m->services[i].n_endpoints; j++) {
			const struct model_endpoint *e = &m->services[i].endpoints[j];
			const char *l = e->locality ? e->locality : "";

			if (!gen_is_workload(sc, e, by_ip))
				continue;
			if (loc && strcmp(loc, l) != 0)
				return "";
			loc = l;
		}
	}
	return loc ? loc : "";
}

/* The inbound ports: the Sidecar's ingress listeners, else the
 * endpoint ports of the workload's service instances (one per port, the
 * first service's protocol by hostname).  *out malloc'd. */
static int gen_inports(const struct gen_sc *sc, struct gen_inport **out, size_t *n_out)
{
	const struct model *m = sc->g.m;
	struct gen_inport *v = NULL;
	size_t i, j, k, n = 0, cap = 0;
	int pass, rc = 0;
	bool by_labels;

	*out = NULL;
	*n_out = 0;
	if (sc->scope->n_ingress) {
		if (!(v = calloc(sc->scope->n_ingress, sizeof(*v))))
			return -ENOMEM;
		for (i = 0; i < sc->scope->n_ingress; i++) {
			const struct gen_sidecar_ingress *in = &sc->scope->ingress[i];
			const char *de = in->default_endpoint, *colon = de ? strrchr(de, ':') : NULL;

			v[n].port = in->port;
			v[n].protocol = in->protocol ? in->protocol : "TCP";
			v[n].endpoint_ip = "127.0.0.1";
			v[n].endpoint_port = in->port;
			v[n].bind = in->bind && in->bind[0] ? in->bind : NULL;
			v[n].bound = in->capture_none;
			if (de && strncmp(de, "unix://", 7) == 0) {
				/* Istio sends a unix:// endpoint as an Envoy pipe;
				 * meshproxy connects to IP endpoints only and would
				 * NACK the whole update: the port is not served (the
				 * Sidecar's validation warns of it too) */
				gen__note(&sc->g, GEN_NOTE_WARN, "xds",
					  "sidecar: ingress port %u with defaultEndpoint %s is not served: meshproxy "
					  "connects to IP endpoints only", in->port, de);
				continue;
			}
			if (colon && colon[1]) {
				/* "[::1]:8080": the address without its brackets */
				bool br = de[0] == '[' && colon > de + 1 && colon[-1] == ']';
				char *ip = br ? arena_strndup(sc->a, de + 1, (size_t)(colon - de - 2))
					      : arena_strndup(sc->a, de, (size_t)(colon - de));

				if (!ip) {
					rc = -ENOMEM;
					goto out;
				}
				/* Istio: 0.0.0.0 in defaultEndpoint means the instance's
				 * IPv4 address, :: its IPv6 one (else ::1).  An empty host
				 * (":8080", which validation allows) is ORIGINAL_DST in
				 * Istio; meshd's inbound cluster is STATIC: localhost. */
				if (!ip[0])
					ip = "127.0.0.1";
				if (strcmp(ip, "::") == 0)
					ip = sc->node->ip && strchr(sc->node->ip, ':') ? (char *)sc->node->ip : "::1";
				v[n].endpoint_ip = strcmp(ip, "0.0.0.0") == 0 && sc->node->ip ? sc->node->ip : ip;
				v[n].endpoint_port = (uint32_t)strtoul(colon + 1, NULL, 10);
			}
			n++;
		}
		goto sort;
	}
	for (i = 0; i < m->n_services; i++)
		cap += m->services[i].n_ports;
	if (cap > GEN_SIDECAR_MAX_PORTS)
		cap = GEN_SIDECAR_MAX_PORTS;
	if (cap && !(v = calloc(cap, sizeof(*v))))
		return -ENOMEM;
	/* pass 0: by labels; pass 1: by IP, only for a node without labels */
	by_labels = gen__workload_labels(sc->w)->n > 0;
	for (pass = by_labels ? 0 : 1; pass < (by_labels ? 1 : 2) && n == 0; pass++) {
		for (i = 0; i < m->n_services; i++) {
			const struct model_service *svc = &m->services[i];

			for (j = 0; j < svc->n_endpoints; j++) {
				const struct model_endpoint *e = &svc->endpoints[j];

				if (!gen_is_workload(sc, e, pass == 1))
					continue;
				for (k = 0; k < svc->n_ports && n < cap; k++) {
					const struct model_port *mp = &svc->ports[k];
					uint32_t tp = e->ports && e->ports[k] ? e->ports[k]
									      : (mp->target_port ? mp->target_port : mp->number);
					size_t q;

					for (q = 0; q < n && v[q].port != tp; q++)
						;
					if (q < n) {
						/* the first service's port stands; another
						 * protocol from another service is istiod's
						 * inbound conflict (reportInboundConflict) */
						if (v[q].svc != svc && !gen_same_protocol(v[q].protocol, mp->protocol))
							gen__conflict(&sc->g, GEN_CONFLICT_INBOUND, NULL);
						continue;
					}
					v[n].port = tp;
					v[n].svc = svc;
					v[n].protocol = mp->protocol;
					v[n].endpoint_ip = "127.0.0.1";
					v[n].endpoint_port = tp;
					n++;
				}
				break;   /* one instance per service */
			}
		}
	}
sort:
	if (n)
		qsort(v, n, sizeof(*v), gen_inport_cmp);
	*out = v;
	*n_out = n;
	v = NULL;
out:
	free(v);
	return rc;
}

/* The server side of mTLS for a sidecar: the certificate and roots over
 * SDS, a client certificate required, ALPN h2 and http/1.1 for HTTP
 * (Istio's inbound ALPN); for TCP also "istio-peer-exchange" first
 * (Istio's ALPNDownstreamWithMxc: issue 14, TCP metadata exchange). */
static Envoy__Config__Core__V3__TransportSocket *gen_inbound_tls(struct arena *a, bool http)
{
	static const char *const alpn[] = { "h2", "http/1.1" };
	static const char *const alpn_mx[] = { "istio-peer-exchange", "h2", "http/1.1" };
	Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);

	if (!d || !(d->common_tls_context = gen__common_tls_sds(a, NULL, 0, http ? alpn : alpn_mx, http ? 2 : 3)) ||
	    !(d->require_client_certificate = gen__bool(a, true)))
		return NULL;
	return gen__tls_socket(a, &d->base);
}

/* The inline route of an inbound HTTP chain (Istio's inbound route
 * config "inbound|PORT||": one virtual host "inbound|http|PORT", domains
 * "*", route "default" to the inbound cluster, no timeout). */
static Envoy__Config__Route__V3__RouteConfiguration *gen_inbound_rc(struct arena *a, const char *cluster, uint32_t port)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = gen__msg(a, &envoy__config__route__v3__route_configuration__descriptor);
	Envoy__Config__Route__V3__VirtualHost *vh = gen__msg(a, &envoy__config__route__v3__virtual_host__descriptor);
	Envoy__Config__Route__V3__Route *r = gen__msg(a, &envoy__config__route__v3__route__descriptor);
	Envoy__Config__Route__V3__RouteMatch *m = gen__msg(a, &envoy__config__route__v3__route_match__descriptor);
	Envoy__Config__Route__V3__RouteAction *ra = gen__msg(a, &envoy__config__route__v3__route_action__descriptor);

	if (!rc || !vh || !r || !m || !ra || !(rc->virtual_hosts = arena_calloc(a, 1, sizeof(*rc->virtual_hosts))) ||
	    !(vh->domains = arena_calloc(a, 1, sizeof(*vh->domains))) ||
	    !(vh->routes = arena_calloc(a, 1, sizeof(*vh->routes))) || !(ra->timeout = gen__duration(a, 0)) ||
	    !(vh->name = arena_printf(a, "inbound|http|%u", port)) || !(rc->validate_clusters = gen__bool(a, false)))
		return NULL;
	m->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	m->prefix = "/";
	ra->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
	ra->cluster = (char *)cluster;
	r->name = "default";
	r->match = m;
	r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
	r->route = ra;
	vh->domains[0] = "*";
	vh->n_domains = 1;
	vh->routes[0] = r;
	vh->n_routes = 1;
	rc->name = (char *)cluster;
	rc->virtual_hosts[0] = vh;
	rc->n_virtual_hosts = 1;
	return rc;
}

/* The filter of one inbound chain: HTTP connection manager with the
 * workload's RBAC filters, or a TCP proxy, to cluster. */
static gen_filter *gen_inbound_filter(struct gen_sc *sc, const struct gen_inport *ip, const char *cluster,
				      const char *chain_name, gen_http_filter **rbac, size_t n_rbac)
{
	struct arena *a = sc->a;
	char *sp;

	if (!gen_protocol_http(ip->protocol))
		return gen_tcp_proxy_logged(a, cluster, &sc->log_in);
	sp = arena_printf(a, "inbound_%s", chain_name);
	if (!sp)
		return NULL;
	return gen__net_filter(a, GEN_HCM_NAME, gen_sidecar_hcm(a, sc, sp, NULL,
							       gen_inbound_rc(a, cluster, ip->port), rbac, n_rbac, true,
							       sc->stats_in));
}

/* chain c with the network filters net in front of its one filter (a TCP
 * chain's RBAC before its TCP proxy, as Istio orders them); c NULL stays NULL. */
static gen_chain *gen_chain_rbac(struct arena *a, gen_chain *c, rbac_net_filter **net, size_t n_net)
{
	gen_filter **v;

	if (!c || !n_net)
		return c;
	v = arena_calloc(a, n_net + c->n_filters, sizeof(*v));
	if (!v)
		return NULL;
	memcpy(v, net, n_net * sizeof(*v));
	memcpy(v + n_net, c->filters, c->n_filters * sizeof(*v));
	c->filters = v;
	c->n_filters += n_net;
	return c;
}

/* The chains of one inbound port, per PeerAuthentication mode as
 * istiod's getFilterChainMatchOptions(): STRICT one TLS chain; PERMISSIVE
 * a TLS chain for Istio's ALPNs and a plaintext one (TCP: also TLS that
 * is not Istio's, passed through as is); DISABLE plaintext only.  All
 * match the destination port; names "0.0.0.0_PORT". */
static int gen_inbound_chains(struct gen_sc *sc, const struct gen_inport *ip, gen_http_filter **rbac, size_t n_rbac,
			      rbac_net_filter **net, size_t n_net, gen_chain **v, size_t *n)
{
	static const char *const istio_alpn[] = { "istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1",
						  "istio-h2" };
	struct arena *a = sc->a;
	bool http = gen_protocol_http(ip->protocol);
	size_t nn = http ? 0 : n_net;
	enum cfg_mtls_mode mode = model_peer_authn(sc->g.m, gen__workload_ns(sc->w), gen__workload_labels(sc->w), ip->port);
	char *cluster = arena_printf(a, "inbound|%u||", ip->port);
	char *name = arena_printf(a, "0.0.0.0_%u", ip->port);

	if (!cluster || !name)
		return -ENOMEM;
	if (mode == CFG_MTLS_STRICT) {
		if (!(v[(*n)++] = gen_chain_rbac(a, gen_chain1(a, name, gen_fcm(a, ip->port, "tls", NULL, 0),
					     gen_inbound_filter(sc, ip, cluster, name, rbac, n_rbac), gen_inbound_tls(a, http)), net, nn)))
			return -ENOMEM;
		return 0;
	}
	if (mode == CFG_MTLS_PERMISSIVE) {
		if (!(v[(*n)++] = gen_chain_rbac(a, gen_chain1(a, name, gen_fcm(a, ip->port, "tls", istio_alpn, 5),
					     gen_inbound_filter(sc, ip, cluster, name, rbac, n_rbac), gen_inbound_tls(a, http)), net, nn)))
			return -ENOMEM;
		if (!http && !(v[(*n)++] = gen_chain_rbac(a, gen_chain1(a, name, gen_fcm(a, ip->port, "tls", NULL, 0),
						      gen_inbound_filter(sc, ip, cluster, name, rbac, n_rbac), NULL), net, nn)))
			return -ENOMEM;
	}
	if (!(v[(*n)++] = gen_chain_rbac(a, gen_chain1(a, name, gen_fcm(a, ip->port, "raw_buffer", NULL, 0),
				     gen_inbound_filter(sc, ip, cluster, name, rbac, n_rbac), NULL), net, nn)))
		return -ENOMEM;
	return 0;
}

/* The filters of the workload before the router: jwt_authn
 * (RequestAuthentication, gen/authn.c) first on HTTP ports, as Istio puts
 * it before RBAC; then the RBAC filters (audit, deny, allow): HTTP filters
 * for its HTTP ports and network filters, compiled for TCP, for its TCP
 * ports (Istio's buildInboundHTTP/TCP authz); dry-run policies as shadow
 * rules. */
static int gen_sidecar_rbac(struct gen_sc *sc, gen_http_filter ***out, size_t *n, rbac_net_filter ***net,
			    size_t *n_net)
{
	rbac_filter *deny = NULL, *allow = NULL, *audit = NULL;
	bool audit_on = sc->g.p->rbac_audit;
	struct rbac_opts http = { .tcp = false, .shadow = audit_on }, tcp = { .tcp = true, .shadow = audit_on };
	gen_http_filter *jwt = NULL, **v;
	int rc;

	rc = rbac_compile_opts(sc->g.m, gen__workload_ns(sc->w), gen__workload_labels(sc->w), sc->g.notes, &http,
			       sc->a, &deny, &allow, audit_on ? &audit : NULL);
	if (rc == 0)
		rc = rbac_http_filters(deny, allow, audit, audit_on, sc->a, out, n);
	if (rc == 0)
		rc = rbac_compile_opts(sc->g.m, gen__workload_ns(sc->w), gen__workload_labels(sc->w), NULL, &tcp,
				       sc->a, &deny, &allow, audit_on ? &audit : NULL);
	if (rc == 0)
		rc = rbac_network_filters(deny, allow, audit, sc->a, net, n_net);
	if (rc == 0)
		rc = authn_jwt_http_filter(sc->g.m, gen__workload_ns(sc->w), gen__workload_labels(sc->w), sc->a, &jwt);
	if (rc == 0 && jwt) {
		v = arena_calloc(sc->a, *n + 1, sizeof(*v));
		if (!v)
			return -ENOMEM;
		v[0] = jwt;
		if (*n)
			memcpy(v + 1, *out, *n * sizeof(*v));
		*out = v;
		(*n)++;
	}
	return rc;
}

/* One bound listener per ingress port whose captureMode is NONE (every
 * port when the whole workload is uncaptured), and virtualInbound with
 * the chains of the other ports unless the workload is uncaptured
 * (Istio's buildInboundListeners(): bindToPort chains get a listener of
 * their own, the rest go to the virtual one). */
static int gen_inbound(struct gen_sc *sc, const struct gen_inport *ports, size_t n_ports)
{
	gen_listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Extensions__Filters__Listener__OriginalDst__V3__OriginalDst od =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__ORIGINAL_DST__V3__ORIGINAL_DST__INIT;
	Envoy__Extensions__Filters__Listener__TlsInspector__V3__TlsInspector ti =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__TLS_INSPECTOR__V3__TLS_INSPECTOR__INIT;
	Envoy__Extensions__Filters__Listener__HttpInspector__V3__HttpInspector hi =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__HTTP_INSPECTOR__V3__HTTP_INSPECTOR__INIT;
	Envoy__Extensions__Filters__Listener__OriginalSrc__V3__OriginalSrc os =
		ENVOY__EXTENSIONS__FILTERS__LISTENER__ORIGINAL_SRC__V3__ORIGINAL_SRC__INIT;
	struct arena *a = sc->a;
	gen_http_filter **rbac = NULL;
	rbac_net_filter **net = NULL;
	gen_chain **chains;
	size_t n_rbac = 0, n_net = 0, n = 0, i;
	bool strict;
	int rc;

	rc = gen_sidecar_rbac(sc, &rbac, &n_rbac, &net, &n_net);
	if (rc < 0)
		return rc;
	chains = arena_calloc(a, 3 * n_ports + 2, sizeof(*chains));
	if (!chains)
		return -ENOMEM;
	{
		/* Istio: an ingress listener binds its port when traffic is
		 * not captured (listener "BIND_PORT") */
		for (i = 0; i < n_ports && rc == 0; i++) {
			gen_listener bl = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
			/* Istio names and binds it by ingress[].bind, 0.0.0.0 unset */
			const char *bind = ports[i].bind ? ports[i].bind : "0.0.0.0";
			size_t k = 0, q;

			if (!sc->scope->capture_none && !ports[i].bound)
				continue;
			bl.name = arena_printf(a, "%s_%u", bind, ports[i].port);
			if (!bl.name)
				return -ENOMEM;
			/* An outbound listener already has this address: under
			 * Istio both are sent, outbound first, and Envoy keeps the
			 * first and rejects the update ("duplicate listener");
			 * meshd keeps the outbound one too, without the NACK, and
			 * says so (Istio's conflict log). */
			for (q = 0; q < sc->n_out_names && strcmp(sc->out_names[q], bl.name) != 0; q++)
				;
			if (q < sc->n_out_names) {
				gen__note(&sc->g, GEN_NOTE_WARN, "xds",
					  "sidecar: conflicting listener %s: the Sidecar's ingress listener (port %u) and an "
					  "outbound listener share the address; the outbound one is kept and the ingress "
					  "one is not served (Envoy under istiod keeps the first of the two)",
					  bl.name, ports[i].port);
				continue;
			}
			rc = gen_inbound_chains(sc, &ports[i], rbac, n_rbac, net, n_net, chains, &k);
			if (rc < 0)
				break;

			if (!(bl.address = gen__addr(a, bind, ports[i].port)) ||
			    !(bl.listener_filters = arena_calloc(a, 1, sizeof(*bl.listener_filters))) ||
			    !(bl.listener_filters[0] = gen__listener_filter(a, "envoy.filters.listener.tls_inspector", &ti.base)))
				return -ENOMEM;
			bl.n_listener_filters = 1;
			bl.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND;
			bl.continue_on_listener_filters_timeout = true;
			bl.filter_chains = chains;
			bl.n_filter_chains = k;
			rc = gen_sc_emit_listener(sc, &bl);
		}
		if (rc < 0 || sc->scope->capture_none)
			return rc;
	}
	if (!(chains[n++] = gen_chain1(a, "virtualInbound-blackhole", gen_fcm(a, GEN_INBOUND_PORT, NULL, NULL, 0),
				       gen_tcp_proxy(a, GEN_BLACKHOLE_CLUSTER), NULL)))
		return -ENOMEM;
	for (i = 0; i < n_ports; i++) {
		if (ports[i].bound)
			continue;
		rc = gen_inbound_chains(sc, &ports[i], rbac, n_rbac, net, n_net, chains, &n);
		if (rc < 0)
			return rc;
	}
	/* anything else addressed to the workload goes to it unchanged
	 * (Istio's passthrough chains "virtualInbound"), still under the
	 * workload's AuthorizationPolicies (network RBAC, as for a TCP port)
	 * and, when its workload-level mode is STRICT, TLS only (istiod's
	 * buildInboundPassthroughChains); without them a port no service
	 * declares was open to every client, in plaintext */
	strict = model_peer_authn(sc->g.m, gen__workload_ns(sc->w), gen__workload_labels(sc->w), 0) ==
		 CFG_MTLS_STRICT;
	if (!(chains[n++] = gen_chain_rbac(a, gen_chain1(a, GEN_VIRTUAL_INBOUND, strict ? gen_fcm(a, 0, "tls", NULL, 0) : NULL,
							 gen_tcp_proxy_logged(a, GEN_INBOUND_PASSTHROUGH, &sc->log_in),
							 strict ? gen_inbound_tls(a, false) : NULL),
					   net, n_net)))
		return -ENOMEM;
	l.name = GEN_VIRTUAL_INBOUND;
	if (!(l.address = gen__addr(a, "0.0.0.0", GEN_INBOUND_PORT)) ||
	    !(l.listener_filters = arena_calloc(a, 4, sizeof(*l.listener_filters))) ||
	    !(l.listener_filters[l.n_listener_filters++] =
		      gen__listener_filter(a, "envoy.filters.listener.original_dst", &od.base)))
		return -ENOMEM;
	/* TPROXY interception (istiod's buildInboundListener and
	 * populateListenerFilters): the listener is transparent and
	 * original_src, right after original_dst, makes the connection to the
	 * application leave from the client's address, marked 1337 so that
	 * the replies are routed back to the proxy (istio-iptables' connmark
	 * and fwmark rules) */
	if (sc->node->tproxy) {
		os.mark = GEN_ORIGINAL_SRC_MARK;
		if (!(l.transparent = gen__bool(a, true)) ||
		    !(l.listener_filters[l.n_listener_filters++] =
			      gen__listener_filter(a, "envoy.filters.listener.original_src", &os.base)))
			return -ENOMEM;
	}
	if (!(l.listener_filters[l.n_listener_filters++] =
		      gen__listener_filter(a, "envoy.filters.listener.tls_inspector", &ti.base)) ||
	    !(l.listener_filters[l.n_listener_filters++] =
		      gen__listener_filter(a, "envoy.filters.listener.http_inspector", &hi.base)))
		return -ENOMEM;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND;
	l.continue_on_listener_filters_timeout = true;
	l.filter_chains = chains;
	l.n_filter_chains = n;
	return gen_sc_emit_listener(sc, &l);
}

/* ---------------------------------------------------------------- special clusters */

static Envoy__Config__Cluster__V3__CircuitBreakers *gen_default_breakers(struct arena *a)
{
	Envoy__Config__Cluster__V3__CircuitBreakers *cb = gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__descriptor);
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__thresholds__descriptor);

	if (!cb || !t || !(cb->thresholds = arena_calloc(a, 1, sizeof(*cb->thresholds))) ||
	    !(t->max_connections = gen__u32(a, UINT32_MAX)) || !(t->max_pending_requests = gen__u32(a, UINT32_MAX)) ||
	    !(t->max_requests = gen__u32(a, UINT32_MAX)) || !(t->max_retries = gen__u32(a, UINT32_MAX)))
		return NULL;
	t->track_remaining = true;
	cb->thresholds[0] = t;
	cb->n_thresholds = 1;
	return cb;
}

/* "inbound|PORT||": STATIC to where the application listens. */
static int gen_inbound_cluster(struct gen_sc *sc, const struct gen_inport *ip)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla =
		gen__msg(sc->a, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor);
	Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le =
		gen__msg(sc->a, &envoy__config__endpoint__v3__locality_lb_endpoints__descriptor);
	Envoy__Config__Endpoint__V3__LbEndpoint *lbe = gen__msg(sc->a, &envoy__config__endpoint__v3__lb_endpoint__descriptor);
	Envoy__Config__Endpoint__V3__Endpoint *ep = gen__msg(sc->a, &envoy__config__endpoint__v3__endpoint__descriptor);
	struct arena *a = sc->a;

	c.name = arena_printf(a, "inbound|%u||", ip->port);
	if (!c.name || !cla || !le || !lbe || !ep || !(ep->address = gen__addr(a, ip->endpoint_ip, ip->endpoint_port)) ||
	    !(le->lb_endpoints = arena_calloc(a, 1, sizeof(*le->lb_endpoints))) ||
	    !(cla->endpoints = arena_calloc(a, 1, sizeof(*cla->endpoints))) ||
	    !(c.connect_timeout = gen__duration(a, gen_mesh_connect_timeout(sc->g.m))) || !(c.circuit_breakers = gen_default_breakers(a)))
		return -ENOMEM;
	lbe->host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
	lbe->endpoint = ep;
	le->lb_endpoints[0] = lbe;
	le->n_lb_endpoints = 1;
	cla->cluster_name = c.name;
	cla->endpoints[0] = le;
	cla->n_endpoints = 1;
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
	c.load_assignment = cla;
	/* Istio's setUpstreamProtocol for inbound: an HTTP2/gRPC port reaches
	 * the application over HTTP/2 (a gRPC server speaks nothing else) */
	if (ip->protocol && (!strcasecmp(ip->protocol, "GRPC") || !strcasecmp(ip->protocol, "HTTP2") ||
			     !strcasecmp(ip->protocol, "GRPC-WEB")) &&
	    gen__h2_options(a, &c) < 0)
		return -ENOMEM;
	return gen__emit(&sc->g, sc->snap, XDS_CLUSTER, c.name, &c.base);
}

/* BlackHoleCluster (STATIC, no endpoints), PassthroughCluster and
 * InboundPassthroughCluster (ORIGINAL_DST, CLUSTER_PROVIDED; HTTP in the
 * protocol the client used), as istiod's cluster builder makes them. */
static int gen_special_clusters(struct gen_sc *sc)
{
	static const char *const names[] = { GEN_BLACKHOLE_CLUSTER, GEN_INBOUND_PASSTHROUGH, GEN_PASSTHROUGH_CLUSTER };
	struct arena *a = sc->a;
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(names) / sizeof(names[0]) && rc == 0; i++) {
		Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;

		c.name = (char *)names[i];
		c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
		if (!(c.connect_timeout = gen__duration(a, gen_mesh_connect_timeout(sc->g.m))))
			return -ENOMEM;
		if (i == 0) {
			c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
		} else {
			Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions hpo =
				ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__INIT;
			Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions__UseDownstreamHttpConfig *ud = gen__msg(
				a, &envoy__extensions__upstreams__http__v3__http_protocol_options__use_downstream_http_config__descriptor);
			Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
				gen__msg(a, &envoy__config__cluster__v3__cluster__typed_extension_protocol_options_entry__descriptor);

			if (!ud || !e ||
			    !(ud->http_protocol_options = gen__msg(a, &envoy__config__core__v3__http1_protocol_options__descriptor)) ||
			    !(ud->http2_protocol_options = gen__msg(a, &envoy__config__core__v3__http2_protocol_options__descriptor)))
				return -ENOMEM;
			hpo.upstream_protocol_options_case =
				ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_USE_DOWNSTREAM_PROTOCOL_CONFIG;
			hpo.use_downstream_protocol_config = ud;
			e->key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
			if (!(e->value = gen__any(a, &hpo.base)) ||
			    !(c.typed_extension_protocol_options = arena_calloc(a, 1, sizeof(*c.typed_extension_protocol_options))) ||
			    !(c.circuit_breakers = gen_default_breakers(a)))
				return -ENOMEM;
			c.typed_extension_protocol_options[0] = e;
			c.n_typed_extension_protocol_options = 1;
			c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST;
			c.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED;
		}
		rc = gen__emit(&sc->g, sc->snap, XDS_CLUSTER, c.name, &c.base);
	}
	return rc;
}

/* ---------------------------------------------------------------- shared groups */

/*
 * The clusters and assignments of one service depend on the model, the
 * profile and the caller's namespace only (gen__dr: the DestinationRule
 * the caller sees; nothing else of the caller is read by cluster.c,
 * endpoint.c or tls.c), not on the workload's labels: workloads of one
 * namespace get the same bytes.  Except EDS under locality load
 * balancing (profile locality_lb), which depends on the proxy's locality
 * (and its failoverPriority label values): such a service's EDS lives in
 * a row keyed by (namespace, gen__eds_variant()), shared by the proxies
 * of that locality; its CDS and every other service stay in the
 * namespace's row.  The cache keeps them per (namespace,
 * service) for one model, so a push builds each once however many
 * sidecar workloads it serves, and their snapshots share the encoded
 * resources.
 *
 * Across models the cache is incremental for endpoint changes only
 * (gen_sc_cache_for): a new model whose shape (gen__model_shape(): every
 * config object but what only carries endpoints, the mesh config, the
 * DNS domain, root namespace and trust domain, the services by name and
 * origin) equals the previous one's differs from it in endpoints alone.
 * Then only the services whose endpoints changed (gen__endpoints_hash())
 * lose their CDS and EDS groups, in every row (CDS too: auto mTLS reads
 * the endpoints' identities, and DNS clusters carry their endpoints); every
 * other group and every route share (route configs read no endpoint) is
 * kept, and rebuilt groups are built only when a workload that sees the
 * service asks.  Any other change empties the cache, as a different
 * profile does.  MESHD_GEN_CACHE_VERIFY (push.c) compares each cached
 * sidecar config with an uncached build, and the golden runner warms a
 * cache with the case before, so a shape that misses an input fails a
 * test.  Rows and route shares no workload used under the previous model
 * are dropped at the switch, so they do not outlive the workloads.
 */
struct gen_sc_group {
	bool valid;
	int rc;                          /* the builder's result (< 0: noted once) */
	struct xds_resource **v;         /* emission order; one reference each */
	size_t n;
	/* In the CDS slot of a namespace's shared row: 1 when the service's
	 * EDS is the same for every proxy of the namespace, -1 when it may
	 * vary, 0 not known yet.  gen__eds_variant() reads the proxy (its
	 * locality and labels) only once a cluster of the service has
	 * locality load balancing, which depends on the namespace's view
	 * (without workload-scoped DestinationRules, as rows are) and the
	 * endpoints: NULL for one proxy is NULL for all, so it is asked
	 * once per service and not once per workload. */
	signed char eds_shared;
};

struct gen_sc_ns {
	char *ns;
	char *variant;                   /* gen__eds_variant(); NULL: shared by the namespace */
	struct gen_sc_group *g;          /* [service][CDS, EDS] */
	bool used;                       /* by a workload since the last model switch */
};

/*
 * Route configs shared by workloads.  A RouteConfiguration "PORT" reads,
 * of the workload: which services it sees (visible[]: its namespace,
 * exportTo, the Sidecar's egress hosts), its outbound policy (the
 * catch-all), its namespace (domains, which VirtualService and
 * DestinationRule it sees, sourceNamespace matches) and its labels, but
 * the labels only through sourceLabels matches (route.c
 * gen_match_applies) and workload-scoped DestinationRules (the
 * consistent-hash policy of a destination, route.c gen_dest_hash).  When
 * the model has neither, workloads with the same namespace, outbound
 * policy and visible set get the same bytes, so one build per push
 * serves them all: 20 workload label sets of one namespace each built a
 * 1,000-virtual-host route config per push before.  Otherwise every
 * workload builds its own, as the uncached path does.
 */
struct gen_sc_route {
	uint32_t port;
	struct xds_resource **v;         /* what the builder emitted; one reference each */
	size_t n;
};

struct gen_sc_routes {
	char *ns;
	enum gen_outbound_policy outbound;
	bool *visible;                   /* [n_services], a copy */
	struct gen_sc_route *r;
	size_t n, cap;
	bool used;                       /* by a workload since the last model switch */
};

struct gen_sidecar_cache {
	const struct model *m;
	uint64_t generation;
	const struct gen_profile *p;
	size_t n_services;
	struct gen_sc_ns *ns;
	size_t n_ns;
	/* what of the model makes output depend on a workload's labels */
	bool ws_dr;                      /* a DestinationRule with a workloadSelector */
	bool source_labels;              /* a VirtualService http match with sourceLabels */
	struct gen_sc_routes *routes;
	size_t n_routes;
	/* the model's shape and per-service endpoint hashes (NULL without
	 * memory: the next model then starts afresh) */
	uint64_t shape;
	uint64_t *ep;
	struct gen_sidecar_cache_stats stats;
};

static void gen_sc_routes_cleanup(struct gen_sc_routes *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		xds_resource_array_unref((const struct xds_resource **)e->r[i].v, e->r[i].n);
	free(e->r);
	free(e->visible);
	free(e->ns);
}

/* The label-dependent inputs of m (see struct gen_sidecar_cache). */
static void gen_sc_label_inputs(const struct model *m, bool *ws_dr, bool *source_labels)
{
	const struct cfg_snapshot *cfg = m->cfg;
	size_t i, j, k;

	*ws_dr = false;
	*source_labels = false;
	if (!cfg)
		return;
	for (i = 0; i < cfg->n_objects[CFG_DESTINATION_RULE] && !*ws_dr; i++)
		*ws_dr = cfg->objects[CFG_DESTINATION_RULE][i]->spec.dr.has_workload_selector;
	/* every VirtualService, delegates included (merged into their roots) */
	for (i = 0; i < cfg->n_objects[CFG_VIRTUAL_SERVICE] && !*source_labels; i++) {
		const struct cfg_virtual_service *vs = &cfg->objects[CFG_VIRTUAL_SERVICE][i]->spec.vs;

		for (j = 0; j < vs->n_http && !*source_labels; j++)
			for (k = 0; k < vs->http[j].n_match && !*source_labels; k++)
				*source_labels = vs->http[j].match[k].source_labels.n > 0;
	}
}

static void gen_sc_ns_cleanup(struct gen_sc_ns *e, size_t n_services)
{
	size_t i;

	for (i = 0; e->g && i < 2 * n_services; i++)
		xds_resource_array_unref((const struct xds_resource **)e->g[i].v, e->g[i].n);
	free(e->g);
	free(e->ns);
	free(e->variant);
}

static void gen_sc_cache_reset(struct gen_sidecar_cache *c)
{
	size_t i;

	for (i = 0; i < c->n_ns; i++)
		gen_sc_ns_cleanup(&c->ns[i], c->n_services);
	free(c->ns);
	c->ns = NULL;
	c->n_ns = 0;
	for (i = 0; i < c->n_routes; i++)
		gen_sc_routes_cleanup(&c->routes[i]);
	free(c->routes);
	c->routes = NULL;
	c->n_routes = 0;
	c->m = NULL;
	free(c->ep);
	c->ep = NULL;
}

/* The previous model differs from the new one in endpoints only (ep: the
 * new per-service hashes): drop the groups of the services whose
 * endpoints changed, and the rows and route shares nobody used. */
static void gen_sc_cache_carry(struct gen_sidecar_cache *c, const uint64_t *ep)
{
	size_t i, j, n;

	for (i = 0, n = 0; i < c->n_ns; i++) {
		if (!c->ns[i].used) {
			gen_sc_ns_cleanup(&c->ns[i], c->n_services);
			continue;
		}
		c->ns[i].used = false;
		c->ns[n++] = c->ns[i];
	}
	c->n_ns = n;
	for (i = 0, n = 0; i < c->n_routes; i++) {
		if (!c->routes[i].used) {
			gen_sc_routes_cleanup(&c->routes[i]);
			continue;
		}
		c->routes[i].used = false;
		c->routes[n++] = c->routes[i];
	}
	c->n_routes = n;
	for (i = 0; i < c->n_services; i++) {
		if (ep[i] == c->ep[i])
			continue;
		c->stats.services_changed++;
		for (j = 0; j < c->n_ns; j++) {
			struct gen_sc_group *g = &c->ns[j].g[2 * i];

			xds_resource_array_unref((const struct xds_resource **)g[0].v, g[0].n);
			xds_resource_array_unref((const struct xds_resource **)g[1].v, g[1].n);
			memset(g, 0, 2 * sizeof(*g));
		}
	}
	c->stats.carried = true;
}


/* Make c the cache of m and p: kept, but for the services whose
 * endpoints changed, when m differs from the previous model in
 * endpoints only; emptied otherwise. */
static void gen_sc_cache_for(struct gen_sidecar_cache *c, const struct model *m, const struct gen_profile *p)
{
	uint64_t shape, *ep;
	size_t i;

	if (c->m == m && c->generation == m->generation && c->p == p && c->n_services == m->n_services)
		return;
	shape = gen__model_shape(m);
	ep = malloc((m->n_services ? m->n_services : 1) * sizeof(*ep));
	for (i = 0; ep && i < m->n_services; i++)
		ep[i] = gen__endpoints_hash(&m->services[i]);
	memset(&c->stats, 0, sizeof(c->stats));
	if (ep && c->m && c->ep && c->p == p && c->n_services == m->n_services && c->shape == shape)
		gen_sc_cache_carry(c, ep);
	else
		gen_sc_cache_reset(c);
	free(c->ep);
	c->ep = ep;
	c->shape = shape;
	c->m = m;
	c->generation = m->generation;
	c->p = p;
	c->n_services = m->n_services;
	gen_sc_label_inputs(m, &c->ws_dr, &c->source_labels);
}

struct gen_sidecar_cache *gen_sidecar_cache_new(void)
{
	return calloc(1, sizeof(struct gen_sidecar_cache));
}

void gen_sidecar_cache_free(struct gen_sidecar_cache *c)
{
	if (!c)
		return;
	gen_sc_cache_reset(c);
	free(c);
}

void gen_sidecar_cache_get_stats(const struct gen_sidecar_cache *c, struct gen_sidecar_cache_stats *out)
{
	if (c)
		*out = c->stats;
	else
		memset(out, 0, sizeof(*out));
}

/* The groups of namespace ns and EDS variant (NULL: the namespace's
 * shared row) for m and p (a new row when needed), or NULL without
 * memory. */
static struct gen_sc_group *gen_sc_cache_row(struct gen_sidecar_cache *c, const struct model *m,
					     const struct gen_profile *p, const char *ns, const char *variant)
{
	struct gen_sc_ns *v;
	size_t i;

	gen_sc_cache_for(c, m, p);
	/* a workload-scoped DestinationRule makes clusters per labels */
	if (c->ws_dr)
		return NULL;
	for (i = 0; i < c->n_ns; i++)
		if (strcmp(c->ns[i].ns, ns) == 0 && (variant ? c->ns[i].variant && strcmp(c->ns[i].variant, variant) == 0 :
							      !c->ns[i].variant)) {
			c->ns[i].used = true;
			return c->ns[i].g;
		}
	v = realloc(c->ns, (c->n_ns + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->ns = v;
	v[c->n_ns].ns = strdup(ns);
	v[c->n_ns].variant = variant ? strdup(variant) : NULL;
	v[c->n_ns].g = calloc(2 * (m->n_services ? m->n_services : 1), sizeof(struct gen_sc_group));
	v[c->n_ns].used = true;
	if (!v[c->n_ns].ns || !v[c->n_ns].g || (variant && !v[c->n_ns].variant)) {
		free(v[c->n_ns].ns);
		free(v[c->n_ns].variant);
		free(v[c->n_ns].g);
		return NULL;
	}
	return v[c->n_ns++].g;
}

/* Build kind k of svc into g (what the builder emitted, in order). */
static int gen_sc_group_build(const struct gen_ctx *gc, const struct model_service *svc, int k,
			      struct gen_sc_group *g)
{
	struct xds_snapshot *tmp = xds_snapshot_new();
	struct arena *a = arena_new(GEN_ARENA_MAX);
	int rc = -ENOMEM;

	if (!tmp || !a)
		goto out; /* not valid: tried again by the next workload */
	rc = gen__builders[k](gc, svc, a, tmp);
	/* keep the unsealed set: the emission order (also what a failed
	 * build emitted before failing, as the uncached path adds it) */
	g->v = tmp->sets[k].v;
	g->n = tmp->sets[k].n;
	memset(&tmp->sets[k], 0, sizeof(tmp->sets[k]));
	g->valid = true;
	g->rc = rc;
out:
	arena_free(a);
	xds_snapshot_unref(tmp);
	return rc;
}

/* The route share of sc's workload in c (a new one when needed), or NULL
 * when its route configs are its own (labels read) or without memory.
 * Call with sc->visible filled. */
static struct gen_sc_routes *gen_sc_routes_find(struct gen_sidecar_cache *c, const struct gen_sc *sc)
{
	const struct model *m = sc->g.m;
	const char *ns = gen__workload_ns(sc->w);
	size_t nv = m->n_services ? m->n_services : 1, i;
	struct gen_sc_routes *v;

	gen_sc_cache_for(c, m, sc->g.p);
	if (c->ws_dr || c->source_labels)
		return NULL;
	for (i = 0; i < c->n_routes; i++)
		if (c->routes[i].outbound == sc->scope->outbound && strcmp(c->routes[i].ns, ns) == 0 &&
		    memcmp(c->routes[i].visible, sc->visible, nv * sizeof(*sc->visible)) == 0) {
			c->routes[i].used = true;
			return &c->routes[i];
		}
	v = realloc(c->routes, (c->n_routes + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->routes = v;
	v += c->n_routes;
	memset(v, 0, sizeof(*v));
	v->ns = strdup(ns);
	v->visible = malloc(nv * sizeof(*sc->visible));
	if (!v->ns || !v->visible) {
		gen_sc_routes_cleanup(v);
		return NULL;
	}
	memcpy(v->visible, sc->visible, nv * sizeof(*sc->visible));
	v->outbound = sc->scope->outbound;
	v->used = true;
	c->n_routes++;
	return v;
}

/* RouteConfiguration "PORT" into sc's snapshot: from its route share when
 * it has one (built there by the first workload that needs it), else
 * built for the workload alone. */
static int gen_route_config_port(struct gen_sc *sc, uint32_t port)
{
	struct gen_sc_routes *rs = sc->routes;
	struct gen_sc_route *e = NULL;
	struct xds_snapshot *tmp;
	size_t i;
	int rc = 0;

	if (!rs)
		return gen_route_config_build(sc, port, sc->snap);
	for (i = 0; i < rs->n && !e; i++)
		if (rs->r[i].port == port)
			e = &rs->r[i];
	if (!e) {
		if (rs->n == rs->cap) {
			size_t cap = rs->cap ? 2 * rs->cap : 4;
			struct gen_sc_route *v = realloc(rs->r, cap * sizeof(*v));

			if (!v)
				return gen_route_config_build(sc, port, sc->snap);
			rs->r = v;
			rs->cap = cap;
		}
		tmp = xds_snapshot_new();
		if (!tmp)
			return -ENOMEM;
		rc = gen_route_config_build(sc, port, tmp);
		if (rc < 0) {
			/* not kept (the next workload tries again); the builder
			 * emits only once it has succeeded, so nothing to add */
			xds_snapshot_unref(tmp);
			return rc;
		}
		e = &rs->r[rs->n++];
		e->port = port;
		sc->c->stats.built[XDS_ROUTE]++;
		e->v = tmp->sets[XDS_ROUTE].v;
		e->n = tmp->sets[XDS_ROUTE].n;
		memset(&tmp->sets[XDS_ROUTE], 0, sizeof(tmp->sets[XDS_ROUTE]));
		xds_snapshot_unref(tmp);
	} else {
		sc->c->stats.reused[XDS_ROUTE]++;
	}
	for (i = 0; i < e->n && rc == 0; i++)
		rc = xds_snapshot_add_ref(sc->snap, XDS_ROUTE, e->v[i]);
	return rc;
}

/* CDS and EDS of service i for sc, from the cache when it has them. */
static int gen_sc_service(struct gen_sc *sc, struct gen_sidecar_cache *c, size_t i)
{
	const struct model *m = sc->g.m;
	struct gen_sc_group *row = c ? gen_sc_cache_row(c, m, sc->g.p, gen__workload_ns(sc->w), NULL) : NULL;
	struct gen_sc_group *eds_row = row;
	const char *variant = NULL;
	size_t j;
	int k, rc = 0;

	/* EDS that depends on the proxy's locality is shared by the
	 * proxies of the same namespace and variant only */
	if (row && row[2 * i].eds_shared <= 0) {
		rc = gen__eds_variant(&sc->g, &m->services[i], sc->a, &variant);
		if (rc < 0)
			return rc;
		if (sc->g.locality)
			row[2 * i].eds_shared = variant ? -1 : 1;
	}
	if (row && variant)
		eds_row = gen_sc_cache_row(c, m, sc->g.p, gen__workload_ns(sc->w), variant);
	if (!eds_row)
		row = NULL;

	if (!row) {
		/* no cache (or no memory for it): build in place, as always */
		struct arena *sa = arena_new(GEN_ARENA_MAX);

		if (!sa)
			return -ENOMEM;
		for (k = XDS_CLUSTER; k <= XDS_ENDPOINT && rc == 0; k++)
			rc = gen__builders[k](&sc->g, &m->services[i], sa, sc->snap);
		arena_free(sa);
		return rc;
	}
	for (k = XDS_CLUSTER; k <= XDS_ENDPOINT && rc == 0; k++) {
		struct gen_sc_group *g = &(k == XDS_ENDPOINT ? eds_row : row)[2 * i + (size_t)(k - XDS_CLUSTER)];

		if (!g->valid) {
			(void)gen_sc_group_build(&sc->g, &m->services[i], k, g);
			c->stats.built[k]++;
		} else {
			c->stats.reused[k]++;
		}
		for (j = 0; j < g->n && rc == 0; j++)
			rc = xds_snapshot_add_ref(sc->snap, (enum xds_type)k, g->v[j]);
		if (rc == 0)
			rc = g->rc;
	}
	return rc;
}

/* ---------------------------------------------------------------- Sidecar object */

int gen_sidecar_scope_from_config(const struct cfg_object *o, enum gen_outbound_policy mesh_default,
				  struct gen_sidecar_scope *out)
{
	const struct cfg_sidecar *cs = &o->spec.sc;
	struct gen_sidecar_ingress *in = NULL;
	struct gen_sidecar_egress_bind *eb = NULL;
	size_t i, n_eb = 0;
	bool any_none = false, any_captured = false;

	memset(out, 0, sizeof(*out));
	out->outbound = mesh_default;
	if (o->kind != CFG_SIDECAR)
		return 0;
	if (cs->n_ingress && !(in = calloc(cs->n_ingress, sizeof(*in))))
		return -ENOMEM;
	for (i = 0; i < cs->n_ingress; i++) {
		const struct cfg_sidecar_ingress *ci = &cs->ingress[i];

		in[i].port = ci->port > 0 && ci->port <= 65535 ? (uint32_t)ci->port : 0;
		in[i].protocol = ci->protocol;
		in[i].name = ci->port_name;
		in[i].bind = ci->bind;
		in[i].default_endpoint = ci->default_endpoint;
		in[i].capture_none = ci->capture_mode == CFG_CAPTURE_NONE;
		any_none |= in[i].capture_none;
		any_captured |= !in[i].capture_none;
	}
	for (i = 0; i < cs->n_egress; i++) {
		const struct cfg_sidecar_egress *ce = &cs->egress[i];

		any_none |= ce->capture_mode == CFG_CAPTURE_NONE;
		any_captured |= ce->capture_mode != CFG_CAPTURE_NONE;
		if (ce->port > 0 && ce->port <= 65535)
			n_eb++;
		else if (ce->port < 0)
			out->catchall_capture_none = ce->capture_mode == CFG_CAPTURE_NONE;
		if (ce->port < 0 && ce->bind && ce->bind[0] && strncmp(ce->bind, "unix://", 7) != 0)
			out->catchall_bind = ce->bind;
	}
	/* Every declared listener NONE: the workload runs without capture
	 * (Istio would still send virtualOutbound/virtualInbound unless the
	 * node's INTERCEPTION_MODE is NONE; meshd reads only TPROXY from it, and a
	 * Sidecar that names no captured listener means the proxy has no
	 * iptables, so it serves no 15001/15006 and binds every port).  A
	 * mix: each listener on its own, the virtual listeners stay. */
	out->capture_none = any_none && !any_captured;
	if (n_eb && !(eb = calloc(n_eb, sizeof(*eb)))) {
		free(in);
		return -ENOMEM;
	}
	for (i = 0, n_eb = 0; eb && i < cs->n_egress; i++) {
		const struct cfg_sidecar_egress *ce = &cs->egress[i];

		if (ce->port > 0 && ce->port <= 65535) {
			eb[n_eb].port = (uint32_t)ce->port;
			eb[n_eb].capture_none = ce->capture_mode == CFG_CAPTURE_NONE;
			eb[n_eb++].bind = ce->bind && ce->bind[0] && strncmp(ce->bind, "unix://", 7) != 0 ? ce->bind : NULL;
		}
	}
	out->egress_binds = eb;
	out->n_egress_binds = n_eb;
	out->ingress = in;
	out->n_ingress = cs->n_ingress;
	/* no egress section: Istio imports every host of every namespace */
	out->egress_hosts = cs->n_egress ? &cs->egress_hosts : NULL;
	if (cs->outbound == CFG_OUTBOUND_ALLOW_ANY)
		out->outbound = GEN_OUTBOUND_ALLOW_ANY;
	else if (cs->outbound == CFG_OUTBOUND_REGISTRY_ONLY)
		out->outbound = GEN_OUTBOUND_REGISTRY_ONLY;
	return 0;
}

void gen_sidecar_scope_cleanup(struct gen_sidecar_scope *s)
{
	if (!s)
		return;
	free((void *)s->ingress);
	free((void *)s->egress_binds);
	s->ingress = NULL;
	s->n_ingress = 0;
	s->egress_binds = NULL;
	s->n_egress_binds = 0;
	s->catchall_bind = NULL;
	s->catchall_capture_none = false;
	s->capture_none = false;
}

/* ---------------------------------------------------------------- entry */

int gen_sidecar_snapshot(const struct model *m, const struct gen_profile *p, const struct gen_workload *w,
			 const struct gen_node *node, const struct gen_notes *notes, struct xds_snapshot **out)
{
	return gen_sidecar_snapshot_cached(NULL, m, p, w, node, notes, out);
}

int gen_sidecar_snapshot_cached(struct gen_sidecar_cache *c, const struct model *m, const struct gen_profile *p,
				const struct gen_workload *w, const struct gen_node *node,
				const struct gen_notes *notes, struct xds_snapshot **out)
{
	/* without a Sidecar: every service, unknown hosts as the mesh config says */
	static const struct gen_sidecar_scope no_scope = { .outbound = GEN_OUTBOUND_ALLOW_ANY };
	static const struct gen_sidecar_scope no_scope_registry = { .outbound = GEN_OUTBOUND_REGISTRY_ONLY };
	static const struct gen_workload no_workload;
	static const struct gen_node no_node;
	struct gen_sc sc = { 0 };
	struct gen_inport *inports = NULL;
	size_t n_in = 0, i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!w)
		w = &no_workload;
	sc.g.m = m;
	sc.g.p = p;
	sc.g.notes = notes;
	sc.g.caller = w;
	sc.w = w;
	sc.node = node ? node : &no_node;
	sc.scope = sc.node->scope ? sc.node->scope :
		   gen_mesh_outbound(m) == GEN_OUTBOUND_REGISTRY_ONLY ? &no_scope_registry : &no_scope;
	sc.snap = xds_snapshot_new();
	sc.a = arena_new(GEN_SIDECAR_ARENA_MAX);
	sc.visible = calloc(m->n_services ? m->n_services : 1, sizeof(*sc.visible));
	if (!sc.snap || !sc.a || !sc.visible)
		goto out;
	/* the proxy's locality, for locality load balancing in EDS */
	if (p->locality_lb && !(sc.g.locality = gen__proxy_locality(sc.node, w, sc.a)))
		goto out;
	/* issue 14: the workload's Telemetry, merged once: its metrics (one
	 * config per direction), access logs and tracing */
	rc = gen__telemetry(m, w, &sc.tel);
	if (rc == 0)
		rc = gen__stats_config(sc.a, sc.tel, GEN_STATS_OUTBOUND, &sc.stats_out);
	if (rc == 0)
		rc = gen__stats_config(sc.a, sc.tel, GEN_STATS_INBOUND, &sc.stats_in);
	if (rc == 0)
		rc = gen__workload_access_logs(sc.a, m, sc.tel, &sc.log_out, &sc.log_in);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	if (sc.g.locality && !sc.g.locality[0])
		sc.g.locality = gen_instance_locality(&sc);
	for (i = 0; i < m->n_services; i++)
		sc.visible[i] = gen_visible(&sc, &m->services[i]);
	sc.c = c;
	if (c)
		sc.routes = gen_sc_routes_find(c, &sc);

	/* CDS, EDS per visible service, one arena each (as gen_snapshot) */
	rc = 0;
	for (i = 0; i < m->n_services && rc == 0; i++) {
		if (!sc.visible[i])
			continue;
		rc = gen_sc_service(&sc, c, i);
		if (rc < 0)
			gen__note(&sc.g, GEN_NOTE_ERROR, "xds", "%s config for %s: %s", p->name, m->services[i].hostname,
				  mesh_strerror(rc));
	}
	if (rc == 0)
		rc = gen_outbound(&sc);
	if (rc == 0 && !sc.scope->capture_none)
		rc = gen_virtual_outbound(&sc);
	if (rc == 0)
		rc = gen_inports(&sc, &inports, &n_in);
	if (rc == 0)
		rc = gen_inbound(&sc, inports, n_in);
	for (i = 0; i < n_in && rc == 0; i++)
		rc = gen_inbound_cluster(&sc, &inports[i]);
	if (rc == 0)
		rc = gen_special_clusters(&sc);
	if (rc < 0)
		goto out;
	sc.snap->model_generation = m->generation;
	xds_snapshot_seal(sc.snap);
	*out = sc.snap;
	sc.snap = NULL;
out:
	model_telemetry_free(sc.tel);
	free(inports);
	free(sc.visible);
	arena_free(sc.a);
	xds_snapshot_unref(sc.snap);
	return rc;
}
