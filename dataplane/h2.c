/*
 * h2.c - HTTP/2 on both sides of meshproxy with nghttp2 (see h2.h for how
 * it meets proxy.c: each HTTP/2 stream is one HTTP/1.1 exchange over a
 * socketpair, so the stream logic of proxy.c serves both codecs).
 *
 * Downstream (px_h2d_*): a server session per connection.  A request
 * stream's HEADERS become an HTTP/1.1 head (":authority" as Host, a body
 * without content-length chunked) written into the stream's socketpair;
 * DATA follows as body; the window is re-opened (nghttp2_session_consume)
 * only once those bytes were written, so a client can never have more than
 * PX_H2_WINDOW buffered per stream and PX_H2_CONN_WINDOW per connection.
 * The HTTP/1.1 response read back becomes HEADERS, DATA and, from a chunked
 * body's trailer section, trailing HEADERS (grpc-status, grpc-message).  A
 * gRPC request answered by something other than a gRPC response (a local
 * reply: 503 no healthy upstream, 404 no route, 403 RBAC) is answered as
 * Envoy does: HTTP 200, grpc-status from the HTTP status
 * (Grpc::Utility::httpToGrpcStatus), grpc-message the body.
 *
 * Upstream (px_h2u_*): a client session per connection to a host, shared
 * by the streams proxy.c opens on it (px_h2u_open), up to the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS and the cluster's
 * max_requests_per_connection; the response is written back as HTTP/1.1
 * with a chunked body whose trailers carry the HTTP/2 trailers (or, for a
 * trailers-only response, grpc-status in the head, which is where the
 * retry policy's retriable-status-codes / grpc retry_on look).
 *
 * Lifetimes: a session never frees itself inside an nghttp2 callback; it
 * is looked at again by a deferred pump (ev_defer), which flushes frames
 * and closes it once nghttp2 wants neither to read nor to write.
 */
#include "dataplane/h2.h"

#include "common/buf.h"
#include "common/log.h"
#include "dataplane/engine-t.h"
#include "dataplane/http1.h"
#include "dataplane/mtls.h"
#include "dataplane/tls.h"

#include <ctype.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define H2_IN_CHUNK (16 * 1024)
#define H2_READS_PER_CB 4
#define H2_PIPE_IN_MAX (H1_DEFAULT_MAX_HEAD_BYTES + 8192) /* HTTP/1.1 bytes read from a stream's pipe */
#define H2_GRPC_MSG_MAX 1024        /* a local reply's body kept as grpc-message */
#define H2_NV_MAX (H1_DEFAULT_MAX_HEADERS + 8)
/* How long a session that was told to close (idle, or too many streams
 * cut) may take to flush its GOAWAY to a client that does not read. */
#define H2D_CLOSE_GRACE_MS 5000

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int px_h2_preface(const char *p, size_t len)
{
	size_t n = sizeof(h2_preface) - 1;

	if (len >= n)
		return memcmp(p, h2_preface, n) ? -1 : 1;
	return memcmp(p, h2_preface, len) ? -1 : 0;
}

int px_h2_cluster_wants(const struct px_cluster *cl, int down_h2)
{
	if (!cl || !cl->up)
		return 0;
	return cl->up->http2 || (down_h2 && cl->up->http2_downstream);
}

