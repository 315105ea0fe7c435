/*
 * test_gateway.c - Istio's gateway binding rules (model/gateway.h), each
 * test named after the rule it mirrors (push_context.go mergeGateways /
 * VirtualServicesForGateway / initVirtualServices, model/gateway.go
 * sanitizeServerHostNamespace, pkg/config/host NamesForNamespace and
 * Intersection, core/gateway.go pickMatchingGatewayHosts).  Each config
 * is one where breaking the rule changes the answer.
 */
#include "common/arena.h"
#include "controlplane/config/store.h"
#include "controlplane/model/gateway.h"
#include "controlplane/model/model.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

static struct cfg_kv ingress_kv[] = { { (char *)"istio", (char *)"ingressgateway" }, { (char *)"app", (char *)"gw" } };
static const struct cfg_labels ingress = { ingress_kv, 2 };
static struct cfg_kv egress_kv[] = { { (char *)"istio", (char *)"egressgateway" } };
static const struct cfg_labels egress = { egress_kv, 1 };

#define GW(name, ns, selector, servers)                                                    \
	"---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"                          \
	"metadata: {name: " name ", namespace: " ns "}\n"                                    \
	"spec:\n  selector: " selector "\n  servers:\n" servers
#define HTTP_ANY "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n"
#define VS(name, ns, ts, spec)                                                             \
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"                   \
	"metadata: {name: " name ", namespace: " ns ", creationTimestamp: '" ts "'}\n" \
	"spec:\n" spec

static const struct cfg_object *find(const struct model *m, enum cfg_kind k, const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < m->cfg->n_objects[k]; i++)
		if (!strcmp(m->cfg->objects[k][i]->ns, ns) && !strcmp(m->cfg->objects[k][i]->name, name))
			return m->cfg->objects[k][i];
	return NULL;
}

/* resolveGatewayName: "ns/name" as is, "name" in the VirtualService's
 * namespace, the legacy "name.ns.svc.cluster.local", "mesh" untouched. */
START_TEST(gateway_ref_resolution)
{
	char b[MODEL_GATEWAY_NAME_MAX];

	ck_assert_str_eq(model_gateway_ref("istio-system/ingress", "demo", b, sizeof(b)), "istio-system/ingress");
	ck_assert_str_eq(model_gateway_ref("ingress", "demo", b, sizeof(b)), "demo/ingress");
	ck_assert_str_eq(model_gateway_ref("ingress.istio-system.svc.cluster.local", "demo", b, sizeof(b)),
			 "istio-system/ingress");
	ck_assert_str_eq(model_gateway_ref("ingress.istio-system", "demo", b, sizeof(b)), "istio-system/ingress");
	ck_assert_str_eq(model_gateway_ref("./ingress", "demo", b, sizeof(b)), "demo/ingress");
	ck_assert_str_eq(model_gateway_ref("mesh", "demo", b, sizeof(b)), "mesh");
	{
		char *v[] = { (char *)"mesh", (char *)"ingress" };
		struct cfg_strs gws = { v, 2 };
		struct cfg_strs none = { NULL, 0 };

		ck_assert(model_gateways_include(&gws, "istio-system", "istio-system/ingress"));
		ck_assert(!model_gateways_include(&gws, "demo", "istio-system/ingress"));
		/* an empty list means mesh only, never a Gateway */
		ck_assert(!model_gateways_include(&none, "demo", "demo/ingress"));
		ck_assert(model_gateways_include(&none, "demo", "mesh"));
		ck_assert(model_gateways_include(&gws, "demo", "mesh"));
	}
}
END_TEST

/* mergeGateways: a Gateway of any namespace selects a router whose labels
 * hold its selector; an empty selector selects every router. */
