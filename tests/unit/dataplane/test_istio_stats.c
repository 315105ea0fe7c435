/* Unit tests for dataplane/istio_stats.c: metadata exchange encoding, the
 * labels Istio writes, histograms, and the cardinality cap. */
#include "dataplane/istio_stats.h"

#include "istio/stats/config.pb-c.h"

#include "common/str.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE "sidecar~127.0.0.2~reviews-v2.demo~demo.svc.cluster.local"

START_TEST(test_peer_roundtrip)
{
	struct istio_peer p, q;
	char b64[ISTIO_META_HDR_MAX];
	int n;

	ck_assert_int_eq(istio_peer_from_node(&p, NODE, "app=reviews,version=v2", "c1"), 0);
	ck_assert_str_eq(p.workload, "reviews-v2");
	ck_assert_str_eq(p.ns, "demo");
	ck_assert_str_eq(p.canon_svc, "reviews");
	ck_assert_str_eq(p.canon_rev, "v2");
	n = istio_peer_encode(&p, b64, sizeof(b64));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(b64), (size_t)n);
	ck_assert_int_eq(istio_peer_decode(b64, (size_t)n, &q), 0);
	ck_assert_str_eq(q.workload, "reviews-v2");
	ck_assert_str_eq(q.ns, "demo");
	ck_assert_str_eq(q.app, "reviews");
	ck_assert_str_eq(q.version, "v2");
	ck_assert_str_eq(q.cluster, "c1");
	ck_assert_str_eq(q.canon_svc, "reviews");
	ck_assert_int_lt(istio_peer_decode("!!!!", 4, &q), 0);
	ck_assert_int_lt(istio_peer_decode(b64, (size_t)n - 1, &q), 0);
	ck_assert_int_eq(istio_peer_from_node(&p, NODE, "app", NULL), -EINVAL);
}
END_TEST

START_TEST(test_canonical_fallbacks)
{
	struct istio_peer p;

	ck_assert_int_eq(istio_peer_from_node(&p, NODE, "app.kubernetes.io/name=rv,service.istio.io/canonical-revision=r9",
					      NULL), 0);
	ck_assert_str_eq(p.canon_svc, "rv");
	ck_assert_str_eq(p.canon_rev, "r9");
	ck_assert_str_eq(p.app, "");
	ck_assert_str_eq(p.cluster, "Kubernetes");
	ck_assert_int_eq(istio_peer_from_node(&p, NODE, "", NULL), 0);
	ck_assert_str_eq(p.canon_svc, "reviews-v2");
	ck_assert_str_eq(p.canon_rev, "latest");
}
END_TEST

/* The injector's ISTIO_META_WORKLOAD_NAME (meshproxy --workload-name):
 * a Deployment's pod reports the Deployment, as Istio's agent, not the
 * pod name the node id carries. */
START_TEST(test_set_workload)
{
	struct istio_stats *st;
	struct istio_peer q;
	const char *meta;
	const uint8_t *mx;
	size_t mxlen;

	ck_assert_int_eq(istio_stats_new("sidecar~10.0.0.7~reviews-v1-545db77b95-svmcp.demo~demo.svc.cluster.local",
					 "app=reviews,version=v1", "bookinfo-reviews", 0, &st), 0);
	meta = istio_stats_meta(st);
	ck_assert_int_eq(istio_peer_decode(meta, strlen(meta), &q), 0);
	ck_assert_str_eq(q.workload, "reviews-v1-545db77b95-svmcp");
	ck_assert_int_eq(istio_stats_set_workload(st, ""), 0); /* unset: the pod name stays */
	ck_assert_int_eq(istio_stats_set_workload(st, "reviews-v1"), 0);
	meta = istio_stats_meta(st);
	ck_assert_int_eq(istio_peer_decode(meta, strlen(meta), &q), 0);
	ck_assert_str_eq(q.workload, "reviews-v1");
	ck_assert_str_eq(q.canon_svc, "reviews"); /* from the app label, kept */
	mx = istio_stats_mx(st, &mxlen);
	ck_assert_ptr_nonnull(mx);
	ck_assert_int_eq(istio_peer_mx_decode(mx + 8, mxlen - 8, &q), 0);
	ck_assert_str_eq(q.workload, "reviews-v1");
	istio_stats_free(st);
	/* no label named the canonical service: it follows the workload */
	ck_assert_int_eq(istio_stats_new("sidecar~10.0.0.8~ratings-7d9c8f-x2bq7.demo~demo.svc.cluster.local", "", NULL, 0,
					 &st), 0);
	ck_assert_int_eq(istio_stats_set_workload(st, "ratings"), 0);
	meta = istio_stats_meta(st);
	ck_assert_int_eq(istio_peer_decode(meta, strlen(meta), &q), 0);
	ck_assert_str_eq(q.workload, "ratings");
	ck_assert_str_eq(q.canon_svc, "ratings");
	istio_stats_free(st);
}
END_TEST

