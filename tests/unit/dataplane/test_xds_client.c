/*
 * test_xds_client.c - meshproxy's ADS state machine fed DiscoveryResponses
 * with no socket: the requests it sends (subscriptions, ACK and NACK with
 * version, nonce and error_detail, the Node on the first one only), the
 * warming rules (a listener waits for its route config, a cluster for its
 * endpoints and keeps its old ones meanwhile), the last good snapshot kept
 * on a NACK, readiness, and resubscription with the held versions on a new
 * stream.  The same for Delta xDS (DeltaAggregatedResources): wildcard and
 * named subscriptions, ACK and NACK by nonce, removed_resources, the
 * unsubscription of a route config whose listener went, and a new stream
 * carrying initial_resource_versions.  Secrets (issue 13): the names a
 * cluster's TLS context references subscribed after CDS, a Secret going to
 * the store without an engine compile, a bad one NACKed with the store
 * unchanged, and the subscription and the store emptied when the cluster
 * goes.
 */
#include "dataplane/xds_client.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

#include "common/pem.h"
#include "dataplane/sds.h"
#include "tlsfix.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

/* ---- what the client sends */

#define MAX_REQ 64
static Envoy__Service__Discovery__V3__DiscoveryRequest *reqs[MAX_REQ];
static size_t nreq, seen;

static int capture(void *ctx, const uint8_t *msg, size_t len)
{
	(void)ctx;
	ck_assert_uint_lt(nreq, MAX_REQ);
	reqs[nreq] = envoy__service__discovery__v3__discovery_request__unpack(NULL, len, msg);
	ck_assert_ptr_nonnull(reqs[nreq]);
	nreq++;
	return 0;
}

static void reqs_clear(void)
{
	size_t i;

	for (i = 0; i < nreq; i++)
		envoy__service__discovery__v3__discovery_request__free_unpacked(reqs[i], NULL);
	nreq = seen = 0;
}

/* The next request not looked at yet; it must be of type t. */
static const Envoy__Service__Discovery__V3__DiscoveryRequest *next_req(enum xds_type t)
{
	ck_assert_msg(seen < nreq, "expected a %s request, none sent", xds_type_short(t));
	ck_assert_str_eq(reqs[seen]->type_url, xds_type_url(t));
	return reqs[seen++];
}

static void no_more_reqs(void)
{
	ck_assert_msg(seen == nreq, "unexpected request for %s", seen < nreq ? reqs[seen]->type_url : "");
}

/* ---- the engine */

static int apply_calls, apply_fail;
static struct px_snapshot *applied;
/* a candidate holding listener bad_listener is refused (as a listener
 * that cannot bind), unless it also holds cluster bad_unless_cluster */
static const char *bad_listener, *bad_unless_cluster;

static int apply(void *ctx, struct px_snapshot *cand, char *err, size_t cap)
{
	(void)ctx;
	apply_calls++;
	if (apply_fail) {
		snprintf(err, cap, "engine refuses generation %llu", (unsigned long long)cand->generation);
		return -EINVAL;
	}
	if (bad_listener && px_snapshot_find(cand, XDS_LISTENER, bad_listener) &&
	    !(bad_unless_cluster && px_snapshot_find(cand, XDS_CLUSTER, bad_unless_cluster))) {
		snprintf(err, cap, "cannot bind %s", bad_listener);
		return -EINVAL;
	}
	px_snapshot_unref(applied);
	applied = px_snapshot_ref(cand);
	return 0;
}

/* ---- resources meshd would send */

static void any_of(Google__Protobuf__Any *a, const char *url, const ProtobufCMessage *m)
{
	google__protobuf__any__init(a);
	a->type_url = (char *)url;
	a->value.len = protobuf_c_message_get_packed_size(m);
	a->value.data = malloc(a->value.len ? a->value.len : 1);
	ck_assert_ptr_nonnull(a->value.data);
	protobuf_c_message_pack(m, a->value.data);
}

static void eds_cluster(Google__Protobuf__Any *a, const char *name, const char *service)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig e = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;

	c.name = (char *)name;
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	e.service_name = (char *)service;
	c.eds_cluster_config = &e;
	any_of(a, xds_type_url(XDS_CLUSTER), &c.base);
}

static void static_cluster(Google__Protobuf__Any *a, const char *name)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;

	c.name = (char *)name;
	any_of(a, xds_type_url(XDS_CLUSTER), &c.base);
}

static void cla(Google__Protobuf__Any *a, const char *name)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment m = ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;

	m.cluster_name = (char *)name;
	any_of(a, xds_type_url(XDS_ENDPOINT), &m.base);
}

/* A route config; vhost names one virtual host (NULL: none), to make a
 * different version of the same config. */
static void route_config_vh(Google__Protobuf__Any *a, const char *name, const char *vhost)
{
	Envoy__Config__Route__V3__RouteConfiguration m = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	Envoy__Config__Route__V3__VirtualHost vh = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__INIT;
	Envoy__Config__Route__V3__VirtualHost *vhs[] = { &vh };

	m.name = (char *)name;
	if (vhost) {
		vh.name = (char *)vhost;
		m.n_virtual_hosts = 1;
		m.virtual_hosts = vhs;
	}
	any_of(a, xds_type_url(XDS_ROUTE), &m.base);
}

static void route_config(Google__Protobuf__Any *a, const char *name)
{
	route_config_vh(a, name, NULL);
}

/* A listener with one filter chain whose HCM takes route config rds (and
 * has request_timeout rt when not NULL). */
static void listener_rt(Google__Protobuf__Any *a, const char *name, const char *rds, Google__Protobuf__Duration *rt)
{
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	Envoy__Config__Listener__V3__Filter f = ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager h =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds r =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Google__Protobuf__Any hany;
	Envoy__Config__Listener__V3__FilterChain *fcs[] = { &fc };
	Envoy__Config__Listener__V3__Filter *fs[] = { &f };

	r.route_config_name = (char *)rds;
	h.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	h.rds = &r;
	h.request_timeout = rt;
	any_of(&hany, HCM_URL, &h.base);
	f.name = "envoy.filters.network.http_connection_manager";
	f.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f.typed_config = &hany;
	fc.n_filters = 1;
	fc.filters = fs;
	l.name = (char *)name;
	l.n_filter_chains = 1;
	l.filter_chains = fcs;
	any_of(a, xds_type_url(XDS_LISTENER), &l.base);
	free(hany.value.data);
}

static void listener(Google__Protobuf__Any *a, const char *name, const char *rds)
{
	listener_rt(a, name, rds, NULL);
}

/* Sends a response of type t with n resources (freed here). */
static void respond(struct xds_client *c, enum xds_type t, const char *version, const char *nonce,
		    Google__Protobuf__Any *res, size_t n)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse r = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
	Google__Protobuf__Any *ptrs[16];
	uint8_t *buf;
	size_t i, len;

	ck_assert_uint_le(n, 16);
	for (i = 0; i < n; i++)
		ptrs[i] = &res[i];
	r.version_info = (char *)version;
	r.nonce = (char *)nonce;
	r.type_url = (char *)xds_type_url(t);
	r.n_resources = n;
	r.resources = ptrs;
	len = protobuf_c_message_get_packed_size(&r.base);
	buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(buf);
	protobuf_c_message_pack(&r.base, buf);
	xds_client_stream_recv(c, buf, len);
	free(buf);
	for (i = 0; i < n; i++)
		free(res[i].value.data);
}

