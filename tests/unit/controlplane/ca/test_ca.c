/*
 * test_ca.c - the CA judged on what it issues: chains checked with
 * X509_verify_cert against the root, the SAN read back from the
 * certificate, key usage, EKU and validity; hostile CSRs; plug-in CA
 * loading (good, mismatched key, not a CA, wrong root, incomplete) and a
 * generated root that survives a restart.  Keys and certificates are made
 * here at test time.
 */
#include "controlplane/ca/ca.h"

#include "common/err.h"
#include "common/log.h"

#include <check.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY (24LL * 3600)
#define NS_PER_S 1000000000LL

static char tmpdir[256];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/meshd-ca-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

static struct ca *new_ca(const char *dir, int64_t max_ttl_s)
{
	struct ca_config cfg = { dir, "cluster.local", DAY * NS_PER_S, max_ttl_s * NS_PER_S };
	struct ca *ca = NULL;
	char err[CA_ERR_CAP];
	int rc = ca_new(&cfg, &ca, err, sizeof(err));

	ck_assert_msg(rc == 0, "ca_new: %d %s", rc, err);
	return ca;
}

/* A CSR for key whose subject and SAN claim someone else. */
static char *make_csr(EVP_PKEY *key, const EVP_MD *md)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *san;
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"admin", -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_REQ_set_pubkey(req, key);
	san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "URI:spiffe://evil.example/ns/kube-system/sa/admin");
	ck_assert_ptr_nonnull(san);
	sk_X509_EXTENSION_push(exts, san);
	X509_REQ_add_extensions(req, exts);
	ck_assert_int_gt(X509_REQ_sign(req, key, md), 0);
	PEM_write_bio_X509_REQ(b, req);
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return out;
}

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* Verify chain[0] up to chain[n-1] (the root) with OpenSSL. */
static void assert_chain_verifies(const struct ca_chain *c)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *mid = sk_X509_new_null();
	X509 *leaf = pem_cert(c->pem[0]), *root = pem_cert(c->pem[c->n - 1]);
	size_t i;
	int ok;

	ck_assert_uint_ge(c->n, 2);
	for (i = 1; i + 1 < c->n; i++)
		sk_X509_push(mid, pem_cert(c->pem[i]));
	X509_STORE_add_cert(store, root);
	X509_STORE_CTX_init(ctx, store, leaf, mid);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	ok = X509_verify_cert(ctx);
	ck_assert_msg(ok == 1, "chain does not verify: %s",
		      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(mid, X509_free);
	X509_free(leaf);
	X509_free(root);
}

/* The one URI SAN of x (asserting there is exactly one name, critical). */
static void assert_only_uri(X509 *x, const char *want)
{
	int crit = -1;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	GENERAL_NAME *gn;
	int type;
	ASN1_STRING *s;

	ck_assert_ptr_nonnull(gens);
	ck_assert_int_eq(crit, 1);
	ck_assert_int_eq(sk_GENERAL_NAME_num(gens), 1);
	gn = sk_GENERAL_NAME_value(gens, 0);
	s = GENERAL_NAME_get0_value(gn, &type);
	ck_assert_int_eq(type, GEN_URI);
	ck_assert_int_eq(ASN1_STRING_length(s), (int)strlen(want));
	ck_assert_mem_eq(ASN1_STRING_get0_data(s), want, strlen(want));
	GENERAL_NAMES_free(gens);
}

