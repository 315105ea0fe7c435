/*
 * grpc_client.c - gRPC's HTTP/2 mapping for one streaming call, on nghttp2
 * (see grpc_client.h).  nghttp2 does the framing, HPACK and flow control;
 * this file adds the gRPC layer (message prefixes, the cap, trailers,
 * status mapping) and, below it, a non-blocking socket on the loop.
 *
 * nghttp2 is driven in memory (nghttp2_session_mem_recv / mem_send), never
 * with its own I/O callbacks, so the protocol layer is testable with no
 * socket and the socket layer owns every syscall.  nghttp2 forbids
 * mem_send from inside its callbacks, so a message queued while a received
 * one is being handled is written from a deferred call.
 */
#include "dataplane/grpc_client.h"

#include "dataplane/tls.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCOPE "grpc"
#define GRPC_STREAM_WINDOW (1 << 20)    /* per-stream receive window we offer */
#define GRPC_CONN_WINDOW (16 << 20)     /* connection receive window */
#define GRPC_MAX_HEADER_LIST (16 << 10) /* response headers/trailers we accept */
#define GRPC_OUT_MAX (1u << 20)         /* bytes between nghttp2 and the socket */
#define GRPC_READ_CHUNK (64 * 1024)

struct grpc_conn {
	nghttp2_session *s;
	struct grpc_limits lim;
	int32_t sid;       /* the call's stream, 0 before it starts */
	int call_closed;   /* on_close has run (or the call was cancelled) */
	int broken;        /* the connection is unusable */
	int goaway;
	struct grpc_call_cbs cbs;
	void *ctx;
	/* output: framed messages waiting for nghttp2's data provider */
	struct mesh_buf sendq;
	size_t sendq_off;
	int deferred; /* the data provider said "nothing now" */
	int half_close; /* grpc_call_close_send(): END_STREAM once the queue is sent (a unary call) */
	/* a chunk mem_send produced that did not fit the caller's buffer */
	const uint8_t *pend;
	size_t pend_len;
	/* input: the message being reassembled */
	uint8_t hdr[5];
	size_t hdr_len;
	uint32_t need;
	struct mesh_buf msg;
	/* response metadata */
	int http_status;
	int grpc_status; /* -1 until the trailers say */
	char grpc_msg[GRPC_MAX_STATUS_MSG];
	unsigned pings;
	char conn_error[96]; /* nghttp2's reason for a connection error */
	const char *auth;    /* the call's authorization header (grpc_conn_set_authorization), not owned */
	int tls;             /* :scheme https */
};

/* ------------------------------------------------------------------ */
/* the call's end */

static void call_end(struct grpc_conn *c, int status, const char *msg)
{
	if (c->call_closed)
		return;
	c->call_closed = 1;
	if (c->cbs.on_close)
		c->cbs.on_close(c->ctx, status, msg ? msg : "");
}

/* Ends the call for a local reason and resets its stream. */
static void call_fail(struct grpc_conn *c, int status, const char *msg)
{
	if (c->sid > 0 && !c->call_closed)
		(void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, c->sid, NGHTTP2_CANCEL);
	call_end(c, status, msg);
}

/* gRPC's mapping of an HTTP status when no grpc-status came (doc/http-grpc-status-mapping.md). */
static int status_from_http(int http)
{
	switch (http) {
	case 400: return GRPC_STATUS_INTERNAL;
	case 401: return 16; /* UNAUTHENTICATED */
	case 403: return 7;  /* PERMISSION_DENIED */
	case 404: return GRPC_STATUS_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504: return GRPC_STATUS_UNAVAILABLE;
	default: return GRPC_STATUS_UNKNOWN;
	}
}

/* grpc-message is percent-encoded (gRPC's HTTP/2 spec); decode into dst. */
static void pct_decode(char *dst, size_t cap, const uint8_t *v, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 1 < cap; i++) {
		if (v[i] == '%' && i + 2 < len) {
			char hex[3] = { (char)v[i + 1], (char)v[i + 2], 0 };
			char *end;
			long x = strtol(hex, &end, 16);
			if (*end == '\0') {
				dst[o++] = (char)x;
				i += 2;
				continue;
			}
		}
		dst[o++] = (char)v[i];
	}
	dst[o] = '\0';
}

/* ------------------------------------------------------------------ */
/* nghttp2 callbacks */

