/*
 * config.h - typed Istio configuration objects and the parser that makes them.
 *
 * The parser reads multi-document YAML or JSON (libyaml), validates every
 * document against the structural schema of its CRD (crd-schemas/, compiled
 * in) and against Istio's semantic rules, and produces one cfg_object per
 * valid document.  An invalid document yields cfg_errors instead and never
 * an object; other documents in the same input are unaffected.
 *
 * Ownership: every cfg_object owns an arena holding all its strings and
 * arrays.  Objects are immutable once parsed and reference counted, so the
 * store, models and debug views can share them across threads.
 *
 * Optional numeric fields use -1 for "not set" unless noted.
 * Durations are nanoseconds (int64_t), -1 when not set.
 */
#ifndef MESH_CONFIG_H
#define MESH_CONFIG_H

#include "common/refcount.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

enum cfg_kind {
	CFG_VIRTUAL_SERVICE,
	CFG_DESTINATION_RULE,
	CFG_SERVICE_ENTRY,
	CFG_WORKLOAD_ENTRY,
	CFG_PEER_AUTHENTICATION,
	CFG_AUTHORIZATION_POLICY,
	CFG_GATEWAY,                 /* compiled into routers' listeners and routes (gen/gateway.c) */
	CFG_SIDECAR,
	CFG_REQUEST_AUTHENTICATION,  /* compiled into the sidecar's jwt_authn filter (gen/authn.c) */
	CFG_TELEMETRY,               /* istio.stats, access logs and tracing per workload (model/telemetry.h) */
	/* core Kubernetes kinds: the service registry of a cluster (or of a
	 * directory describing one) */
	CFG_K8S_SERVICE,             /* v1 Service */
	CFG_K8S_ENDPOINT_SLICE,      /* discovery.k8s.io/v1 EndpointSlice */
	CFG_K8S_POD,                 /* v1 Pod */
	CFG_K8S_NAMESPACE,           /* v1 Namespace */
	CFG_K8S_SECRET,              /* v1 Secret: TLS credentials (credentialName) served over SDS */
	CFG_KIND_COUNT
};

/* The Istio kinds come first: k < CFG_ISTIO_KIND_COUNT. */
#define CFG_ISTIO_KIND_COUNT CFG_K8S_SERVICE

/* "VirtualService", ... ; cfg_kind_from_name returns -1 when unknown. */
const char *cfg_kind_name(enum cfg_kind k);
int cfg_kind_from_name(const char *kind);
/* "networking.istio.io", "security.istio.io", "telemetry.istio.io",
 * "discovery.k8s.io" or "" (core) */
const char *cfg_kind_group(enum cfg_kind k);

struct cfg_strs {
	char **v;
	size_t n;
};

struct cfg_kv {
	char *key;
	char *value;
};

struct cfg_labels {
	struct cfg_kv *v;
	size_t n;
};

/* ---------------------------------------------------------------- VirtualService */

enum cfg_match_type { CFG_MATCH_NONE, CFG_MATCH_EXACT, CFG_MATCH_PREFIX, CFG_MATCH_REGEX };

struct cfg_string_match {
	enum cfg_match_type type;
	char *value;
};

struct cfg_header_match {
	char *name;                  /* lower-cased */
	struct cfg_string_match match; /* CFG_MATCH_NONE: header present, any value */
	bool invert;                 /* from withoutHeaders */
};

struct cfg_http_match {
	char *name;
	struct cfg_string_match uri, scheme, method, authority;
	struct cfg_header_match *headers; /* headers and withoutHeaders */
	size_t n_headers;
	struct cfg_header_match *query_params;
	size_t n_query_params;
	int64_t port;                /* -1 when not set */
	struct cfg_labels source_labels;
	char *source_namespace;
	struct cfg_strs gateways;
	bool ignore_uri_case;
};

struct cfg_destination {
	char *host;                  /* as written; see model_resolve_host() */
	char *subset;                /* NULL when not set */
	int64_t port;                /* -1 when not set */
};

struct cfg_header_ops {
	struct cfg_labels set, add;
	struct cfg_strs remove;
};

struct cfg_headers {
	struct cfg_header_ops request, response;
};

struct cfg_cors {
	bool set;
	struct cfg_string_match *allow_origins;
	size_t n_allow_origins;
	struct cfg_strs allow_methods, allow_headers, expose_headers;
	int64_t max_age;             /* ns, -1 when not set */
	int allow_credentials;       /* -1 not set, 0, 1 */
};

struct cfg_route_destination {
	struct cfg_destination destination;
	int64_t weight;              /* -1 when not set */
	struct cfg_headers headers;
};

