/*
 * tracing.h - distributed tracing in meshproxy (issue 14): the HCM's
 * `tracing` (Envoy's http_connection_manager.proto Tracing, provider
 * envoy.tracers.zipkin) compiled per filter chain; per request, a trace
 * continued from W3C traceparent/tracestate or B3 (single `b3` and multi
 * x-b3-*) or started, sampled as Envoy decides; at the end a Zipkin v2 span
 * (CLIENT on outbound, SERVER on inbound) with Istio's tags, queued and
 * POSTed in batches to the collector cluster from the loop, never blocking.
 * The provider envoy.tracers.opentelemetry exports the same spans as OTLP
 * instead, as Envoy's OpenTelemetry tracer: over HTTP (http_service: POST
 * of an ExportTraceServiceRequest, application/x-protobuf) or gRPC
 * (grpc_service envoy_grpc: TraceService/Export, one call per batch).
 */
#ifndef MESH_DATAPLANE_TRACING_H
#define MESH_DATAPLANE_TRACING_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/http1.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;
struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing;

#define TRACE_BATCH 100         /* spans per POST; a full batch is sent at once */
#define TRACE_FLUSH_MS 1000     /* a partial batch waits at most this long */
#define TRACE_QUEUE_MAX 2000    /* spans queued (sending or waiting); past it, dropped and counted */
#define TRACE_QUEUE_BYTES (4u << 20)
#define TRACE_POST_TIMEOUT_MS 5000

/* One HCM's tracing, compiled (owned by the config that compiled it). */
struct trace_cfg {
	double random_pct, client_pct, overall_pct; /* Envoy's Percent values, 0..100 */
	uint32_t max_path_len;                       /* max_path_tag_length [256] */
	int id128;                                   /* ZipkinConfig.trace_id_128bit: new traces get 128-bit ids */
	char *cluster;                               /* collector_cluster (owned) */
	char *endpoint;                              /* collector_endpoint [/api/v2/spans] (owned) */
	char *hostname;                              /* collector_hostname, the POST's Host [cluster] (owned) */
	int otlp;                                    /* 0 zipkin, or OpenTelemetryConfig's exporter: */
#define TRACE_OTLP_HTTP 1                            /* http_service: OTLP/HTTP protobuf POST */
#define TRACE_OTLP_GRPC 2                            /* grpc_service envoy_grpc: OTLP/gRPC Export */
	char *service_name;                          /* OTLP resource service.name (owned; "" for zipkin) */
	char *extra_headers;                         /* "name: value\r\n"... added to each POST; OTLP/gRPC:
	                                              * the authorization metadata value, "" none (owned) */
	uint32_t timeout_ms;                         /* a POST's deadline [TRACE_POST_TIMEOUT_MS] */
	size_t n_tags;
	struct trace_tag {
		char *tag;                           /* owned */
		int kind;                            /* 0 literal, 1 environment, 2 request header */
		char *value;                         /* literal value / env or header name (owned) */
		char *dflt;                          /* default_value (owned, may be NULL) */
	} *tags;
};

/* Compile an HCM's tracing; *out NULL (and 0) when t is NULL or its
 * provider is neither envoy.tracers.zipkin nor an OpenTelemetryConfig
 * with an http_service or an envoy_grpc grpc_service.  The OTLP/HTTP uri
 * "HOST/PATH" (Istio's url.JoinPath, a scheme allowed) gives the POST's
 * Host and path ["/v1/traces" when it has none], the cluster its
 * collector, timeout its deadline, request_headers_to_add its extra
 * headers; OTLP/gRPC takes cluster_name, authority [the cluster] and
 * timeout and an authorization initial_metadata (other keys are not sent).  0, -ENOMEM, or -EINVAL with
 * err (an unsupported collector_endpoint_version, a config that does not
 * decode). */
MESH_MUST_CHECK int trace_cfg_new(
	const struct Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing *t,
	struct trace_cfg **out, char *err, size_t cap);
void trace_cfg_free(struct trace_cfg *c); /* NULL is a no-op */

/* A request's span, embedded in the stream; zeroed = not traced. */
struct trace_span {
	const struct trace_cfg *cfg;  /* the port's (the stream holds its config); NULL: not traced */
	char trace_id[33];            /* 16 or 32 lower-case hex digits */
	char span_id[17];             /* this hop's span */
	char parent_id[17];           /* the caller's span, "" for a root */
	int sampled;
	uint64_t start_us;            /* wall clock, microseconds since the epoch */
	char *hdr_tags;               /* sampled: the request-header custom tags' values, read at the
	                               * start (NUL-separated, in tag order; owned, NULL: none) */
	char *tracestate;             /* sampled OTLP: the caller's W3C tracestate (owned, NULL: none) */
};

