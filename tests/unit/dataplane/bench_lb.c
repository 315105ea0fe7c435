/*
 * bench_lb.c - pick cost (ns per up_pick) of each load balancer on a
 * 1,000-host cluster, equal weights and mixed weights, plus the time and
 * memory to build its pools.  A benchmark: prints, asserts nothing
 * (`make lb-bench`).
 */
#include "upfix.h"

#include "common/arena.h"

#include <time.h>

#define BENCH_HOSTS 1000
#define BENCH_PICKS 2000000u

static double bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench(const char *label, Envoy__Config__Cluster__V3__Cluster__LbPolicy pol, bool weighted)
{
	static struct upfix_ep eps[BENCH_HOSTS];
	Envoy__Config__Cluster__V3__Cluster c;
	struct up_cluster *cl;
	struct up_hostset *hs;
	struct lb_rng rng = { 1 };
	double t0, t1, t2;
	uint64_t sink = 0;
	unsigned i;

	for (i = 0; i < BENCH_HOSTS; i++)
		eps[i] = (struct upfix_ep){ 0, 0, weighted ? 1 + i % 5 : 1, ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY };
	upfix_cluster(&c, pol);
	char err[256] = "";

	if (up_cluster_new(&c, err, sizeof(err), &cl) < 0) {
		printf("%s: %s\n", label, err);
		exit(1);
	}
	t0 = bench_now_ns();
	if (up_hostset_new(cl, upfix_cla(eps, NULL, BENCH_HOSTS, NULL), NULL, 1, err, sizeof(err), &hs) < 0) {
		printf("%s: %s\n", label, err);
		exit(1);
	}
	t1 = bench_now_ns();
	for (i = 0; i < BENCH_PICKS; i++) {
		uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ull;
		struct up_host *x = up_pick(hs, &rng, &h, NULL);

		sink += x->port;
	}
	t2 = bench_now_ns();
	printf("%-24s %-9s build %8.0f us  pools %7zu KiB  pick %6.1f ns\n", label, weighted ? "weighted" : "equal",
	       (t1 - t0) / 1e3, arena_used(hs->derived) / 1024, (t2 - t1) / BENCH_PICKS);
	if (sink == 42)
		printf("\n");
	up_hostset_free(hs);
	up_cluster_unref(cl);
}

int main(void)
{
	int w;

	printf("lb-bench: %d hosts, %u picks each\n", BENCH_HOSTS, BENCH_PICKS);
	for (w = 0; w < 2; w++) {
		bench("ROUND_ROBIN", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN, w);
		bench("LEAST_REQUEST", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST, w);
		bench("RANDOM", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM, w);
		bench("RING_HASH", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH, w);
		bench("MAGLEV", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV, w);
	}
	return 0;
}
