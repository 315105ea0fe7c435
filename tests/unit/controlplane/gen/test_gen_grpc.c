/*
 * test_gen_grpc.c - the proxyless gRPC generators, judged on the decoded
 * resources: models are built from Istio YAML (parser -> store -> model),
 * gen_grpc_snapshot() runs, and each resource is unpacked with protobuf-c
 * and checked field by field against what Istio sends and what gRPC 1.51
 * accepts.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define HOST "reviews.default.svc.cluster.local"
#define RATINGS "ratings.default.svc.cluster.local"
#define TYPE_PREFIX "type.googleapis.com/"

static const char *const mesh_yaml =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  hosts: [" HOST "]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9080, name: grpc, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.3, labels: {version: v1}, locality: us-east/zone-b, weight: 2}\n"
	"  - {address: 127.0.0.1, labels: {version: v1}, locality: us-east/zone-a, weight: 3}\n"
	"  - {address: 127.0.0.2, labels: {version: v2}, locality: us-east/zone-a}\n"
	"  - {address: 127.0.0.4, labels: {version: v3}, locality: us-west/zone-c/rack-1, ports: {grpc: 19080}}\n"
	"  - {address: 127.0.0.5, labels: {version: v1}, locality: us-east/zone-a, weight: 4}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: ratings, namespace: default}\n"
	"spec:\n"
	"  hosts: [" RATINGS "]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9080, name: grpc, protocol: GRPC}\n"
	"  - {number: 9090, name: grpc-admin, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.9}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: VirtualService\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  hosts: [reviews]\n"
	"  http:\n"
	"  - name: jason\n"
	"    match:\n"
	"    - headers:\n"
	"        end-user: {exact: jason}\n"
	"    fault:\n"
	"      abort:\n"
	"        grpcStatus: UNAVAILABLE\n"
	"        percentage: {value: 12.5}\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v2}\n"
	"  - name: split\n"
	"    match:\n"
	"    - uri: {prefix: /reviews.Reviews/}\n"
	"    timeout: 5s\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v1}\n"
	"      weight: 90\n"
	"    - destination: {host: reviews, subset: v3}\n"
	"      weight: 10\n"
	"  - name: regex\n"
	"    match:\n"
	"    - uri: {regex: \"/reviews\\\\.Reviews/Get.*\"}\n"
	"      method: {exact: POST}\n"
	"      withoutHeaders:\n"
	"        x-debug: {}\n"
	"    - port: 7777\n"
	"      uri: {prefix: /elsewhere}\n"
	"    retries: {attempts: 0}\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v1}\n"
	"  - name: other-port\n"
	"    match:\n"
	"    - port: 7777\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v3}\n"
	"  - name: query\n"
	"    match:\n"
	"    - queryParams:\n"
	"        debug: {exact: \"1\"}\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v3}\n"
	"  - name: default\n"
	"    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"unavailable,cancelled\"}\n"
	"    fault:\n"
	"      delay: {fixedDelay: 1.5s, percentage: {value: 0.5}}\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v1}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  host: reviews\n"
	"  trafficPolicy:\n"
	"    loadBalancer: {simple: LEAST_REQUEST}\n"
	"    connectionPool:\n"
	"      tcp: {maxConnections: 100, connectTimeout: 3s}\n"
	"      http: {http2MaxRequests: 1000, http1MaxPendingRequests: 10, maxRetries: 4}\n"
	"    outlierDetection:\n"
	"      consecutive5xxErrors: 7\n"
	"      consecutiveGatewayErrors: 5\n"
	"      interval: 5m\n"
	"      baseEjectionTime: 15m\n"
	"      maxEjectionPercent: 50\n"
	"  subsets:\n"
	"  - name: v1\n"
	"    labels: {version: v1}\n"
	"  - name: v2\n"
	"    labels: {version: v2}\n"
	"    trafficPolicy:\n"
	"      loadBalancer:\n"
	"        consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}\n"
	"  - name: v3\n"
	"    labels: {version: v3}\n"
	"    trafficPolicy:\n"
	"      loadBalancer: {simple: RANDOM}\n"
	"      connectionPool:\n"
	"        http: {http2MaxRequests: 7}\n";

/* ---------------------------------------------------------------- fixtures */

static struct model *build_model(const char *yaml)
{
	return testutil_model("test.yaml", yaml);
}