START_TEST(gateway_selection_by_labels_any_namespace)
{
	struct model *m = testutil_model("t.yaml",
		GW("in", "istio-system", "{istio: ingressgateway}", HTTP_ANY)
		GW("in-other-ns", "shop", "{app: gw}", HTTP_ANY)
		GW("eg", "istio-system", "{istio: egressgateway}", HTTP_ANY)
		GW("too-narrow", "istio-system", "{istio: ingressgateway, zone: a}", HTTP_ANY)
		GW("all", "default", "{}", HTTP_ANY));
	const struct cfg_object *out[8];
	size_t n;

	ck_assert_ptr_nonnull(m);
	n = model_gateways_for_proxy(m, "istio-system", &ingress, out, 8);
	ck_assert_uint_eq(n, 3);
	/* the snapshot's order: (namespace, name) */
	ck_assert_str_eq(out[0]->name, "all");
	ck_assert_str_eq(out[1]->name, "in");
	ck_assert_str_eq(out[2]->name, "in-other-ns");
	n = model_gateways_for_proxy(m, "istio-system", &egress, out, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(out[0]->name, "all");
	ck_assert_str_eq(out[1]->name, "eg");
	/* the count past cap */
	ck_assert_uint_eq(model_gateways_for_proxy(m, "x", &ingress, out, 1), 3);
	ck_assert_uint_eq(model_gateways_for_proxy(m, "x", NULL, out, 8), 1);
	model_unref(m);
}
END_TEST

/* VirtualServicesForGateway: only VirtualServices naming the Gateway
 * (mesh is implicit only without gateways, and never binds a Gateway),
 * visible to the router's namespace, private before exported before
 * public, oldest first within each. */
START_TEST(gateway_vs_binding_and_export)
{
	struct model *m = testutil_model("t.yaml",
		GW("in", "istio-system", "{istio: ingressgateway}", HTTP_ANY)
		VS("public-new", "demo", "2024-01-01T00:00:00Z",
		   "  hosts: [a.example.com]\n  gateways: [istio-system/in]\n  http: [{route: [{destination: {host: a}}]}]\n")
		VS("public-old", "demo", "2020-01-01T00:00:00Z",
		   "  hosts: [b.example.com]\n  gateways: [in.istio-system.svc.cluster.local, mesh]\n"
		   "  http: [{route: [{destination: {host: b}}]}]\n")
		VS("private", "istio-system", "2025-01-01T00:00:00Z",
		   "  hosts: [c.example.com]\n  gateways: [in]\n  exportTo: ['.']\n"
		   "  http: [{route: [{destination: {host: c}}]}]\n")
		VS("exported", "demo", "2025-01-01T00:00:00Z",
		   "  hosts: [d.example.com]\n  gateways: [istio-system/in]\n  exportTo: [istio-system]\n"
		   "  http: [{route: [{destination: {host: d}}]}]\n")
		VS("hidden", "demo", "2019-01-01T00:00:00Z",
		   "  hosts: [e.example.com]\n  gateways: [istio-system/in]\n  exportTo: ['.']\n"
		   "  http: [{route: [{destination: {host: e}}]}]\n")
		VS("mesh-only", "demo", "2019-01-01T00:00:00Z",
		   "  hosts: [f.example.com]\n  http: [{route: [{destination: {host: f}}]}]\n")
		VS("wrong-ns", "demo", "2019-01-01T00:00:00Z",
		   "  hosts: [g.example.com]\n  gateways: [in]\n  http: [{route: [{destination: {host: g}}]}]\n"));
	const struct cfg_object *out[8];
	size_t n;

	ck_assert_ptr_nonnull(m);
	n = model_gateway_virtual_services(m, "istio-system/in", "istio-system", out, 8);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(out[0]->name, "private");
	ck_assert_str_eq(out[1]->name, "exported");
	ck_assert_str_eq(out[2]->name, "public-old");
	ck_assert_str_eq(out[3]->name, "public-new");
	/* a router of namespace demo: "private" is not exported there, "hidden" is */
	n = model_gateway_virtual_services(m, "istio-system/in", "demo", out, 8);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out[0]->name, "hidden");
	ck_assert_str_eq(out[1]->name, "public-old");
	ck_assert_str_eq(out[2]->name, "public-new");
	/* "in" written in namespace demo means demo/in */
	n = model_gateway_virtual_services(m, "demo/in", "demo", out, 8);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0]->name, "wrong-ns");
	ck_assert_uint_eq(model_gateway_virtual_services(m, "mesh", "demo", out, 8), 2);
	model_unref(m);
}
END_TEST

/* sanitizeServerHostNamespace + NamesForNamespace: "ns/host" binds
 * VirtualServices of ns only, "./host" the Gateway's namespace, "*\/host"
 * and "host" any namespace. */
START_TEST(gateway_server_host_namespaces)
{
	ck_assert_str_eq(model_server_host_for("demo/a.com", "istio-system", "demo"), "a.com");
	ck_assert_ptr_null(model_server_host_for("demo/a.com", "istio-system", "shop"));
	ck_assert_str_eq(model_server_host_for("./a.com", "istio-system", "istio-system"), "a.com");
	ck_assert_ptr_null(model_server_host_for("./a.com", "istio-system", "demo"));
	ck_assert_str_eq(model_server_host_for("*/a.com", "istio-system", "demo"), "a.com");
	ck_assert_str_eq(model_server_host_for("a.com", "istio-system", "demo"), "a.com");
	/* "demox" is not "demo" */
	ck_assert_ptr_null(model_server_host_for("demo/a.com", "istio-system", "demox"));
}
END_TEST