int64_t px_grpc_timeout_ms(const char *v, size_t len)
{
	uint64_t n = 0;
	size_t i;

	if (len < 2 || len > 9)
		return -1;
	for (i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	switch (v[len - 1]) {
	case 'H':
		return (int64_t)(n * 3600000);
	case 'M':
		return (int64_t)(n * 60000);
	case 'S':
		return (int64_t)(n * 1000);
	case 'm':
		return (int64_t)n;
	case 'u':
		return (int64_t)((n + 999) / 1000);
	case 'n':
		return (int64_t)((n + 999999) / 1000000);
	default:
		return -1;
	}
}

/* --- shared helpers */

/* A socketpair for one stream: sv[0] ours, sv[1] proxy.c's; both non-blocking. */
static int pipe_open(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	return 0;
}

/* Envoy's Grpc::Utility::httpToGrpcStatus. */
static int grpc_status_of_http(int status)
{
	switch (status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

static int is_grpc_ct(const uint8_t *v, size_t len)
{
	return len >= 16 && !strncasecmp((const char *)v, "application/grpc", 16);
}

/* Hop-by-hop fields (RFC 9113 §8.2.2): never on an HTTP/2 message. */
static int h1_field_is_hop(const struct h1_header *f)
{
	unsigned id = f->flags & H1_HF_ID_MASK;

	return (f->flags & H1_HF_HOP) || id == H1_H_CONNECTION || id == H1_H_KEEP_ALIVE ||
	       id == H1_H_PROXY_CONNECTION || id == H1_H_TRANSFER_ENCODING || id == H1_H_TE || id == H1_H_UPGRADE;
}

/* RFC 9110 §5.6.2 tchar: what a field name is made of. */
static int is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What nv_fields() leaves out besides hop-by-hop fields. */
#define NV_SKIP_HOST 0x1u     /* Host: :authority carries it */
#define NV_SKIP_CL 0x2u       /* content-length: a 204 has none (RFC 9110 §8.6), HTTP/2 peers reject it */
#define NV_TRAILERS 0x4u      /* a trailer section: no framing or routing fields (RFC 9110 §6.5.1) */

/* 1 when HTTP/1.1 field f may go out on HTTP/2: a token name (a trailer
 * section is split without the head's checks: a line ":status: 500" has
 * an empty name), not hop-by-hop, not one flags leave out. */
static int nv_field_ok(const struct h1_header *f, unsigned flags)
{
	unsigned id = f->flags & H1_HF_ID_MASK;
	size_t k;

	if (!f->name.len || h1_field_is_hop(f))
		return 0;
	for (k = 0; k < f->name.len; k++)
		if (!is_tchar((unsigned char)f->name.p[k]))
			return 0;
	if ((flags & NV_SKIP_HOST) && id == H1_H_HOST)
		return 0;
	if ((flags & (NV_SKIP_CL | NV_TRAILERS)) && id == H1_H_CONTENT_LENGTH)
		return 0;
	return !((flags & NV_TRAILERS) && id == H1_H_HOST);
}

/*
 * nv[] from HTTP/1.1 fields, names lowercased into scratch (sized once, so
 * the pointers stay valid): the caller puts its pseudo-headers in nv[0..at)
 * first.  flags: NV_*.  Returns the new count.
 */
static size_t nv_fields(nghttp2_nv *nv, size_t at, size_t cap, const struct h1_header *f, size_t n, char **scratch,
			unsigned flags)
{
	size_t i, need = 0, off = 0;
	char *s;

	for (i = 0; i < n; i++)
		need += f[i].name.len;
	s = malloc(need + 1);
	*scratch = s;
	if (!s)
		return at;
	for (i = 0; i < n && at < cap; i++) {
		size_t k;

		if (!nv_field_ok(&f[i], flags))
			continue;
		for (k = 0; k < f[i].name.len; k++)
			s[off + k] = (char)tolower((unsigned char)f[i].name.p[k]);
		nv[at].name = (uint8_t *)s + off;
		nv[at].namelen = f[i].name.len;
		nv[at].value = (uint8_t *)f[i].value.p;
		nv[at].valuelen = f[i].value.len;
		nv[at].flags = NGHTTP2_NV_FLAG_NONE;
		off += f[i].name.len;
		at++;
	}
	return at;
}

static nghttp2_nv nv_make(const char *name, const char *value, size_t vlen)
{
	nghttp2_nv nv = { (uint8_t *)name, (uint8_t *)value, strlen(name), vlen, NGHTTP2_NV_FLAG_NONE };

	return nv;
}

/* Grows a plain input buffer to take at least H2_IN_CHUNK more bytes, up to max. */
static int in_room(char **p, size_t *len, size_t *cap, size_t max)
{
	size_t nc;
	char *np;

	if (*cap - *len >= 1024 || *cap >= max)
		return *cap > *len;
	nc = *cap ? *cap * 2 : H2_IN_CHUNK;
	if (nc > max)
		nc = max;
	np = realloc(*p, nc);
	if (!np)
		return 0;
	*p = np;
	*cap = nc;
	return 1;
}

static void in_drop(char *p, size_t *len, size_t used)
{
	memmove(p, p + used, *len - used);
	*len -= used;
}

static ssize_t fd_write(int fd, const void *p, size_t len)
{
	ssize_t n;

	do
		n = send(fd, p, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t fd_read(int fd, void *p, size_t len)
{
	ssize_t n;

	do
		n = read(fd, p, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Write b from *off to the stream's pipe (both sides hand HTTP/1.1 bytes to
 * proxy.c this way).  Returns 0 when all is written, -EAGAIN when bytes
 * remain, -EPIPE when proxy.c closed its end (the rest is dropped); on 0 and
 * -EPIPE b is reset and *off is 0. */
static int pipe_flush(int fd, struct mesh_buf *b, size_t *off)
{
	int rc = 0;

	while (*off < b->len) {
		ssize_t n = fd_write(fd, b->data + *off, b->len - *off);

		if (n == -EAGAIN)
			return -EAGAIN;
		if (n < 0) {
			rc = -EPIPE;
			break;
		}
		*off += (size_t)n;
	}
	mesh_buf_reset(b);
	*off = 0;
	return rc;
}

/* An nghttp2 DATA source's next bytes: up to len bytes of body from *off
 * into buf (the buffer reset once drained).  Returns the count, 0 when
 * nothing is buffered. */
static size_t body_take(struct mesh_buf *body, size_t *off, uint8_t *buf, size_t len)
{
	size_t have = body->len - *off;

	if (len > have)
		len = have;
	if (!len)
		return 0; /* body.data may be NULL */
	memcpy(buf, body->data + *off, len);
	*off += len;
	if (*off == body->len) {
		mesh_buf_reset(body);
		*off = 0;
	}
	return len;
}

/* What nghttp2 has to send, through the transport, while the output stays
 * under PX_H2_OUT_HIGH (both the server and the client session).  Returns
 * 0, or -EPROTO when the connection is dead (nghttp2 or the transport
 * failed; out is then dropped). */
static int session_flush(nghttp2_session *ng, const struct px_transport_ops *tops, void *tctx, int fd,
			 struct mesh_buf *out, size_t *out_off)
{
	int rc = 0;

	for (;;) {
		ssize_t n;

		while (out->len - *out_off < PX_H2_OUT_HIGH && nghttp2_session_want_write(ng)) {
			const uint8_t *p;

			n = nghttp2_session_mem_send(ng, &p);
			if (n < 0) {
				rc = -EPROTO;
				break;
			}
			if (n == 0)
				break;
			if (mesh_buf_append(out, p, (size_t)n) < 0) {
				rc = -EPROTO;
				break;
			}
		}
		/* what was serialized before a failure still goes out once (a GOAWAY) */
		if (*out_off == out->len)
			break;
		n = tops->write(tctx, fd, out->data + *out_off, out->len - *out_off);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			rc = -EPROTO;
			mesh_buf_reset(out);
			*out_off = 0;
			break;
		}
		*out_off += (size_t)n;
		if (*out_off == out->len) {
			mesh_buf_reset(out);
			*out_off = 0;
		}
		if (rc < 0)
			break;
	}
	return rc;
}

/* ======================================================================
 * Downstream: an HTTP/2 server session
 */

struct h2d_conn;

struct h2d_stream {
	struct h2d_conn *c;
	struct h2d_stream *next, *prev;
	int32_t id;
	int fd;                      /* our end of the socketpair; -1 before the head, after the end */
	struct ev_io io;
	/* request: built from HEADERS, then body bytes, written to fd */
	struct mesh_buf method, path, auth, fields, cookie;
	size_t hdr_bytes;            /* header block size so far (PX_H2_MAX_HEADER_BLOCK) */
	int has_cl, grpc, is_head, chunked, req_end, head_sent;
	int req_dead;                /* proxy.c stopped reading the request (its response may still be coming) */
	struct mesh_buf req;
	size_t req_off;
	size_t unconsumed;           /* DATA bytes in req not yet given back to the window */
	/* response: HTTP/1.1 read from fd */
	struct h1_parser p;
	struct h1_header *hdrs;
	char *in;
	size_t in_len, in_cap;
	int resp_head, resp_end, submitted, deferred, grpc_local, eof;
	int status;
	struct mesh_buf body, trailers, gmsg;
	size_t body_off;
};

struct h2d_conn {
	struct engine *e;
	struct h2d_conn *next;
	int fd;
	struct ev_io io;
	struct ev_defer pump;
	struct ev_timer idle;        /* idle timeout: no stream served for o.idle_ms; then the close's bound */
	const struct px_transport_ops *tops;
	void *tctx;                  /* the struct px_tls (owned) when tops is px_transport_tls */
	nghttp2_session *ng;
	struct px_conn_origin o;     /* its strings owned (origin_keep) */
	struct mesh_buf out;
	size_t out_off;
	struct h2d_stream streams;  /* sentinel */
	unsigned nactive;            /* streams with a pipe to proxy.c (requests being served) */
	int peer_eof, dead, closing;
	/* token bucket of streams cut while proxy.c served them (h2d_cut_stream) */
	uint64_t cut_tokens_at;      /* ev_now() of the last refill */
	double cut_tokens;
};

static struct h2d_conn *h2d_all;

static void h2d_pump(struct h2d_conn *c);
static void h2d_st_update(struct h2d_stream *st);

static void h2d_kick(struct h2d_conn *c)
{
	ev_defer(c->e->loop, &c->pump);
}

static void h2d_st_close_fd(struct h2d_stream *st)
{
	if (st->fd < 0)
		return;
	ev_io_stop(st->c->e->loop, &st->io);
	close(st->fd);
	st->fd = -1;
	st->c->nactive--;
}

static void h2d_st_free(struct h2d_stream *st)
{
	h2d_st_close_fd(st);
	st->prev->next = st->next;
	st->next->prev = st->prev;
	mesh_buf_cleanup(&st->method);
	mesh_buf_cleanup(&st->path);
	mesh_buf_cleanup(&st->auth);
	mesh_buf_cleanup(&st->fields);
	mesh_buf_cleanup(&st->cookie);
	mesh_buf_cleanup(&st->req);
	mesh_buf_cleanup(&st->body);
	mesh_buf_cleanup(&st->trailers);
	mesh_buf_cleanup(&st->gmsg);
	free(st->hdrs);
	free(st->in);
	free(st);
}

static void h2d_st_reset(struct h2d_stream *st, uint32_t code)
{
	if (st->c->ng)
		(void)nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, code);
	h2d_st_close_fd(st);
	h2d_kick(st->c);
}

static ssize_t h2d_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			     nghttp2_data_source *src, void *ud)
{
	struct h2d_stream *st = src->ptr;
	size_t got = body_take(&st->body, &st->body_off, buf, len);

	(void)ng;
	(void)id;
	(void)ud;
	if (got) {
		if (st->fd >= 0)
			h2d_st_update(st); /* room again: read more of the response */
		return (ssize_t)got;
	}
	if (!st->resp_end) {
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (st->trailers.len) {
		nghttp2_nv nv[H2_NV_MAX];
		struct h1_header f[H1_DEFAULT_MAX_HEADERS];
		struct h1_str blk = { st->trailers.data, st->trailers.len };
		size_t n = h1_split_fields(blk, f, H1_DEFAULT_MAX_HEADERS), k;
		char *scratch = NULL;

		k = nv_fields(nv, 0, H2_NV_MAX, f, n, &scratch, NV_TRAILERS);
		if (k && nghttp2_submit_trailer(st->c->ng, st->id, nv, k) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		free(scratch);
	}
	return 0;
}

/* The response head read from the pipe goes out as HEADERS. */
static int h2d_submit_head(struct h2d_stream *st, const struct h1_head *h)
{
	nghttp2_nv nv[H2_NV_MAX];
	char status[8], *scratch = NULL;
	size_t n;
	int rc;
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = h2d_data_read };

	if (st->grpc && h->status != 200 && !h1_head_get(h, "grpc-status").len) {
		/* a local reply (or a non-gRPC server) to a gRPC call: gRPC-shaped, sent at the end */
		st->grpc_local = 1;
		st->status = h->status;
		return 0;
	}
	snprintf(status, sizeof(status), "%d", h->status);
	nv[0] = nv_make(":status", status, strlen(status));
	n = nv_fields(nv, 1, H2_NV_MAX, h->headers, h->n_headers, &scratch, h->status == 204 ? NV_SKIP_CL : 0);
	rc = nghttp2_submit_response(st->c->ng, st->id, nv, n, h->framing == H1_BODY_NONE ? NULL : &dp);
	free(scratch);
	st->submitted = 1;
	return rc;
}

/*
 * grpc-message is percent-encoded (gRPC over HTTP/2, "Percent-Encoded"; as
 * Envoy's Grpc::Utility::PercentEncoding::encode): bytes outside 0x20-0x7e,
 * and '%', become %XX.  A local reply's body (an HTML error page from an
 * HTTP/1.1 server) carries CR, LF or NUL, which HTTP/2 forbids in a field
 * value (RFC 9113 §8.2.1): strict clients reset the stream on them.
 * Writes into out (up to cap - 1 bytes, whole escapes only); returns the length.
 */
static size_t grpc_msg_encode(const char *in, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)ch;
		} else {
			if (o + 3 >= cap)
				break;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	return o;
}

static void h2d_submit_grpc_local(struct h2d_stream *st)
{
	char code[8], msg[H2_GRPC_MSG_MAX * 3 + 1];
	nghttp2_nv nv[5];
	size_t n = 0;

	snprintf(code, sizeof(code), "%d", grpc_status_of_http(st->status));
	nv[n++] = nv_make(":status", "200", 3);
	nv[n++] = nv_make("content-type", "application/grpc", 16);
	nv[n++] = nv_make("grpc-status", code, strlen(code));
	if (st->gmsg.len)
		nv[n++] = nv_make("grpc-message", msg, grpc_msg_encode(st->gmsg.data, st->gmsg.len, msg, sizeof(msg)));
	(void)nghttp2_submit_response(st->c->ng, st->id, nv, n, NULL);
	st->submitted = 1;
}

/* Parses what proxy.c answered on the pipe. */
static void h2d_st_parse(struct h2d_stream *st)
{
	size_t off = 0;

	while (!st->resp_end) {
		if (!st->resp_head) {
			struct h1_head h;
			int rc = h1_parse_head(&st->p, st->in + off, st->in_len - off, &h);

			if (rc == H1_AGAIN)
				break;
			if (rc < 0) {
				h2d_st_reset(st, NGHTTP2_INTERNAL_ERROR);
				return;
			}
			off += h.head_len;
			if (h.status < 200) {
				h1_parser_reset(&st->p);
				h1_parser_set_request(&st->p, st->is_head ? H1_F_HEAD : 0);
				continue; /* 100 Continue and friends stay on this side */
			}
			st->resp_head = 1;
			if (h2d_submit_head(st, &h) < 0) {
				h2d_st_reset(st, NGHTTP2_INTERNAL_ERROR);
				return;
			}
			if (h.framing == H1_BODY_NONE) {
				st->resp_end = 1;
				if (st->grpc_local)
					h2d_submit_grpc_local(st);
			}
		} else {
			struct h1_str data;
			size_t used = 0;
			int rc;

			if (!st->grpc_local && st->body.len - st->body_off >= PX_H2_WINDOW)
				break; /* the client reads slower: wait for the data provider */
			rc = h1_parse_body(&st->p, st->in + off, st->in_len - off, &used, &data);
			off += used;
			if (rc == H1_AGAIN)
				break;
			if (rc == H1_DATA) {
				if (st->grpc_local) {
					size_t room = H2_GRPC_MSG_MAX - st->gmsg.len;

					(void)mesh_buf_append(&st->gmsg, data.p, data.len < room ? data.len : room);
				} else if (mesh_buf_append(&st->body, data.p, data.len) < 0) {
					h2d_st_reset(st, NGHTTP2_INTERNAL_ERROR);
					return;
				}
				continue;
			}
			if (rc == H1_TRAILERS) {
				(void)mesh_buf_append(&st->trailers, data.p, data.len);
				continue;
			}
			if (rc == H1_DONE) {
				st->resp_end = 1;
				if (st->grpc_local)
					h2d_submit_grpc_local(st);
				break;
			}
			h2d_st_reset(st, NGHTTP2_INTERNAL_ERROR);
			return;
		}
	}
	in_drop(st->in, &st->in_len, off);
	if (st->deferred && (st->body.len > st->body_off || st->resp_end)) {
		st->deferred = 0;
		(void)nghttp2_session_resume_data(st->c->ng, st->id);
	}
	if (st->resp_end)
		h2d_st_close_fd(st); /* proxy.c's side sees the end; nghttp2 finishes the stream */
	h2d_kick(st->c);
}

static void h2d_st_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct h2d_stream *st = io->data;
	struct h2d_conn *c = st->c;

	(void)loop;
	if ((events & EV_WRITE) && !st->req_dead) {
		int rc = pipe_flush(st->fd, &st->req, &st->req_off);

		/* -EPIPE: proxy.c closed the pipe: it may have answered before the
		 * request ended (RFC 9113 §8.1), so the response is still read to
		 * its end (a cut one resets the stream there); the rest of the
		 * body is dropped, its window given back */
		if (rc == -EPIPE)
			st->req_dead = 1;
		if (rc != -EAGAIN) {
			if (st->unconsumed) {
				/* the bytes moved on: the client may send as much again */
				(void)nghttp2_session_consume(c->ng, st->id, st->unconsumed);
				st->unconsumed = 0;
				h2d_kick(c);
			}
		}
	}
	if (events & (EV_READ | EV_ERROR)) {
		if (in_room(&st->in, &st->in_len, &st->in_cap, H2_PIPE_IN_MAX)) {
			ssize_t n = fd_read(st->fd, st->in + st->in_len, st->in_cap - st->in_len);

			if (n > 0) {
				st->in_len += (size_t)n;
			} else if (n == 0 || n != -EAGAIN) {
				st->eof = 1;
				if (st->resp_head && h1_parse_eof(&st->p) == H1_DONE) {
					st->resp_end = 1;
					if (st->grpc_local)
						h2d_submit_grpc_local(st);
				} else if (!st->resp_end) {
					/* proxy.c cut the response (client gone, upstream reset
					 * mid-body); closed before a byte of it, the request was
					 * refused before it went anywhere (STRICT's plaintext,
					 * a malformed request): REFUSED_STREAM, which gRPC
					 * reports as UNAVAILABLE, as for Envoy's closed
					 * connection (RFC 9113 §8.7: safe to retry) */
					h2d_st_reset(st, !st->resp_head && !st->in_len ? NGHTTP2_REFUSED_STREAM
										       : NGHTTP2_INTERNAL_ERROR);
					return;
				}
			}
		}
		h2d_st_parse(st);
		if (st->fd < 0)
			return;
	}
	h2d_st_update(st);
}

static void h2d_st_update(struct h2d_stream *st)
{
	unsigned m = 0;

	if (st->fd < 0)
		return;
	if (st->req_off < st->req.len && !st->req_dead)
		m |= EV_WRITE;
	if (!st->eof && !st->resp_end && st->body.len - st->body_off < PX_H2_WINDOW && st->in_len < H2_PIPE_IN_MAX)
		m |= EV_READ;
	if (ev_io_set(st->c->e->loop, &st->io, m) < 0)
		h2d_st_reset(st, NGHTTP2_INTERNAL_ERROR);
}

/* HEADERS complete: the HTTP/1.1 request head, and a pipe to proxy.c. */
static int h2d_st_open(struct h2d_stream *st, int end_stream)
{
	struct h2d_conn *c = st->c;
	struct mesh_buf *b = &st->req;
	int sv[2], rc;

	if (!st->method.len || !st->path.len)
		return -EPROTO; /* CONNECT (no :path) and malformed requests: refused */
	st->is_head = st->method.len == 4 && !memcmp(st->method.data, "HEAD", 4);
	(void)mesh_buf_append(b, st->method.data, st->method.len);
	(void)mesh_buf_putc(b, ' ');
	(void)mesh_buf_append(b, st->path.data, st->path.len);
	(void)mesh_buf_puts(b, " HTTP/1.1\r\nhost: ");
	(void)mesh_buf_append(b, st->auth.data, st->auth.len);
	(void)mesh_buf_puts(b, "\r\n");
	(void)mesh_buf_append(b, st->fields.data, st->fields.len);
	if (st->cookie.len) {
		(void)mesh_buf_puts(b, "cookie: ");
		(void)mesh_buf_append(b, st->cookie.data, st->cookie.len);
		(void)mesh_buf_puts(b, "\r\n");
	}
	if (!end_stream && !st->has_cl) {
		st->chunked = 1;
		(void)mesh_buf_puts(b, "transfer-encoding: chunked\r\n");
	}
	/* one exchange per pipe: proxy.c closes its side after the response */
	(void)mesh_buf_puts(b, "connection: close\r\n\r\n");
	if (b->err)
		return -ENOMEM;
	st->req_end = end_stream;
	st->head_sent = 1;
	mesh_buf_cleanup(&st->fields);
	mesh_buf_cleanup(&st->cookie);
	st->hdrs = calloc(H1_DEFAULT_MAX_HEADERS, sizeof(*st->hdrs));
	if (!st->hdrs)
		return -ENOMEM;
	h1_parser_init(&st->p, 0, NULL, st->hdrs, H1_DEFAULT_MAX_HEADERS);
	h1_parser_set_request(&st->p, st->is_head ? H1_F_HEAD : 0);
	rc = pipe_open(sv);
	if (rc < 0)
		return rc;
	rc = px_dconn_adopt(c->e, sv[1], &c->o, 1);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	st->fd = sv[0];
	c->nactive++;
	ev_io_init(&st->io, st->fd, h2d_st_cb, st);
	if (ev_io_start(c->e->loop, &st->io, EV_READ | EV_WRITE) < 0) {
		close(st->fd);
		st->fd = -1;
		c->nactive--;
		return -EIO;
	}
	return 0;
}

static int h2d_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct h2d_conn *c = ud;
	struct h2d_stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->c = c;
	st->id = f->hd.stream_id;
	st->fd = -1;
	mesh_buf_init(&st->method, 64);
	mesh_buf_init(&st->path, PX_H2_MAX_HEADER_BLOCK);
	mesh_buf_init(&st->auth, 1024);
	mesh_buf_init(&st->fields, PX_H2_MAX_HEADER_BLOCK);
	mesh_buf_init(&st->cookie, PX_H2_MAX_HEADER_BLOCK);
	mesh_buf_init(&st->req, PX_H2_MAX_HEADER_BLOCK + PX_H2_WINDOW + 4096);
	mesh_buf_init(&st->body, PX_H2_WINDOW + H2_PIPE_IN_MAX);
	mesh_buf_init(&st->trailers, H1_DEFAULT_MAX_HEAD_BYTES);
	mesh_buf_init(&st->gmsg, H2_GRPC_MSG_MAX);
	st->next = c->streams.next;
	st->prev = &c->streams;
	c->streams.next->prev = st;
	c->streams.next = st;
	nghttp2_session_set_stream_user_data(ng, st->id, st);
	return 0;
}

static int name_is(const uint8_t *n, size_t len, const char *lit)
{
	return strlen(lit) == len && !memcmp(n, lit, len);
}

static int h2d_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
			 const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2d_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (!st || st->head_sent)
		return 0; /* request trailers: HTTP/1.1 upstreams would not get them anyway */
	st->hdr_bytes += namelen + valuelen + 32; /* RFC 9113 §6.5.2's accounting */
	if (st->hdr_bytes > PX_H2_MAX_HEADER_BLOCK)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM; the connection goes on */
	if (namelen && name[0] == ':') {
		if (name_is(name, namelen, ":method"))
			(void)mesh_buf_append(&st->method, value, valuelen);
		else if (name_is(name, namelen, ":path"))
			(void)mesh_buf_append(&st->path, value, valuelen);
		else if (name_is(name, namelen, ":authority"))
			(void)mesh_buf_append(&st->auth, value, valuelen);
		return 0;
	}
	if (name_is(name, namelen, "host")) {
		if (!st->auth.len)
			(void)mesh_buf_append(&st->auth, value, valuelen);
		return 0;
	}
	if (name_is(name, namelen, "te"))
		return 0; /* "trailers" only (nghttp2 checked); hop-by-hop on HTTP/1.1 */
	if (name_is(name, namelen, "cookie")) {
		/* RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1 */
		if (st->cookie.len)
			(void)mesh_buf_puts(&st->cookie, "; ");
		(void)mesh_buf_append(&st->cookie, value, valuelen);
		return st->cookie.err ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
	}
	if (name_is(name, namelen, "content-length"))
		st->has_cl = 1;
	if (name_is(name, namelen, "content-type") && is_grpc_ct(value, valuelen))
		st->grpc = 1;
	(void)mesh_buf_append(&st->fields, name, namelen);
	(void)mesh_buf_puts(&st->fields, ": ");
	(void)mesh_buf_append(&st->fields, value, valuelen);
	(void)mesh_buf_puts(&st->fields, "\r\n");
	return st->fields.err ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static void h2d_st_req_end(struct h2d_stream *st)
{
	if (st->req_end)
		return;
	st->req_end = 1;
	if (st->chunked)
		(void)mesh_buf_puts(&st->req, H1_CHUNK_LAST);
	h2d_st_update(st);
}

static int h2d_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct h2d_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	(void)ud;
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && !st->head_sent) {
		int rc = h2d_st_open(st, end);

		if (rc < 0) {
			(void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id,
							rc == -EPROTO ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_REFUSED_STREAM);
			h2d_st_close_fd(st);
		}
		return 0;
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end)
		h2d_st_req_end(st);
	return 0;
}