static void ack_is(const Envoy__Service__Discovery__V3__DiscoveryRequest *r, const char *version, const char *nonce)
{
	ck_assert_str_eq(r->version_info, version);
	ck_assert_str_eq(r->response_nonce, nonce);
	ck_assert_ptr_null(r->error_detail);
}

static void names_are(const Envoy__Service__Discovery__V3__DiscoveryRequest *r, const char *a, const char *b)
{
	ck_assert_uint_eq(r->n_resource_names, b ? 2 : 1);
	ck_assert_str_eq(r->resource_names[0], a);
	if (b)
		ck_assert_str_eq(r->resource_names[1], b);
}

static struct ev_loop *loop;

static struct xds_client *client(void)
{
	struct xds_client_config cfg;
	struct xds_client *c;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "sidecar~10.1.2.3~app-1.shop~shop.svc.cluster.local";
	cfg.labels = "app=app,version=v1";
	cfg.service_account = "app-sa";
	cfg.version = "test";
	cfg.apply = apply;
	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(xds_client_new(loop, &cfg, &c), 0);
	apply_calls = apply_fail = 0;
	applied = NULL;
	reqs_clear();
	return c;
}

static void client_done(struct xds_client *c)
{
	xds_client_free(c);
	px_snapshot_unref(applied);
	applied = NULL;
	ev_loop_free(loop);
	reqs_clear();
}

static const char *meta(const Envoy__Config__Core__V3__Node *n, const char *key)
{
	size_t i;

	for (i = 0; i < n->metadata->n_fields; i++)
		if (!strcmp(n->metadata->fields[i]->key, key))
			return n->metadata->fields[i]->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
				       ? n->metadata->fields[i]->value->string_value
				       : "(struct)";
	return NULL;
}

START_TEST(subscribe_warm_ack_ready)
{
	struct xds_client *c = client();
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	Google__Protobuf__Any res[4];

	ck_assert_int_eq(xds_client_stream_begin(c, capture, NULL), 0);
	/* CDS then LDS, wildcard, the Node on the first request only */
	r = next_req(XDS_CLUSTER);
	ck_assert_uint_eq(r->n_resource_names, 0);
	ck_assert_ptr_nonnull(r->node);
	ck_assert_str_eq(r->node->id, "sidecar~10.1.2.3~app-1.shop~shop.svc.cluster.local");
	ck_assert_str_eq(r->node->user_agent_name, "meshproxy");
	ck_assert_str_eq(meta(r->node, "NAMESPACE"), "shop");
	ck_assert_str_eq(meta(r->node, "SERVICE_ACCOUNT"), "app-sa");
	ck_assert_str_eq(meta(r->node, "INSTANCE_IPS"), "10.1.2.3");
	ck_assert_str_eq(meta(r->node, "LABELS"), "(struct)");
	ck_assert_str_eq(r->version_info, "");
	r = next_req(XDS_LISTENER);
	ck_assert_ptr_null(r->node);
	no_more_reqs();

	/* CDS: an EDS cluster and a static one; the EDS one warms */
	eds_cluster(&res[0], "outbound|80||a", "outbound|80||a");
	static_cluster(&res[1], "inbound|8080||");
	respond(c, XDS_CLUSTER, "c1", "n1", res, 2);
	ack_is(next_req(XDS_CLUSTER), "c1", "n1");
	r = next_req(XDS_ENDPOINT);
	names_are(r, "outbound|80||a", NULL);
	ck_assert_str_eq(r->response_nonce, "");
	no_more_reqs();
	ck_assert_ptr_nonnull(applied);
	ck_assert_uint_eq(applied->sets[XDS_CLUSTER].n, 1); /* the static one only */
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_CLUSTER, "outbound|80||a"));
	ck_assert_int_eq(*xds_client_ready(c), 0);

	/* EDS releases the cluster */
	cla(&res[0], "outbound|80||a");
	respond(c, XDS_ENDPOINT, "e1", "n2", res, 1);
	ack_is(next_req(XDS_ENDPOINT), "e1", "n2");
	no_more_reqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "outbound|80||a"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ENDPOINT, "outbound|80||a"));
	ck_assert_int_eq(*xds_client_ready(c), 0); /* no LDS yet */

	/* LDS: the listener waits for route config "80" */
	listener(&res[0], "0.0.0.0_80", "80");
	respond(c, XDS_LISTENER, "l1", "n3", res, 1);
	ack_is(next_req(XDS_LISTENER), "l1", "n3");
	names_are(next_req(XDS_ROUTE), "80", NULL);
	no_more_reqs();
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "0.0.0.0_80"));
	ck_assert_int_eq(*xds_client_ready(c), 0);

	route_config(&res[0], "80");
	respond(c, XDS_ROUTE, "r1", "n4", res, 1);
	ack_is(next_req(XDS_ROUTE), "r1", "n4");
	no_more_reqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "0.0.0.0_80"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "80"));
	ck_assert_ptr_eq(xds_client_snapshot(c), applied);
	ck_assert_int_eq(*xds_client_ready(c), 1);
	ck_assert_uint_eq(xds_client_stats(c)->type[XDS_CLUSTER].update_success, 1);
	ck_assert_uint_eq(xds_client_stats(c)->type[XDS_ROUTE].update_success, 1);
	client_done(c);
}
END_TEST

/* Brings c to: cluster A (EDS "A"), listener L (RDS "R"), all applied. */
static void bring_up(struct xds_client *c)
{
	Google__Protobuf__Any res[2];

	ck_assert_int_eq(xds_client_stream_begin(c, capture, NULL), 0);
	eds_cluster(&res[0], "A", "A");
	respond(c, XDS_CLUSTER, "c1", "n1", res, 1);
	cla(&res[0], "A");
	respond(c, XDS_ENDPOINT, "e1", "n2", res, 1);
	listener(&res[0], "L", "R");
	respond(c, XDS_LISTENER, "l1", "n3", res, 1);
	route_config(&res[0], "R");
	respond(c, XDS_ROUTE, "r1", "n4", res, 1);
	ck_assert_int_eq(*xds_client_ready(c), 1);
	seen = nreq;
}

START_TEST(nack_keeps_last_good)
{
	struct xds_client *c = client();
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	const struct px_snapshot *before;
	Google__Protobuf__Any res[2];
	int calls;

	bring_up(c);
	before = applied;
	/* the engine refuses: NACK with the reason, the old version, the new nonce */
	apply_fail = 1;
	route_config_vh(&res[0], "R", "changed");
	respond(c, XDS_ROUTE, "r2", "n5", res, 1);
	r = next_req(XDS_ROUTE);
	ck_assert_str_eq(r->version_info, "r1");
	ck_assert_str_eq(r->response_nonce, "n5");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_int_eq(r->error_detail->code, 3); /* INVALID_ARGUMENT */
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "engine refuses"));
	names_are(r, "R", NULL);
	no_more_reqs();
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	ck_assert_uint_eq(xds_client_stats(c)->type[XDS_ROUTE].update_rejected, 1);

	/* a resource of the wrong type: NACKed before the engine sees it */
	apply_fail = 0;
	calls = apply_calls;
	static_cluster(&res[0], "X");
	res[0].type_url = (char *)xds_type_url(XDS_LISTENER);
	respond(c, XDS_CLUSTER, "c2", "n6", res, 1);
	r = next_req(XDS_CLUSTER);
	ck_assert_str_eq(r->version_info, "c1");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_int_eq(apply_calls, calls);
	/* bytes that do not decode */
	res[0].type_url = (char *)xds_type_url(XDS_CLUSTER);
	res[0].value.data = malloc(3);
	res[0].value.len = 3;
	memcpy(res[0].value.data, "\x0a\xff\x7f", 3);
	respond(c, XDS_CLUSTER, "c3", "n7", res, 1);
	r = next_req(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "does not decode"));
	/* two resources with one name */
	static_cluster(&res[0], "D");
	static_cluster(&res[1], "D");
	respond(c, XDS_CLUSTER, "c4", "n8", res, 2);
	r = next_req(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "duplicate"));
	no_more_reqs();
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	ck_assert_ptr_nonnull(px_snapshot_find(before, XDS_CLUSTER, "A"));

	/* a response for a type never subscribed is ignored */
	static_cluster(&res[0], "S");
	res[0].type_url = (char *)xds_type_url(XDS_SECRET);
	respond(c, XDS_SECRET, "s1", "n9", res, 1);
	no_more_reqs();
	ck_assert_uint_eq(xds_client_stats(c)->responses_ignored, 1);
	client_done(c);
}
END_TEST

