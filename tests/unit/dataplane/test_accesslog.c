/*
 * test_accesslog.c - meshproxy's configured access logs (dataplane/
 * accesslog.h) and their CEL filter subset (dataplane/alogexpr.h): Istio's
 * default text format to the byte, Istio's JSON keys with typed values
 * and nulls, hostile values (quotes, control bytes, invalid UTF-8) still
 * valid JSON, %REQ(X?Y):N% with extra headers, %START_TIME(FMT)%, format
 * errors naming the operator; expressions Istio users write evaluated
 * against entries (CEL's error value for a missing header), expressions
 * outside the subset refused with their name, hostile expressions (depth,
 * length, NUL, random bytes) refused or compiled without harm; lines
 * written to a file only when the filter passes.
 */
#include "dataplane/accesslog.h"
#include "dataplane/alogexpr.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/filters/cel/v3/cel.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Istio's EnvoyTextLogFormat (what meshd sends), see controlplane/gen/mesh.c */
static const char istio_text[] =
	"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
	"%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
	"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
	"\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% "
	"%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
	"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

static struct ev_loop *loop;
static struct px_alog_sinks *sinks;
static char path[64];

static void setup(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_accesslog.XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	sinks = px_alog_sinks_new(loop);
	ck_assert_ptr_nonnull(sinks);
}

static void teardown(void)
{
	px_alog_sinks_free(sinks);
	ev_loop_free(loop);
	unlink(path);
}

static struct px_str S(const char *s)
{
	struct px_str r = { s, s ? strlen(s) : 0 };

	return r;
}

/* a request as meshproxy logs it */
static void entry(struct px_alog_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->start_us = 1764574343123456ULL; /* 2025-12-01T07:32:23.123456Z */
	e->method = S("GET");
	e->path = S("/api/items?x=1");
	e->protocol = S("HTTP/1.1");
	e->ua = S("curl/8.0");
	e->rid = S("rid-1");
	e->authority = S("b.ns.svc:8080");
	e->status = 200;
	e->rx = 0;
	e->tx = 12;
	e->duration_ms = 3;
	e->upstream_ms = 2;
	e->upstream_host = "127.0.0.2:9000";
	e->upstream_cluster = "outbound|8080||b.ns.svc.cluster.local";
	e->route_name = "default";
	e->details = "via_upstream";
	e->downstream_remote = "127.0.0.1:40000";
	e->downstream_local = "10.0.0.2:8080";
}

/* Pack m into a fresh Any (type URL of its descriptor); leaked by the test. */
static Google__Protobuf__Any *any_of(const ProtobufCMessage *m)
{
	Google__Protobuf__Any *a = calloc(1, sizeof(*a));
	size_t n = protobuf_c_message_get_packed_size(m);
	char *url = malloc(256);

	google__protobuf__any__init(a);
	a->value.data = malloc(n ? n : 1);
	a->value.len = protobuf_c_message_pack(m, a->value.data);
	snprintf(url, 256, "type.googleapis.com/%s", m->descriptor->name);
	a->type_url = url;
	return a;
}

static void free_any(Google__Protobuf__Any *a)
{
	if (!a)
		return;
	free(a->value.data);
	free(a->type_url);
	free(a);
}

/* One file access log: text (json NULL) or the JSON keys/values, filter or NULL. */
static int compile1(const char *text, const char *const *jk, const char *const *jv, size_t nj, const char *filter,
		    struct px_alog_cfg **out, char *err, size_t cap)
{
	Envoy__Config__Accesslog__V3__AccessLog al = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__INIT, *alp = &al;
	Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog f =
		ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__INIT;
	Envoy__Config__Core__V3__SubstitutionFormatString sf = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__INIT;
	Envoy__Config__Core__V3__DataSource ds = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
	Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[32], *fep[32];
	Google__Protobuf__Value v[32];
	Envoy__Config__Accesslog__V3__AccessLogFilter af = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__INIT;
	Envoy__Config__Accesslog__V3__ExtensionFilter ef = ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__INIT;
	Envoy__Extensions__AccessLoggers__Filters__Cel__V3__ExpressionFilter cel =
		ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILTERS__CEL__V3__EXPRESSION_FILTER__INIT;
	Google__Protobuf__Any *fa = NULL;
	size_t i;
	int rc;