static int h2d_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct h2d_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	int rc;

	(void)flags;
	(void)ud;
	if (!st || st->fd < 0 || st->req_end || st->req_dead) {
		(void)nghttp2_session_consume(ng, id, len); /* nobody to take it: the window stays open */
		return 0;
	}
	rc = st->chunked ? h1_out_chunk(&st->req, data, len) : mesh_buf_append(&st->req, data, len);
	if (rc < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->unconsumed += len;
	h2d_st_update(st);
	return 0;
}

/* Streams cut while proxy.c was serving them (a pipe open, no complete
 * response): each cost a request's worth of work (routing, an upstream
 * attempt) for nothing.  nghttp2 limits the RST_STREAM frames a client
 * sends (rapid reset, CVE-2023-44487) but not the resets a client makes
 * the server send with a bad frame on a stream it just opened (WINDOW_UPDATE
 * overflow, DATA past content-length...: "MadeYouReset", CVE-2025-8671);
 * this counts both, with nghttp2's rapid-reset budget: a burst of
 * H2D_CUT_BURST, then H2D_CUT_RATE a second; past it, GOAWAY
 * ENHANCE_YOUR_CALM. */
#define H2D_CUT_BURST 1000
#define H2D_CUT_RATE 100

static void h2d_cut_stream(struct h2d_conn *c)
{
	uint64_t now = ev_now(c->e->loop);

	c->cut_tokens += (double)(now - c->cut_tokens_at) * H2D_CUT_RATE / 1000.0;
	if (c->cut_tokens > H2D_CUT_BURST)
		c->cut_tokens = H2D_CUT_BURST;
	c->cut_tokens_at = now;
	if (c->cut_tokens >= 1.0) {
		c->cut_tokens -= 1.0;
		return;
	}
	if (!c->closing) {
		log_debug("meshproxy", "http2 downstream %s: too many streams cut, closing", c->o.peer_ip);
		c->closing = 1;
		(void)nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
		ev_timer_arm(c->e->loop, &c->idle, H2D_CLOSE_GRACE_MS);
	}
}

