/*
 * test_jwt.c - meshproxy's JWT filter (dataplane/jwt.h) on keys made at
 * test time (RSA 2048, EC P-256 and P-384) and tokens signed here: every
 * algorithm verifies, a flipped signature byte, an expired or not-yet-valid
 * token (with the 60 s skew), the wrong issuer or audience, an unknown kid
 * and a missing token get Envoy's answers under Istio's requirement
 * ({provider OR allow_missing}); token locations (header with prefix,
 * query parameter, cookie, the Authorization default); the request edits
 * (forward false drops the token header, forward_payload_header and
 * claim_to_headers); the RBAC view (principal "iss/sub", claims) and its
 * use by rbac_eval's istio_authn metadata matchers; the JSON reader.
 */
#include "dataplane/jwt.h"

#include "common/buf.h"
#include "common/json.h"
#include "common/xds/rbac_eval.h"

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/type/matcher/v3/metadata.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/matcher/v3/value.pb-c.h"

#include <check.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NOW 1700000000

static EVP_PKEY *rsa_key, *ec256_key, *ec384_key;

/* ------------------------------------------------------------- helpers */

static void b64url(struct mesh_buf *b, const unsigned char *p, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		char o[4] = { t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63] };
		mesh_buf_append(b, o, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		char o[2] = { t[v >> 18], t[(v >> 12) & 63] };
		mesh_buf_append(b, o, 2);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		char o[3] = { t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63] };
		mesh_buf_append(b, o, 3);
	}
}

static void b64url_bn(struct mesh_buf *b, const BIGNUM *bn, int pad_to)
{
	unsigned char buf[512];
	int n = pad_to ? BN_bn2binpad(bn, buf, pad_to) : BN_bn2bin(bn, buf);

	b64url(b, buf, (size_t)n);
}

static EVP_PKEY *gen_rsa(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	ck_assert_ptr_nonnull(k);
	return k;
}

static EVP_PKEY *gen_ec(const char *curve)
{
	EVP_PKEY *k = EVP_EC_gen(curve);

	ck_assert_ptr_nonnull(k);
	return k;
}

/* One JWK for key k. */
static void jwk(struct mesh_buf *b, EVP_PKEY *k, const char *kid)
{
	BIGNUM *x = NULL, *y = NULL;

	mesh_buf_puts(b, "{");
	if (kid)
		mesh_buf_printf(b, "\"kid\":\"%s\",", kid);
	if (EVP_PKEY_is_a(k, "RSA")) {
		ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &x));
		ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &y));
		mesh_buf_puts(b, "\"kty\":\"RSA\",\"n\":\"");
		b64url_bn(b, x, 0);
		mesh_buf_puts(b, "\",\"e\":\"");
		b64url_bn(b, y, 0);
		mesh_buf_puts(b, "\"}");
	} else {
		char group[32];
		int bytes;
		ck_assert(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL));
		ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x));
		ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y));
		bytes = !strcmp(group, "prime256v1") ? 32 : 48;
		mesh_buf_printf(b, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"", bytes == 32 ? "P-256" : "P-384");
		b64url_bn(b, x, bytes);
		mesh_buf_puts(b, "\",\"y\":\"");
		b64url_bn(b, y, bytes);
		mesh_buf_puts(b, "\"}");
	}
	BN_free(x);
	BN_free(y);
}

/* A compact JWS over header {"alg":alg,"kid":kid} and payload. */
static char *sign(EVP_PKEY *k, const char *alg, const char *kid, const char *payload)
{
	struct mesh_buf b;
	char hdr[128];
	const EVP_MD *md = strstr(alg, "256") ? EVP_sha256() : strstr(alg, "384") ? EVP_sha384() : EVP_sha512();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char sig[1024];
	size_t sl = sizeof(sig);

	mesh_buf_init(&b, 1 << 16);
	if (kid)
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
	else
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	b64url(&b, (const unsigned char *)hdr, strlen(hdr));
	mesh_buf_putc(&b, '.');
	b64url(&b, (const unsigned char *)payload, strlen(payload));
	ck_assert(EVP_DigestSignInit(ctx, &pctx, md, NULL, k) == 1);
	if (alg[0] == 'P') {
		ck_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
		ck_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1);
	}
	ck_assert(EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)b.data, b.len) == 1);
	EVP_MD_CTX_free(ctx);
	mesh_buf_putc(&b, '.');
	if (alg[0] == 'E') {
		/* DER -> r||s */
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
		unsigned char raw[132];
		int half = strstr(alg, "256") ? 32 : 48;
		ck_assert_ptr_nonnull(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half);
		ECDSA_SIG_free(es);
		b64url(&b, raw, (size_t)(2 * half));
	} else {
		b64url(&b, sig, sl);
	}
	return mesh_buf_take(&b, NULL);
}

