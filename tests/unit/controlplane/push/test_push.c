/*
 * test_push.c - the push stage: one debounce window for every source (file
 * source and a Kubernetes-like store writer), files read only once the
 * window is quiet, the cap under a steady stream, no build when nothing
 * served changed.  Synthetic clocks: no test depends on timing.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/store.h"
#include "controlplane/file/source.h"
#include "controlplane/model/model.h"
#include "controlplane/push/push.h"

#include "testutil.h"

#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MS 1000000LL

static char dir[256];
static struct cfg_store *st;
static struct file_source *fs;
static struct push_stage *ps;

static void write_file(const char *name, const char *text)
{
	char path[512], tmp[520];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp~", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static const char *vs(const char *name, const char *host)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: %s, namespace: ns}\n"
		 "spec: {hosts: [%s], http: [{route: [{destination: {host: %s}}]}]}\n",
		 name, host, host);
	return buf;
}

/* Wait (bounded) for inotify, then report it as main.c does. */
static void files_moved(int64_t now)
{
	struct pollfd p = { .fd = file_source_fd(fs), .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, 10000), 1);
	ck_assert_int_eq(file_source_handle(fs), 1);
	push_stage_changed(ps, PUSH_CHANGE_FILES, now);
}

/* What the Kubernetes source does: apply to the store, then report. */
static void kube_applies(const char *origin, const char *yaml, int64_t now)
{
	struct cfg_parse_result res;

	memset(&res, 0, sizeof(res));
	ck_assert_int_ge(cfg_parse_buffer(origin, yaml, strlen(yaml), &res), 0);
	ck_assert_int_eq(cfg_store_apply_origin(st, origin, &res), 1);
	cfg_parse_result_cleanup(&res);
	push_stage_changed(ps, PUSH_CHANGE_STORE, now);
}

/* VirtualServices in the config snapshot the stage last published. */
static size_t published_vs(void)
{
	struct cfg_snapshot *s = push_stage_config(ps);
	size_t n;

	ck_assert_ptr_nonnull(s);
	n = s->n_objects[CFG_VIRTUAL_SERVICE];
	cfg_snapshot_unref(s);
	return n;
}