static char *prom(struct istio_stats *st)
{
	struct mesh_buf b;
	char *s;

	mesh_buf_init(&b, 1 << 22);
	istio_stats_prometheus(st, &b);
	ck_assert_int_eq(b.err, 0);
	s = strndup(b.data, b.len);
	mesh_buf_cleanup(&b);
	return s;
}

START_TEST(test_record_labels)
{
	struct istio_stats *st;
	struct istio_peer src;
	const struct istio_peer *pp;
	struct istio_req r;
	char b64[ISTIO_META_HDR_MAX], *out;
	int n, i;

	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews,version=v2", "bookinfo-reviews", 0, &st), 0);
	ck_assert_int_eq(istio_peer_from_node(&src, "sidecar~127.0.0.3~productpage-v1.demo~x", "app=productpage,version=v1",
					      NULL), 0);
	n = istio_peer_encode(&src, b64, sizeof(b64));
	pp = istio_stats_peer(st, b64, (size_t)n);
	ck_assert_ptr_nonnull(pp);
	ck_assert_ptr_eq(istio_stats_peer(st, b64, (size_t)n), pp); /* cached */
	memset(&r, 0, sizeof(r));
	r.inbound = 1;
	r.peer = pp;
	r.peer_principal = "spiffe://cluster.local/ns/demo/sa/productpage";
	r.mtls = 1;
	r.service = "reviews.demo.svc.cluster.local";
	r.service_len = strlen(r.service);
	r.response_code = 200;
	r.grpc_status = -1;
	r.response_flags = "-";
	r.duration_ms = 3;
	r.request_bytes = 0;
	r.response_bytes = 700;
	for (i = 0; i < 3; i++)
		istio_stats_record(st, &r);
	r.response_code = 503;
	r.response_flags = "UF";
	istio_stats_record(st, &r);
	ck_assert_uint_eq(istio_stats_series(st), 2);
	out = prom(st);
	ck_assert_ptr_nonnull(strstr(out,
		"istio_requests_total{reporter=\"destination\",source_workload=\"productpage-v1\","
		"source_canonical_service=\"productpage\",source_canonical_revision=\"v1\","
		"source_workload_namespace=\"demo\",source_principal=\"spiffe://cluster.local/ns/demo/sa/productpage\","
		"source_app=\"productpage\",source_version=\"v1\",source_cluster=\"Kubernetes\","
		"destination_workload=\"reviews-v2\",destination_workload_namespace=\"demo\","
		"destination_principal=\"spiffe://cluster.local/ns/demo/sa/bookinfo-reviews\","
		"destination_app=\"reviews\",destination_version=\"v2\","
		"destination_service=\"reviews.demo.svc.cluster.local\",destination_canonical_service=\"reviews\","
		"destination_canonical_revision=\"v2\",destination_service_name=\"reviews\","
		"destination_service_namespace=\"demo\",destination_cluster=\"Kubernetes\",request_protocol=\"http\","
		"response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		"connection_security_policy=\"mutual_tls\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "response_code=\"503\""));
	ck_assert_ptr_nonnull(strstr(out, "response_flags=\"UF\",connection_security_policy=\"mutual_tls\"} 1\n"));
	/* 3 ms lands in le=5 and not in le=1; 700 bytes in le=1000 */
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"mutual_tls\",le=\"1\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"mutual_tls\",le=\"5\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"mutual_tls\",le=\"3.6e+06\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "# TYPE istio_request_duration_milliseconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(out, "# TYPE istio_response_bytes histogram\n"));
	free(out);

	/* the source reporter: unknown peer, gRPC */
	memset(&r, 0, sizeof(r));
	r.service = "ratings";
	r.service_len = 7;
	r.grpc = 1;
	r.response_code = 200;
	r.grpc_status = 14;
	istio_stats_record(st, &r);
	out = prom(st);
	ck_assert_ptr_nonnull(strstr(out, "{reporter=\"source\",source_workload=\"reviews-v2\","));
	ck_assert_ptr_nonnull(strstr(out, "destination_workload=\"unknown\",destination_workload_namespace=\"unknown\","
					  "destination_principal=\"unknown\""));
	ck_assert_ptr_nonnull(strstr(out, "destination_service_name=\"ratings\",destination_service_namespace=\"unknown\""));
	ck_assert_ptr_nonnull(strstr(out, "request_protocol=\"grpc\",response_code=\"200\",grpc_response_status=\"14\","
					  "response_flags=\"-\",connection_security_policy=\"unknown\"} 1\n"));
	free(out);
	istio_stats_free(st);
}
END_TEST

START_TEST(test_cap)
{
	struct istio_stats *st;
	struct istio_req r;
	int i;

	ck_assert_int_eq(istio_stats_new(NODE, "", NULL, 4, &st), 0);
	memset(&r, 0, sizeof(r));
	r.service = "a.b";
	r.service_len = 3;
	r.grpc_status = -1;
	for (i = 0; i < 10; i++) {
		r.response_code = 200 + i;
		istio_stats_record(st, &r);
		istio_stats_record(st, &r);
	}
	ck_assert_uint_eq(istio_stats_series(st), 4);
	ck_assert_uint_eq(istio_stats_overflow(st), 12);
	istio_stats_free(st);
	istio_stats_free(NULL);
}
END_TEST

