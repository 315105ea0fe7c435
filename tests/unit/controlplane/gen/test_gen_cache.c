/*
 * test_gen_cache.c - incremental generation (gen_grpc_snapshot_cached):
 * across a sequence of config edits, one cache kept from step to step
 * gives snapshots byte-identical to a full gen_grpc_snapshot() of the same
 * model, and the cache's counters show that only the (service, type)
 * groups whose inputs changed were rebuilt.  Every cache here runs in
 * verify mode: each reused group is rebuilt and compared too, and a
 * difference (a key that misses an input) fails the step.  Also: the cache
 * keeps nothing that the current snapshot does not use.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YAML_MAX 8192

/* Pieces of the mesh; each step of a sequence picks variants. */
static const char *const se_reviews =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  hosts: [reviews.default.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9080, name: grpc, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: 127.0.0.1, serviceAccount: %s, labels: {version: v1, security.istio.io/tlsMode: istio}}\n"
	"  - {address: 127.0.0.2, serviceAccount: reviews, labels: {version: v2, security.istio.io/tlsMode: istio}}\n"
	"---\n";

static const char *const se_ratings =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: ratings, namespace: default}\n"
	"spec:\n"
	"  hosts: [ratings.default.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9090, name: grpc, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: %s, labels: {version: v1}, locality: us-east/zone-a}\n"
	"  - {address: 127.0.1.2, labels: {version: v2}, locality: us-east/zone-b}\n"
	"---\n";

/* ratings with a second port */
static const char *const se_ratings_2ports =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: ratings, namespace: default}\n"
	"spec:\n"
	"  hosts: [ratings.default.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9090, name: grpc, protocol: GRPC}\n"
	"  - {number: 9091, name: grpc-admin, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: %s, labels: {version: v1}, locality: us-east/zone-a}\n"
	"  - {address: 127.0.1.2, labels: {version: v2}, locality: us-east/zone-b}\n"
	"---\n";

static const char *const se_details =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: details, namespace: default}\n"
	"spec:\n"
	"  hosts: [details.default.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports:\n"
	"  - {number: 9000, name: grpc, protocol: GRPC}\n"
	"  endpoints:\n"
	"  - {address: 127.0.2.1}\n"
	"---\n";

/* reviews routes part of its traffic to ratings: its routes depend on
 * ratings' ports and DestinationRule (hash policy). */
static const char *const vs_reviews =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: VirtualService\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  hosts: [reviews]\n"
	"  http:\n"
	"  - name: to-ratings\n"
	"    match:\n"
	"    - headers:\n"
	"        end-user: {exact: %s}\n"
	"    route:\n"
	"    - destination: {host: ratings}\n"
	"  - name: default\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v1}\n"
	"---\n";

static const char *const dr_reviews =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  host: reviews\n"
	"  subsets:\n"
	"  - {name: v1, labels: {version: v1}}\n"
	"  - {name: v2, labels: {version: v2}}\n"
	"---\n";

static const char *const dr_ratings_hash =
	"apiVersion: networking.istio.io/v1beta1\n"
	"kind: DestinationRule\n"
	"metadata: {name: ratings, namespace: default}\n"
	"spec:\n"
	"  host: ratings\n"
	"  trafficPolicy:\n"
	"    loadBalancer:\n"
	"      consistentHash: {httpHeaderName: x-user}\n"
	"---\n";

static const char *const pa_strict =
	"apiVersion: security.istio.io/v1beta1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: default, namespace: default}\n"
	"spec: {mtls: {mode: %s}}\n"
	"---\n";

struct step {
	const char *name;
	const char *reviews_sa;      /* service account of reviews' first endpoint */
	const char *ratings_addr;    /* address of ratings' first endpoint */
	const char *vs_user;         /* header value in reviews' VirtualService */
	bool ratings_dr;             /* ratings has a consistent-hash DestinationRule */
	bool details;                /* the details service exists */
	const char *pa_mode;         /* NULL: no PeerAuthentication */
	bool ratings_port2;          /* ratings has a second port */
	bool no_reviews_dr;          /* reviews has no DestinationRule (no subsets) */
};

static const struct step base = { "base", "reviews", "127.0.1.1", "jason", false, false, NULL, false, false };

static void append(char *buf, size_t *len, const char *fmt, const char *arg)
{
	int n = snprintf(buf + *len, YAML_MAX - *len, fmt, arg);

	ck_assert_int_gt(n, 0);
	ck_assert_uint_lt(*len + (size_t)n, YAML_MAX);
	*len += (size_t)n;
}

static struct model *build_model(const struct step *s)
{
	char yaml[YAML_MAX];
	size_t len = 0;
	struct cfg_parse_result res;
	struct cfg_store *st;
	struct cfg_snapshot *snap;
	struct model *m;

