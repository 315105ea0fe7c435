/*
 * test_lb.c - load balancing over host sets: weighted round robin ratios,
 * least request's preference for idle hosts, random spread, ring hash and
 * maglev stickiness (same key same host; removing a host moves only a
 * bounded share of keys), locality weights, priority failover, panic,
 * the previous-hosts retry predicate, request hash policies, and the
 * Cluster fields refused with a reason.  Statistical checks use wide
 * bands; nothing depends on time.
 */
#include "upfix.h"

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "common/arena.h"

#include <malloc.h>
#include <math.h>
#include <stddef.h>
#include <xxhash.h>

#define H ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY
#define U ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNHEALTHY

static struct lb_rng rng = { 12345 };

START_TEST(weighted_round_robin_ratios)
{
	struct upfix_ep eps[] = { { 0, 0, 1, H }, { 0, 0, 2, H }, { 0, 0, 3, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[3] = { 0 }, i;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 3, NULL), NULL);
	for (i = 0; i < 6000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 3)]++;
	/* EDF is deterministic: 1:2:3 within a pick or two */
	ck_assert_uint_ge(cnt[0], 990);
	ck_assert_uint_le(cnt[0], 1010);
	ck_assert_uint_ge(cnt[1], 1990);
	ck_assert_uint_le(cnt[1], 2010);
	ck_assert_uint_ge(cnt[2], 2990);
	ck_assert_uint_le(cnt[2], 3010);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(round_robin_unweighted_cycles)
{
	struct upfix_ep eps[4] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[4] = { 0 }, i;
	int prev = -1, cur;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	for (i = 0; i < 400; i++) {
		cur = upfix_id(up_pick(hs, &rng, NULL, NULL), 4);
		ck_assert_int_ne(cur, prev);
		cnt[cur]++;
		prev = cur;
	}
	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(cnt[i], 100);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

/* A host carries its "address:port" key in an allocation sized to the key
 * (a sidecar holds ~3,000 hosts; UP_KEY_MAX is for the longest IPv6
 * form), and the key survives the host being taken over by the next set. */
START_TEST(host_key_sized_to_fit)
{
	struct upfix_ep eps[2] = { { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs, *next;
	struct up_host *h;
	char k[32];

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 2, NULL), NULL);
	h = up_hostset_find(hs, k, strlen(upfix_key(1, k, sizeof(k))));
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->key, k);
	ck_assert_uint_eq(h->key_len, strlen(k));
	ck_assert_uint_lt(malloc_usable_size(h), offsetof(struct up_host, key) + UP_KEY_MAX);
	next = upfix_set(cl, upfix_cla(eps, NULL, 2, NULL), hs);
	up_hostset_free(hs);
	ck_assert_ptr_eq(up_hostset_find(next, k, strlen(k)), h);
	ck_assert_str_eq(h->key, k);
	up_hostset_free(next);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(least_request_prefers_idle)
{
	struct upfix_ep eps[4] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[4] = { 0 }, i;
	char k[32];

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	up_hostset_find(hs, k, strlen(upfix_key(0, k, sizeof(k))))->active_rq = 50;
	for (i = 0; i < 8000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 4)]++;
	/* the busy host wins only when both choices land on it: 1/16 */
	ck_assert_uint_lt(cnt[0], 8000 / 16 * 2);
	ck_assert_uint_gt(cnt[0], 8000 / 16 / 3);
	for (i = 1; i < 4; i++)
		ck_assert_uint_gt(cnt[i], 8000 / 4);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(random_spreads)
{
	struct upfix_ep eps[10];
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[10] = { 0 }, i;

	for (i = 0; i < 10; i++)
		eps[i] = (struct upfix_ep){ 0, 0, 1, H };
	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 10, NULL), NULL);
	for (i = 0; i < 20000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 10)]++;
	for (i = 0; i < 10; i++) {
		ck_assert_uint_gt(cnt[i], 1400);
		ck_assert_uint_lt(cnt[i], 2600);
	}
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(slow_start_factor)
{
	/* Envoy: max(min, (max(age, 1) / window) ^ (1 / aggression)) inside the window */
	ck_assert_double_eq_tol(lb_slow_start_factor(0, 10000, 1.0, 0.1), 0.1, 1e-9);
	ck_assert_double_eq_tol(lb_slow_start_factor(5000, 10000, 1.0, 0.1), 0.5, 1e-9);
	ck_assert_double_eq_tol(lb_slow_start_factor(2500, 10000, 2.0, 0.1), 0.5, 1e-9);
	ck_assert_double_eq_tol(lb_slow_start_factor(2500, 10000, 0.5, 0.1), 0.1, 1e-9); /* 0.0625 floored */
	ck_assert_double_eq_tol(lb_slow_start_factor(5000, 10000, 0.5, 0.1), 0.25, 1e-9);
	ck_assert_double_eq_tol(lb_slow_start_factor(100, 10000, 1.0, 0.0), 0.01, 1e-9);
	ck_assert_double_eq_tol(lb_slow_start_factor(10000, 10000, 1.0, 0.1), 1.0, 1e-9); /* window over */
	ck_assert_double_eq_tol(lb_slow_start_factor(1, 0, 1.0, 0.1), 1.0, 1e-9);      /* no window */
	/* lb.c's own x^y (no libm in meshproxy) against libm's pow() */
	{
		static const double aggr[] = { 0.05, 0.3, 0.5, 0.9, 1.5, 2.0, 3.7, 10.0, 1000.0 };
		static const uint64_t age[] = { 1, 7, 100, 999, 2500, 5000, 7777, 9999 };
		size_t i, j;

		for (i = 0; i < sizeof(aggr) / sizeof(aggr[0]); i++)
			for (j = 0; j < sizeof(age) / sizeof(age[0]); j++) {
				double want = pow((double)age[j] / 10000.0, 1.0 / aggr[i]);

				ck_assert_double_eq_tol(lb_slow_start_factor(age[j], 10000, aggr[i], 0.0), want,
							want * 1e-12 + 1e-300);
			}
	}
}
END_TEST