static struct model *g_model;
static struct xds_snapshot *g_snap;

static void setup(void)
{
	g_model = build_model(mesh_yaml);
	ck_assert_int_eq(gen_grpc_snapshot(g_model, &g_snap), 0);
	ck_assert_ptr_nonnull(g_snap);
}

static void teardown(void)
{
	xds_snapshot_unref(g_snap);
	model_unref(g_model);
	g_snap = NULL;
	g_model = NULL;
}

static const struct xds_resource *res(enum xds_type t, const char *name)
{
	const struct xds_resource *r = xds_snapshot_find(g_snap, t, name);

	if (!r)
		fprintf(stderr, "missing %s %s\n", xds_type_short(t), name);
	ck_assert_ptr_nonnull(r);
	return r;
}

static Envoy__Config__Route__V3__RouteConfiguration *unpack_rds(const char *name)
{
	const struct xds_resource *r = res(XDS_ROUTE, name);
	Envoy__Config__Route__V3__RouteConfiguration *rc =
		envoy__config__route__v3__route_configuration__unpack(NULL, r->len, r->data);

	ck_assert_ptr_nonnull(rc);
	ck_assert_uint_eq(rc->n_virtual_hosts, 1);
	return rc;
}

static Envoy__Config__Cluster__V3__Cluster *unpack_cds(const char *name)
{
	const struct xds_resource *r = res(XDS_CLUSTER, name);
	Envoy__Config__Cluster__V3__Cluster *c = envoy__config__cluster__v3__cluster__unpack(NULL, r->len, r->data);

	ck_assert_ptr_nonnull(c);
	return c;
}

static Envoy__Config__Endpoint__V3__ClusterLoadAssignment *unpack_eds(const char *name)
{
	const struct xds_resource *r = res(XDS_ENDPOINT, name);
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *c =
		envoy__config__endpoint__v3__cluster_load_assignment__unpack(NULL, r->len, r->data);

	ck_assert_ptr_nonnull(c);
	return c;
}

/* The route named `name` (routes carry the VirtualService route's name). */
static Envoy__Config__Route__V3__Route *route_named(Envoy__Config__Route__V3__RouteConfiguration *rc, const char *name)
{
	Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[0];
	size_t i;

	for (i = 0; i < vh->n_routes; i++)
		if (strcmp(vh->routes[i]->name, name) == 0)
			return vh->routes[i];
	ck_abort_msg("no route named %s", name);
	return NULL;
}

