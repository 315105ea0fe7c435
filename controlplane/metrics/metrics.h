/*
 * metrics.h - meshd's Prometheus metrics, with Istio's names where they exist.
 *
 * A fixed set of counters, gauges and one histogram, updated with atomics
 * from any thread and rendered by /metrics.  A leaf module: the ADS server,
 * the sources and the push stage update it; debug/ only renders it.  It
 * includes nothing from debug/, xds/ or the sources (the type enum comes
 * from common/xds/types.h), so every writer can use it without a cycle.
 */
#ifndef MESH_METRICS_H
#define MESH_METRICS_H

#include "common/buf.h"
#include "common/xds/types.h"

#include <stdint.h>

/* pilot_xds_pushes{type="cds|eds|lds|rds|sds"} */
void metrics_xds_push(enum xds_type t);
/* pilot_total_xds_rejects{type=...} */
void metrics_xds_reject(enum xds_type t);
/* pilot_xds: connected xDS streams (gauge) */
void metrics_xds_connected(int delta);
/* pilot_proxy_convergence_time (seconds histogram): config change -> push sent */
void metrics_convergence(double seconds);
/* meshd_config_rejected_total: objects rejected by validation */
void metrics_config_rejected(uint64_t n);
/* meshd_config_objects{kind=...} (gauge, set after each change) */
void metrics_config_objects(int kind, uint64_t n);
/* meshd_config_reloads_total */
void metrics_config_reload(void);
/* meshd_config_read_failures_total: a source could not read (a directory or
 * file of the file source, a list or watch of the Kubernetes API) and kept
 * the last good configuration of what it could not read */
void metrics_config_read_failure(void);

/*
 * Istio's control-plane dashboard metrics (pilot/pkg/xds/monitoring.go,
 * pilot/pkg/model/push_context.go, security/pkg/server/ca/monitoring.go),
 * with Istio's names, help text, types and buckets.  Durations in seconds;
 * negative or NaN durations count as 0.  Callable from any thread.
 */
/* pilot_xds_push_time{type} (histogram): a response taken for sending until
 * the proxy's stream took it (the xDS thread, server.c) */
void metrics_xds_push_time(enum xds_type t, double seconds);
/* pilot_xds_send_time (histogram): the gRPC send of one response */
void metrics_xds_send_time(double seconds);
/* pilot_xds_config_size_bytes{type} (histogram): one response's bytes */
void metrics_xds_config_size(enum xds_type t, size_t bytes);
/* pilot_proxy_queue_time (histogram): a response queued for a stream until
 * the stream dequeues it */
void metrics_proxy_queue_time(double seconds);
/* pilot_debounce_time (histogram): first change of a window to its push */
void metrics_debounce_time(double seconds);
/* pilot_pushcontext_init_seconds (histogram): model build of one push */
void metrics_pushcontext_init(double seconds);
/* pilot_xds_write_timeout: responses not taken within the send timeout */
void metrics_xds_write_timeout(void);
/* pilot_services / pilot_virt_services (gauges, set after each push) */
void metrics_services(uint64_t services, uint64_t virtual_services);

/* pilot_k8s_reg_events / pilot_k8s_cfg_events{type,event}: a watch event of
 * a kind (enum cfg_kind; the K8S_ kinds count as registry events) */
enum metrics_k8s_event { METRICS_K8S_ADD, METRICS_K8S_UPDATE, METRICS_K8S_DELETE, METRICS_K8S_EVENT_COUNT };
void metrics_k8s_event(int cfg_kind, enum metrics_k8s_event ev);

/* pilot_conflict_* gauges: listener conflicts in the current configuration,
 * as istiod's push context counts them (pilot/pkg/networking/core: a TCP
 * service's match-all filter chain meeting another on the same outbound
 * listener, keyed by listener name; two services giving one inbound port
 * different protocols, keyed by proxy).  The push stage sets each gauge
 * to the number of distinct keys after a build.  The two *_over_current_http
 * / _tcp gauges are istiod's from before 1.19, counted only with outbound
 * protocol sniffing off; meshd always sniffs, so they stay 0 (rendered for
 * the dashboards of that time). */
enum metrics_conflict {
	METRICS_CONFLICT_INBOUND,
	METRICS_CONFLICT_OUTBOUND_TCP_OVER_TCP,
	METRICS_CONFLICT_OUTBOUND_TCP_OVER_HTTP,
	METRICS_CONFLICT_OUTBOUND_HTTP_OVER_TCP,
	METRICS_CONFLICT_COUNT
};
void metrics_conflicts_set(enum metrics_conflict c, uint64_t n);

/* pilot_total_xds_internal_errors: a proxy's config could not be generated
 * (it keeps its last one) */
void metrics_xds_internal_error(void);
/* pilot_xds_push_context_errors: the model of a push could not be built */
void metrics_push_context_error(void);

