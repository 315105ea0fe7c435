/*
 * rbac.h - AuthorizationPolicy -> Envoy RBAC HTTP filter configs.
 *
 * For one workload (namespace + labels) the compiler selects the
 * AuthorizationPolicies that apply to it and builds, as Istio does, up to
 * three envoy.extensions.filters.http.rbac.v3.RBAC configs:
 *  - deny:  action DENY, from the DENY policies; goes first in the chain;
 *  - allow: action ALLOW, from the ALLOW policies; goes after deny.  NULL
 *           when no ALLOW policy applies (everything is allowed then);
 *  - audit: action LOG, from the AUDIT policies; never changes a decision.
 *           Proxyless gRPC 1.51 knows no LOG action: a listener for it
 *           leaves this filter out.
 * Each rule of a policy becomes one Envoy policy named
 * "ns[NS]-policy[NAME]-rule[i]"; an ALLOW policy without rules becomes one
 * policy "...-rule[0]" that matches nothing, so everything is denied.
 *
 * The output stays inside what gRPC 1.51's RBAC filter understands:
 * HeaderMatcher uses exact/prefix/suffix/safe_regex/present (never
 * string_match), plus url_path, destination_ip/port,
 * requested_server_name, direct_remote_ip/remote_ip, authenticated
 * principal_name and and/or/not/any.  Host matching is case-insensitive
 * through a regex of character classes, since HeaderMatcher's exact field
 * has no ignore_case.
 *
 * The compiler knows nothing about listeners: whoever builds an inbound
 * listener (sidecar or proxyless) wraps these configs in HttpFilters named
 * RBAC_FILTER_NAME, in the order audit (sidecars only), deny, allow, all
 * before the router; rbac_eval() assumes the same order.
 *
 * Everything is allocated in the caller's arena; the configs live as long
 * as it does and borrow nothing from the model.
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_GEN_RBAC_H
#define MESH_GEN_RBAC_H

#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

struct arena;

/* HttpFilter names, as Istio's proxyless generator uses them: gRPC
 * rejects two filters of one name in an HttpConnectionManager. */
#define RBAC_FILTER_NAME       "envoy.filters.http.rbac"
#define RBAC_FILTER_NAME_DENY  "envoy.filters.http.rbac.DENY"
#define RBAC_FILTER_NAME_AUDIT "envoy.filters.http.rbac.AUDIT"
/* AuthorizationPolicies that may apply to one workload. */
#define RBAC_MAX_POLICIES      4096
/* Envoy policies (rules) in one filter. */
#define RBAC_MAX_RULES         65536
/* Longest generated policy name or regex. */
#define RBAC_NAME_MAX          1024
#define RBAC_REGEX_MAX         8192

typedef Envoy__Extensions__Filters__Http__Rbac__V3__RBAC rbac_filter;
typedef Envoy__Config__Listener__V3__Filter rbac_net_filter;

/* The network filter's name and stat prefix as Istio sets them, and the
 * shadow rules' stat prefixes of istio.io/dry-run policies. */
#define RBAC_NET_FILTER_NAME      "envoy.filters.network.rbac"
#define RBAC_TCP_STAT_PREFIX      "tcp."
#define RBAC_DRY_RUN_ALLOW_PREFIX "istio_dry_run_allow_"
#define RBAC_DRY_RUN_DENY_PREFIX  "istio_dry_run_deny_"

/* How to compile (NULL: as for proxyless gRPC and HTTP, no shadow rules).
 *  - tcp: for a TCP port's network filter, as Istio does: an ALLOW (or
 *    AUDIT) rule using an HTTP-only attribute (hosts, methods, paths,
 *    request principals, request.* conditions) is dropped, so it matches
 *    nothing; a DENY rule loses those attributes, so it denies more (all,
 *    when nothing else is left);
 *  - shadow: istio.io/dry-run policies go into their action's filter as
 *    shadow_rules (with Istio's istio_dry_run_* stat prefix), never into
 *    rules; without it they are left out (gRPC runs no shadow rules).
 *    A filter may then carry shadow rules only (rules NULL: allows all). */
