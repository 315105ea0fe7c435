/*
 * test_authn.c - RequestAuthentication -> jwt_authn (controlplane/gen/authn.h):
 * which policies apply to a workload (root namespace, own namespace,
 * selector, targetRef never), providers origins-N sorted by issuer with
 * their fields, Istio's requirement shapes for one and for several rules,
 * the jwksUri served Istio's fallback key while meshd has not fetched it
 * (model/jwks.h, no fetch thread here), and no filter without a rule.
 */
#include <check.h>

#include "common/arena.h"
#include "controlplane/gen/authn.h"
#include "controlplane/model/jwks.h"

#include <string.h>

#include "testutil.h"

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement req_t;

static const char CONFIG[] =
	"apiVersion: security.istio.io/v1\n"
	"kind: RequestAuthentication\n"
	"metadata: {name: mesh, namespace: istio-system}\n"
	"spec:\n"
	"  jwtRules:\n"
	"  - {issuer: https://z-mesh.test, jwks: '{\"keys\":[]}'}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: RequestAuthentication\n"
	"metadata: {name: web, namespace: demo}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: web}}\n"
	"  jwtRules:\n"
	"  - issuer: https://b.test\n"
	"    jwksUri: http://127.0.0.1:1/jwks.json\n"
	"    audiences: [web, api]\n"
	"    forwardOriginalToken: true\n"
	"    fromHeaders: [{name: x-jwt, prefix: 'Token '}]\n"
	"    fromParams: [tok]\n"
	"    fromCookies: [session]\n"
	"    outputPayloadToHeader: x-payload\n"
	"    outputClaimToHeaders: [{header: x-sub, claim: sub}]\n"
	"  - {issuer: https://a.test, jwks: '{\"keys\":[]}'}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: RequestAuthentication\n"
	"metadata: {name: other, namespace: demo}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: other}}\n"
	"  jwtRules: [{issuer: https://other.test}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: RequestAuthentication\n"
	"metadata: {name: gw, namespace: demo}\n"
	"spec:\n"
	"  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n"
	"  jwtRules: [{issuer: https://gw.test}]\n";

static const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider *provider(const authn_jwt_config *c,
										     const char *name)
{
	size_t i;

	for (i = 0; i < c->n_providers; i++)
		if (!strcmp(c->providers[i]->key, name))
			return c->providers[i]->value;
	return NULL;
}

/* {name OR allow_missing} */
static void check_optional(const req_t *r, const char *name)
{
	ck_assert_int_eq(r->requires_type_case,
			 ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY);
	ck_assert_uint_eq(r->requires_any->n_requirements, 2);
	ck_assert_str_eq(r->requires_any->requirements[0]->provider_name, name);
	ck_assert_int_eq(r->requires_any->requirements[1]->requires_type_case,
			 ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING);
}

START_TEST(selection_and_shape)
{
	struct model *m = testutil_model("authn.yaml", CONFIG);
	struct arena *a = arena_new(1 << 20);
	struct cfg_kv kv = { "app", "web" };
	struct cfg_labels web = { &kv, 1 };
	const struct cfg_object *sel[8];
	authn_jwt_config *c = NULL;
	const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider *p;
	const req_t *top;
	size_t i;

	/* root namespace first, then the workload's own; not "other", never targetRef */
	ck_assert_uint_eq(authn_select(m, "demo", &web, sel, 8), 2);
	ck_assert_str_eq(sel[0]->name, "mesh");
	ck_assert_str_eq(sel[1]->name, "web");

	ck_assert_int_eq(authn_jwt_config_build(m, "demo", &web, a, &c), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->n_providers, 3);
	/* sorted by issuer: a, b, z-mesh */
	ck_assert_str_eq(provider(c, "origins-0")->issuer, "https://a.test");
	ck_assert_str_eq(provider(c, "origins-1")->issuer, "https://b.test");
	ck_assert_str_eq(provider(c, "origins-2")->issuer, "https://z-mesh.test");
	p = provider(c, "origins-1");
	ck_assert_uint_eq(p->n_audiences, 2);
	ck_assert(p->forward);
	ck_assert_str_eq(p->payload_in_metadata, "https://b.test");
	ck_assert_str_eq(p->forward_payload_header, "x-payload");
	ck_assert_str_eq(p->from_headers[0]->name, "x-jwt");
	ck_assert_str_eq(p->from_headers[0]->value_prefix, "Token ");
	ck_assert_str_eq(p->from_params[0], "tok");
	ck_assert_str_eq(p->from_cookies[0], "session");
	ck_assert_str_eq(p->claim_to_headers[0]->header_name, "x-sub");
	ck_assert_str_eq(p->claim_to_headers[0]->claim_name, "sub");
	/* not fetched (no fetch thread): Istio's fallback key, never an empty set */
	ck_assert_str_eq(p->local_jwks->inline_string, JWKS_FAKE);
	ck_assert_str_eq(provider(c, "origins-0")->local_jwks->inline_string, "{\"keys\":[]}");
	ck_assert(!provider(c, "origins-0")->forward);

	/* any of {origins-0, origins-1, origins-2, all of {origins-i OR allow_missing}} */
	ck_assert_uint_eq(c->n_rules, 1);
	ck_assert_str_eq(c->rules[0]->match->prefix, "/");
	ck_assert(c->bypass_cors_preflight);
	top = c->rules[0]->requires;
	ck_assert_int_eq(top->requires_type_case,
			 ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY);
	ck_assert_uint_eq(top->requires_any->n_requirements, 4);
	for (i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "origins-%zu", i);
		ck_assert_str_eq(top->requires_any->requirements[i]->provider_name, name);
		check_optional(top->requires_any->requirements[3]->requires_all->requirements[i], name);
	}

	/* one rule: just {origins-0 OR allow_missing} */
	c = NULL;
	ck_assert_int_eq(authn_jwt_config_build(m, "istio-system", NULL, a, &c), 0);
	ck_assert_uint_eq(c->n_providers, 1);
	check_optional(c->rules[0]->requires, "origins-0");
	arena_free(a);
	model_unref(m);
	jwks_resolver_stop();
}
END_TEST

START_TEST(no_rule_no_filter)
{
	struct model *m = testutil_model("authn.yaml",
					 "apiVersion: security.istio.io/v1\n"
					 "kind: RequestAuthentication\n"
					 "metadata: {name: empty, namespace: demo}\n"
					 "spec: {}\n");
	struct arena *a = arena_new(1 << 20);
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f = (void *)1;

	ck_assert_int_eq(authn_jwt_http_filter(m, "demo", NULL, a, &f), 0);
	ck_assert_ptr_null(f);
	arena_free(a);
	model_unref(m);
}
END_TEST

static Suite *authn_suite(void)
{
	Suite *s = suite_create("authn");
	TCase *tc = tcase_create("authn");

	tcase_add_test(tc, selection_and_shape);
	tcase_add_test(tc, no_rule_no_filter);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(authn_suite()) ? 1 : 0;
}
