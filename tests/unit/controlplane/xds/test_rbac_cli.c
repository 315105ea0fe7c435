/*
 * test_rbac_cli.c - `meshctl authz check` end to end: the answer line, the
 * JSON form, exit status (0 allow, 1 deny, 2 usage or configuration error)
 * and the handling of rejected objects.  Runs the meshctl binary of the
 * same build (BUILD/bin/meshctl, found from this test's own path) on
 * tests/data/authz/ (run from the repository root).
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define OUT_MAX 65536
#define CFG "tests/data/authz/config"
#define ECHO "-f " CFG " --namespace foo --labels app=echo,version=v1 "
#define CLIENT "--principal cluster.local/ns/foo/sa/client "

static char out[OUT_MAX];

/* meshctl authz ARGS; stdout into out (stderr too when both); exit status */
static int run(const char *args, int both)
{
	return testutil_meshctl(out, OUT_MAX, "authz", args, both ? "2>&1" : "2>/dev/null");
}

START_TEST(test_allow_by_principal)
{
	ck_assert_int_eq(run("check " ECHO CLIENT "--path /echo.Echo/Say", 0), 0);
	ck_assert_str_eq(out, "ALLOW (policy ns[foo]-policy[allow-echo]-rule[0])\n");
}
END_TEST

START_TEST(test_deny_no_allow_matched)
{
	ck_assert_int_eq(run("check " ECHO "--no-peer --path /echo.Echo/Say", 0), 1);
	ck_assert_str_eq(out, "DENY (no ALLOW policy matched)\n");
	/* second rule: loopback source on port 9090 */
	ck_assert_int_eq(run("check " ECHO "--source-ip 127.0.0.7 --port 9090 --path /any.Any/Thing", 0), 0);
	ck_assert_str_eq(out, "ALLOW (policy ns[foo]-policy[allow-echo]-rule[1])\n");
	ck_assert_int_eq(run("check " ECHO "--source-ip 192.0.2.7 --port 9090 --path /any.Any/Thing", 0), 1);
}
END_TEST

START_TEST(test_root_deny_and_header)
{
	ck_assert_int_eq(run("check " ECHO CLIENT "--path /echo.Admin/Drain", 0), 1);
	ck_assert_str_eq(out, "DENY (policy ns[istio-system]-policy[deny-admin]-rule[0])\n");
	ck_assert_int_eq(run("check " ECHO CLIENT "--path /echo.Admin/Drain -H x-admin=yes", 0), 0);
	ck_assert_str_eq(out, "ALLOW (policy ns[foo]-policy[allow-echo]-rule[0])\n");
}
END_TEST

/* another workload: only the root-namespace policy applies */
START_TEST(test_no_policy_applies)
{
	ck_assert_int_eq(run("check -f " CFG " --namespace foo --labels app=other --path /x.X/Y", 0), 0);
	ck_assert_str_eq(out, "ALLOW (no policy applies)\n");
}
END_TEST

START_TEST(test_json)
{
	ck_assert_int_eq(run("check " ECHO CLIENT "--path /echo.Echo/Say --json", 0), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"decision\":\"ALLOW\""));
	ck_assert_ptr_nonnull(strstr(out, "\"policy\":\"ns[foo]-policy[allow-echo]-rule[0]\""));
	ck_assert_ptr_nonnull(strstr(out, "\"reason\":null"));
	ck_assert_ptr_nonnull(strstr(out, "\"audit_policy\":\"ns[foo]-policy[audit-echo]-rule[0]\""));
	ck_assert_ptr_nonnull(strstr(out, "{\"namespace\":\"istio-system\",\"name\":\"deny-admin\"}"));
	ck_assert_ptr_null(strstr(out, "\"allow\":")); /* filters only with -v */
	ck_assert_int_eq(run("check " ECHO "--path /echo.Echo/Say --json -v", 0), 1);
	ck_assert_ptr_nonnull(strstr(out, "\"reason\":\"no ALLOW policy matched\""));
	ck_assert_ptr_nonnull(strstr(out, "\"allow\":{\"rules\":"));
	ck_assert_ptr_nonnull(strstr(out, "\"deny\":{\"rules\":{\"action\":\"DENY\""));
	ck_assert_ptr_null(strstr(out, "stringMatch"));
}
END_TEST

