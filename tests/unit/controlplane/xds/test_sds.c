/*
 * test_sds.c - Secrets in the ADS protocol core (controlplane/xds/ads.c)
 * with a Secret provider configured, driven directly with no gRPC: the
 * provider is a fake that records each xds_secret_req and answers with
 * xds_ads_secrets_set() when the test says.  Secrets are per stream: a
 * stream's Secret responses wait for the provider's answer to its request,
 * carry only what that answer holds (never a flavour snapshot's Secrets),
 * a re-answer is a push, a refusal ends the stream, and the provider is
 * told when a stream that asked goes.
 */
#include "controlplane/xds/ads.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_SDS "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DResp;

/* ------------------------------------------------------------------ */
/* the fake provider */

#define MAX_REQS 16
static struct xds_secret_req *reqs[MAX_REQS];
static int nreqs;
static struct xds_ads *ads;

static void provider(void *ctx, struct xds_secret_req *r)
{
	(void)ctx;
	ck_assert_int_lt(nreqs, MAX_REQS);
	reqs[nreqs++] = r;
}

static void no_want(void *ctx, struct xds_proxy_req *r)
{
	(void)ctx;
	xds_proxy_req_free(r); /* the stage never answers: a sidecar's key set never comes */
}

static void setup_with(unsigned whole)
{
	struct xds_ads_config cfg = { .secret = provider, .whole_flavours = whole };

	if (whole)
		cfg.want = no_want;
	nreqs = 0;
	ck_assert_int_eq(xds_ads_new(&cfg, &ads), 0);
}

static void setup(void)
{
	setup_with(0);
}

static void teardown(void)
{
	int i;

	xds_ads_free(ads);
	ads = NULL;
	for (i = 0; i < nreqs; i++)
		xds_secret_req_free(reqs[i]);
	nreqs = 0;
}

/* A set with Secrets "NAME=CONTENT" (NULL-terminated); contents are opaque here. */
static struct xds_snapshot *set_of(const char *const *res)
{
	struct xds_snapshot *s = xds_snapshot_new();
	size_t i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; res && res[i]; i++) {
		const char *eq = strchr(res[i], '=');
		char name[64];

		ck_assert_ptr_nonnull(eq);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - res[i]), res[i]);
		ck_assert_int_eq(xds_snapshot_add(s, XDS_SECRET, name, (const uint8_t *)eq + 1, strlen(eq + 1)), 0);
	}
	xds_snapshot_seal(s);
	return s;
}

/* ------------------------------------------------------------------ */
/* requests and responses */

/* A sidecar Node with metadata NAMESPACE and SERVICE_ACCOUNT. */
struct node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md;
	Google__Protobuf__Struct__FieldsEntry fe[2], *fes[2];
	Google__Protobuf__Value v[2];
};

static Envoy__Config__Core__V3__Node *node_init(struct node *n, const char *id, const char *ns, const char *sa)
{
	const char *keys[2] = { "NAMESPACE", "SERVICE_ACCOUNT" }, *vals[2] = { ns, sa };
	int i;

	envoy__config__core__v3__node__init(&n->node);
	google__protobuf__struct__init(&n->md);
	n->node.id = (char *)id;
	for (i = 0; i < 2; i++) {
		google__protobuf__struct__fields_entry__init(&n->fe[i]);
		google__protobuf__value__init(&n->v[i]);
		n->v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		n->v[i].string_value = (char *)vals[i];
		n->fe[i].key = (char *)keys[i];
		n->fe[i].value = &n->v[i];
		n->fes[i] = &n->fe[i];
	}
	n->md.fields = n->fes;
	n->md.n_fields = 2;
	n->node.metadata = &n->md;
	return &n->node;
}

#define NODE_ID "sidecar~10.0.0.1~web-1.ns1~ns1.svc.cluster.local"

static void sotw(struct xds_ads_stream *st, int with_node, const char *version, const char *nonce,
		 const char *const *names, size_t n)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	struct node nd;

	if (with_node)
		req.node = node_init(&nd, NODE_ID, "ns1", "sa1");
	req.type_url = URL_SDS;
	req.version_info = (char *)(version ? version : "");
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names = (char **)names;
	req.n_resource_names = n;
	xds_ads_stream_request(st, &req);
}

