/*
 * engine-t.h - the engine's internal types, shared by engine.c (compile,
 * apply, listeners, admin pages) and proxy.c (connections, streams, pools).
 * Other folders include engine.h only.
 *
 * Lifetimes: a struct px_config is refcounted (the engine holds the current
 * one, each stream the one it started on).  Clusters are refcounted: a
 * config holds one reference per cluster it lists, and an engine-wide
 * table keeps them by name so that the next config reuses the same object
 * (counters and pools carry over).  Hosts are refcounted: the cluster's
 * host vector holds one reference each, an upstream connection or an
 * attempt another; a host dropped by EDS is marked removed, its idle
 * connections are closed and it is freed when its last user lets go.
 */
#ifndef MESH_DATAPLANE_ENGINE_T_H
#define MESH_DATAPLANE_ENGINE_T_H

#include "dataplane/accesslog.h"
#include "dataplane/engine.h"
#include "dataplane/router.h"
#include "dataplane/upstream.h"

#include <netinet/in.h>
#include <sys/socket.h>

struct px_uconn;
struct px_dconn;

/* An intrusive list link (pending requests of a cluster). */
struct px_link {
	struct px_link *next, *prev;
};

struct px_host_stats {
	uint64_t cx_total, cx_active, cx_connect_fail, rq_total, rq_active, rq_error, rq_success, rq_timeout;
};

