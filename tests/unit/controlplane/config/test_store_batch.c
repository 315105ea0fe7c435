/*
 * test_store_batch.c - batched store writes (cfg_store_begin/commit): a
 * batch is invisible until commit, is applied as if its writes had been
 * made one by one (checked against an unbatched store over random
 * put/delete/reject sequences, with a file origin beside the Kubernetes
 * one), counts its changed keys, and publishes one generation.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_NAMES 8
#define LINE_MAX_ 512

static struct cfg_object *objs[N_NAMES][2]; /* two versions per name, origin "kube" */
static struct cfg_parse_result parsed[N_NAMES][2];

static void setup(void)
{
	int i, v;

	for (i = 0; i < N_NAMES; i++) {
		for (v = 0; v < 2; v++) {
			char text[LINE_MAX_];
			snprintf(text, sizeof(text),
				 "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
				 "\"metadata\":{\"name\":\"vs%d\",\"namespace\":\"ns\"},"
				 "\"spec\":{\"hosts\":[\"h%d-v%d\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"h%d\"}}]}]}}",
				 i, i, v, i);
			ck_assert_int_eq(cfg_parse_buffer("kube", text, strlen(text), &parsed[i][v]), 0);
			ck_assert_uint_eq(parsed[i][v].n_objects, 1);
			objs[i][v] = parsed[i][v].objects[0];
		}
	}
}

static void teardown(void)
{
	int i, v;

	for (i = 0; i < N_NAMES; i++)
		for (v = 0; v < 2; v++)
			cfg_parse_result_cleanup(&parsed[i][v]);
}

