/*
 * test_gen_inbound.c - mTLS for proxyless gRPC, judged on decoded resources:
 * PeerAuthentication inheritance (mesh < namespace < workload < port),
 * the inbound Listener of xDS-enabled gRPC servers (shape gRPC 1.51
 * accepts, TLS or plaintext, RBAC filters before the router), and the
 * client side (UpstreamTlsContext from DestinationRule ISTIO_MUTUAL and
 * auto mTLS, the SPIFFE SAN list).  Models are built from Istio YAML.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define INBOUND "xds.istio.io/grpc/lds/inbound/"
#define TLS_SOCKET "envoy.transport_sockets.tls"
#define DOWNSTREAM_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define UPSTREAM_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common_tls;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext upstream_tls;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext downstream_tls;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_t;

/* Policies: mesh-wide STRICT; namespace "perm" PERMISSIVE with a workload
 * (app=dis) DISABLE except port 8443 STRICT; namespace "unset" has a
 * policy without mtls (inherits); namespace "wl": namespace DISABLE, a
 * workload policy without a mode but port 9000 STRICT; namespace "two":
 * two namespace-wide policies (the first by name wins); a root-namespace
 * policy with a selector selects nothing. */
static const char *const policies_yaml =
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: default, namespace: istio-system}\n"
	"spec: {mtls: {mode: STRICT}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: root-selector, namespace: istio-system}\n"
	"spec: {selector: {matchLabels: {app: x}}, mtls: {mode: DISABLE}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: default, namespace: perm}\n"
	"spec: {mtls: {mode: PERMISSIVE}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: dis, namespace: perm}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: dis}}\n"
	"  mtls: {mode: DISABLE}\n"
	"  portLevelMtls:\n"
	"    8443: {mode: STRICT}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: default, namespace: unset}\n"
	"spec: {}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: default, namespace: wl}\n"
	"spec: {mtls: {mode: DISABLE}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: w, namespace: wl}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: w}}\n"
	"  portLevelMtls:\n"
	"    9000: {mode: STRICT}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: a, namespace: two}\n"
	"spec: {mtls: {mode: DISABLE}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: b, namespace: two}\n"
	"spec: {mtls: {mode: STRICT}}\n";

/* Services for the client side: "strict" (namespace none: mesh STRICT)
 * with two identities; "perm" (PERMISSIVE); "anon" (STRICT, one endpoint
 * without a service account); "ext" (STRICT but MESH_EXTERNAL); "tagged"
 * (PERMISSIVE, workloads labelled tlsMode=istio). */
static const char *const services_yaml =
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: strict, namespace: none}\n"
	"spec:\n"
	"  hosts: [strict.none.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 80, name: grpc, protocol: GRPC}]\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.2, serviceAccount: b, labels: {version: v2}}\n"
	"  - {address: 127.0.0.1, serviceAccount: a, labels: {version: v1}}\n"
	"  - {address: 127.0.0.3, serviceAccount: a, labels: {version: v1}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: perm, namespace: perm}\n"
	"spec:\n"
	"  hosts: [perm.perm.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 80, name: grpc, protocol: GRPC}]\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.4, serviceAccount: p}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: anon, namespace: none}\n"
	"spec:\n"
	"  hosts: [anon.none.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 80, name: grpc, protocol: GRPC}]\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.5, serviceAccount: a}\n"
	"  - {address: 127.0.0.6}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: ext, namespace: none}\n"
	"spec:\n"
	"  hosts: [ext.example.com]\n"
	"  location: MESH_EXTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 80, name: grpc, protocol: GRPC}]\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.7, serviceAccount: a}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: tagged, namespace: perm}\n"
	"spec:\n"
	"  hosts: [tagged.perm.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 80, name: grpc, protocol: GRPC}]\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.8, serviceAccount: t, labels: {security.istio.io/tlsMode: istio}}\n";

/* ---------------------------------------------------------------- fixtures */

