/*
 * patch.h - keeps the admission webhook configurations true: meshd's
 * root certificate as their caBundle, and the validators fail-closed once
 * meshd answers (istiod's pkg/webhooks/webhookpatch.go and
 * pkg/webhooks/validation/controller).
 *
 * While meshd leads (kube_leader.h), one thread per resource
 * (mutatingwebhookconfigurations, validatingwebhookconfigurations) lists
 * the configurations, patches those it owns, and watches the resource: a
 * configuration someone rewrites (caBundle blanked, failurePolicy put back,
 * the object re-created) is patched again at once.  Every write is a JSON
 * patch guarded by a "test" of the resourceVersion read, so two writers
 * never overwrite each other; a conflict or a failure is retried with
 * backoff (100 ms doubling to 1 min, istiod's rate limiter).
 *
 *   - MutatingWebhookConfigurations named in `mutating`: the caBundle of
 *     every webhook whose name ends in "sidecar-injector.istio.io".
 *   - ValidatingWebhookConfigurations named in `validating`: the caBundle
 *     of every webhook; and a failurePolicy other than Fail becomes Fail
 *     once a dry-run create of an invalid Gateway (annotated
 *     internal.istio.io/webhook-always-reject, labelled istio.io/rev=
 *     default) in probe_ns is refused with "denied the request" -- or
 *     cannot be judged because the Gateway CRD is missing or a webhook
 *     does not support dry run -- as istiod's readyForFailClose.  Until
 *     then the caBundle is written and the switch retried.
 *
 * Nothing here blocks its caller: the threads own their requests.
 * Returns 0 or a negative code (err.h).
 */
#ifndef MESH_WEBHOOK_PATCH_H
#define MESH_WEBHOOK_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kube_client;
struct kube_leader;
struct webhook_patch;

#define WEBHOOK_PATCH_MAX_NAMES 8
/* Istio's defaults (istio-discovery and base charts, revision "default") */
#define WEBHOOK_PATCH_INJECTOR "istio-sidecar-injector"
#define WEBHOOK_PATCH_VALIDATORS "istio-validator-istio-system,istiod-default-validator"
#define WEBHOOK_PATCH_INJECTOR_SUFFIX "sidecar-injector.istio.io"

struct webhook_patch_config {
	struct kube_client *client;  /* borrowed; outlives the patcher */
	struct kube_leader *leader;  /* borrowed; NULL: patch without election */
	const char *root_pem;        /* copied: the caBundle (base64 of it) */
	const char *mutating;        /* comma-separated names; NULL: WEBHOOK_PATCH_INJECTOR; "": none */
	const char *validating;      /* comma-separated names; NULL: WEBHOOK_PATCH_VALIDATORS; "": none */
	const char *probe_ns;        /* the dry-run Gateway's namespace; NULL: istio-system */
	int64_t resync;              /* ns: a watch is renewed (and everything re-read) this often; 0: 60 s */
};

/* Start the threads.  -EINVAL without client or root; -ENOMEM. */
int webhook_patch_start(const struct webhook_patch_config *cfg, struct webhook_patch **out);
/* Stop the threads (within about a second); NULL is a no-op. */
void webhook_patch_stop(struct webhook_patch *p);
/* Patches written since start (both kinds), and whether the validators
 * were switched to Fail: for logs and tests. */
uint64_t webhook_patch_writes(struct webhook_patch *p);
bool webhook_patch_fail_closed(struct webhook_patch *p);

#endif
