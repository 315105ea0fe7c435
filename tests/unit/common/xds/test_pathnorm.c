/*
 * test_pathnorm.c - common/xds/pathnorm.h: the HCM's path normalization
 * per Istio mode (NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES),
 * what makes a request a 400, and the query kept as sent.
 */
#include "common/xds/pathnorm.h"

#include <check.h>
#include <errno.h>
#include <string.h>

/* Normalize in under mode; returns the result (or "400" / "=" unchanged). */
static const char *norm(const char *mode, const char *in)
{
	static char out[PATHNORM_MAX];
	struct pathnorm_opts o;
	size_t n;
	int rc;

	ck_assert_int_eq(pathnorm_mode(mode, &o), 0);
	rc = pathnorm_apply(&o, in, strlen(in), out, sizeof(out), &n);
	if (rc < 0)
		return "400";
	if (rc == 0)
		return "=";
	ck_assert_uint_eq(n, strlen(out));
	return out;
}

START_TEST(base_dot_segments)
{
	ck_assert_str_eq(norm("BASE", "/a/b/../c"), "/a/c");
	ck_assert_str_eq(norm("BASE", "/a/./b/."), "/a/b/");
	ck_assert_str_eq(norm("BASE", "/a/b/.."), "/a/");
	ck_assert_str_eq(norm("BASE", "/../../admin"), "/admin");
	ck_assert_str_eq(norm("BASE", "/.."), "/");
	ck_assert_str_eq(norm("BASE", "/a/%2e%2E/admin"), "/admin");
	ck_assert_str_eq(norm("BASE", "/a/..?x=/../y"), "/?x=/../y");
	ck_assert_str_eq(norm("BASE", "/a/b"), "=");
	ck_assert_str_eq(norm("DEFAULT", "/x/../y"), "/y");
	/* ".." only as a whole segment */
	ck_assert_str_eq(norm("BASE", "/a..b/c"), "=");
}
END_TEST

START_TEST(base_escapes_and_backslash)
{
	ck_assert_str_eq(norm("BASE", "/%61dmin"), "/admin");
	ck_assert_str_eq(norm("BASE", "/a%2fb"), "/a%2Fb");      /* kept escaped, upper-cased */
	ck_assert_str_eq(norm("BASE", "/a%3Fb"), "=");
	ck_assert_str_eq(norm("BASE", "/a\\..\\admin"), "/admin");
	ck_assert_str_eq(norm("BASE", "//a//b"), "=");            /* BASE does not merge */
	ck_assert_str_eq(norm("BASE", "/%zz/%4"), "=");           /* not escapes: as sent */
	ck_assert_str_eq(norm("BASE", "/%01x"), "400");
	ck_assert_str_eq(norm("BASE", "*"), "400");
}
END_TEST

START_TEST(merge_and_decode)
{
	ck_assert_str_eq(norm("MERGE_SLASHES", "//a///b/"), "/a/b/");
	ck_assert_str_eq(norm("MERGE_SLASHES", "/a/%2F/b"), "=");      /* escaped slashes kept */
	ck_assert_str_eq(norm("DECODE_AND_MERGE_SLASHES", "/a%2F%2fb"), "/a/b");
	ck_assert_str_eq(norm("DECODE_AND_MERGE_SLASHES", "/x/..%2Fadmin"), "/admin");
	ck_assert_str_eq(norm("DECODE_AND_MERGE_SLASHES", "/a%5Cb"), "/a/b");
}
END_TEST

START_TEST(none_and_reject)
{
	struct pathnorm_opts o;
	char out[64];
	size_t n;

	ck_assert_str_eq(norm("NONE", "/a/../b//c"), "=");
	ck_assert_int_eq(pathnorm_mode("bogus", &o), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.normalize = 1;
	o.slashes = PATHNORM_SLASHES_REJECT;
	ck_assert_int_eq(pathnorm_apply(&o, "/a%2fb", 6, out, sizeof(out), &n), -EINVAL);
	ck_assert_int_eq(pathnorm_apply(&o, "/a/b", 4, out, sizeof(out), &n), 0);
	/* a target that does not fit */
	ck_assert_int_eq(pathnorm_apply(&o, "/a/../b", 7, out, 4, &n), -MESH_ETOOBIG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pathnorm");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, base_dot_segments);
	tcase_add_test(tc, base_escapes_and_backslash);
	tcase_add_test(tc, merge_and_decode);
	tcase_add_test(tc, none_and_reject);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
