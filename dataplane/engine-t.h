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
#include "dataplane/authz.h"
#include "dataplane/engine.h"
#include "dataplane/fcmatch.h"
#include "dataplane/router.h"
#include "dataplane/tracing.h"
#include "dataplane/tcpproxy.h"
#include "dataplane/upstream.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"

#include <netinet/in.h>
#include <sys/socket.h>

struct px_uconn;
struct px_dconn;
struct px_sel;
struct px_mtls;
struct px_identity;
struct dnscl;
struct dns_resolver;

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
	int used;                        /* ORIGINAL_DST: picked since the last cleanup sweep */
};

enum px_cluster_type { PX_CL_STATIC, PX_CL_EDS, PX_CL_ORIGINAL_DST, PX_CL_OTHER };

struct px_cluster_stats {
	uint64_t rq_total, rq_2xx, rq_3xx, rq_4xx, rq_5xx, rq_active, rq_pending_active, rq_pending_overflow;
	uint64_t rq_retry, rq_retry_success, rq_retry_overflow, rq_timeout, rq_per_try_timeout;
	uint64_t cx_total, cx_active, cx_connect_fail, cx_connect_timeout, cx_overflow, cx_destroy;
	uint64_t cx_max_requests, cx_max_duration_reached, rq_rx_reset, rq_tx_reset;
	uint64_t outlier_ejections_active;
	uint64_t cx_rx_bytes, cx_tx_bytes; /* upstream_cx_rx/tx_bytes_total: counted by tcpproxy.c */
	/* Envoy's tcp.STAT_PREFIX.* of the TcpProxy filters whose stat_prefix
	 * names this cluster (Istio's: the destination cluster), tcpproxy.c */
	uint64_t tcp_cx_total, tcp_cx_active, tcp_rx_bytes, tcp_tx_bytes, tcp_idle_timeout, tcp_max_duration;
	/* issue 13: Envoy's update_* of a DNS cluster's resolutions (dnscl.c) */
	uint64_t update_attempt, update_success, update_failure, update_no_rebuild;
};

struct px_cluster {
	unsigned refs;
	int in_config;                   /* listed by the current config */
	char *name;
	enum px_cluster_type type;
	struct up_cluster *up;           /* the compiled Cluster (lb, outlier, breakers) of the current config */
	struct up_hostset *hs;           /* its hosts (pxlb's upstream.h) */
	struct px_resource *src, *src_cla; /* the Cluster and EDS resources up and hs were compiled from (a
	                                  * reference each, src_cla NULL if none): config_link_clusters sets
	                                  * them, config_compile keeps up and hs while both are unchanged */
	struct px_host **hmap;           /* up_host -> px_host, open addressing, hmap_cap a power of two */
	size_t hmap_cap;
	/* allocated when first armed (most of a sidecar's clusters have
	 * neither), freed with the cluster */
	struct ev_timer *od_timer;       /* outlier detection's interval sweep */
	struct ev_timer *cleanup_timer;  /* ORIGINAL_DST: drops hosts unused for PX_ODST_CLEANUP_MS */
	struct engine *e;
	uint64_t idle_timeout_ms;        /* upstream idle connections (0: the engine's) */
	uint64_t max_connection_duration_ms; /* upstream connection age limit (0: none) */
	uint64_t connect_timeout_ms;
	int tcp_keepalive;               /* SO_KEEPALIVE on upstream sockets; the values 0: OS defaults */
	uint32_t keepalive_probes, keepalive_time_s, keepalive_interval_s;
	uint32_t max_requests_per_connection; /* 0: unlimited */
	uint32_t max_connections, max_pending, max_requests, max_retries;
	struct px_host **hosts;          /* one reference each; EDS/STATIC: only endpoints picked so far
	                                  * (px_cluster_host_of makes them), ORIGINAL_DST: destinations */
	size_t n_hosts, cap_hosts;
	size_t rr;                       /* round-robin cursor (stand-in picker until pxlb merges) */
	struct px_cluster_stats *st;     /* allocated at the first count (px_cst): a sidecar holds ~1,000
	                                  * clusters, most never used; NULL reads as zeros (px_cst_ro) */
	uint64_t retries_active;
	struct px_link pending;          /* requests waiting for a connection (max_connections reached) */
	struct px_mtls *tls;             /* UpstreamTlsContext (mtls.c; owned), set by config_link_clusters;
	                                  * NULL: plaintext */
	struct dnscl *dns;               /* issue 13: STRICT_DNS/LOGICAL_DNS resolution state (dnscl.c; owned),
	                                  * set by config_link_clusters; NULL for other clusters */
};

