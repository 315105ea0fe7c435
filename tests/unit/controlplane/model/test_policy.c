/*
 * test_policy.c - the policy rules every generator reads (model/policy.h):
 * DestinationRule level merging, PeerAuthentication inheritance,
 * AuthorizationPolicy selection, the "mesh" gateway rule, and which
 * VirtualServices apply to a host in what order.  Each test checks one
 * rule on a config where breaking the rule changes the answer.
 */
#include "controlplane/model/model.h"
#include "controlplane/model/policy.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

static struct model *build(const char *yaml)
{
	return testutil_model("t.yaml", yaml);
}

/* ---------------------------------------------------------------- DestinationRule */

static const char *const dr_yaml =
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec:\n"
	"  host: reviews\n"
	"  trafficPolicy:\n"
	"    loadBalancer: {simple: ROUND_ROBIN}\n"
	"    connectionPool: {tcp: {maxConnections: 10}}\n"
	"    portLevelSettings:\n"
	"    - {port: {number: 9080}, loadBalancer: {simple: RANDOM}}\n"
	"  subsets:\n"
	"  - name: v1\n"
	"    labels: {version: v1}\n"
	"    trafficPolicy:\n"
	"      outlierDetection: {consecutive5xxErrors: 3}\n"
	"      portLevelSettings:\n"
	"      - {port: {number: 9090}, connectionPool: {tcp: {maxConnections: 99}}}\n"
	"  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}\n";

static const struct cfg_object *the_dr(const struct model *m)
{
	const struct cfg_object *dr = model_destination_rule(m, "reviews.shop.svc.cluster.local", "shop");

	ck_assert_ptr_nonnull(dr);
	return dr;
}

/* The top level applies to every port and subset without its own entry. */
START_TEST(dr_top_level)
{
	struct model *m = build(dr_yaml);
	struct cfg_traffic_policy p;

	model_dr_policy(the_dr(m), NULL, 7000, &p);
	ck_assert(p.load_balancer.set);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_ROUND_ROBIN);
	ck_assert(p.connection_pool.set);
	ck_assert_int_eq(p.connection_pool.max_connections, 10);
	ck_assert(!p.outlier_detection.set);
	model_unref(m);
}
END_TEST

/* A port-level entry replaces every group of the level above, set or not. */
START_TEST(dr_port_level_replaces)
{
	struct model *m = build(dr_yaml);
	struct cfg_traffic_policy p;

	model_dr_policy(the_dr(m), NULL, 9080, &p);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_RANDOM);
	/* not inherited from the top level */
	ck_assert(!p.connection_pool.set);
	model_unref(m);
}
END_TEST

/* A subset's groups apply over the top level (and its port level); its
 * own port-level entry applies last. */
START_TEST(dr_subset_levels)
{
	struct model *m = build(dr_yaml);
	struct cfg_traffic_policy p;

	model_dr_policy(the_dr(m), "v1", 7000, &p);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_ROUND_ROBIN);
	ck_assert_int_eq(p.connection_pool.max_connections, 10);
	ck_assert(p.outlier_detection.set);
	ck_assert_int_eq(p.outlier_detection.consecutive_5xx_errors, 3);

	model_dr_policy(the_dr(m), "v1", 9080, &p);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_RANDOM);
	ck_assert(!p.connection_pool.set);
	ck_assert(p.outlier_detection.set);

	model_dr_policy(the_dr(m), "v1", 9090, &p);
	ck_assert(p.connection_pool.set);
	ck_assert_int_eq(p.connection_pool.max_connections, 99);
	ck_assert(!p.load_balancer.set);
	ck_assert(!p.outlier_detection.set);

	model_dr_policy(the_dr(m), "v2", 7000, &p);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_LEAST_REQUEST);
	ck_assert_int_eq(p.connection_pool.max_connections, 10);
	model_unref(m);
}
END_TEST

