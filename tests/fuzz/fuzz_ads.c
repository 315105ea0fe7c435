/*
 * fuzz_ads.c - libFuzzer target for the transport-free ADS core
 * (controlplane/xds/ads.c), make fuzz: one stream of a fresh core, against
 * small fixed snapshots for every flavour, fed a sequence of operations.
 *
 * Input: byte 0 sets up the core and stream: bit 0 a Delta stream (else
 * state of the world), bit 1 SotW requests go through the reduced-ACK path
 * first (xds_ads_stream_ack_expect / xds_ads_ack_reduce /
 * xds_ads_stream_recv_ack, as server.c does), bit 2 sidecars are served
 * per proxy (the `want` callback, answered by op 2), bit 3 Secrets come
 * from a provider (the `secret` callback, answered by op 2).  Then records
 * [op][len: 2 bytes, little endian][len bytes], op % 6:
 * 0 the bytes as a (Delta)DiscoveryRequest off the wire
 *   (xds_ads_stream_recv);
 * 1 a request built here that quotes the nonce and version of the latest
 *   response of a type (byte 0 % 5), a NACK when byte 1 has bit 0, with a
 *   Node (byte 1 >> 1 & 3: none, proxyless, router, sidecar) and the rest
 *   as resource names separated by ',' (Delta: subscribe, or unsubscribe
 *   when byte 1 has bit 3; "*" is the wildcard) -- the nonce and version
 *   games a fuzzer would not guess;
 * 2 a new snapshot for a flavour (byte 0 % 3, content variant byte 1),
 *   and the pending per-proxy and Secret requests answered (byte 1 bit 2:
 *   the Secret provider refuses);
 * 3 up to byte 0 % 4 + 1 responses taken (xds_ads_stream_next);
 * 4 the debug views and xds_ads_refuse_unserved;
 * 5 the transport ends the stream (code byte 0).
 * At the end every queued response is taken.
 * Invariants: no crash, leak or sanitizer report; every response decodes as
 * its stream's message type, names the type it was queued for and carries
 * a nonce; a stream that is finishing sends nothing more.
 */
#include "controlplane/xds/ads.h"

#include "common/buf.h"
#include "common/log.h"
#include "common/xds/types.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PENDING 64
#define MAX_NAMES 16

static struct xds_proxy_req *wants[MAX_PENDING];
static size_t nwants;
static struct xds_secret_req *secrets[MAX_PENDING];
static size_t nsecrets;

/* the latest response's nonce and version per type */
struct seen {
	char nonce[64], version[64];
};

static void want_cb(void *ctx, struct xds_proxy_req *r)
{
	(void)ctx;
	if (nwants == MAX_PENDING) {
		xds_proxy_req_free(r);
		return;
	}
	wants[nwants++] = r;
}

static void secret_cb(void *ctx, struct xds_secret_req *r)
{
	(void)ctx;
	if (nsecrets == MAX_PENDING) {
		xds_secret_req_free(r);
		return;
	}
	secrets[nsecrets++] = r;
}

/* A flavour's snapshot, variant v % 12: resources of every type, the
 * names overlapping between variants so pushes add, change and remove.
 * Built once; each call hands out a reference. */
static struct xds_snapshot *snap(unsigned v)
{
	static const char *const names[XDS_TYPE_COUNT][3] = {
		{ "0.0.0.0_80", "virtualOutbound", "xds.istio.io/grpc/lds/inbound/10.0.0.1:8080" },
		{ "80", "9080", "outbound|9080||reviews.demo.svc.cluster.local" },
		{ "BlackHoleCluster", "outbound|80||a.demo.svc.cluster.local", "outbound|9080||reviews.demo.svc.cluster.local" },
		{ "outbound|80||a.demo.svc.cluster.local", "outbound|9080||reviews.demo.svc.cluster.local", "e3" },
		{ "default", "ROOTCA", "kubernetes://gw-cert" },
	};
	static struct xds_snapshot *made[12];
	struct xds_snapshot *s;
	char body[16];
	int t, i;

	v %= 12;
	if (made[v] != NULL)
		return xds_snapshot_ref(made[v]);
	s = xds_snapshot_new();
	if (s == NULL)
		abort();
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		for (i = 0; i < 3; i++) {
			if ((unsigned)i == v % 4)
				continue; /* variant v lacks one name */
			snprintf(body, sizeof(body), "%c%d.%u", 'A' + t, i, v / 4);
			if (xds_snapshot_add(s, (enum xds_type)t, names[t][i], (const uint8_t *)body, strlen(body)) != 0)
				abort();
		}
	xds_snapshot_seal(s);
	made[v] = s;
	return xds_snapshot_ref(s);
}

