/*
 * test_dns.c - issue 13: the resolver (dns.c) on a real loop, the address
 * family rules over hand-built getaddrinfo() lists, the load assignment a
 * DNS cluster's hosts are built from (dnscl_cla), the host-set update
 * keeping the hosts whose address stays, and STRICT_DNS / LOGICAL_DNS
 * clusters through the engine (a request waits for the first resolution,
 * then reaches the backend "localhost" names; a name that does not
 * resolve answers 503 UH and counts update_failure).
 *
 * Names used: "localhost" (in /etc/hosts on every Debian system) and
 * "no-such-host.invalid" (RFC 6761: never resolves).
 */
#include "dataplane/dns.h"
#include "dataplane/dnscl.h"
#include "dataplane/engine.h"
#include "dataplane/engine-t.h"
#include "pxspec.h"

#include "common/arena.h"

#include <arpa/inet.h>
#include <check.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* --- the resolver */

struct answer {
	int calls, status;
	size_t n;
	struct dns_addr a[DNS_ADDRS_MAX];
};

static void on_answer(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct answer *w = arg;

	w->calls++;
	w->status = status;
	w->n = n;
	if (n)
		memcpy(w->a, addrs, n * sizeof(*addrs));
}

static void run_until(struct ev_loop *loop, const int *flag, int ms)
{
	int i;

	for (i = 0; i < ms && !*flag; i++)
		ck_assert_int_ge(ev_run_once(loop, 1), 0);
}

static int has_v4(const struct answer *w, const char *ip)
{
	struct in_addr want;
	size_t i;

	inet_pton(AF_INET, ip, &want);
	for (i = 0; i < w->n; i++)
		if (w->a[i].u.sa.sa_family == AF_INET && w->a[i].u.in4.sin_addr.s_addr == want.s_addr)
			return 1;
	return 0;
}

START_TEST(resolve_literal_and_localhost)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns_resolver *r;
	struct answer lit = { 0 }, lh = { 0 };
	struct dns_stats st;

	ck_assert_int_eq(dns_resolver_new(loop, 3000, &r), 0);
	ck_assert_int_eq(dns_resolve(r, "127.0.0.7", DNS_V4_ONLY, on_answer, &lit, NULL), 0);
	ck_assert_int_eq(dns_resolve(r, "localhost", DNS_V4_ONLY, on_answer, &lh, NULL), 0);
	/* never answered from dns_resolve() itself */
	ck_assert_int_eq(lit.calls + lh.calls, 0);
	dns_get_stats(r, &st);
	ck_assert_uint_eq(st.pending, 2);
	run_until(loop, &lit.calls, 5000);
	run_until(loop, &lh.calls, 5000);
	ck_assert_int_eq(lit.calls, 1);
	ck_assert_int_eq(lit.status, 0);
	ck_assert_uint_eq(lit.n, 1);
	ck_assert(has_v4(&lit, "127.0.0.7"));
	ck_assert_int_eq(lh.calls, 1);
	ck_assert_int_eq(lh.status, 0);
	ck_assert(has_v4(&lh, "127.0.0.1"));
	dns_get_stats(r, &st);
	ck_assert_uint_eq(st.resolve_total, 2);
	ck_assert_uint_eq(st.pending, 0);
	dns_resolver_free(r);
	ev_loop_free(loop);
}
END_TEST

START_TEST(resolve_failure_and_family)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns_resolver *r;
	struct answer bad = { 0 }, v6 = { 0 };

	ck_assert_int_eq(dns_resolver_new(loop, 3000, &r), 0);
	ck_assert_int_eq(dns_resolve(r, "no-such-host.invalid", DNS_V4_ONLY, on_answer, &bad, NULL), 0);
	/* an IPv4 literal has no IPv6 address */
	ck_assert_int_eq(dns_resolve(r, "127.0.0.1", DNS_V6_ONLY, on_answer, &v6, NULL), 0);
	run_until(loop, &bad.calls, 5000);
	run_until(loop, &v6.calls, 5000);
	ck_assert_int_eq(bad.calls, 1);
	ck_assert_int_lt(bad.status, 0);
	ck_assert_uint_eq(bad.n, 0);
	ck_assert_int_eq(v6.calls, 1);
	ck_assert_int_lt(v6.status, 0);
	ck_assert_int_eq(dns_resolve(r, "", DNS_AUTO, on_answer, &bad, NULL), -EINVAL);
	dns_resolver_free(r);
	ev_loop_free(loop);
}
END_TEST

