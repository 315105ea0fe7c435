/*
 * xds_client.c - the ADS client of xds_client.h.
 *
 * Two snapshots are kept.  `recv` is what meshd sent and the engine
 * accepted, type by type (the desired state: every listener, cluster,
 * route config and load assignment currently subscribed).  `cur` is what
 * is applied: recv with the warming rules laid over it (a listener whose
 * route config has not arrived stays at its previous version or is left
 * out; likewise a cluster whose endpoints have not arrived, and a kept
 * cluster keeps the endpoints it had).  Every response recomposes the
 * candidate from the new recv and the current cur, so the arrival of an
 * RDS or EDS resource is what releases the listeners and clusters waiting
 * for it.
 *
 * Both variants share that: a SotW response replaces (LDS/CDS) or updates
 * (RDS/EDS) a type of recv, a Delta response updates it by name and
 * removes names; either way the candidate is a copy, validated whole
 * before it replaces anything.  Under Delta, recv is also what the client
 * "holds" (initial_resource_versions on a new stream), and the RDS/EDS
 * names (ts->names) are what the stream was told, kept in step by
 * subscribe/unsubscribe differences as they change.
 *
 * Delta needs a third snapshot, `view`: meshd (as istiod) takes what it
 * sent as what the client holds, NACKed or not, and later sends only
 * differences from that; Envoy applies the good parts and the removals of
 * a NACKed update, so the two stay in step.  Here a response updates view
 * (recv + every response since, NACKed ones included); the candidate is
 * view whole, and only if that fails while another type has a NACKed
 * update pending, recv with this type taken from view (so a listener that
 * cannot bind does not block every later cluster).  A removal carried by a
 * NACKed response is thus applied with the next response that validates,
 * instead of being lost.  A new stream resets view to recv: the
 * initial_resource_versions are what is applied, and meshd resends the
 * rest.
 *
 * The transport is grpc_client.h; the stream logic below only sees "send
 * this request" and "this response arrived", which is how the unit tests
 * drive it.
 */
#include "dataplane/xds_client.h"

#include "common/json.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xds/pbdepth.h"
#include "common/xds/pbjson.h"
#include "dataplane/net.h"
#include "dataplane/sds.h"
#include "dataplane/tls.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "xds"
#define XDS_MAX_LABELS 64
#define XDS_META_MAX (8 + 1)
#define HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

struct name_set {
	char **v; /* sorted, unique, owned */
	size_t n;
};

struct type_state {
	int subscribed;        /* a request went out on this stream */
	struct name_set names; /* RDS/EDS: the names asked for */
	char version[64];      /* last accepted version_info */
	char nonce[64];        /* last nonce received on this stream */
	char last_updated[96]; /* RFC 3339, for config_dump */
};

struct xds_client {
	struct ev_loop *loop;
	struct xds_client_config cfg;
	/* the Node, built once */
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct meta, labels;
	Google__Protobuf__Struct__FieldsEntry meta_e[XDS_META_MAX], label_e[XDS_MAX_LABELS];
	Google__Protobuf__Struct__FieldsEntry *meta_p[XDS_META_MAX], *label_p[XDS_MAX_LABELS];
	Google__Protobuf__Value meta_v[XDS_META_MAX], label_v[XDS_MAX_LABELS];
	char *labels_copy, *ns, *ip;
	Envoy__Config__Core__V3__Locality locality;
	char *locality_copy;             /* the parts of cfg.locality, NUL-separated */
	/* configuration */
	struct px_snapshot *recv, *cur;
	/* Delta only: the server's view, recv plus every response since
	 * (NACKed ones included), what meshd believes we hold */
	struct px_snapshot *view;
	struct type_state ts[XDS_TYPE_COUNT];
	int ready;
	int warming;     /* resources held back in cur */
	int warm_forced; /* the warm timeout passed: apply with what is missing */
	struct ev_timer warm;
	/* issue 13: the SDS names recv's listeners and clusters reference,
	 * computed again only when those sets change (sds_basis holds the
	 * snapshot they were computed from) */
	struct px_snapshot *sds_basis;
	struct name_set sds_names;
	/* the stream */
	xds_send_fn send;
	void *send_ctx;
	int stream_open;
	int node_sent;
	int got_response; /* on this stream: resets the backoff */
	/* the transport */
	struct grpc_client *g;
	struct sockaddr_storage sa;
	socklen_t salen;
	char authority[80];
	struct px_tls_ctx *tls;          /* issue 13: this connection's, from cfg.tls_setup (a reference) */
	char *auth;                      /* its authorization header value (owned) */
	struct ev_timer retry;
	struct ev_defer reap;
	uint64_t backoff_ms;
	uint64_t rng;
	struct xds_client_stats st;
};

/* ------------------------------------------------------------------ */
/* small helpers */

static void name_set_clear(struct name_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int name_set_has(const struct name_set *s, const char *name)
{
	return s->n && bsearch(&name, s->v, s->n, sizeof(*s->v), strp_cmp) != NULL;
}

static int name_set_eq(const struct name_set *a, const struct name_set *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return 0;
	return 1;
}

/* Adds a copy of name (duplicates dropped at seal). */
static int name_set_add(struct name_set *s, size_t *cap, const char *name)
{
	if (!name || !*name)
		return 0;
	if (s->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **v = realloc(s->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		*cap = nc;
	}
	s->v[s->n] = strdup(name);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static void name_set_seal(struct name_set *s)
{
	size_t i, o = 0;

	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), strp_cmp);
	for (i = 0; i < s->n; i++) {
		if (o && strcmp(s->v[o - 1], s->v[i]) == 0) {
			free(s->v[i]);
			continue;
		}
		s->v[o++] = s->v[i];
	}
	s->n = o;
}

static void now_rfc3339(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
}

/* The name a resource carries in its own message. */
static const char *msg_name(enum xds_type t, const ProtobufCMessage *m)
{
	const ProtobufCFieldDescriptor *f;

	if (!m)
		return NULL;
	f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
							    t == XDS_ENDPOINT ? "cluster_name" : "name");
	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(char *const *)((const char *)m + f->offset);
}

/* ------------------------------------------------------------------ */
/* dependencies: the route configs a listener names, the endpoints a cluster needs */

typedef int (*name_cb)(void *ctx, const char *name);

/* The RDS name of an HttpConnectionManager in an Any (nothing for other filters). */
static int hcm_rds_name(const Google__Protobuf__Any *a, name_cb cb, void *ctx)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *h;
	int rc = 0;

	if (!a || !a->type_url || strcmp(a->type_url, HCM_URL) != 0)
		return 0;
	h = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
		NULL, a->value.len, a->value.data);
	if (!h)
		return -MESH_EPARSE;
	if (h->route_specifier_case ==
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
	    h->rds && h->rds->route_config_name && *h->rds->route_config_name)
		rc = cb(ctx, h->rds->route_config_name);
	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(h, NULL);
	return rc;
}

/* Calls cb with each route config name l's connection managers use (filter
 * chains, the default chain, or a proxyless api_listener). */
