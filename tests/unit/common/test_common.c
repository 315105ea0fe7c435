/*
 * test_common.c - common/: durations, capped buffers, arenas, hashes, JSON strings.
 */
#include "common/arena.h"
#include "common/buf.h"
#include "common/duration.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/json.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(duration_istio_forms)
{
	static const struct {
		const char *in;
		int64_t ns;
	} ok[] = {
		{ "10s", 10000000000LL }, { "1.5s", 1500000000LL }, { "100ms", 100000000LL },
		{ "1h30m", 5400000000000LL }, { "250us", 250000LL }, { "0s", 0 }, { "0", 0 },
		{ "1.500s", 1500000000LL }, { "2m", 120000000000LL }, { "3ns", 3 }, { "0.001s", 1000000LL },
	};
	static const char *const bad[] = { "", "s", "10", "-1s", "1x", "1.5", "ms", "1s2", "99999999999999999999s", "1 s" };
	size_t i;
	int64_t v;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(mesh_duration_parse(ok[i].in, &v) == 0, "%s", ok[i].in);
		ck_assert_msg(v == ok[i].ns, "%s: %lld", ok[i].in, (long long)v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mesh_duration_parse(bad[i], &v) == -EINVAL, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(duration_format)
{
	char b[32];

	mesh_duration_format(1500000000LL, b, sizeof(b));
	ck_assert_str_eq(b, "1.500s");
	mesh_duration_format(10000000000LL, b, sizeof(b));
	ck_assert_str_eq(b, "10s");
	mesh_duration_format(1000, b, sizeof(b));
	ck_assert_str_eq(b, "0.000001s");
}
END_TEST

START_TEST(buf_cap)
{
	struct mesh_buf b;
	char *s;
	size_t n;

	mesh_buf_init(&b, 8);
	ck_assert_int_eq(mesh_buf_puts(&b, "12345"), 0);
	ck_assert_int_eq(mesh_buf_printf(&b, "%d", 678), 0);
	ck_assert_str_eq(b.data, "12345678");
	ck_assert_int_eq(mesh_buf_putc(&b, '9'), -MESH_ETOOBIG);
	ck_assert_uint_eq(b.len, 8);
	ck_assert_str_eq(b.data, "12345678");
	/* errors are sticky */
	ck_assert_int_eq(mesh_buf_puts(&b, ""), -MESH_ETOOBIG);
	s = mesh_buf_take(&b, &n);
	ck_assert_uint_eq(n, 8);
	ck_assert_str_eq(s, "12345678");
	free(s);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(arena_basics)
{
	struct arena *a = arena_new(0);
	char *big, *s;
	int i;

	ck_assert_ptr_nonnull(a);
	for (i = 0; i < 1000; i++) {
		int *p = arena_alloc(a, sizeof(int) * 3);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(p[0] | p[1] | p[2], 0);
		ck_assert_uint_eq((uintptr_t)p % 16, 0);
	}
	big = arena_alloc(a, 100000);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 100000);
	s = arena_printf(a, "%s-%d", "x", 42);
	ck_assert_str_eq(s, "x-42");
	ck_assert_str_eq(arena_strndup(a, "abcdef", 3), "abc");
	arena_free(a);

	a = arena_new(64);
	ck_assert_ptr_nonnull(arena_alloc(a, 32));
	ck_assert_ptr_null(arena_alloc(a, 64));
	arena_free(a);
	arena_free(NULL);
}
END_TEST

/* An arena holding a few strings costs a few hundred bytes, not a 4 KiB
 * chunk (meshproxy keeps three per cluster alive); a big one still grows
 * in bounded steps, and mixed sizes never overlap. */
START_TEST(arena_small_first_chunk)
{
	struct arena *a = arena_new(0);
	unsigned char *p[600];
	size_t sz[600];
	int i, j;

	ck_assert_ptr_nonnull(arena_strdup(a, "outbound|8080||svc0.ns0.svc.cluster.local"));
	ck_assert_uint_le(arena_held(a), 256);
	for (i = 0; i < 600; i++) {
		sz[i] = (size_t)(i * 37 % 700) + 1;
		p[i] = arena_alloc(a, sz[i]);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], i & 0xff, sz[i]);
	}
	for (i = 0; i < 600; i++)
		for (j = 0; j < (int)sz[i]; j++)
			ck_assert_uint_eq(p[i][j], (unsigned)(i & 0xff));
	/* the waste is bounded: at most a chunk's tail per chunk, chunks >= 2 KiB once grown */
	ck_assert_uint_ge(arena_held(a), arena_used(a));
	ck_assert_uint_le(arena_held(a), arena_used(a) + arena_used(a) / 2 + 8192);
	arena_free(a);
}
END_TEST

