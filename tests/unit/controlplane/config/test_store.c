/*
 * test_store.c - the configuration store: last-good versions, duplicate keys
 * across origins, origin removal, Kubernetes-style put/delete/reject,
 * subset reference warnings and immutable snapshots.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char vs_v1[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"
	"      weight: 90\n    - destination: {host: reviews, subset: v2}\n      weight: 10\n";
static const char vs_v2_bad[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"
	"      weight: 0\n    - destination: {host: reviews, subset: v2}\n      weight: 0\n";
static const char vs_v3[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"
	"      weight: 50\n    - destination: {host: reviews, subset: v2}\n      weight: 50\n";
static const char dr_reviews[] =
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
	"spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
	"  - {name: v2, labels: {version: v2}}\n";
static const char dr_other[] =
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other}\nspec: {host: other}\n";
static const char broken[] = "apiVersion: networking.istio.io/v1\nkind: [VirtualService\n";

static struct cfg_store *store;

static void setup(void)
{
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
}

static void teardown(void)
{
	cfg_store_free(store);
}

/* parse text as origin and apply it; returns the apply result */
static int apply(const char *origin, const char *text)
{
	struct cfg_parse_result r;
	int rc;

	ck_assert_int_eq(cfg_parse_buffer(origin, text, strlen(text), &r), 0);
	rc = cfg_store_apply_origin(store, origin, &r);
	ck_assert_uint_eq(r.n_objects, 0); /* consumed */
	ck_assert_uint_eq(r.n_errors, 0);
	cfg_parse_result_cleanup(&r);
	return rc;
}

static size_t count_errors(const struct cfg_snapshot *s, bool warning)
{
	size_t i, n = 0;

	for (i = 0; i < s->n_errors; i++)
		n += s->errors[i].warning == warning;
	return n;
}

START_TEST(test_last_good)
{
	const struct cfg_object *o;
	struct cfg_snapshot *snap;
	uint64_t h1;

	ck_assert_int_eq(apply("vs.yaml", dr_reviews), 1);
	ck_assert_int_eq(apply("vs2.yaml", vs_v1), 1);
	o = cfg_store_get(store, CFG_VIRTUAL_SERVICE, "default", "reviews");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(o->spec.vs.http[0].route[0].weight, 90);
	h1 = o->hash;

	/* v2 is invalid: v1 stays served, the error is listed */
	ck_assert_int_eq(apply("vs2.yaml", vs_v2_bad), 0);
	o = cfg_store_get(store, CFG_VIRTUAL_SERVICE, "default", "reviews");
	ck_assert_ptr_nonnull(o);
	ck_assert(o->hash == h1);
	ck_assert_int_eq(o->spec.vs.http[0].route[1].weight, 10);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_objects[CFG_VIRTUAL_SERVICE], 1);
	ck_assert_uint_eq(snap->n_errors, 1);
	ck_assert_str_eq(snap->errors[0].origin, "vs2.yaml");
	ck_assert_str_eq(snap->errors[0].field, "spec.http[0].route");
	ck_assert_ptr_nonnull(strstr(snap->errors[0].message, "total destination weight = 0"));
	ck_assert_uint_eq(snap->total_rejections, 1);
	cfg_snapshot_unref(snap);

	/* v3 is valid: served, and the error is gone */
	ck_assert_int_eq(apply("vs2.yaml", vs_v3), 1);
	o = cfg_store_get(store, CFG_VIRTUAL_SERVICE, "default", "reviews");
	ck_assert_int_eq(o->spec.vs.http[0].route[0].weight, 50);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 0);
	ck_assert_uint_eq(snap->total_rejections, 1);
	cfg_snapshot_unref(snap);

	/* the same content again changes nothing */
	ck_assert_int_eq(apply("vs2.yaml", vs_v3), 0);
}
END_TEST

START_TEST(test_unparsable_keeps_everything)
{
	char both[1024];
	struct cfg_snapshot *snap;

	snprintf(both, sizeof(both), "%s---\n%s", dr_reviews, dr_other);
	ck_assert_int_eq(apply("a.yaml", both), 2);
	/* the file is now broken beyond identifying its objects */
	ck_assert_int_eq(apply("a.yaml", broken), 0);
	ck_assert_ptr_nonnull(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "reviews"));
	ck_assert_ptr_nonnull(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "other"));
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 1);
	ck_assert_int_eq(snap->errors[0].kind, -1);
	cfg_snapshot_unref(snap);
	/* fixed, with one object fewer: that one goes */
	ck_assert_int_eq(apply("a.yaml", dr_reviews), 1);
	ck_assert_ptr_null(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "other"));
	ck_assert_ptr_nonnull(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "reviews"));
}
END_TEST

