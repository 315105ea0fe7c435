/*
 * fuzz_expr.c - libFuzzer target for meshproxy's expression and format
 * compilers (make fuzz): each compiles what a control plane sends, then
 * runs against fixed requests.
 *
 * The first byte picks what the rest is (mode = byte % 5):
 * 0 an access-log filter (the CEL subset of dataplane/alogexpr.c):
 *   alx_compile, then alx_eval on an HTTP request, a TCP connection and a
 *   request with every extra header;
 * 1 a Telemetry metric tag expression (dataplane/istio_stats.c): a
 *   stats.PluginConfig built here whose requests_total dimension (a
 *   standard tag or a new one, from byte 0) is the rest; compiled by
 *   istio_stats_cfg_new, then a request recorded with it and the
 *   Prometheus text written;
 * 2 the rest as a stats.PluginConfig's bytes, the same way;
 * 3 an access-log text format (dataplane/accesslog.c, Envoy's command
 *   operators), with the part after a first NUL as its CEL filter:
 *   px_alog_cfg_new, then the line and the filter for the requests above;
 * 4 a JSON format: the rest split at NULs into key, value, key, ...
 * Invariants: no crash, leak or sanitizer report; a refusal says why; an
 * evaluation is 0 or 1; a formatted line is NUL-terminated in its buffer.
 */
#include "dataplane/accesslog.h"
#include "dataplane/alogexpr.h"
#include "dataplane/ev.h"
#include "dataplane/istio_stats.h"

#include "common/buf.h"
#include "common/log.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/filters/cel/v3/cel.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "istio/stats/config.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODE "sidecar~10.0.0.2~reviews-v2-1.demo~demo.svc.cluster.local"
#define MAX_PAIRS 16

static struct ev_loop *loop;
static struct px_alog_sinks *sinks;

static struct px_str S(const char *s)
{
	struct px_str r = { s, strlen(s) };

	return r;
}

/* extra headers for alx_compile: a small table, as the access log's */
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
	memcpy(hnames[n_hnames], name, len);
	hnames[n_hnames][len] = 0;
	return (int)n_hnames++;
}

/* the fixed requests: an HTTP one, a TCP connection, one with headers */
static void entries(struct px_alog_entry e[3], struct px_str hv[PX_ALOG_MAX_HDRS])
{
	size_t i;

	memset(e, 0, 3 * sizeof(e[0]));
	e[0].start_us = 1764574343123456ULL;
	e[0].method = S("GET");
	e[0].path = S("/api/items?x=1");
	e[0].protocol = S("HTTP/1.1");
	e[0].ua = S("curl/8.0");
	e[0].rid = S("rid-1");
	e[0].authority = S("b.ns.svc:8080");
	e[0].status = 503;
	e[0].flags = 0x20 | 0x8000;
	e[0].tx = 12;
	e[0].duration_ms = 3;
	e[0].upstream_ms = 2;
	e[0].upstream_host = "127.0.0.2:9000";
	e[0].upstream_cluster = "outbound|8080||b.ns.svc.cluster.local";
	e[0].route_name = "default";
	e[0].details = "via_upstream";
	e[0].downstream_remote = "127.0.0.1:40000";
	e[0].downstream_local = "10.0.0.2:8080";
	e[0].peer_principal = "spiffe://cluster.local/ns/demo/sa/web";
	e[0].mtls = 1;
	e[0].grpc_status1 = 15;
	e[0].attempts = 2;
	e[1].start_us = 1764574343123456ULL;
	e[1].upstream_ms = -1;
	e[1].rx = 100;
	e[1].flags = 0x10;
	e[2] = e[0];
	e[2].status = 200;
	e[2].flags = 0;
	for (i = 0; i < PX_ALOG_MAX_HDRS; i++)
		hv[i] = (i % 3) ? S("on") : (struct px_str){ NULL, 0 };
	e[2].hdrs = hv;
	e[2].n_hdrs = PX_ALOG_MAX_HDRS;
}

static void filter(const char *src, size_t len)
{
	struct px_alog_entry e[3];
	struct px_str hv[PX_ALOG_MAX_HDRS];
	struct alx *x = NULL;
	char err[256] = "";
	int i, r;

	n_hnames = 0;
	if (alx_compile(src, len, hdr_fn, NULL, &x, err, sizeof(err)) != 0) {
		if (x != NULL || err[0] == 0)
			abort();
		return;
	}
	entries(e, hv);
	for (i = 0; i < 3; i++) {
		r = alx_eval(x, &e[i]);
		if (r != 0 && r != 1)
			abort();
	}
	alx_free(x);
}

