/*
 * test_delta.c - Delta (incremental) ADS end to end, against a
 * DeltaAggregatedResources client written here on gRPC core (insecure
 * channel to 127.0.0.1, bidi call, packed DeltaDiscoveryRequests).  Every
 * wait is bounded by a deadline; "nothing arrives" is asserted by a
 * bounded wait that must time out.
 */
#include "controlplane/xds/server.h"

#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
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
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define URL_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define URL_EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define NAME_A "outbound|80||a"
#define NAME_B "outbound|80||b"

/* Bounded waits. */
#define WAIT_MS 5000      /* something must arrive within this */
#define QUIET_MS 300      /* nothing may arrive within this */
#define TOKEN_CAP 64      /* versions and nonces kept by the tests */

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse Resp;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry InitEntry;

/* One DeltaDiscoveryRequest, as the tests describe it. */
struct dreq {
	const char *node_id;          /* NULL: no node */
	const char *type_url;
	const char *const *sub;
	size_t nsub;
	const char *const *unsub;
	size_t nunsub;
	const char *const *init_names; /* initial_resource_versions */
	const char *const *init_versions;
	size_t ninit;
	const char *nonce;
	const char *error;
};

static void client_open(struct ads_client *c, int port)
{
	ads_client_open(c, port, DELTA);
}

#define INIT_MAX 8

static void client_send(struct ads_client *c, const struct dreq *d)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	struct ads_client_node node;
	Google__Rpc__Status err = GOOGLE__RPC__STATUS__INIT;
	InitEntry ie[INIT_MAX], *iep[INIT_MAX];
	uint8_t *wire;
	size_t len, i;

	ck_assert_uint_le(d->ninit, INIT_MAX);
	if (d->node_id)
		req.node = ads_client_node_init(&node, d->node_id);
	req.type_url = (char *)d->type_url;
	req.resource_names_subscribe = (char **)d->sub;
	req.n_resource_names_subscribe = d->nsub;
	req.resource_names_unsubscribe = (char **)d->unsub;
	req.n_resource_names_unsubscribe = d->nunsub;
	for (i = 0; i < d->ninit; i++) {
		envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(&ie[i]);
		ie[i].key = (char *)d->init_names[i];
		ie[i].value = (char *)d->init_versions[i];
		iep[i] = &ie[i];
	}
	req.initial_resource_versions = iep;
	req.n_initial_resource_versions = d->ninit;
	req.response_nonce = (char *)(d->nonce ? d->nonce : "");
	if (d->error) {
		err.code = 3;
		err.message = (char *)d->error;
		req.error_detail = &err;
	}
	len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	envoy__service__discovery__v3__delta_discovery_request__pack(&req, wire);
	ck_assert_int_eq(ads_client_send_raw(c, wire, len), 0);
	free(wire);
}

/* ACK the response r (nonce only: Delta requests carry no version). */
static void client_ack(struct ads_client *c, const Resp *r)
{
	struct dreq d = { .type_url = r->type_url, .nonce = r->nonce };

	client_send(c, &d);
}

/* The next response within ms, or NULL on timeout or end of stream. */
static Resp *client_recv(struct ads_client *c, int ms)
{
	grpc_slice s;
	Resp *resp;

	if (ads_client_recv_raw(c, ms, &s) < 0)
		return NULL;
	resp = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, GRPC_SLICE_LENGTH(s),
									       GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static Resp *must_recv_at(struct ads_client *c, int line)
{
	Resp *r = client_recv(c, WAIT_MS);

	ck_assert_msg(r != NULL, "line %d: no response within %d ms", line, WAIT_MS);
	return r;
}
#define must_recv(c) must_recv_at((c), __LINE__)

static void must_be_quiet_at(struct ads_client *c, int line)
{
	Resp *r = client_recv(c, QUIET_MS);

	ck_assert_msg(r == NULL, "line %d: unexpected response: type %s, %zu resources, %zu removed", line,
		      r ? r->type_url : "", r ? r->n_resources : 0, r ? r->n_removed_resources : 0);
}
#define must_be_quiet(c) must_be_quiet_at((c), __LINE__)

static void resp_free(Resp *r)
{
	if (r)
		envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
}

/* The resource named name in r, or NULL. */
static const Envoy__Service__Discovery__V3__Resource *resp_find(const Resp *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_resources; i++)
		if (strcmp(r->resources[i]->name, name) == 0)
			return r->resources[i];
	return NULL;
}