static int listener_rds_names(const Envoy__Config__Listener__V3__Listener *l, name_cb cb, void *ctx)
{
	size_t i, j, nchains;
	int rc = 0;

	if (!l)
		return -ENOMEM; /* px_resource_msg() could not decode it again */
	nchains = l->n_filter_chains + (l->default_filter_chain ? 1 : 0);
	if (l->api_listener)
		rc = hcm_rds_name(l->api_listener->api_listener, cb, ctx);
	for (i = 0; i < nchains && rc == 0; i++) {
		const Envoy__Config__Listener__V3__FilterChain *fc =
			i < l->n_filter_chains ? l->filter_chains[i] : l->default_filter_chain;

		for (j = 0; fc && j < fc->n_filters && rc == 0; j++) {
			const Envoy__Config__Listener__V3__Filter *f = fc->filters[j];

			if (f && f->config_type_case == ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
				rc = hcm_rds_name(f->typed_config, cb, ctx);
		}
	}
	return rc;
}

struct collect {
	struct name_set *s;
	size_t cap;
};

static int collect_cb(void *ctx, const char *name)
{
	struct collect *k = ctx;

	return name_set_add(k->s, &k->cap, name);
}

/* Non-zero when a and b hold the same resources of type t. */
static int set_same(const struct px_snapshot *a, const struct px_snapshot *b, enum xds_type t)
{
	return a->sets[t].n == b->sets[t].n &&
	       (!a->sets[t].n || !memcmp(a->sets[t].v, b->sets[t].v, a->sets[t].n * sizeof(*a->sets[t].v)));
}

/* A resource whose bytes can hold a TLS transport socket: the others are
 * not decoded for SDS names (most clusters of a large mesh, and decoding
 * them all on every CDS update would cost more than the rest). */
static int may_hold_tls(const struct px_resource *r)
{
	static const char tls[] = "envoy.transport_sockets.tls";

	return r->len >= sizeof(tls) - 1 && memmem(r->bytes, r->len, tls, sizeof(tls) - 1) != NULL;
}

/*
 * issue 13: the SDS names (other than the identity's) snap's listeners and
 * clusters reference, into *out (sorted, owned).  Read from the bytes, only
 * the TLS contexts decoded: px_resource_msg() would decode every cluster
 * whole and keep it decoded until the next compile sheds it.
 */
static int secret_names(const struct px_snapshot *snap, struct name_set *out)
{
	static const enum xds_type from[] = { XDS_LISTENER, XDS_CLUSTER };
	struct collect k = { out, 0 };
	size_t i, j;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (j = 0; j < 2 && rc == 0; j++) {
		const struct px_resource_set *set = &snap->sets[from[j]];

		for (i = 0; i < set->n && rc == 0; i++) {
			const struct px_resource *r = set->v[i];

			if (!may_hold_tls(r))
				continue;
			if (from[j] == XDS_LISTENER)
				rc = px_sds_listener_names_bytes(r->bytes, r->len, collect_cb, &k);
			else
				rc = px_sds_cluster_names_bytes(r->bytes, r->len, collect_cb, &k);
		}
	}
	if (rc < 0) {
		name_set_clear(out);
		return rc;
	}
	name_set_seal(out);
	return 0;
}

/* The RDS names (t == XDS_ROUTE) or EDS names (XDS_ENDPOINT) snap's
 * listeners or clusters need. */
static int wanted_names(const struct px_snapshot *snap, enum xds_type t, struct name_set *out)
{
	const struct px_resource_set *set = &snap->sets[t == XDS_ROUTE ? XDS_LISTENER : XDS_CLUSTER];
	struct collect k = { out, 0 };
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < set->n && rc == 0; i++) {
		if (t == XDS_ROUTE)
			rc = listener_rds_names((const void *)px_resource_msg(set->v[i]), collect_cb, &k);
		else
			rc = collect_cb(&k, set->v[i]->eds_name);
	}
	if (rc < 0) {
		name_set_clear(out);
		return rc;
	}
	name_set_seal(out);
	return 0;
}

struct missing {
	const struct px_snapshot *recv;
	int missing;
};

static int missing_cb(void *ctx, const char *name)
{
	struct missing *m = ctx;

	if (!px_snapshot_find(m->recv, XDS_ROUTE, name))
		m->missing = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* composing the candidate */

struct rvec {
	const struct px_resource **v;
	size_t n, cap;
};

static int rvec_push(struct rvec *r, const struct px_resource *x)
{
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 32;
		const struct px_resource **v = realloc(r->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = nc;
	}
	r->v[r->n++] = x;
	return 0;
}

/* Replaces type t of *s by r's resources (the base's reference dropped). */
static int snap_set(struct px_snapshot **s, enum xds_type t, const struct rvec *r)
{
	struct px_snapshot *n;
	int rc = px_snapshot_replace(*s, t, r->v, r->n, &n);

	if (rc < 0)
		return rc;
	px_snapshot_unref(*s);
	*s = n;
	return 0;
}

static int rvec_has(const struct rvec *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->v[i]->name, name) == 0)
			return 1;
	return 0;
}

/*
 * The snapshot to apply: recv's resources, except that (unless force) a
 * cluster whose endpoints are missing, or a listener whose route config is
 * missing, is replaced by its version in cur (or left out), and the
 * endpoints / route configs such kept resources use come from cur.
 * *warming counts what was held back.
 */
static int compose(const struct px_snapshot *recv, const struct px_snapshot *cur, int force, struct px_snapshot **out,
		   int *warming)
{
	struct rvec cl = { 0 }, li = { 0 }, ep = { 0 }, rt = { 0 };
	struct px_snapshot *s = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	*warming = 0;
	/* clusters */
	for (i = 0; i < recv->sets[XDS_CLUSTER].n && rc == 0; i++) {
		const struct px_resource *r = recv->sets[XDS_CLUSTER].v[i], *old;
		const char *eds = r->eds_name;

		if (force || !eds || px_snapshot_find(recv, XDS_ENDPOINT, eds)) {
			rc = rvec_push(&cl, r);
			continue;
		}
		(*warming)++;
		old = px_snapshot_find(cur, XDS_CLUSTER, r->name);
		if (old)
			rc = rvec_push(&cl, old);
	}
	/* endpoints: recv's, plus what kept clusters still use from cur */
	for (i = 0; i < recv->sets[XDS_ENDPOINT].n && rc == 0; i++)
		rc = rvec_push(&ep, recv->sets[XDS_ENDPOINT].v[i]);
	for (i = 0; i < cl.n && rc == 0; i++) {
		const char *eds = cl.v[i]->eds_name;
		const struct px_resource *old;

		if (eds && !px_snapshot_find(recv, XDS_ENDPOINT, eds) && !rvec_has(&ep, eds) &&
		    (old = px_snapshot_find(cur, XDS_ENDPOINT, eds)))
			rc = rvec_push(&ep, old);
	}
	/* listeners */
	for (i = 0; i < recv->sets[XDS_LISTENER].n && rc == 0; i++) {
		const struct px_resource *r = recv->sets[XDS_LISTENER].v[i], *old;
		struct missing m = { recv, 0 };

		rc = listener_rds_names((const void *)px_resource_msg(r), missing_cb, &m);
		if (rc < 0)
			break;
		if (force || !m.missing) {
			rc = rvec_push(&li, r);
			continue;
		}
		(*warming)++;
		old = px_snapshot_find(cur, XDS_LISTENER, r->name);
		if (old)
			rc = rvec_push(&li, old);
	}
	/* route configs: recv's, plus what kept listeners still use from cur */
	for (i = 0; i < recv->sets[XDS_ROUTE].n && rc == 0; i++)
		rc = rvec_push(&rt, recv->sets[XDS_ROUTE].v[i]);
	for (i = 0; i < li.n && rc == 0; i++) {
		struct name_set need = { 0 };
		struct collect k = { &need, 0 };
		size_t j;

		rc = listener_rds_names((const void *)px_resource_msg(li.v[i]), collect_cb, &k);
		for (j = 0; j < need.n && rc == 0; j++) {
			const struct px_resource *old;

			if (!px_snapshot_find(recv, XDS_ROUTE, need.v[j]) && !rvec_has(&rt, need.v[j]) &&
			    (old = px_snapshot_find(cur, XDS_ROUTE, need.v[j])))
				rc = rvec_push(&rt, old);
		}
		name_set_clear(&need);
	}
	if (rc == 0)
		rc = px_snapshot_replace(recv, XDS_CLUSTER, cl.v, cl.n, &s);
	if (rc == 0)
		rc = snap_set(&s, XDS_ENDPOINT, &ep);
	if (rc == 0)
		rc = snap_set(&s, XDS_LISTENER, &li);
	if (rc == 0)
		rc = snap_set(&s, XDS_ROUTE, &rt);
	if (rc == 0) {
		s->generation = cur->generation + 1;
		*out = s;
		s = NULL;
	}
	px_snapshot_unref(s);
	free(cl.v);
	free(li.v);
	free(ep.v);
	free(rt.v);
	return rc;
}

/* Same resources, type by type (pointer equality: resources are shared). */
static int snap_same(const struct px_snapshot *a, const struct px_snapshot *b)
{
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		if (a->sets[t].n != b->sets[t].n)
			return 0;
		if (a->sets[t].n && memcmp(a->sets[t].v, b->sets[t].v, a->sets[t].n * sizeof(*a->sets[t].v)) != 0)
			return 0;
	}
	return 1;
}

/* Non-zero when a and b differ in their secrets only. */
static int secrets_only(const struct px_snapshot *a, const struct px_snapshot *b)
{
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++)
		if (t != XDS_SECRET && !set_same(a, b, t))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* requests */

static int send_sotw(struct xds_client *c, enum xds_type t, const char *error)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest req = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	struct type_state *ts = &c->ts[t];
	uint8_t stackbuf[4096], *buf = stackbuf;
	size_t len;
	int rc;

	if (!c->stream_open || !c->send)
		return -ENOTCONN;
	req.version_info = ts->version;
	req.type_url = (char *)xds_type_url(t);
	req.response_nonce = ts->nonce;
	if (t == XDS_ROUTE || t == XDS_ENDPOINT || t == XDS_SECRET) {
		req.n_resource_names = ts->names.n;
		req.resource_names = ts->names.v;
	}
	if (!c->node_sent)
		req.node = &c->node;
	if (error) {
		st.code = GRPC_STATUS_INVALID_ARGUMENT;
		st.message = (char *)error;
		req.error_detail = &st;
	}
	len = protobuf_c_message_get_packed_size(&req.base);
	if (len > sizeof(stackbuf)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	protobuf_c_message_pack(&req.base, buf);
	rc = c->send(c->send_ctx, buf, len);
	if (buf != stackbuf)
		free(buf);
	if (rc == 0) {
		c->node_sent = 1;
		ts->subscribed = 1;
	}
	return rc;
}

