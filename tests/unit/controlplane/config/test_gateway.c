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
#include "controlplane/config/store.h"

#include "common/pem.h"

#include "testutil.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The other certificate sources: credentialNames, tlsCertificates, caCrl. */
START_TEST(test_decode_cert_sources)
{
	const struct cfg_gateway *gw;
	const struct cfg_gw_tls *t;

	parse_str("apiVersion: networking.istio.io/v1\n"
		  "kind: Gateway\n"
		  "metadata: {name: gw, namespace: ns1}\n"
		  "spec:\n"
		  "  servers:\n"
		  "  - port: {number: 443, name: https, protocol: HTTPS}\n"
		  "    hosts: [\"a.example.com\"]\n"
		  "    tls: {mode: OPTIONAL_MUTUAL, credentialNames: [a-rsa, a-ecdsa]}\n"
		  "  - port: {number: 8443, name: https-files, protocol: HTTPS}\n"
		  "    hosts: [\"b.example.com\"]\n"
		  "    tls:\n"
		  "      mode: MUTUAL\n"
		  "      caCertificates: /ca.pem\n"
		  "      caCrl: /crl.pem\n"
		  "      tlsCertificates:\n"
		  "      - {serverCertificate: /rsa.crt, privateKey: /rsa.key}\n"
		  "      - {serverCertificate: /ec.crt, privateKey: /ec.key, caCertificates: /ec-ca.pem}\n");
	expect_clean(1);
	gw = only_gateway();
	t = &gw->servers[0].tls;
	ck_assert_int_eq(t->mode, CFG_GW_TLS_OPTIONAL_MUTUAL);
	ck_assert_ptr_null(t->credential_name);
	ck_assert_uint_eq(t->credential_names.n, 2);
	ck_assert_str_eq(t->credential_names.v[0], "a-rsa");
	ck_assert_str_eq(t->credential_names.v[1], "a-ecdsa");
	ck_assert_uint_eq(t->n_tls_certificates, 0);
	ck_assert_ptr_null(t->ca_crl);
	t = &gw->servers[1].tls;
	ck_assert_uint_eq(t->credential_names.n, 0);
	ck_assert_str_eq(t->ca_crl, "/crl.pem");
	ck_assert_str_eq(t->ca_certificates, "/ca.pem");
	ck_assert_uint_eq(t->n_tls_certificates, 2);
	ck_assert_str_eq(t->tls_certificates[0].server_certificate, "/rsa.crt");
	ck_assert_str_eq(t->tls_certificates[0].private_key, "/rsa.key");
	ck_assert_ptr_null(t->tls_certificates[0].ca_certificates);
	ck_assert_str_eq(t->tls_certificates[1].server_certificate, "/ec.crt");
	ck_assert_str_eq(t->tls_certificates[1].ca_certificates, "/ec-ca.pem");
	ck_assert_int_eq(gw->servers[0].line, 6);
	ck_assert_int_eq(gw->servers[1].line, 9);
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

/* ---------------------------------------------------------------- seed YAML */

/* Every seed file: the Gateways it holds decode with the servers and
 * hosts they were written with (003/02.yaml, the only one: the ingress
 * gateway a4co/a4co-gateway, 80 plain and 443 SIMPLE with credentialName),
 * and no Gateway document of them is rejected. */
START_TEST(test_seed_gateways)
{
	static const char *const files[] = {
		"000/01.yaml", "000/02.yaml", "000/03.yaml", "000/04.yaml", "000/05.yaml", "000/06.yaml", "000/07.yaml",
		"001/01.yaml", "001/02.yaml", "001/03.yaml", "001/04.yaml", "001/05.yaml", "001/06.yaml", "001/07.yaml",
		"001/08.yaml", "001/09.yaml", "001/10.yaml", "001/11.yaml", "001/12.yaml", "003/01.yaml", "003/02.yaml",
		"003/03.yaml", "003/04.yaml", "003/05.yaml", "003/06.yaml", "003/07.yaml", "003/08.yaml", "003/09.yaml",
		"003/10.yaml", "003/11.yaml", "003/12.yaml", "003/13.yaml",
	};
	size_t f, i, n_gw = 0, n_servers = 0, n_hosts = 0;
	const struct cfg_gateway *a4co = NULL;
	char path[256];

	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		snprintf(path, sizeof(path), SEED "%s", files[f]);
		ck_assert_int_eq(cfg_parse_file(path, &res), 0);
		for (i = 0; i < res.n_errors; i++)
			ck_assert_msg(res.errors[i].kind != CFG_GATEWAY || res.errors[i].warning, "%s: %s", files[f],
				      res.errors[i].message);
		for (i = 0; i < res.n_objects; i++) {
			const struct cfg_object *o = res.objects[i];
			size_t s;

			if (o->kind != CFG_GATEWAY)
				continue;
			n_gw++;
			n_servers += o->spec.gw.n_servers;
			for (s = 0; s < o->spec.gw.n_servers; s++)
				n_hosts += o->spec.gw.servers[s].hosts.n;
			if (!strcmp(o->ns, "a4co") && !strcmp(o->name, "a4co-gateway")) {
				const struct cfg_gw_server *sv = o->spec.gw.servers;

				a4co = &o->spec.gw;
				ck_assert_uint_eq(a4co->selector.n, 1);
				ck_assert_str_eq(a4co->selector.v[0].key, "istio");
				ck_assert_str_eq(a4co->selector.v[0].value, "ingressgateway");
				ck_assert_uint_eq(a4co->n_servers, 2);
				ck_assert_uint_eq(sv[0].port, 80);
				ck_assert_str_eq(sv[0].protocol, "HTTP");
				ck_assert_str_eq(sv[0].port_name, "http");
				ck_assert(!sv[0].has_tls);
				ck_assert_uint_eq(sv[0].hosts.n, 2);
				ck_assert_str_eq(sv[0].hosts.v[0], "*.a4co.local");
				ck_assert_str_eq(sv[0].hosts.v[1], "a4co.local");
				ck_assert_uint_eq(sv[1].port, 443);
				ck_assert_str_eq(sv[1].protocol, "HTTPS");
				ck_assert(sv[1].has_tls);
				ck_assert_int_eq(sv[1].tls.mode, CFG_GW_TLS_SIMPLE);
				ck_assert_str_eq(sv[1].tls.credential_name, "a4co-tls-cert");
				ck_assert_uint_eq(sv[1].hosts.n, 1);
				ck_assert_str_eq(sv[1].hosts.v[0], "*.a4co.local");
			}
		}
		cfg_parse_result_cleanup(&res);
	}
	ck_assert_ptr_nonnull(a4co);
	ck_assert_uint_eq(n_gw, 1);
	ck_assert_uint_eq(n_servers, 2);
	ck_assert_uint_eq(n_hosts, 3);
}
END_TEST

