/*
 * test_meshctl.c - `meshctl validate` end to end: output lines, summary and
 * exit status (0 valid, 1 rejected, 2 usage); `meshctl certs
 * --print-bootstrap` prints and exits.  Runs the meshctl binary of
 * the same build (BUILD/bin/meshctl, found from this test's own path) on
 * the fixtures in tests/data/config/ (run from the repository root).
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

/* run meshctl with args; output (stdout+stderr) into out; returns exit status */
static int run(const char *args, char *out)
{
	return testutil_meshctl(out, OUT_MAX, "", args, "2>&1");
}

static char out[OUT_MAX];

static int run_dir(const char *dir)
{
	char args[256];

	snprintf(args, sizeof(args), "validate -f %s", dir);
	return run(args, out);
}

START_TEST(test_valid_dir)
{
	ck_assert_int_eq(run("validate -f tests/data/config/valid", out), 0);
	ck_assert_msg(strstr(out, "16 objects valid, 0 rejected, 6 warnings (1 document of other kinds skipped) in 11 "
			      "files\n"), "%s", out);
	/* what proxyless gRPC clients do not get, once per object */
	ck_assert_msg(strstr(out, "dr-subsets.yaml:2: DestinationRule default/reviews: spec: warning: not applied to "
			      "proxyless gRPC clients: loadBalancer.simple RANDOM (served as ROUND_ROBIN), "
			      "connectionPool.tcp.maxConnections"), "%s", out);
	/* two mesh VirtualServices for one host: the other one is not applied */
	ck_assert_msg(strstr(out, "VirtualService default/reviews-by-user: spec.hosts: warning: host "
			      "reviews.default.svc.cluster.local is routed by VirtualService default/reviews"), "%s", out);
	/* the warning prints its text (Istio's, for a DENY rule with HTTP fields only) */
	ck_assert_msg(strstr(out, "ap-allow-deny.yaml:38:5: AuthorizationPolicy foo/deny-delete: spec.rules[0]: warning: "
			      "configured AuthorizationPolicy will deny all traffic to TCP ports"), "%s", out);
}
END_TEST

START_TEST(test_rejected_file)
{
	ck_assert_int_eq(run("validate -f tests/data/config/invalid/vs-weights.yaml", out), 1);
	ck_assert_str_eq(out, "tests/data/config/invalid/vs-weights.yaml:10:5: VirtualService default/reviews: "
			      "spec.http[0].route: total destination weight = 0 (weights are relative: give at least "
			      "one destination a positive weight)\n"
			      "0 objects valid, 1 rejected in 1 file\n");
}
END_TEST

/* -f - reads standard input, as kubectl and istioctl do; findings name it "stdin" */
START_TEST(test_stdin)
{
	ck_assert_int_eq(run("validate -f - < tests/data/config/invalid/vs-weights.yaml", out), 1);
	ck_assert_str_eq(out, "stdin:10:5: VirtualService default/reviews: "
			      "spec.http[0].route: total destination weight = 0 (weights are relative: give at least "
			      "one destination a positive weight)\n"
			      "0 objects valid, 1 rejected in 1 file\n");
	ck_assert_int_eq(run("validate -f tests/data/config/invalid/multi-one-bad.yaml -f - "
			     "< tests/data/config/invalid/malformed.yaml", out), 1);
	ck_assert_msg(strstr(out, "stdin:13:9: malformed YAML"), "%s", out);
	ck_assert_msg(strstr(out, "4 objects valid, 2 rejected in 2 files\n"), "%s", out);
	ck_assert_int_eq(run("validate -f - < /dev/null", out), 1);
	ck_assert_msg(strstr(out, "no configuration found"), "%s", out);
}
END_TEST

START_TEST(test_mixed)
{
	ck_assert_int_eq(run("validate -f tests/data/config/invalid/multi-one-bad.yaml "
			     "-f tests/data/config/invalid/malformed.yaml", out), 1);
	ck_assert_msg(strstr(out, "malformed.yaml:13:9: malformed YAML"), "%s", out);
	ck_assert_msg(strstr(out, "4 objects valid, 2 rejected in 2 files\n"), "%s", out);
}
END_TEST

/* nothing to check is not a success; an unknown kind in an Istio group is an
 * error; a kind meshd does not implement is a warning with its name */
START_TEST(test_empty_and_kinds)
{
	char dir[] = "/tmp/meshctl-empty-XXXXXX", path[128];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(run_dir(dir), 1);
	ck_assert_msg(strstr(out, "no configuration found"), "%s", out);
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ef, namespace: x}\n"
	      "spec: {}\n", f);
	fclose(f);
	ck_assert_int_eq(run_dir(dir), 0);
	ck_assert_msg(strstr(out, "warning: EnvoyFilter x/ef: not implemented by meshd"), "%s", out);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("apiVersion: networking.istio.io/v1\nkind: VirtualSerivce\nmetadata: {name: vs}\nspec: {}\n", f);
	fclose(f);
	ck_assert_int_eq(run_dir(dir), 1);
	ck_assert_msg(strstr(out, "unknown kind \"VirtualSerivce\" in Istio API group networking.istio.io (did you "
			      "mean VirtualService?)"), "%s", out);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_usage)
{
	ck_assert_int_eq(run("validate", out), 2);
	ck_assert_msg(strstr(out, "-f PATH is required"), "%s", out);
	ck_assert_int_eq(run("validate -f /nonexistent/meshd", out), 2);
	ck_assert_int_eq(run("frobnicate", out), 2);
	ck_assert_int_eq(run("--help", out), 0);
	ck_assert_msg(strstr(out, "validate"), "%s", out);
	ck_assert_int_eq(run("validate --help", out), 0);
	ck_assert_msg(strstr(out, "usage: meshctl validate -f PATH"), "%s", out);
}
END_TEST

START_TEST(test_certs_print_bootstrap)
{
	/* only --dir is needed; it prints the file_watcher config and exits */
	ck_assert_int_eq(run("certs --print-bootstrap --dir /var/run/w", out), 0);
	ck_assert_msg(strstr(out, "\"plugin_name\": \"file_watcher\"") &&
		      strstr(out, "\"certificate_file\": \"/var/run/w/cert-chain.pem\"") &&
		      strstr(out, "\"private_key_file\": \"/var/run/w/key.pem\"") &&
		      strstr(out, "\"ca_certificate_file\": \"/var/run/w/root-cert.pem\""), "%s", out);
	/* with an agent's flags too it still exits (it used to go on as the
	 * agent, here retrying a CA nobody serves for ever) and contacts nobody */
	ck_assert_int_eq(run("certs --print-bootstrap --dir /var/run/w --ca-addr 127.0.0.1:1 --insecure-bootstrap "
			     "--token-file /nonexistent", out), 0);
	ck_assert_msg(strstr(out, "file_watcher") && !strstr(out, "retrying"), "%s", out);
	ck_assert_int_eq(run("certs --print-bootstrap", out), 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("meshctl");
	TCase *tc = tcase_create("validate");

	tcase_add_test(tc, test_valid_dir);
	tcase_add_test(tc, test_rejected_file);
	tcase_add_test(tc, test_mixed);
	tcase_add_test(tc, test_stdin);
	tcase_add_test(tc, test_empty_and_kinds);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_certs_print_bootstrap);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
