/*
 * test_h2.c - meshproxy's HTTP/2 glue (dataplane/h2.c) through the real
 * engine: a snapshot from pxspec.h, the engine's loop on the test thread,
 * an HTTP/1.1 backend and an HTTP/2 client (nghttp2's client session, or
 * hand-made frames for the hostile cases) on their own threads.
 *
 * Covered: the preface test, grpc-timeout parsing, the gRPC retry
 * conditions; h2c with prior knowledge carrying several concurrent streams
 * into the HTTP/1.1 stream logic (and the body each way); a gRPC-shaped
 * local reply (404 -> grpc-status 12); hostile peers -- garbage after the
 * preface, a SETTINGS flood, a PING flood, a header block over the limit
 * -- answered with GOAWAY or RST_STREAM, never a crash, and the proxy
 * serving the next client.
 */
#include "dataplane/engine.h"
#include "dataplane/h2.h"
#include "dataplane/retry.h"
#include "pxspec.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- an HTTP/1.1 backend: keep-alive, answers "hello <path>" (Content-Length) */

struct backend {
	int lfd, port;
	pthread_t th;
	atomic_int reqs, stop;
	char last_head[4096];
	pthread_mutex_t mu;
};

static int listen_any(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void *be_conn(void *arg)
{
	struct backend *b = ((void **)arg)[0];
	int fd = (int)(intptr_t)((void **)arg)[1];
	char in[65536];
	size_t len = 0;

	free(arg);
	for (;;) {
		char *end, out[512], path[128] = "";
		ssize_t r;
		size_t hl, cl = 0, body = 0;
		const char *p;
		int n, chunked;

		while (!(end = memmem(in, len, "\r\n\r\n", 4))) {
			r = read(fd, in + len, sizeof(in) - len - 1);
			if (r <= 0)
				goto out;
			len += (size_t)r;
		}
		hl = (size_t)(end - in) + 4;
		in[len] = 0;
		p = strcasestr(in, "content-length:");
		if (p && p < end)
			cl = strtoul(p + 15, NULL, 10);
		chunked = strcasestr(in, "transfer-encoding: chunked") != NULL;
		sscanf(in, "%*s %127s", path);
		if (chunked) {
			/* read until the last chunk; count the body bytes roughly (sizes parsed) */
			size_t at = hl;

			for (;;) {
				char *nl;
				size_t sz;

				while (!(nl = memmem(in + at, len - at, "\r\n", 2))) {
					r = read(fd, in + len, sizeof(in) - len - 1);
					if (r <= 0)
						goto out;
					len += (size_t)r;
				}
				sz = strtoul(in + at, NULL, 16);
				while (len < (size_t)(nl - in) + 2 + sz + 2) {
					r = read(fd, in + len, sizeof(in) - len - 1);
					if (r <= 0)
						goto out;
					len += (size_t)r;
				}
				at = (size_t)(nl - in) + 2 + sz + 2;
				body += sz;
				if (!sz)
					break;
			}
			len = 0;
		} else {
			while (len < hl + cl) {
				r = read(fd, in + len, sizeof(in) - len - 1);
				if (r <= 0)
					goto out;
				len += (size_t)r;
			}
			body = cl;
			memmove(in, in + hl + cl, len - hl - cl);
			len -= hl + cl;
		}
		pthread_mutex_lock(&b->mu);
		snprintf(b->last_head, sizeof(b->last_head), "%.*s", (int)(hl < 4000 ? hl : 4000), in);
		pthread_mutex_unlock(&b->mu);
		b->reqs++;
		{
			char msg[256];
			int ml = snprintf(msg, sizeof(msg), "hello %s %zu", path, body);

			n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Backend: one\r\n\r\n%s",
				     ml, msg);
		}
		(void)!write(fd, out, (size_t)n);
	}
out:
	close(fd);
	return NULL;
}

static void *be_main(void *arg)
{
	struct backend *b = arg;

	while (!b->stop) {
		int fd = accept(b->lfd, NULL, NULL);
		void **a;
		pthread_t t;

		if (fd < 0)
			break;
		a = malloc(2 * sizeof(void *));
		a[0] = b;
		a[1] = (void *)(intptr_t)fd;
		if (pthread_create(&t, NULL, be_conn, a) == 0)
			pthread_detach(t);
	}
	return NULL;
}

static struct backend be;
static struct ev_loop *loop;
static struct engine *eng;

