/*
 * proxy.c - the HTTP/1.1 data path: downstream connections (accepted by
 * virtualOutbound/virtualInbound), streams (one request and its attempts),
 * upstream connections and their per-host pools.
 *
 * A downstream connection reads into one buffer and parses heads in place
 * (http1.h, zero-copy); the head is serialised once into the upstream
 * request head, then body bytes are moved from the downstream buffer to
 * the upstream connection's output only while that output is below a
 * mark (back-pressure: a slow upstream stops us reading the client, and a
 * slow client stops us reading the upstream).  Request bodies are kept for
 * a retry up to PX_RETRY_BODY_MAX, past which the request can no longer be
 * retried.  Pipelined requests wait in the buffer until the current
 * response is done.
 *
 * Re-entrancy: callbacks never call back into the connection they came
 * from; "look at the input again" is a deferred call (ev_defer), so a
 * stream that ends inside an upstream callback never parses the next
 * request on the same stack.
 */
#include "dataplane/engine-t.h"

#include "common/log.h"
#include "common/str.h"
#include "dataplane/authz.h"
#include "dataplane/dnscl.h"
#include "dataplane/h2.h"
#include "dataplane/http1.h"
#include "dataplane/identity.h"
#include "dataplane/istio_stats.h"
#include "dataplane/jwt.h"
#include "dataplane/mtls.h"
#include "dataplane/retry.h"
#include "dataplane/sniff.h"
#include "dataplane/tls.h"
#include "dataplane/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/netfilter_ipv4.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* linux/netfilter_ipv6/ip6_tables.h's IP6T_SO_ORIGINAL_DST (that header
 * clashes with <netinet/in.h>) */
#define PX_IP6T_SO_ORIGINAL_DST 80

#define PX_IN_INIT (16 * 1024)
#define PX_IN_MAX (H1_DEFAULT_MAX_HEAD_BYTES + 4096)
#define PX_OUT_HIGH (256 * 1024)          /* stop feeding a side past this much queued output */
#define PX_OUT_MAX (8 * 1024 * 1024)      /* cap on queued output (never reached: HIGH stops the feeder) */
#define PX_RETRY_BODY_MAX (64 * 1024)     /* request body kept for retries (body bytes, as Envoy's buffer limit) */
#define PX_BODY_FRAMING_SLACK (16 * 1024) /* room for the chunk framing kept with it */
#define PX_TLS_HANDSHAKE_MS 15000 /* an inbound TLS handshake, from its first byte (Envoy's listener_filters_timeout) */
#define PX_META_SLACK 64 /* meta beyond the head's fields: "/", the protocol, a generated request id */
#define PX_MAX_TRIED 8
#define PX_DNS_WARM_POLL_MS 5             /* a request waiting for a DNS cluster's first resolution looks again */
#define PX_MIRRORS_MAX 128                /* mirrored requests in flight; past it they are dropped */
#define PX_MIRROR_TIMEOUT_MS 5000

struct px_ibuf {
	char *p;
	size_t off, len, cap;
};

enum { D_HEAD, D_BODY, D_WAIT, D_TUNNEL, D_CLOSING };
enum { D_HDR_TIMEOUT = 1, D_HDR_IDLE = 2 }; /* px_dconn.hdr_timing */
enum { SEL_NONE, SEL_BOUND, SEL_IN, SEL_OUT };
enum { U_CONNECTING, U_ACTIVE, U_IDLE, U_TUNNEL };
enum { W_NONE, W_BACKOFF, W_FAULT, W_PENDING, W_WARM };
/* F_REFUSED: an HTTP/2 REFUSED_STREAM (h2.c); F_PROTOCOL: a response the codec
 * cannot parse (Envoy's ProtocolError reset: retried as a reset, answered 502 UPE) */
enum { F_CONNECT, F_RESET, F_TIMEOUT, F_REFUSED, F_PROTOCOL };

struct px_stream;

struct px_uconn {
	struct engine *e;
	struct px_host *h;           /* a reference */
	struct px_uconn *next;       /* host's idle list */
	struct ev_io io;
	struct ev_timer t;           /* connect timeout, then idle timeout in the pool */
	int state;
	unsigned nreq;
	uint64_t born_ms;            /* ev_now() at connect: max_connection_duration counts from it */
	struct px_stream *s;
	const struct px_transport_ops *tops;
	struct px_tls *tls;          /* the cluster's UpstreamTlsContext for this host (u_connect), or NULL */
	int hs;                      /* TLS: 1 waiting for TCP, 2 handshake running (both U_CONNECTING), 0 done */
	struct ev_defer tls_rd;      /* TLS: bytes held inside OpenSSL to read once there is room (u_update) */
	struct h1_parser p;
	struct px_ibuf in;
	struct mesh_buf out;
	size_t out_off;
	int head_done;
	enum h1_framing rframing;
	int rkeep;
	int eof;
	int in_cb;                   /* inside u_cb: u_free defers the final free */
	int h2;                      /* a pipe to an HTTP/2 stream (u_connect, px_h2u_open) */
	int dead;
	int osrc;                    /* leaves from the downstream client's address (original_src):
	                              * never pooled, it is that client's alone (Envoy keys its pools by
	                              * the source address) */
	/* the response parser's header array (p.hdrs) is allocated while the
	 * connection is in use and freed in the pool: 4 KiB less per idle one */
};

#define PX_UHDRS_BYTES (H1_DEFAULT_MAX_HEADERS * sizeof(struct h1_header))

struct px_dconn {
	struct engine *e;
	struct px_dconn *next, *prev;
	struct ev_io io;
	struct ev_timer idle;
	struct ev_defer proc;
	int inbound;
	struct px_listener *l;       /* the listener that accepted it (a reference unless embedded) */
	struct sockaddr_storage dst;
	socklen_t dst_len;
	int captured;
	struct sockaddr_storage local;  /* an HTTP/2 stream's: the session socket's own address (px_dconn_adopt) */
	socklen_t local_len;         /* 0: ask the socket (d_local_addr) */
	char peer_ip[INET6_ADDRSTRLEN];
	uint16_t peer_port;          /* host order; with the local address, seeds a generated hash cookie */
	const struct px_transport_ops *tops;
	struct px_tls *tls;          /* inbound TLS (d_tls_step), or NULL */
	int tls_decide;              /* inbound with TLS ports: the first byte picks TLS or plaintext */
	int hs;                      /* TLS handshake running */
	struct ev_defer tls_rd;      /* TLS: bytes held inside OpenSSL to read once there is room (d_update) */
	char *peer_principal;        /* the verified peer's SPIFFE URI SAN (owned), NULL without one (d_tls_step) */
	char alpn[16];               /* negotiated ALPN, "" if none (d_tls_step) */
	char *sni;                   /* SNI the client sent (owned), NULL if none (d_tls_step) */
	int via_tls;                 /* came over TLS: d->tls, or an HTTP/2 stream of a TLS session (px_dconn_adopt) */
	char *xfcc;                  /* an HTTP/2 stream over mTLS: the session's XFCC element (owned; px_dconn_adopt) */
	struct h1_parser p;
	struct px_ibuf in;
	struct mesh_buf out;
	size_t out_off;
	struct px_stream *s;
	int state;
	int peer_eof;
	int close_after;             /* close once the output is flushed */
	int drain;                   /* engine draining: no keep-alive */
	int hdr_timing;              /* idle is a head's deadline while it is read: D_HDR_TIMEOUT (request_headers_
	                              * timeout) or D_HDR_IDLE (the stream idle timeout, which runs from a head's
	                              * first byte in Envoy, its stream existing from then); 0 not */
	uint64_t idle_ms;            /* the HCM's idle_timeout once known (a request, a captured port), else the engine's; 0 off */
	uint64_t headers_ms;         /* request_headers_timeout (px_port_headers_ms), 0 off */
	uint64_t head_idle_ms;       /* the stream idle timeout (px_port_stream_idle_ms), 0 off */
	struct tcpp *tcp;            /* a TCP proxy chain serves it (d_tcp_start(); io.fd is then -1) */
	int sniffing;                /* the listener filters are reading its first bytes (d_sniff()) */
	int chain;                   /* the chain d_select() chose: 1 + its index, -1 the default
	                              * chain, 0 none (looked up by port as before) */
	int sel_kind;                /* whose chains (d_sel()): SEL_NONE, SEL_BOUND, SEL_IN, SEL_OUT */
	int rbac_judged;             /* a TCP chain's network RBAC allowed this connection (s_authz) */
	uint32_t rbac_port;          /* ... for that port only: sent straight to the inbound port, each
	                              * request picks its port by its authority (s_authz) */
	int h2;                      /* carries one HTTP/2 stream (px_dconn_adopt from h2.c) */
	unsigned nreq;               /* requests started (d_stream_start): the h2c preface is looked for before the first */
	int counted;                 /* issue 16: holds an accepted socket counted by px_accept_cb (until
	                              * d_close, or until an HTTP/2 session takes it) */
	struct h1_header hdrs[H1_DEFAULT_MAX_HEADERS];
};

struct px_stream {
	struct px_dconn *d;
	struct engine *e;
	struct px_config *cfg;       /* a reference */
	const struct router_route *rt;
	const struct router_cluster *rc;  /* the route's cluster (weighted pick) */
	const struct router_hdrs *hdrs;   /* header edits for this request */
	struct router_route synth;   /* the route when none is matched (passthrough, inbound) */
	struct router_cluster synth_cl;
	struct px_cluster *cl;
	struct mesh_buf head;        /* upstream request head, without attempt count and final CRLF */
	struct mesh_buf body;        /* request body as framed upstream, for retries and mirrors */
	int body_overflow;
	uint32_t mirror_mask;        /* mirror policies drawn for this request, not sent yet */
	int req_done;
	enum h1_framing req_framing;
	unsigned req_flags;
	int req_minor;
	struct px_uconn *u;
	struct px_host *tried[PX_MAX_TRIED];
	unsigned n_tried, attempt;
	int retrying;                /* counted in cl->retries_active */
	struct retry_backoff backoff;  /* set up by the first retry */
	struct ev_timer t_global, t_try, t_wait;
	struct ev_timer t_idle;      /* stream idle timeout, re-armed lazily from last_io */
	struct ev_timer t_req;       /* request_timeout: the whole request by then (s_request_timeout) */
	uint64_t req_ms;             /* its value, 0 off */
	uint64_t idle_ms, last_io;   /* idle_ms 0: off; last_io: ev_now() of the last byte either way */
	int proxy_100;               /* the HCM's proxy_100_continue (else 100 is answered here) */
	struct ev_timer t_tidle;     /* per_try_idle_timeout, moved by upstream bytes */
	int wait_kind;
	int global_armed, try_armed; /* the route / this attempt's timeouts are running */
	int fault_wait;              /* in the fault filter's delay: the router has not started */
	int resp_started, resp_done;
	int trailers_sent;           /* the chunked response's last chunk and trailers are out (u_process) */
	int64_t timeout_ms;          /* the route's timeout, or grpc-timeout's (d_stream_start); 0 none */
	enum h1_framing out_framing;
	int status;
	unsigned flags;
	int keep;
	uint64_t start_ms, start_us, try_start_ms;
	int64_t upstream_ms;
	uint64_t rx, tx;
	struct sockaddr_storage odst;
	socklen_t odst_len;
	int have_odst;
	struct dns_query *dq;        /* a name being resolved (passthrough: dns.c), or NULL */
	char gai_host[256];          /* that name, and the port to connect to */
	uint16_t gai_port;
	uint64_t warm_start;         /* issue 13: when it began waiting for a DNS cluster's first resolution (0: not) */
	struct px_link pend;         /* in cl->pending while waiting for a connection */
	int pending;
	uint64_t hash;               /* the route's hash policies over this request (ring hash, maglev) */
	int have_hash;
	char set_cookie[192];        /* a generated hash cookie to set on the response, or "" */
	char *cors_hdrs;             /* CORS response headers for an allowed origin (owned), or NULL */
	struct jwt_result *jwt;      /* the jwt_authn filter's outcome (s_jwt(), owned), or NULL */
	int xfcc;                    /* the inbound port's HCM forwards the client cert (set at its lookup) */
	int xfcc_fwd;                /* the client's own x-forwarded-client-cert goes upstream (d_stream_start) */
	int edge;                    /* issue 13: the HCM's use_remote_address (a gateway): Envoy's edge
	                              * header rules in s_build_head (set at the bound chain's lookup) */
	char *norm_path;             /* the HCM-normalized path and query (owned; s_authz), or NULL: as sent */
	/* issue 14 (istio_stats.h): the other side's workload from metadata
	 * exchange (s_build_head inbound, u_on_head outbound), NULL: unknown;
	 * grpc-status + 1 of the response (u_on_head, trailers), 0: none;
	 * a gRPC request (s_build_head) */
	const struct istio_peer *peer;
	const char *peer_principal;  /* outbound: the upstream's verified SPIFFE id (u_on_head; kept by istio_stats) */
	/* the chain's istio.stats filter (s_stats_port; in cfg), NULL: the
	 * request is in no istio_* series; the request headers its
	 * expressions read, captured at the start (owned block, or NULL) */
	const struct istio_stats_cfg *istio;
	struct istio_hval *istio_hv;
	size_t n_istio_hv;
	int grpc_status1;
	int is_grpc;
	struct px_str method, path, authority, ua, xff, rid, proto;
	struct trace_span tr;        /* issue 14: started with the port's tracing (d_stream_start), ended in s_log */
	/* the span's operation: the route's decorator, or inbound the caller's
	 * x-envoy-decorator-operation (in meta); len 0: Envoy's default name */
	struct px_str tr_op;
	const struct px_alog_cfg *alog; /* issue 14: the port's access_log (s_alog_port), in cfg; NULL: none */
	struct px_str alog_hdrs[PX_ALOG_MAX_HDRS]; /* the extra request headers it reads, copied into meta */
	char alog_ulocal[INET6_ADDRSTRLEN + 16]; /* %UPSTREAM_LOCAL_ADDRESS% when it asks (u_on_head), else "" */
	size_t meta_len, meta_cap;
	char meta[]; /* sized by meta_need at d_stream_start: never truncated, since
	              * RBAC judges these copies (a cut path, Host or XFF was a bypass) */
};

static void d_port_timers(struct px_dconn *d, const struct px_port *pp);
static void d_update(struct px_dconn *d);
static void d_close(struct px_dconn *d);
static int d_flush(struct px_dconn *d);
static void u_free(struct px_uconn *u, int count_destroy);
static void u_update(struct px_uconn *u);
static int u_flush(struct px_uconn *u);
static void s_attempt(struct px_stream *s);
static void put_num_header(struct mesh_buf *b, const char *name, size_t nlen, uint64_t v);
static int edit_drops(struct h1_str name, const struct router_hdr *ops, size_t n);
static int edit_add(struct mesh_buf *b, const struct h1_header *fields, size_t n, const struct router_hdr *ops,
		    size_t nops);
static void s_mirror(struct px_stream *s);
static void cluster_wake_pending(struct px_cluster *cl);
static const char *req_header(void *ctx, const char *name, size_t name_len, size_t *value_len);
static void s_end(struct px_stream *s);
static void s_fail(struct px_stream *s, int kind, unsigned flag);
static int s_put_peer_meta(struct engine *e, struct mesh_buf *b);

/* --- outlier detection (outlier.h): what happened on a host */

static void od_http(struct px_host *h, unsigned status, struct engine *e)
{
	struct px_cluster *cl = h->cl;

	if (h->up && cl->hs && cl->up && cl->up->od.enabled &&
	    outlier_report_http(cl->hs, h->up, status, ev_now(e->loop), &e->lbrng) == 1)
		log_info("meshproxy", "cluster %s: host %s ejected (outlier detection)", cl->name, h->name);
}

static void od_local(struct px_host *h, enum outlier_local ev, struct engine *e)
{
	struct px_cluster *cl = h->cl;

	if (h->up && cl->hs && cl->up && cl->up->od.enabled &&
	    outlier_report_local(cl->hs, h->up, ev, ev_now(e->loop), &e->lbrng) == 1)
		log_info("meshproxy", "cluster %s: host %s ejected (outlier detection)", cl->name, h->name);
}

/* --- input buffers */

static int ib_room(struct px_ibuf *b, size_t max)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len < b->cap)
		return 1;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		return 1;
	}
	if (b->cap < max) {
		size_t nc = b->cap ? b->cap * 2 : PX_IN_INIT;
		char *np;

		if (nc > max)
			nc = max;
		np = realloc(b->p, nc);
		if (!np)
			return 0;
		b->p = np;
		b->cap = nc;
		return 1;
	}
	return 0;
}

static size_t ob_pending(const struct mesh_buf *b, size_t off)
{
	return b->len - off;
}

/* --- meta: the request fields RBAC, routing and the access log read, copied out of the input buffer */

/* Bytes of meta a request's fields take: its target, authority, Host and
 * every header value (bounded by the head limit), plus PX_META_SLACK. */
static size_t meta_need(const struct h1_head *h)
{
	size_t n = PX_META_SLACK + h->method.len + h->target.len + h->path.len + h->authority.len + h->host.len, i;

	for (i = 0; i < h->n_headers; i++)
		n += h->headers[i].value.len + 1;
	return n;
}

/* A copy of (p, len) in s->meta.  meta is sized for the whole head
 * (meta_need), so the clamp below is a guard that never cuts in practice. */
static struct px_str meta_put(struct px_stream *s, const char *p, size_t len)
{
	struct px_str r = { "", 0 };

	if (len > s->meta_cap - s->meta_len)
		len = s->meta_cap - s->meta_len;
	if (len) /* an absent field is (NULL, 0): HTTP/1.0 without Host */
		memcpy(s->meta + s->meta_len, p, len);
	r.p = s->meta + s->meta_len;
	r.len = len;
	s->meta_len += len;
	return r;
}

/* Every value of header lc (lower case) joined by ",", in meta: repeated
 * lines read as one list, as Envoy's header map coalesces an inline header
 * such as X-Forwarded-For (HeaderMapImpl, DelimiterForInlineHeaders). */
static struct px_str meta_put_joined(struct px_stream *s, const struct h1_head *h, const char *lc)
{
	struct px_str r = { "", 0 }, v;
	size_t i;

	for (i = 0; i < h->n_headers; i++) {
		if (!h1_str_ieq(h->headers[i].name, lc))
			continue;
		if (r.len) {
			(void)meta_put(s, ",", 1);
			v = meta_put(s, h->headers[i].value.p, h->headers[i].value.len);
			r.len += 1 + v.len;
		} else {
			r = meta_put(s, h->headers[i].value.p, h->headers[i].value.len);
		}
	}
	return r;
}

/* --- streams */

static uint64_t wall_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

static void s_count_status(struct px_stream *s)
{
	struct px_engine_stats *st = &s->e->st;
	int c = s->status / 100;

	if (c == 1)
		st->rq_1xx++;
	else if (c == 2)
		st->rq_2xx++;
	else if (c == 3)
		st->rq_3xx++;
	else if (c == 4)
		st->rq_4xx++;
	else if (c == 5)
		st->rq_5xx++;
}

static socklen_t d_local_addr(const struct px_dconn *d, struct sockaddr_storage *ss);

/* issue 14: the request in Istio's standard metrics */
static void s_istio(struct px_stream *s)
{
	struct istio_req r;
	char fl[64], dst[INET6_ADDRSTRLEN];

	memset(&r, 0, sizeof(r));
	r.cfg = s->istio;
	r.inbound = s->d->inbound;
	r.peer = s->peer;
	r.peer_principal = s->d->inbound ? s->d->peer_principal : s->peer_principal;
	r.mtls = s->d->inbound && s->d->peer_principal;
	r.service = istio_service_of(s->cl ? s->cl->name : NULL, s->authority.p, s->authority.len, &r.service_len);
	/* issue 13: block_all / allow_any and the catch-all clusters, named as Istio names them */
	r.service_name = istio_catchall_name(s->rt ? s->rt->name : NULL, s->cl ? s->cl->name : NULL);
	r.grpc = s->is_grpc;
	r.response_code = s->status;
	r.grpc_status = s->grpc_status1 - 1;
	r.response_flags = px_flags_str(s->flags, fl, sizeof(fl));
	r.duration_ms = ev_now(s->e->loop) - s->start_ms;
	r.request_bytes = s->rx;
	r.response_bytes = s->tx;
	/* what the tag expressions read */
	r.method = s->method.p;
	r.method_len = s->method.len;
	r.path = s->path.p;
	r.path_len = s->path.len;
	r.host = s->authority.p;
	r.host_len = s->authority.len;
	r.cluster = s->cl ? s->cl->name : NULL;
	r.route = s->rt ? s->rt->name : NULL;
	r.source_address = s->d->peer_ip[0] ? s->d->peer_ip : NULL;
	r.source_port = s->d->peer_ip[0] ? s->d->peer_port : 0;
	if (istio_stats_cfg_needs_local(r.cfg)) {
		/* Envoy's destination.address / .port: the address the client dialled */
		struct sockaddr_storage ss;
		socklen_t len = d_local_addr(s->d, &ss);

		if (len && ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

			if (inet_ntop(AF_INET, &in->sin_addr, dst, sizeof(dst)))
				r.destination_address = dst;
			r.destination_port = ntohs(in->sin_port);
		} else if (len && ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

			if (inet_ntop(AF_INET6, &in6->sin6_addr, dst, sizeof(dst)))
				r.destination_address = dst;
			r.destination_port = ntohs(in6->sin6_port);
		}
	}
	r.hdr_vals = s->istio_hv;
	r.n_hdr_vals = s->n_istio_hv;
	istio_stats_record(s->e->istio, &r);
}

/* issue 14: the request's span ends with it (tracing.c queues it). */
static void s_trace_end(struct px_stream *s)
{
	struct trace_end x;
	char fl[64];

	memset(&x, 0, sizeof(x));
	x.inbound = s->d ? s->d->inbound : 0;
	x.method = s->method.p;
	x.method_len = s->method.len;
	x.authority = s->authority.p;
	x.authority_len = s->authority.len;
	x.path = s->path.p;
	x.path_len = s->path.len;
	x.protocol = s->proto.p;
	x.protocol_len = s->proto.len;
	x.user_agent = s->ua.len ? s->ua.p : NULL;
	x.user_agent_len = s->ua.len;
	x.request_id = s->rid.p;
	x.request_id_len = s->rid.len;
	x.cluster = s->cl ? s->cl->name : NULL;
	x.peer_address = s->d ? s->d->peer_ip : NULL;
	x.upstream_host = s->n_tried ? s->tried[s->n_tried - 1]->name : NULL;
	x.response_flags = px_flags_str(s->flags, fl, sizeof(fl));
	x.status = s->status;
	x.request_size = s->rx;
	x.response_size = s->tx;
	x.operation = s->tr_op.len ? s->tr_op.p : NULL;
	x.operation_len = s->tr_op.len;
	x.end_us = wall_us();
	tracer_finish(s->e->tracer, &s->tr, &x);
}

/* Envoy's %RESPONSE_CODE_DETAILS% for what meshproxy knows of the outcome. */
static const char *s_details(const struct px_stream *s)
{
	if (s->flags & PX_RF_NR)
		return "route_not_found";
	if (s->flags & PX_RF_UH)
		return "no_healthy_upstream";
	if (s->flags & PX_RF_UO)
		return "upstream_reset_before_response_started{overflow}";
	if (s->flags & PX_RF_UT)
		return "upstream_response_timeout";
	if (s->flags & PX_RF_FI)
		return "fault_filter_abort";
	if (s->flags & PX_RF_UF)
		return "upstream_reset_before_response_started{remote_connection_failure}";
	if (s->flags & (PX_RF_UC | PX_RF_UR))
		return "upstream_reset_before_response_started{remote_reset}";
	if (s->upstream_ms >= 0)
		return "via_upstream";
	if (s->status == 403)
		return "rbac_access_denied_matched_policy[none]";
	if (s->flags & PX_RF_DC)
		return "downstream_remote_disconnect";
	return NULL;
}


/* issue 14: the port pp serving s decides its access logs; the headers
 * they read are copied now, while the head h is there. */
static void s_alog_port(struct px_stream *s, const struct px_port *pp, const struct h1_head *h,
			const struct px_alog_cfg *none)
{
	size_t i, n;

	s->alog = pp ? (pp->tcp ? pp->tcpp.alog : pp->alog) : none;
	n = px_alog_cfg_n_headers(s->alog);
	for (i = 0; i < n && i < PX_ALOG_MAX_HDRS; i++) {
		const char *name = px_alog_cfg_header(s->alog, i);
		size_t vlen = 0;
		const char *v = req_header((void *)h, name, strlen(name), &vlen);

		if (v) /* present, maybe empty; absent stays {NULL, 0} (CEL: no such key) */
			s->alog_hdrs[i] = meta_put(s, v, vlen);
	}
}