static ssize_t data_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
			    nghttp2_data_source *src, void *ud)
{
	struct grpc_conn *c = ud;
	size_t avail = c->sendq.len - c->sendq_off;

	(void)s;
	(void)sid;
	(void)src;
	if (!avail) {
		if (c->half_close) {
			/* a unary call (grpc_call_close_send): END_STREAM */
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		c->deferred = 1;
		return NGHTTP2_ERR_DEFERRED; /* the request stays open: a bidi stream */
	}
	if (length > avail)
		length = avail;
	memcpy(buf, c->sendq.data + c->sendq_off, length);
	c->sendq_off += length;
	if (c->sendq_off == c->sendq.len) {
		mesh_buf_reset(&c->sendq);
		c->sendq_off = 0;
		if (c->half_close)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)length;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct grpc_conn *c = ud;

	(void)s;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != c->sid)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		c->http_status = 0;
		for (size_t i = 0; i < valuelen && i < 3; i++)
			c->http_status = c->http_status * 10 + (value[i] - '0');
	} else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int v = 0;
		size_t i;

		for (i = 0; i < valuelen && i < 4 && value[i] >= '0' && value[i] <= '9'; i++)
			v = v * 10 + (value[i] - '0');
		c->grpc_status = (i == valuelen && i > 0) ? v : GRPC_STATUS_UNKNOWN;
	} else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		pct_decode(c->grpc_msg, sizeof(c->grpc_msg), value, valuelen);
	}
	return 0;
}

/* After a reassembled message was handled: a large buffer (a whole
 * configuration, up to max_recv_msg) is freed rather than kept for the
 * next message, and the pages it and its handling (the previous compiled
 * configuration) freed are returned to the kernel: glibc gives back only
 * the top of the heap by itself, malloc_trim also the free pages inside
 * it.  An idle proxy's RSS is what it holds, not its largest update
 * (DESIGN.md: <= 10 MB with 1,000 clusters). */
#define GRPC_MSG_KEEP (64 * 1024)
static void grpc_msg_release(struct grpc_conn *c)
{
	size_t max = c->msg.max;

	if (c->msg.cap <= GRPC_MSG_KEEP) {
		mesh_buf_reset(&c->msg);
		return;
	}
	mesh_buf_cleanup(&c->msg);
	mesh_buf_init(&c->msg, max);
	malloc_trim(0);
}

/* One whole message arrived. */
static void deliver(struct grpc_conn *c, const uint8_t *p, size_t len)
{
	if (c->cbs.on_message && !c->call_closed)
		c->cbs.on_message(c->ctx, p, len);
}

static int data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
	struct grpc_conn *c = ud;
	char why[128];

	(void)s;
	(void)flags;
	if (sid != c->sid || c->call_closed)
		return 0;
	while (len > 0) {
		size_t take;

		if (c->hdr_len < 5) {
			take = 5 - c->hdr_len < len ? 5 - c->hdr_len : len;
			memcpy(c->hdr + c->hdr_len, data, take);
			c->hdr_len += take;
			data += take;
			len -= take;
			if (c->hdr_len < 5)
				break;
			if (c->hdr[0] != 0) {
				/* we never send grpc-accept-encoding, so nothing may be compressed */
				call_fail(c, GRPC_STATUS_INTERNAL, "compressed message without an accepted encoding");
				return 0;
			}
			c->need = (uint32_t)c->hdr[1] << 24 | (uint32_t)c->hdr[2] << 16 | (uint32_t)c->hdr[3] << 8 |
				  c->hdr[4];
			if (c->need > c->lim.max_recv_msg) {
				snprintf(why, sizeof(why), "received message larger than max (%u vs. %zu)", c->need,
					 c->lim.max_recv_msg);
				call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, why);
				return 0;
			}
			mesh_buf_reset(&c->msg);
			c->msg.err = 0;
			if (c->need == 0) {
				c->hdr_len = 0;
				deliver(c, (const uint8_t *)"", 0);
			}
			continue;
		}
		take = c->need - c->msg.len < len ? c->need - c->msg.len : len;
		if (c->msg.len == 0 && take == c->need) {
			/* the whole message in one chunk: no copy */
			c->hdr_len = 0;
			deliver(c, data, take);
		} else {
			if (mesh_buf_append(&c->msg, data, take) < 0) {
				call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for a message");
				return 0;
			}
			if (c->msg.len == c->need) {
				c->hdr_len = 0;
				deliver(c, (const uint8_t *)c->msg.data, c->msg.len);
				grpc_msg_release(c);
			}
		}
		data += take;
		len -= take;
	}
	return 0;
}

