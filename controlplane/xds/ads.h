/*
 * ads.h - the ADS protocol core: what to send to each xDS stream, with no
 * transport under it (see ads.c).
 *
 * The gRPC server (server.c) owns the calls and feeds this core: decoded
 * or raw requests, "a snapshot was published" and "the call ended".  The
 * core keeps each stream's state (node, flavour, per-type subscriptions,
 * wildcard, sent and acked versions, nonces, NACK text, the Delta held
 * set) and answers with encoded (Delta)DiscoveryResponse messages to send,
 * one at a time (xds_ads_stream_next), and possibly "end the stream with
 * this status" (xds_ads_stream_finishing).  haproxy's muxes over xprt_ops
 * are the model: the core is fed and returns, it never blocks nor calls out.
 *
 * Not thread-safe: one thread (the server's xDS thread) makes every call,
 * or the caller serialises them (the debug views run under the server lock).
 *
 * Functions return 0 or a negative code (err.h) unless they say otherwise.
 */
#ifndef MESH_XDS_ADS_H
#define MESH_XDS_ADS_H

#include "common/buf.h"
#include "common/err.h"
#include "common/queue.h"
#include "controlplane/xds/resource.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct model;
struct cfg_labels;
struct xds_ads;
struct xds_ads_stream;

/*
 * The kind of client a stream serves, from its first request's Node
 * (DESIGN.md, "Three client flavours"): metadata GENERATOR=grpc is a
 * proxyless gRPC client or server; a node id of type "router"
 * ("router~IP~POD.NS~NS.svc.cluster.local") is a gateway; anything else is
 * a sidecar (Envoy or meshproxy).  The generators produce one snapshot per
 * flavour.
 */
enum xds_flavour {
	XDS_FLAVOUR_PROXYLESS,
	XDS_FLAVOUR_SIDECAR,
	XDS_FLAVOUR_ROUTER,
	XDS_FLAVOUR_COUNT
};

/* "proxyless", "sidecar", "router" (the /debug/syncz "flavour" values). */
const char *xds_flavour_name(enum xds_flavour f);
/* The flavour of node by the rule above; NULL (no Node) is a sidecar. */
enum xds_flavour xds_flavour_of_node(const Envoy__Config__Core__V3__Node *node);

/*
 * How a stream ends, as the core decides it.  The values are gRPC's status
 * codes (the numbers are fixed by the gRPC protocol), so the transport maps
 * them with a cast.
 */
enum xds_ads_status {
	XDS_ADS_STATUS_OK = 0,
	XDS_ADS_STATUS_INVALID_ARGUMENT = 3,
	XDS_ADS_STATUS_PERMISSION_DENIED = 7,
	XDS_ADS_STATUS_RESOURCE_EXHAUSTED = 8,
	XDS_ADS_STATUS_UNIMPLEMENTED = 12,
	XDS_ADS_STATUS_INTERNAL = 13,
	XDS_ADS_STATUS_UNAVAILABLE = 14,
	XDS_ADS_STATUS_UNAUTHENTICATED = 16,
};

/*
 * Per-proxy resources (the inbound Listener
 * "xds.istio.io/grpc/lds/inbound/IP:PORT" of an xDS-enabled gRPC server)
 * depend on the workload asking, not on the proxy: on its flavour,
 * namespace and labels.  Streams with the same key share one set of them,
 * which the push stage (controlplane/push/) builds on the config thread:
 * the core never runs a generator.
 *
 * Flow: a stream subscribes to a name that neither its flavour's snapshot
 * nor its key's set holds; the core hands the config's `want` callback a
 * request (key and name) and holds that type's response; the push stage
 * builds the name and hands back the key's whole set
 * (xds_ads_proxy_set, through xds_server_publish_push), which answers every
 * request up to a sequence number; the held responses go out then.  After
 * each model change the stage rebuilds every live key and publishes the
 * sets with the snapshot.  When the last stream of a key goes, the core
 * sends a release, and the stage drops the key.
 */
enum xds_proxy_req_kind {
	XDS_PROXY_WANT,              /* build `name` for the key */
	XDS_PROXY_RELEASE,           /* no stream uses the key any more */
	XDS_PROXY_WANT_ALL,          /* build the key's whole config (a per-proxy flavour) */
};