/* A host added to a ROUND_ROBIN / LEAST_REQUEST cluster with
 * slow_start_config gets a share scaled by its age in the window, the
 * older hosts the rest; out of the window, or without a clock, plain
 * round robin again. */
static void slow_start_ramp(Envoy__Config__Cluster__V3__Cluster__LbPolicy pol)
{
	struct upfix_ep eps[3] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	uint32_t two[2] = { 0, 1 };
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__RoundRobinLbConfig rr = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__ROUND_ROBIN_LB_CONFIG__INIT;
	Envoy__Config__Cluster__V3__Cluster__LeastRequestLbConfig lr = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LEAST_REQUEST_LB_CONFIG__INIT;
	Envoy__Config__Cluster__V3__Cluster__SlowStartConfig ss = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__SLOW_START_CONFIG__INIT;
	Google__Protobuf__Duration win = GOOGLE__PROTOBUF__DURATION__INIT;
	struct up_cluster *cl;
	struct up_hostset *hs0, *hs;
	unsigned cnt[3] = { 0 }, i;
	const uint64_t t0 = 1000000, w = 60000;

	upfix_cluster(&c, pol);
	win.seconds = 60;
	ss.slow_start_window = &win;
	if (pol == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN) {
		rr.slow_start_config = &ss;
		c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG;
		c.round_robin_lb_config = &rr;
	} else {
		lr.slow_start_config = &ss;
		c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG;
		c.least_request_lb_config = &lr;
	}
	cl = upfix_compile(&c);
	ck_assert_uint_eq(cl->lb.slow_start_ms, w);
	ck_assert_double_eq_tol(cl->lb.slow_start_min, 0.1, 1e-9);
	/* hosts 0 and 1 from t0; host 2 joins at t0 + 2w (the others are then out of their window) */
	hs0 = upfix_set(cl, upfix_cla(eps, two, 2, NULL), NULL);
	up_hostset_stamp(hs0, t0);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 3, NULL), hs0);
	up_hostset_stamp(hs, t0 + 2 * w);
	up_hostset_free(hs0);
	/* 1 s after joining: weight max(1/60, 10%) = 0.1 against 1 and 1 */
	for (i = 0; i < 2100; i++)
		cnt[upfix_id(up_pick_at(hs, &rng, NULL, NULL, t0 + 2 * w + 1000), 3)]++;
	ck_assert_uint_ge(cnt[2], 60);
	ck_assert_uint_le(cnt[2], 140); /* 100 expected; plain round robin gives 700 */
	ck_assert_uint_ge(cnt[0], 900);
	ck_assert_uint_ge(cnt[1], 900);
	/* half-way through its window: weight 0.5, a fifth of the picks */
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < 2500; i++)
		cnt[upfix_id(up_pick_at(hs, &rng, NULL, NULL, t0 + 2 * w + w / 2), 3)]++;
	ck_assert_uint_ge(cnt[2], 400);
	ck_assert_uint_le(cnt[2], 600);
	/* the window over: an equal share again */
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < 3000; i++)
		cnt[upfix_id(up_pick_at(hs, &rng, NULL, NULL, t0 + 3 * w + 1), 3)]++;
	for (i = 0; i < 3; i++) {
		ck_assert_uint_ge(cnt[i], 900);
		ck_assert_uint_le(cnt[i], 1100);
	}
	/* no clock (up_pick): no slow start */
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < 3000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 3)]++;
	ck_assert_uint_ge(cnt[2], 900);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}

