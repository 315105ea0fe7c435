/*
 * test_config.c - the configuration parser: valid Istio examples decode to
 * the right structs; invalid ones are rejected with the exact field path
 * and line; malformed, hostile and truncated input never crashes.
 * Fixtures live in tests/data/config/ (run from the repository root).
 */
#include "controlplane/config/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA "tests/data/config/"

static struct cfg_parse_result res;

static void teardown(void)
{
	cfg_parse_result_cleanup(&res);
}

static void parse_file(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), DATA "%s", name);
	ck_assert_int_eq(cfg_parse_file(path, &res), 0);
}

static void parse_str(const char *text)
{
	ck_assert_int_eq(cfg_parse_buffer("inline.yaml", text, strlen(text), &res), 0);
}

static void dump_errors(void)
{
	char line[1024];
	size_t i;

	for (i = 0; i < res.n_errors; i++) {
		cfg_error_format(&res.errors[i], line, sizeof(line));
		fprintf(stderr, "  %s\n", line);
	}
}

/* the error with this field path (NULL: a whole-document error) */
static const struct cfg_error *find_error(const char *field)
{
	size_t i;

	for (i = 0; i < res.n_errors; i++) {
		const char *f = res.errors[i].field;
		if ((!field && !f) || (field && f && strcmp(f, field) == 0))
			return &res.errors[i];
	}
	dump_errors();
	return NULL;
}

static void expect_error(const char *field, int line, const char *text)
{
	const struct cfg_error *e = find_error(field);

	ck_assert_msg(e != NULL, "no error at %s", field ? field : "(document)");
	ck_assert_int_eq(e->line, line);
	ck_assert_msg(strstr(e->message, text) != NULL, "message \"%s\" lacks \"%s\"", e->message, text);
}

static const struct cfg_object *find_object(const char *name)
{
	size_t i;

	for (i = 0; i < res.n_objects; i++)
		if (strcmp(res.objects[i]->name, name) == 0)
			return res.objects[i];
	return NULL;
}

/* no errors (Istio's warnings may be there: they reject nothing) */
static void expect_clean(size_t n_objects)
{
	size_t i, n = 0;

	for (i = 0; i < res.n_errors; i++)
		n += !res.errors[i].warning;
	if (n)
		dump_errors();
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(res.n_objects, n_objects);
}

/* ---------------------------------------------------------------- valid */

START_TEST(test_vs_canary)
{
	const struct cfg_object *o;
	const struct cfg_http_route *h;

	parse_file("valid/vs-canary.yaml");
	expect_clean(1);
	o = res.objects[0];
	ck_assert_int_eq(o->kind, CFG_VIRTUAL_SERVICE);
	ck_assert_str_eq(o->name, "reviews");
	ck_assert_str_eq(o->ns, "default");
	ck_assert_str_eq(o->api_version, "networking.istio.io/v1");
	ck_assert_int_eq(o->line, 2);
	ck_assert_uint_eq(o->spec.vs.hosts.n, 1);
	ck_assert_str_eq(o->spec.vs.hosts.v[0], "reviews");
	ck_assert_uint_eq(o->spec.vs.n_http, 1);
	h = &o->spec.vs.http[0];
	ck_assert_uint_eq(h->n_route, 2);
	ck_assert_str_eq(h->route[0].destination.host, "reviews");
	ck_assert_str_eq(h->route[0].destination.subset, "v1");
	ck_assert_int_eq(h->route[0].weight, 90);
	ck_assert_str_eq(h->route[1].destination.subset, "v2");
	ck_assert_int_eq(h->route[1].weight, 10);
	ck_assert_int_eq(h->timeout, -1);
	ck_assert(!h->retries.set);
	ck_assert_int_eq(h->route[0].destination.port, -1);
}
END_TEST