static int frame_recv_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct grpc_conn *c = ud;
	char why[GRPC_MAX_STATUS_MSG + 64];

	(void)s;
	switch (f->hd.type) {
	case NGHTTP2_PING:
		if ((f->hd.flags & NGHTTP2_FLAG_ACK) && c->pings > 0)
			c->pings--;
		break;
	case NGHTTP2_GOAWAY:
		c->goaway = 1;
		log_debug(SCOPE, "GOAWAY (last stream %d, error %u)", f->goaway.last_stream_id, f->goaway.error_code);
		if (c->sid > f->goaway.last_stream_id) {
			snprintf(why, sizeof(why), "GOAWAY: %s", nghttp2_http2_strerror(f->goaway.error_code));
			call_end(c, GRPC_STATUS_UNAVAILABLE, why);
		}
		break;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		if (f->hd.stream_id != c->sid || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			break;
		if (c->hdr_len != 0) {
			call_end(c, GRPC_STATUS_INTERNAL, "stream ended inside a message");
		} else if (f->hd.type == NGHTTP2_DATA) {
			call_end(c, GRPC_STATUS_INTERNAL, "stream ended without trailers");
		} else if (c->grpc_status >= 0) {
			call_end(c, c->grpc_status, c->grpc_msg);
		} else {
			snprintf(why, sizeof(why), "HTTP status %d without grpc-status", c->http_status);
			call_end(c, c->http_status == 200 ? GRPC_STATUS_UNKNOWN : status_from_http(c->http_status), why);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int stream_close_cb(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
	struct grpc_conn *c = ud;
	char why[128];

	(void)s;
	if (sid != c->sid || c->call_closed)
		return 0;
	snprintf(why, sizeof(why), "stream reset: %s", nghttp2_http2_strerror(error_code));
	call_end(c, error_code == NGHTTP2_CANCEL ? GRPC_STATUS_CANCELLED : GRPC_STATUS_UNAVAILABLE, why);
	return 0;
}

static int error_cb(nghttp2_session *s, int lib_error_code, const char *msg, size_t len, void *ud)
{
	struct grpc_conn *c = ud;

	(void)s;
	(void)lib_error_code;
	if (!c->conn_error[0])
		snprintf(c->conn_error, sizeof(c->conn_error), "%.*s", (int)len, msg);
	return 0;
}

/* ------------------------------------------------------------------ */
/* grpc_conn */

int grpc_conn_new(const struct grpc_limits *lim, struct grpc_conn **out)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	struct grpc_conn *c;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GRPC_MAX_HEADER_LIST },
	};
	int rc = -ENOMEM;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->lim.max_recv_msg = lim && lim->max_recv_msg ? lim->max_recv_msg : GRPC_MAX_RECV_MSG_DEFAULT;
	c->lim.max_send_queue = lim && lim->max_send_queue ? lim->max_send_queue : GRPC_MAX_SEND_QUEUE_DEFAULT;
	c->grpc_status = -1;
	mesh_buf_init(&c->sendq, c->lim.max_send_queue);
	mesh_buf_init(&c->msg, c->lim.max_recv_msg + 1);
	if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_session_callbacks_set_on_header_callback(cb, header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_chunk_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, frame_recv_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, stream_close_cb);
	nghttp2_session_callbacks_set_error_callback2(cb, error_cb);
	/* our requests' header blocks are small; the peer's are capped by nghttp2's inflater (64 KiB) */
	nghttp2_option_set_max_send_header_block_length(opt, GRPC_MAX_HEADER_LIST);
	if (nghttp2_session_client_new2(&c->s, cb, c, opt) != 0)
		goto out;
	if (nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, GRPC_CONN_WINDOW) != 0)
		goto out;
	rc = 0;
	*out = c;
out:
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc < 0)
		grpc_conn_free(c);
	return rc;
}

void grpc_conn_free(struct grpc_conn *c)
{
	if (!c)
		return;
	nghttp2_session_del(c->s);
	mesh_buf_cleanup(&c->sendq);
	mesh_buf_cleanup(&c->msg);
	free(c);
}