	yaml[0] = '\0';
	append(yaml, &len, se_reviews, s->reviews_sa);
	append(yaml, &len, s->ratings_port2 ? se_ratings_2ports : se_ratings, s->ratings_addr);
	append(yaml, &len, vs_reviews, s->vs_user);
	if (!s->no_reviews_dr)
		append(yaml, &len, "%s", dr_reviews);
	if (s->ratings_dr)
		append(yaml, &len, "%s", dr_ratings_hash);
	if (s->details)
		append(yaml, &len, "%s", se_details);
	if (s->pa_mode)
		append(yaml, &len, pa_strict, s->pa_mode);

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("test.yaml", yaml, len, &res), 0);
	ck_assert_uint_eq(res.n_errors, 0);
	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	ck_assert_int_ge(cfg_store_apply_origin(st, "test.yaml", &res), 0);
	cfg_parse_result_cleanup(&res);
	snap = cfg_store_snapshot(st);
	ck_assert_ptr_nonnull(snap);
	m = model_build(snap, "cluster.local", "istio-system");
	ck_assert_ptr_nonnull(m);
	cfg_snapshot_unref(snap);
	cfg_store_free(st);
	return m;
}

/* A cache in verify mode. */
static struct gen_cache *cache_new(void)
{
	struct gen_cache *c = gen_cache_new();

	ck_assert_ptr_nonnull(c);
	gen_cache_set_verify(c, true);
	return c;
}

/* Verify mode found every reused group equal to its rebuild. */
static void assert_keys_held(const struct gen_cache_stats *st, const char *step)
{
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_msg(st->mismatched[t] == 0, "%s: %zu %s groups reused with a stale key", step, st->mismatched[t],
			      xds_type_short((enum xds_type)t));
		ck_assert_uint_eq(st->verified[t], st->reused[t]);
	}
}

static void assert_same(const struct xds_snapshot *a, const struct xds_snapshot *b, const char *step)
{
	size_t i;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_msg(a->sets[t].n == b->sets[t].n, "%s: %s count %zu vs %zu", step,
			      xds_type_short(t), a->sets[t].n, b->sets[t].n);
		for (i = 0; i < a->sets[t].n; i++) {
			const struct xds_resource *x = a->sets[t].v[i], *y = b->sets[t].v[i];

			ck_assert_str_eq(x->name, y->name);
			ck_assert_msg(x->len == y->len && memcmp(x->data, y->data, x->len) == 0,
				      "%s: %s %s differs", step, xds_type_short(t), x->name);
			ck_assert_uint_eq(x->hash, y->hash);
		}
	}
	ck_assert_uint_eq(a->model_generation, b->model_generation);
}

/* Build s through both paths, compare, and return the cached snapshot's
 * counters. */
static void run_step(struct gen_cache *c, const struct step *s, struct gen_cache_stats *st,
		     struct xds_snapshot **keep)
{
	struct model *m = build_model(s);
	struct xds_snapshot *full = NULL, *inc = NULL;

	ck_assert_int_eq(gen_grpc_snapshot(m, &full), 0);
	ck_assert_int_eq(gen_grpc_snapshot_cached(c, m, &inc), 0);
	assert_same(full, inc, s->name);
	gen_cache_get_stats(c, st);
	assert_keys_held(st, s->name);
	if (keep)
		*keep = xds_snapshot_ref(full);
	xds_snapshot_unref(full);
	xds_snapshot_unref(inc);
	model_unref(m);
}

static size_t built_total(const struct gen_cache_stats *st)
{
	size_t n = 0;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++)
		n += st->built[t];
	return n;
}

static bool resource_changed(const struct xds_snapshot *a, const struct xds_snapshot *b, enum xds_type t,
			     const char *name)
{
	const struct xds_resource *x = xds_snapshot_find(a, t, name), *y = xds_snapshot_find(b, t, name);

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	return x->hash != y->hash;
}

START_TEST(test_sequence_matches_full_build)
{
	struct step steps[] = {
		base,
		{ "endpoint address", "reviews", "127.0.1.9", "jason", false, false, NULL, false, false },
		{ "virtual service", "reviews", "127.0.1.9", "sally", false, false, NULL, false, false },
		{ "destination rule of a route target", "reviews", "127.0.1.9", "sally", true, false, NULL, false, false },
		{ "service added", "reviews", "127.0.1.9", "sally", true, true, NULL, false, false },
		{ "service removed", "reviews", "127.0.1.9", "sally", true, false, NULL, false, false },
		{ "peer authentication", "reviews", "127.0.1.9", "sally", true, false, "DISABLE", false, false },
		{ "peer authentication mode", "reviews", "127.0.1.9", "sally", true, false, "STRICT", false, false },
		{ "service account", "other", "127.0.1.9", "sally", true, false, "STRICT", false, false },
		{ "peer authentication removed", "other", "127.0.1.9", "sally", true, false, NULL, false, false },
		base,
	};
	struct gen_cache *c = cache_new();
	struct gen_cache_stats st;
	size_t i;

	ck_assert_ptr_nonnull(c);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		run_step(c, &steps[i], &st, NULL);
	gen_cache_free(c);
}
END_TEST