/* Packs and sends msg (a request of either variant). */
static int send_packed(struct xds_client *c, const ProtobufCMessage *msg)
{
	uint8_t stackbuf[4096], *buf = stackbuf;
	size_t len = protobuf_c_message_get_packed_size(msg);
	int rc;

	if (len > sizeof(stackbuf)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	protobuf_c_message_pack(msg, buf);
	rc = c->send(c->send_ctx, buf, len);
	if (buf != stackbuf)
		free(buf);
	return rc;
}

/*
 * A DeltaDiscoveryRequest for type t: nonce (NULL: none) ACKs that
 * response, or NACKs it with error; sub / unsub change the subscription
 * (NULL: no change); initial (the first request of the type on a stream)
 * adds initial_resource_versions, every resource of t held in recv with
 * the version it came with (Envoy's getNextRequestAckless: all held
 * resources, wildcard ones included).
 */
static int send_delta(struct xds_client *c, enum xds_type t, const char *nonce, const char *error,
		      const struct name_set *sub, const struct name_set *unsub, int initial)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *ent = NULL, **entp = NULL;
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	const struct px_resource_set *held = &c->recv->sets[t];
	size_t i;
	int rc;

	if (!c->stream_open || !c->send)
		return -ENOTCONN;
	req.type_url = (char *)xds_type_url(t);
	if (nonce)
		req.response_nonce = (char *)nonce;
	if (sub) {
		req.n_resource_names_subscribe = sub->n;
		req.resource_names_subscribe = sub->v;
	}
	if (unsub) {
		req.n_resource_names_unsubscribe = unsub->n;
		req.resource_names_unsubscribe = unsub->v;
	}
	if (initial && held->n) {
		ent = calloc(held->n, sizeof(*ent));
		entp = calloc(held->n, sizeof(*entp));
		if (!ent || !entp) {
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < held->n; i++) {
			envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
				&ent[i]);
			ent[i].key = held->v[i]->name;
			ent[i].value = held->v[i]->version;
			entp[i] = &ent[i];
		}
		req.n_initial_resource_versions = held->n;
		req.initial_resource_versions = entp;
	}
	if (!c->node_sent)
		req.node = &c->node;
	if (error) {
		st.code = GRPC_STATUS_INVALID_ARGUMENT;
		st.message = (char *)error;
		req.error_detail = &st;
	}
	rc = send_packed(c, &req.base);
	if (rc == 0) {
		c->node_sent = 1;
		c->ts[t].subscribed = 1;
	}
out:
	free(ent);
	free(entp);
	return rc;
}

/* The ACK (error NULL) or NACK of the response last received for t. */
static int send_request(struct xds_client *c, enum xds_type t, const char *error)
{
	if (c->cfg.protocol == XDS_PROTOCOL_DELTA)
		return send_delta(c, t, c->ts[t].nonce, error, NULL, NULL, 0);
	return send_sotw(c, t, error);
}

/* The first request for t on a stream: SotW's list (with the version
 * held), or Delta's subscription with initial_resource_versions (LDS/CDS:
 * the legacy wildcard, no names). */
static int send_subscribe(struct xds_client *c, enum xds_type t)
{
	if (c->cfg.protocol == XDS_PROTOCOL_DELTA)
		return send_delta(c, t, NULL, NULL,
				  t == XDS_ROUTE || t == XDS_ENDPOINT || t == XDS_SECRET ? &c->ts[t].names : NULL, NULL, 1);
	return send_sotw(c, t, NULL);
}

/* The names of a not in b (both sorted), borrowed from a: *out's array
 * only is owned (free it, not the names). */
static int name_set_minus(const struct name_set *a, const struct name_set *b, struct name_set *out)
{
	size_t i;

	out->n = 0;
	out->v = a->n ? malloc(a->n * sizeof(*out->v)) : NULL;
	if (a->n && !out->v)
		return -ENOMEM;
	for (i = 0; i < a->n; i++)
		if (!name_set_has(b, a->v[i]))
			out->v[out->n++] = a->v[i];
	return 0;
}

/* Delta: tells the stream that the names of t go from old to now
 * (subscribed on the stream already), or subscribes t the first time. */
static void delta_resubscribe(struct xds_client *c, enum xds_type t, const struct name_set *old)
{
	struct name_set add = { 0 }, drop = { 0 };

	if (!c->ts[t].subscribed) {
		if (c->ts[t].names.n) /* an RDS/EDS request naming nothing would ask for nothing */
			(void)send_subscribe(c, t);
		return;
	}
	if (name_set_minus(&c->ts[t].names, old, &add) == 0 && name_set_minus(old, &c->ts[t].names, &drop) == 0 &&
	    (add.n || drop.n))
		(void)send_delta(c, t, NULL, NULL, &add, &drop, 0);
	free(add.v);
	free(drop.v);
}

/* A copy of a into *out (owned). */
static int name_set_copy(const struct name_set *a, struct name_set *out)
{
	size_t i;

	out->n = 0;
	out->v = a->n ? calloc(a->n, sizeof(*out->v)) : NULL;
	if (a->n && !out->v)
		return -ENOMEM;
	for (i = 0; i < a->n; i++) {
		if (!(out->v[i] = strdup(a->v[i]))) {
			out->n = i;
			name_set_clear(out);
			return -ENOMEM;
		}
	}
	out->n = a->n;
	return 0;
}

/* wanted_names() for every type: XDS_SECRET's from the cache of
 * secret_names() (empty without a secret store: nothing would use them). */
static int client_wanted(struct xds_client *c, const struct px_snapshot *snap, enum xds_type t,
			 struct name_set *out)
{
	int rc;

	if (t != XDS_SECRET)
		return wanted_names(snap, t, out);
	memset(out, 0, sizeof(*out));
	if (!c->cfg.sds)
		return 0;
	if (!c->sds_basis || !set_same(c->sds_basis, snap, XDS_LISTENER) || !set_same(c->sds_basis, snap, XDS_CLUSTER)) {
		struct name_set ns;
		struct px_snapshot *basis = NULL, *both = NULL;

		rc = secret_names(snap, &ns);
		if (rc < 0)
			return rc;
		/* the basis holds the listeners and clusters only: a whole recv
		 * would keep its route configs and endpoints alive after EDS and
		 * RDS updates replaced them */
		rc = px_snapshot_replace(NULL, XDS_LISTENER, (const struct px_resource *const *)snap->sets[XDS_LISTENER].v,
					 snap->sets[XDS_LISTENER].n, &basis);
		if (rc == 0)
			rc = px_snapshot_replace(basis, XDS_CLUSTER,
						 (const struct px_resource *const *)snap->sets[XDS_CLUSTER].v,
						 snap->sets[XDS_CLUSTER].n, &both);
		px_snapshot_unref(basis);
		if (rc < 0) {
			name_set_clear(&ns);
			return rc;
		}
		name_set_clear(&c->sds_names);
		c->sds_names = ns;
		px_snapshot_unref(c->sds_basis);
		c->sds_basis = both;
	}
	return name_set_copy(&c->sds_names, out);
}

/* Recomputes the RDS, EDS and SDS names from recv; a changed set is
 * requested (SDS after LDS/CDS, as Envoy asks for the secrets the
 * listeners and clusters it has just accepted name). */
static void update_subscriptions(struct xds_client *c)
{
	static const enum xds_type deps[] = { XDS_ENDPOINT, XDS_ROUTE, XDS_SECRET };
	size_t i;

	for (i = 0; i < sizeof(deps) / sizeof(deps[0]); i++) {
		enum xds_type t = deps[i];
		struct name_set ns, old;

		if (client_wanted(c, c->recv, t, &ns) < 0)
			continue; /* the listeners decoded at accept time: cannot happen but on ENOMEM */
		if (name_set_eq(&ns, &c->ts[t].names) && (c->ts[t].subscribed || !ns.n)) {
			name_set_clear(&ns);
			continue;
		}
		old = c->ts[t].names;
		c->ts[t].names = ns;
		log_debug(SCOPE, "subscribing %s to %zu names", xds_type_short(t), ns.n);
		if (c->stream_open && c->cfg.protocol == XDS_PROTOCOL_DELTA)
			delta_resubscribe(c, t, &old);
		else if (c->stream_open)
			(void)send_sotw(c, t, NULL);
		name_set_clear(&old);
	}
}

