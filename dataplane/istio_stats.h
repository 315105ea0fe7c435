/*
 * istio_stats.h - Istio's standard metrics for meshproxy (issue 14):
 * istio_requests_total, istio_request_duration_milliseconds,
 * istio_request_bytes and istio_response_bytes (histograms), with the
 * labels Istio's stats filter (proxy's istio_stats) writes, for
 * reporter="source" (outbound) and reporter="destination" (inbound); and
 * Istio's HTTP metadata exchange (x-envoy-peer-metadata-id and
 * x-envoy-peer-metadata: the node id, and the base64 of a serialized
 * google.protobuf.Struct of the node metadata: NAME, NAMESPACE,
 * WORKLOAD_NAME, CLUSTER_ID, LABELS{app, version,
 * service.istio.io/canonical-name, service.istio.io/canonical-revision}).
 *
 * One series per distinct label set, kept in a hash table of at most
 * max_series entries (a request past the cap is counted in
 * meshproxy_istio_stats_overflow_total and dropped).  After a label set's
 * first request a record is a hash of the key on the stack and a
 * table lookup: no allocation.  Decoded peer metadata is cached by its
 * header text the same way.  Everything runs on the proxy's loop thread.
 *
 * issue 14: what is recorded, and with which labels, is the listener's
 * istio.stats filter's (struct istio_stats_cfg below, meshd's rendering
 * of the workload's Telemetry metrics); the caller records nothing for a
 * chain without the filter, as Envoy does.  Each metric's label text is
 * kept once (a cell shared by every key rendering it), so overrides and
 * configurations replaced live never list a series twice.
 */
#ifndef MESH_DATAPLANE_ISTIO_STATS_H
#define MESH_DATAPLANE_ISTIO_STATS_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

#define ISTIO_STR_MAX 64           /* one label value from peer metadata (longer: cut) */
#define ISTIO_DEFAULT_MAX_SERIES 2048
#define ISTIO_PEER_CACHE 128       /* distinct peers remembered; more peers read as "unknown" */
#define ISTIO_META_HDR_MAX 2048    /* base64 metadata header value cap, both ways */
#define ISTIO_CFG_EXPR_MAX 64      /* distinct tag expressions in one istio.stats config (more: tag dropped) */
#define ISTIO_CFG_HDR_MAX 8        /* request headers the expressions read (more: tag dropped) */
#define ISTIO_TCP_REPORT_DEFAULT_MS 5000 /* istio/proxy's tcp_reporting_duration default */

/* A workload as metadata exchange describes it; "" is unknown. */
struct istio_peer {
	char workload[ISTIO_STR_MAX], ns[ISTIO_STR_MAX], app[ISTIO_STR_MAX], version[ISTIO_STR_MAX];
	char canon_svc[ISTIO_STR_MAX], canon_rev[ISTIO_STR_MAX], cluster[ISTIO_STR_MAX];
};

/*
 * Our own peer from meshproxy's flags: node_id "TYPE~IP~POD.NS~NS.svc.cluster.local"
 * (the workload name is the pod name until istio_stats_set_workload), labels
 * "k=v,..." (--labels), cluster_id ("" or NULL: Istio's default "Kubernetes").
 * Returns 0 or -EINVAL for a malformed labels list.
 */
int istio_peer_from_node(struct istio_peer *p, const char *node_id, const char *labels, const char *cluster_id);

/* Encodes p as Istio's x-envoy-peer-metadata value (base64 of a packed
 * google.protobuf.Struct, node_id as NAME's pod part) into out (cap bytes,
 * NUL-terminated).  Returns the length or -ENOSPC / -ENOMEM. */
int istio_peer_encode(const struct istio_peer *p, char *out, size_t cap);
/* Decodes an x-envoy-peer-metadata value.  Returns 0 or -EINVAL. */
int istio_peer_decode(const char *b64, size_t len, struct istio_peer *p);