START_TEST(test_vs_header_match)
{
	const struct cfg_object *o;
	const struct cfg_http_match *m;

	parse_file("valid/vs-header-match.yaml");
	expect_clean(1);
	o = res.objects[0];
	ck_assert_str_eq(o->ns, "default"); /* metadata.namespace absent */
	ck_assert_str_eq(o->api_version, "networking.istio.io/v1beta1");
	ck_assert_uint_eq(o->spec.vs.n_http, 2);
	ck_assert_str_eq(o->spec.vs.http[0].name, "jason");
	m = &o->spec.vs.http[0].match[0];
	ck_assert_uint_eq(m->n_headers, 1);
	ck_assert_str_eq(m->headers[0].name, "end-user");
	ck_assert_int_eq(m->headers[0].match.type, CFG_MATCH_EXACT);
	ck_assert_str_eq(m->headers[0].match.value, "jason");
	ck_assert_int_eq(m->uri.type, CFG_MATCH_PREFIX);
	ck_assert_str_eq(m->uri.value, "/api/");
	/* RE2 syntax POSIX lacks ((?:, \d) is accepted */
	m = &o->spec.vs.http[1].match[0];
	ck_assert_int_eq(m->uri.type, CFG_MATCH_REGEX);
	ck_assert(m->ignore_uri_case);
	ck_assert_int_eq(o->spec.vs.http[1].n_route, 1);
	ck_assert_int_eq(o->spec.vs.http[1].route[0].weight, -1);
}
END_TEST

START_TEST(test_vs_fault_and_retries)
{
	const struct cfg_object *o;
	const struct cfg_http_route *h;

	parse_file("valid/vs-fault.yaml");
	expect_clean(1);
	o = res.objects[0];
	ck_assert_str_eq(o->ns, "bookinfo");
	h = &o->spec.vs.http[0];
	ck_assert(h->fault.has_delay);
	ck_assert_int_eq(h->fault.fixed_delay, 7000000000LL);
	ck_assert(h->fault.delay_percent == 100.0);
	ck_assert(!h->fault.has_abort);
	h = &o->spec.vs.http[1];
	ck_assert(h->fault.has_abort);
	ck_assert_int_eq(h->fault.http_status, 500);
	ck_assert(h->fault.abort_percent == 10.0);
	cfg_parse_result_cleanup(&res);

	parse_file("valid/vs-retries.yaml");
	expect_clean(1);
	h = &res.objects[0]->spec.vs.http[0];
	ck_assert(h->retries.set);
	ck_assert_int_eq(h->retries.attempts, 3);
	ck_assert_int_eq(h->retries.per_try_timeout, 2000000000LL);
	ck_assert_str_eq(h->retries.retry_on, "gateway-error,connect-failure,refused-stream,503");
	ck_assert_int_eq(h->timeout, 10000000000LL);
	ck_assert_int_eq(h->route[0].destination.port, 9080);
	ck_assert_uint_eq(res.objects[0]->spec.vs.n_tcp, 1);
	ck_assert_int_eq(res.objects[0]->spec.vs.tcp[0].match_port, 27017);
	ck_assert_int_eq(res.objects[0]->spec.vs.tcp[0].route[0].destination.port, 5555);
}
END_TEST

