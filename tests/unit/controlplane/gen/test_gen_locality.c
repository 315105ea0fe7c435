/*
 * test_gen_locality.c - locality load balancing in the sidecar's EDS
 * (controlplane/gen/locality.c, endpoint.c): Istio's LbPriority and
 * LocalityMatch, the proxy's locality from the node or its labels,
 * priorities by proximity, and the sidecar cache sharing a locality-
 * dependent EDS only between proxies of one locality while every other
 * service's EDS stays shared by the namespace.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"

#include "common/err.h"

#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *const mesh_yaml =
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: api, namespace: shop}\n"
	"spec:\n"
	"  hosts: [api.shop.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
	"  endpoints:\n"
	"  - {address: 10.0.0.1, locality: r1/z1}\n"
	"  - {address: 10.0.0.2, locality: r1/z2}\n"
	"  - {address: 10.0.0.3, labels: {istio-locality: r2.z1}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: plain, namespace: shop}\n"
	"spec:\n"
	"  hosts: [plain.shop.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
	"  endpoints:\n"
	"  - {address: 10.0.1.1, locality: r1/z1}\n"
	"  - {address: 10.0.1.2, locality: r1/z2}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: me, namespace: shop}\n"
	"spec:\n"
	"  hosts: [me.shop.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 9090, name: http, protocol: HTTP}]\n"
	"  endpoints:\n"
	"  - {address: 10.0.3.1, locality: r1/z2, labels: {app: me}}\n"
	"  - {address: 10.0.3.2, locality: r1/z2, labels: {app: me}}\n"
	"  - {address: 10.0.3.3, locality: r1/z1, labels: {app: split}}\n"
	"  - {address: 10.0.3.4, locality: r1/z2, labels: {app: split}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: single, namespace: shop}\n"
	"spec:\n"
	"  hosts: [single.shop.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
	"  endpoints:\n"
	"  - {address: 10.0.2.1, locality: r1/z1}\n"
	"  - {address: 10.0.2.2, locality: r1/z1}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: single, namespace: shop}\n"
	"spec:\n"
	"  host: single\n"
	"  trafficPolicy:\n"
	"    outlierDetection: {consecutive5xxErrors: 1}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: api, namespace: shop}\n"
	"spec:\n"
	"  host: api\n"
	"  trafficPolicy:\n"
	"    outlierDetection: {consecutive5xxErrors: 1}\n";

static struct model *m;

static void setup(void)
{
	m = testutil_model("test.yaml", mesh_yaml);
	ck_assert_ptr_nonnull(m);
	m->trust_domain = "cluster.local";
}

static void teardown(void)
{
	model_unref(m);
	m = NULL;
}

START_TEST(lb_priority_and_match)
{
	char buf[16];

	ck_assert_int_eq(gen__lb_priority("r1/z1/s1", "r1/z1/s1"), 0);
	ck_assert_int_eq(gen__lb_priority("r1/z1/s1", "r1/z1/s2"), 1);
	ck_assert_int_eq(gen__lb_priority("r1/z1/s1", "r1/z2"), 2);
	ck_assert_int_eq(gen__lb_priority("r1/z1/s1", "r2/z1/s1"), 3);
	ck_assert_int_eq(gen__lb_priority("", ""), 0);
	ck_assert_int_eq(gen__lb_priority("r1", "r1/z1"), 2);
	ck_assert(gen__locality_match("r1/z1/s1", "r1/z1/*"));
	ck_assert(gen__locality_match("r1/z1/s1", "r1"));
	ck_assert(gen__locality_match("r1/z1/s1", "*"));
	ck_assert(gen__locality_match("r1/z1/s1", "r1/*"));
	ck_assert(!gen__locality_match("r1/z1/s1", "r1/z2/*"));
	ck_assert(!gen__locality_match("r1/z1/s1", "r2/*"));
	ck_assert(!gen__locality_match("r1/z1/s1", "r1/z1/s2"));
	ck_assert_str_eq(gen__locality_part("r1/z1/s1", 1, buf, sizeof(buf)), "z1");
	ck_assert_str_eq(gen__locality_part("r1", 2, buf, sizeof(buf)), "");
	ck_assert_str_eq(gen__locality_part("/z9", 0, buf, sizeof(buf)), "");
	ck_assert_str_eq(gen__locality_part("/z9", 1, buf, sizeof(buf)), "z9");
}
END_TEST

START_TEST(proxy_locality_from_node_or_labels)
{
	struct arena *a = arena_new(1 << 16);
	struct cfg_kv il = { .key = "istio-locality", .value = "r3.z4.s5" };
	struct cfg_kv topo[] = { { .key = "topology.kubernetes.io/region", .value = "r7" },
				 { .key = "topology.kubernetes.io/zone", .value = "z8" } };
	struct cfg_labels l1 = { .v = &il, .n = 1 }, l2 = { .v = topo, .n = 2 };
	struct gen_workload w1 = { "ns", &l1 }, w2 = { "ns", &l2 }, w0 = { "ns", NULL };
	struct gen_node node = { .locality = "r1/z1/s1" }, none = { 0 };

	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(gen__proxy_locality(&node, &w1, a), "r1/z1/s1");
	ck_assert_str_eq(gen__proxy_locality(&none, &w1, a), "r3/z4/s5");
	ck_assert_str_eq(gen__proxy_locality(&none, &w2, a), "r7/z8/");
	ck_assert_str_eq(gen__proxy_locality(&none, &w0, a), "");
	ck_assert_str_eq(gen__proxy_locality(NULL, NULL, a), "");
	arena_free(a);
}
END_TEST

/* The priority of each endpoint address of cluster cl in s (-1: absent). */
static int prio_of(const struct xds_snapshot *s, const char *cl, const char *addr)
{
	const struct xds_resource *r = xds_snapshot_find(s, XDS_ENDPOINT, cl);
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla;
	int out = -1;
	size_t i, j;

	ck_assert_ptr_nonnull(r);
	cla = envoy__config__endpoint__v3__cluster_load_assignment__unpack(NULL, r->len, r->data);
	ck_assert_ptr_nonnull(cla);
	for (i = 0; i < cla->n_endpoints; i++)
		for (j = 0; j < cla->endpoints[i]->n_lb_endpoints; j++)
			if (strcmp(cla->endpoints[i]->lb_endpoints[j]->endpoint->address->socket_address->address,
				   addr) == 0)
				out = (int)cla->endpoints[i]->priority;
	envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);
	return out;
}