/* One request, from the core (xDS thread) to whoever builds per-proxy
 * resources; the receiver owns it and frees it with xds_proxy_req_free(). */
struct xds_proxy_req {
	struct mesh_queue_item qi;   /* free for the receiver's queue */
	enum xds_proxy_req_kind kind;
	char *key;                   /* flavour, namespace and labels, canonical */
	enum xds_flavour flavour;
	char *ns;                    /* NULL: unknown */
	struct cfg_labels *labels;   /* never NULL (maybe empty) */
	enum xds_type type;          /* WANT */
	char *name;                  /* WANT */
	uint64_t seq;                /* WANT, WANT_ALL: answered by a set whose answered >= seq */
	char *service_account;       /* node metadata SERVICE_ACCOUNT; NULL: unknown */
	char *ip;                    /* the node id's IP; NULL: unknown */
	char *locality;              /* Node.locality "region/zone/subzone"; NULL: unknown */
	bool tproxy;                 /* node metadata INTERCEPTION_MODE is TPROXY */
};

void xds_proxy_req_free(struct xds_proxy_req *r);  /* NULL is a no-op */

/* The canonical key string of (f, ns, labels) into a new string (*out):
 * labels in key order, every part length-prefixed.  Returns 0 or -ENOMEM. */
MESH_MUST_CHECK int xds_proxy_key(enum xds_flavour f, const char *ns, const struct cfg_labels *labels, char **out);
/* The same with the service account and IP of the node as parts (each
 * only when not NULL, so xds_proxy_key()'s strings are unchanged): the key
 * of a flavour whose whole config is per proxy.  The IP is given only
 * when the node has no labels (the generator then finds the workload by
 * IP), so replicas with the same labels share one build.  Returns 0 or
 * -ENOMEM. */
MESH_MUST_CHECK int xds_proxy_key_node(enum xds_flavour f, const char *ns, const struct cfg_labels *labels,
				       const char *service_account, const char *ip, char **out);

/*
 * Secrets (SDS over ADS, type ...tls.v3.Secret) are per stream, not per
 * flavour nor per key: "default" holds a private key made for the one
 * node that asks, and only a node whose identity is proven may have it.
 * When the Secret names a stream subscribes to change, the core hands the
 * config's `secret` callback a request carrying the names and what the
 * transport learnt of the caller (TLS or not, its "authorization"
 * metadata); the provider (controlplane/ca/sds.c) authenticates, builds
 * the Secrets on a thread of its own and answers with
 * xds_ads_secrets_set() (through xds_server_secret_reply()): the set
 * answering that request, or a status ending the stream.  Secret
 * responses wait for the answer.  The provider may answer again with
 * the same seq (a rotated certificate): the stream gets a push.  When a
 * stream that asked goes, the provider is told (release).
 */
struct xds_secret_req {
	struct mesh_queue_item qi;   /* free for the receiver's queue */
	int release;                 /* the stream is gone: forget it (only stream is set) */
	uint64_t stream;             /* xds_ads_stream_id() */
	uint64_t seq;                /* answer with it */
	char **names;                /* every Secret name subscribed, sorted, unique */
	size_t nnames;
	int secure;                  /* the call came over TLS */
	char *authorization;         /* the call's "authorization" metadata; NULL: none */
	char *peer_id;               /* the SPIFFE ID of its verified client certificate; NULL: none */
	char *node_id;               /* NULL: unknown */
	char *node_ns;               /* metadata NAMESPACE (else from the node id); NULL: unknown */
	char *node_sa;               /* metadata SERVICE_ACCOUNT; NULL: unknown */
};

void xds_secret_req_free(struct xds_secret_req *r);  /* NULL is a no-op */