/* A Duration Envoy refuses (DurationUtil: negative, or seconds past
 * 315576000000) is NACKed wherever it sits, inside an Any too, before
 * anything converts it to milliseconds (a route's seconds * 1000 overflowed
 * int64, undefined behaviour). */
START_TEST(duration_out_of_range_nacked)
{
	struct xds_client *c = client();
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Any res[1];
	int calls;

	bring_up(c);
	calls = apply_calls;
	cl.name = "T";
	cl.connect_timeout = &d;
	d.seconds = INT64_MAX;
	any_of(&res[0], xds_type_url(XDS_CLUSTER), &cl.base);
	respond(c, XDS_CLUSTER, "c2", "n5", res, 1);
	r = next_req(XDS_CLUSTER);
	ck_assert_str_eq(r->version_info, "c1");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_msg(strstr(r->error_detail->message, "Duration out-of-range"), "%s", r->error_detail->message);
	/* negative, in the HCM inside the listener's Any */
	d.seconds = -1;
	listener_rt(&res[0], "L", "R", &d);
	respond(c, XDS_LISTENER, "l2", "n6", res, 1);
	r = next_req(XDS_LISTENER);
	ck_assert_str_eq(r->version_info, "l1");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_msg(strstr(r->error_detail->message, "Duration out-of-range"), "%s", r->error_detail->message);
	ck_assert_int_eq(apply_calls, calls);
	/* nanos past a second */
	d.seconds = 1;
	d.nanos = 1000000000;
	any_of(&res[0], xds_type_url(XDS_CLUSTER), &cl.base);
	respond(c, XDS_CLUSTER, "c3", "n7", res, 1);
	r = next_req(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->error_detail);
	/* at the top of the range: taken */
	d.seconds = 315576000000LL;
	d.nanos = 999999999;
	any_of(&res[0], xds_type_url(XDS_CLUSTER), &cl.base);
	respond(c, XDS_CLUSTER, "c4", "n8", res, 1);
	r = next_req(XDS_CLUSTER);
	ck_assert_ptr_null(r->error_detail);
	reqs_clear(); /* (the cluster change re-asks for endpoints) */
	client_done(c);
}
END_TEST

START_TEST(warming_keeps_working_versions)
{
	struct xds_client *c = client();
	const struct px_resource *oldA, *oldL;
	Google__Protobuf__Any res[2];

	bring_up(c);
	oldA = px_snapshot_find(applied, XDS_CLUSTER, "A");
	oldL = px_snapshot_find(applied, XDS_LISTENER, "L");
	/* cluster A moves to EDS name "A2": the old A and its endpoints keep serving */
	eds_cluster(&res[0], "A", "A2");
	respond(c, XDS_CLUSTER, "c2", "n5", res, 1);
	ack_is(next_req(XDS_CLUSTER), "c2", "n5");
	names_are(next_req(XDS_ENDPOINT), "A2", NULL);
	no_more_reqs();
	ck_assert_ptr_eq(px_snapshot_find(applied, XDS_CLUSTER, "A"), oldA);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ENDPOINT, "A"));
	cla(&res[0], "A2");
	respond(c, XDS_ENDPOINT, "e2", "n6", res, 1);
	ack_is(next_req(XDS_ENDPOINT), "e2", "n6");
	ck_assert_ptr_ne(px_snapshot_find(applied, XDS_CLUSTER, "A"), oldA);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ENDPOINT, "A2"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ENDPOINT, "A")); /* nothing uses it now */

	/* listener L moves to route config "R2": the old L and "R" stay until R2 arrives */
	listener(&res[0], "L", "R2");
	respond(c, XDS_LISTENER, "l2", "n7", res, 1);
	ack_is(next_req(XDS_LISTENER), "l2", "n7");
	names_are(next_req(XDS_ROUTE), "R2", NULL);
	ck_assert_ptr_eq(px_snapshot_find(applied, XDS_LISTENER, "L"), oldL);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "R"));
	route_config(&res[0], "R2");
	route_config(&res[1], "unasked");
	respond(c, XDS_ROUTE, "r2", "n8", res, 2);
	ack_is(next_req(XDS_ROUTE), "r2", "n8");
	no_more_reqs();
	ck_assert_ptr_ne(px_snapshot_find(applied, XDS_LISTENER, "L"), oldL);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "R2"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ROUTE, "R"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ROUTE, "unasked"));

	/* LDS removing L: gone at once, and RDS unsubscribed */
	respond(c, XDS_LISTENER, "l3", "n9", res, 0);
	ack_is(next_req(XDS_LISTENER), "l3", "n9");
	ck_assert_uint_eq(next_req(XDS_ROUTE)->n_resource_names, 0);
	ck_assert_uint_eq(applied->sets[XDS_LISTENER].n, 0);
	ck_assert_uint_eq(applied->sets[XDS_ROUTE].n, 0);
	client_done(c);
}
END_TEST

START_TEST(resubscribe_with_held_versions)
{
	struct xds_client *c = client();
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	const struct px_snapshot *before;
	Google__Protobuf__Any res[1];

	bring_up(c);
	before = applied;
	xds_client_stream_end(c, 14, "connection closed by peer");
	ck_assert_ptr_eq(xds_client_snapshot(c), before); /* keeps serving */
	ck_assert_int_eq(*xds_client_ready(c), 1);
	reqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture, NULL), 0);
	r = next_req(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->node); /* a new stream: the Node again */
	ack_is(r, "c1", "");
	r = next_req(XDS_ENDPOINT);
	ack_is(r, "e1", "");
	names_are(r, "A", NULL);
	ack_is(next_req(XDS_LISTENER), "l1", "");
	r = next_req(XDS_ROUTE);
	ack_is(r, "r1", "");
	names_are(r, "R", NULL);
	no_more_reqs();
	/* the same config again: ACKed, nothing re-applied */
	route_config(&res[0], "R");
	respond(c, XDS_ROUTE, "r1", "m1", res, 1);
	ack_is(next_req(XDS_ROUTE), "r1", "m1");
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	client_done(c);
}
END_TEST

