/*
 * test_ca_sds.c - meshd's SDS provider (controlplane/ca/ca_sds.c) with a
 * memory-only CA, a token file and its answers taken by a test hook
 * instead of the gRPC server: who gets Secrets (TLS + a known token + the
 * node's own identity), what "default" and "ROOTCA" hold, credentialName
 * lookups confined to the caller's namespace, and "default" answered again
 * with a new certificate at half its lifetime.  Waits are bounded by
 * WAIT_S and never assert on timing.
 */
#include "controlplane/ca/ca_sds.h"

#include "common/err.h"
#include "common/log.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

#include "testutil.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_S 30
#define NS_PER_S 1000000000LL

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;

/* ------------------------------------------------------------------ */
/* answers, as the provider hands them over */

struct answer {
	uint64_t stream, seq;
	struct xds_snapshot *set;
	enum xds_ads_status code;
	char msg[512];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct answer answers[16];
static int nanswers;

static void on_reply(void *ctx, uint64_t stream, uint64_t seq, struct xds_snapshot *set, enum xds_ads_status code,
		     const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	if (nanswers < 16) {
		struct answer *a = &answers[nanswers++];
		a->stream = stream;
		a->seq = seq;
		a->set = set ? xds_snapshot_ref(set) : NULL;
		a->code = code;
		snprintf(a->msg, sizeof(a->msg), "%s", msg ? msg : "");
	}
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Wait (bounded) until there are n answers; returns the n-th. */
static struct answer *wait_answer(int n)
{
	struct timespec until;
	struct answer *a = NULL;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&lock);
	while (nanswers < n && pthread_cond_timedwait(&cond, &lock, &until) == 0)
		;
	if (nanswers >= n)
		a = &answers[n - 1];
	pthread_mutex_unlock(&lock);
	ck_assert_msg(a, "no answer #%d within %d s", n, WAIT_S);
	return a;
}

/* ------------------------------------------------------------------ */
/* fixture */

static char tokens[64];
static struct ca *ca;
static struct ca_authenticator *auth;
static struct ca_sds *sds;
static int lookups;
static char looked_ns[64];

/* credentialName Secrets: "gw" in ns1 (cert, key, cacert), "gw-cacert"
 * in ns1 (a CA of its own), "other" in ns2. */
static int lookup(void *ctx, const char *ns, const char *name, struct ca_sds_tls *out)
{
	(void)ctx;
	lookups++;
	snprintf(looked_ns, sizeof(looked_ns), "%s", ns);
	if (strcmp(ns, "ns1") == 0 && strcmp(name, "gw") == 0) {
		out->cert = strdup("GW-CERT");
		out->key = strdup("GW-KEY");
		out->cacert = strdup("GW-CA");
		return 0;
	}
	if (strcmp(ns, "ns1") == 0 && strcmp(name, "gw-cacert") == 0) {
		out->cacert = strdup("GW-OWN-CA");
		return 0;
	}
	if (strcmp(ns, "ns2") == 0 && strcmp(name, "other") == 0) {
		out->cert = strdup("OTHER-CERT");
		out->key = strdup("OTHER-KEY");
		return 0;
	}
	return -ENOENT;
}

static void start(int64_t ttl_seconds)
{
	struct ca_config cc = { NULL, "cluster.local", 3600 * NS_PER_S, 24 * 3600 * NS_PER_S };
	struct ca_sds_config sc = { 0 };
	char err[256];
	FILE *f;
	int fd;

	snprintf(tokens, sizeof(tokens), "/tmp/meshd-sds-tokens-XXXXXX");
	fd = mkstemp(tokens);
	ck_assert_int_ge(fd, 0);
	close(fd);
	f = fopen(tokens, "w");
	ck_assert_ptr_nonnull(f);
	fputs("tok-web ns1 web\ntok-api ns2 api\n", f);
	fclose(f);
	ck_assert_int_eq(ca_new(&cc, &ca, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_auth_file_new(tokens, &auth, err, sizeof(err)), 0);
	sc.ca = ca;
	sc.auth = auth;
	sc.ttl_seconds = ttl_seconds;
	sc.lookup = lookup;
	sc.reply = on_reply;
	ck_assert_int_eq(ca_sds_new(&sc, &sds), 0);
}

static void setup(void)
{
	nanswers = 0;
	lookups = 0;
	start(0);
}

static void teardown(void)
{
	int i;

	ca_sds_free(sds);
	ca_auth_free(auth);
	ca_free(ca);
	unlink(tokens);
	for (i = 0; i < nanswers; i++)
		xds_snapshot_unref(answers[i].set);
	nanswers = 0;
}

/* ------------------------------------------------------------------ */
/* requests */

static void ask_peer(uint64_t stream, uint64_t seq, int secure, const char *authz, const char *peer_id,
		     const char *ns, const char *sa, const char *const *names, size_t n)
{
	struct xds_secret_req *r = calloc(1, sizeof(*r));
	size_t i;

	ck_assert_ptr_nonnull(r);
	r->peer_id = peer_id ? strdup(peer_id) : NULL;
	r->stream = stream;
	r->seq = seq;
	r->secure = secure;
	r->authorization = authz ? strdup(authz) : NULL;
	r->node_ns = ns ? strdup(ns) : NULL;
	r->node_sa = sa ? strdup(sa) : NULL;
	r->node_id = strdup("sidecar~10.0.0.1~x.ns~ns.svc.cluster.local");
	r->names = calloc(n + 1, sizeof(*r->names));
	for (i = 0; i < n; i++)
		r->names[i] = strdup(names[i]);
	r->nnames = n;
	ca_sds_want(sds, r);
}

static void ask(uint64_t stream, uint64_t seq, int secure, const char *authz, const char *ns, const char *sa,
		const char *const *names, size_t n)
{
	ask_peer(stream, seq, secure, authz, NULL, ns, sa, names, n);
}

static void release(uint64_t stream)
{
	struct xds_secret_req *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->release = 1;
	r->stream = stream;
	ca_sds_want(sds, r);
}

/* Secret name of an answer's set, unpacked (free with _free_unpacked), or NULL. */
static Secret *secret_in(const struct answer *a, const char *name)
{
	const struct xds_resource *r = a->set ? xds_snapshot_find(a->set, XDS_SECRET, name) : NULL;

	if (!r)
		return NULL;
	return envoy__extensions__transport_sockets__tls__v3__secret__unpack(NULL, r->len, r->data);
}

static size_t set_size(const struct answer *a)
{
	return a->set ? a->set->sets[XDS_SECRET].n : 0;
}

/* The URI SAN of the first certificate of pem (into out). */
static void leaf_uri(const ProtobufCBinaryData *pem, char *out, size_t cap, char *serial, size_t scap)
{
	BIO *b = BIO_new_mem_buf(pem->data, (int)pem->len);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	GENERAL_NAMES *gens;
	BIGNUM *bn;
	char *hex;
	int i;

	ck_assert_ptr_nonnull(x);
	out[0] = '\0';
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_URI)
			snprintf(out, cap, "%.*s", ASN1_STRING_length(g->d.uniformResourceIdentifier),
				 (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hex = BN_bn2hex(bn);
	snprintf(serial, scap, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	BIO_free(b);
}

static const char *const both[] = { "ROOTCA", "default" };

/* ------------------------------------------------------------------ */

START_TEST(default_and_rootca_for_a_proven_node)
{
	struct answer *a;
	Secret *d, *root;
	char uri[256], serial[128];

	ask(7, 1, 1, "Bearer tok-web", "ns1", "web", both, 2);
	a = wait_answer(1);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_OK);
	ck_assert_uint_eq(a->stream, 7);
	ck_assert_uint_eq(a->seq, 1);
	ck_assert_uint_eq(set_size(a), 2);
	d = secret_in(a, "default");
	root = secret_in(a, "ROOTCA");
	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(d->type_case, ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE);
	leaf_uri(&d->tls_certificate->certificate_chain->inline_bytes, uri, sizeof(uri), serial, sizeof(serial));
	ck_assert_str_eq(uri, "spiffe://cluster.local/ns/ns1/sa/web");
	ck_assert_ptr_nonnull(memmem(d->tls_certificate->private_key->inline_bytes.data,
				     d->tls_certificate->private_key->inline_bytes.len, "PRIVATE KEY", 11));
	ck_assert_int_eq(root->type_case,
			 ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT);
	ck_assert_uint_eq(root->validation_context->trusted_ca->inline_bytes.len, strlen(ca_root_pem(ca)));
	ck_assert_int_eq(memcmp(root->validation_context->trusted_ca->inline_bytes.data, ca_root_pem(ca),
				strlen(ca_root_pem(ca))), 0);
	ck_assert_uint_eq(ca_sds_issued(sds), 1);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(d, NULL);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(root, NULL);
	/* the same stream asking again (names changed) keeps its certificate */
	ask(7, 2, 1, "Bearer tok-web", "ns1", "web", (const char *const[]){ "default" }, 1);
	a = wait_answer(2);
	ck_assert_uint_eq(a->seq, 2);
	ck_assert_uint_eq(set_size(a), 1);
	ck_assert_uint_eq(ca_sds_issued(sds), 1);
	release(7);
}
END_TEST

START_TEST(who_may_not)
{
	struct answer *a;

	/* api's token, a node claiming ns1/web */
	ask(1, 1, 1, "Bearer tok-api", "ns1", "web", both, 2);
	a = wait_answer(1);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_PERMISSION_DENIED);
	ck_assert_ptr_nonnull(strstr(a->msg, "authenticated as ns ns2 sa api"));
	ck_assert_ptr_null(a->set);
	/* the right namespace, another service account */
	ask(2, 1, 1, "Bearer tok-web", "ns1", "db", both, 2);
	ck_assert_int_eq(wait_answer(2)->code, XDS_ADS_STATUS_PERMISSION_DENIED);
	/* no token, a token of nobody, not a bearer value */
	ask(3, 1, 1, NULL, "ns1", "web", both, 2);
	ck_assert_int_eq(wait_answer(3)->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	ask(4, 1, 1, "Bearer nope", "ns1", "web", both, 2);
	ck_assert_int_eq(wait_answer(4)->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	ask(5, 1, 1, "Basic dXNlcg==", "ns1", "web", both, 2);
	ck_assert_int_eq(wait_answer(5)->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	/* plaintext: nothing proven, nothing served, the stream lives */
	ask(6, 1, 0, "Bearer tok-web", "ns1", "web", both, 2);
	a = wait_answer(6);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_OK);
	ck_assert_uint_eq(set_size(a), 0);
	ck_assert_uint_eq(ca_sds_issued(sds), 0);
	/* a node that names no identity takes the token's */
	ask(8, 1, 1, "Bearer tok-api", NULL, NULL, (const char *const[]){ "default" }, 1);
	a = wait_answer(7);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_OK);
	ck_assert_uint_eq(set_size(a), 1);
	release(6);
	release(8);
}
END_TEST

/* A verified client certificate's SPIFFE ID is an identity (Istio's
 * ClientCertAuthenticator), of meshd's trust domain and form only; it
 * goes before a token. */
START_TEST(client_certificate_identity)
{
	const char *const d[] = { "default" };
	char uri[256], serial[128];
	struct answer *a;
	Secret *s;

	ask_peer(1, 1, 1, NULL, "spiffe://cluster.local/ns/ns1/sa/web", "ns1", "web", d, 1);
	a = wait_answer(1);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_OK);
	s = secret_in(a, "default");
	ck_assert_ptr_nonnull(s);
	leaf_uri(&s->tls_certificate->certificate_chain->inline_bytes, uri, sizeof(uri), serial, sizeof(serial));
	ck_assert_str_eq(uri, "spiffe://cluster.local/ns/ns1/sa/web");
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(s, NULL);
	/* the certificate wins over another identity's token */
	ask_peer(2, 1, 1, "Bearer tok-api", "spiffe://cluster.local/ns/ns1/sa/web", "ns2", "api", d, 1);
	ck_assert_int_eq(wait_answer(2)->code, XDS_ADS_STATUS_PERMISSION_DENIED);
	ask_peer(3, 1, 1, NULL, "spiffe://evil.example/ns/ns1/sa/web", "ns1", "web", d, 1);
	a = wait_answer(3);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	ck_assert_ptr_nonnull(strstr(a->msg, "trust domain cluster.local"));
	ask_peer(4, 1, 1, NULL, "spiffe://cluster.local/ns/ns1/sa/web/x", "ns1", NULL, d, 1);
	ck_assert_int_eq(wait_answer(4)->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	ask_peer(5, 1, 1, NULL, "spiffe://cluster.local/sa/web/ns/ns1", "ns1", NULL, d, 1);
	ck_assert_int_eq(wait_answer(5)->code, XDS_ADS_STATUS_UNAUTHENTICATED);
	release(1);
}
END_TEST

START_TEST(credential_names_in_the_callers_namespace)
{
	const char *const names[] = { "kubernetes://gw", "kubernetes://gw-cacert", "gw", "kubernetes://ns2/other",
				      "other", "kubernetes://missing" };
	struct answer *a;
	Secret *s;

	ask(1, 1, 1, "Bearer tok-web", "ns1", "web", names, 6);
	a = wait_answer(1);
	ck_assert_int_eq(a->code, XDS_ADS_STATUS_OK);
	ck_assert_uint_eq(set_size(a), 3);
	ck_assert_str_eq(looked_ns, "ns1");
	s = secret_in(a, "kubernetes://gw");
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(memcmp(s->tls_certificate->certificate_chain->inline_bytes.data, "GW-CERT", 7), 0);
	ck_assert_int_eq(memcmp(s->tls_certificate->private_key->inline_bytes.data, "GW-KEY", 6), 0);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(s, NULL);
	/* "NAME-cacert": the Secret of that name first (istiod's GetCaCert) */
	s = secret_in(a, "kubernetes://gw-cacert");
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->validation_context->trusted_ca->inline_bytes.len, 9);
	ck_assert_int_eq(memcmp(s->validation_context->trusted_ca->inline_bytes.data, "GW-OWN-CA", 9), 0);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(s, NULL);
	s = secret_in(a, "gw"); /* the bare name, as a DestinationRule's credentialName may give it */
	ck_assert_ptr_nonnull(s);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(s, NULL);
	/* another namespace's, by path or by name: never */
	ck_assert_ptr_null(secret_in(a, "kubernetes://ns2/other"));
	ck_assert_ptr_null(secret_in(a, "other"));
	ck_assert_ptr_null(secret_in(a, "kubernetes://missing"));
	/* the owner of ns2 gets "other" */
	ask(2, 1, 1, "Bearer tok-api", "ns2", "api", (const char *const[]){ "other" }, 1);
	a = wait_answer(2);
	ck_assert_uint_eq(set_size(a), 1);
	release(1);
	release(2);
}
END_TEST

/* Occurrences of needle in the file at path. */
static int count_in_file(const char *path, const char *needle)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;
	int count = 0;
	const char *p;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	for (p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	return count;
}

/* A credentialName the lookup cannot serve is left out of the answer (the
 * proxy's handshakes fail): meshd's log says which Secret it looked for
 * and where, once per change of the missing set, not once per answer, and
 * says when every name is served again. */
START_TEST(unserved_credential_is_logged_once)
{
	const char *const names[] = { "kubernetes://gw", "kubernetes://missing" };
	char path[] = "/tmp/meshd-sds-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(saved, 0);
	mesh_log_set_level(MESH_LOG_INFO);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	ask(1, 1, 1, "Bearer tok-web", "ns1", "web", names, 2);
	ck_assert_uint_eq(set_size(wait_answer(1)), 1);
	ask(1, 2, 1, "Bearer tok-web", "ns1", "web", names, 2); /* the same names again */
	ck_assert_uint_eq(set_size(wait_answer(2)), 1);
	ask(1, 3, 1, "Bearer tok-web", "ns1", "web", names, 1); /* "missing" no longer asked */
	ck_assert_uint_eq(set_size(wait_answer(3)), 1);
	release(1);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	mesh_log_set_level(MESH_LOG_WARN);
	ck_assert_int_eq(count_in_file(path, "Secret \"kubernetes://missing\" not sent: no Secret ns1/missing"), 1);
	ck_assert_int_eq(count_in_file(path, "kubernetes://gw\" not sent"), 0);
	ck_assert_int_eq(count_in_file(path, "every Secret asked for is served now"), 1);
	unlink(path);
}
END_TEST

/* With a 4 s lifetime, "default" is answered again, re-issued, with the
 * stream's latest request number; after the release, never again. */
START_TEST(default_renewed_at_half_life)
{
	char uri1[256], uri2[256], s1[128], s2[128];
	struct answer *a, *b;
	Secret *d1, *d2;

	teardown();
	nanswers = 0;
	start(4);
	ask(3, 5, 1, "Bearer tok-web", "ns1", "web", (const char *const[]){ "default" }, 1);
	a = wait_answer(1);
	b = wait_answer(2);
	ck_assert_uint_eq(b->stream, 3);
	ck_assert_uint_eq(b->seq, 5);
	d1 = secret_in(a, "default");
	d2 = secret_in(b, "default");
	leaf_uri(&d1->tls_certificate->certificate_chain->inline_bytes, uri1, sizeof(uri1), s1, sizeof(s1));
	leaf_uri(&d2->tls_certificate->certificate_chain->inline_bytes, uri2, sizeof(uri2), s2, sizeof(s2));
	ck_assert_str_eq(uri1, uri2);
	ck_assert_str_ne(s1, s2); /* a new certificate */
	ck_assert(d1->tls_certificate->private_key->inline_bytes.len != d2->tls_certificate->private_key->inline_bytes.len ||
		  memcmp(d1->tls_certificate->private_key->inline_bytes.data,
			 d2->tls_certificate->private_key->inline_bytes.data,
			 d1->tls_certificate->private_key->inline_bytes.len) != 0); /* and a new key */
	ck_assert_uint_ge(ca_sds_issued(sds), 2);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(d1, NULL);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(d2, NULL);
	release(3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ca_sds");
	TCase *tc = tcase_create("provider");

	mesh_log_set_level(MESH_LOG_WARN);
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, default_and_rootca_for_a_proven_node);
	tcase_add_test(tc, who_may_not);
	tcase_add_test(tc, client_certificate_identity);
	tcase_add_test(tc, credential_names_in_the_callers_namespace);
	tcase_add_test(tc, unserved_credential_is_logged_once);
	tcase_add_test(tc, default_renewed_at_half_life);
	suite_add_tcase(s, tc);
	return testutil_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