struct xds_ads_config {
	/* Secret requests (above; NULL: Secrets come from the snapshots
	 * like any type).  Called on the core's thread; must not block;
	 * takes ownership of req. */
	void (*secret)(void *ctx, struct xds_secret_req *req);
	void *secret_ctx;
	/* Per-proxy requests (NULL: the flavour's snapshot only).  Called on
	 * the core's thread; must not block; takes ownership of req. */
	void (*want)(void *ctx, struct xds_proxy_req *req);
	void *want_ctx;
	/* Called by xds_ads_publish() right after a stream got its responses
	 * queued (NULL: not told), with the stream's user pointer, so the
	 * transport starts sending them before the next stream's are built:
	 * a push then holds few encoded responses at a time. */
	void (*queued)(void *user);
	/* Flavours whose whole config is per proxy (bit 1u << flavour; needs
	 * `want`): the sidecar, since what a sidecar gets depends on its
	 * workload.  A stream of such a flavour asks the stage once, when its
	 * Node is first seen, for its key's whole set (XDS_PROXY_WANT_ALL),
	 * and is served from that set alone (wildcards included), never from
	 * a flavour snapshot; it is never refused for want of one. */
	unsigned whole_flavours;
};

/* A new core with no stream and no snapshot into *out.  Returns 0 or -ENOMEM. */
int xds_ads_new(const struct xds_ads_config *cfg, struct xds_ads **out) MESH_MUST_CHECK;
/* Free the core, its snapshots and model; every stream must have been
 * freed before.  NULL is a no-op. */
void xds_ads_free(struct xds_ads *a);

/*
 * The per-proxy set of key (the core takes the snapshot reference): what
 * the push stage built for it, answering every request of the key up to
 * sequence number answered.  Streams of the key get their responses at the
 * next xds_ads_publish() of their flavour or xds_ads_proxy_flush().  A key
 * no stream uses any more is ignored (the set is dropped).
 */
void xds_ads_proxy_set(struct xds_ads *a, const char *key, struct xds_snapshot *snap, uint64_t answered);
/* Queue responses for the streams whose key got a set since the last
 * publish of their flavour; when as for xds_ads_publish. */
void xds_ads_proxy_flush(struct xds_ads *a, const struct timespec *when);
/* Keys with at least one stream (tests, debug). */
size_t xds_ads_proxy_keys(const struct xds_ads *a);

/*
 * A new snapshot for flavour f (the core takes the caller's reference).
 * Each live stream of that flavour gets a response queued for every
 * subscribed type whose content changed (never a version it NACKed);
 * when is the publish time, for the convergence metric (NULL: none).
 */
void xds_ads_publish(struct xds_ads *a, enum xds_flavour f, struct xds_snapshot *snap, const struct timespec *when);
/*
 * End, with UNIMPLEMENTED and one warning each, the streams whose flavour
 * has no snapshot while another flavour has one: meshd has no generator
 * for them.  Call it after a batch of publishes (all flavours of one push),
 * so a flavour published a moment after another is not taken for missing.
 * A request's first Node is checked the same way when it arrives.
 */
void xds_ads_refuse_unserved(struct xds_ads *a);
/* The snapshot last published for f (borrowed), or NULL. */
const struct xds_snapshot *xds_ads_snapshot(const struct xds_ads *a, enum xds_flavour f);
/* Live streams (created and not yet freed). */
int xds_ads_streams(const struct xds_ads *a);

/*
 * A new stream (state of the world, or Delta when delta is set) from peer
 * ("IP:PORT", copied; NULL: unknown) into *out; user is the transport's
 * (passed to the config's queued callback); it is listed in the debug
 * views until freed.  Its id counts from 1 per core.  Returns 0 or -ENOMEM.
 */
int xds_ads_stream_new(struct xds_ads *a, int delta, const char *peer, void *user,
		       struct xds_ads_stream **out) MESH_MUST_CHECK;
/* What the transport knows of the caller, before its first request: the
 * call came over TLS (secure), its "authorization" metadata value
 * (copied, capped; NULL: none), the SPIFFE ID of the client certificate
 * TLS verified (copied; NULL: none).  Used for Secrets only.  Returns 0
 * or -ENOMEM. */
MESH_MUST_CHECK int xds_ads_stream_credentials(struct xds_ads_stream *st, int secure, const char *authorization,
					       size_t len, const char *peer_id);
/*
 * The provider's answer for stream (by id) to its Secret request seq: set
 * (the core takes the reference; NULL: none) holds the Secrets by name;
 * a name it lacks is not sent.  code other than OK ends the stream with
 * it and msg (a caller that proved no identity, or another one than its
 * node claims).  An answer to an older request than the stream's latest,
 * or for a stream that is gone, is dropped.  Queued responses go out
 * through the config's `queued` callback.
 */