static void answer_pending(struct xds_ads *a, unsigned b)
{
	size_t i;

	for (i = 0; i < nwants; i++) {
		if (wants[i]->kind != XDS_PROXY_RELEASE)
			xds_ads_proxy_set(a, wants[i]->key, snap(b + (unsigned)i), wants[i]->seq);
		xds_proxy_req_free(wants[i]);
	}
	nwants = 0;
	xds_ads_proxy_flush(a, NULL);
	for (i = 0; i < nsecrets; i++) {
		if (!secrets[i]->release) {
			if (b & 4)
				xds_ads_secrets_set(a, secrets[i]->stream, secrets[i]->seq, NULL,
						    XDS_ADS_STATUS_PERMISSION_DENIED, "no identity");
			else
				xds_ads_secrets_set(a, secrets[i]->stream, secrets[i]->seq, snap(b), XDS_ADS_STATUS_OK,
						    "");
		}
		xds_secret_req_free(secrets[i]);
	}
	nsecrets = 0;
}

/* Takes one response: it must decode and name its type. */
static int take(struct xds_ads_stream *st, int delta, struct seen *seen)
{
	struct xds_ads_response r;
	const char *url, *nonce, *version;
	uint8_t *msg;
	size_t len;
	int rc = xds_ads_stream_next(st, &r);

	if (rc <= 0)
		return rc;
	if ((unsigned)r.type >= XDS_TYPE_COUNT || r.data == NULL)
		abort();
	len = (r.head ? r.head->len : 0) + r.len;
	msg = malloc(len ? len : 1);
	if (msg == NULL)
		abort();
	if (r.head)
		memcpy(msg, r.head->data, r.head->len);
	memcpy(msg + (r.head ? r.head->len : 0), r.data, r.len);
	xds_resource_unref(r.head);
	free(r.data);
	url = xds_type_url(r.type);
	if (delta) {
		Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *m =
			envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, msg);

		if (m == NULL || strcmp(m->type_url, url) != 0 || m->nonce[0] == 0)
			abort();
		nonce = m->nonce;
		version = m->system_version_info;
		snprintf(seen[r.type].nonce, sizeof(seen[0].nonce), "%s", nonce);
		snprintf(seen[r.type].version, sizeof(seen[0].version), "%s", version);
		envoy__service__discovery__v3__delta_discovery_response__free_unpacked(m, NULL);
	} else {
		Envoy__Service__Discovery__V3__DiscoveryResponse *m =
			envoy__service__discovery__v3__discovery_response__unpack(NULL, len, msg);

		if (m == NULL || strcmp(m->type_url, url) != 0 || m->nonce[0] == 0)
			abort();
		snprintf(seen[r.type].nonce, sizeof(seen[0].nonce), "%s", m->nonce);
		snprintf(seen[r.type].version, sizeof(seen[0].version), "%s", m->version_info);
		envoy__service__discovery__v3__discovery_response__free_unpacked(m, NULL);
	}
	free(msg);
	return 1;
}

/* A Node of kind k (1 proxyless, 2 router, 3 sidecar), built in n. */
struct node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md;
	Google__Protobuf__Struct__FieldsEntry fe[2], *fes[2];
	Google__Protobuf__Value v[2];
};

static Envoy__Config__Core__V3__Node *node_of(struct node *n, unsigned k)
{
	static const char *const ids[] = { "", "proxyless~10.0.0.5~grpc-1.demo~demo.svc.cluster.local",
					   "router~10.0.0.6~gw-1.istio-system~istio-system.svc.cluster.local",
					   "sidecar~10.0.0.1~a-1.demo~demo.svc.cluster.local" };
	size_t i;

	if (k == 0)
		return NULL;
	envoy__config__core__v3__node__init(&n->node);
	google__protobuf__struct__init(&n->md);
	n->node.id = (char *)ids[k];
	n->node.cluster = "a.demo";
	for (i = 0; i < 2; i++) {
		google__protobuf__struct__fields_entry__init(&n->fe[i]);
		google__protobuf__value__init(&n->v[i]);
		n->v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		n->fe[i].value = &n->v[i];
		n->fes[i] = &n->fe[i];
	}
	n->fe[0].key = "NAMESPACE";
	n->v[0].string_value = "demo";
	n->fe[1].key = k == 1 ? "GENERATOR" : "SERVICE_ACCOUNT";
	n->v[1].string_value = k == 1 ? "grpc" : "sa-a";
	n->md.fields = n->fes;
	n->md.n_fields = 2;
	n->node.metadata = &n->md;
	return &n->node;
}

