/*
 * test_host.c - the one wildcard host matcher (config.h cfg_host_covers)
 * that decode.c (Istio's symmetric host.Name.Matches), store.c
 * (DestinationRule references) and model.c (VirtualService and
 * DestinationRule lookups, by specificity) and the Sidecar's egress hosts
 * share.  Istio's rule: pilot/pkg/model/host (Name.SubsetOf, Name.Matches).
 */
#include "controlplane/config/config.h"

#include <check.h>

#include "testutil.h"

/* Exact names match, case-insensitively, with the highest score. */
START_TEST(host_exact)
{
	size_t score = 0;

	ck_assert(cfg_host_covers("a.example.com", "a.example.com", &score));
	ck_assert_uint_eq(score, 100000);
	ck_assert(cfg_host_covers("A.Example.com", "a.example.COM", NULL));
	ck_assert(!cfg_host_covers("a.example.com", "b.example.com", &score));
	ck_assert_uint_eq(score, 0);
	ck_assert(!cfg_host_covers("example.com", "a.example.com", NULL));
}
END_TEST

/* "*.suffix" covers longer names ending in ".suffix" (any depth), and
 * wildcard names inside it; not the bare suffix, not a longer wildcard. */
START_TEST(host_suffix_wildcard)
{
	size_t s1 = 0, s2 = 0;

	ck_assert(cfg_host_covers("*.example.com", "a.example.com", &s1));
	ck_assert(cfg_host_covers("*.example.com", "a.b.example.com", NULL));
	ck_assert(cfg_host_covers("*.example.com", "*.b.example.com", NULL));
	ck_assert(!cfg_host_covers("*.example.com", "example.com", NULL));
	ck_assert(!cfg_host_covers("*.example.com", "aexample.com", NULL));
	ck_assert(!cfg_host_covers("*.b.example.com", "*.example.com", NULL));
	/* a longer suffix is more specific; "*" the least */
	ck_assert(cfg_host_covers("*.b.example.com", "a.b.example.com", &s2));
	ck_assert(cfg_host_covers("*.example.com", "a.b.example.com", &s1));
	ck_assert_uint_gt(s2, s1);
	ck_assert(cfg_host_covers("*", "a.b.example.com", &s2));
	ck_assert_uint_eq(s2, 1);
	ck_assert_uint_lt(s2, s1);
	ck_assert(cfg_host_covers("*", "*.example.com", NULL));
}
END_TEST

static Suite *host_suite(void)
{
	Suite *s = suite_create("host");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, host_exact);
	tcase_add_test(tc, host_suffix_wildcard);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(host_suite()) ? 1 : 0;
}
