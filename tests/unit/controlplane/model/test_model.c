/*
 * test_model.c - the service model built from ServiceEntry/WorkloadEntry,
 * host resolution, VirtualService and DestinationRule lookup as Istio does it.
 */
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

static struct model *build(const char *yaml)
{
	return testutil_model("t.yaml", yaml);
}

static const char *const mesh =
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec:\n"
	"  hosts: [reviews.shop.svc.cluster.local, reviews.example.com]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9080, name: http, protocol: HTTP}\n"
	"  - {number: 9090, name: grpc, protocol: GRPC, targetPort: 19090}\n"
	"  workloadSelector: {labels: {app: reviews}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: WorkloadEntry\n"
	"metadata: {name: r1, namespace: shop}\n"
	"spec: {address: 10.0.0.1, ports: {http: 8080}, labels: {app: reviews, version: v1},"
	" locality: eu/eu-1/a, weight: 3, serviceAccount: reviews}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: WorkloadEntry\n"
	"metadata: {name: r2, namespace: other}\n"
	"spec: {address: 10.0.0.2, labels: {app: reviews}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: db, namespace: shop}\n"
	"spec:\n"
	"  hosts: [db.shop.svc.cluster.local]\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
	"  endpoints: [{address: 10.0.1.1}, {address: 10.0.1.2, weight: 5}]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: VirtualService\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: VirtualService\n"
	"metadata: {name: wild, namespace: shop}\n"
	"spec: {hosts: ['*.example.com'], http: [{route: [{destination: {host: reviews.example.com}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: VirtualService\n"
	"metadata: {name: gw-only, namespace: shop}\n"
	"spec: {hosts: [reviews], gateways: [shop-gateway], http: [{route: [{destination: {host: reviews}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews-root, namespace: istio-system}\n"
	"spec: {host: reviews.shop.svc.cluster.local}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews-client, namespace: web}\n"
	"spec: {host: reviews.shop.svc.cluster.local}\n";

START_TEST(services_from_entries)
{
	struct model *m = build(mesh);
	const struct model_service *s;

	ck_assert_uint_eq(m->n_services, 3);
	/* sorted by hostname */
	ck_assert_str_eq(m->services[0].hostname, "db.shop.svc.cluster.local");
	s = model_find_service(m, "reviews.shop.svc.cluster.local");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s->ns, "shop");
	ck_assert_uint_eq(s->n_ports, 2);
	/* workloadSelector picks WorkloadEntries of the same namespace only */
	ck_assert_uint_eq(s->n_endpoints, 1);
	ck_assert_str_eq(s->endpoints[0].address, "10.0.0.1");
	ck_assert_str_eq(s->endpoints[0].locality, "eu/eu-1/a");
	ck_assert_uint_eq(s->endpoints[0].weight, 3);
	ck_assert_str_eq(s->endpoints[0].service_account, "reviews");
	/* named port wins, then targetPort, then the service port */
	ck_assert_uint_eq(s->endpoints[0].ports[0], 8080);
	ck_assert_uint_eq(s->endpoints[0].ports[1], 19090);
	ck_assert_ptr_nonnull(model_find_service(m, "reviews.example.com"));
	ck_assert_ptr_null(model_find_service(m, "nope.shop.svc.cluster.local"));

	s = model_find_service(m, "db.shop.svc.cluster.local");
	ck_assert_uint_eq(s->n_endpoints, 2);
	ck_assert_uint_eq(s->endpoints[0].weight, 1);
	ck_assert_uint_eq(s->endpoints[1].weight, 5);
	ck_assert_uint_eq(s->endpoints[1].ports[0], 5432);
	model_unref(m);
}
END_TEST

START_TEST(host_resolution)
{
	struct model *m = build(mesh);
	char buf[256];

	ck_assert_str_eq(model_resolve_host(m, "reviews", "shop", buf, sizeof(buf)), "reviews.shop.svc.cluster.local");
	ck_assert_str_eq(model_resolve_host(m, "reviews.example.com", "shop", buf, sizeof(buf)), "reviews.example.com");
	ck_assert_str_eq(model_resolve_host(m, "*", "shop", buf, sizeof(buf)), "*");
	model_unref(m);
}
END_TEST

START_TEST(virtual_service_lookup)
{
	struct model *m = build(mesh);
	const struct cfg_object *vs;

	vs = model_virtual_service(m, "reviews.shop.svc.cluster.local", NULL);
	/* the gateway-only VirtualService does not apply to the mesh */
	ck_assert_ptr_nonnull(vs);
	ck_assert_str_eq(vs->name, "reviews");
	vs = model_virtual_service(m, "reviews.example.com", NULL);
	ck_assert_ptr_nonnull(vs);
	ck_assert_str_eq(vs->name, "wild");
	ck_assert_ptr_null(model_virtual_service(m, "db.shop.svc.cluster.local", NULL));
	model_unref(m);
}
END_TEST

START_TEST(destination_rule_precedence)
{
	struct model *m = build(mesh);
	const struct cfg_object *dr;

	/* client namespace first, then the service's namespace, then the root namespace */
	dr = model_destination_rule(m, "reviews.shop.svc.cluster.local", "web");
	ck_assert_str_eq(dr->name, "reviews-client");
	dr = model_destination_rule(m, "reviews.shop.svc.cluster.local", "shop");
	ck_assert_str_eq(dr->name, "reviews");
	dr = model_destination_rule(m, "reviews.shop.svc.cluster.local", "elsewhere");
	ck_assert_str_eq(dr->name, "reviews");
	ck_assert_ptr_null(model_destination_rule(m, "db.shop.svc.cluster.local", "shop"));
	ck_assert_ptr_nonnull(model_subset(model_destination_rule(m, "reviews.shop.svc.cluster.local", "shop"), "v1"));
	ck_assert_ptr_null(model_subset(dr, "v9"));
	model_unref(m);
}
END_TEST

