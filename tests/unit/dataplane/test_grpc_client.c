/*
 * test_grpc_client.c - the gRPC-over-HTTP/2 protocol layer (grpc_conn) fed
 * bytes, with no socket: the peer is an nghttp2 server session in memory.
 * Request headers, message framing both ways (split across frames, several
 * in one frame, empty), the receive cap, trailers with a percent-encoded
 * grpc-message, trailers-only answers, RST_STREAM, GOAWAY, PING acks,
 * compressed messages refused and garbage from the peer.
 */
#include "dataplane/grpc_client.h"

#include <check.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the server side */

struct server {
	nghttp2_session *s;
	int32_t sid;
	char path[256], method[16], ctype[64], te[32];
	struct mesh_buf in;    /* request body bytes received */
	struct mesh_buf out;   /* response body bytes to send */
	size_t out_off;
	size_t chunk;          /* max bytes per DATA frame the provider hands out */
	int deferred;
};

static int s_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
		    size_t vl, uint8_t flags, void *ud)
{
	struct server *sv = ud;
	char n[64];

	(void)s;
	(void)flags;
	sv->sid = f->hd.stream_id;
	snprintf(n, sizeof(n), "%.*s", (int)nl, name);
	if (!strcmp(n, ":path"))
		snprintf(sv->path, sizeof(sv->path), "%.*s", (int)vl, value);
	else if (!strcmp(n, ":method"))
		snprintf(sv->method, sizeof(sv->method), "%.*s", (int)vl, value);
	else if (!strcmp(n, "content-type"))
		snprintf(sv->ctype, sizeof(sv->ctype), "%.*s", (int)vl, value);
	else if (!strcmp(n, "te"))
		snprintf(sv->te, sizeof(sv->te), "%.*s", (int)vl, value);
	return 0;
}

static int s_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t len, void *ud)
{
	struct server *sv = ud;

	(void)s;
	(void)flags;
	(void)sid;
	mesh_buf_append(&sv->in, d, len);
	return 0;
}

