/*
 * gateway.c - everything one router (gateway) proxy receives
 * (gen_gateway_snapshot), as istiod's gateway generator builds it
 * (pilot/pkg/networking/core/gateway.go buildGatewayListeners,
 * buildGatewayHTTPRouteConfig, createGatewayHTTPFilterChainOpts,
 * buildGatewayListenerTLSContext; pilot/pkg/model/gateway.go
 * mergeGateways; listener.go buildGatewayListener, BuildListenerTLSContext):
 *
 *  - the Gateways selecting the router (model/gateway.h) are merged per
 *    listener "BIND_PORT" (bind 0.0.0.0 unless the server says): plaintext
 *    HTTP servers of one port share one chain and the route config
 *    "http.PORT"; TLS servers of one port get a chain each, matched by SNI
 *    (their hosts, no server_names for "*"), HTTPS ones terminating TLS
 *    with an HTTP connection manager on "https.PORT.PORTNAME.GATEWAY.NS";
 *    PASSTHROUGH servers a TCP proxy chain per tls route match (its
 *    sniHosts); AUTO_PASSTHROUGH a chain per service port matched by the
 *    SNI "outbound_.PORT_._.HOST" (and per subset) to that cluster; TCP
 *    servers (and TLS-terminating non-HTTP ones) a TCP proxy from the first
 *    matching tcp route.  A server that conflicts with one merged before
 *    it (plaintext beside TLS on a port, HTTP beside TCP, an SNI host or an
 *    HTTPS route name twice) is left out with a note, as istiod skips it.
 *    A listener with no chain is not sent.
 *  - RDS: per route config, the VirtualServices bound to each server's
 *    Gateway (visible to the router's namespace), their routes built by
 *    the shared route builder (gen__gateway_routes) under the virtual
 *    hosts "HOST:PORT" of the intersection of their hosts with the
 *    server's; routes of several VirtualServices for one host appended in
 *    order; require_tls ALL for httpsRedirect servers (and a virtual host
 *    for each of their hosts nothing bound); nothing at all: the
 *    "blackhole:PORT" virtual host for "*" with no route (a 404).
 *  - CDS / EDS: the outbound clusters of every service the router sees
 *    (Istio gives gateways every service, FilterGatewayClusterConfig being
 *    off by default), built by the sidecar generator's shared builders
 *    for the router's namespace (auto mTLS to sidecars by
 *    transport_socket_matches), BlackHoleCluster, and for AUTO_PASSTHROUGH
 *    the SNI-DNAT clusters "outbound_.PORT_.SUBSET_.HOST" (the outbound
 *    cluster without TLS).
 *
 * One arena for the router's own resources.  Pure: no I/O, no clocks.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/gateway.h"
#include "controlplane/model/policy.h"
#include "controlplane/model/telemetry.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef Envoy__Config__Listener__V3__Listener gw_listener_msg;
typedef Envoy__Config__Listener__V3__FilterChain gw_chain;
typedef Envoy__Config__Listener__V3__Filter gw_filter;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager gw_hcm;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter gw_http_filter;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext gw_common_tls;
typedef Envoy__Config__Route__V3__VirtualHost gw_vhost;

#define GW_HCM_NAME        "envoy.filters.network.http_connection_manager"
#define GW_TCP_PROXY_NAME  "envoy.filters.network.tcp_proxy"
#define GW_TLS_INSPECTOR   "envoy.filters.listener.tls_inspector"
/* Bytes the router's own resources may allocate. */
#define GW_ARENA_MAX       (256u << 20)
/* Gateways, servers and VirtualServices considered for one router. */
#define GW_MAX_GATEWAYS    1024
#define GW_MAX_SERVERS     4096
#define GW_MAX_VS          4096
#define GW_MAX_HOSTS       1024
/* Virtual host domains one VirtualService may get on one server: the
 * hosts array above grows to this (a Gateway with thousands of hosts got
 * only its first 1024, the rest 404 with no word, gwbrk); past it a
 * warning names what is left out. */
#define GW_MAX_HOSTS_HARD  65536
/* Istio's gateway transport_socket_connect_timeout (listener.go). */
#define GW_TLS_CONNECT_TIMEOUT_NS (15LL * 1000000000LL)
/* istiod's secret names (pilot/pkg/credentials, security/model). */
#define GW_CRED_PREFIX     "kubernetes://"
#define GW_CACERT_SUFFIX   "-cacert"
/* route.DefaultMaxDirectResponseBodySizeBytes */
#define GW_MAX_DIRECT_BODY (1u << 20)

/* One Gateway server as merged for the router. */
struct gw_server {
	const struct cfg_object *gw;
	const struct cfg_gw_server *s;
	char *gateway;               /* "ns/name" */
	char *route;                 /* RDS name; NULL: not an HTTP(S)-terminating server */
	uint32_t lport;              /* the port listened on (resolvePorts: the Service's targetPort) */
};

/* One listener "BIND_PORT" and the servers merged into it, in order. */
struct gw_lis {
	uint32_t port;
	const char *bind;
	char *name;
	bool plaintext;              /* its first server is not a TLS server */
	struct gw_server **v;
	size_t n;
};

struct gw_gen {
	struct gen_ctx g;
	const struct gen_workload *w;
	const struct gen_node *node;  /* NULL: unknown */
	const char *ns;              /* the router's namespace */
	struct arena *a;
	struct xds_snapshot *snap;
	struct gw_server *servers;
	size_t n_servers;
	struct gw_lis *lis;
	size_t n_lis;
	/* (port, SNI host, bind) of TLS servers, for istiod's duplicate check */
	struct gw_sni { uint32_t port; const char *host, *bind; } *sni;
	size_t n_sni;
	bool auto_passthrough;
	/* issue 14: the istio.stats configuration (gateway class: the
	 * workload's client mode), NULL: no metrics */
	Google__Protobuf__Any *stats;
	struct model_telemetry *tel; /* issue 14: the workload's Telemetry (gen__telemetry) */
};

/* ---------------------------------------------------------------- protocols (Istio's protocol.Instance) */

static bool gw_proto_http(const char *p)
{
	static const char *const http[] = { "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY" };
	size_t i;

	for (i = 0; p && i < sizeof(http) / sizeof(http[0]); i++)
		if (strcasecmp(p, http[i]) == 0)
			return true;
	return false;
}

static bool gw_passthrough(const struct cfg_gw_server *s)
{
	return s->has_tls && (s->tls.mode == CFG_GW_TLS_PASSTHROUGH || s->tls.mode == CFG_GW_TLS_AUTO_PASSTHROUGH);
}

/* gateway.IsTLSServer: a tls block on a non-HTTP port */
static bool gw_tls_server(const struct cfg_gw_server *s)
{
	return s->has_tls && !gw_proto_http(s->protocol);
}

/* gateway.IsHTTPSServerWithTLSTermination */
static bool gw_https_terminating(const struct cfg_gw_server *s)
{
	return s->has_tls && s->protocol && strcasecmp(s->protocol, "HTTPS") == 0 && !gw_passthrough(s);
}

static const char *gw_bind(const struct cfg_gw_server *s)
{
	return s->bind && s->bind[0] ? s->bind : "0.0.0.0";
}

/* ---------------------------------------------------------------- merging (mergeGateways) */

/* Is endpoint e the router (its service target)?  By namespace and labels,
 * or by the node's IP when the node declares no labels (as the sidecar
 * generator finds its workload). */
static bool gw_is_router(const struct gw_gen *gg, const struct model_endpoint *e)
{
	const struct cfg_labels *wl = gen__workload_labels(gg->w);

	if (wl->n == 0)
		return gg->node && gg->node->ip && e->address && strcmp(gg->node->ip, e->address) == 0;
	return e->labels && strcmp(e->ns ? e->ns : "", gg->ns) == 0 && model_labels_match(wl, e->labels);
}

/* resolvePorts for a Gateway selecting by labels (legacyGatewaySelector):
 * the port of the first Service (by host name) of which the router is an
 * endpoint and whose port `number` is the server's: its target port (the
 * endpoint's port), so a Service 80 -> 8080 makes the router listen on
 * 8080; none: the server's port as it is. */
