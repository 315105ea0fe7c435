/*
 * server.c - the ADS server (state of the world and Delta) on gRPC C core.
 *
 * Two threads.  The completion-queue thread only calls
 * grpc_completion_queue_next() and hands each completion (tag, ok) to the
 * xDS thread through a mutex-protected queue and an eventfd; it never
 * touches stream state.  The xDS thread poll()s that eventfd and a second
 * one signalled by xds_server_publish()/xds_server_stop(); it owns every
 * stream (subscriptions, versions, nonces, the bounded send queue) and
 * starts every gRPC batch.  The debug views read stream state under
 * srv->lock, which the xDS thread holds while it changes that state.
 *
 * Protocol, per stream and type URL: the first request subscribes
 * (resource names; empty for LDS/CDS means every resource), each response
 * carries the subscribed resources found in the current snapshot with
 * version_info = a hash over (name, resource hash) pairs and a fresh nonce.
 * A request quoting an older nonce is stale and ignored; one quoting the
 * latest nonce ACKs, or NACKs when it has error_detail.  A NACKed version
 * is not sent again.  A publish pushes to a stream only the types whose
 * version changed.  Unknown methods answer UNIMPLEMENTED.
 *
 * Delta (DeltaAggregatedResources), per stream and type URL: explicit
 * names (resource_names_subscribe / _unsubscribe) and a wildcard flag ("*",
 * or an empty first request for LDS/CDS).  What the client holds is the
 * sent_* set (names and content hashes, pointing into the snapshots it
 * references), seeded from initial_resource_versions on the first request.
 * A Delta response is built when the stream's send slot frees, by diffing
 * what the client should hold against what it holds: changed or new
 * resources (version = the resource's hash, 16 hex) and removed_resources
 * for names it holds that are gone.  Unsubscribed names are forgotten
 * without a removal.  Since the held set is updated when a response is
 * built, a NACKed resource version is not sent again; the NACK is recorded.
 * system_version_info is the same set hash SotW uses as version_info.
 *
 * Per-proxy resources: a name the shared snapshot lacks (an xDS gRPC
 * server's inbound listener) is asked of the configured resolver with the
 * stream's Node (id, NAMESPACE, LABELS) and the published model; results
 * live in a small snapshot of the stream's own ("own"), rebuilt after a
 * publish or a subscription change, reusing entries while the model is the
 * same.  Responses and what was sent hold references to both snapshots.
 *
 * Ownership: a stream is freed by the xDS thread once its call has ended
 * (RECV_CLOSE_ON_SERVER completed) and no batch of it is in flight.
 */
#include "controlplane/xds/server.h"

#include "common/err.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "controlplane/config/config.h"
#include "controlplane/debug/metrics.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/pbjson.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define SCOPE "xds"

#define XDS_METHOD_SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define XDS_METHOD_DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

/* Largest DiscoveryRequest accepted (gRPC core enforces it on receive). */
#define XDS_MAX_REQUEST_BYTES (4 * 1024 * 1024)
/* Caps on what a client may make us keep per stream. */
#define XDS_MAX_NAME_LEN 1024
#define XDS_MAX_SUBSCRIBED_NAMES 100000
#define XDS_MAX_ERROR_LEN 4096
#define XDS_MAX_NODE_FIELD_LEN 1024
#define XDS_NONCE_CAP 24
#define XDS_VERSION_CAP 17
/* Node metadata LABELS kept per stream. */
#define XDS_MAX_NODE_LABELS 256

enum tag_kind {
	TAG_ACCEPT_SOTW,
	TAG_ACCEPT_DELTA,
	TAG_ACCEPT_GENERIC,
	TAG_UNIMPL_DONE,
	TAG_MD,
	TAG_RECV,
	TAG_SEND,
	TAG_CLOSE,
	TAG_STATUS,
	TAG_SHUTDOWN,
	TAG_ACCEPT_UNARY,  /* the configured unary method (xds_server_unary) */
};

struct xds_server;
struct xds_stream;

struct tag {
	enum tag_kind kind;
	void *owner; /* stream, unimplemented call or accept slot */
};

/* One outstanding grpc_server_request_*call(). */
struct accept_slot {
	struct tag tag;
	int pending;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details; /* generic calls only */
	grpc_byte_buffer *payload; /* unary calls only */
};

/* A call answered with UNIMPLEMENTED in one batch and freed on its completion. */
struct unimpl_call {
	struct tag tag;
	grpc_call *call;
	int cancelled;
	struct unimpl_call *next;
};

/* A response waiting for the stream's one SEND_MESSAGE slot. */
struct pending_resp {
	int queued;
	uint64_t seq;                      /* enqueue order */
	grpc_byte_buffer *bb;
	char version[XDS_VERSION_CAP];
	char nonce[XDS_NONCE_CAP];
	struct xds_snapshot *snap;         /* owns a reference */
	struct xds_snapshot *own;          /* the stream's per-proxy resources; owns a reference */
	const struct xds_resource **res;   /* into snap or own */
	size_t nres;
	struct timespec published;         /* 0 when not caused by a publish */
};

/* Delta: a version the client says it holds (initial_resource_versions). */
struct delta_init {
	char *name;
	uint64_t hash;
	int valid;                         /* 16 hex: one of our versions */
};

struct type_state {
	int subscribed;
	int wildcard;
	char **names;                      /* sorted, unique */
	size_t nnames;
	int need_send;                     /* respond even if the version is unchanged */
	/* the newest response queued or sent: what protocol decisions use */
	char latest_version[XDS_VERSION_CAP];
	char latest_nonce[XDS_NONCE_CAP];
	int have_latest;
	/* what went on the wire last (syncz, config dump) */
	int sent;
	char sent_version[XDS_VERSION_CAP];
	char sent_nonce[XDS_NONCE_CAP];
	struct xds_snapshot *sent_snap;
	struct xds_snapshot *sent_own;
	const struct xds_resource **sent_res;
	size_t sent_nres;
	char acked_version[XDS_VERSION_CAP];
	enum { SYNC_NONE, SYNC_STALE, SYNC_ACKED, SYNC_NACKED } state;
	/* a NACKed version is not pushed again */
	int nacked;
	char nacked_version[XDS_VERSION_CAP];
	char *error;
	struct pending_resp pending;
	/* Delta: the client's initial_resource_versions, until the first diff */
	struct delta_init *init;
	size_t ninit;
	int have_init;
};

struct xds_stream {
	struct xds_server *srv;
	struct xds_stream *next;
	uint64_t id;
	int delta;                         /* DeltaAggregatedResources */
	grpc_call *call;
	grpc_metadata_array md;
	struct tag tag_md, tag_recv, tag_send, tag_close, tag_status;
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_buf;        /* in flight */
	int inflight;                      /* batches started, not completed */
	int sending;
	struct timespec send_started;      /* when the in-flight SEND_MESSAGE began */
	int reset;                         /* cancelled by us: a send was stuck */
	int closed;                        /* RECV_CLOSE_ON_SERVER completed */
	int cancelled;
	int finishing;                     /* status to send once the send slot frees */
	int status_sent;
	grpc_status_code finish_code;
	char *finish_msg;
	/* identity, from the first request's Node */
	int have_node;
	char *node_id;
	char *node_cluster;
	char *user_agent;
	int proxyless;
	char *node_ns;
	struct cfg_labels node_labels;     /* owned copies */
	/* per-proxy resources (see the top of the file) */
	struct xds_snapshot *own;
	uint64_t own_model_seq;
	int own_dirty;
	char *peer;
	char connected_at[40];
	struct type_state types[XDS_TYPE_COUNT];
};

struct completion {
	void *tag;
	int ok;
};

struct xds_server {
	grpc_server *server;
	grpc_completion_queue *cq;
	void *rm_sotw, *rm_delta;
	int port;
	/* optional unary method and TLS port */
	struct xds_server_unary unary;
	void *rm_unary;
	int secure_port;
	pthread_t cq_thread, xds_thread;
	int cq_thread_started, xds_thread_started;

	/* completion handoff (cq thread -> xDS thread) */
	pthread_mutex_t q_lock;
	struct completion *q;
	size_t q_len, q_cap;
	int q_efd;

	/* publish / stop (any thread -> xDS thread) */
	pthread_mutex_t pub_lock;
	struct xds_snapshot *pub_snap;
	struct model *pub_model;
	int pub_has_model;
	struct timespec pub_time;
	int stop_requested;
	int wake_efd;

	/* xDS thread state; debug readers take lock */
	pthread_mutex_t lock;
	struct xds_snapshot *snap;
	struct model *model;               /* for the resolver */
	uint64_t model_seq;                /* bumped when model changes */
	xds_resolve_fn resolve;
	void *resolve_ctx;
	int send_timeout_ms;
	struct timespec snap_time;
	struct xds_stream *streams;
	struct unimpl_call *unimpl;
	int nstreams;
	uint64_t next_stream_id;
	uint64_t nonce_counter;
	uint64_t seq_counter;
	struct accept_slot acc_sotw, acc_delta, acc_generic, acc_unary;
	struct tag tag_shutdown;
	int shutting_down;
	int shutdown_done;
};