static const char *SPEC = "outbound registry_only\n"
			  "listener 9080\n"
			  "vhost 9080 r reviews,reviews:9080\n"
			  "route 9080 r / cluster=outbound|9080||reviews\n"
			  "cluster outbound|9080||reviews eds 127.0.0.1:%d\n";

static uint64_t setup_idle_ms; /* engine_opts.idle_ms of the next setup() (0: Envoy's 1 h) */

static void setup(void)
{
	struct engine_opts o = { .outbound_addr = "127.0.0.1:0", .inbound_addr = "127.0.0.1:0", .idle_ms = setup_idle_ms };
	char spec[1024], err[256] = "";
	struct px_snapshot *s = NULL;

	memset(&be, 0, sizeof(be));
	pthread_mutex_init(&be.mu, NULL);
	be.lfd = listen_any(&be.port);
	ck_assert_int_eq(pthread_create(&be.th, NULL, be_main, &be), 0);
	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(engine_new(loop, &o, &eng), 0);
	snprintf(spec, sizeof(spec), SPEC, be.port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
}

static void teardown(void)
{
	engine_free(eng);
	be.stop = 1;
	shutdown(be.lfd, SHUT_RDWR);
	close(be.lfd);
	pthread_join(be.th, NULL);
	ev_loop_free(loop);
}

static int connect_proxy(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 10, 0 };

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)engine_outbound_port(eng));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* --- a raw client: writes bytes, reads until the proxy closes (or 10 s) */

struct raw {
	const unsigned char *req;
	size_t req_len;
	unsigned char resp[1 << 16];
	size_t len;
	atomic_int done;
	pthread_t th;
	int fd;
};

static void *raw_main(void *arg)
{
	struct raw *c = arg;
	ssize_t r;
	size_t off = 0;

	while (off < c->req_len) {
		r = write(c->fd, c->req + off, c->req_len - off);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	while ((r = read(c->fd, c->resp + c->len, sizeof(c->resp) - c->len)) > 0) {
		c->len += (size_t)r;
		if (c->len == sizeof(c->resp))
			c->len = 0; /* only the tail matters (a GOAWAY comes last) */
	}
	close(c->fd);
	c->done = 1;
	return NULL;
}

static void run_raw(struct raw *c)
{
	c->fd = connect_proxy();
	ck_assert_int_eq(pthread_create(&c->th, NULL, raw_main, c), 0);
	while (!c->done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	pthread_join(c->th, NULL);
	ck_assert_int_ge(ev_run_once(loop, 0), 0);
}

/* Frame types seen in a server's output (after nothing: the server sends no preface). */
static unsigned frame_types(const unsigned char *p, size_t len)
{
	unsigned seen = 0;
	size_t i = 0;

	while (i + 9 <= len) {
		size_t fl = ((size_t)p[i] << 16) | ((size_t)p[i + 1] << 8) | p[i + 2];

		if (p[i + 3] < 32)
			seen |= 1u << p[i + 3];
		i += 9 + fl;
	}
	return seen;
}

static size_t put_frame(unsigned char *b, size_t len, uint8_t type, uint8_t flags, uint32_t sid,
			const unsigned char *payload)
{
	b[0] = (unsigned char)(len >> 16);
	b[1] = (unsigned char)(len >> 8);
	b[2] = (unsigned char)len;
	b[3] = type;
	b[4] = flags;
	b[5] = (unsigned char)(sid >> 24);
	b[6] = (unsigned char)(sid >> 16);
	b[7] = (unsigned char)(sid >> 8);
	b[8] = (unsigned char)sid;
	if (len && payload)
		memcpy(b + 9, payload, len);
	return 9 + len;
}

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* --- an nghttp2 client: N GET/POST requests on one connection */

struct h2req {
	int32_t id;
	int status;
	char body[256];
	size_t blen;
	int closed;
	uint32_t code;
};

struct h2client {
	struct h2req r[8];
	int n;
	const char *authority;
	const char *content_type;
	const char *post; /* a body for every request, or NULL */
	int cookies;      /* send two cookie crumbs */
	size_t post_off[8];
	atomic_int done;
	pthread_t th;
	int fd;
};

static struct h2req *h2c_req(struct h2client *c, int32_t id)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (c->r[i].id == id)
			return &c->r[i];
	return NULL;
}

static int h2c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
			 const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct h2req *r = h2c_req(ud, f->hd.stream_id);

	(void)s;
	(void)flags;
	if (r && nl == 7 && !memcmp(name, ":status", 7))
		r->status = atoi((const char *)value);
	if (r && nl == 11 && !memcmp(name, "grpc-status", 11) && vl < sizeof(r->body)) {
		memcpy(r->body, "grpc-status=", 12);
		memcpy(r->body + 12, value, vl);
		r->blen = 12 + vl;
	}
	return 0;
}

