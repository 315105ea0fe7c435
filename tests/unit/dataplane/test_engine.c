/*
 * test_engine.c - the proxy engine driven with hand-built snapshots
 * (pxspec.h: protobuf-c messages built in C, decoded as xDS would be) over
 * loopback sockets: the engine's loop runs on the test thread, a tiny
 * backend and a blocking client run on their own threads.
 *
 * Covered: keep-alive forwarding through the pool, no route (404 NR),
 * connect failure (503 UF), retries on 5xx with x-envoy-attempt-count,
 * route timeout (504 UT), per-try idle timeout (504), direct responses, a rejected config leaving the
 * old one in place, a config swap between requests, smuggling (CL+TE 400)
 * and the /clusters and /stats/prometheus pages.
 */
#include "dataplane/engine.h"
#include "pxspec.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- a backend: sequential connections, requests answered by path */

struct backend {
	int lfd, port;
	pthread_t th;
	atomic_int conns, reqs, fail_first, stop;
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

static void be_reply(int fd, int status, const char *body)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(body), body);

	(void)!write(fd, buf, (size_t)n);
}

static void *be_main(void *arg)
{
	struct backend *b = arg;

	while (!b->stop) {
		int fd = accept(b->lfd, NULL, NULL);
		char in[8192];
		size_t len = 0;

		if (fd < 0)
			break;
		b->conns++;
		for (;;) {
			char *end;
			ssize_t r;
			size_t hl, cl = 0;
			const char *p;

			while (!(end = memmem(in, len, "\r\n\r\n", 4))) {
				r = read(fd, in + len, sizeof(in) - len - 1);
				if (r <= 0)
					goto next;
				len += (size_t)r;
			}
			hl = (size_t)(end - in) + 4;
			in[len] = 0;
			p = strcasestr(in, "content-length:");
			if (p && p < end)
				cl = strtoul(p + 15, NULL, 10);
			while (len < hl + cl) {
				r = read(fd, in + len, sizeof(in) - len - 1);
				if (r <= 0)
					goto next;
				len += (size_t)r;
			}
			b->reqs++;
			pthread_mutex_lock(&b->mu);
			memcpy(b->last_head, in, hl < sizeof(b->last_head) - 1 ? hl : sizeof(b->last_head) - 1);
			b->last_head[hl < sizeof(b->last_head) - 1 ? hl : sizeof(b->last_head) - 1] = 0;
			pthread_mutex_unlock(&b->mu);
			if (!strncmp(in, "GET /slow", 9)) {
				usleep(300 * 1000);
				be_reply(fd, 200, "slow");
			} else if (!strncmp(in, "GET /close", 10)) {
				goto next;
			} else if (b->fail_first > 0) {
				b->fail_first--;
				be_reply(fd, 503, "fail");
			} else {
				be_reply(fd, 200, "hello");
			}
			memmove(in, in + hl + cl, len - hl - cl);
			len -= hl + cl;
		}
next:
		close(fd);
	}
	return NULL;
}

static void be_start(struct backend *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	b->lfd = listen_any(&b->port);
	ck_assert_int_eq(pthread_create(&b->th, NULL, be_main, b), 0);
}

static void be_stop(struct backend *b)
{
	b->stop = 1;
	shutdown(b->lfd, SHUT_RDWR);
	close(b->lfd);
	pthread_join(b->th, NULL);
}

/* --- a client: sends bytes, reads until the proxy closes */

struct client {
	int port;
	const char *req;
	char resp[16384];
	size_t len;
	atomic_int done;
	pthread_t th;
};

static void *cl_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t r;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)c->port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		(void)!write(fd, c->req, strlen(c->req));
		while ((r = read(fd, c->resp + c->len, sizeof(c->resp) - c->len - 1)) > 0)
			c->len += (size_t)r;
	}
	c->resp[c->len] = 0;
	close(fd);
	c->done = 1;
	return NULL;
}

static struct ev_loop *loop;
static struct engine *eng;

