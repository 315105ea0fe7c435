/*
 * outlier.h - outlier detection of one cluster, with Envoy's semantics
 * (source/common/upstream/outlier_detection_impl.cc): consecutive 5xx,
 * consecutive gateway failures (502/503/504), consecutive local-origin
 * failures when split_external_local_origin_errors is on; each detector
 * ejects only with its enforcing_* percentage; an ejected host stays out
 * for base_ejection_time x its backoff (+1 per ejection, capped so the
 * time never passes max_ejection_time, -1 per interval spent healthy);
 * at most max_ejection_percent of the cluster's hosts are ejected at once.
 *
 * Success-rate and failure-percentage ejection are not implemented: meshd
 * (controlplane/gen/cluster.c, as Istio) sends enforcing_success_rate 0 and
 * no failure_percentage_threshold, so they are always off; a config that
 * enforces them is refused (NACKed) rather than silently ignored.
 *
 * The detector's per-host memory lives in each host (up_host.od), so it
 * survives EDS updates with the host.  No clock: callers pass now (ms,
 * monotonic) and an lb_rng for the enforcement draws; the engine calls
 * outlier_tick() every interval_ms (outlier_interval_ms()).  Ejections and
 * unejections rebuild the host set's pools (up_hostset_refresh()), so an
 * ejected host is out of the next pick.  Loop thread only.
 */
#ifndef MESH_DATAPLANE_OUTLIER_H
#define MESH_DATAPLANE_OUTLIER_H

#include "dataplane/upstream-t.h"

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct Envoy__Config__Cluster__V3__OutlierDetection;
struct up_hostset;
struct lb_rng;

/* Envoy's defaults. */
#define OUTLIER_DEFAULT_CONSECUTIVE        5u
#define OUTLIER_DEFAULT_INTERVAL_MS        10000u
#define OUTLIER_DEFAULT_BASE_EJECTION_MS   30000u
#define OUTLIER_DEFAULT_MAX_EJECTION_MS    300000u
#define OUTLIER_DEFAULT_MAX_EJECTION_PCT   10u

struct outlier_config {
	bool enabled;
	bool split_local;                  /* split_external_local_origin_errors */
	bool always_eject_one;
	uint32_t consecutive_5xx, consecutive_gw, consecutive_local;
	uint32_t enforcing_5xx, enforcing_gw, enforcing_local;   /* percent */
	uint32_t max_ejection_percent;
	uint64_t interval_ms, base_ejection_ms, max_ejection_ms;
};

/* Compile m (NULL: detection off) into cfg.  Returns 0 or -EINVAL / -ENOTSUP
 * with err (cap bytes) naming the field. */
MESH_MUST_CHECK int outlier_config_init(struct outlier_config *cfg,
					const struct Envoy__Config__Cluster__V3__OutlierDetection *m, char *err, size_t cap);

/* What happened with a request to a host, beyond an HTTP status. */
enum outlier_local {
	OUTLIER_CONNECT_FAILED = 1,        /* could not connect (Envoy LOCAL_ORIGIN_CONNECT_FAILED) */
	OUTLIER_TIMEOUT,                   /* upstream timeout (LOCAL_ORIGIN_TIMEOUT) */
	OUTLIER_RESET,                     /* connection reset mid-request (counted as connect failed) */
	OUTLIER_CONNECT_SUCCESS,           /* connection established (LOCAL_ORIGIN_CONNECT_SUCCESS) */
};

/* The upstream answered status.  Returns 1 when that ejected the host
 * (the host set is refreshed), 0, or a negative code from the refresh
 * (-ENOMEM: the host is marked ejected but the pools are the old ones). */
int outlier_report_http(struct up_hostset *hs, struct up_host *h, unsigned status, uint64_t now_ms,
			struct lb_rng *rng);

/* A locally originated event; without split_local it counts as the
 * status Envoy maps it to (connect failure/reset 503, timeout 504;
 * success nothing).  Returns as outlier_report_http(). */
int outlier_report_local(struct up_hostset *hs, struct up_host *h, enum outlier_local ev, uint64_t now_ms,
			 struct lb_rng *rng);

/* The interval sweep: unejects hosts whose time is up and lowers the
 * backoff of hosts healthy for an interval.  Returns the number of hosts
 * unejected (the host set is refreshed when > 0) or a negative code. */
int outlier_tick(struct up_hostset *hs, uint64_t now_ms);

/* Ejected hosts of hs now. */
uint32_t outlier_ejected_count(const struct up_hostset *hs);

#endif