/* Release what sp holds (the header tags) when it ends unfinished; sp is
 * cleared.  tracer_finish() does it too. */
void trace_span_cleanup(struct trace_span *sp);

/* Decide for a request: continue the trace its headers carry (traceparent,
 * else b3, else x-b3-traceid/spanid) or start one; sampled when the caller
 * says so (x-b3-sampled, b3's flag, traceparent's flags, x-b3-flags: 1,
 * x-envoy-force-trace), else with cfg->random_pct percent (Envoy's
 * ConnectionManagerUtility::mutateTracingRequestHeader, and the trace
 * context's own sampling decision kept as Envoy's zipkin tracer does).
 * rnd: two fresh random words.  Does not fail. */
void trace_start(struct trace_span *sp, const struct trace_cfg *cfg, const struct h1_head *h, uint64_t rnd1,
		 uint64_t rnd2, uint64_t now_us);

/* The trace headers a request carries that trace_put_headers() replaces
 * (traceparent, b3, x-b3-*): 1 for those, else 0.  tracestate passes. */
int trace_is_ctx_header(struct h1_str name);

/* Append the upstream's trace context: x-b3-traceid, x-b3-spanid,
 * x-b3-parentspanid (when any), x-b3-sampled, and traceparent (W3C, the
 * trace id left-padded to 128 bits).  mesh_buf's return. */
int trace_put_headers(const struct trace_span *sp, struct mesh_buf *b);

/* What the end of a request tells the span (all strings may be NULL). */
struct trace_end {
	int inbound;                 /* server span (else client) */
	const char *method, *authority, *path, *protocol, *user_agent, *request_id;
	size_t method_len, authority_len, path_len, protocol_len, user_agent_len, request_id_len;
	const char *cluster;         /* upstream cluster name */
	const char *peer_address;    /* the downstream peer's IP */
	const char *upstream_host;   /* "IP:PORT" of the last attempt */
	const char *response_flags;  /* Envoy's short flags, "-" for none */
	int status;
	uint64_t request_size, response_size;
	uint64_t end_us;
	/* the span's name: the route's decorator operation (or the caller's
	 * x-envoy-decorator-operation inbound); NULL: "AUTHORITY/PATH" */
	const char *operation;
	size_t operation_len;
	const struct h1_head *req;   /* request-header custom tags not read at the start; may be NULL */
};

struct tracer;

/* Finds the collector: the first host of cluster name in the current
 * config into *ss; 0 or a negative errno (no such cluster / no host). */
typedef int (*tracer_resolve_fn)(void *ctx, const char *cluster, struct sockaddr_storage *ss, socklen_t *len);

/* The process's exporter.  node_id is --node-id
 * (TYPE~IP~POD.NS~NS.svc.cluster.local), labels --labels (k=v,...): from
 * them the Istio tags (istio.canonical_service from
 * service.istio.io/canonical-name, else app, else the pod's name;
 * istio.canonical_revision from canonical-revision, else version, else
 * "latest"; istio.namespace; istio.mesh_id "cluster.local"; node_id).
 * Strings are copied.  NULL on memory failure. */
struct tracer *tracer_new(struct ev_loop *loop, const char *node_id, const char *labels, tracer_resolve_fn resolve,
			  void *ctx);
void tracer_free(struct tracer *t); /* NULL is a no-op; a POST in flight is abandoned */

/* End sp (if sampled) into a queued span, Zipkin v2 JSON or an OTLP Span
 * as sp's config says; sp is cleared.  Spans for another collector than
 * the queued ones (a config change) first send the queue (or drop it,
 * counted, while a POST is in flight). */
void tracer_finish(struct tracer *t, struct trace_span *sp, const struct trace_end *end);

/* Zipkin POSTs (posts_*, spans_sent: Envoy's tracing.zipkin.*) and OTLP
 * ones (otlp_*: Envoy's tracing.opentelemetry.spans_sent and
 * http_reports_sent/success/failed) apart; queued and dropped for both. */
struct tracer_stats {
	uint64_t spans_queued, spans_sent, spans_dropped, posts_ok, posts_failed;
	uint64_t otlp_spans_sent, otlp_reports_sent, otlp_reports_ok, otlp_reports_failed;
};
void tracer_get_stats(const struct tracer *t, struct tracer_stats *out);

#endif