/* host.Names.Intersection: for each pair the narrower host when one
 * covers the other, each once; short VirtualService hosts resolved in
 * its namespace; server hosts the namespace may not use are skipped. */
START_TEST(gateway_host_intersection)
{
	struct model *m = testutil_model("t.yaml",
		VS("v", "demo", "2020-01-01T00:00:00Z",
		   "  hosts: ['*.example.com', reviews, other.org]\n  gateways: [istio-system/in]\n"
		   "  http: [{route: [{destination: {host: a}}]}]\n"));
	const struct cfg_object *vs;
	struct arena *a = arena_new(1 << 16);
	char *h1[] = { (char *)"demo/a.example.com", (char *)"*.example.com", (char *)"shop/c.example.com",
		       (char *)"*/reviews.demo.svc.cluster.local", (char *)"A.example.com", (char *)"b.example.com" };
	char *h2[] = { (char *)"*" };
	char *h3[] = { (char *)"shop/*" };
	struct cfg_strs s1 = { h1, 6 }, s2 = { h2, 1 }, s3 = { h3, 1 };
	const char *out[16];
	size_t n;

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(a);
	vs = find(m, CFG_VIRTUAL_SERVICE, "demo", "v");
	ck_assert_ptr_nonnull(vs);
	n = model_gateway_hosts(m, &s1, "istio-system", vs, a, out, 16);
	/* in server-host order: a.example.com (narrower than the
	 * VirtualService's *.example.com), *.example.com (both), shop/
	 * skipped, reviews resolved in demo, A.example.com the same as
	 * a.example.com, b.example.com */
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(out[0], "a.example.com");
	ck_assert_str_eq(out[1], "*.example.com");
	ck_assert_str_eq(out[2], "reviews.demo.svc.cluster.local");
	ck_assert_str_eq(out[3], "b.example.com");
	/* "*": every VirtualService host, the short one resolved */
	n = model_gateway_hosts(m, &s2, "istio-system", vs, a, out, 16);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out[0], "*.example.com");
	ck_assert_str_eq(out[1], "reviews.demo.svc.cluster.local");
	ck_assert_str_eq(out[2], "other.org");
	ck_assert(model_gateway_hosts_match(m, &s2, "istio-system", vs));
	/* another namespace's server hosts: nothing */
	ck_assert_uint_eq(model_gateway_hosts(m, &s3, "istio-system", vs, a, out, 16), 0);
	ck_assert(!model_gateway_hosts_match(m, &s3, "istio-system", vs));
	arena_free(a);
	model_unref(m);
}
END_TEST

/* mergeVirtualServices: a root bound to a Gateway comes with its
 * delegate's routes merged in, as for the mesh; the delegate itself
 * (no hosts) never binds. */
START_TEST(gateway_vs_delegates_merged)
{
	struct model *m = testutil_model("t.yaml",
		VS("root", "front", "2020-01-01T00:00:00Z",
		   "  hosts: [shop.example.com]\n  gateways: [istio-system/in]\n"
		   "  http:\n  - name: api\n    match: [{uri: {prefix: /api}}]\n"
		   "    delegate: {name: api-routes, namespace: team}\n"
		   "  - name: rest\n    route: [{destination: {host: shop}}]\n")
		VS("api-routes", "team", "2020-01-01T00:00:00Z",
		   "  exportTo: [front]\n"
		   "  http:\n  - name: v2\n    match: [{uri: {prefix: /api/v2}}]\n"
		   "    route: [{destination: {host: api}}]\n"));
	const struct cfg_object *out[4];
	size_t n;

	ck_assert_ptr_nonnull(m);
	n = model_gateway_virtual_services(m, "istio-system/in", "istio-system", out, 4);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0]->name, "root");
	/* the delegate's route in place of the delegating one, then "rest" */
	ck_assert_uint_eq(out[0]->spec.vs.n_http, 2);
	ck_assert_str_eq(out[0]->spec.vs.http[0].name, "api-v2"); /* root-delegate names */
	ck_assert_ptr_null(out[0]->spec.vs.http[0].delegate);
	ck_assert_str_eq(out[0]->spec.vs.http[1].name, "rest");
	model_unref(m);
}
END_TEST

static Suite *gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, gateway_ref_resolution);
	tcase_add_test(tc, gateway_selection_by_labels_any_namespace);
	tcase_add_test(tc, gateway_vs_binding_and_export);
	tcase_add_test(tc, gateway_server_host_namespaces);
	tcase_add_test(tc, gateway_host_intersection);
	tcase_add_test(tc, gateway_vs_delegates_merged);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(gateway_suite()) ? 1 : 0;
}