START_TEST(dr_none)
{
	struct model *m = build(dr_yaml);
	struct cfg_traffic_policy p;

	memset(&p, 0xff, sizeof(p));
	model_dr_policy(NULL, "v1", 9080, &p);
	ck_assert(!p.load_balancer.set && !p.connection_pool.set && !p.outlier_detection.set && !p.tls.set);
	/* an unknown subset is only the top level */
	model_dr_policy(the_dr(m), "v9", 7000, &p);
	ck_assert_int_eq(p.load_balancer.simple, CFG_LB_ROUND_ROBIN);
	ck_assert(!p.outlier_detection.set);
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- PeerAuthentication */

#define PA(ns, name, body) \
	"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " name \
	", namespace: " ns "}\nspec: " body "\n"

static struct cfg_kv kv_db[] = { { "app", "db" } };
static struct cfg_kv kv_web[] = { { "app", "web" } };
static const struct cfg_labels l_db = { kv_db, 1 }, l_web = { kv_web, 1 };

START_TEST(pa_default_permissive)
{
	struct model *m = build(PA("shop", "unset", "{}"));

	ck_assert_int_eq(model_peer_authn(m, "shop", NULL, 80), CFG_MTLS_PERMISSIVE);
	ck_assert_int_eq(model_peer_authn(m, NULL, NULL, 80), CFG_MTLS_PERMISSIVE);
	model_unref(m);
}
END_TEST

/* mesh-wide < namespace-wide < workload selector < its port level */
START_TEST(pa_inheritance)
{
	struct model *m = build(PA("istio-system", "mesh", "{mtls: {mode: STRICT}}")
				PA("shop", "ns", "{mtls: {mode: PERMISSIVE}}")
				PA("shop", "db", "{selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE},"
						 " portLevelMtls: {5432: {mode: STRICT}}}"));

	ck_assert_int_eq(model_peer_authn(m, "other", NULL, 80), CFG_MTLS_STRICT);
	ck_assert_int_eq(model_peer_authn(m, "shop", &l_web, 80), CFG_MTLS_PERMISSIVE);
	ck_assert_int_eq(model_peer_authn(m, "shop", &l_db, 80), CFG_MTLS_DISABLE);
	ck_assert_int_eq(model_peer_authn(m, "shop", &l_db, 5432), CFG_MTLS_STRICT);
	/* the selector is namespaced: app=db elsewhere is not selected */
	ck_assert_int_eq(model_peer_authn(m, "other", &l_db, 80), CFG_MTLS_STRICT);
	model_unref(m);
}
END_TEST

/* UNSET inherits from the level above. */
START_TEST(pa_unset_inherits)
{
	struct model *m = build(PA("istio-system", "mesh", "{mtls: {mode: STRICT}}")
				PA("shop", "ns", "{}")
				PA("shop", "db", "{selector: {matchLabels: {app: db}}, mtls: {mode: UNSET},"
						 " portLevelMtls: {5432: {mode: UNSET}}}"));

	ck_assert_int_eq(model_peer_authn(m, "shop", &l_web, 80), CFG_MTLS_STRICT);
	ck_assert_int_eq(model_peer_authn(m, "shop", &l_db, 5432), CFG_MTLS_STRICT);
	model_unref(m);
}
END_TEST

/* A selector in the root namespace selects nothing; the first of a level
 * by (namespace, name) wins. */
START_TEST(pa_root_selector_and_order)
{
	struct model *m = build(PA("istio-system", "a-root-sel", "{selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}")
				PA("shop", "b", "{mtls: {mode: DISABLE}}")
				PA("shop", "a", "{mtls: {mode: STRICT}}"));

	ck_assert_int_eq(model_peer_authn(m, "other", &l_db, 80), CFG_MTLS_PERMISSIVE);
	ck_assert_int_eq(model_peer_authn(m, "istio-system", &l_db, 80), CFG_MTLS_PERMISSIVE);
	ck_assert_int_eq(model_peer_authn(m, "shop", NULL, 80), CFG_MTLS_STRICT);
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- AuthorizationPolicy */

#define AP(ns, name, body) \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " name \
	", namespace: " ns "}\nspec: " body "\n"

static const char *const ap_yaml =
	AP("shop", "b-all", "{action: DENY, rules: [{}]}")
	AP("shop", "a-db", "{selector: {matchLabels: {app: db}}, rules: [{}]}")
	AP("istio-system", "mesh-db", "{selector: {matchLabels: {app: db}}, action: DENY, rules: [{}]}")
	AP("istio-system", "mesh-all", "{action: AUDIT, rules: [{}]}")
	AP("other", "x", "{rules: [{}]}");

static size_t select_names(const struct model *m, const char *ns, const struct cfg_labels *l, char *buf, size_t cap)
{
	const struct cfg_object *v[8];
	size_t n = model_authz_select(m, ns, l, v, 8), i;

	buf[0] = '\0';
	for (i = 0; i < n && i < 8; i++) {
		strncat(buf, v[i]->name, cap - strlen(buf) - 1);
		strncat(buf, " ", cap - strlen(buf) - 1);
	}
	return n;
}

/* Root namespace first (selectors match in any namespace), then the
 * workload's namespace, by name; selectors must match. */
START_TEST(authz_select_order)
{
	struct model *m = build(ap_yaml);
	char names[256];

	ck_assert_uint_eq(select_names(m, "shop", &l_db, names, sizeof(names)), 4);
	ck_assert_str_eq(names, "mesh-all mesh-db a-db b-all ");
	ck_assert_uint_eq(select_names(m, "shop", &l_web, names, sizeof(names)), 2);
	ck_assert_str_eq(names, "mesh-all b-all ");
	ck_assert_uint_eq(select_names(m, "other", NULL, names, sizeof(names)), 2);
	ck_assert_str_eq(names, "mesh-all x ");
	model_unref(m);
}
END_TEST

/* A workload of the root namespace gets its policies once; the count is
 * the total even past cap. */
START_TEST(authz_select_root_and_cap)
{
	struct model *m = build(ap_yaml);
	const struct cfg_object *v[1];
	char names[256];

	ck_assert_uint_eq(select_names(m, "istio-system", &l_db, names, sizeof(names)), 2);
	ck_assert_str_eq(names, "mesh-all mesh-db ");
	ck_assert_uint_eq(model_authz_select(m, "shop", &l_db, v, 1), 4);
	ck_assert_str_eq(v[0]->name, "mesh-all");
	ck_assert_uint_eq(model_authz_select(m, "shop", &l_db, NULL, 0), 4);
	ck_assert_uint_eq(model_authz_select(m, NULL, &l_db, NULL, 0), 0);
	model_unref(m);
}
END_TEST

/* ---------------------------------------------------------------- VirtualService */

START_TEST(gateways_mesh)
{
	char *mesh[] = { "shop-gw", "mesh" }, *gw[] = { "shop-gw" };
	struct cfg_strs none = { NULL, 0 }, with_mesh = { mesh, 2 }, only_gw = { gw, 1 };

	ck_assert(model_gateways_include_mesh(&none));
	ck_assert(model_gateways_include_mesh(&with_mesh));
	ck_assert(!model_gateways_include_mesh(&only_gw));
}
END_TEST

#define VS(ns, name, body) \
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " name \
	", namespace: " ns "}\nspec: " body "\n"

/* One VirtualService per host (Istio does not merge them): an exact host
 * before wildcards, the oldest (then name, namespace) among equals,
 * gateway-only ones left out. */
START_TEST(virtual_service_precedence)
{
	struct model *m = build(VS("shop", "a-wild", "{hosts: ['*.shop.svc.cluster.local'], http: [{route: [{destination: {host: r}}]}]}")
				VS("shop", "b-exact", "{hosts: [reviews], http: [{route: [{destination: {host: r}}]}]}")
				VS("shop", "c-both", "{hosts: [reviews, '*.svc.cluster.local'], gateways: [mesh, gw],"
						     " http: [{route: [{destination: {host: r}}]}]}")
				VS("shop", "d-gw", "{hosts: [reviews], gateways: [gw], http: [{route: [{destination: {host: r}}]}]}"));
	const struct cfg_object *v = model_virtual_service(m, "reviews.shop.svc.cluster.local", NULL);

	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v->name, "b-exact");
	v = model_virtual_service(m, "other.shop.svc.cluster.local", NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v->name, "a-wild"); /* the most specific wildcard */
	model_unref(m);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, dr_top_level);
	tcase_add_test(tc, dr_port_level_replaces);
	tcase_add_test(tc, dr_subset_levels);
	tcase_add_test(tc, dr_none);
	tcase_add_test(tc, pa_default_permissive);
	tcase_add_test(tc, pa_inheritance);
	tcase_add_test(tc, pa_unset_inherits);
	tcase_add_test(tc, pa_root_selector_and_order);
	tcase_add_test(tc, authz_select_order);
	tcase_add_test(tc, authz_select_root_and_cap);
	tcase_add_test(tc, gateways_mesh);
	tcase_add_test(tc, virtual_service_precedence);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(policy_suite()) ? 1 : 0;
}
