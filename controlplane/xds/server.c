/*
 * server.c - the ADS server's gRPC C core plumbing: listening ports,
 * accepting calls, the completion-queue thread, batches, the send timeout
 * and the unary (CA) method.  What to send is decided by the transport-free
 * protocol core (ads.c): this file feeds it each request's bytes and each
 * published snapshot, sends the responses it returns one at a time, and
 * ends a call with the status it asks for.
 *
 * Two threads.  The completion-queue thread calls
 * grpc_completion_queue_next() and hands each completion (tag, ok) to the
 * xDS thread over the common thread-to-thread queue (common/queue.h): the
 * tag itself is the queue item, since a tag has at most one operation
 * outstanding.  Of a stream it touches only the request just received
 * (recv_buf, recv_ack) and reads expect: it reduces a plain SotW ACK on
 * arrival (cq_reduce_recv).  The xDS thread poll()s that eventfd and a
 * second one signalled by xds_server_publish()/xds_server_stop(); it owns every
 * stream (the call, its one SEND_MESSAGE slot, and the core's stream
 * state) and starts every gRPC batch.  The debug views read the core under
 * srv->lock, which the xDS thread holds while it changes that state.
 *
 * Unknown methods answer UNIMPLEMENTED.
 *
 * A response whose answer will be large (a SotW ACK repeats every name
 * subscribed: ~140 KB for a sidecar's EDS) starts only while the answers
 * expected and not yet received fit a budget (xds_server_config.
 * reply_budget); the rest wait in order.  gRPC core reads what the
 * clients send whether or not we can take it yet, so 2,000 sidecars
 * answering one push at once would otherwise sit in its read buffers.
 *
 * Ownership: a stream is freed by the xDS thread once its call has ended
 * (RECV_CLOSE_ON_SERVER completed) and no batch of it is in flight.
 */
#include "controlplane/xds/server.h"

#include "common/err.h"
#include "common/log.h"
#include "common/queue.h"
#include "controlplane/metrics/metrics.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCOPE "xds"

#define XDS_METHOD_SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define XDS_METHOD_DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

/* Largest DiscoveryRequest accepted (gRPC core enforces it on receive). */
#define XDS_MAX_REQUEST_BYTES (4 * 1024 * 1024)
#define XDS_MAX_PEER_LEN 1024
/* Quiet time after a push before freed memory is trimmed (ms). */
#define XDS_TRIM_IDLE_MS 500

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
	/* cq thread -> xDS thread: a tag has at most one completion
	 * outstanding, so it can be the queue item itself */
	struct mesh_queue_item qi;
	int ok;
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

/* One ADS call: the gRPC side of a core stream. */
struct xds_stream {
	struct xds_server *srv;
	struct xds_stream *next;
	struct xds_ads_stream *ads;        /* the protocol state */
	uint64_t id;
	grpc_call *call;
	struct tag tag_md, tag_recv, tag_send, tag_close, tag_status;
	grpc_byte_buffer *recv_buf;
	/* What a plain ACK must look like, taken by the xDS thread before
	 * each RECV_MESSAGE, read by the cq thread on its completion (gRPC's
	 * batch start -> completion -> grpc_completion_queue_next orders the
	 * two); and the cq thread's reduction of the request received, in
	 * place of recv_buf (NULL when it kept the bytes) */
	struct xds_ads_ack_expect expect;
	struct xds_ads_ack *recv_ack;
	grpc_byte_buffer *send_buf;        /* in flight */
	int inflight;                      /* batches started, not completed */
	int sending;
	struct timespec send_started;      /* when the in-flight SEND_MESSAGE began */
	struct timespec send_enqueued;     /* when its response was queued (pilot_xds_push_time) */
	enum xds_type send_type;           /* its type (the push time's label) */
	/* the answer this stream owes (xds_ads_stream_reply_hint), counted
	 * in srv->reply_out until its next request; 0: none */
	size_t reply_held;
	struct timespec reply_since;
	struct xds_stream *wait_next;      /* in srv's wait list (waiting set) */
	int waiting;
	int reset;                         /* cancelled by us: a send was stuck */
	int closed;                        /* RECV_CLOSE_ON_SERVER completed */
	int cancelled;
	int status_sent;
};

/* A per-key set waiting for the xDS thread. */
struct pub_set {
	struct pub_set *next;
	char *key;
	struct xds_snapshot *snap;
	uint64_t answered;
};

/* A Secret provider's answer waiting for the xDS thread
 * (xds_server_secret_reply). */
struct pub_secret {
	struct pub_secret *next;
	uint64_t stream, seq;
	struct xds_snapshot *set;
	enum xds_ads_status code;
	char *msg;
};

static void pub_secrets_free(struct pub_secret *p)
{
	while (p) {
		struct pub_secret *n = p->next;
		xds_snapshot_unref(p->set);
		free(p->msg);
		free(p);
		p = n;
	}
}

