/*
 * loadgen.c - simulated proxyless xDS clients on gRPC core.
 *
 * Channels: cfg->channels insecure channels to the same target, each with
 * GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL and a distinct channel argument, so
 * each gets its own subchannel and the streams spread over that many
 * HTTP/2 connections, as many proxies would.  Proxy i uses channel
 * i % channels.
 *
 * Per proxy and type: the subscribed names (sorted, unique), the last
 * version and nonce, and whether a request (ACK or new subscription) waits
 * for the call's single SEND_MESSAGE slot.  A request always carries the
 * newest names, version and nonce, so requests that queue behind a send
 * collapse into one, as state-of-the-world allows.  Responses are decoded
 * with protobuf-c to follow the chain Listener -> RouteConfiguration ->
 * Cluster -> ClusterLoadAssignment.
 *
 * With cfg->delta the proxies speak DeltaAggregatedResources instead: a
 * request subscribes the names added and unsubscribes the names dropped
 * since the last request of that type (and ACKs with the latest nonce).
 * Responses carry only changed resources and removed names, so each type
 * keeps what it holds (name and the names it leads to) and the next type's
 * names come from the whole held set.
 *
 * Every proxy's Node carries GENERATOR: grpc, the "sidecar metadata" ones
 * too (they add an Envoy user agent and ISTIO_VERSION): meshd picks the
 * config flavour from the Node, and these proxies follow the proxyless
 * chain (host:port listeners with an ApiListener), so the proxyless rows
 * keep measuring what they always did.
 *
 * Sidecar mode (cfg->sidecar): LDS and CDS are wildcard subscriptions
 * (no names; synced once answered and ACKed), RDS names come from the HTTP
 * connection managers in the listeners' filter chains, EDS names from the
 * clusters of type EDS; routes do not lead to CDS names.  Watches concern
 * every proxy, and a weight watch looks in route config "PORT".  Two
 * things keep the one load generator thread from being what is measured
 * when 2,000 sidecars each hold megabytes: proxies start in waves of
 * LG_SIDECAR_WAVE (the next wave when the previous one synced, as a
 * rollout brings pods up, rather than 2,000 at the same instant), and
 * what a resource leads to (next names, watched changes seen) is decoded
 * once per distinct content and remembered by a hash of its bytes
 * (replicas receive identical bytes; each real Envoy would decode on its
 * own CPU).
 *
 * Ownership: the loadgen owns channels, calls and every buffer; a proxy's
 * tags point into the proxy, which lives until loadgen_free() has seen
 * every batch complete.
 */
#include "tests/bench/loadgen.h"

#include "common/err.h"
#include "common/log.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/api_listener.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

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

#define SCOPE "loadgen"
#define LG_METHOD "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define LG_METHOD_DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define LG_HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
/* version and nonce as the server sends them; longer ones are an error */
#define LG_TOKEN_CAP 128
/* largest DiscoveryResponse accepted */
#define LG_MAX_RESPONSE_BYTES (64 * 1024 * 1024)
/* names followed per type and proxy */
#define LG_MAX_NAMES 100000
/* how long loadgen_free() waits for gRPC core to return the calls */
#define LG_DRAIN_MS 10000
/* sidecar mode: proxies started per wave, and decode-cache slots */
#define LG_SIDECAR_WAVE 100
#define LG_CACHE_SLOTS 65536

enum { LG_LDS, LG_RDS, LG_CDS, LG_EDS, LG_TYPES };

static const char *const lg_urls[LG_TYPES] = {
	"type.googleapis.com/envoy.config.listener.v3.Listener",
	"type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
	"type.googleapis.com/envoy.config.cluster.v3.Cluster",
	"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
};

enum tag_kind { TAG_START, TAG_RECV, TAG_SEND, TAG_STATUS };

struct lg_proxy;

struct lg_tag {
	enum tag_kind kind;
	struct lg_proxy *p;
};

struct lg_names {
	char **v;
	size_t n;
};

/* Delta: one resource a proxy holds and the names it leads to. */
struct lg_held {
	char *name;
	const char **next;            /* owned copies */
	size_t nnext;
};

struct lg_type {
	struct lg_names names;
	struct lg_names subscribed;   /* Delta: names the server was told */
	struct lg_held *held;         /* Delta: sorted by name */
	size_t nheld;
	char version[LG_TOKEN_CAP];
	char nonce[LG_TOKEN_CAP];
	int have_response;
	int want_send;       /* an ACK or a new subscription waits for the send slot */
	int awaiting;        /* a new subscription went out; no response since */
	int wildcard;        /* sidecar LDS/CDS: no names, everything */
	int wildcard_sent;   /* Delta: the wildcard subscription went out */
	int names_dirty;     /* Delta: names changed since the last request */
	size_t last_nres;
};

enum { W_NONE, W_WAITING, W_SEEN };

struct lg_proxy {
	struct loadgen *lg;
	int idx;
	int sidecar;
	int *targets;        /* service indices: the listeners it asks for */
	int ntargets, cap_targets;
	grpc_call *call;
	struct lg_tag tag_start, tag_recv, tag_send, tag_status;
	grpc_metadata_array md_init, md_trail;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_buf;
	int inflight;
	int sending;
	int node_sent;
	int ended;
	int synced;
	struct lg_type types[LG_TYPES];
	uint8_t watch[LOADGEN_WATCH_SLOTS];
	uint8_t watch_type[LOADGEN_WATCH_SLOTS];  /* type whose ACK completes a SEEN watch */
};

struct lg_watch {
	int armed;
	struct loadgen_watch w;
	char resource[BENCH_MESH_NAME_CAP];       /* route config or listener name */
	char cluster[BENCH_MESH_NAME_CAP];        /* WEIGHT: the v1 cluster */
	int pending;
	double last_ack;
};

/* Sidecar mode: what one resource content leads to (see the top). */
struct lg_cached {
	uint64_t hash;
	size_t len;
	int type;
	int valid;
	uint64_t epoch;              /* watch arming it was computed under */
	uint32_t seen;               /* watch slots its content completes */
	struct strlist_c {
		char **v;
		size_t n;
	} next;
};

struct loadgen {
	struct loadgen_config cfg;
	int started;                 /* proxies whose stream was started */
	uint64_t watch_epoch;        /* bumped when a watch is armed or disarmed */
	struct lg_cached *cache;     /* sidecar mode: LG_CACHE_SLOTS */
	grpc_completion_queue *cq;
	grpc_channel **ch;
	int nch;
	struct lg_proxy *proxies;
	int n;
	struct loadgen_stats st;
	struct lg_watch watches[LOADGEN_WATCH_SLOTS];
	uint64_t rng;
	int closing;
	int status_logged;
};