static bool has_domain(const Envoy__Config__Route__V3__VirtualHost *vh, const char *d)
{
	size_t i;

	for (i = 0; i < vh->n_domains; i++)
		if (strcmp(vh->domains[i], d) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- LDS */

START_TEST(test_listener_hcm)
{
	const struct xds_resource *r = res(XDS_LISTENER, HOST ":9080");
	Envoy__Config__Listener__V3__Listener *l = envoy__config__listener__v3__listener__unpack(NULL, r->len, r->data);
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm;
	Google__Protobuf__Any *any;

	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(l->name, HOST ":9080");
	ck_assert_ptr_nonnull(l->api_listener);
	any = l->api_listener->api_listener;
	ck_assert_ptr_nonnull(any);
	ck_assert_str_eq(any->type_url, TYPE_PREFIX
			 "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
	hcm = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
		NULL, any->value.len, any->value.data);
	ck_assert_ptr_nonnull(hcm);
	ck_assert_int_eq(hcm->route_specifier_case,
			 ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS);
	ck_assert_str_eq(hcm->rds->route_config_name, HOST ":9080");
	ck_assert_int_eq(hcm->rds->config_source->config_source_specifier_case,
			 ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
	ck_assert_int_eq(hcm->rds->config_source->resource_api_version, ENVOY__CONFIG__CORE__V3__API_VERSION__V3);
	ck_assert_uint_eq(hcm->n_http_filters, 2);
	ck_assert_str_eq(hcm->http_filters[0]->name, "envoy.filters.http.fault");
	ck_assert_str_eq(hcm->http_filters[0]->typed_config->type_url,
			 TYPE_PREFIX "envoy.extensions.filters.http.fault.v3.HTTPFault");
	/* router last */
	ck_assert_str_eq(hcm->http_filters[1]->name, "envoy.filters.http.router");
	ck_assert_str_eq(hcm->http_filters[1]->typed_config->type_url,
			 TYPE_PREFIX "envoy.extensions.filters.http.router.v3.Router");

	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(hcm, NULL);
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);

	/* every port of every service has a listener */
	res(XDS_LISTENER, RATINGS ":9080");
	res(XDS_LISTENER, RATINGS ":9090");
	ck_assert_uint_eq(g_snap->sets[XDS_LISTENER].n, 3);
}
END_TEST

/* ---------------------------------------------------------------- RDS */

START_TEST(test_route_domains_and_order)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[0];
	static const char *const order[] = { "jason", "split", "regex", "query", "default" };
	size_t i;

	ck_assert_str_eq(rc->name, HOST ":9080");
	ck_assert_str_eq(vh->name, HOST ":9080");
	ck_assert(has_domain(vh, HOST));
	ck_assert(has_domain(vh, HOST ":9080"));
	ck_assert(has_domain(vh, "reviews"));
	ck_assert(has_domain(vh, "reviews:9080"));
	ck_assert(has_domain(vh, "reviews.default"));
	ck_assert(has_domain(vh, "reviews.default:9080"));
	ck_assert(has_domain(vh, "reviews.default.svc"));
	ck_assert(has_domain(vh, "reviews.default.svc:9080"));
	ck_assert_uint_eq(vh->n_domains, 8);
	/* "other-port" names only port 7777; the regex route's second match too */
	ck_assert_uint_eq(vh->n_routes, 5);
	for (i = 0; i < 5; i++)
		ck_assert_str_eq(vh->routes[i]->name, order[i]);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_route_header_exact_fault_retry_default)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__Route *r = route_named(rc, "jason");
	Envoy__Config__Route__V3__HeaderMatcher *h;
	Envoy__Config__Route__V3__RouteAction *ra;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *f;
	Google__Protobuf__Any *any;

	ck_assert_uint_eq(r->match->n_headers, 1);
	h = r->match->headers[0];
	ck_assert_str_eq(h->name, "end-user");
	/* exact_match, never string_match: gRPC 1.51 rejects the latter */
	ck_assert_int_eq(h->header_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH);
	ck_assert_str_eq(h->exact_match, "jason");
	ck_assert(!h->invert_match);

	ck_assert_int_eq(r->action_case, ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE);
	ra = r->route;
	ck_assert_int_eq(ra->cluster_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER);
	ck_assert_str_eq(ra->cluster, "outbound|9080|v2|" HOST);

	/* Istio's default retry policy when `retries` is absent */
	ck_assert_ptr_nonnull(ra->retry_policy);
	ck_assert_str_eq(ra->retry_policy->retry_on,
			 "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
	ck_assert_ptr_nonnull(ra->retry_policy->num_retries);
	ck_assert_uint_eq(ra->retry_policy->num_retries->value, 2);

	/* no timeout given: 0s (disabled) and no max_stream_duration */
	ck_assert_ptr_nonnull(ra->timeout);
	ck_assert_int_eq(ra->timeout->seconds, 0);
	ck_assert_int_eq(ra->timeout->nanos, 0);
	ck_assert_ptr_null(ra->max_stream_duration);

	/* subset v2 hashes on x-user */
	ck_assert_uint_eq(ra->n_hash_policy, 1);
	ck_assert_int_eq(ra->hash_policy[0]->policy_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER);
	ck_assert_str_eq(ra->hash_policy[0]->header->header_name, "x-user");

	/* fault: abort with gRPC status UNAVAILABLE (14) for 12.5% */
	ck_assert_uint_eq(r->n_typed_per_filter_config, 1);
	ck_assert_str_eq(r->typed_per_filter_config[0]->key, "envoy.filters.http.fault");
	any = r->typed_per_filter_config[0]->value;
	ck_assert_str_eq(any->type_url, TYPE_PREFIX "envoy.extensions.filters.http.fault.v3.HTTPFault");
	f = envoy__extensions__filters__http__fault__v3__httpfault__unpack(NULL, any->value.len, any->value.data);
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_null(f->delay);
	ck_assert_ptr_nonnull(f->abort);
	ck_assert_int_eq(f->abort->error_type_case,
			 ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_GRPC_STATUS);
	ck_assert_uint_eq(f->abort->grpc_status, 14);
	ck_assert_ptr_nonnull(f->abort->percentage);
	ck_assert_uint_eq(f->abort->percentage->numerator, 125000);
	ck_assert_int_eq(f->abort->percentage->denominator,
			 ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__MILLION);
	envoy__extensions__filters__http__fault__v3__httpfault__free_unpacked(f, NULL);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_route_weighted_prefix_timeout)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__Route *r = route_named(rc, "split");
	Envoy__Config__Route__V3__RouteAction *ra = r->route;
	Envoy__Config__Route__V3__WeightedCluster *wc;

	ck_assert_int_eq(r->match->path_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX);
	ck_assert_str_eq(r->match->prefix, "/reviews.Reviews/");
	ck_assert_ptr_null(r->match->case_sensitive);

	ck_assert_int_eq(ra->cluster_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS);
	wc = ra->weighted_clusters;
	ck_assert_uint_eq(wc->n_clusters, 2);
	ck_assert_str_eq(wc->clusters[0]->name, "outbound|9080|v1|" HOST);
	ck_assert_uint_eq(wc->clusters[0]->weight->value, 90);
	ck_assert_str_eq(wc->clusters[1]->name, "outbound|9080|v3|" HOST);
	ck_assert_uint_eq(wc->clusters[1]->weight->value, 10);
	ck_assert_ptr_nonnull(wc->total_weight);
	ck_assert_uint_eq(wc->total_weight->value, 100);

	/* timeout 5s is sent as max_stream_duration too (what gRPC reads) */
	ck_assert_int_eq(ra->timeout->seconds, 5);
	ck_assert_ptr_nonnull(ra->max_stream_duration);
	ck_assert_ptr_nonnull(ra->max_stream_duration->max_stream_duration);
	ck_assert_int_eq(ra->max_stream_duration->max_stream_duration->seconds, 5);
	ck_assert_int_eq(ra->max_stream_duration->max_stream_duration->nanos, 0);

	/* v1 and v3 do not hash: no hash policy */
	ck_assert_uint_eq(ra->n_hash_policy, 0);
	ck_assert_uint_eq(r->n_typed_per_filter_config, 0);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_route_regex_method_no_retry)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__Route *r = route_named(rc, "regex");
	Envoy__Config__Route__V3__RouteMatch *m = r->match;
	size_t i;
	bool saw_method = false, saw_without = false;

	ck_assert_int_eq(m->path_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX);
	ck_assert_str_eq(m->safe_regex->regex, "/reviews\\.Reviews/Get.*");
	ck_assert_uint_eq(m->n_headers, 2);
	for (i = 0; i < m->n_headers; i++) {
		Envoy__Config__Route__V3__HeaderMatcher *h = m->headers[i];

		ck_assert_int_ne(h->header_match_specifier_case,
				 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH);
		if (strcmp(h->name, ":method") == 0) {
			ck_assert_int_eq(h->header_match_specifier_case,
					 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH);
			ck_assert_str_eq(h->exact_match, "POST");
			saw_method = true;
		} else if (strcmp(h->name, "x-debug") == 0) {
			ck_assert_int_eq(h->header_match_specifier_case,
					 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH);
			ck_assert(h->present_match);
			ck_assert(h->invert_match);
			saw_without = true;
		}
	}
	ck_assert(saw_method && saw_without);
	/* attempts: 0 -> no retry policy at all */
	ck_assert_ptr_null(r->route->retry_policy);
	ck_assert_str_eq(r->route->cluster, "outbound|9080|v1|" HOST);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

