/*
 * engine.h - meshproxy's proxy engine: the compiled configuration
 * (listeners, routers, clusters with their hosts and connection pools) and
 * the HTTP/1.1 data path that runs on it (DESIGN.md: listener -> transport
 * -> codec -> filters -> router -> cluster -> pool -> transport ->
 * endpoint).
 *
 * One engine per process, on the proxy's loop thread.  engine_apply()
 * compiles a candidate snapshot whole and swaps it in between requests: a
 * request keeps the compiled configuration it started with (refcounted),
 * the next one takes the new one; hosts and their pools and counters carry
 * over from one configuration to the next by cluster name and address.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_ENGINE_H
#define MESH_DATAPLANE_ENGINE_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/ev.h"
#include "dataplane/snapshot.h"

#include <stddef.h>
#include <stdint.h>

struct engine;

#define ENGINE_OFF UINT64_MAX /* a timeout turned off where 0 means the default */

struct engine_opts {
	const char *outbound_addr; /* virtualOutbound's socket (--outbound-addr, default 0.0.0.0:15001) */
	const char *inbound_addr;  /* virtualInbound's (--inbound-addr, default 0.0.0.0:15006) */
	const char *access_log;    /* NULL or "": off; "-": stdout; else a file path (appended); every
	                            * request, besides the config's access_log (accesslog.h) */
	uint64_t drain_ms;         /* drain period on SIGTERM (--drain-duration; 0: 5 s) */
	int exit_on_zero;          /* end the drain once no connection is left (Istio's
	                            * EXIT_ON_ZERO_ACTIVE_CONNECTIONS); 0: the whole period,
	                            * as Istio's agent waits terminationDrainDuration */
	uint64_t idle_ms;          /* downstream idle timeout where the HCM sets none (0: 1 h, Envoy's) */
	uint64_t pool_idle_ms;     /* upstream idle connection timeout (0: 60 s) */
	/* issue 14: Istio's standard metrics and metadata exchange (istio_stats.h)
	 * for this node; node_id NULL: off */
	const char *node_id, *labels, *service_account; /* also the Istio tags of trace spans (tracing.h) */
	int router;                /* issue 13: node type router (main.c, --node-id router~...): a gateway
	                            * binds its LDS listeners only, never virtualOutbound/virtualInbound */
	const char *workload_name; /* NULL or "": the pod's name from node_id (istio_stats_set_workload) */
	/* issue 16: limits of the downstream side, every listener the engine
	 * binds (virtualOutbound/virtualInbound, per-port and gateway ones) */
	uint64_t headers_ms;       /* request_headers_timeout where the HCM sets none, also before the
	                            * port is known (a request sent straight to 15001): from a head's
	                            * first byte to its end, else 408 (--request-headers-timeout); 0 off */
	uint64_t stream_idle_ms;   /* stream_idle_timeout where the HCM sets none (--stream-idle-timeout):
	                            * 0 Envoy's 5 min, ENGINE_OFF off */
	uint64_t request_ms;       /* request_timeout where the HCM sets none (--request-timeout): the
	                            * whole request received within it of its start, else 408 (Envoy's
	                            * default: 0, off) */
	uint32_t max_connections;  /* per listener (--max-connections, Envoy's runtime
	                            * envoy.resource_limits.listener.NAME.connection_limit): past it a new
	                            * connection is closed at accept (downstream_cx_overflow); 0 none */
	uint32_t global_max_connections; /* all the engine's listeners together (--global-downstream-max-
	                            * connections, Envoy's overload global_downstream_max_connections):
	                            * downstream_global_cx_overflow; 0 none */
};

/* A new engine on loop; nothing is bound before a snapshot names
 * listeners.  *out is freed with engine_free(). */
MESH_MUST_CHECK int engine_new(struct ev_loop *loop, const struct engine_opts *o, struct engine **out);
/* Closes listeners and every connection; NULL is a no-op. */
void engine_free(struct engine *e);

/*
 * Compiles candidate (sidecar flavour: virtualOutbound/virtualInbound,
 * 0.0.0.0_PORT and VIP_PORT listeners with an HTTP connection manager over
 * RDS, route configurations, clusters and their load assignments) and, if
 * it is valid whole, makes it current.  Listeners, as Envoy does:
 * virtualOutbound/virtualInbound on the engine_opts addresses; every other
 * Listener whose bind_to_port is not false gets a socket of its own on its
 * address, served by its own filter chain (captureMode NONE, gateways).  A
 * listener whose address is unchanged keeps its socket; new ones are bound
 * before the swap (so a bind failure changes nothing); removed ones stop
 * accepting and their connections drain.  The candidate is referenced, not
 * stolen.  Returns 0, or a negative code with a reason in err (the xDS
 * client NACKs with it; the current configuration stays): -EINVAL (invalid
 * resources, duplicate listener addresses), -ENOMEM, or a bind error
 * (-EADDRINUSE, -EACCES: "Error adding/updating listener(s) NAME: cannot
 * bind '127.0.0.1:8080': Address already in use", Envoy's words).
 */
