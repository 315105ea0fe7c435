/*
 * test_tracing.c - meshproxy's trace context (dataplane/tracing.h): a new
 * trace (128-bit id, no parent), W3C traceparent continued (ids, flags,
 * invalid forms ignored), B3 multi and single continued, B3 read before
 * traceparent, sampling (x-b3-sampled, traceparent flags, x-envoy-force-trace,
 * random 0 and 100 percent), the headers written upstream, the trace headers
 * replaced; the HCM tracing compiled from a ZipkinConfig (and refused for a
 * collector version other than HTTP_JSON) and from an OpenTelemetryConfig
 * (OTLP/HTTP and OTLP/gRPC to a cluster carried, google_grpc not); the OTLP/HTTP exporter end to end on
 * a loopback socket: the POST's head and an ExportTraceServiceRequest body
 * decoded with protobuf-c (ids, parent, kind, status, attributes, resource).
 */
#include "dataplane/tracing.h"
#include "dataplane/ev.h"
#include "envoy/config/core/v3/http_service.pb-c.h"
#include "envoy/config/core/v3/http_uri.pb-c.h"
#include "envoy/config/trace/v3/opentelemetry.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "envoy/config/trace/v3/http_tracer.pb-c.h"
#include "envoy/config/trace/v3/zipkin.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct h1_header hdrs[32];
static struct h1_head head;
static char reqbuf[4096];

/* Parse "GET / HTTP/1.1" with extra header lines (each ending CRLF). */
static const struct h1_head *req(const char *extra)
{
	struct h1_parser p;
	int n = snprintf(reqbuf, sizeof(reqbuf), "GET /x HTTP/1.1\r\nhost: a\r\n%s\r\n", extra);

	h1_parser_init(&p, 1, NULL, hdrs, 32);
	ck_assert_int_eq(h1_parse_head(&p, reqbuf, (size_t)n, &head), H1_OK);
	return &head;
}

static struct trace_cfg cfg100 = { .random_pct = 100, .client_pct = 100, .overall_pct = 100, .id128 = 1 };
static struct trace_cfg cfg0 = { .random_pct = 0, .client_pct = 100, .overall_pct = 100, .id128 = 1 };

START_TEST(new_trace)
{
	struct trace_span sp;

	trace_start(&sp, &cfg100, req(""), 0x1111, 0x2222, 1000);
	ck_assert_uint_eq(strlen(sp.trace_id), 32);
	ck_assert_str_eq(sp.span_id, "0000000000002222");
	ck_assert_str_eq(sp.parent_id, "");
	ck_assert_int_eq(sp.sampled, 1);
	trace_start(&sp, &cfg0, req(""), 0x1111, 0x2222, 1000);
	ck_assert_int_eq(sp.sampled, 0);
	ck_assert_ptr_eq(sp.cfg, &cfg0); /* unsampled: still propagated */
	trace_start(&sp, NULL, req(""), 1, 2, 3);
	ck_assert_ptr_null(sp.cfg);
}
END_TEST

