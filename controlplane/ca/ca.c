/*
 * ca.c - meshd's certificate authority on OpenSSL 3 (EVP/X509 APIs).
 *
 * Loads a plug-in CA (Istio's cacerts layout) and checks it before use:
 * the key matches ca-cert.pem, ca-cert.pem is a CA, and it verifies up to
 * root-cert.pem through cert-chain.pem.  When the directory holds none of
 * those files, a self-signed root is generated and written there (key
 * 0600, each file replaced atomically, the key last) so a restart keeps
 * the same trust.  The generated key is EC P-256: generating it is
 * instant (RSA 2048 takes a noticeable pause at every fresh start and in
 * every test), signatures and chains are small, and every peer we serve
 * (gRPC, Envoy, OpenSSL, Go) verifies it.
 *
 * Workload certificates follow what Istio issues: empty subject and a
 * critical URI SAN with the caller's SPIFFE ID (the CSR's own subject and
 * extensions are ignored), digitalSignature+keyEncipherment,
 * serverAuth+clientAuth, a random 128-bit serial, notBefore two minutes
 * in the past.  The object is immutable once built; signing takes no lock.
 */
#include "controlplane/ca/ca.h"

#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/pem.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCOPE "ca"

/* Largest CA file read (a chain of a few certificates is a few KiB). */
#define CA_MAX_FILE_BYTES (1024 * 1024)
/* Longest SPIFFE ID. */
#define CA_MAX_ID_LEN 1024
#define CA_PATH_CAP 4096
/* Largest RSA key accepted in a CSR (verification cost). */
#define CA_MAX_RSA_BITS 8192

struct ca {
	EVP_PKEY *key;
	X509 *cert;               /* signs workload certificates */
	X509 *root;
	STACK_OF(X509) *chain;    /* from cert up to, not including, root */
	char **chain_pem;         /* PEM of each element of chain */
	size_t nchain;
	char *root_pem;
	char *trust_domain;
	int64_t default_ttl;      /* seconds */
	int64_t max_ttl;
	time_t not_after;         /* earliest expiry along cert..root */
	int generated;
};

/* ------------------------------------------------------------------ */
/* small helpers */

static void seterr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* RSA of at least 2048 bits or EC P-256/P-384; what names the key in the
 * error ("CSR", "ca-key.pem"). */
static int key_supported(EVP_PKEY *k, const char *what, char *err, size_t cap)
{
	int id = EVP_PKEY_get_base_id(k);

	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(k);
		if (bits < 2048) {
			seterr(err, cap, "%s: RSA key of %d bits is too weak: at least 2048 bits required", what, bits);
			return -MESH_ESEMANTIC;
		}
		if (bits > CA_MAX_RSA_BITS) {
			seterr(err, cap, "%s: RSA key of %d bits: at most %d bits accepted", what, bits,
			       CA_MAX_RSA_BITS);
			return -MESH_ESEMANTIC;
		}
		return 0;
	}
	if (id == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;
		if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) != 1) {
			ERR_clear_error();
			seterr(err, cap, "%s: EC key without a named curve: use P-256 or P-384", what);
			return -MESH_ESEMANTIC;
		}
		if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256") || !strcmp(group, "secp384r1") ||
		    !strcmp(group, "P-384"))
			return 0;
		seterr(err, cap, "%s: EC curve %s is not accepted: use P-256 or P-384", what, group);
		return -MESH_ESEMANTIC;
	}
	{
		const char *name = EVP_PKEY_get0_type_name(k);
		seterr(err, cap, "%s: unsupported key type %s: use RSA (2048 bits or more) or EC P-256/P-384", what,
		       name ? name : "(unknown)");
	}
	return -MESH_ESEMANTIC;
}

