/*
 * test_ads_sidecar.c - the ADS core serving sidecars whole from per-key
 * sets (ads.h whole_flavours), driven directly with no gRPC: a sidecar
 * stream's key (flavour, namespace, labels, service account; the IP only
 * without labels) is requested once when its Node is first seen, its
 * responses wait for the key's set, LDS/CDS wildcards read that set and
 * RDS/EDS are served by name from it (SotW and Delta), replicas share the
 * key, a new set re-pushes only what changed (RDS and EDS pushes carry
 * only the changed resources), and the key is released
 * with its last stream.  The test plays the push stage: it takes the
 * requests from the `want` callback and hands sets back.
 */
#include "controlplane/xds/ads.h"
#include "controlplane/xds/ads_int.h"

#include "controlplane/config/config.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

#include "ads_test_client.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_LDS "type.googleapis.com/envoy.config.listener.v3.Listener"
#define URL_RDS "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define URL_CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define URL_EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define ID_A1 "sidecar~10.0.0.1~a-1.demo~demo.svc.cluster.local"
#define ID_A2 "sidecar~10.0.0.2~a-2.demo~demo.svc.cluster.local"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DResp;

static struct xds_ads *ads;
/* what the core asked of "the stage" */
#define MAX_REQS 32
static struct xds_proxy_req *reqs[MAX_REQS];
static size_t nreqs;

static void want(void *ctx, struct xds_proxy_req *r)
{
	(void)ctx;
	ck_assert_uint_lt(nreqs, MAX_REQS);
	reqs[nreqs++] = r;
}

static void setup(void)
{
	struct xds_ads_config cfg = { .want = want, .whole_flavours = 1u << XDS_FLAVOUR_SIDECAR };

	nreqs = 0;
	ck_assert_int_eq(xds_ads_new(&cfg, &ads), 0);
}

static void teardown(void)
{
	size_t i;

	for (i = 0; i < nreqs; i++)
		xds_proxy_req_free(reqs[i]);
	xds_ads_free(ads);
	ads = NULL;
}

/* A sidecar's set: "NAME=CONTENT" per type. */
static struct xds_snapshot *sidecar_set(const char *route_content)
{
	struct xds_snapshot *s = xds_snapshot_new();

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "virtualOutbound", (const uint8_t *)"vo", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "0.0.0.0_80", (const uint8_t *)"l80", 3), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_ROUTE, "80", (const uint8_t *)route_content, strlen(route_content)),
			 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_CLUSTER, "outbound|80||a.demo.svc.cluster.local",
					  (const uint8_t *)"ca", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_CLUSTER, "BlackHoleCluster", (const uint8_t *)"bh", 2), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_ENDPOINT, "outbound|80||a.demo.svc.cluster.local",
					  (const uint8_t *)"ea", 2), 0);
	xds_snapshot_seal(s);
	return s;
}

static void sotw(struct xds_ads_stream *st, const char *id, const char *app, const char *url, const char *version,
		 const char *nonce, const char *const *names, size_t n, const char *error)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct ads_client_sidecar_node nd;

	if (id)
		req.node = ads_client_sidecar_node_init(&nd, id, "demo", "sa-a", app);
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

static Resp *next_sotw(struct xds_ads_stream *st)
{
	struct xds_ads_response r;
	Resp *resp;
	int rc = xds_ads_stream_next(st, &r);
	uint8_t *msg;
	size_t len;

	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	/* a sidecar's response: the key's shared head, then the stream's nonce */
	ck_assert_ptr_nonnull(r.head);
	len = r.head->len + r.len;
	msg = malloc(len);
	ck_assert_ptr_nonnull(msg);
	memcpy(msg, r.head->data, r.head->len);
	memcpy(msg + r.head->len, r.data, r.len);
	xds_resource_unref(r.head);
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, msg);
	free(msg);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static void resp_free(Resp *r)
{
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

/* The response's resources are exactly n, with these payloads in order. */
static void assert_payloads(const Resp *r, const char *url, size_t n, const char *const *want_payloads)
{
	size_t i;

	ck_assert_str_eq(r->type_url, url);
	ck_assert_uint_eq(r->n_resources, n);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(r->resources[i]->value.len, strlen(want_payloads[i]));
		ck_assert_int_eq(memcmp(r->resources[i]->value.data, want_payloads[i], strlen(want_payloads[i])), 0);
	}
}

