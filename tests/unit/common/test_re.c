/*
 * test_re.c - common/re.h: RE2 syntax and semantics (full vs partial
 * match), Envoy's program-size limit, error texts, and replacement with
 * RE2::GlobalReplace's rules (groups, empty matches, UTF-8, buffer cap).
 */
#include "common/re.h"

#include <check.h>
#include <errno.h>
#include <string.h>

static struct mesh_re *compile(const char *p)
{
	struct mesh_re *re = NULL;
	char err[256] = "";
	int rc = mesh_re_new(p, strlen(p), 0, &re, err, sizeof(err));

	ck_assert_msg(rc == 0, "%s: %s", p, err);
	return re;
}

START_TEST(re_full_and_partial)
{
	struct mesh_re *re = compile("/api/v[0-9]+/.*");

	ck_assert(mesh_re_full_match(re, "/api/v1/users", 13));
	ck_assert(!mesh_re_full_match(re, "x/api/v1/users", 14));
	ck_assert(mesh_re_partial_match(re, "x/api/v1/users", 14));
	/* the length bounds the subject: no NUL needed, nothing past it read */
	ck_assert(!mesh_re_full_match(re, "/api/vX", 7));
	ck_assert(mesh_re_full_match(re, "/api/v2/zzzz", 8));
	ck_assert_str_eq(mesh_re_pattern(re), "/api/v[0-9]+/.*");
	ck_assert_int_eq(mesh_re_groups(re), 0);
	mesh_re_free(re);
	mesh_re_free(NULL);
}
END_TEST

/* RE2, not POSIX: Perl classes and non-greedy work, backreferences don't. */
START_TEST(re_syntax_is_re2)
{
	struct mesh_re *re = compile("\\d+?-\\w+");
	char err[256];
	int rc;

	ck_assert(mesh_re_full_match(re, "12-ab_c", 7));
	mesh_re_free(re);
	re = NULL;
	rc = mesh_re_new("(a)\\1", 5, 0, &re, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(re);
	ck_assert_msg(strstr(err, "(a)\\1") && strstr(err, "escape"), "%s", err);
	rc = mesh_re_new("a(b", 3, 0, &re, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "missing )"), "%s", err);
}
END_TEST

/* Envoy's error-level threshold: 100 by default, configurable. */
START_TEST(re_program_size)
{
	struct mesh_re *re = NULL;
	char err[512];
	const char *big = "(abc|def|ghi|jkl)[a-z]{20,40}(x|y|z){3,9}";
	int rc = mesh_re_new(big, strlen(big), 0, &re, err, sizeof(err));

	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "RE2 program size of") && strstr(err, "> max program size of 100"), "%s", err);
	rc = mesh_re_new(big, strlen(big), 100000, &re, err, sizeof(err));
	ck_assert_int_eq(rc, 0);
	ck_assert_int_gt(mesh_re_program_size(re), 100);
	mesh_re_free(re);
}
END_TEST

START_TEST(re_replace_global)
{
	struct mesh_re *re = compile("/v([0-9]+)/");
	char out[64];
	size_t n = 0;
	int rc;

	rc = mesh_re_replace(re, "/v1/a/v22/b", 11, "/version\\1/", true, out, sizeof(out), &n);
	ck_assert_int_eq(rc, 2);
	ck_assert_str_eq(out, "/version1/a/version22/b");
	ck_assert_uint_eq(n, strlen(out));
	rc = mesh_re_replace(re, "/v1/a/v22/b", 11, "/version\\1/", false, out, sizeof(out), &n);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(out, "/version1/a/v22/b");
	/* no match: the input unchanged */
	rc = mesh_re_replace(re, "/x/", 3, "y", true, out, sizeof(out), &n);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "/x/");
	/* \0 is the whole match, \\ a backslash */
	rc = mesh_re_replace(re, "/v3/", 4, "[\\0\\\\]", true, out, sizeof(out), &n);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(out, "[/v3/\\]");
	mesh_re_free(re);
}
END_TEST

/* Envoy's documented example: ^/service/([^/]+)(/.*)$ -> \2/instance/\1 */
START_TEST(re_replace_envoy_example)
{
	struct mesh_re *re = compile("^/service/([^/]+)(/.*)$");
	char out[64];
	int rc = mesh_re_replace(re, "/service/foo/v1/api", 19, "\\2/instance/\\1", true, out, sizeof(out), NULL);

	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(out, "/v1/api/instance/foo");
	mesh_re_free(re);
}
END_TEST

/* RE2::GlobalReplace("abc", "x*", "-") == "-a-b-c-"; empty matches step
 * over whole UTF-8 characters. */
START_TEST(re_replace_empty_matches)
{
	struct mesh_re *re = compile("x*");
	char out[64];
	int rc = mesh_re_replace(re, "abc", 3, "-", true, out, sizeof(out), NULL);

	ck_assert_int_eq(rc, 4);
	ck_assert_str_eq(out, "-a-b-c-");
	rc = mesh_re_replace(re, "\xc3\xa9", 2, "-", true, out, sizeof(out), NULL);
	ck_assert_int_eq(rc, 2);
	ck_assert_str_eq(out, "-\xc3\xa9-");
	mesh_re_free(re);
}
END_TEST

START_TEST(re_replace_cap)
{
	struct mesh_re *re = compile("a");
	char out[4];
	size_t n;
	int rc = mesh_re_replace(re, "aaaa", 4, "bb", true, out, sizeof(out), &n);

	ck_assert_int_eq(rc, -ENOSPC);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out, "bbb");
	mesh_re_free(re);
}
END_TEST

START_TEST(re_check_rewrite)
{
	struct mesh_re *re = compile("(a)(b)");
	char err[256];

	ck_assert_int_eq(mesh_re_check_rewrite(re, "\\2\\1\\0\\\\", err, sizeof(err)), 0);
	ck_assert_int_eq(mesh_re_check_rewrite(re, "\\3", err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "group 3"), "%s", err);
	ck_assert_int_eq(mesh_re_check_rewrite(re, "\\x", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(mesh_re_check_rewrite(re, "tail\\", err, sizeof(err)), -EINVAL);
	mesh_re_free(re);
}
END_TEST

/* Linear time: the classic catastrophic pattern for backtracking engines
 * completes (this would take ages with a backtracker; RE2 does it in
 * microseconds - the test asserts the answer, not the time). */
START_TEST(re_no_backtracking_blowup)
{
	struct mesh_re *re = NULL;
	char err[256], s[64];
	int rc = mesh_re_new("(a+)+$", 6, 0, &re, err, sizeof(err));

	ck_assert_int_eq(rc, 0);
	memset(s, 'a', sizeof(s));
	s[sizeof(s) - 1] = 'b';
	ck_assert(!mesh_re_full_match(re, s, sizeof(s)));
	ck_assert(mesh_re_partial_match(re, s, sizeof(s) - 1));
	mesh_re_free(re);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("re");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, re_full_and_partial);
	tcase_add_test(tc, re_syntax_is_re2);
	tcase_add_test(tc, re_program_size);
	tcase_add_test(tc, re_replace_global);
	tcase_add_test(tc, re_replace_envoy_example);
	tcase_add_test(tc, re_replace_empty_matches);
	tcase_add_test(tc, re_replace_cap);
	tcase_add_test(tc, re_check_rewrite);
	tcase_add_test(tc, re_no_backtracking_blowup);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
