/*
 * fuzz_jwt.c - libFuzzer target for what a client controls in the JWT
 * filter (dataplane/jwt.c) and for the JSON reader under it (common/json.c).
 *
 * The first byte picks the input's role:
 *   0: the Authorization header's value, against a fixed provider (an RSA
 *      and an EC key, issuer and audience) under Istio's requirement;
 *   1: the same bytes as the access_token query parameter;
 *   2: a JWKS given to the provider (compiled, then a fixed token run);
 *   else: json_parse over the bytes, every node walked.
 * Invariants: no crash, leak or sanitizer report; a result is 0, 401 or
 * 403; a verified result always carries a principal.
 */
#include "dataplane/jwt.h"

#include "common/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* public keys only (their private halves were never kept) */
static const char JWKS[] =
	"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"e\":\"AQAB\",\"n\":\"vcoHXajuylGO4On2UM_RJgo91P7NN289xIsD0DDB3jZ2"
	"vnYMAwmo3iu4Pnc_DaQ9h1htACezcu9yzvba55XHH_-tUfLyEnuVWiIsYBgkA_gqu7fO45t9pPemQYXovK69oZZnm1l0IF3BvWVfQZFsJ"
	"YUa17bKvwjGaAxQSXGqHD8N9pzdJRM3GI5dA0npmbnkDbF4aQIcw-w1HxVfTsi_2JXDC_Kb29zifpAcisGTOaGR_ww3gxd2NbdSFMOBWz"
	"3-YptNkVE7uJqSe8UT976_6yVrbPIETOUJLCebI2UxT_opOSZ2smboOF_TtcCSfe1-WY7irSv5LGqOLPadBUqBiw\"},"
	"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
	"\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}]}";

/* header: {"alg":"ES256","kid":"e"}, payload {"iss":"i","sub":"s","aud":"a"} */
static const char TOKEN[] = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImUifQ.eyJpc3MiOiJpIiwic3ViIjoicyIsImF1ZCI6ImEifQ."
			    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct hdrs {
	const char *auth, *cookie;
	size_t auth_len, cookie_len;
};

static const char *get(void *ctx, const char *name, size_t nl, size_t *vl)
{
	struct hdrs *h = ctx;

	if (nl == 13 && !strncasecmp(name, "authorization", 13) && h->auth) {
		*vl = h->auth_len;
		return h->auth;
	}
	if (nl == 6 && !strncasecmp(name, "cookie", 6) && h->cookie) {
		*vl = h->cookie_len;
		return h->cookie;
	}
	return NULL;
}

static struct jwt_config *compile(const char *jwks, size_t len)
{
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication m;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication__ProvidersEntry pe, *pev[1] = { &pe };
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider p;
	Envoy__Config__Core__V3__DataSource ds;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__RequirementRule rule, *rulev[1] = { &rule };
	Envoy__Config__Route__V3__RouteMatch match;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement top, prov, missing, *kids[2] = { &prov, &missing };
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementOrList any;
	Google__Protobuf__Empty empty;
	char *aud[1] = { "a" };
	struct jwt_config *c = NULL;
	char err[256];

	envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__init(&m);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__providers_entry__init(&pe);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_provider__init(&p);
	envoy__config__core__v3__data_source__init(&ds);
	envoy__extensions__filters__http__jwt_authn__v3__requirement_rule__init(&rule);
	envoy__config__route__v3__route_match__init(&match);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&top);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&prov);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&missing);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_or_list__init(&any);
	google__protobuf__empty__init(&empty);
	ds.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
	ds.inline_bytes.data = (uint8_t *)jwks;
	ds.inline_bytes.len = len;
	p.issuer = "i";
	p.audiences = aud;
	p.n_audiences = 1;
	p.forward_payload_header = "x-p";
	p.jwks_source_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_LOCAL_JWKS;
	p.local_jwks = &ds;
	pe.key = "origins-0";
	pe.value = &p;
	m.providers = pev;
	m.n_providers = 1;
	prov.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_NAME;
	prov.provider_name = "origins-0";
	missing.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING;
	missing.allow_missing = &empty;
	any.requirements = kids;
	any.n_requirements = 2;
	top.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY;
	top.requires_any = &any;
	match.path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	match.prefix = "/";
	rule.match = &match;
	rule.requirement_type_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIRES;
	rule.requires = &top;
	m.rules = rulev;
	m.n_rules = 1;
	if (jwt_config_new(&m, &c, err, sizeof(err)) < 0)
		abort();
	return c;
}

static void run(const struct jwt_config *c, const char *path, size_t path_len, struct hdrs *h)
{
	struct jwt_req r = { "GET", 3, path, path_len, "h", 1, get, h, NULL };
	struct jwt_result *res = NULL;

	if (jwt_filter_run(c, &r, 1700000000, &res) < 0)
		return;
	if (res->status != 0 && res->status != 401 && res->status != 403)
		abort();
	if (jwt_result_rbac(res) && !jwt_result_rbac(res)->principal)
		abort();
	jwt_result_free(res);
}

static void walk(const struct json_value *v)
{
	size_t i;

	for (i = 0; v && i < v->n; i++) {
		if (v->type == JSON_OBJECT && !v->v[i]->key)
			abort();
		walk(v->v[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jwt_config *fixed;
	struct hdrs h = { NULL, NULL, 0, 0 };
	char *buf;

	if (!size)
		return 0;
	if (!fixed)
		fixed = compile(JWKS, sizeof(JWKS) - 1);
	buf = malloc(size + 16);
	if (!buf)
		return 0;
	switch (data[0]) {
	case 0:
		h.auth = (const char *)data + 1;
		h.auth_len = size - 1;
		run(fixed, "/", 1, &h);
		break;
	case 1:
		memcpy(buf, "/?access_token=", 15);
		memcpy(buf + 15, data + 1, size - 1);
		run(fixed, buf, size + 14, &h);
		break;
	case 2: {
		struct jwt_config *c = compile((const char *)data + 1, size - 1);
		char auth[sizeof(TOKEN) + 8] = "Bearer ";

		memcpy(auth + 7, TOKEN, sizeof(TOKEN));
		h.auth = auth;
		h.auth_len = strlen(auth);
		run(c, "/", 1, &h);
		jwt_config_free(c);
		break;
	}
	default: {
		struct json_value *v = NULL;

		if (json_parse((const char *)data + 1, size - 1, &v) == 0)
			walk(v);
		json_free(v);
		break;
	}
	}
	free(buf);
	return 0;
}