static int64_t lifetime_of(X509 *x)
{
	int day = 0, sec = 0;

	ck_assert_int_eq(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	return (int64_t)day * DAY + sec;
}

static int sign(struct ca *ca, EVP_PKEY *key, int64_t ttl, struct ca_chain *c, char *err)
{
	char *csr = make_csr(key, EVP_sha256());
	int rc = ca_sign_csr(ca, csr, strlen(csr), "default", "web", ttl, c, err, CA_ERR_CAP);

	free(csr);
	return rc;
}

START_TEST(test_issue_ec_identity_from_caller)
{
	struct ca *ca;
	struct ca_chain c = { 0 };
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char err[CA_ERR_CAP];
	X509 *leaf, *root;
	int rc;

	mk_tmpdir();
	ca = new_ca(tmpdir, 2160 * 3600);
	ck_assert_int_eq(ca_generated(ca), 1);
	rc = sign(ca, key, 0, &c, err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(c.n, 2);
	assert_chain_verifies(&c);
	leaf = pem_cert(c.pem[0]);
	root = pem_cert(c.pem[1]);
	ck_assert_str_eq(c.pem[1], ca_root_pem(ca));
	/* the caller's identity, not the CSR's */
	assert_only_uri(leaf, "spiffe://cluster.local/ns/default/sa/web");
	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
	ck_assert_int_eq(X509_check_private_key(leaf, key), 1);
	/* key usage, EKU, not a CA */
	ck_assert_uint_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	ck_assert_uint_eq(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	/* default lifetime plus the backdating, notBefore in the past */
	ck_assert_int_eq(lifetime_of(leaf), DAY + CA_BACKDATE_SECONDS);
	ck_assert_int_lt(X509_cmp_current_time(X509_get0_notBefore(leaf)), 0);
	/* 128-bit serial, positive */
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
		ck_assert_int_eq(BN_num_bits(bn), 127);
		ck_assert_int_eq(BN_is_negative(bn), 0);
		BN_free(bn);
	}
	/* root: self-signed CA, O=cluster.local, ten years */
	ck_assert_int_eq(X509_check_ca(root), 1);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)), 0);
	ck_assert_int_ge(lifetime_of(root), 3650 * DAY);
	X509_free(leaf);
	X509_free(root);
	ca_chain_cleanup(&c);
	EVP_PKEY_free(key);
	ca_free(ca);
	rm_tmpdir();
}
END_TEST

START_TEST(test_ttl_requested_and_clamped)
{
	struct ca *ca = new_ca(NULL, 48 * 3600);
	struct ca_chain c = { 0 };
	EVP_PKEY *key = EVP_EC_gen("P-384");
	char err[CA_ERR_CAP];
	X509 *leaf;

	ck_assert_int_eq(sign(ca, key, 3600, &c, err), 0);
	leaf = pem_cert(c.pem[0]);
	ck_assert_int_eq(lifetime_of(leaf), 3600 + CA_BACKDATE_SECONDS);
	X509_free(leaf);
	ca_chain_cleanup(&c);
	ck_assert_int_eq(sign(ca, key, 1000 * 3600, &c, err), 0);
	leaf = pem_cert(c.pem[0]);
	ck_assert_int_eq(lifetime_of(leaf), 48 * 3600 + CA_BACKDATE_SECONDS);
	X509_free(leaf);
	ca_chain_cleanup(&c);
	EVP_PKEY_free(key);
	ca_free(ca);
}
END_TEST

START_TEST(test_rsa_2048_accepted)
{
	struct ca *ca = new_ca(NULL, 2160 * 3600);
	struct ca_chain c = { 0 };
	EVP_PKEY *key = EVP_RSA_gen(2048);
	char err[CA_ERR_CAP];

	ck_assert_int_eq(sign(ca, key, 0, &c, err), 0);
	assert_chain_verifies(&c);
	ca_chain_cleanup(&c);
	EVP_PKEY_free(key);
	ca_free(ca);
}
END_TEST

static void expect_reject(struct ca *ca, const char *csr, size_t len, int want_rc, const char *want_text)
{
	struct ca_chain c = { 0 };
	char err[CA_ERR_CAP];
	int rc = ca_sign_csr(ca, csr, len, "default", "web", 0, &c, err, sizeof(err));

	ck_assert_msg(rc == want_rc, "rc %d (%s), want %d", rc, err, want_rc);
	ck_assert_msg(strstr(err, want_text) != NULL, "error \"%s\" lacks \"%s\"", err, want_text);
	ck_assert_uint_eq(c.n, 0);
	ck_assert_ptr_null(c.pem);
	ck_assert_uint_eq(ERR_peek_error(), 0);
}

static EVP_PKEY *dsa_key(void)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL), *kctx;
	EVP_PKEY *params = NULL, *key = NULL;

	ck_assert_ptr_nonnull(pctx);
	ck_assert_int_eq(EVP_PKEY_paramgen_init(pctx), 1);
	EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx, 2048);
	ck_assert_int_eq(EVP_PKEY_paramgen(pctx, &params), 1);
	kctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
	ck_assert_int_eq(EVP_PKEY_keygen_init(kctx), 1);
	ck_assert_int_eq(EVP_PKEY_keygen(kctx, &key), 1);
	EVP_PKEY_CTX_free(kctx);
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(params);
	return key;
}