START_TEST(hash_stable)
{
	char hex[17];

	ck_assert_uint_eq(mesh_hash("", 0), MESH_HASH_INIT);
	ck_assert_uint_eq(mesh_hash("a", 1), 0xaf63dc4c8601ec8cULL); /* FNV-1a 64 test vector */
	ck_assert_uint_ne(mesh_hash_str(mesh_hash_str(MESH_HASH_INIT, "a"), "b"),
			  mesh_hash_str(MESH_HASH_INIT, "ab"));
	mesh_hash_hex(0x0123456789abcdefULL, hex);
	ck_assert_str_eq(hex, "0123456789abcdef");
}
END_TEST

/* Nest n arrays: "[[...]]" into buf (2n bytes). */
static size_t nest(char *buf, size_t n)
{
	memset(buf, '[', n);
	memset(buf + n, ']', n);
	return 2 * n;
}

/* The one reader serves two sets of limits: json_parse()'s (JWT) and a
 * caller's own (kube: deeper, \u0000 allowed, no index). */
START_TEST(json_reader_limits)
{
	static const struct json_limits kube = { .max_depth = 128, .allow_nul = true };
	struct arena *a = arena_new(0);
	struct json_value *v = NULL;
	const char *obj = "{\"k\": [1, 2.5], \"s\": \"a\\u0000b\", \"n\": 123456789012}";
	char deep[2 * 129];

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(json_parse(deep, nest(deep, JSON_MAX_DEPTH), &v), 0);
	json_free(v);
	ck_assert_int_eq(json_parse(deep, nest(deep, JSON_MAX_DEPTH + 1), &v), -MESH_ETOOBIG);
	ck_assert_int_eq(json_parse_arena(a, deep, nest(deep, 128), &kube, &v), 0);
	ck_assert_int_eq(json_parse_arena(a, deep, nest(deep, 129), &kube, &v), -MESH_ETOOBIG);

	/* \u0000: rejected by json_parse, kept (with its length) under kube's limits */
	ck_assert_int_eq(json_parse(obj, strlen(obj), &v), -MESH_EPARSE);
	ck_assert_int_eq(json_parse_arena(a, obj, strlen(obj), &kube, &v), 0);
	ck_assert_uint_eq(json_get(v, "s")->len, 3);
	ck_assert_int_eq(json_get_int(v, "n", 0), 123456789012LL);
	ck_assert_ptr_null(json_get(v, "k")->v);     /* no index asked for */
	ck_assert_str_eq(json_get(v, "k")->child->next->str, "2.5");
	ck_assert_uint_eq(json_get(v, "k")->start, 6);
	ck_assert_uint_eq(json_get(v, "k")->end, 14);

	/* json_parse's number cap: JSON_MAX_NUMBER bytes of text */
	{
		char num[JSON_MAX_NUMBER + 1];

		memset(num, '1', sizeof(num));
		ck_assert_int_eq(json_parse(num, JSON_MAX_NUMBER, &v), 0);
		ck_assert(v->type == JSON_NUMBER && v->str[JSON_MAX_NUMBER - 1] == '1');
		json_free(v);
		ck_assert_int_eq(json_parse(num, sizeof(num), &v), -MESH_ETOOBIG);
		ck_assert_ptr_null(v);
	}
	arena_free(a);
}
END_TEST

START_TEST(json_escape)
{
	struct mesh_buf b;

	mesh_buf_init(&b, 1024);
	json_put_string(&b, "a\"b\\c\n\x01");
	ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
	mesh_buf_reset(&b);
	json_put_string(&b, NULL);
	ck_assert_str_eq(b.data, "null");
	mesh_buf_cleanup(&b);
}
END_TEST

/* Issue 16: whatever bytes a client sends (node id, header), the JSON
 * written is valid UTF-8: well-formed sequences pass through, everything
 * else (stray continuation, overlong, surrogate, above U+10FFFF, a
 * sequence cut short by a byte cap) becomes \ufffd, byte by byte. */
START_TEST(json_escape_invalid_utf8)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "a\xff" "b", "\"a\\ufffdb\"" },
		{ "\x80", "\"\\ufffd\"" },
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" },             /* overlong '/' */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },   /* surrogate D800 */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* U+110000 */
		{ "x\xe2\x82", "\"x\\ufffd\\ufffd\"" },            /* cut short */
		{ "\xe0\x80\x80", "\"\\ufffd\\ufffd\\ufffd\"" },   /* overlong 3-byte */
	};
	struct mesh_buf b;
	size_t i;

	mesh_buf_init(&b, 1024);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mesh_buf_reset(&b);
		json_put_string(&b, cases[i].in);
		ck_assert_msg(strcmp(b.data, cases[i].out) == 0, "case %zu: got %s", i, b.data);
	}
	mesh_buf_cleanup(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, duration_istio_forms);
	tcase_add_test(tc, duration_format);
	tcase_add_test(tc, buf_cap);
	tcase_add_test(tc, arena_basics);
	tcase_add_test(tc, arena_small_first_chunk);
	tcase_add_test(tc, hash_stable);
	tcase_add_test(tc, json_escape);
	tcase_add_test(tc, json_reader_limits);
	tcase_add_test(tc, json_escape_invalid_utf8);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
