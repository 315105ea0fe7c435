/*
 * test_validate.c - the /validate handler: AdmissionReviews in, the
 * response's allowed / status.message / warnings out, as istiod answers
 * (pkg/webhooks/validation/server), and the galley_validation_* counters.
 */
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "controlplane/webhook/validate.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct answer {
	int rc;
	bool allowed;
	char uid[64];
	char api_version[64];
	char message[4096];
	char warnings[8][512];
	size_t n_warnings;
	char raw[8192];
};

static struct answer ask_raw(const char *body)
{
	struct answer a;
	struct mesh_buf out;
	struct json_value *root = NULL;
	const struct json_value *resp, *w;

	memset(&a, 0, sizeof(a));
	mesh_buf_init(&out, 1 << 20);
	a.rc = webhook_validate_handle(NULL, body, strlen(body), &out);
	snprintf(a.raw, sizeof(a.raw), "%.*s", (int)out.len, out.data ? out.data : "");
	if (a.rc == 0) {
		ck_assert_int_eq(json_parse(out.data, out.len, &root), 0);
		snprintf(a.api_version, sizeof(a.api_version), "%s",
			 json_get_str(root, "apiVersion") ? json_get_str(root, "apiVersion") : "");
		ck_assert_str_eq(json_get_str(root, "kind"), "AdmissionReview");
		resp = json_get(root, "response");
		ck_assert_ptr_nonnull(resp);
		a.allowed = json_get_bool(resp, "allowed", false);
		snprintf(a.uid, sizeof(a.uid), "%s", json_get_str(resp, "uid") ? json_get_str(resp, "uid") : "");
		if (json_get_str(json_get(resp, "status"), "message"))
			snprintf(a.message, sizeof(a.message), "%s", json_get_str(json_get(resp, "status"), "message"));
		w = json_get(resp, "warnings");
		for (w = w ? w->child : NULL; w && a.n_warnings < 8; w = w->next)
			snprintf(a.warnings[a.n_warnings++], sizeof(a.warnings[0]), "%s", w->str);
		json_free(root);
	}
	mesh_buf_cleanup(&out);
	return a;
}

/* An AdmissionReview v1 for obj (JSON text) with operation op. */
static struct answer ask(const char *op, const char *resource, const char *obj, bool dry_run)
{
	char body[16384];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		 "\"uid\":\"u-1\",\"kind\":{\"group\":\"networking.istio.io\",\"version\":\"v1\",\"kind\":\"X\"},"
		 "\"resource\":{\"group\":\"networking.istio.io\",\"version\":\"v1\",\"resource\":\"%s\"},"
		 "\"namespace\":\"demo\",\"operation\":\"%s\",\"dryRun\":%s,\"object\":%s}}",
		 resource, op, dry_run ? "true" : "false", obj);
	return ask_raw(body);
}

#define VS_OK "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\"," \
	"\"metadata\":{\"name\":\"reviews\",\"namespace\":\"demo\"}," \
	"\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\"}}]}]}}"

/* weight out of range and a route with no destination: two errors */
#define VS_BAD "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\"," \
	"\"metadata\":{\"name\":\"bad\",\"namespace\":\"demo\"}," \
	"\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\"},\"weight\":-5}]}]}}"

START_TEST(valid_object_allowed)
{
	struct answer a = ask("CREATE", "virtualservices", VS_OK, false);

	ck_assert_int_eq(a.rc, 0);
	ck_assert_msg(a.allowed, "%s", a.raw);
	ck_assert_str_eq(a.uid, "u-1");
	ck_assert_str_eq(a.api_version, "admission.k8s.io/v1");
	ck_assert_str_eq(a.message, "");
	a = ask("UPDATE", "virtualservices", VS_OK, false);
	ck_assert(a.allowed);
}
END_TEST