static void setup(void)
{
	struct file_source_config fc = { 0 };
	struct push_stage_config pc = { 0 };

	snprintf(dir, sizeof(dir), "/tmp/meshd-test-push-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	write_file("a.yaml", vs("a", "a.example.com"));
	fc.dir = dir;
	fc.store = st;
	ck_assert_int_eq(file_source_new(&fc, &fs), 0);
	ck_assert_int_eq(file_source_sync(fs), 1);
	pc.store = st;
	pc.files = fs;
	pc.domain = "cluster.local";
	pc.root_namespace = "istio-system";
	pc.trust_domain = "cluster.local";
	pc.debounce_after = 100 * MS;
	pc.debounce_max = 1000 * MS;
	ck_assert_int_eq(push_stage_new(&pc, &ps), 0);
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_uint_eq(push_stage_builds(ps), 1);
	ck_assert_int_eq(push_stage_timeout_ms(ps, 0), -1);
}

static void teardown(void)
{
	char cmd[300];

	push_stage_free(ps);
	file_source_free(fs);
	cfg_store_free(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(two_sources_one_window_one_build)
{
	write_file("b.yaml", vs("b", "b.example.com"));
	files_moved(1000 * MS);
	kube_applies("kube:ns/c", vs("c", "c.example.com"), 1050 * MS);
	/* quiet time runs from the latest change of either source */
	ck_assert_int_eq(push_stage_timeout_ms(ps, 1050 * MS), 100);
	ck_assert_int_eq(push_stage_tick(ps, 1100 * MS), 0);
	ck_assert_uint_eq(push_stage_builds(ps), 1);
	/* the file was not read before the window closed */
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_int_eq(push_stage_tick(ps, 1150 * MS), 1);
	ck_assert_uint_eq(push_stage_builds(ps), 2);
	ck_assert_uint_eq(published_vs(), 3);
	/* the window is closed: nothing more is due */
	ck_assert_int_eq(push_stage_timeout_ms(ps, 1150 * MS), -1);
	ck_assert_int_eq(push_stage_tick(ps, 5000 * MS), 0);
	ck_assert_uint_eq(push_stage_builds(ps), 2);
}
END_TEST

START_TEST(file_read_only_after_quiet_period)
{
	write_file("b.yaml", vs("b", "b.example.com"));
	files_moved(1000 * MS);
	ck_assert_int_eq(push_stage_timeout_ms(ps, 1000 * MS), 100);
	ck_assert_int_eq(push_stage_tick(ps, 1050 * MS), 0);
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_int_eq(push_stage_tick(ps, 1100 * MS), 1);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_uint_eq(published_vs(), 2);
}
END_TEST

START_TEST(steady_changes_capped_by_max)
{
	int64_t t = 5000 * MS;
	int i;

	/* a change every 50ms keeps the quiet period from ever ending ... */
	for (i = 0; i < 20; i++, t += 50 * MS) {
		char name[32];

		snprintf(name, sizeof(name), "v%d.yaml", i);
		write_file(name, vs(i % 2 ? "odd" : "even", "z.example.com"));
		files_moved(t);
		if (t < 6000 * MS)
			ck_assert_int_eq(push_stage_tick(ps, t), 0);
	}
	ck_assert_uint_eq(push_stage_builds(ps), 1);
	/* ... but the push runs debounce_max after the first change */
	ck_assert_int_eq(push_stage_tick(ps, 6000 * MS), 1);
	ck_assert_uint_eq(push_stage_builds(ps), 2);
}
END_TEST

START_TEST(rejected_edit_no_build_errors_refreshed)
{
	struct cfg_snapshot *s;

	write_file("a.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			     "metadata: {name: a, namespace: ns}\nspec: {hosts: []}\n");
	files_moved(1000 * MS);
	/* served objects unchanged: no build, but the error view is new */
	ck_assert_int_eq(push_stage_tick(ps, 2000 * MS), 0);
	ck_assert_uint_eq(push_stage_builds(ps), 1);
	s = push_stage_config(ps);
	ck_assert_uint_ge(s->n_errors, 1);
	cfg_snapshot_unref(s);
}
END_TEST

/* A mesh config change is a build of its own, debounced like a store
 * change; the same config again (same hash) schedules nothing; the model
 * carries it, and its rootNamespace wins over the stage's. */
START_TEST(mesh_config_change_builds_once)
{
	static const char yaml[] = "rootNamespace: mesh-root\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc = NULL, *same = NULL;
	struct model *m;

	ck_assert_int_eq(meshcfg_parse(yaml, strlen(yaml), "mesh", &mc, err, sizeof(err), NULL), 0);
	ck_assert_int_eq(meshcfg_parse(yaml, strlen(yaml), "mesh", &same, err, sizeof(err), NULL), 0);
	ck_assert(push_stage_set_mesh(ps, mc, 1000 * MS));
	ck_assert_int_eq(push_stage_timeout_ms(ps, 1000 * MS), 100);
	ck_assert_int_eq(push_stage_tick(ps, 1050 * MS), 0);
	ck_assert_int_eq(push_stage_tick(ps, 1100 * MS), 1);
	ck_assert_uint_eq(push_stage_builds(ps), 2);
	m = push_stage_model(ps);
	ck_assert_ptr_eq(m->mesh, mc);
	ck_assert_str_eq(m->root_namespace, "mesh-root");
	model_unref(m);
	/* equal content: nothing scheduled */
	ck_assert(!push_stage_set_mesh(ps, same, 2000 * MS));
	ck_assert_int_eq(push_stage_timeout_ms(ps, 2000 * MS), -1);
	/* back to Istio's defaults (NULL): the stage's root namespace again */
	ck_assert(push_stage_set_mesh(ps, NULL, 3000 * MS));
	ck_assert_int_eq(push_stage_tick(ps, 3100 * MS), 1);
	m = push_stage_model(ps);
	ck_assert_ptr_null(m->mesh);
	ck_assert_str_eq(m->root_namespace, "istio-system");
	model_unref(m);
	meshcfg_unref(mc);
	meshcfg_unref(same);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("push");
	TCase *tc = tcase_create("stage");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, two_sources_one_window_one_build);
	tcase_add_test(tc, file_read_only_after_quiet_period);
	tcase_add_test(tc, steady_changes_capped_by_max);
	tcase_add_test(tc, rejected_edit_no_build_errors_refreshed);
	tcase_add_test(tc, mesh_config_change_builds_once);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