static struct xds_snapshot *build(struct gen_sidecar_cache *c, const char *locality)
{
	struct gen_workload w = { .ns = "shop", .labels = NULL };
	struct gen_node node = { .ip = "10.9.9.9", .service_account = "client", .locality = locality };
	struct xds_snapshot *s = NULL;

	ck_assert_int_eq(gen_sidecar_snapshot_cached(c, m, &gen_profile_sidecar, &w, &node, NULL, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

START_TEST(priorities_by_proximity)
{
	const char *api = "outbound|8080||api.shop.svc.cluster.local";
	const char *plain = "outbound|8080||plain.shop.svc.cluster.local";
	struct xds_snapshot *z1 = build(NULL, "r1/z1"), *z2 = build(NULL, "r1/z2"), *far = build(NULL, "r9/z9");

	ck_assert_int_eq(prio_of(z1, api, "10.0.0.1"), 0);
	ck_assert_int_eq(prio_of(z1, api, "10.0.0.2"), 1);
	ck_assert_int_eq(prio_of(z1, api, "10.0.0.3"), 2);
	ck_assert_int_eq(prio_of(z2, api, "10.0.0.2"), 0);
	ck_assert_int_eq(prio_of(z2, api, "10.0.0.1"), 1);
	/* nothing near: every locality equally far, one priority */
	ck_assert_int_eq(prio_of(far, api, "10.0.0.1"), 0);
	ck_assert_int_eq(prio_of(far, api, "10.0.0.3"), 0);
	/* no outlier detection: no failover, one priority */
	ck_assert_int_eq(prio_of(z1, plain, "10.0.1.2"), 0);
	xds_snapshot_unref(z1);
	xds_snapshot_unref(z2);
	xds_snapshot_unref(far);
}
END_TEST

/* No locality from the node or its labels: the one locality its service
 * instances agree on; none when they disagree. */
START_TEST(proxy_locality_from_instances)
{
	const char *api = "outbound|8080||api.shop.svc.cluster.local";
	struct cfg_kv me = { .key = "app", .value = "me" }, split = { .key = "app", .value = "split" };
	struct cfg_labels lme = { .v = &me, .n = 1 }, lsplit = { .v = &split, .n = 1 };
	struct gen_workload w1 = { .ns = "shop", .labels = &lme }, w2 = { .ns = "shop", .labels = &lsplit };
	struct gen_node node = { .ip = "10.9.9.9" };
	struct xds_snapshot *s1 = NULL, *s2 = NULL;

	ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &w1, &node, NULL, &s1), 0);
	ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &w2, &node, NULL, &s2), 0);
	ck_assert_int_eq(prio_of(s1, api, "10.0.0.2"), 0);
	ck_assert_int_eq(prio_of(s1, api, "10.0.0.1"), 1);
	/* instances in r1/z1 and r1/z2: unknown, every locality equally far */
	ck_assert_int_eq(prio_of(s2, api, "10.0.0.1"), 0);
	ck_assert_int_eq(prio_of(s2, api, "10.0.0.2"), 0);
	xds_snapshot_unref(s1);
	xds_snapshot_unref(s2);
}
END_TEST