MESH_MUST_CHECK int engine_apply(struct engine *e, struct px_snapshot *candidate, char *err, size_t cap);

/* Non-zero once a configuration has been applied (admin /ready); the
 * pointer form stays valid for the engine's life (struct admin_info). */
int engine_ready(const struct engine *e);
/* issue 13: non-zero once every STRICT_DNS / LOGICAL_DNS cluster of the
 * current configuration has been resolved (or has failed) once, latched
 * after the first time: Envoy's initial cluster warming, before which the
 * server is not LIVE (admin's warming callback; later clusters warm while
 * the proxy stays ready).  Bounded: a lookup gives up after
 * DNS_TIMEOUT_MS. */
int engine_dns_warmed(struct engine *e);
const int *engine_ready_flag(const struct engine *e);
/* Non-zero once engine_drain() ran; valid for the engine's life (admin
 * /ready and /healthz/ready answer 503 then). */
const int *engine_draining_flag(const struct engine *e);
/* Envoy's access log reopen (SIGUSR1, admin POST /reopen_logs): every
 * access log file is opened again by its path, for rotation by rename
 * (px_alog_sinks_reopen).  0, or a negative errno with err saying which
 * file failed (it keeps its old one). */
int engine_reopen_logs(struct engine *e, char *err, size_t cap);
/* The bound ports of virtualOutbound / virtualInbound, or -ENOTCONN. */
int engine_outbound_port(const struct engine *e);
int engine_inbound_port(const struct engine *e);
/* The port the bound listener named name (a Listener resource with a socket
 * of its own: bind_to_port not false, e.g. captureMode NONE's
 * 127.0.0.1_PORT) listens on, or -ENOENT. */
int engine_listener_port(const struct engine *e, const char *name);

/*
 * Declares a socket the process listens on outside the engine (the admin,
 * status and health ports), so that no request is ever proxied to it:
 * addr is the flag's "HOST:PORT" / "[V6]:PORT" (its port ignored), port the
 * bound port.  Returns 0, -EINVAL for a malformed addr, or -ENOMEM.
 */
MESH_MUST_CHECK int engine_self_add(struct engine *e, const char *addr, int port);

/* The engine's counters for the text /stats page ("name: value" lines):
 * the RBAC filters' allowed/denied/shadow_* (dataplane/authz.h); issue
 * 16's limits: http.meshproxy.downstream_{cx_idle,rq_header,rq_idle}_timeout
 * and each listener's listener.ADDRESS.downstream_cx_{active,overflow,
 * total} and downstream_global_cx_overflow (ADDRESS with '_' for its
 * last ':', Envoy's). */
void engine_stats_text(struct engine *e, struct mesh_buf *out);

/*
 * Admin pages the engine owns, Envoy's shapes: "/clusters" (text lines
 * CLUSTER::IP:PORT::stat::value), "/listeners" (NAME::IP:PORT per bound
 * socket, virtualOutbound/virtualInbound included) and "/stats/prometheus"
 * (Envoy's metric names, envoy_listener_downstream_cx_total per listener
 * address among them).  Appends the body to out; returns 0, or -ENOENT for a path the
 * engine does not serve.
 */
MESH_MUST_CHECK int engine_admin_page(struct engine *e, const char *path, size_t plen, struct mesh_buf *out,
				      const char **content_type);

/* The ADS connection's counters (xds_client_stats()->cx), shown on
 * /stats/prometheus as Envoy's static cluster "xds-grpc"
 * (envoy_cluster_upstream_cx_*{cluster_name="xds-grpc"}); borrowed, must
 * outlive the engine; NULL: no such row. */
struct grpc_client_stats;
void engine_set_xds_stats(struct engine *e, const struct grpc_client_stats *st);

/* issue 12: the workload certificate (identity.h) the engine's TLS
 * policies use (ISTIO_MUTUAL clusters, inbound mTLS) and /certs shows;
 * borrowed, must outlive the engine; NULL: none (TLS that needs it fails). */
struct px_identity;
void engine_set_identity(struct engine *e, struct px_identity *id);

/*
 * Graceful drain (SIGTERM), as Istio's agent drains Envoy (admin
 * drain_listeners?inboundonly&graceful, then terminationDrainDuration):
 * outbound keeps accepting and proxying as before, so the application can
 * finish its calls; inbound keeps accepting, but its idle connections are
 * closed and every inbound response carries "connection: close" so
 * clients move away; /ready and /healthz/ready answer 503.  done(arg) is
 * called once no downstream connection and no request is left, or when
 * the drain period (engine_opts.drain_ms) ends.
 */
void engine_drain(struct engine *e, void (*done)(void *arg), void *arg);

#endif