/* Envoy's JwtAuthentication as Istio builds it for one rule. */
struct cfg {
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication m;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication__ProvidersEntry pe, *pev[1];
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider p;
	Envoy__Config__Core__V3__DataSource ds;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__RequirementRule rule, *rulev[1];
	Envoy__Config__Route__V3__RouteMatch match;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement top, prov, missing, *kids[2];
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementOrList any;
	Google__Protobuf__Empty empty;
	char *aud[1];
	char *jwks;
};

static void cfg_init(struct cfg *c, const char *issuer, const char *aud)
{
	struct mesh_buf b;

	memset(c, 0, sizeof(*c));
	envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__init(&c->m);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__providers_entry__init(&c->pe);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_provider__init(&c->p);
	envoy__config__core__v3__data_source__init(&c->ds);
	envoy__extensions__filters__http__jwt_authn__v3__requirement_rule__init(&c->rule);
	envoy__config__route__v3__route_match__init(&c->match);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&c->top);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&c->prov);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&c->missing);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_or_list__init(&c->any);
	google__protobuf__empty__init(&c->empty);
	mesh_buf_init(&b, 1 << 16);
	mesh_buf_puts(&b, "{\"keys\":[");
	jwk(&b, rsa_key, "rsa1");
	mesh_buf_putc(&b, ',');
	jwk(&b, ec256_key, "ec1");
	mesh_buf_putc(&b, ',');
	jwk(&b, ec384_key, NULL);
	mesh_buf_puts(&b, "]}");
	c->jwks = mesh_buf_take(&b, NULL);
	c->ds.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
	c->ds.inline_string = c->jwks;
	c->p.issuer = (char *)issuer;
	if (aud) {
		c->aud[0] = (char *)aud;
		c->p.audiences = c->aud;
		c->p.n_audiences = 1;
	}
	c->p.jwks_source_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_LOCAL_JWKS;
	c->p.local_jwks = &c->ds;
	c->p.payload_in_metadata = (char *)issuer;
	c->pe.key = "origins-0";
	c->pe.value = &c->p;
	c->pev[0] = &c->pe;
	c->m.providers = c->pev;
	c->m.n_providers = 1;
	c->prov.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_NAME;
	c->prov.provider_name = "origins-0";
	c->missing.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING;
	c->missing.allow_missing = &c->empty;
	c->kids[0] = &c->prov;
	c->kids[1] = &c->missing;
	c->any.requirements = c->kids;
	c->any.n_requirements = 2;
	c->top.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY;
	c->top.requires_any = &c->any;
	c->match.path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	c->match.prefix = "/";
	c->rule.match = &c->match;
	c->rule.requirement_type_case =
		ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIRES;
	c->rule.requires = &c->top;
	c->rulev[0] = &c->rule;
	c->m.rules = c->rulev;
	c->m.n_rules = 1;
	c->m.bypass_cors_preflight = 1;
}

static struct jwt_config *cfg_compile(struct cfg *c)
{
	struct jwt_config *jc = NULL;
	char err[256] = "";

	ck_assert_msg(jwt_config_new(&c->m, &jc, err, sizeof(err)) == 0, "%s", err);
	return jc;
}

/* A request: "name: value" pairs. */
struct hreq {
	const char *names[8], *values[8];
	size_t n;
};

static const char *hget(void *ctx, const char *name, size_t nl, size_t *vl)
{
	struct hreq *h = ctx;
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strlen(h->names[i]) == nl && !strncasecmp(h->names[i], name, nl)) {
			*vl = strlen(h->values[i]);
			return h->values[i];
		}
	return NULL;
}

static struct jwt_result *run(const struct jwt_config *jc, const char *path, struct hreq *h)
{
	struct jwt_req r = { "GET", 3, path, strlen(path), "svc.local", 9, hget, h, NULL };
	struct jwt_result *res = NULL;

	ck_assert_int_eq(jwt_filter_run(jc, &r, NOW, &res), 0);
	ck_assert_ptr_nonnull(res);
	return res;
}

static struct jwt_result *run_bearer(const struct jwt_config *jc, const char *tok)
{
	static char auth[20000];
	struct hreq h = { { "authorization" }, { auth }, 1 };

	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	return run(jc, "/x?q=1", &h);
}

