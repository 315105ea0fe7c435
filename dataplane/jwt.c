/*
 * jwt.c - Envoy's JWT authentication filter for meshproxy (see jwt.h).
 *
 * Compile once per configuration: providers with their JWKS turned into
 * OpenSSL public keys, requirements into a small tree, rules into path
 * matches.  Per request: each token location is read once, each (provider,
 * token) pair verified at most once, the requirement tree is judged over
 * those results, and on success the first verified payload is kept for
 * RBAC.  Status texts are google/jwt_verify_lib's, which Envoy sends as the
 * 401 body.  Keys are parsed with OpenSSL 3's EVP_PKEY_fromdata; signatures
 * are checked with EVP_DigestVerify (ECDSA's raw r||s re-encoded as DER).
 */
#include "dataplane/jwt.h"

#include "common/buf.h"
#include "common/json.h"

#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* google/jwt_verify_lib status texts (what Envoy answers) */
#define JWT_S_MISSING     "Jwt is missing"
#define JWT_S_FORMAT      "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
#define JWT_S_HDR_B64     "Jwt header is an invalid Base64url encoded"
#define JWT_S_HDR_JSON    "Jwt header is an invalid JSON"
#define JWT_S_ALG_MISSING "Jwt header [alg] field is required and must be a string"
#define JWT_S_ALG_UNKNOWN "Jwt header [alg] is not supported"
#define JWT_S_PAY_B64     "Jwt payload is an invalid Base64url encoded"
#define JWT_S_PAY_JSON    "Jwt payload is an invalid JSON"
#define JWT_S_SIG_B64     "Jwt signature is an invalid Base64url encoded"
#define JWT_S_EXPIRED     "Jwt is expired"
#define JWT_S_NOT_YET     "Jwt not yet valid"
#define JWT_S_ISSUER      "Jwt issuer is not configured"
#define JWT_S_AUDIENCE    "Audiences in Jwt are not allowed"
#define JWT_S_NO_KEY      "Jwks doesn't have key to match kid or alg from Jwt"
#define JWT_S_VERIFY      "Jwt verification fails"

/* Longest path in the www-authenticate realm (Envoy's MaximumUriLength). */
#define JWT_REALM_PATH_MAX 256

enum jwt__kty { JWT_KTY_RSA, JWT_KTY_EC };

struct jwt__key {
	EVP_PKEY *pkey;
	enum jwt__kty kty;
	int ec_bits;                 /* EC: 256, 384, 521 */
	char *kid;                   /* NULL: none */
	char *alg;                   /* NULL: any of its kty */
};

struct jwt__loc {
	char *name;                  /* header name, lower-case; or query/cookie name */
	char *prefix;                /* header value prefix ("" none) */
};

struct jwt__claim_hdr {
	char *header, *claim;
};

struct jwt__provider {
	char *name;
	char *issuer;                /* "" any */
	char **aud;
	size_t n_aud;
	struct jwt__key keys[JWT_MAX_KEYS];
	size_t n_keys;
	bool forward;
	struct jwt__loc *hdrs;
	size_t n_hdrs;
	char **params, **cookies;
	size_t n_params, n_cookies;
	char *payload_header;        /* NULL none */
	bool pad_payload;
	int64_t skew;
	struct jwt__claim_hdr *claims;
	size_t n_claims;
};

enum jwt__rk { JWT_R_PROVIDER, JWT_R_ANY, JWT_R_ALL, JWT_R_ALLOW_MISSING, JWT_R_ALLOW_FAILED, JWT_R_NONE };

struct jwt__req {
	enum jwt__rk kind;
	size_t provider;
	struct jwt__req *kids;
	size_t n_kids;
};

struct jwt__rule {
	char *prefix;                /* NULL: exact path below */
	char *path;
	struct jwt__req req;
};

struct jwt_config {
	struct jwt__provider *prov;
	size_t n_prov;
	struct jwt__rule *rules;
	size_t n_rules;
	bool bypass_cors;
	struct jwt_stats st;         /* jwt_config_set_stats(); counters may be NULL */
};

/* ------------------------------------------------------------- base64url */

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

/* Decode base64url (padding optional) into a malloc'd buffer with a NUL
 * after the bytes.  Returns 0, -EINVAL (not base64url) or -ENOMEM. */
static int b64url_decode(const char *s, size_t n, unsigned char **out, size_t *olen)
{
	unsigned char *o;
	uint32_t acc = 0;
	size_t i, k = 0;
	int bits = 0;

	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	o = malloc(n * 3 / 4 + 2);
	if (!o)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		int v = b64_val((unsigned char)s[i]);
		if (v < 0) {
			free(o);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[k++] = (unsigned char)(acc >> bits);
		}
	}
	o[k] = 0;
	*out = o;
	*olen = k;
	return 0;
}

/* ------------------------------------------------------------- JWKS */

static void key_clear(struct jwt__key *k)
{
	EVP_PKEY_free(k->pkey);
	free(k->kid);
	free(k->alg);
	memset(k, 0, sizeof(*k));
}

static BIGNUM *jwk_bn(const struct json_value *jwk, const char *field)
{
	const char *s = json_get_str(jwk, field);
	unsigned char *b = NULL;
	size_t n = 0;
	BIGNUM *bn;

	if (!s || b64url_decode(s, strlen(s), &b, &n) < 0 || !n) {
		free(b);
		return NULL;
	}
	bn = BN_bin2bn(b, (int)n, NULL);
	free(b);
	return bn;
}

static EVP_PKEY *jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
	EVP_PKEY *pk = NULL;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

