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
 *
 * Bound listeners (case "bound": Listeners with bind_to_port unset, as
 * captureMode NONE sends them): each served by its own chain, the socket
 * kept across an update that keeps its address (a connection opened before
 * the update is served after it), a bind failure NACKed with the old
 * config and sockets left as they were, a removed listener refusing new
 * connections while its in-flight request finishes.
 */
#include "dataplane/engine.h"
#include "dataplane/engine-t.h"
#include "pxspec.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
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
			} else if (!strncmp(in, "GET /stall", 10)) {
				/* a response that starts, then stops moving */
				static const char part[] = "HTTP/1.1 200 X\r\nContent-Length: 10\r\n\r\nab";

				(void)!write(fd, part, sizeof(part) - 1);
				usleep(600 * 1000);
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

static void apply2(const char *fmt, int p1, int p2)
{
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(spec, sizeof(spec), fmt, p1, p2);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
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
	struct engine_opts o = { .outbound_addr = "127.0.0.1:0", .inbound_addr = "127.0.0.1:0" };

	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(engine_new(loop, &o, &eng), 0);
	be_start(&be);
	apply(SPEC, be.port);
	ck_assert_int_gt(engine_outbound_port(eng), 0);
}

static struct backend app;

static void teardown(void)
{
	engine_free(eng);
	be_stop(&be);
	if (app.th) {
		be_stop(&app);
		memset(&app, 0, sizeof(app));
	}
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
	ck_assert_msg(strstr(b.data, "envoy_cluster_upstream_rq_per_try_timeout{cluster_name=\"outbound|9080||reviews\"} 2\n"),
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

/* RFC 9112 3.2.2: an absolute-form target with an empty path has the path
 * "/" (routed as "/", sent upstream as "/" or "/?query"), as Envoy does. */
START_TEST(absolute_form_empty_path)
{
	const char *r = roundtrip("GET http://reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");

	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	pthread_mutex_lock(&be.mu);
	ck_assert_msg(!strncmp(be.last_head, "GET / HTTP/1.1\r\n", 16), "%s", be.last_head);
	pthread_mutex_unlock(&be.mu);
	r = roundtrip("GET http://reviews:9080?x=1 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	pthread_mutex_lock(&be.mu);
	ck_assert_msg(!strncmp(be.last_head, "GET /?x=1 HTTP/1.1\r\n", 20), "%s", be.last_head);
	pthread_mutex_unlock(&be.mu);
	ck_assert_int_eq(be.reqs, 2);
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

/* A snapshot with t's set taken from another one (the other types' resources
 * are base's own objects, as the xDS client keeps them when unchanged). */
static struct px_snapshot *with_set(struct px_snapshot *base, enum xds_type t, const struct px_snapshot *from)
{
	struct px_snapshot *s = NULL;

	ck_assert_int_eq(px_snapshot_replace(base, t, (const struct px_resource *const *)from->sets[t].v,
					     from->sets[t].n, &s), 0);
	return s;
}

static void apply_snap(struct px_snapshot *s)
{
	char err[256] = "";

	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
}

static struct px_snapshot *spec_snap(const char *fmt, int port)
{
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(spec, sizeof(spec), fmt, port, port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	return s;
}

/* A cluster whose Cluster and EDS resources did not change keeps its
 * compiled state over another type's update (no recompile, no heap churn);
 * a changed EDS or Cluster resource is compiled again and takes effect. */
START_TEST(unchanged_cluster_kept)
{
	static const char *REQ = "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n";
	const char *name = "outbound|9080||reviews";
	struct px_snapshot *s1 = spec_snap(SPEC, be.port), *dead = spec_snap(SPEC, 1), *s, *cb;
	struct px_cluster *cl;
	struct up_cluster *up;
	struct up_hostset *hs;
	const char *r;

	apply_snap(s1);
	cl = px_config_cluster(eng->cur, name);
	ck_assert_ptr_nonnull(cl);
	up = cl->up;
	hs = cl->hs;
	/* routes only: the cluster's compiled objects stay */
	s = with_set(s1, XDS_ROUTE, dead);
	apply_snap(s);
	px_snapshot_unref(s);
	ck_assert_ptr_eq(px_config_cluster(eng->cur, name), cl);
	ck_assert_ptr_eq(cl->up, up);
	ck_assert_ptr_eq(cl->hs, hs);
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	/* new endpoints (nothing listens on port 1): new hosts, requests fail */
	s = with_set(s1, XDS_ENDPOINT, dead);
	apply_snap(s);
	px_snapshot_unref(s);
	ck_assert_ptr_ne(cl->hs, hs);
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 503", 12), "%s", r);
	/* and back */
	apply_snap(s1);
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	/* a changed Cluster resource, same endpoints: compiled again */
	hs = cl->hs;
	up = cl->up;
	cb = spec_snap("outbound\nlistener 9080\nvhost 9080 r reviews:9080\nroute 9080 r / cluster=outbound|9080||reviews\n"
		       "cluster outbound|9080||reviews eds 127.0.0.1:%d max_connections=7\n", be.port);
	s = with_set(s1, XDS_CLUSTER, cb);
	apply_snap(s);
	px_snapshot_unref(s);
	ck_assert_ptr_ne(cl->up, up);
	ck_assert_ptr_ne(cl->hs, hs);
	ck_assert_uint_eq(cl->max_connections, 7);
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	px_snapshot_unref(cb);
	px_snapshot_unref(dead);
	px_snapshot_unref(s1);
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

/* An endpoint's engine host (pools, counters) is made when the load
 * balancer first picks it; /clusters lists every endpoint all the same,
 * and a made host keeps its counters over updates that keep its endpoint. */
static const char *clusters_page_text(struct mesh_buf *b)
{
	const char *ct = NULL;

	mesh_buf_reset(b);
	ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, b, &ct), 0);
	mesh_buf_putc(b, 0);
	return b->data;
}

START_TEST(hosts_made_when_picked)
{
	static const char *REQ = "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n";
	const char *name = "outbound|9080||reviews";
	struct px_cluster *cl = px_config_cluster(eng->cur, name);
	struct mesh_buf b;
	char want[128];
	const char *r;

	mesh_buf_init(&b, 1 << 20);
	ck_assert_ptr_nonnull(cl);
	ck_assert_uint_eq(cl->n_hosts, 0);
	snprintf(want, sizeof(want), "%s::127.0.0.1:%d::rq_total::0\n", name, be.port);
	ck_assert_msg(strstr(clusters_page_text(&b), want) != NULL, "%s", b.data);
	ck_assert_ptr_nonnull(strstr(b.data, "outbound|9080||dead::127.0.0.1:1::cx_total::0\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "outbound|9080||dead::127.0.0.1:1::health_flags::healthy\n"));
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_uint_eq(cl->n_hosts, 1);
	snprintf(want, sizeof(want), "%s::127.0.0.1:%d::rq_total::1\n", name, be.port);
	ck_assert_msg(strstr(clusters_page_text(&b), want) != NULL, "%s", b.data);
	/* the same endpoints from new resources: compiled again, the host stays */
	apply(SPEC, be.port);
	ck_assert_ptr_eq(px_config_cluster(eng->cur, name), cl);
	ck_assert_uint_eq(cl->n_hosts, 1);
	ck_assert_msg(strstr(clusters_page_text(&b), want) != NULL, "%s", b.data);
	r = roundtrip(REQ);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	snprintf(want, sizeof(want), "%s::127.0.0.1:%d::rq_total::2\n", name, be.port);
	ck_assert_msg(strstr(clusters_page_text(&b), want) != NULL, "%s", b.data);
	/* its endpoint gone: so is the host */
	apply(SPEC, 1);
	ck_assert_uint_eq(cl->n_hosts, 0);
	ck_assert_ptr_null(strstr(clusters_page_text(&b), want));
	mesh_buf_cleanup(&b);
}
END_TEST

/* A cluster's counters are allocated at its first count: a sidecar's
 * ~1,000 clusters, most never used, hold none, and reading the stats pages
 * (Prometheus scrapes them) does not make them; they read as zeros. */
START_TEST(cluster_counters_made_when_counted)
{
	struct px_cluster *used = px_config_cluster(eng->cur, "outbound|9080||reviews");
	struct px_cluster *idle = px_config_cluster(eng->cur, "outbound|9080||dead");
	struct mesh_buf b;
	const char *ct = NULL;

	ck_assert_ptr_nonnull(used);
	ck_assert_ptr_nonnull(idle);
	ck_assert_ptr_null(used->st);
	ck_assert_ptr_null(idle->st);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/stats/prometheus", 17, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	ck_assert_ptr_nonnull(strstr(b.data, "envoy_cluster_upstream_rq_total{cluster_name=\"outbound|9080||dead\"} 0\n"));
	ck_assert_ptr_nonnull(
		strstr(b.data, "envoy_cluster_outlier_detection_ejections_active{cluster_name=\"outbound|9080||dead\"} 0\n"));
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, &b, &ct), 0);
	ck_assert_ptr_null(used->st);
	ck_assert_ptr_null(idle->st);
	ck_assert_uint_eq(px_cst_ro(idle)->rq_total, 0);
	roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_ptr_nonnull(used->st);
	ck_assert_uint_eq(used->st->rq_total, 1);
	ck_assert_ptr_null(idle->st);
	mesh_buf_cleanup(&b);
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
	ck_assert_ptr_nonnull(strstr(b.data, "envoy_cluster_upstream_rq_total{cluster_name=\"outbound|9080||reviews\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "envoy_cluster_upstream_cx_active{cluster_name=\"outbound|9080||reviews\"} 1\n"));
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/nope", 5, &b, &ct), -ENOENT);
	mesh_buf_cleanup(&b);
}
END_TEST

/* --- bound listeners: the test thread is the client, driving the loop while it waits */

static int connect_to(const char *ip, int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sa.sin_addr);
	sa.sin_port = htons((uint16_t)port);
	/* the kernel completes the handshake from the listen backlog: no need for the loop */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* Runs the loop and reads fd until the peer closes (or ~10 s pass). */
static const char *drive(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	int i;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (i = 0; i < 2000; i++) {
		ssize_t r;

		ck_assert_int_ge(ev_run_once(loop, 5), 0);
		while ((r = read(fd, buf + len, cap - len - 1)) > 0)
			len += (size_t)r;
		if (r == 0 || (r < 0 && errno != EAGAIN))
			break;
	}
	buf[len] = 0;
	return buf;
}

static const char *ask(const char *ip, int port, const char *req)
{
	static char buf[16384];
	int fd = connect_to(ip, port);

	ck_assert_msg(fd >= 0, "connect %s:%d: %s", ip, port, strerror(-fd));
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	drive(fd, buf, sizeof(buf));
	close(fd);
	return buf;
}

static const char CLOSE_REQ[] = "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n";
static const char SLOW_REQ[] = "GET /slow HTTP/1.1\r\nHost: app\r\n\r\n";

/* The backend serves one connection at a time: the application behind the
 * inbound listener is another one (app, stopped by teardown). */

/* captureMode NONE's shape: no virtual listeners, an outbound listener on
 * 127.0.0.1 over RDS, an inbound one to the application's cluster. */
static const char *NONE_SPEC =
	"bind out app-out 127.0.0.1:0 9080\n"
	"bind in app-in 127.0.0.2:0 inbound|8080||\n"
	"vhost 9080 r reviews,reviews:9080\n"
	"route 9080 r / cluster=outbound|9080||reviews\n"
	"cluster outbound|9080||reviews eds 127.0.0.1:%d\n"
	"cluster inbound|8080|| static 127.0.0.1:%d\n";

static void apply_none(void)
{
	be_start(&app);
	apply2(NONE_SPEC, be.port, app.port);
}

START_TEST(bound_serve_own_chains)
{
	struct mesh_buf b;
	const char *r, *ct = NULL;
	char want[128];
	int po, pi;

	ck_assert_int_gt(engine_outbound_port(eng), 0);
	apply_none();
	/* virtualOutbound/virtualInbound left the config: their sockets closed */
	ck_assert_int_eq(engine_outbound_port(eng), -ENOTCONN);
	po = engine_listener_port(eng, "app-out");
	pi = engine_listener_port(eng, "app-in");
	ck_assert_int_gt(po, 0);
	ck_assert_int_gt(pi, 0);
	ck_assert_int_eq(engine_listener_port(eng, "nosuch"), -ENOENT);
	/* outbound: the route config its RDS names */
	r = ask("127.0.0.1", po, "GET /o HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "hello"), "%s", r);
	r = ask("127.0.0.1", po, "GET /o HTTP/1.1\r\nHost: nosuch:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 404", 12), "%s", r);
	/* inbound: the plaintext chain's inline route config, whatever the Host (not the TLS chain's BlackHole) */
	r = ask("127.0.0.2", pi, "GET /i HTTP/1.1\r\nHost: whatever:1234\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "hello"), "%s", r);
	ck_assert_int_eq(be.reqs, 1);
	ck_assert_int_eq(app.reqs, 1);
	/* the admin views */
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/listeners", 10, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	snprintf(want, sizeof(want), "app-out::127.0.0.1:%d\n", po);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	snprintf(want, sizeof(want), "app-in::127.0.0.2:%d\n", pi);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	ck_assert_msg(strstr(b.data, "virtualOutbound") == NULL, "%s", b.data);
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/stats/prometheus", 17, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	snprintf(want, sizeof(want), "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_%d\"} 2\n", po);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	snprintf(want, sizeof(want), "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.2_%d\"} 1\n", pi);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(bound_keeps_socket)
{
	char buf[4096];
	const char *r;
	int po, fd;

	apply_none();
	po = engine_listener_port(eng, "app-out");
	ck_assert_int_gt(po, 0);
	/* a connection accepted before the update (idle, kept alive) */
	fd = connect_to("127.0.0.1", po);
	ck_assert_int_ge(fd, 0);
	r = ask("127.0.0.1", po, "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	/* the same address, other routes: the same socket (port 0 would pick another one if it were rebound) */
	apply("bind out app-out 127.0.0.1:0 9080\nvhost 9080 r reviews:9080\nroute 9080 r / direct=204\n"
	      "cluster c%d static 127.0.0.1:%d\n", be.port);
	ck_assert_int_eq(engine_listener_port(eng, "app-out"), po);
	ck_assert_int_eq(engine_listener_port(eng, "app-in"), -ENOENT);
	/* the connection from before the update is served, by the new routes */
	ck_assert_int_gt(write(fd, CLOSE_REQ, strlen(CLOSE_REQ)), 0);
	r = drive(fd, buf, sizeof(buf));
	ck_assert_msg(!strncmp(r, "HTTP/1.1 204", 12), "%s", r);
	close(fd);
	r = ask("127.0.0.1", po, "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 204", 12), "%s", r);
}
END_TEST

START_TEST(bound_bind_failure_nacks)
{
	struct px_snapshot *s = NULL;
	char spec[1024], err[256] = "", want[128];
	const char *r;
	int po, taken, blocker = listen_any(&taken);

	apply_none();
	po = engine_listener_port(eng, "app-out");
	/* a new listener on a port someone holds; another new one, bound
	 * first (LDS order is by name), must be closed again */
	snprintf(spec, sizeof(spec),
		 "bind out a-fresh 127.0.0.4:0 9080\n"
		 "bind out app-out 127.0.0.1:0 9080\n"
		 "bind out z-taken 127.0.0.1:%d 9080\n"
		 "vhost 9080 r reviews:9080\nroute 9080 r / direct=204\n", taken);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(engine_apply(eng, s, err, sizeof(err)), -EADDRINUSE);
	px_snapshot_unref(s);
	snprintf(want, sizeof(want), "z-taken: cannot bind '127.0.0.1:%d': Address already in use", taken);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	/* nothing changed: same sockets, same routes, the fresh one gone */
	ck_assert_int_eq(engine_listener_port(eng, "app-out"), po);
	ck_assert_int_gt(engine_listener_port(eng, "app-in"), 0);
	ck_assert_int_eq(engine_listener_port(eng, "a-fresh"), -ENOENT);
	ck_assert_int_eq(engine_listener_port(eng, "z-taken"), -ENOENT);
	r = ask("127.0.0.1", po, "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "hello"), "%s", r);
	/* two listeners on one address: Envoy's refusal */
	ck_assert_int_eq(pxspec_build("bind out a 127.0.0.1:7 9080\nbind out b 127.0.0.1:7 9080\n", &s, err,
				      sizeof(err)), 0);
	ck_assert_int_eq(engine_apply(eng, s, err, sizeof(err)), -EINVAL);
	px_snapshot_unref(s);
	ck_assert_msg(strstr(err, "duplicate address '127.0.0.1:7'") != NULL, "%s", err);
	/* the port freed: the same update now binds */
	close(blocker);
	snprintf(spec, sizeof(spec), "bind out z-taken 127.0.0.1:%%d 9080\nvhost 9080 r reviews:9080\n"
		 "route 9080 r / direct=204\ncluster c%%d static 127.0.0.1:1\n");
	apply(spec, taken);
	ck_assert_int_eq(engine_listener_port(eng, "z-taken"), taken);
	r = ask("127.0.0.1", taken, "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 204", 12), "%s", r);
}
END_TEST

/* captureMode NONE on the workload's own port (tests/xds/0046): meshd
 * sends an inbound listener on 0.0.0.0:PORT and an outbound one on
 * 127.0.0.1:PORT; Envoy binds both (SO_REUSEPORT), so must meshproxy, and
 * each address keeps its own chain. */
START_TEST(bound_wildcard_and_loopback_share_port)
{
	char spec[1024];
	const char *r;
	int port, held = listen_any(&port);

	close(held); /* a port free a moment ago */
	be_start(&app);
	snprintf(spec, sizeof(spec),
		 "bind in app-in 0.0.0.0:%d inbound|8080||\n"
		 "bind out app-out 127.0.0.1:%d 9080\n"
		 "vhost 9080 r reviews:9080\nroute 9080 r / direct=204\n"
		 "cluster inbound|8080|| static 127.0.0.1:%%d\n", port, port);
	apply(spec, app.port);
	ck_assert_int_eq(engine_listener_port(eng, "app-in"), port);
	ck_assert_int_eq(engine_listener_port(eng, "app-out"), port);
	/* 127.0.0.1: the outbound chain (the more specific socket) */
	r = ask("127.0.0.1", port, "GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 204", 12), "%s", r);
	/* another local address: the wildcard inbound chain, to the application */
	r = ask("127.0.0.2", port, "GET /i HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "hello"), "%s", r);
	ck_assert_int_eq(app.reqs, 1);
}
END_TEST

START_TEST(bound_removal_closes)
{
	char buf[4096];
	const char *r;
	int pi, fd_idle, fd_busy, i;

	apply_none();
	pi = engine_listener_port(eng, "app-in");
	ck_assert_int_gt(pi, 0);
	fd_idle = connect_to("127.0.0.2", pi);
	fd_busy = connect_to("127.0.0.2", pi);
	ck_assert_int_ge(fd_idle, 0);
	ck_assert_int_ge(fd_busy, 0);
	/* an in-flight request: the backend holds /slow 300 ms */
	ck_assert_int_gt(write(fd_busy, SLOW_REQ, strlen(SLOW_REQ)), 0);
	for (i = 0; i < 2000 && app.reqs == 0; i++)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	ck_assert_int_eq(app.reqs, 1);
	/* app-in leaves the configuration */
	apply("bind out app-out 127.0.0.1:0 9080\nvhost 9080 r reviews:9080\nroute 9080 r / direct=204\n"
	      "cluster c%d static 127.0.0.1:%d\n", be.port);
	ck_assert_int_eq(engine_listener_port(eng, "app-in"), -ENOENT);
	ck_assert_int_eq(connect_to("127.0.0.2", pi), -ECONNREFUSED); /* no longer accepting */
	/* the in-flight request finishes, and its connection then closes */
	r = drive(fd_busy, buf, sizeof(buf));
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "slow"), "%s", r);
	close(fd_busy);
	/* the idle one was closed by the drain */
	r = drive(fd_idle, buf, sizeof(buf));
	ck_assert_str_eq(r, "");
	close(fd_idle);
}
END_TEST

/* --- the HCM's timers and 100-continue (Envoy's http_connection_manager.proto) */

static const char *SPEC_HCM =
	"outbound registry_only\n"
	"listener 9080 %s\n"
	"vhost 9080 r reviews,reviews:9080\n"
	"route 9080 r /slow/on cluster=outbound|9080||reviews timeout=0 idle_timeout=50\n"
	"route 9080 r /slow/off cluster=outbound|9080||reviews timeout=0 idle_timeout=0\n"
	"route 9080 r / cluster=outbound|9080||reviews timeout=0\n"
	"cluster outbound|9080||reviews eds 127.0.0.1:%d\n";

static void apply_hcm(const char *hcm_opts)
{
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(spec, sizeof(spec), SPEC_HCM, hcm_opts, be.port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
}

static uint64_t prom(const char *metric)
{
	struct mesh_buf b;
	const char *ct, *p;
	uint64_t v = UINT64_MAX;

	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/stats/prometheus", 17, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	p = strstr(b.data, metric);
	if (p)
		v = strtoull(p + strlen(metric), NULL, 10);
	mesh_buf_cleanup(&b);
	return v;
}

#define CX_ACTIVE "envoy_cluster_upstream_cx_active{cluster_name=\"outbound|9080||reviews\"} "

START_TEST(stream_idle_408)
{
	const char *r;

	/* the backend is silent for 300 ms: past the HCM's 50 ms, no route timeout */
	apply_hcm("stream_idle=50");
	r = roundtrip("GET /slow HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 408", 12), "%s", r);
	ck_assert_msg(strstr(r, "stream timeout") != NULL, "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
	/* the upstream connection was closed, not pooled */
	ck_assert_uint_eq(prom(CX_ACTIVE), 0);
}
END_TEST

START_TEST(stream_idle_route_overrides)
{
	const char *r;

	/* HCM off (what Istio sends, 0s), the route's 50 ms on */
	apply_hcm("stream_idle=0");
	r = roundtrip("GET /slow/on HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 408", 12), "%s", r);
	/* HCM 100 ms, the route's 0 turns it off: the slow answer arrives */
	apply_hcm("stream_idle=100");
	r = roundtrip("GET /slow/off HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_msg(strstr(r, "slow") != NULL, "%s", r);
}
END_TEST

START_TEST(stream_idle_after_response_started_resets)
{
	const char *r;

	apply_hcm("stream_idle=100");
	r = roundtrip("GET /stall HTTP/1.1\r\nHost: reviews:9080\r\n\r\n");
	/* the head and the first bytes went out; then the connection is cut, no 408 */
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_msg(strstr(r, "\r\n\r\nab") != NULL && !strstr(r, "408"), "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
	ck_assert_uint_eq(prom(CX_ACTIVE), 0);
}
END_TEST

START_TEST(request_headers_timeout_closes)
{
	const char *r;

	/* a keep-alive request teaches the connection its port; the next head
	 * never ends: Envoy's local reply, 408 "request header timeout", then
	 * the connection closes (it used to close without an answer) */
	apply_hcm("headers_timeout=100");
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\n\r\nGET /b HTTP/1.1\r\nHost: rev");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && count(r, "HTTP/1.1 ") == 2, "%s", r);
	ck_assert_msg(strstr(r, "HTTP/1.1 408 ") != NULL && strstr(r, "request header timeout") != NULL, "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_header_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
}
END_TEST

START_TEST(stream_idle_bounds_a_head_being_read)
{
	const char *r;

	/* issue 16: Envoy's stream exists from a head's first byte, so its
	 * stream idle timeout ends a head that never completes: 408 "stream
	 * timeout" (flag SI), counted as an idle timeout */
	apply_hcm("stream_idle=100");
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\n\r\nGET /b HTTP/1.1\r\nHost: rev");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && count(r, "HTTP/1.1 ") == 2, "%s", r);
	ck_assert_msg(strstr(r, "HTTP/1.1 408 ") != NULL && strstr(r, "stream timeout") != NULL, "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_header_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 0);
}
END_TEST

START_TEST(request_timeout_408_for_an_unfinished_body)
{
	const char *r;

	/* issue 16: Envoy's request_timeout: 10 of 100 body bytes sent, the
	 * rest never comes: 408 "request timeout" before any response, the
	 * connection closed; a whole request within it is not affected */
	apply_hcm("request_timeout=100");
	r = roundtrip("POST /a HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 100\r\n\r\n0123456789");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 408", 12) && strstr(r, "request timeout") != NULL, "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
}
END_TEST

START_TEST(connection_idle_timeout_closes)
{
	const char *r;

	/* common_http_protocol_options.idle_timeout: the client waits for the close */
	apply_hcm("idle=100");
	r = roundtrip("GET /a HTTP/1.1\r\nHost: reviews:9080\r\n\r\n");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_uint_eq(prom("envoy_http_downstream_rq_header_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 0);
	ck_assert_uint_eq(prom("envoy_http_downstream_cx_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} "), 1);
}
END_TEST

START_TEST(expect_100_answered_here_without_proxy_100)
{
	const char *r;
	char head[4096];

	apply_hcm("proxy_100=0");
	r = roundtrip("POST /a HTTP/1.1\r\nHost: reviews:9080\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
		      "Connection: close\r\n\r\nhello");
	ck_assert_msg(!strncmp(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 37), "%s", r);
	pthread_mutex_lock(&be.mu);
	memcpy(head, be.last_head, sizeof(head));
	pthread_mutex_unlock(&be.mu);
	ck_assert_msg(strcasestr(head, "expect:") == NULL, "%s", head); /* stripped upstream */
}
END_TEST

START_TEST(expect_100_forwarded_with_proxy_100)
{
	const char *r;
	char head[4096];

	apply_hcm("proxy_100=1");
	r = roundtrip("POST /a HTTP/1.1\r\nHost: reviews:9080\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
		      "Connection: close\r\n\r\nhello");
	/* this backend sends no 100: nor does the proxy */
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	pthread_mutex_lock(&be.mu);
	memcpy(head, be.last_head, sizeof(head));
	pthread_mutex_unlock(&be.mu);
	ck_assert_msg(strcasestr(head, "expect: 100-continue") != NULL, "%s", head);
}
END_TEST

/* --- the loop guard: meshproxy never proxies to its own sockets (issue 16) */

#define LOOP_REFUSED "\nmeshproxy_http_loop_refused "
#define CX_TOTAL "envoy_http_downstream_cx_total{http_conn_manager_prefix=\"meshproxy\"} "

static const char *LOOP_SPEC =
	"outbound\n"
	"inbound\n"
	"cluster PassthroughCluster original_dst\n"
	"cluster inbound|%d|| static 127.0.0.1:%d\n";

/* A request straight to a port (the test thread is the client). */
static const char *ask_port(int port, const char *fmt, int host_port)
{
	static char req[512];

	snprintf(req, sizeof(req), fmt, host_port);
	return ask("127.0.0.1", port, req);
}

START_TEST(loop_passthrough_to_self)
{
	const char *r;
	int po, pi;

	apply(LOOP_SPEC, be.port);
	po = engine_outbound_port(eng);
	pi = engine_inbound_port(eng);
	/* PassthroughCluster to virtualOutbound itself: absolute form, Host, localhost */
	r = ask_port(po, "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", po);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	r = ask_port(po, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", po);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	r = ask_port(po, "GET / HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n", po);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	/* the unspecified address and another loopback one reach a 127.0.0.1 socket only if it is 0.0.0.0 */
	r = ask_port(po, "GET / HTTP/1.1\r\nHost: 0.0.0.0:%d\r\nConnection: close\r\n\r\n", po);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 4);
	/* one downstream connection per request: nothing came back in */
	ck_assert_uint_eq(prom(CX_TOTAL), 4);
	/* outbound to virtualInbound is a hairpin, as Istio's iptables make it
	 * (a workload calling its own address): it comes in once, and the
	 * inbound side answers a request for its own port as Istio's
	 * virtualInbound-blackhole chain does (502, no loop counted); the
	 * request never reaches a backend */
	r = ask_port(po, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", pi);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_uint_eq(prom(CX_TOTAL), 6);
	ck_assert_int_eq(be.reqs, 0);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 4);
	/* a real destination still passes through */
	r = ask_port(po, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	ck_assert_int_eq(be.reqs, 1);
}
END_TEST

/* Istio's virtualOutbound-blackhole / virtualInbound-blackhole chains
 * (destination_port 15001 / 15006) answer as BlackHoleCluster, whatever
 * ports meshproxy listens on. */
START_TEST(loop_blackhole_chains)
{
	const char *r;

	apply(LOOP_SPEC, be.port);
	r = ask_port(engine_outbound_port(eng), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
		     15001);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r); /* not 503 UF: nothing was connected */
	r = ask_port(engine_inbound_port(eng), "GET / HTTP/1.1\r\nHost: x:%d\r\nConnection: close\r\n\r\n", 15006);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 0); /* refused by the chains, before any destination */
}
END_TEST

/* A connection straight to the inbound port reaches only the ports the
 * workload declares (an inbound|PORT|| cluster): never another loopback
 * port, the admin's among them. */
START_TEST(inbound_undeclared_port_refused)
{
	struct backend other;
	const char *r;
	int pi;

	be_start(&other);
	apply(LOOP_SPEC, be.port);
	pi = engine_inbound_port(eng);
	r = ask_port(pi, "GET / HTTP/1.1\r\nHost: x:%d\r\nConnection: close\r\n\r\n", be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12) && strstr(r, "hello"), "%s", r);
	ck_assert_int_eq(be.reqs, 1);
	r = ask_port(pi, "POST /quitquitquit HTTP/1.1\r\nHost: x:%d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", other.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_int_eq(other.reqs, 0);
	be_stop(&other);
}
END_TEST

/* The admin/status/health ports (engine_self_add()) are never an upstream,
 * not even when a configuration declares them. */
START_TEST(admin_port_never_upstream)
{
	const char *r;
	int pi;

	ck_assert_int_eq(engine_self_add(eng, "nonsense", be.port), -EINVAL);
	ck_assert_int_eq(engine_self_add(eng, "127.0.0.1:15000", be.port), 0); /* the backend plays the admin */
	apply(LOOP_SPEC, be.port);
	pi = engine_inbound_port(eng);
	r = ask_port(pi, "POST /quitquitquit HTTP/1.1\r\nHost: x:%d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	r = ask_port(engine_outbound_port(eng), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
		     be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_int_eq(be.reqs, 0);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 2);
}
END_TEST

/* A bound listener (captureMode NONE) routing to PassthroughCluster with
 * its own address as the Host; a wildcard one reached through another local
 * address; a Sidecar ingress whose defaultEndpoint is its own address. */
START_TEST(loop_bound_listeners)
{
	char spec[1024];
	const char *r;
	int p1, p2, held1 = listen_any(&p1), held2 = listen_any(&p2);

	close(held1);
	close(held2);
	snprintf(spec, sizeof(spec),
		 "bind out app-out 127.0.0.1:%d 9080\n"
		 "bind out any-out 0.0.0.0:%d 9080\n"
		 "bind in app-in 127.0.0.2:%%d inbound|8080||\n"
		 "vhost 9080 r *\nroute 9080 r / cluster=PassthroughCluster\n"
		 "cluster PassthroughCluster original_dst\n"
		 "cluster inbound|8080|| static 127.0.0.2:%%d\n", p1, p2);
	{
		int p3, held3 = listen_any(&p3);

		close(held3);
		apply(spec, p3);
		r = ask("127.0.0.2", p3, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
		ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	}
	r = ask_port(p1, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", p1);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	r = ask_port(p1, "GET / HTTP/1.1\r\nHost: 127.0.0.9:%d\r\nConnection: close\r\n\r\n", p2);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	r = ask_port(p1, "GET / HTTP/1.1\r\nHost: 0.0.0.0:%d\r\nConnection: close\r\n\r\n", p2);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 502", 12), "%s", r);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 4);
	ck_assert_uint_eq(prom(CX_TOTAL), 4);
	/* 127.0.0.9 on the 127.0.0.1-only port is another socket: connected (and refused by the kernel) */
	r = ask_port(p1, "GET / HTTP/1.1\r\nHost: 127.0.0.9:%d\r\nConnection: close\r\n\r\n", p1);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 503", 12), "%s", r);
	ck_assert_uint_eq(prom(LOOP_REFUSED), 4);
}
END_TEST

/* Envoy's cleanup_interval (5 s) for ORIGINAL_DST hosts: a passthrough
 * destination unused for a sweep leaves /clusters (bounded wait, no timing
 * asserted: only that it goes, and that a used one comes back). */
START_TEST(passthrough_hosts_cleaned_up)
{
	struct mesh_buf b;
	const char *r, *ct;
	char want[96];
	int i, gone = 0;

	apply(LOOP_SPEC, be.port);
	r = ask_port(engine_outbound_port(eng), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
		     be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	snprintf(want, sizeof(want), "PassthroughCluster::127.0.0.1:%d::", be.port);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
	for (i = 0; i < 3000 && !gone; i++) {
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
		mesh_buf_reset(&b);
		ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, &b, &ct), 0);
		mesh_buf_putc(&b, 0);
		gone = strstr(b.data, want) == NULL;
	}
	ck_assert_msg(gone, "%s", b.data);
	r = ask_port(engine_outbound_port(eng), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
		     be.port);
	ck_assert_msg(!strncmp(r, "HTTP/1.1 200", 12), "%s", r);
	mesh_buf_reset(&b);
	ck_assert_int_eq(engine_admin_page(eng, "/clusters", 9, &b, &ct), 0);
	mesh_buf_putc(&b, 0);
	ck_assert_msg(strstr(b.data, want) != NULL, "%s", b.data);
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
	tcase_add_test(tc, unchanged_cluster_kept);
	tcase_add_test(tc, hosts_made_when_picked);
	tcase_add_test(tc, connect_failure_503);
	tcase_add_test(tc, retry_on_5xx);
	tcase_add_test(tc, route_timeout_504);
	tcase_add_test(tc, direct_response);
	tcase_add_test(tc, absolute_form);
	tcase_add_test(tc, absolute_form_empty_path);
	tcase_add_test(tc, rejected_config_keeps_old);
	tcase_add_test(tc, smuggling_400);
	tcase_add_test(tc, admin_pages);
	tcase_add_test(tc, cluster_counters_made_when_counted);
	tcase_add_test(tc, stream_idle_408);
	tcase_add_test(tc, stream_idle_route_overrides);
	tcase_add_test(tc, stream_idle_after_response_started_resets);
	tcase_add_test(tc, request_headers_timeout_closes);
	tcase_add_test(tc, stream_idle_bounds_a_head_being_read);
	tcase_add_test(tc, request_timeout_408_for_an_unfinished_body);
	tcase_add_test(tc, connection_idle_timeout_closes);
	tcase_add_test(tc, expect_100_answered_here_without_proxy_100);
	tcase_add_test(tc, expect_100_forwarded_with_proxy_100);
	tcase_add_test(tc, per_try_idle_timeout_504);
	suite_add_tcase(s, tc);
	tc = tcase_create("bound");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bound_serve_own_chains);
	tcase_add_test(tc, bound_keeps_socket);
	tcase_add_test(tc, bound_bind_failure_nacks);
	tcase_add_test(tc, bound_wildcard_and_loopback_share_port);
	tcase_add_test(tc, bound_removal_closes);
	suite_add_tcase(s, tc);
	tc = tcase_create("loop");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, loop_passthrough_to_self);
	tcase_add_test(tc, loop_blackhole_chains);
	tcase_add_test(tc, inbound_undeclared_port_refused);
	tcase_add_test(tc, admin_port_never_upstream);
	tcase_add_test(tc, loop_bound_listeners);
	tcase_add_test(tc, passthrough_hosts_cleaned_up);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