START_TEST(test_verbose_text)
{
	ck_assert_int_eq(run("check " ECHO CLIENT "--path /echo.Echo/Say -v", 0), 0);
	ck_assert_str_eq(out, "workload: namespace foo, labels app=echo,version=v1\n"
			      "policies: istio-system/deny-admin foo/allow-echo foo/audit-echo\n"
			      "audited by policy ns[foo]-policy[audit-echo]-rule[0]\n"
			      "ALLOW (policy ns[foo]-policy[allow-echo]-rule[0])\n");
}
END_TEST

START_TEST(test_rejected_config)
{
	ck_assert_int_eq(run("check -f tests/data/authz/rejected --namespace foo --path /a.A/B", 1), 2);
	ck_assert_ptr_nonnull(strstr(out, "`provider.name` must not be empty"));
	ck_assert_ptr_nonnull(strstr(out, "--ignore-rejected"));
	ck_assert_int_eq(run("check -f tests/data/authz/rejected --namespace foo --path /a.A/B --ignore-rejected", 0),
			 0);
	ck_assert_str_eq(out, "ALLOW (policy ns[foo]-policy[allow-all]-rule[0])\n");
	/* a single file is read the same way */
	ck_assert_int_eq(run("check -f " CFG "/policies.yaml --namespace foo --labels app=echo " CLIENT
			     "--path /echo.Echo/Say", 0), 0);
}
END_TEST

/* what the RBAC compiler notes is printed beside the answer, as meshd logs
 * it: a DENY condition the filter cannot match widens the rule */
START_TEST(test_compiler_notes)
{
	ck_assert_int_eq(run("check -f tests/data/authz/unmatchable --namespace demo --path /x", 1), 1);
	ck_assert_ptr_nonnull(strstr(out, "meshctl authz: warning: rbac: demo/deny-grpc rule 0: condition "
					  "request.headers[grpc-foo] cannot be matched by the RBAC filter"));
	ck_assert_ptr_nonnull(strstr(out, "DENY (policy ns[demo]-policy[deny-grpc]-rule[0])\n"));
}
END_TEST

START_TEST(test_usage)
{
	ck_assert_int_eq(run("", 1), 2);
	ck_assert_int_eq(run("frob", 1), 2);
	ck_assert_int_eq(run("check --namespace foo --path /a", 1), 2);
	ck_assert_ptr_nonnull(strstr(out, "required"));
	ck_assert_int_eq(run("check " ECHO "--path a", 1), 2);
	ck_assert_int_eq(run("check " ECHO "--path /a --port 70000", 1), 2);
	ck_assert_int_eq(run("check " ECHO "--path /a --source-ip 1.2.3", 1), 2);
	ck_assert_int_eq(run("check " ECHO "--path /a " CLIENT "--no-peer", 1), 2);
	ck_assert_int_eq(run("check " ECHO "--path /a -H novalue", 1), 2);
	ck_assert_int_eq(run("check -f tests/data/authz/none --namespace foo --path /a", 1), 2);
	ck_assert_int_eq(run("check --help", 0), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: meshctl authz check"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("meshctl authz");
	TCase *t = tcase_create("check");

	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_allow_by_principal);
	tcase_add_test(t, test_deny_no_allow_matched);
	tcase_add_test(t, test_root_deny_and_header);
	tcase_add_test(t, test_no_policy_applies);
	tcase_add_test(t, test_json);
	tcase_add_test(t, test_verbose_text);
	tcase_add_test(t, test_rejected_config);
	tcase_add_test(t, test_compiler_notes);
	tcase_add_test(t, test_usage);
	suite_add_tcase(s, t);
	return testutil_run(s) ? 1 : 0;
}
