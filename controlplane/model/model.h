/*
 * model.h - the service model the xDS generators compile from.
 *
 * Built from a cfg_snapshot: services with their ports and endpoints, from
 * ServiceEntries (+ WorkloadEntries) and from Kubernetes Services (+
 * EndpointSlices and Pods, whichever source delivered them), and for each host the
 * VirtualServices and DestinationRule that apply.  Immutable and
 * reference counted; generators read it without locks and never do I/O.
 *
 * Hosts: a short name ("reviews") in a VirtualService or DestinationRule
 * means "reviews.<its namespace>.svc.<domain>", as in Istio; names with a
 * dot are taken as written.
 */
#ifndef MESH_MODEL_H
#define MESH_MODEL_H

#include "controlplane/config/config.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/store.h"

#include <stdbool.h>
#include <stdint.h>

struct model_port {
	uint32_t number;
	const char *name;
	const char *protocol;        /* upper-case; "TCP" when unknown */
	uint32_t target_port;        /* 0: same as number */
	bool sniffed;                /* no protocol declared (Kubernetes: no known name prefix or
	                              * appProtocol; ServiceEntry: protocol unset): Istio detects
	                              * HTTP or TCP per connection on the sidecar */
};

struct model_endpoint {
	const char *address;
	const struct cfg_labels *labels;
	const char *locality;        /* "region/zone/subzone"; "" when unknown: the entry's locality, else
	                              * its istio-locality label ("r.z.s"); Kubernetes: the Pod's label,
	                              * else "/ZONE" of the EndpointSlice */
	const char *network;
	uint32_t weight;             /* >= 1 */
	const char *service_account; /* NULL when unknown */
	const char *ns;              /* namespace of the workload */
	const struct cfg_workload *workload; /* NULL for Kubernetes endpoints */
	bool not_ready;              /* EndpointSlice says not ready or terminating: not sent */
	/* endpoint port for each service port, same order as the service's ports */
	uint32_t *ports;
};

struct model_service {
	const char *hostname;        /* FQDN */
	const char *ns;              /* namespace of the ServiceEntry */
	struct model_port *ports;
	size_t n_ports;
	struct model_endpoint *endpoints;
	size_t n_endpoints;
	enum cfg_resolution resolution;
	bool mesh_external;
	const struct cfg_object *origin; /* the ServiceEntry or Kubernetes Service */
	const char *cluster_ip;      /* Kubernetes Services; NULL otherwise */
};

struct model {
	struct cfg_snapshot *cfg;
	const char *domain;          /* "cluster.local" */
	const char *root_namespace;  /* "istio-system" */
	const char *trust_domain;    /* SPIFFE trust domain; NULL: "cluster.local" (set by the owner after model_build) */
	/* the mesh config (meshcfg.h) in force; NULL: Istio's defaults.  Set by
	 * the owner after model_build with a reference the model drops. */
	struct mesh_config *mesh;
	struct model_service *services; /* sorted by hostname */
	size_t n_services;
	uint64_t generation;
	/* private */
	struct arena *arena;
	struct mesh_refcount refs;
	void *priv;
};

/* Build a model; takes its own reference on cfg.  NULL on out-of-memory. */
struct model *model_build(struct cfg_snapshot *cfg, const char *domain, const char *root_namespace);
struct model *model_ref(struct model *m);
void model_unref(struct model *m);  /* NULL is a no-op */

const struct model_service *model_find_service(const struct model *m, const char *hostname);

/* Resolve a host as written in an object of namespace ns into an FQDN,
 * allocated in buf (cap bytes).  Returns buf. */
const char *model_resolve_host(const struct model *m, const char *host, const char *ns, char *buf, size_t cap);

/* The VirtualService that routes hostname for clients in namespace
 * client_ns, as Istio picks it for the mesh gateway: among those visible
 * to client_ns (exportTo, see model_export_class) -- private to it first,
 * then exported to it by name, then public, each oldest first
 * (metadata.creationTimestamp, then name, then namespace) -- the first
 * whose hosts name hostname exactly, else the one with the most specific
 * wildcard host.  One VirtualService per host: Istio does not merge
 * VirtualServices (the others are not applied to that host), except
 * delegates, which are merged into their root here: the object returned
 * may be a merged copy owned by the model (same kind, namespace and name
 * as the root; its hash covers the delegates).  client_ns NULL is the
 * mesh-wide view (proxyless snapshots shared by every client): every
 * VirtualService but an exportTo "~" one is visible.  Borrowed; NULL when
 * none. */
const struct cfg_object *model_virtual_service(const struct model *m, const char *hostname, const char *client_ns);

/* The DestinationRule for hostname as a workload of namespace client_ns
 * with labels (NULL: none) sees it, as Istio's PushContext.destinationRule
 * finds it: rules of client_ns (a client in the root namespace: the root
 * namespace's private ones), else those the service's namespace exports to
 * client_ns, else those the root namespace exports to it; the exact host
 * before the most specific wildcard.  Several rules for one host of one
 * namespace with the same exportTo and selector are merged as Istio
 * merges them (subsets of all, the first rule's top-level trafficPolicy;
 * first = oldest, then name, namespace): the object may be a merged copy
 * owned by the model.  A rule with a workloadSelector applies only to the
 * workloads it selects (in its own namespace), before the plain rule.
 * client_ns NULL is the mesh-wide view of a snapshot every client shares
 * (proxyless): every rule as if exported to "*", those of the service's
 * namespace first, then the root namespace's.  Borrowed; NULL when none. */
const struct cfg_object *model_destination_rule_for(const struct model *m, const char *hostname, const char *client_ns,
						    const struct cfg_labels *labels);
/* The same for a caller without labels (workload-scoped rules never apply). */
const struct cfg_object *model_destination_rule(const struct model *m, const char *hostname, const char *client_ns);

/* Whether svc (its ServiceEntry's exportTo, or its Kubernetes Service's
 * networking.istio.io/exportTo annotation) is visible to clients in
 * client_ns; NULL: the mesh-wide view (all but "~"). */
bool model_service_visible(const struct model *m, const struct model_service *svc, const char *client_ns);

/* The subset of dr named `subset`, or NULL. */
const struct cfg_subset *model_subset(const struct cfg_object *dr, const char *subset);

/* true when every label of selector is present with the same value in labels. */
bool model_labels_match(const struct cfg_labels *selector, const struct cfg_labels *labels);

#endif
