/*
 * authz.h - AuthorizationPolicy in meshproxy: the RBAC filters meshd puts
 * in a filter chain, compiled once per configuration and checked per
 * request (HTTP) or per connection (TCP); and the HCM's request-path
 * normalization and trusted client address, which RBAC and routing see.
 *
 * Decisions come from the one evaluator (common/xds/rbac_eval.h), so the
 * proxy enforces exactly what `meshctl authz check` answers.  Semantics are
 * Envoy's RBAC filters': filters in chain order, a DENY filter denies what
 * it matches, an ALLOW filter denies what it does not match, a LOG filter
 * (Istio AUDIT) and shadow rules (Istio's istio.io/dry-run) are evaluated,
 * counted and logged but never deny.
 *
 * Stats are Envoy's names, kept in an engine-wide table so they outlive a
 * configuration (as Envoy's scope-named counters do):
 *   HTTP:    http.<HCM stat_prefix>.rbac.<rules_stat_prefix>allowed|denied
 *            http.<HCM stat_prefix>.rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied
 *   network: <stat_prefix>.rbac.allowed|denied, ...<shadow_rules_stat_prefix>shadow_allowed|shadow_denied
 *
 * Functions return 0 / a count, or a negative code (common/err.h).
 */
#ifndef MESH_DATAPLANE_AUTHZ_H
#define MESH_DATAPLANE_AUTHZ_H

#include "common/buf.h"
#include "common/err.h"
#include "common/xds/pathnorm.h"
#include "common/xds/rbac_eval.h"

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define AUTHZ_HTTP_RBAC_URL "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
#define AUTHZ_NET_RBAC_URL  "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
/* Envoy's local reply to a denied request, and its response code details. */
#define AUTHZ_DENIED_BODY   "RBAC: access denied"

/* Engine-wide counters by name (never removed; a name per RBAC filter's
 * stat prefix, so they stay bounded by the configuration's prefixes). */
struct authz_tab;
MESH_MUST_CHECK int authz_tab_new(struct authz_tab **out);
void authz_tab_free(struct authz_tab *t);            /* NULL is a no-op */
/* "name: value\n" lines, in name order, into out (the /stats page). */
void authz_tab_text(const struct authz_tab *t, struct mesh_buf *out);
/* The counter of a name, made on first use (NULL when out of memory): the
 * jwt_authn filter's counters live in this table too (engine.c). */
uint64_t *authz_tab_counter(struct authz_tab *t, const char *name);
/* Each counter, in name order: fn(ctx, name, value). */
void authz_tab_each(const struct authz_tab *t, void (*fn)(void *ctx, const char *name, uint64_t v), void *ctx);
/* A counter's value by name (0 when absent): for tests. */
uint64_t authz_tab_get(const struct authz_tab *t, const char *name);

/* The HCM's request-path and client-address settings (http_connection_manager.proto). */
struct authz_http_opts {
	struct pathnorm_opts path;   /* normalize_path, merge_slashes, path_with_escaped_slashes_action */
	uint8_t use_remote;          /* use_remote_address */
	uint32_t xff_hops;           /* xff_num_trusted_hops */
};
/* The settings of an HCM (NULL: none, Envoy's defaults: nothing normalized). */
struct authz_http_opts authz_http_opts(
	const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm);

/*
 * The trusted client address (Envoy's "x-forwarded-for" rules), into out:
 * use_remote_address false: the (N+1)th XFF address from the right, N =
 * xff_num_trusted_hops; true: the Nth from the right, N = 0 meaning the
 * connection's peer.  Too few addresses, or one that is not an IP: peer.
 */
void authz_remote_ip(const struct authz_http_opts *o, const char *xff, size_t xff_len, const char *peer, char *out,
		     size_t cap);

/* One chain's compiled RBAC filters (opaque; NULL means none apply). */
struct authz;

/*
 * Compile the RBAC filters of filter chain fc: the HCM's HTTP RBAC filters
 * (hcm non-NULL, its http_filters in order) or else the chain's network
 * RBAC filters.  *out is NULL when there are none.  The filter configs are
 * unpacked and owned by the result; counters are found (made) in tab.
 * Returns 0, or -EINVAL / -ENOTSUP / -MESH_ETOOBIG / -ENOMEM with err set
 * to "listener LNAME: RBAC filter NAME: <evaluator's message>" (the NACK).
 */
MESH_MUST_CHECK int authz_compile(struct authz_tab *tab, const char *lname,
				  const Envoy__Config__Listener__V3__FilterChain *fc,
				  const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm,
				  struct authz **out, char *err, size_t cap);
void authz_free(struct authz *a);                    /* NULL is a no-op */

/*
 * Judge one request (HTTP) or connection (network filters: the request
 * carries only addresses, ports, SNI and principal).  Counts allowed /
 * denied / shadow_* per filter, logs AUDIT and shadow matches.  Returns 1
 * allowed, 0 denied (*d says by what; a request that cannot be judged,
 * such as one with more than RBAC_EVAL_MAX_HEADERS headers, is denied and
 * logged: fail closed).  a NULL: 1.
 */
int authz_check(const struct authz *a, const struct rbac_request *r, struct rbac_decision *d);

/* Envoy's %RESPONSE_CODE_DETAILS% for a denial:
 * "rbac_access_denied_matched_policy[NAME]" or "...[none]". */
const char *authz_details(const struct rbac_decision *d, char *buf, size_t cap);

#endif