/* gRPC skips a route with query matchers: it must carry them, never be
 * sent as a route that matches everything. */
START_TEST(test_route_query_params_kept)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__Route *r = route_named(rc, "query");

	ck_assert_uint_eq(r->match->n_query_parameters, 1);
	ck_assert_str_eq(r->match->query_parameters[0]->name, "debug");
	ck_assert_int_eq(r->match->query_parameters[0]->query_parameter_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH);
	ck_assert_str_eq(r->match->query_parameters[0]->string_match->exact, "1");
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_route_catchall_retries_delay)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__Route *r = route_named(rc, "default");
	Envoy__Config__Route__V3__RetryPolicy *rp = r->route->retry_policy;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *f;
	Google__Protobuf__Any *any;

	ck_assert_int_eq(r->match->path_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX);
	ck_assert_str_eq(r->match->prefix, "");
	ck_assert_ptr_nonnull(rp);
	ck_assert_str_eq(rp->retry_on, "unavailable,cancelled");
	ck_assert_uint_eq(rp->num_retries->value, 3);
	ck_assert_ptr_nonnull(rp->per_try_timeout);
	ck_assert_int_eq(rp->per_try_timeout->seconds, 2);

	ck_assert_uint_eq(r->n_typed_per_filter_config, 1);
	any = r->typed_per_filter_config[0]->value;
	f = envoy__extensions__filters__http__fault__v3__httpfault__unpack(NULL, any->value.len, any->value.data);
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_null(f->abort);
	ck_assert_ptr_nonnull(f->delay);
	ck_assert_int_eq(f->delay->fixed_delay->seconds, 1);
	ck_assert_int_eq(f->delay->fixed_delay->nanos, 500000000);
	/* 0.5% survives as 5000 per million */
	ck_assert_uint_eq(f->delay->percentage->numerator, 5000);
	ck_assert_int_eq(f->delay->percentage->denominator,
			 ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__MILLION);
	envoy__extensions__filters__http__fault__v3__httpfault__free_unpacked(f, NULL);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_route_default_without_vs)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(RATINGS ":9090");
	Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[0];
	Envoy__Config__Route__V3__Route *r;

	ck_assert_uint_eq(vh->n_routes, 1);
	r = vh->routes[0];
	ck_assert_int_eq(r->match->path_specifier_case, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX);
	ck_assert_str_eq(r->match->prefix, "");
	ck_assert_str_eq(r->route->cluster, "outbound|9090||" RATINGS);
	ck_assert(has_domain(vh, "ratings.default:9090"));
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