static void pub_sets_free(struct pub_set *p)
{
	while (p) {
		struct pub_set *n = p->next;
		free(p->key);
		xds_snapshot_unref(p->snap);
		free(p);
		p = n;
	}
}

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
	atomic_uint_fast64_t reduced_acks; /* cq_reduce_recv's, for tests */
	int cq_thread_started, xds_thread_started;

	/* completion handoff (cq thread -> xDS thread): struct tag items */
	struct mesh_queue cq_q;
	int cq_q_ready;

	/* publish / stop (any thread -> xDS thread) */
	pthread_mutex_t pub_lock;
	struct xds_snapshot *pub_snap[XDS_FLAVOUR_COUNT];
	struct pub_set *pub_sets, **pub_sets_tail; /* in publish order */
	struct pub_secret *pub_secrets, **pub_secrets_tail; /* in reply order */
	struct timespec pub_time;
	int pub_pending;
	int stop_requested;
	int wake_efd;

	/* xDS thread state; debug readers take lock */
	pthread_mutex_t lock;
	struct xds_ads *ads;               /* the protocol core */
	int send_timeout_ms;
	struct timespec stuck_checked;     /* server_reset_stuck's last walk */
	/* where a push's time goes (logged once its responses are all taken):
	 * published, queued for every stream, every send completed */
	int nsending;                      /* streams with a SEND_MESSAGE in flight */
	int push_open;                     /* a push is being sent */
	int push_streams;
	struct timespec push_pub, push_queued;
	int trim_due;                      /* a push was sent: trim once idle */
	/* answers in flight (xds_server_config.reply_budget): their bytes,
	 * and the streams waiting for room, oldest first */
	size_t reply_budget, reply_out;
	int reply_hold_ms;
	struct xds_stream *wait_head, **wait_tail;
	struct timespec reply_checked;     /* server_reply_expire's last walk */
	struct xds_stream *streams;
	struct unimpl_call *unimpl;
	struct accept_slot acc_sotw, acc_delta, acc_generic, acc_unary;
	struct tag tag_shutdown;
	int shutting_down;
	int shutdown_done;
};

/* ------------------------------------------------------------------ */
/* small helpers */

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

/*
 * A request arrived on st (the cq thread; the xDS thread touches neither
 * recv_buf nor recv_ack until this completion reaches it): a plain SotW
 * ACK naming the names the stream holds is reduced to type, version,
 * nonce and names hash, and its bytes are freed now.  2,000 sidecars
 * ACKing an endpoint change each name every cluster (~140 KB, 280 MB a
 * burst); held whole in the queue while the xDS thread worked through
 * them they took the SotW sidecar row's peak RSS to 220-340 MB (160-250 MB
 * reduced; what is left of the burst is gRPC core's, the ACKs still being
 * read).  Anything else (a Node, a NACK, other names, no memory) keeps its
 * bytes for the full path.
 */
static void cq_reduce_recv(struct xds_server *s, struct xds_stream *st)
{
	grpc_byte_buffer_reader reader;
	struct xds_ads_ack *ack = NULL;
	grpc_slice slice;

	if (!st->recv_buf || !st->expect.ok)
		goto out;
	ack = malloc(sizeof(*ack));
	if (!ack)
		goto out;
	if (!grpc_byte_buffer_reader_init(&reader, st->recv_buf))
		goto out;
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	if (xds_ads_ack_reduce(&st->expect, GRPC_SLICE_START_PTR(slice), GRPC_SLICE_LENGTH(slice), ack)) {
		grpc_byte_buffer_destroy(st->recv_buf);
		st->recv_buf = NULL;
		st->recv_ack = ack;
		ack = NULL;
		atomic_fetch_add_explicit(&s->reduced_acks, 1, memory_order_relaxed);
	}
	grpc_slice_unref(slice);
out:
	free(ack);
}