/*
 * issue 14: Istio's TCP metadata exchange (istio/proxy
 * source/extensions/filters/network/metadata_exchange), spoken on a
 * connection whose mTLS negotiated ALPN "istio-peer-exchange": each side
 * first sends magic 0x3D230467 and the data's length (both 32-bit, network
 * order) then a google.protobuf.Any holding a Struct
 * {x-envoy-peer-metadata: the node metadata, x-envoy-peer-metadata-id:
 * the node id}, and strips the other side's before passing bytes on.
 */
#define ISTIO_MX_MAX 2048
/* Encodes p's exchange into out (cap bytes): the length, or -ENOSPC /
 * -ENOMEM / -EINVAL. */
int istio_peer_mx_encode(const struct istio_peer *p, const char *node_id, uint8_t *out, size_t cap);
/* The whole exchange's length (header included) when p (len bytes read
 * so far) starts one: 0 when fewer than 8 bytes are there, -EINVAL when
 * the magic is wrong (the peer does not speak it) or the size is over
 * ISTIO_MX_MAX. */
long istio_peer_mx_size(const uint8_t *p, size_t len);
/* Decodes the Any after the 8-byte header.  0 or -EINVAL. */
int istio_peer_mx_decode(const uint8_t *data, size_t len, struct istio_peer *p);

struct istio_stats;

/* A new table for our own node (see istio_peer_from_node); sa is the
 * service account (for our SPIFFE id, "" or NULL: none); max_series 0:
 * ISTIO_DEFAULT_MAX_SERIES.  Free with istio_stats_free().  Returns 0,
 * -EINVAL, -ENOMEM. */
MESH_MUST_CHECK int istio_stats_new(const char *node_id, const char *labels, const char *sa, size_t max_series,
				    struct istio_stats **out);
/* Our workload's name (the Deployment's, not the pod's), as Istio's agent
 * takes it from ISTIO_META_WORKLOAD_NAME (the injector's env; meshproxy's
 * --workload-name): our source_/destination_workload and the WORKLOAD_NAME
 * we send peers; the canonical service follows it when no label gave one.
 * "" or NULL keeps the pod name; past ISTIO_STR_MAX - 1 bytes it is cut, as
 * the pod name is.  Returns 0, -ENOSPC (the metadata would not fit). */
MESH_MUST_CHECK int istio_stats_set_workload(struct istio_stats *st, const char *workload);
/* NULL is a no-op. */
void istio_stats_free(struct istio_stats *st);

/* The header values we send (borrowed, live as long as st). */
const char *istio_stats_meta_id(const struct istio_stats *st);
const char *istio_stats_meta(const struct istio_stats *st);

/* Our exchange (istio_peer_mx_encode of our node), NULL when it does
 * not fit. */
const uint8_t *istio_stats_mx(const struct istio_stats *st, size_t *len);
/* The peer a TCP exchange's Any (after the 8-byte header) describes,
 * cached as istio_stats_peer's. */
const struct istio_peer *istio_stats_peer_mx(struct istio_stats *st, const uint8_t *data, size_t len);

/* The peer a metadata header value describes, decoded once per distinct
 * value and cached; NULL when it does not decode or the cache is full. */
const struct istio_peer *istio_stats_peer(struct istio_stats *st, const char *b64, size_t len);

/* A stable copy of a peer's principal (an upstream's SPIFFE id, for the
 * source reporter's destination_principal), kept as long as st; NULL for
 * NULL or when ISTIO_PEER_CACHE principals are kept already. */
const char *istio_stats_principal(struct istio_stats *st, const char *principal);

/* Whether name (len bytes) is one of the two exchange headers (stripped
 * where Istio strips them). */
int istio_is_meta_header(const char *name, size_t len);

/* grpc-status in a block of "name: value\r\n" lines (an HTTP/1 trailer
 * block), or -1 when absent or not a number. */
int istio_grpc_status_in(const char *p, size_t len);
/* grpc-status from one header value, or -1. */
int istio_grpc_status_val(const char *v, size_t len);