static void delta(struct xds_ads_stream *st, int with_node, const char *nonce, const char *const *sub, size_t nsub)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	struct node nd;

	if (with_node)
		req.node = node_init(&nd, NODE_ID, "ns1", "sa1");
	req.type_url = URL_SDS;
	req.response_nonce = (char *)(nonce ? nonce : "");
	req.resource_names_subscribe = (char **)sub;
	req.n_resource_names_subscribe = nsub;
	xds_ads_stream_delta_request(st, &req);
}

static Resp *next_sotw(struct xds_ads_stream *st)
{
	struct xds_ads_response r;
	Resp *resp;
	int rc = xds_ads_stream_next(st, &r);

	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	ck_assert_ptr_null(r.head);
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, r.len, r.data);
	free(r.data);
	ck_assert_ptr_nonnull(resp);
	ck_assert_str_eq(resp->type_url, URL_SDS);
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

static int payload_is(const Google__Protobuf__Any *a, const char *want)
{
	return a && a->value.len == strlen(want) && memcmp(a->value.data, want, a->value.len) == 0;
}

/* The SotW response holds exactly "NAME=CONTENT" of want (name order). */
static void assert_holds(const Resp *r, const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		const char *eq = strchr(want[i], '=');
		ck_assert_uint_lt(i, r->n_resources);
		ck_assert_msg(payload_is(r->resources[i], eq + 1), "resource %zu is not %s", i, want[i]);
	}
	ck_assert_uint_eq(r->n_resources, i);
}

static struct xds_ads_stream *stream_new(int delta_, int secure, const char *authz)
{
	struct xds_ads_stream *st = NULL;

	ck_assert_int_eq(xds_ads_stream_new(ads, delta_, "127.0.0.1:1234", NULL, &st), 0);
	ck_assert_int_eq(xds_ads_stream_credentials(st, secure, authz, authz ? strlen(authz) : 0, NULL), 0);
	return st;
}

static const char *const names_both[] = { "default", "ROOTCA" };
static const char *const names_default[] = { "default" };
static const char *const names_root[] = { "ROOTCA" };
static const char *const set1[] = { "ROOTCA=R1", "default=D1", NULL };
static const char *const set2[] = { "ROOTCA=R1", "default=D2", NULL };

/* ------------------------------------------------------------------ */

/* The request carries the stream's names and credentials; nothing is sent
 * before the answer, then exactly the answer's Secrets. */
