/*
 * test_gateway.c - the Gateway kind (networking.istio.io v1, v1beta1,
 * v1alpha3): every field decodes into struct cfg_gateway as the gateway
 * generator reads it, and the Gateways of the real user YAML in
 * tests/data/seed-yaml decode to the servers and hosts they were written
 * with.  Istio's validation rules are table cases in
 * tests/data/validation/cases.txt (test_validation.c).  Run from the
 * repository root.
 */
#include "controlplane/config/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED "tests/data/seed-yaml/"

static struct cfg_parse_result res;

static void teardown(void)
{
	cfg_parse_result_cleanup(&res);
}

static void dump_errors(void)
{
	char line[1024];
	size_t i;

	for (i = 0; i < res.n_errors; i++) {
		cfg_error_format(&res.errors[i], line, sizeof(line));
		fprintf(stderr, "  %s\n", line);
	}
}

static void parse_str(const char *text)
{
	ck_assert_int_eq(cfg_parse_buffer("inline.yaml", text, strlen(text), &res), 0);
}

/* no errors (warnings allowed) and n objects */
static void expect_clean(size_t n_objects)
{
	size_t i, n = 0;

	for (i = 0; i < res.n_errors; i++)
		n += !res.errors[i].warning;
	if (n)
		dump_errors();
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(res.n_objects, n_objects);
}

static const struct cfg_gateway *only_gateway(void)
{
	ck_assert_uint_eq(res.n_objects, 1);
	ck_assert_int_eq(res.objects[0]->kind, CFG_GATEWAY);
	return &res.objects[0]->spec.gw;
}

/* ---------------------------------------------------------------- decode */

static const char gw_full[] =
	"apiVersion: networking.istio.io/v1\n"
	"kind: Gateway\n"
	"metadata: {name: edge, namespace: istio-system}\n"
	"spec:\n"
	"  selector: {istio: ingressgateway, app: edge}\n"
	"  servers:\n"
	"  - port: {number: 80, name: http, protocol: http}\n"
	"    hosts: [\"*\"]\n"
	"    tls: {httpsRedirect: true}\n"
	"  - port: {number: 443, name: https, protocol: HTTPS}\n"
	"    name: main-https\n"
	"    bind: 10.1.2.3\n"
	"    defaultEndpoint: 127.0.0.1:8080\n"
	"    hosts: [\"./a.example.com\", \"prod/b.example.com\", \"*/c.example.com\", \"*.d.example.com\"]\n"
	"    tls:\n"
	"      mode: MUTUAL\n"
	"      serverCertificate: /etc/certs/tls.crt\n"
	"      privateKey: /etc/certs/tls.key\n"
	"      caCertificates: /etc/certs/ca.crt\n"
	"      subjectAltNames: [spiffe://cluster.local/ns/a/sa/b, client.example.com]\n"
	"      verifyCertificateSpki: [\"Tq8+4fA+0cfIM5MjpmgBA/SbpzQUDwr7RlsRKL1VtVY=\"]\n"
	"      verifyCertificateHash: [\"DF:A0:D3:C1\", \"2A:3B\"]\n"
	"      minProtocolVersion: TLSV1_2\n"
	"      maxProtocolVersion: TLSV1_3\n"
	"      cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384]\n"
	"  - port: {number: 8443, name: tls-cred, protocol: TLS}\n"
	"    hosts: [\"*.e.example.com\"]\n"
	"    tls: {mode: SIMPLE, credentialName: e-cert}\n"
	"  - port: {number: 15443, name: tls-auto, protocol: TLS}\n"
	"    hosts: [\"*.local\"]\n"
	"    tls: {mode: AUTO_PASSTHROUGH}\n"
	"  - port: {number: 9443, name: tls-pass, protocol: TLS}\n"
	"    hosts: [\"f.example.com\"]\n"
	"    tls: {}\n"
	"  - port: {number: 15012, name: tls-mesh, protocol: Grpc}\n"
	"    hosts: [\"*\"]\n";