START_TEST(test_dr_subsets)
{
	const struct cfg_object *o;
	const struct cfg_destination_rule *dr;

	parse_file("valid/dr-subsets.yaml");
	expect_clean(2);
	o = find_object("reviews");
	ck_assert_ptr_nonnull(o);
	dr = &o->spec.dr;
	ck_assert_str_eq(dr->host, "reviews");
	ck_assert(dr->traffic_policy.set);
	ck_assert_int_eq(dr->traffic_policy.policy.load_balancer.simple, CFG_LB_RANDOM);
	ck_assert_int_eq(dr->traffic_policy.policy.connection_pool.max_connections, 100);
	ck_assert_int_eq(dr->traffic_policy.policy.connection_pool.connect_timeout, 30000000LL);
	ck_assert_int_eq(dr->traffic_policy.policy.connection_pool.http2_max_requests, 1000);
	ck_assert_int_eq(dr->traffic_policy.policy.connection_pool.max_requests_per_connection, 10);
	ck_assert_int_eq(dr->traffic_policy.policy.connection_pool.http1_max_pending_requests, -1);
	ck_assert_int_eq(dr->traffic_policy.policy.outlier_detection.consecutive_5xx_errors, 7);
	ck_assert_int_eq(dr->traffic_policy.policy.outlier_detection.interval, 300000000000LL);
	ck_assert_int_eq(dr->traffic_policy.policy.outlier_detection.base_ejection_time, 900000000000LL);
	ck_assert_uint_eq(dr->n_subsets, 2);
	ck_assert_str_eq(dr->subsets[0].name, "v1");
	ck_assert_uint_eq(dr->subsets[0].labels.n, 1);
	ck_assert_str_eq(dr->subsets[0].labels.v[0].key, "version");
	ck_assert_str_eq(dr->subsets[0].labels.v[0].value, "v1");
	ck_assert(!dr->subsets[0].traffic_policy.set);
	ck_assert(dr->subsets[1].traffic_policy.set);
	ck_assert_int_eq(dr->subsets[1].traffic_policy.policy.load_balancer.simple, CFG_LB_ROUND_ROBIN);
	ck_assert_uint_eq(dr->subsets[1].traffic_policy.n_port_level, 1);
	ck_assert_int_eq(dr->subsets[1].traffic_policy.port_level[0].port, 9080);
	ck_assert(dr->subsets[1].traffic_policy.port_level[0].policy.load_balancer.has_consistent_hash);
	ck_assert_int_eq(dr->subsets[1].traffic_policy.port_level[0].policy.load_balancer.consistent_hash.key,
			 CFG_HASH_HEADER);
	o = find_object("ratings");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(o->spec.dr.traffic_policy.policy.tls.mode, CFG_TLS_ISTIO_MUTUAL);
	ck_assert_int_eq(o->line, 40); /* the first token after "---" */
}
END_TEST

START_TEST(test_se_we)
{
	const struct cfg_service_entry *se;
	const struct cfg_workload *we;

	parse_file("valid/se-static.yaml");
	expect_clean(1);
	se = &res.objects[0]->spec.se;
	ck_assert_int_eq(se->resolution, CFG_RESOLUTION_STATIC);
	ck_assert_int_eq(se->location, CFG_MESH_INTERNAL);
	ck_assert_uint_eq(se->n_ports, 1);
	ck_assert_int_eq(se->ports[0].number, 27018);
	ck_assert_str_eq(se->ports[0].protocol, "MONGO");
	ck_assert_uint_eq(se->n_endpoints, 2);
	ck_assert_str_eq(se->endpoints[1].address, "3.3.3.3");
	ck_assert_uint_eq(se->endpoints[1].n_ports, 1);
	ck_assert_str_eq(se->endpoints[1].ports[0].key, "mongodb");
	ck_assert_str_eq(se->endpoints[1].ports[0].value, "27019");
	ck_assert_uint_eq(se->addresses.n, 1);
	cfg_parse_result_cleanup(&res);

	parse_file("valid/we.yaml");
	expect_clean(1);
	we = &res.objects[0]->spec.we;
	ck_assert_str_eq(we->address, "2.2.2.2");
	ck_assert_str_eq(we->service_account, "details-legacy");
	ck_assert_uint_eq(we->labels.n, 2);
	ck_assert_str_eq(we->ports[0].key, "http");
	ck_assert_str_eq(we->ports[0].value, "9080");
	ck_assert_int_eq(we->weight, -1);
}
END_TEST