/* cl's counters for counting: allocated (zeroed) the first time; never
 * NULL (out of memory: a shared sink whose counts are lost). */
struct px_cluster_stats *px_cluster_stats_alloc(struct px_cluster *cl);
static inline struct px_cluster_stats *px_cst(struct px_cluster *cl)
{
	return cl->st ? cl->st : px_cluster_stats_alloc(cl);
}

/* cl's counters for reading: all zeros while it has counted nothing. */
extern const struct px_cluster_stats px_cluster_stats_zero;
static inline const struct px_cluster_stats *px_cst_ro(const struct px_cluster *cl)
{
	return cl->st ? cl->st : &px_cluster_stats_zero;
}

/* Envoy's Cluster.cleanup_interval default: an ORIGINAL_DST host (Passthrough
 * destinations) not picked and with no request in flight for this long is
 * removed (its idle connections closed), so /clusters and memory do not
 * grow with every destination ever seen. */
#define PX_ODST_CLEANUP_MS 5000

/* An HTTP port of the outbound side: 0.0.0.0_PORT or VIP_PORT. */
struct px_port {
	uint32_t vip;                    /* network order; 0 for 0.0.0.0 */
	uint32_t port;
	const char *route_name;          /* RDS name, "PORT" */
	const struct router_config *rcfg; /* in the config's router (NULL: RDS not there yet -> 404 NR) */
	int tcp;                         /* a TCP proxy listener: no HTTP routing */
	int accept_http_10;              /* the HCM's http_protocol_options.accept_http_10 (else HTTP/1.0 gets 426) */
	const char *tcp_cluster;
	struct tcpp_conf tcpp;           /* the TcpProxy filter's settings when tcp (chain_port(), engine.c) */
	struct px_sel *sel;              /* out_ports: every chain of the port's listener when it has more
	                                  * than one or listener filters (compile_listener()), else NULL */
	/* the HCM's timers (px_port_hcm()), in ms */
	uint64_t stream_idle_ms;         /* stream_idle_timeout: 0 off; PX_IDLE_UNSET: the engine's
	                                  * (--stream-idle-timeout, Envoy's 5 min) */
	uint64_t headers_ms;             /* request_headers_timeout: 0 off; PX_IDLE_UNSET: the engine's
	                                  * (--request-headers-timeout) */
	uint64_t request_ms;             /* request_timeout (the whole request received): 0 off;
	                                  * PX_IDLE_UNSET: the engine's (--request-timeout) */
	uint64_t conn_idle_ms;           /* common_http_protocol_options.idle_timeout: 0 off;
	                                  * PX_IDLE_UNSET: the engine's (--, Envoy's 1 h) */
	int proxy_100;                   /* proxy_100_continue: Expect forwarded, the upstream's 100 relayed */
	const struct jwt_config *jwt;    /* the HCM's jwt_authn filter (chain_port(), owned by the config's jwts), or NULL */
	int xfcc;                        /* forward_client_cert_details APPEND_FORWARD / SANITIZE_SET (px_port_hcm) */
	int xfcc_keep;                   /* the client's own XFCC goes on: 1 from an mTLS peer (FORWARD_ONLY,
	                                  * APPEND_FORWARD), 2 always (ALWAYS_FORWARD_ONLY), 0 dropped
	                                  * (SANITIZE, the default, and SANITIZE_SET); px_port_hcm */
	struct px_mtls *tls;             /* virtualInbound: the port's DownstreamTlsContext (mtls.c), set by
	                                  * compile_listener; owned by px_config.mtls */
	int plain_ok;                    /* a raw_buffer chain serves the port too (no TLS chain, or PERMISSIVE) */
	struct authz_http_opts http_opts; /* the HCM's path normalization and XFF rules (px_port_hcm) */
	const struct authz *authz;       /* the chain's RBAC filters, or NULL (chain_port; owned by the config) */
	const struct trace_cfg *trace;   /* the HCM's tracing, or NULL (port_trace; owned by the config's traces) */
	const struct px_alog_cfg *alog;  /* issue 14: the HCM's access_log, or NULL: none (port_alog; owned by
	                                  * the config's alogs; a TCP proxy's is tcpp.alog) */
	/* issue 14: the chain's istio.stats filter (HTTP in the HCM, else the
	 * network one), or NULL: no istio_* series for it (port_stats; owned
	 * by the config's stats) */
	const struct istio_stats_cfg *istio;
};

