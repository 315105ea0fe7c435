/*
 * inject.h - sidecar injection: istiod's /inject webhook (pkg/kube/inject:
 * webhook.go, inject.go, app_probe.go and the chart's
 * injection-template.yaml) for meshproxy.
 *
 * Pure functions: a Pod (JSON) and what the caller knows of its namespace
 * in, a JSONPatch (RFC 6902) out.  No I/O: meshd's handler looks the
 * namespace labels up in its store of Namespaces, and `meshctl
 * kube-inject` runs the same code on a file.
 *
 * What an injected Pod receives (each piece a member replaced whole by an
 * "add" operation, so the patch applies to any Pod the API server holds):
 *   - istio-init (init container): `meshproxy iptables` with istio-iptables'
 *     flags (-p 15001 -z 15006 -u 1337 -m MODE -i -x -b -d [-q -o -k -c]), unless
 *     interceptionMode is NONE;
 *   - istio-proxy: `meshproxy` reaching meshd at istiod.ROOT_NS.svc:15012 (ADS
 *     and CA over TLS), node id from the downward API, the Pod's labels, its
 *     service account, the projected token (audience istio-ca) and the mesh
 *     root (ConfigMap istio-ca-root-cert); a native sidecar (an init
 *     container with restartPolicy Always) when the cluster supports it;
 *   - volumes istio-envoy, istio-data, istio-podinfo, istio-token,
 *     istiod-ca-cert;
 *   - app probes rewritten to the agent's 15020 /app-health/C/livez|readyz|
 *     startupz, the originals in ISTIO_KUBE_APP_PROBERS;
 *   - annotations sidecar.istio.io/status, prometheus.io/scrape|port|path
 *     (15020 /stats/prometheus; an app's own in ISTIO_PROMETHEUS_ANNOTATIONS),
 *     kubectl.kubernetes.io/default-container; labels
 *     security.istio.io/tlsMode, service.istio.io/canonical-name|revision.
 * Overrides read from the Pod: sidecar.istio.io/proxyCPU|proxyMemory|
 * proxyCPULimit|proxyMemoryLimit|interceptionMode|proxyImage|
 * rewriteAppHTTPProbers, traffic.sidecar.istio.io/includeOutboundIPRanges|
 * excludeOutboundIPRanges|includeInboundPorts|excludeInboundPorts|
 * includeOutboundPorts|excludeOutboundPorts|excludeInterfaces|
 * kubevirtInterfaces (and istio.io/reroute-virtual-interfaces), proxy.istio.io/config (holdApplicationUntilProxyStarts),
 * sidecar.istio.io/logLevel (meshproxy's --log-level; an unknown level is
 * left out), status.sidecar.istio.io/port (the agent's status port: probes,
 * istio-init's -d, meshproxy's --status-addr; 0 turns it off),
 * readiness.status.sidecar.istio.io/initialDelaySeconds|periodSeconds|
 * failureThreshold (istio-proxy's readiness probe).
 * ISTIO_META_WORKLOAD_NAME and ISTIO_META_OWNER name the Pod's controller
 * as istiod's GetDeployMetaFromPod does.
 *
 * Functions return 0 / 1 or a negative code (err.h) as each says.
 */
#ifndef MESH_INJECT_H
#define MESH_INJECT_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest AdmissionReview or Pod read (the webhook server caps bodies too). */
#define INJECT_MAX_INPUT ((size_t)4 << 20)
/* Largest patch or response built. */
#define INJECT_MAX_OUTPUT ((size_t)8 << 20)
/* A reason text (skip or error). */
#define INJECT_REASON_CAP 512

#define INJECT_PROXY_UID 1337
#define INJECT_STATUS_PORT 15020
#define INJECT_DEFAULT_IMAGE "meshproxy:latest" /* what `make image` builds (deploy/Dockerfile) */

/* A label of a namespace: its value, or NULL when the namespace or the
 * label is unknown.  The string must stay valid until the inject call
 * returns. */
typedef const char *(*inject_ns_label_fn)(void *ctx, const char *ns, const char *key);