/* ------------------------------------------------------------------ */
/* small helpers */

static char *dup_capped(const char *s, size_t cap)
{
	size_t n;
	char *d;

	if (!s)
		s = "";
	n = strnlen(s, cap);
	d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (!src)
		src = "";
	n = strnlen(src, cap - 1);
	memmove(dst, src, n);
	dst[n] = '\0';
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static void eventfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

static void eventfd_drain(int fd)
{
	uint64_t v;
	ssize_t n;

	do
		n = read(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
}

/* ------------------------------------------------------------------ */
/* completion-queue thread */

static void *cq_thread_main(void *arg)
{
	struct xds_server *s = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&s->q_lock);
		if (s->q_len == s->q_cap) {
			size_t cap = s->q_cap ? s->q_cap * 2 : 64;
			struct completion *q = realloc(s->q, cap * sizeof(*q));
			while (!q) {
				/* Dropping a completion would leak its call: wait for memory. */
				pthread_mutex_unlock(&s->q_lock);
				usleep(1000);
				pthread_mutex_lock(&s->q_lock);
				q = realloc(s->q, cap * sizeof(*q));
			}
			s->q = q;
			s->q_cap = cap;
		}
		s->q[s->q_len].tag = ev.tag;
		s->q[s->q_len].ok = ev.success;
		s->q_len++;
		pthread_mutex_unlock(&s->q_lock);
		eventfd_signal(s->q_efd);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* per-type state */

static void pending_clear(struct pending_resp *p)
{
	if (p->bb)
		grpc_byte_buffer_destroy(p->bb);
	free(p->res);
	xds_snapshot_unref(p->snap);
	xds_snapshot_unref(p->own);
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

static void delta_init_clear(struct type_state *ts)
{
	size_t i;

	for (i = 0; i < ts->ninit; i++)
		free(ts->init[i].name);
	free(ts->init);
	ts->init = NULL;
	ts->ninit = 0;
	ts->have_init = 0;
}

static void type_state_cleanup(struct type_state *ts)
{
	delta_init_clear(ts);
	names_free(ts->names, ts->nnames);
	xds_snapshot_unref(ts->sent_snap);
	xds_snapshot_unref(ts->sent_own);
	free(ts->sent_res);
	free(ts->error);
	pending_clear(&ts->pending);
	memset(ts, 0, sizeof(*ts));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted unique copy of the request's names into *out.
 * Returns 0, -ENOMEM, or -MESH_ETOOBIG past the caps. */
static int names_from_request(char **in, size_t n, char ***out, size_t *nout)
{
	char **v = NULL;
	size_t i, w = 0;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		goto out;
	if (n > XDS_MAX_SUBSCRIBED_NAMES) {
		rc = -MESH_ETOOBIG;
		goto out;
	}
	v = calloc(n, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strlen(in[i]) > XDS_MAX_NAME_LEN) {
			rc = -MESH_ETOOBIG;
			goto out;
		}
		v[i] = strdup(in[i]);
		if (!v[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	qsort(v, n, sizeof(*v), name_cmp);
	for (i = 0; i < n; i++) {
		if (w > 0 && strcmp(v[w - 1], v[i]) == 0) {
			free(v[i]);
			continue;
		}
		v[w++] = v[i];
	}
	*out = v;
	*nout = w;
	v = NULL;
out:
	if (v)
		names_free(v, n);
	return rc;
}

static int names_equal(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/* LDS and CDS treat an empty name list as "everything" (and so does "*"). */
static int type_allows_wildcard(enum xds_type t)
{
	return t == XDS_LISTENER || t == XDS_CLUSTER;
}

/* The resources of snap that ts subscribes to, in name order, into a new
 * array (*out, may be NULL when *n is 0).  Returns 0 or -ENOMEM. */
static int select_resources(const struct type_state *ts, enum xds_type t, const struct xds_snapshot *snap,
			    const struct xds_snapshot *own, const struct xds_resource ***out, size_t *n)
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
			v[k++] = &set->v[i];
	} else {
		for (i = 0; i < ts->nnames; i++) {
			const struct xds_resource *r = xds_snapshot_find(snap, t, ts->names[i]);
			if (!r && own)
				r = xds_snapshot_find(own, t, ts->names[i]);
			if (r)
				v[k++] = r;
		}
	}
	*out = v;
	*n = k;
out:
	return rc;
}

static void version_of(const struct xds_resource **res, size_t n, char out[XDS_VERSION_CAP])
{
	uint64_t h = MESH_HASH_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		h = mesh_hash_str(h, res[i]->name);
		h = mesh_hash_update(h, &res[i]->hash, sizeof(res[i]->hash));
	}
	mesh_hash_hex(h, out);
}

/* Resource r of type t as an Any (pointing into r's bytes). */
static void encode_any(Google__Protobuf__Any *a, enum xds_type t, const struct xds_resource *r)
{
	google__protobuf__any__init(a);
	a->type_url = (char *)xds_type_url(t);
	a->value.data = r->data;
	a->value.len = r->len;
}

/* Serialise a (Delta)DiscoveryResponse into a new byte buffer (*out) that
 * owns the wire bytes.  Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int encode_message(const ProtobufCMessage *m, grpc_byte_buffer **out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *wire;
	grpc_slice slice;

	if (len > UINT32_MAX)
		return -MESH_ETOOBIG;
	wire = malloc(len ? len : 1);
	if (!wire)
		return -ENOMEM;
	protobuf_c_message_pack(m, wire);
	/* the slice takes the buffer */
	slice = grpc_slice_new(wire, len, free);
	*out = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return 0;
}

/* Serialise a DiscoveryResponse into a new byte buffer (*out).
 * Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int encode_response(enum xds_type t, const char *version, const char *nonce,
			   const struct xds_resource **res, size_t n, grpc_byte_buffer **out)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse resp = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
	Envoy__Config__Core__V3__ControlPlane cp = ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
	Google__Protobuf__Any *anys = NULL, **ptrs = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
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
	resp.version_info = (char *)version;
	resp.resources = ptrs;
	resp.n_resources = n;
	resp.type_url = (char *)xds_type_url(t);
	resp.nonce = (char *)nonce;
	cp.identifier = "meshd";
	resp.control_plane = &cp;
	rc = encode_message(&resp.base, out);
out:
	free(ptrs);
	free(anys);
	return rc;
}

/* ------------------------------------------------------------------ */
/* streams: sending */

static void stream_try_send(struct xds_stream *st);
static int delta_build(struct xds_stream *st, enum xds_type t, struct pending_resp *p);
static void stream_send_status(struct xds_stream *st);

static int stream_start(struct xds_stream *st, const grpc_op *ops, size_t n, struct tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(st->call, ops, n, tag, NULL);

	if (e != GRPC_CALL_OK) {
		log_warn(SCOPE, "stream %llu: grpc_call_start_batch: %s", (unsigned long long)st->id,
			 grpc_call_error_to_string(e));
		return -MESH_EGRPC;
	}
	st->inflight++;
	return 0;
}

/* End the stream with a status once nothing is being sent.  msg is copied. */
static void stream_finish(struct xds_stream *st, grpc_status_code code, const char *msg)
{
	int t;

	if (st->finishing || st->closed)
		return;
	st->finishing = 1;
	st->finish_code = code;
	st->finish_msg = dup_capped(msg, XDS_MAX_ERROR_LEN);
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		pending_clear(&st->types[t].pending);
	if (!st->sending)
		stream_send_status(st);
}

static void stream_send_status(struct xds_stream *st)
{
	grpc_op op;
	grpc_slice details;

	if (st->status_sent || st->closed)
		return;
	st->status_sent = 1;
	memset(&op, 0, sizeof(op));
	details = grpc_slice_from_copied_string(st->finish_msg ? st->finish_msg : "");
	op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op.data.send_status_from_server.trailing_metadata_count = 0;
	op.data.send_status_from_server.status = st->finish_code;
	op.data.send_status_from_server.status_details = &details;
	stream_start(st, &op, 1, &st->tag_status);
	grpc_slice_unref(details);
}

/* Rebuild st->own when it is dirty: every subscribed name of every type
 * that the shared snapshot lacks is asked of the resolver (or reused from
 * the previous own snapshot while the model is the same). */
static void stream_resolve(struct xds_stream *st)
{
	struct xds_server *s = st->srv;
	struct xds_snapshot *own = NULL;
	struct xds_proxy_info info;
	int same, t, rc;
	size_t i;

	if (!st->own_dirty || !s->resolve || !s->model || !st->have_node)
		return;
	st->own_dirty = 0;
	same = st->own && st->own_model_seq == s->model_seq;
	own = xds_snapshot_new();
	if (!own)
		goto out;
	info.id = st->node_id;
	info.ns = st->node_ns;
	info.labels = &st->node_labels;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct type_state *ts = &st->types[t];

		/* SotW wildcard ignores names; Delta keeps explicit ones beside it */
		if (!ts->subscribed || (ts->wildcard && !st->delta))
			continue;
		for (i = 0; i < ts->nnames; i++) {
			const char *name = ts->names[i];
			const struct xds_resource *r;
			uint8_t *data = NULL;
			size_t len = 0;

			if (s->snap && xds_snapshot_find(s->snap, (enum xds_type)t, name))
				continue;
			if (same && (r = xds_snapshot_find(st->own, (enum xds_type)t, name)) != NULL) {
				rc = xds_snapshot_add(own, (enum xds_type)t, name, r->data, r->len);
			} else {
				rc = s->resolve(s->resolve_ctx, s->model, &info, (enum xds_type)t, name, &data, &len);
				if (rc == 0)
					rc = xds_snapshot_add(own, (enum xds_type)t, name, data, len);
				free(data);
				if (rc == -ENOENT)
					continue;
			}
			if (rc < 0)
				log_warn(SCOPE, "stream %llu (%s): cannot build %s %.200s: %s", (unsigned long long)st->id,
					 st->node_id ? st->node_id : "?", xds_type_short((enum xds_type)t), name,
					 mesh_strerror(rc));
		}
	}
	xds_snapshot_seal(own);
	xds_snapshot_unref(st->own);
	st->own = own;
	st->own_model_seq = s->model_seq;
	own = NULL;
out:
	xds_snapshot_unref(own);
}

/* Queue a response for type t, replacing any older one still waiting. */
static int stream_enqueue(struct xds_stream *st, enum xds_type t, const struct timespec *published)
{
	struct xds_server *s = st->srv;
	struct type_state *ts = &st->types[t];
	struct pending_resp p = { 0 };
	int rc;

	if (st->delta) {
		/* Delta responses are diffs: built when the send slot frees */
		if (!ts->pending.queued) {
			ts->pending.queued = 1;
			ts->pending.seq = ++s->seq_counter;
			if (published)
				ts->pending.published = *published;
		}
		ts->need_send = 0;
		stream_try_send(st);
		return 0;
	}
	stream_resolve(st);
	rc = select_resources(ts, t, s->snap, st->own, &p.res, &p.nres);
	if (rc < 0)
		goto out;
	version_of(p.res, p.nres, p.version);
	if (!ts->need_send) {
		/* A push: only a version the client has not got nor refused. */
		if (ts->have_latest && strcmp(p.version, ts->latest_version) == 0)
			goto out;
		if (ts->nacked && strcmp(p.version, ts->nacked_version) == 0)
			goto out;
	}
	snprintf(p.nonce, sizeof(p.nonce), "%llx", (unsigned long long)++s->nonce_counter);
	rc = encode_response(t, p.version, p.nonce, p.res, p.nres, &p.bb);
	if (rc < 0)
		goto out;
	p.snap = xds_snapshot_ref(s->snap);
	p.own = st->own ? xds_snapshot_ref(st->own) : NULL;
	p.queued = 1;
	p.seq = ++s->seq_counter;
	if (published)
		p.published = *published;
	pending_clear(&ts->pending);
	ts->pending = p;
	memset(&p, 0, sizeof(p));
	ts->need_send = 0;
	ts->state = SYNC_STALE;
	if (ts->nacked && strcmp(ts->nacked_version, ts->pending.version) != 0)
		ts->nacked = 0;
	ts->have_latest = 1;
	copy_str(ts->latest_version, sizeof(ts->latest_version), ts->pending.version);
	copy_str(ts->latest_nonce, sizeof(ts->latest_nonce), ts->pending.nonce);
	stream_try_send(st);
out:
	if (rc < 0)
		log_error(SCOPE, "stream %llu: cannot build %s response: %s", (unsigned long long)st->id,
			  xds_type_short(t), mesh_strerror(rc));
	pending_clear(&p);
	return rc;
}

static void stream_try_send(struct xds_stream *st)
{
	struct pending_resp *best = NULL;
	struct type_state *ts = NULL;
	struct timespec now;
	grpc_op op;
	int t;

	if (st->sending || st->closed || st->finishing)
		return;
	for (;;) {
		best = NULL;
		for (t = 0; t < XDS_TYPE_COUNT; t++) {
			struct pending_resp *p = &st->types[t].pending;
			if (p->queued && (!best || p->seq < best->seq)) {
				best = p;
				ts = &st->types[t];
			}
		}
		if (!best)
			return;
		t = (int)(ts - st->types);
		if (!st->delta || (delta_build(st, (enum xds_type)t, best) == 0 && best->bb))
			break;
		/* nothing to tell the client (or no memory: logged) */
		pending_clear(best);
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = best->bb;
	st->send_buf = best->bb;
	best->bb = NULL;
	if (stream_start(st, &op, 1, &st->tag_send) < 0) {
		grpc_byte_buffer_destroy(st->send_buf);
		st->send_buf = NULL;
		pending_clear(best);
		return;
	}
	st->sending = 1;
	clock_gettime(CLOCK_MONOTONIC, &st->send_started);
	/* It is on its way: remember it as sent (delta_build did for Delta). */
	if (!st->delta) {
		ts->sent = 1;
		copy_str(ts->sent_version, sizeof(ts->sent_version), best->version);
		copy_str(ts->sent_nonce, sizeof(ts->sent_nonce), best->nonce);
		xds_snapshot_unref(ts->sent_snap);
		xds_snapshot_unref(ts->sent_own);
		free(ts->sent_res);
		ts->sent_snap = best->snap;
		ts->sent_own = best->own;
		ts->sent_res = best->res;
		ts->sent_nres = best->nres;
		best->snap = NULL;
		best->own = NULL;
		best->res = NULL;
	}
	metrics_xds_push((enum xds_type)t);
	if (best->published.tv_sec || best->published.tv_nsec) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		metrics_convergence(ts_diff(&now, &best->published));
	}
	log_debug(SCOPE, "stream %llu (%s): sent %s version %s nonce %s, %zu resources", (unsigned long long)st->id,
		  st->node_id ? st->node_id : "?", xds_type_short((enum xds_type)t), ts->sent_version,
		  ts->sent_nonce, ts->sent_nres);
	pending_clear(best);
}

/* ------------------------------------------------------------------ */
/* streams: receiving */

static void stream_start_recv(struct xds_stream *st)
{
	grpc_op op;

	if (st->closed || st->finishing)
		return;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &st->recv_buf;
	stream_start(st, &op, 1, &st->tag_recv);
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

/* Namespace and labels of the workload, for per-proxy resources: metadata
 * NAMESPACE (else the "POD.NS" part of an Istio node id) and LABELS. */
static void stream_record_workload(struct xds_stream *st, const Envoy__Config__Core__V3__Node *node)
{
	const char *ns = struct_string(node->metadata, "NAMESPACE");
	const Google__Protobuf__Struct *labels = NULL;
	size_t i, n = 0;

	if (!ns && st->node_id) {
		/* "sidecar~IP~POD.NS~NS.svc.cluster.local" */
		const char *p = strchr(st->node_id, '~');
		const char *q = p ? strchr(p + 1, '~') : NULL;
		const char *dot = q ? strchr(q + 1, '.') : NULL;
		const char *end = dot ? strchr(dot + 1, '~') : NULL;
		if (end && end > dot + 1)
			st->node_ns = strndup(dot + 1, (size_t)(end - dot - 1));
	} else if (ns && ns[0]) {
		st->node_ns = dup_capped(ns, XDS_MAX_NODE_FIELD_LEN);
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
	for (i = 0; i < labels->n_fields && n < XDS_MAX_NODE_LABELS; i++) {
		Google__Protobuf__Struct__FieldsEntry *e = labels->fields[i];
		if (!e || !e->key || !e->value || e->value->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
			continue;
		st->node_labels.v[n].key = dup_capped(e->key, XDS_MAX_NODE_FIELD_LEN);
		st->node_labels.v[n].value = dup_capped(e->value->string_value, XDS_MAX_NODE_FIELD_LEN);
		if (!st->node_labels.v[n].key || !st->node_labels.v[n].value) {
			free(st->node_labels.v[n].key);
			free(st->node_labels.v[n].value);
			break;
		}
		n++;
	}
	st->node_labels.n = n;
}

static void stream_record_node(struct xds_stream *st, const Envoy__Config__Core__V3__Node *node)
{
	const char *gen = struct_string(node->metadata, "GENERATOR");
	char ua[2 * XDS_MAX_NODE_FIELD_LEN + 2];

	st->have_node = 1;
	st->node_id = dup_capped(node->id, XDS_MAX_NODE_FIELD_LEN);
	st->node_cluster = dup_capped(node->cluster, XDS_MAX_NODE_FIELD_LEN);
	if (node->user_agent_version_type_case == ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION)
		snprintf(ua, sizeof(ua), "%.1024s %.1024s", node->user_agent_name ? node->user_agent_name : "",
			 node->user_agent_version ? node->user_agent_version : "");
	else
		snprintf(ua, sizeof(ua), "%.1024s", node->user_agent_name ? node->user_agent_name : "");
	st->user_agent = dup_capped(ua, sizeof(ua));
	st->proxyless = gen && strcmp(gen, "grpc") == 0;
	stream_record_workload(st, node);
	log_info(SCOPE, "stream %llu: proxy %s (%s, %s) from %s", (unsigned long long)st->id,
		 st->node_id ? st->node_id : "", st->proxyless ? "proxyless" : "sidecar",
		 st->user_agent ? st->user_agent : "", st->peer ? st->peer : "?");
}

static void stream_handle_request(struct xds_stream *st, const Envoy__Service__Discovery__V3__DiscoveryRequest *req)
{
	struct xds_server *s = st->srv;
	const char *nonce = req->response_nonce ? req->response_nonce : "";
	struct type_state *ts;
	char **names = NULL;
	size_t nnames = 0;
	int t, rc, changed, wildcard;
	enum xds_type xt;

	if (!st->have_node && req->node)
		stream_record_node(st, req->node);
	t = xds_type_from_url(req->type_url);
	if (t < 0) {
		log_info(SCOPE, "stream %llu (%s): ignoring request for unknown type \"%.200s\"", (unsigned long long)st->id,
			 st->node_id ? st->node_id : "?", req->type_url ? req->type_url : "");
		goto out;
	}
	xt = (enum xds_type)t;
	ts = &st->types[t];
	if (ts->subscribed && nonce[0] && (!ts->have_latest || strcmp(nonce, ts->latest_nonce) != 0)) {
		log_debug(SCOPE, "stream %llu (%s): stale %s request (nonce %.40s, latest %s) ignored",
			  (unsigned long long)st->id, st->node_id ? st->node_id : "?", xds_type_short(xt), nonce,
			  ts->latest_nonce);
		goto out;
	}
	rc = names_from_request(req->resource_names, req->n_resource_names, &names, &nnames);
	if (rc < 0) {
		stream_finish(st, rc == -MESH_ETOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
			      rc == -MESH_ETOOBIG ? "too many or too long resource names" : "out of memory");
		goto out;
	}
	wildcard = type_allows_wildcard(xt) &&
		   (nnames == 0 || (nnames == 1 && strcmp(names[0], "*") == 0));

	if (nonce[0] && ts->subscribed) {
		if (req->error_detail) {
			const char *msg = req->error_detail->message ? req->error_detail->message : "";
			/* NACK of the latest response: keep its version from being re-sent. */
			ts->nacked = 1;
			copy_str(ts->nacked_version, sizeof(ts->nacked_version), ts->latest_version);
			free(ts->error);
			ts->error = dup_capped(msg, XDS_MAX_ERROR_LEN);
			ts->state = SYNC_NACKED;
			metrics_xds_reject(xt);
			log_warn(SCOPE, "stream %llu (%s): %s NACK of version %s (client has %.40s): %.1000s",
				 (unsigned long long)st->id, st->node_id ? st->node_id : "?", xds_type_short(xt),
				 ts->latest_version, req->version_info ? req->version_info : "", msg);
		} else {
			copy_str(ts->acked_version, sizeof(ts->acked_version), req->version_info);
			ts->state = SYNC_ACKED;
			free(ts->error);
			ts->error = NULL;
		}
	}

	changed = !ts->subscribed || (nonce[0] == '\0') || wildcard != ts->wildcard ||
		  (!wildcard && !names_equal(names, nnames, ts->names, ts->nnames));
	if (!changed)
		goto out;
	names_free(ts->names, ts->nnames);
	ts->names = names;
	ts->nnames = nnames;
	names = NULL;
	ts->wildcard = wildcard;
	ts->subscribed = 1;
	ts->need_send = 1;
	st->own_dirty = 1;
	if (s->snap)
		stream_enqueue(st, xt, NULL);
out:
	names_free(names, nnames);
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
static int version_parse(const char *s, uint64_t *out)
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

/* Serialise a DeltaDiscoveryResponse into a new byte buffer (*out).
 * Returns 0, -ENOMEM or -MESH_ETOOBIG. */
static int encode_delta_response(enum xds_type t, const char *version, const char *nonce,
				 const struct xds_resource **res, size_t n, const char **removed, size_t nremoved,
				 grpc_byte_buffer **out)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryResponse resp =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
	Envoy__Config__Core__V3__ControlPlane cp = ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
	Envoy__Service__Discovery__V3__Resource *rs = NULL, **ptrs = NULL;
	Google__Protobuf__Any *anys = NULL;
	char (*versions)[XDS_VERSION_CAP] = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
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
		rs[i].name = res[i]->name;
		rs[i].version = versions[i];
		rs[i].resource = &anys[i];
		ptrs[i] = &rs[i];
	}
	resp.system_version_info = (char *)version;
	resp.resources = ptrs;
	resp.n_resources = n;
	resp.type_url = (char *)xds_type_url(t);
	resp.removed_resources = (char **)removed;
	resp.n_removed_resources = nremoved;
	resp.nonce = (char *)nonce;
	cp.identifier = "meshd";
	resp.control_plane = &cp;
	rc = encode_message(&resp.base, out);
out:
	free(versions);
	free(anys);
	free(ptrs);
	free(rs);
	return rc;
}

/* What the client should hold of type t: every resource of the shared
 * snapshot under the wildcard, plus the explicit names found in the shared
 * or the per-proxy snapshot; sorted by name, unique.  Returns 0 or -ENOMEM. */
static int delta_select(const struct xds_stream *st, enum xds_type t, const struct xds_resource ***out, size_t *n)
{
	const struct xds_server *s = st->srv;
	const struct type_state *ts = &st->types[t];
	const struct xds_resource_set *set = &s->snap->sets[t];
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
			v[k++] = &set->v[i];
	for (i = 0; i < ts->nnames; i++) {
		const struct xds_resource *r = xds_snapshot_find(s->snap, t, ts->names[i]);
		if (!r && st->own)
			r = xds_snapshot_find(st->own, t, ts->names[i]);
		if (r)
			v[k++] = r;
	}
	qsort(v, k, sizeof(*v), res_name_cmp);
	for (i = 0; i < k; i++)
		if (w == 0 || strcmp(v[w - 1]->name, v[i]->name) != 0)
			v[w++] = v[i];
	*out = v;
	*n = w;
out:
	return rc;
}

/* What the client holds: its initial versions before the first diff,
 * else what was sent (sorted by name).  Returns 0 or -ENOMEM. */
static int delta_held(const struct type_state *ts, struct delta_have **out, size_t *n)
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

/* Build the Delta response for type t into p (p->bb stays NULL when the
 * client holds everything already and has had a first response), and
 * take what the client now holds as sent.  Returns 0 or a negative code. */
static int delta_build(struct xds_stream *st, enum xds_type t, struct pending_resp *p)
{
	struct xds_server *s = st->srv;
	struct type_state *ts = &st->types[t];
	const struct xds_resource **want = NULL, **changed = NULL;
	const char **removed = NULL;
	struct delta_have *held = NULL;
	size_t nwant = 0, nheld = 0, nchanged = 0, nremoved = 0, i = 0, j = 0;
	int rc = 0;

	if (!s->snap)
		goto out;
	stream_resolve(st);
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
		snprintf(p->nonce, sizeof(p->nonce), "%llx", (unsigned long long)++s->nonce_counter);
		rc = encode_delta_response(t, p->version, p->nonce, changed, nchanged, removed, nremoved, &p->bb);
		if (rc < 0)
			goto out;
	}
	/* the client holds want from now on (removed names were encoded above) */
	xds_snapshot_unref(ts->sent_snap);
	xds_snapshot_unref(ts->sent_own);
	free(ts->sent_res);
	ts->sent_snap = xds_snapshot_ref(s->snap);
	ts->sent_own = st->own ? xds_snapshot_ref(st->own) : NULL;
	ts->sent_res = want;
	ts->sent_nres = nwant;
	want = NULL;
	delta_init_clear(ts);
	if (!p->bb)
		goto out;
	log_debug(SCOPE, "stream %llu (%s): delta %s: %zu changed, %zu removed, %zu held", (unsigned long long)st->id,
		  st->node_id ? st->node_id : "?", xds_type_short(t), nchanged, nremoved, ts->sent_nres);
	ts->sent = 1;
	copy_str(ts->sent_version, sizeof(ts->sent_version), p->version);
	copy_str(ts->sent_nonce, sizeof(ts->sent_nonce), p->nonce);
	ts->have_latest = 1;
	copy_str(ts->latest_version, sizeof(ts->latest_version), p->version);
	copy_str(ts->latest_nonce, sizeof(ts->latest_nonce), p->nonce);
	ts->state = SYNC_STALE;
	if (ts->nacked && strcmp(ts->nacked_version, p->version) != 0)
		ts->nacked = 0;
out:
	if (rc < 0)
		log_error(SCOPE, "stream %llu: cannot build delta %s response: %s", (unsigned long long)st->id,
			  xds_type_short(t), mesh_strerror(rc));
	free(want);
	free(held);
	free(changed);
	free(removed);
	return rc;
}

/* Every name of the request is within the caps.  Returns 0 or -MESH_ETOOBIG. */
static int delta_check_caps(const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
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

static int init_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct delta_init *)a)->name, ((const struct delta_init *)b)->name);
}

