/*
 * cbreaker.h - circuit breakers of one cluster, per routing priority, as
 * Envoy's ResourceManagerImpl (source/common/upstream/resource_manager_impl.h):
 * limits compiled from Cluster.circuit_breakers.thresholds, counters the
 * proxy engine moves as connections, pending requests, requests, retries
 * and connection pools come and go.
 *
 * The engine asks cb_acquire() before it creates the resource: -EBUSY
 * means the limit is reached (the overflow counter is bumped) and the
 * request is answered 503 with "x-envoy-overloaded: true" and response
 * flag UO (CB_OVERLOADED_HEADER, CB_RESPONSE_FLAG), as Envoy's router does.
 * Every successful acquire is paired with one cb_release().  Loop thread
 * only; no allocation.
 */
#ifndef MESH_DATAPLANE_CBREAKER_H
#define MESH_DATAPLANE_CBREAKER_H

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct Envoy__Config__Cluster__V3__CircuitBreakers;

#define CB_OVERLOADED_HEADER "x-envoy-overloaded"
#define CB_RESPONSE_FLAG     "UO"

/* Envoy's defaults when a threshold is absent. */
#define CB_DEFAULT_MAX_CONNECTIONS 1024u
#define CB_DEFAULT_MAX_PENDING     1024u
#define CB_DEFAULT_MAX_REQUESTS    1024u
#define CB_DEFAULT_MAX_RETRIES     3u
/* retry_budget present without values */
#define CB_DEFAULT_BUDGET_PERCENT  20.0
#define CB_DEFAULT_MIN_RETRY_CONCURRENCY 3u

enum cb_priority { CB_PRIO_DEFAULT = 0, CB_PRIO_HIGH = 1, CB_PRIO_COUNT };

enum cb_resource {
	CB_CONNECTIONS = 0,
	CB_PENDING,       /* requests waiting for a connection */
	CB_REQUESTS,      /* requests in flight */
	CB_RETRIES,       /* retries in flight */
	CB_POOLS,         /* connection pools */
	CB_RESOURCE_COUNT
};

struct cb_thresholds {
	uint64_t max[CB_RESOURCE_COUNT];   /* UINT64_MAX: unlimited (max_connection_pools default) */
	bool has_budget;                   /* retry_budget replaces max_retries */
	double budget_percent;
	uint32_t min_retry_concurrency;
	bool track_remaining;
};

struct cbreaker {
	struct cb_thresholds t[CB_PRIO_COUNT];
	uint64_t active[CB_PRIO_COUNT][CB_RESOURCE_COUNT];
	uint64_t overflow[CB_PRIO_COUNT][CB_RESOURCE_COUNT];  /* upstream_cx_overflow, upstream_rq_pending_overflow, ... */
};

/* Compile m (NULL: every threshold at Envoy's default) into cb (counters
 * zeroed).  A priority listed twice is an error, as Envoy rejects it.
 * Returns 0 or -EINVAL with err (cap bytes) saying why. */
MESH_MUST_CHECK int cb_init(struct cbreaker *cb, const struct Envoy__Config__Cluster__V3__CircuitBreakers *m, char *err,
			    size_t cap);

/* The current limit of r at priority p (retries: the budget's when one is
 * configured: max(min_retry_concurrency, budget% of requests + pending)). */
uint64_t cb_limit(const struct cbreaker *cb, enum cb_priority p, enum cb_resource r);

/* Envoy's RetryBudgetImpl limit for thresholds t with a retry budget:
 * max(min_retry_concurrency, budget_percent of requests + pending), with
 * the counts of this moment (so it is evaluated for every retry). */
uint64_t cb_retry_budget(const struct cb_thresholds *t, uint64_t requests, uint64_t pending);

/* Whether acquiring one more r would overflow (no side effect). */
static inline bool cb_would_overflow(const struct cbreaker *cb, enum cb_priority p, enum cb_resource r)
{
	return cb->active[p][r] >= cb_limit(cb, p, r);
}

/* Take one r: 0, or -EBUSY (limit reached; overflow counted). */
MESH_MUST_CHECK int cb_acquire(struct cbreaker *cb, enum cb_priority p, enum cb_resource r);
/* Give back one r taken by cb_acquire(). */
void cb_release(struct cbreaker *cb, enum cb_priority p, enum cb_resource r);

/* What remains of r before the limit (Envoy's remaining_* gauges). */
uint64_t cb_remaining(const struct cbreaker *cb, enum cb_priority p, enum cb_resource r);

#endif