struct cfg_retries {
	bool set;                    /* retries: present in the route */
	int64_t attempts;            /* 0 disables retries */
	int64_t per_try_timeout;     /* ns, -1 when not set */
	char *retry_on;              /* NULL when not set */
	bool retry_remote_localities;
	int64_t backoff;             /* ns, -1 when not set (Istio: retry_back_off.base_interval) */
	int ignore_previous_hosts;   /* retryIgnorePreviousHosts: -1 not set (Istio: true), 0, 1 */
};

struct cfg_fault {
	bool has_delay;
	double delay_percent;        /* 0..100; -1 when neither percentage nor percent is set (Istio: 0%) */
	int64_t fixed_delay;         /* ns */
	bool has_abort;
	double abort_percent;        /* 0..100; -1 when percentage is not set (Istio: none sent, 0%) */
	int64_t http_status;         /* -1 when not set */
	char *grpc_status;           /* e.g. "UNAVAILABLE"; NULL when not set */
};

enum cfg_derive_port { CFG_DERIVE_PORT_NONE, CFG_DERIVE_PORT_FROM_PROTOCOL_DEFAULT, CFG_DERIVE_PORT_FROM_REQUEST_PORT };

struct cfg_redirect {
	bool set;
	char *uri, *authority, *scheme;
	char *prefix_rewrite;        /* NULL when not set */
	int64_t port;
	enum cfg_derive_port derive_port;
	int64_t redirect_code;       /* -1 (or 0 as written): default 301 */
};

struct cfg_rewrite {
	bool set;
	char *uri, *authority;
	char *uri_regex_match, *uri_regex_rewrite; /* uriRegexRewrite; NULL when not set */
};

struct cfg_mirror {
	bool set;
	struct cfg_destination destination;
	double percent;              /* 100 when not set */
};

struct cfg_direct_response {
	bool set;
	int64_t status;
	char *body;                  /* body.string, or body.bytes as written (base64); NULL */
	bool body_is_bytes;
};

struct cfg_delegate {
	char *name, *ns;             /* ns: the VirtualService's own when not set */
};

struct cfg_http_route {
	char *name;
	struct cfg_http_match *match;
	size_t n_match;              /* 0: matches everything */
	struct cfg_route_destination *route;
	size_t n_route;
	struct cfg_redirect redirect;
	struct cfg_rewrite rewrite;
	int64_t timeout;             /* ns, -1 when not set (no timeout, as in Istio) */
	struct cfg_retries retries;
	struct cfg_fault fault;
	struct cfg_mirror mirror;    /* mirror, or the first of mirrors */
	struct cfg_mirror *mirrors;  /* every mirror of "mirrors" (mirror above is [0]) */
	size_t n_mirrors;
	struct cfg_headers headers;
	struct cfg_direct_response direct_response;
	struct cfg_delegate *delegate; /* NULL when not set */
	struct cfg_cors cors;
	int line, col;               /* source line and column of this route, for messages */
};

struct cfg_tcp_match {
	int64_t port;                /* -1 when not set */
	struct cfg_strs destination_subnets;
	struct cfg_labels source_labels;
	char *source_namespace;
	struct cfg_strs gateways;
};

struct cfg_tcp_route {
	struct cfg_route_destination *route;
	size_t n_route;
	int64_t match_port;          /* -1 when not set: the first match's port */
	struct cfg_tcp_match *match; /* every match (none: the route applies to all) */
	size_t n_match;
};

struct cfg_tls_match {
	struct cfg_strs sni_hosts;
	struct cfg_strs destination_subnets;
	int64_t port;                /* -1 when not set */
	struct cfg_labels source_labels;
	char *source_namespace;
	struct cfg_strs gateways;
};

struct cfg_tls_route {
	struct cfg_tls_match *match;
	size_t n_match;
	struct cfg_route_destination *route;
	size_t n_route;
};

struct cfg_virtual_service {
	struct cfg_strs hosts;       /* empty: a delegate VirtualService */
	struct cfg_strs gateways;
	struct cfg_strs export_to;
	struct cfg_http_route *http;
	size_t n_http;
	struct cfg_tcp_route *tcp;
	size_t n_tcp;
	struct cfg_tls_route *tls;
	size_t n_tls;
};

/* ---------------------------------------------------------------- DestinationRule */

enum cfg_lb_simple {
	CFG_LB_UNSPECIFIED,
	CFG_LB_LEAST_REQUEST,        /* also LEAST_CONN */
	CFG_LB_ROUND_ROBIN,
	CFG_LB_RANDOM,
	CFG_LB_PASSTHROUGH,
};

enum cfg_hash_key { CFG_HASH_NONE, CFG_HASH_HEADER, CFG_HASH_COOKIE, CFG_HASH_SOURCE_IP, CFG_HASH_QUERY_PARAM };

