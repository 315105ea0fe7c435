/*
 * bench_http1.c - parser throughput on a typical request head and a small
 * chunked body (make http-bench): prints MB/s and heads/s.  A benchmark,
 * not a test: it asserts nothing about speed.
 */
#include "dataplane/http1.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char REQ[] =
	"GET /productpage/reviews/0?user=jason&format=json HTTP/1.1\r\n"
	"Host: reviews.demo.svc.cluster.local:9080\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
	"Accept-Language: en-US,en;q=0.9\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Connection: keep-alive\r\n"
	"Cookie: session=6f1c2a9e0b7d4c3f8a5e; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n"
	"X-Request-Id: 7c9e6679-7425-40de-944b-e07fc1f90ae7\r\n"
	"X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
	"X-B3-SpanId: e457b5a2e4d86bd1\r\n"
	"X-Forwarded-For: 10.0.0.1\r\n"
	"X-Forwarded-Proto: http\r\n"
	"\r\n";

static const char CHUNKED_HEAD[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	enum { N = 2000000 };
	struct h1_header hdrs[H1_DEFAULT_MAX_HEADERS];
	struct h1_parser p;
	struct h1_head h;
	struct h1_str d;
	char body[16384 + 64];
	size_t len = sizeof(REQ) - 1, used, n, off;
	double t0, t;
	long i;
	unsigned long sink = 0;

	h1_parser_init(&p, 1, NULL, hdrs, H1_DEFAULT_MAX_HEADERS);
	t0 = now();
	for (i = 0; i < N; i++) {
		h1_parser_reset(&p);
		if (h1_parse_head(&p, REQ, len, &h) != H1_OK)
			return 1;
		sink += h.n_headers;
	}
	t = now() - t0;
	printf("http1 head: %zu bytes, %zu fields: %.0f MB/s, %.2f M heads/s, %.0f ns/head\n", len, h.n_headers,
	       (double)len * N / t / 1e6, N / t / 1e6, t / N * 1e9);
	/* a 16 KiB chunked body in 1 KiB chunks */
	off = 0;
	for (i = 0; i < 16; i++) {
		n = h1_chunk_prefix(body + off, 1024);
		off += n;
		memset(body + off, 'x', 1024);
		off += 1024;
		memcpy(body + off, "\r\n", 2);
		off += 2;
	}
	memcpy(body + off, "0\r\n\r\n", 5);
	off += 5;
	t0 = now();
	for (i = 0; i < N / 20; i++) {
		size_t pos = 0;
		int rc;

		h1_parser_reset(&p);
		/* a chunked request head sets the body state; reuse a minimal one */
		if (h1_parse_head(&p, CHUNKED_HEAD, sizeof(CHUNKED_HEAD) - 1, &h) != H1_OK)
			return 1;
		while ((rc = h1_parse_body(&p, body + pos, off - pos, &used, &d)) == H1_DATA) {
			pos += used;
			sink += d.len;
		}
		if (rc != H1_DONE)
			return 1;
	}
	t = now() - t0;
	printf("http1 chunked body: %.0f MB/s (1 KiB chunks)\n", (double)off * (N / 20) / t / 1e6);
	return sink == 0;
}
