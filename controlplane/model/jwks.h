/*
 * jwks.h - the JWKS of RequestAuthentication jwksUri's, fetched by meshd
 * (Istio's JwtKeyResolver, pilot/pkg/model/jwks_resolver.go).
 *
 * The generator inlines a JWKS into the jwt_authn filter it serves, so
 * proxies never fetch keys themselves.  It reads them from this cache
 * (jwks_resolver_get), which never blocks: a URI asked for the first time
 * is registered and answered with JWKS_FAKE until its first fetch lands;
 * a fetch thread (libcurl, 5 s timeout, 1 MiB cap) fetches new URIs at
 * once and every URI again every refresh interval
 * (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, Istio's variable, default 20 min).
 * When a fetched JWKS differs from what was served, the `changed` callback
 * runs (on the fetch thread) so the owner pushes again.
 *
 * On failure Istio's fallback holds: a URI never fetched successfully is
 * served JWKS_FAKE, a public key nobody has the private half of, so a
 * request carrying a token fails verification (401) instead of passing
 * unverified; a URI fetched before keeps its last good JWKS.
 *
 * Thread safety: every function may be called from any thread.
 * Returns: 0 or a negative code (err.h); jwks_resolver_get returns NULL
 * only when the arena is exhausted.
 */
#ifndef MESH_MODEL_JWKS_H
#define MESH_MODEL_JWKS_H

#include <stdint.h>

struct arena;

/* Istio's default refresh interval (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL). */
#define JWKS_REFRESH_DEFAULT_NS (20LL * 60 * 1000000000LL)
/* Largest JWKS body accepted, and the fetch timeout. */
#define JWKS_MAX_BYTES (1u << 20)
#define JWKS_FETCH_TIMEOUT_S 5
/* URIs the cache tracks. */
#define JWKS_MAX_URIS 1024

/* The fallback JWKS (an RSA public key whose private key was discarded). */
extern const char JWKS_FAKE[];

/* Start the fetch thread; changed(ctx) runs on it after a JWKS changed.
 * Before this (and in tools and tests) lookups register URIs and answer
 * JWKS_FAKE.  Returns 0, -EALREADY, or -errno from pthread_create. */
int jwks_resolver_start(void (*changed)(void *ctx), void *ctx);
/* Stop and join the thread, and forget every URI. */
void jwks_resolver_stop(void);

/* The JWKS to serve for uri, copied into a. */
char *jwks_resolver_get(const char *uri, struct arena *a);
/* The same for a jwtRule with an issuer and no jwksUri: the key set of
 * the issuer's OpenID discovery document (ISSUER/.well-known/
 * openid-configuration, its jwks_uri), as Istio resolves it; an issuer
 * that is not an http(s) URL gets JWKS_FAKE. */
char *jwks_resolver_get_openid(const char *issuer, struct arena *a);

#endif