static struct model *build_model(const char *yaml, const char *trust_domain)
{
	struct model *m = testutil_model("test.yaml", yaml);

	m->trust_domain = trust_domain;
	return m;
}

/* yaml documents joined with "---" (static buffer, one call at a time) */
static const char *join(const char *a, const char *b, const char *c)
{
	static char buf[1 << 16];
	int n = snprintf(buf, sizeof(buf), "%s\n---\n%s%s%s", a, b, c ? "\n---\n" : "", c ? c : "");

	ck_assert_int_lt(n, (int)sizeof(buf));
	return buf;
}

static struct cfg_kv kv_app_dis[] = { { "app", "dis" } };
static struct cfg_kv kv_app_w[] = { { "app", "w" } };
static struct cfg_kv kv_app_x[] = { { "app", "x" } };
static struct cfg_kv kv_tagged[] = { { "app", "other" }, { "security.istio.io/tlsMode", "istio" } };
static const struct cfg_labels l_dis = { kv_app_dis, 1 }, l_w = { kv_app_w, 1 }, l_x = { kv_app_x, 1 },
			       l_tagged = { kv_tagged, 2 };

/* A profile whose servers take TLS and plaintext on one port and know
 * the RBAC LOG action (as Envoy does). */
static const struct gen_profile profile_mixed = {
	.name = "mixed",
	.mixed_tls_port = true,
	.rbac_audit = true,
};

static enum cfg_mtls_mode mode_of(const struct model *m, const char *ns, const struct cfg_labels *l, uint32_t port)
{
	return model_peer_authn(m, ns, l, port);
}

static Envoy__Config__Listener__V3__Listener *inbound(const struct model *m, const char *ns,
						      const struct cfg_labels *l, const char *addr)
{
	struct gen_workload w = { ns, l };
	Envoy__Config__Listener__V3__Listener *lis;
	char name[256];
	uint8_t *data = NULL;
	size_t len = 0;

	snprintf(name, sizeof(name), INBOUND "%s", addr);
	ck_assert_int_eq(gen_grpc_inbound_listener(m, &w, name, &data, &len), 0);
	lis = envoy__config__listener__v3__listener__unpack(NULL, len, data);
	free(data);
	ck_assert_ptr_nonnull(lis);
	ck_assert_str_eq(lis->name, name);
	return lis;
}

static hcm_t *chain_hcm(const Envoy__Config__Listener__V3__FilterChain *fc)
{
	hcm_t *h;

	ck_assert_uint_eq(fc->n_filters, 1);
	ck_assert_int_eq(fc->filters[0]->config_type_case,
			 ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG);
	ck_assert_str_eq(fc->filters[0]->typed_config->type_url, HCM_URL);
	h = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
		NULL, fc->filters[0]->typed_config->value.len, fc->filters[0]->typed_config->value.data);
	ck_assert_ptr_nonnull(h);
	return h;
}

/* The provider instances every context names: certificate default/default,
 * roots default/ROOTCA; returns the SAN matchers' count. */
static size_t check_common(const common_tls *c)
{
	const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext *cv;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(c->tls_certificate_certificate_provider_instance);
	ck_assert_str_eq(c->tls_certificate_certificate_provider_instance->instance_name, "default");
	ck_assert_str_eq(c->tls_certificate_certificate_provider_instance->certificate_name, "default");
	ck_assert_int_eq(c->validation_context_type_case,
			 ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT);
	cv = c->combined_validation_context;
	ck_assert_ptr_nonnull(cv->validation_context_certificate_provider_instance);
	ck_assert_str_eq(cv->validation_context_certificate_provider_instance->instance_name, "default");
	ck_assert_str_eq(cv->validation_context_certificate_provider_instance->certificate_name, "ROOTCA");
	ck_assert_ptr_nonnull(cv->default_validation_context);
	return cv->default_validation_context->n_match_subject_alt_names;
}