static uint32_t gw_resolve_port(const struct gw_gen *gg, uint32_t number)
{
	const struct model *m = gg->g.m;
	size_t i, j, k;

	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];

		for (k = 0; k < svc->n_ports; k++) {
			if (svc->ports[k].number != number)
				continue;
			for (j = 0; j < svc->n_endpoints; j++) {
				const struct model_endpoint *e = &svc->endpoints[j];

				if (!gw_is_router(gg, e))
					continue;
				if (e->ports && e->ports[k])
					return e->ports[k];
				return svc->ports[k].target_port ? svc->ports[k].target_port : number;
			}
		}
	}
	return number;
}

/* gatewayRDSRouteName: "http.PORT[.BIND]", "https.PORT.PORTNAME.NAME.NS[.BIND]", or NULL */
static char *gw_route_name(struct arena *a, const struct cfg_gw_server *s, uint32_t lport, const struct cfg_object *gw)
{
	const char *bind = s->bind && s->bind[0] ? s->bind : NULL;

	/* http: the port listened on; https: the server's (as istiod) */
	if (gw_proto_http(s->protocol))
		return arena_printf(a, "http.%u%s%s", lport, bind ? "." : "", bind ? bind : "");
	if (gw_https_terminating(s))
		return arena_printf(a, "https.%u.%s.%s.%s%s%s", s->port, s->port_name ? s->port_name : "", gw->name,
				    gw->ns, bind ? "." : "", bind ? bind : "");
	return NULL;
}

/* The SNI host of server host h (its namespace part dropped). */
static const char *gw_sni_host(const char *h)
{
	const char *sl = strchr(h, '/');

	return sl ? sl + 1 : h;
}

/* istiod's CheckDuplicates for a TLS server: 1 when one of its hosts is
 * already served on that port and bind, else its hosts are recorded. */
static int gw_sni_dup(struct gw_gen *gg, const struct cfg_gw_server *s, uint32_t lport, const char **dup)
{
	size_t i, j;

	for (i = 0; i < s->hosts.n; i++)
		for (j = 0; j < gg->n_sni; j++)
			if (gg->sni[j].port == lport && strcmp(gg->sni[j].host, s->hosts.v[i]) == 0 &&
			    strcmp(gg->sni[j].bind, gw_bind(s)) == 0) {
				*dup = s->hosts.v[i];
				return 1;
			}
	for (i = 0; i < s->hosts.n; i++) {
		struct gw_sni *v = arena_calloc(gg->a, gg->n_sni + 1, sizeof(*v));

		if (!v)
			return -ENOMEM;
		if (gg->n_sni)
			memcpy(v, gg->sni, gg->n_sni * sizeof(*v));
		v[gg->n_sni].port = lport;
		v[gg->n_sni].host = s->hosts.v[i];
		v[gg->n_sni].bind = gw_bind(s);
		gg->sni = v;
		gg->n_sni++;
	}
	return 0;
}

static int gw_lis_add(struct gw_gen *gg, struct gw_lis *l, struct gw_server *sv)
{
	struct gw_server **v = arena_calloc(gg->a, l->n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	if (l->n)
		memcpy(v, l->v, l->n * sizeof(*v));
	v[l->n++] = sv;
	l->v = v;
	return 0;
}

/* Merge server s of gateway gw into the router's listeners. */
static int gw_merge_server(struct gw_gen *gg, const struct cfg_object *gw, const struct cfg_gw_server *s)
{
	struct gw_server *sv = &gg->servers[gg->n_servers];
	struct gw_lis *l = NULL;
	const char *dup = NULL;
	size_t i;
	int rc;

	if (s->port == 0 || s->port > 65535)
		return 0;
	sv->gw = gw;
	sv->s = s;
	sv->lport = gw_resolve_port(gg, s->port);
	if (!(sv->gateway = arena_printf(gg->a, "%s/%s", gw->ns, gw->name)))
		return -ENOMEM;
	sv->route = gw_route_name(gg->a, s, sv->lport, gw);
	if ((gw_proto_http(s->protocol) || gw_https_terminating(s)) && !sv->route)
		return -ENOMEM;
	if (s->has_tls) {
		rc = gw_sni_dup(gg, s, sv->lport, &dup);
		if (rc < 0)
			return rc;
		if (rc) {
			gen__note(&gg->g, GEN_NOTE_WARN, "xds", "gateway %s: server on port %u skipped: duplicate host %s",
				  sv->gateway, s->port, dup);
			return 0;
		}
	}
	for (i = 0; i < gg->n_lis && !l; i++)
		if (gg->lis[i].port == sv->lport && strcmp(gg->lis[i].bind, gw_bind(s)) == 0)
			l = &gg->lis[i];
	if (!l) {
		l = &gg->lis[gg->n_lis++];
		l->port = sv->lport;
		l->bind = gw_bind(s);
		l->plaintext = !gw_tls_server(s);
		if (!(l->name = arena_printf(gg->a, "%s_%u", l->bind, l->port)))
			return -ENOMEM;
	} else if (l->plaintext) {
		/* plaintext servers of one port merge only when HTTP (canMergeProtocols) */
		if (gw_tls_server(s) || !gw_proto_http(s->protocol) || !gw_proto_http(l->v[0]->s->protocol)) {
			gen__note(&gg->g, GEN_NOTE_WARN, "xds",
				  "gateway %s: server on port %u (%s) skipped: conflicts with the %s server merged before it",
				  sv->gateway, s->port, s->protocol ? s->protocol : "",
				  l->v[0]->s->protocol ? l->v[0]->s->protocol : "");
			return 0;
		}
	} else {
		if (!gw_tls_server(s)) {
			gen__note(&gg->g, GEN_NOTE_WARN, "xds",
				  "gateway %s: server on port %u skipped: plaintext beside TLS servers", sv->gateway, s->port);
			return 0;
		}
		for (i = 0; sv->route && i < l->n; i++)
			if (l->v[i]->route && strcmp(l->v[i]->route, sv->route) == 0) {
				gen__note(&gg->g, GEN_NOTE_WARN, "xds",
					  "gateway %s: server on port %u skipped: non unique port name for HTTPS port",
					  sv->gateway, s->port);
				return 0;
			}
	}
	if (s->has_tls && s->tls.mode == CFG_GW_TLS_AUTO_PASSTHROUGH)
		gg->auto_passthrough = true;
	gg->n_servers++;
	return gw_lis_add(gg, l, sv);
}

static int gw_merge(struct gw_gen *gg, const struct cfg_object **gws, size_t n_gws)
{
	size_t i, j, total = 0;
	int rc = 0;

	for (i = 0; i < n_gws; i++)
		total += gws[i]->spec.gw.n_servers;
	if (total > GW_MAX_SERVERS)
		return -MESH_ETOOBIG;
	if (total && (!(gg->servers = arena_calloc(gg->a, total, sizeof(*gg->servers))) ||
		      !(gg->lis = arena_calloc(gg->a, total, sizeof(*gg->lis)))))
		return -ENOMEM;
	for (i = 0; i < n_gws && rc == 0; i++)
		for (j = 0; j < gws[i]->spec.gw.n_servers && rc == 0; j++)
			rc = gw_merge_server(gg, gws[i], &gws[i]->spec.gw.servers[j]);
	return rc;
}

/* ---------------------------------------------------------------- small builders */

/*
 * The gateway's HTTP connection manager: buildHTTPConnectionManager's
 * common settings as the sidecar gets them (codec AUTO, RDS over ADS
 * with initial_fetch_timeout 0s, fault, cors, router; path normalisation
 * from MeshConfig; websocket upgrades; stream_idle_timeout 0s;
 * 100-continue; tracing and access log from MeshConfig) with
 * buildGatewayConnectionManager's: use_remote_address true,
 * xff_num_trusted_hops 0, x-forwarded-client-cert SANITIZE_SET with
 * subject, cert, DNS and URI, empty http_protocol_options.
 */
static gw_filter *gw_hcm_filter(struct gw_gen *gg, const char *stat_prefix, const char *rds)
{
	struct arena *a = gg->a;
	const struct model *m = gg->g.m;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault fault = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Http__Cors__V3__Cors cors = ENVOY__EXTENSIONS__FILTERS__HTTP__CORS__V3__CORS__INIT;
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	gw_hcm hcm = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig *ws =
		gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__upgrade_config__descriptor);
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__SetCurrentClientCertDetails *cc =
		gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__set_current_client_cert_details__descriptor);
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds *r =
		gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__rds__descriptor);
	gw_http_filter **f = arena_calloc(a, 4, sizeof(*f));
	size_t n = 0;

	if (!ws || !cc || !r || !f || !(hcm.upgrade_configs = arena_calloc(a, 1, sizeof(*hcm.upgrade_configs))))
		return NULL;
	if (!(f[n++] = gen__http_filter(a, GEN_FAULT_FILTER, &fault.base)) ||
	    !(f[n++] = gen__http_filter(a, GEN_CORS_FILTER, &cors.base)))
		return NULL;
	/* issue 14: Istio's stats plugin right before the router */
	if (gg->stats && !(f[n++] = gen__stats_http_filter(a, gg->stats)))
		return NULL;
	if (!(f[n++] = gen__http_filter(a, GEN_ROUTER_FILTER, &router.base)))
		return NULL;
	hcm.codec_type = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO;
	hcm.stat_prefix = (char *)stat_prefix;
	if (!(r->config_source = gen__ads_source(a)) || !(r->config_source->initial_fetch_timeout = gen__duration(a, 0)))
		return NULL;
	r->route_config_name = (char *)rds;
	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = r;
	hcm.http_filters = f;
	hcm.n_http_filters = n;
	ws->upgrade_type = "websocket";
	hcm.upgrade_configs[0] = ws;
	hcm.n_upgrade_configs = 1;
	if (!(hcm.stream_idle_timeout = gen__duration(a, 0)) || !(hcm.use_remote_address = gen__bool(a, true)) ||
	    !(hcm.normalize_path = gen__bool(a, !m->mesh || m->mesh->path_norm != MESHCFG_PATH_NONE)) ||
	    !(hcm.http_protocol_options = gen__msg(a, &envoy__config__core__v3__http1_protocol_options__descriptor)) ||
	    !(cc->subject = gen__bool(a, true)))
		return NULL;
	hcm.merge_slashes = m->mesh && (m->mesh->path_norm == MESHCFG_PATH_MERGE_SLASHES ||
					m->mesh->path_norm == MESHCFG_PATH_DECODE_AND_MERGE_SLASHES);
	hcm.path_with_escaped_slashes_action =
		m->mesh && m->mesh->path_norm == MESHCFG_PATH_DECODE_AND_MERGE_SLASHES
			? ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_FORWARD
			: ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__KEEP_UNCHANGED;
	hcm.proxy_100_continue = true;
	hcm.xff_num_trusted_hops = 0;
	cc->cert = true;
	cc->dns = true;
	cc->uri = true;
	hcm.forward_client_cert_details =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__SANITIZE_SET;
	hcm.set_current_client_cert_details = cc;
	/* issue 14: the router's Telemetry tracing and access logs (client
	 * spec: istiod's workloadMode(ListenerClassGateway) is CLIENT) */
	{
		struct gen__alogs cl, sv;

		if (gen__tracing(a, &gg->g, gg->w, gg->tel, false, &hcm.tracing) < 0 ||
		    gen__workload_access_logs(a, m, gg->tel, &cl, &sv) < 0)
			return NULL;
		hcm.access_log = cl.v;
		hcm.n_access_log = cl.n;
	}
	return gen__net_filter(a, GW_HCM_NAME, gen__any(a, &hcm.base));
}

