/*
 * test_retry.c - meshproxy's retry decisions (dataplane/retry.h): Envoy's
 * retry_on conditions per failure kind, x-envoy-overloaded never retried,
 * x-envoy-ratelimited only with envoy-ratelimited; Envoy's jittered
 * exponential backoff fed from a seeded generator (the same seed gives
 * the same waits, every wait is under its interval, the interval doubles
 * from base and stops at max); the retry budget's limit.
 */
#include "dataplane/cbreaker.h"
#include "dataplane/retry.h"

#include <check.h>
#include <stdlib.h>

/* splitmix64: a fixed sequence from a seed */
static uint64_t rng_next(uint64_t *st)
{
	uint64_t z = (*st += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

START_TEST(conditions)
{
	static const uint32_t codes[] = { 503 };
	struct router_retry rp = { 0 };

	ck_assert(!retry_condition(NULL, RETRY_F_HEADERS, 503, 0));
	/* Istio's default policy: connect-failure,refused-stream,...,retriable-status-codes + [503] */
	rp.on = ROUTER_RETRY_CONNECT_FAILURE | ROUTER_RETRY_REFUSED_STREAM | ROUTER_RETRY_GRPC_UNAVAILABLE |
		ROUTER_RETRY_GRPC_CANCELLED | ROUTER_RETRY_STATUS_CODES;
	rp.status_codes = codes;
	rp.n_status_codes = 1;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 503, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 500, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 502, 0));
	ck_assert(retry_condition(&rp, RETRY_F_CONNECT, 0, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_RESET, 0, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_TIMEOUT, 0, 0));
	/* a 503 an upstream answered as overloaded is never retried */
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 503, RETRY_RESP_OVERLOADED));

	rp.on = ROUTER_RETRY_5XX;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 500, 0));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 599, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 499, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 503, RETRY_RESP_OVERLOADED));
	ck_assert(retry_condition(&rp, RETRY_F_RESET, 0, 0));
	ck_assert(retry_condition(&rp, RETRY_F_TIMEOUT, 0, 0));
	ck_assert(retry_condition(&rp, RETRY_F_CONNECT, 0, 0));
	/* x-envoy-ratelimited decides before the status */
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 503, RETRY_RESP_RATELIMITED));
	rp.on = ROUTER_RETRY_ENVOY_RATELIMITED;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 429, RETRY_RESP_RATELIMITED));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 429, 0));

	rp.on = ROUTER_RETRY_GATEWAY_ERROR;
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 500, 0));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 502, 0));
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 504, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 505, 0));

	rp.on = ROUTER_RETRY_RETRIABLE_4XX;
	ck_assert(retry_condition(&rp, RETRY_F_HEADERS, 409, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 404, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_CONNECT, 0, 0));

	rp.on = ROUTER_RETRY_RESET;
	ck_assert(retry_condition(&rp, RETRY_F_RESET, 0, 0));
	ck_assert(retry_condition(&rp, RETRY_F_CONNECT, 0, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 503, 0));

	/* status codes listed but the condition absent: not retried (Envoy) */
	rp.on = 0;
	ck_assert(!retry_condition(&rp, RETRY_F_HEADERS, 503, 0));
}
END_TEST

/* An HTTP/2 REFUSED_STREAM (Envoy's RemoteRefusedStreamReset): refused-stream
 * retries it where a plain reset is not retried, and so do the conditions
 * that take any reset */