START_TEST(test_helpers)
{
	struct istio_stats *st;
	static const char tr[] = "x: 1\r\nGRPC-Status: 14\r\ngrpc-message: no\r\n";
	const char *a;
	size_t n;

	ck_assert_int_eq(istio_grpc_status_in(tr, sizeof(tr) - 1), 14);
	ck_assert_int_eq(istio_grpc_status_in("grpc-message: no\r\n", 18), -1);
	ck_assert_int_eq(istio_grpc_status_val(" 0 ", 3), 0);
	ck_assert_int_eq(istio_grpc_status_val("1x", 2), -1);
	a = istio_service_of("outbound|9080|v1|reviews.demo.svc.cluster.local", "x:1", 3, &n);
	ck_assert_uint_eq(n, 30);
	ck_assert_int_eq(memcmp(a, "reviews.demo.svc.cluster.local", n), 0);
	a = istio_service_of("inbound|9080||", "reviews:9080", 12, &n);
	ck_assert_uint_eq(n, 7);
	ck_assert_int_eq(memcmp(a, "reviews", n), 0);
	ck_assert_ptr_null(istio_service_of("inbound|9080||", NULL, 0, &n));
	ck_assert_int_eq(istio_is_meta_header("X-Envoy-Peer-Metadata", 21), 1);
	ck_assert_int_eq(istio_is_meta_header("x-envoy-peer-metadata-id", 24), 1);
	ck_assert_int_eq(istio_is_meta_header("x-envoy-peer", 12), 0);
	ck_assert_int_eq(istio_stats_new(NODE, "", "sa", 0, &st), 0);
	a = istio_stats_principal(st, "spiffe://x/ns/a/sa/b");
	ck_assert_str_eq(a, "spiffe://x/ns/a/sa/b");
	ck_assert_ptr_eq(istio_stats_principal(st, "spiffe://x/ns/a/sa/b"), a);
	ck_assert_ptr_null(istio_stats_principal(st, NULL));
	ck_assert_ptr_null(istio_stats_peer(st, "AAAA!", 5));
	istio_stats_free(st);
}
END_TEST

/* issue 13: REGISTRY_ONLY's block_all and the catch-all clusters are named
 * as istio/proxy's populateDestinationService names them */
START_TEST(test_catchall_names)
{
	struct istio_stats *st;
	struct istio_req r;
	char *out;

	ck_assert_str_eq(istio_catchall_name("block_all", NULL), "BlackHoleCluster");
	ck_assert_str_eq(istio_catchall_name("allow_any", "PassthroughCluster"), "PassthroughCluster");
	ck_assert_str_eq(istio_catchall_name("", "BlackHoleCluster"), "BlackHoleCluster");
	ck_assert_str_eq(istio_catchall_name(NULL, "InboundPassthroughClusterIpv4"), "InboundPassthroughClusterIpv4");
	ck_assert_ptr_null(istio_catchall_name("default", "outbound|80||a.demo.svc.cluster.local"));
	ck_assert_ptr_null(istio_catchall_name(NULL, NULL));
	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", "sa", 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.service = "nowhere.example.com";
	r.service_len = strlen(r.service);
	r.service_name = istio_catchall_name("block_all", NULL);
	r.response_code = 502;
	r.grpc_status = -1;
	r.response_flags = "-";
	istio_stats_record(st, &r);
	out = prom(st);
	/* the host stays the destination_service; the name is the catch-all's,
	 * not "nowhere", and no namespace is made up from the host */
	ck_assert_ptr_nonnull(strstr(out, "destination_service=\"nowhere.example.com\""));
	ck_assert_ptr_nonnull(strstr(out, "destination_service_name=\"BlackHoleCluster\","
					  "destination_service_namespace=\"unknown\","));
	ck_assert_ptr_null(strstr(out, "destination_service_name=\"nowhere\""));
	free(out);
	istio_stats_free(st);
}
END_TEST

START_TEST(test_tcp)
{
	struct istio_stats *st;
	struct istio_req r;
	char *out;

	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", NULL, 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.inbound = 1;
	r.mtls = 1;
	r.peer_principal = "spiffe://cluster.local/ns/demo/sa/client";
	r.service = "db.demo.svc.cluster.local";
	r.service_len = strlen(r.service);
	r.response_flags = "-";
	istio_stats_tcp(st, &r, 1, 0);
	r.request_bytes = 10;
	r.response_bytes = 20;
	istio_stats_tcp(st, &r, 0, 1);
	/* the same labels as a request would be another series */
	istio_stats_record(st, &r);
	ck_assert_uint_eq(istio_stats_series(st), 2);
	out = prom(st);
	ck_assert_ptr_nonnull(strstr(out, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"unknown\","));
	ck_assert_ptr_nonnull(strstr(out, "request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"mutual_tls\"} 1\n"
					  "# TYPE istio_tcp_connections_closed_total counter\n"));
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"mutual_tls\"} 10\n# TYPE istio_tcp_sent_bytes_total"));
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"mutual_tls\"} 20\n"));
	ck_assert_ptr_null(strstr(out, "request_protocol=\"tcp\",response_code"));
	free(out);
	istio_stats_free(st);
}
END_TEST

