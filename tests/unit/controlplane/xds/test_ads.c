/*
 * test_ads.c - the ADS protocol core (controlplane/xds/ads.c) driven
 * directly, with no gRPC: requests are protobuf-c structs (or their bytes)
 * fed to a core stream, responses are what xds_ads_stream_next() returns,
 * unpacked here.  Resources are opaque bytes: the core never decodes them.
 * Envoy's xDS protocol doc is the reference for ACK/NACK, nonces, Delta.
 */
#include "controlplane/xds/ads.h"

#include "common/buf.h"
#include "common/hash.h"
#include "controlplane/metrics/metrics.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define URL_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define URL_EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DResp;

static struct xds_ads *ads;

static void setup(void)
{
	ck_assert_int_eq(xds_ads_new(NULL, &ads), 0);
}

static void teardown(void)
{
	xds_ads_free(ads);
	ads = NULL;
}

/* A snapshot with resources "NAME=CONTENT" of type t (NULL-terminated). */
static struct xds_snapshot *snap_of(enum xds_type t, const char *const *res)
{
	struct xds_snapshot *s = xds_snapshot_new();
	size_t i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; res && res[i]; i++) {
		const char *eq = strchr(res[i], '=');
		char name[64];

		ck_assert_ptr_nonnull(eq);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - res[i]), res[i]);
		ck_assert_int_eq(xds_snapshot_add(s, t, name, (const uint8_t *)eq + 1, strlen(eq + 1)), 0);
	}
	xds_snapshot_seal(s);
	return s;
}

static void publish(enum xds_flavour f, enum xds_type t, const char *const *res)
{
	xds_ads_publish(ads, f, snap_of(t, res), NULL);
}

/* A Node: id, and metadata GENERATOR=generator unless generator is NULL. */
struct node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md;
	Google__Protobuf__Struct__FieldsEntry fe, *fes[1];
	Google__Protobuf__Value v;
};

static Envoy__Config__Core__V3__Node *node_init(struct node *n, const char *id, const char *generator)
{
	envoy__config__core__v3__node__init(&n->node);
	n->node.id = (char *)id;
	n->node.cluster = "test-cluster";
	if (generator) {
		google__protobuf__struct__init(&n->md);
		google__protobuf__struct__fields_entry__init(&n->fe);
		google__protobuf__value__init(&n->v);
		n->v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		n->v.string_value = (char *)generator;
		n->fe.key = "GENERATOR";
		n->fe.value = &n->v;
		n->fes[0] = &n->fe;
		n->md.fields = n->fes;
		n->md.n_fields = 1;
		n->node.metadata = &n->md;
	}
	return &n->node;
}

/* A SotW request; a proxyless node (id) when id is set; error: a NACK. */
static void sotw(struct xds_ads_stream *st, const char *id, const char *url, const char *version, const char *nonce,
		 const char *const *names, size_t n, const char *error)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct node nd;

	if (id)
		req.node = node_init(&nd, id, "grpc");
	req.type_url = (char *)url;
	req.version_info = (char *)(version ? version : "");
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names = (char **)names;
	req.n_resource_names = n;
	if (error) {
		status.code = 3;
		status.message = (char *)error;
		req.error_detail = &status;
	}
	xds_ads_stream_request(st, &req);
}

/* The next SotW response, or NULL when the core has none. */
static Resp *next_sotw(struct xds_ads_stream *st)
{
	struct xds_ads_response r;
	Resp *resp;
	int rc = xds_ads_stream_next(st, &r);

	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, r.len, r.data);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	ck_assert_str_eq(resp->type_url, xds_type_url(r.type));
	return resp;
}

