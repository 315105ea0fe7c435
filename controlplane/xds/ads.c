/*
 * ads.c - the ADS protocol core (state of the world and Delta), with no
 * transport: server.c feeds it requests and publishes and sends what it
 * returns; tests/unit/controlplane/xds/test_ads.c drives it directly.
 *
 * Flavours: each stream takes its flavour from its first request's Node
 * (xds_flavour_of_node) and is served from the snapshot published for that
 * flavour (or, for a whole-per-proxy flavour, its key's set: below).  A
 * flavour nothing was published for, while another flavour has a
 * snapshot, means meshd has no generator for it (meshd serves routers
 * whole per proxy, like sidecars, so only a server without that does): the
 * stream ends with UNIMPLEMENTED rather than get another flavour's config.
 *
 * Protocol, per stream and type URL: the first request subscribes
 * (resource names; empty for LDS/CDS means every resource), each response
 * carries the subscribed resources found in the current snapshot with
 * version_info = a hash over (name, resource hash) pairs and a fresh nonce.
 * A request quoting an older nonce is stale and ignored; one quoting the
 * latest nonce ACKs, or NACKs when it has error_detail.  A NACKed version
 * is not sent again.  A publish pushes to a stream only the types whose
 * version changed.  A new stream quoting a version it already holds still
 * gets one response (the nonce is new to it), as Envoy's protocol has it.
 *
 * Delta (DeltaAggregatedResources), per stream and type URL: explicit
 * names (resource_names_subscribe / _unsubscribe) and a wildcard flag ("*",
 * or an empty first request for LDS/CDS).  What the client holds is the
 * sent_* set (the resources themselves, one reference each), seeded from
 * initial_resource_versions on the first request.
 * A Delta response is built when the transport asks for the next message,
 * by diffing what the client should hold against what it holds: changed or
 * new resources (version = the resource's hash, 16 hex) and
 * removed_resources for names it holds that are gone.  Unsubscribed names
 * are forgotten without a removal.  Since the held set is updated when a
 * response is built, a NACKed resource version is not sent again; the NACK
 * is recorded.  system_version_info is the same set hash SotW uses as
 * version_info.
 *
 * SotW and Delta share one ACK/NACK path (type_ack) and one record of what
 * was sent (type_sent).
 *
 * Per-proxy resources (see ads.h): a name the flavour's snapshot lacks (an
 * xDS gRPC server's inbound listener) is looked up in the set of the
 * stream's key (flavour, NAMESPACE, LABELS), shared by every stream of the
 * key; a name never asked for the key is requested of the push stage
 * through the `want` callback, and the responses of that type wait until
 * the key's set answering it arrives (xds_ads_proxy_set).  The core never
 * builds a resource, so neither it nor /debug/syncz (which takes the
 * server lock the core runs under) waits on a generator.  A key goes with
 * its last stream, and the stage is told to drop it.
 *
 * Whole-per-proxy flavours (the sidecar, xds_ads_config.whole_flavours):
 * a sidecar's every resource depends on its workload, so its key (with
 * the service account, and the IP when it has no labels) is asked of the
 * stage once, when the Node is first seen, for the whole set
 * (XDS_PROXY_WANT_ALL); the stream is served from that set alone (LDS/CDS
 * wildcards included) and waits until it exists.  Pushes of RDS and EDS to
 * such streams carry only the changed resources (sotw_changed).
 *
 * Memory: a response waiting to be sent and what was last sent hold a
 * reference to each resource in them, never to a snapshot: a stream keeps
 * alive only the resources it was sent, which the current snapshot and
 * the gen cache usually share, so a publish frees whatever it made
 * obsolete as soon as the streams have moved on.
 */
#include "controlplane/xds/ads_int.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xds/pbdepth.h"
#include "controlplane/metrics/metrics.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "xds"

/* Caps on what a client may make us keep per stream. */
#define XDS_MAX_REQUEST_BYTES (4 * 1024 * 1024)
#define XDS_MAX_NAME_LEN 1024
#define XDS_MAX_SUBSCRIBED_NAMES 100000
#define XDS_MAX_ERROR_LEN 4096
#define XDS_MAX_NODE_FIELD_LEN 1024
/* Node metadata LABELS kept per stream. */
#define XDS_MAX_NODE_LABELS 256
/* Per-proxy names asked per key: a client cannot grow the stage's cache
 * past this by subscribing to made-up names. */
#define XDS_MAX_PROXY_NAMES 1024

typedef struct xds_ads__type type_state;
typedef struct xds_ads__pending pending_resp;

/* ------------------------------------------------------------------ */
/* small helpers */

/* A client's string (node id, metadata, NACK detail, peer), at most cap
 * bytes, checked once at the border (issue 16): control characters and
 * bytes that are not well-formed UTF-8 become '?', so logs, debug views
 * and names built from it hold only printable UTF-8.  (A NUL inside the
 * protobuf string already ended it: protobuf-c hands us a C string.) */
static char *dup_capped(const char *s, size_t cap, enum metrics_limit limit)
{
	size_t n, i;
	char *d;

	if (!s)
		s = "";
	n = strnlen(s, cap);
	if (s[n])
		metrics_limit(limit); /* cut */
	d = malloc(n + 1);
	if (!d)
		goto out;
	memcpy(d, s, n);
	d[n] = '\0';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		size_t k;

		if (c < 0x20 || c == 0x7f) {
			d[i] = '?';
		} else if (c >= 0x80) {
			k = mesh_utf8_seq((const unsigned char *)d + i, n - i);
			if (k)
				i += k - 1;
			else
				d[i] = '?';
		}
	}
out:
	return d;
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static const char *stream_who(const struct xds_ads_stream *st)
{
	return st->node_id ? st->node_id : "?";
}

/* ------------------------------------------------------------------ */
/* flavours */

const char *xds_flavour_name(enum xds_flavour f)
{
	switch (f) {
	case XDS_FLAVOUR_PROXYLESS: return "proxyless";
	case XDS_FLAVOUR_ROUTER: return "router";
	case XDS_FLAVOUR_SIDECAR:
	default: return "sidecar";
	}
}

static const char *struct_string(const Google__Protobuf__Struct *m, const char *key)
{
	size_t i;

	if (!m)
		return NULL;
	for (i = 0; i < m->n_fields; i++) {
		Google__Protobuf__Struct__FieldsEntry *e = m->fields[i];
		if (e && e->key && strcmp(e->key, key) == 0 && e->value &&
		    e->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
			return e->value->string_value;
	}
	return NULL;
}

enum xds_flavour xds_flavour_of_node(const Envoy__Config__Core__V3__Node *node)
{
	const char *gen;

	if (!node)
		return XDS_FLAVOUR_SIDECAR;
	gen = struct_string(node->metadata, "GENERATOR");
	if (gen && strcmp(gen, "grpc") == 0)
		return XDS_FLAVOUR_PROXYLESS;
	/* Istio's node id "TYPE~IP~POD.NS~NS.svc.cluster.local" */
	if (node->id && strncmp(node->id, "router~", 7) == 0)
		return XDS_FLAVOUR_ROUTER;
	return XDS_FLAVOUR_SIDECAR;
}

/* ------------------------------------------------------------------ */
/* per-type state */

static struct xds_ads__rlist *rlist_ref(struct xds_ads__rlist *l)
{
	if (l)
		mesh_refcount_ref(&l->refs);
	return l;
}

static void rlist_unref(struct xds_ads__rlist *l)
{
	if (l && mesh_refcount_unref(&l->refs)) {
		xds_resource_array_unref(l->v, l->n);
		free(l);
	}
}

/* A list taking v[0..n) and the reference each holds (freed with the
 * list, also on failure).  Returns it, or NULL without memory. */
static struct xds_ads__rlist *rlist_take(const struct xds_resource **v, size_t n)
{
	struct xds_ads__rlist *l = malloc(sizeof(*l));

	if (!l) {
		xds_resource_array_unref(v, n);
		return NULL;
	}
	mesh_refcount_init(&l->refs, 1);
	l->v = v;
	l->n = n;
	return l;
}

/* Drop resources v[0..n): the list's reference when they are a list's,
 * else the one each holds and the array. */
static void res_release(const struct xds_resource **v, size_t n, struct xds_ads__rlist *list)
{
	if (list)
		rlist_unref(list);
	else
		xds_resource_array_unref(v, n);
}

static void pending_clear(pending_resp *p)
{
	free(p->wire);
	if (p->head)
		xds_resource_unref(p->head);
	res_release(p->res, p->nres, p->list);
	memset(p, 0, sizeof(*p));
}

static void names_free(char **names, size_t n)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void names_obj_unref(struct xds_ads__names *o)
{
	if (o && mesh_refcount_unref(&o->refs))
		free(o);
}

/* Drop ts's subscribed names (a shared list's reference or its own). */
static void type_names_drop(type_state *ts)
{
	if (ts->names_obj)
		names_obj_unref(ts->names_obj);
	else
		names_free(ts->names, ts->nnames);
	ts->names_obj = NULL;
	ts->names = NULL;
	ts->nnames = 0;
}

static void delta_init_clear(type_state *ts)
{
	size_t i;

	for (i = 0; i < ts->ninit; i++)
		free(ts->init[i].name);
	free(ts->init);
	ts->init = NULL;
	ts->ninit = 0;
	ts->have_init = 0;
}

static void type_state_cleanup(type_state *ts)
{
	delta_init_clear(ts);
	type_names_drop(ts);
	res_release(ts->sent_res, ts->sent_nres, ts->sent_list);
	free(ts->error);
	pending_clear(&ts->pending);
	memset(ts, 0, sizeof(*ts));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The request's names sorted and unique, borrowed from the request, in
 * *out: in itself when it already is (Envoy sends them sorted, and every
 * ACK repeats them), else a new array (*alloced set; free() it).  No name
 * is copied: most requests are ACKs naming what the stream already has.
 * Returns 0, -ENOMEM, or -MESH_ETOOBIG past the caps.
 */
static int MESH_MUST_CHECK names_sorted(char **in, size_t n, char ***out, size_t *nout, int *alloced)
{
	char **v = NULL;
	size_t i, w = 0;
	int rc = 0, sorted = 1;

	*out = NULL;
	*nout = 0;
	*alloced = 0;
	if (n == 0)
		goto out;
	if (n > XDS_MAX_SUBSCRIBED_NAMES) {
		metrics_limit(METRICS_LIMIT_XDS_SUBSCRIBED_NAMES);
		rc = -MESH_ETOOBIG;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strnlen(in[i], XDS_MAX_NAME_LEN + 1) > XDS_MAX_NAME_LEN) {
			metrics_limit(METRICS_LIMIT_XDS_SUBSCRIBED_NAMES);
			rc = -MESH_ETOOBIG;
			goto out;
		}
		if (sorted && i > 0 && strcmp(in[i - 1], in[i]) >= 0)
			sorted = 0;
	}
	if (sorted) {
		*out = in;
		*nout = n;
		goto out;
	}
	v = malloc(n * sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(v, in, n * sizeof(*v));
	qsort(v, n, sizeof(*v), name_cmp);
	for (i = 0; i < n; i++)
		if (w == 0 || strcmp(v[w - 1], v[i]) != 0)
			v[w++] = v[i];
	*out = v;
	*nout = w;
	*alloced = 1;
out:
	return rc;
}

static uint64_t names_hash(char **v, size_t n)
{
	uint64_t h = MESH_HASH_INIT;
	size_t i;

	for (i = 0; i < n; i++)
		h = mesh_hash_update(h, v[i], strlen(v[i]) + 1); /* the NUL separates names */
	return h;
}

static int names_equal(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (a[i] != b[i] && strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/*
 * The SotW ACK fast path (sotw_fast_ack): a sidecar ACKing EDS repeats its
 * ~1,000 names (~130 KB) in every request, 2,000 sidecars after every
 * push.  Unpacking that (an arena, a string per name) and comparing the
 * names cost most of meshd's xDS thread, and the requests queued behind it
 * in gRPC core's read buffers were most of meshd's peak RSS.  So a request
 * whose resource_names field (its entries, contiguous on the wire as every
 * encoder writes them) hashes to the hash of the names the stream holds,
 * encoded the same way, is an ACK with unchanged names and is taken from
 * its bytes.  A word-at-a-time hash, not FNV-1a byte by byte, which cost
 * more than the compares.  Any mismatch (other names, other order, a Node,
 * an error_detail, a field it does not know) takes the full path.
 */
static uint64_t wire_hash(const uint8_t *d, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4fULL), w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, d + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 29;
	}
	w = 0;
	if (i < n)
		memcpy(&w, d + i, n - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 32);
}

/* protobuf's varint of v into out (10 bytes at most); returns its length. */
static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* wire_hash() of v[0..n) encoded as DiscoveryRequest.resource_names (field
 * 3: tag 0x1a, length, bytes, per name) into *h, and that encoding's length
 * into *wlen.  Returns 0, or -ENOMEM. */
static int MESH_MUST_CHECK names_wire_hash(char **v, size_t n, uint64_t *h, size_t *wlen)
{
	size_t i, len = 0, k = 0;
	uint8_t *buf;

	for (i = 0; i < n; i++)
		len += 1 + 10 + strlen(v[i]);
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i]);
		buf[k++] = 0x1a;
		k += varint_put(buf + k, l);
		memcpy(buf + k, v[i], l);
		k += l;
	}
	*h = wire_hash(buf, k);
	*wlen = k;
	free(buf);
	return 0;
}

/* A counted copy of v[0..n) (sorted, unique) with its hash h, in one
 * allocation.  Returns it, or NULL without memory. */
