/*
 * kube_res.h - the resources meshd reads from the Kubernetes API.
 *
 * One row per resource: where it is served (group, version, plural), its
 * kind, whether it is namespaced, and the config kind its objects become.
 * Every object, Istio kind or core kind, goes through the config parser
 * (controlplane/config) into the store; nothing is kept on the side.
 */
#ifndef MESH_KUBE_RES_H
#define MESH_KUBE_RES_H

#include "controlplane/config/config.h"

#include <stdbool.h>

enum kube_res {
	KUBE_RES_VIRTUAL_SERVICE,
	KUBE_RES_DESTINATION_RULE,
	KUBE_RES_SERVICE_ENTRY,
	KUBE_RES_WORKLOAD_ENTRY,
	KUBE_RES_PEER_AUTHENTICATION,
	KUBE_RES_AUTHORIZATION_POLICY,
	KUBE_RES_GATEWAY,
	KUBE_RES_SIDECAR,
	KUBE_RES_REQUEST_AUTHENTICATION,
	KUBE_RES_TELEMETRY,
	KUBE_RES_SERVICE,
	KUBE_RES_ENDPOINT_SLICE,
	KUBE_RES_POD,
	KUBE_RES_NAMESPACE,
	KUBE_RES_SECRET,             /* credentialName TLS Secrets, served over SDS (ca_sds.h) */
	/* the one ConfigMap holding Istio's MeshConfig (ROOT_NS/istio, key
	 * `mesh`): not a config object, handed over as text */
	KUBE_RES_MESH_CONFIG,
	KUBE_RES_COUNT
};

struct kube_res_info {
	const char *group;           /* "" for the core group */
	const char *version;
	const char *plural;
	const char *kind;
	bool namespaced;
	enum cfg_kind cfg_kind;      /* KUBE_RES_MESH_CONFIG: unused */
	const char *only_name;       /* non-NULL: one object of that name (fieldSelector), in the
	                                namespace the watch is told (kube_watch_config.mesh_ns) */
};

/* Istio's mesh config ConfigMap: name and key (pkg/config/mesh/kubemesh). */
#define KUBE_MESH_CONFIGMAP "istio"
#define KUBE_MESH_CONFIGMAP_KEY "mesh"

/* The row of r; NULL when r is out of range. */
const struct kube_res_info *kube_res_info(enum kube_res r);

#endif