START_TEST(cancel_never_calls_back)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns_resolver *r;
	struct answer w = { 0 }, other = { 0 };
	struct dns_query *q;
	struct dns_stats st;

	ck_assert_int_eq(dns_resolver_new(loop, 3000, &r), 0);
	ck_assert_int_eq(dns_resolve(r, "localhost", DNS_V4_ONLY, on_answer, &w, &q), 0);
	ck_assert_int_eq(dns_resolve(r, "localhost", DNS_V4_ONLY, on_answer, &other, NULL), 0);
	dns_cancel(q);
	run_until(loop, &other.calls, 5000);
	ck_assert_int_eq(other.calls, 1);
	ck_assert_int_eq(w.calls, 0);
	dns_get_stats(r, &st);
	ck_assert_uint_eq(st.pending, 0);
	/* a query left running at free: cancelled, waited for, no callback */
	ck_assert_int_eq(dns_resolve(r, "localhost", DNS_V4_ONLY, on_answer, &w, NULL), 0);
	dns_resolver_free(r);
	ck_assert_int_eq(w.calls, 0);
	ev_loop_free(loop);
}
END_TEST

/* --- families over a hand-built list: v4 10.0.0.1, v6 ::1, v4 10.0.0.1 again, v4 10.0.0.2 */