struct cfg_consistent_hash {
	enum cfg_hash_key key;
	char *header_name;           /* HEADER */
	char *cookie_name, *cookie_path; /* COOKIE */
	int64_t cookie_ttl;          /* ns, -1 when not set */
	char *query_param;           /* QUERY_PARAM */
	int64_t minimum_ring_size;   /* -1 when not set */
	bool maglev;                 /* maglev: instead of ringHash */
	int64_t maglev_table_size;   /* maglev.tableSize (a prime), 0 when not set */
};

struct cfg_locality_distribute {
	char *from;
	struct cfg_kv *to;           /* value: weight as decimal text */
	size_t n_to;
};

struct cfg_locality_failover {
	char *from, *to;
};

struct cfg_locality_lb {
	bool set;
	int enabled;                 /* -1 not set, 0 false, 1 true */
	struct cfg_locality_distribute *distribute;
	size_t n_distribute;
	struct cfg_locality_failover *failover;
	size_t n_failover;
	struct cfg_strs failover_priority;
};

struct cfg_load_balancer {
	bool set;
	enum cfg_lb_simple simple;
	bool has_consistent_hash;
	struct cfg_consistent_hash consistent_hash;
	struct cfg_locality_lb locality;
	int64_t warmup_duration;     /* ns, -1 */
	/* the warmup {duration, aggression, minimumPercent} form (Istio's
	 * setWarmup: aggression 1, minimumPercent 10 unless given); false for
	 * warmupDurationSecs, which sends the window alone */
	bool warmup_full;
	double warmup_aggression;
	double warmup_min_percent;
};

struct cfg_connection_pool {
	bool set;
	/* tcp */
	int64_t max_connections;
	int64_t connect_timeout;     /* ns */
	int64_t max_connection_duration; /* ns */
	int64_t tcp_idle_timeout;    /* ns, -1 when not set (Istio: the TCP proxy's idle_timeout) */
	bool has_tcp_keepalive;      /* tcpKeepalive given: SO_KEEPALIVE, OS defaults for what is unset */
	int64_t keepalive_probes;    /* -1 when not set */
	int64_t keepalive_time, keepalive_interval; /* ns, -1 when not set */
	/* http */
	int64_t http1_max_pending_requests;
	int64_t http2_max_requests;
	int64_t max_requests_per_connection;
	int64_t max_retries;
	int64_t idle_timeout;        /* ns */
	char *h2_upgrade_policy;     /* DEFAULT, DO_NOT_UPGRADE, UPGRADE; NULL */
	int max_concurrent_streams;  /* -1 */
};

struct cfg_outlier_detection {
	bool set;
	int64_t consecutive_5xx_errors;      /* consecutive5xxErrors (the deprecated consecutiveErrors is ignored, as by istiod) */
	int64_t consecutive_gateway_errors;
	int64_t consecutive_local_origin_failures;
	bool split_external_local_origin_errors;
	int64_t interval;                    /* ns */
	int64_t base_ejection_time;          /* ns */
	int64_t max_ejection_percent;
	int64_t min_health_percent;
};

enum cfg_tls_mode { CFG_TLS_UNSET, CFG_TLS_DISABLE, CFG_TLS_SIMPLE, CFG_TLS_MUTUAL, CFG_TLS_ISTIO_MUTUAL };

struct cfg_client_tls {
	bool set;
	enum cfg_tls_mode mode;
	char *client_certificate, *private_key, *ca_certificates, *credential_name, *sni;
	struct cfg_strs subject_alt_names;
	int insecure_skip_verify;    /* -1 not set */
};

/* trafficPolicy.retryBudget (not in portLevelSettings, as Istio's API) */
struct cfg_retry_budget {
	bool set;
	double percent;              /* 0..100, -1 when not set (Istio: 20) */
	int64_t min_retry_concurrency; /* 0 when not set (Istio: 3) */
	int64_t budget_interval;     /* ns, -1 when not set (Envoy's proto subset meshd compares against has no field: parsed only) */
};

struct cfg_traffic_policy {
	struct cfg_load_balancer load_balancer;
	struct cfg_connection_pool connection_pool;
	struct cfg_outlier_detection outlier_detection;
	struct cfg_client_tls tls;
	struct cfg_retry_budget retry_budget;
};

struct cfg_port_traffic_policy {
	int64_t port;
	struct cfg_traffic_policy policy;
};

struct cfg_dr_policy {           /* trafficPolicy: the top level and each subset's */
	bool set;
	struct cfg_traffic_policy policy;
	struct cfg_port_traffic_policy *port_level;
	size_t n_port_level;
};

struct cfg_subset {
	char *name;
	struct cfg_labels labels;
	struct cfg_dr_policy traffic_policy;
};

struct cfg_destination_rule {
	char *host;
	struct cfg_dr_policy traffic_policy;
	struct cfg_subset *subsets;
	size_t n_subsets;
	struct cfg_strs export_to;
	struct cfg_labels workload_selector;
	bool has_workload_selector;
};

