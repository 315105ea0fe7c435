/*
 * test_source.c - the file config source: load, inotify reported without
 * reading, reload on request, removal, last good.  The debounce that
 * decides when to reload is the push stage's (tests/unit/controlplane/push/).
 */
#include "controlplane/config/store.h"
#include "controlplane/file/source.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

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

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/meshd-test-source-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
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

/* Wait (bounded) until inotify has something; the source reports it. */
static void await_events(struct file_source *fs)
{
	struct pollfd p = { .fd = file_source_fd(fs), .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, 10000), 1);
	ck_assert_int_eq(file_source_handle(fs), 1);
}

static struct file_source *open_source(struct cfg_store *st)
{
	struct file_source_config c = { .dir = dir, .store = st };
	struct file_source *fs = NULL;

	ck_assert_int_eq(file_source_new(&c, &fs), 0);
	return fs;
}

static size_t count(struct cfg_store *st, enum cfg_kind k)
{
	struct cfg_snapshot *s = cfg_store_snapshot(st);
	size_t n = s->n_objects[k];
	cfg_snapshot_unref(s);
	return n;
}

START_TEST(initial_load_recursive_and_hidden)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	char sub[300];

	write_file("a.yaml", vs("a", "a.example.com"));
	write_file("b.json", "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
			     "\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\"},\"spec\":{\"hosts\":[\"b.example.com\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"b.example.com\"}}]}]}}");
	write_file("notes.txt", vs("txt", "t.example.com"));
	write_file(".hidden.yaml", vs("hidden", "h.example.com"));
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file("sub/c.yml", vs("c", "c.example.com"));

	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 3);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 3);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "c"));
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "hidden"));
	/* nothing moved since the load */
	ck_assert_int_eq(file_source_handle(fs), 0);
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

/* Rewrite path in place with text (same size as before). */
static void rewrite_in_place(const char *path, const char *text)
{
	FILE *f = fopen(path, "r+");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A walk skips files whose stat is unchanged since their last read; an
 * edit in place that keeps the inode and the size must still be seen (a
 * skip on inode and size alone would miss every one of these).  Where
 * file timestamps are coarse, an edit within the clock tick of the read
 * keeps the times too: source.c then re-reads files changed within a
 * second of their last read.  Such same-tick edits are counted (fine
 * grained timestamps, as here, may never give one); each must be seen. */
START_TEST(same_size_rewrite_right_after_read_is_seen)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	const struct cfg_object *o;
	char path[512];
	int i, same_tick = 0;

	write_file("a.yaml", vs("a", "a.example.com"));
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 1);
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	for (i = 0; i < 200; i++) {
		const char *host = i % 2 ? "a.example.com" : "b.example.com";
		struct stat before, after;

		rewrite_in_place(path, vs("a", i % 2 ? "b.example.com" : "a.example.com"));
		ck_assert_int_eq(stat(path, &before), 0);
		ck_assert_int_ge(file_source_reload(fs), 0);
		rewrite_in_place(path, vs("a", host));
		ck_assert_int_eq(stat(path, &after), 0);
		if (after.st_ctim.tv_sec == before.st_ctim.tv_sec && after.st_ctim.tv_nsec == before.st_ctim.tv_nsec &&
		    after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
			same_tick++;
		ck_assert_int_eq(file_source_reload(fs), 1);
		o = cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a");
		ck_assert_ptr_nonnull(o);
		ck_assert_str_eq(o->spec.vs.hosts.v[0], host);
	}
	if (same_tick)
		printf("same_size_rewrite_right_after_read_is_seen: %d edits in the tick of the read\n", same_tick);
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

START_TEST(events_reported_not_read)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;

	write_file("a.yaml", vs("a", "a.example.com"));
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 1);

	write_file("b.yaml", vs("b", "b.example.com"));
	await_events(fs);
	/* inotify said something moved; nothing is read until asked */
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_int_eq(file_source_reload(fs), 1);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	/* drained: no more events, and a second reload changes nothing */
	ck_assert_int_eq(file_source_handle(fs), 0);
	ck_assert_int_eq(file_source_reload(fs), 0);
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