/* issue 14: a stats.PluginConfig packed as meshd sends it */
struct pc_fix {
	Stats__PluginConfig pc;
	Stats__MetricConfig mc[4], *mcp[4];
	Stats__MetricConfig__DimensionsEntry de[4], *dep[4];
	char *rm[2];
	uint8_t buf[2048];
	size_t len;
};

static void pc_pack(struct pc_fix *f)
{
	f->len = stats__plugin_config__get_packed_size(&f->pc);
	ck_assert_uint_lt(f->len, sizeof(f->buf));
	stats__plugin_config__pack(&f->pc, f->buf);
}

/* Telemetry's REQUEST_COUNT disabled, response_flags removed from every
 * metric, request_method added and destination_app replaced on
 * requests_total (what meshd's golden case 0175 emits for inbound) */
static struct istio_stats_cfg *cfg_overrides(const char *dst_app_expr)
{
	static struct pc_fix f;
	struct istio_stats_cfg *c = NULL;
	char why[512];
	int i;

	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	for (i = 0; i < 4; i++) {
		stats__metric_config__init(&f.mc[i]);
		f.mcp[i] = &f.mc[i];
		stats__metric_config__dimensions_entry__init(&f.de[i]);
		f.dep[i] = &f.de[i];
	}
	/* every metric: no response_flags */
	f.rm[0] = "response_flags";
	f.mc[0].name = "";
	f.mc[0].tags_to_remove = f.rm;
	f.mc[0].n_tags_to_remove = 1;
	/* requests_total: two dimensions (one replaces a standard tag) */
	f.mc[1].name = "requests_total";
	f.de[0].key = "request_method";
	f.de[0].value = "request.method";
	f.de[1].key = "destination_app";
	f.de[1].value = (char *)dst_app_expr;
	f.mc[1].dimensions = f.dep;
	f.mc[1].n_dimensions = 2;
	/* request_bytes dropped; a metric meshproxy does not report: ignored */
	f.mc[2].name = "request_bytes";
	f.mc[2].drop = 1;
	f.mc[3].name = "request_messages_total";
	f.mc[3].drop = 1;
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 4;
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), 0);
	return c;
}

START_TEST(test_cfg_overrides)
{
	struct istio_stats *st;
	struct istio_stats_cfg *c = cfg_overrides("'reviews-app'");
	struct istio_req r;
	char *out;

	ck_assert_uint_eq(istio_stats_cfg_report_ms(c), ISTIO_TCP_REPORT_DEFAULT_MS);
	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews,version=v2", "reviews", 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.cfg = c;
	r.inbound = 1;
	r.service = "reviews.demo.svc.cluster.local";
	r.service_len = strlen(r.service);
	r.response_code = 200;
	r.grpc_status = -1;
	r.response_flags = "-";
	r.method = "GET";
	r.method_len = 3;
	r.duration_ms = 3;
	r.request_bytes = 10;
	istio_stats_record(st, &r);
	istio_stats_record(st, &r);
	r.method = "POST";
	r.method_len = 4;
	istio_stats_record(st, &r);
	/* one series per method value (the expression is part of the key) */
	ck_assert_uint_eq(istio_stats_series(st), 2);
	out = prom(st);
	/* the upserted and added tags, response_flags gone */
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"reviews-app\","));
	ck_assert_ptr_nonnull(strstr(out, ",connection_security_policy=\"none\",request_method=\"GET\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, ",request_method=\"POST\"} 1\n"));
	ck_assert_ptr_null(strstr(out, "response_flags="));
	/* the histograms keep their standard tags (no request_method), both
	 * methods in one series: 3 requests */
	ck_assert_ptr_nonnull(strstr(out, "istio_request_duration_milliseconds_count{reporter=\"destination\""));
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"reviews\""));
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"none\"} 3\n"));
	/* request_bytes dropped: no series at all */
	ck_assert_ptr_null(strstr(out, "istio_request_bytes_count"));
	ck_assert_ptr_nonnull(strstr(out, "istio_response_bytes_count"));
	free(out);
	istio_stats_free(st);
	istio_stats_cfg_free(c);
}
END_TEST

/* An expression calling a function CEL does not define is refused,
 * named in the message; the supported forms compile */
