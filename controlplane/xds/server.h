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
 * The protocol (subscriptions, versions, nonces, ACK/NACK, Delta) lives
 * in the transport-free core, ads.h; this is its gRPC server.
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
#include "controlplane/xds/ads.h"
#include "controlplane/xds/resource.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

struct xds_server;

/* Per-proxy resources (ads.h): the xDS thread asks for them with the
 * config's `want` callback and the builder (the push stage, on its own
 * thread) hands back per-key sets with xds_server_publish_push(). */

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
	/* Per-proxy requests (ads.h; NULL: the shared snapshot only).  Runs on
	 * the xDS thread, must not block, owns req: post it to a queue. */
	void (*want)(void *ctx, struct xds_proxy_req *req);
	void *want_ctx;
	/* Secrets per stream (ads.h, xds_secret_req; NULL: from the
	 * snapshots).  Runs on the xDS thread, must not block, owns req;
	 * the provider answers with xds_server_secret_reply(). */
	void (*secret)(void *ctx, struct xds_secret_req *req);
	void *secret_ctx;
	/* Flavours served whole from per-proxy sets (xds_ads_config's
	 * whole_flavours: 1u << XDS_FLAVOUR_SIDECAR in meshd); 0: none. */
	unsigned whole_flavours;
	/* A response the client has not taken within this many milliseconds
	 * (HTTP/2 flow control holding it: a stuck or very slow proxy) ends the
	 * stream with UNAVAILABLE, so the proxy reconnects and resyncs instead of
	 * pinning memory.  0: XDS_SEND_TIMEOUT_MS. */
	int send_timeout_ms;
	/* Answers in flight (xds_ads_stream_reply_hint): a response whose
	 * answer will be at least XDS_REPLY_MIN bytes (a SotW ACK naming
	 * every subscribed resource) is started only while the answers
	 * expected and not yet received add up to less than reply_budget
	 * bytes (0: XDS_REPLY_BUDGET); the others wait, in order.  Sent
	 * together, 2,000 sidecars' ACKs of an endpoint change arrive
	 * together too (~280 MB) and gRPC core holds them while it reads them.
	 * A stream's share is released by its next request, or after
	 * reply_hold_ms (0: XDS_REPLY_HOLD_MS) without one. */
	size_t reply_budget;
	int reply_hold_ms;
	/* Connection bounds, as gRPC core channel args on both ports (0: the
	 * default below; < 0: off where gRPC allows it).  gRPC core 1.51 has no
	 * cap on the number of connections (GRPC_ARG_MAX_ALLOWED_INCOMING_
	 * CONNECTIONS came later): an idle or slow connection is bounded in
	 * time instead, by the handshake deadline (TCP accepted, HTTP/2 preface
	 * or TLS not done), the idle limit (no call open) and keepalive.
	 *   keepalive_time_ms: ping a connection silent this long (istiod's
	 *     --keepaliveInterval, 30s); keepalive_timeout_ms: close it when
	 *     the ping is not answered within this (--keepaliveTimeout, 10s);
	 *     clients may ping every keepalive_time_ms / 2 (istiod's
	 *     EnforcementPolicy MinTime), faster earns GOAWAY;
	 *   max_connection_age_ms: GOAWAY after this, with 10s of grace
	 *     (--keepaliveMaxServerConnectionAge; default infinite, < 0 too);
	 *   max_connection_idle_ms: GOAWAY a connection without calls
	 *     (XDS_MAX_CONNECTION_IDLE_MS);
	 *   handshake_timeout_ms: XDS_HANDSHAKE_TIMEOUT_MS;
	 *   max_concurrent_streams: calls per connection, HTTP/2
	 *     SETTINGS_MAX_CONCURRENT_STREAMS (XDS_MAX_CONCURRENT_STREAMS;
	 *     istiod's ISTIO_GPRC_MAXSTREAMS). */
	int keepalive_time_ms, keepalive_timeout_ms;
	int max_connection_age_ms, max_connection_idle_ms;
	int handshake_timeout_ms;
	int max_concurrent_streams;
};

#define XDS_SEND_TIMEOUT_MS 30000
#define XDS_REPLY_BUDGET (16u << 20)
#define XDS_REPLY_MIN (16u << 10)
#define XDS_REPLY_HOLD_MS 5000
#define XDS_KEEPALIVE_TIME_MS 30000
#define XDS_KEEPALIVE_TIMEOUT_MS 10000
#define XDS_MAX_CONNECTION_AGE_GRACE_MS 10000
#define XDS_MAX_CONNECTION_IDLE_MS (5 * 60 * 1000)
#define XDS_HANDSHAKE_TIMEOUT_MS 10000
#define XDS_MAX_CONCURRENT_STREAMS 100000  /* istiod's ISTIO_GPRC_MAXSTREAMS default */

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
/* The per-proxy resources of one key (ads.h), as the builder made them. */
struct xds_proxy_set {
	const char *key;             /* xds_proxy_key(); copied */
	struct xds_snapshot *snap;   /* a reference is taken */
	uint64_t answered;           /* requests of the key up to this seq are answered */
};

/* One push (any thread): a new snapshot for the streams of flavour f
 * (a reference is taken; NULL: none, only sets) and n per-key sets,
 * applied together by the xDS thread, so a stream sees the snapshot and
 * its key's set of the same model.  Snapshots published before the xDS
 * thread takes them are coalesced, per flavour; sets apply in order.  A
 * flavour nothing was ever published for has no generator: its streams
 * end with UNIMPLEMENTED (ads.h). */
void xds_server_publish_push(struct xds_server *s, enum xds_flavour f, struct xds_snapshot *snap,
			     const struct xds_proxy_set *sets, size_t n);
/* A Secret provider's answer (any thread): for stream's request seq, the
 * Secrets in set (a reference is taken; NULL: none), or code (not OK)
 * and msg ending the stream (xds_ads_secrets_set).  Out of memory drops
 * the answer (logged). */
void xds_server_secret_reply(struct xds_server *s, uint64_t stream, uint64_t seq, struct xds_snapshot *set,
			     enum xds_ads_status code, const char *msg);
/* Keys the xDS thread holds per-proxy sets for (thread-safe; tests). */
size_t xds_server_proxy_keys(struct xds_server *s);

/* Debug views, as JSON into out (thread-safe). */
int xds_server_syncz(struct xds_server *s, struct mesh_buf *out);
/* What proxy_id was last sent, per type, as Envoy-style config dump JSON.
 * Returns -ENOENT when no such proxy is connected. */
int xds_server_config_dump(struct xds_server *s, const char *proxy_id, struct mesh_buf *out);
/* The namespace and labels proxy_id's Node carries (xds_ads_proxy_workload);
 * -ENOENT when no such proxy is connected. */
int xds_server_proxy_workload(struct xds_server *s, const char *proxy_id, struct mesh_buf *ns,
			      struct mesh_buf *labels);
/* Number of connected streams. */
int xds_server_connected(struct xds_server *s);
/* SotW requests reduced to a plain ACK on arrival (their bytes freed by
 * the completion-queue thread, xds_ads_ack_reduce) since the start
 * (thread-safe; tests). */
uint64_t xds_server_reduced_acks(struct xds_server *s);

#endif
