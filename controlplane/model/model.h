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
#include "controlplane/config/store.h"

#include <stdbool.h>
#include <stdint.h>

struct model_port {
	uint32_t number;
	const char *name;
	const char *protocol;        /* upper-case; "TCP" when unknown */
	uint32_t target_port;        /* 0: same as number */
};

struct model_endpoint {
	const char *address;
	const struct cfg_labels *labels;
	const char *locality;        /* "region/zone/subzone"; "" when unknown */
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

/* VirtualServices whose hosts match hostname (exact first, then wildcard
 * "*.suffix"), in (creation order, namespace, name) order: the first http
 * route that matches wins across them, as Istio merges them.
 * Fills out with borrowed pointers; returns the count (up to cap). */
size_t model_virtual_services(const struct model *m, const char *hostname,
			      const struct cfg_object **out, size_t cap);

/* The DestinationRule for hostname as seen from namespace client_ns
 * (client namespace, then service namespace, then root namespace, as in
 * Istio), or NULL. */
const struct cfg_object *model_destination_rule(const struct model *m, const char *hostname, const char *client_ns);

/* The subset of dr named `subset`, or NULL. */
const struct cfg_subset *model_subset(const struct cfg_object *dr, const char *subset);

/* true when every label of selector is present with the same value in labels. */
bool model_labels_match(const struct cfg_labels *selector, const struct cfg_labels *labels);

#endif