static DResp *next_delta(struct xds_ads_stream *st)
{
	struct xds_ads_response r;
	DResp *resp;
	int rc = xds_ads_stream_next(st, &r);

	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	resp = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, r.len, r.data);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static void resp_free(Resp *r)
{
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

static void dresp_free(DResp *r)
{
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
}

/* Resource i's bytes as a string (they are text here). */
static int payload_is(const Google__Protobuf__Any *a, const char *want)
{
	return a && a->value.len == strlen(want) && memcmp(a->value.data, want, a->value.len) == 0;
}

static int delta_has(const DResp *r, const char *name, const char *content)
{
	size_t i;

	for (i = 0; i < r->n_resources; i++)
		if (strcmp(r->resources[i]->name, name) == 0)
			return payload_is(r->resources[i]->resource, content);
	return 0;
}

/* /debug/syncz of the core contains a (and b unless NULL). */
static int syncz_has(const char *a, const char *b)
{
	struct mesh_buf buf;
	int ok;

	mesh_buf_init(&buf, 1 << 20);
	ck_assert_int_eq(xds_ads_syncz(ads, &buf), 0);
	ok = strstr(buf.data, a) && (!b || strstr(buf.data, b));
	if (!ok)
		fprintf(stderr, "syncz: %s\n", buf.data);
	mesh_buf_cleanup(&buf);
	return ok;
}

static struct xds_ads_stream *stream_new(int delta)
{
	struct xds_ads_stream *st = NULL;

	ck_assert_int_eq(xds_ads_stream_new(ads, delta, "127.0.0.1:1234", NULL, &st), 0);
	return st;
}

static const char *const cds_ab[] = { "a=A1", "b=B1", NULL };
static const char *const cds_ab2[] = { "a=A1", "b=B2", NULL };
static const char *const cds_ab3[] = { "a=A3", "b=B3", NULL };

/* ------------------------------------------------------------------ */
/* state of the world */

START_TEST(sotw_first_request_gets_subscribed_resources)
{
	struct xds_ads_stream *st;
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	st = stream_new(0);
	ck_assert_ptr_null(next_sotw(st));
	sotw(st, "node-1", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert(payload_is(r->resources[0], "A1"));
	ck_assert(payload_is(r->resources[1], "B1"));
	ck_assert_uint_eq(strlen(r->version_info), 16);
	ck_assert_str_ne(r->nonce, "");
	ck_assert_str_eq(r->control_plane->identifier, "meshd");
	resp_free(r);
	/* one response per request */
	ck_assert_ptr_null(next_sotw(st));
	ck_assert(syncz_has("\"proxy\":\"node-1\",\"flavour\":\"proxyless\"", "\"cds\":{"));
	ck_assert_str_eq(xds_ads_stream_node_id(st), "node-1");
	ck_assert_int_eq(xds_ads_stream_flavour(st), XDS_FLAVOUR_PROXYLESS);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_ack_echoes_version_and_is_not_answered)
{
	struct xds_ads_stream *st = stream_new(0);
	char v1[32], n1[32], want[96];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	sotw(st, "node-ack", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	ck_assert(syncz_has("\"state\":\"STALE\"", NULL));
	sotw(st, NULL, URL_CDS, v1, n1, NULL, 0, NULL);
	ck_assert_ptr_null(next_sotw(st));
	snprintf(want, sizeof(want), "\"acked_version\":\"%s\",\"state\":\"SYNCED\"", v1);
	ck_assert(syncz_has(want, NULL));
	/* the same content again (a new snapshot object): nothing to push */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	ck_assert_ptr_null(next_sotw(st));
	/* changed content: pushed, with a new version */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab2);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_ne(r->version_info, v1);
	ck_assert_str_ne(r->nonce, n1);
	ck_assert(payload_is(r->resources[1], "B2"));
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_nack_recorded_not_resent_until_change)
{
	struct xds_ads_stream *st = stream_new(0);
	char v1[32], n1[32], v2[32], n2[32];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	sotw(st, "node-nack", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	sotw(st, NULL, URL_CDS, v1, n1, NULL, 0, NULL);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab2);
	r = next_sotw(st);
	snprintf(v2, sizeof(v2), "%s", r->version_info);
	snprintf(n2, sizeof(n2), "%s", r->nonce);
	resp_free(r);
	/* NACK: the client keeps v1 and says why */
	sotw(st, NULL, URL_CDS, v1, n2, NULL, 0, "cluster b: bad lb policy");
	ck_assert_ptr_null(next_sotw(st));
	ck_assert(syncz_has("\"state\":\"ERROR\",\"error\":\"cluster b: bad lb policy\"", NULL));
	/* the refused content is not pushed again ... */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab2);
	ck_assert_ptr_null(next_sotw(st));
	/* ... new content is */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab3);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_ne(r->version_info, v2);
	ck_assert(payload_is(r->resources[0], "A3"));
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

/* A push sends clusters before listeners (Istio's PushOrder: CDS, EDS,
 * LDS, RDS, SDS), so a listener naming a new cluster never reaches a proxy
 * before that cluster: a connection to the new port in between would find
 * no cluster.  Queued in type order (listeners first), it flaked an egress
 * test that connected as soon as the listener appeared. */
START_TEST(sotw_push_sends_clusters_before_listeners)
{
	struct xds_ads_stream *st = stream_new(0);
	struct xds_snapshot *s = xds_snapshot_new();
	Resp *r;

	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "l", (const uint8_t *)"L1", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_CLUSTER, "c", (const uint8_t *)"C1", 2), 0);
	xds_snapshot_seal(s);
	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, s, NULL);
	sotw(st, "node-order", URL_LDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	sotw(st, NULL, URL_LDS, r->version_info, r->nonce, NULL, 0, NULL);
	resp_free(r);
	sotw(st, NULL, URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	sotw(st, NULL, URL_CDS, r->version_info, r->nonce, NULL, 0, NULL);
	resp_free(r);
	ck_assert_ptr_null(next_sotw(st));
	/* both change in one push */
	s = xds_snapshot_new();
	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "l", (const uint8_t *)"L2", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_CLUSTER, "c", (const uint8_t *)"C2", 2), 0);
	xds_snapshot_seal(s);
	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, s, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->type_url, URL_CDS);
	resp_free(r);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->type_url, URL_LDS);
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

/* A stream whose resources did not change in a publish is not pushed, and
 * lets go of the snapshot it was last sent: otherwise each publish left a
 * whole snapshot alive for as long as some stream's type stayed unchanged
 * (meshd's RSS grew by about a snapshot per change at 2,000 proxies). */
/* A stream holds the resources it was sent, never the snapshot they came
 * in: an older snapshot is freed once meshd publishes another, and an
 * unchanged stream moves to the current snapshot's objects, so the older
 * copies are freed too. */
