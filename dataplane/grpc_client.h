/*
 * grpc_client.h - one gRPC bidirectional streaming call over HTTP/2
 * (nghttp2) on meshproxy's loop: what the xDS client speaks to meshd.
 *
 * Two layers, as haproxy puts its muxes over a transport:
 *
 *  - grpc_conn: the protocol with no I/O at all.  Bytes from the peer go in
 *    with grpc_conn_recv(), bytes for the peer come out of
 *    grpc_conn_flush(); the call's messages and its end come back through
 *    callbacks.  Unit tests drive it against an nghttp2 server session in
 *    memory (tests/unit/dataplane/test_grpc_client.c).
 *  - grpc_client: a grpc_conn over a non-blocking socket on an ev.h loop:
 *    asynchronous connect, reads and writes on readiness, keepalive PINGs
 *    on a timer.  The byte transport is a small vtable (grpc_transport_ops)
 *    so that TLS to meshd's 15012 (issue 12) plugs in under the same code;
 *    today only plaintext exists.
 *
 * The call is gRPC's HTTP/2 mapping: POST with content-type
 * application/grpc and te: trailers, each message framed by a 5-byte
 * prefix (compressed flag 0, 32-bit big-endian length), the status in the
 * trailers (grpc-status, grpc-message).  Received messages are capped
 * (grpc_limits.max_recv_msg, gRPC's "message larger than max" is
 * RESOURCE_EXHAUSTED); queued output is capped too.  HTTP/2 flow control
 * is nghttp2's: windows are opened as data is consumed, and since a message
 * is consumed as it arrives (into a capped buffer), memory stays bounded by
 * the cap.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_GRPC_CLIENT_H
#define MESH_DATAPLANE_GRPC_CLIENT_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/ev.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* gRPC status codes the client produces or looks at */
enum {
	GRPC_STATUS_OK = 0,
	GRPC_STATUS_CANCELLED = 1,
	GRPC_STATUS_UNKNOWN = 2,
	GRPC_STATUS_INVALID_ARGUMENT = 3,
	GRPC_STATUS_RESOURCE_EXHAUSTED = 8,
	GRPC_STATUS_UNIMPLEMENTED = 12,
	GRPC_STATUS_INTERNAL = 13,
	GRPC_STATUS_UNAVAILABLE = 14,
};

#define GRPC_MAX_RECV_MSG_DEFAULT (64u * 1024 * 1024) /* a full mesh's CDS fits */
#define GRPC_MAX_SEND_QUEUE_DEFAULT (16u * 1024 * 1024)
#define GRPC_MAX_STATUS_MSG 512 /* grpc-message kept, bytes */

struct grpc_limits {
	size_t max_recv_msg;   /* a message longer than this ends the call (RESOURCE_EXHAUSTED) */
	size_t max_send_queue; /* grpc_call_send() past this fails with -MESH_ETOOBIG */
};

/* What the call reports.  on_message gets one whole message (the bytes
 * after the 5-byte prefix), valid during the call only.  on_close is
 * called exactly once per call: the trailers' status, or UNAVAILABLE /
 * INTERNAL with a reason when the stream was reset, the connection went
 * away (GOAWAY, EOF, an error) or the peer broke the protocol.  Neither
 * may free the conn; the owner does that afterwards. */
struct grpc_call_cbs {
	void (*on_message)(void *ctx, const uint8_t *msg, size_t len);
	void (*on_close)(void *ctx, int status, const char *message);
};

/* ---- the protocol, without I/O */

struct grpc_conn;

/* A client connection (the preface and SETTINGS are queued for
 * grpc_conn_flush()); lim NULL takes the defaults.  -ENOMEM. */
MESH_MUST_CHECK int grpc_conn_new(const struct grpc_limits *lim, struct grpc_conn **out);
void grpc_conn_free(struct grpc_conn *c); /* NULL is a no-op */

/* Starts the connection's one call: POST path to authority.  -EBUSY if a
 * call was started already, -ENOMEM. */
MESH_MUST_CHECK int grpc_call_start(struct grpc_conn *c, const char *authority, const char *path,
				    const struct grpc_call_cbs *cbs, void *ctx);
/* Frames and queues one message on the call.  -EPIPE once the call ended
 * or was half-closed (grpc_call_close_send),
 * -MESH_ETOOBIG past the send-queue cap or the 4 GiB frame limit. */
MESH_MUST_CHECK int grpc_call_send(struct grpc_conn *c, const void *msg, size_t len);

/* Feeds len bytes from the peer.  Callbacks run from here.  A negative
 * return means the connection is unusable (the call has been closed with
 * the reason). */
MESH_MUST_CHECK int grpc_conn_recv(struct grpc_conn *c, const uint8_t *data, size_t len);
/* Appends the bytes ready for the peer to out (out's cap bounds it; what
 * does not fit stays for the next call).  Returns 0 or a negative code
 * (the connection is then unusable). */
