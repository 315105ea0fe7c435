/*
 * test_router_golden.c - every RouteConfiguration meshd's sidecar
 * generator produces for the golden cases (tests/xds/NNNN with a
 * sidecar.yaml) compiles in meshproxy's router, and routes as the case's
 * VirtualServices say.
 *
 * The cases are loaded exactly as tests/xds/golden.c loads them (that
 * file is included, its main() renamed): config/ through the file source
 * into a model, sidecar.yaml into the workload, gen_sidecar_snapshot();
 * the encoded RouteConfigurations are decoded and fed to router_new().
 * Then, for every case: each domain of each virtual host selects that
 * virtual host, and a request built to satisfy route k lands on route k
 * or an earlier one (first match wins); and for a few cases, named
 * requests land where the VirtualService sends them.
 */
#define main golden_main
#include "tests/xds/golden.c"
#undef main

#include "dataplane/router.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"

#include <check.h>

#define CASES_DIR "tests/xds"

/* the expectation tables leave the optional second header out */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef Envoy__Config__Route__V3__RouteConfiguration pb_rc;

struct gcase {
	struct model *m;
	struct xds_snapshot *snap;
	pb_rc **rcs;
	size_t n;
	struct router *r;
};

static void gcase_free(struct gcase *g)
{
	size_t i;

	router_unref(g->r);
	for (i = 0; i < g->n; i++)
		envoy__config__route__v3__route_configuration__free_unpacked(g->rcs[i], NULL);
	free(g->rcs);
	xds_snapshot_unref(g->snap);
	model_unref(g->m);
	memset(g, 0, sizeof(*g));
}

/* Build case dir's sidecar snapshot and compile its routes.  Returns 1
 * when the case has no sidecar.yaml, 0 when compiled, else fails. */
static int gcase_load(const char *dir, struct gcase *g)
{
	static struct golden_sidecar sc;
	const struct xds_resource_set *set;
	char err[1024] = "";
	size_t i;
	int rc;

	memset(g, 0, sizeof(*g));
	memset(&sc, 0, sizeof(sc));
	ck_assert_int_eq(golden_sidecar_load(dir, &sc), 0);
	if (!sc.present) {
		golden_sidecar_free(&sc);
		return 1;
	}
	ck_assert_int_eq(golden_model(dir, &g->m), 0);
	{
		struct gen_workload w = { .ns = sc.wl.ns, .labels = &sc.wl.labels };
		struct gen_node node = { .ip = sc.ip, .service_account = sc.sa, .scope = sc.has_scope ? &sc.scope : NULL,
					 .locality = sc.locality };

		rc = gen_sidecar_snapshot(g->m, &gen_profile_sidecar, &w, &node, NULL, &g->snap);
	}
	ck_assert_msg(rc == 0, "%s: gen_sidecar_snapshot: %s", dir, mesh_strerror(rc));
	set = &g->snap->sets[XDS_ROUTE];
	g->rcs = calloc(set->n + 1, sizeof(*g->rcs));
	ck_assert_ptr_nonnull(g->rcs);
	for (i = 0; i < set->n; i++) {
		g->rcs[i] = envoy__config__route__v3__route_configuration__unpack(NULL, set->v[i]->len, set->v[i]->data);
		ck_assert_msg(g->rcs[i] != NULL, "%s: route %s does not decode", dir, set->v[i]->name);
		g->n++;
	}
	rc = router_new((const pb_rc *const *)g->rcs, g->n, &g->r, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s: router_new NACKs meshd's routes: %s", dir, err);
	golden_sidecar_free(&sc);
	return 0;
}

/* ------------------------------------------------------------ generic checks */

static const char *hdr_lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
	const char *const *kv = ctx;
	size_t i;

	for (i = 0; kv[i]; i += 2)
		if (strlen(kv[i]) == name_len && strncasecmp(kv[i], name, name_len) == 0) {
			*value_len = strlen(kv[i + 1]);
			return kv[i + 1];
		}
	return NULL;
}