static int resp_removed(const Resp *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_removed_resources; i++)
		if (strcmp(r->removed_resources[i], name) == 0)
			return 1;
	return 0;
}

/* The payload of r's resource name is exactly payload. */
static void assert_payload(const Resp *r, const char *name, const char *payload)
{
	const Envoy__Service__Discovery__V3__Resource *res = resp_find(r, name);

	ck_assert_msg(res != NULL, "%s missing", name);
	ck_assert_ptr_nonnull(res->resource);
	ck_assert_str_eq(res->resource->type_url, r->type_url);
	ck_assert_uint_eq(res->resource->value.len, strlen(payload));
	ck_assert_int_eq(memcmp(res->resource->value.data, payload, strlen(payload)), 0);
	ck_assert_uint_eq(strlen(res->version), 16);
}

/* ------------------------------------------------------------------ */

static struct xds_server *srv;
static int port;

static void setup(void)
{
	ads_test_server_start(&srv, &port);
}

static void teardown(void)
{
	ads_test_server_stop(&srv);
}

/* Clusters and endpoints a and b (b absent when tag_b is NULL), listeners
 * l1, l2 and, with extra_listener, l3; the tags go into the payloads. */
static void publish3(const char *tag_a, const char *tag_b, int extra_listener)
{
	struct xds_snapshot *s = xds_snapshot_new();
	char buf[64];

	snprintf(buf, sizeof(buf), "cluster-a-%s", tag_a);
	xds_snapshot_add(s, XDS_CLUSTER, NAME_A, (const uint8_t *)buf, strlen(buf));
	snprintf(buf, sizeof(buf), "eds-a-%s", tag_a);
	xds_snapshot_add(s, XDS_ENDPOINT, NAME_A, (const uint8_t *)buf, strlen(buf));
	if (tag_b) {
		snprintf(buf, sizeof(buf), "cluster-b-%s", tag_b);
		xds_snapshot_add(s, XDS_CLUSTER, NAME_B, (const uint8_t *)buf, strlen(buf));
		snprintf(buf, sizeof(buf), "eds-b-%s", tag_b);
		xds_snapshot_add(s, XDS_ENDPOINT, NAME_B, (const uint8_t *)buf, strlen(buf));
	}
	xds_snapshot_add(s, XDS_LISTENER, "l1", (const uint8_t *)"L1", 2);
	xds_snapshot_add(s, XDS_LISTENER, "l2", (const uint8_t *)"L2", 2);
	if (extra_listener)
		xds_snapshot_add(s, XDS_LISTENER, "l3", (const uint8_t *)"L3", 2);
	xds_snapshot_seal(s);
	xds_server_publish(srv, s);
	xds_snapshot_unref(s);
}

static void publish(const char *tag_a, const char *tag_b)
{
	publish3(tag_a, tag_b, 0);
}

/* Poll syncz (bounded) until it contains every needle. */
static int syncz_wait(const char *n1, const char *n2)
{
	struct timespec start, now, d = { 0, 10 * 1000 * 1000 };
	struct mesh_buf b;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		mesh_buf_init(&b, 1 << 20);
		ck_assert_int_eq(xds_server_syncz(srv, &b), 0);
		if (strstr(b.data, n1) && (!n2 || strstr(b.data, n2))) {
			mesh_buf_cleanup(&b);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > WAIT_MS / 1000) {
			fprintf(stderr, "syncz: %s\n", b.data);
			mesh_buf_cleanup(&b);
			return 0;
		}
		mesh_buf_cleanup(&b);
		nanosleep(&d, NULL);
	}
}

static const char *const names_a[] = { NAME_A };
static const char *const names_b[] = { NAME_B };
static const char *const names_ab[] = { NAME_A, NAME_B };
static const char *const names_a_missing[] = { NAME_A, "does-not-exist" };
static const char *const names_star[] = { "*" };

/* Subscribe to EDS a and b on a new stream; return the first response's
 * versions of a and b, ACKed. */
static void open_eds_ab(struct ads_client *c, const char *node, char va[TOKEN_CAP], char vb[TOKEN_CAP])
{
	struct dreq d = { .node_id = node, .type_url = URL_EDS, .sub = names_ab, .nsub = 2 };
	Resp *r;

	client_open(c, port);
	client_send(c, &d);
	r = must_recv(c);
	ck_assert_uint_eq(r->n_resources, 2);
	assert_payload(r, NAME_A, "eds-a-1");
	assert_payload(r, NAME_B, "eds-b-1");
	snprintf(va, TOKEN_CAP, "%s", resp_find(r, NAME_A)->version);
	snprintf(vb, TOKEN_CAP, "%s", resp_find(r, NAME_B)->version);
	client_ack(c, r);
	resp_free(r);
}

