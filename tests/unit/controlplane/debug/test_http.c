/*
 * test_http.c - the debug HTTP endpoint, started on 127.0.0.1:0 with
 * callbacks over a configuration snapshot and a model built by hand, and
 * requested with libcurl.
 */
#include "common/buf.h"
#include "common/err.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/debug/debug.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/server.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEST_BODY_MAX (4u << 20)
#define TEST_HEADERS_MAX (64u << 10)

/* ---------------------------------------------------------------- fixtures */

/* Statically allocated objects: their reference counts start high so the
 * server's unrefs never free them. */
#define TEST_PINNED 1000000

static struct cfg_object vs_reviews = {
	.kind = CFG_VIRTUAL_SERVICE,
	.api_version = "networking.istio.io/v1beta1",
	.name = "reviews",
	.ns = "default",
	.origin = "mesh/reviews.yaml",
	.line = 3,
	.hash = 0x0123456789abcdefULL,
	/* the parser's canonical JSON holds the whole document */
	.json = "{\"apiVersion\":\"networking.istio.io/v1beta1\",\"kind\":\"VirtualService\","
		"\"metadata\":{\"name\":\"reviews\",\"namespace\":\"default\",\"labels\":{\"spec\":\"x,}\"}},"
		"\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\"},"
		"\"weight\":100}]}]},\"status\":{}}",
	.refs = MESH_REFCOUNT_INIT(TEST_PINNED),
};

static struct cfg_object dr_ratings = {
	.kind = CFG_DESTINATION_RULE,
	.api_version = "networking.istio.io/v1",
	.name = "ratings",
	.ns = "prod",
	.origin = "mesh/ratings.yaml",
	.line = 1,
	.hash = 0xfeedULL,
	.json = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
		"\"metadata\":{\"name\":\"ratings\",\"namespace\":\"prod\"},\"spec\":{\"host\":\"ratings\"}}",
	.refs = MESH_REFCOUNT_INIT(TEST_PINNED),
};

static struct cfg_object *vs_list[] = { &vs_reviews };
static struct cfg_object *dr_list[] = { &dr_ratings };

static struct cfg_error errors[] = {
	{
		.origin = "mesh/reviews.yaml",
		.line = 12,
		.column = 17,
		.kind = CFG_VIRTUAL_SERVICE,
		.api_version = "networking.istio.io/v1beta1",
		.ns = "default",
		.name = "reviews-bad",
		.field = "spec.http[0].route[1].weight",
		.message = "weight must be between 0 and 100",
	},
	{
		.origin = "mesh/broken.yaml",
		.line = 2,
		.column = 1,
		.kind = -1,
		.message = "mapping values are not allowed \"here\"",
	},
};

static struct cfg_snapshot snap = {
	.objects = { [CFG_VIRTUAL_SERVICE] = vs_list, [CFG_DESTINATION_RULE] = dr_list },
	.n_objects = { [CFG_VIRTUAL_SERVICE] = 1, [CFG_DESTINATION_RULE] = 1 },
	.errors = errors,
	.n_errors = 2,
	.generation = 42,
	.total_rejections = 5,
	.refs = MESH_REFCOUNT_INIT(TEST_PINNED),
};

static struct cfg_kv ep_label_kv[] = { { "app", "reviews" }, { "version", "v2" } };
static struct cfg_labels ep_labels = { ep_label_kv, 2 };
static uint32_t ep_ports[] = { 9080, 9443 };
static struct model_port svc_ports[] = {
	{ .number = 80, .name = "http", .protocol = "HTTP", .target_port = 9080 },
	{ .number = 443, .name = "https", .protocol = "TLS", .target_port = 0 },
};
static struct model_endpoint svc_eps[] = {
	{
		.address = "10.0.0.7",
		.labels = &ep_labels,
		.locality = "us-east1/us-east1-b/",
		.network = "",
		.weight = 3,
		.service_account = "bookinfo-reviews",
		.ns = "default",
		.ports = ep_ports,
	},
};
static struct model_service services[] = {
	{
		.hostname = "reviews.default.svc.cluster.local",
		.ns = "default",
		.ports = svc_ports,
		.n_ports = 2,
		.endpoints = svc_eps,
		.n_endpoints = 1,
		.resolution = CFG_RESOLUTION_STATIC,
	},
};
static struct model mdl = {
	.domain = "cluster.local",
	.root_namespace = "istio-system",
	.services = services,
	.n_services = 1,
	.generation = 7,
	.refs = MESH_REFCOUNT_INIT(TEST_PINNED),
};