void grpc_conn_set_authorization(struct grpc_conn *c, const char *value, int tls)
{
	c->auth = value;
	c->tls = tls;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

int grpc_call_start(struct grpc_conn *c, const char *authority, const char *path, const struct grpc_call_cbs *cbs,
		    void *ctx)
{
	nghttp2_data_provider dp;
	nghttp2_nv nv[] = {
		NV(":method", "POST"),
		NV(":scheme", "http"),
		NV(":path", path),
		NV(":authority", authority),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("user-agent", "meshproxy-grpc"),
		NV("authorization", c->auth ? c->auth : ""),
	};
	size_t nnv = sizeof(nv) / sizeof(nv[0]) - (c->auth ? 0 : 1);
	int32_t sid;

	if (c->sid)
		return -EBUSY;
	c->cbs = *cbs;
	c->ctx = ctx;
	dp.source.ptr = c;
	dp.read_callback = data_read_cb;
	if (c->tls)
		nv[1].value = (uint8_t *)"https", nv[1].valuelen = 5;
	sid = nghttp2_submit_request(c->s, NULL, nv, nnv, &dp, c);
	if (sid < 0)
		return sid == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
	c->sid = sid;
	return 0;
}

int grpc_call_send(struct grpc_conn *c, const void *msg, size_t len)
{
	uint8_t h[5];

	if (!c->sid || c->call_closed || c->broken || c->half_close)
		return -EPIPE;
	if (len > UINT32_MAX || c->sendq.len + 5 + len > c->sendq.max)
		return -MESH_ETOOBIG;
	h[0] = 0;
	h[1] = (uint8_t)(len >> 24);
	h[2] = (uint8_t)(len >> 16);
	h[3] = (uint8_t)(len >> 8);
	h[4] = (uint8_t)len;
	if (mesh_buf_append(&c->sendq, h, 5) < 0 || mesh_buf_append(&c->sendq, msg, len) < 0) {
		c->sendq.err = 0;
		return -ENOMEM;
	}
	if (c->deferred) {
		c->deferred = 0;
		(void)nghttp2_session_resume_data(c->s, c->sid);
	}
	return 0;
}

int grpc_call_close_send(struct grpc_conn *c)
{
	if (!c->sid || c->call_closed || c->broken)
		return -EPIPE;
	c->half_close = 1;
	if (c->deferred) {
		c->deferred = 0;
		(void)nghttp2_session_resume_data(c->s, c->sid);
	}
	return 0;
}

void grpc_call_cancel(struct grpc_conn *c)
{
	if (c->sid > 0 && !c->call_closed) {
		c->call_closed = 1;
		(void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, c->sid, NGHTTP2_CANCEL);
	}
}

int grpc_conn_recv(struct grpc_conn *c, const uint8_t *data, size_t len)
{
	ssize_t n;
	char why[128];

	if (c->broken)
		return -EPIPE;
	n = nghttp2_session_mem_recv(c->s, data, len);
	if (n < 0) {
		c->broken = 1;
		snprintf(why, sizeof(why), "HTTP/2: %s", nghttp2_strerror((int)n));
		call_end(c, GRPC_STATUS_INTERNAL, why);
		return -EPROTO;
	}
	if (c->conn_error[0]) {
		/* nghttp2 terminated the session (a connection error: it has
		 * queued GOAWAY and reads no more) */
		c->broken = 1;
		snprintf(why, sizeof(why), "HTTP/2 connection error: %s", c->conn_error);
		call_end(c, GRPC_STATUS_INTERNAL, why);
		return -EPROTO;
	}
	return 0;
}

int grpc_conn_flush(struct grpc_conn *c, struct mesh_buf *out)
{
	for (;;) {
		size_t room = out->max > out->len ? out->max - out->len - 1 : 0;
		size_t take;

		if (!c->pend_len) {
			ssize_t n = nghttp2_session_mem_send(c->s, &c->pend);
			if (n < 0) {
				c->broken = 1;
				call_end(c, GRPC_STATUS_INTERNAL, nghttp2_strerror((int)n));
				return -EPROTO;
			}
			if (n == 0)
				return 0;
			c->pend_len = (size_t)n;
		}
		take = c->pend_len < room ? c->pend_len : room;
		if (!take)
			return 0;
		if (mesh_buf_append(out, c->pend, take) < 0) {
			out->err = 0;
			return -ENOMEM;
		}
		c->pend += take;
		c->pend_len -= take;
	}
}

int grpc_conn_want_write(const struct grpc_conn *c)
{
	return c->pend_len > 0 || nghttp2_session_want_write(c->s);
}

int grpc_conn_done(const struct grpc_conn *c)
{
	if (c->broken)
		return 1;
	if (!nghttp2_session_want_read(c->s) && !grpc_conn_want_write(c))
		return 1;
	return c->call_closed && (c->goaway || !grpc_conn_want_write(c));
}

int grpc_conn_ping(struct grpc_conn *c)
{
	if (nghttp2_submit_ping(c->s, NGHTTP2_FLAG_NONE, NULL) != 0)
		return -ENOMEM;
	c->pings++;
	return 0;
}

unsigned grpc_conn_pings_unanswered(const struct grpc_conn *c)
{
	return c->pings;
}

/* ------------------------------------------------------------------ */
/* transports */

static ssize_t plain_read(int fd, void *buf, size_t len)
{
	return recv(fd, buf, len, 0);
}

static ssize_t plain_write(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL);
}

