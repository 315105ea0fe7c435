/*
 * test_sniff.c - tls_inspector and http_inspector (dataplane/sniff.h).
 *
 * ClientHellos are built here field by field (SNI, ALPN, padding,
 * session id) and fed whole, split over records, a byte at a time and
 * truncated at every length (a prefix is never decided as a complete
 * hello); hostile variants (lengths overrunning their container,
 * duplicate extensions, empty names, oversized hellos, non-handshake
 * records) are refused; a seeded mutation pass over every byte checks
 * that nothing crashes or reads out of bounds (ASan) and that the verdict
 * stays one of the three.  HTTP: request lines of both versions, the h2
 * preface, prefixes of each, and bytes that are not HTTP.
 */
#include "dataplane/sniff.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hb {
	unsigned char p[40000];
	size_t n;
};

static void put(struct hb *b, const void *v, size_t n)
{
	ck_assert(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, v, n);
	b->n += n;
}

static void put8(struct hb *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	put(b, &c, 1);
}

static void put16(struct hb *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v & 0xff);
}

/* A ClientHello handshake message (type, 24-bit length, body). */
static void hello(struct hb *h, const char *sni, const char *const *alpn, size_t n_alpn, size_t padding)
{
	struct hb body = { .n = 0 }, ext = { .n = 0 };
	size_t i;

	put16(&body, 0x0303);
	for (i = 0; i < 32; i++)
		put8(&body, i);
	put8(&body, 32);
	for (i = 0; i < 32; i++)
		put8(&body, 0xa0 + i);
	put16(&body, 4);
	put16(&body, 0x1301);
	put16(&body, 0xc02f);
	put8(&body, 1);
	put8(&body, 0);
	if (sni) {
		size_t l = strlen(sni);

		put16(&ext, 0);
		put16(&ext, (unsigned)(l + 5));
		put16(&ext, (unsigned)(l + 3));
		put8(&ext, 0);
		put16(&ext, (unsigned)l);
		put(&ext, sni, l);
	}
	/* an extension meshproxy does not read (supported_versions) */
	put16(&ext, 43);
	put16(&ext, 3);
	put8(&ext, 2);
	put16(&ext, 0x0304);
	if (n_alpn) {
		size_t tot = 0;

		for (i = 0; i < n_alpn; i++)
			tot += 1 + strlen(alpn[i]);
		put16(&ext, 16);
		put16(&ext, (unsigned)(tot + 2));
		put16(&ext, (unsigned)tot);
		for (i = 0; i < n_alpn; i++) {
			put8(&ext, (unsigned)strlen(alpn[i]));
			put(&ext, alpn[i], strlen(alpn[i]));
		}
	}
	if (padding) {
		put16(&ext, 21);
		put16(&ext, (unsigned)padding);
		for (i = 0; i < padding; i++)
			put8(&ext, 0);
	}
	put16(&body, (unsigned)ext.n);
	put(&body, ext.p, ext.n);
	h->n = 0;
	put8(h, 1);
	put8(h, (unsigned)(body.n >> 16));
	put16(h, (unsigned)(body.n & 0xffff));
	put(h, body.p, body.n);
}

/* The handshake message in records of at most rec bytes each. */
static void records(struct hb *out, const struct hb *hs, size_t rec)
{
	size_t off = 0;

	out->n = 0;
	while (off < hs->n) {
		size_t k = hs->n - off < rec ? hs->n - off : rec;

		put8(out, 22);
		put16(out, 0x0301);
		put16(out, (unsigned)k);
		put(out, hs->p + off, k);
		off += k;
	}
}

static struct hb hs, wire;

START_TEST(tls_whole)
{
	static const char *const alpn[] = { "istio-peer-exchange", "istio", "h2", "http/1.1" };
	struct sniff_tls t;

	hello(&hs, "reviews.default.svc.cluster.local", alpn, 4, 0);
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_YES);
	ck_assert_str_eq(t.sni, "reviews.default.svc.cluster.local");
	ck_assert_uint_eq(t.n_alpn, 4);
	ck_assert_str_eq(t.alpn[0], "istio-peer-exchange");
	ck_assert_str_eq(t.alpn[3], "http/1.1");
	/* application data after the hello changes nothing */
	put(&wire, "\x17\x03\x03\x00\x01x", 6);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_YES);

	hello(&hs, NULL, NULL, 0, 0);
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_YES);
	ck_assert_str_eq(t.sni, "");
	ck_assert_uint_eq(t.n_alpn, 0);
}
END_TEST