START_TEST(family_rules)
{
	struct sockaddr_in a4 = { 0 }, b4 = { 0 };
	struct sockaddr_in6 a6 = { 0 };
	struct addrinfo l[4];
	struct dns_addr out[8];
	size_t n;

	a4.sin_family = b4.sin_family = AF_INET;
	inet_pton(AF_INET, "10.0.0.1", &a4.sin_addr);
	inet_pton(AF_INET, "10.0.0.2", &b4.sin_addr);
	a6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	memset(l, 0, sizeof(l));
	l[0].ai_family = AF_INET, l[0].ai_addr = (struct sockaddr *)&a4, l[0].ai_addrlen = sizeof(a4);
	l[1].ai_family = AF_INET6, l[1].ai_addr = (struct sockaddr *)&a6, l[1].ai_addrlen = sizeof(a6);
	l[2] = l[0];
	l[3].ai_family = AF_INET, l[3].ai_addr = (struct sockaddr *)&b4, l[3].ai_addrlen = sizeof(b4);
	l[0].ai_next = &l[1], l[1].ai_next = &l[2], l[2].ai_next = &l[3];

	/* V4_ONLY: both IPv4, the duplicate dropped */
	n = dns_filter(l, DNS_V4_ONLY, out, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(out[0].u.in4.sin_addr.s_addr, a4.sin_addr.s_addr);
	ck_assert_uint_eq(out[1].u.in4.sin_addr.s_addr, b4.sin_addr.s_addr);
	ck_assert_uint_eq(out[0].u.in4.sin_port, 0);
	/* AUTO: IPv6 when there is any */
	n = dns_filter(l, DNS_AUTO, out, 8);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(out[0].u.sa.sa_family, AF_INET6);
	/* V4_PREFERRED: IPv4 when there is any */
	n = dns_filter(l, DNS_V4_PREFERRED, out, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(out[0].u.sa.sa_family, AF_INET);
	/* ALL: everything, in order */
	n = dns_filter(l, DNS_ALL, out, 8);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(out[1].u.sa.sa_family, AF_INET6);
	/* AUTO without IPv6: falls back to IPv4 */
	l[0].ai_next = &l[3];
	n = dns_filter(l, DNS_AUTO, out, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(out[0].u.sa.sa_family, AF_INET);
	/* V6_ONLY without IPv6: nothing */
	ck_assert_uint_eq(dns_filter(l, DNS_V6_ONLY, out, 8), 0);
	/* the cap holds */
	ck_assert_uint_eq(dns_filter(l, DNS_V4_ONLY, out, 1), 1);
}
END_TEST

/* --- the load assignment and the host set */

static struct dns_addr v4(const char *ip)
{
	struct dns_addr a;

	memset(&a, 0, sizeof(a));
	a.u.in4.sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a.u.in4.sin_addr);
	a.len = sizeof(a.u.in4);
	return a;
}

/* A template: locality 0 with "ext.example" port 443 and 10.9.9.9 port
 * 80, locality 1 (priority 1) with "other.example" port 8443. */
static Envoy__Config__Endpoint__V3__ClusterLoadAssignment *tmpl(struct pxspec *ps)
{
	char e0[] = "ext.example:443", e1[] = "10.9.9.9:80", e2[] = "other.example:8443";
	char *eps0[] = { e0, e1 }, *eps1[] = { e2 };
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *a = ps_cla(ps, "c", eps0, 2), *b = ps_cla(ps, "c", eps1, 1);

	b->endpoints[0]->priority = 1;
	a->endpoints = (void *)ps_push(ps, (void **)a->endpoints, &a->n_endpoints, b->endpoints[0]);
	return a;
}

static const char *ep_addr(const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *l, size_t i, uint32_t *port)
{
	*port = l->lb_endpoints[i]->endpoint->address->socket_address->port_value;
	return l->lb_endpoints[i]->endpoint->address->socket_address->address;
}

START_TEST(cla_from_resolutions)
{
	struct pxspec *ps = calloc(1, sizeof(*ps));
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *t, *out;
	struct dns_addr ext[2] = { v4("192.0.2.1"), v4("192.0.2.2") };
	struct dnscl_result res[2] = { { "ext.example", ext, 2 }, { "other.example", NULL, 0 } };
	struct arena *a = arena_new(1 << 20);
	uint32_t port;

	t = tmpl(ps);
	ck_assert_int_eq(dnscl_cla(t, false, res, 2, a, &out), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(out->n_endpoints, 2);
	/* each address of the name, with its port; the IP stays */
	ck_assert_uint_eq(out->endpoints[0]->n_lb_endpoints, 3);
	ck_assert_str_eq(ep_addr(out->endpoints[0], 0, &port), "192.0.2.1");
	ck_assert_uint_eq(port, 443);
	ck_assert_str_eq(ep_addr(out->endpoints[0], 1, &port), "192.0.2.2");
	ck_assert_str_eq(ep_addr(out->endpoints[0], 2, &port), "10.9.9.9");
	ck_assert_uint_eq(port, 80);
	/* the health and the priority carry over; an unresolved name gives nothing */
	ck_assert_int_eq(out->endpoints[0]->lb_endpoints[1]->health_status, ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY);
	ck_assert_uint_eq(out->endpoints[1]->priority, 1);
	ck_assert_uint_eq(out->endpoints[1]->n_lb_endpoints, 0);
	/* the template is untouched */
	ck_assert_str_eq(ep_addr(t->endpoints[0], 0, &port), "ext.example");
	/* logical: the first address only */
	ck_assert_int_eq(dnscl_cla(t, true, res, 2, a, &out), 0);
	ck_assert_uint_eq(out->endpoints[0]->n_lb_endpoints, 2);
	ck_assert_str_eq(ep_addr(out->endpoints[0], 0, &port), "192.0.2.1");
	ck_assert_int_eq(dnscl_cla(NULL, false, res, 2, a, &out), 0);
	ck_assert_ptr_null(out);
	/* a resolved address another endpoint has already is one endpoint
	 * (the host set refuses an address listed twice) */
	{
		char d0[] = "dup.example:80", d1[] = "10.9.9.9:80";
		char *eps[] = { d0, d1 };
		struct dns_addr dup[2] = { v4("10.9.9.8"), v4("10.9.9.9") };
		struct dnscl_result dr = { "dup.example", dup, 2 };

		ck_assert_int_eq(dnscl_cla(ps_cla(ps, "d", eps, 2), false, &dr, 1, a, &out), 0);
		ck_assert_uint_eq(out->endpoints[0]->n_lb_endpoints, 2);
		ck_assert_str_eq(ep_addr(out->endpoints[0], 0, &port), "10.9.9.8");
		ck_assert_str_eq(ep_addr(out->endpoints[0], 1, &port), "10.9.9.9");
	}
	arena_free(a);
	pxspec_cleanup(ps);
	free(ps);
}
END_TEST

static struct up_hostset *hs_of(struct up_cluster *cl, struct pxspec *ps, const struct dnscl_result *res, size_t n,
				const struct up_hostset *prev)
{
	struct arena *a = arena_new(1 << 20);
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla;
	struct up_hostset *hs = NULL;
	char err[256];

	ck_assert_int_eq(dnscl_cla(tmpl(ps), false, res, n, a, &cla), 0);
	ck_assert_msg(up_hostset_new(cl, cla, prev, 1, err, sizeof(err), &hs) == 0, "%s", err);
	arena_free(a);
	return hs;
}

START_TEST(hostset_keeps_hosts_that_stay)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	struct pxspec *ps = calloc(1, sizeof(*ps));
	struct up_cluster *cl;
	struct up_hostset *h1, *h2;
	struct up_host *kept, *gone;
	struct dns_addr first[2] = { v4("192.0.2.1"), v4("192.0.2.2") }, second[2] = { v4("192.0.2.2"), v4("192.0.2.3") };
	struct dnscl_result r1 = { "ext.example", first, 2 }, r2 = { "ext.example", second, 2 };
	char err[256];

	c.name = "outbound|443||ext.example";
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS;
	ck_assert_msg(up_cluster_new(&c, err, sizeof(err), &cl) == 0, "%s", err);
	h1 = hs_of(cl, ps, &r1, 1, NULL);
	ck_assert_uint_eq(h1->n, 3); /* two addresses and the IP endpoint */
	kept = up_hostset_find(h1, "192.0.2.2:443", 13);
	gone = up_hostset_find(h1, "192.0.2.1:443", 13);
	ck_assert_ptr_nonnull(kept);
	ck_assert_ptr_nonnull(gone);
	kept->od.num_ejections = 3; /* state that must survive */
	kept->active_rq = 1;
	h2 = hs_of(cl, ps, &r2, 1, h1);
	ck_assert_uint_eq(h2->n, 3);
	/* the address that stays is the same host, with its state */
	ck_assert_ptr_eq(up_hostset_find(h2, "192.0.2.2:443", 13), kept);
	ck_assert_uint_eq(kept->od.num_ejections, 3);
	ck_assert_uint_eq(kept->active_rq, 1);
	ck_assert_ptr_null(up_hostset_find(h2, "192.0.2.1:443", 13));
	ck_assert_ptr_nonnull(up_hostset_find(h2, "192.0.2.3:443", 13));
	ck_assert_ptr_nonnull(up_hostset_find(h2, "10.9.9.9:80", 11));
	up_hostset_free(h1);
	up_hostset_free(h2);
	up_cluster_unref(cl);
	pxspec_cleanup(ps);
	free(ps);
}
END_TEST

START_TEST(logical_dns_one_endpoint)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	struct pxspec *ps = calloc(1, sizeof(*ps));
	struct up_cluster *cl;
	struct up_hostset *hs = NULL;
	char err[256] = "";

	c.name = "outbound|443||ext.example";
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), 0);
	/* Envoy: a single locality_lb_endpoint and a single lb_endpoint */
	ck_assert_int_eq(up_hostset_new(cl, tmpl(ps), NULL, 1, err, sizeof(err), &hs), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "LOGICAL_DNS"));
	up_cluster_unref(cl);
	pxspec_cleanup(ps);
	free(ps);
}
END_TEST

