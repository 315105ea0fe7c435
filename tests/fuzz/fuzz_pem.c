/*
 * fuzz_pem.c - libFuzzer target for the PEM loaders of common/pem.c and
 * meshproxy's SDS Secret decoding (dataplane/sds.c), make fuzz.
 *
 * The first byte picks what the rest is (mode = byte % 8):
 * 0 certificates (mesh_pem_read_certs), 1 a private key
 *   (mesh_pem_read_key), 2 a CSR (mesh_pem_read_csr): PEM text; what
 *   loads is written out again (mesh_pem_from_*) and must load again to
 *   the same (certificate count, key, CSR);
 * 3 DER bytes armoured here as a CERTIFICATE, 4 as a PRIVATE KEY, then
 *   as 0 and 1 (most mutations of PEM text die in base64; these reach the
 *   DER decoding behind it);
 * 5 a Secret built here: the rest split at its first NUL into a
 *   certificate chain and a key (tls_certificate), or, when byte 0 has
 *   bit 3 set, the whole rest as trusted_ca (validation_context); checked
 *   (px_sds_check) and stored (px_sds_update), which must agree, then
 *   dumped;
 * 6 the rest as a Secret's bytes from a control plane, the same way;
 * 7 the rest as a Listener's then a Cluster's bytes, their SDS secret
 *   names walked (px_sds_listener_names_bytes / _cluster_names_bytes).
 * Invariants: no crash, leak or sanitizer report; the round trips above.
 */
#include "common/pem.h"
#include "dataplane/sds.h"
#include "dataplane/snapshot.h"

#include "common/buf.h"
#include "common/log.h"
#include "common/xds/types.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void certs(const char *p, size_t n)
{
	STACK_OF(X509) *sk = NULL, *again = NULL;
	char *out;

	if (mesh_pem_read_certs(p, n, &sk) != 0) {
		if (sk != NULL && sk_X509_num(sk) != 0)
			abort(); /* a failure appends nothing */
		sk_X509_pop_free(sk, X509_free);
		return;
	}
	out = mesh_pem_from_certs(sk, 0, sk_X509_num(sk));
	if (out != NULL) {
		if (mesh_pem_read_certs(out, strlen(out), &again) != 0 || sk_X509_num(again) != sk_X509_num(sk))
			abort();
		sk_X509_pop_free(again, X509_free);
		free(out);
	}
	sk_X509_pop_free(sk, X509_free);
}

static void key(const char *p, size_t n)
{
	EVP_PKEY *k = NULL, *again = NULL;
	char *out;

	if (mesh_pem_read_key(p, n, &k) != 0)
		return;
	out = mesh_pem_from_key(k);
	if (out != NULL) {
		if (mesh_pem_read_key(out, strlen(out), &again) != 0 || EVP_PKEY_eq(k, again) != 1)
			abort();
		EVP_PKEY_free(again);
		OPENSSL_cleanse(out, strlen(out));
		free(out);
	}
	EVP_PKEY_free(k);
}

static void csr(const char *p, size_t n)
{
	X509_REQ *r = NULL, *again = NULL;
	char *out;

	if (mesh_pem_read_csr(p, n, &r) != 0)
		return;
	out = mesh_pem_from_csr(r);
	if (out != NULL) {
		if (mesh_pem_read_csr(out, strlen(out), &again) != 0)
			abort();
		X509_REQ_free(again);
		free(out);
	}
	X509_REQ_free(r);
}

/* DER bytes in a PEM armour with label, then to fn. */
static void armoured(const char *label, const uint8_t *d, size_t n, void (*fn)(const char *, size_t))
{
	size_t cap = 64 + 2 * strlen(label) + 4 * (n / 3 + 1) + n / 48 + 2;
	char *p = malloc(cap);
	size_t len;
	int b64;

	if (p == NULL)
		return;
	len = (size_t)snprintf(p, cap, "-----BEGIN %s-----\n", label);
	b64 = EVP_EncodeBlock((unsigned char *)p + len, d, (int)n);
	len += (size_t)b64;
	len += (size_t)snprintf(p + len, cap - len, "\n-----END %s-----\n", label);
	fn(p, len);
	free(p);
}

