/*
 * test_server_sidecar.c - sidecars over the real ADS server, with the push
 * stage building their whole config from a real model (gen_sidecar_snapshot
 * on a helper thread playing meshd's config thread): a sidecar Node gets
 * virtualOutbound / virtualInbound / the per-port listener, its route
 * config and clusters; replicas share one build; a model change rebuilds
 * each live key once and pushes the new route; keys go with their last
 * stream.  A small xDS client on gRPC core; every wait is bounded.
 */
#include "controlplane/xds/server.h"

#include "common/err.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/push/push.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

#include "ads_test_client.h"
#include "testutil.h"

#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define URL_RDS "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define URL_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define WAIT_MS 5000
#define ID_1 "sidecar~127.0.0.1~web-1.demo~demo.svc.cluster.local"
#define ID_2 "sidecar~127.0.0.2~web-2.demo~demo.svc.cluster.local"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;

static const char *const mesh_yaml =
	"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
	"metadata: {name: web, namespace: demo}\n"
	"spec:\n  hosts: [web.demo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
	"  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
	"  workloadSelector: {labels: {app: web}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
	"metadata: {name: web-1, namespace: demo}\n"
	"spec: {address: 127.0.0.1, ports: {http: 9080}, labels: {app: web}, serviceAccount: web}\n";

static const char *vs_yaml(const char *route)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: web, namespace: demo}\n"
		 "spec: {hosts: [web.demo.svc.cluster.local], http: [{name: %s, route: [{destination: "
		 "{host: web.demo.svc.cluster.local}}]}]}\n",
		 route);
	return buf;
}

/* ---------------------------------------------------------------- fixture */

static struct xds_server *srv;
static struct cfg_store *store;
static struct push_stage *stage;
static pthread_t stage_thread;
static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stage_stop;

static void *stage_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stage_stop)) {
		struct pollfd p = { .fd = push_stage_fd(stage), .events = POLLIN };

		if (poll(&p, 1, 20) == 1) {
			pthread_mutex_lock(&stage_lock);
			(void)push_stage_handle(stage);
			pthread_mutex_unlock(&stage_lock);
		}
	}
	return NULL;
}

static void apply(const char *origin, const char *yaml)
{
	struct cfg_parse_result res;

	memset(&res, 0, sizeof(res));
	ck_assert_int_ge(cfg_parse_buffer(origin, yaml, strlen(yaml), &res), 0);
	ck_assert_int_ge(cfg_store_apply_origin(store, origin, &res), 1);
	cfg_parse_result_cleanup(&res);
}

/* A push, as the config thread makes it after a change. */
static void push(void)
{
	pthread_mutex_lock(&stage_lock);
	ck_assert_int_eq(push_stage_push(stage), 0);
	pthread_mutex_unlock(&stage_lock);
}

static uint64_t whole_builds(void)
{
	uint64_t n;

	pthread_mutex_lock(&stage_lock);
	n = push_stage_whole_builds(stage);
	pthread_mutex_unlock(&stage_lock);
	return n;
}

static size_t stage_keys(void)
{
	size_t n;

	pthread_mutex_lock(&stage_lock);
	n = push_stage_proxy_keys(stage);
	pthread_mutex_unlock(&stage_lock);
	return n;
}

static void setup(void)
{
	struct xds_server_config cfg = { .addr = "127.0.0.1:0", .want = push_stage_want,
					 .whole_flavours = 1u << XDS_FLAVOUR_SIDECAR };
	struct push_stage_config pc = { 0 };

	atomic_store(&stage_stop, 0);
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
	apply("mesh.yaml", mesh_yaml);
	apply("vs.yaml", vs_yaml("first"));
	pc.store = store;
	pc.domain = "cluster.local";
	pc.root_namespace = "istio-system";
	pc.trust_domain = "cluster.local";
	ck_assert_int_eq(push_stage_new(&pc, &stage), 0);
	cfg.want_ctx = stage;
	ck_assert_int_eq(xds_server_start(&cfg, &srv), 0);
	push_stage_set_server(stage, srv);
	ck_assert_int_eq(pthread_create(&stage_thread, NULL, stage_main, NULL), 0);
	push();
}

static void teardown(void)
{
	atomic_store(&stage_stop, 1);
	pthread_join(stage_thread, NULL);
	xds_server_stop(srv);
	srv = NULL;
	push_stage_free(stage);
	stage = NULL;
	cfg_store_free(store);
	store = NULL;
}

/* ---------------------------------------------------------------- client */

static void send_req(struct ads_client *c, const char *node_id, const char *url, const char *version,
		     const char *nonce, const char *const *names, size_t nnames)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	struct ads_client_sidecar_node nd;
	uint8_t *wire;
	size_t len;

	if (node_id)
		req.node = ads_client_sidecar_node_init(&nd, node_id, "demo", "web", "web");
	req.type_url = (char *)url;
	req.version_info = (char *)(version ? version : "");
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names = (char **)names;
	req.n_resource_names = nnames;
	len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(wire);
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	ck_assert_int_eq(ads_client_send_raw(c, wire, len), 0);
	free(wire);
}

static Resp *must_recv(struct ads_client *c, const char *url)
{
	grpc_slice s;
	Resp *resp;

	ck_assert_int_eq(ads_client_recv_raw(c, WAIT_MS, &s), 0);
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	ck_assert_ptr_nonnull(resp);
	ck_assert_str_eq(resp->type_url, url);
	return resp;
}