double loadgen_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void copy_token(char *dst, const char *src)
{
	size_t n = src ? strnlen(src, LG_TOKEN_CAP - 1) : 0;

	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* name sets */

static void names_clear(struct lg_names *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort v in place and drop duplicates; returns the new count. */
static size_t sort_unique(const char **v, size_t n)
{
	size_t i, w = 0;

	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++)
		if (w == 0 || strcmp(v[w - 1], v[i]) != 0)
			v[w++] = v[i];
	return w;
}

/* Make s hold the sorted unique names v (borrowed).  Returns 1 when the
 * set changed, 0 when not, or -ENOMEM. */
static int names_set(struct lg_names *s, const char **v, size_t n)
{
	struct lg_names nw = { 0 };
	size_t i;

	n = sort_unique(v, n);
	if (n == s->n) {
		for (i = 0; i < n && strcmp(v[i], s->v[i]) == 0; i++)
			;
		if (i == n)
			return 0;
	}
	if (n) {
		nw.v = calloc(n, sizeof(*nw.v));
		if (!nw.v)
			return -ENOMEM;
		for (nw.n = 0; nw.n < n; nw.n++) {
			nw.v[nw.n] = strdup(v[nw.n]);
			if (!nw.v[nw.n]) {
				names_clear(&nw);
				return -ENOMEM;
			}
		}
	}
	names_clear(s);
	*s = nw;
	return 1;
}

/* A growable list of copied strings, capped at LG_MAX_NAMES. */
struct strlist {
	const char **v;
	size_t n, cap;
	int err;
};

static void strlist_add(struct strlist *l, const char *s)
{
	char *d;

	if (!l || l->err || !s || !s[0])
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		const char **v;
		if (cap > LG_MAX_NAMES) {
			l->err = -MESH_ETOOBIG;
			return;
		}
		v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->err = -ENOMEM;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	d = strdup(s);
	if (!d) {
		l->err = -ENOMEM;
		return;
	}
	l->v[l->n++] = d;
}

static void strlist_cleanup(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free((char *)l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ */
/* sending */

static int proxy_batch(struct lg_proxy *p, const grpc_op *ops, size_t n, struct lg_tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(p->call, ops, n, tag, NULL);

	if (e != GRPC_CALL_OK) {
		log_warn(SCOPE, "proxy %d: grpc_call_start_batch: %s", p->idx, grpc_call_error_to_string(e));
		return -MESH_EGRPC;
	}
	p->inflight++;
	return 0;
}

static void proxy_node_id(const struct lg_proxy *p, char *out, size_t cap)
{
	snprintf(out, cap, "sidecar~10.%d.%d.%d~bench-%d.bench~bench.svc.cluster.local", 200 + (p->idx >> 16),
		 (p->idx >> 8) & 255, p->idx & 255, p->idx);
}

/* A sidecar's Node (see the top of the file); storage in *n and id. */
struct lg_sidecar_node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md, labels;
	Google__Protobuf__Struct__FieldsEntry fe[4], *fes[4], le, *les[1];
	Google__Protobuf__Value v[4], lv;
	char app[32], sa[32];
};

static Envoy__Config__Core__V3__Node *sidecar_node(const struct lg_proxy *p, struct lg_sidecar_node *n, char *id,
						   size_t cap)
{
	int w = p->lg->cfg.workloads > 0 ? p->lg->cfg.workloads : 20, i;

	envoy__config__core__v3__node__init(&n->node);
	google__protobuf__struct__init(&n->md);
	google__protobuf__struct__init(&n->labels);
	google__protobuf__struct__fields_entry__init(&n->le);
	google__protobuf__value__init(&n->lv);
	proxy_node_id(p, id, cap);
	snprintf(n->app, sizeof(n->app), "wl-%d", p->idx % w);
	snprintf(n->sa, sizeof(n->sa), "sa-wl-%d", p->idx % w);
	for (i = 0; i < 4; i++) {
		google__protobuf__struct__fields_entry__init(&n->fe[i]);
		google__protobuf__value__init(&n->v[i]);
		n->fe[i].value = &n->v[i];
		n->fes[i] = &n->fe[i];
		n->v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	}
	n->fe[0].key = "NAMESPACE";
	n->v[0].string_value = "bench";
	n->fe[1].key = "SERVICE_ACCOUNT";
	n->v[1].string_value = n->sa;
	n->fe[2].key = "INTERCEPTION_MODE";
	n->v[2].string_value = "REDIRECT";
	n->le.key = "app";
	n->le.value = &n->lv;
	n->lv.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	n->lv.string_value = n->app;
	n->les[0] = &n->le;
	n->labels.fields = n->les;
	n->labels.n_fields = 1;
	n->fe[3].key = "LABELS";
	n->v[3].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	n->v[3].struct_value = &n->labels;
	n->md.fields = n->fes;
	n->md.n_fields = 4;
	n->node.id = id;
	n->node.cluster = "bench";
	n->node.user_agent_name = "envoy";
	n->node.metadata = &n->md;
	return &n->node;
}

/* Names of a that b lacks (both sorted), borrowed into a new array (*n
 * of them), or NULL without memory. */
static const char **names_minus(const struct lg_names *a, const struct lg_names *b, size_t *n)
{
	const char **v = calloc(a->n + 1, sizeof(*v));
	size_t i = 0, j = 0;

	*n = 0;
	if (!v)
		return NULL;
	while (i < a->n) {
		int c = j < b->n ? strcmp(a->v[i], b->v[j]) : -1;
		if (c < 0)
			v[(*n)++] = a->v[i++];
		else if (c > 0)
			j++;
		else {
			i++;
			j++;
		}
	}
	return v;
}

/* Delta: the type's request (names added and dropped since the last one,
 * the latest nonce) into a new byte buffer; *subscribes tells whether it
 * subscribes to anything (then a response is due). */
static grpc_byte_buffer *delta_request_encode(struct lg_proxy *p, int t, Envoy__Config__Core__V3__Node *node,
					      int *subscribes)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	struct lg_type *ts = &p->types[t];
	const char **sub = NULL, **unsub = NULL;
	size_t nsub = 0, nunsub = 0, len;
	grpc_byte_buffer *bb = NULL;
	grpc_slice slice;
	uint8_t *wire = NULL;

	/* an ACK alone (names unchanged) needs no diff: most requests of a
	 * sidecar holding 1,000 names are that */
	if (ts->names_dirty) {
		sub = names_minus(&ts->names, &ts->subscribed, &nsub);
		unsub = names_minus(&ts->subscribed, &ts->names, &nunsub);
		if (!sub || !unsub)
			goto out;
	}
	req.node = node;
	req.type_url = (char *)lg_urls[t];
	req.resource_names_subscribe = (char **)sub;
	req.n_resource_names_subscribe = nsub;
	req.resource_names_unsubscribe = (char **)unsub;
	req.n_resource_names_unsubscribe = nunsub;
	req.response_nonce = ts->nonce;
	len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	if (!wire)
		goto out;
	envoy__service__discovery__v3__delta_discovery_request__pack(&req, wire);
	/* from now on the server knows the current names */
	if (!ts->names_dirty)
		;
	else if (ts->names.n == 0)
		names_clear(&ts->subscribed);
	else if (names_set(&ts->subscribed, (const char **)ts->names.v, ts->names.n) < 0)
		goto out;
	ts->names_dirty = 0;
	*subscribes = nsub > 0;
	/* the legacy wildcard (LDS/CDS): a first request naming nothing,
	 * as Envoy sends it; a response is due */
	if (ts->wildcard && !ts->wildcard_sent) {
		ts->wildcard_sent = 1;
		*subscribes = 1;
	}
	slice = grpc_slice_new(wire, len, free);
	wire = NULL;
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
out:
	free(wire);
	free(sub);
	free(unsub);
	return bb;
}

/* Encode the type's current request into a new byte buffer; *subscribes
 * tells whether a response is due for it (always, for state of the world). */
static grpc_byte_buffer *request_encode(struct lg_proxy *p, int t, int *subscribes)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[3] = { GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
							GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
							GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT };
	Google__Protobuf__Struct__FieldsEntry *fes[3] = { &fe[0], &fe[1], &fe[2] };
	Google__Protobuf__Value v[3] = { GOOGLE__PROTOBUF__VALUE__INIT, GOOGLE__PROTOBUF__VALUE__INIT,
					 GOOGLE__PROTOBUF__VALUE__INIT };
	struct lg_type *ts = &p->types[t];
	struct lg_sidecar_node sn;
	char id[128];
	grpc_byte_buffer *bb = NULL;
	grpc_slice slice;
	uint8_t *wire;
	size_t len;

	if (!p->node_sent && p->lg->cfg.sidecar)
		req.node = sidecar_node(p, &sn, id, sizeof(id));
	else if (!p->node_sent) {
		proxy_node_id(p, id, sizeof(id));
		node.id = id;
		node.cluster = "bench";
		v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		fe[0].key = "NAMESPACE";
		v[0].string_value = "bench";
		fe[0].value = &v[0];
		/* every proxy is proxyless to meshd (see the top of the file) */
		fe[1].key = "GENERATOR";
		v[1].string_value = "grpc";
		fe[1].value = &v[1];
		md.n_fields = 2;
		if (p->sidecar) {
			node.user_agent_name = "envoy";
			fe[2].key = "ISTIO_VERSION";
			v[2].string_value = "1.20.0";
			fe[2].value = &v[2];
			md.n_fields = 3;
		} else {
			node.user_agent_name = "grpc-c-meshbench";
		}
		md.fields = fes;
		node.metadata = &md;
		req.node = &node;
	}
	if (p->lg->cfg.delta)
		return delta_request_encode(p, t, req.node, subscribes);
	*subscribes = 1;
	req.type_url = (char *)lg_urls[t];
	req.version_info = ts->version;
	req.response_nonce = ts->nonce;
	req.resource_names = ts->names.v;
	req.n_resource_names = ts->names.n;
	len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	if (!wire)
		return NULL;
	envoy__service__discovery__v3__discovery_request__pack(&req, wire);
	slice = grpc_slice_new(wire, len, free);
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

static void proxy_check_sync(struct lg_proxy *p)
{
	struct loadgen *lg = p->lg;
	int t;

	if (p->synced || p->ended)
		return;
	for (t = 0; t < LG_TYPES; t++) {
		const struct lg_type *ts = &p->types[t];
		if (!ts->have_response || ts->want_send || ts->awaiting)
			return;
		if (!ts->wildcard && (ts->names.n == 0 || ts->last_nres != ts->names.n))
			return;
	}
	p->synced = 1;
	lg->st.synced++;
	if (lg->st.synced == lg->n)
		lg->st.all_synced_at = loadgen_now();
}

/* Start the next waiting request, LDS first, if the send slot is free. */
static void proxy_pump(struct lg_proxy *p)
{
	struct loadgen *lg = p->lg;
	grpc_op op;
	int t, s, subscribes = 1;

	if (p->sending || p->ended)
		return;
	for (t = 0; t < LG_TYPES && !p->types[t].want_send; t++)
		;
	if (t == LG_TYPES)
		return;
	p->send_buf = request_encode(p, t, &subscribes);
	if (!p->send_buf) {
		log_error(SCOPE, "proxy %d: out of memory encoding a request", p->idx);
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = p->send_buf;
	if (proxy_batch(p, &op, 1, &p->tag_send) < 0) {
		grpc_byte_buffer_destroy(p->send_buf);
		p->send_buf = NULL;
		return;
	}
	p->sending = 1;
	p->node_sent = 1;
	lg->st.requests++;
	if (subscribes && (!p->types[t].have_response || p->types[t].awaiting == -1))
		p->types[t].awaiting = 1;
	else if (!subscribes && p->types[t].awaiting == -1)
		p->types[t].awaiting = 0;   /* Delta: only unsubscribes, no response due */
	p->types[t].want_send = 0;
	/* the ACK of a response carrying a watched change is on its way */
	for (s = 0; s < LOADGEN_WATCH_SLOTS; s++) {
		if (p->watch[s] == W_SEEN && p->watch_type[s] == t) {
			p->watch[s] = W_NONE;
			lg->watches[s].pending--;
			lg->watches[s].last_ack = loadgen_now();
		}
	}
	proxy_check_sync(p);
}

/* The type's subscription changed: ask again. */
static void proxy_resubscribe(struct lg_proxy *p, int t)
{
	p->types[t].want_send = 1;
	p->types[t].awaiting = -1;   /* becomes 1 when the request leaves */
	p->types[t].names_dirty = 1;
}

/* LDS names from the proxy's targets. */
static int proxy_subscribe_listeners(struct lg_proxy *p)
{
	char (*buf)[BENCH_MESH_NAME_CAP] = NULL;
	const char **v = NULL;
	int i, rc = 0;

	if (p->lg->cfg.sidecar) {
		/* LDS and CDS wildcard, once (Envoy asks for both at start) */
		if (!p->types[LG_LDS].wildcard) {
			p->types[LG_LDS].wildcard = 1;
			p->types[LG_CDS].wildcard = 1;
			proxy_resubscribe(p, LG_LDS);
			proxy_resubscribe(p, LG_CDS);
		}
		return 0;
	}
	buf = calloc((size_t)p->ntargets, sizeof(*buf));
	v = calloc((size_t)p->ntargets, sizeof(*v));
	if (!buf || !v) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < p->ntargets; i++) {
		bench_mesh_listener(p->targets[i], buf[i], sizeof(buf[i]));
		v[i] = buf[i];
	}
	rc = names_set(&p->types[LG_LDS].names, v, (size_t)p->ntargets);
	if (rc > 0) {
		proxy_resubscribe(p, LG_LDS);
		rc = 0;
	}
out:
	free(v);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* receiving */

static void watch_seen(struct lg_proxy *p, int slot, int t)
{
	if (p->watch[slot] == W_WAITING) {
		p->watch[slot] = W_SEEN;
		p->watch_type[slot] = (uint8_t)t;
	}
}

static void on_hcm(struct lg_proxy *p, const Google__Protobuf__Any *any, struct strlist *next);

static void on_listener(struct lg_proxy *p, const Envoy__Config__Listener__V3__Listener *l, struct strlist *next)
{
	const Google__Protobuf__Any *any;
	int s;

	for (s = 0; s < LOADGEN_WATCH_SLOTS; s++) {
		const struct lg_watch *w = &p->lg->watches[s];
		if (p->watch[s] == W_WAITING && w->w.kind == LOADGEN_WATCH_LISTENER && l->name &&
		    strcmp(l->name, w->resource) == 0)
			watch_seen(p, s, LG_LDS);
	}
	if (p->lg->cfg.sidecar) {
		size_t i, j, n = l->n_filter_chains + (l->default_filter_chain ? 1 : 0);

		for (i = 0; i < n; i++) {
			const Envoy__Config__Listener__V3__FilterChain *fc =
				i < l->n_filter_chains ? l->filter_chains[i] : l->default_filter_chain;
			for (j = 0; fc && j < fc->n_filters; j++) {
				const Envoy__Config__Listener__V3__Filter *f = fc->filters[j];
				if (f->config_type_case == ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
					on_hcm(p, f->typed_config, next);
			}
		}
		return;
	}
	if (!l->api_listener || !(any = l->api_listener->api_listener))
		return;
	on_hcm(p, any, next);
}

/* The route config name of an HTTP connection manager (any other filter:
 * nothing). */
static void on_hcm(struct lg_proxy *p, const Google__Protobuf__Any *any, struct strlist *next)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm;

	if (!any || !any->type_url || strcmp(any->type_url, LG_HCM_URL) != 0)
		return;
	hcm = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
		NULL, any->value.len, any->value.data);
	if (!hcm) {
		p->lg->st.decode_errors++;
		return;
	}
	if (hcm->route_specifier_case ==
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
	    hcm->rds)
		strlist_add(next, hcm->rds->route_config_name);
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(hcm,
														   NULL);
}

static void on_route(struct lg_proxy *p, const Envoy__Config__Route__V3__RouteConfiguration *rc, struct strlist *next)
{
	size_t i, j, k;
	int s;

	for (i = 0; i < rc->n_virtual_hosts; i++) {
		const Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[i];
		for (j = 0; j < vh->n_routes; j++) {
			const Envoy__Config__Route__V3__Route *r = vh->routes[j];
			const Envoy__Config__Route__V3__RouteAction *ra;
			if (r->action_case != ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE || !(ra = r->route))
				continue;
			if (ra->cluster_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER) {
				strlist_add(next, ra->cluster);
			} else if (ra->cluster_specifier_case ==
					   ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS &&
				   ra->weighted_clusters) {
				for (k = 0; k < ra->weighted_clusters->n_clusters; k++) {
					const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
						ra->weighted_clusters->clusters[k];
					strlist_add(next, cw->name);
					for (s = 0; s < LOADGEN_WATCH_SLOTS; s++) {
						const struct lg_watch *w = &p->lg->watches[s];
						if (p->watch[s] == W_WAITING && w->w.kind == LOADGEN_WATCH_WEIGHT &&
						    rc->name && strcmp(rc->name, w->resource) == 0 && cw->name &&
						    strcmp(cw->name, w->cluster) == 0 && cw->weight &&
						    cw->weight->value == w->w.weight)
							watch_seen(p, s, LG_RDS);
					}
				}
			}
		}
	}
}

static void on_cluster(const struct lg_proxy *p, const Envoy__Config__Cluster__V3__Cluster *c, struct strlist *next)
{
	/* a sidecar asks EDS only for the EDS clusters (not STATIC, ORIGINAL_DST...) */
	if (p->lg->cfg.sidecar &&
	    !(c->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
	      c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS))
		return;
	if (c->eds_cluster_config && c->eds_cluster_config->service_name && c->eds_cluster_config->service_name[0])
		strlist_add(next, c->eds_cluster_config->service_name);
	else
		strlist_add(next, c->name);
}

static void on_endpoints(struct lg_proxy *p, const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla)
{
	size_t i, j;
	int s, any = 0;

	for (s = 0; s < LOADGEN_WATCH_SLOTS; s++)
		if (p->watch[s] == W_WAITING && p->lg->watches[s].w.kind == LOADGEN_WATCH_ENDPOINT)
			any = 1;
	if (!any)
		return;
	for (i = 0; i < cla->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *loc = cla->endpoints[i];
		for (j = 0; j < loc->n_lb_endpoints; j++) {
			const Envoy__Config__Endpoint__V3__LbEndpoint *e = loc->lb_endpoints[j];
			const Envoy__Config__Core__V3__SocketAddress *sa;
			if (e->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
			    !e->endpoint || !e->endpoint->address ||
			    e->endpoint->address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS ||
			    !(sa = e->endpoint->address->socket_address) || !sa->address)
				continue;
			for (s = 0; s < LOADGEN_WATCH_SLOTS; s++) {
				const struct lg_watch *w = &p->lg->watches[s];
				if (p->watch[s] == W_WAITING && w->w.kind == LOADGEN_WATCH_ENDPOINT &&
				    strcmp(sa->address, w->w.address) == 0)
					watch_seen(p, s, LG_EDS);
			}
		}
	}
}

/* Decode one resource, note watched changes, and collect the names the
 * next type in the chain must ask for. */
static void process_any(struct lg_proxy *p, int t, const Google__Protobuf__Any *any, struct strlist *next)
{
	if (!any || !any->type_url || strcmp(any->type_url, lg_urls[t]) != 0) {
		p->lg->st.decode_errors++;
		return;
	}
	switch (t) {
	case LG_LDS: {
		Envoy__Config__Listener__V3__Listener *l =
			envoy__config__listener__v3__listener__unpack(NULL, any->value.len, any->value.data);
		if (!l)
			break;
		on_listener(p, l, next);
		envoy__config__listener__v3__listener__free_unpacked(l, NULL);
		return;
	}
	case LG_RDS: {
		Envoy__Config__Route__V3__RouteConfiguration *rc =
			envoy__config__route__v3__route_configuration__unpack(NULL, any->value.len, any->value.data);
		if (!rc)
			break;
		/* a sidecar's clusters come from the CDS wildcard */
		on_route(p, rc, p->lg->cfg.sidecar ? NULL : next);
		envoy__config__route__v3__route_configuration__free_unpacked(rc, NULL);
		return;
	}
	case LG_CDS: {
		Envoy__Config__Cluster__V3__Cluster *c =
			envoy__config__cluster__v3__cluster__unpack(NULL, any->value.len, any->value.data);
		if (!c)
			break;
		on_cluster(p, c, next);
		envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
		return;
	}
	case LG_EDS: {
		Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla =
			envoy__config__endpoint__v3__cluster_load_assignment__unpack(NULL, any->value.len,
										     any->value.data);
		if (!cla)
			break;
		on_endpoints(p, cla);
		envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);
		return;
	}
	}
	p->lg->st.decode_errors++;
}