START_TEST(slow_start_round_robin)
{
	slow_start_ramp(ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
}
END_TEST

START_TEST(slow_start_least_request)
{
	slow_start_ramp(ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
}
END_TEST

START_TEST(slow_start_refusals)
{
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__RoundRobinLbConfig rr = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__ROUND_ROBIN_LB_CONFIG__INIT;
	Envoy__Config__Cluster__V3__Cluster__SlowStartConfig ss = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__SLOW_START_CONFIG__INIT;
	Google__Protobuf__Duration win = GOOGLE__PROTOBUF__DURATION__INIT;
	Envoy__Type__V3__Percent pct = ENVOY__TYPE__V3__PERCENT__INIT;
	Envoy__Config__Core__V3__RuntimeDouble ag = ENVOY__CONFIG__CORE__V3__RUNTIME_DOUBLE__INIT;
	struct up_cluster *cl = NULL;
	char err[256];

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG;
	c.round_robin_lb_config = &rr;
	rr.slow_start_config = &ss;
	ss.slow_start_window = &win;
	win.seconds = -1;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "slow_start_window"));
	win.seconds = 5;
	ss.min_weight_percent = &pct;
	pct.value = 150;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "min_weight_percent"));
	pct.value = 25;
	ss.aggression = &ag;
	ag.default_value = 0;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "aggression"));
	ag.default_value = 2.0;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), 0);
	ck_assert_uint_eq(cl->lb.slow_start_ms, 5000);
	ck_assert_double_eq_tol(cl->lb.slow_start_min, 0.25, 1e-9);
	ck_assert_double_eq_tol(cl->lb.slow_start_aggression, 2.0, 1e-9);
	up_cluster_unref(cl);
}
END_TEST

/* Hash-based stickiness: every key maps to one host; dropping host 3 of
 * 10 moves the keys it had, and only a bounded share of the others. */