/* Get, check and ACK the next response of st. */
static void expect_and_ack(struct xds_ads_stream *st, const char *url, const char *const *names, size_t nnames,
			   size_t n, const char *const *payloads)
{
	Resp *r = next_sotw(st);

	ck_assert_ptr_nonnull(r);
	assert_payloads(r, url, n, payloads);
	sotw(st, NULL, NULL, url, r->version_info, r->nonce, names, nnames, NULL);
	resp_free(r);
}

static char *key_of(const char *app, const char *ip)
{
	struct cfg_kv kv = { .key = "app", .value = (char *)app };
	struct cfg_labels l = { .v = &kv, .n = app ? 1 : 0 };
	char *key = NULL;

	ck_assert_int_eq(xds_proxy_key_node(XDS_FLAVOUR_SIDECAR, "demo", &l, "sa-a", ip, &key), 0);
	return key;
}

static const char *const route80[] = { "80" };
static const char *const eds_a[] = { "outbound|80||a.demo.svc.cluster.local" };

START_TEST(sidecar_served_from_its_key_set)
{
	static const char *const lds[] = { "l80", "vo" }, *const cds[] = { "bh", "ca" };
	static const char *const r1[] = { "route-1" }, *const r2[] = { "route-2" }, *const ea[] = { "ea" };
	struct xds_ads_stream *a1, *a2;
	char *key = key_of("a", NULL);
	Resp *r;

	/* a proxyless snapshot exists: a sidecar is still not refused */
	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, xds_snapshot_new(), NULL);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, "peer", NULL, &a1), 0);
	sotw(a1, ID_A1, "a", URL_LDS, NULL, NULL, NULL, 0, NULL);
	xds_ads_refuse_unserved(ads);
	{
		enum xds_ads_status code;
		const char *msg;
		ck_assert_int_eq(xds_ads_stream_finishing(a1, &code, &msg), 0);
	}
	/* asked once, when the Node was seen: the whole set of the key */
	ck_assert_uint_eq(nreqs, 1);
	ck_assert_int_eq(reqs[0]->kind, XDS_PROXY_WANT_ALL);
	ck_assert_int_eq(reqs[0]->flavour, XDS_FLAVOUR_SIDECAR);
	ck_assert_str_eq(reqs[0]->key, key);
	ck_assert_str_eq(reqs[0]->ns, "demo");
	ck_assert_str_eq(reqs[0]->service_account, "sa-a");
	ck_assert_str_eq(reqs[0]->ip, "10.0.0.1");
	ck_assert_uint_eq(reqs[0]->labels->n, 1);
	/* the response waits for the set */
	ck_assert_ptr_null(next_sotw(a1));
	xds_ads_proxy_set(ads, key, sidecar_set("route-1"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	expect_and_ack(a1, URL_LDS, NULL, 0, 2, lds);
	/* CDS wildcard ("*"), RDS and EDS by name, all from the set */
	{
		static const char *const star[] = { "*" };
		sotw(a1, NULL, NULL, URL_CDS, NULL, NULL, star, 1, NULL);
	}
	expect_and_ack(a1, URL_CDS, NULL, 0, 2, cds);
	sotw(a1, NULL, NULL, URL_RDS, NULL, NULL, route80, 1, NULL);
	expect_and_ack(a1, URL_RDS, route80, 1, 1, r1);
	sotw(a1, NULL, NULL, URL_EDS, NULL, NULL, eds_a, 1, NULL);
	expect_and_ack(a1, URL_EDS, eds_a, 1, 1, ea);
	/* a name the set lacks is not asked of the stage by name */
	{
		static const char *const nope[] = { "80", "9999" };
		sotw(a1, NULL, NULL, URL_RDS, NULL, NULL, nope, 2, NULL);
		r = next_sotw(a1);
		ck_assert_ptr_nonnull(r);
		assert_payloads(r, URL_RDS, 1, r1);
		sotw(a1, NULL, NULL, URL_RDS, r->version_info, r->nonce, route80, 1, NULL);
		resp_free(r);
		r = next_sotw(a1);
		ck_assert_ptr_nonnull(r); /* the name list changed back */
		sotw(a1, NULL, NULL, URL_RDS, r->version_info, r->nonce, route80, 1, NULL);
		resp_free(r);
	}
	ck_assert_uint_eq(nreqs, 1);

	/* a replica (same namespace, labels, account; another IP) shares the key */
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, "peer2", NULL, &a2), 0);
	sotw(a2, ID_A2, "a", URL_LDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_uint_eq(nreqs, 1);
	ck_assert_uint_eq(xds_ads_proxy_keys(ads), 1);
	expect_and_ack(a2, URL_LDS, NULL, 0, 2, lds);

	/* the model changed: only the route differs, only RDS is pushed */
	xds_ads_proxy_set(ads, key, sidecar_set("route-2"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	expect_and_ack(a1, URL_RDS, route80, 1, 1, r2);
	ck_assert_ptr_null(next_sotw(a1));
	ck_assert_ptr_null(next_sotw(a2)); /* LDS only: unchanged */

	/* the key is released with its last stream, not before */
	xds_ads_stream_free(a1);
	ck_assert_uint_eq(nreqs, 1);
	xds_ads_stream_free(a2);
	ck_assert_uint_eq(nreqs, 2);
	ck_assert_int_eq(reqs[1]->kind, XDS_PROXY_RELEASE);
	ck_assert_str_eq(reqs[1]->key, key);
	ck_assert_uint_eq(xds_ads_proxy_keys(ads), 0);
	free(key);
}
END_TEST

/* The next Delta response (NULL when none) and its type: the key's shared
 * head, then the stream's nonce, as the transport sends them. */
static DResp *next_dresp(struct xds_ads_stream *st, enum xds_type *type)
{
	struct xds_ads_response r;
	DResp *resp;
	uint8_t *msg;
	size_t len;
	int rc = xds_ads_stream_next(st, &r);

	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	/* a sidecar's Delta responses share their body too */
	ck_assert_ptr_nonnull(r.head);
	len = r.head->len + r.len;
	msg = malloc(len);
	ck_assert_ptr_nonnull(msg);
	memcpy(msg, r.head->data, r.head->len);
	memcpy(msg + r.head->len, r.data, r.len);
	xds_resource_unref(r.head);
	resp = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, msg);
	free(msg);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	ck_assert_str_ne(resp->nonce, "");
	*type = r.type;
	return resp;
}

START_TEST(sidecar_delta_wildcard_and_names)
{
	struct xds_ads_stream *d, *d2;
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	struct ads_client_sidecar_node nd;
	enum xds_type type;
	DResp *r, *r2;
	char *key = key_of("a", NULL);

	ck_assert_int_eq(xds_ads_stream_new(ads, 1, "peer", NULL, &d), 0);
	req.node = ads_client_sidecar_node_init(&nd, ID_A1, "demo", "sa-a", "a");
	req.type_url = URL_LDS; /* legacy wildcard: a first request naming nothing */
	xds_ads_stream_delta_request(d, &req);
	ck_assert_ptr_null(next_dresp(d, &type));
	ck_assert_uint_eq(nreqs, 1);
	xds_ads_proxy_set(ads, key, sidecar_set("route-1"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(type, XDS_LISTENER);
	ck_assert_uint_eq(r->n_resources, 2);
	ck_assert_str_eq(r->resources[0]->name, "0.0.0.0_80");
	ck_assert_str_eq(r->resources[1]->name, "virtualOutbound");
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);

	envoy__service__discovery__v3__delta_discovery_request__init(&req);
	req.type_url = URL_RDS;
	req.resource_names_subscribe = (char **)route80;
	req.n_resource_names_subscribe = 1;
	xds_ads_stream_delta_request(d, &req);
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(r->resources[0]->name, "80");
	ck_assert(r->resources[0]->resource->value.len == 7 &&
		  memcmp(r->resources[0]->resource->value.data, "route-1", 7) == 0);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);

	/* a replica: the same responses, each with its own nonce */
	ck_assert_int_eq(xds_ads_stream_new(ads, 1, "peer2", NULL, &d2), 0);
	req.node = ads_client_sidecar_node_init(&nd, ID_A2, "demo", "sa-a", "a");
	req.type_url = URL_RDS;
	xds_ads_stream_delta_request(d2, &req);
	r2 = next_dresp(d2, &type);
	ck_assert_ptr_nonnull(r2);
	ck_assert_int_eq(type, XDS_ROUTE);
	ck_assert_uint_eq(r2->n_resources, 1);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r2, NULL);
	ck_assert_ptr_null(next_dresp(d2, &type));

	/* the key's set changes in its route only: one RDS response with
	 * the route, and LDS (its set unchanged: no diff at all) says nothing */
	xds_ads_proxy_set(ads, key, sidecar_set("route-2"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(type, XDS_ROUTE);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_uint_eq(r->n_removed_resources, 0);
	ck_assert_str_eq(r->resources[0]->name, "80");
	ck_assert(r->resources[0]->resource->value.len == 7 &&
		  memcmp(r->resources[0]->resource->value.data, "route-2", 7) == 0);
	r2 = next_dresp(d2, &type);
	ck_assert_ptr_nonnull(r2);
	ck_assert_str_ne(r2->nonce, r->nonce);
	ck_assert_str_eq(r2->system_version_info, r->system_version_info);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r2, NULL);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	ck_assert_ptr_null(next_dresp(d, &type));
	ck_assert_ptr_null(next_dresp(d2, &type));
	/* the same set again: nothing */
	xds_ads_proxy_set(ads, key, sidecar_set("route-2"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	ck_assert_ptr_null(next_dresp(d, &type));
	/* unsubscribing RDS's name and subscribing it again: sent again */
	envoy__service__discovery__v3__delta_discovery_request__init(&req);
	req.type_url = URL_RDS;
	req.resource_names_unsubscribe = (char **)route80;
	req.n_resource_names_unsubscribe = 1;
	xds_ads_stream_delta_request(d, &req);
	req.resource_names_unsubscribe = NULL;
	req.n_resource_names_unsubscribe = 0;
	req.resource_names_subscribe = (char **)route80;
	req.n_resource_names_subscribe = 1;
	xds_ads_stream_delta_request(d, &req);
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(type, XDS_ROUTE);
	ck_assert_uint_eq(r->n_resources, 1);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	/* a route gone from the set: removed */
	{
		struct xds_snapshot *s = xds_snapshot_new();

		ck_assert_int_eq(xds_snapshot_add(s, XDS_LISTENER, "virtualOutbound", (const uint8_t *)"vo", 2), 0);
		xds_snapshot_seal(s);
		xds_ads_proxy_set(ads, key, s, reqs[0]->seq);
		xds_ads_proxy_flush(ads, NULL);
	}
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(type, XDS_LISTENER);
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert_str_eq(r->removed_resources[0], "0.0.0.0_80");
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	r = next_dresp(d, &type);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(type, XDS_ROUTE);
	ck_assert_uint_eq(r->n_resources, 0);
	ck_assert_uint_eq(r->n_removed_resources, 1);
	ck_assert_str_eq(r->removed_resources[0], "80");
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	xds_ads_stream_free(d);
	xds_ads_stream_free(d2);
	ck_assert_uint_eq(nreqs, 2);
	free(key);
}
END_TEST

START_TEST(sidecar_key_has_ip_only_without_labels)
{
	struct xds_ads_stream *x, *y, *z;
	char *kx = key_of(NULL, "10.0.0.1"), *ky = key_of(NULL, "10.0.0.2");

	ck_assert_str_ne(kx, ky);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &x), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &y), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &z), 0);
	sotw(x, ID_A1, NULL, URL_LDS, NULL, NULL, NULL, 0, NULL);
	sotw(y, ID_A2, NULL, URL_LDS, NULL, NULL, NULL, 0, NULL);
	/* labelled: the IP is not part of the key */
	sotw(z, ID_A2, "a", URL_LDS, NULL, NULL, NULL, 0, NULL);
	ck_assert_uint_eq(nreqs, 3);
	ck_assert_str_eq(reqs[0]->key, kx);
	ck_assert_str_eq(reqs[1]->key, ky);
	{
		char *kz = key_of("a", NULL);
		ck_assert_str_eq(reqs[2]->key, kz);
		free(kz);
	}
	/* proxyless keys are unchanged by the new parts */
	{
		char *a = NULL, *b = NULL;
		ck_assert_int_eq(xds_proxy_key(XDS_FLAVOUR_PROXYLESS, "demo", NULL, &a), 0);
		ck_assert_int_eq(xds_proxy_key_node(XDS_FLAVOUR_PROXYLESS, "demo", NULL, NULL, NULL, &b), 0);
		ck_assert_str_eq(a, b);
		free(a);
		free(b);
	}
	xds_ads_stream_free(x);
	xds_ads_stream_free(y);
	xds_ads_stream_free(z);
	ck_assert_uint_eq(nreqs, 6);
	free(kx);
	free(ky);
}
END_TEST