/* A value a string matcher accepts, when one is easy to make. */
static const char *sm_value(const Envoy__Type__Matcher__V3__StringMatcher *m)
{
	switch (m->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
		return m->exact;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
		return m->prefix;
	default:
		return NULL;
	}
}

/*
 * Build a request for route rt of host vh: the first domain, the route's
 * path, the values its exact/prefix/present header matchers want.
 * Returns false when the route needs something this cannot make (regex
 * paths, inverted matchers, query parameters).
 */
static bool synth(const Envoy__Config__Route__V3__VirtualHost *vh, const Envoy__Config__Route__V3__Route *rt,
		  struct router_req *q, const char **kv, char *path, size_t cap)
{
	const Envoy__Config__Route__V3__RouteMatch *m = rt->match;
	size_t i, k = 0;

	memset(q, 0, sizeof(*q));
	q->authority = vh->domains[0];
	q->authority_len = strlen(vh->domains[0]);
	q->method = "GET";
	q->method_len = 3;
	q->random = 0;
	if (m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX)
		snprintf(path, cap, "%s%s", m->prefix[0] == '/' ? "" : "/", m->prefix);
	else if (m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH)
		snprintf(path, cap, "%s", m->path);
	else
		return false;
	if (m->n_query_parameters || m->runtime_fraction || m->grpc)
		return false;
	for (i = 0; i < m->n_headers; i++) {
		const Envoy__Config__Route__V3__HeaderMatcher *h = m->headers[i];
		const char *v = NULL;

		if (h->invert_match)
			return false;
		if (h->header_match_specifier_case == ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH)
			v = sm_value(h->string_match);
		else if (h->header_match_specifier_case == ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH)
			v = h->exact_match;
		else if (h->header_match_specifier_case == ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH)
			v = h->prefix_match;
		else if (h->header_match_specifier_case == ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH &&
			 h->present_match)
			v = "1";
		if (!v || h->name[0] == ':')
			return false;
		kv[k++] = h->name;
		kv[k++] = v;
	}
	kv[k] = NULL;
	q->path = path;
	q->path_len = strlen(path);
	q->header = hdr_lookup;
	q->header_ctx = kv;
	return true;
}

static size_t check_case_generic(const char *dir, const struct gcase *g)
{
	size_t i, j, k, d, checked = 0;

	for (i = 0; i < g->n; i++) {
		const pb_rc *rc = g->rcs[i];
		const struct router_config *cf = router_config(g->r, rc->name, strlen(rc->name));

		ck_assert_ptr_nonnull(cf);
		for (j = 0; j < rc->n_virtual_hosts; j++) {
			const Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[j];

			/* every domain selects its own virtual host */
			for (d = 0; d < vh->n_domains; d++) {
				const char *kv[1] = { NULL };
				struct router_req q = { .authority = vh->domains[d], .authority_len = strlen(vh->domains[d]),
							.path = "/", .path_len = 1, .method = "GET", .method_len = 3,
							.header = hdr_lookup, .header_ctx = kv };
				const struct router_route *m = router_config_match(cf, &q);

				if (strcmp(vh->domains[d], "*") == 0)
					continue;
				if (m)
					ck_assert_msg(strcmp(m->vhost, vh->name) == 0, "%s: %s: domain %s selects %s, not %s", dir,
						      rc->name, vh->domains[d], m->vhost, vh->name);
				checked++;
			}
			/* a request built for route k lands on route k or before */
			for (k = 0; k < vh->n_routes; k++) {
				const char *kv[64];
				char path[512];
				struct router_req q;
				const struct router_route *m;

				if (vh->routes[k]->match->n_headers > 30 || !synth(vh, vh->routes[k], &q, kv, path, sizeof(path)))
					continue;
				m = router_config_match(cf, &q);
				ck_assert_msg(m != NULL, "%s: %s/%s: route %zu: no match for %s", dir, rc->name, vh->name, k, path);
				ck_assert_msg(strcmp(m->vhost, vh->name) == 0, "%s: wrong vhost %s", dir, m->vhost);
				checked++;
			}
		}
	}
	return checked;
}