static struct xds_ads__names *names_obj_new(char **v, size_t n, uint64_t h)
{
	struct xds_ads__names *o;
	size_t i, bytes = 0, *lens = NULL;
	char *p;

	if (n) {
		lens = malloc(n * sizeof(*lens));
		if (!lens)
			return NULL;
	}
	for (i = 0; i < n; i++) {
		lens[i] = strlen(v[i]) + 1;
		bytes += lens[i];
	}
	o = malloc(sizeof(*o) + n * sizeof(char *) + bytes);
	if (o) {
		mesh_refcount_init(&o->refs, 1);
		o->n = n;
		o->hash = h;
		o->v = (char **)(o + 1);
		p = (char *)(o->v + n);
		for (i = 0; i < n; i++) {
			memcpy(p, v[i], lens[i]);
			o->v[i] = p;
			p += lens[i];
		}
		/* without it the fast path never matches: only slower */
		o->wire_ok = names_wire_hash(o->v, n, &o->wire_hash, &o->wire_len) == 0;
		if (!o->wire_ok) /* the length alone, without the buffer */
			for (i = 0, o->wire_len = 0; i < n; i++)
				o->wire_len += 1 + 10 + lens[i] - 1;
	}
	free(lens);
	return o;
}

/* The names v[0..n) (sorted, unique) as a counted list: the one the
 * stream's key last got for type t when it is the same (2,000 replicas
 * then hold one copy), else a new one the key keeps for the next stream.
 * Returns it (a reference for the caller) or NULL without memory. */
static struct xds_ads__names *names_share(struct xds_ads__key *k, enum xds_type t, char **v, size_t n)
{
	uint64_t h = names_hash(v, n);
	struct xds_ads__names *o = k ? k->names[t] : NULL;

	if (o && o->hash == h && o->n == n && names_equal(o->v, o->n, v, n)) {
		mesh_refcount_ref(&o->refs);
		return o;
	}
	o = names_obj_new(v, n, h);
	if (o && k) {
		names_obj_unref(k->names[t]);
		mesh_refcount_ref(&o->refs);
		k->names[t] = o;
	}
	return o;
}

/* LDS and CDS treat an empty name list as "everything" (and so does "*"). */
static int type_allows_wildcard(enum xds_type t)
{
	return t == XDS_LISTENER || t == XDS_CLUSTER;
}

/* The version of a set: a hash of its resources' hashes, in order.  Each
 * already covers its type, name and bytes (resource.h), so the names are
 * not hashed again: byte by byte over every name of a sidecar's 4,000
 * resources, for each of 20 workloads' sets per push, that was a tenth of
 * meshd's CPU in an endpoint change. */
static void version_of(const struct xds_resource **res, size_t n, char out[XDS_VERSION_CAP])
{
	uint64_t h = MESH_HASH_INIT;
	size_t i;

	for (i = 0; i < n; i++)
		h = mesh_hash_update(h, &res[i]->hash, sizeof(res[i]->hash));
	mesh_hash_hex(h, out);
}

/* Whether st's flavour is served whole from its key's set (ads.h,
 * whole_flavours): needs the stage's `want` callback. */
static int stream_whole_flavour(const struct xds_ads_stream *st)
{
	return st->ads->want && (st->ads->whole_flavours & (1u << st->flavour));
}

/* The snapshot the stream is served from (NULL: none yet): its key's set
 * for a whole-per-proxy flavour, else its flavour's. */
static const struct xds_snapshot *stream_snap(const struct xds_ads_stream *st)
{
	if (st->key && st->key->whole)
		return st->key->snap;
	return st->ads->snaps[st->flavour];
}

/* Whether type t of st is served from the stream's own Secrets (ads.h,
 * xds_secret_req): Secrets with a provider configured. */
static int stream_secret_own(const struct xds_ads_stream *st, enum xds_type t)
{
	return t == XDS_SECRET && st->ads->secret;
}

/* The snapshot type t of st is served from (NULL: none yet): the stream's
 * Secrets (empty before the provider answers), else stream_snap(). */
static const struct xds_snapshot *stream_type_snap(const struct xds_ads_stream *st, enum xds_type t)
{
	if (stream_secret_own(st, t))
		return st->secrets ? st->secrets : st->ads->no_secrets;
	return stream_snap(st);
}

/* Type t of st is served from its whole-per-proxy key's set. */
static int stream_type_whole(const struct xds_ads_stream *st, enum xds_type t)
{
	return st->key && st->key->whole && !stream_secret_own(st, t);
}

/* ------------------------------------------------------------------ */
/* encoding */

/* Resource r of type t as an Any (pointing into r's bytes). */
static void encode_any(Google__Protobuf__Any *a, enum xds_type t, const struct xds_resource *r)
{
	google__protobuf__any__init(a);
	a->type_url = (char *)xds_type_url(t);
	a->value.data = (uint8_t *)r->data; /* only read by the packer */
	a->value.len = r->len;
}

/* Serialise a (Delta)DiscoveryResponse into new malloc'd bytes (*out,
 * *len) under the gRPC message cap.  Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int MESH_MUST_CHECK encode_message(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *wire;

	if (n > UINT32_MAX)
		return -MESH_ETOOBIG;
	wire = malloc(n ? n : 1);
	if (!wire)
		return -ENOMEM;
	protobuf_c_message_pack(m, wire);
	*out = wire;
	*len = n;
	return 0;
}

/* Serialise a DiscoveryResponse carrying res[0..n) with p's version and
 * nonce into p->wire.  Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int MESH_MUST_CHECK encode_response(enum xds_type t, pending_resp *p, const struct xds_resource **res, size_t n)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse resp = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
	Envoy__Config__Core__V3__ControlPlane cp = ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
	Google__Protobuf__Any *anys = NULL, **ptrs = NULL;
	size_t i;
	int rc = 0;

	if (n) {
		anys = calloc(n, sizeof(*anys));
		ptrs = calloc(n, sizeof(*ptrs));
		if (!anys || !ptrs) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		encode_any(&anys[i], t, res[i]);
		ptrs[i] = &anys[i];
	}
	resp.version_info = p->version;
	resp.resources = ptrs;
	resp.n_resources = n;
	resp.type_url = (char *)xds_type_url(t);
	resp.nonce = p->nonce;
	cp.identifier = "meshd";
	resp.control_plane = &cp;
	rc = encode_message(&resp.base, &p->wire, &p->len);
out:
	free(ptrs);
	free(anys);
	return rc;
}

/* Serialise a DeltaDiscoveryResponse into p->wire.
 * Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int MESH_MUST_CHECK encode_delta_response(enum xds_type t, pending_resp *p, const struct xds_resource **res,
						 size_t n, const char **removed, size_t nremoved)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryResponse resp =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
	Envoy__Config__Core__V3__ControlPlane cp = ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
	Envoy__Service__Discovery__V3__Resource *rs = NULL, **ptrs = NULL;
	Google__Protobuf__Any *anys = NULL;
	char (*versions)[XDS_VERSION_CAP] = NULL;
	size_t i;
	int rc = 0;

	if (n) {
		rs = calloc(n, sizeof(*rs));
		ptrs = calloc(n, sizeof(*ptrs));
		anys = calloc(n, sizeof(*anys));
		versions = calloc(n, sizeof(*versions));
		if (!rs || !ptrs || !anys || !versions) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		envoy__service__discovery__v3__resource__init(&rs[i]);
		encode_any(&anys[i], t, res[i]);
		mesh_hash_hex(res[i]->hash, versions[i]);
		rs[i].name = (char *)res[i]->name;
		rs[i].version = versions[i];
		rs[i].resource = &anys[i];
		ptrs[i] = &rs[i];
	}
	resp.system_version_info = p->version;
	resp.resources = ptrs;
	resp.n_resources = n;
	resp.type_url = (char *)xds_type_url(t);
	resp.removed_resources = (char **)removed;
	resp.n_removed_resources = nremoved;
	resp.nonce = p->nonce;
	cp.identifier = "meshd";
	resp.control_plane = &cp;
	rc = encode_message(&resp.base, &p->wire, &p->len);
out:
	free(versions);
	free(anys);
	free(ptrs);
	free(rs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the bookkeeping SotW and Delta share */

/* Response p (version and nonce set) is the newest for ts: protocol
 * decisions (ACK, stale nonce, push) use it from now on. */
static void type_latest(type_state *ts, const pending_resp *p)
{
	ts->state = XDS_ADS__SYNC_STALE;
	if (ts->nacked && strcmp(ts->nacked_version, p->version) != 0)
		ts->nacked = 0;
	ts->have_latest = 1;
	mesh_str_copy(ts->latest_version, sizeof(ts->latest_version), p->version);
	mesh_str_copy(ts->latest_nonce, sizeof(ts->latest_nonce), p->nonce);
}

/* What the client holds (Delta) or was last sent (SotW) is p's resources
 * now: ts takes p's resource array and the references in it, and drops
 * those of what it held before. */
static void type_hold(type_state *ts, pending_resp *p)
{
	res_release(ts->sent_res, ts->sent_nres, ts->sent_list);
	ts->sent_res = p->res;
	ts->sent_nres = p->nres;
	ts->sent_list = p->list;
	p->res = NULL;
	p->nres = 0;
	p->list = NULL;
}

/* p goes to the transport: the syncz / config dump record of it. */
static void type_sent(type_state *ts, const pending_resp *p)
{
	ts->sent = 1;
	mesh_str_copy(ts->sent_version, sizeof(ts->sent_version), p->version);
	mesh_str_copy(ts->sent_nonce, sizeof(ts->sent_nonce), p->nonce);
}

enum ack_result {
	ACK_NONE,    /* no nonce: not an answer to a response */
	ACK_STALE,   /* answers an older response: ignored */
	ACK_ACKED,
	ACK_NACKED,
};

/*
 * The ACK or NACK in a request quoting nonce: only one quoting the latest
 * response counts (Envoy's protocol: an older nonce is stale).  A NACK
 * records the client's error and keeps that version from being pushed
 * again; an ACK records the version the client applied (acked, the
 * request's version_info for SotW, the response's for Delta).
 */
static enum ack_result type_ack(struct xds_ads_stream *st, enum xds_type t, const char *nonce, const char *acked,
				const Google__Rpc__Status *error, const char *client_version)
{
	type_state *ts = &st->types[t];
	const char *msg;

	if (!nonce[0])
		return ACK_NONE;
	if (!ts->have_latest || strcmp(nonce, ts->latest_nonce) != 0) {
		log_debug(SCOPE, "stream %llu (%s): stale %s%s nonce %.40s (latest %s)", (unsigned long long)st->id,
			  stream_who(st), st->delta ? "delta " : "", xds_type_short(t), nonce, ts->latest_nonce);
		return ACK_STALE;
	}
	if (!error) {
		mesh_str_copy(ts->acked_version, sizeof(ts->acked_version), acked);
		ts->state = XDS_ADS__SYNC_ACKED;
		free(ts->error);
		ts->error = NULL;
		return ACK_ACKED;
	}
	msg = error->message ? error->message : "";
	ts->nacked = 1;
	mesh_str_copy(ts->nacked_version, sizeof(ts->nacked_version), ts->latest_version);
	free(ts->error);
	ts->error = dup_capped(msg, XDS_MAX_ERROR_LEN, METRICS_LIMIT_XDS_ERROR_DETAIL);
	ts->state = XDS_ADS__SYNC_NACKED;
	metrics_xds_reject(t);
	/* SotW quotes the version the client kept; Delta has no such field,
	 * so the nonce NACKed is what identifies the response */
	log_warn(SCOPE, "stream %llu (%s): %s%s NACK of version %s (%s %.40s): %.1000s", (unsigned long long)st->id,
		 stream_who(st), st->delta ? "delta " : "", xds_type_short(t), ts->latest_version,
		 client_version ? "client has" : "nonce",
		 client_version ? (*client_version ? client_version : "nothing") : nonce, msg);
	return ACK_NACKED;
}

/* ------------------------------------------------------------------ */
/* streams: ending */

void xds_ads_stream_end(struct xds_ads_stream *st, enum xds_ads_status code, const char *msg)
{
	int t;

	if (!st || st->finishing || st->closed)
		return;
	st->finishing = 1;
	st->finish_code = code;
	st->finish_msg = dup_capped(msg, XDS_MAX_ERROR_LEN, METRICS_LIMIT_XDS_ERROR_DETAIL);
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		pending_clear(&st->types[t].pending);
}

int xds_ads_stream_finishing(const struct xds_ads_stream *st, enum xds_ads_status *code, const char **msg)
{
	if (!st->finishing)
		return 0;
	*code = st->finish_code;
	*msg = st->finish_msg ? st->finish_msg : "";
	return 1;
}

/* The stream's flavour has no generator in this meshd (nothing published
 * for it while another flavour has a snapshot): end it with a status that
 * says so, rather than serve it another flavour's config.  Returns 1 when
 * the stream was ended. */
static int stream_check_flavour(struct xds_ads_stream *st)
{
	const struct xds_ads *a = st->ads;
	char msg[1400];
	int f, any = 0;

	if (!st->have_node || st->finishing || st->closed || a->snaps[st->flavour] || stream_whole_flavour(st))
		return 0;
	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		any |= a->snaps[f] != NULL;
	if (!any)
		return 0; /* nothing published yet: wait for the first push */
	/* Sidecars are served when the stage builds their config (main.c);
	 * routers wait for a gateway generator. */
	snprintf(msg, sizeof(msg),
		 "meshd has no %s configuration generator yet: node %.1024s is served only %swith GENERATOR=grpc "
		 "(proxyless) metadata",
		 st->flavour == XDS_FLAVOUR_ROUTER ? "router (gateway)" : xds_flavour_name(st->flavour),
		 st->node_id ? st->node_id : "(none)",
		 a->want && (a->whole_flavours & (1u << XDS_FLAVOUR_SIDECAR)) ? "as a sidecar (node id sidecar~...) or " :
										   "");
	log_warn(SCOPE, "stream %llu from %s: %s", (unsigned long long)st->id, st->peer ? st->peer : "?", msg);
	xds_ads_stream_end(st, XDS_ADS_STATUS_UNIMPLEMENTED, msg);
	return 1;
}