/* ---------------------------------------------------------------- ServiceEntry, WorkloadEntry */

struct cfg_port {
	int64_t number;
	char *protocol;              /* upper-cased: HTTP, HTTP2, GRPC, TCP, TLS, HTTPS, ... */
	char *name;
	int64_t target_port;         /* -1 when not set */
};

struct cfg_workload {            /* WorkloadEntry spec, also a ServiceEntry endpoint */
	char *address;
	struct cfg_kv *ports;        /* port name -> number as decimal text */
	size_t n_ports;
	struct cfg_labels labels;
	char *network;
	char *locality;              /* region/zone/subzone */
	int64_t weight;              /* -1 when not set */
	char *service_account;
};

enum cfg_location { CFG_MESH_EXTERNAL, CFG_MESH_INTERNAL };
enum cfg_resolution {
	CFG_RESOLUTION_NONE, CFG_RESOLUTION_STATIC, CFG_RESOLUTION_DNS, CFG_RESOLUTION_DNS_ROUND_ROBIN,
	CFG_RESOLUTION_DYNAMIC_DNS,
};

struct cfg_service_entry {
	struct cfg_strs hosts;
	struct cfg_strs addresses;
	struct cfg_port *ports;
	size_t n_ports;
	enum cfg_location location;  /* default MESH_EXTERNAL, as in Istio */
	enum cfg_resolution resolution;
	struct cfg_workload *endpoints;
	size_t n_endpoints;
	struct cfg_labels workload_selector;
	bool has_workload_selector;
	struct cfg_strs export_to;
	struct cfg_strs subject_alt_names;
};

/* ---------------------------------------------------------------- PeerAuthentication */

enum cfg_mtls_mode { CFG_MTLS_UNSET, CFG_MTLS_DISABLE, CFG_MTLS_PERMISSIVE, CFG_MTLS_STRICT };

struct cfg_port_mtls {
	int64_t port;
	enum cfg_mtls_mode mode;
};

struct cfg_peer_authentication {
	struct cfg_labels selector;
	bool has_selector;
	enum cfg_mtls_mode mode;     /* mtls.mode; UNSET when mtls absent */
	struct cfg_port_mtls *port_level;
	size_t n_port_level;
};

/* ---------------------------------------------------------------- AuthorizationPolicy */

enum cfg_authz_action { CFG_AUTHZ_ALLOW, CFG_AUTHZ_DENY, CFG_AUTHZ_AUDIT, CFG_AUTHZ_CUSTOM };

struct cfg_authz_source {
	struct cfg_strs principals, not_principals;
	struct cfg_strs service_accounts, not_service_accounts;
	struct cfg_strs trust_domains, not_trust_domains;
	struct cfg_strs request_principals, not_request_principals;
	struct cfg_strs namespaces, not_namespaces;
	struct cfg_strs ip_blocks, not_ip_blocks;
	struct cfg_strs remote_ip_blocks, not_remote_ip_blocks;
};

struct cfg_authz_operation {
	struct cfg_strs hosts, not_hosts;
	struct cfg_strs ports, not_ports;
	struct cfg_strs methods, not_methods;
	struct cfg_strs paths, not_paths;
};

struct cfg_authz_condition {
	char *key;
	struct cfg_strs values, not_values;
};

struct cfg_authz_rule {
	struct cfg_authz_source *from;
	size_t n_from;
	struct cfg_authz_operation *to;
	size_t n_to;
	struct cfg_authz_condition *when;
	size_t n_when;
};

struct cfg_authorization_policy {
	struct cfg_labels selector;
	bool has_selector;
	enum cfg_authz_action action;
	char *provider;              /* CUSTOM only */
	bool has_target_refs;        /* targetRef/targetRefs (Gateway API attachment) instead of selector */
	int dry_run;                 /* annotation istio.io/dry-run: -1 absent, 0, 1 */
	struct cfg_authz_rule *rules;
	size_t n_rules;
	bool rules_present;          /* "rules: []" differs from no rules key? kept for messages */
};

/* ---------------------------------------------------------------- RequestAuthentication */

struct cfg_jwt_header {
	char *name;
	char *prefix;                /* NULL when not set */
};

struct cfg_claim_header {
	char *header;
	char *claim;
};

/* One jwtRules[] entry (Istio's security.v1beta1.JWTRule). */
struct cfg_jwt_rule {
	char *issuer;                /* NULL when not set */
	struct cfg_strs audiences;
	char *jwks_uri;              /* NULL when not set */
	char *jwks;                  /* inline JWKS; NULL when not set */
	struct cfg_jwt_header *from_headers;
	size_t n_from_headers;
	struct cfg_strs from_params, from_cookies;
	char *output_payload_to_header; /* NULL when not set */
	struct cfg_claim_header *output_claim_to_headers;
	size_t n_output_claim_to_headers;
	bool forward_original_token;
};