START_TEST(every_golden_case_compiles)
{
	struct dirent **ents = NULL;
	int n = scandir(CASES_DIR, &ents, NULL, alphasort), i;
	size_t cases = 0, checks = 0;

	ck_assert_int_gt(n, 0);
	mesh_log_setup("error", "text");
	for (i = 0; i < n; i++) {
		char dir[PATH_MAX];
		struct gcase g;

		if (ents[i]->d_name[0] == '.' || ents[i]->d_name[0] < '0' || ents[i]->d_name[0] > '9') {
			free(ents[i]);
			continue;
		}
		snprintf(dir, sizeof(dir), "%s/%s", CASES_DIR, ents[i]->d_name);
		free(ents[i]);
		if (gcase_load(dir, &g) == 1)
			continue;
		cases++;
		checks += check_case_generic(dir, &g);
		gcase_free(&g);
	}
	free(ents);
	printf("router: %zu sidecar golden cases compiled, %zu generic route checks\n", cases, checks);
	ck_assert_uint_ge(cases, 40);
}
END_TEST

/* ------------------------------------------------------------ per-case checks */

struct expect {
	const char *rc, *authority, *path;
	const char *h1, *v1;             /* one request header, or NULL */
	uint64_t random;
	const char *want;                /* cluster, "redirect <code> <Location>", "direct <status>", "" no route */
	const char *h2, *v2;             /* a second header, or NULL */
};

static void expect_case(const char *id, const struct expect *e, size_t n)
{
	char dir[PATH_MAX], got[512];
	struct gcase g;
	size_t i;

	snprintf(dir, sizeof(dir), "%s/%s", CASES_DIR, id);
	mesh_log_setup("error", "text");
	ck_assert_int_eq(gcase_load(dir, &g), 0);
	for (i = 0; i < n; i++) {
		const char *kv[5] = { e[i].h1, e[i].v1, e[i].h2, e[i].v2, NULL };
		struct router_req q = { .authority = e[i].authority, .authority_len = strlen(e[i].authority),
					.path = e[i].path, .path_len = strlen(e[i].path), .method = "GET", .method_len = 3,
					.header = hdr_lookup, .header_ctx = kv, .random = e[i].random };
		const struct router_route *m = router_match(g.r, e[i].rc, &q);

		got[0] = '\0';
		if (m && m->action == ROUTER_ACTION_ROUTE) {
			snprintf(got, sizeof(got), "%s", router_pick(m, q.random)->name);
		} else if (m && m->action == ROUTER_ACTION_REDIRECT) {
			char loc[256];

			ck_assert_int_eq(router_redirect_location(m, &q, loc, sizeof(loc), NULL), 0);
			snprintf(got, sizeof(got), "redirect %u %s", m->redirect->code, loc);
		} else if (m) {
			snprintf(got, sizeof(got), "direct %u", m->direct_status);
		}
		ck_assert_msg(strcmp(got, e[i].want) == 0, "%s: %s %s%s (%s: %s): got '%s', want '%s'", id, e[i].rc,
			      e[i].authority, e[i].path, e[i].h1 ? e[i].h1 : "-", e[i].v1 ? e[i].v1 : "-", got, e[i].want);
	}
	gcase_free(&g);
}

#define GREETER "greeter.demo.svc.cluster.local"
#define OUT(port, subset, host) "outbound|" #port "|" subset "|" host

