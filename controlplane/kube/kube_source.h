/*
 * kube_source.h - the Kubernetes API config source.
 *
 * Watches the Istio kinds (networking.istio.io/v1 VirtualService,
 * DestinationRule, ServiceEntry, WorkloadEntry; security.istio.io/v1
 * PeerAuthentication, AuthorizationPolicy) and the core kinds (v1 Service,
 * Pod, Namespace; discovery.k8s.io/v1 EndpointSlice) on a thread of its own
 * (kube_watch.h) and applies what changed on the caller's thread: every
 * object, Istio kind or core kind (CFG_K8S_*), goes to the store
 * (cfg_store_put / cfg_store_delete / cfg_store_reject, origin "kube"; a
 * rejected version keeps the last good one and its errors name kind,
 * namespace and name).  What arrived together is applied as one store
 * batch, so a relist of N objects costs one rebuild of the served view.
 *
 * Threading: one owner thread (the config thread) calls every function
 * here.  It polls kube_source_fd() for input and calls kube_source_handle(),
 * which never blocks.
 *
 * Returns 0 / a count, or a negative code (err.h).
 */
#ifndef MESH_KUBE_SOURCE_H
#define MESH_KUBE_SOURCE_H

#include "controlplane/config/store.h"
#include "controlplane/kube/kube_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kube_source;

struct kube_source_config {
	struct cfg_store *store;
	const char *kubeconfig;      /* --kubeconfig; NULL: in-cluster */
	const char *context;         /* kubeconfig context; NULL: current-context */
	const char *sa_dir;          /* in-cluster service-account dir; NULL: $MESHD_KUBE_SA_DIR or
	                                KUBE_CONFIG_SA_DIR */
	/* non-NULL: also watch ConfigMap MESH_NS/istio, key `mesh` (Istio's
	 * MeshConfig; kube_source_mesh_config()); NULL: not watched */
	const char *mesh_ns;
	/* tuning (0: defaults, see kube_watch.h) */
	int page_size;
	int watch_timeout_seconds;
	int64_t backoff_min, backoff_max, missing_retry;  /* ns */
	size_t max_objects;          /* --max-objects-per-source; 0: CFG_MAX_OBJECTS_PER_SOURCE */
};

/* Read the connection settings and start watching.  Fails (with a logged
 * reason) when the settings cannot be read; an unreachable API server is
 * not an error: the source retries and kube_source_synced() stays false. */
int kube_source_new(const struct kube_source_config *cfg, struct kube_source **out);
void kube_source_free(struct kube_source *ks);   /* NULL is a no-op */

/* Descriptor to poll for POLLIN. */
int kube_source_fd(const struct kube_source *ks);
/* Apply queued changes.  Returns the number of served store keys changed,
 * 0 when none, or < 0. */
int kube_source_handle(struct kube_source *ks);
/* True once every resource has been listed once (a resource whose CRD is
 * not installed counts as listed, empty). */
bool kube_source_synced(const struct kube_source *ks);

/* True (once) when a Namespace was added, changed or deleted since the
 * last call. */
bool kube_source_namespaces_changed(struct kube_source *ks);

/* True (once) when the mesh config ConfigMap changed since the last call:
 * *text is its `mesh` key (malloc'd, the caller frees it; "" when the key
 * is absent) or NULL when the ConfigMap was deleted (Istio's defaults
 * apply again). */
bool kube_source_mesh_config(struct kube_source *ks, char **text);

/* The API client, for the other users of the API on threads that may block
 * (leader election, TokenReview); valid until kube_source_free(). */
struct kube_client *kube_source_client(struct kube_source *ks);

#endif