/* Drops from recv the RDS/EDS/SDS resources no longer subscribed. */
static int prune_recv(struct px_snapshot **recv, const struct name_set *rds, const struct name_set *eds,
		      const struct name_set *sds)
{
	static const enum xds_type deps[] = { XDS_ROUTE, XDS_ENDPOINT, XDS_SECRET };
	size_t i, j;
	int rc = 0;

	for (i = 0; i < 3 && rc == 0; i++) {
		const struct name_set *keep = deps[i] == XDS_ROUTE ? rds : deps[i] == XDS_ENDPOINT ? eds : sds;
		const struct px_resource_set *set = &(*recv)->sets[deps[i]];
		struct rvec v = { 0 };

		for (j = 0; j < set->n && rc == 0; j++)
			if (name_set_has(keep, set->v[j]->name))
				rc = rvec_push(&v, set->v[j]);
		if (rc == 0 && v.n != set->n)
			rc = snap_set(recv, deps[i], &v);
		free(v.v);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* applying */

static void set_ready(struct xds_client *c)
{
	if (c->ready || c->warming || !c->ts[XDS_LISTENER].last_updated[0] || !c->ts[XDS_CLUSTER].last_updated[0])
		return;
	c->ready = 1;
	log_info(SCOPE, "first configuration applied: %zu listeners, %zu clusters, %zu route configs, %zu endpoints",
		 c->cur->sets[XDS_LISTENER].n, c->cur->sets[XDS_CLUSTER].n, c->cur->sets[XDS_ROUTE].n,
		 c->cur->sets[XDS_ENDPOINT].n);
}

/* Composes from recv and applies when it differs from cur.  Takes recv's
 * reference on success; returns < 0 with err on failure (recv untouched). */
static int try_apply(struct xds_client *c, struct px_snapshot *recv, char *err, size_t cap)
{
	struct px_snapshot *cand = NULL;
	int warming, rc;

	rc = compose(recv, c->cur, c->warm_forced, &cand, &warming);
	if (rc < 0) {
		snprintf(err, cap, "composing the snapshot: %s", mesh_strerror(rc));
		return rc;
	}
	if (!snap_same(cand, c->cur)) {
		err[0] = '\0';
		/* issue 13: secrets go to the store (checked whole first: a bad
		 * one NACKs and changes nothing; drop_bad_secrets() has left
		 * out those it refuses already); the engine compiles only when
		 * something else changed, since its TLS policies find secrets in
		 * the store by name when they make a context */
		rc = c->cfg.sds ? px_sds_update(c->cfg.sds, (const struct px_resource *const *)cand->sets[XDS_SECRET].v, cand->sets[XDS_SECRET].n, err, cap)
				: 0;
		if (rc == 0 && !secrets_only(cand, c->cur))
			rc = c->cfg.apply(c->cfg.apply_ctx, cand, err, cap);
		if (rc < 0) {
			if (!err[0])
				snprintf(err, cap, "rejected: %s", mesh_strerror(rc));
			px_snapshot_unref(cand);
			return rc;
		}
		px_snapshot_unref(c->cur);
		c->cur = cand;
		if (c->cfg.sds)
			px_sds_retain(c->cfg.sds, (const struct px_resource *const *)cand->sets[XDS_SECRET].v, cand->sets[XDS_SECRET].n);
	} else {
		cand->generation = c->cur->generation;
		px_snapshot_unref(cand);
	}
	px_snapshot_unref(c->recv);
	c->recv = recv;
	c->warming = warming;
	if (warming && !ev_timer_armed(&c->warm) && !c->warm_forced)
		ev_timer_arm(c->loop, &c->warm, c->cfg.warm_timeout_ms);
	else if (!warming)
		ev_timer_cancel(c->loop, &c->warm);
	return 0;
}

static void warm_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct xds_client *c = t->data;
	char err[XDS_MAX_ERROR];

	(void)loop;
	log_warn(SCOPE, "%d resources still warming after %llu ms: applying without what is missing", c->warming,
		 (unsigned long long)c->cfg.warm_timeout_ms);
	c->warm_forced = 1;
	if (try_apply(c, px_snapshot_ref(c->recv), err, sizeof(err)) < 0) {
		px_snapshot_unref(c->recv); /* the extra reference taken above */
		log_error(SCOPE, "applying after the warm timeout failed: %s", err);
	}
	c->warm_forced = 0;
	c->warming = 0;
	set_ready(c);
}

/* Decodes one resource of type t from a (its Any) into *out (one
 * reference); want, when not NULL or empty, is the name it must carry (a
 * Delta Resource's name).  A resource identical to the one have holds
 * under its name is that one (its version kept). */
static int decode_one(enum xds_type t, const Google__Protobuf__Any *a, size_t idx, const char *want,
		      const char *version, const struct px_snapshot *have, struct px_resource **out, char *err,
		      size_t cap)
{
	const char *url = xds_type_url(t);
	const struct px_resource *old;
	struct px_resource *r;
	const char *name;
	int rc;

	*out = NULL;
	if (!a || !a->type_url || strcmp(a->type_url, url) != 0) {
		snprintf(err, cap, "resource %zu has type %.200s in a %s response", idx,
			 a && a->type_url ? a->type_url : "(none)", xds_type_short(t));
		return -EINVAL;
	}
	/* Envoy refuses a Duration out of range wherever it reads one (its
	 * DurationUtil): so does the whole resource here, Anys included */
	if (pbdepth_check(pbjson_lookup(url), a->value.data, a->value.len, PBDEPTH_LIMIT,
			  PBDEPTH_FOLLOW_ANY | PBDEPTH_CHECK_DURATIONS, NULL) == -ERANGE) {
		snprintf(err, cap, "resource %zu of type %s: Duration out-of-range: a google.protobuf.Duration with "
			 "negative seconds or nanos, seconds past %lld or nanos past 999999999", idx,
			 xds_type_short(t), (long long)PBDEPTH_DURATION_MAX_SECONDS);
		return -EINVAL;
	}
	rc = px_resource_decode(t, "", a->value.data, a->value.len, &r);
	if (rc < 0) {
		snprintf(err, cap, "resource %zu of type %s does not decode: %s", idx, xds_type_short(t),
			 mesh_strerror(rc));
		return rc;
	}
	name = msg_name(t, px_resource_msg(r));
	if (!name || !*name) {
		snprintf(err, cap, "resource %zu of type %s has no name", idx, xds_type_short(t));
		px_resource_unref(r);
		return -EINVAL;
	}
	if (want && *want && strcmp(want, name) != 0) {
		/* the name inside is what warming and RDS/EDS look resources up by */
		snprintf(err, cap, "%s resource %.200s carries the name %.200s", xds_type_short(t), want, name);
		px_resource_unref(r);
		return -EINVAL;
	}
	old = px_snapshot_find(have, t, name);
	if (old && old->hash == r->hash) {
		/* unchanged (same bytes): keep the object the engine already
		 * compiled, and the version it came with, as Envoy does */
		px_resource_unref(r);
		r = px_resource_ref((struct px_resource *)old);
	} else {
		/* not shared yet: the name is still ours to set */
		mesh_str_copy(r->version, sizeof(r->version), version);
		if (px_resource_set_name(r, name) < 0) {
			px_resource_unref(r);
			return -ENOMEM;
		}
	}
	*out = r;
	return 0;
}

/* Decodes resp's resources into set (references owned by set). */
static int decode_resources(const Envoy__Service__Discovery__V3__DiscoveryResponse *resp, enum xds_type t,
			    const struct px_snapshot *have, struct rvec *set, char *err, size_t cap)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < resp->n_resources && rc == 0; i++) {
		struct px_resource *r;

		rc = decode_one(t, resp->resources[i], i, NULL, resp->version_info, have, &r, err, cap);
		if (rc == 0 && rvec_push(set, r) < 0) {
			px_resource_unref(r);
			rc = -ENOMEM;
		}
	}
	return rc;
}