static atomic_bool ready_flag;

static struct cfg_snapshot *cb_snapshot(void *ctx)
{
	(void)ctx;
	return cfg_snapshot_ref(&snap);
}

static struct model *cb_model(void *ctx)
{
	(void)ctx;
	return model_ref(&mdl);
}

static bool cb_ready(void *ctx)
{
	(void)ctx;
	return atomic_load(&ready_flag);
}

static struct debug_server *srv;
static int srv_port;

static void start_full(size_t max_response, struct xds_server *xds)
{
	struct debug_server_config cfg = {
		.addr = "127.0.0.1:0",
		.version = "1.2.3-test",
		.xds = xds,
		.ctx = NULL,
		.config_snapshot = cb_snapshot,
		.model = cb_model,
		.ready = cb_ready,
		.max_response_bytes = max_response,
	};

	atomic_store(&ready_flag, false);
	ck_assert_int_eq(debug_server_start(&cfg, &srv), 0);
	srv_port = debug_server_port(srv);
	ck_assert_int_gt(srv_port, 0);
}

static void start_with(size_t max_response)
{
	start_full(max_response, NULL);
}

static void setup(void)
{
	start_with(0);
}

static void teardown(void)
{
	debug_server_stop(srv);
	srv = NULL;
}

/* ---------------------------------------------------------------- client */

