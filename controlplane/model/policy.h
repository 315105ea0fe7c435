/*
 * policy.h - the Istio policy rules every generator reads: which config
 * applies to which host or workload, and how the levels of one object
 * combine.  Pure functions of the model (no I/O), shared by the proxyless,
 * sidecar and gateway generators so that each flavour sees the same
 * policy.
 *
 * Two lookups of the same kind live in model.h because they use the
 * model's host index: model_virtual_service() (which VirtualService
 * routes a host: Istio's precedence, delegates merged) and
 * model_destination_rule_for() (which DestinationRule, merged as Istio
 * merges them, applies to a host as seen from a namespace and workload).
 */
#ifndef MESH_MODEL_POLICY_H
#define MESH_MODEL_POLICY_H

#include "controlplane/model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The traffic policy that applies to one cluster (port, subset) of a
 * DestinationRule, merged as Istio does: the top level, then its
 * port-level entry for `port`, then the subset's groups, then the
 * subset's port-level entry.  Within one level a set group (loadBalancer,
 * connectionPool, outlierDetection, tls) replaces the one before; a
 * port-level entry replaces every group, set or not ("port level policies
 * do not inherit").  dr may be NULL (or not a DestinationRule) and subset
 * NULL or unknown: those levels are skipped.  *out is a shallow copy:
 * strings stay in the config object. */
void model_dr_policy(const struct cfg_object *dr, const char *subset, uint32_t port, struct cfg_traffic_policy *out);

/* The PeerAuthentication mode for a workload (namespace ns, NULL or ""
 * meaning "default"; labels, NULL meaning none) on `port` (the port the
 * workload listens on), with Istio's inheritance: mesh-wide (root
 * namespace, no selector) < namespace-wide (no selector) < workload
 * selector < that policy's port-level entry for `port`.  UNSET inherits;
 * the default is PERMISSIVE.  Among several candidates of one level the
 * first by (namespace, name) wins; a selector in the root namespace
 * selects nothing, as in Istio.  Never returns CFG_MTLS_UNSET. */
enum cfg_mtls_mode model_peer_authn(const struct model *m, const char *ns, const struct cfg_labels *labels,
				    uint32_t port);

/* The AuthorizationPolicies that apply to a workload in namespace ns with
 * the given labels (NULL: none): those of the root namespace (mesh-wide,
 * their selector matched against the workload's labels in any namespace),
 * then those of ns (unless ns is the root namespace), each without a
 * selector or with a matching one; by name within a namespace (the
 * snapshot's order).  Fills out with borrowed pointers (valid while m
 * lives); returns the total count, which may exceed cap (only cap are
 * stored; out may be NULL when cap is 0).  Returns 0 when m or ns is NULL. */
size_t model_authz_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
			  const struct cfg_object **out, size_t cap);

/* Whether policy object o applies to a workload with these labels (NULL:
 * none); the namespace is model_policy_select()'s business. */
typedef bool (*model_policy_applies_fn)(const struct cfg_object *o, const struct cfg_labels *labels);
/* The selection above for any workload-selected policy kind (Authorization
 * Policy, RequestAuthentication, ...): objects of `kind` in the root
 * namespace, then in ns, for which applies() holds; same ordering, out,
 * cap and return as model_authz_select(). */
size_t model_policy_select(const struct model *m, enum cfg_kind kind, const char *ns,
			   const struct cfg_labels *labels, model_policy_applies_fn applies,
			   const struct cfg_object **out, size_t cap);

/* ---------------------------------------------------------------- Sidecar */

/* Which `Sidecar` object scopes a sidecar workload in namespace ns (NULL
 * or "": "default") with the given labels (NULL: none), Istio's rule
 * (pilot/pkg/model/push_context.go getSidecarScope, sidecars sorted by
 * sortConfigByCreationTime, those with a selector first):
 *  1. a Sidecar of ns whose workloadSelector matches the labels (an empty
 *     selector matches every workload);
 *  2. else the Sidecar of ns without a workloadSelector;
 *  3. else the Sidecar of the root namespace (m->root_namespace,
 *     "istio-system") without a workloadSelector (its "." hosts then mean
 *     ns, as Istio's ConvertToSidecarScope(rootConfig, ns));
 *  4. else NULL: every service, outbound policy from the mesh default.
 * Several candidates of the winning level: the oldest by creationTimestamp,
 * then name, wins (Istio assumes one and logs nothing; meshd's caller
 * warns): *n_candidates (may be NULL) is how many the winning level had,
 * 0 when none applies.  Borrowed pointer, valid while m lives. */
const struct cfg_object *model_sidecar_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
					      size_t *n_candidates);

/* Whether Sidecar egress host `egress_host` ("NS/HOST" as in
 * Sidecar.egress[].hosts) imports the service svc_host of namespace svc_ns
 * into a workload of namespace client_ns (Istio's SidecarScope
 * selectServices / matchingService): NS "*" any namespace, "." the
 * workload's (for a root-namespace Sidecar too), "~" none, otherwise that
 * namespace; HOST "*", "*.suffix" or a name, covering the service's
 * hostname (cfg_host_covers: a wildcard service host must be inside the
 * pattern).  exportTo is the caller's to check (model_service_visible). */
bool model_sidecar_imports(const char *egress_host, const char *svc_ns, const char *svc_host, const char *client_ns);

/* ---------------------------------------------------------------- exportTo */

/* How object o (VirtualService, DestinationRule, ServiceEntry, or a
 * Kubernetes Service through its annotation networking.istio.io/exportTo,
 * comma-separated) is visible from namespace client_ns, as Istio's push
 * context indexes it:
 *   MODEL_EXPORT_NONE    not visible ("~", or a list without client_ns);
 *   MODEL_EXPORT_PRIVATE its own namespace ("." or its name) and not "*";
 *   MODEL_EXPORT_NAMED   another namespace listed by name, and not "*";
 *   MODEL_EXPORT_PUBLIC  "*".
 * An object without exportTo (a Service without the annotation) takes the
 * mesh config's default for its kind (m->mesh: defaultServiceExportTo,
 * defaultVirtualServiceExportTo, defaultDestinationRuleExportTo; Istio's
 * default "*" when m or m->mesh is NULL).
 * "~" counts only without "*" (Istio: a "*" makes the object public and
 * ignores the rest).  A DestinationRule with a workloadSelector is private
 * whatever its exportTo says (Istio).  client_ns NULL is the mesh-wide
 * view of a client that cannot be told apart (proxyless snapshots): every
 * object but a "~" one is PUBLIC.  Kinds without exportTo are PUBLIC. */
enum model_export {
	MODEL_EXPORT_NONE = -1,
	MODEL_EXPORT_PRIVATE = 0,
	MODEL_EXPORT_NAMED = 1,
	MODEL_EXPORT_PUBLIC = 2,
};
enum model_export model_export_class(const struct model *m, const struct cfg_object *o, const char *client_ns);
/* The exportTo an object of kind (enum cfg_kind) without one gets: the
 * mesh config's default (see above); never NULL, borrowed from m. */
const struct cfg_strs *model_export_default(const struct model *m, int kind);

/* Whether o's exportTo names namespaces without "*" ("." or a list; not
 * "~" alone): visibility a shared proxyless snapshot cannot keep. */
bool model_export_narrow(const struct model *m, const struct cfg_object *o);

/* Whether a gateways list (of a VirtualService or of one of its http
 * matches) includes the mesh's sidecars and proxyless clients: an empty
 * list does, otherwise only one naming "mesh" (Istio's reserved word). */
bool model_gateways_include_mesh(const struct cfg_strs *gateways);

#endif