START_TEST(refused_stream)
{
	struct router_retry rp = { 0 };

	rp.on = ROUTER_RETRY_CONNECT_FAILURE | ROUTER_RETRY_REFUSED_STREAM | ROUTER_RETRY_GRPC_UNAVAILABLE;
	ck_assert(retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
	ck_assert(!retry_condition(&rp, RETRY_F_RESET, 0, 0));
	rp.on = ROUTER_RETRY_CONNECT_FAILURE;
	ck_assert(!retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
	rp.on = ROUTER_RETRY_RESET;
	ck_assert(retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
	rp.on = ROUTER_RETRY_5XX;
	ck_assert(retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
	rp.on = ROUTER_RETRY_RESET_BEFORE_REQUEST;
	ck_assert(retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
	rp.on = ROUTER_RETRY_GRPC_UNAVAILABLE | ROUTER_RETRY_STATUS_CODES;
	ck_assert(!retry_condition(&rp, RETRY_F_REFUSED, 0, 0));
}
END_TEST

START_TEST(backoff_intervals)
{
	struct retry_backoff b;
	uint64_t all_ones = UINT64_MAX;

	/* rnd = 2^64-1 gives interval - 1 whenever the interval is a power
	 * of two; with 25 ms: 25 -> 50 -> 100 -> 200 -> 250 (max, 10x) */
	retry_backoff_init(&b, 25, 250);
	ck_assert_uint_eq(b.next_ms, 25);
	ck_assert_uint_eq(retry_backoff_next(&b, 24), 24);
	ck_assert_uint_eq(b.next_ms, 50);
	ck_assert_uint_eq(retry_backoff_next(&b, 49), 49);
	ck_assert_uint_eq(b.next_ms, 100);
	ck_assert_uint_eq(retry_backoff_next(&b, 100), 0);
	ck_assert_uint_eq(b.next_ms, 200);
	(void)retry_backoff_next(&b, 0);
	ck_assert_uint_eq(b.next_ms, 250); /* 200 >= 250 / 2: max */
	(void)retry_backoff_next(&b, 0);
	ck_assert_uint_eq(b.next_ms, 250);

	/* doubling stops at max / 2 (integer), as Envoy's doubling_limit_ */
	retry_backoff_init(&b, 25, 51);
	(void)retry_backoff_next(&b, 0);
	ck_assert_uint_eq(b.next_ms, 51); /* 25 < 25 is false: straight to max */

	/* base == max: always the same interval */
	retry_backoff_init(&b, 40, 40);
	(void)retry_backoff_next(&b, 0);
	ck_assert_uint_eq(b.next_ms, 40);
	ck_assert_uint_eq(retry_backoff_next(&b, all_ones), all_ones % 40);

	/* max under base is taken as base; base 0 as 1 */
	retry_backoff_init(&b, 30, 10);
	ck_assert_uint_eq(b.max_ms, 30);
	retry_backoff_init(&b, 0, 0);
	ck_assert_uint_eq(retry_backoff_next(&b, 12345), 0);
}
END_TEST

START_TEST(backoff_seeded)
{
	struct retry_backoff a, b;
	uint64_t s1 = 42, s2 = 42, s3 = 43;
	uint64_t iv = 25, v1[12], v3[12];
	int i, differ = 0;

	retry_backoff_init(&a, 25, 250);
	retry_backoff_init(&b, 25, 250);
	for (i = 0; i < 12; i++) {
		v1[i] = retry_backoff_next(&a, rng_next(&s1));
		/* every wait is below the interval of that retry */
		ck_assert_uint_lt(v1[i], iv);
		iv = iv < 125 ? iv * 2 : 250;
	}
	/* the same seed gives the same sequence; another seed another */
	for (i = 0; i < 12; i++)
		ck_assert_uint_eq(retry_backoff_next(&b, rng_next(&s2)), v1[i]);
	retry_backoff_init(&b, 25, 250);
	for (i = 0; i < 12; i++) {
		v3[i] = retry_backoff_next(&b, rng_next(&s3));
		differ |= v3[i] != v1[i];
	}
	ck_assert(differ);
}
END_TEST

START_TEST(budget)
{
	struct cb_thresholds t = { 0 };

	t.has_budget = true;
	t.budget_percent = 20.0;
	t.min_retry_concurrency = 3;
	/* nothing in flight: the minimum */
	ck_assert_uint_eq(cb_retry_budget(&t, 0, 0), 3);
	/* 20% of 100 requests + 50 pending */
	ck_assert_uint_eq(cb_retry_budget(&t, 100, 50), 30);
	/* the limit follows the load of the moment, both ways */
	ck_assert_uint_eq(cb_retry_budget(&t, 10, 0), 3);
	t.budget_percent = 30.5;
	t.min_retry_concurrency = 4;
	ck_assert_uint_eq(cb_retry_budget(&t, 200, 0), 61);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("retry");
	TCase *tc = tcase_create("retry");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, conditions);
	tcase_add_test(tc, refused_stream);
	tcase_add_test(tc, backoff_intervals);
	tcase_add_test(tc, backoff_seeded);
	tcase_add_test(tc, budget);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