/* op 1: a request quoting the latest response of a type */
static void quote(struct xds_ads_stream *st, int delta, const struct seen *seen, const uint8_t *d, size_t n)
{
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	struct node nd;
	char *names[MAX_NAMES], buf[512];
	size_t nn = 0, i = 0, bl;
	enum xds_type t;
	unsigned b1;

	if (n < 2)
		return;
	t = (enum xds_type)(d[0] % XDS_TYPE_COUNT);
	b1 = d[1];
	bl = n - 2 < sizeof(buf) - 1 ? n - 2 : sizeof(buf) - 1;
	memcpy(buf, d + 2, bl);
	buf[bl] = 0;
	/* names: the rest split at ',' (up to a NUL) */
	while (bl > 0 && nn < MAX_NAMES && i <= strlen(buf)) {
		char *c = strchr(buf + i, ',');

		names[nn++] = buf + i;
		if (c == NULL)
			break;
		*c = 0;
		i = (size_t)(c - buf) + 1;
	}
	status.code = 3;
	status.message = "rejected by the fuzzer";
	if (delta) {
		Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
			ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;

		req.node = node_of(&nd, (b1 >> 1) & 3);
		req.type_url = (char *)xds_type_url(t);
		req.response_nonce = (char *)seen[t].nonce;
		if (b1 & 8) {
			req.resource_names_unsubscribe = names;
			req.n_resource_names_unsubscribe = nn;
		} else {
			req.resource_names_subscribe = names;
			req.n_resource_names_subscribe = nn;
		}
		if (b1 & 1)
			req.error_detail = &status;
		xds_ads_stream_delta_request(st, &req);
	} else {
		Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;

		req.node = node_of(&nd, (b1 >> 1) & 3);
		req.type_url = (char *)xds_type_url(t);
		req.version_info = (char *)seen[t].version;
		req.response_nonce = (char *)seen[t].nonce;
		req.resource_names = names;
		req.n_resource_names = nn;
		if (b1 & 1)
			req.error_detail = &status;
		xds_ads_stream_request(st, &req);
	}
}

/* op 0: bytes off the wire, through the reduced-ACK path first when on */
static void recv_bytes(struct xds_ads_stream *st, int reduce, const uint8_t *d, size_t n)
{
	struct xds_ads_ack_expect e;
	struct xds_ads_ack ack;
	enum xds_ads_status code;
	const char *msg;

	if (reduce) {
		xds_ads_stream_ack_expect(st, &e);
		if (xds_ads_ack_reduce(&e, d, n, &ack) == 1) {
			if ((unsigned)ack.type >= XDS_TYPE_COUNT || !e.ok)
				abort();
			/* the rule of ads.h: an ACK reduced against the
			 * stream's expectation applies */
			if (xds_ads_stream_recv_ack(st, &ack) != 0)
				abort();
			return;
		}
	}
	/* a message that does not parse ends the stream */
	if (xds_ads_stream_recv(st, d, n) != 0 && !xds_ads_stream_finishing(st, &code, &msg))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xds_ads_config cfg = { 0 };
	struct xds_ads *a = NULL;
	struct xds_ads_stream *st = NULL;
	struct seen seen[XDS_TYPE_COUNT];
	struct mesh_buf b;
	enum xds_ads_status code;
	const char *msg;
	size_t off = 1;
	int delta, reduce, f, closed = 0;

	mesh_log_set_level(MESH_LOG_OFF);
	if (size < 1)
		return 0;
	delta = data[0] & 1;
	reduce = !delta && (data[0] & 2);
	if (data[0] & 4) {
		cfg.want = want_cb;
		cfg.whole_flavours = 1u << XDS_FLAVOUR_SIDECAR;
	}
	if (data[0] & 8)
		cfg.secret = secret_cb;
	if (xds_ads_new(&cfg, &a) != 0)
		return 0;
	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		xds_ads_publish(a, (enum xds_flavour)f, snap((unsigned)f), NULL);
	if (xds_ads_stream_new(a, delta, "127.0.0.1:40000", NULL, &st) != 0)
		goto out;
	memset(seen, 0, sizeof(seen));
	while (off + 3 <= size && !closed) {
		unsigned op = data[off];
		size_t n = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		const uint8_t *d = data + off + 3;
		int i;

		if (n > size - off - 3)
			n = size - off - 3;
		off += 3 + n;
		switch (op % 6) {
		case 0:
			recv_bytes(st, reduce, d, n);
			break;
		case 1:
			quote(st, delta, seen, d, n);
			break;
		case 2:
			xds_ads_publish(a, (enum xds_flavour)((n ? d[0] : 0) % XDS_FLAVOUR_COUNT),
					snap(n > 1 ? d[1] : 1), NULL);
			answer_pending(a, n > 1 ? d[1] : 0);
			break;
		case 3:
			for (i = 0; i < (n ? d[0] % 4 : 0) + 1; i++)
				if (take(st, delta, seen) <= 0)
					break;
			break;
		case 4:
			xds_ads_refuse_unserved(a);
			mesh_buf_init(&b, 1u << 24);
			if (xds_ads_syncz(a, &b) != 0 && b.err == 0)
				abort();
			mesh_buf_reset(&b);
			/* -ENOENT / -ENOTUNIQ for a proxy not (uniquely) there */
			if (xds_ads_config_dump(a, "a-1.demo", &b) == 0 && b.err != 0)
				abort();
			mesh_buf_cleanup(&b);
			break;
		default:
			xds_ads_stream_end(st, (enum xds_ads_status)(n ? d[0] % 17 : 0), "transport");
			closed = 1;
			break;
		}
	}
	/* a finishing stream sends nothing; else everything queued drains */
	if (xds_ads_stream_finishing(st, &code, &msg)) {
		if (msg == NULL || take(st, delta, seen) != 0)
			abort();
	} else {
		int k = 0;

		while (take(st, delta, seen) > 0)
			if (++k > 10000)
				abort();
	}
	xds_ads_stream_closed(st);
	xds_ads_stream_free(st);
out:
	answer_pending(a, 0);
	xds_ads_free(a);
	return 0;
}