/* Node.locality (locality load balancing shapes the sidecar's EDS): a
 * part of the key, so proxies of one locality share a set and others do
 * not; the request carries it to the stage as "region/zone/subzone". */
START_TEST(sidecar_key_has_locality)
{
	struct xds_ads_stream *x, *y, *z;
	Envoy__Config__Core__V3__Locality l1 = ENVOY__CONFIG__CORE__V3__LOCALITY__INIT;
	Envoy__Config__Core__V3__Locality l2 = ENVOY__CONFIG__CORE__V3__LOCALITY__INIT;
	struct xds_ads_stream *st[3];
	Envoy__Config__Core__V3__Locality *loc[3] = { &l1, &l2, &l1 };
	char *plain = key_of("a", NULL);
	size_t i;

	l1.region = "r1";
	l1.zone = "z1";
	l2.region = "r1";
	l2.zone = "z2";
	l2.sub_zone = "s9";
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &x), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &y), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &z), 0);
	st[0] = x;
	st[1] = y;
	st[2] = z;
	for (i = 0; i < 3; i++) {
		Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
		struct ads_client_sidecar_node nd;

		req.node = ads_client_sidecar_node_init(&nd, i == 1 ? ID_A2 : ID_A1, "demo", "sa-a", "a");
		req.node->locality = loc[i];
		req.type_url = URL_LDS;
		req.version_info = "";
		req.response_nonce = "";
		xds_ads_stream_request(st[i], &req);
	}
	/* x and z share a key (one request); y, in another zone, has its own */
	ck_assert_uint_eq(nreqs, 2);
	ck_assert_str_eq(reqs[0]->locality, "r1/z1");
	ck_assert_str_eq(reqs[1]->locality, "r1/z2/s9");
	ck_assert_str_ne(reqs[0]->key, reqs[1]->key);
	ck_assert_str_ne(reqs[0]->key, plain);
	ck_assert_int_eq(strncmp(reqs[0]->key, plain, strlen(plain)), 0);
	xds_ads_stream_free(x);
	xds_ads_stream_free(y);
	xds_ads_stream_free(z);
	free(plain);
}
END_TEST