START_TEST(test_unchanged_model_rebuilds_nothing)
{
	struct gen_cache *c = cache_new();
	struct gen_cache_stats st;

	run_step(c, &base, &st, NULL);
	/* first build: every group of the two services is built */
	ck_assert_uint_eq(st.built[XDS_LISTENER], 2);
	ck_assert_uint_eq(st.built[XDS_ROUTE], 2);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 2);
	ck_assert_uint_eq(st.built[XDS_ENDPOINT], 2);
	/* the same config again, in a model built afresh */
	run_step(c, &base, &st, NULL);
	ck_assert_uint_eq(built_total(&st), 0);
	ck_assert_uint_eq(st.reused[XDS_ENDPOINT], 2);
	/* same shape, same endpoints: no key computed again */
	ck_assert_uint_eq(st.keys_carried, 2);
	gen_cache_free(c);
}
END_TEST

START_TEST(test_endpoint_change_rebuilds_only_its_assignments)
{
	struct step moved = base;
	struct gen_cache *c = cache_new();
	struct gen_cache_stats st;
	struct xds_snapshot *before = NULL, *after = NULL;

	run_step(c, &base, &st, &before);
	moved.name = "ratings endpoint moved";
	moved.ratings_addr = "127.0.1.7";
	run_step(c, &moved, &st, &after);
	ck_assert_uint_eq(st.built[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.reused[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.built[XDS_LISTENER], 0);
	ck_assert_uint_eq(st.built[XDS_ROUTE], 0);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 0);
	/* only ratings' keys were computed (reviews' carried over) */
	ck_assert_uint_eq(st.keys_carried, 1);
	/* and the change is there */
	ck_assert(resource_changed(before, after, XDS_ENDPOINT, "outbound|9090||ratings.default.svc.cluster.local"));
	ck_assert(!resource_changed(before, after, XDS_ENDPOINT, "outbound|9080||reviews.default.svc.cluster.local"));
	xds_snapshot_unref(before);
	xds_snapshot_unref(after);
	gen_cache_free(c);
}
END_TEST

START_TEST(test_dependencies_rebuild)
{
	struct step s = base;
	struct gen_cache *c = cache_new();
	struct gen_cache_stats st;
	struct xds_snapshot *before = NULL, *after = NULL;

	run_step(c, &base, &st, &before);

	/* a DestinationRule on ratings changes reviews' routes (hash policy
	 * on the route to ratings): both services' routes are looked at */
	s.name = "ratings hash";
	s.ratings_dr = true;
	run_step(c, &s, &st, &after);
	ck_assert_uint_eq(st.keys_carried, 0); /* not an endpoint change: every key computed */
	ck_assert_uint_eq(st.built[XDS_ROUTE], 2);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 1);
	ck_assert_uint_eq(st.built[XDS_LISTENER], 0);
	ck_assert(resource_changed(before, after, XDS_ROUTE, "reviews.default.svc.cluster.local:9080"));
	xds_snapshot_unref(before);
	before = after;
	after = NULL;

	/* STRICT mTLS in the namespace: reviews' endpoints have identities,
	 * so its clusters change (auto mTLS); ratings' have none */
	s.name = "strict";
	s.pa_mode = "STRICT";
	run_step(c, &s, &st, &after);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 1);
	ck_assert_uint_eq(st.built[XDS_ENDPOINT], 0);
	ck_assert_uint_eq(st.built[XDS_ROUTE], 0);
	ck_assert(!resource_changed(before, after, XDS_CLUSTER, "outbound|9090||ratings.default.svc.cluster.local"));
	xds_snapshot_unref(before);
	xds_snapshot_unref(after);
	gen_cache_free(c);
}
END_TEST

/* The cache holds nothing the snapshot it just built does not serve:
 * a deleted service's entry, a removed port's and a removed subset's
 * resources are gone after the next push (issue 9: memory that does not
 * grow with churn). */
