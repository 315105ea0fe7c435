/*
 * test_gen_upstream.c - every Cluster and ClusterLoadAssignment meshd's
 * sidecar generator emits for the golden cases (tests/xds/NNNN/ with a
 * sidecar.yaml) compiles through meshproxy's upstream modules
 * (dataplane/upstream.c, lb.c, outlier.c, cbreaker.c): what meshd sends,
 * meshproxy must take, or it would NACK it.  The cases are loaded and
 * generated exactly as tests/xds/golden.c does (its code is reused: the
 * file is included with its main() renamed).
 */
#define main golden_main
#include "../../../xds/golden.c"
#undef main

#include "dataplane/upstream.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"

#include <check.h>

#define XDS_CASES "tests/xds"

struct gu_totals {
	size_t cases, clusters, eds, hosts, picks;
	size_t kind[LB_MAGLEV + 1];
	size_t outlier, locality_weighted, max_rq_per_cx;
};

static void gu_case(const char *dir, struct gu_totals *t)
{
	struct golden_sidecar sc;
	struct golden_output out;
	struct model *m = NULL;
	struct lb_rng rng = { 42 };
	size_t i;

	memset(&sc, 0, sizeof(sc));
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(golden_sidecar_load(dir, &sc), 0);
	if (!sc.present) {
		golden_sidecar_free(&sc);
		return;
	}
	ck_assert_msg(golden_model(dir, &m) == 0, "%s: config", dir);
	ck_assert_msg(golden_generate("sidecar", m, NULL, 0, &sc, &out) == 0, "%s: generate", dir);
	t->cases++;
	for (i = 0; i < out.snap->sets[XDS_CLUSTER].n; i++) {
		const struct xds_resource *r = out.snap->sets[XDS_CLUSTER].v[i];
		Envoy__Config__Cluster__V3__Cluster *c = envoy__config__cluster__v3__cluster__unpack(NULL, r->len, r->data);
		Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = NULL;
		const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *use;
		struct up_cluster *cl = NULL;
		struct up_hostset *hs = NULL;
		char err[512] = "";
		int k;

		ck_assert_msg(c != NULL, "%s: cluster %s does not decode", dir, r->name);
		ck_assert_msg(up_cluster_new(c, err, sizeof(err), &cl) == 0, "%s: cluster %s: %s", dir, r->name, err);
		t->clusters++;
		t->kind[cl->lb.kind]++;
		t->outlier += cl->od.enabled;
		t->locality_weighted += cl->locality_weighted;
		t->max_rq_per_cx += cl->max_requests_per_connection > 0;
		use = c->load_assignment;
		if (cl->type == UP_EDS) {
			const struct xds_resource *e = xds_snapshot_find(out.snap, XDS_ENDPOINT, cl->eds_name);

			if (e) {
				cla = envoy__config__endpoint__v3__cluster_load_assignment__unpack(NULL, e->len, e->data);
				ck_assert_msg(cla != NULL, "%s: eds %s does not decode", dir, cl->eds_name);
				t->eds++;
			}
			use = cla;
		}
		ck_assert_msg(up_hostset_new(cl, use, NULL, 1, err, sizeof(err), &hs) == 0, "%s: hosts of %s: %s", dir,
			      r->name, err);
		t->hosts += hs->n;
		for (k = 0; hs->n && k < 16; k++) {
			uint64_t h = (uint64_t)k * 0x9e3779b97f4a7c15ull;

			ck_assert_msg(up_pick(hs, &rng, &h, NULL) != NULL || cl->panic_threshold == 0,
				      "%s: %s: no host picked", dir, r->name);
			t->picks++;
		}
		up_hostset_free(hs);
		up_cluster_unref(cl);
		if (cla)
			envoy__config__endpoint__v3__cluster_load_assignment__free_unpacked(cla, NULL);
		envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
	}
	golden_output_cleanup(&out);
	golden_sidecar_free(&sc);
	model_unref(m);
}

static int gu_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(every_sidecar_cluster_loads)
{
	DIR *d = opendir(XDS_CASES);
	struct dirent *e;
	char *names[512];
	size_t n = 0, i;
	struct gu_totals t;

	memset(&t, 0, sizeof(t));
	mesh_log_setup("error", "text");
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) && n < 512)
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(*names), gu_cmp);
	for (i = 0; i < n; i++) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s/%s", XDS_CASES, names[i]);
		gu_case(dir, &t);
		free(names[i]);
	}
	printf("upstream: %zu cases, %zu clusters (%zu EDS assignments, %zu hosts, %zu picks); RR %zu LR %zu RANDOM %zu "
	       "RING_HASH %zu MAGLEV %zu; outlier %zu, locality-weighted %zu, max_requests_per_connection %zu\n",
	       t.cases, t.clusters, t.eds, t.hosts, t.picks, t.kind[LB_ROUND_ROBIN], t.kind[LB_LEAST_REQUEST],
	       t.kind[LB_RANDOM], t.kind[LB_RING_HASH], t.kind[LB_MAGLEV], t.outlier, t.locality_weighted, t.max_rq_per_cx);
	/* the golden cases cover what meshd can emit: if they stop reaching
	 * the modules, this test must say so rather than pass on nothing */
	ck_assert_uint_ge(t.cases, 40);
	ck_assert_uint_gt(t.eds, 50);
	ck_assert_uint_gt(t.kind[LB_RING_HASH], 0);
	ck_assert_uint_gt(t.kind[LB_MAGLEV], 0);
	ck_assert_uint_gt(t.kind[LB_LEAST_REQUEST], 0);
	ck_assert_uint_gt(t.outlier, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gen_upstream");
	TCase *tc = tcase_create("gen_upstream");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_sidecar_cluster_loads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
