/*
 * ca_sds.h - meshd's SDS provider: the Secrets it serves over ADS (type
 * envoy.extensions.transport_sockets.tls.v3.Secret, SotW and Delta) to a
 * node whose identity is proven, so an Envoy-shaped bootstrap (Secrets
 * "default" and "ROOTCA" over ADS, no agent beside the proxy) works.
 *
 * What is served, per authenticated stream, by name:
 *   "default"  the workload certificate: spiffe://TD/ns/NS/sa/SA, leaf and
 *              intermediates, with a private key meshd generates for this
 *              stream (TlsCertificate, inline bytes), re-issued and pushed
 *              again at half its lifetime (--workload-cert-ttl);
 *   "ROOTCA"   the mesh's root (CertificateValidationContext.trusted_ca);
 *   "kubernetes://NAME", "NAME" (credentialName, as istiod's SDS serves
 *              them to gateways and DestinationRules): a Kubernetes Secret
 *              NAME of the caller's namespace, through the config's
 *              lookup callback (kubernetes.io/tls, or generic with
 *              tls.crt/tls.key or cert/key), and "...-cacert" for its
 *              ca.crt (or cacert) as a validation context.  Names of
 *              other namespaces are never served.
 * Other names are left out of the response (not found).
 *
 * Who may have them (Istio's xDS authentication on 15012, pilot's
 * authenticate + checkConnectionIdentity): the call must come over TLS
 * with a client certificate TLS verified against meshd's root (its SPIFFE
 * ID, of meshd's trust domain, is the identity: Istio's
 * ClientCertAuthenticator) or carry "authorization: Bearer TOKEN", which
 * the CA's authenticator turns into (namespace, service account): Istio's
 * JWT authenticator.  Checked once per stream; the node's metadata
 * NAMESPACE (or node id) and SERVICE_ACCOUNT, when given, must be that
 * identity, or the stream ends with PERMISSION_DENIED; a missing or
 * rejected token ends it with UNAUTHENTICATED.  A plaintext stream (15010)
 * proves nothing: it gets no Secret (an empty answer), as istiod serves
 * no secret to a proxy without a verified identity.
 *
 * Trade-off, said plainly: with istio-agent the workload key is made next
 * to the proxy and never leaves it (CreateCertificate, which meshproxy
 * uses).  Here meshd makes the key and sends it over the TLS stream to
 * the authenticated node, as istiod does with gateway credentials
 * (credentialName) it reads from Kubernetes: whoever can read meshd's
 * memory or impersonate the node's token gets the key.  It exists so an
 * unmodified Envoy bootstrap works without an agent.  Keys are kept per
 * stream (never shared by replicas) and their text is cleansed when freed;
 * the debug views never show Secret contents (ads_debug.c).
 *
 * Threads: ca_sds_want() is the ADS core's secret callback (xDS thread,
 * never blocks: it queues).  A worker thread of this module authenticates,
 * generates and signs, and answers through xds_server_secret_reply().
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_CA_SDS_H
#define MESH_CA_SDS_H

#include "controlplane/ca/ca.h"
#include "controlplane/ca/ca_auth.h"
#include "controlplane/xds/server.h"

#include <stddef.h>
#include <stdint.h>

/* Secret names of one stream looked at; the rest are left out. */
#define CA_SDS_MAX_NAMES 64
/* Largest certificate or key text served from a Kubernetes Secret. */
#define CA_SDS_MAX_PEM_BYTES (256 * 1024)

#define CA_SDS_CERT_NAME "default"
#define CA_SDS_ROOT_NAME "ROOTCA"
#define CA_SDS_K8S_PREFIX "kubernetes://"
#define CA_SDS_CACERT_SUFFIX "-cacert"

/* A Kubernetes Secret's TLS material (PEM text, malloc'd; NULL: absent). */
struct ca_sds_tls {
	char *cert;
	char *key;
	char *cacert;
};

void ca_sds_tls_cleanup(struct ca_sds_tls *t);  /* cleanses the key */

struct ca_sds;

struct ca_sds_config {
	struct ca *ca;                   /* borrowed; outlives the provider */
	struct ca_authenticator *auth;   /* borrowed; outlives the provider */
	int64_t ttl_seconds;             /* "default"'s lifetime; <= 0: the CA's default */
	/* credentialName Secrets (NULL: none are served): Secret name of
	 * namespace ns into *out.  Returns 0, -ENOENT, or another negative
	 * code.  Runs on the worker thread; may block briefly. */
	int (*lookup)(void *ctx, const char *ns, const char *name, struct ca_sds_tls *out);
	void *lookup_ctx;
	/* Where answers go (NULL: xds_server_secret_reply() to the server of
	 * ca_sds_set_server; the unit tests take them here).  Runs on the
	 * worker thread; a reference to set is the callee's to take. */
	void (*reply)(void *ctx, uint64_t stream, uint64_t seq, struct xds_snapshot *set, enum xds_ads_status code,
		      const char *msg);
	void *reply_ctx;
};

MESH_MUST_CHECK int ca_sds_new(const struct ca_sds_config *cfg, struct ca_sds **out);
/* Stop the worker and free; call after xds_server_stop().  NULL is a no-op. */
void ca_sds_free(struct ca_sds *s);
/* Where answers go (before the first stream asks; the server needs the
 * provider's callback first, so it is set after xds_server_start). */
void ca_sds_set_server(struct ca_sds *s, struct xds_server *srv);
/* The core's secret callback (xds_server_config.secret, ctx: the
 * provider): takes ownership of req. */
void ca_sds_want(void *ctx, struct xds_secret_req *req);
/* The served config changed (any thread; NULL is a no-op): streams
 * holding credentialName Secrets are answered again from it, so a
 * rotated Kubernetes Secret reaches them (a Secret unchanged is no push). */
void ca_sds_refresh(struct ca_sds *s);
/* "default" certificates issued so far (tests, debug). */
uint64_t ca_sds_issued(struct ca_sds *s);

#endif
