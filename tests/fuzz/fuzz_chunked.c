/*
 * fuzz_chunked.c - libFuzzer target for the chunked transfer-coding decoder
 * of dataplane/http1.c on its own (make fuzz): the input is the body of a
 * request whose head said "Transfer-Encoding: chunked" (a fixed head
 * parsed first puts the parser in that state), fed to h1_parse_body().
 *
 * Invariants (a difference aborts):
 * - the outcome (data, trailers, end or error, bytes used at the end) of the body fed
 *   whole equals that of the body fed one byte at a time, and that of the
 *   body split at points derived from the input (so a crash reproduces);
 * - what a complete body decodes to, chunked again by h1_out_chunk() and
 *   ended by H1_CHUNK_LAST, decodes to the same data.
 * No crash, read out of bounds, leak or sanitizer report.
 */
#include "dataplane/http1.h"

#include "common/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char HEAD[] = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

struct outcome {
	struct mesh_buf data;     /* the decoded body */
	struct mesh_buf trailers; /* every H1_TRAILERS span, each followed by "|" */
	int result;               /* H1_DONE, H1_AGAIN (input ran out) or a negative error */
	size_t used;              /* body bytes used up to H1_DONE, the error or the end of input */
};

static uint64_t fnv(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

/* Decodes body[0..len) arriving in pieces ending at cuts[] (ascending,
 * each < len) then len; max_head: the trailer section's limit. */
static void decode(const char *body, size_t len, const size_t *cuts, size_t ncuts, size_t max_head,
		   struct outcome *o)
{
	struct h1_header hdrs[16];
	struct h1_limits lim = { max_head, 16 };
	struct h1_parser p;
	struct h1_head h;
	size_t off = 0, arrived, k, guard = 0;

	mesh_buf_init(&o->data, 1u << 24);
	mesh_buf_init(&o->trailers, 1u << 24);
	o->result = H1_AGAIN;
	o->used = 0;
	h1_parser_init(&p, 1, &lim, hdrs, 16);
	if (h1_parse_head(&p, HEAD, sizeof(HEAD) - 1, &h) != H1_OK || h.framing != H1_BODY_CHUNKED)
		abort();
	for (k = 0; k <= ncuts; k++) {
		arrived = k < ncuts ? cuts[k] : len;
		for (;;) {
			struct h1_str d = { NULL, 0 };
			size_t consumed = 0;
			int r = h1_parse_body(&p, body + off, arrived - off, &consumed, &d);

			if (consumed > arrived - off)
				abort();
			off += consumed;
			/* each call that does not wait makes progress or returns data */
			if (++guard > 4 * (len + 16))
				abort();
			if (r == H1_DATA) {
				if (d.len == 0 || d.p < body || d.p + d.len > body + arrived)
					abort();
				mesh_buf_append(&o->data, d.p, d.len);
				continue;
			}
			if (r == H1_TRAILERS) {
				mesh_buf_append(&o->trailers, d.p, d.len);
				mesh_buf_puts(&o->trailers, "|");
				continue;
			}
			if (r == H1_AGAIN)
				break;
			o->result = r;
			o->used = off;
			return;
		}
	}
	o->used = off;
	/* the peer closed here: a chunked body cut short is truncated */
	if (h1_parse_eof(&p) != -H1_E_TRUNCATED)
		abort();
}

static void outcome_free(struct outcome *o)
{
	mesh_buf_cleanup(&o->data);
	mesh_buf_cleanup(&o->trailers);
}

static int buf_eq(const struct mesh_buf *a, const struct mesh_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void same(const struct outcome *a, const struct outcome *b, const char *what)
{
	/* bytes used count only at the end of the message (they say where the
	 * next one starts): waiting, the parser may hold back a partial
	 * chunk-size line, and after an error the connection closes */
	if (a->result == b->result && (a->result != H1_DONE || a->used == b->used) && buf_eq(&a->data, &b->data) &&
	    buf_eq(&a->trailers, &b->trailers))
		return;
	fprintf(stderr, "fuzz_chunked: whole and %s differ: result %d/%d used %zu/%zu data %zu/%zu trailers %zu/%zu\n",
		what, a->result, b->result, a->used, b->used, a->data.len, b->data.len, a->trailers.len,
		b->trailers.len);
	abort();
}

/* The decoded data chunked again (pieces of 1..n bytes) decodes to itself. */
static void round_trip(const struct mesh_buf *data, uint64_t h)
{
	struct mesh_buf enc;
	struct outcome o;
	size_t off = 0;

	mesh_buf_init(&enc, 1u << 26);
	while (off < data->len) {
		size_t n = 1 + (size_t)(h % 97);

		if (n > data->len - off)
			n = data->len - off;
		if (h1_out_chunk(&enc, data->data + off, n) != 0)
			abort();
		off += n;
		h = h * 6364136223846793005ull + 1442695040888963407ull;
	}
	mesh_buf_puts(&enc, H1_CHUNK_LAST);
	if (enc.err)
		abort();
	decode(enc.data, enc.len, NULL, 0, 8192, &o);
	if (o.result != H1_DONE || o.used != enc.len || !buf_eq(&o.data, data) || o.trailers.len != 0) {
		fprintf(stderr, "fuzz_chunked: %zu bytes chunked again decode to %d, %zu bytes\n", data->len,
			o.result, o.data.len);
		abort();
	}
	outcome_free(&o);
	mesh_buf_cleanup(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	uint64_t h = fnv(data, size);
	/* a small trailer limit now and then, so the 431 paths are reached */
	size_t max_head = (h & 3) == 0 ? 64 + (size_t)((h >> 8) % 256) : 8192;
	struct outcome whole, bytes, split;
	size_t cuts[8], ncuts = 0, i, *each = NULL;

	decode(body, size, NULL, 0, max_head, &whole);
	/* one byte at a time */
	if (size > 1) {
		each = malloc((size - 1) * sizeof(*each));
		if (each == NULL)
			return 0;
		for (i = 1; i < size; i++)
			each[i - 1] = i;
	}
	decode(body, size, each, size > 1 ? size - 1 : 0, max_head, &bytes);
	same(&whole, &bytes, "byte by byte");
	free(each);
	/* at up to 8 points from the input, ascending and distinct */
	for (i = 0; i < 8 && size > 1; i++) {
		size_t c, j;

		h = h * 6364136223846793005ull + 1442695040888963407ull;
		c = 1 + (size_t)((h >> 33) % (size - 1));
		for (j = 0; j < ncuts && cuts[j] < c; j++)
			;
		if (j < ncuts && cuts[j] == c)
			continue;
		memmove(cuts + j + 1, cuts + j, (ncuts - j) * sizeof(cuts[0]));
		cuts[j] = c;
		ncuts++;
	}
	decode(body, size, cuts, ncuts, max_head, &split);
	same(&whole, &split, "split");
	if (whole.result == H1_DONE)
		round_trip(&whole.data, h);
	outcome_free(&whole);
	outcome_free(&bytes);
	outcome_free(&split);
	return 0;
}
