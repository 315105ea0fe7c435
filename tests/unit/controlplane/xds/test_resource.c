/*
 * test_resource.c - type URLs, snapshot sets (sorting, find, replace) and
 * the stability of resource hashes.
 */
#include "controlplane/xds/resource.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(type_urls_round_trip)
{
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const char *u = xds_type_url((enum xds_type)t);
		ck_assert_ptr_nonnull(u);
		ck_assert_int_eq(strncmp(u, XDS_TYPE_URL_PREFIX, strlen(XDS_TYPE_URL_PREFIX)), 0);
		ck_assert_int_eq(xds_type_from_url(u), t);
	}
	ck_assert_str_eq(xds_type_url(XDS_CLUSTER), "type.googleapis.com/envoy.config.cluster.v3.Cluster");
	ck_assert_str_eq(xds_type_url(XDS_ENDPOINT),
			 "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
	ck_assert_str_eq(xds_type_url(XDS_SECRET),
			 "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret");
	ck_assert_int_eq(xds_type_from_url("type.googleapis.com/envoy.config.listener.v2.Listener"), -1);
	ck_assert_int_eq(xds_type_from_url(""), -1);
	ck_assert_int_eq(xds_type_from_url(NULL), -1);
	ck_assert_str_eq(xds_type_short(XDS_LISTENER), "lds");
	ck_assert_str_eq(xds_type_short(XDS_ROUTE), "rds");
	ck_assert_str_eq(xds_type_short(XDS_CLUSTER), "cds");
	ck_assert_str_eq(xds_type_short(XDS_ENDPOINT), "eds");
	ck_assert_str_eq(xds_type_short(XDS_SECRET), "sds");
}
END_TEST

static void add_str(struct xds_snapshot *s, enum xds_type t, const char *name, const char *data)
{
	ck_assert_int_eq(xds_snapshot_add(s, t, name, (const uint8_t *)data, strlen(data)), 0);
}

START_TEST(sorted_after_seal_and_find)
{
	struct xds_snapshot *s = xds_snapshot_new();
	const char *names[] = { "outbound|80||b", "outbound|80||a", "zz", "a", "m", "outbound|8080||a" };
	const struct xds_resource *r;
	size_t i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		add_str(s, XDS_CLUSTER, names[i], names[i]);
	xds_snapshot_seal(s);
	ck_assert_uint_eq(s->sets[XDS_CLUSTER].n, 6);
	for (i = 1; i < s->sets[XDS_CLUSTER].n; i++)
		ck_assert_int_lt(strcmp(s->sets[XDS_CLUSTER].v[i - 1]->name, s->sets[XDS_CLUSTER].v[i]->name), 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		r = xds_snapshot_find(s, XDS_CLUSTER, names[i]);
		ck_assert_ptr_nonnull(r);
		ck_assert_str_eq(r->name, names[i]);
		ck_assert_uint_eq(r->len, strlen(names[i]));
		ck_assert_int_eq(memcmp(r->data, names[i], r->len), 0);
	}
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "absent"));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "a"));
	ck_assert_uint_eq(s->sets[XDS_LISTENER].n, 0);
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(add_twice_replaces)
{
	struct xds_snapshot *s = xds_snapshot_new();
	const struct xds_resource *r;

	add_str(s, XDS_LISTENER, "b", "first-b");
	add_str(s, XDS_LISTENER, "a", "only-a");
	add_str(s, XDS_LISTENER, "b", "second-b");
	add_str(s, XDS_LISTENER, "c", "c");
	add_str(s, XDS_LISTENER, "b", "third-b");
	xds_snapshot_seal(s);
	ck_assert_uint_eq(s->sets[XDS_LISTENER].n, 3);
	r = xds_snapshot_find(s, XDS_LISTENER, "b");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->len, strlen("third-b"));
	ck_assert_int_eq(memcmp(r->data, "third-b", r->len), 0);
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(hash_stable_and_content_sensitive)
{
	struct xds_snapshot *a = xds_snapshot_new(), *b = xds_snapshot_new();
	const struct xds_resource *ra, *rb;

	/* Same content, different insertion order: same hashes. */
	add_str(a, XDS_CLUSTER, "x", "payload");
	add_str(a, XDS_CLUSTER, "y", "other");
	add_str(b, XDS_CLUSTER, "y", "other");
	add_str(b, XDS_CLUSTER, "x", "payload");
	/* Same bytes under another type or name: different hashes. */
	add_str(a, XDS_ENDPOINT, "x", "payload");
	add_str(b, XDS_CLUSTER, "z", "payload");
	xds_snapshot_seal(a);
	xds_snapshot_seal(b);
	ra = xds_snapshot_find(a, XDS_CLUSTER, "x");
	rb = xds_snapshot_find(b, XDS_CLUSTER, "x");
	ck_assert_uint_eq(ra->hash, rb->hash);
	ck_assert_uint_ne(ra->hash, xds_snapshot_find(a, XDS_ENDPOINT, "x")->hash);
	ck_assert_uint_ne(ra->hash, xds_snapshot_find(b, XDS_CLUSTER, "z")->hash);
	ck_assert_uint_ne(ra->hash, xds_snapshot_find(a, XDS_CLUSTER, "y")->hash);
	/* A fixed value (FNV-1a over "<type url>\0x\0payload"): versions must
	 * not change between builds or runs of meshd. */
	ck_assert_uint_eq(ra->hash, 0x6d2e4b5de3ce7f13ULL);
	xds_snapshot_unref(a);
	xds_snapshot_unref(b);
}
END_TEST