/* 0002: x-canary: true -> v2; else 90/10 between v1 and v2. */
START_TEST(case_0002_canary_split)
{
	static const struct expect e[] = {
		{ "50051", GREETER, "/helloworld.Greeter/SayHello", "x-canary", "true", 0, OUT(50051, "v2", GREETER) },
		{ "50051", GREETER ":50051", "/x", NULL, NULL, 0, OUT(50051, "v1", GREETER) },
		{ "50051", GREETER, "/x", NULL, NULL, 89, OUT(50051, "v1", GREETER) },
		{ "50051", GREETER, "/x", NULL, NULL, 90, OUT(50051, "v2", GREETER) },
		{ "50051", GREETER, "/x", "x-canary", "false", 95, OUT(50051, "v2", GREETER) },
		{ "50051", "unknown.example:50051", "/x", NULL, NULL, 0, "PassthroughCluster" },
		{ "9090", "ratings.demo.svc.cluster.local", "/", NULL, NULL, 0, OUT(9090, "", "ratings.demo.svc.cluster.local") },
	};
	expect_case("0002", e, sizeof(e) / sizeof(e[0]));
}
END_TEST

/* 0012: header exact+prefix -> v2, regex -> v3, present -> v3, else v1. */
START_TEST(case_0012_header_matches)
{
	static const struct expect e[] = {
		{ "50051", GREETER, "/", "x-build", "1.2", 0, OUT(50051, "v3", GREETER) },
		{ "50051", GREETER, "/", "x-build", "1.2.3", 0, OUT(50051, "v1", GREETER) },
		{ "50051", GREETER, "/", "x-debug", "", 0, OUT(50051, "v3", GREETER) },
		{ "50051", GREETER, "/", "x-user", "alice", 0, OUT(50051, "v1", GREETER) },   /* needs x-team too */
		{ "50051", GREETER, "/", "x-user", "alice", 0, OUT(50051, "v2", GREETER), "x-team", "eng-core" },
	};
	expect_case("0012", e, sizeof(e) / sizeof(e[0]));
}
END_TEST

/* 0013: exact path, case-insensitive prefix, query parameter. */
START_TEST(case_0013_uri_and_query)
{
	static const struct expect e[] = {
		{ "50051", GREETER, "/helloworld.Greeter/SayHello", NULL, NULL, 0, OUT(50051, "v2", GREETER) },
		{ "50051", GREETER, "/HELLOWORLD.greeter/Other", NULL, NULL, 0, OUT(50051, "v3", GREETER) },
		{ "50051", GREETER, "/x?debug=1", NULL, NULL, 0, OUT(50051, "v2", GREETER) },
		{ "50051", GREETER, "/x?debug=2", NULL, NULL, 0, OUT(50051, "v1", GREETER) },
		{ "50051", GREETER, "/admin.x/y", NULL, NULL, 0, OUT(50051, "v1", GREETER) },   /* GET: not the POST route */
	};
	expect_case("0013", e, sizeof(e) / sizeof(e[0]));
}
END_TEST

/* 0014: withoutHeaders (invert_match) forms.  As in Envoy (and Istio,
 * istio/istio#50988): an inverted matcher never matches a missing header,
 * so x-canary alone, without x-internal, does not take the v2 route. */
START_TEST(case_0014_without_headers)
{
	static const struct expect e[] = {
		{ "50051", GREETER, "/", "x-canary", "yes", 0, OUT(50051, "v3", GREETER) },
		{ "50051", GREETER, "/", "x-canary", "yes", 0, OUT(50051, "v2", GREETER), "x-internal", "false" },
		{ "50051", GREETER, "/", "x-canary", "yes", 0, OUT(50051, "v3", GREETER), "x-internal", "true" },
		{ "50051", GREETER, "/", "x-legacy", "1", 0, OUT(50051, "v1", GREETER) },
		{ "50051", GREETER, "/", NULL, NULL, 0, OUT(50051, "v3", GREETER) },
	};
	expect_case("0014", e, sizeof(e) / sizeof(e[0]));
}
END_TEST