	f.path = path;
	if (jk) {
		for (i = 0; i < nj; i++) {
			google__protobuf__struct__fields_entry__init(&fe[i]);
			google__protobuf__value__init(&v[i]);
			v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			v[i].string_value = (char *)jv[i];
			fe[i].key = (char *)jk[i];
			fe[i].value = &v[i];
			fep[i] = &fe[i];
		}
		st.fields = fep;
		st.n_fields = nj;
		sf.format_case = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT;
		sf.json_format = &st;
	} else {
		ds.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
		ds.inline_string = (char *)text;
		sf.format_case = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE;
		sf.text_format_source = &ds;
	}
	f.access_log_format_case = ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT;
	f.log_format = &sf;
	al.name = "envoy.access_loggers.file";
	al.config_type_case = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG;
	al.typed_config = any_of(&f.base);
	if (filter) {
		cel.expression = (char *)filter;
		ef.name = "envoy.access_loggers.extension_filters.cel";
		ef.config_type_case = ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__CONFIG_TYPE_TYPED_CONFIG;
		ef.typed_config = fa = any_of(&cel.base);
		af.filter_specifier_case = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__FILTER_SPECIFIER_EXTENSION_FILTER;
		af.extension_filter = &ef;
		al.filter = &af;
	}
	rc = px_alog_cfg_new(sinks, &alp, 1, out, err, cap);
	free_any(al.typed_config);
	free_any(fa);
	return rc;
}