/* The configured access logs of s (s->alog) */
static void s_alog_cfg(struct px_stream *s, struct px_alog_entry *le)
{
	char down[INET6_ADDRSTRLEN + 16], local[INET6_ADDRSTRLEN + 16];
	struct sockaddr_storage ss;
	socklen_t len;

	le->upstream_cluster = s->cl ? s->cl->name : NULL;
	le->route_name = s->rt && s->rt->name && s->rt->name[0] ? s->rt->name : NULL;
	le->details = s_details(s);
	if (s->d) {
		struct px_dconn *d = s->d;

		if (d->peer_ip[0]) {
			snprintf(down, sizeof(down), strchr(d->peer_ip, ':') ? "[%s]:%u" : "%s:%u", d->peer_ip,
				 (unsigned)d->peer_port);
			le->downstream_remote = down;
		}
		if (px_alog_cfg_needs(s->alog) & PX_ALOG_NEED_LOCAL) {
			len = d_local_addr(d, &ss);
			le->downstream_local = px_alog_addr((const struct sockaddr *)&ss, len, local, sizeof(local));
		}
		le->sni = d->sni;
		le->peer_principal = d->peer_principal;
		le->mtls = d->peer_principal != NULL;
	}
	le->upstream_local = s->alog_ulocal[0] ? s->alog_ulocal : NULL;
	le->grpc_status1 = s->grpc_status1;
	le->attempts = s->n_tried ? s->attempt : 0;
	le->hdrs = s->alog_hdrs;
	le->n_hdrs = px_alog_cfg_n_headers(s->alog);
	px_alog_cfg_log(s->alog, le);
}

static void s_log(struct px_stream *s)
{
	struct px_alog_entry le;

	if (s->e->istio && s->istio)
		s_istio(s);
	if (s->tr.cfg)
		s_trace_end(s);
	if (!s->e->alog && !s->alog)
		return;
	memset(&le, 0, sizeof(le));
	le.start_us = s->start_us;
	le.method = s->method;
	le.path = s->path;
	le.protocol = s->proto;
	le.xff = s->xff;
	le.ua = s->ua;
	le.rid = s->rid;
	le.authority = s->authority;
	le.status = s->status;
	le.flags = s->flags;
	le.rx = s->rx;
	le.tx = s->tx;
	le.duration_ms = ev_now(s->e->loop) - s->start_ms;
	le.upstream_ms = s->upstream_ms;
	le.upstream_host = s->n_tried ? s->tried[s->n_tried - 1]->name : NULL;
	if (s->e->alog)
		px_alog_write(s->e->alog, &le);
	if (s->alog)
		s_alog_cfg(s, &le);
}

static void s_stop_timers(struct px_stream *s)
{
	struct ev_loop *loop = s->e->loop;

	ev_timer_cancel(loop, &s->t_global);
	ev_timer_cancel(loop, &s->t_try);
	ev_timer_cancel(loop, &s->t_tidle);
	ev_timer_cancel(loop, &s->t_wait);
	ev_timer_cancel(loop, &s->t_idle);
	ev_timer_cancel(loop, &s->t_req);
	/* a lookup still on glibc's thread is the resolver's to free (dns.c) */
	dns_cancel(s->dq);
	s->dq = NULL;
}

static void s_free(struct px_stream *s)
{
	size_t i;

	s_stop_timers(s);
	if (s->pending) {
		s->pend.prev->next = s->pend.next;
		s->pend.next->prev = s->pend.prev;
		px_cst(s->cl)->rq_pending_active--;
	}
	for (i = 0; i < s->n_tried; i++)
		px_host_unref(s->tried[i]);
	if (s->retrying && s->cl)
		s->cl->retries_active--;
	if (s->cl) {
		px_cst(s->cl)->rq_active--;
	}
	mesh_buf_cleanup(&s->head);
	mesh_buf_cleanup(&s->body);
	trace_span_cleanup(&s->tr); /* issue 14: a span not ended (its header tags) */
	free(s->cors_hdrs);
	free(s->istio_hv);
	jwt_result_free(s->jwt);
	free(s->norm_path);
	px_config_unref(s->cfg);
	s->e->st.rq_active--;
	free(s);
}

/* Detaches the upstream connection: back to its pool when reusable, else closed. */
static void s_release_upstream(struct px_stream *s, int reusable)
{
	struct px_uconn *u = s->u;
	struct px_host *h;
	struct engine *e = s->e;
	uint64_t age, idle;
	int too_old;

	if (!u)
		return;
	s->u = NULL;
	u->s = NULL;
	h = u->h;
	h->st.rq_active--;
	if (h->up && h->up->active_rq)
		h->up->active_rq--;
	/* max_connection_duration (Envoy's cx_max_duration_reached): a
	 * connection that old is drained -- closed once its request is done,
	 * never reused; an idle one is closed by its timer below */
	age = ev_now(e->loop) - u->born_ms;
	too_old = h->cl->max_connection_duration_ms && age >= h->cl->max_connection_duration_ms;
	if (!reusable || u->state != U_ACTIVE || !u->rkeep || u->eof || h->removed || u->osrc ||
	    (e->draining && s->d->inbound) ||
	    ob_pending(&u->out, u->out_off) || u->in.len != u->in.off || too_old ||
	    (h->cl->max_requests_per_connection && u->nreq >= h->cl->max_requests_per_connection)) {
		if (h->cl->max_requests_per_connection && u->nreq >= h->cl->max_requests_per_connection)
			px_cst(h->cl)->cx_max_requests++;
		else if (too_old)
			px_cst(h->cl)->cx_max_duration_reached++;
		u_free(u, 1);
		return;
	}
	u->state = U_IDLE;
	u->head_done = 0;
	h1_parser_reset(&u->p);
	/* an idle pooled connection holds no buffers (nginx's and haproxy's
	 * habit): a thousand clusters' pools would otherwise keep 16 KiB+ each
	 * for nothing; the next request allocates them again */
	mesh_buf_cleanup(&u->out);
	mesh_buf_init(&u->out, PX_OUT_MAX);
	u->out_off = 0;
	free(u->in.p);
	u->in.p = NULL;
	u->in.off = u->in.len = u->in.cap = 0;
	free(u->p.hdrs);
	u->p.hdrs = NULL;
	u->next = h->idle;
	h->idle = u;
	h->n_idle++;
	/* the cluster's idle_timeout (HttpProtocolOptions), else the engine's;
	 * sooner when max_connection_duration ends first (the timer closes it) */
	idle = h->cl->idle_timeout_ms ? h->cl->idle_timeout_ms : e->o.pool_idle_ms;
	if (h->cl->max_connection_duration_ms && h->cl->max_connection_duration_ms - age < idle)
		idle = h->cl->max_connection_duration_ms - age;
	ev_timer_arm(e->loop, &u->t, idle);
	u_update(u);
	cluster_wake_pending(h->cl);
}

/* The stream is over (response sent, or aborted): log, free, next request. */
static void s_end(struct px_stream *s)
{
	struct px_dconn *d = s->d;

	s_release_upstream(s, s->resp_done && s->req_done);
	if (s->status)
		s_count_status(s);
	if (s->cl) {
		struct px_cluster_stats *cs = px_cst(s->cl);
		int c = s->status / 100;

		if (c == 2)
			cs->rq_2xx++;
		else if (c == 3)
			cs->rq_3xx++;
		else if (c == 4)
			cs->rq_4xx++;
		else if (c == 5)
			cs->rq_5xx++;
	}
	s_log(s);
	d->s = NULL;
	if (!s->keep || !s->req_done || !s->resp_done)
		d->close_after = 1;
	d->state = d->close_after ? D_CLOSING : D_HEAD;
	h1_parser_reset(&d->p);
	s_free(s);
	px_engine_check_drained(d->e);
	/* never d_update() here (it may close d under a caller): look again soon */
	ev_defer(d->e->loop, &d->proc);
}

/* Ends the stream on a downstream that can no longer be answered properly. */
static void s_abort(struct px_stream *s, unsigned flag)
{
	struct px_dconn *d = s->d;

	s->flags |= flag;
	s->keep = 0;
	d->close_after = 1;
	/* what is queued still goes out; the close tells the client the response is cut */
	s_end(s);
}

static void s_local_reply(struct px_stream *s, int status, unsigned flag, const char *body, const char *extra)
{
	struct px_dconn *d = s->d;
	struct mesh_buf *b = &d->out;
	static const struct h1_str ctn = { "content-type", 12 };
	struct h1_str none = { "", 0 }, ct = { "text/plain", 10 };
	size_t blen = body ? strlen(body) : 0, before = b->len;
	int rc;

	s->flags |= flag;
	log_debug("meshproxy", "[%.*s] %.*s %.*s%.*s: local reply %d%s%s", (int)s->rid.len, s->rid.p, (int)s->method.len,
		  s->method.p, (int)s->authority.len, s->authority.p, (int)s->path.len, s->path.p, status,
		  body ? ": " : "", body ? body : "");
	if (s->resp_started) {
		s_abort(s, 0);
		return;
	}
	s->resp_started = 1;
	s->status = status;
	if (!s->req_done)
		s->keep = 0; /* the rest of the request body is not read */
	rc = h1_out_status_line(b, status, none);
	if (!rc && blen)
		rc = h1_out_header(b, ctn, ct);
	if (!rc)
		rc = h1_out_framing(b, H1_BODY_LENGTH, blen);
	if (!rc && extra)
		rc = mesh_buf_puts(b, extra);
	if (!rc)
		rc = mesh_buf_puts(b, "server: envoy\r\n") < 0 ? -ENOMEM : 0;
	/* issue 14: Istio's metadata exchange answers on every inbound
	 * response, a local one (403 RBAC, 503 UF) too, so the caller's
	 * reporter="source" series names this workload, not "unknown" */
	if (!rc && s->e->istio && d->inbound)
		rc = s_put_peer_meta(s->e, b);
	if (!rc && (!s->keep || d->drain))
		rc = mesh_buf_puts(b, "connection: close\r\n");
	if (!rc)
		rc = h1_out_end(b);
	if (!rc && blen && !(s->req_flags & H1_F_HEAD))
		rc = mesh_buf_append(b, body, blen);
	(void)rc;
	s->tx += blen;
	(void)before;
	s->resp_done = 1;
	if (!s->req_done) {
		d->close_after = 1;
		s->req_done = 1; /* nothing more is read: the connection closes */
		s->keep = 0;
	}
	d_flush(d);
	s_end(s);
}

/* The cluster's retry limit now: the retry budget of its thresholds when
 * one is configured (Envoy's RetryBudgetImpl, evaluated per retry against
 * the requests in flight and pending at this moment), else max_retries. */
static uint64_t s_retry_limit(const struct px_cluster *cl)
{
	const struct cb_thresholds *t = cl->up ? &cl->up->cb.t[CB_PRIO_DEFAULT] : NULL;
	const struct px_cluster_stats *st = px_cst_ro(cl);

	/* rq_active counts the pending requests too: Envoy's requests +
	 * pending_requests is their sum */
	if (t && t->has_budget)
		return cb_retry_budget(t, st->rq_active - st->rq_pending_active, st->rq_pending_active);
	return cl->max_retries;
}

/* kind: F_* before a response head, -1 with the head's status and
 * RETRY_RESP_* flags.  Envoy's order: the condition, then attempts left
 * and whether the request can be replayed, then the cluster's retry
 * limit (overflow counted). */
static int s_retry_allowed(struct px_stream *s, int kind, int status, unsigned resp)
{
	const struct router_retry *rp = s->rt->retry;
	enum retry_failure f = kind == F_CONNECT ? RETRY_F_CONNECT
			       : kind == F_RESET || kind == F_PROTOCOL ? RETRY_F_RESET
			       : kind == F_TIMEOUT ? RETRY_F_TIMEOUT
			       : kind == F_REFUSED ? RETRY_F_REFUSED
						   : RETRY_F_HEADERS;

	if (!rp || !retry_condition(rp, f, status > 0 ? (unsigned)status : 0, resp))
		return 0;
	if (s->attempt > rp->num_retries || s->resp_started || s->body_overflow) {
		if (s->attempt > rp->num_retries && rp->num_retries)
			s->flags |= PX_RF_URX;
		return 0;
	}
	if (!s->retrying && s->cl->retries_active >= s_retry_limit(s->cl)) {
		px_cst(s->cl)->rq_retry_overflow++;
		return 0;
	}
	return 1;
}

static void s_wait_cb(struct ev_loop *loop, struct ev_timer *t);

static void s_retry(struct px_stream *s)
{
	const struct router_retry *rp = s->rt->retry;

	s_release_upstream(s, 0);
	ev_timer_cancel(s->e->loop, &s->t_try);
	ev_timer_cancel(s->e->loop, &s->t_tidle);
	px_cst(s->cl)->rq_retry++;
	if (!s->retrying) {
		uint64_t base = rp && rp->backoff_base_ms > 0 ? (uint64_t)rp->backoff_base_ms : ROUTER_DEFAULT_BACKOFF_MS;

		s->retrying = 1;
		s->cl->retries_active++;
		retry_backoff_init(&s->backoff, base,
				   rp && rp->backoff_max_ms > 0 ? (uint64_t)rp->backoff_max_ms : base * 10);
	}
	s->attempt++;
	s->wait_kind = W_BACKOFF;
	ev_timer_arm(s->e->loop, &s->t_wait, retry_backoff_next(&s->backoff, px_rand(s->e)));
}

/* An attempt failed before a response head: retry, or answer. */
static void s_fail(struct px_stream *s, int kind, unsigned flag)
{
	char body[160];

	if (s->u) {
		s->u->h->st.rq_error++;
		if (s->u->h->up)
			s->u->h->up->rq_error++;
		if (kind == F_TIMEOUT)
			s->u->h->st.rq_timeout++;
		od_local(s->u->h, kind == F_CONNECT ? OUTLIER_CONNECT_FAILED : kind == F_TIMEOUT ? OUTLIER_TIMEOUT : OUTLIER_RESET,
			 s->e);
	}
	if (s_retry_allowed(s, kind, 0, 0)) {
		s_retry(s);
		return;
	}
	s_release_upstream(s, 0);
	if (kind == F_TIMEOUT) {
		s_local_reply(s, 504, flag, "upstream request timeout", NULL);
		return;
	}
	/* Envoy's router: "retried and the latest " once a retry was made, and
	 * 502 (not 503) for a protocol error */
	snprintf(body, sizeof(body), "upstream connect error or disconnect/reset before headers. %sreset reason: %s",
		 s->attempt > 1 ? "retried and the latest " : "",
		 kind == F_CONNECT    ? "connection failure"
		 : kind == F_REFUSED  ? "remote refused stream reset"
		 : kind == F_PROTOCOL ? "protocol error"
				      : "connection termination");
	s_local_reply(s, kind == F_PROTOCOL ? 502 : 503, flag, body, NULL);
}

static void s_global_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;

	(void)loop;
	px_cst(s->cl)->rq_timeout++;
	if (s->u)
		s->u->h->st.rq_timeout++;
	s_release_upstream(s, 0);
	if (s->resp_started) {
		s_abort(s, PX_RF_UT);
		return;
	}
	s_local_reply(s, 504, PX_RF_UT, "upstream request timeout", NULL);
}

static void s_try_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;

	(void)loop;
	px_cst(s->cl)->rq_per_try_timeout++;
	if (s->resp_started)
		return;
	s_fail(s, F_TIMEOUT, PX_RF_UT);
}

/* Envoy's stream idle timeout (ConnectionManagerImpl::ActiveStream::
 * onIdleTimeout): no byte moved either way for idle_ms ends the stream with
 * a local "408 stream timeout" (flag SI) if no response has started, else a
 * reset; the upstream connection is closed, not pooled.  Activity only
 * stamps last_io (d_cb, u_cb), so the timer is moved here, lazily, instead
 * of on every read. */
static void s_idle_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;
	uint64_t now = ev_now(loop), quiet = now - s->last_io;

	if (quiet < s->idle_ms) {
		ev_timer_arm(loop, &s->t_idle, s->idle_ms - quiet);
		return;
	}
	s->e->st.rq_idle_timeout++;
	s_release_upstream(s, 0);
	if (s->resp_started) {
		s_abort(s, PX_RF_SI);
		return;
	}
	s_local_reply(s, 408, PX_RF_SI, "stream timeout", NULL);
}

/* Envoy's request_timeout (ConnectionManagerImpl::ActiveStream::
 * onRequestTimeout): the whole request must be received this long after
 * it started, however its bytes trickle in; past it, before a response
 * has started, a local "408 request timeout" and the connection closes
 * (the rest of the body is not read).  Envoy disarms it once the request
 * is complete or the response starts: checked here instead. */
static void s_request_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;

	(void)loop;
	if (s->req_done || s->resp_started)
		return;
	s->e->st.rq_timeout++;
	s_release_upstream(s, 0);
	s_local_reply(s, 408, 0, "request timeout", NULL);
}

/* per_try_idle_timeout: nothing came from the upstream for that long.
 * Before a response head it is a per-try timeout (retried as one); after,
 * the response is cut. */
static void s_try_idle_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;

	(void)loop;
	px_cst(s->cl)->rq_per_try_timeout++;
	if (s->resp_started) {
		s_release_upstream(s, 0);
		s_abort(s, PX_RF_UT);
		return;
	}
	s_fail(s, F_TIMEOUT, PX_RF_UT);
}

/* Envoy's router starts the route timeout once the whole request has been
 * received (Filter::onRequestComplete), and the fault filter's delay runs
 * before the router, so it never counts; an attempt's per-try timeout and
 * per-try idle timeout start when its request is complete too.  Called
 * whenever one of those conditions may have become true. */
static void s_arm_timeouts(struct px_stream *s)
{
	struct ev_loop *loop = s->e->loop;
	const struct router_retry *rp = s->rt ? s->rt->retry : NULL;

	if (!s->req_done || s->fault_wait || s->resp_done)
		return;
	if (!s->global_armed && s->timeout_ms > 0) {
		s->global_armed = 1;
		ev_timer_arm(loop, &s->t_global, (uint64_t)s->timeout_ms);
	}
	if (s->u && !s->try_armed && !s->resp_started && rp) {
		s->try_armed = 1;
		if (rp->per_try_timeout_ms > 0)
			ev_timer_arm(loop, &s->t_try, (uint64_t)rp->per_try_timeout_ms);
		if (rp->per_try_idle_timeout_ms > 0)
			ev_timer_arm(loop, &s->t_tidle, (uint64_t)rp->per_try_idle_timeout_ms);
	}
}

/* Upstream bytes for s's attempt: its per-try idle timeout starts over. */
static void s_upstream_active(struct px_stream *s)
{
	if (ev_timer_armed(&s->t_tidle))
		ev_timer_arm(s->e->loop, &s->t_tidle, (uint64_t)s->rt->retry->per_try_idle_timeout_ms);
}

/* --- upstream connections */

static void u_cb(struct ev_loop *loop, struct ev_io *io, unsigned events);

static void u_tls_rd(struct ev_loop *loop, struct ev_defer *df)
{
	struct px_uconn *u = df->data;

	u_cb(loop, &u->io, EV_READ);
}

static void u_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_uconn *u = t->data;

	(void)loop;
	if (u->state == U_CONNECTING && u->s) {
		struct px_stream *s = u->s;

		px_cst(u->h->cl)->cx_connect_timeout++;
		u->h->st.cx_connect_fail++;
		px_cst(u->h->cl)->cx_connect_fail++;
		s_fail(s, F_CONNECT, PX_RF_UF);
		return;
	}
	if (u->state == U_IDLE)
		u_free(u, 1);
}

/* A connection slot freed up: the oldest request waiting for one tries again (soon, not on this stack). */
static void cluster_wake_pending(struct px_cluster *cl)
{
	struct px_stream *s;

	if (!cl->pending.next || cl->pending.next == &cl->pending)
		return;
	s = (struct px_stream *)((char *)cl->pending.next - offsetof(struct px_stream, pend));
	s->pend.prev->next = s->pend.next;
	s->pend.next->prev = s->pend.prev;
	s->pending = 0;
	px_cst(cl)->rq_pending_active--;
	s->wait_kind = W_PENDING;
	ev_timer_arm(s->e->loop, &s->t_wait, 0);
}

static void u_free(struct px_uconn *u, int count_destroy)
{
	struct engine *e = u->e;
	struct px_host *h = u->h;

	if (u->state == U_IDLE) {
		struct px_uconn **pp;

		for (pp = &h->idle; *pp; pp = &(*pp)->next)
			if (*pp == u) {
				*pp = u->next;
				h->n_idle--;
				break;
			}
	}
	if (u->s) {
		u->s->u = NULL;
		h->st.rq_active--;
		if (h->up && h->up->active_rq)
			h->up->active_rq--;
	}
	ev_io_stop(e->loop, &u->io);
	ev_timer_cancel(e->loop, &u->t);
	ev_defer_cancel(e->loop, &u->tls_rd);
	px_tls_free(u->tls); /* close_notify before the socket goes */
	u->tls = NULL;
	if (u->h2)
		px_h2u_forget(u->io.fd);
	close(u->io.fd);
	h->st.cx_active--;
	px_cst(h->cl)->cx_active--;
	cluster_wake_pending(h->cl);
	if (count_destroy)
		px_cst(h->cl)->cx_destroy++;
	mesh_buf_cleanup(&u->out);
	free(u->in.p);
	u->in.p = NULL;
	u->in.off = u->in.len = u->in.cap = 0;
	free(u->p.hdrs);
	u->p.hdrs = NULL;
	px_host_unref(h);
	u->h = NULL;
	if (u->in_cb)
		u->dead = 1; /* u_cb frees the struct on its way out */
	else
		free(u);
}

void px_pool_close_idle(struct px_host *h)
{
	while (h->idle)
		u_free(h->idle, 1);
}

static void u_update(struct px_uconn *u)
{
	unsigned m = 0;

	if (u->state == U_CONNECTING) {
		m = u->hs == 2 ? px_tls_want(u->tls) : EV_WRITE;
	} else {
		if (ob_pending(&u->out, u->out_off))
			m |= EV_WRITE;
		/* read unless the client is not keeping up with what we already queued */
		if (u->in.len < u->in.cap || u->in.off || u->in.cap < PX_IN_MAX) {
			if (!u->s || ob_pending(&u->s->d->out, u->s->d->out_off) < PX_OUT_HIGH)
				m |= EV_READ;
		}
	}
	if (ev_io_set(u->e->loop, &u->io, m) < 0)
		log_warn("meshproxy", "upstream %s: epoll_ctl failed", u->h->name);
	/* a record OpenSSL holds wakes no epoll: read it from the loop */
	if ((m & EV_READ) && u->tls && u->state != U_CONNECTING && px_tls_pending(u->tls))
		ev_defer(u->e->loop, &u->tls_rd);
}

/* Writes what is queued: 0, or a negative errno; -ECONNREFUSED when u is
 * a pipe to an HTTP/2 stream whose connection never came up (h2.c closed
 * the pipe before the request was written: a connect failure, as at the
 * EOF in u_on_eof, not a reset; s_fail_write tells them apart). */
static int u_flush(struct px_uconn *u)
{
	while (u->out_off < u->out.len) {
		ssize_t n = u->tops->write(u->tls, u->io.fd, u->out.data + u->out_off, u->out.len - u->out_off);

		if (n == -EAGAIN)
			break;
		if (n < 0)
			return u->h2 && px_h2u_connect_failed(u->io.fd) ? -ECONNREFUSED : (int)n;
		u->out_off += (size_t)n;
	}
	if (u->out_off == u->out.len) {
		mesh_buf_reset(&u->out);
		u->out_off = 0;
	}
	return 0;
}

/* A request that could not be written upstream, before any response:
 * a connect failure (UF, connect-failure retries) when u_flush said the
 * HTTP/2 connection never came up, else a reset (UC). */
static void s_fail_write(struct px_stream *s, int rc)
{
	if (rc == -ECONNREFUSED)
		s_fail(s, F_CONNECT, PX_RF_UF);
	else
		s_fail(s, F_RESET, PX_RF_UC);
}

/* The cluster's upstream_connection_options.tcp_keepalive on a new
 * upstream socket (Envoy sets SO_KEEPALIVE and the three TCP options it
 * was given; failures are ignored, as a best-effort socket option). */