static int h2c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct h2req *r = h2c_req(ud, id);

	(void)s;
	(void)flags;
	if (r && r->blen + len < sizeof(r->body)) {
		memcpy(r->body + r->blen, data, len);
		r->blen += len;
	}
	return 0;
}

static int h2c_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct h2req *r = h2c_req(ud, id);

	(void)s;
	if (r) {
		r->closed = 1;
		r->code = code;
	}
	return 0;
}

static ssize_t h2c_post_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			     nghttp2_data_source *src, void *ud)
{
	struct h2client *c = ud;
	size_t *off = src->ptr, total = strlen(c->post), n = total - *off;

	(void)s;
	(void)id;
	if (n > len)
		n = len;
	memcpy(buf, c->post + *off, n);
	*off += n;
	if (*off == total)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void *h2c_main(void *arg)
{
	struct h2client *c = arg;
	nghttp2_session_callbacks *cb;
	nghttp2_session *s;
	int i, open;

	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2c_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2c_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2c_on_close);
	nghttp2_session_client_new(&s, cb, c);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
	for (i = 0; i < c->n; i++) {
		char path[32];
		nghttp2_nv nv[7];
		size_t k = 0;
		nghttp2_data_provider dp = { .source.ptr = &c->post_off[i], .read_callback = h2c_post_read };

		snprintf(path, sizeof(path), "/s%d", i);
#define NV(N, V) nv[k++] = (nghttp2_nv){ (uint8_t *)(N), (uint8_t *)(V), strlen(N), strlen(V), NGHTTP2_NV_FLAG_NONE }
		NV(":method", c->post ? "POST" : "GET");
		NV(":scheme", "http");
		NV(":authority", c->authority);
		NV(":path", path);
		if (c->content_type)
			NV("content-type", c->content_type);
		if (c->cookies) {
			NV("cookie", "a=1");
			NV("cookie", "b=2");
		}
#undef NV
		c->r[i].id = nghttp2_submit_request(s, NULL, nv, k, c->post ? &dp : NULL, NULL);
	}
	for (;;) {
		const uint8_t *out;
		ssize_t n;
		uint8_t buf[16384];

		while ((n = nghttp2_session_mem_send(s, &out)) > 0)
			if (write(c->fd, out, (size_t)n) != n)
				goto out;
		for (open = 0, i = 0; i < c->n; i++)
			open += !c->r[i].closed;
		if (!open)
			break;
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)n) < 0)
			break;
	}
out:
	nghttp2_session_del(s);
	close(c->fd);
	c->done = 1;
	return NULL;
}

