/*
 * test_sidecar_select.c - which `Sidecar` scopes a workload
 * (model_sidecar_select) and what its egress hosts import
 * (model_sidecar_imports), each test named after the Istio rule it
 * mirrors (pilot/pkg/model/push_context.go getSidecarScope,
 * pilot/pkg/model/sidecar.go selectServices / matchingService).  Each
 * config is one where breaking the rule changes the answer.
 */
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/model/policy.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

static struct cfg_kv app_a_kv[] = { { (char *)"app", (char *)"a" }, { (char *)"version", (char *)"v1" } };
static const struct cfg_labels app_a = { app_a_kv, 2 };
static struct cfg_kv app_b_kv[] = { { (char *)"app", (char *)"b" } };
static const struct cfg_labels app_b = { app_b_kv, 1 };

#define SC(name, ns, ts, spec)                                                             \
	"---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"                        \
	"metadata: {name: " name ", namespace: " ns ", creationTimestamp: '" ts "'}\n" \
	"spec:\n" spec

static const char *name_of(const struct cfg_object *o)
{
	return o ? o->name : "(none)";
}

/* getSidecarScope: a Sidecar whose workloadSelector matches the workload
 * beats the namespace's Sidecar without a selector, which applies to the
 * others of the namespace. */
START_TEST(select_selector_beats_namespace_default)
{
	struct model *m = testutil_model("t.yaml",
		SC("ns-default", "shop", "2020-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("for-a", "shop", "2021-01-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n  egress: [{hosts: ['*/*']}]\n"));
	size_t n = 0;

	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", &app_a, &n)), "for-a");
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", &app_b, &n)), "ns-default");
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", NULL, NULL)), "ns-default");
	/* another namespace: neither */
	ck_assert_ptr_null(model_sidecar_select(m, "other", &app_a, &n));
	ck_assert_uint_eq(n, 0);
	model_unref(m);
}
END_TEST

/* sortConfigByCreationTime: several matching selectors, the oldest wins
 * (then by name), and the caller is told there were several. */
START_TEST(select_oldest_then_name)
{
	struct model *m = testutil_model("t.yaml",
		SC("aaa-new", "shop", "2022-05-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n  egress: [{hosts: ['./*']}]\n")
		SC("zzz-old", "shop", "2019-05-01T00:00:00Z",
		   "  workloadSelector: {labels: {version: v1}}\n  egress: [{hosts: ['./*']}]\n")
		SC("yyy-old", "shop", "2019-05-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n  egress: [{hosts: ['./*']}]\n")
		SC("d2", "shop", "2018-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("d1", "shop", "2018-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n"));
	size_t n = 0;

	ck_assert_ptr_nonnull(m);
	/* not the first by name ("aaa-new"): the oldest; of the two oldest, by name */
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", &app_a, &n)), "yyy-old");
	ck_assert_uint_eq(n, 3);
	/* the namespace default level: same rule, d1 before d2 */
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", &app_b, &n)), "d1");
	ck_assert_uint_eq(n, 2);
	model_unref(m);
}
END_TEST

/* DefaultSidecarScopeForNamespace / the root namespace's Sidecar: a
 * namespace without its own takes the root namespace's Sidecar without a
 * selector; a root Sidecar with a selector selects only root workloads. */
START_TEST(select_root_namespace_fallback)
{
	struct model *m = testutil_model("t.yaml",
		SC("mesh", "istio-system", "2020-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("root-sel", "istio-system", "2010-01-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n  egress: [{hosts: ['./*']}]\n")
		SC("own", "shop", "2025-01-01T00:00:00Z", "  egress: [{hosts: ['*/*']}]\n"));

	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(name_of(model_sidecar_select(m, "web", &app_a, NULL)), "mesh");
	ck_assert_str_eq(name_of(model_sidecar_select(m, "", NULL, NULL)), "mesh"); /* "" is "default" */
	/* a namespace's own Sidecar beats the root's, however old the root's */
	ck_assert_str_eq(name_of(model_sidecar_select(m, "shop", &app_a, NULL)), "own");
	/* in the root namespace, the selector applies as in any namespace */
	ck_assert_str_eq(name_of(model_sidecar_select(m, "istio-system", &app_a, NULL)), "root-sel");
	ck_assert_str_eq(name_of(model_sidecar_select(m, "istio-system", &app_b, NULL)), "mesh");
	model_unref(m);
}
END_TEST

/* No Sidecar anywhere: none applies (every service, mesh default policy). */
START_TEST(select_none)
{
	struct model *m = testutil_model("t.yaml",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
		"metadata: {name: r, namespace: shop}\nspec: {host: r}\n");
	size_t n = 7;

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_null(model_sidecar_select(m, "shop", &app_a, &n));
	ck_assert_uint_eq(n, 0);
	model_unref(m);
}
END_TEST

/* The decoded fields the generator acts on. */
START_TEST(decode_fields)
{
	struct model *m = testutil_model("t.yaml",
		SC("s", "shop", "2020-01-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n"
		   "  ingress:\n"
		   "  - port: {number: 9080, protocol: http, name: web}\n"
		   "    bind: 127.0.0.2\n"
		   "    defaultEndpoint: 127.0.0.1:8080\n"
		   "    captureMode: NONE\n"
		   "  egress:\n"
		   "  - port: {number: 3306, protocol: TCP, name: db}\n"
		   "    bind: 127.0.0.3\n"
		   "    hosts: ['db/mysql.db.svc.cluster.local']\n"
		   "  - hosts: ['./*', 'istio-system/*']\n"
		   "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"));
	const struct cfg_object *o = model_sidecar_select(m, "shop", &app_a, NULL);
	const struct cfg_sidecar *sc;

	ck_assert_ptr_nonnull(o);
	sc = &o->spec.sc;
	ck_assert(sc->has_workload_selector);
	ck_assert_uint_eq(sc->n_ingress, 1);
	ck_assert_int_eq(sc->ingress[0].port, 9080);
	ck_assert_str_eq(sc->ingress[0].protocol, "HTTP");
	ck_assert_str_eq(sc->ingress[0].port_name, "web");
	ck_assert_str_eq(sc->ingress[0].bind, "127.0.0.2");
	ck_assert_str_eq(sc->ingress[0].default_endpoint, "127.0.0.1:8080");
	ck_assert_int_eq(sc->ingress[0].capture_mode, CFG_CAPTURE_NONE);
	ck_assert_uint_eq(sc->n_egress, 2);
	ck_assert_int_eq(sc->egress[0].port, 3306);
	ck_assert_str_eq(sc->egress[0].bind, "127.0.0.3");
	ck_assert_int_eq(sc->egress[1].port, -1);
	ck_assert_int_eq(sc->egress[1].capture_mode, CFG_CAPTURE_DEFAULT);
	ck_assert_uint_eq(sc->egress_hosts.n, 3);
	ck_assert_str_eq(sc->egress_hosts.v[2], "istio-system/*");
	ck_assert_int_eq(sc->outbound, CFG_OUTBOUND_REGISTRY_ONLY);
	model_unref(m);
}
END_TEST

/* Istio's proto default: outboundTrafficPolicy without a mode is
 * REGISTRY_ONLY (enum value 0); absent, the mesh default applies. */
START_TEST(decode_outbound_default)
{
	struct model *m = testutil_model("t.yaml",
		SC("a", "shop", "2020-01-01T00:00:00Z", "  outboundTrafficPolicy: {}\n")
		SC("b", "web", "2020-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("c", "api", "2020-01-01T00:00:00Z", "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n"));

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(model_sidecar_select(m, "shop", NULL, NULL)->spec.sc.outbound, CFG_OUTBOUND_REGISTRY_ONLY);
	ck_assert_int_eq(model_sidecar_select(m, "web", NULL, NULL)->spec.sc.outbound, CFG_OUTBOUND_UNSET);
	ck_assert_int_eq(model_sidecar_select(m, "api", NULL, NULL)->spec.sc.outbound, CFG_OUTBOUND_ALLOW_ANY);
	model_unref(m);
}
END_TEST

/* selectServices / matchingService: namespace part "*", ".", "~" or a
 * name; host part covering the service host (SubsetOf). */
START_TEST(imports_namespace_and_host)
{
	const char *h = "reviews.shop.svc.cluster.local";

	/* "." is the workload's namespace, not the Sidecar's */
	ck_assert(model_sidecar_imports("./*", "shop", h, "shop"));
	ck_assert(!model_sidecar_imports("./*", "shop", h, "web"));
	ck_assert(model_sidecar_imports("*/*", "shop", h, "web"));
	ck_assert(model_sidecar_imports("shop/*", "shop", h, "web"));
	ck_assert(!model_sidecar_imports("sho/*", "shop", h, "web"));
	ck_assert(!model_sidecar_imports("shopx/*", "shop", h, "web"));
	ck_assert(!model_sidecar_imports("~/*", "shop", h, "shop"));
	ck_assert(model_sidecar_imports("*/reviews.shop.svc.cluster.local", "shop", h, "web"));
	ck_assert(!model_sidecar_imports("*/ratings.shop.svc.cluster.local", "shop", h, "web"));
	ck_assert(model_sidecar_imports("*/*.svc.cluster.local", "shop", h, "web"));
	ck_assert(model_sidecar_imports("shop/*.shop.svc.cluster.local", "shop", h, "web"));
	ck_assert(!model_sidecar_imports("*/*.web.svc.cluster.local", "shop", h, "web"));
	/* a wildcard service host (ServiceEntry) inside the pattern, not the reverse */
	ck_assert(model_sidecar_imports("*/*.example.com", "ext", "*.api.example.com", "web"));
	ck_assert(!model_sidecar_imports("*/api.example.com", "ext", "*.example.com", "web"));
	/* malformed: no namespace part */
	ck_assert(!model_sidecar_imports("*", "shop", h, "shop"));
}
END_TEST

/* Istio's analyzer MultipleSidecarsWithoutSelectors: of two Sidecars
 * without a selector in one namespace, the one not applied gets a warning
 * in the store's findings (what /debug/configz and meshctl validate list);
 * a lone one per namespace, or one with a selector, gets none. */
START_TEST(store_warns_several_without_selector)
{
	const char *yaml =
		SC("newer", "shop", "2022-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("older", "shop", "2020-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n")
		SC("sel", "shop", "2019-01-01T00:00:00Z",
		   "  workloadSelector: {labels: {app: a}}\n  egress: [{hosts: ['./*']}]\n")
		SC("alone", "web", "2022-01-01T00:00:00Z", "  egress: [{hosts: ['./*']}]\n");
	struct cfg_parse_result res;
	struct cfg_store *st = cfg_store_new();
	struct cfg_snapshot *snap;
	size_t i, n = 0;

	ck_assert_ptr_nonnull(st);
	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("t.yaml", yaml, strlen(yaml), &res), 0);
	ck_assert_int_ge(cfg_store_apply_origin(st, "t.yaml", &res), 0);
	cfg_parse_result_cleanup(&res);
	snap = cfg_store_snapshot(st);
	ck_assert_ptr_nonnull(snap);
	ck_assert_uint_eq(snap->n_objects[CFG_SIDECAR], 4);
	for (i = 0; i < snap->n_errors; i++) {
		const struct cfg_error *e = &snap->errors[i];

		if (e->kind != CFG_SIDECAR)
			continue;
		n++;
		ck_assert(e->warning);
		ck_assert_str_eq(e->name, "newer");
		ck_assert_ptr_nonnull(strstr(e->message, "only older"));
	}
	ck_assert_uint_eq(n, 1);
	cfg_snapshot_unref(snap);
	cfg_store_free(st);
}
END_TEST

static Suite *sidecar_select_suite(void)
{
	Suite *s = suite_create("sidecar_select");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, select_selector_beats_namespace_default);
	tcase_add_test(tc, select_oldest_then_name);
	tcase_add_test(tc, select_root_namespace_fallback);
	tcase_add_test(tc, select_none);
	tcase_add_test(tc, decode_fields);
	tcase_add_test(tc, decode_outbound_default);
	tcase_add_test(tc, imports_namespace_and_host);
	tcase_add_test(tc, store_warns_several_without_selector);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(sidecar_select_suite()) ? 1 : 0;
}