/* A fast hash of the bytes, for the decode cache (not cryptographic:
 * a collision would only mis-count a bench proxy). */
static uint64_t lg_hash(const uint8_t *d, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, d + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static void cached_clear(struct lg_cached *e)
{
	size_t i;

	for (i = 0; i < e->next.n; i++)
		free(e->next.v[i]);
	free(e->next.v);
	memset(e, 0, sizeof(*e));
}

/* Sidecar mode: process_any once per distinct content (see the top),
 * replayed for p: next names and the watches its content completes. */
static void process_cached(struct lg_proxy *p, int t, const Google__Protobuf__Any *any, struct strlist *next)
{
	struct loadgen *lg = p->lg;
	struct lg_cached *e;
	uint64_t h;
	size_t i;
	int s;

	if (!lg->cache || !any || !any->type_url || strcmp(any->type_url, lg_urls[t]) != 0) {
		process_any(p, t, any, next);
		return;
	}
	h = lg_hash(any->value.data, any->value.len) ^ (uint64_t)t;
	e = &lg->cache[h % LG_CACHE_SLOTS];
	if (!e->valid || e->hash != h || e->len != any->value.len || e->type != t || e->epoch != lg->watch_epoch) {
		/* decode with every armed watch waiting, to learn what it completes */
		struct lg_proxy probe = *p;
		struct strlist one = { 0 };
		uint64_t errs = lg->st.decode_errors;

		for (s = 0; s < LOADGEN_WATCH_SLOTS; s++)
			probe.watch[s] = lg->watches[s].armed ? W_WAITING : W_NONE;
		process_any(&probe, t, any, &one);
		cached_clear(e);
		if (one.err < 0 || lg->st.decode_errors != errs) {
			/* not cached: replay what this decode found */
			for (i = 0; i < one.n; i++)
				strlist_add(next, one.v[i]);
			strlist_cleanup(&one);
			for (s = 0; s < LOADGEN_WATCH_SLOTS; s++)
				if (probe.watch[s] == W_SEEN)
					watch_seen(p, s, t);
			return;
		}
		e->hash = h;
		e->len = any->value.len;
		e->type = t;
		e->epoch = lg->watch_epoch;
		for (s = 0; s < LOADGEN_WATCH_SLOTS; s++)
			if (probe.watch[s] == W_SEEN)
				e->seen |= 1u << s;
		e->next.v = (char **)one.v;
		e->next.n = one.n;
		e->valid = 1;
	}
	for (i = 0; i < e->next.n; i++)
		strlist_add(next, e->next.v[i]);
	for (s = 0; s < LOADGEN_WATCH_SLOTS; s++)
		if (e->seen & (1u << s))
			watch_seen(p, s, t);
}

/* Every resource of a state-of-the-world response. */
static int process_resources(struct lg_proxy *p, int t, const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
			     struct strlist *next)
{
	size_t i;

	for (i = 0; i < r->n_resources; i++) {
		if (p->lg->cfg.sidecar)
			process_cached(p, t, r->resources[i], next);
		else
			process_any(p, t, r->resources[i], next);
	}
	return next->err;
}

/* ------------------------------------------------------------------ */
/* Delta: what a proxy holds */

static void held_entry_free(struct lg_held *h)
{
	size_t i;

	for (i = 0; i < h->nnext; i++)
		free((char *)h->next[i]);
	free(h->next);
	free(h->name);
}

static void held_clear(struct lg_type *ts)
{
	size_t i;

	for (i = 0; i < ts->nheld; i++)
		held_entry_free(&ts->held[i]);
	free(ts->held);
	ts->held = NULL;
	ts->nheld = 0;
}

/* Index of name in ts->held, or where it would go (*found says which). */
static size_t held_pos(const struct lg_type *ts, const char *name, int *found)
{
	size_t lo = 0, hi = ts->nheld;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ts->held[mid].name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Hold name, leading to the names of next (taken: next is emptied).
 * Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int held_put(struct lg_type *ts, const char *name, struct strlist *next)
{
	struct lg_held h = { 0 };
	size_t pos;
	int found;

	pos = held_pos(ts, name, &found);
	if (!found) {
		struct lg_held *v;
		if (ts->nheld >= LG_MAX_NAMES)
			return -MESH_ETOOBIG;
		h.name = strdup(name);
		v = realloc(ts->held, (ts->nheld + 1) * sizeof(*v));
		if (!h.name || !v) {
			free(h.name);
			if (v)
				ts->held = v;
			return -ENOMEM;
		}
		ts->held = v;
		memmove(&ts->held[pos + 1], &ts->held[pos], (ts->nheld - pos) * sizeof(*v));
		ts->held[pos] = h;
		ts->nheld++;
	} else {
		h = ts->held[pos];
		h.name = NULL;
		held_entry_free(&h);
	}
	ts->held[pos].next = next->v;
	ts->held[pos].nnext = next->n;
	memset(next, 0, sizeof(*next));
	return 0;
}

static void held_remove(struct lg_type *ts, const char *name)
{
	size_t pos;
	int found;

	pos = held_pos(ts, name, &found);
	if (!found)
		return;
	held_entry_free(&ts->held[pos]);
	memmove(&ts->held[pos], &ts->held[pos + 1], (ts->nheld - pos - 1) * sizeof(*ts->held));
	ts->nheld--;
}

static void proxy_end(struct lg_proxy *p)
{
	struct loadgen *lg = p->lg;
	int s;

	if (p->ended)
		return;
	p->ended = 1;
	lg->st.failed++;
	for (s = 0; s < LOADGEN_WATCH_SLOTS; s++) {
		if (p->watch[s] != W_NONE) {
			p->watch[s] = W_NONE;
			lg->watches[s].pending--;
		}
	}
}

static void proxy_start_recv(struct lg_proxy *p)
{
	grpc_op op;

	if (p->ended || p->lg->closing)
		return;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &p->recv_buf;
	if (proxy_batch(p, &op, 1, &p->tag_recv) < 0)
		proxy_end(p);
}

static void proxy_handle_response(struct lg_proxy *p, const Envoy__Service__Discovery__V3__DiscoveryResponse *r)
{
	struct loadgen *lg = p->lg;
	struct strlist next = { 0 };
	struct lg_type *ts;
	int t, rc;

	for (t = 0; t < LG_TYPES && (!r->type_url || strcmp(r->type_url, lg_urls[t]) != 0); t++)
		;
	if (t == LG_TYPES || strnlen(r->version_info, LG_TOKEN_CAP) >= LG_TOKEN_CAP ||
	    strnlen(r->nonce, LG_TOKEN_CAP) >= LG_TOKEN_CAP) {
		lg->st.decode_errors++;
		return;
	}
	ts = &p->types[t];
	lg->st.responses++;
	lg->st.resources += r->n_resources;
	copy_token(ts->version, r->version_info);
	copy_token(ts->nonce, r->nonce);
	ts->have_response = 1;
	ts->last_nres = r->n_resources;
	ts->want_send = 1;
	if (ts->awaiting == 1)
		ts->awaiting = 0;
	rc = process_resources(p, t, r, &next);
	if (rc < 0) {
		log_warn(SCOPE, "proxy %d: %s response: %s", p->idx, lg_urls[t], mesh_strerror(rc));
	} else if (t + 1 < LG_TYPES && next.n > 0) {
		/* An empty list would mean "everything" for CDS: keep the old one. */
		rc = names_set(&p->types[t + 1].names, next.v, next.n);
		if (rc > 0)
			proxy_resubscribe(p, t + 1);
	}
	strlist_cleanup(&next);
}

/* Delta: apply changed and removed resources, then follow the chain from
 * everything held. */
static void proxy_handle_delta(struct lg_proxy *p, const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r)
{
	struct loadgen *lg = p->lg;
	struct strlist next = { 0 };
	struct lg_type *ts;
	size_t i, j;
	int t, rc = 0;

	for (t = 0; t < LG_TYPES && (!r->type_url || strcmp(r->type_url, lg_urls[t]) != 0); t++)
		;
	if (t == LG_TYPES || strnlen(r->system_version_info, LG_TOKEN_CAP) >= LG_TOKEN_CAP ||
	    strnlen(r->nonce, LG_TOKEN_CAP) >= LG_TOKEN_CAP) {
		lg->st.decode_errors++;
		return;
	}
	ts = &p->types[t];
	lg->st.responses++;
	lg->st.resources += r->n_resources;
	copy_token(ts->version, r->system_version_info);
	copy_token(ts->nonce, r->nonce);
	ts->have_response = 1;
	ts->want_send = 1;
	if (ts->awaiting == 1)
		ts->awaiting = 0;
	for (i = 0; i < r->n_resources && rc == 0; i++) {
		const Envoy__Service__Discovery__V3__Resource *res = r->resources[i];
		struct strlist one = { 0 };
		if (!res || !res->name || !res->name[0]) {
			lg->st.decode_errors++;
			continue;
		}
		if (lg->cfg.sidecar)
			process_cached(p, t, res->resource, &one);
		else
			process_any(p, t, res->resource, &one);
		rc = one.err;
		if (rc == 0)
			rc = held_put(ts, res->name, &one);
		strlist_cleanup(&one);
	}
	for (i = 0; i < r->n_removed_resources; i++)
		held_remove(ts, r->removed_resources[i]);
	ts->last_nres = ts->nheld;
	if (rc < 0) {
		log_warn(SCOPE, "proxy %d: %s delta response: %s", p->idx, lg_urls[t], mesh_strerror(rc));
		return;
	}
	if (t + 1 >= LG_TYPES)
		return;
	for (i = 0; i < ts->nheld; i++)
		for (j = 0; j < ts->held[i].nnext; j++)
			strlist_add(&next, ts->held[i].next[j]);
	if (next.err < 0) {
		log_warn(SCOPE, "proxy %d: %s delta response: %s", p->idx, lg_urls[t], mesh_strerror(next.err));
	} else if (next.n > 0) {
		/* as for state of the world, an empty list keeps the old one */
		rc = names_set(&p->types[t + 1].names, next.v, next.n);
		if (rc > 0)
			proxy_resubscribe(p, t + 1);
	}
	strlist_cleanup(&next);
}

static void proxy_on_recv(struct lg_proxy *p, int ok)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse *r = NULL;
	grpc_byte_buffer *bb = p->recv_buf;
	grpc_byte_buffer_reader reader;
	grpc_slice slice;
	size_t len;

	p->recv_buf = NULL;
	if (!ok || !bb) {
		/* the stream ended; RECV_STATUS_ON_CLIENT says how */
		proxy_end(p);
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		p->lg->st.decode_errors++;
		proxy_start_recv(p);
		goto out;
	}
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	len = GRPC_SLICE_LENGTH(slice);
	p->lg->st.bytes += len;
	if (p->lg->cfg.delta) {
		Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *d =
			envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len,
											GRPC_SLICE_START_PTR(slice));
		grpc_slice_unref(slice);
		if (!d)
			p->lg->st.decode_errors++;
		else
			proxy_handle_delta(p, d);
		if (d)
			envoy__service__discovery__v3__delta_discovery_response__free_unpacked(d, NULL);
		proxy_start_recv(p);
		proxy_pump(p);
		proxy_check_sync(p);
		goto out;
	}
	r = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, GRPC_SLICE_START_PTR(slice));
	grpc_slice_unref(slice);
	if (!r)
		p->lg->st.decode_errors++;
	else
		proxy_handle_response(p, r);
	proxy_start_recv(p);
	proxy_pump(p);
	proxy_check_sync(p);
