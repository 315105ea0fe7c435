/*
 * jwt.h - the JWT authentication HTTP filter (envoy.filters.http.jwt_authn).
 *
 * meshd compiles RequestAuthentication into the JwtAuthentication config
 * Istio emits (one provider "origins-N" per jwtRule, JWKS inlined, one rule
 * on prefix "/" requiring {provider OR allow_missing}); meshproxy compiles
 * that message once per configuration (jwt_config_new) and runs it on
 * every inbound request (jwt_filter_run), as Envoy's filter does:
 *  - tokens come from each provider's from_headers (value_prefix),
 *    from_params and from_cookies, or by default from "Authorization:
 *    Bearer" and the access_token query parameter;
 *  - a token is checked for form, exp/nbf (clock_skew_seconds, default
 *    60 s), iss, aud, then its signature against the provider's JWKS:
 *    RS256/384/512, PS256/384/512, ES256/384/512 (RSA and EC keys);
 *  - requirements: provider_name, requires_any, requires_all,
 *    allow_missing (no token passes, a bad one fails),
 *    allow_missing_or_failed (always passes);
 *  - a failed requirement is 401 with Envoy's status text as the body and
 *    `www-authenticate: Bearer realm="http://HOST/PATH", error="invalid_token"`;
 *  - on success forward_payload_header gets the payload (base64url as in
 *    the token), claim_to_headers copies claims, and forward false removes
 *    the header that carried the token.
 * CORS preflights pass when bypass_cors_preflight is set.
 *
 * The verified payload is kept in the result for RBAC (struct rbac_jwt,
 * common/xds/rbac_eval.h: principal "iss/sub" and the claims).
 * Nothing here does I/O or blocks: the JWKS is inline in the config.
 * Functions return 0 or a negative code (err.h); messages go to err.
 */
#ifndef MESH_PX_JWT_H
#define MESH_PX_JWT_H

#include "common/err.h"
#include "common/xds/rbac_eval.h"

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define JWT_FILTER_NAME "envoy.filters.http.jwt_authn"
#define JWT_CONFIG_URL  "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

/* Limits: providers per filter, keys per JWKS, bytes of one token,
 * requirement nesting. */
#define JWT_MAX_PROVIDERS 64
#define JWT_MAX_KEYS      64
#define JWT_MAX_TOKEN     16384
/* Tokens one provider's locations may carry in one request (Envoy verifies
 * them all; past this the request fails as a malformed token). */
#define JWT_MAX_TOKENS    16
#define JWT_MAX_DEPTH     8
/* Envoy's default clock skew for exp and nbf. */
#define JWT_DEFAULT_SKEW_S 60

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication jwt_authn_msg;

/* A compiled filter config (opaque; owns copies of everything it needs). */
struct jwt_config;

/* The request as the filter sees it.  header() returns the value of the
 * first header of that name (case-insensitive) and its length, or NULL; the
 * proxy's req_header() has this shape. */
struct jwt_req {
	const char *method;
	size_t method_len;
	const char *path;            /* :path, with the query */
	size_t path_len;
	const char *authority;       /* for the www-authenticate realm */
	size_t authority_len;
	const char *(*header)(void *ctx, const char *name, size_t name_len, size_t *value_len);
	void *ctx;
	/* the nth value (0 the first) of a header sent several times, NULL past
	 * the last; NULL: only header()'s value is looked at */
	const char *(*header_nth)(void *ctx, const char *name, size_t name_len, size_t nth, size_t *value_len);
};

/* What the filter decided, and what it changes on the request. */
struct jwt_result {
	int status;                  /* 0: continue; 401: reject with body/www_auth */
	const char *message;         /* Envoy's status text ("Jwt is missing", ...); static */
	char *www_auth;              /* "www-authenticate: ...\r\n" for a 401 (owned), else NULL */
	struct rbac_jwt rbac;        /* the verified token for RBAC; rbac.payload NULL when none */
	/* request edits once verified: header names to drop (lower-case) and
	 * "name: value\r\n" lines to add */
	char *drop[JWT_MAX_PROVIDERS + 2];
	size_t n_drop;
	struct mesh_buf *add;        /* NULL when nothing is added */
	/* private */
	char *principal;
	struct json_value *payload;
};

/*
 * Compile a JwtAuthentication message.  JWKS that do not parse leave the
 * provider without keys (its tokens fail "Jwks doesn't have key to match
 * kid or alg from Jwt", as with Istio's fallback key), never an error.
 * Returns 0 and *out, -EINVAL (a requirement names an unknown provider, a
 * rule match other than prefix/path), -MESH_ETOOBIG (past the limits
 * above), -ENOMEM; err says which.
 */
MESH_MUST_CHECK int jwt_config_new(const jwt_authn_msg *m, struct jwt_config **out, char *err, size_t cap);
void jwt_config_free(struct jwt_config *c);    /* NULL is a no-op */

/* Envoy's jwt_authn filter counters (JwtAuthnFilterStats), named
 * http.<HCM stat_prefix>.jwt_authn.<counter>: allowed (every request the
 * filter passes: verified, missing but allowed, no rule, CORS preflight),
 * denied (401/403), cors_preflight_bypassed.  Envoy's jwks_fetch_* and
 * jwt_cache_* have no counterpart: the JWKS is inline, nothing is cached.
 * The counters live in the caller's table (the engine's, so they outlive
 * a configuration); a NULL one is not counted. */
struct jwt_stats {
	uint64_t *allowed, *denied, *cors_preflight_bypassed;
};
#define JWT_STATS_PREFIX "jwt_authn."
void jwt_config_set_stats(struct jwt_config *c, const struct jwt_stats *st);

/*
 * Run the filter on one request at time now_s (seconds since the epoch).
 * Returns 0 and *out (free with jwt_result_free) whatever the decision, or
 * -ENOMEM.
 */
MESH_MUST_CHECK int jwt_filter_run(const struct jwt_config *c, const struct jwt_req *r, int64_t now_s,
				   struct jwt_result **out);
void jwt_result_free(struct jwt_result *res);  /* NULL is a no-op */

/* The jwt_authn filter among an HttpConnectionManager's http_filters
 * (matched by its typed_config's type URL), compiled; *out NULL when the
 * HCM has none.  Same returns as jwt_config_new (-EINVAL also when the
 * config does not decode). */
struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager;
MESH_MUST_CHECK int jwt_config_from_hcm(
	const struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm,
	struct jwt_config **out, char *err, size_t cap);

/* The verified token of a proxied request (proxy.c), for the RBAC filter:
 * NULL when the request carried none or its listener has no jwt_authn. */
struct px_stream;
const struct rbac_jwt *px_stream_jwt(const struct px_stream *s);

/* Whether the request header `name` (len bytes) is one the filter removes
 * or replaces: the forwarding code skips it. */
int jwt_result_drops(const struct jwt_result *res, const char *name, size_t len);

/* The verified token for RBAC, or NULL when no token was verified. */
const struct rbac_jwt *jwt_result_rbac(const struct jwt_result *res);

#endif
