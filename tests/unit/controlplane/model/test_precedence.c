/*
 * test_precedence.c - which object wins, and how objects merge, when
 * several speak about one host, as istiod decides it (model.h):
 * VirtualServices by creationTimestamp (no merging), delegates merged into
 * their root, DestinationRules merged (subsets of all, the first one's
 * traffic policy), workload-scoped DestinationRules, and exportTo on
 * VirtualService, DestinationRule, ServiceEntry and the Service
 * annotation.  Each test fails on a model that ignores the rule.
 */
#include "controlplane/model/model.h"
#include "controlplane/model/policy.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

#define HOST "reviews.shop.svc.cluster.local"

#define OBJ(kind, ns, name, meta, body) \
	"---\napiVersion: networking.istio.io/v1\nkind: " kind "\nmetadata: {name: " name ", namespace: " ns meta \
	"}\nspec: " body "\n"
#define ROUTE_TO(h) "http: [{route: [{destination: {host: " h "}}]}]"

static const char *const svc_yaml =
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\n"
	"spec: {ports: [{name: http, port: 9080}], selector: {app: reviews}}\n";

static struct model *build2(const char *a, const char *b)
{
	char buf[16384];

	snprintf(buf, sizeof(buf), "%s%s%s", svc_yaml, a, b);
	return testutil_model("t.yaml", buf);
}

/* The older VirtualService wins although its name sorts last. */
START_TEST(vs_oldest_wins)
{
	struct model *m = build2(OBJ("VirtualService", "shop", "zz-old", ", creationTimestamp: '2023-01-01T00:00:00Z'",
				     "{hosts: [reviews], " ROUTE_TO("a") "}"),
				 OBJ("VirtualService", "shop", "aa-new", ", creationTimestamp: '2024-06-01T10:00:00Z'",
				     "{hosts: [reviews], " ROUTE_TO("b") "}"));
	const struct cfg_object *vs = model_virtual_service(m, HOST, NULL);

	ck_assert_ptr_nonnull(vs);
	ck_assert_str_eq(vs->name, "zz-old");
	/* the winner's routes alone: nothing of the other is merged in */
	ck_assert_uint_eq(vs->spec.vs.n_http, 1);
	ck_assert_str_eq(vs->spec.vs.http[0].route[0].destination.host, "a");
	model_unref(m);
}
END_TEST

/* Equal creation times: by name, then namespace (Istio's
 * configCompareByCreationTime). */
START_TEST(vs_same_time_by_name)
{
	struct model *m = build2(OBJ("VirtualService", "shop", "b", ", creationTimestamp: '2024-01-01T00:00:00Z'",
				     "{hosts: [reviews], " ROUTE_TO("b") "}"),
				 OBJ("VirtualService", "web", "a", ", creationTimestamp: '2024-01-01T00:00:00Z'",
				     "{hosts: [reviews.shop.svc.cluster.local], " ROUTE_TO("a") "}"));
	const struct cfg_object *vs = model_virtual_service(m, HOST, NULL);

	ck_assert_str_eq(vs->name, "a");
	ck_assert_str_eq(vs->ns, "web");
	model_unref(m);
}
END_TEST

/* exportTo: a VirtualService private to its namespace wins for clients
 * there (Istio lists private ones first, then those exported by name,
 * then public ones) and is invisible elsewhere. */
START_TEST(vs_export_to)
{
	struct model *m = build2(OBJ("VirtualService", "shop", "public", ", creationTimestamp: '2020-01-01T00:00:00Z'",
				     "{hosts: [reviews], " ROUTE_TO("a") "}"),
				 OBJ("VirtualService", "web", "private", ", creationTimestamp: '2024-01-01T00:00:00Z'",
				     "{hosts: [reviews.shop.svc.cluster.local], exportTo: ['.'], " ROUTE_TO("b") "}")
				 OBJ("VirtualService", "shop", "hidden", ", creationTimestamp: '2000-01-01T00:00:00Z'",
				     "{hosts: [reviews], exportTo: [other], " ROUTE_TO("c") "}"));

	ck_assert_str_eq(model_virtual_service(m, HOST, "web")->name, "private");
	ck_assert_str_eq(model_virtual_service(m, HOST, "shop")->name, "public");
	ck_assert_str_eq(model_virtual_service(m, HOST, "other")->name, "hidden");
	ck_assert_str_eq(model_virtual_service(m, HOST, "else")->name, "public");
	/* the mesh-wide view: every one visible, the oldest wins */
	ck_assert_str_eq(model_virtual_service(m, HOST, NULL)->name, "hidden");
	model_unref(m);
}
END_TEST

