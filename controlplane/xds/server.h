/*
 * server.h - the ADS server: gRPC C core, state of the world.
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

struct xds_server;

struct xds_server_config {
	const char *addr;            /* "0.0.0.0:15010" */
	/* later: TLS credentials for the secure port */
};

int xds_server_start(const struct xds_server_config *cfg, struct xds_server **out);
/* Port actually bound (useful with ":0"). */
int xds_server_port(const struct xds_server *s);
/* Stop accepting, cancel streams, join threads, free. NULL is a no-op. */
void xds_server_stop(struct xds_server *s);

/* Hand the server a new snapshot for proxyless clients (takes a reference).
 * Streams whose subscribed resources changed get a push. */
void xds_server_publish(struct xds_server *s, struct xds_snapshot *proxyless);

/* Debug views, as JSON into out (thread-safe). */
int xds_server_syncz(struct xds_server *s, struct mesh_buf *out);
/* What proxy_id was last sent, per type, as Envoy-style config dump JSON.
 * Returns -ENOENT when no such proxy is connected. */
int xds_server_config_dump(struct xds_server *s, const char *proxy_id, struct mesh_buf *out);
/* Number of connected streams. */
int xds_server_connected(struct xds_server *s);

#endif
