/*
 * test_gen_gateway.c - gen_gateway_snapshot(): what istiod's
 * mergeGateways skips (with a note), which listeners and route configs a
 * router gets for its labels, and that a router no Gateway selects gets
 * clusters but no listener.  The golden cases (tests/xds/0152-0159) hold
 * the full shapes; these are the rules whose breaking changes which
 * resources exist.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"

#include "common/buf.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define SE \
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: web, namespace: demo}\n"   \
	"spec:\n  hosts: [web.demo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n" \
	"  ports: [{number: 8000, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.0.1}]\n"
#define GW(name, servers)                                                                            \
	"---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"                                    \
	"metadata: {name: " name ", namespace: istio-system}\n"                                        \
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n" servers

static struct cfg_kv gw_kv[] = { { (char *)"istio", (char *)"ingressgateway" } };
static const struct cfg_labels gw_labels = { gw_kv, 1 };
static struct cfg_kv other_kv[] = { { (char *)"istio", (char *)"egressgateway" } };
static const struct cfg_labels other_labels = { other_kv, 1 };

static char notes_buf[4096];

static void note_fn(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	size_t n = strlen(notes_buf);

	(void)ctx;
	(void)level;
	(void)scope;
	snprintf(notes_buf + n, sizeof(notes_buf) - n, "%s\n", msg);
}

static struct xds_snapshot *build(struct model *m, const struct cfg_labels *labels)
{
	static const struct gen_notes notes = { note_fn, NULL, NULL };
	struct gen_workload w = { "istio-system", labels };
	struct xds_snapshot *s = NULL;

	notes_buf[0] = '\0';
	ck_assert_int_eq(gen_gateway_snapshot(m, &gen_profile_router, &w, NULL, &notes, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static bool has(const struct xds_snapshot *s, enum xds_type t, const char *name)
{
	return xds_snapshot_find(s, t, name) != NULL;
}

/* mergeGateways: on one port, plaintext HTTP servers merge (one route
 * config), a TCP server beside them is skipped; a TLS host already served
 * on the port is skipped (CheckDuplicates); two HTTPS servers with
 * distinct port names get a route config each. */