struct cfg_request_authentication {
	struct cfg_labels selector;
	bool has_selector;
	bool has_target_refs;        /* targetRef(s): gateways and waypoints, applied to no sidecar */
	struct cfg_jwt_rule *rules;
	size_t n_rules;
};

/* ---------------------------------------------------------------- Telemetry */

/* telemetry.istio.io v1 / v1alpha1 Telemetry, decoded (validation is
 * dec__telemetry's, Istio's ValidateTelemetry).  Merged per workload by
 * model_telemetry_for (model/telemetry.h). */
enum cfg_tel_mode { CFG_TEL_CLIENT_AND_SERVER, CFG_TEL_CLIENT, CFG_TEL_SERVER };

struct cfg_tel_tag_override {
	char *tag;
	bool remove;                 /* operation REMOVE; else UPSERT */
	char *value;                 /* UPSERT's CEL expression; NULL for REMOVE */
};

struct cfg_tel_metric_override {
	enum cfg_tel_mode mode;      /* match.mode */
	char *metric;                /* match.metric (REQUEST_COUNT, ...); NULL with no match: ALL_METRICS */
	char *custom_metric;         /* match.customMetric; NULL when not set */
	int disabled;                /* -1 unset, 0, 1 */
	struct cfg_tel_tag_override *tags;
	size_t n_tags;
};

struct cfg_tel_metrics {
	struct cfg_strs providers;   /* providers[].name */
	struct cfg_tel_metric_override *overrides;
	size_t n_overrides;
	int64_t reporting_interval;  /* ns; -1 unset */
};

enum cfg_tel_tag_kind { CFG_TEL_TAG_LITERAL, CFG_TEL_TAG_ENVIRONMENT, CFG_TEL_TAG_HEADER };

struct cfg_tel_custom_tag {
	char *name;
	enum cfg_tel_tag_kind kind;
	char *value;                 /* literal.value, environment.name or header.name */
	char *default_value;         /* environment/header defaultValue; NULL when not set */
};

struct cfg_tel_tracing {
	enum cfg_tel_mode mode;      /* match.mode */
	struct cfg_strs providers;
	double random_sampling_percentage; /* 0..100; < 0 unset */
	int disable_span_reporting;  /* -1 unset, 0, 1 */
	int use_request_id_for_trace_sampling; /* -1 unset, 0, 1 */
	bool has_custom_tags;        /* customTags written (even empty): replaces the parent's */
	struct cfg_tel_custom_tag *custom_tags;
	size_t n_custom_tags;
};

struct cfg_tel_access_logging {
	enum cfg_tel_mode mode;      /* match.mode */
	struct cfg_strs providers;
	int disabled;                /* -1 unset, 0, 1 */
	char *filter;                /* filter.expression (CEL); NULL when not set */
};

struct cfg_telemetry {
	struct cfg_labels selector;
	bool has_selector;
	bool has_target_refs;        /* targetRef(s): services and gateways, applied to no sidecar */
	struct cfg_tel_metrics *metrics;
	size_t n_metrics;
	struct cfg_tel_tracing *tracing;
	size_t n_tracing;
	struct cfg_tel_access_logging *access_logging;
	size_t n_access_logging;
};

/* ---------------------------------------------------------------- Sidecar */

/* Sidecar.ingress[].captureMode / egress[].captureMode: DEFAULT is what the
 * proxy's interception mode says (iptables), NONE binds the port. */
enum cfg_capture_mode { CFG_CAPTURE_DEFAULT, CFG_CAPTURE_IPTABLES, CFG_CAPTURE_NONE };
/* outboundTrafficPolicy.mode; UNSET: the mesh default (ALLOW_ANY). */
enum cfg_outbound_mode { CFG_OUTBOUND_UNSET, CFG_OUTBOUND_ALLOW_ANY, CFG_OUTBOUND_REGISTRY_ONLY };

struct cfg_sidecar_ingress {
	int64_t port;                /* port.number */
	char *protocol;              /* port.protocol upper-cased; NULL when not set */
	char *port_name;             /* port.name; NULL when not set */
	char *bind;                  /* NULL when not set */
	char *default_endpoint;      /* "127.0.0.1:PORT", "0.0.0.0:PORT", "unix://..."; NULL */
	enum cfg_capture_mode capture_mode;
};

struct cfg_sidecar_egress {
	int64_t port;                /* port.number; -1 without a port (the catch-all listener) */
	char *protocol;              /* upper-cased; NULL */
	char *port_name;             /* NULL */
	char *bind;                  /* NULL */
	enum cfg_capture_mode capture_mode;
	struct cfg_strs hosts;       /* "NS/HOST" as written ("." "*" "~" namespaces) */
};