static void u_keepalive(int fd, const struct px_cluster *cl)
{
	int one = 1, v;

	if (!cl->tcp_keepalive)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if ((v = (int)cl->keepalive_probes) > 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
	if ((v = (int)cl->keepalive_time_s) > 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v));
	if ((v = (int)cl->keepalive_interval_s) > 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
}

/* issue 12: TLS to this host when its cluster says so (mtls.c): every
 * host, or under auto mTLS only the hosts whose metadata says tlsMode
 * istio.  A context that needs the workload certificate before there is
 * one fails the connect (UF), as a cluster whose secret is not ready.  An
 * HTTP/2 cluster's connection is h2.c's (u is a pipe to one of its
 * streams): h2.c runs the same policy call on that connection. */
static int u_tls_setup(struct px_uconn *u, int fd, struct px_host *h)
{
	int rc;

	if (u->h2)
		return 0;
	rc = px_mtls_upstream_new(h, u->e->ident, fd, 0, &u->tls);
	if (rc < 0 || !u->tls)
		return rc;
	u->hs = 1;
	u->tops = &px_transport_tls;
	return 0;
}

/* The handshake step of a TLS upstream: 0 done (and the peer's SANs are
 * the ones the cluster asks for), -EAGAIN, or a negative code (logged). */
static int u_tls_step(struct px_uconn *u)
{
	int rc = px_mtls_upstream_step(u->h, u->tls);

	if (rc == 0)
		u->hs = 0;
	return rc;
}

static struct px_uconn *u_connect(struct px_stream *s, struct px_host *h, int *err)
{
	struct engine *e = s->e;
	struct px_uconn *u;
	int fd, one = 1, rc = 0, h2;

	*err = 0;
	h2 = px_h2_cluster_wants(h->cl, s->d->h2);
	if (h2) {
		/* an HTTP/2 cluster: this "connection" is a pipe to a stream of
		 * h2.c's shared connection to h, speaking HTTP/1.1 on our side */
		fd = px_h2u_open(e, h);
		if (fd < 0) {
			*err = fd;
			return NULL;
		}
	} else {
		fd = socket(h->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			*err = -errno;
			return NULL;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		u_keepalive(fd, h->cl);
	}
	u = calloc(1, sizeof(*u));
	if (u)
		h1_parser_init(&u->p, 0, NULL, malloc(PX_UHDRS_BYTES), H1_DEFAULT_MAX_HEADERS);
	if (!u || !u->p.hdrs) {
		free(u);
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	u->e = e;
	u->h = px_host_ref(h);
	u->h2 = h2;
	u->tops = &px_transport_raw;
	if (u_tls_setup(u, fd, h) < 0) {
		px_host_unref(u->h);
		free(u->p.hdrs);
		free(u);
		close(fd);
		h->st.cx_connect_fail++;
		px_cst(h->cl)->cx_connect_fail++;
		*err = -EPROTO;
		return NULL;
	}
	mesh_buf_init(&u->out, PX_OUT_MAX);
	ev_io_init(&u->io, fd, u_cb, u);
	ev_timer_init(&u->t, u_timer, u);
	ev_defer_init(&u->tls_rd, u_tls_rd, u);
	u->born_ms = ev_now(e->loop);
	h->st.cx_total++;
	h->st.cx_active++;
	px_cst(h->cl)->cx_total++;
	px_cst(h->cl)->cx_active++;
	u->state = U_CONNECTING;
	if (!h2) {
		/* issue 15: TPROXY's original_src, else the passthrough's 127.0.0.6 */
		rc = h->cl->type == PX_CL_ORIGINAL_DST ? 0
							: px_original_src(e, s->d->l, s->d->peer_ip, fd, h->addr.sa.sa_family);
		u->osrc = rc > 0;
		if (rc == 0 && s->d->inbound && h->cl->type == PX_CL_ORIGINAL_DST)
			px_bind_inbound_passthrough(fd, &h->addr.sa);
		if (rc >= 0)
			rc = connect(fd, (struct sockaddr *)&h->addr, h->alen);
		else
			errno = -rc;
	}
	if (rc < 0 && errno != EINPROGRESS) {
		*err = -errno;
		h->st.cx_connect_fail++;
		px_cst(h->cl)->cx_connect_fail++;
		u_free(u, 0);
		return NULL;
	}
	if (ev_io_start(e->loop, &u->io, EV_WRITE) < 0) {
		*err = -EIO;
		u_free(u, 0);
		return NULL;
	}
	ev_timer_arm(e->loop, &u->t, h->cl->connect_timeout_ms ? h->cl->connect_timeout_ms : 5000);
	return u;
}

/* Response head from upstream: forward it, or retry on it. */
/* issue 14: does a response carry metadata-exchange headers (which end at
 * the sidecar that reads them)?  Only then is the header copy edited. */
static int head_has_meta(const struct h1_head *h)
{
	size_t i;

	for (i = 0; i < h->n_headers; i++)
		if (istio_is_meta_header(h->headers[i].name.p, h->headers[i].name.len))
			return 1;
	return 0;
}

static int u_on_head(struct px_uconn *u, struct px_stream *s, const struct h1_head *h)
{
	struct px_dconn *d = s->d;
	struct mesh_buf *b = &d->out;
	int rc;

	if (h->status >= 100 && h->status < 200 && h->status != 101) {
		/* interim: 100 Continue goes to a client that asked for it; others are dropped */
		if (h->status == 100 && (s->req_flags & H1_F_EXPECT_CONTINUE) && !s->resp_started)
			mesh_buf_puts(b, "HTTP/1.1 100 Continue\r\n\r\n");
		u->in.off += h->head_len;
		h1_parser_reset(&u->p);
		h1_parser_set_request(&u->p, s->req_flags);
		return 1;
	}
	ev_timer_cancel(s->e->loop, &s->t_try);
	od_http(u->h, (unsigned)h->status, s->e);
	if (s_retry_allowed(s, -1, h->status,
			    (h1_head_get(h, CB_OVERLOADED_HEADER).len ? RETRY_RESP_OVERLOADED : 0) |
				    (h1_head_get(h, "x-envoy-ratelimited").len ? RETRY_RESP_RATELIMITED : 0) |
				    retry_resp_grpc(h1_head_get(h, "grpc-status").p, h1_head_get(h, "grpc-status").len))) {
		u->h->st.rq_error++;
		s_retry(s);
		return -1;
	}
	if (h->status >= 500)
		u->h->st.rq_error++;
	else
		u->h->st.rq_success++;
	s->upstream_ms = (int64_t)(ev_now(s->e->loop) - s->try_start_ms);
	if ((px_alog_cfg_needs(s->alog) & PX_ALOG_NEED_UPSTREAM_LOCAL) && !u->h2 && u->io.fd >= 0) {
		/* issue 14: the connection that answered, while it is the stream's */
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockname(u->io.fd, (struct sockaddr *)&ss, &len) == 0)
			px_alog_addr((const struct sockaddr *)&ss, len, s->alog_ulocal, sizeof(s->alog_ulocal));
	}
	s->resp_started = 1;
	s->status = h->status;
	if (s->e->istio) {
		/* issue 14: grpc-status of a trailers-only answer, and the
		 * destination's metadata on an outbound response */
		struct h1_str v = h1_head_get(h, "grpc-status");

		if (v.len)
			s->grpc_status1 = istio_grpc_status_val(v.p, v.len) + 1;
		v = h1_head_get(h, "x-envoy-peer-metadata");
		if (!d->inbound && v.len)
			s->peer = istio_stats_peer(s->e->istio, v.p, v.len);
		if (!d->inbound && u->tls)
			s->peer_principal = istio_stats_principal(s->e->istio, px_tls_peer_uri(u->tls));
		else if (!d->inbound && u->h2) /* TLS is the HTTP/2 connection's (h2.c) */
			s->peer_principal = istio_stats_principal(s->e->istio, px_h2u_peer_uri(s->e, u->io.fd));
	}
	u->rkeep = (h->flags & H1_F_KEEP_ALIVE) != 0;
	u->rframing = h->framing;
	if (s->retrying) {
		px_cst(s->cl)->rq_retry_success++;
	}
	rc = h1_out_status_line(b, h->status, h->reason);
	if (!rc && !s->hdrs->n_resp && !(s->e->istio && head_has_meta(h))) {
		/* nothing to edit or strip: the fields as they came */
		rc = h1_out_fields(b, h, h->framing != H1_BODY_NONE);
		if (!rc && s->e->istio && d->inbound)
			rc = s_put_peer_meta(s->e, b);
	} else if (!rc) {
		size_t i;

		for (i = 0; !rc && i < h->n_headers; i++) {
			const struct h1_header *f = &h->headers[i];
			unsigned id = f->flags & H1_HF_ID_MASK;

			if ((f->flags & H1_HF_HOP) || (id == H1_H_CONTENT_LENGTH && h->framing != H1_BODY_NONE) ||
			    edit_drops(f->name, s->hdrs->resp, s->hdrs->n_resp))
				continue;
			/* issue 14: metadata exchange headers end at the sidecar that reads them */
			if (s->e->istio && istio_is_meta_header(f->name.p, f->name.len))
				continue;
			rc = h1_out_header(b, f->name, f->value);
		}
		if (!rc && s->e->istio && d->inbound)
			rc = s_put_peer_meta(s->e, b);
		if (!rc)
			rc = edit_add(b, h->headers, h->n_headers, s->hdrs->resp, s->hdrs->n_resp);
	}
	s->out_framing = h->framing;
	if (h->framing == H1_BODY_UNTIL_CLOSE) {
		if (s->req_minor >= 1) {
			s->out_framing = H1_BODY_CHUNKED;
			if (!rc)
				rc = h1_out_framing(b, H1_BODY_CHUNKED, 0);
		} else {
			s->keep = 0;
		}
	} else if (h->framing == H1_BODY_CHUNKED && s->req_minor == 0) {
		s->out_framing = H1_BODY_UNTIL_CLOSE; /* an HTTP/1.0 client: delimited by close */
		s->keep = 0;
	} else if (h->framing == H1_BODY_LENGTH || h->framing == H1_BODY_CHUNKED) {
		if (!rc)
			rc = h1_out_framing(b, h->framing, h->content_length);
	} else if (h->framing == H1_BODY_TUNNEL) {
		if (!rc)
			rc = mesh_buf_puts(b, "connection: upgrade\r\n");
		if (!rc) {
			struct h1_str up = h1_head_get(h, "upgrade");
			static const struct h1_str upn = { "upgrade", 7 };

			if (up.len)
				rc = h1_out_header(b, upn, up);
		}
	}
	if (!rc && s->set_cookie[0])
		rc = mesh_buf_puts(b, s->set_cookie) < 0;
	if (!rc && s->cors_hdrs)
		rc = mesh_buf_puts(b, s->cors_hdrs) < 0;
	if (!rc && s->upstream_ms >= 0 && h->framing != H1_BODY_TUNNEL)
		put_num_header(b, "x-envoy-upstream-service-time: ", 31, (uint64_t)s->upstream_ms);
	if (!rc && h->framing != H1_BODY_TUNNEL && (!s->keep || d->drain))
		rc = mesh_buf_puts(b, "connection: close\r\n");
	if (!rc)
		rc = h1_out_end(b);
	if (rc) {
		s_abort(s, PX_RF_UC);
		return -1;
	}
	u->in.off += h->head_len;
	u->head_done = 1;
	if (h->framing == H1_BODY_TUNNEL) {
		u->state = U_TUNNEL;
		d->state = D_TUNNEL;
		s->req_done = 1;
		ev_timer_cancel(s->e->loop, &s->t_global);
		ev_timer_cancel(s->e->loop, &s->t_tidle); /* a tunnel has no per-try idle */
		ev_defer(s->e->loop, &d->proc);
	}
	return 0;
}

static void s_response_done(struct px_stream *s)
{
	struct px_dconn *d = s->d;

	if (s->out_framing == H1_BODY_CHUNKED && !s->trailers_sent)
		mesh_buf_puts(&d->out, H1_CHUNK_LAST);
	s->resp_done = 1;
	d_flush(d);
	if (s->req_done) {
		s_end(s);
		return;
	}
	/* the response ended before the request body: Envoy answers and closes */
	s->keep = 0;
	d->close_after = 1;
	s->req_done = 1;
	s_end(s);
}

/* Parses what the upstream sent; returns after the stream may have ended. */
static void u_process(struct px_uconn *u)
{
	while (!u->dead && u->s) {
		struct px_stream *s = u->s;
		struct px_dconn *d = s->d;

		/* a body may end with no byte left (the last DATA took them all): the
		 * body parser is asked again with nothing to say DONE */
		if (u->in.off == u->in.len && (!u->head_done || u->state == U_TUNNEL))
			break;
		if (u->state == U_TUNNEL) {
			mesh_buf_append(&d->out, u->in.p + u->in.off, u->in.len - u->in.off);
			s->tx += u->in.len - u->in.off;
			u->in.off = u->in.len;
			break;
		}
		if (!u->head_done) {
			struct h1_head h;
			int rc = h1_parse_head(&u->p, u->in.p + u->in.off, u->in.len - u->in.off, &h);

			if (rc == H1_AGAIN)
				break;
			if (rc < 0) {
				log_debug("meshproxy", "upstream %s: bad response: %s", u->h->name, h1_strerror(rc));
				u->rkeep = 0;
				if (!s->resp_started)
					s_fail(s, F_PROTOCOL, PX_RF_UPE);
				else
					s_abort(s, PX_RF_UPE);
				return;
			}
			if (h.status == 101 && !(s->req_flags & H1_F_UPGRADE)) {
				/* switching protocols nobody asked for: Envoy's codec
				 * refuses it as a protocol error; never a tunnel */
				log_debug("meshproxy", "upstream %s: 101 to a request without an upgrade", u->h->name);
				u->rkeep = 0;
				s_fail(s, F_PROTOCOL, PX_RF_UPE);
				return;
			}
			rc = u_on_head(u, s, &h);
			if (rc < 0)
				return;
			if (rc > 0)
				continue;
			if (u->state == U_TUNNEL)
				continue;
		} else {
			size_t used = 0;
			struct h1_str data;
			int rc;

			if (ob_pending(&d->out, d->out_off) >= PX_OUT_HIGH)
				break; /* back-pressure: the client reads slower than the upstream sends */
			rc = h1_parse_body(&u->p, u->in.p + u->in.off, u->in.len - u->in.off, &used, &data);
			u->in.off += used;
			if (rc == H1_AGAIN)
				break;
			if (rc == H1_DATA) {
				if (s->out_framing == H1_BODY_CHUNKED)
					rc = h1_out_chunk(&d->out, data.p, data.len);
				else
					(void)mesh_buf_append(&d->out, data.p, data.len);
				s->tx += data.len;
				continue;
			}
			if (rc == H1_TRAILERS) {
				/* relayed when the client's side is chunked too (gRPC's
				 * grpc-status over HTTP/2 arrives this way from h2.c) */
				if (s->e->istio) {
					int g = istio_grpc_status_in(data.p, data.len);

					if (g >= 0)
						s->grpc_status1 = g + 1;
				}
				if (s->out_framing == H1_BODY_CHUNKED && !s->trailers_sent) {
					mesh_buf_puts(&d->out, "0\r\n");
					mesh_buf_append(&d->out, data.p, data.len);
					mesh_buf_puts(&d->out, "\r\n");
					s->trailers_sent = 1;
				}
				continue;
			}
			if (rc == H1_DONE) {
				s_response_done(s);
				return;
			}
			s_abort(s, PX_RF_UC);
			return;
		}
	}
	if (!u->dead && u->s) {
		d_flush(u->s->d);
		ev_defer(u->e->loop, &u->s->d->proc);
	}
}

static void u_on_eof(struct px_uconn *u)
{
	struct px_stream *s = u->s;

	u->eof = 1;
	if (!s) {
		u_free(u, 1);
		return;
	}
	if (u->state == U_TUNNEL) {
		s->resp_done = 1;
		s->req_done = 1;
		s->keep = 0;
		d_flush(s->d);
		s_end(s);
		return;
	}
	if (!s->resp_started && u->h2 && px_h2u_connect_failed(u->io.fd)) {
		/* the HTTP/2 connection behind the pipe never came up (h2.c counted it) */
		s_fail(s, F_CONNECT, PX_RF_UF);
		return;
	}
	if (!s->resp_started && u->h2 && px_h2u_refused(u->io.fd)) {
		/* the HTTP/2 server refused the stream unprocessed (h2.c) */
		px_cst(u->h->cl)->rq_rx_reset++;
		s_fail(s, F_REFUSED, PX_RF_UR);
		return;
	}
	if (!s->resp_started) {
		px_cst(u->h->cl)->rq_rx_reset++;
		s_fail(s, F_RESET, PX_RF_UC);
		return;
	}
	if (u->head_done && h1_parse_eof(&u->p) == H1_DONE) {
		s_response_done(s);
		return;
	}
	s_abort(s, PX_RF_UC);
}

static void u_cb_inner(struct px_uconn *u, struct ev_io *io, unsigned events);

static void u_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct px_uconn *u = io->data;

	if (u->s)
		u->s->last_io = ev_now(loop);
	u->in_cb = 1;
	u_cb_inner(u, io, events);
	u->in_cb = 0;
	if (u->dead)
		free(u);
	else if (u->state != U_IDLE)
		u_update(u);
}

static void u_cb_inner(struct px_uconn *u, struct ev_io *io, unsigned events)
{
	struct px_stream *s = u->s;

	if (u->state == U_IDLE) {
		/* an idle pooled connection is readable: the server closed it (or misbehaves) */
		u_free(u, 1);
		return;
	}
	if (u->state == U_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (u->hs != 2 && getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (!err && u->hs) {
			/* TCP is up: the TLS handshake, under the connect timeout */
			int rc;

			u->hs = 2;
			rc = u_tls_step(u);

			if (rc == -EAGAIN) {
				u_update(u);
				return;
			}
			if (rc < 0)
				err = EPROTO;
			events |= EV_WRITE; /* the request waits in u->out */
		}
		if (err) {
			u->h->st.cx_connect_fail++;
			px_cst(u->h->cl)->cx_connect_fail++;
			if (s)
				s_fail(s, F_CONNECT, PX_RF_UF);
			else
				u_free(u, 0);
			return;
		}
		u->state = U_ACTIVE;
		ev_timer_cancel(u->e->loop, &u->t);
		od_local(u->h, OUTLIER_CONNECT_SUCCESS, u->e);
	}
	if (events & EV_WRITE) {
		int wrc = u_flush(u);

		if (wrc < 0) {
			if (s && !s->resp_started)
				s_fail_write(s, wrc);
			else if (s)
				s_abort(s, PX_RF_UC);
			else
				u_free(u, 1);
			return;
		}
		/* room again upstream: the client's body may move on */
		if (s && ob_pending(&u->out, u->out_off) < PX_OUT_HIGH)
			ev_defer(u->e->loop, &s->d->proc);
	}
	if (events & (EV_READ | EV_ERROR)) {
		if (ib_room(&u->in, PX_IN_MAX)) {
			ssize_t n = u->tops->read(u->tls, io->fd, u->in.p + u->in.len, u->in.cap - u->in.len);

			if (n > 0) {
				u->in.len += (size_t)n;
				/* TLS: a record larger than the room stays inside OpenSSL,
				 * with nothing on the socket to wake us: take it now */
				while (u->tls && px_tls_pending(u->tls) && ib_room(&u->in, PX_IN_MAX)) {
					ssize_t more = u->tops->read(u->tls, io->fd, u->in.p + u->in.len,
								     u->in.cap - u->in.len);

					if (more <= 0)
						break;
					u->in.len += (size_t)more;
				}
				if (u->s)
					s_upstream_active(u->s);
				u_process(u);
			} else if (n == 0 || (n < 0 && n != -EAGAIN)) {
				u_on_eof(u);
				return;
			}
		}
	}
}

/* --- attempts */

static struct px_host *s_pick(struct px_stream *s)
{
	struct px_cluster *cl = s->cl;
	struct up_host *avoid_v[PX_MAX_TRIED], *up;
	struct up_avoid avoid = { avoid_v, 0, 0 };
	size_t i;

	if (cl->type == PX_CL_ORIGINAL_DST)
		return s->have_odst ? px_cluster_dst_host(cl, &s->odst, s->odst_len) : NULL;
	if (!cl->hs)
		return NULL;
	if (s->rt->retry && s->rt->retry->previous_hosts) {
		for (i = 0; i < s->n_tried; i++)
			if (s->tried[i]->up)
				avoid_v[avoid.n++] = s->tried[i]->up;
		avoid.max_attempts = s->rt->retry->host_selection_max_attempts > 0
					     ? (uint32_t)s->rt->retry->host_selection_max_attempts
					     : 1;
	}
	up = up_pick_at(cl->hs, &s->e->lbrng, s->have_hash ? &s->hash : NULL, avoid.n ? &avoid : NULL,
			ev_now(s->e->loop));
	return up ? px_cluster_host_of(cl, up) : NULL;
}

/* BlackHoleCluster: answered as REGISTRY_ONLY's catch-all is (502, NR),
 * never connected: Istio's blackhole chains (virtualOutbound-blackhole,
 * virtualInbound-blackhole on destination_port 15001/15006) and an
 * inbound port the workload does not declare. */
static void s_blackhole(struct px_stream *s)
{
	s->e->st.no_route++;
	s_local_reply(s, 502, PX_RF_NR, NULL, NULL);
}

/* A destination that is one of meshproxy's own listening sockets is never
 * connected (the request would come back in and loop until the fds run
 * out, or reach the admin port): answered as BlackHoleCluster, counted
 * (meshproxy_http_loop_refused) and logged once per configuration.  An
 * outbound request to our own inbound listener is a workload calling its
 * own service and goes through (px_engine_is_loop()).
 * Returns 1 when refused. */
static int s_loop_refused(struct px_stream *s, const struct sockaddr *sa, socklen_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (!px_engine_is_loop(s->e, sa, len, s->d->inbound))
		return 0;
	s->e->st.rq_loop_refused++;
	if (!s->cfg->loop_logged) {
		s->cfg->loop_logged = 1;
		if (sa->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		} else if (sa->sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
			port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		}
		log_warn("meshproxy", "refused a request to %s:%d (cluster %s): a socket of meshproxy itself, "
			 "answered as BlackHoleCluster (logged once per configuration)", ip, port, s->cl ? s->cl->name : "-");
	}
	s_blackhole(s);
	return 1;
}

static void s_attempt(struct px_stream *s)
{
	struct engine *e = s->e;
	struct px_host *h;
	struct px_uconn *u;
	int err;

	/* checked before the ORIGINAL_DST host is made (it would stay in /clusters) */
	if (s->cl->type == PX_CL_ORIGINAL_DST && s->have_odst &&
	    s_loop_refused(s, (const struct sockaddr *)&s->odst, s->odst_len))
		return;
	/* issue 13: a DNS cluster is not used before its first resolution
	 * (Envoy warms it): the request waits, polling, at most
	 * PX_DNS_WARM_MAX_MS, then takes whatever hosts there are */
	if (s->cl->dns && !dnscl_warm(s->cl->dns)) {
		if (!s->warm_start)
			s->warm_start = ev_now(e->loop) + 1; /* never 0 */
		if (ev_now(e->loop) + 1 - s->warm_start < PX_DNS_WARM_MAX_MS) {
			s->wait_kind = W_WARM;
			ev_timer_arm(e->loop, &s->t_wait, PX_DNS_WARM_POLL_MS);
			return;
		}
	}
	h = s_pick(s);
	if (!h) {
		s_local_reply(s, 503, PX_RF_UH, "no healthy upstream", NULL);
		return;
	}
	if (s_loop_refused(s, &h->addr.sa, h->alen))
		return;
	/* what an operator turns on with POST /logging?meshproxy=debug */
	log_debug("meshproxy", "[%.*s] %.*s %.*s%.*s -> cluster %s host %s (attempt %u)", (int)s->rid.len, s->rid.p,
		  (int)s->method.len, s->method.p, (int)s->authority.len, s->authority.p, (int)s->path.len, s->path.p,
		  s->cl->name, h->name, s->attempt);
	if (s->n_tried < PX_MAX_TRIED)
		s->tried[s->n_tried++] = px_host_ref(h);
	else {
		px_host_unref(s->tried[PX_MAX_TRIED - 1]);
		s->tried[PX_MAX_TRIED - 1] = px_host_ref(h);
	}
	u = h->idle;
	if (u) {
		h->idle = u->next;
		h->n_idle--;
		u->next = NULL;
		u->p.hdrs = malloc(PX_UHDRS_BYTES);
		if (!u->p.hdrs) {
			u_free(u, 1);
			s_local_reply(s, 503, PX_RF_UF, "out of memory", NULL);
			return;
		}
		u->state = U_ACTIVE;
		ev_timer_cancel(e->loop, &u->t);
	} else {
		if (px_cst(h->cl)->cx_active >= h->cl->max_connections) {
			struct px_cluster *cl = h->cl;

			px_cst(cl)->cx_overflow++;
			/* Envoy's HTTP/1 pool: wait for a connection, up to max_pending_requests, then UO */
			if (px_cst(cl)->rq_pending_active >= cl->max_pending) {
				px_cst(cl)->rq_pending_overflow++;
				s_local_reply(s, 503, PX_RF_UO, "upstream connect error or disconnect/reset before headers. reset reason: overflow",
					      "x-envoy-overloaded: true\r\n");
				return;
			}
			if (!cl->pending.next)
				cl->pending.next = cl->pending.prev = &cl->pending;
			s->pend.next = &cl->pending;
			s->pend.prev = cl->pending.prev;
			cl->pending.prev->next = &s->pend;
			cl->pending.prev = &s->pend;
			s->pending = 1;
			px_cst(cl)->rq_pending_active++;
			return;
		}
		u = u_connect(s, h, &err);
		if (!u) {
			s->u = NULL;
			s_fail(s, F_CONNECT, PX_RF_UF);
			return;
		}
	}
	s->u = u;
	u->s = s;
	u->nreq++;
	h->st.rq_total++;
	h->st.rq_active++;
	if (h->up) {
		h->up->active_rq++;
		h->up->rq_total++;
	}
	h1_parser_set_request(&u->p, s->req_flags);
	mesh_buf_append(&u->out, s->head.data, s->head.len);
	if (s->rt->include_attempt_count_req)
		put_num_header(&u->out, "x-envoy-attempt-count: ", 23, s->attempt);
	mesh_buf_append(&u->out, "\r\n", 2);
	if (s->body.len)
		mesh_buf_append(&u->out, s->body.data, s->body.len);
	s->try_start_ms = ev_now(e->loop);
	s->try_armed = 0;
	s_arm_timeouts(s);
	if (u->state == U_ACTIVE && (err = u_flush(u)) < 0) {
		s_fail_write(s, err);
		return;
	}
	u_update(u);
	if (s->d->state == D_BODY)
		ev_defer(e->loop, &s->d->proc);
}

/* The passthrough destination's name resolved (dns.c's callback, from its
 * timer): the first address, as getaddrinfo orders them, with the port. */
static void s_resolved(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct px_stream *s = arg;

	s->dq = NULL;
	if (status == -ETIMEDOUT) {
		s_local_reply(s, 503, PX_RF_UF, "upstream connect error or disconnect/reset before headers. reset reason: dns resolution timeout", NULL);
		return;
	}
	if (status < 0 || !n) {
		s_local_reply(s, 503, PX_RF_UF, "upstream connect error or disconnect/reset before headers. reset reason: dns resolution failure", NULL);
		return;
	}
	memset(&s->odst, 0, sizeof(s->odst));
	memcpy(&s->odst, &addrs[0].u, addrs[0].len);
	if (addrs[0].u.sa.sa_family == AF_INET)
		((struct sockaddr_in *)&s->odst)->sin_port = htons(s->gai_port);
	else
		((struct sockaddr_in6 *)&s->odst)->sin6_port = htons(s->gai_port);
	s->odst_len = addrs[0].len;
	s->have_odst = 1;
	s_attempt(s);
}

/* The fault filter's abort (after its delay, if any): 1 when answered. */
static int s_fault_abort(struct px_stream *s)
{
	const struct router_fault *fault = s->rt->fault;

	if (!fault || !fault->has_abort || !fault->abort_http_status ||
	    !router_fraction(fault->abort_per_million, px_rand(s->e)))
		return 0;
	s_local_reply(s, (int)fault->abort_http_status, PX_RF_FI, "fault filter abort", NULL);
	return 1;
}

static void s_wait_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_stream *s = t->data;
	int kind = s->wait_kind;

	(void)loop;
	s->wait_kind = W_NONE;
	if (kind == W_FAULT) {
		/* the delay is over: the abort, then the router and its timeouts */
		s->fault_wait = 0;
		if (s_fault_abort(s))
			return;
		s_arm_timeouts(s);
	}
	s_attempt(s);
}

/* --- starting a stream from a parsed request head */

static int split_authority(struct h1_str a, struct h1_str *host, uint32_t *port)
{
	size_t i;

	*host = a;
	*port = 80;
	if (a.len && a.p[0] == '[') {
		const char *rb = memchr(a.p, ']', a.len);

		if (!rb)
			return -EINVAL;
		host->p = a.p + 1;
		host->len = (size_t)(rb - a.p) - 1;
		if ((size_t)(rb - a.p) + 1 < a.len && rb[1] == ':')
			*port = (uint32_t)strtoul(rb + 2, NULL, 10);
		return 0;
	}
	for (i = a.len; i > 0; i--)
		if (a.p[i - 1] == ':') {
			unsigned long v = 0;
			size_t j;

			for (j = i; j < a.len; j++) {
				if (a.p[j] < '0' || a.p[j] > '9')
					return -EINVAL;
				v = v * 10 + (unsigned long)(a.p[j] - '0');
				if (v > 65535)
					return -EINVAL;
			}
			host->len = i - 1;
			*port = (uint32_t)v;
			break;
		}
	return 0;
}

/* Chain c of sel as px_dconn.chain numbers them, or NULL. */
static const struct px_port *sel_chain(const struct px_sel *sel, int c)
{
	if (c > 0 && (size_t)c <= sel->n_chains)
		return &sel->chains[c - 1];
	if (c < 0 && sel->fcm.has_default)
		return &sel->def;
	return NULL;
}

static const struct px_port *find_port(const struct px_port *v, size_t n, uint32_t vip, uint32_t port)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].port == port && v[i].vip == vip && vip)
			return &v[i];
	for (i = 0; i < n; i++)
		if (v[i].port == port && v[i].vip == 0)
			return &v[i];
	return NULL;
}