/* Node metadata INTERCEPTION_MODE TPROXY (istiod's transparent listeners
 * and original_src): a part of the key, so a TPROXY proxy never shares a
 * REDIRECT one's set; the request tells the stage.  REDIRECT keys are
 * unchanged. */
START_TEST(sidecar_key_has_tproxy)
{
	struct xds_ads_stream *st[3];
	const char *mode[3] = { "REDIRECT", "TPROXY", "TPROXY" };
	char *plain = key_of("a", NULL);
	size_t i, k;

	for (i = 0; i < 3; i++) {
		Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
		struct ads_client_sidecar_node nd;

		ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &st[i]), 0);
		req.node = ads_client_sidecar_node_init(&nd, i == 2 ? ID_A2 : ID_A1, "demo", "sa-a", "a");
		for (k = 0; k < nd.md.n_fields; k++)
			if (!strcmp(nd.md.fields[k]->key, "INTERCEPTION_MODE"))
				nd.md.fields[k]->value->string_value = (char *)mode[i];
		req.type_url = URL_LDS;
		req.version_info = "";
		req.response_nonce = "";
		xds_ads_stream_request(st[i], &req);
	}
	/* the two TPROXY proxies share a key (one request), the REDIRECT one has its own */
	ck_assert_uint_eq(nreqs, 2);
	ck_assert(!reqs[0]->tproxy);
	ck_assert(reqs[1]->tproxy);
	ck_assert_str_eq(reqs[0]->key, plain);
	ck_assert_str_ne(reqs[1]->key, plain);
	ck_assert_int_eq(strncmp(reqs[1]->key, plain, strlen(plain)), 0);
	for (i = 0; i < 3; i++)
		xds_ads_stream_free(st[i]);
	free(plain);
}
END_TEST