#define PAYLOAD_OK "{\"iss\":\"https://issuer.test\",\"sub\":\"alice\",\"aud\":[\"svc\",\"other\"],\"exp\":1700003600," \
		   "\"nbf\":1699990000,\"groups\":[\"admin\",\"dev\"],\"org\":{\"team\":\"blue\"},\"azp\":\"cli\"}"

/* ------------------------------------------------------------- tests */

START_TEST(every_algorithm)
{
	static const struct {
		const char *alg, *kid;
		EVP_PKEY **k;
	} cases[] = {
		{ "RS256", "rsa1", &rsa_key }, { "RS384", "rsa1", &rsa_key }, { "RS512", NULL, &rsa_key },
		{ "PS256", "rsa1", &rsa_key }, { "PS384", "rsa1", &rsa_key }, { "PS512", "rsa1", &rsa_key },
		{ "ES256", "ec1", &ec256_key }, { "ES384", NULL, &ec384_key },
	};
	struct cfg c;
	struct jwt_config *jc;
	size_t i;

	cfg_init(&c, "https://issuer.test", "svc");
	jc = cfg_compile(&c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = sign(*cases[i].k, cases[i].alg, cases[i].kid, PAYLOAD_OK);
		struct jwt_result *res = run_bearer(jc, tok);
		const struct rbac_jwt *rj = jwt_result_rbac(res);

		ck_assert_msg(res->status == 0, "%s: %s", cases[i].alg, res->message ? res->message : "");
		ck_assert_ptr_nonnull(rj);
		ck_assert_str_eq(rj->principal, "https://issuer.test/alice");
		/* forward false (Istio's default): the token header is removed */
		ck_assert(jwt_result_drops(res, "Authorization", 13));
		jwt_result_free(res);

		/* one flipped signature byte fails */
		tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
		res = run_bearer(jc, tok);
		ck_assert_int_eq(res->status, 401);
		ck_assert_str_eq(res->message, "Jwt verification fails");
		ck_assert_ptr_null(jwt_result_rbac(res));
		ck_assert(!jwt_result_drops(res, "authorization", 13));
		jwt_result_free(res);
		free(tok);
	}
	jwt_config_free(jc);
	free(c.jwks);
}
END_TEST

START_TEST(refusals)
{
	static const struct {
		const char *payload, *kid, *alg, *msg;
		int status;
	} cases[] = {
		/* exp 61 s ago: past the 60 s skew; 59 s ago: inside it */
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"svc\",\"exp\":1699999939}", "rsa1", "RS256",
		  "Jwt is expired", 401 },
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"svc\",\"exp\":1699999941}", "rsa1", "RS256", NULL,
		  0 },
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"svc\",\"nbf\":1700000061}", "rsa1", "RS256",
		  "Jwt not yet valid", 401 },
		{ "{\"iss\":\"https://other.test\",\"sub\":\"a\",\"aud\":\"svc\"}", "rsa1", "RS256",
		  "Jwt issuer is not configured", 401 },
		/* no issuer at all is not the provider's issuer either */
		{ "{\"sub\":\"a\",\"aud\":\"svc\"}", "rsa1", "RS256", "Jwt issuer is not configured", 401 },
		/* Envoy answers an audience refusal 403 */
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"nope\"}", "rsa1", "RS256",
		  "Audiences in Jwt are not allowed", 403 },
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"svc\"}", "unknown-kid", "RS256",
		  "Jwks doesn't have key to match kid or alg from Jwt", 401 },
		{ "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"svc\"}", "rsa1", "HS256",
		  "Jwt header [alg] is not supported", 401 },
	};
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	struct hreq none = { { NULL }, { NULL }, 0 };
	size_t i;

	cfg_init(&c, "https://issuer.test", "svc");
	jc = cfg_compile(&c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* HS256 cannot be signed with the RSA key: sign RS256 and relabel the header */
		char *tok = sign(rsa_key, strcmp(cases[i].alg, "HS256") ? cases[i].alg : "RS256", cases[i].kid,
				 cases[i].payload);
		if (!strcmp(cases[i].alg, "HS256")) {
			struct mesh_buf b;
			const char *h = "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}";
			mesh_buf_init(&b, 1 << 16);
			b64url(&b, (const unsigned char *)h, strlen(h));
			mesh_buf_puts(&b, strchr(tok, '.'));
			free(tok);
			tok = mesh_buf_take(&b, NULL);
		}
		res = run_bearer(jc, tok);
		ck_assert_msg(res->status == cases[i].status, "case %zu: %d %s", i, res->status,
			      res->message ? res->message : "");
		if (cases[i].msg) {
			ck_assert_str_eq(res->message, cases[i].msg);
			ck_assert_str_eq(res->www_auth,
					 "www-authenticate: Bearer realm=\"http://svc.local/x\", error=\"invalid_token\"\r\n");
		}
		jwt_result_free(res);
		free(tok);
	}
	/* not a JWT at all */
	res = run_bearer(jc, "abc.def");
	ck_assert_int_eq(res->status, 401);
	ck_assert_str_eq(res->message, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections");
	jwt_result_free(res);
	/* no token: passes to authorization (allow_missing), no principal */
	res = run(jc, "/x", &none);
	ck_assert_int_eq(res->status, 0);
	ck_assert_ptr_null(jwt_result_rbac(res));
	jwt_result_free(res);
	/* another scheme than Bearer is no token here */
	{
		struct hreq h = { { "authorization" }, { "Basic dXNlcjpwdw==" }, 1 };
		res = run(jc, "/x", &h);
		ck_assert_int_eq(res->status, 0);
		jwt_result_free(res);
	}
	jwt_config_free(jc);
	free(c.jwks);
}
END_TEST

