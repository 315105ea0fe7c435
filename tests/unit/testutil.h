/*
 * testutil.h - helpers shared by the unit tests (each test binary is built
 * from one .c with -Itests/unit, so they live here as static inline).
 *
 * testutil_meshctl() runs the meshctl binary of the same build
 * (BUILD/bin/meshctl, found from the test's own path
 * BUILD/tests/<dir>/<dir>/test_x) through the shell, from the current
 * directory (the repository root).
 *
 * testutil_run() runs a suite as every test main() does.
 *
 * testutil_model() builds the service model of a YAML text the way meshd
 * does: parse, store, snapshot, model_build.
 */
#ifndef MESH_TESTUTIL_H
#define MESH_TESTUTIL_H

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TESTUTIL_CMD_MAX (PATH_MAX + 2048)

/* BUILD/bin/meshctl into path (cap bytes); fails the test when not built. */
static inline void testutil_meshctl_path(char *path, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int up;
	char *slash;

	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	for (up = 0; up < 4; up++) {
		slash = strrchr(self, '/');
		ck_assert_ptr_nonnull(slash);
		*slash = '\0';
	}
	snprintf(path, cap, "%s/bin/meshctl", self);
	ck_assert_msg(access(path, X_OK) == 0, "%s not built", path);
}

/*
 * Run "meshctl SUB ARGS REDIRECT" (redirect e.g. "2>&1" or "2>/dev/null");
 * its stdout (at most cap - 1 bytes, NUL-terminated) into out.  Returns the
 * exit status; a command that did not exit fails the test.
 */
static inline int testutil_meshctl(char *out, size_t cap, const char *sub, const char *args,
				   const char *redirect)
{
	char meshctl[PATH_MAX + 16];
	char cmd[TESTUTIL_CMD_MAX];
	FILE *p;
	size_t n;
	int st;

	testutil_meshctl_path(meshctl, sizeof(meshctl));
	snprintf(cmd, sizeof(cmd), "%s %s %s %s", meshctl, sub, args, redirect);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Run every test of s (CK_NORMAL output, CK_FORK as the environment
 * says); returns how many failed. */
static inline int testutil_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

/*
 * testutil_run_nofork() runs a table-driven suite of pure functions in this
 * one process, whatever CK_FORK says: a fork per case costs a whole
 * LeakSanitizer scan per case under ASan (minutes for a table of a thousand
 * cases), and leaks are still found, once, at exit.  A crash stops the table.
 */
static inline int testutil_run_nofork(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

/*
 * The model of yaml (parsed as file origin, for the domain "cluster.local"
 * and root namespace "istio-system"); every document must be accepted
 * (rejections are printed, then fail the test).  The caller owns it.
 */
static inline struct model *testutil_model(const char *origin, const char *yaml)
{
	struct cfg_parse_result res;
	struct cfg_store *st;
	struct cfg_snapshot *snap;
	struct model *m;
	size_t i;

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer(origin, yaml, strlen(yaml), &res), 0);
	for (i = 0; i < res.n_errors; i++) {
		char msg[512];

		cfg_error_format(&res.errors[i], msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		/* Istio's warnings (deprecated fields, ...) reject nothing */
		ck_assert_msg(res.errors[i].warning, "%s", msg);
	}
	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	ck_assert_int_ge(cfg_store_apply_origin(st, origin, &res), 0);
	cfg_parse_result_cleanup(&res);
	snap = cfg_store_snapshot(st);
	ck_assert_ptr_nonnull(snap);
	m = model_build(snap, "cluster.local", "istio-system");
	ck_assert_ptr_nonnull(m);
	cfg_snapshot_unref(snap);
	cfg_store_free(st); /* the model keeps what it needs */
	return m;
}

#endif
