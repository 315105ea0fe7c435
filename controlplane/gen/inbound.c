/*
 * gen_grpc_inbound.c - mTLS for proxyless gRPC: PeerAuthentication, the
 * inbound Listener of xDS-enabled gRPC servers, and the TLS contexts both
 * sides share.
 *
 * A gRPC server created with xds=True asks LDS for
 * "xds.istio.io/grpc/lds/inbound/IP:PORT".  What it gets depends on the
 * workload (PeerAuthentication and AuthorizationPolicy select workloads by
 * namespace and labels), so the ADS server builds it per proxy through
 * gen_grpc_inbound_listener() instead of taking it from the shared
 * snapshot.  The shape follows Istio's grpcgen: the listener's address is
 * the one in the name; one filter chain without a match (gRPC 1.51
 * ignores chains that match on destination_port and cannot tell TLS from
 * plaintext on one port); its one filter is an HttpConnectionManager with
 * an inline route configuration (virtual host "inbound|http|PORT", domains
 * "*", prefix "/" with non_forwarding_action, which gRPC requires of
 * servers) and the http filters RBAC deny, RBAC allow, router (last, as
 * gRPC requires); with mTLS the chain carries a DownstreamTlsContext that
 * requires a client certificate signed by the "default" provider's roots.
 *
 * Istio answers only for ports of a service instance it knows for the
 * proxy; meshd answers for any port, keying port-level PeerAuthentication
 * by the port the server listens on (the workload's target port), so a
 * server whose endpoint is not registered yet still gets its workload's
 * policy rather than no listener at all (gRPC would not serve then).
 *
 * Certificates come from the certificate provider instance "default" of
 * the gRPC bootstrap (Istio's agent writes the same): certificate
 * "default", roots "ROOTCA".  The messages use the CertificateProvider-
 * Instance fields Istio's grpcgen sends, which gRPC 1.51 accepts.
 *
 * Everything here is a pure function of the model and the workload.
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
#include "envoy/type/matcher/v3/string.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Longest "IP:PORT" accepted after the prefix. */
#define GEN_INBOUND_ADDR_MAX 128
/* Bytes one inbound listener may allocate while it is built. */
#define GEN_INBOUND_ARENA_MAX (8u << 20)
#define GEN_ROUTER_FILTER "envoy.filters.http.router"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter gen_http_filter;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext gen_common_tls;

static const struct cfg_labels gen_no_labels;

/* ---------------------------------------------------------------- PeerAuthentication */

static const char *gen_ns(const struct gen_workload *w)
{
	return w && w->ns && w->ns[0] ? w->ns : "default";
}

static const struct cfg_labels *gen_labels(const struct gen_workload *w)
{
	return w && w->labels ? w->labels : &gen_no_labels;
}

static bool gen_tls_mode_istio(const struct cfg_labels *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, GEN_TLS_MODE_LABEL) == 0)
			return strcmp(l->v[i].value, "istio") == 0;
	return false;
}