START_TEST(refcount_and_empty_data)
{
	struct xds_snapshot *s = xds_snapshot_new();
	const struct xds_resource *r;

	ck_assert_int_eq(xds_snapshot_add(s, XDS_SECRET, "empty", NULL, 0), 0);
	ck_assert_int_lt(xds_snapshot_add(s, XDS_SECRET, NULL, NULL, 0), 0);
	ck_assert_int_lt(xds_snapshot_add(s, XDS_TYPE_COUNT, "x", NULL, 0), 0);
	xds_snapshot_seal(s);
	r = xds_snapshot_find(s, XDS_SECRET, "empty");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->len, 0);
	ck_assert_ptr_eq(xds_snapshot_ref(s), s);
	xds_snapshot_unref(s);
	/* still alive: one reference left */
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_SECRET, "empty"));
	xds_snapshot_unref(s);
	xds_snapshot_unref(NULL);
}
END_TEST

/* Snapshots share a resource added by reference: the same bytes, one
 * count per holder, freed with the last holder.  A replaced duplicate
 * gives its reference back. */
START_TEST(shared_by_reference)
{
	struct xds_snapshot *a = xds_snapshot_new(), *b = xds_snapshot_new();
	struct xds_resource *r = NULL, *other = NULL;

	ck_assert_int_eq(xds_resource_new(XDS_CLUSTER, "x", (const uint8_t *)"payload", 7, &r), 0);
	ck_assert_int_eq(xds_resource_new(XDS_CLUSTER, "x", (const uint8_t *)"older", 5, &other), 0);
	ck_assert_str_eq(r->name, "x");
	ck_assert_int_eq(memcmp(r->data, "payload", 7), 0);
	ck_assert_int_eq(xds_snapshot_add_ref(a, XDS_CLUSTER, r), 0);
	ck_assert_int_eq(xds_snapshot_add_ref(b, XDS_CLUSTER, other), 0);
	ck_assert_int_eq(xds_snapshot_add_ref(b, XDS_CLUSTER, r), 0);
	ck_assert_int_lt(xds_snapshot_add_ref(b, XDS_CLUSTER, NULL), 0);
	ck_assert_int_lt(xds_snapshot_add_ref(b, XDS_TYPE_COUNT, r), 0);
	ck_assert_uint_eq(mesh_refcount_get(&r->refs), 3);
	ck_assert_uint_eq(mesh_refcount_get(&other->refs), 2);
	xds_snapshot_seal(a);
	xds_snapshot_seal(b);
	/* the later add of "x" won in b; the earlier one was let go */
	ck_assert_uint_eq(mesh_refcount_get(&other->refs), 1);
	ck_assert_ptr_eq(xds_snapshot_find(a, XDS_CLUSTER, "x"), r);
	ck_assert_ptr_eq(xds_snapshot_find(b, XDS_CLUSTER, "x"), r);
	/* the hash xds_snapshot_add gives the same content (see
	 * hash_stable_and_content_sensitive) */
	ck_assert_uint_eq(r->hash, 0x6d2e4b5de3ce7f13ULL);
	xds_snapshot_unref(a);
	ck_assert_uint_eq(mesh_refcount_get(&r->refs), 2);
	xds_snapshot_unref(b);
	ck_assert_uint_eq(mesh_refcount_get(&r->refs), 1);
	xds_resource_unref(other);
	ck_assert_int_lt(xds_resource_new(XDS_CLUSTER, NULL, NULL, 0, &other), 0);
	ck_assert_ptr_null(other);
	xds_resource_unref(r);
	xds_resource_unref(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xds_resource");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, type_urls_round_trip);
	tcase_add_test(tc, sorted_after_seal_and_find);
	tcase_add_test(tc, add_twice_replaces);
	tcase_add_test(tc, hash_stable_and_content_sensitive);
	tcase_add_test(tc, refcount_and_empty_data);
	tcase_add_test(tc, shared_by_reference);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