START_TEST(config_dump_shape)
{
	struct xds_client *c = client();
	struct mesh_buf b;

	bring_up(c);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(xds_client_config_dump(c, &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"@type\": \"type.googleapis.com/envoy.admin.v3.ListenersConfigDump\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"dynamic_listeners\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"name\": \"L\", \"active_state\": {\"version_info\": \"l1\", \"listener\": "
					     "{\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"dynamic_active_clusters\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"dynamic_route_configs\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"dynamic_endpoint_configs\""));
	/* the .proto field names inside the resources too, as Envoy dumps them */
	ck_assert_ptr_nonnull(strstr(b.data, "\"cluster_name\":\"A\""));
	ck_assert_ptr_null(strstr(b.data, "\"clusterName\""));
	mesh_buf_reset(&b);
	xds_client_stats_text(c, &b);
	ck_assert_ptr_nonnull(strstr(b.data, "cluster_manager.cds.update_success: 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "listener_manager.lds.update_success: 1\n"));
	mesh_buf_cleanup(&b);
	client_done(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Delta */

static Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *dreqs[MAX_REQ];
static size_t ndreq, dseen;

static int capture_delta(void *ctx, const uint8_t *msg, size_t len)
{
	(void)ctx;
	ck_assert_uint_lt(ndreq, MAX_REQ);
	dreqs[ndreq] = envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, msg);
	ck_assert_ptr_nonnull(dreqs[ndreq]);
	ndreq++;
	return 0;
}

static void dreqs_clear(void)
{
	size_t i;

	for (i = 0; i < ndreq; i++)
		envoy__service__discovery__v3__delta_discovery_request__free_unpacked(dreqs[i], NULL);
	ndreq = dseen = 0;
}

static const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *next_dreq(enum xds_type t)
{
	ck_assert_msg(dseen < ndreq, "expected a delta %s request, none sent", xds_type_short(t));
	ck_assert_str_eq(dreqs[dseen]->type_url, xds_type_url(t));
	return dreqs[dseen++];
}

static void no_more_dreqs(void)
{
	ck_assert_msg(dseen == ndreq, "unexpected delta request for %s", dseen < ndreq ? dreqs[dseen]->type_url : "");
}

/* An ACK of nonce: nothing else in it. */
static void dack_is(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r, const char *nonce)
{
	ck_assert_str_eq(r->response_nonce, nonce);
	ck_assert_ptr_null(r->error_detail);
	ck_assert_uint_eq(r->n_resource_names_subscribe, 0);
	ck_assert_uint_eq(r->n_resource_names_unsubscribe, 0);
	ck_assert_uint_eq(r->n_initial_resource_versions, 0);
}

/* A subscription change (no nonce): sub / unsub, one name each or NULL. */
static void dsub_is(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r, const char *sub, const char *unsub)
{
	ck_assert_str_eq(r->response_nonce, "");
	ck_assert_uint_eq(r->n_resource_names_subscribe, sub ? 1 : 0);
	if (sub)
		ck_assert_str_eq(r->resource_names_subscribe[0], sub);
	ck_assert_uint_eq(r->n_resource_names_unsubscribe, unsub ? 1 : 0);
	if (unsub)
		ck_assert_str_eq(r->resource_names_unsubscribe[0], unsub);
}

/* The version initial_resource_versions gives name, or NULL. */
static const char *initial_version(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_initial_resource_versions; i++)
		if (!strcmp(r->initial_resource_versions[i]->key, name))
			return r->initial_resource_versions[i]->value;
	return NULL;
}

/* A Delta response: n resources (their Anys freed here) named names[i] with
 * versions vers[i], and nrm removed names. */
static void respond_delta(struct xds_client *c, enum xds_type t, const char *sysver, const char *nonce,
			  Google__Protobuf__Any *res, const char *const *names, const char *const *vers, size_t n,
			  const char *const *rm, size_t nrm)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryResponse r =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
	Envoy__Service__Discovery__V3__Resource dr[8], *ptrs[8];
	uint8_t *buf;
	size_t i, len;

	ck_assert_uint_le(n, 8);
	for (i = 0; i < n; i++) {
		envoy__service__discovery__v3__resource__init(&dr[i]);
		dr[i].name = (char *)names[i];
		dr[i].version = (char *)vers[i];
		dr[i].resource = &res[i];
		ptrs[i] = &dr[i];
	}
	r.system_version_info = (char *)sysver;
	r.nonce = (char *)nonce;
	r.type_url = (char *)xds_type_url(t);
	r.n_resources = n;
	r.resources = ptrs;
	r.n_removed_resources = nrm;
	r.removed_resources = (char **)rm;
	len = protobuf_c_message_get_packed_size(&r.base);
	buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(buf);
	protobuf_c_message_pack(&r.base, buf);
	xds_client_stream_recv(c, buf, len);
	free(buf);
	for (i = 0; i < n; i++)
		free(res[i].value.data);
}

/* One resource, no removals. */
static void respond1(struct xds_client *c, enum xds_type t, const char *nonce, Google__Protobuf__Any *res,
		     const char *name, const char *ver)
{
	respond_delta(c, t, "sys", nonce, res, &name, &ver, 1, NULL, 0);
}

static struct xds_client *delta_client(void)
{
	struct xds_client_config cfg;
	struct xds_client *c;

	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "sidecar~10.1.2.3~app-1.shop~shop.svc.cluster.local";
	cfg.version = "test";
	cfg.protocol = XDS_PROTOCOL_DELTA;
	cfg.apply = apply;
	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(xds_client_new(loop, &cfg, &c), 0);
	apply_calls = apply_fail = 0;
	bad_listener = bad_unless_cluster = NULL;
	applied = NULL;
	dreqs_clear();
	return c;
}

static void delta_done(struct xds_client *c)
{
	xds_client_free(c);
	px_snapshot_unref(applied);
	applied = NULL;
	ev_loop_free(loop);
	dreqs_clear();
}

/* Brings c to: cluster A (EDS "A", version ca1, endpoints ea1), listener L
 * (RDS "R", version la1; route config ra1), all applied, by Delta. */
static void delta_up(struct xds_client *c)
{
	Google__Protobuf__Any res[1];

	ck_assert_int_eq(xds_client_stream_begin(c, capture_delta, NULL), 0);
	eds_cluster(&res[0], "A", "A");
	respond1(c, XDS_CLUSTER, "n1", res, "A", "ca1");
	cla(&res[0], "A");
	respond1(c, XDS_ENDPOINT, "n2", res, "A", "ea1");
	listener(&res[0], "L", "R");
	respond1(c, XDS_LISTENER, "n3", res, "L", "la1");
	route_config(&res[0], "R");
	respond1(c, XDS_ROUTE, "n4", res, "R", "ra1");
	ck_assert_int_eq(*xds_client_ready(c), 1);
	dseen = ndreq;
}

START_TEST(delta_subscribe_ack_ready)
{
	struct xds_client *c = delta_client();
	const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r;
	Google__Protobuf__Any res[2];
	struct mesh_buf b;

	ck_assert_int_eq(xds_client_stream_begin(c, capture_delta, NULL), 0);
	/* CDS then LDS: the legacy wildcard (no names), nothing held yet */
	r = next_dreq(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->node);
	ck_assert_str_eq(r->node->id, "sidecar~10.1.2.3~app-1.shop~shop.svc.cluster.local");
	ck_assert_uint_eq(r->n_resource_names_subscribe, 0);
	ck_assert_uint_eq(r->n_initial_resource_versions, 0);
	ck_assert_str_eq(r->response_nonce, "");
	r = next_dreq(XDS_LISTENER);
	ck_assert_ptr_null(r->node);
	ck_assert_uint_eq(r->n_resource_names_subscribe, 0);
	no_more_dreqs();

	/* CDS: the EDS cluster warms, EDS subscribed by name (a request of its own) */
	eds_cluster(&res[0], "A", "A");
	static_cluster(&res[1], "inbound|8080||");
	{
		const char *names[] = { "A", "inbound|8080||" }, *vers[] = { "ca1", "ci1" };

		respond_delta(c, XDS_CLUSTER, "c1", "n1", res, names, vers, 2, NULL, 0);
	}
	dack_is(next_dreq(XDS_CLUSTER), "n1");
	r = next_dreq(XDS_ENDPOINT);
	dsub_is(r, "A", NULL);
	ck_assert_uint_eq(r->n_initial_resource_versions, 0);
	no_more_dreqs();
	ck_assert_uint_eq(applied->sets[XDS_CLUSTER].n, 1);
	ck_assert_int_eq(*xds_client_ready(c), 0);

	cla(&res[0], "A");
	respond1(c, XDS_ENDPOINT, "n2", res, "A", "ea1");
	dack_is(next_dreq(XDS_ENDPOINT), "n2");
	no_more_dreqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "A"));
	ck_assert_str_eq(px_snapshot_find(applied, XDS_ENDPOINT, "A")->version, "ea1");

	listener(&res[0], "L", "R");
	respond1(c, XDS_LISTENER, "n3", res, "L", "la1");
	dack_is(next_dreq(XDS_LISTENER), "n3");
	dsub_is(next_dreq(XDS_ROUTE), "R", NULL);
	no_more_dreqs();
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "L")); /* waits for "R" */

	/* a route config not asked for is dropped */
	route_config(&res[0], "R");
	route_config(&res[1], "unasked");
	{
		const char *names[] = { "R", "unasked" }, *vers[] = { "ra1", "rx1" };

		respond_delta(c, XDS_ROUTE, "r1", "n4", res, names, vers, 2, NULL, 0);
	}
	dack_is(next_dreq(XDS_ROUTE), "n4");
	no_more_dreqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "R"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ROUTE, "unasked"));
	ck_assert_int_eq(*xds_client_ready(c), 1);

	/* the config dump and stats: system_version_info as the type's version,
	 * the resource's own version beside it; the protocol named */
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(xds_client_config_dump(c, &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"version_info\": \"c1\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"name\": \"L\", \"active_state\": {\"version_info\": \"la1\""));
	mesh_buf_reset(&b);
	xds_client_stats_text(c, &b);
	ck_assert_ptr_nonnull(strstr(b.data, "control_plane.xds_delta: 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "control_plane.rds.resources_received: 2\n"));
	mesh_buf_cleanup(&b);
	ck_assert_int_eq(xds_client_stats(c)->protocol, XDS_PROTOCOL_DELTA);
	delta_done(c);
}
END_TEST

START_TEST(delta_nack_keeps_last_good)
{
	struct xds_client *c = delta_client();
	const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r;
	struct px_snapshot *before;
	Google__Protobuf__Any res[2];
	int calls;

	delta_up(c);
	before = px_snapshot_ref(applied); /* still looked at after it is replaced */
	/* the engine refuses: NACK = the nonce + error_detail, nothing else */
	apply_fail = 1;
	route_config_vh(&res[0], "R", "changed");
	respond1(c, XDS_ROUTE, "n5", res, "R", "ra2");
	r = next_dreq(XDS_ROUTE);
	ck_assert_str_eq(r->response_nonce, "n5");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_int_eq(r->error_detail->code, 3); /* INVALID_ARGUMENT */
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "engine refuses"));
	ck_assert_uint_eq(r->n_resource_names_subscribe, 0);
	no_more_dreqs();
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	ck_assert_str_eq(px_snapshot_find(before, XDS_ROUTE, "R")->version, "ra1");
	ck_assert_uint_eq(xds_client_stats(c)->type[XDS_ROUTE].update_rejected, 1);

	/* refused before the engine sees them: a Resource whose name is not
	 * the one inside it, a name both added and removed, no body */
	apply_fail = 0;
	calls = apply_calls;
	static_cluster(&res[0], "B");
	respond1(c, XDS_CLUSTER, "n6", res, "not-B", "cb1");
	r = next_dreq(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "carries the name B"));
	{
		const char *name = "B", *ver = "cb1", *rm[] = { "B" };

		static_cluster(&res[0], "B");
		respond_delta(c, XDS_CLUSTER, "s", "n7", res, &name, &ver, 1, rm, 1);
	}
	r = next_dreq(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "both added and removed"));
	{
		/* two resources with one name */
		const char *names[] = { "D", "D" }, *vers[] = { "1", "2" };

		static_cluster(&res[0], "D");
		static_cluster(&res[1], "D");
		respond_delta(c, XDS_CLUSTER, "s", "n8", res, names, vers, 2, NULL, 0);
	}
	r = next_dreq(XDS_CLUSTER);
	ck_assert_str_eq(r->response_nonce, "n8");
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "duplicate"));
	no_more_dreqs();
	ck_assert_int_eq(apply_calls, calls);
	ck_assert_ptr_eq(xds_client_snapshot(c), before);

	/* the fixed route config: ACKed and applied, the cluster untouched */
	route_config_vh(&res[0], "R", "fixed");
	respond1(c, XDS_ROUTE, "n9", res, "R", "ra3");
	dack_is(next_dreq(XDS_ROUTE), "n9");
	ck_assert_ptr_ne(xds_client_snapshot(c), before);
	ck_assert_str_eq(px_snapshot_find(applied, XDS_ROUTE, "R")->version, "ra3");
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "A"));
	px_snapshot_unref(before);
	delta_done(c);
}
END_TEST

