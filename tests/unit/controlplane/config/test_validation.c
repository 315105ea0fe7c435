/*
 * test_validation.c - meshd's validator against Istio's rules, as a table.
 *
 * tests/data/validation/cases.txt holds one case per rule of Istio's
 * validation (pkg/config/validation: the function or test each mirrors):
 * a YAML document and the verdict istiod gives it (accepted, rejected with
 * a field path and message, accepted with a warning).  Every case runs
 * alone (a loop test).  tests/data/seed-yaml holds real user YAML and
 * expected.txt the verdict per document.  Run from the repository root.
 */
#include "controlplane/config/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES "tests/data/validation/cases.txt"
#define SEED "tests/data/seed-yaml/"
#define MAX_CASES 1024
#define MIN_CASES 150

struct vcase {
	char name[96], rule[256], expect[16], field[256], message[256];
	char *yaml;
};

static struct vcase cases[MAX_CASES];
static int n_cases;

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* "### key: value" into dst (empty when the line is "### key:") */
static int header(const char *line, const char *key, char *dst, size_t cap)
{
	size_t kl = strlen(key);
	const char *v;

	if (strncmp(line, "### ", 4) || strncmp(line + 4, key, kl) || line[4 + kl] != ':')
		return 0;
	v = line + 5 + kl;
	if (*v == ' ')
		v++;
	snprintf(dst, cap, "%s", v);
	trim(dst);
	return 1;
}

static void load_cases(void)
{
	FILE *f = fopen(CASES, "r");
	char line[4096];
	struct vcase *c = NULL;
	size_t len = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "### case:", 9)) {
			if (n_cases == MAX_CASES)
				break;
			c = &cases[n_cases++];
			header(line, "case", c->name, sizeof(c->name));
			c->yaml = calloc(1, 1);
			len = 0;
			continue;
		}
		if (!c)
			continue;
		if (header(line, "rule", c->rule, sizeof(c->rule)) || header(line, "expect", c->expect, sizeof(c->expect)) ||
		    header(line, "field", c->field, sizeof(c->field)) ||
		    header(line, "message", c->message, sizeof(c->message)))
			continue;
		{
			size_t l = strlen(line);
			char *y = realloc(c->yaml, len + l + 1);
			if (!y)
				break;
			memcpy(y + len, line, l + 1);
			c->yaml = y;
			len += l;
		}
	}
	fclose(f);
}

static void dump(const struct vcase *c, const struct cfg_parse_result *r)
{
	char text[1024];
	size_t i;

	fprintf(stderr, "case %s (%s): expected %s %s \"%s\"; got %zu object(s):\n", c->name, c->rule, c->expect,
		c->field, c->message, r->n_objects);
	for (i = 0; i < r->n_errors; i++) {
		cfg_error_format(&r->errors[i], text, sizeof(text));
		fprintf(stderr, "  %s\n", text);
	}
}

/* an error (warning false) or warning at field ("": none) whose message has msg */
static bool has(const struct cfg_parse_result *r, bool warning, const char *field, const char *msg)
{
	size_t i;

	for (i = 0; i < r->n_errors; i++) {
		const struct cfg_error *e = &r->errors[i];
		if (e->warning != warning)
			continue;
		if (field[0] ? !e->field || strcmp(e->field, field) : e->field != NULL)
			continue;
		if (strstr(e->message, msg))
			return true;
	}
	return false;
}

static size_t count(const struct cfg_parse_result *r, bool warning)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_errors; i++)
		n += r->errors[i].warning == warning;
	return n;
}

/* Every finding: an accept case has none, not even the document-level
 * "not implemented yet: KIND is validated and listed" warning, since every
 * kind meshd reads is served (Telemetry included). */
static size_t count_findings(const struct cfg_parse_result *r)
{
	return r->n_errors;
}

START_TEST(test_enough_cases)
{
	ck_assert_msg(n_cases >= MIN_CASES, "%d cases in " CASES ", want at least %d", n_cases, MIN_CASES);
}
END_TEST

START_TEST(test_case)
{
	const struct vcase *c = &cases[_i];
	struct cfg_parse_result r;
	bool ok;

	ck_assert_ptr_nonnull(c->yaml);
	ck_assert_msg(c->rule[0], "case %s names no Istio rule", c->name);
	ck_assert_int_eq(cfg_parse_buffer(c->name, c->yaml, strlen(c->yaml), &r), 0);
	if (!strcmp(c->expect, "accept"))
		ok = r.n_objects == 1 && count_findings(&r) == 0;
	else if (!strcmp(c->expect, "reject"))
		ok = r.n_objects == 0 && has(&r, false, c->field, c->message);
	else if (!strcmp(c->expect, "warn"))
		ok = count(&r, false) == 0 && has(&r, true, c->field, c->message) &&
		     (r.n_objects == 1 || (r.n_objects == 0 && !c->field[0]));
	else if (!strcmp(c->expect, "skip"))
		ok = r.n_objects == 0 && r.n_errors == 0 && r.n_ignored == 1;
	else
		ok = false;
	if (!ok)
		dump(c, &r);
	cfg_parse_result_cleanup(&r);
	ck_assert_msg(ok, "case %s: not %s as in Istio (%s)", c->name, c->expect, c->rule);
}
END_TEST

/* issue 14: Telemetry reaches proxies (stats, access logs, tracing): it
 * carries no "not implemented yet ... no proxy receives it" note, which
 * meshctl validate, /debug/configz and the log would show for every one */