/* ---------------------------------------------------------------- CDS */

START_TEST(test_cluster_defaults_and_policy)
{
	Envoy__Config__Cluster__V3__Cluster *c = unpack_cds("outbound|9080||" HOST);
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t;
	Envoy__Config__Cluster__V3__OutlierDetection *od;

	ck_assert_str_eq(c->name, "outbound|9080||" HOST);
	ck_assert_int_eq(c->cluster_discovery_type_case, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
	ck_assert_int_eq(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
	ck_assert_ptr_nonnull(c->eds_cluster_config);
	ck_assert_str_eq(c->eds_cluster_config->service_name, "outbound|9080||" HOST);
	ck_assert_int_eq(c->eds_cluster_config->eds_config->config_source_specifier_case,
			 ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
	ck_assert_int_eq(c->eds_cluster_config->eds_config->resource_api_version,
			 ENVOY__CONFIG__CORE__V3__API_VERSION__V3);
	/* LEAST_REQUEST in the DestinationRule, ROUND_ROBIN for gRPC 1.51 */
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	ck_assert_int_eq(c->connect_timeout->seconds, 3);

	ck_assert_ptr_nonnull(c->circuit_breakers);
	ck_assert_uint_eq(c->circuit_breakers->n_thresholds, 1);
	t = c->circuit_breakers->thresholds[0];
	ck_assert_uint_eq(t->max_connections->value, 100);
	ck_assert_uint_eq(t->max_requests->value, 1000);
	ck_assert_uint_eq(t->max_pending_requests->value, 10);
	ck_assert_uint_eq(t->max_retries->value, 4);

	od = c->outlier_detection;
	ck_assert_ptr_nonnull(od);
	ck_assert_uint_eq(od->consecutive_5xx->value, 7);
	ck_assert_uint_eq(od->enforcing_consecutive_5xx->value, 100);
	ck_assert_uint_eq(od->consecutive_gateway_failure->value, 5);
	ck_assert_uint_eq(od->enforcing_consecutive_gateway_failure->value, 100);
	ck_assert_int_eq(od->interval->seconds, 300);
	ck_assert_int_eq(od->base_ejection_time->seconds, 900);
	ck_assert_uint_eq(od->max_ejection_percent->value, 50);
	ck_assert_ptr_nonnull(od->enforcing_success_rate);
	ck_assert_uint_eq(od->enforcing_success_rate->value, 0);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* no DestinationRule: round robin, Istio's 10s connect timeout, nothing else */
	c = unpack_cds("outbound|9090||" RATINGS);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	ck_assert_int_eq(c->connect_timeout->seconds, 10);
	ck_assert_ptr_null(c->circuit_breakers);
	ck_assert_ptr_null(c->outlier_detection);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
}
END_TEST

START_TEST(test_cluster_subsets)
{
	Envoy__Config__Cluster__V3__Cluster *c = unpack_cds("outbound|9080|v2|" HOST);

	/* consistentHash -> RING_HASH with the ring size; the rest inherited */
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH);
	ck_assert_int_eq(c->lb_config_case, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG);
	ck_assert_ptr_nonnull(c->ring_hash_lb_config->minimum_ring_size);
	ck_assert_uint_eq(c->ring_hash_lb_config->minimum_ring_size->value, 2048);
	ck_assert_str_eq(c->eds_cluster_config->service_name, "outbound|9080|v2|" HOST);
	ck_assert_uint_eq(c->circuit_breakers->thresholds[0]->max_requests->value, 1000);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* subset's connectionPool replaces the top-level group; RANDOM -> ROUND_ROBIN */
	c = unpack_cds("outbound|9080|v3|" HOST);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	ck_assert_uint_eq(c->circuit_breakers->thresholds[0]->max_requests->value, 7);
	ck_assert_ptr_null(c->circuit_breakers->thresholds[0]->max_connections);
	ck_assert_int_eq(c->connect_timeout->seconds, 10);
	ck_assert_uint_eq(c->outlier_detection->consecutive_5xx->value, 7);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);

	/* 1 port x (default + 3 subsets) + ratings' 2 ports */
	ck_assert_uint_eq(g_snap->sets[XDS_CLUSTER].n, 6);
}
END_TEST

/* ---------------------------------------------------------------- EDS */

START_TEST(test_endpoints_subset_and_localities)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = unpack_eds("outbound|9080|v1|" HOST);
	Envoy__Config__Endpoint__V3__LocalityLbEndpoints *l;
	Envoy__Config__Core__V3__SocketAddress *sa;

	ck_assert_str_eq(cla->cluster_name, "outbound|9080|v1|" HOST);
	/* v1 only: 127.0.0.1 and .5 in zone-a, .3 in zone-b */
	ck_assert_uint_eq(cla->n_endpoints, 2);
	l = cla->endpoints[0];
	ck_assert_str_eq(l->locality->region, "us-east");
	ck_assert_str_eq(l->locality->zone, "zone-a");
	ck_assert_str_eq(l->locality->sub_zone, "");
	ck_assert_ptr_nonnull(l->load_balancing_weight);
	ck_assert_uint_eq(l->load_balancing_weight->value, 7);
	ck_assert_uint_eq(l->n_lb_endpoints, 2);
	sa = l->lb_endpoints[0]->endpoint->address->socket_address;
	ck_assert_str_eq(sa->address, "127.0.0.1");
	ck_assert_uint_eq(sa->port_value, 9080);
	ck_assert_uint_eq(l->lb_endpoints[0]->load_balancing_weight->value, 3);
	ck_assert_int_eq(l->lb_endpoints[0]->health_status, ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY);
	ck_assert_str_eq(l->lb_endpoints[1]->endpoint->address->socket_address->address, "127.0.0.5");
	ck_assert_uint_eq(l->lb_endpoints[1]->load_balancing_weight->value, 4);

	l = cla->endpoints[1];
	ck_assert_str_eq(l->locality->zone, "zone-b");
	ck_assert_uint_eq(l->load_balancing_weight->value, 2);
	ck_assert_uint_eq(l->n_lb_endpoints, 1);
	ck_assert_str_eq(l->lb_endpoints[0]->endpoint->address->socket_address->address, "127.0.0.3");
	envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);

	/* v3: one endpoint on its named port, sub-zone kept */
	cla = unpack_eds("outbound|9080|v3|" HOST);
	ck_assert_uint_eq(cla->n_endpoints, 1);
	ck_assert_str_eq(cla->endpoints[0]->locality->region, "us-west");
	ck_assert_str_eq(cla->endpoints[0]->locality->sub_zone, "rack-1");
	ck_assert_uint_eq(cla->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->port_value, 19080);
	ck_assert_uint_eq(cla->endpoints[0]->load_balancing_weight->value, 1);
	envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);

	/* the whole service: 3 localities, 5 endpoints */
	cla = unpack_eds("outbound|9080||" HOST);
	ck_assert_uint_eq(cla->n_endpoints, 3);
	ck_assert_uint_eq(cla->endpoints[0]->n_lb_endpoints + cla->endpoints[1]->n_lb_endpoints +
				  cla->endpoints[2]->n_lb_endpoints, 5);
	ck_assert_uint_eq(cla->endpoints[0]->load_balancing_weight->value, 8);
	envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);

	/* one assignment per cluster */
	ck_assert_uint_eq(g_snap->sets[XDS_ENDPOINT].n, g_snap->sets[XDS_CLUSTER].n);
}
END_TEST