static void sticky(Envoy__Config__Cluster__V3__Cluster__LbPolicy pol, double max_moved_other)
{
	struct upfix_ep eps[10];
	uint32_t keep[9];
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *a, *b;
	static int before[5000];
	unsigned i, j, moved_other = 0, on3 = 0, cnt[10] = { 0 };

	for (i = 0, j = 0; i < 10; i++) {
		eps[i] = (struct upfix_ep){ 0, 0, 1, H };
		if (i != 3)
			keep[j++] = i;
	}
	upfix_cluster(&c, pol);
	cl = upfix_compile(&c);
	a = upfix_set(cl, upfix_cla(eps, NULL, 10, NULL), NULL);
	for (i = 0; i < 5000; i++) {
		uint64_t h = XXH64(&i, sizeof(i), 99);

		before[i] = upfix_id(up_pick(a, &rng, &h, NULL), 10);
		ck_assert_int_eq(upfix_id(up_pick(a, &rng, &h, NULL), 10), before[i]); /* same key, same host */
		cnt[before[i]]++;
	}
	for (i = 0; i < 10; i++) /* and keys spread over every host */
		ck_assert_uint_gt(cnt[i], 5000 / 10 / 3);
	b = upfix_set(cl, upfix_cla(eps, keep, 9, NULL), a);
	for (i = 0; i < 5000; i++) {
		uint64_t h = XXH64(&i, sizeof(i), 99);
		int now = upfix_id(up_pick(b, &rng, &h, NULL), 10);

		ck_assert_int_ne(now, 3);
		if (before[i] == 3)
			on3++;
		else if (now != before[i])
			moved_other++;
	}
	ck_assert_uint_gt(on3, 0);
	ck_assert_msg(moved_other <= max_moved_other * 5000, "%u keys moved off surviving hosts", moved_other);
	up_hostset_free(b);
	up_hostset_free(a);
	up_cluster_unref(cl);
}

START_TEST(ring_hash_sticky)
{
	/* Envoy sizes the ring by the smallest normalized weight: 9 hosts get
	 * 114 points each instead of 103, and the new points take ~10% of the
	 * keys of survivors */
	sticky(ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH, 0.15);
}
END_TEST

START_TEST(maglev_sticky)
{
	/* Maglev moves a few keys between survivors too (the paper: ~1-2%) */
	sticky(ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV, 0.05);
}
END_TEST