/* pilot_push_triggers{type}: what asked for a push, with Istio's reason
 * names (pilot/pkg/model TriggerReason); a series appears with its first
 * trigger, as Istio's does.  n triggers of reason r. */
enum metrics_trigger {
	METRICS_TRIGGER_ENDPOINT,   /* "endpoint" */
	METRICS_TRIGGER_CONFIG,     /* "config" */
	METRICS_TRIGGER_SERVICE,    /* "service" */
	METRICS_TRIGGER_PROXY,      /* "proxy" */
	METRICS_TRIGGER_GLOBAL,     /* "global": MeshConfig */
	METRICS_TRIGGER_SECRET,     /* "secret" */
	METRICS_TRIGGER_NAMESPACE,  /* "namespace" */
	METRICS_TRIGGER_UNKNOWN,    /* "unknown" */
	METRICS_TRIGGER_COUNT
};
void metrics_push_trigger(enum metrics_trigger r, uint64_t n);

/* citadel_server_* counters: CreateCertificate requests and outcomes */
enum metrics_ca_event {
	METRICS_CA_CSR,             /* citadel_server_csr_count */
	METRICS_CA_SUCCESS,         /* citadel_server_success_cert_issuance_count */
	METRICS_CA_AUTHN_FAILURE,   /* citadel_server_authentication_failure_count */
	METRICS_CA_PARSING_ERR,     /* citadel_server_csr_parsing_err_count */
	METRICS_CA_SIGN_ERR,        /* citadel_server_csr_sign_err_count */
	METRICS_CA_EVENT_COUNT
};
void metrics_ca(enum metrics_ca_event e);

/* sidecar_injection_*_total: /inject admission requests and their
 * outcome (istiod's pkg/kube/inject/monitoring.go names) */
enum metrics_injection {
	METRICS_INJECTION_REQUEST,  /* sidecar_injection_requests_total */
	METRICS_INJECTION_SUCCESS,  /* sidecar_injection_success_total */
	METRICS_INJECTION_SKIP,     /* sidecar_injection_skip_total */
	METRICS_INJECTION_FAILURE,  /* sidecar_injection_failure_total */
	METRICS_INJECTION_COUNT
};
void metrics_injection(enum metrics_injection e);

/* meshd_limit_exceeded_total{limit}: an input refused, cut or ignored
 * because it went past one of meshd's named bounds (README "Limits"); the
 * label is the limit's name as the table gives it.  Only limits meshd
 * itself enforces have a series: what gRPC core refuses inside (request
 * size, handshake, streams) never reaches meshd, so it has none. */
enum metrics_limit {
	METRICS_LIMIT_OBJECTS_PER_SOURCE,   /* "objects_per_source" */
	METRICS_LIMIT_XDS_SUBSCRIBED_NAMES, /* "xds_subscribed_names" */
	METRICS_LIMIT_XDS_PROXY_NAMES,      /* "xds_proxy_names" */
	METRICS_LIMIT_XDS_NODE_FIELD,       /* "xds_node_field" */
	METRICS_LIMIT_XDS_NODE_LABELS,      /* "xds_node_labels" */
	METRICS_LIMIT_XDS_ERROR_DETAIL,     /* "xds_error_detail" */
	METRICS_LIMIT_DEBUG_CONNECTIONS,    /* "debug_connections" */
	METRICS_LIMIT_DEBUG_RESPONSE_SIZE,  /* "debug_response_size" */
	METRICS_LIMIT_WEBHOOK_CONNECTIONS,  /* "webhook_connections" */
	METRICS_LIMIT_WEBHOOK_BODY,         /* "webhook_body" */
	METRICS_LIMIT_WEBHOOK_HEAD_TIMEOUT, /* "webhook_head_timeout" */
	METRICS_LIMIT_CA_REQUEST_SIZE,      /* "ca_request_size" */
	METRICS_LIMIT_CA_TOKEN_FILE,        /* "ca_token_file" */
	METRICS_LIMIT_COUNT
};
void metrics_limit(enum metrics_limit l);

/* istio_build{component,tag} 1.  Both strings are copied (truncated at 63
 * bytes); call once at start. */
void metrics_set_build(const char *component, const char *tag);

/* Metrics another module keeps with label sets of its own (the validation
 * webhook's galley_validation_*, webhook/validate.h): render() appends
 * their text (with # HELP / # TYPE) at the end of every scrape.  Call at
 * start, before the HTTP server runs.  0, -EINVAL, or -ENOSPC past
 * METRICS_MAX_SECTIONS. */
#define METRICS_MAX_SECTIONS 8
int metrics_add_section(int (*render)(struct mesh_buf *out));

/* Prometheus text exposition format 0.0.4 into out. */
int metrics_render(struct mesh_buf *out);

#endif