static int h2d_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct h2d_stream *st = nghttp2_session_get_stream_user_data(ng, id);

	(void)ud;
	if (st && code != NGHTTP2_NO_ERROR && st->fd >= 0 && !st->resp_end)
		h2d_cut_stream(st->c);
	if (st) {
		nghttp2_session_set_stream_user_data(ng, id, NULL);
		h2d_st_free(st); /* closing the pipe tells proxy.c the client went away, if it had not finished */
	}
	return 0;
}

/* The session's own copies of an origin's TLS strings (origin_drop frees them). */
static int origin_keep(struct px_conn_origin *o)
{
	const char *pp = o->peer_principal, *sni = o->sni, *xfcc = o->xfcc;

	o->peer_principal = pp ? strdup(pp) : NULL;
	o->sni = sni ? strdup(sni) : NULL;
	o->xfcc = xfcc ? strdup(xfcc) : NULL;
	return (pp && !o->peer_principal) || (sni && !o->sni) || (xfcc && !o->xfcc) ? -ENOMEM : 0;
}

static void origin_drop(struct px_conn_origin *o)
{
	free((char *)o->peer_principal);
	free((char *)o->sni);
	free((char *)o->xfcc);
	o->peer_principal = o->sni = o->xfcc = NULL;
}

static void h2d_free(struct h2d_conn *c)
{
	struct h2d_conn **pp;

	for (pp = &h2d_all; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	while (c->streams.next != &c->streams)
		h2d_st_free(c->streams.next);
	nghttp2_session_del(c->ng);
	ev_io_stop(c->e->loop, &c->io);
	ev_defer_cancel(c->e->loop, &c->pump);
	ev_timer_cancel(c->e->loop, &c->idle);
	if (c->tops == &px_transport_tls)
		px_tls_free(c->tctx); /* close_notify before the socket goes */
	close(c->fd);
	mesh_buf_cleanup(&c->out);
	if (c->o.counted && c->o.l)
		px_listener_socket_closed(c->o.l);
	px_listener_unref(c->o.l);
	origin_drop(&c->o);
	free(c);
}

/*
 * Envoy's idle_timeout (HttpProtocolOptions, 1 h unless the HCM sets it):
 * a session that served no request for that long is closed with GOAWAY
 * NO_ERROR.  "Served" means a stream with a pipe to proxy.c; a stream
 * whose HEADERS never completed does not count, so a client sending half
 * a frame, or only the preface, cannot hold the connection for ever.
 */
static void h2d_idle_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct h2d_conn *c = t->data;

	if (c->closing || !c->ng) {
		h2d_free(c); /* the GOAWAY could not be flushed in time */
		return;
	}
	c->closing = 1;
	log_debug("meshproxy", "http2 downstream %s: idle for %llu ms, closing", c->o.peer_ip,
		  (unsigned long long)c->o.idle_ms);
	(void)nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
	ev_timer_arm(loop, &c->idle, H2D_CLOSE_GRACE_MS);
	h2d_kick(c);
}