START_TEST(test_duplicates_across_origins)
{
	struct cfg_snapshot *snap;
	const struct cfg_object *o;

	ck_assert_int_eq(apply("b.yaml", dr_reviews), 1);
	/* a.yaml sorts first and wins */
	ck_assert_int_eq(apply("a.yaml", "# moved\n\n---\n" "apiVersion: networking.istio.io/v1\n"
					 "kind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n"), 1);
	o = cfg_store_get(store, CFG_DESTINATION_RULE, "default", "reviews");
	ck_assert_str_eq(o->origin, "a.yaml");
	ck_assert_uint_eq(o->spec.dr.n_subsets, 0);
	/* the duplicate is logged (meshd's log, not only /debug/configz): stderr captured */
	{
		char logged[4096] = "";
		FILE *tmp = tmpfile();
		int saved = dup(STDERR_FILENO);
		size_t got;

		ck_assert_ptr_nonnull(tmp);
		ck_assert_int_ge(saved, 0);
		ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
		snap = cfg_store_snapshot(store);
		ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
		close(saved);
		rewind(tmp);
		got = fread(logged, 1, sizeof(logged) - 1, tmp);
		logged[got] = '\0';
		fclose(tmp);
		ck_assert_msg(strstr(logged, "rejected: b.yaml:1:1: DestinationRule default/reviews: also defined at "
				      "a.yaml:4:1, which wins"), "log: %s", logged);
	}
	ck_assert_uint_eq(snap->n_objects[CFG_DESTINATION_RULE], 1);
	ck_assert_uint_eq(count_errors(snap, false), 1);
	ck_assert_str_eq(snap->errors[0].origin, "b.yaml");
	ck_assert_int_eq(snap->errors[0].line, 1);
	ck_assert_int_eq(snap->errors[0].column, 1);
	ck_assert_str_eq(snap->errors[0].name, "reviews");
	ck_assert(strstr(snap->errors[0].message, "also defined at a.yaml:4:1") != NULL);
	cfg_snapshot_unref(snap);

	/* a.yaml goes away: b.yaml's definition is served, no error left */
	ck_assert_int_eq(cfg_store_remove_origin(store, "a.yaml"), 1);
	o = cfg_store_get(store, CFG_DESTINATION_RULE, "default", "reviews");
	ck_assert_str_eq(o->origin, "b.yaml");
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 0);
	cfg_snapshot_unref(snap);
}
END_TEST

START_TEST(test_remove_origin)
{
	struct cfg_snapshot *snap;

	ck_assert_int_eq(apply("x.yaml", dr_other), 1);
	ck_assert_int_eq(apply("y.yaml", vs_v2_bad), 0);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 1);
	cfg_snapshot_unref(snap);
	ck_assert_int_eq(cfg_store_remove_origin(store, "y.yaml"), 0);
	ck_assert_int_eq(cfg_store_remove_origin(store, "x.yaml"), 1);
	ck_assert_int_eq(cfg_store_remove_origin(store, "nope.yaml"), 0);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 0);
	ck_assert_uint_eq(snap->n_objects[CFG_DESTINATION_RULE], 0);
	cfg_snapshot_unref(snap);
}
END_TEST

START_TEST(test_subset_references)
{
	struct cfg_snapshot *snap;
	static const char dr_v1_only[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
		"spec:\n  host: reviews.default.svc.cluster.local\n  subsets:\n  - {name: v1}\n";

	ck_assert_int_eq(apply("vs.yaml", vs_v1), 1);
	snap = cfg_store_snapshot(store);
	/* no DestinationRule at all: both subsets are warned about, the route stays */
	ck_assert_uint_eq(snap->n_objects[CFG_VIRTUAL_SERVICE], 1);
	ck_assert_uint_eq(count_errors(snap, true), 2);
	ck_assert_uint_eq(count_errors(snap, false), 0);
	ck_assert_str_eq(snap->errors[0].field, "spec.http[0].route[0].destination.subset");
	ck_assert(strstr(snap->errors[0].message, "no DestinationRule for host reviews") != NULL);
	/* FILE:LINE:COL, the route's own column */
	ck_assert_int_gt(snap->errors[0].line, 0);
	ck_assert_int_gt(snap->errors[0].column, 0);
	cfg_snapshot_unref(snap);

	ck_assert_int_eq(apply("dr.yaml", dr_v1_only), 1);
	ck_assert_int_eq(cfg_store_check_references(store), 1);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(count_errors(snap, true), 1);
	ck_assert_str_eq(snap->errors[0].field, "spec.http[0].route[1].destination.subset");
	ck_assert(strstr(snap->errors[0].message, "subset \"v2\" is not defined by DestinationRule default/reviews")
		  != NULL);
	ck_assert_uint_eq(snap->total_rejections, 0);
	cfg_snapshot_unref(snap);

	ck_assert_int_eq(apply("dr.yaml", dr_reviews), 1);
	ck_assert_int_eq(cfg_store_check_references(store), 0);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 0);
	cfg_snapshot_unref(snap);
}
END_TEST

