/*
 * test_server_resolve.c - the ADS server's per-proxy resources: names the
 * shared snapshot lacks are requested of the push stage, which builds them
 * on its own thread (here a helper thread plays the config thread) for the
 * stream's key (flavour, NAMESPACE, LABELS) against the published model;
 * results are kept per key (replicas share one build), built again only
 * after a publish with a new model or a new name, versioned by content,
 * and dropped with the key's last stream.  A small xDS client on gRPC core
 * talks to the real server on 127.0.0.1; every wait is bounded.
 */
#include "controlplane/xds/server.h"

#include "common/err.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/push/push.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "ads_test_client.h"
#include "testutil.h"

#include <check.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define INBOUND "xds.istio.io/grpc/lds/inbound/0.0.0.0:8080"
#define WAIT_MS 5000
#define QUIET_MS 300

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;

/* ---------------------------------------------------------------- resolver stub */

/* Answers names starting with "xds.istio.io/" with "ns=NS app=APP epoch=E
 * name=NAME"; -ENOENT otherwise.  Counts its calls. */
static atomic_int resolve_calls;
static atomic_int epoch;

static int stub_resolve(void *ctx, const struct model *m, const struct push_workload *p, enum xds_type t,
			const char *name, uint8_t **data, size_t *len)
{
	const char *app = "";
	char buf[512];
	size_t i;
	int n;

	(void)ctx;
	atomic_fetch_add(&resolve_calls, 1);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(p->labels);
	if (t != XDS_LISTENER || strncmp(name, "xds.istio.io/", 13) != 0)
		return -ENOENT;
	for (i = 0; i < p->labels->n; i++)
		if (strcmp(p->labels->v[i].key, "app") == 0)
			app = p->labels->v[i].value;
	n = snprintf(buf, sizeof(buf), "ns=%s app=%s epoch=%d name=%s", p->ns ? p->ns : "-", app,
		     atomic_load(&epoch), name);
	*data = malloc((size_t)n);
	ck_assert_ptr_nonnull(*data);
	memcpy(*data, buf, (size_t)n);
	*len = (size_t)n;
	return 0;
}

/* ---------------------------------------------------------------- client */

static void client_open(struct ads_client *c, int port)
{
	ads_client_open(c, port, SOTW);
}

/* A DiscoveryRequest for LDS; the node (id, NAMESPACE when ns, LABELS
 * app=APP when app) on the first one. */