out:
	if (r)
		envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
	if (bb)
		grpc_byte_buffer_destroy(bb);
}

static void proxy_on_status(struct lg_proxy *p)
{
	struct loadgen *lg = p->lg;

	if (!lg->closing && lg->status_logged < 5) {
		char *msg = grpc_slice_to_c_string(p->details);
		lg->status_logged++;
		log_warn(SCOPE, "proxy %d: stream ended: status %d: %s", p->idx, (int)p->status, msg ? msg : "");
		gpr_free(msg);
	}
	proxy_end(p);
}

static void dispatch(struct loadgen *lg, struct lg_tag *tag, int ok)
{
	struct lg_proxy *p = tag->p;

	p->inflight--;
	switch (tag->kind) {
	case TAG_START:
		break;
	case TAG_RECV:
		proxy_on_recv(p, ok);
		break;
	case TAG_SEND:
		p->sending = 0;
		if (p->send_buf) {
			grpc_byte_buffer_destroy(p->send_buf);
			p->send_buf = NULL;
		}
		if (ok && !lg->closing) {
			proxy_pump(p);
			proxy_check_sync(p);
		}
		break;
	case TAG_STATUS:
		proxy_on_status(p);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* life cycle */

static int proxy_add_target(struct lg_proxy *p, int svc)
{
	int i;

	for (i = 0; i < p->ntargets; i++)
		if (p->targets[i] == svc)
			return 0;
	if (p->ntargets == p->cap_targets) {
		int cap = p->cap_targets ? p->cap_targets * 2 : 8;
		int *v = realloc(p->targets, (size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->targets = v;
		p->cap_targets = cap;
	}
	p->targets[p->ntargets++] = svc;
	return 1;
}

static int proxy_targets_has(const struct lg_proxy *p, int svc)
{
	int i;

	if (p->lg->cfg.sidecar)
		return 1; /* a sidecar holds the whole mesh */
	for (i = 0; i < p->ntargets; i++)
		if (p->targets[i] == svc)
			return 1;
	return 0;
}

static void proxy_replace_target(struct lg_proxy *p, int from, int to)
{
	int i;

	for (i = 0; i < p->ntargets; i++)
		if (p->targets[i] == from)
			p->targets[i] = to;
}

static int proxy_start(struct loadgen *lg, struct lg_proxy *p)
{
	grpc_slice method = grpc_slice_from_static_string(lg->cfg.delta ? LG_METHOD_DELTA : LG_METHOD);
	grpc_op ops[2];
	int rc;

	p->call = grpc_channel_create_call(lg->ch[p->idx % lg->nch], NULL, GRPC_PROPAGATE_DEFAULTS, lg->cq, method,
					   NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (!p->call)
		return -MESH_EGRPC;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[1].data.recv_initial_metadata.recv_initial_metadata = &p->md_init;
	rc = proxy_batch(p, ops, 2, &p->tag_start);
	if (rc < 0)
		return rc;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &p->md_trail;
	ops[0].data.recv_status_on_client.status = &p->status;
	ops[0].data.recv_status_on_client.status_details = &p->details;
	rc = proxy_batch(p, ops, 1, &p->tag_status);
	if (rc < 0)
		return rc;
	proxy_start_recv(p);
	rc = proxy_subscribe_listeners(p);
	if (rc < 0)
		return rc;
	proxy_pump(p);
	return 0;
}

static int pick_targets(struct loadgen *lg, struct lg_proxy *p)
{
	int want = lg->cfg.targets, rc = 0, tries = 0;

	if (want > lg->cfg.services)
		want = lg->cfg.services;
	rc = proxy_add_target(p, 0);
	while (rc >= 0 && p->ntargets < want && tries++ < 100 * want)
		rc = proxy_add_target(p, 1 + (int)(rng_next(&lg->rng) % (uint64_t)(lg->cfg.services - 1)));
	return rc < 0 ? rc : 0;
}

static int start_wave(struct loadgen *lg);

int loadgen_new(const struct loadgen_config *cfg, struct loadgen **out)
{
	struct loadgen *lg = NULL;
	grpc_channel_credentials *creds = NULL;
	int i, rc = 0;

	*out = NULL;
	if (!cfg || !cfg->target || cfg->proxies < 1 || cfg->proxies > LOADGEN_MAX_PROXIES || cfg->channels < 1 ||
	    cfg->channels > LOADGEN_MAX_CHANNELS || cfg->targets < 1 || cfg->targets > LOADGEN_MAX_TARGETS ||
	    cfg->services < 1)
		return -EINVAL;
	grpc_init();
	lg = calloc(1, sizeof(*lg));
	if (!lg) {
		grpc_shutdown_blocking();
		return -ENOMEM;
	}
	lg->cfg = *cfg;
	lg->rng = cfg->seed;
	lg->cq = grpc_completion_queue_create_for_next(NULL);
	lg->ch = calloc((size_t)cfg->channels, sizeof(*lg->ch));
	lg->proxies = calloc((size_t)cfg->proxies, sizeof(*lg->proxies));
	if (!lg->cq || !lg->ch || !lg->proxies) {
		rc = -ENOMEM;
		goto out;
	}
	creds = grpc_insecure_credentials_create();
	for (i = 0; i < cfg->channels; i++) {
		grpc_arg a[3];
		grpc_channel_args args = { 3, a };
		a[0].type = GRPC_ARG_INTEGER;
		a[0].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
		a[0].value.integer = 1;
		a[1].type = GRPC_ARG_INTEGER;
		a[1].key = "grpc.meshbench.channel";   /* distinct args: distinct connections */
		a[1].value.integer = i;
		a[2].type = GRPC_ARG_INTEGER;
		a[2].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
		a[2].value.integer = LG_MAX_RESPONSE_BYTES;
		lg->ch[i] = grpc_channel_create(cfg->target, creds, &args);
		if (!lg->ch[i]) {
			rc = -MESH_EGRPC;
			goto out;
		}
		lg->nch++;
	}
	for (i = 0; i < cfg->proxies; i++) {
		struct lg_proxy *p = &lg->proxies[i];
		p->lg = lg;
		p->idx = i;
		p->sidecar = (i % 100) < cfg->sidecar_percent;
		p->tag_start = (struct lg_tag){ TAG_START, p };
		p->tag_recv = (struct lg_tag){ TAG_RECV, p };
		p->tag_send = (struct lg_tag){ TAG_SEND, p };
		p->tag_status = (struct lg_tag){ TAG_STATUS, p };
		grpc_metadata_array_init(&p->md_init);
		grpc_metadata_array_init(&p->md_trail);
		p->details = grpc_empty_slice();
		lg->n++;
		rc = pick_targets(lg, p);
		if (rc < 0)
			goto out;
	}
	lg->st.proxies = lg->n;
	if (cfg->sidecar) {
		lg->cache = calloc(LG_CACHE_SLOTS, sizeof(*lg->cache));
		if (!lg->cache) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = start_wave(lg);
	if (rc < 0)
		goto out;
	*out = lg;
	lg = NULL;
out:
	if (creds)
		grpc_channel_credentials_release(creds);
	loadgen_free(lg);
	return rc;
}

/* Start the next proxies: all of them, or in sidecar mode the next wave
 * once every started one synced or ended. */
static int start_wave(struct loadgen *lg)
{
	int end, rc;

	if (lg->started >= lg->n || (lg->started > 0 && lg->st.synced + lg->st.failed < lg->started))
		return 0;
	end = lg->cfg.sidecar ? lg->started + LG_SIDECAR_WAVE : lg->n;
	if (end > lg->n)
		end = lg->n;
	for (; lg->started < end; lg->started++) {
		rc = proxy_start(lg, &lg->proxies[lg->started]);
		if (rc < 0) {
			log_error(SCOPE, "proxy %d: cannot start its stream: %s", lg->started, mesh_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int inflight_total(const struct loadgen *lg)
{
	int i, n = 0;

	for (i = 0; i < lg->n; i++)
		n += lg->proxies[i].inflight;
	return n;
}

void loadgen_free(struct loadgen *lg)
{
	double give_up;
	int i, t;

	if (!lg)
		return;
	lg->closing = 1;
	for (i = 0; i < lg->n; i++)
		if (lg->proxies[i].call)
			grpc_call_cancel(lg->proxies[i].call, NULL);
	give_up = loadgen_now() + LG_DRAIN_MS / 1000.0;
	while (lg->cq && inflight_total(lg) > 0 && loadgen_now() < give_up) {
		grpc_event ev = grpc_completion_queue_next(
			lg->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(100, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			dispatch(lg, ev.tag, ev.success);
	}
	if (lg->cq && inflight_total(lg) > 0)
		log_error(SCOPE, "%d batches still in flight after %d ms", inflight_total(lg), LG_DRAIN_MS);
	for (i = 0; i < lg->n; i++) {
		struct lg_proxy *p = &lg->proxies[i];
		if (p->call)
			grpc_call_unref(p->call);
		if (p->recv_buf)
			grpc_byte_buffer_destroy(p->recv_buf);
		if (p->send_buf)
			grpc_byte_buffer_destroy(p->send_buf);
		grpc_metadata_array_destroy(&p->md_init);
		grpc_metadata_array_destroy(&p->md_trail);
		grpc_slice_unref(p->details);
		for (t = 0; t < LG_TYPES; t++) {
			names_clear(&p->types[t].names);
			names_clear(&p->types[t].subscribed);
			held_clear(&p->types[t]);
		}
		free(p->targets);
	}
	for (i = 0; i < lg->nch; i++)
		grpc_channel_destroy(lg->ch[i]);
	if (lg->cq) {
		grpc_completion_queue_shutdown(lg->cq);
		while (grpc_completion_queue_next(lg->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
		       GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(lg->cq);
	}
	if (lg->cache) {
		for (i = 0; i < LG_CACHE_SLOTS; i++)
			cached_clear(&lg->cache[i]);
		free(lg->cache);
	}
	free(lg->ch);
	free(lg->proxies);
	free(lg);
	grpc_shutdown_blocking();
}

int loadgen_run(struct loadgen *lg, int ms)
{
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(lg->cq, deadline, NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			return 0;
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return -ESHUTDOWN;
		dispatch(lg, ev.tag, ev.success);
		if (lg->started < lg->n) {
			int rc = start_wave(lg);
			if (rc < 0)
				return rc;
		}
	}
}

void loadgen_stats(const struct loadgen *lg, struct loadgen_stats *out)
{
	*out = lg->st;
}

/* ------------------------------------------------------------------ */
/* watches */

int loadgen_watch_arm(struct loadgen *lg, int slot, const struct loadgen_watch *w)
{
	struct lg_watch *lw;
	int i, k, n = 0, rc;

	if (slot < 0 || slot >= LOADGEN_WATCH_SLOTS || !w)
		return -EINVAL;
	loadgen_watch_disarm(lg, slot);
	lg->watch_epoch++;
	lw = &lg->watches[slot];
	lw->w = *w;
	if (lg->cfg.sidecar)
		snprintf(lw->resource, sizeof(lw->resource), "%d", BENCH_MESH_PORT); /* route config "PORT" */
	else
		bench_mesh_listener(w->svc, lw->resource, sizeof(lw->resource));
	bench_mesh_cluster(w->svc, "v1", lw->cluster, sizeof(lw->cluster));
	lw->armed = 1;
	lw->last_ack = 0;
	if (w->kind == LOADGEN_WATCH_LISTENER && w->replace) {
		/* the proxies of the replaced service move to the new one */
		for (i = 0; i < lg->n; i++) {
			struct lg_proxy *p = &lg->proxies[i];
			if (p->ended || !proxy_targets_has(p, w->replaced_svc))
				continue;
			proxy_replace_target(p, w->replaced_svc, w->svc);
			rc = proxy_subscribe_listeners(p);
			if (rc < 0)
				return rc;
			p->watch[slot] = W_WAITING;
			n++;
			proxy_pump(p);
		}
	} else if (w->kind == LOADGEN_WATCH_LISTENER) {
		/* the subscribers: live proxies from a random start */
		int start = (int)(rng_next(&lg->rng) % (uint64_t)lg->n);
		for (k = 0; k < lg->n && n < w->subscribers; k++) {
			struct lg_proxy *p = &lg->proxies[(start + k) % lg->n];
			if (p->ended)
				continue;
			rc = proxy_add_target(p, w->svc);
			if (rc < 0)
				return rc;
			rc = proxy_subscribe_listeners(p);
			if (rc < 0)
				return rc;
			p->watch[slot] = W_WAITING;
			n++;
			proxy_pump(p);
		}
	} else {
		for (i = 0; i < lg->n; i++) {
			struct lg_proxy *p = &lg->proxies[i];
			if (p->ended || !proxy_targets_has(p, w->svc))
				continue;
			p->watch[slot] = W_WAITING;
			n++;
		}
	}
	lw->pending = n;
	return n;
}

int loadgen_watch_pending(const struct loadgen *lg, int slot, double *last_ack)
{
	if (slot < 0 || slot >= LOADGEN_WATCH_SLOTS)
		return -EINVAL;
	if (last_ack)
		*last_ack = lg->watches[slot].last_ack;
	return lg->watches[slot].pending;
}

void loadgen_watch_disarm(struct loadgen *lg, int slot)
{
	int i;

	if (slot < 0 || slot >= LOADGEN_WATCH_SLOTS)
		return;
	for (i = 0; i < lg->n; i++)
		lg->proxies[i].watch[slot] = W_NONE;
	memset(&lg->watches[slot], 0, sizeof(lg->watches[slot]));
	lg->watch_epoch++;
}