/* every entry of mirrors[] has its subset checked, not only the first
 * (all of them are emitted) */
START_TEST(test_mirrors_subset_references)
{
	struct cfg_snapshot *snap;
	static const char dr_v1_only[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
		"spec:\n  host: reviews.default.svc.cluster.local\n  subsets:\n  - {name: v1}\n";
	static const char vs_mirrors[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: m}\n"
		"spec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n"
		"    mirrors:\n    - destination: {host: reviews, subset: v1}\n"
		"    - destination: {host: reviews, subset: v9}\n";

	ck_assert_int_eq(apply("dr.yaml", dr_v1_only), 1);
	ck_assert_int_eq(apply("vs.yaml", vs_mirrors), 1);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(count_errors(snap, true), 1);
	ck_assert_str_eq(snap->errors[0].field, "spec.http[0].mirrors[1].destination.subset");
	ck_assert(strstr(snap->errors[0].message, "subset \"v9\" is not defined") != NULL);
	cfg_snapshot_unref(snap);
}
END_TEST

/* A Sidecar whose ingress listener and an outbound listener bind the
 * same address under captureMode NONE gets a warning on the ingress
 * listener (store__check_sidecar_listeners); other binds do not. */
START_TEST(test_sidecar_listener_conflict)
{
	static const char sc_same[] =
		"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n  ingress:\n"
		"  - port: {number: 9080, protocol: HTTP, name: http}\n    bind: 127.0.0.1\n    captureMode: NONE\n"
		"    defaultEndpoint: 127.0.0.1:8080\n  egress:\n"
		"  - port: {number: 9080, protocol: HTTP, name: http}\n    hosts: ['./*']\n";
	static const char sc_apart[] =
		"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n  ingress:\n"
		"  - port: {number: 9080, protocol: HTTP, name: http}\n    captureMode: NONE\n"
		"    defaultEndpoint: 127.0.0.1:8080\n  egress:\n"
		"  - port: {number: 9080, protocol: HTTP, name: http}\n    hosts: ['./*']\n";
	struct cfg_snapshot *snap;

	ck_assert_int_eq(apply("sc.yaml", sc_same), 1);
	ck_assert_int_eq(cfg_store_check_references(store), 1);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_objects[CFG_SIDECAR], 1);
	ck_assert_uint_eq(count_errors(snap, true), 1);
	ck_assert_str_eq(snap->errors[0].field, "spec.ingress[0]");
	ck_assert(strstr(snap->errors[0].message, "conflicting listeners 127.0.0.1_9080") != NULL);
	cfg_snapshot_unref(snap);

	/* ingress on 0.0.0.0 (its default), outbound on 127.0.0.1: two listeners */
	ck_assert_int_eq(apply("sc.yaml", sc_apart), 1);
	ck_assert_int_eq(cfg_store_check_references(store), 0);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(count_errors(snap, true), 0);
	cfg_snapshot_unref(snap);
}
END_TEST

/* Istio's IST0160: of two Telemetry objects without selector in
 * istio-system, the oldest (then by name) applies; the other is named in a
 * warning instead of being ignored silently (a user who adds an
 * accessLogging Telemetry next to a metrics one sees why it does nothing).
 * One with a selector is not concerned. */