/* issue 15: a captured connection's original destination as find_port()
 * takes it: the IPv4 address (network order) and the port; an IPv6 one
 * (IP6T_SO_ORIGINAL_DST) gives vip 0, per-VIP listeners being IPv4 here,
 * so its port's 0.0.0.0_PORT listener serves it.  -1: not captured. */
static int d_odst(const struct px_dconn *d, uint32_t *vip, uint16_t *port)
{
	if (!d->captured)
		return -1;
	if (d->dst.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&d->dst;

		*vip = sin->sin_addr.s_addr;
		*port = ntohs(sin->sin_port);
		return 0;
	}
	if (d->dst.ss_family == AF_INET6) {
		*vip = 0;
		*port = ntohs(((const struct sockaddr_in6 *)&d->dst)->sin6_port);
		return 0;
	}
	return -1;
}

static int s_set_odst(struct px_stream *s, struct h1_str host, uint32_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->odst;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->odst;
	char buf[256];

	if (host.len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, host.p, host.len);
	buf[host.len] = 0;
	memset(&s->odst, 0, sizeof(s->odst));
	if (!strcmp(buf, "localhost"))
		snprintf(buf, sizeof(buf), "127.0.0.1");
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		s->odst_len = sizeof(*sin);
		s->have_odst = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		s->odst_len = sizeof(*sin6);
		s->have_odst = 1;
		return 0;
	}
	/* a name: resolved off the loop (dns.c: glibc's getaddrinfo_a runs it on its own thread) */
	snprintf(s->gai_host, sizeof(s->gai_host), "%s", buf);
	s->gai_port = (uint16_t)port;
	return 1;
}

static int s_start_resolve(struct px_stream *s)
{
	/* every family, in the resolver's order: the first address is the one
	 * getaddrinfo ranks first, as before this went through dns.c */
	return dns_resolve(s->e->dns, s->gai_host, DNS_ALL, s_resolved, s, &s->dq) < 0 ? -EIO : 0;
}

static const struct h1_str H_HOST = { "host", 4 };

static int name_is(struct h1_str n, const char *name)
{
	return strlen(name) == n.len && !strncasecmp(n.p, name, n.len);
}

/* Header edits over a streamed head (router.h keeps them in Envoy's order):
 * a field of the message is dropped when an edit removes or overwrites its
 * name; the edits' values are then appended.  (An edit removing a header
 * that an earlier level added is not replayed: the levels' adds all go.) */
static int edit_drops(struct h1_str name, const struct router_hdr *ops, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((ops[i].op == ROUTER_HDR_REMOVE || ops[i].op == ROUTER_HDR_OVERWRITE_IF_EXISTS_OR_ADD ||
		     ops[i].op == ROUTER_HDR_OVERWRITE_IF_EXISTS) &&
		    ops[i].name_len == name.len && !strncasecmp(ops[i].name, name.p, name.len))
			return 1;
	return 0;
}

static int fields_have(const struct h1_header *fields, size_t n, const char *name)
{
	size_t j;

	for (j = 0; j < n; j++)
		if (name_is(fields[j].name, name))
			return 1;
	return 0;
}

static int edit_add(struct mesh_buf *b, const struct h1_header *fields, size_t n, const struct router_hdr *ops,
		    size_t nops)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < nops; i++) {
		struct h1_str nm = { ops[i].name, ops[i].name_len }, v = { ops[i].value, ops[i].value_len };

		if (ops[i].op == ROUTER_HDR_REMOVE || (!v.len && !ops[i].keep_empty))
			continue;
		if ((ops[i].op == ROUTER_HDR_ADD_IF_ABSENT && fields_have(fields, n, ops[i].name)) ||
		    (ops[i].op == ROUTER_HDR_OVERWRITE_IF_EXISTS && !fields_have(fields, n, ops[i].name)))
			continue;
		rc = h1_out_header(b, nm, v);
	}
	return rc;
}

/* Appends "name: N\r\n" without printf (hot path: attempt count, service time). */
static void put_num_header(struct mesh_buf *b, const char *name, size_t nlen, uint64_t v)
{
	char tmp[64], *p = tmp + sizeof(tmp);

	*--p = '\n';
	*--p = '\r';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	(void)mesh_buf_append(b, name, nlen);
	(void)mesh_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* A version 4 UUID (Envoy's x-request-id, 8-4-4-4-12 hex digits) from two random
 * words, into out[36]. */
static void uuid4(struct engine *e, char out[36])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = px_rand(e), c = px_rand(e);
	int i, j = 0;

	a = (a & ~0xf000ULL) | 0x4000ULL;                   /* version 4 */
	c = (c & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant 10 */
	for (i = 0; i < 16; i++) {
		if (i == 8 || i == 12)
			out[j++] = '-';
		out[j++] = hex[(a >> (60 - 4 * i)) & 0xf];
	}
	out[j++] = '-';
	for (i = 0; i < 16; i++) {
		if (i == 4)
			out[j++] = '-';
		out[j++] = hex[(c >> (60 - 4 * i)) & 0xf];
	}
}

/* The upstream head: request line, Host, the client's fields but hop-by-hop
 * and framing ones, x-request-id, x-forwarded-proto, the framing. */
/* RFC 9112 3.2.2 (and Envoy's codec): an absolute-form target with an
 * empty path ("http://web:8080", "http://web:8080?x=1") has the path "/",
 * for routing and upstream alike. */
static int path_needs_slash(const struct h1_head *h)
{
	return h->form == H1_FORM_ABSOLUTE && (!h->path.len || h->path.p[0] == '?');
}

/* issue 12: Envoy's x-forwarded-client-cert for an mTLS peer, with what
 * Istio's set_current_client_cert_details asks for (By, Hash, Subject,
 * URI).  APPEND_FORWARD: a client's own XFCC is kept and this one added as
 * a further field line (the same list as appending with a comma). */
static int s_put_xfcc(struct px_stream *s, struct mesh_buf *b)
{
	char v[1024];
	const char *x = v;

	/* an HTTP/2 stream's connection is a pipe: its session made the element */
	if (s->d->tls ? px_tls_xfcc(s->d->tls, v, sizeof(v)) < 0 : !(x = s->d->xfcc))
		return 0; /* nothing sensible to tell (over the bound): left out */
	mesh_buf_puts(b, "x-forwarded-client-cert: ");
	mesh_buf_puts(b, x);
	return mesh_buf_puts(b, "\r\n");
}

/* issue 14: Istio's metadata exchange headers for this node (istio_stats.h) */
static int s_put_peer_meta(struct engine *e, struct mesh_buf *b)
{
	mesh_buf_puts(b, "x-envoy-peer-metadata-id: ");
	mesh_buf_puts(b, istio_stats_meta_id(e->istio));
	mesh_buf_puts(b, "\r\nx-envoy-peer-metadata: ");
	mesh_buf_puts(b, istio_stats_meta(e->istio));
	return mesh_buf_puts(b, "\r\n") < 0 ? -ENOMEM : 0;
}

/* Envoy's default internal addresses (Network::Utility::isInternalAddress):
 * RFC 1918, loopback; IPv6 ::1 and fd00::/8. */
static int ip_internal(const char *ip)
{
	struct in_addr a;
	struct in6_addr a6;
	uint32_t v;

	if (inet_pton(AF_INET, ip, &a) == 1) {
		v = ntohl(a.s_addr);
		return (v >> 24) == 10 || (v >> 24) == 127 || (v >> 20) == 0xac1 || (v >> 16) == 0xc0a8;
	}
	if (inet_pton(AF_INET6, ip, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) || a6.s6_addr[0] == 0xfd;
	return 0;
}

/* Internal x-envoy-* headers Envoy's HCM removes from an external request
 * (ConnectionManagerUtility::cleanInternalHeaders), and the two it sets. */
static int edge_drops(struct h1_str name, int external)
{
	static const char *const internal[] = {
		"x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node",
		"x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace", "x-envoy-hedge-on-per-try-timeout",
		"x-envoy-ip-tags", "x-envoy-max-retries", "x-envoy-retry-grpc-on", "x-envoy-retry-on",
		"x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-per-try-timeout-ms",
		"x-envoy-upstream-rq-timeout-alt-response", "x-envoy-upstream-rq-timeout-ms",
		"x-envoy-upstream-stream-duration-ms",
	};
	size_t i;

	if (name.len < 8 || strncasecmp(name.p, "x-envoy-", 8))
		return h1_str_ieq(name, "x-forwarded-for") || h1_str_ieq(name, "x-forwarded-proto") ||
		       (external && h1_str_ieq(name, "x-request-id"));
	if (h1_str_ieq(name, "x-envoy-internal") || h1_str_ieq(name, "x-envoy-external-address"))
		return 1;
	for (i = 0; external && i < sizeof(internal) / sizeof(internal[0]); i++)
		if (h1_str_ieq(name, internal[i]))
			return 1;
	return 0;
}

/*
 * Issue 13: what Envoy's HCM does to a request with use_remote_address
 * true and xff_num_trusted_hops 0 (a gateway; ConnectionManagerUtility::
 * mutateRequestHeaders): the client's address appended to
 * x-forwarded-for ("," as Envoy's header map joins), x-forwarded-proto
 * overwritten with the connection's scheme, x-envoy-internal: true for an
 * internal client, else x-envoy-external-address with its address (and
 * the internal x-envoy-* headers dropped, and x-request-id made anew:
 * preserve_external_request_id false).  The client's lines for these were
 * skipped by edge_drops().
 */
static int s_put_edge(struct px_stream *s, struct mesh_buf *b, int external)
{
	const char *ip = s->d->peer_ip;

	/* (an address not known, IPv6 today: the client's list as it came) */
	if (s->xff.len || ip[0]) {
		mesh_buf_puts(b, "x-forwarded-for: ");
		mesh_buf_append(b, s->xff.p, s->xff.len);
		if (s->xff.len && ip[0])
			mesh_buf_puts(b, ",");
		mesh_buf_puts(b, ip);
		mesh_buf_puts(b, "\r\n");
	}
	mesh_buf_puts(b, s->d->via_tls ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n");
	if (!ip[0])
		return b->err;
	if (!external)
		return mesh_buf_puts(b, "x-envoy-internal: true\r\n") < 0 ? -ENOMEM : 0;
	mesh_buf_puts(b, "x-envoy-external-address: ");
	mesh_buf_puts(b, ip);
	return mesh_buf_puts(b, "\r\n") < 0 ? -ENOMEM : 0;
}

static int s_build_head(struct px_stream *s, const struct h1_head *h, struct h1_str authority,
			const struct router_req *rq)
{
	int external = s->edge && !ip_internal(s->d->peer_ip);
	struct mesh_buf *b = &s->head;
	const struct router_route *rt = s->rt;
	const struct router_hdrs *eh = s->hdrs;
	struct h1_str path = h->path, host = authority;
	int have_rid = 0, have_xfp = 0, rc = 0;
	char pathbuf[8192];
	const char *ha;
	size_t i, len;

	if (h->form == H1_FORM_ASTERISK || h->form == H1_FORM_AUTHORITY)
		path = h->target;
	else if (s->norm_path) {
		/* the HCM's normalized path goes upstream (s_authz), unless a rewrite follows */
		path.p = s->norm_path;
		path.len = s->path.len;
	}
	if (h->form != H1_FORM_ASTERISK && h->form != H1_FORM_AUTHORITY && rq && rt != &s->synth &&
	    router_upstream_path(rt, rq, pathbuf, sizeof(pathbuf), &len) == 1) {
		path.p = pathbuf;
		path.len = len;
	}
	if (rq && rt != &s->synth && (ha = router_upstream_authority(rt, s->rc, rq, &len)) != NULL) {
		host.p = ha;
		host.len = len;
	}
	if (path.p != pathbuf && path.p != s->norm_path && path_needs_slash(h)) {
		/* the codec's target is zero-copy: the "/" goes in front here
		 * (method and target were validated by the codec) */
		rc = mesh_buf_append(b, h->method.p, h->method.len);
		if (!rc)
			rc = mesh_buf_append(b, " /", 2);
		if (!rc)
			rc = mesh_buf_append(b, path.p, path.len);
		if (!rc)
			rc = mesh_buf_append(b, " HTTP/1.1\r\n", 11);
	} else {
		rc = h1_out_request_line(b, h->method, path);
	}
	if (!rc && host.len)
		rc = h1_out_header(b, H_HOST, host);
	for (i = 0; !rc && i < h->n_headers; i++) {
		const struct h1_header *f = &h->headers[i];
		unsigned id = f->flags & H1_HF_ID_MASK;

		if ((f->flags & H1_HF_HOP) || id == H1_H_HOST || id == H1_H_CONTENT_LENGTH)
			continue;
		if (id == H1_H_EXPECT && !s->proxy_100)
			continue; /* answered here (d_stream_start) */
		/* Envoy strips h2c upgrades: this hop speaks HTTP/1.1 to the upstream */
		if (h1_str_ieq(f->name, "http2-settings") ||
		    (h1_str_ieq(f->name, "upgrade") && !(s->req_flags & H1_F_UPGRADE)))
			continue;
		if (eh->n_req && edit_drops(f->name, eh->req, eh->n_req))
			continue;
		/* jwt_authn: the token header (forward false) and the headers it sets */
		if (s->jwt && jwt_result_drops(s->jwt, f->name.p, f->name.len))
			continue;
		if (rt->include_attempt_count_req && h1_str_ieq(f->name, "x-envoy-attempt-count"))
			continue;
		if (s->e->istio && istio_is_meta_header(f->name.p, f->name.len)) {
			/* issue 14: the source's metadata is read inbound and never
			 * forwarded; outbound, ours replaces any the app sent */
			if (s->d->inbound && f->name.len == 21)
				s->peer = istio_stats_peer(s->e->istio, f->value.p, f->value.len);
			continue;
		}
		if (s->e->istio && h1_str_ieq(f->name, "content-type") && f->value.len >= 16 &&
		    !strncasecmp(f->value.p, "application/grpc", 16))
			s->is_grpc = 1;
		if (!s->xfcc_fwd && h1_str_ieq(f->name, "x-forwarded-client-cert"))
			continue; /* a client's claim of who it is: dropped (d_stream_start) */
		if (s->edge && edge_drops(f->name, external))
			continue; /* issue 13: set anew by s_put_edge */
		/* issue 14: the trace context is this hop's (trace_put_headers below) */
		if (s->tr.cfg && trace_is_ctx_header(f->name))
			continue;
		/* inbound the caller's operation is consumed (traceRequest removes
		 * it); outbound a propagated decorator replaces it */
		if (s->tr.cfg && (s->d->inbound || (rt->decorator && rt->decorator_propagate)) &&
		    h1_str_ieq(f->name, "x-envoy-decorator-operation"))
			continue;
		if (h1_str_ieq(f->name, "x-request-id"))
			have_rid = 1;
		else if (h1_str_ieq(f->name, "x-forwarded-proto"))
			have_xfp = 1;
		rc = h1_out_header(b, f->name, f->value);
	}
	if (!rc && !have_rid) {
		char id[36];

		uuid4(s->e, id);
		(void)mesh_buf_append(b, "x-request-id: ", 14);
		(void)mesh_buf_append(b, id, sizeof(id));
		rc = mesh_buf_append(b, "\r\n", 2) < 0;
		if (!rc)
			s->rid = meta_put(s, id, sizeof(id));
	}
	if (!rc && s->tr.cfg)
		rc = trace_put_headers(&s->tr, b) < 0;
	if (!rc && s->tr.cfg && !s->d->inbound && rt->decorator && rt->decorator_propagate) {
		rc = mesh_buf_puts(b, "x-envoy-decorator-operation: ") < 0;
		if (!rc)
			rc = mesh_buf_puts(b, rt->decorator) < 0;
		if (!rc)
			rc = mesh_buf_append(b, "\r\n", 2) < 0;
	}
	if (!rc && s->edge)
		rc = s_put_edge(s, b, external);
	else if (!rc && !have_xfp)
		rc = mesh_buf_puts(b, "x-forwarded-proto: http\r\n");
	if (!rc && s->xfcc)
		rc = s_put_xfcc(s, b);
	if (!rc && s->e->istio && !s->d->inbound)
		rc = s_put_peer_meta(s->e, b);
	if (!rc && eh->n_req)
		rc = edit_add(b, h->headers, h->n_headers, eh->req, eh->n_req);
	if (!rc && s->jwt && s->jwt->add)
		rc = mesh_buf_append(b, s->jwt->add->data, s->jwt->add->len);
	if (!rc && (s->req_flags & H1_F_UPGRADE)) {
		struct h1_str up = h1_head_get(h, "upgrade");
		static const struct h1_str upn = { "upgrade", 7 };

		rc = mesh_buf_puts(b, "connection: upgrade\r\n");
		if (!rc)
			rc = h1_out_header(b, upn, up);
	}
	if (!rc && (h->framing == H1_BODY_LENGTH || h->framing == H1_BODY_CHUNKED))
		rc = h1_out_framing(b, h->framing, h->content_length);
	/* the buffer's own error first: over its cap is a head too large (431) */
	if (b->err)
		return b->err;
	return rc < 0 ? rc : rc ? -ENOMEM : 0;
}

/* --- mirroring: a copy of the request to another cluster, fire and
 * forget (Envoy's request_mirror_policies): its own connection with
 * "connection: close", the response read and dropped, bounded in number
 * and time so it never holds the main request or grows memory. */

struct px_mirror {
	struct engine *e;
	struct px_host *h;
	struct ev_io io;
	struct ev_timer t;
	struct mesh_buf out;
	size_t out_off;
	int connected;
};

static void mirror_free(struct px_mirror *m)
{
	ev_io_stop(m->e->loop, &m->io);
	ev_timer_cancel(m->e->loop, &m->t);
	close(m->io.fd);
	m->e->mirrors_active--;
	mesh_buf_cleanup(&m->out);
	px_host_unref(m->h);
	free(m);
}

static void mirror_timer(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	mirror_free(t->data);
}

static void mirror_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct px_mirror *m = io->data;
	char sink[4096];

	(void)loop;
	if (!m->connected) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			mirror_free(m);
			return;
		}
		m->connected = 1;
	}
	if ((events & EV_WRITE) && m->out_off < m->out.len) {
		ssize_t n = send(io->fd, m->out.data + m->out_off, m->out.len - m->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno != EAGAIN) {
			mirror_free(m);
			return;
		}
		if (n > 0)
			m->out_off += (size_t)n;
	}
	if (events & (EV_READ | EV_ERROR)) {
		ssize_t n = read(io->fd, sink, sizeof(sink));

		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			mirror_free(m); /* the response is read and dropped; the server closed */
			return;
		}
	}
	if (ev_io_set(m->e->loop, &m->io, m->out_off < m->out.len ? EV_READ | EV_WRITE : EV_READ) < 0)
		mirror_free(m);
}

