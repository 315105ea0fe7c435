/*
 * fuzz_sniff.c - libFuzzer target for the listener-filter sniffers
 * (dataplane/sniff.c): the first bytes a peer sends, looked at as a TLS
 * ClientHello (SNI, ALPN) and as a cleartext HTTP request line or the h2c
 * preface, over every prefix length as bytes would arrive.
 * Invariants: no crash or sanitizer report; the result is one of the three
 * codes; SNI and ALPN strings are terminated within their arrays; a prefix
 * of an input that is decided YES or NO never says YES for another
 * protocol name (the HTTP proto is one of the three names).
 */
#include "dataplane/sniff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_tls(const uint8_t *data, size_t n)
{
	struct sniff_tls t;
	enum sniff_rc rc;
	size_t i;

	memset(&t, 0, sizeof(t));
	rc = sniff_tls(data, n, &t);
	if (rc != SNIFF_MORE && rc != SNIFF_YES && rc != SNIFF_NO)
		abort();
	if (rc != SNIFF_YES)
		return;
	if (memchr(t.sni, 0, sizeof(t.sni)) == NULL || t.n_alpn > SNIFF_ALPN_MAX)
		abort();
	for (i = 0; i < t.n_alpn; i++)
		if (memchr(t.alpn[i], 0, SNIFF_ALPN_LEN) == NULL)
			abort();
}

static void check_http(const uint8_t *data, size_t n)
{
	char proto[16];
	enum sniff_rc rc;

	memset(proto, 'x', sizeof(proto));
	rc = sniff_http(data, n, proto);
	if (rc != SNIFF_MORE && rc != SNIFF_YES && rc != SNIFF_NO)
		abort();
	if (rc == SNIFF_YES && strcmp(proto, "http/1.0") != 0 && strcmp(proto, "http/1.1") != 0 &&
	    strcmp(proto, "h2c") != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	size_t n, step;

	/* an exact-size heap copy so ASan sees any read past the bytes given */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	/* every prefix, as the bytes may arrive (a stride past 256 keeps
	 * large inputs cheap) */
	step = size > 256 ? size / 64 : 1;
	for (n = 0; n < size; n += step) {
		check_tls(copy, n);
		check_http(copy, n);
	}
	check_tls(copy, size);
	check_http(copy, size);
	free(copy);
	return 0;
}
