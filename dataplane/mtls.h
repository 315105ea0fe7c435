/*
 * mtls.h - Envoy's TLS transport sockets as meshproxy applies them (issue
 * 12): an UpstreamTlsContext on a cluster (transport_socket, or the
 * tlsMode-istio entry of transport_socket_matches that meshd emits for auto
 * mTLS) and a DownstreamTlsContext on an inbound filter chain, compiled
 * into policies; each policy makes its px_tls_ctx on first use and again
 * when the workload certificate changes (identity.h's generation), so new
 * handshakes take a rotated certificate while open connections keep theirs.
 *
 * Certificates: the SDS secrets "default" (key and chain) and "ROOTCA"
 * (validation context) name the workload identity (ISTIO_MUTUAL, inbound
 * mTLS); DataSource files or inline PEM (DestinationRule SIMPLE / MUTUAL)
 * are read when the configuration is compiled.  Any other SDS name (issue
 * 13: credentialName, "kubernetes://NAME" and "kubernetes://NAME-cacert")
 * is looked up in the process's secret store (sds.h, px_sds_default())
 * each time a context is wanted: a context is made again when that
 * secret's generation moved, so a rotated Secret reaches new handshakes
 * while open connections keep theirs; a secret not received yet is
 * -EAGAIN, as a missing workload certificate is.  A context mixing the
 * workload identity with a named secret is refused when compiled.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_MTLS_H
#define MESH_DATAPLANE_MTLS_H

#include "common/err.h"
#include "dataplane/identity.h"
#include "dataplane/tls.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define PX_MTLS_MAX_ALPN 8
#define PX_MTLS_MAX_SANS 16

struct px_mtls {
	int server;
	int sds;                         /* certificate from the workload identity (SDS "default") */
	int sds_roots;                   /* roots from the workload identity (SDS "ROOTCA") */
	int require_peer_cert;           /* downstream: require_client_certificate */
	int only_tls_istio;              /* upstream from transport_socket_matches: hosts with tlsMode istio only */
	char *sni;                       /* upstream: the SNI to send (owned), or NULL */
	char **sans;                     /* exact SANs the peer must carry (owned, n_sans of them; at most
	                                  * PX_MTLS_MAX_SANS; sized to fit: a sidecar holds ~1,000 of these) */
	size_t n_sans;
	const char **alpn;               /* owned array, n_alpn (at most PX_MTLS_MAX_ALPN); Istio's protocol
	                                  * names point to static strings, any other is owned */
	size_t n_alpn;
	char *chain_pem, *key_pem, *roots_pem; /* from files / inline (owned), when not SDS */
	/* issue 13: SDS names other than default/ROOTCA (owned; NULL: none),
	 * whose texts come from the secret store (sds.h) when a context is made */
	char *sds_cert;                  /* tls_certificate_sds_secret_configs[0].name */
	char *sds_ca;                    /* validation_context_sds_secret_config.name */
	uint64_t ctx_named;              /* store generations (cert << 32 | ca) ctx was made from */
	uint64_t ctx_h2_named;           /* store generations ctx_h2 was made from */
	struct px_tls_ctx *ctx;          /* made lazily (px_mtls_ctx) */
	unsigned ctx_gen;                /* identity generation ctx was made from */
	struct px_tls_ctx *ctx_h2;       /* upstream, for HTTP/2 connections: made lazily (px_mtls_ctx_h2) */
	unsigned ctx_h2_gen;             /* identity generation ctx_h2 was made from */
	/* issue 13: CommonTlsContext.tls_params (px_tls_conf's meaning; 0 / NULL: defaults) */
	int min_version, max_version;
	char *ciphers;                   /* colon-separated (owned) */
};

struct px_host;

/* A cluster's policy: *out NULL when its connections are plaintext.
 * -EINVAL with err set for a context that does not decode, a file that
 * cannot be read, a matcher that is not exact (not supported yet). */
MESH_MUST_CHECK int px_mtls_cluster(const Envoy__Config__Cluster__V3__Cluster *c, struct px_mtls **out, char *err,
				    size_t cap);
/* A filter chain's policy (its transport_socket): *out NULL when plaintext. */
MESH_MUST_CHECK int px_mtls_chain(const Envoy__Config__Listener__V3__FilterChain *fc, struct px_mtls **out,
				  char *err, size_t cap);
void px_mtls_free(struct px_mtls *m); /* NULL is a no-op */

/* The policy's context for a new connection (borrowed: take a reference
 * to keep it).  -EAGAIN when it needs the workload certificate or a named
 * secret and there is none yet (a connection failure: Envoy's cluster
 * would not be warm). */
MESH_MUST_CHECK int px_mtls_ctx(struct px_mtls *m, const struct px_identity *id, struct px_tls_ctx **out);
/* The same for an upstream connection whose codec is HTTP/2 (h2.c).  The
 * ALPN list is the connection's codec's, as Istio's ALPN override makes
 * it: px_mtls_ctx's client list has "h2" taken out (an HTTP/1.1 codec must
 * not let the server pick h2), this one has "h2" added when the cluster's
 * list lacks it (h2UpgradePolicy UPGRADE, useClientProtocol). */
MESH_MUST_CHECK int px_mtls_ctx_h2(struct px_mtls *m, const struct px_identity *id, struct px_tls_ctx **out);
/* After px_mtls_ctx's -EAGAIN: what m still waits for, for a log line
 * (a static string or a name m owns): the SDS secret's name (e.g.
 * "kubernetes://NAME", a Gateway's credentialName meshd did not send) or
 * "the workload certificate".  An operator who reads "no certificate"
 * looks at the wrong thing when it is a named secret that is missing. */
const char *px_mtls_waiting_for(const struct px_mtls *m, const struct px_identity *id);

/*
 * The upstream TLS policy for a new connection to h, shared by proxy.c's
 * HTTP/1.1 connections and h2.c's HTTP/2 ones (h2: which codec, for the
 * ALPN list): *out NULL when h's cluster has no UpstreamTlsContext or,
 * under auto mTLS, h's metadata is not tlsMode istio; else a TLS
 * connection over fd (not owned) with the cluster's SNI, handshake not
 * started.  A negative code (logged) is a connect failure: -EAGAIN when
 * the workload certificate is not there yet.
 */
MESH_MUST_CHECK int px_mtls_upstream_new(struct px_host *h, const struct px_identity *id, int fd, int h2,
					 struct px_tls **out);
/* Advances t's handshake (see px_tls_handshake) and, once it is done,
 * checks the peer against the cluster's SANs (Envoy's
 * match_subject_alt_names): 0 done, -EAGAIN, -EACCES (wrong identity) or
 * -EPROTO (handshake failed), logged with h's name.  Either failure is a
 * connect failure for the caller (UF, connect-failure retries, outlier). */
MESH_MUST_CHECK int px_mtls_upstream_step(const struct px_host *h, struct px_tls *t);

#endif