static void run_h2(struct h2client *c)
{
	c->fd = connect_proxy();
	ck_assert_int_eq(pthread_create(&c->th, NULL, h2c_main, c), 0);
	while (!c->done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	pthread_join(c->th, NULL);
	ck_assert_int_ge(ev_run_once(loop, 0), 0);
}

/* --- pure helpers */

START_TEST(preface_detection)
{
	ck_assert_int_eq(px_h2_preface(PREFACE, 24), 1);
	ck_assert_int_eq(px_h2_preface(PREFACE, 5), 0);
	ck_assert_int_eq(px_h2_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nmore", 28), 1);
	ck_assert_int_eq(px_h2_preface("GET / HTTP/1.1\r\n", 16), -1);
	ck_assert_int_eq(px_h2_preface("PRIX", 4), -1);
}
END_TEST

START_TEST(grpc_timeout_values)
{
	ck_assert_int_eq(px_grpc_timeout_ms("300m", 4), 300);
	ck_assert_int_eq(px_grpc_timeout_ms("2S", 2), 2000);
	ck_assert_int_eq(px_grpc_timeout_ms("1M", 2), 60000);
	ck_assert_int_eq(px_grpc_timeout_ms("1H", 2), 3600000);
	ck_assert_int_eq(px_grpc_timeout_ms("1500u", 5), 2); /* rounded up */
	ck_assert_int_eq(px_grpc_timeout_ms("1n", 2), 1);
	ck_assert_int_eq(px_grpc_timeout_ms("0S", 2), 0);
	ck_assert_int_eq(px_grpc_timeout_ms("S", 1), -1);
	ck_assert_int_eq(px_grpc_timeout_ms("123456789S", 10), -1); /* more than 8 digits */
	ck_assert_int_eq(px_grpc_timeout_ms("10x", 3), -1);
	ck_assert_int_eq(px_grpc_timeout_ms("-1S", 3), -1);
}
END_TEST

START_TEST(grpc_retry_conditions)
{
	struct router_retry rp;

	memset(&rp, 0, sizeof(rp));
	rp.on = ROUTER_RETRY_GRPC_UNAVAILABLE | ROUTER_RETRY_GRPC_CANCELLED;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("14", 2)));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("1", 1)));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("13", 2)));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("0", 1)));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 200, 0));
	ck_assert_uint_eq(retry_resp_grpc("x", 1), 0);
	ck_assert_uint_eq(retry_resp_grpc("", 0), 0);
	rp.on = ROUTER_RETRY_GRPC_INTERNAL | ROUTER_RETRY_GRPC_DEADLINE | ROUTER_RETRY_GRPC_RESOURCE;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("13", 2)));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("4", 1)));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("8", 1)));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 200, retry_resp_grpc("14", 2)));
}
END_TEST

/* --- through the engine */

START_TEST(h2c_concurrent_streams)
{
	static struct h2client c;
	int i;

	memset(&c, 0, sizeof(c));
	c.n = 6;
	c.authority = "reviews:9080";
	run_h2(&c);
	for (i = 0; i < c.n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "hello /s%d 0", i);
		ck_assert_int_eq(c.r[i].status, 200);
		ck_assert_int_eq((int)c.r[i].blen, (int)strlen(want));
		ck_assert(!memcmp(c.r[i].body, want, c.r[i].blen));
	}
	ck_assert_int_eq(be.reqs, 6);
}
END_TEST

START_TEST(h2c_post_body_chunked_upstream)
{
	static struct h2client c;
	static char body[40001];
	int i;

	memset(body, 'b', sizeof(body) - 1);
	memset(&c, 0, sizeof(c));
	c.n = 3;
	c.authority = "reviews:9080";
	c.post = body;
	run_h2(&c);
	for (i = 0; i < c.n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "hello /s%d 40000", i);
		ck_assert_int_eq(c.r[i].status, 200);
		ck_assert_msg(c.r[i].blen == strlen(want) && !memcmp(c.r[i].body, want, c.r[i].blen), "%.*s",
			      (int)c.r[i].blen, c.r[i].body);
	}
}
END_TEST

START_TEST(cookie_crumbs_joined)
{
	static struct h2client c;

	memset(&c, 0, sizeof(c));
	c.n = 1;
	c.authority = "reviews:9080";
	c.cookies = 1;
	run_h2(&c);
	ck_assert_int_eq(c.r[0].status, 200);
	pthread_mutex_lock(&be.mu);
	/* one field on the HTTP/1.1 hop (RFC 9113 8.2.3), and the authority as Host */
	ck_assert_msg(strstr(be.last_head, "cookie: a=1; b=2\r\n") != NULL, "%s", be.last_head);
	ck_assert_msg(strcasestr(be.last_head, "host: reviews:9080\r\n") != NULL, "%s", be.last_head);
	pthread_mutex_unlock(&be.mu);
}
END_TEST

START_TEST(grpc_local_reply_shaped)
{
	static struct h2client c;

	memset(&c, 0, sizeof(c));
	c.n = 1;
	c.authority = "nosuch:9080"; /* registry_only: no route, 404 NR */
	c.content_type = "application/grpc";
	run_h2(&c);
	ck_assert_int_eq(c.r[0].status, 200);
	ck_assert_msg(c.r[0].blen >= 14 && !memcmp(c.r[0].body, "grpc-status=12", 14), "%.*s", (int)c.r[0].blen,
		      c.r[0].body);
	ck_assert_int_eq(be.reqs, 0);
}
END_TEST

/* the proxy still answers a well-behaved client after a hostile one */
static void still_serves(void)
{
	static struct h2client c;

	memset(&c, 0, sizeof(c));
	c.n = 1;
	c.authority = "reviews:9080";
	run_h2(&c);
	ck_assert_int_eq(c.r[0].status, 200);
}

