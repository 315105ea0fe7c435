/*
 * gateway.h - Istio's gateway binding rules, as data the router (gateway)
 * generator reads: which Gateways select a router proxy, which
 * VirtualServices bind to a Gateway, and which hosts a VirtualService
 * serves on a Gateway server (host intersection).
 *
 * The rules are istiod's (pilot/pkg/model/push_context.go mergeGateways
 * and VirtualServicesForGateway, pilot/pkg/model/gateway.go
 * sanitizeServerHostNamespace, pkg/config/host names.go
 * NamesForNamespace / Intersection, core/gateway.go
 * pickMatchingGatewayHosts and isGatewayMatch):
 *  - a Gateway in any namespace selects a router whose labels hold every
 *    label of its selector (no selector: every router), as Istio's default
 *    (PILOT_SCOPE_GATEWAY_TO_NAMESPACE off);
 *  - a VirtualService names Gateways as "ns/name", "name" (its own
 *    namespace) or the legacy "name.ns.svc.DOMAIN"; "mesh" is the
 *    sidecars, implicit only when it lists no gateways; an http / tls /
 *    tcp match may narrow that with its own `gateways`;
 *  - exportTo: a VirtualService binds for a router of namespace NS only
 *    when visible to NS (private, then exported to NS by name, then
 *    public; oldest first within each, as Istio's index keeps them);
 *  - server hosts "ns/host" let only VirtualServices of namespace ns bind,
 *    "./host" the Gateway's own namespace, "*\/host" and "host" any.
 *
 * Pure functions of the model; pointers returned are borrowed from it (or
 * from the strings given), but resolved host names, which are allocated in
 * the caller's arena.
 */
#ifndef MESH_MODEL_GATEWAY_H
#define MESH_MODEL_GATEWAY_H

#include "controlplane/model/model.h"

#include <stdbool.h>
#include <stddef.h>

/* Longest "ns/name" of a Gateway reference. */
#define MODEL_GATEWAY_NAME_MAX 512

/* The Gateway a VirtualService of namespace vs_ns means by ref, as
 * "ns/name" in buf (cap bytes): "ns/name" as written, "mesh" as is,
 * "./name" and "name" as "vs_ns/name", "name.ns[.svc...]" (legacy FQDN
 * form) as "ns/name" (Istio's resolveGatewayName).  Returns buf. */
const char *model_gateway_ref(const char *ref, const char *vs_ns, char *buf, size_t cap);

/* Whether the gateways list of a VirtualService (or of one of its
 * matches) of namespace vs_ns names gateway ("ns/name", or "mesh").  An
 * empty list names "mesh" only (never a Gateway). */
bool model_gateways_include(const struct cfg_strs *gateways, const char *vs_ns, const char *gateway);

/* Whether Gateway gw (kind CFG_GATEWAY) selects a router proxy with these
 * labels (NULL: none): every selector label present with the same value;
 * an empty selector selects every router. */
bool model_gateway_selects(const struct cfg_object *gw, const struct cfg_labels *labels);

/* The Gateways that select a router of namespace ns with labels, in the
 * snapshot's order (namespace, name): fills out (borrowed) up to cap and
 * returns the total count (may exceed cap).  ns is unused today (a
 * Gateway of any namespace selects by labels, Istio's default) and kept
 * for PILOT_SCOPE_GATEWAY_TO_NAMESPACE. */
size_t model_gateways_for_proxy(const struct model *m, const char *ns, const struct cfg_labels *labels,
				const struct cfg_object **out, size_t cap);

/* The VirtualServices bound to gateway ("ns/name") as a router of
 * namespace proxy_ns sees them (Istio's VirtualServicesForGateway):
 * those whose `gateways` name it and that are visible to proxy_ns,
 * private ones first, then exported to proxy_ns by name, then public,
 * each oldest first.  Delegates (no hosts) never bind; a root comes with
 * its delegates merged in (the model's merged copy, as for the mesh).
 * Fills out up to cap and returns the total count. */
size_t model_gateway_virtual_services(const struct model *m, const char *gateway, const char *proxy_ns,
				      const struct cfg_object **out, size_t cap);

/* The host part of server host h of a Gateway of namespace gw_ns when a
 * VirtualService of namespace vs_ns may bind to it; NULL when the
 * namespace part excludes vs_ns.  "ns/host": ns must be vs_ns ("." is
 * gw_ns, "*" any); no namespace part: any. */
const char *model_server_host_for(const char *h, const char *gw_ns, const char *vs_ns);

/* The virtual host domains VirtualService vs gets on a server with hosts
 * (of a Gateway of namespace gw_ns): Istio's Intersection of the server
 * hosts vs's namespace may use with vs's hosts (short names resolved in
 * vs's namespace as Istio resolves them, when m is not NULL) -- for each
 * pair, the narrower of the two when one covers the other (wildcards),
 * each once (case-insensitive), in server-host order.  Fills out up to
 * cap, returns the total count; strings are borrowed from the config, or
 * allocated in a (a resolved short name; on out-of-memory the count
 * found so far is returned). */
struct arena;
size_t model_gateway_hosts(const struct model *m, const struct cfg_strs *server_hosts, const char *gw_ns,
			   const struct cfg_object *vs, struct arena *a, const char **out, size_t cap);

/* Whether vs has a host (resolved as above) matching a server host it
 * may bind to (pickMatchingGatewayHosts: either covers the other), what
 * TCP and TLS servers require before they read its tcp / tls routes. */
bool model_gateway_hosts_match(const struct model *m, const struct cfg_strs *server_hosts, const char *gw_ns,
			       const struct cfg_object *vs);

#endif