/* ---------------------------------------------------------------- determinism */

static void assert_same(const struct xds_snapshot *a, const struct xds_snapshot *b)
{
	int t;
	size_t i;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_uint_eq(a->sets[t].n, b->sets[t].n);
		for (i = 0; i < a->sets[t].n; i++) {
			const struct xds_resource *x = a->sets[t].v[i], *y = b->sets[t].v[i];

			ck_assert_str_eq(x->name, y->name);
			ck_assert_uint_eq(x->len, y->len);
			ck_assert(memcmp(x->data, y->data, x->len) == 0);
			ck_assert_uint_eq(x->hash, y->hash);
		}
	}
}

START_TEST(test_deterministic)
{
	struct xds_snapshot *again = NULL, *other = NULL;
	struct model *m2 = build_model(mesh_yaml);

	/* same model twice, and a model rebuilt from the same YAML */
	ck_assert_int_eq(gen_grpc_snapshot(g_model, &again), 0);
	assert_same(g_snap, again);
	ck_assert_int_eq(gen_grpc_snapshot(m2, &other), 0);
	assert_same(g_snap, other);
	xds_snapshot_unref(again);
	xds_snapshot_unref(other);
	model_unref(m2);
}
END_TEST

START_TEST(test_empty_model)
{
	struct model *m = build_model("");
	struct xds_snapshot *s = NULL;
	int t;

	ck_assert_int_eq(gen_grpc_snapshot(m, &s), 0);
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		ck_assert_uint_eq(s->sets[t].n, 0);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- profiles */

/* Every flag that differs from gen_profile_proxyless set the other way,
 * as a sidecar profile would: the same builders must follow the data. */
static const struct gen_profile profile_other = {
	.name = "test",
	.string_match = true,
	.weighted_total = false,
	.max_stream_duration = false,
	.least_request = true,
	.locality_weights = false,
	.endpoint_hostnames = true,
	.listener_address = true,
	.rbac_audit = true,
	.mixed_tls_port = true,
};

static void setup_other(void)
{
	g_model = build_model(mesh_yaml);
	ck_assert_int_eq(gen_snapshot(g_model, &profile_other, NULL, &g_snap), 0);
	ck_assert_ptr_nonnull(g_snap);
}

START_TEST(test_profile_string_match)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__HeaderMatcher *h = route_named(rc, "jason")->match->headers[0];

	ck_assert_int_eq(h->header_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH);
	ck_assert_int_eq(h->string_match->match_pattern_case, ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT);
	ck_assert_str_eq(h->string_match->exact, "jason");
	/* the regex route's withoutHeaders stays a present matcher */
	h = route_named(rc, "regex")->match->headers[0];
	ck_assert_int_eq(h->header_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH);
	ck_assert(h->invert_match);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_profile_weights_timeout)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = unpack_rds(HOST ":9080");
	Envoy__Config__Route__V3__RouteAction *ra = route_named(rc, "split")->route;

	ck_assert_int_eq(ra->cluster_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS);
	ck_assert_uint_eq(ra->weighted_clusters->n_clusters, 2);
	ck_assert_ptr_null(ra->weighted_clusters->total_weight);
	ck_assert_int_eq(ra->timeout->seconds, 5);
	ck_assert_ptr_null(ra->max_stream_duration);
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
}
END_TEST