/* A Listener's chains for Envoy's filter chain selection (fcmatch.h):
 * chains[i] is Listener.filter_chains[i], def its default_filter_chain.
 * Compiled with the configuration (sel_init(), engine.c); the "tls" and
 * "authz" modules add per-chain data to struct px_port. */
struct px_sel {
	struct fcm_table fcm;
	struct px_port *chains;
	size_t n_chains;
	struct px_port def;              /* when fcm.has_default */
	unsigned char *chain_tls;        /* chain i terminates TLS (a transport_socket): one byte each */
	int def_tls;
};

/* Envoy's HCM defaults: stream_idle_timeout 5 min when unset. */
#define PX_STREAM_IDLE_DEFAULT_MS (5 * 60 * 1000)
#define PX_IDLE_UNSET UINT64_MAX

struct px_listener;

/* A Listener meshproxy binds itself (bind_to_port not false and not
 * virtualOutbound/virtualInbound, whose sockets come from --outbound-addr
 * and --inbound-addr): captureMode NONE's 127.0.0.1_PORT and 0.0.0.0_PORT,
 * later gateway ports.  Compiled per config; the socket (struct
 * px_listener) outlives configs that keep the same address. */
struct px_bound {
	char *name;                      /* Listener.name (owned) */
	char key[72];                    /* the bound address as net_listen() takes it: "IP:PORT", "[V6]:PORT" */
	int inbound;                     /* traffic_direction INBOUND */
	struct px_port port;             /* the chain that serves a connection when no chain is selected
	                                  * (its first chain that is not TLS, else its default chain) */
	struct px_sel sel;               /* its chains, selected per connection (proxy.c's d_select()) */
	struct px_listener *l;           /* the engine's socket for it, set before the swap */
	int fresh;                       /* l was bound for this config (closed again if it is refused) */
};

struct px_config {
	unsigned refs;
	struct engine *e;
	struct px_snapshot *snap;        /* keeps every string the compiled objects point into */
	struct px_port *out_ports, *in_ports;
	size_t n_out_ports, n_in_ports;
	struct px_sel in_sel;            /* virtualInbound's chains, for captured connections */
	struct router *router;           /* every RDS RouteConfiguration (a reference) */
	struct router **in_routers;      /* inline route configs of virtualInbound's chains, one per chain */
	size_t n_in_routers;
	struct px_cluster **clusters;    /* sorted by name, one reference each */
	size_t n_clusters;
	struct px_bound *bound;          /* listeners with a socket of their own, in LDS order */
	size_t n_bound;
	int has_outbound, has_inbound;
	/* Listener.transparent of virtualOutbound / virtualInbound (istiod
	 * sets it under TPROXY interception): IP_TRANSPARENT on their sockets */
	int out_transparent, in_transparent;
	/* virtualInbound's envoy.filters.listener.original_src: its
	 * connections' upstream sockets leave from the client's address,
	 * marked in_osrc_mark (0: no mark) */
	int in_osrc;
	unsigned in_osrc_mark;
	int allow_any;                   /* virtualOutbound's catch-all is PassthroughCluster */
	uint32_t *bh_out;                /* virtualOutbound's destination_port chains to BlackHoleCluster
	                                  * (Istio's virtualOutbound-blackhole on 15001) */
	size_t n_bh_out;
	int loop_logged;                 /* a destination looping back to meshproxy was logged for this config */
	ProtobufCMessage **hcms;         /* filter configs unpacked from Anys (inline route configs live there) */
	size_t n_hcms;
	struct jwt_config **jwts;        /* compiled jwt_authn filters the ports point to (chain_port()) */
	size_t n_jwts;
	struct trace_cfg **traces;       /* every HCM's compiled tracing (port_trace; ports point into it) */
	size_t n_traces;
	struct px_alog_cfg **alogs;      /* issue 14: every HCM's / TCP proxy's access_log (port_alog) */
	size_t n_alogs;
	const struct px_alog_cfg *out_catchall_alog; /* virtualOutbound's catch-all TCP proxy's, in alogs, or NULL */
	/* issue 14: every chain's compiled istio.stats (port_stats; ports
	 * point into it), and the catch-all chains' of virtualOutbound and
	 * virtualInbound for requests no port takes (NULL: none) */
	struct istio_stats_cfg **stats;
	size_t n_stats;
	const struct istio_stats_cfg *stats_out_any, *stats_in_any;
	struct authz **authzs;           /* every chain's compiled RBAC (ports point into it) */
	size_t n_authzs;
	/* compiled in phase one, handed to the clusters in phase two (then NULL) */
	struct up_cluster **new_up;
	struct up_hostset **new_hs;
	struct px_mtls **new_tls;        /* per cluster, from phase one to the cluster in phase two */
	struct px_mtls **mtls;           /* the inbound ports' TLS policies (owned) */
	size_t n_mtls;
	int in_tls;                      /* some inbound port takes TLS: connections are peeked first */
};