struct px_host {
	unsigned refs;
	int removed;
	struct px_cluster *cl;           /* holds a reference */
	union {                          /* not a sockaddr_storage: 100 bytes less a host (thousands of them) */
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t alen;
	char name[56];                   /* "IP:PORT", "[IPv6]:PORT" (at most 54 bytes with its NUL) */
	struct px_host_stats st;
	struct px_uconn *idle;           /* idle pooled connections, most recent first */
	unsigned n_idle;
	struct up_host *up;              /* upstream.h's host (LB, health, outlier state); NULL for
	                                  * ORIGINAL_DST destinations and once EDS dropped the host */
};

enum px_cluster_type { PX_CL_STATIC, PX_CL_EDS, PX_CL_ORIGINAL_DST, PX_CL_OTHER };

struct px_cluster_stats {
	uint64_t rq_total, rq_2xx, rq_3xx, rq_4xx, rq_5xx, rq_active, rq_pending_active, rq_pending_overflow;
	uint64_t rq_retry, rq_retry_success, rq_retry_overflow, rq_timeout, rq_per_try_timeout;
	uint64_t cx_total, cx_active, cx_connect_fail, cx_connect_timeout, cx_overflow, cx_destroy;
	uint64_t cx_max_requests, rq_rx_reset, rq_tx_reset;
	uint64_t outlier_ejections_active;
};

struct px_cluster {
	unsigned refs;
	int in_config;                   /* listed by the current config */
	char *name;
	enum px_cluster_type type;
	struct up_cluster *up;           /* the compiled Cluster (lb, outlier, breakers) of the current config */
	struct up_hostset *hs;           /* its hosts (pxlb's upstream.h) */
	struct px_host **hmap;           /* up_host -> px_host, open addressing, hmap_cap a power of two */
	size_t hmap_cap;
	struct ev_timer od_timer;        /* outlier detection's interval sweep */
	struct engine *e;
	uint64_t idle_timeout_ms;        /* upstream idle connections (0: the engine's) */
	uint64_t connect_timeout_ms;
	uint32_t max_requests_per_connection; /* 0: unlimited */
	uint32_t max_connections, max_pending, max_requests, max_retries;
	struct px_host **hosts;          /* one reference each */
	size_t n_hosts, cap_hosts;
	size_t rr;                       /* round-robin cursor (stand-in picker until pxlb merges) */
	struct px_cluster_stats st;
	uint64_t retries_active;
	struct px_link pending;          /* requests waiting for a connection (max_connections reached) */
};

/* An HTTP port of the outbound side: 0.0.0.0_PORT or VIP_PORT. */
struct px_port {
	uint32_t vip;                    /* network order; 0 for 0.0.0.0 */
	uint32_t port;
	const char *route_name;          /* RDS name, "PORT" */
	const struct router_config *rcfg; /* in the config's router (NULL: RDS not there yet -> 404 NR) */
	int tcp;                         /* a TCP proxy listener: no HTTP routing */
	int accept_http_10;              /* the HCM's http_protocol_options.accept_http_10 (else HTTP/1.0 gets 426) */
	const char *tcp_cluster;
};

struct px_config {
	unsigned refs;
	struct engine *e;
	struct px_snapshot *snap;        /* keeps every string the compiled objects point into */
	struct px_port *out_ports, *in_ports;
	size_t n_out_ports, n_in_ports;
	struct router *router;           /* every RDS RouteConfiguration (a reference) */
	struct router **in_routers;      /* inline route configs of virtualInbound's chains, one per chain */
	size_t n_in_routers;
	struct px_cluster **clusters;    /* sorted by name, one reference each */
	size_t n_clusters;
	int has_outbound, has_inbound;
	int allow_any;                   /* virtualOutbound's catch-all is PassthroughCluster */
	ProtobufCMessage **hcms;         /* filter configs unpacked from Anys (inline route configs live there) */
	size_t n_hcms;
	/* compiled in phase one, handed to the clusters in phase two (then NULL) */
	struct up_cluster **new_up;
	struct up_hostset **new_hs;
};

struct px_listener {
	struct engine *e;
	int fd;
	int inbound;
	struct ev_io io;
	struct ev_timer pause;           /* re-arms io after accept ran out of fds (px_accept_cb) */
	int exhausted;                   /* in an fd-exhaustion episode: logged and counted once */
	struct sockaddr_storage local;   /* what the socket is bound to */
	int port;
};

struct px_engine_stats {
	uint64_t cx_total, cx_active, rq_total, rq_active, rq_1xx, rq_2xx, rq_3xx, rq_4xx, rq_5xx;
	uint64_t codec_errors, no_route, no_cluster, applies, apply_rejects;
	uint64_t accept_paused;          /* fd/memory exhaustion episodes at accept */
};

struct engine {
	struct ev_loop *loop;
	struct engine_opts o;
	struct px_config *cur;
	struct px_cluster **ctab;        /* every cluster alive by name (sorted), a reference each */
	size_t n_ctab;
	struct px_listener lout, lin;
	struct px_engine_stats st;
	struct px_alog *alog;
	struct px_dconn *dconns;         /* every downstream connection (drain, free) */
	uint64_t rng;
	int draining;
	int ready;
	struct lb_rng lbrng;
	struct px_gai *gai_orphans;      /* name lookups still running for streams that ended */
	struct ev_timer gai_timer;
	unsigned mirrors_active;
	uint64_t mirrors_sent, mirrors_dropped;
	struct ev_timer drain_timer;
	void (*drain_done)(void *);
	void *drain_arg;
};

/* engine.c */
struct px_config *px_config_ref(struct px_config *c);
void px_config_unref(struct px_config *c);
struct px_cluster *px_config_cluster(const struct px_config *c, const char *name);
void px_host_unref(struct px_host *h);
struct px_host *px_host_ref(struct px_host *h);
/* ORIGINAL_DST: the host for a destination address, made on first use */
struct px_host *px_cluster_dst_host(struct px_cluster *cl, const struct sockaddr_storage *ss, socklen_t len);
/* The engine's host for an upstream.h host of cl, or NULL. */
struct px_host *px_cluster_host_of(const struct px_cluster *cl, const struct up_host *up);
/* Health as /clusters shows it ("healthy", "/failed_outlier_check", ...). */
const char *px_host_health(const struct px_host *h);
uint64_t px_rand(struct engine *e);
void px_engine_check_drained(struct engine *e);

/* proxy.c */
/* The listener pause timer's callback: after accept failed for lack of fds
 * or memory the listener's read interest is dropped for PX_ACCEPT_PAUSE_MS
 * (a level-triggered listener would otherwise spin the loop), as nginx and
 * haproxy do. */
#define PX_ACCEPT_PAUSE_MS 100
void px_accept_resume(struct ev_loop *loop, struct ev_timer *t);
void px_accept_cb(struct ev_loop *loop, struct ev_io *io, unsigned events);
void px_pool_close_idle(struct px_host *h);
void px_dconn_drain_all(struct engine *e);
void px_dconn_free_all(struct engine *e);
void px_gai_reap(struct ev_loop *loop, struct ev_timer *t);

#endif