START_TEST(test_cfg_refused)
{
	static const char *const ok[] = { "\"lit\"", "request.host", "request.path", "request.url_path",
					  "request.headers['x-user']", "response.code", "string(response.code)",
					  "upstream_peer.app", "downstream_peer.namespace", "xds.cluster_name",
					  "source.address" };
	struct istio_stats_cfg *c = NULL;
	struct pc_fix f;
	char why[512];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		c = cfg_overrides(ok[i]);
		ck_assert_ptr_nonnull(c);
		istio_stats_cfg_free(c);
	}
	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	stats__metric_config__dimensions_entry__init(&f.de[0]);
	f.mcp[0] = &f.mc[0];
	f.dep[0] = &f.de[0];
	f.de[0].key = "x";
	/* a function CEL does not define: Envoy's "failed to create an
	 * expression", the configuration refused */
	f.de[0].value = "lookup(request.size) > 10 ? 'big' : 'small'";
	f.mc[0].dimensions = f.dep;
	f.mc[0].n_dimensions = 1;
	f.mc[0].name = "requests_total";
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "lookup(request.size) > 10 ? 'big' : 'small'") != NULL, "%s", why);
	ck_assert_msg(strstr(why, "failed to create an expression: no such function 'lookup'") != NULL, "%s", why);
	ck_assert_int_eq(istio_stats_cfg_new((const uint8_t *)"\xff\xff", 2, &c, why, sizeof(why)), -EINVAL);
}
END_TEST

/* Istio's "customize metrics" task: tagOverrides destination_port:
 * "string(destination.port)" (and .address, source.port) compile and give
 * the port the client dialled; a refused string(X) is named as written
 * (the message once printed "destination.port)" for it). */
START_TEST(test_cfg_destination_port)
{
	struct istio_stats *st;
	struct istio_stats_cfg *c = cfg_overrides("string(destination.port)"), *a, *bad = NULL;
	struct istio_req r;
	struct pc_fix f;
	char why[512], *out;

	ck_assert_int_eq(istio_stats_cfg_needs_local(c), 1);
	ck_assert_int_eq(istio_stats_cfg_needs_local(NULL), 0);
	a = cfg_overrides("'x'");
	ck_assert_int_eq(istio_stats_cfg_needs_local(a), 0);
	istio_stats_cfg_free(a);
	a = cfg_overrides("destination.address");
	ck_assert_int_eq(istio_stats_cfg_needs_local(a), 1);
	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", NULL, 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.inbound = 1;
	r.response_code = 200;
	r.grpc_status = -1;
	r.response_flags = "-";
	r.destination_address = "10.0.0.7";
	r.destination_port = 9080;
	r.cfg = c;
	istio_stats_record(st, &r);
	r.cfg = a;
	istio_stats_record(st, &r);
	out = prom(st);
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"9080\""));
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"10.0.0.7\""));
	free(out);
	istio_stats_free(st);
	istio_stats_cfg_free(a);
	istio_stats_cfg_free(c);
	a = cfg_overrides("source.port");
	istio_stats_cfg_free(a);

	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	stats__metric_config__dimensions_entry__init(&f.de[0]);
	f.mcp[0] = &f.mc[0];
	f.dep[0] = &f.de[0];
	f.de[0].key = "x";
	f.de[0].value = "strng(destination.service)";
	f.mc[0].dimensions = f.dep;
	f.mc[0].n_dimensions = 1;
	f.mc[0].name = "requests_total";
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &bad, why, sizeof(why)), -EINVAL);
	ck_assert_msg(strstr(why, "\"strng(destination.service)\"") != NULL, "%s", why);
}
END_TEST

/* A configuration replaced by another (a Telemetry applied live): the
 * next requests count under the new one; a series whose text does not
 * change is one series, not two */
START_TEST(test_cfg_replaced)
{
	struct istio_stats *st;
	struct istio_stats_cfg *a = cfg_overrides("'one'"), *b = cfg_overrides("'two'");
	struct istio_req r;
	char *out, *p;
	int n = 0;

	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", NULL, 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.inbound = 1;
	r.response_code = 200;
	r.grpc_status = -1;
	r.response_flags = "-";
	r.cfg = a;
	istio_stats_record(st, &r);
	r.cfg = b;
	istio_stats_record(st, &r);
	r.cfg = NULL; /* no override: all standard */
	istio_stats_record(st, &r);
	out = prom(st);
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"one\""));
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"two\""));
	/* response_bytes: a and b render the same text: one series of 2,
	 * and the standard one (with response_flags) of 1 */
	for (p = out; (p = strstr(p, "istio_response_bytes_count{")); p++)
		n++;
	ck_assert_int_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(out, "connection_security_policy=\"none\"} 2\n"));
	free(out);
	istio_stats_free(st);
	istio_stats_cfg_free(a);
	istio_stats_cfg_free(b);
}
END_TEST

/* Whether every sample line of text parses as Prometheus's text format
 * reads it (expfmt): NAME{LABEL="VALUE",...} NUMBER, label names
 * [a-zA-Z_][a-zA-Z0-9_]* and none twice in a line, values with only \\
 * \" \n escapes and valid UTF-8.  0, or the 1-based number of the first
 * bad line. */