/* The idle timer follows the number of streams served (h2d_pump). */
static void h2d_idle_update(struct h2d_conn *c)
{
	if (c->closing || !c->o.idle_ms)
		return;
	if (c->nactive)
		ev_timer_cancel(c->e->loop, &c->idle);
	else if (!ev_timer_armed(&c->idle))
		ev_timer_arm(c->e->loop, &c->idle, c->o.idle_ms);
}

static void h2d_pump(struct h2d_conn *c)
{
	unsigned m = 0;

	if (session_flush(c->ng, c->tops, c->tctx, c->fd, &c->out, &c->out_off) < 0)
		c->dead = 1;
	if (c->dead || c->peer_eof ||
	    (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) && c->out_off == c->out.len)) {
		h2d_free(c);
		return;
	}
	if (c->out_off < c->out.len)
		m |= EV_WRITE;
	if (nghttp2_session_want_read(c->ng))
		m |= EV_READ;
	if (ev_io_set(c->e->loop, &c->io, m) < 0) {
		h2d_free(c);
		return;
	}
	h2d_idle_update(c);
}

static void h2d_pump_cb(struct ev_loop *loop, struct ev_defer *df)
{
	(void)loop;
	h2d_pump(df->data);
}

/* Bytes from the client into nghttp2; a protocol error makes nghttp2 queue GOAWAY. */
static int h2d_feed(struct h2d_conn *c, const uint8_t *p, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(c->ng, p, len);

	if (n < 0) {
		log_debug("meshproxy", "http2 downstream %s: %s", c->o.peer_ip, nghttp2_strerror((int)n));
		(void)nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
		return -EPROTO;
	}
	return 0;
}

static void h2d_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct h2d_conn *c = io->data;

	(void)loop;
	if (events & (EV_READ | EV_ERROR)) {
		uint8_t buf[H2_IN_CHUNK];
		int i;

		/* up to H2_READS_PER_CB reads before the frames they caused are
		 * sent: control frames a peer makes us queue faster than it reads
		 * them trip nghttp2's outbound-ack limit (GOAWAY) */
		for (i = 0; i < H2_READS_PER_CB && nghttp2_session_want_read(c->ng); i++) {
			ssize_t n = c->tops->read(c->tctx, c->fd, buf, sizeof(buf));

			if (n > 0) {
				if (h2d_feed(c, buf, (size_t)n) < 0)
					break;
				continue;
			}
			if (n == 0 || n != -EAGAIN)
				c->peer_eof = 1;
			break;
		}
	}
	h2d_pump(c);
}

static nghttp2_session_callbacks *h2_callbacks(void)
{
	nghttp2_session_callbacks *cb;

	return nghttp2_session_callbacks_new(&cb) == 0 ? cb : NULL;
}

static nghttp2_option *h2_options(void)
{
	nghttp2_option *opt;

	if (nghttp2_option_new(&opt) != 0)
		return NULL;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_outbound_ack(opt, 1000);  /* SETTINGS/PING flood: GOAWAY */
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 100); /* rapid reset (CVE-2023-44487) */
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	return opt;
}

int px_h2d_start(struct engine *e, int fd, const struct px_transport_ops *tops, void *tctx,
		 const struct px_conn_origin *o, const char *pending, size_t pending_len)
{
	struct h2d_conn *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[4] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, PX_H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PX_H2_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, PX_H2_MAX_HEADER_BLOCK },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	int rc = -ENOMEM, kept;

	if (!c)
		return -ENOMEM;
	c->e = e;
	c->fd = fd;
	c->tops = tops;
	c->tctx = tctx;
	c->o = *o;
	kept = origin_keep(&c->o);
	c->streams.next = c->streams.prev = &c->streams;
	mesh_buf_init(&c->out, PX_H2_OUT_HIGH + 64 * 1024);
	ev_io_init(&c->io, fd, h2d_cb, c);
	ev_defer_init(&c->pump, h2d_pump_cb, c);
	ev_timer_init(&c->idle, h2d_idle_cb, c);
	c->cut_tokens = H2D_CUT_BURST;
	c->cut_tokens_at = ev_now(e->loop);
	cb = h2_callbacks();
	opt = h2_options();
	if (!cb || !opt || kept < 0)
		goto out;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2d_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2d_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2d_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2d_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2d_on_stream_close);
	if (nghttp2_session_server_new2(&c->ng, cb, c, opt) != 0)
		goto out;
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
	    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, PX_H2_CONN_WINDOW) != 0)
		goto out;
	if (ev_io_start(e->loop, &c->io, EV_READ | EV_WRITE) < 0) {
		rc = -EIO;
		goto out;
	}
	if (o->l && !o->l->embedded)
		o->l->refs++;
	c->next = h2d_all;
	h2d_all = c;
	rc = 0;
	if (pending_len)
		(void)h2d_feed(c, (const uint8_t *)pending, pending_len);
	h2d_kick(c);
out:
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc < 0) {
		ev_io_stop(e->loop, &c->io);
		if (c->ng)
			nghttp2_session_del(c->ng);
		mesh_buf_cleanup(&c->out);
		origin_drop(&c->o);
		free(c);
	}
	return rc;
}

void px_h2d_drain(struct engine *e, const struct px_listener *l)
{
	struct h2d_conn *c;

	for (c = h2d_all; c; c = c->next) {
		if (c->e != e || (l ? c->o.l != l : !(c->o.inbound || e->o.router)))
			continue; /* issue 13: a gateway drains every listener */
		/* GOAWAY with the last stream taken: those finish, new ones are
		 * refused, and the session closes once nothing is left */
		(void)nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
					    NGHTTP2_NO_ERROR, NULL, 0);
		h2d_kick(c);
	}
}

/* ======================================================================
 * Upstream: HTTP/2 client sessions to hosts, shared by streams
 */

struct h2u_conn;

struct h2u_stream {
	struct h2u_conn *c;
	struct h2u_stream *next, *prev;
	int32_t id;                  /* 0 until submitted; -1 once nghttp2 closed it */
	int fd;                      /* our end of the pipe proxy.c writes the request to */
	int peer_fd;                 /* proxy.c's end (an identity only: never used as a descriptor here) */
	struct ev_io io;
	/* request: HTTP/1.1 from the pipe */
	struct h1_parser p;
	struct h1_header *hdrs;
	char *in;
	size_t in_len, in_cap;
	int head_done, req_end, deferred, grpc;
	struct mesh_buf body;
	size_t body_off;
	/* response: HTTP/1.1 to the pipe */
	struct mesh_buf resp;
	size_t resp_off;
	size_t unconsumed;
	int status, final, chunked, trailers_out, resp_end, has_cl;
	struct mesh_buf rh;          /* response fields gathered from HEADERS */
	size_t hdr_bytes;
};