START_TEST(ring_hash_weights_and_size)
{
	struct upfix_ep eps[2] = { { 0, 0, 1, H }, { 0, 0, 3, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[2] = { 0 }, i;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 2, NULL), NULL);
	/* min weight 1/4: scale = ceil(0.25 x 1024) / 0.25 = 1024 points */
	ck_assert_uint_eq(hs->prio[0].pool.ring_n, 1024);
	for (i = 0; i < 8000; i++) {
		uint64_t h = XXH64(&i, sizeof(i), 5);

		cnt[upfix_id(up_pick(hs, &rng, &h, NULL), 2)]++;
	}
	ck_assert_uint_gt(cnt[1], cnt[0] * 2);
	ck_assert_uint_lt(cnt[1], cnt[0] * 5);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(locality_weights)
{
	struct upfix_ep eps[4] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 1, 1, H }, { 0, 1, 1, H } };
	uint32_t lw[16] = { 1, 3 };
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__CommonLbConfig cc = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__INIT;
	Envoy__Config__Cluster__V3__Cluster__CommonLbConfig__LocalityWeightedLbConfig lwc =
		ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__LOCALITY_WEIGHTED_LB_CONFIG__INIT;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[4] = { 0 }, i;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cc.locality_config_specifier_case =
		ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__LOCALITY_CONFIG_SPECIFIER_LOCALITY_WEIGHTED_LB_CONFIG;
	cc.locality_weighted_lb_config = &lwc;
	c.common_lb_config = &cc;
	cl = upfix_compile(&c);
	ck_assert(cl->locality_weighted);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, lw), NULL);
	ck_assert_uint_eq(arena_held(hs->a), arena_used(hs->a));
	for (i = 0; i < 4000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 4)]++;
	ck_assert_uint_gt(cnt[0] + cnt[1], 800);
	ck_assert_uint_lt(cnt[0] + cnt[1], 1200);
	ck_assert_uint_gt(cnt[2] + cnt[3], 2800);
	/* one of locality 1's hosts down: its effective weight is
	 * 3 x min(1, 1.4 x 1/2) = 2.1 against 1 */
	eps[3].health = U;
	up_hostset_free(hs);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, lw), NULL);
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < 3100; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 4)]++;
	ck_assert_uint_eq(cnt[3], 0);
	ck_assert_uint_gt(cnt[2], 1900);
	ck_assert_uint_lt(cnt[2], 2300);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(priority_failover_and_panic)
{
	/* P0: 4 hosts, 1 healthy -> health min(100, 140 x 1/4) = 35; P1 healthy */
	struct upfix_ep eps[6] = { { 0, 0, 1, H }, { 0, 0, 1, U }, { 0, 0, 1, U }, { 0, 0, 1, U },
				   { 1, 1, 1, H }, { 1, 1, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__CommonLbConfig cc = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__INIT;
	Envoy__Type__V3__Percent zero = ENVOY__TYPE__V3__PERCENT__INIT;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned cnt[6] = { 0 }, i;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 6, NULL), NULL);
	ck_assert_uint_eq(hs->n_prio, 2);
	/* priorities, localities and host lists in one chunk of the right
	 * size (a sidecar holds ~1,000 host sets) */
	ck_assert_uint_eq(arena_held(hs->a), arena_used(hs->a));
	ck_assert_uint_eq(hs->prio[0].health, 35);
	ck_assert_uint_eq(hs->prio[0].load, 35);
	ck_assert_uint_eq(hs->prio[1].load, 65);
	ck_assert(!hs->prio[0].panic); /* total availability 100: nobody panics */
	for (i = 0; i < 10000; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 6)]++;
	ck_assert_uint_eq(cnt[1] + cnt[2] + cnt[3], 0);
	ck_assert_uint_gt(cnt[0], 2800);
	ck_assert_uint_lt(cnt[0], 4200);
	up_hostset_free(hs);

	/* P1 gone: P0 alone at 35% < 50% panics and uses every host */
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	ck_assert(hs->prio[0].panic);
	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < 400; i++)
		cnt[upfix_id(up_pick(hs, &rng, NULL, NULL), 6)]++;
	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(cnt[i], 100);
	up_hostset_free(hs);
	up_cluster_unref(cl);

	/* panic threshold 0 (Istio with outlier detection): no panic, and
	 * with every host down no host at all (503 UH) */
	cc.healthy_panic_threshold = &zero;
	c.common_lb_config = &cc;
	cl = upfix_compile(&c);
	ck_assert_uint_eq(cl->panic_threshold, 0);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	ck_assert(!hs->prio[0].panic);
	for (i = 0; i < 50; i++)
		ck_assert_int_eq(upfix_id(up_pick(hs, &rng, NULL, NULL), 6), 0);
	up_hostset_free(hs);
	eps[0].health = U;
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	ck_assert_ptr_null(up_pick(hs, &rng, NULL, NULL));
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(previous_hosts_predicate)
{
	struct upfix_ep eps[3] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	struct up_host *tried[2];
	struct up_avoid av;
	char k[32];
	unsigned i, hit = 0;

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 3, NULL), NULL);
	tried[0] = up_hostset_find(hs, k, strlen(upfix_key(0, k, sizeof(k))));
	tried[1] = up_hostset_find(hs, k, strlen(upfix_key(1, k, sizeof(k))));
	av = (struct up_avoid){ .hosts = tried, .n = 2, .max_attempts = 5 };
	for (i = 0; i < 1000; i++) {
		uint64_t h = XXH64(&i, sizeof(i), 1);

		if (up_pick(hs, &rng, &h, &av) != tried[0] && up_pick(hs, &rng, &h, &av) != tried[1])
			hit++;
	}
	/* without the predicate a third of keys would land on host 2 */
	ck_assert_uint_gt(hit, 900);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

static size_t hdr(void *ctx, const char *name, size_t nl, const char **v, size_t *vl, size_t max)
{
	(void)ctx;
	(void)max;
	if (nl == 6 && memcmp(name, "x-user", 6) == 0) {
		v[0] = "alice";
		vl[0] = 5;
		return 1;
	}
	if (nl == 4 && memcmp(name, "x-mv", 4) == 0) {
		v[0] = "b";
		vl[0] = 1;
		v[1] = "a";
		vl[1] = 1;
		return 2;
	}
	return 0;
}

static const char *ck_value;