START_TEST(merge_skips_conflicts)
{
	struct model *m = testutil_model("t.yaml", SE
		GW("a", "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n"
			"  - port: {number: 443, name: https-a, protocol: HTTPS}\n    hosts: [a.example.com]\n"
			"    tls: {mode: SIMPLE, credentialName: a}\n"
			"  - port: {number: 443, name: https-b, protocol: HTTPS}\n    hosts: [b.example.com]\n"
			"    tls: {mode: SIMPLE, credentialName: b}\n")
		GW("b", "  - port: {number: 80, name: http2, protocol: HTTP}\n    hosts: [b.example.com]\n"
			"  - port: {number: 443, name: https-dup, protocol: HTTPS}\n    hosts: [a.example.com]\n"
			"    tls: {mode: SIMPLE, credentialName: c}\n")
		GW("c", "  - port: {number: 80, name: tcp, protocol: TCP}\n    hosts: ['*']\n"));
	struct xds_snapshot *s;

	ck_assert_ptr_nonnull(m);
	s = build(m, &gw_labels);
	ck_assert_uint_eq(s->sets[XDS_LISTENER].n, 2);
	ck_assert(has(s, XDS_LISTENER, "0.0.0.0_80"));
	ck_assert(has(s, XDS_LISTENER, "0.0.0.0_443"));
	ck_assert_uint_eq(s->sets[XDS_ROUTE].n, 3);
	ck_assert(has(s, XDS_ROUTE, "http.80"));
	ck_assert(has(s, XDS_ROUTE, "https.443.https-a.a.istio-system"));
	ck_assert(has(s, XDS_ROUTE, "https.443.https-b.a.istio-system"));
	ck_assert(!has(s, XDS_ROUTE, "https.443.https-dup.b.istio-system"));
	ck_assert_msg(strstr(notes_buf, "duplicate host a.example.com"), "%s", notes_buf);
	ck_assert_msg(strstr(notes_buf, "server on port 80 (TCP) skipped"), "%s", notes_buf);
	ck_assert(has(s, XDS_CLUSTER, "outbound|8000||web.demo.svc.cluster.local"));
	ck_assert(has(s, XDS_CLUSTER, "BlackHoleCluster"));
	ck_assert(!has(s, XDS_CLUSTER, "PassthroughCluster"));
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

/* mergeGateways selects by labels: a router the Gateways do not select
 * gets no listener and no route config, but the clusters. */
START_TEST(unselected_router_gets_clusters_only)
{
	struct model *m = testutil_model("t.yaml", SE
		GW("a", "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n"));
	struct xds_snapshot *s;

	ck_assert_ptr_nonnull(m);
	s = build(m, &other_labels);
	ck_assert_uint_eq(s->sets[XDS_LISTENER].n, 0);
	/* said in meshd's log, with the labels to compare with the selectors */
	ck_assert_msg(strstr(notes_buf, "labels {istio=egressgateway}: no Gateway's selector matches them"), "%s",
		      notes_buf);
	ck_assert_uint_eq(s->sets[XDS_ROUTE].n, 0);
	ck_assert(has(s, XDS_CLUSTER, "outbound|8000||web.demo.svc.cluster.local"));
	ck_assert(has(s, XDS_ENDPOINT, "outbound|8000||web.demo.svc.cluster.local"));
	xds_snapshot_unref(s);
	s = build(m, &gw_labels);
	ck_assert(has(s, XDS_LISTENER, "0.0.0.0_80"));
	ck_assert_ptr_null(strstr(notes_buf, "no Gateway's selector"));
	/* nothing bound: the 404 route config still exists */
	ck_assert(has(s, XDS_ROUTE, "http.80"));
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

/* a TCP server with no tcp route bound: no chain, so no listener (istiod
 * omits a listener without filter chains), with a note */
START_TEST(tcp_server_without_route_omitted)
{
	struct model *m = testutil_model("t.yaml", SE
		GW("a", "  - port: {number: 3306, name: tcp, protocol: TCP}\n    hosts: ['*']\n"));
	struct xds_snapshot *s;

	ck_assert_ptr_nonnull(m);
	s = build(m, &gw_labels);
	ck_assert_uint_eq(s->sets[XDS_LISTENER].n, 0);
	ck_assert_msg(strstr(notes_buf, "listener missed network filter"), "%s", notes_buf);
	xds_snapshot_unref(s);
	model_unref(m);
}
END_TEST

/* gwbrk: a server and a VirtualService with more hosts than the
 * generator's first hosts array (1024): every one gets its virtual host
 * (only the first 1024 did, the rest answered 404 with no word). */
START_TEST(thousands_of_hosts_all_served)
{
	enum { N = 1500 };
	struct mesh_buf y, hosts;
	struct model *m;
	struct xds_snapshot *s;
	const struct xds_resource *r;
	char name[64];
	int i, n;

	mesh_buf_init(&hosts, 1 << 20);
	for (i = 0; i < N; i++) {
		n = snprintf(name, sizeof(name), "%sh%d.big.example.com", i ? ", " : "", i);
		mesh_buf_append(&hosts, name, (size_t)n);
	}
	mesh_buf_putc(&hosts, '\0');
	mesh_buf_init(&y, 1 << 20);
	mesh_buf_puts(&y, SE GW("big", "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ["));
	mesh_buf_puts(&y, hosts.data);
	mesh_buf_puts(&y, "]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			  "metadata: {name: big, namespace: istio-system}\nspec:\n  gateways: [big]\n  hosts: [");
	mesh_buf_puts(&y, hosts.data);
	mesh_buf_puts(&y, "]\n  http: [{route: [{destination: {host: web.demo.svc.cluster.local}}]}]\n");
	mesh_buf_putc(&y, '\0');
	ck_assert_int_eq(y.err, 0);
	m = testutil_model("t.yaml", y.data);
	ck_assert_ptr_nonnull(m);
	s = build(m, &gw_labels);
	r = xds_snapshot_find(s, XDS_ROUTE, "http.80");
	ck_assert_ptr_nonnull(r);
	for (i = 0; i < N; i += 499) {
		n = snprintf(name, sizeof(name), "h%d.big.example.com", i);
		ck_assert_msg(memmem(r->data, r->len, name, (size_t)n), "%s has no virtual host", name);
	}
	ck_assert(memmem(r->data, r->len, "h1499.big.example.com", 21));
	xds_snapshot_unref(s);
	model_unref(m);
	mesh_buf_cleanup(&y);
	mesh_buf_cleanup(&hosts);
}
END_TEST

static Suite *gen_gateway_suite(void)
{
	Suite *s = suite_create("gen_gateway");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, merge_skips_conflicts);
	tcase_add_test(tc, unselected_router_gets_clusters_only);
	tcase_add_test(tc, tcp_server_without_route_omitted);
	tcase_add_test(tc, thousands_of_hosts_all_served);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(gen_gateway_suite()) ? 1 : 0;
}