/*
 * The destination service host: the host of an Istio cluster name
 * "outbound|PORT|SUBSET|HOST", else the authority without its port (an
 * inbound cluster "inbound|PORT||" names none).  *len gets its length;
 * returns a pointer into cluster or authority (NULL, *len 0: none).
 */
const char *istio_service_of(const char *cluster, const char *authority, size_t alen, size_t *len);

/*
 * issue 13: the destination_service_name Istio's stats filter gives the
 * catch-alls (istio/proxy's populateDestinationService): route "block_all"
 * (REGISTRY_ONLY) is "BlackHoleCluster", route "allow_any" (ALLOW_ANY)
 * "PassthroughCluster", and a request that went to the BlackHoleCluster,
 * PassthroughCluster or InboundPassthroughCluster(Ipv4|Ipv6) cluster is
 * named after that cluster.  NULL for anything else (the name comes from
 * the service host).  route and cluster may be NULL.
 */
const char *istio_catchall_name(const char *route, const char *cluster);

/*
 * issue 14: one istio.stats filter's configuration (Istio's
 * stats.PluginConfig, proto/istio/stats/config.proto, from the serialized
 * bytes of the filter's typed_config), compiled once at load so a request
 * pays only for the expressions' values:
 * - metrics[].drop: the metric is not counted nor shown for this listener;
 * - tags_to_remove: those standard labels are left out;
 * - dimensions: a standard label takes the expression's value, any other
 *   name is added after the standard ones;
 * - a MetricConfig without name applies to every metric; names of metrics
 *   meshproxy does not report (request_messages_total, custom ones) are
 *   accepted and ignored, as Istio ignores unknown tags;
 * - a tag name is written as a Prometheus label name, as Envoy's
 *   Prometheus output does (bytes outside [a-zA-Z0-9_] become '_', a
 *   leading digit gets a '_' before it); a tag without a name, or a tag
 *   "le" on a histogram (its bucket label), refuses the configuration;
 * - tcp_reporting_duration (default 5 s): how often an open TCP
 *   connection's bytes are reported (tcpproxy.c).
 * Expressions (Istio's tagOverrides values, CEL): string literals in
 * single or double quotes, request.host, request.method, request.path,
 * request.url_path, request.headers['NAME'], response.code,
 * source.address, source.port, destination.address, destination.port
 * (HTTP metrics; on TCP metrics they read "unknown"), upstream_peer.F and
 * downstream_peer.F (F: app, version,
 * workload, namespace, cluster, service, revision), xds.cluster_name,
 * xds.route_name, and string(X) of any of them.  Anything else is
 * judged as Istio's getOrCreateExpression judges it (common/cel.h):
 * - valid CEL calling only CEL's built-ins ("a4co-cluster",
 *   "request.path + 'x'", "size(request.path)"): accepted, the tag reads
 *   "unknown" (what Istio writes when evaluation fails; Istio evaluates
 *   some of these to a real value, meshproxy does not);
 * - does not parse as CEL ("a b", "'x"): the tag is left out (a standard
 *   tag it overrides is removed, as Istio's empty override), the
 *   configuration kept; counted in
 *   meshproxy_istio_stats_tag_expr_dropped_total{reason="parse"};
 * - calls a function CEL does not define ("foo(x)"): -EINVAL with why
 *   naming the expression (Envoy: "failed to create an expression"; the
 *   listener is NACKed).
 * Past ISTIO_CFG_EXPR_MAX distinct expressions or ISTIO_CFG_HDR_MAX
 * headers the tag is left out the same way ({reason="cap"}); added tags
 * per metric are not capped (as Istio).  On success why holds the first
 * tag left out ("" when none), for the caller's log.  An empty or unknown
 * value reads "unknown", as Istio's failed evaluations do.
 * 0, -EINVAL, -ENOMEM.
 */
struct istio_stats_cfg;
MESH_MUST_CHECK int istio_stats_cfg_new(const uint8_t *data, size_t len, struct istio_stats_cfg **out, char *why,
					size_t cap);