const struct grpc_transport_ops grpc_transport_plain = { "plaintext", plain_read, plain_write };

/* ------------------------------------------------------------------ */
/* grpc_client: the protocol on a socket */

struct grpc_client {
	struct ev_loop *loop;
	struct ev_io io;
	struct ev_timer ka;      /* keepalive */
	struct ev_timer cto;     /* connect timeout */
	struct ev_defer pump;    /* write what callbacks queued */
	int fd;
	int connected;
	int ka_waiting;          /* a keepalive PING is out */
	int closed;              /* reported to the owner; no more I/O */
	struct grpc_conn *conn;
	const struct grpc_transport_ops *tr;
	struct px_tls *tls;      /* opts.tls: the connection's TLS, made once TCP is up */
	int tls_done;            /* its handshake finished */
	int counted;             /* in opts.stats' cx_active / rq_active */
	struct grpc_client_opts opts;
	struct grpc_call_cbs cbs;
	void *ctx;
	struct mesh_buf out;
	size_t out_off;
};

/* Reads and writes through TLS when the client has it, else through the
 * plaintext ops; both return recv(2)-style (-1 with errno). */
static ssize_t client_read(struct grpc_client *g, void *buf, size_t len)
{
	ssize_t n;

	if (!g->tls) {
		n = g->tr->read(g->fd, buf, len);
	} else {
		n = px_transport_tls.read(g->tls, g->fd, buf, len);
		if (n < 0) {
			errno = (int)-n;
			return -1;
		}
	}
	if (n > 0 && g->opts.stats)
		g->opts.stats->cx_rx_bytes += (uint64_t)n;
	return n;
}

static ssize_t client_write(struct grpc_client *g, const void *buf, size_t len)
{
	ssize_t n;

	if (!g->tls) {
		n = g->tr->write(g->fd, buf, len);
	} else {
		n = px_transport_tls.write(g->tls, g->fd, buf, len);
		if (n < 0) {
			errno = (int)-n;
			return -1;
		}
	}
	if (n > 0 && g->opts.stats)
		g->opts.stats->cx_tx_bytes += (uint64_t)n;
	return n;
}

/* The connection leaves opts.stats' active gauges, once; closed before
 * TCP (and TLS) were up, it is a connect failure as Envoy counts one. */
static void client_uncount(struct grpc_client *g)
{
	struct grpc_client_stats *st = g->opts.stats;

	if (!st || !g->counted)
		return;
	g->counted = 0;
	st->cx_active--;
	st->rq_active--;
	if (!g->connected || (g->opts.tls && !g->tls_done))
		st->cx_connect_fail++;
}

/* The call's end, from the conn or from the socket: tell the owner once,
 * then go quiet (the owner frees us later). */
static void client_on_close(void *ctx, int status, const char *msg)
{
	struct grpc_client *g = ctx;

	if (g->closed)
		return;
	g->closed = 1;
	client_uncount(g);
	ev_io_stop(g->loop, &g->io);
	ev_timer_cancel(g->loop, &g->ka);
	ev_timer_cancel(g->loop, &g->cto);
	ev_defer_cancel(g->loop, &g->pump);
	if (g->cbs.on_close)
		g->cbs.on_close(g->ctx, status, msg);
}

static void client_on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct grpc_client *g = ctx;

	if (!g->closed && g->cbs.on_message)
		g->cbs.on_message(g->ctx, msg, len);
}