struct reply {
	long status;
	struct mesh_buf body;
	struct mesh_buf headers;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	return mesh_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

/* The address requests go to (a test may pick a non-loopback one). */
static const char *req_host = "127.0.0.1";

/* method NULL: GET. */
static void request(const char *method, const char *path, struct reply *r)
{
	char url[512];
	CURL *c = curl_easy_init();
	CURLcode rc;

	ck_assert_ptr_nonnull(c);
	mesh_buf_init(&r->body, TEST_BODY_MAX);
	mesh_buf_init(&r->headers, TEST_HEADERS_MAX);
	snprintf(url, sizeof(url), "http://%s:%d%s", req_host, srv_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (method && strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=1");
	} else if (method && strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (method) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	rc = curl_easy_perform(c);
	ck_assert_msg(rc == CURLE_OK, "curl %s: %s", url, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	if (!r->body.data)
		mesh_buf_puts(&r->body, "");
	if (!r->headers.data)
		mesh_buf_puts(&r->headers, "");
}

static void reply_cleanup(struct reply *r)
{
	mesh_buf_cleanup(&r->body);
	mesh_buf_cleanup(&r->headers);
}

/* The value of header `name` (case-insensitive) into out; false when absent. */
static bool header(const struct reply *r, const char *name, char *out, size_t cap)
{
	const char *p = r->headers.data;
	size_t n = strlen(name);

	while (p && *p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strpbrk(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(out, cap, "%.*s", (int)(e - v), v);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static void assert_content_type(const struct reply *r, const char *want_prefix)
{
	char ct[256];

	ck_assert_msg(header(r, "Content-Type", ct, sizeof(ct)), "no Content-Type");
	ck_assert_msg(strncmp(ct, want_prefix, strlen(want_prefix)) == 0, "Content-Type %s, want %s", ct,
		      want_prefix);
}

static void assert_has(const struct reply *r, const char *needle)
{
	ck_assert_msg(strstr(r->body.data, needle) != NULL, "missing %s in:\n%s", needle, r->body.data);
}

static void assert_lacks(const struct reply *r, const char *needle)
{
	ck_assert_msg(strstr(r->body.data, needle) == NULL, "unexpected %s in:\n%s", needle, r->body.data);
}

/* ---------------------------------------------------------------- tests */

START_TEST(ready_flips)
{
	struct reply r;

	request(NULL, "/ready", &r);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(r.body.data, "not ready");
	assert_content_type(&r, "text/plain");
	reply_cleanup(&r);

	atomic_store(&ready_flag, true);
	request(NULL, "/ready", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body.data, "ready");
	assert_content_type(&r, "text/plain");
	reply_cleanup(&r);
}
END_TEST

START_TEST(version_json)
{
	struct reply r;

	request(NULL, "/version", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	assert_has(&r, "\"version\":\"1.2.3-test\"");
	assert_has(&r, "\"component\":\"meshd\"");
	reply_cleanup(&r);
}
END_TEST

static double metric(const struct reply *r, const char *series)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", series);
	p = strstr(r->body.data, key);
	ck_assert_msg(p != NULL, "no sample %s", series);
	return strtod(p + strlen(key), NULL);
}

START_TEST(metrics_served_and_counting)
{
	struct reply r;
	double cds, rejected;

	request(NULL, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "text/plain; version=0.0.4");
	assert_has(&r, "# HELP pilot_xds_pushes ");
	assert_has(&r, "# TYPE pilot_xds_pushes counter\n");
	assert_has(&r, "# TYPE pilot_total_xds_rejects counter\n");
	assert_has(&r, "# TYPE pilot_xds gauge\n");
	assert_has(&r, "# TYPE pilot_proxy_convergence_time histogram\n");
	assert_has(&r, "pilot_proxy_convergence_time_bucket{le=\"+Inf\"} ");
	assert_has(&r, "# TYPE meshd_config_rejected_total counter\n");
	assert_has(&r, "# TYPE meshd_config_objects gauge\n");
	assert_has(&r, "# TYPE meshd_config_reloads_total counter\n");
	assert_has(&r, "# TYPE process_resident_memory_bytes gauge\n");
	assert_has(&r, "# TYPE process_cpu_seconds_total counter\n");
	assert_has(&r, "# TYPE process_start_time_seconds gauge\n");
	/* the object gauge follows the served snapshot */
	ck_assert_double_eq(metric(&r, "meshd_config_objects{kind=\"VirtualService\"}"), 1);
	ck_assert_double_eq(metric(&r, "meshd_config_objects{kind=\"ServiceEntry\"}"), 0);
	cds = metric(&r, "pilot_xds_pushes{type=\"cds\"}");
	rejected = metric(&r, "meshd_config_rejected_total");
	reply_cleanup(&r);

	metrics_xds_push(XDS_CLUSTER);
	metrics_xds_push(XDS_CLUSTER);
	metrics_xds_push(XDS_CLUSTER);
	metrics_config_rejected(2);

	request(NULL, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_double_eq(metric(&r, "pilot_xds_pushes{type=\"cds\"}"), cds + 3);
	ck_assert_double_eq(metric(&r, "meshd_config_rejected_total"), rejected + 2);
	reply_cleanup(&r);
}
END_TEST

START_TEST(configz_lists_objects_and_errors)
{
	struct reply r;

	request(NULL, "/debug/configz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	assert_has(&r, "{\"generation\":42,");
	assert_has(&r, "{\"kind\":\"VirtualService\",\"apiVersion\":\"networking.istio.io/v1beta1\","
		       "\"namespace\":\"default\",\"name\":\"reviews\",\"origin\":\"mesh/reviews.yaml\","
		       "\"line\":3,\"version\":\"0123456789abcdef\",\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":"
		       "[{\"destination\":{\"host\":\"reviews\"},\"weight\":100}]}]},"
		       "\"object\":{\"apiVersion\":\"networking.istio.io/v1beta1\",\"kind\":\"VirtualService\",");
	/* spec is the document's spec, never the document again (spec under spec) */
	assert_lacks(&r, "\"spec\":{\"apiVersion\"");
	assert_has(&r, "\"spec\":{\"host\":\"ratings\"},\"object\":{");
	assert_has(&r, "\"kind\":\"DestinationRule\"");
	/* the error with its source position and field path */
	assert_has(&r, "\"origin\":\"mesh/reviews.yaml\",\"line\":12,\"column\":17,\"kind\":\"VirtualService\","
		       "\"namespace\":\"default\",\"name\":\"reviews-bad\","
		       "\"field\":\"spec.http[0].route[1].weight\"");
	assert_has(&r, "\"message\":\"weight must be between 0 and 100\"");
	assert_has(&r, "\"text\":\"mesh/reviews.yaml:12:");
	/* an unidentified document: kind, namespace and name are null; quotes escaped */
	assert_has(&r, "\"kind\":null,\"namespace\":null,\"name\":null,\"field\":null,"
		       "\"message\":\"mapping values are not allowed \\\"here\\\"\"");
	reply_cleanup(&r);
}
END_TEST

/* Served from a store fed by the real parser: a rejected VirtualService. */
static struct cfg_snapshot *store_snap;

static struct cfg_snapshot *cb_store_snapshot(void *ctx)
{
	(void)ctx;
	return cfg_snapshot_ref(store_snap);
}

START_TEST(configz_from_parsed_store)
{
	static const char yaml[] =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata:\n"
		"  name: reviews\n"
		"  namespace: default\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - route:\n"
		"    - destination:\n"
		"        host: reviews\n"
		"      weight: -5\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata:\n"
		"  name: ratings\n"
		"spec:\n"
		"  host: ratings\n";
	struct debug_server_config cfg = {
		.addr = "127.0.0.1:0",
		.config_snapshot = cb_store_snapshot,
		.ready = cb_ready,
	};
	struct cfg_parse_result res;
	struct cfg_store *store;
	struct reply r;

	teardown();
	memset(&res, 0, sizeof(res));
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(cfg_parse_buffer("mesh/bad.yaml", yaml, sizeof(yaml) - 1, &res), 0);
	ck_assert_int_ge(cfg_store_apply_origin(store, "mesh/bad.yaml", &res), 0);
	cfg_parse_result_cleanup(&res);
	store_snap = cfg_store_snapshot(store);
	ck_assert_ptr_nonnull(store_snap);
	ck_assert_int_eq(debug_server_start(&cfg, &srv), 0);
	srv_port = debug_server_port(srv);

	request(NULL, "/debug/configz", &r);
	ck_assert_int_eq(r.status, 200);
	/* the valid document is served with its spec and its canonical JSON ... */
	assert_has(&r, "\"kind\":\"DestinationRule\",\"apiVersion\":\"networking.istio.io/v1\","
		       "\"namespace\":\"default\",\"name\":\"ratings\",\"origin\":\"mesh/bad.yaml\"");
	assert_has(&r, "\"spec\":{\"host\":\"ratings\"},\"object\":{\"apiVersion\":\"networking.istio.io/v1\","
		       "\"kind\":\"DestinationRule\",\"metadata\":{\"name\":\"ratings\"},\"spec\":{\"host\":\"ratings\"}}");
	/* ... and the rejected one is listed with its position and field path */
	assert_has(&r, "\"origin\":\"mesh/bad.yaml\",\"line\":12,");
	assert_has(&r, "\"kind\":\"VirtualService\",\"namespace\":\"default\",\"name\":\"reviews\","
		       "\"field\":\"spec.http[0].route[0].weight\"");
	assert_has(&r, "\"text\":\"mesh/bad.yaml:12:");
	reply_cleanup(&r);

	request(NULL, "/metrics", &r);
	ck_assert_double_eq(metric(&r, "meshd_config_objects{kind=\"DestinationRule\"}"), 1);
	ck_assert_double_eq(metric(&r, "meshd_config_objects{kind=\"VirtualService\"}"), 0);
	reply_cleanup(&r);

	teardown();
	cfg_snapshot_unref(store_snap);
	store_snap = NULL;
	cfg_store_free(store);
}
END_TEST

static struct model *built_model;

static struct model *cb_built_model(void *ctx)
{
	(void)ctx;
	return model_ref(built_model);
}

/* What proxyless clients do not get is listed with the object's other
 * warnings, once per object. */
START_TEST(configz_proxyless_findings)
{
	static const char yaml[] =
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: ratings, namespace: shop}\n"
		"spec:\n"
		"  host: ratings\n"
		"  trafficPolicy:\n"
		"    loadBalancer: {simple: LEAST_REQUEST}\n"
		"    connectionPool: {http: {maxRequestsPerConnection: 1}}\n"
		"  subsets:\n"
		"  - {name: v1, labels: {v: '1'}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}\n";
	struct debug_server_config cfg = {
		.addr = "127.0.0.1:0",
		.config_snapshot = cb_store_snapshot,
		.model = cb_built_model,
		.ready = cb_ready,
	};
	struct cfg_parse_result res;
	struct cfg_store *store;
	struct reply r;
	const char *p;

	teardown();
	memset(&res, 0, sizeof(res));
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(cfg_parse_buffer("mesh/dr.yaml", yaml, sizeof(yaml) - 1, &res), 0);
	ck_assert_int_ge(cfg_store_apply_origin(store, "mesh/dr.yaml", &res), 0);
	cfg_parse_result_cleanup(&res);
	store_snap = cfg_store_snapshot(store);
	ck_assert_ptr_nonnull(store_snap);
	built_model = model_build(store_snap, "cluster.local", "istio-system");
	ck_assert_ptr_nonnull(built_model);
	ck_assert_int_eq(debug_server_start(&cfg, &srv), 0);
	srv_port = debug_server_port(srv);

	request(NULL, "/debug/configz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_has(&r, "\"kind\":\"DestinationRule\",\"namespace\":\"shop\",\"name\":\"ratings\",\"field\":\"spec\","
		       "\"message\":\"not applied to proxyless gRPC clients: loadBalancer.simple LEAST_REQUEST (served as "
		       "ROUND_ROBIN), connectionPool.http.maxRequestsPerConnection\"");
	/* once, although two levels set LEAST_REQUEST */
	p = strstr(r.body.data, "\"message\":\"not applied to proxyless");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_null(strstr(p + 1, "\"message\":\"not applied to proxyless"));
	reply_cleanup(&r);

	teardown();
	model_unref(built_model);
	built_model = NULL;
	cfg_snapshot_unref(store_snap);
	store_snap = NULL;
	cfg_store_free(store);
}
END_TEST

START_TEST(configz_kind_filter)
{
	struct reply r;

	request(NULL, "/debug/configz?kind=DestinationRule", &r);
	ck_assert_int_eq(r.status, 200);
	assert_has(&r, "\"name\":\"ratings\"");
	assert_lacks(&r, "\"name\":\"reviews\"");
	assert_lacks(&r, "reviews-bad");
	assert_has(&r, "\"errors\":[]");
	reply_cleanup(&r);

	request(NULL, "/debug/configz?kind=VirtualService", &r);
	ck_assert_int_eq(r.status, 200);
	assert_has(&r, "\"name\":\"reviews\"");
	assert_has(&r, "reviews-bad");
	assert_lacks(&r, "\"name\":\"ratings\"");
	reply_cleanup(&r);

	request(NULL, "/debug/configz?kind=Deployment", &r);
	ck_assert_int_eq(r.status, 400);
	assert_content_type(&r, "application/json");
	assert_has(&r, "\"error\":");
	reply_cleanup(&r);
}
END_TEST

START_TEST(debug_lists_endpoints)
{
	static const char *const paths[] = { "/debug/configz", "/debug/syncz", "/debug/config_dump",
					     "/debug/registryz" };
	struct reply r;
	char needle[128];
	size_t i;

	request(NULL, "/debug", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	assert_has(&r, "{\"endpoints\":[");
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(needle, sizeof(needle), "{\"path\":\"%s\",\"description\":", paths[i]);
		assert_has(&r, needle);
	}
	assert_lacks(&r, "\"/ready\"");
	reply_cleanup(&r);
}
END_TEST

/* A non-loopback IPv4 address of this host into out, or false. */
static bool local_non_loopback(char *out, size_t cap)
{
	struct ifaddrs *ifs, *i;
	bool found = false;

	if (getifaddrs(&ifs) < 0)
		return false;
	for (i = ifs; i && !found; i = i->ifa_next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET || (ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			continue;
		found = inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)cap) != NULL;
	}
	freeifaddrs(ifs);
	return found;
}

START_TEST(debug_refuses_remote_callers)
{
	struct debug_server_config cfg = {
		.addr = "0.0.0.0:0",
		.config_snapshot = cb_snapshot,
		.model = cb_model,
		.ready = cb_ready,
	};
	static const char *const paths[] = { "/debug", "/debug/configz", "/debug/syncz",
					     "/debug/config_dump?proxyID=x", "/debug/registryz", "/debug/nope" };
	char ip[INET_ADDRSTRLEN];
	struct reply r;
	size_t i;

	if (!local_non_loopback(ip, sizeof(ip))) {
		fprintf(stderr, "debug_refuses_remote_callers: no non-loopback IPv4 address here, not run\n");
		return;
	}
	teardown();
	ck_assert_int_eq(debug_server_start(&cfg, &srv), 0);
	srv_port = debug_server_port(srv);
	req_host = ip;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		request(NULL, paths[i], &r);
		ck_assert_msg(r.status == 403, "%s from %s: %ld", paths[i], ip, r.status);
		assert_content_type(&r, "application/json");
		assert_has(&r, "only callers on meshd's host (localhost)");
		assert_lacks(&r, "reviews");
		reply_cleanup(&r);
	}
	/* the probes and metrics stay open, as istiod's are */
	request(NULL, "/version", &r);
	ck_assert_int_eq(r.status, 200);
	reply_cleanup(&r);
	request(NULL, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	reply_cleanup(&r);
	/* and localhost still sees everything */
	req_host = "127.0.0.1";
	request(NULL, "/debug/configz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_has(&r, "\"name\":\"reviews\"");
	reply_cleanup(&r);
}
END_TEST

START_TEST(unknown_path_404)
{
	struct reply r;

	request(NULL, "/debug/nope", &r);
	ck_assert_int_eq(r.status, 404);
	assert_content_type(&r, "application/json");
	assert_has(&r, "{\"error\":");
	assert_has(&r, "/debug/nope");
	reply_cleanup(&r);
}
END_TEST

START_TEST(non_get_405)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE" };
	struct reply r;
	char allow[128];
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		request(methods[i], "/ready", &r);
		ck_assert_int_eq(r.status, 405);
		assert_content_type(&r, "application/json");
		ck_assert_msg(header(&r, "Allow", allow, sizeof(allow)), "405 without Allow");
		ck_assert_ptr_nonnull(strstr(allow, "GET"));
		reply_cleanup(&r);
	}
	/* HEAD is GET without the body */
	atomic_store(&ready_flag, true);
	request("HEAD", "/ready", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body.len, 0);
	reply_cleanup(&r);
}
END_TEST

START_TEST(config_dump_and_syncz_without_xds)
{
	struct reply r;

	request(NULL, "/debug/config_dump", &r);
	ck_assert_int_eq(r.status, 400);
	assert_content_type(&r, "application/json");
	assert_has(&r, "proxyID");
	reply_cleanup(&r);

	request(NULL, "/debug/config_dump?proxyID=", &r);
	ck_assert_int_eq(r.status, 400);
	reply_cleanup(&r);

	request(NULL, "/debug/config_dump?proxyID=sidecar~10.0.0.1~a.default~default.svc.cluster.local", &r);
	ck_assert_int_eq(r.status, 404);
	assert_content_type(&r, "application/json");
	assert_has(&r, "sidecar~10.0.0.1~a.default");
	reply_cleanup(&r);

	request(NULL, "/debug/syncz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	ck_assert_str_eq(r.body.data, "[]\n");
	reply_cleanup(&r);
}
END_TEST

START_TEST(syncz_and_config_dump_with_xds)
{
	struct xds_server_config xc = { .addr = "127.0.0.1:0" };
	struct xds_server *xds = NULL;
	struct reply r;

	teardown();
	ck_assert_int_eq(xds_server_start(&xc, &xds), 0);
	start_full(0, xds);

	/* no proxy connected yet */
	request(NULL, "/debug/syncz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	ck_assert_msg(r.body.data[0] == '[', "syncz is a JSON array: %s", r.body.data);
	assert_lacks(&r, "sidecar~");
	reply_cleanup(&r);

	request(NULL, "/debug/config_dump?proxyID=sidecar~10.0.0.9~b.default~default.svc.cluster.local", &r);
	ck_assert_int_eq(r.status, 404);
	assert_has(&r, "\"error\":");
	reply_cleanup(&r);

	request(NULL, "/debug/config_dump", &r);
	ck_assert_int_eq(r.status, 400);
	reply_cleanup(&r);

	teardown();
	xds_server_stop(xds);
}
END_TEST

START_TEST(registryz_lists_services)
{
	struct reply r;

	request(NULL, "/debug/registryz", &r);
	ck_assert_int_eq(r.status, 200);
	assert_content_type(&r, "application/json");
	assert_has(&r, "[{\"hostname\":\"reviews.default.svc.cluster.local\",\"namespace\":\"default\","
		       "\"resolution\":\"STATIC\"");
	assert_has(&r, "{\"number\":80,\"name\":\"http\",\"protocol\":\"HTTP\",\"targetPort\":9080}");
	assert_has(&r, "{\"number\":443,\"name\":\"https\",\"protocol\":\"TLS\",\"targetPort\":443}");
	assert_has(&r, "{\"address\":\"10.0.0.7\",\"ports\":{\"http\":9080,\"https\":9443},"
		       "\"labels\":{\"app\":\"reviews\",\"version\":\"v2\"},\"locality\":\"us-east1/us-east1-b/\"");
	assert_has(&r, "\"weight\":3,\"ready\":true,\"serviceAccount\":\"bookinfo-reviews\"}");
	reply_cleanup(&r);
}
END_TEST

START_TEST(response_cap_is_500)
{
	struct reply r;

	teardown();
	start_with(128);
	request(NULL, "/debug/configz", &r);
	ck_assert_int_eq(r.status, 500);
	assert_content_type(&r, "application/json");
	assert_has(&r, "limit");
	reply_cleanup(&r);

	/* small answers still fit */
	request(NULL, "/version", &r);
	ck_assert_int_eq(r.status, 200);
	reply_cleanup(&r);
}
END_TEST

START_TEST(keepalive_reuses_connection)
{
	struct mesh_buf body;
	char url[128];
	CURL *c = curl_easy_init();
	long status = 0, connects = -1;
	int i;

	mesh_buf_init(&body, TEST_BODY_MAX);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	for (i = 0; i < 2; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv_port, i ? "/version" : "/metrics");
		curl_easy_setopt(c, CURLOPT_URL, url);
		ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		ck_assert_int_eq(status, 200);
	}
	/* the second request went over the first one's connection */
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(connects, 0);
	curl_easy_cleanup(c);
	mesh_buf_cleanup(&body);
}
END_TEST

START_TEST(get_with_body_still_answered)
{
	struct reply r;
	CURL *c = curl_easy_init();
	char url[128];
	long status = 0;

	/* a body on GET is ignored, not an error */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/version", srv_port);
	mesh_buf_init(&r.body, TEST_BODY_MAX);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "ignored=1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_ptr_nonnull(strstr(r.body.data, "\"component\":\"meshd\""));
	curl_easy_cleanup(c);
	mesh_buf_cleanup(&r.body);
}
END_TEST

#define TEST_THREADS 4
#define TEST_ROUNDS 20

static void *hammer(void *arg)
{
	static const char *const paths[] = { "/debug/configz", "/metrics", "/debug/registryz", "/ready" };
	long ok = 0;
	int i;

	(void)arg;
	for (i = 0; i < TEST_ROUNDS; i++) {
		struct reply r;

		metrics_xds_push(XDS_ENDPOINT);
		metrics_convergence(0.25);
		request(NULL, paths[i % 4], &r);
		if (r.status == 200 && r.body.len > 0)
			ok++;
		reply_cleanup(&r);
	}
	return (void *)ok;
}

START_TEST(concurrent_clients)
{
	pthread_t th[TEST_THREADS];
	struct reply r;
	double eds;
	void *ok;
	int i;

	atomic_store(&ready_flag, true);
	request(NULL, "/metrics", &r);
	eds = metric(&r, "pilot_xds_pushes{type=\"eds\"}");
	reply_cleanup(&r);
	for (i = 0; i < TEST_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (i = 0; i < TEST_THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], &ok), 0);
		ck_assert_int_eq((long)ok, TEST_ROUNDS);
	}
	request(NULL, "/metrics", &r);
	ck_assert_double_eq(metric(&r, "pilot_xds_pushes{type=\"eds\"}"), eds + TEST_THREADS * TEST_ROUNDS);
	reply_cleanup(&r);
}
END_TEST

START_TEST(addresses)
{
	struct debug_server_config cfg = { .addr = NULL, .ready = cb_ready };
	struct debug_server *d = NULL, *d2 = NULL;
	static const char *const bad[] = { "", "15014", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
					   "127.0.0.1:80x", "::1:15014", "[::1]15014", "[::1", "300.0.0.1:1",
					   "example.com:80" };
	char addr[64];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.addr = bad[i];
		ck_assert_msg(debug_server_start(&cfg, &d) == -EINVAL, "accepted \"%s\"", bad[i]);
		ck_assert_ptr_null(d);
	}
	/* the port of the running server is taken */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_port);
	cfg.addr = addr;
	ck_assert_int_eq(debug_server_start(&cfg, &d), -EADDRINUSE);
	ck_assert_ptr_null(d);