/* Runs the engine's loop until the client thread is done. */
static const char *roundtrip(const char *req)
{
	static struct client c;

	memset(&c, 0, sizeof(c));
	c.port = engine_outbound_port(eng);
	c.req = req;
	ck_assert_int_eq(pthread_create(&c.th, NULL, cl_main, &c), 0);
	while (!c.done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	pthread_join(c.th, NULL);
	/* let the engine see the close and log */
	ck_assert_int_ge(ev_run_once(loop, 0), 0);
	return c.resp;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle))) {
		n++;
		hay++;
	}
	return n;
}

static void apply(const char *fmt, int port)
{
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(spec, sizeof(spec), fmt, port, port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
}

static const char *SPEC =
	"outbound registry_only\n"
	"listener 9080\n"
	"vhost 9080 r reviews,reviews:9080\n"
	"route 9080 r /slowidle cluster=outbound|9080||reviews retries=1 retry_on=5xx per_try_idle=50\n"
	"route 9080 r /slow cluster=outbound|9080||reviews timeout=50\n"
	"route 9080 r /direct direct=418:teapot\n"
	"route 9080 r / cluster=outbound|9080||reviews retries=2 retry_on=5xx,connect-failure attempt_count=1\n"
	"vhost 9080 dead dead:9080\n"
	"route 9080 dead / cluster=outbound|9080||dead\n"
	"cluster outbound|9080||reviews eds 127.0.0.1:%d\n"
	"cluster outbound|9080||dead eds 127.0.0.1:1\n"; /* nothing listens on port 1 */

static struct backend be;

static void setup(void)
{
	struct engine_opts o = { "127.0.0.1:0", "127.0.0.1:0", NULL, 0, 0, 0 };

	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(engine_new(loop, &o, &eng), 0);
	be_start(&be);
	apply(SPEC, be.port);
	ck_assert_int_gt(engine_outbound_port(eng), 0);
}

static void teardown(void)
{
	engine_free(eng);
	be_stop(&be);
	ev_loop_free(loop);
}

START_TEST(keepalive_through_pool)
{
	const char *r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"
				  "GET /b HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");

	ck_assert_int_eq(count(r, "HTTP/1.1 200"), 2);
	ck_assert_int_eq(count(r, "hello"), 2);
	ck_assert_int_eq(be.reqs, 2);
	ck_assert_int_eq(be.conns, 1); /* the second request reused the pooled connection */
	pthread_mutex_lock(&be.mu);
	ck_assert_ptr_nonnull(strcasestr(be.last_head, "x-request-id: "));
	ck_assert_ptr_nonnull(strcasestr(be.last_head, "host: reviews:9080"));
	ck_assert_ptr_nonnull(strcasestr(be.last_head, "x-forwarded-proto: http"));
	ck_assert_ptr_null(strcasestr(be.last_head, "connection: close")); /* hop-by-hop */
	pthread_mutex_unlock(&be.mu);
	r = roundtrip("GET /c HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_int_eq(count(r, "HTTP/1.1 200"), 1);
	ck_assert_int_eq(be.conns, 1); /* still the same upstream connection */
}
END_TEST

START_TEST(no_route_404)
{
	const char *r = roundtrip("GET / HTTP/1.1\r\nHost: nosuch:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 404", 12), "%s", r);
	r = roundtrip("GET / HTTP/1.1\r\nHost: nosuch:7777\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r); /* REGISTRY_ONLY: no listener for 7777 */
	ck_assert_int_eq(be.reqs, 0);
}
END_TEST

START_TEST(connect_failure_503)
{
	const char *r = roundtrip("GET / HTTP/1.1\r\nHost: dead:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 503", 12), "%s", r);
	ck_assert_ptr_nonnull(strstr(r, "connection failure"));
}
END_TEST

START_TEST(retry_on_5xx)
{
	const char *r;

	be.fail_first = 1;
	r = roundtrip("GET /x HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_int_eq(be.reqs, 2);
	pthread_mutex_lock(&be.mu);
	ck_assert_ptr_nonnull(strcasestr(be.last_head, "x-envoy-attempt-count: 2"));
	pthread_mutex_unlock(&be.mu);
	/* more failures than retries: the last 503 goes back to the client */
	be.fail_first = 5;
	r = roundtrip("GET /x HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 503", 12), "%s", r);
	ck_assert_int_eq(be.reqs, 5); /* 2 + 3 attempts */
}
END_TEST

