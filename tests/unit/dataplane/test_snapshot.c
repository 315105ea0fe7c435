/*
 * test_snapshot.c - meshproxy's configuration snapshots: decoding,
 * replacing a type's set (SotW), incremental updates (Delta), lookups, and
 * resources shared by reference between snapshots.
 */
#include "dataplane/snapshot.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Cluster named name, decoded as meshproxy decodes what it receives. */
static struct px_resource *cluster(const char *name)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	struct px_resource *r;
	uint8_t *buf;
	size_t len;

	c.name = (char *)name;
	len = protobuf_c_message_get_packed_size(&c.base);
	buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(buf);
	protobuf_c_message_pack(&c.base, buf);
	ck_assert_int_eq(px_resource_decode(XDS_CLUSTER, name, buf, len, &r), 0);
	free(buf);
	ck_assert_str_eq(((const Envoy__Config__Cluster__V3__Cluster *)px_resource_msg(r))->name, name);
	return r;
}

START_TEST(replace_update_find_share)
{
	struct px_resource *a = cluster("a"), *b = cluster("b"), *c = cluster("c");
	const struct px_resource *set1[] = { b, a };
	const struct px_resource *set2[] = { c };
	const char *rm[] = { "a" };
	struct px_snapshot *s0, *s1, *s2;

	ck_assert_int_eq(px_snapshot_new(&s0), 0);
	ck_assert_int_eq(px_snapshot_replace(s0, XDS_CLUSTER, set1, 2, &s1), 0);
	ck_assert_uint_eq(s1->generation, 1);
	ck_assert_str_eq(s1->sets[XDS_CLUSTER].v[0]->name, "a"); /* sorted */
	ck_assert_ptr_eq(px_snapshot_find(s1, XDS_CLUSTER, "b"), b);
	ck_assert_ptr_null(px_snapshot_find(s1, XDS_CLUSTER, "c"));
	ck_assert_ptr_null(px_snapshot_find(s1, XDS_LISTENER, "a"));
	/* Delta: add c, remove a, keep b (the same object, shared) */
	ck_assert_int_eq(px_snapshot_update(s1, XDS_CLUSTER, set2, 1, rm, 1, &s2), 0);
	ck_assert_uint_eq(s2->sets[XDS_CLUSTER].n, 2);
	ck_assert_ptr_null(px_snapshot_find(s2, XDS_CLUSTER, "a"));
	ck_assert_ptr_eq(px_snapshot_find(s2, XDS_CLUSTER, "b"), b);
	ck_assert_ptr_eq(px_snapshot_find(s2, XDS_CLUSTER, "c"), c);
	ck_assert_uint_eq(mesh_refcount_get(&b->refs), 3); /* ours, s1, s2 */
	px_snapshot_unref(s1);
	ck_assert_uint_eq(mesh_refcount_get(&a->refs), 1);
	ck_assert_uint_eq(mesh_refcount_get(&b->refs), 2);
	px_snapshot_unref(s2);
	px_snapshot_unref(s0);
	ck_assert_uint_eq(mesh_refcount_get(&c->refs), 1);
	px_resource_unref(a);
	px_resource_unref(b);
	px_resource_unref(c);
}
END_TEST

START_TEST(duplicates_and_garbage_refused)
{
	struct px_resource *a = cluster("a"), *r = NULL;
	const struct px_resource *dup[] = { a, a };
	struct px_snapshot *s = NULL;
	const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f }; /* a length past the end */

	ck_assert_int_eq(px_snapshot_replace(NULL, XDS_CLUSTER, dup, 2, &s), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_uint_eq(mesh_refcount_get(&a->refs), 1);
	ck_assert_int_eq(px_resource_decode(XDS_CLUSTER, "x", junk, sizeof(junk), &r), -MESH_EPARSE);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(px_resource_decode(XDS_TYPE_COUNT, "x", junk, 0, &r), -EINVAL);
	px_resource_unref(a);
}
END_TEST

