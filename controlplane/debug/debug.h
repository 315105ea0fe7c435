/*
 * debug.h - meshd's HTTP endpoint (--http-addr, default 15014):
 *   /ready                  200 once every config source has synced, else 503
 *   /version                build version as JSON
 *   /metrics                Prometheus text (metrics.h)
 *   /debug/syncz            per proxy, per type: sent/acked version, nonce, SYNCED|STALE|NOT SENT|ERROR
 *   /debug/configz          every config object and every validation error
 *   /debug/config_dump?proxyID=ID   what that proxy was sent, as JSON
 *   /debug/registryz        services, ports and endpoints of the model
 *   /debug/telemetryz?proxyID=ID (or ?namespace=NS&labels=k=v,...)  the
 *                           workload's effective Telemetry (model/telemetry.h)
 *   /debug                  the list of /debug endpoints, as JSON
 * /debug and /debug/... answer only callers on localhost (403 otherwise), as
 * istiod's ENABLE_DEBUG_ON_HTTP does for callers it cannot authenticate.
 * Served by libmicrohttpd on threads of its own; every handler reads
 * immutable snapshots or takes the owner's lock, never blocks the xDS thread.
 */
#ifndef MESH_DEBUG_H
#define MESH_DEBUG_H

#include <stdbool.h>
#include <stddef.h>

/* Cap on one response body; past it the request gets a 500. */
#define DEBUG_MAX_RESPONSE_BYTES ((size_t)64 << 20)

struct cfg_snapshot;
struct model;
struct xds_server;
struct debug_server;

struct debug_server_config {
	const char *addr;            /* "0.0.0.0:15014" */
	const char *version;         /* build version text */
	struct xds_server *xds;
	void *ctx;
	/* Each returns a new reference (caller unrefs) or NULL. */
	struct cfg_snapshot *(*config_snapshot)(void *ctx);
	struct model *(*model)(void *ctx);
	bool (*ready)(void *ctx);
	size_t max_response_bytes;   /* 0: DEBUG_MAX_RESPONSE_BYTES */
};

/* Returns 0 or a negative code (-EADDRINUSE, -EINVAL for a bad address). */
int debug_server_start(const struct debug_server_config *cfg, struct debug_server **out);
int debug_server_port(const struct debug_server *d);
void debug_server_stop(struct debug_server *d);  /* NULL is a no-op */

#endif