/* One build per locality for the EDS that depends on it; the other
 * services' EDS and every CDS stay one object per namespace; the bytes
 * equal the uncached build's. */
START_TEST(cache_shares_per_locality)
{
	const char *api = "outbound|8080||api.shop.svc.cluster.local";
	const char *plain = "outbound|8080||plain.shop.svc.cluster.local";
	const char *single = "outbound|8080||single.shop.svc.cluster.local";
	struct gen_sidecar_cache *c = gen_sidecar_cache_new();
	struct xds_snapshot *a1, *a2, *b1, *u1, *u2;

	ck_assert_ptr_nonnull(c);
	a1 = build(c, "r1/z1");
	b1 = build(c, "r1/z2");
	a2 = build(c, "r1/z1");
	u1 = build(NULL, "r1/z1");
	u2 = build(NULL, "r1/z2");
	ck_assert_ptr_eq(xds_snapshot_find(a1, XDS_ENDPOINT, api), xds_snapshot_find(a2, XDS_ENDPOINT, api));
	ck_assert_ptr_ne(xds_snapshot_find(a1, XDS_ENDPOINT, api), xds_snapshot_find(b1, XDS_ENDPOINT, api));
	ck_assert_ptr_eq(xds_snapshot_find(a1, XDS_ENDPOINT, plain), xds_snapshot_find(b1, XDS_ENDPOINT, plain));
	ck_assert_ptr_eq(xds_snapshot_find(a1, XDS_CLUSTER, api), xds_snapshot_find(b1, XDS_CLUSTER, api));
	/* one locality only: every proxy gets the same bytes, one object */
	ck_assert_ptr_eq(xds_snapshot_find(a1, XDS_ENDPOINT, single), xds_snapshot_find(b1, XDS_ENDPOINT, single));
	ck_assert_int_eq(prio_of(b1, api, "10.0.0.2"), 0);
	ck_assert_int_eq(prio_of(a2, api, "10.0.0.1"), 0);
	ck_assert_uint_eq(xds_snapshot_find(a1, XDS_ENDPOINT, api)->len, xds_snapshot_find(u1, XDS_ENDPOINT, api)->len);
	ck_assert(memcmp(xds_snapshot_find(a1, XDS_ENDPOINT, api)->data, xds_snapshot_find(u1, XDS_ENDPOINT, api)->data,
			 xds_snapshot_find(u1, XDS_ENDPOINT, api)->len) == 0);
	ck_assert(memcmp(xds_snapshot_find(b1, XDS_ENDPOINT, api)->data, xds_snapshot_find(u2, XDS_ENDPOINT, api)->data,
			 xds_snapshot_find(u2, XDS_ENDPOINT, api)->len) == 0);
	xds_snapshot_unref(a1);
	xds_snapshot_unref(a2);
	xds_snapshot_unref(b1);
	xds_snapshot_unref(u1);
	xds_snapshot_unref(u2);
	gen_sidecar_cache_free(c);
}
END_TEST

/* Proxyless output is shared by every client: no priorities. */
START_TEST(proxyless_unchanged)
{
	struct xds_snapshot *s = NULL;

	ck_assert_int_eq(gen_snapshot(m, &gen_profile_proxyless, NULL, &s), 0);
	ck_assert_int_eq(prio_of(s, "outbound|8080||api.shop.svc.cluster.local", "10.0.0.3"), 0);
	xds_snapshot_unref(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gen_locality");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, lb_priority_and_match);
	tcase_add_test(tc, proxy_locality_from_node_or_labels);
	tcase_add_test(tc, priorities_by_proximity);
	tcase_add_test(tc, proxy_locality_from_instances);
	tcase_add_test(tc, cache_shares_per_locality);
	tcase_add_test(tc, proxyless_unchanged);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