/* Take the client's initial_resource_versions (sorted, unique) as what it
 * holds until the first diff.  Returns 0 or -ENOMEM. */
static int delta_init_set(struct type_state *ts,
			  Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry **e, size_t n)
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
		struct delta_init *d = &ts->init[ts->ninit];
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

/* The explicit names after subscribing sub and unsubscribing unsub ("*"
 * entries are the wildcard's, handled by the caller).  Returns 0,
 * -ENOMEM or -MESH_ETOOBIG. */
static int delta_names_update(struct type_state *ts, char **sub, size_t nsub, const char **rm, size_t nrm)
{
	const char **all = NULL;
	char **v = NULL;
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
		rc = -MESH_ETOOBIG;
		goto out;
	}
	if (w) {
		v = calloc(w, sizeof(*v));
		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < w; i++) {
		v[i] = strdup(all[i]);
		if (!v[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	names_free(ts->names, ts->nnames);
	ts->names = v;
	ts->nnames = w;
	v = NULL;
out:
	names_free(v, w);
	free(all);
	return rc;
}

/* Whether the client dropped name itself: it unsubscribed it (and the
 * wildcard does not bring it), or it left the wildcard and never named it. */
static int delta_dropped(const struct type_state *ts, const struct xds_snapshot *snap, enum xds_type t,
			 const char **rm, size_t nrm, int left_wildcard, const char *name)
{
	if (nrm && bsearch(&name, rm, nrm, sizeof(*rm), name_cmp) &&
	    !(ts->wildcard && snap && xds_snapshot_find(snap, t, name)))
		return 1;
	return left_wildcard && !names_has(ts->names, ts->nnames, name);
}

/* Forget, without a removal, what the client dropped itself. */
static void delta_forget(struct xds_stream *st, enum xds_type t, const char **rm, size_t nrm, int left_wildcard)
{
	const struct xds_snapshot *snap = st->srv->snap;
	struct type_state *ts = &st->types[t];
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
	for (i = 0; i < ts->sent_nres; i++)
		if (!delta_dropped(ts, snap, t, rm, nrm, left_wildcard, ts->sent_res[i]->name))
			ts->sent_res[w++] = ts->sent_res[i];
	ts->sent_nres = w;
}

static void stream_handle_delta(struct xds_stream *st, const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
{
	struct xds_server *s = st->srv;
	const char *nonce = req->response_nonce ? req->response_nonce : "";
	const char **rm = NULL;
	struct type_state *ts;
	size_t i, nrm = 0;
	int t, rc, first, had_wildcard;
	enum xds_type xt;

	if (!st->have_node && req->node)
		stream_record_node(st, req->node);
	t = xds_type_from_url(req->type_url);
	if (t < 0) {
		log_info(SCOPE, "stream %llu (%s): ignoring delta request for unknown type \"%.200s\"",
			 (unsigned long long)st->id, st->node_id ? st->node_id : "?", req->type_url ? req->type_url : "");
		goto out;
	}
	xt = (enum xds_type)t;
	ts = &st->types[t];
	rc = delta_check_caps(req);
	if (rc < 0) {
		stream_finish(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many or too long resource names");
		goto out;
	}

	/* ACK or NACK of the latest response; an older nonce only subscribes */
	if (nonce[0] && ts->have_latest && strcmp(nonce, ts->latest_nonce) == 0) {
		if (req->error_detail) {
			const char *msg = req->error_detail->message ? req->error_detail->message : "";
			ts->nacked = 1;
			copy_str(ts->nacked_version, sizeof(ts->nacked_version), ts->latest_version);
			free(ts->error);
			ts->error = dup_capped(msg, XDS_MAX_ERROR_LEN);
			ts->state = SYNC_NACKED;
			metrics_xds_reject(xt);
			log_warn(SCOPE, "stream %llu (%s): delta %s NACK of version %s: %.1000s", (unsigned long long)st->id,
				 st->node_id ? st->node_id : "?", xds_type_short(xt), ts->latest_version, msg);
		} else {
			copy_str(ts->acked_version, sizeof(ts->acked_version), ts->latest_version);
			ts->state = SYNC_ACKED;
			free(ts->error);
			ts->error = NULL;
		}
	} else if (nonce[0]) {
		log_debug(SCOPE, "stream %llu (%s): stale delta %s nonce %.40s (latest %s)", (unsigned long long)st->id,
			  st->node_id ? st->node_id : "?", xds_type_short(xt), nonce, ts->latest_nonce);
	}

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
	rc = delta_names_update(ts, req->resource_names_subscribe, req->n_resource_names_subscribe, rm, nrm);
	if (rc < 0)
		goto fail;
	delta_forget(st, xt, rm, nrm, had_wildcard && !ts->wildcard);
	st->own_dirty = 1;
	if (s->snap)
		stream_enqueue(st, xt, NULL);
	goto out;
fail:
	stream_finish(st, rc == -MESH_ETOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
		      rc == -MESH_ETOOBIG ? "too many resource names" : "out of memory");
out:
	free(rm);
}

/* A message arrived (or the client half-closed when recv_buf is NULL). */
static void stream_on_recv(struct xds_stream *st, int ok)
{
	Envoy__Service__Discovery__V3__DiscoveryRequest *req = NULL;
	/* Take the message before the next RECV_MESSAGE lets gRPC core write
	 * st->recv_buf again from its own thread. */
	grpc_byte_buffer *bb = st->recv_buf;
	grpc_byte_buffer_reader reader;
	grpc_slice slice;
	int have_slice = 0;

	st->recv_buf = NULL;
	if (!ok || st->closed)
		goto out;
	if (!bb) {
		/* Half-close: the client sends no more requests; end the stream. */
		stream_finish(st, GRPC_STATUS_OK, "");
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		stream_finish(st, GRPC_STATUS_INTERNAL, "cannot read the request");
		goto out;
	}
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	have_slice = 1;
	if (GRPC_SLICE_LENGTH(slice) > XDS_MAX_REQUEST_BYTES) {
		stream_finish(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "DiscoveryRequest larger than 4 MiB");
		goto out;
	}
	if (st->delta) {
		Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *dreq =
			envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, GRPC_SLICE_LENGTH(slice),
										       GRPC_SLICE_START_PTR(slice));
		if (!dreq) {
			log_warn(SCOPE, "stream %llu from %s: unparsable DeltaDiscoveryRequest (%zu bytes); ending the stream",
				 (unsigned long long)st->id, st->peer ? st->peer : "?", (size_t)GRPC_SLICE_LENGTH(slice));
			stream_finish(st, GRPC_STATUS_INVALID_ARGUMENT,
				      "malformed DeltaDiscoveryRequest: not a valid "
				      "envoy.service.discovery.v3.DeltaDiscoveryRequest");
			goto out;
		}
		stream_handle_delta(st, dreq);
		envoy__service__discovery__v3__delta_discovery_request__free_unpacked(dreq, NULL);
		stream_start_recv(st);
		goto out;
	}
	req = envoy__service__discovery__v3__discovery_request__unpack(NULL, GRPC_SLICE_LENGTH(slice),
								       GRPC_SLICE_START_PTR(slice));
	if (!req) {
		log_warn(SCOPE, "stream %llu from %s: unparsable DiscoveryRequest (%zu bytes); ending the stream",
			 (unsigned long long)st->id, st->peer ? st->peer : "?", (size_t)GRPC_SLICE_LENGTH(slice));
		stream_finish(st, GRPC_STATUS_INVALID_ARGUMENT,
			      "malformed DiscoveryRequest: not a valid envoy.service.discovery.v3.DiscoveryRequest");
		goto out;
	}
	stream_handle_request(st, req);
	stream_start_recv(st);
out:
	if (req)
		envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
	if (have_slice)
		grpc_slice_unref(slice);
	if (bb)
		grpc_byte_buffer_destroy(bb);
}

/* ------------------------------------------------------------------ */
/* streams: life cycle */

static void stream_free(struct xds_stream *st)
{
	int t;

	if (!st)
		return;
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		type_state_cleanup(&st->types[t]);
	if (st->recv_buf)
		grpc_byte_buffer_destroy(st->recv_buf);
	if (st->send_buf)
		grpc_byte_buffer_destroy(st->send_buf);
	if (st->call)
		grpc_call_unref(st->call);
	grpc_metadata_array_destroy(&st->md);
	free(st->finish_msg);
	free(st->node_id);
	free(st->node_cluster);
	free(st->user_agent);
	free(st->node_ns);
	for (t = 0; t < (int)st->node_labels.n; t++) {
		free(st->node_labels.v[t].key);
		free(st->node_labels.v[t].value);
	}
	free(st->node_labels.v);
	xds_snapshot_unref(st->own);
	free(st->peer);
	free(st);
}

static void stream_maybe_free(struct xds_stream *st)
{
	struct xds_server *s = st->srv;
	struct xds_stream **pp;

	if (!st->closed || st->inflight > 0)
		return;
	for (pp = &s->streams; *pp; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	s->nstreams--;
	metrics_xds_connected(-1);
	log_info(SCOPE, "stream %llu (%s) ended%s", (unsigned long long)st->id, st->node_id ? st->node_id : "?",
		 st->cancelled ? " (cancelled)" : "");
	stream_free(st);
}

static void now_rfc3339(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A StreamAggregatedResources (or, delta set, DeltaAggregatedResources)
 * call arrived: take it from the slot. */
static void stream_accept(struct xds_server *s, struct accept_slot *a, int delta)
{
	struct xds_stream *st = calloc(1, sizeof(*st));
	grpc_op ops[1];
	char *peer;

	if (!st) {
		grpc_call_cancel_with_status(a->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
		grpc_call_unref(a->call);
		grpc_metadata_array_destroy(&a->md);
		goto out;
	}
	st->srv = s;
	st->id = ++s->next_stream_id;
	st->delta = delta;
	st->call = a->call;
	st->md = a->md;
	st->tag_md = (struct tag){ TAG_MD, st };
	st->tag_recv = (struct tag){ TAG_RECV, st };
	st->tag_send = (struct tag){ TAG_SEND, st };
	st->tag_close = (struct tag){ TAG_CLOSE, st };
	st->tag_status = (struct tag){ TAG_STATUS, st };
	peer = grpc_call_get_peer(st->call);
	if (peer) {
		const char *p = peer;
		if (strncmp(p, "ipv4:", 5) == 0 || strncmp(p, "ipv6:", 5) == 0)
			p += 5;
		st->peer = dup_capped(p, XDS_MAX_NODE_FIELD_LEN);
		gpr_free(peer);
	}
	now_rfc3339(st->connected_at, sizeof(st->connected_at));
	st->next = s->streams;
	s->streams = st;
	s->nstreams++;
	metrics_xds_connected(1);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	stream_start(st, ops, 1, &st->tag_md);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &st->cancelled;
	if (stream_start(st, ops, 1, &st->tag_close) < 0)
		st->closed = 1;
	stream_start_recv(st);
	log_debug(SCOPE, "stream %llu accepted from %s", (unsigned long long)st->id, st->peer ? st->peer : "?");
	stream_maybe_free(st);
out:
	a->call = NULL;
	grpc_metadata_array_init(&a->md);
}

static void stream_on_completion(struct xds_stream *st, enum tag_kind kind, int ok)
{
	st->inflight--;
	switch (kind) {
	case TAG_MD:
		break;
	case TAG_RECV:
		stream_on_recv(st, ok);
		break;
	case TAG_SEND:
		st->sending = 0;
		if (st->send_buf) {
			grpc_byte_buffer_destroy(st->send_buf);
			st->send_buf = NULL;
		}
		if (st->finishing)
			stream_send_status(st);
		else if (ok)
			stream_try_send(st);
		break;
	case TAG_CLOSE:
		st->closed = 1;
		break;
	case TAG_STATUS:
	default:
		break;
	}
	stream_maybe_free(st);
}

/* ------------------------------------------------------------------ */
/* calls answered UNIMPLEMENTED (unknown methods) */

static void unimpl_start(struct xds_server *s, struct accept_slot *a, const char *why)
{
	struct unimpl_call *u = calloc(1, sizeof(*u));
	grpc_op ops[3];
	grpc_slice details;
	grpc_call_error e;

	if (!u) {
		grpc_call_cancel_with_status(a->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
		grpc_call_unref(a->call);
		goto out;
	}
	u->call = a->call;
	u->tag = (struct tag){ TAG_UNIMPL_DONE, u };
	memset(ops, 0, sizeof(ops));
	details = grpc_slice_from_copied_string(why);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &u->cancelled;
	ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[2].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
	ops[2].data.send_status_from_server.status_details = &details;
	e = grpc_call_start_batch(u->call, ops, 3, &u->tag, NULL);
	grpc_slice_unref(details);
	if (e != GRPC_CALL_OK) {
		log_warn(SCOPE, "cannot answer an unimplemented call: %s", grpc_call_error_to_string(e));
		grpc_call_unref(u->call);
		free(u);
		goto out;
	}
	u->next = s->unimpl;
	s->unimpl = u;
out:
	a->call = NULL;
	grpc_metadata_array_destroy(&a->md);
	grpc_metadata_array_init(&a->md);
}

static void unimpl_done(struct xds_server *s, struct unimpl_call *u)
{
	struct unimpl_call **pp;

	for (pp = &s->unimpl; *pp; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	grpc_call_unref(u->call);
	free(u);
}

/* ------------------------------------------------------------------ */
/* accepting */

static int accept_request(struct xds_server *s, struct accept_slot *a)
{
	grpc_call_error e;

	if (s->shutting_down || a->pending)
		return 0;
	a->call = NULL;
	if (a->tag.kind == TAG_ACCEPT_GENERIC) {
		grpc_call_details_destroy(&a->details);
		grpc_call_details_init(&a->details);
		e = grpc_server_request_call(s->server, &a->call, &a->details, &a->md, s->cq, s->cq, &a->tag);
	} else if (a->tag.kind == TAG_ACCEPT_UNARY) {
		/* the call lives on the method owner's queue; the accept comes here */
		a->payload = NULL;
		e = grpc_server_request_registered_call(s->server, s->rm_unary, &a->call, &a->deadline, &a->md,
							&a->payload, s->unary.cq, s->cq, &a->tag);
	} else {
		e = grpc_server_request_registered_call(s->server, a->tag.kind == TAG_ACCEPT_SOTW ? s->rm_sotw : s->rm_delta,
							&a->call, &a->deadline, &a->md, NULL, s->cq, s->cq, &a->tag);
	}
	if (e != GRPC_CALL_OK) {
		log_error(SCOPE, "cannot request calls: %s", grpc_call_error_to_string(e));
		return -MESH_EGRPC;
	}
	a->pending = 1;
	return 0;
}

static void accept_done(struct xds_server *s, struct accept_slot *a, int ok)
{
	a->pending = 0;
	if (!ok || !a->call) {
		/* server shutting down */
		if (a->call) {
			grpc_call_unref(a->call);
			a->call = NULL;
		}
		if (a->payload) {
			grpc_byte_buffer_destroy(a->payload);
			a->payload = NULL;
		}
		return;
	}
	switch (a->tag.kind) {
	case TAG_ACCEPT_UNARY:
		s->unary.accept(s->unary.arg, a->call, &a->md, a->payload);
		a->call = NULL;
		a->payload = NULL;
		grpc_metadata_array_init(&a->md);
		break;
	case TAG_ACCEPT_SOTW:
		stream_accept(s, a, 0);
		break;
	case TAG_ACCEPT_DELTA:
		stream_accept(s, a, 1);
		break;
	default: {
		char method[256];
		size_t n = GRPC_SLICE_LENGTH(a->details.method);
		if (n >= sizeof(method))
			n = sizeof(method) - 1;
		memcpy(method, GRPC_SLICE_START_PTR(a->details.method), n);
		method[n] = '\0';
		log_info(SCOPE, "unknown method %s: UNIMPLEMENTED", method);
		unimpl_start(s, a, "meshd: unknown method");
		break;
	}
	}
	accept_request(s, a);
}

/* ------------------------------------------------------------------ */
/* xDS thread */

static void server_apply_publish(struct xds_server *s, struct xds_snapshot *snap, const struct timespec *when)
{
	struct xds_stream *st;
	int t;

	xds_snapshot_unref(s->snap);
	s->snap = snap;
	s->snap_time = *when;
	for (st = s->streams; st; st = st->next) {
		if (st->finishing || st->closed)
			continue;
		st->own_dirty = 1;
		for (t = 0; t < XDS_TYPE_COUNT; t++)
			if (st->types[t].subscribed)
				stream_enqueue(st, (enum xds_type)t, when);
	}
}

static void server_begin_shutdown(struct xds_server *s)
{
	if (s->shutting_down)
		return;
	s->shutting_down = 1;
	s->tag_shutdown = (struct tag){ TAG_SHUTDOWN, s };
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
	grpc_server_cancel_all_calls(s->server);
}

static void server_dispatch(struct xds_server *s, struct tag *tag, int ok)
{
	switch (tag->kind) {
	case TAG_ACCEPT_SOTW:
	case TAG_ACCEPT_DELTA:
	case TAG_ACCEPT_GENERIC:
	case TAG_ACCEPT_UNARY:
		accept_done(s, tag->owner, ok);
		break;
	case TAG_UNIMPL_DONE:
		unimpl_done(s, tag->owner);
		break;
	case TAG_SHUTDOWN:
		s->shutdown_done = 1;
		break;
	default:
		stream_on_completion(tag->owner, tag->kind, ok);
		break;
	}
}

static int server_drained(const struct xds_server *s)
{
	return s->shutdown_done && !s->streams && !s->unimpl && !s->acc_sotw.pending && !s->acc_delta.pending &&
	       !s->acc_generic.pending && !s->acc_unary.pending;
}

/* End streams whose in-flight response has not been taken within the send
 * timeout: their proxy is stuck or far too slow, and each holds a response
 * (and the snapshot behind it) in memory.  The proxy reconnects and resyncs;
 * the other streams never waited on it.  Returns how many are sending. */
static int server_reset_stuck(struct xds_server *s)
{
	struct timespec now;
	struct xds_stream *st;
	int sending = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (st = s->streams; st; st = st->next) {
		if (!st->sending || st->reset)
			continue;
		sending++;
		if (ts_diff(&now, &st->send_started) * 1000.0 < (double)s->send_timeout_ms)
			continue;
		st->reset = 1;
		log_warn(SCOPE, "stream %llu (%s): a response was not taken within %d ms; resetting the stream so "
			 "the proxy resyncs", (unsigned long long)st->id, st->node_id ? st->node_id : "?",
			 s->send_timeout_ms);
		grpc_call_cancel_with_status(st->call, GRPC_STATUS_UNAVAILABLE,
					     "meshd: xDS response not accepted in time; reconnect to resync", NULL);
	}
	return sending;
}

static void *xds_thread_main(void *arg)
{
	struct xds_server *s = arg;
	struct completion *batch = NULL;
	size_t cap = 0;
	int sending = 0;

	for (;;) {
		struct pollfd pfd[2] = { { s->q_efd, POLLIN, 0 }, { s->wake_efd, POLLIN, 0 } };
		struct xds_snapshot *snap = NULL;
		struct model *model = NULL;
		int has_model;
		struct timespec when = { 0, 0 };
		size_t n = 0, i;
		int stop;

		/* while responses are in flight, wake to check for stuck ones */
		int wait_ms = sending ? (s->send_timeout_ms < 1000 ? s->send_timeout_ms / 4 + 1 : 1000) : -1;

		if (poll(pfd, 2, wait_ms) < 0 && errno != EINTR)
			log_error(SCOPE, "poll: %s", strerror(errno));
		if (pfd[0].revents & POLLIN)
			eventfd_drain(s->q_efd);
		if (pfd[1].revents & POLLIN)
			eventfd_drain(s->wake_efd);

		pthread_mutex_lock(&s->q_lock);
		if (s->q_len) {
			/* swap buffers: the cq thread keeps appending to the other one */
			struct completion *q = s->q;
			size_t qcap = s->q_cap;
			n = s->q_len;
			s->q = batch;
			s->q_cap = cap;
			s->q_len = 0;
			batch = q;
			cap = qcap;
		}
		pthread_mutex_unlock(&s->q_lock);

		pthread_mutex_lock(&s->pub_lock);
		snap = s->pub_snap;
		s->pub_snap = NULL;
		model = s->pub_model;
		has_model = s->pub_has_model;
		s->pub_model = NULL;
		s->pub_has_model = 0;
		when = s->pub_time;
		stop = s->stop_requested;
		pthread_mutex_unlock(&s->pub_lock);

		pthread_mutex_lock(&s->lock);
		for (i = 0; i < n; i++)
			server_dispatch(s, batch[i].tag, batch[i].ok);
		if (has_model) {
			/* swap under the lock; the old one is dropped below */
			struct model *old_model = s->model;
			s->model = model;
			model = old_model;
			s->model_seq++;
		}
		if (snap && !s->shutting_down)
			server_apply_publish(s, snap, &when);
		else
			xds_snapshot_unref(snap);
		if (stop)
			server_begin_shutdown(s);
		sending = s->shutting_down ? 0 : server_reset_stuck(s);
		if (s->shutting_down && server_drained(s)) {
			pthread_mutex_unlock(&s->lock);
			model_unref(model);
			break;
		}
		pthread_mutex_unlock(&s->lock);
		model_unref(model);
	}
	free(batch);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* public API */

static void server_free(struct xds_server *s)
{
	if (!s)
		return;
	if (s->server)
		grpc_server_destroy(s->server);
	if (s->cq) {
		grpc_completion_queue_shutdown(s->cq);
		if (s->cq_thread_started)
			pthread_join(s->cq_thread, NULL);
		else
			while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		grpc_completion_queue_destroy(s->cq);
	}
	grpc_metadata_array_destroy(&s->acc_sotw.md);
	grpc_metadata_array_destroy(&s->acc_delta.md);
	grpc_metadata_array_destroy(&s->acc_generic.md);
	grpc_call_details_destroy(&s->acc_generic.details);
	grpc_metadata_array_destroy(&s->acc_unary.md);
	grpc_call_details_destroy(&s->acc_unary.details);
	xds_snapshot_unref(s->snap);
	xds_snapshot_unref(s->pub_snap);
	model_unref(s->model);
	model_unref(s->pub_model);
	free(s->q);
	if (s->q_efd >= 0)
		close(s->q_efd);
	if (s->wake_efd >= 0)
		close(s->wake_efd);
	pthread_mutex_destroy(&s->q_lock);
	pthread_mutex_destroy(&s->pub_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
	/* the last user of gRPC core waits for its threads to finish */
	grpc_shutdown_blocking();
}

static void accept_slot_init(struct accept_slot *a, enum tag_kind kind)
{
	a->tag = (struct tag){ kind, a };
	grpc_metadata_array_init(&a->md);
	grpc_call_details_init(&a->details);
}

int xds_server_start(const struct xds_server_config *cfg, struct xds_server **out)
{
	struct xds_server *s = NULL;
	grpc_server_credentials *creds;
	grpc_arg arg;
	grpc_channel_args args;
	int rc = 0;

	*out = NULL;
	if (!cfg || !cfg->addr)
		return -EINVAL;
	grpc_init();
	s = calloc(1, sizeof(*s));
	if (!s) {
		grpc_shutdown_blocking();
		return -ENOMEM;
	}
	pthread_mutex_init(&s->q_lock, NULL);
	pthread_mutex_init(&s->pub_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	accept_slot_init(&s->acc_sotw, TAG_ACCEPT_SOTW);
	accept_slot_init(&s->acc_delta, TAG_ACCEPT_DELTA);
	accept_slot_init(&s->acc_generic, TAG_ACCEPT_GENERIC);
	accept_slot_init(&s->acc_unary, TAG_ACCEPT_UNARY);
	s->q_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->q_efd < 0 || s->wake_efd < 0) {
		rc = -errno;
		goto out;
	}

	arg.type = GRPC_ARG_INTEGER;
	arg.key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	arg.value.integer = XDS_MAX_REQUEST_BYTES;
	args.num_args = 1;
	args.args = &arg;
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(&args, NULL);
	if (!s->cq || !s->server) {
		rc = -MESH_EGRPC;
		goto out;
	}
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	s->rm_sotw = grpc_server_register_method(s->server, XDS_METHOD_SOTW, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
	s->rm_delta = grpc_server_register_method(s->server, XDS_METHOD_DELTA, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
	if (!s->rm_sotw || !s->rm_delta) {
		rc = -MESH_EGRPC;
		goto out;
	}
	s->resolve = cfg->resolve;
	s->resolve_ctx = cfg->resolve_ctx;
	s->send_timeout_ms = cfg->send_timeout_ms > 0 ? cfg->send_timeout_ms : XDS_SEND_TIMEOUT_MS;
	if (cfg->unary) {
		s->unary = *cfg->unary;
		grpc_server_register_completion_queue(s->server, s->unary.cq, NULL);
		s->rm_unary = grpc_server_register_method(s->server, s->unary.method, NULL,
							  GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (!s->rm_unary) {
			rc = -MESH_EGRPC;
			goto out;
		}
	}
	creds = grpc_insecure_server_credentials_create();
	s->port = grpc_server_add_http2_port(s->server, cfg->addr, creds);
	grpc_server_credentials_release(creds);
	if (s->port <= 0) {
		log_error(SCOPE, "cannot listen on %s", cfg->addr);
		rc = -EADDRNOTAVAIL;
		goto out;
	}
	if (cfg->secure_addr && cfg->secure_creds) {
		s->secure_port = grpc_server_add_http2_port(s->server, cfg->secure_addr, cfg->secure_creds);
		if (s->secure_port <= 0) {
			log_error(SCOPE, "cannot listen on %s (TLS)", cfg->secure_addr);
			rc = -EADDRNOTAVAIL;
			goto out;
		}
	}
	grpc_server_start(s->server);
	if (accept_request(s, &s->acc_sotw) < 0 || accept_request(s, &s->acc_delta) < 0 ||
	    accept_request(s, &s->acc_generic) < 0 || (s->rm_unary && accept_request(s, &s->acc_unary) < 0)) {
		/* nothing is running yet but the server: stop it the normal way */
		rc = -MESH_EGRPC;
	}
	if (pthread_create(&s->cq_thread, NULL, cq_thread_main, s) != 0) {
		rc = rc ? rc : -EAGAIN;
		grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
		grpc_server_cancel_all_calls(s->server);
		goto out;
	}
	s->cq_thread_started = 1;
	if (pthread_create(&s->xds_thread, NULL, xds_thread_main, s) != 0) {
		/* the cq thread owns the queue; stop it without an xDS thread */
		rc = -EAGAIN;
		grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
		grpc_server_cancel_all_calls(s->server);
		goto out;
	}
	s->xds_thread_started = 1;
	if (rc < 0) {
		xds_server_stop(s);
		s = NULL;
		goto out;
	}
	log_info(SCOPE, "ADS server listening on %s (port %d)", cfg->addr, s->port);
	if (s->secure_port > 0)
		log_info(SCOPE, "ADS server listening on %s over TLS (port %d)", cfg->secure_addr, s->secure_port);
	*out = s;
	s = NULL;
out:
	if (s)
		server_free(s);
	return rc;
}

int xds_server_port(const struct xds_server *s)
{
	return s ? s->port : -EINVAL;
}

int xds_server_secure_port(const struct xds_server *s)
{
	return s ? s->secure_port : -EINVAL;
}

void xds_server_stop(struct xds_server *s)
{
	if (!s)
		return;
	if (s->xds_thread_started) {
		pthread_mutex_lock(&s->pub_lock);
		s->stop_requested = 1;
		pthread_mutex_unlock(&s->pub_lock);
		eventfd_signal(s->wake_efd);
		pthread_join(s->xds_thread, NULL);
	}
	/* Every tag has come back: the completion queue is idle. */
	server_free(s);
}

static void server_publish(struct xds_server *s, struct xds_snapshot *proxyless, int has_model, struct model *m)
{
	struct xds_snapshot *old;
	struct model *old_model = NULL;

	if (!s || !proxyless)
		return;
	xds_snapshot_ref(proxyless);
	pthread_mutex_lock(&s->pub_lock);
	if (has_model) {
		old_model = s->pub_model;
		s->pub_model = model_ref(m);
		s->pub_has_model = 1;
	}
	old = s->pub_snap;
	s->pub_snap = proxyless;
	/* Coalesced publishes count convergence from the first one. */
	if (!old)
		clock_gettime(CLOCK_MONOTONIC, &s->pub_time);
	pthread_mutex_unlock(&s->pub_lock);
	xds_snapshot_unref(old);
	model_unref(old_model);
	eventfd_signal(s->wake_efd);
}

void xds_server_publish(struct xds_server *s, struct xds_snapshot *proxyless)
{
	server_publish(s, proxyless, 0, NULL);
}

void xds_server_publish_model(struct xds_server *s, struct xds_snapshot *proxyless, struct model *m)
{
	server_publish(s, proxyless, 1, m);
}

int xds_server_connected(struct xds_server *s)
{
	int n;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = s->nstreams;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static const char *sync_state_name(const struct type_state *ts)
{
	switch (ts->state) {
	case SYNC_STALE: return "STALE";
	case SYNC_ACKED: return "SYNCED";
	case SYNC_NACKED: return "ERROR";
	case SYNC_NONE:
	default: return "NOT SENT";
	}
}

static void syncz_stream(const struct xds_stream *st, struct mesh_buf *out)
{
	int t, first = 1;

	mesh_buf_puts(out, "{\"proxy\":");
	json_put_string(out, st->node_id ? st->node_id : "");
	mesh_buf_puts(out, ",\"flavour\":");
	json_put_string(out, st->proxyless ? "proxyless" : "sidecar");
	mesh_buf_puts(out, ",\"cluster\":");
	json_put_string(out, st->node_cluster ? st->node_cluster : "");
	mesh_buf_puts(out, ",\"user_agent\":");
	json_put_string(out, st->user_agent ? st->user_agent : "");
	mesh_buf_puts(out, ",\"peer\":");
	json_put_string(out, st->peer ? st->peer : "");
	mesh_buf_puts(out, ",\"connected_at\":");
	json_put_string(out, st->connected_at);
	mesh_buf_printf(out, ",\"delta\":%s", st->delta ? "true" : "false");
	mesh_buf_printf(out, ",\"stream\":%llu,\"types\":{", (unsigned long long)st->id);
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct type_state *ts = &st->types[t];
		if (!ts->subscribed)
			continue;
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		json_put_string(out, xds_type_short((enum xds_type)t));
		mesh_buf_puts(out, ":{\"sent_version\":");
		json_put_string(out, ts->sent_version);
		mesh_buf_puts(out, ",\"sent_nonce\":");
		json_put_string(out, ts->sent_nonce);
		mesh_buf_puts(out, ",\"acked_version\":");
		json_put_string(out, ts->acked_version);
		mesh_buf_puts(out, ",\"state\":");
		json_put_string(out, sync_state_name(ts));
		if (ts->error) {
			mesh_buf_puts(out, ",\"error\":");
			json_put_string(out, ts->error);
		}
		mesh_buf_printf(out, ",\"resources\":%zu,\"wildcard\":%s}", ts->sent_nres,
				ts->wildcard ? "true" : "false");
	}
	mesh_buf_puts(out, "}}");
}

int xds_server_syncz(struct xds_server *s, struct mesh_buf *out)
{
	const struct xds_stream *st;
	int first = 1;

	if (!s || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	mesh_buf_putc(out, '[');
	for (st = s->streams; st; st = st->next) {
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		syncz_stream(st, out);
	}
	mesh_buf_putc(out, ']');
	pthread_mutex_unlock(&s->lock);
	return out->err;
}

/* Envoy's admin config dump layout, one section per xDS type. */
static const struct {
	const char *type;       /* envoy.admin.v3 message */
	const char *list;       /* repeated field holding the resources */
	const char *field;      /* field holding one resource */
	int named;              /* carries a "name" next to the resource */
} dump_layout[XDS_TYPE_COUNT] = {
	[XDS_LISTENER] = { "ListenersConfigDump", "dynamicListeners", "activeState", 1 },
	[XDS_ROUTE] = { "RoutesConfigDump", "dynamicRouteConfigs", "routeConfig", 0 },
	[XDS_CLUSTER] = { "ClustersConfigDump", "dynamicActiveClusters", "cluster", 0 },
	[XDS_ENDPOINT] = { "EndpointsConfigDump", "dynamicEndpointConfigs", "endpointConfig", 0 },
	[XDS_SECRET] = { "SecretsConfigDump", "dynamicActiveSecrets", "secret", 1 },
};

static void dump_resource(enum xds_type t, const struct type_state *ts, const struct xds_resource *r,
			  struct mesh_buf *out)
{
	mesh_buf_putc(out, '{');
	if (dump_layout[t].named) {
		mesh_buf_puts(out, "\"name\":");
		json_put_string(out, r->name);
		mesh_buf_putc(out, ',');
	}
	/* Envoy's DynamicListener keeps the version inside activeState */
	if (t != XDS_LISTENER) {
		mesh_buf_puts(out, "\"versionInfo\":");
		json_put_string(out, ts->sent_version);
	}
	if (t == XDS_SECRET) {
		/* Key material never leaves meshd through a debug view. */
		mesh_buf_puts(out, "}");
		return;
	}
	if (t != XDS_LISTENER)
		mesh_buf_putc(out, ',');
	mesh_buf_printf(out, "\"%s\":", dump_layout[t].field);
	if (t == XDS_LISTENER) {
		mesh_buf_puts(out, "{\"versionInfo\":");
		json_put_string(out, ts->sent_version);
		mesh_buf_puts(out, ",\"listener\":");
	}
	if (pbjson_render_any(xds_type_url(t), r->data, r->len, out) < 0 && !out->err) {
		/* not decodable here: say so rather than fail the whole dump */
		mesh_buf_puts(out, "{\"@type\":");
		json_put_string(out, xds_type_url(t));
		mesh_buf_printf(out, ",\"@undecoded_bytes\":%zu}", r->len);
	}
	if (t == XDS_LISTENER)
		mesh_buf_putc(out, '}');
	mesh_buf_putc(out, '}');
}

int xds_server_config_dump(struct xds_server *s, const char *proxy_id, struct mesh_buf *out)
{
	const struct xds_stream *st, *found = NULL;
	int t, rc = 0, first = 1;
	size_t i;

	if (!s || !proxy_id || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	/* the newest stream of that proxy (streams are kept newest first) */
	for (st = s->streams; st && !found; st = st->next)
		if (st->node_id && strcmp(st->node_id, proxy_id) == 0 && !st->closed)
			found = st;
	if (!found) {
		rc = -ENOENT;
		goto out;
	}
	mesh_buf_puts(out, "{\"configs\":[");
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct type_state *ts = &found->types[t];
		if (!ts->sent)
			continue;
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		mesh_buf_printf(out, "{\"@type\":\"type.googleapis.com/envoy.admin.v3.%s\",\"versionInfo\":",
				dump_layout[t].type);
		json_put_string(out, ts->sent_version);
		mesh_buf_printf(out, ",\"%s\":[", dump_layout[t].list);
		for (i = 0; i < ts->sent_nres; i++) {
			if (i)
				mesh_buf_putc(out, ',');
			dump_resource((enum xds_type)t, ts, ts->sent_res[i], out);
		}
		mesh_buf_puts(out, "]}");
	}
	mesh_buf_puts(out, "]}");
	rc = out->err;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}