static int name_ok(const char *s)
{
	size_t i, n = strnlen(s, CA_MAX_NAME_LEN + 1);

	if (n == 0 || n > CA_MAX_NAME_LEN)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

int ca_spiffe_id(const char *trust_domain, const char *ns, const char *sa, char *out, size_t cap)
{
	int n;

	if (!trust_domain || !ns || !sa || !name_ok(trust_domain) || !name_ok(ns) || !name_ok(sa))
		return -EINVAL;
	n = snprintf(out, cap, "spiffe://%s/ns/%s/sa/%s", trust_domain, ns, sa);
	if (n < 0 || (size_t)n >= cap)
		return -MESH_ETOOBIG;
	return 0;
}

void ca_chain_cleanup(struct ca_chain *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->pem[i]);
	free(c->pem);
	c->pem = NULL;
	c->n = 0;
}

/* ------------------------------------------------------------------ */
/* building certificates */

static int set_random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	int rc = -MESH_ETLS;

	if (RAND_bytes(b, sizeof(b)) != 1)
		goto out;
	b[0] &= 0x7f; /* positive */
	b[0] |= 0x40; /* and a full 127 bits, never zero */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

static int set_validity(X509 *x, time_t now, int64_t lifetime)
{
	int64_t end = lifetime;

	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, -CA_BACKDATE_SECONDS, &now))
		return -MESH_ETLS;
	if (!X509_time_adj_ex(X509_getm_notAfter(x), (int)(end / 86400), (long)(end % 86400), &now))
		return -MESH_ETLS;
	return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -MESH_ETLS;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -MESH_ETLS;
}

static int push_name(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *s = NULL;

	if (!gn)
		return -ENOMEM;
	if (type == GEN_IPADD) {
		s = a2i_IPADDRESS(value);
		if (!s) {
			ERR_clear_error();
			GENERAL_NAME_free(gn);
			return -EINVAL;
		}
	} else {
		s = ASN1_IA5STRING_new();
		if (!s || !ASN1_STRING_set(s, value, (int)strlen(value))) {
			ASN1_STRING_free(s);
			GENERAL_NAME_free(gn);
			return -ENOMEM;
		}
	}
	GENERAL_NAME_set0_value(gn, type, s);
	if (!sk_GENERAL_NAME_push(gens, gn)) {
		GENERAL_NAME_free(gn);
		return -ENOMEM;
	}
	return 0;
}

struct san {
	const char *uri;
	const char *const *dns;
	size_t ndns;
	const char *const *ips;
	size_t nips;
};

/* Build and sign a leaf for pub with the given SANs (a critical extension:
 * the subject is empty).  lifetime in seconds, already clamped. */
static int issue_leaf(struct ca *ca, EVP_PKEY *pub, const struct san *san, int64_t lifetime, X509 **out, char *err,
		      size_t cap)
{
	X509 *x = X509_new();
	X509_NAME *empty = X509_NAME_new();
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	time_t now = time(NULL);
	char why[CA_ERR_CAP];
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!x || !empty || !gens)
		goto out;
	rc = -MESH_ETLS;
	if (!X509_set_version(x, X509_VERSION_3) || set_random_serial(x) < 0 ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) || !X509_set_subject_name(x, empty) ||
	    !X509_set_pubkey(x, pub) || set_validity(x, now, lifetime) < 0)
		goto fail;
	if (san->uri && (rc = push_name(gens, GEN_URI, san->uri)) < 0)
		goto fail;
	for (i = 0; i < san->ndns; i++)
		if ((rc = push_name(gens, GEN_DNS, san->dns[i])) < 0)
			goto fail;
	for (i = 0; i < san->nips; i++) {
		rc = push_name(gens, GEN_IPADD, san->ips[i]);
		if (rc == -EINVAL) {
			seterr(err, cap, "\"%s\" is not an IP address", san->ips[i]);
			goto out;
		}
		if (rc < 0)
			goto fail;
	}
	rc = -MESH_ETLS;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) != 1)
		goto fail;
	if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0)
		goto fail;
	/* Authority key id when the CA certificate has a subject key id. */
	if (X509_get0_subject_key_id(ca->cert) && add_ext(x, ca->cert, NID_authority_key_identifier, "keyid") < 0)
		goto fail;
	if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
		goto fail;
	*out = x;
	x = NULL;
	rc = 0;
	goto out;
fail:
	if (rc == -MESH_ETLS)
		seterr(err, cap, "signing failed: %s", mesh_pem_ssl_reason(why, sizeof(why)));
	else
		seterr(err, cap, "signing failed: %s", mesh_strerror(rc));
