/*
 * fuzz_http1.c - libFuzzer entry point for dataplane/http1.c (make fuzz).
 *
 * Any input is parsed as a connection's bytes (responses when it starts
 * with "HTTP/", requests otherwise) without crashing, reading out of bounds
 * or leaking; and the invariant of an incremental parser: the outcome text
 * of the input fed whole equals the outcome of the same input split at
 * pseudo-random points (derived from the input, so a crash reproduces).
 * A difference aborts.
 */
#include "dataplane/http1.h"
#include "tests/http/h1drive.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fnv(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h1drive_opts o;
	struct mesh_buf whole, split;
	size_t cuts[8], ncuts = 0, i;
	uint64_t h = fnv(data, size);

	memset(&o, 0, sizeof(o));
	o.response = size >= 5 && memcmp(data, "HTTP/", 5) == 0;
	if (o.response && (h & 1))
		o.req_flags = H1_F_HEAD;
	/* a small head limit now and then, so the 431 paths are reached */
	if ((h >> 1) % 4 == 0)
		o.max_head_bytes = 64 + (h >> 8) % 512;
	if ((h >> 3) % 4 == 0)
		o.max_headers = 1 + (h >> 16) % 8;
	mesh_buf_init(&whole, 1u << 26);
	mesh_buf_init(&split, 1u << 26);
	if (size > 1) {
		for (i = 0; i < 8; i++) {
			h = h * 6364136223846793005ull + 1442695040888963407ull;
			cuts[ncuts++] = (size_t)((h >> 33) % size);
		}
		/* ascending and distinct, as h1drive_run wants */
		for (i = 1; i < ncuts; i++) {
			size_t j = i, t;

			while (j > 0 && cuts[j - 1] > cuts[j]) {
				t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
				j--;
			}
		}
	}
	if (h1drive_run((const char *)data, size, NULL, 0, &o, &whole) == 0 &&
	    h1drive_run((const char *)data, size, cuts, ncuts, &o, &split) == 0 &&
	    (whole.len != split.len || (whole.len && memcmp(whole.data, split.data, whole.len) != 0))) {
		fprintf(stderr, "fuzz_http1: whole and split differ\n--- whole\n%s--- split\n%s", whole.data,
			split.data);
		abort();
	}
	mesh_buf_cleanup(&whole);
	mesh_buf_cleanup(&split);
	return 0;
}