/* A delegate's routes replace the delegating route, with the root's
 * match prefixed onto them; a conflicting delegate route is dropped. */
START_TEST(vs_delegate_merge)
{
	struct model *m = build2(
		OBJ("VirtualService", "shop", "root", "",
		    "{hosts: [reviews], http: [{match: [{uri: {prefix: /api}}], delegate: {name: leaf, namespace: team}, "
		    "timeout: 3s}, {route: [{destination: {host: reviews}}]}]}"),
		OBJ("VirtualService", "team", "leaf", "",
		    "{http: [{match: [{uri: {prefix: /api/v2}}], route: [{destination: {host: v2}}]}, "
		    "{match: [{uri: {prefix: /other}}], route: [{destination: {host: other}}]}, "
		    "{route: [{destination: {host: v1}}]}]}"));
	const struct cfg_object *vs = model_virtual_service(m, HOST, NULL);
	const struct cfg_http_route *r;

	ck_assert_ptr_nonnull(vs);
	ck_assert_str_eq(vs->name, "root");
	/* /api/v2, the catch-all (root's /api match) and the root's last route; /other conflicts */
	ck_assert_uint_eq(vs->spec.vs.n_http, 3);
	r = &vs->spec.vs.http[0];
	ck_assert_ptr_null(r->delegate);
	ck_assert_str_eq(r->match[0].uri.value, "/api/v2");
	ck_assert_str_eq(r->route[0].destination.host, "v2.team.svc.cluster.local");
	ck_assert_int_eq(r->timeout, 3000000000LL);  /* inherited from the root route */
	r = &vs->spec.vs.http[1];
	ck_assert_uint_eq(r->n_match, 1);
	ck_assert_str_eq(r->match[0].uri.value, "/api");
	ck_assert_str_eq(r->route[0].destination.host, "v1.team.svc.cluster.local");
	ck_assert_str_eq(vs->spec.vs.http[2].route[0].destination.host, "reviews");
	model_unref(m);
}
END_TEST

/* Two DestinationRules for one host: subsets of both, the first's
 * (oldest) traffic policy. */
START_TEST(dr_merge)
{
	struct model *m = build2(
		OBJ("DestinationRule", "shop", "b-old", ", creationTimestamp: '2023-01-01T00:00:00Z'",
		    "{host: reviews, trafficPolicy: {loadBalancer: {simple: RANDOM}}, subsets: [{name: v1, labels: {v: '1'}}]}"),
		OBJ("DestinationRule", "shop", "a-new", ", creationTimestamp: '2024-01-01T00:00:00Z'",
		    "{host: reviews, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}, "
		    "subsets: [{name: v2, labels: {v: '2'}}, {name: v1, labels: {v: x}}]}"));
	const struct cfg_object *dr = model_destination_rule(m, HOST, "shop");

	ck_assert_ptr_nonnull(dr);
	ck_assert_str_eq(dr->name, "b-old");
	ck_assert_uint_eq(dr->spec.dr.n_subsets, 2);
	ck_assert_ptr_nonnull(model_subset(dr, "v2"));
	/* a duplicate subset keeps the first rule's */
	ck_assert_str_eq(model_subset(dr, "v1")->labels.v[0].value, "1");
	ck_assert_int_eq(dr->spec.dr.traffic_policy.policy.load_balancer.simple, CFG_LB_RANDOM);
	/* the same rule from another namespace (the service's exports) */
	ck_assert_uint_eq(model_destination_rule(m, HOST, "web")->spec.dr.n_subsets, 2);
	model_unref(m);
}
END_TEST

