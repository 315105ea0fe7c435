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

/* Prometheus text exposition format 0.0.4 into out. */
int metrics_render(struct mesh_buf *out);

#endif
