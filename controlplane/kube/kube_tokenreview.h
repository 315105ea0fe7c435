/*
 * kube_tokenreview.h - CA caller authentication by Kubernetes TokenReview.
 *
 * A workload's service-account token is sent to the API server (POST
 * authentication.k8s.io/v1 tokenreviews, spec.audiences ["istio-ca"]); an
 * authenticated review whose user is "system:serviceaccount:NS:SA" (and
 * whose audiences, when the server lists them, include istio-ca) gives the
 * identity (NS, SA).  Anything else is refused.
 *
 * The call blocks (one HTTP request): it runs on the CA's worker thread
 * (ca_auth.h), never on the config or xDS threads.  Thread-safe.
 * Returns 0, -EACCES (not authenticated; msg says why, never echoing the
 * token), or another negative code when the review itself failed.
 */
#ifndef MESH_KUBE_TOKENREVIEW_H
#define MESH_KUBE_TOKENREVIEW_H

#include "controlplane/ca/ca_auth.h"
#include "controlplane/kube/kube_client.h"

#include <stddef.h>

#define KUBE_TOKENREVIEW_AUDIENCE "istio-ca"
#define KUBE_TOKENREVIEW_MAX_RESPONSE (64u << 10)

int kube_tokenreview(struct kube_client *c, const char *token, char *ns, size_t ns_cap, char *sa, size_t sa_cap,
		     char *msg, size_t msg_cap);

/* An authenticator for the CA; c is borrowed and must outlive it. */
int kube_tokenreview_authenticator_new(struct kube_client *c, struct ca_authenticator **out);

#endif