struct cfg_sidecar {
	struct cfg_labels workload_selector; /* workloadSelector.labels */
	bool has_workload_selector;  /* workloadSelector present (no labels: selects every workload, as Istio) */
	struct cfg_sidecar_ingress *ingress;
	size_t n_ingress;
	struct cfg_sidecar_egress *egress;
	size_t n_egress;
	struct cfg_strs egress_hosts; /* every egress[].hosts entry, in order (the union Istio imports) */
	enum cfg_outbound_mode outbound; /* outboundTrafficPolicy.mode */
};

/* ---------------------------------------------------------------- Gateway */

/* Gateway server tls.mode (networking.istio.io ServerTLSSettings.TLSmode);
 * CFG_GW_TLS_NONE: the server has no tls block. */
enum cfg_gw_tls_mode {
	CFG_GW_TLS_NONE,
	CFG_GW_TLS_PASSTHROUGH,
	CFG_GW_TLS_SIMPLE,
	CFG_GW_TLS_MUTUAL,
	CFG_GW_TLS_AUTO_PASSTHROUGH,
	CFG_GW_TLS_ISTIO_MUTUAL,
	CFG_GW_TLS_OPTIONAL_MUTUAL,
};

/* ServerTLSSettings.TLSProtocol; CFG_GW_TLS_AUTO when unset. */
enum cfg_gw_tls_version { CFG_GW_TLS_AUTO, CFG_GW_TLSV1_0, CFG_GW_TLSV1_1, CFG_GW_TLSV1_2, CFG_GW_TLSV1_3 };

/* One ServerTLSSettings.tlsCertificates entry (files on the gateway). */
struct cfg_gw_tls_cert {
	char *server_certificate;        /* serverCertificate; NULL when absent */
	char *private_key;               /* privateKey */
	char *ca_certificates;           /* caCertificates */
};

struct cfg_gw_tls {
	bool https_redirect;             /* httpsRedirect */
	enum cfg_gw_tls_mode mode;       /* mode; written without one: PASSTHROUGH on HTTPS/TLS ports (Istio's zero
					  * value), NONE on others (an httpsRedirect-only block) */
	char *credential_name;           /* credentialName; NULL when absent */
	char *server_certificate;        /* serverCertificate (file path); NULL when absent */
	char *private_key;               /* privateKey */
	char *ca_certificates;           /* caCertificates */
	struct cfg_strs subject_alt_names; /* subjectAltNames */
	struct cfg_strs verify_certificate_spki;  /* verifyCertificateSpki */
	struct cfg_strs verify_certificate_hash;  /* verifyCertificateHash */
	enum cfg_gw_tls_version min_version;      /* minProtocolVersion */
	enum cfg_gw_tls_version max_version;      /* maxProtocolVersion */
	struct cfg_strs cipher_suites;   /* cipherSuites */
	/* the other certificate sources Istio takes (validation allows one of
	 * credentialName, credentialNames, serverCertificate/privateKey,
	 * tlsCertificates), and the CRL file; set by decode.c */
	struct cfg_strs credential_names;           /* credentialNames (1 or 2, e.g. RSA and ECDSA) */
	struct cfg_gw_tls_cert *tls_certificates;   /* tlsCertificates (at most 2) */
	size_t n_tls_certificates;
	char *ca_crl;                               /* caCrl; NULL when absent */
};

struct cfg_gw_server {
	uint32_t port;                   /* port.number */
	char *port_name;                 /* port.name; NULL when absent */
	char *protocol;                  /* port.protocol, upper-case (HTTP, HTTPS, GRPC, HTTP2, TLS, TCP, MONGO) */
	uint32_t target_port;            /* port.targetPort; 0 when absent */
	char *bind;                      /* bind; NULL when absent */
	char *default_endpoint;          /* defaultEndpoint; NULL when absent */
	char *name;                      /* name; NULL when absent */
	struct cfg_strs hosts;           /* hosts as written: "host", "ns/host", "./host", any-namespace "*" + "/host" */
	bool has_tls;                    /* a tls block is present (mode may still be NONE for httpsRedirect only) */
	struct cfg_gw_tls tls;
	int line, col;                   /* where the server starts in the source, for messages (decode.c) */
};

/* A Gateway (networking.istio.io v1/v1beta1/v1alpha3). */
struct cfg_gateway {
	struct cfg_labels selector;      /* selector: matched against router proxies' labels */
	struct cfg_gw_server *servers;
	size_t n_servers;
};

/* ---------------------------------------------------------------- host names */