static EVP_PKEY *jwk_rsa(const struct json_value *jwk)
{
	BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pk = NULL;

	if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		pk = jwk_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pk;
}

static EVP_PKEY *jwk_ec(const struct json_value *jwk, int *bits)
{
	const char *crv = json_get_str(jwk, "crv"), *group;
	const char *xs = json_get_str(jwk, "x"), *ys = json_get_str(jwk, "y");
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 66];
	size_t xl = 0, yl = 0, cl;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (!crv || !xs || !ys)
		return NULL;
	if (!strcmp(crv, "P-256")) {
		group = "prime256v1", cl = 32, *bits = 256;
	} else if (!strcmp(crv, "P-384")) {
		group = "secp384r1", cl = 48, *bits = 384;
	} else if (!strcmp(crv, "P-521")) {
		group = "secp521r1", cl = 66, *bits = 521;
	} else {
		return NULL;
	}
	if (b64url_decode(xs, strlen(xs), &x, &xl) < 0 || b64url_decode(ys, strlen(ys), &y, &yl) < 0 || xl != cl ||
	    yl != cl)
		goto out;
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, cl);
	memcpy(pub + 1 + cl, y, cl);
	bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * cl))
		pk = jwk_fromdata("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pk;
}

/* Parse a JWKS ({"keys":[...]}, or one bare JWK) into p->keys.  Keys that
 * do not parse are skipped, as Envoy skips them. */
static int jwks_parse(struct jwt__provider *p, const char *text, size_t len)
{
	struct json_value *doc = NULL;
	const struct json_value *keys, *one[1];
	const struct json_value *const *v;
	size_t i, n;
	int rc = 0;

	if (json_parse(text, len, &doc) < 0)
		return 0;
	keys = json_get(doc, "keys");
	if (keys && keys->type == JSON_ARRAY) {
		v = (const struct json_value *const *)keys->v;
		n = keys->n;
	} else {
		one[0] = doc;
		v = one;
		n = 1;
	}
	for (i = 0; i < n && p->n_keys < JWT_MAX_KEYS; i++) {
		struct jwt__key *k = &p->keys[p->n_keys];
		const char *kty = json_get_str(v[i], "kty"), *kid = json_get_str(v[i], "kid"),
			   *alg = json_get_str(v[i], "alg");

		memset(k, 0, sizeof(*k));
		if (kty && !strcmp(kty, "RSA")) {
			k->kty = JWT_KTY_RSA;
			k->pkey = jwk_rsa(v[i]);
		} else if (kty && !strcmp(kty, "EC")) {
			k->kty = JWT_KTY_EC;
			k->pkey = jwk_ec(v[i], &k->ec_bits);
		}
		if (!k->pkey)
			continue;
		k->kid = kid ? strdup(kid) : NULL;
		k->alg = alg ? strdup(alg) : NULL;
		if ((kid && !k->kid) || (alg && !k->alg)) {
			key_clear(k);
			rc = -ENOMEM;
			break;
		}
		p->n_keys++;
	}
	json_free(doc);
	return rc;
}

/* ------------------------------------------------------------- compiling */

static char *dup_lower(const char *s)
{
	char *d = strdup(s ? s : "");
	size_t i;

	for (i = 0; d && d[i]; i++)
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] = (char)(d[i] - 'A' + 'a');
	return d;
}

static char **dup_strs(char **v, size_t n, int *rc)
{
	char **o;
	size_t i;

	if (!n)
		return NULL;
	o = calloc(n, sizeof(*o));
	if (!o) {
		*rc = -ENOMEM;
		return NULL;
	}
	for (i = 0; i < n; i++)
		if (!(o[i] = strdup(v[i])))
			*rc = -ENOMEM;
	return o;
}

static void strs_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider pb_provider;
typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement pb_req;

static int provider_compile(struct jwt__provider *p, const char *name, const pb_provider *m)
{
	size_t i;
	int rc = 0;

	p->name = strdup(name);
	p->issuer = strdup(m->issuer ? m->issuer : "");
	if (!p->name || !p->issuer)
		return -ENOMEM;
	p->aud = dup_strs(m->audiences, m->n_audiences, &rc);
	p->n_aud = p->aud ? m->n_audiences : 0;
	p->params = dup_strs(m->from_params, m->n_from_params, &rc);
	p->n_params = p->params ? m->n_from_params : 0;
	p->cookies = dup_strs(m->from_cookies, m->n_from_cookies, &rc);
	p->n_cookies = p->cookies ? m->n_from_cookies : 0;
	p->forward = m->forward;
	p->pad_payload = m->pad_forward_payload_header;
	p->skew = m->clock_skew_seconds ? (int64_t)m->clock_skew_seconds : JWT_DEFAULT_SKEW_S;
	if (m->forward_payload_header && m->forward_payload_header[0] &&
	    !(p->payload_header = dup_lower(m->forward_payload_header)))
		rc = -ENOMEM;
	if (m->n_from_headers) {
		p->hdrs = calloc(m->n_from_headers, sizeof(*p->hdrs));
		if (!p->hdrs)
			return -ENOMEM;
		p->n_hdrs = m->n_from_headers;
		for (i = 0; i < m->n_from_headers; i++) {
			p->hdrs[i].name = dup_lower(m->from_headers[i]->name);
			p->hdrs[i].prefix = strdup(m->from_headers[i]->value_prefix ? m->from_headers[i]->value_prefix : "");
			if (!p->hdrs[i].name || !p->hdrs[i].prefix)
				rc = -ENOMEM;
		}
	}
	if (m->n_claim_to_headers) {
		p->claims = calloc(m->n_claim_to_headers, sizeof(*p->claims));
		if (!p->claims)
			return -ENOMEM;
		p->n_claims = m->n_claim_to_headers;
		for (i = 0; i < m->n_claim_to_headers; i++) {
			p->claims[i].header = dup_lower(m->claim_to_headers[i]->header_name);
			p->claims[i].claim = strdup(m->claim_to_headers[i]->claim_name ? m->claim_to_headers[i]->claim_name
											 : "");
			if (!p->claims[i].header || !p->claims[i].claim)
				rc = -ENOMEM;
		}
	}
	if (rc == 0 && m->jwks_source_specifier_case ==
			       ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_LOCAL_JWKS &&
	    m->local_jwks) {
		const Envoy__Config__Core__V3__DataSource *ds = m->local_jwks;
		if (ds->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING && ds->inline_string)
			rc = jwks_parse(p, ds->inline_string, strlen(ds->inline_string));
		else if (ds->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES)
			rc = jwks_parse(p, (const char *)ds->inline_bytes.data, ds->inline_bytes.len);
	}
	return rc;
}

