/*
 * tlsfix.h - certificates made at test time for the TLS unit tests (no key
 * is ever committed): an EC P-256 root and leaves with a SPIFFE URI SAN,
 * as PEM text.  Header-only; each test binary includes it once.
 */
#ifndef MESH_TESTS_TLSFIX_H
#define MESH_TESTS_TLSFIX_H

#include "common/pem.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <stdlib.h>
#include <string.h>

struct tf_ca {
	X509 *cert;
	EVP_PKEY *key;
	char *pem;
};

struct tf_leaf {
	char *chain; /* leaf PEM (then the root's when asked) */
	char *key;
};

static EVP_PKEY *tf_key(void)
{
	return EVP_EC_gen("P-256");
}

static X509 *tf_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, const char *uri, long secs,
		     int ca)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	static long serial = 1;
	char san[300];

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), secs);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	if (ca) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (uri) {
		snprintf(san, sizeof(san), "URI:%s", uri);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, ikey ? ikey : key, EVP_sha256());
	return x;
}

static void tf_ca_make(struct tf_ca *ca, const char *name)
{
	ca->key = tf_key();
	ca->cert = tf_cert(ca->key, name, NULL, NULL, NULL, 3600, 1);
	ca->pem = mesh_pem_from_x509(ca->cert);
}

static void tf_ca_free(struct tf_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->pem);
}

static void tf_leaf_make(struct tf_leaf *l, const struct tf_ca *ca, const char *uri, long secs)
{
	EVP_PKEY *k = tf_key();
	X509 *x = tf_cert(k, "leaf", ca->cert, ca->key, uri, secs, 0);

	l->chain = mesh_pem_from_x509(x);
	l->key = mesh_pem_from_key(k);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void tf_leaf_free(struct tf_leaf *l)
{
	free(l->chain);
	free(l->key);
}

#endif