/* One request through c (NULL: none) into a fresh table, and its text. */
static void record(const struct istio_stats_cfg *c)
{
	struct istio_hval hv[64];
	const char *const *names = NULL;
	struct istio_stats *st = NULL;
	struct istio_req r;
	struct mesh_buf out;
	size_t n, i;

	if (istio_stats_new(NODE, "app=reviews,version=v2", "reviews", 8, &st) != 0)
		return;
	n = c ? istio_stats_cfg_headers(c, &names) : 0;
	for (i = 0; i < n && i < 64; i++) {
		if (names[i] == NULL)
			abort();
		hv[i].p = (i % 2) ? "on" : NULL;
		hv[i].len = (i % 2) ? 2 : 0;
	}
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
	r.path = "/api/items?x=1";
	r.path_len = strlen(r.path);
	r.host = "reviews:9080";
	r.host_len = strlen(r.host);
	r.cluster = "inbound|9080||";
	r.route = "default";
	r.source_address = "10.0.0.9:41000";
	r.hdr_vals = hv;
	r.n_hdr_vals = n < 64 ? n : 64;
	r.duration_ms = 3;
	istio_stats_record(st, &r);
	r.inbound = 0;
	r.grpc = 1;
	r.grpc_status = 14;
	istio_stats_record(st, &r);
	istio_stats_tcp(st, &r, 1, 1);
	mesh_buf_init(&out, 1u << 24);
	istio_stats_prometheus(st, &out);
	mesh_buf_cleanup(&out);
	istio_stats_free(st);
}

static void plugin_config(const uint8_t *d, size_t n)
{
	struct istio_stats_cfg *c = NULL;
	char why[512] = "";

	if (istio_stats_cfg_new(d, n, &c, why, sizeof(why)) != 0) {
		if (c != NULL || why[0] == 0)
			abort();
		return;
	}
	(void)istio_stats_cfg_id(c);
	(void)istio_stats_cfg_report_ms(c);
	record(c);
	istio_stats_cfg_free(c);
}

static void tag_expression(unsigned sel, const char *src, size_t len)
{
	static const char *const keys[] = { "destination_app", "request_operation", "source_workload", "response_code" };
	Stats__PluginConfig pc = STATS__PLUGIN_CONFIG__INIT;
	Stats__MetricConfig mc = STATS__METRIC_CONFIG__INIT, *mcp = &mc;
	Stats__MetricConfig__DimensionsEntry de = STATS__METRIC_CONFIG__DIMENSIONS_ENTRY__INIT, *dep = &de;
	char *expr = malloc(len + 1);
	uint8_t *wire;
	size_t n;

	if (expr == NULL)
		return;
	/* a protobuf string: the bytes up to a NUL */
	memcpy(expr, src, len);
	expr[len] = 0;
	de.key = (char *)keys[sel % 4];
	de.value = expr;
	mc.name = (sel & 4) ? "" : "requests_total";
	mc.dimensions = &dep;
	mc.n_dimensions = 1;
	pc.metrics = &mcp;
	pc.n_metrics = 1;
	n = stats__plugin_config__get_packed_size(&pc);
	wire = malloc(n ? n : 1);
	if (wire != NULL) {
		stats__plugin_config__pack(&pc, wire);
		plugin_config(wire, n);
		free(wire);
	}
	free(expr);
}

static Google__Protobuf__Any *any_of(const ProtobufCMessage *m)
{
	Google__Protobuf__Any *a = calloc(1, sizeof(*a));
	size_t n = protobuf_c_message_get_packed_size(m);

	if (a == NULL)
		return NULL;
	google__protobuf__any__init(a);
	a->value.data = malloc(n ? n : 1);
	if (a->value.data == NULL) {
		free(a);
		return NULL;
	}
	a->value.len = protobuf_c_message_pack(m, a->value.data);
	a->type_url = malloc(strlen(m->descriptor->name) + 32);
	if (a->type_url == NULL) {
		free(a->value.data);
		free(a);
		return NULL;
	}
	snprintf(a->type_url, strlen(m->descriptor->name) + 32, "type.googleapis.com/%s", m->descriptor->name);
	return a;
}

static void free_any(Google__Protobuf__Any *a)
{
	if (a == NULL)
		return;
	free(a->value.data);
	free(a->type_url);
	free(a);
}

/* An access log with a text format (text) or JSON format (keys/values)
 * and an optional CEL filter, compiled then applied to the requests. */