static void provider_free(struct jwt__provider *p)
{
	size_t i;

	for (i = 0; i < p->n_keys; i++)
		key_clear(&p->keys[i]);
	for (i = 0; p->hdrs && i < p->n_hdrs; i++) {
		free(p->hdrs[i].name);
		free(p->hdrs[i].prefix);
	}
	for (i = 0; p->claims && i < p->n_claims; i++) {
		free(p->claims[i].header);
		free(p->claims[i].claim);
	}
	free(p->claims);
	free(p->hdrs);
	strs_free(p->aud, p->n_aud);
	strs_free(p->params, p->n_params);
	strs_free(p->cookies, p->n_cookies);
	free(p->payload_header);
	free(p->name);
	free(p->issuer);
}

static void req_free(struct jwt__req *r)
{
	size_t i;

	for (i = 0; i < r->n_kids; i++)
		req_free(&r->kids[i]);
	free(r->kids);
}

static int req_compile(const struct jwt_config *c, struct jwt__req *r, const pb_req *m, int depth, char *err,
		       size_t cap)
{
	const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementOrList *any = NULL;
	const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirementAndList *all = NULL;
	size_t i, n = 0;
	pb_req **kids = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	r->kind = JWT_R_NONE;
	if (!m)
		return 0;
	if (depth > JWT_MAX_DEPTH) {
		snprintf(err, cap, "jwt_authn: requirements nested deeper than %d", JWT_MAX_DEPTH);
		return -MESH_ETOOBIG;
	}
	switch (m->requires_type_case) {
	case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_NAME:
		for (i = 0; i < c->n_prov; i++)
			if (!strcmp(c->prov[i].name, m->provider_name))
				break;
		if (i == c->n_prov) {
			snprintf(err, cap, "jwt_authn: requirement names unknown provider %s", m->provider_name);
			return -EINVAL;
		}
		r->kind = JWT_R_PROVIDER;
		r->provider = i;
		return 0;
	case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING:
		r->kind = JWT_R_ALLOW_MISSING;
		return 0;
	case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING_OR_FAILED:
		r->kind = JWT_R_ALLOW_FAILED;
		return 0;
	case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY:
		any = m->requires_any;
		r->kind = JWT_R_ANY;
		n = any ? any->n_requirements : 0;
		kids = any ? any->requirements : NULL;
		break;
	case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ALL:
		all = m->requires_all;
		r->kind = JWT_R_ALL;
		n = all ? all->n_requirements : 0;
		kids = all ? all->requirements : NULL;
		break;
	default:
		return 0; /* an empty requirement: nothing required */
	}
	if (!n)
		return 0;
	r->kids = calloc(n, sizeof(*r->kids));
	if (!r->kids)
		return -ENOMEM;
	r->n_kids = n;
	for (i = 0; i < n; i++) {
		rc = req_compile(c, &r->kids[i], kids[i], depth + 1, err, cap);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void jwt_config_free(struct jwt_config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; c->prov && i < c->n_prov; i++)
		provider_free(&c->prov[i]);
	for (i = 0; c->rules && i < c->n_rules; i++) {
		free(c->rules[i].prefix);
		free(c->rules[i].path);
		req_free(&c->rules[i].req);
	}
	free(c->prov);
	free(c->rules);
	free(c);
}

int jwt_config_new(const jwt_authn_msg *m, struct jwt_config **out, char *err, size_t cap)
{
	struct jwt_config *c;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (m->n_providers > JWT_MAX_PROVIDERS) {
		snprintf(err, cap, "jwt_authn: %zu providers, more than %d", m->n_providers, JWT_MAX_PROVIDERS);
		return -MESH_ETOOBIG;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bypass_cors = m->bypass_cors_preflight;
	if (m->n_providers && !(c->prov = calloc(m->n_providers, sizeof(*c->prov)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < m->n_providers; i++) {
		const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication__ProvidersEntry *pe =
			m->providers[i];
		c->n_prov++;
		if (!pe->value) {
			snprintf(err, cap, "jwt_authn: provider %s without a value", pe->key);
			rc = -EINVAL;
			goto out;
		}
		rc = provider_compile(&c->prov[i], pe->key ? pe->key : "", pe->value);
		if (rc < 0)
			goto out;
	}
	if (m->n_rules && !(c->rules = calloc(m->n_rules, sizeof(*c->rules)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < m->n_rules; i++) {
		const Envoy__Extensions__Filters__Http__JwtAuthn__V3__RequirementRule *r = m->rules[i];
		const Envoy__Config__Route__V3__RouteMatch *rm = r->match;
		struct jwt__rule *jr = &c->rules[i];

		c->n_rules++;
		if (rm && rm->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX) {
			jr->prefix = strdup(rm->prefix);
		} else if (rm && rm->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH) {
			jr->path = strdup(rm->path);
		} else {
			snprintf(err, cap, "jwt_authn: rule %zu: only prefix and path matches are supported", i);
			rc = -EINVAL;
			goto out;
		}
		if (!jr->prefix && !jr->path) {
			rc = -ENOMEM;
			goto out;
		}
		if (r->requirement_type_case ==
		    ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIRES) {
			rc = req_compile(c, &jr->req, r->requires, 0, err, cap);
			if (rc < 0)
				goto out;
		} else {
			jr->req.kind = JWT_R_NONE;
		}
	}
	*out = c;
	c = NULL;
out:
	if (rc == -ENOMEM)
		snprintf(err, cap, "jwt_authn: out of memory");
	jwt_config_free(c);
	return rc;
}

/* ------------------------------------------------------------- extraction */

/* The characters a compact JWS may hold. */
static bool tok_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '_' || ch == '.' || ch == '=';
}

struct jwt__tok {
	const char *p;
	size_t len;
	const char *hdr;             /* the header that carried it (lower-case), or NULL */
};

/* A token from "...prefix<token>" in a header value (Envoy's
 * JwtHeaderLocation: the prefix is found anywhere in the value, case
 * sensitive; the token runs to the first byte outside the JWT alphabet). */
static bool tok_from_header(const struct jwt_req *r, const char *name, const char *prefix, size_t nth,
			    struct jwt__tok *t)
{
	size_t vl = 0, pl = strlen(prefix), i = 0;
	const char *v, *at;

	if (r->header_nth)
		v = r->header_nth(r->ctx, name, strlen(name), nth, &vl);
	else
		v = nth ? NULL : r->header(r->ctx, name, strlen(name), &vl);

	if (!v)
		return false;
	if (pl) {
		at = memmem(v, vl, prefix, pl);
		if (!at)
			return false;
		i = (size_t)(at - v) + pl;
	}
	while (i < vl && (v[i] == ' ' || v[i] == '\t'))
		i++;
	t->p = v + i;
	t->len = 0;
	while (i + t->len < vl && tok_char(v[i + t->len]))
		t->len++;
	t->hdr = name;
	return t->len > 0;
}

static bool tok_from_param(const struct jwt_req *r, const char *name, size_t nth, struct jwt__tok *t)
{
	const char *q = memchr(r->path, '?', r->path_len), *end = r->path + r->path_len;
	size_t nl = strlen(name);

	while (q && q < end) {
		const char *s = q + 1, *e = memchr(s, '&', (size_t)(end - s));
		e = e ? e : end;
		if ((size_t)(e - s) > nl && !memcmp(s, name, nl) && s[nl] == '=' && nth-- == 0) {
			t->p = s + nl + 1;
			t->len = (size_t)(e - t->p);
			t->hdr = NULL;
			return t->len > 0;
		}
		q = e < end ? e : NULL;
	}
	return false;
}

static bool tok_from_cookie(const struct jwt_req *r, const char *name, struct jwt__tok *t)
{
	size_t vl = 0, nl = strlen(name);
	const char *v = r->header(r->ctx, "cookie", 6, &vl), *end = v + vl;

	while (v && v < end) {
		const char *e = memchr(v, ';', (size_t)(end - v));
		e = e ? e : end;
		while (v < e && *v == ' ')
			v++;
		if ((size_t)(e - v) > nl && !memcmp(v, name, nl) && v[nl] == '=') {
			t->p = v + nl + 1;
			t->len = (size_t)(e - t->p);
			t->hdr = NULL;
			return t->len > 0;
		}
		v = e < end ? e + 1 : NULL;
	}
	return false;
}

/* The k-th token (0 the first) at the provider's locations, in order (its
 * headers, every value of each, then its query parameters, every
 * occurrence, then its cookies), or Envoy's defaults (Authorization
 * "Bearer ", then access_token).  Envoy extracts them all and requires
 * every one to verify: a good token must not carry a forged one past the
 * filter to an application that reads the other location. */
static bool provider_token_nth(const struct jwt__provider *p, const struct jwt_req *r, size_t k, struct jwt__tok *t)
{
	size_t i, n, seen = 0;

	if (!p->n_hdrs && !p->n_params && !p->n_cookies) {
		for (n = 0; n <= k && tok_from_header(r, "authorization", "Bearer ", n, t); n++)
			if (seen++ == k)
				return true;
		for (n = 0; n <= k && tok_from_param(r, "access_token", n, t); n++)
			if (seen++ == k)
				return true;
		return false;
	}
	for (i = 0; i < p->n_hdrs; i++)
		for (n = 0; n <= k && tok_from_header(r, p->hdrs[i].name, p->hdrs[i].prefix, n, t); n++)
			if (seen++ == k)
				return true;
	for (i = 0; i < p->n_params; i++)
		for (n = 0; n <= k && tok_from_param(r, p->params[i], n, t); n++)
			if (seen++ == k)
				return true;
	for (i = 0; i < p->n_cookies; i++)
		if (tok_from_cookie(r, p->cookies[i], t) && seen++ == k)
			return true;
	return false;
}

static bool provider_token(const struct jwt__provider *p, const struct jwt_req *r, struct jwt__tok *t)
{
	return provider_token_nth(p, r, 0, t);
}

/* ------------------------------------------------------------- verification */

struct jwt__parsed {
	struct json_value *hdr, *payload;
	unsigned char *sig;
	size_t sig_len;
	const char *signed_part;     /* header.payload, in the token */
	size_t signed_len;
	const char *payload_b64;
	size_t payload_b64_len;
};

static void parsed_free(struct jwt__parsed *j)
{
	json_free(j->hdr);
	json_free(j->payload);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

/* Split and decode a compact JWS; a status text on failure. */
static const char *jwt_parse(const struct jwt__tok *t, struct jwt__parsed *j, int *oom)
{
	const char *d1 = memchr(t->p, '.', t->len), *d2, *end = t->p + t->len;
	unsigned char *b = NULL;
	size_t n;
	int rc;

	memset(j, 0, sizeof(*j));
	if (!d1 || !(d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return JWT_S_FORMAT;
	if ((rc = b64url_decode(t->p, (size_t)(d1 - t->p), &b, &n)) < 0) {
		*oom = rc == -ENOMEM;
		return JWT_S_HDR_B64;
	}
	rc = json_parse((const char *)b, n, &j->hdr);
	free(b);
	if (rc < 0 || j->hdr->type != JSON_OBJECT) {
		*oom = rc == -ENOMEM;
		return JWT_S_HDR_JSON;
	}
	if ((rc = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &b, &n)) < 0) {
		*oom = rc == -ENOMEM;
		return JWT_S_PAY_B64;
	}
	rc = json_parse((const char *)b, n, &j->payload);
	free(b);
	if (rc < 0 || j->payload->type != JSON_OBJECT) {
		*oom = rc == -ENOMEM;
		return JWT_S_PAY_JSON;
	}
	if ((rc = b64url_decode(d2 + 1, (size_t)(end - d2 - 1), &j->sig, &j->sig_len)) < 0) {
		*oom = rc == -ENOMEM;
		return JWT_S_SIG_B64;
	}
	j->signed_part = t->p;
	j->signed_len = (size_t)(d2 - t->p);
	j->payload_b64 = d1 + 1;
	j->payload_b64_len = (size_t)(d2 - d1 - 1);
	return NULL;
}

/* alg -> digest, key type, PSS, EC size; false when not supported. */
static bool alg_info(const char *alg, const EVP_MD **md, enum jwt__kty *kty, bool *pss, int *ec_bits)
{
	int bits;

	if (!alg || strlen(alg) != 5)
		return false;
	bits = atoi(alg + 2);
	*md = bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : bits == 512 ? EVP_sha512() : NULL;
	if (!*md)
		return false;
	*pss = false;
	*ec_bits = 0;
	if (!strncmp(alg, "RS", 2)) {
		*kty = JWT_KTY_RSA;
	} else if (!strncmp(alg, "PS", 2)) {
		*kty = JWT_KTY_RSA;
		*pss = true;
	} else if (!strncmp(alg, "ES", 2)) {
		*kty = JWT_KTY_EC;
		*ec_bits = bits == 512 ? 521 : bits;
	} else {
		return false;
	}
	return true;
}

static bool sig_verify(const struct jwt__key *k, const EVP_MD *md, bool pss, const struct jwt__parsed *j)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = j->sig;
	size_t sig_len = j->sig_len;
	ECDSA_SIG *es = NULL;
	bool ok = false;

	if (!ctx)
		return false;
	if (k->kty == JWT_KTY_EC) {
		/* JWS carries r||s, each the curve's size; OpenSSL wants DER */
		size_t half = (size_t)(k->ec_bits + 7) / 8;
		BIGNUM *r, *s;
		int dl;

		if (j->sig_len != 2 * half)
			goto out;
		es = ECDSA_SIG_new();
		r = BN_bin2bn(j->sig, (int)half, NULL);
		s = BN_bin2bn(j->sig + half, (int)half, NULL);
		if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			goto out;
		}
		dl = i2d_ECDSA_SIG(es, &der);
		if (dl <= 0)
			goto out;
		sig = der;
		sig_len = (size_t)dl;
	}
	if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey) <= 0)
		goto out;
	if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto out;
	ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)j->signed_part, j->signed_len) == 1;
out:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static bool num_claim(const struct json_value *payload, const char *name, int64_t *out)
{
	const struct json_value *v = json_get(payload, name);

	if (!v || v->type != JSON_NUMBER || !isfinite(v->num))
		return false;
	*out = (int64_t)v->num;
	return true;
}

/* Envoy's order: issuer, time, audiences, key, signature.  NULL when the
 * token is good. */
static const char *jwt_check(const struct jwt__provider *p, const struct jwt__parsed *j, int64_t now)
{
	const char *alg = json_get_str(j->hdr, "alg"), *kid = json_get_str(j->hdr, "kid");
	const char *iss = json_get_str(j->payload, "iss");
	const struct json_value *aud;
	const EVP_MD *md;
	enum jwt__kty kty;
	bool pss, any_key = false;
	int ec_bits;
	int64_t t;
	size_t i, k;

	if (!alg)
		return JWT_S_ALG_MISSING;
	if (!alg_info(alg, &md, &kty, &pss, &ec_bits))
		return JWT_S_ALG_UNKNOWN;
	/* a token without "iss" is not the provider's either (Envoy's
	 * JwtLocation::isIssuerAllowed: its issuers do not include "") */
	if (p->issuer[0] && (!iss || strcmp(p->issuer, iss)))
		return JWT_S_ISSUER;
	if (num_claim(j->payload, "nbf", &t) && now + p->skew < t)
		return JWT_S_NOT_YET;
	if (num_claim(j->payload, "exp", &t) && now > t + p->skew)
		return JWT_S_EXPIRED;
	if (p->n_aud) {
		bool ok = false;
		aud = json_get(j->payload, "aud");
		for (i = 0; aud && !ok && i < p->n_aud; i++) {
			if (aud->type == JSON_STRING)
				ok = !strcmp(aud->str, p->aud[i]);
			for (k = 0; aud->type == JSON_ARRAY && !ok && k < aud->n; k++)
				ok = aud->v[k]->type == JSON_STRING && !strcmp(aud->v[k]->str, p->aud[i]);
		}
		if (!ok)
			return JWT_S_AUDIENCE;
	}
	for (i = 0; i < p->n_keys; i++) {
		const struct jwt__key *key = &p->keys[i];
		if (key->kty != kty || (kty == JWT_KTY_EC && key->ec_bits != ec_bits))
			continue;
		if ((kid && key->kid && strcmp(kid, key->kid)) || (key->alg && strcmp(key->alg, alg)))
			continue;
		any_key = true;
		if (sig_verify(key, md, pss, j))
			return NULL;
	}
	return any_key ? JWT_S_VERIFY : JWT_S_NO_KEY;
}

/* ------------------------------------------------------------- running */

enum { V_UNTRIED, V_MISSING, V_OK, V_FAIL };

struct jwt__run {
	const struct jwt_config *c;
	const struct jwt_req *r;
	int64_t now;
	int oom;
	/* per provider */
	int state[JWT_MAX_PROVIDERS];
	const char *why[JWT_MAX_PROVIDERS];
	struct jwt__tok tok[JWT_MAX_PROVIDERS];
	struct jwt__parsed parsed[JWT_MAX_PROVIDERS];
};

static int run_provider(struct jwt__run *run, size_t i)
{
	const struct jwt__provider *p = &run->c->prov[i];
	const char *why;
	size_t k;

	if (run->state[i] != V_UNTRIED)
		return run->state[i];
	if (!provider_token(p, run->r, &run->tok[i])) {
		run->why[i] = JWT_S_MISSING;
		return run->state[i] = V_MISSING;
	}
	if (run->tok[i].len > JWT_MAX_TOKEN) {
		why = JWT_S_FORMAT;
	} else {
		why = jwt_parse(&run->tok[i], &run->parsed[i], &run->oom);
		if (!why)
			why = jwt_check(p, &run->parsed[i], run->now);
	}
	/* the first token is the one whose claims count; every other one at
	 * the provider's locations must verify too (Envoy's authenticator) */
	for (k = 1; !why; k++) {
		struct jwt__tok t;
		struct jwt__parsed pj;

		if (!provider_token_nth(p, run->r, k, &t))
			break;
		if (k >= JWT_MAX_TOKENS || t.len > JWT_MAX_TOKEN) {
			why = JWT_S_FORMAT;
			break;
		}
		why = jwt_parse(&t, &pj, &run->oom);
		if (!why)
			why = jwt_check(p, &pj, run->now);
		parsed_free(&pj);
	}
	run->why[i] = why;
	return run->state[i] = why ? V_FAIL : V_OK;
}

/* Envoy's allow_missing: every token at any provider's location is
 * verified by the provider whose issuer it names; none at all passes. */
static int run_allow_missing(struct jwt__run *run, const char **why)
{
	const struct jwt_config *c = run->c;
	size_t i, k;
	int seen = 0;

	for (i = 0; i < c->n_prov; i++) {
		struct jwt__tok t;
		if (!provider_token(&c->prov[i], run->r, &t))
			continue;
		seen = 1;
		/* the provider whose issuer the token names, else this one */
		{
			struct jwt__parsed pj;
			int oom = 0;
			const char *iss = NULL;
			bool parsed = jwt_parse(&t, &pj, &oom) == NULL;

			run->oom |= oom;
			if (parsed)
				iss = json_get_str(pj.payload, "iss");
			for (k = 0; iss && k < c->n_prov; k++)
				if (!c->prov[k].issuer[0] || !strcmp(iss, c->prov[k].issuer))
					break;
			if (!iss)
				k = i;
			parsed_free(&pj);
		}
		if (k == c->n_prov) {
			*why = JWT_S_ISSUER;
			return V_FAIL;
		}
		if (run_provider(run, k) == V_FAIL || (run->state[k] == V_MISSING && k != i)) {
			*why = run->why[k];
			return V_FAIL;
		}
	}
	(void)seen;
	return V_OK;
}

static int run_req(struct jwt__run *run, const struct jwt__req *q, const char **why)
{
	size_t i;
	int st;

	switch (q->kind) {
	case JWT_R_NONE:
	case JWT_R_ALLOW_FAILED:
		if (q->kind == JWT_R_ALLOW_FAILED)
			for (i = 0; i < run->c->n_prov; i++)
				(void)run_provider(run, i);
		return V_OK;
	case JWT_R_PROVIDER:
		st = run_provider(run, q->provider);
		*why = run->why[q->provider];
		return st;
	case JWT_R_ALLOW_MISSING:
		return run_allow_missing(run, why);
	case JWT_R_ANY: {
		/* Envoy's AnyVerifier: allow_missing(_or_failed) children are
		 * flags, not verifiers; any child passing passes; otherwise the
		 * last failure other than missing / unknown issuer is reported,
		 * an unknown issuer before a missing token */
		bool allow_missing = false, allow_failed = false;
		const char *final_why = JWT_S_MISSING;

		for (i = 0; i < q->n_kids; i++) {
			const char *kw = NULL;

			if (q->kids[i].kind == JWT_R_ALLOW_MISSING) {
				allow_missing = true;
				continue;
			}
			if (q->kids[i].kind == JWT_R_ALLOW_FAILED) {
				allow_failed = true;
				continue;
			}
			st = run_req(run, &q->kids[i], &kw);
			if (st == V_OK)
				return V_OK;
			kw = kw ? kw : JWT_S_MISSING;
			if ((strcmp(kw, JWT_S_MISSING) && strcmp(kw, JWT_S_ISSUER)) || !strcmp(final_why, JWT_S_MISSING))
				final_why = kw;
		}
		if (allow_failed || (allow_missing && !strcmp(final_why, JWT_S_MISSING))) {
			if (allow_failed)
				for (i = 0; i < run->c->n_prov; i++)
					(void)run_provider(run, i);
			return V_OK;
		}
		*why = final_why;
		return strcmp(final_why, JWT_S_MISSING) ? V_FAIL : V_MISSING;
	}
	case JWT_R_ALL:
		for (i = 0; i < q->n_kids; i++) {
			st = run_req(run, &q->kids[i], why);
			if (st != V_OK)
				return st;
		}
		return V_OK;
	}
	return V_OK;
}

void jwt_result_free(struct jwt_result *res)
{
	size_t i;

	if (!res)
		return;
	for (i = 0; i < res->n_drop; i++)
		free(res->drop[i]);
	if (res->add) {
		mesh_buf_cleanup(res->add);
		free(res->add);
	}
	free(res->www_auth);
	free(res->principal);
	json_free(res->payload);
	free(res);
}

static int res_drop(struct jwt_result *res, const char *name)
{
	size_t i;

	for (i = 0; i < res->n_drop; i++)
		if (!strcmp(res->drop[i], name))
			return 0;
	if (res->n_drop == sizeof(res->drop) / sizeof(res->drop[0]))
		return 0;
	if (!(res->drop[res->n_drop] = strdup(name)))
		return -ENOMEM;
	res->n_drop++;
	return 0;
}

static int res_add(struct jwt_result *res, const char *name, const char *v, size_t vl)
{
	int rc;

	if (!res->add) {
		res->add = malloc(sizeof(*res->add));
		if (!res->add)
			return -ENOMEM;
		mesh_buf_init(res->add, 65536);
	}
	rc = res_drop(res, name);
	if (!rc)
		rc = mesh_buf_printf(res->add, "%s: ", name) < 0 ? -ENOMEM : 0;
	if (!rc)
		rc = mesh_buf_append(res->add, v, vl) < 0 ? -ENOMEM : 0;
	if (!rc)
		rc = mesh_buf_append(res->add, "\r\n", 2) < 0 ? -ENOMEM : 0;
	return rc;
}

/* claim_to_headers: "a.b" walks nested objects; strings, numbers and
 * booleans are copied (Envoy skips arrays and objects). */
static int res_claim(struct jwt_result *res, const struct json_value *payload, const struct jwt__claim_hdr *ch)
{
	const struct json_value *v = payload;
	const char *s = ch->claim;
	char seg[256], num[64];

	while (v && *s) {
		size_t n = strcspn(s, ".");
		if (n >= sizeof(seg))
			return 0;
		memcpy(seg, s, n);
		seg[n] = 0;
		v = json_get(v, seg);
		s += n + (s[n] == '.');
	}
	if (!v)
		return 0;
	if (v->type == JSON_STRING)
		return res_add(res, ch->header, v->str, strlen(v->str));
	if (v->type == JSON_BOOL)
		return res_add(res, ch->header, v->b ? "true" : "false", v->b ? 4 : 5);
	if (v->type == JSON_NUMBER) {
		if (v->num == (double)(int64_t)v->num)
			snprintf(num, sizeof(num), "%lld", (long long)v->num);
		else
			snprintf(num, sizeof(num), "%.17g", v->num);
		return res_add(res, ch->header, num, strlen(num));
	}
	return 0;
}

static int res_success(struct jwt_result *res, struct jwt__run *run)
{
	const struct jwt_config *c = run->c;
	size_t i, k;
	int rc = 0;

	for (i = 0; i < c->n_prov && !rc; i++) {
		const struct jwt__provider *p = &c->prov[i];
		struct jwt__parsed *j = &run->parsed[i];

		if (run->state[i] != V_OK)
			continue;
		if (!p->forward && run->tok[i].hdr)
			rc = res_drop(res, run->tok[i].hdr);
		if (!rc && p->payload_header) {
			char pad[3] = "==";
			size_t np = p->pad_payload ? (4 - j->payload_b64_len % 4) % 4 : 0;
			struct mesh_buf b;
			mesh_buf_init(&b, JWT_MAX_TOKEN + 8);
			(void)mesh_buf_append(&b, j->payload_b64, j->payload_b64_len);
			(void)mesh_buf_append(&b, pad, np < 3 ? np : 2);
			rc = b.err ? -ENOMEM : res_add(res, p->payload_header, b.data ? b.data : "", b.len);
			mesh_buf_cleanup(&b);
		}
		for (k = 0; !rc && k < p->n_claims; k++)
			rc = res_claim(res, j->payload, &p->claims[k]);
		if (!rc && !res->payload) {
			/* the first verified token is the request's, for RBAC (Istio
			 * picks one issuer's payload the same way) */
			const char *iss = json_get_str(j->payload, "iss"), *sub = json_get_str(j->payload, "sub");
			size_t n = strlen(iss ? iss : "") + strlen(sub ? sub : "") + 2;

			res->principal = malloc(n);
			if (!res->principal)
				return -ENOMEM;
			snprintf(res->principal, n, "%s/%s", iss ? iss : "", sub ? sub : "");
			res->payload = j->payload;
			j->payload = NULL;
			res->rbac.principal = res->principal;
			res->rbac.payload = res->payload;
		}
	}
	return rc;
}

/* Envoy: 401 with the status text, `www-authenticate: Bearer
 * realm="http://HOST/PATH"` plus `, error="invalid_token"` unless the token
 * was missing; an audience refusal is 403. */
static int res_reject(struct jwt_result *res, const struct jwt_req *r, const char *why)
{
	size_t pl = strcspn(r->path ? r->path : "", "?");
	struct mesh_buf b;

	if (pl > r->path_len)
		pl = r->path_len;
	if (pl > JWT_REALM_PATH_MAX)
		pl = JWT_REALM_PATH_MAX; /* Envoy's buildOriginalUri(headers, 256) */
	res->status = !strcmp(why, JWT_S_AUDIENCE) ? 403 : 401;
	res->message = why;
	mesh_buf_init(&b, 16384);
	(void)mesh_buf_puts(&b, "www-authenticate: Bearer realm=\"http://");
	(void)mesh_buf_append(&b, r->authority ? r->authority : "", r->authority ? r->authority_len : 0);
	(void)mesh_buf_append(&b, r->path ? r->path : "", pl);
	(void)mesh_buf_puts(&b, !strcmp(why, JWT_S_MISSING) ? "\"\r\n" : "\", error=\"invalid_token\"\r\n");
	if (b.err) {
		mesh_buf_cleanup(&b);
		return b.err == -ENOMEM ? -ENOMEM : 0;
	}
	res->www_auth = mesh_buf_take(&b, NULL);
	return res->www_auth ? 0 : -ENOMEM;
}

int jwt_filter_run(const struct jwt_config *c, const struct jwt_req *r, int64_t now_s, struct jwt_result **out)
{
	struct jwt__run *run = NULL;
	struct jwt_result *res;
	const struct jwt__rule *rule = NULL;
	const char *why = NULL;
	size_t i, pl;
	int rc = 0, st;

	*out = NULL;
	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	pl = strcspn(r->path ? r->path : "", "?");
	if (pl > r->path_len)
		pl = r->path_len;
	for (i = 0; i < c->n_rules && !rule; i++) {
		const struct jwt__rule *ru = &c->rules[i];
		if (ru->prefix ? !strncmp(r->path ? r->path : "", ru->prefix, strlen(ru->prefix))
			       : (strlen(ru->path) == pl && !memcmp(r->path, ru->path, pl)))
			rule = ru;
	}
	if (!rule || rule->req.kind == JWT_R_NONE)
		goto done;
	if (c->bypass_cors && r->method_len == 7 && !memcmp(r->method, "OPTIONS", 7)) {
		size_t l;
		if (r->header(r->ctx, "origin", 6, &l) && r->header(r->ctx, "access-control-request-method", 29, &l)) {
			if (c->st.cors_preflight_bypassed)
				(*c->st.cors_preflight_bypassed)++;
			goto done;
		}
	}
	run = calloc(1, sizeof(*run));
	if (!run) {
		rc = -ENOMEM;
		goto done;
	}
	run->c = c;
	run->r = r;
	run->now = now_s;
	st = run_req(run, &rule->req, &why);
	if (run->oom) {
		rc = -ENOMEM;
		goto done;
	}
	if (st == V_OK)
		rc = res_success(res, run);
	else
		rc = res_reject(res, r, why ? why : JWT_S_MISSING);
done:
	if (run) {
		for (i = 0; i < c->n_prov; i++)
			parsed_free(&run->parsed[i]);
		free(run);
	}
	if (rc < 0) {
		jwt_result_free(res);
		return rc;
	}
	/* Envoy's Filter::onComplete: every request the filter passes (no
	 * rule, CORS bypass, a missing token allowed, verified) is allowed */
	if (res->status ? c->st.denied != NULL : c->st.allowed != NULL)
		(*(res->status ? c->st.denied : c->st.allowed))++;
	*out = res;
	return 0;
}

void jwt_config_set_stats(struct jwt_config *c, const struct jwt_stats *st)
{
	if (c && st)
		c->st = *st;
}

int jwt_result_drops(const struct jwt_result *res, const char *name, size_t len)
{
	size_t i;

	if (!res || res->status)
		return 0;
	for (i = 0; i < res->n_drop; i++)
		if (strlen(res->drop[i]) == len && !strncasecmp(res->drop[i], name, len))
			return 1;
	return 0;
}

const struct rbac_jwt *jwt_result_rbac(const struct jwt_result *res)
{
	return res && !res->status && res->payload ? &res->rbac : NULL;
}

int jwt_config_from_hcm(
	const struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm,
	struct jwt_config **out, char *err, size_t cap)
{
	size_t i;

	*out = NULL;
	for (i = 0; hcm && i < hcm->n_http_filters; i++) {
		const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f = hcm->http_filters[i];
		jwt_authn_msg *m;
		int rc;

		if (!f || f->config_type_case !=
				  ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG ||
		    !f->typed_config || !f->typed_config->type_url || strcmp(f->typed_config->type_url, JWT_CONFIG_URL))
			continue;
		m = envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__unpack(
			NULL, f->typed_config->value.len, f->typed_config->value.data);
		if (!m) {
			snprintf(err, cap, "http filter %s: JwtAuthentication does not decode", f->name ? f->name : "");
			return -EINVAL;
		}
		rc = jwt_config_new(m, out, err, cap);
		protobuf_c_message_free_unpacked(&m->base, NULL);
		return rc;
	}
	return 0;
}
