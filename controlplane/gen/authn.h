/*
 * authn.h - RequestAuthentication -> the sidecar's envoy.filters.http.jwt_authn
 * HTTP filter, as Istio's authn policy applier builds it
 * (pilot/pkg/security/authn/policy_applier.go, convertToEnvoyJwtConfig):
 *  - the RequestAuthentications of the workload (root namespace and its
 *    own, selector matching its labels; targetRef ones apply to no
 *    sidecar) contribute all their jwtRules, sorted by issuer;
 *  - jwtRules[i] is provider "origins-i": issuer, audiences,
 *    forward = forwardOriginalToken, forward_payload_header =
 *    outputPayloadToHeader, payload_in_metadata = issuer, from_headers
 *    (name, value_prefix), from_params, from_cookies, claim_to_headers,
 *    and local_jwks inline: the rule's jwks, or its jwksUri's JWKS from
 *    meshd's cache, or without either the JWKS its issuer's OpenID
 *    discovery names (model/jwks.h; Istio's fallback key until fetched);
 *  - one rule on prefix "/" requiring {origins-0 OR allow_missing} with
 *    one provider; with several, any of {origins-i..., all of
 *    {origins-i OR allow_missing}...} (a present token must verify, a
 *    missing one passes to authorization);
 *  - bypass_cors_preflight.
 * The filter goes first in the inbound HTTP filter chain, before RBAC.
 * Everything is allocated in the caller's arena.
 */
#ifndef MESH_GEN_AUTHN_H
#define MESH_GEN_AUTHN_H

#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <stddef.h>

#define AUTHN_JWT_FILTER_NAME "envoy.filters.http.jwt_authn"
/* RequestAuthentications that may apply to one workload. */
#define AUTHN_MAX_POLICIES 1024

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication authn_jwt_config;

/* The RequestAuthentications that apply to a workload (namespace ns,
 * labels), root namespace first; like model_authz_select: returns the
 * total count, storing up to cap borrowed pointers. */
size_t authn_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
		    const struct cfg_object **out, size_t cap);

/* The JwtAuthentication config for the workload, or *out NULL when no
 * jwtRule applies.  Returns 0, -ENOMEM or -MESH_ETOOBIG. */
MESH_MUST_CHECK int authn_jwt_config_build(const struct model *m, const char *ns, const struct cfg_labels *labels,
					   struct arena *a, authn_jwt_config **out);

/* The same wrapped in an HttpFilter (typed_config), or *out NULL. */
MESH_MUST_CHECK int authn_jwt_http_filter(const struct model *m, const char *ns, const struct cfg_labels *labels,
					  struct arena *a,
					  Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter **out);

#endif