/* ------------------------------------------------------------------ */
/* per-proxy resources */

static void labels_free(struct cfg_labels *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A deep copy of src into *dst.  Returns 0 or -ENOMEM (dst then empty). */
static int MESH_MUST_CHECK labels_copy(struct cfg_labels *dst, const struct cfg_labels *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	if (!src || src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (i = 0; i < src->n; i++) {
		dst->v[i].key = strdup(src->v[i].key);
		dst->v[i].value = strdup(src->v[i].value);
		dst->n++;
		if (!dst->v[i].key || !dst->v[i].value) {
			labels_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

void xds_proxy_req_free(struct xds_proxy_req *r)
{
	if (!r)
		return;
	free(r->key);
	free(r->ns);
	labels_free(r->labels);
	free(r->labels);
	free(r->name);
	free(r->service_account);
	free(r->ip);
	free(r->locality);
	free(r);
}

static int label_cmp(const void *a, const void *b)
{
	const struct cfg_kv *x = *(const struct cfg_kv *const *)a, *y = *(const struct cfg_kv *const *)b;

	return strcmp(x->key, y->key);
}

static int buf_part(struct mesh_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return mesh_buf_printf(b, "%zu:", n) < 0 || mesh_buf_append(b, s ? s : "", n) < 0 ? -ENOMEM : 0;
}

int xds_proxy_key(enum xds_flavour f, const char *ns, const struct cfg_labels *labels, char **out)
{
	return xds_proxy_key_node(f, ns, labels, NULL, NULL, out);
}

int xds_proxy_key_node(enum xds_flavour f, const char *ns, const struct cfg_labels *labels,
		       const char *service_account, const char *ip, char **out)
{
	const struct cfg_kv **v = NULL;
	struct mesh_buf b;
	size_t i, n = labels ? labels->n : 0;
	int rc = 0;

	*out = NULL;
	mesh_buf_init(&b, 64 * 1024);
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < n; i++)
			v[i] = &labels->v[i];
		qsort(v, n, sizeof(*v), label_cmp);
	}
	/* an absent namespace differs from an empty one */
	if (buf_part(&b, xds_flavour_name(f)) < 0 || mesh_buf_printf(&b, "%c", ns ? 'n' : '-') < 0 ||
	    buf_part(&b, ns) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (buf_part(&b, v[i]->key) < 0 || buf_part(&b, v[i]->value) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* marked parts after the labels (a letter is never a length prefix) */
	if ((service_account && (mesh_buf_puts(&b, "s") < 0 || buf_part(&b, service_account) < 0)) ||
	    (ip && (mesh_buf_puts(&b, "i") < 0 || buf_part(&b, ip) < 0))) {
		rc = -ENOMEM;
		goto out;
	}
	*out = strndup(b.data ? b.data : "", b.len);
	if (!*out)
		rc = -ENOMEM;
out:
	free(v);
	mesh_buf_cleanup(&b);
	return rc;
}

static struct xds_ads__key *key_find(const struct xds_ads *a, const char *key)
{
	struct xds_ads__key *k;

	for (k = a->keys; k; k = k->next)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

static void key_free(struct xds_ads__key *k)
{
	size_t i;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		for (i = 0; i < 2; i++)
			if (k->body[t][i])
				xds_resource_unref(k->body[t][i]);
		rlist_unref(k->sel[t].list);
		names_obj_unref(k->names[t]);
	}
	for (i = 0; i < k->nasked; i++)
		free(k->asked[i].name);
	free(k->asked);
	xds_snapshot_unref(k->snap);
	free(k->key);
	free(k);
}

/* A request of kind for st's key (a name for WANT) to the push stage. */
static int MESH_MUST_CHECK key_request(struct xds_ads_stream *st, enum xds_proxy_req_kind kind, enum xds_type t,
				       const char *name, uint64_t seq)
{
	struct xds_ads *a = st->ads;
	struct xds_proxy_req *r = calloc(1, sizeof(*r));
	int rc = -ENOMEM;

	if (!r)
		goto out;
	r->kind = kind;
	r->flavour = st->flavour;
	r->type = t;
	r->seq = seq;
	r->key = strdup(st->key->key);
	r->ns = st->node_ns ? strdup(st->node_ns) : NULL;
	r->name = name ? strdup(name) : NULL;
	r->labels = calloc(1, sizeof(*r->labels));
	r->service_account = st->node_sa ? strdup(st->node_sa) : NULL;
	r->ip = st->node_ip ? strdup(st->node_ip) : NULL;
	r->locality = st->node_locality ? strdup(st->node_locality) : NULL;
	r->tproxy = st->node_tproxy;
	if (!r->key || (st->node_ns && !r->ns) || (name && !r->name) || !r->labels ||
	    (st->node_sa && !r->service_account) || (st->node_ip && !r->ip) || (st->node_locality && !r->locality))
		goto out;
	if (labels_copy(r->labels, &st->node_labels) < 0)
		goto out;
	a->want(a->want_ctx, r);
	r = NULL;
	rc = 0;
out:
	xds_proxy_req_free(r);
	return rc;
}

/* The stream's key from its Node (streams with equal keys share it).  A
 * whole-per-proxy flavour's key also has the service account, and the IP
 * when the node has no labels (the generator then finds the workload by
 * IP); its first stream asks the stage for the whole set. */
static void stream_attach_key(struct xds_ads_stream *st)
{
	struct xds_ads *a = st->ads;
	struct xds_ads__key *k;
	char *key = NULL;
	int whole = stream_whole_flavour(st), fresh = 0;

	if (!a->want || st->key)
		return;
	if (xds_proxy_key_node(st->flavour, st->node_ns, &st->node_labels, whole ? st->node_sa : NULL,
			       whole && st->node_labels.n == 0 ? st->node_ip : NULL, &key) < 0)
		goto out; /* no per-proxy resources for it: logged below */
	/* the locality shapes a whole flavour's EDS (locality load balancing):
	 * a marked part after the others, so keys without one are unchanged */
	if (whole && st->node_locality) {
		size_t kl = strlen(key), ll = strlen(st->node_locality);
		char *k2 = malloc(kl + ll + 24);

		if (!k2)
			goto out;
		snprintf(k2, kl + ll + 24, "%sl%zu:%s", key, ll, st->node_locality);
		free(key);
		key = k2;
	}
	/* so is TPROXY interception (its listeners): a marked part too */
	if (whole && st->node_tproxy) {
		size_t kl = strlen(key);
		char *k2 = malloc(kl + 8);

		if (!k2)
			goto out;
		snprintf(k2, kl + 8, "%si6:TPROXY", key);
		free(key);
		key = k2;
	}
	k = key_find(a, key);
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			goto out;
		k->key = key;
		k->whole = whole;
		key = NULL;
		k->next = a->keys;
		a->keys = k;
		a->nkeys++;
		fresh = 1;
	}
	k->users++;
	st->key = k;
	if (fresh && whole) {
		uint64_t seq = ++a->req_seq;

		/* on failure the key has no set until the next push rebuilds
		 * every live key, which the stage only knows of through a
		 * request: say so */
		if (key_request(st, XDS_PROXY_WANT_ALL, XDS_LISTENER, NULL, seq) < 0)
			log_warn(SCOPE, "stream %llu (%s): out of memory: its configuration is not requested",
				 (unsigned long long)st->id, stream_who(st));
		else
			k->asked_seq = seq;
	}
out:
	if (!st->key)
		log_warn(SCOPE, "stream %llu (%s): out of memory: no per-proxy resources", (unsigned long long)st->id,
			 stream_who(st));
	free(key);
}

/* The stream lets go of its key; the last one tells the stage to drop it. */
static void stream_detach_key(struct xds_ads_stream *st)
{
	struct xds_ads *a = st->ads;
	struct xds_ads__key *k = st->key, **pp;

	if (!k)
		return;
	if (--k->users == 0) {
		if (key_request(st, XDS_PROXY_RELEASE, XDS_LISTENER, NULL, 0) < 0)
			log_warn(SCOPE, "out of memory: a per-proxy key stays cached until the next push");
		for (pp = &a->keys; *pp; pp = &(*pp)->next) {
			if (*pp == k) {
				*pp = k->next;
				a->nkeys--;
				break;
			}
		}
		key_free(k);
	}
	st->key = NULL;
}

static const struct xds_ads__asked *key_asked(const struct xds_ads__key *k, enum xds_type t, const char *name)
{
	size_t i;

	for (i = 0; i < k->nasked; i++)
		if (k->asked[i].type == t && strcmp(k->asked[i].name, name) == 0)
			return &k->asked[i];
	return NULL;
}

/* Ask the stage for name (type t) of st's key, once per key. */
static void key_ask(struct xds_ads_stream *st, enum xds_type t, const char *name)
{
	struct xds_ads__key *k = st->key;
	struct xds_ads__asked *v;
	uint64_t seq;

	if (key_asked(k, t, name))
		return;
	if (k->nasked >= XDS_MAX_PROXY_NAMES) {
		metrics_limit(METRICS_LIMIT_XDS_PROXY_NAMES);
		log_debug(SCOPE, "stream %llu (%s): more than %d per-proxy names; %.200s stays unknown",
			  (unsigned long long)st->id, stream_who(st), XDS_MAX_PROXY_NAMES, name);
		return;
	}
	if (k->nasked == k->capasked) {
		size_t cap = k->capasked ? k->capasked * 2 : 4;
		v = realloc(k->asked, cap * sizeof(*v));
		if (!v)
			return;
		k->asked = v;
		k->capasked = cap;
	}
	v = &k->asked[k->nasked];
	v->name = strdup(name);
	if (!v->name)
		return;
	seq = ++st->ads->req_seq;
	if (key_request(st, XDS_PROXY_WANT, t, name, seq) < 0) {
		free(v->name);
		return;
	}
	v->type = t;
	v->seq = seq;
	k->nasked++;
	k->asked_seq = seq;
}

/* Whether type t of st waits for the stage to answer a request. */
static int stream_waiting(const struct xds_ads_stream *st, enum xds_type t)
{
	const struct xds_ads__key *k = st->key;
	size_t i;

	if (stream_secret_own(st, t))
		return st->secret_asked > st->secret_answered;
	if (k && k->whole)
		return !k->snap;
	if (!k || k->answered >= k->asked_seq)
		return 0;
	for (i = 0; i < k->nasked; i++)
		if (k->asked[i].type == t && k->asked[i].seq > k->answered)
			return 1;
	return 0;
}

/* Take the key's current set as st->own, and ask the stage for every
 * subscribed name that neither the flavour's snapshot nor the set holds. */
static void stream_resolve(struct xds_ads_stream *st)
{
	const struct xds_snapshot *snap = stream_snap(st);
	struct xds_ads__key *k = st->key;
	size_t i;
	int t;

	if (!st->own_dirty || !k)
		return;
	st->own_dirty = 0;
	if (st->own != k->snap) {
		xds_snapshot_unref(st->own);
		st->own = k->snap ? xds_snapshot_ref(k->snap) : NULL;
	}
	if (k->whole)
		return; /* the set is everything there is: nothing to ask by name */
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const type_state *ts = &st->types[t];

		/* SotW wildcard ignores names; Delta keeps explicit ones beside it */
		if (!ts->subscribed || (ts->wildcard && !st->delta) || stream_secret_own(st, (enum xds_type)t))
			continue;
		for (i = 0; i < ts->nnames; i++) {
			const char *name = ts->names[i];

			if (snap && xds_snapshot_find(snap, (enum xds_type)t, name))
				continue;
			if (k->snap && xds_snapshot_find(k->snap, (enum xds_type)t, name))
				continue;
			key_ask(st, (enum xds_type)t, name);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Secrets: per stream, from the provider (ads.h, xds_secret_req) */

static int stream_enqueue(struct xds_ads_stream *st, enum xds_type t, const struct timespec *published);

/* Longest "authorization" value kept (a Kubernetes token is ~1 KiB; the
 * provider's own cap is lower). */
#define XDS_MAX_AUTHORIZATION_LEN 16384

void xds_secret_req_free(struct xds_secret_req *r)
{
	if (!r)
		return;
	names_free(r->names, r->nnames);
	free(r->authorization);
	free(r->peer_id);
	free(r->node_id);
	free(r->node_ns);
	free(r->node_sa);
	free(r);
}

/* A copy of s, or NULL for NULL; *oom set when the copy failed. */
static char *dup_or_null(const char *s, int *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

/* Hand the provider the stream's Secret names (they changed): the
 * responses of the type wait for its answer.  Out of memory ends the
 * stream (its Secrets could never come). */
static void stream_secret_ask(struct xds_ads_stream *st)
{
	struct xds_ads *a = st->ads;
	const type_state *ts = &st->types[XDS_SECRET];
	struct xds_secret_req *r = calloc(1, sizeof(*r));
	int oom = !r;
	size_t i;

	if (oom)
		goto out;
	r->stream = st->id;
	r->seq = ++a->req_seq;
	r->secure = st->secure;
	r->authorization = dup_or_null(st->authorization, &oom);
	r->peer_id = dup_or_null(st->peer_id, &oom);
	r->node_id = dup_or_null(st->node_id, &oom);
	r->node_ns = dup_or_null(st->node_ns, &oom);
	r->node_sa = dup_or_null(st->node_sa, &oom);
	if (ts->nnames && !(r->names = calloc(ts->nnames, sizeof(*r->names))))
		oom = 1;
	for (i = 0; !oom && i < ts->nnames; i++, r->nnames++)
		if (!(r->names[i] = strdup(ts->names[i])))
			oom = 1;
	if (oom)
		goto out;
	st->secret_asked = r->seq;
	a->secret(a->secret_ctx, r);
	r = NULL;
out:
	xds_secret_req_free(r);
	if (oom)
		xds_ads_stream_end(st, XDS_ADS_STATUS_INTERNAL, "out of memory");
}

/* The stream goes: the provider forgets it (stops rotating its
 * certificate).  Nothing to say when it never asked. */
static void stream_secret_release(struct xds_ads_stream *st)
{
	struct xds_secret_req *r;

	if (!st->ads->secret || !st->secret_asked)
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error(SCOPE, "stream %llu: out of memory telling the SDS provider it ended",
			  (unsigned long long)st->id);
		return;
	}
	r->release = 1;
	r->stream = st->id;
	st->ads->secret(st->ads->secret_ctx, r);
}

int xds_ads_stream_credentials(struct xds_ads_stream *st, int secure, const char *authorization, size_t len,
			       const char *peer_id)
{
	st->secure = secure;
	free(st->authorization);
	free(st->peer_id);
	st->authorization = NULL;
	st->peer_id = NULL;
	if (peer_id && !(st->peer_id = dup_capped(peer_id, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD)))
		return -ENOMEM;
	if (!authorization)
		return 0;
	if (len > XDS_MAX_AUTHORIZATION_LEN)
		len = XDS_MAX_AUTHORIZATION_LEN; /* the provider refuses it as a token */
	st->authorization = strndup(authorization, len);
	return st->authorization ? 0 : -ENOMEM;
}

void xds_ads_secrets_set(struct xds_ads *a, uint64_t stream, uint64_t seq, struct xds_snapshot *set,
			 enum xds_ads_status code, const char *msg)
{
	struct xds_ads_stream *st;

	/* Secret answers are rare (a stream's first request, a rotation at
	 * half a certificate's lifetime): a walk is cheap enough. */
	for (st = a->streams; st && st->id != stream; st = st->next)
		;
	if (!st || st->finishing || st->closed || seq < st->secret_asked) {
		xds_snapshot_unref(set);
		return;
	}
	if (code != XDS_ADS_STATUS_OK) {
		xds_snapshot_unref(set);
		log_warn(SCOPE, "stream %llu (%s): Secrets refused: %s", (unsigned long long)st->id, stream_who(st),
			 msg ? msg : "");
		xds_ads_stream_end(st, code, msg ? msg : "");
		goto out;
	}
	xds_snapshot_unref(st->secrets);
	st->secrets = set;
	st->secret_answered = seq;
	if (st->types[XDS_SECRET].subscribed)
		(void)stream_enqueue(st, XDS_SECRET, NULL); /* logged; the next answer tries again */
out:
	if (a->queued)
		a->queued(st->user);
}

/* ------------------------------------------------------------------ */
/* SotW */

/* The resources of snap that ts subscribes to, in name order, into a new
 * array (*out, may be NULL when *n is 0) holding a reference to each
 * (xds_resource_array_unref).  Returns 0 or -ENOMEM. */
static int MESH_MUST_CHECK select_resources(const type_state *ts, enum xds_type t, const struct xds_snapshot *snap,
					    const struct xds_snapshot *own, const struct xds_resource ***out,
					    size_t *n)
{
	const struct xds_resource_set *set = &snap->sets[t];
	const struct xds_resource **v = NULL;
	size_t i, k = 0, cap = ts->wildcard ? set->n : ts->nnames;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (cap == 0)
		goto out;
	v = calloc(cap, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	if (ts->wildcard) {
		for (i = 0; i < set->n; i++)
			v[k++] = xds_resource_ref(set->v[i]);
	} else {
		for (i = 0; i < ts->nnames; i++) {
			const struct xds_resource *r = xds_snapshot_find(snap, t, ts->names[i]);
			if (!r && own)
				r = xds_snapshot_find(own, t, ts->names[i]);
			if (r)
				v[k++] = xds_resource_ref(r);
		}
	}
	*out = v;
	*n = k;
out:
	return rc;
}

/*
 * The resources of p (the whole subscribed set, name order) that the
 * client was not last sent with the same hash, borrowed into a new array
 * (*out; may be NULL when *n is 0).  A push to a sidecar carries only
 * these for RDS and EDS: Envoy's state-of-the-world protocol lets a
 * response of those types leave out resources the client holds (only LDS
 * and CDS responses must be complete), as istiod's incremental EDS does.
 * With the whole mesh in every sidecar, an endpoint change then costs one
 * ClusterLoadAssignment per proxy, not all of them.  What the client holds
 * afterwards is still p's whole set (type_hold), so versions and the
 * config dump keep meaning the full set.  Returns 0 or -ENOMEM.
 */
static int MESH_MUST_CHECK sotw_changed(const type_state *ts, const pending_resp *p,
					const struct xds_resource ***out, size_t *n)
{
	const struct xds_resource **v;
	size_t i = 0, j = 0;

	*out = NULL;
	*n = 0;
	if (p->nres == 0 || (p->list && p->list == ts->sent_list))
		return 0;
	v = calloc(p->nres, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* both lists are sorted by name */
	while (i < p->nres) {
		int c;

		if (j < ts->sent_nres && p->res[i] == ts->sent_res[j]) {
			i++; /* the very object the client was sent */
			j++;
			continue;
		}
		c = j < ts->sent_nres ? strcmp(p->res[i]->name, ts->sent_res[j]->name) : -1;
		if (c < 0) {
			v[(*n)++] = p->res[i++];
		} else if (c > 0) {
			j++;
		} else {
			if (p->res[i]->hash != ts->sent_res[j]->hash)
				v[(*n)++] = p->res[i];
			i++;
			j++;
		}
	}
	*out = v;
	return 0;
}

/*
 * A whole key's response of type t carrying res[0..n) (a subset of p's
 * when partial) with p's version: the body (every field but the nonce) is
 * encoded once per key and content, and shared by the key's streams as
 * p->head (a reference); p->wire gets only the stream's nonce field.
 * Protobuf fields may come in any order, so body + nonce is the same
 * message.  2,000 replicas then hold one copy of a megabyte route config,
 * not 2,000.  Returns 0 or a negative code.
 */
static int MESH_MUST_CHECK key_body_tail(pending_resp *p);

/* The body named name (hash h) of type t that k or another whole key
 * built last (a new reference), or NULL. */
static const struct xds_resource *key_body_find(const struct xds_ads *a, const struct xds_ads__key *k,
						enum xds_type t, const char *name, uint64_t h)
{
	const struct xds_ads__key *o;
	int i;

	for (i = 0; i < 2; i++)
		if (k->body[t][i] && k->body_hash[t][i] == h && strcmp(k->body[t][i]->name, name) == 0)
			return xds_resource_ref(k->body[t][i]);
	/* Another key's body with the same name has the same bytes (the
	 * version names every resource and its hash): the workloads of one
	 * namespace mostly get the same clusters, assignments and routes, so
	 * 20 keys hold one copy of each, not 20. */
	for (o = a->keys; o; o = o->next)
		for (i = 0; o != k && o->whole && i < 2; i++)
			if (o->body[t][i] && o->body_hash[t][i] == h && strcmp(o->body[t][i]->name, name) == 0)
				return xds_resource_ref(o->body[t][i]);
	return NULL;
}

/* k keeps body r (hash h; takes a reference) as its newest of type t. */
static void key_body_put(struct xds_ads__key *k, enum xds_type t, const struct xds_resource *r, uint64_t h)
{
	if (k->body[t][1])
		xds_resource_unref(k->body[t][1]);
	k->body[t][1] = k->body[t][0];
	k->body_hash[t][1] = k->body_hash[t][0];
	k->body[t][0] = xds_resource_ref(r);
	k->body_hash[t][0] = h;
}

/* The end of key_body()/key_body_delta() once the body is encoded (rc
 * the encoder's result): the body becomes a shared resource named name,
 * kept in k's two-slot cache under h, and p's head.  body's wire is freed
 * either way. */
static int MESH_MUST_CHECK key_body_made(struct xds_ads__key *k, enum xds_type t, pending_resp *p, const char *name,
					 uint64_t h, pending_resp *body, int rc)
{
	struct xds_resource *made = NULL;

	if (rc == 0)
		rc = xds_resource_new(t, name, body->wire, body->len, &made);
	free(body->wire);
	if (rc < 0)
		return rc;
	key_body_put(k, t, made, h);
	p->head = made;
	return key_body_tail(p);
}

static int MESH_MUST_CHECK key_body(struct xds_ads *a, struct xds_ads__key *k, enum xds_type t, pending_resp *p,
				    const struct xds_resource **res, size_t n, int partial)
{
	char name[2 * XDS_VERSION_CAP + 2], sub[XDS_VERSION_CAP] = "full";
	pending_resp body = { 0 };
	uint64_t h;
	int rc = 0;

	if (partial)
		version_of(res, n, sub);
	snprintf(name, sizeof(name), "%s/%s", p->version, sub);
	h = mesh_hash_str(MESH_HASH_INIT, name);
	p->head = key_body_find(a, k, t, name, h);
	if (p->head)
		return key_body_tail(p);
	mesh_str_copy(body.version, sizeof(body.version), p->version);
	rc = encode_response(t, &body, res, n); /* empty nonce: not encoded (proto3) */
	return key_body_made(k, t, p, name, h, &body, rc);
}

/* A whole key's Delta response of type t: changed[0..nchanged) and
 * removed[0..nremoved), the diff from what the client holds (version
 * from) to p's version, as key_body: the body once per key and diff,
 * shared by the key's streams (replicas hold the same versions, so they
 * get the same diff), p->wire only the nonce.  Returns 0 or a negative
 * code. */
static int MESH_MUST_CHECK key_body_delta(struct xds_ads *a, struct xds_ads__key *k, enum xds_type t, pending_resp *p,
					  const char *from, const struct xds_resource **changed, size_t nchanged,
					  const char **removed, size_t nremoved)
{
	char name[2 * XDS_VERSION_CAP + 8];
	pending_resp body = { 0 };
	uint64_t h;
	int rc;

	snprintf(name, sizeof(name), "delta/%s/%s", from[0] ? from : "-", p->version);
	h = mesh_hash_str(MESH_HASH_INIT, name);
	p->head = key_body_find(a, k, t, name, h);
	if (p->head)
		return key_body_tail(p);
	mesh_str_copy(body.version, sizeof(body.version), p->version);
	rc = encode_delta_response(t, &body, changed, nchanged, removed, nremoved); /* empty nonce: not encoded */
	return key_body_made(k, t, p, name, h, &body, rc);
}

/* p->wire: field 5 (nonce) alone, after the shared body p->head. */
static int MESH_MUST_CHECK key_body_tail(pending_resp *p)
{
	size_t nl = strlen(p->nonce);

	/* field 5 (nonce), length-delimited; nonces are short hex */
	p->wire = malloc(nl + 2);
	if (!p->wire)
		return -ENOMEM;
	p->wire[0] = (5 << 3) | 2;
	p->wire[1] = (uint8_t)nl;
	memcpy(p->wire + 2, p->nonce, nl);
	p->len = nl + 2;
	return 0;
}

/*
 * p's resources and version for a stream of whole key k subscribed as ts:
 * the key's selection when the last one was made from the same set for
 * the same subscription (names compared by hash and count), else a new
 * one kept for the next stream.  Saves each of 2,000 replicas a lookup
 * and a hash over thousands of names.  Returns 0 or -ENOMEM.
 */
static int MESH_MUST_CHECK key_select(struct xds_ads__key *k, const type_state *ts, enum xds_type t, pending_resp *p)
{
	struct xds_ads__sel *s = &k->sel[t];
	int rc;

	if (!s->list || s->snap_gen != k->snap_gen || s->wildcard != ts->wildcard ||
	    (!ts->wildcard && (s->names_hash != ts->names_hash || s->nnames != ts->nnames))) {
		const struct xds_resource **v = NULL;
		struct xds_ads__rlist *l;
		size_t n = 0;

		rc = select_resources(ts, t, k->snap, k->snap, &v, &n);
		if (rc < 0)
			return rc;
		l = rlist_take(v, n);
		if (!l)
			return -ENOMEM;
		rlist_unref(s->list);
		s->snap_gen = k->snap_gen;
		s->wildcard = ts->wildcard;
		s->names_hash = ts->names_hash;
		s->nnames = ts->nnames;
		s->list = l;
		version_of(l->v, l->n, s->version);
	}
	/* the stream points at the key's list: no copy, no reference per resource */
	p->list = rlist_ref(s->list);
	p->res = s->list->v;
	p->nres = s->list->n;
	mesh_str_copy(p->version, sizeof(p->version), s->version);
	return 0;
}

/* Queue a response for type t, replacing any older one still waiting.
 * Delta only marks the type: its diff is built by xds_ads_stream_next.
 * Returns 0 or a negative code (logged). */
static int stream_enqueue(struct xds_ads_stream *st, enum xds_type t, const struct timespec *published)
{
	struct xds_ads *a = st->ads;
	type_state *ts = &st->types[t];
	pending_resp p = { 0 };
	const struct xds_resource **changed = NULL;
	size_t nchanged = 0;
	int rc = 0, record_tver = 0;

	if (st->delta) {
		if (!ts->pending.queued) {
			ts->pending.queued = 1;
			ts->pending.seq = ++a->seq_counter;
			clock_gettime(CLOCK_MONOTONIC, &ts->pending.enqueued);
			if (published)
				ts->pending.published = *published;
		}
		ts->need_send = 0;
		goto out;
	}
	stream_resolve(st);
	/* held until the stage answers: the response then carries the name */
	if (stream_waiting(st, t))
		goto out;
	/* A push to a sidecar whose key's set of this type did not change:
	 * nothing to do (the names did not change either, or need_send
	 * would be set), without selecting and hashing thousands of
	 * resources per stream. */
	if (stream_type_whole(st, t)) {
		if (!ts->need_send && ts->have_latest && ts->key_tver[0] && strcmp(ts->key_tver, st->key->tver[t]) == 0)
			goto out;
		record_tver = 1;
	}
	if (record_tver)
		rc = key_select(st->key, ts, t, &p);
	else {
		rc = select_resources(ts, t, stream_type_snap(st, t), stream_secret_own(st, t) ? NULL : st->own,
				      &p.res, &p.nres);
		if (rc == 0)
			version_of(p.res, p.nres, p.version);
	}
	if (rc < 0)
		goto out;
	if (!ts->need_send) {
		/* A push: only a version the client has not got nor refused. */
		if ((ts->have_latest && strcmp(p.version, ts->latest_version) == 0) ||
		    (ts->nacked && strcmp(p.version, ts->nacked_version) == 0)) {
			/* Nothing to send.  What was sent has the same names
			 * and hashes (the same version) as the current
			 * snapshot's resources: hold those objects instead, so
			 * that a copy a generator built afresh with the same
			 * bytes does not stay alive for this stream alone. */
			if (!ts->pending.queued && ts->sent && strcmp(p.version, ts->sent_version) == 0)
				type_hold(ts, &p);
			goto out;
		}
	}
	snprintf(p.nonce, sizeof(p.nonce), "%llx", (unsigned long long)++a->nonce_counter);
	if (!ts->need_send && stream_type_whole(st, t) && (t == XDS_ROUTE || t == XDS_ENDPOINT) && ts->sent) {
		rc = sotw_changed(ts, &p, &changed, &nchanged);
		if (rc == 0)
			rc = key_body(a, st->key, t, &p, changed, nchanged, 1);
	} else if (stream_type_whole(st, t)) {
		rc = key_body(a, st->key, t, &p, p.res, p.nres, 0);
	} else {
		rc = encode_response(t, &p, p.res, p.nres);
	}
	if (rc < 0)
		goto out;
	p.queued = 1;
	p.seq = ++a->seq_counter;
	if (published)
		p.published = *published;
	/* a newer response replacing a queued one keeps its place in time */
	if (ts->pending.queued)
		p.enqueued = ts->pending.enqueued;
	else
		clock_gettime(CLOCK_MONOTONIC, &p.enqueued);
	pending_clear(&ts->pending);
	ts->pending = p;
	memset(&p, 0, sizeof(p));
	ts->need_send = 0;
	type_latest(ts, &ts->pending);
out:
	if (rc < 0)
		log_error(SCOPE, "stream %llu: cannot build %s response: %s", (unsigned long long)st->id,
			  xds_type_short(t), mesh_strerror(rc));
	if (rc == 0 && record_tver)
		mesh_str_copy(ts->key_tver, sizeof(ts->key_tver), st->key->tver[t]);
	free(changed);
	pending_clear(&p);
	return rc;
}

/* Namespace and labels of the workload, for per-proxy resources: metadata
 * NAMESPACE (else the "POD.NS" part of an Istio node id) and LABELS; also
 * SERVICE_ACCOUNT and the node id's IP, for the sidecar generator. */
static void stream_record_workload(struct xds_ads_stream *st, const Envoy__Config__Core__V3__Node *node)
{
	const char *ns = struct_string(node->metadata, "NAMESPACE");
	const char *sa = struct_string(node->metadata, "SERVICE_ACCOUNT");
	const Google__Protobuf__Struct *labels = NULL;
	size_t i, n = 0;

	if (sa && sa[0])
		st->node_sa = dup_capped(sa, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
	if (st->node_id) {
		/* "TYPE~IP~..." */
		const char *p = strchr(st->node_id, '~');
		const char *q = p ? strchr(p + 1, '~') : NULL;
		if (q && q > p + 1)
			st->node_ip = strndup(p + 1, (size_t)(q - p - 1));
	}
	if (node->locality && (node->locality->region[0] || node->locality->zone[0] || node->locality->sub_zone[0])) {
		/* Istio's LocalityToString: "region[/zone[/subzone]]" */
		const Envoy__Config__Core__V3__Locality *l = node->locality;
		char buf[3 * XDS_MAX_NODE_FIELD_LEN + 3];

		if (!l->zone[0])
			snprintf(buf, sizeof(buf), "%.*s", XDS_MAX_NODE_FIELD_LEN, l->region);
		else if (!l->sub_zone[0])
			snprintf(buf, sizeof(buf), "%.*s/%.*s", XDS_MAX_NODE_FIELD_LEN, l->region, XDS_MAX_NODE_FIELD_LEN,
				 l->zone);
		else
			snprintf(buf, sizeof(buf), "%.*s/%.*s/%.*s", XDS_MAX_NODE_FIELD_LEN, l->region,
				 XDS_MAX_NODE_FIELD_LEN, l->zone, XDS_MAX_NODE_FIELD_LEN, l->sub_zone);
		st->node_locality = strdup(buf);
	}
	/* Istio's node.GetInterceptionMode(): what the injector's
	 * ISTIO_META_INTERCEPTION_MODE says; TPROXY changes the sidecar's
	 * virtual listeners (transparent, original_src) */
	{
		const char *im = struct_string(node->metadata, "INTERCEPTION_MODE");

		st->node_tproxy = im && strcmp(im, "TPROXY") == 0;
	}
	if (!ns && st->node_id) {
		/* "sidecar~IP~POD.NS~NS.svc.cluster.local" */
		const char *p = strchr(st->node_id, '~');
		const char *q = p ? strchr(p + 1, '~') : NULL;
		const char *dot = q ? strchr(q + 1, '.') : NULL;
		const char *end = dot ? strchr(dot + 1, '~') : NULL;
		if (end && end > dot + 1)
			st->node_ns = strndup(dot + 1, (size_t)(end - dot - 1));
	} else if (ns && ns[0]) {
		st->node_ns = dup_capped(ns, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
	}
	for (i = 0; node->metadata && i < node->metadata->n_fields; i++) {
		Google__Protobuf__Struct__FieldsEntry *e = node->metadata->fields[i];
		if (e && e->key && strcmp(e->key, "LABELS") == 0 && e->value &&
		    e->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE)
			labels = e->value->struct_value;
	}
	if (!labels || labels->n_fields == 0)
		return;
	st->node_labels.v = calloc(labels->n_fields < XDS_MAX_NODE_LABELS ? labels->n_fields : XDS_MAX_NODE_LABELS,
				   sizeof(*st->node_labels.v));
	if (!st->node_labels.v)
		return;
	if (labels->n_fields > XDS_MAX_NODE_LABELS)
		metrics_limit(METRICS_LIMIT_XDS_NODE_LABELS); /* the rest are ignored */
	for (i = 0; i < labels->n_fields && n < XDS_MAX_NODE_LABELS; i++) {
		Google__Protobuf__Struct__FieldsEntry *e = labels->fields[i];
		if (!e || !e->key || !e->value || e->value->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
			continue;
		st->node_labels.v[n].key = dup_capped(e->key, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
		st->node_labels.v[n].value = dup_capped(e->value->string_value, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
		if (!st->node_labels.v[n].key || !st->node_labels.v[n].value) {
			free(st->node_labels.v[n].key);
			free(st->node_labels.v[n].value);
			break;
		}
		n++;
	}
	st->node_labels.n = n;
}

/* The first request's Node (NULL when it carried none): identity and
 * flavour.  Returns 1 when the stream was ended for want of its flavour's
 * generator. */
static int stream_record_node(struct xds_ads_stream *st, const Envoy__Config__Core__V3__Node *node)
{
	char ua[2 * XDS_MAX_NODE_FIELD_LEN + 2];

	st->have_node = 1;
	st->flavour = xds_flavour_of_node(node);
	if (node) {
		st->node_id = dup_capped(node->id, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
		st->node_cluster = dup_capped(node->cluster, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
		if (node->user_agent_version_type_case ==
		    ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION)
			snprintf(ua, sizeof(ua), "%.1024s %.1024s", node->user_agent_name ? node->user_agent_name : "",
				 node->user_agent_version ? node->user_agent_version : "");
		else
			snprintf(ua, sizeof(ua), "%.1024s", node->user_agent_name ? node->user_agent_name : "");
		st->user_agent = dup_capped(ua, sizeof(ua), METRICS_LIMIT_XDS_NODE_FIELD);
		stream_record_workload(st, node);
	}
	stream_attach_key(st);
	log_info(SCOPE, "stream %llu: proxy %s (%s, %s) from %s", (unsigned long long)st->id,
		 st->node_id ? st->node_id : "", xds_flavour_name(st->flavour), st->user_agent ? st->user_agent : "",
		 st->peer ? st->peer : "?");
	return stream_check_flavour(st);
}

void xds_ads_stream_request(struct xds_ads_stream *st, const Envoy__Service__Discovery__V3__DiscoveryRequest *req)
{
	const char *nonce = req->response_nonce ? req->response_nonce : "";
	type_state *ts;
	struct xds_ads__names *obj;
	char **names = NULL;
	size_t nnames = 0;
	int t, rc, changed, wildcard, alloced = 0;
	enum xds_type xt;

	if (st->finishing || st->closed)
		goto out;
	if (!st->have_node && stream_record_node(st, req->node))
		goto out;
	t = xds_type_from_url(req->type_url);
	if (t < 0) {
		log_info(SCOPE, "stream %llu (%s): ignoring request for unknown type \"%.200s\"", (unsigned long long)st->id,
			 stream_who(st), req->type_url ? req->type_url : "");
		goto out;
	}
	xt = (enum xds_type)t;
	ts = &st->types[t];
	/* a stale nonce ignores the whole request, names included */
	if (ts->subscribed && type_ack(st, xt, nonce, req->version_info, req->error_detail, req->version_info) ==
				      ACK_STALE)
		goto out;
	/* An ACK repeating the names the stream has, in the order we keep
	 * them (Envoy sends them sorted): one compare per name, no sort, no
	 * copy, no hash (FNV-1a byte by byte cost more than the compares);
	 * 2,000 sidecars ACK ~1,000 EDS names each per push. */
	if (ts->subscribed && nonce[0] && !ts->wildcard && ts->nnames > 0 &&
	    names_equal(req->resource_names, req->n_resource_names, ts->names, ts->nnames))
		goto out;
	rc = names_sorted(req->resource_names, req->n_resource_names, &names, &nnames, &alloced);
	if (rc < 0) {
		xds_ads_stream_end(st, rc == -MESH_ETOOBIG ? XDS_ADS_STATUS_RESOURCE_EXHAUSTED : XDS_ADS_STATUS_INTERNAL,
				   rc == -MESH_ETOOBIG ? "too many or too long resource names" : "out of memory");
		goto out;
	}
	wildcard = type_allows_wildcard(xt) && (nnames == 0 || (nnames == 1 && strcmp(names[0], "*") == 0));
	changed = !ts->subscribed || (nonce[0] == '\0') || wildcard != ts->wildcard ||
		  (!wildcard && !names_equal(names, nnames, ts->names, ts->nnames));
	if (!changed)
		goto out;
	obj = names_share(st->key, xt, names, nnames);
	if (!obj) {
		xds_ads_stream_end(st, XDS_ADS_STATUS_INTERNAL, "out of memory");
		goto out;
	}
	type_names_drop(ts);
	ts->names_obj = obj;
	ts->names = obj->v;
	ts->nnames = obj->n;
	ts->names_hash = obj->hash;
	ts->wildcard = wildcard;
	ts->subscribed = 1;
	ts->need_send = 1;
	st->own_dirty = 1;
	if (stream_secret_own(st, xt))
		stream_secret_ask(st);
	if (stream_type_snap(st, xt))
		(void)stream_enqueue(st, xt, NULL); /* logged; the next publish tries again */
out:
	if (alloced)
		free(names);
}

/* ------------------------------------------------------------------ */
/* Delta xDS (see the top of the file) */

/* One resource the client holds, for the diff. */
struct delta_have {
	const char *name;
	uint64_t hash;
	int valid;
};

static int res_name_cmp(const void *a, const void *b)
{
	const struct xds_resource *x = *(const struct xds_resource *const *)a;
	const struct xds_resource *y = *(const struct xds_resource *const *)b;

	return strcmp(x->name, y->name);
}

static int names_has(char **v, size_t n, const char *name)
{
	return n && bsearch(&name, v, n, sizeof(*v), name_cmp) != NULL;
}

/* Our versions are 16 lowercase hex digits; anything else never matches. */
static int MESH_MUST_CHECK version_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!s || strlen(s) != 16)
		return -EINVAL;
	for (i = 0; i < 16; i++) {
		int c = (unsigned char)s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -EINVAL;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* What the client should hold of type t: every resource of the flavour's
 * snapshot under the wildcard, plus the explicit names found in it or in
 * the per-proxy snapshot; sorted by name, unique, a reference to each
 * (xds_resource_array_unref).  Returns 0 or -ENOMEM. */
static int MESH_MUST_CHECK delta_select(const struct xds_ads_stream *st, enum xds_type t,
					const struct xds_resource ***out, size_t *n)
{
	const struct xds_snapshot *snap = stream_type_snap(st, t);
	const struct xds_snapshot *own = stream_secret_own(st, t) ? NULL : st->own;
	const type_state *ts = &st->types[t];
	const struct xds_resource_set *set = &snap->sets[t];
	const struct xds_resource **v = NULL;
	size_t i, k = 0, w = 0, cap = (ts->wildcard ? set->n : 0) + ts->nnames;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (cap == 0)
		goto out;
	v = calloc(cap, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	if (ts->wildcard)
		for (i = 0; i < set->n; i++)
			v[k++] = set->v[i];
	for (i = 0; i < ts->nnames; i++) {
		const struct xds_resource *r = xds_snapshot_find(snap, t, ts->names[i]);
		if (!r && own)
			r = xds_snapshot_find(own, t, ts->names[i]);
		if (r)
			v[k++] = r;
	}
	/* the set and the names are each sorted already: most selections
	 * (wildcard alone, or names alone) need no sort */
	for (i = 1; i < k && strcmp(v[i - 1]->name, v[i]->name) < 0; i++)
		;
	if (i < k) {
		qsort(v, k, sizeof(*v), res_name_cmp);
		for (i = 0; i < k; i++)
			if (w == 0 || strcmp(v[w - 1]->name, v[i]->name) != 0)
				v[w++] = v[i];
	} else {
		w = k;
	}
	for (i = 0; i < w; i++)
		(void)xds_resource_ref(v[i]);
	*out = v;
	*n = w;
out:
	return rc;
}

/* What the client holds: its initial versions before the first diff,
 * else what was sent (sorted by name).  Returns 0 or -ENOMEM. */
static int MESH_MUST_CHECK delta_held(const type_state *ts, struct delta_have **out, size_t *n)
{
	size_t i, k = ts->have_init ? ts->ninit : ts->sent_nres;
	struct delta_have *v = NULL;

	*out = NULL;
	*n = 0;
	if (k == 0)
		return 0;
	v = calloc(k, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < k; i++) {
		if (ts->have_init) {
			v[i].name = ts->init[i].name;
			v[i].hash = ts->init[i].hash;
			v[i].valid = ts->init[i].valid;
		} else {
			v[i].name = ts->sent_res[i]->name;
			v[i].hash = ts->sent_res[i]->hash;
			v[i].valid = 1;
		}
	}
	*out = v;
	*n = k;
	return 0;
}

/*
 * delta_build for a stream of a whole key (a sidecar) that holds what it
 * was sent (no initial versions pending): the key's shared selection
 * (key_select, no reference per resource), a diff that skips strcmp for
 * the very objects held, and a body shared by the replicas
 * (key_body_delta).  What SotW sidecars had; without it a Delta push
 * cost every sidecar a selection, a sort and an encoding of its own.
 * Returns 0 or a negative code.
 */
static int MESH_MUST_CHECK delta_build_key(struct xds_ads_stream *st, enum xds_type t, pending_resp *p)
{
	struct xds_ads *a = st->ads;
	type_state *ts = &st->types[t];
	const struct xds_resource **changed = NULL;
	const char **removed = NULL;
	size_t nchanged = 0, nremoved = 0, i = 0, j = 0;
	char from[XDS_VERSION_CAP];
	int rc;

	/* the diff's name: the versions it goes from and to; what the client
	 * holds is named by its version unless it was trimmed ("?") */
	if (strcmp(ts->delta_held, "?") == 0)
		version_of(ts->sent_res, ts->sent_nres, from);
	else
		mesh_str_copy(from, sizeof(from), ts->delta_held);
	rc = key_select(st->key, ts, t, p);
	if (rc < 0)
		goto out;
	if (!(p->list && p->list == ts->sent_list) && strcmp(from, p->version) != 0) {
		/* A replica already went from the same version to this one:
		 * the diff (a function of the two versions, which name every
		 * resource and its hash) is its body, so the merge of two lists
		 * of thousands is not made again for each of 2,000 streams.
		 * Different versions always differ in something to send. */
		char name[2 * XDS_VERSION_CAP + 8];

		snprintf(name, sizeof(name), "delta/%s/%s", from[0] ? from : "-", p->version);
		p->head = key_body_find(a, st->key, t, name, mesh_hash_str(MESH_HASH_INIT, name));
		if (p->head) {
			snprintf(p->nonce, sizeof(p->nonce), "%llx", (unsigned long long)++a->nonce_counter);
			rc = key_body_tail(p);
			if (rc < 0)
				goto out;
			type_hold(ts, p);
			mesh_str_copy(ts->delta_held, sizeof(ts->delta_held), p->version);
			goto out;
		}
	}
	if (!(p->list && p->list == ts->sent_list)) {
		changed = calloc(p->nres + 1, sizeof(*changed));
		removed = calloc(ts->sent_nres + 1, sizeof(*removed));
		if (!changed || !removed) {
			rc = -ENOMEM;
			goto out;
		}
		/* merge two name-sorted lists */
		while (i < p->nres || j < ts->sent_nres) {
			int c;

			if (i < p->nres && j < ts->sent_nres && p->res[i] == ts->sent_res[j]) {
				i++; /* the very object the client holds */
				j++;
				continue;
			}
			c = i >= p->nres ? 1 : j >= ts->sent_nres ? -1 : strcmp(p->res[i]->name, ts->sent_res[j]->name);
			if (c < 0) {
				changed[nchanged++] = p->res[i++];
			} else if (c > 0) {
				removed[nremoved++] = ts->sent_res[j++]->name;
			} else {
				if (p->res[i]->hash != ts->sent_res[j]->hash)
					changed[nchanged++] = p->res[i];
				i++;
				j++;
			}
		}
	}
	if (nchanged || nremoved || !ts->have_latest) {
		snprintf(p->nonce, sizeof(p->nonce), "%llx", (unsigned long long)++a->nonce_counter);
		rc = key_body_delta(a, st->key, t, p, from, changed, nchanged, removed, nremoved);
		if (rc < 0)
			goto out;
	}
	/* the client holds p's list from now on (removed names were encoded above) */
	type_hold(ts, p);
	mesh_str_copy(ts->delta_held, sizeof(ts->delta_held), p->version);
out:
	free(changed);
	free(removed);
	return rc;
}

/* Build the Delta response for type t into p (p->wire stays NULL when the
 * client holds everything already and has had a first response), and
 * take what the client now holds as sent.  Returns 0 or a negative code. */
static int MESH_MUST_CHECK delta_build(struct xds_ads_stream *st, enum xds_type t, pending_resp *p)
{
	struct xds_ads *a = st->ads;
	type_state *ts = &st->types[t];
	const struct xds_resource **want = NULL, **changed = NULL;
	const char **removed = NULL;
	struct delta_have *held = NULL;
	size_t nwant = 0, nheld = 0, nchanged = 0, nremoved = 0, i = 0, j = 0;
	int rc = 0;

	if (!stream_type_snap(st, t))
		goto out;
	stream_resolve(st);
	if (stream_waiting(st, t))
		goto out; /* nothing yet: the key's set re-queues it */
	/* A sidecar whose key's set of this type is the one it was last
	 * diffed against, with the same subscription: nothing changed for
	 * it (as stream_enqueue's shortcut for SotW).  Without this, every
	 * push diffed every type of 2,000 sidecars, ~6,000 resources each. */
	if (stream_type_whole(st, t) && !ts->delta_dirty && ts->have_latest && !ts->have_init && ts->key_tver[0] &&
	    strcmp(ts->key_tver, st->key->tver[t]) == 0)
		goto out;
	/* (a first request claiming nothing held is as good as no claim) */
	if (stream_type_whole(st, t) && (!ts->have_init || ts->ninit == 0) && st->key->snap) {
		rc = delta_build_key(st, t, p);
		if (rc < 0)
			goto out;
		goto built;
	}
	rc = delta_select(st, t, &want, &nwant);
	if (rc < 0)
		goto out;
	rc = delta_held(ts, &held, &nheld);
	if (rc < 0)
		goto out;
	changed = calloc(nwant + 1, sizeof(*changed));
	removed = calloc(nheld + 1, sizeof(*removed));
	if (!changed || !removed) {
		rc = -ENOMEM;
		goto out;
	}
	/* merge two name-sorted lists */
	while (i < nwant || j < nheld) {
		int c = i >= nwant ? 1 : j >= nheld ? -1 : strcmp(want[i]->name, held[j].name);
		if (c < 0) {
			changed[nchanged++] = want[i++];
		} else if (c > 0) {
			removed[nremoved++] = held[j++].name;
		} else {
			if (!held[j].valid || held[j].hash != want[i]->hash)
				changed[nchanged++] = want[i];
			i++;
			j++;
		}
	}
	version_of(want, nwant, p->version);
	if (nchanged || nremoved || !ts->have_latest) {
		snprintf(p->nonce, sizeof(p->nonce), "%llx", (unsigned long long)++a->nonce_counter);
		rc = encode_delta_response(t, p, changed, nchanged, removed, nremoved);
		if (rc < 0)
			goto out;
	}
	/* the client holds want from now on (removed names were encoded above) */
	res_release(p->res, p->nres, p->list);
	p->list = NULL;
	p->res = want;
	p->nres = nwant;
	want = NULL;
	type_hold(ts, p);
	/* held, but not as a key's list: the next diff is not key_body_delta's */
	mesh_str_copy(ts->delta_held, sizeof(ts->delta_held), "?");
built:
	delta_init_clear(ts);
	ts->delta_dirty = 0;
	if (stream_type_whole(st, t))
		mesh_str_copy(ts->key_tver, sizeof(ts->key_tver), st->key->tver[t]);
	if (!p->wire)
		goto out;
	log_debug(SCOPE, "stream %llu (%s): delta %s: %zu changed, %zu removed, %zu held", (unsigned long long)st->id,
		  stream_who(st), xds_type_short(t), nchanged, nremoved, ts->sent_nres);
	type_latest(ts, p);
out:
	if (rc < 0)
		log_error(SCOPE, "stream %llu: cannot build delta %s response: %s", (unsigned long long)st->id,
			  xds_type_short(t), mesh_strerror(rc));
	xds_resource_array_unref(want, nwant);
	free(held);
	free(changed);
	free(removed);
	return rc;
}

/* Every name of the request is within the caps.  Returns 0 or -MESH_ETOOBIG. */
static int MESH_MUST_CHECK delta_check_caps__(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
{
	size_t i;

	if (req->n_resource_names_subscribe > XDS_MAX_SUBSCRIBED_NAMES ||
	    req->n_resource_names_unsubscribe > XDS_MAX_SUBSCRIBED_NAMES ||
	    req->n_initial_resource_versions > XDS_MAX_SUBSCRIBED_NAMES)
		return -MESH_ETOOBIG;
	for (i = 0; i < req->n_resource_names_subscribe; i++)
		if (strlen(req->resource_names_subscribe[i]) > XDS_MAX_NAME_LEN)
			return -MESH_ETOOBIG;
	for (i = 0; i < req->n_resource_names_unsubscribe; i++)
		if (strlen(req->resource_names_unsubscribe[i]) > XDS_MAX_NAME_LEN)
			return -MESH_ETOOBIG;
	for (i = 0; i < req->n_initial_resource_versions; i++)
		if (!req->initial_resource_versions[i]->key ||
		    strlen(req->initial_resource_versions[i]->key) > XDS_MAX_NAME_LEN)
			return -MESH_ETOOBIG;
	return 0;
}

static int MESH_MUST_CHECK delta_check_caps(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
{
	int rc = delta_check_caps__(req);

	if (rc == -MESH_ETOOBIG)
		metrics_limit(METRICS_LIMIT_XDS_SUBSCRIBED_NAMES);
	return rc;
}

static int init_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xds_ads__init *)a)->name, ((const struct xds_ads__init *)b)->name);
}

/* Take the client's initial_resource_versions (sorted, unique) as what it
 * holds until the first diff.  Returns 0 or -ENOMEM. */
static int MESH_MUST_CHECK delta_init_set(
	type_state *ts, Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry **e, size_t n)
{
	size_t i, w = 0;
	int rc = 0;

	delta_init_clear(ts);
	ts->have_init = 1;
	if (n == 0)
		goto out;
	ts->init = calloc(n, sizeof(*ts->init));
	if (!ts->init) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct xds_ads__init *d = &ts->init[ts->ninit];
		d->name = strdup(e[i]->key);
		if (!d->name) {
			rc = -ENOMEM;
			goto out;
		}
		d->valid = version_parse(e[i]->value, &d->hash) == 0;
		ts->ninit++;
	}
	qsort(ts->init, ts->ninit, sizeof(*ts->init), init_name_cmp);
	for (i = 0; i < ts->ninit; i++) {
		if (w > 0 && strcmp(ts->init[w - 1].name, ts->init[i].name) == 0) {
			free(ts->init[i].name);
			continue;
		}
		ts->init[w++] = ts->init[i];
	}
	ts->ninit = w;
out:
	return rc;
}

/* The explicit names of st's type t after subscribing sub and
 * unsubscribing unsub ("*" entries are the wildcard's, handled by the
 * caller), as a counted list the stream's key shares (names_share): 2,000
 * sidecars subscribed to ~1,000 EDS names each held a copy of their own,
 * ~290 MB.  Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int MESH_MUST_CHECK delta_names_update(struct xds_ads_stream *st, enum xds_type t, char **sub, size_t nsub,
					      const char **rm, size_t nrm)
{
	type_state *ts = &st->types[t];
	struct xds_ads__names *obj;
	const char **all = NULL;
	size_t i, n = 0, w = 0;
	int rc = 0;

	if (nsub == 0 && nrm == 0)
		goto out;
	all = calloc(ts->nnames + nsub + 1, sizeof(*all));
	if (!all) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < ts->nnames; i++)
		if (!(nrm && bsearch(&ts->names[i], rm, nrm, sizeof(*rm), name_cmp)))
			all[n++] = ts->names[i];
	for (i = 0; i < nsub; i++)
		if (strcmp(sub[i], "*") != 0 && !(nrm && bsearch(&sub[i], rm, nrm, sizeof(*rm), name_cmp)))
			all[n++] = sub[i];
	qsort(all, n, sizeof(*all), name_cmp);
	for (i = 0; i < n; i++)
		if (w == 0 || strcmp(all[w - 1], all[i]) != 0)
			all[w++] = all[i];
	if (w > XDS_MAX_SUBSCRIBED_NAMES) {
		metrics_limit(METRICS_LIMIT_XDS_SUBSCRIBED_NAMES);
		rc = -MESH_ETOOBIG;
		goto out;
	}
	obj = names_share(st->key, t, (char **)all, w);
	if (!obj) {
		rc = -ENOMEM;
		goto out;
	}
	type_names_drop(ts);
	ts->names_obj = obj;
	ts->names = obj->v;
	ts->nnames = obj->n;
	ts->names_hash = obj->hash; /* for key_select */
out:
	free(all);
	return rc;
}

/* Whether the client dropped name itself: it unsubscribed it (and the
 * wildcard does not bring it), or it left the wildcard and never named it. */
static int delta_dropped(const type_state *ts, const struct xds_snapshot *snap, enum xds_type t,
			 const char **rm, size_t nrm, int left_wildcard, const char *name)
{
	if (nrm && bsearch(&name, rm, nrm, sizeof(*rm), name_cmp) &&
	    !(ts->wildcard && snap && xds_snapshot_find(snap, t, name)))
		return 1;
	return left_wildcard && !names_has(ts->names, ts->nnames, name);
}

/* Forget, without a removal, what the client dropped itself. */
static void delta_forget(struct xds_ads_stream *st, enum xds_type t, const char **rm, size_t nrm, int left_wildcard)
{
	const struct xds_snapshot *snap = stream_type_snap(st, t);
	type_state *ts = &st->types[t];
	size_t i, w = 0;

	if (ts->have_init) {
		for (i = 0; i < ts->ninit; i++) {
			if (delta_dropped(ts, snap, t, rm, nrm, left_wildcard, ts->init[i].name)) {
				free(ts->init[i].name);
				continue;
			}
			ts->init[w++] = ts->init[i];
		}
		ts->ninit = w;
		return;
	}
	if (ts->sent_list) {
		/* a shared list (SotW only, so far): take a copy of our own */
		const struct xds_resource **v = ts->sent_nres ? malloc(ts->sent_nres * sizeof(*v)) : NULL;

		if (ts->sent_nres && !v)
			return; /* no memory: the client is thought to hold more */
		for (i = 0; i < ts->sent_nres; i++)
			v[i] = xds_resource_ref(ts->sent_res[i]);
		rlist_unref(ts->sent_list);
		ts->sent_list = NULL;
		ts->sent_res = v;
	}
	for (i = 0; i < ts->sent_nres; i++) {
		if (delta_dropped(ts, snap, t, rm, nrm, left_wildcard, ts->sent_res[i]->name)) {
			xds_resource_unref(ts->sent_res[i]);
			continue;
		}
		ts->sent_res[w++] = ts->sent_res[i];
	}
	if (w != ts->sent_nres)
		mesh_str_copy(ts->delta_held, sizeof(ts->delta_held), "?"); /* no longer a version's set */
	ts->sent_nres = w;
}

void xds_ads_stream_delta_request(struct xds_ads_stream *st,
				  const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
{
	const char *nonce = req->response_nonce ? req->response_nonce : "";
	const char **rm = NULL;
	type_state *ts;
	size_t i, nrm = 0;
	int t, rc, first, had_wildcard;
	enum xds_type xt;

	if (st->finishing || st->closed)
		goto out;
	if (!st->have_node && stream_record_node(st, req->node))
		goto out;
	t = xds_type_from_url(req->type_url);
	if (t < 0) {
		log_info(SCOPE, "stream %llu (%s): ignoring delta request for unknown type \"%.200s\"",
			 (unsigned long long)st->id, stream_who(st), req->type_url ? req->type_url : "");
		goto out;
	}
	xt = (enum xds_type)t;
	ts = &st->types[t];
	rc = delta_check_caps(req);
	if (rc < 0) {
		xds_ads_stream_end(st, XDS_ADS_STATUS_RESOURCE_EXHAUSTED, "too many or too long resource names");
		goto out;
	}

	/* ACK or NACK of the latest response; an older nonce only subscribes */
	(void)type_ack(st, xt, nonce, ts->latest_version, req->error_detail, NULL);

	first = !ts->subscribed;
	if (first) {
		ts->subscribed = 1;
		/* the legacy wildcard: a first request naming nothing, LDS/CDS only */
		ts->wildcard = req->n_resource_names_subscribe == 0 && type_allows_wildcard(xt);
		rc = delta_init_set(ts, req->initial_resource_versions, req->n_initial_resource_versions);
		if (rc < 0)
			goto fail;
	}
	if (!first && req->n_resource_names_subscribe == 0 && req->n_resource_names_unsubscribe == 0)
		goto out;
	had_wildcard = ts->wildcard;
	for (i = 0; i < req->n_resource_names_subscribe; i++)
		if (strcmp(req->resource_names_subscribe[i], "*") == 0)
			ts->wildcard = 1;
	if (req->n_resource_names_unsubscribe) {
		rm = calloc(req->n_resource_names_unsubscribe, sizeof(*rm));
		if (!rm) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (i = 0; i < req->n_resource_names_unsubscribe; i++) {
		if (strcmp(req->resource_names_unsubscribe[i], "*") == 0)
			ts->wildcard = 0;
		else
			rm[nrm++] = req->resource_names_unsubscribe[i];
	}
	if (nrm)
		qsort(rm, nrm, sizeof(*rm), name_cmp);
	rc = delta_names_update(st, xt, req->resource_names_subscribe, req->n_resource_names_subscribe, rm, nrm);
	if (rc < 0)
		goto fail;
	delta_forget(st, xt, rm, nrm, had_wildcard && !ts->wildcard);
	ts->delta_dirty = 1;
	st->own_dirty = 1;
	if (stream_secret_own(st, xt))
		stream_secret_ask(st);
	if (stream_type_snap(st, xt))
		(void)stream_enqueue(st, xt, NULL); /* Delta: cannot fail */
	goto out;
fail:
	xds_ads_stream_end(st, rc == -MESH_ETOOBIG ? XDS_ADS_STATUS_RESOURCE_EXHAUSTED : XDS_ADS_STATUS_INTERNAL,
			   rc == -MESH_ETOOBIG ? "too many resource names" : "out of memory");
out:
	free(rm);
}

/* protobuf-c's allocator over an arena: a request's ~1,000 names are
 * unpacked without a malloc and a free each. */
static void *req_alloc(void *ctx, size_t size)
{
	return arena_alloc(ctx, size);
}

static void req_free(void *ctx, void *ptr)
{
	(void)ctx; /* freed with the arena */
	(void)ptr;
}

/* One varint at *p (below end); returns 0 or -MESH_EPARSE. */
static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	int shift;

	for (shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -MESH_EPARSE;
}

/* A length-delimited string field's bytes into out[cap] (NUL-terminated),
 * or -MESH_ETOOBIG when it does not fit. */
static int wire_str(char *out, size_t cap, const uint8_t *d, size_t n)
{
	if (n >= cap)
		return -MESH_ETOOBIG;
	memcpy(out, d, n);
	out[n] = '\0';
	return 0;
}

/* The reduced ACK's strings hold what the fast path always took whole. */
_Static_assert(XDS_ADS_ACK_STR_CAP >= XDS_VERSION_CAP + 64 && XDS_ADS_ACK_STR_CAP >= XDS_NONCE_CAP + 64,
	       "XDS_ADS_ACK_STR_CAP");

/*
 * A SotW request's top-level fields, when it can be a plain ACK: 1 and
 * *out (type, version, nonce, count and wire hash of the names) when it
 * has only version_info, resource_names (one run), type_url and a
 * response_nonce, of a type meshd serves; else 0.  Only top-level fields
 * are read; a request it takes never reaches protobuf-c, so it never
 * nests.  Reads only its arguments (any thread).
 */
static int sotw_scan(const uint8_t *data, size_t len, struct xds_ads_ack *out)
{
	const uint8_t *p = data, *end = data + len, *names = NULL, *names_end = NULL;
	char url[256] = "";
	uint64_t key, flen;
	int last = 0;

	out->version[0] = '\0';
	out->nonce[0] = '\0';
	out->nnames = 0;
	while (p < end) {
		const uint8_t *f, *field = p;
		if (wire_varint(&p, end, &key) < 0 || (key & 7) != 2 || wire_varint(&p, end, &flen) < 0 ||
		    flen > (uint64_t)(end - p))
			return 0;
		f = p;
		p += flen;
		switch (key >> 3) {
		case 1:
			if (wire_str(out->version, sizeof(out->version), f, flen) < 0)
				return 0;
			break;
		case 3:
			/* the entries must be one run: hashed as one span */
			if (names && last != 3)
				return 0;
			if (!names)
				names = field;
			names_end = p;
			out->nnames++;
			break;
		case 4:
			if (wire_str(url, sizeof(url), f, flen) < 0)
				return 0;
			break;
		case 5:
			if (wire_str(out->nonce, sizeof(out->nonce), f, flen) < 0)
				return 0;
			break;
		default:
			return 0;   /* node, error_detail, or unknown: the full path */
		}
		last = (int)(key >> 3);
	}
	out->type = xds_type_from_url(url);
	if (out->type < 0 || !out->nonce[0])
		return 0;
	out->names_hash = names ? wire_hash(names, (size_t)(names_end - names)) : 0;
	return 1;
}

/* Whether ack repeats what e says the stream holds for its type. */
static int ack_matches(const struct xds_ads_ack_expect *e, const struct xds_ads_ack *ack)
{
	if (!e->ok || ack->type < 0 || ack->type >= XDS_TYPE_COUNT || !e->t[ack->type].subscribed)
		return 0;
	if (e->t[ack->type].wildcard)
		return ack->nnames == 0;
	/* a key or length varint longer than the shortest form (legal,
	 * unusual) only makes the hash miss */
	return ack->nnames > 0 && e->t[ack->type].hash_ok && ack->nnames == e->t[ack->type].nnames &&
	       ack->names_hash == e->t[ack->type].names_hash;
}

void xds_ads_stream_ack_expect(const struct xds_ads_stream *st, struct xds_ads_ack_expect *out)
{
	int t;

	memset(out, 0, sizeof(*out));
	out->ok = !st->delta && st->have_node && !st->finishing && !st->closed;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const type_state *ts = &st->types[t];
		out->t[t].subscribed = ts->subscribed;
		out->t[t].wildcard = ts->wildcard;
		out->t[t].nnames = ts->nnames;
		/* without a wire hash only wildcard ACKs match: only slower */
		out->t[t].hash_ok = ts->names_obj && ts->names_obj->wire_ok;
		out->t[t].names_hash = out->t[t].hash_ok ? ts->names_obj->wire_hash : 0;
	}
}

int xds_ads_ack_reduce(const struct xds_ads_ack_expect *e, const uint8_t *data, size_t len, struct xds_ads_ack *out)
{
	if (len > XDS_MAX_REQUEST_BYTES || !sotw_scan(data, len, out))
		return 0;
	return ack_matches(e, out);
}

/* The ACK (or a stale nonce ignored), as xds_ads_stream_request takes it:
 * names that repeat the subscription change nothing else. */
static void sotw_ack_apply(struct xds_ads_stream *st, const struct xds_ads_ack *ack)
{
	(void)type_ack(st, (enum xds_type)ack->type, ack->nonce, ack->version, NULL, ack->version);
	st->fast_acks++;
}

int xds_ads_stream_recv_ack(struct xds_ads_stream *st, const struct xds_ads_ack *ack)
{
	struct xds_ads_ack_expect e;
	int rc = 0;

	if (st->finishing || st->closed)
		goto out;
	xds_ads_stream_ack_expect(st, &e);
	if (!ack_matches(&e, ack)) {
		log_warn(SCOPE, "stream %llu (%s): a reduced %s ACK no longer matches the subscription; ending the stream",
			 (unsigned long long)st->id, stream_who(st),
			 ack->type >= 0 && ack->type < XDS_TYPE_COUNT ? xds_type_short((enum xds_type)ack->type) : "?");
		xds_ads_stream_end(st, XDS_ADS_STATUS_INTERNAL, "subscription changed under a reduced ACK");
		rc = -EPROTO;
		goto out;
	}
	sotw_ack_apply(st, ack);
out:
	return rc;
}

/*
 * The SotW ACK fast path (see names_wire_hash) on the core's thread, for a
 * request the transport did not reduce: 1 when the request in data was
 * taken as a plain ACK (or ignored as stale, as the full path would), 0
 * when the caller must unpack it.
 */
static int sotw_fast_ack(struct xds_ads_stream *st, const uint8_t *data, size_t len)
{
	struct xds_ads_ack_expect e;
	struct xds_ads_ack ack;

	xds_ads_stream_ack_expect(st, &e);
	if (!xds_ads_ack_reduce(&e, data, len, &ack))
		return 0;
	sotw_ack_apply(st, &ack);
	return 1;
}

int xds_ads_stream_recv(struct xds_ads_stream *st, const uint8_t *data, size_t len)
{
	struct arena *ar = NULL;
	ProtobufCAllocator alloc = { req_alloc, req_free, NULL };
	int rc = 0;

	if (sotw_fast_ack(st, data, len))
		goto out;
	/* unpacked, a request takes a few times its wire size at most
	 * (a pointer and a 16-byte-aligned string per name) */
	ar = arena_new(16 * len + 65536);
	alloc.allocator_data = ar;
	if (!ar) {
		xds_ads_stream_end(st, XDS_ADS_STATUS_INTERNAL, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (len > XDS_MAX_REQUEST_BYTES) {
		xds_ads_stream_end(st, XDS_ADS_STATUS_RESOURCE_EXHAUSTED, "DiscoveryRequest larger than 4 MiB");
		rc = -MESH_ETOOBIG;
		goto out;
	}
	/* protobuf-c's unpack recurses once per nested message: bound the
	 * nesting first, from the bytes, or a deep Struct in node metadata
	 * overflows the stack (pbdepth.h) */
	rc = pbdepth_check(st->delta ? &envoy__service__discovery__v3__delta_discovery_request__descriptor
				     : &envoy__service__discovery__v3__discovery_request__descriptor,
			   data, len, PBDEPTH_LIMIT, 0, NULL);
	if (rc < 0) {
		/* a broken wire format protobuf-c would refuse too: said as it says it */
		char why[128];

		if (rc == -MESH_ETOOBIG)
			snprintf(why, sizeof(why), "%sDiscoveryRequest nests messages deeper than %d levels",
				 st->delta ? "Delta" : "", PBDEPTH_LIMIT);
		else
			snprintf(why, sizeof(why),
				 "malformed %sDiscoveryRequest: not a valid envoy.service.discovery.v3.%sDiscoveryRequest",
				 st->delta ? "Delta" : "", st->delta ? "Delta" : "");
		log_warn(SCOPE, "stream %llu from %s: %s (%zu bytes); ending the stream", (unsigned long long)st->id,
			 st->peer ? st->peer : "?", why, len);
		xds_ads_stream_end(st, XDS_ADS_STATUS_INVALID_ARGUMENT, why);
		goto out;
	}
	if (st->delta) {
		Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *dreq =
			envoy__service__discovery__v3__delta_discovery_request__unpack(&alloc, len, data);
		if (!dreq) {
			log_warn(SCOPE, "stream %llu from %s: unparsable DeltaDiscoveryRequest (%zu bytes); ending the stream",
				 (unsigned long long)st->id, st->peer ? st->peer : "?", len);
			xds_ads_stream_end(st, XDS_ADS_STATUS_INVALID_ARGUMENT,
					   "malformed DeltaDiscoveryRequest: not a valid "
					   "envoy.service.discovery.v3.DeltaDiscoveryRequest");
			rc = -MESH_EPARSE;
			goto out;
		}
		xds_ads_stream_delta_request(st, dreq);
	} else {
		Envoy__Service__Discovery__V3__DiscoveryRequest *req =
			envoy__service__discovery__v3__discovery_request__unpack(&alloc, len, data);
		if (!req) {
			log_warn(SCOPE, "stream %llu from %s: unparsable DiscoveryRequest (%zu bytes); ending the stream",
				 (unsigned long long)st->id, st->peer ? st->peer : "?", len);
			xds_ads_stream_end(st, XDS_ADS_STATUS_INVALID_ARGUMENT,
					   "malformed DiscoveryRequest: not a valid envoy.service.discovery.v3.DiscoveryRequest");
			rc = -MESH_EPARSE;
			goto out;
		}
		xds_ads_stream_request(st, req);
	}
out:
	arena_free(ar);
	return rc;
}

/* ------------------------------------------------------------------ */
/* sending */

size_t xds_ads_stream_reply_hint(const struct xds_ads_stream *st)
{
	size_t max = 0;
	int t;

	/* Delta ACKs carry a nonce alone; a wildcard SotW ACK names nothing */
	if (st->delta || st->closed || st->finishing)
		return 0;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const type_state *ts = &st->types[t];
		if (ts->pending.queued && !ts->wildcard && ts->names_obj && ts->names_obj->wire_len > max)
			max = ts->names_obj->wire_len;
	}
	return max;
}

int xds_ads_stream_next(struct xds_ads_stream *st, struct xds_ads_response *out)
{
	pending_resp *best;
	type_state *ts = NULL;
	struct timespec now;
	int t, rc = 0;

	memset(out, 0, sizeof(*out));
	if (st->closed || st->finishing)
		return 0;
	for (;;) {
		best = NULL;
		for (t = 0; t < XDS_TYPE_COUNT; t++) {
			pending_resp *p = &st->types[t].pending;
			if (p->queued && (!best || p->seq < best->seq)) {
				best = p;
				ts = &st->types[t];
			}
		}
		if (!best)
			return 0;
		t = (int)(ts - st->types);
		if (!st->delta)
			break;
		rc = delta_build(st, (enum xds_type)t, best);
		if (rc == 0 && best->wire)
			break;
		/* nothing to tell the client, or no memory (logged) */
		pending_clear(best);
		if (rc < 0)
			return rc;
	}
	out->type = (enum xds_type)t;
	out->data = best->wire;
	out->len = best->len;
	out->head = best->head;
	out->enqueued = best->enqueued;
	best->wire = NULL;
	best->head = NULL;
	/* It is on its way: remember it as sent (delta_build took the held set). */
	type_sent(ts, best);
	if (!st->delta)
		type_hold(ts, best);
	metrics_xds_push((enum xds_type)t);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (best->enqueued.tv_sec || best->enqueued.tv_nsec)
		metrics_proxy_queue_time(ts_diff(&now, &best->enqueued));
	if (best->published.tv_sec || best->published.tv_nsec)
		metrics_convergence(ts_diff(&now, &best->published));
	log_debug(SCOPE, "stream %llu (%s): sent %s version %s nonce %s, %zu resources", (unsigned long long)st->id,
		  stream_who(st), xds_type_short((enum xds_type)t), ts->sent_version, ts->sent_nonce, ts->sent_nres);
	pending_clear(best);
	return 1;
}

/* ------------------------------------------------------------------ */
/* life cycle */

int xds_ads_new(const struct xds_ads_config *cfg, struct xds_ads **out)
{
	struct xds_ads *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	if (cfg) {
		a->want = cfg->want;
		a->want_ctx = cfg->want_ctx;
		a->queued = cfg->queued;
		a->whole_flavours = cfg->whole_flavours;
		a->secret = cfg->secret;
		a->secret_ctx = cfg->secret_ctx;
	}
	if (a->secret) {
		a->no_secrets = xds_snapshot_new();
		if (!a->no_secrets) {
			free(a);
			return -ENOMEM;
		}
		xds_snapshot_seal(a->no_secrets);
	}
	*out = a;
	return 0;
}

void xds_ads_free(struct xds_ads *a)
{
	int f;

	if (!a)
		return;
	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		xds_snapshot_unref(a->snaps[f]);
	while (a->keys) {
		struct xds_ads__key *k = a->keys;
		a->keys = k->next;
		key_free(k);
	}
	xds_snapshot_unref(a->no_secrets);
	free(a);
}

void xds_ads_proxy_set(struct xds_ads *a, const char *key, struct xds_snapshot *snap, uint64_t answered)
{
	struct xds_ads__key *k = key_find(a, key);
	struct xds_ads_stream *st;

	if (!k) {
		/* its last stream went while the stage built it */
		xds_snapshot_unref(snap);
		return;
	}
	xds_snapshot_unref(k->snap);
	k->snap = snap;
	k->snap_gen++;
	if (k->whole) {
		int t;

		for (t = 0; t < XDS_TYPE_COUNT; t++) {
			const struct xds_resource_set *set = snap ? &snap->sets[t] : NULL;
			version_of(set ? (const struct xds_resource **)set->v : NULL, set ? set->n : 0, k->tver[t]);
		}
	}
	if (answered > k->answered)
		k->answered = answered;
	for (st = a->streams; st; st = st->next) {
		if (st->key != k)
			continue;
		st->own_dirty = 1;
		st->proxy_changed = 1;
	}
}

/* The order a push queues (and so sends) its types in, Istio's PushOrder
 * (pilot/pkg/xds: clusters, endpoints, listeners, routes, secrets): a
 * listener or route naming a new cluster reaches the proxy after that
 * cluster, so no connection to a new port meets "no cluster" (NR / NC)
 * in between. */
static const enum xds_type push_order[XDS_TYPE_COUNT] = {
	XDS_CLUSTER, XDS_ENDPOINT, XDS_LISTENER, XDS_ROUTE, XDS_SECRET,
};

void xds_ads_proxy_flush(struct xds_ads *a, const struct timespec *when)
{
	struct xds_ads_stream *st;
	size_t i;

	for (st = a->streams; st; st = st->next) {
		if (!st->proxy_changed)
			continue;
		st->proxy_changed = 0;
		if (st->finishing || st->closed || !stream_snap(st))
			continue;
		for (i = 0; i < XDS_TYPE_COUNT; i++)
			if (st->types[push_order[i]].subscribed)
				(void)stream_enqueue(st, push_order[i], when); /* logged */
		if (a->queued)
			a->queued(st->user);
	}
}

size_t xds_ads_proxy_keys(const struct xds_ads *a)
{
	return a->nkeys;
}

void xds_ads_publish(struct xds_ads *a, enum xds_flavour f, struct xds_snapshot *snap, const struct timespec *when)
{
	struct xds_ads_stream *st;
	size_t i;

	if ((unsigned)f >= XDS_FLAVOUR_COUNT) {
		xds_snapshot_unref(snap);
		return;
	}
	xds_snapshot_unref(a->snaps[f]);
	a->snaps[f] = snap;
	for (st = a->streams; st; st = st->next) {
		if (st->finishing || st->closed || st->flavour != f)
			continue;
		st->own_dirty = 1;
		st->proxy_changed = 0; /* handled here */
		for (i = 0; i < XDS_TYPE_COUNT; i++)
			if (st->types[push_order[i]].subscribed)
				(void)stream_enqueue(st, push_order[i], when); /* logged; retried next publish */
		if (a->queued)
			a->queued(st->user);
	}
}

void xds_ads_refuse_unserved(struct xds_ads *a)
{
	struct xds_ads_stream *st;

	for (st = a->streams; st; st = st->next)
		(void)stream_check_flavour(st);
}

const struct xds_snapshot *xds_ads_snapshot(const struct xds_ads *a, enum xds_flavour f)
{
	return (unsigned)f < XDS_FLAVOUR_COUNT ? a->snaps[f] : NULL;
}

int xds_ads_streams(const struct xds_ads *a)
{
	return a->nstreams;
}

static void now_rfc3339(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int xds_ads_stream_new(struct xds_ads *a, int delta, const char *peer, void *user, struct xds_ads_stream **out)
{
	struct xds_ads_stream *st = calloc(1, sizeof(*st));

	*out = NULL;
	if (!st)
		return -ENOMEM;
	st->ads = a;
	st->user = user;
	st->id = ++a->next_stream_id;
	st->delta = delta;
	st->flavour = XDS_FLAVOUR_SIDECAR; /* the rule's answer for "no Node" */
	if (peer) {
		st->peer = dup_capped(peer, XDS_MAX_NODE_FIELD_LEN, METRICS_LIMIT_XDS_NODE_FIELD);
		if (!st->peer) {
			free(st);
			return -ENOMEM;
		}
	}
	now_rfc3339(st->connected_at, sizeof(st->connected_at));
	st->next = a->streams;
	a->streams = st;
	a->nstreams++;
	*out = st;
	return 0;
}

void xds_ads_stream_free(struct xds_ads_stream *st)
{
	struct xds_ads_stream **pp;
	size_t i;
	int t;

	if (!st)
		return;
	for (pp = &st->ads->streams; *pp; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			st->ads->nstreams--;
			break;
		}
	}
	stream_detach_key(st); /* before its Node goes: the release names the key */
	stream_secret_release(st);
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		type_state_cleanup(&st->types[t]);
	free(st->finish_msg);
	free(st->node_id);
	free(st->node_cluster);
	free(st->user_agent);
	free(st->node_ns);
	free(st->node_sa);
	free(st->node_ip);
	free(st->node_locality);
	for (i = 0; i < st->node_labels.n; i++) {
		free(st->node_labels.v[i].key);
		free(st->node_labels.v[i].value);
	}
	free(st->node_labels.v);
	xds_snapshot_unref(st->own);
	xds_snapshot_unref(st->secrets);
	free(st->authorization);
	free(st->peer_id);
	free(st->peer);
	free(st);
}

void xds_ads_stream_closed(struct xds_ads_stream *st)
{
	int t;

	st->closed = 1;
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		pending_clear(&st->types[t].pending);
}

uint64_t xds_ads_stream_id(const struct xds_ads_stream *st)
{
	return st->id;
}

const char *xds_ads_stream_node_id(const struct xds_ads_stream *st)
{
	return st->node_id;
}

uint64_t xds_ads_stream_fast_acks(const struct xds_ads_stream *st)
{
	return st->fast_acks;
}

enum xds_flavour xds_ads_stream_flavour(const struct xds_ads_stream *st)
{
	return st->flavour;
}