static ssize_t s_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
		      nghttp2_data_source *src, void *ud)
{
	struct server *sv = ud;
	size_t avail = sv->out.len - sv->out_off;

	(void)s;
	(void)sid;
	(void)src;
	*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	if (!avail) {
		sv->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (len > avail)
		len = avail;
	if (len > sv->chunk)
		len = sv->chunk;
	memcpy(buf, sv->out.data + sv->out_off, len);
	sv->out_off += len;
	return (ssize_t)len;
}

static void server_init(struct server *sv)
{
	nghttp2_session_callbacks *cb;

	memset(sv, 0, sizeof(*sv));
	mesh_buf_init(&sv->in, 1 << 20);
	mesh_buf_init(&sv->out, 1 << 24);
	sv->chunk = 1 << 20;
	ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, s_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_data);
	ck_assert_int_eq(nghttp2_session_server_new(&sv->s, cb, sv), 0);
	nghttp2_session_callbacks_del(cb);
	ck_assert_int_eq(nghttp2_submit_settings(sv->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void server_free(struct server *sv)
{
	nghttp2_session_del(sv->s);
	mesh_buf_cleanup(&sv->in);
	mesh_buf_cleanup(&sv->out);
}

/* ---- the client's callbacks */

struct seen {
	int nmsg;
	size_t lens[16];
	char first[64];
	int closed, status;
	char message[256];
};

static void on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct seen *s = ctx;

	if (s->nmsg < 16)
		s->lens[s->nmsg] = len;
	if (s->nmsg == 0)
		snprintf(s->first, sizeof(s->first), "%.*s", (int)(len < 63 ? len : 63), (const char *)msg);
	s->nmsg++;
}

static void on_close(void *ctx, int status, const char *message)
{
	struct seen *s = ctx;

	s->closed++;
	s->status = status;
	snprintf(s->message, sizeof(s->message), "%s", message);
}

static const struct grpc_call_cbs cbs = { on_message, on_close };

/* Moves bytes both ways until neither side has anything to say. */
static void pump(struct grpc_conn *c, struct server *sv)
{
	struct mesh_buf b;
	int i, moved = 1;

	mesh_buf_init(&b, 1 << 26);
	for (i = 0; i < 100 && moved; i++) {
		const uint8_t *p;
		ssize_t n;

		moved = 0;
		mesh_buf_reset(&b);
		ck_assert_int_eq(grpc_conn_flush(c, &b), 0);
		if (b.len) {
			ck_assert_int_eq(nghttp2_session_mem_recv(sv->s, (const uint8_t *)b.data, b.len), (ssize_t)b.len);
			moved = 1;
		}
		while ((n = nghttp2_session_mem_send(sv->s, &p)) > 0) {
			if (grpc_conn_recv(c, p, (size_t)n) < 0)
				break;
			moved = 1;
		}
	}
	mesh_buf_cleanup(&b);
}

static void frame(struct mesh_buf *b, const char *msg, size_t len, uint8_t flag)
{
	uint8_t h[5] = { flag, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };

	mesh_buf_append(b, h, 5);
	mesh_buf_append(b, msg, len);
}

/* Starts the call and the server's response headers (200, application/grpc). */
static void start(struct grpc_conn **c, struct server *sv, struct seen *seen, const struct grpc_limits *lim)
{
	nghttp2_data_provider dp;
	nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
	};

	memset(seen, 0, sizeof(*seen));
	server_init(sv);
	ck_assert_int_eq(grpc_conn_new(lim, c), 0);
	ck_assert_int_eq(grpc_call_start(*c, "meshd:15010", "/svc/Method", &cbs, seen), 0);
	ck_assert_int_eq(grpc_call_start(*c, "meshd:15010", "/svc/Method", &cbs, seen), -EBUSY);
	ck_assert_int_eq(grpc_call_send(*c, "hello", 5), 0);
	pump(*c, sv);
	ck_assert_int_gt(sv->sid, 0);
	dp.source.ptr = sv;
	dp.read_callback = s_read;
	ck_assert_int_eq(nghttp2_submit_response(sv->s, sv->sid, nv, 2, &dp), 0);
	pump(*c, sv);
}

static void server_send(struct server *sv, const char *msg, size_t len, uint8_t flag)
{
	frame(&sv->out, msg, len, flag);
	if (sv->deferred) {
		sv->deferred = 0;
		ck_assert_int_eq(nghttp2_session_resume_data(sv->s, sv->sid), 0);
	}
}

static void trailers(struct server *sv, const char *status, const char *message)
{
	nghttp2_nv nv[] = {
		{ (uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status), 0 },
		{ (uint8_t *)"grpc-message", (uint8_t *)message, 12, strlen(message), 0 },
	};

	ck_assert_int_eq(nghttp2_submit_trailer(sv->s, sv->sid, nv, 2), 0);
}

START_TEST(request_and_framing)
{
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;
	char *big = malloc(100000);

	start(&c, &sv, &seen, NULL);
	ck_assert_str_eq(sv.method, "POST");
	ck_assert_str_eq(sv.path, "/svc/Method");
	ck_assert_str_eq(sv.ctype, "application/grpc");
	ck_assert_str_eq(sv.te, "trailers");
	/* our message, framed */
	ck_assert_uint_eq(sv.in.len, 10);
	ck_assert_int_eq(memcmp(sv.in.data, "\0\0\0\0\5hello", 10), 0);
	/* theirs: one split over many DATA frames, then three in one frame (one empty) */
	memset(big, 'x', 100000);
	memcpy(big, "first", 5);
	sv.chunk = 777;
	server_send(&sv, big, 100000, 0);
	pump(c, &sv);
	ck_assert_int_eq(seen.nmsg, 1);
	ck_assert_uint_eq(seen.lens[0], 100000);
	ck_assert_int_eq(strncmp(seen.first, "firstxxx", 8), 0);
	sv.chunk = 1 << 20;
	server_send(&sv, "a", 1, 0);
	server_send(&sv, "", 0, 0);
	server_send(&sv, "bcd", 3, 0);
	pump(c, &sv);
	ck_assert_int_eq(seen.nmsg, 4);
	ck_assert_uint_eq(seen.lens[1], 1);
	ck_assert_uint_eq(seen.lens[2], 0);
	ck_assert_uint_eq(seen.lens[3], 3);
	/* more from us after the provider deferred */
	ck_assert_int_eq(grpc_call_send(c, "again", 5), 0);
	pump(c, &sv);
	ck_assert_uint_eq(sv.in.len, 20);
	/* trailers end the call with their status, grpc-message percent-decoded */
	ck_assert_int_eq(seen.closed, 0);
	trailers(&sv, "12", "no sidecar%20generator %E2%9C%93");
	pump(c, &sv);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, 12);
	ck_assert_str_eq(seen.message, "no sidecar generator \xe2\x9c\x93");
	ck_assert_int_eq(grpc_call_send(c, "late", 4), -EPIPE);
	ck_assert(grpc_conn_done(c));
	free(big);
	grpc_conn_free(c);
	server_free(&sv);
}
END_TEST

/* A unary call (issue 14, OTLP's Export): grpc_call_close_send ends our
 * side with END_STREAM once the queue is out, whether the provider had
 * deferred (queue empty) or still had bytes; nothing is sent after it;
 * the server's trailers then end the call. */
START_TEST(close_send_unary)
{
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;

	start(&c, &sv, &seen, NULL);
	ck_assert_int_eq(nghttp2_session_get_stream_remote_close(sv.s, sv.sid), 0);
	/* bytes still queued when half-closed */
	ck_assert_int_eq(grpc_call_send(c, "more", 4), 0);
	ck_assert_int_eq(grpc_call_close_send(c), 0);
	ck_assert_int_eq(grpc_call_send(c, "late", 4), -EPIPE);
	pump(c, &sv);
	ck_assert_uint_eq(sv.in.len, 19);
	ck_assert_int_eq(memcmp(sv.in.data + 10, "\0\0\0\0\4more", 9), 0);
	ck_assert_int_eq(nghttp2_session_get_stream_remote_close(sv.s, sv.sid), 1);
	trailers(&sv, "0", "");
	pump(c, &sv);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, 0);
	ck_assert_int_eq(grpc_call_close_send(c), -EPIPE);
	grpc_conn_free(c);
	server_free(&sv);
	/* half-closed while the provider had deferred (the queue empty) */
	start(&c, &sv, &seen, NULL);
	ck_assert_int_eq(grpc_call_close_send(c), 0);
	pump(c, &sv);
	ck_assert_uint_eq(sv.in.len, 10);
	ck_assert_int_eq(nghttp2_session_get_stream_remote_close(sv.s, sv.sid), 1);
	grpc_conn_free(c);
	server_free(&sv);
}
END_TEST