/* ---------------------------------------------------------------- between Gateways */

/* The Gateways of text, served by a store; the snapshot's findings. */
static struct cfg_snapshot *serve(const char *text, struct cfg_store **store)
{
	struct cfg_parse_result r;
	struct cfg_snapshot *snap;

	*store = cfg_store_new();
	ck_assert_ptr_nonnull(*store);
	ck_assert_int_eq(cfg_parse_buffer("gw.yaml", text, strlen(text), &r), 0);
	ck_assert_int_ge(cfg_store_apply_origin(*store, "gw.yaml", &r), 0);
	cfg_parse_result_cleanup(&r);
	snap = cfg_store_snapshot(*store);
	ck_assert_ptr_nonnull(snap);
	return snap;
}

/* the number of findings of ns/name at field whose message has text
 * (all warnings: nothing between Gateways rejects one) */
static size_t findings(const struct cfg_snapshot *snap, const char *name, const char *field, const char *text)
{
	size_t i, n = 0;

	for (i = 0; i < snap->n_errors; i++) {
		const struct cfg_error *e = &snap->errors[i];
		if (!e->name || strcmp(e->name, name) || !e->field || strcmp(e->field, field) ||
		    !strstr(e->message, text))
			continue;
		ck_assert(e->warning);
		n++;
	}
	return n;
}

/* every finding of the snapshot but the not-implemented notes */
static size_t all_findings(const struct cfg_snapshot *snap)
{
	size_t i, n = 0;

	for (i = 0; i < snap->n_errors; i++)
		n += snap->errors[i].field != NULL;
	return n;
}