START_TEST(subscribe_gets_only_named)
{
	struct dreq d = { .node_id = "node-d1", .type_url = URL_EDS, .sub = names_a_missing, .nsub = 2 };
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_EDS);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_A, "eds-a-1");
	/* a name that never existed is not reported removed */
	ck_assert_uint_eq(r->n_removed_resources, 0);
	ck_assert_uint_eq(strlen(r->system_version_info), 16);
	ck_assert_uint_gt(strlen(r->nonce), 0);
	client_ack(&c, r);
	resp_free(r);
	ck_assert(syncz_wait("\"proxy\":\"node-d1\"", "\"delta\":true"));
	ck_assert(syncz_wait("\"state\":\"SYNCED\"", "\"eds\":{"));
	must_be_quiet(&c);
	ads_client_close(&c);
}
END_TEST

START_TEST(change_sends_only_changed)
{
	struct ads_client c;
	char va[TOKEN_CAP], vb[TOKEN_CAP];
	Resp *r;

	publish("1", "1");
	open_eds_ab(&c, "node-d2", va, vb);
	/* the same content again: nothing */
	publish("1", "1");
	must_be_quiet(&c);
	/* a changes: only a, with a new version */
	publish("2", "1");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_A, "eds-a-2");
	ck_assert_str_ne(resp_find(r, NAME_A)->version, va);
	ck_assert_uint_eq(r->n_removed_resources, 0);
	client_ack(&c, r);
	resp_free(r);
	must_be_quiet(&c);
	ads_client_close(&c);
}
END_TEST

START_TEST(delete_sends_removed)
{
	struct dreq d = { .node_id = "node-d3", .type_url = URL_CDS };
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	/* legacy wildcard: an empty first CDS request */
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	client_ack(&c, r);
	resp_free(r);
	publish("1", NULL);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 0);
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert(resp_removed(r, NAME_B));
	client_ack(&c, r);
	resp_free(r);
	/* it comes back: sent again */
	publish("1", "1");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_B, "cluster-b-1");
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(unsubscribe_stops_updates)
{
	struct dreq un = { .type_url = URL_EDS, .unsub = names_b, .nunsub = 1 };
	struct dreq re = { .type_url = URL_EDS, .sub = names_b, .nsub = 1 };
	struct ads_client c;
	char va[TOKEN_CAP], vb[TOKEN_CAP];
	Resp *r;

	publish("1", "1");
	open_eds_ab(&c, "node-d4", va, vb);
	client_send(&c, &un);
	/* nothing changed for a, and no removal for what the client dropped */
	must_be_quiet(&c);
	publish("1", "2");
	must_be_quiet(&c);
	/* deleting b says nothing either: the client does not hold it */
	publish("1", NULL);
	must_be_quiet(&c);
	publish("2", "2");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_A, "eds-a-2");
	ck_assert_uint_eq(r->n_removed_resources, 0);
	client_ack(&c, r);
	resp_free(r);
	/* subscribing again brings b at its current content */
	client_send(&c, &re);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_B, "eds-b-2");
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(initial_versions_avoid_resend)
{
	const char *init_names[3] = { NAME_A, NAME_B, "outbound|80||gone" };
	const char *init_versions[3];
	struct dreq d = { .node_id = "node-d5", .type_url = URL_EDS, .sub = names_ab, .nsub = 2,
			  .init_names = init_names, .init_versions = init_versions };
	struct ads_client c;
	char va[TOKEN_CAP], vb[TOKEN_CAP];
	Resp *r;

	publish("1", "1");
	open_eds_ab(&c, "node-d5", va, vb);
	ads_client_close(&c);

	/* reconnect holding both at their versions: nothing to resend */
	init_versions[0] = va;
	init_versions[1] = vb;
	d.ninit = 2;
	client_open(&c, port);
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 0);
	ck_assert_uint_eq(r->n_removed_resources, 0);
	ck_assert_uint_eq(strlen(r->system_version_info), 16);
	client_ack(&c, r);
	resp_free(r);
	must_be_quiet(&c);
	/* and later changes still arrive */
	publish("1", "2");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_B, "eds-b-2");
	resp_free(r);
	ads_client_close(&c);

	/* reconnect with a stale b and a resource that is gone */
	init_versions[1] = "0123456789abcdef";
	init_versions[2] = "not-one-of-ours";
	d.ninit = 3;
	client_open(&c, port);
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_B, "eds-b-2");
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert(resp_removed(r, "outbound|80||gone"));
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(nack_recorded_not_resent)
{
	struct dreq d = { .node_id = "node-d6", .type_url = URL_CDS };
	struct dreq nack = { .type_url = URL_CDS, .error = "cluster-a is not valid" };
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	client_ack(&c, r);
	resp_free(r);
	publish("2", "1");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, NAME_A, "cluster-a-2");
	nack.nonce = r->nonce;
	client_send(&c, &nack);
	resp_free(r);
	ck_assert(syncz_wait("\"state\":\"ERROR\"", "\"error\":\"cluster-a is not valid\""));
	/* the refused version is not sent again, not even on an unrelated publish */
	must_be_quiet(&c);
	publish("2", "1");
	must_be_quiet(&c);
	/* new versions of a (fixed) and b both go out */
	publish("3", "2");
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	assert_payload(r, NAME_A, "cluster-a-3");
	assert_payload(r, NAME_B, "cluster-b-2");
	client_ack(&c, r);
	resp_free(r);
	ck_assert(syncz_wait("\"state\":\"SYNCED\"", NULL));
	ads_client_close(&c);
}
END_TEST