void istio_stats_cfg_free(struct istio_stats_cfg *c); /* NULL is a no-op */
/* Tags c left out (their expression does not parse, or past a cap). */
size_t istio_stats_cfg_dropped(const struct istio_stats_cfg *c);
/* A hash of the configuration's bytes: equal ones share one compiled
 * configuration (engine.c). */
uint64_t istio_stats_cfg_id(const struct istio_stats_cfg *c);
/* tcp_reporting_duration in ms (c NULL: the default). */
uint64_t istio_stats_cfg_report_ms(const struct istio_stats_cfg *c);
/* 1 when an expression of c reads destination.address or .port (Envoy's
 * attributes: the downstream connection's local address, the original
 * destination of a redirected one), which the caller then fills into
 * istio_req; 0 otherwise or for NULL. */
int istio_stats_cfg_needs_local(const struct istio_stats_cfg *c);
/* The request headers c's expressions read (lower case), for the caller
 * to capture at the request's start into istio_req.hdr_vals in this order. */
size_t istio_stats_cfg_headers(const struct istio_stats_cfg *c, const char *const **names);

/* A header value captured for the expressions (istio_stats_cfg_headers). */
struct istio_hval {
	const char *p;
	size_t len;
};

/* One finished request.  Strings are borrowed for the call. */
struct istio_req {
	const struct istio_stats_cfg *cfg; /* the listener's istio.stats filter; NULL: no overrides */
	int inbound;                    /* 1: reporter="destination", 0: "source" */
	const struct istio_peer *peer;  /* the other side, NULL: unknown */
	const char *peer_principal;     /* its verified SPIFFE id, NULL: unknown */
	int mtls;                       /* inbound: came over mutual TLS */
	const char *service;            /* destination service host ("reviews.demo.svc.cluster.local") */
	size_t service_len;
	const char *service_name;       /* destination_service_name when set (istio_catchall_name()), the
	                                 * namespace then the peer's; NULL: both from service */
	int grpc;                       /* request_protocol "grpc", else "http" */
	int response_code;              /* 0: none sent */
	int grpc_status;                /* -1: none */
	const char *response_flags;     /* Envoy's short flags, "-" for none */
	uint64_t duration_ms, request_bytes, response_bytes;
	/* what tag expressions read (istio_stats_cfg_new); NULL/0: unknown */
	const char *method, *path, *host;
	size_t method_len, path_len, host_len;
	const char *cluster, *route, *source_address;
	unsigned source_port;
	const char *destination_address; /* read only when istio_stats_cfg_needs_local() */
	unsigned destination_port;
	const struct istio_hval *hdr_vals;
	size_t n_hdr_vals;
};
void istio_stats_record(struct istio_stats *st, const struct istio_req *r);

/*
 * A TCP proxy connection in istio_tcp_connections_opened_total /
 * _closed_total, istio_tcp_received_bytes_total (from downstream) and
 * istio_tcp_sent_bytes_total (to downstream): Istio's TCP labels (those of
 * a request with request_protocol "tcp", without response_code and
 * grpc_response_status).  r's response_code, grpc and grpc_status are
 * ignored; opened and closed are what to add (0 or 1), r's byte counts
 * what moved since the connection's last report (tcpproxy.c reports every
 * tcp_reporting_duration and at the close).  r->peer: the peer of the
 * TCP metadata exchange (istio_stats_peer_mx), NULL without one.
 */
void istio_stats_tcp(struct istio_stats *st, const struct istio_req *r, int opened, int closed);

/* Appends the istio_* families in Prometheus text format (a series per
 * distinct label text of each metric).  Whatever bytes the labels' values
 * came from, the text parses: values escaped, bytes that are not UTF-8
 * written as U+FFFD, and a series' label text kept under its cap by
 * cutting a value between characters or leaving a whole label out. */
void istio_stats_prometheus(const struct istio_stats *st, struct mesh_buf *out);

/* Series in use and requests dropped at the cap. */
size_t istio_stats_series(const struct istio_stats *st);
uint64_t istio_stats_overflow(const struct istio_stats *st);

#endif
