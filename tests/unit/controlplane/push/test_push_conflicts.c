/*
 * test_push_conflicts.c - the pilot_conflict_* gauges, fed by the real
 * sidecar generator through the push stage, counted as istiod counts them
 * (distinct keys of the current configuration): two TCP services without
 * a VIP on one port meet on "0.0.0.0_PORT" (tcp_over_current_tcp, keyed
 * by the listener name, so two sidecars seeing it count once); two
 * services giving one port of a workload HTTP and TCP (inbound, keyed by
 * the proxy).  Removing the cause brings each gauge back to 0.  Also
 * pilot_push_triggers counted per change.  No xDS server, no clock.
 */
#include "common/buf.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/push/push.h"
#include "controlplane/xds/ads.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RENDER_MAX (1u << 20)

static struct cfg_store *st;
static struct push_stage *ps;

/* The value of the sample named exactly series in /metrics; NAN when absent. */
static double gauge(const char *series)
{
	struct mesh_buf b;
	char *t, *p;
	size_t n = strlen(series);
	double v = NAN;

	mesh_buf_init(&b, TEST_RENDER_MAX);
	ck_assert_int_eq(metrics_render(&b), 0);
	t = mesh_buf_take(&b, NULL);
	for (p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	}
	free(t);
	return v;
}

static void apply(const char *origin, const char *yaml)
{
	struct cfg_parse_result res;

	memset(&res, 0, sizeof(res));
	ck_assert_int_ge(cfg_parse_buffer(origin, yaml, strlen(yaml), &res), 0);
	ck_assert_uint_eq(res.n_errors, 0);
	ck_assert_int_ge(cfg_store_apply_origin(st, origin, &res), 0);
	cfg_parse_result_cleanup(&res);
}

/* A sidecar of namespace shop with label app=APP asks for its whole config. */
static void want_all(const char *app)
{
	struct xds_proxy_req *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->kind = XDS_PROXY_WANT_ALL;
	r->flavour = XDS_FLAVOUR_SIDECAR;
	r->key = strdup(app);
	r->ns = strdup("shop");
	r->labels = calloc(1, sizeof(*r->labels));
	ck_assert_ptr_nonnull(r->labels);
	r->labels->v = calloc(1, sizeof(*r->labels->v));
	ck_assert_ptr_nonnull(r->labels->v);
	r->labels->v[0].key = strdup("app");
	r->labels->v[0].value = strdup(app);
	r->labels->n = 1;
	r->seq = 1;
	push_stage_want(ps, r);
}

/* Two TCP databases without addresses (no VIP) on 3306. */
static const char *const two_dbs =
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
	"metadata: {name: db1, namespace: shop}\n"
	"spec: {hosts: [db1.example.com], location: MESH_EXTERNAL, resolution: DNS,"
	" ports: [{number: 3306, name: tcp, protocol: TCP}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
	"metadata: {name: db2, namespace: shop}\n"
	"spec: {hosts: [db2.example.com], location: MESH_EXTERNAL, resolution: DNS,"
	" ports: [{number: 3306, name: tcp, protocol: TCP}]}\n";

/* Two services selecting workload app=web: port 9000 is HTTP in one, TCP
 * in the other. */
static const char *const two_protocols =
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
	"metadata: {name: web-http, namespace: shop}\n"
	"spec: {hosts: [web-http.shop.svc.cluster.local], addresses: [10.0.0.1], location: MESH_INTERNAL,"
	" resolution: STATIC, ports: [{number: 9000, name: http, protocol: HTTP}],"
	" workloadSelector: {labels: {app: web}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
	"metadata: {name: web-tcp, namespace: shop}\n"
	"spec: {hosts: [web-tcp.shop.svc.cluster.local], addresses: [10.0.0.2], location: MESH_INTERNAL,"
	" resolution: STATIC, ports: [{number: 9000, name: tcp, protocol: TCP}],"
	" workloadSelector: {labels: {app: web}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
	"metadata: {name: web-1, namespace: shop}\n"
	"spec: {address: 10.1.0.1, labels: {app: web}}\n";