START_TEST(provider_required)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	struct hreq none = { { NULL }, { NULL }, 0 };

	/* requires: provider_name alone: a missing token is 401 "Jwt is missing",
	 * its www-authenticate without error="invalid_token" */
	cfg_init(&c, "https://issuer.test", NULL);
	c.rule.requires = &c.prov;
	jc = cfg_compile(&c);
	res = run(jc, "/a/b?x=1", &none);
	ck_assert_int_eq(res->status, 401);
	ck_assert_str_eq(res->message, "Jwt is missing");
	ck_assert_str_eq(res->www_auth, "www-authenticate: Bearer realm=\"http://svc.local/a/b\"\r\n");
	jwt_result_free(res);
	jwt_config_free(jc);
	free(c.jwks);
}
END_TEST

static const char *hget_nth(void *ctx, const char *name, size_t nl, size_t nth, size_t *vl)
{
	struct hreq *h = ctx;
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strlen(h->names[i]) == nl && !strncasecmp(h->names[i], name, nl) && nth-- == 0) {
			*vl = strlen(h->values[i]);
			return h->values[i];
		}
	return NULL;
}

/* Envoy verifies every token at a provider's locations: a good token must
 * not carry a forged one (in another location, or a second header line)
 * past the filter to an application that reads it there. */
START_TEST(every_token_verified)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	char *tok = sign(ec256_key, "ES256", "ec1", PAYLOAD_OK), *bad = strdup(tok), good_h[4096], bad_h[4096],
	     path[4096];
	struct hreq one = { { "authorization" }, { good_h }, 1 };
	struct hreq two = { { "authorization", "authorization" }, { good_h, bad_h }, 2 };
	struct jwt_req r = { "GET", 3, path, 0, "svc.local", 9, hget, &two, hget_nth };
	size_t n = strlen(bad);

	bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A'; /* a forged signature */
	snprintf(good_h, sizeof(good_h), "Bearer %s", tok);
	snprintf(bad_h, sizeof(bad_h), "Bearer %s", bad);
	cfg_init(&c, "https://issuer.test", NULL);
	jc = cfg_compile(&c);
	/* the good token in the header, a forged one in access_token */
	snprintf(path, sizeof(path), "/x?access_token=%s", bad);
	res = run(jc, path, &one);
	ck_assert_int_eq(res->status, 401);
	ck_assert_str_eq(res->message, "Jwt verification fails");
	jwt_result_free(res);
	/* the same good token in both places passes */
	snprintf(path, sizeof(path), "/x?access_token=%s", tok);
	res = run(jc, path, &one);
	ck_assert_int_eq(res->status, 0);
	ck_assert_ptr_nonnull(res->rbac.payload);
	jwt_result_free(res);
	/* a second Authorization line with a forged token */
	snprintf(path, sizeof(path), "/x");
	r.path_len = strlen(path);
	ck_assert_int_eq(jwt_filter_run(jc, &r, NOW, &res), 0);
	ck_assert_int_eq(res->status, 401);
	jwt_result_free(res);
	/* without header_nth (one value per name) the second line is not seen */
	r.header_nth = NULL;
	ck_assert_int_eq(jwt_filter_run(jc, &r, NOW, &res), 0);
	ck_assert_int_eq(res->status, 0);
	jwt_result_free(res);
	jwt_config_free(jc);
	free(c.jwks);
	free(tok);
	free(bad);
}
END_TEST