/* An Any with no value reaches px_resource_decode as (NULL, 0): every
 * type decodes it as the empty message (tests/fuzz/fuzz_snapshot.c found
 * the memcpy from NULL, which UBSan reports under `make SAN=1 unit`). */
START_TEST(empty_resource_from_null)
{
	struct px_resource *r = NULL;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_int_eq(px_resource_decode((enum xds_type)t, "e", NULL, 0, &r), 0);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(r->len, 0);
		ck_assert_ptr_nonnull(px_resource_msg(r));
		px_resource_unref(r);
		r = NULL;
	}
}
END_TEST

#define EDS_CLUSTER "outbound|80||a.ns.svc.cluster.local"
static uint8_t eds_buf[256];
static size_t eds_len;

/* The EDS cluster EDS_CLUSTER with service_name service, encoded into
 * eds_buf[eds_len] and decoded under the name as. */
static struct px_resource *eds_cluster(const char *service, const char *as)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig eds = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
	struct px_resource *r;

	c.name = EDS_CLUSTER;
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	c.eds_cluster_config = &eds;
	eds.service_name = (char *)service;
	eds_len = protobuf_c_message_pack(&c.base, eds_buf);
	ck_assert_int_eq(px_resource_decode(XDS_CLUSTER, as, eds_buf, eds_len, &r), 0);
	return r;
}

/* The engine sheds the decoded messages once it has compiled a snapshot:
 * the bytes stay, the message decodes again on demand with the same
 * content, and an EDS cluster's EDS name is known without decoding. */