/* ---------------------------------------------------------------- TLS (BuildListenerTLSContext) */

static Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *gw_sds(struct arena *a, const char *name)
{
	Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *sc =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__sds_secret_config__descriptor);

	if (!sc || !name || !(sc->sds_config = gen__ads_source(a)))
		return NULL;
	sc->name = (char *)name;
	return sc;
}

static Envoy__Config__Core__V3__DataSource *gw_file(struct arena *a, const char *path)
{
	Envoy__Config__Core__V3__DataSource *d = gen__msg(a, &envoy__config__core__v3__data_source__descriptor);

	if (!d)
		return NULL;
	d->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
	d->filename = (char *)path;
	return d;
}

static Envoy__Type__Matcher__V3__StringMatcher **gw_exact(struct arena *a, const struct cfg_strs *v)
{
	Envoy__Type__Matcher__V3__StringMatcher **out = arena_calloc(a, v->n ? v->n : 1, sizeof(*out));
	size_t i;

	for (i = 0; out && i < v->n; i++) {
		if (!(out[i] = gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor)))
			return NULL;
		out[i]->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		out[i]->exact = v->v[i];
	}
	return out;
}

/* The validation context of a MUTUAL / OPTIONAL_MUTUAL server:
 * subjectAltNames, verifyCertificateSpki / Hash. */
static Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *gw_validation(struct arena *a,
												   const struct cfg_gw_tls *t)
{
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *vc =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__descriptor);

	if (!vc)
		return NULL;
	if (t->subject_alt_names.n) {
		if (!(vc->match_subject_alt_names = gw_exact(a, &t->subject_alt_names)))
			return NULL;
		vc->n_match_subject_alt_names = t->subject_alt_names.n;
	}
	vc->verify_certificate_spki = t->verify_certificate_spki.v;
	vc->n_verify_certificate_spki = t->verify_certificate_spki.n;
	vc->verify_certificate_hash = t->verify_certificate_hash.v;
	vc->n_verify_certificate_hash = t->verify_certificate_hash.n;
	return vc;
}

static Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters__TlsProtocol gw_tls_version(enum cfg_gw_tls_version v)
{
	/* one to one, as Istio's convertTLSProtocol */
	switch (v) {
	case CFG_GW_TLSV1_0: return ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0;
	case CFG_GW_TLSV1_1: return ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1;
	case CFG_GW_TLSV1_2: return ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2;
	case CFG_GW_TLSV1_3: return ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3;
	case CFG_GW_TLS_AUTO:
	default: return ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO;
	}
}

/*
 * The DownstreamTlsContext of a TLS-terminating server: ALPN h2,
 * http/1.1 (util.ALPNHttp; Istio's "istio-peer-exchange", "h2",
 * "http/1.1" for an ISTIO_MUTUAL TCP server); require_client_certificate
 * for MUTUAL and ISTIO_MUTUAL; ISTIO_MUTUAL: the workload certificate
 * "default" and roots "ROOTCA" over SDS with the server's SANs;
 * credentialName (or each of credentialNames): "kubernetes://NAME" over
 * SDS and, for MUTUAL / OPTIONAL_MUTUAL, "kubernetes://NAME-cacert" (of
 * the first name) as the validation context with the SANs, SPKI, hashes
 * and caCrl; otherwise the certificate files (serverCertificate /
 * privateKey, or each of tlsCertificates) as file data sources
 * (caCertificates, else the first tlsCertificates one, as trusted_ca when
 * validating);
 * SIMPLE / MUTUAL / OPTIONAL_MUTUAL: min / max protocol version and
 * cipher suites as tls_params.
 */
