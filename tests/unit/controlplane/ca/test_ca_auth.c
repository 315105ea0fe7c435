/*
 * test_ca_auth.c - caller authentication: the token file (lookup,
 * comments, reload on change, malformed lines named by number), the file
 * failing closed (issue 16: a deleted, unreadable or malformed file
 * authorises no one, a token listed twice rejects the file), the
 * refuse-all authenticator and bearer parsing.
 */
#include "controlplane/ca/ca_auth.h"

#include "common/err.h"
#include "common/log.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char path[256];

static void write_file(const char *text)
{
	char tmp[300];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static void setup(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/meshd-tokens-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void teardown(void)
{
	unlink(path);
}

START_TEST(test_token_file_lookup_and_reload)
{
	struct ca_authenticator *a = NULL;
	struct ca_identity id;
	char err[256], msg[256];

	write_file("# tokens for the mesh\n"
		   "\n"
		   "tok-web   default web   # the web app\n"
		   "tok-db\tdata\tpostgres\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-web", &id, msg, sizeof(msg)), 0);
	ck_assert_str_eq(id.ns, "default");
	ck_assert_str_eq(id.sa, "web");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-db", &id, msg, sizeof(msg)), 0);
	ck_assert_str_eq(id.ns, "data");
	ck_assert_str_eq(id.sa, "postgres");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-we", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_ptr_nonnull(strstr(msg, "unknown bearer token"));
	ck_assert_ptr_null(strstr(msg, "tok-we"));
	ck_assert_int_eq(ca_auth_authenticate(a, "", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_int_eq(ca_auth_authenticate(a, "# the", &id, msg, sizeof(msg)), -EACCES);

	/* rotate: the old token stops working, the new one works */
	write_file("tok-web2 default web\n");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-web", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-web2", &id, msg, sizeof(msg)), 0);
	ca_auth_free(a);
}
END_TEST

/* Revocation must revoke: every way of breaking the file leaves no token
 * valid, and fixing it brings the new table (not the old one) back. */
START_TEST(test_token_file_fails_closed)
{
	struct ca_authenticator *a = NULL;
	struct ca_identity id;
	char err[256], msg[256];

	write_file("tok-a default a\ntok-b default b\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-a", &id, msg, sizeof(msg)), 0);

	/* one malformed line: the whole file rejected, last good NOT kept */
	write_file("tok-a default a\ntok-c default\n");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-a", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), -EACCES);

	/* fixed: the new table applies */
	write_file("tok-b default b\n");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-a", &id, msg, sizeof(msg)), -EACCES);

	/* deleted: no one */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), -EACCES);
	write_file("tok-b default b\n");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), 0);

	/* unreadable (not checked as root, who reads anything) */
	if (geteuid() != 0) {
		ck_assert_int_eq(chmod(path, 0), 0);
		ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), -EACCES);
		ck_assert_int_eq(chmod(path, 0600), 0);
		ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), 0);
	}

	/* a token listed twice for two identities: rejected, no one */
	write_file("tok-b default b\ntok-d default d\ntok-b other evil\n");
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-b", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-d", &id, msg, sizeof(msg)), -EACCES);
	ca_auth_free(a);
}
END_TEST

START_TEST(test_token_file_errors)
{
	struct ca_authenticator *a = NULL;
	char err[256];

	write_file("ok default web\nbad only-two\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), -MESH_EPARSE);
	ck_assert_ptr_null(a);
	ck_assert_ptr_nonnull(strstr(err, ":2:"));
	write_file("t default web extra\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), -MESH_EPARSE);
	write_file("t Default web\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), -MESH_ESEMANTIC);
	write_file("t ns sa/x\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), -MESH_ESEMANTIC);
	write_file("dup-tok-q ns a\nt2 ns b\ndup-tok-q ns a\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), -MESH_ESEMANTIC);
	ck_assert_ptr_nonnull(strstr(err, "listed twice"));
	ck_assert_ptr_null(strstr(err, "dup-tok-q"));
	ck_assert_int_eq(ca_auth_file_new("/nonexistent/tokens", &a, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tokens"));
}
END_TEST

/* A FIFO in the token file's place (at start, or swapped in later) is
 * refused at once: no open() waiting for a writer (meshd hung at start),
 * no one authorised. */
START_TEST(test_token_file_fifo_refused)
{
	struct ca_authenticator *a = NULL;
	struct ca_identity id;
	char err[256], msg[256], fifo[300];

	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(ca_auth_file_new(fifo, &a, err, sizeof(err)), -MESH_ENOTREG);
	ck_assert_ptr_null(a);
	ck_assert_msg(strstr(err, "not a regular file"), "%s", err);

	write_file("tok-a default a\n");
	ck_assert_int_eq(ca_auth_file_new(path, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-a", &id, msg, sizeof(msg)), 0);
	ck_assert_int_eq(rename(fifo, path), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "tok-a", &id, msg, sizeof(msg)), -EACCES);
	ca_auth_free(a);
}
END_TEST

START_TEST(test_none_and_bearer)
{
	struct ca_authenticator *a = NULL;
	struct ca_identity id;
	char msg[256], tok[32];
	static const char v1[] = "Bearer abc.def";
	static const char v2[] = "bearer   xyz  ";
	static const char v3[] = "Basic dXNlcg==";
	static const char v4[] = "Bearer ";

	ck_assert_int_eq(ca_auth_none_new("start meshd with --ca-token-file", &a), 0);
	ck_assert_int_eq(ca_auth_authenticate(a, "anything", &id, msg, sizeof(msg)), -EACCES);
	ck_assert_str_eq(msg, "start meshd with --ca-token-file");
	ca_auth_free(a);
	ca_auth_free(NULL);

	ck_assert_int_eq(ca_auth_bearer(v1, strlen(v1), tok, sizeof(tok)), 0);
	ck_assert_str_eq(tok, "abc.def");
	ck_assert_int_eq(ca_auth_bearer(v2, strlen(v2), tok, sizeof(tok)), 0);
	ck_assert_str_eq(tok, "xyz");
	ck_assert_int_eq(ca_auth_bearer(v3, strlen(v3), tok, sizeof(tok)), -ENOENT);
	ck_assert_int_eq(ca_auth_bearer(v4, strlen(v4), tok, sizeof(tok)), -ENOENT);
	ck_assert_int_eq(ca_auth_bearer(v1, strlen(v1), tok, 4), -MESH_ETOOBIG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ca_auth");
	TCase *tc = tcase_create("ca_auth");
	SRunner *sr;
	int failed;

	mesh_log_setup("error", "text");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_token_file_lookup_and_reload);
	tcase_add_test(tc, test_token_file_errors);
	tcase_add_test(tc, test_token_file_fifo_refused);
	tcase_add_test(tc, test_token_file_fails_closed);
	tcase_add_test(tc, test_none_and_bearer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
