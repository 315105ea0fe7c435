/*
 * test_server.c - the ADS server end to end, against an xDS client written
 * here on gRPC core (insecure channel to 127.0.0.1, bidi call, packed
 * DiscoveryRequests).  Every wait is bounded by a deadline; "nothing
 * arrives" is asserted by a bounded wait that must time out.
 */
#include "controlplane/xds/server.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/metrics/metrics.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "ads_test_client.h"
#include "testutil.h"

#include <check.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define URL_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define URL_EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

/* Bounded waits. */
#define WAIT_MS 5000      /* something must arrive within this */
#define QUIET_MS 300      /* nothing may arrive within this */

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;


static void client_open(struct ads_client *c, int port)
{
	ads_client_open(c, port, SOTW);
}

/* Send a DiscoveryRequest; node only when node_id is given. */
static void client_send(struct ads_client *c, const char *node_id, const char *type_url, const char *version,
			const char *nonce, const char *const *names, size_t nnames, const char *error)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	struct ads_client_node node;
	Google__Rpc__Status err = GOOGLE__RPC__STATUS__INIT;
	uint8_t *wire;
	size_t len;

	if (node_id)
		req.node = ads_client_node_init(&node, node_id);
	req.type_url = (char *)type_url;
	req.version_info = (char *)(version ? version : "");
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names = (char **)names;
	req.n_resource_names = nnames;
	if (error) {
		err.code = 3;
		err.message = (char *)error;
		req.error_detail = &err;
	}
	len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	ck_assert_int_eq(ads_client_send_raw(c, wire, len), 0);
	free(wire);
}

/* The next response within ms, or NULL on timeout (the receive stays
 * outstanding and is picked up by the next call). */