START_TEST(remove_and_last_good)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	const struct cfg_object *o;
	struct cfg_snapshot *snap;
	char path[300];

	write_file("a.yaml", vs("a", "a.example.com"));
	write_file("b.yaml", vs("b", "b.example.com"));
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 2);

	/* an invalid edit keeps the last good version and records the error */
	write_file("a.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			     "metadata: {name: a, namespace: ns}\nspec: {hosts: []}\n");
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	o = cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(o->spec.vs.hosts.v[0], "a.example.com");
	snap = cfg_store_snapshot(st);
	ck_assert_uint_ge(snap->n_errors, 1);
	ck_assert_ptr_nonnull(strstr(snap->errors[0].origin, "a.yaml"));
	cfg_snapshot_unref(snap);

	/* garbage keeps it too */
	write_file("a.yaml", "\t: [ {{{ not yaml");
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a"));

	/* deleting a file removes what it contributed */
	snprintf(path, sizeof(path), "%s/b.yaml", dir);
	ck_assert_int_eq(unlink(path), 0);
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 1);
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));

	/* rewriting identical bytes changes nothing */
	write_file("a.yaml", "\t: [ {{{ not yaml");
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

/* --max-objects-per-source: a file that would take the tree past it is not
 * applied (its last good objects stay) until the tree fits again. */
START_TEST(objects_per_source_cap)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source_config c = { .dir = dir, .store = st, .max_objects = 3 };
	struct file_source *fs = NULL;
	char two[1100];

	snprintf(two, sizeof(two), "%s---\n", vs("a1", "a1.example.com"));
	strncat(two, vs("a2", "a2.example.com"), sizeof(two) - strlen(two) - 1);
	write_file("a.yaml", two);
	write_file("b.yaml", vs("b", "b.example.com"));
	ck_assert_int_eq(file_source_new(&c, &fs), 0);
	ck_assert_int_eq(file_source_sync(fs), 3);

	/* b.yaml grows to 2: 4 objects, over the cap of 3 */
	snprintf(two, sizeof(two), "%s---\n", vs("b", "b.example.com"));
	strncat(two, vs("b2", "b2.example.com"), sizeof(two) - strlen(two) - 1);
	write_file("b.yaml", two);
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 3);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b2"));

	/* a.yaml shrinks to 1: the next reload reads b.yaml again and it fits */
	write_file("a.yaml", vs("a1", "a1.example.com"));
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 2);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 3);
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a2"));
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b2"));
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

START_TEST(bad_directory)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source_config c = { .dir = "/nonexistent/meshd", .store = st };
	struct file_source *fs = NULL;

	ck_assert_int_eq(file_source_new(&c, &fs), -ENOENT);
	ck_assert_ptr_null(fs);
	c.dir = "/etc/hostname";
	ck_assert_int_eq(file_source_new(&c, &fs), -ENOTDIR);
	cfg_store_free(st);
}
END_TEST

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static const char *origin_of(struct cfg_store *st, const char *name)
{
	const struct cfg_object *o = cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", name);

	ck_assert_ptr_nonnull(o);
	return o->origin;
}

/* `mv configdir configdir.moved` while meshd runs: the root cannot be read,
 * which must not read as "every file deleted"; moving it back is noticed
 * (the root's parent is watched) and a real deletion still deletes. */
START_TEST(root_moved_keeps_last_good)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	char sub[300], moved[300], path[300];

	write_file("a.yaml", vs("a", "a.example.com"));
	path_of(sub, sizeof(sub), "sub");
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file("sub/b.yaml", vs("b", "b.example.com"));
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 2);

	snprintf(moved, sizeof(moved), "%s.moved", dir);
	ck_assert_int_eq(rename(dir, moved), 0);
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 2);
	ck_assert_int_eq(file_source_reload(fs), 0); /* and again: still kept */
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 2);

	ck_assert_int_eq(rename(moved, dir), 0);
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 2);
	path_of(path, sizeof(path), "sub/b.yaml");
	ck_assert_int_eq(unlink(path), 0);
	await_events(fs);
	ck_assert_int_eq(file_source_reload(fs), 1);
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a"));
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

