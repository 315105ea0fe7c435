/*
 * meshcfg.h - Istio's MeshConfig (the `mesh` key of ConfigMap
 * istio-system/istio; istiod's --meshConfig file): mesh-wide defaults.
 *
 * The input is the same YAML as Istio's `mesh` key.  It is parsed over
 * Istio's defaults (pkg/config/mesh DefaultMeshConfig: an absent field
 * keeps its default), validated whole, and either accepted as one
 * immutable, reference-counted mesh_config or rejected with errors naming
 * SOURCE:LINE and the field path (the caller then keeps its last good
 * one).  Unknown fields are errors, as Istio's strict unmarshalling makes
 * them; MeshConfig fields meshd knows but does not act on are accepted and
 * named in one warning.
 *
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_MESHCFG_H
#define MESH_MESHCFG_H

#include "common/buf.h"
#include "common/err.h"
#include "common/refcount.h"
#include "controlplane/config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESHCFG_MAX_BYTES (1u << 20)  /* one mesh config file */
#define MESHCFG_ERR_CAP 4096          /* the error text of one parse */

enum meshcfg_outbound { MESHCFG_ALLOW_ANY, MESHCFG_REGISTRY_ONLY };
enum meshcfg_h2_upgrade { MESHCFG_H2_DO_NOT_UPGRADE, MESHCFG_H2_UPGRADE };
enum meshcfg_log_encoding { MESHCFG_LOG_TEXT, MESHCFG_LOG_JSON };
/* pathNormalization.normalization, in the proto's order (DEFAULT is BASE) */
enum meshcfg_path_norm {
	MESHCFG_PATH_DEFAULT,
	MESHCFG_PATH_NONE,
	MESHCFG_PATH_BASE,
	MESHCFG_PATH_MERGE_SLASHES,
	MESHCFG_PATH_DECODE_AND_MERGE_SLASHES,
};

/* issue 14: an access log provider, extensionProviders[].envoyFileAccessLog
 * (Istio's MeshConfig.ExtensionProvider.EnvoyFileAccessLogProvider), or the
 * built-in "envoy" one Istio's DefaultMeshConfig carries (/dev/stdout,
 * Envoy's default text format) unless the file defines "envoy" itself. */
enum meshcfg_alog_format {
	MESHCFG_ALOG_DEFAULT,            /* no logFormat: Istio's EnvoyTextLogFormat */
	MESHCFG_ALOG_TEXT,               /* logFormat.text (newline appended when missing) */
	MESHCFG_ALOG_JSON,               /* logFormat.labels: Istio's JSON keys when empty */
};
struct meshcfg_log_provider {
	const char *name;
	const char *path;                /* path ["" : /dev/stdout] */
	enum meshcfg_alog_format format;
	const char *text;                /* MESHCFG_ALOG_TEXT */
	const char **keys, **values;     /* MESHCFG_ALOG_JSON labels, sorted by key (string values only) */
	size_t n_labels;
};

/* extensionProviders[] entries of a tracing kind meshd builds (issue 14):
 * Istio's MeshConfig.ExtensionProvider zipkin and opentelemetry. */
enum meshcfg_tracer { MESHCFG_TRACER_ZIPKIN, MESHCFG_TRACER_OTEL };

struct meshcfg_header {
	const char *name;
	const char *value;                   /* value, or the envName's value in meshd's environment */
};

struct meshcfg_trace_provider {
	const char *name;
	enum meshcfg_tracer kind;
	const char *service;                 /* service: "host" or "namespace/host" */
	uint32_t port;
	uint32_t max_tag_len;                /* maxTagLength; 0: unset */
	/* opentelemetry only */
	bool http;                           /* http: set: OTLP/HTTP; else OTLP/gRPC */
	const char *http_path;               /* http.path [""] */
	int64_t timeout;                     /* http.timeout / grpc.timeout, ns; 0: unset */
	struct meshcfg_header *headers;      /* http.headers / grpc.initialMetadata */
	size_t n_headers;
	bool env_detector;                   /* resourceDetectors.environment set */
};