START_TEST(sotw_waits_for_the_provider)
{
	struct xds_ads_stream *st = stream_new(0, 1, "Bearer tok");
	Resp *r;

	/* a flavour snapshot's Secret never reaches a stream: Secrets are per stream */
	xds_ads_publish(ads, XDS_FLAVOUR_SIDECAR, set_of((const char *const[]){ "default=SHARED", NULL }), NULL);
	sotw(st, 1, NULL, NULL, names_both, 2);
	ck_assert_int_eq(nreqs, 1);
	ck_assert(!reqs[0]->release);
	ck_assert_uint_eq(reqs[0]->stream, xds_ads_stream_id(st));
	ck_assert_uint_eq(reqs[0]->nnames, 2);
	ck_assert_str_eq(reqs[0]->names[0], "ROOTCA"); /* sorted */
	ck_assert_str_eq(reqs[0]->names[1], "default");
	ck_assert_int_eq(reqs[0]->secure, 1);
	ck_assert_str_eq(reqs[0]->authorization, "Bearer tok");
	ck_assert_str_eq(reqs[0]->node_ns, "ns1");
	ck_assert_str_eq(reqs[0]->node_sa, "sa1");
	ck_assert_str_eq(reqs[0]->node_id, NODE_ID);
	ck_assert_ptr_null(next_sotw(st));

	xds_ads_secrets_set(ads, reqs[0]->stream, reqs[0]->seq, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	assert_holds(r, set1);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ck_assert_ptr_null(next_sotw(st));
	xds_ads_stream_free(st);
}
END_TEST

/* Two streams of the same node each get their own request and answer. */
START_TEST(sotw_secrets_are_per_stream)
{
	struct xds_ads_stream *a = stream_new(0, 1, "Bearer tok"), *b = stream_new(0, 1, "Bearer tok");
	Resp *r;

	sotw(a, 1, NULL, NULL, names_default, 1);
	sotw(b, 1, NULL, NULL, names_default, 1);
	ck_assert_int_eq(nreqs, 2);
	ck_assert_uint_ne(reqs[0]->stream, reqs[1]->stream);
	xds_ads_secrets_set(ads, reqs[1]->stream, reqs[1]->seq, set_of((const char *const[]){ "default=B", NULL }),
			    XDS_ADS_STATUS_OK, NULL);
	ck_assert_ptr_null(next_sotw(a));
	r = next_sotw(b);
	assert_holds(r, (const char *const[]){ "default=B", NULL });
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	xds_ads_secrets_set(ads, reqs[0]->stream, reqs[0]->seq, set_of((const char *const[]){ "default=A", NULL }),
			    XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(a);
	assert_holds(r, (const char *const[]){ "default=A", NULL });
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	ck_assert_ptr_null(next_sotw(b));
	xds_ads_stream_free(a);
	xds_ads_stream_free(b);
}
END_TEST

/* A second answer to the same request (a rotated certificate) is pushed
 * with a new version; an answer to an older request than the latest is
 * dropped; the same content again is not re-sent. */
START_TEST(sotw_rotation_and_stale_answer)
{
	struct xds_ads_stream *st = stream_new(0, 1, "Bearer tok");
	char version[64], nonce[64];
	Resp *r;
	uint64_t seq1;

	sotw(st, 1, NULL, NULL, names_both, 2);
	seq1 = reqs[0]->seq;
	xds_ads_secrets_set(ads, reqs[0]->stream, seq1, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(st);
	snprintf(version, sizeof(version), "%s", r->version_info);
	snprintf(nonce, sizeof(nonce), "%s", r->nonce);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	sotw(st, 0, version, nonce, names_both, 2); /* ACK */
	ck_assert_int_eq(nreqs, 1);                 /* an ACK asks nothing */

	xds_ads_secrets_set(ads, reqs[0]->stream, seq1, set_of(set2), XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	assert_holds(r, set2);
	ck_assert_str_ne(r->version_info, version);
	snprintf(version, sizeof(version), "%s", r->version_info);
	snprintf(nonce, sizeof(nonce), "%s", r->nonce);
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	sotw(st, 0, version, nonce, names_both, 2);
	xds_ads_secrets_set(ads, reqs[0]->stream, seq1, set_of(set2), XDS_ADS_STATUS_OK, NULL);
	ck_assert_ptr_null(next_sotw(st)); /* unchanged: nothing */

	/* the names change: a new request; the old one's answer is stale */
	sotw(st, 0, version, nonce, names_root, 1);
	ck_assert_int_eq(nreqs, 2);
	ck_assert_uint_gt(reqs[1]->seq, seq1);
	xds_ads_secrets_set(ads, reqs[0]->stream, seq1, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	ck_assert_ptr_null(next_sotw(st));
	xds_ads_secrets_set(ads, reqs[1]->stream, reqs[1]->seq, set_of((const char *const[]){ "ROOTCA=R1", NULL }),
			    XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(st);
	assert_holds(r, (const char *const[]){ "ROOTCA=R1", NULL });
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	xds_ads_stream_free(st);
}
END_TEST

/* A refusal (wrong identity) ends the stream with the provider's status. */
START_TEST(refusal_ends_the_stream)
{
	struct xds_ads_stream *st = stream_new(0, 1, "Bearer other");
	enum xds_ads_status code = XDS_ADS_STATUS_OK;
	const char *msg = NULL;

	sotw(st, 1, NULL, NULL, names_default, 1);
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 0);
	xds_ads_secrets_set(ads, reqs[0]->stream, reqs[0]->seq, NULL, XDS_ADS_STATUS_PERMISSION_DENIED,
			    "not your identity");
	ck_assert_int_eq(xds_ads_stream_finishing(st, &code, &msg), 1);
	ck_assert_int_eq(code, XDS_ADS_STATUS_PERMISSION_DENIED);
	ck_assert_str_eq(msg, "not your identity");
	ck_assert_ptr_null(next_sotw(st));
	/* an answer for a stream that is gone is dropped (ASan: no leak) */
	xds_ads_secrets_set(ads, 9999, 1, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	xds_ads_stream_free(st);
}
END_TEST

/* Delta: each subscription change asks for every name; the diff sends
 * only what changed. */
START_TEST(delta_diffs_the_answers)
{
	struct xds_ads_stream *st = stream_new(1, 1, "Bearer tok");
	DResp *r;
	char nonce[64];

	delta(st, 1, NULL, names_root, 1);
	ck_assert_int_eq(nreqs, 1);
	ck_assert_ptr_null(next_delta(st));
	xds_ads_secrets_set(ads, reqs[0]->stream, reqs[0]->seq, set_of((const char *const[]){ "ROOTCA=R1", NULL }),
			    XDS_ADS_STATUS_OK, NULL);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(r->resources[0]->name, "ROOTCA");
	snprintf(nonce, sizeof(nonce), "%s", r->nonce);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);

	delta(st, 0, nonce, names_default, 1);
	ck_assert_int_eq(nreqs, 2);
	ck_assert_uint_eq(reqs[1]->nnames, 2);
	ck_assert_ptr_null(next_delta(st));
	xds_ads_secrets_set(ads, reqs[1]->stream, reqs[1]->seq, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	r = next_delta(st);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->n_resources, 1);
	ck_assert_str_eq(r->resources[0]->name, "default");
	ck_assert(payload_is(r->resources[0]->resource, "D1"));
	ck_assert_uint_eq(r->n_removed_resources, 0);
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	xds_ads_stream_free(st);
}
END_TEST

/* The provider forgets a stream that asked when it goes; one that never
 * asked costs it nothing. */
START_TEST(release_when_a_stream_goes)
{
	struct xds_ads_stream *a = stream_new(0, 0, NULL), *b = stream_new(0, 0, NULL);
	uint64_t id = xds_ads_stream_id(a);

	sotw(a, 1, NULL, NULL, names_default, 1);
	ck_assert_int_eq(nreqs, 1);
	ck_assert_int_eq(reqs[0]->secure, 0);
	ck_assert_ptr_null(reqs[0]->authorization);
	xds_ads_stream_free(b);
	ck_assert_int_eq(nreqs, 1);
	xds_ads_stream_free(a);
	ck_assert_int_eq(nreqs, 2);
	ck_assert(reqs[1]->release);
	ck_assert_uint_eq(reqs[1]->stream, id);
}
END_TEST

/* A sidecar served whole from its key's set gets its Secrets from the
 * provider even while that set has not come. */
START_TEST(whole_sidecar_does_not_wait_for_its_key)
{
	struct xds_ads_stream *st;
	Resp *r;

	teardown();
	setup_with(1u << XDS_FLAVOUR_SIDECAR);
	st = stream_new(0, 1, "Bearer tok");
	sotw(st, 1, NULL, NULL, names_default, 1);
	ck_assert_int_eq(nreqs, 1);
	xds_ads_secrets_set(ads, reqs[0]->stream, reqs[0]->seq, set_of(set1), XDS_ADS_STATUS_OK, NULL);
	r = next_sotw(st);
	ck_assert_ptr_nonnull(r);
	assert_holds(r, (const char *const[]){ "default=D1", NULL });
	envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	xds_ads_stream_free(st);
}
END_TEST

/* A long authorization value is capped, not refused by the core. */
START_TEST(credentials_capped)
{
	struct xds_ads_stream *st = NULL;
	size_t n = 100000;
	char *big = malloc(n + 1);

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n);
	big[n] = '\0';
	ck_assert_int_eq(xds_ads_stream_new(ads, 0, NULL, NULL, &st), 0);
	ck_assert_int_eq(xds_ads_stream_credentials(st, 1, big, n, "spiffe://cluster.local/ns/ns1/sa/sa1"), 0);
	sotw(st, 1, NULL, NULL, names_default, 1);
	ck_assert_uint_lt(strlen(reqs[0]->authorization), n);
	ck_assert_str_eq(reqs[0]->peer_id, "spiffe://cluster.local/ns/ns1/sa/sa1");
	free(big);
	xds_ads_stream_free(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_sds");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sotw_waits_for_the_provider);
	tcase_add_test(tc, sotw_secrets_are_per_stream);
	tcase_add_test(tc, sotw_rotation_and_stale_answer);
	tcase_add_test(tc, refusal_ends_the_stream);
	tcase_add_test(tc, delta_diffs_the_answers);
	tcase_add_test(tc, release_when_a_stream_goes);
	tcase_add_test(tc, whole_sidecar_does_not_wait_for_its_key);
	tcase_add_test(tc, credentials_capped);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
