/*
 * test_tracing.c - meshproxy's trace context (dataplane/tracing.h): a new
 * trace (128-bit id, no parent), W3C traceparent continued (ids, flags,
 * invalid forms ignored), B3 multi and single continued, B3 read before
 * traceparent, sampling (x-b3-sampled, traceparent flags, x-envoy-force-trace,
 * random 0 and 100 percent), the headers written upstream, the trace headers
 * replaced; the HCM tracing compiled from a ZipkinConfig (and refused for a
 * collector version other than HTTP_JSON).
 */
#include "dataplane/tracing.h"
#include "envoy/config/trace/v3/http_tracer.pb-c.h"
#include "envoy/config/trace/v3/zipkin.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <check.h>
#include <errno.h>
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
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