out:
	X509_free(x);
	X509_NAME_free(empty);
	sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
	return rc;
}

/* The lifetime to give a certificate asked for ttl seconds (<= 0 means the
 * default): clamped to the maximum and to the CA's own expiry. */
static int64_t clamp_lifetime(const struct ca *ca, int64_t ttl)
{
	int64_t left = (int64_t)ca->not_after - (int64_t)time(NULL);

	if (ttl <= 0)
		ttl = ca->default_ttl;
	if (ttl > ca->max_ttl)
		ttl = ca->max_ttl;
	if (ttl > left)
		ttl = left;
	return ttl;
}

/* ------------------------------------------------------------------ */
/* loading and generating */

static int load_key(const char *path, EVP_PKEY **out, char *err, size_t cap)
{
	char *data = NULL;
	size_t len;
	char why[CA_ERR_CAP];
	int rc;

	*out = NULL;
	rc = mesh_read_file(path, CA_MAX_FILE_BYTES, &data, &len);
	if (rc < 0) {
		seterr(err, cap, "%s: %s", path, rc == -MESH_ETOOBIG ? "file too large" : mesh_strerror(rc));
		goto out;
	}
	rc = mesh_pem_read_key(data, len, out);
	if (rc == -MESH_EPARSE)
		seterr(err, cap, "%s: not a PEM private key (%s)", path, mesh_pem_ssl_reason(why, sizeof(why)));
out:
	if (data) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return rc;
}