bool gen_grpc_server_mtls(const struct model *m, const struct gen_workload *w, uint32_t port)
{
	switch (model_peer_authn(m, gen_ns(w), gen_labels(w), port)) {
	case CFG_MTLS_STRICT:
		return true;
	case CFG_MTLS_PERMISSIVE:
		/* clients of a tlsMode=istio workload use mTLS (auto mTLS) */
		return gen_tls_mode_istio(gen_labels(w));
	case CFG_MTLS_DISABLE:
	case CFG_MTLS_UNSET:
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- TLS contexts */

const char *gen__trust_domain(const struct model *m)
{
	return m->trust_domain && m->trust_domain[0] ? m->trust_domain : "cluster.local";
}

Envoy__Config__Core__V3__TransportSocket *gen__tls_socket(struct arena *a, const ProtobufCMessage *ctx)
{
	Envoy__Config__Core__V3__TransportSocket *ts = gen__msg(a, &envoy__config__core__v3__transport_socket__descriptor);

	if (!ts)
		return NULL;
	ts->name = GEN_TLS_SOCKET_NAME;
	ts->config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts->typed_config = gen__any(a, ctx);
	return ts->typed_config ? ts : NULL;
}

static Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CertificateProviderInstance *
gen_provider(struct arena *a, const char *cert_name)
{
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CertificateProviderInstance *p = gen__msg(
		a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__certificate_provider_instance__descriptor);

	if (p) {
		p->instance_name = GEN_CERT_PROVIDER;
		p->certificate_name = (char *)cert_name;
	}
	return p;
}

gen_common_tls *gen__common_tls(struct arena *a, char *const *sans, size_t n_sans)
{
	gen_common_tls *c = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__descriptor);
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext *cv = gen__msg(
		a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__descriptor);
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *vc =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__descriptor);
	size_t i;

	if (!c || !cv || !vc)
		return NULL;
	c->tls_certificate_certificate_provider_instance = gen_provider(a, GEN_CERT_NAME);
	cv->validation_context_certificate_provider_instance = gen_provider(a, GEN_ROOT_CERT_NAME);
	if (!c->tls_certificate_certificate_provider_instance || !cv->validation_context_certificate_provider_instance)
		return NULL;
	if (n_sans) {
		vc->match_subject_alt_names = arena_calloc(a, n_sans, sizeof(*vc->match_subject_alt_names));
		if (!vc->match_subject_alt_names)
			return NULL;
		for (i = 0; i < n_sans; i++) {
			Envoy__Type__Matcher__V3__StringMatcher *sm =
				gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor);

			if (!sm)
				return NULL;
			sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
			sm->exact = sans[i];
			vc->match_subject_alt_names[i] = sm;
		}
		vc->n_match_subject_alt_names = n_sans;
	}
	cv->default_validation_context = vc;
	c->validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
	c->combined_validation_context = cv;
	return c;
}

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

/* The HttpFilters an inbound HCM runs: RBAC deny, RBAC allow (from the
 * AuthorizationPolicies selecting the workload; gRPC 1.51 knows no LOG
 * action, so AUDIT policies are left out), then the router. */