static Envoy__Config__Core__V3__TransportSocket *gw_downstream_tls(struct gw_gen *gg, const struct cfg_gw_server *s)
{
	static const char *const alpn_http[] = { "h2", "http/1.1" };
	static const char *const alpn_mx[] = { "istio-peer-exchange", "h2", "http/1.1" };
	struct arena *a = gg->a;
	const struct cfg_gw_tls *t = &s->tls;
	Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);
	gw_common_tls *c;
	bool mutual = t->mode == CFG_GW_TLS_MUTUAL || t->mode == CFG_GW_TLS_ISTIO_MUTUAL;
	bool validate = mutual || t->mode == CFG_GW_TLS_OPTIONAL_MUTUAL;
	bool tcp_mx = t->mode == CFG_GW_TLS_ISTIO_MUTUAL && !gw_proto_http(s->protocol) &&
		      strcasecmp(s->protocol ? s->protocol : "", "HTTPS") != 0;
	const char *const *alpn = tcp_mx ? alpn_mx : alpn_http;
	size_t n_alpn = tcp_mx ? 3 : 2, i;

	if (!d)
		return NULL;
	if (t->mode == CFG_GW_TLS_ISTIO_MUTUAL) {
		char **sans = t->subject_alt_names.v;

		c = gen__common_tls_sds(a, sans, t->subject_alt_names.n, NULL, 0);
		if (!c)
			return NULL;
	} else {
		if (!(c = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__descriptor)))
			return NULL;
		const char *first = t->credential_names.n ? t->credential_names.v[0] : t->credential_name;

		if (first && first[0]) {
			/* credentialName, or credentialNames (RSA and ECDSA): one
			 * SDS certificate each; the CA of the first */
			size_t n = t->credential_names.n ? t->credential_names.n : 1;

			if (!(c->tls_certificate_sds_secret_configs = arena_calloc(a, n, sizeof(*c->tls_certificate_sds_secret_configs))))
				return NULL;
			for (i = 0; i < n; i++)
				if (!(c->tls_certificate_sds_secret_configs[i] = gw_sds(
					      a, arena_printf(a, GW_CRED_PREFIX "%s",
							      t->credential_names.n ? t->credential_names.v[i] : first))))
					return NULL;
			c->n_tls_certificate_sds_secret_configs = n;
			if (validate) {
				Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext *cv = gen__msg(
					a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__descriptor);

				if (!cv || !(cv->default_validation_context = gw_validation(a, t)) ||
				    !(cv->validation_context_sds_secret_config =
					      gw_sds(a, arena_printf(a, GW_CRED_PREFIX "%s" GW_CACERT_SUFFIX, first))))
					return NULL;
				if (t->ca_crl && !(cv->default_validation_context->crl = gw_file(a, t->ca_crl)))
					return NULL;
				c->validation_context_type_case =
					ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
				c->combined_validation_context = cv;
			}
		} else {
			/* serverCertificate / privateKey, or tlsCertificates: files */
			size_t n = t->n_tls_certificates ? t->n_tls_certificates : 1;
			const char *ca = t->ca_certificates;

			if (!ca && t->n_tls_certificates)
				ca = t->tls_certificates[0].ca_certificates;
			if (!(c->tls_certificates = arena_calloc(a, n, sizeof(*c->tls_certificates))))
				return NULL;
			for (i = 0; i < n; i++) {
				Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *tc =
					gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__tls_certificate__descriptor);
				const char *cert = t->n_tls_certificates ? t->tls_certificates[i].server_certificate
									 : t->server_certificate;
				const char *key = t->n_tls_certificates ? t->tls_certificates[i].private_key : t->private_key;

				if (!tc || (cert && !(tc->certificate_chain = gw_file(a, cert))) ||
				    (key && !(tc->private_key = gw_file(a, key))))
					return NULL;
				c->tls_certificates[i] = tc;
			}
			c->n_tls_certificates = n;
			if (validate && ca) {
				Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *vc = gw_validation(a, t);

				if (!vc || !(vc->trusted_ca = gw_file(a, ca)) || (t->ca_crl && !(vc->crl = gw_file(a, t->ca_crl))))
					return NULL;
				c->validation_context_type_case =
					ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
				c->validation_context = vc;
			}
		}
		if (t->min_version != CFG_GW_TLS_AUTO || t->max_version != CFG_GW_TLS_AUTO || t->cipher_suites.n) {
			Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters *tp =
				gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__tls_parameters__descriptor);

			if (!tp)
				return NULL;
			tp->tls_minimum_protocol_version = gw_tls_version(t->min_version);
			tp->tls_maximum_protocol_version = gw_tls_version(t->max_version);
			tp->cipher_suites = t->cipher_suites.v;
			tp->n_cipher_suites = t->cipher_suites.n;
			c->tls_params = tp;
		}
	}
	if (!(c->alpn_protocols = arena_calloc(a, n_alpn, sizeof(*c->alpn_protocols))))
		return NULL;
	for (i = 0; i < n_alpn; i++)
		c->alpn_protocols[i] = (char *)alpn[i];
	c->n_alpn_protocols = n_alpn;
	d->common_tls_context = c;
	if (!(d->require_client_certificate = gen__bool(a, mutual)))
		return NULL;
	return gen__tls_socket(a, &d->base);
}

/* ---------------------------------------------------------------- chains */

static int gw_str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* A filter chain match on SNI hosts (sorted, each once; none when one is
 * "*", as toFilterChainMatch) and ALPNs; NULL *out: match everything. */
static int gw_fcm(struct arena *a, char **hosts, size_t n, const char *const *alpn, size_t n_alpn,
		  Envoy__Config__Listener__V3__FilterChainMatch **out)
{
	Envoy__Config__Listener__V3__FilterChainMatch *m;
	size_t i, k = 0;

	*out = NULL;
	for (i = 0; i < n; i++)
		if (strcmp(hosts[i], "*") == 0)
			n = 0;
	if (n == 0 && n_alpn == 0)
		return 0;
	if (!(m = gen__msg(a, &envoy__config__listener__v3__filter_chain_match__descriptor)))
		return -ENOMEM;
	if (n) {
		if (!(m->server_names = arena_calloc(a, n, sizeof(*m->server_names))))
			return -ENOMEM;
		memcpy(m->server_names, hosts, n * sizeof(*hosts));
		qsort(m->server_names, n, sizeof(*m->server_names), gw_str_cmp);
		for (i = 0; i < n; i++)
			if (k == 0 || strcmp(m->server_names[k - 1], m->server_names[i]) != 0)
				m->server_names[k++] = m->server_names[i];
		m->n_server_names = k;
	}
	if (n_alpn) {
		if (!(m->application_protocols = arena_calloc(a, n_alpn, sizeof(*m->application_protocols))))
			return -ENOMEM;
		for (i = 0; i < n_alpn; i++)
			m->application_protocols[i] = (char *)alpn[i];
		m->n_application_protocols = n_alpn;
	}
	*out = m;
	return 0;
}

/* The server's SNI hosts (GetSNIHostsForServer: the host parts). */
static char **gw_server_sni(struct arena *a, const struct cfg_gw_server *s)
{
	char **v = arena_calloc(a, s->hosts.n ? s->hosts.n : 1, sizeof(*v));
	size_t i;

	for (i = 0; v && i < s->hosts.n; i++)
		v[i] = (char *)gw_sni_host(s->hosts.v[i]);
	return v;
}

static int gw_chain_add(struct gw_gen *gg, gw_listener_msg *l, Envoy__Config__Listener__V3__FilterChainMatch *fm,
			gw_filter *f, Envoy__Config__Core__V3__TransportSocket *ts)
{
	struct arena *a = gg->a;
	gw_chain *c = gen__msg(a, &envoy__config__listener__v3__filter_chain__descriptor);
	gw_chain **v = arena_calloc(a, l->n_filter_chains + 1, sizeof(*v));

	if (!c || !f || !v || !(c->filters = arena_calloc(a, 1, sizeof(*c->filters))) ||
	    !(c->transport_socket_connect_timeout = gen__duration(a, GW_TLS_CONNECT_TIMEOUT_NS)))
		return -ENOMEM;
	c->filter_chain_match = fm;
	c->filters[0] = f;
	c->n_filters = 1;
	c->transport_socket = ts;
	if (l->n_filter_chains)
		memcpy(v, l->filter_chains, l->n_filter_chains * sizeof(*v));
	v[l->n_filter_chains++] = c;
	l->filter_chains = v;
	return 0;
}

/* A TCP proxy over route destinations (buildOutboundNetworkFilters): one
 * cluster, or weighted clusters; port: the destination's, else the
 * service's only port, else the server's. */
