/*
 * test_http1.c - dataplane/http1.h beyond the golden cases (tests/http/):
 * the writer (a parsed head forwarded without its hop-by-hop fields and
 * re-framed, then parsed again), header injection refused, chunk prefixes
 * and chunked output decoded back, trailer splitting, error names and
 * statuses, and head parsing resumed over a growing buffer.
 */
#include "dataplane/http1.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct h1_str S(const char *s)
{
	struct h1_str r = { s, strlen(s) };

	return r;
}

static const char REQ[] = "POST /up?x=1 HTTP/1.1\r\n"
			  "Host: reviews.demo:9080\r\n"
			  "Connection: keep-alive, X-Hop\r\n"
			  "X-Hop: 1\r\n"
			  "Keep-Alive: timeout=5\r\n"
			  "Content-Length: 5\r\n"
			  "X-End: kept\r\n"
			  "\r\n"
			  "hello";

START_TEST(forward_head_reframed)
{
	struct h1_header hdrs[16], hdrs2[16];
	struct h1_parser p;
	struct h1_head h, h2;
	struct mesh_buf b;

	h1_parser_init(&p, 1, NULL, hdrs, 16);
	ck_assert_int_eq(h1_parse_head(&p, REQ, sizeof(REQ) - 1, &h), H1_OK);
	ck_assert_int_eq(h.framing, H1_BODY_LENGTH);
	ck_assert_uint_eq(h.content_length, 5);
	ck_assert_uint_eq(h.head_len, sizeof(REQ) - 1 - 5);
	mesh_buf_init(&b, 4096);
	ck_assert_int_eq(h1_out_request_line(&b, h.method, h.target), 0);
	ck_assert_int_eq(h1_out_fields(&b, &h, 1), 0);
	ck_assert_int_eq(h1_out_framing(&b, H1_BODY_CHUNKED, 0), 0);
	ck_assert_int_eq(h1_out_end(&b), 0);
	ck_assert_str_eq(b.data, "POST /up?x=1 HTTP/1.1\r\n"
				 "Host: reviews.demo:9080\r\n"
				 "X-End: kept\r\n"
				 "Transfer-Encoding: chunked\r\n"
				 "\r\n");
	ck_assert_int_eq(h1_out_chunk(&b, "hello", 5), 0);
	ck_assert_int_eq(mesh_buf_append(&b, H1_CHUNK_LAST, strlen(H1_CHUNK_LAST)), 0);
	/* what we write, we parse */
	h1_parser_init(&p, 1, NULL, hdrs2, 16);
	ck_assert_int_eq(h1_parse_head(&p, b.data, b.len, &h2), H1_OK);
	ck_assert_int_eq(h2.framing, H1_BODY_CHUNKED);
	ck_assert_uint_eq(h2.n_headers, 3);
	{
		struct h1_str d;
		size_t used, off = h2.head_len;
		int rc;

		rc = h1_parse_body(&p, b.data + off, b.len - off, &used, &d);
		ck_assert_int_eq(rc, H1_DATA);
		ck_assert_uint_eq(d.len, 5);
		ck_assert(memcmp(d.p, "hello", 5) == 0);
		off += used;
		rc = h1_parse_body(&p, b.data + off, b.len - off, &used, &d);
		ck_assert_int_eq(rc, H1_DONE);
		ck_assert_uint_eq(off + used, b.len);
	}
	mesh_buf_reset(&b);
	ck_assert_int_eq(h1_out_status_line(&b, 503, S("")), 0);
	ck_assert_int_eq(h1_out_framing(&b, H1_BODY_LENGTH, 1234567890123ull), 0);
	ck_assert_str_eq(b.data, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1234567890123\r\n");
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(no_header_injection)
{
	struct mesh_buf b;

	mesh_buf_init(&b, 4096);
	ck_assert_int_eq(h1_out_header(&b, S("X-A"), S("1\r\nX-Injected: 2")), -EINVAL);
	ck_assert_int_eq(h1_out_header(&b, S("X-A\r\nB"), S("1")), -EINVAL);
	ck_assert_int_eq(h1_out_header(&b, S("X-A:"), S("1")), -EINVAL);
	ck_assert_int_eq(h1_out_header(&b, S(""), S("1")), -EINVAL);
	ck_assert_int_eq(h1_out_request_line(&b, S("GET"), S("/a\nb")), -EINVAL);
	ck_assert_int_eq(h1_out_status_line(&b, 200, S("OK\r\n")), -EINVAL);
	ck_assert_uint_eq(b.len, 0);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(chunk_prefix)
{
	char pre[H1_CHUNK_PREFIX_MAX];
	size_t n;

	n = h1_chunk_prefix(pre, 0x1a2b);
	ck_assert_uint_eq(n, 6);
	ck_assert(memcmp(pre, "1a2b\r\n", 6) == 0);
	n = h1_chunk_prefix(pre, 1);
	ck_assert(n == 3 && memcmp(pre, "1\r\n", 3) == 0);
	n = h1_chunk_prefix(pre, SIZE_MAX);
	ck_assert_uint_eq(n, sizeof(size_t) * 2 + 2);
}
END_TEST

START_TEST(trailers_split)
{
	struct h1_header f[4];
	struct h1_str block = S("grpc-status: 0\r\ngrpc-message:  ok \r\n");
	size_t n = h1_split_fields(block, f, 4);

	ck_assert_uint_eq(n, 2);
	ck_assert(f[0].name.len == 11 && memcmp(f[0].name.p, "grpc-status", 11) == 0);
	ck_assert(f[0].value.len == 1 && f[0].value.p[0] == '0');
	ck_assert(f[1].value.len == 2 && memcmp(f[1].value.p, "ok", 2) == 0);
}
END_TEST

START_TEST(errors_named)
{
	ck_assert_str_eq(h1_strerror(-H1_E_CL_TE), "cl-te");
	ck_assert_int_eq(h1_err_status(-H1_E_CL_TE), 400);
	ck_assert_int_eq(h1_err_status(-H1_E_TOO_MANY_HEADERS), 431);
	ck_assert_int_eq(h1_err_status(-H1_E_HEAD_TOO_LARGE), 431);
	ck_assert_int_eq(h1_err_status(-H1_E_VERSION_UNSUPPORTED), 505);
	ck_assert_str_eq(h1_strerror(-9999), "unknown");
}
END_TEST

START_TEST(head_resumes_over_growing_buffer)
{
	struct h1_header hdrs[16];
	struct h1_parser p;
	struct h1_head h;
	size_t n, headlen = sizeof(REQ) - 1 - 5;

	h1_parser_init(&p, 1, NULL, hdrs, 16);
	for (n = 0; n < headlen; n++)
		ck_assert_int_eq(h1_parse_head(&p, REQ, n, &h), H1_AGAIN);
	/* the scan resumed where it stopped: it never went back to the start */
	ck_assert_uint_le(p.scan, headlen);
	ck_assert_int_eq(h1_parse_head(&p, REQ, headlen, &h), H1_OK);
	ck_assert(h1_str_ieq(h1_head_get(&h, "x-end"), "kept"));
	ck_assert(h1_str_ieq(h.host, "reviews.demo:9080"));
	ck_assert(h.flags & H1_F_KEEP_ALIVE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http1");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, forward_head_reframed);
	tcase_add_test(tc, no_header_injection);
	tcase_add_test(tc, chunk_prefix);
	tcase_add_test(tc, trailers_split);
	tcase_add_test(tc, errors_named);
	tcase_add_test(tc, head_resumes_over_growing_buffer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