START_TEST(test_hostile_csrs_rejected_ca_keeps_working)
{
	struct ca *ca = new_ca(NULL, 2160 * 3600);
	struct ca_chain c = { 0 };
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa1024 = EVP_RSA_gen(1024);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *dsa = dsa_key();
	EVP_PKEY *p521 = EVP_EC_gen("P-521");
	char err[CA_ERR_CAP], *csr, *big;
	size_t len;

	expect_reject(ca, "hello", 5, -MESH_EPARSE, "not a PEM certificate request");
	/* truncated */
	csr = make_csr(ec, EVP_sha256());
	len = strlen(csr);
	expect_reject(ca, csr, len / 2, -MESH_EPARSE, "not a PEM certificate request");
	/* bad signature: flip a bit of the signature value inside the DER */
	{
		BIO *b = BIO_new_mem_buf(csr, -1);
		X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
		unsigned char *der = NULL;
		int n = i2d_X509_REQ(req, &der);
		BIO *o = BIO_new(BIO_s_mem());
		char *data;
		long m;
		ck_assert_int_gt(n, 10);
		der[n - 3] ^= 0x01;
		PEM_write_bio(o, "CERTIFICATE REQUEST", "", der, n);
		m = BIO_get_mem_data(o, &data);
		expect_reject(ca, data, (size_t)m, -MESH_ESEMANTIC, "signature");
		BIO_free(o);
		OPENSSL_free(der);
		X509_REQ_free(req);
		BIO_free(b);
	}
	/* oversized: a valid CSR padded past the cap */
	big = malloc(CA_MAX_CSR_BYTES + 2);
	memset(big, '\n', CA_MAX_CSR_BYTES + 1);
	memcpy(big, csr, len);
	big[CA_MAX_CSR_BYTES + 1] = '\0';
	expect_reject(ca, big, CA_MAX_CSR_BYTES + 1, -MESH_ETOOBIG, "limit");
	free(big);
	free(csr);
	/* weak or unsupported keys */
	csr = make_csr(rsa1024, EVP_sha256());
	expect_reject(ca, csr, strlen(csr), -MESH_ESEMANTIC, "at least 2048");
	free(csr);
	csr = make_csr(ed, NULL);
	expect_reject(ca, csr, strlen(csr), -MESH_ESEMANTIC, "unsupported key type ED25519");
	free(csr);
	csr = make_csr(dsa, EVP_sha256());
	expect_reject(ca, csr, strlen(csr), -MESH_ESEMANTIC, "unsupported key type DSA");
	free(csr);
	csr = make_csr(p521, EVP_sha512());
	expect_reject(ca, csr, strlen(csr), -MESH_ESEMANTIC, "P-256 or P-384");
	free(csr);
	/* a bad identity never reaches a certificate */
	csr = make_csr(ec, EVP_sha256());
	ck_assert_int_eq(ca_sign_csr(ca, csr, strlen(csr), "Default", "web", 0, &c, err, sizeof(err)), -MESH_ESEMANTIC);
	ck_assert_int_eq(ca_sign_csr(ca, csr, strlen(csr), "a/b", "web", 0, &c, err, sizeof(err)), -MESH_ESEMANTIC);
	free(csr);
	/* and the CA still signs */
	ck_assert_int_eq(sign(ca, ec, 0, &c, err), 0);
	assert_chain_verifies(&c);
	ca_chain_cleanup(&c);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(dsa);
	EVP_PKEY_free(p521);
	ca_free(ca);
}
END_TEST

START_TEST(test_generated_root_survives_restart)
{
	struct ca *a, *b;
	char p[512], *root;
	struct stat st;

	mk_tmpdir();
	a = new_ca(tmpdir, 2160 * 3600);
	ck_assert_int_eq(ca_generated(a), 1);
	root = strdup(ca_root_pem(a));
	snprintf(p, sizeof(p), "%s/%s", tmpdir, CA_FILE_KEY);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ca_free(a);
	b = new_ca(tmpdir, 2160 * 3600);
	ck_assert_int_eq(ca_generated(b), 0);
	ck_assert_str_eq(ca_root_pem(b), root);
	free(root);
	ca_free(b);
	rm_tmpdir();
}
END_TEST