static gw_filter *gw_tcp_filter(struct gw_gen *gg, const struct cfg_object *vs, const struct cfg_route_destination *rd,
				size_t n, uint32_t port)
{
	struct arena *a = gg->a;
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	char **names = arena_calloc(a, n ? n : 1, sizeof(*names));
	size_t i;

	if (!names || n == 0)
		return NULL;
	for (i = 0; i < n; i++) {
		char host[GEN_NAME_MAX];
		const struct model_service *svc;
		uint32_t p;

		model_resolve_host(gg->g.m, rd[i].destination.host, vs->ns, host, sizeof(host));
		svc = model_find_service(gg->g.m, host);
		p = rd[i].destination.port > 0 ? gen__clamp_u32(rd[i].destination.port)
		    : svc && svc->n_ports == 1 ? svc->ports[0].number : port;
		if (!(names[i] = gen__cluster_name(a, p, rd[i].destination.subset, host)))
			return NULL;
	}
	if (n == 1) {
		tp.stat_prefix = names[0];
		tp.cluster_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
		tp.cluster = names[0];
	} else {
		Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster *wc =
			gen__msg(a, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__descriptor);

		if (!wc || !(wc->clusters = arena_calloc(a, n, sizeof(*wc->clusters))))
			return NULL;
		for (i = 0; i < n; i++) {
			Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster__ClusterWeight *cw = gen__msg(
				a, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__cluster_weight__descriptor);

			if (!cw)
				return NULL;
			cw->name = names[i];
			cw->weight = rd[i].weight > 0 ? gen__clamp_u32(rd[i].weight) : 1;
			wc->clusters[wc->n_clusters++] = cw;
		}
		/* Istio names the weighted TCP proxy after the listener's
		 * first destination's service */
		tp.stat_prefix = names[0];
		tp.cluster_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS;
		tp.weighted_clusters = wc;
	}
	return gen__net_filter(a, GW_TCP_PROXY_NAME, gen__any(a, &tp.base));
}

/* isPortMatch && isGatewayMatch of an L4 match */
static bool gw_l4_match(int64_t port, const struct cfg_strs *gateways, const struct gw_server *sv, const char *vs_ns)
{
	if (port > 0 && (uint64_t)port != sv->s->port)
		return false;
	return gateways->n == 0 || model_gateways_include(gateways, vs_ns, sv->gateway);
}

/* The VirtualServices bound to sv's Gateway for this router (in a). */
static size_t gw_bound(struct gw_gen *gg, const struct gw_server *sv, const struct cfg_object ***out)
{
	size_t n = model_gateway_virtual_services(gg->g.m, sv->gateway, gg->ns, NULL, 0);

	*out = NULL;
	if (n > GW_MAX_VS)
		n = GW_MAX_VS;
	if (n && !(*out = arena_calloc(gg->a, n, sizeof(**out))))
		return 0;
	return n ? model_gateway_virtual_services(gg->g.m, sv->gateway, gg->ns, *out, n) : 0;
}

/* buildGatewayNetworkFiltersFromTCPRoutes: the first tcp route of the
 * first bound VirtualService with a matching host whose matches apply. */
static gw_filter *gw_tcp_routes(struct gw_gen *gg, const struct gw_server *sv, bool *none)
{
	const struct cfg_object **vss;
	size_t n = gw_bound(gg, sv, &vss), i, j, k;

	*none = true;
	for (i = 0; i < n; i++) {
		const struct cfg_object *vs = vss[i];

		if (!model_gateway_hosts_match(gg->g.m, &sv->s->hosts, sv->gw->ns, vs))
			continue;
		for (j = 0; j < vs->spec.vs.n_tcp; j++) {
			const struct cfg_tcp_route *tr = &vs->spec.vs.tcp[j];
			bool ok = tr->n_match == 0;

			for (k = 0; k < tr->n_match && !ok; k++)
				ok = gw_l4_match(tr->match[k].port, &tr->match[k].gateways, sv, vs->ns);
			if (!ok || tr->n_route == 0)
				continue;
			*none = false;
			return gw_tcp_filter(gg, vs, tr->route, tr->n_route, sv->s->port);
		}
	}
	return NULL;
}

/* buildGatewayNetworkFiltersFromTLSRoutes (PASSTHROUGH): a chain per
 * matching tls route match, its sniHosts as server_names; an SNI set
 * already taken on this listener is skipped (CheckDuplicates). */