/* Every proper prefix is undecided; the split forms decide the same. */
START_TEST(tls_prefixes_and_splits)
{
	static const char *const alpn[] = { "h2" };
	static const size_t recs[] = { 1, 3, 100, 700 };
	struct sniff_tls t;
	size_t i, r;

	hello(&hs, "a.example.com", alpn, 1, 600);
	records(&wire, &hs, 16384);
	for (i = 0; i < wire.n; i++)
		ck_assert_msg(sniff_tls(wire.p, i, &t) == SNIFF_MORE, "prefix %zu", i);
	for (r = 0; r < sizeof(recs) / sizeof(recs[0]); r++) {
		records(&wire, &hs, recs[r]);
		if (hs.n / recs[r] + 1 > 16) {
			/* dribbled a few bytes per record: refused, not waited for */
			ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);
			continue;
		}
		for (i = 0; i < wire.n; i++)
			ck_assert_msg(sniff_tls(wire.p, i, &t) == SNIFF_MORE, "rec %zu prefix %zu", recs[r], i);
		ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_YES);
		ck_assert_str_eq(t.sni, "a.example.com");
		ck_assert_str_eq(t.alpn[0], "h2");
	}
}
END_TEST

START_TEST(tls_not_tls)
{
	struct sniff_tls t;

	ck_assert_int_eq(sniff_tls((const unsigned char *)"GET / HTTP/1.1\r\n", 16, &t), SNIFF_NO);
	ck_assert_int_eq(sniff_tls((const unsigned char *)"\x16\x02", 2, &t), SNIFF_NO);
	ck_assert_int_eq(sniff_tls((const unsigned char *)"\x16", 1, &t), SNIFF_MORE);
	ck_assert_int_eq(sniff_tls((const unsigned char *)"", 0, &t), SNIFF_MORE);
	/* a handshake that is not a ClientHello (a ServerHello) */
	ck_assert_int_eq(sniff_tls((const unsigned char *)"\x16\x03\x01\x00\x04\x02\x00\x00\x00", 9, &t), SNIFF_NO);
	/* a zero-length record */
	ck_assert_int_eq(sniff_tls((const unsigned char *)"\x16\x03\x01\x00\x00", 5, &t), SNIFF_NO);
	/* a record longer than TLS allows */
	ck_assert_int_eq(sniff_tls((const unsigned char *)"\x16\x03\x01\xff\xff\x01", 6, &t), SNIFF_NO);
}
END_TEST

/* Offsets into a hello built by hello() with sni "x.test" and no ALPN. */
START_TEST(tls_hostile)
{
	struct sniff_tls t;
	size_t ext_off;

	/* a hello larger than the cap is refused as soon as its length is read */
	hello(&hs, "big.test", NULL, 0, SNIFF_TLS_MAX);
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, 9, &t), SNIFF_NO);

	/* the handshake length says more than the bytes inside it hold: a
	 * declared length is never read past (the rest is awaited) */
	hello(&hs, "x.test", NULL, 0, 0);
	hs.p[3] = (unsigned char)(hs.p[3] + 10);
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_MORE);

	/* a session id over 32 bytes */
	hello(&hs, "x.test", NULL, 0, 0);
	hs.p[4 + 34] = 33;
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);

	/* the SNI entry's length overruns its list */
	hello(&hs, "x.test", NULL, 0, 0);
	ext_off = 4 + 2 + 32 + 1 + 32 + 2 + 4 + 1 + 1 + 2; /* first extension: server_name */
	ck_assert_uint_eq(hs.p[ext_off + 1], 0);
	hs.p[ext_off + 4 + 2 + 1 + 1] = 40;
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);

	/* an empty host name */
	{
		struct hb e = { .n = 0 };

		hello(&hs, "", NULL, 0, 0);
		records(&e, &hs, 16384);
		ck_assert_int_eq(sniff_tls(e.p, e.n, &t), SNIFF_NO);
	}
	/* a NUL inside the host name */
	hello(&hs, "a\1b.test", NULL, 0, 0);
	hs.p[ext_off + 4 + 5 + 1] = 0;
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);

	/* an extension's length past the extensions block */
	hello(&hs, "x.test", NULL, 0, 0);
	hs.p[ext_off + 3] = 0xff;
	records(&wire, &hs, 16384);
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);

	/* two server_name extensions */
	{
		static const char *const none[] = { NULL };
		struct hb two = { .n = 0 };
		size_t sni_len, body_len;

		(void)none;
		hello(&hs, "x.test", NULL, 0, 0);
		sni_len = 4 + 5 + 6;
		put(&two, hs.p, ext_off + sni_len);
		put(&two, hs.p + ext_off, sni_len);               /* the same extension again */
		put(&two, hs.p + ext_off + sni_len, hs.n - ext_off - sni_len);
		/* fix the extensions length and the handshake length */
		{
			size_t el = ((size_t)two.p[ext_off - 2] << 8 | two.p[ext_off - 1]) + sni_len;

			two.p[ext_off - 2] = (unsigned char)(el >> 8);
			two.p[ext_off - 1] = (unsigned char)el;
		}
		body_len = two.n - 4;
		two.p[1] = 0;
		two.p[2] = (unsigned char)(body_len >> 8);
		two.p[3] = (unsigned char)body_len;
		records(&wire, &two, 16384);
		ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);
	}
	/* an empty ALPN protocol name */
	{
		static const char *const alpn[] = { "h2", "" };

		hello(&hs, NULL, alpn, 2, 0);
		records(&wire, &hs, 16384);
		ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);
	}
	/* a second record that is not a handshake record */
	hello(&hs, "x.test", NULL, 0, 0);
	records(&wire, &hs, 50);
	wire.p[5 + 50] = 23;
	ck_assert_int_eq(sniff_tls(wire.p, wire.n, &t), SNIFF_NO);
}
END_TEST

