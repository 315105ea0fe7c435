/*
 * test_push_sidecar.c - the push stage hands each sidecar key the Sidecar
 * object that scopes it (push_workload.sidecar, model_sidecar_select() on
 * the key's namespace and labels): a key a Sidecar selects gets it, a
 * sibling key gets none, an edit reaches the scoped key with the new
 * content and a deletion takes it away.  A stub whole-builder records what
 * each build was given; no xDS server, no clock.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/push/push.h"
#include "controlplane/xds/ads.h"

#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct cfg_store *st;
static struct push_stage *ps;

/* what the last build of each key was given */
struct seen {
	char key[64];
	char sidecar[128];               /* "ns/name" or "" */
	uint64_t hash;
	int builds;
};
static struct seen seen[4];

static int stub_build_all(void *ctx, const struct model *m, const struct push_workload *w, struct xds_snapshot **out)
{
	const char *key = w->labels->n ? w->labels->v[0].value : "";
	size_t i;

	(void)ctx;
	(void)m;
	for (i = 0; i < 4; i++) {
		if (!seen[i].key[0] || strcmp(seen[i].key, key) == 0) {
			snprintf(seen[i].key, sizeof(seen[i].key), "%s", key);
			snprintf(seen[i].sidecar, sizeof(seen[i].sidecar), "%s%s%s", w->sidecar ? w->sidecar->ns : "",
				 w->sidecar ? "/" : "", w->sidecar ? w->sidecar->name : "");
			seen[i].hash = w->sidecar ? w->sidecar->hash : 0;
			seen[i].builds++;
			break;
		}
	}
	*out = xds_snapshot_new();
	return *out ? 0 : -ENOMEM;
}

static const struct seen *seen_of(const char *app)
{
	size_t i;

	for (i = 0; i < 4; i++)
		if (strcmp(seen[i].key, app) == 0)
			return &seen[i];
	ck_abort_msg("no build for app=%s", app);
	return NULL;
}

static void apply(const char *origin, const char *yaml)
{
	struct cfg_parse_result res;

	memset(&res, 0, sizeof(res));
	ck_assert_int_ge(cfg_parse_buffer(origin, yaml, strlen(yaml), &res), 0);
	ck_assert_uint_eq(res.n_errors, 0);
	ck_assert_int_ge(cfg_store_apply_origin(st, origin, &res), 0);
	cfg_parse_result_cleanup(&res);
}

/* A sidecar of namespace shop with label app=APP asks for its whole config. */
static void want_all(const char *app)
{
	struct xds_proxy_req *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->kind = XDS_PROXY_WANT_ALL;
	r->flavour = XDS_FLAVOUR_SIDECAR;
	r->key = strdup(app);
	r->ns = strdup("shop");
	r->labels = calloc(1, sizeof(*r->labels));
	ck_assert_ptr_nonnull(r->labels);
	r->labels->v = calloc(1, sizeof(*r->labels->v));
	ck_assert_ptr_nonnull(r->labels->v);
	r->labels->v[0].key = strdup("app");
	r->labels->v[0].value = strdup(app);
	r->labels->n = 1;
	r->seq = 1;
	push_stage_want(ps, r);
}

static const char *sidecar(const char *hosts)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
		 "metadata: {name: scoped, namespace: shop}\n"
		 "spec:\n  workloadSelector: {labels: {app: scoped}}\n  egress: [{hosts: [%s]}]\n", hosts);
	return buf;
}

static void setup(void)
{
	struct push_stage_config pc = { 0 };

	memset(seen, 0, sizeof(seen));
	st = cfg_store_new();
	ck_assert_ptr_nonnull(st);
	apply("svc.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			  "metadata: {name: a, namespace: shop}\n"
			  "spec: {hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}]}\n");
	pc.store = st;
	pc.domain = "cluster.local";
	pc.root_namespace = "istio-system";
	pc.trust_domain = "cluster.local";
	pc.build_all = stub_build_all;
	ck_assert_int_eq(push_stage_new(&pc, &ps), 0);
	ck_assert_int_eq(push_stage_push(ps), 0);
	want_all("scoped");
	want_all("sibling");
	ck_assert_int_eq(push_stage_handle(ps), 2);
}

static void teardown(void)
{
	push_stage_free(ps);
	cfg_store_free(st);
}

/* getSidecarScope through the stage: the selected key gets its Sidecar,
 * the sibling none; an edit hands the new content (hash) to the scoped key;
 * a deletion leaves both without. */
START_TEST(sidecar_selected_per_key)
{
	uint64_t h1;

	ck_assert_str_eq(seen_of("scoped")->sidecar, "");
	apply("sc.yaml", sidecar("\"./*\""));
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_str_eq(seen_of("scoped")->sidecar, "shop/scoped");
	ck_assert_str_eq(seen_of("sibling")->sidecar, "");
	h1 = seen_of("scoped")->hash;
	ck_assert_uint_ne(h1, 0);

	apply("sc.yaml", sidecar("\"./*\", \"istio-system/*\""));
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_str_eq(seen_of("scoped")->sidecar, "shop/scoped");
	ck_assert_uint_ne(seen_of("scoped")->hash, h1);
	ck_assert_str_eq(seen_of("sibling")->sidecar, "");

	ck_assert_int_ge(cfg_store_remove_origin(st, "sc.yaml"), 1);
	ck_assert_int_eq(push_stage_push(ps), 0);
	ck_assert_str_eq(seen_of("scoped")->sidecar, "");
	ck_assert_str_eq(seen_of("sibling")->sidecar, "");
}
END_TEST

static Suite *push_sidecar_suite(void)
{
	Suite *s = suite_create("push_sidecar");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sidecar_selected_per_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(push_sidecar_suite()) ? 1 : 0;
}