MESH_MUST_CHECK int grpc_conn_flush(struct grpc_conn *c, struct mesh_buf *out);
/* Non-zero when grpc_conn_flush() has something to produce. */
int grpc_conn_want_write(const struct grpc_conn *c);
/* Non-zero once the connection can carry nothing more (GOAWAY received,
 * a protocol error, the call over and nothing left to send). */
int grpc_conn_done(const struct grpc_conn *c);

/* Keepalive: queues a PING; grpc_conn_pings_unanswered() counts PINGs
 * sent and not yet acknowledged. */
MESH_MUST_CHECK int grpc_conn_ping(struct grpc_conn *c);
unsigned grpc_conn_pings_unanswered(const struct grpc_conn *c);

/* Before grpc_call_start(): the call's authorization header (value kept,
 * not copied: it must outlive the conn; NULL none: Istio's agent sends
 * "Bearer TOKEN" to the CA) and :scheme https when tls is non-zero. */
void grpc_conn_set_authorization(struct grpc_conn *c, const char *value, int tls);

/* Half-closes the call: END_STREAM once the queued messages are sent (a
 * unary or client-streaming call, e.g. OTLP's Export; issue 14).  -EPIPE
 * once the call ended. */
MESH_MUST_CHECK int grpc_call_close_send(struct grpc_conn *c);

/* Ends the call from our side (RST_STREAM CANCEL); on_close is not called. */
void grpc_call_cancel(struct grpc_conn *c);

/* ---- a transport under the protocol */

/* read/write follow recv(2)/send(2): bytes moved, 0 for EOF on read, -1
 * with errno (EAGAIN when it would block).  TLS (issue 12) provides
 * another ops with a handshake step; plaintext has none. */
struct grpc_transport_ops {
	const char *name;
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
};
extern const struct grpc_transport_ops grpc_transport_plain;

/* ---- the protocol on a socket on the loop */

struct grpc_client;

/*
 * A client's upstream connection counters, named and counted as Envoy's
 * cluster stats of the xds-grpc cluster istio-proxy dials (Envoy's
 * upstream_cx_*): cx_total counts each connection made (a connect
 * attempt), cx_active those not yet closed (connecting included),
 * cx_connect_fail those closed before TCP (and TLS, when used) were up,
 * rx/tx the bytes read and written on the socket (after TLS: wire bytes
 * of the HTTP/2 session), rq_total the calls started (one per connection).
 */
struct grpc_client_stats {
	uint64_t cx_total, cx_active, cx_connect_fail;
	uint64_t cx_rx_bytes, cx_tx_bytes;
	uint64_t rq_total, rq_active;
};

struct grpc_client_opts {
	const struct grpc_transport_ops *transport; /* NULL: plaintext */
	struct grpc_client_stats *stats;            /* counted into, borrowed; NULL: none */
	struct grpc_limits limits;                  /* zeros: the defaults */
	uint64_t keepalive_ms;                      /* PING interval; 0: none */
	uint64_t keepalive_timeout_ms;              /* an unanswered PING this old ends the connection */
	uint64_t connect_timeout_ms;                /* 0: none */
	/* issue 12: TLS to meshd's 15012 (identity.c).  tls NULL: plaintext;
	 * else the handshake (SNI tls_sni) runs after the TCP connect, under
	 * connect_timeout_ms, before any HTTP/2 byte.  The context is
	 * referenced by the connection; opts strings must outlive the client. */
	struct px_tls_ctx *tls;
	const char *tls_sni;
	const char *authorization;                  /* the call's authorization header, or NULL */
};

/*
 * Connects to sa (non-blocking: the connect completes on the loop), starts
 * the call (POST path, :authority authority) and reports through cbs.  A
 * connect failure is reported as on_close(UNAVAILABLE, reason) from the
 * loop, never from inside this function.  Returns 0, or the socket call's
 * negative errno / -ENOMEM (nothing is reported then).
 */
MESH_MUST_CHECK int grpc_client_new(struct ev_loop *loop, const struct sockaddr *sa, socklen_t salen,
				    const char *authority, const char *path, const struct grpc_client_opts *opts,
				    const struct grpc_call_cbs *cbs, void *ctx, struct grpc_client **out);
/* Queues one message (see grpc_call_send). */
MESH_MUST_CHECK int grpc_client_send(struct grpc_client *g, const void *msg, size_t len);
/* Half-closes the call (see grpc_call_close_send). */
MESH_MUST_CHECK int grpc_client_close_send(struct grpc_client *g);
/* Non-zero once the TCP connection is up. */
int grpc_client_connected(const struct grpc_client *g);
/* Closes the socket and frees everything; no callback runs after.  Safe
 * from anywhere except inside this client's own callbacks (defer it).
 * NULL is a no-op. */
void grpc_client_free(struct grpc_client *g);

#endif