START_TEST(wildcard_subscribe_and_leave)
{
	struct dreq lds = { .node_id = "node-d7", .type_url = URL_LDS };
	struct dreq eds = { .type_url = URL_EDS, .sub = names_star, .nsub = 1 };
	struct dreq leave = { .type_url = URL_EDS, .unsub = names_star, .nunsub = 1 };
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, &lds);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_LDS);
	ck_assert_uint_eq(r->n_resources, 2);
	client_ack(&c, r);
	resp_free(r);
	/* "*" works for EDS too */
	client_send(&c, &eds);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_EDS);
	ck_assert_uint_eq(r->n_resources, 2);
	client_ack(&c, r);
	resp_free(r);
	ck_assert(syncz_wait("\"wildcard\":true", NULL));
	/* a new listener: only it */
	publish3("1", "1", 1);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_LDS);
	ck_assert_uint_eq(r->n_resources, 1);
	assert_payload(r, "l3", "L3");
	client_ack(&c, r);
	resp_free(r);
	/* leaving the EDS wildcard: later endpoint changes are not sent */
	client_send(&c, &leave);
	must_be_quiet(&c);
	publish3("2", "2", 1);
	must_be_quiet(&c);
	ads_client_close(&c);
}
END_TEST

START_TEST(garbage_invalid_argument_then_serving)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12 };
	struct dreq d = { .node_id = "node-after", .type_url = URL_CDS };
	struct ads_client c;
	Resp *r;
	char *msg;

	publish("1", "1");
	client_open(&c, port);
	ck_assert_int_eq(ads_client_send_raw(&c, garbage, sizeof(garbage)), 0);
	ck_assert_int_eq(ads_client_status(&c), GRPC_STATUS_INVALID_ARGUMENT);
	msg = grpc_slice_to_c_string(c.details);
	ck_assert_ptr_nonnull(strstr(msg, "malformed DeltaDiscoveryRequest"));
	gpr_free(msg);
	ads_client_close(&c);
	client_open(&c, port);
	client_send(&c, &d);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(node_once_and_config_dump)
{
	struct dreq cds = { .node_id = "node-d9", .type_url = URL_CDS, .sub = names_a, .nsub = 1 };
	struct dreq eds = { .type_url = URL_EDS, .sub = names_a, .nsub = 1 };
	struct ads_client c;
	struct mesh_buf b;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, &cds);
	r = must_recv(&c);
	client_ack(&c, r);
	resp_free(r);
	/* no node on later requests: the stream keeps the first one */
	client_send(&c, &eds);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_EDS);
	client_ack(&c, r);
	resp_free(r);
	ck_assert(syncz_wait("\"proxy\":\"node-d9\"", "\"eds\":{"));
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(xds_server_config_dump(srv, "node-d9", &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "ClustersConfigDump"));
	ck_assert_ptr_nonnull(strstr(b.data, "EndpointsConfigDump"));
	mesh_buf_cleanup(&b);
	ads_client_close(&c);
}
END_TEST