struct px_listener_stats {
	uint64_t cx_total, cx_active;    /* Envoy's listener.ADDRESS.downstream_cx_total / _active */
	uint64_t no_chain;               /* listener.ADDRESS.no_filter_chain_match (proxy.c's d_select()) */
	/* issue 16: connections closed at accept: the listener's own limit
	 * (downstream_cx_overflow), the engine-wide one (downstream_global_cx_overflow) */
	uint64_t cx_overflow, global_cx_overflow;
};

/* A listening socket.  virtualOutbound/virtualInbound are embedded in the
 * engine (embedded set, never freed); a bound listener (px_bound) is
 * allocated, referenced by the engine while a config lists its address and
 * by each connection it accepted, so a removed listener stops accepting at
 * once and is freed when its last connection ends. */
struct px_listener {
	struct engine *e;
	unsigned refs;
	int embedded;
	int fd;
	int inbound;
	char *name;                      /* Listener.name (owned; NULL for the embedded ones: px_listener_name()) */
	char key[72];                    /* the address it was bound for (px_bound.key) */
	const struct px_bound *conf;     /* its entry in the engine's current config; NULL for the embedded
	                                  * ones and once removed */
	struct px_listener_stats st;
	struct ev_io io;
	struct ev_timer pause;           /* re-arms io after accept ran out of fds (px_accept_cb) */
	uint64_t sockets;                /* accepted sockets still open, wherever they went (a connection,
	                                  * an HTTP/2 session, a TCP proxy): what the connection limits count */
	int exhausted;                   /* in an fd-exhaustion episode: logged and counted once */
	struct sockaddr_storage local;   /* what the socket is bound to */
	int port;
	int transparent;                 /* IP_TRANSPARENT is on (TPROXY hands it diverted connections) */
};

/* An address and port in network order, IPv4-mapped IPv6 folded to IPv4
 * (px_engine_is_self()). */
struct px_addr {
	int family;                      /* AF_INET or AF_INET6 */
	uint16_t port;                   /* host order */
	unsigned char a[16];             /* 4 bytes for AF_INET */
};

struct px_engine_stats {
	uint64_t cx_total, cx_active, rq_total, rq_active, rq_1xx, rq_2xx, rq_3xx, rq_4xx, rq_5xx;
	uint64_t codec_errors, no_route, no_cluster, applies, apply_rejects;
	uint64_t accept_paused;          /* fd/memory exhaustion episodes at accept */
	uint64_t rq_idle_timeout;        /* streams ended by the stream idle timeout (408 / reset, SI) */
	uint64_t rq_header_timeout;      /* heads not read whole in request_headers_timeout (408) */
	uint64_t cx_idle_timeout;        /* connections closed by the idle_timeout between requests */
	uint64_t rq_timeout;             /* requests not received whole in request_timeout (408) */
	uint64_t rq_loop_refused;        /* requests whose destination was meshproxy itself (502 NR) */
};