/* Different exportTo: not merged (Istio's enhanced merge); a rule
 * exported only to its namespace is not seen from another. */
START_TEST(dr_export_to)
{
	struct model *m = build2(
		OBJ("DestinationRule", "shop", "a", ", creationTimestamp: '2023-01-01T00:00:00Z'",
		    "{host: reviews, exportTo: ['.'], subsets: [{name: v1, labels: {v: '1'}}]}"),
		OBJ("DestinationRule", "shop", "b", ", creationTimestamp: '2024-01-01T00:00:00Z'",
		    "{host: reviews, subsets: [{name: v2, labels: {v: '2'}}]}"));
	const struct cfg_object *dr = model_destination_rule(m, HOST, "shop");

	ck_assert_str_eq(dr->name, "a");
	ck_assert_ptr_null(model_subset(dr, "v2"));
	dr = model_destination_rule(m, HOST, "web");
	ck_assert_str_eq(dr->name, "b");
	ck_assert_ptr_null(model_subset(dr, "v1"));
	model_unref(m);
}
END_TEST

/* A workloadSelector rule applies to the workloads it selects, in its
 * namespace, before the plain rule. */
START_TEST(dr_workload_selector)
{
	struct model *m = build2(
		OBJ("DestinationRule", "web", "sel", "",
		    "{host: reviews.shop.svc.cluster.local, workloadSelector: {matchLabels: {app: fe}}, "
		    "trafficPolicy: {loadBalancer: {simple: RANDOM}}}"),
		OBJ("DestinationRule", "shop", "plain", "", "{host: reviews}"));
	char *kv_k = "app", *kv_v = "fe";
	struct cfg_kv kv = { kv_k, kv_v };
	struct cfg_labels fe = { &kv, 1 };

	ck_assert_str_eq(model_destination_rule_for(m, HOST, "web", &fe)->name, "sel");
	/* other workloads of web: no rule of web applies, so the service's */
	ck_assert_ptr_null(model_destination_rule_for(m, HOST, "web", NULL));
	ck_assert_str_eq(model_destination_rule_for(m, HOST, "other", &fe)->name, "plain");
	model_unref(m);
}
END_TEST

/* ServiceEntry exportTo and the Service annotation decide visibility. */
START_TEST(service_export_to)
{
	struct model *m = testutil_model(
		"t.yaml",
		"apiVersion: v1\nkind: Service\nmetadata: {name: hidden, namespace: shop, annotations: "
		"{networking.istio.io/exportTo: '., web'}}\nspec: {ports: [{name: http, port: 80}]}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: shop}\n"
		"spec: {hosts: [a.example.com], exportTo: ['.'], ports: [{number: 80, name: http, protocol: HTTP}], "
		"resolution: DNS}\n");
	const struct model_service *h = model_find_service(m, "hidden.shop.svc.cluster.local");
	const struct model_service *e = model_find_service(m, "a.example.com");

	ck_assert(model_service_visible(m, h, "shop"));
	ck_assert(model_service_visible(m, h, "web"));
	ck_assert(!model_service_visible(m, h, "other"));
	ck_assert(model_service_visible(m, e, "shop"));
	ck_assert(!model_service_visible(m, e, "web"));
	ck_assert(model_service_visible(m, e, NULL));
	model_unref(m);
}
END_TEST

static Suite *precedence_suite(void)
{
	Suite *s = suite_create("precedence");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, vs_oldest_wins);
	tcase_add_test(tc, vs_same_time_by_name);
	tcase_add_test(tc, vs_export_to);
	tcase_add_test(tc, vs_delegate_merge);
	tcase_add_test(tc, dr_merge);
	tcase_add_test(tc, dr_export_to);
	tcase_add_test(tc, dr_workload_selector);
	tcase_add_test(tc, service_export_to);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(precedence_suite()) ? 1 : 0;
}
