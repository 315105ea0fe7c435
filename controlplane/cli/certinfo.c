/*
 * certinfo.c - a certificate's validity, serial, dates and SPIFFE
 * identity for meshctl proxy-config secret (see certinfo.h), with
 * OpenSSL reading the PEM.
 */
#include "controlplane/cli/certinfo.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ASN1 time t as RFC 3339 UTC into out. */
static void certinfo__time(const ASN1_TIME *t, char *out, size_t cap)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(out, cap, "-");
		return;
	}
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int certinfo_from_b64(const char *b64, struct certinfo *out)
{
	size_t n = strlen(b64), i, pad;
	unsigned char *pem = NULL;
	GENERAL_NAMES *gens = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	X509 *x = NULL;
	BIO *bio = NULL;
	int w, rc = -MESH_EPARSE;

	memset(out, 0, sizeof(*out));
	if (n > CERTINFO_MAX_B64)
		return -MESH_ETOOBIG;
	if (n == 0 || n % 4)
		return -MESH_EPARSE;
	pem = malloc(n / 4 * 3 + 1);
	if (!pem)
		return -ENOMEM;
	pad = b64[n - 1] == '=' ? (n > 1 && b64[n - 2] == '=' ? 2 : 1) : 0;
	w = EVP_DecodeBlock(pem, (const unsigned char *)b64, (int)n);
	if (w < 0 || (size_t)w < pad)
		goto out;
	w -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	bio = BIO_new_mem_buf(pem, w);
	x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	if (!x)
		goto out;
	out->valid = X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
		     X509_cmp_current_time(X509_get0_notAfter(x)) > 0;
	certinfo__time(X509_get0_notAfter(x), out->not_after, sizeof(out->not_after));
	certinfo__time(X509_get0_notBefore(x), out->not_before, sizeof(out->not_before));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (!hex) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; hex[i] && i + 1 < sizeof(out->serial); i++)
		out->serial[i] = (char)tolower((unsigned char)hex[i]);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < (size_t)sk_GENERAL_NAME_num(gens) && !out->identity[0]; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, (int)i);
		if (g->type == GEN_URI)
			snprintf(out->identity, sizeof(out->identity), "%.*s",
				 ASN1_STRING_length(g->d.uniformResourceIdentifier),
				 (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
	}
	rc = 0;
out:
	ERR_clear_error();
	GENERAL_NAMES_free(gens);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	free(pem);
	return rc;
}