START_TEST(locations_and_edits)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtHeader jh, *jhv[1];
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtClaimToHeader ch[2], *chv[2];
	char *params[1] = { "tok" }, *cookies[1] = { "session" };
	char *tok = sign(ec256_key, "ES256", "ec1", PAYLOAD_OK), hv[4096], path[4096], cookie[4096];
	const char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
	char expect[4096];

	cfg_init(&c, "https://issuer.test", NULL);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_header__init(&jh);
	jh.name = "X-Jwt";
	jh.value_prefix = "Token ";
	jhv[0] = &jh;
	c.p.from_headers = jhv;
	c.p.n_from_headers = 1;
	c.p.from_params = params;
	c.p.n_from_params = 1;
	c.p.from_cookies = cookies;
	c.p.n_from_cookies = 1;
	c.p.forward_payload_header = "x-jwt-payload";
	envoy__extensions__filters__http__jwt_authn__v3__jwt_claim_to_header__init(&ch[0]);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_claim_to_header__init(&ch[1]);
	ch[0].header_name = "x-team";
	ch[0].claim_name = "org.team";
	ch[1].header_name = "x-exp";
	ch[1].claim_name = "exp";
	chv[0] = &ch[0];
	chv[1] = &ch[1];
	c.p.claim_to_headers = chv;
	c.p.n_claim_to_headers = 2;
	jc = cfg_compile(&c);

	snprintf(hv, sizeof(hv), "Token %s", tok);
	{
		struct hreq h = { { "x-jwt" }, { hv }, 1 };
		res = run(jc, "/", &h);
		ck_assert_int_eq(res->status, 0);
		ck_assert(jwt_result_drops(res, "x-jwt", 5));
		ck_assert(jwt_result_drops(res, "x-jwt-payload", 13));
		snprintf(expect, sizeof(expect), "x-jwt-payload: %.*s\r\nx-team: blue\r\nx-exp: 1700003600\r\n",
			 (int)(dot2 - dot1 - 1), dot1 + 1);
		ck_assert_ptr_nonnull(res->add);
		ck_assert_int_eq(res->add->len, strlen(expect));
		ck_assert(!memcmp(res->add->data, expect, res->add->len));
		jwt_result_free(res);
	}
	/* the configured locations replace the defaults: a Bearer header is no token */
	{
		struct hreq h = { { "authorization" }, { hv }, 1 };
		snprintf(hv, sizeof(hv), "Bearer %s", tok);
		res = run(jc, "/", &h);
		ck_assert_int_eq(res->status, 0);
		ck_assert_ptr_null(jwt_result_rbac(res));
		jwt_result_free(res);
	}
	snprintf(path, sizeof(path), "/p?a=b&tok=%s&z=1", tok);
	{
		struct hreq h = { { NULL }, { NULL }, 0 };
		res = run(jc, path, &h);
		ck_assert_int_eq(res->status, 0);
		ck_assert_ptr_nonnull(jwt_result_rbac(res));
		jwt_result_free(res);
	}
	snprintf(cookie, sizeof(cookie), "a=b; session=%s; c=d", tok);
	{
		struct hreq h = { { "cookie" }, { cookie }, 1 };
		res = run(jc, "/", &h);
		ck_assert_int_eq(res->status, 0);
		ck_assert_ptr_nonnull(jwt_result_rbac(res));
		jwt_result_free(res);
	}
	/* forward true keeps the token header */
	jwt_config_free(jc);
	c.p.forward = 1;
	jc = cfg_compile(&c);
	snprintf(hv, sizeof(hv), "Token %s", tok);
	{
		struct hreq h = { { "x-jwt" }, { hv }, 1 };
		res = run(jc, "/", &h);
		ck_assert_int_eq(res->status, 0);
		ck_assert(!jwt_result_drops(res, "x-jwt", 5));
		jwt_result_free(res);
	}
	/* the default access_token parameter */
	jwt_config_free(jc);
	c.p.n_from_headers = c.p.n_from_params = c.p.n_from_cookies = 0;
	jc = cfg_compile(&c);
	snprintf(path, sizeof(path), "/p?access_token=%s", tok);
	{
		struct hreq h = { { NULL }, { NULL }, 0 };
		res = run(jc, path, &h);
		ck_assert_ptr_nonnull(jwt_result_rbac(res));
		jwt_result_free(res);
	}
	jwt_config_free(jc);
	free(tok);
	free(c.jwks);
}
END_TEST

