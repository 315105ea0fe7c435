/*
 * tcpproxy.h - envoy.filters.network.tcp_proxy in meshproxy: a filter
 * chain whose network filter is a TcpProxy copies bytes between the
 * downstream connection and one upstream connection, both ways, as they
 * come (extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto):
 *
 *  - the cluster (or one of weighted_clusters, drawn by weight per
 *    connection), its host picked by the cluster's load balancer (or the
 *    original destination for ORIGINAL_DST clusters), connected within
 *    the cluster's connect_timeout, over TLS when the cluster's
 *    UpstreamTlsContext applies to the host (mtls.h: ISTIO_MUTUAL, auto
 *    mTLS), handshake and SAN check included; a failure closes the
 *    downstream connection (UF; no healthy host: UH) and is an outlier
 *    detection connect failure;
 *  - the cluster's circuit breaker max_connections: past it the
 *    downstream connection is closed at once (UO, upstream_cx_overflow);
 *  - half-close: a FIN from one side is passed on (shutdown(SHUT_WR)) once
 *    what came before it is written; the connection ends when both sides
 *    have finished, or on an error / reset from either;
 *  - backpressure: each direction has a bounded buffer (TCPP_BUF_MAX); a
 *    side is not read while the other has that much unwritten;
 *  - idle_timeout (unset: Envoy's 1 h, 0: off) over bytes either way, and
 *    max_downstream_connection_duration (unset: none);
 *  - one access log line per connection in Envoy's default format with
 *    "-" for the HTTP fields, status 0, the response flags (UF, UO, UH,
 *    NR...), bytes received/sent and the upstream host; the cluster's
 *    upstream_cx_* counters and bytes.
 *
 * Bytes the listener filters already read (sniffing) are handed in and
 * sent upstream first.  The session owns both sockets once started; the
 * downstream transport's context (a terminated TLS session) stays its
 * owner's, who frees it before tcpp_free() closes the socket.
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_TCPPROXY_H
#define MESH_DATAPLANE_TCPPROXY_H

#include "common/err.h"
#include "dataplane/transport.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bytes buffered per direction before the sending side stops being read. */
#define TCPP_BUF_MAX (64 * 1024)
/* Envoy's TcpProxy.idle_timeout when unset: 1 hour. */
#define TCPP_IDLE_DEFAULT_MS (60 * 60 * 1000)

typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster__ClusterWeight tcpp_weight;

/* A TcpProxy filter's settings, compiled once per configuration (strings
 * and weights point into the unpacked filter the configuration keeps). */
struct tcpp_conf {
	const char *stat_prefix;
	const char *cluster;            /* NULL: weighted */
	tcpp_weight *const *wc;         /* weighted_clusters, n_wc of them */
	size_t n_wc;
	uint64_t wc_total;              /* sum of the weights */
	uint64_t idle_ms;               /* 0: off */
	uint64_t max_duration_ms;       /* 0: none */
	int sni_cluster;                /* issue 13: envoy.filters.network.sni_cluster precedes the filter
	                                 * (Istio's AUTO_PASSTHROUGH): the SNI names the cluster (engine.c) */
	const struct px_alog_cfg *alog; /* issue 14: the filter's access_log, or NULL (engine.c's port_alog) */
	const struct istio_stats_cfg *istio; /* issue 14: the chain's istio.stats filter, NULL: no
	                                      * istio_tcp_* series (engine.c port_stats) */
};

/* Issue 13: the cluster an SNI names for sni_cluster into out[cap]: the SNI
 * itself, and Istio's DNS form "outbound_.PORT_.SUBSET_.HOST" (what
 * sidecars send on AUTO_PASSTHROUGH) also as "outbound|PORT|SUBSET|HOST"
 * in alt[cap] ("" when the SNI has not that form). */
void tcpp_sni_cluster_names(const char *sni, char *alt, size_t cap);

/* Fills c from t (Envoy's defaults where a field is unset). */
void tcpp_conf_init(struct tcpp_conf *c, const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *t);

/* The cluster of a new connection: the configured one, or a weighted draw
 * from rnd (weight 0 never drawn); NULL when there is none. */
const char *tcpp_pick_cluster(const struct tcpp_conf *c, uint64_t rnd);

struct engine;
struct px_config;
struct tcpp;

/* What a session needs of its downstream connection. */
struct tcpp_down {
	int fd;                              /* given to the session (closed by tcpp_free) */
	const struct px_transport_ops *tops; /* the downstream transport */
	void *tctx;                          /* its context (NULL for raw) */
	const char *pre;                     /* bytes already read (sniffed): sent first */
	size_t n_pre;
	const struct sockaddr_storage *odst; /* the original destination (ORIGINAL_DST clusters), or NULL */
	socklen_t odst_len;
	void (*done)(void *arg);             /* the session ended: the owner calls tcpp_free() */
	void *arg;
	int inbound;                         /* issue 14: reporter "destination" in Istio's TCP metrics;
	                                      * also the loop guard's side (px_engine_is_loop()) */
	const char *peer_principal;          /* issue 14: the verified peer's SPIFFE id (borrowed for the call), or NULL */
	const char *sni;                     /* issue 13: the ClientHello's SNI (borrowed for the call), or NULL */
	int mx;                              /* issue 14: its mTLS negotiated ALPN "istio-peer-exchange": Istio's
	                                      * TCP metadata exchange runs first (istio_stats.h) */
	const struct px_listener *l;         /* issue 15: the accepting listener and the client's address, for */
	const char *peer_ip;                 /* original_src (px_original_src()); NULL: none */
};

/*
 * Starts proxying the downstream connection d with settings conf on
 * configuration cfg (referenced for the session's life).  Returns 0 and the
 * session in *out; any outcome after that (including an immediate UO/UH/NR
 * refusal) ends with d->done() called from the loop, never from inside
 * tcpp_start.  -ENOMEM: nothing was taken (the caller still owns the fd).
 */
MESH_MUST_CHECK int tcpp_start(struct engine *e, struct px_config *cfg, const struct tcpp_conf *conf,
			       const struct tcpp_down *d, struct tcpp **out);

/* Closes both sockets, writes the access log line, drops the references;
 * NULL is a no-op. */
void tcpp_free(struct tcpp *t);

#endif