/* Sends one shadow request for mirror policy i of s's route: the head
 * with Host "name-shadow[:port]" (Envoy's shadow suffix), then the body
 * as framed upstream (s->body, complete when this runs).  The host comes
 * from the mirror cluster's own load balancer (health, outlier ejection),
 * as Envoy's shadow writer routes through the cluster like any request.
 * Bounded: past PX_MIRRORS_MAX in flight the copy is dropped and
 * counted; every failure is silent for the main request. */
static void s_mirror_one(struct px_stream *s, uint32_t i)
{
	struct engine *e = s->e;
	const struct router_mirror *mp = &s->rt->mirrors[i];
	struct px_cluster *cl = px_config_cluster(s->cfg, mp->cluster);
	const char *p = s->head.data, *hl, *hv, *he, *colon;
	struct px_mirror *m;
	struct up_host *up;
	struct px_host *h;
	size_t n;
	int fd;

	if (!cl || cl->type == PX_CL_ORIGINAL_DST || !cl->hs)
		return;
	if (e->mirrors_active >= PX_MIRRORS_MAX) {
		e->mirrors_dropped++;
		return;
	}
	up = up_pick(cl->hs, &e->lbrng, NULL, NULL);
	h = up ? px_cluster_host_of(cl, up) : NULL;
	if (!h)
		return;
	if (px_engine_is_self(e, &h->addr.sa, h->alen)) {
		/* a mirror to one of our own sockets would loop (s_attempt's guard) */
		e->st.rq_loop_refused++;
		e->mirrors_dropped++;
		return;
	}
	px_cst(cl)->rq_total++;
	h->st.rq_total++;
	fd = socket(h->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&h->addr, h->alen) < 0 && errno != EINPROGRESS) {
		close(fd);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return;
	}
	m->e = e;
	m->h = px_host_ref(h);
	mesh_buf_init(&m->out, H1_DEFAULT_MAX_HEAD_BYTES + 8192 + PX_RETRY_BODY_MAX + PX_BODY_FRAMING_SLACK);
	hl = memchr(p, '\n', s->head.len);
	hv = hl ? hl + 1 : NULL;
	if (hv && s->head.len - (size_t)(hv - p) > 6 && !strncmp(hv, "host: ", 6)) {
		he = memchr(hv, '\r', s->head.len - (size_t)(hv - p));
		he = he ? he : p + s->head.len;
		colon = memchr(hv + 6, ':', (size_t)(he - hv - 6));
		n = (size_t)((colon ? colon : he) - p);
		(void)mesh_buf_append(&m->out, p, n);
		if (!mp->disable_shadow_host_suffix_append)
			(void)mesh_buf_append(&m->out, "-shadow", 7);
		(void)mesh_buf_append(&m->out, p + n, s->head.len - n);
	} else {
		(void)mesh_buf_append(&m->out, p, s->head.len);
	}
	(void)mesh_buf_puts(&m->out, "connection: close\r\n\r\n");
	if (s->body.len)
		(void)mesh_buf_append(&m->out, s->body.data, s->body.len);
	ev_io_init(&m->io, fd, mirror_cb, m);
	ev_timer_init(&m->t, mirror_timer, m);
	e->mirrors_active++;
	e->mirrors_sent++;
	if (ev_io_start(e->loop, &m->io, EV_WRITE | EV_READ) < 0) {
		mirror_free(m);
		return;
	}
	ev_timer_arm(e->loop, &m->t, PX_MIRROR_TIMEOUT_MS);
}

/* Sends the shadow copies chosen for s (s->mirror_mask, one bit per
 * request_mirror_policies entry, each drawn against its own
 * runtime_fraction when the request was routed).  Called once the request
 * is complete: at routing time without a body, at the body's end with one.
 * A body past the retry/shadow buffer (PX_RETRY_BODY_MAX) cancels the
 * copies, as Envoy's router clears its shadow policies when the request
 * overflows retry_shadow_buffer_limit; the main request goes on. */
static void s_mirror(struct px_stream *s)
{
	uint32_t mask = s->mirror_mask, i;

	s->mirror_mask = 0;
	if (!mask)
		return;
	if (s->body_overflow) {
		s->e->mirrors_dropped += (uint64_t)__builtin_popcount(mask);
		return;
	}
	for (i = 0; i < s->rt->n_mirrors && i < 32; i++)
		if (mask & (1u << i))
			s_mirror_one(s, i);
}

/* lb.h's view of the request for hash policies (header, cookie, query). */
struct lbh_ctx {
	const struct h1_head *h;
	struct h1_str path;
};

static size_t lbh_header(void *ctx, const char *name, size_t name_len, const char **v, size_t *vlen, size_t max)
{
	const struct lbh_ctx *c = ctx;
	size_t i, n = 0;

	for (i = 0; i < c->h->n_headers && n < max; i++)
		if (c->h->headers[i].name.len == name_len && !strncasecmp(c->h->headers[i].name.p, name, name_len)) {
			v[n] = c->h->headers[i].value.p;
			vlen[n++] = c->h->headers[i].value.len;
		}
	return n;
}

/* name=value in a "; "- or "&"-separated list */
static const char *kv_find(const char *p, size_t len, char sep, const char *name, size_t nlen, size_t *vlen)
{
	const char *end = p + len;

	while (p < end) {
		const char *e = memchr(p, sep, (size_t)(end - p)), *eq;

		e = e ? e : end;
		while (p < e && *p == ' ')
			p++;
		eq = memchr(p, '=', (size_t)(e - p));
		if (eq && (size_t)(eq - p) == nlen && !memcmp(p, name, nlen)) {
			*vlen = (size_t)(e - eq - 1);
			return eq + 1;
		}
		p = e + 1;
	}
	return NULL;
}

static const char *lbh_cookie(void *ctx, const char *name, size_t nlen, size_t *len)
{
	const struct lbh_ctx *c = ctx;
	size_t i;

	for (i = 0; i < c->h->n_headers; i++)
		if (name_is(c->h->headers[i].name, "cookie")) {
			const char *v = kv_find(c->h->headers[i].value.p, c->h->headers[i].value.len, ';', name, nlen, len);

			if (v)
				return v;
		}
	return NULL;
}

static const char *lbh_query(void *ctx, const char *name, size_t nlen, size_t *len)
{
	const struct lbh_ctx *c = ctx;
	const char *q = memchr(c->path.p, '?', c->path.len);

	if (!q)
		return NULL;
	q++;
	return kv_find(q, (size_t)(c->path.p + c->path.len - q), '&', name, nlen, len);
}

/* The address the client dialled: the original destination of a redirected
 * connection, an HTTP/2 stream's session socket (its own is a socketpair),
 * else the socket's.  Returns its length, 0 when unknown. */
static socklen_t d_local_addr(const struct px_dconn *d, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	if (d->captured && d->dst_len) {
		memcpy(ss, &d->dst, d->dst_len);
		return d->dst_len;
	}
	if (d->local_len) {
		memcpy(ss, &d->local, d->local_len);
		return d->local_len;
	}
	if (d->h2 || d->io.fd < 0 || getsockname(d->io.fd, (struct sockaddr *)ss, &len) < 0)
		return 0;
	return len;
}

/* The route's hash policies (router.h) through lb.h's combination rules. */
static void s_hash(struct px_stream *s, const struct h1_head *h)
{
	struct lb_hash_policy pol[8];
	struct lb_hash lh = { pol, 0 };
	struct lbh_ctx c = { h, { s->path.p, s->path.len } };
	struct lb_hash_request rq;
	struct lb_hash_cookie ck;
	char addrs[2 * (INET6_ADDRSTRLEN + 8)];
	bool want_addrs = false;
	uint32_t i;

	for (i = 0; i < s->rt->n_hash && lh.n < 8; i++) {
		const struct router_hash_policy *rp = &s->rt->hash[i];
		struct lb_hash_policy *p = &pol[lh.n++];

		memset(p, 0, sizeof(*p));
		p->kind = rp->kind == ROUTER_HASH_HEADER	? LB_HASH_HEADER
			  : rp->kind == ROUTER_HASH_COOKIE	? LB_HASH_COOKIE
			  : rp->kind == ROUTER_HASH_SOURCE_IP ? LB_HASH_SOURCE_IP
							      : LB_HASH_QUERY;
		p->terminal = rp->terminal;
		p->name = rp->name ? rp->name : "";
		p->name_len = strlen(p->name);
		p->path = rp->cookie_path ? rp->cookie_path : "";
		p->has_ttl = rp->cookie_ttl_ms >= 0;
		p->ttl_s = rp->cookie_ttl_ms > 0 ? (uint64_t)rp->cookie_ttl_ms / 1000 : 0;
		want_addrs |= p->kind == LB_HASH_COOKIE && p->has_ttl;
	}
	memset(&rq, 0, sizeof(rq));
	memset(&ck, 0, sizeof(ck));
	rq.ctx = &c;
	rq.header = lbh_header;
	rq.cookie = lbh_cookie;
	rq.query = lbh_query;
	rq.source_ip = s->d->peer_ip;
	rq.source_ip_len = strlen(s->d->peer_ip);
	if (want_addrs) {
		/* Envoy seeds a generated cookie with the downstream connection's
		 * remote then local address, ports included (router.cc
		 * addDownstreamSetCookie): each connection gets its own cookie.  The
		 * local address is the original destination of a redirected one. */
		struct sockaddr_storage lss;
		struct sockaddr_in local;
		socklen_t llen = sizeof(local);
		char lip[INET6_ADDRSTRLEN] = "";
		unsigned lport = 0;
		int n;

		if (d_local_addr(s->d, &lss) && lss.ss_family == AF_INET) {
			memcpy(&local, &lss, sizeof(local));
			llen = sizeof(local);
		} else {
			llen = 0;
		}
		if (llen) {
			inet_ntop(AF_INET, &local.sin_addr, lip, sizeof(lip));
			lport = ntohs(local.sin_port);
		}
		n = snprintf(addrs, sizeof(addrs), "%s:%u%s:%u", s->d->peer_ip, (unsigned)s->d->peer_port, lip, lport);
		rq.conn_addrs = addrs;
		rq.conn_addrs_len = n > 0 && (size_t)n < sizeof(addrs) ? (size_t)n : 0;
	}
	s->have_hash = lb_hash_compute(&lh, &rq, &s->hash, &ck);
	if (ck.set) {
		/* Envoy's makeSetCookieValue: a zero ttl makes a session cookie,
		 * no Max-Age (Max-Age=0 would tell the client to drop it) */
		char age[32] = "";

		if (ck.ttl_s)
			snprintf(age, sizeof(age), "; Max-Age=%llu", (unsigned long long)ck.ttl_s);
		snprintf(s->set_cookie, sizeof(s->set_cookie), "set-cookie: %.*s=\"%s\"%s%s%s; HttpOnly\r\n",
			 (int)ck.name_len, ck.name, ck.value, age, *ck.path ? "; Path=" : "", ck.path);
	}
}

/* Envoy's CORS filter (envoy.filters.http.cors) with the route's policy:
 * a preflight (OPTIONS + Origin + Access-Control-Request-Method) from an
 * allowed origin is answered here; an actual request from an allowed
 * origin gets the allow-origin/credentials/expose headers on its response.
 * Returns 1 when the request was answered. */
static int s_cors(struct px_stream *s, const struct h1_head *h)
{
	const struct router_cors *c = s->rt->cors;
	size_t ol = 0, ml = 0;
	const char *origin, *acrm;
	struct mesh_buf b;

	if (!c || !router_fraction(c->enabled_per_million, px_rand(s->e)))
		return 0;
	origin = req_header((void *)h, "origin", 6, &ol);
	if (!origin || !ol)
		return 0;
	acrm = req_header((void *)h, "access-control-request-method", 29, &ml);
	if (!router_cors_origin_allowed(c, origin, ol))
		return 0; /* not an allowed origin: forwarded untouched (preflights too, Envoy's default) */
	mesh_buf_init(&b, 4096);
	(void)mesh_buf_puts(&b, "access-control-allow-origin: ");
	(void)mesh_buf_append(&b, origin, ol);
	(void)mesh_buf_puts(&b, "\r\n");
	if (c->allow_credentials == 1)
		(void)mesh_buf_puts(&b, "access-control-allow-credentials: true\r\n");
	if (h->method.len == 7 && !memcmp(h->method.p, "OPTIONS", 7) && acrm && ml) {
		if (c->allow_methods)
			(void)mesh_buf_printf(&b, "access-control-allow-methods: %s\r\n", c->allow_methods);
		if (c->allow_headers)
			(void)mesh_buf_printf(&b, "access-control-allow-headers: %s\r\n", c->allow_headers);
		if (c->max_age)
			(void)mesh_buf_printf(&b, "access-control-max-age: %s\r\n", c->max_age);
		s_local_reply(s, 200, 0, NULL, b.err ? NULL : b.data);
		mesh_buf_cleanup(&b);
		return 1;
	}
	if (c->expose_headers)
		(void)mesh_buf_printf(&b, "access-control-expose-headers: %s\r\n", c->expose_headers);
	if (!b.err)
		s->cors_hdrs = mesh_buf_take(&b, NULL);
	mesh_buf_cleanup(&b);
	return 0;
}

/* router.h's header callback over the parsed head (the first field of a name). */
static const char *req_header(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
	const struct h1_head *h = ctx;
	size_t i;

	for (i = 0; i < h->n_headers; i++)
		if (h->headers[i].name.len == name_len && !strncasecmp(h->headers[i].name.p, name, name_len)) {
			*value_len = h->headers[i].value.len;
			return h->headers[i].value.p;
		}
	return NULL;
}

/* jwt.h's: the nth field of a name (0 the first), NULL past the last. */
static const char *req_header_nth(void *ctx, const char *name, size_t name_len, size_t nth, size_t *value_len)
{
	const struct h1_head *h = ctx;
	size_t i;

	for (i = 0; i < h->n_headers; i++)
		if (h->headers[i].name.len == name_len && !strncasecmp(h->headers[i].name.p, name, name_len) &&
		    nth-- == 0) {
			*value_len = h->headers[i].value.len;
			return h->headers[i].value.p;
		}
	return NULL;
}

/* Whether an inbound listener of its own (captureMode NONE) serves port. */
static int inbound_port_bound(const struct px_config *cfg, uint32_t port)
{
	size_t i;

	for (i = 0; i < cfg->n_bound; i++)
		if (cfg->bound[i].inbound && cfg->bound[i].port.port == port)
			return 1;
	return 0;
}

/* A route of our own when no route configuration applies (passthrough, inbound without one). */
/* A route takes a CONNECT only with an explicit upgrade of type "connect"
 * (Envoy's upgrade_configs; the connection manager enables none). */
static int route_allows_connect(const struct router_route *rt)
{
	uint32_t i;

	for (i = 0; i < rt->n_upgrades; i++)
		if (rt->upgrades[i].type && !strcmp(rt->upgrades[i].type, "connect"))
			return rt->upgrades[i].enabled == 1;
	return 0;
}

static void s_synth(struct px_stream *s, const char *cluster)
{
	memset(&s->synth, 0, sizeof(s->synth));
	memset(&s->synth_cl, 0, sizeof(s->synth_cl));
	s->synth_cl.name = cluster;
	s->synth.action = ROUTER_ACTION_ROUTE;
	s->synth.vhost = "";
	s->synth.name = "";
	s->synth.clusters = &s->synth_cl;
	s->synth.n_clusters = 1;
	s->rt = &s->synth;
}

/* An HTTP/1.0 request to an HTTP connection manager without
 * accept_http_10: Envoy's codec answers 426 Upgrade Required and closes
 * (Istio sends no accept_http_10 unless PILOT_HTTP10 / the HTTP10 proxy
 * metadata asks).  Returns 1 when answered. */
static int s_http10_refused(struct px_stream *s, const struct px_port *pp)
{
	if (s->req_minor != 0 || pp->accept_http_10)
		return 0;
	s->keep = 0;
	s_local_reply(s, 426, 0, "Upgrade Required", NULL);
	return 1;
}

const struct rbac_jwt *px_stream_jwt(const struct px_stream *s)
{
	return s ? jwt_result_rbac(s->jwt) : NULL;
}

/* The HCM's jwt_authn filter (dataplane/jwt.h): 1 when it answered the
 * request (401/403, or 500 out of memory), else 0 with the outcome kept
 * on the stream for the forwarded head and for RBAC (px_stream_jwt). */
static int s_jwt(struct px_stream *s, const struct h1_head *h, const struct jwt_config *jc, struct h1_str authority)
{
	struct jwt_req r = { h->method.p, h->method.len, s->path.p, s->path.len, authority.p, authority.len,
			     req_header, (void *)h, req_header_nth };
	struct jwt_result *res = NULL;

	if (jwt_filter_run(jc, &r, (int64_t)(wall_us() / 1000000), &res) < 0) {
		s_local_reply(s, 500, 0, NULL, NULL);
		return 1;
	}
	if (res->status) {
		s_local_reply(s, res->status, 0, res->message, res->www_auth);
		jwt_result_free(res);
		return 1;
	}
	s->jwt = res;
	return 0;
}

/* A copy of (p, len) with its NUL at *at in buf (sized by the caller). */
static const char *authz_put(char *buf, size_t *at, const char *p, size_t len)
{
	char *r = buf + *at;

	memcpy(r, p, len);
	r[len] = '\0';
	*at += len + 1;
	return r;
}

/*
 * The HCM's work before any filter, then the RBAC filters of the chain, as
 * Envoy runs them: the path normalized (normalize_path, merge_slashes,
 * escaped slashes; one that cannot be is 400), then the chain's RBAC
 * (HTTP: denied -> 403 "RBAC: access denied"; a TCP chain's network RBAC:
 * denied -> the connection closed, judged once per connection, Envoy's
 * ONE_TIME_ON_FIRST_BYTE).  Runs after the request head, before routing
 * (rq's path follows the normalized one).  Returns 1 when the stream was
 * answered or ended here, else 0.
 */
/* issue 14: the chain's istio.stats filter for this request (a request
 * no port takes: the catch-all chain's), and the request headers its
 * expressions read, copied now: the parser's header array is reused. */
static void s_stats_port(struct px_stream *s, const struct px_port *pp, const struct h1_head *h)
{
	const char *const *names;
	size_t n, i, need = 0;
	char *p;

	s->istio = pp ? pp->istio : s->d->inbound ? s->cfg->stats_in_any : s->cfg->stats_out_any;
	n = istio_stats_cfg_headers(s->istio, &names);
	if (!n || s->istio_hv)
		return;
	for (i = 0; i < n; i++)
		need += h1_head_get(h, names[i]).len;
	s->istio_hv = malloc(n * sizeof(*s->istio_hv) + need + 1);
	if (!s->istio_hv)
		return; /* the values read "unknown" */
	p = (char *)(s->istio_hv + n);
	for (i = 0; i < n; i++) {
		struct h1_str v = h1_head_get(h, names[i]);

		if (v.len)
			memcpy(p, v.p, v.len);
		s->istio_hv[i].p = p;
		s->istio_hv[i].len = v.len;
		p += v.len;
	}
	s->n_istio_hv = n;
}

static int s_authz(struct px_stream *s, const struct px_port *pp, const struct h1_head *h, struct router_req *rq)
{
	struct px_dconn *d = s->d;
	struct rbac_request r;
	struct rbac_decision dec;
	struct rbac_header *hv = NULL;
	struct sockaddr_storage ls;
	char dst_ip[INET6_ADDRSTRLEN] = "", remote[INET6_ADDRSTRLEN], det[RBAC_EVAL_TEXT_MAX + 48];
	char *buf = NULL;
	size_t at = 0, need, i;
	int rc, allowed;

	if (!pp)
		return 0;
	if (!pp->tcp && (h->form == H1_FORM_ORIGIN || h->form == H1_FORM_ABSOLUTE)) {
		char out[PATHNORM_MAX];
		size_t olen;

		rc = pathnorm_apply(&pp->http_opts.path, s->path.p, s->path.len, out, sizeof(out), &olen);
		if (rc < 0) {
			/* Envoy: "path_normalization_failed" */
			s_local_reply(s, 400, 0, NULL, NULL);
			return 1;
		}
		if (rc == 1) {
			free(s->norm_path);
			s->norm_path = strdup(out);
			if (!s->norm_path) {
				s_local_reply(s, 500, 0, NULL, NULL);
				return 1;
			}
			s->path.p = s->norm_path;
			s->path.len = olen;
			rq->path = s->path.p;
			rq->path_len = s->path.len;
		}
	}
	/* jwt_authn, the first HTTP filter (Istio puts it before RBAC): its
	 * verified token is what RBAC's istio_authn metadata matchers read */
	if (!pp->tcp && pp->jwt) {
		struct h1_str au = { rq->authority, rq->authority_len };
		if (s_jwt(s, h, pp->jwt, au))
			return 1;
	}
	if (!pp->authz || (pp->tcp && d->rbac_judged && d->rbac_port == pp->port))
		return 0;
	memset(&r, 0, sizeof(r));
	r.principal = d->peer_principal;
	if (d->tls)
		r.peer_names = px_tls_peer_names(d->tls, &r.n_peer_names);
	r.jwt = px_stream_jwt(s);
	r.source_ip = d->peer_ip;
	r.sni = d->sni;
	r.destination_port = pp->port;
	if (!d_local_addr(d, &ls))
		ls.ss_family = AF_UNSPEC;
	if (ls.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ls)->sin_addr, dst_ip, sizeof(dst_ip));
	else if (ls.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ls)->sin6_addr, dst_ip, sizeof(dst_ip));
	r.destination_ip = dst_ip[0] ? dst_ip : NULL;
	if (!pp->tcp) {
		authz_remote_ip(&pp->http_opts, s->xff.p, s->xff.len, d->peer_ip, remote, sizeof(remote));
		r.remote_ip = remote;
		need = s->method.len + s->path.len + s->authority.len + 3;
		for (i = 0; i < h->n_headers; i++)
			need += h->headers[i].name.len + h->headers[i].value.len + 2;
		buf = malloc(need);
		hv = calloc(h->n_headers ? h->n_headers : 1, sizeof(*hv));
		if (!buf || !hv) {
			free(buf);
			free(hv);
			s_local_reply(s, 500, 0, NULL, NULL);
			return 1;
		}
		r.method = authz_put(buf, &at, s->method.p, s->method.len);
		r.path = authz_put(buf, &at, s->path.p, s->path.len);
		r.host = s->authority.len ? authz_put(buf, &at, s->authority.p, s->authority.len) : NULL;
		for (i = 0; i < h->n_headers; i++) {
			hv[i].name = authz_put(buf, &at, h->headers[i].name.p, h->headers[i].name.len);
			hv[i].value = authz_put(buf, &at, h->headers[i].value.p, h->headers[i].value.len);
		}
		r.headers = hv;
		r.n_headers = h->n_headers;
	}
	allowed = authz_check(pp->authz, &r, &dec);
	free(buf);
	free(hv);
	if (allowed) {
		d->rbac_judged = pp->tcp;
		d->rbac_port = pp->port;
		return 0;
	}
	authz_details(&dec, det, sizeof(det));
	if (pp->tcp) {
		log_debug("meshproxy", "connection from %s closed: %s", d->peer_ip, det);
		s_abort(s, 0);
		return 1;
	}
	log_debug("meshproxy", "[%.*s] %s", (int)s->rid.len, s->rid.p, det);
	s_local_reply(s, 403, 0, AUTHZ_DENIED_BODY, NULL);
	return 1;
}