static int gen_inbound_filters(const struct model *m, const struct gen_workload *w, struct arena *a,
			       gen_http_filter ***out, size_t *n)
{
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	rbac_filter *deny = NULL, *allow = NULL;
	gen_http_filter **rbac = NULL, **v, *r;
	size_t n_rbac = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = rbac_compile(m, gen_ns(w), gen_labels(w), a, &deny, &allow, NULL);
	if (rc == 0)
		rc = rbac_http_filters(deny, allow, NULL, false, a, &rbac, &n_rbac);
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

static Google__Protobuf__Any *gen_inbound_hcm(const struct model *m, const struct gen_workload *w, uint32_t port,
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

	*rc = gen_inbound_filters(m, w, a, &hcm.http_filters, &hcm.n_http_filters);
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

static Envoy__Config__Core__V3__TransportSocket *gen_downstream_tls(struct arena *a)
{
	Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);

	if (!d)
		return NULL;
	/* no SAN matching: gRPC servers reject match_subject_alt_names;
	 * who may call is AuthorizationPolicy's business */
	d->common_tls_context = gen__common_tls(a, NULL, 0);
	d->require_client_certificate = gen__bool(a, true);
	if (!d->common_tls_context || !d->require_client_certificate)
		return NULL;
	return gen__tls_socket(a, &d->base);
}

int gen_grpc_inbound_listener(const struct model *m, const struct gen_workload *w, const char *name,
			      uint8_t **data, size_t *len)
{
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
	mtls = gen_grpc_server_mtls(m, w, port);

	sa.address = host;
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = port;
	addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	addr.socket_address = &sa;

	f.name = "inbound-hcm";
	f.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f.typed_config = gen_inbound_hcm(m, w, port, a, &rc);
	if (!f.typed_config)
		goto out;
	fc.name = mtls ? "inbound-mtls" : "inbound-plaintext";
	fc.filters = filters;
	fc.n_filters = 1;
	if (mtls && !(fc.transport_socket = gen_downstream_tls(a))) {
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

/* ---------------------------------------------------------------- client side */

static int gen_str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sort and drop duplicates; returns the new count. */
static size_t gen_sort_unique(char **v, size_t n)
{
	size_t i, w = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), gen_str_cmp);
	for (i = 0; i < n; i++)
		if (w == 0 || strcmp(v[w - 1], v[i]) != 0)
			v[w++] = v[i];
	return w;
}

int gen__upstream_tls(const struct model *m, const struct model_service *svc, uint32_t port, const char *subset,
		      const struct cfg_object *dr, const struct cfg_client_tls *tls, struct arena *a,
		      Envoy__Config__Core__V3__TransportSocket **out)
{
	Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u;
	const struct cfg_subset *ss = subset && dr ? model_subset(dr, subset) : NULL;
	const struct model_port *mp = NULL;
	char **sans = NULL;
	size_t i, pi = 0, n = 0, n_eps = 0, cap;
	bool istio_mutual, all_mtls = true;
	int rc = -ENOMEM;

	*out = NULL;
	for (i = 0; i < svc->n_ports; i++) {
		if (svc->ports[i].number == port) {
			mp = &svc->ports[i];
			pi = i;
			break;
		}
	}
	if (!mp)
		return 0;
	/* Istio's grpcgen maps ISTIO_MUTUAL and leaves DISABLE, SIMPLE and
	 * MUTUAL in plaintext: gRPC takes certificates only from bootstrap
	 * provider instances, not the files a DestinationRule names. */
	if (tls && tls->set && tls->mode != CFG_TLS_UNSET && tls->mode != CFG_TLS_ISTIO_MUTUAL)
		return 0;
	istio_mutual = tls && tls->set && tls->mode == CFG_TLS_ISTIO_MUTUAL;
	if (!istio_mutual && svc->mesh_external)
		return 0;

	cap = svc->n_endpoints + (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY ?
				  svc->origin->spec.se.subject_alt_names.n : 0);
	if (istio_mutual && tls->subject_alt_names.n)
		cap = tls->subject_alt_names.n;
	if (cap > GEN_MAX_SANS)
		return -MESH_ETOOBIG;
	if (cap && !(sans = arena_calloc(a, cap, sizeof(*sans))))
		goto out;

	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];
		const struct cfg_labels *el = e->labels ? e->labels : &gen_no_labels;
		struct gen_workload w = { e->ns ? e->ns : svc->ns, el };
		uint32_t eport = e->ports ? e->ports[pi] : 0;

		if (ss && !model_labels_match(&ss->labels, el))
			continue;
		n_eps++;
		if (eport == 0)
			eport = mp->target_port ? mp->target_port : mp->number;
		if (!e->service_account || !e->service_account[0]) {
			all_mtls = false;
			continue;
		}
		if (!gen_grpc_server_mtls(m, &w, eport))
			all_mtls = false;
		if (istio_mutual && tls->subject_alt_names.n)
			continue;
		sans[n] = arena_printf(a, "spiffe://%s/ns/%s/sa/%s", gen__trust_domain(m), w.ns, e->service_account);
		if (!sans[n++])
			goto out;
	}
	/* auto mTLS: every endpoint has an identity and requires mTLS there */
	if (!istio_mutual && (n_eps == 0 || !all_mtls)) {
		rc = 0;
		goto out;
	}
	if (istio_mutual && tls->subject_alt_names.n) {
		for (i = 0; i < tls->subject_alt_names.n; i++)
			sans[n++] = tls->subject_alt_names.v[i];
	} else if (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY) {
		for (i = 0; i < svc->origin->spec.se.subject_alt_names.n; i++)
			sans[n++] = svc->origin->spec.se.subject_alt_names.v[i];
	}
	n = gen_sort_unique(sans, n);

	u = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
	if (!u || !(u->common_tls_context = gen__common_tls(a, sans, n)))
		goto out;
	if (tls && tls->set && tls->sni && tls->sni[0])
		u->sni = tls->sni;
	else if (!(u->sni = arena_printf(a, "outbound_.%u_.%s_.%s", port, subset ? subset : "", svc->hostname)))
		goto out;
	*out = gen__tls_socket(a, &u->base);
	rc = *out ? 0 : -ENOMEM;
out:
	return rc;
}