static int exposition_bad_line(const char *text)
{
	const char *p = text;
	int line = 0;

	while (*p) {
		const char *e = strchr(p, '\n'), *q = p;
		char names[64][320];
		int nn = 0, k;

		line++;
		if (!e)
			return line; /* every line ends with a newline */
		if (*p == '#')
			goto next;
		while (q < e && (isalnum((unsigned char)*q) || *q == '_' || *q == ':'))
			q++;
		if (q == p)
			return line;
		if (*q == '{') {
			q++;
			while (*q != '}') {
				const char *n0 = q;

				if (!(isalpha((unsigned char)*q) || *q == '_'))
					return line;
				while (isalnum((unsigned char)*q) || *q == '_')
					q++;
				if ((size_t)(q - n0) >= sizeof(names[0]) || nn == 64)
					return line;
				memcpy(names[nn], n0, (size_t)(q - n0));
				names[nn][q - n0] = '\0';
				for (k = 0; k < nn; k++)
					if (!strcmp(names[k], names[nn]))
						return line;
				nn++;
				if (q[0] != '=' || q[1] != '"')
					return line;
				q += 2;
				while (*q != '"') {
					size_t n;

					if (q >= e)
						return line;
					if (*q == '\\') {
						if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
							return line;
						q += 2;
						continue;
					}
					n = (unsigned char)*q < 0x80 ? 1 : mesh_utf8_seq((const unsigned char *)q,
											 (size_t)(e - q));
					if (!n)
						return line;
					q += n;
				}
				q++;
				if (*q == ',')
					q++;
				else if (*q != '}')
					return line;
			}
			q++;
		}
		if (*q != ' ' || q + 1 >= e)
			return line;
	next:
		p = e + 1;
	}
	return 0;
}

/* Whatever bytes a client sends, and however long the tag names, the
 * exposition stays one Prometheus accepts: bytes that are not UTF-8 read
 * U+FFFD (a value cut at a cap never ends inside a character), quotes
 * and backslashes are escaped, a tag name that is no label name is made
 * one as Envoy does, and a label that does not fit the series' label
 * text is left out whole rather than cut inside its name */
START_TEST(test_exposition_any_bytes)
{
	static const char *const vals[] = { "a\"b\\c\nd", "caf\xe9", "\xff\xfe", "\xc3", "\xed\xa0\x80",
					    /* 127 bytes then a 2-byte character across the 128-byte value cap */
					    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xc3\xa9" };
	static char keys[8][300];
	struct pc_fix f;
	struct istio_stats_cfg *c = NULL;
	struct istio_stats *st;
	struct istio_hval hv;
	struct istio_req r;
	const char *const *names;
	Stats__MetricConfig__DimensionsEntry de[8], *dep[8];
	uint8_t big[8192];
	char why[512], *out;
	size_t i, len;

	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	f.mcp[0] = &f.mc[0];
	for (i = 0; i < 8; i++) {
		stats__metric_config__dimensions_entry__init(&de[i]);
		dep[i] = &de[i];
		/* "x-user", "1st", then long names */
		if (i == 0)
			snprintf(keys[i], sizeof(keys[i]), "x-user");
		else if (i == 1)
			snprintf(keys[i], sizeof(keys[i]), "1st.tag");
		else
			snprintf(keys[i], sizeof(keys[i]), "long_%zu_%0250d", i, 0);
		de[i].key = keys[i];
		de[i].value = "request.headers['x-user']";
	}
	f.mc[0].name = "requests_total";
	f.mc[0].dimensions = dep;
	f.mc[0].n_dimensions = 8;
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	len = stats__plugin_config__get_packed_size(&f.pc);
	ck_assert_uint_lt(len, sizeof(big));
	stats__plugin_config__pack(&f.pc, big);
	ck_assert_int_eq(istio_stats_cfg_new(big, len, &c, why, sizeof(why)), 0);
	ck_assert_uint_eq(istio_stats_cfg_headers(c, &names), 1);
	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", NULL, 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.cfg = c;
	r.response_code = 200;
	r.grpc_status = -1;
	r.service = "reviews.demo.svc.cluster.local";
	r.service_len = strlen(r.service);
	r.hdr_vals = &hv;
	r.n_hdr_vals = 1;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		hv.p = vals[i];
		hv.len = strlen(vals[i]);
		istio_stats_record(st, &r);
	}
	out = prom(st);
	if (exposition_bad_line(out))
		fprintf(stderr, "%s", out);
	ck_assert_msg(exposition_bad_line(out) == 0, "line %d of the exposition (on stderr)", exposition_bad_line(out));
	ck_assert_ptr_nonnull(strstr(out, ",x_user=\"a\\\"b\\\\c\\nd\""));
	ck_assert_ptr_nonnull(strstr(out, "_1st_tag=\"caf\xef\xbf\xbd\""));
	ck_assert_ptr_nonnull(strstr(out, "x_user=\"\xef\xbf\xbd\xef\xbf\xbd\""));
	ck_assert_ptr_nonnull(strstr(out, "x_user=\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"")); /* a surrogate */
	free(out);
	istio_stats_free(st);
	istio_stats_cfg_free(c);
}
END_TEST

/* A tag without a name, and a tag le on a histogram, are refused with why */
START_TEST(test_cfg_bad_tag_names)
{
	struct pc_fix f;
	struct istio_stats_cfg *c = NULL;
	char why[512];

	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	stats__metric_config__dimensions_entry__init(&f.de[0]);
	f.mcp[0] = &f.mc[0];
	f.dep[0] = &f.de[0];
	f.de[0].key = "";
	f.de[0].value = "request.method";
	f.mc[0].dimensions = f.dep;
	f.mc[0].n_dimensions = 1;
	f.mc[0].name = "requests_total";
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "without a name"));
	f.de[0].key = "le";
	pc_pack(&f);
	/* on a counter it is an ordinary label */
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), 0);
	istio_stats_cfg_free(c);
	c = NULL;
	f.mc[0].name = "request_duration_milliseconds";
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "bucket label"));
	f.mc[0].name = "";
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_null(c);
}
END_TEST

