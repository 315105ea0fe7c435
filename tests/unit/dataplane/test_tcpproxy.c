/*
 * test_tcpproxy.c - the TcpProxy filter's settings (dataplane/tcpproxy.h):
 * Envoy's defaults when fields are unset (idle_timeout 1 h, no maximum
 * duration), an explicit 0 idle_timeout turning it off, durations rounded
 * up to the millisecond, and the weighted cluster draw (every cluster
 * reached in proportion over the whole range of draws, weight 0 never).
 * The byte path itself is exercised end to end by
 * tests/integration/test_mesh_tcp.py.
 */
#include "dataplane/tcpproxy.h"

#include "google/protobuf/duration.pb-c.h"

#include <check.h>
#include <string.h>

typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tcpf;

START_TEST(defaults)
{
	tcpf t = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	struct tcpp_conf c;

	tcpp_conf_init(&c, NULL);
	ck_assert_uint_eq(c.idle_ms, TCPP_IDLE_DEFAULT_MS);
	ck_assert_ptr_null(c.cluster);
	ck_assert_ptr_null(tcpp_pick_cluster(&c, 7));

	t.stat_prefix = "outbound|3306||db";
	t.cluster_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
	t.cluster = "outbound|3306||db";
	tcpp_conf_init(&c, &t);
	ck_assert_str_eq(tcpp_pick_cluster(&c, 12345), "outbound|3306||db");
	ck_assert_uint_eq(c.idle_ms, 60 * 60 * 1000);
	ck_assert_uint_eq(c.max_duration_ms, 0);
}
END_TEST

START_TEST(durations)
{
	tcpf t = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	Google__Protobuf__Duration idle = GOOGLE__PROTOBUF__DURATION__INIT, max = GOOGLE__PROTOBUF__DURATION__INIT;
	struct tcpp_conf c;

	t.idle_timeout = &idle; /* 0s: off (tcp_proxy.proto) */
	tcpp_conf_init(&c, &t);
	ck_assert_uint_eq(c.idle_ms, 0);
	idle.seconds = 1;
	idle.nanos = 500000; /* 1.0005 s: rounded up */
	max.seconds = 30;
	t.max_downstream_connection_duration = &max;
	tcpp_conf_init(&c, &t);
	ck_assert_uint_eq(c.idle_ms, 1001);
	ck_assert_uint_eq(c.max_duration_ms, 30000);
}
END_TEST

START_TEST(weighted)
{
	tcpf t = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster wc =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__WEIGHTED_CLUSTER__INIT;
	tcpp_weight a = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__INIT,
		    b = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__INIT,
		    z = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__INIT,
		    *v[3] = { &a, &z, &b };
	struct tcpp_conf c;
	unsigned na = 0, nb = 0;
	uint64_t r;

	a.name = "v1";
	a.weight = 25;
	z.name = "never";
	z.weight = 0;
	b.name = "v2";
	b.weight = 75;
	wc.clusters = v;
	wc.n_clusters = 3;
	t.cluster_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS;
	t.weighted_clusters = &wc;
	tcpp_conf_init(&c, &t);
	ck_assert_uint_eq(c.wc_total, 100);
	/* every draw of the range: exactly the weights */
	for (r = 0; r < 100; r++) {
		const char *n = tcpp_pick_cluster(&c, r + 1000);

		ck_assert_ptr_nonnull(n);
		ck_assert_str_ne(n, "never");
		if (!strcmp(n, "v1"))
			na++;
		else
			nb++;
	}
	ck_assert_uint_eq(na, 25);
	ck_assert_uint_eq(nb, 75);
	/* all weights 0: nothing to pick */
	a.weight = b.weight = 0;
	tcpp_conf_init(&c, &t);
	ck_assert_ptr_null(tcpp_pick_cluster(&c, 3));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tcpproxy");
	TCase *tc = tcase_create("conf");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, defaults);
	tcase_add_test(tc, durations);
	tcase_add_test(tc, weighted);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