static const char *const k8s_mesh =
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n"
	"---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\n"
	"spec:\n  selector: {app: reviews}\n  clusterIP: 10.96.0.10\n"
	"  ports:\n  - {name: grpc, port: 9080, targetPort: grpc-port}\n  - {name: http-metrics, port: 15090}\n"
	"  - {name: tcp-raw, port: 7000, targetPort: 7001}\n"
	"---\n"
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	"metadata: {name: reviews-abc, namespace: shop, labels: {kubernetes.io/service-name: reviews}}\n"
	"addressType: IPv4\n"
	"endpoints:\n"
	"- addresses: [10.1.0.5]\n  conditions: {ready: true}\n  zone: us-east1-b\n"
	"  targetRef: {kind: Pod, name: reviews-v1-xyz, namespace: shop}\n"
	"- addresses: [10.1.0.6]\n  conditions: {ready: false, terminating: true}\n"
	"ports: [{name: http-metrics, port: 15091}]\n"
	"---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: reviews-v1-xyz, namespace: shop, labels: {app: reviews, version: v1}}\n"
	"spec:\n  serviceAccountName: bookinfo-reviews\n"
	"  containers: [{name: app, ports: [{name: grpc-port, containerPort: 8080}]}]\n"
	"status: {phase: Running, podIP: 10.1.0.5, conditions: [{type: Ready, status: 'True'}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm1, namespace: shop}\n"
	"spec: {address: 10.2.0.1, labels: {app: reviews, version: v2}, serviceAccount: vm}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: shadow, namespace: shop}\n"
	"spec: {hosts: [reviews.shop.svc.cluster.local], resolution: STATIC, ports: [{number: 1, name: x}],"
	" endpoints: [{address: 10.9.9.9}]}\n"
	"---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: shop}\n"
	"spec: {type: ExternalName, externalName: example.com}\n";

START_TEST(kubernetes_services)
{
	struct model *m = build(k8s_mesh);
	const struct model_service *s = model_find_service(m, "reviews.shop.svc.cluster.local");
	const struct model_endpoint *pod_ep = NULL, *term = NULL, *vm = NULL;
	size_t i;

	ck_assert_ptr_nonnull(s);
	/* the Kubernetes Service wins over a ServiceEntry for the same host */
	ck_assert_int_eq(s->origin->kind, CFG_K8S_SERVICE);
	ck_assert_str_eq(s->cluster_ip, "10.96.0.10");
	ck_assert_uint_eq(s->n_ports, 3);
	ck_assert_str_eq(s->ports[0].protocol, "GRPC");
	ck_assert_str_eq(s->ports[1].protocol, "HTTP");
	ck_assert_str_eq(s->ports[2].protocol, "TCP");
	/* ExternalName Services have no endpoints of their own */
	ck_assert_ptr_null(model_find_service(m, "alias.shop.svc.cluster.local"));
	ck_assert_uint_eq(s->n_endpoints, 3);
	for (i = 0; i < s->n_endpoints; i++) {
		if (strcmp(s->endpoints[i].address, "10.1.0.5") == 0)
			pod_ep = &s->endpoints[i];
		if (strcmp(s->endpoints[i].address, "10.1.0.6") == 0)
			term = &s->endpoints[i];
		if (strcmp(s->endpoints[i].address, "10.2.0.1") == 0)
			vm = &s->endpoints[i];
	}
	ck_assert_ptr_nonnull(pod_ep);
	ck_assert_ptr_nonnull(term);
	ck_assert_ptr_nonnull(vm);
	/* labels and identity from the Pod, zone from the slice */
	ck_assert(!pod_ep->not_ready);
	ck_assert_str_eq(pod_ep->service_account, "bookinfo-reviews");
	ck_assert_str_eq(pod_ep->locality, "/us-east1-b");
	{
		struct cfg_kv kv = { "version", "v1" };
		struct cfg_labels sel = { &kv, 1 };
		ck_assert(model_labels_match(&sel, pod_ep->labels));
	}
	/* ports: named targetPort through the Pod, slice port by name, numeric targetPort */
	ck_assert_uint_eq(pod_ep->ports[0], 8080);
	ck_assert_uint_eq(pod_ep->ports[1], 15091);
	ck_assert_uint_eq(pod_ep->ports[2], 7001);
	/* terminating endpoints are not served */
	ck_assert(term->not_ready);
	/* a WorkloadEntry selected by the Service joins it */
	ck_assert_str_eq(vm->service_account, "vm");
	ck_assert(!vm->not_ready);
	model_unref(m);
}
END_TEST

START_TEST(labels_match)
{
	struct cfg_kv sel_kv[] = { { "app", "a" }, { "version", "v1" } };
	struct cfg_kv lab_kv[] = { { "version", "v1" }, { "app", "a" }, { "extra", "x" } };
	struct cfg_kv other_kv[] = { { "app", "a" }, { "version", "v2" } };
	struct cfg_labels sel = { sel_kv, 2 }, lab = { lab_kv, 3 }, other = { other_kv, 2 }, none = { NULL, 0 };

	ck_assert(model_labels_match(&sel, &lab));
	ck_assert(!model_labels_match(&sel, &other));
	ck_assert(!model_labels_match(&sel, &none));
	ck_assert(model_labels_match(&none, &lab)); /* empty selector selects everything */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("model");

	tcase_add_test(tc, services_from_entries);
	tcase_add_test(tc, host_resolution);
	tcase_add_test(tc, virtual_service_lookup);
	tcase_add_test(tc, destination_rule_precedence);
	tcase_add_test(tc, labels_match);
	tcase_add_test(tc, kubernetes_services);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? 1 : 0;
}