START_TEST(test_telemetries_without_selector)
{
	static const char two[] =
		"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\n"
		"spec:\n  tracing: [{randomSamplingPercentage: 100}]\n---\n"
		"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-logging, namespace: istio-system}\n"
		"spec:\n  accessLogging: [{providers: [{name: envoy}]}]\n---\n"
		"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: one-app, namespace: istio-system}\n"
		"spec:\n  selector: {matchLabels: {app: a}}\n  accessLogging: [{providers: [{name: envoy}]}]\n";
	struct cfg_snapshot *snap;

	ck_assert_int_eq(apply("tm.yaml", two), 3);
	ck_assert_int_eq(cfg_store_check_references(store), 1);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_objects[CFG_TELEMETRY], 3);
	ck_assert_uint_eq(count_errors(snap, true), 1);
	ck_assert_str_eq(snap->errors[0].name, "mesh-logging");
	ck_assert(strstr(snap->errors[0].message, "IST0160") != NULL);
	ck_assert(strstr(snap->errors[0].message, "only mesh-default") != NULL);
	cfg_snapshot_unref(snap);
}
END_TEST

START_TEST(test_put_delete_reject)
{
	struct cfg_parse_result r;
	struct cfg_error e;
	struct cfg_snapshot *snap;
	struct cfg_object *o;

	ck_assert_int_eq(cfg_parse_buffer("kube", dr_other, strlen(dr_other), &r), 0);
	ck_assert_uint_eq(r.n_objects, 1);
	o = r.objects[0];
	ck_assert_int_eq(cfg_store_put(store, o), 1);
	ck_assert_int_eq(cfg_store_put(store, o), 0);
	cfg_parse_result_cleanup(&r); /* the store holds its own reference */
	ck_assert_ptr_nonnull(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "other"));

	memset(&e, 0, sizeof(e));
	e.origin = "kube";
	e.kind = CFG_DESTINATION_RULE;
	e.ns = "default";
	e.name = "other";
	e.field = "spec.host";
	e.message = "host is required";
	ck_assert_int_eq(cfg_store_reject(store, &e), 0);
	ck_assert_ptr_nonnull(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "other"));
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 1);
	ck_assert_str_eq(snap->errors[0].message, "host is required");
	cfg_snapshot_unref(snap);

	ck_assert_int_eq(cfg_store_delete(store, CFG_DESTINATION_RULE, "default", "other"), 1);
	ck_assert_ptr_null(cfg_store_get(store, CFG_DESTINATION_RULE, "default", "other"));
	ck_assert_int_eq(cfg_store_delete(store, CFG_DESTINATION_RULE, "default", "other"), 0);
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_errors, 0);
	cfg_snapshot_unref(snap);
}
END_TEST

START_TEST(test_snapshots_immutable)
{
	struct cfg_snapshot *s1, *s2, *s3;

	ck_assert_int_eq(apply("a.yaml", dr_reviews), 1);
	s1 = cfg_store_snapshot(store);
	s2 = cfg_store_snapshot(store);
	ck_assert_ptr_eq(s1, s2); /* unchanged store: the same snapshot */
	cfg_snapshot_unref(s2);
	ck_assert_int_eq(apply("b.yaml", dr_other), 1);
	s3 = cfg_store_snapshot(store);
	ck_assert(s3->generation > s1->generation);
	ck_assert_uint_eq(s1->n_objects[CFG_DESTINATION_RULE], 1);
	ck_assert_uint_eq(s3->n_objects[CFG_DESTINATION_RULE], 2);
	/* sorted by (namespace, name) */
	ck_assert_str_eq(s3->objects[CFG_DESTINATION_RULE][0]->name, "other");
	ck_assert_str_eq(s3->objects[CFG_DESTINATION_RULE][1]->name, "reviews");
	/* the store goes away; snapshots (and their objects) stay valid */
	cfg_store_free(store);
	store = cfg_store_new();
	ck_assert_str_eq(s1->objects[CFG_DESTINATION_RULE][0]->spec.dr.subsets[1].name, "v2");
	cfg_snapshot_unref(s1);
	cfg_snapshot_unref(s3);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_last_good);
	tcase_add_test(tc, test_unparsable_keeps_everything);
	tcase_add_test(tc, test_duplicates_across_origins);
	tcase_add_test(tc, test_remove_origin);
	tcase_add_test(tc, test_subset_references);
	tcase_add_test(tc, test_mirrors_subset_references);
	tcase_add_test(tc, test_sidecar_listener_conflict);
	tcase_add_test(tc, test_telemetries_without_selector);
	tcase_add_test(tc, test_put_delete_reject);
	tcase_add_test(tc, test_snapshots_immutable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