START_TEST(delta_removed_and_unsubscribed)
{
	struct xds_client *c = delta_client();
	const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r;
	const struct px_resource *oldA;
	Google__Protobuf__Any res[1];

	delta_up(c);
	oldA = px_snapshot_find(applied, XDS_CLUSTER, "A");
	/* a new cluster alone: A stays (a Delta response is not the whole set) */
	static_cluster(&res[0], "B");
	respond1(c, XDS_CLUSTER, "n5", res, "B", "cb1");
	dack_is(next_dreq(XDS_CLUSTER), "n5");
	no_more_dreqs();
	ck_assert_ptr_eq(px_snapshot_find(applied, XDS_CLUSTER, "A"), oldA);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "B"));

	/* A removed: gone, and its endpoints unsubscribed */
	{
		const char *rm[] = { "A" };

		respond_delta(c, XDS_CLUSTER, "c3", "n6", NULL, NULL, NULL, 0, rm, 1);
	}
	dack_is(next_dreq(XDS_CLUSTER), "n6");
	dsub_is(next_dreq(XDS_ENDPOINT), NULL, "A");
	no_more_dreqs();
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_CLUSTER, "A"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ENDPOINT, "A"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "B"));
	ck_assert_uint_eq(xds_client_stats(c)->type[XDS_CLUSTER].resources_removed, 1);

	/* L moves to route config R2: R2 subscribed, R unsubscribed, in one
	 * request; the old L and R serve until R2 arrives */
	listener(&res[0], "L", "R2");
	respond1(c, XDS_LISTENER, "n7", res, "L", "la2");
	dack_is(next_dreq(XDS_LISTENER), "n7");
	dsub_is(next_dreq(XDS_ROUTE), "R2", "R");
	no_more_dreqs();
	ck_assert_str_eq(px_snapshot_find(applied, XDS_LISTENER, "L")->version, "la1");
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "R"));
	route_config(&res[0], "R2");
	respond1(c, XDS_ROUTE, "n8", res, "R2", "rb1");
	dack_is(next_dreq(XDS_ROUTE), "n8");
	ck_assert_str_eq(px_snapshot_find(applied, XDS_LISTENER, "L")->version, "la2");
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_ROUTE, "R"));

	/* L removed: gone at once, its route config unsubscribed and dropped */
	{
		const char *rm[] = { "L" };

		respond_delta(c, XDS_LISTENER, "l3", "n9", NULL, NULL, NULL, 0, rm, 1);
	}
	dack_is(next_dreq(XDS_LISTENER), "n9");
	r = next_dreq(XDS_ROUTE);
	dsub_is(r, NULL, "R2");
	no_more_dreqs();
	ck_assert_uint_eq(applied->sets[XDS_LISTENER].n, 0);
	ck_assert_uint_eq(applied->sets[XDS_ROUTE].n, 0);
	/* a late route config for the name given up is not taken */
	route_config(&res[0], "R2");
	respond1(c, XDS_ROUTE, "n10", res, "R2", "rb2");
	dack_is(next_dreq(XDS_ROUTE), "n10");
	ck_assert_uint_eq(applied->sets[XDS_ROUTE].n, 0);
	delta_done(c);
}
END_TEST