START_TEST(message_cap)
{
	struct grpc_limits lim = { 1000, 0 };
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;
	char buf[1001];

	memset(buf, 'y', sizeof(buf));
	start(&c, &sv, &seen, &lim);
	server_send(&sv, buf, 1000, 0); /* at the cap: fine */
	pump(c, &sv);
	ck_assert_int_eq(seen.nmsg, 1);
	server_send(&sv, buf, 1001, 0); /* past it: the call ends, the stream is reset */
	pump(c, &sv);
	ck_assert_int_eq(seen.nmsg, 1);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
	ck_assert_ptr_nonnull(strstr(seen.message, "larger than max"));
	grpc_conn_free(c);
	server_free(&sv);
}
END_TEST

START_TEST(compressed_refused)
{
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;

	start(&c, &sv, &seen, NULL);
	server_send(&sv, "zz", 2, 1);
	pump(c, &sv);
	ck_assert_int_eq(seen.nmsg, 0);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, GRPC_STATUS_INTERNAL);
	grpc_conn_free(c);
	server_free(&sv);
}
END_TEST

START_TEST(reset_goaway_ping)
{
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;

	/* RST_STREAM */
	start(&c, &sv, &seen, NULL);
	ck_assert_int_eq(grpc_conn_ping(c), 0);
	ck_assert_uint_eq(grpc_conn_pings_unanswered(c), 1);
	pump(c, &sv);
	ck_assert_uint_eq(grpc_conn_pings_unanswered(c), 0); /* nghttp2 acks PINGs */
	ck_assert_int_eq(nghttp2_submit_rst_stream(sv.s, NGHTTP2_FLAG_NONE, sv.sid, NGHTTP2_REFUSED_STREAM), 0);
	pump(c, &sv);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, GRPC_STATUS_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(seen.message, "reset"));
	grpc_conn_free(c);
	server_free(&sv);

	/* GOAWAY that did not process our stream */
	start(&c, &sv, &seen, NULL);
	ck_assert_int_eq(nghttp2_submit_goaway(sv.s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0), 0);
	pump(c, &sv);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, GRPC_STATUS_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(seen.message, "GOAWAY"));
	ck_assert(grpc_conn_done(c));
	grpc_conn_free(c);
	server_free(&sv);
}
END_TEST

START_TEST(trailers_only_and_garbage)
{
	struct grpc_conn *c;
	struct server sv;
	struct seen seen;
	nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
		{ (uint8_t *)"grpc-status", (uint8_t *)"12", 11, 2, 0 },
		{ (uint8_t *)"grpc-message", (uint8_t *)"nope", 12, 4, 0 },
	};
	struct mesh_buf b;

	memset(&seen, 0, sizeof(seen));
	server_init(&sv);
	ck_assert_int_eq(grpc_conn_new(NULL, &c), 0);
	ck_assert_int_eq(grpc_call_start(c, "a", "/p", &cbs, &seen), 0);
	pump(c, &sv);
	ck_assert_int_eq(nghttp2_submit_response(sv.s, sv.sid, nv, 4, NULL), 0); /* END_STREAM on the headers */
	pump(c, &sv);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, 12);
	ck_assert_str_eq(seen.message, "nope");
	grpc_conn_free(c);
	server_free(&sv);

	/* a peer that does not speak HTTP/2 */
	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(grpc_conn_new(NULL, &c), 0);
	ck_assert_int_eq(grpc_call_start(c, "a", "/p", &cbs, &seen), 0);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(grpc_conn_flush(c, &b), 0);
	ck_assert_int_gt(b.len, 24);
	ck_assert_int_eq(memcmp(b.data, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), 0);
	ck_assert_int_lt(grpc_conn_recv(c, (const uint8_t *)"HTTP/1.1 400 Bad Request\r\n\r\n", 28), 0);
	ck_assert_int_eq(seen.closed, 1);
	ck_assert_int_eq(seen.status, GRPC_STATUS_INTERNAL);
	ck_assert(grpc_conn_done(c));
	mesh_buf_cleanup(&b);
	grpc_conn_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("grpc_client");
	TCase *tc = tcase_create("conn");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, request_and_framing);
	tcase_add_test(tc, close_send_unary);
	tcase_add_test(tc, message_cap);
	tcase_add_test(tc, compressed_refused);
	tcase_add_test(tc, reset_goaway_ping);
	tcase_add_test(tc, trailers_only_and_garbage);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
