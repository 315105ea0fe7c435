/*
 * xds_client.h - meshproxy's ADS client: one aggregated stream to meshd
 * (envoy.service.discovery.v3.AggregatedDiscoveryService, state of the
 * world or Delta), the resources it receives turned into px_snapshots the
 * engine validates whole, ACKs and NACKs, and reconnection with backoff.
 *
 * What it follows, from Envoy's xDS client (grpc_mux_impl.cc,
 * delta_subscription_state.cc and the xDS protocol document):
 *  - LDS and CDS are wildcard subscriptions; RDS names come from the
 *    accepted listeners' HTTP connection managers (rds.route_config_name)
 *    and EDS names from the accepted EDS clusters
 *    (eds_cluster_config.service_name, else the cluster's name).  A change
 *    of those sets is a new request on the stream (SotW: the whole list
 *    again; Delta: resource_names_subscribe / _unsubscribe with the
 *    difference).
 *  - Each response is decoded whole (any resource that does not decode,
 *    a wrong type URL or a duplicate name rejects the response), composed
 *    into a candidate snapshot and handed to the engine's apply hook; 0
 *    takes it (ACK: version_info = the response's version, response_nonce
 *    = its nonce), < 0 NACKs it with error_detail {code INVALID_ARGUMENT,
 *    message = the reason} and the last good snapshot stays.
 *  - Delta (DeltaAggregatedResources): the first request of a type on a
 *    stream subscribes (LDS/CDS: the legacy wildcard, no names; RDS/EDS:
 *    every name wanted) and carries initial_resource_versions, the
 *    name -> version of every resource held of that type, so that a
 *    reconnection is not sent again what did not change.  A response's
 *    resources add to or replace the held set by name (Resource.name,
 *    which must match the name inside the message), removed_resources
 *    drop names; the result is composed and validated whole as in SotW.
 *    ACK = response_nonce; NACK = response_nonce + error_detail.  A
 *    NACKed response still counts as held for what follows: meshd (as
 *    istiod) sends only differences from what it sent, so the client keeps
 *    the server's view (applied set + every response since, NACKed ones
 *    included) apart from the applied set, and validates the server's view
 *    whole on each response (falling back to the applied set with only
 *    this type's update when another type's rejected update still fails);
 *    initial_resource_versions on a new stream are the applied set.  The
 *    held versions are the Resource.version meshd gave (Envoy's
 *    per-resource versions); system_version_info is what config_dump
 *    shows as a type's version_info.
 *  - Warming: a cluster is applied once its endpoints arrived (until then
 *    its previous version, if any, keeps serving with its previous
 *    endpoints), a listener once the route configs it names arrived (its
 *    previous version stays meanwhile).  After XDS_WARM_TIMEOUT_MS the
 *    candidate is applied with whatever is missing (Envoy's initial fetch
 *    timeout, 15 s).
 *  - Secrets (issue 13, with a store in cfg.sds): the names the accepted
 *    listeners' and clusters' TLS contexts give in SdsSecretConfig (other
 *    than "default"/"ROOTCA", the workload identity's) are subscribed like
 *    RDS/EDS names, once LDS/CDS named them.  A Secret response is checked
 *    whole by the store (a bad one is NACKed) and goes there without the
 *    engine compiling anything.  No warming on secrets (the simplest
 *    faithful choice: Envoy would hold such a listener or cluster back):
 *    a listener or cluster whose secret has not arrived is applied, and
 *    its TLS connections fail (as with no workload certificate yet) until
 *    the secret arrives; others are not held up.
 *  - Readiness (/ready, Envoy's server state LIVE): once LDS and CDS have
 *    been applied and nothing is warming (or the warm timeout passed).
 *  - Stream end or connection loss: the last snapshot keeps serving; the
 *    client reconnects after an exponential backoff with jitter (base
 *    500 ms, max 30 s, as Envoy's JitteredExponentialBackOffStrategy) and
 *    resubscribes with the versions it holds.  A stream that delivered a
 *    response resets the backoff.
 *
 * Resources are named from their messages (Listener.name,
 * RouteConfiguration.name, Cluster.name, ClusterLoadAssignment.cluster_name,
 * Secret.name).  Everything runs on the proxy's loop.  Functions return 0
 * or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_XDS_CLIENT_H
#define MESH_DATAPLANE_XDS_CLIENT_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/ev.h"
#include "dataplane/grpc_client.h"
#include "dataplane/snapshot.h"

#include <stddef.h>
#include <stdint.h>

#define XDS_ADS_PATH "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define XDS_DELTA_ADS_PATH "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define XDS_BACKOFF_BASE_MS 500
#define XDS_BACKOFF_MAX_MS 30000
#define XDS_WARM_TIMEOUT_MS 15000
#define XDS_MAX_ERROR 512 /* NACK message bytes kept */

/*
 * The engine's hook: compile candidate whole.  Return 0 to take it (the
 * engine keeps its own reference with px_snapshot_ref() and swaps it in
 * between requests), or < 0 with a reason in err (NUL-terminated, cap
 * bytes) to NACK it.  candidate is only borrowed for the call.
 */
typedef int (*xds_apply_fn)(void *ctx, struct px_snapshot *candidate, char *err, size_t cap);

/* The xDS variant (meshproxy --xds-protocol): Istio runs Envoy with Delta
 * by default since 1.22 (ISTIO_DELTA_XDS). */