static void d_stream_start(struct px_dconn *d, const struct h1_head *h)
{
	struct engine *e = d->e;
	struct px_config *cfg = e->cur;
	struct px_stream *s;
	struct h1_str authority, host;
	uint32_t port = 80, vip = 0;
	const struct px_port *pp = NULL;
	const char *cluster = NULL;
	const struct router_fault *fault;
	struct router_req rq;
	int need_dst = 0, delay;
	uint32_t i;

	s = calloc(1, sizeof(*s) + meta_need(h));
	if (!s) {
		d->close_after = 1;
		d->state = D_CLOSING;
		return;
	}
	s->meta_cap = meta_need(h);
	s->d = d;
	s->e = e;
	s->cfg = px_config_ref(cfg);
	s->attempt = 1;
	/* a CONNECT's client may send tunnel bytes right after its head: whatever
	 * the answer, they are never read as the next request */
	s->keep = (h->flags & H1_F_KEEP_ALIVE) && !d->drain && !(h->flags & H1_F_CONNECT);
	s->req_flags = h->flags;
	/* "Upgrade: h2c" is dropped, not offered upstream (as Envoy does): an
	 * upstream 101 to it would then be a protocol error (u_process) */
	if ((h->flags & H1_F_UPGRADE) && h1_str_ieq(h1_head_get(h, "upgrade"), "h2c"))
		s->req_flags &= ~(unsigned)H1_F_UPGRADE;
	s->req_minor = h->version_minor;
	s->req_framing = h->framing;
	s->req_done = h->framing == H1_BODY_NONE;
	s->start_ms = ev_now(e->loop);
	s->start_us = wall_us();
	s->upstream_ms = -1;
	mesh_buf_init(&s->head, H1_DEFAULT_MAX_HEAD_BYTES + 4096);
	mesh_buf_init(&s->body, PX_RETRY_BODY_MAX + PX_BODY_FRAMING_SLACK);
	ev_timer_init(&s->t_global, s_global_timeout, s);
	ev_timer_init(&s->t_try, s_try_timeout, s);
	ev_timer_init(&s->t_tidle, s_try_idle_timeout, s);
	ev_timer_init(&s->t_wait, s_wait_cb, s);
	ev_timer_init(&s->t_idle, s_idle_timeout, s);
	ev_timer_init(&s->t_req, s_request_timeout, s);
	s->last_io = s->start_ms;
	e->st.rq_total++;
	e->st.rq_active++;
	d->s = s;
	d->state = s->req_done ? D_WAIT : D_BODY;
	authority = h->form == H1_FORM_ABSOLUTE || h->form == H1_FORM_AUTHORITY ? h->authority : h->host;
	s->method = meta_put(s, h->method.p, h->method.len);
	if (path_needs_slash(h)) {
		/* "/" then the query: adjacent in meta, so one string */
		struct px_str q;

		s->path = meta_put(s, "/", 1);
		q = meta_put(s, h->path.p, h->path.len);
		s->path.len += q.len;
	} else {
		s->path = meta_put(s, h->form == H1_FORM_ORIGIN || h->form == H1_FORM_ABSOLUTE ? h->path.p : h->target.p,
				   h->form == H1_FORM_ORIGIN || h->form == H1_FORM_ABSOLUTE ? h->path.len : h->target.len);
	}
	/* Envoy's %PROTOCOL%: an HTTP/2 stream (h2.c) is logged as such */
	s->proto = d->h2 ? meta_put(s, "HTTP/2", 6) : meta_put(s, h->version_minor ? "HTTP/1.1" : "HTTP/1.0", 8);
	s->authority = meta_put(s, authority.p, authority.len);
	{
		struct h1_str v = h1_head_get(h, "user-agent");

		s->ua = meta_put(s, v.p, v.len);
		s->xff = meta_put_joined(s, h, "x-forwarded-for");
		v = h1_head_get(h, "x-request-id");
		s->rid = meta_put(s, v.p, v.len);
	}
	split_authority(authority, &host, &port);
	if (d->captured) {
		uint32_t ovip;
		uint16_t oport;

		if (d_odst(d, &ovip, &oport) == 0) {
			port = oport;
			vip = ovip;
		}
		memcpy(&s->odst, &d->dst, d->dst_len);
		s->odst_len = d->dst_len;
		s->have_odst = 1;
	}
	rq.method = h->method.p;
	rq.method_len = h->method.len;
	rq.authority = authority.p;
	rq.authority_len = authority.len;
	rq.path = s->path.p;
	rq.path_len = s->path.len;
	rq.scheme = "http";
	rq.internal = 0; /* the x-envoy-internal header says (router.c), unless an edge HCM decides (below) */
	rq.header = req_header;
	rq.header_ctx = (void *)h;
	rq.random = px_rand(e);
	if (!d->l->embedded) {
		/* a listener bound for its own Listener resource (captureMode
		 * NONE, gateways): its own chain serves every connection, in
		 * either direction, never an original-destination lookup */
		const struct px_bound *b = d->l->conf;

		if (!b) {
			/* its listener left the configuration: draining */
			s->keep = 0;
			s_local_reply(s, 503, 0, "listener removed", NULL);
			return;
		}
		/* the chain selected at accept, in the current configuration (its
		 * RDS routes are the current ones, as Envoy's HCM reads RDS per
		 * request); a chain the listener no longer has: its first one */
		pp = sel_chain(&b->sel, d->chain);
		if (!pp)
			pp = &b->port;
		/* (STRICT: plaintext was refused at its first byte, d_tls_step) */
		s->xfcc = b->inbound && pp->xfcc && d->peer_principal;
		/* issue 13: a gateway's HCM (use_remote_address): routing sees the
		 * scheme the connection has (require_tls), the upstream Envoy's
		 * edge headers (s_build_head) */
		s->edge = pp->http_opts.use_remote;
		if (s->edge) {
			rq.scheme = d->via_tls ? "https" : "http";
			rq.internal = ip_internal(d->peer_ip) ? 1 : -1;
		}
		s_alog_port(s, pp, h, NULL);
		s_stats_port(s, pp, h);
		if (s_authz(s, pp, h, &rq))
			return;
		if (!pp->tcp) {
			s->rt = pp->rcfg ? router_config_match(pp->rcfg, &rq) : NULL;
			if (!s->rt) {
				e->st.no_route++;
				s_local_reply(s, 404, PX_RF_NR, NULL, NULL);
				return;
			}
		} else if (pp->tcp_cluster) {
			/* a TCP proxy's cluster (PassthroughCluster included): the
			 * HTTP it carries goes there (no raw TCP proxying yet) */
			s_synth(s, pp->tcp_cluster);
		} else {
			e->st.no_route++;
			s_local_reply(s, 502, PX_RF_NR, NULL, NULL);
			return;
		}
	} else if (!d->inbound) {
		size_t i;

		for (i = 0; i < cfg->n_bh_out; i++)
			if (cfg->bh_out[i] == port) {
				s_blackhole(s); /* virtualOutbound-blackhole */
				return;
			}
		pp = find_port(cfg->out_ports, cfg->n_out_ports, vip, port);
		if (pp && pp->sel && sel_chain(pp->sel, d->chain))
			pp = sel_chain(pp->sel, d->chain); /* the chain selected at accept */
		s_alog_port(s, pp, h, cfg->out_catchall_alog); /* no port: the catch-all chain's */
		if (pp && !pp->tcp && s_http10_refused(s, pp))
			return;
		s_stats_port(s, pp, h);
		if (s_authz(s, pp, h, &rq))
			return;
		if (pp && !pp->tcp) {
			s->rt = pp->rcfg ? router_config_match(pp->rcfg, &rq) : NULL;
			if (!s->rt) {
				e->st.no_route++;
				s_local_reply(s, 404, PX_RF_NR, NULL, NULL);
				return;
			}
		} else if (cfg->allow_any || (pp && pp->tcp_cluster && !strcmp(pp->tcp_cluster, "PassthroughCluster"))) {
			s_synth(s, "PassthroughCluster");
		} else {
			/* REGISTRY_ONLY: BlackHoleCluster */
			e->st.no_route++;
			s_local_reply(s, 502, PX_RF_NR, NULL, NULL);
			return;
		}
	} else {
		char name[48];

		pp = find_port(cfg->in_ports, cfg->n_in_ports, 0, port);
		if (pp && pp->tls && !pp->plain_ok && !d->via_tls) {
			/* issue 12, STRICT: no filter chain takes plaintext on this port;
			 * Envoy closes such a connection (NR) without an answer */
			e->tls_plain_refused++;
			log_debug("meshproxy", "inbound port %u takes mTLS only: plaintext from %s refused", port,
				  d->peer_ip);
			s_abort(s, PX_RF_NR);
			return;
		}
		s->xfcc = pp && pp->xfcc && d->peer_principal;
		if (sel_chain(&cfg->in_sel, d->chain))
			pp = sel_chain(&cfg->in_sel, d->chain); /* the chain selected at accept */
		s_alog_port(s, pp, h, NULL);
		if (pp && pp->tcp && pp->tcp_cluster && !strcmp(pp->tcp_cluster, "BlackHoleCluster")) {
			s_blackhole(s); /* virtualInbound-blackhole */
			return;
		}
		if (pp && pp->rcfg && s_http10_refused(s, pp))
			return;
		s_stats_port(s, pp, h);
		if (s_authz(s, pp, h, &rq))
			return;
		if (pp && pp->rcfg) {
			s->rt = router_config_match(pp->rcfg, &rq);
			if (!s->rt) {
				e->st.no_route++;
				s_local_reply(s, 404, PX_RF_NR, NULL, NULL);
				return;
			}
		} else {
			const struct px_cluster *icl;

			snprintf(name, sizeof(name), "inbound|%u||", port);
			icl = px_config_cluster(cfg, name);
			if (!pp && !d->captured && (!icl || inbound_port_bound(cfg, port))) {
				/* sent straight to the inbound port for a port the workload
				 * does not declare (no inbound|PORT|| cluster, no
				 * virtualInbound chain): Istio never reaches loopback-only
				 * ports this way (its InboundPassthroughCluster goes to the
				 * pod IP), so neither does meshproxy: BlackHoleCluster.  Nor
				 * a port with a listener of its own (captureMode NONE): its
				 * RBAC and TLS are that listener's, never skipped this way */
				s_blackhole(s);
				return;
			}
			s_synth(s, icl ? icl->name : "InboundPassthroughCluster");
		}
		if (!d->captured) {
			/* not captured: the application port comes from the authority */
			struct sockaddr_in *sin = (struct sockaddr_in *)&s->odst;

			memset(sin, 0, sizeof(*sin));
			sin->sin_family = AF_INET;
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sin->sin_port = htons((uint16_t)port);
			s->odst_len = sizeof(*sin);
			s->have_odst = 1;
		}
	}
	if ((h->flags & H1_F_CONNECT) && !route_allows_connect(s->rt)) {
		/* no CONNECT upgrade configured (Istio configures none): Envoy's
		 * local reply for a CONNECT no route takes, so no raw tunnel
		 * bypasses routing and header policy */
		e->st.no_route++;
		s_local_reply(s, 404, PX_RF_NR, NULL, NULL);
		return;
	}
	s->hdrs = &s->rt->hdrs;
	/* Envoy's mutateXfccRequestHeader: a connection manager passes the
	 * client's x-forwarded-client-cert on only from a peer that presented
	 * a certificate and when forward_client_cert_details says so; else a
	 * plaintext client could name any identity to the application.  With
	 * no connection manager (TCP proxy, passthrough) bytes pass as sent.
	 * APPEND_FORWARD's own entry follows as a line of its own (s_put_xfcc),
	 * the same list as Envoy's appended value. */
	s->xfcc_fwd = !pp || pp->tcp || pp->xfcc_keep == 2 || (pp->xfcc_keep == 1 && d->peer_principal);
	if (pp && !pp->tcp) {
		d_port_timers(d, pp);
		s->proxy_100 = pp->proxy_100;
		s->idle_ms = px_port_stream_idle_ms(e, pp);
		s->req_ms = px_port_request_ms(e, pp);
		/* issue 14: continue or start the trace, decide sampling */
		if (pp->trace) {
			struct h1_str op = h1_head_get(h, "x-envoy-decorator-operation");

			trace_start(&s->tr, pp->trace, h, px_rand(e), px_rand(e), s->start_us);
			/* Envoy's ActiveStream::traceRequest: the route's decorator
			 * names the span; inbound, a non-empty
			 * x-envoy-decorator-operation from the caller overrides it */
			if (d->inbound && op.len)
				s->tr_op = meta_put(s, op.p, op.len);
			else if (s->rt->decorator)
				s->tr_op = meta_put(s, s->rt->decorator, strlen(s->rt->decorator));
		}
	} else {
		/* no HCM: Envoy would run a TCP proxy here, Expect and all passing through */
		s->proxy_100 = 1;
		s->idle_ms = px_port_stream_idle_ms(e, NULL);
		s->req_ms = px_port_request_ms(e, NULL);
	}
	/* the route's timeout, or the gRPC client's deadline where the route
	 * honours it (max_grpc_timeout / grpc_timeout_header_max: Istio sends 0s,
	 * no cap) -- Envoy's FilterUtility::finalTimeout */
	s->timeout_ms = s->rt->timeout_ms;
	if (s->rt->grpc_timeout_header_max_ms >= 0) {
		struct h1_str gt = h1_head_get(h, "grpc-timeout");
		int64_t g = gt.len ? px_grpc_timeout_ms(gt.p, gt.len) : -1;

		if (g >= 0) {
			if (s->rt->grpc_timeout_header_max_ms > 0 && g > s->rt->grpc_timeout_header_max_ms)
				g = s->rt->grpc_timeout_header_max_ms;
			if (g > s->rt->grpc_timeout_header_offset_ms)
				g -= s->rt->grpc_timeout_header_offset_ms;
			s->timeout_ms = g; /* 0: none, as Envoy takes a zero deadline */
		}
	}
	/* RouteAction.idle_timeout overrides the HCM's, 0 turning it off */
	if (s->rt != &s->synth && s->rt->idle_timeout_ms >= 0)
		s->idle_ms = (uint64_t)s->rt->idle_timeout_ms;
	if (s->idle_ms)
		ev_timer_arm(e->loop, &s->t_idle, s->idle_ms);
	if (s->req_ms && !s->req_done)
		ev_timer_arm(e->loop, &s->t_req, s->req_ms);
	if ((s->req_flags & H1_F_EXPECT_CONTINUE) && !s->proxy_100) {
		/* proxy_100_continue false (Envoy's default): the connection manager
		 * answers "100 Continue" itself before any filter and removes Expect
		 * (s_build_head), so the upstream never sends one to relay */
		(void)mesh_buf_puts(&d->out, "HTTP/1.1 100 Continue\r\n\r\n");
		s->req_flags &= ~(unsigned)H1_F_EXPECT_CONTINUE;
	}
	if (s->rt != &s->synth && s_cors(s, h))
		return;
	if (s->rt->action == ROUTER_ACTION_DIRECT) {
		char body[ROUTER_DIRECT_BODY_MAX + 1];
		size_t bl = s->rt->direct_body_len < ROUTER_DIRECT_BODY_MAX ? s->rt->direct_body_len : ROUTER_DIRECT_BODY_MAX;

		if (bl)
			memcpy(body, s->rt->direct_body, bl);
		body[bl] = 0;
		s_local_reply(s, s->rt->direct_status, 0, bl ? body : NULL, NULL);
		return;
	}
	if (s->rt->action == ROUTER_ACTION_REDIRECT) {
		char loc[4096];
		struct mesh_buf lb;
		size_t ll;

		if (router_redirect_location(s->rt, &rq, loc, sizeof(loc), &ll) < 0) {
			s_local_reply(s, 500, 0, NULL, NULL);
			return;
		}
		mesh_buf_init(&lb, sizeof(loc) + 32);
		(void)mesh_buf_puts(&lb, "location: ");
		(void)mesh_buf_append(&lb, loc, ll);
		(void)mesh_buf_puts(&lb, "\r\n");
		s_local_reply(s, s->rt->redirect->code, 0, NULL, lb.data);
		mesh_buf_cleanup(&lb);
		return;
	}
	/* Envoy's fault filter: the delay first, the abort after it */
	fault = s->rt->fault;
	delay = fault && fault->has_delay && fault->delay_ms > 0 && router_fraction(fault->delay_per_million, px_rand(e));
	if (!delay && s_fault_abort(s))
		return;
	if (s->rt != &s->synth) {
		if (s->rt->n_hash)
			s_hash(s, h);
		s->rc = router_pick(s->rt, rq.random);
		if (s->rc) {
			cluster = s->rc->name;
			s->hdrs = &s->rc->hdrs;
		} else if (s->rt->cluster_header) {
			size_t vl = 0;
			const char *v = req_header((void *)h, s->rt->cluster_header, strlen(s->rt->cluster_header), &vl);

			if (v && vl < 256) {
				static char chbuf[256]; /* one loop thread: used before the next request */

				memcpy(chbuf, v, vl);
				chbuf[vl] = 0;
				cluster = chbuf;
			}
		}
	} else {
		s->rc = &s->synth_cl;
		cluster = s->synth_cl.name;
	}
	s->cl = cluster ? px_config_cluster(cfg, cluster) : NULL;
	if (!s->cl && s->rt == &s->synth && !strcmp(cluster, "InboundPassthroughCluster"))
		s->cl = px_config_cluster(cfg, "PassthroughCluster");
	if (!s->cl) {
		e->st.no_cluster++;
		s_local_reply(s, s->rt->cluster_not_found_code ? s->rt->cluster_not_found_code : 503, 0,
			      "cluster not found", NULL); /* Envoy's NC */
		return;
	}
	px_cst(s->cl)->rq_total++;
	px_cst(s->cl)->rq_active++;
	if (px_cst(s->cl)->rq_active > s->cl->max_requests) {
		px_cst(s->cl)->rq_pending_overflow++;
		s_local_reply(s, 503, PX_RF_UO, "upstream connect error or disconnect/reset before headers. reset reason: overflow",
			      "x-envoy-overloaded: true\r\n");
		return;
	}
	{
		int rc = s_build_head(s, h, authority, &rq);

		/* over the head's cap after the route's edits: too large (431);
		 * anything else (a header edit the writer refuses, memory) is
		 * the proxy's own failure */
		if (rc < 0) {
			s_local_reply(s, rc == -MESH_ETOOBIG ? 431 : 500, 0, NULL, NULL);
			return;
		}
	}
	/* each mirror policy draws its own fraction (Istio emits one per
	 * VirtualService mirror); the copies leave once the request is whole */
	for (i = 0; i < s->rt->n_mirrors && i < 32; i++)
		if (router_fraction(s->rt->mirrors[i].per_million, px_rand(e)))
			s->mirror_mask |= 1u << i;
	if (s->mirror_mask && s->req_framing == H1_BODY_NONE)
		s_mirror(s);
	if (s->cl->type == PX_CL_ORIGINAL_DST && !s->have_odst) {
		int rc = s_set_odst(s, host, port);

		if (rc < 0) {
			s_local_reply(s, 400, 0, NULL, NULL);
			return;
		}
		need_dst = rc > 0;
	}
	if (delay) {
		s->flags |= PX_RF_DI;
		s->wait_kind = need_dst ? W_NONE : W_FAULT;
		if (!need_dst) {
			s->fault_wait = 1;
			ev_timer_arm(e->loop, &s->t_wait, (uint64_t)fault->delay_ms);
			return;
		}
		if (s_fault_abort(s))
			return;
	}
	s_arm_timeouts(s);
	if (need_dst) {
		if (s_start_resolve(s) < 0)
			s_local_reply(s, 503, PX_RF_UF, "dns resolution failed", NULL);
		return;
	}
	s_attempt(s);
}

/* --- downstream connections */

static const struct px_sel *d_sel(const struct px_dconn *d);

/* The connection timers of the port that serves d (its HCM's), the
 * engine's where pp is NULL or its HCM sets none. */
static void d_port_timers(struct px_dconn *d, const struct px_port *pp)
{
	d->idle_ms = pp && pp->conn_idle_ms != PX_IDLE_UNSET ? pp->conn_idle_ms : d->e->o.idle_ms;
	d->headers_ms = px_port_headers_ms(d->e, pp);
	d->head_idle_ms = px_port_stream_idle_ms(d->e, pp);
}

/*
 * A local answer on a connection that has no stream: a head the codec
 * refused (d_local_error), or one not read whole in time (d_idle_cb).
 * body (a short text, "" for none) is sent with Content-Length and
 * Connection: close; the connection closes once it is flushed.  The
 * access logs get the entry with flags and details, as Envoy logs a
 * local reply with what it has of the request (no method or path: "-").
 */
static void d_local_reply(struct px_dconn *d, int status, const char *body, unsigned flags, const char *details)
{
	char buf[256];
	size_t blen = strlen(body);
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\n%sconnection: close\r\n\r\n%s", status,
			 h1_reason(status), blen, blen ? "content-type: text/plain\r\n" : "", body);

	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	mesh_buf_append(&d->out, buf, (size_t)n);
	d->close_after = 1;
	d->state = D_CLOSING;
	d->e->st.rq_4xx += status < 500;
	d->e->st.rq_5xx += status >= 500;
	{
		/* Envoy logs a request its codec refused, flag DPE (downstream
		 * protocol error), with what it has: no method or path ("-");
		 * issue 14: also in the access_log of the chain the connection
		 * was given, when it is known (d_sel) */
		const struct px_sel *sel = d_sel(d);
		const struct px_port *pp = sel ? sel_chain(sel, d->chain) : NULL;
		const struct px_alog_cfg *al;
		struct px_alog_entry le;
		char down[INET6_ADDRSTRLEN + 16];

		if (!pp && d->sel_kind == SEL_BOUND && d->l->conf)
			pp = &d->l->conf->port;
		al = pp && !pp->tcp ? pp->alog : NULL;
		memset(&le, 0, sizeof(le));
		le.start_us = wall_us();
		le.protocol.p = "HTTP/1.1";
		le.protocol.len = 8;
		le.status = status;
		le.flags = flags;
		le.rx = d->in.len - d->in.off;
		le.tx = (uint64_t)n;
		le.upstream_ms = -1;
		if (d->e->alog)
			px_alog_write(d->e->alog, &le);
		if (al) {
			if (d->peer_ip[0]) {
				snprintf(down, sizeof(down), strchr(d->peer_ip, ':') ? "[%s]:%u" : "%s:%u", d->peer_ip,
					 (unsigned)d->peer_port);
				le.downstream_remote = down;
			}
			le.details = details;
			le.sni = d->sni;
			le.mtls = d->peer_principal != NULL;
			le.peer_principal = d->peer_principal;
			px_alog_cfg_log(al, &le); /* n_hdrs 0: its header operators print "-" */
		}
	}
}

/* A head the codec refused: Envoy's flag DPE (downstream protocol error),
 * none for a 417. */
static void d_local_error(struct px_dconn *d, int status)
{
	d->e->st.codec_errors++;
	d_local_reply(d, status, "", status == 417 ? 0 : PX_RF_DPE, "codec_error");
}

/* Moves request body bytes from the input buffer to the upstream, while it has room. */
static void d_body(struct px_dconn *d)
{
	struct px_stream *s = d->s;

	while (s && d->state == D_BODY) {
		struct px_uconn *u = s->u;
		struct h1_str data;
		size_t used = 0;
		int rc;

		if (!u || ob_pending(&u->out, u->out_off) >= PX_OUT_HIGH)
			return; /* nowhere to put it yet: it waits in our buffer (back-pressure) */
		rc = h1_parse_body(&d->p, d->in.p + d->in.off, d->in.len - d->in.off, &used, &data);
		d->in.off += used;
		if (rc == H1_AGAIN)
			break;
		if (rc == H1_DATA) {
			size_t before = u->out.len;

			if (s->req_framing == H1_BODY_CHUNKED)
				rc = h1_out_chunk(&u->out, data.p, data.len);
			else
				(void)mesh_buf_append(&u->out, data.p, data.len);
			s->rx += data.len;
			/* the cap counts body bytes, whatever the framing (a
			 * chunked body is kept framed, within the slack) */
			if (!s->body_overflow &&
			    (s->rx > PX_RETRY_BODY_MAX ||
			     mesh_buf_append(&s->body, u->out.data + before, u->out.len - before) < 0))
				s->body_overflow = 1;
			continue;
		}
		if (rc == H1_TRAILERS)
			continue;
		if (rc == H1_DONE) {
			if (s->req_framing == H1_BODY_CHUNKED) {
				mesh_buf_puts(&u->out, H1_CHUNK_LAST);
				if (!s->body_overflow && mesh_buf_puts(&s->body, H1_CHUNK_LAST) < 0)
					s->body_overflow = 1;
			}
			s->req_done = 1;
			d->state = D_WAIT;
			s_arm_timeouts(s);
			s_mirror(s);
			break;
		}
		/* a malformed body: the request cannot go on */
		d->e->st.codec_errors++;
		if (!s->resp_started) {
			s_release_upstream(s, 0);
			s_local_reply(s, 400, PX_RF_DPE, NULL, NULL);
		} else {
			s_abort(s, PX_RF_DPE);
		}
		return;
	}
	if (s && s->u) {
		int wrc = u_flush(s->u);

		if (wrc < 0) {
			if (!s->resp_started)
				s_fail_write(s, wrc);
			else
				s_abort(s, PX_RF_UC);
			return;
		}
		u_update(s->u);
	}
}