START_TEST(invalid_object_denied_with_istio_message)
{
	struct answer a = ask("CREATE", "virtualservices", VS_BAD, false);

	ck_assert_int_eq(a.rc, 0);
	ck_assert_msg(!a.allowed, "%s", a.raw);
	ck_assert_str_eq(a.uid, "u-1");
	ck_assert_msg(strncmp(a.message, "configuration is invalid: ", 26) == 0, "%s", a.message);
	/* kind ns/name and the field path of the finding */
	ck_assert_msg(strstr(a.message, "VirtualService demo/bad: spec.http[0].route[0].weight"), "%s", a.message);
}
END_TEST

START_TEST(several_errors_in_multierror_format)
{
	const char *obj = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
			  "\"metadata\":{\"name\":\"dr\",\"namespace\":\"demo\"},"
			  "\"spec\":{\"host\":\"\",\"subsets\":[{\"name\":\"\"}]}}";
	struct answer a = ask("CREATE", "destinationrules", obj, false);
	int n = 0;

	ck_assert_msg(!a.allowed, "%s", a.raw);
	ck_assert_msg(sscanf(a.message, "configuration is invalid: %d errors occurred:\n\t* ", &n) == 1 && n >= 2,
		      "%s", a.message);
	ck_assert_msg(strstr(a.message, "\n\t* DestinationRule demo/dr: "), "%s", a.message);
	ck_assert_msg(a.message[strlen(a.message) - 1] == '\n', "%s", a.message);
}
END_TEST

START_TEST(delete_always_allowed)
{
	struct answer a = ask("DELETE", "virtualservices", VS_BAD, false);

	ck_assert(a.allowed);
	a = ask("DELETE", "virtualservices", "null", false);
	ck_assert(a.allowed);
	a = ask("CONNECT", "virtualservices", VS_BAD, false);
	ck_assert(a.allowed);
}
END_TEST

START_TEST(dry_run_judged_the_same)
{
	struct answer a = ask("CREATE", "virtualservices", VS_BAD, true);

	ck_assert(!a.allowed);
	ck_assert_msg(strncmp(a.message, "configuration is invalid: ", 26) == 0, "%s", a.message);
	a = ask("CREATE", "virtualservices", VS_OK, true);
	ck_assert(a.allowed);
}
END_TEST

START_TEST(unimplemented_istio_kind_allowed_with_warning)
{
	const char *obj = "{\"apiVersion\":\"networking.istio.io/v1alpha3\",\"kind\":\"EnvoyFilter\","
			  "\"metadata\":{\"name\":\"ef\",\"namespace\":\"demo\"},\"spec\":{}}";
	struct answer a = ask("CREATE", "envoyfilters", obj, false);

	ck_assert_msg(a.allowed, "%s", a.raw);
	ck_assert_uint_eq(a.n_warnings, 1);
	ck_assert_msg(strstr(a.warnings[0], "not implemented by meshd"), "%s", a.warnings[0]);
}
END_TEST

START_TEST(unknown_kind_unrecognized_type)
{
	const char *obj = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualSerivce\","
			  "\"metadata\":{\"name\":\"x\"},\"spec\":{}}";
	struct answer a = ask("CREATE", "virtualserivces", obj, false);

	ck_assert(!a.allowed);
	ck_assert_str_eq(a.message, "unrecognized type networking.istio.io/v1, Kind=VirtualSerivce");
	a = ask("CREATE", "pods", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}", false);
	ck_assert(!a.allowed);
	ck_assert_str_eq(a.message, "unrecognized type /v1, Kind=Pod");
}
END_TEST

START_TEST(always_reject_annotation)
{
	/* the patcher's readiness probe: an otherwise empty Gateway */
	const char *obj = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"Gateway\","
			  "\"metadata\":{\"name\":\"invalid-gateway\",\"namespace\":\"istio-system\","
			  "\"annotations\":{\"internal.istio.io/webhook-always-reject\":\"true\"}},\"spec\":{}}";
	struct answer a = ask("CREATE", "gateways", obj, true);

	ck_assert(!a.allowed);
	ck_assert_str_eq(a.message, "configuration is invalid: \"internal.istio.io/webhook-always-reject\" "
				    "annotation found, rejecting");
}
END_TEST