START_TEST(router_still_refused_naming_what_is_served)
{
	struct xds_ads_stream *gw;
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	enum xds_ads_status code;
	const char *msg;

	xds_ads_publish(ads, XDS_FLAVOUR_PROXYLESS, xds_snapshot_new(), NULL);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &gw), 0);
	node.id = "router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local";
	req.node = &node;
	req.type_url = URL_LDS;
	xds_ads_stream_request(gw, &req);
	ck_assert_int_eq(xds_ads_stream_finishing(gw, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_UNIMPLEMENTED);
	ck_assert_ptr_nonnull(strstr(msg, "no router (gateway) configuration generator yet"));
	ck_assert_ptr_nonnull(strstr(msg, "as a sidecar"));
	xds_ads_stream_free(gw);
}
END_TEST


/* A set with EDS "a" and "b" of the given contents. */
static struct xds_snapshot *eds_set(const char *a, const char *b)
{
	struct xds_snapshot *s = xds_snapshot_new();

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_ENDPOINT, "a", (const uint8_t *)a, strlen(a)), 0);
	ck_assert_int_eq(xds_snapshot_add(s, XDS_ENDPOINT, "b", (const uint8_t *)b, strlen(b)), 0);
	xds_snapshot_seal(s);
	return s;
}

START_TEST(sidecar_push_carries_only_changed_endpoints)
{
	static const char *const ab[] = { "a", "b" }, *const a1b1[] = { "a1", "b1" }, *const b2[] = { "b2" };
	struct xds_ads_stream *st;
	char *key = key_of("a", NULL);
	Resp *r, *r2;

	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &st), 0);
	sotw(st, ID_A1, "a", URL_EDS, NULL, NULL, ab, 2, NULL);
	xds_ads_proxy_set(ads, key, eds_set("a1", "b1"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	expect_and_ack(st, URL_EDS, ab, 2, 2, a1b1);
	/* b's endpoints move: the push names b only, under the full set's version */
	xds_ads_proxy_set(ads, key, eds_set("a1", "b2"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	assert_payloads(r, URL_EDS, 1, b2);
	sotw(st, NULL, NULL, URL_EDS, r->version_info, r->nonce, ab, 2, NULL);
	/* a new subscription (the names change) gets everything again */
	{
		static const char *const abc[] = { "a", "b", "c" }, *const a1b2[] = { "a1", "b2" };
		sotw(st, NULL, NULL, URL_EDS, r->version_info, r->nonce, abc, 3, NULL);
		r2 = next_sotw(st);
		ck_assert_ptr_nonnull(r2);
		assert_payloads(r2, URL_EDS, 2, a1b2);
		/* same resources as the partial push: same version */
		ck_assert_str_eq(r2->version_info, r->version_info);
		resp_free(r2);
	}
	resp_free(r);
	xds_ads_stream_free(st);
	free(key);
}
END_TEST

/* The next response's shared head (a reference for the caller), after
 * checking that it carries the resources wanted. */
static const struct xds_resource *next_head(struct xds_ads_stream *st, const char *url, size_t n,
					    const char *const *payloads, Resp **out)
{
	struct xds_ads_response r;
	Resp *resp;
	uint8_t *msg;
	size_t len;

	ck_assert_int_eq(xds_ads_stream_next(st, &r), 1);
	ck_assert_ptr_nonnull(r.head);
	len = r.head->len + r.len;
	msg = malloc(len);
	ck_assert_ptr_nonnull(msg);
	memcpy(msg, r.head->data, r.head->len);
	memcpy(msg + r.head->len, r.data, r.len);
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, msg);
	free(msg);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	assert_payloads(resp, url, n, payloads);
	*out = resp;
	return r.head;
}

/*
 * Replicas of one key hold one copy of what they subscribed to and were
 * sent (the key's counted names and selection, not a copy each), names
 * sent in another order included; an ACK naming the same names in
 * another order changes nothing; a push keeps them sharing.  Another key
 * with the same resources gets the very same encoded body.
 */
START_TEST(sidecar_replicas_share_names_selection_and_bodies)
{
	static const char *const ab[] = { "a", "b" }, *const ba[] = { "b", "a" };
	static const char *const a1b1[] = { "a1", "b1" }, *const b2[] = { "b2" };
	struct xds_ads_stream *a1, *a2, *b;
	const struct xds_ads__type *t1, *t2;
	const struct xds_resource *h1, *h2, *hb;
	char *key_a = key_of("a", NULL), *key_b = key_of("b", NULL);
	Resp *r1, *r2, *rb;

	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &a1), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &a2), 0);
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &b), 0);
	sotw(a1, ID_A1, "a", URL_EDS, NULL, NULL, ab, 2, NULL);
	sotw(a2, ID_A2, "a", URL_EDS, NULL, NULL, ba, 2, NULL);
	sotw(b, "sidecar~10.0.0.3~b-1.demo~demo.svc.cluster.local", "b", URL_EDS, NULL, NULL, ab, 2, NULL);
	ck_assert_uint_eq(nreqs, 2); /* keys a and b */
	xds_ads_proxy_set(ads, key_a, eds_set("a1", "b1"), reqs[0]->seq);
	xds_ads_proxy_set(ads, key_b, eds_set("a1", "b1"), reqs[1]->seq);
	xds_ads_proxy_flush(ads, NULL);
	h1 = next_head(a1, URL_EDS, 2, a1b1, &r1);
	h2 = next_head(a2, URL_EDS, 2, a1b1, &r2);
	hb = next_head(b, URL_EDS, 2, a1b1, &rb);
	ck_assert_ptr_eq(h1, h2);
	ck_assert_ptr_eq(h1, hb); /* another key, the same bytes: one body */
	t1 = &a1->types[XDS_ENDPOINT];
	t2 = &a2->types[XDS_ENDPOINT];
	ck_assert_ptr_nonnull(t1->names_obj);
	ck_assert_ptr_eq(t1->names_obj, t2->names_obj);
	ck_assert_ptr_nonnull(t1->sent_list);
	ck_assert_ptr_eq(t1->sent_list, t2->sent_list);
	ck_assert_uint_eq(t1->sent_nres, 2);
	/* ACKs, a2's naming the names in its own order: nothing to send */
	sotw(a1, NULL, NULL, URL_EDS, r1->version_info, r1->nonce, ab, 2, NULL);
	sotw(a2, NULL, NULL, URL_EDS, r2->version_info, r2->nonce, ba, 2, NULL);
	sotw(b, NULL, NULL, URL_EDS, rb->version_info, rb->nonce, ab, 2, NULL);
	ck_assert_ptr_null(next_sotw(a1));
	ck_assert_ptr_null(next_sotw(a2));
	ck_assert_ptr_eq(t1->names_obj, t2->names_obj);
	xds_resource_unref(h1);
	xds_resource_unref(h2);
	xds_resource_unref(hb);
	resp_free(r1);
	resp_free(r2);
	resp_free(rb);
	/* a push: both carry b only, and still share what they hold */
	xds_ads_proxy_set(ads, key_a, eds_set("a1", "b2"), reqs[0]->seq);
	xds_ads_proxy_flush(ads, NULL);
	h1 = next_head(a1, URL_EDS, 1, b2, &r1);
	h2 = next_head(a2, URL_EDS, 1, b2, &r2);
	ck_assert_ptr_eq(h1, h2);
	ck_assert_ptr_eq(t1->sent_list, t2->sent_list);
	ck_assert_uint_eq(t1->sent_nres, 2);
	xds_resource_unref(h1);
	xds_resource_unref(h2);
	resp_free(r1);
	resp_free(r2);
	xds_ads_stream_free(a1);
	xds_ads_stream_free(a2);
	xds_ads_stream_free(b);
	free(key_a);
	free(key_b);
}
END_TEST

static Suite *sidecar_suite(void)
{
	Suite *s = suite_create("xds_ads_sidecar");
	TCase *tc = tcase_create("sidecar");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sidecar_served_from_its_key_set);
	tcase_add_test(tc, sidecar_delta_wildcard_and_names);
	tcase_add_test(tc, sidecar_key_has_ip_only_without_labels);
	tcase_add_test(tc, sidecar_key_has_locality);
	tcase_add_test(tc, sidecar_key_has_tproxy);
	tcase_add_test(tc, router_still_refused_naming_what_is_served);
	tcase_add_test(tc, sidecar_push_carries_only_changed_endpoints);
	tcase_add_test(tc, sidecar_replicas_share_names_selection_and_bodies);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed = testutil_run(sidecar_suite());

	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
