/*
 * kube_record.h - the resources meshd reads from the Kubernetes API, and
 * the typed records of the core kinds (Service, EndpointSlice, Pod,
 * Namespace).
 *
 * Istio kinds are not records: they go through the config parser into the
 * store (controlplane/config).  Core kinds are decoded here into small
 * immutable records holding only what the mesh model needs.  A record owns
 * an arena with all its strings.  Decoding is thread-safe (the watch thread
 * decodes, the config thread keeps the records).
 */
#ifndef MESH_KUBE_RECORD_H
#define MESH_KUBE_RECORD_H

#include "controlplane/config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kube_json;

enum kube_res {
	KUBE_RES_VIRTUAL_SERVICE,
	KUBE_RES_DESTINATION_RULE,
	KUBE_RES_SERVICE_ENTRY,
	KUBE_RES_WORKLOAD_ENTRY,
	KUBE_RES_PEER_AUTHENTICATION,
	KUBE_RES_AUTHORIZATION_POLICY,
	KUBE_RES_SERVICE,
	KUBE_RES_ENDPOINT_SLICE,
	KUBE_RES_POD,
	KUBE_RES_NAMESPACE,
	KUBE_RES_COUNT
};

struct kube_res_info {
	const char *group;           /* "" for the core group */
	const char *version;
	const char *plural;
	const char *kind;
	bool namespaced;
	int cfg_kind;                /* enum cfg_kind, or -1 for core kinds (records) */
};

const struct kube_res_info *kube_res_info(enum kube_res r);

/* Ports of a Service or an EndpointSlice. */
struct kube_port {
	char *name;                  /* NULL when unnamed */
	int32_t port;
	char *protocol;              /* "TCP" (default), "UDP", "SCTP" */
	char *app_protocol;          /* NULL when not set */
	int32_t target_port;         /* Service only; 0 when named or not set */
	char *target_port_name;      /* Service only; NULL unless targetPort is a name */
};

struct kube_service {
	char *type;                  /* "ClusterIP" (default), "NodePort", "LoadBalancer", "ExternalName" */
	char *cluster_ip;            /* NULL, "None" for headless */
	struct cfg_strs cluster_ips;
	char *external_name;
	struct cfg_labels selector;
	bool has_selector;
	struct kube_port *ports;
	size_t n_ports;
};

struct kube_endpoint {
	struct cfg_strs addresses;
	int ready, serving, terminating;  /* conditions: -1 unknown (ready unknown means ready), 0, 1 */
	char *hostname, *node_name, *zone;
	char *target_kind, *target_ns, *target_name;  /* targetRef; NULL when absent */
};

struct kube_endpoint_slice {
	char *service_name;          /* label kubernetes.io/service-name; NULL when absent */
	char *address_type;          /* IPv4, IPv6, FQDN */
	struct kube_endpoint *endpoints;
	size_t n_endpoints;
	struct kube_port *ports;
	size_t n_ports;
};

struct kube_pod {
	char *phase;
	char *pod_ip;
	struct cfg_strs pod_ips;
	char *host_ip;
	char *node_name;
	char *service_account;       /* spec.serviceAccountName; "default" when absent */
	bool ready;                  /* condition Ready=True */
};

struct kube_record {
	enum kube_res res;
	char *ns;                    /* "" for cluster-scoped kinds (Namespace) */
	char *name;
	char *uid;
	char *resource_version;
	struct cfg_labels labels;
	struct cfg_labels annotations;
	union {
		struct kube_service svc;
		struct kube_endpoint_slice eps;
		struct kube_pod pod;
	} u;                         /* Namespace: labels only */
	struct arena *arena;
};

#define KUBE_RECORD_ARENA_MAX (16u << 20)

/* Decode obj (a JSON object of kind res, a core kind).  0, -EINVAL when it
 * is not an object with metadata.name, or -ENOMEM. */
int kube_record_decode(enum kube_res res, const struct kube_json *obj, struct kube_record **out);
void kube_record_free(struct kube_record *r);   /* NULL is a no-op */
const char *kube_record_label(const struct kube_record *r, const char *key);

#endif