static void d_process(struct px_dconn *d)
{
	for (;;) {
		if (d->state == D_HEAD) {
			struct h1_head h;
			int rc;

			if (d->in.off == d->in.len)
				break;
			if (!d->nreq && !d->h2) {
				/* h2c with prior knowledge: a connection that opens with
				 * the HTTP/2 preface goes to h2.c (RFC 9113 §3.3); over
				 * TLS without ALPN h2 too, as Envoy's AUTO codec does
				 * (ALPN "h2" went to h2.c at the handshake: d_tls_step) */
				int pf = px_h2_preface(d->in.p + d->in.off, d->in.len - d->in.off);

				if (pf == 0)
					break; /* a prefix of it so far: read more */
				if (pf == 1) {
					(void)px_dconn_use_h2(d);
					return;
				}
			}
			rc = h1_parse_head(&d->p, d->in.p + d->in.off, d->in.len - d->in.off, &h);
			if (rc == H1_AGAIN) {
				if (d->in.len - d->in.off >= PX_IN_MAX - 1) {
					d_local_error(d, 431);
				} else if (!d->hdr_timing && (d->headers_ms || d->head_idle_ms)) {
					/* from a head's first byte to its end: Envoy's
					 * request_headers_timeout, and its stream idle timeout
					 * (the stream exists from the first byte; bytes of a
					 * head not read whole do not reach it, so they do not
					 * move it), whichever ends first */
					int hdr = d->headers_ms && (!d->head_idle_ms || d->headers_ms <= d->head_idle_ms);

					d->hdr_timing = hdr ? D_HDR_TIMEOUT : D_HDR_IDLE;
					ev_timer_arm(d->e->loop, &d->idle, hdr ? d->headers_ms : d->head_idle_ms);
				}
				break;
			}
			if (rc < 0) {
				d_local_error(d, h1_err_status(rc));
				break;
			}
			if (h.flags & H1_F_EXPECT_OTHER) {
				d_local_error(d, 417);
				break;
			}
			ev_timer_cancel(d->e->loop, &d->idle);
			d->hdr_timing = 0;
			/* the head's spans stay valid (nothing moves the buffer before the
			 * next read); d_stream_start copies what it needs out of them */
			d->in.off += h.head_len;
			d->nreq++;
			d_stream_start(d, &h);
			if (d->s && d->state == D_BODY)
				continue;
			break;
		} else if (d->state == D_BODY) {
			d_body(d);
			break;
		} else if (d->state == D_TUNNEL) {
			struct px_stream *s = d->s;

			if (s && s->u && d->in.off < d->in.len &&
			    ob_pending(&s->u->out, s->u->out_off) < PX_OUT_HIGH) {
				mesh_buf_append(&s->u->out, d->in.p + d->in.off, d->in.len - d->in.off);
				s->rx += d->in.len - d->in.off;
				d->in.off = d->in.len;
				if (u_flush(s->u) < 0) {
					s_abort(s, PX_RF_UC);
					return;
				}
				u_update(s->u);
			}
			break;
		} else {
			break;
		}
	}
	d_flush(d);
	d_update(d);
}

static void d_proc_cb(struct ev_loop *loop, struct ev_defer *df)
{
	(void)loop;
	d_process(df->data);
}

static void d_update(struct px_dconn *d)
{
	unsigned m = 0;

	if (d->tls_decide || d->hs) {
		m = d->hs ? px_tls_want(d->tls) : EV_READ;
		if (ev_io_set(d->e->loop, &d->io, m) < 0)
			log_warn("meshproxy", "downstream: epoll_ctl failed");
		return;
	}
	if (ob_pending(&d->out, d->out_off))
		m |= EV_WRITE;
	if (d->state != D_CLOSING && !d->peer_eof && (d->in.len < d->in.cap || d->in.off || d->in.cap < PX_IN_MAX))
		m |= EV_READ;
	if (d->state == D_CLOSING && !ob_pending(&d->out, d->out_off)) {
		d_close(d);
		return;
	}
	if (!d->s && d->state == D_HEAD && d->idle_ms && !ev_timer_armed(&d->idle))
		ev_timer_arm(d->e->loop, &d->idle, d->idle_ms);
	if (!d->s && d->state == D_HEAD && d->in.off == d->in.len && d->out.len == 0 && (d->in.p || d->out.data)) {
		/* an idle keep-alive connection between requests keeps no buffers
		 * (as nginx's ngx_http_set_keepalive does): the next read allocates */
		free(d->in.p);
		d->in.p = NULL;
		d->in.off = d->in.len = d->in.cap = 0;
		mesh_buf_cleanup(&d->out);
		mesh_buf_init(&d->out, PX_OUT_MAX);
		d->out_off = 0;
	}
	if (ev_io_set(d->e->loop, &d->io, m) < 0)
		log_warn("meshproxy", "downstream: epoll_ctl failed");
	/* a record OpenSSL holds wakes no epoll: read it from the loop */
	if ((m & EV_READ) && d->tls && px_tls_pending(d->tls))
		ev_defer(d->e->loop, &d->tls_rd);
}

/* Writes queued output; on a write error the connection is marked closing
 * (returns < 0) and the next d_update() closes it: d stays valid here. */
static int d_flush(struct px_dconn *d)
{
	while (d->out_off < d->out.len) {
		ssize_t n = d->tops->write(d->tls, d->io.fd, d->out.data + d->out_off, d->out.len - d->out_off);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			/* the client is gone: drop the output; d_update() closes (DC) */
			mesh_buf_reset(&d->out);
			d->out_off = 0;
			d->peer_eof = 1;
			d->close_after = 1;
			d->state = D_CLOSING;
			return -1;
		}
		d->out_off += (size_t)n;
	}
	if (d->out_off == d->out.len) {
		mesh_buf_reset(&d->out);
		d->out_off = 0;
	}
	return 0;
}

static void d_close(struct px_dconn *d)
{
	struct engine *e = d->e;

	if (d->s) {
		struct px_stream *s = d->s;

		s->flags |= PX_RF_DC;
		s->keep = 0;
		if (!s->status)
			s->status = 0; /* Envoy logs 0 for a request the client gave up on */
		s_release_upstream(s, 0);
		d->s = NULL;
		s->d = d;
		s_log(s);
		s_free(s);
	}
	ev_io_stop(e->loop, &d->io);
	ev_timer_cancel(e->loop, &d->idle);
	ev_defer_cancel(e->loop, &d->proc);
	ev_defer_cancel(e->loop, &d->tls_rd);
	/* TLS first (its close_notify goes out on the socket), then a TCP
	 * proxy session, which owns the socket then (and logs the connection) */
	px_tls_free(d->tls);
	tcpp_free(d->tcp);
	d->tcp = NULL;
	free(d->peer_principal);
	free(d->sni);
	free(d->xfcc);
	if (d->io.fd >= 0)
		close(d->io.fd); /* -1: handed to h2.c (px_dconn_use_h2) or to a TCP proxy session */
	d->prev->next = d->next;
	d->next->prev = d->prev;
	free(d->in.p);
	mesh_buf_cleanup(&d->out);
	e->st.cx_active--;
	d->l->st.cx_active--;
	if (d->counted)
		px_listener_socket_closed(d->l);
	px_listener_unref(d->l);
	free(d);
	if (e->st.cx_active == 0 && !ev_timer_armed(&e->trim_timer))
		ev_timer_arm(e->loop, &e->trim_timer, PX_TRIM_AFTER_MS);
	px_engine_check_drained(e);
}

void px_trim(struct ev_loop *loop, struct ev_timer *t)
{
	struct engine *e = t->data;

	(void)loop;
	if (e->st.cx_active == 0)
		malloc_trim(0);
}

static void d_sniff(struct px_dconn *d, int final);
static int d_select_after_tls(struct px_dconn *d);
static int d_in_port_named(const struct px_dconn *d);

/*
 * issue 12: an inbound connection on virtualInbound when some port takes
 * TLS.  First the first byte (peeked, so the codec still reads it): a TLS
 * handshake record (0x16) starts TLS with the port's DownstreamTlsContext
 * (captured connections; sent straight to the inbound port, the port is
 * known only from the request, so the first TLS policy serves: meshd gives
 * every inbound port the same one), anything else is plaintext, refused at
 * once by a captured TLS-only (STRICT) port and later by the request's
 * port otherwise.  (A whole ClientHello sniffer is dataplane/sniff.c's; the
 * filter-chain choice moves to fcmatch.c when it lands.)  Then the
 * handshake; when it is done the peer's SPIFFE id, ALPN and SNI are kept.
 * Returns 1 when the connection goes on to HTTP, 0 when it waits or was
 * closed.
 */
static int d_tls_step(struct px_dconn *d)
{
	struct engine *e = d->e;
	struct px_config *cfg = e->cur;
	const struct px_port *pp = NULL;
	struct px_mtls *m = NULL;
	struct px_tls_ctx *ctx;
	unsigned char b;
	ssize_t n;
	int rc;

	if (d->tls_decide) {
		do
			n = recv(d->io.fd, &b, 1, MSG_PEEK);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			d_update(d);
			return 0;
		}
		if (n <= 0 || !cfg) {
			d_close(d);
			return 0;
		}
		d->tls_decide = 0;
		if (!d->l->embedded) {
			pp = d->l->conf ? &d->l->conf->port : NULL; /* a bound listener's one port */
		} else {
			uint32_t ovip;
			uint16_t oport;

			if (d_odst(d, &ovip, &oport) == 0)
				pp = find_port(cfg->in_ports, cfg->n_in_ports, 0, oport);
		}
		if (b != 0x16) {
			if (pp && pp->tls && !pp->plain_ok) {
				e->tls_plain_refused++;
				d_close(d);
				return 0;
			}
			return 1;
		}
		m = pp ? pp->tls : cfg->n_mtls ? cfg->mtls[0] : NULL;
		rc = m ? px_mtls_ctx(m, e->ident, &ctx) : -ENOENT;
		if (rc == 0)
			rc = px_tls_new(ctx, d->io.fd, NULL, &d->tls);
		if (rc < 0) {
			/* -EAGAIN: name what is missing (a named SDS secret is not the workload certificate) */
			log_warn("meshproxy", "inbound TLS from %s refused: %s%s", d->peer_ip,
				 rc == -EAGAIN ? "waiting for " : "", rc == -EAGAIN ? px_mtls_waiting_for(m, e->ident)
				 : rc == -ENOENT ? "no TLS filter chain" : mesh_strerror(rc));
			e->tls_handshake_fail++;
			d_close(d);
			return 0;
		}
		d->tops = &px_transport_tls;
		d->hs = 1;
		d->via_tls = 1;
		/* the handshake gets a bound of its own (d_idle_cb closes): a
		 * peer that stalls in it held the connection for the whole
		 * idle timeout (1 h) */
		ev_timer_arm(e->loop, &d->idle, PX_TLS_HANDSHAKE_MS);
	}
	rc = px_tls_handshake(d->tls);
	if (rc == -EAGAIN) {
		d_update(d);
		return 0;
	}
	if (rc < 0) {
		log_debug("meshproxy", "inbound TLS handshake from %s failed: %s", d->peer_ip, px_tls_error(d->tls));
		e->tls_handshake_fail++;
		d_close(d);
		return 0;
	}
	d->hs = 0;
	ev_timer_cancel(e->loop, &d->idle); /* the handshake's bound ends; d_update arms the idle one */
	if (px_tls_peer_uri(d->tls))
		d->peer_principal = strdup(px_tls_peer_uri(d->tls));
	mesh_str_copy(d->alpn, sizeof(d->alpn), px_tls_alpn(d->tls));
	if (px_tls_sni(d->tls)) {
		free(d->sni); /* a gateway's: the sniffed one already (d_select) */
		d->sni = strdup(px_tls_sni(d->tls));
	}
	return 1;
}

static void d_cb(struct ev_loop *loop, struct ev_io *io, unsigned events);

static void d_tls_rd(struct ev_loop *loop, struct ev_defer *df)
{
	struct px_dconn *d = df->data;

	d_cb(loop, &d->io, EV_READ);
}

static void d_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct px_dconn *d = io->data;

	if (d->tcp)
		return; /* a TCP proxy session has the socket */
	if (d->sniffing) {
		ssize_t n = 0;

		if (ib_room(&d->in, PX_IN_MAX))
			n = d->tops->read(NULL, io->fd, d->in.p + d->in.len, d->in.cap - d->in.len);
		if (n > 0)
			d->in.len += (size_t)n;
		else if (n == 0 || n != -EAGAIN) {
			/* gone before the listener filters decided: Envoy closes too */
			d_close(d);
			return;
		}
		d_sniff(d, 0);
		return;
	}

	if (d->s)
		d->s->last_io = ev_now(loop);
	if (d->tls_decide || d->hs) {
		/* issue 12: TLS or plaintext first, then the handshake */
		if (!d_tls_step(d))
			return;
		if (d_select_after_tls(d))
			return; /* a TCP chain took it (or none did) */
		if (d->tls && !d->hs && !strcmp(d->alpn, "h2")) {
			/* the client chose HTTP/2 by ALPN: the HTTP/2 session takes
			 * the connection and its TLS (inbound mTLS carries gRPC) */
			(void)px_dconn_use_h2(d);
			return;
		}
		events |= EV_READ;
	}
	if (events & EV_WRITE) {
		d_flush(d);
		/* the client caught up: let the upstream send more */
		if (d->state != D_CLOSING && d->s && d->s->u && ob_pending(&d->out, d->out_off) < PX_OUT_HIGH) {
			u_process(d->s->u);
			if (d->s && d->s->u)
				u_update(d->s->u);
		}
	}
	if (events & (EV_READ | EV_ERROR)) {
		if (ib_room(&d->in, PX_IN_MAX)) {
			ssize_t n = d->tops->read(d->tls, io->fd, d->in.p + d->in.len, d->in.cap - d->in.len);

			if (n > 0) {
				d->in.len += (size_t)n;
				/* TLS: what OpenSSL holds beyond the room, while there is room */
				while (d->tls && px_tls_pending(d->tls) && ib_room(&d->in, PX_IN_MAX)) {
					ssize_t more = d->tops->read(d->tls, io->fd, d->in.p + d->in.len,
								     d->in.cap - d->in.len);

					if (more <= 0)
						break;
					d->in.len += (size_t)more;
				}
			} else if (n == 0 || n != -EAGAIN) {
				d->peer_eof = 1;
				/* the client went away: any stream is cut (DC); idle: just close */
				d_close(d);
				return;
			}
		}
		d_process(d);
		return;
	}
	d_update(d);
}

static void d_idle_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_dconn *d = t->data;

	(void)loop;
	if (d->sniffing) {
		d_sniff(d, 1); /* listener_filters_timeout */
		return;
	}
	if (d->s)
		return;
	if (d->hdr_timing && d->state == D_HEAD) {
		/* a head not read whole in time: Envoy's local reply, then the
		 * connection closes (ConnectionManagerImpl::ActiveStream::
		 * onRequestHeaderTimeout / onIdleTimeout) */
		if (d->hdr_timing == D_HDR_TIMEOUT) {
			d->e->st.rq_header_timeout++;
			d_local_reply(d, 408, "request header timeout", 0, "request_header_timeout");
		} else {
			d->e->st.rq_idle_timeout++;
			d_local_reply(d, 408, "stream timeout", PX_RF_SI, "stream_idle_timeout");
		}
		d->hdr_timing = 0;
		d_flush(d);
		d_update(d);
		return;
	}
	if (d->state == D_HEAD && !d->hdr_timing && !d->hs && !d->tls_decide)
		d->e->st.cx_idle_timeout++; /* Envoy's downstream_cx_idle_timeout */
	d_close(d);
}

void px_accept_resume(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_listener *l = t->data;

	if (ev_io_set(loop, &l->io, EV_READ) < 0)
		ev_timer_arm(loop, &l->pause, PX_ACCEPT_PAUSE_MS);
}

static void accept_pause(struct ev_loop *loop, struct px_listener *l, int err)
{
	if (!l->exhausted) {
		l->exhausted = 1;
		l->e->st.accept_paused++;
		log_warn("meshproxy", "%s accept: %s; pausing the listener %d ms at a time until it recovers",
			 px_listener_name(l), strerror(err), PX_ACCEPT_PAUSE_MS);
	}
	if (ev_io_set(loop, &l->io, 0) < 0)
		return;
	ev_timer_arm(loop, &l->pause, PX_ACCEPT_PAUSE_MS);
}

static void d_tcp_done(void *arg)
{
	d_close(arg);
}

/*
 * Hands d to the TCP proxy of chain pp (tcpproxy.h): whatever d read
 * already (sniffed bytes) goes upstream first; from here the session owns
 * the socket and d only keeps the connection's place in the engine's list
 * and counters until d_tcp_done().  On failure d is closed.
 */
/*
 * A TCP chain's network RBAC filters (authz.h) on d, once, before any byte
 * goes upstream (Envoy evaluates them on the connection's first data;
 * the connection is judged on what it is: peer identity, addresses, SNI,
 * destination port).  Returns 1 when denied (the connection is closed, as
 * Envoy closes it), else 0.
 */
static int d_tcp_authz(struct px_dconn *d, const struct px_port *pp)
{
	struct rbac_request r;
	struct rbac_decision dec;
	struct sockaddr_storage ls;
	socklen_t llen = sizeof(ls);
	char dst_ip[INET6_ADDRSTRLEN] = "", det[RBAC_EVAL_TEXT_MAX + 48];

	if (!pp->authz)
		return 0;
	memset(&r, 0, sizeof(r));
	r.principal = d->peer_principal;
	r.source_ip = d->peer_ip[0] ? d->peer_ip : NULL;
	r.sni = d->sni;
	if (d->captured && d->dst_len)
		memcpy(&ls, &d->dst, d->dst_len);
	else if (getsockname(d->io.fd, (struct sockaddr *)&ls, &llen) < 0)
		ls.ss_family = AF_UNSPEC;
	if (ls.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ls)->sin_addr, dst_ip, sizeof(dst_ip));
		r.destination_port = ntohs(((struct sockaddr_in *)&ls)->sin_port);
	} else if (ls.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ls)->sin6_addr, dst_ip, sizeof(dst_ip));
		r.destination_port = ntohs(((struct sockaddr_in6 *)&ls)->sin6_port);
	}
	r.destination_ip = dst_ip[0] ? dst_ip : NULL;
	if (authz_check(pp->authz, &r, &dec))
		return 0;
	authz_details(&dec, det, sizeof(det));
	log_debug("meshproxy", "connection from %s closed: %s", d->peer_ip, det);
	d_close(d);
	return 1;
}

static void d_tcp_start(struct px_dconn *d, const struct px_port *pp)
{
	struct engine *e = d->e;
	struct tcpp_down td;

	if (d_tcp_authz(d, pp))
		return;
	memset(&td, 0, sizeof(td));
	td.fd = d->io.fd;
	td.tops = d->tops;
	td.tctx = d->tls; /* NULL for raw TCP; the TLS session stays d's (freed by d_close) */
	td.pre = d->in.p ? d->in.p + d->in.off : NULL;
	td.n_pre = d->in.len - d->in.off;
	if (d->captured) {
		td.odst = &d->dst;
		td.odst_len = d->dst_len;
	}
	td.l = d->l;
	td.peer_ip = d->peer_ip;
	td.done = d_tcp_done;
	td.arg = d;
	td.inbound = d->inbound; /* issue 14: Istio's TCP metrics */
	td.peer_principal = d->peer_principal;
	/* issue 14: Istio's TCP metadata exchange, when the mTLS took it */
	td.mx = d->tls && !strcmp(px_tls_alpn(d->tls), "istio-peer-exchange");
	td.sni = d->sni; /* issue 13: sni_cluster (AUTO_PASSTHROUGH) */
	ev_io_stop(e->loop, &d->io);
	ev_timer_cancel(e->loop, &d->idle);
	ev_defer_cancel(e->loop, &d->proc);
	ev_defer_cancel(e->loop, &d->tls_rd);
	if (tcpp_start(e, e->cur, &pp->tcpp, &td, &d->tcp) < 0) {
		d_close(d);
		return;
	}
	d->io.fd = -1;
	d->state = D_TUNNEL;
	free(d->in.p);
	d->in.p = NULL;
	d->in.off = d->in.len = d->in.cap = 0;
}

/* The chains a connection selects among, in the current configuration
 * (looked up again each time: a configuration may be swapped while the
 * listener filters wait for bytes), or NULL. */
static const struct px_sel *d_sel(const struct px_dconn *d)
{
	const struct px_config *c = d->e->cur;
	const struct px_port *pp;
	uint32_t vip;
	uint16_t port;

	if (d->sel_kind == SEL_BOUND)
		return d->l->conf ? &d->l->conf->sel : NULL;
	if (!c)
		return NULL;
	if (d->sel_kind == SEL_IN)
		return c->has_inbound ? &c->in_sel : NULL;
	if (d->sel_kind == SEL_OUT && d_odst(d, &vip, &port) == 0) {
		pp = find_port(c->out_ports, c->n_out_ports, vip, port);
		return pp ? pp->sel : NULL;
	}
	return NULL;
}

static const char *d_sel_name(const struct px_dconn *d)
{
	return d->sel_kind == SEL_BOUND && d->l->conf ? d->l->conf->name
	       : d->sel_kind == SEL_IN		     ? "virtualInbound"
						     : "outbound port";
}

/*
 * Issue 13: the chain selected for a gateway's connection (by the SNI and
 * ALPN of the ClientHello the tls_inspector read, d->in) terminates TLS
 * with its own DownstreamTlsContext (engine.c's sel_tls()): that chain's
 * certificate is served, MUTUAL verifies the client's (the handshake fails
 * without one), and the bytes read so far go to OpenSSL first.  Then the
 * handshake runs as virtualInbound's does (d_cb -> d_tls_step), and ALPN h2
 * hands the connection to the HTTP/2 codec.  Returns 1 (d may be gone).
 */
static int d_tls_term(struct px_dconn *d, const struct px_port *pp, int k)
{
	struct engine *e = d->e;
	struct px_tls_ctx *ctx;
	int rc;

	rc = px_mtls_ctx(pp->tls, e->ident, &ctx);
	if (rc == 0)
		rc = px_tls_new_pre(ctx, d->io.fd, d->in.p ? d->in.p + d->in.off : NULL, d->in.len - d->in.off,
				    &d->tls);
	if (rc < 0) {
		/* name the missing secret: a Gateway's credentialName meshd did not send is not "no certificate" */
		if (rc == -EAGAIN)
			log_warn("meshproxy", "%s: TLS from %s refused: waiting for %s from meshd (meshd's log says why "
				 "it is not sent)", d_sel_name(d), d->peer_ip, px_mtls_waiting_for(pp->tls, e->ident));
		else
			log_warn("meshproxy", "%s: TLS from %s refused: %s", d_sel_name(d), d->peer_ip,
				 mesh_strerror(rc));
		e->tls_handshake_fail++;
		d_close(d);
		return 1;
	}
	d->in.off = d->in.len = 0; /* OpenSSL has them now */
	d->tops = &px_transport_tls;
	d->hs = 1;
	d->via_tls = 1;
	d->chain = k >= 0 ? k + 1 : -1;
	d_port_timers(d, pp);
	ev_timer_arm(e->loop, &d->idle, PX_TLS_HANDSHAKE_MS); /* the handshake's own bound (d_tls_step) */
	d_cb(e->loop, &d->io, EV_READ);
	return 1;
}

/*
 * Envoy's filter chain selection for d among d_sel()'s chains (fcmatch.h),
 * with what the listener filters found (tls: a parsed ClientHello or NULL;
 * proto: http_inspector's protocol or NULL) or what d_tls_step() learnt
 * terminating TLS; then the chain takes the connection: a TCP proxy, or
 * the HTTP codec (d->chain set; with process, the bytes read so far are
 * parsed now).  No chain, or a TLS chain for a connection whose TLS was
 * not terminated, closes it.  Returns 1 when d was handed over or closed
 * (d may be gone), 0 when HTTP goes on.
 */
