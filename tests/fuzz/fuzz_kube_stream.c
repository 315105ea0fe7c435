/*
 * fuzz_kube_stream.c - libFuzzer target for the Kubernetes watch framer
 * (controlplane/kube/kube_stream.c): a watch response body split into
 * chunks at arbitrary places, as HTTP chunking delivers it.
 * The first byte seeds the chunk boundaries; the rest is the body.
 * Invariants: no crash, leak or sanitizer report; every event handed to the
 * callback is non-empty, within the cap and starts with '{' or '['; the
 * same body fed whole gives the same events (count and bytes) as fed in
 * pieces, unless an error stops either.
 */
#include "controlplane/kube/kube_stream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096

struct seen {
	size_t n;
	unsigned long sum; /* a cheap digest of the events' bytes */
};

static int on_event(void *ctx, const char *ev, size_t len)
{
	struct seen *s = ctx;
	size_t i;

	if (len == 0 || len > CAP || (ev[0] != '{' && ev[0] != '['))
		abort();
	s->n++;
	for (i = 0; i < len; i++)
		s->sum = s->sum * 31u + (unsigned char)ev[i];
	return 0;
}

static int run(const char *p, size_t n, unsigned seed, struct seen *out)
{
	struct kube_stream ks;
	size_t off = 0, len;
	int rc = 0;

	kube_stream_init(&ks, CAP);
	while (off < n && rc == 0) {
		len = seed ? 1 + (seed + off * 7u) % 13u : n - off;
		if (len > n - off)
			len = n - off;
		rc = kube_stream_feed(&ks, p + off, len, on_event, out);
		off += len;
	}
	(void)kube_stream_idle(&ks);
	/* a reset stream must take a fresh response again */
	kube_stream_reset(&ks);
	if (kube_stream_feed(&ks, "{}\n", 3, on_event, &(struct seen){ 0, 0 }) != 0)
		abort();
	kube_stream_cleanup(&ks);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen whole = { 0, 0 }, split = { 0, 0 };
	int rc1, rc2;
	char *body;

	if (size < 1)
		return 0;
	body = malloc(size);
	if (body == NULL)
		return 0;
	memcpy(body, data + 1, size - 1);
	rc1 = run(body, size - 1, 0, &whole);
	rc2 = run(body, size - 1, (unsigned)data[0] + 1u, &split);
	if (rc1 == 0 && rc2 == 0 && (whole.n != split.n || whole.sum != split.sum))
		abort();
	free(body);
	return 0;
}