START_TEST(bad_jwks_and_config)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	char *tok = sign(rsa_key, "RS256", "rsa1", PAYLOAD_OK);
	char err[256];

	/* a JWKS that does not parse leaves no keys: tokens fail, never pass */
	cfg_init(&c, "https://issuer.test", NULL);
	free(c.jwks);
	c.jwks = NULL;
	c.ds.inline_string = "{not json";
	jc = cfg_compile(&c);
	res = run_bearer(jc, tok);
	ck_assert_int_eq(res->status, 401);
	ck_assert_str_eq(res->message, "Jwks doesn't have key to match kid or alg from Jwt");
	jwt_result_free(res);
	jwt_config_free(jc);
	/* a requirement naming an unknown provider is refused */
	c.prov.provider_name = "nope";
	ck_assert_int_eq(jwt_config_new(&c.m, &jc, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(jc);
	ck_assert(strstr(err, "nope") != NULL);
	free(tok);
}
END_TEST


/* Istio's tree for two jwtRules: any of {origins-0, origins-1, all of
 * {origins-0 OR allow_missing, origins-1 OR allow_missing}}, with Envoy's
 * AnyVerifier choice of the reported failure */
START_TEST(istio_two_providers)
{
	struct cfg c, c2;
	struct jwt_config *jc;
	struct jwt_result *res;
	struct hreq none = { { NULL }, { NULL }, 0 };
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication__ProvidersEntry *pev[2];
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement p0, p1, all, top, *inner[2], *outer[3];
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementAndList andl;
	Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementOrList orl;
	static const struct {
		const char *iss, *msg;
		bool other_key;
		int status;
	} cases[] = {
		{ "https://a.test", NULL, false, 0 },
		{ "https://a.test", "Jwt verification fails", true, 401 },
		{ "https://evil.test", "Jwt issuer is not configured", false, 401 },
		{ "https://b.test", "Jwks doesn't have key to match kid or alg from Jwt", false, 401 },
	};
	size_t i;

	cfg_init(&c, "https://a.test", NULL);
	cfg_init(&c2, "https://b.test", NULL);
	free(c2.jwks);
	c2.jwks = NULL;
	c2.ds.inline_string = "{\"keys\":[]}";
	c2.pe.key = "origins-1";
	c2.prov.provider_name = "origins-1";
	pev[0] = &c.pe;
	pev[1] = &c2.pe;
	c.m.providers = pev;
	c.m.n_providers = 2;
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&p0);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&p1);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&all);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement__init(&top);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_and_list__init(&andl);
	envoy__extensions__filters__http__jwt_authn__v3__jwt_requirement_or_list__init(&orl);
	p0 = c.prov;
	p1 = c2.prov;
	inner[0] = &c.top;  /* origins-0 OR allow_missing */
	inner[1] = &c2.top; /* origins-1 OR allow_missing */
	andl.requirements = inner;
	andl.n_requirements = 2;
	all.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ALL;
	all.requires_all = &andl;
	outer[0] = &p0;
	outer[1] = &p1;
	outer[2] = &all;
	orl.requirements = outer;
	orl.n_requirements = 3;
	top.requires_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY;
	top.requires_any = &orl;
	c.rule.requires = &top;
	jc = cfg_compile(&c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char payload[256];
		EVP_PKEY *other = cases[i].other_key ? gen_ec("P-256") : NULL;
		char *tok;

		snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"sub\":\"s\"}", cases[i].iss);
		tok = other ? sign(other, "ES256", "ec1", payload) : sign(rsa_key, "RS256", "rsa1", payload);
		res = run_bearer(jc, tok);
		ck_assert_msg(res->status == cases[i].status, "case %zu: %d %s", i, res->status,
			      res->message ? res->message : "");
		if (cases[i].msg)
			ck_assert_str_eq(res->message, cases[i].msg);
		jwt_result_free(res);
		free(tok);
		EVP_PKEY_free(other);
	}
	res = run(jc, "/", &none);
	ck_assert_int_eq(res->status, 0);
	jwt_result_free(res);
	jwt_config_free(jc);
	free(c.jwks);
}
END_TEST

