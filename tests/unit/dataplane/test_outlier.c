/*
 * test_outlier.c - outlier detection (ejection on consecutive 5xx and
 * gateway errors, local-origin split, the ejection time growing with
 * repeats and capped, max_ejection_percent, unejection by the interval
 * sweep, ejected hosts out of the load balancer), per-host state kept
 * across EDS updates, and circuit breakers.  Time is the test's own
 * counter passed as now; nothing sleeps.
 */
#include "upfix.h"

#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"

#define H ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY

static struct lb_rng rng = { 777 };

static Envoy__Config__Cluster__V3__OutlierDetection od;
static Google__Protobuf__UInt32Value u5xx, umax, uzero, ugw, uenf;
static Google__Protobuf__Duration dint, dbase, dmax;

/* consecutive_5xx 3, interval 1s, base 10s, max 25s, max 50%, success rate off */
static void od_setup(Envoy__Config__Cluster__V3__Cluster *c)
{
	Envoy__Config__Cluster__V3__OutlierDetection init = ENVOY__CONFIG__CLUSTER__V3__OUTLIER_DETECTION__INIT;
	Google__Protobuf__UInt32Value u = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;

	od = init;
	u5xx = umax = uzero = ugw = uenf = u;
	dint = dbase = dmax = d;
	u5xx.value = 3;
	umax.value = 50;
	ugw.value = 2;
	uenf.value = 100;
	dint.seconds = 1;
	dbase.seconds = 10;
	dmax.seconds = 25;
	od.consecutive_5xx = &u5xx;
	od.max_ejection_percent = &umax;
	od.enforcing_success_rate = &uzero;
	od.interval = &dint;
	od.base_ejection_time = &dbase;
	od.max_ejection_time = &dmax;
	upfix_cluster(c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	c->outlier_detection = &od;
}

static struct up_host *host(struct up_hostset *hs, uint32_t id)
{
	char k[32];
	struct up_host *h = up_hostset_find(hs, k, strlen(upfix_key(id, k, sizeof(k))));

	ck_assert_ptr_nonnull(h);
	return h;
}

static bool picked(struct up_hostset *hs, const struct up_host *h, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (up_pick(hs, &rng, NULL, NULL) == h)
			return true;
	return false;
}

START_TEST(eject_uneject_backoff)
{
	struct upfix_ep eps[4] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	struct up_host *a;
	uint64_t now = 1000;

	od_setup(&c);
	cl = upfix_compile(&c);
	ck_assert(cl->od.enabled);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	a = host(hs, 0);
	/* two 5xx, a 200 resets, three 5xx eject */
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 200, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert(picked(hs, a, 8));
	ck_assert_int_eq(outlier_report_http(hs, a, 503, now, &rng), 1);
	ck_assert(a->ejected);
	ck_assert_uint_eq(a->od.num_ejections, 1);
	ck_assert(!picked(hs, a, 100));
	/* first ejection: base x 1 = 10s */
	ck_assert_int_eq(outlier_tick(hs, now + 9999), 0);
	ck_assert(a->ejected);
	ck_assert_int_eq(outlier_tick(hs, now + 10000), 1);
	ck_assert(!a->ejected);
	ck_assert(picked(hs, a, 8));
	/* ejected again at once: 2 x base = 20s */
	now += 10000;
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 1);
	ck_assert_int_eq(outlier_tick(hs, now + 19999), 0);
	ck_assert_int_eq(outlier_tick(hs, now + 20000), 1);
	/* third: 3 x 10s = 30s, capped by max_ejection_time 25s */
	now += 20000;
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, a, 500, now, &rng), 1);
	ck_assert_uint_eq(a->od.backoff, 3);
	ck_assert_int_eq(outlier_tick(hs, now + 24999), 0);
	ck_assert_int_eq(outlier_tick(hs, now + 25000), 1);
	/* healthy intervals bring the backoff down, one per interval */
	now += 25000;
	ck_assert_int_eq(outlier_tick(hs, now + 1000), 0);
	ck_assert_uint_eq(a->od.backoff, 2);
	ck_assert_int_eq(outlier_tick(hs, now + 2000), 0);
	ck_assert_int_eq(outlier_tick(hs, now + 3000), 0);
	ck_assert_uint_eq(a->od.backoff, 0);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(max_ejection_percent_and_gateway)
{
	struct upfix_ep eps[4] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	unsigned i, id;

	od_setup(&c);
	od.consecutive_gateway_failure = &ugw;
	od.enforcing_consecutive_gateway_failure = &uenf;
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 4, NULL), NULL);
	/* 502 twice: the gateway detector (2) fires before the 5xx one (3) */
	for (id = 0; id < 3; id++) {
		ck_assert_int_eq(outlier_report_http(hs, host(hs, id), 502, 0, &rng), 0);
		ck_assert_int_eq(outlier_report_http(hs, host(hs, id), 502, 0, &rng), id < 2 ? 1 : 0);
	}
	/* 2 of 4 = 50% allowed; a third would be 75% */
	ck_assert_uint_eq(outlier_ejected_count(hs), 2);
	ck_assert(!host(hs, 2)->ejected);
	for (i = 0; i < 100; i++) {
		struct up_host *h = up_pick(hs, &rng, NULL, NULL);

		ck_assert(h == host(hs, 2) || h == host(hs, 3));
	}
	/* a 404 is not an error: it resets the streaks */
	ck_assert_int_eq(outlier_report_http(hs, host(hs, 3), 500, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_http(hs, host(hs, 3), 404, 0, &rng), 0);
	ck_assert_uint_eq(host(hs, 3)->od.consecutive_5xx, 0);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(local_origin)
{
	struct upfix_ep eps[2] = { { 0, 0, 1, H }, { 0, 0, 1, H } };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	Google__Protobuf__UInt32Value l2 = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;

	/* without the split, connect failures count as 503 */
	od_setup(&c);
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 2, NULL), NULL);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 0), OUTLIER_CONNECT_FAILED, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 0), OUTLIER_TIMEOUT, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 0), OUTLIER_CONNECT_FAILED, 0, &rng), 1);
	up_hostset_free(hs);
	up_cluster_unref(cl);

	/* with it: their own counter (2 here), reset by a connect success; 5xx apart */
	od_setup(&c);
	od.split_external_local_origin_errors = true;
	od.enforcing_local_origin_success_rate = &uzero;
	l2.value = 2;
	od.consecutive_local_origin_failure = &l2;
	cl = upfix_compile(&c);
	hs = upfix_set(cl, upfix_cla(eps, NULL, 2, NULL), NULL);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 1), OUTLIER_CONNECT_FAILED, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 1), OUTLIER_CONNECT_SUCCESS, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 1), OUTLIER_CONNECT_FAILED, 0, &rng), 0);
	ck_assert_uint_eq(host(hs, 1)->od.consecutive_5xx, 0);
	ck_assert_int_eq(outlier_report_local(hs, host(hs, 1), OUTLIER_RESET, 0, &rng), 1);
	up_hostset_free(hs);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(state_survives_eds_update)
{
	struct upfix_ep eps[3] = { { 0, 0, 1, H }, { 0, 0, 1, H }, { 0, 0, 5, H } };
	uint32_t first[2] = { 0, 1 }, second[2] = { 1, 2 };
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *a, *b;
	struct up_host *h1;

	od_setup(&c);
	cl = upfix_compile(&c);
	a = upfix_set(cl, upfix_cla(eps, first, 2, NULL), NULL);
	h1 = host(a, 1);
	h1->active_rq = 4;
	h1->active_cx = 2;
	ck_assert_int_eq(outlier_report_http(a, h1, 500, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_http(a, h1, 500, 0, &rng), 0);
	ck_assert_int_eq(outlier_report_http(a, h1, 500, 0, &rng), 1);
	/* host 1 stays (same object, still ejected, same counters); 0 goes, 2 comes */
	b = upfix_set(cl, upfix_cla(eps, second, 2, NULL), a);
	ck_assert_ptr_eq(host(b, 1), h1);
	ck_assert(h1->ejected);
	ck_assert_uint_eq(h1->active_rq, 4);
	ck_assert_uint_eq(h1->active_cx, 2);
	ck_assert_uint_eq(h1->refs, 2);
	ck_assert_uint_eq(host(b, 2)->weight, 5);
	ck_assert_ptr_null(up_hostset_find(b, "10.0.0.2:80", 11));
	ck_assert(!picked(b, h1, 50));
	up_hostset_free(a);
	ck_assert_uint_eq(h1->refs, 1);
	ck_assert_int_eq(outlier_tick(b, 10000), 1);
	ck_assert(picked(b, h1, 50));
	up_hostset_free(b);
	up_cluster_unref(cl);
}
END_TEST

START_TEST(outlier_refusals)
{
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl = NULL;
	char err[256];

	od_setup(&c);
	od.enforcing_success_rate = NULL; /* Envoy's default: 100, enforced */
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err, "success-rate"));
	od.enforcing_success_rate = &uzero;
	dmax.seconds = 5; /* below base */
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_null(cl);
}
END_TEST

