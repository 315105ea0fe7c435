/*
 * inbound.c - the inbound Listener of xDS-enabled servers.
 *
 * A gRPC server created with xds=True asks LDS for
 * "xds.istio.io/grpc/lds/inbound/IP:PORT".  What it gets depends on the
 * workload (PeerAuthentication and AuthorizationPolicy select workloads by
 * namespace and labels), so the ADS server builds it per proxy through
 * gen_inbound_listener() instead of taking it from the shared snapshot.
 * The shape follows Istio's grpcgen: the listener's address is the one in
 * the name; one filter chain without a match (gRPC 1.51 ignores chains
 * that match on destination_port and cannot tell TLS from plaintext on one
 * port); its one filter is an HttpConnectionManager with an inline route
 * configuration (virtual host "inbound|http|PORT", domains "*", prefix "/"
 * with non_forwarding_action, which gRPC requires of servers) and the http
 * filters RBAC audit (when the profile has rbac_audit), RBAC deny, RBAC
 * allow, router (last, as gRPC requires); with mTLS (gen_server_mtls) the
 * chain carries a DownstreamTlsContext (tls.c) that requires a client
 * certificate signed by the "default" provider's roots.
 *
 * Istio answers only for ports of a service instance it knows for the
 * proxy; meshd answers for any port, keying port-level PeerAuthentication
 * by the port the server listens on (the workload's target port), so a
 * server whose endpoint is not registered yet still gets its workload's
 * policy rather than no listener at all (gRPC would not serve then).
 *
 * Everything here is a pure function of the model, the profile and the
 * workload.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/gen/rbac.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Longest "IP:PORT" accepted after the prefix. */
#define GEN_INBOUND_ADDR_MAX 128
/* Bytes one inbound listener may allocate while it is built. */
#define GEN_INBOUND_ARENA_MAX (8u << 20)

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter gen_http_filter;

/* ---------------------------------------------------------------- inbound listener */

/* Split "IP:PORT" or "[IPv6]:PORT" into host (brackets dropped, copied into
 * host[cap]) and port.  Returns 0 or -ENOENT. */
static int gen_split_addr(const char *s, char *host, size_t cap, uint32_t *port)
{
	const char *colon, *h = s, *he;
	char *end;
	unsigned long p;

	if (strlen(s) >= GEN_INBOUND_ADDR_MAX)
		return -ENOENT;
	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -ENOENT;
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -ENOENT; /* IPv6 without brackets */
		he = colon;
	}
	if (he == h || (size_t)(he - h) >= cap)
		return -ENOENT;
	if (colon[1] < '0' || colon[1] > '9')
		return -ENOENT;
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535)
		return -ENOENT;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (uint32_t)p;
	return 0;
}

/* The HttpFilters an inbound HCM runs: RBAC audit, deny, allow (from the
 * AuthorizationPolicies selecting the workload; gRPC 1.51 knows no LOG
 * action, so AUDIT policies are left out unless the profile has
 * rbac_audit), then the router. */
static int gen_inbound_filters(const struct gen_ctx *g, const struct gen_workload *w, struct arena *a,
			       gen_http_filter ***out, size_t *n)
{
	bool audit_on = g->p->rbac_audit;
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	rbac_filter *deny = NULL, *allow = NULL, *audit = NULL;
	gen_http_filter **rbac = NULL, **v, *r;
	size_t n_rbac = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = rbac_compile(g->m, gen__workload_ns(w), gen__workload_labels(w), g->notes, a, &deny, &allow,
			  audit_on ? &audit : NULL);
	if (rc == 0)
		rc = rbac_http_filters(deny, allow, audit, audit_on, a, &rbac, &n_rbac);
	if (rc < 0)
		return rc;
	v = arena_calloc(a, n_rbac + 1, sizeof(*v));
	r = gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor);
	if (!v || !r)
		return -ENOMEM;
	r->name = GEN_ROUTER_FILTER;
	r->config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	r->typed_config = gen__any(a, &router.base);
	if (!r->typed_config)
		return -ENOMEM;
	if (n_rbac)
		memcpy(v, rbac, n_rbac * sizeof(*v));
	v[n_rbac] = r;          /* router last: gRPC 1.51 requires it */
	*out = v;
	*n = n_rbac + 1;
	return 0;
}