START_TEST(unknown_top_level_field)
{
	const char *obj = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
			  "\"metadata\":{\"name\":\"reviews\",\"namespace\":\"demo\"},"
			  "\"spec\":{\"hosts\":[\"reviews\"]},\"extra\":1}";
	struct answer a = ask("CREATE", "virtualservices", obj, false);

	ck_assert(!a.allowed);
	ck_assert_msg(strstr(a.message, "\"extra\""), "%s", a.message);
}
END_TEST

START_TEST(generate_name_judged)
{
	/* no name yet: the API server names it after admission */
	const char *ok = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
			 "\"metadata\":{\"generateName\":\"rev-\",\"namespace\":\"demo\",\"labels\":{\"a\":\"b\"}},"
			 "\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\"},"
			 "\"weight\":100}]}],\"exportTo\":[\".\"]}}";
	const char *bad = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
			  "\"metadata\":{\"generateName\":\"rev-\"},"
			  "\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\"},"
			  "\"weight\":-1}]}]}}";
	struct answer a = ask("CREATE", "virtualservices", ok, false);

	ck_assert_msg(a.allowed, "%s", a.raw);
	a = ask("CREATE", "virtualservices", bad, false);
	ck_assert(!a.allowed);
	ck_assert_msg(strstr(a.message, "VirtualService default/rev-x: spec.http[0].route[0].weight"), "%s", a.message);
	ck_assert_msg(!strstr(a.message, "metadata.name"), "%s", a.message);
}
END_TEST

START_TEST(malformed_reviews)
{
	struct answer a;
	struct mesh_buf out;

	mesh_buf_init(&out, 4096);
	ck_assert_int_eq(webhook_validate_handle(NULL, "", 0, &out), -EINVAL);
	ck_assert_str_eq(out.data, "no body found");
	mesh_buf_cleanup(&out);
	a = ask_raw("{not json");
	ck_assert_int_eq(a.rc, 0);
	ck_assert(!a.allowed);
	ck_assert_msg(strncmp(a.message, "could not decode body: ", 23) == 0, "%s", a.message);
	a = ask_raw("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}");
	ck_assert(!a.allowed);
	ck_assert_msg(strstr(a.message, "no request"), "%s", a.message);
	a = ask("CREATE", "virtualservices", "[1,2]", false);
	ck_assert(!a.allowed);
	ck_assert_msg(strncmp(a.message, "cannot decode configuration: ", 29) == 0, "%s", a.message);
	/* hostile shapes: never a crash, always an answer */
	{
		static char deep[4096];
		size_t i, n = 0;

		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"request\":{\"uid\":\"d\",\"operation\":\"CREATE\","
									   "\"object\":");
		for (i = 0; i < 300; i++)
			deep[n++] = '[';
		for (i = 0; i < 300; i++)
			deep[n++] = ']';
		snprintf(deep + n, sizeof(deep) - n, "}}");
		a = ask_raw(deep);
		ck_assert_int_eq(a.rc, 0);
		ck_assert(!a.allowed);
		ck_assert_msg(strncmp(a.message, "could not decode body: ", 23) == 0, "%s", a.message);
	}
	a = ask("CREATE", "virtualservices", "{\"apiVersion\":7,\"kind\":[],\"metadata\":\"x\"}", false);
	ck_assert(!a.allowed);
	ck_assert_msg(strncmp(a.message, "unrecognized type ", 18) == 0, "%s", a.message);
	a = ask("CREATE", "virtualservices", "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
					       "\"metadata\":7,\"spec\":\"x\"}", false);
	ck_assert(!a.allowed);
	ck_assert_msg(strncmp(a.message, "configuration is invalid: ", 26) == 0, "%s", a.message);
	a = ask_raw("{\"request\":{\"uid\":7,\"operation\":[],\"object\":{}}}");
	ck_assert(a.allowed); /* no CREATE/UPDATE: allowed, as istiod */
	/* v1beta1 reviews are answered as v1beta1 */
	a = ask_raw("{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{"
		    "\"uid\":\"b\",\"operation\":\"CREATE\",\"object\":" VS_OK "}}");
	ck_assert(a.allowed);
	ck_assert_str_eq(a.api_version, "admission.k8s.io/v1beta1");
	/* another version or kind: refused as istiod's deserializer refuses it,
	 * answered as v1 (it was judged and answered as "admission.k8s.io/v9") */
	a = ask_raw("{\"apiVersion\":\"admission.k8s.io/v9\",\"kind\":\"AdmissionReview\",\"request\":{"
		    "\"uid\":\"c\",\"operation\":\"CREATE\",\"object\":" VS_OK "}}");
	ck_assert(!a.allowed);
	ck_assert_msg(strstr(a.message, "no kind \"AdmissionReview\" is registered for version \"admission.k8s.io/v9\""),
		      "%s", a.message);
	ck_assert_str_eq(a.api_version, "admission.k8s.io/v1");
	a = ask_raw("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Deployment\",\"request\":{"
		    "\"uid\":\"c\",\"operation\":\"CREATE\",\"object\":" VS_OK "}}");
	ck_assert(!a.allowed);
	ck_assert_msg(strstr(a.message, "no kind \"Deployment\""), "%s", a.message);
}
END_TEST