/* One inbound request recorded under c; the exposition (caller frees). */
static char *record_one(struct istio_stats_cfg *c)
{
	struct istio_stats *st;
	struct istio_req r;
	char *out;

	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews", NULL, 0, &st), 0);
	memset(&r, 0, sizeof(r));
	r.cfg = c;
	r.inbound = 1;
	r.response_code = 200;
	r.grpc_status = -1;
	r.response_flags = "-";
	r.method = "GET";
	r.method_len = 3;
	istio_stats_record(st, &r);
	out = prom(st);
	istio_stats_free(st);
	return out;
}

/* A counter's value in an exposition, -1 when absent. */
static long long counter_of(const char *out, const char *series)
{
	const char *p = strstr(out, series);

	return p ? strtoll(p + strlen(series), NULL, 10) : -1;
}

/* issue 14: the seed Telemetry's "a4co-cluster" (valid CEL: a4co minus
 * cluster, which fails at evaluation) and other valid CEL meshproxy does
 * not evaluate are accepted and read "unknown", as Istio's failed
 * evaluation; an expression that does not parse drops its tag (an added
 * one) or the standard tag it overrides, the configuration kept and the
 * drop counted, as Istio logs and skips it. */
START_TEST(test_cfg_istio_cel)
{
	static const char *const unknown[] = { "a4co-cluster", "request.path + '-x'", "size(request.path)",
					       "request.headers['x'] == 'y' ? 'y' : 'n'", "string(destination.service)",
					       "upstream_peer.labels['app'].value" };
	struct istio_stats_cfg *c;
	struct pc_fix f;
	char why[512], *out;
	long long before;
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		c = cfg_overrides(unknown[i]);
		ck_assert_ptr_nonnull(c);
		ck_assert_uint_eq(istio_stats_cfg_dropped(c), 0);
		out = record_one(c);
		ck_assert_msg(strstr(out, "destination_app=\"unknown\",") != NULL, "%s: %s", unknown[i], out);
		ck_assert_ptr_nonnull(strstr(out, "request_method=\"GET\"} 1\n"));
		free(out);
		istio_stats_cfg_free(c);
	}

	/* does not parse: the added tag cluster is left out, its sibling kept */
	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	for (i = 0; i < 3; i++) {
		stats__metric_config__dimensions_entry__init(&f.de[i]);
		f.dep[i] = &f.de[i];
	}
	f.mcp[0] = &f.mc[0];
	f.de[0].key = "cluster";
	f.de[0].value = "a4co cluster";
	f.de[1].key = "request_method";
	f.de[1].value = "request.method";
	f.de[2].key = "destination_app"; /* a standard tag: removed, as Istio's empty override */
	f.de[2].value = "'unterminated";
	f.mc[0].dimensions = f.dep;
	f.mc[0].n_dimensions = 3;
	f.mc[0].name = "requests_total";
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	pc_pack(&f);
	c = NULL;
	{
		struct istio_stats *st;

		ck_assert_int_eq(istio_stats_new(NODE, NULL, NULL, 0, &st), 0);
		out = prom(st);
		before = counter_of(out, "meshproxy_istio_stats_tag_expr_dropped_total{reason=\"parse\"} ");
		free(out);
		istio_stats_free(st);
	}
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), 0);
	ck_assert_uint_eq(istio_stats_cfg_dropped(c), 2);
	ck_assert_msg(strstr(why, "Failed to parse expression: ") != NULL, "%s", why);
	out = record_one(c);
	ck_assert_ptr_null(strstr(out, ",cluster=\""));
	ck_assert_ptr_nonnull(strstr(out, "request_method=\"GET\"} 1\n"));
	/* destination_app gone from requests_total only */
	{
		const char *rt = strstr(out, "istio_requests_total{"), *nl = rt ? strchr(rt, '\n') : NULL;
		char line[2048];

		ck_assert_ptr_nonnull(nl);
		snprintf(line, sizeof(line), "%.*s", (int)(nl - rt), rt);
		ck_assert_msg(strstr(line, "destination_app=") == NULL, "%s", line);
	}
	ck_assert_ptr_nonnull(strstr(out, "destination_app=\"reviews\""));
	ck_assert_int_eq(counter_of(out, "meshproxy_istio_stats_tag_expr_dropped_total{reason=\"parse\"} "),
			 before + 2);
	free(out);
	istio_stats_cfg_free(c);
}
END_TEST