START_TEST(sotw_unchanged_stream_lets_go_of_old_snapshot)
{
	static const char *const cds_b2[] = { "a=A1", "b=B2", NULL };
	struct xds_ads_stream *st = stream_new(0);
	struct xds_snapshot *s1 = snap_of(XDS_CLUSTER, cds_ab);
	const struct xds_resource *a1, *a2;
	Resp *r;

	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, xds_snapshot_ref(s1), NULL);
	sotw(st, "node-pin", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	sotw(st, NULL, URL_CDS, r->version_info, r->nonce, NULL, 0, NULL);
	resp_free(r);
	ck_assert_ptr_null(next_sotw(st));
	/* a1: held by s1 and by the stream (sent), and now by this test */
	a1 = xds_resource_ref(xds_snapshot_find(s1, XDS_CLUSTER, "a"));
	ck_assert_ptr_nonnull(a1);
	ck_assert_uint_eq(mesh_refcount_get(&a1->refs), 3);
	/* a snapshot is held by the core alone, never by a stream */
	ck_assert_uint_eq(mesh_refcount_get(&s1->refs), 2);
	/* the same clusters, as fresh copies in a new snapshot: nothing is
	 * sent, s1 is ours alone, and the stream moved to the new copies */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	ck_assert_ptr_null(next_sotw(st));
	ck_assert_uint_eq(mesh_refcount_get(&s1->refs), 1);
	xds_snapshot_unref(s1);
	ck_assert_uint_eq(mesh_refcount_get(&a1->refs), 1);
	xds_resource_unref(a1);
	/* what the stream was sent is still shown */
	ck_assert(syncz_has("\"state\":\"SYNCED\"", NULL));
	/* a change: the stream is sent the new b and holds the current a */
	a2 = xds_resource_ref(xds_snapshot_find(xds_ads_snapshot(ads, XDS_FLAVOUR_PROXYLESS), XDS_CLUSTER, "a"));
	ck_assert_uint_eq(mesh_refcount_get(&a2->refs), 3);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_b2);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	/* the older snapshot is gone; only this test holds its a */
	ck_assert_uint_eq(mesh_refcount_get(&a2->refs), 1);
	xds_resource_unref(a2);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_stale_nonce_ignored)
{
	static const char *const eds_ab[] = { "a=A1", "b=B1", NULL }, *const eds_ab2[] = { "a=A2", "b=B2", NULL };
	static const char *const names_ab[] = { "a", "b" }, *const only_a[] = { "a" };
	struct xds_ads_stream *st = stream_new(0);
	char v1[32], n1[32], v2[32], n2[32];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds_ab);
	sotw(st, "node-stale", URL_EDS, NULL, NULL, names_ab, 2, NULL);
	r = next_sotw(st);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds_ab2);
	r = next_sotw(st);
	snprintf(v2, sizeof(v2), "%s", r->version_info);
	snprintf(n2, sizeof(n2), "%s", r->nonce);
	resp_free(r);
	/* answers to the older response: neither the names nor the NACK count */
	sotw(st, NULL, URL_EDS, v1, n1, only_a, 1, NULL);
	sotw(st, NULL, URL_EDS, v1, "bogus", NULL, 0, "stale error");
	ck_assert_ptr_null(next_sotw(st));
	ck_assert(!syncz_has("stale error", NULL));
	/* the same change quoting the latest nonce is a new subscription */
	sotw(st, NULL, URL_EDS, v2, n2, only_a, 1, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(payload_is(r->resources[0], "A2"));
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_reconnect_with_version_gets_a_response)
{
	struct xds_ads_stream *st = stream_new(0);
	char v1[32], n1[32];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	sotw(st, "node-re", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	xds_ads_stream_free(st);
	/* A new stream quoting the version it holds (no nonce: the first
	 * request of a stream) is answered: the nonce is new, and Envoy's
	 * protocol has every first request answered.  Same content, same
	 * version: versions are content hashes. */
	st = stream_new(0);
	sotw(st, "node-re", URL_CDS, v1, NULL, NULL, 0, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->version_info, v1);
	ck_assert_str_ne(r->nonce, n1);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_subscription_change_answered)
{
	static const char *const eds[] = { "a=A1", "b=B1", NULL };
	static const char *const only_a[] = { "a" }, *const names_ab[] = { "b", "a", "a" };
	struct xds_ads_stream *st = stream_new(0);
	char v[32], n[32];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds);
	sotw(st, "node-sub", URL_EDS, NULL, NULL, only_a, 1, NULL);
	r = next_sotw(st);
	ck_assert_uint_eq(r->n_resources, 1);
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);
	/* ACK naming more resources (unsorted, duplicated): a new subscription */
	sotw(st, NULL, URL_EDS, v, n, names_ab, 3, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert(payload_is(r->resources[0], "A1"));
	ck_assert(payload_is(r->resources[1], "B1"));
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

/* A DiscoveryRequest's bytes (malloc'd, *len); err: an error_detail (a NACK). */
static uint8_t *sotw_pack(const char *id, const char *url, const char *version, const char *nonce,
			  const char *const *names, size_t n, const char *err, size_t *len)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct node nd;
	uint8_t *wire;

	if (id)
		req.node = node_init(&nd, id, "grpc");
	req.type_url = (char *)url;
	req.version_info = (char *)(version ? version : "");
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names = (char **)names;
	req.n_resource_names = n;
	if (err) {
		status.code = 3;
		status.message = (char *)err;
		req.error_detail = &status;
	}
	*len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(*len ? *len : 1);
	ck_assert_ptr_nonnull(wire);
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	return wire;
}

/* sotw() as bytes, through xds_ads_stream_recv() (and so its ACK fast path). */
static void sotw_wire(struct xds_ads_stream *st, const char *id, const char *url, const char *version,
		      const char *nonce, const char *const *names, size_t n)
{
	size_t len;
	uint8_t *wire = sotw_pack(id, url, version, nonce, names, n, NULL, &len);

	ck_assert_int_eq(xds_ads_stream_recv(st, wire, len), 0);
	free(wire);
}

/* Whether the bytes of that request reduce to a plain ACK under e
 * (xds_ads_ack_reduce, as server.c's cq thread calls it); *ack filled. */
static int reduces(const struct xds_ads_ack_expect *e, const char *id, const char *url, const char *version,
		   const char *nonce, const char *const *names, size_t n, const char *err, struct xds_ads_ack *ack)
{
	size_t len;
	uint8_t *wire = sotw_pack(id, url, version, nonce, names, n, err, &len);
	int r = xds_ads_ack_reduce(e, wire, len, ack);

	free(wire);
	return r;
}

/* The reduced request path (the transport reduces a plain ACK on arrival
 * and frees its bytes) keeps the protocol's behaviour: the same name set
 * is an ACK taken from the reduction; a changed set, a NACK or a Node is
 * not reduced and takes the full path (a new subscription, answered); a
 * reduction that no longer matches the stream ends it rather than guess. */