START_TEST(counters)
{
	struct mesh_buf out;

	ask("CREATE", "virtualservices", VS_OK, false);
	ask("CREATE", "virtualservices", VS_BAD, false);
	ask("CREATE", "virtualservices", VS_BAD, true); /* dry run: not counted */
	mesh_buf_init(&out, 1 << 20);
	ck_assert_int_eq(webhook_validate_metrics(&out), 0);
	ck_assert_msg(strstr(out.data, "# TYPE galley_validation_passed counter\n"), "%s", out.data);
	ck_assert_msg(strstr(out.data, "galley_validation_passed{group=\"networking.istio.io\",resource=\"virtualservices\","
				       "version=\"v1\"} 1\n"), "%s", out.data);
	ck_assert_msg(strstr(out.data, "galley_validation_failed{group=\"networking.istio.io\",resource=\"virtualservices\","
				       "version=\"v1\",reason=\"invalid_resource\"} 1\n"), "%s", out.data);
	mesh_buf_cleanup(&out);
	mesh_buf_init(&out, 64);
	ck_assert_int_eq(webhook_validate_handle(NULL, "", 0, &out), -EINVAL);
	mesh_buf_cleanup(&out);
	mesh_buf_init(&out, 1 << 20);
	webhook_validate_metrics(&out);
	ck_assert_msg(strstr(out.data, "galley_validation_http_error{status=\"400\"} 1\n"), "%s", out.data);
	mesh_buf_cleanup(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("webhook_validate");
	TCase *tc = tcase_create("validate");
	TCase *tm = tcase_create("metrics");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, valid_object_allowed);
	tcase_add_test(tc, invalid_object_denied_with_istio_message);
	tcase_add_test(tc, several_errors_in_multierror_format);
	tcase_add_test(tc, delete_always_allowed);
	tcase_add_test(tc, dry_run_judged_the_same);
	tcase_add_test(tc, unimplemented_istio_kind_allowed_with_warning);
	tcase_add_test(tc, unknown_kind_unrecognized_type);
	tcase_add_test(tc, always_reject_annotation);
	tcase_add_test(tc, unknown_top_level_field);
	tcase_add_test(tc, generate_name_judged);
	tcase_add_test(tc, malformed_reviews);
	tcase_add_test(tm, counters);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tm);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