void xds_ads_secrets_set(struct xds_ads *a, uint64_t stream, uint64_t seq, struct xds_snapshot *set,
			 enum xds_ads_status code, const char *msg);

/* Unlist and free the stream.  NULL is a no-op. */
void xds_ads_stream_free(struct xds_ads_stream *st);
uint64_t xds_ads_stream_id(const struct xds_ads_stream *st);
/* The first request's node id, or NULL before one arrived (borrowed). */
const char *xds_ads_stream_node_id(const struct xds_ads_stream *st);
/* The stream's flavour (a sidecar until its first Node). */
enum xds_flavour xds_ads_stream_flavour(const struct xds_ads_stream *st);

/*
 * One request as it came off the wire: a DiscoveryRequest, or a
 * DeltaDiscoveryRequest on a Delta stream.  An unparsable message ends the
 * stream with INVALID_ARGUMENT.  Returns 0 or -MESH_EPARSE (the stream is
 * then finishing).
 */
int xds_ads_stream_recv(struct xds_ads_stream *st, const uint8_t *data, size_t len) MESH_MUST_CHECK;
/* How many SotW requests xds_ads_stream_recv() took as plain ACKs from
 * their bytes, without unpacking them (the names repeat the subscription:
 * a hash of the names field compared with the hash of the names held). */
uint64_t xds_ads_stream_fast_acks(const struct xds_ads_stream *st);

/*
 * Reduced SotW ACKs: the same fast path, split so the transport can take a
 * plain ACK apart on the thread that receives it and free its bytes at
 * once (2,000 sidecars ACKing an endpoint change each name every cluster,
 * ~130 KB a request; kept whole while the xDS thread works through them
 * they were a third of meshd's peak RSS in the SotW sidecar row).
 *
 * xds_ads_stream_ack_expect (the core's thread) records what a plain ACK
 * on the stream must look like now, per type: subscribed, wildcard (no
 * names) or the count and wire hash of the names held.  The transport
 * takes it before it asks for the next request; a stream has at most one
 * request outstanding and only a request changes its names, so it still
 * holds when that request arrives.  xds_ads_ack_reduce (any thread: it
 * reads only its arguments) takes a DiscoveryRequest's bytes: 1 and *out
 * when it is such a plain ACK (top-level version_info, resource_names,
 * type_url and response_nonce only, a nonce, the names the expectation
 * has), else 0 (the bytes must go to xds_ads_stream_recv: a Node, an
 * error_detail, other names, an unknown field).  xds_ads_stream_recv_ack
 * (the core's thread) applies one as xds_ads_stream_recv would have the
 * bytes; an ACK that no longer matches the stream (cannot happen under the
 * rule above) ends it with INTERNAL, so the client resubscribes.  Returns
 * 0, or -EPROTO then.
 */
#define XDS_ADS_ACK_STR_CAP 96
struct xds_ads_ack_expect {
	int ok;                            /* reduced ACKs can be taken at all (SotW, Node seen, not ending) */
	struct {
		int subscribed, wildcard;
		int hash_ok;                   /* names_hash is known: else only a wildcard ACK matches */
		size_t nnames;
		uint64_t names_hash;           /* wire hash of the resource_names entries */
	} t[XDS_TYPE_COUNT];
};
struct xds_ads_ack {
	int type;                          /* enum xds_type */
	size_t nnames;
	uint64_t names_hash;
	char version[XDS_ADS_ACK_STR_CAP];
	char nonce[XDS_ADS_ACK_STR_CAP];
};
void xds_ads_stream_ack_expect(const struct xds_ads_stream *st, struct xds_ads_ack_expect *out);
int xds_ads_ack_reduce(const struct xds_ads_ack_expect *e, const uint8_t *data, size_t len, struct xds_ads_ack *out);
int xds_ads_stream_recv_ack(struct xds_ads_stream *st, const struct xds_ads_ack *ack) MESH_MUST_CHECK;
/*
 * A decoded SotW request (Envoy's xDS protocol, "ACK and NACK semantics"):
 * the first one per type subscribes; one quoting the latest nonce ACKs it
 * (or NACKs it with error_detail: recorded, that version not re-sent); an
 * older nonce is stale and ignored; a changed name list resubscribes and
 * gets a response.  The first request's Node fixes the stream's flavour;
 * a flavour without a snapshot while another flavour has one ends the
 * stream with UNIMPLEMENTED and one warning naming what is missing.
 */