START_TEST(sotw_reduced_ack_keeps_behaviour)
{
	static const char *const eds[] = { "a=A1", "b=B1", "c=C1", NULL };
	static const char *const ab[] = { "a", "b" }, *const ac[] = { "a", "c" };
	struct xds_ads_stream *st = stream_new(0);
	struct xds_ads_ack_expect e, old;
	struct xds_ads_ack ack;
	enum xds_ads_status code;
	const char *msg;
	char v[32], n[32], want[96];
	size_t len;
	uint8_t *wire;
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds);
	/* before the first request (no Node yet): nothing is reduced */
	xds_ads_stream_ack_expect(st, &e);
	ck_assert_int_eq(e.ok, 0);
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, "", "x", ab, 2, NULL, &ack), 0);
	sotw_wire(st, "node-red", URL_EDS, NULL, NULL, ab, 2);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);

	/* the same name set: reduced, and taken as the ACK it is */
	xds_ads_stream_ack_expect(st, &e);
	ck_assert_int_eq(e.ok, 1);
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, v, n, ab, 2, NULL, &ack), 1);
	ck_assert_int_eq(ack.type, XDS_ENDPOINT);
	ck_assert_str_eq(ack.nonce, n);
	ck_assert_str_eq(ack.version, v);
	ck_assert_int_eq(xds_ads_stream_recv_ack(st, &ack), 0);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	ck_assert_ptr_null(next_sotw(st));
	snprintf(want, sizeof(want), "\"acked_version\":\"%s\",\"state\":\"SYNCED\"", v);
	ck_assert(syncz_has(want, NULL));

	/* not reduced: a NACK, a request carrying a Node, no nonce, another type */
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, v, n, ab, 2, "bad", &ack), 0);
	ck_assert_int_eq(reduces(&e, "node-red", URL_EDS, v, n, ab, 2, NULL, &ack), 0);
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, v, NULL, ab, 2, NULL, &ack), 0);
	ck_assert_int_eq(reduces(&e, NULL, URL_CDS, v, n, ab, 2, NULL, &ack), 0);

	/* a changed set (as many names): not reduced; its bytes take the
	 * full path, a new subscription answered */
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, v, n, ac, 2, NULL, &ack), 0);
	old = e;
	wire = sotw_pack(NULL, URL_EDS, v, n, ac, 2, NULL, &len);
	ck_assert_int_eq(xds_ads_stream_recv(st, wire, len), 0);
	free(wire);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert(payload_is(r->resources[0], "A1"));
	ck_assert(payload_is(r->resources[1], "C1"));
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);

	/* the new set's ACK reduces under the new expectation, not the old */
	xds_ads_stream_ack_expect(st, &e);
	ck_assert_int_eq(reduces(&e, NULL, URL_EDS, v, n, ac, 2, NULL, &ack), 1);
	ck_assert_int_eq(reduces(&old, NULL, URL_EDS, v, n, ac, 2, NULL, &ack), 0);
	/* an ACK reduced under a stale expectation (the old set) is refused:
	 * the stream ends instead of acking names it no longer holds */
	ck_assert_int_eq(reduces(&old, NULL, URL_EDS, v, n, ab, 2, NULL, &ack), 1);
	ck_assert_int_eq(xds_ads_stream_recv_ack(st, &ack), -EPROTO);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	ck_assert(xds_ads_stream_finishing(st, &code, &msg));
	ck_assert_int_eq(code, XDS_ADS_STATUS_INTERNAL);
	xds_ads_stream_free(st);
}
END_TEST

/* The ACK fast path (a hash of the names' bytes against the names held)
 * takes only ACKs that repeat the subscription: a changed one, even with
 * as many names, is still seen, and so are other orders and NACKs. */
START_TEST(sotw_ack_fast_path_sees_changed_names)
{
	static const char *const eds[] = { "a=A1", "b=B1", "c=C1", NULL };
	static const char *const eds2[] = { "a=A2", "b=B1", "c=C1", NULL };
	static const char *const ab[] = { "a", "b" }, *const ba[] = { "b", "a" }, *const ac[] = { "a", "c" };
	struct xds_ads_stream *st = stream_new(0);
	char v[32], n[32], want[96];
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds);
	sotw_wire(st, "node-fast", URL_EDS, NULL, NULL, ab, 2);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 0);
	/* the ACK repeating the names: taken from the bytes, recorded */
	sotw_wire(st, NULL, URL_EDS, v, n, ab, 2);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	ck_assert_ptr_null(next_sotw(st));
	snprintf(want, sizeof(want), "\"acked_version\":\"%s\",\"state\":\"SYNCED\"", v);
	ck_assert(syncz_has(want, NULL));
	/* the same names in another order: the full path, same subscription */
	sotw_wire(st, NULL, URL_EDS, v, n, ba, 2);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	ck_assert_ptr_null(next_sotw(st));
	/* as many names, one of them changed: a new subscription, answered */
	sotw_wire(st, NULL, URL_EDS, v, n, ac, 2);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 1);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert(payload_is(r->resources[0], "A1"));
	ck_assert(payload_is(r->resources[1], "C1"));
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);
	/* its ACK is fast again */
	sotw_wire(st, NULL, URL_EDS, v, n, ac, 2);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 2);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds2);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert(payload_is(r->resources[0], "A2"));
	/* the old nonce now: stale, ignored on the fast path as on the full one */
	sotw_wire(st, NULL, URL_EDS, v, n, ac, 2);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 3);
	ck_assert(syncz_has("\"state\":\"STALE\"", NULL));
	ck_assert_ptr_null(next_sotw(st));
	/* the latest nonce with one name fewer: a new subscription, answered */
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(n, sizeof(n), "%s", r->nonce);
	resp_free(r);
	sotw_wire(st, NULL, URL_EDS, v, n, ac, 1);
	ck_assert_uint_eq(xds_ads_stream_fast_acks(st), 3);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(payload_is(r->resources[0], "A2"));
	resp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(sotw_bytes_in_and_malformed_request)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	static const uint8_t garbage[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x' };
	struct xds_ads_stream *st = stream_new(0);
	enum xds_ads_status code;
	const char *msg;
	struct node nd;
	uint8_t *wire;
	size_t len;
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	req.node = node_init(&nd, "node-bytes", "grpc");
	req.type_url = URL_CDS;
	len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(len);
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	ck_assert_int_eq(xds_ads_stream_recv(st, wire, len), 0);
	free(wire);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	resp_free(r);
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 0);
	ck_assert_int_lt(xds_ads_stream_recv(st, garbage, sizeof(garbage)), 0);
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_INVALID_ARGUMENT);
	ck_assert_ptr_nonnull(strstr(msg, "DiscoveryRequest"));
	xds_ads_stream_free(st);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Delta */