struct h2u_conn {
	struct engine *e;
	struct h2u_conn *next;
	struct px_host *h;           /* a reference */
	int fd;
	const struct px_transport_ops *tops; /* raw, or TLS (tls) once its handshake is done */
	struct px_tls *tls;          /* the cluster's UpstreamTlsContext for h (mtls.c), or NULL */
	int tcp_up;                  /* TCP connected (with TLS: the handshake runs, still !connected) */
	struct ev_io io;
	struct ev_timer t;           /* connect timeout (TCP and TLS handshake), then idle timeout */
	struct ev_defer pump;
	nghttp2_session *ng;
	struct mesh_buf out;
	size_t out_off;
	struct h2u_stream streams;  /* sentinel */
	unsigned nstreams, nreq;
	int connected, dead, goaway;
};

static struct h2u_conn *h2u_all;

/* proxy.c's ends of the pipes that closed before any response for a
 * reason a plain reset does not tell: the connection never came up
 * (connect error or timeout: H2U_CONNECT), or the server refused the
 * stream unprocessed (RST_STREAM REFUSED_STREAM, or GOAWAY below the
 * stream's id, or the connection went before the stream was sent:
 * H2U_REFUSED).  px_h2u_connect_failed() / px_h2u_refused() tell them from
 * a reset, so connect-failure and refused-stream retries and outlier
 * detection see what Envoy sees.  Bounded: past it the oldest is forgotten
 * (reported as a reset). */
#define H2U_FAILED_MAX 256
enum { H2U_CONNECT = 1, H2U_REFUSED = 2 };
static struct {
	int fd, why;
} h2u_failed[H2U_FAILED_MAX];
static unsigned h2u_nfailed;

static void h2u_failed_add(int fd, int why)
{
	if (h2u_nfailed == H2U_FAILED_MAX) {
		memmove(h2u_failed, h2u_failed + 1, (H2U_FAILED_MAX - 1) * sizeof(h2u_failed[0]));
		h2u_nfailed--;
	}
	h2u_failed[h2u_nfailed].fd = fd;
	h2u_failed[h2u_nfailed].why = why;
	h2u_nfailed++;
}

/* 1 when fd is recorded for why (0: any reason), and forgets it. */
static int h2u_failed_take(int fd, int why)
{
	unsigned i;

	for (i = 0; i < h2u_nfailed; i++)
		if (h2u_failed[i].fd == fd) {
			if (why && h2u_failed[i].why != why)
				return 0;
			h2u_failed[i] = h2u_failed[--h2u_nfailed];
			return 1;
		}
	return 0;
}

int px_h2u_connect_failed(int fd)
{
	return h2u_failed_take(fd, H2U_CONNECT);
}

int px_h2u_refused(int fd)
{
	return h2u_failed_take(fd, H2U_REFUSED);
}

void px_h2u_forget(int fd)
{
	(void)h2u_failed_take(fd, 0);
}

static void h2u_pump(struct h2u_conn *c);
static void h2u_st_update(struct h2u_stream *st);

static void h2u_kick(struct h2u_conn *c)
{
	ev_defer(c->e->loop, &c->pump);
}

static void h2u_st_close_fd(struct h2u_stream *st)
{
	if (st->fd < 0)
		return;
	ev_io_stop(st->c->e->loop, &st->io);
	close(st->fd);
	st->fd = -1;
}

/* issue 14: the upstream's SPIFFE id per pipe of the streams freed
 * lately: a short answer is written whole into the pipe and its stream
 * freed before proxy.c reads the head (px_h2u_peer_uri).  A ring, newest
 * last; proxy.c's end stays open until it has read the head, so the
 * newest entry for an fd is its own. */
#define H2U_PEERS_MAX 64
static struct {
	int fd;
	char uri[256];
} h2u_peers[H2U_PEERS_MAX];
static unsigned h2u_npeers;

static void h2u_peer_keep(const struct h2u_stream *st)
{
	const char *uri = st->c->tls ? px_tls_peer_uri(st->c->tls) : NULL;
	unsigned i = h2u_npeers++ % H2U_PEERS_MAX;

	h2u_peers[i].fd = st->peer_fd;
	snprintf(h2u_peers[i].uri, sizeof(h2u_peers[i].uri), "%s", uri ? uri : "");
}

static void h2u_st_free(struct h2u_stream *st)
{
	struct h2u_conn *c = st->c;

	h2u_peer_keep(st);
	h2u_st_close_fd(st);
	if (st->id > 0 && c->ng)
		nghttp2_session_set_stream_user_data(c->ng, st->id, NULL);
	st->prev->next = st->next;
	st->next->prev = st->prev;
	c->nstreams--;
	mesh_buf_cleanup(&st->body);
	mesh_buf_cleanup(&st->resp);
	mesh_buf_cleanup(&st->rh);
	free(st->hdrs);
	free(st->in);
	free(st);
	if (!c->nstreams && !c->dead)
		ev_timer_arm(c->e->loop, &c->t,
			     c->h->cl->idle_timeout_ms ? c->h->cl->idle_timeout_ms
			     : c->e->o.pool_idle_ms    ? c->e->o.pool_idle_ms
						       : 60000);
}

/* nghttp2 is done with a stream whose response ended: it is over once the
 * response reached proxy.c and proxy.c is done writing the request (else
 * the pipe's write side frees it, or proxy.c's close does).  A server
 * may answer before the request ended and reset it with NO_ERROR (RFC
 * 9113 §8.1): the pipe stays open, the rest of the request is read and
 * dropped, so proxy.c, still writing it, never takes the close for a
 * reset while the response waits unread in the pipe. */
static void h2u_st_maybe_free(struct h2u_stream *st)
{
	if (st->fd >= 0 && (st->resp.len || !st->req_end)) {
		if (st->id < 0) {
			mesh_buf_reset(&st->body); /* no stream left to send it on */
			st->body_off = 0;
			st->in_len = 0;
		}
		h2u_st_update(st);
		return;
	}
	h2u_st_free(st);
}

static ssize_t h2u_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			     nghttp2_data_source *src, void *ud)
{
	struct h2u_stream *st = src->ptr;
	size_t got = body_take(&st->body, &st->body_off, buf, len);

	(void)ng;
	(void)id;
	(void)ud;
	if (got) {
		h2u_st_update(st);
		return (ssize_t)got;
	}
	if (!st->req_end) {
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	return 0;
}

/* The HTTP/1.1 request head from proxy.c becomes HEADERS. */
static int h2u_submit(struct h2u_stream *st, const struct h1_head *h)
{
	nghttp2_nv nv[H2_NV_MAX];
	char *scratch = NULL;
	struct h1_str auth = h->form == H1_FORM_ABSOLUTE ? h->authority : h->host;
	struct h1_str path = h->path.len ? h->path : h->target, ct;
	size_t n = 0;
	int32_t id;
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = h2u_data_read };

	nv[n++] = nv_make(":method", h->method.p, h->method.len);
	nv[n++] = nv_make(":scheme", "http", 4);
	nv[n++] = nv_make(":authority", auth.p, auth.len);
	nv[n++] = nv_make(":path", path.p, path.len);
	ct = h1_head_get(h, "content-type");
	st->grpc = is_grpc_ct((const uint8_t *)ct.p, ct.len);
	if (st->grpc)
		nv[n++] = nv_make("te", "trailers", 8); /* gRPC servers require it (hop-by-hop on HTTP/1.1) */
	n = nv_fields(nv, n, H2_NV_MAX, h->headers, h->n_headers, &scratch, NV_SKIP_HOST);
	id = nghttp2_submit_request(st->c->ng, NULL, nv, n, h->framing == H1_BODY_NONE ? NULL : &dp, st);
	free(scratch);
	if (id < 0)
		return -EIO;
	st->id = id;
	st->c->nreq++;
	if (h->framing == H1_BODY_NONE)
		st->req_end = 1;
	return 0;
}

static void h2u_st_parse(struct h2u_stream *st)
{
	size_t off = 0;

	while (!st->req_end) {
		if (!st->head_done) {
			struct h1_head h;
			int rc = h1_parse_head(&st->p, st->in + off, st->in_len - off, &h);

			if (rc == H1_AGAIN)
				break;
			if (rc < 0 || h.framing == H1_BODY_TUNNEL || (h.flags & H1_F_CONNECT)) {
				h2u_st_close_fd(st); /* proxy.c sees a reset before the response */
				return;
			}
			off += h.head_len;
			st->head_done = 1;
			if (h2u_submit(st, &h) < 0) {
				h2u_st_close_fd(st);
				return;
			}
		} else {
			struct h1_str data;
			size_t used = 0;
			int rc;

			if (st->body.len - st->body_off >= PX_H2_WINDOW)
				break;
			rc = h1_parse_body(&st->p, st->in + off, st->in_len - off, &used, &data);
			off += used;
			if (rc == H1_AGAIN)
				break;
			if (rc == H1_DATA) {
				(void)mesh_buf_append(&st->body, data.p, data.len);
				continue;
			}
			if (rc == H1_TRAILERS)
				continue;
			if (rc == H1_DONE) {
				st->req_end = 1;
				break;
			}
			if (st->c->ng && st->id > 0)
				(void)nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
			h2u_st_close_fd(st);
			return;
		}
	}
	in_drop(st->in, &st->in_len, off);
	if (st->deferred && st->id > 0 && (st->body.len > st->body_off || st->req_end)) {
		st->deferred = 0;
		(void)nghttp2_session_resume_data(st->c->ng, st->id);
	}
	h2u_kick(st->c);
}