static void access_log(const char *text, char *const *keys, char *const *values, size_t npairs, const char *cel_src)
{
	Envoy__Config__Accesslog__V3__AccessLog al = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__INIT, *alp = &al;
	Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog f =
		ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__INIT;
	Envoy__Config__Core__V3__SubstitutionFormatString sf = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__INIT;
	Envoy__Config__Core__V3__DataSource ds = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
	Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[MAX_PAIRS], *fep[MAX_PAIRS];
	Google__Protobuf__Value v[MAX_PAIRS];
	Envoy__Config__Accesslog__V3__AccessLogFilter af = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__INIT;
	Envoy__Config__Accesslog__V3__ExtensionFilter ef = ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__INIT;
	Envoy__Extensions__AccessLoggers__Filters__Cel__V3__ExpressionFilter cel =
		ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILTERS__CEL__V3__EXPRESSION_FILTER__INIT;
	struct px_alog_entry e[3];
	struct px_str hv[PX_ALOG_MAX_HDRS];
	struct px_alog_cfg *c = NULL;
	char err[256] = "", line[4096];
	size_t i, nh;

	f.path = "/dev/null";
	if (keys != NULL) {
		for (i = 0; i < npairs; i++) {
			google__protobuf__struct__fields_entry__init(&fe[i]);
			google__protobuf__value__init(&v[i]);
			v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			v[i].string_value = values[i];
			fe[i].key = keys[i];
			fe[i].value = &v[i];
			fep[i] = &fe[i];
		}
		st.fields = fep;
		st.n_fields = npairs;
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
	if (cel_src != NULL) {
		cel.expression = (char *)cel_src;
		ef.name = "envoy.access_loggers.extension_filters.cel";
		ef.config_type_case = ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__CONFIG_TYPE_TYPED_CONFIG;
		ef.typed_config = any_of(&cel.base);
		af.filter_specifier_case = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__FILTER_SPECIFIER_EXTENSION_FILTER;
		af.extension_filter = &ef;
		al.filter = &af;
	}
	if (al.typed_config == NULL || (cel_src != NULL && ef.typed_config == NULL))
		goto out;
	if (px_alog_cfg_new(sinks, &alp, 1, &c, err, sizeof(err)) != 0) {
		if (c != NULL || err[0] == 0)
			abort();
		goto out;
	}
	nh = px_alog_cfg_n_headers(c);
	for (i = 0; i < nh; i++)
		if (px_alog_cfg_header(c, i) == NULL)
			abort();
	(void)px_alog_cfg_needs(c);
	entries(e, hv);
	e[2].n_hdrs = nh < PX_ALOG_MAX_HDRS ? nh : PX_ALOG_MAX_HDRS;
	for (i = 0; i < 3; i++) {
		int r;

		line[sizeof(line) - 1] = 'x';
		r = px_alog_cfg_format(c, 0, &e[i], line, sizeof(line));
		if (r == 0 && memchr(line, 0, sizeof(line)) == NULL)
			abort();
		r = px_alog_cfg_filter(c, 0, &e[i]);
		if (r != 0 && r != 1)
			abort();
	}
	px_alog_cfg_free(c);
out:
	free_any(al.typed_config);
	free_any(ef.typed_config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	char *copy, *keys[MAX_PAIRS], *values[MAX_PAIRS];
	size_t np = 0, off = 0;

	if (loop == NULL) {
		mesh_log_set_level(MESH_LOG_OFF);
		loop = ev_loop_new();
		sinks = loop ? px_alog_sinks_new(loop) : NULL;
		if (sinks == NULL)
			abort();
	}
	if (size == 0)
		return 0;
	switch (data[0] % 5) {
	case 0:
		filter(d, n);
		return 0;
	case 1:
		tag_expression(data[0] / 5, d, n);
		return 0;
	case 2:
		plugin_config((const uint8_t *)d, n);
		return 0;
	default:
		break;
	}
	/* text and JSON formats: NUL-separated strings */
	copy = malloc(n + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, d, n);
	copy[n] = 0;
	if (data[0] % 5 == 3) {
		size_t tl = strlen(copy);

		access_log(copy, NULL, NULL, 0, tl < n ? copy + tl + 1 : NULL);
	} else {
		while (off < n && np < MAX_PAIRS) {
			keys[np] = copy + off;
			off += strlen(copy + off) + 1;
			values[np] = off <= n ? copy + off : (char *)"";
			if (off <= n)
				off += strlen(copy + off) + 1;
			np++;
		}
		access_log(NULL, keys, values, np, NULL);
	}
	free(copy);
	return 0;
}