/* ---- plug-in CA fixtures, made here */

static X509 *make_ca_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int is_ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	time_t now = time(NULL);

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now & 0xffffff) + (is_ca ? 7 : 9));
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_time_adj_ex(X509_getm_notBefore(x), -1, 0, &now);
	X509_time_adj_ex(X509_getm_notAfter(x), 365, 0, &now);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
				is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
	X509_NAME_free(name);
	return x;
}

static void write_pem(const char *name, X509 *a, X509 *b, EVP_PKEY *key)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	if (a)
		PEM_write_X509(f, a);
	if (b)
		PEM_write_X509(f, b);
	if (key)
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

struct pki {
	EVP_PKEY *root_key, *int_key, *other_key;
	X509 *root, *inter, *other_root, *leafish;
};

static void pki_make(struct pki *k)
{
	k->root_key = EVP_EC_gen("P-256");
	k->int_key = EVP_RSA_gen(2048);
	k->other_key = EVP_EC_gen("P-256");
	k->root = make_ca_cert(k->root_key, "Root CA", NULL, NULL, 1);
	k->inter = make_ca_cert(k->int_key, "Intermediate CA cluster1", k->root, k->root_key, 1);
	k->other_root = make_ca_cert(k->other_key, "Other Root", NULL, NULL, 1);
	k->leafish = make_ca_cert(k->int_key, "not a ca", k->root, k->root_key, 0);
}

static void pki_free(struct pki *k)
{
	EVP_PKEY_free(k->root_key);
	EVP_PKEY_free(k->int_key);
	EVP_PKEY_free(k->other_key);
	X509_free(k->root);
	X509_free(k->inter);
	X509_free(k->other_root);
	X509_free(k->leafish);
}

static void expect_load_error(const char *want)
{
	struct ca_config cfg = { tmpdir, "cluster.local", DAY * NS_PER_S, 90 * DAY * NS_PER_S };
	struct ca *ca = NULL;
	char err[CA_ERR_CAP];
	int rc = ca_new(&cfg, &ca, err, sizeof(err));

	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_null(ca);
	ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

START_TEST(test_plugin_ca)
{
	struct pki k;
	struct ca *ca;
	struct ca_chain c = { 0 };
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char err[CA_ERR_CAP];
	X509 *x;

	pki_make(&k);
	mk_tmpdir();
	write_pem(CA_FILE_CERT, k.inter, NULL, NULL);
	write_pem(CA_FILE_KEY, NULL, NULL, k.int_key);
	write_pem(CA_FILE_ROOT, k.root, NULL, NULL);
	write_pem(CA_FILE_CHAIN, k.inter, k.root, NULL);
	ca = new_ca(tmpdir, 2160 * 3600);
	ck_assert_int_eq(ca_generated(ca), 0);
	ck_assert_int_eq(sign(ca, key, 0, &c, err), 0);
	/* leaf, intermediate, root */
	ck_assert_uint_eq(c.n, 3);
	assert_chain_verifies(&c);
	x = pem_cert(c.pem[1]);
	ck_assert_int_eq(X509_cmp(x, k.inter), 0);
	X509_free(x);
	x = pem_cert(c.pem[2]);
	ck_assert_int_eq(X509_cmp(x, k.root), 0);
	X509_free(x);
	/* clamped to the intermediate's expiry (one year), not 2160h */
	ca_chain_cleanup(&c);
	ck_assert_int_eq(sign(ca, key, 3000 * 3600, &c, err), 0);
	x = pem_cert(c.pem[0]);
	ck_assert_int_le(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(k.inter)), 0);
	X509_free(x);
	ca_chain_cleanup(&c);
	ca_free(ca);

	/* mismatched key */
	write_pem(CA_FILE_KEY, NULL, NULL, k.other_key);
	expect_load_error("does not match");
	/* not a CA */
	write_pem(CA_FILE_KEY, NULL, NULL, k.int_key);
	write_pem(CA_FILE_CERT, k.leafish, NULL, NULL);
	expect_load_error("not a CA");
	/* chain does not reach the root */
	write_pem(CA_FILE_CERT, k.inter, NULL, NULL);
	write_pem(CA_FILE_ROOT, k.other_root, NULL, NULL);
	expect_load_error("does not verify");
	/* garbage */
	write_pem(CA_FILE_ROOT, NULL, NULL, NULL);
	expect_load_error("no PEM certificate");
	rm_tmpdir();

	/* incomplete: a certificate without its key is not replaced by a generated root */
	mk_tmpdir();
	write_pem(CA_FILE_CERT, k.inter, NULL, NULL);
	expect_load_error(CA_FILE_KEY);
	rm_tmpdir();

	/* a FIFO for the key: refused by name, in words (it read "Unknown error 10006") */
	mk_tmpdir();
	write_pem(CA_FILE_CERT, k.inter, NULL, NULL);
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/%s", tmpdir, CA_FILE_KEY);
		ck_assert_int_eq(mkfifo(p, 0600), 0);
	}
	expect_load_error("ca-key.pem: not a regular file");
	rm_tmpdir();
	EVP_PKEY_free(key);
	pki_free(&k);
}
END_TEST