static const char *ck_get(void *ctx, const char *name, size_t nl, size_t *len)
{
	(void)ctx;
	if (nl != 7 || memcmp(name, "session", 7) || !ck_value)
		return NULL;
	*len = strlen(ck_value);
	return ck_value;
}

START_TEST(hash_policies)
{
	Envoy__Config__Route__V3__RouteAction__HashPolicy p[3] = {
		ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__INIT,
		ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__INIT,
		ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__INIT,
	};
	Envoy__Config__Route__V3__RouteAction__HashPolicy__Header hh = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__HEADER__INIT;
	Envoy__Config__Route__V3__RouteAction__HashPolicy__Cookie ck = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__COOKIE__INIT;
	Envoy__Config__Route__V3__RouteAction__HashPolicy__ConnectionProperties cp =
		ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__CONNECTION_PROPERTIES__INIT;
	Google__Protobuf__Duration ttl = GOOGLE__PROTOBUF__DURATION__INIT;
	const Envoy__Config__Route__V3__RouteAction__HashPolicy *pp[3] = { &p[0], &p[1], &p[2] };
	struct lb_hash_request rq = { .header = hdr, .source_ip = "10.1.2.3", .source_ip_len = 8,
				      .conn_addrs = "10.1.2.3:5555127.0.0.1:15001", .conn_addrs_len = 28 };
	struct lb_hash_cookie cookie;
	struct arena *a = arena_new(0);
	struct lb_hash *h;
	char err[128];
	uint64_t v, x, ab[2];

	hh.header_name = "X-User";
	p[0].policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER;
	p[0].header = &hh;
	ck_assert_int_eq(lb_hash_compile(a, pp, 1, err, sizeof(err), &h), 0);
	ck_assert(lb_hash_compute(h, &rq, &v, NULL));
	ck_assert_uint_eq(v, XXH64("alice", 5, 0)); /* Envoy: xxHash64 of the value */
	/* a repeated header hashes its sorted values chained */
	hh.header_name = "x-mv";
	ck_assert_int_eq(lb_hash_compile(a, pp, 1, err, sizeof(err), &h), 0);
	ck_assert(lb_hash_compute(h, &rq, &v, NULL));
	ab[0] = XXH64("a", 1, 0);
	ck_assert_uint_eq(v, XXH64("b", 1, ab[0]));
	hh.header_name = "x-user";
	/* header (absent value here: none) + source ip: rotate-xor combination */
	p[1].policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES;
	cp.source_ip = true;
	p[1].connection_properties = &cp;
	ck_assert_int_eq(lb_hash_compile(a, pp, 2, err, sizeof(err), &h), 0);
	ck_assert(lb_hash_compute(h, &rq, &v, NULL));
	x = XXH64("alice", 5, 0);
	ck_assert_uint_eq(v, ((x << 1) | (x >> 63)) ^ XXH64("10.1.2.3", 8, 0));
	/* terminal: the first policy's hash ends the list */
	p[0].terminal = true;
	ck_assert_int_eq(lb_hash_compile(a, pp, 2, err, sizeof(err), &h), 0);
	ck_assert(lb_hash_compute(h, &rq, &v, NULL));
	ck_assert_uint_eq(v, x);
	/* a cookie with ttl, absent: generated from the connection's addresses */
	ck.name = "session";
	ck.path = "/";
	ttl.seconds = 60;
	ck.ttl = &ttl;
	p[2].policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE;
	p[2].cookie = &ck;
	ck_assert_int_eq(lb_hash_compile(a, &pp[2], 1, err, sizeof(err), &h), 0);
	ck_assert(lb_hash_compute(h, &rq, &v, &cookie));
	ck_assert(cookie.set);
	ck_assert_str_eq(cookie.name, "session");
	ck_assert_uint_eq(cookie.ttl_s, 60);
	{
		char want[17];

		snprintf(want, sizeof(want), "%016llx", (unsigned long long)XXH64(rq.conn_addrs, 28, 0));
		ck_assert_str_eq(cookie.value, want);
	}
	ck_assert_uint_eq(v, XXH64(cookie.value, 16, 0));
	/* the client sends the generated cookie back quoted, as set: the
	 * quotes are stripped (Envoy's parseCookieValue), same hash */
	{
		char quoted[19];

		x = v;
		snprintf(quoted, sizeof(quoted), "\"%s\"", cookie.value);
		ck_value = quoted;
		rq.cookie = ck_get;
		ck_assert(lb_hash_compute(h, &rq, &v, &cookie));
		ck_assert(!cookie.set);
		ck_assert_uint_eq(v, x);
		ck_value = "\"";
		ck_assert(lb_hash_compute(h, &rq, &v, &cookie));
		ck_assert_uint_eq(v, XXH64("\"", 1, 0)); /* a lone quote is a value */
		rq.cookie = NULL;
	}
	/* without ttl and without the cookie: no hash */
	ck.ttl = NULL;
	ck_assert_int_eq(lb_hash_compile(a, &pp[2], 1, err, sizeof(err), &h), 0);
	ck_assert(!lb_hash_compute(h, &rq, &v, &cookie));
	ck_assert(!cookie.set);
	arena_free(a);
}
END_TEST