static void delta(struct xds_ads_stream *st, const char *id, const char *url, const char *nonce,
		  const char *const *sub, size_t nsub, const char *const *unsub, size_t nunsub, const char *error)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct node nd;

	if (id)
		req.node = node_init(&nd, id, "grpc");
	req.type_url = (char *)url;
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names_subscribe = (char **)sub;
	req.n_resource_names_subscribe = nsub;
	req.resource_names_unsubscribe = (char **)unsub;
	req.n_resource_names_unsubscribe = nunsub;
	if (error) {
		status.message = (char *)error;
		req.error_detail = &status;
	}
	xds_ads_stream_delta_request(st, &req);
}

/* What a response's answer will weigh (xds_ads_stream_reply_hint): a SotW
 * subscription's names as the ACK encodes them (tag, length, bytes each),
 * nothing for a wildcard, nothing once sent, nothing for Delta. */
START_TEST(reply_hint_is_the_ack_names)
{
	static const char *const names_ab[] = { "a", "bb" };
	struct xds_ads_stream *st = stream_new(0), *d = stream_new(1);
	Resp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, cds_ab);
	ck_assert_uint_eq(xds_ads_stream_reply_hint(st), 0);
	sotw(st, "node-1", URL_EDS, NULL, NULL, names_ab, 2, NULL);
	ck_assert_uint_eq(xds_ads_stream_reply_hint(st), (1 + 1 + 1) + (1 + 1 + 2));
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	resp_free(r);
	ck_assert_uint_eq(xds_ads_stream_reply_hint(st), 0);
	/* wildcard CDS: its ACK names nothing */
	sotw(st, NULL, URL_CDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_uint_eq(xds_ads_stream_reply_hint(st), 0);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	resp_free(r);
	/* Delta: an ACK is a nonce */
	delta(d, "node-d", URL_EDS, NULL, names_ab, 2, NULL, 0, NULL);
	ck_assert_uint_eq(xds_ads_stream_reply_hint(d), 0);
	xds_ads_stream_free(st);
	xds_ads_stream_free(d);
}
END_TEST

START_TEST(delta_subscribe_unsubscribe_and_removal)
{
	static const char *const eds[] = { "a=A1", "b=B1", NULL }, *const eds2[] = { "a=A2", "b=B2", NULL };
	static const char *const eds3[] = { "a=A3", NULL };
	static const char *const names_ab[] = { "a", "b" }, *const only_a[] = { "a" };
	struct xds_ads_stream *st = stream_new(1);
	char n[32];
	DResp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds);
	delta(st, "node-d", URL_EDS, NULL, names_ab, 2, NULL, 0, NULL);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert(delta_has(r, "a", "A1") && delta_has(r, "b", "B1"));
	ck_assert_uint_eq(strlen(r->resources[0]->version), 16);
	ck_assert_uint_eq(r->n_removed_resources, 0);
	snprintf(n, sizeof(n), "%s", r->nonce);
	dresp_free(r);
	ck_assert_ptr_null(next_delta(st));
	delta(st, NULL, URL_EDS, n, NULL, 0, NULL, 0, NULL);
	ck_assert(syncz_has("\"delta\":true", "\"state\":\"SYNCED\""));
	/* unsubscribing is forgotten without a removal or a response */
	delta(st, NULL, URL_EDS, NULL, NULL, 0, only_a, 1, NULL);
	ck_assert_ptr_null(next_delta(st));
	/* a change to both: only the subscribed one comes */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds2);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(delta_has(r, "b", "B2"));
	dresp_free(r);
	/* b is gone from the snapshot: removed_resources names it */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_ENDPOINT, eds3);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 0);
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert_str_eq(r->removed_resources[0], "b");
	dresp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(delta_wildcards)
{
	static const char *const star[] = { "*" };
	struct xds_snapshot *s = xds_snapshot_new();
	struct xds_ads_stream *cds = stream_new(1), *lds = stream_new(1), *eds = stream_new(1);
	DResp *r;

	ck_assert_int_eq(xds_snapshot_add(s, XDS_CLUSTER, "c1", (const uint8_t *)"C1", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "l1", (const uint8_t *)"L1", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "l2", (const uint8_t *)"L2", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_ENDPOINT, "e1", (const uint8_t *)"E1", 2), 0);
	xds_snapshot_seal(s);
	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, s, NULL);
	/* legacy wildcard: a first CDS request naming nothing */
	delta(cds, "node-w1", URL_CDS, NULL, NULL, 0, NULL, 0, NULL);
	r = next_delta(cds);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(delta_has(r, "c1", "C1"));
	dresp_free(r);
	/* "*" */
	delta(lds, "node-w2", URL_LDS, NULL, star, 1, NULL, 0, NULL);
	r = next_delta(lds);
	ck_assert_uint_eq(r->n_resources, 2);
	dresp_free(r);
	ck_assert(syncz_has("\"wildcard\":true", NULL));
	/* EDS has no wildcard: nothing named, nothing sent but the first answer */
	delta(eds, "node-w3", URL_EDS, NULL, NULL, 0, NULL, 0, NULL);
	r = next_delta(eds);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 0);
	dresp_free(r);
	/* leaving the wildcard forgets without removals */
	delta(lds, NULL, URL_LDS, NULL, NULL, 0, star, 1, NULL);
	ck_assert_ptr_null(next_delta(lds));
	xds_ads_stream_free(cds);
	xds_ads_stream_free(lds);
	xds_ads_stream_free(eds);
}
END_TEST