START_TEST(test_serving_cert)
{
	struct ca *ca = new_ca(NULL, 2160 * 3600);
	static const char *const dns[] = { "istiod.istio-system.svc", "localhost" };
	static const char *const ips[] = { "127.0.0.1", "::1" };
	char *chain = NULL, *keypem = NULL, err[CA_ERR_CAP];
	int64_t not_after = 0;
	X509 *leaf;
	EVP_PKEY *key;
	BIO *b;
	GENERAL_NAMES *gens;

	ck_assert_int_eq(ca_issue_serving(ca, dns, 2, ips, 2, 3600, &chain, &keypem, &not_after, err, sizeof(err)), 0);
	ck_assert_int_gt(not_after, (int64_t)time(NULL));
	leaf = pem_cert(chain);
	b = BIO_new_mem_buf(keypem, -1);
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(X509_check_private_key(leaf, key), 1);
	ck_assert_int_eq(X509_check_host(leaf, "istiod.istio-system.svc", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	ck_assert_int_eq(sk_GENERAL_NAME_num(gens), 4);
	GENERAL_NAMES_free(gens);
	/* a bad IP is a clear error */
	free(chain);
	free(keypem);
	{
		static const char *const bad[] = { "not-an-ip" };
		ck_assert_int_eq(ca_issue_serving(ca, dns, 1, bad, 1, 3600, &chain, &keypem, NULL, err, sizeof(err)),
				 -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "not-an-ip"));
	}
	EVP_PKEY_free(key);
	BIO_free(b);
	X509_free(leaf);
	ca_free(ca);
}
END_TEST

START_TEST(test_spiffe_id)
{
	char id[128];

	ck_assert_int_eq(ca_spiffe_id("cluster.local", "ns1", "sa-1", id, sizeof(id)), 0);
	ck_assert_str_eq(id, "spiffe://cluster.local/ns/ns1/sa/sa-1");
	ck_assert_int_eq(ca_spiffe_id("cluster.local", "", "sa", id, sizeof(id)), -EINVAL);
	ck_assert_int_eq(ca_spiffe_id("cluster.local", "ns", "s/a", id, sizeof(id)), -EINVAL);
	ck_assert_int_eq(ca_spiffe_id("cluster.local", "ns", "sa?x", id, sizeof(id)), -EINVAL);
	ck_assert_int_eq(ca_spiffe_id("cluster.local", "ns", "sa", id, 10), -MESH_ETOOBIG);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ca");
	TCase *tc = tcase_create("ca");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_issue_ec_identity_from_caller);
	tcase_add_test(tc, test_ttl_requested_and_clamped);
	tcase_add_test(tc, test_rsa_2048_accepted);
	tcase_add_test(tc, test_hostile_csrs_rejected_ca_keeps_working);
	tcase_add_test(tc, test_generated_root_survives_restart);
	tcase_add_test(tc, test_plugin_ca);
	tcase_add_test(tc, test_serving_cert);
	tcase_add_test(tc, test_spiffe_id);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	mesh_log_setup("error", "text");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