	cfg.addr = "[::1]:0";
	rc = debug_server_start(&cfg, &d);
	if (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)
		return; /* no IPv6 loopback here */
	ck_assert_int_eq(rc, 0);
	ck_assert_int_gt(debug_server_port(d), 0);
	/* and it answers over IPv6 */
	{
		CURL *c = curl_easy_init();
		long status = 0;

		snprintf(addr, sizeof(addr), "http://[::1]:%d/ready", debug_server_port(d));
		curl_easy_setopt(c, CURLOPT_URL, addr);
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
		ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		ck_assert_int_eq(status, 503);
		curl_easy_cleanup(c);
	}
	cfg.addr = "0.0.0.0:0";
	ck_assert_int_eq(debug_server_start(&cfg, &d2), 0);
	debug_server_stop(d2);
	debug_server_stop(d);
	debug_server_stop(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("debug_http");
	TCase *tc = tcase_create("http");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, ready_flips);
	tcase_add_test(tc, version_json);
	tcase_add_test(tc, metrics_served_and_counting);
	tcase_add_test(tc, configz_lists_objects_and_errors);
	tcase_add_test(tc, configz_from_parsed_store);
	tcase_add_test(tc, configz_kind_filter);
	tcase_add_test(tc, configz_proxyless_findings);
	tcase_add_test(tc, debug_lists_endpoints);
	tcase_add_test(tc, debug_refuses_remote_callers);
	tcase_add_test(tc, unknown_path_404);
	tcase_add_test(tc, non_get_405);
	tcase_add_test(tc, config_dump_and_syncz_without_xds);
	tcase_add_test(tc, syncz_and_config_dump_with_xds);
	tcase_add_test(tc, registryz_lists_services);
	tcase_add_test(tc, response_cap_is_500);
	tcase_add_test(tc, keepalive_reuses_connection);
	tcase_add_test(tc, get_with_body_still_answered);
	tcase_add_test(tc, concurrent_clients);
	tcase_add_test(tc, addresses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