START_TEST(traceparent)
{
	struct trace_span sp;

	trace_start(&sp, &cfg0, req("traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(sp.parent_id, "00f067aa0ba902b7");
	ck_assert_int_eq(sp.sampled, 1); /* the flag wins over 0 % */
	trace_start(&sp, &cfg100, req("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n"), 7, 9, 0);
	ck_assert_int_eq(sp.sampled, 0);
	/* all-zero ids, version ff, short: a new trace */
	trace_start(&sp, &cfg100, req("traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.parent_id, "");
	trace_start(&sp, &cfg100, req("traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.parent_id, "");
	trace_start(&sp, &cfg100, req("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.parent_id, "");
	/* forced despite the flag */
	trace_start(&sp, &cfg0,
		    req("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\nx-envoy-force-trace: 1\r\n"),
		    7, 9, 0);
	ck_assert_int_eq(sp.sampled, 1);
}
END_TEST

START_TEST(b3)
{
	struct trace_span sp;

	trace_start(&sp, &cfg100, req("x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: e457b5a2e4d86bd1\r\nx-b3-sampled: 0\r\n"),
		    7, 9, 0);
	ck_assert_str_eq(sp.trace_id, "80f198ee56343ba8");
	ck_assert_str_eq(sp.parent_id, "e457b5a2e4d86bd1");
	ck_assert_int_eq(sp.sampled, 0);
	trace_start(&sp, &cfg0, req("x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: e457b5a2e4d86bd1\r\nx-b3-flags: 1\r\n"),
		    7, 9, 0);
	ck_assert_int_eq(sp.sampled, 1);
	trace_start(&sp, &cfg0, req("b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.trace_id, "80f198ee56343ba864fe8b2a57d3eff7");
	ck_assert_str_eq(sp.parent_id, "e457b5a2e4d86bd1");
	ck_assert_int_eq(sp.sampled, 1);
	trace_start(&sp, &cfg100, req("b3: 0\r\n"), 7, 9, 0);
	ck_assert_str_eq(sp.parent_id, "");
	ck_assert_int_eq(sp.sampled, 0);
	/* B3 before traceparent: a meshproxy hop sends both */
	trace_start(&sp, &cfg100,
		    req("x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: e457b5a2e4d86bd1\r\n"
			"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"),
		    7, 9, 0);
	ck_assert_str_eq(sp.trace_id, "80f198ee56343ba8");
}
END_TEST

START_TEST(headers_out)
{
	struct trace_span sp;
	struct mesh_buf b;
	static const struct h1_str tp = { "TraceParent", 11 }, ts = { "tracestate", 10 }, b3n = { "X-B3-Sampled", 12 };

	mesh_buf_init(&b, 4096);
	trace_start(&sp, &cfg100, req("x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: e457b5a2e4d86bd1\r\n"), 7, 0xabc, 0);
	ck_assert_int_eq(trace_put_headers(&sp, &b), 0);
	mesh_buf_putc(&b, '\0');
	ck_assert_str_eq(b.data, "x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: 0000000000000abc\r\n"
				 "x-b3-parentspanid: e457b5a2e4d86bd1\r\nx-b3-sampled: 1\r\n"
				 "traceparent: 00-000000000000000080f198ee56343ba8-0000000000000abc-01\r\n");
	ck_assert_int_eq(trace_is_ctx_header(tp), 1);
	ck_assert_int_eq(trace_is_ctx_header(b3n), 1);
	ck_assert_int_eq(trace_is_ctx_header(ts), 0);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(cfg_from_hcm)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing t =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__TRACING__INIT;
	Envoy__Config__Trace__V3__Tracing__Http http = ENVOY__CONFIG__TRACE__V3__TRACING__HTTP__INIT;
	Envoy__Config__Trace__V3__ZipkinConfig z = ENVOY__CONFIG__TRACE__V3__ZIPKIN_CONFIG__INIT;
	Envoy__Type__V3__Percent pct = ENVOY__TYPE__V3__PERCENT__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct trace_cfg *c = NULL;
	uint8_t buf[512];
	char err[128];

	ck_assert_int_eq(trace_cfg_new(NULL, &c, err, sizeof(err)), 0);
	ck_assert_ptr_null(c);
	z.collector_cluster = "outbound|9411||zipkin.istio-system.svc.cluster.local";
	z.collector_endpoint = "/api/v2/spans";
	z.trace_id_128bit = 1;
	z.collector_endpoint_version = ENVOY__CONFIG__TRACE__V3__ZIPKIN_CONFIG__COLLECTOR_ENDPOINT_VERSION__HTTP_JSON;
	any.type_url = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig";
	any.value.len = envoy__config__trace__v3__zipkin_config__pack(&z, buf);
	any.value.data = buf;
	http.name = "envoy.tracers.zipkin";
	http.config_type_case = ENVOY__CONFIG__TRACE__V3__TRACING__HTTP__CONFIG_TYPE_TYPED_CONFIG;
	http.typed_config = &any;
	t.provider = &http;
	pct.value = 12.5;
	t.random_sampling = &pct;
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert(c->random_pct == 12.5 && c->client_pct == 100 && c->overall_pct == 100);
	ck_assert_uint_eq(c->max_path_len, 256);
	ck_assert_int_eq(c->id128, 1);
	ck_assert_str_eq(c->cluster, "outbound|9411||zipkin.istio-system.svc.cluster.local");
	ck_assert_str_eq(c->hostname, c->cluster); /* no collector_hostname: the cluster's name */
	trace_cfg_free(c);
	z.collector_endpoint_version = ENVOY__CONFIG__TRACE__V3__ZIPKIN_CONFIG__COLLECTOR_ENDPOINT_VERSION__GRPC;
	any.value.len = envoy__config__trace__v3__zipkin_config__pack(&z, buf);
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "HTTP_JSON"));
}
END_TEST


START_TEST(cfg_from_otel)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing t =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__TRACING__INIT;
	Envoy__Config__Trace__V3__Tracing__Http http = ENVOY__CONFIG__TRACE__V3__TRACING__HTTP__INIT;
	Envoy__Config__Trace__V3__OpenTelemetryConfig oc = ENVOY__CONFIG__TRACE__V3__OPEN_TELEMETRY_CONFIG__INIT;
	Envoy__Config__Core__V3__HttpService hs = ENVOY__CONFIG__CORE__V3__HTTP_SERVICE__INIT;
	Envoy__Config__Core__V3__HttpUri u = ENVOY__CONFIG__CORE__V3__HTTP_URI__INIT;
	Envoy__Config__Core__V3__HeaderValueOption o1 = ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__INIT,
						   o2 = ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__INIT;
	Envoy__Config__Core__V3__HeaderValue h1 = ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT,
					     h2 = ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT;
	Envoy__Config__Core__V3__HeaderValueOption *hv[2] = { &o1, &o2 };
	Envoy__Config__Core__V3__GrpcService gs = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__INIT;
	Envoy__Config__Core__V3__GrpcService__EnvoyGrpc eg = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__ENVOY_GRPC__INIT;
	Envoy__Config__Core__V3__GrpcService__GoogleGrpc gg = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__GOOGLE_GRPC__INIT;
	Envoy__Config__Core__V3__HeaderValue md[2] = { ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT,
						       ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT };
	Envoy__Config__Core__V3__HeaderValue *mdp[2] = { &md[0], &md[1] };
	Google__Protobuf__Duration to = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct trace_cfg *c = NULL;
	uint8_t buf[1024];
	char err[128];

	u.uri = "otel-collector.observability.svc.cluster.local/v1/traces";
	u.http_upstream_type_case = ENVOY__CONFIG__CORE__V3__HTTP_URI__HTTP_UPSTREAM_TYPE_CLUSTER;
	u.cluster = "outbound|4318||otel-collector.observability.svc.cluster.local";
	to.seconds = 2;
	u.timeout = &to;
	h1.key = "x-tenant";
	h1.value = "a";
	o1.header = &h1;
	h2.key = "x-bad";
	h2.value = "a\r\nx-injected: 1"; /* would split the request: left out */
	o2.header = &h2;
	hs.http_uri = &u;
	hs.request_headers_to_add = hv;
	hs.n_request_headers_to_add = 2;
	oc.http_service = &hs;
	oc.service_name = "ratings.demo";
	any.type_url = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";
	any.value.len = envoy__config__trace__v3__open_telemetry_config__pack(&oc, buf);
	any.value.data = buf;
	http.name = "envoy.tracers.opentelemetry";
	http.config_type_case = ENVOY__CONFIG__TRACE__V3__TRACING__HTTP__CONFIG_TYPE_TYPED_CONFIG;
	http.typed_config = &any;
	t.provider = &http;
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->otlp, 1);
	ck_assert_int_eq(c->id128, 1);
	ck_assert_str_eq(c->hostname, "otel-collector.observability.svc.cluster.local");
	ck_assert_str_eq(c->endpoint, "/v1/traces");
	ck_assert_str_eq(c->cluster, "outbound|4318||otel-collector.observability.svc.cluster.local");
	ck_assert_str_eq(c->service_name, "ratings.demo");
	ck_assert_str_eq(c->extra_headers, "x-tenant: a\r\n");
	ck_assert_uint_eq(c->timeout_ms, 2000);
	trace_cfg_free(c);
	/* a uri with a scheme and no path: Envoy's default path */
	u.uri = "http://collector:4318";
	u.timeout = NULL;
	any.value.len = envoy__config__trace__v3__open_telemetry_config__pack(&oc, buf);
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c->hostname, "collector:4318");
	ck_assert_str_eq(c->endpoint, "/v1/traces");
	ck_assert_uint_eq(c->timeout_ms, TRACE_POST_TIMEOUT_MS);
	trace_cfg_free(c);
	/* OTLP/gRPC through Envoy's gRPC client: Export on the cluster */
	oc.http_service = NULL;
	oc.grpc_service = &gs;
	eg.cluster_name = "outbound|4317||otel.istio-system.svc.cluster.local";
	eg.authority = "otel.istio-system.svc.cluster.local";
	gs.target_specifier_case = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC;
	gs.envoy_grpc = &eg;
	gs.timeout = &to;
	md[0].key = "x-other";
	md[0].value = "1";
	md[1].key = "Authorization";
	md[1].value = "Bearer t";
	gs.initial_metadata = mdp;
	gs.n_initial_metadata = 2;
	any.value.len = envoy__config__trace__v3__open_telemetry_config__pack(&oc, buf);
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->otlp, TRACE_OTLP_GRPC);
	ck_assert_str_eq(c->cluster, "outbound|4317||otel.istio-system.svc.cluster.local");
	ck_assert_str_eq(c->hostname, "otel.istio-system.svc.cluster.local");
	ck_assert_str_eq(c->endpoint, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
	ck_assert_uint_eq(c->timeout_ms, 2000);
	ck_assert_str_eq(c->extra_headers, "Bearer t");
	trace_cfg_free(c);
	/* google_grpc (no cluster): no exporter, the listener is accepted untraced */
	gs.target_specifier_case = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_GOOGLE_GRPC;
	gs.envoy_grpc = NULL;
	gs.google_grpc = &gg;
	gg.target_uri = "collector:4317";
	any.value.len = envoy__config__trace__v3__open_telemetry_config__pack(&oc, buf);
	c = (struct trace_cfg *)1;
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), 0);
	ck_assert_ptr_null(c);
	/* garbage: refused */
	any.value.len = 3;
	memcpy(buf, "\xff\xff\xff", 3);
	ck_assert_int_eq(trace_cfg_new(&t, &c, err, sizeof(err)), -EINVAL);
}
END_TEST

static int resolve_to(void *ctx, const char *cluster, struct sockaddr_storage *ss, socklen_t *len)
{
	ck_assert_str_eq(cluster, "outbound|4318||collector");
	memcpy(ss, ctx, sizeof(struct sockaddr_in));
	*len = sizeof(struct sockaddr_in);
	return 0;
}

static const Opentelemetry__Proto__Common__V1__KeyValue *attr(const Opentelemetry__Proto__Trace__V1__Span *sp,
							      const char *k)
{
	size_t i;

	for (i = 0; i < sp->n_attributes; i++)
		if (!strcmp(sp->attributes[i]->key, k))
			return sp->attributes[i];
	return NULL;
}

START_TEST(otlp_export)
{
	struct trace_tag tag[2] = { { "team", 0, "bookinfo", NULL }, { "user", 2, "x-user", "anon" } };
	struct trace_cfg c = { .random_pct = 100, .client_pct = 100, .overall_pct = 100, .max_path_len = 256, .id128 = 1,
			       .cluster = "outbound|4318||collector", .endpoint = "/v1/traces", .hostname = "collector",
			       .otlp = 1, .service_name = "ratings.demo", .extra_headers = "x-tenant: a\r\n",
			       .timeout_ms = 5000, .n_tags = 2, .tags = tag };
	struct ev_loop *loop = ev_loop_new();
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), cfd = -1, i;
	struct tracer *t;
	struct trace_span sp;
	struct trace_end x;
	struct tracer_stats st;
	static char got[65536];
	size_t glen = 0, body_len = 0;
	const char *body = NULL, *cl;
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r;
	const Opentelemetry__Proto__Trace__V1__Span *s0, *s1;
	const Opentelemetry__Proto__Common__V1__KeyValue *kv;
	static const uint8_t tid[16] = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
					 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36 };
	static const uint8_t pid[8] = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 };

	ck_assert_ptr_nonnull(loop);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	t = tracer_new(loop, "sidecar~10.0.0.1~ratings-1.demo~demo.svc.cluster.local", "app=ratings,version=v1",
		       resolve_to, &sa);
	ck_assert_ptr_nonnull(t);
	/* an outbound request continuing the client's traceparent, answered 503 */
	trace_start(&sp, &c, req("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
				 "x-user: jason\r\ntracestate: vendor=x\r\n"),
		    5, 6, 1000000);
	/* the header tag is read now: the request head is gone at the end */
	memset(reqbuf, 'z', sizeof(reqbuf));
	memset(&x, 0, sizeof(x));
	x.method = "GET";
	x.method_len = 3;
	x.authority = "reviews:9080";
	x.authority_len = 12;
	x.path = "/r?q=1";
	x.path_len = 6;
	x.status = 503;
	x.end_us = 1002000;
	tracer_finish(t, &sp, &x);
	/* an inbound one, a new trace, 200 */
	trace_start(&sp, &c, req(""), 7, 8, 2000000);
	x.inbound = 1;
	x.status = 200;
	/* a route decorator names the span (Envoy's Decorator::apply) */
	x.operation = "reviews.demo.svc.cluster.local:9080/*";
	x.operation_len = strlen(x.operation);
	x.end_us = 2000500;
	tracer_finish(t, &sp, &x);
	/* the batch goes at the flush timer: read the POST as the collector */
	for (i = 0; i < 400 && !body; i++) {
		ck_assert_int_ge(ev_run_once(loop, 25), 0);
		if (cfd < 0)
			cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (cfd >= 0) {
			ssize_t n = recv(cfd, got + glen, sizeof(got) - 1 - glen, 0);
			const char *eoh;

			if (n > 0)
				glen += (size_t)n;
			got[glen] = '\0';
			eoh = strstr(got, "\r\n\r\n");
			cl = strstr(got, "content-length: ");
			if (eoh && cl && glen >= (size_t)(eoh + 4 - got) + strtoul(cl + 16, NULL, 10)) {
				body = eoh + 4;
				body_len = strtoul(cl + 16, NULL, 10);
			}
		}
	}
	ck_assert_ptr_nonnull(body);
	ck_assert(!strncmp(got, "POST /v1/traces HTTP/1.1\r\n", 26));
	ck_assert_ptr_nonnull(strstr(got, "host: collector\r\n"));
	ck_assert_ptr_nonnull(strstr(got, "content-type: application/x-protobuf\r\n"));
	ck_assert_ptr_nonnull(strstr(got, "x-tenant: a\r\n"));
	r = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, body_len,
											     (const uint8_t *)body);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resource_spans, 1);
	ck_assert_ptr_nonnull(r->resource_spans[0]->resource);
	ck_assert_uint_eq(r->resource_spans[0]->resource->n_attributes, 1);
	kv = r->resource_spans[0]->resource->attributes[0];
	ck_assert_str_eq(kv->key, "service.name");
	ck_assert_str_eq(kv->value->string_value, "ratings.demo");
	ck_assert_uint_eq(r->resource_spans[0]->n_scope_spans, 1);
	ck_assert_uint_eq(r->resource_spans[0]->scope_spans[0]->n_spans, 2);
	s0 = r->resource_spans[0]->scope_spans[0]->spans[0];
	s1 = r->resource_spans[0]->scope_spans[0]->spans[1];
	ck_assert_uint_eq(s0->trace_id.len, 16);
	ck_assert(!memcmp(s0->trace_id.data, tid, 16));
	ck_assert_uint_eq(s0->parent_span_id.len, 8);
	ck_assert(!memcmp(s0->parent_span_id.data, pid, 8));
	ck_assert_uint_eq(s0->span_id.len, 8);
	ck_assert_uint_eq(s0->span_id.data[7], 6); /* rnd2 */
	ck_assert_str_eq(s0->name, "reviews:9080/r");
	ck_assert_str_eq(s0->trace_state, "vendor=x");
	ck_assert_int_eq(s0->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT);
	ck_assert_uint_eq(s0->start_time_unix_nano, 1000000000ull);
	ck_assert_uint_eq(s0->end_time_unix_nano, 1002000000ull);
	ck_assert_ptr_nonnull(s0->status);
	ck_assert_int_eq(s0->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	ck_assert_ptr_nonnull(kv = attr(s0, "http.status_code"));
	ck_assert_int_eq(kv->value->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
	ck_assert_str_eq(kv->value->string_value, "503");
	ck_assert_ptr_nonnull(kv = attr(s0, "error"));
	ck_assert_str_eq(kv->value->string_value, "true");
	ck_assert_ptr_nonnull(kv = attr(s0, "team"));
	ck_assert_str_eq(kv->value->string_value, "bookinfo");
	ck_assert_ptr_nonnull(kv = attr(s0, "user"));
	ck_assert_str_eq(kv->value->string_value, "jason");
	ck_assert_ptr_nonnull(kv = attr(s1, "user"));
	ck_assert_str_eq(kv->value->string_value, "anon");
	ck_assert_ptr_nonnull(kv = attr(s0, "istio.canonical_service"));
	ck_assert_str_eq(kv->value->string_value, "ratings");
	ck_assert_ptr_nonnull(kv = attr(s0, "http.url"));
	ck_assert_str_eq(kv->value->string_value, "http://reviews:9080/r?q=1");
	ck_assert_int_eq(s1->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	ck_assert_str_eq(s1->name, "reviews.demo.svc.cluster.local:9080/*");
	ck_assert_uint_eq(s1->parent_span_id.len, 0);
	ck_assert_str_eq(s1->trace_state, "");
	ck_assert_ptr_null(s1->status);
	ck_assert(memcmp(s1->trace_id.data, tid, 16) != 0);
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
	/* answered 200: counted sent */
	ck_assert_int_eq(send(cfd, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 38, MSG_NOSIGNAL), 38);
	for (i = 0; i < 200; i++) {
		ck_assert_int_ge(ev_run_once(loop, 10), 0);
		tracer_get_stats(t, &st);
		if (st.otlp_reports_ok)
			break;
	}
	ck_assert_uint_eq(st.otlp_reports_sent, 1);
	ck_assert_uint_eq(st.otlp_reports_ok, 1);
	ck_assert_uint_eq(st.otlp_spans_sent, 2);
	ck_assert_uint_eq(st.posts_ok + st.spans_sent, 0); /* zipkin's own */
	ck_assert_uint_eq(st.spans_dropped, 0);
	tracer_free(t);
	close(cfd);
	close(lfd);
	ev_loop_free(loop);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tracing");
	TCase *tc = tcase_create("tracing");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, new_trace);
	tcase_add_test(tc, traceparent);
	tcase_add_test(tc, b3);
	tcase_add_test(tc, headers_out);
	tcase_add_test(tc, cfg_from_hcm);
	tcase_add_test(tc, cfg_from_otel);
	tcase_add_test(tc, otlp_export);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