/* Seeded mutations: any verdict, but no crash, no read out of bounds (run
 * under ASan), and a YES always leaves terminated strings. */
START_TEST(tls_mutations)
{
	static const char *const alpn[] = { "istio", "h2", "http/1.1" };
	uint64_t st = 0x5eed;
	struct sniff_tls t;
	size_t i, round, yes = 0, no = 0;

	hello(&hs, "fuzz.example.com", alpn, 3, 40);
	for (round = 0; round < 3000; round++) {
		unsigned char *copy;
		size_t n, k;

		records(&wire, &hs, round % 3 ? 16384 : 90);
		for (k = 0; k < 1 + round % 4; k++) {
			st = st * 6364136223846793005ull + 1442695040888963407ull;
			wire.p[(st >> 33) % wire.n] = (unsigned char)(st >> 17);
		}
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		n = round % 5 ? wire.n : (size_t)((st >> 33) % wire.n);
		/* an exact-size heap copy, so ASan sees a read past n */
		copy = malloc(n ? n : 1);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, wire.p, n);
		switch (sniff_tls(copy, n, &t)) {
		case SNIFF_YES:
			yes++;
			ck_assert(memchr(t.sni, 0, sizeof(t.sni)) != NULL);
			ck_assert_uint_le(t.n_alpn, SNIFF_ALPN_MAX);
			for (i = 0; i < t.n_alpn; i++)
				ck_assert(memchr(t.alpn[i], 0, SNIFF_ALPN_LEN) != NULL);
			break;
		case SNIFF_NO:
			no++;
			break;
		default:
			break;
		}
		free(copy);
	}
	/* the mutations reach both verdicts (a test that always said one thing would not) */
	ck_assert_uint_gt(yes, 0);
	ck_assert_uint_gt(no, 0);
}
END_TEST

START_TEST(http)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static const char req11[] = "GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", req10[] = "POST / HTTP/1.0\r\n";
	char proto[16];
	size_t i;

	ck_assert_int_eq(sniff_http((const unsigned char *)preface, 24, proto), SNIFF_YES);
	ck_assert_str_eq(proto, "h2c");
	for (i = 0; i < 24; i++)
		ck_assert_int_eq(sniff_http((const unsigned char *)preface, i, proto), SNIFF_MORE);
	ck_assert_int_eq(sniff_http((const unsigned char *)req11, sizeof(req11) - 1, proto), SNIFF_YES);
	ck_assert_str_eq(proto, "http/1.1");
	/* decided at the request line's end, not before */
	for (i = 0; i < 21; i++)
		ck_assert_msg(sniff_http((const unsigned char *)req11, i, proto) == SNIFF_MORE, "prefix %zu", i);
	ck_assert_int_eq(sniff_http((const unsigned char *)req11, 21, proto), SNIFF_YES);
	ck_assert_int_eq(sniff_http((const unsigned char *)req10, sizeof(req10) - 1, proto), SNIFF_YES);
	ck_assert_str_eq(proto, "http/1.0");

	/* not HTTP, decided from the first byte that cannot be */
	ck_assert_int_eq(sniff_http((const unsigned char *)"\x16\x03\x01", 3, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"hello\n", 6, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"PING\r\n", 6, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"GET  / HTTP/1.1\r\n", 17, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"GET / HTTP/2.0\r\n", 16, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"GET / HTTP/1.1\n", 15, proto), SNIFF_NO);
	ck_assert_int_eq(sniff_http((const unsigned char *)"PRI * HTTP/2.0\r\n\r\nXX", 20, proto), SNIFF_NO);
	ck_assert_str_eq(proto, "");
	/* a request line that never ends within the limit */
	{
		unsigned char *big = malloc(SNIFF_HTTP_MAX + 10);

		memcpy(big, "GET /", 5);
		memset(big + 5, 'a', SNIFF_HTTP_MAX + 5);
		ck_assert_int_eq(sniff_http(big, SNIFF_HTTP_MAX - 1, proto), SNIFF_MORE);
		ck_assert_int_eq(sniff_http(big, SNIFF_HTTP_MAX + 10, proto), SNIFF_NO);
		free(big);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sniff");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, tls_whole);
	tcase_add_test(tc, tls_prefixes_and_splits);
	tcase_add_test(tc, tls_not_tls);
	tcase_add_test(tc, tls_hostile);
	tcase_add_test(tc, tls_mutations);
	tcase_add_test(tc, http);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