static int d_select(struct px_dconn *d, const struct sniff_tls *tls, const char *proto, int process)
{
	struct engine *e = d->e;
	const struct px_sel *sel = d_sel(d);
	const char *alpn[SNIFF_ALPN_MAX + 1];
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	struct fcm_conn fc;
	const struct px_port *pp = NULL;
	size_t i;
	int k, term = 0;

	memset(&fc, 0, sizeof(fc));
	/* the destination: the original one when captured (Envoy's
	 * original_dst restores it), else the socket's own address */
	if (d->captured)
		fc.dst = (const struct sockaddr *)&d->dst;
	else if (getsockname(d->io.fd, (struct sockaddr *)&local, &llen) == 0)
		fc.dst = (const struct sockaddr *)&local;
	if (getpeername(d->io.fd, (struct sockaddr *)&peer, &plen) == 0)
		fc.src = fc.direct_src = (const struct sockaddr *)&peer;
	fc.transport = tls || d->tls ? "tls" : "raw_buffer";
	if (tls) {
		fc.sni = tls->sni[0] ? tls->sni : NULL;
		for (i = 0; i < tls->n_alpn; i++)
			alpn[fc.n_alpn++] = tls->alpn[i];
		/* issue 13: the requested server name, as tls_inspector sets it,
		 * for a TCP chain (sni_cluster, RBAC requested_server_name) */
		if (fc.sni && !d->sni)
			d->sni = strdup(fc.sni);
	} else if (d->tls) {
		/* TLS terminated already (d_tls_step()): its SNI; the ALPN list
		 * the client offered is not kept (Envoy matches on it), so the
		 * ALPN step takes every chain */
		fc.sni = d->sni;
		fc.alpn_unknown = 1;
	} else if (proto && *proto) {
		alpn[fc.n_alpn++] = proto;
	}
	fc.alpn = alpn;
	d->sniffing = 0;
	ev_timer_cancel(e->loop, &d->idle);
	if (!sel || !e->cur) {
		d_close(d);
		return 1;
	}
	k = fcm_select(&sel->fcm, &fc);
	if (k >= 0 && (size_t)k < sel->n_chains) {
		pp = &sel->chains[k];
		term = sel->chain_tls[k];
	} else if (k == FCM_DEFAULT) {
		pp = &sel->def;
		term = sel->def_tls;
	}
	if (!pp) {
		d->l->st.no_chain++; /* Envoy's listener no_filter_chain_match */
		if (d->sel_kind == SEL_IN && !d->tls && !tls)
			e->tls_plain_refused++; /* plaintext no chain takes (STRICT) */
	}
	if (pp && term && !d->tls && pp->tls && d->sel_kind == SEL_BOUND)
		return d_tls_term(d, pp, k); /* issue 13: a gateway's chain terminates TLS */
	if (!pp || (term && !d->tls)) {
		/* a chain whose transport socket is TLS takes only a connection
		 * d_tls_step() terminated (virtualInbound) */
		log_debug("meshproxy", "%s: %s (transport %s, sni %s): connection closed", d_sel_name(d),
			  pp ? "the chain terminates TLS" : "no filter chain matches", fc.transport, fc.sni ? fc.sni : "-");
		d_close(d);
		return 1;
	}
	if (pp->tcp) {
		d_tcp_start(d, pp);
		return 1;
	}
	d->chain = k >= 0 ? k + 1 : -1;
	d_port_timers(d, pp);
	if (d->idle_ms)
		ev_timer_arm(e->loop, &d->idle, d->idle_ms);
	if (process)
		d_process(d);
	return 0;
}

/* A virtualInbound connection (captured, or sent to a port a chain names)
 * or a bound inbound listener's, once d_tls_step() decided TLS (and
 * finished the handshake) or plaintext: its chain among the listener's,
 * by destination port, transport, SNI and ALPN.  A TCP proxy chain takes
 * it (over the TLS transport when terminated); an HTTP one goes on.
 * Returns 1 when d was handed over or closed. */
static int d_select_after_tls(struct px_dconn *d)
{
	if (d->sel_kind == SEL_BOUND && d->chain && d->tls && d->l->conf) {
		/* issue 13: a gateway chain terminated TLS (d_tls_term): its
		 * subject alt names for the client's certificate (Envoy's
		 * match_subject_alt_names, a Gateway's MUTUAL subjectAltNames),
		 * then a TCP chain proxies over the TLS session (ISTIO_MUTUAL /
		 * SIMPLE TCP servers), an HTTP one goes on */
		const struct px_port *pp = sel_chain(&d->l->conf->sel, d->chain);

		if (pp && pp->tls && pp->tls->n_sans &&
		    px_tls_check_sans(d->tls, (const char *const *)pp->tls->sans, pp->tls->n_sans) < 0) {
			log_debug("meshproxy", "%s: client %s: certificate not among the subject alt names", d_sel_name(d),
				  d->peer_ip);
			d->e->tls_handshake_fail++;
			d_close(d);
			return 1;
		}
		if (pp && pp->tcp) {
			d_tcp_start(d, pp);
			return 1;
		}
		return 0;
	}
	if (d->sel_kind != SEL_NONE || !d->e->cur)
		return 0;
	if (!d->l->embedded) {
		/* a bound inbound listener whose port takes TLS (its chains) */
		d->sel_kind = SEL_BOUND;
		return d_select(d, NULL, NULL, 0);
	}
	if (!d->inbound || !d->e->cur->has_inbound || (!d->captured && !d_in_port_named(d)))
		return 0;
	d->sel_kind = SEL_IN;
	return d_select(d, NULL, NULL, 0);
}

/* The listener filters over the bytes read so far: tls_inspector, then
 * (not TLS) http_inspector; once both decided, or at the listener's
 * timeout (final) with continue_on_listener_filters_timeout, the chain is
 * selected; a timeout without it, or more bytes than either may look at
 * without a decision, closes (Envoy). */
static void d_sniff(struct px_dconn *d, int final)
{
	const struct px_sel *b = d_sel(d);
	const unsigned char *p = (const unsigned char *)(d->in.p ? d->in.p + d->in.off : "");
	size_t n = d->in.len - d->in.off;
	struct sniff_tls tls;
	enum sniff_rc tr = SNIFF_NO, hr = SNIFF_NO;
	char proto[16] = "";

	if (!b) {
		d_close(d);
		return;
	}
	if (b->fcm.inspect & FCM_INSPECT_TLS)
		tr = sniff_tls(p, n, &tls);
	if (tr == SNIFF_NO && (b->fcm.inspect & FCM_INSPECT_HTTP))
		hr = sniff_http(p, n, proto);
	if (tr != SNIFF_MORE && hr != SNIFF_MORE) {
		d_select(d, tr == SNIFF_YES ? &tls : NULL, hr == SNIFF_YES ? proto : NULL, 1);
		return;
	}
	if (final || n >= PX_IN_MAX - 1) {
		if (final && b->fcm.continue_on_timeout) {
			d_select(d, NULL, NULL, 1);
			return;
		}
		d_close(d);
		return;
	}
	if (ev_io_set(d->e->loop, &d->io, EV_READ) < 0)
		d_close(d);
}

/* Whether a new connection of a bound listener waits for the listener
 * filters: only when some chain matches on what they find (SNI, transport,
 * ALPN) and the listener runs the filter that finds it; otherwise the
 * selection needs no byte (and a server-first protocol is not stalled). */
static int d_needs_sniff(const struct px_sel *b)
{
	unsigned want = 0;

	if (b->fcm.inspect & FCM_INSPECT_TLS)
		want |= FCM_USES_SNI | FCM_USES_TRANSPORT | FCM_USES_ALPN;
	if (b->fcm.inspect & FCM_INSPECT_HTTP)
		want |= FCM_USES_ALPN;
	return (b->fcm.uses & want) != 0;
}

/* A connection sent straight to virtualInbound's socket (not captured)
 * whose local port is one a virtualInbound chain names: what Envoy's
 * virtualInbound sees without original_dst (the socket's own address), so
 * that port's chains serve it (--inbound-addr bound on the workload's
 * port).  Elsewhere the port comes from the request's authority (HTTP). */
static int d_in_port_named(const struct px_dconn *d)
{
	const struct px_config *c = d->e->cur;
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	uint16_t port;
	size_t i;

	if (!c || getsockname(d->io.fd, (struct sockaddr *)&local, &llen) < 0 || local.ss_family != AF_INET)
		return 0;
	port = ntohs(((const struct sockaddr_in *)&local)->sin_port);
	for (i = 0; i < c->in_sel.n_chains; i++)
		if (fcm_chain_port(&c->in_sel.fcm, i) == port)
			return 1;
	return 0;
}

/* Which chains a new connection selects among: a bound listener's, or a
 * captured connection's (virtualInbound's; the outbound port's listener
 * when it has a px_sel, see d_sel()); SEL_NONE: the port's one chain,
 * d_tcp_chain() and the HTTP path decide. */
static int d_sel_kind(const struct px_dconn *d)
{
	const struct px_config *c = d->e->cur;
	uint32_t vip;
	uint16_t port;
	size_t i;

	if (!d->l->embedded)
		return SEL_BOUND;
	if (d->inbound && c && c->has_inbound && !d->captured && d_in_port_named(d))
		return SEL_IN;
	if (d_odst(d, &vip, &port) < 0 || !c)
		return SEL_NONE;
	if (d->inbound)
		return SEL_IN;
	for (i = 0; i < c->n_bh_out; i++)
		if (c->bh_out[i] == port)
			return SEL_NONE; /* virtualOutbound-blackhole: answered over HTTP as before */
	return SEL_OUT;
}

/* An IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer or local
 * address) as the IPv4 one, in place; others unchanged. */
static void a_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 l6;
	struct sockaddr_in *l4 = (struct sockaddr_in *)ss;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)ss)->sin6_addr))
		return;
	l6 = *(struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	l4->sin_family = AF_INET;
	l4->sin_port = l6.sin6_port;
	memcpy(&l4->sin_addr, &l6.sin6_addr.s6_addr[12], 4);
	*len = sizeof(*l4);
}

/* A transparent listener's accepted fd: its local address as o's original
 * destination (an IPv4-mapped one as IPv4), o->captured when its port is
 * not the listener's own. */
static void a_tproxy_dst(int fd, const struct px_listener *l, struct px_conn_origin *o)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	uint16_t port;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		return;
	a_unmap(&local, &llen);
	if (local.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&local)->sin_port);
	else if (local.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
	else
		return;
	if (port == l->port)
		return;
	o->dst = local;
	o->dst_len = llen;
	o->captured = 1;
}
/* The TCP proxy chain that serves a new connection of virtualOutbound or
 * virtualInbound without looking at its bytes, or NULL (HTTP).  A captured
 * connection's original destination picks the outbound/inbound port as
 * Envoy's original_dst does, and a captured destination no port names goes
 * to virtualOutbound's / virtualInbound's catch-all, which are TCP
 * passthrough chains (Istio). */
static const struct px_port *d_tcp_chain(const struct px_dconn *d)
{
	static const struct px_port out_pass = { .tcp = 1, .tcp_cluster = "PassthroughCluster",
						 .tcpp = { .cluster = "PassthroughCluster", .idle_ms = TCPP_IDLE_DEFAULT_MS } };
	static const struct px_port in_pass = { .tcp = 1, .tcp_cluster = "InboundPassthroughCluster",
						.tcpp = { .cluster = "InboundPassthroughCluster",
							  .idle_ms = TCPP_IDLE_DEFAULT_MS } };
	const struct px_config *c = d->e->cur;
	const struct px_port *pp;
	uint32_t vip;
	uint16_t port;
	size_t i;

	if (!c)
		return NULL;
	if (!d->l->embedded)
		return NULL; /* bound listeners select among their chains (d_select()) */
	if (d_odst(d, &vip, &port) < 0)
		return NULL;
	if (!d->inbound) {
		for (i = 0; i < c->n_bh_out; i++)
			if (c->bh_out[i] == port)
				return NULL; /* virtualOutbound-blackhole: answered over HTTP as today */
		pp = find_port(c->out_ports, c->n_out_ports, vip, port);
		if (pp)
			return pp->tcp ? pp : NULL;
		return c->allow_any ? &out_pass : NULL;
	}
	pp = find_port(c->in_ports, c->n_in_ports, 0, port);
	if (pp)
		return pp->tcp && !(pp->tcp_cluster && !strcmp(pp->tcp_cluster, "BlackHoleCluster")) ? pp : NULL;
	return &in_pass;
}

void px_listener_socket_closed(struct px_listener *l)
{
	l->sockets--;
	l->e->sockets--;
}

void px_accept_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct px_listener *l = io->data;
	struct engine *e = l->e;
	int i;

	(void)events;
	for (i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct px_conn_origin o;
		int fd = accept4(io->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_pause(loop, l, errno);
			break;
		}
		l->exhausted = 0;
		/* issue 16: the connection limits, the engine-wide one first, as
		 * Envoy checks the global limit at the socket before the
		 * listener's own (TcpListenerImpl::onSocketEvent, then
		 * ActiveTcpListener::onAccept); past one the socket is closed */
		if (e->o.global_max_connections && e->sockets >= e->o.global_max_connections) {
			l->st.global_cx_overflow++;
			close(fd);
			continue;
		}
		if (e->o.max_connections && l->sockets >= e->o.max_connections) {
			l->st.cx_overflow++;
			close(fd);
			continue;
		}
		l->sockets++;
		e->sockets++;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(&o, 0, sizeof(o));
		o.l = l;
		o.counted = 1;
		o.inbound = l->inbound;
		if (peer.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, o.peer_ip, sizeof(o.peer_ip));
			o.peer_port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
		} else if (peer.ss_family == AF_INET6) {
			/* an IPv6 listener: the client's address feeds XFF, RBAC's
			 * remote_ip and internal/external as IPv4 ones do (without
			 * it a gateway on [::] passed a client's XFF on unchecked);
			 * a v4-mapped peer of a dual-stack socket reads as IPv4 */
			const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;

			if (IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr))
				inet_ntop(AF_INET, &p6->sin6_addr.s6_addr[12], o.peer_ip, sizeof(o.peer_ip));
			else
				inet_ntop(AF_INET6, &p6->sin6_addr, o.peer_ip, sizeof(o.peer_ip));
			o.peer_port = ntohs(p6->sin6_port);
		}
		/* the original destination: iptables' REDIRECT leaves it in
		 * conntrack; ip6tables' in the IPv6 table (IP6T_SO_ORIGINAL_DST,
		 * as Envoy's original_dst reads it for an IPv6 peer) */
		o.dst_len = sizeof(o.dst);
		if (peer.ss_family == AF_INET6 &&
		    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&peer)->sin6_addr)) {
			if (getsockopt(fd, SOL_IPV6, PX_IP6T_SO_ORIGINAL_DST, &o.dst, &o.dst_len) == 0 &&
			    o.dst.ss_family == AF_INET6) {
				struct sockaddr_storage local;
				socklen_t llen = sizeof(local);

				o.dst_len = sizeof(struct sockaddr_in6);
				if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0 &&
				    (memcmp(&((struct sockaddr_in6 *)&local)->sin6_addr,
					    &((struct sockaddr_in6 *)&o.dst)->sin6_addr, sizeof(struct in6_addr)) ||
				     ((struct sockaddr_in6 *)&local)->sin6_port != ((struct sockaddr_in6 *)&o.dst)->sin6_port))
					o.captured = 1;
			} else {
				o.dst_len = 0;
				memset(&o.dst, 0, sizeof(o.dst));
			}
		} else if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &o.dst, &o.dst_len) == 0 && o.dst.ss_family == AF_INET) {
			struct sockaddr_storage local;
			socklen_t llen = sizeof(local);

			/* the kernel (getorigdst) writes a sockaddr_in but leaves the
			 * length as passed: compared as it was, no connection was
			 * ever seen as captured (and RBAC, STRICT and the original
			 * destination then followed the Host header's port) */
			o.dst_len = sizeof(struct sockaddr_in);

			/* an IPv4 client of a dual-stack listener: its local
			 * address is v4-mapped */
			if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
				a_unmap(&local, &llen);
			if (llen == o.dst_len && memcmp(&local, &o.dst, llen))
				o.captured = 1; /* redirected; else it was sent to us directly */
		} else {
			o.dst_len = 0;
			memset(&o.dst, 0, sizeof(o.dst));
		}
		/* issue 15: TPROXY diverts without NAT, so the accepted socket's
		 * own address is the original destination (Envoy's original_dst
		 * falls back to it when SO_ORIGINAL_DST has none, and conntrack's
		 * answer is that same address): captured when its port is not
		 * the listener's */
		if (!o.captured && l->transparent)
			a_tproxy_dst(fd, l, &o);
		(void)px_dconn_adopt(e, fd, &o, 0);
	}
}

int px_dconn_adopt(struct engine *e, int fd, const struct px_conn_origin *o, int h2)
{
	struct ev_loop *loop = e->loop;
	struct px_listener *l = o->l;
	struct px_dconn *d = calloc(1, sizeof(*d));

	if (!d) {
		close(fd);
		if (o->counted && !h2)
			px_listener_socket_closed(l);
		return -ENOMEM;
	}
	d->e = e;
	d->counted = o->counted && !h2;
	d->inbound = o->inbound;
	d->l = l;
	d->h2 = h2;
	if (!l->embedded)
		l->refs++;
	l->st.cx_total++;
	l->st.cx_active++;
	d->tops = &px_transport_raw;
	/* issue 12: virtualInbound with TLS ports looks at the first byte */
	d->tls_decide = l == &e->lin && e->cur && e->cur->in_tls && !h2;
	/* an inbound listener bound for a Sidecar ingress port with a TLS chain too */
	if (!l->embedded && l->conf && l->conf->inbound && l->conf->port.tls && !h2)
		d->tls_decide = 1;
	d->drain = e->draining && (l->inbound || e->o.router); /* a gateway: every listener (px_dconn_drain_listener) */
	h1_parser_init(&d->p, 1, NULL, d->hdrs, H1_DEFAULT_MAX_HEADERS);
	mesh_buf_init(&d->out, PX_OUT_MAX);
	ev_io_init(&d->io, fd, d_cb, d);
	ev_timer_init(&d->idle, d_idle_cb, d);
	ev_defer_init(&d->proc, d_proc_cb, d);
	ev_defer_init(&d->tls_rd, d_tls_rd, d);
	memcpy(d->peer_ip, o->peer_ip, sizeof(d->peer_ip));
	d->peer_port = o->peer_port;
	d->local = o->local;
	d->local_len = o->local_len;
	d->dst = o->dst;
	d->dst_len = o->dst_len;
	d->captured = o->captured;
	/* issue 12: an HTTP/2 stream of a TLS session carries its peer */
	d->via_tls = o->tls;
	d->peer_principal = o->peer_principal ? strdup(o->peer_principal) : NULL;
	d->sni = o->sni ? strdup(o->sni) : NULL;
	d->xfcc = o->xfcc ? strdup(o->xfcc) : NULL;
	memcpy(d->alpn, o->alpn, sizeof(d->alpn));
	d->alpn[sizeof(d->alpn) - 1] = '\0';
	d->chain = o->chain; /* an HTTP/2 stream: its session's chain (0 for a new connection) */
	if (!e->dconns) {
		e->dconns = calloc(1, sizeof(*e->dconns));
		if (!e->dconns) {
			close(fd);
			l->st.cx_active--;
			if (d->counted)
				px_listener_socket_closed(l);
			px_listener_unref(l);
			free(d->peer_principal);
			free(d->sni);
			free(d->xfcc);
			free(d);
			return -ENOMEM;
		}
		e->dconns->next = e->dconns->prev = e->dconns;
	}
	d->next = e->dconns->next;
	d->prev = e->dconns;
	e->dconns->next->prev = d;
	e->dconns->next = d;
	e->st.cx_total++;
	e->st.cx_active++;
	if (ev_io_start(loop, &d->io, EV_READ) < 0) {
		d->state = D_CLOSING;
		d_close(d);
		return -EIO;
	}
	if (e->cur && !h2 && !d->tls_decide) {
		/* a bound listener, virtualInbound or a captured outbound port
		 * with several chains: Envoy's chain selection, after the
		 * listener filters when a chain depends on them (virtualInbound
		 * with TLS ports: after d_tls_step(), d_select_after_tls()) */
		const struct px_sel *sel;
		const struct px_port *tp;

		d->sel_kind = d_sel_kind(d);
		sel = d_sel(d);
		if (sel && d_needs_sniff(sel)) {
			d->sniffing = 1;
			if (sel->fcm.filters_timeout_ms)
				ev_timer_arm(loop, &d->idle, sel->fcm.filters_timeout_ms);
			return 0;
		}
		if (sel) {
			d_select(d, NULL, NULL, 1);
			return 0;
		}
		tp = d_tcp_chain(d);
		if (tp) {
			d_tcp_start(d, tp);
			return 0;
		}
	}
	d_port_timers(d, NULL); /* the port is not known yet: the engine's */
	if (d->captured && e->cur) {
		/* the port is known already: its HCM's connection timers apply from the start */
		const struct px_port *pp = NULL;
		uint32_t vip = 0;
		uint16_t port = 0;

		(void)d_odst(d, &vip, &port);
		if (!d->inbound)
			pp = find_port(e->cur->out_ports, e->cur->n_out_ports, vip, port);
		else
			pp = find_port(e->cur->in_ports, e->cur->n_in_ports, 0, port);
		if (pp && !pp->tcp) {
			d_port_timers(d, pp);
		}
	}
	if (d->idle_ms)
		ev_timer_arm(loop, &d->idle, d->idle_ms);
	return 0;
}

int px_dconn_use_h2(struct px_dconn *d)
{
	struct engine *e = d->e;
	struct px_conn_origin o;
	char xfcc[1024];
	int rc;

	memset(&o, 0, sizeof(o));
	o.l = d->l;
	o.inbound = d->inbound;
	o.captured = d->captured;
	o.dst = d->dst;
	o.dst_len = d->dst_len;
	/* issue 12: every stream's connection is a socketpair; the address the
	 * client dialled (RBAC's destination.ip) is this socket's */
	o.local_len = d_local_addr(d, &o.local);
	memcpy(o.peer_ip, d->peer_ip, sizeof(o.peer_ip));
	o.peer_port = d->peer_port;
	o.idle_ms = d->idle_ms; /* the HTTP/2 session's idle timeout (h2.c) */
	o.counted = d->counted;
	o.chain = d->chain;     /* issue 13: a gateway's TLS chain serves every stream */
	if (d->tls) {
		/* issue 12: what the handshake told, for every stream's connection
		 * (STRICT, RBAC principals, XFCC); the session copies them */
		o.tls = 1;
		o.peer_principal = d->peer_principal;
		o.sni = d->sni;
		if (px_tls_xfcc(d->tls, xfcc, sizeof(xfcc)) == 0)
			o.xfcc = xfcc;
		memcpy(o.alpn, d->alpn, sizeof(o.alpn));
	}
	/* one registration per fd: the session registers it again */
	ev_io_stop(e->loop, &d->io);
	ev_defer_cancel(e->loop, &d->tls_rd);
	/* the transport's context: NULL for raw TCP, the TLS connection (the
	 * session frees it) for TLS */
	rc = px_h2d_start(e, d->io.fd, d->tops, d->tls, &o, d->in.p + d->in.off, d->in.len - d->in.off);
	if (rc < 0) {
		d->state = D_CLOSING;
		d_close(d);
		return rc;
	}
	/* the socket and its TLS now belong to the HTTP/2 session: d goes
	 * without closing them (the session counts the socket now) */
	d->counted = 0;
	d->io.fd = -1;
	d->tls = NULL;
	d_close(d);
	return 0;
}

void px_dconn_drain_all(struct engine *e)
{
	px_dconn_drain_listener(e, NULL);
}

void px_dconn_drain_listener(struct engine *e, const struct px_listener *l)
{
	struct px_dconn *d, *next;

	px_h2d_drain(e, l); /* HTTP/2 sessions: GOAWAY (h2.c) */
	if (!e->dconns)
		return;
	for (d = e->dconns->next; d != e->dconns; d = next) {
		next = d->next;
		/* a listener's removal drains its own connections; SIGTERM (l NULL)
		 * drains inbound ones only: outbound keeps serving the
		 * application's calls while it shuts down (Istio's agent drains
		 * inbound listeners) */
		if (l ? d->l != l : !(d->inbound || e->o.router))
			continue; /* issue 13: a gateway drains every listener (Istio's agent: not inboundonly) */
		/* a TCP proxy connection has no request boundary to stop at:
		 * it runs until it ends or the drain period does (Envoy) */
		if (d->tcp)
			continue;
		d->drain = 1;
		if (!d->s && !ob_pending(&d->out, d->out_off))
			d_close(d);
		else if (d->s)
			d->s->keep = 0;
	}
}

void px_dconn_free_all(struct engine *e)
{
	if (!e->dconns)
		return;
	while (e->dconns->next != e->dconns)
		d_close(e->dconns->next);
	free(e->dconns);
	e->dconns = NULL;
}