/* Whether host pattern `pattern` covers `host` (Istio's host.Name.SubsetOf
 * with the pattern on the right): equal (case-insensitive), "*" (any), or
 * "*.suffix" covering a longer host ending in ".suffix" (a wildcard host
 * such as "*.a.example.com" included).  When score is not NULL and the
 * pattern covers host, *score says how specific the match is, higher
 * being more specific: 100000 for an exact match, 1 + strlen(pattern)
 * for a suffix, 1 for "*" (how VirtualService and DestinationRule lookups
 * pick the closest wildcard).  The one host matcher of config, model and
 * store; Istio's symmetric host.Name.Matches is covers(a, b) || covers(b, a). */
bool cfg_host_covers(const char *pattern, const char *host, size_t *score);

/* ---------------------------------------------------------------- Kubernetes core kinds */

struct cfg_k8s_service_port {
	char *name;                  /* "" when unnamed */
	char *protocol;              /* TCP, UDP, SCTP */
	char *app_protocol;          /* NULL when not set */
	int64_t port;
	int64_t target_port;         /* -1 when given by name or not set */
	char *target_port_name;      /* NULL unless targetPort is a name */
};

struct cfg_k8s_service {
	char *type;                  /* ClusterIP (default), NodePort, LoadBalancer, ExternalName */
	char *cluster_ip;            /* NULL, "None" (headless) */
	char *external_name;
	struct cfg_labels selector;
	bool has_selector;
	struct cfg_k8s_service_port *ports;
	size_t n_ports;
};

struct cfg_k8s_endpoint {
	struct cfg_strs addresses;
	int ready, serving, terminating; /* conditions: -1 unknown, 0, 1 */
	char *hostname, *node_name, *zone;
	char *target_kind, *target_ns, *target_name; /* targetRef; NULL when absent */
};

struct cfg_k8s_endpoint_port {
	char *name;                  /* "" when unnamed */
	char *protocol;
	char *app_protocol;
	int64_t port;                /* -1 when not set */
};

struct cfg_k8s_endpoint_slice {
	char *service_name;          /* label kubernetes.io/service-name; NULL when absent */
	char *address_type;          /* IPv4, IPv6, FQDN */
	struct cfg_k8s_endpoint *endpoints;
	size_t n_endpoints;
	struct cfg_k8s_endpoint_port *ports;
	size_t n_ports;
};

struct cfg_k8s_container_port {
	char *name;
	int64_t container_port;
};

struct cfg_k8s_pod {
	char *service_account;       /* spec.serviceAccountName; "default" when absent */
	char *node_name;
	char *phase;                 /* status.phase; NULL when absent */
	char *pod_ip;                /* status.podIP; NULL when absent */
	bool ready;                  /* condition Ready=True */
	struct cfg_k8s_container_port *ports; /* every container's named ports */
	size_t n_ports;
};

/* A Secret's TLS material, as istiod reads credentialName Secrets
 * (kubernetes.io/tls "tls.crt"/"tls.key"/"ca.crt", or generic
 * "cert"/"key"/"cacert"), base64-decoded from data (or stringData): PEM
 * text, NUL-terminated; NULL when absent.  Only the SDS provider reads
 * them; the object's json keeps no value of data or stringData. */
struct cfg_k8s_secret {
	char *type;                  /* "kubernetes.io/tls", "Opaque", ... */
	char *cert;
	char *key;
	char *cacert;
};

/* ---------------------------------------------------------------- objects */

struct cfg_object {
	enum cfg_kind kind;
	char *api_version;           /* e.g. "networking.istio.io/v1beta1" */
	char *name;
	char *ns;                    /* "default" when metadata.namespace is absent */
	struct cfg_labels labels;
	struct cfg_labels annotations;
	char *resource_version;      /* Kubernetes sources; NULL for files */
	int64_t generation;
	/* metadata.creationTimestamp in seconds since the epoch (RFC 3339,
	 * as Kubernetes writes it); 0 when absent or unreadable, as Istio's
	 * zero time.  Orders VirtualServices and DestinationRules (oldest
	 * first, then name, then namespace: Istio's configCompareByCreationTime). */
	int64_t creation_time;
	char *origin;                /* file path, or "kube" */
	int line;                    /* line of the document's first token, 1-based */
	int col;                     /* its column, 1-based; 0 when unknown */
	uint64_t hash;               /* content hash of kind, metadata and spec (of json) */
	/* the same without what only carries endpoints (a ServiceEntry's
	 * spec.endpoints); equal to hash for every other kind.  Lets the
	 * sidecar generator's cache tell an endpoint change from any other
	 * (gen/sidecar.c). */
	uint64_t shape_hash;
	char *json;                  /* the document as canonical compact JSON (keys in source order) */
	union {
		struct cfg_virtual_service vs;
		struct cfg_destination_rule dr;
		struct cfg_service_entry se;
		struct cfg_workload we;
		struct cfg_peer_authentication pa;
		struct cfg_authorization_policy ap;
		struct cfg_request_authentication ra;
		struct cfg_sidecar sc;
		struct cfg_gateway gw;
		struct cfg_telemetry tm;
		struct cfg_k8s_service svc;
		struct cfg_k8s_endpoint_slice eps;
		struct cfg_k8s_pod pod;
		struct cfg_k8s_secret secret;
		/* Namespace: metadata (labels) only */
	} spec;
	/* private */
	struct arena *arena;
	struct mesh_refcount refs;
};