struct rbac_opts {
	bool tcp;
	bool shadow;
};
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter rbac_http_filter;

/* The AuthorizationPolicies that apply to a workload: model_authz_select()
 * (controlplane/model/policy.h), kept under this name for meshctl. */
size_t rbac_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
		   const struct cfg_object **out, size_t cap);

/* Compile the policies that apply to the workload (model_authz_select).
 * Any of the out pointers may be NULL when the caller does not want that
 * filter; each *out is set to NULL when no policy of its action applies.
 * Unsupported conditions (experimental.* keys, which gRPC cannot match;
 * request.headers[] on grpc-* or :scheme, which gRPC rejects) never widen
 * what an ALLOW rule allows: the rule is dropped; in a DENY rule the
 * condition is dropped, so the rule denies more.  Each is reported as a
 * warning to notes (NULL: dropped).
 * Returns 0, -ENOMEM (arena exhausted), -MESH_ETOOBIG past the limits
 * above, or -EINVAL for arguments. */
MESH_MUST_CHECK int rbac_compile(const struct model *m, const char *ns, const struct cfg_labels *labels,
				 const struct gen_notes *notes, struct arena *a, rbac_filter **deny_out,
				 rbac_filter **allow_out, rbac_filter **audit_out);

/* rbac_compile() with options (opts NULL: rbac_compile()). */
MESH_MUST_CHECK int rbac_compile_opts(const struct model *m, const char *ns, const struct cfg_labels *labels,
				      const struct gen_notes *notes, const struct rbac_opts *opts, struct arena *a,
				      rbac_filter **deny_out, rbac_filter **allow_out, rbac_filter **audit_out);
/* Compile a given list of policies (already selected) into one filter per
 * action.  Same contract as rbac_compile(); root_namespace is not needed.
 * rbac_compile_policies() drops the notes. */
MESH_MUST_CHECK int rbac_compile_policies_noted(const struct cfg_object *const *policies, size_t n,
						const struct gen_notes *notes, struct arena *a,
						rbac_filter **deny_out, rbac_filter **allow_out,
						rbac_filter **audit_out);
MESH_MUST_CHECK int rbac_compile_policies_opts(const struct cfg_object *const *policies, size_t n,
					       const struct gen_notes *notes, const struct rbac_opts *opts,
					       struct arena *a, rbac_filter **deny_out, rbac_filter **allow_out,
					       rbac_filter **audit_out);
MESH_MUST_CHECK int rbac_compile_policies(const struct cfg_object *const *policies, size_t n, struct arena *a,
					  rbac_filter **deny_out, rbac_filter **allow_out, rbac_filter **audit_out);

/* The HttpFilters an inbound HttpConnectionManager puts before its
 * router: audit (only when with_audit: gRPC 1.51 rejects the LOG action),
 * deny, allow; NULL configs are skipped.  Each carries its config as
 * typed_config.  *out (arena array) and *n are set; *n may be 0.
 * Returns 0 or -ENOMEM. */
MESH_MUST_CHECK int rbac_http_filters(rbac_filter *deny, rbac_filter *allow, rbac_filter *audit, bool with_audit,
		      struct arena *a, rbac_http_filter ***out, size_t *n);

/* The network filters a TCP chain puts before its TCP proxy: audit, deny,
 * allow (NULL configs skipped), each an envoy.filters.network.rbac with the
 * given filter's rules and shadow rules (compile them with rbac_opts.tcp)
 * and stat_prefix "tcp.".  *out (arena array) and *n are set; *n may be 0.
 * Returns 0 or -ENOMEM. */
MESH_MUST_CHECK int rbac_network_filters(rbac_filter *deny, rbac_filter *allow, rbac_filter *audit, struct arena *a,
					 rbac_net_filter ***out, size_t *n);
#endif