static void error_for(struct cfg_error *e, int i, const char *msg)
{
	static char names[N_NAMES][16];

	snprintf(names[i], sizeof(names[i]), "vs%d", i);
	memset(e, 0, sizeof(*e));
	e->origin = "kube";
	e->kind = CFG_VIRTUAL_SERVICE;
	e->ns = "ns";
	e->name = names[i];
	e->field = "spec.hosts";
	e->message = (char *)msg;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The snapshot as sorted lines: objects (key and hash) and errors. */
static char **describe(struct cfg_store *s, size_t *n_out)
{
	struct cfg_snapshot *snap = cfg_store_snapshot(s);
	char **v;
	size_t n = 0, k, i;

	ck_assert_ptr_nonnull(snap);
	for (k = 0; k < CFG_KIND_COUNT; k++)
		n += snap->n_objects[k];
	v = calloc(n + snap->n_errors + 1, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	n = 0;
	for (k = 0; k < CFG_KIND_COUNT; k++) {
		for (i = 0; i < snap->n_objects[k]; i++) {
			const struct cfg_object *o = snap->objects[k][i];
			v[n] = malloc(LINE_MAX_);
			snprintf(v[n++], LINE_MAX_, "obj %zu %s/%s %s %llx", k, o->ns, o->name, o->origin,
				 (unsigned long long)o->hash);
		}
	}
	for (i = 0; i < snap->n_errors; i++) {
		const struct cfg_error *e = &snap->errors[i];
		v[n] = malloc(LINE_MAX_);
		snprintf(v[n++], LINE_MAX_, "err %s %d %s/%s %s %d", e->origin, e->kind, e->ns ? e->ns : "-",
			 e->name ? e->name : "-", e->message, e->warning);
	}
	qsort(v, n, sizeof(*v), cmp_str);
	cfg_snapshot_unref(snap);
	*n_out = n;
	return v;
}

static void free_lines(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void assert_same(struct cfg_store *a, struct cfg_store *b, int round)
{
	size_t na, nb, i;
	char **va = describe(a, &na), **vb = describe(b, &nb);

	ck_assert_msg(na == nb, "round %d: %zu lines unbatched, %zu batched", round, na, nb);
	for (i = 0; i < na; i++)
		ck_assert_msg(strcmp(va[i], vb[i]) == 0, "round %d: \"%s\" vs \"%s\"", round, va[i], vb[i]);
	free_lines(va, na);
	free_lines(vb, nb);
}

/* A file origin defining vs0 and vs1 too (the file loses to "kube" only
 * where its origin name sorts after it). */
static void apply_file(struct cfg_store *s)
{
	const char *text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			   "metadata: {name: vs0, namespace: ns}\nspec: {hosts: [file0], http: [{route: [{destination: {host: file0}}]}]}\n---\n"
			   "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			   "metadata: {name: vs7, namespace: other}\nspec: {hosts: [file7], http: [{route: [{destination: {host: file7}}]}]}\n";
	struct cfg_parse_result r;

	ck_assert_int_eq(cfg_parse_buffer("/etc/mesh/a.yaml", text, strlen(text), &r), 0);
	ck_assert_int_ge(cfg_store_apply_origin(s, "/etc/mesh/a.yaml", &r), 0);
	cfg_parse_result_cleanup(&r);
}

START_TEST(batch_matches_single_writes)
{
	struct cfg_store *plain = cfg_store_new(), *batched = cfg_store_new();
	unsigned seed = 12345;
	int round, k;

	ck_assert_ptr_nonnull(plain);
	ck_assert_ptr_nonnull(batched);
	apply_file(plain);
	apply_file(batched);
	for (round = 0; round < 400; round++) {
		int n = 1 + rand_r(&seed) % 12, sum = 0, rc;

		ck_assert_int_eq(cfg_store_begin(batched), 0);
		for (k = 0; k < n; k++) {
			int i = rand_r(&seed) % N_NAMES, op = rand_r(&seed) % 10;
			struct cfg_error e;

			if (op < 5) {
				struct cfg_object *o = objs[i][rand_r(&seed) % 2];
				rc = cfg_store_put(plain, o);
				ck_assert_int_ge(rc, 0);
				sum += rc;
				ck_assert_int_eq(cfg_store_put(batched, o), 0);
			} else if (op < 8) {
				rc = cfg_store_delete(plain, CFG_VIRTUAL_SERVICE, "ns", objs[i][0]->name);
				ck_assert_int_ge(rc, 0);
				sum += rc;
				ck_assert_int_eq(cfg_store_delete(batched, CFG_VIRTUAL_SERVICE, "ns", objs[i][0]->name), 0);
			} else if (op < 9) {
				error_for(&e, i, rand_r(&seed) % 2 ? "first problem" : "second problem");
				ck_assert_int_eq(cfg_store_reject(plain, &e), 0);
				ck_assert_int_eq(cfg_store_reject(batched, &e), 0);
			} else {
				error_for(&e, i, "a document without a name");
				e.kind = -1;
				e.ns = e.name = NULL;
				ck_assert_int_eq(cfg_store_reject(plain, &e), 0);
				ck_assert_int_eq(cfg_store_reject(batched, &e), 0);
			}
		}
		rc = cfg_store_commit(batched);
		ck_assert_int_ge(rc, 0);
		/* the batch changes at most as many keys as the single writes did */
		ck_assert_int_le(rc, sum);
		assert_same(plain, batched, round);
	}
	cfg_store_free(plain);
	cfg_store_free(batched);
}
END_TEST

START_TEST(batch_is_invisible_until_commit)
{
	struct cfg_store *s = cfg_store_new();
	struct cfg_snapshot *before, *after;
	int i;

	ck_assert_int_eq(cfg_store_put(s, objs[0][0]), 1);
	before = cfg_store_snapshot(s);
	ck_assert_int_eq(cfg_store_begin(s), 0);
	ck_assert_int_eq(cfg_store_begin(s), -EBUSY);
	for (i = 1; i < N_NAMES; i++)
		ck_assert_int_eq(cfg_store_put(s, objs[i][0]), 0);
	ck_assert_int_eq(cfg_store_delete(s, CFG_VIRTUAL_SERVICE, "ns", "vs0"), 0);
	ck_assert_ptr_nonnull(cfg_store_get(s, CFG_VIRTUAL_SERVICE, "ns", "vs0"));
	ck_assert_ptr_null(cfg_store_get(s, CFG_VIRTUAL_SERVICE, "ns", "vs1"));
	{
		struct cfg_parse_result r;
		memset(&r, 0, sizeof(r));
		ck_assert_int_eq(cfg_store_apply_origin(s, "/x.yaml", &r), -EBUSY);
		ck_assert_int_eq(cfg_store_remove_origin(s, "/x.yaml"), -EBUSY);
	}
	/* one key removed, seven added */
	ck_assert_int_eq(cfg_store_commit(s), N_NAMES);
	ck_assert_int_eq(cfg_store_commit(s), 0);
	after = cfg_store_snapshot(s);
	/* one published generation for the whole batch */
	ck_assert_uint_eq(after->generation, before->generation + 1);
	ck_assert_uint_eq(after->n_objects[CFG_VIRTUAL_SERVICE], N_NAMES - 1);
	ck_assert_ptr_null(cfg_store_get(s, CFG_VIRTUAL_SERVICE, "ns", "vs0"));
	cfg_snapshot_unref(before);
	cfg_snapshot_unref(after);
	/* an empty batch changes nothing */
	ck_assert_int_eq(cfg_store_begin(s), 0);
	ck_assert_int_eq(cfg_store_commit(s), 0);
	cfg_store_free(s);
}
END_TEST

START_TEST(large_relist_in_one_batch)
{
	struct cfg_store *s = cfg_store_new();
	struct cfg_parse_result *r;
	struct cfg_snapshot *snap;
	const int n = 5000;
	int i;

	r = calloc((size_t)n, sizeof(*r));
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(cfg_store_begin(s), 0);
	for (i = n - 1; i >= 0; i--) {
		char text[LINE_MAX_];
		snprintf(text, sizeof(text),
			 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s%d\",\"namespace\":"
			 "\"ns%d\"},\"spec\":{\"ports\":[{\"port\":80}]}}", i, i % 7);
		ck_assert_int_eq(cfg_parse_buffer("kube", text, strlen(text), &r[i]), 0);
		ck_assert_uint_eq(r[i].n_objects, 1);
		ck_assert_int_eq(cfg_store_put(s, r[i].objects[0]), 0);
	}
	ck_assert_int_eq(cfg_store_commit(s), n);
	snap = cfg_store_snapshot(s);
	ck_assert_uint_eq(snap->n_objects[CFG_K8S_SERVICE], (size_t)n);
	cfg_snapshot_unref(snap);
	ck_assert_ptr_nonnull(cfg_store_get(s, CFG_K8S_SERVICE, "ns2", "s1234"));
	/* a relist that shows the same objects changes nothing; deletes of half do */
	ck_assert_int_eq(cfg_store_begin(s), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(cfg_store_put(s, r[i].objects[0]), 0);
	for (i = 0; i < n; i += 2) {
		char name[32], ns[16];
		snprintf(name, sizeof(name), "s%d", i);
		snprintf(ns, sizeof(ns), "ns%d", i % 7);
		ck_assert_int_eq(cfg_store_delete(s, CFG_K8S_SERVICE, ns, name), 0);
	}
	ck_assert_int_eq(cfg_store_commit(s), n / 2);
	ck_assert_ptr_null(cfg_store_get(s, CFG_K8S_SERVICE, "ns2", "s1234"));
	ck_assert_ptr_nonnull(cfg_store_get(s, CFG_K8S_SERVICE, "ns1", "s1233"));
	for (i = 0; i < n; i++)
		cfg_parse_result_cleanup(&r[i]);
	free(r);
	cfg_store_free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_batch");
	TCase *tc = tcase_create("batch");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, batch_matches_single_writes);
	tcase_add_test(tc, batch_is_invisible_until_commit);
	tcase_add_test(tc, large_relist_in_one_batch);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