/* Istio's sortConfigByCreationTime: whether a sorts before b (older
 * creationTimestamp, then name, then namespace); how Istio picks one of
 * several objects of one level (Sidecars, VirtualServices). */
bool cfg_object_older(const struct cfg_object *a, const struct cfg_object *b);

struct cfg_object *cfg_object_ref(struct cfg_object *o);
void cfg_object_unref(struct cfg_object *o);   /* NULL is a no-op */

/* One validation or parse error. kind is -1 (and ns/name NULL) when the
 * document could not be identified (malformed YAML, missing kind, ...). */
struct cfg_error {
	char *origin;
	int line, column;            /* 1-based; 0 when unknown */
	int kind;
	char *api_version;
	char *ns, *name;
	char *field;                 /* "spec.http[0].route[1].weight"; NULL for whole-document errors */
	char *message;
	bool warning;                /* reported, rejects nothing (e.g. a route to an undefined subset) */
};

/* Format "FILE:LINE:COL: Kind ns/name: field: message" into buf. */
int cfg_error_format(const struct cfg_error *e, char *buf, size_t cap);
/* Deep copy (malloc'd strings); 0 or -ENOMEM.  cleanup frees the strings. */
int cfg_error_copy(struct cfg_error *dst, const struct cfg_error *src);
void cfg_error_cleanup(struct cfg_error *e);

struct cfg_parse_result {
	struct cfg_object **objects;
	size_t n_objects;
	struct cfg_error *errors;
	size_t n_errors;
	size_t n_documents;          /* non-empty documents seen */
	bool unidentified_errors;    /* some error could not be tied to kind/ns/name */
	size_t n_ignored;            /* documents of kinds meshd does not read (e.g. Deployment) */
};

/* Limits (every buffer has a cap). */
#define CFG_MAX_FILE_BYTES   (8u << 20)  /* one config file */
#define CFG_MAX_DOCUMENT_NODES 200000    /* nodes in one YAML document */
/* Objects one config source (a --config-dir tree, the Kubernetes API) may
 * hold; meshd's --max-objects-per-source.  Past it the source keeps its
 * last good state and says so (file/source.h, kube/kube_watch.h). */
#define CFG_MAX_OBJECTS_PER_SOURCE 200000
#define CFG_MAX_DEPTH        64          /* nesting depth */
/* RE2 program size (instructions) of all the regexes of one object
 * together.  Each is capped at Istio's 32768, but a 224-byte pattern
 * reaches that, and compiling costs time here and time and memory (about
 * 30 bytes an instruction) in every proxy the object reaches: without a
 * total a 650 KB VirtualService took 38 s to validate.  Past it the object
 * is rejected (meshd_config_rejected_total) and no further regex of it is
 * compiled.  2^18: 8 regexes at Istio's limit, thousands of ordinary ones;
 * a quarter of meshproxy's ROUTER_MAX_REGEX_PROGRAM_TOTAL. */
#define CFG_MAX_REGEX_PROGRAM_PER_OBJECT (1L << 18)
/* hosts x ports x endpoints (each factor at least 1) of one ServiceEntry:
 * every host gets a cluster per port holding every endpoint, in every
 * sidecar the entry reaches (about 320 bytes of meshproxy an endpoint).
 * Istio's CRD caps each factor (256, 256, 4096) but not the product: a
 * 7.5 KB entry of 100 x 100 x 100 grew each sidecar to 537 MB.  Past it the
 * object is rejected (meshd_config_rejected_total).  2^17: 256 hosts x 256
 * ports, or 4096 endpoints x 32 host-ports. */
#define CFG_MAX_SE_HOST_PORT_ENDPOINTS 131072ULL

/* Parse YAML/JSON text.  origin names the source in errors.
 * Returns 0 (even when documents were rejected: see out->errors) or a
 * negative code when nothing could be done (-ENOMEM).  Call
 * cfg_parse_result_cleanup() in every case. */
int cfg_parse_buffer(const char *origin, const char *data, size_t len, struct cfg_parse_result *out);
/* Read and parse a file (files over CFG_MAX_FILE_BYTES yield one error). */
int cfg_parse_file(const char *path, struct cfg_parse_result *out);
void cfg_parse_result_cleanup(struct cfg_parse_result *r);

#endif
