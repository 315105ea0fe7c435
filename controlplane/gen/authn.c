/*
 * authn.c - RequestAuthentication into the jwt_authn HTTP filter (see
 * authn.h for the shape, which is Istio's).  A pure function of the model
 * and of meshd's JWKS cache (model/jwks.h), which it reads but never
 * waits on: a jwksUri not fetched yet is served Istio's fallback key.
 */
#include "controlplane/gen/authn.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/jwks.h"
#include "controlplane/model/policy.h"

#include "common/arena.h"
#include "common/err.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider authn_provider;
typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement authn_req;

static const struct cfg_labels authn__no_labels;

static bool authn__applies(const struct cfg_object *o, const struct cfg_labels *labels)
{
	if (o->spec.ra.has_target_refs)
		return false;
	if (!o->spec.ra.has_selector)
		return true;
	return model_labels_match(&o->spec.ra.selector, labels ? labels : &authn__no_labels);
}

size_t authn_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
		    const struct cfg_object **out, size_t cap)
{
	return model_policy_select(m, CFG_REQUEST_AUTHENTICATION, ns, labels, authn__applies, out, cap);
}

static int authn__rule_cmp(const void *a, const void *b)
{
	const struct cfg_jwt_rule *x = *(const struct cfg_jwt_rule *const *)a, *y = *(const struct cfg_jwt_rule *const *)b;

	return strcmp(x->issuer ? x->issuer : "", y->issuer ? y->issuer : "");
}

static authn_req *authn__req(struct arena *a)
{
	return gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__descriptor);
}

static authn_req *authn__req_provider(struct arena *a, const char *name)
{
	authn_req *r = authn__req(a);

	if (!r)
		return NULL;
	r->requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_NAME;
	r->provider_name = (char *)name;
	return r;
}

static authn_req *authn__req_list(struct arena *a, bool any, authn_req **v, size_t n)
{
	authn_req *r = authn__req(a);

	if (!r)
		return NULL;
	if (any) {
		Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementOrList *l =
			gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_or_list__descriptor);
		if (!l)
			return NULL;
		l->requirements = v;
		l->n_requirements = n;
		r->requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY;
		r->requires_any = l;
	} else {
		Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementAndList *l =
			gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_and_list__descriptor);
		if (!l)
			return NULL;
		l->requirements = v;
		l->n_requirements = n;
		r->requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ALL;
		r->requires_all = l;
	}
	return r;
}

/* {name OR allow_missing} */
static authn_req *authn__req_optional(struct arena *a, const char *name)
{
	authn_req **v = arena_calloc(a, 2, sizeof(*v));
	authn_req *missing = authn__req(a);
	Google__Protobuf__Empty *e = gen__msg(a, &google__protobuf__empty__descriptor);

	if (!v || !missing || !e || !(v[0] = authn__req_provider(a, name)))
		return NULL;
	missing->requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING;
	missing->allow_missing = e;
	v[1] = missing;
	return authn__req_list(a, true, v, 2);
}

static authn_provider *authn__provider(struct arena *a, const struct cfg_jwt_rule *r)
{
	authn_provider *p = gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_provider__descriptor);
	Envoy__Config__Core__V3__DataSource *ds = gen__msg(a, &envoy__config__core__v3__data_source__descriptor);
	size_t i;

	if (!p || !ds)
		return NULL;
	p->issuer = r->issuer ? r->issuer : "";
	p->audiences = r->audiences.v;
	p->n_audiences = r->audiences.n;
	p->forward = r->forward_original_token;
	p->forward_payload_header = r->output_payload_to_header ? r->output_payload_to_header : "";
	p->payload_in_metadata = p->issuer;
	if (r->n_from_headers) {
		p->from_headers = arena_calloc(a, r->n_from_headers, sizeof(*p->from_headers));
		if (!p->from_headers)
			return NULL;
		for (i = 0; i < r->n_from_headers; i++) {
			Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtHeader *h =
				gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_header__descriptor);
			if (!h)
				return NULL;
			h->name = r->from_headers[i].name ? r->from_headers[i].name : "";
			h->value_prefix = r->from_headers[i].prefix ? r->from_headers[i].prefix : "";
			p->from_headers[i] = h;
		}
		p->n_from_headers = r->n_from_headers;
	}
	p->from_params = r->from_params.v;
	p->n_from_params = r->from_params.n;
	p->from_cookies = r->from_cookies.v;
	p->n_from_cookies = r->from_cookies.n;
	if (r->n_output_claim_to_headers) {
		p->claim_to_headers = arena_calloc(a, r->n_output_claim_to_headers, sizeof(*p->claim_to_headers));
		if (!p->claim_to_headers)
			return NULL;
		for (i = 0; i < r->n_output_claim_to_headers; i++) {
			Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtClaimToHeader *c =
				gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_claim_to_header__descriptor);
			if (!c)
				return NULL;
			c->header_name = r->output_claim_to_headers[i].header;
			c->claim_name = r->output_claim_to_headers[i].claim;
			p->claim_to_headers[i] = c;
		}
		p->n_claim_to_headers = r->n_output_claim_to_headers;
	}
	ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
	/* Istio's order: jwks, else jwksUri, else the issuer's OpenID discovery */
	ds->inline_string = r->jwks && r->jwks[0] ? r->jwks
			    : r->jwks_uri           ? jwks_resolver_get(r->jwks_uri, a)
			    : r->issuer             ? jwks_resolver_get_openid(r->issuer, a)
						    : (char *)JWKS_FAKE;
	if (!ds->inline_string)
		return NULL;
	p->jwks_source_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_LOCAL_JWKS;
	p->local_jwks = ds;
	return p;
}