struct mesh_config {
	/* Istio's defaults in brackets */
	const char *root_namespace;          /* rootNamespace ["istio-system"] */
	const char *trust_domain;            /* trustDomain ["cluster.local"] */
	bool trust_domain_set;               /* written in the file (it then wins over --trust-domain) */
	bool root_namespace_set;             /* written in the file (it then wins over --root-namespace) */
	enum meshcfg_outbound outbound;      /* outboundTrafficPolicy.mode [ALLOW_ANY] */
	bool enable_auto_mtls;               /* enableAutoMtls [true] */
	struct cfg_strs service_export_to;   /* defaultServiceExportTo [*] */
	struct cfg_strs vs_export_to;        /* defaultVirtualServiceExportTo [*] */
	struct cfg_strs dr_export_to;        /* defaultDestinationRuleExportTo [*] */
	int64_t connect_timeout;             /* connectTimeout, ns [10s] */
	int64_t protocol_detection_timeout;  /* protocolDetectionTimeout, ns [0s: no timeout] */
	enum meshcfg_h2_upgrade h2_upgrade;  /* h2UpgradePolicy [DO_NOT_UPGRADE] */
	const char *access_log_file;         /* accessLogFile [""]: no access log */
	enum meshcfg_log_encoding access_log_encoding; /* accessLogEncoding [TEXT] */
	const char *access_log_format;       /* accessLogFormat [""]: Envoy's default format */
	struct meshcfg_log_provider *log_providers; /* envoyFileAccessLog providers (not the built-in "envoy") */
	size_t n_log_providers;
	struct cfg_strs default_access_logging; /* defaultProviders.accessLogging [none] */
	/* defaultProviders.metrics (issue 14): set false = Istio's chart's
	 * [prometheus]; set with an empty list = no default metrics provider */
	bool default_metrics_set;
	struct cfg_strs default_metrics;
	struct cfg_strs prom_providers;      /* extensionProviders entries of kind prometheus, by name */
	const char *locality_lb_json;        /* localityLbSetting as JSON; NULL: unset */
	const char *default_config_json;     /* defaultConfig (ProxyConfig) as JSON; NULL: unset */
	bool hold_application_until_proxy_starts; /* defaultConfig.holdApplicationUntilProxyStarts [false] */
	enum meshcfg_path_norm path_norm;    /* pathNormalization.normalization [DEFAULT = BASE] */
	bool enable_tracing;                 /* enableTracing [true] */
	double trace_sampling;               /* defaultConfig.tracing.sampling, percent [1.0] */
	const char *trace_provider;          /* defaultProviders.tracing[0] when it is a zipkin provider; NULL: none */
	const char *zipkin_service;          /* its extensionProviders[].zipkin.service */
	uint32_t zipkin_port;                /* .port */
	uint32_t zipkin_max_tag_len;         /* .maxTagLength [0: Istio's 256] */
	/* every extensionProviders entry of a tracing kind, in file order,
	 * and defaultProviders.tracing (Telemetry names either; issue 14) */
	struct meshcfg_trace_provider *trace_providers;
	size_t n_trace_providers;
	struct cfg_strs default_tracing;
	/* defaultConfig.tracing.custom_tags / max_path_tag_length (ProxyConfig):
	 * what istiod uses when a Telemetry gives no customTags / the provider
	 * no maxTagLength */
	struct cfg_tel_custom_tag *trace_custom_tags;
	size_t n_trace_custom_tags;
	uint32_t trace_max_path_tag_len;     /* 0: unset */
	struct cfg_strs ignored;             /* fields accepted but not acted on */
	const char *source;                  /* file name or "ConfigMap istio-system/istio"; "" for defaults */
	uint64_t hash;                       /* of the effective values: equal hash, same config */
	/* private */
	struct arena *arena;
	struct mesh_refcount refs;
};

/* Istio's defaults (what meshd runs with without --mesh-config).  NULL on
 * out-of-memory.  The caller owns the reference. */
struct mesh_config *meshcfg_defaults(void);

/* Parse data (len bytes of YAML, Istio's `mesh` key) over the defaults.
 * source names the input in errors ("FILE:LINE: field PATH: ..."); err
 * receives every error, one per line (cap bytes), and *warn (may be NULL)
 * the warning about fields accepted but not acted on (same cap; "" when
 * none).  Returns 0 with *out (the caller's reference), -MESH_EPARSE or
 * -EINVAL when the input is malformed or invalid (*out NULL), -MESH_ETOOBIG,
 * or -ENOMEM. */
MESH_MUST_CHECK int meshcfg_parse(const char *data, size_t len, const char *source, struct mesh_config **out,
				  char *err, size_t cap, char *warn);

/* meshcfg_parse() on the content of file path (at most MESHCFG_MAX_BYTES).
 * -errno when it cannot be read. */
MESH_MUST_CHECK int meshcfg_load_file(const char *path, struct mesh_config **out, char *err, size_t cap,
				      char *warn);

/* The tracing provider called name in mc's extensionProviders, or NULL
 * (mc NULL, no such entry, or a kind meshd does not build). */
const struct meshcfg_trace_provider *meshcfg_trace_provider(const struct mesh_config *mc, const char *name);

struct mesh_config *meshcfg_ref(struct mesh_config *mc); /* NULL-safe */
void meshcfg_unref(struct mesh_config *mc);              /* NULL is a no-op */

/* The effective mesh config as a JSON object (Istio's field names, every
 * field meshd reads with its value or default) appended to b. */
void meshcfg_json(struct mesh_buf *b, const struct mesh_config *mc);

/* True when name is a metrics provider of kind prometheus: Istio's
 * built-in "prometheus", or an extensionProviders entry with a
 * prometheus field (the only metrics sink meshproxy has, the istio.stats
 * filter).  mc NULL: the built-in only. */
bool meshcfg_metrics_provider_is_prometheus(const struct mesh_config *mc, const char *name);

/* The access log provider named name in mc (the built-in "envoy" too), or
 * NULL: not defined, or of another kind (Istio then logs nothing for it). */
const struct meshcfg_log_provider *meshcfg_log_provider(const struct mesh_config *mc, const char *name);

#endif
