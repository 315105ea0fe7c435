/*
 * test_log.c - common/log: a stderr whose reader stalls never blocks a
 * record; records are dropped whole and counted, never torn; a stderr
 * replaced by dup2 is followed.
 */
#include "common/log.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stderr a pipe nobody reads (64 KiB): 4,000 records of ~1 KB return,
 * the rest are counted as dropped, and once the reader drains the pipe
 * what it gets is whole records only */
START_TEST(stalled_stderr_never_blocks)
{
	char *got = malloc(1 << 20), pad[1000];
	size_t n = 0, i, lines = 0;
	int p[2], saved;

	ck_assert_ptr_nonnull(got);
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	ck_assert_int_eq(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	ck_assert_int_eq(mesh_log_setup("debug", "text"), 0);
	for (i = 0; i < 4000; i++)
		log_debug("test", "record %zu %s", i, pad);
	ck_assert_uint_gt(mesh_log_dropped(), 0);
	ck_assert_int_eq(mesh_log_flush(), -EAGAIN);
	ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	for (i = 0; i < 64; i++) {
		ssize_t r;

		while ((r = read(p[0], got + n, (1 << 20) - 1 - n)) > 0)
			n += (size_t)r;
		if (mesh_log_flush() == 0)
			break;
	}
	while (n < (1 << 20) - 1) {
		ssize_t r = read(p[0], got + n, (1 << 20) - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	got[n] = '\0';
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	ck_assert_uint_gt(n, 64 * 1024);
	for (i = 0; i < n; i = (size_t)(strchr(got + i, '\n') - got) + 1) {
		const char *nl = strchr(got + i, '\n');

		ck_assert_msg(nl && (size_t)(nl - (got + i)) > sizeof(pad) &&
				      !memcmp(nl - (sizeof(pad) - 1), pad, sizeof(pad) - 1) &&
				      !memcmp(got + i, "20", 2),
			      "a torn record at byte %zu", i);
		lines++;
	}
	ck_assert_uint_lt(lines, 4000);
	ck_assert_uint_eq(lines + mesh_log_dropped(), 4000);
	free(got);
}
END_TEST

/* Read what is in the pipe now (non-blocking) into buf. */
static void drain(int fd, char *buf, size_t cap)
{
	ssize_t r;
	size_t n = 0;

	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
}

/* stderr a pipe, then fd 2 replaced by another pipe (dup2, as a test or a
 * supervisor redirecting the log does): the next record goes to the new
 * one, not to the description opened for the first */
START_TEST(follows_a_replaced_stderr)
{
	char got[4096];
	int a[2], b[2], saved = dup(STDERR_FILENO);

	ck_assert_int_eq(pipe(a), 0);
	ck_assert_int_eq(pipe(b), 0);
	ck_assert_int_eq(dup2(a[1], STDERR_FILENO), STDERR_FILENO);
	ck_assert_int_eq(mesh_log_setup("info", "text"), 0);
	log_info("test", "first record");
	ck_assert_int_eq(dup2(b[1], STDERR_FILENO), STDERR_FILENO);
	log_info("test", "second record");
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	drain(a[0], got, sizeof(got));
	ck_assert_ptr_nonnull(strstr(got, "first record"));
	ck_assert_ptr_null(strstr(got, "second record"));
	drain(b[0], got, sizeof(got));
	ck_assert_ptr_nonnull(strstr(got, "second record"));
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, stalled_stderr_never_blocks);
	tcase_add_test(tc, follows_a_replaced_stderr);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