void xds_ads_stream_request(struct xds_ads_stream *st, const Envoy__Service__Discovery__V3__DiscoveryRequest *req);
/* A decoded Delta request: resource_names_subscribe / _unsubscribe, "*"
 * and the legacy empty first request (LDS/CDS) as the wildcard, and
 * initial_resource_versions on the first request per type. */
void xds_ads_stream_delta_request(struct xds_ads_stream *st,
				  const Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req);
/* End the stream with code and msg (copied) for a reason of the
 * transport's (half-close: OK).  Queued responses are dropped; the first
 * end wins. */
void xds_ads_stream_end(struct xds_ads_stream *st, enum xds_ads_status code, const char *msg);
/* The transport's call is over: no more responses, and the config dump
 * no longer shows the stream. */
void xds_ads_stream_closed(struct xds_ads_stream *st);

/* One response to send: an encoded DiscoveryResponse (or
 * DeltaDiscoveryResponse on a Delta stream). */
struct xds_ads_response {
	enum xds_type type;
	uint8_t *data;               /* malloc'd wire bytes; the caller frees them */
	size_t len;
	/* NULL, or bytes to send before data, shared by the streams of a
	 * whole-per-proxy key (data is then only the nonce field): the
	 * message is head->data followed by data.  The caller takes the
	 * reference (xds_resource_unref once sent). */
	const struct xds_resource *head;
	/* when the response was first queued (CLOCK_MONOTONIC): the start of
	 * pilot_xds_push_time, which server.c ends when the send completes */
	struct timespec enqueued;
};

/*
 * The oldest queued response, built now (Delta diffs against what the
 * client holds) and recorded as sent: call it when the transport can take
 * a message (one in flight per stream).  Returns 1 with *out filled, 0
 * when there is nothing to send (or the stream is ending), or a negative
 * code (logged; that response is dropped, the next call tries the next).
 */
int xds_ads_stream_next(struct xds_ads_stream *st, struct xds_ads_response *out) MESH_MUST_CHECK;
/*
 * How many bytes the client's answer to the responses queued on st will
 * take, as far as the subscription says: a SotW ACK repeats every
 * resource name it subscribed to (2,000 sidecars ACKing an endpoint
 * change each send ~140 KB), so this is the largest subscription's
 * resource_names encoding among the queued types; 0 for Delta (an ACK is
 * a nonce), wildcard types and nothing queued.  server.c budgets the
 * answers in flight with it (xds_server_config.reply_budget).
 */
size_t xds_ads_stream_reply_hint(const struct xds_ads_stream *st);
/* Whether the stream is to end: 1 with its status in *code and *msg
 * (owned by the stream; "" when none), else 0. */
int xds_ads_stream_finishing(const struct xds_ads_stream *st, enum xds_ads_status *code, const char **msg);

/* Debug views (ads_debug.c), as JSON into out.  The /debug/syncz array:
 * one object per stream, newest first; its shape is an interface. */
int xds_ads_syncz(const struct xds_ads *a, struct mesh_buf *out) MESH_MUST_CHECK;
/* What proxy_id's newest live stream was last sent, per type, as Envoy's
 * admin config dump JSON.  proxy_id is a node id or, as istiod's debug
 * endpoints take it, Istio's proxy ID "POD.NAMESPACE" (the node id's third
 * part).  Returns -ENOENT when no such proxy is connected, -ENOTUNIQ when
 * the short form names several. */
int xds_ads_config_dump(const struct xds_ads *a, const char *proxy_id, struct mesh_buf *out) MESH_MUST_CHECK;
/* The workload proxy_id (found as xds_ads_config_dump finds it) says it
 * is in its Node, what the generators select Sidecar, Telemetry and
 * policies by: its namespace into ns ("" when unknown) and its LABELS
 * metadata as "k=v,k2=v2" into labels ("" when none), each
 * NUL-terminated.  Returns 0, -ENOENT, -ENOTUNIQ, -EINVAL, or a buffer's
 * error. */
int xds_ads_proxy_workload(const struct xds_ads *a, const char *proxy_id, struct mesh_buf *ns,
			   struct mesh_buf *labels) MESH_MUST_CHECK;

#endif
