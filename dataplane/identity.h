/*
 * identity.h - meshproxy's workload identity (issue 12): a certificate from
 * meshd's CA, renewed before it expires, and the TLS contexts made from it.
 *
 * What Istio's agent (pilot-agent's SDS server) does for Envoy, in the
 * proxy's own loop: a private key made here (EC P-256, Istio's default) that
 * never leaves the process, a CSR sent to
 * istio.v1.auth.IstioCertificateService/CreateCertificate on meshd's 15012
 * over TLS (grpc_client.c with the root from --root-cert verifying meshd),
 * authenticated by "authorization: Bearer TOKEN" with the service-account
 * token file (Istio: ./var/run/secrets/tokens/istio-token); the CA puts the
 * caller's SPIFFE id in the certificate.  Renewal at half the lifetime
 * (Istio's SECRET_GRACE_PERIOD_RATIO 0.5); a failed request is retried with
 * backoff (1 s doubling to 30 s), the old certificate serving meanwhile.
 * A new certificate bumps the generation: users make new TLS contexts from
 * it for new handshakes, connections keep the context they were made with.
 *
 * Not on the data path but on the loop: the token file read and the key
 * generation (one P-256 key and one signature, tens of microseconds) happen
 * once per renewal.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_IDENTITY_H
#define MESH_DATAPLANE_IDENTITY_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/ev.h"
#include "dataplane/tls.h"

#include <stdint.h>

struct px_identity_opts {
	const char *ca_addr;      /* meshd's CA, numeric HOST:PORT (15012) */
	const char *root_pem;     /* the trusted root (copied) */
	const char *token_file;   /* the bearer token, read at each request */
	const char *server_name;  /* SNI / :authority to meshd (default istiod.istio-system.svc) */
	uint64_t ttl_s;           /* requested validity (the CA clamps it); 0: 24 h */
};

struct px_identity;

/* Starts fetching the first certificate on loop (nothing blocks here).
 * -EINVAL (ca_addr not numeric, root not PEM), -ENOMEM. */
MESH_MUST_CHECK int px_identity_new(struct ev_loop *loop, const struct px_identity_opts *o,
				    struct px_identity **out);
void px_identity_free(struct px_identity *id); /* NULL is a no-op */

/* Bumped by every certificate installed; 0 until the first. */
unsigned px_identity_generation(const struct px_identity *id);

/*
 * A TLS context with the current certificate and key, trusting the root:
 * server (an inbound DownstreamTlsContext with require_client_certificate
 * as given) or client (an ISTIO_MUTUAL cluster).  -EAGAIN before the first
 * certificate, else px_tls_ctx_new()'s codes.  The caller owns the
 * reference.
 */
MESH_MUST_CHECK int px_identity_tls_ctx(const struct px_identity *id, int server, int require_peer_cert,
					const char *const *alpn, size_t n_alpn, struct px_tls_ctx **out);

/* Admin /certs (Envoy's shape, simplified): {"certificates": [{"ca_cert":
 * [...], "cert_chain": [...]}]} with each certificate's path ("SDS default"
 * / "SDS ROOTCA"), serial_number, subject_alt_names [{"uri": ...}],
 * days_until_expiration, valid_from, expiration_time (RFC 3339); plus the
 * identity's "generation" and "last_error". */
void px_identity_certs_json(const struct px_identity *id, struct mesh_buf *b);

/* Admin /config_dump's secrets, as Envoy dumps what SDS sent it: one
 * envoy.admin.v3.SecretsConfigDump object (no trailing comma or newline)
 * with dynamic_active_secrets "default" (tls_certificate: the chain, the
 * private key "[redacted]" as Envoy redacts it) and "ROOTCA"
 * (validation_context: the root), empty before the first certificate.
 * istioctl / meshctl proxy-config secrets read it.  Errors land in b->err. */
void px_identity_secrets_dump(const struct px_identity *id, struct mesh_buf *b);
/* The same, with more entries after the identity's (issue 13: the secret
 * store's, sds.h): more(ctx, b, first) writes them (first: nothing before,
 * no leading comma) and returns how many.  id may be NULL. */
void px_identity_secrets_dump_with(const struct px_identity *id, struct mesh_buf *b,
				   size_t (*more)(void *ctx, struct mesh_buf *b, int first), void *ctx);

/*
 * issue 13: what meshproxy presents on its ADS stream to meshd's 15012
 * (DESIGN.md: "15012 over TLS once it has an identity"): *tls a client
 * context (ALPN h2) trusting the root, with the workload certificate once
 * there is one (meshd's ClientCertAuthenticator), and *auth "Bearer
 * TOKEN" from the token file (meshd's JWT authenticator; malloc'd, NULL
 * when the file cannot be read).  Read at each call, so a rotated
 * certificate is the next connection's.  The caller owns both.  -EINVAL
 * (id NULL), px_tls_ctx_new()'s codes.
 */
MESH_MUST_CHECK int px_identity_xds_tls(const struct px_identity *id, struct px_tls_ctx **tls, char **auth);

#endif
