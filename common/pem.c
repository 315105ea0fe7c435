/*
 * pem.c - see pem.h.  Writing goes through a memory BIO whose contents are
 * copied out; reading wraps the caller's bytes in a read-only memory BIO.
 * OpenSSL reports "no more PEM blocks" as an error, so the error queue is
 * cleared after each read loop.
 */
#include "common/pem.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*pem__writer)(BIO *b, const void *obj);

static int pem__write_x509(BIO *b, const void *x)
{
	return PEM_write_bio_X509(b, (X509 *)x);
}

static int pem__write_key(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int pem__write_csr(BIO *b, const void *r)
{
	return PEM_write_bio_X509_REQ(b, (X509_REQ *)r);
}

/* A malloc'd, NUL-terminated copy of what is in b (NULL when empty). */
static char *pem__take(BIO *b)
{
	char *data, *out;
	long n = BIO_get_mem_data(b, &data);

	if (n <= 0)
		return NULL;
	out = malloc((size_t)n + 1);
	if (!out)
		return NULL;
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return out;
}

static char *pem__from(pem__writer write, const void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;

	if (!b)
		return NULL;
	if (obj && write(b, obj) == 1)
		out = pem__take(b);
	BIO_free(b);
	return out;
}

char *mesh_pem_from_x509(X509 *x)
{
	return pem__from(pem__write_x509, x);
}

char *mesh_pem_from_key(EVP_PKEY *key)
{
	return pem__from(pem__write_key, key);
}

char *mesh_pem_from_csr(X509_REQ *req)
{
	return pem__from(pem__write_csr, req);
}

int mesh_pem_key_and_csr(EVP_PKEY **key, char **csr)
{
	X509_REQ *req = NULL;
	int rc = -MESH_ETLS;

	*csr = NULL;
	*key = EVP_EC_gen("P-256");
	req = X509_REQ_new();
	if (!*key || !req || !X509_REQ_set_version(req, 0) || !X509_REQ_set_pubkey(req, *key) ||
	    X509_REQ_sign(req, *key, EVP_sha256()) <= 0)
		goto out;
	*csr = mesh_pem_from_csr(req);
	if (*csr)
		rc = 0;
out:
	if (rc < 0) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	X509_REQ_free(req);
	return rc;
}

char *mesh_pem_from_certs(const STACK_OF(X509) *sk, int from, int to)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;
	int i;

	if (!b)
		return NULL;
	for (i = from; i < to; i++)
		if (PEM_write_bio_X509(b, sk_X509_value(sk, i)) != 1)
			goto out;
	out = pem__take(b);
out:
	BIO_free(b);
	return out;
}

static int pem__bio(const char *pem, size_t len, BIO **out)
{
	*out = NULL;
	if (len > MESH_PEM_MAX_BYTES)
		return -MESH_ETOOBIG;
	*out = BIO_new_mem_buf(pem, (int)len);
	return *out ? 0 : -ENOMEM;
}

/*
 * The passphrase callback of every read: none.  With NULL, OpenSSL's own
 * callback asks for a passphrase on the terminal (or stdin) as soon as a
 * PEM block is encrypted ("Proc-Type: 4,ENCRYPTED", "ENCRYPTED PRIVATE
 * KEY"), blocking the caller's thread on bytes that came from a control
 * plane or a file.  Refusing makes such a block fail to decode, as Envoy
 * fails a TlsCertificate with an encrypted key and no password.
 */
static int pem__no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int mesh_pem_read_certs(const char *pem, size_t len, STACK_OF(X509) **out)
{
	STACK_OF(X509) *sk = *out;
	BIO *b = NULL;
	X509 *x;
	int rc, n0;

	rc = pem__bio(pem, len, &b);
	if (rc < 0)
		goto out;
	if (!sk && !(sk = sk_X509_new_null())) {
		rc = -ENOMEM;
		goto out;
	}
	n0 = sk_X509_num(sk);
	while ((x = PEM_read_bio_X509(b, NULL, pem__no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			rc = -ENOMEM;
			goto out;
		}
	}
	if (sk_X509_num(sk) == n0)
		rc = -MESH_EPARSE;
out:
	ERR_clear_error(); /* end of input reads as an error */
	BIO_free(b);
	if (!*out && rc < 0)
		sk_X509_pop_free(sk, X509_free);
	else
		*out = sk;
	return rc;
}

int mesh_pem_read_key(const char *pem, size_t len, EVP_PKEY **out)
{
	BIO *b = NULL;
	int rc;

	*out = NULL;
	rc = pem__bio(pem, len, &b);
	if (rc < 0)
		return rc;
	*out = PEM_read_bio_PrivateKey(b, NULL, pem__no_passphrase, NULL);
	if (!*out)
		rc = -MESH_EPARSE; /* the caller may read the reason from the error queue */
	BIO_free(b);
	return rc;
}

int mesh_pem_read_csr(const char *pem, size_t len, X509_REQ **out)
{
	BIO *b = NULL;
	int rc;

	*out = NULL;
	rc = pem__bio(pem, len, &b);
	if (rc < 0)
		return rc;
	*out = PEM_read_bio_X509_REQ(b, NULL, pem__no_passphrase, NULL);
	if (!*out)
		rc = -MESH_EPARSE;
	BIO_free(b);
	return rc;
}

const char *mesh_pem_ssl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_error();

	if (e)
		ERR_error_string_n(e, buf, cap);
	else
		snprintf(buf, cap, "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}