START_TEST(test_pa_ap)
{
	const struct cfg_object *o;
	const struct cfg_authorization_policy *ap;

	parse_file("valid/pa-strict.yaml");
	expect_clean(2);
	o = find_object("default");
	ck_assert_int_eq(o->spec.pa.mode, CFG_MTLS_STRICT);
	ck_assert(!o->spec.pa.has_selector);
	o = find_object("finance");
	ck_assert(o->spec.pa.has_selector);
	ck_assert_uint_eq(o->spec.pa.n_port_level, 1);
	ck_assert_int_eq(o->spec.pa.port_level[0].port, 8080);
	ck_assert_int_eq(o->spec.pa.port_level[0].mode, CFG_MTLS_PERMISSIVE);
	cfg_parse_result_cleanup(&res);

	parse_file("valid/ap-allow-deny.yaml");
	expect_clean(3);
	ap = &find_object("httpbin")->spec.ap;
	ck_assert_int_eq(ap->action, CFG_AUTHZ_ALLOW);
	ck_assert(ap->has_selector);
	ck_assert_uint_eq(ap->n_rules, 1);
	ck_assert_uint_eq(ap->rules[0].n_from, 2);
	ck_assert_str_eq(ap->rules[0].from[0].principals.v[0], "cluster.local/ns/default/sa/sleep");
	ck_assert_str_eq(ap->rules[0].from[1].namespaces.v[0], "dev");
	ck_assert_uint_eq(ap->rules[0].n_to, 1);
	ck_assert_str_eq(ap->rules[0].to[0].methods.v[0], "GET");
	ck_assert_str_eq(ap->rules[0].to[0].ports.v[0], "8000");
	ck_assert_uint_eq(ap->rules[0].n_when, 2);
	ck_assert_str_eq(ap->rules[0].when[0].key, "request.headers[version]");
	ck_assert_uint_eq(ap->rules[0].when[0].values.n, 2);
	ap = &find_object("deny-delete")->spec.ap;
	ck_assert_int_eq(ap->action, CFG_AUTHZ_DENY);
	ck_assert_str_eq(ap->rules[0].from[0].not_namespaces.v[0], "foo");
	ap = &find_object("allow-nothing")->spec.ap;
	ck_assert_int_eq(ap->action, CFG_AUTHZ_ALLOW);
	ck_assert_uint_eq(ap->n_rules, 0);
	ck_assert(!ap->has_selector);
}
END_TEST

START_TEST(test_json_file)
{
	const struct cfg_object *o;

	parse_file("valid/vs.json");
	expect_clean(1);
	o = res.objects[0];
	ck_assert_str_eq(o->name, "details");
	ck_assert_int_eq(o->spec.vs.http[0].route[0].destination.port, 9080);
	ck_assert_str_eq(o->json, "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
			 "\"metadata\":{\"name\":\"details\",\"namespace\":\"default\"},\"spec\":{\"hosts\":"
			 "[\"details\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"details\","
			 "\"port\":{\"number\":9080}}}]}]}}");
}
END_TEST

START_TEST(test_list_and_ignored)
{
	parse_file("valid/list-and-others.yaml");
	expect_clean(2);
	ck_assert_ptr_nonnull(find_object("details"));
	ck_assert_ptr_nonnull(find_object("httpbin-ext"));
	ck_assert_int_eq(find_object("httpbin-ext")->spec.se.resolution, CFG_RESOLUTION_DNS);
	ck_assert_uint_eq(res.n_ignored, 1);
}
END_TEST

/* the same content in another file, at another line, in JSON: same hash */
START_TEST(test_hash_canonical)
{
	static const char a[] = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
				"metadata: {name: x}\nspec:\n  host: x   # comment\n";
	static const char b[] = "# leading comment\n\n---\n{\"apiVersion\": \"networking.istio.io/v1\", "
				"\"kind\": \"DestinationRule\", \"metadata\": {\"name\": \"x\"}, "
				"\"spec\": {\"host\": \"x\"}}\n";
	static const char c[] = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
				"metadata: {name: x}\nspec:\n  host: y\n";
	struct cfg_parse_result r2;
	uint64_t ha;

	parse_str(a);
	expect_clean(1);
	ha = res.objects[0]->hash;
	ck_assert_int_eq(res.objects[0]->line, 1);
	ck_assert_int_eq(cfg_parse_buffer("other.json", b, strlen(b), &r2), 0);
	ck_assert_uint_eq(r2.n_objects, 1);
	ck_assert_int_eq(r2.objects[0]->line, 4);
	ck_assert_str_eq(r2.objects[0]->json, res.objects[0]->json);
	ck_assert(r2.objects[0]->hash == ha);
	cfg_parse_result_cleanup(&r2);
	ck_assert_int_eq(cfg_parse_buffer("c.yaml", c, strlen(c), &r2), 0);
	ck_assert_uint_eq(r2.n_objects, 1);
	ck_assert(r2.objects[0]->hash != ha);
	cfg_parse_result_cleanup(&r2);
}
END_TEST

/* ---------------------------------------------------------------- invalid */