static void resp_free(Resp *r)
{
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

static void ack(struct ads_client *c, const Resp *r, const char *const *names, size_t n)
{
	send_req(c, NULL, r->type_url, r->version_info, r->nonce, names, n);
}

/* Whether listener `name` is in r (decoded as Envoy's Listener). */
static int has_listener(const Resp *r, const char *name)
{
	size_t i;
	int found = 0;

	for (i = 0; i < r->n_resources && !found; i++) {
		Envoy__Config__Listener__V3__Listener *l = envoy__config__listener__v3__listener__unpack(
			NULL, r->resources[i]->value.len, r->resources[i]->value.data);
		ck_assert_ptr_nonnull(l);
		found = strcmp(l->name, name) == 0;
		envoy__config__listener__v3__listener__free_unpacked(l, NULL);
	}
	return found;
}

static int has_cluster(const Resp *r, const char *name)
{
	size_t i;
	int found = 0;

	for (i = 0; i < r->n_resources && !found; i++) {
		Envoy__Config__Cluster__V3__Cluster *cl = envoy__config__cluster__v3__cluster__unpack(
			NULL, r->resources[i]->value.len, r->resources[i]->value.data);
		ck_assert_ptr_nonnull(cl);
		found = strcmp(cl->name, name) == 0;
		envoy__config__cluster__v3__cluster__free_unpacked(cl, NULL);
	}
	return found;
}

/* Whether route config r (one resource, named "8080") has a route named route. */
static int route_named(const Resp *r, const char *route)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc;
	size_t i, j;
	int found = 0;

	ck_assert_uint_eq(r->n_resources, 1);
	rc = envoy__config__route__v3__route_configuration__unpack(NULL, r->resources[0]->value.len,
								     r->resources[0]->value.data);
	ck_assert_ptr_nonnull(rc);
	ck_assert_str_eq(rc->name, "8080");
	for (i = 0; i < rc->n_virtual_hosts; i++)
		for (j = 0; j < rc->virtual_hosts[i]->n_routes; j++)
			found |= rc->virtual_hosts[i]->routes[j]->name &&
				 strcmp(rc->virtual_hosts[i]->routes[j]->name, route) == 0;
	envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
	return found;
}

static const char *const route8080[] = { "8080" };

/* ---------------------------------------------------------------- tests */

START_TEST(sidecar_gets_its_whole_config)
{
	struct ads_client c;
	Resp *r;

	ads_client_open(&c, xds_server_port(srv), SOTW);
	send_req(&c, ID_1, URL_LDS, NULL, NULL, NULL, 0);
	r = must_recv(&c, URL_LDS);
	ck_assert(has_listener(r, "virtualOutbound"));
	ck_assert(has_listener(r, "virtualInbound"));
	ck_assert(has_listener(r, "0.0.0.0_8080"));
	ack(&c, r, NULL, 0);
	resp_free(r);
	send_req(&c, NULL, URL_RDS, NULL, NULL, route8080, 1);
	r = must_recv(&c, URL_RDS);
	ck_assert(route_named(r, "first"));
	ack(&c, r, route8080, 1);
	resp_free(r);
	send_req(&c, NULL, URL_CDS, NULL, NULL, NULL, 0);
	r = must_recv(&c, URL_CDS);
	ck_assert(has_cluster(r, "outbound|8080||web.demo.svc.cluster.local"));
	ck_assert(has_cluster(r, "inbound|9080||"));
	ck_assert(has_cluster(r, "BlackHoleCluster"));
	ck_assert(has_cluster(r, "PassthroughCluster"));
	ack(&c, r, NULL, 0);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(replicas_share_a_build_model_change_repushes)
{
	struct ads_client a, b;
	uint64_t before;
	Resp *r;
	int i;

	before = whole_builds();
	ads_client_open(&a, xds_server_port(srv), SOTW);
	ads_client_open(&b, xds_server_port(srv), SOTW);
	send_req(&a, ID_1, URL_RDS, NULL, NULL, route8080, 1);
	r = must_recv(&a, URL_RDS);
	ack(&a, r, route8080, 1);
	resp_free(r);
	/* a replica of the same workload (labels, account) on another IP */
	send_req(&b, ID_2, URL_RDS, NULL, NULL, route8080, 1);
	r = must_recv(&b, URL_RDS);
	ck_assert(route_named(r, "first"));
	ack(&b, r, route8080, 1);
	resp_free(r);
	ck_assert_uint_eq(whole_builds(), before + 1);
	ck_assert_uint_eq(stage_keys(), 1);

	/* a VirtualService edit: one rebuild for the key, both get the route */
	apply("vs.yaml", vs_yaml("second"));
	push();
	ck_assert_uint_eq(whole_builds(), before + 2);
	r = must_recv(&a, URL_RDS);
	ck_assert(route_named(r, "second"));
	resp_free(r);
	r = must_recv(&b, URL_RDS);
	ck_assert(route_named(r, "second"));
	resp_free(r);

	ads_client_close(&a);
	ads_client_close(&b);
	for (i = 0; i < WAIT_MS / 10 && (stage_keys() != 0 || xds_server_proxy_keys(srv) != 0); i++)
		usleep(10000);
	ck_assert_uint_eq(stage_keys(), 0);
	ck_assert_uint_eq(xds_server_proxy_keys(srv), 0);
}
END_TEST

static Suite *sidecar_suite(void)
{
	Suite *s = suite_create("xds_server_sidecar");
	TCase *tc = tcase_create("sidecar");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, sidecar_gets_its_whole_config);
	tcase_add_test(tc, replicas_share_a_build_model_change_repushes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed = testutil_run(sidecar_suite());

	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