START_TEST(test_decode_every_field)
{
	const struct cfg_gateway *gw;
	const struct cfg_gw_server *s;

	parse_str(gw_full);
	expect_clean(1);
	gw = only_gateway();
	ck_assert_str_eq(res.objects[0]->ns, "istio-system");
	ck_assert_uint_eq(gw->selector.n, 2);
	ck_assert_str_eq(gw->selector.v[0].key, "istio");
	ck_assert_str_eq(gw->selector.v[0].value, "ingressgateway");
	ck_assert_str_eq(gw->selector.v[1].key, "app");
	ck_assert_str_eq(gw->selector.v[1].value, "edge");
	ck_assert_uint_eq(gw->n_servers, 6);

	/* 80: protocol upper-cased, tls block with httpsRedirect only */
	s = &gw->servers[0];
	ck_assert_uint_eq(s->port, 80);
	ck_assert_str_eq(s->port_name, "http");
	ck_assert_str_eq(s->protocol, "HTTP");
	ck_assert_uint_eq(s->target_port, 0);
	ck_assert_ptr_null(s->bind);
	ck_assert_ptr_null(s->default_endpoint);
	ck_assert_ptr_null(s->name);
	ck_assert_uint_eq(s->hosts.n, 1);
	ck_assert_str_eq(s->hosts.v[0], "*");
	ck_assert(s->has_tls);
	ck_assert(s->tls.https_redirect);
	ck_assert_int_eq(s->tls.mode, CFG_GW_TLS_NONE);
	ck_assert_ptr_null(s->tls.credential_name);
	ck_assert_ptr_null(s->tls.server_certificate);

	/* 443: every field */
	s = &gw->servers[1];
	ck_assert_uint_eq(s->port, 443);
	ck_assert_str_eq(s->port_name, "https");
	ck_assert_str_eq(s->protocol, "HTTPS");
	ck_assert_uint_eq(s->target_port, 0); /* targetPort is an error in Istio: gw-target-port case */
	ck_assert_str_eq(s->name, "main-https");
	ck_assert_str_eq(s->bind, "10.1.2.3");
	ck_assert_str_eq(s->default_endpoint, "127.0.0.1:8080");
	ck_assert_uint_eq(s->hosts.n, 4);
	ck_assert_str_eq(s->hosts.v[0], "./a.example.com");
	ck_assert_str_eq(s->hosts.v[1], "prod/b.example.com");
	ck_assert_str_eq(s->hosts.v[2], "*/c.example.com");
	ck_assert_str_eq(s->hosts.v[3], "*.d.example.com");
	ck_assert(s->has_tls);
	ck_assert(!s->tls.https_redirect);
	ck_assert_int_eq(s->tls.mode, CFG_GW_TLS_MUTUAL);
	ck_assert_ptr_null(s->tls.credential_name);
	ck_assert_str_eq(s->tls.server_certificate, "/etc/certs/tls.crt");
	ck_assert_str_eq(s->tls.private_key, "/etc/certs/tls.key");
	ck_assert_str_eq(s->tls.ca_certificates, "/etc/certs/ca.crt");
	ck_assert_uint_eq(s->tls.subject_alt_names.n, 2);
	ck_assert_str_eq(s->tls.subject_alt_names.v[0], "spiffe://cluster.local/ns/a/sa/b");
	ck_assert_str_eq(s->tls.subject_alt_names.v[1], "client.example.com");
	ck_assert_uint_eq(s->tls.verify_certificate_spki.n, 1);
	ck_assert_str_eq(s->tls.verify_certificate_spki.v[0], "Tq8+4fA+0cfIM5MjpmgBA/SbpzQUDwr7RlsRKL1VtVY=");
	ck_assert_uint_eq(s->tls.verify_certificate_hash.n, 2);
	ck_assert_str_eq(s->tls.verify_certificate_hash.v[1], "2A:3B");
	ck_assert_int_eq(s->tls.min_version, CFG_GW_TLSV1_2);
	ck_assert_int_eq(s->tls.max_version, CFG_GW_TLSV1_3);
	ck_assert_uint_eq(s->tls.cipher_suites.n, 2);
	ck_assert_str_eq(s->tls.cipher_suites.v[0], "ECDHE-ECDSA-AES256-GCM-SHA384");

	/* credentialName */
	s = &gw->servers[2];
	ck_assert_str_eq(s->protocol, "TLS");
	ck_assert_int_eq(s->tls.mode, CFG_GW_TLS_SIMPLE);
	ck_assert_str_eq(s->tls.credential_name, "e-cert");
	ck_assert_ptr_null(s->tls.server_certificate);
	ck_assert_int_eq(s->tls.min_version, CFG_GW_TLS_AUTO);
	ck_assert_int_eq(s->tls.max_version, CFG_GW_TLS_AUTO);

	ck_assert_int_eq(gw->servers[3].tls.mode, CFG_GW_TLS_AUTO_PASSTHROUGH);
	/* a tls block without mode on a TLS port: Istio's zero value PASSTHROUGH */
	ck_assert(gw->servers[4].has_tls);
	ck_assert_int_eq(gw->servers[4].tls.mode, CFG_GW_TLS_PASSTHROUGH);
	/* no tls block */
	s = &gw->servers[5];
	ck_assert_str_eq(s->protocol, "GRPC");
	ck_assert(!s->has_tls);
	ck_assert_int_eq(s->tls.mode, CFG_GW_TLS_NONE);
}
END_TEST

