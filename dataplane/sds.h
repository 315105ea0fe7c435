/*
 * sds.h - meshproxy's secret store (issue 13): the Secrets meshd sends
 * over ADS (type envoy.extensions.transport_sockets.tls.v3.Secret), by
 * name, for the TLS contexts that name them through SdsSecretConfig
 * (mtls.c): a Gateway's credentialName ("kubernetes://NAME"), a
 * DestinationRule's credentialName ("kubernetes://NAME" and
 * "kubernetes://NAME-cacert"), or any other name.  "default" and "ROOTCA"
 * are not kept here: they are the workload identity (identity.c), made
 * locally and never sent by meshd to meshproxy.
 *
 * What Envoy's SecretManager / SdsApi do, cut to what meshproxy needs:
 *  - a Secret holds a tls_certificate (certificate chain + private key,
 *    inline PEM) or a validation_context (trusted_ca, inline PEM); a
 *    Secret that is neither, a DataSource that is a file (meshd never
 *    sends one; reading it would be file I/O on the loop), or PEM that does
 *    not parse (a key that does not match its certificate) rejects the
 *    whole update (NACK), and the store stays as it was;
 *  - each name has a generation, taken from one counter of the store, that
 *    changes whenever its content changes (never when meshd sends the same
 *    bytes again), so a TLS policy that made its context from generation G
 *    knows to make a new one (new handshakes take the new certificate, open
 *    connections keep the context they hold a reference on);
 *  - one store per process, as Envoy has one SecretManager per server:
 *    px_sds_set_default() installs it (main.c), and the TLS policies that
 *    name a secret look it up there when they make a context.
 *
 * Contents never leave the store in logs or admin pages: the dump shows
 * the name, version, serial number and expiry, and "[redacted]" for the
 * key, as Envoy's config_dump does.
 *
 * Everything runs on the proxy's loop.  Functions return 0 or a negative
 * errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_SDS_H
#define MESH_DATAPLANE_SDS_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/snapshot.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"

#include <stddef.h>

#define PX_SDS_CERT_NAME "default" /* identity.c's, never stored here */
#define PX_SDS_ROOT_NAME "ROOTCA"  /* identity.c's, never stored here */
#define PX_SDS_MAX_PEM (256u * 1024) /* a certificate, key or CA bundle; meshd's own cap (ca_sds.h) */

struct px_sds;

/* One secret, borrowed from the store: valid until the next
 * px_sds_update() / px_sds_retain() (the loop: no longer than a call). */
struct px_sds_secret {
	const char *name;
	const char *chain_pem; /* tls_certificate: chain, leaf first; NULL for a validation context */
	const char *key_pem;   /* tls_certificate: its key */
	const char *ca_pem;    /* validation_context: trusted CAs; NULL for a certificate */
	unsigned generation;   /* > 0; changes with the content */
};

MESH_MUST_CHECK int px_sds_new(struct px_sds **out); /* -ENOMEM */
void px_sds_free(struct px_sds *s);                    /* NULL is a no-op; keys are cleansed */

/* The process's store (NULL before main installs one: no secret by name
 * is ever found then).  Borrowed: main frees it after the engine. */
void px_sds_set_default(struct px_sds *s);
struct px_sds *px_sds_default(void);

/* Non-zero for the names identity.c serves ("default", "ROOTCA"). */
int px_sds_is_identity(const char *name);

/*
 * Adds or replaces the Secrets v[0..n) (resources of type XDS_SECRET, as
 * the xDS client holds them).  All are checked before any is stored: on
 * failure (-EINVAL with err set: not a Secret, neither kind, a file
 * DataSource, bad PEM, a key not matching; -ENOMEM) nothing changes.  A
 * secret whose bytes did not change keeps its generation.
 */
MESH_MUST_CHECK int px_sds_update(struct px_sds *s, const struct px_resource *const *v, size_t n, char *err,
				  size_t cap);
/*
 * Checks one Secret as px_sds_update() would, storing nothing: 0, or
 * -EINVAL with err set (-ENOMEM).  The xDS client uses it to leave a bad
 * Secret out of an update (its last good version stays) instead of
 * rejecting every other Secret with it, as Envoy's per-secret SDS
 * subscriptions do (issue 13, gwbrk).
 */
MESH_MUST_CHECK int px_sds_check(const struct px_sds *s, const struct px_resource *r, char *err, size_t cap);
/* Drops the secrets whose names are not among v[0..n) (what the xDS
 * client no longer holds once an update is applied). */
void px_sds_retain(struct px_sds *s, const struct px_resource *const *v, size_t n);

/* The secret called name, or NULL (s NULL: NULL). */
const struct px_sds_secret *px_sds_get(const struct px_sds *s, const char *name);
/* Its generation; 0 when absent. */
unsigned px_sds_generation(const struct px_sds *s, const char *name);
/* How many secrets are held. */
size_t px_sds_count(const struct px_sds *s);

/*
 * The secret names a listener's filter chains (transport_socket with a
 * DownstreamTlsContext) or a cluster's transport_socket /
 * transport_socket_matches (UpstreamTlsContext) reference through
 * SdsSecretConfig (tls_certificate_sds_secret_configs,
 * validation_context_sds_secret_config, and the combined validation
 * context's), identity names left out: cb(ctx, name) for each (maybe twice
 * for one name).  cb's negative return stops the walk and is returned; a
 * context that does not decode is -MESH_EPARSE.
 */
typedef int (*px_sds_name_cb)(void *ctx, const char *name);
MESH_MUST_CHECK int px_sds_listener_names(const Envoy__Config__Listener__V3__Listener *l, px_sds_name_cb cb,
					  void *ctx);
MESH_MUST_CHECK int px_sds_cluster_names(const Envoy__Config__Cluster__V3__Cluster *c, px_sds_name_cb cb,
					 void *ctx);
/* The same from an encoded Listener / Cluster (what the xDS client holds):
 * only the transport sockets' TLS contexts are decoded, the rest of the
 * message is skipped over on the wire (a mesh's clusters nearly all carry
 * an auto-mTLS socket; decoding each whole on every CDS update would cost
 * more than the update).  -MESH_EPARSE for bytes that are not a message. */
MESH_MUST_CHECK int px_sds_cluster_names_bytes(const uint8_t *b, size_t len, px_sds_name_cb cb, void *ctx);
MESH_MUST_CHECK int px_sds_listener_names_bytes(const uint8_t *b, size_t len, px_sds_name_cb cb, void *ctx);

/* The store's entries of an envoy.admin.v3.SecretsConfigDump's
 * dynamic_active_secrets: ",\n    {...}" per secret (so they follow the
 * identity's; first non-zero: no leading comma before the first), with
 * name, version_info, last_updated and the secret with its key
 * "[redacted]" and each certificate as {serial_number, expiration_time}
 * instead of its PEM.  Returns how many were written. */
size_t px_sds_dump_entries(const struct px_sds *s, struct mesh_buf *b, int first);

#endif
