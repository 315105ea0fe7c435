/*
 * test_secret.c - the core Kubernetes Secret kind (credentialName TLS
 * material for SDS): data decoded from base64 and stringData taken as is,
 * istiod's key names (tls.crt/tls.key/ca.crt, then cert/key/cacert),
 * a bad base64 value rejected with its field path, and the object's JSON
 * (what /debug/configz and meshctl show) keeping no value of the data.
 */
#include "controlplane/config/config.h"

#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cfg_parse_result res;

static void teardown(void)
{
	cfg_parse_result_cleanup(&res);
}

static void parse_str(const char *text)
{
	ck_assert_int_eq(cfg_parse_buffer("inline.yaml", text, strlen(text), &res), 0);
}

/* base64 of "-----BEGIN CERTIFICATE-----\nA\n" and of "KEY1" / "CA" */
#define B64_CERT "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkEK"
#define B64_KEY "S0VZMQ=="
#define B64_CA "Q0E="

START_TEST(tls_secret_decoded_and_redacted)
{
	const struct cfg_object *o;

	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: gw, namespace: edge}\n"
		  "type: kubernetes.io/tls\n"
		  "data:\n  tls.crt: " B64_CERT "\n  tls.key: " B64_KEY "\n  ca.crt: " B64_CA "\n");
	ck_assert_uint_eq(res.n_errors, 0);
	ck_assert_uint_eq(res.n_objects, 1);
	o = res.objects[0];
	ck_assert_int_eq(o->kind, CFG_K8S_SECRET);
	ck_assert_str_eq(o->ns, "edge");
	ck_assert_str_eq(o->spec.secret.type, "kubernetes.io/tls");
	ck_assert_str_eq(o->spec.secret.cert, "-----BEGIN CERTIFICATE-----\nA\n");
	ck_assert_str_eq(o->spec.secret.key, "KEY1");
	ck_assert_str_eq(o->spec.secret.cacert, "CA");
	ck_assert_ptr_null(strstr(o->json, B64_KEY));
	ck_assert_ptr_null(strstr(o->json, B64_CERT));
	ck_assert_ptr_null(strstr(o->json, "KEY1"));
	ck_assert_ptr_nonnull(strstr(o->json, "\"name\":\"gw\""));
	ck_assert_ptr_nonnull(strstr(o->json, "\"tls\":[\"cert\",\"key\",\"cacert\"]"));
}
END_TEST

/* Two Secrets differing only in the key hash differently: a change is seen. */
START_TEST(key_change_changes_the_hash)
{
	uint64_t h1;

	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: gw}\ndata: {tls.key: " B64_KEY "}\n");
	ck_assert_uint_eq(res.n_objects, 1);
	h1 = res.objects[0]->hash;
	cfg_parse_result_cleanup(&res);
	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: gw}\ndata: {tls.key: " B64_CA "}\n");
	ck_assert_uint_eq(res.n_objects, 1);
	ck_assert_uint_ne(res.objects[0]->hash, h1);
}
END_TEST

START_TEST(generic_and_string_data)
{
	const struct cfg_object *o;

	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: cred, namespace: app}\n"
		  "stringData: {cert: PLAIN-CERT}\ndata: {key: " B64_KEY ", cacert: " B64_CA "}\n");
	ck_assert_uint_eq(res.n_errors, 0);
	o = res.objects[0];
	ck_assert_str_eq(o->spec.secret.type, "Opaque");
	ck_assert_str_eq(o->spec.secret.cert, "PLAIN-CERT");
	ck_assert_str_eq(o->spec.secret.key, "KEY1");
	ck_assert_str_eq(o->spec.secret.cacert, "CA");
	cfg_parse_result_cleanup(&res);
	/* no TLS keys at all: a Secret meshd keeps with nothing to serve */
	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {password: " B64_CA "}\n");
	ck_assert_uint_eq(res.n_errors, 0);
	ck_assert_ptr_null(res.objects[0]->spec.secret.cert);
	ck_assert_ptr_null(res.objects[0]->spec.secret.key);
	ck_assert_ptr_null(strstr(res.objects[0]->json, B64_CA));
}
END_TEST

START_TEST(bad_base64_rejected_with_its_path)
{
	size_t i;
	int found = 0;

	parse_str("apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata:\n  tls.crt: \"not base64!\"\n");
	ck_assert_uint_eq(res.n_objects, 0);
	for (i = 0; i < res.n_errors; i++)
		if (res.errors[i].field && strcmp(res.errors[i].field, "data[\"tls.crt\"]") == 0 &&
		    strstr(res.errors[i].message, "base64"))
			found = 1;
	ck_assert_msg(found, "no error at data[\"tls.crt\"]");
	/* the message never echoes the value */
	for (i = 0; i < res.n_errors; i++)
		ck_assert_ptr_null(strstr(res.errors[i].message, "not base64!"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_secret");
	TCase *tc = tcase_create("secret");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, tls_secret_decoded_and_redacted);
	tcase_add_test(tc, key_change_changes_the_hash);
	tcase_add_test(tc, generic_and_string_data);
	tcase_add_test(tc, bad_base64_rejected_with_its_path);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