/* Out of descriptors (EMFILE) and entries that cannot be resolved (ELOOP):
 * what cannot be read keeps what it gave; only what is read can change. */
START_TEST(unreadable_keeps_last_good)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	struct rlimit old, low;
	char sub[300], path[300];
	int fd;

	write_file("a.yaml", vs("a", "a.example.com"));
	write_file("c.yaml", vs("c", "c.example.com"));
	path_of(sub, sizeof(sub), "sub");
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file("sub/b.yaml", vs("b", "b.example.com"));
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 3);

	/* no descriptor left: the root cannot even be listed */
	fd = dup(0);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 3);

	/* a file and a subdirectory become symlinks to themselves (ELOOP),
	 * while c.yaml really goes */
	path_of(path, sizeof(path), "a.yaml");
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("a.yaml", path), 0);
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sub);
		ck_assert_int_eq(system(cmd), 0);
	}
	ck_assert_int_eq(symlink("sub", sub), 0);
	path_of(path, sizeof(path), "c.yaml");
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(file_source_reload(fs), 1);
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "a"));
	ck_assert_ptr_nonnull(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "b"));
	ck_assert_ptr_null(cfg_store_get(st, CFG_VIRTUAL_SERVICE, "ns", "c"));
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

/* `loop -> .` (and `sub/up -> ..`, and `alias -> sub` sorting before sub):
 * each directory is read once, under its real path, with no duplicate
 * definitions. */
START_TEST(symlink_loops_read_once)
{
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs;
	struct cfg_snapshot *snap;
	char sub[300], path[300];
	int i;

	write_file("a.yaml", vs("a", "a.example.com"));
	path_of(sub, sizeof(sub), "sub");
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file("sub/b.yaml", vs("b", "b.example.com"));
	path_of(path, sizeof(path), "loop");
	ck_assert_int_eq(symlink(".", path), 0);
	path_of(path, sizeof(path), "alias");
	ck_assert_int_eq(symlink("sub", path), 0);
	path_of(path, sizeof(path), "sub/up");
	ck_assert_int_eq(symlink("..", path), 0);
	fs = open_source(st);
	ck_assert_int_eq(file_source_sync(fs), 2);
	ck_assert_uint_eq(count(st, CFG_VIRTUAL_SERVICE), 2);
	snap = cfg_store_snapshot(st);
	for (i = 0; i < (int)snap->n_errors; i++)
		fprintf(stderr, "unexpected: %s\n", snap->errors[i].message);
	ck_assert_uint_eq(snap->n_errors, 0);
	cfg_snapshot_unref(snap);
	path_of(path, sizeof(path), "a.yaml");
	ck_assert_str_eq(origin_of(st, "a"), path);
	path_of(path, sizeof(path), "sub/b.yaml");
	ck_assert_str_eq(origin_of(st, "b"), path);
	/* a reload walks the same way: nothing changes, nothing removed */
	ck_assert_int_eq(file_source_reload(fs), 0);
	ck_assert_str_eq(origin_of(st, "b"), path);
	file_source_free(fs);
	cfg_store_free(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("file_source");
	TCase *tc = tcase_create("source");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, initial_load_recursive_and_hidden);
	tcase_add_test(tc, events_reported_not_read);
	tcase_add_test(tc, remove_and_last_good);
	tcase_add_test(tc, bad_directory);
	tcase_add_test(tc, objects_per_source_cap);
	tcase_add_test(tc, root_moved_keeps_last_good);
	tcase_add_test(tc, unreadable_keeps_last_good);
	tcase_add_test(tc, symlink_loops_read_once);
	tcase_add_test(tc, same_size_rewrite_right_after_read_is_seen);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