START_TEST(test_profile_least_request)
{
	Envoy__Config__Cluster__V3__Cluster *c = unpack_cds("outbound|9080||" HOST);

	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	c = unpack_cds("outbound|9080|v3|" HOST);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	c = unpack_cds("outbound|9080|v2|" HOST);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	/* no DestinationRule: Istio's sidecar default */
	c = unpack_cds("outbound|9080||" RATINGS);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
	envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
}
END_TEST

START_TEST(test_profile_no_locality_weights)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = unpack_eds("outbound|9080||" HOST);
	size_t i;

	ck_assert_uint_gt(cla->n_endpoints, 1);
	for (i = 0; i < cla->n_endpoints; i++)
		ck_assert_ptr_null(cla->endpoints[i]->load_balancing_weight);
	envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);
}
END_TEST

START_TEST(test_profile_bound_listener)
{
	const struct xds_resource *r = res(XDS_LISTENER, HOST ":9080");
	Envoy__Config__Listener__V3__Listener *l = envoy__config__listener__v3__listener__unpack(NULL, r->len, r->data);

	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(l->api_listener);
	ck_assert_ptr_nonnull(l->address);
	ck_assert_str_eq(l->address->socket_address->address, "0.0.0.0");
	ck_assert_uint_eq(l->address->socket_address->port_value, 9080);
	ck_assert_uint_eq(l->n_filter_chains, 1);
	ck_assert_uint_eq(l->filter_chains[0]->n_filters, 1);
	ck_assert_str_eq(l->filter_chains[0]->filters[0]->name, "envoy.filters.network.http_connection_manager");
	ck_assert_str_eq(l->filter_chains[0]->filters[0]->typed_config->type_url,
			 TYPE_PREFIX "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
	envoy__config__listener__v3__listener__free_unpacked(l, NULL);
}
END_TEST

/* The proxyless entry point is the profile's, and profiles differ. */
START_TEST(test_profile_entry_points)
{
	struct xds_snapshot *a = NULL, *b = NULL;

	ck_assert_int_eq(gen_grpc_snapshot(g_model, &a), 0);
	ck_assert_int_eq(gen_snapshot(g_model, &gen_profile_proxyless, NULL, &b), 0);
	ck_assert_uint_eq(a->sets[XDS_ROUTE].n, b->sets[XDS_ROUTE].n);
	ck_assert_mem_eq(a->sets[XDS_ROUTE].v[0]->data, b->sets[XDS_ROUTE].v[0]->data, a->sets[XDS_ROUTE].v[0]->len);
	ck_assert_uint_eq(a->sets[XDS_ROUTE].n, g_snap->sets[XDS_ROUTE].n);
	ck_assert(a->sets[XDS_LISTENER].v[0]->len != g_snap->sets[XDS_LISTENER].v[0]->len ||
		  memcmp(a->sets[XDS_LISTENER].v[0]->data, g_snap->sets[XDS_LISTENER].v[0]->data,
			 a->sets[XDS_LISTENER].v[0]->len) != 0);
	xds_snapshot_unref(a);
	xds_snapshot_unref(b);
}
END_TEST

static Suite *gen_grpc_suite(void)
{
	Suite *s = suite_create("gen_grpc");
	TCase *tc = tcase_create("proxyless");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_listener_hcm);
	tcase_add_test(tc, test_route_domains_and_order);
	tcase_add_test(tc, test_route_header_exact_fault_retry_default);
	tcase_add_test(tc, test_route_weighted_prefix_timeout);
	tcase_add_test(tc, test_route_regex_method_no_retry);
	tcase_add_test(tc, test_route_query_params_kept);
	tcase_add_test(tc, test_route_catchall_retries_delay);
	tcase_add_test(tc, test_route_default_without_vs);
	tcase_add_test(tc, test_cluster_defaults_and_policy);
	tcase_add_test(tc, test_cluster_subsets);
	tcase_add_test(tc, test_endpoints_subset_and_localities);
	tcase_add_test(tc, test_deterministic);
	tcase_add_test(tc, test_empty_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("profile");
	tcase_add_checked_fixture(tc, setup_other, teardown);
	tcase_add_test(tc, test_profile_string_match);
	tcase_add_test(tc, test_profile_weights_timeout);
	tcase_add_test(tc, test_profile_least_request);
	tcase_add_test(tc, test_profile_no_locality_weights);
	tcase_add_test(tc, test_profile_bound_listener);
	tcase_add_test(tc, test_profile_entry_points);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed = testutil_run(gen_grpc_suite());

	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
