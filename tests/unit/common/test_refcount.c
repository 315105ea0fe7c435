/*
 * test_refcount.c - common/refcount.h: unref reports the last drop exactly
 * once, also when several threads take and drop references at once.
 */
#include "common/refcount.h"

#include <check.h>
#include <pthread.h>

#define THREADS 4
#define ROUNDS 100000

START_TEST(refcount_last)
{
	struct mesh_refcount r;
	struct mesh_refcount pinned = MESH_REFCOUNT_INIT(3);

	mesh_refcount_init(&r, 1);
	mesh_refcount_ref(&r);
	ck_assert_uint_eq(mesh_refcount_get(&r), 2);
	ck_assert(!mesh_refcount_unref(&r));
	ck_assert(mesh_refcount_unref(&r));
	ck_assert_uint_eq(mesh_refcount_get(&pinned), 3);
}
END_TEST

struct shared {
	struct mesh_refcount refs;
	atomic_int lasts;
};

static void *churn(void *arg)
{
	struct shared *s = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		mesh_refcount_ref(&s->refs);
		if (mesh_refcount_unref(&s->refs))
			atomic_fetch_add(&s->lasts, 1);
	}
	/* each thread came in with one reference of its own */
	if (mesh_refcount_unref(&s->refs))
		atomic_fetch_add(&s->lasts, 1);
	return NULL;
}

START_TEST(refcount_threads)
{
	struct shared s;
	pthread_t t[THREADS];
	int i;

	mesh_refcount_init(&s.refs, THREADS);
	atomic_init(&s.lasts, 0);
	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn, &s), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&s.lasts), 1);
	ck_assert_uint_eq(mesh_refcount_get(&s.refs), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("refcount");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, refcount_last);
	tcase_add_test(tc, refcount_threads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