START_TEST(delta_reconnect_initial_versions)
{
	struct xds_client *c = delta_client();
	const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r;
	struct px_snapshot *before;
	Google__Protobuf__Any res[1];
	int calls;

	delta_up(c);
	before = px_snapshot_ref(applied); /* still looked at after it is replaced */
	xds_client_stream_end(c, 14, "connection closed by peer");
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	dreqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture_delta, NULL), 0);
	/* every type says what it holds; LDS/CDS still the legacy wildcard */
	r = next_dreq(XDS_CLUSTER);
	ck_assert_ptr_nonnull(r->node);
	ck_assert_uint_eq(r->n_resource_names_subscribe, 0);
	ck_assert_str_eq(r->response_nonce, "");
	ck_assert_uint_eq(r->n_initial_resource_versions, 1);
	ck_assert_str_eq(initial_version(r, "A"), "ca1");
	r = next_dreq(XDS_ENDPOINT);
	ck_assert_uint_eq(r->n_resource_names_subscribe, 1);
	ck_assert_str_eq(r->resource_names_subscribe[0], "A");
	ck_assert_str_eq(initial_version(r, "A"), "ea1");
	r = next_dreq(XDS_LISTENER);
	ck_assert_str_eq(initial_version(r, "L"), "la1");
	r = next_dreq(XDS_ROUTE);
	ck_assert_str_eq(r->resource_names_subscribe[0], "R");
	ck_assert_str_eq(initial_version(r, "R"), "ra1");
	no_more_dreqs();

	/* nothing changed: empty responses, ACKed, nothing applied */
	calls = apply_calls;
	respond_delta(c, XDS_CLUSTER, "c1", "m1", NULL, NULL, NULL, 0, NULL, 0);
	dack_is(next_dreq(XDS_CLUSTER), "m1");
	respond_delta(c, XDS_LISTENER, "l1", "m2", NULL, NULL, NULL, 0, NULL, 0);
	dack_is(next_dreq(XDS_LISTENER), "m2");
	no_more_dreqs();
	ck_assert_int_eq(apply_calls, calls);
	ck_assert_ptr_eq(xds_client_snapshot(c), before);
	/* one that changed meanwhile: only it */
	route_config_vh(&res[0], "R", "edited");
	respond1(c, XDS_ROUTE, "m3", res, "R", "ra2");
	dack_is(next_dreq(XDS_ROUTE), "m3");
	ck_assert_int_eq(apply_calls, calls + 1);
	ck_assert_str_eq(px_snapshot_find(applied, XDS_ROUTE, "R")->version, "ra2");
	ck_assert_ptr_eq(px_snapshot_find(applied, XDS_CLUSTER, "A"), px_snapshot_find(before, XDS_CLUSTER, "A"));
	px_snapshot_unref(before);
	delta_done(c);
}
END_TEST

/* A NACK of type t quoting nonce whose message has what. */
static void dnack_is(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r, const char *nonce, const char *what)
{
	ck_assert_str_eq(r->response_nonce, nonce);
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, what));
}

/* LDS: "bad" (route config R) added and L removed, NACKed: L serves on. */
static void delta_nack_bad_listener(struct xds_client *c, const char *nonce)
{
	Google__Protobuf__Any res[1];
	const char *name = "bad", *ver = "lb1", *rm[] = { "L" };

	bad_listener = "bad";
	listener(&res[0], "bad", "R");
	respond_delta(c, XDS_LISTENER, "l2", nonce, res, &name, &ver, 1, rm, 1);
	dnack_is(next_dreq(XDS_LISTENER), nonce, "cannot bind bad");
	no_more_dreqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "bad"));
}

/* The breaker's repro: a removal carried by a NACKed response (L, replaced
 * by a listener that cannot bind) is not sent again by meshd, which takes
 * what it sent as held; the next response (L3 added, "bad" removed) must
 * leave L3 alone, not L and L3. */
START_TEST(delta_nack_then_fix)
{
	struct xds_client *c = delta_client();
	Google__Protobuf__Any res[1];

	delta_up(c);
	delta_nack_bad_listener(c, "n5");
	{
		const char *name = "L3", *ver = "l3", *rm[] = { "bad" };

		listener(&res[0], "L3", "R");
		respond_delta(c, XDS_LISTENER, "l3", "n6", res, &name, &ver, 1, rm, 1);
	}
	dack_is(next_dreq(XDS_LISTENER), "n6");
	no_more_dreqs();
	ck_assert_uint_eq(applied->sets[XDS_LISTENER].n, 1);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L3"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "L"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_ROUTE, "R"));
	delta_done(c);
}
END_TEST

/* After the NACK: another type's update goes through without the rejected
 * listener; then meshd removes the bad listener, and the removal of L the
 * NACKed response carried takes effect with it (R unsubscribed). */
START_TEST(delta_nack_then_remove)
{
	struct xds_client *c = delta_client();
	Google__Protobuf__Any res[1];

	delta_up(c);
	delta_nack_bad_listener(c, "n5");
	static_cluster(&res[0], "B");
	respond1(c, XDS_CLUSTER, "n6", res, "B", "cb1");
	dack_is(next_dreq(XDS_CLUSTER), "n6");
	no_more_dreqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "B"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L"));
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "bad"));
	{
		const char *rm[] = { "bad" };

		respond_delta(c, XDS_LISTENER, "l3", "n7", NULL, NULL, NULL, 0, rm, 1);
	}
	dack_is(next_dreq(XDS_LISTENER), "n7");
	dsub_is(next_dreq(XDS_ROUTE), NULL, "R");
	no_more_dreqs();
	ck_assert_uint_eq(applied->sets[XDS_LISTENER].n, 0);
	ck_assert_uint_eq(applied->sets[XDS_ROUTE].n, 0);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "B"));
	delta_done(c);
}
END_TEST

/* A NACKed listener that a later response of another type makes valid
 * (here: the cluster it needs arrives): the whole server's view is taken. */
START_TEST(delta_nack_then_other_type_fixes)
{
	struct xds_client *c = delta_client();
	Google__Protobuf__Any res[1];

	delta_up(c);
	bad_listener = "L2";
	bad_unless_cluster = "C2";
	listener(&res[0], "L2", "R");
	respond1(c, XDS_LISTENER, "n5", res, "L2", "l21");
	dnack_is(next_dreq(XDS_LISTENER), "n5", "cannot bind L2");
	no_more_dreqs();
	ck_assert_ptr_null(px_snapshot_find(applied, XDS_LISTENER, "L2"));
	static_cluster(&res[0], "C2");
	respond1(c, XDS_CLUSTER, "n6", res, "C2", "c21");
	dack_is(next_dreq(XDS_CLUSTER), "n6");
	no_more_dreqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "C2"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L2"));
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L"));
	delta_done(c);
}
END_TEST