START_TEST(garbage_after_preface_goaway)
{
	static struct raw c;
	static unsigned char req[256];
	size_t n = 0;

	memset(&c, 0, sizeof(c));
	memcpy(req, PREFACE, 24);
	n = 24;
	/* a DATA frame on stream 0 (connection error), then junk */
	n += put_frame(req + n, 4, 0, 0, 0, (const unsigned char *)"junk");
	memcpy(req + n, "\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage", 17);
	n += 17;
	c.req = req;
	c.req_len = n;
	run_raw(&c);
	ck_assert_msg(frame_types(c.resp, c.len) & (1u << NGHTTP2_GOAWAY), "no GOAWAY in %zu bytes", c.len);
	still_serves();
}
END_TEST

/* --- the idle timeout (a 300 ms one for these) */

static void setup_idle(void)
{
	setup_idle_ms = 300;
	setup();
	setup_idle_ms = 0;
}

/* A client that sends bytes and then waits: the session must close with
 * GOAWAY NO_ERROR once idle (before the fix it stayed open for ever, the
 * raw client's 10 s read timeout ending the test without a GOAWAY). */
static void idle_closes(const unsigned char *req, size_t len)
{
	static struct raw c;
	size_t i = 0;
	int goaway_no_error = 0;

	memset(&c, 0, sizeof(c));
	c.req = req;
	c.req_len = len;
	run_raw(&c);
	while (i + 9 <= c.len) {
		size_t fl = ((size_t)c.resp[i] << 16) | ((size_t)c.resp[i + 1] << 8) | c.resp[i + 2];

		if (c.resp[i + 3] == NGHTTP2_GOAWAY && fl >= 8 && i + 9 + fl <= c.len)
			goaway_no_error = !memcmp(c.resp + i + 9 + 4, "\0\0\0\0", 4);
		i += 9 + fl;
	}
	ck_assert_msg(goaway_no_error, "no GOAWAY NO_ERROR in %zu bytes", c.len);
}

START_TEST(idle_session_closed)
{
	static unsigned char req[64];
	size_t n = 24;

	memcpy(req, PREFACE, 24);
	n += put_frame(req + n, 0, NGHTTP2_SETTINGS, 0, 0, NULL);
	idle_closes(req, n);
	still_serves();
}
END_TEST

START_TEST(half_headers_frame_does_not_hold_the_session)
{
	static unsigned char req[64];
	size_t n = 24;

	memcpy(req, PREFACE, 24);
	n += put_frame(req + n, 0, NGHTTP2_SETTINGS, 0, 0, NULL);
	/* a HEADERS frame announcing 100 bytes, 3 of them sent */
	n += put_frame(req + n, 3, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
		       (const unsigned char *)"\x82\x86\x84");
	req[24 + 9 + 2] = 100;
	idle_closes(req, n);
}
END_TEST

START_TEST(not_a_preface_is_http1)
{
	static struct raw c;
	static const char req[] = "PRI * HTTP/1.1\r\nHost: reviews:9080\r\n\r\n";

	memset(&c, 0, sizeof(c));
	c.req = (const unsigned char *)req;
	c.req_len = sizeof(req) - 1;
	run_raw(&c);
	/* the HTTP/1.1 codec answers it (PRI is a method token like any other) */
	ck_assert_msg(c.len > 9 && !memcmp(c.resp, "HTTP/1.1 ", 9), "%.*s", (int)c.len, c.resp);
}
END_TEST

static void flood(uint8_t type, size_t plen, size_t count)
{
	static struct raw c;
	unsigned char *req = malloc(24 + 9 + count * (9 + plen));
	unsigned char payload[8] = { 0 };
	size_t n = 24, i;

	memset(&c, 0, sizeof(c));
	memcpy(req, PREFACE, 24);
	n += put_frame(req + n, 0, NGHTTP2_SETTINGS, 0, 0, NULL);
	for (i = 0; i < count; i++)
		n += put_frame(req + n, plen, type, 0, 0, payload);
	c.req = req;
	c.req_len = n;
	run_raw(&c);
	ck_assert_msg(frame_types(c.resp, c.len) & (1u << NGHTTP2_GOAWAY), "no GOAWAY after a flood of type %u",
		      type);
	free(req);
	still_serves();
}