START_TEST(cluster_refusals)
{
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__MaglevLbConfig mg = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__MAGLEV_LB_CONFIG__INIT;
	Envoy__Config__Cluster__V3__Cluster__RingHashLbConfig rh = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__RING_HASH_LB_CONFIG__INIT;
	Google__Protobuf__UInt64Value ts = GOOGLE__PROTOBUF__UINT64_VALUE__INIT;
	struct up_cluster *cl = NULL;
	char err[256];

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV);
	ts.value = 65536; /* not prime */
	mg.table_size = &ts;
	c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG;
	c.maglev_lb_config = &mg;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_null(cl);
	ck_assert_ptr_nonnull(strstr(err, "table_size"));
	ts.value = 65537;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), 0);
	ck_assert_uint_eq(cl->lb.maglev_size, 65537);
	up_cluster_unref(cl);

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH);
	rh.hash_function = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__RING_HASH_LB_CONFIG__HASH_FUNCTION__MURMUR_HASH_2;
	c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG;
	c.ring_hash_lb_config = &rh;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err, "XX_HASH"));

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED);
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), 0);
	ck_assert(cl->original_dst);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(bad_endpoints)
{
	struct upfix_ep eps[2] = { { 0, 0, 1, H }, { 2, 1, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs = NULL;
	char err[256];

	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	cl = upfix_compile(&c);
	/* priority 1 missing between 0 and 2 */
	ck_assert_int_eq(up_hostset_new(cl, upfix_cla(eps, NULL, 2, NULL), NULL, 1, err, sizeof(err), &hs), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "contiguous"));
	eps[1].prio = 0;
	upfix_cla(eps, NULL, 2, NULL);
	upfix_sa[1].address = "not-an-ip";
	ck_assert_int_eq(up_hostset_new(cl, &upfix_cla_, NULL, 1, err, sizeof(err), &hs), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not-an-ip"));
	ck_assert_ptr_null(hs);
	up_cluster_unref(cl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lb");
	TCase *tc = tcase_create("lb");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, weighted_round_robin_ratios);
	tcase_add_test(tc, round_robin_unweighted_cycles);
	tcase_add_test(tc, least_request_prefers_idle);
	tcase_add_test(tc, host_key_sized_to_fit);
	tcase_add_test(tc, random_spreads);
	tcase_add_test(tc, ring_hash_sticky);
	tcase_add_test(tc, maglev_sticky);
	tcase_add_test(tc, ring_hash_weights_and_size);
	tcase_add_test(tc, locality_weights);
	tcase_add_test(tc, priority_failover_and_panic);
	tcase_add_test(tc, previous_hosts_predicate);
	tcase_add_test(tc, hash_policies);
	tcase_add_test(tc, cluster_refusals);
	tcase_add_test(tc, bad_endpoints);
	tcase_add_test(tc, slow_start_factor);
	tcase_add_test(tc, slow_start_round_robin);
	tcase_add_test(tc, slow_start_least_request);
	tcase_add_test(tc, slow_start_refusals);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