static void line_of(const char *text, const struct px_alog_entry *e, char *out, size_t cap)
{
	struct px_alog_cfg *c;
	char err[256];

	ck_assert_msg(compile1(text, NULL, NULL, 0, NULL, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(px_alog_cfg_format(c, 0, e, out, cap), 0);
	px_alog_cfg_free(c);
}

START_TEST(istio_text_exact)
{
	struct px_alog_entry e;
	char out[2048];

	entry(&e);
	line_of(istio_text, &e, out, sizeof(out));
	ck_assert_str_eq(out, "[2025-12-01T07:32:23.123Z] \"GET /api/items?x=1 HTTP/1.1\" 200 - via_upstream - \"-\" 0 12 3 2 "
			      "\"-\" \"curl/8.0\" \"rid-1\" \"b.ns.svc:8080\" \"127.0.0.2:9000\" "
			      "outbound|8080||b.ns.svc.cluster.local - 10.0.0.2:8080 127.0.0.1:40000 - default\n");
	/* a TCP connection: no HTTP fields, code 0, flags */
	memset(&e, 0, sizeof(e));
	e.start_us = 1764574343123456ULL;
	e.flags = PX_RF_UF | PX_RF_URX;
	e.upstream_ms = -1;
	line_of(istio_text, &e, out, sizeof(out));
	ck_assert_str_eq(out, "[2025-12-01T07:32:23.123Z] \"- - -\" 0 UF,URX - - \"-\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\" - - - - - -\n");
}
END_TEST

START_TEST(json_typed_and_hostile)
{
	static const char *const k[] = { "code", "dur", "flags", "ua", "mixed", "sni", "path" };
	static const char *const v[] = { "%RESPONSE_CODE%", "%DURATION%", "%RESPONSE_FLAGS%", "%REQ(USER-AGENT)%",
					  "code=%RESPONSE_CODE% sni=%REQUESTED_SERVER_NAME%", "%REQUESTED_SERVER_NAME%",
					  "%REQ(:PATH)%" };
	struct px_alog_cfg *c;
	struct px_alog_entry e;
	char out[2048], err[256];

	entry(&e);
	/* quote, backslash, control byte, a lone continuation byte, a valid é */
	e.ua = S("a\"b\\c\x01" "d\x80" "e\xc3\xa9");
	e.path = S("/\xff\xfe");
	ck_assert_int_eq(compile1(NULL, k, v, 7, NULL, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(px_alog_cfg_format(c, 0, &e, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "{\"code\":200,\"dur\":3,\"flags\":\"-\",\"ua\":\"a\\\"b\\\\c\\u0001d\\ufffde\xc3\xa9\","
			      "\"mixed\":\"code=200 sni=-\",\"sni\":null,\"path\":\"/\\ufffd\\ufffd\"}\n");
	px_alog_cfg_free(c);
}
END_TEST

START_TEST(req_headers_and_time)
{
	struct px_alog_cfg *c;
	struct px_alog_entry e;
	struct px_str hv[PX_ALOG_MAX_HDRS];
	char out[512], err[256];

	entry(&e);
	ck_assert_int_eq(compile1("%REQ(X-FOO?USER-AGENT)% %REQ(X-BAR):4% %REQ(:METHOD):1% %RESP(CONTENT-TYPE)% "
				  "%START_TIME(%s.%3f)% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n",
				  NULL, NULL, 0, NULL, &c, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(px_alog_cfg_n_headers(c), 2);
	ck_assert_str_eq(px_alog_cfg_header(c, 0), "x-foo");
	ck_assert_str_eq(px_alog_cfg_header(c, 1), "x-bar");
	memset(hv, 0, sizeof(hv));
	hv[1] = S("abcdefgh");
	e.hdrs = hv;
	e.n_hdrs = 2;
	ck_assert_int_eq(px_alog_cfg_format(c, 0, &e, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "curl/8.0 abcd G - 1764574343.123 127.0.0.1\n");
	hv[0] = S("foo");
	ck_assert_int_eq(px_alog_cfg_format(c, 0, &e, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "foo abcd G - 1764574343.123 127.0.0.1\n");
	px_alog_cfg_free(c);
}
END_TEST

START_TEST(grpc_attempts_env)
{
	struct px_alog_entry e;
	char out[512];

	setenv("ALOG_TEST_POD", "web-1", 1);
	entry(&e);
	line_of("%GRPC_STATUS% %GRPC_STATUS_NUMBER% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %ENVIRONMENT(ALOG_TEST_POD)% "
		"%REQ_WITHOUT_QUERY(:PATH)%\n", &e, out, sizeof(out));
	ck_assert_str_eq(out, "- - - web-1 /api/items\n"); /* not gRPC, no attempt */
	e.grpc_status1 = 14 + 1;
	e.attempts = 3;
	line_of("%GRPC_STATUS% %GRPC_STATUS_NUMBER% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n", &e, out, sizeof(out));
	ck_assert_str_eq(out, "Unavailable 14 3\n");
	e.grpc_status1 = 1;
	line_of("%GRPC_STATUS%\n", &e, out, sizeof(out));
	ck_assert_str_eq(out, "OK\n");
}
END_TEST

/*
 * Found by tests/fuzz/fuzz_expr: a %START_TIME(FMT)% whose fraction
 * directive came when the value (512 bytes at most) was nearly full
 * returned a length past what it wrote (snprintf counts what it cuts), so
 * the line took bytes from beyond the stack buffer: 505 + 9 = 514 of 511.
 * Now the fraction is cut to fit.
 */
START_TEST(start_time_fraction_at_the_cap)
{
	struct px_alog_entry e;
	char fmt[600], out[1024], want[600];

	entry(&e);
	memset(fmt, 0, sizeof(fmt));
	memcpy(fmt, "%START_TIME(", 12);
	memset(fmt + 12, 'a', 505);
	memcpy(fmt + 12 + 505, "%9f%3f)%\n", 10);
	line_of(fmt, &e, out, sizeof(out));
	memset(want, 'a', 505);
	memcpy(want + 505, "123456\n", 8);
	ck_assert_uint_eq(strlen(out), 512);
	ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(format_errors)
{
	static const struct {
		const char *fmt, *want;
	} bad[] = {
		{ "%NOPE%", "%NOPE%" },
		{ "x %REQ(:PATH", "unterminated" },
		{ "100% sure", "offset 3" },
		{ "%REQ()%", "header name" },
		{ "%REQ(a?)%", "X or X?Y" },
		{ "%DYNAMIC_METADATA(istio.mixer:status)%", "DYNAMIC_METADATA" },
	};
	struct px_alog_cfg *c;
	char err[256], fmt[1024];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ck_assert_int_eq(compile1(bad[i].fmt, NULL, NULL, 0, NULL, &c, err, sizeof(err)), -EINVAL);
		ck_assert_ptr_null(c);
		ck_assert_msg(strstr(err, bad[i].want), "%s: %s", bad[i].fmt, err);
	}
	/* more extra headers than a config may name */
	fmt[0] = 0;
	for (i = 0; i <= PX_ALOG_MAX_HDRS; i++)
		snprintf(fmt + strlen(fmt), sizeof(fmt) - strlen(fmt), "%%REQ(X-H%zu)%%", i);
	ck_assert_int_eq(compile1(fmt, NULL, NULL, 0, NULL, &c, err, sizeof(err)), -EINVAL);
}
END_TEST

/* alx_header_fn over a small table */
static char hnames[PX_ALOG_MAX_HDRS][64];
static size_t n_hnames;

static int hdr_fn(void *ctx, const char *name, size_t len)
{
	size_t i;

	(void)ctx;
	for (i = 0; i < n_hnames; i++)
		if (strlen(hnames[i]) == len && !strncasecmp(hnames[i], name, len))
			return (int)i;
	if (n_hnames == PX_ALOG_MAX_HDRS || len >= 64)
		return -1;
	snprintf(hnames[n_hnames], 64, "%.*s", (int)len, name);
	return (int)n_hnames++;
}

static int eval(const char *src, const struct px_alog_entry *e)
{
	struct alx *x;
	char err[256];
	int r;

	ck_assert_msg(alx_compile(src, strlen(src), hdr_fn, NULL, &x, err, sizeof(err)) == 0, "%s: %s", src, err);
	r = alx_eval(x, e);
	alx_free(x);
	return r;
}

START_TEST(expr_eval)
{
	struct px_alog_entry e;
	struct px_str hv[PX_ALOG_MAX_HDRS];

	n_hnames = 0;
	entry(&e);
	memset(hv, 0, sizeof(hv));
	e.hdrs = hv;
	e.n_hdrs = PX_ALOG_MAX_HDRS;
	ck_assert_int_eq(eval("response.code >= 400", &e), 0);
	e.status = 503;
	ck_assert_int_eq(eval("response.code >= 400", &e), 1);
	ck_assert_int_eq(eval("response.code == 503", &e), 1);
	ck_assert_int_eq(eval("response.code != 503", &e), 0);
	ck_assert_int_eq(eval("response.code >= 500 && response.code < 600", &e), 1);
	ck_assert_int_eq(eval("response.code == 404 || response.code == 503", &e), 1);
	ck_assert_int_eq(eval("!(response.code == 503)", &e), 0);
	ck_assert_int_eq(eval("request.url_path.startsWith('/api')", &e), 1);
	ck_assert_int_eq(eval("request.url_path == '/api/items'", &e), 1);
	ck_assert_int_eq(eval("request.path == \"/api/items?x=1\"", &e), 1);
	ck_assert_int_eq(eval("request.path.endsWith('x=1') && request.method == 'GET'", &e), 1);
	ck_assert_int_eq(eval("request.host.contains('ns.svc')", &e), 1);
	ck_assert_int_eq(eval("connection.mtls", &e), 0);
	ck_assert_int_eq(eval("!connection.mtls", &e), 1);
	e.mtls = 1;
	ck_assert_int_eq(eval("connection.mtls == true", &e), 1);
	ck_assert_int_eq(eval("response.flags != '-'", &e), 0);
	ck_assert_int_eq(eval("response.flags == 0", &e), 1);
	e.flags = PX_RF_UF | PX_RF_URX;
	ck_assert_int_eq(eval("response.flags != '-'", &e), 1);
	ck_assert_int_eq(eval("response.flags == 'UF,URX'", &e), 1);
	ck_assert_int_eq(eval("response.flags.contains('UF')", &e), 1);
	ck_assert_int_eq(eval("response.flags == 32800u", &e), 1); /* Envoy's bits: UF 0x20 | URX 0x8000 */
}
END_TEST

START_TEST(expr_missing_header)
{
	struct px_alog_entry e;
	struct px_str hv[PX_ALOG_MAX_HDRS];

	n_hnames = 0;
	entry(&e);
	memset(hv, 0, sizeof(hv));
	e.hdrs = hv;
	e.n_hdrs = PX_ALOG_MAX_HDRS;
	/* x-debug is header 0 once compiled */
	ck_assert_int_eq(eval("request.headers['x-debug'] == 'on'", &e), 0);
	ck_assert_int_eq(eval("request.headers['x-debug'] != 'on'", &e), 0);       /* error: not logged */
	ck_assert_int_eq(eval("request.headers['x-debug'] == 'on' || response.code == 200", &e), 1); /* true wins */
	ck_assert_int_eq(eval("response.code == 200 || request.headers['x-debug'] == 'on'", &e), 1);
	ck_assert_int_eq(eval("!(request.headers['x-debug'] == 'on')", &e), 0);
	hv[0] = S("on");
	ck_assert_int_eq(eval("request.headers['X-Debug'] == 'on'", &e), 1);
	ck_assert_int_eq(eval("request.headers['x-debug'] == 'on' && response.code == 200", &e), 1);
}
END_TEST

START_TEST(expr_refused)
{
	static const struct {
		const char *src, *want;
	} bad[] = {
		{ "response.code >= '400'", "no '>=' between int and string" },
		{ "response.code", "not a bool" },
		{ "request.duration > 5", "request.duration" },
		{ "request.path.matches('^/a')", "matches" },
		{ "size(request.path) > 3", "size" },
		{ "response.code + 1 == 2", "'+'" },
		{ "response.code in [200]", "'in'" },
		{ "response.code == 200 &&", "end of expression" },
		{ "(response.code == 200", "')'" },
		{ "request.path == 'abc", "unterminated" },
		{ "request.headers == 'x'", "request.headers['name']" },
		{ "request.headers['']", "header name" },
		{ "response.code == 99999999999999999999999", "out of range" },
		{ "'a\\q' == 'b'", "escape" },
		{ "!response.code", "'!' takes a bool" },
		{ "connection.mtls < true", "bools compare" },
		{ "", "end of expression" },
		{ "filter_state['x'] == 'y'", "filter_state" },
	};
	struct alx *x;
	char err[256], big[ALX_MAX_LEN + 10];
	size_t i;

	n_hnames = 0;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ck_assert_int_eq(alx_compile(bad[i].src, strlen(bad[i].src), hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
		ck_assert_ptr_null(x);
		ck_assert_msg(strstr(err, bad[i].want), "%s -> %s", bad[i].src, err);
	}
	/* a NUL inside, too long, too deep, too many nodes */
	ck_assert_int_eq(alx_compile("true\0 || false", 14, hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	memset(big, ' ', sizeof(big));
	memcpy(big, "true", 4);
	ck_assert_int_eq(alx_compile(big, sizeof(big), hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "longer"));
	for (i = 0; i < 100; i++)
		big[i] = '(';
	memcpy(big + 100, "true", 4);
	for (i = 0; i < 100; i++)
		big[104 + i] = ')';
	ck_assert_int_eq(alx_compile(big, 204, hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "nested"));
	for (i = 0; i < 200; i++)
		big[i] = '!';
	memcpy(big + 200, "true", 4);
	ck_assert_int_eq(alx_compile(big, 204, hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
	big[0] = 0;
	for (i = 0; i < 200; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), "true || ");
	snprintf(big + strlen(big), sizeof(big) - strlen(big), "true");
	ck_assert_int_eq(alx_compile(big, strlen(big), hdr_fn, NULL, &x, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "nodes"));
}
END_TEST

/* random token soup: compiled or refused, never a crash (ASan in make SAN=1) */
START_TEST(expr_fuzz)
{
	static const char *const toks[] = { "response.code", "request.path", "request.headers['a']", "connection.mtls",
					    "response.flags", "==", "!=", "<", ">=", "&&", "||", "!", "(", ")", "'x'",
					    "\"y\"", "200", "true", ".startsWith(", ".contains(", "[", "]", ".", ",",
					    "'", "\\", "\x80", "%" };
	struct px_alog_entry e;
	struct px_str hv[PX_ALOG_MAX_HDRS];
	unsigned seed = 12345;
	char src[512], err[256];
	size_t i, k, ok = 0;

	entry(&e);
	memset(hv, 0, sizeof(hv));
	e.hdrs = hv;
	e.n_hdrs = PX_ALOG_MAX_HDRS;
	for (i = 0; i < 20000; i++) {
		size_t n = 1 + (seed = seed * 1103515245 + 12345) % 12;
		struct alx *x;

		src[0] = 0;
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			snprintf(src + strlen(src), sizeof(src) - strlen(src), "%s ", toks[(seed >> 8) % (sizeof(toks) / sizeof(toks[0]))]);
		}
		n_hnames = 0;
		if (alx_compile(src, strlen(src), hdr_fn, NULL, &x, err, sizeof(err)) == 0) {
			ok++;
			(void)alx_eval(x, &e);
			alx_free(x);
		} else {
			ck_assert_msg(err[0], "refused without a reason: %s", src);
		}
	}
	ck_assert_uint_gt(ok, 0);
}
END_TEST

/* random format soup: compiled or refused with a reason, formatted without harm */
START_TEST(format_fuzz)
{
	static const char *const toks[] = { "%", "REQ(", "RESP(", ")", ":", "9", "0", "?", "START_TIME", "%RESPONSE_CODE%",
					    "%REQ(:PATH):3%", "%START_TIME(%f%3f%Y%%)%", "x", "(", "\"", "\n", "%BYTES_SENT%",
					    "DURATION", "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "\xff", "%%" };
	struct px_alog_entry e;
	struct px_alog_cfg *c;
	unsigned seed = 777;
	char fmt[512], err[256], out[4096];
	size_t i, k, ok = 0;

	entry(&e);
	e.downstream_local = "[::1]:80";
	for (i = 0; i < 3000; i++) {
		size_t n = 1 + (seed = seed * 1103515245 + 12345) % 10;

		fmt[0] = 0;
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			snprintf(fmt + strlen(fmt), sizeof(fmt) - strlen(fmt), "%s",
				 toks[(seed >> 8) % (sizeof(toks) / sizeof(toks[0]))]);
		}
		err[0] = 0;
		if (compile1(fmt, NULL, NULL, 0, NULL, &c, err, sizeof(err)) == 0) {
			ok++;
			ck_assert_int_eq(px_alog_cfg_format(c, 0, &e, out, sizeof(out)), 0);
			px_alog_cfg_free(c);
		} else {
			ck_assert_msg(err[0], "refused without a reason: %s", fmt);
		}
	}
	ck_assert_uint_gt(ok, 0);
}
END_TEST

/* the filter decides which lines reach the file */
START_TEST(filtered_lines_to_file)
{
	struct px_alog_cfg *c;
	struct px_alog_entry e;
	char err[256], buf[1024];
	FILE *f;
	size_t n;

	ck_assert_msg(compile1("%RESPONSE_CODE% %REQ(:PATH)%\n", NULL, NULL, 0, "response.code >= 400", &c, err,
			       sizeof(err)) == 0, "%s", err);
	entry(&e);
	px_alog_cfg_log(c, &e);
	e.status = 503;
	e.path = S("/bad");
	px_alog_cfg_log(c, &e);
	e.status = 404;
	e.path = S("/gone");
	px_alog_cfg_log(c, &e);
	px_alog_cfg_free(c);
	px_alog_sinks_free(sinks); /* flushes */
	sinks = px_alog_sinks_new(loop);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	ck_assert_str_eq(buf, "503 /bad\n404 /gone\n");
	/* a filter outside the subset refuses the whole config */
	ck_assert_int_eq(compile1("%RESPONSE_CODE%\n", NULL, NULL, 0, "response.code > 1 ? true : false", &c, err,
				  sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "'?'"));
}
END_TEST

/* A sink on a stdout whose reader stalls (a full pipe) never blocks: the
 * rest waits in the buffer, lines past its cap are dropped whole and
 * counted, and what the reader gets later is whole lines only.  A FIFO
 * path without a reader is refused at once instead of waited for. */
START_TEST(stalled_stdout_never_blocks)
{
	struct px_alog *l;
	struct px_alog_entry e;
	char *long_path = malloc(1000), *got = malloc(1 << 21), fifo[80];
	size_t n = 0, lines = 0, i;
	int p[2], saved;

	ck_assert_int_eq(pipe(p), 0);
	saved = dup(STDOUT_FILENO);
	ck_assert_int_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);
	ck_assert_int_eq(px_alog_open(loop, "-", &l), 0);
	entry(&e);
	memset(long_path, 'p', 999);
	long_path[999] = '\0';
	e.path = S(long_path);
	/* 2,000 lines of ~1.2 KB: 2.4 MB, a pipe holds 64 KiB, the buffer 1 MiB */
	for (i = 0; i < 2000; i++)
		px_alog_write(l, &e);
	px_alog_flush(l);
	ck_assert_uint_gt(px_alog_dropped(l), 0);
	/* the reader comes back: drain, flush the rest, drain */
	ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	for (i = 0; i < 64; i++) {
		ssize_t r;

		while ((r = read(p[0], got + n, (1 << 21) - 1 - n)) > 0)
			n += (size_t)r;
		px_alog_flush(l);
	}
	got[n] = '\0';
	px_alog_free(l);
	ck_assert_int_eq(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	ck_assert_uint_gt(n, 64 * 1024);
	for (i = 0; i < n; i = (size_t)(strchr(got + i, '\n') - got) + 1) {
		ck_assert_msg(got[i] == '[' && strchr(got + i, '\n'), "a torn line at byte %zu", i);
		lines++;
	}
	ck_assert_uint_lt(lines, 2000);
	free(long_path);
	free(got);

	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(px_alog_open(loop, fifo, &l), -ENXIO);
	unlink(fifo);
}
END_TEST

/* Envoy's filesystem.* statistics: lines buffered, writes completed,
 * reopen failures, and lines a stalled reader cost counted as failed */
START_TEST(filesystem_stats)
{
	struct px_alog_fs_stats fs;
	struct px_alog *l, *out;
	struct px_alog_entry e;
	char err[256], dir[80], moved[96];
	int p[2], saved;
	size_t i;

	entry(&e);
	ck_assert_int_eq(px_alog_sinks_get(sinks, path, &l, err, sizeof(err)), 0);
	for (i = 0; i < 3; i++)
		px_alog_write(l, &e);
	px_alog_sinks_fs_stats(sinks, &fs);
	ck_assert_uint_eq(fs.write_buffered, 3);
	ck_assert_uint_gt(fs.write_total_buffered, 0);
	ck_assert_uint_eq(fs.write_completed, 0);
	px_alog_flush(l);
	px_alog_sinks_fs_stats(sinks, &fs);
	ck_assert_uint_eq(fs.write_completed, 1);
	ck_assert_uint_eq(fs.write_total_buffered, 0);
	ck_assert_uint_eq(fs.write_failed, 0);
	ck_assert_uint_eq(fs.reopen_failed, 0);

	/* a file in a directory that is gone: reopen fails, counted */
	snprintf(dir, sizeof(dir), "%s.d", path);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(moved, sizeof(moved), "%s/a.log", dir);
	ck_assert_int_eq(px_alog_sinks_get(sinks, moved, &l, err, sizeof(err)), 0);
	unlink(moved);
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(px_alog_sinks_reopen(sinks, err, sizeof(err)), -ENOENT);
	px_alog_sinks_fs_stats(sinks, &fs);
	ck_assert_uint_eq(fs.reopen_failed, 1);

	/* stdout a pipe nobody reads: the lines it cannot take are write_failed */
	ck_assert_int_eq(pipe(p), 0);
	saved = dup(STDOUT_FILENO);
	ck_assert_int_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);
	ck_assert_int_eq(px_alog_sinks_get(sinks, "-", &out, err, sizeof(err)), 0);
	for (i = 0; i < 40000; i++)
		px_alog_write(out, &e);
	px_alog_flush(out);
	px_alog_sinks_fs_stats(sinks, &fs);
	ck_assert_uint_gt(fs.write_failed, 0);
	ck_assert_uint_eq(fs.write_failed, px_alog_dropped(out));
	ck_assert_uint_eq(fs.write_buffered, 3 + 40000);
	ck_assert_uint_gt(fs.write_total_buffered, 0);
	px_alog_sinks_free(sinks);
	sinks = NULL;
	ck_assert_int_eq(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Envoy's short flag string lists flags in ascending ResponseFlag value,
 * whatever order they were set in: a retried reset is "UC,URX" */
START_TEST(flags_in_envoy_order)
{
	char b[64];

	ck_assert_str_eq(px_flags_str(PX_RF_URX | PX_RF_UC, b, sizeof(b)), "UC,URX");
	ck_assert_str_eq(px_flags_str(PX_RF_URX | PX_RF_UF, b, sizeof(b)), "UF,URX");
	ck_assert_str_eq(px_flags_str(PX_RF_UPE | PX_RF_URX, b, sizeof(b)), "URX,UPE");
	ck_assert_str_eq(px_flags_str(PX_RF_UT | PX_RF_UH, b, sizeof(b)), "UH,UT");
	ck_assert_str_eq(px_flags_str(PX_RF_DC | PX_RF_FI | PX_RF_DI, b, sizeof(b)), "DI,FI,DC");
	ck_assert_str_eq(px_flags_str(PX_RF_UR | PX_RF_LR | PX_RF_UO, b, sizeof(b)), "LR,UR,UO");
	ck_assert_str_eq(px_flags_str(PX_RF_SI | PX_RF_DPE | PX_RF_NR, b, sizeof(b)), "NR,SI,DPE");
	ck_assert_str_eq(px_flags_str(0, b, sizeof(b)), "-");
}
END_TEST


int main(void)
{
	Suite *s = suite_create("accesslog");
	TCase *tc = tcase_create("accesslog");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, istio_text_exact);
	tcase_add_test(tc, json_typed_and_hostile);
	tcase_add_test(tc, req_headers_and_time);
	tcase_add_test(tc, grpc_attempts_env);
	tcase_add_test(tc, format_errors);
	tcase_add_test(tc, start_time_fraction_at_the_cap);
	tcase_add_test(tc, expr_eval);
	tcase_add_test(tc, expr_missing_header);
	tcase_add_test(tc, expr_refused);
	tcase_add_test(tc, expr_fuzz);
	tcase_add_test(tc, format_fuzz);
	tcase_add_test(tc, filtered_lines_to_file);
	tcase_add_test(tc, stalled_stdout_never_blocks);
	tcase_add_test(tc, flags_in_envoy_order);
	tcase_add_test(tc, filesystem_stats);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
