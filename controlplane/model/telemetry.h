/*
 * telemetry.h - the effective Telemetry (telemetry.istio.io v1/v1alpha1)
 * of one workload: which Telemetry objects apply to it and how their
 * metrics, tracing and accessLogging merge, as Istio's
 * pilot/pkg/model/telemetry.go does (applicableTelemetries, mergeMetrics,
 * Tracing, mergeLogs).
 *
 * Selection: the oldest Telemetry of the root namespace without selector
 * or targetRefs (mesh-wide), then the oldest of the workload's namespace
 * without them (namespace-wide; not again for a workload of the root
 * namespace), then every Telemetry of the workload's namespace whose
 * selector.matchLabels selects the workload, oldest first.  Later levels
 * override earlier ones.  targetRefs policies attach to services and
 * gateways, never to a sidecar, so they are left out here (as Istio's
 * PolicyMatcher does for a sidecar proxy).
 *
 * The result is what the HCM/stats/tracing builders read (issue 14: the
 * istio.stats filters, gen/stats.c) and what /debug/telemetryz renders.
 * Pure: no I/O.
 */
#ifndef MESH_MODEL_TELEMETRY_H
#define MESH_MODEL_TELEMETRY_H

#include "common/buf.h"
#include "controlplane/config/config.h"
#include "controlplane/model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One tag override of a metric (UPSERT with a CEL value, or REMOVE). */
struct model_tel_tag {
	const char *name;
	bool remove;
	const char *value;               /* NULL for REMOVE */
};

/* The merged override of one metric (IstioMetric name such as
 * REQUEST_COUNT, or a custom metric) in one mode. */
struct model_tel_metric {
	const char *name;
	bool disabled;
	struct model_tel_tag *tags;      /* sorted by name */
	size_t n_tags;
};

struct model_tel_metrics_mode {
	bool disabled;                   /* ALL_METRICS disabled: no stats filter for this mode */
	struct model_tel_metric *overrides; /* sorted by name */
	size_t n_overrides;
};

struct model_tel_metrics_provider {
	const char *name;
	bool prometheus;                 /* of kind prometheus (meshcfg_metrics_provider_is_prometheus) */
	struct model_tel_metrics_mode client, server;
	int64_t reporting_interval;      /* ns; -1: the provider's default */
};

/* Tracing for one mode (Istio's TracingSpec). */
struct model_tel_tracing {
	const char *provider;            /* NULL: none (then disabled) */
	bool disabled;
	double random_sampling_percentage; /* < 0: not set (meshConfig / proxy default) */
	bool use_request_id_for_trace_sampling;
	const struct cfg_tel_custom_tag *custom_tags; /* borrowed from the object that set them */
	size_t n_custom_tags;
};

/* One access log provider of one mode. */
struct model_tel_log {
	const char *provider;
	bool disabled;
	const char *filter;              /* CEL expression; NULL: log everything */
};

struct model_telemetry {
	/* the objects that applied (borrowed from the model's snapshot) */
	const struct cfg_object *root;   /* mesh-wide; NULL when none */
	const struct cfg_object *ns;     /* namespace-wide; NULL when none */
	const struct cfg_object **workload; /* selector matches, oldest first */
	size_t n_workload;

	struct model_tel_metrics_provider *metrics; /* sorted by provider name */
	size_t n_metrics;
	/* false: no Telemetry tracing and no default provider (Istio returns
	 * nil: the legacy meshConfig.defaultConfig.tracing applies) */
	bool has_tracing;
	struct model_tel_tracing client_tracing, server_tracing;
	/* false: no Telemetry access logging and no default provider (the
	 * legacy meshConfig.accessLogFile applies) */
	bool has_access_logging;
	struct model_tel_log *client_logs, *server_logs; /* sorted by provider */
	size_t n_client_logs, n_server_logs;

	/* private */
	struct arena *arena;
};

/* meshConfig.defaultProviders: provider names per signal (borrowed). */
struct model_telemetry_defaults {
	const char *const *metrics;
	size_t n_metrics;
	const char *const *tracing;
	size_t n_tracing;
	const char *const *access_logging;
	size_t n_access_logging;
};

/* What Istio's helm chart installs: defaultProviders.metrics [prometheus]. */
extern const struct model_telemetry_defaults model_telemetry_istio_defaults;

/* The defaults meshd merges every workload's Telemetry under: Istio's
 * chart's metrics provider, and mc's defaultProviders.tracing and
 * .accessLogging (mc NULL: none).  The lists stay mc's (borrowed). */
void model_telemetry_mesh_defaults(const struct mesh_config *mc, struct model_telemetry_defaults *d);

/*
 * The effective Telemetry of a workload of namespace ns (NULL or "":
 * "default") with labels (NULL: none), under defaults (NULL: none).
 * *out is allocated (model_telemetry_free); its strings and objects are
 * borrowed from m, which must outlive it.  0, or -ENOMEM / -MESH_ETOOBIG
 * (a configuration too large to merge within the cap).
 */
int model_telemetry_for(const struct model *m, const char *ns, const struct cfg_labels *labels,
			const struct model_telemetry_defaults *defaults, struct model_telemetry **out);
void model_telemetry_free(struct model_telemetry *t); /* NULL is a no-op */

/* t as a JSON object into out, no newline (/debug/telemetryz's "effective"). */
void model_telemetry_json(const struct model_telemetry *t, struct mesh_buf *out);

#endif