int authn_jwt_config_build(const struct model *m, const char *ns, const struct cfg_labels *labels, struct arena *a,
			   authn_jwt_config **out)
{
	const struct cfg_object *sel[AUTHN_MAX_POLICIES];
	const struct cfg_jwt_rule **rules = NULL;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication__ProvidersEntry **pv;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__RequirementRule *rule;
	Envoy__Config__Route__V3__RouteMatch *match;
	authn_req **inner, **outer;
	authn_jwt_config *c;
	size_t n, i, j, k = 0;

	*out = NULL;
	n = authn_select(m, ns, labels, sel, AUTHN_MAX_POLICIES);
	if (n > AUTHN_MAX_POLICIES)
		return -MESH_ETOOBIG;
	for (i = 0; i < n; i++)
		k += sel[i]->spec.ra.n_rules;
	if (!k)
		return 0;
	rules = arena_calloc(a, k, sizeof(*rules));
	if (!rules)
		return -ENOMEM;
	k = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < sel[i]->spec.ra.n_rules; j++)
			rules[k++] = &sel[i]->spec.ra.rules[j];
	/* Istio sorts the rules by issuer so the config is deterministic;
	 * a stable sort (insertion: a handful of rules) keeps policy order
	 * for equal issuers */
	for (i = 1; i < k; i++) {
		const struct cfg_jwt_rule *r = rules[i];
		for (j = i; j > 0 && authn__rule_cmp(&rules[j - 1], &r) > 0; j--)
			rules[j] = rules[j - 1];
		rules[j] = r;
	}
	c = gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__descriptor);
	pv = arena_calloc(a, k, sizeof(*pv));
	inner = arena_calloc(a, k, sizeof(*inner));
	outer = arena_calloc(a, k + 1, sizeof(*outer));
	rule = gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__requirement_rule__descriptor);
	match = gen__msg(a, &envoy__config__route__v3__route_match__descriptor);
	if (!c || !pv || !inner || !outer || !rule || !match)
		return -ENOMEM;
	for (i = 0; i < k; i++) {
		char *name = arena_printf(a, "origins-%zu", i);
		pv[i] = gen__msg(a, &envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__providers_entry__descriptor);
		if (!name || !pv[i] || !(pv[i]->value = authn__provider(a, rules[i])))
			return -ENOMEM;
		pv[i]->key = name;
		if (!(inner[i] = authn__req_optional(a, name)) || !(outer[i] = authn__req_provider(a, name)))
			return -ENOMEM;
	}
	c->providers = pv;
	c->n_providers = k;
	match->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	match->prefix = "/";
	rule->match = match;
	rule->requirement_type_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIRES;
	if (k == 1) {
		rule->requires = inner[0];
	} else {
		if (!(outer[k] = authn__req_list(a, false, inner, k)) || !(rule->requires = authn__req_list(a, true, outer, k + 1)))
			return -ENOMEM;
	}
	c->rules = arena_calloc(a, 1, sizeof(*c->rules));
	if (!c->rules)
		return -ENOMEM;
	c->rules[0] = rule;
	c->n_rules = 1;
	c->bypass_cors_preflight = true;
	*out = c;
	return 0;
}

int authn_jwt_http_filter(const struct model *m, const char *ns, const struct cfg_labels *labels, struct arena *a,
			  Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter **out)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f;
	authn_jwt_config *c = NULL;
	int rc;

	*out = NULL;
	rc = authn_jwt_config_build(m, ns, labels, a, &c);
	if (rc < 0 || !c)
		return rc;
	f = gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor);
	if (!f)
		return -ENOMEM;
	f->name = AUTHN_JWT_FILTER_NAME;
	f->config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = gen__any(a, &c->base);
	if (!f->typed_config)
		return -ENOMEM;
	*out = f;
	return 0;
}