struct inject_config {
	const char *image;           /* NULL: INJECT_DEFAULT_IMAGE (sidecar.istio.io/proxyImage wins) */
	const char *image_pull_policy; /* istio-init's and istio-proxy's (Istio's global.imagePullPolicy):
	                              * NULL: IfNotPresent, so an image loaded into the nodes (kind load)
	                              * is used though its tag is :latest; "": none (Kubernetes' default) */
	const char *root_namespace;  /* "istio-system": meshd is istiod.ROOT_NS.svc */
	const char *domain;          /* "cluster.local" */
	const char *trust_domain;    /* "cluster.local" */
	const char *revision;        /* "default": istio.io/rev this meshd answers */
	const char *workload;        /* NULL or "": the workload from the Pod (its controlling
	                              * ownerReference, as istiod's GetDeployMetaFromPod); else this name
	                              * (kube-inject: the Deployment's, Istio's DeploymentMeta.Name) */
	const char *workload_kind;   /* with workload: its kind ("Deployment") and apiVersion ("apps/v1"), */
	const char *workload_api_version; /* for ISTIO_META_OWNER (none without an apiVersion) */
	bool native_sidecar;         /* the cluster runs sidecar init containers (Kubernetes >= 1.29) */
	bool hold_application;       /* mesh default of holdApplicationUntilProxyStarts */
	inject_ns_label_fn ns_label; /* NULL: no namespace is labelled */
	void *ns_ctx;
};

/* Outcome of one review, for the sidecar_injection_* counters. */
enum inject_outcome {
	INJECT_INJECTED,             /* sidecar_injection_success_total */
	INJECT_SKIPPED,              /* sidecar_injection_skip_total */
	INJECT_FAILED,               /* sidecar_injection_failure_total */
};

/*
 * Should this Pod get a sidecar?  pod is the parsed Pod object
 * (struct json_value from common/json.h), ns its namespace.  Returns 1
 * (inject), 0 (skip: reason says why).  Istio's rules in its order:
 * hostNetwork, Istio's ignored namespaces (kube-system, kube-public,
 * kube-node-lease, local-path-storage), already injected
 * (sidecar.istio.io/status), then whether one of the injector's webhooks
 * would call for it (their namespace and object selectors: the namespace's
 * istio-injection=enabled, else its istio.io/rev naming our revision, else
 * the Pod's istio.io/rev label, else the Pod's sidecar.istio.io/inject=true
 * label; never a Pod labelled inject=false), then istiod's injectRequired:
 * the Pod's label or, without it, annotation sidecar.istio.io/inject "false"
 * skips, any other value injects.
 */
struct json_value;
int inject_required(const struct inject_config *cfg, const struct json_value *pod, const char *ns, char *reason,
		    size_t cap);

/*
 * The JSONPatch (a JSON array of operations) that injects pod_json (len
 * bytes, a Pod object; ns its namespace when the Pod has none) into
 * *patch.  Returns 1 (patch written), 0 (skipped: reason), -EINVAL (not a
 * Pod, a bad annotation: reason says), -MESH_EPARSE (not JSON),
 * -MESH_ETOOBIG, -ENOMEM.
 */
int inject_pod(const struct inject_config *cfg, const char *pod_json, size_t len, const char *ns,
	       struct mesh_buf *patch, char *reason, size_t cap);

/*
 * An AdmissionReview (admission.k8s.io/v1) in, its response out (the whole
 * AdmissionReview with response.uid, allowed, patch in base64 and
 * patchType JSONPatch), as istiod's webhook answers: a Pod it skips is
 * allowed unchanged; a review it cannot read or a Pod it cannot inject is
 * refused (allowed false, status.message), so failurePolicy decides.
 * *outcome may be NULL.  Returns 0 (out holds the response) or -EINVAL
 * (an empty body: out holds the message).
 */
int inject_review(const struct inject_config *cfg, const char *body, size_t len, struct mesh_buf *out,
		  enum inject_outcome *outcome);

/*
 * Apply a JSONPatch made by inject_pod (only "add" of object members whose
 * parent exists, the operations inject_pod writes) under prefix (a JSON
 * pointer such as "/spec/template", "" for the document) to doc_json,
 * writing the result as compact JSON into out.  For `meshctl kube-inject`
 * and the tests.  Returns 0, -EINVAL (an operation it does not do, a path
 * whose parent is missing), -MESH_EPARSE, -ENOMEM.
 */
int inject_apply(const char *doc_json, size_t len, const char *patch_json, size_t plen, const char *prefix,
		 struct mesh_buf *out);

#endif
