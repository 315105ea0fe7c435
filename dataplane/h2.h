/*
 * h2.h - HTTP/2 in meshproxy (nghttp2), downstream and upstream, and the
 * gRPC shaping that goes with it (issue 12, "Protocols").
 *
 * How it meets the HTTP/1.1 data path (proxy.c): every HTTP/2 stream is
 * carried into the existing stream logic (router, retries, timeouts,
 * faults, header edits, mirrors, access log) as one HTTP/1.1 exchange over
 * a local socketpair, so the stream code has one implementation:
 *  - downstream: an HTTP/2 connection (h2c with prior knowledge, or TLS with
 *    ALPN "h2" through px_dconn_use_h2()) is served by a px_h2d session; each
 *    request stream becomes "METHOD path HTTP/1.1" + fields (+ chunked body)
 *    written into a socketpair whose other end proxy.c adopts as a
 *    downstream connection (px_dconn_adopt()); the HTTP/1.1 response read
 *    back is sent as HEADERS / DATA / trailing HEADERS.
 *  - upstream: for a cluster that speaks HTTP/2 (px_h2_cluster_wants()),
 *    proxy.c's upstream connection gets a socketpair from px_h2u_open()
 *    instead of a TCP socket; h2.c reads the HTTP/1.1 request from it and
 *    sends it as a stream on a shared HTTP/2 connection to the host (many
 *    streams per connection, up to the peer's MAX_CONCURRENT_STREAMS and the
 *    cluster's max_requests_per_connection), and writes the response back
 *    as HTTP/1.1 with a chunked body whose trailers carry grpc-status.
 * The cost is one socketpair and a copy per stream; the gain is that
 * nothing in proxy.c's stream logic knows which codec is on either side.
 *
 * Memory is bounded per stream and per connection: the flow-control
 * windows we advertise are re-opened only as bytes move on (nghttp2's
 * automatic WINDOW_UPDATE is off), header blocks are capped, the number of
 * concurrent streams is capped, and nghttp2's flood limits (SETTINGS, PING,
 * RST_STREAM, CONTINUATION) end a hostile connection with GOAWAY.  h2.c
 * adds what nghttp2 1.52 lacks: streams cut while being served (client
 * resets and resets the client provoked, "MadeYouReset") share the
 * rapid-reset budget, and a session serving no request for the HCM's
 * idle_timeout is closed (GOAWAY NO_ERROR), so half a frame cannot hold it.
 */
#ifndef MESH_DATAPLANE_H2_H
#define MESH_DATAPLANE_H2_H

#include "dataplane/transport.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct engine;
struct px_listener;
struct px_host;
struct px_cluster;
struct px_dconn;

#define PX_H2_MAX_STREAMS 128         /* SETTINGS_MAX_CONCURRENT_STREAMS we advertise downstream */
#define PX_H2_WINDOW (64 * 1024)      /* per-stream receive window (bytes buffered per stream at most) */
#define PX_H2_CONN_WINDOW (1024 * 1024) /* per-connection receive window */
#define PX_H2_MAX_HEADER_BLOCK (60 * 1024) /* as HTTP/1.1's head limit (Envoy's max_request_headers_kb) */
#define PX_H2_OUT_HIGH (256 * 1024)   /* stop producing frames past this much unsent output */

/* Where a downstream connection came from: what px_dconn_adopt() gives
 * the downstream connection made for one HTTP/2 stream. */
struct px_conn_origin {
	struct px_listener *l;        /* the accepting listener (the callee takes its own reference) */
	int inbound;
	int captured;
	struct sockaddr_storage dst;
	socklen_t dst_len;
	/* issue 12: the accepted socket's own address (px_dconn_use_h2), since a
	 * stream's connection is a socketpair: RBAC's destination.ip, the hash
	 * cookie's seed; local_len 0 when unknown */
	struct sockaddr_storage local;
	socklen_t local_len;
	char peer_ip[INET6_ADDRSTRLEN];
	uint16_t peer_port;
	uint64_t idle_ms;             /* the HCM's idle_timeout for the connection (px_dconn_use_h2); 0 off */
	/* issue 12: the TLS connection an HTTP/2 session runs over
	 * (px_dconn_use_h2 fills them from the handshake; borrowed here,
	 * px_h2d_start and px_dconn_adopt keep copies) */
	int tls;                      /* the connection is TLS (STRICT ports take it) */
	const char *peer_principal;   /* the verified peer's SPIFFE URI SAN, or NULL */
	const char *sni;              /* the SNI the client sent, or NULL */
	const char *xfcc;             /* Envoy's XFCC element for the peer (px_tls_xfcc), or NULL */
	char alpn[16];                /* the negotiated ALPN, "" if none */
	int chain;                    /* issue 13: the filter chain the connection was given (proxy.c's
	                               * px_dconn.chain, set by px_dconn_use_h2; 0 none) */
	int counted;                  /* issue 16: the socket counts in l's limits: the session calls
	                               * px_listener_socket_closed() when it closes it */
};