START_TEST(route_timeout_504)
{
	const char *r = roundtrip("GET /slow HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 504", 12), "%s", r);
	ck_assert_ptr_nonnull(strstr(r, "upstream request timeout"));
}
END_TEST

/* per_try_idle_timeout is enforced: the backend says nothing for 300 ms,
 * the 50 ms per-try idle timeout ends each attempt (retried once, as a
 * per-try timeout is) and the client gets 504; without it the route's
 * default 15 s timeout would let the backend's 200 through */
START_TEST(per_try_idle_timeout_504)
{
	const char *r = roundtrip("GET /slowidle HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	struct mesh_buf b;
	const char *ct = NULL;

	ck_assert_msg(!strncmp(r, "HTTP/1.1 504", 12), "%s", r);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/stats/prometheus", 17, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	ck_assert_msg(strstr(b.data, "envoy_cluster_upstream_rq_per_try_timeout{envoy_cluster_name=\"outbound|9080||reviews\"} 2\n"),
		      "%s", b.data);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(direct_response)
{
	const char *r = roundtrip("GET /direct HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 418", 12), "%s", r);
	ck_assert_ptr_nonnull(strstr(r, "teapot"));
	ck_assert_int_eq(be.reqs, 0);
}
END_TEST

START_TEST(absolute_form)
{
	const char *r = roundtrip("GET http://reviews:9080/abs HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	pthread_mutex_lock(&be.mu);
	ck_assert_msg(!strncmp(be.last_head, "GET /abs HTTP/1.1", 17), "%s", be.last_head); /* origin-form upstream */
	pthread_mutex_unlock(&be.mu);
}
END_TEST

START_TEST(rejected_config_keeps_old)
{
	struct px_snapshot *s = NULL;
	char err[256] = "";
	const char *r;

	/* a retry condition nobody knows: invalid, NACKed with the router's reason */
	ck_assert_int_eq(pxspec_build("outbound\nlistener 9080\nvhost 9080 r reviews:9080\n"
				      "route 9080 r / cluster=x retry_on=bogus\n", &s, err, sizeof(err)), 0);
	ck_assert_int_lt(engine_apply(eng, s, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "unknown condition") != NULL, "%s", err);
	px_snapshot_unref(s);
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	/* a valid swap: the next request takes the new routes */
	apply("outbound\nlistener 9080\nvhost 9080 r reviews:9080\nroute 9080 r / direct=204\n"
	      "cluster c%d static 127.0.0.1:%d\n", be.port);
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 204", 12), "%s", r);
}
END_TEST

START_TEST(smuggling_400)
{
	const char *r = roundtrip("POST / HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: reviews\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 400", 12), "%s", r);
	ck_assert_int_eq(count(r, "HTTP/1.1"), 1);
	ck_assert_int_eq(be.reqs, 0);
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
}
END_TEST

START_TEST(admin_pages)
{
	struct mesh_buf b;
	const char *ct = NULL;
	char want[128];

	roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	snprintf(want, sizeof(want), "outbound|9080||reviews::127.0.0.1:%d::rq_total::1\n", be.port);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	ck_assert_ptr_nonnull(strstr(b.data, "::health_flags::healthy"));
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/stats/prometheus", 17, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	ck_assert_ptr_nonnull(strstr(b.data, "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"outbound|9080||reviews\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"outbound|9080||reviews\"} 1\n"));
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/nope", 5, &b, &ct), -ENOENT);
	mesh_buf_cleanup(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, keepalive_through_pool);
	tcase_add_test(tc, no_route_404);
	tcase_add_test(tc, connect_failure_503);
	tcase_add_test(tc, retry_on_5xx);
	tcase_add_test(tc, route_timeout_504);
	tcase_add_test(tc, direct_response);
	tcase_add_test(tc, absolute_form);
	tcase_add_test(tc, rejected_config_keeps_old);
	tcase_add_test(tc, smuggling_400);
	tcase_add_test(tc, admin_pages);
	tcase_add_test(tc, per_try_idle_timeout_504);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