static void rvec_release(struct rvec *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		px_resource_unref((struct px_resource *)set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = set->cap = 0;
}

/*
 * Issue 13 (gwbrk): a Secret the store would refuse (bad PEM, a key not
 * matching its certificate...) is replaced in recv by the version
 * applied before (cur's), or left out when there is none, so that one
 * broken credentialName Secret does not hold back every other Secret of
 * a SotW response (meshd sends them all each time) as it did: Envoy's
 * SDS subscriptions accept or reject each secret alone, and keep the
 * last good one.  Returns 0 with bad[0] set to the first refusal (the
 * caller NACKs it after applying the rest), or -ENOMEM.
 */
static int drop_bad_secrets(struct xds_client *c, struct px_snapshot **recv, char *bad, size_t cap)
{
	const struct px_resource_set *set = &(*recv)->sets[XDS_SECRET];
	struct rvec v = { 0 };
	char why[XDS_MAX_ERROR];
	size_t i, nbad = 0;
	int rc = 0;

	bad[0] = '\0';
	if (!c->cfg.sds)
		return 0;
	for (i = 0; i < set->n && rc == 0; i++) {
		const struct px_resource *r = set->v[i], *old;

		why[0] = '\0';
		rc = px_sds_check(c->cfg.sds, r, why, sizeof(why));
		if (rc == 0) {
			rc = rvec_push(&v, r);
			continue;
		}
		if (rc != -EINVAL && rc != -MESH_EPARSE)
			break;
		if (!nbad++)
			snprintf(bad, cap, "%s", why[0] ? why : mesh_strerror(rc));
		old = c->cur ? px_snapshot_find(c->cur, XDS_SECRET, r->name) : NULL;
		rc = old ? rvec_push(&v, old) : 0;
	}
	if (rc == 0 && nbad)
		rc = snap_set(recv, XDS_SECRET, &v);
	free(v.v);
	return rc;
}

/* recv (one reference, taken) pruned of the RDS/EDS resources nothing
 * needs, composed and applied: 0, or < 0 with err (recv dropped), or 1
 * with err: applied, without Secrets refused (drop_bad_secrets), whose
 * reason is to be NACKed. */
static int prune_and_apply(struct xds_client *c, struct px_snapshot *recv, char *err, size_t cap)
{
	struct name_set rds = { 0 }, eds = { 0 }, sds = { 0 };
	char bad[XDS_MAX_ERROR];
	int rc;

	/* what the new listeners/clusters need; what nothing needs any more goes */
	rc = wanted_names(recv, XDS_ROUTE, &rds);
	if (rc == 0)
		rc = wanted_names(recv, XDS_ENDPOINT, &eds);
	if (rc < 0) {
		snprintf(err, cap, "a listener's HTTP connection manager does not decode");
		goto out;
	}
	rc = client_wanted(c, recv, XDS_SECRET, &sds);
	if (rc < 0) {
		snprintf(err, cap, "a TLS transport socket does not decode");
		goto out;
	}
	rc = prune_recv(&recv, &rds, &eds, &sds);
	if (rc == 0)
		rc = drop_bad_secrets(c, &recv, bad, sizeof(bad));
	if (rc < 0)
		goto out;
	rc = try_apply(c, recv, err, cap);
	if (rc == 0)
		recv = NULL; /* taken */
	if (rc == 0 && bad[0]) {
		/* applied without the bad Secrets: NACKed all the same */
		snprintf(err, cap, "%s", bad);
		rc = 1;
	}
out:
	px_snapshot_unref(recv);
	name_set_clear(&rds);
	name_set_clear(&eds);
	name_set_clear(&sds);
	return rc;
}

/* Non-zero when a type other than t differs between view and recv (a
 * NACKed Delta update not applied yet). */
static int others_pending(const struct xds_client *c, enum xds_type t)
{
	int u;

	for (u = 0; u < XDS_TYPE_COUNT; u++) {
		const struct px_resource_set *a = &c->view->sets[u], *b = &c->recv->sets[u];

		if (u == (int)t)
			continue;
		if (a->n != b->n || (a->n && memcmp(a->v, b->v, a->n * sizeof(*a->v)) != 0))
			return 1;
	}
	return 0;
}

/*
 * Delta: view (one reference, taken) is the server's view after a response
 * of type t.  It becomes c->view whatever happens (meshd holds it as sent);
 * the candidate is all of it, or, when that fails and another type has a
 * NACKed update pending, recv with t's set from view.  0 or < 0 with err.
 */
static int delta_apply(struct xds_client *c, enum xds_type t, struct px_snapshot *view, char *err, size_t cap)
{
	struct px_snapshot *alt = NULL;
	char err2[XDS_MAX_ERROR];
	int rc, rc2;

	px_snapshot_unref(c->view);
	c->view = view;
	rc = prune_and_apply(c, px_snapshot_ref(view), err, cap);
	if (rc >= 0) {
		/* in step: the (pruned) applied set is the view again (1: without
		 * a refused Secret, NACKed by the caller) */
		px_snapshot_unref(c->view);
		c->view = px_snapshot_ref(c->recv);
		return rc;
	}
	if (!others_pending(c, t))
		return rc;
	rc2 = px_snapshot_replace(c->recv, t, (const struct px_resource *const *)view->sets[t].v, view->sets[t].n,
				  &alt);
	if (rc2 == 0)
		rc2 = prune_and_apply(c, alt, err2, sizeof(err2));
	if (rc2 < 0)
		return rc;
	log_warn(SCOPE, "%s applied without the other types' rejected updates (%s)", xds_type_short(t), err);
	err[0] = '\0';
	return 0;
}

/*
 * The end of a response of type t, either variant: rc < 0 (with err) is a
 * NACK of what could not be decoded (Delta: the view stays as it was);
 * else recv (one reference, taken) is the new received state (Delta: the
 * new server's view), applied and ACKed, or NACKed with the engine's
 * reason.
 */
static void conclude(struct xds_client *c, enum xds_type t, int rc, struct px_snapshot *recv, const char *version,
		     char *err, size_t cap)
{
	struct type_state *ts = &c->ts[t];

	if (rc < 0)
		goto out;
	if (c->cfg.protocol == XDS_PROTOCOL_DELTA)
		rc = delta_apply(c, t, recv, err, cap);
	else
		rc = prune_and_apply(c, recv, err, cap);
	recv = NULL; /* taken */
	if (rc > 0) {
		/* applied but for refused Secrets (drop_bad_secrets): what was
		 * taken is in force, the refusal is NACKed (version unchanged) */
		update_subscriptions(c);
		set_ready(c);
		rc = -EINVAL;
	}
out:
	if (rc < 0) {
		c->st.type[t].update_rejected++;
		if (!err[0])
			snprintf(err, cap, "%s", mesh_strerror(rc));
		log_warn(SCOPE, "NACK %s version %.64s (nonce %.64s): %s", xds_type_short(t), version, ts->nonce, err);
		(void)send_request(c, t, err);
	} else {
		c->st.type[t].update_success++;
		mesh_str_copy(ts->version, sizeof(ts->version), version);
		now_rfc3339(ts->last_updated, sizeof(ts->last_updated));
		log_info(SCOPE, "ACK %s version %.64s (nonce %.64s): %zu resources held%s", xds_type_short(t), version,
			 ts->nonce, c->recv->sets[t].n, c->warming ? " (some warming)" : "");
		(void)send_request(c, t, NULL);
		update_subscriptions(c);
		set_ready(c);
	}
	px_snapshot_unref(recv);
}

/* The response's type, when subscribed on this stream; else -1 (counted). */
static int response_type(struct xds_client *c, const char *url)
{
	int t = xds_type_from_url(url);

	if (t < 0 || !c->ts[t].subscribed) {
		c->st.responses_ignored++;
		log_warn(SCOPE, "ignoring a response for %.200s: not subscribed", url ? url : "");
		return -1;
	}
	return t;
}

static void handle_response(struct xds_client *c, const Envoy__Service__Discovery__V3__DiscoveryResponse *resp)
{
	struct rvec set = { 0 };
	struct px_snapshot *recv = NULL;
	struct type_state *ts;
	char err[XDS_MAX_ERROR];
	const char *version = resp->version_info ? resp->version_info : "";
	size_t i;
	int t, rc;

	err[0] = '\0';
	t = response_type(c, resp->type_url);
	if (t < 0)
		return;
	ts = &c->ts[t];
	mesh_str_copy(ts->nonce, sizeof(ts->nonce), resp->nonce);
	c->st.type[t].update_attempt++;
	c->st.type[t].resources_received += resp->n_resources;
	rc = decode_resources(resp, t, c->recv, &set, err, sizeof(err));
	if (rc < 0)
		goto out;
	if (t == XDS_LISTENER || t == XDS_CLUSTER) {
		rc = px_snapshot_replace(c->recv, t, set.v, set.n, &recv);
	} else {
		/* RDS/EDS in SotW: the named resources are replaced, the others stay
		 * (xDS protocol: only LDS and CDS responses carry the whole set);
		 * names not asked for are dropped */
		struct rvec keep = { 0 };

		for (i = 0; i < set.n && rc == 0; i++)
			if (name_set_has(&ts->names, set.v[i]->name))
				rc = rvec_push(&keep, set.v[i]);
		if (rc == 0)
			rc = px_snapshot_update(c->recv, t, keep.v, keep.n, NULL, 0, &recv);
		free(keep.v);
	}
	if (rc < 0)
		/* the snapshot sorts the set and refuses a name twice */
		snprintf(err, sizeof(err), "%s", rc == -EINVAL ? "duplicate resource names in the response" : mesh_strerror(rc));
out:
	rvec_release(&set);
	conclude(c, t, rc, recv, version, err, sizeof(err));
}

static int strp_eq_any(char *const *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return 1;
	return 0;
}

/*
 * A DeltaDiscoveryResponse: its resources added to / replacing by name
 * the held ones, its removed_resources dropped (Envoy's
 * DeltaSubscriptionState::handleGoodResponse: a name twice among added and
 * removed rejects the response; a resource with no body is a heartbeat or
 * an alias, skipped, when it names a resource held at that version).  For
 * RDS/EDS, names not subscribed are dropped.
 */
static void handle_delta_response(struct xds_client *c,
				  const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *resp)
{
	struct rvec set = { 0 };
	struct px_snapshot *recv = NULL;
	struct type_state *ts;
	const char **removed = NULL;
	char err[XDS_MAX_ERROR];
	const char *version = resp->system_version_info ? resp->system_version_info : "";
	size_t i, nremoved = 0;
	int t, rc = 0, explicit;

	err[0] = '\0';
	t = response_type(c, resp->type_url);
	if (t < 0)
		return;
	ts = &c->ts[t];
	explicit = t == XDS_ROUTE || t == XDS_ENDPOINT || t == XDS_SECRET;
	mesh_str_copy(ts->nonce, sizeof(ts->nonce), resp->nonce);
	c->st.type[t].update_attempt++;
	c->st.type[t].resources_received += resp->n_resources;
	c->st.type[t].resources_removed += resp->n_removed_resources;
	for (i = 0; i < resp->n_resources && rc == 0; i++) {
		const Envoy__Service__Discovery__V3__Resource *dr = resp->resources[i];
		const struct px_resource *held;
		struct px_resource *r;

		if (!dr || !dr->name || !*dr->name) {
			snprintf(err, sizeof(err), "resource %zu of type %s has no name", i, xds_type_short(t));
			rc = -EINVAL;
			break;
		}
		if (strp_eq_any(resp->removed_resources, resp->n_removed_resources, dr->name)) {
			snprintf(err, sizeof(err), "%.200s is both added and removed", dr->name);
			rc = -EINVAL;
			break;
		}
		if (!dr->resource) {
			held = px_snapshot_find(c->view, t, dr->name);
			if (dr->n_aliases || (held && dr->version && strcmp(held->version, dr->version) == 0))
				continue;
			snprintf(err, sizeof(err), "%s resource %.200s has no body", xds_type_short(t), dr->name);
			rc = -EINVAL;
			break;
		}
		if (explicit && !name_set_has(&ts->names, dr->name))
			continue; /* not asked for (any more) */
		rc = decode_one(t, dr->resource, i, dr->name, dr->version, c->view, &r, err, sizeof(err));
		if (rc == 0 && rvec_push(&set, r) < 0) {
			px_resource_unref(r);
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && resp->n_removed_resources) {
		removed = malloc(resp->n_removed_resources * sizeof(*removed));
		if (!removed)
			rc = -ENOMEM;
		for (i = 0; rc == 0 && i < resp->n_removed_resources; i++) {
			if (!resp->removed_resources[i] || !*resp->removed_resources[i])
				continue;
			/* issue 13 (gwbrk): a Secret still named by a listener or
			 * cluster is kept when meshd removes it (its credentialName
			 * Secret deleted or no longer usable): Envoy's SdsApi ignores
			 * such a removal and goes on with the last secret it had */
			if (t == XDS_SECRET && name_set_has(&ts->names, resp->removed_resources[i])) {
				log_warn(SCOPE, "secret %.200s removed by the server while still in use: the last one is kept",
					 resp->removed_resources[i]);
				continue;
			}
			removed[nremoved++] = resp->removed_resources[i];
		}
	}
	if (rc == 0) {
		rc = px_snapshot_update(c->view, t, set.v, set.n, removed, nremoved, &recv);
		if (rc < 0)
			snprintf(err, sizeof(err), "%s",
				 rc == -EINVAL ? "duplicate resource names in the response" : mesh_strerror(rc));
	}
	free(removed);
	rvec_release(&set);
	conclude(c, t, rc, recv, version, err, sizeof(err));
}

/* ------------------------------------------------------------------ */
/* the stream, without transport */

int xds_client_stream_begin(struct xds_client *c, xds_send_fn send, void *send_ctx)
{
	/* Envoy's order: clusters (and their endpoints) before listeners (and
	 * their routes), then the secrets they name */
	static const enum xds_type order[] = { XDS_CLUSTER, XDS_ENDPOINT, XDS_LISTENER, XDS_ROUTE, XDS_SECRET };
	size_t i;
	int rc = 0;

	c->send = send;
	c->send_ctx = send_ctx;
	c->stream_open = 1;
	c->node_sent = 0;
	c->got_response = 0;
	c->st.stream_attempts++;
	/* the server of this stream knows only what initial_resource_versions says */
	px_snapshot_unref(c->view);
	c->view = px_snapshot_ref(c->recv);
	for (i = 0; i < XDS_TYPE_COUNT; i++) {
		c->ts[i].subscribed = 0;
		c->ts[i].nonce[0] = '\0'; /* nonces belong to a stream */
	}
	for (i = 0; i < sizeof(order) / sizeof(order[0]) && rc == 0; i++) {
		enum xds_type t = order[i];

		if ((t == XDS_ROUTE || t == XDS_ENDPOINT || t == XDS_SECRET) && !c->ts[t].names.n)
			continue;
		rc = send_subscribe(c, t);
	}
	return rc;
}

void xds_client_stream_recv(struct xds_client *c, const uint8_t *msg, size_t len)
{
	int delta = c->cfg.protocol == XDS_PROTOCOL_DELTA;
	const ProtobufCMessageDescriptor *d = delta ? &envoy__service__discovery__v3__delta_discovery_response__descriptor
						    : &envoy__service__discovery__v3__discovery_response__descriptor;
	const char *what = delta ? "DeltaDiscoveryResponse" : "DiscoveryResponse";
	ProtobufCMessage *resp;

	if (!c->stream_open)
		return;
	/* nesting bounded before protobuf-c's recursive unpack, through each
	 * resource's Any (decoded later, snapshot.c) (pbdepth.h) */
	if (pbdepth_check(d, msg, len, PBDEPTH_LIMIT, PBDEPTH_FOLLOW_ANY, NULL) < 0) {
		log_warn(SCOPE, "a %s of %zu bytes is malformed or nests messages deeper than %d levels: ignored", what,
			 len, PBDEPTH_LIMIT);
		c->st.responses_ignored++;
		return;
	}
	resp = protobuf_c_message_unpack(d, NULL, len, msg);
	if (!resp) {
		/* no type to NACK against: Envoy closes the stream for a response it cannot parse */
		log_warn(SCOPE, "a %s of %zu bytes does not decode: ignored", what, len);
		c->st.responses_ignored++;
		return;
	}
	c->got_response = 1;
	if (delta)
		handle_delta_response(c, (const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *)resp);
	else
		handle_response(c, (const Envoy__Service__Discovery__V3__DiscoveryResponse *)resp);
	protobuf_c_message_free_unpacked(resp, NULL);
}

void xds_client_stream_end(struct xds_client *c, int status, const char *message)
{
	if (!c->stream_open)
		return;
	c->stream_open = 0;
	c->send = NULL;
	c->st.connected = 0;
	c->st.stream_failures++;
	if (c->got_response)
		c->backoff_ms = 0;
	log_warn(SCOPE, "ADS (%s) stream closed: grpc-status %d%s%s; keeping the last configuration (generation %llu)",
		 xds_protocol_name(c->cfg.protocol), status, message && *message ? ": " : "", message ? message : "",
		 (unsigned long long)c->cur->generation);
}

uint64_t xds_client_backoff_ms(const struct xds_client *c)
{
	return c->backoff_ms;
}

/* ------------------------------------------------------------------ */
/* the transport */

static void connect_now(struct xds_client *c);

static int grpc_send(void *ctx, const uint8_t *msg, size_t len)
{
	struct xds_client *c = ctx;

	return c->g ? grpc_client_send(c->g, msg, len) : -ENOTCONN;
}

static void on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct xds_client *c = ctx;

	if (!c->st.connected) {
		c->st.connected = 1;
		log_info(SCOPE, "connected to meshd at %s", c->authority);
	}
	xds_client_stream_recv(c, msg, len);
}

/* splitmix64: jitter needs no quality, only no shared state */
static uint64_t rnd(struct xds_client *c)
{
	uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void on_close(void *ctx, int status, const char *message)
{
	struct xds_client *c = ctx;
	uint64_t delay;

	xds_client_stream_end(c, status, message);
	/* Envoy's JitteredExponentialBackOffStrategy: the ceiling doubles from
	 * the base up to the max, the delay is uniform below it */
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : XDS_BACKOFF_BASE_MS;
	if (c->backoff_ms > XDS_BACKOFF_MAX_MS)
		c->backoff_ms = XDS_BACKOFF_MAX_MS;
	delay = rnd(c) % c->backoff_ms + 1;
	log_info(SCOPE, "reconnecting to %s in %llu ms", c->authority, (unsigned long long)delay);
	ev_defer(c->loop, &c->reap); /* the client cannot be freed from its own callback */
	ev_timer_arm(c->loop, &c->retry, delay);
}

static void reap_cb(struct ev_loop *loop, struct ev_defer *d)
{
	struct xds_client *c = d->data;

	(void)loop;
	grpc_client_free(c->g);
	c->g = NULL;
}

static void connect_now(struct xds_client *c)
{
	static const struct grpc_call_cbs cbs = { on_message, on_close };
	struct grpc_client_opts go = c->cfg.grpc;
	int rc = 0;

	go.stats = &c->st.cx;
	grpc_client_free(c->g);
	c->g = NULL;
	ev_defer_cancel(c->loop, &c->reap);
	if (c->cfg.tls_setup) {
		/* issue 13: TLS to 15012 with what the identity holds now, so a
		 * rotated workload certificate is the next connection's */
		px_tls_ctx_unref(c->tls);
		c->tls = NULL;
		free(c->auth);
		c->auth = NULL;
		rc = c->cfg.tls_setup(c->cfg.tls_setup_ctx, &c->tls, &c->auth);
		go.tls = c->tls;
		go.authorization = c->auth;
	}
	if (rc == 0)
		rc = grpc_client_new(c->loop, (const struct sockaddr *)&c->sa, c->salen, c->authority,
				     c->cfg.protocol == XDS_PROTOCOL_DELTA ? XDS_DELTA_ADS_PATH : XDS_ADS_PATH, &go,
				     &cbs, c, &c->g);
	if (rc == 0)
		rc = xds_client_stream_begin(c, grpc_send, c);
	if (rc < 0) {
		log_warn(SCOPE, "cannot start a stream to %s: %s", c->authority, mesh_strerror(rc));
		if (c->g) {
			c->stream_open = 0;
			grpc_client_free(c->g);
			c->g = NULL;
		}
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : XDS_BACKOFF_BASE_MS;
		if (c->backoff_ms > XDS_BACKOFF_MAX_MS)
			c->backoff_ms = XDS_BACKOFF_MAX_MS;
		ev_timer_arm(c->loop, &c->retry, rnd(c) % c->backoff_ms + 1);
	}
}

static void retry_cb(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	connect_now(t->data);
}

int xds_client_start(struct xds_client *c, const char *addr)
{
	if (net_parse_addr(addr, &c->sa, &c->salen) < 0)
		return -EINVAL;
	mesh_str_copy(c->authority, sizeof(c->authority), addr);
	connect_now(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the node */

static void meta_put(struct xds_client *c, const char *key, const char *val)
{
	size_t i = c->meta.n_fields;

	if (i >= XDS_META_MAX || !val)
		return;
	google__protobuf__struct__fields_entry__init(&c->meta_e[i]);
	google__protobuf__value__init(&c->meta_v[i]);
	c->meta_e[i].key = (char *)key;
	c->meta_e[i].value = &c->meta_v[i];
	c->meta_v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	c->meta_v[i].string_value = (char *)val;
	c->meta_p[i] = &c->meta_e[i];
	c->meta.n_fields++;
}

static int build_node(struct xds_client *c)
{
	const struct xds_client_config *cfg = &c->cfg;
	const char *p, *q, *dot;
	char *tok, *save = NULL;
	size_t i;

	envoy__config__core__v3__node__init(&c->node);
	google__protobuf__struct__init(&c->meta);
	google__protobuf__struct__init(&c->labels);
	c->node.id = (char *)cfg->node_id;
	c->node.user_agent_name = "meshproxy";
	c->node.user_agent_version_type_case = ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
	c->node.user_agent_version = (char *)(cfg->version ? cfg->version : "dev");
	c->node.metadata = &c->meta;
	c->meta.fields = c->meta_p;
	/* "TYPE~IP~POD.NS~NS.svc.cluster.local": the IP and the namespace */
	p = strchr(cfg->node_id, '~');
	q = p ? strchr(p + 1, '~') : NULL;
	if (p && q) {
		c->ip = strndup(p + 1, (size_t)(q - p - 1));
		dot = strchr(q + 1, '.');
		p = dot ? strchr(dot + 1, '~') : NULL;
		if (dot && p && p > dot + 1)
			c->ns = strndup(dot + 1, (size_t)(p - dot - 1));
	}
	/* Node.locality "region/zone/subzone": meshd computes locality load
	 * balancing (priorities, distribute weights) against it, as istiod */
	if (cfg->locality && *cfg->locality) {
		char *parts[3] = { NULL, NULL, NULL }, *s;
		int n = 0;

		c->locality_copy = strdup(cfg->locality);
		if (!c->locality_copy)
			return -ENOMEM;
		for (s = c->locality_copy; n < 3; n++) {
			char *slash = n < 2 ? strchr(s, '/') : NULL;

			parts[n] = s;
			if (!slash)
				break;
			*slash = '\0';
			s = slash + 1;
		}
		envoy__config__core__v3__locality__init(&c->locality);
		if (parts[0])
			c->locality.region = parts[0];
		if (parts[1])
			c->locality.zone = parts[1];
		if (parts[2])
			c->locality.sub_zone = parts[2];
		c->node.locality = &c->locality;
	}
	meta_put(c, "NAMESPACE", c->ns);
	meta_put(c, "SERVICE_ACCOUNT", cfg->service_account && *cfg->service_account ? cfg->service_account : NULL);
	meta_put(c, "INTERCEPTION_MODE", cfg->interception ? cfg->interception : "REDIRECT");
	meta_put(c, "ISTIO_VERSION", c->node.user_agent_version);
	meta_put(c, "INSTANCE_IPS", c->ip && *c->ip ? c->ip : NULL);
	meta_put(c, "PROXY_CONFIG_FLAVOUR", "meshproxy");
	/* LABELS: a Struct of strings */
	c->labels.fields = c->label_p;
	c->labels_copy = strdup(cfg->labels ? cfg->labels : "");
	if (!c->labels_copy)
		return -ENOMEM;
	for (tok = strtok_r(c->labels_copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		i = c->labels.n_fields;
		if (!eq || eq == tok || i >= XDS_MAX_LABELS)
			return -EINVAL;
		*eq = '\0';
		google__protobuf__struct__fields_entry__init(&c->label_e[i]);
		google__protobuf__value__init(&c->label_v[i]);
		c->label_e[i].key = tok;
		c->label_e[i].value = &c->label_v[i];
		c->label_v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		c->label_v[i].string_value = eq + 1;
		c->label_p[i] = &c->label_e[i];
		c->labels.n_fields++;
	}
	if (c->labels.n_fields && c->meta.n_fields < XDS_META_MAX) {
		i = c->meta.n_fields;
		google__protobuf__struct__fields_entry__init(&c->meta_e[i]);
		google__protobuf__value__init(&c->meta_v[i]);
		c->meta_e[i].key = "LABELS";
		c->meta_e[i].value = &c->meta_v[i];
		c->meta_v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
		c->meta_v[i].struct_value = &c->labels;
		c->meta_p[i] = &c->meta_e[i];
		c->meta.n_fields++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* life cycle */

const char *xds_protocol_name(enum xds_protocol p)
{
	switch (p) {
	case XDS_PROTOCOL_SOTW: return "sotw";
	case XDS_PROTOCOL_DELTA: return "delta";
	}
	return NULL;
}

int xds_client_new(struct ev_loop *loop, const struct xds_client_config *cfg, struct xds_client **out)
{
	struct xds_client *c;
	struct timespec ts;
	int rc;

	*out = NULL;
	if (!cfg->node_id || !*cfg->node_id || !cfg->apply || !xds_protocol_name(cfg->protocol))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->cfg = *cfg;
	c->st.protocol = cfg->protocol;
	if (!c->cfg.warm_timeout_ms)
		c->cfg.warm_timeout_ms = XDS_WARM_TIMEOUT_MS;
	ev_timer_init(&c->warm, warm_timeout, c);
	ev_timer_init(&c->retry, retry_cb, c);
	ev_defer_init(&c->reap, reap_cb, c);
	clock_gettime(CLOCK_REALTIME, &ts);
	c->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)c;
	rc = build_node(c);
	if (rc == 0)
		rc = px_snapshot_new(&c->recv);
	if (rc == 0)
		rc = px_snapshot_new(&c->cur);
	if (rc == 0)
		c->view = px_snapshot_ref(c->recv);
	if (rc < 0) {
		xds_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void xds_client_free(struct xds_client *c)
{
	int t;

	if (!c)
		return;
	ev_timer_cancel(c->loop, &c->warm);
	ev_timer_cancel(c->loop, &c->retry);
	ev_defer_cancel(c->loop, &c->reap);
	grpc_client_free(c->g);
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		name_set_clear(&c->ts[t].names);
	name_set_clear(&c->sds_names);
	px_snapshot_unref(c->sds_basis);
	px_tls_ctx_unref(c->tls);
	free(c->auth);
	px_snapshot_unref(c->view);
	px_snapshot_unref(c->recv);
	px_snapshot_unref(c->cur);
	free(c->labels_copy);
	free(c->locality_copy);
	free(c->ns);
	free(c->ip);
	free(c);
}

const int *xds_client_ready(const struct xds_client *c)
{
	return &c->ready;
}

const struct px_snapshot *xds_client_snapshot(const struct xds_client *c)
{
	return c->cur;
}

const struct xds_client_stats *xds_client_stats(const struct xds_client *c)
{
	return &c->st;
}

/* ------------------------------------------------------------------ */
/* admin views */

/* msg as an expanded Any: {"@type": url, ...fields}. */
static int put_any(struct mesh_buf *b, const char *url, const ProtobufCMessage *msg)
{
	struct mesh_buf tmp;
	const char *p;
	int rc;

	mesh_buf_init(&tmp, b->max);
	/* Envoy dumps with the .proto field names (snake_case) */
	rc = pbjson_render_opts(msg, &tmp, PBJSON_PROTO_NAMES);
	if (rc == 0) {
		mesh_buf_puts(b, "{\"@type\": ");
		json_put_string(b, url);
		p = tmp.data ? strchr(tmp.data, '{') : NULL;
		if (p) {
			p++;
			while (*p == ' ' || *p == '\n')
				p++;
			if (*p != '}')
				mesh_buf_puts(b, ", ");
			mesh_buf_puts(b, p);
		} else {
			mesh_buf_putc(b, '}');
		}
	}
	mesh_buf_cleanup(&tmp);
	return rc;
}

int xds_client_config_dump(const struct xds_client *c, struct mesh_buf *out)
{
	return xds_client_config_dump_with(c, out, NULL, NULL);
}

int xds_client_config_dump_with(const struct xds_client *c, struct mesh_buf *out,
				void (*extra)(void *ctx, struct mesh_buf *out), void *ctx)
{
	static const struct {
		enum xds_type t;
		const char *dump, *list, *field;
	} kinds[] = {
		{ XDS_LISTENER, "ListenersConfigDump", "dynamic_listeners", "listener" },
		{ XDS_CLUSTER, "ClustersConfigDump", "dynamic_active_clusters", "cluster" },
		{ XDS_ROUTE, "RoutesConfigDump", "dynamic_route_configs", "route_config" },
		{ XDS_ENDPOINT, "EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config" },
	};
	size_t k, i;
	int rc = 0;

	mesh_buf_puts(out, "{\n \"configs\": [");
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && rc == 0; k++) {
		const struct px_resource_set *set = &c->cur->sets[kinds[k].t];
		const struct type_state *ts = &c->ts[kinds[k].t];

		mesh_buf_printf(out, "%s\n  {\n   \"@type\": \"type.googleapis.com/envoy.admin.v3.%s\",\n", k ? "," : "",
				kinds[k].dump);
		if (kinds[k].t == XDS_LISTENER || kinds[k].t == XDS_CLUSTER) {
			mesh_buf_puts(out, "   \"version_info\": ");
			json_put_string(out, ts->version);
			mesh_buf_puts(out, ",\n");
		}
		mesh_buf_printf(out, "   \"%s\": [", kinds[k].list);
		for (i = 0; i < set->n && rc == 0; i++) {
			const struct px_resource *r = set->v[i];

			mesh_buf_puts(out, i ? ",\n    {" : "\n    {");
			if (kinds[k].t == XDS_LISTENER) {
				mesh_buf_puts(out, "\"name\": ");
				json_put_string(out, r->name);
				mesh_buf_puts(out, ", \"active_state\": {");
			}
			mesh_buf_puts(out, "\"version_info\": ");
			json_put_string(out, r->version);
			mesh_buf_printf(out, ", \"%s\": ", kinds[k].field);
			const ProtobufCMessage *m = px_resource_msg(r);

			rc = m ? put_any(out, xds_type_url(kinds[k].t), m) : -ENOMEM;
			mesh_buf_puts(out, ", \"last_updated\": ");
			json_put_string(out, ts->last_updated);
			mesh_buf_puts(out, kinds[k].t == XDS_LISTENER ? "}}" : "}");
		}
		mesh_buf_puts(out, set->n ? "\n   ]\n  }" : "]\n  }");
	}
	if (rc == 0 && extra) {
		mesh_buf_puts(out, ",\n  ");
		extra(ctx, out);
	}
	mesh_buf_puts(out, "\n ]\n}\n");
	px_snapshot_shed(c->cur); /* decoded for the dump only */
	if (rc == 0 && out->err)
		rc = out->err;
	return rc;
}

void xds_client_stats_text(const struct xds_client *c, struct mesh_buf *out)
{
	/* Envoy's names for CDS and LDS; RDS/EDS/SDS are aggregated under control_plane.* */
	static const char *const prefix[XDS_TYPE_COUNT] = {
		[XDS_LISTENER] = "listener_manager.lds",
		[XDS_ROUTE] = "control_plane.rds",
		[XDS_CLUSTER] = "cluster_manager.cds",
		[XDS_ENDPOINT] = "control_plane.eds",
		[XDS_SECRET] = "control_plane.sds",
	};
	int t;

	mesh_buf_printf(out, "control_plane.connected_state: %d\n", c->st.connected);
	mesh_buf_printf(out, "control_plane.responses_ignored: %llu\n", (unsigned long long)c->st.responses_ignored);
	mesh_buf_printf(out, "control_plane.stream_attempts: %llu\n", (unsigned long long)c->st.stream_attempts);
	mesh_buf_printf(out, "control_plane.stream_failures: %llu\n", (unsigned long long)c->st.stream_failures);
	mesh_buf_printf(out, "control_plane.warming: %d\n", c->warming);
	/* which variant the stream speaks (Istio's ISTIO_DELTA_XDS) */
	mesh_buf_printf(out, "control_plane.xds_delta: %d\n", c->cfg.protocol == XDS_PROTOCOL_DELTA);
	/* the xds-grpc cluster's connection stats, Envoy's names */
	mesh_buf_printf(out,
			"cluster.xds-grpc.upstream_cx_active: %llu\ncluster.xds-grpc.upstream_cx_connect_fail: %llu\n"
			"cluster.xds-grpc.upstream_cx_rx_bytes_total: %llu\ncluster.xds-grpc.upstream_cx_total: %llu\n"
			"cluster.xds-grpc.upstream_cx_tx_bytes_total: %llu\ncluster.xds-grpc.upstream_rq_active: %llu\n"
			"cluster.xds-grpc.upstream_rq_total: %llu\n",
			(unsigned long long)c->st.cx.cx_active, (unsigned long long)c->st.cx.cx_connect_fail,
			(unsigned long long)c->st.cx.cx_rx_bytes, (unsigned long long)c->st.cx.cx_total,
			(unsigned long long)c->st.cx.cx_tx_bytes, (unsigned long long)c->st.cx.rq_active,
			(unsigned long long)c->st.cx.rq_total);
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct xds_type_stats *s = &c->st.type[t];

		mesh_buf_printf(out, "%s.resources_received: %llu\n%s.resources_removed: %llu\n", prefix[t],
				(unsigned long long)s->resources_received, prefix[t], (unsigned long long)s->resources_removed);
		mesh_buf_printf(out, "%s.update_attempt: %llu\n%s.update_rejected: %llu\n%s.update_success: %llu\n",
				prefix[t], (unsigned long long)s->update_attempt, prefix[t],
				(unsigned long long)s->update_rejected, prefix[t], (unsigned long long)s->update_success);
	}
}