static int load_certs(const char *path, STACK_OF(X509) **out, char *err, size_t cap)
{
	char *data = NULL;
	size_t len;
	int rc;

	rc = mesh_read_file(path, CA_MAX_FILE_BYTES, &data, &len);
	if (rc < 0) {
		seterr(err, cap, "%s: %s", path, rc == -MESH_ETOOBIG ? "file too large" : mesh_strerror(rc));
		goto out;
	}
	*out = NULL;
	rc = mesh_pem_read_certs(data, len, out);
	if (rc == -MESH_EPARSE)
		seterr(err, cap, "%s: no PEM certificate in the file", path);
out:
	free(data);
	return rc;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

static int file_exists(const char *dir, const char *name)
{
	char p[CA_PATH_CAP];
	struct stat st;

	if (path_join(p, sizeof(p), dir, name) < 0)
		return 0;
	return stat(p, &st) == 0;
}

static int is_ca_cert(X509 *x)
{
	uint32_t flags = X509_get_extension_flags(x);

	if (!(flags & EXFLAG_CA) || X509_check_ca(x) < 1)
		return 0;
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		return 0;
	return 1;
}

/* Check a loaded or generated CA and fill its derived fields. */
static int ca_finish(struct ca *ca, STACK_OF(X509) *extra, char *err, size_t cap)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	char why[CA_ERR_CAP];
	int i, rc = 0;

	rc = key_supported(ca->key, CA_FILE_KEY, err, cap);
	if (rc < 0)
		goto out;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		seterr(err, cap, "%s does not match %s (the private key belongs to another certificate)", CA_FILE_KEY,
		       CA_FILE_CERT);
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	if (!is_ca_cert(ca->cert)) {
		seterr(err, cap, "%s is not a CA certificate (needs basicConstraints CA:TRUE and keyCertSign)",
		       CA_FILE_CERT);
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	if (!is_ca_cert(ca->root)) {
		seterr(err, cap, "%s is not a CA certificate", CA_FILE_ROOT);
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	/* intermediates: ca-cert first, then cert-chain.pem minus duplicates and the root */
	ca->chain = sk_X509_new_null();
	if (!ca->chain) {
		rc = -ENOMEM;
		goto out;
	}
	if (X509_cmp(ca->cert, ca->root) != 0) {
		if (!sk_X509_push(ca->chain, ca->cert) || !X509_up_ref(ca->cert)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; extra && i < sk_X509_num(extra); i++) {
		X509 *x = sk_X509_value(extra, i);
		int j, dup = X509_cmp(x, ca->root) == 0;
		for (j = 0; !dup && j < sk_X509_num(ca->chain); j++)
			dup = X509_cmp(x, sk_X509_value(ca->chain, j)) == 0;
		if (dup)
			continue;
		if (!X509_up_ref(x) || !sk_X509_push(ca->chain, x)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	store = X509_STORE_new();
	vctx = X509_STORE_CTX_new();
	if (!store || !vctx || X509_STORE_add_cert(store, ca->root) != 1 ||
	    X509_STORE_CTX_init(vctx, store, ca->cert, ca->chain) != 1) {
		rc = -MESH_ETLS;
		seterr(err, cap, "cannot set up chain verification: %s", mesh_pem_ssl_reason(why, sizeof(why)));
		goto out;
	}
	if (X509_verify_cert(vctx) != 1) {
		int e = X509_STORE_CTX_get_error(vctx);
		ERR_clear_error();
		seterr(err, cap, "%s does not verify up to %s through %s: %s", CA_FILE_CERT, CA_FILE_ROOT,
		       CA_FILE_CHAIN, X509_verify_cert_error_string(e));
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	ca->not_after = asn1_to_time(X509_get0_notAfter(ca->root));
	for (i = 0; i < sk_X509_num(ca->chain); i++) {
		time_t t = asn1_to_time(X509_get0_notAfter(sk_X509_value(ca->chain, i)));
		if (t < ca->not_after)
			ca->not_after = t;
	}
	ca->nchain = (size_t)sk_X509_num(ca->chain);
	ca->chain_pem = calloc(ca->nchain + 1, sizeof(*ca->chain_pem));
	ca->root_pem = mesh_pem_from_x509(ca->root);
	if (!ca->chain_pem || !ca->root_pem) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < (int)ca->nchain; i++) {
		ca->chain_pem[i] = mesh_pem_from_x509(sk_X509_value(ca->chain, i));
		if (!ca->chain_pem[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	return rc;
}

static int ca_load(struct ca *ca, const char *dir, char *err, size_t cap)
{
	char p[CA_PATH_CAP];
	STACK_OF(X509) *certs = NULL, *roots = NULL, *chain = NULL;
	int rc;

	if ((rc = path_join(p, sizeof(p), dir, CA_FILE_KEY)) < 0 || (rc = load_key(p, &ca->key, err, cap)) < 0)
		goto out;
	if ((rc = path_join(p, sizeof(p), dir, CA_FILE_CERT)) < 0 || (rc = load_certs(p, &certs, err, cap)) < 0)
		goto out;
	if ((rc = path_join(p, sizeof(p), dir, CA_FILE_ROOT)) < 0 || (rc = load_certs(p, &roots, err, cap)) < 0)
		goto out;
	if (file_exists(dir, CA_FILE_CHAIN)) {
		if ((rc = path_join(p, sizeof(p), dir, CA_FILE_CHAIN)) < 0 ||
		    (rc = load_certs(p, &chain, err, cap)) < 0)
			goto out;
	}
	ca->cert = sk_X509_shift(certs);
	ca->root = sk_X509_shift(roots);
	/* anything after the first certificate of ca-cert.pem is chain too */
	while (sk_X509_num(certs) > 0) {
		X509 *x = sk_X509_shift(certs);
		if (!chain)
			chain = sk_X509_new_null();
		if (!chain || !sk_X509_unshift(chain, x)) {
			X509_free(x);
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = ca_finish(ca, chain, err, cap);
out:
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(roots, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static int ca_generate(struct ca *ca, char *err, size_t cap)
{
	X509_NAME *name = NULL;
	time_t now = time(NULL);
	char why[CA_ERR_CAP];
	int rc = -MESH_ETLS;

	ca->key = EVP_EC_gen("P-256");
	ca->cert = X509_new();
	name = X509_NAME_new();
	if (!ca->key || !ca->cert || !name)
		goto out;
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)ca->trust_domain, -1, -1,
					0) ||
	    !X509_set_version(ca->cert, X509_VERSION_3) || set_random_serial(ca->cert) < 0 ||
	    !X509_set_subject_name(ca->cert, name) || !X509_set_issuer_name(ca->cert, name) ||
	    !X509_set_pubkey(ca->cert, ca->key) || set_validity(ca->cert, now, CA_ROOT_LIFETIME_SECONDS) < 0)
		goto out;
	if (add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
	    add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") < 0)
		goto out;
	if (X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0)
		goto out;
	if (!X509_up_ref(ca->cert))
		goto out;
	ca->root = ca->cert;
	rc = ca_finish(ca, NULL, err, cap);
	ca->generated = 1;
	X509_NAME_free(name);
	return rc;
out:
	seterr(err, cap, "cannot generate a root CA: %s", mesh_pem_ssl_reason(why, sizeof(why)));
	X509_NAME_free(name);
	return rc;
}

/* Write the generated CA into dir: certificates first, the key last, so a
 * directory with ca-key.pem always holds a complete CA.  On failure (a full
 * disk: ENOSPC) the files this call wrote are removed again, so the directory
 * is as it was (empty) and the next start generates a CA once there is
 * space, instead of finding certificates without their key. */
static int ca_store(struct ca *ca, const char *dir, char *err, size_t cap)
{
	static const char *const cert_files[] = { CA_FILE_ROOT, CA_FILE_CHAIN, CA_FILE_CERT };
	char p[CA_PATH_CAP];
	char *key = NULL;
	size_t i, written = 0;
	int rc = 0;

	for (i = 0; i < sizeof(cert_files) / sizeof(cert_files[0]); i++) {
		if ((rc = path_join(p, sizeof(p), dir, cert_files[i])) < 0 ||
		    (rc = mesh_write_file_atomic(p, ca->root_pem, strlen(ca->root_pem), 0644)) < 0) {
			seterr(err, cap, "cannot write %s/%s: %s (nothing kept in %s)", dir, cert_files[i],
			       strerror(-rc), dir);
			goto out;
		}
		written++;
	}
	key = mesh_pem_from_key(ca->key);
	if (!key) {
		rc = -ENOMEM;
		seterr(err, cap, "cannot encode the CA key (nothing kept in %s)", dir);
		goto out;
	}
	if ((rc = path_join(p, sizeof(p), dir, CA_FILE_KEY)) < 0 ||
	    (rc = mesh_write_file_atomic(p, key, strlen(key), 0600)) < 0) {
		seterr(err, cap, "cannot write %s/%s: %s (nothing kept in %s)", dir, CA_FILE_KEY, strerror(-rc), dir);
		goto out;
	}
out:
	if (rc < 0)
		for (i = 0; i < written; i++)
			if (path_join(p, sizeof(p), dir, cert_files[i]) == 0)
				(void)unlink(p);
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	return rc;
}

int ca_new(const struct ca_config *cfg, struct ca **out, char *err, size_t cap)
{
	static const char *const files[] = { CA_FILE_CERT, CA_FILE_KEY, CA_FILE_ROOT, CA_FILE_CHAIN };
	struct ca *ca = NULL;
	size_t i, present = 0;
	int rc = 0;

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if (!cfg || !cfg->trust_domain || !name_ok(cfg->trust_domain)) {
		seterr(err, cap, "invalid trust domain (lowercase letters, digits, '.', '-', '_')");
		return -EINVAL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	ca->trust_domain = strdup(cfg->trust_domain);
	ca->default_ttl = cfg->default_ttl_ns > 0 ? cfg->default_ttl_ns / 1000000000LL : 24 * 3600;
	ca->max_ttl = cfg->max_ttl_ns > 0 ? cfg->max_ttl_ns / 1000000000LL : 2160LL * 3600;
	if (ca->default_ttl > ca->max_ttl)
		ca->default_ttl = ca->max_ttl;
	if (!ca->trust_domain) {
		rc = -ENOMEM;
		goto out;
	}
	if (cfg->dir) {
		if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			seterr(err, cap, "cannot create %s: %s", cfg->dir, strerror(errno));
			goto out;
		}
		for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			present += file_exists(cfg->dir, files[i]) ? 1 : 0;
	}
	if (present) {
		rc = ca_load(ca, cfg->dir, err, cap);
		if (rc < 0)
			goto out;
		log_info(SCOPE, "plug-in CA loaded from %s", cfg->dir);
	} else {
		rc = ca_generate(ca, err, cap);
		if (rc < 0)
			goto out;
		if (cfg->dir) {
			rc = ca_store(ca, cfg->dir, err, cap);
			if (rc < 0)
				goto out;
			log_info(SCOPE, "generated a self-signed root CA (EC P-256, O=%s) in %s", ca->trust_domain,
				 cfg->dir);
		} else {
			log_warn(SCOPE, "generated a self-signed root CA (EC P-256, O=%s) kept in memory only: "
					"use --ca-dir so a restart keeps the same trust",
				 ca->trust_domain);
		}
	}
	*out = ca;
	ca = NULL;
out:
	ca_free(ca);
	return rc;
}

void ca_free(struct ca *ca)
{
	size_t i;

	if (!ca)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	X509_free(ca->root);
	sk_X509_pop_free(ca->chain, X509_free);
	for (i = 0; ca->chain_pem && i < ca->nchain; i++)
		free(ca->chain_pem[i]);
	free(ca->chain_pem);
	free(ca->root_pem);
	free(ca->trust_domain);
	free(ca);
}

int ca_generated(const struct ca *ca)
{
	return ca ? ca->generated : 0;
}

const char *ca_trust_domain(const struct ca *ca)
{
	return ca->trust_domain;
}

const char *ca_root_pem(const struct ca *ca)
{
	return ca ? ca->root_pem : NULL;
}

/* ------------------------------------------------------------------ */
/* signing */

/* leaf, intermediates, root into out. Takes nothing; copies PEM. */
static int build_chain(const struct ca *ca, X509 *leaf, int with_root, struct ca_chain *out)
{
	size_t n = 1 + ca->nchain + (with_root ? 1 : 0), i, k = 0;
	int rc = -ENOMEM;

	out->pem = calloc(n, sizeof(*out->pem));
	out->n = 0;
	if (!out->pem)
		goto out;
	out->pem[k] = mesh_pem_from_x509(leaf);
	if (!out->pem[k++])
		goto out;
	for (i = 0; i < ca->nchain; i++) {
		out->pem[k] = strdup(ca->chain_pem[i]);
		if (!out->pem[k++])
			goto out;
	}
	if (with_root) {
		out->pem[k] = strdup(ca->root_pem);
		if (!out->pem[k++])
			goto out;
	}
	rc = 0;
out:
	out->n = k;
	if (rc < 0)
		ca_chain_cleanup(out);
	return rc;
}

int ca_sign_csr(struct ca *ca, const char *csr_pem, size_t len, const char *ns, const char *sa,
		int64_t ttl_seconds, struct ca_chain *out, char *err, size_t cap)
{
	char id[CA_MAX_ID_LEN];
	X509_REQ *req = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *pub;
	struct san san = { 0 };
	int64_t lifetime;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err && cap)
		err[0] = '\0';
	if (!ca || !csr_pem) {
		rc = -EINVAL;
		seterr(err, cap, "no CSR");
		goto out;
	}
	rc = ca_spiffe_id(ca->trust_domain, ns, sa, id, sizeof(id));
	if (rc < 0) {
		seterr(err, cap, "invalid identity: namespace and service account must be DNS names");
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	if (len > CA_MAX_CSR_BYTES) {
		seterr(err, cap, "CSR is %zu bytes; the limit is %d", len, CA_MAX_CSR_BYTES);
		rc = -MESH_ETOOBIG;
		goto out;
	}
	rc = mesh_pem_read_csr(csr_pem, len, &req);
	if (rc == -ENOMEM)
		goto out;
	if (rc < 0) {
		ERR_clear_error();
		seterr(err, cap, "CSR is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)");
		rc = -MESH_EPARSE;
		goto out;
	}
	pub = X509_REQ_get0_pubkey(req);
	if (!pub) {
		ERR_clear_error();
		seterr(err, cap, "CSR carries no readable public key");
		rc = -MESH_EPARSE;
		goto out;
	}
	rc = key_supported(pub, "CSR", err, cap);
	if (rc < 0)
		goto out;
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		seterr(err, cap, "CSR signature does not verify with its own public key");
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	lifetime = clamp_lifetime(ca, ttl_seconds);
	if (lifetime <= 0) {
		seterr(err, cap, "the CA certificate has expired");
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	san.uri = id;
	rc = issue_leaf(ca, pub, &san, lifetime, &leaf, err, cap);
	if (rc < 0)
		goto out;
	rc = build_chain(ca, leaf, 1, out);
	if (rc < 0)
		seterr(err, cap, "out of memory");
out:
	X509_free(leaf);
	X509_REQ_free(req);
	return rc;
}

/* A fresh EC P-256 key and a leaf for it with san (ca_issue_serving and
 * ca_issue_workload). */
static int issue_with_key(struct ca *ca, const struct san *san, int64_t ttl_seconds, char **chain_pem, char **key_pem,
			  int64_t *not_after, char *err, size_t cap);

int ca_issue_serving(struct ca *ca, const char *const *dns, size_t ndns, const char *const *ips, size_t nips,
		     int64_t ttl_seconds, char **chain_pem, char **key_pem, int64_t *not_after, char *err,
		     size_t cap)
{
	struct san san = { NULL, dns, ndns, ips, nips };

	return issue_with_key(ca, &san, ttl_seconds, chain_pem, key_pem, not_after, err, cap);
}

int ca_issue_workload(struct ca *ca, const char *ns, const char *sa, int64_t ttl_seconds, char **chain_pem,
		      char **key_pem, int64_t *not_after, char *err, size_t cap)
{
	char id[CA_MAX_ID_LEN];
	struct san san = { 0 };

	*chain_pem = NULL;
	*key_pem = NULL;
	if (ca_spiffe_id(ca->trust_domain, ns, sa, id, sizeof(id)) < 0) {
		seterr(err, cap, "invalid identity: namespace and service account must be DNS names");
		return -MESH_ESEMANTIC;
	}
	san.uri = id;
	return issue_with_key(ca, &san, ttl_seconds, chain_pem, key_pem, not_after, err, cap);
}

static int issue_with_key(struct ca *ca, const struct san *san, int64_t ttl_seconds, char **chain_pem, char **key_pem,
			  int64_t *not_after, char *err, size_t cap)
{
	struct ca_chain chain = { 0 };
	struct {
		char *p;
		size_t n;
	} acc = { NULL, 0 }; /* leaf + intermediates, concatenated */
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	int64_t lifetime;
	size_t i;
	int rc = -MESH_ETLS;

	*chain_pem = NULL;
	*key_pem = NULL;
	key = EVP_EC_gen("P-256");
	if (!key) {
		seterr(err, cap, "cannot generate a key");
		goto out;
	}
	lifetime = clamp_lifetime(ca, ttl_seconds);
	if (lifetime <= 0) {
		seterr(err, cap, "the CA certificate has expired");
		rc = -MESH_ESEMANTIC;
		goto out;
	}
	rc = issue_leaf(ca, key, san, lifetime, &leaf, err, cap);
	if (rc < 0)
		goto out;
	rc = build_chain(ca, leaf, 0, &chain);
	if (rc < 0)
		goto out;
	for (i = 0; i < chain.n; i++)
		acc.n += strlen(chain.pem[i]);
	acc.p = malloc(acc.n + 1);
	*key_pem = mesh_pem_from_key(key);
	if (!acc.p || !*key_pem) {
		rc = -ENOMEM;
		goto out;
	}
	acc.n = 0;
	for (i = 0; i < chain.n; i++) {
		size_t l = strlen(chain.pem[i]);
		memcpy(acc.p + acc.n, chain.pem[i], l);
		acc.n += l;
	}
	acc.p[acc.n] = '\0';
	*chain_pem = acc.p;
	acc.p = NULL;
	if (not_after)
		*not_after = (int64_t)asn1_to_time(X509_get0_notAfter(leaf));
	rc = 0;
out:
	if (rc < 0 && *key_pem) {
		free(*key_pem);
		*key_pem = NULL;
	}
	free(acc.p);
	ca_chain_cleanup(&chain);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return rc;
}