/* issue 14: Istio caps nothing: 12 tags added to one metric all show */
START_TEST(test_cfg_many_tags)
{
	Stats__MetricConfig__DimensionsEntry de[12], *dep[12];
	char keys[12][16], *out;
	struct istio_stats_cfg *c = NULL;
	struct pc_fix f;
	char why[512];
	size_t i;

	memset(&f, 0, sizeof(f));
	stats__plugin_config__init(&f.pc);
	stats__metric_config__init(&f.mc[0]);
	f.mcp[0] = &f.mc[0];
	for (i = 0; i < 12; i++) {
		stats__metric_config__dimensions_entry__init(&de[i]);
		dep[i] = &de[i];
		snprintf(keys[i], sizeof(keys[i]), "tag_%02zu", i);
		de[i].key = keys[i];
		de[i].value = i % 2 ? "request.method" : "'lit'";
	}
	f.mc[0].dimensions = dep;
	f.mc[0].n_dimensions = 12;
	f.mc[0].name = "";
	f.pc.metrics = f.mcp;
	f.pc.n_metrics = 1;
	pc_pack(&f);
	ck_assert_int_eq(istio_stats_cfg_new(f.buf, f.len, &c, why, sizeof(why)), 0);
	out = record_one(c);
	ck_assert_ptr_nonnull(strstr(out, ",tag_00=\"lit\",tag_01=\"GET\","));
	ck_assert_ptr_nonnull(strstr(out, ",tag_10=\"lit\",tag_11=\"GET\"} 1\n"));
	free(out);
	istio_stats_cfg_free(c);
}
END_TEST

/* issue 14: Istio's TCP metadata exchange, encoded and read back */
START_TEST(test_mx_roundtrip)
{
	struct istio_peer p, q;
	struct istio_stats *st;
	uint8_t buf[ISTIO_MX_MAX];
	const uint8_t *mine;
	size_t ml;
	int n;

	ck_assert_int_eq(istio_peer_from_node(&p, NODE, "app=reviews,version=v2", NULL), 0);
	n = istio_peer_mx_encode(&p, NODE, buf, sizeof(buf));
	ck_assert_int_gt(n, 8);
	ck_assert_uint_eq(buf[0], 0x3D);
	ck_assert_uint_eq(buf[3], 0x67);
	ck_assert_int_eq(istio_peer_mx_size(buf, 7), 0);
	ck_assert_int_eq(istio_peer_mx_size(buf, (size_t)n), n);
	ck_assert_int_eq(istio_peer_mx_decode(buf + 8, (size_t)n - 8, &q), 0);
	ck_assert_str_eq(q.workload, "reviews-v2");
	ck_assert_str_eq(q.ns, "demo");
	ck_assert_str_eq(q.app, "reviews");
	ck_assert_str_eq(q.version, "v2");
	/* not the exchange: plain bytes, a wrong magic */
	ck_assert_int_eq(istio_peer_mx_size((const uint8_t *)"GET / HTTP/1.1", 14), -EINVAL);
	ck_assert_int_lt(istio_peer_mx_decode((const uint8_t *)"garbage", 7, &q), 0);
	ck_assert_int_eq(istio_stats_new(NODE, "app=reviews,version=v2", "sa", 0, &st), 0);
	mine = istio_stats_mx(st, &ml);
	ck_assert_ptr_nonnull(mine);
	ck_assert_uint_eq(ml, (size_t)n);
	ck_assert_ptr_eq(istio_stats_peer_mx(st, mine + 8, ml - 8), istio_stats_peer_mx(st, mine + 8, ml - 8));
	ck_assert_str_eq(istio_stats_peer_mx(st, mine + 8, ml - 8)->workload, "reviews-v2");
	istio_stats_free(st);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("istio_stats");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_peer_roundtrip);
	tcase_add_test(tc, test_canonical_fallbacks);
	tcase_add_test(tc, test_set_workload);
	tcase_add_test(tc, test_record_labels);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_helpers);
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_catchall_names);
	tcase_add_test(tc, test_cfg_overrides);
	tcase_add_test(tc, test_cfg_refused);
	tcase_add_test(tc, test_cfg_destination_port);
	tcase_add_test(tc, test_cfg_replaced);
	tcase_add_test(tc, test_mx_roundtrip);
	tcase_add_test(tc, test_exposition_any_bytes);
	tcase_add_test(tc, test_cfg_bad_tag_names);
	tcase_add_test(tc, test_cfg_istio_cel);
	tcase_add_test(tc, test_cfg_many_tags);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
