/*
 * fuzz_csr.c - libFuzzer target for CSR handling in the CA
 * (controlplane/ca/ca.c ca_sign_csr): the PEM a workload sends in an Istio
 * CreateCertificate request, with the namespace and service account the
 * caller's credential named, as the CA receives them.
 * Input: "NS\nSA\nTTL\n" then the CSR bytes (the three header lines are
 * optional: a missing one keeps the default "default"/"sleep"/0).
 * Invariants: no crash, leak or sanitizer report; a signed chain is
 * non-empty, leaf first, each element a PEM certificate; an error is one
 * of the documented codes.
 */
#include "controlplane/ca/ca.h"

#include "common/err.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca *the_ca(void)
{
	static struct ca *ca;
	struct ca_config cfg = { NULL, "cluster.local", 3600LL * 1000000000LL, 24LL * 3600 * 1000000000LL };
	char err[256];

	/* one in-memory root for the whole run: generating one per input
	 * would be all the fuzzer measures */
	if (ca == NULL && ca_new(&cfg, &ca, err, sizeof(err)) != 0)
		abort();
	return ca;
}

/* the next '\n'-terminated field of at most cap-1 bytes into out */
static int field(const char **p, const char *end, char *out, size_t cap)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n;

	if (nl == NULL || (size_t)(nl - *p) >= cap)
		return -1;
	n = (size_t)(nl - *p);
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = nl + 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char ns[96] = "default", sa[96] = "sleep", ttl[24] = "0", err[256];
	struct ca_chain chain = { NULL, 0 };
	char *csr;
	size_t i, n;
	int rc;

	/* the header is only taken when it starts with '#': a seed may be
	 * a bare PEM */
	if (size > 0 && p[0] == '#') {
		p++;
		if (field(&p, end, ns, sizeof(ns)) != 0 || field(&p, end, sa, sizeof(sa)) != 0 ||
		    field(&p, end, ttl, sizeof(ttl)) != 0)
			return 0;
	}
	n = (size_t)(end - p);
	/* an exact-size copy: ASan sees a read past the CSR */
	csr = malloc(n ? n : 1);
	if (csr == NULL)
		return 0;
	if (n)
		memcpy(csr, p, n);
	rc = ca_sign_csr(the_ca(), csr, n, ns, sa, strtoll(ttl, NULL, 10), &chain, err, sizeof(err));
	if (rc == 0) {
		if (chain.n == 0)
			abort();
		for (i = 0; i < chain.n; i++)
			if (chain.pem[i] == NULL || strncmp(chain.pem[i], "-----BEGIN CERTIFICATE-----", 27) != 0)
				abort();
	} else if (rc != -MESH_ETOOBIG && rc != -MESH_EPARSE && rc != -MESH_ESEMANTIC && rc != -MESH_ETLS &&
		   rc != -ENOMEM && rc != -EINVAL) {
		abort();
	}
	ca_chain_cleanup(&chain);
	free(csr);
	return 0;
}