/* Checked then stored: both accept or both refuse; what is stored is
 * found by its name and dumped. */
static void secret(const char *name, const uint8_t *d, size_t n)
{
	struct px_resource *r = NULL;
	struct px_sds *s = NULL;
	struct mesh_buf b;
	char err[256];
	int c, u;

	if (px_resource_decode(XDS_SECRET, name, d, n, &r) != 0)
		return;
	if (px_sds_new(&s) != 0) {
		px_resource_unref(r);
		return;
	}
	err[0] = 0;
	c = px_sds_check(s, r, err, sizeof(err));
	u = px_sds_update(s, (const struct px_resource *const *)&r, 1, err, sizeof(err));
	if ((c == 0) != (u == 0))
		abort();
	if (u == 0) {
		if (px_sds_get(s, name) == NULL || px_sds_generation(s, name) == 0 || px_sds_count(s) != 1)
			abort();
		/* the same bytes again keep the generation */
		c = (int)px_sds_generation(s, name);
		if (px_sds_update(s, (const struct px_resource *const *)&r, 1, err, sizeof(err)) != 0 ||
		    px_sds_generation(s, name) != (unsigned)c)
			abort();
		mesh_buf_init(&b, 1u << 24);
		(void)px_sds_dump_entries(s, &b, 1);
		mesh_buf_cleanup(&b);
		px_sds_retain(s, NULL, 0);
		if (px_sds_count(s) != 0)
			abort();
	} else if (px_sds_count(s) != 0 || err[0] == 0) {
		abort(); /* a refusal stores nothing and says why */
	}
	px_sds_free(s);
	px_resource_unref(r);
}

static void built_secret(int ca, const uint8_t *d, size_t n)
{
	Envoy__Extensions__TransportSockets__Tls__V3__Secret sec = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Config__Core__V3__DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT,
					    pkey = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
	const uint8_t *nul = memchr(d, 0, n);
	uint8_t *wire;
	size_t len;

	sec.name = "spiffe://cluster.local/ns/default/sa/web";
	chain.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
	if (ca) {
		chain.inline_bytes.data = (uint8_t *)d;
		chain.inline_bytes.len = n;
		vc.trusted_ca = &chain;
		sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
		sec.validation_context = &vc;
	} else {
		chain.inline_bytes.data = (uint8_t *)d;
		chain.inline_bytes.len = nul ? (size_t)(nul - d) : n;
		pkey.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
		pkey.inline_bytes.data = nul ? (uint8_t *)nul + 1 : NULL;
		pkey.inline_bytes.len = nul ? n - (size_t)(nul - d) - 1 : 0;
		tc.certificate_chain = &chain;
		tc.private_key = &pkey;
		sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
		sec.tls_certificate = &tc;
	}
	len = envoy__extensions__transport_sockets__tls__v3__secret__get_packed_size(&sec);
	wire = malloc(len ? len : 1);
	if (wire == NULL)
		return;
	envoy__extensions__transport_sockets__tls__v3__secret__pack(&sec, wire);
	secret(sec.name, wire, len);
	free(wire);
}

static int count_name(void *ctx, const char *name)
{
	if (name == NULL)
		abort();
	(*(size_t *)ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *d = data + 1;
	size_t n = size ? size - 1 : 0, names = 0;

	/* the store logs every secret it adds or drops: silenced for speed */
	mesh_log_set_level(MESH_LOG_OFF);
	if (size == 0)
		return 0;
	switch (data[0] % 8) {
	case 0:
		certs((const char *)d, n);
		break;
	case 1:
		key((const char *)d, n);
		break;
	case 2:
		csr((const char *)d, n);
		break;
	case 3:
		armoured("CERTIFICATE", d, n, certs);
		break;
	case 4:
		armoured("PRIVATE KEY", d, n, key);
		break;
	case 5:
		built_secret(data[0] & 8, d, n);
		break;
	case 6:
		secret("s", d, n);
		break;
	default:
		/* the callback never fails: only a context that does not decode may */
		if (px_sds_listener_names_bytes(d, n, count_name, &names) < 0)
			names = 0;
		if (px_sds_cluster_names_bytes(d, n, count_name, &names) < 0)
			names = 0;
		break;
	}
	ERR_clear_error();
	return 0;
}