/* Per-proxy resources: names under "inbound/" resolve to a payload naming
 * the proxy's flavour (what its key holds besides namespace and labels);
 * anything else is unknown. */
static int resolve_inbound(void *ctx, const struct model *m, const struct push_workload *proxy, enum xds_type t,
			   const char *name, uint8_t **data, size_t *len)
{
	char buf[256];
	int n;

	(void)ctx;
	(void)m;
	if (t != XDS_LISTENER || strncmp(name, "inbound/", 8) != 0)
		return -ENOENT;
	n = snprintf(buf, sizeof(buf), "%s for %s", name, xds_flavour_name(proxy->flavour));
	*data = malloc((size_t)n);
	if (!*data)
		return -ENOMEM;
	memcpy(*data, buf, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static struct push_stage *stage;

/* Play meshd's config thread: build what the xDS thread asked for.  The
 * xDS thread posts one request per name it lacks, so keep taking them
 * until none has come for a while (taking only the first batch left the
 * others unanswered when the stage woke between two posts). */
static void stage_pump(void)
{
	struct pollfd p = { .fd = push_stage_fd(stage), .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, WAIT_MS), 1);
	ck_assert_int_gt(push_stage_handle(stage), 0);
	while (poll(&p, 1, 500) == 1)
		(void)push_stage_handle(stage);
}

static void publish_with_model(void)
{
	struct cfg_store *cs = cfg_store_new();
	struct cfg_snapshot *cfg;
	struct xds_snapshot *s = xds_snapshot_new();
	struct model *m;

	ck_assert_ptr_nonnull(cs);
	cfg = cfg_store_snapshot(cs);
	ck_assert_ptr_nonnull(cfg);
	m = model_build(cfg, "cluster.local", "istio-system");
	ck_assert_ptr_nonnull(m);
	xds_snapshot_add(s, XDS_LISTENER, "l1", (const uint8_t *)"L1", 2);
	xds_snapshot_seal(s);
	push_stage_publish(stage, s, m);
	xds_snapshot_unref(s);
	model_unref(m);
	cfg_snapshot_unref(cfg);
	cfg_store_free(cs);
}

START_TEST(resolver_feeds_delta)
{
	static const char *const names[] = { "l1", "inbound/10.0.0.1:8080", "elsewhere" };
	struct xds_server_config cfg = { .addr = "127.0.0.1:0", .want = push_stage_want };
	struct push_stage_config pc = { .build = resolve_inbound };
	struct dreq d = { .node_id = "node-r1", .type_url = URL_LDS, .sub = names, .nsub = 3 };
	struct ads_client c;
	Resp *r;

	/* this test's server asks a push stage for per-proxy resources */
	ck_assert_int_eq(push_stage_new(&pc, &stage), 0);
	cfg.want_ctx = stage;
	xds_server_stop(srv);
	ck_assert_int_eq(xds_server_start(&cfg, &srv), 0);
	push_stage_set_server(stage, srv);
	port = xds_server_port(srv);
	publish_with_model();
	client_open(&c, port);
	client_send(&c, &d);
	/* the names the snapshot lacks are asked of the stage: build them */
	stage_pump();
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	assert_payload(r, "l1", "L1");
	assert_payload(r, "inbound/10.0.0.1:8080", "inbound/10.0.0.1:8080 for proxyless");
	client_ack(&c, r);
	resp_free(r);
	/* a new model with the same result: nothing to send */
	publish_with_model();
	must_be_quiet(&c);
	ads_client_close(&c);
	xds_server_stop(srv);
	srv = NULL;
	push_stage_free(stage);
	stage = NULL;
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_delta");
	TCase *tc = tcase_create("delta");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, subscribe_gets_only_named);
	tcase_add_test(tc, change_sends_only_changed);
	tcase_add_test(tc, delete_sends_removed);
	tcase_add_test(tc, unsubscribe_stops_updates);
	tcase_add_test(tc, initial_versions_avoid_resend);
	tcase_add_test(tc, nack_recorded_not_resent);
	tcase_add_test(tc, wildcard_subscribe_and_leave);
	tcase_add_test(tc, garbage_invalid_argument_then_serving);
	tcase_add_test(tc, node_once_and_config_dump);
	tcase_add_test(tc, resolver_feeds_delta);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