/* A new stream after a NACK reports what is applied (L, not "bad"), so
 * meshd sends again what the client never took. */
START_TEST(delta_reconnect_after_nack)
{
	struct xds_client *c = delta_client();
	const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r;
	Google__Protobuf__Any res[1];

	delta_up(c);
	delta_nack_bad_listener(c, "n5");
	xds_client_stream_end(c, 14, "connection closed by peer");
	dreqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture_delta, NULL), 0);
	r = next_dreq(XDS_CLUSTER);
	ck_assert_str_eq(initial_version(r, "A"), "ca1");
	next_dreq(XDS_ENDPOINT);
	r = next_dreq(XDS_LISTENER);
	ck_assert_uint_eq(r->n_initial_resource_versions, 1);
	ck_assert_str_eq(initial_version(r, "L"), "la1");
	ck_assert_ptr_null(initial_version(r, "bad"));
	next_dreq(XDS_ROUTE);
	no_more_dreqs();
	/* meshd's config moved on meanwhile: L4 instead of L */
	{
		const char *name = "L4", *ver = "l41", *rm[] = { "L" };

		listener(&res[0], "L4", "R");
		respond_delta(c, XDS_LISTENER, "l4", "m1", res, &name, &ver, 1, rm, 1);
	}
	dack_is(next_dreq(XDS_LISTENER), "m1");
	no_more_dreqs();
	ck_assert_uint_eq(applied->sets[XDS_LISTENER].n, 1);
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_LISTENER, "L4"));
	delta_done(c);
}
END_TEST

/* A cluster whose UpstreamTlsContext names SDS secret ca (and the
 * identity's "default", which is not asked for). */
static void tls_cluster(Google__Protobuf__Any *a, const char *name, const char *ca)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext u =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext cc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig v =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
	Google__Protobuf__Any any;

	v.name = (char *)ca;
	cc.validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG;
	cc.validation_context_sds_secret_config = &v;
	u.common_tls_context = &cc;
	any_of(&any, "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", &u.base);
	ts.name = "envoy.transport_sockets.tls";
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	c.name = (char *)name;
	c.transport_socket = &ts;
	any_of(a, xds_type_url(XDS_CLUSTER), &c.base);
	free(any.value.data);
}

/* A validation-context Secret. */
static void ca_secret(Google__Protobuf__Any *a, const char *name, const char *pem)
{
	Envoy__Extensions__TransportSockets__Tls__V3__Secret m = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Config__Core__V3__DataSource d = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;

	d.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
	d.inline_bytes.data = (uint8_t *)pem;
	d.inline_bytes.len = strlen(pem);
	vc.trusted_ca = &d;
	m.name = (char *)name;
	m.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
	m.validation_context = &vc;
	any_of(a, xds_type_url(XDS_SECRET), &m.base);
}

START_TEST(secrets_named_by_clusters)
{
	struct xds_client_config cfg;
	struct xds_client *c;
	struct px_sds *store;
	struct tf_ca ca, ca2;
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	Google__Protobuf__Any res[2];
	unsigned g1;
	int calls;

	tf_ca_make(&ca, "one");
	tf_ca_make(&ca2, "two");
	ck_assert_int_eq(px_sds_new(&store), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "sidecar~10.1.2.3~app-1.shop~shop.svc.cluster.local";
	cfg.version = "test";
	cfg.apply = apply;
	cfg.sds = store;
	loop = ev_loop_new();
	ck_assert_int_eq(xds_client_new(loop, &cfg, &c), 0);
	apply_calls = apply_fail = 0;
	applied = NULL;
	reqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture, NULL), 0);
	next_req(XDS_CLUSTER);
	next_req(XDS_LISTENER);
	no_more_reqs(); /* nothing named yet: no SDS request */

	/* CDS names a secret: applied at once (no warming on secrets), then asked for */
	tls_cluster(&res[0], "outbound|443||b", "kubernetes://b-cacert");
	static_cluster(&res[1], "inbound|8080||");
	respond(c, XDS_CLUSTER, "c1", "n1", res, 2);
	ack_is(next_req(XDS_CLUSTER), "c1", "n1");
	r = next_req(XDS_SECRET);
	names_are(r, "kubernetes://b-cacert", NULL);
	no_more_reqs();
	ck_assert_ptr_nonnull(px_snapshot_find(applied, XDS_CLUSTER, "outbound|443||b"));
	calls = apply_calls;

	/* the Secret: to the store, ACKed, nothing compiled */
	ca_secret(&res[0], "kubernetes://b-cacert", ca.pem);
	respond(c, XDS_SECRET, "s1", "n2", res, 1);
	ack_is(next_req(XDS_SECRET), "s1", "n2");
	no_more_reqs();
	ck_assert_int_eq(apply_calls, calls);
	g1 = px_sds_generation(store, "kubernetes://b-cacert");
	ck_assert_uint_gt(g1, 0);
	ck_assert_str_eq(px_sds_get(store, "kubernetes://b-cacert")->ca_pem, ca.pem);

	/* a bad one: NACK, the store keeps the good one */
	ca_secret(&res[0], "kubernetes://b-cacert", "garbage");
	respond(c, XDS_SECRET, "s2", "n3", res, 1);
	r = next_req(XDS_SECRET);
	ck_assert_str_eq(r->version_info, "s1");
	ck_assert_str_eq(r->response_nonce, "n3");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "kubernetes://b-cacert"));
	ck_assert_uint_eq(px_sds_generation(store, "kubernetes://b-cacert"), g1);

	/* rotated: a new generation */
	ca_secret(&res[0], "kubernetes://b-cacert", ca2.pem);
	respond(c, XDS_SECRET, "s3", "n4", res, 1);
	ack_is(next_req(XDS_SECRET), "s3", "n4");
	ck_assert_uint_gt(px_sds_generation(store, "kubernetes://b-cacert"), g1);
	ck_assert_int_eq(apply_calls, calls);

	/* the cluster goes: the subscription and the store empty */
	static_cluster(&res[0], "inbound|8080||");
	respond(c, XDS_CLUSTER, "c2", "n5", res, 1);
	ack_is(next_req(XDS_CLUSTER), "c2", "n5");
	r = next_req(XDS_SECRET);
	ck_assert_uint_eq(r->n_resource_names, 0);
	no_more_reqs();
	ck_assert_uint_eq(px_sds_count(store), 0);

	xds_client_free(c);
	px_snapshot_unref(applied);
	applied = NULL;
	ev_loop_free(loop);
	reqs_clear();
	px_sds_free(store);
	tf_ca_free(&ca);
	tf_ca_free(&ca2);
}
END_TEST

/* gwbrk (issue 13): a bad Secret among good ones holds back none of them:
 * the good ones are stored, the bad one keeps its last good version, and
 * the response is NACKed all the same (Envoy's per-secret subscriptions). */
