/*
 * test_debounce.c - the push debounce on a synthetic clock: quiet time,
 * the cap under a steady stream, one push per window, timeouts.
 */
#include "controlplane/debounce/debounce.h"

#include <check.h>

#define MS 1000000LL

START_TEST(quiet_time_then_due_once)
{
	struct debounce d;

	debounce_init(&d, 100 * MS, 1000 * MS);
	ck_assert_int_eq(debounce_timeout_ms(&d, 0), -1);
	ck_assert(!debounce_take(&d, 5000 * MS));
	debounce_change(&d, 10 * MS);
	ck_assert_int_eq(debounce_timeout_ms(&d, 10 * MS), 100);
	ck_assert(!debounce_take(&d, 109 * MS));
	debounce_change(&d, 50 * MS); /* extends the quiet time */
	ck_assert(!debounce_take(&d, 120 * MS));
	ck_assert_int_eq(debounce_timeout_ms(&d, 120 * MS), 30);
	ck_assert(debounce_take(&d, 150 * MS));
	ck_assert(!debounce_take(&d, 151 * MS));
	ck_assert_int_eq(debounce_timeout_ms(&d, 151 * MS), -1);
}
END_TEST

START_TEST(steady_stream_is_capped)
{
	struct debounce d;
	int64_t t;
	int pushes = 0;

	debounce_init(&d, 100 * MS, 1000 * MS);
	for (t = 0; t <= 2500 * MS; t += 50 * MS) {
		debounce_change(&d, t);
		pushes += debounce_take(&d, t);
	}
	/* a change every 50ms never leaves 100ms of quiet: the cap pushes at 1s and 2s */
	ck_assert_int_eq(pushes, 2);
}
END_TEST

START_TEST(defaults_and_rounding)
{
	struct debounce d;

	debounce_init(&d, 0, 0);
	ck_assert_int_eq(d.after, 100 * MS);
	ck_assert_int_eq(d.max, 10000 * MS);
	debounce_change(&d, 0);
	ck_assert_int_eq(debounce_timeout_ms(&d, 99 * MS + 1), 1);
	ck_assert_int_eq(debounce_timeout_ms(&d, 200 * MS), 0);
	ck_assert(debounce_now() > 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("debounce");
	TCase *tc = tcase_create("debounce");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, quiet_time_then_due_once);
	tcase_add_test(tc, steady_stream_is_capped);
	tcase_add_test(tc, defaults_and_rounding);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