/* rbac_eval's istio_authn metadata over a verified token */
static Envoy__Config__Rbac__V3__Principal *md_principal(const char *const *path, size_t n, const char *exact,
							 bool list)
{
	Envoy__Config__Rbac__V3__Principal *p = calloc(1, sizeof(*p));
	Envoy__Type__Matcher__V3__MetadataMatcher *m = calloc(1, sizeof(*m));
	Envoy__Type__Matcher__V3__ValueMatcher *v = calloc(1, sizeof(*v)), *inner = calloc(1, sizeof(*inner));
	Envoy__Type__Matcher__V3__ListMatcher *lm = calloc(1, sizeof(*lm));
	Envoy__Type__Matcher__V3__StringMatcher *sm = calloc(1, sizeof(*sm));
	size_t i;

	envoy__config__rbac__v3__principal__init(p);
	envoy__type__matcher__v3__metadata_matcher__init(m);
	envoy__type__matcher__v3__value_matcher__init(v);
	envoy__type__matcher__v3__value_matcher__init(inner);
	envoy__type__matcher__v3__list_matcher__init(lm);
	envoy__type__matcher__v3__string_matcher__init(sm);
	sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
	sm->exact = strdup(exact);
	m->filter = strdup("istio_authn");
	m->path = calloc(n, sizeof(*m->path));
	m->n_path = n;
	for (i = 0; i < n; i++) {
		m->path[i] = calloc(1, sizeof(*m->path[i]));
		envoy__type__matcher__v3__metadata_matcher__path_segment__init(m->path[i]);
		m->path[i]->segment_case = ENVOY__TYPE__MATCHER__V3__METADATA_MATCHER__PATH_SEGMENT__SEGMENT_KEY;
		m->path[i]->key = strdup(path[i]);
	}
	if (list) {
		inner->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH;
		inner->string_match = sm;
		lm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__LIST_MATCHER__MATCH_PATTERN_ONE_OF;
		lm->one_of = inner;
		v->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_LIST_MATCH;
		v->list_match = lm;
	} else {
		free(inner);
		free(lm);
		v->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH;
		v->string_match = sm;
	}
	m->value = v;
	p->identifier_case = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA;
	p->metadata = m;
	return p;
}

static int allowed_by(Envoy__Config__Rbac__V3__Principal *id, const struct rbac_jwt *jwt)
{
	Envoy__Extensions__Filters__Http__Rbac__V3__RBAC f;
	Envoy__Config__Rbac__V3__RBAC rules;
	Envoy__Config__Rbac__V3__Policy pol;
	Envoy__Config__Rbac__V3__Permission any, *perms[1] = { &any };
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry pe, *pev[1] = { &pe };
	Envoy__Config__Rbac__V3__Principal *ids[1] = { id };
	struct rbac_request r;
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX];

	envoy__extensions__filters__http__rbac__v3__rbac__init(&f);
	envoy__config__rbac__v3__rbac__init(&rules);
	envoy__config__rbac__v3__policy__init(&pol);
	envoy__config__rbac__v3__permission__init(&any);
	envoy__config__rbac__v3__rbac__policies_entry__init(&pe);
	any.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY;
	any.any = 1;
	pol.permissions = perms;
	pol.n_permissions = 1;
	pol.principals = ids;
	pol.n_principals = 1;
	pe.key = "p";
	pe.value = &pol;
	rules.action = ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW;
	rules.policies = pev;
	rules.n_policies = 1;
	f.rules = &rules;
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.path = "/";
	r.jwt = jwt;
	ck_assert_msg(rbac_eval(NULL, &f, NULL, &r, &d, err, sizeof(err)) == 0, "%s", err);
	return d.allowed;
}

static void md_free(Envoy__Config__Rbac__V3__Principal *p)
{
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

START_TEST(rbac_metadata)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	char *tok = sign(rsa_key, "RS256", "rsa1", PAYLOAD_OK);
	const struct rbac_jwt *rj;
	static const char *const principal[] = { "request.auth.principal" };
	static const char *const aud[] = { "request.auth.audiences" };
	static const char *const azp[] = { "request.auth.presenter" };
	static const char *const groups[] = { "request.auth.claims", "groups" };
	static const char *const team[] = { "request.auth.claims", "org", "team" };
	static const char *const filter_x[] = { "request.auth.claims", "nope" };
	Envoy__Config__Rbac__V3__Principal *p;

	cfg_init(&c, "https://issuer.test", NULL);
	jc = cfg_compile(&c);
	res = run_bearer(jc, tok);
	rj = jwt_result_rbac(res);
	ck_assert_ptr_nonnull(rj);

#define CHECK(path, n, v, list, want)                                   \
	do {                                                            \
		p = md_principal(path, n, v, list);                      \
		ck_assert_int_eq(allowed_by(p, rj), want);               \
		ck_assert_int_eq(allowed_by(p, NULL), 0);                \
		md_free(p);                                              \
	} while (0)
	CHECK(principal, 1, "https://issuer.test/alice", false, 1);
	CHECK(principal, 1, "https://issuer.test/bob", false, 0);
	/* the first audience only, as Istio's authn filter keeps */
	CHECK(aud, 1, "svc", false, 1);
	CHECK(aud, 1, "other", false, 0);
	CHECK(azp, 1, "cli", false, 1);
	CHECK(groups, 2, "dev", true, 1);
	CHECK(groups, 2, "ops", true, 0);
	CHECK(team, 3, "blue", true, 1);
	CHECK(team, 3, "red", true, 0);
	CHECK(filter_x, 2, "x", true, 0);
#undef CHECK
	jwt_result_free(res);
	jwt_config_free(jc);
	free(tok);
	free(c.jwks);
}
END_TEST