START_TEST(delta_initial_resource_versions)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry e[3], *ep[3];
	struct xds_snapshot *s = snap_of(XDS_CLUSTER, cds_ab);
	struct xds_ads_stream *st = stream_new(1);
	char ha[17];
	struct node nd;
	DResp *r;
	int i;

	mesh_hash_hex(xds_snapshot_find(s, XDS_CLUSTER, "a")->hash, ha);
	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, s, NULL);
	for (i = 0; i < 3; i++) {
		envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(&e[i]);
		ep[i] = &e[i];
	}
	/* a: what we have; b: not one of our versions; gone: not served any more */
	e[0].key = "a";
	e[0].value = ha;
	e[1].key = "b";
	e[1].value = "v-from-another-server";
	e[2].key = "gone";
	e[2].value = ha;
	req.node = node_init(&nd, "node-init", "grpc");
	req.type_url = URL_CDS;
	req.initial_resource_versions = ep;
	req.n_initial_resource_versions = 3;
	xds_ads_stream_delta_request(st, &req);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(delta_has(r, "b", "B1"));
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert_str_eq(r->removed_resources[0], "gone");
	dresp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

START_TEST(delta_nack_recorded_not_resent)
{
	struct xds_ads_stream *st = stream_new(1);
	char n[32];
	DResp *r;

	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	delta(st, "node-dn", URL_CDS, NULL, NULL, 0, NULL, 0, NULL);
	r = next_delta(st);
	snprintf(n, sizeof(n), "%s", r->nonce);
	dresp_free(r);
	delta(st, NULL, URL_CDS, n, NULL, 0, NULL, 0, "no good");
	ck_assert(syncz_has("\"state\":\"ERROR\",\"error\":\"no good\"", NULL));
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	ck_assert_ptr_null(next_delta(st));
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab2);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(delta_has(r, "b", "B2"));
	dresp_free(r);
	xds_ads_stream_free(st);
}
END_TEST

/* ------------------------------------------------------------------ */
/* flavours */

START_TEST(flavour_from_node)
{
	struct node nd;

	ck_assert_int_eq(xds_flavour_of_node(node_init(&nd, "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local", "grpc")),
			 XDS_FLAVOUR_PROXYLESS);
	ck_assert_int_eq(xds_flavour_of_node(node_init(&nd, "router~10.0.0.2~gw.istio-system~x", NULL)),
			 XDS_FLAVOUR_ROUTER);
	ck_assert_int_eq(xds_flavour_of_node(node_init(&nd, "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local", NULL)),
			 XDS_FLAVOUR_SIDECAR);
	ck_assert_int_eq(xds_flavour_of_node(node_init(&nd, "sidecar~10.0.0.1~a.demo~x", "envoy")),
			 XDS_FLAVOUR_SIDECAR);
	ck_assert_int_eq(xds_flavour_of_node(node_init(&nd, "routerless", NULL)), XDS_FLAVOUR_SIDECAR);
	ck_assert_int_eq(xds_flavour_of_node(NULL), XDS_FLAVOUR_SIDECAR);
	ck_assert_str_eq(xds_flavour_name(XDS_FLAVOUR_PROXYLESS), "proxyless");
	ck_assert_str_eq(xds_flavour_name(XDS_FLAVOUR_SIDECAR), "sidecar");
	ck_assert_str_eq(xds_flavour_name(XDS_FLAVOUR_ROUTER), "router");
}
END_TEST

/* A first request from id with no GENERATOR metadata. */
static void plain_request(struct xds_ads_stream *st, const char *id)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	struct node nd;

	req.node = node_init(&nd, id, NULL);
	req.type_url = URL_CDS;
	xds_ads_stream_request(st, &req);
}

START_TEST(sidecar_and_router_refused_without_their_generator)
{
	static const char *const sc_res[] = { "sidecar-only=S", NULL };
	struct xds_ads_stream *early = stream_new(0), *sc = stream_new(0), *gw = stream_new(0), *sc2;
	enum xds_ads_status code;
	const char *msg;
	Resp *r;

	/* nothing published yet: a sidecar waits like everyone else */
	plain_request(early, "sidecar~10.0.0.9~e.demo~demo.svc.cluster.local");
	ck_assert_int_eq(xds_ads_stream_finishing(early, &code, &msg), 0);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	/* refused after the batch of publishes, not by the publish itself */
	ck_assert_int_eq(xds_ads_stream_finishing(early, &code, &msg), 0);
	xds_ads_refuse_unserved(ads);
	ck_assert_int_eq(xds_ads_stream_finishing(early, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_UNIMPLEMENTED);
	ck_assert_ptr_null(next_sotw(early));

	plain_request(sc, "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local");
	ck_assert_int_eq(xds_ads_stream_finishing(sc, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_UNIMPLEMENTED);
	ck_assert_str_eq(msg, "meshd has no sidecar configuration generator yet: node "
			      "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local is served only with GENERATOR=grpc "
			      "(proxyless) metadata");
	/* never proxyless config */
	ck_assert_ptr_null(next_sotw(sc));
	ck_assert(syncz_has("\"flavour\":\"sidecar\"", "\"end_status\":{\"code\":12,\"message\":\"meshd has no sidecar"));

	plain_request(gw, "router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local");
	ck_assert_int_eq(xds_ads_stream_finishing(gw, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_UNIMPLEMENTED);
	ck_assert_ptr_nonnull(strstr(msg, "router"));
	ck_assert_ptr_nonnull(strstr(msg, "router~10.0.0.2~gw.istio-system"));
	ck_assert_ptr_null(next_sotw(gw));
	ck_assert(syncz_has("\"flavour\":\"router\"", NULL));

	/* once a sidecar snapshot exists, a sidecar is served from it */
	publish(XDS_FLAVOUR_SIDECAR, XDS_CLUSTER, sc_res);
	sc2 = stream_new(0);
	plain_request(sc2, "sidecar~10.0.0.3~c.demo~demo.svc.cluster.local");
	ck_assert_int_eq(xds_ads_stream_finishing(sc2, &code, &msg), 0);
	r = next_sotw(sc2);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert(payload_is(r->resources[0], "S"));
	resp_free(r);
	/* and a proxyless publish does not reach it */
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab2);
	ck_assert_ptr_null(next_sotw(sc2));
	ck_assert_int_eq(xds_ads_streams(ads), 4);
	xds_ads_stream_free(early);
	xds_ads_stream_free(sc);
	xds_ads_stream_free(gw);
	xds_ads_stream_free(sc2);
	ck_assert_int_eq(xds_ads_streams(ads), 0);
}
END_TEST

START_TEST(end_and_closed)
{
	struct xds_ads_stream *st = stream_new(0);
	enum xds_ads_status code;
	const char *msg;
	struct mesh_buf b;

	mesh_buf_init(&b, 1 << 20);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	sotw(st, "node-end", URL_CDS, NULL, NULL, NULL, 0, NULL);
	/* connected, nothing taken for sending yet */
	ck_assert_int_eq(xds_ads_config_dump(ads, "node-end", &b), 0);
	ck_assert_str_eq(b.data, "{\"configs\":[]}");
	mesh_buf_reset(&b);
	/* the transport ends it (a half-close): queued responses are dropped */
	xds_ads_stream_end(st, XDS_ADS_STATUS_OK, "");
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_OK);
	ck_assert_ptr_null(next_sotw(st));
	/* the first end wins */
	xds_ads_stream_end(st, XDS_ADS_STATUS_INTERNAL, "later");
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_OK);
	xds_ads_stream_closed(st);
	ck_assert_int_eq(xds_ads_config_dump(ads, "node-end", &b), -ENOENT);
	mesh_buf_reset(&b);
	mesh_buf_cleanup(&b);
	xds_ads_stream_free(st);
}
END_TEST