enum xds_protocol {
	XDS_PROTOCOL_SOTW = 0,  /* StreamAggregatedResources */
	XDS_PROTOCOL_DELTA = 1, /* DeltaAggregatedResources */
};

/* "sotw" / "delta"; NULL for anything else. */
const char *xds_protocol_name(enum xds_protocol p);

/* The node as meshd reads it: strings are borrowed and must outlive the client. */
struct xds_client_config {
	const char *node_id;         /* "sidecar~IP~POD.NS~NS.svc.cluster.local" */
	const char *labels;          /* "k=v,k2=v2" (node metadata LABELS), may be "" */
	const char *service_account; /* metadata SERVICE_ACCOUNT */
	const char *interception;    /* metadata INTERCEPTION_MODE; NULL: "REDIRECT" */
	const char *locality;        /* Node.locality "region/zone/subzone" (meshd's locality LB); NULL or "": none */
	const char *version;         /* user_agent_version and ISTIO_VERSION-like META */
	enum xds_protocol protocol;  /* SotW unless told */
	xds_apply_fn apply;
	void *apply_ctx;
	uint64_t warm_timeout_ms;    /* 0: XDS_WARM_TIMEOUT_MS */
	struct grpc_client_opts grpc; /* keepalive, limits, transport */
	/* issue 13: the secret store (sds.h) the Secret type feeds, set by
	 * main.c; NULL: no Secret is asked for */
	struct px_sds *sds;
	/* issue 13: xDS over TLS (meshd's 15012), set by main.c: called before
	 * each connection, it gives the connection's TLS context (*tls, a
	 * reference the client drops) and authorization header value (*auth,
	 * malloc'd or NULL, freed by the client); < 0 fails that attempt
	 * (backoff).  NULL: grpc as given (plaintext 15010). */
	int (*tls_setup)(void *ctx, struct px_tls_ctx **tls, char **auth);
	void *tls_setup_ctx;
};

struct xds_client;
struct px_sds;

/* Counters (Envoy's control_plane.* and per-type update_* stats). */
struct xds_type_stats {
	uint64_t update_attempt, update_success, update_rejected;
	/* resources decoded from responses, and names removed by Delta
	 * responses: what a reconnection cost (not Envoy stats) */
	uint64_t resources_received, resources_removed;
};
struct xds_client_stats {
	struct xds_type_stats type[XDS_TYPE_COUNT];
	uint64_t stream_attempts, stream_failures, responses_ignored;
	/* the ADS connections, as Envoy's cluster.xds-grpc.upstream_cx_* */
	struct grpc_client_stats cx;
	int connected;
	enum xds_protocol protocol;
};

/* A client on loop with cfg (copied; its strings borrowed).  -EINVAL for a
 * missing node id or apply hook, -ENOMEM. */
MESH_MUST_CHECK int xds_client_new(struct ev_loop *loop, const struct xds_client_config *cfg, struct xds_client **out);
/* Closes the stream and frees everything; NULL is a no-op. */
void xds_client_free(struct xds_client *c);

/* Connects to addr (HOST:PORT, numeric or "localhost": nothing resolves
 * names on the loop; a DNS name would be resolved once before the loop
 * starts, by the caller) and keeps the stream up from then on.  -EINVAL
 * for a bad address. */
MESH_MUST_CHECK int xds_client_start(struct xds_client *c, const char *addr);

/* Non-zero once a first complete configuration is applied (stays so). */
const int *xds_client_ready(const struct xds_client *c);
/* The snapshot last applied (borrowed; never NULL). */
const struct px_snapshot *xds_client_snapshot(const struct xds_client *c);
const struct xds_client_stats *xds_client_stats(const struct xds_client *c);

/* Envoy's /config_dump JSON: {"configs": [ListenersConfigDump,
 * ClustersConfigDump, RoutesConfigDump, EndpointsConfigDump]} of the
 * applied snapshot.  -MESH_ETOOBIG past out's cap. */
MESH_MUST_CHECK int xds_client_config_dump(const struct xds_client *c, struct mesh_buf *out);
/* The same, with one more element of "configs" written by extra (a JSON
 * object, e.g. the SecretsConfigDump of identity.h) after the xDS types;
 * extra NULL: as xds_client_config_dump(). */
MESH_MUST_CHECK int xds_client_config_dump_with(const struct xds_client *c, struct mesh_buf *out,
						void (*extra)(void *ctx, struct mesh_buf *out), void *ctx);
/* "name: value" lines for /stats (control_plane.xds_delta: 1 under Delta). */
void xds_client_stats_text(const struct xds_client *c, struct mesh_buf *out);

/* ---- the stream logic without the transport (unit tests; the gRPC
 * callbacks call the same).  send gets each encoded DiscoveryRequest
 * (DeltaDiscoveryRequest under Delta). */
typedef int (*xds_send_fn)(void *ctx, const uint8_t *msg, size_t len);
/* A new stream: sends the subscriptions (with the versions held). */
MESH_MUST_CHECK int xds_client_stream_begin(struct xds_client *c, xds_send_fn send, void *send_ctx);
/* One encoded DiscoveryResponse (DeltaDiscoveryResponse) from the stream. */
void xds_client_stream_recv(struct xds_client *c, const uint8_t *msg, size_t len);
/* The stream ended (status as gRPC's); the snapshot stays. */
void xds_client_stream_end(struct xds_client *c, int status, const char *message);
/* The current backoff before the next reconnection, milliseconds (tests). */
uint64_t xds_client_backoff_ms(const struct xds_client *c);

#endif
