/*
 * server.h - the ADS server: gRPC C core, state of the world and Delta
 * (DeltaAggregatedResources; see server.c).
 *
 * Threads: gRPC core's completion queue runs on a thread of its own that
 * only hands completed operations to the xDS thread over a queue and an
 * eventfd; the xDS thread owns every stream's state (subscriptions, sent
 * and acked versions, nonces) and starts all gRPC operations.  Other
 * threads talk to it through xds_server_publish() and the read-only debug
 * calls below, which take a lock.
 *
 * Versions are content hashes of the resources sent, so unchanged config
 * never reaches a proxy twice, even across a meshd restart.  A NACK is
 * recorded (sync state ERROR with the client's error text) and the same
 * version is not sent again until the config changes.
 *
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_XDS_SERVER_H
#define MESH_XDS_SERVER_H

#include "common/buf.h"
#include "controlplane/xds/resource.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

struct xds_server;
struct model;
struct cfg_labels;

/* The proxy a stream serves, from its first request's Node. */
struct xds_proxy_info {
	const char *id;              /* "sidecar~IP~POD.NS~NS.svc.cluster.local" */
	const char *ns;              /* metadata NAMESPACE, else from the id; NULL when unknown */
	const struct cfg_labels *labels; /* metadata LABELS (string values); never NULL */
};

/* Per-proxy resources: called on the xDS thread (it must not block) for
 * each name a stream subscribes to that the shared snapshot does not hold,
 * with the model last published beside it.  Sets *data (malloc'd; the
 * server frees it) and *len and returns 0, or returns -ENOENT when it
 * knows no such resource, or another negative code.  The results are kept
 * per stream and asked again when the model or the subscription changes. */
typedef int (*xds_resolve_fn)(void *ctx, const struct model *m, const struct xds_proxy_info *proxy,
			      enum xds_type t, const char *name, uint8_t **data, size_t *len);

/* A unary method served beside ADS (the CA's CreateCertificate).  Its
 * calls are bound to cq, which the method's owner creates
 * (grpc_completion_queue_create_for_next), drains on a thread of its own
 * and shuts down only after xds_server_stop().  accept runs on the xDS
 * thread and must not block: it takes ownership of call, of the metadata
 * in *md (the server re-initialises the array) and of payload (NULL when
 * the client sent no message). */
struct xds_server_unary {
	const char *method;          /* "/istio.v1.auth.IstioCertificateService/CreateCertificate" */
	grpc_completion_queue *cq;
	void (*accept)(void *arg, grpc_call *call, grpc_metadata_array *md, grpc_byte_buffer *payload);
	void *arg;
};

struct xds_server_config {
	const char *addr;            /* "0.0.0.0:15010" */
	/* A second, TLS port serving the same ADS (and the unary method);
	 * NULL: none.  secure_creds is borrowed for the call. */
	const char *secure_addr;     /* "0.0.0.0:15012" */
	grpc_server_credentials *secure_creds;
	const struct xds_server_unary *unary; /* NULL: none */
	xds_resolve_fn resolve;      /* NULL: the shared snapshot only */
	void *resolve_ctx;
	/* A response the client has not taken within this many milliseconds
	 * (HTTP/2 flow control holding it: a stuck or very slow proxy) ends the
	 * stream with UNAVAILABLE, so the proxy reconnects and resyncs instead of
	 * pinning memory.  0: XDS_SEND_TIMEOUT_MS. */
	int send_timeout_ms;
};

#define XDS_SEND_TIMEOUT_MS 30000

int xds_server_start(const struct xds_server_config *cfg, struct xds_server **out);
/* Port actually bound (useful with ":0"). */
int xds_server_port(const struct xds_server *s);
/* The TLS port bound, or 0 when there is none. */
int xds_server_secure_port(const struct xds_server *s);
/* Stop accepting, cancel streams, join threads, free. NULL is a no-op. */
void xds_server_stop(struct xds_server *s);

/* Hand the server a new snapshot for proxyless clients (takes a reference).
 * Streams whose subscribed resources changed get a push. */
void xds_server_publish(struct xds_server *s, struct xds_snapshot *proxyless);
/* The same, with the model the snapshot came from (takes a reference; the
 * resolver gets it); per-proxy resources are rebuilt from it. */
void xds_server_publish_model(struct xds_server *s, struct xds_snapshot *proxyless, struct model *m);

/* Debug views, as JSON into out (thread-safe). */
int xds_server_syncz(struct xds_server *s, struct mesh_buf *out);
/* What proxy_id was last sent, per type, as Envoy-style config dump JSON.
 * Returns -ENOENT when no such proxy is connected. */
int xds_server_config_dump(struct xds_server *s, const char *proxy_id, struct mesh_buf *out);
/* Number of connected streams. */
int xds_server_connected(struct xds_server *s);

#endif