START_TEST(test_no_orphan_entries)
{
	struct step s = base;
	struct gen_cache *c = cache_new();
	struct xds_snapshot *snap = NULL;
	struct gen_cache_stats st;
	size_t services, resources, served;
	int t, i;
	struct {
		const char *name;
		bool details, port2, no_dr;
		size_t services;
	} seq[] = {
		{ "all", true, true, false, 3 },
		{ "details deleted", false, true, false, 2 },
		{ "ratings port 9091 removed", false, false, false, 2 },
		{ "reviews subsets removed", false, false, true, 2 },
		{ "all again", true, true, false, 3 },
		{ "everything but the two", false, false, true, 2 },
	};

	for (i = 0; i < (int)(sizeof(seq) / sizeof(seq[0])); i++) {
		struct model *m;

		s.name = seq[i].name;
		s.details = seq[i].details;
		s.ratings_port2 = seq[i].port2;
		s.no_reviews_dr = seq[i].no_dr;
		m = build_model(&s);
		ck_assert_int_eq(gen_grpc_snapshot_cached(c, m, &snap), 0);
		gen_cache_get_stats(c, &st);
		assert_keys_held(&st, s.name);
		ck_assert_msg(gen_cache_orphans(c, snap, &services, &resources) == 0, "%s: orphans", s.name);
		ck_assert_uint_eq(services, seq[i].services);
		/* and the cache holds every resource the snapshot serves */
		for (served = 0, t = 0; t < XDS_TYPE_COUNT; t++)
			served += snap->sets[t].n;
		ck_assert_msg(resources == served, "%s: cache %zu, snapshot %zu", s.name, resources, served);
		/* the removed port's and subsets' clusters are not served */
		ck_assert((xds_snapshot_find(snap, XDS_CLUSTER, "outbound|9091||ratings.default.svc.cluster.local") != NULL) ==
			  seq[i].port2);
		ck_assert((xds_snapshot_find(snap, XDS_CLUSTER, "outbound|9080|v2|reviews.default.svc.cluster.local") !=
			   NULL) == !seq[i].no_dr);
		xds_snapshot_unref(snap);
		snap = NULL;
		model_unref(m);
	}
	gen_cache_free(c);
}
END_TEST

/* gen_cache_orphans can fail: a snapshot built elsewhere shares no object
 * with the cache. */
START_TEST(test_orphans_counted)
{
	struct gen_cache *c = cache_new();
	struct model *m = build_model(&base);
	struct xds_snapshot *inc = NULL, *full = NULL;
	size_t resources;

	ck_assert_int_eq(gen_grpc_snapshot_cached(c, m, &inc), 0);
	ck_assert_int_eq(gen_grpc_snapshot(m, &full), 0);
	ck_assert_uint_eq(gen_cache_orphans(c, inc, NULL, &resources), 0);
	ck_assert_uint_gt(resources, 0);
	ck_assert_uint_eq(gen_cache_orphans(c, full, NULL, NULL), resources);
	xds_snapshot_unref(inc);
	xds_snapshot_unref(full);
	model_unref(m);
	gen_cache_free(c);
}
END_TEST

START_TEST(test_free_null)
{
	struct gen_cache_stats st;

	gen_cache_free(NULL);
	gen_cache_get_stats(NULL, &st);
	ck_assert_uint_eq(built_total(&st), 0);
}
END_TEST

/* A cache serves one profile: switching rebuilds everything, and the
 * result is that profile's full build. */
START_TEST(test_profile_switch_rebuilds)
{
	static const struct gen_profile other = { .name = "other", .least_request = true, .string_match = true };
	struct gen_cache *c = cache_new();
	struct model *m = build_model(&base);
	struct xds_snapshot *full = NULL, *inc = NULL;
	struct gen_cache_stats st;
	int t;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(gen_grpc_snapshot_cached(c, m, &inc), 0);
	xds_snapshot_unref(inc);
	ck_assert_int_eq(gen_snapshot(m, &other, NULL, &full), 0);
	ck_assert_int_eq(gen_snapshot_cached(c, m, &other, NULL, &inc), 0);
	assert_same(full, inc, "other profile");
	gen_cache_get_stats(c, &st);
	for (t = 0; t < 4; t++)
		ck_assert_uint_eq(st.reused[t], 0);
	ck_assert_uint_gt(built_total(&st), 0);
	xds_snapshot_unref(inc);
	/* and the same profile again reuses everything */
	ck_assert_int_eq(gen_snapshot_cached(c, m, &other, NULL, &inc), 0);
	assert_same(full, inc, "other profile again");
	gen_cache_get_stats(c, &st);
	ck_assert_uint_eq(built_total(&st), 0);
	xds_snapshot_unref(inc);
	xds_snapshot_unref(full);
	model_unref(m);
	gen_cache_free(c);
}
END_TEST

static Suite *gen_cache_suite(void)
{
	Suite *s = suite_create("gen_cache");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sequence_matches_full_build);
	tcase_add_test(tc, test_unchanged_model_rebuilds_nothing);
	tcase_add_test(tc, test_endpoint_change_rebuilds_only_its_assignments);
	tcase_add_test(tc, test_dependencies_rebuild);
	tcase_add_test(tc, test_no_orphan_entries);
	tcase_add_test(tc, test_orphans_counted);
	tcase_add_test(tc, test_free_null);
	tcase_add_test(tc, test_profile_switch_rebuilds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(gen_cache_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