static int gw_tls_routes(struct gw_gen *gg, gw_listener_msg *l, const struct gw_server *sv, char ***seen,
			 size_t *n_seen)
{
	const struct cfg_object **vss;
	size_t n = gw_bound(gg, sv, &vss), i, j, k, h, q;
	int rc;

	for (i = 0; i < n; i++) {
		const struct cfg_object *vs = vss[i];

		if (!model_gateway_hosts_match(gg->g.m, &sv->s->hosts, sv->gw->ns, vs))
			continue;
		for (j = 0; j < vs->spec.vs.n_tls; j++) {
			const struct cfg_tls_route *tr = &vs->spec.vs.tls[j];

			if (tr->n_route == 0)
				continue;
			for (k = 0; k < tr->n_match; k++) {
				const struct cfg_tls_match *mt = &tr->match[k];
				Envoy__Config__Listener__V3__FilterChainMatch *fm;
				bool dup = false;
				char **v;

				if (!gw_l4_match(mt->port, &mt->gateways, sv, vs->ns))
					continue;
				for (h = 0; h < mt->sni_hosts.n && !dup; h++)
					for (q = 0; q < *n_seen && !dup; q++)
						dup = strcmp((*seen)[q], mt->sni_hosts.v[h]) == 0;
				if (dup) {
					gen__note(&gg->g, GEN_NOTE_WARN, "xds",
						  "VirtualService %s/%s tls rule %zu on gateway %s port %u skipped: duplicate "
						  "SNI host names", vs->ns, vs->name, j, sv->gateway, sv->s->port);
					continue;
				}
				if (!(v = arena_calloc(gg->a, *n_seen + mt->sni_hosts.n + 1, sizeof(*v))))
					return -ENOMEM;
				if (*n_seen)
					memcpy(v, *seen, *n_seen * sizeof(*v));
				for (h = 0; h < mt->sni_hosts.n; h++)
					v[(*n_seen)++] = mt->sni_hosts.v[h];
				*seen = v;
				rc = gw_fcm(gg->a, mt->sni_hosts.v, mt->sni_hosts.n, NULL, 0, &fm);
				if (rc == 0)
					rc = gw_chain_add(gg, l, fm, gw_tcp_filter(gg, vs, tr->route, tr->n_route, sv->s->port),
							  NULL);
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

/* builtAutoPassthroughFilterChains: per mesh-internal service port whose
 * host one of the server's hosts covers, a chain matched by the SNI
 * "outbound_.PORT_._.HOST" (and per DestinationRule subset) and Istio's
 * mTLS ALPNs, to the SNI-DNAT cluster of that name. */
static int gw_auto_passthrough(struct gw_gen *gg, gw_listener_msg *l, const struct gw_server *sv)
{
	static const char *const alpn[] = { "istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1",
					    "istio-h2" };
	const struct model *m = gg->g.m;
	size_t i, j, h, k;
	int rc;

	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];
		const struct cfg_object *dr;
		bool match = false;

		if (svc->mesh_external || !model_service_visible(m, svc, gg->ns))
			continue;
		for (h = 0; h < sv->s->hosts.n && !match; h++)
			match = cfg_host_covers(gw_sni_host(sv->s->hosts.v[h]), svc->hostname, NULL);
		if (!match)
			continue;
		dr = model_destination_rule_for(m, svc->hostname, gg->ns, gen__workload_labels(gg->w));
		for (j = 0; j < svc->n_ports; j++) {
			const struct model_port *mp = &svc->ports[j];
			size_t n_sub = dr ? dr->spec.dr.n_subsets : 0;

			if (mp->protocol && strcmp(mp->protocol, "UDP") == 0)
				continue;
			for (k = 0; k <= n_sub; k++) {
				const char *subset = k ? dr->spec.dr.subsets[k - 1].name : "";
				Envoy__Config__Listener__V3__FilterChainMatch *fm;
				char *name = arena_printf(gg->a, "outbound_.%u_.%s_.%s", mp->number, subset, svc->hostname);
				Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
					ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;

				if (!name)
					return -ENOMEM;
				rc = gw_fcm(gg->a, &name, 1, alpn, sizeof(alpn) / sizeof(alpn[0]), &fm);
				if (rc < 0)
					return rc;
				tp.stat_prefix = name;
				tp.cluster_specifier_case =
					ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
				tp.cluster = name;
				rc = gw_chain_add(gg, l, fm, gen__net_filter(gg->a, GW_TCP_PROXY_NAME, gen__any(gg->a, &tp.base)),
						  NULL);
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- LDS */

static int gw_listener(struct gw_gen *gg, const struct gw_lis *li)
{
	struct arena *a = gg->a;
	gw_listener_msg l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	char *stat = arena_printf(a, "outbound_%s", li->name);
	char **sni_seen = NULL;
	size_t i, n_seen = 0;
	bool inspector = false;
	int rc = -ENOMEM;

	if (!stat)
		return -ENOMEM;
	l.name = li->name;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	if (!(l.address = gen__addr(a, li->bind, li->port)))
		return -ENOMEM;
	if (li->plaintext) {
		const struct gw_server *sv = li->v[0];

		if (gw_proto_http(sv->s->protocol)) {
			rc = gw_chain_add(gg, &l, NULL, gw_hcm_filter(gg, stat, sv->route), NULL);
		} else {
			bool none;
			gw_filter *f = gw_tcp_routes(gg, sv, &none);

			rc = 0;
			if (f)
				rc = gw_chain_add(gg, &l, NULL, f, NULL);
			else if (!none)
				rc = -ENOMEM;
			else
				gen__note(&gg->g, GEN_NOTE_WARN, "xds", "gateway %s:%u listener missed network filter",
					  sv->gateway, sv->s->port);
		}
		if (rc < 0)
			return rc;
	}
	for (i = 0; !li->plaintext && i < li->n; i++) {
		const struct gw_server *sv = li->v[i];
		Envoy__Config__Listener__V3__FilterChainMatch *fm = NULL;
		Envoy__Config__Core__V3__TransportSocket *ts;
		char **sni = gw_server_sni(a, sv->s);

		if (!sni)
			return -ENOMEM;
		if (sv->s->tls.mode == CFG_GW_TLS_PASSTHROUGH) {
			rc = gw_tls_routes(gg, &l, sv, &sni_seen, &n_seen);
		} else if (sv->s->tls.mode == CFG_GW_TLS_AUTO_PASSTHROUGH) {
			rc = gw_auto_passthrough(gg, &l, sv);
		} else if (gw_https_terminating(sv->s)) {
			if ((rc = gw_fcm(a, sni, sv->s->hosts.n, NULL, 0, &fm)) < 0)
				return rc;
			if (!(ts = gw_downstream_tls(gg, sv->s)))
				return -ENOMEM;
			rc = gw_chain_add(gg, &l, fm,
					  gw_hcm_filter(gg, sv->s->name && sv->s->name[0] ? sv->s->name : stat, sv->route),
					  ts);
		} else {
			bool none;
			gw_filter *f = gw_tcp_routes(gg, sv, &none);

			rc = 0;
			if (f) {
				if ((rc = gw_fcm(a, sni, sv->s->hosts.n, NULL, 0, &fm)) < 0)
					return rc;
				if (!(ts = gw_downstream_tls(gg, sv->s)))
					return -ENOMEM;
				rc = gw_chain_add(gg, &l, fm, f, ts);
			} else if (!none) {
				rc = -ENOMEM;
			} else {
				gen__note(&gg->g, GEN_NOTE_WARN, "xds", "gateway %s:%u listener missed network filter",
					  sv->gateway, sv->s->port);
			}
		}
		if (rc < 0)
			return rc;
	}
	if (l.n_filter_chains == 0) {
		gen__note(&gg->g, GEN_NOTE_WARN, "xds", "gateway listener %s omitted: no filter chain", li->name);
		return 0;
	}
	/* a TLS inspector when a chain matches on SNI or ALPN, or terminates
	 * TLS with ALPN (buildGatewayListener) */
	for (i = 0; i < l.n_filter_chains; i++)
		if (l.filter_chains[i]->filter_chain_match || l.filter_chains[i]->transport_socket)
			inspector = true;
	if (inspector) {
		Envoy__Extensions__Filters__Listener__TlsInspector__V3__TlsInspector ti =
			ENVOY__EXTENSIONS__FILTERS__LISTENER__TLS_INSPECTOR__V3__TLS_INSPECTOR__INIT;
		Envoy__Config__Listener__V3__ListenerFilter *lf = gen__listener_filter(a, GW_TLS_INSPECTOR, &ti.base);

		if (!lf || !(l.listener_filters = arena_calloc(a, 1, sizeof(*l.listener_filters))))
			return -ENOMEM;
		l.listener_filters[0] = lf;
		l.n_listener_filters = 1;
	}
	/* issue 14: istio.stats before each TCP proxy, as the HCMs have it */
	if (gen__stats_chains(a, gg->stats, l.filter_chains, l.n_filter_chains) < 0)
		return -ENOMEM;
	return gen__emit(&gg->g, gg->snap, XDS_LISTENER, l.name, &l.base);
}

/* ---------------------------------------------------------------- RDS */

struct gw_vhosts {
	gw_vhost **v;
	size_t n;
};

static gw_vhost *gw_vhost_find(struct gw_vhosts *vh, const char *host)
{
	size_t i;

	for (i = 0; i < vh->n; i++)
		if (strcasecmp(vh->v[i]->domains[0], host) == 0)
			return vh->v[i];
	return NULL;
}

static gw_vhost *gw_vhost_new(struct gw_gen *gg, struct gw_vhosts *vh, const char *host, uint32_t port)
{
	struct arena *a = gg->a;
	gw_vhost *v = gen__msg(a, &envoy__config__route__v3__virtual_host__descriptor);
	gw_vhost **nv = arena_calloc(a, vh->n + 1, sizeof(*nv));
	char *lc = arena_strdup(a, host);
	size_t i;

	if (!v || !nv || !lc || !(v->domains = arena_calloc(a, 1, sizeof(*v->domains))))
		return NULL;
	for (i = 0; lc[i]; i++)
		if (lc[i] >= 'A' && lc[i] <= 'Z')
			lc[i] = (char)(lc[i] - 'A' + 'a');
	if (!(v->name = arena_printf(a, "%s:%u", lc, port)))
		return NULL;
	v->domains[0] = lc;
	v->n_domains = 1;
	v->include_request_attempt_count = gg->g.p->istio_retry;
	if (vh->n)
		memcpy(nv, vh->v, vh->n * sizeof(*nv));
	nv[vh->n++] = v;
	vh->v = nv;
	return v;
}

static int gw_vhost_append(struct arena *a, gw_vhost *v, Envoy__Config__Route__V3__Route **r, size_t n)
{
	Envoy__Config__Route__V3__Route **nv;

	if (n == 0)
		return 0;
	if (!(nv = arena_calloc(a, v->n_routes + n, sizeof(*nv))))
		return -ENOMEM;
	if (v->n_routes)
		memcpy(nv, v->routes, v->n_routes * sizeof(*nv));
	memcpy(nv + v->n_routes, r, n * sizeof(*nv));
	v->routes = nv;
	v->n_routes += n;
	return 0;
}

/* route.IsCatchAllRoute: prefix "/" (or meshd's "", the same), path
 * separated prefix "/" or regex ".*", no header, query or metadata match */
static bool gw_route_catchall(const Envoy__Config__Route__V3__Route *r)
{
	const Envoy__Config__Route__V3__RouteMatch *m = r->match;
	bool all = false;

	if (!m)
		return false;
	switch (m->path_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
		all = !m->prefix || !strcmp(m->prefix, "/") || !m->prefix[0];
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
		all = m->path_separated_prefix && !strcmp(m->path_separated_prefix, "/");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX:
		all = m->safe_regex && m->safe_regex->regex && !strcmp(m->safe_regex->regex, ".*");
		break;
	default:
		break;
	}
	return all && m->n_headers == 0 && m->n_query_parameters == 0 && m->n_dynamic_metadata == 0;
}

/* route.SortVHostRoutes: catch-all routes last, the others in order. */
static int gw_sort_routes(struct arena *a, gw_vhost *v)
{
	Envoy__Config__Route__V3__Route **nv;
	size_t i, k = 0;

	if (v->n_routes < 2)
		return 0;
	if (!(nv = arena_calloc(a, v->n_routes, sizeof(*nv))))
		return -ENOMEM;
	for (i = 0; i < v->n_routes; i++)
		if (!gw_route_catchall(v->routes[i]))
			nv[k++] = v->routes[i];
	for (i = 0; i < v->n_routes; i++)
		if (gw_route_catchall(v->routes[i]))
			nv[k++] = v->routes[i];
	v->routes = nv;
	return 0;
}

/* collapseDuplicateRoutes (PILOT_ENABLE_ROUTE_COLLAPSE_OPTIMIZATION, on
 * by default): virtual hosts holding the very same routes (the same
 * VirtualService's, same require_tls) become one, named after the first
 * host in order, with every domain. */
static int gw_collapse(struct arena *a, struct gw_vhosts *vh)
{
	size_t i, j, k = 0;

	for (i = 0; i < vh->n; i++) {
		gw_vhost *v = vh->v[i], *into = NULL;

		for (j = 0; j < k && !into; j++) {
			gw_vhost *w = vh->v[j];

			if (w->n_routes == v->n_routes && w->require_tls == v->require_tls &&
			    w->include_request_attempt_count == v->include_request_attempt_count &&
			    (v->n_routes == 0 || memcmp(w->routes, v->routes, v->n_routes * sizeof(*v->routes)) == 0))
				into = w;
		}
		if (into) {
			char **d = arena_calloc(a, into->n_domains + v->n_domains, sizeof(*d));

			if (!d)
				return -ENOMEM;
			memcpy(d, into->domains, into->n_domains * sizeof(*d));
			memcpy(d + into->n_domains, v->domains, v->n_domains * sizeof(*d));
			into->domains = d;
			into->n_domains += v->n_domains;
		} else {
			vh->v[k++] = v;
		}
	}
	vh->n = k;
	return 0;
}

static int gw_vhost_cmp(const void *x, const void *y)
{
	const gw_vhost *a = *(gw_vhost *const *)x, *b = *(gw_vhost *const *)y;

	return strcmp(a->name, b->name);
}

/* Routes built for one (Gateway, VirtualService) in one route config,
 * reused by its other servers as istiod's gatewayRoutes map does (so
 * their virtual hosts hold the same routes and collapse). */
struct gw_built {
	const char *gateway;
	const struct cfg_object *vs;
	Envoy__Config__Route__V3__Route **routes;
	size_t n;
};

/* The route config `name` from the servers of listener li that use it. */
static int gw_route_config(struct gw_gen *gg, const struct gw_lis *li, const char *name)
{
	struct arena *a = gg->a;
	Envoy__Config__Route__V3__RouteConfiguration rc_msg = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	struct gw_vhosts vh = { 0 };
	struct gw_built *built = NULL;
	size_t n_built = 0, b;
	const char **hosts = arena_calloc(a, GW_MAX_HOSTS, sizeof(*hosts));
	size_t i, j, k, n_vs, n_h, cap_h = GW_MAX_HOSTS;
	int rc;

	if (!hosts)
		return -ENOMEM;
	for (i = 0; i < li->n; i++) {
		const struct gw_server *sv = li->v[i];
		const struct cfg_object **vss;
		bool redirect = sv->s->has_tls && sv->s->tls.https_redirect;

		if (!sv->route || strcmp(sv->route, name) != 0)
			continue;
		n_vs = gw_bound(gg, sv, &vss);
		for (j = 0; j < n_vs; j++) {
			Envoy__Config__Route__V3__Route **routes = NULL;
			size_t n_routes = 0;
			bool found = false;

			n_h = model_gateway_hosts(gg->g.m, &sv->s->hosts, sv->gw->ns, vss[j], a, hosts, cap_h);
			if (n_h > cap_h && cap_h < GW_MAX_HOSTS_HARD) {
				/* more than the array holds: once more with room for all
				 * (n_h counts duplicates past the cap: enough) */
				cap_h = n_h < GW_MAX_HOSTS_HARD ? n_h : GW_MAX_HOSTS_HARD;
				if (!(hosts = arena_calloc(a, cap_h, sizeof(*hosts))))
					return -ENOMEM;
				n_h = model_gateway_hosts(gg->g.m, &sv->s->hosts, sv->gw->ns, vss[j], a, hosts, cap_h);
			}
			if (n_h == 0)
				continue;
			if (n_h > cap_h) {
				gen__note(&gg->g, GEN_NOTE_WARN, "xds",
					  "gateway route %s: VirtualService %s/%s has %zu hosts on the server, only the first %zu are served",
					  name, vss[j]->ns, vss[j]->name, n_h, cap_h);
				n_h = cap_h;
			}
			for (b = 0; b < n_built && !found; b++) {
				if (built[b].vs == vss[j] && strcmp(built[b].gateway, sv->gateway) == 0) {
					routes = built[b].routes;
					n_routes = built[b].n;
					found = true;
				}
			}
			if (!found) {
				struct gw_built *nb = arena_calloc(a, n_built + 1, sizeof(*nb));

				rc = gen__gateway_routes(&gg->g, vss[j], sv->s->port, sv->gateway, a, &routes, &n_routes);
				if (rc < 0) {
					gen__note(&gg->g, GEN_NOTE_ERROR, "xds", "gateway route %s for VirtualService %s/%s: %s",
						  name, vss[j]->ns, vss[j]->name, mesh_strerror(rc));
					continue;
				}
				if (!nb)
					return -ENOMEM;
				if (n_built)
					memcpy(nb, built, n_built * sizeof(*nb));
				nb[n_built++] = (struct gw_built){ sv->gateway, vss[j], routes, n_routes };
				built = nb;
			}
			for (k = 0; k < n_h; k++) {
				gw_vhost *v = gw_vhost_find(&vh, hosts[k]);

				if (!v && !(v = gw_vhost_new(gg, &vh, hosts[k], sv->s->port)))
					return -ENOMEM;
				if (gw_vhost_append(a, v, routes, n_routes) < 0)
					return -ENOMEM;
				if (redirect)
					v->require_tls = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL;
			}
		}
		/* an httpsRedirect server's hosts redirect even with nothing bound */
		for (k = 0; redirect && k < sv->s->hosts.n; k++) {
			const char *h = sv->s->hosts.v[k];
			gw_vhost *v = gw_vhost_find(&vh, h);

			if (!v && !(v = gw_vhost_new(gg, &vh, h, sv->s->port)))
				return -ENOMEM;
			v->require_tls = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL;
		}
	}
	if (vh.n == 0) {
		/* nothing bound: "blackhole:PORT" for "*" without routes, a 404 */
		uint32_t port = li->port;
		gw_vhost *v;

		/* the port of the route's first server (servers[0].Port.Number) */
		for (i = li->n; i > 0; i--)
			if (li->v[i - 1]->route && strcmp(li->v[i - 1]->route, name) == 0)
				port = li->v[i - 1]->s->port;
		v = gw_vhost_new(gg, &vh, "*", port);
		if (!v || !(v->name = arena_printf(a, "blackhole:%u", port)))
			return -ENOMEM;
		v->include_request_attempt_count = false;
	}
	/* by host, so that the first host names a collapsed virtual host */
	qsort(vh.v, vh.n, sizeof(*vh.v), gw_vhost_cmp);
	if (gw_collapse(a, &vh) < 0)
		return -ENOMEM;
	for (i = 0; i < vh.n; i++)
		if (gw_sort_routes(a, vh.v[i]) < 0)
			return -ENOMEM;
	rc_msg.name = (char *)name;
	rc_msg.virtual_hosts = vh.v;
	rc_msg.n_virtual_hosts = vh.n;
	rc_msg.ignore_port_in_host_matching = true;
	if (!(rc_msg.validate_clusters = gen__bool(a, false)) ||
	    !(rc_msg.max_direct_response_body_size_bytes = gen__u32(a, GW_MAX_DIRECT_BODY)))
		return -ENOMEM;
	return gen__emit(&gg->g, gg->snap, XDS_ROUTE, name, &rc_msg.base);
}

static int gw_routes(struct gw_gen *gg)
{
	size_t i, j, k;
	int rc = 0;

	for (i = 0; i < gg->n_lis && rc == 0; i++) {
		const struct gw_lis *li = &gg->lis[i];

		for (j = 0; j < li->n && rc == 0; j++) {
			const char *name = li->v[j]->route;
			bool first = name != NULL;

			for (k = 0; k < j && first; k++)
				first = !li->v[k]->route || strcmp(li->v[k]->route, name) != 0;
			if (first)
				rc = gw_route_config(gg, li, name);
		}
	}
	return rc;
}

/* ---------------------------------------------------------------- CDS / EDS */

/* Whether cluster name c is one the router gets of its sidecar build. */
static bool gw_keep_cluster(const char *c)
{
	return strncmp(c, "outbound|", 9) == 0 || strcmp(c, GEN_BLACKHOLE_CLUSTER) == 0;
}

/* The SNI-DNAT cluster of outbound cluster r ("outbound|P|S|H" ->
 * "outbound_.P_.S_.H", no TLS; buildOutboundSniDnatClusters). */
static int gw_sni_dnat(struct gw_gen *gg, const struct xds_resource *r)
{
	Envoy__Config__Cluster__V3__Cluster *c =
		envoy__config__cluster__v3__cluster__unpack(NULL, r->len, r->data);
	Envoy__Config__Core__V3__TransportSocket *ts;
	const struct model_service *svc;
	size_t n_tsm;
	char *name = NULL, *own;
	const char *p = r->name + 9, *s1, *s2;
	int rc = -ENOMEM;

	if (!c)
		return -EINVAL;
	s1 = strchr(p, '|');
	s2 = s1 ? strchr(s1 + 1, '|') : NULL;
	if (!s2) {
		rc = 0;
		goto out;
	}
	/* mesh-internal services only (buildOutboundSniDnatClusters) */
	svc = model_find_service(gg->g.m, s2 + 1);
	if (!svc || svc->mesh_external) {
		rc = 0;
		goto out;
	}
	if (!(name = arena_printf(gg->a, "outbound_.%.*s_.%.*s_.%s", (int)(s1 - p), p, (int)(s2 - s1 - 1), s1 + 1,
				  s2 + 1)))
		goto out;
	/* the endpoints keep their EDS name; TLS is the client's business */
	own = c->eds_cluster_config ? c->eds_cluster_config->service_name : NULL;
	if (c->eds_cluster_config && (!own || !own[0]))
		c->eds_cluster_config->service_name = (char *)r->name;
	/* swapped for the encoding, put back for free_unpacked */
	ts = c->transport_socket;
	n_tsm = c->n_transport_socket_matches;
	p = c->name;
	c->name = name;
	c->transport_socket = NULL;
	c->n_transport_socket_matches = 0;
	rc = gen__emit(&gg->g, gg->snap, XDS_CLUSTER, name, &c->base);
	c->name = (char *)p;
	c->transport_socket = ts;
	c->n_transport_socket_matches = n_tsm;
	if (c->eds_cluster_config)
		c->eds_cluster_config->service_name = own;
out:
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	return rc;
}

/* CDS / EDS of the router: the outbound clusters and BlackHoleCluster of
 * the sidecar build for its namespace (the shared builders), their
 * assignments, and SNI-DNAT clusters under AUTO_PASSTHROUGH. */
static int gw_clusters(struct gw_gen *gg, struct gen_sidecar_cache *c, const struct gen_node *node)
{
	/* every service, the router binds nothing: captureMode NONE, no ingress */
	static const struct gen_sidecar_scope scope = { .outbound = GEN_OUTBOUND_ALLOW_ANY, .capture_none = true };
	struct gen_node n2 = node ? *node : (struct gen_node){ 0 };
	struct xds_snapshot *sc = NULL;
	const struct xds_resource_set *set;
	size_t i;
	int rc;

	n2.scope = &scope;
	rc = gen_sidecar_snapshot_cached(c, gg->g.m, gg->g.p, gg->w, &n2, gg->g.notes, &sc);
	if (rc < 0)
		return rc;
	set = &sc->sets[XDS_CLUSTER];
	for (i = 0; i < set->n && rc == 0; i++) {
		if (!gw_keep_cluster(set->v[i]->name))
			continue;
		rc = xds_snapshot_add_ref(gg->snap, XDS_CLUSTER, set->v[i]);
		if (rc == 0 && gg->auto_passthrough && set->v[i]->name[0] == 'o')
			rc = gw_sni_dnat(gg, set->v[i]);
	}
	set = &sc->sets[XDS_ENDPOINT];
	for (i = 0; i < set->n && rc == 0; i++)
		if (gw_keep_cluster(set->v[i]->name))
			rc = xds_snapshot_add_ref(gg->snap, XDS_ENDPOINT, set->v[i]);
	xds_snapshot_unref(sc);
	return rc;
}

/* ---------------------------------------------------------------- entry */

/* No Gateway selects this router: it gets clusters but no listener, and
 * nothing else would say so (the proxy is SYNCED, its ports simply stay
 * closed).  Name its labels, the first thing to compare with a Gateway's
 * selector. */
static void gw_note_unselected(struct gw_gen *gg)
{
	const struct cfg_labels *l = gen__workload_labels(gg->w);
	char buf[256] = "";
	size_t i, off = 0;
	int n;

	for (i = 0; l && i < l->n && off < sizeof(buf); i++) {
		n = snprintf(buf + off, sizeof(buf) - off, "%s%s=%s", i ? "," : "", l->v[i].key, l->v[i].value);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	gen__note(&gg->g, GEN_NOTE_WARN, "xds",
		  "gateway proxy of namespace %s with labels {%s}: no Gateway's selector matches them, so it gets "
		  "no listener", gg->ns, buf);
}

int gen_gateway_snapshot_cached(struct gen_sidecar_cache *c, const struct model *m, const struct gen_profile *p,
				const struct gen_workload *w, const struct gen_node *node,
				const struct gen_notes *notes, struct xds_snapshot **out)
{
	static const struct gen_workload no_workload;
	struct gw_gen gg = { 0 };
	const struct cfg_object **gws = NULL;
	size_t n_gws, i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!w)
		w = &no_workload;
	gg.g.m = m;
	gg.g.p = p;
	gg.g.notes = notes;
	gg.g.caller = w;
	gg.w = w;
	gg.node = node;
	gg.ns = gen__workload_ns(w);
	gg.snap = xds_snapshot_new();
	gg.a = arena_new(GW_ARENA_MAX);
	if (!gg.snap || !gg.a)
		goto out;
	/* issue 14: the gateway workload's Telemetry, merged once for its
	 * metrics and every HCM's tracing and access logs */
	rc = gen__telemetry(m, w, &gg.tel);
	if (rc == 0)
		rc = gen__stats_config(gg.a, gg.tel, GEN_STATS_GATEWAY, &gg.stats);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	n_gws = model_gateways_for_proxy(m, gg.ns, gen__workload_labels(w), NULL, 0);
	if (n_gws > GW_MAX_GATEWAYS)
		n_gws = GW_MAX_GATEWAYS;
	if (n_gws && !(gws = arena_calloc(gg.a, n_gws, sizeof(*gws))))
		goto out;
	if (n_gws)
		(void)model_gateways_for_proxy(m, gg.ns, gen__workload_labels(w), gws, n_gws);
	else
		gw_note_unselected(&gg);
	rc = gw_merge(&gg, gws, n_gws);
	for (i = 0; i < gg.n_lis && rc == 0; i++)
		rc = gw_listener(&gg, &gg.lis[i]);
	if (rc == 0)
		rc = gw_routes(&gg);
	if (rc == 0)
		rc = gw_clusters(&gg, c, node);
	if (rc < 0) {
		gen__note(&gg.g, GEN_NOTE_ERROR, "xds", "router config for %s: %s", gg.ns, mesh_strerror(rc));
		goto out;
	}
	gg.snap->model_generation = m->generation;
	xds_snapshot_seal(gg.snap);
	*out = gg.snap;
	gg.snap = NULL;
out:
	model_telemetry_free(gg.tel);
	arena_free(gg.a);
	xds_snapshot_unref(gg.snap);
	return rc;
}

int gen_gateway_snapshot(const struct model *m, const struct gen_profile *p, const struct gen_workload *w,
			 const struct gen_node *node, const struct gen_notes *notes, struct xds_snapshot **out)
{
	return gen_gateway_snapshot_cached(NULL, m, p, w, node, notes, out);
}