static Google__Protobuf__Any *gen_inbound_hcm(const struct gen_ctx *g, const struct gen_workload *w, uint32_t port,
					      struct arena *a, int *rc)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Config__Route__V3__RouteConfiguration rc_cfg = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	Envoy__Config__Route__V3__VirtualHost vh = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__INIT;
	Envoy__Config__Route__V3__Route route = ENVOY__CONFIG__ROUTE__V3__ROUTE__INIT;
	Envoy__Config__Route__V3__RouteMatch match = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__INIT;
	Envoy__Config__Route__V3__NonForwardingAction nfa = ENVOY__CONFIG__ROUTE__V3__NON_FORWARDING_ACTION__INIT;
	Envoy__Config__Route__V3__VirtualHost *vhs[1] = { &vh };
	Envoy__Config__Route__V3__Route *routes[1] = { &route };
	char *domains[1] = { "*" };
	Google__Protobuf__Any *any;

	*rc = gen_inbound_filters(g, w, a, &hcm.http_filters, &hcm.n_http_filters);
	if (*rc < 0)
		return NULL;
	match.path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	match.prefix = "/";
	route.match = &match;
	route.action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_NON_FORWARDING_ACTION;
	route.non_forwarding_action = &nfa;
	vh.name = arena_printf(a, "inbound|http|%u", port);
	vh.domains = domains;
	vh.n_domains = 1;
	vh.routes = routes;
	vh.n_routes = 1;
	rc_cfg.name = "inbound";
	rc_cfg.virtual_hosts = vhs;
	rc_cfg.n_virtual_hosts = 1;
	hcm.stat_prefix = "inbound";
	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG;
	hcm.route_config = &rc_cfg;
	any = vh.name ? gen__any(a, &hcm.base) : NULL;
	*rc = any ? 0 : -ENOMEM;
	return any;
}

int gen_inbound_listener(const struct model *m, const struct gen_profile *p, const struct gen_workload *w,
			 const char *name, const struct gen_notes *notes, uint8_t **data, size_t *len)
{
	struct gen_ctx g = { .m = m, .p = p, .notes = notes, .caller = w };
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Core__V3__Address addr = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
	Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	Envoy__Config__Listener__V3__Filter f = ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
	Envoy__Config__Listener__V3__FilterChain *chains[1] = { &fc };
	Envoy__Config__Listener__V3__Filter *filters[1] = { &f };
	char host[GEN_INBOUND_ADDR_MAX];
	struct arena *a = NULL;
	uint32_t port;
	bool mtls;
	size_t n;
	int rc;

	*data = NULL;
	*len = 0;
	if (strncmp(name, GEN_GRPC_INBOUND_PREFIX, strlen(GEN_GRPC_INBOUND_PREFIX)) != 0)
		return -ENOENT;
	rc = gen_split_addr(name + strlen(GEN_GRPC_INBOUND_PREFIX), host, sizeof(host), &port);
	if (rc < 0)
		goto out;
	a = arena_new(GEN_INBOUND_ARENA_MAX);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	mtls = gen_server_mtls(m, p, w, port);

	sa.address = host;
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = port;
	addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	addr.socket_address = &sa;

	f.name = "inbound-hcm";
	f.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f.typed_config = gen_inbound_hcm(&g, w, port, a, &rc);
	if (!f.typed_config)
		goto out;
	fc.name = mtls ? "inbound-mtls" : "inbound-plaintext";
	fc.filters = filters;
	fc.n_filters = 1;
	if (mtls && !(fc.transport_socket = gen__downstream_tls(a))) {
		rc = -ENOMEM;
		goto out;
	}
	l.name = (char *)name;
	l.address = &addr;
	l.filter_chains = chains;
	l.n_filter_chains = 1;

	n = protobuf_c_message_get_packed_size(&l.base);
	if (n > GEN_RESOURCE_MAX) {
		rc = -MESH_ETOOBIG;
		goto out;
	}
	*data = malloc(n ? n : 1);
	if (!*data) {
		rc = -ENOMEM;
		goto out;
	}
	protobuf_c_message_pack(&l.base, *data);
	*len = n;
	rc = 0;
out:
	arena_free(a);
	return rc;
}

int gen_grpc_inbound_listener(const struct model *m, const struct gen_workload *w, const char *name,
			      uint8_t **data, size_t *len)
{
	return gen_inbound_listener(m, &gen_profile_proxyless, w, name, NULL, data, len);
}
