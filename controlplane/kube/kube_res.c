/*
 * kube_res.c - the table of resources meshd reads from the Kubernetes API
 * (see kube_res.h).
 */
#include "controlplane/kube/kube_res.h"

static const struct kube_res_info kube__res[KUBE_RES_COUNT] = {
	[KUBE_RES_VIRTUAL_SERVICE] = { "networking.istio.io", "v1", "virtualservices", "VirtualService", true,
				       CFG_VIRTUAL_SERVICE },
	[KUBE_RES_DESTINATION_RULE] = { "networking.istio.io", "v1", "destinationrules", "DestinationRule", true,
					CFG_DESTINATION_RULE },
	[KUBE_RES_SERVICE_ENTRY] = { "networking.istio.io", "v1", "serviceentries", "ServiceEntry", true,
				     CFG_SERVICE_ENTRY },
	[KUBE_RES_WORKLOAD_ENTRY] = { "networking.istio.io", "v1", "workloadentries", "WorkloadEntry", true,
				      CFG_WORKLOAD_ENTRY },
	[KUBE_RES_PEER_AUTHENTICATION] = { "security.istio.io", "v1", "peerauthentications", "PeerAuthentication",
					   true, CFG_PEER_AUTHENTICATION },
	[KUBE_RES_AUTHORIZATION_POLICY] = { "security.istio.io", "v1", "authorizationpolicies",
					    "AuthorizationPolicy", true, CFG_AUTHORIZATION_POLICY },
	/* routers, Sidecar scopes, jwt_authn, istio.stats / access logs / tracing */
	[KUBE_RES_GATEWAY] = { "networking.istio.io", "v1", "gateways", "Gateway", true, CFG_GATEWAY },
	[KUBE_RES_SIDECAR] = { "networking.istio.io", "v1", "sidecars", "Sidecar", true, CFG_SIDECAR },
	[KUBE_RES_REQUEST_AUTHENTICATION] = { "security.istio.io", "v1", "requestauthentications",
					      "RequestAuthentication", true, CFG_REQUEST_AUTHENTICATION },
	[KUBE_RES_TELEMETRY] = { "telemetry.istio.io", "v1", "telemetries", "Telemetry", true, CFG_TELEMETRY },
	[KUBE_RES_SERVICE] = { "", "v1", "services", "Service", true, CFG_K8S_SERVICE },
	[KUBE_RES_ENDPOINT_SLICE] = { "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true,
				      CFG_K8S_ENDPOINT_SLICE },
	[KUBE_RES_POD] = { "", "v1", "pods", "Pod", true, CFG_K8S_POD },
	[KUBE_RES_NAMESPACE] = { "", "v1", "namespaces", "Namespace", false, CFG_K8S_NAMESPACE },
	[KUBE_RES_SECRET] = { "", "v1", "secrets", "Secret", true, CFG_K8S_SECRET },
	[KUBE_RES_MESH_CONFIG] = { "", "v1", "configmaps", "ConfigMap", true, CFG_K8S_NAMESPACE,
				   KUBE_MESH_CONFIGMAP },
};

const struct kube_res_info *kube_res_info(enum kube_res r)
{
	return (unsigned)r < KUBE_RES_COUNT ? &kube__res[r] : NULL;
}