static void client_fail(struct grpc_client *g, const char *what, int err)
{
	char why[160];

	if (err)
		snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
	else
		snprintf(why, sizeof(why), "%s", what);
	/* the conn may still think the call is open: close it quietly, report here */
	g->conn->call_closed = 1;
	client_on_close(g, GRPC_STATUS_UNAVAILABLE, why);
}

/* Moves bytes from the conn to the socket and sets the interest. */
static void client_pump(struct grpc_client *g)
{
	unsigned mask = EV_READ;
	ssize_t n;

	if (g->closed || !g->connected || (g->tls && !g->tls_done))
		return;
	for (;;) {
		if (grpc_conn_flush(g->conn, &g->out) < 0) {
			client_fail(g, "HTTP/2 output", 0);
			return;
		}
		if (g->out_off == g->out.len)
			break;
		n = client_write(g, g->out.data + g->out_off, g->out.len - g->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_fail(g, "write", n < 0 ? errno : EPIPE);
			return;
		}
		g->out_off += (size_t)n;
		if (g->out_off == g->out.len) {
			mesh_buf_reset(&g->out);
			g->out_off = 0;
		}
	}
	if (g->out_off < g->out.len || grpc_conn_want_write(g->conn))
		mask |= EV_WRITE;
	if (grpc_conn_done(g->conn) && g->out_off == g->out.len) {
		/* the conn ended the call already (or will say so): make sure the owner hears */
		client_fail(g, g->conn->goaway ? "connection closed by GOAWAY" : "HTTP/2 session over", 0);
		return;
	}
	if (ev_io_set(g->loop, &g->io, mask) < 0)
		client_fail(g, "event loop", ENOMEM);
}

static void client_io(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct grpc_client *g = io->data;
	uint8_t buf[GRPC_READ_CHUNK];
	ssize_t n;
	int i;

	(void)loop;
	if (!g->connected) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			client_fail(g, "connect", err);
			return;
		}
		g->connected = 1;
		if (g->opts.tls && px_tls_new(g->opts.tls, g->fd, g->opts.tls_sni, &g->tls) < 0) {
			client_fail(g, "TLS", ENOMEM);
			return;
		}
		if (!g->tls) {
			ev_timer_cancel(g->loop, &g->cto);
			if (g->opts.keepalive_ms)
				ev_timer_arm(g->loop, &g->ka, g->opts.keepalive_ms);
			client_pump(g);
			return;
		}
	}
	if (g->tls && !g->tls_done) {
		/* the handshake runs under the connect timeout */
		int rc = px_tls_handshake(g->tls);

		if (rc == -EAGAIN) {
			if (ev_io_set(g->loop, &g->io, px_tls_want(g->tls)) < 0)
				client_fail(g, "event loop", ENOMEM);
			return;
		}
		if (rc < 0) {
			char why[120];

			snprintf(why, sizeof(why), "TLS handshake: %.100s", px_tls_error(g->tls));
			client_fail(g, why, 0);
			return;
		}
		g->tls_done = 1;
		ev_timer_cancel(g->loop, &g->cto);
		if (g->opts.keepalive_ms)
			ev_timer_arm(g->loop, &g->ka, g->opts.keepalive_ms);
		client_pump(g);
		return;
	}
	if (events & (EV_READ | EV_ERROR)) {
		/* a few reads per wake-up: level-triggered, so the rest comes next iteration */
		for (i = 0; i < 4 && !g->closed; i++) {
			n = client_read(g, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				client_fail(g, n == 0 ? "connection closed by peer" : "read", n == 0 ? 0 : errno);
				return;
			}
			if (grpc_conn_recv(g->conn, buf, (size_t)n) < 0) {
				client_fail(g, "HTTP/2 protocol error", 0);
				return;
			}
		}
	}
	client_pump(g);
}

static void client_pump_cb(struct ev_loop *loop, struct ev_defer *d)
{
	(void)loop;
	client_pump(d->data);
}

static void client_ka(struct ev_loop *loop, struct ev_timer *t)
{
	struct grpc_client *g = t->data;

	if (g->ka_waiting) {
		if (grpc_conn_pings_unanswered(g->conn)) {
			client_fail(g, "keepalive PING not answered", 0);
			return;
		}
		g->ka_waiting = 0;
		ev_timer_arm(loop, &g->ka, g->opts.keepalive_ms);
		return;
	}
	if (grpc_conn_ping(g->conn) < 0) {
		client_fail(g, "keepalive", ENOMEM);
		return;
	}
	g->ka_waiting = 1;
	ev_timer_arm(loop, &g->ka, g->opts.keepalive_timeout_ms ? g->opts.keepalive_timeout_ms : 20000);
	client_pump(g);
}

