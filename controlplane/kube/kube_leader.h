/*
 * kube_leader.h - leader election on a coordination.k8s.io/v1 Lease, and
 * the leader's duty: the ConfigMap istio-ca-root-cert (data key
 * root-cert.pem, meshd's root certificate) in every namespace.
 *
 * Election follows client-go's resource lock: the holder renews the Lease
 * every `retry`; a candidate takes it over only when its holder is empty or
 * the record (holder, renewTime) has not changed for leaseDurationSeconds
 * as observed locally (no trust in other clocks).  Every write carries the
 * resourceVersion it read, so of two replicas racing for an expired lease
 * the API server lets one win (409 Conflict for the other).  A leader that
 * could not renew for 2/3 of the lease duration steps down before anyone
 * may take over.  Stopping releases a held lease (empty holder), so a
 * replica shut down cleanly hands over at once.
 *
 * The leader reconciles the ConfigMaps when it becomes leader, when told
 * that namespaces changed (kube_leader_kick), when the root changes, and
 * every `resync` (which also repairs ConfigMaps someone changed or
 * deleted): create where missing, update (resourceVersion-guarded) where
 * the data differs.  Followers write nothing.
 *
 * Everything runs on a thread of its own with blocking requests
 * (kube_client_request); the functions here never block on the API and
 * may be called from any thread.  Returns 0 or a negative code (err.h).
 */
#ifndef MESH_KUBE_LEADER_H
#define MESH_KUBE_LEADER_H

#include "controlplane/kube/kube_client.h"

#include <stdbool.h>
#include <stdint.h>

#define KUBE_LEADER_IDENTITY_MAX 256
#define KUBE_LEADER_CONFIGMAP "istio-ca-root-cert"
#define KUBE_LEADER_CONFIGMAP_KEY "root-cert.pem"
#define KUBE_LEADER_MAX_LIST (64u << 20)   /* one list page */

struct kube_leader_config {
	struct kube_client *client;  /* borrowed; outlives the leader */
	const char *ns;              /* the Lease's namespace; default istio-system */
	const char *name;            /* the Lease; default meshd-leader */
	const char *identity;        /* NULL: $POD_NAME, else HOSTNAME-PID */
	int lease_seconds;           /* default 15 */
	int64_t retry;               /* ns between renewals / attempts; default 2s */
	int64_t resync;              /* ns between ConfigMap reconciles; default 10s */
	const char *root_pem;        /* copied; NULL: no ConfigMaps until set */
};

struct kube_leader;

int kube_leader_start(const struct kube_leader_config *cfg, struct kube_leader **out);
/* Stop the thread, releasing the lease if held.  NULL is a no-op. */
void kube_leader_stop(struct kube_leader *l);
bool kube_leader_is_leader(struct kube_leader *l);
const char *kube_leader_identity(const struct kube_leader *l);
/* A new root certificate (copied); the leader rewrites the ConfigMaps. */
int kube_leader_set_root_pem(struct kube_leader *l, const char *pem);
/* Namespaces may have changed: reconcile soon. */
void kube_leader_kick(struct kube_leader *l);

#endif