START_TEST(test_telemetry_not_flagged)
{
	static const char y[] = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
				"metadata: {name: t, namespace: istio-system}\n"
				"spec:\n  accessLogging: [{providers: [{name: envoy}]}]\n";
	struct cfg_parse_result r;
	size_t i;

	ck_assert_int_eq(cfg_parse_buffer("t.yaml", y, strlen(y), &r), 0);
	ck_assert_uint_eq(r.n_objects, 1);
	for (i = 0; i < r.n_errors; i++)
		ck_assert_msg(!strstr(r.errors[i].message, "not implemented yet"), "%s", r.errors[i].message);
	cfg_parse_result_cleanup(&r);
}
END_TEST

/* ------------------------------------------------------------- seed YAML */

static const struct cfg_object *find(const struct cfg_parse_result *r, const char *kind, const char *nsname)
{
	char want[256];
	size_t i;

	for (i = 0; i < r->n_objects; i++) {
		snprintf(want, sizeof(want), "%s/%s", r->objects[i]->ns, r->objects[i]->name);
		if (!strcmp(cfg_kind_name(r->objects[i]->kind), kind) && !strcmp(want, nsname))
			return r->objects[i];
	}
	return NULL;
}

START_TEST(test_seed_yaml)
{
	FILE *f = fopen(SEED "expected.txt", "r");
	char line[512], cur[128] = "", path[256];
	struct cfg_parse_result r;
	size_t n_skip = 0, n_lines = 0, n_docs = 0, n_reported = 0;
	bool have = false;

	ck_assert_ptr_nonnull(f);
	memset(&r, 0, sizeof(r));
	while (fgets(line, sizeof(line), f)) {
		char file[128], verdict[16], a[128] = "", b[128] = "", text[256] = "";
		int n;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		n = sscanf(line, "%127s %15s %127s %127s %255[^\n]", file, verdict, a, b, text);
		ck_assert_int_ge(n, 2);
		n_lines++;
		if (strcmp(file, cur) != 0) {
			if (have) {
				ck_assert_msg(r.n_ignored == n_skip, "%s: %zu skipped, expected %zu", cur, r.n_ignored,
					      n_skip);
				ck_assert_msg(r.n_documents == n_docs, "%s: %zu documents, expected %zu", cur,
					      r.n_documents, n_docs);
				cfg_parse_result_cleanup(&r);
			}
			snprintf(cur, sizeof(cur), "%s", file);
			snprintf(path, sizeof(path), SEED "%s", file);
			ck_assert_int_eq(cfg_parse_file(path, &r), 0);
			have = true;
			n_skip = n_docs = 0;
		}
		n_docs++;
		if (!strcmp(verdict, "fragment")) {
			size_t i;
			bool seen = false;
			for (i = 0; i < r.n_errors; i++)
				seen |= !r.errors[i].warning && r.errors[i].kind == -1 && r.errors[i].line == atoi(a) &&
					(strstr(r.errors[i].message, "fragment") || strstr(r.errors[i].message, "no kind"));
			ck_assert_msg(seen, "%s: no clear error for the fragment at line %s", file, a);
			ck_assert_uint_eq(r.n_objects, 0);
			n_reported++;
		} else if (!strcmp(verdict, "accept") || !strcmp(verdict, "warn")) {
			const struct cfg_object *o = find(&r, a, b[0] == '/' ? b + 1 : b);
			char nsname[160];
			size_t i;

			if (!o && b[0] == '/') /* cluster-scoped: "/name" */
				o = find(&r, a, b);
			ck_assert_msg(o != NULL, "%s: %s %s was not accepted", file, a, b);
			snprintf(nsname, sizeof(nsname), "%s", b);
			for (i = 0; i < r.n_errors; i++)
				ck_assert_msg(r.errors[i].warning, "%s: %s", file, r.errors[i].message);
			if (!strcmp(verdict, "warn")) {
				bool seen = false;
				for (i = 0; i < r.n_errors; i++)
					seen |= r.errors[i].warning && strstr(r.errors[i].message, text) != NULL;
				ck_assert_msg(seen, "%s: no warning \"%s\" for %s %s", file, text, a, nsname);
			}
			n_reported++;
		} else if (!strcmp(verdict, "skip")) {
			n_skip++;
		} else {
			ck_abort_msg("%s: unknown verdict %s", file, verdict);
		}
	}
	if (have) {
		ck_assert_uint_eq(r.n_ignored, n_skip);
		cfg_parse_result_cleanup(&r);
	}
	fclose(f);
	ck_assert_uint_ge(n_lines, 30);
	ck_assert_uint_ge(n_reported, 30);
}
END_TEST

static Suite *validation_suite(void)
{
	Suite *s = suite_create("validation");
	TCase *tc = tcase_create("istio");

	load_cases();
	tcase_add_test(tc, test_enough_cases);
	tcase_add_test(tc, test_telemetry_not_flagged);
	tcase_add_loop_test(tc, test_case, 0, n_cases);
	suite_add_tcase(s, tc);
	tc = tcase_create("seed");
	tcase_add_test(tc, test_seed_yaml);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(validation_suite());
	int failed, i;

	/* a thousand cases of a pure function: one process (testutil_run_nofork) */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (i = 0; i < n_cases; i++)
		free(cases[i].yaml);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
