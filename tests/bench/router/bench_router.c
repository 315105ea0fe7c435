/*
 * bench_router.c - the router's match cost on a sidecar-sized config:
 * one RouteConfiguration with 1,000 virtual hosts of Istio's shape (FQDN,
 * short names, with and without port: 8 domains each), 4 routes each (a
 * header match, a path, a regex, the catch-all), plus the "*" allow_any
 * host.  Prints ns per match for a few request kinds.  A benchmark: it
 * asserts nothing but that every request finds the route it should.
 */
#include "tests/unit/dataplane/router_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define VHOSTS 1000
#define ITERS  2000000

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static rb_vh *svc_vhost(int i)
{
	char name[128], doms[1024], cl[160];
	rb_route *hdr, *exact, *rx, *all;
	rb_hm *h = RB_NEW(rb_hm, ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__INIT);
	Envoy__Type__Matcher__V3__RegexMatcher *re =
		RB_NEW(Envoy__Type__Matcher__V3__RegexMatcher, ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__INIT);

	snprintf(name, sizeof(name), "svc%d.ns%d.svc.cluster.local:8080", i, i % 50);
	snprintf(doms, sizeof(doms),
		 "svc%d.ns%d.svc.cluster.local,svc%d.ns%d.svc.cluster.local:8080,svc%d.ns%d.svc.cluster.local.,"
		 "svc%d.ns%d.svc.cluster.local.:8080,svc%d.ns%d,svc%d.ns%d:8080,svc%d.ns%d.svc,svc%d.ns%d.svc:8080",
		 i, i % 50, i, i % 50, i, i % 50, i, i % 50, i, i % 50, i, i % 50, i, i % 50, i, i % 50);
	snprintf(cl, sizeof(cl), "outbound|8080|v2|svc%d.ns%d.svc.cluster.local", i, i % 50);
	hdr = rb_route_prefix("", cl);
	h->name = "x-canary";
	h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH;
	h->exact_match = "true";
	hdr->match->headers = (rb_hm **)rb_vec(1);
	hdr->match->headers[0] = h;
	hdr->match->n_headers = 1;
	exact = rb_route_prefix("", "exact");
	exact->match->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH;
	exact->match->path = "/healthz";
	rx = rb_route_prefix("", "regex");
	re->regex = "/api/v[0-9]+/users/[0-9]+";
	rx->match->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX;
	rx->match->safe_regex = re;
	snprintf(cl, sizeof(cl), "outbound|8080|v1|svc%d.ns%d.svc.cluster.local", i, i % 50);
	all = rb_route_prefix("", cl);
	return rb_vhost(name, doms, 4, hdr, exact, rx, all);
}

static void run(const struct router_config *cf, const char *what, const char *authority, const char *path,
		const char *const *headers, const char *want)
{
	struct router_req q = rb_req(authority, path, headers);
	const struct router_route *m = router_config_match(cf, &q);
	volatile uintptr_t sink = 0;
	double t0, t1;
	int i;

	if (!m || (m->n_clusters ? strcmp(m->clusters[0].name, want) != 0 : 1)) {
		fprintf(stderr, "%s: wrong route (%s)\n", what, m && m->n_clusters ? m->clusters[0].name : "none");
		exit(1);
	}
	t0 = now_ns();
	for (i = 0; i < ITERS; i++) {
		q.random = (uint64_t)i;
		sink += (uintptr_t)router_config_match(cf, &q);
	}
	t1 = now_ns();
	(void)sink;
	printf("  %-44s %7.1f ns/match\n", what, (t1 - t0) / ITERS);
}

int main(void)
{
	rb_vh **v;
	rb_rc *rc;
	struct router *r = NULL;
	const rb_rc *one[1];
	char err[512];
	double t0;
	int i;
	static const char *const canary[] = { "x-canary", "true", "user-agent", "bench", NULL };
	static const char *const plain[] = { "user-agent", "bench", "accept", "*/*", NULL };

	rb_a = arena_new(0);
	rc = rb_config("8080", 0);
	v = (rb_vh **)rb_vec(VHOSTS + 1);
	for (i = 0; i < VHOSTS; i++)
		v[i] = svc_vhost(i);
	v[VHOSTS] = rb_vhost("allow_any", "*", 1, rb_route_prefix("/", "PassthroughCluster"));
	rc->virtual_hosts = v;
	rc->n_virtual_hosts = VHOSTS + 1;
	one[0] = rc;
	t0 = now_ns();
	if (router_new(one, 1, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "router_new: %s\n", err);
		return 1;
	}
	printf("router: %d virtual hosts x 8 domains x 4 routes compiled in %.1f ms\n", VHOSTS,
	       (now_ns() - t0) / 1e6);
	{
		const struct router_config *cf = router_config(r, "8080", 4);

		run(cf, "FQDN, catch-all route (header miss)", "svc517.ns17.svc.cluster.local", "/index.html", plain,
		    "outbound|8080|v1|svc517.ns17.svc.cluster.local");
		run(cf, "short name:port, header route", "svc517.ns17:8080", "/index.html", canary,
		    "outbound|8080|v2|svc517.ns17.svc.cluster.local");
		run(cf, "FQDN, regex path route", "svc999.ns49.svc.cluster.local", "/api/v2/users/12345?x=1", plain,
		    "regex");
		run(cf, "unknown host -> allow_any (\"*\")", "example.com", "/", plain, "PassthroughCluster");
	}
	router_unref(r);
	arena_free(rb_a);
	return 0;
}