static void h2u_st_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct h2u_stream *st = io->data;
	struct h2u_conn *c = st->c;

	(void)loop;
	if (events & EV_WRITE) {
		int rc = pipe_flush(st->fd, &st->resp, &st->resp_off);

		if (rc == -EPIPE)
			events |= EV_ERROR;
		if (rc != -EAGAIN) {
			if (st->unconsumed && st->id > 0 && c->ng) {
				(void)nghttp2_session_consume(c->ng, st->id, st->unconsumed);
				st->unconsumed = 0;
				h2u_kick(c);
			}
			if (st->resp_end && (st->req_end || st->id < 0)) {
				if (st->req_end) {
					h2u_st_free(st);
					return;
				}
				h2u_st_maybe_free(st); /* answered early: drain the request (above) */
				return;
			}
		}
	}
	if (events & (EV_READ | EV_ERROR)) {
		if (in_room(&st->in, &st->in_len, &st->in_cap, H2_PIPE_IN_MAX)) {
			ssize_t n = fd_read(st->fd, st->in + st->in_len, st->in_cap - st->in_len);

			if (n > 0) {
				st->in_len += (size_t)n;
				if (st->id < 0 && st->resp_end)
					st->in_len = 0; /* the stream is over: the rest of the request is dropped */
				else
					h2u_st_parse(st);
			} else if (n == 0 || n != -EAGAIN) {
				/* proxy.c gave up on the stream (client gone, timeout, retry)
				 * or is done after a response that came before the request's end */
				if (st->id > 0 && (!st->resp_end || !st->req_end))
					(void)nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
				h2u_st_close_fd(st);
				h2u_kick(c);
				if (st->id <= 0 || st->resp_end)
					h2u_st_free(st);
				return;
			}
		}
	}
	h2u_st_update(st);
}

static void h2u_st_update(struct h2u_stream *st)
{
	unsigned m = 0;

	if (st->fd < 0)
		return;
	if (st->resp_off < st->resp.len)
		m |= EV_WRITE;
	if (st->body.len - st->body_off < PX_H2_WINDOW && st->in_len < H2_PIPE_IN_MAX)
		m |= EV_READ;
	if (ev_io_set(st->c->e->loop, &st->io, m) < 0)
		h2u_st_close_fd(st);
}

static int h2u_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
			 const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2u_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (!st)
		return 0;
	st->hdr_bytes += namelen + valuelen + 32;
	if (st->hdr_bytes > PX_H2_MAX_HEADER_BLOCK)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (name_is(name, namelen, ":status")) {
		int s = 0;
		size_t i;

		for (i = 0; i < valuelen && i < 3; i++)
			s = s * 10 + (value[i] - '0');
		st->status = s;
		return 0;
	}
	if (namelen && name[0] == ':')
		return 0;
	if (!st->final && name_is(name, namelen, "content-length"))
		st->has_cl = 1;
	(void)mesh_buf_append(&st->rh, name, namelen);
	(void)mesh_buf_puts(&st->rh, ": ");
	(void)mesh_buf_append(&st->rh, value, valuelen);
	(void)mesh_buf_puts(&st->rh, "\r\n");
	return st->rh.err ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int h2u_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct h2u_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	(void)ud;
	if (st) {
		mesh_buf_reset(&st->rh);
		st->hdr_bytes = 0;
	}
	return 0;
}

static void h2u_resp_end(struct h2u_stream *st)
{
	if (st->resp_end)
		return;
	if (st->chunked && !st->trailers_out)
		(void)mesh_buf_puts(&st->resp, H1_CHUNK_LAST);
	st->resp_end = 1;
	h2u_st_update(st);
}

static int h2u_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct h2u_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	struct h2u_conn *c = ud;
	int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (f->hd.type == NGHTTP2_GOAWAY)
		c->goaway = 1;
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS) {
		struct mesh_buf *b = &st->resp;

		if (!st->final && st->status >= 100 && st->status < 200)
			return 0; /* interim: proxy.c answers 100-continue itself */
		if (!st->final) {
			st->final = 1;
			(void)mesh_buf_printf(b, "HTTP/1.1 %d %s\r\n", st->status ? st->status : 502,
					      h1_reason(st->status ? st->status : 502));
			(void)mesh_buf_append(b, st->rh.data, st->rh.len);
			if (end) {
				if (!st->has_cl)
					(void)mesh_buf_puts(b, "content-length: 0\r\n");
			} else if (!st->has_cl) {
				st->chunked = 1;
				(void)mesh_buf_puts(b, "transfer-encoding: chunked\r\n");
			}
			/* one exchange per pipe (proxy.c does not pool it) */
			(void)mesh_buf_puts(b, "connection: close\r\n\r\n");
		} else if (st->chunked) {
			/* trailers: the chunked body's trailer section */
			(void)mesh_buf_puts(b, "0\r\n");
			(void)mesh_buf_append(b, st->rh.data, st->rh.len);
			(void)mesh_buf_puts(b, "\r\n");
			st->trailers_out = 1;
		}
		if (b->err)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		h2u_st_update(st);
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end && st->final)
		h2u_resp_end(st);
	return 0;
}

static int h2u_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct h2u_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	int rc;

	(void)flags;
	(void)ud;
	if (!st || st->fd < 0 || !st->final) {
		(void)nghttp2_session_consume(ng, id, len);
		return 0;
	}
	rc = st->chunked ? h1_out_chunk(&st->resp, data, len) : mesh_buf_append(&st->resp, data, len);
	if (rc < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->unconsumed += len;
	h2u_st_update(st);
	return 0;
}

static int h2u_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct h2u_stream *st = nghttp2_session_get_stream_user_data(ng, id);

	(void)ud;
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	st->id = -1;
	if (!st->resp_end) {
		/* reset by the server: proxy.c sees the pipe close and fails or
		 * retries.  REFUSED_STREAM before any response (also what nghttp2
		 * closes the streams above a GOAWAY's last-stream-id with): the
		 * server did not process it, retriable as Envoy's refused-stream */
		if (code == NGHTTP2_REFUSED_STREAM && !st->final && st->fd >= 0)
			h2u_failed_add(st->peer_fd, H2U_REFUSED);
		h2u_st_close_fd(st);
		h2u_st_free(st);
		return 0;
	}
	h2u_st_maybe_free(st);
	return 0;
}

static void h2u_free(struct h2u_conn *c)
{
	struct h2u_conn **pp;

	for (pp = &h2u_all; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->dead = 1;
	/* every stream's pipe closes: proxy.c sees a reset (or, before the
	 * connection came up, a connect failure) and fails or retries */
	while (c->streams.next != &c->streams) {
		struct h2u_stream *st = c->streams.next;

		if (!c->connected)
			h2u_failed_add(st->peer_fd, H2U_CONNECT);
		else if (st->id == 0 && st->fd >= 0)
			h2u_failed_add(st->peer_fd, H2U_REFUSED); /* never sent: nothing was processed */
		h2u_st_free(st);
	}
	if (c->ng)
		nghttp2_session_del(c->ng);
	ev_io_stop(c->e->loop, &c->io);
	ev_timer_cancel(c->e->loop, &c->t);
	ev_defer_cancel(c->e->loop, &c->pump);
	px_tls_free(c->tls); /* close_notify before the socket goes */
	close(c->fd);
	mesh_buf_cleanup(&c->out);
	px_host_unref(c->h);
	free(c);
}

static void h2u_pump(struct h2u_conn *c)
{
	unsigned m = EV_READ;

	if (!c->connected) {
		/* TCP connecting, or the TLS handshake waiting for what it says */
		if (ev_io_set(c->e->loop, &c->io, c->tcp_up && c->tls ? px_tls_want(c->tls) : EV_WRITE) < 0)
			h2u_free(c);
		return;
	}
	if (session_flush(c->ng, c->tops, c->tls, c->fd, &c->out, &c->out_off) < 0)
		c->dead = 1;
	if (c->dead || (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))) {
		h2u_free(c);
		return;
	}
	if (c->out_off < c->out.len)
		m |= EV_WRITE;
	if (ev_io_set(c->e->loop, &c->io, m) < 0)
		h2u_free(c);
}