START_TEST(shed_and_decode_again)
{
	struct px_resource *r = eds_cluster("", EDS_CLUSTER), *plain = cluster("static");
	const struct px_resource *set[2];
	const Envoy__Config__Cluster__V3__Cluster *m;
	struct px_snapshot *s;

	ck_assert_str_eq(r->eds_name, EDS_CLUSTER); /* no service_name: the cluster's name */
	ck_assert_ptr_null(plain->eds_name);
	ck_assert_uint_eq(r->len, eds_len);
	set[0] = plain;
	set[1] = r;
	ck_assert_int_eq(px_snapshot_replace(NULL, XDS_CLUSTER, set, 2, &s), 0);
	ck_assert_ptr_nonnull(r->decoded);
	px_snapshot_shed(s);
	ck_assert_ptr_null(r->decoded);
	ck_assert_ptr_null(plain->decoded);
	m = (const void *)px_resource_msg(r);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_eq(r->decoded, &m->base);
	ck_assert_str_eq(m->name, EDS_CLUSTER);
	ck_assert_int_eq(m->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
	ck_assert_ptr_eq(px_resource_msg(r), &m->base); /* cached */
	px_snapshot_unref(s);
	px_resource_unref(r); /* frees the re-decoded message too (ASan: no leak) */
	px_resource_unref(plain);

	r = eds_cluster("a-eds", EDS_CLUSTER);
	ck_assert_str_eq(r->eds_name, "a-eds");
	px_resource_unref(r);
}
END_TEST

/* The EDS name equal to the cluster's name (Istio's: service_name is the
 * cluster name) is not a second copy; renaming (the xDS client names a
 * resource after decoding it) keeps both right either way. */
START_TEST(eds_name_shares_the_name)
{
	struct px_resource *r = eds_cluster(EDS_CLUSTER, EDS_CLUSTER);

	ck_assert_ptr_eq(r->eds_name, r->name);
	px_resource_unref(r);
	/* decoded without its name first, as the xDS client does */
	r = eds_cluster(EDS_CLUSTER, "");
	ck_assert_str_eq(r->eds_name, EDS_CLUSTER);
	ck_assert_int_eq(px_resource_set_name(r, EDS_CLUSTER), 0);
	ck_assert_str_eq(r->name, EDS_CLUSTER);
	ck_assert_ptr_eq(r->eds_name, r->name);
	/* renamed away from its EDS name: that stays */
	ck_assert_int_eq(px_resource_set_name(r, "other"), 0);
	ck_assert_str_eq(r->name, "other");
	ck_assert_str_eq(r->eds_name, EDS_CLUSTER);
	px_resource_unref(r); /* ASan: nothing freed twice, nothing leaked */
}
END_TEST

/* Decoded messages live in shared decode regions: a message bigger than a
 * region spans several, two resources share one, and shedding one leaves
 * the other readable (ASan/SEGV would catch an unmapped region). */
START_TEST(regions_span_and_share)
{
	enum { NVH = 3000 };
	Envoy__Config__Route__V3__RouteConfiguration rc = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	Envoy__Config__Route__V3__VirtualHost *vh = calloc(NVH, sizeof(*vh)), **vhp = calloc(NVH, sizeof(*vhp));
	char (*names)[32] = calloc(NVH, sizeof(*names));
	char *dom[NVH];
	const Envoy__Config__Route__V3__RouteConfiguration *m;
	const Envoy__Config__Cluster__V3__Cluster *cm;
	struct px_resource *big, *small_a, *small_b;
	const struct px_resource *one[1];
	struct px_snapshot *s;
	uint8_t *buf;
	size_t len, i;

	ck_assert_ptr_nonnull(vh);
	for (i = 0; i < NVH; i++) {
		envoy__config__route__v3__virtual_host__init(&vh[i]);
		snprintf(names[i], sizeof(names[i]), "svc%zu.ns.svc.cluster.local", i);
		vh[i].name = names[i];
		dom[i] = names[i];
		vh[i].n_domains = 1;
		vh[i].domains = &dom[i];
		vhp[i] = &vh[i];
	}
	rc.name = "8080";
	rc.n_virtual_hosts = NVH;
	rc.virtual_hosts = vhp;
	len = protobuf_c_message_get_packed_size(&rc.base);
	buf = malloc(len);
	protobuf_c_message_pack(&rc.base, buf);
	small_a = cluster("a");
	ck_assert_int_eq(px_resource_decode(XDS_ROUTE, "8080", buf, len, &big), 0);
	small_b = cluster("b");
	ck_assert_uint_ge(big->n_regions, 2); /* ~300 KB decoded: more than one 128 KiB region */
	ck_assert_ptr_eq(small_b->regions[0], big->regions[big->n_regions - 1]); /* shares the current one */
	m = (const void *)px_resource_msg(big);
	ck_assert_uint_eq(m->n_virtual_hosts, NVH);
	ck_assert_str_eq(m->virtual_hosts[NVH - 1]->domains[0], names[NVH - 1]);
	one[0] = big;
	ck_assert_int_eq(px_snapshot_replace(NULL, XDS_ROUTE, one, 1, &s), 0);
	px_snapshot_shed(s);
	ck_assert_ptr_null(big->decoded);
	ck_assert_uint_eq(big->n_regions, 0);
	/* b's message is still there, in the region big no longer holds */
	cm = (const void *)px_resource_msg(small_b);
	ck_assert_str_eq(cm->name, "b");
	cm = (const void *)px_resource_msg(small_a);
	ck_assert_str_eq(cm->name, "a");
	/* decoded again, the same content */
	m = (const void *)px_resource_msg(big);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->virtual_hosts[1234]->name, names[1234]);
	px_snapshot_unref(s);
	px_resource_unref(small_a);
	px_resource_unref(big);
	ck_assert_str_eq(((const Envoy__Config__Cluster__V3__Cluster *)px_resource_msg(small_b))->name, "b");
	px_resource_unref(small_b);
	free(buf);
	free(names);
	free(vhp);
	free(vh);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("px_snapshot");
	TCase *tc = tcase_create("snapshot");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, replace_update_find_share);
	tcase_add_test(tc, duplicates_and_garbage_refused);
	tcase_add_test(tc, shed_and_decode_again);
	tcase_add_test(tc, eds_name_shares_the_name);
	tcase_add_test(tc, empty_resource_from_null);
	tcase_add_test(tc, regions_span_and_share);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