/* the findings named after one of istioctl analyze's messages (IST0...) */
static size_t analyze_findings(const struct cfg_snapshot *snap)
{
	size_t i, n = 0;

	for (i = 0; i < snap->n_errors; i++)
		n += strstr(snap->errors[i].message, " (IST0") != NULL;
	return n;
}

#define GW_HEAD(name, created, selector)                                                       \
	"apiVersion: networking.istio.io/v1\nkind: Gateway\n"                                   \
	"metadata: {name: " name ", namespace: ns1, creationTimestamp: \"" created "\"}\n"      \
	"spec:\n  selector: " selector "\n  servers:\n"

/* istioctl analyze's ConflictingGateways: same selector (labels in any
 * order), same port, a host in common and the same bind; reported on
 * both Gateways, with the sorted selector. */
START_TEST(test_conflicting_gateways)
{
	static const char text[] =
		GW_HEAD("gw-a", "2024-01-01T00:00:00Z", "{istio: ingressgateway, app: x}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [a.example.com, c.example.com]\n"
		"---\n"
		GW_HEAD("gw-b", "2024-02-01T00:00:00Z", "{app: x, istio: ingressgateway}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [b.example.com, a.example.com]\n"
		"  - port: {number: 8080, name: http-alt, protocol: HTTP}\n"
		"    hosts: [c.example.com]\n"
		"---\n"
		/* another selector: no conflict */
		GW_HEAD("gw-c", "2024-03-01T00:00:00Z", "{istio: other}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [a.example.com]\n"
		"---\n"
		/* another bind: no conflict */
		GW_HEAD("gw-d", "2024-04-01T00:00:00Z", "{istio: ingressgateway, app: x}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    bind: 10.0.0.1\n"
		"    hosts: [a.example.com]\n";
	struct cfg_store *store;
	struct cfg_snapshot *snap = serve(text, &store);

	ck_assert_uint_eq(snap->n_objects[CFG_GATEWAY], 4);
	ck_assert_uint_eq(findings(snap, "gw-a", "spec.servers[0]",
				   "ConflictingGateways (IST0145): Conflict with gateways ns1/gw-b (workload selector "
				   "app=x,istio=ingressgateway, port 80, hosts a.example.com,c.example.com)."), 1);
	ck_assert_uint_eq(findings(snap, "gw-b", "spec.servers[0]",
				   "Conflict with gateways ns1/gw-a (workload selector app=x,istio=ingressgateway, port "
				   "80, hosts b.example.com,a.example.com)."), 1);
	ck_assert_uint_eq(all_findings(snap), 2);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
}
END_TEST

/* What istiod's mergeGateways skips, oldest Gateway first: a TCP server
 * on the port of an HTTP one (same bind), and a TLS server whose host
 * (after "./" and "*" + "/" are resolved) an older TLS server on the port
 * already has.  HTTP-family servers on one port merge. */
START_TEST(test_merge_conflicts)
{
	static const char text[] =
		GW_HEAD("old", "2024-01-01T00:00:00Z", "{istio: ingressgateway}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [a.example.com]\n"
		"  - port: {number: 443, name: https, protocol: HTTPS}\n"
		"    hosts: [\"./s.example.com\"]\n"
		"    tls: {mode: SIMPLE, credentialName: s}\n"
		"---\n"
		GW_HEAD("new", "2024-02-01T00:00:00Z", "{istio: ingressgateway}")
		"  - port: {number: 80, name: grpc, protocol: GRPC}\n"
		"    hosts: [g.example.com]\n"
		"  - port: {number: 80, name: tcp, protocol: TCP}\n"
		"    hosts: [t.example.com]\n"
		"  - port: {number: 443, name: https, protocol: HTTPS}\n"
		"    hosts: [x.example.com, \"ns1/s.example.com\"]\n"
		"    tls: {mode: SIMPLE, credentialName: x}\n"
		"  - port: {number: 443, name: https-y, protocol: HTTPS}\n"
		"    hosts: [y.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: y}\n"
		"  - port: {number: 443, name: https-z, protocol: HTTPS}\n"
		"    bind: 10.0.0.2\n"
		"    hosts: [\"ns1/s.example.com\"]\n"
		"    tls: {mode: SIMPLE, credentialName: z}\n";
	struct cfg_store *store;
	struct cfg_snapshot *snap = serve(text, &store);

	ck_assert_uint_eq(snap->n_objects[CFG_GATEWAY], 2);
	ck_assert_uint_eq(findings(snap, "new", "spec.servers[1]",
				   "skipping server on gateway ns1/new port tcp.80.TCP: conflict with existing server "
				   "http.80.HTTP of Gateway ns1/old (same port and bind, protocols HTTP and TCP cannot be "
				   "merged"), 1);
	ck_assert_uint_eq(findings(snap, "new", "spec.servers[2]",
				   "skipping server on gateway ns1/new, duplicate host names: [ns1/s.example.com] "
				   "(already served on port 443 by server 1 of Gateway ns1/old"), 1);
	ck_assert_uint_eq(all_findings(snap), 2);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
}
END_TEST

/* Two TCP servers on one port and bind do not merge either (Istio's
 * canMergeProtocols wants HTTP), even within one Gateway. */
START_TEST(test_merge_tcp_tcp)
{
	static const char text[] =
		GW_HEAD("tcp", "2024-01-01T00:00:00Z", "{istio: ingressgateway}")
		"  - port: {number: 31400, name: tcp-a, protocol: TCP}\n"
		"    hosts: [a.example.com]\n"
		"  - port: {number: 31400, name: tcp-b, protocol: TCP}\n"
		"    hosts: [b.example.com]\n";
	struct cfg_store *store;
	struct cfg_snapshot *snap = serve(text, &store);

	ck_assert_uint_eq(findings(snap, "tcp", "spec.servers[1]", "conflict with existing server tcp-a.31400.TCP of "
				   "Gateway ns1/tcp (same port and bind, protocols TCP and TCP cannot be merged"), 1);
	ck_assert_uint_eq(all_findings(snap), 1);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
}
END_TEST

/* ---------------------------------------------------------------- credentialName Secrets */

/* A self-signed P-256 certificate and its key, PEM, made at test time. */
static void make_cert(char **cert, char **key)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(x);
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	ck_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					     (const unsigned char *)"gw.example.com", -1, -1, 0));
	ck_assert(X509_set_issuer_name(x, X509_get_subject_name(x)));
	ck_assert(X509_set_pubkey(x, k));
	ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
	*cert = mesh_pem_from_x509(x);
	*key = mesh_pem_from_key(k);
	ck_assert_ptr_nonnull(*cert);
	ck_assert_ptr_nonnull(*key);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* "    " before every line of pem, into out (a YAML block scalar's body) */
static void indent(const char *pem, char *out, size_t cap)
{
	size_t len = 0;

	while (*pem && len + 8 < cap) {
		const char *nl = strchr(pem, '\n');
		size_t n = nl ? (size_t)(nl - pem) + 1 : strlen(pem);
		ck_assert(len + 4 + n < cap);
		memcpy(out + len, "    ", 4);
		memcpy(out + len + 4, pem, n);
		len += 4 + n;
		pem += n;
	}
	out[len] = '\0';
}

/* a Secret ns/name with stringData keys: tls.crt/tls.key when cert, ca.crt when ca */
static void add_secret(char *text, size_t cap, const char *ns, const char *name, const char *cert, const char *key,
		       const char *ca)
{
	char c[4096], k[4096], a[4096];
	size_t len = strlen(text);

	indent(cert ? cert : "", c, sizeof(c));
	indent(key ? key : "", k, sizeof(k));
	indent(ca ? ca : "", a, sizeof(a));
	snprintf(text + len, cap - len,
		 "---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: Opaque\nstringData:\n"
		 "%s%s%s%s%s%s",
		 name, ns, cert ? "  tls.crt: |\n" : "", cert ? c : "", key ? "  tls.key: |\n" : "", key ? k : "",
		 ca ? "  ca.crt: |\n" : "", ca ? a : "");
	ck_assert_uint_lt(strlen(text), cap - 1);
}

/* istioctl analyze's SecretAnalyzer, in the namespace of the gateway
 * workload (the Pod the selector matches, not the Gateway's namespace),
 * and the CA a MUTUAL credential needs (istiod's GetCaCert). */
START_TEST(test_credential_secrets)
{
	static const char gw[] =
		"apiVersion: v1\nkind: Pod\n"
		"metadata: {name: ingress-1, namespace: istio-system, labels: {istio: ingressgateway, app: gw}}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: apps}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 443, name: s0, protocol: HTTPS}\n    hosts: [s0.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: good}\n"
		"  - port: {number: 443, name: s1, protocol: HTTPS}\n    hosts: [s1.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: missing}\n"
		"  - port: {number: 443, name: s2, protocol: HTTPS}\n    hosts: [s2.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: bad}\n"
		"  - port: {number: 443, name: s3, protocol: HTTPS}\n    hosts: [s3.example.com]\n"
		"    tls: {mode: MUTUAL, credentialName: good}\n"
		"  - port: {number: 443, name: s4, protocol: HTTPS}\n    hosts: [s4.example.com]\n"
		"    tls: {mode: MUTUAL, credentialName: with-ca}\n"
		"  - port: {number: 443, name: s5, protocol: HTTPS}\n    hosts: [s5.example.com]\n"
		"    tls: {mode: OPTIONAL_MUTUAL, credentialName: split}\n"
		"  - port: {number: 443, name: s6, protocol: HTTPS}\n    hosts: [s6.example.com]\n"
		"    tls: {mode: SIMPLE, credentialNames: [good, missing2]}\n"
		"  - port: {number: 443, name: s7, protocol: HTTPS}\n    hosts: [s7.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: apps/in-apps}\n"
		"---\n"
		/* selects no Pod: nothing to say about its Secrets */
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: nopod, namespace: apps}\n"
		"spec:\n  selector: {istio: egressgateway}\n  servers:\n"
		"  - port: {number: 443, name: s0, protocol: HTTPS}\n    hosts: [x.example.com]\n"
		"    tls: {mode: SIMPLE, credentialName: missing}\n";
	static char text[64 * 1024];
	char *cert, *key;
	struct cfg_store *store;
	struct cfg_snapshot *snap;

	make_cert(&cert, &key);
	snprintf(text, sizeof(text), "%s", gw);
	add_secret(text, sizeof(text), "istio-system", "good", cert, key, NULL);
	add_secret(text, sizeof(text), "istio-system", "bad", "not a certificate\n", key, NULL);
	add_secret(text, sizeof(text), "istio-system", "with-ca", cert, key, cert);
	add_secret(text, sizeof(text), "istio-system", "split", cert, key, NULL);
	add_secret(text, sizeof(text), "istio-system", "split-cacert", NULL, NULL, cert);
	add_secret(text, sizeof(text), "apps", "in-apps", cert, key, NULL);
	/* the Gateway's own namespace does not count */
	add_secret(text, sizeof(text), "apps", "missing", cert, key, NULL);
	snap = serve(text, &store);
	ck_assert_uint_eq(snap->n_objects[CFG_GATEWAY], 2);
	ck_assert_uint_eq(snap->n_objects[CFG_K8S_SECRET], 7);
	ck_assert_uint_eq(findings(snap, "edge", "spec.servers[1].tls.credentialName",
				   "ReferencedResourceNotFound (IST0101): Referenced credentialName not found: \"missing\" "
				   "(no Secret istio-system/missing: the namespace of gateway workload Pod "
				   "istio-system/ingress-1)"), 1);
	ck_assert_uint_eq(findings(snap, "edge", "spec.servers[2].tls.credentialName",
				   "InvalidGatewayCredential (IST0161): The credential referenced by the Gateway edge in "
				   "namespace istio-system is invalid"), 1);
	ck_assert_uint_eq(findings(snap, "edge", "spec.servers[3].tls.credentialName",
				   "MUTUAL TLS with credentialName \"good\": no CA certificate to verify clients with "
				   "(istiod takes ca.crt or cacert from Secret istio-system/good-cacert, else from "
				   "istio-system/good"), 1);
	ck_assert_uint_eq(findings(snap, "edge", "spec.servers[6].tls.credentialNames[1]",
				   "Referenced credentialName not found: \"missing2\""), 1);
	ck_assert_uint_eq(all_findings(snap), 4);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
	free(cert);
	free(key);
}
END_TEST

/* istioctl analyze's VirtualService GatewayAnalyzer, with names resolved
 * as istiod's resolveGatewayName: a gateway that does not exist, and one
 * whose hosts (as seen from the VirtualService's namespace) match none of
 * the VirtualService's. */
START_TEST(test_vs_gateways)
{
	static const char text[] =
		GW_HEAD("edge", "2024-01-01T00:00:00Z", "{istio: edge}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [\"*.example.com\"]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: istio-system}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [ns1/b.example.com, prod/c.example.com]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs1, namespace: ns1}\n"
		"spec:\n  hosts: [a.example.com]\n"
		"  gateways: [edge, ns1/edge, edge.ns1, edge.ns1.svc.cluster.local, mesh, missing]\n"
		"  http:\n  - route:\n    - destination: {host: a.example.com}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs2, namespace: ns1}\n"
		"spec:\n  hosts: [b.example.com]\n  gateways: [istio-system/ingress]\n"
		"  http:\n  - route:\n    - destination: {host: b.example.com}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs3, namespace: ns1}\n"
		"spec:\n  hosts: [c.example.com, d.example.com]\n  gateways: [istio-system/ingress]\n"
		"  http:\n  - route:\n    - destination: {host: c.example.com}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs4, namespace: prod}\n"
		"spec:\n  hosts: [c.example.com]\n  gateways: [istio-system/ingress]\n"
		"  http:\n  - route:\n    - destination: {host: c.example.com}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs5, namespace: ns1}\n"
		"spec:\n  hosts: [\"*\"]\n  gateways: [istio-system/ingress]\n"
		"  http:\n  - route:\n    - destination: {host: b.example.com}\n";
	struct cfg_store *store;
	struct cfg_snapshot *snap = serve(text, &store);

	ck_assert_uint_eq(snap->n_objects[CFG_VIRTUAL_SERVICE], 5);
	ck_assert_uint_eq(findings(snap, "vs1", "spec.gateways[5]",
				   "ReferencedResourceNotFound (IST0101): Referenced gateway not found: \"missing\" (no "
				   "Gateway ns1/missing"), 1);
	ck_assert_uint_eq(findings(snap, "vs3", "spec.gateways[0]",
				   "VirtualServiceHostNotFoundInGateway (IST0132): one or more host [c.example.com "
				   "d.example.com] defined in VirtualService ns1/vs3 not found in Gateway "
				   "istio-system/ingress."), 1);
	ck_assert_uint_eq(analyze_findings(snap), 2);
	/* and the legacy gateway names' warnings, nothing else */
	ck_assert_uint_eq(all_findings(snap), 4);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
}
END_TEST

/* meshctl validate prints the findings between Gateways beside the
 * others and still exits 0 (warnings reject nothing). */
START_TEST(test_meshctl_validate)
{
	static const char text[] =
		GW_HEAD("gw-a", "2024-01-01T00:00:00Z", "{istio: ingressgateway}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [a.example.com]\n"
		"---\n"
		GW_HEAD("gw-b", "2024-02-01T00:00:00Z", "{istio: ingressgateway}")
		"  - port: {number: 80, name: http, protocol: HTTP}\n"
		"    hosts: [a.example.com]\n";
	char dir[] = "/tmp/test_gateway_XXXXXX", path[64], args[128], out[8192];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/gw.yaml", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	ck_assert_int_eq(fclose(f), 0);
	snprintf(args, sizeof(args), "-f %s", dir);
	ck_assert_int_eq(testutil_meshctl(out, sizeof(out), "validate", args, "2>&1"), 0);
	unlink(path);
	rmdir(dir);
	ck_assert_msg(strstr(out, "gw.yaml:7:5: Gateway ns1/gw-a: spec.servers[0]: warning: ConflictingGateways (IST0145): "
			      "Conflict with gateways ns1/gw-b (workload selector istio=ingressgateway, port 80, hosts "
			      "a.example.com).") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "Gateway ns1/gw-b: spec.servers[0]: warning: ConflictingGateways (IST0145): "
			      "Conflict with gateways ns1/gw-a") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "2 objects valid, 0 rejected, 2 warnings") != NULL, "%s", out);
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
	tcase_add_test(tc, test_decode_cert_sources);
	suite_add_tcase(s, tc);
	tc = tcase_create("between");
	tcase_add_test(tc, test_conflicting_gateways);
	tcase_add_test(tc, test_merge_conflicts);
	tcase_add_test(tc, test_merge_tcp_tcp);
	tcase_add_test(tc, test_credential_secrets);
	tcase_add_test(tc, test_vs_gateways);
	tcase_add_test(tc, test_meshctl_validate);
	suite_add_tcase(s, tc);
	tc = tcase_create("seed");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_seed_gateways);
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