START_TEST(json_reader)
{
	struct json_value *v = NULL;
	const char *ok = " {\"a\": [1, -2.5e1, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"b\": {}} ";

	ck_assert_int_eq(json_parse(ok, strlen(ok), &v), 0);
	ck_assert_int_eq(v->type, JSON_OBJECT);
	ck_assert_int_eq(json_get(v, "a")->n, 6);
	ck_assert(json_get(v, "a")->v[1]->num == -25.0);
	ck_assert_str_eq(json_get(v, "a")->v[5]->str, "x\xc3\xa9\xf0\x9f\x98\x80\n");
	ck_assert_ptr_null(json_get(v, "c"));
	json_free(v);
	ck_assert_int_eq(json_parse("{\"a\":1,}", 8, &v), -MESH_EPARSE);
	ck_assert_int_eq(json_parse("[1] x", 5, &v), -MESH_EPARSE);
	ck_assert_int_eq(json_parse("\"a\\u0000\"", 9, &v), -MESH_EPARSE);
	ck_assert_int_eq(json_parse("01", 2, &v), -MESH_EPARSE);
	{
		char deep[200];
		memset(deep, '[', sizeof(deep));
		ck_assert_int_eq(json_parse(deep, sizeof(deep), &v), -MESH_ETOOBIG);
	}
	ck_assert_ptr_null(v);
}
END_TEST

/* Envoy's jwt_authn counters: a verified token and a missing one (allowed
 * by Istio's requirement) are allowed, a bad one denied, a CORS preflight
 * bypassed and allowed; without counters nothing is counted (no crash). */
START_TEST(stats_counted)
{
	struct cfg c;
	struct jwt_config *jc;
	struct jwt_result *res;
	struct jwt_stats st;
	uint64_t allowed = 0, denied = 0, cors = 0;
	char *tok = sign(rsa_key, "RS256", "rsa1", PAYLOAD_OK);
	struct hreq none = { { NULL }, { NULL }, 0 };
	struct hreq pre = { { "origin", "access-control-request-method" }, { "https://a.test", "GET" }, 2 };
	struct jwt_req opt = { "OPTIONS", 7, "/x", 2, "svc.local", 9, hget, &pre, NULL };

	cfg_init(&c, "https://issuer.test", "svc");
	jc = cfg_compile(&c);
	jwt_result_free(run_bearer(jc, tok));        /* no counters set: not counted */
	st.allowed = &allowed;
	st.denied = &denied;
	st.cors_preflight_bypassed = &cors;
	jwt_config_set_stats(jc, &st);
	jwt_result_free(run_bearer(jc, tok));
	jwt_result_free(run(jc, "/x", &none));
	ck_assert_uint_eq(allowed, 2);
	ck_assert_uint_eq(denied, 0);
	tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
	res = run_bearer(jc, tok);
	ck_assert_int_eq(res->status, 401);
	jwt_result_free(res);
	ck_assert_uint_eq(denied, 1);
	ck_assert_int_eq(jwt_filter_run(jc, &opt, NOW, &res), 0);
	ck_assert_int_eq(res->status, 0);
	jwt_result_free(res);
	ck_assert_uint_eq(cors, 1);
	ck_assert_uint_eq(allowed, 3);
	ck_assert_uint_eq(denied, 1);
	jwt_config_free(jc);
	free(c.jwks);
	free(tok);
}
END_TEST

static void keys_setup(void)
{
	rsa_key = gen_rsa();
	ec256_key = gen_ec("P-256");
	ec384_key = gen_ec("P-384");
}

static void keys_teardown(void)
{
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec256_key);
	EVP_PKEY_free(ec384_key);
}

int main(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, every_algorithm);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, provider_required);
	tcase_add_test(tc, locations_and_edits);
	tcase_add_test(tc, every_token_verified);
	tcase_add_test(tc, bad_jwks_and_config);
	tcase_add_test(tc, istio_two_providers);
	tcase_add_test(tc, rbac_metadata);
	tcase_add_test(tc, json_reader);
	tcase_add_test(tc, stats_counted);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