START_TEST(test_weights)
{
	char line[512];

	/* weights are relative (Istio >= 1.15): 90 and 20 is a 90:20 split */
	static const char relative[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"
		"  hosts: [r]\n  http:\n  - route:\n    - {destination: {host: r, subset: a}, weight: 90}\n"
		"    - {destination: {host: r, subset: b}, weight: 20}\n";

	parse_str(relative);
	expect_clean(1);
	ck_assert_int_eq(res.objects[0]->spec.vs.http[0].route[1].weight, 20);
	cfg_parse_result_cleanup(&res);
	/* only a zero total with several destinations is rejected */
	parse_file("invalid/vs-weights.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	ck_assert_uint_eq(res.n_errors, 1);
	expect_error("spec.http[0].route", 10, "total destination weight = 0");
	ck_assert_int_eq(res.errors[0].column, 5);
	ck_assert_int_eq(res.errors[0].kind, CFG_VIRTUAL_SERVICE);
	ck_assert_str_eq(res.errors[0].ns, "default");
	ck_assert_str_eq(res.errors[0].name, "reviews");
	ck_assert(!res.unidentified_errors);
	cfg_error_format(&res.errors[0], line, sizeof(line));
	ck_assert_msg(strncmp(line, "tests/data/config/invalid/vs-weights.yaml:10:5: VirtualService default/reviews: "
				    "spec.http[0].route: total destination weight = 0", 110) == 0, "%s", line);
}
END_TEST

START_TEST(test_vs_semantics)
{
	parse_file("invalid/vs-bad-fields.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.hosts[0]", 8, "domain name \"bad_host!\" invalid");
	expect_error("spec.http[0].match[0].uri.regex", 12, "invalid regex");
	expect_error("spec.http[0].timeout", 16, "shorter than 1ms");
	expect_error("spec.http[0].retries.attempts", 18, "negative");
	expect_error("spec.http[0].fault.abort.percentage", 22, "not in range 0..100");
	expect_error("spec.http[0].fault.abort.httpStatus", 23, "HTTP status 700 is not in range 200-599");
	expect_error("spec.http[0].route[0].weight", 27, "weight -5 < 0");
	expect_error("spec.http[0].mirror.host", 32, "destination host is required");
	expect_error("spec.tcp[0].route[0].destination.host", 36, "invalid destination host *");
	ck_assert_uint_eq(res.n_errors, 9);
}
END_TEST

START_TEST(test_vs_schema)
{
	parse_file("invalid/vs-schema.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.hosts", 6, "must be a list, not a string");
	expect_error("spec.http[0].rout", 8, "unknown field \"rout\"");
	expect_error("spec.http[0].timeout", 11, "must be a string");
	cfg_parse_result_cleanup(&res);
	parse_file("invalid/vs-oneof.yaml");
	expect_error("spec.http[0].match[0].headers.x-id", 11, "only one of exact, prefix or regex may be set");
}
END_TEST

START_TEST(test_dr_invalid)
{
	static const char dup[] = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
				  "spec:\n  host: r\n  subsets:\n  - name: v1\n  - name: v1\n  - name: V_3\n"
				  "  trafficPolicy:\n    tls: {mode: MUTUAL}\n";

	parse_file("invalid/dr-bad.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.trafficPolicy.loadBalancer.simple", 9, "\"FASTEST\" is not one of");
	cfg_parse_result_cleanup(&res);
	parse_str(dup);
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.subsets[1].name", 8, "duplicate subset names: v1");
	expect_error("spec.subsets[2].name", 9, "subset name is invalid");
	expect_error("spec.trafficPolicy.tls.clientCertificate", 11, "client certificate required for mutual tls");
}
END_TEST

START_TEST(test_se_invalid)
{
	parse_file("invalid/se-bad.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.ports[1].number", 12, "port 80 is defined twice");
	expect_error("spec.ports[2].number", 15, "not in range 1..65535");
	expect_error("spec.endpoints", 19, "workloadSelector and endpoints cannot both be set");
	expect_error("spec.endpoints[0].address", 19, "is not an IP address");
}
END_TEST

START_TEST(test_security_invalid)
{
	parse_file("invalid/pa-bad.yaml");
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.portLevelMtls", 10, "portLevelMtls requires a selector");
	cfg_parse_result_cleanup(&res);

	/* CUSTOM with a provider is valid Istio: accepted with a warning;
	 * requestPrincipals are compiled (no warning); the bad IP block and
	 * port still reject "jwt" */
	parse_file("invalid/ap-bad.yaml");
	ck_assert_uint_eq(res.n_objects, 1);
	ck_assert_ptr_nonnull(find_object("ext-authz"));
	ck_assert(find_error("spec.action")->warning);
	ck_assert(strstr(find_error("spec.action")->message, "CUSTOM") != NULL);
	expect_error("spec.rules[0].from[0].source.ipBlocks[0]", 25, "not an IP address or CIDR");
	expect_error("spec.rules[0].to[0].operation.ports[0]", 28, "port \"http\"");
	ck_assert_ptr_null(find_error("spec.rules[0]"));
	ck_assert_str_eq(find_error("spec.rules[0].to[0].operation.ports[0]")->name, "jwt");
}
END_TEST

START_TEST(test_malformed_yaml)
{
	parse_file("invalid/malformed.yaml");
	/* the documents before and after the broken one are still parsed */
	ck_assert_uint_eq(res.n_objects, 2);
	ck_assert_ptr_nonnull(find_object("good-before"));
	ck_assert_ptr_nonnull(find_object("good-after"));
	ck_assert_int_eq(find_object("good-after")->line, 16);
	ck_assert_uint_eq(res.n_errors, 1);
	/* the line of the unclosed bracket, not the one where libyaml gave up */
	ck_assert_int_eq(res.errors[0].line, 13);
	ck_assert(strstr(res.errors[0].message, "starts here (unclosed; reached line 14)") != NULL);
	ck_assert_int_eq(res.errors[0].kind, -1);
	ck_assert_ptr_null(res.errors[0].name);
	ck_assert(strstr(res.errors[0].message, "malformed YAML") != NULL);
	ck_assert(res.unidentified_errors);
}
END_TEST

/* Encoding errors point at the byte libyaml's reader stopped on (it gives
 * an offset, no line), and input that is no UTF-8 text says what it looks
 * like. */
START_TEST(test_encoding_errors)
{
	static const char nul[] = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				  "metadata: {name: r}\nspec:\n  hosts: [r\0]\n";
	static const char bad_utf8[] = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				       "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
				       "  - route: [{destination: {host: r}}]\n  # caf\xc3\xa9\n  # \xff\n";
	static const char utf16le[] = "a\0p\0i\0V\0e\0r\0s\0i\0o\0n\0:\0 \0v\0001\0\n\0";
	char text[1024];

	ck_assert_int_eq(cfg_parse_buffer("nul.yaml", nul, sizeof(nul) - 1, &res), 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_int_eq(res.errors[0].line, 5);
	ck_assert_int_eq(res.errors[0].column, 12);
	ck_assert_msg(strstr(res.errors[0].message, "control characters") && strstr(res.errors[0].message, "0x00"),
		      "%s", res.errors[0].message);
	cfg_parse_result_cleanup(&res);

	ck_assert_int_eq(cfg_parse_buffer("utf8.yaml", bad_utf8, sizeof(bad_utf8) - 1, &res), 0);
	ck_assert_uint_eq(res.n_errors, 1);
	cfg_error_format(&res.errors[0], text, sizeof(text));
	ck_assert_msg(strstr(text, "utf8.yaml:9:5: not YAML text: invalid leading UTF-8 octet (byte 0xff"), "%s", text);
	ck_assert_ptr_null(strstr(text, "does not look like"));
	cfg_parse_result_cleanup(&res);

	ck_assert_int_eq(cfg_parse_buffer("u16.yaml", utf16le, sizeof(utf16le) - 1, &res), 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_msg(strstr(res.errors[0].message, "UTF-16"), "%s", res.errors[0].message);
	cfg_parse_result_cleanup(&res);

	ck_assert_int_eq(cfg_parse_buffer("bin.yaml", "\x7f" "ELF\x02\x01", 6, &res), 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_msg(strstr(res.errors[0].message, "not look like a text file"), "%s", res.errors[0].message);
	cfg_parse_result_cleanup(&res);

	parse_str("just some words\n");
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_msg(strstr(res.errors[0].message, "is this file YAML?"), "%s", res.errors[0].message);
}
END_TEST

START_TEST(test_multi_one_bad)
{
	parse_file("invalid/multi-one-bad.yaml");
	ck_assert_uint_eq(res.n_objects, 2);
	ck_assert_ptr_nonnull(find_object("one"));
	ck_assert_ptr_nonnull(find_object("three"));
	expect_error("spec.hots", 13, "unknown field \"hots\"");
	expect_error("spec.host", 13, "required field \"host\" is missing");
	ck_assert_str_eq(res.errors[0].name, "two");
	ck_assert(!res.unidentified_errors);
}
END_TEST

START_TEST(test_identification)
{
	static const char text[] =
		"apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a}\nspec: {}\n"
		"---\nkind: VirtualService\nmetadata: {name: b}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
		"---\napiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: p}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {namespace: x}\n"
		"spec: {host: h}\n"
		"---\n- just\n- a list\n"
		"---\n# only a comment\n"
		"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: Bad_Name}\n"
		"spec: {host: h}\n";

	parse_str(text);
	ck_assert_uint_eq(res.n_objects, 0);
	ck_assert_uint_eq(res.n_ignored, 0); /* the Gateway is validated: it has no server */
	expect_error("spec", 9, "gateway must have at least one server");
	expect_error("apiVersion", 1, "networking.istio.io/v2 is not served for VirtualService");
	ck_assert_str_eq(find_error("apiVersion")->name, "a");
	expect_error("metadata.name", 19, "a name is required");
	ck_assert(find_error("metadata.name")->kind == CFG_DESTINATION_RULE);
	ck_assert_ptr_null(find_error("metadata.name")->name);
	ck_assert(res.unidentified_errors);
	{
		size_t i, seen = 0;
		for (i = 0; i < res.n_errors; i++) {
			const char *m = res.errors[i].message;
			if (strstr(m, "VirtualService has no apiVersion") && res.errors[i].line == 6)
				seen |= 1;
			if (strstr(m, "security.istio.io/v1alpha3 is not served") && res.errors[i].line == 13)
				seen |= 2;
			if (strstr(m, "document is a list") && res.errors[i].line == 22)
				seen |= 4;
			if (strstr(m, "\"Bad_Name\" is not a valid name") && res.errors[i].line == 29)
				seen |= 8;
		}
		if (seen != 15)
			dump_errors();
		ck_assert_uint_eq(seen, 15);
	}
	ck_assert_uint_eq(res.n_errors, 7);
	ck_assert_uint_eq(res.n_documents, 7);
}
END_TEST

START_TEST(test_duplicate_keys_and_types)
{
	static const char text[] = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
				   "metadata: {name: d, labels: {app: 1}}\nspec:\n  host: a\n  host: b\n";
	static const char types[] = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
				    "metadata: {name: d}\nspec:\n  host: a\n  exportTo: [\".\"]\n"
				    "  trafficPolicy:\n    connectionPool:\n      tcp:\n        maxConnections: 3000000000\n"
				    "    outlierDetection: {consecutive5xxErrors: yes}\n";

	parse_str(text);
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error(NULL, 6, "duplicate key \"host\"");
	cfg_parse_result_cleanup(&res);
	parse_str(types);
	ck_assert_uint_eq(res.n_objects, 0);
	expect_error("spec.trafficPolicy.connectionPool.tcp.maxConnections", 10, "does not fit in 32 bits");
	expect_error("spec.trafficPolicy.outlierDetection.consecutive5xxErrors", 11, "must be an integer");
}
END_TEST

/* ---------------------------------------------------------------- hostile input */

START_TEST(test_alias_bomb)
{
	static const char text[] =
		"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";

	parse_str(text);
	ck_assert_uint_eq(res.n_objects, 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_msg(strstr(res.errors[0].message, "nodes") != NULL, "%s", res.errors[0].message);
}
END_TEST

START_TEST(test_deep_nesting)
{
	char *text = malloc(20000);
	size_t i, n = 0;

	for (i = 0; i < 5000; i++)
		text[n++] = '[';
	for (i = 0; i < 5000; i++)
		text[n++] = ']';
	text[n] = '\0';
	ck_assert_int_eq(cfg_parse_buffer("deep.yaml", text, n, &res), 0);
	ck_assert_uint_eq(res.n_objects, 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert_msg(strstr(res.errors[0].message, "nesting deeper") != NULL, "%s", res.errors[0].message);
	free(text);
}
END_TEST

START_TEST(test_anchors_supported)
{
	static const char text[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: anch}\n"
		"spec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: &d {host: a}\n"
		"  - route:\n    - destination: *d\n";

	parse_str(text);
	expect_clean(1);
	ck_assert_str_eq(res.objects[0]->spec.vs.http[1].route[0].destination.host, "a");
}
END_TEST

START_TEST(test_file_limits)
{
	char path[] = "/tmp/meshd-test-config-XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_int_eq(fseek(f, CFG_MAX_FILE_BYTES + 1, SEEK_SET), 0);
	fputc('\n', f);
	fclose(f);
	ck_assert_int_eq(cfg_parse_file(path, &res), 0);
	unlink(path);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert(strstr(res.errors[0].message, "larger than the limit") != NULL);
	cfg_parse_result_cleanup(&res);
	ck_assert_int_eq(cfg_parse_file("tests/data/config/does-not-exist.yaml", &res), 0);
	ck_assert_uint_eq(res.n_errors, 1);
	ck_assert(strstr(res.errors[0].message, "cannot read") != NULL);
}
END_TEST

/* every prefix of every valid fixture: no crash, no leak (run under ASan) */
START_TEST(test_truncated_inputs)
{
	static const char *const files[] = {
		"valid/vs-canary.yaml", "valid/vs-header-match.yaml", "valid/vs-fault.yaml", "valid/vs-retries.yaml",
		"valid/dr-subsets.yaml", "valid/se-static.yaml", "valid/we.yaml", "valid/pa-strict.yaml",
		"valid/ap-allow-deny.yaml", "valid/vs.json", "valid/list-and-others.yaml", "invalid/vs-bad-fields.yaml",
	};
	size_t i, len;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[256], *data;
		FILE *f;

		snprintf(path, sizeof(path), DATA "%s", files[i]);
		f = fopen(path, "rb");
		ck_assert_ptr_nonnull(f);
		data = malloc(1 << 16);
		len = fread(data, 1, 1 << 16, f);
		fclose(f);
		for (size_t cut = 0; cut <= len; cut++) {
			struct cfg_parse_result r;
			/* a fresh copy of exactly cut bytes so ASan sees reads past the end */
			char *copy = malloc(cut ? cut : 1);
			memcpy(copy, data, cut);
			ck_assert_int_eq(cfg_parse_buffer(path, copy, cut, &r), 0);
			cfg_parse_result_cleanup(&r);
			free(copy);
		}
		free(data);
	}
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("valid");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_vs_canary);
	tcase_add_test(tc, test_vs_header_match);
	tcase_add_test(tc, test_vs_fault_and_retries);
	tcase_add_test(tc, test_dr_subsets);
	tcase_add_test(tc, test_se_we);
	tcase_add_test(tc, test_pa_ap);
	tcase_add_test(tc, test_json_file);
	tcase_add_test(tc, test_list_and_ignored);
	tcase_add_test(tc, test_hash_canonical);
	suite_add_tcase(s, tc);

	tc = tcase_create("invalid");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_weights);
	tcase_add_test(tc, test_vs_semantics);
	tcase_add_test(tc, test_vs_schema);
	tcase_add_test(tc, test_dr_invalid);
	tcase_add_test(tc, test_se_invalid);
	tcase_add_test(tc, test_security_invalid);
	tcase_add_test(tc, test_malformed_yaml);
	tcase_add_test(tc, test_multi_one_bad);
	tcase_add_test(tc, test_identification);
	tcase_add_test(tc, test_duplicate_keys_and_types);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_alias_bomb);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_anchors_supported);
	tcase_add_test(tc, test_file_limits);
	tcase_add_test(tc, test_truncated_inputs);
	tcase_add_test(tc, test_encoding_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