/* --- through the engine */

struct backend {
	int lfd, port;
	pthread_t th;
	atomic_int reqs, stop;
};

static void *be_main(void *arg)
{
	struct backend *b = arg;

	while (!atomic_load(&b->stop)) {
		char buf[4096];
		int fd = accept(b->lfd, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

			atomic_fetch_add(&b->reqs, 1);
			(void)!write(fd, resp, sizeof(resp) - 1);
		}
		close(fd);
	}
	return NULL;
}

static void be_start(struct backend *b)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(b, 0, sizeof(*b));
	b->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(b->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(b->lfd, 16), 0);
	getsockname(b->lfd, (struct sockaddr *)&sa, &len);
	b->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&b->th, NULL, be_main, b), 0);
}

static void be_stop(struct backend *b)
{
	atomic_store(&b->stop, 1);
	shutdown(b->lfd, SHUT_RDWR);
	close(b->lfd);
	pthread_join(b->th, NULL);
}

struct client {
	int port;
	const char *req;
	char resp[4096];
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
	atomic_store(&c->done, 1);
	return NULL;
}

static struct ev_loop *loop;
static struct engine *eng;
static struct backend be;

static const char *roundtrip(const char *req)
{
	static struct client c;

	memset(&c, 0, sizeof(c));
	c.port = engine_outbound_port(eng);
	c.req = req;
	ck_assert_int_eq(pthread_create(&c.th, NULL, cl_main, &c), 0);
	while (!atomic_load(&c.done))
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	pthread_join(c.th, NULL);
	ck_assert_int_ge(ev_run_once(loop, 0), 0);
	return c.resp;
}