START_TEST(bad_secret_spares_the_others)
{
	struct xds_client_config cfg;
	struct xds_client *c;
	struct px_sds *store;
	struct tf_ca ca, ca2;
	const Envoy__Service__Discovery__V3__DiscoveryRequest *r;
	Google__Protobuf__Any res[2];
	unsigned ga, gb;

	tf_ca_make(&ca, "one");
	tf_ca_make(&ca2, "two");
	ck_assert_int_eq(px_sds_new(&store), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "router~10.1.2.3~gw-1.istio-system~istio-system.svc.cluster.local";
	cfg.version = "test";
	cfg.apply = apply;
	cfg.sds = store;
	loop = ev_loop_new();
	ck_assert_int_eq(xds_client_new(loop, &cfg, &c), 0);
	apply_calls = apply_fail = 0;
	applied = NULL;
	reqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture, NULL), 0);
	next_req(XDS_CLUSTER);
	next_req(XDS_LISTENER);
	tls_cluster(&res[0], "outbound|443||a", "kubernetes://a-cacert");
	tls_cluster(&res[1], "outbound|443||b", "kubernetes://b-cacert");
	respond(c, XDS_CLUSTER, "c1", "n1", res, 2);
	ack_is(next_req(XDS_CLUSTER), "c1", "n1");
	next_req(XDS_SECRET);
	no_more_reqs();

	ca_secret(&res[0], "kubernetes://a-cacert", ca.pem);
	ca_secret(&res[1], "kubernetes://b-cacert", ca.pem);
	respond(c, XDS_SECRET, "s1", "n2", res, 2);
	ack_is(next_req(XDS_SECRET), "s1", "n2");
	ga = px_sds_generation(store, "kubernetes://a-cacert");
	gb = px_sds_generation(store, "kubernetes://b-cacert");
	ck_assert_uint_gt(ga, 0);
	ck_assert_uint_gt(gb, 0);

	/* b broken while a rotates: a's new CA is taken, b keeps its last good */
	ca_secret(&res[0], "kubernetes://a-cacert", ca2.pem);
	ca_secret(&res[1], "kubernetes://b-cacert", "garbage");
	respond(c, XDS_SECRET, "s2", "n3", res, 2);
	r = next_req(XDS_SECRET);
	ck_assert_str_eq(r->version_info, "s1");
	ck_assert_str_eq(r->response_nonce, "n3");
	ck_assert_ptr_nonnull(r->error_detail);
	ck_assert_ptr_nonnull(strstr(r->error_detail->message, "kubernetes://b-cacert"));
	ck_assert_uint_gt(px_sds_generation(store, "kubernetes://a-cacert"), ga);
	ck_assert_str_eq(px_sds_get(store, "kubernetes://a-cacert")->ca_pem, ca2.pem);
	ck_assert_uint_eq(px_sds_generation(store, "kubernetes://b-cacert"), gb);
	ck_assert_str_eq(px_sds_get(store, "kubernetes://b-cacert")->ca_pem, ca.pem);

	/* b fixed: ACKed, both current */
	ca_secret(&res[0], "kubernetes://a-cacert", ca2.pem);
	ca_secret(&res[1], "kubernetes://b-cacert", ca2.pem);
	respond(c, XDS_SECRET, "s3", "n4", res, 2);
	ack_is(next_req(XDS_SECRET), "s3", "n4");
	ck_assert_str_eq(px_sds_get(store, "kubernetes://b-cacert")->ca_pem, ca2.pem);

	xds_client_free(c);
	px_snapshot_unref(applied);
	applied = NULL;
	ev_loop_free(loop);
	reqs_clear();
	px_sds_free(store);
	tf_ca_free(&ca);
	tf_ca_free(&ca2);
}
END_TEST

/* gwbrk (issue 13): Delta: meshd removing a Secret a cluster still names
 * (its credentialName Secret deleted) is ACKed and ignored, the store
 * keeps the last one (Envoy's SdsApi); once nothing names it, it goes. */
START_TEST(delta_secret_removal_in_use_ignored)
{
	struct xds_client_config cfg;
	struct xds_client *c;
	struct px_sds *store;
	struct tf_ca ca;
	Google__Protobuf__Any res[1];
	const char *rm[] = { "kubernetes://b-cacert" };
	const char *cl[] = { "outbound|443||b" };

	tf_ca_make(&ca, "one");
	ck_assert_int_eq(px_sds_new(&store), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "router~10.1.2.3~gw-1.istio-system~istio-system.svc.cluster.local";
	cfg.version = "test";
	cfg.protocol = XDS_PROTOCOL_DELTA;
	cfg.apply = apply;
	cfg.sds = store;
	loop = ev_loop_new();
	ck_assert_int_eq(xds_client_new(loop, &cfg, &c), 0);
	apply_calls = apply_fail = 0;
	bad_listener = bad_unless_cluster = NULL;
	applied = NULL;
	dreqs_clear();
	ck_assert_int_eq(xds_client_stream_begin(c, capture_delta, NULL), 0);
	dseen = ndreq;
	tls_cluster(&res[0], "outbound|443||b", "kubernetes://b-cacert");
	respond1(c, XDS_CLUSTER, "n1", res, "outbound|443||b", "c1");
	dack_is(next_dreq(XDS_CLUSTER), "n1");
	dsub_is(next_dreq(XDS_SECRET), "kubernetes://b-cacert", NULL);
	ca_secret(&res[0], "kubernetes://b-cacert", ca.pem);
	respond1(c, XDS_SECRET, "n2", res, "kubernetes://b-cacert", "s1");
	dack_is(next_dreq(XDS_SECRET), "n2");
	ck_assert_str_eq(px_sds_get(store, "kubernetes://b-cacert")->ca_pem, ca.pem);

	/* removed while the cluster names it: ACKed, kept */
	respond_delta(c, XDS_SECRET, "sys", "n3", NULL, NULL, NULL, 0, rm, 1);
	dack_is(next_dreq(XDS_SECRET), "n3");
	ck_assert_ptr_nonnull(px_sds_get(store, "kubernetes://b-cacert"));
	ck_assert_str_eq(px_sds_get(store, "kubernetes://b-cacert")->ca_pem, ca.pem);

	/* the cluster goes: unsubscribed, dropped */
	respond_delta(c, XDS_CLUSTER, "sys", "n4", NULL, NULL, NULL, 0, cl, 1);
	dack_is(next_dreq(XDS_CLUSTER), "n4");
	dsub_is(next_dreq(XDS_SECRET), NULL, "kubernetes://b-cacert");
	ck_assert_uint_eq(px_sds_count(store), 0);

	delta_done(c);
	px_sds_free(store);
	tf_ca_free(&ca);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_client");
	TCase *tc = tcase_create("ads");
	SRunner *sr;
	int failed;

	(void)tf_leaf_make; /* tlsfix.h's leaves are not needed here */
	(void)tf_leaf_free;
	tcase_add_test(tc, subscribe_warm_ack_ready);
	tcase_add_test(tc, secrets_named_by_clusters);
	tcase_add_test(tc, bad_secret_spares_the_others);
	tcase_add_test(tc, delta_secret_removal_in_use_ignored);
	tcase_add_test(tc, nack_keeps_last_good);
	tcase_add_test(tc, duration_out_of_range_nacked);
	tcase_add_test(tc, warming_keeps_working_versions);
	tcase_add_test(tc, resubscribe_with_held_versions);
	tcase_add_test(tc, config_dump_shape);
	tcase_add_test(tc, delta_subscribe_ack_ready);
	tcase_add_test(tc, delta_nack_keeps_last_good);
	tcase_add_test(tc, delta_removed_and_unsubscribed);
	tcase_add_test(tc, delta_reconnect_initial_versions);
	tcase_add_test(tc, delta_nack_then_fix);
	tcase_add_test(tc, delta_nack_then_remove);
	tcase_add_test(tc, delta_nack_then_other_type_fixes);
	tcase_add_test(tc, delta_reconnect_after_nack);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