static Resp *client_recv(struct ads_client *c, int ms)
{
	grpc_slice s;
	Resp *resp;

	if (ads_client_recv_raw(c, ms, &s) < 0)
		return NULL;
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
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

static void must_be_quiet(struct ads_client *c)
{
	Resp *r = client_recv(c, QUIET_MS);

	ck_assert_msg(r == NULL, "unexpected response: type %s version %s", r ? r->type_url : "",
		      r ? r->version_info : "");
}

static void resp_free(Resp *r)
{
	if (r)
		envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
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

/* A snapshot with clusters a, b, listeners l1, l2 and endpoints a, b;
 * tag is mixed into every payload so snapshots with different tags differ. */
static struct xds_snapshot *snap_make(const char *tag_a, const char *tag_b)
{
	struct xds_snapshot *s = xds_snapshot_new();
	char buf[64];

	snprintf(buf, sizeof(buf), "cluster-a-%s", tag_a);
	xds_snapshot_add(s, XDS_CLUSTER, "outbound|80||a", (const uint8_t *)buf, strlen(buf));
	snprintf(buf, sizeof(buf), "cluster-b-%s", tag_b);
	xds_snapshot_add(s, XDS_CLUSTER, "outbound|80||b", (const uint8_t *)buf, strlen(buf));
	snprintf(buf, sizeof(buf), "eds-a-%s", tag_a);
	xds_snapshot_add(s, XDS_ENDPOINT, "outbound|80||a", (const uint8_t *)buf, strlen(buf));
	snprintf(buf, sizeof(buf), "eds-b-%s", tag_b);
	xds_snapshot_add(s, XDS_ENDPOINT, "outbound|80||b", (const uint8_t *)buf, strlen(buf));
	xds_snapshot_add(s, XDS_LISTENER, "l2", (const uint8_t *)"L2", 2);
	xds_snapshot_add(s, XDS_LISTENER, "l1", (const uint8_t *)"L1", 2);
	xds_snapshot_seal(s);
	return s;
}

static void publish(const char *tag_a, const char *tag_b)
{
	struct xds_snapshot *s = snap_make(tag_a, tag_b);

	xds_server_publish(srv, s);
	xds_snapshot_unref(s);
}

/* Poll syncz (bounded) until it contains every needle. */
static int syncz_wait(const char *n1, const char *n2, char **out)
{
	struct timespec start, now;
	struct mesh_buf b;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		mesh_buf_init(&b, 1 << 20);
		ck_assert_int_eq(xds_server_syncz(srv, &b), 0);
		if (strstr(b.data, n1) && (!n2 || strstr(b.data, n2))) {
			if (out)
				*out = mesh_buf_take(&b, NULL);
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
		struct timespec d = { 0, 10 * 1000 * 1000 };
		nanosleep(&d, NULL);
	}
}

static const char *const names_ab[] = { "outbound|80||a", "outbound|80||b" };
static const char *const names_a_missing[] = { "outbound|80||a", "does-not-exist" };

START_TEST(initial_request_gets_subscribed_resources)
{
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-1", URL_EDS, NULL, NULL, names_a_missing, 2, NULL);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_EDS);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(r->resources[0]->type_url, URL_EDS);
	ck_assert_uint_eq(r->resources[0]->value.len, strlen("eds-a-1"));
	ck_assert_int_eq(memcmp(r->resources[0]->value.data, "eds-a-1", 7), 0);
	ck_assert_uint_eq(strlen(r->version_info), 16);
	ck_assert_uint_gt(strlen(r->nonce), 0);
	resp_free(r);
	ck_assert_int_eq(xds_server_connected(srv), 1);
	ck_assert(syncz_wait("\"proxy\":\"node-1\"", "\"flavour\":\"proxyless\"", NULL));
	ck_assert(syncz_wait("\"peer\":\"127.0.0.1:", "\"cluster\":\"test-cluster\"", NULL));
	ads_client_close(&c);
}
END_TEST

START_TEST(ack_then_publish_changed_and_unchanged)
{
	struct ads_client c;
	Resp *r;
	char v1[32], n1[32];
	uint64_t reduced;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-1", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	/* ACK: no new response; reduced on arrival (its bytes freed by the
	 * cq thread), and recorded all the same */
	reduced = xds_server_reduced_acks(srv);
	client_send(&c, NULL, URL_CDS, v1, n1, NULL, 0, NULL);
	must_be_quiet(&c);
	{
		char needle[64];
		snprintf(needle, sizeof(needle), "\"acked_version\":\"%s\"", v1);
		ck_assert(syncz_wait(needle, "\"state\":\"SYNCED\"", NULL));
	}
	ck_assert_uint_eq(xds_server_reduced_acks(srv), reduced + 1);
	/* an identical snapshot (new object, same content): nothing */
	publish("1", "1");
	must_be_quiet(&c);
	/* changed content: pushed with a new version and nonce */
	publish("2", "1");
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_CDS);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert_str_ne(r->version_info, v1);
	ck_assert_str_ne(r->nonce, n1);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(nack_recorded_not_resent_then_new_version)
{
	struct ads_client c;
	Resp *r;
	char v1[32], n1[32], v2[32], n2[32];
	struct mesh_buf m;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-nack", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	client_send(&c, NULL, URL_CDS, v1, n1, NULL, 0, NULL);

	publish("2", "1");
	r = must_recv(&c);
	snprintf(v2, sizeof(v2), "%s", r->version_info);
	snprintf(n2, sizeof(n2), "%s", r->nonce);
	resp_free(r);
	/* NACK v2: echo the old version with an error */
	client_send(&c, NULL, URL_CDS, v1, n2, NULL, 0, "cluster outbound|80||a: bad lb policy");
	ck_assert(syncz_wait("\"state\":\"ERROR\"", "\"error\":\"cluster outbound|80||a: bad lb policy\"", NULL));
	mesh_buf_init(&m, 1 << 20);
	ck_assert_int_eq(metrics_render(&m), 0);
	ck_assert_ptr_nonnull(strstr(m.data, "pilot_total_xds_rejects{type=\"cds\"} 1"));
	mesh_buf_cleanup(&m);

	/* the NACKed content again (a new snapshot object): not re-sent */
	publish("2", "1");
	must_be_quiet(&c);
	/* a new version is sent normally */
	publish("3", "1");
	r = must_recv(&c);
	ck_assert_str_ne(r->version_info, v2);
	ck_assert_str_ne(r->version_info, v1);
	client_send(&c, NULL, URL_CDS, r->version_info, r->nonce, NULL, 0, NULL);
	resp_free(r);
	ck_assert(syncz_wait("\"state\":\"SYNCED\"", NULL, NULL));
	ads_client_close(&c);
}
END_TEST

START_TEST(stale_nonce_ignored)
{
	struct ads_client c;
	Resp *r;
	char v1[32], n1[32], n2[32];
	const char *only_a[] = { "outbound|80||a" };

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-stale", URL_EDS, NULL, NULL, names_ab, 2, NULL);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 2);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	client_send(&c, NULL, URL_EDS, v1, n1, names_ab, 2, NULL);
	publish("2", "1");
	r = must_recv(&c);
	snprintf(n2, sizeof(n2), "%s", r->nonce);
	resp_free(r);
	/* a request quoting the older nonce, with a changed subscription: ignored */
	client_send(&c, NULL, URL_EDS, v1, n1, only_a, 1, NULL);
	must_be_quiet(&c);
	/* a NACK quoting an unknown nonce: ignored too */
	client_send(&c, NULL, URL_EDS, v1, "bogus", NULL, 0, "stale error");
	must_be_quiet(&c);
	ck_assert(syncz_wait("\"state\":\"STALE\"", NULL, NULL));
	/* the same change with the latest nonce is answered */
	client_send(&c, NULL, URL_EDS, v1, n2, only_a, 1, NULL);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(wildcard_lds_and_unknown_type)
{
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	/* unknown type: logged and ignored, the stream stays usable */
	client_send(&c, "node-w", "type.googleapis.com/example.Unknown", NULL, NULL, NULL, 0, NULL);
	must_be_quiet(&c);
	client_send(&c, NULL, URL_LDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	ck_assert_str_eq(r->type_url, URL_LDS);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

START_TEST(subscription_change_answered_even_if_same_version)
{
	struct ads_client c;
	Resp *r;
	char v1[32], n1[32];
	const char *a_and_missing[] = { "outbound|80||a", "nope" };
	const char *only_a[] = { "outbound|80||a" };

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-sub", URL_EDS, NULL, NULL, only_a, 1, NULL);
	r = must_recv(&c);
	snprintf(v1, sizeof(v1), "%s", r->version_info);
	snprintf(n1, sizeof(n1), "%s", r->nonce);
	resp_free(r);
	/* asking for one more name that does not exist: same resources, still answered */
	client_send(&c, NULL, URL_EDS, v1, n1, a_and_missing, 2, NULL);
	r = must_recv(&c);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(r->version_info, v1);
	ck_assert_str_ne(r->nonce, n1);
	resp_free(r);
	ads_client_close(&c);
}
END_TEST

/* A node without GENERATOR=grpc metadata is a sidecar (or, "router~", a
 * gateway): meshd has no generator for those and says so in the status,
 * rather than serve it proxyless config. */
START_TEST(sidecar_node_refused_unimplemented)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	struct ads_client c;
	grpc_slice msg;
	uint8_t *wire;
	size_t len;
	char *details;

	publish("1", "1");
	client_open(&c, port);
	node.id = "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local";
	req.node = &node;
	req.type_url = URL_CDS;
	len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(len);
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	ck_assert_int_eq(ads_client_send_raw(&c, wire, len), 0);
	free(wire);
	/* no config at all: the stream just ends */
	ck_assert_int_eq(ads_client_recv_raw(&c, WAIT_MS, &msg), -EPIPE);
	ck_assert_int_eq(ads_client_status(&c), GRPC_STATUS_UNIMPLEMENTED);
	details = grpc_slice_to_c_string(c.details);
	ck_assert_str_eq(details, "meshd has no sidecar configuration generator yet: node "
				  "sidecar~10.0.0.1~a.demo~demo.svc.cluster.local is served only with GENERATOR=grpc "
				  "(proxyless) metadata");
	gpr_free(details);
	ads_client_close(&c);
}
END_TEST

START_TEST(garbage_ends_stream_invalid_argument)
{
	struct ads_client c, d;
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12 };
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	ck_assert_int_eq(ads_client_send_raw(&c, garbage, sizeof(garbage)), 0);
	ck_assert_int_eq(ads_client_status(&c), GRPC_STATUS_INVALID_ARGUMENT);
	{
		char *msg = grpc_slice_to_c_string(c.details);
		ck_assert_ptr_nonnull(strstr(msg, "malformed DiscoveryRequest"));
		gpr_free(msg);
	}
	ads_client_close(&c);
	/* the server keeps serving */
	client_open(&d, port);
	client_send(&d, "node-after", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&d);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	ads_client_close(&d);
}
END_TEST

START_TEST(two_streams_only_changed_one_pushed)
{
	struct ads_client a, b;
	const char *na[] = { "outbound|80||a" }, *nb[] = { "outbound|80||b" };
	Resp *r;

	publish("1", "1");
	client_open(&a, port);
	client_open(&b, port);
	client_send(&a, "node-a", URL_EDS, NULL, NULL, na, 1, NULL);
	client_send(&b, "node-b", URL_EDS, NULL, NULL, nb, 1, NULL);
	r = must_recv(&a);
	client_send(&a, NULL, URL_EDS, r->version_info, r->nonce, na, 1, NULL);
	resp_free(r);
	r = must_recv(&b);
	client_send(&b, NULL, URL_EDS, r->version_info, r->nonce, nb, 1, NULL);
	resp_free(r);
	ck_assert_int_eq(xds_server_connected(srv), 2);
	/* only a's endpoints change */
	publish("2", "1");
	r = must_recv(&a);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_int_eq(memcmp(r->resources[0]->value.data, "eds-a-2", 7), 0);
	resp_free(r);
	must_be_quiet(&b);
	ads_client_close(&a);
	ads_client_close(&b);
}
END_TEST

/* Delta xDS is served: tests/unit/controlplane/xds/test_delta.c */
START_TEST(unknown_method_unimplemented)
{
	struct ads_client c;

	ads_client_open(&c, port, "/example.Nope/Method");
	ck_assert_int_eq(ads_client_status(&c), GRPC_STATUS_UNIMPLEMENTED);
	ads_client_close(&c);
}
END_TEST

START_TEST(config_dump_renders_sent_resources)
{
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	struct xds_snapshot *s = xds_snapshot_new();
	struct ads_client c;
	struct mesh_buf b;
	uint8_t wire[256];
	size_t n;
	Resp *r;

	l.name = "svc.ns.svc.cluster.local:8080";
	l.stat_prefix = "meshd";
	n = envoy__config__listener__v3__listener__pack(&l, wire);
	xds_snapshot_add(s, XDS_LISTENER, l.name, wire, n);
	xds_snapshot_seal(s);
	xds_server_publish(srv, s);
	xds_snapshot_unref(s);

	client_open(&c, port);
	client_send(&c, "node-dump", URL_LDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	resp_free(r);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(xds_server_config_dump(srv, "no-such-proxy", &b), -ENOENT);
	ck_assert_int_eq(xds_server_config_dump(srv, "node-dump", &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"@type\":\"type.googleapis.com/envoy.admin.v3.ListenersConfigDump\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"dynamicListeners\":[{\"name\":\"svc.ns.svc.cluster.local:8080\","
					     "\"activeState\":{\"versionInfo\":\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"listener\":{\"@type\":\"" URL_LDS "\","
					     "\"name\":\"svc.ns.svc.cluster.local:8080\",\"statPrefix\":\"meshd\"}"));
	mesh_buf_cleanup(&b);
	ads_client_close(&c);
}
END_TEST

START_TEST(half_close_ends_stream_ok)
{
	struct ads_client c;
	grpc_op op;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-hc", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	resp_free(r);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ck_assert_int_eq(grpc_call_start_batch(c.call, &op, 1, &c.tag_send, NULL), GRPC_CALL_OK);
	ck_assert_int_eq(ads_client_pluck(&c, &c.tag_send, WAIT_MS), 0);
	ck_assert_int_eq(ads_client_status(&c), GRPC_STATUS_OK);
	ads_client_close(&c);
}
END_TEST

START_TEST(stop_with_open_streams)
{
	struct ads_client c;
	Resp *r;

	publish("1", "1");
	client_open(&c, port);
	client_send(&c, "node-stop", URL_CDS, NULL, NULL, NULL, 0, NULL);
	r = must_recv(&c);
	resp_free(r);
	/* the server goes away under a live stream; the client sees the end */
	xds_server_stop(srv);
	srv = NULL;
	ck_assert_int_ne(ads_client_status(&c), GRPC_STATUS_OK);
	ads_client_close(&c);
}
END_TEST


/* pilot_xds_write_timeout's value in /metrics. */
static double write_timeouts(void)
{
	struct mesh_buf b;
	char *t, *p;
	double v = -1;

	mesh_buf_init(&b, 1u << 20);
	ck_assert_int_eq(metrics_render(&b), 0);
	t = mesh_buf_take(&b, NULL);
	p = strstr(t, "\npilot_xds_write_timeout ");
	if (p)
		v = strtod(p + strlen("\npilot_xds_write_timeout "), NULL);
	free(t);
	return v;
}

/* A proxy that stops reading: its response stays in flight (HTTP/2 flow
 * control) until the send timeout resets the stream; the server keeps
 * serving others.  The response is far larger than any flow-control window
 * the client would grant without reading. */
/* A port past 65535 (or not a number) is refused: gRPC core would keep its
 * low 16 bits and listen somewhere else without a word. */
START_TEST(bad_port_refused)
{
	static const char *const bad[] = { "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:1x", "127.0.0.1:",
					   "127.0.0.1", "127.0.0.1:-1", "127.0.0.1:0000015010" };
	struct xds_server *s2 = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct xds_server_config cfg = { .addr = bad[i] };

		ck_assert_msg(xds_server_start(&cfg, &s2) == -EINVAL, "%s", bad[i]);
		ck_assert_ptr_null(s2);
	}
	{
		struct xds_server_config cfg = { .addr = "127.0.0.1:0", .secure_addr = "127.0.0.1:65536" };

		ck_assert_int_eq(xds_server_start(&cfg, &s2), -EINVAL);
		ck_assert_ptr_null(s2);
	}
}
END_TEST

START_TEST(stuck_stream_is_reset)
{
	struct xds_server_config cfg = { .addr = "127.0.0.1:0", .send_timeout_ms = 300 };
	grpc_arg args[2];
	grpc_channel_args cargs = { 2, args };
	struct xds_snapshot *snap = xds_snapshot_new();
	struct ads_client stuck, fresh;
	const size_t big = 4u << 20;
	uint8_t *blob = malloc(big);
	grpc_slice msg;
	char *details;
	int i, p;
	double timeouts0 = write_timeouts();

	ck_assert(timeouts0 >= 0);
	/* this test's server has a short send timeout: replace the fixture's */
	xds_server_stop(srv);
	ck_assert_int_eq(xds_server_start(&cfg, &srv), 0);
	p = xds_server_port(srv);
	memset(blob, 'x', big);
	for (i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "big%d", i);
		ck_assert_int_eq(xds_snapshot_add(snap, XDS_LISTENER, name, blob, big), 0);
	}
	ck_assert_int_eq(xds_snapshot_add(snap, XDS_CLUSTER, "small", (const uint8_t *)"C", 1), 0);
	free(blob);
	xds_snapshot_seal(snap);
	xds_server_publish(srv, snap);
	xds_snapshot_unref(snap);

	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_HTTP2_BDP_PROBE;
	args[0].value.integer = 0;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[1].value.integer = -1;
	ads_client_open_args(&stuck, p, SOTW, &cargs);
	/* wildcard LDS: 16 MiB in one response, and this client never reads */
	client_send(&stuck, "stuck-proxy", URL_LDS, NULL, NULL, NULL, 0, NULL);
	/* the server lets go of the stream (and the response it held); the
	 * client learns it when it reads again */
	for (i = 0; i < 100 && xds_server_connected(srv) != 0; i++) {
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(xds_server_connected(srv), 0);
	ck_assert_int_eq(ads_client_recv_raw(&stuck, ADS_CLIENT_WAIT_MS, &msg), -EPIPE);
	ck_assert_int_eq(ads_client_status(&stuck), GRPC_STATUS_UNAVAILABLE);
	details = grpc_slice_to_c_string(stuck.details);
	ck_assert_ptr_nonnull(strstr(details, "not accepted in time"));
	gpr_free(details);
	ads_client_close(&stuck);
	/* counted as istiod counts a response not written in time */
	ck_assert_double_eq(write_timeouts(), timeouts0 + 1);

	/* everyone else is still served */
	client_open(&fresh, p);
	client_send(&fresh, "fresh-proxy", URL_CDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_int_eq(ads_client_recv_raw(&fresh, ADS_CLIENT_WAIT_MS, &msg), 0);
	grpc_slice_unref(msg);
	ads_client_close(&fresh);
}
END_TEST

/* n EDS names long enough that a SotW ACK naming them all is over
 * XDS_REPLY_MIN: "outbound|80||a", "outbound|80||b" and made-up ones. */
static char **big_names(size_t n)
{
	char **v = calloc(n, sizeof(*v));
	size_t i;

	for (i = 0; i < n; i++) {
		v[i] = malloc(128);
		if (i < 2)
			snprintf(v[i], 128, "outbound|80||%c", (int)('a' + i));
		else
			snprintf(v[i], 128, "outbound|80||missing-%04zu.a-namespace-long-enough.svc.cluster.local", i);
	}
	return v;
}

static void big_names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A server with the given reply budget and hold time in place of the
 * fixture's; returns its port. */
static int restart_with_budget(size_t budget, int hold_ms)
{
	struct xds_server_config cfg = { .addr = "127.0.0.1:0", .reply_budget = budget, .reply_hold_ms = hold_ms };

	xds_server_stop(srv);
	srv = NULL;
	ck_assert_int_eq(xds_server_start(&cfg, &srv), 0);
	return xds_server_port(srv);
}

/*
 * Answers in flight are budgeted: with room for one large answer, a
 * second stream subscribed to many names (its ACK will repeat them all)
 * gets its response only once the first stream has answered its own.
 */
START_TEST(reply_budget_waits_for_answer)
{
	const size_t n = 300;
	char **names = big_names(n);
	struct ads_client a, b;
	char v[32], nonce[32];
	Resp *r;
	int p = restart_with_budget(1, 60000);

	publish("1", "1");
	client_open(&a, p);
	client_send(&a, "node-a", URL_EDS, NULL, NULL, (const char *const *)names, n, NULL);
	r = must_recv(&a);
	ck_assert_uint_eq(r->n_resources, 2);
	snprintf(v, sizeof(v), "%s", r->version_info);
	snprintf(nonce, sizeof(nonce), "%s", r->nonce);
	resp_free(r);
	/* a owes its ACK: b's response waits for room */
	client_open(&b, p);
	client_send(&b, "node-b", URL_EDS, NULL, NULL, (const char *const *)names, n, NULL);
	must_be_quiet(&b);
	/* a small subscription is never held back */
	{
		struct ads_client c;
		client_open(&c, p);
		client_send(&c, "node-c", URL_EDS, NULL, NULL, names_ab, 2, NULL);
		r = must_recv(&c);
		ck_assert_uint_eq(r->n_resources, 2);
		resp_free(r);
		ads_client_close(&c);
	}
	/* a's ACK makes room: b is answered */
	client_send(&a, NULL, URL_EDS, v, nonce, (const char *const *)names, n, NULL);
	r = must_recv(&b);
	ck_assert_str_eq(r->type_url, URL_EDS);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert_str_eq(r->version_info, v);
	resp_free(r);
	must_be_quiet(&a);
	ads_client_close(&a);
	ads_client_close(&b);
	big_names_free(names, n);
}
END_TEST

/* A stream that never answers gives its share back after the hold time:
 * the others are not stalled for good. */
START_TEST(reply_budget_hold_expires)
{
	const size_t n = 300;
	char **names = big_names(n);
	struct ads_client a, b;
	Resp *r;
	int p = restart_with_budget(1, 300);

	publish("1", "1");
	client_open(&a, p);
	client_send(&a, "node-a", URL_EDS, NULL, NULL, (const char *const *)names, n, NULL);
	r = must_recv(&a);
	resp_free(r);
	/* a never ACKs; b is answered once a's hold (300 ms) is over */
	client_open(&b, p);
	client_send(&b, "node-b", URL_EDS, NULL, NULL, (const char *const *)names, n, NULL);
	r = must_recv(&b);
	ck_assert_uint_eq(r->n_resources, 2);
	resp_free(r);
	ads_client_close(&a);
	ads_client_close(&b);
	big_names_free(names, n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_server");
	TCase *tc = tcase_create("ads");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, initial_request_gets_subscribed_resources);
	tcase_add_test(tc, ack_then_publish_changed_and_unchanged);
	tcase_add_test(tc, nack_recorded_not_resent_then_new_version);
	tcase_add_test(tc, stale_nonce_ignored);
	tcase_add_test(tc, sidecar_node_refused_unimplemented);
	tcase_add_test(tc, wildcard_lds_and_unknown_type);
	tcase_add_test(tc, subscription_change_answered_even_if_same_version);
	tcase_add_test(tc, garbage_ends_stream_invalid_argument);
	tcase_add_test(tc, two_streams_only_changed_one_pushed);
	tcase_add_test(tc, unknown_method_unimplemented);
	tcase_add_test(tc, config_dump_renders_sent_resources);
	tcase_add_test(tc, half_close_ends_stream_ok);
	tcase_add_test(tc, stop_with_open_streams);
	tcase_add_test(tc, stuck_stream_is_reset);
	tcase_add_test(tc, bad_port_refused);
	tcase_add_test(tc, reply_budget_waits_for_answer);
	tcase_add_test(tc, reply_budget_hold_expires);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