static void client_send(struct ads_client *c, const char *node_id, const char *ns, const char *app,
			const char *version, const char *nonce, const char *const *names, size_t nnames)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT, lab = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[3], le, *fes[3], *les[1] = { &le };
	Google__Protobuf__Value v[3], lv;
	uint8_t *wire;
	size_t len, k = 0;

	if (node_id) {
		size_t i;

		for (i = 0; i < 3; i++) {
			google__protobuf__struct__fields_entry__init(&fe[i]);
			google__protobuf__value__init(&v[i]);
			fe[i].value = &v[i];
			fes[i] = &fe[i];
		}
		google__protobuf__struct__fields_entry__init(&le);
		google__protobuf__value__init(&lv);
		fe[k].key = "GENERATOR";
		v[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v[k++].string_value = "grpc";
		if (ns) {
			fe[k].key = "NAMESPACE";
			v[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			v[k++].string_value = (char *)ns;
		}
		if (app) {
			le.key = "app";
			le.value = &lv;
			lv.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			lv.string_value = (char *)app;
			lab.fields = les;
			lab.n_fields = 1;
			fe[k].key = "LABELS";
			v[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
			v[k++].struct_value = &lab;
		}
		md.fields = fes;
		md.n_fields = k;
		node.id = (char *)node_id;
		node.metadata = &md;
		req.node = &node;
	}
	req.type_url = URL_LDS;
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

/* The next response within ms, or NULL (the receive stays outstanding). */
static Resp *client_recv(struct ads_client *c, int ms)
{
	grpc_slice s;
	Resp *resp;
	int rc = ads_client_recv_raw(c, ms, &s);

	if (rc == -ETIMEDOUT)
		return NULL;
	ck_assert_int_eq(rc, 0);
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static Resp *must_recv(struct ads_client *c)
{
	Resp *r = client_recv(c, WAIT_MS);

	ck_assert_msg(r != NULL, "no response within %d ms", WAIT_MS);
	return r;
}

static void must_be_quiet(struct ads_client *c)
{
	Resp *r = client_recv(c, QUIET_MS);

	ck_assert_msg(r == NULL, "unexpected response: version %s", r ? r->version_info : "");
}

/* The text of resource i of r. */
static const char *res_text(const Resp *r, size_t i, char *buf, size_t cap)
{
	size_t n;

	ck_assert_uint_gt(r->n_resources, i);
	ck_assert_str_eq(r->resources[i]->type_url, URL_LDS);
	n = r->resources[i]->value.len;
	ck_assert_uint_lt(n, cap);
	memcpy(buf, r->resources[i]->value.data, n);
	buf[n] = '\0';
	return buf;
}

/* ---------------------------------------------------------------- fixture */

static struct xds_server *srv;
static struct cfg_store *store;
static struct push_stage *stage;
/* the helper thread playing meshd's config thread, and its lock */
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

static size_t stage_keys(void)
{
	size_t n;

	pthread_mutex_lock(&stage_lock);
	n = push_stage_proxy_keys(stage);
	pthread_mutex_unlock(&stage_lock);
	return n;
}

static struct model *empty_model(void)
{
	struct cfg_snapshot *snap = cfg_store_snapshot(store);
	struct model *m = model_build(snap, "cluster.local", "istio-system");

	ck_assert_ptr_nonnull(m);
	cfg_snapshot_unref(snap);
	return m;
}

/* A shared snapshot holding one listener "shared:80" (text "shared"). */
static void publish(int with_model)
{
	struct xds_snapshot *s = xds_snapshot_new();
	struct model *m = with_model ? empty_model() : NULL;

	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "shared:80", (const uint8_t *)"shared", 6), 0);
	xds_snapshot_seal(s);
	if (m) {
		pthread_mutex_lock(&stage_lock);
		push_stage_publish(stage, s, m);
		pthread_mutex_unlock(&stage_lock);
	} else
		xds_server_publish(srv, s);
	xds_snapshot_unref(s);
	model_unref(m);
}

static void setup(void)
{
	struct xds_server_config cfg = { .addr = "127.0.0.1:0", .want = push_stage_want };
	struct push_stage_config pc = { .build = stub_resolve };

	atomic_store(&resolve_calls, 0);
	atomic_store(&epoch, 1);
	atomic_store(&stage_stop, 0);
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
	pc.store = store;
	ck_assert_int_eq(push_stage_new(&pc, &stage), 0);
	cfg.want_ctx = stage;
	ck_assert_int_eq(xds_server_start(&cfg, &srv), 0);
	push_stage_set_server(stage, srv);
	ck_assert_int_eq(pthread_create(&stage_thread, NULL, stage_main, NULL), 0);
	publish(1);
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

static const char *const names_both[] = { INBOUND, "shared:80" };
static const char *const names_unknown[] = { "outbound:1", INBOUND };

/* ---------------------------------------------------------------- tests */

START_TEST(resolved_with_node_namespace_and_labels)
{
	struct ads_client c;
	char buf[512];
	Resp *r;

	client_open(&c, xds_server_port(srv));
	client_send(&c, "sidecar~10.0.0.1~echo-1.ns1~ns1.svc.cluster.local", "meta-ns", "echo", NULL, NULL,
		    names_both, 2);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	/* name order: the shared one and the per-proxy one side by side */
	ck_assert_str_eq(res_text(r, 0, buf, sizeof(buf)), "shared");
	ck_assert_str_eq(res_text(r, 1, buf, sizeof(buf)), "ns=meta-ns app=echo epoch=1 name=" INBOUND);
	/* asked only for the name the snapshot lacks */
	ck_assert_int_eq(atomic_load(&resolve_calls), 1);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ads_client_close(&c);
}
END_TEST

START_TEST(namespace_from_node_id_and_unknown_names)
{
	struct ads_client c;
	char buf[512];
	Resp *r;

	client_open(&c, xds_server_port(srv));
	client_send(&c, "sidecar~10.0.0.1~echo-1.ns1~ns1.svc.cluster.local", NULL, NULL, NULL, NULL, names_unknown, 2);
	r = must_recv(&c);
	/* -ENOENT: absent, like any unknown name */
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(res_text(r, 0, buf, sizeof(buf)), "ns=ns1 app= epoch=1 name=" INBOUND);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ads_client_close(&c);
}
END_TEST

START_TEST(cached_until_model_changes)
{
	struct ads_client c;
	char buf[512], v1[64];
	Resp *r;

	client_open(&c, xds_server_port(srv));
	client_send(&c, "sidecar~10.0.0.1~echo-1.ns1~ns1.svc.cluster.local", "ns1", "echo", NULL, NULL, names_both, 2);
	r = must_recv(&c);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	client_send(&c, NULL, NULL, NULL, r->version_info, r->nonce, names_both, 2);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ck_assert_int_eq(atomic_load(&resolve_calls), 1);

	/* a publish without a model: the kept result is reused, nothing new */
	atomic_store(&epoch, 2);
	publish(0);
	must_be_quiet(&c);
	ck_assert_int_eq(atomic_load(&resolve_calls), 1);

	/* a new model: asked again; the content changed, so a push */
	publish(1);
	r = must_recv(&c);
	ck_assert_int_eq(atomic_load(&resolve_calls), 2);
	ck_assert_str_ne(r->version_info, v1);
	ck_assert_str_eq(res_text(r, 1, buf, sizeof(buf)), "ns=ns1 app=echo epoch=2 name=" INBOUND);
	client_send(&c, NULL, NULL, NULL, r->version_info, r->nonce, names_both, 2);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);

	/* a new model with the same result: asked, but the version (a content
	 * hash) is unchanged, so nothing is sent */
	publish(1);
	must_be_quiet(&c);
	ck_assert_int_eq(atomic_load(&resolve_calls), 3);
	ads_client_close(&c);
}
END_TEST

START_TEST(streams_resolved_apart)
{
	struct ads_client a, b;
	char buf[512];
	Resp *ra, *rb;

	client_open(&a, xds_server_port(srv));
	client_open(&b, xds_server_port(srv));
	client_send(&a, "sidecar~10.0.0.1~a.ns1~ns1.svc.cluster.local", "ns1", "alpha", NULL, NULL, names_both, 2);
	client_send(&b, "sidecar~10.0.0.2~b.ns2~ns2.svc.cluster.local", "ns2", "beta", NULL, NULL, names_both, 2);
	ra = must_recv(&a);
	rb = must_recv(&b);
	ck_assert_str_eq(res_text(ra, 1, buf, sizeof(buf)), "ns=ns1 app=alpha epoch=1 name=" INBOUND);
	ck_assert_str_eq(res_text(rb, 1, buf, sizeof(buf)), "ns=ns2 app=beta epoch=1 name=" INBOUND);
	ck_assert_str_ne(ra->version_info, rb->version_info);
	envoy__service__discovery__v3__discovery_response__free_unpacked(ra, NULL);
	envoy__service__discovery__v3__discovery_response__free_unpacked(rb, NULL);
	ads_client_close(&a);
	ads_client_close(&b);
}
END_TEST

START_TEST(replicas_share_one_build_keys_dropped)
{
	struct ads_client a1, a2, b;
	char buf[512];
	Resp *r;
	int i;

	client_open(&a1, xds_server_port(srv));
	client_open(&a2, xds_server_port(srv));
	client_open(&b, xds_server_port(srv));
	/* two replicas of one workload: same namespace and labels */
	client_send(&a1, "sidecar~10.0.0.1~a-1.ns1~ns1.svc.cluster.local", "ns1", "alpha", NULL, NULL, names_both, 2);
	r = must_recv(&a1);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	client_send(&a2, "sidecar~10.0.0.2~a-2.ns1~ns1.svc.cluster.local", "ns1", "alpha", NULL, NULL, names_both, 2);
	r = must_recv(&a2);
	ck_assert_str_eq(res_text(r, 1, buf, sizeof(buf)), "ns=ns1 app=alpha epoch=1 name=" INBOUND);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	/* built once for both */
	ck_assert_int_eq(atomic_load(&resolve_calls), 1);
	client_send(&b, "sidecar~10.0.0.3~b-1.ns2~ns2.svc.cluster.local", "ns2", "beta", NULL, NULL, names_both, 2);
	r = must_recv(&b);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ck_assert_int_eq(atomic_load(&resolve_calls), 2);
	ck_assert_uint_eq(stage_keys(), 2);
	ck_assert_uint_eq(xds_server_proxy_keys(srv), 2);

	/* one replica gone: its key stays for the other */
	ads_client_close(&a1);
	ads_client_close(&b);
	for (i = 0; i < WAIT_MS / 10 && (stage_keys() != 1 || xds_server_proxy_keys(srv) != 1); i++)
		usleep(10000);
	/* the cache holds no key that no current stream uses */
	ck_assert_uint_eq(stage_keys(), 1);
	ck_assert_uint_eq(xds_server_proxy_keys(srv), 1);
	{
		struct cfg_kv kv = { .key = "app", .value = "alpha" };
		struct cfg_labels l = { .v = &kv, .n = 1 };
		char *key = NULL;
		bool has;

		ck_assert_int_eq(xds_proxy_key(XDS_FLAVOUR_PROXYLESS, "ns1", &l, &key), 0);
		pthread_mutex_lock(&stage_lock);
		has = push_stage_has_key(stage, key);
		pthread_mutex_unlock(&stage_lock);
		free(key);
		ck_assert(has);
	}
	ads_client_close(&a2);
	for (i = 0; i < WAIT_MS / 10 && stage_keys() != 0; i++)
		usleep(10000);
	ck_assert_uint_eq(stage_keys(), 0);
	ck_assert_uint_eq(xds_server_proxy_keys(srv), 0);
}
END_TEST

static Suite *resolve_suite(void)
{
	Suite *s = suite_create("xds_server_resolve");
	TCase *tc = tcase_create("resolve");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, resolved_with_node_namespace_and_labels);
	tcase_add_test(tc, namespace_from_node_id_and_unknown_names);
	tcase_add_test(tc, cached_until_model_changes);
	tcase_add_test(tc, streams_resolved_apart);
	tcase_add_test(tc, replicas_share_one_build_keys_dropped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed = testutil_run(resolve_suite());

	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
