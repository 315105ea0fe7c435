/*
 * pem.h - PEM text to and from OpenSSL objects, in memory (the TLS helpers
 * DESIGN.md puts in common/).  One copy for the CA, meshctl's certificate
 * agent and, later, meshproxy's SDS secrets.
 *
 * Kept apart from the rest of common/ so that only a binary that calls it
 * links OpenSSL through it.  Input text need not be NUL-terminated; output
 * text is malloc'd and NUL-terminated (the caller frees it).
 */
#ifndef MESH_PEM_H
#define MESH_PEM_H

#include "common/err.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stddef.h>

/* Largest PEM text read from memory (OpenSSL's memory BIOs take an int). */
#define MESH_PEM_MAX_BYTES (16u << 20)

/* The PEM text of a certificate, a private key (PKCS#8, unencrypted) or a
 * CSR; NULL when out of memory or OpenSSL fails. */
MESH_MUST_CHECK char *mesh_pem_from_x509(X509 *x);
MESH_MUST_CHECK char *mesh_pem_from_key(EVP_PKEY *key);
MESH_MUST_CHECK char *mesh_pem_from_csr(X509_REQ *req);
/* Certificates from..to-1 of sk, concatenated (a chain file's text). */
MESH_MUST_CHECK char *mesh_pem_from_certs(const STACK_OF(X509) *sk, int from, int to);

/* A fresh P-256 key (*key, the caller frees it with EVP_PKEY_free) and the
 * PEM text of a CSR holding only its public key (*csr, malloc'd): what a
 * workload sends meshd's CA (Istio's CSR flow; the CA takes the identity
 * from the bearer token, not from the CSR's subject).  Used by meshproxy's
 * identity and meshctl certs.  Returns 0 or -MESH_ETLS (then *key and *csr
 * are NULL). */
MESH_MUST_CHECK int mesh_pem_key_and_csr(EVP_PKEY **key, char **csr);

/*
 * Append every certificate in pem (len bytes) to *out, in order, creating
 * the stack when *out is NULL (the caller frees it with
 * sk_X509_pop_free(sk, X509_free)).  Returns 0, -MESH_EPARSE when the text
 * holds no certificate (nothing is appended then), -MESH_ETOOBIG over
 * MESH_PEM_MAX_BYTES, -ENOMEM.
 */
MESH_MUST_CHECK int mesh_pem_read_certs(const char *pem, size_t len, STACK_OF(X509) **out);
/* The first private key in pem: 0, -MESH_EPARSE, -MESH_ETOOBIG, -ENOMEM.
 * Free *out with EVP_PKEY_free(). */
MESH_MUST_CHECK int mesh_pem_read_key(const char *pem, size_t len, EVP_PKEY **out);
/* (Readers never ask for a passphrase: an encrypted block, a key or a
 * "Proc-Type: 4,ENCRYPTED" one, is -MESH_EPARSE.) */
/* The first CSR in pem: 0, -MESH_EPARSE, -MESH_ETOOBIG, -ENOMEM.  Free *out
 * with X509_REQ_free(). */
MESH_MUST_CHECK int mesh_pem_read_csr(const char *pem, size_t len, X509_REQ **out);

/* OpenSSL's reason for the last failure into buf ("unknown" when it has
 * none), and its error queue cleared.  Returns buf. */
const char *mesh_pem_ssl_reason(char *buf, size_t cap);

#endif