static void setup(void)
{
	struct push_stage_config pc = { 0 };

	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	apply("base.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			   "metadata: {name: a, namespace: shop}\n"
			   "spec: {hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}]}\n");
	pc.store = st;
	pc.domain = "cluster.local";
	pc.root_namespace = "istio-system";
	pc.trust_domain = "cluster.local";
	ck_assert_int_eq(push_stage_new(&pc, &ps), 0);
	ck_assert_int_eq(push_stage_push(ps), 0);
	want_all("web");
	want_all("client");
	ck_assert_int_eq(push_stage_handle(ps), 2);
}

static void teardown(void)
{
	push_stage_free(ps);
	cfg_store_free(st);
}

START_TEST(no_conflict_is_zero)
{
	ck_assert_double_eq(gauge("pilot_conflict_inbound_listener"), 0);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_tcp_over_current_tcp"), 0);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_tcp_over_current_http"), 0);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_http_over_current_tcp"), 0);
}
END_TEST

/* Both sidecars see 0.0.0.0_3306's conflict: one listener name, counted once. */
START_TEST(tcp_over_tcp_counted_by_listener)
{
	apply("dbs.yaml", two_dbs);
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_tcp_over_current_tcp"), 1);
	ck_assert_double_eq(gauge("pilot_conflict_inbound_listener"), 0);

	ck_assert_int_ge(cfg_store_remove_origin(st, "dbs.yaml"), 1);
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_tcp_over_current_tcp"), 0);
}
END_TEST

/* Only the web workload has the inbound conflict; one proxy key. */
START_TEST(inbound_counted_by_proxy)
{
	apply("web.yaml", two_protocols);
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_double_eq(gauge("pilot_conflict_inbound_listener"), 1);
	ck_assert_double_eq(gauge("pilot_conflict_outbound_listener_tcp_over_current_tcp"), 0);

	/* the same protocol twice is no conflict (istiod: skipped quietly) */
	apply("web.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			  "metadata: {name: web-http, namespace: shop}\n"
			  "spec: {hosts: [web-http.shop.svc.cluster.local], addresses: [10.0.0.1], "
			  "location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9000, name: http, protocol: HTTP}],"
			  " workloadSelector: {labels: {app: web}}}\n"
			  "---\n"
			  "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			  "metadata: {name: web-http2, namespace: shop}\n"
			  "spec: {hosts: [web-http2.shop.svc.cluster.local], addresses: [10.0.0.2], "
			  "location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9000, name: http, protocol: HTTP}],"
			  " workloadSelector: {labels: {app: web}}}\n"
			  "---\n"
			  "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
			  "metadata: {name: web-1, namespace: shop}\n"
			  "spec: {address: 10.1.0.1, labels: {app: web}}\n");
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_double_eq(gauge("pilot_conflict_inbound_listener"), 0);
}
END_TEST

/* Each change asking for a push counts as istiod's "config" trigger. */
START_TEST(push_triggers_counted)
{
	double before = gauge("pilot_push_triggers{type=\"config\"}");

	if (isnan(before))
		before = 0;
	push_stage_changed(ps, PUSH_CHANGE_STORE, 1);
	push_stage_changed(ps, PUSH_CHANGE_FILES, 2);
	ck_assert_double_eq(gauge("pilot_push_triggers{type=\"config\"}"), before + 2);
}
END_TEST

static Suite *push_conflicts_suite(void)
{
	Suite *s = suite_create("push_conflicts");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, no_conflict_is_zero);
	tcase_add_test(tc, tcp_over_tcp_counted_by_listener);
	tcase_add_test(tc, inbound_counted_by_proxy);
	tcase_add_test(tc, push_triggers_counted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(push_conflicts_suite()) ? 1 : 0;
}