START_TEST(circuit_breakers)
{
	Envoy__Config__Cluster__V3__CircuitBreakers cb = ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__INIT;
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds t = ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__THRESHOLDS__INIT,
								  t2 = ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__THRESHOLDS__INIT;
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds__RetryBudget rb =
		ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__THRESHOLDS__RETRY_BUDGET__INIT;
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *tv[2] = { &t, &t2 };
	Google__Protobuf__UInt32Value mc = GOOGLE__PROTOBUF__UINT32_VALUE__INIT, mp = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct cbreaker *b;
	char err[256];
	unsigned i;

	mc.value = 2;
	mp.value = 1;
	t.max_connections = &mc;
	t.max_pending_requests = &mp;
	t2.priority = ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__HIGH;
	t2.retry_budget = &rb;
	cb.thresholds = tv;
	cb.n_thresholds = 2;
	upfix_cluster(&c, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
	c.circuit_breakers = &cb;
	cl = upfix_compile(&c);
	b = &cl->cb;
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_CONNECTIONS), 0);
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_CONNECTIONS), 0);
	ck_assert(cb_would_overflow(b, CB_PRIO_DEFAULT, CB_CONNECTIONS));
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_CONNECTIONS), -EBUSY);
	ck_assert_uint_eq(b->overflow[CB_PRIO_DEFAULT][CB_CONNECTIONS], 1);
	cb_release(b, CB_PRIO_DEFAULT, CB_CONNECTIONS);
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_CONNECTIONS), 0);
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_PENDING), 0);
	ck_assert_int_eq(cb_acquire(b, CB_PRIO_DEFAULT, CB_PENDING), -EBUSY);
	/* unset thresholds keep Envoy's defaults */
	ck_assert_uint_eq(cb_limit(b, CB_PRIO_DEFAULT, CB_REQUESTS), 1024);
	ck_assert_uint_eq(cb_limit(b, CB_PRIO_DEFAULT, CB_RETRIES), 3);
	ck_assert_uint_eq(cb_limit(b, CB_PRIO_DEFAULT, CB_POOLS), UINT64_MAX);
	/* HIGH has a retry budget: 20% of requests in flight, at least 3 */
	ck_assert_uint_eq(cb_limit(b, CB_PRIO_HIGH, CB_RETRIES), 3);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(cb_acquire(b, CB_PRIO_HIGH, CB_REQUESTS), 0);
	ck_assert_uint_eq(cb_limit(b, CB_PRIO_HIGH, CB_RETRIES), 20);
	ck_assert_uint_eq(cb_remaining(b, CB_PRIO_HIGH, CB_REQUESTS), 1024 - 100);
	up_cluster_unref(cl);

	/* a priority listed twice is refused */
	t2.priority = ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT;
	cl = NULL;
	ck_assert_int_eq(up_cluster_new(&c, err, sizeof(err), &cl), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	ck_assert_ptr_null(cl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("outlier");
	TCase *tc = tcase_create("outlier");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, eject_uneject_backoff);
	tcase_add_test(tc, max_ejection_percent_and_gateway);
	tcase_add_test(tc, local_origin);
	tcase_add_test(tc, state_survives_eds_update);
	tcase_add_test(tc, outlier_refusals);
	tcase_add_test(tc, circuit_breakers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