static void *cq_thread_main(void *arg)
{
	struct xds_server *s = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		struct tag *tag;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		tag = ev.tag;
		tag->ok = ev.success;
		if (tag->kind == TAG_RECV && ev.success)
			cq_reduce_recv(s, tag->owner);
		mesh_queue_push(&s->cq_q, &tag->qi);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* streams: sending */

static void stream_send_status(struct xds_stream *st);
static void stream_head_unref(void *r);

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

/* Whether the core is ending the stream. */
static int stream_ending(const struct xds_stream *st)
{
	enum xds_ads_status code;
	const char *msg;

	return xds_ads_stream_finishing(st->ads, &code, &msg);
}

/* ------------------------------------------------------------------ */
/* the budget of answers in flight */

/* st's answer arrived (or will not come): its share goes back. */
static void stream_reply_release(struct xds_stream *st)
{
	st->srv->reply_out -= st->reply_held;
	st->reply_held = 0;
}

/* Queue st for room in the budget: at the tail, or at the head when it
 * was just taken from there and still does not fit. */
static void stream_wait(struct xds_stream *st, int front)
{
	struct xds_server *s = st->srv;

	if (st->waiting)
		return;
	st->waiting = 1;
	if (front && s->wait_head) {
		st->wait_next = s->wait_head;
		s->wait_head = st;
		return;
	}
	st->wait_next = NULL;
	*s->wait_tail = st;
	s->wait_tail = &st->wait_next;
}

/* Take st out of the wait list (it is ending). */
static void stream_unwait(struct xds_stream *st)
{
	struct xds_server *s = st->srv;
	struct xds_stream **pp;

	if (!st->waiting)
		return;
	for (pp = &s->wait_head; *pp; pp = &(*pp)->wait_next) {
		if (*pp == st) {
			*pp = st->wait_next;
			break;
		}
	}
	if (!s->wait_head || s->wait_tail == &st->wait_next) {
		/* it was the last: find the new tail */
		s->wait_tail = &s->wait_head;
		while (*s->wait_tail)
			s->wait_tail = &(*s->wait_tail)->wait_next;
	}
	st->waiting = 0;
	st->wait_next = NULL;
}

/*
 * Whether st may start its next response now, as the budget of answers
 * in flight has it: 1 (its share counted when it owes a large answer and
 * did not already; *took set then), or 0 with st queued for room.  One
 * answer always fits into an empty budget, so a share larger than the
 * whole budget still goes, alone.  front: st comes from the head of the
 * wait list.
 */
static int stream_reply_admit(struct xds_stream *st, int front, int *took)
{
	struct xds_server *s = st->srv;
	size_t hint;

	*took = 0;
	if (st->reply_held)
		return 1;
	hint = xds_ads_stream_reply_hint(st->ads);
	if (hint < XDS_REPLY_MIN)
		return 1;
	if (s->reply_out > 0 && (s->wait_head && !front ? 1 : s->reply_out + hint > s->reply_budget)) {
		/* others wait already (first come, first served), or no room */
		stream_wait(st, front);
		return 0;
	}
	st->reply_held = hint;
	s->reply_out += hint;
	clock_gettime(CLOCK_MONOTONIC, &st->reply_since);
	*took = 1;
	return 1;
}

static void stream_pump_from(struct xds_stream *st, int front);

/* Start the waiting streams that fit, oldest first. */
static void server_pump_waiting(struct xds_server *s)
{
	while (s->wait_head && (s->reply_out == 0 || s->reply_out + XDS_REPLY_MIN <= s->reply_budget)) {
		struct xds_stream *st = s->wait_head;

		s->wait_head = st->wait_next;
		if (!s->wait_head)
			s->wait_tail = &s->wait_head;
		st->waiting = 0;
		st->wait_next = NULL;
		stream_pump_from(st, 1);
		if (st->waiting)
			break; /* back at the head: no room for it yet */
	}
}

/* Release the shares of streams that owe an answer for longer than
 * reply_hold_ms (a proxy that never ACKs must not stall the others),
 * walking the streams at most every 250 ms and only while some wait. */
static void server_reply_expire(struct xds_server *s)
{
	struct timespec now;
	struct xds_stream *st;

	if (!s->wait_head || !s->reply_out)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (s->reply_checked.tv_sec && ts_diff(&now, &s->reply_checked) < 0.25)
		return;
	s->reply_checked = now;
	for (st = s->streams; st; st = st->next) {
		if (st->reply_held && ts_diff(&now, &st->reply_since) * 1000.0 >= (double)s->reply_hold_ms) {
			log_debug(SCOPE, "stream %llu: no answer within %d ms; its share of the reply budget goes back",
				  (unsigned long long)st->id, s->reply_hold_ms);
			stream_reply_release(st);
		}
	}
}

/* Send what the core has for this stream, one message at a time, or its
 * status once the core ends the stream and nothing is being sent. */
static void stream_pump(struct xds_stream *st)
{
	stream_pump_from(st, 0);
}

static void stream_pump_from(struct xds_stream *st, int front)
{
	struct xds_ads_response resp;
	grpc_slice slice;
	grpc_op op;
	size_t size;
	int rc, took;

	if (st->closed || st->status_sent)
		return;
	if (stream_ending(st)) {
		if (!st->sending)
			stream_send_status(st);
		return;
	}
	if (st->sending || !stream_reply_admit(st, front, &took))
		return;
	do
		rc = xds_ads_stream_next(st->ads, &resp);
	while (rc < 0); /* that response was dropped (logged): the next one */
	if (rc == 0) {
		if (took)
			stream_reply_release(st); /* nothing went: nothing to answer */
		return;
	}
	size = resp.len + (resp.head ? resp.head->len : 0);
	/* the slice takes the bytes */
	slice = grpc_slice_new(resp.data, resp.len, free);
	if (resp.head) {
		/* the shared part first; its slice holds the reference */
		grpc_slice parts[2];

		parts[0] = grpc_slice_new_with_user_data((void *)resp.head->data, resp.head->len, stream_head_unref,
							 (void *)resp.head);
		parts[1] = slice;
		st->send_buf = grpc_raw_byte_buffer_create(parts, 2);
		grpc_slice_unref(parts[0]);
	} else {
		st->send_buf = grpc_raw_byte_buffer_create(&slice, 1);
	}
	grpc_slice_unref(slice);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = st->send_buf;
	if (stream_start(st, &op, 1, &st->tag_send) < 0) {
		grpc_byte_buffer_destroy(st->send_buf);
		st->send_buf = NULL;
		return;
	}
	st->sending = 1;
	st->srv->nsending++;
	clock_gettime(CLOCK_MONOTONIC, &st->send_started);
	st->send_enqueued = resp.enqueued;
	st->send_type = resp.type;
	metrics_xds_config_size(resp.type, size);
}

/* A shared response head's slice is gone (any thread: gRPC's). */
static void stream_head_unref(void *r)
{
	xds_resource_unref(r);
}

static void stream_send_status(struct xds_stream *st)
{
	enum xds_ads_status code = XDS_ADS_STATUS_OK;
	const char *msg = "";
	grpc_op op;
	grpc_slice details;

	if (st->status_sent || st->closed)
		return;
	st->status_sent = 1;
	(void)xds_ads_stream_finishing(st->ads, &code, &msg);
	memset(&op, 0, sizeof(op));
	details = grpc_slice_from_copied_string(msg);
	op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op.data.send_status_from_server.trailing_metadata_count = 0;
	/* the core's codes are gRPC's status numbers */
	op.data.send_status_from_server.status = (grpc_status_code)code;
	op.data.send_status_from_server.status_details = &details;
	(void)stream_start(st, &op, 1, &st->tag_status); /* logged; the call is cancelled at shutdown */
	grpc_slice_unref(details);
}

/* ------------------------------------------------------------------ */
/* streams: receiving */

static void stream_start_recv(struct xds_stream *st)
{
	grpc_op op;

	if (st->closed || stream_ending(st))
		return;
	/* only this stream's requests change what it expects, and this
	 * batch asks for the next one */
	xds_ads_stream_ack_expect(st->ads, &st->expect);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &st->recv_buf;
	(void)stream_start(st, &op, 1, &st->tag_recv); /* logged; the client's status ends the call */
}

/* A message arrived (or the client half-closed when recv_buf is NULL). */
static void stream_on_recv(struct xds_stream *st, int ok)
{
	/* Take the message before the next RECV_MESSAGE lets gRPC core write
	 * st->recv_buf again from its own thread. */
	grpc_byte_buffer *bb = st->recv_buf;
	struct xds_ads_ack *ack = st->recv_ack;
	grpc_byte_buffer_reader reader;
	grpc_slice slice;
	int have_slice = 0;

	st->recv_buf = NULL;
	st->recv_ack = NULL;
	/* any request (or the end of them) is the client's answer */
	stream_reply_release(st);
	if (!ok || st->closed)
		goto out;
	if (ack) {
		/* reduced on arrival (cq_reduce_recv) */
		if (xds_ads_stream_recv_ack(st->ads, ack) == 0)
			stream_start_recv(st);
		goto out;
	}
	if (!bb) {
		/* Half-close: the client sends no more requests; end the stream. */
		xds_ads_stream_end(st->ads, XDS_ADS_STATUS_OK, "");
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		xds_ads_stream_end(st->ads, XDS_ADS_STATUS_INTERNAL, "cannot read the request");
		goto out;
	}
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	have_slice = 1;
	/* an unparsable or oversized request ends the stream (the core says how) */
	if (xds_ads_stream_recv(st->ads, GRPC_SLICE_START_PTR(slice), GRPC_SLICE_LENGTH(slice)) == 0)
		stream_start_recv(st);
out:
	stream_pump(st);
	if (have_slice)
		grpc_slice_unref(slice);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	free(ack);
}

/* ------------------------------------------------------------------ */
/* streams: life cycle */

static void stream_free(struct xds_stream *st)
{
	if (!st)
		return;
	stream_unwait(st);
	stream_reply_release(st);
	xds_ads_stream_free(st->ads);
	if (st->recv_buf)
		grpc_byte_buffer_destroy(st->recv_buf);
	free(st->recv_ack);
	if (st->send_buf)
		grpc_byte_buffer_destroy(st->send_buf);
	if (st->call)
		grpc_call_unref(st->call);
	free(st);
}

static void stream_maybe_free(struct xds_stream *st)
{
	struct xds_server *s = st->srv;
	struct xds_stream **pp;
	const char *node;

	if (!st->closed || st->inflight > 0)
		return;
	for (pp = &s->streams; *pp; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	metrics_xds_connected(-1);
	node = xds_ads_stream_node_id(st->ads);
	log_info(SCOPE, "stream %llu (%s) ended%s", (unsigned long long)st->id, node ? node : "?",
		 st->cancelled ? " (cancelled)" : "");
	stream_free(st);
}

/* What the call says of its caller, for the core's Secrets: whether it
 * came over TLS (the auth context's transport security type, as the CA
 * checks it), the SPIFFE ID of a verified client certificate and its
 * "authorization" metadata, which the Secret provider authenticates
 * (Istio's xDS authenticators on 15012: the client certificate, then the
 * bearer token). */
static int stream_credentials(struct xds_ads_stream *ads, const struct accept_slot *a)
{
	grpc_auth_context *ctx = grpc_call_auth_context(a->call);
	const grpc_auth_property *p;
	grpc_auth_property_iterator it;
	const char *authz = NULL;
	char peer_id[XDS_MAX_PEER_LEN + 1] = "";
	size_t i, len = 0;
	int secure = 0, rc;

	if (ctx) {
		it = grpc_auth_context_find_properties_by_name(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
		p = grpc_auth_property_iterator_next(&it);
		secure = p && p->value && p->value_length == strlen(GRPC_SSL_TRANSPORT_SECURITY_TYPE) &&
			 strncmp(p->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE, p->value_length) == 0;
		/* a client certificate TLS verified against meshd's root
		 * (ca_service.c asks for one): its SPIFFE ID, which gRPC sets
		 * only for a certificate with exactly one spiffe:// URI SAN */
		if (secure && grpc_auth_context_peer_is_authenticated(ctx)) {
			it = grpc_auth_context_find_properties_by_name(ctx, GRPC_PEER_SPIFFE_ID_PROPERTY_NAME);
			p = grpc_auth_property_iterator_next(&it);
			if (p && p->value && p->value_length <= XDS_MAX_PEER_LEN && !memchr(p->value, '\0', p->value_length)) {
				memcpy(peer_id, p->value, p->value_length);
				peer_id[p->value_length] = '\0';
			}
		}
		grpc_auth_context_release(ctx);
	}
	for (i = 0; i < a->md.count; i++) {
		const grpc_metadata *m = &a->md.metadata[i];
		if (grpc_slice_str_cmp(m->key, "authorization") != 0)
			continue;
		authz = (const char *)GRPC_SLICE_START_PTR(m->value);
		len = GRPC_SLICE_LENGTH(m->value);
		break;
	}
	rc = xds_ads_stream_credentials(ads, secure, authz, len, peer_id[0] ? peer_id : NULL);
	return rc;
}

/* A StreamAggregatedResources (or, delta set, DeltaAggregatedResources)
 * call arrived: take it from the slot. */
static void stream_accept(struct xds_server *s, struct accept_slot *a, int delta)
{
	struct xds_stream *st = calloc(1, sizeof(*st));
	char peer_buf[XDS_MAX_PEER_LEN + 1] = "";
	const char *peer_s = NULL;
	grpc_op ops[1];
	char *peer;

	if (st) {
		peer = grpc_call_get_peer(a->call);
		if (peer) {
			const char *p = peer;
			if (strncmp(p, "ipv4:", 5) == 0 || strncmp(p, "ipv6:", 5) == 0)
				p += 5;
			snprintf(peer_buf, sizeof(peer_buf), "%s", p);
			peer_s = peer_buf;
			gpr_free(peer);
		}
		if (xds_ads_stream_new(s->ads, delta, peer_s, st, &st->ads) < 0) {
			free(st);
			st = NULL;
		} else if (stream_credentials(st->ads, a) < 0) {
			xds_ads_stream_free(st->ads);
			free(st);
			st = NULL;
		}
	}
	if (!st) {
		grpc_call_cancel_with_status(a->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
		grpc_call_unref(a->call);
		grpc_metadata_array_destroy(&a->md);
		goto out;
	}
	st->srv = s;
	st->id = xds_ads_stream_id(st->ads);
	st->call = a->call;
	/* nothing reads the request headers (the Node says who the proxy
	 * is): the array gRPC filled (~480 bytes a stream) goes now, not
	 * with the stream */
	grpc_metadata_array_destroy(&a->md);
	st->tag_md = (struct tag){ .kind = TAG_MD, .owner = st };
	st->tag_recv = (struct tag){ .kind = TAG_RECV, .owner = st };
	st->tag_send = (struct tag){ .kind = TAG_SEND, .owner = st };
	st->tag_close = (struct tag){ .kind = TAG_CLOSE, .owner = st };
	st->tag_status = (struct tag){ .kind = TAG_STATUS, .owner = st };
	st->next = s->streams;
	s->streams = st;
	metrics_xds_connected(1);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	(void)stream_start(st, ops, 1, &st->tag_md); /* logged; RECV_CLOSE below decides */
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &st->cancelled;
	if (stream_start(st, ops, 1, &st->tag_close) < 0) {
		st->closed = 1;
		xds_ads_stream_closed(st->ads);
	}
	stream_start_recv(st);
	log_debug(SCOPE, "stream %llu accepted from %s", (unsigned long long)st->id, peer_s ? peer_s : "?");
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
		if (st->sending && ok) {
			struct timespec now;

			/* Istio's push time: built (queued) until sent */
			clock_gettime(CLOCK_MONOTONIC, &now);
			metrics_xds_send_time(ts_diff(&now, &st->send_started));
			if (st->send_enqueued.tv_sec || st->send_enqueued.tv_nsec)
				metrics_xds_push_time(st->send_type, ts_diff(&now, &st->send_enqueued));
		}
		if (st->sending)
			st->srv->nsending--;
		st->sending = 0;
		if (st->send_buf) {
			grpc_byte_buffer_destroy(st->send_buf);
			st->send_buf = NULL;
		}
		/* a failed send ends the call; only a status is left to send */
		if (ok || stream_ending(st))
			stream_pump(st);
		break;
	case TAG_CLOSE:
		st->closed = 1;
		xds_ads_stream_closed(st->ads);
		stream_reply_release(st);
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
	u->tag = (struct tag){ .kind = TAG_UNIMPL_DONE, .owner = u };
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

/* The core queued responses for this stream during a publish: start the
 * first one now, before the next stream's are built. */
static void stream_queued(void *user)
{
	stream_pump(user);
}

/* Hand the core what was published (sets: the per-key sets, taken;
 * snap[f]: a reference each, or NULL), then send what it queued (streams
 * it ended get their status). */
static void server_apply_publish(struct xds_server *s, struct pub_set *sets,
				 struct xds_snapshot *snap[XDS_FLAVOUR_COUNT], const struct timespec *when)
{
	struct xds_stream *st;
	struct pub_set *p;
	int f, n = 0, published = sets != NULL;

	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		published |= snap[f] != NULL;
	/* Nothing published: the walks below would find nothing new (a
	 * stream's own completions pump it), and this runs once per batch
	 * of completions, thousands of times while 2,000 sidecars take a
	 * push: walking every stream each time was ~15% of meshd's CPU
	 * (stream_check_flavour, xds_ads_stream_next, stream_pump). */
	if (!published)
		return;
	for (p = sets; p; p = p->next) {
		xds_ads_proxy_set(s->ads, p->key, p->snap, p->answered);
		p->snap = NULL;
	}
	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		if (snap[f])
			xds_ads_publish(s->ads, (enum xds_flavour)f, snap[f], when);
	xds_ads_refuse_unserved(s->ads);
	/* streams whose key got a set and no snapshot of their flavour */
	xds_ads_proxy_flush(s->ads, when->tv_sec || when->tv_nsec ? when : NULL);
	for (st = s->streams; st; st = st->next, n++)
		stream_pump(st);
	if (published && (when->tv_sec || when->tv_nsec) && !s->push_open) {
		s->push_open = 1;
		s->push_streams = n;
		s->push_pub = *when;
		clock_gettime(CLOCK_MONOTONIC, &s->push_queued);
	}
}

/* Once every response of a push has been taken by gRPC, log where its
 * time went: publish -> queued for every stream -> last send completed
 * (the ACKs come after, from the proxies). */
static void server_push_done(struct xds_server *s)
{
	struct timespec now;

	if (!s->push_open || s->nsending > 0)
		return;
	s->push_open = 0;
	s->trim_due = 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info(SCOPE, "push to %d streams: queued %.1f ms after the publish, every response sent %.1f ms after it",
		 s->push_streams, ts_diff(&s->push_queued, &s->push_pub) * 1000.0, ts_diff(&now, &s->push_pub) * 1000.0);
}

static void server_begin_shutdown(struct xds_server *s)
{
	if (s->shutting_down)
		return;
	s->shutting_down = 1;
	s->tag_shutdown = (struct tag){ .kind = TAG_SHUTDOWN, .owner = s };
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
	/* The walk visits every stream; the loop runs it per batch of
	 * completions, thousands of times in a push to 2,000 sidecars.
	 * Walk at most every quarter of the timeout (as the poll does)
	 * and say "sending" in between, which only makes the poll wake. */
	if (s->stuck_checked.tv_sec &&
	    ts_diff(&now, &s->stuck_checked) * 1000.0 < (double)(s->send_timeout_ms < 1000 ? s->send_timeout_ms / 4 : 250))
		return 1;
	s->stuck_checked = now;
	for (st = s->streams; st; st = st->next) {
		if (!st->sending || st->reset)
			continue;
		sending++;
		if (ts_diff(&now, &st->send_started) * 1000.0 < (double)s->send_timeout_ms)
			continue;
		st->reset = 1;
		metrics_xds_write_timeout();
		log_warn(SCOPE, "stream %llu (%s): a response was not taken within %d ms; resetting the stream so "
			 "the proxy resyncs", (unsigned long long)st->id,
			 xds_ads_stream_node_id(st->ads) ? xds_ads_stream_node_id(st->ads) : "?",
			 s->send_timeout_ms);
		grpc_call_cancel_with_status(st->call, GRPC_STATUS_UNAVAILABLE,
					     "meshd: xDS response not accepted in time; reconnect to resync", NULL);
	}
	return sending;
}

static void *xds_thread_main(void *arg)
{
	struct xds_server *s = arg;
	int sending = 0;

	for (;;) {
		struct pollfd pfd[2] = { { mesh_queue_fd(&s->cq_q), POLLIN, 0 }, { s->wake_efd, POLLIN, 0 } };
		struct mesh_queue_item *batch = NULL, *it;
		struct xds_snapshot *snap[XDS_FLAVOUR_COUNT];
		struct pub_set *sets;
		struct pub_secret *secrets, *ps;
		struct timespec when = { 0, 0 };
		int stop, f;

		/* while responses are in flight, wake to check for stuck ones */
		int wait_ms = sending ? (s->send_timeout_ms < 1000 ? s->send_timeout_ms / 4 + 1 : 1000) : -1;
		int nev;

		if (!sending && s->trim_due)
			wait_ms = XDS_TRIM_IDLE_MS;
		if (s->wait_head && (wait_ms < 0 || wait_ms > 250))
			wait_ms = 250; /* server_reply_expire */
		nev = poll(pfd, 2, wait_ms);
		if (nev < 0 && errno != EINTR)
			log_error(SCOPE, "poll: %s", strerror(errno));
		if (nev == 0 && !sending && s->trim_due) {
			/*
			 * A push and its ACKs are over (quiet for XDS_TRIM_IDLE_MS):
			 * hand what they freed back to the system.  2,000
			 * sidecars ACKing an endpoint change send ~130 KB each
			 * (every cluster named), which gRPC core reads into small
			 * heap slices while this thread works through them; glibc
			 * keeps freed heap memory, so RSS stayed at the burst's
			 * peak (~390 MB after 20 changes, ~100 MB once synced).
			 */
			s->trim_due = 0;
			(void)malloc_trim(0);
		}
		if (pfd[1].revents & POLLIN)
			eventfd_drain(s->wake_efd);
		/* every completion so far, oldest first (a wake-up may find none) */
		if (pfd[0].revents & POLLIN)
			batch = mesh_queue_take(&s->cq_q);

		pthread_mutex_lock(&s->pub_lock);
		memcpy(snap, s->pub_snap, sizeof(snap));
		memset(s->pub_snap, 0, sizeof(s->pub_snap));
		s->pub_pending = 0;
		sets = s->pub_sets;
		s->pub_sets = NULL;
		s->pub_sets_tail = &s->pub_sets;
		secrets = s->pub_secrets;
		s->pub_secrets = NULL;
		s->pub_secrets_tail = &s->pub_secrets;
		when = s->pub_time;
		memset(&s->pub_time, 0, sizeof(s->pub_time));
		stop = s->stop_requested;
		pthread_mutex_unlock(&s->pub_lock);

		pthread_mutex_lock(&s->lock);
		while (batch) {
			struct tag *tag;

			it = batch;
			batch = it->next;
			/* read next first: dispatching may free the tag's owner */
			tag = mesh_container_of(it, struct tag, qi);
			server_dispatch(s, tag, tag->ok);
		}
		/* Secret answers: each pumps its stream (the core's queued) */
		for (ps = secrets; ps && !s->shutting_down; ps = ps->next) {
			xds_ads_secrets_set(s->ads, ps->stream, ps->seq, ps->set, ps->code, ps->msg);
			ps->set = NULL;
		}
		if (!s->shutting_down) {
			server_apply_publish(s, sets, snap, &when);
			server_reply_expire(s);
			server_pump_waiting(s);
			server_push_done(s);
		} else {
			for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
				xds_snapshot_unref(snap[f]);
		}
		if (stop)
			server_begin_shutdown(s);
		sending = s->shutting_down ? 0 : server_reset_stuck(s);
		if (s->shutting_down && server_drained(s)) {
			pthread_mutex_unlock(&s->lock);
			pub_sets_free(sets);
			pub_secrets_free(secrets);
			break;
		}
		pthread_mutex_unlock(&s->lock);
		pub_sets_free(sets); /* what is left: the snapshots went to the core */
		pub_secrets_free(secrets);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* public API */

static void server_free(struct xds_server *s)
{
	int f;

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
	/* every stream is gone: the core has none left */
	xds_ads_free(s->ads);
	for (f = 0; f < XDS_FLAVOUR_COUNT; f++)
		xds_snapshot_unref(s->pub_snap[f]);
	pub_sets_free(s->pub_sets);
	pub_secrets_free(s->pub_secrets);
	/* after the cq thread was joined: nobody pushes any more */
	if (s->cq_q_ready)
		mesh_queue_cleanup(&s->cq_q);
	if (s->wake_efd >= 0)
		close(s->wake_efd);
	pthread_mutex_destroy(&s->pub_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
	/* the last user of gRPC core waits for its threads to finish */
	grpc_shutdown_blocking();
}

static void accept_slot_init(struct accept_slot *a, enum tag_kind kind)
{
	a->tag = (struct tag){ .kind = kind, .owner = a };
	grpc_metadata_array_init(&a->md);
	grpc_call_details_init(&a->details);
}

/*
 * Is the port of "HOST:PORT" 1 to 5 decimal digits up to 65535?  gRPC core
 * reads it with atoi and keeps the low 16 bits: "0.0.0.0:99999" listened on
 * 34463 and ":65536" on a random port, with no error.  0 or -EINVAL
 * (logged, naming the address; what as in server_bind_error).
 */
static int server_addr_port_check(const char *addr, const char *what)
{
	const char *colon = strrchr(addr, ':'), *p;
	unsigned long port = 0;

	for (p = colon ? colon + 1 : ""; *p >= '0' && *p <= '9' && p - colon <= 5; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (colon && p > colon + 1 && !*p && port <= 65535)
		return 0;
	log_error(SCOPE, "cannot listen on %s%s: want HOST:PORT or [IPV6]:PORT, the port 0 to 65535", addr, what);
	return -EINVAL;
}

/*
 * gRPC core says only that a port could not be added.  Bind the address once
 * more (no SO_REUSEPORT, as the server now asks) to learn why, and log it
 * naming the port: -EADDRINUSE when another process holds it, else
 * -EADDRNOTAVAIL.  what is appended to the log text (" (TLS)").
 */
static int server_bind_error(const char *addr, const char *what)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon, *port, *hs = addr;
	int fd, one = 1, err = 0;
	size_t hl;

	colon = strrchr(addr, ':');
	port = colon ? colon + 1 : "";
	hl = colon ? (size_t)(colon - addr) : 0;
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		hs++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		hl = sizeof(host) - 1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (getaddrinfo(hl ? host : NULL, port, &hints, &ai) == 0 && ai) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
				err = errno;
			close(fd);
		}
		freeaddrinfo(ai);
	}
	if (err == EADDRINUSE) {
		log_error(SCOPE, "cannot listen on %s%s: port %s: address in use (is another meshd running?)",
			  addr, what, port);
		return -EADDRINUSE;
	}
	log_error(SCOPE, "cannot listen on %s%s: port %s: %s", addr, what, port,
		  err ? strerror(err) : "gRPC could not add the port");
	return -EADDRNOTAVAIL;
}

static void server_arg(grpc_arg *arg, size_t *n, const char *key, int value)
{
	arg[*n].type = GRPC_ARG_INTEGER;
	arg[*n].key = (char *)key;
	arg[*n].value.integer = value;
	(*n)++;
}

/* The connection bounds of xds_server_config as channel args (at most 8). */
static void server_conn_args(const struct xds_server_config *cfg, grpc_arg *arg, size_t *n)
{
	int ka = cfg->keepalive_time_ms ? cfg->keepalive_time_ms : XDS_KEEPALIVE_TIME_MS;
	int kt = cfg->keepalive_timeout_ms > 0 ? cfg->keepalive_timeout_ms : XDS_KEEPALIVE_TIMEOUT_MS;
	int idle = cfg->max_connection_idle_ms ? cfg->max_connection_idle_ms : XDS_MAX_CONNECTION_IDLE_MS;
	int hs = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : XDS_HANDSHAKE_TIMEOUT_MS;
	int st = cfg->max_concurrent_streams > 0 ? cfg->max_concurrent_streams : XDS_MAX_CONCURRENT_STREAMS;

	server_arg(arg, n, GRPC_ARG_MAX_CONCURRENT_STREAMS, st);
	server_arg(arg, n, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, hs);
	if (ka > 0) {
		server_arg(arg, n, GRPC_ARG_KEEPALIVE_TIME_MS, ka);
		server_arg(arg, n, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kt);
		/* istiod lets clients ping every keepaliveInterval / 2 */
		server_arg(arg, n, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, ka / 2);
	}
	if (idle > 0)
		server_arg(arg, n, GRPC_ARG_MAX_CONNECTION_IDLE_MS, idle);
	if (cfg->max_connection_age_ms > 0) {
		server_arg(arg, n, GRPC_ARG_MAX_CONNECTION_AGE_MS, cfg->max_connection_age_ms);
		server_arg(arg, n, GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, XDS_MAX_CONNECTION_AGE_GRACE_MS);
	}
}

int xds_server_start(const struct xds_server_config *cfg, struct xds_server **out)
{
	struct xds_ads_config acfg = { 0 };
	struct xds_server *s = NULL;
	grpc_server_credentials *creds;
	grpc_arg arg[12];
	grpc_channel_args args;
	size_t n = 0;
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
	atomic_init(&s->reduced_acks, 0);
	pthread_mutex_init(&s->pub_lock, NULL);
	s->pub_sets_tail = &s->pub_sets;
	s->pub_secrets_tail = &s->pub_secrets;
	pthread_mutex_init(&s->lock, NULL);
	accept_slot_init(&s->acc_sotw, TAG_ACCEPT_SOTW);
	accept_slot_init(&s->acc_delta, TAG_ACCEPT_DELTA);
	accept_slot_init(&s->acc_generic, TAG_ACCEPT_GENERIC);
	accept_slot_init(&s->acc_unary, TAG_ACCEPT_UNARY);
	s->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_efd < 0) {
		rc = -errno;
		goto out;
	}
	/* before the cq thread starts: it pushes every completion here */
	rc = mesh_queue_init(&s->cq_q);
	if (rc < 0)
		goto out;
	s->cq_q_ready = 1;

	server_arg(arg, &n, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, XDS_MAX_REQUEST_BYTES);
	/* gRPC core sets SO_REUSEPORT by default: a second meshd on the same
	 * ports would then share them silently and clients land on either */
	server_arg(arg, &n, GRPC_ARG_ALLOW_REUSEPORT, 0);
	server_conn_args(cfg, arg, &n);
	args.num_args = n;
	args.args = arg;
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
	acfg.secret = cfg->secret;
	acfg.secret_ctx = cfg->secret_ctx;
	acfg.want = cfg->want;
	acfg.want_ctx = cfg->want_ctx;
	acfg.whole_flavours = cfg->whole_flavours;
	acfg.queued = stream_queued;
	rc = xds_ads_new(&acfg, &s->ads);
	if (rc < 0)
		goto out;
	s->send_timeout_ms = cfg->send_timeout_ms > 0 ? cfg->send_timeout_ms : XDS_SEND_TIMEOUT_MS;
	s->reply_budget = cfg->reply_budget ? cfg->reply_budget : XDS_REPLY_BUDGET;
	s->reply_hold_ms = cfg->reply_hold_ms > 0 ? cfg->reply_hold_ms : XDS_REPLY_HOLD_MS;
	s->wait_tail = &s->wait_head;
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
	if ((rc = server_addr_port_check(cfg->addr, "")) < 0 ||
	    (cfg->secure_addr && (rc = server_addr_port_check(cfg->secure_addr, " (TLS)")) < 0))
		goto out;
	creds = grpc_insecure_server_credentials_create();
	s->port = grpc_server_add_http2_port(s->server, cfg->addr, creds);
	grpc_server_credentials_release(creds);
	if (s->port <= 0) {
		rc = server_bind_error(cfg->addr, "");
		goto out;
	}
	if (cfg->secure_addr && cfg->secure_creds) {
		s->secure_port = grpc_server_add_http2_port(s->server, cfg->secure_addr, cfg->secure_creds);
		if (s->secure_port <= 0) {
			rc = server_bind_error(cfg->secure_addr, " (TLS)");
			/* the plaintext port is bound: gRPC core aborts when a
			 * server with a listener is destroyed unshut (its
			 * shutdown tag is drained in server_free) */
			s->tag_shutdown = (struct tag){ .kind = TAG_SHUTDOWN, .owner = s };
			grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
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

void xds_server_publish_push(struct xds_server *s, enum xds_flavour f, struct xds_snapshot *snap,
			     const struct xds_proxy_set *sets, size_t n)
{
	struct xds_snapshot *old = NULL;
	struct pub_set *first = NULL, **tail = &first;
	size_t i;

	if (!s || (unsigned)f >= XDS_FLAVOUR_COUNT)
		return;
	/* copy the sets outside the lock */
	for (i = 0; i < n; i++) {
		struct pub_set *p = calloc(1, sizeof(*p));
		if (p)
			p->key = strdup(sets[i].key);
		if (!p || !p->key) {
			/* its streams keep the previous set until the next push */
			log_error(SCOPE, "out of memory: a per-proxy set is not published");
			free(p);
			continue;
		}
		p->snap = xds_snapshot_ref(sets[i].snap);
		p->answered = sets[i].answered;
		*tail = p;
		tail = &p->next;
	}
	if (snap)
		xds_snapshot_ref(snap);
	pthread_mutex_lock(&s->pub_lock);
	if (first) {
		*s->pub_sets_tail = first;
		s->pub_sets_tail = tail;
	}
	if (snap) {
		old = s->pub_snap[f];
		s->pub_snap[f] = snap;
		/* Coalesced publishes count convergence from the first one. */
		if (!s->pub_pending)
			clock_gettime(CLOCK_MONOTONIC, &s->pub_time);
		s->pub_pending = 1;
	}
	pthread_mutex_unlock(&s->pub_lock);
	xds_snapshot_unref(old);
	eventfd_signal(s->wake_efd);
}

void xds_server_secret_reply(struct xds_server *s, uint64_t stream, uint64_t seq, struct xds_snapshot *set,
			     enum xds_ads_status code, const char *msg)
{
	struct pub_secret *p = calloc(1, sizeof(*p));

	if (!p || (msg && !(p->msg = strdup(msg)))) {
		/* the stream waits for the next answer (a rotation) or ends */
		log_error(SCOPE, "out of memory: a Secret answer for stream %llu is dropped",
			  (unsigned long long)stream);
		free(p);
		return;
	}
	p->stream = stream;
	p->seq = seq;
	p->set = set ? xds_snapshot_ref(set) : NULL;
	p->code = code;
	pthread_mutex_lock(&s->pub_lock);
	*s->pub_secrets_tail = p;
	s->pub_secrets_tail = &p->next;
	pthread_mutex_unlock(&s->pub_lock);
	eventfd_signal(s->wake_efd);
}

void xds_server_publish(struct xds_server *s, struct xds_snapshot *proxyless)
{
	if (proxyless)
		xds_server_publish_push(s, XDS_FLAVOUR_PROXYLESS, proxyless, NULL, 0);
}

size_t xds_server_proxy_keys(struct xds_server *s)
{
	size_t n;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = xds_ads_proxy_keys(s->ads);
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t xds_server_reduced_acks(struct xds_server *s)
{
	return s ? (uint64_t)atomic_load_explicit(&s->reduced_acks, memory_order_relaxed) : 0;
}

int xds_server_connected(struct xds_server *s)
{
	int n;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = xds_ads_streams(s->ads);
	pthread_mutex_unlock(&s->lock);
	return n;
}

int xds_server_syncz(struct xds_server *s, struct mesh_buf *out)
{
	int rc;

	if (!s || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = xds_ads_syncz(s->ads, out);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int xds_server_config_dump(struct xds_server *s, const char *proxy_id, struct mesh_buf *out)
{
	int rc;

	if (!s || !proxy_id || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = xds_ads_config_dump(s->ads, proxy_id, out);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int xds_server_proxy_workload(struct xds_server *s, const char *proxy_id, struct mesh_buf *ns,
			      struct mesh_buf *labels)
{
	int rc;

	if (!s || !proxy_id || !ns || !labels)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = xds_ads_proxy_workload(s->ads, proxy_id, ns, labels);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