static void apply_spec(const char *fmt, int port)
{
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(spec, sizeof(spec), fmt, port, port, port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
}

static const char *DNS_SPEC =
	"outbound registry_only\n"
	"listener 9080\n"
	"vhost 9080 ext ext.example,ext.example:9080\n"
	"route 9080 ext / cluster=outbound|9080||ext.example\n"
	"vhost 9080 lg logical.example,logical.example:9080\n"
	"route 9080 lg / cluster=outbound|9080||logical.example\n"
	"vhost 9080 bad bad.example,bad.example:9080\n"
	"route 9080 bad / cluster=outbound|9080||bad.example\n"
	"cluster outbound|9080||ext.example strict_dns localhost:%d 127.0.0.1:%d family=v4 dns_refresh=100\n"
	"cluster outbound|9080||logical.example logical_dns localhost:%d family=v4\n"
	"cluster outbound|9080||bad.example strict_dns no-such-host.invalid:80 family=v4 dns_refresh=100\n";

static void dns_setup(void)
{
	struct engine_opts o = { .outbound_addr = "127.0.0.1:0", .inbound_addr = "127.0.0.1:0" };

	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(engine_new(loop, &o, &eng), 0);
	be_start(&be);
}

static void dns_teardown(void)
{
	engine_free(eng);
	be_stop(&be);
	ev_loop_free(loop);
}

static struct px_cluster *cluster(const char *name)
{
	return px_config_cluster(eng->cur, name);
}

static void run_ms(int ms)
{
	uint64_t end;

	ev_update_now(loop);
	end = ev_now(loop) + (uint64_t)ms;
	while (ev_now(loop) < end)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
}

START_TEST(strict_dns_through_engine)
{
	char key[32];
	struct px_cluster *ext, *bad, *lg;
	const struct up_hostset *before;
	const char *r;

	apply_spec(DNS_SPEC, be.port);
	ck_assert(!engine_dns_warmed(eng)); /* not LIVE before the first resolutions */
	ext = cluster("outbound|9080||ext.example");
	ck_assert_ptr_nonnull(ext);
	ck_assert_ptr_nonnull(ext->dns);
	/* the IP endpoint is usable at once, the name is not resolved yet */
	ck_assert(!dnscl_warm(ext->dns));
	ck_assert_uint_eq(ext->hs->n, 1);
	before = ext->hs;
	/* the first request waits for the resolution, then goes through */
	r = roundtrip("GET / HTTP/1.1\r\nHost: ext.example:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strstr(r, "HTTP/1.1 200") == r, "%s", r);
	ck_assert(dnscl_warm(ext->dns));
	ck_assert_ptr_ne(ext->hs, before); /* rebuilt from the resolution */
	/* localhost:PORT resolved to 127.0.0.1:PORT, the address of the IP
	 * endpoint too: one host, not a set refused for listing it twice */
	snprintf(key, sizeof(key), "127.0.0.1:%d", be.port);
	ck_assert_ptr_nonnull(up_hostset_find(ext->hs, key, strlen(key)));
	ck_assert_uint_eq(ext->hs->n, 1);
	ck_assert_uint_ge(px_cst_ro(ext)->update_attempt, 1);
	ck_assert_uint_ge(px_cst_ro(ext)->update_success, 1);
	/* re-resolved at dns_refresh_rate: nothing changes, no rebuild */
	run_ms(400);
	ck_assert_uint_ge(px_cst_ro(ext)->update_attempt, 2);
	ck_assert_uint_ge(px_cst_ro(ext)->update_no_rebuild, 1);
	ck_assert_uint_eq(px_cst_ro(ext)->update_failure, 0);

	/* LOGICAL_DNS: the first address */
	lg = cluster("outbound|9080||logical.example");
	r = roundtrip("GET / HTTP/1.1\r\nHost: logical.example:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strstr(r, "HTTP/1.1 200") == r, "%s", r);
	ck_assert_uint_eq(lg->hs->n, 1);
	ck_assert_ptr_nonnull(up_hostset_find(lg->hs, key, strlen(key)));

	/* a name that does not resolve: warm (failed), no host, 503 UH, counted */
	bad = cluster("outbound|9080||bad.example");
	r = roundtrip("GET / HTTP/1.1\r\nHost: bad.example:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strstr(r, "HTTP/1.1 503") == r, "%s", r);
	ck_assert(dnscl_warm(bad->dns));
	ck_assert(engine_dns_warmed(eng));
	ck_assert_uint_ge(px_cst_ro(bad)->update_failure, 1);
	ck_assert_uint_eq(px_cst_ro(bad)->update_success, 0);
	ck_assert_int_ge(atomic_load(&be.reqs), 2);
}
END_TEST

START_TEST(dns_cluster_update_and_removal)
{
	static const char *AGAIN =
		"outbound registry_only\n"
		"listener 9080\n"
		"vhost 9080 ext ext.example,ext.example:9080\n"
		"route 9080 ext / cluster=outbound|9080||ext.example\n"
		"cluster outbound|9080||ext.example strict_dns localhost:%d family=v4 max_connections=7 dns_refresh=50\n";
	static const char *UPDATED =
		"outbound registry_only\n"
		"listener 9080\n"
		"vhost 9080 ext ext.example,ext.example:9080\n"
		"route 9080 ext / cluster=outbound|9080||ext.example\n"
		"cluster outbound|9080||ext.example strict_dns localhost:%d family=v4 max_connections=9 dns_refresh=50\n";
	static const char *GONE =
		"outbound registry_only\n"
		"listener 9080\n"
		"cluster outbound|9080||other static 127.0.0.1:%d\n";
	struct px_cluster *ext;
	const char *r;

	apply_spec(AGAIN, be.port);
	r = roundtrip("GET / HTTP/1.1\r\nHost: ext.example:9080\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strstr(r, "HTTP/1.1 200") == r, "%s", r);
	ext = cluster("outbound|9080||ext.example");
	ck_assert_uint_eq(ext->hs->n, 1);
	/* a CDS change keeping the name: the addresses stay, no new warm-up */
	apply_spec(UPDATED, be.port);
	ck_assert_ptr_eq(cluster("outbound|9080||ext.example"), ext);
	ck_assert(dnscl_warm(ext->dns));
	ck_assert_uint_eq(ext->hs->n, 1);
	ck_assert_uint_eq(ext->max_connections, 9);
	/* the cluster leaves (and is freed): its lookups and its refresh
	 * timers (50 ms) go with it, nothing fires on freed memory (ASan) */
	apply_spec(GONE, be.port);
	ck_assert_ptr_null(cluster("outbound|9080||ext.example"));
	run_ms(300);
	{
		struct dns_stats ds;

		dns_get_stats(eng->dns, &ds);
		ck_assert_uint_eq(ds.pending, 0);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dns");
	TCase *t = tcase_create("resolver");
	TCase *e = tcase_create("engine");

	tcase_set_timeout(t, 30);
	tcase_add_test(t, resolve_literal_and_localhost);
	tcase_add_test(t, resolve_failure_and_family);
	tcase_add_test(t, cancel_never_calls_back);
	tcase_add_test(t, family_rules);
	tcase_add_test(t, cla_from_resolutions);
	tcase_add_test(t, hostset_keeps_hosts_that_stay);
	tcase_add_test(t, logical_dns_one_endpoint);
	suite_add_tcase(s, t);
	tcase_set_timeout(e, 30);
	tcase_add_checked_fixture(e, dns_setup, dns_teardown);
	tcase_add_test(e, strict_dns_through_engine);
	tcase_add_test(e, dns_cluster_update_and_removal);
	suite_add_tcase(s, e);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
