/*
 * tls.h - TLS under the HTTP codec (issue 12): an OpenSSL transport with the
 * ops of transport.h ("tls"), plus the contexts the engine builds from
 * Envoy's UpstreamTlsContext / DownstreamTlsContext.
 *
 * Two objects:
 *  - struct px_tls_ctx: an SSL_CTX (certificate, key, roots, ALPN list),
 *    refcounted.  A certificate rotation makes a new one; connections keep
 *    the one they were made with (Envoy's behaviour: new handshakes get the
 *    new secret, established connections are left alone).
 *  - struct px_tls: one connection's SSL over a non-blocking socket.  The
 *    handshake is an explicit step (px_tls_handshake) the owner drives from
 *    its readiness callbacks; afterwards px_transport_tls's read/write move
 *    application bytes with the -EAGAIN semantics of transport.h.
 *
 * Certificates and keys are PEM text in memory (identity.c holds them; file
 * paths of SIMPLE/MUTUAL are read by the caller), so nothing here does file
 * I/O.  Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_TLS_H
#define MESH_DATAPLANE_TLS_H

#include "common/err.h"
#include "dataplane/transport.h"

#include <stddef.h>

/* A downstream TLS connection picks its codec by ALPN (px_dconn_use_h2
 * hands "h2" to h2.c), so "h2" is offered and selected as configured.
 * Upstream, the list is the connection's codec's: mtls.c drops "h2" for an
 * HTTP/1.1 connection and adds it for an HTTP/2 one (px_mtls_ctx_h2).
 * Build with -DPX_TLS_OFFER_H2=0 to keep every TLS connection HTTP/1.1. */
#ifndef PX_TLS_OFFER_H2
#define PX_TLS_OFFER_H2 1
#endif

#define PX_TLS_MAX_ALPN 128 /* bytes of an ALPN list in wire format */

struct px_tls_conf {
	int server;                 /* a downstream (accepting) context */
	const char *chain_pem;      /* certificate chain, leaf first; NULL: none (a SIMPLE client) */
	const char *key_pem;        /* its private key; with chain_pem */
	const char *roots_pem;      /* trusted roots; NULL: the peer's chain is not verified */
	int require_peer_cert;      /* server: require_client_certificate */
	const char *const *alpn;    /* protocols, most preferred first; "h2" dropped unless PX_TLS_OFFER_H2 or h2 */
	size_t n_alpn;
	int h2;                     /* the codec above is HTTP/2 (grpc_client.c): "h2" always kept */
	/* issue 13: the DownstreamTlsContext's tls_params (Gateway
	 * minProtocolVersion / maxProtocolVersion / cipherSuites): versions as
	 * PX_TLS_V1_0..PX_TLS_V1_3, 0 for the default (minimum 1.2, maximum
	 * the library's); ciphers an OpenSSL cipher list for TLS 1.2 and below
	 * (Envoy's names are OpenSSL's), NULL for the default */
	int min_version, max_version;
	const char *ciphers;
};

enum { PX_TLS_V1_0 = 10, PX_TLS_V1_1 = 11, PX_TLS_V1_2 = 12, PX_TLS_V1_3 = 13 };

struct px_tls_ctx;

/* A context from conf.  err gets OpenSSL's reason on failure.  Returns 0,
 * -EINVAL (bad PEM, key not matching the certificate), -ENOMEM. */
MESH_MUST_CHECK int px_tls_ctx_new(const struct px_tls_conf *conf, struct px_tls_ctx **out, char *err,
				   size_t cap);
struct px_tls_ctx *px_tls_ctx_ref(struct px_tls_ctx *c);
void px_tls_ctx_unref(struct px_tls_ctx *c); /* NULL is a no-op */

struct px_tls;

/* One connection over fd (not owned: the caller closes it after
 * px_tls_free).  sni: the server name to send (client; NULL none).  The
 * connection holds a reference on ctx.  -ENOMEM. */
MESH_MUST_CHECK int px_tls_new(struct px_tls_ctx *ctx, int fd, const char *sni, struct px_tls **out);
/* px_tls_new() for a server connection whose first n bytes were read off
 * fd already (the ClientHello the tls_inspector listener filter looked at
 * to select the filter chain, issue 13): OpenSSL reads pre (copied) before
 * the socket.  -ENOMEM. */
MESH_MUST_CHECK int px_tls_new_pre(struct px_tls_ctx *ctx, int fd, const void *pre, size_t n, struct px_tls **out);
/* Sends close_notify (one non-blocking attempt, as Envoy does not wait for
 * the peer's) and frees.  NULL is a no-op. */
void px_tls_free(struct px_tls *t);

/* Advances the handshake: 0 done, -EAGAIN (px_tls_want() says which
 * readiness to wait for), -EPROTO failed (px_tls_error() says why). */
MESH_MUST_CHECK int px_tls_handshake(struct px_tls *t);
/* What a -EAGAIN from the handshake (or read/write) waits for: EV_READ or
 * EV_WRITE as ev.h spells them. */
unsigned px_tls_want(const struct px_tls *t);
const char *px_tls_error(const struct px_tls *t);
/* Non-zero when decrypted bytes are buffered inside OpenSSL (a read will
 * return them without the socket becoming readable again). */
int px_tls_pending(const struct px_tls *t);

/* After the handshake: the peer's first URI SAN (the SPIFFE id; NULL when
 * the peer sent no certificate or it has none), the negotiated ALPN
 * ("" when none) and, on a server, the SNI the client sent (NULL none). */
const char *px_tls_peer_uri(const struct px_tls *t);
/* On a server, the client certificate's other names, borrowed from t: its
 * URI SANs after the first, then its DNS SANs (*n 0: none), which Envoy's
 * RBAC authenticated matcher tries after the first
 * (rbac_request.peer_names).  At most PX_TLS_MAX_PEER_NAMES: a client
 * certificate with more fails the handshake. */
#define PX_TLS_MAX_PEER_NAMES 32
const char *const *px_tls_peer_names(const struct px_tls *t, size_t *n);
const char *px_tls_alpn(const struct px_tls *t);
const char *px_tls_sni(const struct px_tls *t);
/* Envoy's match_subject_alt_names with exact matchers: 0 when one of the
 * peer certificate's URI or DNS SANs equals one of sans[0..n), or n is 0;
 * -EACCES otherwise (and when the peer sent no certificate). */
int px_tls_check_sans(const struct px_tls *t, const char *const *sans, size_t n);

/* Envoy's x-forwarded-client-cert element for this connection's peer:
 * By=<our URI SAN>;Hash=<hex SHA-256 of the peer's DER>;Subject="<peer
 * subject, RFC 2253>";URI=<peer URI SAN> (the fields Istio asks for with
 * set_current_client_cert_details; empty ones left out).  -ENOENT without
 * a peer certificate, -ENOSPC past cap. */
int px_tls_xfcc(const struct px_tls *t, char *out, size_t cap);

/* The transport ops; their ctx is the struct px_tls. */
extern const struct px_transport_ops px_transport_tls;

#endif