struct engine {
	struct ev_loop *loop;
	struct engine_opts o;
	struct px_config *cur;
	struct px_cluster **ctab;        /* every cluster alive by name (sorted), a reference each */
	size_t n_ctab;
	struct px_listener lout, lin;
	struct px_listener **bl;         /* bound listeners of the current config, a reference each */
	size_t n_bl;
	struct px_engine_stats st;
	const struct grpc_client_stats *xds_cx; /* the ADS connection's (engine_set_xds_stats), or NULL */
	struct px_alog *alog;            /* --access-log: every request, Envoy's default format (in alog_sinks) */
	struct px_alog_sinks *alog_sinks; /* issue 14: the files the configs' access logs write (accesslog.h) */
	struct px_dconn *dconns;         /* every downstream connection (drain, free) */
	uint64_t rng;
	int draining;
	int ready;
	int osrc_logged;                 /* an original_src failure was logged (once, not per connection) */
	uint64_t sockets;                /* every listener's accepted sockets still open (global limit) */
	struct lb_rng lbrng;
	struct ev_timer trim_timer;      /* hands freed heap back to the kernel once traffic stops (px_trim) */
	unsigned mirrors_active;
	uint64_t mirrors_sent, mirrors_dropped;
	struct ev_timer drain_timer;
	void (*drain_done)(void *);
	void *drain_arg;
	struct px_addr *self;            /* sockets the process listens on besides the engine's
	                                  * (admin, status, health: engine_self_add()) */
	size_t n_self;
	struct px_addr *ifaddrs;         /* this host's addresses (getifaddrs at start and on apply) */
	size_t n_ifaddrs;
	struct px_identity *ident;       /* the workload certificate (identity.c), set by engine_set_identity();
	                                  * NULL: no mTLS */
	uint64_t tls_handshake_fail;     /* downstream TLS handshakes that failed (ssl.connection_error) */
	uint64_t tls_plain_refused;      /* plaintext connections refused by a TLS-only (STRICT) port */
	struct authz_tab *authz_tab;     /* RBAC counters by name, across configs (engine_new) */
	struct istio_stats *istio;       /* issue 14: Istio's request metrics (engine_new), NULL: off */
	struct tracer *tracer;           /* the span exporter (tracing.c), set by engine_new */
	struct dns_resolver *dns;        /* issue 13: DNS clusters' and passthrough names' lookups (dns.c),
	                                  * set by engine_new */
	int dns_warmed;                  /* issue 13: engine_dns_warmed() latched */
};

/* engine.c */
struct px_config *px_config_ref(struct px_config *c);
void px_config_unref(struct px_config *c);
struct px_cluster *px_config_cluster(const struct px_config *c, const char *name);
void px_host_unref(struct px_host *h);
struct px_host *px_host_ref(struct px_host *h);
/* ORIGINAL_DST: the host for a destination address, made on first use */
struct px_host *px_cluster_dst_host(struct px_cluster *cl, const struct sockaddr_storage *ss, socklen_t len);
/* The engine's host for an upstream.h host of cl's current host set, made
 * on first use; NULL when out of memory (or cl is ORIGINAL_DST). */
struct px_host *px_cluster_host_of(const struct px_cluster *cl, const struct up_host *up);
/* Replace cl's host set by hs (taken), its hosts carried over by address
 * as for an EDS update: a DNS cluster's new resolution (dnscl.c).  0 or
 * -ENOMEM (cl keeps what it had). */
int px_cluster_set_hosts(struct px_cluster *cl, struct up_hostset *hs);
/* Health as /clusters shows it ("healthy", "/failed_outlier_check", ...). */
const char *px_host_health(const struct px_host *h);
uint64_t px_rand(struct engine *e);
void px_engine_check_drained(struct engine *e);
void px_listener_unref(struct px_listener *l);
/* An accepted socket of l was closed (the counts the connection limits
 * read, px_accept_cb); call before letting go of l. */
void px_listener_socket_closed(struct px_listener *l);
/* Non-zero when connecting to sa would reach one of meshproxy's own
 * listening sockets: the engine's listeners (virtualOutbound/Inbound and
 * every bound one), the admin/status/health ports (engine_self_add()).  A
 * socket bound to a specific address matches that address (and 0.0.0.0 /
 * ::, which connect to this host); one bound to a wildcard matches every
 * local destination: 127.0.0.0/8, ::1, the unspecified addresses and this
 * host's interface addresses.  What Istio's virtualOutbound-blackhole /
 * virtualInbound-blackhole chains achieve for 15001/15006, for any port. */