/* A node id past XDS_MAX_NODE_FIELD_LEN is cut, and counted. */
static double limit_sample(const char *limit)
{
	struct mesh_buf b;
	char series[128], *p;
	double v = -1;

	mesh_buf_init(&b, 1 << 22);
	ck_assert_int_eq(metrics_render(&b), 0);
	snprintf(series, sizeof(series), "meshd_limit_exceeded_total{limit=\"%s\"} ", limit);
	p = strstr(b.data, series);
	if (p)
		v = strtod(p + strlen(series), NULL);
	mesh_buf_cleanup(&b);
	return v;
}

START_TEST(long_node_field_cut_and_counted)
{
	struct xds_ads_stream *st = stream_new(0);
	char id[3000];
	double before = limit_sample("xds_node_field");

	ck_assert(before >= 0);
	memset(id, 'n', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	plain_request(st, id);
	ck_assert_uint_eq(strlen(xds_ads_stream_node_id(st)), 1024);
	ck_assert(limit_sample("xds_node_field") >= before + 1);
	xds_ads_stream_closed(st);
	xds_ads_stream_free(st);
}
END_TEST

/* istiod's debug endpoints and istioctl name a proxy by its proxy ID,
 * "POD.NAMESPACE" (the node id's third part): meshd takes either form; a
 * short name two proxies share is refused (the full node id decides). */
START_TEST(config_dump_by_pod_namespace)
{
	struct xds_ads_stream *a1 = stream_new(0), *a2 = stream_new(0), *b1 = stream_new(0);
	struct mesh_buf b;

	mesh_buf_init(&b, 1 << 20);
	publish(XDS_FLAVOUR_PROXYLESS, XDS_CLUSTER, cds_ab);
	sotw(a1, "sidecar~10.0.0.1~web-1.demo~demo.svc.cluster.local", URL_CDS, NULL, NULL, NULL, 0, NULL);
	sotw(b1, "sidecar~10.0.0.3~web-2.demo~demo.svc.cluster.local", URL_CDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_int_eq(xds_ads_config_dump(ads, "web-1.demo", &b), 0);
	mesh_buf_reset(&b);
	ck_assert_int_eq(xds_ads_config_dump(ads, "sidecar~10.0.0.1~web-1.demo~demo.svc.cluster.local", &b), 0);
	mesh_buf_reset(&b);
	/* a part, not a prefix or a substring */
	ck_assert_int_eq(xds_ads_config_dump(ads, "web-1", &b), -ENOENT);
	ck_assert_int_eq(xds_ads_config_dump(ads, "web-1.dem", &b), -ENOENT);
	ck_assert_int_eq(xds_ads_config_dump(ads, "10.0.0.1", &b), -ENOENT);
	/* another proxy with the same POD.NAMESPACE: ambiguous, the full id still works */
	sotw(a2, "sidecar~10.0.0.2~web-1.demo~demo.svc.cluster.local", URL_CDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_int_eq(xds_ads_config_dump(ads, "web-1.demo", &b), -ENOTUNIQ);
	ck_assert_int_eq(xds_ads_config_dump(ads, "sidecar~10.0.0.2~web-1.demo~demo.svc.cluster.local", &b), 0);
	mesh_buf_cleanup(&b);
	xds_ads_stream_free(a1);
	xds_ads_stream_free(a2);
	xds_ads_stream_free(b1);
}
END_TEST

/* /debug/telemetryz takes a connected proxy's workload from its Node (the
 * LABELS metadata the generators select by), found by node id or
 * POD.NAMESPACE as config_dump finds it: without it a WorkloadEntry's
 * sidecar (no Pod) was shown with no labels, so a selector Telemetry that
 * applied to it was missing from the view. */
START_TEST(proxy_workload_from_node)
{
	struct xds_ads_stream *a1 = stream_new(0), *a2 = stream_new(0);
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT, lab = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[3], *mdf[2], *labf[1];
	Google__Protobuf__Value v[3];
	Envoy__Config__Core__V3__Node node;
	struct mesh_buf ns, lb;
	size_t i;

	for (i = 0; i < 3; i++) {
		google__protobuf__struct__fields_entry__init(&fe[i]);
		google__protobuf__value__init(&v[i]);
		fe[i].value = &v[i];
	}
	fe[0].key = "NAMESPACE";
	v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	v[0].string_value = "demo";
	fe[1].key = "LABELS";
	v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	v[1].struct_value = &lab;
	fe[2].key = "app";
	v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	v[2].string_value = "sleep";
	mdf[0] = &fe[0];
	mdf[1] = &fe[1];
	labf[0] = &fe[2];
	md.fields = mdf;
	md.n_fields = 2;
	lab.fields = labf;
	lab.n_fields = 1;
	envoy__config__core__v3__node__init(&node);
	node.id = "sidecar~127.0.0.2~sleep-1.demo~demo.svc.cluster.local";
	node.metadata = &md;
	req.node = &node;
	req.type_url = (char *)URL_CDS;
	req.version_info = "";
	req.response_nonce = "";
	xds_ads_stream_request(a1, &req);

	mesh_buf_init(&ns, 4096);
	mesh_buf_init(&lb, 4096);
	ck_assert_int_eq(xds_ads_proxy_workload(ads, "sleep-1.demo", &ns, &lb), 0);
	ck_assert_str_eq((const char *)ns.data, "demo");
	ck_assert_str_eq((const char *)lb.data, "app=sleep");
	mesh_buf_reset(&ns);
	mesh_buf_reset(&lb);
	ck_assert_int_eq(xds_ads_proxy_workload(ads, node.id, &ns, &lb), 0);
	ck_assert_str_eq((const char *)lb.data, "app=sleep");
	mesh_buf_reset(&ns);
	mesh_buf_reset(&lb);
	ck_assert_int_eq(xds_ads_proxy_workload(ads, "other-1.demo", &ns, &lb), -ENOENT);
	/* a second proxy of that POD.NAMESPACE: the full node id decides */
	sotw(a2, "sidecar~127.0.0.9~sleep-1.demo~demo.svc.cluster.local", URL_CDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_int_eq(xds_ads_proxy_workload(ads, "sleep-1.demo", &ns, &lb), -ENOTUNIQ);
	mesh_buf_cleanup(&ns);
	mesh_buf_cleanup(&lb);
	xds_ads_stream_free(a1);
	xds_ads_stream_free(a2);
}
END_TEST

static int queued_calls[2];

static void count_queued(void *user)
{
	queued_calls[*(int *)user]++;
}

/* A publish tells the transport about each live stream of its flavour,
 * right after that stream's responses were queued. */
START_TEST(publish_calls_queued_per_stream)
{
	struct xds_ads_config cfg = { .queued = count_queued };
	static int users[2] = { 0, 1 };
	struct xds_ads_stream *p = NULL, *sc = NULL;
	struct xds_ads *a = NULL;
	struct node nd;
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;

	memset(queued_calls, 0, sizeof(queued_calls));
	ck_assert_int_eq(xds_ads_new(&cfg, &a), 0);
	ck_assert_int_eq(xds_ads_stream_new(a, 0, NULL, &users[0], &p), 0);
	ck_assert_int_eq(xds_ads_stream_new(a, 0, NULL, &users[1], &sc), 0);
	req.type_url = URL_CDS;
	req.node = node_init(&nd, "node-q", "grpc");
	xds_ads_stream_request(p, &req);
	/* another flavour's publish neither reaches nor ends the proxyless stream */
	xds_ads_publish(a, XDS_FLAVOUR_SIDECAR, snap_of(XDS_CLUSTER, cds_ab), NULL);
	ck_assert_int_eq(queued_calls[0], 0);
	ck_assert_int_eq(xds_ads_stream_finishing(p, &(enum xds_ads_status){ 0 }, &(const char *){ NULL }), 0);
	xds_ads_publish(a, XDS_FLAVOUR_PROXYLESS, snap_of(XDS_CLUSTER, cds_ab), NULL);
	ck_assert_int_eq(queued_calls[0], 1);
	/* the node-less stream counts as a sidecar */
	ck_assert_int_eq(queued_calls[1], 1);
	xds_ads_stream_free(p);
	xds_ads_stream_free(sc);
	xds_ads_free(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_ads");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sotw_first_request_gets_subscribed_resources);
	tcase_add_test(tc, sotw_ack_echoes_version_and_is_not_answered);
	tcase_add_test(tc, sotw_nack_recorded_not_resent_until_change);
	tcase_add_test(tc, sotw_unchanged_stream_lets_go_of_old_snapshot);
	tcase_add_test(tc, sotw_push_sends_clusters_before_listeners);
	tcase_add_test(tc, sotw_stale_nonce_ignored);
	tcase_add_test(tc, sotw_reconnect_with_version_gets_a_response);
	tcase_add_test(tc, sotw_subscription_change_answered);
	tcase_add_test(tc, sotw_bytes_in_and_malformed_request);
	tcase_add_test(tc, sotw_ack_fast_path_sees_changed_names);
	tcase_add_test(tc, sotw_reduced_ack_keeps_behaviour);
	tcase_add_test(tc, reply_hint_is_the_ack_names);
	tcase_add_test(tc, delta_subscribe_unsubscribe_and_removal);
	tcase_add_test(tc, delta_wildcards);
	tcase_add_test(tc, delta_initial_resource_versions);
	tcase_add_test(tc, delta_nack_recorded_not_resent);
	tcase_add_test(tc, flavour_from_node);
	tcase_add_test(tc, sidecar_and_router_refused_without_their_generator);
	tcase_add_test(tc, end_and_closed);
	tcase_add_test(tc, config_dump_by_pod_namespace);
	tcase_add_test(tc, proxy_workload_from_node);
	tcase_add_test(tc, publish_calls_queued_per_stream);
	tcase_add_test(tc, long_node_field_cut_and_counted);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