/* The HTTP/2 connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113
 * §3.4): 1 when p[0..len) is the whole preface or starts with it, 0 when
 * p is a proper prefix of it (read more), -1 when it is not HTTP/2. */
int px_h2_preface(const char *p, size_t len);

/*
 * Serves an accepted connection as HTTP/2 server (downstream).  Takes the
 * fd (closed by the session), the transport (tops/tctx: raw with tctx
 * NULL, or px_transport_tls with its struct px_tls once the handshake is
 * done; the session frees it, close_notify first, when it closes), the
 * bytes already read from it (copied; the preface among them) and the
 * origin (a listener reference is taken, its strings copied).  Returns 0,
 * or a negative errno with fd and tctx left to the caller.
 * Called by proxy.c's px_dconn_use_h2(); nothing else needs it.
 */
int px_h2d_start(struct engine *e, int fd, const struct px_transport_ops *tops, void *tctx,
		 const struct px_conn_origin *o, const char *pending, size_t pending_len);

/* Drains the HTTP/2 sessions one listener accepted (l NULL: the inbound
 * ones, as px_dconn_drain_listener does): GOAWAY, the streams in flight
 * finish, then the connection closes. */
void px_h2d_drain(struct engine *e, const struct px_listener *l);

/* Non-zero when requests to cl go upstream as HTTP/2: the cluster's
 * HttpProtocolOptions explicit_http_config.http2_protocol_options, or
 * use_downstream_protocol_config with an HTTP/2 downstream (down_h2), as
 * Istio sets for grpc-/http2- ports and DestinationRule h2UpgradePolicy
 * UPGRADE / useClientProtocol. */
int px_h2_cluster_wants(const struct px_cluster *cl, int down_h2);

/*
 * A new upstream stream to host h over a shared HTTP/2 connection (opened
 * on demand).  Returns the fd proxy.c uses as its upstream connection
 * socket (HTTP/1.1 in and out, connected already), or a negative errno.
 */
int px_h2u_open(struct engine *e, struct px_host *h);

/* A grpc-timeout header value (gRPC over HTTP/2: 1-8 digits and a unit
 * H M S m u n) in milliseconds, sub-millisecond parts rounded up; -1 when
 * malformed (ignored, as Envoy does). */
int64_t px_grpc_timeout_ms(const char *v, size_t len);

/* proxy.c, at the EOF of an upstream pipe fd before any response: 1 when
 * the HTTP/2 connection behind it never came up (connect refused or timed
 * out: a connect failure, UF, as HTTP/1.1 would see it), else 0 (a reset).
 * px_h2u_forget(fd) before closing a pipe that was not read to its end. */
int px_h2u_connect_failed(int fd);
void px_h2u_forget(int fd);
/* proxy.c, at the same point: 1 when the server refused the stream
 * unprocessed (RST_STREAM REFUSED_STREAM, a GOAWAY whose last-stream-id is
 * below it, or the connection closed before the stream was sent): a
 * refused stream, retriable under Envoy's refused-stream; else 0. */
int px_h2u_refused(int fd);

/* issue 14: the verified SPIFFE id (URI SAN) of the upstream behind the
 * pipe fd px_h2u_open() gave, over the HTTP/2 connection's mutual TLS
 * (borrowed: copy it before the next call into h2.c); NULL without TLS
 * or an id.  A stream already freed (a short answer written whole into
 * the pipe) is remembered among the last 64.
 * What destination_principal reports for an HTTP/2 upstream. */
const char *px_h2u_peer_uri(const struct engine *e, int fd);

/* Frees every HTTP/2 connection of e, both sides (engine teardown). */
void px_h2_free_all(struct engine *e);

/* proxy.c: a downstream connection for fd (one HTTP/2 stream's socketpair
 * end), served like an accepted one; h2 marks it as carrying HTTP/2 (the
 * access log's protocol, use_downstream_protocol_config).  0 or -errno
 * (fd is closed either way on failure). */
int px_dconn_adopt(struct engine *e, int fd, const struct px_conn_origin *o, int h2);

/*
 * proxy.c: switches downstream connection d to HTTP/2.  For the TLS
 * transport once ALPN chose "h2" (and for h2c prior knowledge, which
 * proxy.c detects itself): d's socket, transport and unread input move to
 * an HTTP/2 session and d is freed (0), or d is closed (negative errno).
 * d must not be used after the call either way.
 */
int px_dconn_use_h2(struct px_dconn *d);

#endif