static void h2u_pump_cb(struct ev_loop *loop, struct ev_defer *df)
{
	(void)loop;
	h2u_pump(df->data);
}

static void h2u_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct h2u_conn *c = io->data;

	(void)loop;
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!c->tcp_up && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (!err)
			c->tcp_up = 1;
		/* issue 12: then the TLS handshake and the peer's identity, under
		 * the connect timeout; failing either is a connect failure for
		 * the streams waiting (UF, connect-failure retries, outlier) */
		if (!err && c->tls) {
			err = px_mtls_upstream_step(c->h, c->tls);
			if (err == -EAGAIN) {
				h2u_pump(c);
				return;
			}
		}
		if (err) {
			c->h->st.cx_connect_fail++;
			px_cst(c->h->cl)->cx_connect_fail++;
			h2u_free(c);
			return;
		}
		c->connected = 1;
		if (c->tls)
			c->tops = &px_transport_tls;
		ev_timer_cancel(c->e->loop, &c->t);
		events |= EV_READ; /* the peer's SETTINGS may be inside OpenSSL already */
	}
	if (events & (EV_READ | EV_ERROR)) {
		uint8_t buf[H2_IN_CHUNK];
		ssize_t n = c->tops->read(c->tls, c->fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && n != -EAGAIN)) {
			h2u_free(c);
			return;
		}
		if (n > 0 && nghttp2_session_mem_recv(c->ng, buf, (size_t)n) < 0) {
			h2u_free(c);
			return;
		}
	}
	h2u_pump(c);
}

static void h2u_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct h2u_conn *c = t->data;

	(void)loop;
	if (!c->connected)
		px_cst(c->h->cl)->cx_connect_timeout++;
	if (!c->connected || !c->nstreams)
		h2u_free(c);
}

static struct h2u_conn *h2u_connect(struct engine *e, struct px_host *h, int *err)
{
	struct h2u_conn *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[3] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PX_H2_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, PX_H2_MAX_HEADER_BLOCK },
	};
	int one = 1;

	*err = -ENOMEM;
	if (!c)
		return NULL;
	c->e = e;
	c->fd = -1;
	c->tops = &px_transport_raw;
	c->streams.next = c->streams.prev = &c->streams;
	mesh_buf_init(&c->out, PX_H2_OUT_HIGH + 64 * 1024);
	ev_timer_init(&c->t, h2u_timer, c);
	ev_defer_init(&c->pump, h2u_pump_cb, c);
	cb = h2_callbacks();
	opt = h2_options();
	if (!cb || !opt)
		goto fail;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2u_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2u_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2u_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2u_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2u_on_stream_close);
	if (nghttp2_session_client_new2(&c->ng, cb, c, opt) != 0)
		goto fail;
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, PX_H2_CONN_WINDOW) != 0)
		goto fail;
	c->fd = socket(h->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		*err = -errno;
		goto fail;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* issue 12: the cluster's TLS policy, the one proxy.c's HTTP/1.1
	 * connections use, with the HTTP/2 ALPN list */
	if (px_mtls_upstream_new(h, e->ident, c->fd, 1, &c->tls) < 0) {
		*err = -EPROTO;
		h->st.cx_connect_fail++;
		px_cst(h->cl)->cx_connect_fail++;
		goto fail;
	}
	if (connect(c->fd, &h->addr.sa, h->alen) < 0 && errno != EINPROGRESS) {
		*err = -errno;
		h->st.cx_connect_fail++;
		px_cst(h->cl)->cx_connect_fail++;
		goto fail;
	}
	ev_io_init(&c->io, c->fd, h2u_cb, c);
	if (ev_io_start(e->loop, &c->io, EV_WRITE) < 0) {
		*err = -EIO;
		goto fail;
	}
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	c->h = px_host_ref(h);
	h->st.cx_total++;
	px_cst(h->cl)->cx_total++;
	ev_timer_arm(e->loop, &c->t, h->cl->connect_timeout_ms ? h->cl->connect_timeout_ms : 5000);
	c->next = h2u_all;
	h2u_all = c;
	return c;
fail:
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (c->ng)
		nghttp2_session_del(c->ng);
	px_tls_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	mesh_buf_cleanup(&c->out);
	free(c);
	return NULL;
}

/* A connection to h with room for one more stream, or NULL. */
static struct h2u_conn *h2u_find(struct engine *e, struct px_host *h)
{
	struct h2u_conn *c;

	for (c = h2u_all; c; c = c->next) {
		uint32_t maxc;

		if (c->e != e || c->h != h || c->dead || c->goaway)
			continue;
		maxc = c->connected ? nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
				    : 100;
		if (h->cl->up && h->cl->up->max_concurrent_streams && h->cl->up->max_concurrent_streams < maxc)
			maxc = h->cl->up->max_concurrent_streams;
		if (c->nstreams >= maxc)
			continue;
		if (h->cl->max_requests_per_connection && c->nreq + c->nstreams >= h->cl->max_requests_per_connection)
			continue;
		return c;
	}
	return NULL;
}

int px_h2u_open(struct engine *e, struct px_host *h)
{
	struct h2u_conn *c = h2u_find(e, h);
	struct h2u_stream *st;
	int sv[2], err = 0;

	if (!c) {
		c = h2u_connect(e, h, &err);
		if (!c)
			return err;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->hdrs = calloc(H1_DEFAULT_MAX_HEADERS, sizeof(*st->hdrs));
	if (!st->hdrs || pipe_open(sv) < 0) {
		free(st->hdrs);
		free(st);
		return -EMFILE;
	}
	st->c = c;
	st->fd = sv[0];
	st->peer_fd = sv[1];
	h1_parser_init(&st->p, 1, NULL, st->hdrs, H1_DEFAULT_MAX_HEADERS);
	mesh_buf_init(&st->body, PX_H2_WINDOW + H2_PIPE_IN_MAX);
	mesh_buf_init(&st->resp, PX_H2_WINDOW + PX_H2_MAX_HEADER_BLOCK * 2 + 4096);
	mesh_buf_init(&st->rh, PX_H2_MAX_HEADER_BLOCK + 4096);
	st->next = c->streams.next;
	st->prev = &c->streams;
	c->streams.next->prev = st;
	c->streams.next = st;
	c->nstreams++;
	ev_timer_cancel(e->loop, &c->t);
	if (!c->connected)
		ev_timer_arm(e->loop, &c->t, h->cl->connect_timeout_ms ? h->cl->connect_timeout_ms : 5000);
	ev_io_init(&st->io, st->fd, h2u_st_cb, st);
	if (ev_io_start(e->loop, &st->io, EV_READ) < 0) {
		close(sv[1]);
		h2u_st_free(st);
		return -EIO;
	}
	return sv[1];
}

const char *px_h2u_peer_uri(const struct engine *e, int fd)
{
	const struct h2u_conn *c;
	const struct h2u_stream *st;
	unsigned i;

	/* few connections per host and few streams each: a walk is enough
	 * for once per response */
	for (c = h2u_all; c; c = c->next) {
		if (c->e != e || !c->tls)
			continue;
		for (st = c->streams.next; st != &c->streams; st = st->next)
			if (st->peer_fd == fd)
				return px_tls_peer_uri(c->tls);
	}
	for (i = 0; i < H2U_PEERS_MAX && i < h2u_npeers; i++) {
		unsigned k = (h2u_npeers - 1 - i) % H2U_PEERS_MAX;

		if (h2u_peers[k].fd == fd)
			return h2u_peers[k].uri[0] ? h2u_peers[k].uri : NULL;
	}
	return NULL;
}

void px_h2_free_all(struct engine *e)
{
	struct h2d_conn **dp = &h2d_all;
	struct h2u_conn **up = &h2u_all;

	while (*dp) {
		if ((*dp)->e == e)
			h2d_free(*dp);
		else
			dp = &(*dp)->next;
	}
	while (*up) {
		if ((*up)->e == e)
			h2u_free(*up);
		else
			up = &(*up)->next;
	}
}