int px_engine_is_self(const struct engine *e, const struct sockaddr *sa, socklen_t len);
/* px_engine_is_self() for an upstream connection of a downstream that came
 * in on an outbound (from_inbound 0) or inbound listener: an outbound one
 * may reach one of our inbound listeners, a workload calling its own
 * service (its endpoint is the workload's address, where this sidecar's
 * inbound listens).  Istio's iptables route that back to 15006 (ISTIO_OUTPUT
 * "-o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT"):
 * the inbound chain sends it to the application, it never comes back out,
 * so it is no loop.  Non-zero: a loop, never connect. */
int px_engine_is_loop(const struct engine *e, const struct sockaddr *sa, socklen_t len, int from_inbound);
/* issue 15: a connection an inbound listener passes through to its
 * original destination (an ORIGINAL_DST cluster: the pod's own address)
 * leaves from 127.0.0.6 (IPv4) or ::6 (IPv6) as Istio's
 * InboundPassthroughCluster binds it: capture lets that source through
 * (ISTIO_OUTPUT "-o lo -s 127.0.0.6/32 -j RETURN"), while from the pod's
 * address, as the proxy's uid, it is sent back to 15006 (ISTIO_OUTPUT
 * "-o lo ! -d 127.0.0.1/32 ... --uid-owner 1337 -j ISTIO_IN_REDIRECT"),
 * again and again.  fd: a new socket for dst; a loopback dst keeps the
 * default source; a failed bind (no ::6 on lo) leaves it unbound. */
void px_bind_inbound_passthrough(int fd, const struct sockaddr *dst);
/* Envoy's original_src for a new upstream socket fd of a connection that
 * listener l accepted from peer_ip: when the config's virtualInbound runs
 * the filter and l is virtualInbound, fd is made transparent, bound to
 * the client's address and marked (net_original_src()).  The callers
 * apply it to the inbound clusters (the application on its loopback
 * endpoint), not to the ORIGINAL_DST passthrough: a connection to the
 * pod's own address from anything but 127.0.0.6 is sent back to 15006 by
 * istio-iptables' ISTIO_OUTPUT uid-1337 rule, so that one keeps 127.0.0.6
 * (px_bind_inbound_passthrough()).  1 done, 0 not
 * for this connection (other listener, no filter, the client of the other
 * family), or negative errno (logged once: -EPERM without CAP_NET_ADMIN);
 * the caller then fails the connection (Envoy's upstream connect failure). */
int px_original_src(struct engine *e, const struct px_listener *l, const char *peer_ip, int fd, int family);
/* A listener's name for logs: Listener.name, or virtualOutbound/virtualInbound. */
const char *px_listener_name(const struct px_listener *l);

/* A port's stream idle timeout and request_headers_timeout in ms (0 off):
 * its HCM's, else the engine's (engine_opts); pp NULL: the engine's. */
uint64_t px_port_stream_idle_ms(const struct engine *e, const struct px_port *pp);
uint64_t px_port_headers_ms(const struct engine *e, const struct px_port *pp);
uint64_t px_port_request_ms(const struct engine *e, const struct px_port *pp);

/* The HCM's per-port settings (timeouts, 100-continue) into p; hcm NULL
 * (a TCP port, a synthesized route) gives Envoy's defaults. */
void px_port_hcm(struct px_port *p, const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm);

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
/* The same for the connections one listener accepted (it left the config). */
void px_dconn_drain_listener(struct engine *e, const struct px_listener *l);
void px_dconn_free_all(struct engine *e);
/* The trim timer's callback: armed when the last downstream connection
 * closes (PX_TRIM_AFTER_MS later); if none came back, malloc_trim(0) returns
 * the freed connection buffers to the kernel (haproxy's pool_gc does the
 * same), so RSS after a burst falls back to the configuration's. */
#define PX_TRIM_AFTER_MS 1000
void px_trim(struct ev_loop *loop, struct ev_timer *t);

#endif