/* The other tls modes and versions, and the older API versions. */
START_TEST(test_decode_modes_versions)
{
	static const char *const versions[] = { "v1", "v1beta1", "v1alpha3" };
	char text[2048];
	const struct cfg_gateway *gw;

	snprintf(text, sizeof(text),
		 "apiVersion: networking.istio.io/%s\n"
		 "kind: Gateway\n"
		 "metadata: {name: mesh-gw, namespace: ns1}\n"
		 "spec:\n"
		 "  selector: {istio: eastwestgateway}\n"
		 "  servers:\n"
		 "  - port: {number: 15443, name: tls, protocol: TLS}\n"
		 "    hosts: [\"*.local\"]\n"
		 "    tls: {mode: ISTIO_MUTUAL, minProtocolVersion: TLSV1_0, maxProtocolVersion: TLSV1_1,\n"
		 "          cipherSuites: [AES128-SHA]}\n"
		 "  - port: {number: 443, name: https, protocol: HTTPS}\n"
		 "    hosts: [\"a.example.com\"]\n"
		 "    tls: {mode: OPTIONAL_MUTUAL, credentialName: a-cred, minProtocolVersion: TLS_AUTO}\n"
		 "  - port: {number: 8443, name: https-pass, protocol: HTTPS}\n"
		 "    hosts: [\"b.example.com\"]\n"
		 "    tls: {mode: PASSTHROUGH}\n",
		 versions[_i]);
	parse_str(text);
	expect_clean(1);
	gw = only_gateway();
	ck_assert_uint_eq(gw->n_servers, 3);
	ck_assert_int_eq(gw->servers[0].tls.mode, CFG_GW_TLS_ISTIO_MUTUAL);
	ck_assert_int_eq(gw->servers[0].tls.min_version, CFG_GW_TLSV1_0);
	ck_assert_int_eq(gw->servers[0].tls.max_version, CFG_GW_TLSV1_1);
	ck_assert_int_eq(gw->servers[1].tls.mode, CFG_GW_TLS_OPTIONAL_MUTUAL);
	ck_assert_str_eq(gw->servers[1].tls.credential_name, "a-cred");
	ck_assert_int_eq(gw->servers[1].tls.min_version, CFG_GW_TLS_AUTO);
	ck_assert_int_eq(gw->servers[2].tls.mode, CFG_GW_TLS_PASSTHROUGH);
}
END_TEST

/* An empty credentialName is unset (Istio's proto3 zero value). */
START_TEST(test_decode_empty_strings)
{
	const struct cfg_gateway *gw;

	parse_str("apiVersion: networking.istio.io/v1\n"
		  "kind: Gateway\n"
		  "metadata: {name: gw, namespace: ns1}\n"
		  "spec:\n"
		  "  servers:\n"
		  "  - port: {number: 443, name: https, protocol: HTTPS}\n"
		  "    hosts: [\"a.example.com\"]\n"
		  "    tls: {mode: SIMPLE, credentialName: \"\", serverCertificate: /c, privateKey: /k}\n");
	expect_clean(1);
	gw = only_gateway();
	ck_assert_uint_eq(gw->selector.n, 0);
	ck_assert_ptr_null(gw->servers[0].tls.credential_name);
	ck_assert_str_eq(gw->servers[0].tls.server_certificate, "/c");
}
END_TEST

static Suite *gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("decode");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_decode_every_field);
	tcase_add_loop_test(tc, test_decode_modes_versions, 0, 3);
	tcase_add_test(tc, test_decode_empty_strings);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(gateway_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
