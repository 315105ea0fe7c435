/*
 * test_gen_cache_planted.c - verify mode can fail: cache.c is compiled
 * into this test with GEN_CACHE_PLANTED_OMISSION, which makes the EDS key
 * forget endpoint weights (an input endpoint.c reads).  A weight change then
 * keeps the key: without verify mode the cache serves the stale
 * assignment (the bug verify mode exists to catch); with it the mismatch is
 * counted, noted, and the rebuilt bytes are served.
 *
 * The archive linker takes gen_cache_* from this object, not from
 * libmeshd.a's cache.o (every symbol of that member is defined here).
 */
#define GEN_CACHE_PLANTED_OMISSION 1
#include "controlplane/gen/cache.c"

#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"

#include <stdio.h>

#define EDS_NAME "outbound|9090||ratings.default.svc.cluster.local"

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
	"  - {address: 127.0.1.1, weight: %u}\n"
	"  - {address: 127.0.1.2, weight: 1}\n";

static struct model *model_with_weight(unsigned weight)
{
	char yaml[2048];
	int len = snprintf(yaml, sizeof(yaml), se_ratings, weight);
	struct cfg_parse_result res;
	struct cfg_store *st;
	struct cfg_snapshot *snap;
	struct model *m;

	ck_assert(len > 0 && (size_t)len < sizeof(yaml));
	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("planted.yaml", yaml, (size_t)len, &res), 0);
	ck_assert_uint_eq(res.n_errors, 0);
	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	ck_assert_int_ge(cfg_store_apply_origin(st, "planted.yaml", &res), 0);
	cfg_parse_result_cleanup(&res);
	snap = cfg_store_snapshot(st);
	ck_assert_ptr_nonnull(snap);
	m = model_build(snap, "cluster.local", "istio-system");
	ck_assert_ptr_nonnull(m);
	cfg_snapshot_unref(snap);
	cfg_store_free(st);
	return m;
}

struct noted {
	int errors;
	char last[512];
};

static void note_fn(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	struct noted *n = ctx;

	(void)scope;
	if (level == GEN_NOTE_ERROR) {
		n->errors++;
		snprintf(n->last, sizeof(n->last), "%s", msg);
	}
}

/* The assignment cached for weight 1, then asked for weight 5: equal to
 * the full build or not. */
static bool weight_change_served(bool verify, struct gen_cache_stats *st, struct noted *noted)
{
	struct gen_cache *c = gen_cache_new();
	struct gen_notes notes = { .fn = note_fn, .ctx = noted };
	struct model *m1 = model_with_weight(1), *m5 = model_with_weight(5);
	struct xds_snapshot *s1 = NULL, *s5 = NULL, *full = NULL;
	const struct xds_resource *x, *y;
	bool same;

	ck_assert_ptr_nonnull(c);
	gen_cache_set_verify(c, verify);
	ck_assert_int_eq(gen_snapshot_cached(c, m1, &gen_profile_proxyless, &notes, &s1), 0);
	ck_assert_int_eq(gen_snapshot_cached(c, m5, &gen_profile_proxyless, &notes, &s5), 0);
	gen_cache_get_stats(c, st);
	ck_assert_int_eq(gen_grpc_snapshot(m5, &full), 0);
	x = xds_snapshot_find(full, XDS_ENDPOINT, EDS_NAME);
	y = xds_snapshot_find(s5, XDS_ENDPOINT, EDS_NAME);
	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	/* the weight is in the bytes: weight 1 and 5 encode differently */
	ck_assert_uint_ne(x->hash, xds_snapshot_find(s1, XDS_ENDPOINT, EDS_NAME)->hash);
	same = x->len == y->len && memcmp(x->data, y->data, x->len) == 0;
	xds_snapshot_unref(s1);
	xds_snapshot_unref(s5);
	xds_snapshot_unref(full);
	model_unref(m1);
	model_unref(m5);
	gen_cache_free(c);
	return same;
}

START_TEST(omission_serves_stale_bytes_without_verify)
{
	struct gen_cache_stats st;
	struct noted noted = { 0 };

	ck_assert(!weight_change_served(false, &st, &noted));
	ck_assert_uint_eq(st.reused[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.verified[XDS_ENDPOINT], 0);
	ck_assert_int_eq(noted.errors, 0);
}
END_TEST

START_TEST(verify_catches_the_omission)
{
	struct gen_cache_stats st;
	struct noted noted = { 0 };

	ck_assert(weight_change_served(true, &st, &noted));
	ck_assert_uint_eq(st.verified[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.mismatched[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.mismatched[XDS_LISTENER] + st.mismatched[XDS_ROUTE] + st.mismatched[XDS_CLUSTER], 0);
	ck_assert_int_eq(noted.errors, 1);
	ck_assert_ptr_nonnull(strstr(noted.last, "eds key of ratings.default.svc.cluster.local misses an input"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gen_cache_planted");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, omission_serves_stale_bytes_without_verify);
	tcase_add_test(tc, verify_catches_the_omission);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