START_TEST(settings_flood_goaway)
{
	flood(NGHTTP2_SETTINGS, 0, 5000);
}
END_TEST

START_TEST(ping_flood_goaway)
{
	flood(NGHTTP2_PING, 8, 5000);
}
END_TEST

/* HPACK "literal header field without indexing, new name" with 7-bit lengths
 * (no Huffman): enough for a hand-made header block. */
static size_t hpack_int(unsigned char *b, uint8_t first, unsigned prefix, size_t v)
{
	size_t n = 0, max = (1u << prefix) - 1;

	if (v < max) {
		b[n++] = (unsigned char)(first | v);
		return n;
	}
	b[n++] = (unsigned char)(first | max);
	v -= max;
	while (v >= 128) {
		b[n++] = (unsigned char)(v % 128 + 128);
		v /= 128;
	}
	b[n++] = (unsigned char)v;
	return n;
}

static size_t hpack_lit(unsigned char *b, const char *name, const char *value, size_t vlen)
{
	size_t n = 0, nl = strlen(name);

	b[n++] = 0x00;
	n += hpack_int(b + n, 0, 7, nl);
	memcpy(b + n, name, nl);
	n += nl;
	n += hpack_int(b + n, 0, 7, vlen);
	memcpy(b + n, value, vlen);
	return n + vlen;
}

START_TEST(huge_header_block_refused)
{
	static struct raw c;
	static unsigned char block[200000], req[220000];
	static char big[30000];
	size_t bl = 0, n = 24, off = 0;
	int i;
	uint8_t flags = 0x4 | 0x1; /* END_HEADERS when it fits, END_STREAM */

	memset(big, 'v', sizeof(big));
	memset(&c, 0, sizeof(c));
	bl += hpack_int(block + bl, 0x80, 7, 2); /* :method GET (static table 2) */
	bl += hpack_int(block + bl, 0x80, 7, 6); /* :scheme http */
	bl += hpack_int(block + bl, 0x80, 7, 4); /* :path / */
	bl += hpack_lit(block + bl, ":authority", "reviews:9080", 12);
	for (i = 0; i < 3; i++) {
		char name[24];

		snprintf(name, sizeof(name), "x-big%d", i);
		bl += hpack_lit(block + bl, name, big, sizeof(big)); /* 90 KB in all: over the 60 KiB cap */
	}
	memcpy(req, PREFACE, 24);
	n += put_frame(req + n, 0, NGHTTP2_SETTINGS, 0, 0, NULL);
	/* HEADERS then CONTINUATIONs of at most 16 KiB (the default max frame size) */
	while (off < bl) {
		size_t len = bl - off > 16384 ? 16384 : bl - off;
		int last = off + len == bl;

		n += put_frame(req + n, len, off ? NGHTTP2_CONTINUATION : NGHTTP2_HEADERS,
			       (uint8_t)((last ? 0x4 : 0) | (off ? 0 : (flags & 0x1))), 1, block + off);
		off += len;
	}
	c.req = req;
	c.req_len = n;
	run_raw(&c);
	/* refused: the stream reset, or the connection ended with GOAWAY; never forwarded */
	ck_assert_msg(frame_types(c.resp, c.len) & ((1u << NGHTTP2_RST_STREAM) | (1u << NGHTTP2_GOAWAY)),
		      "neither RST_STREAM nor GOAWAY");
	ck_assert_int_eq(be.reqs, 0);
	still_serves();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("h2");
	TCase *tc = tcase_create("helpers");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, preface_detection);
	tcase_add_test(tc, grpc_timeout_values);
	tcase_add_test(tc, grpc_retry_conditions);
	suite_add_tcase(s, tc);
	tc = tcase_create("engine");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, h2c_concurrent_streams);
	tcase_add_test(tc, h2c_post_body_chunked_upstream);
	tcase_add_test(tc, grpc_local_reply_shaped);
	tcase_add_test(tc, cookie_crumbs_joined);
	tcase_add_test(tc, not_a_preface_is_http1);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, garbage_after_preface_goaway);
	tcase_add_test(tc, settings_flood_goaway);
	tcase_add_test(tc, ping_flood_goaway);
	tcase_add_test(tc, huge_header_block_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("idle");
	tcase_add_checked_fixture(tc, setup_idle, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, idle_session_closed);
	tcase_add_test(tc, half_headers_frame_does_not_hold_the_session);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