static void client_cto(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	client_fail(t->data, "connect", ETIMEDOUT);
}

/* A connect that failed at once is reported from the loop, like any other. */
static void client_early_fail(struct ev_loop *loop, struct ev_defer *d)
{
	struct grpc_client *g = d->data;

	(void)loop;
	ev_defer_init(&g->pump, client_pump_cb, g);
	client_fail(g, "connect", g->fd >= 0 ? ECONNREFUSED : EBADF);
}

int grpc_client_new(struct ev_loop *loop, const struct sockaddr *sa, socklen_t salen, const char *authority,
		    const char *path, const struct grpc_client_opts *opts, const struct grpc_call_cbs *cbs, void *ctx,
		    struct grpc_client **out)
{
	static const struct grpc_call_cbs wrap = { client_on_message, client_on_close };
	struct grpc_client *g;
	int rc, one = 1, early = 0;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->loop = loop;
	g->fd = -1;
	if (opts)
		g->opts = *opts;
	g->tr = g->opts.transport ? g->opts.transport : &grpc_transport_plain;
	g->cbs = *cbs;
	g->ctx = ctx;
	mesh_buf_init(&g->out, GRPC_OUT_MAX);
	ev_timer_init(&g->ka, client_ka, g);
	ev_timer_init(&g->cto, client_cto, g);
	ev_defer_init(&g->pump, client_pump_cb, g);
	rc = grpc_conn_new(&g->opts.limits, &g->conn);
	if (rc < 0)
		goto out;
	grpc_conn_set_authorization(g->conn, g->opts.authorization, g->opts.tls != NULL);
	rc = grpc_call_start(g->conn, authority, path, &wrap, g);
	if (rc < 0)
		goto out;
	g->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g->fd < 0) {
		rc = -errno;
		goto out;
	}
	if (g->opts.stats) {
		g->opts.stats->cx_total++;
		g->opts.stats->cx_active++;
		g->opts.stats->rq_total++;
		g->opts.stats->rq_active++;
		g->counted = 1;
	}
	(void)setsockopt(g->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* TCP keepalive as Istio sets on the xds cluster: a silent peer is found without PINGs */
	(void)setsockopt(g->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (connect(g->fd, sa, salen) < 0 && errno != EINPROGRESS) {
		if (errno != ECONNREFUSED && errno != ENETUNREACH && errno != EHOSTUNREACH) {
			rc = -errno;
			goto out;
		}
		early = 1;
	}
	ev_io_init(&g->io, g->fd, client_io, g);
	if (early) {
		ev_defer_init(&g->pump, client_early_fail, g);
		ev_defer(loop, &g->pump);
	} else {
		rc = ev_io_start(loop, &g->io, EV_WRITE);
		if (rc < 0)
			goto out;
		if (g->opts.connect_timeout_ms)
			ev_timer_arm(loop, &g->cto, g->opts.connect_timeout_ms);
	}
	rc = 0;
	*out = g;
out:
	if (rc < 0)
		grpc_client_free(g);
	return rc;
}

int grpc_client_send(struct grpc_client *g, const void *msg, size_t len)
{
	int rc;

	if (g->closed)
		return -EPIPE;
	rc = grpc_call_send(g->conn, msg, len);
	if (rc == 0 && g->connected)
		ev_defer(g->loop, &g->pump);
	return rc;
}

int grpc_client_close_send(struct grpc_client *g)
{
	int rc;

	if (g->closed)
		return -EPIPE;
	rc = grpc_call_close_send(g->conn);
	if (rc == 0 && g->connected)
		ev_defer(g->loop, &g->pump);
	return rc;
}

int grpc_client_connected(const struct grpc_client *g)
{
	return g->connected && !g->closed;
}

void grpc_client_free(struct grpc_client *g)
{
	if (!g)
		return;
	client_uncount(g);
	ev_io_stop(g->loop, &g->io);
	ev_timer_cancel(g->loop, &g->ka);
	ev_timer_cancel(g->loop, &g->cto);
	ev_defer_cancel(g->loop, &g->pump);
	px_tls_free(g->tls);
	if (g->fd >= 0)
		close(g->fd);
	grpc_conn_free(g->conn);
	mesh_buf_cleanup(&g->out);
	free(g);
}