/* 0040: rewrite + redirect; 0044: REGISTRY_ONLY answers 502; 0052: redirects. */
START_TEST(case_0040_0044_0052_actions)
{
	static const struct expect e40[] = {
		{ "8080", "web.web.svc.cluster.local:8080", "/api/x", NULL, NULL, 0, OUT(8080, "v1", "web.web.svc.cluster.local") },
		{ "8080", "web.web.svc.cluster.local", "/old/page?q=1", NULL, NULL, 0,
		  "redirect 301 http://web.web.svc.cluster.local/new?q=1" },
	};
	static const struct expect e44[] = {
		{ "9080", "reviews.bookinfo.svc.cluster.local", "/", NULL, NULL, 0, OUT(9080, "", "reviews.bookinfo.svc.cluster.local") },
		{ "9080", "unknown.example", "/", NULL, NULL, 0, "direct 502" },
	};
	static const struct expect e52[] = {
		{ "80", "site.web.svc.cluster.local", "/old", NULL, NULL, 0, "redirect 301 http://site.web.svc.cluster.local/new" },
		{ "80", "site.web.svc.cluster.local", "/tmp/a", NULL, NULL, 0, "redirect 302 http://site.web.svc.cluster.local/elsewhere" },
		{ "80", "site.web.svc.cluster.local:80", "/secure/x", NULL, NULL, 0, "redirect 308 https://secure.example.com:8443/secure/x" },
		{ "80", "site.web.svc.cluster.local", "/t/x", NULL, NULL, 0, "redirect 307 http://other.web.svc.cluster.local/t/x" },
		{ "80", "site.web.svc.cluster.local", "/split", NULL, NULL, 74, OUT(80, "v1", "site.web.svc.cluster.local") },
		{ "80", "site.web.svc.cluster.local", "/split", NULL, NULL, 75, OUT(80, "v2", "site.web.svc.cluster.local") },
		{ "80", "site.web.svc.cluster.local", "/oldish", NULL, NULL, 0, OUT(80, "v1", "site.web.svc.cluster.local") },
	};
	struct gcase g;
	struct router_req q = { .authority = "web.web.svc.cluster.local", .authority_len = 25, .path = "/api/x?k=v",
				.path_len = 10 };
	const struct router_route *m;
	char out[128];

	expect_case("0040", e40, sizeof(e40) / sizeof(e40[0]));
	expect_case("0044", e44, sizeof(e44) / sizeof(e44[0]));
	expect_case("0052", e52, sizeof(e52) / sizeof(e52[0]));
	/* 0040's rewrite, header edit and mirror */
	ck_assert_int_eq(gcase_load(CASES_DIR "/0040", &g), 0);
	m = router_match(g.r, "8080", &q);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(router_upstream_path(m, &q, out, sizeof(out), NULL), 1);
	ck_assert_str_eq(out, "/v1/api/x?k=v");
	ck_assert_uint_eq(m->clusters[0].hdrs.n_req, 1);
	ck_assert_str_eq(m->clusters[0].hdrs.req[0].name, "x-via");
	ck_assert_uint_eq(m->n_mirrors, 1);
	ck_assert_uint_eq(m->mirrors[0].per_million, 100000);
	ck_assert(m->include_attempt_count_req);
	gcase_free(&g);
}
END_TEST

/* 0059: a regex over Envoy's bare program-size default (121 > 100) but
 * within Istio's runtime limit compiles, and routes. */
START_TEST(case_0059_program_size)
{
#define USERS "users.api.svc.cluster.local"
	static const struct expect e[] = {
		{ "8080", USERS, "/api/v2/users/123e4567-e89b-12d3-a456-426614174000", NULL, NULL, 0, OUT(8080, "v2", USERS) },
		{ "8080", USERS, "/api/v2/users/123e4567", NULL, NULL, 0, OUT(8080, "v1", USERS) },
	};
#undef USERS
	expect_case("0059", e, sizeof(e) / sizeof(e[0]));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("router_golden");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_golden_case_compiles);
	tcase_add_test(tc, case_0002_canary_split);
	tcase_add_test(tc, case_0012_header_matches);
	tcase_add_test(tc, case_0013_uri_and_query);
	tcase_add_test(tc, case_0014_without_headers);
	tcase_add_test(tc, case_0040_0044_0052_actions);
	tcase_add_test(tc, case_0059_program_size);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