static const char *san(const common_tls *c, size_t i)
{
	const Envoy__Type__Matcher__V3__StringMatcher *sm =
		c->combined_validation_context->default_validation_context->match_subject_alt_names[i];

	ck_assert_int_eq(sm->match_pattern_case, ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT);
	return sm->exact;
}

static Envoy__Config__Cluster__V3__Cluster *cluster(const struct xds_snapshot *s, const char *name)
{
	const struct xds_resource *r = xds_snapshot_find(s, XDS_CLUSTER, name);
	Envoy__Config__Cluster__V3__Cluster *c;

	if (!r)
		fprintf(stderr, "missing cluster %s\n", name);
	ck_assert_ptr_nonnull(r);
	c = envoy__config__cluster__v3__cluster__unpack(NULL, r->len, r->data);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* The cluster's UpstreamTlsContext, or NULL when it is plaintext. */
static upstream_tls *upstream(const Envoy__Config__Cluster__V3__Cluster *c)
{
	upstream_tls *u;

	if (!c->transport_socket)
		return NULL;
	ck_assert_str_eq(c->transport_socket->name, TLS_SOCKET);
	ck_assert_str_eq(c->transport_socket->typed_config->type_url, UPSTREAM_URL);
	u = envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__unpack(
		NULL, c->transport_socket->typed_config->value.len, c->transport_socket->typed_config->value.data);
	ck_assert_ptr_nonnull(u);
	return u;
}

/* ---------------------------------------------------------------- PeerAuthentication */

START_TEST(test_inheritance_table)
{
	struct model *m = build_model(policies_yaml, NULL);

	/* mesh-wide only */
	ck_assert_int_eq(mode_of(m, "none", NULL, 80), CFG_MTLS_STRICT);
	/* a root-namespace selector selects nothing */
	ck_assert_int_eq(mode_of(m, "none", &l_x, 80), CFG_MTLS_STRICT);
	/* namespace beats mesh */
	ck_assert_int_eq(mode_of(m, "perm", NULL, 80), CFG_MTLS_PERMISSIVE);
	/* workload beats namespace; its port level beats it */
	ck_assert_int_eq(mode_of(m, "perm", &l_dis, 80), CFG_MTLS_DISABLE);
	ck_assert_int_eq(mode_of(m, "perm", &l_dis, 8443), CFG_MTLS_STRICT);
	/* a workload policy of another namespace does not apply */
	ck_assert_int_eq(mode_of(m, "none", &l_dis, 80), CFG_MTLS_STRICT);
	/* UNSET inherits */
	ck_assert_int_eq(mode_of(m, "unset", NULL, 80), CFG_MTLS_STRICT);
	ck_assert_int_eq(mode_of(m, "wl", &l_w, 80), CFG_MTLS_DISABLE);
	ck_assert_int_eq(mode_of(m, "wl", &l_w, 9000), CFG_MTLS_STRICT);
	/* first by name among namespace-wide policies */
	ck_assert_int_eq(mode_of(m, "two", NULL, 80), CFG_MTLS_DISABLE);
	model_unref(m);
}
END_TEST

START_TEST(test_default_permissive)
{
	struct model *m = build_model(services_yaml, NULL);
	struct gen_workload w = { "none", NULL }, tagged = { "perm", &l_tagged };

	ck_assert_int_eq(mode_of(m, "none", NULL, 80), CFG_MTLS_PERMISSIVE);
	ck_assert_int_eq(mode_of(m, NULL, NULL, 80), CFG_MTLS_PERMISSIVE);
	/* PERMISSIVE is plaintext for a gRPC server, unless tlsMode=istio */
	ck_assert(!gen_server_mtls(m, &gen_profile_proxyless, &w, 80));
	ck_assert(gen_server_mtls(m, &gen_profile_proxyless, &tagged, 80));
	/* a server that takes both on one port serves PERMISSIVE as both */
	ck_assert(!gen_server_mtls(m, &profile_mixed, &tagged, 80));
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- inbound listener */

START_TEST(test_listener_strict_shape)
{
	struct model *m = build_model(policies_yaml, NULL);
	Envoy__Config__Listener__V3__Listener *l = inbound(m, "perm", &l_dis, "0.0.0.0:8443");
	const Envoy__Config__Listener__V3__FilterChain *fc;
	const Envoy__Config__Route__V3__VirtualHost *vh;
	const Envoy__Config__Route__V3__Route *r;
	downstream_tls *d;
	hcm_t *h;

	ck_assert_ptr_nonnull(l->address);
	ck_assert_int_eq(l->address->address_case, ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS);
	ck_assert_str_eq(l->address->socket_address->address, "0.0.0.0");
	ck_assert_uint_eq(l->address->socket_address->port_value, 8443);
	ck_assert_int_eq(l->address->socket_address->protocol, ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP);
	ck_assert_ptr_null(l->api_listener);
	ck_assert_ptr_null(l->use_original_dst);
	ck_assert_uint_eq(l->n_listener_filters, 0);
	ck_assert_ptr_null(l->default_filter_chain);
	ck_assert_uint_eq(l->n_filter_chains, 1);
	fc = l->filter_chains[0];
	/* gRPC 1.51 drops chains matching on destination_port */
	ck_assert_ptr_null(fc->filter_chain_match);
	ck_assert_str_eq(fc->name, "inbound-mtls");

	h = chain_hcm(fc);
	ck_assert_int_eq(h->route_specifier_case,
			 ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG);
	ck_assert_uint_eq(h->route_config->n_virtual_hosts, 1);
	vh = h->route_config->virtual_hosts[0];
	ck_assert_str_eq(vh->name, "inbound|http|8443");
	ck_assert_uint_eq(vh->n_domains, 1);
	ck_assert_str_eq(vh->domains[0], "*");
	ck_assert_uint_eq(vh->n_routes, 1);
	r = vh->routes[0];
	ck_assert_int_eq(r->match->path_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX);
	ck_assert_str_eq(r->match->prefix, "/");
	ck_assert_int_eq(r->action_case, ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_NON_FORWARDING_ACTION);
	/* no AuthorizationPolicy: the router alone */
	ck_assert_uint_eq(h->n_http_filters, 1);
	ck_assert_str_eq(h->http_filters[0]->name, "envoy.filters.http.router");

	ck_assert_ptr_nonnull(fc->transport_socket);
	ck_assert_str_eq(fc->transport_socket->name, TLS_SOCKET);
	ck_assert_str_eq(fc->transport_socket->typed_config->type_url, DOWNSTREAM_URL);
	d = envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__unpack(
		NULL, fc->transport_socket->typed_config->value.len, fc->transport_socket->typed_config->value.data);
	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(d->require_client_certificate);
	ck_assert(d->require_client_certificate->value);
	ck_assert_ptr_null(d->require_sni);
	/* gRPC servers reject SAN matchers */
	ck_assert_uint_eq(check_common(d->common_tls_context), 0);

	envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__free_unpacked(d, NULL);
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	model_unref(m);
}
END_TEST

START_TEST(test_listener_plaintext_modes)
{
	struct model *m = build_model(policies_yaml, NULL);
	struct {
		const char *ns;
		const struct cfg_labels *labels;
		const char *addr;
		bool mtls;
	} cases[] = {
		{ "perm", &l_dis, "0.0.0.0:80", false },          /* workload DISABLE */
		{ "perm", NULL, "127.0.0.1:80", false },          /* PERMISSIVE -> plaintext */
		{ "perm", &l_tagged, "127.0.0.1:80", true },      /* PERMISSIVE + tlsMode=istio */
		{ "none", NULL, "[::]:50051", true },             /* mesh STRICT */
		{ "wl", &l_w, "0.0.0.0:9000", true },             /* port level */
		{ "wl", &l_w, "0.0.0.0:9001", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Envoy__Config__Listener__V3__Listener *l = inbound(m, cases[i].ns, cases[i].labels, cases[i].addr);
		const Envoy__Config__Listener__V3__FilterChain *fc = l->filter_chains[0];

		ck_assert_msg((fc->transport_socket != NULL) == cases[i].mtls, "case %zu", i);
		ck_assert_str_eq(fc->name, cases[i].mtls ? "inbound-mtls" : "inbound-plaintext");
		envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	}
	{
		Envoy__Config__Listener__V3__Listener *l = inbound(m, "none", NULL, "[::]:50051");

		ck_assert_str_eq(l->address->socket_address->address, "::");
		ck_assert_uint_eq(l->address->socket_address->port_value, 50051);
		envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	}
	model_unref(m);
}
END_TEST

START_TEST(test_listener_bad_names)
{
	struct model *m = build_model(policies_yaml, NULL);
	struct gen_workload w = { "none", NULL };
	static const char *const bad[] = {
		INBOUND, INBOUND "0.0.0.0", INBOUND "0.0.0.0:", INBOUND "0.0.0.0:0", INBOUND "0.0.0.0:65536",
		INBOUND "0.0.0.0:80x", INBOUND ":80", INBOUND "::1:80", INBOUND "[::1]80", INBOUND "[]:80",
		INBOUND "0.0.0.0:-1", "reviews.default.svc.cluster.local:9080", "xds.istio.io/grpc/lds/inbound",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *data = (uint8_t *)"x";
		size_t len = 7;

		ck_assert_msg(gen_grpc_inbound_listener(m, &w, bad[i], &data, &len) == -ENOENT, "%s", bad[i]);
		ck_assert_ptr_null(data);
		ck_assert_uint_eq(len, 0);
	}
	model_unref(m);
}
END_TEST

START_TEST(test_listener_rbac_before_router)
{
	static const char *const authz =
		"apiVersion: security.istio.io/v1\n"
		"kind: AuthorizationPolicy\n"
		"metadata: {name: allow-a, namespace: perm}\n"
		"spec:\n"
		"  selector: {matchLabels: {app: dis}}\n"
		"  action: ALLOW\n"
		"  rules:\n"
		"  - from: [{source: {principals: [cluster.local/ns/none/sa/a]}}]\n"
		"---\n"
		"apiVersion: security.istio.io/v1\n"
		"kind: AuthorizationPolicy\n"
		"metadata: {name: deny-admin, namespace: perm}\n"
		"spec:\n"
		"  action: DENY\n"
		"  rules:\n"
		"  - to: [{operation: {paths: [/admin.Admin/*]}}]\n";
	struct model *m = build_model(join(policies_yaml, authz, NULL), NULL);
	Envoy__Config__Listener__V3__Listener *l = inbound(m, "perm", &l_dis, "0.0.0.0:8443");
	hcm_t *h = chain_hcm(l->filter_chains[0]);

	ck_assert_uint_eq(h->n_http_filters, 3);
	ck_assert_str_eq(h->http_filters[0]->name, "envoy.filters.http.rbac.DENY");
	ck_assert_str_eq(h->http_filters[1]->name, "envoy.filters.http.rbac");
	ck_assert_str_eq(h->http_filters[2]->name, "envoy.filters.http.router");
	ck_assert_str_eq(h->http_filters[0]->typed_config->type_url,
			 "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC");
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);

	/* another workload of the namespace gets the namespace-wide DENY only */
	l = inbound(m, "perm", NULL, "0.0.0.0:80");
	h = chain_hcm(l->filter_chains[0]);
	ck_assert_uint_eq(h->n_http_filters, 2);
	ck_assert_str_eq(h->http_filters[0]->name, "envoy.filters.http.rbac.DENY");
	ck_assert_str_eq(h->http_filters[1]->name, "envoy.filters.http.router");
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	model_unref(m);
}
END_TEST

/* The AUDIT filter goes first when the profile knows the LOG action, and
 * is left out for proxyless gRPC. */
START_TEST(test_listener_audit_by_profile)
{
	static const char *const audit =
		"apiVersion: security.istio.io/v1\n"
		"kind: AuthorizationPolicy\n"
		"metadata: {name: audit-all, namespace: perm}\n"
		"spec:\n"
		"  action: AUDIT\n"
		"  rules: [{}]\n";
	struct model *m = build_model(join(policies_yaml, audit, NULL), NULL);
	struct gen_workload w = { "perm", NULL };
	Envoy__Config__Listener__V3__Listener *l;
	uint8_t *data = NULL;
	size_t len = 0;
	hcm_t *h;

	ck_assert_int_eq(gen_inbound_listener(m, &profile_mixed, &w, INBOUND "0.0.0.0:80", NULL, &data, &len), 0);
	l = envoy__config__listener__v3__listener__unpack(NULL, len, data);
	free(data);
	ck_assert_ptr_nonnull(l);
	h = chain_hcm(l->filter_chains[0]);
	ck_assert_uint_eq(h->n_http_filters, 2);
	ck_assert_str_eq(h->http_filters[0]->name, "envoy.filters.http.rbac.AUDIT");
	ck_assert_str_eq(h->http_filters[1]->name, "envoy.filters.http.router");
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);

	l = inbound(m, "perm", NULL, "0.0.0.0:80");
	h = chain_hcm(l->filter_chains[0]);
	ck_assert_uint_eq(h->n_http_filters, 1);
	ck_assert_str_eq(h->http_filters[0]->name, "envoy.filters.http.router");
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	model_unref(m);
}
END_TEST

START_TEST(test_listener_deterministic)
{
	struct model *m = build_model(policies_yaml, NULL);
	struct gen_workload w = { "perm", &l_dis };
	uint8_t *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;

	ck_assert_int_eq(gen_grpc_inbound_listener(m, &w, INBOUND "0.0.0.0:8443", &a, &la), 0);
	ck_assert_int_eq(gen_grpc_inbound_listener(m, &w, INBOUND "0.0.0.0:8443", &b, &lb), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(a, b, la) == 0);
	free(a);
	free(b);
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- client side */

START_TEST(test_auto_mtls_sans)
{
	struct model *m = build_model(join(policies_yaml, services_yaml, NULL), "example.org");
	struct xds_snapshot *s = NULL;
	Envoy__Config__Cluster__V3__Cluster *c;
	upstream_tls *u;

	ck_assert_int_eq(gen_grpc_snapshot(m, &s), 0);
	/* STRICT and every endpoint has an identity: mTLS, SANs sorted, unique */
	c = cluster(s, "outbound|80||strict.none.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 2);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://example.org/ns/none/sa/a");
	ck_assert_str_eq(san(u->common_tls_context, 1), "spiffe://example.org/ns/none/sa/b");
	ck_assert_str_eq(u->sni, "outbound_.80_._.strict.none.svc.cluster.local");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* PERMISSIVE: plaintext */
	c = cluster(s, "outbound|80||perm.perm.svc.cluster.local");
	ck_assert_ptr_null(upstream(c));
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	/* an endpoint without identity: plaintext */
	c = cluster(s, "outbound|80||anon.none.svc.cluster.local");
	ck_assert_ptr_null(upstream(c));
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	/* outside the mesh: plaintext */
	c = cluster(s, "outbound|80||ext.example.com");
	ck_assert_ptr_null(upstream(c));
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	/* PERMISSIVE with tlsMode=istio workloads: their servers require mTLS */
	c = cluster(s, "outbound|80||tagged.perm.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 1);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://example.org/ns/perm/sa/t");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

START_TEST(test_auto_mtls_off_without_strict)
{
	struct model *m = build_model(services_yaml, NULL);
	struct xds_snapshot *s = NULL;
	Envoy__Config__Cluster__V3__Cluster *c;

	ck_assert_int_eq(gen_grpc_snapshot(m, &s), 0);
	c = cluster(s, "outbound|80||strict.none.svc.cluster.local");
	ck_assert_ptr_null(upstream(c));
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

START_TEST(test_destination_rule_tls)
{
	static const char *const drs =
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: perm, namespace: perm}\n"
		"spec:\n"
		"  host: perm\n"
		"  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: strict, namespace: none}\n"
		"spec:\n"
		"  host: strict\n"
		"  trafficPolicy: {tls: {mode: DISABLE}}\n"
		"  subsets:\n"
		"  - name: v1\n"
		"    labels: {version: v1}\n"
		"    trafficPolicy:\n"
		"      tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://example.org/ns/none/sa/z, spiffe://example.org/ns/none/sa/y]}\n"
		"  - name: v2\n"
		"    labels: {version: v2}\n"
		"    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: v2.example}}\n";
	struct model *m = build_model(join(policies_yaml, services_yaml, drs), "example.org");
	struct xds_snapshot *s = NULL;
	Envoy__Config__Cluster__V3__Cluster *c;
	upstream_tls *u;

	ck_assert_int_eq(gen_grpc_snapshot(m, &s), 0);
	/* ISTIO_MUTUAL on a PERMISSIVE service: mTLS with the endpoints' identities */
	c = cluster(s, "outbound|80||perm.perm.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 1);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://example.org/ns/perm/sa/p");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* DISABLE wins over auto mTLS */
	c = cluster(s, "outbound|80||strict.none.svc.cluster.local");
	ck_assert_ptr_null(upstream(c));
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* subset: the DestinationRule's subjectAltNames, sorted */
	c = cluster(s, "outbound|80|v1|strict.none.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 2);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://example.org/ns/none/sa/y");
	ck_assert_str_eq(san(u->common_tls_context, 1), "spiffe://example.org/ns/none/sa/z");
	ck_assert_str_eq(u->sni, "outbound_.80_.v1_.strict.none.svc.cluster.local");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* subset: only its endpoints' identities; the DestinationRule's sni */
	c = cluster(s, "outbound|80|v2|strict.none.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 1);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://example.org/ns/none/sa/b");
	ck_assert_str_eq(u->sni, "v2.example");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

START_TEST(test_default_trust_domain)
{
	static const char *const dr =
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: perm, namespace: perm}\n"
		"spec:\n"
		"  host: perm\n"
		"  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n";
	struct model *m = build_model(join(services_yaml, dr, NULL), NULL);
	struct xds_snapshot *s = NULL;
	Envoy__Config__Cluster__V3__Cluster *c;
	upstream_tls *u;

	ck_assert_int_eq(gen_grpc_snapshot(m, &s), 0);
	c = cluster(s, "outbound|80||perm.perm.svc.cluster.local");
	u = upstream(c);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(check_common(u->common_tls_context), 1);
	ck_assert_str_eq(san(u->common_tls_context, 0), "spiffe://cluster.local/ns/perm/sa/p");
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

static Suite *gen_inbound_suite(void)
{
	Suite *s = suite_create("gen_inbound");
	TCase *tc = tcase_create("mtls");

	tcase_add_test(tc, test_inheritance_table);
	tcase_add_test(tc, test_default_permissive);
	tcase_add_test(tc, test_listener_strict_shape);
	tcase_add_test(tc, test_listener_plaintext_modes);
	tcase_add_test(tc, test_listener_bad_names);
	tcase_add_test(tc, test_listener_rbac_before_router);
	tcase_add_test(tc, test_listener_deterministic);
	tcase_add_test(tc, test_listener_audit_by_profile);
	tcase_add_test(tc, test_auto_mtls_sans);
	tcase_add_test(tc, test_auto_mtls_off_without_strict);
	tcase_add_test(tc, test_destination_rule_tls);
	tcase_add_test(tc, test_default_trust_domain);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed = testutil_run(gen_inbound_suite());

	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
